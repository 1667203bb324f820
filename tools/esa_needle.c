/* esa-needle: the end-to-end check of esa-vk on a synthetic long context.
 *
 * Every layer gets a context of N tokens (32768 by default) with a few planted "needles". The
 * same tokens go through ESA (esa_attend) on one cache and dense attention (esa_attend_dense)
 * on another; then decode queries, each looking for one needle, run on both. The tool reports
 *  - needle recall: how often the needle is among ESA's selected middle tokens M_k, and the same
 *    for the exact full-dimension top-k computed on the CPU;
 *  - how much of the exact top-k ESA's compressed selection recovers;
 *  - the output error of ESA against dense attention, and the needle's weight in each output;
 *  - the device's outputs and selection against a CPU recomputation (a library check at a
 *    realistic size);
 *  - the wall time of prefill and decode for ESA and for dense attention.
 *
 * The synthetic data (make_layer) is built so that both attention kinds can find the needles:
 *  - Keys are pre-RoPE, element (head g, dim e) ~ N(0, sk[g][e]^2). The spread grows toward the
 *    low-frequency rotary pairs (variance ratio KEY_SPECTRUM between the slowest and the fastest
 *    pair, with a little per-pair jitter): real keys are strongly anisotropic, which is what makes
 *    a low-rank score work at all, and isotropic keys would leave PCA nothing to find.
 *  - Queries share their KV head's spectrum, scaled so a random query/key logit has standard
 *    deviation LOGIT_STD.
 *  - Needle i adds, in every KV head, KEY_OUTLIER standard deviations along a unit direction
 *    inside the two slowest rotary pairs (directions orthogonal between needles while there is
 *    room). Those pairs barely turn over the whole context (NeoX RoPE, theta 1e5 or 5e5), so the
 *    needle stays visible at true positions (dense, exact-positions) as well as at ESA's fixed
 *    distance w. Its value is a +-1 signature, so an output's projection on the signature
 *    estimates the attention weight the needle got.
 *  - Decode query j looks for needle j % needles: its heads carry that needle's direction, scaled
 *    so the needle's logit rises by --needle-logit in every head.
 * Tokens come from per-token random streams: the data does not depend on the chunk size.
 *
 * The compression matrices (no calibration in the library yet) are PCA of held-out calibration
 * keys; see fit_pca.
 *
 * Cost: by default the context enters both caches by esa_append (no attention over it: only the
 * decode steps are compared); --prefill runs the chunked ESA and dense attention over every
 * context token instead, which dominates the run time on a CPU driver. Host memory: the K/V copies the CPU
 * checks read, 4*G*d bytes per token per layer, plus O(tokens) scratch. */
#define _POSIX_C_SOURCE 200809L

#include "esa.h"
#include "tool_device.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define KEY_SPECTRUM 100.0 /* key variance, slowest pair : fastest pair */
#define LOGIT_STD 1.0      /* std of a random query/key logit, per head */
#define KEY_OUTLIER 10.0   /* a needle key's excess along its direction, in key std units */
#define N_CALIB 4096       /* calibration keys per layer for PCA */
#define PCA_ITERS 24       /* subspace iterations */
#define SLOW_PAIRS 2       /* rotary pairs per head that hold the needle directions */

/* ------------------------------------------------------------------------------------------ */
/* Options                                                                                      */

typedef struct options {
    uint32_t tokens, needles, layers, decode;
    const char *shape;
    uint32_t H, G, d;
    float rope_theta;
    uint32_t l_I, l_L, k, dc, chunk, radius;
    uint64_t seed;
    const char *device;
    int exact_scores, exact_positions, quiet, prefill, check;
    double needle_logit;
} options;

static void usage(FILE *f)
{
    fprintf(f,
        "usage: esa-needle [options]\n"
        "Plants needle keys in a synthetic long context, runs ESA and dense attention on a Vulkan\n"
        "device, and reports needle recall, output error against dense, and the time of each.\n"
        "\n"
        "  --tokens N          context length per layer (default 32768)\n"
        "  --needles N         planted needles per layer (default 4)\n"
        "  --layers N          layers, each with its own data (default 1)\n"
        "  --decode N          decode queries after the prefill (default 8)\n"
        "  --shape NAME        smollm: H=9 G=3 d=64 theta=1e5 (default);\n"
        "                      llama: H=32 G=8 d=128 theta=5e5\n"
        "  --top-k N           k, middle tokens selected (default 2048)\n"
        "  --initial N         l_I, initial tokens (default 128)\n"
        "  --local N           l_L, local window (default 4096)\n"
        "  --compress-dim N    d' (default 32 for smollm, 128 for llama)\n"
        "  --radius N          proximity radius epsilon, 0 for none (default 1)\n"
        "  --chunk N           prefill chunk l_C (default 512)\n"
        "  --needle-logit X    logit boost of a needle for its query, per head (default 20)\n"
        "  --seed N            random seed (default 1)\n"
        "  --device NAME|INDEX device by name substring or index (default: $ESA_DEVICE, else\n"
        "                      the library's choice; see esa-info)\n"
        "  --exact-scores      ESA selects by full-dimension scores (no compression)\n"
        "  --exact-positions   ESA attends with true positions (no extrapolation)\n"
        "  --prefill           run ESA and dense attention over the whole context in chunks\n"
        "                      and time it (default: the context is appended without attending;\n"
        "                      slow on CPU drivers)\n"
        "  --check             exit 1 unless the device agrees with the CPU recomputation\n"
        "                      (outputs within 1e-3, identical selections)\n"
        "  --quiet             no progress and no per-query table\n"
        "  --help              this text\n");
}

