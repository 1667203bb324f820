/* test_api.c - every invalid argument returns a named status (never a crash), failed steps
 * leave the cache unchanged, and fp16 inputs give the fp32 result. */
#include "harness.h"

#include <string.h>

static esa_cache_desc good_desc(void)
{
    return (esa_cache_desc){.n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .head_dim = 32,
                            .n_initial = 2, .n_local = 4, .top_k = 3, .compress_dim = 8,
                            .chunk = 4, .max_tokens = 40, .score_mode = ESA_SCORES_EXACT};
}

static void bad_desc(esa_context *ctx, const char *what, esa_cache_desc d, esa_status want)
{
    esa_cache *c = (esa_cache *)0x1;
    esa_status s = esa_cache_create(ctx, &d, &c);
    EXPECT(s == want && c == NULL, "%s: got %s (cache %p), wanted %s", what, esa_status_string(s),
           (void *)c, esa_status_string(want));
    esa_cache_destroy(s == ESA_SUCCESS ? c : NULL);
}

static uint16_t to_half(float f) /* finite, normal range only: enough for test data */
{
    uint32_t b;
    memcpy(&b, &f, 4);
    uint32_t sign = (b >> 16) & 0x8000u, mant = b & 0x7fffffu;
    int exp = (int)((b >> 23) & 0xff) - 127 + 15;
    if (exp <= 0)
        return (uint16_t)sign;
    uint32_t h = sign | ((uint32_t)exp << 10) | (mant >> 13);
    uint32_t rest = mant & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u)))
        h++;
    return (uint16_t)h;
}

