/* esa_bench.c - esa-bench: what ESA saves against dense attention on this device, measured side
 * by side in one run.
 *
 * For each model shape and cached length N it fills a cache with random keys and values, then
 * times one decode step (1 query) and one prefill chunk (l_C queries) over all layers, ESA and
 * the library's dense flash attention (true positions, split-K), from timestamp queries: the
 * median of --runs runs after --warmup, with the device time of every stage. After each
 * measured step the layer is truncated back to N, so every run sees the same context.
 * It also measures the device's read bandwidth (esa_context_probe_bandwidth) and reports every
 * stage's bytes moved as a fraction of it, the memory held, and top-k alone at 1M scores.
 * Output: JSON, CSV, a markdown table, and PNG plots through gnuplot when it is installed. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include "esa.h"
#include "tool_device.h"
#include "tool_print.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef struct shape {
    const char *name;
    uint32_t layers, H, G, d;
    float theta;
    uint32_t dc; /* d': ESA-SPEC's 128, and 32 where H*d = 576 ("32 suits a model with H*d = 576") */
} shape;

static const shape SHAPES[] = {
    {"smollm2-135m", 30, 9, 3, 64, 100000.0f, 32}, /* SmolLM2-135M: 9 query, 3 KV heads of 64 */
    {"llama3-8b", 32, 32, 8, 128, 500000.0f, 128}, /* Llama-3-8B: 32 query, 8 KV heads of 128 */
};
enum { N_SHAPES = 2, MAX_NS = 16, MAX_RESULTS = 256 };
enum { MODE_DECODE, MODE_PREFILL };
enum { METHOD_DENSE, METHOD_ESA };
static const char *const MODE_NAME[] = {"decode", "prefill"};
static const char *const METHOD_NAME[] = {"dense", "esa"};

typedef struct options {
    int quick, plots, modes, shapes, validate;
    uint32_t ns[MAX_NS], n_ns;
    uint32_t runs, warmup, layers_run, chunk, topk_lm;
    double max_config_s, mem_budget_mib;
    double kv_budget_mib;           /* > 0: the paging experiment instead (run_paging) */
    int kv_reads;                   /* mask of esa_kv_read values it compares */
    esa_tuning tuning;              /* the kernel variants (--tuning) */
    const char *out_dir, *device;
} options;

typedef struct result {
    int shape, mode, method;
    uint32_t n_ctx, layers, layers_run, resident, runs;
    int esa_is_dense;               /* the context was too short to select: ESA ran dense */
    char status[160];               /* "ok", or why it was not measured */
    double ms, host_ms;             /* median device / host time of the step over all layers */
    double stage_ms[ESA_STAGE_COUNT];
    double stage_bytes[ESA_STAGE_COUNT];
    double device_mib, full_kv_mib; /* held now; K/V + compressed keys all layers would need */
    /* the paging experiment: the cache's K/V placement and what it held */
    int paged;                      /* 0: every page on the device; 1: under --kv-budget */
    uint32_t kv_read;               /* esa_kv_read in use */
    int group;                      /* nonzero: measured interleaved with the others of its group */
    double fill_s;
    esa_cache_memory mem;
} result;

typedef struct bench {
    options o;
    esa_context *ctx;
    esa_device_info info;
    double probe_gbps;
    result res[MAX_RESULTS];
    uint32_t n_res;
    int stopped[N_SHAPES][2][2]; /* a smaller N hit the time limit: skip larger ones */
    double topk_ms, topk_prox_ms, topk_score_ms, topk_reads;
    uint32_t topk_lm_done;
    char topk_status[160];
    uint16_t *pool;                 /* random fp16 values to draw keys, values, queries from */
    size_t pool_len;
    uint64_t rng;
    int tty;                        /* stderr is a terminal: progress on one line */
} bench;

/* The kernel variants the context built (tuning.c), for the outputs. */
static const char *tuning_name(const bench *B)
{
    return esa_context_tuning(B->ctx) == ESA_TUNING_CPU ? "cpu" : "gpu";
}

/* ------------------------------------------------------------------------------------------ */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* IEEE half of a float in the normal range (random test data only) */
static uint16_t half_of(float f)
{
    uint32_t b;
    memcpy(&b, &f, 4);
    uint32_t sign = (b >> 16) & 0x8000u;
    int e = (int)((b >> 23) & 0xff) - 127 + 15;
    if (e <= 0)
        return (uint16_t)sign;
    return (uint16_t)(sign | ((uint32_t)e << 10) | ((b & 0x7fffffu) >> 13));
}

/* A window of the random pool at a random offset: fresh-looking data without generating it. */
static const uint16_t *draw(bench *B, size_t count)
{
    size_t room = B->pool_len - count;
    return B->pool + (room ? rng_next(&B->rng) % room : 0);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, uint32_t n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static long rss_peak_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    char line[256];
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

static int check(esa_context *ctx, esa_status s, const char *what)
{
    if (s == ESA_SUCCESS)
        return 1;
    fprintf(stderr, "esa-bench: %s: %s\n  %s\n", what, esa_status_string(s),
            ctx ? esa_context_last_error(ctx) : "");
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Options                                                                                     */

static void usage(FILE *f)
{
    fprintf(f,
        "usage: esa-bench [options]\n"
        "Times ESA against dense attention (decode step and prefill chunk, all layers of a model\n"
        "shape) on one device, with per-stage device times, bytes moved against a read-bandwidth\n"
        "probe, and memory; writes JSON, CSV, markdown and PNG plots (gnuplot) to --out.\n"
        "  --quick             the smoke run (about a minute on lavapipe): decode at 8k tokens\n"
        "                      (ESA selects there), 1 layer step scaled to all layers and marked\n"
        "                      so, top-k at 256k scores\n"
        "  --shapes LIST       smollm2-135m,llama3-8b (default both)\n"
        "  --tokens LIST       cached lengths N (default 4096,16384,65536,131072,262144)\n"
        "  --modes LIST        decode,prefill (default both)\n"
        "  --runs N            measured runs per point, median reported (default 5, at least 5\n"
        "                      for claims)\n"
        "  --warmup N          runs before measuring (default 1)\n"
        "  --layers-run N      layer steps actually run per step; the time is scaled to all\n"
        "                      layers and marked (default: all layers)\n"
        "  --chunk N           prefill chunk l_C (default 512)\n"
        "  --max-seconds S     skip a point, and larger N for the same shape/mode/method, when\n"
        "                      its runs would take longer than S seconds (default 300)\n"
        "  --mem-budget MIB    device memory the caches may use (default 70%% of the device-local\n"
        "                      heap); layers beyond it are cycled: a step still runs all layers\n"
        "  --topk-scores N     top-k alone (k 2048) over N middle tokens (default 1048576; 0 off)\n"
        "  --kv-budget MIB     the paging experiment instead: per shape and N, an ESA decode step\n"
        "                      over all layers with every K/V page on the device, then with the\n"
        "                      cache's kv_device_budget at MIB (the rest in host memory), read\n"
        "                      each --kv-read way; device and host bytes held, times, ratios\n"
        "  --kv-read LIST      direct,copy: the ways host pages are read (default both)\n"
        "  --tuning WHICH      auto, cpu or gpu: the kernel variants (esa_context_desc.tuning;\n"
        "                      default auto: by device type), to time the other kind here\n"
        "  --out DIR           output folder (default bench-out)\n"
        "  --no-plots          skip gnuplot\n"
        "  --validate          run with the validation layer; any message fails the run (tests)\n"
        "  --device NAME|INDEX device by name substring or index (default: $ESA_DEVICE, else\n"
        "                      the first discrete, integrated, virtual, then CPU device)\n"
        "  --help\n");
}

static int parse_list(const char *s, uint32_t *out, uint32_t cap, uint32_t *n)
{
    *n = 0;
    while (*s) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(s, &end, 10);
        if (end == s || errno || v == 0 || v > ESA_MAX_TOKENS || *n == cap)
            return 0;
        if (*end == 'k' || *end == 'K')
            v *= 1024, end++;
        out[(*n)++] = (uint32_t)v;
        if (*end == ',')
            end++;
        else if (*end)
            return 0;
        s = end;
    }
    return *n > 0;
}

static int parse_names(const char *s, const char *const *names, int count, int *mask)
{
    *mask = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *t = strtok(buf, ","); t; t = strtok(NULL, ",")) {
        int found = 0;
        for (int i = 0; i < count; i++)
            if (!strcmp(t, names[i]))
                *mask |= 1 << i, found = 1;
        if (!found)
            return 0;
    }
    return *mask != 0;
}