static int parse_u32(const char *s, const char *name, uint32_t lo, uint32_t hi, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (!*s || *end || s[0] == '-' || v < lo || v > hi) {
        fprintf(stderr, "esa-needle: --%s wants an integer in [%u, %u], not \"%s\"\n", name, lo, hi, s);
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

/* Returns 0 to run, 1 for --help, -1 on a usage error. */
static int parse_options(int argc, char **argv, options *o)
{
    enum { O_TOKENS = 256, O_NEEDLES, O_LAYERS, O_DECODE, O_SHAPE, O_TOPK, O_INITIAL, O_LOCAL,
           O_DC, O_RADIUS, O_CHUNK, O_LOGIT, O_SEED, O_DEVICE, O_XS, O_XP, O_PREFILL, O_CHECK, O_QUIET, O_HELP };
    static const struct option longs[] = {
        {"tokens", required_argument, 0, O_TOKENS}, {"needles", required_argument, 0, O_NEEDLES},
        {"layers", required_argument, 0, O_LAYERS}, {"decode", required_argument, 0, O_DECODE},
        {"shape", required_argument, 0, O_SHAPE}, {"top-k", required_argument, 0, O_TOPK},
        {"initial", required_argument, 0, O_INITIAL}, {"local", required_argument, 0, O_LOCAL},
        {"compress-dim", required_argument, 0, O_DC}, {"radius", required_argument, 0, O_RADIUS},
        {"chunk", required_argument, 0, O_CHUNK}, {"needle-logit", required_argument, 0, O_LOGIT},
        {"seed", required_argument, 0, O_SEED}, {"device", required_argument, 0, O_DEVICE},
        {"exact-scores", no_argument, 0, O_XS}, {"exact-positions", no_argument, 0, O_XP},
        {"prefill", no_argument, 0, O_PREFILL}, {"check", no_argument, 0, O_CHECK}, {"quiet", no_argument, 0, O_QUIET}, {"help", no_argument, 0, O_HELP}, {0, 0, 0, 0},
    };
    *o = (options){.tokens = 32768, .needles = 4, .layers = 1, .decode = 8, .shape = "smollm",
                   .l_I = 128, .l_L = 4096, .k = 2048, .radius = 1, .chunk = 512, .seed = 1,
                   .needle_logit = 20.0};
    o->device = getenv("ESA_DEVICE");
    int c, r = 0;
    uint32_t seed32;
    while ((c = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
        switch (c) {
        case O_TOKENS: r |= parse_u32(optarg, "tokens", 1, 1u << 24, &o->tokens); break;
        case O_NEEDLES: r |= parse_u32(optarg, "needles", 0, 1024, &o->needles); break;
        case O_LAYERS: r |= parse_u32(optarg, "layers", 1, 1024, &o->layers); break;
        case O_DECODE: r |= parse_u32(optarg, "decode", 1, 4096, &o->decode); break;
        case O_SHAPE: o->shape = optarg; break;
        case O_TOPK: r |= parse_u32(optarg, "top-k", 1, ESA_MAX_TOP_K, &o->k); break;
        case O_INITIAL: r |= parse_u32(optarg, "initial", 1, 1u << 24, &o->l_I); break;
        case O_LOCAL: r |= parse_u32(optarg, "local", 1, 1u << 24, &o->l_L); break;
        case O_DC: r |= parse_u32(optarg, "compress-dim", 2, 1u << 16, &o->dc); break;
        case O_RADIUS: r |= parse_u32(optarg, "radius", 0, ESA_MAX_RADIUS, &o->radius); break;
        case O_CHUNK: r |= parse_u32(optarg, "chunk", 1, 4096, &o->chunk); break;
        case O_SEED: r |= parse_u32(optarg, "seed", 0, UINT32_MAX, &seed32); o->seed = seed32; break;
        case O_DEVICE: o->device = optarg; break;
        case O_XS: o->exact_scores = 1; break;
        case O_XP: o->exact_positions = 1; break;
        case O_PREFILL: o->prefill = 1; break;
        case O_CHECK: o->check = 1; break;
        case O_QUIET: o->quiet = 1; break;
        case O_LOGIT: {
            char *end;
            o->needle_logit = strtod(optarg, &end);
            if (!*optarg || *end || !(o->needle_logit >= 0.0 && o->needle_logit <= 200.0)) {
                fprintf(stderr, "esa-needle: --needle-logit wants a number in [0, 200]\n");
                r = -1;
            }
            break;
        }
        case 'h': case O_HELP: usage(stdout); return 1;
        default: return -1;
        }
    }
    if (r)
        return -1;
    if (optind < argc) {
        fprintf(stderr, "esa-needle: unexpected argument \"%s\"\n", argv[optind]);
        return -1;
    }
    if (!strcmp(o->shape, "smollm")) {
        /* SmolLM2-135M: 9 query heads, 3 KV heads of 64, rope_theta 1e5 */
        o->H = 9, o->G = 3, o->d = 64, o->rope_theta = 100000.0f;
        if (!o->dc)
            o->dc = 32;
    } else if (!strcmp(o->shape, "llama")) {
        /* Llama-3-8B: 32 query heads, 8 KV heads of 128, rope_theta 5e5 */
        o->H = 32, o->G = 8, o->d = 128, o->rope_theta = 500000.0f;
        if (!o->dc)
            o->dc = 128;
    } else {
        fprintf(stderr, "esa-needle: unknown --shape \"%s\" (smollm or llama)\n", o->shape);
        return -1;
    }
    if (!o->exact_scores && (o->dc % 2 || o->dc > o->G * o->d)) {
        fprintf(stderr, "esa-needle: --compress-dim must be even and at most G*d = %u (PCA of the "
                        "keys has no more directions)\n", o->G * o->d);
        return -1;
    }
    uint64_t span = o->tokens > (uint64_t)o->l_I + o->l_L ? o->tokens - o->l_I - o->l_L : 0;
    if (o->needles && span < 2ull * o->needles) {
        fprintf(stderr, "esa-needle: %u tokens leave a middle of %llu tokens between l_I = %u and "
                        "l_L = %u: too short for %u needles\n", o->tokens,
                (unsigned long long)span, o->l_I, o->l_L, o->needles);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Small helpers: time, random streams, fp16                                                    */

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

typedef struct rng {
    uint64_t s;
    int have;
    double spare;
} rng;

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

enum { STREAM_TOKEN = 1, STREAM_CALIB, STREAM_LAYER, STREAM_PCA };

/* An independent stream per (seed, layer, index, kind): splitmix64 from a hashed start. */
static rng stream(uint64_t seed, uint32_t layer, uint64_t index, uint32_t kind)
{
    uint64_t s = mix64(seed + 0x9e3779b97f4a7c15ull);
    s = mix64(s ^ ((uint64_t)layer * 0xd6e8feb86659fd93ull + kind));
    s = mix64(s ^ (index * 0xa0761d6478bd642full));
    return (rng){.s = s};
}

static uint64_t rng_u64(rng *r)
{
    return mix64(r->s += 0x9e3779b97f4a7c15ull);
}

static double rng_normal(rng *r)
{
    if (r->have) {
        r->have = 0;
        return r->spare;
    }
    double u1 = ((double)(rng_u64(r) >> 11) + 1.0) * 0x1.0p-53; /* (0, 1] */
    double u2 = (double)(rng_u64(r) >> 11) * 0x1.0p-53;
    double rad = sqrt(-2.0 * log(u1)), th = 6.283185307179586 * u2;
    r->spare = rad * sin(th);
    r->have = 1;
    return rad * cos(th);
}

/* IEEE half, round to nearest even (the device stores K/V this way). */
static uint16_t f16_from(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u, e = (x >> 23) & 0xffu, m = x & 0x7fffffu;
    if (e == 0xffu)
        return (uint16_t)(sign | 0x7c00u | (m ? 0x200u : 0u));
    int32_t he = (int32_t)e - 127 + 15;
    if (he >= 31)
        return (uint16_t)(sign | 0x7c00u);
    if (he <= 0) {
        if (he < -10)
            return (uint16_t)sign;
        m |= 0x800000u;
        uint32_t shift = (uint32_t)(14 - he), h = m >> shift, rem = m & ((1u << shift) - 1);
        uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1u)))
            h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = ((uint32_t)he << 10) | (m >> 13), rem = m & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u)))
        h++; /* may carry into the exponent, which is still correct */
    return (uint16_t)(sign | h);
}

static float f16_to(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu, x;
    if (e == 0) {
        float f = ldexpf((float)m, -24);
        return sign ? -f : f;
    }
    if (e == 31)
        x = sign | 0x7f800000u | (m << 13);
    else
        x = sign | ((e - 15 + 127) << 23) | (m << 13);
    float f;
    memcpy(&f, &x, 4);
    return f;
}

/* ------------------------------------------------------------------------------------------ */
/* The synthetic layer                                                                          */

typedef struct run {
    options o;
    uint32_t hd, gd, total;   /* H*d, G*d, tokens + decode */
    float scale;              /* logit scale 1/sqrt(d) */
    uint32_t w;               /* ESA's global position */
    uint32_t maxrel;          /* largest |relative position| the CPU rotates by */
    float *rope_cs;           /* [maxrel+1][d/2][2] cos, sin of rel * freq(pair) */
} run;

typedef struct layer_data {
    float *sk;          /* [G*d] std of each key element */
    float *sq;          /* [H*d] std of each query element */
    float *dir;         /* [needles][G*d] a needle key's excess (KEY_OUTLIER std per head) */
    float *qdir;        /* [needles][H*d] the needle component of a decode query */
    float *sig;         /* [needles][G*d] a needle's value: +-1 */
    uint32_t *pos;      /* [needles] needle positions, inside the middle */
    uint16_t *k16, *v16;/* [total][G*d] the cached K/V as the device holds them (fp16) */
    float *a, *b;       /* [d'][H*d], [d'][G*d] compression (NULL with --exact-scores) */
    double energy;      /* share of calibration key energy inside span(B) */
} layer_data;

static void free_layer(layer_data *L)
{
    free(L->sk); free(L->sq); free(L->dir); free(L->qdir); free(L->sig); free(L->pos);
    free(L->k16); free(L->v16); free(L->a); free(L->b);
    memset(L, 0, sizeof *L);
}

