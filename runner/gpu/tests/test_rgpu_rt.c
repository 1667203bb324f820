/* test_rgpu_rt.c - the runtime: device choice errors, buffers and copies, argument checks with
 * their messages, timestamps; and the point of it all: the model kernels and esa-vk recording
 * into one command buffer on one device.
 *
 * The attention part runs a SmolLM2-shaped layer (9 query and 3 KV heads of 64) for a prefill
 * of 16 tokens and 6 decode steps: q, k, v from Q4_1 projections on the device (separate
 * products for the prefill, one fused QKV product for decode: for one token its output is
 * q | k | v back to back), esa_cmd_attend, then the output projection accumulated into the
 * residual, all in one submission. A second cache of the same context runs the same steps
 * through the simple API (esa_attend) on the q, k, v read back; the CPU then applies the
 * output projection. The two must agree. */
#include "rgpu_harness.h"

enum { H = 9, G = 3, D = 64, E = H * D, KV = G * D, QKV = E + 2 * KV, PREFILL = 16, DECODE = 6 };

static void test_device_choice(void)
{
    char msg[256] = "";
    esag_rt *rt = NULL;
    esag_rt_desc d = {.device_name = "no such device, surely", .without_attention = 1,
                      .error_message = msg, .error_message_size = sizeof msg};
    esag_status s = esag_rt_create(&d, &rt);
    EXPECT(s == ESAG_ERR_NO_DEVICE && rt == NULL && strstr(msg, "no such device"), "bad name: %s: %s",
           esag_status_string(s), msg);
    d = (esag_rt_desc){.device_index_plus_1 = 1000, .without_attention = 1, .error_message = msg,
                       .error_message_size = sizeof msg};
    s = esag_rt_create(&d, &rt);
    EXPECT(s == ESAG_ERR_NO_DEVICE && strstr(msg, "no device 999"), "bad index: %s: %s", esag_status_string(s), msg);
    EXPECT(esag_rt_create(NULL, NULL) == ESAG_ERR_ARG, "NULL out");
}

/* Round trips through every kind of buffer (and, on a second runtime whose device buffers are
 * never mapped, through the staging copies a discrete GPU takes), offsets, and the refusals. */
static void test_buffers(esag_rt *rt)
{
    enum { N = 1000 };
    uint32_t src[N], back[N];
    for (uint32_t i = 0; i < N; i++)
        src[i] = i * 2654435761u;
    for (int kind = 0; kind < 3; kind++) {
        esag_buffer b;
        EXPECT_ST(esag_buffer_create(rt, sizeof src + 3, (esag_mem)kind, &b));
        EXPECT(b.size == (sizeof src + 3 + 15) / 16 * 16 && b.address != 0, "buffer kind %d: size %llu", kind,
               (unsigned long long)b.size);
        EXPECT_ST(esag_buffer_write(rt, &b, 0, src, sizeof src));
        EXPECT_ST(esag_buffer_write(rt, &b, 12, src, 8)); /* src[3..4] = src[0..1] */
        memset(back, 0, sizeof back);
        EXPECT_ST(esag_buffer_read(rt, &b, 0, back, sizeof back));
        EXPECT(back[2] == src[2] && back[3] == src[0] && back[4] == src[1] && back[N - 1] == src[N - 1],
               "buffer kind %d round trip", kind);
        EXPECT(esag_buffer_write(rt, &b, b.size - 4, src, 8) == ESAG_ERR_ARG &&
                   strstr(esag_rt_last_error(rt), "outside"),
               "write past the end: %s", esag_rt_last_error(rt));
        esag_buffer_destroy(rt, &b);
        esag_buffer_destroy(rt, &b); /* a zeroed buffer is accepted */
    }
    /* staging: more than one chunk, at an offset */
    esag_rt_desc ud = {.without_attention = 1, .unmapped_device_buffers = 1};
    esag_rt *rt2 = NULL;
    EXPECT(esag_rt_create(&ud, &rt2) == ESAG_OK, "a second runtime");
    if (rt2) {
        size_t n = (16u << 20) / 4 + 1000; /* 16 MiB + 4000 bytes: two staging chunks */
        uint32_t *big_src = malloc(4 * n), *big_back = calloc(n, 4);
        for (size_t i = 0; i < n; i++)
            big_src[i] = (uint32_t)i * 2654435761u;
        esag_buffer b;
        EXPECT(esag_buffer_create(rt2, 4 * n + 64, ESAG_MEM_DEVICE, &b) == ESAG_OK && b.map == NULL,
               "unmapped device buffer");
        EXPECT(esag_buffer_write(rt2, &b, 64, big_src, 4 * n) == ESAG_OK, "staged write: %s", esag_rt_last_error(rt2));
        EXPECT(esag_buffer_read(rt2, &b, 64, big_back, 4 * n) == ESAG_OK, "staged read: %s", esag_rt_last_error(rt2));
        EXPECT(memcmp(big_src, big_back, 4 * n) == 0, "staged round trip");
        esag_buffer_destroy(rt2, &b);
        esag_rt_destroy(rt2);
        free(big_src);
        free(big_back);
    }
    esag_buffer big;
    uint64_t too_big = esag_rt_device_info(rt)->max_memory_allocation_size + 1;
    EXPECT(esag_buffer_create(rt, too_big, ESAG_MEM_DEVICE, &big) == ESAG_ERR_LIMIT, "buffer above the limit");
    esag_buffer_destroy(rt, NULL);
}

