/* test_rgpu_ops.c - the small kernels against the CPU reference: embedding lookup of random
 * tables of every type (repeated ids, padded rows), RMSNorm (576 and 1536 columns, in place,
 * a zero row, huge and tiny rows), SiLU(gate)*up (separate and fused gate/up layouts, values
 * out to +-100), residual add (in place) and scale (a copy, a negative factor). */
#include "rgpu_harness.h"

#define TOL 2e-6

static void expect_close(const char *what, const float *got, const float *want, size_t n, size_t row)
{
    long bad;
    double err = norm_error(got, want, n, TOL, &bad);
    fprintf(stderr, "  %-40s error %.2g\n", what, err);
    EXPECT(err <= TOL, "%s: error %.3g; first bad: [%ld][%ld] %.9g, want %.9g", what, err,
           bad < 0 ? -1 : (long)(bad / row), bad < 0 ? -1 : (long)(bad % row), bad < 0 ? 0.0 : (double)got[bad],
           bad < 0 ? 0.0 : (double)want[bad]);
}

static void test_embed(esag_rt *rt, esag_kernels *k, uint32_t type)
{
    enum { R = 300, C = 576, T = 6, LDO = C + 8 };
    size_t rb = ref_row_bytes(type, C);
    uint8_t *tq = malloc(rb * R);
    float row[C], *want = calloc(T * LDO, sizeof(float)), *got = malloc(sizeof(float) * T * LDO);
    float *table = malloc(sizeof(float) * R * C);
    for (uint32_t r = 0; r < R; r++) {
        fill_normal(row, C, r % 9 == 0 ? 30.0f : 0.02f);
        ref_quantize_row(type, row, C, tq + rb * r);
        ref_dequant_row(type, tq + rb * r, C, table + (size_t)r * C);
    }
    uint32_t ids[T] = {0, R - 1, 17, 17, 150, 1};
    for (uint32_t t = 0; t < T; t++)
        memcpy(want + t * LDO, table + (size_t)ids[t] * C, sizeof(float) * C);
    esag_buffer bt = rg_upload(rt, tq, rb * R), bi = rg_upload(rt, ids, sizeof ids);
    esag_buffer bo = rg_upload(rt, NULL, sizeof(float) * T * LDO);
    esag_matrix m = {.data = bt.address, .type = type, .rows = R, .cols = C};
    VkCommandBuffer cb;
    EXPECT_ST(esag_begin(rt, &cb));
    EXPECT_ST(esag_cmd_embed(k, cb, &m, bi.address, T, bo.address, LDO));
    EXPECT_ST(esag_submit_wait(rt));
    rg_download(rt, &bo, got, sizeof(float) * T * LDO);
    char what[64];
    snprintf(what, sizeof what, "embed type %u, %u ids of %u rows", type, T, R);
    expect_close(what, got, want, T * LDO, LDO);
    esag_buffer_destroy(rt, &bt);
    esag_buffer_destroy(rt, &bi);
    esag_buffer_destroy(rt, &bo);
    free(tq), free(want), free(got), free(table);
}

static void test_rmsnorm(esag_rt *rt, esag_kernels *k, uint32_t T, uint32_t C, int in_place)
{
    const float eps = 1e-5f;
    float *x = malloc(sizeof(float) * T * C), *w = malloc(sizeof(float) * C);
    float *want = malloc(sizeof(float) * T * C), *got = malloc(sizeof(float) * T * C);
    fill_normal(x, (size_t)T * C, 1.0f);
    fill_normal(w, C, 1.0f);
    if (T > 2) { /* a zero row (eps alone), a huge one and a tiny one */
        memset(x, 0, sizeof(float) * C);
        for (uint32_t c = 0; c < C; c++)
            x[C + c] *= 1e15f, x[2 * C + c] *= 1e-15f;
    }
    ref_rmsnorm(x, w, T, C, eps, want);
    esag_buffer bx = rg_upload(rt, x, sizeof(float) * T * C), bw = rg_upload(rt, w, sizeof(float) * C);
    esag_buffer bo = rg_upload(rt, NULL, sizeof(float) * T * C);
    VkCommandBuffer cb;
    EXPECT_ST(esag_begin(rt, &cb));
    EXPECT_ST(esag_cmd_rmsnorm(k, cb, bx.address, 0, bw.address, in_place ? bx.address : bo.address, 0, T, C, eps));
    EXPECT_ST(esag_submit_wait(rt));
    rg_download(rt, in_place ? &bx : &bo, got, sizeof(float) * T * C);
    /* per row: the rows differ by 30 orders of magnitude */
    for (uint32_t t = 0; t < T; t++) {
        char what[64];
        snprintf(what, sizeof what, "rmsnorm %u x %u%s, row %u", T, C, in_place ? " in place" : "", t);
        if (t < 4 || t == T - 1)
            expect_close(what, got + (size_t)t * C, want + (size_t)t * C, C, C);
        else {
            long bad;
            double err = norm_error(got + (size_t)t * C, want + (size_t)t * C, C, TOL, &bad);
            EXPECT(err <= TOL, "%s: error %.3g at %ld", what, err, bad);
        }
    }
    esag_buffer_destroy(rt, &bx);
    esag_buffer_destroy(rt, &bw);
    esag_buffer_destroy(rt, &bo);
    free(x), free(w), free(want), free(got);
}

