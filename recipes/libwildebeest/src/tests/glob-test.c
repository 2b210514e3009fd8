/* libwildebeest: glob in a tree of its own, each result against the one written here (what glibc
 * 2.36 gives); on a glibc host also against glibc's glob itself (its glob_t has the same layout). */

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glob.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1 /* its glob interceptor reads gl_pathv[0..pathc) without GLOB_DOOFFS' offset */
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

#ifdef __GLIBC__
/* glibc's own, by their symbols: glob and globfree here are the header's. */
int glibc_glob(const char *pattern, int flags, int (*errfunc)(const char *, int), glob_t *g) __asm__("glob");
void glibc_globfree(glob_t *g) __asm__("globfree");
#endif

static int n, failures;

/* systemd's hooks: every directory entry but "." and "..". */
static struct dirent *readdir_no_dot(void *d)
{
    struct dirent *de;
    while ((de = readdir(d)) && (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")))
        ;
    return de;
}
static void closedir_hook(void *d) { closedir(d); }
static void *opendir_hook(const char *path) { return opendir(path); }

static void hooks(glob_t *g)
{
    g->gl_closedir = closedir_hook;
    g->gl_readdir = readdir_no_dot;
    g->gl_opendir = opendir_hook;
    g->gl_lstat = lstat;
    g->gl_stat = stat;
}

/* The result as one line: "rc: a b c" (DOOFFS: the empty slots as "-"). */
static void line(char *out, size_t size, int rc, glob_t *g, int flags)
{
    size_t first = (flags & GLOB_DOOFFS) ? g->gl_offs : 0, used;

    used = (size_t)snprintf(out, size, "%d:", rc);
    for (size_t i = 0; i < first + g->gl_pathc && used < size; i++)
        used += (size_t)snprintf(out + used, size - used, " %s", g->gl_pathv[i] ? g->gl_pathv[i] : "-");
}

static void check(const char *pattern, int flags, const char *want)
{
    char ours[1024];
    glob_t g = {0};
    int rc;

    if (flags & GLOB_ALTDIRFUNC)
        hooks(&g);
    g.gl_offs = 2;
    rc = glob(pattern, flags, NULL, &g);
    line(ours, sizeof(ours), rc, &g, flags);
    if (rc == 0 && (flags & GLOB_APPEND) == 0) {
        rc = glob("b1", flags | GLOB_APPEND, NULL, &g); /* one more, after what is there */
        line(ours + strlen(ours), sizeof(ours) - strlen(ours), rc, &g, flags);
    }
    if (rc == 0 || g.gl_pathv)
        globfree(&g);
    n++;
    if (strcmp(ours, want) != 0) {
        failures++;
        printf("FAIL \"%s\" flags %#x:\n  ours:     %s\n  expected: %s\n", pattern, flags, ours, want);
    }
#ifdef __GLIBC__
    if (!(UNDER_ASAN && (flags & GLOB_DOOFFS))) {
        char theirs[1024];
        glob_t h = {0};
        if (flags & GLOB_ALTDIRFUNC)
            hooks(&h);
        h.gl_offs = 2;
        rc = glibc_glob(pattern, flags, NULL, &h);
        line(theirs, sizeof(theirs), rc, &h, flags);
        if (rc == 0 && (flags & GLOB_APPEND) == 0) {
            rc = glibc_glob("b1", flags | GLOB_APPEND, NULL, &h);
            line(theirs + strlen(theirs), sizeof(theirs) - strlen(theirs), rc, &h, flags);
        }
        glibc_globfree(&h);
        n++;
        if (strcmp(ours, theirs) != 0) {
            failures++;
            printf("FAIL \"%s\" flags %#x against glibc:\n  ours:  %s\n  glibc: %s\n", pattern, flags, ours, theirs);
        }
    }
#endif
}

static void touch(const char *path)
{
    FILE *f = fopen(path, "w");
    if (f)
        fclose(f);
}

int main(void)
{
    char top[] = "/tmp/wb-glob-XXXXXX";

    if (!mkdtemp(top) || chdir(top) != 0)
        return 2;
    mkdir("d", 0755);
    mkdir("e", 0755);
    touch("a1"); touch("a2"); touch("b1"); touch(".hidden"); touch("a*"); touch("d/x1"); touch("d/y1"); touch("e/x2");

    check("*", 0, "0: a* a1 a2 b1 d e0: a* a1 a2 b1 d e b1");
    check("a*", 0, "0: a* a1 a20: a* a1 a2 b1");
    check("a\\*", 0, "0: a*0: a* b1");
    check("a\\*", GLOB_NOESCAPE, "3:");
    check("[ab]1", 0, "0: a1 b10: a1 b1 b1");
    check("*/", 0, "0: d/ e/0: d/ e/ b1");
    check("*/x*", 0, "0: d/x1 e/x20: d/x1 e/x2 b1");
    check("*", GLOB_MARK, "0: a* a1 a2 b1 d/ e/0: a* a1 a2 b1 d/ e/ b1");
    check("*", GLOB_ONLYDIR | GLOB_MARK, "0: d/ e/0: d/ e/ b1"); /* b1: a name, not a wildcard */
    check(".*", GLOB_ALTDIRFUNC, "0: .hidden0: .hidden b1");
    check("*", GLOB_PERIOD | GLOB_ALTDIRFUNC, "0: .hidden a* a1 a2 b1 d e0: .hidden a* a1 a2 b1 d e b1");
    check("{b,a}1", GLOB_BRACE, "0: b1 a10: b1 a1 b1");
    check("d/{x,y{1,2}}*", GLOB_BRACE, "0: d/x1 d/y10: d/x1 d/y1 b1");
    check("{e,d}/x*", GLOB_BRACE | GLOB_NOSORT | GLOB_ALTDIRFUNC, "0: e/x2 d/x10: e/x2 d/x1 b1");
    check("none*", 0, "3:");
    check("none*", GLOB_NOCHECK, "0: none*0: none* b1");
    check("{none,nil}*", GLOB_BRACE | GLOB_NOCHECK, "0: {none,nil}*0: {none,nil}* b1");
    check("none", GLOB_NOMAGIC, "0: none0: none b1");
    check("none*", GLOB_NOMAGIC, "3:");
    check("a1", 0, "0: a10: a1 b1");
    check("d/../a1", 0, "0: d/../a10: d/../a1 b1");
    check("a*", GLOB_DOOFFS, "0: - - a* a1 a20: - - a* a1 a2 b1");
    {
        char abs[64];
        snprintf(abs, sizeof(abs), "%s/d/*", top);
        glob_t g = {0};
        n++;
        if (glob(abs, 0, NULL, &g) != 0 || g.gl_pathc != 2 || strncmp(g.gl_pathv[0], top, strlen(top)) != 0) {
            failures++;
            printf("FAIL an absolute pattern\n");
        }
        globfree(&g);
    }
    system("rm -rf /tmp/wb-glob-*");
    printf("glob-test: %d passed, %d failed\n", n - failures, failures);
    return failures != 0;
}