/* Every refused argument returns ESAG_ERR_ARG (or LIMIT) with a message, and records nothing. */
static void test_checks(esag_rt *rt, esag_kernels *k)
{
    esag_buffer b = rg_upload(rt, NULL, 1 << 16);
    VkCommandBuffer cb;
    EXPECT(esag_submit(rt) == ESAG_ERR_ARG, "esag_submit without esag_begin");
    EXPECT_ST(esag_begin(rt, &cb));
    EXPECT(esag_begin(rt, &cb) == ESAG_ERR_ARG, "esag_begin twice");
    esag_matmul_args ok = {.w = {.data = b.address, .type = ESAG_TYPE_Q4_1, .rows = 8, .cols = 64},
                           .x = b.address, .y = b.address + 4096, .T = 2};
    struct { const char *what, *msg; esag_matmul_args a; } bad[8];
    for (int i = 0; i < 8; i++)
        bad[i].a = ok;
    bad[0].what = "Q4_0 type", bad[0].msg = "type 2", bad[0].a.w.type = 2;
    bad[1].what = "cols 48", bad[1].msg = "multiple of 32", bad[1].a.w.cols = 48;
    bad[2].what = "weights at +4", bad[2].msg = "16-byte", bad[2].a.w.data += 4;
    bad[3].what = "x at +4", bad[3].msg = "16-byte", bad[3].a.x += 4;
    bad[4].what = "ldx 66", bad[4].msg = "multiple of 4", bad[4].a.ldx = 66;
    bad[5].what = "ldy 7 < rows", bad[5].msg = "too small", bad[5].a.ldy = 7;
    bad[6].what = "T 0", bad[6].msg = "T 0", bad[6].a.T = 0;
    bad[7].what = "y at +2", bad[7].msg = "4-byte", bad[7].a.y += 2;
    for (int i = 0; i < 8; i++) {
        esag_status s = esag_cmd_matmul(k, cb, &bad[i].a);
        EXPECT(s == ESAG_ERR_ARG && strstr(esag_rt_last_error(rt), bad[i].msg), "%s: %s: %s", bad[i].what,
               esag_status_string(s), esag_rt_last_error(rt));
    }
    EXPECT(esag_cmd_rmsnorm(k, cb, b.address, 0, b.address, b.address, 0, 1, 6, 1e-5f) == ESAG_ERR_ARG,
           "rmsnorm of 6 columns");
    EXPECT(esag_cmd_silu_mul(k, cb, b.address, b.address + 2, 0, b.address, 0, 1, 8) == ESAG_ERR_ARG,
           "silu_mul misaligned u");
    EXPECT(esag_cmd_add(k, cb, b.address, b.address, b.address, 0) == ESAG_ERR_ARG, "add of 0 elements");
    EXPECT_ST(esag_submit_wait(rt));
    /* a recording given up half-way: never runs, and the next esag_begin starts afresh */
    float one = 1.0f, back = 0.0f;
    EXPECT_ST(esag_buffer_write(rt, &b, 0, &one, sizeof one));
    EXPECT_ST(esag_begin(rt, &cb));
    EXPECT_ST(esag_cmd_scale(k, cb, b.address, 2.0f, b.address, 1));
    esag_abandon(rt);
    esag_abandon(rt);
    esag_abandon(NULL);
    EXPECT_ST(esag_begin(rt, &cb));
    EXPECT_ST(esag_submit_wait(rt));
    EXPECT_ST(esag_buffer_read(rt, &b, 0, &back, sizeof back));
    EXPECT(back == 1.0f, "an abandoned recording ran: %g", back);
    esag_buffer_destroy(rt, &b);
    esag_kernels *k2 = NULL;
    esag_tuning t = {.mm_bm = 64, .mm_tm = 6};
    EXPECT(esag_kernels_create(rt, &t, &k2) == ESAG_ERR_ARG && !k2, "mm_tm 6: %s", esag_rt_last_error(rt));
    t = (esag_tuning){.mm_bm = 1024, .mm_bn = 16, .mm_tm = 32, .mm_tn = 4}; /* 133 KiB */
    EXPECT(esag_kernels_create(rt, &t, &k2) == ESAG_ERR_ARG && strstr(esag_rt_last_error(rt), "shared memory"),
           "1024 x 16 tiles: %s", esag_rt_last_error(rt));
    t = (esag_tuning){.mm_bm = 128, .mm_bn = 128, .mm_tm = 64, .mm_tn = 16};
    EXPECT(esag_kernels_create(rt, &t, &k2) == ESAG_ERR_ARG && strstr(esag_rt_last_error(rt), "1..32"),
           "64 x 16 register tiles: %s", esag_rt_last_error(rt));
    /* (2^26 + 1)(2^32 - 2^26 + 1) = 1 mod 2^32: a workgroup of 1 in 32-bit arithmetic, and
     * mm_bm + mm_bn = 2 there */
    t = (esag_tuning){.mm_bm = 67108865u, .mm_bn = 4227858433u, .mm_tm = 1, .mm_tn = 1};
    EXPECT(esag_kernels_create(rt, &t, &k2) == ESAG_ERR_ARG && strstr(esag_rt_last_error(rt), "shared memory"),
           "tiles whose sizes wrap 32 bits: %s", esag_rt_last_error(rt));
    t = (esag_tuning){.mm_words = 3};
    EXPECT(esag_kernels_create(rt, &t, &k2) == ESAG_ERR_ARG && strstr(esag_rt_last_error(rt), "mm_words"),
           "mm_words 3: %s", esag_rt_last_error(rt));
    t = (esag_tuning){.mm_words = ESAG_WORDS_64};
    if (esag_rt_device_info(rt)->shader_int64) {
        EXPECT_ST(esag_kernels_create(rt, &t, &k2));
    } else {
        EXPECT(esag_kernels_create(rt, &t, &k2) == ESAG_ERR_ARG && strstr(esag_rt_last_error(rt), "shaderInt64"),
               "mm_words 2 without shaderInt64: %s", esag_rt_last_error(rt));
    }
    esag_kernels_destroy(k2);
    uint32_t code[4] = {0};
    VkPipeline p;
    EXPECT(esag_pipeline_create(rt, code, 6, NULL, 0, &p) == ESAG_ERR_ARG, "SPIR-V of 6 bytes");
}

