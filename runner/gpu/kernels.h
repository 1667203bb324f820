/* kernels.h - the model's compute kernels (everything of a Llama forward pass but attention,
 * which esa-vk records): matrix products with in-shader dequantization of GGUF weights,
 * embedding lookup, RMSNorm, SiLU(gate)*up, residual add and scale.
 *
 * Each esag_cmd_* checks its shapes and alignments (ESAG_ERR_ARG with the reason in
 * esag_rt_last_error, nothing recorded) and records one dispatch into cb. Buffers are device
 * addresses; activations are f32, row-major, with a leading dimension (ld, in floats; 0 means
 * "packed": the row length). The caller puts esag_cmd_barrier between dependent calls.
 * Pipelines are made on first use (a call may therefore also fail with a Vulkan error).
 * Per-device tuning comes from a table of profiles (kernels.c), overridable field by field.
 *
 * Thread safety: like the runtime it belongs to (externally synchronized).
 */
#ifndef ESAG_KERNELS_H
#define ESAG_KERNELS_H

#include "rt.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Weight types, by their ggml_type values as stored in GGUF. */
typedef enum esag_type {
    ESAG_TYPE_F32 = 0,
    ESAG_TYPE_F16 = 1,
    ESAG_TYPE_Q4_1 = 3, /* blocks of 32: f16 d, f16 m, 16 bytes (low nibbles 0..15, high 16..31) */
    ESAG_TYPE_Q8_0 = 8  /* blocks of 32: f16 d, 32 int8 (34 bytes: read in place, see quant.glsl) */
} esag_type;

/* Bytes of a [rows][cols] tensor of `type` (cols a multiple of 32); 0 for another type. */
uint64_t esag_tensor_bytes(uint32_t type, uint32_t rows, uint32_t cols);

/* A weight matrix W [rows][cols] as GGUF stores it (ggml ne[0] = cols, ne[1] = rows): the
 * tensor's bytes uploaded unchanged. */
typedef struct esag_matrix {
    VkDeviceAddress data; /* 16-byte aligned */
    uint32_t type;        /* esag_type */
    uint32_t rows, cols;  /* cols a multiple of 32 */
} esag_matrix;

/* How the invocations of a matrix product share a row's columns (esag_tuning.mv_split and
 * mm_split). */
typedef enum esag_split {
    ESAG_SPLIT_UNITS = 1,  /* units of 8 elements, 4 a block: adjacent invocations read adjacent
                            * words (coalesced: GPUs) */
    ESAG_SPLIT_BLOCKS = 2  /* whole blocks: fewer, larger reads per invocation (5 words a Q4_1
                            * block instead of 8): CPU devices such as lavapipe, which load a
                            * subgroup's addresses one lane at a time */
} esag_split;

/* The matmul's shared-memory element (esag_tuning.mm_words). */
typedef enum esag_words {
    ESAG_WORDS_32 = 1, /* a vec4 of 4 consecutive columns */
    ESAG_WORDS_64 = 2  /* a u64vec4 of two such vec4 (shaderInt64): half the shared loads, each
                        * twice as wide; on lavapipe, where every load whose address differs
                        * between lanes is a loop over the lanes, the fewer loads win */
} esag_words;

typedef struct esag_tuning {
    uint32_t wg;            /* workgroup size of embed, silu_mul, add, scale (1..1024) */
    uint32_t norm_wg;       /* workgroup size of rmsnorm (a power of two) */
    uint32_t mv_wg;         /* matvec: workgroup size (a power of two) */
    uint32_t mv_rows;       /* matvec: rows per workgroup (1..64) */
    uint32_t mv_split;      /* matvec: esag_split */
    uint32_t mv_max_tokens; /* ESAG_MATMUL_AUTO takes the matvec path up to this many tokens */
    uint32_t mm_bm, mm_bn;  /* matmul: rows x tokens per workgroup (multiples of mm_tm, mm_tn) */
    uint32_t mm_tm, mm_tn;  /* matmul: per invocation (each 1..32); the workgroup
                             * size is (mm_bm / mm_tm) * (mm_bn / mm_tn) */
    uint32_t mm_split;      /* matmul: esag_split of the dequantization into shared memory */
    uint32_t mm_words;      /* matmul: esag_words, the width of its shared loads */
} esag_tuning;

