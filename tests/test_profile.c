/* test_profile.c - timestamps split a step into its stages (and only the stages it ran), the
 * memory accounting follows the caches' buffers, and the bandwidth probe measures something. */
#include "harness.h"

#include <math.h>
#include <string.h>

static double stage_sum(const esa_profile *p)
{
    double s = 0.0;
    for (int i = 0; i < ESA_STAGE_COUNT; i++)
        s += p->stage_ms[i];
    return s;
}

static void test_memory(esa_context *ctx)
{
    esa_memory_usage u0, u1, u2;
    EXPECT_STATUS(esa_context_memory_usage(NULL, &u0), ESA_ERROR_INVALID_ARGUMENT);
    EXPECT_STATUS(esa_context_memory_usage(ctx, NULL), ESA_ERROR_INVALID_ARGUMENT);
    EXPECT_STATUS(esa_context_memory_usage(ctx, &u0), ESA_SUCCESS);
    esa_cache_desc d = {.n_layers = 3, .n_heads = 4, .n_kv_heads = 2, .head_dim = 32, .n_initial = 4,
                        .n_local = 16, .top_k = 8, .chunk = 8, .max_tokens = 4096,
                        .score_mode = ESA_SCORES_EXACT};
    esa_cache *c = NULL;
    EXPECT_STATUS(esa_cache_create(ctx, &d, &c), ESA_SUCCESS);
    EXPECT_STATUS(esa_context_memory_usage(ctx, &u1), ESA_SUCCESS);
    /* K and V of every layer at least: 3 layers x 2 x 4096 tokens x 64 halves */
    uint64_t kv = 3ull * 2 * 4096 * 64 * 2;
    uint64_t grown = (u1.device_local_bytes - u0.device_local_bytes) + (u1.host_visible_bytes - u0.host_visible_bytes);
    EXPECT(u1.device_local_bytes >= u0.device_local_bytes && grown >= kv,
           "a cache with %llu bytes of K/V grew the context's memory by %llu", (unsigned long long)kv,
           (unsigned long long)grown);
    EXPECT(u1.allocations > u0.allocations, "allocations %llu -> %llu", (unsigned long long)u0.allocations,
           (unsigned long long)u1.allocations);
    EXPECT(u1.peak_device_local_bytes >= u1.device_local_bytes, "peak below current");
    esa_cache_destroy(c);
    EXPECT_STATUS(esa_context_memory_usage(ctx, &u2), ESA_SUCCESS);
    EXPECT(u2.device_local_bytes == u0.device_local_bytes && u2.host_visible_bytes == u0.host_visible_bytes &&
               u2.allocations == u0.allocations,
           "after destroy: %llu/%llu bytes, %llu allocations; before create %llu/%llu, %llu",
           (unsigned long long)u2.device_local_bytes, (unsigned long long)u2.host_visible_bytes,
           (unsigned long long)u2.allocations, (unsigned long long)u0.device_local_bytes,
           (unsigned long long)u0.host_visible_bytes, (unsigned long long)u0.allocations);
}

