/* sample.c - next-token choice: greedy, or temperature + top-p from a seeded generator. */
#include "sample.h"

#include <math.h>
#include <stdlib.h>

struct esar_sampler {
    esar_sampler_desc d;
    uint32_t n;
    uint64_t rng;
    uint32_t *idx;  /* [n] candidate ids, sorted by probability */
    double *p;      /* [n] their probabilities */
};

esar_status esar_sampler_create(const esar_sampler_desc *desc, uint32_t n_vocab, esar_sampler **out,
                                esar_err *err)
{
    if (!desc || !out || n_vocab == 0)
        return esar_fail(err, ESAR_ERR_ARG, "sampler: desc, out and a vocabulary are required");
    *out = NULL;
    if (!(desc->temperature >= 0.0f) || !isfinite(desc->temperature))
        return esar_fail(err, ESAR_ERR_ARG, "sampler: temperature must be finite and >= 0 (got %g)",
                         (double)desc->temperature);
    if (!(desc->top_p >= 0.0f && desc->top_p <= 1.0f))
        return esar_fail(err, ESAR_ERR_ARG, "sampler: top_p must be in [0, 1] (got %g)", (double)desc->top_p);
    esar_sampler *s = calloc(1, sizeof *s);
    if (!s)
        return esar_fail(err, ESAR_ERR_NOMEM, "sampler: out of memory");
    s->d = *desc;
    s->n = n_vocab;
    s->rng = desc->seed * 0x9e3779b97f4a7c15ull + 0x2545f4914f6cdd1dull;
    if (desc->temperature > 0.0f) {
        s->idx = malloc(sizeof *s->idx * n_vocab);
        s->p = malloc(sizeof *s->p * n_vocab);
        if (!s->idx || !s->p) {
            esar_sampler_destroy(s);
            return esar_fail(err, ESAR_ERR_NOMEM, "sampler: out of memory for %u candidates", n_vocab);
        }
    }
    *out = s;
    return ESAR_OK;
}

void esar_sampler_destroy(esar_sampler *s)
{
    if (!s)
        return;
    free(s->idx);
    free(s->p);
    free(s);
}

/* splitmix64: a uniform double in [0, 1) */
static double next_uniform(esar_sampler *s)
{
    uint64_t z = (s->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

/* a ranks before b: higher probability, then the lower id */
static int before(const double *p, uint32_t a, uint32_t b)
{
    return p[a] != p[b] ? p[a] > p[b] : a < b;
}

static void sift_down(uint32_t *h, uint32_t n, uint32_t i, const double *p)
{
    /* a heap whose root is the candidate ranked last */
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && before(p, h[m], h[l]))
            m = l;
        if (r < n && before(p, h[m], h[r]))
            m = r;
        if (m == i)
            return;
        uint32_t t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

/* Sorts idx[0..n) by rank (heapsort: in place, with the probabilities as context). */
static void sort_by_rank(uint32_t *idx, uint32_t n, const double *p)
{
    for (uint32_t i = n / 2; i-- > 0;)
        sift_down(idx, n, i, p);
    for (uint32_t end = n; end > 1; end--) {
        uint32_t t = idx[0];
        idx[0] = idx[end - 1];
        idx[end - 1] = t;
        sift_down(idx, end - 1, 0, p);
    }
}

esar_status esar_sample(esar_sampler *s, const float *logits, int32_t *token, esar_err *err)
{
    if (!s || !logits || !token)
        return esar_fail(err, ESAR_ERR_ARG, "sample: sampler, logits and token are required");
    uint32_t best = UINT32_MAX;
    for (uint32_t i = 0; i < s->n; i++)
        if (!isnan(logits[i]) && (best == UINT32_MAX || logits[i] > logits[best]))
            best = i;
    if (best == UINT32_MAX)
        return esar_fail(err, ESAR_ERR_ARG, "sample: every logit is NaN");
    if (s->d.temperature == 0.0f) {
        *token = (int32_t)best;
        return ESAR_OK;
    }
    /* softmax at the temperature, shifted by the largest logit; the probabilities are kept in
     * s->p indexed by token id while sorting, then in sorted order */
    double inv_t = 1.0 / s->d.temperature, sum = 0.0, mx = logits[best];
    for (uint32_t i = 0; i < s->n; i++) {
        double e = isnan(logits[i]) ? 0.0 : exp(((double)logits[i] - mx) * inv_t);
        s->p[i] = e;
        s->idx[i] = i;
        sum += e;
    }
    uint32_t keep = s->n;
    float top_p = s->d.top_p;
    if (top_p > 0.0f && top_p < 1.0f) {
        sort_by_rank(s->idx, s->n, s->p);
        double acc = 0.0;
        for (keep = 0; keep < s->n;) {
            acc += s->p[s->idx[keep++]] / sum;
            if (acc >= top_p)
                break;
        }
        sum = 0.0;
        for (uint32_t i = 0; i < keep; i++)
            sum += s->p[s->idx[i]];
    }
    double u = next_uniform(s) * sum, acc = 0.0;
    for (uint32_t i = 0; i < keep; i++) {
        acc += s->p[s->idx[i]];
        if (u < acc) {
            *token = (int32_t)s->idx[i];
            return ESAR_OK;
        }
    }
    *token = (int32_t)s->idx[keep - 1]; /* rounding left u at the very end */
    return ESAR_OK;
}
