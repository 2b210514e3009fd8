/* libwildebeest: <glob.h> with glibc's GNU extensions (the GNU C Library manual, "Calling Glob" and
 * "More Flags for Globbing"): GLOB_BRACE, GLOB_ALTDIRFUNC with the gl_* directory hooks,
 * GLOB_ONLYDIR, GLOB_PERIOD, GLOB_NOMAGIC (not GLOB_TILDE). It takes the place of musl's header for a package that
 * opts in; glob and globfree are this library's. */
#ifndef WILDEBEEST_GLOB_H
#define WILDEBEEST_GLOB_H

#include <stddef.h>
#include <sys/stat.h>

#ifdef __cplusplus
extern "C" {
#endif

struct dirent;

typedef struct {
    size_t gl_pathc;
    char **gl_pathv;
    size_t gl_offs;
    int gl_flags;
    /* With GLOB_ALTDIRFUNC: how directories are read and entries looked at. */
    void (*gl_closedir)(void *);
    struct dirent *(*gl_readdir)(void *);
    void *(*gl_opendir)(const char *);
    int (*gl_lstat)(const char *, struct stat *);
    int (*gl_stat)(const char *, struct stat *);
} glob_t;

#define GLOB_ERR         (1 << 0)  /* stop at a directory that cannot be read */
#define GLOB_MARK        (1 << 1)  /* a '/' after each directory */
#define GLOB_NOSORT      (1 << 2)
#define GLOB_DOOFFS      (1 << 3)  /* gl_offs NULL entries first */
#define GLOB_NOCHECK     (1 << 4)  /* no match: the pattern itself */
#define GLOB_APPEND      (1 << 5)
#define GLOB_NOESCAPE    (1 << 6)
#define GLOB_PERIOD      (1 << 7)  /* a leading '.' may match a wildcard */
#define GLOB_ALTDIRFUNC  (1 << 9)
#define GLOB_BRACE       (1 << 10) /* {a,b} alternatives, nested */
#define GLOB_NOMAGIC     (1 << 11) /* no match and no wildcard: the pattern itself */
#define GLOB_ONLYDIR     (1 << 13)

#define GLOB_NOSPACE 1
#define GLOB_ABORTED 2
#define GLOB_NOMATCH 3
#define GLOB_NOSYS   4

int wildebeest_glob(const char *pattern, int flags, int (*errfunc)(const char *, int), glob_t *g);
void wildebeest_globfree(glob_t *g);

/* Functions of this file, not macros: a package names globfree as a value (systemd's
 * `_cleanup_(globfree)`); static, so nothing binds to musl's glob, whose glob_t differs. */
static inline int glob(const char *pattern, int flags, int (*errfunc)(const char *, int), glob_t *g)
{
    return wildebeest_glob(pattern, flags, errfunc, g);
}

static inline void globfree(glob_t *g)
{
    wildebeest_globfree(g);
}

#ifdef __cplusplus
}
#endif

#endif
