/* test_rgpu_matmul.c - y = W x on the device against the CPU reference, by normalized error.
 *
 * Random weights (normal, with some constant rows, which give Q4_1 a zero scale, and some rows
 * 100x larger) are quantized by the reference quantizers, uploaded as GGUF bytes and multiplied
 * by random x on both paths (matvec and tiled): the SmolLM2 shapes (576 and 1536 columns, the
 * 49152-row output head), T = 1, 5 and 512, shapes that are no multiple of the tiles, padded
 * leading dimensions and accumulation into y. Again with other tilings, one subgroup a
 * workgroup among them, with 32- and 64-bit shared elements (where the device has shaderInt64).
 * The reference multiplies the dequantized weights in double. */
#include "rgpu_harness.h"

#define TOL 2e-5
#define V ESAG_MATMUL_VEC
#define M ESAG_MATMUL_TILED
#define A ESAG_MATMUL_AUTO

typedef struct mcase {
    uint32_t type, rows, cols, T;
    esag_matmul_path path;
    uint32_t pad_x, pad_y, accumulate;
} mcase;

static const char *type_name(uint32_t t)
{
    return t == 0 ? "F32" : t == 1 ? "F16" : t == 3 ? "Q4_1" : "Q8_0";
}

static void run_case(esag_rt *rt, esag_kernels *k, const mcase *c, const char *tuning)
{
    uint32_t R = c->rows, C = c->cols, T = c->T, ldx = C + c->pad_x, ldy = R + c->pad_y;
    size_t rb = ref_row_bytes(c->type, C);
    uint8_t *wq = malloc(rb * R);
    float *wd = malloc(sizeof(float) * R * C), *row = malloc(sizeof(float) * C);
    float *x = malloc(sizeof(float) * T * ldx), *y0 = malloc(sizeof(float) * T * ldy);
    float *want = malloc(sizeof(float) * T * ldy), *got = malloc(sizeof(float) * T * ldy);
    for (uint32_t r = 0; r < R; r++) {
        fill_normal(row, C, r % 17 == 5 ? 5.0f : 0.05f);
        if (r % 23 == 7)
            for (uint32_t i = 0; i < C; i++)
                row[i] = 0.25f;
        ref_quantize_row(c->type, row, C, wq + rb * r);
        ref_dequant_row(c->type, wq + rb * r, C, wd + (size_t)r * C);
    }
    fill_normal(x, (size_t)T * ldx, 1.0f);
    fill_normal(y0, (size_t)T * ldy, 1.0f);
    memcpy(want, y0, sizeof(float) * T * ldy);
    ref_matmul(wd, R, C, x, ldx, T, want, ldy, (int)c->accumulate);

    esag_buffer bw = rg_upload(rt, wq, rb * R), bx = rg_upload(rt, x, sizeof(float) * T * ldx);
    esag_buffer by = rg_upload(rt, y0, sizeof(float) * T * ldy);
    esag_matmul_args a = {.w = {.data = bw.address, .type = c->type, .rows = R, .cols = C},
                          .x = bx.address, .ldx = ldx, .y = by.address, .ldy = ldy, .T = T,
                          .accumulate = c->accumulate, .path = c->path};
    VkCommandBuffer cb;
    EXPECT_ST(esag_begin(rt, &cb));
    EXPECT_ST(esag_cmd_matmul(k, cb, &a));
    EXPECT_ST(esag_submit_wait(rt));
    rg_download(rt, &by, got, sizeof(float) * T * ldy);
    /* the padding of y must be untouched: compare whole rows */
    long bad;
    double err = norm_error(got, want, (size_t)T * ldy, TOL, &bad);
    const char *path = c->path == ESAG_MATMUL_VEC ? "vec" : c->path == ESAG_MATMUL_TILED ? "tiled" : "auto";
    fprintf(stderr, "  %-4s %5u x %4u T %3u %-5s ld %u/%u acc %u (%s): error %.2g\n", type_name(c->type), R, C,
            T, path, ldx, ldy, c->accumulate, tuning, err);
    EXPECT(err <= TOL, "%s %ux%u T %u %s (%s): error %.3g; first bad: token %ld row %ld: %.9g, want %.9g",
           type_name(c->type), R, C, T, path, tuning, err, bad < 0 ? -1 : bad / ldy, bad < 0 ? -1 : bad % ldy,
           bad < 0 ? 0.0 : (double)got[bad], bad < 0 ? 0.0 : (double)want[bad]);
    esag_buffer_destroy(rt, &bw);
    esag_buffer_destroy(rt, &bx);
    esag_buffer_destroy(rt, &by);
    free(wq), free(wd), free(row), free(x), free(y0), free(want), free(got);
}

