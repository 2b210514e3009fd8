/* libwildebeest: the header a package that opts in is built with (`-include wildebeest.h`, from
 * `pkg-config --cflags wildebeest`). It defines _GNU_SOURCE (such a package asks for GNU's
 * interfaces), then adds what musl lacks of them, as function-like macros over this library's
 * own names, so that nothing binds to a musl symbol of the same name by accident. */
#ifndef WILDEBEEST_H
#define WILDEBEEST_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <alloca.h>
#include <stddef.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* glibc's name for qsort's and bsearch's comparison function. */
typedef int (*comparison_fn_t)(const void *, const void *);

/* strndupa: a copy of at most n bytes of s, NUL-terminated, on the caller's stack. A macro:
 * alloca's memory lives until the caller returns, so a function could not return it. */
#ifndef strndupa
#define strndupa(s, n) (__extension__({                                  \
        const char *wb_s_ = (s);                                         \
        size_t wb_n_ = strnlen(wb_s_, (n));                              \
        char *wb_d_ = (char *)alloca(wb_n_ + 1);                         \
        wb_d_[wb_n_] = '\0';                                             \
        (char *)memcpy(wb_d_, wb_s_, wb_n_);                             \
}))
#endif

/* GNU strerror_r: returns the message (here always written to buf, truncated to fit); musl's is
 * the XSI one, which returns an error number. */
char *wildebeest_strerror_r(int errnum, char *buf, size_t buflen);
#define strerror_r(errnum, buf, buflen) wildebeest_strerror_r(errnum, buf, buflen)

/* getdents64 takes any buffer, as glibc declares it; musl's is getdents under another name, with
 * a struct dirent pointer. A function here, as a build system's check for it links its address. */
#include <dirent.h>
#include <sys/types.h>
#ifdef getdents64
#undef getdents64
static inline ssize_t getdents64(int fd, void *buf, size_t len)
{
    return getdents(fd, (struct dirent *)buf, len);
}
#endif

/* setvbuf(f, NULL, _IONBF, 0), which systemd asks for before it writes a value to a /proc file,
 * so that the value goes out in one write. musl writes an unbuffered stream's data with writev()
 * behind its (empty) buffer, and a /proc file without write_iter (oom_score_adj, /proc/sys/...)
 * is written once per vector: it reads the empty one and fails with EINVAL. On a /proc file the
 * stream keeps its buffer, so systemd's fflush writes the value as one vector (up to musl's
 * BUFSIZ, 1024 bytes); any other stream is made unbuffered as asked. */
#include <stdio.h>
#include <sys/statfs.h>
static inline int wildebeest_setvbuf(FILE *f, char *buf, int mode, size_t size)
{
    struct statfs fs;
    if (mode == _IONBF && fstatfs(fileno(f), &fs) == 0 && fs.f_type == 0x9fa0) /* PROC_SUPER_MAGIC */
        return 0;
    return setvbuf(f, buf, mode, size);
}
#define setvbuf(f, buf, mode, size) wildebeest_setvbuf(f, buf, mode, size)

/* fgetpwent, fgetgrent, fgetspent: at the end of the file glibc's say ENOENT; musl's leave errno
 * as it was, and systemd takes anything but ENOENT as an error (sysusers: "Failed to load user
 * database: I/O error"). */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <shadow.h>
#define WILDEBEEST_FGETENT(type, name)                                  \
    static inline struct type *wildebeest_##name(FILE *f)               \
    {                                                                   \
        struct type *e = name(f);                                       \
        if (!e && feof(f) && !ferror(f))                                \
            errno = ENOENT;                                             \
        return e;                                                       \
    }
WILDEBEEST_FGETENT(passwd, fgetpwent)
WILDEBEEST_FGETENT(group, fgetgrent)
WILDEBEEST_FGETENT(spwd, fgetspent)
#define fgetpwent(f) wildebeest_fgetpwent(f)
#define fgetgrent(f) wildebeest_fgetgrent(f)
#define fgetspent(f) wildebeest_fgetspent(f)

/* <linux/prctl.h> defines struct prctl_mm_map again after musl's <sys/prctl.h>: take musl's. */
#include <sys/prctl.h>
#ifndef _LINUX_PRCTL_H
#define _LINUX_PRCTL_H
#endif

#ifdef __cplusplus
}
#endif

#endif