int main(void)
{
    /* statuses and versions need no device */
    for (int s = 0; s <= ESA_ERROR_FILE_MISMATCH; s++)
        EXPECT(esa_status_string((esa_status)s) && strncmp(esa_status_string((esa_status)s), "ESA_", 4) == 0,
               "status %d has no name", s);
    EXPECT(esa_version() == ESA_VERSION_NUMBER, "version %u", esa_version());
    EXPECT(esa_context_create(NULL, NULL) == ESA_ERROR_INVALID_ARGUMENT, "NULL out");
    esa_context *ctx = NULL;
    esa_context_desc bad = {.reserved = {1}};
    EXPECT(esa_context_create(&bad, &ctx) == ESA_ERROR_INVALID_ARGUMENT && !ctx, "reserved");
    esa_context_desc bad_tuning = {.tuning = (esa_tuning)3};
    EXPECT(esa_context_create(&bad_tuning, &ctx) == ESA_ERROR_INVALID_ARGUMENT && !ctx, "tuning 3");
    EXPECT(esa_context_tuning(NULL) == ESA_TUNING_AUTO, "tuning of NULL");
    char why[128] = "";
    esa_context_desc no_such = {.device_name = "no-such-device-xyz", .error_message = why,
                                .error_message_size = sizeof why};
    EXPECT_STATUS(esa_context_create(&no_such, &ctx), ESA_ERROR_NO_DEVICE);
    EXPECT(strstr(why, "no-such-device-xyz") || strstr(why, "no Vulkan"), "error message: \"%s\"", why);
    esa_context_desc idx = {.device_index_plus_1 = 100};
    EXPECT_STATUS(esa_context_create(&idx, &ctx), ESA_ERROR_NO_DEVICE);
    esa_context_destroy(NULL);
    esa_cache_destroy(NULL);
    uint32_t ndev = 0;
    EXPECT_STATUS(esa_enumerate_devices(NULL, 1, &ndev), ESA_ERROR_INVALID_ARGUMENT);

    ctx = harness_context();
    esa_device_info info;
    EXPECT_STATUS(esa_context_device_info(ctx, NULL), ESA_ERROR_INVALID_ARGUMENT);
    EXPECT_STATUS(esa_context_device_info(ctx, &info), ESA_SUCCESS);
    EXPECT(info.subgroup_size >= 1 && info.max_storage_buffer_range > 0, "device info empty");
    /* the variants AUTO chose (or ESA_TEST_TUNING forced: harness.h) */
    esa_tuning want = harness_tuning();
    if (want == ESA_TUNING_AUTO)
        want = info.type == ESA_DEVICE_CPU ? ESA_TUNING_CPU : ESA_TUNING_GPU;
    EXPECT(esa_context_tuning(ctx) == want, "tuning %d, wanted %d", (int)esa_context_tuning(ctx), (int)want);
    /* and a forced one is what a context builds, on any device */
    for (int t = ESA_TUNING_CPU; t <= ESA_TUNING_GPU; t++) {
        esa_context_desc forced = {.tuning = (esa_tuning)t};
        esa_context *other = NULL;
        EXPECT_STATUS(esa_context_create(&forced, &other), ESA_SUCCESS);
        EXPECT(esa_context_tuning(other) == (esa_tuning)t, "forced tuning %d built %d", t,
               (int)esa_context_tuning(other));
        esa_context_destroy(other);
    }

    esa_cache_desc d = good_desc();
    EXPECT_STATUS(esa_cache_create(NULL, &d, NULL), ESA_ERROR_INVALID_ARGUMENT);
    esa_cache *cache = NULL;
    EXPECT_STATUS(esa_cache_create(ctx, NULL, &cache), ESA_ERROR_INVALID_ARGUMENT);
#define BAD(field, value, want)                                                                \
    do {                                                                                       \
        esa_cache_desc b_ = good_desc();                                                       \
        b_.field = value;                                                                      \
        bad_desc(ctx, #field " = " #value, b_, want);                                          \
    } while (0)
    BAD(n_layers, 0, ESA_ERROR_INVALID_ARGUMENT);
    BAD(n_heads, 0, ESA_ERROR_INVALID_ARGUMENT);
    BAD(n_kv_heads, 3, ESA_ERROR_INVALID_ARGUMENT);
    BAD(n_kv_heads, 0, ESA_ERROR_INVALID_ARGUMENT);
    BAD(head_dim, 33, ESA_ERROR_INVALID_ARGUMENT);
    BAD(head_dim, 36, ESA_ERROR_INVALID_ARGUMENT); /* even, not a multiple of 8 */
    BAD(head_dim, 512, ESA_ERROR_INVALID_ARGUMENT);
    BAD(rope_dims, 48, ESA_ERROR_INVALID_ARGUMENT);
    BAD(rope_dims, 7, ESA_ERROR_INVALID_ARGUMENT);
    BAD(rope_dims, 12, ESA_ERROR_INVALID_ARGUMENT);
    BAD(rope_theta, -5.0f, ESA_ERROR_INVALID_ARGUMENT);
    BAD(rope_style, 7, ESA_ERROR_INVALID_ARGUMENT);
    BAD(scale, -1.0f, ESA_ERROR_INVALID_ARGUMENT);
    BAD(top_k, ESA_MAX_TOP_K + 1, ESA_ERROR_INVALID_ARGUMENT);
    {
        esa_cache_desc b = good_desc();
        b.score_mode = ESA_SCORES_COMPRESSED;
        b.compress_dim = 7;
        bad_desc(ctx, "compress_dim = 7", b, ESA_ERROR_INVALID_ARGUMENT);
        b.compress_dim = 12;
        bad_desc(ctx, "compress_dim = 12", b, ESA_ERROR_INVALID_ARGUMENT);
        b.compress_dim = 4096;
        bad_desc(ctx, "compress_dim = 4096", b, ESA_ERROR_INVALID_ARGUMENT);
    }
    BAD(proximity_radius, ESA_MAX_RADIUS + 1, ESA_ERROR_INVALID_ARGUMENT);
    BAD(proximity_radius, -2, ESA_ERROR_INVALID_ARGUMENT);
    BAD(chunk, 5000, ESA_ERROR_INVALID_ARGUMENT);
    BAD(position_mode, 9, ESA_ERROR_INVALID_ARGUMENT);
    BAD(score_mode, 9, ESA_ERROR_INVALID_ARGUMENT);
    BAD(max_tokens, 0, ESA_ERROR_INVALID_ARGUMENT);
    BAD(max_tokens, 0xffffffffu, ESA_ERROR_INVALID_ARGUMENT);
    {
        esa_cache_desc b = good_desc(); /* small enough per token, but past the dispatch limit */
        b.n_kv_heads = 1;
        b.n_heads = 1;
        b.head_dim = 16;
        b.max_tokens = ESA_MAX_TOKENS + 1;
        bad_desc(ctx, "max_tokens = ESA_MAX_TOKENS + 1", b, ESA_ERROR_INVALID_ARGUMENT);
    }
    BAD(reserved[1], 1, ESA_ERROR_INVALID_ARGUMENT);
    BAD(page_tokens, 100, ESA_ERROR_INVALID_ARGUMENT);
    BAD(page_tokens, 8, ESA_ERROR_INVALID_ARGUMENT);
    BAD(page_tokens, 131072, ESA_ERROR_INVALID_ARGUMENT);
    BAD(kv_read, 3, ESA_ERROR_INVALID_ARGUMENT);
    {
        esa_cache_desc b = good_desc(); /* a budget below the initial + local + current pages */
        b.max_tokens = 100000;
        b.n_local = 1024;
        b.kv_device_budget = 1;
        bad_desc(ctx, "kv_device_budget = 1", b, ESA_ERROR_INVALID_ARGUMENT);
    }
    {
        esa_cache_desc b = good_desc(); /* exact scores over G*d = 8192 dims: more than a tile */
        b.n_heads = 64;
        b.n_kv_heads = 64;
        b.head_dim = 128;
        bad_desc(ctx, "exact scores with G*d = 8192", b, ESA_ERROR_INVALID_ARGUMENT);
    }
    /* one page larger than any allocation the device allows */
    {
        esa_cache_desc b = good_desc();
        b.n_heads = 64;
        b.n_kv_heads = 64;
        b.head_dim = 256;
        b.score_mode = ESA_SCORES_COMPRESSED;
        b.compress_dim = 128;
        b.max_tokens = 16384;
        b.page_tokens = 65536; /* K and V of 65536 tokens * 64 * 256 * 2 bytes: 4 GiB */
        if (info.max_memory_allocation_size < (4ull << 30))
            bad_desc(ctx, "a page beyond maxMemoryAllocationSize", b, ESA_ERROR_LIMIT);
    }

    /* a compressed cache: steps before the matrices are refused */
    d = good_desc();
    d.score_mode = ESA_SCORES_COMPRESSED;
    EXPECT_STATUS(esa_cache_create(ctx, &d, &cache), ESA_SUCCESS);
    enum { H = 4, G = 2, D = 32, HD = H * D, GD = G * D, DC = 8, N = 40 };
    static float q[N * HD], k[N * GD], v[N * GD], o[N * HD], o2[N * HD], a[DC * HD], b[DC * GD];
    static uint16_t qh[N * HD], kh[N * GD], vh[N * GD];
    rng_seed(7);
    fill_normal(q, N * HD, 1.0f);
    fill_normal(k, N * GD, 1.0f);
    fill_normal(v, N * GD, 1.0f);
    fill_normal(a, DC * HD, 0.1f);
    fill_normal(b, DC * GD, 0.1f);
    EXPECT_STATUS(esa_attend(cache, 0, 1, ESA_F32, q, k, v, o, NULL), ESA_ERROR_NOT_READY);
    EXPECT_STATUS(esa_cache_set_compression(cache, 2, a, b), ESA_ERROR_INVALID_ARGUMENT);
    EXPECT_STATUS(esa_cache_set_compression(cache, 0, NULL, b), ESA_ERROR_INVALID_ARGUMENT);
    EXPECT_STATUS(esa_cache_set_compression(NULL, 0, a, b), ESA_ERROR_INVALID_ARGUMENT);
    float keep = a[5];
    a[5] = NAN;
    EXPECT_STATUS(esa_cache_set_compression(cache, 0, a, b), ESA_ERROR_NON_FINITE);
    a[5] = keep;
    EXPECT_STATUS(esa_cache_set_compression(cache, 0, a, b), ESA_SUCCESS);
    EXPECT_STATUS(esa_attend(cache, 0, 5, ESA_F32, q, k, v, o, NULL), ESA_SUCCESS);
    EXPECT_STATUS(esa_cache_set_compression(cache, 0, a, b), ESA_ERROR_INVALID_ARGUMENT);
    esa_cache_destroy(cache);

    /* the simple step's arguments */
    d = good_desc();
    EXPECT_STATUS(esa_cache_create(ctx, &d, &cache), ESA_SUCCESS);
    EXPECT_STATUS(esa_cache_set_compression(cache, 0, a, b), ESA_ERROR_INVALID_ARGUMENT);
    EXPECT_STATUS(esa_attend(NULL, 0, 1, ESA_F32, q, k, v, o, NULL), ESA_ERROR_INVALID_ARGUMENT);
    EXPECT_STATUS(esa_attend_window(NULL, 0, 1, ESA_F32, q, k, v, o, NULL), ESA_ERROR_INVALID_ARGUMENT);
    EXPECT_STATUS(esa_attend_window(cache, 0, 1, ESA_F32, q, k, v, NULL, NULL), ESA_ERROR_INVALID_ARGUMENT);
    EXPECT_STATUS(esa_attend(cache, 2, 1, ESA_F32, q, k, v, o, NULL), ESA_ERROR_INVALID_ARGUMENT);
    EXPECT_STATUS(esa_attend(cache, 0, 0, ESA_F32, q, k, v, o, NULL), ESA_ERROR_INVALID_ARGUMENT);
    EXPECT_STATUS(esa_attend(cache, 0, 1, (esa_dtype)5, q, k, v, o, NULL), ESA_ERROR_INVALID_ARGUMENT);
    EXPECT_STATUS(esa_attend(cache, 0, 1, ESA_F32, NULL, k, v, o, NULL), ESA_ERROR_INVALID_ARGUMENT);
    EXPECT_STATUS(esa_attend(cache, 0, 1, ESA_F32, q, k, v, NULL, NULL), ESA_ERROR_INVALID_ARGUMENT);
    EXPECT_STATUS(esa_append(cache, 0, 1, ESA_F32, k, NULL), ESA_ERROR_INVALID_ARGUMENT);
    EXPECT_STATUS(esa_append(cache, 3, 1, ESA_F32, k, v), ESA_ERROR_INVALID_ARGUMENT);
    EXPECT_STATUS(esa_append(NULL, 0, 1, ESA_F32, k, v), ESA_ERROR_INVALID_ARGUMENT);
    uint32_t len = 99, count = 0, pos[4];
    EXPECT_STATUS(esa_cache_length(cache, 0, &len), ESA_SUCCESS);
    EXPECT(len == 0, "length %u after refused steps", len);
    EXPECT_STATUS(esa_cache_length(cache, 5, &len), ESA_ERROR_INVALID_ARGUMENT);
    EXPECT_STATUS(esa_cache_last_selection(cache, 0, NULL, 4, &count), ESA_ERROR_INVALID_ARGUMENT);
    EXPECT_STATUS(esa_cache_last_selection(cache, 9, pos, 4, &count), ESA_ERROR_INVALID_ARGUMENT);
    /* non-finite input: refused, nothing appended */
    float kk = k[3];
    k[3] = INFINITY;
    EXPECT_STATUS(esa_attend(cache, 0, 4, ESA_F32, q, k, v, o, NULL), ESA_ERROR_NON_FINITE);
    k[3] = kk;
    float vv = v[5];
    v[5] = 70000.0f; /* finite in fp32, infinite once stored as fp16 */
    EXPECT_STATUS(esa_attend(cache, 0, 4, ESA_F32, q, k, v, o, NULL), ESA_ERROR_NON_FINITE);
    v[5] = vv;
    esa_cache_length(cache, 0, &len);
    EXPECT(len == 0, "length %u after a NaN step", len);
    /* fp16 input equals fp32 input rounded to fp16 */
    for (int i = 0; i < N * HD; i++)
        qh[i] = to_half(q[i]);
    for (int i = 0; i < N * GD; i++) {
        kh[i] = to_half(k[i]);
        vh[i] = to_half(v[i]);
    }
    qh[0] = 0x7e00; /* NaN */
    EXPECT_STATUS(esa_attend(cache, 1, 2, ESA_F16, qh, kh, vh, o, NULL), ESA_ERROR_NON_FINITE);
    qh[0] = to_half(q[0]);
    EXPECT_STATUS(esa_attend(cache, 0, 30, ESA_F16, qh, kh, vh, o, NULL), ESA_SUCCESS);
    esa_step_info si;
    EXPECT_STATUS(esa_attend(cache, 1, 30, ESA_F32, q, k, v, o2, &si), ESA_SUCCESS);
    EXPECT(si.n_chunks == 8 && si.n_selected == 3 && !si.dense, "info: chunks %u selected %u dense %u",
           si.n_chunks, si.n_selected, si.dense);
    long bad_i;
    double err = norm_error(o, o2, 30 * HD, 5e-3, &bad_i);
    EXPECT(err <= 5e-3, "fp16 vs fp32 input: error %.3g at %ld", err, bad_i);
    EXPECT_STATUS(esa_cache_last_selection(cache, 1, pos, 4, &count), ESA_SUCCESS);
    EXPECT(count == 3, "selection count %u", count);
    /* capacity: 10 more fit, 11 do not, and a refused step changes nothing */
    EXPECT_STATUS(esa_attend(cache, 1, 11, ESA_F32, q, k, v, o, NULL), ESA_ERROR_CAPACITY);
    esa_cache_length(cache, 1, &len);
    EXPECT(len == 30, "length %u after a refused step", len);
    EXPECT_STATUS(esa_attend(cache, 1, 10, ESA_F32, q, k, v, o, NULL), ESA_SUCCESS);
    /* truncate: a step taken again after dropping it gives the same output, bit for bit */
    EXPECT_STATUS(esa_cache_truncate(NULL, 1, 0), ESA_ERROR_INVALID_ARGUMENT);
    EXPECT_STATUS(esa_cache_truncate(cache, 2, 0), ESA_ERROR_INVALID_ARGUMENT);
    EXPECT_STATUS(esa_cache_truncate(cache, 1, 41), ESA_ERROR_INVALID_ARGUMENT);
    EXPECT_STATUS(esa_cache_truncate(cache, 1, 30), ESA_SUCCESS);
    esa_cache_length(cache, 1, &len);
    EXPECT(len == 30, "length %u after truncating to 30", len);
    EXPECT_STATUS(esa_attend(cache, 1, 1, ESA_F32, q, k, v, o, NULL), ESA_SUCCESS);
    EXPECT_STATUS(esa_cache_truncate(cache, 1, 30), ESA_SUCCESS);
    EXPECT_STATUS(esa_cache_last_selection(cache, 1, pos, 4, &count), ESA_SUCCESS);
    EXPECT(count == 0, "a truncated layer reports a selection of %u", count);
    EXPECT_STATUS(esa_attend(cache, 1, 1, ESA_F32, q, k, v, o2, NULL), ESA_SUCCESS);
    EXPECT(memcmp(o, o2, HD * sizeof(float)) == 0, "the same step after truncate differs");
    EXPECT_STATUS(esa_cache_clear(cache), ESA_SUCCESS);
    esa_cache_length(cache, 1, &len);
    EXPECT(len == 0, "length %u after clear", len);
    esa_cache_desc got;
    EXPECT_STATUS(esa_cache_get_desc(cache, &got), ESA_SUCCESS);
    EXPECT(got.rope_dims == 32 && got.chunk == 4 && got.global_pos == 4 && got.rope_theta == 10000.0f &&
               got.proximity_radius == 1,
           "defaults not resolved");
    esa_cache_destroy(cache);
    return harness_finish(ctx, "test_api");
}