static void test_timestamps(esag_rt *rt, esag_kernels *k)
{
    if (esag_rt_device_info(rt)->timestamp_period_ns <= 0.0f) {
        fprintf(stderr, "  no timestamps on this queue: not tested\n");
        return;
    }
    esag_buffer b = rg_upload(rt, NULL, 4 << 20);
    VkCommandBuffer cb;
    double ns[3];
    EXPECT_ST(esag_begin(rt, &cb));
    EXPECT_ST(esag_cmd_reset_timestamps(rt, cb, 3));
    esag_cmd_timestamp(rt, cb, 0);
    EXPECT_ST(esag_cmd_scale(k, cb, b.address, 2.0f, b.address, 1 << 20));
    esag_cmd_timestamp(rt, cb, 1);
    esag_cmd_barrier(rt, cb);
    EXPECT_ST(esag_cmd_scale(k, cb, b.address, 2.0f, b.address, 1 << 20));
    esag_cmd_timestamp(rt, cb, 2);
    EXPECT_ST(esag_submit_wait(rt));
    EXPECT_ST(esag_read_timestamps(rt, 3, ns));
    EXPECT(ns[1] > ns[0] && ns[2] > ns[1], "timestamps %.0f %.0f %.0f ns", ns[0], ns[1], ns[2]);
    fprintf(stderr, "  two scales of 4 MiB: %.3f and %.3f ms\n", (ns[1] - ns[0]) * 1e-6, (ns[2] - ns[1]) * 1e-6);
    esag_buffer_destroy(rt, &b);
}

