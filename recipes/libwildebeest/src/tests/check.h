/* libwildebeest: what the tests share: check() counts, and names what failed. */
#ifndef WILDEBEEST_TEST_CHECK_H
#define WILDEBEEST_TEST_CHECK_H

#include <stdio.h>

static int n, failures;

static void check(int ok, const char *what)
{
    n++;
    if (!ok) {
        failures++;
        printf("FAIL %s\n", what);
    }
}

#endif