typedef struct esag_kernels esag_kernels;

/* Kernels on rt. Fields of `tuning` left 0 take the device profile's value; tuning may be NULL.
 * ESAG_ERR_ARG (with the field named) for a tuning the kernels or the device cannot run. */
esag_status esag_kernels_create(esag_rt *rt, const esag_tuning *tuning, esag_kernels **out);
/* Destroys the pipelines; the device must no longer run them. Accepts NULL. */
void esag_kernels_destroy(esag_kernels *k);
/* The tuning in use (the profile's name, e.g. "cpu", in *profile when non-NULL). */
void esag_kernels_tuning(const esag_kernels *k, esag_tuning *tuning, const char **profile);

typedef enum esag_matmul_path {
    ESAG_MATMUL_AUTO = 0,   /* matvec up to mv_max_tokens tokens, else tiled */
    ESAG_MATMUL_VEC = 1,    /* matvec.comp: weights streamed once per token */
    ESAG_MATMUL_TILED = 2   /* matmul.comp: weights dequantized once per mm_bn tokens */
} esag_matmul_path;

typedef struct esag_matmul_args {
    esag_matrix w;
    VkDeviceAddress x;  /* f32 [T][ldx], first cols used; 16-byte aligned, ldx % 4 == 0 */
    uint32_t ldx;
    VkDeviceAddress y;  /* f32 [T][ldy], first rows written; 4-byte aligned */
    uint32_t ldy;
    uint32_t T;         /* tokens, >= 1 */
    uint32_t accumulate; /* 1: y += W x (a fused residual add); 0: y = W x */
    esag_matmul_path path;
} esag_matmul_args;

/* y[t][r] (+)= sum_c W[r][c] x[t][c] for t < T, r < rows. y must not overlap x. */
esag_status esag_cmd_matmul(esag_kernels *k, VkCommandBuffer cb, const esag_matmul_args *a);

/* out[t][c] = table[ids[t]][c] (dequantized), ids uint32 [T] in device memory (4-byte
 * aligned), out f32 [T][ldo] (4-byte aligned). An id >= table->rows writes NaN over its row. */
esag_status esag_cmd_embed(esag_kernels *k, VkCommandBuffer cb, const esag_matrix *table,
                           VkDeviceAddress ids, uint32_t T, VkDeviceAddress out, uint32_t ldo);

/* out[t][c] = x[t][c] / sqrt(mean_c x[t][c]^2 + eps) * w[c] for c < cols (a multiple of 4);
 * x, w (f32 [cols]) and out 16-byte aligned, ldx and ldo multiples of 4. out may equal x. */
esag_status esag_cmd_rmsnorm(esag_kernels *k, VkCommandBuffer cb, VkDeviceAddress x,
                             uint32_t ldx, VkDeviceAddress w, VkDeviceAddress out, uint32_t ldo,
                             uint32_t T, uint32_t cols, float eps);

/* out[t][i] = silu(g[t][i]) * u[t][i] for i < n; g and u share the leading dimension ld_in
 * (they may be the halves of one fused gate/up product: u = g + n floats, ld_in = 2n). */
esag_status esag_cmd_silu_mul(esag_kernels *k, VkCommandBuffer cb, VkDeviceAddress g,
                              VkDeviceAddress u, uint32_t ld_in, VkDeviceAddress out,
                              uint32_t ldo, uint32_t T, uint32_t n);

/* out[i] = a[i] + b[i], i < n (f32, 4-byte aligned; out may equal a or b). */
esag_status esag_cmd_add(esag_kernels *k, VkCommandBuffer cb, VkDeviceAddress a,
                         VkDeviceAddress b, VkDeviceAddress out, uint32_t n);

/* out[i] = s * a[i], i < n (a copy for s = 1; out may equal a). */
esag_status esag_cmd_scale(esag_kernels *k, VkCommandBuffer cb, VkDeviceAddress a, float s,
                           VkDeviceAddress out, uint32_t n);

#ifdef __cplusplus
}
#endif

#endif
