/* harness.h - shared by the GPU tests: a validated context (or a loud skip), a seeded PRNG,
 * normalized-error comparison, and the checks every test ends with. */
#ifndef ESA_TEST_HARNESS_H
#define ESA_TEST_HARNESS_H

#include "expect.h"
#include "esa.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SKIP_CODE 77 /* CTest's SKIP_RETURN_CODE */


#define EXPECT_STATUS(call, want)                                                              \
    do {                                                                                       \
        esa_status s_ = (call);                                                                \
        EXPECT(s_ == (want), "%s returned %s, wanted %s", #call, esa_status_string(s_),       \
               esa_status_string(want));                                                       \
    } while (0)

/* The kernel variants the tests ask for: ESA_TEST_TUNING=cpu or gpu (ctest runs the GPU tests
 * once more with gpu, so that the GPU variants run on lavapipe too), else AUTO. Anything else
 * ends the test: a typo must not quietly test the default. */
static esa_tuning harness_tuning(void)
{
    const char *env = getenv("ESA_TEST_TUNING");
    if (!env || !*env)
        return ESA_TUNING_AUTO;
    if (!strcmp(env, "cpu"))
        return ESA_TUNING_CPU;
    if (!strcmp(env, "gpu"))
        return ESA_TUNING_GPU;
    fprintf(stderr, "FAIL: ESA_TEST_TUNING=%s (cpu or gpu)\n", env);
    exit(1);
}

/* A context on the default device with the validation layer on, with harness_tuning's kernel
 * variants; exits with the skip code (after saying so) when the machine has no Vulkan device. */
static esa_context *harness_context(void)
{
    esa_context_desc desc = {.enable_validation = 1, .print_validation = 1, .tuning = harness_tuning()};
    esa_context *ctx = NULL;
    esa_status s = esa_context_create(&desc, &ctx);
    if (s == ESA_ERROR_NO_DEVICE || s == ESA_ERROR_DEVICE_UNSUPPORTED) {
        fprintf(stderr, "SKIP: no usable Vulkan device (%s)\n", esa_status_string(s));
        exit(SKIP_CODE);
    }
    if (s != ESA_SUCCESS) {
        fprintf(stderr, "FAIL: esa_context_create: %s\n", esa_status_string(s));
        exit(1);
    }
    if (esa_context_validation_count(ctx) == UINT32_MAX) {
        fprintf(stderr, "FAIL: VK_LAYER_KHRONOS_validation is not installed\n");
        exit(1);
    }
    esa_device_info info;
    esa_context_device_info(ctx, &info);
    fprintf(stderr, "device: %s (%s), subgroup %u, %s kernels\n", info.name, info.driver_info,
            info.subgroup_size, esa_context_tuning(ctx) == ESA_TUNING_CPU ? "cpu" : "gpu");
    return ctx;
}

/* Ends a test: destroys the context, demands zero validation messages and no failures. */
static int harness_finish(esa_context *ctx, const char *name)
{
    uint32_t v = esa_context_validation_count(ctx);
    EXPECT(v == 0, "%u validation messages", v);
    esa_context_destroy(ctx);
    return expect_finish(name);
}

/* A cache of desc, or NULL after a failure; with a (not NULL) and compressed scores, every
 * layer's matrices are set from a [n_layers][d' x H*d] and b [n_layers][d' x G*d]. */
static inline esa_cache *harness_cache(esa_context *ctx, esa_cache_desc d, const float *a, const float *b)
{
    esa_cache *c = NULL;
    esa_status s = esa_cache_create(ctx, &d, &c);
    EXPECT(s == ESA_SUCCESS, "esa_cache_create: %s: %s", esa_status_string(s), esa_context_last_error(ctx));
    if (!c || !a || d.score_mode != ESA_SCORES_COMPRESSED)
        return c;
    esa_cache_get_desc(c, &d);
    size_t na = (size_t)d.compress_dim * d.n_heads * d.head_dim, nb = (size_t)d.compress_dim * d.n_kv_heads * d.head_dim;
    for (uint32_t l = 0; l < d.n_layers; l++)
        EXPECT_STATUS(esa_cache_set_compression(c, l, a + l * na, b + l * nb), ESA_SUCCESS);
    return c;
}

/* esa-vk's file header hash (src/bytes.h: FNV-1a over little-endian 64-bit words) of h's
 * first n bytes, written after them: for tests that forge a valid header. */
static inline void harness_rehash(uint8_t *h, size_t n)
{
    uint64_t x = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i += 8) {
        uint64_t w = 0;
        for (int j = 7; j >= 0; j--)
            w = w << 8 | h[i + (size_t)j];
        x = (x ^ w) * 0x100000001b3ull;
    }
    for (int j = 0; j < 8; j++)
        h[n + (size_t)j] = (uint8_t)(x >> (8 * j));
}

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static void rng_seed(uint64_t s) { g_rng = s * 0x9e3779b97f4a7c15ull + 1; }
static uint64_t rng_u64(void)
{
    uint64_t z = (g_rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static float rng_uniform(void) { return (float)((rng_u64() >> 40) * (1.0 / 16777216.0)); }
static float rng_normal(void)
{
    float u = rng_uniform() + 1e-7f, v = rng_uniform();
    return sqrtf(-2.0f * logf(u)) * cosf(6.2831853f * v);
}
static void fill_normal(float *x, size_t n, float scale)
{
    for (size_t i = 0; i < n; i++)
        x[i] = scale * rng_normal();
}

/* max |a - b| / max(max |b|, tiny), and the first index whose error exceeds tol (or -1). */
static inline double norm_error(const float *a, const float *b, size_t n, double tol, long *first_bad)
{
    double mx = 1e-30, err = 0.0;
    for (size_t i = 0; i < n; i++)
        mx = fmax(mx, fabs((double)b[i]));
    *first_bad = -1;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - (double)b[i]) / mx;
        if (!(e <= tol) && *first_bad < 0)
            *first_bad = (long)i;
        if (!(e <= err))
            err = isnan(e) ? INFINITY : e;
    }
    return err;
}

#endif
