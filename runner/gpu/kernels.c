/* kernels.c - the model kernels: device profiles, pipelines (made on first use from the
 * embedded SPIR-V, specialized by the tuning), and recording with shape checks. */
#include "kernels.h"

#include "esag_shaders.h"
#include "kernel_push.h"

#include <stdlib.h>
#include <string.h>

/* Kernels with one variant per weight type, and the rest. */
enum { K_MATVEC, K_MATMUL, K_MATMUL64, K_EMBED, K_TYPED };
enum { K_RMSNORM, K_SILU, K_ADD, K_SCALE, K_PLAIN };
enum { N_TYPES = 4 };

typedef struct spirv {
    const uint32_t *code;
    const size_t *size;
} spirv;

#define ESAG_SPV(name) {esag_shader_##name##_spv, &esag_shader_##name##_spv_size}
static const spirv TYPED[K_TYPED][N_TYPES] = { /* columns: F32, F16, Q4_1, Q8_0 */
    [K_MATVEC] = {ESAG_SPV(matvec_f32), ESAG_SPV(matvec_f16), ESAG_SPV(matvec_q4_1), ESAG_SPV(matvec_q8_0)},
    [K_MATMUL] = {ESAG_SPV(matmul_f32), ESAG_SPV(matmul_f16), ESAG_SPV(matmul_q4_1), ESAG_SPV(matmul_q8_0)},
    [K_MATMUL64] = {ESAG_SPV(matmul64_f32), ESAG_SPV(matmul64_f16), ESAG_SPV(matmul64_q4_1), ESAG_SPV(matmul64_q8_0)},
    [K_EMBED] = {ESAG_SPV(embed_f32), ESAG_SPV(embed_f16), ESAG_SPV(embed_q4_1), ESAG_SPV(embed_q8_0)},
};
static const spirv PLAIN[K_PLAIN] = {
    [K_RMSNORM] = ESAG_SPV(rmsnorm),
    [K_SILU] = ESAG_SPV(silu_mul),
    [K_ADD] = ESAG_SPV(add),
    [K_SCALE] = ESAG_SPV(scale),
};
#undef ESAG_SPV

/* Tuning per kind of device; the first whose type matches (VK_PHYSICAL_DEVICE_TYPE_MAX_ENUM:
 * any) and whose needs the device meets wins. "cpu" was measured on lavapipe with
 * esa-kernel-bench (runner/gpu/README.md): there a subgroup loads its lanes' addresses one by
 * one, so fewer, larger loads per invocation (whole blocks, 16 x 16 register tiles) and
 * one-subgroup matvec workgroups (no barrier) won 2-5x over "gpu"; then 64-bit shared elements
 * with 32 x 32 tiles another 1.2-2x (the row for devices without shaderInt64 keeps the shape
 * measured before them). "gpu" is the coalesced shape usual on GPUs (ggml-vulkan's tiles), not
 * yet measured here. */
typedef struct device_profile {
    const char *name;
    VkPhysicalDeviceType type;
    int needs_int64; /* the row applies only where shaderInt64 is */
    esag_tuning t;
} device_profile;

/* the "cpu" rows differ in the matmul only */
#define CPU_REST .wg = 64, .norm_wg = 8, .mv_wg = 8, .mv_rows = 16, .mv_split = ESAG_SPLIT_BLOCKS, .mv_max_tokens = 8
static const device_profile PROFILES[] = {
    {"cpu", VK_PHYSICAL_DEVICE_TYPE_CPU, 1,
     {CPU_REST, .mm_bm = 128, .mm_bn = 128, .mm_tm = 32, .mm_tn = 32, .mm_split = ESAG_SPLIT_BLOCKS,
      .mm_words = ESAG_WORDS_64}},
    {"cpu", VK_PHYSICAL_DEVICE_TYPE_CPU, 0,
     {CPU_REST, .mm_bm = 128, .mm_bn = 64, .mm_tm = 16, .mm_tn = 16, .mm_split = ESAG_SPLIT_BLOCKS,
      .mm_words = ESAG_WORDS_32}},
    {"gpu", VK_PHYSICAL_DEVICE_TYPE_MAX_ENUM, 0,
     {.wg = 256, .norm_wg = 256, .mv_wg = 64, .mv_rows = 2, .mv_split = ESAG_SPLIT_UNITS, .mv_max_tokens = 4,
      .mm_bm = 64, .mm_bn = 64, .mm_tm = 4, .mm_tn = 4, .mm_split = ESAG_SPLIT_UNITS, .mm_words = ESAG_WORDS_32}},
};
#undef CPU_REST