/* Spectrum, needle directions and positions of one layer; host K/V storage. */
static int make_layer(const run *r, uint32_t layer, layer_data *L)
{
    const options *o = &r->o;
    uint32_t d = o->d, half = d / 2, nn = o->needles;
    L->sk = malloc(sizeof(float) * r->gd);
    L->sq = malloc(sizeof(float) * r->hd);
    L->dir = calloc((size_t)nn * r->gd + 1, sizeof(float));
    L->qdir = calloc((size_t)nn * r->hd + 1, sizeof(float));
    L->sig = malloc(sizeof(float) * ((size_t)nn * r->gd + 1));
    L->pos = malloc(sizeof(uint32_t) * (nn + 1));
    L->k16 = malloc(sizeof(uint16_t) * (size_t)r->total * r->gd);
    L->v16 = malloc(sizeof(uint16_t) * (size_t)r->total * r->gd);
    if (!L->sk || !L->sq || !L->dir || !L->qdir || !L->sig || !L->pos || !L->k16 || !L->v16)
        return -1;
    rng s = stream(o->seed, layer, 0, STREAM_LAYER);
    double gamma = log(KEY_SPECTRUM);
    for (uint32_t g = 0; g < o->G; g++) {
        float *sk = L->sk + (size_t)g * d;
        double ms = 0.0;
        for (uint32_t i = 0; i < half; i++) {
            double x = (double)i / (double)(half - 1);
            double sd = exp(0.5 * gamma * x + 0.1 * rng_normal(&s)); /* same for both of the pair */
            sk[i] = sk[i + half] = (float)sd;
            ms += 2.0 * sd * sd;
        }
        double norm = sqrt(ms / d), m4 = 0.0;
        for (uint32_t e = 0; e < d; e++) {
            sk[e] = (float)(sk[e] / norm);
            m4 += pow(sk[e], 4.0);
        }
        /* query std so that the random logit scale * q.k has std LOGIT_STD */
        double cq = LOGIT_STD / (r->scale * sqrt(m4));
        for (uint32_t h = g * (o->H / o->G); h < (g + 1) * (o->H / o->G); h++)
            for (uint32_t e = 0; e < d; e++)
                L->sq[(size_t)h * d + e] = (float)(cq * sk[e]);
    }
    /* needle directions: per KV head a unit vector in the SLOW_PAIRS slowest pairs */
    uint32_t slow[2 * SLOW_PAIRS];
    for (uint32_t p = 0; p < SLOW_PAIRS; p++) {
        slow[2 * p] = half - 1 - p;
        slow[2 * p + 1] = d - 1 - p;
    }
    for (uint32_t g = 0; g < o->G; g++) {
        double slow_ms = 0.0;
        for (uint32_t j = 0; j < 2 * SLOW_PAIRS; j++)
            slow_ms += (double)L->sk[g * d + slow[j]] * L->sk[g * d + slow[j]];
        double a = KEY_OUTLIER * sqrt(slow_ms / (2 * SLOW_PAIRS));
        double b = o->needle_logit / (r->scale * a); /* scale * a * b = the logit boost */
        double basis[2 * SLOW_PAIRS][2 * SLOW_PAIRS];
        for (uint32_t i = 0; i < nn; i++) {
            double v[2 * SLOW_PAIRS], n2;
            do {
                for (uint32_t j = 0; j < 2 * SLOW_PAIRS; j++)
                    v[j] = rng_normal(&s);
                for (uint32_t p = 0; p < i && i < 2 * SLOW_PAIRS; p++) { /* orthogonal while room */
                    double dot = 0.0;
                    for (uint32_t j = 0; j < 2 * SLOW_PAIRS; j++)
                        dot += v[j] * basis[p][j];
                    for (uint32_t j = 0; j < 2 * SLOW_PAIRS; j++)
                        v[j] -= dot * basis[p][j];
                }
                n2 = 0.0;
                for (uint32_t j = 0; j < 2 * SLOW_PAIRS; j++)
                    n2 += v[j] * v[j];
            } while (n2 < 1e-6);
            for (uint32_t j = 0; j < 2 * SLOW_PAIRS; j++) {
                v[j] /= sqrt(n2);
                if (i < 2 * SLOW_PAIRS)
                    basis[i][j] = v[j];
                L->dir[(size_t)i * r->gd + g * d + slow[j]] = (float)(a * v[j]);
                for (uint32_t h = g * (o->H / o->G); h < (g + 1) * (o->H / o->G); h++)
                    L->qdir[(size_t)i * r->hd + h * d + slow[j]] = (float)(b * v[j]);
            }
        }
    }
    for (size_t e = 0; e < (size_t)nn * r->gd; e++)
        L->sig[e] = (rng_u64(&s) >> 63) ? 1.0f : -1.0f;
    /* positions: evenly over the middle [l_I, N - l_L), each moved by up to a quarter gap */
    if (nn) {
        double span = (double)(o->tokens - o->l_I - o->l_L), gap = span / nn;
        for (uint32_t i = 0; i < nn; i++) {
            double jitter = gap >= 8.0 ? (((double)(rng_u64(&s) >> 11) * 0x1.0p-53) - 0.5) * 0.5 * gap : 0.0;
            L->pos[i] = o->l_I + (uint32_t)((i + 0.5) * gap + jitter);
        }
    }
    return 0;
}

/* Token t of a layer: q[H*d], k[G*d], v[G*d]; also stores its fp16 K/V on the host. */
static void gen_token(const run *r, layer_data *L, uint32_t layer, uint32_t t, float *q,
                      float *k, float *v)
{
    rng s = stream(r->o.seed, layer, t, STREAM_TOKEN);
    for (uint32_t e = 0; e < r->hd; e++)
        q[e] = (float)(L->sq[e] * rng_normal(&s));
    for (uint32_t e = 0; e < r->gd; e++) {
        k[e] = (float)(L->sk[e] * rng_normal(&s));
        v[e] = (float)rng_normal(&s);
    }
    for (uint32_t i = 0; i < r->o.needles; i++)
        if (t == L->pos[i])
            for (uint32_t e = 0; e < r->gd; e++) {
                k[e] += L->dir[(size_t)i * r->gd + e];
                v[e] = L->sig[(size_t)i * r->gd + e];
            }
    if (t >= r->o.tokens && r->o.needles) {
        const float *qd = L->qdir + (size_t)((t - r->o.tokens) % r->o.needles) * r->hd;
        for (uint32_t e = 0; e < r->hd; e++)
            q[e] += qd[e];
    }
    for (uint32_t e = 0; e < r->gd; e++) {
        L->k16[(size_t)t * r->gd + e] = f16_from(k[e]);
        L->v16[(size_t)t * r->gd + e] = f16_from(v[e]);
    }
}

/* Compression matrices by PCA of N_CALIB held-out keys (no needles), spec 4.2 and 6.
 *
 * Scores are f = sum_h rope_w(q_h) . k_g(h) = (S q~) . k, where q~ is the rotated query
 * concatenated over heads and S (G*d x H*d) adds up the heads of each KV group. With P the
 * d' x G*d matrix whose rows span the top-d' principal directions of the keys (uncentered second
 * moment, since scores are dot products with the raw key), take
 *     B = P   and   A = P S   (A[r][h*d + e] = P[r][g(h)*d + e]),
 * so q'.k' = (S q~)^T P^T P k: the exact score of k's projection onto span(P), exact whenever k
 * lies in it. Only span(P) matters, so plain subspace iteration suffices. */
