/* test_rgpu_dequant.c - dequantization in the kernels, on hand-built blocks of known values.
 *
 * For F32, F16, Q4_1 and Q8_0 it builds a small tensor block by block from chosen scales,
 * minimums and codes (negative scales, f16 extremes and subnormals, nibbles 0 and 15, int8
 * -128 and 127, Q8_0 rows that start at odd blocks, so 2 bytes past a word boundary), writes
 * the value every element must have, and checks, exactly, three readers of the blocks:
 *  - embed: the rows gathered by id (and an out-of-range id giving NaN);
 *  - matvec and tiled matmul with x = the identity (token t is the unit vector e_t), so
 *    y[t][r] = W[r][t]: every product but one is 0 and every value chosen is exact in f32.
 * With the device's tuning, then with rows split by 8-element units and by whole blocks. */
#include "rgpu_harness.h"

enum { MAX_R = 4, MAX_C = 96 };

typedef struct tensor {
    uint32_t type, rows, cols;
    uint8_t bytes[MAX_R * MAX_C * 4];
    float want[MAX_R][MAX_C];
} tensor;

static void put16(uint8_t *p, uint16_t h)
{
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}

/* Q4_1: block b gets (d, m) from the list and codes from a pattern; value d * q + m. */
static void build_q4_1(tensor *t)
{
    static const float dm[6][2] = {{1.0f, 0.0f}, {-0.5f, 3.25f}, {0.125f, -8.0f},
                                   {2.0f, -1.0f}, {-65504.0f, 0.5f}, {0x1p-24f, -0x1p-14f}};
    t->type = 3, t->rows = 3, t->cols = 64;
    for (uint32_t g = 0; g < 6; g++) {
        uint8_t *blk = t->bytes + 20 * g, q[32];
        for (int i = 0; i < 32; i++) {
            switch (g) {
            case 0: q[i] = (uint8_t)(i % 16); break;
            case 1: q[i] = 15; break;
            case 2: q[i] = (uint8_t)(15 - i % 16); break;
            case 3: q[i] = 0; break;
            case 4: q[i] = (uint8_t)(i & 1 ? 15 : 0); break;
            default: q[i] = (uint8_t)((i * 7 + 3) % 16); break;
            }
        }
        put16(blk, ref_f32_to_f16(dm[g][0]));
        put16(blk + 2, ref_f32_to_f16(dm[g][1]));
        for (int j = 0; j < 16; j++) /* byte j: element j low, element j + 16 high */
            blk[4 + j] = (uint8_t)(q[j] | q[j + 16] << 4);
        for (int i = 0; i < 32; i++)
            t->want[g / 2][32 * (g % 2) + i] = dm[g][0] * (float)q[i] + dm[g][1];
    }
}

/* Q8_0 with 3 blocks a row: rows 1 and 2 start at blocks 3 and 6 (byte 102: not 4-aligned). */
static void build_q8_0(tensor *t)
{
    static const float d[9] = {1.0f, -0.25f, 0.5f, 65504.0f, 0x1p-24f, -2.0f, 0.0f, 3.0f, -1.0f};
    t->type = 8, t->rows = 3, t->cols = 96;
    for (uint32_t g = 0; g < 9; g++) {
        uint8_t *blk = t->bytes + 34 * g;
        put16(blk, ref_f32_to_f16(d[g]));
        for (int i = 0; i < 32; i++) {
            int q = (int)((i * (2 * g + 1) + 7 * g) & 255u) - 128;
            if (i == 0)
                q = -128;
            if (i == 31)
                q = 127;
            if (g == 8)
                q = i & 1 ? 127 : -128;
            blk[2 + i] = (uint8_t)(int8_t)q;
            t->want[g / 3][32 * (g % 3) + i] = d[g] * (float)q;
        }
    }
}

/* F16: extremes, signed zeros, subnormals, then random finite halves. */
static void build_f16(tensor *t)
{
    static const uint16_t special[] = {0x0000, 0x8000, 0x3c00, 0xc100, 0x7bff, 0xfbff, 0x0001,
                                       0x8001, 0x0400, 0x03ff, 0x3555, 0xb3ff};
    t->type = 1, t->rows = 2, t->cols = 64;
    for (uint32_t i = 0; i < t->rows * t->cols; i++) {
        uint16_t h = i < sizeof special / 2 ? special[i] : (uint16_t)rng_u64();
        if ((h & 0x7c00u) == 0x7c00u) /* no infinities or NaN: they would poison the products */
            h &= 0xbfffu;
        put16(t->bytes + 2 * i, h);
        t->want[i / t->cols][i % t->cols] = ref_f16_to_f32(h);
    }
}

static void build_f32(tensor *t)
{
    t->type = 0, t->rows = 4, t->cols = 32;
    for (uint32_t i = 0; i < t->rows * t->cols; i++) {
        float v = (i % 5 == 0) ? -0x1p100f * (float)i : rng_normal();
        memcpy(t->bytes + 4 * i, &v, 4);
        t->want[i / t->cols][i % t->cols] = v;
    }
}

static int same(float a, float b) { return a == b || (isnan(a) && isnan(b)); }