struct esag_kernels {
    esag_rt *rt;
    esag_tuning t;
    const char *profile;
    uint32_t min_sg;                 /* the device's smallest compute subgroup */
    VkPipeline typed[K_TYPED][N_TYPES];
    VkPipeline plain[K_PLAIN];
};

static int type_slot(uint32_t type)
{
    switch (type) {
    case ESAG_TYPE_F32: return 0;
    case ESAG_TYPE_F16: return 1;
    case ESAG_TYPE_Q4_1: return 2;
    case ESAG_TYPE_Q8_0: return 3;
    default: return -1;
    }
}

uint64_t esag_tensor_bytes(uint32_t type, uint32_t rows, uint32_t cols)
{
    static const uint32_t block_bytes[N_TYPES] = {128, 64, 20, 34};
    int s = type_slot(type);
    if (s < 0 || cols % 32)
        return 0;
    return (uint64_t)rows * (cols / 32) * block_bytes[s];
}

static uint32_t div_up(uint64_t a, uint32_t b) { return (uint32_t)((a + b - 1) / b); }
static int pow2(uint32_t x) { return x && !(x & (x - 1)); }

/* Subgroups a workgroup of wg invocations may hold: the shared arrays are sized by it. */
static uint32_t max_subgroups(const esag_kernels *k, uint32_t wg) { return div_up(wg, k->min_sg); }

static esag_status check_tuning(esag_kernels *k)
{
    esag_rt *rt = k->rt;
    const esag_device_info *di = esag_rt_device_info(rt);
    const esag_tuning *t = &k->t;
    uint32_t max_wg = di->max_workgroup_invocations < di->max_workgroup_size_x
                          ? di->max_workgroup_invocations : di->max_workgroup_size_x;
    const struct { const char *name; uint32_t v; } sizes[] = {
        {"wg", t->wg}, {"norm_wg", t->norm_wg}, {"mv_wg", t->mv_wg},
        {"mm_bm/mm_tm*mm_bn/mm_tn", t->mm_tm && t->mm_tn ? (t->mm_bm / t->mm_tm) * (t->mm_bn / t->mm_tn) : 0},
    };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        if (sizes[i].v == 0 || sizes[i].v > max_wg)
            return esag_fail(rt, ESAG_ERR_ARG, "tuning: workgroup size %s = %u is outside 1..%u",
                             sizes[i].name, sizes[i].v, max_wg);
    if (t->mv_rows == 0 || t->mv_rows > 64)
        return esag_fail(rt, ESAG_ERR_ARG, "tuning: mv_rows %u must be 1..64", t->mv_rows);
    if (4ull * t->mv_rows * max_subgroups(k, t->mv_wg) > di->max_shared_memory)
        return esag_fail(rt, ESAG_ERR_ARG, "tuning: mv_rows %u x mv_wg %u exceed the shared memory",
                         t->mv_rows, t->mv_wg);
    /* A bound found, not derived: 64 x 32 register tiles computed wrong sums on lavapipe (Mesa
     * 22.3), 32 x 32 right (test_rgpu_matmul runs that corner) */
    if (t->mm_tm > 32 || t->mm_tn > 32 || t->mm_bm % t->mm_tm || t->mm_bn % t->mm_tn)
        return esag_fail(rt, ESAG_ERR_ARG, "tuning: mm_tm, mm_tn must be 1..32 and divide mm_bm, mm_bn");
    if ((t->mv_split != ESAG_SPLIT_UNITS && t->mv_split != ESAG_SPLIT_BLOCKS) ||
        (t->mm_split != ESAG_SPLIT_UNITS && t->mm_split != ESAG_SPLIT_BLOCKS))
        return esag_fail(rt, ESAG_ERR_ARG, "tuning: mv_split %u, mm_split %u: 1 (units) or 2 (blocks)",
                         t->mv_split, t->mm_split);
    if (t->mm_words != ESAG_WORDS_32 && t->mm_words != ESAG_WORDS_64)
        return esag_fail(rt, ESAG_ERR_ARG, "tuning: mm_words %u: 1 (32-bit) or 2 (64-bit)", t->mm_words);
    if (t->mm_words == ESAG_WORDS_64 && !di->shader_int64)
        return esag_fail(rt, ESAG_ERR_ARG, "tuning: mm_words 2 needs shaderInt64, which %s lacks", di->name);
    uint64_t mm_shared = 128ull * ((uint64_t)t->mm_bm + t->mm_bn); /* 128 bytes per row and token */
    if (mm_shared > di->max_shared_memory)
        return esag_fail(rt, ESAG_ERR_ARG, "tuning: mm_bm %u + mm_bn %u need %llu bytes of shared memory (the device has %u)",
                         t->mm_bm, t->mm_bn, (unsigned long long)mm_shared, di->max_shared_memory);
    if (!pow2(t->mv_wg) || !pow2(t->norm_wg))
        return esag_fail(rt, ESAG_ERR_ARG, "tuning: mv_wg and norm_wg must be powers of two");
    return ESAG_OK;
}

