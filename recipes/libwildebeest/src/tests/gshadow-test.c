/* libwildebeest: getsgnam_r over a gshadow file of its own (tests/gshadow.txt). glibc's reads
 * only /etc/gshadow, so its answers are written here: gshadow(5)'s format, field by field. */

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <gshadow.h>

#include "check.h"

/* The list as "a,b" again. */
static const char *joined(char **v, char *out)
{
    out[0] = '\0';
    for (size_t i = 0; v && v[i]; i++)
        strcat(strcat(out, i ? "," : ""), v[i]);
    return out;
}

int main(void)
{
    struct sgrp sg, *res;
    char buf[512], a[128], m[128], tiny[12];
    int r;

    r = getsgnam_r("sudo", &sg, buf, sizeof(buf), &res);
    check(r == 0 && res == &sg && !strcmp(sg.sg_namp, "sudo") && !strcmp(sg.sg_passwd, "!"), "sudo: name and password");
    check(res && !strcmp(joined(sg.sg_adm, a), "alice") && !strcmp(joined(sg.sg_mem, m), "alice,bob"), "sudo: lists");
    r = getsgnam_r("staff", &sg, buf, sizeof(buf), &res);
    check(r == 0 && res && !strcmp(sg.sg_passwd, "$6$x") && !strcmp(joined(sg.sg_adm, a), "boss,deputy")
          && sg.sg_mem[0] == NULL, "staff: two admins, no members");
    r = getsgnam_r("root", &sg, buf, sizeof(buf), &res);
    check(r == 0 && res && sg.sg_adm[0] == NULL && sg.sg_mem[0] == NULL, "root: empty lists");
    r = getsgnam_r("short", &sg, buf, sizeof(buf), &res);
    check(r == 0 && res == NULL, "a line of three fields is no entry");
    r = getsgnam_r("nobody-here", &sg, buf, sizeof(buf), &res);
    check(r == 0 && res == NULL, "no such group: 0 and no result");
    r = getsgnam_r("sudo", &sg, tiny, sizeof(tiny), &res);
    check(r == ERANGE && res == NULL, "a buffer too small: ERANGE");
    r = getsgnam_r("sud", &sg, buf, sizeof(buf), &res);
    check(r == 0 && res == NULL, "a prefix of a name is not the name");
    printf("gshadow-test: %d passed, %d failed\n", n - failures, failures);
    return failures != 0;
}
