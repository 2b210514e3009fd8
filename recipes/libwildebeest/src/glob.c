/* libwildebeest: glob with glibc's GNU flags and directory hooks, written from the GNU C Library
 * manual; matching is fnmatch's (musl's). tests/glob-test.c compares it with glibc's on the host. */

#define _POSIX_C_SOURCE 200809L /* POSIX's interfaces, and the XSI strerror_r */

#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "glob.h"

struct walk {
    glob_t *g;
    int flags;
    int (*errfunc)(const char *, int);
    size_t found; /* paths this call added */
};

static int add(struct walk *w, const char *path, int mark)
{
    glob_t *g = w->g;
    size_t len = strlen(path), first = (w->flags & GLOB_DOOFFS) ? g->gl_offs : 0;
    char **v = realloc(g->gl_pathv, (first + g->gl_pathc + 2) * sizeof(char *));
    char *copy = malloc(len + 2);

    if (v)
        g->gl_pathv = v;
    if (!v || !copy) {
        free(copy);
        return GLOB_NOSPACE;
    }
    memcpy(copy, path, len);
    copy[len] = '/';
    copy[len + (mark ? 1 : 0)] = '\0';
    v[first + g->gl_pathc++] = copy;
    v[first + g->gl_pathc] = NULL;
    w->found++;
    return 0;
}

static int magic(const char *s, int noescape)
{
    for (; *s; s++) {
        if (*s == '\\' && !noescape && s[1])
            s++;
        else if (*s == '*' || *s == '?' || *s == '[')
            return 1;
    }
    return 0;
}

static void unescape(char *s, int noescape)
{
    char *out = s;

    for (; *s; s++) {
        if (*s == '\\' && !noescape && s[1])
            s++;
        *out++ = *s;
    }
    *out = '\0';
}

static int look(struct walk *w, const char *path, struct stat *sb, int follow)
{
    if (w->flags & GLOB_ALTDIRFUNC)
        return follow ? w->g->gl_stat(path, sb) : w->g->gl_lstat(path, sb);
    return follow ? stat(path, sb) : lstat(path, sb);
}

static int is_dir(struct walk *w, const char *path)
{
    struct stat sb;
    return look(w, path, &sb, 1) == 0 && S_ISDIR(sb.st_mode);
}

