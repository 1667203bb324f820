/* kernel_bench.c - esa-kernel-bench: throughput of the model's matrix products on this device,
 * for the SmolLM2-135M shapes, by device timestamps. A measurement, not a test.
 *
 * For each weight shape it times y = W x for T = 1 (the matvec path: decode) and T = --tokens
 * (the tiled path: prefill), --runs times after --warmup, and prints the median and the
 * fastest run as GB/s of weights read and GFLOP/s (2 rows cols T per product). Consecutive
 * runs read different copies of W, --cold-mib in all, so the weights come from memory, not
 * from a cache that a whole forward pass would overflow (--cold-mib 0: one copy, hot).
 * Weights are random blocks with sane scales (the values do not change the work). With the
 * esa-vk context it also reports the library's read-bandwidth probe on the same device, the
 * bound a streaming kernel is measured against. */
#include "kernels.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct shape {
    const char *name;
    uint32_t rows, cols, type;
} shape;

/* SmolLM2-135M: embedding 576, FFN 1536, 9 query / 3 KV heads of 64, vocabulary 49152 */
static const shape SHAPES[] = {
    {"attn_q/attn_output", 576, 576, ESAG_TYPE_Q4_1},
    {"attn_k/attn_v", 192, 576, ESAG_TYPE_Q4_1},
    {"ffn_gate/ffn_up", 1536, 576, ESAG_TYPE_Q4_1},
    {"ffn_down", 576, 1536, ESAG_TYPE_Q4_1},
    {"output (token_embd)", 49152, 576, ESAG_TYPE_Q8_0},
};
enum { N_SHAPES = sizeof SHAPES / sizeof SHAPES[0] };

typedef struct options {
    const char *device;
    uint32_t runs, warmup, tokens, cold_mib, probe;
    esag_tuning tuning;
    int paths; /* bit 0: matvec at T = 1, bit 1: tiled at T = tokens */
    uint32_t shapes; /* bit i: SHAPES[i] */
} options;

static const char *type_name(uint32_t t)
{
    return t == ESAG_TYPE_F32 ? "F32" : t == ESAG_TYPE_F16 ? "F16" : t == ESAG_TYPE_Q4_1 ? "Q4_1" : "Q8_0";
}

static uint64_t g_rng = 0x2545F4914F6CDD1Dull;
static uint32_t rnd(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng >> 16);
}