esag_status esag_kernels_create(esag_rt *rt, const esag_tuning *tuning, esag_kernels **out)
{
    if (!rt || !out)
        return ESAG_ERR_ARG;
    *out = NULL;
    const esag_device_info *di = esag_rt_device_info(rt);
    esag_kernels *k = calloc(1, sizeof *k);
    if (!k)
        return esag_fail(rt, ESAG_ERR_HOST_MEMORY, "esag_kernels_create: out of host memory");
    k->rt = rt;
    k->min_sg = di->min_subgroup_size;
    size_t np = sizeof PROFILES / sizeof PROFILES[0];
    const device_profile *p = &PROFILES[np - 1];
    for (size_t i = 0; i < np; i++)
        if ((PROFILES[i].type == di->type || PROFILES[i].type == VK_PHYSICAL_DEVICE_TYPE_MAX_ENUM) &&
            (!PROFILES[i].needs_int64 || di->shader_int64)) {
            p = &PROFILES[i];
            break;
        }
    k->profile = p->name;
    k->t = p->t;
    if (tuning) {
        uint32_t *dst = (uint32_t *)&k->t;
        const uint32_t *src = (const uint32_t *)tuning;
        for (size_t i = 0; i < sizeof *tuning / sizeof(uint32_t); i++)
            if (src[i])
                dst[i] = src[i];
    }
    esag_status s = check_tuning(k);
    if (s != ESAG_OK) {
        free(k);
        return s;
    }
    *out = k;
    return ESAG_OK;
}

void esag_kernels_destroy(esag_kernels *k)
{
    if (!k)
        return;
    for (int i = 0; i < K_TYPED; i++)
        for (int j = 0; j < N_TYPES; j++)
            esag_pipeline_destroy(k->rt, k->typed[i][j]);
    for (int i = 0; i < K_PLAIN; i++)
        esag_pipeline_destroy(k->rt, k->plain[i]);
    free(k);
}

void esag_kernels_tuning(const esag_kernels *k, esag_tuning *tuning, const char **profile)
{
    if (tuning)
        *tuning = k->t;
    if (profile)
        *profile = k->profile;
}

/* The pipeline of a kernel, made on first use. */
static esag_status typed_pipeline(esag_kernels *k, int kernel, int slot, VkPipeline *out)
{
    if (!k->typed[kernel][slot]) {
        const esag_tuning *t = &k->t;
        uint32_t spec[6], n = 0;
        if (kernel == K_MATVEC) {
            spec[0] = t->mv_wg, spec[1] = t->mv_rows, spec[2] = max_subgroups(k, t->mv_wg);
            spec[3] = t->mv_split == ESAG_SPLIT_BLOCKS, n = 4;
        } else if (kernel == K_MATMUL || kernel == K_MATMUL64) {
            spec[0] = (t->mm_bm / t->mm_tm) * (t->mm_bn / t->mm_tn);
            spec[1] = t->mm_bm, spec[2] = t->mm_bn, spec[3] = t->mm_tm, spec[4] = t->mm_tn;
            spec[5] = t->mm_split == ESAG_SPLIT_BLOCKS, n = 6;
        } else {
            spec[0] = t->wg, n = 1;
        }
        const spirv *sp = &TYPED[kernel][slot];
        esag_status s = esag_pipeline_create(k->rt, sp->code, *sp->size, spec, n, &k->typed[kernel][slot]);
        if (s != ESAG_OK)
            return s;
    }
    *out = k->typed[kernel][slot];
    return ESAG_OK;
}

