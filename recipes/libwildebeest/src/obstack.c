/* libwildebeest: obstacks, written from the GNU C Library manual's description of the
   interface; see include/obstack.h. SPDX-License-Identifier: MIT */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "obstack.h"

/* A new chunk's contents when the program asks for no size: a page less malloc's overhead. */
#define DEFAULT_CHUNK_SIZE 4064

/* The strictest alignment a basic type needs (C89's way to ask). */
union wb_max_align {
    long double ld;
    double d;
    long long ll;
    long l;
    void *p;
    void (*f)(void);
};
struct wb_align_probe {
    char c;
    union wb_max_align u;
};
#define DEFAULT_ALIGNMENT offsetof(struct wb_align_probe, u)

static void print_and_exit(void);

void (*obstack_alloc_failed_handler)(void) = print_and_exit;
int obstack_exit_failure = EXIT_FAILURE;

static void print_and_exit(void)
{
    fputs("memory exhausted\n", stderr);
    exit(obstack_exit_failure);
}

static char *align_up(char *p, size_t mask)
{
    return (char *)(((uintptr_t)p + mask) & ~(uintptr_t)mask);
}

/* Where the objects of chunk `c` start. */
static char *contents(const struct obstack *h, struct _obstack_chunk *c)
{
    return align_up((char *)c + sizeof *c, h->alignment_mask);
}

static struct _obstack_chunk *call_chunkfun(struct obstack *h, size_t size)
{
    if (h->use_extra_arg)
        return h->chunkfun.extra(h->extra_arg, size);
    return h->chunkfun.plain(size);
}

static void call_freefun(struct obstack *h, struct _obstack_chunk *c)
{
    if (h->use_extra_arg)
        h->freefun.extra(h->extra_arg, c);
    else
        h->freefun.plain(c);
}

/* A chunk whose contents hold at least `room` bytes, or NULL (after the handler). */
static struct _obstack_chunk *new_chunk(struct obstack *h, size_t room)
{
    struct _obstack_chunk *c = NULL;
    size_t overhead = sizeof *c + h->alignment_mask;
    if (room <= (size_t)-1 - overhead)
        c = call_chunkfun(h, overhead + room);
    if (c == NULL) {
        h->alloc_failed = 1;
        obstack_alloc_failed_handler();
        return NULL;
    }
    c->limit = (char *)c + overhead + room;
    return c;
}

static int begin(struct obstack *h, size_t size, size_t alignment)
{
    struct _obstack_chunk *c;
    if (alignment == 0)
        alignment = DEFAULT_ALIGNMENT;
    if (alignment & (alignment - 1))  /* not a power of two: round up to one */
        while (alignment & (alignment - 1))
            alignment += alignment & -alignment;
    h->alignment_mask = alignment - 1;
    h->chunk_size = size ? size : DEFAULT_CHUNK_SIZE;
    h->maybe_empty_object = 0;
    h->alloc_failed = 0;
    h->chunk = NULL;
    c = new_chunk(h, h->chunk_size);
    if (c == NULL)
        return 0;
    c->prev = NULL;
    h->chunk = c;
    h->object_base = h->next_free = contents(h, c);
    h->chunk_limit = c->limit;
    return 1;
}

int wb_obstack_begin(struct obstack *h, size_t size, size_t alignment,
                     void *(*chunkfun)(size_t), void (*freefun)(void *))
{
    h->chunkfun.plain = chunkfun;
    h->freefun.plain = freefun;
    h->extra_arg = NULL;
    h->use_extra_arg = 0;
    return begin(h, size, alignment);
}

int wb_obstack_begin_1(struct obstack *h, size_t size, size_t alignment,
                       void *(*chunkfun)(void *, size_t), void (*freefun)(void *, void *), void *arg)
{
    h->chunkfun.extra = chunkfun;
    h->freefun.extra = freefun;
    h->extra_arg = arg;
    h->use_extra_arg = 1;
    return begin(h, size, alignment);
}

/* The function comes as void (*)(void), C's generic function pointer; it is of the kind the
   obstack was set up with, and is called only as that. */
void wb_obstack_set_chunkfun(struct obstack *h, void (*fun)(void))
{
    if (h->use_extra_arg)
        h->chunkfun.extra = (void *(*)(void *, size_t))fun;
    else
        h->chunkfun.plain = (void *(*)(size_t))fun;
}

void wb_obstack_set_freefun(struct obstack *h, void (*fun)(void))
{
    if (h->use_extra_arg)
        h->freefun.extra = (void (*)(void *, void *))fun;
    else
        h->freefun.plain = (void (*)(void *))fun;
}

/* Make room for `length` more bytes of the growing object, moving it to a new chunk if need
   be. Returns 0 when no memory could be had (the object is then unchanged). */