/* Random blocks of `type` whose f16 scales are small and finite. */
static void fill_weights(uint8_t *w, uint64_t bytes, uint32_t type)
{
    for (uint64_t i = 0; i < bytes; i++)
        w[i] = (uint8_t)rnd();
    uint32_t block = type == ESAG_TYPE_Q4_1 ? 20 : type == ESAG_TYPE_Q8_0 ? 34 : 0;
    if (type == ESAG_TYPE_F16) /* halves with exponents near 2^-6 */
        for (uint64_t i = 1; i < bytes; i += 2)
            w[i] = (uint8_t)((w[i] & 0x83u) | 0x24u);
    for (uint64_t b = 0; block && b + block <= bytes; b += block) {
        w[b] = 0x1f, w[b + 1] = 0x21; /* d = 0.0101 */
        if (type == ESAG_TYPE_Q4_1)
            w[b + 2] = 0x1f, w[b + 3] = 0xa5; /* m = -0.0757 */
    }
    if (type == ESAG_TYPE_F32)
        for (uint64_t i = 0; i + 4 <= bytes; i += 4) {
            float f = (float)(rnd() % 2001) * 1e-5f - 0.01f;
            memcpy(w + i, &f, 4);
        }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Times `runs` products of one shape and path; *median_ms, *min_ms. 0 on success. */
static int measure(esag_rt *rt, esag_kernels *k, const shape *s, uint32_t T, esag_matmul_path path,
                   const options *o, double *median_ms, double *min_ms)
{
    uint64_t wbytes = esag_tensor_bytes(s->type, s->rows, s->cols);
    uint64_t stride = (wbytes + 255) & ~255ull;
    uint64_t copies = o->cold_mib ? ((uint64_t)o->cold_mib << 20) / stride + 1 : 1;
    if (copies > o->runs + o->warmup)
        copies = o->runs + o->warmup;
    esag_buffer bw = {0}, bx = {0}, by = {0};
    uint8_t *host = malloc(wbytes);
    float *x = malloc(sizeof(float) * T * s->cols);
    int ok = host && x;
    if (ok) {
        for (uint64_t i = 0; i < (uint64_t)T * s->cols; i++)
            x[i] = (float)(rnd() % 2001) * 1e-3f - 1.0f;
        ok = esag_buffer_create(rt, stride * copies, ESAG_MEM_DEVICE, &bw) == ESAG_OK &&
             esag_buffer_create(rt, sizeof(float) * T * s->cols, ESAG_MEM_DEVICE, &bx) == ESAG_OK &&
             esag_buffer_create(rt, sizeof(float) * T * s->rows, ESAG_MEM_DEVICE, &by) == ESAG_OK &&
             esag_buffer_write(rt, &bx, 0, x, sizeof(float) * T * s->cols) == ESAG_OK;
    }
    for (uint64_t c = 0; ok && c < copies; c++) {
        fill_weights(host, wbytes, s->type);
        ok = esag_buffer_write(rt, &bw, c * stride, host, wbytes) == ESAG_OK;
    }
    uint32_t n = o->warmup + o->runs;
    VkCommandBuffer cb;
    ok = ok && esag_begin(rt, &cb) == ESAG_OK && esag_cmd_reset_timestamps(rt, cb, o->runs + 1) == ESAG_OK;
    for (uint32_t i = 0; ok && i < n; i++) {
        if (i == o->warmup)
            esag_cmd_timestamp(rt, cb, 0);
        esag_matmul_args a = {
            .w = {.data = bw.address + (i % copies) * stride, .type = s->type, .rows = s->rows, .cols = s->cols},
            .x = bx.address, .y = by.address, .T = T, .path = path};
        ok = esag_cmd_matmul(k, cb, &a) == ESAG_OK;
        esag_cmd_barrier(rt, cb);
        if (i >= o->warmup)
            esag_cmd_timestamp(rt, cb, i - o->warmup + 1);
    }
    double ns[ESAG_MAX_TIMESTAMPS], ms[ESAG_MAX_TIMESTAMPS];
    ok = ok && esag_submit_wait(rt) == ESAG_OK && esag_read_timestamps(rt, o->runs + 1, ns) == ESAG_OK;
    if (ok) {
        for (uint32_t i = 0; i < o->runs; i++)
            ms[i] = (ns[i + 1] - ns[i]) * 1e-6;
        qsort(ms, o->runs, sizeof ms[0], cmp_double);
        *median_ms = o->runs % 2 ? ms[o->runs / 2] : 0.5 * (ms[o->runs / 2 - 1] + ms[o->runs / 2]);
        *min_ms = ms[0];
    } else {
        fprintf(stderr, "esa-kernel-bench: %s: %s\n", s->name, esag_rt_last_error(rt));
    }
    esag_buffer_destroy(rt, &bw);
    esag_buffer_destroy(rt, &bx);
    esag_buffer_destroy(rt, &by);
    free(host);
    free(x);
    return ok ? 0 : 1;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: esa-kernel-bench [--device NAME] [--runs N] [--warmup N] [--tokens T] [--cold-mib M]\n"
            "                        [--paths vec|tiled|both] [--no-probe] [--tuning k=v,...]\n"
            "  --runs N      timed runs per point, the median is reported (default 7, 3..255)\n"
            "  --tokens T    tokens of the tiled (prefill) product (default 512)\n"
            "  --cold-mib M  weights cycled per point so that runs miss the caches (default 64; 0: hot)\n"
            "  --shapes LIST the shapes to measure, by index (0..%d) separated by commas (default all)\n"
            "  --tuning      override the device profile: wg, mv_wg, mv_rows, mv_split (1 units, 2 blocks),\n"
            "                mm_bm, mm_bn, mm_tm, mm_tn, mm_split, mm_words (1 32-bit, 2 64-bit)\n",
            N_SHAPES - 1);
}

static int parse_tuning(char *arg, esag_tuning *t)
{
    for (char *tok = strtok(arg, ","); tok; tok = strtok(NULL, ",")) {
        unsigned v;
        char key[32];
        if (sscanf(tok, "%31[a-z_]=%u", key, &v) != 2)
            return 0;
        uint32_t *f = !strcmp(key, "wg") ? &t->wg : !strcmp(key, "mv_wg") ? &t->mv_wg
                    : !strcmp(key, "mv_rows") ? &t->mv_rows : !strcmp(key, "mm_bm") ? &t->mm_bm
                    : !strcmp(key, "mm_bn") ? &t->mm_bn : !strcmp(key, "mm_tm") ? &t->mm_tm
                    : !strcmp(key, "mm_tn") ? &t->mm_tn : !strcmp(key, "mv_split") ? &t->mv_split
                    : !strcmp(key, "mm_split") ? &t->mm_split : !strcmp(key, "mm_words") ? &t->mm_words : NULL;
        if (!f)
            return 0;
        *f = v;
    }
    return 1;
}