static void test_stages(esa_context *ctx)
{
    EXPECT_STATUS(esa_context_set_profiling(NULL, 1), ESA_ERROR_INVALID_ARGUMENT);
    esa_profile p;
    EXPECT_STATUS(esa_context_get_profile(ctx, NULL, 0), ESA_ERROR_INVALID_ARGUMENT);
    esa_status s = esa_context_set_profiling(ctx, 1);
    if (s == ESA_ERROR_DEVICE_UNSUPPORTED) {
        fprintf(stderr, "SKIP (part): the device has no timestamps: %s\n", esa_context_last_error(ctx));
        return;
    }
    EXPECT_STATUS(s, ESA_SUCCESS);
    enum { H = 4, G = 2, D = 32, P = 200 };
    esa_cache_desc d = {.n_layers = 1, .n_heads = H, .n_kv_heads = G, .head_dim = D, .n_initial = 4,
                        .n_local = 16, .top_k = 8, .chunk = 64, .max_tokens = 512,
                        .score_mode = ESA_SCORES_EXACT};
    esa_cache *c = NULL;
    EXPECT_STATUS(esa_cache_create(ctx, &d, &c), ESA_SUCCESS);
    if (!c)
        return;
    static float k[P * G * D], v[P * G * D], q[H * D], out[H * D];
    fill_normal(k, P * G * D, 1.0f);
    fill_normal(v, P * G * D, 1.0f);
    fill_normal(q, H * D, 1.0f);
    EXPECT_STATUS(esa_append(c, 0, P, ESA_F32, k, v), ESA_SUCCESS);
    EXPECT_STATUS(esa_context_get_profile(ctx, &p, 1), ESA_SUCCESS);
    /* 200 tokens in chunks of 64: four submissions of append + key compression only */
    EXPECT(p.submissions == 4 && p.stage_ms[ESA_STAGE_APPEND] > 0.0 && p.stage_ms[ESA_STAGE_ATTENTION] == 0.0 &&
               p.stage_ms[ESA_STAGE_TOPK] == 0.0,
           "append: %llu submissions, append %.6f ms, attention %.6f ms, topk %.6f ms",
           (unsigned long long)p.submissions, p.stage_ms[ESA_STAGE_APPEND], p.stage_ms[ESA_STAGE_ATTENTION],
           p.stage_ms[ESA_STAGE_TOPK]);

    esa_step_info info;
    EXPECT_STATUS(esa_attend(c, 0, 1, ESA_F32, q, k, v, out, &info), ESA_SUCCESS);
    EXPECT_STATUS(esa_context_get_profile(ctx, &p, 1), ESA_SUCCESS);
    EXPECT(!info.dense && info.n_selected == 8, "the step should select: dense %u, selected %u", info.dense,
           info.n_selected);
    EXPECT(p.submissions == 1, "one step, %llu submissions", (unsigned long long)p.submissions);
    for (int i = 0; i < ESA_STAGE_COUNT; i++)
        EXPECT(p.stage_ms[i] > 0.0, "ESA step: stage %s took %.6f ms", esa_stage_name((esa_stage)i), p.stage_ms[i]);
    EXPECT(fabs(stage_sum(&p) - p.total_ms) <= 1e-6 * p.total_ms + 1e-9, "stages sum to %.6f ms, total %.6f ms",
           stage_sum(&p), p.total_ms);

    EXPECT_STATUS(esa_attend_dense(c, 0, 1, ESA_F32, q, k, v, out, &info), ESA_SUCCESS);
    EXPECT_STATUS(esa_context_get_profile(ctx, &p, 1), ESA_SUCCESS);
    EXPECT(p.submissions == 1 && p.stage_ms[ESA_STAGE_ATTENTION] > 0.0 && p.stage_ms[ESA_STAGE_SCORE] == 0.0 &&
               p.stage_ms[ESA_STAGE_PROXIMITY] == 0.0 && p.stage_ms[ESA_STAGE_TOPK] == 0.0,
           "dense step: %llu submissions, attention %.6f, score %.6f, proximity %.6f, topk %.6f ms",
           (unsigned long long)p.submissions, p.stage_ms[ESA_STAGE_ATTENTION], p.stage_ms[ESA_STAGE_SCORE],
           p.stage_ms[ESA_STAGE_PROXIMITY], p.stage_ms[ESA_STAGE_TOPK]);

    /* off: nothing is measured; selection read-back is a copy, never a step */
    EXPECT_STATUS(esa_context_set_profiling(ctx, 0), ESA_SUCCESS);
    EXPECT_STATUS(esa_attend(c, 0, 1, ESA_F32, q, k, v, out, NULL), ESA_SUCCESS);
    EXPECT_STATUS(esa_context_get_profile(ctx, &p, 0), ESA_SUCCESS);
    EXPECT(p.submissions == 0 && p.total_ms == 0.0, "profiling off: %llu submissions",
           (unsigned long long)p.submissions);
    esa_cache_destroy(c);
}

static void test_probe(esa_context *ctx)
{
    double gbps = -1.0;
    EXPECT_STATUS(esa_context_probe_bandwidth(NULL, 1 << 20, 3, &gbps), ESA_ERROR_INVALID_ARGUMENT);
    EXPECT_STATUS(esa_context_probe_bandwidth(ctx, 1 << 20, 3, NULL), ESA_ERROR_INVALID_ARGUMENT);
    EXPECT_STATUS(esa_context_probe_bandwidth(ctx, 0, 3, &gbps), ESA_ERROR_INVALID_ARGUMENT);
    EXPECT_STATUS(esa_context_probe_bandwidth(ctx, 1 << 20, 0, &gbps), ESA_ERROR_INVALID_ARGUMENT);
    EXPECT_STATUS(esa_context_probe_bandwidth(ctx, ~0ull - 64, 3, &gbps), ESA_ERROR_INVALID_ARGUMENT);
    esa_memory_usage u0, u1;
    esa_context_memory_usage(ctx, &u0);
    esa_status s = esa_context_probe_bandwidth(ctx, 16u << 20, 3, &gbps);
    if (s == ESA_ERROR_DEVICE_UNSUPPORTED)
        return;
    EXPECT_STATUS(s, ESA_SUCCESS);
    EXPECT(isfinite(gbps) && gbps > 0.01 && gbps < 100000.0, "probe: %g GB/s", gbps);
    fprintf(stderr, "read bandwidth probe: %.2f GB/s\n", gbps);
    esa_context_memory_usage(ctx, &u1);
    EXPECT(u1.allocations == u0.allocations && u1.device_local_bytes == u0.device_local_bytes,
           "the probe left %llu allocations behind", (unsigned long long)(u1.allocations - u0.allocations));
}

int main(void)
{
    EXPECT(strcmp(esa_stage_name(ESA_STAGE_TOPK), "topk") == 0 && strcmp(esa_stage_name(ESA_STAGE_COUNT), "?") == 0 &&
               strcmp(esa_stage_name((esa_stage)-1), "?") == 0,
           "stage names");
    esa_context *ctx = harness_context();
    rng_seed(7);
    test_memory(ctx);
    test_stages(ctx);
    test_probe(ctx);
    return harness_finish(ctx, "test_profile");
}