static int fit_pca(const run *r, uint32_t layer, layer_data *L)
{
    uint32_t gd = r->gd, dc = r->o.dc, d = r->o.d;
    double *m2 = calloc((size_t)gd * gd, sizeof(double));
    double *x = malloc(sizeof(double) * (size_t)dc * gd), *y = malloc(sizeof(double) * (size_t)dc * gd);
    double *key = malloc(sizeof(double) * gd);
    L->a = malloc(sizeof(float) * (size_t)dc * r->hd);
    L->b = malloc(sizeof(float) * (size_t)dc * gd);
    int ok = m2 && x && y && key && L->a && L->b;
    if (ok) {
        for (uint32_t n = 0; n < N_CALIB; n++) {
            rng s = stream(r->o.seed, layer, n, STREAM_CALIB);
            for (uint32_t e = 0; e < gd; e++)
                key[e] = L->sk[e] * rng_normal(&s);
            for (uint32_t i = 0; i < gd; i++)
                for (uint32_t j = i; j < gd; j++)
                    m2[(size_t)i * gd + j] += key[i] * key[j];
        }
        for (uint32_t i = 0; i < gd; i++)
            for (uint32_t j = i; j < gd; j++)
                m2[(size_t)j * gd + i] = m2[(size_t)i * gd + j] /= N_CALIB;
        rng s = stream(r->o.seed, layer, 0, STREAM_PCA);
        for (size_t i = 0; i < (size_t)dc * gd; i++)
            x[i] = rng_normal(&s);
        for (int it = 0; it <= PCA_ITERS; it++) {
            if (it > 0) /* y = x . m2 (rows of x are the basis; m2 symmetric) */
                for (uint32_t rr = 0; rr < dc; rr++)
                    for (uint32_t j = 0; j < gd; j++) {
                        double acc = 0.0;
                        const double *xr = x + (size_t)rr * gd, *mj = m2 + (size_t)j * gd;
                        for (uint32_t i = 0; i < gd; i++)
                            acc += xr[i] * mj[i];
                        y[(size_t)rr * gd + j] = acc;
                    }
            else
                memcpy(y, x, sizeof(double) * (size_t)dc * gd);
            for (uint32_t rr = 0; rr < dc; rr++) { /* modified Gram-Schmidt, twice for safety */
                double *yr = y + (size_t)rr * gd;
                for (int pass = 0; pass < 2; pass++)
                    for (uint32_t p = 0; p < rr; p++) {
                        const double *yp = y + (size_t)p * gd;
                        double dot = 0.0;
                        for (uint32_t i = 0; i < gd; i++)
                            dot += yr[i] * yp[i];
                        for (uint32_t i = 0; i < gd; i++)
                            yr[i] -= dot * yp[i];
                    }
                double n2 = 0.0;
                for (uint32_t i = 0; i < gd; i++)
                    n2 += yr[i] * yr[i];
                double inv = n2 > 0.0 ? 1.0 / sqrt(n2) : 0.0;
                for (uint32_t i = 0; i < gd; i++)
                    yr[i] *= inv;
            }
            double *t = x;
            x = y;
            y = t;
        }
        double tr = 0.0, kept = 0.0;
        for (uint32_t i = 0; i < gd; i++)
            tr += m2[(size_t)i * gd + i];
        for (uint32_t rr = 0; rr < dc; rr++) {
            const double *xr = x + (size_t)rr * gd;
            for (uint32_t j = 0; j < gd; j++) {
                double acc = 0.0;
                for (uint32_t i = 0; i < gd; i++)
                    acc += m2[(size_t)j * gd + i] * xr[i];
                kept += xr[j] * acc;
            }
        }
        L->energy = tr > 0.0 ? kept / tr : 0.0;
        uint32_t rep = r->o.H / r->o.G;
        for (uint32_t rr = 0; rr < dc; rr++) {
            for (uint32_t i = 0; i < gd; i++)
                L->b[(size_t)rr * gd + i] = (float)x[(size_t)rr * gd + i];
            for (uint32_t h = 0; h < r->o.H; h++)
                for (uint32_t e = 0; e < d; e++)
                    L->a[(size_t)rr * r->hd + h * d + e] = (float)x[(size_t)rr * gd + (h / rep) * d + e];
        }
    }
    free(m2); free(x); free(y); free(key);
    return ok ? 0 : -1;
}

/* ------------------------------------------------------------------------------------------ */
/* CPU recomputation of one decode step (spec 4 and 5), for the checks                           */

static int make_rope_table(run *r)
{
    uint32_t half = r->o.d / 2;
    r->rope_cs = malloc(sizeof(float) * 2 * half * ((size_t)r->maxrel + 1));
    if (!r->rope_cs)
        return -1;
    for (uint32_t p = 0; p <= r->maxrel; p++)
        for (uint32_t i = 0; i < half; i++) {
            double ang = (double)p * pow((double)r->o.rope_theta, -2.0 * i / (double)r->o.d);
            r->rope_cs[((size_t)p * half + i) * 2] = (float)cos(ang);
            r->rope_cs[((size_t)p * half + i) * 2 + 1] = (float)sin(ang);
        }
    return 0;
}

/* NeoX RoPE of one head x[d] by the relative position rel (may be negative). */
static void rope_rel(const run *r, const float *x, int64_t rel, float *out)
{
    uint32_t half = r->o.d / 2;
    const float *cs = r->rope_cs + (size_t)(rel < 0 ? -rel : rel) * half * 2;
    float sg = rel < 0 ? -1.0f : 1.0f;
    for (uint32_t i = 0; i < half; i++) {
        float c = cs[2 * i], s = sg * cs[2 * i + 1], x0 = x[i], x1 = x[i + half];
        out[i] = x0 * c - x1 * s;
        out[i + half] = x0 * s + x1 * c;
    }
}

typedef struct cpu_ws {
    float *logit;   /* [total][H] */
    float *kr;      /* [G*d] a rotated key */
    float *kv;      /* [G*d] a value */
    double *acc;    /* [H*d] */
    uint32_t *keys; /* [total] */
    int64_t *rel;   /* [total] */
    float *f, *fp;  /* [total] scores, after proximity */
    uint32_t *order;/* [total] */
    uint32_t *sel_exact, *sel_comp; /* [k] */
    float *qc;      /* [max(d', G*d)] compressed (or group-summed) rotated query */
    float *qr;      /* [H*d] rotated query */
    float *out2;    /* [H*d] a second output */
} cpu_ws;

/* out[H*d] = softmax attention of q over the listed keys; key j sits at cache position keys[j]
 * and is rotated by rel[j] = its RoPE position minus the query's (q.R(a)^T R(b) k = q.R(b-a) k,
 * so one rotation per key suffices, and parts with different query positions share one
 * softmax, which is what the log-sum-exp merge of spec 5 computes). */
static void cpu_attend(const run *r, const layer_data *L, const float *q, uint32_t n,
                       cpu_ws *ws, float *out)
{
    uint32_t H = r->o.H, d = r->o.d, rep = r->o.H / r->o.G;
    for (uint32_t j = 0; j < n; j++) {
        const uint16_t *k16 = L->k16 + (size_t)ws->keys[j] * r->gd;
        for (uint32_t e = 0; e < r->gd; e++)
            ws->kv[e] = f16_to(k16[e]);
        for (uint32_t g = 0; g < r->o.G; g++)
            rope_rel(r, ws->kv + g * d, ws->rel[j], ws->kr + g * d);
        for (uint32_t h = 0; h < H; h++) {
            const float *qh = q + (size_t)h * d, *kh = ws->kr + (h / rep) * d;
            float dot = 0.0f;
            for (uint32_t e = 0; e < d; e++)
                dot += qh[e] * kh[e];
            ws->logit[(size_t)j * H + h] = dot * r->scale;
        }
    }
    for (uint32_t h = 0; h < H; h++) {
        float mx = -INFINITY;
        for (uint32_t j = 0; j < n; j++)
            mx = fmaxf(mx, ws->logit[(size_t)j * H + h]);
        for (uint32_t j = 0; j < n; j++)
            ws->logit[(size_t)j * H + h] = expf(ws->logit[(size_t)j * H + h] - mx);
    }
    memset(ws->acc, 0, sizeof(double) * r->hd);
    double sum[256] = {0};
    for (uint32_t j = 0; j < n; j++) {
        const uint16_t *v16 = L->v16 + (size_t)ws->keys[j] * r->gd;
        for (uint32_t e = 0; e < r->gd; e++)
            ws->kv[e] = f16_to(v16[e]);
        for (uint32_t h = 0; h < H; h++) {
            double p = ws->logit[(size_t)j * H + h];
            const float *vh = ws->kv + (h / rep) * d;
            double *ah = ws->acc + (size_t)h * d;
            sum[h] += p;
            for (uint32_t e = 0; e < d; e++)
                ah[e] += p * vh[e];
        }
    }
    for (uint32_t h = 0; h < H; h++)
        for (uint32_t e = 0; e < d; e++)
            out[(size_t)h * d + e] = (float)(ws->acc[(size_t)h * d + e] / sum[h]);
}