int wb_obstack_make_room(struct obstack *h, size_t length)
{
    struct _obstack_chunk *old = h->chunk, *c;
    size_t size = (size_t)(h->next_free - h->object_base), room;
    char *base;
    if ((size_t)(h->chunk_limit - h->next_free) >= length)
        return 1;
    if (length > (size_t)-1 / 2 - size)
        room = (size_t)-1;  /* cannot be had: new_chunk fails */
    else
        room = size + length + size / 8 + 100;  /* leave room to grow further */
    if (room < h->chunk_size)
        room = h->chunk_size;
    c = new_chunk(h, room);
    if (c == NULL)
        return 0;
    base = contents(h, c);
    if (size)
        memcpy(base, h->object_base, size);
    /* The old chunk can go if the growing object was all it held: nothing else points in it. */
    if (!h->maybe_empty_object && h->object_base == contents(h, old)) {
        c->prev = old->prev;
        call_freefun(h, old);
    } else {
        c->prev = old;
    }
    h->chunk = c;
    h->object_base = base;
    h->next_free = base + size;
    h->chunk_limit = c->limit;
    h->maybe_empty_object = 0;
    return 1;
}

void wb_obstack_blank(struct obstack *h, ptrdiff_t length)
{
    if (length < 0) {
        wb_obstack_blank_fast(h, length);
        return;
    }
    if (wb_obstack_make_room(h, (size_t)length))
        h->next_free += length;
}

void wb_obstack_grow(struct obstack *h, const void *data, size_t length)
{
    if (!wb_obstack_make_room(h, length))
        return;
    if (length)
        memcpy(h->next_free, data, length);
    h->next_free += length;
}

void wb_obstack_grow0(struct obstack *h, const void *data, size_t length)
{
    if (length == (size_t)-1 || !wb_obstack_make_room(h, length + 1))
        return;
    if (length)
        memcpy(h->next_free, data, length);
    h->next_free += length;
    *h->next_free++ = '\0';
}

void wb_obstack_1grow(struct obstack *h, int c)
{
    if (wb_obstack_make_room(h, 1))
        *h->next_free++ = (char)c;
}

void wb_obstack_ptr_grow(struct obstack *h, const void *ptr)
{
    if (wb_obstack_make_room(h, sizeof ptr))
        wb_obstack_ptr_grow_fast(h, ptr);
}

void wb_obstack_int_grow(struct obstack *h, int n)
{
    if (wb_obstack_make_room(h, sizeof n))
        wb_obstack_int_grow_fast(h, n);
}

void wb_obstack_1grow_fast(struct obstack *h, int c)
{
    *h->next_free++ = (char)c;
}

void wb_obstack_ptr_grow_fast(struct obstack *h, const void *ptr)
{
    memcpy(h->next_free, &ptr, sizeof ptr);
    h->next_free += sizeof ptr;
}

void wb_obstack_int_grow_fast(struct obstack *h, int n)
{
    memcpy(h->next_free, &n, sizeof n);
    h->next_free += sizeof n;
}

/* Negative lengths shrink the growing object, never past its start. */
void wb_obstack_blank_fast(struct obstack *h, ptrdiff_t length)
{
    if (length < 0 && (size_t)-length > (size_t)(h->next_free - h->object_base))
        h->next_free = h->object_base;
    else
        h->next_free += length;
}

void *wb_obstack_finish(struct obstack *h)
{
    char *object = h->object_base;
    if (h->next_free == object)
        h->maybe_empty_object = 1;  /* its address may be passed to obstack_free later */
    h->next_free = align_up(h->next_free, h->alignment_mask);
    if (h->next_free > h->chunk_limit)
        h->next_free = h->chunk_limit;
    h->object_base = h->next_free;
    return object;
}

void *wb_obstack_alloc(struct obstack *h, size_t size)
{
    if (!wb_obstack_make_room(h, size))
        return NULL;
    h->next_free += size;
    return wb_obstack_finish(h);
}

void *wb_obstack_copy(struct obstack *h, const void *data, size_t size)
{
    if (!wb_obstack_make_room(h, size))
        return NULL;
    if (size)
        memcpy(h->next_free, data, size);
    h->next_free += size;
    return wb_obstack_finish(h);
}

void *wb_obstack_copy0(struct obstack *h, const void *data, size_t size)
{
    if (size == (size_t)-1 || !wb_obstack_make_room(h, size + 1))
        return NULL;
    wb_obstack_grow0(h, data, size);
    return wb_obstack_finish(h);
}

/* Free `obj` and everything allocated after it; NULL frees everything (the obstack must then
   be set up again before use). An `obj` this obstack never gave out is a fatal error. */
void wb_obstack_free(struct obstack *h, void *obj)
{
    char *p = obj;
    struct _obstack_chunk *c = h->chunk;
    while (c != NULL && !(p != NULL && p >= contents(h, c) && p <= c->limit)) {
        struct _obstack_chunk *prev = c->prev;
        call_freefun(h, c);
        c = prev;
        /* What the chunk now current holds is not known: it may begin with an empty object. */
        h->maybe_empty_object = 1;
    }
    h->chunk = c;
    if (c != NULL) {
        h->object_base = h->next_free = p;
        h->chunk_limit = c->limit;
    } else if (p != NULL) {
        fputs("obstack_free: the object is not in this obstack\n", stderr);
        abort();
    } else {
        h->object_base = h->next_free = h->chunk_limit = NULL;
    }
}

size_t wb_obstack_memory_used(struct obstack *h)
{
    size_t total = 0;
    struct _obstack_chunk *c;
    for (c = h->chunk; c != NULL; c = c->prev)
        total += (size_t)(c->limit - (char *)c);
    return total;
}

int wb_obstack_empty_p(struct obstack *h)
{
    return h->chunk == NULL
        || (h->chunk->prev == NULL && h->next_free == contents(h, h->chunk));
}