int main(int argc, char **argv)
{
    options o = {.runs = 7, .warmup = 1, .tokens = 512, .cold_mib = 64, .probe = 1, .paths = 3,
                 .shapes = (1u << N_SHAPES) - 1};
    static const struct option longs[] = {
        {"device", required_argument, 0, 'd'}, {"runs", required_argument, 0, 'r'},
        {"warmup", required_argument, 0, 'w'}, {"tokens", required_argument, 0, 't'},
        {"cold-mib", required_argument, 0, 'c'}, {"paths", required_argument, 0, 'p'},
        {"no-probe", no_argument, 0, 'n'}, {"tuning", required_argument, 0, 'u'},
        {"shapes", required_argument, 0, 's'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (c) {
        case 'd': o.device = optarg; break;
        case 'r': o.runs = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'w': o.warmup = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 't': o.tokens = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'c': o.cold_mib = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'n': o.probe = 0; break;
        case 's':
            o.shapes = 0;
            for (char *tok = strtok(optarg, ","); tok; tok = strtok(NULL, ","))
                o.shapes |= (uint32_t)atoi(tok) < N_SHAPES ? 1u << atoi(tok) : 1u << 31;
            break;
        case 'p':
            o.paths = !strcmp(optarg, "vec") ? 1 : !strcmp(optarg, "tiled") ? 2 : !strcmp(optarg, "both") ? 3 : 0;
            break;
        case 'u':
            if (!parse_tuning(optarg, &o.tuning)) {
                usage();
                return 2;
            }
            break;
        default: usage(); return c == 'h' ? 0 : 2;
        }
    }
    if (o.runs < 3 || o.runs + 1 > ESAG_MAX_TIMESTAMPS || o.tokens < 2 || !o.paths || !o.shapes ||
        o.shapes >> N_SHAPES || optind != argc) {
        usage();
        return 2;
    }
    char msg[512] = "";
    esag_rt_desc d = {.device_name = o.device, .without_attention = !o.probe, .error_message = msg,
                      .error_message_size = sizeof msg};
    esag_rt *rt = NULL;
    if (esag_rt_create(&d, &rt) != ESAG_OK) {
        fprintf(stderr, "esa-kernel-bench: %s\n", msg);
        return 1;
    }
    const esag_device_info *di = esag_rt_device_info(rt);
    if (di->timestamp_period_ns <= 0.0f) {
        fprintf(stderr, "esa-kernel-bench: %s writes no timestamps\n", di->name);
        esag_rt_destroy(rt);
        return 1;
    }
    esag_kernels *k = NULL;
    if (esag_kernels_create(rt, &o.tuning, &k) != ESAG_OK) {
        fprintf(stderr, "esa-kernel-bench: %s\n", esag_rt_last_error(rt));
        esag_rt_destroy(rt);
        return 1;
    }
    esag_tuning t;
    const char *profile;
    esag_kernels_tuning(k, &t, &profile);
    static const char *const split[3] = {"?", "units", "blocks"};
    printf("device: %s, subgroup %u; profile %s\n", di->name, di->subgroup_size, profile);
    printf("matvec: %u invocations x %u rows, split by %s; matmul: %u x %u tiles of %u x %u, split by %s, "
           "%u-bit shared loads\n", t.mv_wg, t.mv_rows, split[t.mv_split % 3], t.mm_bm, t.mm_bn, t.mm_tm, t.mm_tn,
           split[t.mm_split % 3], t.mm_words == ESAG_WORDS_64 ? 64 : 32);
    printf("median (fastest) of %u runs after %u warm-up; weights cycled over %u MiB\n", o.runs, o.warmup, o.cold_mib);
    if (o.probe) {
        double gbs = 0.0;
        esa_context *ctx = esag_rt_attention(rt);
        if (esa_context_probe_bandwidth(ctx, 64ull << 20, 5, &gbs) == ESA_SUCCESS)
            printf("read-bandwidth probe (esa-vk, 64 MiB, median of 5): %.2f GB/s\n", gbs);
        else
            printf("read-bandwidth probe failed: %s\n", esa_context_last_error(ctx));
    }
    printf("\n| weights | rows x cols | type | MiB | path | T | ms | GB/s | GFLOP/s |\n");
    printf("|---|---|---|---|---|---|---|---|---|\n");
    int fails = 0;
    for (int p = 0; p < 2; p++) {
        if (!(o.paths >> p & 1))
            continue;
        uint32_t T = p ? o.tokens : 1;
        for (int i = 0; i < N_SHAPES; i++) {
            const shape *s = &SHAPES[i];
            if (!(o.shapes >> i & 1))
                continue;
            double med, best;
            if (measure(rt, k, s, T, p ? ESAG_MATMUL_TILED : ESAG_MATMUL_VEC, &o, &med, &best)) {
                fails++;
                continue;
            }
            double bytes = (double)esag_tensor_bytes(s->type, s->rows, s->cols);
            double flop = 2.0 * s->rows * s->cols * T;
            printf("| %s | %u x %u | %s | %.2f | %s | %u | %.3f (%.3f) | %.2f (%.2f) | %.2f (%.2f) |\n", s->name,
                   s->rows, s->cols, type_name(s->type), bytes / 1048576.0, p ? "tiled" : "matvec", T, med, best,
                   bytes / med * 1e-6, bytes / best * 1e-6, flop / med * 1e-6, flop / best * 1e-6);
            fflush(stdout);
        }
    }
    esag_kernels_destroy(k);
    esag_rt_destroy(rt);
    return fails ? 1 : 0;
}
