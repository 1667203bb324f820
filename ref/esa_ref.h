/* esa_ref.h - the CPU reference of ESA attention (../shared/ESA-SPEC.md), stage by stage.
 *
 * This is the executable form of the spec: plain loops, double accumulation where it is cheap,
 * no code shared with the GPU path. Tests and tools compare the library against it. Layouts are
 * row-major; every buffer's shape is written beside it as [dim][dim]...
 *
 * Conventions shared with the library (they are part of the spec, not of a kernel):
 * - K, V and compressed keys are stored as fp16: the reference rounds them with esa_ref_f16_round
 *   when they enter the cache and keeps them as float afterwards.
 * - RoPE pair i (0 <= i < rope_dims/2) turns by angle pos * theta^(-2i/rope_dims);
 *   NeoX style rotates the pair (i, i + rope_dims/2), interleaved style (2i, 2i+1);
 *   x0' = x0 cos - x1 sin, x1' = x0 sin + x1 cos; dims >= rope_dims are left alone.
 * - Natural logarithm for log-sum-exp. An empty set of keys has lse = -INFINITY and O = 0.
 */
#ifndef ESA_REF_H
#define ESA_REF_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct esa_ref_config {
    /* model shape */
    uint32_t n_heads;     /* H query heads */
    uint32_t n_kv_heads;  /* G key/value heads, divides H */
    uint32_t head_dim;    /* d, even */
    uint32_t rope_dims;   /* rotated dims, even, <= d */
    float rope_theta;     /* base, e.g. 10000 */
    int rope_neox;        /* 1: NeoX pairs (i, i+rope_dims/2); 0: interleaved (2i, 2i+1) */
    float scale;          /* logit scale, usually 1/sqrt(d) */
    /* ESA parameters, all resolved (no "0 means default" here) */
    uint32_t n_initial;   /* l_I */
    uint32_t n_local;     /* l_L */
    uint32_t top_k;       /* k */
    uint32_t compress_dim;/* d' (ignored when exact_scores: then d' = G*d) */
    uint32_t radius;      /* proximity radius epsilon */
    uint32_t chunk;       /* l_C: a call with more tokens is split into chunks of this size */
    uint32_t global_pos;  /* w */
    int exact_positions;  /* 1: single attention with true positions (sparsity only) */
    int exact_scores;     /* 1: no compression, scores from the full-dimension q.k */
} esa_ref_config;

/* One layer's cache, owned by the caller (allocate with esa_ref_layer_init). */
typedef struct esa_ref_layer {
    uint32_t len;      /* tokens cached */
    uint32_t cap;      /* capacity in tokens */
    uint32_t kc_dim;   /* d' of kc (G*d in exact-scores mode) */
    float *k;          /* [cap][G][d] pre-RoPE keys, fp16-rounded */
    float *v;          /* [cap][G][d] values, fp16-rounded */
    float *kc;         /* [cap][kc_dim] compressed keys, fp16-rounded */
    const float *a;    /* [d'][H*d] query map A (not owned; unused in exact-scores mode) */
    const float *b;    /* [d'][G*d] key map B, GQA-reduced form (not owned; unused likewise) */
} esa_ref_layer;

/* What one chunk did, for tests. */
typedef struct esa_ref_step_info {
    int dense;         /* 1 if P + n <= l_I + k + l_L: dense attention with true positions */
    uint32_t n_initial, n_middle, n_local; /* |I|, l_M, |L| for the (last) chunk */
    uint32_t n_selected;                   /* |M_k| (0 when dense) */
} esa_ref_step_info;

/* Round a float to the nearest fp16 value (round-to-nearest-even; overflow gives +-inf). */
float esa_ref_f16_round(float x);

/* Rotate x[d] in place as RoPE at position pos (double-precision angles). */
void esa_ref_rope(float *x, uint32_t head_dim, uint32_t rope_dims, float theta, int neox,
                  double pos);

/* out[n][rows] = m[rows][cols] . x[n][cols] */
void esa_ref_matvec(const float *m, uint32_t rows, uint32_t cols, const float *x, uint32_t n,
                    float *out);