static esag_status plain_pipeline(esag_kernels *k, int kernel, VkPipeline *out)
{
    if (!k->plain[kernel]) {
        uint32_t spec[2] = {k->t.wg, 0}, n = 1;
        if (kernel == K_RMSNORM)
            spec[0] = k->t.norm_wg, spec[1] = max_subgroups(k, k->t.norm_wg), n = 2;
        esag_status s = esag_pipeline_create(k->rt, PLAIN[kernel].code, *PLAIN[kernel].size, spec, n,
                                             &k->plain[kernel]);
        if (s != ESAG_OK)
            return s;
    }
    *out = k->plain[kernel];
    return ESAG_OK;
}

/* A 1-D grid of `groups` workgroups folded into x and y (the shaders unfold it). */
static esag_status fold_grid(esag_kernels *k, uint64_t groups, uint32_t *gx, uint32_t *gy)
{
    const uint32_t *mc = esag_rt_device_info(k->rt)->max_workgroup_count;
    *gy = 0;
    *gx = groups < mc[0] ? (uint32_t)groups : mc[0];
    uint64_t y = (groups + *gx - 1) / *gx;
    if (y > mc[1])
        return esag_fail(k->rt, ESAG_ERR_LIMIT, "%llu workgroups exceed the device's grid",
                         (unsigned long long)groups);
    *gy = (uint32_t)y;
    return ESAG_OK;
}

static esag_status check_matrix(esag_kernels *k, const esag_matrix *w, const char *what, int *slot)
{
    esag_rt *rt = k->rt;
    *slot = type_slot(w->type);
    if (*slot < 0)
        return esag_fail(rt, ESAG_ERR_ARG, "%s: type %u is not F32, F16, Q4_1 or Q8_0", what, w->type);
    if (w->rows == 0 || w->cols == 0 || w->cols % 32)
        return esag_fail(rt, ESAG_ERR_ARG, "%s: %u x %u: rows >= 1 and cols a multiple of 32 are required",
                         what, w->rows, w->cols);
    if (!w->data || w->data % 16)
        return esag_fail(rt, ESAG_ERR_ARG, "%s: the data address must be 16-byte aligned", what);
    if (esag_tensor_bytes(w->type, w->rows, w->cols) >= (1ull << 32))
        return esag_fail(rt, ESAG_ERR_LIMIT, "%s: %u x %u is 4 GiB or more (32-bit indices)", what,
                         w->rows, w->cols);
    return ESAG_OK;
}

/* An activation [T][ld] of which `used` floats a row are touched: ld >= used, alignment, and
 * 32-bit indices. ld 0 means used. */
static esag_status check_act(esag_kernels *k, const char *what, VkDeviceAddress a, uint32_t *ld,
                             uint32_t used, uint32_t T, uint32_t align)
{
    if (*ld == 0)
        *ld = used;
    if (!a || a % align)
        return esag_fail(k->rt, ESAG_ERR_ARG, "%s: the address must be %u-byte aligned", what, align);
    if (*ld < used || (align == 16 && *ld % 4))
        return esag_fail(k->rt, ESAG_ERR_ARG, "%s: leading dimension %u (row of %u)%s", what, *ld, used,
                         align == 16 ? ", a multiple of 4 is required" : " is too small");
    if ((uint64_t)T * *ld >= (1ull << 32))
        return esag_fail(k->rt, ESAG_ERR_LIMIT, "%s: %u x %u floats exceed 32-bit indices", what, T, *ld);
    return ESAG_OK;
}

