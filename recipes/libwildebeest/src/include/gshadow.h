/* libwildebeest: <gshadow.h>, glibc's group shadow interface (the GNU C Library's gshadow.h):
 * musl has none. Only getsgnam_r, which reads /etc/gshadow as glibc's files backend does; systemd
 * includes the header unconditionally and calls it to show a group's record. */
#ifndef WILDEBEEST_GSHADOW_H
#define WILDEBEEST_GSHADOW_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

struct sgrp {
    char *sg_namp;   /* group name */
    char *sg_passwd; /* encrypted password */
    char **sg_adm;   /* group administrators, NULL-terminated */
    char **sg_mem;   /* group members, NULL-terminated */
};

/* The entry of group `name` in /etc/gshadow, its strings in buf: 0 and *result set (NULL: none);
 * ERANGE when buf is too small; another errno value when the file cannot be read. */
int wildebeest_getsgnam_r(const char *name, struct sgrp *sg, char *buf, size_t buflen, struct sgrp **result);
#define getsgnam_r(name, sg, buf, buflen, result) wildebeest_getsgnam_r(name, sg, buf, buflen, result)

#ifdef __cplusplus
}
#endif

#endif