static esag_buffer q4_1_weights(esag_rt *rt, uint32_t rows, uint32_t cols, float *deq, uint8_t *bytes)
{
    size_t rb = ref_row_bytes(ESAG_TYPE_Q4_1, cols);
    float *row = malloc(sizeof(float) * cols);
    for (uint32_t r = 0; r < rows; r++) {
        fill_normal(row, cols, 0.08f);
        ref_quantize_row(ESAG_TYPE_Q4_1, row, cols, bytes + rb * r);
        ref_dequant_row(ESAG_TYPE_Q4_1, bytes + rb * r, cols, deq + (size_t)r * cols);
    }
    free(row);
    return rg_upload(rt, bytes, rb * rows);
}

static void test_attention_layer(esag_rt *rt, esag_kernels *k)
{
    esa_context *ctx = esag_rt_attention(rt);
    EXPECT(ctx != NULL, "no esa-vk context");
    if (!ctx)
        return;
    esa_cache_desc cd = {.n_layers = 1, .n_heads = H, .n_kv_heads = G, .head_dim = D, .rope_theta = 100000.0f,
                         .rope_style = ESA_ROPE_NEOX, .n_initial = 4, .n_local = 8, .top_k = 4, .chunk = PREFILL,
                         .max_tokens = 64, .score_mode = ESA_SCORES_EXACT};
    esa_cache *dev_cache = NULL, *ref_cache = NULL;
    EXPECT(esa_cache_create(ctx, &cd, &dev_cache) == ESA_SUCCESS && esa_cache_create(ctx, &cd, &ref_cache) == ESA_SUCCESS,
           "esa_cache_create: %s", esa_context_last_error(ctx));
    if (!dev_cache || !ref_cache) {
        esa_cache_destroy(dev_cache);
        esa_cache_destroy(ref_cache);
        return;
    }
    /* Wqkv [960][576] = Wq | Wk | Wv (the fused rows: one GGUF-format tensor), Wo [576][576] */
    size_t rb = ref_row_bytes(ESAG_TYPE_Q4_1, E);
    uint8_t *bytes = malloc(rb * QKV);
    float *wqkv = malloc(sizeof(float) * QKV * E), *wo = malloc(sizeof(float) * E * E);
    esag_buffer bqkv = q4_1_weights(rt, QKV, E, wqkv, bytes), bo = q4_1_weights(rt, E, E, wo, bytes);
    esag_matrix mq = {.data = bqkv.address, .type = ESAG_TYPE_Q4_1, .rows = E, .cols = E};
    esag_matrix mk = mq, mv = mq, mqkv = mq, mo = {.data = bo.address, .type = ESAG_TYPE_Q4_1, .rows = E, .cols = E};
    mk.data += rb * E, mk.rows = KV;
    mv.data += rb * (E + KV), mv.rows = KV;
    mqkv.rows = QKV;
    /* activations: x [n][576] residual, qkv [n][960] (q [n][576], k [n][192], v [n][192] for
     * the prefill: three separate products), attn [n][576] */
    esag_buffer bx = rg_upload(rt, NULL, sizeof(float) * PREFILL * E);
    esag_buffer bq = rg_upload(rt, NULL, sizeof(float) * PREFILL * QKV);
    esag_buffer ba = rg_upload(rt, NULL, sizeof(float) * PREFILL * E);
    float *x = malloc(sizeof(float) * PREFILL * E), *qkv = malloc(sizeof(float) * PREFILL * QKV);
    float *attn = malloc(sizeof(float) * PREFILL * E), *want = malloc(sizeof(float) * PREFILL * E);
    float *got = malloc(sizeof(float) * PREFILL * E);
    for (int step = 0; step <= DECODE; step++) {
        uint32_t n = step == 0 ? PREFILL : 1;
        fill_normal(x, (size_t)n * E, 1.0f);
        EXPECT_ST(esag_buffer_write(rt, &bx, 0, x, sizeof(float) * n * E));
        VkDeviceAddress q = bq.address, kk = q + sizeof(float) * n * E, v = kk + sizeof(float) * n * KV;
        VkCommandBuffer cb;
        EXPECT_ST(esag_begin(rt, &cb));
        if (n == 1) { /* decode: one fused product, q | k | v */
            esag_matmul_args a = {.w = mqkv, .x = bx.address, .y = q, .T = 1};
            EXPECT_ST(esag_cmd_matmul(k, cb, &a));
            kk = q + sizeof(float) * E;
            v = kk + sizeof(float) * KV;
        } else {
            esag_matmul_args a = {.w = mq, .x = bx.address, .y = q, .T = n};
            EXPECT_ST(esag_cmd_matmul(k, cb, &a));
            a.w = mk, a.y = kk;
            EXPECT_ST(esag_cmd_matmul(k, cb, &a));
            a.w = mv, a.y = v;
            EXPECT_ST(esag_cmd_matmul(k, cb, &a));
        }
        esag_cmd_barrier(rt, cb);
        esa_step_buffers sb = {.q = q, .k = kk, .v = v, .out = ba.address, .dtype = ESA_F32};
        esa_step_info info;
        esa_status es = esa_cmd_attend(dev_cache, cb, 0, n, &sb, &info);
        EXPECT(es == ESA_SUCCESS, "esa_cmd_attend: %s", esa_context_last_error(ctx));
        esag_cmd_barrier(rt, cb);
        esag_matmul_args o = {.w = mo, .x = ba.address, .y = bx.address, .T = n, .accumulate = 1};
        EXPECT_ST(esag_cmd_matmul(k, cb, &o));
        EXPECT_ST(esag_submit_wait(rt));
        /* the reference: the same q, k, v through the simple API, the projection on the CPU */
        EXPECT_ST(esag_buffer_read(rt, &bq, 0, qkv, sizeof(float) * n * QKV));
        const float *hq = qkv, *hk = qkv + (size_t)n * E, *hv = hk + (size_t)n * KV;
        if (n == 1)
            hk = qkv + E, hv = hk + KV;
        es = esa_attend(ref_cache, 0, n, ESA_F32, hq, hk, hv, attn, NULL);
        EXPECT(es == ESA_SUCCESS, "esa_attend: %s", esa_context_last_error(ctx));
        memcpy(want, x, sizeof(float) * n * E);
        ref_matmul(wo, E, E, attn, E, n, want, E, 1);
        EXPECT_ST(esag_buffer_read(rt, &bx, 0, got, sizeof(float) * n * E));
        long bad;
        double err = norm_error(got, want, (size_t)n * E, 2e-5, &bad);
        fprintf(stderr, "  step %d: %u tokens, %u selected%s: x + Wo attn error %.2g\n", step, n, info.n_selected,
                info.dense ? " (dense)" : "", err);
        EXPECT(err <= 2e-5, "step %d: error %.3g at token %ld col %ld", step, err, bad < 0 ? -1 : bad / E,
               bad < 0 ? -1 : bad % E);
    }
    esa_cache_destroy(dev_cache);
    esa_cache_destroy(ref_cache);
    esag_buffer *all[] = {&bqkv, &bo, &bx, &bq, &ba};
    for (int i = 0; i < 5; i++)
        esag_buffer_destroy(rt, all[i]);
    free(bytes), free(wqkv), free(wo), free(x), free(qkv), free(attn), free(want), free(got);
}

int main(void)
{
    esag_rt *rt = rg_runtime(1);
    rng_seed(5);
    test_device_choice();
    test_buffers(rt);
    esag_kernels *k = rg_kernels(rt, NULL);
    const char *profile;
    esag_tuning t;
    esag_kernels_tuning(k, &t, &profile);
    fprintf(stderr, "profile %s: matvec %u x %u rows, matmul %u x %u tiles of %u x %u, %u-bit shared elements\n",
            profile, t.mv_wg, t.mv_rows, t.mm_bm, t.mm_bn, t.mm_tm, t.mm_tn, t.mm_words == ESAG_WORDS_64 ? 64 : 32);
    test_checks(rt, k);
    test_timestamps(rt, k);
    test_attention_layer(rt, k);
    esag_kernels_destroy(k);
    return rg_finish(rt, "test_rgpu_rt");
}