/* Compressed queries: qc[n][d'] from q[n][H][d] (pre-RoPE): each head rotated at position
 * global_pos, concatenated, then multiplied by A; in exact-scores mode qc[n][G*d] is, per KV head
 * g, the sum of the rotated query heads that share g. */
void esa_ref_compress_queries(const esa_ref_config *cfg, const float *a, const float *q,
                              uint32_t n, float *qc);

/* Compressed keys: kc[n][d'] = fp16(B . k) from k[n][G][d] (already fp16-rounded); in
 * exact-scores mode kc = k. */
void esa_ref_compress_keys(const esa_ref_config *cfg, const float *b, const float *k,
                           uint32_t n, float *kc);

/* Importance of middle tokens (spec 4.3): f[lm] from qc[n][dc] and kc_mid[lm][dc].
 * n == 1: f = score; n > 1: f(m) = max_c (s_c(m) - max_m' s_c(m')). */
void esa_ref_importance(const float *qc, uint32_t n, const float *kc_mid, uint32_t lm,
                        uint32_t dc, float *f);

/* Proximity max-pool (spec 4.4): fp[j] = max of f[i] for |i - j| <= radius, i in [0, lm). */
void esa_ref_proximity(const float *f, uint32_t lm, uint32_t radius, float *fp);

/* Top-k (spec 4.5): the min(k, lm) indices with the largest fp, ties to the lower index, NaN
 * below everything; written ascending to idx. Returns how many were written. */
uint32_t esa_ref_topk(const float *fp, uint32_t lm, uint32_t k, uint32_t *idx);

/* Order-preserving key of a float for "larger is better" selection: a > b (as floats) implies
 * key(a) > key(b); +0 and -0 share a key; every NaN maps to 0. */
uint32_t esa_ref_order_key(float x);

/* Attention of n queries against one set of keys (one "part").
 * q[n][H][d] pre-RoPE; query c sits at cache position q_cache_pos0 + c and is rotated at
 * q_rope_pos0 + c * q_rope_step. keys[nkeys] are cache positions into k/v ([*][G][d]);
 * key j is rotated at (k_rope_zero ? 0 : keys[j] - k_rope_sub). If causal, key j is visible to
 * query c only when keys[j] <= q_cache_pos0 + c.
 * Writes the normalized output o[n][H][d] and lse[n][H] (scale included in the logits). */
void esa_ref_attend_part(const esa_ref_config *cfg, const float *q, uint32_t n,
                         uint32_t q_cache_pos0, double q_rope_pos0, double q_rope_step,
                         const float *k, const float *v, const uint32_t *keys, uint32_t nkeys,
                         int k_rope_zero, uint32_t k_rope_sub, int causal,
                         float *o, float *lse);

/* Merge two parts by log-sum-exp (spec 5), in place into (o1, lse1); rows = n*H. */
void esa_ref_merge(float *o1, float *lse1, const float *o2, const float *lse2, uint32_t rows,
                   uint32_t head_dim);

/* Allocate a layer cache of cap tokens (zeroed) and attach A and B (may be NULL in exact-scores
 * mode). Returns 0 on success, -1 on allocation failure. */
int esa_ref_layer_init(esa_ref_layer *layer, const esa_ref_config *cfg, uint32_t cap,
                       const float *a, const float *b);
void esa_ref_layer_free(esa_ref_layer *layer);

/* The whole step (spec 3-5) for n new tokens: append k[n][G][d], v[n][G][d] (fp16-rounded),
 * compress the keys, and write out[n][H][d] for q[n][H][d]. n > chunk is processed as
 * consecutive chunks. sel (optional, capacity top_k) receives the last chunk's M_k as cache
 * positions, ascending. Returns 0, or -1 if the cache would overflow (nothing changed). */
int esa_ref_step(const esa_ref_config *cfg, esa_ref_layer *layer, uint32_t n, const float *q,
                 const float *k, const float *v, float *out, uint32_t *sel,
                 esa_ref_step_info *info);

/* Dense causal attention with true positions over the whole cache after appending (for
 * comparisons): same arguments as esa_ref_step minus the selection. */
int esa_ref_dense_step(const esa_ref_config *cfg, esa_ref_layer *layer, uint32_t n,
                       const float *q, const float *k, const float *v, float *out);

#ifdef __cplusplus
}
#endif

#endif