esag_status esag_cmd_matmul(esag_kernels *k, VkCommandBuffer cb, const esag_matmul_args *a)
{
    if (!k || !cb || !a)
        return esag_fail(k ? k->rt : NULL, ESAG_ERR_ARG, "esag_cmd_matmul: NULL argument");
    esag_rt *rt = k->rt;
    int slot;
    esag_status s = check_matrix(k, &a->w, "matmul weights", &slot);
    uint32_t ldx = a->ldx, ldy = a->ldy;
    if (s == ESAG_OK && (a->T == 0 || a->accumulate > 1 || a->path > ESAG_MATMUL_TILED))
        s = esag_fail(rt, ESAG_ERR_ARG, "matmul: T %u must be >= 1, accumulate 0 or 1, path 0..2", a->T);
    if (s == ESAG_OK)
        s = check_act(k, "matmul x", a->x, &ldx, a->w.cols, a->T, 16);
    if (s == ESAG_OK)
        s = check_act(k, "matmul y", a->y, &ldy, a->w.rows, a->T, 4);
    if (s != ESAG_OK)
        return s;
    const uint32_t *mc = esag_rt_device_info(rt)->max_workgroup_count;
    int vec = a->path == ESAG_MATMUL_VEC || (a->path == ESAG_MATMUL_AUTO && a->T <= k->t.mv_max_tokens);
    esag_pc_mat pc = {
        .w = a->w.data, .x = a->x, .y = a->y,
        .rows = a->w.rows, .nb = a->w.cols / 32, .ldx = ldx, .ldy = ldy,
        .T = a->T, .accumulate = a->accumulate,
    };
    VkPipeline p;
    uint32_t gx, gy, gz = 1;
    if (vec) {
        if (a->T > mc[2])
            return esag_fail(rt, ESAG_ERR_LIMIT, "matvec: T %u exceeds the device's grid (%u)", a->T, mc[2]);
        s = fold_grid(k, div_up(a->w.rows, k->t.mv_rows), &gx, &gy);
        gz = a->T;
        pc.groups_x = gx;
    } else {
        gx = div_up(a->w.rows, k->t.mm_bm);
        gy = div_up(a->T, k->t.mm_bn);
        if (gx > mc[0] || gy > mc[1])
            s = esag_fail(rt, ESAG_ERR_LIMIT, "matmul: a %u x %u grid exceeds the device's", gx, gy);
    }
    if (s == ESAG_OK)
        s = typed_pipeline(k, vec ? K_MATVEC : k->t.mm_words == ESAG_WORDS_64 ? K_MATMUL64 : K_MATMUL, slot, &p);
    if (s == ESAG_OK)
        esag_cmd_dispatch(rt, cb, p, &pc, sizeof pc, gx, gy, gz);
    return s;
}

esag_status esag_cmd_embed(esag_kernels *k, VkCommandBuffer cb, const esag_matrix *table,
                           VkDeviceAddress ids, uint32_t T, VkDeviceAddress out, uint32_t ldo)
{
    if (!k || !cb || !table)
        return esag_fail(k ? k->rt : NULL, ESAG_ERR_ARG, "esag_cmd_embed: NULL argument");
    int slot;
    esag_status s = check_matrix(k, table, "embedding table", &slot);
    if (s == ESAG_OK && (T == 0 || T > esag_rt_device_info(k->rt)->max_workgroup_count[1]))
        s = esag_fail(k->rt, ESAG_ERR_ARG, "embed: T %u must be 1..the device's grid", T);
    uint32_t one = 1;
    if (s == ESAG_OK)
        s = check_act(k, "embed ids", ids, &one, 1, T, 4);
    if (s == ESAG_OK)
        s = check_act(k, "embed out", out, &ldo, table->cols, T, 4);
    VkPipeline p;
    if (s == ESAG_OK)
        s = typed_pipeline(k, K_EMBED, slot, &p);
    if (s != ESAG_OK)
        return s;
    esag_pc_embed pc = {.table = table->data, .ids = ids, .out = out,
                        .rows = table->rows, .nb = table->cols / 32, .ldo = ldo, .T = T};
    esag_cmd_dispatch(k->rt, cb, p, &pc, sizeof pc, div_up(pc.nb * 4ull, k->t.wg), T, 1);
    return ESAG_OK;
}

esag_status esag_cmd_rmsnorm(esag_kernels *k, VkCommandBuffer cb, VkDeviceAddress x,
                             uint32_t ldx, VkDeviceAddress w, VkDeviceAddress out, uint32_t ldo,
                             uint32_t T, uint32_t cols, float eps)
{
    if (!k || !cb)
        return esag_fail(k ? k->rt : NULL, ESAG_ERR_ARG, "esag_cmd_rmsnorm: NULL argument");
    esag_status s = ESAG_OK;
    if (cols == 0 || cols % 4 || T == 0 || T > esag_rt_device_info(k->rt)->max_workgroup_count[0] ||
        !(eps >= 0.0f && eps < 1.0f))
        s = esag_fail(k->rt, ESAG_ERR_ARG, "rmsnorm: cols %u (a multiple of 4), T %u, eps %g", cols, T,
                      (double)eps);
    uint32_t ldw = cols;
    if (s == ESAG_OK)
        s = check_act(k, "rmsnorm x", x, &ldx, cols, T, 16);
    if (s == ESAG_OK)
        s = check_act(k, "rmsnorm w", w, &ldw, cols, 1, 16);
    if (s == ESAG_OK)
        s = check_act(k, "rmsnorm out", out, &ldo, cols, T, 16);
    VkPipeline p;
    if (s == ESAG_OK)
        s = plain_pipeline(k, K_RMSNORM, &p);
    if (s != ESAG_OK)
        return s;
    esag_pc_rmsnorm pc = {.x = x, .w = w, .out = out, .cols = cols, .ldx = ldx, .ldo = ldo, .T = T, .eps = eps};
    esag_cmd_dispatch(k->rt, cb, p, &pc, sizeof pc, T, 1, 1);
    return ESAG_OK;
}

