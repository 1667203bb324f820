/* model_path.h - where the tests find the real model file: $ESA_MODEL, else models/<name> under
 * the source tree. Its own header so that tests on either harness (runner_harness.h for the CPU
 * runner, rgpu_harness.h for the GPU one) can use it. */
#ifndef ESA_MODEL_PATH_H
#define ESA_MODEL_PATH_H

#include <stdio.h>
#include <stdlib.h>

#define DEFAULT_MODEL "models/SmolLM2-135M-Instruct.Q4_1.gguf"

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

#endif
