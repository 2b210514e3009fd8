/* libwildebeest: GNU strerror_r. Built as a package that opts in is (-include wildebeest.h); on a
 * glibc host each message is compared with glibc's own GNU strerror_r. */

#include <errno.h>
#include <stdio.h>
#include <string.h>

static int n, failures;

static void check(int ok, const char *what, int errnum, const char *got)
{
    n++;
    if (!ok) {
        failures++;
        printf("FAIL %s (errno %d): got \"%s\"\n", what, errnum, got);
    }
}

int main(void)
{
    static const int errnums[] = {0, EPERM, ENOENT, EINVAL, ENOSPC, ERANGE, 133, 9999, -1};
    char buf[256], small[5];

    for (size_t i = 0; i < sizeof(errnums) / sizeof(*errnums); i++) {
        int e = errnums[i];
        char *s = strerror_r(e, buf, sizeof(buf));
        check(s == buf, "returns its buffer", e, s);
        check(e == 9999 || e == -1 || strcmp(s, strerror(e)) == 0, "says what strerror says", e, s);
#ifdef __GLIBC__
        {
            char theirs[256];
            const char *g = (strerror_r)(e, theirs, sizeof(theirs));
            check(strcmp(s, g) == 0, "says what glibc's GNU strerror_r says", e, s);
        }
#endif
        memset(small, 'x', sizeof(small));
        s = strerror_r(e, small, sizeof(small));
        check(s == small && strlen(s) == 4 && strncmp(s, buf, 4) == 0, "cut to its buffer, NUL-terminated", e, s);
    }
    buf[0] = 'k';
    check(strerror_r(EPERM, buf, 0) == buf && buf[0] == 'k', "writes nothing to an empty buffer", EPERM, buf);
    printf("strerror-test: %d passed, %d failed\n", n - failures, failures);
    return failures != 0;
}