static int parse_u32(const char *s, uint32_t lo, uint32_t hi, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (end == s || *end || errno || v < lo || v > hi)
        return 0;
    *out = (uint32_t)v;
    return 1;
}

static int parse_options(int argc, char **argv, options *o)
{
    enum { O_QUICK = 1, O_SHAPES, O_TOKENS, O_MODES, O_RUNS, O_WARMUP, O_LAYERS, O_CHUNK, O_MAXS,
           O_MEM, O_TOPK, O_OUT, O_NOPLOTS, O_DEVICE, O_HELP, O_VALIDATE, O_KVB, O_KVREAD, O_TUNING };
    static const struct option lo[] = {
        {"quick", no_argument, 0, O_QUICK}, {"shapes", required_argument, 0, O_SHAPES},
        {"tokens", required_argument, 0, O_TOKENS}, {"modes", required_argument, 0, O_MODES},
        {"runs", required_argument, 0, O_RUNS}, {"warmup", required_argument, 0, O_WARMUP},
        {"layers-run", required_argument, 0, O_LAYERS}, {"chunk", required_argument, 0, O_CHUNK},
        {"max-seconds", required_argument, 0, O_MAXS}, {"mem-budget", required_argument, 0, O_MEM},
        {"topk-scores", required_argument, 0, O_TOPK}, {"out", required_argument, 0, O_OUT},
        {"no-plots", no_argument, 0, O_NOPLOTS}, {"device", required_argument, 0, O_DEVICE},
        {"help", no_argument, 0, O_HELP}, {"validate", no_argument, 0, O_VALIDATE},
        {"kv-budget", required_argument, 0, O_KVB}, {"kv-read", required_argument, 0, O_KVREAD},
        {"tuning", required_argument, 0, O_TUNING}, {0, 0, 0, 0},
    };
    static const char *const shape_names[] = {"smollm2-135m", "llama3-8b"};
    static const char *const read_names[] = {"auto", "direct", "copy"};
    static const char *const tuning_names[] = {"auto", "cpu", "gpu"};
    *o = (options){.plots = 1, .modes = 3, .shapes = 3, .runs = 5, .warmup = 1, .chunk = 512,
                   .topk_lm = 1u << 20, .max_config_s = 300.0, .out_dir = "bench-out",
                   .kv_reads = 1 << ESA_KV_READ_DIRECT | 1 << ESA_KV_READ_COPY,
                   .device = getenv("ESA_DEVICE")};
    int set_tokens = 0, set_layers = 0, set_topk = 0, set_modes = 0, c, ok = 1;
    while (ok && (c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        char *end;
        switch (c) {
        case O_QUICK: o->quick = 1; break;
        case O_SHAPES: ok = parse_names(optarg, shape_names, N_SHAPES, &o->shapes); break;
        case O_TOKENS: ok = parse_list(optarg, o->ns, MAX_NS, &o->n_ns), set_tokens = 1; break;
        case O_MODES: ok = parse_names(optarg, MODE_NAME, 2, &o->modes), set_modes = 1; break;
        case O_RUNS: ok = parse_u32(optarg, 1, 1000, &o->runs); break;
        case O_WARMUP: ok = parse_u32(optarg, 0, 100, &o->warmup); break;
        case O_LAYERS: ok = parse_u32(optarg, 1, 1000, &o->layers_run), set_layers = 1; break;
        case O_CHUNK: ok = parse_u32(optarg, 2, 8192, &o->chunk); break;
        case O_MAXS:
            o->max_config_s = strtod(optarg, &end);
            ok = end != optarg && !*end && o->max_config_s > 0;
            break;
        case O_MEM:
            o->mem_budget_mib = strtod(optarg, &end);
            ok = end != optarg && !*end && o->mem_budget_mib > 0;
            break;
        case O_TOPK: ok = parse_u32(optarg, 0, ESA_MAX_TOKENS - 8192, &o->topk_lm), set_topk = 1; break;
        case O_OUT: o->out_dir = optarg; break;
        case O_NOPLOTS: o->plots = 0; break;
        case O_DEVICE: o->device = optarg; break;
        case O_HELP: usage(stdout); exit(0);
        case O_VALIDATE: o->validate = 1; break;
        case O_KVB:
            o->kv_budget_mib = strtod(optarg, &end);
            ok = end != optarg && !*end && o->kv_budget_mib > 0;
            break;
        case O_KVREAD: ok = parse_names(optarg, read_names, 3, &o->kv_reads) && !(o->kv_reads & 1); break;
        case O_TUNING: {
            int m = 0;
            ok = parse_names(optarg, tuning_names, 3, &m) && (m & (m - 1)) == 0;
            o->tuning = m == 4 ? ESA_TUNING_GPU : m == 2 ? ESA_TUNING_CPU : ESA_TUNING_AUTO;
            break;
        }
        default: ok = 0;
        }
        if (!ok && c != '?')
            fprintf(stderr, "esa-bench: bad value for --%s: \"%s\"\n", lo[c - 1].name, optarg ? optarg : "");
    }
    if (!ok || optind < argc) {
        if (optind < argc)
            fprintf(stderr, "esa-bench: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return 0;
    }
    if (o->topk_lm && o->topk_lm < 4096) {
        fprintf(stderr, "esa-bench: --topk-scores must be 0 or at least 4096 (k is 2048)\n");
        return 0;
    }
    if (!set_tokens) {
        static const uint32_t full[] = {4096, 16384, 65536, 131072, 262144};
        static const uint32_t quick[] = {8192};
        const uint32_t *src = o->quick ? quick : full;
        o->n_ns = o->quick ? 1 : 5;
        memcpy(o->ns, src, o->n_ns * sizeof *src);
    }
    if (o->quick && !set_layers)
        o->layers_run = 1;
    if (o->quick && !set_modes)
        o->modes = 1 << MODE_DECODE;
    if (o->quick && !set_topk)
        o->topk_lm = 1u << 18;
    if (o->kv_budget_mib > 0 && !set_topk)
        o->topk_lm = 0;
    return 1;
}

/* ------------------------------------------------------------------------------------------ */
/* The model of bytes each stage moves in one layer step (what it must read and write at      */
/* least; partial slots and histograms are left out).                                         */

/* Full reads of the order keys by top-k after proximity (step.c esa_record_topk): the filter
 * pass; the write pass reads a bitmap of 1 bit per key instead. A second read (topk_hist1)
 * happens only when the threshold's 11-bit bin holds more than max(65536, lm / 16) keys. */
#define TOPK_KEY_READS 1.0

static void stage_bytes(const shape *sh, const esa_cache_desc *d, uint32_t P, uint32_t n, int dense,
                        double *b)
{
    double H = sh->H, G = sh->G, D = sh->d, dc = d->compress_dim;
    uint32_t nI = P < d->n_initial ? P : d->n_initial;
    uint32_t nL = P - nI < d->n_local ? P - nI : d->n_local;
    uint32_t lm = P - nI - nL;
    int select = !dense && lm > d->top_k;
    double attended = dense ? (double)P + n : (double)nI + (select ? d->top_k : lm) + nL + n;
    memset(b, 0, sizeof(double) * ESA_STAGE_COUNT);
    b[ESA_STAGE_APPEND] = n * (H + 2 * G) * D * 2 + n * H * D * 4 + n * 2 * G * D * 2;
    b[ESA_STAGE_COMPRESS] = n * G * D * 2 + G * D * dc * 4 + n * dc * 2;
    if (select) {
        b[ESA_STAGE_COMPRESS] += n * H * D * 4 + H * D * dc * 4 + n * dc * 4;
        b[ESA_STAGE_SCORE] = (n > 1 ? 2.0 : 1.0) * lm * dc * 2 + (double)lm * 4;
        b[ESA_STAGE_PROXIMITY] = 2.0 * lm * 4;
        b[ESA_STAGE_TOPK] = TOPK_KEY_READS * lm * 4 + 2.0 * lm / 8 + d->top_k * 4.0;
    }
    b[ESA_STAGE_ATTENTION] = attended * G * D * 2 * 2 + n * H * D * 4;
    b[ESA_STAGE_MERGE] = n * H * D * 4 * 2;
}

/* ------------------------------------------------------------------------------------------ */
/* Measuring                                                                                   */

static esa_cache_desc cache_desc(const shape *sh, uint32_t layers, uint32_t max_tokens, uint32_t chunk)
{
    return (esa_cache_desc){.n_layers = layers, .n_heads = sh->H, .n_kv_heads = sh->G, .head_dim = sh->d,
                            .rope_theta = sh->theta, .compress_dim = sh->dc, .chunk = chunk,
                            .max_tokens = max_tokens};
}

/* Random compression matrices for every layer (their values do not change the work). */
static int set_matrices(bench *B, esa_cache *c, const esa_cache_desc *d)
{
    uint32_t dc = d->compress_dim, hd = d->n_heads * d->head_dim, gd = d->n_kv_heads * d->head_dim;
    float *a = malloc(sizeof(float) * dc * hd), *bm = malloc(sizeof(float) * dc * gd);
    int ok = a && bm;
    for (uint32_t i = 0; ok && i < dc * hd; i++)
        a[i] = ((float)(rng_next(&B->rng) >> 40) / 16777216.0f - 0.5f) / sqrtf((float)hd);
    for (uint32_t i = 0; ok && i < dc * gd; i++)
        bm[i] = ((float)(rng_next(&B->rng) >> 40) / 16777216.0f - 0.5f) / sqrtf((float)gd);
    for (uint32_t l = 0; ok && l < d->n_layers; l++)
        ok = check(B->ctx, esa_cache_set_compression(c, l, a, bm), "esa_cache_set_compression");
    free(a);
    free(bm);
    return ok;
}

/* Append N random tokens to every layer of the cache, with progress. */
static int fill(bench *B, esa_cache *c, const esa_cache_desc *d, const char *label, uint32_t N)
{
    uint32_t gd = d->n_kv_heads * d->head_dim, step = 8192;
    double t0 = now_s(), last = t0;
    for (uint32_t l = 0; l < d->n_layers; l++)
        for (uint32_t t = 0; t < N; t += step) {
            uint32_t m = N - t < step ? N - t : step;
            if (!check(B->ctx, esa_append(c, l, m, ESA_F16, draw(B, (size_t)m * gd), draw(B, (size_t)m * gd)),
                       "esa_append"))
                return 0;
            if (now_s() - last > (B->tty ? 1.0 : 10.0)) {
                last = now_s();
                fprintf(stderr, "%s  %s: filling layer %u/%u, %u/%u tokens (%.0f s)%s", B->tty ? "\r" : "", label,
                        l + 1, d->n_layers, t + m, N, last - t0, B->tty ? "   " : "\n");
            }
        }
    if (last != t0)
        fprintf(stderr, "%s  %s: filled %u layers x %u tokens in %.1f s              \n", B->tty ? "\r" : "", label, d->n_layers, N,
                now_s() - t0);
    return 1;
}

/* One step over all layers_run layers (cycling through the resident ones), each truncated back
 * to N afterwards. Device time from the profile; host time around it. */
static int one_step(bench *B, esa_cache *c, const esa_cache_desc *d, const result *r, uint32_t n,
                    float *out, esa_profile *p, double *host_s, int *was_dense)
{
    uint32_t hd = d->n_heads * d->head_dim, gd = d->n_kv_heads * d->head_dim;
    esa_context_get_profile(B->ctx, p, 1);
    double t0 = now_s();
    for (uint32_t i = 0; i < r->layers_run; i++) {
        uint32_t l = i % r->resident;
        esa_step_info info;
        const uint16_t *q = draw(B, (size_t)n * hd), *k = draw(B, (size_t)n * gd), *v = draw(B, (size_t)n * gd);
        esa_status s = r->method == METHOD_ESA ? esa_attend(c, l, n, ESA_F16, q, k, v, out, &info)
                                               : esa_attend_dense(c, l, n, ESA_F16, q, k, v, out, &info);
        if (!check(B->ctx, s, r->method == METHOD_ESA ? "esa_attend" : "esa_attend_dense") ||
            !check(B->ctx, esa_cache_truncate(c, l, r->n_ctx), "esa_cache_truncate"))
            return 0;
        *was_dense = (int)info.dense;
    }
    *host_s = now_s() - t0;
    return check(B->ctx, esa_context_get_profile(B->ctx, p, 1), "esa_context_get_profile");
}

/* The results of one (shape, N, mode) on one cache, dense and ESA, measured side by side: each
 * is warmed up, then their runs alternate (dense, ESA, dense, ...), so that a slow phase of a
 * shared machine slows both and their ratio holds. */
typedef struct measuring {
    result *r;
    double *dev, *host, *stages; /* [runs], [runs], [ESA_STAGE_COUNT][runs] */
    int dense, live;
} measuring;

static int measure_run(bench *B, esa_cache *c, const esa_cache_desc *d, measuring *m, uint32_t n, float *out,
                       uint32_t i)
{
    result *r = m->r;
    esa_profile p;
    double hs;
    double scale = (double)r->layers / r->layers_run;
    if (!one_step(B, c, d, r, n, out, &p, &hs, &m->dense)) {
        snprintf(r->status, sizeof r->status, "failed: %s", esa_context_last_error(B->ctx));
        m->live = 0;
        return 0;
    }
    m->dev[i] = p.total_ms * scale;
    m->host[i] = hs * 1e3 * scale;
    for (int s = 0; s < ESA_STAGE_COUNT; s++)
        m->stages[(size_t)s * B->o.runs + i] = p.stage_ms[s] * scale;
    return 1;
}

static void measure(bench *B, esa_cache *c, const esa_cache_desc *d, result **rs, int nr)
{
    const shape *sh = &SHAPES[rs[0]->shape];
    uint32_t n = rs[0]->mode == MODE_DECODE ? 1 : B->o.chunk, runs = B->o.runs;
    measuring m[2] = {{0}};
    float *out = malloc(sizeof(float) * n * d->n_heads * d->head_dim);
    for (int k = 0; k < nr; k++) {
        m[k].r = rs[k];
        m[k].dev = calloc((size_t)runs * (ESA_STAGE_COUNT + 2), sizeof(double));
        m[k].live = out && m[k].dev;
        if (m[k].dev) {
            m[k].host = m[k].dev + runs;
            m[k].stages = m[k].host + runs;
        }
        if (!m[k].live)
            snprintf(rs[k]->status, sizeof rs[k]->status, "out of host memory");
    }
    for (int k = 0; k < nr; k++) {
        result *r = m[k].r;
        for (uint32_t w = 0; m[k].live && w < B->o.warmup; w++) {
            double t0 = now_s();
            if (!measure_run(B, c, d, &m[k], n, out, 0))
                break;
            double estimate = (now_s() - t0) * runs;
            if (w == 0 && estimate > B->o.max_config_s) {
                snprintf(r->status, sizeof r->status, "skipped: %u runs would take about %.0f s (--max-seconds %.0f)",
                         runs, estimate, B->o.max_config_s);
                B->stopped[r->shape][r->mode][r->method] = 1;
                m[k].live = 0;
            }
        }
    }
    for (uint32_t i = 0; i < runs; i++)
        for (int k = 0; k < nr; k++)
            if (m[k].live)
                measure_run(B, c, d, &m[k], n, out, i);
    for (int k = 0; k < nr; k++) {
        result *r = m[k].r;
        if (m[k].live) {
            r->runs = runs;
            r->ms = median(m[k].dev, runs);
            r->host_ms = median(m[k].host, runs);
            for (int s = 0; s < ESA_STAGE_COUNT; s++)
                r->stage_ms[s] = median(m[k].stages + (size_t)s * runs, runs);
            r->esa_is_dense = r->method == METHOD_ESA && m[k].dense;
            stage_bytes(sh, d, r->n_ctx, n, r->method == METHOD_DENSE || m[k].dense, r->stage_bytes);
            for (int s = 0; s < ESA_STAGE_COUNT; s++)
                r->stage_bytes[s] *= r->layers;
            snprintf(r->status, sizeof r->status, "ok");
            fprintf(stderr, "  %-13s N=%-7u %-7s %-5s %10.3f ms device, %10.3f ms host%s%s\n", sh->name, r->n_ctx,
                    MODE_NAME[r->mode], METHOD_NAME[r->method], r->ms, r->host_ms,
                    r->esa_is_dense ? " (dense: too short to select)" : "", r->layers_run < r->layers ? " (scaled)" : "");
        } else {
            fprintf(stderr, "  %-13s N=%-7u %-7s %-5s %s\n", sh->name, r->n_ctx, MODE_NAME[r->mode],
                    METHOD_NAME[r->method], r->status);
        }
        free(m[k].dev);
    }
    free(out);
}

static result *new_result(bench *B, int sh, uint32_t N, int mode, int method)
{
    if (B->n_res == MAX_RESULTS)
        return NULL;
    result *r = &B->res[B->n_res++];
    *r = (result){.shape = sh, .mode = mode, .method = method, .n_ctx = N, .layers = SHAPES[sh].layers};
    return r;
}

/* Every mode and method at one (shape, N): one cache, filled once. */
static void run_point(bench *B, int si, uint32_t N)
{
    const shape *sh = &SHAPES[si];
    options *o = &B->o;
    int want = 0;
    for (int m = 0; m < 2; m++)
        for (int me = 0; me < 2; me++)
            want |= (o->modes >> m & 1) && !B->stopped[si][m][me];
    if (!want)
        return;
    uint32_t layers_run = o->layers_run && o->layers_run < sh->layers ? o->layers_run : sh->layers;
    uint32_t max_tokens = N + o->chunk;
    esa_cache_desc probe = cache_desc(sh, 1, max_tokens, o->chunk);
    double per_layer = (double)max_tokens * (sh->G * sh->d * 4.0 + sh->dc * 2.0);
    double full_kv = per_layer * sh->layers / 1048576.0;
    double budget = o->mem_budget_mib > 0 ? o->mem_budget_mib * 1048576.0 : 0.7 * (double)B->info.device_local_bytes;
    esa_memory_usage u0;
    esa_context_memory_usage(B->ctx, &u0);
    budget -= (double)u0.device_local_bytes;
    uint32_t resident = (uint32_t)fmin((double)layers_run, floor(budget / per_layer));
    esa_cache *c = NULL;
    esa_status s = ESA_ERROR_OUT_OF_DEVICE_MEMORY;
    while (resident > 0) {
        probe.n_layers = resident;
        s = esa_cache_create(B->ctx, &probe, &c);
        if (s != ESA_ERROR_OUT_OF_DEVICE_MEMORY && s != ESA_ERROR_LIMIT)
            break;
        resident /= 2;
    }
    char label[64];
    snprintf(label, sizeof label, "%s N=%u", sh->name, N);
    char why[160] = "";
    if (resident == 0)
        snprintf(why, sizeof why, "does not fit: one layer needs %.0f MiB, the budget leaves %.0f MiB",
                 per_layer / 1048576.0, budget / 1048576.0);
    else if (s != ESA_SUCCESS)
        snprintf(why, sizeof why, "esa_cache_create: %s", esa_context_last_error(B->ctx));
    else if (!check(B->ctx, esa_cache_get_desc(c, &probe), "esa_cache_get_desc") || !set_matrices(B, c, &probe) ||
             !fill(B, c, &probe, label, N))
        snprintf(why, sizeof why, "filling the cache failed: %s", esa_context_last_error(B->ctx));
    esa_memory_usage u;
    esa_context_memory_usage(B->ctx, &u);
    for (int m = 0; m < 2; m++) {
        if (!(o->modes >> m & 1))
            continue;
        result *todo[2];
        int nt = 0;
        for (int me = 0; me < 2; me++) {
            result *r = new_result(B, si, N, m, me);
            if (!r)
                continue;
            r->layers_run = layers_run;
            r->resident = resident;
            r->full_kv_mib = full_kv;
            r->device_mib = (double)u.device_local_bytes / 1048576.0;
            if (why[0])
                snprintf(r->status, sizeof r->status, "%s", why);
            else if (B->stopped[si][m][me])
                snprintf(r->status, sizeof r->status, "skipped: a shorter context hit --max-seconds");
            else {
                todo[nt++] = r;
                continue;
            }
            fprintf(stderr, "  %-13s N=%-7u %-7s %-5s %s\n", sh->name, N, MODE_NAME[m], METHOD_NAME[me], r->status);
        }
        if (nt)
            measure(B, c, &probe, todo, nt);
    }
    esa_cache_destroy(c);
}

/* Bytes the system could still give this process (MemAvailable), 0 when unknown. */
static double mem_available(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f)
        return 0;
    char line[256];
    unsigned long kib = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %lu kB", &kib) == 1)
            break;
    fclose(f);
    return (double)kib * 1024.0;
}

static const char *const READ_NAME[] = {"auto", "direct", "copy"};

/* One cache of the paging experiment, and its runs. */
typedef struct paging_cfg {
    result *r;
    esa_cache *c;
    esa_cache_desc d;
    double device_need, host_need;  /* bytes it will hold on the device and in host memory */
    double *ms;                     /* [runs][1 + ESA_STAGE_COUNT] */
} paging_cfg;

/* Create and fill one cache of the experiment; says why in r->status when it cannot. */
static int paging_open(bench *B, paging_cfg *p, const char *label)
{
    B->rng = 0x9e3779b97f4a7c15ull; /* the same matrices and tokens in every cache */
    double t0 = now_s();
    if (!check(B->ctx, esa_cache_create(B->ctx, &p->d, &p->c), "esa_cache_create") ||
        !check(B->ctx, esa_cache_get_desc(p->c, &p->d), "esa_cache_get_desc") || !set_matrices(B, p->c, &p->d) ||
        !fill(B, p->c, &p->d, label, p->r->n_ctx)) {
        snprintf(p->r->status, sizeof p->r->status, "failed: %s", esa_context_last_error(B->ctx));
        esa_cache_destroy(p->c);
        p->c = NULL;
        return 0;
    }
    p->r->fill_s = now_s() - t0;
    return 1;
}

/* The paging experiment at one (shape, N): an ESA decode step over all layers, with every K/V
 * page on the device, and under --kv-budget with the other pages in host memory, read each
 * --kv-read way. Every cache holds the same matrices and tokens. The caches that fit in memory
 * together are measured side by side, their runs interleaved (a group); the rest in later
 * groups. */
static void run_paging(bench *B, int si, uint32_t N)
{
    const shape *sh = &SHAPES[si];
    const options *o = &B->o;
    const double MiB = 1048576.0;
    double kv = (double)(N + 1) * sh->G * sh->d * 4.0 * sh->layers, kc = (double)(N + 1) * sh->dc * 2.0 * sh->layers;
    double host_room = 0.8 * mem_available();
    int cpu = B->info.type == ESA_DEVICE_CPU; /* its device memory is this system's memory */
    double device_room = o->mem_budget_mib > 0 ? o->mem_budget_mib * MiB
                         : cpu                 ? host_room
                                               : 0.7 * (double)B->info.device_local_bytes;
    paging_cfg cfgs[ESA_KV_READ_COPY + 1];
    uint32_t nc = 0;
    for (uint32_t k = 0; k <= ESA_KV_READ_COPY; k++) {
        if (k && !(o->kv_reads >> k & 1))
            continue;
        result *r = new_result(B, si, N, MODE_DECODE, METHOD_ESA);
        if (!r)
            break;
        paging_cfg *p = &cfgs[nc++];
        *p = (paging_cfg){.r = r, .d = cache_desc(sh, sh->layers, N + 1, o->chunk)};
        r->layers_run = r->resident = sh->layers;
        r->paged = k != 0;
        r->kv_read = k;
        r->full_kv_mib = (kv + kc) / MiB;
        if (k) {
            p->d.kv_device_budget = (uint64_t)(o->kv_budget_mib * MiB);
            p->d.kv_read = k;
        }
        double budget = (double)p->d.kv_device_budget;
        p->device_need = k ? budget + kc : kv + kc;
        p->host_need = k ? kv - budget : 0;
        if (cpu) { /* one memory: count it all as host memory */
            p->host_need += p->device_need;
            p->device_need = 0;
        }
        if (p->device_need > device_room || p->host_need > host_room)
            snprintf(r->status, sizeof r->status,
                     "does not fit: needs %.0f MiB on the device and %.0f MiB in host memory, of %.0f and %.0f "
                     "available", p->device_need / MiB, p->host_need / MiB, cpu ? 0 : device_room / MiB,
                     host_room / MiB);
    }
    for (uint32_t first = 0; first < nc;) {
        /* a group: the next caches that fit together */
        uint32_t end = first;
        double dev = 0, host = 0;
        int group = 0;
        while (end < nc && (end == first || (dev + cfgs[end].device_need <= device_room &&
                                              host + cfgs[end].host_need <= host_room))) {
            dev += cfgs[end].device_need;
            host += cfgs[end].host_need;
            end++;
        }
        for (uint32_t i = first; i < end; i++) {
            paging_cfg *p = &cfgs[i];
            char label[96];
            snprintf(label, sizeof label, "%s N=%u %s", sh->name, N, p->r->paged ? READ_NAME[p->r->kv_read] : "all on device");
            if (p->r->status[0]) {
                fprintf(stderr, "  %s: %s\n", label, p->r->status);
                continue;
            }
            p->ms = calloc((size_t)o->runs * (1 + ESA_STAGE_COUNT), sizeof(double));
            if (!p->ms)
                snprintf(p->r->status, sizeof p->r->status, "out of host memory");
            else if (paging_open(B, p, label))
                group++;
        }
        /* warm-up, then the runs, interleaved over the group's caches */
        float *out = malloc(sizeof(float) * sh->H * sh->d);
        esa_profile prof;
        double hs;
        int dense;
        for (uint32_t run = 0; out && run < o->warmup + o->runs; run++)
            for (uint32_t i = first; i < end; i++) {
                paging_cfg *p = &cfgs[i];
                if (!p->c || p->r->status[0])
                    continue;
                if (!one_step(B, p->c, &p->d, p->r, 1, out, &prof, &hs, &dense)) {
                    snprintf(p->r->status, sizeof p->r->status, "failed: %s", esa_context_last_error(B->ctx));
                    continue;
                }
                if (run < o->warmup)
                    continue;
                double *m = p->ms + (size_t)(run - o->warmup) * (1 + ESA_STAGE_COUNT);
                m[0] = prof.total_ms;
                memcpy(m + 1, prof.stage_ms, sizeof prof.stage_ms);
                p->r->esa_is_dense = dense;
            }
        free(out);
        for (uint32_t i = first; i < end; i++) {
            paging_cfg *p = &cfgs[i];
            result *r = p->r;
            if (p->c && !r->status[0]) {
                double *col = malloc(sizeof(double) * o->runs);
                for (int st = 0; col && st <= ESA_STAGE_COUNT; st++) {
                    for (uint32_t run = 0; run < o->runs; run++)
                        col[run] = p->ms[(size_t)run * (1 + ESA_STAGE_COUNT) + st];
                    *(st ? &r->stage_ms[st - 1] : &r->ms) = median(col, o->runs);
                }
                free(col);
                r->runs = o->runs;
                stage_bytes(sh, &p->d, N, 1, r->esa_is_dense, r->stage_bytes);
                for (int st = 0; st < ESA_STAGE_COUNT; st++)
                    r->stage_bytes[st] *= r->layers;
                esa_cache_memory_usage(p->c, &r->mem);
                r->kv_read = r->mem.kv_read;
                r->device_mib = (double)r->mem.device_bytes / MiB;
                snprintf(r->status, sizeof r->status, "ok");
                fprintf(stderr, "  %s N=%u %s: ESA decode %.2f ms; device %.1f MiB (%llu pages), host %.1f MiB (%llu "
                                "pages); filled in %.0f s%s\n", sh->name, N,
                        r->paged ? READ_NAME[r->kv_read] : "all on device", r->ms, r->device_mib,
                        (unsigned long long)r->mem.device_pages, (double)r->mem.host_bytes / MiB,
                        (unsigned long long)r->mem.host_pages, r->fill_s, group > 1 ? ", side by side" : "");
            }
            r->group = group > 1 ? (int)first + 1 : 0;
            esa_cache_destroy(p->c);
            free(p->ms);
        }
        first = end;
    }
}

/* Top-k alone: one ESA decode step of a one-layer cache whose middle holds lm tokens (a small
 * head shape, so the scores dominate), timed per stage; its cost in reads of the scores is the
 * top-k time over the time the probe needs to read lm 4-byte keys. */
static void run_topk(bench *B)
{
    static const shape tiny = {"topk", 1, 1, 1, 32, 10000.0f, 16};
    uint32_t lm = B->o.topk_lm;
    esa_cache_desc d = cache_desc(&tiny, 1, lm + 128 + 4096 + 8, 512);
    esa_cache *c = NULL;
    snprintf(B->topk_status, sizeof B->topk_status, "ok");
    if (!check(B->ctx, esa_cache_create(B->ctx, &d, &c), "esa_cache_create (top-k)") ||
        !check(B->ctx, esa_cache_get_desc(c, &d), "esa_cache_get_desc") || !set_matrices(B, c, &d) ||
        !fill(B, c, &d, "top-k", lm + 128 + 4096)) {
        snprintf(B->topk_status, sizeof B->topk_status, "failed: %s", esa_context_last_error(B->ctx));
        esa_cache_destroy(c);
        return;
    }
    result r = {.method = METHOD_ESA, .n_ctx = lm + 128 + 4096, .layers = 1, .layers_run = 1, .resident = 1};
    uint32_t runs = B->o.runs;
    double *t = malloc(sizeof(double) * runs * 3);
    float out[32];
    esa_profile p;
    double hs;
    int dense;
    int ok = t != NULL;
    for (uint32_t i = 0; ok && i < B->o.warmup + runs; i++) {
        ok = one_step(B, c, &d, &r, 1, out, &p, &hs, &dense);
        if (ok && i >= B->o.warmup) {
            t[i - B->o.warmup] = p.stage_ms[ESA_STAGE_TOPK];
            t[runs + i - B->o.warmup] = p.stage_ms[ESA_STAGE_PROXIMITY];
            t[2 * runs + i - B->o.warmup] = p.stage_ms[ESA_STAGE_SCORE];
        }
    }
    if (ok) {
        B->topk_ms = median(t, runs);
        B->topk_prox_ms = median(t + runs, runs);
        B->topk_score_ms = median(t + 2 * runs, runs);
        B->topk_lm_done = lm;
        double read_ms = (double)lm * 4 / (B->probe_gbps * 1e9) * 1e3;
        B->topk_reads = B->topk_ms / read_ms;
        fprintf(stderr, "  top-k 2048 of %u scores: %.3f ms (%.2f reads of the scores at the probe's bandwidth; "
                        "proximity + first histogram %.3f ms; scores (d' %u) %.3f ms)\n", lm, B->topk_ms, B->topk_reads,
                B->topk_prox_ms, d.compress_dim, B->topk_score_ms);
    } else {
        snprintf(B->topk_status, sizeof B->topk_status, "failed: %s", esa_context_last_error(B->ctx));
    }
    free(t);
    esa_cache_destroy(c);
}

/* ------------------------------------------------------------------------------------------ */
/* Output                                                                                      */

static FILE *open_out(const bench *B, const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", B->o.out_dir, name);
    FILE *f = fopen(path, "w");
    if (!f)
        fprintf(stderr, "esa-bench: cannot write %s: %s\n", path, strerror(errno));
    return f;
}

/* The result with the same shape, N and mode measured by the other method, or NULL. */
static const result *partner(const bench *B, const result *r)
{
    for (uint32_t i = 0; i < B->n_res; i++) {
        const result *x = &B->res[i];
        if (x->shape == r->shape && x->n_ctx == r->n_ctx && x->mode == r->mode && x->method != r->method &&
            !strcmp(x->status, "ok"))
            return x;
    }
    return NULL;
}

static double selection_ms(const result *r)
{
    return r->stage_ms[ESA_STAGE_COMPRESS] + r->stage_ms[ESA_STAGE_SCORE] + r->stage_ms[ESA_STAGE_PROXIMITY] +
           r->stage_ms[ESA_STAGE_TOPK];
}

/* A JSON string body: quotes, backslashes and control characters escaped. */
static const char *js(const char *s)
{
    static char buf[4][1024];
    static int turn;
    char *o = buf[turn++ & 3];
    size_t j = 0;
    for (; *s && j + 7 < sizeof buf[0]; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            o[j++] = '\\', o[j++] = (char)ch;
        else if (ch < 0x20)
            j += (size_t)snprintf(o + j, 7, "\\u%04x", ch);
        else
            o[j++] = (char)ch;
    }
    o[j] = 0;
    return o;
}

static void write_json(const bench *B, const char *cmdline, const char *date)
{
    FILE *f = open_out(B, "results.json");
    if (!f)
        return;
    fprintf(f, "{\n  \"tool\": \"esa-bench\",\n  \"version\": \"%s\",\n  \"date\": \"%s\",\n", esa_version_string(), date);
    fprintf(f, "  \"command\": \"%s\",\n", js(cmdline));
    fprintf(f, "  \"device\": {\"name\": \"%s\", \"driver\": \"%s\", \"driver_info\": \"%s\", \"subgroup\": %u, "
               "\"device_local_mib\": %.0f, \"kernels\": \"%s\"},\n",
            js(B->info.name), js(B->info.driver_name), js(B->info.driver_info), B->info.subgroup_size,
            (double)B->info.device_local_bytes / 1048576.0, tuning_name(B));
    fprintf(f, "  \"read_bandwidth_gbps\": %.4f,\n  \"host_peak_rss_mib\": %.1f,\n", B->probe_gbps,
            rss_peak_kib() / 1024.0);
    fprintf(f, "  \"topk\": {\"k\": 2048, \"scores\": %u, \"status\": \"%s\", \"topk_ms\": %.6f, \"proximity_ms\": %.6f, \"score_ms\": %.6f, "
               "\"reads_of_scores\": %.3f, \"full_key_reads_by_design\": %.0f},\n",
            B->topk_lm_done, js(B->topk_status), B->topk_ms, B->topk_prox_ms, B->topk_score_ms, B->topk_reads, TOPK_KEY_READS);
    fprintf(f, "  \"results\": [\n");
    for (uint32_t i = 0; i < B->n_res; i++) {
        const result *r = &B->res[i];
        const result *o = partner(B, r);
        fprintf(f, "    {\"shape\": \"%s\", \"layers\": %u, \"layers_run\": %u, \"resident_layers\": %u, "
                   "\"n_ctx\": %u, \"mode\": \"%s\", \"method\": \"%s\", \"status\": \"%s\"",
                SHAPES[r->shape].name, r->layers, r->layers_run, r->resident, r->n_ctx, MODE_NAME[r->mode],
                METHOD_NAME[r->method], js(r->status));
        if (!strcmp(r->status, "ok")) {
            fprintf(f, ", \"runs\": %u, \"scaled_to_all_layers\": %s, \"esa_ran_dense\": %s, \"median_ms\": %.6f, "
                       "\"host_ms\": %.6f",
                    r->runs, r->layers_run < r->layers ? "true" : "false", r->esa_is_dense ? "true" : "false", r->ms,
                    r->host_ms);
            if (o && r->method == METHOD_ESA)
                fprintf(f, ", \"dense_over_esa\": %.4f", o->ms / r->ms);
            fprintf(f, ", \"stages\": {");
            for (int s = 0; s < ESA_STAGE_COUNT; s++) {
                double frac = r->stage_ms[s] > 0 ? r->stage_bytes[s] / (r->stage_ms[s] * 1e-3) / (B->probe_gbps * 1e9) : 0;
                fprintf(f, "%s\"%s\": {\"ms\": %.6f, \"bytes\": %.0f, \"of_probe\": %.4f}", s ? ", " : "",
                        esa_stage_name((esa_stage)s), r->stage_ms[s], r->stage_bytes[s], frac);
            }
            fprintf(f, "}");
        }
        if (B->o.kv_budget_mib > 0)
            fprintf(f, ", \"paged\": %s, \"kv_device_budget_mib\": %.1f, \"kv_read\": \"%s\", \"device_bytes\": %llu, "
                       "\"host_bytes\": %llu, \"device_pages\": %llu, \"host_pages\": %llu, \"page_bytes\": %llu, "
                       "\"fill_s\": %.1f, \"side_by_side_group\": %d",
                    r->paged ? "true" : "false", r->paged ? B->o.kv_budget_mib : 0.0, READ_NAME[r->kv_read],
                    (unsigned long long)r->mem.device_bytes, (unsigned long long)r->mem.host_bytes,
                    (unsigned long long)r->mem.device_pages, (unsigned long long)r->mem.host_pages,
                    (unsigned long long)r->mem.page_bytes, r->fill_s, r->group);
        fprintf(f, ", \"device_mib\": %.1f, \"all_layers_kv_mib\": %.1f}%s\n", r->device_mib, r->full_kv_mib,
                i + 1 < B->n_res ? "," : "");
    }
    fprintf(f, "  ]\n}\n");
    fclose(f);
}

static void write_csv(const bench *B)
{
    FILE *f = open_out(B, "results.csv");
    if (!f)
        return;
    fprintf(f, "shape,layers,layers_run,resident_layers,n_ctx,mode,method,status,runs,median_ms,host_ms");
    for (int s = 0; s < ESA_STAGE_COUNT; s++)
        fprintf(f, ",%s_ms,%s_bytes", esa_stage_name((esa_stage)s), esa_stage_name((esa_stage)s));
    fprintf(f, ",device_mib,all_layers_kv_mib,paged,kv_read,device_bytes,host_bytes\n");
    for (uint32_t i = 0; i < B->n_res; i++) {
        const result *r = &B->res[i];
        fprintf(f, "%s,%u,%u,%u,%u,%s,%s,\"%s\",%u,%.6f,%.6f", SHAPES[r->shape].name, r->layers, r->layers_run,
                r->resident, r->n_ctx, MODE_NAME[r->mode], METHOD_NAME[r->method], r->status, r->runs, r->ms,
                r->host_ms);
        for (int s = 0; s < ESA_STAGE_COUNT; s++)
            fprintf(f, ",%.6f,%.0f", r->stage_ms[s], r->stage_bytes[s]);
        fprintf(f, ",%.1f,%.1f,%d,%s,%llu,%llu\n", r->device_mib, r->full_kv_mib, r->paged, READ_NAME[r->kv_read],
                (unsigned long long)r->mem.device_bytes, (unsigned long long)r->mem.host_bytes);
    }
    fclose(f);
}

/* The paging experiment: each placement against every page on the device, same shape and N. */
static void write_paging_table(const bench *B, FILE *f)
{
    fprintf(f, "| shape | N | K/V pages | read | ESA decode ms | / all on device | device MiB | host MiB | pages "
               "device / host | ESA stages ms (compress/score/proximity/top-k/attention/merge) | measured |\n");
    fprintf(f, "|---|---:|---|---|---:|---:|---:|---:|---:|---|---|\n");
    for (uint32_t i = 0; i < B->n_res; i++) {
        const result *r = &B->res[i], *base = NULL;
        for (uint32_t j = 0; j < B->n_res; j++)
            if (B->res[j].shape == r->shape && B->res[j].n_ctx == r->n_ctx && !B->res[j].paged &&
                !strcmp(B->res[j].status, "ok"))
                base = &B->res[j];
        char where[64];
        if (r->paged)
            snprintf(where, sizeof where, "%.0f MiB device budget", B->o.kv_budget_mib);
        else
            snprintf(where, sizeof where, "all on the device");
        fprintf(f, "| %s | %u | %s | %s | ", SHAPES[r->shape].name, r->n_ctx, where,
                r->paged ? READ_NAME[r->kv_read] : "-");
        if (strcmp(r->status, "ok")) {
            fprintf(f, "%s | - | - | - | - | - | - |\n", r->status);
            continue;
        }
        fprintf(f, "%.2f | ", r->ms);
        if (base)
            fprintf(f, "%.2fx | ", r->ms / base->ms);
        else
            fprintf(f, "- | ");
        fprintf(f, "%.1f | %.1f | %llu / %llu | %.2f/%.2f/%.2f/%.2f/%.2f/%.2f | ", r->device_mib,
                (double)r->mem.host_bytes / 1048576.0, (unsigned long long)r->mem.device_pages,
                (unsigned long long)r->mem.host_pages, r->stage_ms[ESA_STAGE_COMPRESS], r->stage_ms[ESA_STAGE_SCORE],
                r->stage_ms[ESA_STAGE_PROXIMITY], r->stage_ms[ESA_STAGE_TOPK], r->stage_ms[ESA_STAGE_ATTENTION],
                r->stage_ms[ESA_STAGE_MERGE]);
        if (r->group)
            fprintf(f, "side by side (group %d) |\n", r->group);
        else
            fprintf(f, "alone |\n");
    }
    fprintf(f, "\nTimes are medians of the device time (timestamps) of one ESA decode step over all layers, "
               "each layer truncated back to N after its step. \"device MiB\" is everything the cache holds on "
               "the device (K/V pages, compressed keys, page tables, step scratch); \"host MiB\" its K/V pages in "
               "host memory. \"direct\": the attention reads selected rows in host pages where they are; "
               "\"copy\": they are gathered into device memory first. \"side by side\": the caches of a group "
               "were all held at once and their runs interleaved; \"alone\": memory allowed one at a time.\n");
}

static void write_markdown(const bench *B, const char *cmdline, const char *date)
{
    FILE *f = open_out(B, "results.md");
    if (!f)
        return;
    fprintf(f, "esa-bench on **%s** (%s, %s kernels), %s. Command: `%s`. Read-bandwidth probe: %.2f GB/s.\n\n",
            B->info.name, B->info.driver_info, tuning_name(B), date, cmdline, B->probe_gbps);
    for (int si = 0; si < N_SHAPES; si++)
        if (B->o.shapes >> si & 1)
            fprintf(f, "%s: %u layers, H %u, G %u, d %u, d' %u. ", SHAPES[si].name, SHAPES[si].layers, SHAPES[si].H,
                    SHAPES[si].G, SHAPES[si].d, SHAPES[si].dc);
    fprintf(f, "ESA-SPEC defaults otherwise: l_I 128, l_L 4096, k 2048, radius 1; prefill chunk %u.\n\n", B->o.chunk);
    if (B->o.kv_budget_mib > 0) {
        write_paging_table(B, f);
        fclose(f);
        return;
    }
    fprintf(f, "| shape | N | step | dense ms | ESA ms | dense/ESA | selection share | ESA stages ms "
               "(compress/score/proximity/top-k/attention/merge) | memory MiB (held / all layers) |\n");
    fprintf(f, "|---|---:|---|---:|---:|---:|---:|---|---:|\n");
    for (uint32_t i = 0; i < B->n_res; i++) {
        const result *e = &B->res[i];
        if (e->method != METHOD_ESA)
            continue;
        const result *dn = NULL;
        for (uint32_t j = 0; j < B->n_res; j++)
            if (B->res[j].shape == e->shape && B->res[j].n_ctx == e->n_ctx && B->res[j].mode == e->mode &&
                B->res[j].method == METHOD_DENSE)
                dn = &B->res[j];
        int eok = !strcmp(e->status, "ok"), dok = dn && !strcmp(dn->status, "ok");
        fprintf(f, "| %s%s | %u | %s | ", SHAPES[e->shape].name, e->layers_run < e->layers ? " (scaled)" : "",
                e->n_ctx, MODE_NAME[e->mode]);
        if (dok)
            fprintf(f, "%.2f | ", dn->ms);
        else
            fprintf(f, "%s | ", dn ? dn->status : "-");
        if (eok)
            fprintf(f, "%.2f%s | ", e->ms, e->esa_is_dense ? " (ran dense)" : "");
        else
            fprintf(f, "%s | ", e->status);
        if (eok && dok)
            fprintf(f, "%.2fx | ", dn->ms / e->ms);
        else
            fprintf(f, "- | ");
        if (eok && e->ms > 0)
            fprintf(f, "%.0f%% | %.2f/%.2f/%.2f/%.2f/%.2f/%.2f | ", 100.0 * selection_ms(e) / e->ms,
                    e->stage_ms[ESA_STAGE_COMPRESS], e->stage_ms[ESA_STAGE_SCORE], e->stage_ms[ESA_STAGE_PROXIMITY],
                    e->stage_ms[ESA_STAGE_TOPK], e->stage_ms[ESA_STAGE_ATTENTION], e->stage_ms[ESA_STAGE_MERGE]);
        else
            fprintf(f, "- | - | ");
        fprintf(f, "%.0f / %.0f |\n", e->device_mib, e->full_kv_mib);
    }
    if (B->topk_lm_done)
        fprintf(f, "\nTop-k (k = 2048) of %u scores: %.3f ms, %.2f reads of the scores at the probe's bandwidth "
                   "(%.0f full reads of the keys by design); proximity with the first histogram: %.3f ms; "
                   "the scores themselves (d' 16): %.3f ms.\n",
                B->topk_lm_done, B->topk_ms, B->topk_reads, TOPK_KEY_READS, B->topk_prox_ms, B->topk_score_ms);
    else
        fprintf(f, "\nTop-k alone: %s.\n", B->o.topk_lm ? B->topk_status : "not run");
    fprintf(f, "\nTimes are medians of the device time (timestamps) of one step over all layers; at each "
               "point the dense and ESA runs alternate, so a slow phase of the machine slows both. "
               "\"selection share\" is compress + score + proximity + top-k over the ESA step. "
               "\"(scaled)\": fewer layers were run and the time multiplied up.\n");
    fclose(f);
}

/* gnuplot: time against N (log-log) per shape, and ESA decode's stages per N. */
static void write_plots(const bench *B)
{
    for (int si = 0; si < N_SHAPES; si++) {
        if (!(B->o.shapes >> si & 1))
            continue;
        char name[128];
        snprintf(name, sizeof name, "%s.dat", SHAPES[si].name);
        FILE *f = open_out(B, name);
        if (!f)
            return;
        fprintf(f, "# N dense_decode esa_decode dense_prefill esa_prefill | esa decode stages: "
                   "append compress score proximity topk attention merge\n");
        for (uint32_t k = 0; k < B->o.n_ns; k++) {
            double v[4] = {NAN, NAN, NAN, NAN}, st[ESA_STAGE_COUNT] = {0};
            for (uint32_t i = 0; i < B->n_res; i++) {
                const result *r = &B->res[i];
                if (r->shape != si || r->n_ctx != B->o.ns[k] || strcmp(r->status, "ok"))
                    continue;
                v[r->mode * 2 + r->method] = r->ms;
                if (r->mode == MODE_DECODE && r->method == METHOD_ESA)
                    memcpy(st, r->stage_ms, sizeof st);
            }
            fprintf(f, "%u", B->o.ns[k]);
            for (int j = 0; j < 4; j++)
                isnan(v[j]) ? fprintf(f, " NaN") : fprintf(f, " %.6f", v[j]);
            for (int s = 0; s < ESA_STAGE_COUNT; s++)
                fprintf(f, " %.6f", st[s]);
            fprintf(f, "\n");
        }
        fclose(f);
    }
    FILE *g = open_out(B, "plots.gp");
    if (!g)
        return;
    fprintf(g, "set terminal png size 900,600\nset grid\nset key top left\n");
    for (int si = 0; si < N_SHAPES; si++) {
        if (!(B->o.shapes >> si & 1))
            continue;
        const char *n = SHAPES[si].name;
        fprintf(g, "set output '%s_time.png'\nset title '%s, all layers: attention time against context (%s)'\n"
                   "set logscale xy 2\nset xlabel 'cached tokens N'\nset ylabel 'device ms per step'\nset style data linespoints\n"
                   "plot '%s.dat' using 1:2 title 'dense decode', '' using 1:3 title 'ESA decode', "
                   "'' using 1:4 title 'dense prefill chunk', '' using 1:5 title 'ESA prefill chunk'\n",
                n, n, B->info.name, n);
        fprintf(g, "set output '%s_stages.png'\nset title '%s: ESA decode step by stage (%s)'\nunset logscale\n"
                   "set style data histograms\nset style histogram rowstacked\nset style fill solid 0.8 border -1\n"
                   "set boxwidth 0.7\nset xlabel 'cached tokens N'\nset ylabel 'device ms per step'\nset key outside right\n"
                   "plot '%s.dat' using 6:xtic(1) title 'append'",
                n, n, B->info.name, n);
        static const char *const st[] = {"compress", "score", "proximity", "top-k", "attention", "merge"};
        for (int s = 0; s < 6; s++)
            fprintf(g, ", '' using %d title '%s'", 7 + s, st[s]);
        fprintf(g, "\nset key top left\nunset style\n");
    }
    fclose(g);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "cd '%s' && gnuplot plots.gp", B->o.out_dir);
    if (system("command -v gnuplot >/dev/null 2>&1") != 0)
        fprintf(stderr, "esa-bench: gnuplot not found: no PNG plots (apt-get install gnuplot-nox); data and "
                        "script are in %s\n", B->o.out_dir);
    else if (system(cmd) != 0)
        fprintf(stderr, "esa-bench: gnuplot failed on %s/plots.gp\n", B->o.out_dir);
}

