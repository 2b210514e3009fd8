/* libwildebeest: parse_printf_format against glibc's results. The table is what glibc 2.36 gives
 * on x86_64 (an entry of -7: a position the format does not name, left as it was); on a glibc
 * host the test also asks glibc itself, so a difference names which of the two moved. */

#include <stdio.h>
#include <string.h>

#include <printf.h>

#ifdef __GLIBC__
size_t (parse_printf_format)(const char *fmt, size_t n, int *argtypes); /* glibc's own */
#endif

#define MAXARGS 16

struct expect {
    const char *fmt;
    size_t count;
    int types[MAXARGS];
};

static const struct expect table[] = {
    {"", 0, {}},
    {"plain", 0, {}},
    {"%%", 0, {}},
    {"%m", 0, {}},
    {"%d", 1, {0}},
    {"%i %o %u %x %X", 5, {0, 0, 0, 0, 0}},
    {"%hhd", 1, {1}},
    {"%hd", 1, {1024}},
    {"%ld", 1, {512}},
    {"%lld", 1, {512}},
    {"%qd", 1, {0}},
    {"%Ld", 1, {0}},
    {"%jd", 1, {512}},
    {"%zu", 1, {512}},
    {"%Zd", 1, {512}},
    {"%td", 1, {512}},
    {"%c", 1, {1}},
    {"%lc", 1, {1}},
    {"%C", 1, {2}},
    {"%s", 1, {3}},
    {"%ls", 1, {3}},
    {"%S", 1, {4}},
    {"%p", 1, {5}},
    {"%n", 1, {2048}},
    {"%hn", 1, {2048}},
    {"%hhn", 1, {2048}},
    {"%ln", 1, {2048}},
    {"%f", 1, {7}},
    {"%lf", 1, {7}},
    {"%Lf", 1, {263}},
    {"%e %E %g %G %a %A %F", 7, {7, 7, 7, 7, 7, 7, 7}},
    {"%*d", 2, {0, 0}},
    {"%-*.*s", 3, {0, 0, 3}},
    {"%.*f", 2, {0, 7}},
    {"%5.2Lf", 1, {263}},
    {"%'d", 1, {0}},
    {"%#x", 1, {0}},
    {"%+ 08.3d", 1, {0}},
    {"%1$s %2$d", 2, {3, 0}},
    {"%2$d %1$s", 2, {3, 0}},
    {"%2$*1$d", 2, {0, 0}},
    {"%1$s %1$s", 1, {3}},
    {"%3$d", 3, {-7, -7, 0}},
    {"%1$*2$.*3$d", 3, {0, 0, 0}},
    {"%hhu %hhx", 2, {1, 1}},
    {"%llu%%%s", 2, {512, 3}},
    {"%I d", 1, {0}},
    {"%5%", 0, {}},
    {"%y", 0, {}},
    {"trailing %", 0, {}},
    {"%l", 0, {}},
    {"%hhhd", 0, {}},
    {"%llld", 0, {}},
    {"%Lg", 1, {263}},
    {"%qu", 1, {0}},
    {"%lu %lx", 2, {512, 512}},
    {"%hhs", 1, {3}},
    {"%jn", 1, {2048}},
    {"%zx", 1, {512}},
    {"%ll", 0, {}},
    {"%1$d %3$d", 3, {0, -7, 0}},
    {"%*1$d", 1, {0}},
    {"%.3s", 1, {3}},
    {"%-5c", 1, {1}},
    {"%hc", 1, {1}},
    {"%hs", 1, {3}},
    {"%Lc", 1, {1}},
    {"%Ls", 1, {3}},
    {"%lp", 1, {5}},
    {"%hf", 1, {7}},
    {"%Ls", 1, {3}},
    {"%llf", 1, {263}},
    {"%qf", 1, {263}},
    {"%hhf", 1, {7}},
    {"%jf", 1, {7}},
    {"%zf", 1, {7}},
    {"%Lp", 1, {5}},
    {"%qs", 1, {3}},
    {"%jc", 1, {1}},
};

static int failures;

static int compare(const char *what, const char *fmt, size_t k1, const int *t1, size_t k2, const int *t2)
{
    if (k1 == k2 && memcmp(t1, t2, sizeof(int) * MAXARGS) == 0)
        return 0;
    printf("FAIL %s: \"%s\": count %zu, expected %zu; types", what, fmt, k1, k2);
    for (int i = 0; i < MAXARGS && i < (int)(k1 > k2 ? k1 : k2); i++)
        printf(" %d/%d", t1[i], t2[i]);
    printf("\n");
    return 1;
}

int main(void)
{
    int n = 0;

    for (size_t i = 0; i < sizeof(table) / sizeof(*table); i++) {
        const struct expect *e = &table[i];
        int ours[MAXARGS], want[MAXARGS];
        size_t k;

        for (int j = 0; j < MAXARGS; j++)
            ours[j] = want[j] = -7;
        for (size_t j = 0; j < e->count && j < MAXARGS; j++)
            want[j] = e->types[j];
        k = parse_printf_format(e->fmt, MAXARGS, ours);
        failures += compare("table", e->fmt, k, ours, e->count, want);
        n++;
#ifdef __GLIBC__
        {
            int theirs[MAXARGS];
            size_t g;

            for (int j = 0; j < MAXARGS; j++)
                theirs[j] = -7;
            g = (parse_printf_format)(e->fmt, MAXARGS, theirs);
            failures += compare("glibc", e->fmt, k, ours, g, theirs);
            n++;
        }
#endif
    }
    /* n smaller than the count: only the first n types are written. */
    {
        int few[2] = {-7, -7};
        size_t k = parse_printf_format("%d %s %p", 1, few);
        if (k != 3 || few[0] != PA_INT || few[1] != -7) {
            printf("FAIL short array: count %zu, types %d %d\n", k, few[0], few[1]);
            failures++;
        }
        n++;
    }
    printf("printf-test: %d passed, %d failed\n", n - failures, failures);
    return failures != 0;
}
