/* libwildebeest: parse_printf_format, written from the GNU C Library manual and glibc's observed
 * results (tests/printf-test.c compares the two on the host). */

#include <stdint.h>

#include "printf.h"

/* Reads a decimal number at *p (advancing it); -1 when there is none. */
static long number(const char **p)
{
    long v = -1;

    while (**p >= '0' && **p <= '9') {
        v = (v < 0 ? 0 : v) * 10 + (**p - '0');
        if (v > 100000) /* no more arguments than that, whatever the digits say */
            v = 100000;
        (*p)++;
    }
    return v;
}

/* A positional reference `N$` at *p: N, advancing past it; 0 when there is none. */
static long position(const char **p)
{
    const char *q = *p;
    long v = number(&q);

    if (v > 0 && *q == '$') {
        *p = q + 1;
        return v;
    }
    return 0;
}

struct parse {
    size_t n, next, most;
    int *types;
};

static void take(struct parse *ps, long pos, int type)
{
    size_t i = pos > 0 ? (size_t)pos - 1 : ps->next++;

    if (i < ps->n)
        ps->types[i] = type;
    if (i + 1 > ps->most)
        ps->most = i + 1;
}

/* A width or precision: digits, or `*` (an int argument, maybe positional `*N$`). */
static void field(struct parse *ps, const char **p)
{
    if (**p == '*') {
        (*p)++;
        take(ps, position(p), PA_INT);
    } else {
        number(p);
    }
}

size_t wildebeest_parse_printf_format(const char *fmt, size_t n, int *argtypes)
{
    struct parse ps = {n, 0, 0, argtypes};
    const char *p = fmt;

    while (*p) {
        long pos;
        int is_char = 0, is_short = 0, is_long = 0, is_long_double = 0, type;

        if (*p++ != '%')
            continue;
        if (*p == '%') {
            p++;
            continue;
        }
        pos = position(&p);
        while (*p == '-' || *p == '+' || *p == ' ' || *p == '#' || *p == '0' || *p == '\'' || *p == 'I')
            p++;
        field(&ps, &p); /* the width */
        if (*p == '.') {
            p++;
            field(&ps, &p); /* the precision */
        }
        /* One size modifier, as glibc reads it: `hhh` is hh and a conversion `h`. */
        switch (*p) {
        case 'h':
            p++;
            if (*p == 'h') {
                p++;
                is_char = 1;
            } else {
                is_short = 1;
            }
            break;
        case 'l':
            p++;
            is_long = 1;
            if (*p == 'l') {
                p++;
                is_long_double = 1;
            }
            break;
        case 'L': case 'q':
            p++;
            is_long_double = 1;
            break;
        case 'j':
            p++;
            is_long = sizeof(intmax_t) > sizeof(int);
            is_long_double = sizeof(intmax_t) > sizeof(long);
            break;
        case 'z': case 'Z':
            p++;
            is_long = sizeof(size_t) > sizeof(int);
            is_long_double = sizeof(size_t) > sizeof(long);
            break;
        case 't':
            p++;
            is_long = sizeof(ptrdiff_t) > sizeof(int);
            is_long_double = sizeof(ptrdiff_t) > sizeof(long);
            break;
        }
        switch (*p) {
        case 'd': case 'i': case 'o': case 'u': case 'x': case 'X':
            /* Where long long is as wide as long (LP64), `ll`, `L` and `q` say nothing more. */
            type = is_long_double && sizeof(long long) > sizeof(long) ? PA_INT | PA_FLAG_LONG_LONG
                 : is_long ? PA_INT | PA_FLAG_LONG : is_short ? PA_INT | PA_FLAG_SHORT : is_char ? PA_CHAR : PA_INT;
            break;
        case 'e': case 'E': case 'f': case 'F': case 'g': case 'G': case 'a': case 'A':
            type = is_long_double ? PA_DOUBLE | PA_FLAG_LONG_DOUBLE : PA_DOUBLE;
            break;
        case 'c': /* %lc too, as glibc says */
            type = PA_CHAR;
            break;
        case 'C':
            type = PA_WCHAR;
            break;
        case 's': /* %ls too */
            type = PA_STRING;
            break;
        case 'S':
            type = PA_WSTRING;
            break;
        case 'p':
            type = PA_POINTER;
            break;
        case 'n':
            type = PA_INT | PA_FLAG_PTR;
            break;
        default: /* %m, or a conversion glibc does not know: no argument */
            type = -1;
        }
        if (*p)
            p++;
        if (type >= 0)
            take(&ps, pos, type);
    }
    return ps.most;
}
