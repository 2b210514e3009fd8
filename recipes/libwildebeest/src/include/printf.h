/* libwildebeest: <printf.h>, glibc's parse_printf_format (the GNU C Library manual, "Parsing a
 * Template String"): the type of each argument a printf format takes, with glibc's values. */
#ifndef WILDEBEEST_PRINTF_H
#define WILDEBEEST_PRINTF_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    PA_INT,       /* int */
    PA_CHAR,      /* int, cast to char */
    PA_WCHAR,     /* wide char */
    PA_STRING,    /* const char *, a '\0'-terminated string */
    PA_WSTRING,   /* const wchar_t *, a wide character string */
    PA_POINTER,   /* void * */
    PA_FLOAT,     /* float */
    PA_DOUBLE,    /* double */
    PA_LAST
};

#define PA_FLAG_MASK        0xff00
#define PA_FLAG_LONG_LONG   (1 << 8)
#define PA_FLAG_LONG_DOUBLE PA_FLAG_LONG_LONG
#define PA_FLAG_LONG        (1 << 9)
#define PA_FLAG_SHORT       (1 << 10)
#define PA_FLAG_PTR         (1 << 11)

/* Writes the type of each of the first n arguments `fmt` takes to argtypes; returns how many
 * arguments it takes in all (with positional arguments: the highest position). */
size_t wildebeest_parse_printf_format(const char *fmt, size_t n, int *argtypes);
#define parse_printf_format(fmt, n, argtypes) wildebeest_parse_printf_format(fmt, n, argtypes)

#ifdef __cplusplus
}
#endif

#endif