static const float *g_sort_keys; /* qsort has no context argument in C11 */

static int cmp_rank(const void *pa, const void *pb) /* larger score first, then lower index */
{
    uint32_t a = *(const uint32_t *)pa, b = *(const uint32_t *)pb;
    float x = g_sort_keys[a], y = g_sort_keys[b];
    if (x != y)
        return x > y ? -1 : 1;
    return (a > b) - (a < b);
}

static int cmp_u32(const void *pa, const void *pb)
{
    uint32_t a = *(const uint32_t *)pa, b = *(const uint32_t *)pb;
    return (a > b) - (a < b);
}

/* Spec 4.4-4.5 on f[lm] (scores of M = [m0, m0+lm)): proximity max-pool, then the k best, ties
 * to the lower position; writes cache positions ascending to sel. */
static void cpu_select(cpu_ws *ws, uint32_t lm, uint32_t m0, uint32_t eps, uint32_t k, uint32_t *sel)
{
    for (uint32_t j = 0; j < lm; j++) {
        uint32_t lo = j > eps ? j - eps : 0, hi = j + eps < lm ? j + eps : lm - 1;
        float m = ws->f[lo];
        for (uint32_t i = lo + 1; i <= hi; i++)
            m = fmaxf(m, ws->f[i]);
        ws->fp[j] = m;
        ws->order[j] = j;
    }
    g_sort_keys = ws->fp;
    qsort(ws->order, lm, sizeof(uint32_t), cmp_rank);
    for (uint32_t i = 0; i < k; i++)
        sel[i] = m0 + ws->order[i];
    qsort(sel, k, sizeof(uint32_t), cmp_u32);
}

static uint32_t overlap(const uint32_t *a, const uint32_t *b, uint32_t n) /* both ascending */
{
    uint32_t i = 0, j = 0, c = 0;
    while (i < n && j < n) {
        if (a[i] == b[j])
            c++, i++, j++;
        else if (a[i] < b[j])
            i++;
        else
            j++;
    }
    return c;
}

