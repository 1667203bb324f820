/* runner_harness.h - shared by the esa_runner tests: checks that count failures, the loud skip,
 * and where the real model file is (ESA_MODEL, else models/<name> under the source tree). */
#ifndef ESA_RUNNER_HARNESS_H
#define ESA_RUNNER_HARNESS_H

#include "status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SKIP_CODE 77 /* CTest's SKIP_RETURN_CODE */
#define DEFAULT_MODEL "models/SmolLM2-135M-Instruct.Q4_1.gguf"

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

/* A call that must succeed; prints the runner's message when it does not. */
#define EXPECT_OK(call, errp)                                                                  \
    do {                                                                                       \
        esar_status s_ = (call);                                                               \
        EXPECT(s_ == ESAR_OK, "%s: %s: %s", #call, esar_status_string(s_), (errp)->msg);       \
    } while (0)

/* The model path: $ESA_MODEL, else DEFAULT_MODEL under source_dir. Returns NULL (after saying
 * so) when the file is not there; the caller then skips. */
static inline const char *runner_model_path(const char *source_dir, char *buf, size_t n)
{
    const char *env = getenv("ESA_MODEL");
    if (env && *env)
        snprintf(buf, n, "%s", env);
    else
        snprintf(buf, n, "%s/%s", source_dir, DEFAULT_MODEL);
    FILE *f = fopen(buf, "rb");
    if (!f) {
        fprintf(stderr, "SKIP: model file '%s' not found (set ESA_MODEL, or place it there; see "
                        "tools/ref/README.md)\n", buf);
        return NULL;
    }
    fclose(f);
    return buf;
}

static inline int runner_finish(const char *name)
{
    if (g_failures) {
        fprintf(stderr, "%s: %d failures\n", name, g_failures);
        return 1;
    }
    fprintf(stderr, "%s: passed\n", name);
    return 0;
}

#endif
