/* libwildebeest: the forced header's macros and types, as systemd uses them. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <unistd.h>
#include <sys/stat.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <shadow.h>
#include <sys/prctl.h>
#include <linux/prctl.h> /* after <sys/prctl.h>: must not define struct prctl_mm_map again */

#include "check.h"

static int by_value(const void *a, const void *b)
{
    return *(const int *)a - *(const int *)b;
}

/* strndupa's copy lives in the caller's frame: use it after more stack has been used. */
static int deep(int depth)
{
    char pad[256];
    memset(pad, depth, sizeof(pad));
    return depth ? deep(depth - 1) + pad[3] : 0;
}

int main(void)
{
    comparison_fn_t cmp = by_value;
    int v[] = {3, 1, 2};
    const char *text = "wildebeest";
    char *a = strndupa(text, 4), *b = strndupa(text, 100), *c = strndupa(text + 3, 0);
    struct prctl_mm_map map = {0};

    qsort(v, 3, sizeof(int), cmp);
    check(v[0] == 1 && v[2] == 3, "comparison_fn_t sorts");
    deep(8);
    check(strcmp(a, "wild") == 0, "strndupa cuts at n and ends the copy");
    check(strcmp(b, text) == 0 && b != text, "strndupa copies a shorter string whole");
    check(c[0] == '\0', "strndupa of 0 bytes is empty");
    check(sizeof(map.auxv_size) == 4, "struct prctl_mm_map comes from one header");
    {
        /* getdents64 into a byte buffer, as systemd's recurse-dir.c reads a directory. */
        uint8_t buf[4096];
        int fd = open(".", O_RDONLY | O_DIRECTORY);
        long got = fd < 0 ? -1 : (long)getdents64(fd, buf, sizeof(buf));
        check(got > 0, "getdents64 reads a directory into a byte buffer");
        if (fd >= 0)
            close(fd);
    }
    {
        /* A /proc file written as systemd writes it: its stream unbuffered, the value (its own,
         * so nothing changes) with fputs, then fflush. */
        char now[32] = "";
        FILE *r = fopen("/proc/self/oom_score_adj", "re"), *f;
        int ok = r && fgets(now, sizeof(now), r) != NULL;
        if (r)
            fclose(r);
        f = fopen("/proc/self/oom_score_adj", "we");
        ok = ok && f && setvbuf(f, NULL, _IONBF, 0) == 0 && fputs(now, f) != EOF && fflush(f) == 0 && !ferror(f);
        check(ok && f && fclose(f) == 0, "an unbuffered stream writes /proc/self/oom_score_adj in one write");
    }
    {
        /* Any other file is unbuffered as asked: the byte is in the file before any flush. */
        struct stat st;
        FILE *t = tmpfile();
        int ok = t && setvbuf(t, NULL, _IONBF, 0) == 0 && fputc('x', t) == 'x' && fstat(fileno(t), &st) == 0;
        check(ok && st.st_size == 1, "setvbuf(_IONBF) leaves a regular file unbuffered");
        if (t)
            fclose(t);
    }
    {
        /* Each database read to its end, as systemd's sysusers reads /etc/passwd: one entry,
         * then NULL with errno ENOENT. */
        static const char *lines[] = {"root:x:0:0:root:/root:/bin/sh\n", "root:x:0:\n", "root:*:18262:0:99999:7:::\n"};
        static const char *what[] = {"fgetpwent", "fgetgrent", "fgetspent"};
        int i;
        for (i = 0; i < 3; i++) {
            FILE *t = tmpfile();
            int first, end;
            char said[64];
            fputs(lines[i], t);
            rewind(t);
            errno = 0;
            first = (i == 0 ? (void *)fgetpwent(t) : i == 1 ? (void *)fgetgrent(t) : (void *)fgetspent(t)) != NULL;
            errno = 0;
            end = (i == 0 ? (void *)fgetpwent(t) : i == 1 ? (void *)fgetgrent(t) : (void *)fgetspent(t)) == NULL &&
                  errno == ENOENT;
            snprintf(said, sizeof(said), "%s reads an entry, then says ENOENT at the end", what[i]);
            check(first && end, said);
            fclose(t);
        }
    }
    printf("header-test: %d passed, %d failed\n", n - failures, failures);
    return failures != 0;
}