int main(void)
{
    esag_rt *rt = rg_runtime(0);
    rng_seed(3);
    static const mcase full[] = {
        {3, 576, 576, 1, A, 0, 0, 0},    {3, 192, 576, 5, V, 0, 0, 0},   {3, 192, 576, 5, M, 0, 0, 0},
        {3, 1536, 576, 1, V, 0, 0, 1},   {3, 576, 1536, 1, V, 0, 0, 0},  {3, 576, 1536, 5, M, 0, 0, 1},
        {3, 576, 576, 512, A, 0, 0, 0},  {3, 1536, 576, 512, M, 0, 0, 1}, {3, 576, 1536, 512, M, 0, 0, 0},
        {8, 49152, 576, 1, A, 0, 0, 0},  {8, 192, 576, 512, M, 0, 0, 0}, {8, 576, 576, 5, V, 0, 0, 0},
        {1, 576, 576, 1, V, 0, 0, 0},    {1, 192, 576, 37, M, 0, 0, 0},  {0, 96, 576, 3, V, 0, 0, 0},
        {0, 96, 576, 70, M, 0, 0, 1},
    };
    /* no multiple of any tile: 100 rows, 7 tokens, padded x and y, accumulation; each type */
    static const mcase odd[] = {
        {3, 100, 96, 7, V, 4, 3, 1}, {3, 100, 96, 7, M, 4, 3, 1}, {3, 1, 32, 1, V, 0, 0, 0},
        {3, 65, 64, 1, M, 0, 0, 0},  {8, 100, 96, 7, V, 4, 3, 1}, {8, 100, 96, 7, M, 4, 3, 1},
        {8, 3, 32, 1, V, 0, 0, 0},   {1, 100, 96, 7, V, 4, 3, 1}, {1, 100, 96, 7, M, 4, 3, 1},
        {0, 100, 96, 7, V, 4, 3, 1}, {0, 100, 96, 7, M, 4, 3, 1}, {8, 77, 1536, 130, M, 8, 1, 0},
    };
    esag_kernels *k = rg_kernels(rt, NULL);
    for (size_t i = 0; i < sizeof full / sizeof full[0]; i++)
        run_case(rt, k, &full[i], "device profile");
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++)
        run_case(rt, k, &odd[i], "device profile");
    esag_kernels_destroy(k);
    /* every kernel shape whatever the device profile: matvec split by units and by blocks, in
     * one subgroup and in several (on lavapipe: 8 lanes), matmul dequantizing by units and by
     * blocks, small and large register tiles, 32- and 64-bit shared elements */
    static const struct { const char *name; esag_tuning t; } other[] = {
        {"mv 8x1 units, mm 16x16/4x4 units 32-bit",
         {.mv_wg = 8, .mv_rows = 1, .mv_split = 1, .mm_bm = 16, .mm_bn = 16, .mm_tm = 4, .mm_tn = 4, .mm_split = 1,
          .mm_words = 1}},
        {"mv 128x7 blocks, mm 32x16/8x3 blocks 32-bit",
         {.mv_wg = 128, .mv_rows = 7, .mv_split = 2, .mm_bm = 32, .mm_bn = 18, .mm_tm = 8, .mm_tn = 3, .mm_split = 2,
          .mm_words = 1}},
        {"mv 64x2 units, mm 64x64/4x4 units 32-bit (gpu)",
         {.mv_wg = 64, .mv_rows = 2, .mv_split = 1, .mm_bm = 64, .mm_bn = 64, .mm_tm = 4, .mm_tn = 4, .mm_split = 1,
          .mm_words = 1}},
        {"mv 8x16 blocks, mm 128x64/16x16 blocks 32-bit",
         {.mv_wg = 8, .mv_rows = 16, .mv_split = 2, .mm_bm = 128, .mm_bn = 64, .mm_tm = 16, .mm_tn = 16, .mm_split = 2,
          .mm_words = 1}},
        {"mm 128x128/32x32 blocks 64-bit (cpu)",
         {.mv_wg = 8, .mv_rows = 16, .mv_split = 2, .mm_bm = 128, .mm_bn = 128, .mm_tm = 32, .mm_tn = 32, .mm_split = 2,
          .mm_words = 2}},
        {"mm 128x128/32x32 blocks 32-bit", /* the largest register tile accepted */
         {.mm_bm = 128, .mm_bn = 128, .mm_tm = 32, .mm_tn = 32, .mm_split = 2, .mm_words = 1}},
        {"mm 48x40/12x10 units 64-bit",
         {.mm_bm = 48, .mm_bn = 40, .mm_tm = 12, .mm_tn = 10, .mm_split = 1, .mm_words = 2}},
    };
    for (size_t t = 0; t < sizeof other / sizeof other[0]; t++) {
        if (other[t].t.mm_words == ESAG_WORDS_64 && !esag_rt_device_info(rt)->shader_int64) {
            fprintf(stderr, "  %s: the device lacks shaderInt64, not tested\n", other[t].name);
            continue;
        }
        k = rg_kernels(rt, &other[t].t);
        for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++)
            run_case(rt, k, &odd[i], other[t].name);
        run_case(rt, k, &full[2], other[t].name);
        run_case(rt, k, &full[11], other[t].name);
        esag_kernels_destroy(k);
    }
    return rg_finish(rt, "test_rgpu_matmul");
}
