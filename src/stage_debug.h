/* stage_debug.h - run ONE stage of a step on the device, from and to host memory, so tests can
 * hold each kernel against its CPU reference (ref/esa_ref.h) in isolation.
 *
 * Internal: not part of esa.h and hidden like the rest of src/ (tests reach it by linking the
 * static library, esa_static). Each call records the same code esa_record_chunk records for
 * that stage (step.c), fed through the cache's own scratch buffers (layer 0's for K/V,
 * compressed keys and the selection), and blocks until the result is back in host memory. It
 * clobbers that scratch and layer 0's stored tokens without changing the layer's length: use a
 * cache made for the test. Same threading rule as the rest of the cache (externally
 * synchronized). Self-contained: needs only esa.h. */
#ifndef ESA_STAGE_DEBUG_H
#define ESA_STAGE_DEBUG_H

#include "esa.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Proximity (spec 4.4, proximity.comp): f[lm] importance -> keys[lm], the order keys of
 * F'(j) = max of f over [j - radius, j + radius] within [0, lm) (NaN lowest), and hist[2048]
 * (may be NULL), the top-k histogram of keys >> 21 that the kernel gathers on the way.
 * 1 <= lm <= max_tokens, radius <= ESA_MAX_RADIUS. */
esa_status esa_debug_proximity(esa_cache *cache, const float *f, uint32_t lm, uint32_t radius,
                               uint32_t *keys, uint32_t *hist);

/* Selection (spec 4.4-4.5): proximity with radius, then the radix top-k passes; writes the k
 * positions with the largest F' (ties to the lower position), ascending, as pos0 + index to
 * out[k]. 1 <= k <= lm <= max_tokens, k <= ESA_MAX_TOP_K, radius <= ESA_MAX_RADIUS. */
esa_status esa_debug_topk(esa_cache *cache, const float *f, uint32_t lm, uint32_t radius,
                          uint32_t k, uint32_t pos0, uint32_t *out);

/* Importance (spec 4.3, score.comp, mode 0 then 1 when n > 1): f[lm] from qc[n][dc] (fp32)
 * and compressed keys kc[lm][dc] (fp16 bits), dc being the cache's compressed dimension
 * (G*d with exact scores). kc is stored at rows m0.. of layer 0 (its k buffer with exact
 * scores) and read back from there, as a step reads the middle after the initial tokens.
 * 1 <= n <= chunk, lm >= 1, m0 + lm <= max_tokens. */
esa_status esa_debug_scores(esa_cache *cache, const float *qc, uint32_t n, const uint16_t *kc,
                            uint32_t m0, uint32_t lm, float *f);

/* Compression (compress.comp): out[n][rows] = m[rows][cols] . x[n][cols], x and out in fp32
 * or fp16 bits (x_dtype, out_dtype), m row-major fp32 (transposed here, as the cache stores
 * its matrices). rows must be even for fp16 output. Uses its own buffers. */
esa_status esa_debug_compress(esa_cache *cache, const void *x, esa_dtype x_dtype, uint32_t n,
                              const float *m, uint32_t rows, uint32_t cols, void *out,
                              esa_dtype out_dtype);

/* One attention part, as esa_record_chunk builds them (see attend.comp): keys first..first+
 * count-1, which are cache positions, or entries of the list when use_list; queries rotated at
 * q_rope_pos0 + c * q_rope_step, keys at 0 (k_rope_zero) or at position - k_rope_sub. */
typedef struct esa_debug_segment {
    uint32_t first, count, use_list;
    uint32_t q_rope_pos0, q_rope_step, k_rope_zero, k_rope_sub;
} esa_debug_segment;

/* Attention parts + log-sum-exp merge (attend.comp split over workgroups as a step plans it,
 * then merge.comp): q[n][H][d] fp32 pre-RoPE, query c at cache position q_cache_pos0 + c (a
 * key is visible to it iff its position <= q_cache_pos0 + c); k, v [nk][G][d] fp16 bits stored
 * at positions 0..nk-1 of layer 0; list[nlist] (may be NULL when nlist is 0) cache positions
 * for use_list parts, nlist <= top_k. Writes out[n][H][d] (fp32) and, if slots is not NULL,
 * the number of partial slots (splits over all parts) the merge combined.
 * 1 <= n <= chunk, nk <= max_tokens, nseg <= 4 holding max_tokens + chunk keys at most in
 * all, with at most 2 distinct (q_rope_pos0, q_rope_step) among them. */
esa_status esa_debug_attend(esa_cache *cache, const float *q, uint32_t n, uint32_t q_cache_pos0,
                            const uint16_t *k, const uint16_t *v, uint32_t nk,
                            const uint32_t *list, uint32_t nlist, const esa_debug_segment *seg,
                            uint32_t nseg, float *out, uint32_t *slots);

#ifdef __cplusplus
}
#endif

#endif
