/* esa_ref.c - the CPU reference of ESA attention: every function of esa_ref.h, as plain loops.
 *
 * It is the executable form of ../shared/ESA-SPEC.md, which restates Wang et al., "Unshackling
 * Context Length: An Efficient Selective Attention Approach through Query-Key Compression"
 * (arXiv 2502.14477). It favours being obviously right over being fast: RoPE angles, dot
 * products and softmax sums run in double, so that when the library and the reference
 * disagree the reference is the more accurate side. Nothing here is shared with the GPU path.
 *
 * Allocation: the stage functions whose signature has no status (esa_ref_compress_queries,
 * esa_ref_attend_part) allocate their own scratch; if that fails they fill their outputs with
 * NaN, so no comparison against them can pass by accident. esa_ref_step and esa_ref_dense_step
 * allocate all their scratch before they touch the cache and return -1 if they cannot.
 */
#include "esa_ref.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint32_t f2u(float x) { uint32_t u; memcpy(&u, &x, sizeof u); return u; }
static float u2f(uint32_t u) { float x; memcpy(&x, &u, sizeof x); return x; }
static uint32_t min_u32(uint32_t a, uint32_t b) { return a < b ? a : b; }

/* calloc that never asks for 0 bytes, so an empty buffer is not mistaken for a failure */
static void *zalloc(size_t count, size_t size) { return calloc(count ? count : 1, size); }

/* ------------------------------------------------------------------------------------------ */
/* scalar conventions */

float esa_ref_f16_round(float x) {
    uint32_t u = f2u(x);
    uint32_t sign = u & 0x80000000u;
    uint32_t a = u & 0x7FFFFFFFu;          /* bits of |x| */
    if (a >= 0x7F800000u) return x;        /* inf stays inf, NaN stays NaN */
    int e = (int)(a >> 23) - 127;          /* unbiased exponent (-127 for float subnormals) */
    if (e >= -14) {
        /* Half-normal range: keep the top 10 of 23 mantissa bits. Adding 0xFFF plus the lowest
         * kept bit rounds to nearest with ties to even; a carry out of the mantissa bumps the
         * exponent, which is exactly the right result. */
        a = (a + 0x0FFFu + ((a >> 13) & 1u)) & ~0x1FFFu;
        if (a >= 0x47800000u) a = 0x7F800000u; /* rounded to 2^16 or beyond: past 65504 */
        return u2f(sign | a);
    }
    /* Half subnormals are multiples of 2^-24. With the implicit bit in m, |x| = m * 2^(e-23),
     * so |x| / 2^-24 = m / 2^s with s = -(e+1). Below 2^-25 everything rounds to zero, which
     * also covers float subnormals (their implicit bit would be wrong). */
    if (e < -25) return u2f(sign);
    uint32_t m = (a & 0x7FFFFFu) | 0x800000u;
    uint32_t s = (uint32_t)(-(e + 1));     /* 14..24 */
    uint32_t q = m >> s;
    uint32_t rem = m & ((1u << s) - 1u), half = 1u << (s - 1u);
    if (rem > half || (rem == half && (q & 1u))) q++;
    return u2f(sign | f2u((float)q * 0x1p-24f)); /* q <= 1024: exact */
}

/* Map: NaN -> 0; -0 is first turned into +0; then negatives get all bits flipped and
 * non-negatives get the sign bit set, the usual radix-sort trick that makes unsigned order
 * match float order. No shift is needed to keep 0 free for NaN: the smallest non-NaN key is
 * that of -inf, ~0xFF800000 = 0x007FFFFF, because the keys below it would belong to negative
 * NaNs, which never reach the flip. */
