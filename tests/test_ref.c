/* test_ref.c - checks the CPU reference (ref/esa_ref.c) against independent brute-force
 * formulations of the same math, on small random inputs from a fixed-seed PRNG.
 *
 * The reference is the spec the GPU path is tested against, so it gets its own proof: each
 * stage is recomputed here a different way (rint for fp16, sorting for top-k, fmaxf for the
 * proximity pool, one un-merged softmax for the two-part attention, per-head dot products for
 * the selection scores) and the whole step is held to dense attention where the spec says it
 * must equal it. Exit status 0 on pass, 1 on the first failure, printed with its coordinates.
 */
#include "esa_ref.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond, ...)                                                  \
    do {                                                                  \
        if (!(cond)) {                                                    \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);          \
            fprintf(stderr, __VA_ARGS__);                                 \
            fputc('\n', stderr);                                          \
            return 1;                                                     \
        }                                                                 \
    } while (0)

/* splitmix64: tiny, seedable, same sequence on every platform (rand() is none of these) */
static uint64_t rng = 0x2545F4914F6CDD1DULL;
static uint64_t next_u64(void) {
    uint64_t z = (rng += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
static uint32_t urand(uint32_t n) { return (uint32_t)(next_u64() % n); }
static float frand(void) { return (float)((double)(next_u64() >> 40) * 0x1p-23 - 1.0); } /* [-1,1) */
static void fill(float *x, size_t n, float amp) { for (size_t i = 0; i < n; i++) x[i] = amp * frand(); }

static float u2f(uint32_t u) { float x; memcpy(&x, &u, sizeof x); return x; }
static uint32_t f2u(float x) { uint32_t u; memcpy(&u, &x, sizeof u); return u; }

/* the small GQA shape of every attention test */
enum { H = 6, G = 2, D = 16, HPG = H / G };

static esa_ref_config base_cfg(int neox, uint32_t rope_dims) {
    esa_ref_config c;
    memset(&c, 0, sizeof c);
    c.n_heads = H; c.n_kv_heads = G; c.head_dim = D; c.rope_dims = rope_dims;
    c.rope_theta = 10000.0f; c.rope_neox = neox; c.scale = 0.25f;
    c.n_initial = 4; c.n_local = 8; c.top_k = 1000; c.compress_dim = 8; c.radius = 1;
    c.chunk = 5; c.global_pos = 8;
    return c;
}

/* |got - want| <= tol * max(1, |want|) over out[n][H][D], first miss named by coordinates */
static int cmp_out(const char *what, const float *got, const float *want, uint32_t n, double tol) {
    for (uint32_t c = 0; c < n; c++)
        for (uint32_t h = 0; h < H; h++)
            for (uint32_t i = 0; i < D; i++) {
                size_t at = ((size_t)c * H + h) * D + i;
                double g = got[at], w = want[at];
                CHECK(fabs(g - w) <= tol * fmax(1.0, fabs(w)), "%s: out[%u][%u][%u] = %.9g, want %.9g",
                      what, c, h, i, g, w);
            }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */

/* fp16 the long way: scale to the spacing of halves at x's exponent and let rint (ties to
 * even under the default rounding mode) do the rounding in double */
static float f16_brute(float x) {
    if (isnan(x) || isinf(x) || x == 0.0f) return x;
    int ex;
    frexp(x, &ex);
    int qe = (ex - 1 > -14 ? ex - 1 : -14) - 10; /* log2 of the half spacing near x */
    double r = ldexp(rint(ldexp((double)x, -qe)), qe);
    if (fabs(r) >= 65536.0) r = copysign(INFINITY, (double)x);
    return (float)r;
}

static int test_f16(void) {
    static const struct { float in, want; } known[] = {
        {1.0f, 1.0f}, {65504.0f, 65504.0f}, {65519.0f, 65504.0f}, {65520.0f, INFINITY},
        {-65520.0f, -INFINITY}, {1e6f, INFINITY}, {1e-8f, 0.0f}, {0x1p-24f, 0x1p-24f},
        {0x1p-25f, 0.0f},                     /* halfway between 0 and 2^-24: even is 0 */
        {0x1.8p-25f, 0x1p-24f},               /* above halfway */
        {0x1.8p-24f, 0x1p-23f},               /* 1.5 quanta: tie to even 2 */
        {0x1.4p-23f, 0x1p-23f},               /* 2.5 quanta: tie to even 2 */
        {0x1p-14f, 0x1p-14f},                 /* smallest normal */
        {0x1.ff8p-15f, 0x1.ff8p-15f},         /* largest subnormal */
        {1.0f + 0x1p-11f, 1.0f},              /* tie: 1.0 is even */
        {1.0f + 0x1.8p-10f, 1.0f + 0x1p-9f},  /* tie: 1+2^-10 is odd, go up */
        {1.0f + 0x1p-11f + 0x1p-20f, 1.0f + 0x1p-10f},
        {-2.0f / 3.0f, -0.66650390625f}, {INFINITY, INFINITY}, {-INFINITY, -INFINITY},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        float got = esa_ref_f16_round(known[i].in);
        CHECK(f2u(got) == f2u(known[i].want), "f16(%a) = %a, want %a", known[i].in, got, known[i].want);
    }
    CHECK(f2u(esa_ref_f16_round(-0.0f)) == 0x80000000u, "f16(-0) lost its sign");
    CHECK(f2u(esa_ref_f16_round(-1e-9f)) == 0x80000000u, "f16(-1e-9) should be -0");
    CHECK(isnan(esa_ref_f16_round(NAN)) && isnan(esa_ref_f16_round(u2f(0xFF800001u))), "f16(NaN) not NaN");
    for (int t = 0; t < 400000; t++) {
        float x;
        if (t & 1) { /* anything at all, NaNs included */
            x = u2f((uint32_t)next_u64());
        } else {     /* concentrated on the half range, subnormals and overflow edge included */
            uint32_t e = 127 - 28 + urand(46);
            x = u2f((uint32_t)(next_u64() & 0x807FFFFFu) | (e << 23));
        }
        float got = esa_ref_f16_round(x), want = f16_brute(x);
        if (isnan(x)) { CHECK(isnan(got), "f16(NaN %08x) = %a", f2u(x), got); continue; }
        CHECK(f2u(got) == f2u(want), "f16(%a) = %a, want %a (trial %d)", x, got, want, t);
    }
    return 0;
}

static double dot16(const float *a, const float *b) {
    double s = 0.0;
    for (int i = 0; i < D; i++) s += (double)a[i] * b[i];
    return s;
}

static int test_rope(void) {
    for (int neox = 0; neox <= 1; neox++)
        for (uint32_t rd = 8; rd <= 16; rd += 8) {
            float x[D], y[D], q[D], k[D], qa[D], kb[D];
            /* pair 0 turns at frequency 1: e_i0 goes to (cos p, sin p), fixing the sign */
            memset(x, 0, sizeof x);
            x[0] = 1.0f;
            esa_ref_rope(x, D, rd, 10000.0f, neox, 0.7);
            uint32_t i1 = neox ? rd / 2 : 1;
            CHECK(fabsf(x[0] - cosf(0.7f)) < 1e-6f && fabsf(x[i1] - sinf(0.7f)) < 1e-6f,
                  "rope(neox=%d, rd=%u): pair 0 got (%g, %g)", neox, rd, x[0], x[i1]);
            for (int t = 0; t < 200; t++) {
                fill(x, D, 1.0f);
                memcpy(y, x, sizeof x);
                esa_ref_rope(y, D, rd, 10000.0f, neox, 0.0);
                CHECK(memcmp(x, y, sizeof x) == 0, "rope at position 0 is not the identity");
                double pos = urand(100000) * 0.37;
                esa_ref_rope(y, D, rd, 10000.0f, neox, pos);
                double n0 = dot16(x, x), n1 = dot16(y, y);
                CHECK(fabs(n1 - n0) <= 1e-5 * n0, "rope(neox=%d, rd=%u, pos=%g): |x|^2 %g -> %g", neox, rd, pos, n0, n1);
                for (uint32_t i = rd; i < D; i++)
                    CHECK(f2u(x[i]) == f2u(y[i]), "rope(neox=%d, rd=%u): tail dim %u changed", neox, rd, i);
                /* relative property: the score depends on a - b only */
                fill(q, D, 1.0f);
                fill(k, D, 1.0f);
                double a = urand(2000), b = urand(2000), ref = 0.0;
                for (int s = 0; s < 4; s++) {
                    double shift = s == 0 ? 0.0 : s == 1 ? 1.0 : s == 2 ? 17.0 : -b;
                    memcpy(qa, q, sizeof q);
                    memcpy(kb, k, sizeof k);
                    esa_ref_rope(qa, D, rd, 10000.0f, neox, a + shift);
                    esa_ref_rope(kb, D, rd, 10000.0f, neox, b + shift);
                    double sc = dot16(qa, kb);
                    if (s == 0) ref = sc;
                    CHECK(fabs(sc - ref) <= 1e-4, "rope(neox=%d, rd=%u): q@%g.k@%g shifted by %g: %g vs %g",
                          neox, rd, a, b, shift, sc, ref);
                }
            }
        }
    return 0;
}

static int test_order_key(void) {
    const float sorted[] = {-INFINITY, -1e30f, -1.0f, -1e-30f, -1e-40f, -0.0f, 0.0f,
                            1e-40f, 1e-30f, 1.0f, 1e30f, INFINITY};
    const int n = (int)(sizeof sorted / sizeof sorted[0]);
    for (int i = 0; i < n; i++) {
        uint32_t ki = esa_ref_order_key(sorted[i]);
        CHECK(ki > 0, "order_key(%g) = 0, reserved for NaN", sorted[i]);
        if (i == 0) continue;
        uint32_t kp = esa_ref_order_key(sorted[i - 1]);
        if (sorted[i - 1] == sorted[i])
            CHECK(kp == ki, "order_key(%g) = %08x != order_key(%g) = %08x", sorted[i - 1], kp, sorted[i], ki);
        else
            CHECK(kp < ki, "order_key not increasing at [%d]: %g -> %08x, %g -> %08x", i, sorted[i - 1], kp, sorted[i], ki);
    }
    const uint32_t nans[] = {0x7FC00000u, 0xFFC00000u, 0x7F800001u, 0xFFFFFFFFu, 0x7FBFFFFFu};
    for (int i = 0; i < 5; i++)
        CHECK(esa_ref_order_key(u2f(nans[i])) == 0, "order_key(NaN %08x) != 0", nans[i]);
    for (int t = 0; t < 200000; t++) {
        float a = u2f((uint32_t)next_u64()), b = u2f((uint32_t)next_u64());
        if (t % 3 == 0) b = a;
        if (isnan(a) || isnan(b)) continue;
        uint32_t ka = esa_ref_order_key(a), kb = esa_ref_order_key(b);
        CHECK((a < b) == (ka < kb) && (a == b) == (ka == kb), "order_key(%a) = %08x vs order_key(%a) = %08x",
              a, ka, b, kb);
    }
    return 0;
}

/* rank order of the spec: larger first, NaN last, ties to the lower index */
static int better(float a, uint32_t ia, float b, uint32_t ib) {
    int na = isnan(a), nb = isnan(b);
    if (na != nb) return nb;
    if (!na && a != b) return a > b;
    return ia < ib;
}

static int test_topk(void) {
    const float pool[] = {-1.0f, -0.0f, 0.0f, 0.5f, 1.0f, NAN, -INFINITY, INFINITY};
    float fp[200] = {0};
    uint32_t order[200], idx[200];
    CHECK(esa_ref_topk(fp, 0, 5, idx) == 0, "topk of an empty list wrote something");
    for (int t = 0; t < 6000; t++) {
        uint32_t lm = 1 + urand(t < 4000 ? 40 : 200);
        for (uint32_t i = 0; i < lm; i++)
            fp[i] = t < 4000 ? pool[urand(8)] : u2f((uint32_t)next_u64()); /* ties / any bits */
        uint32_t k = t % 3 == 0 ? urand(lm) : t % 3 == 1 ? lm : lm + 1 + urand(5);
        /* brute force: insertion sort by rank, keep the first min(k, lm), sort them back */
        for (uint32_t i = 0; i < lm; i++) {
            uint32_t j = i;
            for (; j > 0 && better(fp[i], i, fp[order[j - 1]], order[j - 1]); j--) order[j] = order[j - 1];
            order[j] = i;
        }
        uint32_t kk = k < lm ? k : lm;
        for (uint32_t i = 1; i < kk; i++)
            for (uint32_t j = i; j > 0 && order[j] < order[j - 1]; j--) {
                uint32_t s = order[j]; order[j] = order[j - 1]; order[j - 1] = s;
            }
        uint32_t got = esa_ref_topk(fp, lm, k, idx);
        CHECK(got == kk, "topk(lm=%u, k=%u) wrote %u, want %u (trial %d)", lm, k, got, kk, t);
        for (uint32_t i = 0; i < kk; i++)
            CHECK(idx[i] == order[i], "topk(lm=%u, k=%u) idx[%u] = %u, want %u (trial %d)", lm, k, i, idx[i], order[i], t);
    }
    return 0;
}

static int test_proximity(void) {
    float f[16], fp[16];
    for (int t = 0; t < 3000; t++) {
        uint32_t lm = 1 + urand(12), r = (uint32_t[]){0, 1, 3}[t % 3];
        for (uint32_t i = 0; i < lm; i++) f[i] = urand(10) == 0 ? NAN : (float)urand(5) - 2.0f;
        esa_ref_proximity(f, lm, r, fp);
        for (uint32_t j = 0; j < lm; j++) {
            float want = NAN; /* fmaxf drops NaN: a NaN survives only a window of NaNs */
            for (uint32_t i = 0; i < lm; i++)
                if ((i > j ? i - j : j - i) <= r) want = fmaxf(want, f[i]);
            CHECK((isnan(want) && isnan(fp[j])) || fp[j] == want, "proximity(lm=%u, r=%u) fp[%u] = %g, want %g",
                  lm, r, j, fp[j], want);
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */

enum { NC = 24, NQ = 3 }; /* cache tokens and queries of the attention-part tests */

/* one softmax written out with no shift (logits are small here) and its own rotations */
static void attend_brute(const esa_ref_config *cfg, const float *q, uint32_t qpos0, double qr0,
                         double qstep, const float *k, const float *v, const uint32_t *keys,
                         uint32_t nk, int kzero, uint32_t ksub, int causal, float *o, float *lse) {
    for (uint32_t c = 0; c < NQ; c++)
        for (uint32_t h = 0; h < H; h++) {
            float qr[D], kr[D];
            double acc[D] = {0}, sum = 0.0;
            memcpy(qr, q + ((size_t)c * H + h) * D, sizeof qr);
            esa_ref_rope(qr, D, cfg->rope_dims, cfg->rope_theta, cfg->rope_neox, qr0 + c * qstep);
            for (uint32_t j = 0; j < nk; j++) {
                if (causal && keys[j] > qpos0 + c) continue;
                memcpy(kr, k + ((size_t)keys[j] * G + h / HPG) * D, sizeof kr);
                esa_ref_rope(kr, D, cfg->rope_dims, cfg->rope_theta, cfg->rope_neox,
                             kzero ? 0.0 : (double)keys[j] - ksub);
                double w = exp(cfg->scale * dot16(qr, kr));
                sum += w;
                for (int i = 0; i < D; i++) acc[i] += w * v[((size_t)keys[j] * G + h / HPG) * D + i];
            }
            for (int i = 0; i < D; i++) o[((size_t)c * H + h) * D + i] = sum > 0 ? (float)(acc[i] / sum) : 0.0f;
            lse[c * H + h] = sum > 0 ? (float)log(sum) : -INFINITY;
        }
}

static int cmp_lse(const char *what, const float *got, const float *want, uint32_t rows) {
    for (uint32_t r = 0; r < rows; r++)
        CHECK((got[r] == -INFINITY && want[r] == -INFINITY) || fabsf(got[r] - want[r]) <= 1e-5f,
              "%s: lse[%u][%u] = %g, want %g", what, r / H, r % H, got[r], want[r]);
    return 0;
}

static int test_attend_merge(void) {
    float k[NC * G * D], v[NC * G * D], q[NQ * H * D];
    float o1[NQ * H * D], o2[NQ * H * D], ou[NQ * H * D], ob[NQ * H * D];
    float l1[NQ * H], l2[NQ * H], lu[NQ * H], lb[NQ * H];
    uint32_t ka[NC], kb[NC], ku[NC];
    for (int t = 0; t < 300; t++) {
        esa_ref_config cfg = base_cfg(t & 1, (t & 2) ? 8 : 16);
        fill(k, sizeof k / sizeof k[0], 1.0f);
        fill(v, sizeof v / sizeof v[0], 1.0f);
        fill(q, sizeof q / sizeof q[0], 2.0f);
        uint32_t na = 0, nb = 0, nu = 0;
        int split = t % 5; /* 0: A empty, 1: B empty, else random halves */
        for (uint32_t p = 0; p < NC; p++) {
            if (urand(4) == 0) continue; /* not in the union */
            ku[nu++] = p;
            if (split == 1 || (split != 0 && urand(2))) ka[na++] = p; else kb[nb++] = p;
        }
        uint32_t qpos0 = t % 7 == 0 ? 0 : 18;   /* keys past a query are masked when causal */
        int causal = t % 4 != 3, kzero = t % 6 == 5;
        double qr0 = 30.5, qstep = t % 8 == 7 ? 0.0 : 1.0;
        uint32_t ksub = 3;
        esa_ref_attend_part(&cfg, q, NQ, qpos0, qr0, qstep, k, v, ka, na, kzero, ksub, causal, o1, l1);
        esa_ref_attend_part(&cfg, q, NQ, qpos0, qr0, qstep, k, v, kb, nb, kzero, ksub, causal, o2, l2);
        esa_ref_attend_part(&cfg, q, NQ, qpos0, qr0, qstep, k, v, ku, nu, kzero, ksub, causal, ou, lu);
        attend_brute(&cfg, q, qpos0, qr0, qstep, k, v, ku, nu, kzero, ksub, causal, ob, lb);
        char what[96];
        snprintf(what, sizeof what, "attend_part vs brute (trial %d)", t);
        if (cmp_out(what, ou, ob, NQ, 1e-5) || cmp_lse(what, lu, lb, NQ * H)) return 1;
        esa_ref_merge(o1, l1, o2, l2, NQ * H, D);
        snprintf(what, sizeof what, "merge(A, B) vs union (trial %d, |A|=%u |B|=%u)", t, na, nb);
        if (cmp_out(what, o1, ou, NQ, 1e-5) || cmp_lse(what, l1, lu, NQ * H)) return 1;
    }
    /* a row that sees nothing, alone and merged with another that sees nothing */
    esa_ref_config cfg = base_cfg(1, 16);
    uint32_t late[2] = {20, 23};
    esa_ref_attend_part(&cfg, q, 1, 5, 5.0, 1.0, k, v, late, 2, 0, 0, 1, o1, l1);
    esa_ref_attend_part(&cfg, q, 1, 5, 5.0, 1.0, k, v, late, 0, 0, 0, 1, o2, l2);
    esa_ref_merge(o1, l1, o2, l2, H, D);
    for (int i = 0; i < H * D; i++) CHECK(o1[i] == 0.0f, "empty merge: o[%d][%d] = %g, want 0", i / D, i % D, o1[i]);
    for (int r = 0; r < H; r++) CHECK(l1[r] == -INFINITY, "empty merge: lse[0][%d] = %g, want -inf", r, l1[r]);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */

/* Expected ESA output of one chunk from its definition: a single softmax over I, M_k, L and C
 * (no merge), each key with the position its scheme gives it. */
static void esa_brute(const esa_ref_config *cfg, const esa_ref_layer *ly, uint32_t P, uint32_t n,
                      const float *q, const uint32_t *sel, uint32_t nsel, float *out) {
    uint32_t nI = P < cfg->n_initial ? P : cfg->n_initial;
    uint32_t nL = P - nI < cfg->n_local ? P - nI : cfg->n_local;
    char *in_sel = calloc(P + n, 1); /* [P+n] */
    double *w = malloc((P + n) * sizeof *w); /* [P+n] */
    if (!in_sel || !w) { fill(out, (size_t)n * H * D, NAN); free(in_sel); free(w); return; }
    for (uint32_t i = 0; i < nsel; i++) in_sel[sel[i]] = 1;
    for (uint32_t c = 0; c < n; c++)
        for (uint32_t h = 0; h < H; h++) {
            double mx = -INFINITY, sum = 0.0, acc[D] = {0};
            for (uint32_t p = 0; p < P + n; p++) {
                int glob = p < nI || in_sel[p], loc = p >= P - nL && p <= P + c;
                w[p] = -INFINITY;
                if (!glob && !loc) continue;
                float qr[D], kr[D];
                memcpy(qr, q + ((size_t)c * H + h) * D, sizeof qr);
                memcpy(kr, ly->k + ((size_t)p * G + h / HPG) * D, sizeof kr);
                double qp, kp;
                if (cfg->exact_positions) { qp = P + c; kp = p; }
                else if (glob) { qp = cfg->global_pos; kp = 0.0; }
                else { qp = nL + c; kp = (double)p - (P - nL); }
                esa_ref_rope(qr, D, cfg->rope_dims, cfg->rope_theta, cfg->rope_neox, qp);
                esa_ref_rope(kr, D, cfg->rope_dims, cfg->rope_theta, cfg->rope_neox, kp);
                w[p] = cfg->scale * dot16(qr, kr);
                if (w[p] > mx) mx = w[p];
            }
            for (uint32_t p = 0; p < P + n; p++) {
                if (w[p] == -INFINITY) continue;
                double e = exp(w[p] - mx);
                sum += e;
                for (int i = 0; i < D; i++) acc[i] += e * ly->v[((size_t)p * G + h / HPG) * D + i];
            }
            for (int i = 0; i < D; i++) out[((size_t)c * H + h) * D + i] = (float)(acc[i] / sum);
        }
    free(in_sel);
    free(w);
}

/* kc as the header defines it, from the cached (rounded) keys */
static int check_kc(const esa_ref_config *cfg, const esa_ref_layer *ly, const float *b) {
    for (uint32_t t = 0; t < ly->len; t++)
        for (uint32_t r = 0; r < ly->kc_dim; r++) {
            float want;
            if (cfg->exact_scores) {
                want = ly->k[(size_t)t * G * D + r];
            } else {
                double s = 0.0;
                for (int j = 0; j < G * D; j++) s += (double)b[r * G * D + j] * ly->k[(size_t)t * G * D + j];
                want = esa_ref_f16_round((float)s);
            }
            CHECK(ly->kc[(size_t)t * ly->kc_dim + r] == want, "kc[%u][%u] = %g, want %g", t, r,
                  ly->kc[(size_t)t * ly->kc_dim + r], want);
        }
    return 0;
}

enum { CAP = 64, DC = 8 };
static float A_map[DC * H * D], B_map[DC * G * D];

/* Step (exact positions), step (extrapolation) and dense step fed the same tokens: the first
 * must equal dense while M_k = M, the second while the step is dense. */
static int run_vs_dense(int neox, uint32_t rd, int exact_scores, uint32_t top_k, int *n_sparse_eq) {
    static const uint32_t calls[] = {1, 7, 3, 12, 1, 1, 9, 5, 13, 2, 6};
    esa_ref_config ce = base_cfg(neox, rd), cx, cd;
    ce.exact_scores = exact_scores; ce.top_k = top_k; ce.exact_positions = 1;
    cx = ce; cx.exact_positions = 0;
    cd = ce;
    esa_ref_layer le, lx, ld;
    int rc = 1;
    if (esa_ref_layer_init(&le, &ce, CAP, A_map, B_map) | esa_ref_layer_init(&lx, &cx, CAP, A_map, B_map) |
        esa_ref_layer_init(&ld, &cd, CAP, A_map, B_map)) {
        fprintf(stderr, "FAIL: layer_init\n");
        goto done;
    }
    static float q[13 * H * D], k[13 * G * D], v[13 * G * D], oe[13 * H * D], ox[13 * H * D], od[13 * H * D];
    uint32_t sel[64];
    int compare_exact = 1;
    char what[128];
    for (size_t ci = 0; ci < sizeof calls / sizeof calls[0]; ci++) {
        uint32_t n = calls[ci], P = ld.len;
        fill(q, (size_t)n * H * D, 2.0f);
        fill(k, (size_t)n * G * D, 1.0f);
        fill(v, (size_t)n * G * D, 1.0f);
        esa_ref_step_info ie, ix;
        if (esa_ref_step(&ce, &le, n, q, k, v, oe, sel, &ie) || esa_ref_step(&cx, &lx, n, q, k, v, ox, sel, &ix) ||
            esa_ref_dense_step(&cd, &ld, n, q, k, v, od)) {
            fprintf(stderr, "FAIL: step returned an error at call %zu\n", ci);
            goto done;
        }
        uint32_t p_last = P + (n - 1) / ce.chunk * ce.chunk, n_last = n - (p_last - P);
        int dense = p_last + n_last <= ce.n_initial + top_k + ce.n_local;
        snprintf(what, sizeof what, "neox=%d rd=%u exact_scores=%d k=%u call %zu (P=%u n=%u)", neox, rd,
                 exact_scores, top_k, ci, P, n);
        if (ie.dense != dense || ix.dense != dense) {
            fprintf(stderr, "FAIL: %s: info.dense %d/%d, want %d\n", what, ie.dense, ix.dense, dense);
            goto done;
        }
        if (compare_exact && ie.n_middle > top_k) compare_exact = 0; /* selection starts: stop */
        if (compare_exact) {
            if (!dense) (*n_sparse_eq)++;
            if (cmp_out(what, oe, od, n, 1e-4)) goto done;
        }
        if (dense && cmp_out(what, ox, od, n, 1e-4)) goto done;
    }
    if (check_kc(&ce, &le, B_map) || check_kc(&cx, &lx, B_map)) goto done;
    rc = 0;
done:
    esa_ref_layer_free(&le);
    esa_ref_layer_free(&lx);
    esa_ref_layer_free(&ld);
    return rc;
}

static int test_step_vs_dense(void) {
    static const uint32_t ks[] = {1000, 41, 40, 37}; /* 40, 37: chunks end on the boundary */
    int n_sparse_eq = 0;
    fill(A_map, sizeof A_map / sizeof A_map[0], 0.3f);
    fill(B_map, sizeof B_map / sizeof B_map[0], 0.3f);
    for (int neox = 0; neox <= 1; neox++)
        for (uint32_t rd = 8; rd <= 16; rd += 8)
            for (int es = 0; es <= 1; es++)
                for (int ki = 0; ki < 4; ki++)
                    if (run_vs_dense(neox, rd, es, ks[ki], &n_sparse_eq)) return 1;
    CHECK(n_sparse_eq > 0, "no non-dense step with k >= l_M was compared with dense");
    return 0;
}

/* Does sel[nsel] (cache positions) hold top-k middle tokens by the score recomputed here per
 * head in double? As sets, with a tolerance for near-ties. */
static int check_selection(const esa_ref_config *cfg, const esa_ref_layer *ly, uint32_t P, uint32_t n,
                           const float *q, const uint32_t *sel, uint32_t nsel, const char *what) {
    uint32_t nI = P < cfg->n_initial ? P : cfg->n_initial;
    uint32_t nL = P - nI < cfg->n_local ? P - nI : cfg->n_local, lM = P - nI - nL;
    double F[CAP], Fp[CAP], S[5][CAP];
    char chosen[CAP] = {0};
    for (uint32_t c = 0; c < n; c++)
        for (uint32_t m = 0; m < lM; m++) {
            S[c][m] = 0.0;
            for (uint32_t h = 0; h < H; h++) {
                float qr[D];
                memcpy(qr, q + ((size_t)c * H + h) * D, sizeof qr);
                esa_ref_rope(qr, D, cfg->rope_dims, cfg->rope_theta, cfg->rope_neox, cfg->global_pos);
                S[c][m] += dot16(qr, ly->k + ((size_t)(nI + m) * G + h / HPG) * D);
            }
        }
    for (uint32_t m = 0; m < lM; m++) F[m] = n == 1 ? S[0][m] : -INFINITY;
    for (uint32_t c = 0; n > 1 && c < n; c++) {
        double mx = -INFINITY;
        for (uint32_t m = 0; m < lM; m++) mx = fmax(mx, S[c][m]);
        for (uint32_t m = 0; m < lM; m++) F[m] = fmax(F[m], S[c][m] - mx);
    }
    double big = 1.0;
    for (uint32_t j = 0; j < lM; j++) {
        Fp[j] = -INFINITY;
        for (uint32_t i = 0; i < lM; i++)
            if ((i > j ? i - j : j - i) <= cfg->radius) Fp[j] = fmax(Fp[j], F[i]);
        big = fmax(big, fabs(Fp[j]));
    }
    for (uint32_t i = 0; i < nsel; i++) chosen[sel[i] - nI] = 1;
    for (uint32_t i = 0; i < lM; i++)
        for (uint32_t j = 0; j < lM; j++)
            CHECK(!chosen[i] || chosen[j] || Fp[i] >= Fp[j] - 1e-4 * big,
                  "%s: selected %u (F'=%g) over unselected %u (F'=%g)", what, nI + i, Fp[i], nI + j, Fp[j]);
    return 0;
}

static int run_small_k(int neox, int exact_positions, int exact_scores) {
    static const uint32_t calls[] = {5, 5, 5, 3, 5, 1, 1, 12, 4, 5, 1, 2, 1, 1, 7, 1}; /* 18 = l_I+k+l_L is hit */
    esa_ref_config cfg = base_cfg(neox, neox ? 16 : 8);
    cfg.top_k = 6; cfg.exact_positions = exact_positions; cfg.exact_scores = exact_scores;
    esa_ref_layer ly;
    if (esa_ref_layer_init(&ly, &cfg, CAP, A_map, B_map)) { fprintf(stderr, "FAIL: layer_init\n"); return 1; }
    static float q[12 * H * D], k[12 * G * D], v[12 * G * D], out[12 * H * D], want[12 * H * D];
    uint32_t sel[6];
    char what[128];
    int rc = 1, n_sparse = 0;
    for (size_t ci = 0; ci < sizeof calls / sizeof calls[0]; ci++) {
        uint32_t n = calls[ci], P = ly.len;
        fill(q, (size_t)n * H * D, 2.0f);
        fill(k, (size_t)n * G * D, 1.0f);
        fill(v, (size_t)n * G * D, 1.0f);
        esa_ref_step_info info;
        snprintf(what, sizeof what, "small k: neox=%d exact_pos=%d exact_scores=%d call %zu (P=%u n=%u)",
                 neox, exact_positions, exact_scores, ci, P, n);
        if (esa_ref_step(&cfg, &ly, n, q, k, v, out, sel, &info)) { fprintf(stderr, "FAIL: %s: step failed\n", what); goto done; }
        for (size_t i = 0; i < (size_t)n * H * D; i++)
            if (!isfinite(out[i])) { fprintf(stderr, "FAIL: %s: out[%zu] = %g\n", what, i, out[i]); goto done; }
        uint32_t pl = P + (n - 1) / cfg.chunk * cfg.chunk, nl = n - (pl - P); /* last chunk */
        if (info.dense != (pl + nl <= 4 + 6 + 8)) {
            fprintf(stderr, "FAIL: %s: info.dense = %d\n", what, info.dense);
            goto done;
        }
        if (info.dense) continue;
        n_sparse++;
        uint32_t lm = pl - 4 - 8, kk = lm < 6 ? lm : 6;
        if (info.n_initial != 4 || info.n_local != 8 || info.n_middle != lm || info.n_selected != kk) {
            fprintf(stderr, "FAIL: %s: info I=%u M=%u L=%u sel=%u, want 4 %u 8 %u\n", what, info.n_initial,
                    info.n_middle, info.n_local, info.n_selected, lm, kk);
            goto done;
        }
        for (uint32_t i = 0; i < kk; i++)
            if (sel[i] < 4 || sel[i] >= 4 + lm || (i > 0 && sel[i] <= sel[i - 1])) {
                fprintf(stderr, "FAIL: %s: sel[%u] = %u not ascending inside M = [4, %u)\n", what, i, sel[i], 4 + lm);
                goto done;
            }
        /* sel describes the last chunk: check that one (later tokens of the cache are unread) */
        const float *ql = q + (size_t)(pl - P) * H * D; /* [nl][H][D] */
        esa_brute(&cfg, &ly, pl, nl, ql, sel, kk, want);
        if (cmp_out(what, out + (size_t)(pl - P) * H * D, want, nl, 1e-4)) goto done;
        if (exact_scores && check_selection(&cfg, &ly, pl, nl, ql, sel, kk, what)) goto done;
    }
    if (n_sparse == 0) { fprintf(stderr, "FAIL: small k: no sparse step happened\n"); goto done; }
    rc = 0;
done:
    esa_ref_layer_free(&ly);
    return rc;
}

/* A middle key planted along the (global-frame) query must win, and its neighbours with it. */
static int run_needle(uint32_t pstar) {
    esa_ref_config cfg = base_cfg(1, 16);
    cfg.top_k = 4; cfg.exact_scores = 1;
    esa_ref_layer ly;
    if (esa_ref_layer_init(&ly, &cfg, CAP, NULL, NULL)) { fprintf(stderr, "FAIL: layer_init\n"); return 1; }
    static float q[10 * H * D], k[10 * G * D], v[10 * G * D], out[10 * H * D], qd[H * D], qg[G * D];
    fill(qd, H * D, 1.0f);
    memset(qg, 0, sizeof qg);
    for (int h = 0; h < H; h++) { /* the decode query as the score sees it, summed per KV head */
        float qr[D];
        memcpy(qr, qd + h * D, sizeof qr);
        esa_ref_rope(qr, D, cfg.rope_dims, cfg.rope_theta, cfg.rope_neox, cfg.global_pos);
        for (int i = 0; i < D; i++) qg[(h / HPG) * D + i] += qr[i];
    }
    uint32_t sel[4];
    esa_ref_step_info info;
    int rc = 1;
    for (uint32_t p0 = 0; p0 < 60; p0 += 10) {
        fill(q, 10 * H * D, 1.0f);
        fill(k, 10 * G * D, 0.3f);
        fill(v, 10 * G * D, 1.0f);
        if (pstar >= p0 && pstar < p0 + 10)
            for (int i = 0; i < G * D; i++) k[(pstar - p0) * G * D + i] = 4.0f * qg[i];
        if (esa_ref_step(&cfg, &ly, 10, q, k, v, out, NULL, NULL)) { fprintf(stderr, "FAIL: needle: step\n"); goto done; }
    }
    fill(v, G * D, 1.0f);
    fill(k, G * D, 0.3f);
    if (esa_ref_step(&cfg, &ly, 1, qd, k, v, out, sel, &info) || info.dense || info.n_selected != 4) {
        fprintf(stderr, "FAIL: needle at %u: decode step dense=%d selected=%u\n", pstar, info.dense, info.n_selected);
        goto done;
    }
    for (uint32_t p = pstar - 1; p <= pstar + 1; p++) {
        if (p < 4 || p >= 4 + info.n_middle) continue; /* neighbour outside M */
        int found = 0;
        for (int i = 0; i < 4; i++) found |= sel[i] == p;
        if (!found) {
            fprintf(stderr, "FAIL: needle at %u: position %u not selected (sel %u %u %u %u)\n", pstar, p, sel[0],
                    sel[1], sel[2], sel[3]);
            goto done;
        }
    }
    rc = 0;
done:
    esa_ref_layer_free(&ly);
    return rc;
}

static int test_step_sparse(void) {
    for (int neox = 0; neox <= 1; neox++)
        for (int ep = 0; ep <= 1; ep++)
            for (int es = 0; es <= 1; es++)
                if (run_small_k(neox, ep, es)) return 1;
    const uint32_t needles[] = {30, 4, 51};
    for (int i = 0; i < 3; i++)
        if (run_needle(needles[i])) return 1;
    return 0;
}

static int test_edges(void) {
    esa_ref_layer zero;
    memset(&zero, 0, sizeof zero);
    esa_ref_layer_free(&zero); /* a zeroed struct must be accepted */
    esa_ref_config cfg = base_cfg(1, 16);
    cfg.exact_scores = 1;
    esa_ref_layer ly;
    CHECK(esa_ref_layer_init(&ly, &cfg, 10, NULL, NULL) == 0, "layer_init failed");
    float q[8 * H * D], k[8 * G * D], v[8 * G * D], out[8 * H * D];
    fill(q, 8 * H * D, 1.0f); fill(k, 8 * G * D, 1.0f); fill(v, 8 * G * D, 1.0f);
    esa_ref_step_info info;
    int ok = esa_ref_step(&cfg, &ly, 8, q, k, v, out, NULL, &info) == 0 && ly.len == 8;
    int rounded = 0; /* the cache holds fp16 values, and that is not a no-op on these inputs */
    for (int i = 0; ok && i < 8 * G * D; i++) {
        CHECK(ly.k[i] == esa_ref_f16_round(k[i]) && ly.v[i] == esa_ref_f16_round(v[i]),
              "cache k/v[%d][%d][%d] = %a/%a, input %a/%a", i / (G * D), i / D % G, i % D, ly.k[i], ly.v[i], k[i], v[i]);
        rounded += ly.k[i] != k[i];
    }
    CHECK(!ok || rounded > 0, "cache keys were not rounded to fp16");
    ok = ok && esa_ref_step(&cfg, &ly, 0, q, k, v, out, NULL, &info) == 0 && ly.len == 8;
    for (int i = 0; i < 8 * H * D; i++) out[i] = 42.0f;
    ok = ok && esa_ref_step(&cfg, &ly, 3, q, k, v, out, NULL, &info) == -1 && ly.len == 8;
    ok = ok && esa_ref_dense_step(&cfg, &ly, 3, q, k, v, out) == -1 && ly.len == 8 && out[0] == 42.0f;
    esa_ref_layer_free(&ly);
    esa_ref_layer_free(&ly); /* freeing twice is harmless: free zeroes the struct */
    CHECK(ok, "overflow: step must return -1 and leave the cache as it was");
    cfg.exact_scores = 0;
    CHECK(esa_ref_layer_init(&ly, &cfg, 10, NULL, NULL) == -1, "layer_init accepted compression without A, B");
    return 0;
}

int main(void) {
    static const struct { const char *name; int (*fn)(void); } tests[] = {
        {"f16_round", test_f16}, {"rope", test_rope}, {"order_key", test_order_key},
        {"topk", test_topk}, {"proximity", test_proximity}, {"attend_part+merge", test_attend_merge},
        {"step vs dense", test_step_vs_dense}, {"step sparse + needle", test_step_sparse},
        {"edges", test_edges},
    };
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        if (tests[i].fn()) {
            fprintf(stderr, "test_ref: %s FAILED\n", tests[i].name);
            return 1;
        }
        printf("ok   %s\n", tests[i].name);
    }
    printf("test_ref: all passed\n");
    return 0;
}
