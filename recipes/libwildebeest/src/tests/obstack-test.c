/* libwildebeest: obstack tests, as a program using <obstack.h> would. `make check` runs it. */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <obstack.h>

static void *counted_alloc(size_t n);
static void counted_free(void *p);

#define obstack_chunk_alloc counted_alloc
#define obstack_chunk_free counted_free

static int live_chunks, checks, failures;

static void *counted_alloc(size_t n)
{
    void *p = malloc(n);
    if (p)
        live_chunks++;
    return p;
}

static void counted_free(void *p)
{
    live_chunks--;
    free(p);
}

#define CHECK(cond) check((cond), #cond, __LINE__)

static void check(int ok, const char *what, int line)
{
    checks++;
    if (!ok) {
        failures++;
        printf("FAIL line %d: %s\n", line, what);
    }
}

static int aligned(void *p)
{
    return ((uintptr_t)p & (sizeof(long double) > 8 ? 15 : 7)) == 0;
}

static void test_alloc_and_free(void)
{
    struct obstack o;
    char *a, *b, *c;
    int i;
    CHECK(obstack_init(&o) == 1);
    CHECK(live_chunks == 1);
    CHECK(obstack_empty_p(&o));
    a = obstack_alloc(&o, 3);
    b = obstack_copy0(&o, "hello", 5);
    CHECK(aligned(a) && aligned(b));
    CHECK(b > a && strcmp(b, "hello") == 0);
    CHECK(!obstack_empty_p(&o));
    /* Objects past a chunk's size land in new chunks; earlier ones stay where they were. */
    for (i = 0; i < 100; i++) {
        c = obstack_alloc(&o, 1000);
        CHECK(aligned(c));
        memset(c, i, 1000);
    }
    CHECK(live_chunks > 1);
    CHECK(strcmp(b, "hello") == 0);
    CHECK(obstack_memory_used(&o) >= 100 * 1000);
    /* Freeing b frees everything after it, and the chunks that held only that. */
    obstack_free(&o, b);
    CHECK(live_chunks == 1);
    CHECK(obstack_base(&o) == (void *)b && obstack_object_size(&o) == 0);
    c = obstack_copy(&o, "xy", 2);
    CHECK(c == b && memcmp(c, "xy", 2) == 0);
    obstack_free(&o, NULL);
    CHECK(live_chunks == 0);
}

static void test_growing(void)
{
    struct obstack o;
    char *s, *first, **ptrs;
    int *ints, i, n = 5000;
    obstack_begin(&o, 64);  /* small chunks: growing objects must move between them */
    first = obstack_copy0(&o, "first", 5);
    for (i = 0; i < n; i++)
        obstack_1grow(&o, 'a' + i % 26);
    obstack_grow0(&o, "!", 1);
    CHECK(obstack_object_size(&o) == (size_t)n + 2);
    s = obstack_finish(&o);
    CHECK(strlen(s) == (size_t)n + 1 && s[0] == 'a' && s[n - 1] == 'a' + (n - 1) % 26 && s[n] == '!');
    CHECK(strcmp(first, "first") == 0);
    /* An array of pointers, grown one at a time. */
    for (i = 0; i < 100; i++)
        obstack_ptr_grow(&o, s + i);
    obstack_ptr_grow(&o, NULL);
    ptrs = obstack_finish(&o);
    CHECK(aligned(ptrs) && ptrs[0] == s && ptrs[99] == s + 99 && ptrs[100] == NULL);
    for (i = 0; i < 1000; i++)
        obstack_int_grow(&o, i * 7);
    CHECK(obstack_object_size(&o) == 1000 * sizeof(int));
    ints = obstack_finish(&o);
    CHECK(ints[0] == 0 && ints[999] == 999 * 7);
    /* blank reserves, a negative blank_fast gives back, grow appends after what is left. */
    obstack_blank(&o, 10);
    obstack_blank_fast(&o, -4);
    CHECK(obstack_object_size(&o) == 6);
    memcpy(obstack_base(&o), "abcdef", 6);
    obstack_grow(&o, "gh", 2);
    obstack_1grow(&o, 0);
    CHECK(strcmp(obstack_finish(&o), "abcdefgh") == 0);
    /* The fast variants, after making room. */
    obstack_make_room(&o, 300);
    CHECK(obstack_room(&o) >= 300);
    for (i = 0; i < 300; i++)
        obstack_1grow_fast(&o, 'z');
    CHECK(obstack_object_size(&o) == 300);
    s = obstack_finish(&o);
    CHECK(s[0] == 'z' && s[299] == 'z');
    /* An empty object is a valid place to free back to, even after chunks came and went. */
    s = obstack_finish(&o);
    for (i = 0; i < 50; i++)
        obstack_alloc(&o, 100);
    obstack_free(&o, s);
    CHECK(obstack_object_size(&o) == 0 && obstack_base(&o) == (void *)s);
    CHECK(strcmp(first, "first") == 0);
    obstack_free(&o, NULL);
    CHECK(live_chunks == 0);
}

static void test_alignment(void)
{
    struct obstack o;
    char *p;
    int i;
    obstack_specify_allocation(&o, 0, 64, counted_alloc, counted_free);
    CHECK(obstack_alignment_mask(&o) == 63);
    for (i = 1; i < 20; i++) {
        p = obstack_alloc(&o, (size_t)i * 13);
        CHECK(((uintptr_t)p & 63) == 0);
    }
    obstack_alignment_mask(&o) = 0;  /* byte-packed from here on */
    p = obstack_alloc(&o, 1);
    CHECK(obstack_next_free(&o) == (void *)(p + 1));
    obstack_free(&o, NULL);
    CHECK(live_chunks == 0);
}

struct arena {
    int allocs, frees;
};

static void *arena_alloc(void *arg, size_t n)
{
    ((struct arena *)arg)->allocs++;
    return malloc(n);
}

static void arena_free(void *arg, void *p)
{
    ((struct arena *)arg)->frees++;
    free(p);
}

static void test_with_arg(void)
{
    struct obstack o;
    struct arena a = {0, 0};
    int i;
    obstack_specify_allocation_with_arg(&o, 128, 0, arena_alloc, arena_free, &a);
    for (i = 0; i < 20; i++)
        obstack_alloc(&o, 100);
    CHECK(a.allocs > 1);
    obstack_free(&o, NULL);
    CHECK(a.frees == a.allocs);
}

static int handler_calls;

static void *failing_alloc(size_t n)
{
    (void)n;
    return NULL;
}

static void note_failure(void)
{
    handler_calls++;
}

static void test_failure(void)
{
    struct obstack o;
    void (*saved)(void) = obstack_alloc_failed_handler;
    CHECK(obstack_init(&o) == 1);
    obstack_chunkfun(&o, failing_alloc);  /* the next chunk cannot be had */
    obstack_alloc_failed_handler = note_failure;
    CHECK(obstack_alloc(&o, 100000) == NULL);
    CHECK(handler_calls == 1 && o.alloc_failed);
    obstack_alloc_failed_handler = saved;
    obstack_chunkfun(&o, counted_alloc);
    CHECK(obstack_alloc(&o, 100000) != NULL);
    obstack_free(&o, NULL);
    CHECK(live_chunks == 0);
}

int main(void)
{
    test_alloc_and_free();
    test_growing();
    test_alignment();
    test_with_arg();
    test_failure();
    printf("obstack-test: %d passed, %d failed\n", checks - failures, failures);
    return failures != 0;
}
