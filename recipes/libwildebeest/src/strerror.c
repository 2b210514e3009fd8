/* libwildebeest: GNU strerror_r over the XSI one, which both musl and glibc have (built without
 * _GNU_SOURCE, this file gets the XSI declaration). */

#define _POSIX_C_SOURCE 200809L /* POSIX's interfaces, and the XSI strerror_r */

#include <stdio.h>
#include <string.h>

char *wildebeest_strerror_r(int errnum, char *buf, size_t buflen);

char *wildebeest_strerror_r(int errnum, char *buf, size_t buflen)
{
    char whole[256];

    if (buflen == 0)
        return buf;
    if (strerror_r(errnum, whole, sizeof(whole)) != 0)
        snprintf(whole, sizeof(whole), "Unknown error %d", errnum);
    snprintf(buf, buflen, "%s", whole);
    return buf;
}
