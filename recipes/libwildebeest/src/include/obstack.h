/* libwildebeest: <obstack.h>, the GNU obstack interface, for C libraries that lack it (musl).

   Written from the interface as the GNU C Library manual documents it ("Obstacks"); no code
   of glibc or gnulib is used. Source-compatible only: struct obstack's layout and the
   library's symbol names are libwildebeest's own, so an object built against glibc's or
   gnulib's obstack.h cannot be mixed with this library (it fails to link, by design).

   Every operation that allocates is a function of libwildebeest.a, so each argument is
   evaluated exactly once; the macros only name them. obstack_init and obstack_begin expand
   where they are used, because they take the program's obstack_chunk_alloc and
   obstack_chunk_free, which it defines as macros before use.

   SPDX-License-Identifier: MIT */

#ifndef WILDEBEEST_OBSTACK_H
#define WILDEBEEST_OBSTACK_H 1

#include <stddef.h>  /* size_t, ptrdiff_t */

#ifdef __cplusplus
extern "C" {
#endif

/* One block of memory; objects live in its contents, which follow this header, aligned. */
struct _obstack_chunk {
    char *limit;                   /* one past the chunk's last byte */
    struct _obstack_chunk *prev;   /* the chunk allocated before this one, or NULL */
};

struct obstack {
    size_t chunk_size;             /* preferred size of a new chunk */
    struct _obstack_chunk *chunk;  /* the current (newest) chunk */
    char *object_base;             /* where the growing object starts */
    char *next_free;               /* where its next byte goes */
    char *chunk_limit;             /* end of the current chunk */
    size_t alignment_mask;         /* objects start at addresses with these bits clear */
    union {                        /* allocates a chunk: .extra when use_extra_arg */
        void *(*plain)(size_t);
        void *(*extra)(void *, size_t);
    } chunkfun;
    union {                        /* frees a chunk: .extra when use_extra_arg */
        void (*plain)(void *);
        void (*extra)(void *, void *);
    } freefun;
    void *extra_arg;               /* first argument of the .extra functions */
    unsigned use_extra_arg : 1;
    unsigned maybe_empty_object : 1;
    unsigned alloc_failed : 1;     /* set when a chunk could not be had */
};

/* Called when a chunk cannot be allocated; the default prints "memory exhausted" and exits
   with obstack_exit_failure. If a replacement returns, the operation that needed memory does
   nothing (obstack_alloc and friends then return NULL). */
extern void (*obstack_alloc_failed_handler)(void);
extern int obstack_exit_failure;

/* The library's functions. Programs use the obstack_* names below. */
int wb_obstack_begin(struct obstack *, size_t, size_t, void *(*)(size_t), void (*)(void *));
int wb_obstack_begin_1(struct obstack *, size_t, size_t, void *(*)(void *, size_t),
                       void (*)(void *, void *), void *);
void wb_obstack_set_chunkfun(struct obstack *, void (*)(void));
void wb_obstack_set_freefun(struct obstack *, void (*)(void));
int wb_obstack_make_room(struct obstack *, size_t);
void wb_obstack_blank(struct obstack *, ptrdiff_t);
void wb_obstack_grow(struct obstack *, const void *, size_t);
void wb_obstack_grow0(struct obstack *, const void *, size_t);
void wb_obstack_1grow(struct obstack *, int);
void wb_obstack_ptr_grow(struct obstack *, const void *);
void wb_obstack_int_grow(struct obstack *, int);
void *wb_obstack_finish(struct obstack *);
void *wb_obstack_alloc(struct obstack *, size_t);
void *wb_obstack_copy(struct obstack *, const void *, size_t);
void *wb_obstack_copy0(struct obstack *, const void *, size_t);
void wb_obstack_free(struct obstack *, void *);
size_t wb_obstack_memory_used(struct obstack *);
int wb_obstack_empty_p(struct obstack *);
void wb_obstack_1grow_fast(struct obstack *, int);
void wb_obstack_ptr_grow_fast(struct obstack *, const void *);
void wb_obstack_int_grow_fast(struct obstack *, int);
void wb_obstack_blank_fast(struct obstack *, ptrdiff_t);

/* Setting up. size 0: the default chunk size; alignment 0: the strictest basic type's. */
#define obstack_init(h) \
    wb_obstack_begin((h), 0, 0, (void *(*)(size_t))(obstack_chunk_alloc), \
                     (void (*)(void *))(obstack_chunk_free))
#define obstack_begin(h, size) \
    wb_obstack_begin((h), (size), 0, (void *(*)(size_t))(obstack_chunk_alloc), \
                     (void (*)(void *))(obstack_chunk_free))
#define obstack_specify_allocation(h, size, alignment, chunkfun, freefun) \
    wb_obstack_begin((h), (size), (alignment), (void *(*)(size_t))(chunkfun), \
                     (void (*)(void *))(freefun))
#define obstack_specify_allocation_with_arg(h, size, alignment, chunkfun, freefun, arg) \
    wb_obstack_begin_1((h), (size), (alignment), (void *(*)(void *, size_t))(chunkfun), \
                       (void (*)(void *, void *))(freefun), (arg))
/* Replace the functions; of the kind the obstack was set up with (with or without arg). */
#define obstack_chunkfun(h, fun) wb_obstack_set_chunkfun((h), (void (*)(void))(fun))
#define obstack_freefun(h, fun) wb_obstack_set_freefun((h), (void (*)(void))(fun))

/* Whole objects. */
#define obstack_alloc(h, size) wb_obstack_alloc((h), (size))
#define obstack_copy(h, addr, size) wb_obstack_copy((h), (addr), (size))
#define obstack_copy0(h, addr, size) wb_obstack_copy0((h), (addr), (size))
#define obstack_free(h, obj) wb_obstack_free((h), (obj))

/* Growing objects. */
#define obstack_blank(h, size) wb_obstack_blank((h), (size))
#define obstack_grow(h, data, size) wb_obstack_grow((h), (data), (size))
#define obstack_grow0(h, data, size) wb_obstack_grow0((h), (data), (size))
#define obstack_1grow(h, c) wb_obstack_1grow((h), (c))
#define obstack_ptr_grow(h, ptr) wb_obstack_ptr_grow((h), (ptr))
#define obstack_int_grow(h, n) wb_obstack_int_grow((h), (n))
#define obstack_finish(h) wb_obstack_finish(h)
#define obstack_make_room(h, size) ((void)wb_obstack_make_room((h), (size)))

/* Growing without the room check: the caller made sure of obstack_room first. */
#define obstack_1grow_fast(h, c) wb_obstack_1grow_fast((h), (c))
#define obstack_ptr_grow_fast(h, ptr) wb_obstack_ptr_grow_fast((h), (ptr))
#define obstack_int_grow_fast(h, n) wb_obstack_int_grow_fast((h), (n))
#define obstack_blank_fast(h, n) wb_obstack_blank_fast((h), (n))

/* Status. obstack_chunk_size and obstack_alignment_mask may be assigned to. */
#define obstack_base(h) ((void *)(h)->object_base)
#define obstack_next_free(h) ((void *)(h)->next_free)
#define obstack_object_size(h) ((size_t)((h)->next_free - (h)->object_base))
#define obstack_room(h) ((size_t)((h)->chunk_limit - (h)->next_free))
#define obstack_chunk_size(h) ((h)->chunk_size)
#define obstack_alignment_mask(h) ((h)->alignment_mask)
#define obstack_memory_used(h) wb_obstack_memory_used(h)
#define obstack_empty_p(h) wb_obstack_empty_p(h)

#ifdef __cplusplus
}
#endif

#endif /* WILDEBEEST_OBSTACK_H */
