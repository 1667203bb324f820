/* test_stages.c - each device stage alone against its CPU reference, on random and
 * adversarial inputs: proximity (keys exactly, and the fused histogram), selection through
 * proximity + radix top-k (exact sets: both sides see the same floats and break ties by
 * position; inputs aimed at the candidate list and the tie cutoff too), scores (per-query
 * shift and max over the chunk), compression, and attention parts + their log-sum-exp merge
 * with split-K. Every check prints its first mismatch with its coordinates. The stages run
 * through src/stage_debug.h (internal, static library). */
#include "../src/stage_debug.h"
#include "esa_ref.h"
#include "harness.h"

#include <float.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void *xmalloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "FAIL: out of host memory (%zu bytes)\n", bytes);
        exit(1);
    }
    return p;
}

static float bits_float(uint32_t u)
{
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* The float an order key stands for (key 0: NaN). */
static float key_float(uint32_t k)
{
    if (k == 0)
        return NAN;
    return bits_float((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k);
}

/* IEEE half bits of x after rounding it to the nearest half (esa_ref_f16_round). */
static uint16_t f16_bits(float x)
{
    float r = esa_ref_f16_round(x);
    uint16_t sign = signbit(r) ? 0x8000u : 0u;
    float a = fabsf(r);
    if (isnan(r))
        return (uint16_t)(sign | 0x7e00u);
    if (isinf(a))
        return (uint16_t)(sign | 0x7c00u);
    if (a == 0.0f)
        return sign;
    if (a < 0x1p-14f) /* subnormal half: a multiple of 2^-24 */
        return (uint16_t)(sign | (uint16_t)(a * 0x1p24f));
    int e;
    float m = frexpf(a, &e); /* a = m 2^e, m in [0.5, 1) */
    return (uint16_t)(sign | (uint16_t)((e + 14) << 10) | (uint16_t)((m * 2.0f - 1.0f) * 1024.0f));
}

static float f16_float(uint16_t h)
{
    float sign = (h & 0x8000u) ? -1.0f : 1.0f;
    uint32_t e = (h >> 10) & 31u, m = h & 1023u;
    if (e == 31)
        return m ? NAN : sign * INFINITY;
    if (e == 0)
        return sign * (float)m * 0x1p-24f;
    return sign * ldexpf(1.0f + (float)m / 1024.0f, (int)e - 15);
}

static esa_cache *make_cache(esa_context *ctx, const esa_cache_desc *desc)
{
    esa_cache *c = NULL;
    esa_status s = esa_cache_create(ctx, desc, &c);
    if (s != ESA_SUCCESS) {
        fprintf(stderr, "FAIL: esa_cache_create: %s (%s)\n", esa_status_string(s),
                esa_context_last_error(ctx));
        exit(1);
    }
    return c;
}

/* ------------------------------------------------------------------------------------------ */
/* Inputs for the selection stages                                                             */

enum dist {
    D_NORMAL,   /* distinct random values */
    D_EQUAL,    /* every score the same: the lowest positions must win */
    D_FEW,      /* four values: ties everywhere */
    D_INF,      /* +-inf among normal values */
    D_ZEROS,    /* -0.0 and +0.0 (equal) with a few negatives */
    D_NAN,      /* NaNs of several bit patterns (lowest) among normal values */
    D_HUGE,     /* +-1e38 .. FLT_MAX among normal values */
    D_TINY,     /* +-1e-38 and smaller (subnormal), FLT_MIN, among zeros */
    D_CLUSTER,  /* 1.0 with random low mantissa bits: one first digit, the later passes decide */
    D_BIN,      /* 2048 copies of 100 at random places, 1 elsewhere: pass 0 resolves k = 2048 */
    D_COUNT
};
static const char *dist_name[D_COUNT] = {"normal", "all-equal", "few-values", "inf", "signed-zeros",
                                         "nan", "huge", "tiny", "cluster", "one-bin"};

static void fill_dist(float *f, uint32_t lm, enum dist d)
{
    static const float few[4] = {-1.0f, 0.0f, 0.5f, 2.0f};
    static const uint32_t nans[4] = {0x7fc00000u, 0xffc00000u, 0x7f800001u, 0xffffffffu};
    for (uint32_t i = 0; i < lm; i++) {
        uint64_t r = rng_u64();
        float u = rng_normal();
        switch (d) {
        case D_NORMAL: f[i] = u; break;
        case D_EQUAL: f[i] = 0.75f; break;
        case D_FEW: f[i] = few[r % 4]; break;
        case D_INF: f[i] = r % 20 == 0 ? INFINITY : r % 20 == 1 ? -INFINITY : u; break;
        case D_ZEROS: f[i] = r % 10 == 0 ? -fabsf(u) : ((r >> 8) & 1) ? -0.0f : 0.0f; break;
        case D_NAN: f[i] = r % 8 == 0 ? bits_float(nans[(r >> 8) % 4]) : u; break;
        case D_HUGE: {
            static const float h[5] = {1e38f, -1e38f, 3e38f, FLT_MAX, -FLT_MAX};
            f[i] = r % 3 == 0 ? h[(r >> 8) % 5] : u * 1e37f;
            break;
        }
        case D_TINY: {
            static const float t[6] = {1e-38f, -1e-38f, FLT_MIN, -FLT_MIN, 1e-45f, 3e-39f};
            f[i] = r % 3 == 0 ? t[(r >> 8) % 6] : r % 3 == 1 ? u * 1e-37f : 0.0f;
            break;
        }
        case D_CLUSTER: f[i] = bits_float(0x3f800000u | (uint32_t)(r & 0xfffu)); break;
        case D_BIN: f[i] = 1.0f; break;
        default: break;
        }
    }
    if (d == D_BIN)
        for (uint32_t placed = 0; placed < 2048 && placed < lm;) {
            uint32_t i = (uint32_t)(rng_u64() % lm);
            if (f[i] != 100.0f) {
                f[i] = 100.0f;
                placed++;
            }
        }
}

/* Subnormals flushed to zero, as a device may do in its float compares. */
static int flush_subnormals(const float *f, float *out, uint32_t lm)
{
    int any = 0;
    for (uint32_t i = 0; i < lm; i++) {
        out[i] = f[i];
        if (f[i] != 0.0f && fpclassify(f[i]) == FP_SUBNORMAL) {
            out[i] = copysignf(0.0f, f[i]);
            any = 1;
        }
    }
    return any;
}

/* ------------------------------------------------------------------------------------------ */
/* Proximity                                                                                   */

static int g_ftz_seen; /* the device treated subnormal scores as zero */

/* GPU keys and histogram vs esa_ref_proximity's F' (exact). Returns 1 if they agree. */
static int compare_proximity(const char *what, const float *f, uint32_t lm, uint32_t radius,
                             const uint32_t *keys, const uint32_t *hist, int report)
{
    float *fp = xmalloc(sizeof(float) * lm);
    esa_ref_proximity(f, lm, radius, fp);
    uint32_t *h = calloc(2048, sizeof(uint32_t));
    int ok = 1;
    for (uint32_t j = 0; j < lm; j++) {
        uint32_t want = esa_ref_order_key(fp[j]);
        h[want >> 21]++;
        if (ok && keys[j] != want) {
            ok = 0;
            if (report)
                EXPECT(0, "%s: proximity key [%u] = 0x%08x (%g), reference 0x%08x (%g); f[%u] = %g",
                       what, j, keys[j], key_float(keys[j]), want, fp[j], j, f[j]);
        }
    }
    for (uint32_t b = 0; ok && b < 2048; b++)
        if (hist[b] != h[b]) {
            ok = 0;
            if (report)
                EXPECT(0, "%s: histogram bin %u = %u, reference %u", what, b, hist[b], h[b]);
        }
    free(h);
    free(fp);
    return ok;
}

static void check_proximity(esa_cache *c, const char *what, const float *f, uint32_t lm,
                            uint32_t radius)
{
    uint32_t *keys = xmalloc(sizeof(uint32_t) * lm), hist[2048];
    esa_status s = esa_debug_proximity(c, f, lm, radius, keys, hist);
    EXPECT(s == ESA_SUCCESS, "%s: esa_debug_proximity: %s", what, esa_status_string(s));
    if (s == ESA_SUCCESS && !compare_proximity(what, f, lm, radius, keys, hist, 0)) {
        float *ff = xmalloc(sizeof(float) * lm);
        /* a device that flushes subnormals in compares sees them as zeros (Vulkan leaves the
         * denormal mode to the implementation unless float controls are asked for) */
        if (flush_subnormals(f, ff, lm) && compare_proximity(what, ff, lm, radius, keys, hist, 0))
            g_ftz_seen = 1;
        else
            compare_proximity(what, f, lm, radius, keys, hist, 1);
        free(ff);
    }
    free(keys);
}

static void test_proximity(esa_cache *c, uint32_t max_lm)
{
    static const uint32_t radii[] = {0, 1, 3, 64};
    static const uint32_t sizes[] = {1, 2, 63, 64, 65, 129, 255, 256, 257, 1000, 4097, 100003};
    static const enum dist dists[] = {D_NORMAL, D_NAN, D_INF, D_ZEROS, D_TINY, D_FEW};
    char what[128];
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        uint32_t lm = sizes[si];
        if (lm > max_lm)
            continue;
        float *f = xmalloc(sizeof(float) * lm);
        for (size_t ri = 0; ri < sizeof radii / sizeof radii[0]; ri++) {
            for (size_t di = 0; di < sizeof dists / sizeof dists[0]; di++) {
                fill_dist(f, lm, dists[di]);
                snprintf(what, sizeof what, "proximity %s lm=%u radius=%u", dist_name[dists[di]], lm,
                         radii[ri]);
                check_proximity(c, what, f, lm, radii[ri]);
            }
            /* spikes at the array edges and at workgroup edges, everything else low */
            for (uint32_t i = 0; i < lm; i++)
                f[i] = -1.0f - (float)(i % 7);
            uint32_t spikes[] = {0, lm - 1, 255, 256, lm / 2, 4095, 4096};
            for (size_t k = 0; k < sizeof spikes / sizeof spikes[0]; k++)
                if (spikes[k] < lm)
                    f[spikes[k]] = 10.0f + (float)k;
            snprintf(what, sizeof what, "proximity spikes lm=%u radius=%u", lm, radii[ri]);
            check_proximity(c, what, f, lm, radii[ri]);
        }
        free(f);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Selection: proximity + top-k                                                                */

/* GPU selection vs the reference's (exact, ascending). Returns 1 if equal. */
static int compare_topk(const char *what, const float *f, uint32_t lm, uint32_t radius, uint32_t k,
                        uint32_t pos0, const uint32_t *gpu, int report)
{
    float *fp = xmalloc(sizeof(float) * lm);
    uint32_t *ref = xmalloc(sizeof(uint32_t) * k);
    esa_ref_proximity(f, lm, radius, fp);
    uint32_t w = esa_ref_topk(fp, lm, k, ref);
    int ok = w == k;
    if (!ok && report)
        EXPECT(0, "%s: the reference selected %u of %u", what, w, k);
    for (uint32_t i = 0; ok && i < k; i++) {
        if (gpu[i] == pos0 + ref[i])
            continue;
        ok = 0;
        if (report) {
            uint32_t g = gpu[i] - pos0;
            EXPECT(0, "%s: selection[%u] = position %u (F' %g, key 0x%08x), reference position %u "
                      "(F' %g, key 0x%08x)",
                   what, i, gpu[i], g < lm ? fp[g] : NAN, g < lm ? esa_ref_order_key(fp[g]) : 0u,
                   pos0 + ref[i], fp[ref[i]], esa_ref_order_key(fp[ref[i]]));
        }
    }
    free(ref);
    free(fp);
    return ok;
}

static void check_topk(esa_cache *c, const char *what, const float *f, uint32_t lm, uint32_t radius,
                       uint32_t k, uint32_t pos0)
{
    uint32_t *gpu = xmalloc(sizeof(uint32_t) * k);
    memset(gpu, 0xff, sizeof(uint32_t) * k);
    esa_status s = esa_debug_topk(c, f, lm, radius, k, pos0, gpu);
    EXPECT(s == ESA_SUCCESS, "%s: esa_debug_topk: %s", what, esa_status_string(s));
    if (s == ESA_SUCCESS && !compare_topk(what, f, lm, radius, k, pos0, gpu, 0)) {
        float *ff = xmalloc(sizeof(float) * lm);
        if (flush_subnormals(f, ff, lm) && compare_topk(what, ff, lm, radius, k, pos0, gpu, 0))
            g_ftz_seen = 1;
        else
            compare_topk(what, f, lm, radius, k, pos0, gpu, 1);
        free(ff);
    }
    free(gpu);
}

static void test_topk(esa_cache *c)
{
    static const uint32_t sizes[] = {1, 7, 4097, 100003};
    char what[160];
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        uint32_t lm = sizes[si];
        float *f = xmalloc(sizeof(float) * lm);
        uint32_t ks[] = {1, lm - 1, 2048, 8192, lm};
        for (int d = 0; d < D_COUNT; d++) {
            fill_dist(f, lm, (enum dist)d);
            for (uint32_t radius = 0; radius <= 1; radius++)
                for (size_t ki = 0; ki < 5; ki++) {
                    uint32_t k = ks[ki];
                    int dup = 0;
                    for (size_t kj = 0; kj < ki; kj++)
                        dup |= ks[kj] == k;
                    /* k = lm (everything) only where it is cheap */
                    if (dup || k == 0 || k > lm || (k == lm && lm > 4097))
                        continue;
                    snprintf(what, sizeof what, "top-k %s lm=%u k=%u radius=%u", dist_name[d], lm, k,
                             radius);
                    check_topk(c, what, f, lm, radius, k, 0);
                }
        }
        free(f);
    }
    /* a nonzero first position, as a step passes l_I */
    float *f = xmalloc(sizeof(float) * 5000);
    fill_dist(f, 5000, D_FEW);
    check_topk(c, "top-k few-values lm=5000 k=1000 radius=1 pos0=128", f, 5000, 1, 1000, 128);
    free(f);
}

static void test_topk_large(esa_cache *c, uint32_t lm)
{
    float *f = xmalloc(sizeof(float) * lm);
    char what[128];
    static const enum dist dists[] = {D_NORMAL, D_CLUSTER, D_FEW};
    for (size_t i = 0; i < sizeof dists / sizeof dists[0]; i++) {
        fill_dist(f, lm, dists[i]);
        snprintf(what, sizeof what, "top-k %s lm=%u k=2048 radius=1", dist_name[dists[i]], lm);
        check_topk(c, what, f, lm, 1, 2048, 0);
    }
    free(f);
}

/* Candidate lists of 4.2M keys: topk_resolve reads the list up to four times, and llvmpipe ends
 * an invocation's loops after 65535 iterations in all (CAND_LOOP in topk_resolve.comp). */
static void test_topk_huge(esa_cache *c, uint32_t lm)
{
    char what[160];
    float *f = xmalloc(sizeof(float) * lm);
    fill_dist(f, lm, D_EQUAL);
    snprintf(what, sizeof what, "top-k all-equal lm=%u k=2048 radius=1", lm);
    check_topk(c, what, f, lm, 1, 2048, 0);
    for (uint32_t j = 0; j < lm; j++)
        f[j] = bits_float(0x3f800000u | (uint32_t)(rng_u64() % 3));
    snprintf(what, sizeof what, "top-k three-ulps lm=%u k=2048 radius=0", lm);
    check_topk(c, what, f, lm, 0, 2048, 0);
    free(f);
}

/* Inputs aimed at the top-k passes (shaders/topk.glsl): candidate lists as long as lm,
 * thresholds inside a plateau of equal keys (the position cutoff), k next to lm, keys that
 * differ only in the later digits, deep picks (a huge first bin), no room to copy survivors. */
static void test_topk_adversarial(esa_context *ctx, esa_cache *c, uint32_t big_lm)
{
    char what[160];
    float *f = xmalloc(sizeof(float) * big_lm);

    /* all keys equal: every key is a candidate and the cutoff is a position */
    fill_dist(f, big_lm, D_EQUAL);
    static const uint32_t eq_k[] = {1, 2048, 4096, 4097, ESA_MAX_TOP_K};
    for (size_t i = 0; i < sizeof eq_k / sizeof eq_k[0]; i++) {
        snprintf(what, sizeof what, "top-k all-equal lm=%u k=%u radius=1", big_lm, eq_k[i]);
        check_topk(c, what, f, big_lm, 1, eq_k[i], 0);
    }

    /* every score NaN (key 0) */
    static const uint32_t nans[4] = {0x7fc00000u, 0xffc00000u, 0x7f800001u, 0xffffffffu};
    for (uint32_t i = 0; i < 100003; i++)
        f[i] = bits_float(nans[i % 4]);
    check_topk(c, "top-k all-NaN lm=100003 k=1 radius=1", f, 100003, 1, 1, 0);
    check_topk(c, "top-k all-NaN lm=100003 k=5000 radius=0", f, 100003, 0, 5000, 7);
    check_topk(c, "top-k all-NaN lm=100003 k=100002 radius=1", f, 100003, 1, 100002, 0);

    /* a plateau of 50000 equal scores across 13 blocks, the threshold inside it: about 1350
     * (k = 2048) and 54800 (k = 65536) normal scores lie above the plateau */
    static const struct { uint32_t k; float v; } plateau[] = {{2048, 3.0f}, {ESA_MAX_TOP_K, 1.6f}};
    for (size_t i = 0; i < 2; i++) {
        fill_dist(f, big_lm, D_NORMAL);
        for (uint32_t j = 300001; j < 350001; j++)
            f[j] = plateau[i].v;
        snprintf(what, sizeof what, "top-k plateau lm=%u k=%u radius=1", big_lm, plateau[i].k);
        check_topk(c, what, f, big_lm, 1, plateau[i].k, 0);
    }

    /* three keys 1 ulp apart everywhere: the ties of the threshold share their top 22 bits with
     * the other keys, so the resolve counts them again */
    for (uint32_t j = 0; j < big_lm; j++)
        f[j] = bits_float(0x3f800000u | (uint32_t)(rng_u64() % 3));
    snprintf(what, sizeof what, "top-k three-ulps lm=%u k=2048 radius=1", big_lm);
    check_topk(c, what, f, big_lm, 1, 2048, 0);
    snprintf(what, sizeof what, "top-k three-ulps lm=%u k=%u radius=0", big_lm, ESA_MAX_TOP_K);
    check_topk(c, what, f, big_lm, 0, ESA_MAX_TOP_K, 0);

    /* keys that differ in digit 1 (bits 20..10) and a little in digit 2 */
    for (uint32_t j = 0; j < big_lm; j++) {
        uint64_t r = rng_u64();
        f[j] = bits_float(0x3f800000u | (uint32_t)(r & 0x7ffu) << 10 | (uint32_t)(r >> 11) % 3u);
    }
    snprintf(what, sizeof what, "top-k digit-1 lm=%u k=2048 radius=0", big_lm);
    check_topk(c, what, f, big_lm, 0, 2048, 0);

    /* a deep pick that settles: all keys in one bin of bits 31..21, exactly k of them above
     * the rest in bits 20..10 */
    for (uint32_t j = 0; j < big_lm; j++)
        f[j] = 1.0f;
    for (uint32_t placed = 0; placed < 2048;) {
        uint32_t j = (uint32_t)(rng_u64() % big_lm);
        placed += f[j] == 1.0f;
        f[j] = 1.0f + 0x1p-10f;
    }
    snprintf(what, sizeof what, "top-k deep-whole lm=%u k=2048 radius=0", big_lm);
    check_topk(c, what, f, big_lm, 0, 2048, 0);

    /* normal scores at lm = 1M, k at its limit */
    fill_dist(f, big_lm, D_NORMAL);
    snprintf(what, sizeof what, "top-k normal lm=%u k=%u radius=1", big_lm, ESA_MAX_TOP_K);
    check_topk(c, what, f, big_lm, 1, ESA_MAX_TOP_K, 0);

    /* lm just above k, k = lm - 1 at the largest k, and a last block of a few keys */
    static const uint32_t near[][2] = {{2049, 2048}, {2048 + 37, 2048}, {65537, 65536},
                                       {65536 + 4099, 65536}, {3 * 4096 + 5, 3 * 4096 + 2}};
    static const enum dist near_d[] = {D_NORMAL, D_EQUAL, D_FEW, D_NAN};
    for (size_t i = 0; i < sizeof near / sizeof near[0]; i++)
        for (size_t di = 0; di < sizeof near_d / sizeof near_d[0]; di++) {
            fill_dist(f, near[i][0], near_d[di]);
            snprintf(what, sizeof what, "top-k %s lm=%u k=%u radius=1", dist_name[near_d[di]],
                     near[i][0], near[i][1]);
            check_topk(c, what, f, near[i][0], 1, near[i][1], 3);
        }
    free(f);

    /* a cache whose candidate list has no room behind the candidates for the survivors:
     * 60000 candidates (too few for a deep pick): 10000 below, 40000 in and 10000 above the
     * threshold's bin of bits 20..10 */
    esa_cache_desc small = {.n_layers = 1, .n_heads = 1, .n_kv_heads = 1, .head_dim = 16,
                            .compress_dim = 8, .chunk = 16, .max_tokens = 70000};
    esa_cache *sc = make_cache(ctx, &small);
    f = xmalloc(sizeof(float) * 70000);
    for (uint32_t j = 0; j < 70000; j++)
        f[j] = j % 7 == 0 ? -5.0f : j % 7 == 1 ? 1.05f : j % 7 == 2 ? 1.24f
             : (j & 1) ? 1.2f : nextafterf(1.2f, 2.0f);
    check_topk(sc, "top-k no-room lm=70000 k=12048 radius=0", f, 70000, 0, 12048, 0);
    check_topk(sc, "top-k no-room lm=70000 k=30001 radius=0", f, 70000, 0, 30001, 5);
    free(f);
    esa_cache_destroy(sc);
}

/* ------------------------------------------------------------------------------------------ */
/* Scores                                                                                      */

static void check_scores(esa_cache *c, uint32_t dc, uint32_t n, uint32_t lm, uint32_t m0,
                         float qscale, float kscale)
{
    char what[128];
    snprintf(what, sizeof what, "scores dc=%u n=%u lm=%u m0=%u scale=%g", dc, n, lm, m0,
             (double)(qscale * kscale));
    float *qc = xmalloc(sizeof(float) * n * dc), *kf = xmalloc(sizeof(float) * lm * dc);
    uint16_t *kb = xmalloc(sizeof(uint16_t) * lm * dc);
    float *f = xmalloc(sizeof(float) * lm), *fr = xmalloc(sizeof(float) * lm),
          *s1 = xmalloc(sizeof(float) * lm);
    fill_normal(qc, (size_t)n * dc, qscale);
    for (size_t i = 0; i < (size_t)lm * dc; i++) {
        kf[i] = esa_ref_f16_round(kscale * rng_normal());
        kb[i] = f16_bits(kf[i]);
    }
    esa_status s = esa_debug_scores(c, qc, n, kb, m0, lm, f);
    EXPECT(s == ESA_SUCCESS, "%s: esa_debug_scores: %s", what, esa_status_string(s));
    esa_ref_importance(qc, n, kf, lm, dc, fr);
    /* the error scale: the largest raw score of any query */
    double scale = 1e-30;
    for (uint32_t q = 0; q < n; q++) {
        esa_ref_importance(qc + (size_t)q * dc, 1, kf, lm, dc, s1);
        for (uint32_t m = 0; m < lm; m++)
            scale = fmax(scale, fabs((double)s1[m]));
    }
    double err = 0.0;
    long bad = -1;
    float fmax_gpu = -INFINITY;
    for (uint32_t m = 0; m < lm; m++) {
        double e = fabs((double)f[m] - (double)fr[m]) / scale;
        if (!(e <= err))
            err = isnan(e) ? INFINITY : e;
        if (!(e <= 1e-5) && bad < 0)
            bad = (long)m;
        fmax_gpu = fmaxf(fmax_gpu, f[m]);
    }
    EXPECT(err <= 1e-5, "%s: normalized error %.3g, first at m=%ld: %g vs reference %g", what, err,
           bad, bad >= 0 ? f[bad] : 0.0, bad >= 0 ? fr[bad] : 0.0);
    /* with a chunk, each query's own best token scores exactly 0 after its shift */
    if (n > 1)
        EXPECT(fmax_gpu == 0.0f, "%s: max of the shifted importance is %g, not 0", what, fmax_gpu);
    free(qc); free(kf); free(kb); free(f); free(fr); free(s1);
}

/* More tokens than one score dispatch covers (64 x 65535): small-integer keys (exact in fp16)
 * and a plain double reference, to keep the host side cheap. */
static void check_scores_huge(esa_cache *c, uint32_t n, uint32_t lm, uint32_t m0)
{
    const uint32_t dc = 8;
    char what[96];
    snprintf(what, sizeof what, "scores dc=%u n=%u lm=%u m0=%u", dc, n, lm, m0);
    float *qc = xmalloc(sizeof(float) * n * dc), *f = xmalloc(sizeof(float) * lm);
    double *s = xmalloc(sizeof(double) * n * lm), *mx = xmalloc(sizeof(double) * n);
    uint16_t *kb = xmalloc(sizeof(uint16_t) * lm * dc);
    fill_normal(qc, (size_t)n * dc, 1.0f);
    for (uint32_t q = 0; q < n; q++)
        mx[q] = -INFINITY;
    float kf[8];
    for (uint32_t m = 0; m < lm; m++) {
        uint64_t r = rng_u64();
        for (uint32_t e = 0; e < dc; e++) {
            kf[e] = (float)((int)((r >> (4 * e)) & 15u) - 8) * 0.25f;
            kb[(size_t)m * dc + e] = f16_bits(kf[e]);
        }
        for (uint32_t q = 0; q < n; q++) {
            double acc = 0.0;
            for (uint32_t e = 0; e < dc; e++)
                acc += (double)qc[q * dc + e] * kf[e];
            s[(size_t)q * lm + m] = acc;
            mx[q] = fmax(mx[q], acc);
        }
    }
    esa_status st = esa_debug_scores(c, qc, n, kb, m0, lm, f);
    EXPECT(st == ESA_SUCCESS, "%s: esa_debug_scores: %s", what, esa_status_string(st));
    for (uint32_t m = 0; m < lm; m++) {
        double want = n == 1 ? s[m] : -INFINITY;
        for (uint32_t q = 0; n > 1 && q < n; q++)
            want = fmax(want, s[(size_t)q * lm + m] - mx[q]);
        if (!(fabs((double)f[m] - want) <= 1e-5 * 16.0)) {
            EXPECT(0, "%s: f[%u] = %g, reference %g", what, m, f[m], want);
            break;
        }
    }
    free(qc); free(f); free(s); free(mx); free(kb);
}

static void test_scores(esa_context *ctx)
{
    /* dc 8 and 24: fewer query slices than the 8 lanes of a cluster (24: 6 of them); queries
     * go 8 at a time, so n = 5, 9 and 40 end mid-block or on a block; dc picks the keys per
     * lane (8 at dc <= 32, 2 at 128), lm = 9 and 1000 end mid-workgroup */
    static const uint32_t dcs[] = {8, 16, 24, 32, 128};
    static const uint32_t ns[] = {1, 5, 9, 40};
    static const uint32_t lms[] = {1, 9, 1000};
    for (size_t di = 0; di < 5; di++) {
        esa_cache_desc desc = {.n_layers = 1, .n_heads = 8, .n_kv_heads = 1, .head_dim = 16,
                               .compress_dim = dcs[di], .chunk = 64, .max_tokens = 1100};
        esa_cache *c = make_cache(ctx, &desc);
        for (size_t ni = 0; ni < 4; ni++)
            for (size_t li = 0; li < 3; li++) {
                check_scores(c, dcs[di], ns[ni], lms[li], 0, 1.0f, 1.0f);
                check_scores(c, dcs[di], ns[ni], lms[li], 37, 1.0f, 1.0f);
            }
        /* large and small magnitudes: the shift must not lose the differences */
        check_scores(c, dcs[di], 5, 1000, 3, 100.0f, 1000.0f);
        check_scores(c, dcs[di], 5, 1000, 3, 1e-3f, 1e-2f);
        esa_cache_destroy(c);
    }
    /* exact scores: keys read straight from the fp16 K cache, dc = G*d; 11000 keys: the lanes
     * of one query's capped dispatch (esa_select_tuning.score_groups) walk several keys each,
     * across pages */
    esa_cache_desc desc = {.n_layers = 1, .n_heads = 4, .n_kv_heads = 2, .head_dim = 16,
                           .score_mode = ESA_SCORES_EXACT, .chunk = 16, .max_tokens = 11100};
    esa_cache *c = make_cache(ctx, &desc);
    check_scores(c, 32, 1, 1000, 11, 1.0f, 1.0f);
    check_scores(c, 32, 1, 11000, 11, 1.0f, 1.0f);
    check_scores(c, 32, 13, 1000, 11, 1.0f, 1.0f);
    esa_cache_destroy(c);
    /* dc = 1024, the largest: one key per lane, 32 query slices per lane */
    desc.n_kv_heads = 8;
    desc.head_dim = 128;
    desc.n_heads = 8;
    c = make_cache(ctx, &desc);
    check_scores(c, 1024, 1, 300, 5, 1.0f, 1.0f);
    check_scores(c, 1024, 13, 300, 5, 1.0f, 1.0f);
    esa_cache_destroy(c);
}

/* ------------------------------------------------------------------------------------------ */
/* Compression                                                                                 */

static void check_compress(esa_cache *c, uint32_t n, uint32_t rows, uint32_t cols, esa_dtype xt,
                           esa_dtype ot)
{
    char what[128];
    snprintf(what, sizeof what, "compress n=%u rows=%u cols=%u x=%s out=%s", n, rows, cols,
             xt == ESA_F16 ? "f16" : "f32", ot == ESA_F16 ? "f16" : "f32");
    float *m = xmalloc(sizeof(float) * rows * cols), *x = xmalloc(sizeof(float) * n * cols);
    uint16_t *xh = xmalloc(sizeof(uint16_t) * n * cols);
    float *ref = xmalloc(sizeof(float) * n * rows), *got = xmalloc(sizeof(float) * n * rows);
    void *out = xmalloc(sizeof(float) * n * rows);
    fill_normal(m, (size_t)rows * cols, 1.0f / sqrtf((float)cols));
    fill_normal(x, (size_t)n * cols, 1.0f);
    for (size_t i = 0; i < (size_t)n * cols; i++)
        if (xt == ESA_F16) {
            x[i] = esa_ref_f16_round(x[i]);
            xh[i] = f16_bits(x[i]);
        }
    esa_status s = esa_debug_compress(c, xt == ESA_F16 ? (const void *)xh : (const void *)x, xt, n,
                                      m, rows, cols, out, ot);
    EXPECT(s == ESA_SUCCESS, "%s: esa_debug_compress: %s", what, esa_status_string(s));
    esa_ref_matvec(m, rows, cols, x, n, ref);
    for (size_t i = 0; i < (size_t)n * rows; i++)
        got[i] = ot == ESA_F16 ? f16_float(((const uint16_t *)out)[i]) : ((const float *)out)[i];
    double tol = ot == ESA_F16 ? 1e-3 : 1e-5;
    long bad;
    double err = norm_error(got, ref, (size_t)n * rows, tol, &bad);
    EXPECT(err <= tol, "%s: normalized error %.3g, first at [%ld] (vector %ld row %ld): %g vs %g",
           what, err, bad, bad / (long)rows, bad % (long)rows, bad >= 0 ? got[bad] : 0.0,
           bad >= 0 ? ref[bad] : 0.0);
    free(m); free(x); free(xh); free(ref); free(got); free(out);
}

static void test_compress(esa_cache *c)
{
    static const uint32_t shapes[][2] = {{30, 3000}, {128, 576}, {8, 2048}, {2, 4098}, {130, 64}, {256, 10}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        for (int xt = 0; xt < 2; xt++)
            for (int ot = 0; ot < 2; ot++)
                for (uint32_t n = 1; n <= 13; n = n == 1 ? 3 : n + 10) /* 1, 3, 13: TT = 8 tokens a group */
                    check_compress(c, n, shapes[i][0], shapes[i][1], (esa_dtype)xt, (esa_dtype)ot);
    check_compress(c, 64, 128, 1024, ESA_F16, ESA_F16); /* a chunk of keys at Llama shape */
    /* rows that are not a multiple of 4 (fp32 output): the last invocation's quad is partial */
    check_compress(c, 2, 31, 3000, ESA_F32, ESA_F32);
    check_compress(c, 1, 129, 100, ESA_F16, ESA_F32);
}

/* ------------------------------------------------------------------------------------------ */
/* Attention parts and merge                                                                   */

typedef struct attn_case {
    esa_cache *c;
    esa_ref_config cfg;
    uint32_t n, nk, P;
    float *q, *kf, *vf; /* [n][H][d], [nk][G][d] (fp16-rounded) */
    uint16_t *kb, *vb;
    uint32_t *list, nlist;
} attn_case;

/* The reference of one segment (the keys it names), as esa_ref_step calls it: causal always. */
static void ref_segment(const attn_case *a, const esa_debug_segment *s, float *o, float *lse)
{
    uint32_t *keys = xmalloc(sizeof(uint32_t) * (s->count + 1));
    for (uint32_t j = 0; j < s->count; j++)
        keys[j] = s->use_list ? a->list[s->first + j] : s->first + j;
    esa_ref_attend_part(&a->cfg, a->q, a->n, a->P, (double)s->q_rope_pos0, (double)s->q_rope_step,
                        a->kf, a->vf, keys, s->count, s->k_rope_zero, s->k_rope_sub, 1, o, lse);
    free(keys);
}

/* Runs the segments on the device and compares with the reference parts merged by LSE.
 * Returns the slots the device used. */
static uint32_t check_attend(const attn_case *a, const char *what, const esa_debug_segment *seg,
                             uint32_t nseg)
{
    uint32_t H = a->cfg.n_heads, d = a->cfg.head_dim, rows = a->n * H;
    size_t len = (size_t)rows * d;
    float *o = xmalloc(sizeof(float) * len), *ref = xmalloc(sizeof(float) * len),
          *o2 = xmalloc(sizeof(float) * len);
    float *lse = xmalloc(sizeof(float) * rows), *lse2 = xmalloc(sizeof(float) * rows);
    uint32_t slots = 0;
    esa_status s = esa_debug_attend(a->c, a->q, a->n, a->P, a->kb, a->vb, a->nk, a->list, a->nlist,
                                    seg, nseg, o, &slots);
    EXPECT(s == ESA_SUCCESS, "%s: esa_debug_attend: %s", what, esa_status_string(s));
    for (size_t i = 0; i < len; i++)
        ref[i] = 0.0f;
    for (uint32_t r = 0; r < rows; r++)
        lse[r] = -INFINITY;
    for (uint32_t i = 0; i < nseg; i++) {
        ref_segment(a, &seg[i], o2, lse2);
        esa_ref_merge(ref, lse, o2, lse2, rows, d);
    }
    long bad;
    double err = norm_error(o, ref, len, 2e-3, &bad);
    EXPECT(err <= 2e-3, "%s: normalized error %.3g, first at [%ld] (query %ld head %ld dim %ld): "
                        "%g vs %g (%u slots)",
           what, err, bad, bad / (long)(H * d), (bad / (long)d) % (long)H, bad % (long)d,
           bad >= 0 ? o[bad] : 0.0, bad >= 0 ? ref[bad] : 0.0, slots);
    /* rows that see no key: exactly zero, as the reference */
    for (uint32_t r = 0; r < rows; r++)
        if (lse[r] == -INFINITY)
            for (uint32_t e = 0; e < d; e++)
                if (o[(size_t)r * d + e] != 0.0f) {
                    EXPECT(0, "%s: query %u head %u sees no key but dim %u is %g", what, r / H,
                           r % H, e, o[(size_t)r * d + e]);
                    r = rows;
                    break;
                }
    free(o); free(ref); free(o2); free(lse); free(lse2);
    return slots;
}

static void attn_case_init(attn_case *a, esa_cache *c, const esa_cache_desc *desc, uint32_t n,
                           uint32_t cnt, float amp)
{
    memset(a, 0, sizeof *a);
    a->c = c;
    a->cfg = (esa_ref_config){
        .n_heads = desc->n_heads, .n_kv_heads = desc->n_kv_heads, .head_dim = desc->head_dim,
        .rope_dims = desc->rope_dims, .rope_theta = desc->rope_theta,
        .rope_neox = desc->rope_style == ESA_ROPE_NEOX, .scale = desc->scale,
    };
    uint32_t hd = desc->n_heads * desc->head_dim, gd = desc->n_kv_heads * desc->head_dim;
    /* cache layout: I = [0, cnt), M = [cnt, 4 cnt), L = [4 cnt, 5 cnt), C = [5 cnt, 5 cnt + n) */
    a->n = n;
    a->P = 5 * cnt;
    a->nk = 5 * cnt + n;
    a->q = xmalloc(sizeof(float) * n * hd);
    a->kf = xmalloc(sizeof(float) * a->nk * gd);
    a->vf = xmalloc(sizeof(float) * a->nk * gd);
    a->kb = xmalloc(sizeof(uint16_t) * a->nk * gd);
    a->vb = xmalloc(sizeof(uint16_t) * a->nk * gd);
    fill_normal(a->q, (size_t)n * hd, amp);
    for (size_t i = 0; i < (size_t)a->nk * gd; i++) {
        a->kf[i] = esa_ref_f16_round(amp * rng_normal());
        a->vf[i] = esa_ref_f16_round(rng_normal());
        a->kb[i] = f16_bits(a->kf[i]);
        a->vb[i] = f16_bits(a->vf[i]);
    }
    /* M_k: cnt positions of M, ascending (selection sampling) */
    a->list = xmalloc(sizeof(uint32_t) * cnt);
    uint32_t want = cnt, left = 3 * cnt;
    for (uint32_t p = cnt; p < 4 * cnt && want; p++, left--)
        if (rng_u64() % left < want) {
            a->list[a->nlist++] = p;
            want--;
        }
}

static void attn_case_free(attn_case *a)
{
    free(a->q); free(a->kf); free(a->vf); free(a->kb); free(a->vb); free(a->list);
}

static void test_attention(esa_context *ctx, const char *shape_name, uint32_t H, uint32_t G,
                           uint32_t d, uint32_t rope_dims, esa_rope_style style)
{
    static const uint32_t counts[] = {1, 17, 3000};
    esa_cache_desc desc = {.n_layers = 1, .n_heads = H, .n_kv_heads = G, .head_dim = d,
                           .rope_dims = rope_dims, .rope_style = style, .top_k = 4096,
                           .chunk = 16, .max_tokens = 5 * 3000 + 16};
    esa_cache *c = make_cache(ctx, &desc);
    esa_cache_get_desc(c, &desc);
    uint32_t w = desc.global_pos;
    char what[160];
    for (size_t ci = 0; ci < 3; ci++)
        for (uint32_t n = 1; n <= 13; n += 12)
            for (int big = 0; big < 2; big++) {
                uint32_t cnt = counts[ci];
                float amp = big ? 30.0f : 1.0f;
                attn_case a;
                attn_case_init(&a, c, &desc, n, cnt, amp);
                esa_debug_segment gI = {.first = 0, .count = cnt, .q_rope_pos0 = w, .k_rope_zero = 1};
                esa_debug_segment gM = {.first = 0, .count = cnt, .use_list = 1, .q_rope_pos0 = w,
                                        .k_rope_zero = 1};
                esa_debug_segment loc = {.first = 4 * cnt, .count = cnt + n, .q_rope_pos0 = cnt,
                                         .q_rope_step = 1, .k_rope_sub = 4 * cnt};
                esa_debug_segment dense = {.first = 0, .count = a.P + n, .q_rope_pos0 = a.P,
                                           .q_rope_step = 1};
                /* no key visible to query 0: keys after it (positions P+1..), causal */
                esa_debug_segment future = {.first = a.P + 1, .count = n - 1, .q_rope_pos0 = cnt,
                                            .q_rope_step = 1, .k_rope_sub = 4 * cnt};
                esa_debug_segment all[3] = {gI, gM, loc};
                const char *tag = big ? "x30" : "x1";
#define RUN(name, segs, nsegs)                                                                 \
    (snprintf(what, sizeof what, "attend %s %s keys=%u n=%u %s", shape_name, name, cnt, n, tag), \
     check_attend(&a, what, segs, nsegs))
                /* lavapipe runs 3000-key parts slowly: there only the three parts of a step
                 * together (split-K over each), and at d = 128 only the large-logit chunk */
                uint32_t slots = 0;
                if (cnt < 3000 || d == 64 || n == 1 || big)
                    slots = RUN("global+list+local", all, 3);
                if (cnt < 3000) {
                    RUN("global-range", &gI, 1);
                    RUN("global-list", &gM, 1);
                    RUN("local-causal", &loc, 1);
                    RUN("dense", &dense, 1);
                }
                if (n > 1) {
                    RUN("no-visible-key", &future, 1);
                    esa_debug_segment mixed[2] = {future, gI};
                    if (cnt < 3000)
                        RUN("no-visible-local+global", mixed, 2);
                } else {
                    esa_debug_segment none[2] = {{.first = a.P, .count = 0}, {.first = a.P, .count = 0}};
                    RUN("no-keys", none, 2);
                }
#undef RUN
                if (cnt == 3000 && n == 1 && !big) {
                    /* overlapping parts holding more keys than a step attends (max_tokens +
                     * chunk): refused, the partial slots are sized for a step's parts */
                    esa_debug_segment twice[2] = {dense, dense};
                    float *o = xmalloc(sizeof(float) * (size_t)n * H * d);
                    esa_status s = esa_debug_attend(c, a.q, n, a.P, a.kb, a.vb, a.nk, a.list, a.nlist,
                                                    twice, 2, o, NULL);
                    EXPECT(s == ESA_ERROR_INVALID_ARGUMENT, "attend %s: %llu keys in two parts: %s",
                           shape_name, 2ull * dense.count, esa_status_string(s));
                    free(o);
                }
                if (cnt == 3000 && slots)
                    EXPECT(slots > 3, "attend %s keys=3000 n=%u: only %u slots (no split-K)",
                           shape_name, n, slots);
                attn_case_free(&a);
            }
    esa_cache_destroy(c);
}

/* A whole chunk of 4096 queries at Llama-3-8B shape: n*H*d = 2^24 outputs, more than one
 * merge dispatch of 65535 workgroups covers. Few keys, so lavapipe gets through it. */
static void test_attention_wide(esa_context *ctx)
{
    esa_cache_desc desc = {.n_layers = 1, .n_heads = 32, .n_kv_heads = 8, .head_dim = 128,
                           .rope_dims = 16, .chunk = 4096, .top_k = 16, .max_tokens = 64};
    esa_cache *c = make_cache(ctx, &desc);
    esa_cache_get_desc(c, &desc);
    attn_case a;
    attn_case_init(&a, c, &desc, 4096, 3, 1.0f);
    a.nk = 15;     /* store the first tokens of the layout only */
    a.P = 1000000; /* every stored key precedes every query */
    /* one part of two keys, few rotated dims: lavapipe is slow at 2^24 rotations */
    esa_debug_segment g = {.first = 0, .count = 2, .q_rope_pos0 = desc.global_pos, .k_rope_zero = 1};
    check_attend(&a, "attend H32G8d128 n=4096 (2^24 outputs)", &g, 1);
    attn_case_free(&a);
    esa_cache_destroy(c);
}

/* ------------------------------------------------------------------------------------------ */

int main(void)
{
    esa_context *ctx = harness_context();
    const uint32_t big_lm = 1000000;
    const uint32_t huge_lm = 64u * 65535u + 5000u; /* more than one score dispatch can cover */
    rng_seed(7);
    double t0 = now_s();

    /* one cache sized for the selection stages: 1M tokens of a tiny model */
    esa_cache_desc sel = {.n_layers = 1, .n_heads = 1, .n_kv_heads = 1, .head_dim = 16,
                          .compress_dim = 8, .chunk = 16, .max_tokens = huge_lm};
    esa_cache *c = make_cache(ctx, &sel);
    /* each part: its name, ok or FAILED, and its time */
#define PART(name, ...)                                                                        \
    do {                                                                                       \
        int before_ = g_failures;                                                              \
        double t_ = now_s();                                                                   \
        __VA_ARGS__;                                                                           \
        fprintf(stderr, "%-12s %s (%.1f s)\n", name, g_failures == before_ ? "ok" : "FAILED",  \
                now_s() - t_);                                                                 \
    } while (0)
    PART("proximity", test_proximity(c, big_lm));
    PART("top-k", test_topk(c));
    PART("top-k 1M", test_topk_large(c, big_lm));
    PART("top-k adv", test_topk_adversarial(ctx, c, big_lm));
    PART("top-k 4.2M", test_topk_huge(c, huge_lm - 7));
    PART("compress", test_compress(c));
    PART("scores 4.2M", check_scores_huge(c, 2, huge_lm - 7, 7); check_scores_huge(c, 1, huge_lm - 7, 7));
    esa_cache_destroy(c);
    PART("scores", test_scores(ctx));
    PART("attention", test_attention(ctx, "H8G2d64-neox", 8, 2, 64, 64, ESA_ROPE_NEOX);
         test_attention(ctx, "H8G2d128-inter96", 8, 2, 128, 96, ESA_ROPE_INTERLEAVED));
    PART("attend 2^24", test_attention_wide(ctx));
#undef PART

    if (g_ftz_seen)
        fprintf(stderr, "note: the device treats subnormal scores as zero (flush-to-zero); "
                        "those cases were judged against flushed inputs\n");
    fprintf(stderr, "total %.1f s\n", now_s() - t0);
    return harness_finish(ctx, "test_stages");
}
