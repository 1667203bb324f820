/* expect.h - the failure counter and EXPECT of every test (harness.h and runner_harness.h build
 * on it; CPU-only tests include it alone). */
#ifndef ESA_TEST_EXPECT_H
#define ESA_TEST_EXPECT_H

#include <stdio.h>

static int g_failures;

#define EXPECT(cond, ...)                                                                      \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            g_failures++;                                                                      \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                               \
            fprintf(stderr, __VA_ARGS__);                                                      \
            fputc('\n', stderr);                                                               \
        }                                                                                      \
    } while (0)

/* The exit code of a test named name: 1 after any failure. */
static inline int expect_finish(const char *name)
{
    if (g_failures) {
        fprintf(stderr, "%s: %d failures\n", name, g_failures);
        return 1;
    }
    fprintf(stderr, "%s: passed\n", name);
    return 0;
}

#endif
