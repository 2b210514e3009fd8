/* libwildebeest: getsgnam_r over /etc/gshadow ("name:password:admins:members", lists split by
 * commas), written from the GNU C Library manual and gshadow(5). */

#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "gshadow.h"

#ifndef GSHADOW_FILE
#define GSHADOW_FILE "/etc/gshadow"
#endif

/* Splits the comma-separated `list` (in buf) into a NULL-terminated array at *at, which then
 * points past it; NULL when the array would pass `end`. */
static char **split(char *list, char ***at, char *end)
{
    char **v = *at, *p = list;
    size_t n = 0;

    while ((char *)(v + n + 1) <= end) {
        if (*p == '\0') {
            v[n] = NULL;
            *at = v + n + 1;
            return v;
        }
        v[n++] = p;
        p += strcspn(p, ",");
        if (*p == ',')
            *p++ = '\0';
    }
    return NULL;
}

int wildebeest_getsgnam_r(const char *name, struct sgrp *sg, char *buf, size_t buflen, struct sgrp **result)
{
    FILE *f = fopen(GSHADOW_FILE, "re");
    char line[4096];
    int err = 0;

    *result = NULL;
    if (!f)
        return errno == ENOENT ? 0 : errno;
    while (fgets(line, sizeof(line), f)) {
        char *field[4], *p = line, *end = buf + buflen, **arrays;
        size_t len = strcspn(line, "\n"), used;
        int i;

        line[len] = '\0';
        for (i = 0; i < 4; i++) {
            field[i] = p;
            p += strcspn(p, ":");
            if (*p == ':')
                *p++ = '\0';
            else if (i < 3)
                break;
        }
        if (i < 3 || strcmp(field[0], name) != 0) /* not four fields: not an entry */
            continue;
        /* The line's text first, then the two arrays, aligned, in what is left. */
        if (len + 1 > buflen) {
            err = ERANGE;
            break;
        }
        memcpy(buf, line, len + 1);
        used = (len + 1 + sizeof(char *) - 1) / sizeof(char *) * sizeof(char *);
        arrays = (char **)(void *)(buf + used);
        sg->sg_namp = buf + (field[0] - line);
        sg->sg_passwd = buf + (field[1] - line);
        sg->sg_adm = used < buflen ? split(buf + (field[2] - line), &arrays, end) : NULL;
        sg->sg_mem = sg->sg_adm ? split(buf + (field[3] - line), &arrays, end) : NULL;
        if (!sg->sg_adm || !sg->sg_mem) {
            err = ERANGE;
            break;
        }
        *result = sg;
        break;
    }
    fclose(f);
    return err;
}