/* Adds what matches `rest` below `path` (its first `len` bytes, a buffer of PATH_MAX). */
static int walk(struct walk *w, char *path, size_t len, const char *rest)
{
    const char *slash;
    size_t clen;
    char comp[NAME_MAX + 1];
    void *dir;
    struct dirent *de;
    int r = 0;

    while (*rest == '/') {
        if (len + 1 >= PATH_MAX)
            return 0;
        path[len++] = '/';
        rest++;
    }
    path[len] = '\0';
    if (!*rest) /* the pattern ends in '/': a directory */
        return is_dir(w, path) ? add(w, path, 0) : 0;
    slash = strchr(rest, '/');
    clen = slash ? (size_t)(slash - rest) : strlen(rest);
    if (clen > NAME_MAX)
        return 0;
    memcpy(comp, rest, clen);
    comp[clen] = '\0';
    if (!magic(comp, w->flags & GLOB_NOESCAPE)) {
        struct stat sb;
        unescape(comp, w->flags & GLOB_NOESCAPE);
        clen = strlen(comp);
        if (len + clen >= PATH_MAX)
            return 0;
        memcpy(path + len, comp, clen + 1);
        if (slash)
            return walk(w, path, len + clen, slash);
        if (look(w, path, &sb, 0) != 0) /* GLOB_ONLYDIR, a hint in glibc, does not apply here */
            return 0;
        return add(w, path, (w->flags & GLOB_MARK) && is_dir(w, path));
    }
    dir = (w->flags & GLOB_ALTDIRFUNC) ? w->g->gl_opendir(len ? path : ".") : (void *)opendir(len ? path : ".");
    if (!dir) {
        if ((w->errfunc && w->errfunc(len ? path : ".", errno)) || (w->flags & GLOB_ERR))
            return GLOB_ABORTED;
        return 0;
    }
    while (r == 0 && (de = (w->flags & GLOB_ALTDIRFUNC) ? w->g->gl_readdir(dir) : readdir(dir))) {
        size_t nlen = strlen(de->d_name);
        int fnflags = ((w->flags & GLOB_PERIOD) ? 0 : FNM_PERIOD) | ((w->flags & GLOB_NOESCAPE) ? FNM_NOESCAPE : 0);

        if (fnmatch(comp, de->d_name, fnflags) != 0 || len + nlen >= PATH_MAX)
            continue;
        memcpy(path + len, de->d_name, nlen + 1);
        if (slash) {
            if (is_dir(w, path))
                r = walk(w, path, len + nlen, slash);
        } else if (!(w->flags & GLOB_ONLYDIR) || is_dir(w, path)) {
            r = add(w, path, (w->flags & GLOB_MARK) && is_dir(w, path));
        }
    }
    if (w->flags & GLOB_ALTDIRFUNC)
        w->g->gl_closedir(dir);
    else
        closedir(dir);
    return r;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* One pattern without braces: its matches, sorted among themselves unless GLOB_NOSORT. */
static int one(struct walk *w, const char *pattern)
{
    char *path = malloc(PATH_MAX);
    size_t before = w->g->gl_pathc;
    int r;

    if (!path)
        return GLOB_NOSPACE;
    r = walk(w, path, 0, pattern);
    free(path);
    if (!(w->flags & GLOB_NOSORT) && w->g->gl_pathc > before + 1) {
        size_t first = (w->flags & GLOB_DOOFFS) ? w->g->gl_offs : 0;
        qsort(w->g->gl_pathv + first + before, w->g->gl_pathc - before, sizeof(char *), by_name);
    }
    return r;
}

/* The first top-level {a,b} of `pattern`: each alternative in turn, with what is around it. */
static int braces(struct walk *w, const char *pattern)
{
    const char *open = NULL, *p;
    int depth = 0;

    for (p = pattern; *p; p++) {
        if (*p == '\\' && !(w->flags & GLOB_NOESCAPE) && p[1]) {
            p++;
        } else if (*p == '{') {
            if (depth++ == 0)
                open = p;
        } else if (*p == '}' && depth > 0 && --depth == 0) {
            break;
        }
    }
    if (!open || !*p)
        return one(w, pattern);
    {
        const char *close = p, *start = open + 1, *q;
        size_t size = strlen(pattern) + 1;
        char *alt = malloc(size);
        int r = 0;

        if (!alt)
            return GLOB_NOSPACE;
        depth = 0;
        for (q = start; r == 0 && q <= close; q++) {
            if (*q == '\\' && !(w->flags & GLOB_NOESCAPE) && q < close - 1) {
                q++;
                continue;
            }
            if (*q == '{') {
                depth++;
            } else if (*q == '}' && q < close) {
                depth--;
            } else if ((*q == ',' && depth == 0) || q == close) {
                size_t head = (size_t)(open - pattern), mid = (size_t)(q - start);
                memcpy(alt, pattern, head);
                memcpy(alt + head, start, mid);
                strcpy(alt + head + mid, close + 1);
                r = braces(w, alt);
                start = q + 1;
            }
        }
        free(alt);
        return r;
    }
}

int wildebeest_glob(const char *pattern, int flags, int (*errfunc)(const char *, int), glob_t *g)
{
    struct walk w = {g, flags, errfunc, 0};
    int r;

    if (!(flags & GLOB_APPEND)) {
        g->gl_pathc = 0;
        g->gl_pathv = NULL;
        if (flags & GLOB_DOOFFS) {
            g->gl_pathv = calloc(g->gl_offs + 1, sizeof(char *));
            if (!g->gl_pathv)
                return GLOB_NOSPACE;
        }
    }
    g->gl_flags = flags;
    r = (flags & GLOB_BRACE) ? braces(&w, pattern) : one(&w, pattern);
    if (r != 0)
        return r;
    if (w.found == 0) {
        if ((flags & GLOB_NOCHECK) || ((flags & GLOB_NOMAGIC) && !magic(pattern, flags & GLOB_NOESCAPE)))
            return add(&w, pattern, 0);
        return GLOB_NOMATCH;
    }
    return 0;
}

void wildebeest_globfree(glob_t *g)
{
    size_t first = (g->gl_flags & GLOB_DOOFFS) ? g->gl_offs : 0;

    if (g->gl_pathv)
        for (size_t i = 0; i < g->gl_pathc; i++)
            free(g->gl_pathv[first + i]);
    free(g->gl_pathv);
    g->gl_pathv = NULL;
    g->gl_pathc = 0;
}