static int contains(const uint32_t *s, uint32_t n, uint32_t x)
{
    return bsearch(&x, s, n, sizeof(uint32_t), cmp_u32) != NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Progress                                                                                     */

typedef struct progress {
    int on, tty, hinted;
    int dense_prefill;        /* 1 when the dense prefill runs (the hint can offer to skip it) */
    double t_start, t_last;
    double esa_units_total, dense_units_total, esa_units, dense_units;
} progress;

static void fmt_dur(double s, char *buf, size_t n)
{
    if (s < 0 || !isfinite(s))
        snprintf(buf, n, "?");
    else if (s < 60)
        snprintf(buf, n, "%.0fs", s);
    else if (s < 3600)
        snprintf(buf, n, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
    else
        snprintf(buf, n, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
}

/* The ETA models ESA's cost per token as the keys it attends (constant once the context is
 * long) and dense's as the whole prefix (growing), each at its own measured rate. */
static void progress_show(progress *p, uint32_t done, uint32_t total, double t_esa, double t_dense,
                          int final)
{
    if (!p->on)
        return;
    double t = now_s();
    if (!final && t - p->t_last < (p->tty ? 0.25 : 15.0))
        return;
    p->t_last = t;
    double eta = 0.0;
    if (p->esa_units > 0)
        eta += (p->esa_units_total - p->esa_units) * t_esa / p->esa_units;
    if (p->dense_units > 0)
        eta += (p->dense_units_total - p->dense_units) * t_dense / p->dense_units;
    if (t_esa + t_dense > 0.0) /* the rest of the time (data, filling) in proportion */
        eta *= (t - p->t_start) / (t_esa + t_dense);
    char e[32], el[32];
    fmt_dur(eta, e, sizeof e);
    fmt_dur(t - p->t_start, el, sizeof el);
    char dense[48] = "";
    if (p->dense_units_total > 0)
        snprintf(dense, sizeof dense, "  dense %.1f s", t_dense);
    fprintf(stderr, "%scontext %u/%u tokens (%.0f%%)  ESA %.1f s%s  %.0f tok/s  elapsed %s  ETA %s%s",
            p->tty ? "\r" : "", done, total, 100.0 * done / total, t_esa, dense,
            done / (t - p->t_start), el, final ? "0s" : e, p->tty ? "\033[K" : "\n");
    if (final && p->tty)
        fputc('\n', stderr);
    if (!final && !p->hinted && t - p->t_start > 20.0 && eta > 900.0) {
        p->hinted = 1;
        fprintf(stderr, "%shint: this device will take a while (CPU Vulkan drivers such as lavapipe "
                        "are slow); try --tokens 8192%s\n", p->tty ? "\n" : "",
                p->dense_prefill ? " or leave out --prefill" : "");
    }
    fflush(stderr);
}

/* Cost units of one chunk of n tokens after P cached ones (see progress_show). */
static double esa_units(const run *r, uint32_t P, uint32_t n)
{
    const options *o = &r->o;
    uint32_t nI = P < o->l_I ? P : o->l_I, nL = P - nI < o->l_L ? P - nI : o->l_L, lm = P - nI - nL;
    if ((uint64_t)P + n <= (uint64_t)o->l_I + o->k + o->l_L)
        return (double)n * (P + n);
    double att = nI + (lm < o->k ? lm : o->k) + nL + n;
    double sel = (double)lm * (o->exact_scores ? r->gd : o->dc) / (2.0 * r->hd);
    return (double)n * (att + sel);
}

/* ------------------------------------------------------------------------------------------ */

typedef struct stats { /* accumulated over decode steps and layers */
    uint32_t queries, hit_esa, hit_exact, chosen; /* chosen: steps where ESA had to select */
    double overlap_exact, overlap_dev;            /* sums of the per-step overlap fractions */
    double w_esa, w_dense;                        /* sums of the needle weights */
    double e_esa_dense[2], e_sparse[2], e_dev_esa[2], e_dev_dense[2]; /* sum (x-y)^2, sum y^2 */
} stats;

static void add_err(double *e, const float *x, const float *y, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double dx = (double)x[i] - y[i];
        e[0] += dx * dx;
        e[1] += (double)y[i] * y[i];
    }
}

static double err_of(const double *e)
{
    return e[1] > 0.0 ? sqrt(e[0] / e[1]) : 0.0;
}

/* The needle's attention weight, estimated from an output: its projection on the signature. */
static double needle_weight(const run *r, const layer_data *L, uint32_t i, const float *o)
{
    uint32_t d = r->o.d, rep = r->o.H / r->o.G;
    double w = 0.0;
    for (uint32_t h = 0; h < r->o.H; h++) {
        const float *s = L->sig + (size_t)i * r->gd + (h / rep) * d;
        double dot = 0.0;
        for (uint32_t e = 0; e < d; e++)
            dot += (double)o[(size_t)h * d + e] * s[e];
        w += dot / d;
    }
    return w / r->o.H;
}

/* Scores of the middle [m0, m0+lm) for the decode query q into ws->f: exact (spec 4.1,
 * sum_g (sum_{h in g} rope_w(q_h)) . k_g) or as the device computes the compressed ones
 * (q' = A rope_w(q), k' = fp16(B k)). */
static void cpu_scores(const run *r, const layer_data *L, const float *q, uint32_t m0,
                       uint32_t lm, int exact, cpu_ws *ws)
{
    uint32_t d = r->o.d, rep = r->o.H / r->o.G, dc = r->o.dc, gd = r->gd;
    for (uint32_t h = 0; h < r->o.H; h++)
        rope_rel(r, q + (size_t)h * d, (int64_t)r->w, ws->qr + (size_t)h * d);
    if (exact) {
        memset(ws->qc, 0, sizeof(float) * gd);
        for (uint32_t h = 0; h < r->o.H; h++)
            for (uint32_t e = 0; e < d; e++)
                ws->qc[(h / rep) * d + e] += ws->qr[(size_t)h * d + e];
    } else {
        for (uint32_t i = 0; i < dc; i++) {
            double acc = 0.0;
            for (uint32_t e = 0; e < r->hd; e++)
                acc += (double)L->a[(size_t)i * r->hd + e] * ws->qr[e];
            ws->qc[i] = (float)acc;
        }
    }
    for (uint32_t m = 0; m < lm; m++) {
        const uint16_t *km = L->k16 + (size_t)(m0 + m) * gd;
        for (uint32_t e = 0; e < gd; e++)
            ws->kv[e] = f16_to(km[e]);
        float s = 0.0f;
        if (exact) {
            for (uint32_t e = 0; e < gd; e++)
                s += ws->qc[e] * ws->kv[e];
        } else {
            for (uint32_t i = 0; i < dc; i++) {
                const float *bi = L->b + (size_t)i * gd;
                float acc = 0.0f;
                for (uint32_t e = 0; e < gd; e++)
                    acc += bi[e] * ws->kv[e];
                s += ws->qc[i] * f16_to(f16_from(acc));
            }
        }
        ws->f[m] = s;
    }
}

/* Everything the tool holds. */
typedef struct app {
    run R;
    esa_context *ctx;
    esa_device_info dev;
    esa_cache_desc desc;                 /* the ESA cache's, resolved */
    esa_cache *cache_esa, *cache_dense;
    layer_data *layers;                  /* [layers] */
    float *q, *k, *v, *out_esa, *out_dense; /* [chunk][H*d] or [chunk][G*d] */
    float *cpu_out;                      /* [H*d] */
    uint32_t *sel;                       /* [k] */
    double *step_esa, *step_dense;       /* [decode] seconds per decode step, all layers */
    double t_setup, t_esa, t_dense;      /* PCA fit; prefill seconds */
    cpu_ws ws;
    stats S;
} app;

static void report_error(const app *A, const char *what, esa_status s)
{
    fprintf(stderr, "esa-needle: %s: %s\n  %s\n", what, esa_status_string(s),
            esa_context_last_error(A->ctx));
}

#define CALL(expr, what)                                                                       \
    do {                                                                                       \
        esa_status s_ = (expr);                                                                \
        if (s_ != ESA_SUCCESS) {                                                               \
            report_error(A, what, s_);                                                         \
            return -1;                                                                         \
        }                                                                                      \
    } while (0)

static int out_of_memory(void)
{
    fprintf(stderr, "esa-needle: out of host memory\n");
    return -1;
}

static int alloc_buffers(app *A)
{
    const run *R = &A->R;
    const options *o = &R->o;
    cpu_ws *ws = &A->ws;
    A->layers = calloc(o->layers, sizeof(layer_data));
    A->q = malloc(sizeof(float) * (size_t)o->chunk * R->hd);
    A->k = malloc(sizeof(float) * (size_t)o->chunk * R->gd);
    A->v = malloc(sizeof(float) * (size_t)o->chunk * R->gd);
    A->out_esa = malloc(sizeof(float) * (size_t)o->chunk * R->hd);
    A->out_dense = malloc(sizeof(float) * (size_t)o->chunk * R->hd);
    A->cpu_out = malloc(sizeof(float) * R->hd);
    A->sel = malloc(sizeof(uint32_t) * o->k);
    A->step_esa = calloc(o->decode, sizeof(double));
    A->step_dense = calloc(o->decode, sizeof(double));
    ws->logit = malloc(sizeof(float) * (size_t)R->total * o->H);
    ws->kr = malloc(sizeof(float) * R->gd);
    ws->kv = malloc(sizeof(float) * R->gd);
    ws->acc = malloc(sizeof(double) * R->hd);
    ws->keys = malloc(sizeof(uint32_t) * R->total);
    ws->rel = malloc(sizeof(int64_t) * R->total);
    ws->f = malloc(sizeof(float) * R->total);
    ws->fp = malloc(sizeof(float) * R->total);
    ws->order = malloc(sizeof(uint32_t) * R->total);
    ws->sel_exact = malloc(sizeof(uint32_t) * o->k);
    ws->sel_comp = malloc(sizeof(uint32_t) * o->k);
    ws->qc = malloc(sizeof(float) * (o->dc > R->gd ? o->dc : R->gd));
    ws->qr = malloc(sizeof(float) * R->hd);
    ws->out2 = malloc(sizeof(float) * R->hd);
    if (!A->layers || !A->q || !A->k || !A->v || !A->out_esa || !A->out_dense || !A->cpu_out ||
        !A->sel || !A->step_esa || !A->step_dense || !ws->logit || !ws->kr || !ws->kv ||
        !ws->acc || !ws->keys || !ws->rel || !ws->f || !ws->fp || !ws->order ||
        !ws->sel_exact || !ws->sel_comp || !ws->qc || !ws->qr || !ws->out2)
        return out_of_memory();
    return 0;
}

static void free_app(app *A)
{
    esa_cache_destroy(A->cache_esa);
    esa_cache_destroy(A->cache_dense);
    esa_context_destroy(A->ctx);
    if (A->layers)
        for (uint32_t l = 0; l < A->R.o.layers; l++)
            free_layer(&A->layers[l]);
    free(A->layers);
    free(A->q); free(A->k); free(A->v); free(A->out_esa); free(A->out_dense);
    free(A->cpu_out); free(A->sel); free(A->step_esa); free(A->step_dense);
    cpu_ws *ws = &A->ws;
    free(ws->logit); free(ws->kr); free(ws->kv); free(ws->acc); free(ws->keys); free(ws->rel);
    free(ws->f); free(ws->fp); free(ws->order); free(ws->sel_exact); free(ws->sel_comp);
    free(ws->qc); free(ws->qr); free(ws->out2);
    free(A->R.rope_cs);
}

/* Context, the two caches, the layers' data and compression. */
static int setup(app *A)
{
    run *R = &A->R;
    const options *o = &R->o;
    char why[256] = "";
    esa_context_desc cdesc = {.error_message = why, .error_message_size = sizeof why};
    tool_device_request(o->device, &cdesc);
    esa_status st = esa_context_create(&cdesc, &A->ctx);
    if (st != ESA_SUCCESS) {
        fprintf(stderr, "esa-needle: esa_context_create: %s\n  %s\n", esa_status_string(st), why);
        return -1;
    }
    CALL(esa_context_device_info(A->ctx, &A->dev), "esa_context_device_info");
    A->desc = (esa_cache_desc){
        .n_layers = o->layers, .n_heads = o->H, .n_kv_heads = o->G, .head_dim = o->d,
        .rope_theta = o->rope_theta, .rope_style = ESA_ROPE_NEOX, .n_initial = o->l_I,
        .n_local = o->l_L, .top_k = o->k, .compress_dim = o->exact_scores ? 0 : o->dc,
        .proximity_radius = o->radius ? (int32_t)o->radius : ESA_RADIUS_NONE, .chunk = o->chunk,
        .position_mode = o->exact_positions ? ESA_POSITIONS_EXACT : ESA_POSITIONS_EXTRAPOLATE,
        .score_mode = o->exact_scores ? ESA_SCORES_EXACT : ESA_SCORES_COMPRESSED,
        .max_tokens = R->total,
    };
    CALL(esa_cache_create(A->ctx, &A->desc, &A->cache_esa), "esa_cache_create (ESA cache)");
    CALL(esa_cache_get_desc(A->cache_esa, &A->desc), "esa_cache_get_desc");
    /* The dense cache is only ever read by esa_attend_dense, which attends to every token
     * whatever the cache's ESA parameters; exact-score mode needs no matrices. */
    esa_cache_desc dd = A->desc;
    dd.score_mode = ESA_SCORES_EXACT;
    dd.compress_dim = 0;
    CALL(esa_cache_create(A->ctx, &dd, &A->cache_dense), "esa_cache_create (dense cache)");
    R->w = A->desc.global_pos;
    R->maxrel = R->total + R->w;
    if (make_rope_table(R))
        return out_of_memory();
    double t = now_s();
    for (uint32_t l = 0; l < o->layers; l++) {
        if (make_layer(R, l, &A->layers[l]) || (!o->exact_scores && fit_pca(R, l, &A->layers[l])))
            return out_of_memory();
        if (!o->exact_scores)
            CALL(esa_cache_set_compression(A->cache_esa, l, A->layers[l].a, A->layers[l].b),
                 "esa_cache_set_compression (ESA cache)");
    }
    A->t_setup = now_s() - t;
    return 0;
}

static void print_header(const app *A)
{
    const run *R = &A->R;
    const options *o = &R->o;
    const esa_cache_desc *d = &A->desc;
    printf("esa-needle %s: ESA needle retrieval on %s (%s)\n", esa_version_string(), A->dev.name,
           A->dev.driver_info);
    printf("shape      %s: H=%u G=%u d=%u, %u layer%s, NeoX RoPE theta %.0f\n", o->shape, o->H,
           o->G, o->d, o->layers, o->layers == 1 ? "" : "s", o->rope_theta);
    printf("ESA        l_I=%u l_L=%u k=%u eps=%u l_C=%u, %s positions (w=%u), ", d->n_initial,
           d->n_local, d->top_k, o->radius, d->chunk,
           o->exact_positions ? "true" : "extrapolated", R->w);
    if (o->exact_scores) {
        printf("exact full-dimension scores\n");
    } else {
        double en = 0.0;
        for (uint32_t l = 0; l < o->layers; l++)
            en += A->layers[l].energy;
        printf("d'=%u\n           by PCA of %u calibration keys (keeps %.0f%% of the key "
               "energy; %.1f s to fit)\n", o->dc, N_CALIB, 100.0 * en / o->layers, A->t_setup);
    }
    printf("context    %u tokens + %u decode queries; %u needles per layer", o->tokens,
           o->decode, o->needles);
    if (o->needles) {
        printf(", at");
        for (uint32_t i = 0; i < o->needles && i < 8; i++)
            printf(" %u", A->layers[0].pos[i]);
        printf("%s%s", o->needles > 8 ? " ..." : "", o->layers > 1 ? " (layer 0)" : "");
    }
    printf("\ndata       keys: variance %.0f:1 from the slowest to the fastest RoPE pair; random "
           "logit std %.1f;\n           needle: +%.0f std in its %d slowest pairs per head, its "
           "query's logit +%.1f per head\n", KEY_SPECTRUM, LOGIT_STD, KEY_OUTLIER, SLOW_PAIRS,
           o->needle_logit);
    uint64_t lm_final = o->tokens > (uint64_t)o->l_I + o->l_L ? o->tokens - o->l_I - o->l_L : 0;
    if (lm_final <= o->k)
        printf("note       the middle (%llu tokens) is not longer than k = %u: ESA selects all "
               "of it, so recall is trivially 1\n", (unsigned long long)lm_final, o->k);
    if (!o->prefill)
        printf("note       the context is appended without attention (esa_append); --prefill "
               "runs and times the chunked attention over it\n");
    fflush(stdout);
}

/* The context through both caches, chunk by chunk, every layer; times only the library calls. */
static int prefill(app *A)
{
    run *R = &A->R;
    const options *o = &R->o;
    progress pg = {.on = !o->quiet, .tty = isatty(2), .t_start = now_s(),
                   .dense_prefill = o->prefill};
    for (uint32_t t0 = 0; t0 < o->tokens; t0 += o->chunk) {
        uint32_t n = o->tokens - t0 < o->chunk ? o->tokens - t0 : o->chunk;
        pg.esa_units_total += o->layers * (o->prefill ? esa_units(R, t0, n) : n);
        if (o->prefill)
            pg.dense_units_total += o->layers * (double)n * (t0 + n);
    }
    for (uint32_t t0 = 0; t0 < o->tokens; t0 += o->chunk) {
        uint32_t n = o->tokens - t0 < o->chunk ? o->tokens - t0 : o->chunk;
        for (uint32_t l = 0; l < o->layers; l++) {
            for (uint32_t i = 0; i < n; i++)
                gen_token(R, &A->layers[l], l, t0 + i, A->q + (size_t)i * R->hd,
                          A->k + (size_t)i * R->gd, A->v + (size_t)i * R->gd);
            double t = now_s();
            if (o->prefill)
                CALL(esa_attend(A->cache_esa, l, n, ESA_F32, A->q, A->k, A->v, A->out_esa, NULL),
                     "esa_attend (prefill)");
            else
                CALL(esa_append(A->cache_esa, l, n, ESA_F32, A->k, A->v), "esa_append (ESA cache)");
            double t2 = now_s();
            if (!o->prefill) {
                CALL(esa_append(A->cache_dense, l, n, ESA_F32, A->k, A->v), "esa_append (dense cache)");
                A->t_dense += now_s() - t2;
            } else {
                CALL(esa_attend_dense(A->cache_dense, l, n, ESA_F32, A->q, A->k, A->v,
                                      A->out_dense, NULL), "esa_attend_dense (prefill)");
                A->t_dense += now_s() - t2;
                pg.dense_units += (double)n * (t0 + n);
            }
            A->t_esa += t2 - t;
            pg.esa_units += o->prefill ? esa_units(R, t0, n) : n;
        }
        progress_show(&pg, t0 + n, o->tokens, A->t_esa, A->t_dense, t0 + n == o->tokens);
    }
    return 0;
}

/* Decode query j on layer l: both steps on the device, then the checks on the CPU. */
static int decode_step(app *A, uint32_t j, uint32_t l, int table)
{
    run *R = &A->R;
    const options *o = &R->o;
    layer_data *L = &A->layers[l];
    cpu_ws *ws = &A->ws;
    stats *S = &A->S;
    uint32_t P = o->tokens + j;
    gen_token(R, L, l, P, A->q, A->k, A->v);
    esa_step_info info;
    double t = now_s();
    CALL(esa_attend(A->cache_esa, l, 1, ESA_F32, A->q, A->k, A->v, A->out_esa, &info),
         "esa_attend (decode)");
    double t2 = now_s();
    CALL(esa_attend_dense(A->cache_dense, l, 1, ESA_F32, A->q, A->k, A->v, A->out_dense, NULL),
         "esa_attend_dense (decode)");
    A->step_dense[j] += now_s() - t2;
    A->step_esa[j] += t2 - t;
    uint32_t count = 0;
    CALL(esa_cache_last_selection(A->cache_esa, l, A->sel, o->k, &count), "esa_cache_last_selection");

    /* the sets of spec 3 for this step (P tokens cached before it) */
    uint32_t nI = P < o->l_I ? P : o->l_I, nL = P - nI < o->l_L ? P - nI : o->l_L;
    uint32_t lm = P - nI - nL, m0 = nI;
    int choose = !info.dense && lm > o->k;
    if (choose && count != o->k) {
        fprintf(stderr, "esa-needle: the library reports %u selected tokens; k is %u\n", count, o->k);
        return -1;
    }
    uint32_t ns = choose ? o->k : lm; /* lm <= k when nothing is chosen */
    if (!choose)
        for (uint32_t i = 0; i < lm; i++)
            A->sel[i] = m0 + i;

    uint32_t needle = o->needles ? j % o->needles : 0, ov_exact = 0, ov_dev = 0;
    int hit = 1, in_exact = 1;
    if (choose) {
        cpu_scores(R, L, A->q, m0, lm, 1, ws);
        cpu_select(ws, lm, m0, o->radius, o->k, ws->sel_exact);
        ov_exact = overlap(A->sel, ws->sel_exact, o->k);
        ov_dev = ov_exact;
        if (!o->exact_scores) {
            cpu_scores(R, L, A->q, m0, lm, 0, ws);
            cpu_select(ws, lm, m0, o->radius, o->k, ws->sel_comp);
            ov_dev = overlap(A->sel, ws->sel_comp, o->k);
        }
        if (o->needles) {
            hit = contains(A->sel, o->k, L->pos[needle]);
            in_exact = contains(ws->sel_exact, o->k, L->pos[needle]);
        }
        S->chosen++;
        S->overlap_exact += (double)ov_exact / o->k;
        S->overlap_dev += (double)ov_dev / o->k;
    }

    /* CPU outputs: the ESA step in the device's mode, the same keys at true positions, and
     * dense. Relative rotations: true positions give m - P; extrapolation puts I and M_k at
     * distance w and keeps L and the current token at their true distances (the local part
     * is a translation of them). */
    int extrap = !info.dense && !o->exact_positions;
    uint32_t nk = 0;
    for (uint32_t m = 0; m < nI; m++)
        ws->keys[nk++] = m;
    for (uint32_t i = 0; i < ns; i++)
        ws->keys[nk++] = A->sel[i];
    uint32_t nglobal = nk;
    for (uint32_t m = P - nL; m <= P; m++)
        ws->keys[nk++] = m;
    for (uint32_t i = 0; i < nk; i++)
        ws->rel[i] = extrap && i < nglobal ? -(int64_t)R->w : (int64_t)ws->keys[i] - P;
    cpu_attend(R, L, A->q, nk, ws, A->cpu_out);
    add_err(S->e_dev_esa, A->out_esa, A->cpu_out, R->hd);
    for (uint32_t i = 0; i < nk; i++)
        ws->rel[i] = (int64_t)ws->keys[i] - P;
    cpu_attend(R, L, A->q, nk, ws, ws->out2); /* sparse, true positions */
    for (uint32_t m = 0; m <= P; m++) {
        ws->keys[m] = m;
        ws->rel[m] = (int64_t)m - P;
    }
    cpu_attend(R, L, A->q, P + 1, ws, A->cpu_out); /* dense */
    add_err(S->e_sparse, ws->out2, A->cpu_out, R->hd);
    add_err(S->e_dev_dense, A->out_dense, A->cpu_out, R->hd);
    double e_row[2] = {0.0, 0.0};
    add_err(e_row, A->out_esa, A->out_dense, R->hd);
    S->e_esa_dense[0] += e_row[0];
    S->e_esa_dense[1] += e_row[1];

    S->queries++;
    double we = 0.0, wd = 0.0;
    if (o->needles) {
        S->hit_esa += (uint32_t)hit;
        S->hit_exact += (uint32_t)in_exact;
        we = needle_weight(R, L, needle, A->out_esa);
        wd = needle_weight(R, L, needle, A->out_dense);
        S->w_esa += we;
        S->w_dense += wd;
    }
    if (table) {
        char np[32] = "-", ov[16] = "-";
        if (o->needles)
            snprintf(np, sizeof np, "%u@%u", needle, L->pos[needle]);
        if (choose)
            snprintf(ov, sizeof ov, "%.3f", (double)ov_exact / o->k);
        printf(" %5u %5u  %10s  %6s  %14s  %7s  %8.3f / %-8.3f  %.4f\n", j, l, np,
               o->needles ? (hit ? "yes" : "NO") : "-", o->needles ? (in_exact ? "yes" : "NO") : "-",
               ov, we, wd, err_of(e_row));
    }
    return 0;
}

static int cmp_double(const void *pa, const void *pb)
{
    double a = *(const double *)pa, b = *(const double *)pb;
    return (a > b) - (a < b);
}

static double median(double *v, uint32_t n)
{
    qsort(v, n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void print_summary(app *A)
{
    const options *o = &A->R.o;
    const stats *S = &A->S;
    printf("\nresults over %u decode queries x %u layer%s\n", o->decode, o->layers,
           o->layers == 1 ? "" : "s");
    if (o->needles)
        printf("  needle recall            ESA M_k %u/%u = %.3f   exact full-dimension top-k "
               "%u/%u = %.3f\n", S->hit_esa, S->queries, (double)S->hit_esa / S->queries,
               S->hit_exact, S->queries, (double)S->hit_exact / S->queries);
    if (S->chosen)
        printf("  top-k recall             %.3f of the exact full-dimension top-k is in ESA's "
               "M_k (mean)\n", S->overlap_exact / S->chosen);
    if (o->needles)
        printf("  needle weight in output  ESA %.3f   dense %.3f (mean, from the value "
               "signature)\n", S->w_esa / S->queries, S->w_dense / S->queries);
    printf("  output error vs dense    ESA %.4f (%s positions)   same keys at true "
           "positions %.4f (CPU)\n", err_of(S->e_esa_dense),
           o->exact_positions ? "true" : "extrapolated", err_of(S->e_sparse));
    printf("  device vs CPU check      ESA output %.2e   dense output %.2e", err_of(S->e_dev_esa),
           err_of(S->e_dev_dense));
    if (S->chosen)
        printf("   selection %.4f", S->overlap_dev / S->chosen);
    printf("\n\ntime on %s\n", A->dev.name);
    printf("                                        ESA        dense\n");
    if (!o->prefill)
        printf("  append,  %6u tokens x %u layer%s %8.2f s %8.2f s\n", o->tokens, o->layers,
               o->layers == 1 ? " " : "s", A->t_esa, A->t_dense);
    else
        printf("  prefill, %6u tokens x %u layer%s %8.2f s %8.2f s   dense/ESA %.2f\n", o->tokens,
               o->layers, o->layers == 1 ? " " : "s", A->t_esa, A->t_dense,
               A->t_esa > 0 ? A->t_dense / A->t_esa : 0.0);
    double me = median(A->step_esa, o->decode) * 1e3, md = median(A->step_dense, o->decode) * 1e3;
    printf("  decode step, median of %-4u %8.2f ms %8.2f ms  dense/ESA %.2f\n", o->decode, me, md,
           me > 0 ? md / me : 0.0);
}

int main(int argc, char **argv)
{
    app A = {0};
    int pr = parse_options(argc, argv, &A.R.o);
    if (pr)
        return pr > 0 ? 0 : 2;
    run *R = &A.R;
    R->hd = R->o.H * R->o.d;
    R->gd = R->o.G * R->o.d;
    R->total = R->o.tokens + R->o.decode;
    R->scale = 1.0f / sqrtf((float)R->o.d);
    int rc = 1;
    if (alloc_buffers(&A) || setup(&A))
        goto done;
    print_header(&A);
    if (prefill(&A))
        goto done;
    int table = !R->o.quiet && (uint64_t)R->o.decode * R->o.layers <= 64;
    if (table)
        printf("\n query layer  needle@pos  in M_k  in exact top-k  overlap  weight ESA / dense  "
               "error vs dense\n");
    for (uint32_t j = 0; j < R->o.decode; j++)
        for (uint32_t l = 0; l < R->o.layers; l++)
            if (decode_step(&A, j, l, table))
                goto done;
    print_summary(&A);
    rc = 0;
    if (R->o.check) {
        const stats *S = &A.S;
        int sel_ok = !S->chosen || S->overlap_dev == S->chosen;
        if (!(err_of(S->e_dev_esa) <= 1e-3) || !(err_of(S->e_dev_dense) <= 1e-3) || !sel_ok) {
            fprintf(stderr, "esa-needle: --check failed: the device disagrees with the CPU "
                            "recomputation\n");
            rc = 1;
        }
    }
done:
    free_app(&A);
    return rc;
}