uint32_t esa_ref_order_key(float x) {
    uint32_t u = f2u(x);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return 0;
    if (u == 0x80000000u) u = 0;
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

void esa_ref_rope(float *x, uint32_t head_dim, uint32_t rope_dims, float theta, int neox,
                  double pos) {
    if (rope_dims > head_dim) rope_dims = head_dim; /* never rotate past the head */
    uint32_t half = rope_dims / 2;
    for (uint32_t i = 0; i < half; i++) {
        double freq = pow((double)theta, -2.0 * (double)i / (double)rope_dims);
        double ang = pos * freq;
        double c = cos(ang), s = sin(ang);
        uint32_t i0 = neox ? i : 2 * i;
        uint32_t i1 = neox ? i + half : 2 * i + 1;
        double x0 = x[i0], x1 = x[i1];
        x[i0] = (float)(x0 * c - x1 * s);
        x[i1] = (float)(x0 * s + x1 * c);
    }
}

void esa_ref_matvec(const float *m, uint32_t rows, uint32_t cols, const float *x, uint32_t n,
                    float *out) {
    for (uint32_t t = 0; t < n; t++) {
        for (uint32_t r = 0; r < rows; r++) {
            double acc = 0.0;
            for (uint32_t j = 0; j < cols; j++)
                acc += (double)m[(size_t)r * cols + j] * x[(size_t)t * cols + j];
            out[(size_t)t * rows + r] = (float)acc;
        }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* compression (spec 4.1-4.2) */

static uint32_t kc_dim_of(const esa_ref_config *cfg) {
    return cfg->exact_scores ? cfg->n_kv_heads * cfg->head_dim : cfg->compress_dim;
}

/* qrot[H*d] is scratch for one token's rotated heads */
static void compress_queries_buf(const esa_ref_config *cfg, const float *a, const float *q,
                                 uint32_t n, float *qc, float *qrot) {
    uint32_t H = cfg->n_heads, G = cfg->n_kv_heads, d = cfg->head_dim, hpg = H / G;
    uint32_t dc = kc_dim_of(cfg);
    for (uint32_t t = 0; t < n; t++) {
        /* the score lives in the frame of the global part: every query head sits at w */
        memcpy(qrot, q + (size_t)t * H * d, (size_t)H * d * sizeof *qrot);
        for (uint32_t h = 0; h < H; h++)
            esa_ref_rope(qrot + (size_t)h * d, d, cfg->rope_dims, cfg->rope_theta,
                         cfg->rope_neox, (double)cfg->global_pos);
        float *out = qc + (size_t)t * dc; /* [dc] */
        if (cfg->exact_scores) {
            /* sum_h q_h . k_g(h) = sum_g (sum of the heads reading g) . k_g */
            for (uint32_t g = 0; g < G; g++)
                for (uint32_t i = 0; i < d; i++) {
                    double s = 0.0;
                    for (uint32_t h = g * hpg; h < (g + 1) * hpg; h++) s += qrot[(size_t)h * d + i];
                    out[(size_t)g * d + i] = (float)s;
                }
        } else {
            esa_ref_matvec(a, dc, H * d, qrot, 1, out);
        }
    }
}

void esa_ref_compress_queries(const esa_ref_config *cfg, const float *a, const float *q,
                              uint32_t n, float *qc) {
    float *qrot = zalloc((size_t)cfg->n_heads * cfg->head_dim, sizeof *qrot); /* [H*d] */
    if (!qrot) {
        size_t total = (size_t)n * kc_dim_of(cfg);
        for (size_t i = 0; i < total; i++) qc[i] = NAN;
        return;
    }
    compress_queries_buf(cfg, a, q, n, qc, qrot);
    free(qrot);
}

void esa_ref_compress_keys(const esa_ref_config *cfg, const float *b, const float *k,
                           uint32_t n, float *kc) {
    uint32_t gd = cfg->n_kv_heads * cfg->head_dim;
    if (cfg->exact_scores) {
        memcpy(kc, k, (size_t)n * gd * sizeof *kc);
        return;
    }
    uint32_t dc = cfg->compress_dim;
    esa_ref_matvec(b, dc, gd, k, n, kc);
    for (size_t i = 0; i < (size_t)n * dc; i++) kc[i] = esa_ref_f16_round(kc[i]);
}

/* ------------------------------------------------------------------------------------------ */
/* selection (spec 4.3-4.5) */

static double dot_d(const float *a, const float *b, uint32_t len) {
    double s = 0.0;
    for (uint32_t i = 0; i < len; i++) s += (double)a[i] * b[i];
    return s;
}

void esa_ref_importance(const float *qc, uint32_t n, const float *kc_mid, uint32_t lm,
                        uint32_t dc, float *f) {
    if (n == 1) {
        for (uint32_t m = 0; m < lm; m++) f[m] = (float)dot_d(qc, kc_mid + (size_t)m * dc, dc);
        return;
    }
    for (uint32_t m = 0; m < lm; m++) f[m] = -INFINITY;
    for (uint32_t c = 0; c < n; c++) {
        const float *qrow = qc + (size_t)c * dc; /* [dc] */
        /* each query's scores are shifted by its own maximum, so no query dominates; the
         * scores are recomputed rather than stored, the same way, so the argmax gives 0 */
        double mx = -INFINITY;
        for (uint32_t m = 0; m < lm; m++) {
            double s = dot_d(qrow, kc_mid + (size_t)m * dc, dc);
            if (s > mx) mx = s;
        }
        for (uint32_t m = 0; m < lm; m++) {
            float s = (float)(dot_d(qrow, kc_mid + (size_t)m * dc, dc) - mx);
            if (s > f[m]) f[m] = s;
        }
    }
}

/* The max ignores NaN (a NaN wins only a window made of NaN alone), matching top-k's "NaN
 * below everything". */
void esa_ref_proximity(const float *f, uint32_t lm, uint32_t radius, float *fp) {
    for (uint32_t j = 0; j < lm; j++) {
        uint32_t lo = j > radius ? j - radius : 0;
        uint64_t hi64 = (uint64_t)j + radius;
        uint32_t hi = hi64 < lm ? (uint32_t)hi64 : lm - 1;
        float best = f[lo];
        for (uint32_t i = lo + 1; i <= hi; i++)
            if (isnan(best) || f[i] > best) best = f[i];
        fp[j] = best;
    }
}

static uint32_t count_keys_at_least(const float *fp, uint32_t lm, uint32_t t) {
    uint32_t c = 0;
    for (uint32_t i = 0; i < lm; i++) c += esa_ref_order_key(fp[i]) >= t;
    return c;
}

/* Without scratch (the signature cannot report a failed allocation): find the threshold key
 * T, the largest t with at least kk keys >= t, one bit at a time as a radix select would;
 * then every key > T is in, and the keys == T fill the rest lowest index first. One scan in
 * index order writes the result already ascending. O(32 lm). */
uint32_t esa_ref_topk(const float *fp, uint32_t lm, uint32_t k, uint32_t *idx) {
    uint32_t kk = min_u32(k, lm);
    if (kk == 0) return 0;
    uint32_t t = 0;
    for (int bit = 31; bit >= 0; bit--) {
        uint32_t cand = t | (1u << bit);
        if (count_keys_at_least(fp, lm, cand) >= kk) t = cand;
    }
    uint32_t above = t == 0xFFFFFFFFu ? 0 : count_keys_at_least(fp, lm, t + 1);
    uint32_t need_eq = kk - above; /* >= 1, since fewer than kk keys exceed t */
    uint32_t w = 0;
    for (uint32_t i = 0; i < lm; i++) {
        uint32_t key = esa_ref_order_key(fp[i]);
        if (key > t || (key == t && need_eq > 0)) {
            if (key == t) need_eq--;
            idx[w++] = i;
        }
    }
    return w;
}

/* ------------------------------------------------------------------------------------------ */
/* attention (spec 3, 5) */

typedef struct attend_buf {
    float *kr;      /* [nkeys][G][d] the part's keys, rotated */
    double *logit;  /* [nkeys] one query row's logits */
    float *qr;      /* [d] one query head, rotated */
    double *acc;    /* [d] weighted sum of values */
} attend_buf;

static int attend_buf_alloc(attend_buf *b, const esa_ref_config *cfg, uint32_t nkeys) {
    size_t d = cfg->head_dim;
    b->kr = zalloc((size_t)nkeys * cfg->n_kv_heads * d, sizeof *b->kr);
    b->logit = zalloc(nkeys, sizeof *b->logit);
    b->qr = zalloc(d, sizeof *b->qr);
    b->acc = zalloc(d, sizeof *b->acc);
    return (b->kr && b->logit && b->qr && b->acc) ? 0 : -1;
}

static void attend_buf_free(attend_buf *b) {
    free(b->kr); free(b->logit); free(b->qr); free(b->acc);
    memset(b, 0, sizeof *b);
}

static void attend_part_buf(const esa_ref_config *cfg, const float *q, uint32_t n,
                            uint32_t q_cache_pos0, double q_rope_pos0, double q_rope_step,
                            const float *k, const float *v, const uint32_t *keys,
                            uint32_t nkeys, int k_rope_zero, uint32_t k_rope_sub, int causal,
                            float *o, float *lse, attend_buf *b) {
    uint32_t H = cfg->n_heads, G = cfg->n_kv_heads, d = cfg->head_dim, hpg = H / G;
    size_t gd = (size_t)G * d;
    /* keys are rotated once per part, not once per query */
    for (uint32_t j = 0; j < nkeys; j++) {
        double kpos = k_rope_zero ? 0.0 : (double)keys[j] - (double)k_rope_sub;
        memcpy(b->kr + j * gd, k + (size_t)keys[j] * gd, gd * sizeof *b->kr);
        for (uint32_t g = 0; g < G; g++)
            esa_ref_rope(b->kr + j * gd + (size_t)g * d, d, cfg->rope_dims, cfg->rope_theta,
                         cfg->rope_neox, kpos);
    }
    for (uint32_t c = 0; c < n; c++) {
        uint64_t qpos = (uint64_t)q_cache_pos0 + c;
        for (uint32_t h = 0; h < H; h++) {
            uint32_t g = h / hpg;
            size_t row = (size_t)c * H + h;
            memcpy(b->qr, q + row * d, (size_t)d * sizeof *b->qr);
            esa_ref_rope(b->qr, d, cfg->rope_dims, cfg->rope_theta, cfg->rope_neox,
                         q_rope_pos0 + (double)c * q_rope_step);
            /* pass 1: logits and their max (masked keys get -inf and drop out of both) */
            double mx = -INFINITY;
            for (uint32_t j = 0; j < nkeys; j++) {
                if (causal && keys[j] > qpos) { b->logit[j] = -INFINITY; continue; }
                double l = (double)cfg->scale * dot_d(b->qr, b->kr + j * gd + (size_t)g * d, d);
                b->logit[j] = l;
                if (l > mx) mx = l;
            }
            float *orow = o + row * d; /* [d] */
            if (mx == -INFINITY) { /* this row sees no key */
                for (uint32_t i = 0; i < d; i++) orow[i] = 0.0f;
                lse[row] = -INFINITY;
                continue;
            }
            /* pass 2: softmax shifted by the max, so exp never overflows */
            double sum = 0.0;
            for (uint32_t i = 0; i < d; i++) b->acc[i] = 0.0;
            for (uint32_t j = 0; j < nkeys; j++) {
                if (b->logit[j] == -INFINITY) continue;
                double w = exp(b->logit[j] - mx);
                const float *vrow = v + (size_t)keys[j] * gd + (size_t)g * d; /* [d] */
                sum += w;
                for (uint32_t i = 0; i < d; i++) b->acc[i] += w * vrow[i];
            }
            for (uint32_t i = 0; i < d; i++) orow[i] = (float)(b->acc[i] / sum);
            lse[row] = (float)(mx + log(sum));
        }
    }
}

void esa_ref_attend_part(const esa_ref_config *cfg, const float *q, uint32_t n,
                         uint32_t q_cache_pos0, double q_rope_pos0, double q_rope_step,
                         const float *k, const float *v, const uint32_t *keys, uint32_t nkeys,
                         int k_rope_zero, uint32_t k_rope_sub, int causal,
                         float *o, float *lse) {
    attend_buf b;
    if (attend_buf_alloc(&b, cfg, nkeys) != 0) {
        size_t rows = (size_t)n * cfg->n_heads;
        for (size_t r = 0; r < rows; r++) lse[r] = NAN;
        for (size_t i = 0; i < rows * cfg->head_dim; i++) o[i] = NAN;
        attend_buf_free(&b);
        return;
    }
    attend_part_buf(cfg, q, n, q_cache_pos0, q_rope_pos0, q_rope_step, k, v, keys, nkeys,
                    k_rope_zero, k_rope_sub, causal, o, lse, &b);
    attend_buf_free(&b);
}

void esa_ref_merge(float *o1, float *lse1, const float *o2, const float *lse2, uint32_t rows,
                   uint32_t head_dim) {
    for (uint32_t r = 0; r < rows; r++) {
        double a = lse1[r], b = lse2[r];
        float *x = o1 + (size_t)r * head_dim;        /* [d] */
        const float *y = o2 + (size_t)r * head_dim;  /* [d] */
        if (a == -INFINITY && b == -INFINITY) { /* both empty: stay empty, no 0/0 */
            for (uint32_t i = 0; i < head_dim; i++) x[i] = 0.0f;
            continue;
        }
        /* weights relative to the larger lse: one of them is 1, neither overflows, and an
         * empty part gets exp(-inf) = 0 */
        double m = a > b ? a : b;
        double wa = exp(a - m), wb = exp(b - m), s = wa + wb;
        for (uint32_t i = 0; i < head_dim; i++) x[i] = (float)((wa * x[i] + wb * y[i]) / s);
        lse1[r] = (float)(m + log(s));
    }
}

/* ------------------------------------------------------------------------------------------ */
/* the layer cache */

int esa_ref_layer_init(esa_ref_layer *layer, const esa_ref_config *cfg, uint32_t cap,
                       const float *a, const float *b) {
    memset(layer, 0, sizeof *layer);
    /* a shape the loops cannot honour is refused like a failed allocation */
    if (!cfg->n_heads || !cfg->n_kv_heads || cfg->n_heads % cfg->n_kv_heads ||
        !cfg->head_dim || cfg->head_dim % 2 || cfg->rope_dims % 2 ||
        cfg->rope_dims > cfg->head_dim)
        return -1;
    if (!cfg->exact_scores && (!cfg->compress_dim || !a || !b)) return -1;
    size_t gd = (size_t)cfg->n_kv_heads * cfg->head_dim;
    layer->cap = cap;
    layer->kc_dim = kc_dim_of(cfg);
    layer->k = zalloc((size_t)cap * gd, sizeof *layer->k);
    layer->v = zalloc((size_t)cap * gd, sizeof *layer->v);
    layer->kc = zalloc((size_t)cap * layer->kc_dim, sizeof *layer->kc);
    layer->a = a;
    layer->b = b;
    if (!layer->k || !layer->v || !layer->kc) {
        esa_ref_layer_free(layer);
        return -1;
    }
    return 0;
}

void esa_ref_layer_free(esa_ref_layer *layer) {
    if (!layer) return;
    free(layer->k);
    free(layer->v);
    free(layer->kc);
    memset(layer, 0, sizeof *layer);
}

/* Everything a step needs, allocated before the cache changes so that failure changes nothing.
 * Key lists and middle-sized buffers are sized by the final cache length. */
typedef struct step_buf {
    uint32_t *keys; /* [len+n] cache positions of one attention part */
    uint32_t *mk;   /* [min(k, len+n)] selected middle indices, relative to M */
    float *qc;      /* [chunk][kc_dim] compressed queries of the chunk */
    float *qrot;    /* [H*d] one query, every head rotated at w */
    float *f;       /* [len+n] importance of the middle tokens */
    float *fp;      /* [len+n] importance after the proximity max */
    float *o2;      /* [chunk][H][d] the local part's output */
    float *lse1;    /* [chunk][H] */
    float *lse2;    /* [chunk][H] */
    attend_buf at;
} step_buf;

static void step_buf_free(step_buf *s) {
    free(s->keys); free(s->mk); free(s->qc); free(s->qrot); free(s->f); free(s->fp);
    free(s->o2); free(s->lse1); free(s->lse2);
    attend_buf_free(&s->at);
}

static int step_buf_alloc(step_buf *s, const esa_ref_config *cfg, const esa_ref_layer *layer,
                          uint32_t total, uint32_t nc) {
    size_t hd = (size_t)cfg->n_heads * cfg->head_dim;
    memset(s, 0, sizeof *s);
    s->keys = zalloc(total, sizeof *s->keys);
    s->mk = zalloc(min_u32(cfg->top_k, total), sizeof *s->mk);
    s->qc = zalloc((size_t)nc * layer->kc_dim, sizeof *s->qc);
    s->qrot = zalloc(hd, sizeof *s->qrot);
    s->f = zalloc(total, sizeof *s->f);
    s->fp = zalloc(total, sizeof *s->fp);
    s->o2 = zalloc((size_t)nc * hd, sizeof *s->o2);
    s->lse1 = zalloc((size_t)nc * cfg->n_heads, sizeof *s->lse1);
    s->lse2 = zalloc((size_t)nc * cfg->n_heads, sizeof *s->lse2);
    int ok = s->keys && s->mk && s->qc && s->qrot && s->f && s->fp && s->o2 && s->lse1 &&
             s->lse2 && attend_buf_alloc(&s->at, cfg, total) == 0;
    if (!ok) step_buf_free(s);
    return ok ? 0 : -1;
}

/* Writes k[n][G][d], v[n][G][d] (fp16-rounded) and their compressed keys at len..len+n-1. */
static void append(const esa_ref_config *cfg, esa_ref_layer *layer, uint32_t n, const float *k,
                   const float *v) {
    size_t gd = (size_t)cfg->n_kv_heads * cfg->head_dim;
    float *kd = layer->k + (size_t)layer->len * gd;  /* [n][G][d] */
    float *vd = layer->v + (size_t)layer->len * gd;  /* [n][G][d] */
    for (size_t i = 0; i < (size_t)n * gd; i++) {
        kd[i] = esa_ref_f16_round(k[i]);
        vd[i] = esa_ref_f16_round(v[i]);
    }
    esa_ref_compress_keys(cfg, layer->b, kd, n, layer->kc + (size_t)layer->len * layer->kc_dim);
    layer->len += n;
}

/* Dense causal attention, true positions, of n queries at cache positions P.. over [0, P+n). */
static void dense_chunk(const esa_ref_config *cfg, const esa_ref_layer *layer, uint32_t P,
                        uint32_t n, const float *q, float *out, step_buf *s) {
    for (uint32_t j = 0; j < P + n; j++) s->keys[j] = j;
    attend_part_buf(cfg, q, n, P, (double)P, 1.0, layer->k, layer->v, s->keys, P + n, 0, 0, 1,
                    out, s->lse1, &s->at);
}

int esa_ref_dense_step(const esa_ref_config *cfg, esa_ref_layer *layer, uint32_t n,
                       const float *q, const float *k, const float *v, float *out) {
    if ((uint64_t)layer->len + n > layer->cap) return -1;
    uint32_t chunk = cfg->chunk ? cfg->chunk : n; /* 0: one chunk (the config should be resolved) */
    uint32_t nc = min_u32(chunk, n);
    size_t gd = (size_t)cfg->n_kv_heads * cfg->head_dim, hd = (size_t)cfg->n_heads * cfg->head_dim;
    step_buf s;
    if (step_buf_alloc(&s, cfg, layer, layer->len + n, nc) != 0) return -1;
    for (uint32_t c0 = 0; c0 < n; c0 += nc) {
        nc = min_u32(chunk, n - c0);
        uint32_t P = layer->len;
        append(cfg, layer, nc, k + c0 * gd, v + c0 * gd);
        dense_chunk(cfg, layer, P, nc, q + c0 * hd, out + c0 * hd, &s);
    }
    step_buf_free(&s);
    return 0;
}

int esa_ref_step(const esa_ref_config *cfg, esa_ref_layer *layer, uint32_t n, const float *q,
                 const float *k, const float *v, float *out, uint32_t *sel,
                 esa_ref_step_info *info) {
    if ((uint64_t)layer->len + n > layer->cap) return -1;
    uint32_t chunk = cfg->chunk ? cfg->chunk : n; /* 0: one chunk (the config should be resolved) */
    uint32_t nc = min_u32(chunk, n);
    uint32_t H = cfg->n_heads, d = cfg->head_dim, dc = layer->kc_dim;
    size_t gd = (size_t)cfg->n_kv_heads * d, hd = (size_t)H * d;
    step_buf s;
    if (step_buf_alloc(&s, cfg, layer, layer->len + n, nc) != 0) return -1;
    if (info) memset(info, 0, sizeof *info); /* n == 0 leaves it all zero */

    for (uint32_t c0 = 0; c0 < n; c0 += nc) {
        nc = min_u32(chunk, n - c0);
        const float *qch = q + c0 * hd; /* [nc][H][d] */
        float *och = out + c0 * hd;     /* [nc][H][d] */
        uint32_t P = layer->len;
        uint32_t nI = min_u32(cfg->n_initial, P);
        uint32_t nL = min_u32(cfg->n_local, P - nI);
        uint32_t lM = P - nI - nL;
        append(cfg, layer, nc, k + c0 * gd, v + c0 * gd);
        int dense = (uint64_t)P + nc <= (uint64_t)cfg->n_initial + cfg->top_k + cfg->n_local;
        if (info) {
            info->dense = dense;
            info->n_initial = nI;
            info->n_middle = lM;
            info->n_local = nL;
            info->n_selected = 0;
        }
        if (dense) { /* nothing to choose: the spec demands exactly the dense result */
            dense_chunk(cfg, layer, P, nc, qch, och, &s);
            continue;
        }

        /* choose M_k, as indices relative to M (spec 4) */
        uint32_t nsel;
        if (lM <= cfg->top_k) {
            for (uint32_t m = 0; m < lM; m++) s.mk[m] = m;
            nsel = lM;
        } else {
            compress_queries_buf(cfg, layer->a, qch, nc, s.qc, s.qrot);
            esa_ref_importance(s.qc, nc, layer->kc + (size_t)nI * dc, lM, dc, s.f);
            esa_ref_proximity(s.f, lM, cfg->radius, s.fp);
            nsel = esa_ref_topk(s.fp, lM, cfg->top_k, s.mk);
        }
        if (info) info->n_selected = nsel;
        if (sel && c0 + nc == n)
            for (uint32_t i = 0; i < nsel; i++) sel[i] = nI + s.mk[i];

        /* key list I, M_k (both precede the chunk), ascending */
        uint32_t nk = 0;
        for (uint32_t j = 0; j < nI; j++) s.keys[nk++] = j;
        for (uint32_t i = 0; i < nsel; i++) s.keys[nk++] = nI + s.mk[i];

        if (cfg->exact_positions) {
            /* one part over I, M_k, L, C with true positions: sparsity without extrapolation */
            for (uint32_t j = P - nL; j < P + nc; j++) s.keys[nk++] = j;
            attend_part_buf(cfg, qch, nc, P, (double)P, 1.0, layer->k, layer->v, s.keys, nk,
                            0, 0, 1, och, s.lse1, &s.at);
            continue;
        }
        /* Global part (spec 5): every query at w, every key at 0, so every distance is w.
         * Causal costs nothing here, all these keys precede the chunk. */
        attend_part_buf(cfg, qch, nc, P, (double)cfg->global_pos, 0.0, layer->k, layer->v,
                        s.keys, nk, 1, 0, 1, och, s.lse1, &s.at);
        /* Local part: L then C renumbered from 0, queries at nL.. so distances are true ones */
        nk = 0;
        for (uint32_t j = P - nL; j < P + nc; j++) s.keys[nk++] = j;
        attend_part_buf(cfg, qch, nc, P, (double)nL, 1.0, layer->k, layer->v, s.keys, nk, 0,
                        P - nL, 1, s.o2, s.lse2, &s.at);
        esa_ref_merge(och, s.lse1, s.o2, s.lse2, nc * H, d);
    }
    step_buf_free(&s);
    return 0;
}