esag_status esag_cmd_silu_mul(esag_kernels *k, VkCommandBuffer cb, VkDeviceAddress g,
                              VkDeviceAddress u, uint32_t ld_in, VkDeviceAddress out,
                              uint32_t ldo, uint32_t T, uint32_t n)
{
    if (!k || !cb)
        return esag_fail(k ? k->rt : NULL, ESAG_ERR_ARG, "esag_cmd_silu_mul: NULL argument");
    esag_status s = ESAG_OK;
    if (n == 0 || T == 0 || T > esag_rt_device_info(k->rt)->max_workgroup_count[1])
        s = esag_fail(k->rt, ESAG_ERR_ARG, "silu_mul: n %u and T %u must be >= 1", n, T);
    uint32_t ldu = ld_in;
    if (s == ESAG_OK)
        s = check_act(k, "silu_mul g", g, &ld_in, n, T, 4);
    if (s == ESAG_OK)
        s = check_act(k, "silu_mul u", u, &ldu, n, T, 4);
    if (s == ESAG_OK)
        s = check_act(k, "silu_mul out", out, &ldo, n, T, 4);
    VkPipeline p;
    if (s == ESAG_OK)
        s = plain_pipeline(k, K_SILU, &p);
    if (s != ESAG_OK)
        return s;
    esag_pc_silu pc = {.g = g, .u = u, .out = out, .n = n, .ld_in = ld_in, .ldo = ldo, .T = T};
    esag_cmd_dispatch(k->rt, cb, p, &pc, sizeof pc, div_up(n, k->t.wg), T, 1);
    return ESAG_OK;
}

/* add and scale: one element per invocation over a folded 1-D grid. */
static esag_status elementwise(esag_kernels *k, VkCommandBuffer cb, int kernel, const char *what,
                               const VkDeviceAddress *addrs, int naddrs, uint32_t n, void *pc,
                               uint32_t pc_size, uint32_t *groups_x)
{
    if (!k || !cb)
        return esag_fail(k ? k->rt : NULL, ESAG_ERR_ARG, "%s: NULL argument", what);
    if (n == 0)
        return esag_fail(k->rt, ESAG_ERR_ARG, "%s: n must be >= 1", what);
    for (int i = 0; i < naddrs; i++)
        if (!addrs[i] || addrs[i] % 4)
            return esag_fail(k->rt, ESAG_ERR_ARG, "%s: addresses must be 4-byte aligned", what);
    uint32_t gx, gy;
    VkPipeline p;
    esag_status s = fold_grid(k, div_up(n, k->t.wg), &gx, &gy);
    if (s == ESAG_OK)
        s = plain_pipeline(k, kernel, &p);
    if (s != ESAG_OK)
        return s;
    *groups_x = gx;
    esag_cmd_dispatch(k->rt, cb, p, pc, pc_size, gx, gy, 1);
    return ESAG_OK;
}

esag_status esag_cmd_add(esag_kernels *k, VkCommandBuffer cb, VkDeviceAddress a,
                         VkDeviceAddress b, VkDeviceAddress out, uint32_t n)
{
    esag_pc_add pc = {.a = a, .b = b, .out = out, .n = n};
    VkDeviceAddress addrs[3] = {a, b, out};
    return elementwise(k, cb, K_ADD, "add", addrs, 3, n, &pc, sizeof pc, &pc.groups_x);
}

esag_status esag_cmd_scale(esag_kernels *k, VkCommandBuffer cb, VkDeviceAddress a, float s,
                           VkDeviceAddress out, uint32_t n)
{
    esag_pc_scale pc = {.a = a, .out = out, .n = n, .s = s};
    VkDeviceAddress addrs[2] = {a, out};
    return elementwise(k, cb, K_SCALE, "scale", addrs, 2, n, &pc, sizeof pc, &pc.groups_x);
}