/* fused: g and u are the halves of one [T][2n] buffer (u = g + n); else two [T][n] buffers */
static void test_silu(esag_rt *rt, esag_kernels *k, uint32_t T, uint32_t n, int fused)
{
    uint32_t ld = fused ? 2 * n : n;
    float *in = malloc(sizeof(float) * T * 2 * n), *want = malloc(sizeof(float) * T * n);
    float *got = malloc(sizeof(float) * T * n);
    fill_normal(in, (size_t)T * 2 * n, 4.0f);
    in[0] = -100.0f, in[1] = 100.0f, in[2] = 0.0f, in[3] = -89.0f; /* e^89 overflows f32 */
    const float *g = in, *u = fused ? in + n : in + (size_t)T * n;
    for (uint32_t t = 0; t < T; t++)
        ref_silu_mul(g + (size_t)t * ld, u + (size_t)t * ld, n, want + (size_t)t * n);
    esag_buffer bi = rg_upload(rt, in, sizeof(float) * T * 2 * n), bo = rg_upload(rt, NULL, sizeof(float) * T * n);
    VkDeviceAddress ga = bi.address, ua = bi.address + sizeof(float) * (fused ? n : (size_t)T * n);
    VkCommandBuffer cb;
    EXPECT_ST(esag_begin(rt, &cb));
    EXPECT_ST(esag_cmd_silu_mul(k, cb, ga, ua, ld, bo.address, 0, T, n));
    EXPECT_ST(esag_submit_wait(rt));
    rg_download(rt, &bo, got, sizeof(float) * T * n);
    char what[64];
    snprintf(what, sizeof what, "silu_mul %u x %u%s", T, n, fused ? " fused gate/up" : "");
    expect_close(what, got, want, (size_t)T * n, n);
    EXPECT(got[3] == 0.0f && !signbit(got[0]) == !signbit(want[0]), "silu_mul(-89): %g", (double)got[3]);
    esag_buffer_destroy(rt, &bi);
    esag_buffer_destroy(rt, &bo);
    free(in), free(want), free(got);
}

static void test_add_scale(esag_rt *rt, esag_kernels *k, uint32_t n)
{
    float *a = malloc(sizeof(float) * n), *b = malloc(sizeof(float) * n), *want = malloc(sizeof(float) * n);
    float *got = malloc(sizeof(float) * n);
    fill_normal(a, n, 1.0f);
    fill_normal(b, n, 3.0f);
    esag_buffer ba = rg_upload(rt, a, sizeof(float) * n), bb = rg_upload(rt, b, sizeof(float) * n);
    esag_buffer bc = rg_upload(rt, NULL, sizeof(float) * n), bd = rg_upload(rt, NULL, sizeof(float) * n);
    VkCommandBuffer cb;
    EXPECT_ST(esag_begin(rt, &cb));
    EXPECT_ST(esag_cmd_scale(k, cb, ba.address, 1.0f, bc.address, n));         /* c = a */
    EXPECT_ST(esag_cmd_scale(k, cb, bb.address, -0.5f, bd.address, n));        /* d = -b/2 */
    esag_cmd_barrier(rt, cb);
    EXPECT_ST(esag_cmd_add(k, cb, ba.address, bb.address, ba.address, n));      /* a += b */
    esag_cmd_barrier(rt, cb); /* the add reads b before the next call overwrites it */
    EXPECT_ST(esag_cmd_scale(k, cb, bb.address, 3.0f, bb.address, n));         /* b *= 3 */
    EXPECT_ST(esag_submit_wait(rt));
    char what[64];
    rg_download(rt, &bc, got, sizeof(float) * n);
    snprintf(what, sizeof what, "scale by 1 (copy), n %u", n);
    expect_close(what, got, a, n, n);
    rg_download(rt, &bd, got, sizeof(float) * n);
    for (uint32_t i = 0; i < n; i++)
        want[i] = -0.5f * b[i];
    snprintf(what, sizeof what, "scale by -0.5, n %u", n);
    expect_close(what, got, want, n, n);
    rg_download(rt, &ba, got, sizeof(float) * n);
    for (uint32_t i = 0; i < n; i++)
        want[i] = a[i] + b[i];
    snprintf(what, sizeof what, "add in place, n %u", n);
    expect_close(what, got, want, n, n);
    rg_download(rt, &bb, got, sizeof(float) * n);
    for (uint32_t i = 0; i < n; i++)
        want[i] = 3.0f * b[i];
    snprintf(what, sizeof what, "scale in place, n %u", n);
    expect_close(what, got, want, n, n);
    esag_buffer *all[] = {&ba, &bb, &bc, &bd};
    for (int i = 0; i < 4; i++)
        esag_buffer_destroy(rt, all[i]);
    free(a), free(b), free(want), free(got);
}

int main(void)
{
    esag_rt *rt = rg_runtime(0);
    rng_seed(7);
    esag_tuning small = {.wg = 8, .norm_wg = 8};
    const esag_tuning *tunings[2] = {NULL, &small};
    for (int ti = 0; ti < 2; ti++) {
        fprintf(stderr, "%s\n", ti ? "workgroups of 8" : "device profile");
        esag_kernels *k = rg_kernels(rt, tunings[ti]);
        static const uint32_t types[4] = {3, 8, 1, 0};
        for (int i = 0; i < 4; i++)
            test_embed(rt, k, types[i]);
        test_rmsnorm(rt, k, 1, 576, 0);
        test_rmsnorm(rt, k, 5, 576, 1);
        test_rmsnorm(rt, k, 7, 1536, 0);
        test_rmsnorm(rt, k, 3, 12, 0);
        test_silu(rt, k, 1, 1536, 0);
        test_silu(rt, k, 5, 1536, 1);
        test_silu(rt, k, 3, 77, 1);
        test_add_scale(rt, k, 576 * 5);
        test_add_scale(rt, k, 1);
        test_add_scale(rt, k, 100003);
        esag_kernels_destroy(k);
    }
    return rg_finish(rt, "test_rgpu_ops");
}