static void check_tensor(esag_rt *rt, esag_kernels *k, const tensor *t, const char *name, const char *tuning)
{
    uint32_t R = t->rows, C = t->cols, T = C;
    uint64_t bytes = esag_tensor_bytes(t->type, R, C);
    EXPECT(bytes == ref_row_bytes(t->type, C) * R, "%s: esag_tensor_bytes %llu", name, (unsigned long long)bytes);
    esag_buffer w = rg_upload(rt, t->bytes, bytes);
    /* ids: every row in reverse, then an id past the table */
    uint32_t ids[MAX_R + 1];
    for (uint32_t i = 0; i < R; i++)
        ids[i] = R - 1 - i;
    ids[R] = R;
    static float eye[MAX_C * MAX_C];
    memset(eye, 0, sizeof eye);
    for (uint32_t i = 0; i < T; i++)
        eye[i * C + i] = 1.0f;
    esag_buffer bid = rg_upload(rt, ids, sizeof ids), bx = rg_upload(rt, eye, sizeof(float) * T * C);
    esag_buffer be = rg_upload(rt, NULL, sizeof(float) * (R + 1) * C);
    esag_buffer bv = rg_upload(rt, NULL, sizeof(float) * T * R), bm = rg_upload(rt, NULL, sizeof(float) * T * R);
    esag_matrix m = {.data = w.address, .type = t->type, .rows = R, .cols = C};
    VkCommandBuffer cb;
    EXPECT_ST(esag_begin(rt, &cb));
    EXPECT_ST(esag_cmd_embed(k, cb, &m, bid.address, R + 1, be.address, 0));
    esag_matmul_args a = {.w = m, .x = bx.address, .y = bv.address, .T = T, .path = ESAG_MATMUL_VEC};
    EXPECT_ST(esag_cmd_matmul(k, cb, &a));
    a.y = bm.address;
    a.path = ESAG_MATMUL_TILED;
    EXPECT_ST(esag_cmd_matmul(k, cb, &a));
    EXPECT_ST(esag_submit_wait(rt));
    static float e[(MAX_R + 1) * MAX_C], yv[MAX_C * MAX_R], ym[MAX_C * MAX_R];
    rg_download(rt, &be, e, sizeof(float) * (R + 1) * C);
    rg_download(rt, &bv, yv, sizeof(float) * T * R);
    rg_download(rt, &bm, ym, sizeof(float) * T * R);
    int bad_e = 0, bad_v = 0, bad_m = 0;
    for (uint32_t i = 0; i <= R; i++)
        for (uint32_t c = 0; c < C; c++) {
            float want = i < R ? t->want[ids[i]][c] : NAN;
            if (!same(e[i * C + c], want) && !bad_e++)
                fprintf(stderr, "  %s embed (%s): token %u (id %u) col %u: %.9g, want %.9g\n", name, tuning, i,
                        ids[i], c, (double)e[i * C + c], (double)want);
        }
    for (uint32_t c = 0; c < T; c++)
        for (uint32_t r = 0; r < R; r++) {
            float want = t->want[r][c];
            if (!same(yv[c * R + r], want) && !bad_v++)
                fprintf(stderr, "  %s matvec (%s): W[%u][%u] = %.9g, want %.9g\n", name, tuning, r, c,
                        (double)yv[c * R + r], (double)want);
            if (!same(ym[c * R + r], want) && !bad_m++)
                fprintf(stderr, "  %s matmul (%s): W[%u][%u] = %.9g, want %.9g\n", name, tuning, r, c,
                        (double)ym[c * R + r], (double)want);
        }
    EXPECT(bad_e == 0, "%s embed (%s): %d wrong values", name, tuning, bad_e);
    EXPECT(bad_v == 0, "%s matvec (%s): %d wrong values", name, tuning, bad_v);
    EXPECT(bad_m == 0, "%s matmul (%s): %d wrong values", name, tuning, bad_m);
    esag_buffer *all[] = {&w, &bid, &bx, &be, &bv, &bm};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        esag_buffer_destroy(rt, all[i]);
}

int main(void)
{
    esag_rt *rt = rg_runtime(0);
    rng_seed(11);
    static tensor ts[4];
    build_q4_1(&ts[0]);
    build_q8_0(&ts[1]);
    build_f16(&ts[2]);
    build_f32(&ts[3]);
    const char *names[4] = {"Q4_1", "Q8_0", "F16", "F32"};
    /* the device profile, then the kernels split by units (in several subgroups on lavapipe)
     * and by whole blocks (one subgroup) */
    esag_tuning units = {.wg = 8, .mv_wg = 64, .mv_rows = 3, .mv_split = ESAG_SPLIT_UNITS, .mm_bm = 16,
                         .mm_bn = 16, .mm_tm = 4, .mm_tn = 4, .mm_split = ESAG_SPLIT_UNITS};
    esag_tuning blocks = {.wg = 8, .mv_wg = 8, .mv_rows = 5, .mv_split = ESAG_SPLIT_BLOCKS, .mm_bm = 8,
                          .mm_bn = 16, .mm_tm = 4, .mm_tn = 4, .mm_split = ESAG_SPLIT_BLOCKS};
    const esag_tuning *tunings[3] = {NULL, &units, &blocks};
    const char *tnames[3] = {"device profile", "split by units", "split by blocks"};
    for (int ti = 0; ti < 3; ti++) {
        esag_kernels *k = rg_kernels(rt, tunings[ti]);
        for (int i = 0; i < 4; i++)
            check_tensor(rt, k, &ts[i], names[i], tnames[ti]);
        esag_kernels_destroy(k);
    }
    return rg_finish(rt, "test_rgpu_dequant");
}