int main(int argc, char **argv)
{
    bench *B = calloc(1, sizeof *B);
    if (!B || !parse_options(argc, argv, &B->o))
        return 2;
    char cmdline[512] = "esa-bench";
    for (int i = 1; i < argc; i++) {
        size_t len = strlen(cmdline);
        snprintf(cmdline + len, sizeof cmdline - len, " %s", argv[i]);
    }
    char date[32];
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&now));
    if (mkdir(B->o.out_dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "esa-bench: cannot create %s: %s\n", B->o.out_dir, strerror(errno));
        return 1;
    }
    char why[512] = "";
    esa_context_desc cd = {.error_message = why, .error_message_size = sizeof why,
                           .enable_validation = B->o.validate, .print_validation = B->o.validate,
                           .tuning = B->o.tuning};
    tool_device_request(B->o.device, &cd);
    esa_status s = esa_context_create(&cd, &B->ctx);
    if (s != ESA_SUCCESS) {
        fprintf(stderr, "esa-bench: esa_context_create: %s\n  %s\n", esa_status_string(s), why);
        return 1;
    }
    esa_context_device_info(B->ctx, &B->info);
    if (!check(B->ctx, esa_context_set_profiling(B->ctx, 1), "timestamps")) {
        esa_context_destroy(B->ctx);
        return 1;
    }
    fprintf(stderr, "esa-bench on %s (%s), %s kernels\n", B->info.name, B->info.driver_info, tuning_name(B));
    B->rng = 0x2545f4914f6cdd1dull;
    B->tty = isatty(2);
    B->pool_len = (size_t)1 << 24;
    B->pool = malloc(B->pool_len * sizeof *B->pool);
    if (!B->pool) {
        fprintf(stderr, "esa-bench: out of host memory\n");
        return 1;
    }
    for (size_t i = 0; i < B->pool_len; i++) { /* roughly normal: a sum of four uniforms */
        uint64_t x = rng_next(&B->rng);
        float u = (float)((x & 0xffff) + (x >> 16 & 0xffff) + (x >> 32 & 0xffff) + (x >> 48)) / 65536.0f - 2.0f;
        B->pool[i] = half_of(u * 1.7f);
    }
    uint64_t probe_bytes = B->o.quick ? 64ull << 20 : 256ull << 20;
    if (probe_bytes > B->info.max_memory_allocation_size / 2)
        probe_bytes = B->info.max_memory_allocation_size / 2;
    if (!check(B->ctx, esa_context_probe_bandwidth(B->ctx, probe_bytes, 5, &B->probe_gbps), "bandwidth probe"))
        return 1;
    fprintf(stderr, "  read bandwidth probe (%llu MiB): %.2f GB/s\n", (unsigned long long)(probe_bytes >> 20),
            B->probe_gbps);
    double t0 = now_s();
    for (int si = 0; si < N_SHAPES; si++)
        if (B->o.shapes >> si & 1)
            for (uint32_t k = 0; k < B->o.n_ns; k++)
                (B->o.kv_budget_mib > 0 ? run_paging : run_point)(B, si, B->o.ns[k]);
    if (B->o.topk_lm)
        run_topk(B);
    write_json(B, cmdline, date);
    write_csv(B);
    write_markdown(B, cmdline, date);
    if (B->o.plots && !(B->o.kv_budget_mib > 0))
        write_plots(B);
    uint32_t v = esa_context_validation_count(B->ctx);
    if (v == UINT32_MAX)
        fprintf(stderr, "esa-bench: --validate: the validation layer is not installed\n");
    else if (v)
        fprintf(stderr, "esa-bench: %u validation messages\n", v);
    fprintf(stderr, "esa-bench: %u points in %.0f s; results in %s/ (results.json, results.csv, results.md%s)\n",
            B->n_res, now_s() - t0, B->o.out_dir, B->o.plots ? ", *.png" : "");
    tool_print_file(B->o.out_dir, "results.md");
    esa_context_destroy(B->ctx);
    free(B->pool);
    free(B);
    return v ? 1 : 0;
}
