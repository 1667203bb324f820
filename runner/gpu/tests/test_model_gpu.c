/* test_model_gpu.c - the device forward pass (model_gpu.c) against the CPU reference (model_ref.c,
 * the spec) and llama.cpp's recorded logits. One program; each part is its own ctest entry:
 *
 *   tiny       the synthetic 2-block Llama of gguf_build.h (head_dim 16, F32 weights; no model
 *              file): logits against the CPU reference (dense, untied and tied head), chunked
 *              calls against one token at a time, truncate and re-run, ESA and window attention
 *              with small parameters, ESA with nothing to drop against dense, compressed scores,
 *              and a call that fails between chunks (the cache keeps the chunks that ran).
 *   args       the tiny model: refused arguments get named statuses and change nothing; esa-vk
 *              refusing the cache is DEVICE naming esa_cache_create.
 *   ref        SmolLM2 (the model file): logits against the CPU reference with fp16 K/V, dense,
 *              on the recorded prompts and a 60-token one.
 *   llama_cpp  SmolLM2: llama.cpp's top logits and greedy argmax rule (logits_ref.h), then a real
 *              greedy decode, one token a call, which must reproduce the recorded continuation
 *              for all 32 tokens on every prompt where the CPU reference's argmax agrees at every
 *              step, and up to the first near tie on the others.
 *   chunks     SmolLM2: a 50-token prefill in chunks of 16 against 50 single-token calls;
 *              truncate and re-run (bit for bit with the same chunk boundaries).
 *   modes      SmolLM2: ESA and window attention on 70 tokens with l_I 4, l_L 32, k 16, chunk 16
 *              (finite logits, decode steps); with k 64 nothing is dropped and ESA equals dense.
 *
 * The model-file parts skip (77) without the file, every part without a device; the validation
 * layer is on and no message is allowed. */
#define _POSIX_C_SOURCE 200809L /* strtok_r, in logits_ref.h */
#include "rgpu_harness.h"

#include "gguf_build.h"
#include "logits_ref.h" /* after the harness: it uses EXPECT */
#include "model_gpu.h"
#include "model_path.h"

/* A runner call that must succeed; prints its message when it does not. */
#define EXPECT_OK(call, errp)                                                                  \
    do {                                                                                       \
        esar_status s_ = (call);                                                               \
        EXPECT(s_ == ESAR_OK, "%s: %s: %s", #call, esar_status_string(s_), (errp)->msg);       \
    } while (0)

#ifndef ESA_SOURCE_DIR
#define ESA_SOURCE_DIR "."
#endif

/* GPU against CPU reference, max |logit difference|. The weights are the same quantized values;
 * what differs is float sums in other orders on the device against double on the CPU, and where
 * K is rounded to fp16: the CPU reference (kv_f16) caches K after RoPE as llama.cpp does, esa-vk
 * before it (it rotates as it attends), so the rounding errors of the scores differ by up to
 * 2^-11 relative. One token attends only to itself and agrees to float precision. The bounds
 * keep a margin of a few times over what was measured (printed by each comparison). */
#define TINY_TOL 0.02      /* the tiny model, logits ~1: measured 4.5e-3 */
#define MODEL_TOL 0.1      /* SmolLM2, logits up to ~40: measured 0.038 (0.024 against f32 K/V),
                              through 30 layers of fp16-rounded keys */
#define ONE_TOKEN_TOL 2e-3 /* SmolLM2, one token: measured 1.8e-4, float against double alone */
/* The device against itself with other chunks (matvec or tiled products, other splits of the
 * attention): float sums in other orders only. */
#define PATH_TOL_TINY 2e-4  /* measured 2.8e-5 */
#define PATH_TOL_MODEL 0.05 /* SmolLM2: measured 0.0046 (chunks of 16 against single tokens) and
                               0.011 (a 38-token call against single tokens) */

typedef struct env {
    esag_rt *rt;
    esag_kernels *k;
    esar_gguf *g;
    gb tiny;           /* the bytes of the tiny model, which g reads in place */
} env;

/* The tiny model (tied: without output.weight) on a validated runtime. */
static void env_tiny(env *e, int tied)
{
    memset(e, 0, sizeof *e);
    gb_tiny_opts o = {.head_dim = 16, .skip = tied ? "output.weight" : NULL};
    gb_tiny_llama(&e->tiny, &o);
    esar_err err;
    if (esar_gguf_open_memory(e->tiny.p, e->tiny.n, &e->g, &err) != ESAR_OK) {
        fprintf(stderr, "FAIL: the tiny model: %s\n", err.msg);
        exit(1);
    }
    e->rt = rg_runtime(1);
    e->k = rg_kernels(e->rt, NULL);
}

/* The model file, or 0 (after saying so) when it is absent. */
static int env_model(env *e)
{
    memset(e, 0, sizeof *e);
    char buf[4096];
    const char *path = runner_model_path(ESA_SOURCE_DIR, buf, sizeof buf);
    if (!path)
        return 0;
    esar_err err;
    if (esar_gguf_open(path, &e->g, &err) != ESAR_OK) {
        fprintf(stderr, "FAIL: %s: %s\n", path, err.msg);
        exit(1);
    }
    e->rt = rg_runtime(1);
    e->k = rg_kernels(e->rt, NULL);
    return 1;
}

/* Frees the environment; no validation message may have come. */
static void env_close(env *e)
{
    esag_kernels_destroy(e->k);
    esar_gguf_close(e->g);
    free(e->tiny.p);
    uint32_t v = esag_rt_validation_count(e->rt);
    EXPECT(v == 0, "%u validation messages", v);
    esag_rt_destroy(e->rt);
}

static esar_model_gpu *gpu_model(env *e, const esar_model_gpu_desc *d)
{
    esar_err err;
    esar_model_gpu *m = NULL;
    esar_status s = esar_model_gpu_create(e->g, e->rt, e->k, d, &m, &err);
    if (s != ESAR_OK) {
        fprintf(stderr, "FAIL: esar_model_gpu_create: %s: %s\n", esar_status_string(s), err.msg);
        exit(1);
    }
    return m;
}

static esar_model_ref *cpu_model(env *e, uint32_t max_tokens)
{
    esar_err err;
    esar_model_ref *m = NULL;
    esar_model_ref_desc d = {.max_tokens = max_tokens, .kv_f16 = 1};
    esar_status s = esar_model_ref_create(e->g, &d, &m, &err);
    if (s != ESAR_OK) {
        fprintf(stderr, "FAIL: esar_model_ref_create: %s: %s\n", esar_status_string(s), err.msg);
        exit(1);
    }
    return m;
}

static float *alloc_logits(size_t rows, uint32_t V)
{
    float *p = malloc(sizeof(float) * rows * V);
    if (!p) {
        fprintf(stderr, "FAIL: out of memory\n");
        exit(1);
    }
    return p;
}

/* Runs tokens on the GPU model from position `from` (truncating to it first). */
static void gpu_run(esar_model_gpu *m, uint32_t from, const int32_t *toks, uint32_t n, float *logits, int last_only)
{
    esar_err err;
    EXPECT_OK(esar_model_gpu_truncate(m, from, &err), &err);
    EXPECT_OK(esar_model_gpu_forward(m, toks, n, logits, last_only, NULL, NULL, &err), &err);
    EXPECT(esar_model_gpu_pos(m) == from + n, "pos %u after %u + %u tokens", esar_model_gpu_pos(m), from, n);
}

/* Compares got with want [rows][cols]: prints the largest difference with its coordinates and
 * the normalized error; past tol (absolute) fails, naming the first element beyond it. Returns
 * the largest difference. */
static double compare(const char *what, const float *got, const float *want, uint32_t rows, uint32_t cols,
                      double tol)
{
    size_t n = (size_t)rows * cols, at = 0, first = n;
    double mx = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (!(d <= mx)) {
            mx = isnan(d) ? INFINITY : d;
            at = i;
        }
        if (!(d <= tol) && first == n)
            first = i;
    }
    long bad;
    double ne = norm_error(got, want, n, 1.0, &bad);
    fprintf(stderr, "  %s: max |diff| %.3g (row %zu, col %zu: %.5f vs %.5f), normalized %.3g\n", what, mx,
            at / cols, at % cols, got[at], want[at], ne);
    EXPECT(first == n, "%s: max |diff| %.4g over %.4g; first at row %zu col %zu (%.5f vs %.5f)", what, mx, tol,
           first / cols, first % cols, got[first < n ? first : 0], want[first < n ? first : 0]);
    return mx;
}

static int all_finite(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return 0;
    return 1;
}

/* ---- the tiny model -------------------------------------------------------------------------- */

enum { TINY_N = 40, TINY_MAX = 64 };

static void tiny_tokens(int32_t *t, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        t[i] = (int32_t)((i * 7 + 3) % TV);
}

/* GPU and CPU over n tokens in one call, every row. */
static void tiny_vs_cpu(env *e, esar_model_gpu *m, uint32_t n, const char *what)
{
    int32_t toks[TINY_N];
    tiny_tokens(toks, n);
    float *g = alloc_logits(n, TV), *c = alloc_logits(n, TV);
    esar_model_ref *ref = cpu_model(e, TINY_MAX);
    esar_err err;
    EXPECT_OK(esar_model_ref_forward(ref, toks, n, c, 0, &err), &err);
    gpu_run(m, 0, toks, n, g, 0);
    compare(what, g, c, n, TV, TINY_TOL);
    esar_model_ref_destroy(ref);
    free(g), free(c);
}

typedef struct sabotage {
    esag_rt *rt;
    uint32_t calls, at;   /* after the at-th chunk, leave the runtime's command buffer recording */
    esag_status began;
} sabotage;

static void progress_sabotage(void *user, uint32_t done, uint32_t total)
{
    sabotage *s = user;
    (void)done, (void)total;
    if (++s->calls == s->at) {
        VkCommandBuffer cb;
        s->began = esag_begin(s->rt, &cb); /* the model's next esag_begin is refused */
    }
}

typedef struct progress_log {
    uint32_t calls, done[8], total;
} progress_log;

static void progress_record(void *user, uint32_t done, uint32_t total)
{
    progress_log *p = user;
    if (p->calls < 8)
        p->done[p->calls] = done;
    p->calls++;
    p->total = total;
}

/* What the q/k tap delivered: [layer][position][Hd] and [Gd], and where it was called. */
typedef struct tap_log {
    uint32_t hd, gd, calls, bad_order;
    uint32_t next_layer, next_pos;
    float q[TL][TINY_N][TH * 16], k[TL][TINY_N][TG * 16];
} tap_log;

static void tap_record(void *user, uint32_t layer, uint32_t pos0, uint32_t T, const float *q, const float *k)
{
    tap_log *t = user;
    t->calls++;
    if (layer != t->next_layer || pos0 != t->next_pos || layer >= TL || pos0 + T > TINY_N) {
        t->bad_order++;
        return;
    }
    memcpy(t->q[layer][pos0], q, sizeof(float) * T * t->hd);
    memcpy(t->k[layer][pos0], k, sizeof(float) * T * t->gd);
    t->next_layer = (layer + 1) % TL;
    if (t->next_layer == 0)
        t->next_pos = pos0 + T;
}

/* 20 tokens in chunks of 8 and one at a time give the same queries and keys, each delivered
 * once, layer after layer, chunk after chunk; layer 0's keys do not depend on attention. */
static void tap_check(esar_model_gpu *m, const int32_t *toks)
{
    static tap_log a, b;
    esar_err err;
    const esar_llama_config *c = esar_model_gpu_config(m);
    a = (tap_log){.hd = c->n_heads * c->head_dim, .gd = c->n_kv_heads * c->head_dim};
    b = a;
    EXPECT_OK(esar_model_gpu_truncate(m, 0, &err), &err);
    EXPECT_OK(esar_model_gpu_set_qk_tap(m, tap_record, &a, &err), &err);
    EXPECT_OK(esar_model_gpu_forward(m, toks, 20, NULL, 0, NULL, NULL, &err), &err);
    EXPECT(a.calls == 3 * TL && !a.bad_order && a.next_pos == 20, "tap: %u calls, %u out of order, up to %u",
           a.calls, a.bad_order, a.next_pos);
    EXPECT_OK(esar_model_gpu_truncate(m, 0, &err), &err);
    EXPECT_OK(esar_model_gpu_set_qk_tap(m, tap_record, &b, &err), &err);
    for (uint32_t t = 0; t < 20; t++)
        EXPECT_OK(esar_model_gpu_forward(m, toks + t, 1, NULL, 0, NULL, NULL, &err), &err);
    EXPECT(b.calls == 20 * TL && !b.bad_order, "tap, one token a call: %u calls, %u out of order", b.calls,
           b.bad_order);
    for (uint32_t l = 0; l < TL; l++) {
        char what[64];
        snprintf(what, sizeof what, "tap layer %u queries, chunks vs one a call", l);
        compare(what, &b.q[l][0][0], &a.q[l][0][0], 20, a.hd, PATH_TOL_TINY);
        snprintf(what, sizeof what, "tap layer %u keys, chunks vs one a call", l);
        compare(what, &b.k[l][0][0], &a.k[l][0][0], 20, a.gd, PATH_TOL_TINY);
    }
    double mx = 0;
    for (uint32_t i = 0; i < 20 * a.gd; i++)
        mx = fmax(mx, fabs((double)(&a.k[1][0][0])[i]));
    EXPECT(mx > 0.01, "tap: layer 1's keys are all near zero (max %g)", mx);
    EXPECT_OK(esar_model_gpu_set_qk_tap(m, NULL, NULL, &err), &err);
    uint32_t before = a.calls;
    EXPECT_OK(esar_model_gpu_forward(m, toks + 20, 1, NULL, 0, NULL, NULL, &err), &err);
    EXPECT(a.calls == before && b.calls == 20 * TL, "a removed tap was called");
}

static void test_tiny(void)
{
    env e;
    env_tiny(&e, 0);
    esar_model_gpu_desc d = {.max_tokens = TINY_MAX, .attention = ESA_ATTENTION_DENSE, .chunk = 8};
    esar_model_gpu *m = gpu_model(&e, &d);
    const esar_llama_config *c = esar_model_gpu_config(m);
    EXPECT(c->head_dim == 16 && c->n_vocab == TV && !c->tied_output, "tiny config");
    esar_err err;

    /* 1. logits against the CPU reference: 1 token, within one chunk, over several */
    tiny_vs_cpu(&e, m, 1, "tiny, 1 token vs CPU");
    tiny_vs_cpu(&e, m, 5, "tiny, 5 tokens vs CPU");
    tiny_vs_cpu(&e, m, TINY_N, "tiny, 40 tokens (chunks of 8) vs CPU");

    /* 2. chunks against one token at a time; truncate and re-run */
    int32_t toks[TINY_N];
    tiny_tokens(toks, TINY_N);
    static float all[TINY_N][TV], one[TV], again[TV];
    progress_log pl = {0};
    EXPECT_OK(esar_model_gpu_truncate(m, 0, &err), &err);
    EXPECT_OK(esar_model_gpu_forward(m, toks, 20, &all[0][0], 0, progress_record, &pl, &err), &err);
    EXPECT(pl.calls == 3 && pl.done[0] == 8 && pl.done[1] == 16 && pl.done[2] == 20 && pl.total == 20,
           "progress after each chunk: %u calls, done %u %u %u of %u", pl.calls, pl.done[0], pl.done[1], pl.done[2],
           pl.total);
    gpu_run(m, 16, toks + 16, 4, again, 1); /* the last chunk again, on the same cache */
    EXPECT(!memcmp(again, all[19], sizeof again), "truncate to 16 and re-run: not the same bits");
    gpu_run(m, 11, toks + 11, 9, again, 1);
    compare("tiny, truncate to 11 and re-run", again, all[19], 1, TV, PATH_TOL_TINY);
    EXPECT_OK(esar_model_gpu_truncate(m, 0, &err), &err);
    for (uint32_t t = 0; t < 20; t++)
        EXPECT_OK(esar_model_gpu_forward(m, toks + t, 1, t == 19 ? one : NULL, 1, NULL, NULL, &err), &err);
    compare("tiny, one token a call vs chunks of 8", one, all[19], 1, TV, PATH_TOL_TINY);

    /* a call that fails after its first chunk keeps that chunk, and the model goes on (to the
     * same bits as the chunks of the first call) */
    sabotage sb = {.rt = e.rt, .at = 1};
    EXPECT_OK(esar_model_gpu_truncate(m, 0, &err), &err);
    esar_status s = esar_model_gpu_forward(m, toks, 20, NULL, 0, progress_sabotage, &sb, &err);
    EXPECT(sb.began == ESAG_OK, "esag_begin in the progress callback");
    EXPECT(s == ESAR_ERR_DEVICE && strstr(err.msg, "esag_begin"), "failed chunk: %s: %s", esar_status_string(s),
           err.msg);
    EXPECT(esar_model_gpu_pos(m) == 8, "after a failed second chunk pos is %u, wanted 8", esar_model_gpu_pos(m));
    esag_abandon(e.rt);
    EXPECT_OK(esar_model_gpu_forward(m, toks + 8, 12, again, 1, NULL, NULL, &err), &err);
    EXPECT(!memcmp(again, all[19], sizeof again), "the rest after a failed call: not the same bits");

    esar_model_gpu_stats st;
    esar_model_gpu_stats_get(m, &st);
    fprintf(stderr, "  stats: prefill %llu tokens %.2f ms, decode %llu tokens %.2f ms\n",
            (unsigned long long)st.prefill_tokens, st.prefill_ms, (unsigned long long)st.decode_tokens, st.decode_ms);
    EXPECT(st.decode_tokens == 21 && st.prefill_tokens >= 20 + 4 + 9 + 8 + 12,
           "stats: %llu decode, %llu prefill tokens", (unsigned long long)st.decode_tokens,
           (unsigned long long)st.prefill_tokens);
    if (esag_rt_device_info(e.rt)->timestamp_period_ns > 0.0f)
        EXPECT(st.prefill_ms > 0.0 && st.decode_ms > 0.0, "device times %g %g ms", st.prefill_ms, st.decode_ms);

    /* the q/k tap: every (layer, position) once, in order, chunked as one token at a time */
    tap_check(m, toks);

    /* 3. the dense logits of 40 tokens, for the attention modes */
    static float dense[TINY_N][TV], got[TINY_N][TV];
    gpu_run(m, 0, toks, TINY_N, &dense[0][0], 0);
    esar_model_gpu_destroy(m);

    /* 4. ESA and window with l_I 4, l_L 8, k 4 over 40 tokens: selection happens */
    esar_model_gpu_desc ed = {.max_tokens = TINY_MAX, .n_initial = 4, .n_local = 8, .top_k = 4, .chunk = 8};
    m = gpu_model(&e, &ed);
    const esa_attention modes[2] = {ESA_ATTENTION_ESA, ESA_ATTENTION_WINDOW};
    for (int i = 0; i < 2; i++) {
        EXPECT_OK(esar_model_gpu_set_attention(m, modes[i], &err), &err);
        gpu_run(m, 0, toks, TINY_N - 3, &got[0][0], 0);
        for (uint32_t t = TINY_N - 3; t < TINY_N; t++)
            EXPECT_OK(esar_model_gpu_forward(m, toks + t, 1, got[t], 1, NULL, NULL, &err), &err);
        EXPECT(all_finite(&got[0][0], (size_t)TINY_N * TV), "%s: non-finite logits", i ? "window" : "ESA");
        long bad;
        fprintf(stderr, "  tiny, %s (l_I 4, l_L 8, k 4) vs dense: normalized difference %.3g\n",
                i ? "window" : "ESA", norm_error(&got[0][0], &dense[0][0], (size_t)TINY_N * TV, 1.0, &bad));
    }
    esar_model_gpu_destroy(m);
    /* k 28: l_I + k + l_L = 40 covers every token, nothing is dropped: dense */
    ed.top_k = 28;
    m = gpu_model(&e, &ed);
    gpu_run(m, 0, toks, TINY_N, &got[0][0], 0);
    compare("tiny, ESA with nothing to drop vs dense", &got[0][0], &dense[0][0], TINY_N, TV, 1e-5);
    esar_model_gpu_destroy(m);

    /* compressed scores: random d' = 8 matrices per layer (a [8][H*d], b [8][G*d]) */
    enum { DC = 8 };
    static float a[TL][DC * TH * 16], b[TL][DC * TG * 16];
    const float *pa[TL], *pb[TL];
    for (int l = 0; l < TL; l++) {
        fill_normal(a[l], DC * TH * 16, 0.3f);
        fill_normal(b[l], DC * TG * 16, 0.3f);
        pa[l] = a[l], pb[l] = b[l];
    }
    esar_model_gpu_desc cd = ed;
    cd.top_k = 4, cd.compress_dim = DC, cd.compress_a = pa, cd.compress_b = pb;
    m = gpu_model(&e, &cd);
    gpu_run(m, 0, toks, TINY_N, &got[0][0], 0);
    EXPECT(all_finite(&got[0][0], (size_t)TINY_N * TV), "compressed scores: non-finite logits");
    esar_model_gpu_destroy(m);

    /* the head tied to token_embd */
    env_close(&e);
    env_tiny(&e, 1);
    m = gpu_model(&e, &d);
    EXPECT(esar_model_gpu_config(m)->tied_output, "no output.weight: tied");
    tiny_vs_cpu(&e, m, 12, "tiny, tied head, 12 tokens vs CPU");
    esar_model_gpu_destroy(m);
    env_close(&e);
}

/* ---- arguments ------------------------------------------------------------------------------- */

static void test_args(void)
{
    env e;
    env_tiny(&e, 0);
    esar_err err;
    esar_model_gpu *m = (esar_model_gpu *)&err; /* a value create must overwrite */
    esar_model_gpu_desc d = {.max_tokens = 16, .attention = ESA_ATTENTION_DENSE};
    struct { const char *what, *msg; esar_status want; const esar_gguf *g; esag_rt *rt; esag_kernels *k;
             esar_model_gpu_desc d; } bad[] = {
        {"NULL gguf", "NULL", ESAR_ERR_ARG, NULL, e.rt, e.k, d},
        {"NULL runtime", "NULL", ESAR_ERR_ARG, e.g, NULL, e.k, d},
        {"NULL kernels", "NULL", ESAR_ERR_ARG, e.g, e.rt, NULL, d},
        {"max_tokens 0", "max_tokens 0", ESAR_ERR_ARG, e.g, e.rt, e.k, {.attention = ESA_ATTENTION_DENSE}},
        {"max_tokens too many", "max_tokens", ESAR_ERR_ARG, e.g, e.rt, e.k, {.max_tokens = ESA_MAX_TOKENS + 1}},
        {"attention 7", "attention 7", ESAR_ERR_ARG, e.g, e.rt, e.k, {.max_tokens = 16, .attention = 7}},
        {"compress_a alone", "together", ESAR_ERR_ARG, e.g, e.rt, e.k,
         {.max_tokens = 16, .compress_a = (const float *const[TL]){NULL, NULL}}},
        {"NULL matrices", "layer 0", ESAR_ERR_ARG, e.g, e.rt, e.k,
         {.max_tokens = 16, .compress_a = (const float *const[TL]){NULL, NULL},
          .compress_b = (const float *const[TL]){NULL, NULL}}},
        {"top_k refused by esa-vk", "esa_cache_create", ESAR_ERR_DEVICE, e.g, e.rt, e.k,
         {.max_tokens = 16, .top_k = ESA_MAX_TOP_K + 1}},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        m = (esar_model_gpu *)&err;
        esar_status s = esar_model_gpu_create(bad[i].g, bad[i].rt, bad[i].k, &bad[i].d, &m, &err);
        EXPECT(s == bad[i].want && m == NULL && strstr(err.msg, bad[i].msg), "create, %s: %s (%s), wanted %s '%s'",
               bad[i].what, esar_status_string(s), err.msg, esar_status_string(bad[i].want), bad[i].msg);
        if (s == ESAR_ERR_DEVICE)
            fprintf(stderr, "  %s: %s\n", bad[i].what, err.msg);
    }
    EXPECT(esar_model_gpu_create(e.g, e.rt, e.k, NULL, &m, &err) == ESAR_ERR_ARG, "NULL desc");
    EXPECT(esar_model_gpu_create(e.g, e.rt, e.k, &d, NULL, &err) == ESAR_ERR_ARG, "NULL out");
    esag_rt *bare = rg_runtime(0); /* no esa-vk context */
    esag_kernels *bk = rg_kernels(bare, NULL);
    esar_status s = esar_model_gpu_create(e.g, bare, bk, &d, &m, &err);
    EXPECT(s == ESAR_ERR_ARG && strstr(err.msg, "esa-vk"), "a runtime without attention: %s", err.msg);
    esag_kernels_destroy(bk);
    EXPECT(esag_rt_validation_count(bare) == 0, "validation messages (runtime without attention)");
    esag_rt_destroy(bare);

    m = gpu_model(&e, &d);
    int32_t toks[17];
    tiny_tokens(toks, 17);
    float logits[TV];
    EXPECT_OK(esar_model_gpu_forward(m, toks, 4, logits, 1, NULL, NULL, &err), &err);
    int32_t oov[2] = {3, TV}, neg[1] = {-1};
    s = esar_model_gpu_forward(m, oov, 2, logits, 1, NULL, NULL, &err);
    EXPECT(s == ESAR_ERR_ARG && strstr(err.msg, "token 40 at index 1"), "token n_vocab: %s: %s",
           esar_status_string(s), err.msg);
    s = esar_model_gpu_forward(m, neg, 1, logits, 1, NULL, NULL, &err);
    EXPECT(s == ESAR_ERR_ARG && strstr(err.msg, "token -1"), "token -1: %s", err.msg);
    EXPECT(esar_model_gpu_pos(m) == 4, "a refused token appended something: pos %u", esar_model_gpu_pos(m));
    s = esar_model_gpu_forward(m, toks, 13, NULL, 0, NULL, NULL, &err);
    EXPECT(s == ESAR_ERR_LIMIT && strstr(err.msg, "max_tokens 16"), "past max_tokens: %s: %s",
           esar_status_string(s), err.msg);
    EXPECT(esar_model_gpu_pos(m) == 4, "past max_tokens appended something");
    EXPECT_OK(esar_model_gpu_forward(m, toks + 4, 12, NULL, 0, NULL, NULL, &err), &err);
    EXPECT(esar_model_gpu_forward(m, toks, 1, NULL, 0, NULL, NULL, &err) == ESAR_ERR_LIMIT, "full cache");
    EXPECT_OK(esar_model_gpu_forward(m, toks, 0, NULL, 0, NULL, NULL, &err), &err);
    EXPECT(esar_model_gpu_forward(NULL, toks, 1, NULL, 0, NULL, NULL, &err) == ESAR_ERR_ARG, "NULL model");
    EXPECT(esar_model_gpu_forward(m, NULL, 1, NULL, 0, NULL, NULL, &err) == ESAR_ERR_ARG, "NULL tokens");
    EXPECT(esar_model_gpu_truncate(m, 17, &err) == ESAR_ERR_ARG && strstr(err.msg, "holds 16"), "truncate past pos: %s",
           err.msg);
    EXPECT(esar_model_gpu_truncate(NULL, 0, &err) == ESAR_ERR_ARG, "truncate NULL");
    EXPECT(esar_model_gpu_set_attention(m, (esa_attention)3, &err) == ESAR_ERR_ARG, "attention 3");
    EXPECT(esar_model_gpu_set_attention(NULL, ESA_ATTENTION_ESA, &err) == ESAR_ERR_ARG, "set_attention NULL");
    EXPECT_OK(esar_model_gpu_truncate(m, 0, &err), &err);
    EXPECT(esar_model_gpu_pos(m) == 0, "truncate to 0");
    esar_model_gpu_stats st;
    esar_model_gpu_stats_get(NULL, &st);
    EXPECT(st.prefill_tokens == 0 && st.decode_tokens == 0, "stats of NULL");
    esar_model_gpu_stats_get(m, NULL);
    EXPECT(esar_model_gpu_config(NULL) == NULL && esar_model_gpu_pos(NULL) == 0, "NULL model queries");
    esar_model_gpu_destroy(m);
    esar_model_gpu_destroy(NULL);
    env_close(&e);
}

/* ---- the model file ------------------------------------------------------------------------- */

enum { MAX_PROMPTS = 8 };

/* The recorded prompts of tests/data/logits_ref.txt. */
static int read_prompts(ref_prompt *r, int cap)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/data/logits_ref.txt", ESA_SOURCE_DIR);
    FILE *fp = fopen(path, "r");
    EXPECT(fp, "cannot open %s", path);
    int n = 0;
    while (fp && n < cap && ref_read_prompt(fp, &r[n]))
        n++;
    if (fp)
        fclose(fp);
    EXPECT(n >= 3, "only %d prompts in %s", n, path);
    return n;
}

static ref_prompt g_prompts[MAX_PROMPTS];

/* The model file as a dense GPU model and as the CPU reference (256 tokens each), and the
 * recorded prompts in g_prompts; exits with the skip code without the file. */
typedef struct gpu_cpu {
    env e;
    esar_model_gpu *m;
    esar_model_ref *ref;
    uint32_t V;
    int np;
} gpu_cpu;

static void gpu_cpu_open(gpu_cpu *p)
{
    if (!env_model(&p->e))
        exit(SKIP_CODE);
    esar_model_gpu_desc d = {.max_tokens = 256, .attention = ESA_ATTENTION_DENSE};
    p->m = gpu_model(&p->e, &d);
    p->ref = cpu_model(&p->e, 256);
    p->V = esar_model_gpu_config(p->m)->n_vocab;
    p->np = read_prompts(g_prompts, MAX_PROMPTS);
}

static void gpu_cpu_close(gpu_cpu *p)
{
    esar_model_ref_destroy(p->ref);
    esar_model_gpu_destroy(p->m);
    env_close(&p->e);
}

static void test_ref(void)
{
    gpu_cpu gc;
    gpu_cpu_open(&gc);
    double worst = 0.0;
    for (int p = -1; p <= gc.np; p++) {
        /* one token (attention over itself: what remains is float against double), the
         * recorded prompts, then 60 tokens: prompt 1 with most of its continuation */
        const int32_t *toks = g_prompts[p >= 0 && p < gc.np ? p : 1].toks;
        uint32_t n = p < 0 ? 1 : p < gc.np ? (uint32_t)g_prompts[p].n_prompt : 60;
        float *g = alloc_logits(n, gc.V), *c = alloc_logits(n, gc.V);
        esar_err err;
        esar_model_ref_reset(gc.ref);
        EXPECT_OK(esar_model_ref_forward(gc.ref, toks, n, c, 0, &err), &err);
        gpu_run(gc.m, 0, toks, n, g, 0);
        char what[64];
        snprintf(what, sizeof what, "%u tokens, GPU vs CPU reference", n);
        double mx = compare(what, g, c, n, gc.V, n == 1 ? ONE_TOKEN_TOL : MODEL_TOL);
        worst = n > 1 ? fmax(worst, mx) : worst;
        int agree = 0;
        for (uint32_t t = 0; t < n; t++)
            agree += ref_argmax(g + (size_t)t * gc.V, gc.V) == ref_argmax(c + (size_t)t * gc.V, gc.V);
        fprintf(stderr, "    argmax agrees at %d/%u positions\n", agree, n);
        free(g), free(c);
    }
    fprintf(stderr, "model_gpu ref: max |GPU - CPU reference| %.4g over the prompts (bound %g)\n", worst, MODEL_TOL);
    gpu_cpu_close(&gc);
}

/* A greedy decode on the device: the prompt in one call, then one token a call. Returns how many
 * of want[0..n) it reproduces (it stops at the first other pick); tf, the logits of the same
 * positions from one teacher-forced call, measures what the single-token path changes. */
static int greedy_gpu(esar_model_gpu *m, const ref_prompt *r, int n, const float *tf, uint32_t V, double *max_diff)
{
    float *row = alloc_logits(1, V);
    esar_err err;
    gpu_run(m, 0, r->toks, (uint32_t)r->n_prompt, row, 1);
    int s = 0;
    for (; s < n; s++) {
        const float *want_row = tf + (size_t)(r->n_prompt - 1 + s) * V;
        for (uint32_t i = 0; i < V; i++)
            *max_diff = fmax(*max_diff, fabs((double)row[i] - want_row[i]));
        if (ref_argmax(row, V) != r->toks[r->n_prompt + s] || s + 1 == n)
            break;
        int32_t next = r->toks[r->n_prompt + s];
        EXPECT_OK(esar_model_gpu_forward(m, &next, 1, row, 1, NULL, NULL, &err), &err);
    }
    int matched = s + (s < n && ref_argmax(row, V) == r->toks[r->n_prompt + s]);
    free(row);
    return matched;
}

static void test_llama_cpp(void)
{
    gpu_cpu gc;
    gpu_cpu_open(&gc);
    ref_tally tg = {0}, tc = {0};
    double decode_diff = 0.0;
    int greedy_total = 0;
    for (int p = 0; p < gc.np; p++) {
        const ref_prompt *r = &g_prompts[p];
        uint32_t n = (uint32_t)(r->n_prompt + r->n_greedy);
        float *g = alloc_logits(n, gc.V), *c = alloc_logits(n, gc.V);
        esar_err err;
        gpu_run(gc.m, 0, r->toks, n, g, 0);
        int first_gpu = ref_check_prompt(r, g, gc.V, "GPU", p, &tg);
        /* where the CPU reference's own argmax agrees: its near ties excuse the GPU's greedy run */
        esar_model_ref_reset(gc.ref);
        EXPECT_OK(esar_model_ref_forward(gc.ref, r->toks, n, c, 0, &err), &err);
        int first_cpu = ref_check_prompt(r, c, gc.V, "CPU reference", p, &tc);
        int need = first_cpu == r->n_greedy ? r->n_greedy : first_gpu;
        int matched = greedy_gpu(gc.m, r, r->n_greedy, g, gc.V, &decode_diff);
        greedy_total += matched;
        fprintf(stderr, "  prompt %d (%d tokens): greedy decode on the GPU reproduces %d/%d tokens (needed %d; "
                "CPU reference agrees for %d steps, GPU teacher-forced for %d)\n",
                p, r->n_prompt, matched, r->n_greedy, need, first_cpu, first_gpu);
        EXPECT(matched >= need, "prompt %d: the greedy decode reproduces %d tokens, %d needed", p, matched, need);
        free(g), free(c);
    }
    fprintf(stderr,
            "model_gpu llama_cpp: %d prompts; max |GPU logit - llama.cpp| %.4f, mean %.4f over %ld logits "
            "(CPU reference %.4f, %.4f); greedy argmax agrees at %d/%d steps (%d near-tie disagreements; CPU "
            "reference %d/%d, %d); greedy decode %d tokens in all; decode vs teacher-forced logits max |diff| %.3g\n",
            gc.np, tg.max_diff, tg.n_diff ? tg.sum_diff / tg.n_diff : 0.0, tg.n_diff, tc.max_diff,
            tc.n_diff ? tc.sum_diff / tc.n_diff : 0.0, tg.steps_agree, tg.steps, tg.ties, tc.steps_agree, tc.steps,
            tc.ties, greedy_total, decode_diff);
    EXPECT(decode_diff <= PATH_TOL_MODEL, "single-token logits differ from the teacher-forced ones by %.4g", decode_diff);
    gpu_cpu_close(&gc);
}

static void test_chunks(void)
{
    env e;
    if (!env_model(&e))
        exit(SKIP_CODE);
    esar_model_gpu_desc d = {.max_tokens = 128, .attention = ESA_ATTENTION_DENSE, .chunk = 16};
    esar_model_gpu *m = gpu_model(&e, &d);
    const uint32_t V = esar_model_gpu_config(m)->n_vocab, N = 50;
    read_prompts(g_prompts, MAX_PROMPTS);
    const int32_t *toks = g_prompts[1].toks; /* 38 prompt tokens and 12 of the continuation */
    float *whole = alloc_logits(1, V), *single = alloc_logits(1, V), *again = alloc_logits(1, V);
    esar_err err;
    progress_log pl = {0};
    EXPECT_OK(esar_model_gpu_forward(m, toks, N, whole, 1, progress_record, &pl, &err), &err);
    EXPECT(pl.calls == 4 && pl.done[0] == 16 && pl.done[3] == N, "progress: %u calls", pl.calls);
    gpu_run(m, 32, toks + 32, N - 32, again, 1); /* chunks 32..47, 48..49 again, on the same cache */
    EXPECT(!memcmp(again, whole, sizeof(float) * V), "truncate to 32 and re-run: not the same bits");
    gpu_run(m, 20, toks + 20, N - 20, again, 1); /* other chunk boundaries */
    compare("truncate to 20 and re-run (chunks 20..35, 36..49)", again, whole, 1, V, PATH_TOL_MODEL);
    EXPECT_OK(esar_model_gpu_truncate(m, 0, &err), &err);
    for (uint32_t t = 0; t < N; t++)
        EXPECT_OK(esar_model_gpu_forward(m, toks + t, 1, t + 1 == N ? single : NULL, 1, NULL, NULL, &err), &err);
    compare("50 tokens: chunks of 16 vs one token a call", single, whole, 1, V, PATH_TOL_MODEL);
    esar_model_gpu_stats st;
    esar_model_gpu_stats_get(m, &st);
    fprintf(stderr, "model_gpu chunks: device time: prefill %llu tokens %.0f ms (%.1f ms a token), decode %llu "
            "tokens %.0f ms (%.1f ms a token)\n",
            (unsigned long long)st.prefill_tokens, st.prefill_ms, st.prefill_ms / (double)st.prefill_tokens,
            (unsigned long long)st.decode_tokens, st.decode_ms, st.decode_ms / (double)st.decode_tokens);
    EXPECT(st.prefill_tokens == N + 18 + 30 && st.decode_tokens == N, "stats: %llu prefill, %llu decode tokens",
           (unsigned long long)st.prefill_tokens, (unsigned long long)st.decode_tokens);
    free(whole), free(single), free(again);
    esar_model_gpu_destroy(m);
    env_close(&e);
}

static void test_modes(void)
{
    env e;
    if (!env_model(&e))
        exit(SKIP_CODE);
    read_prompts(g_prompts, MAX_PROMPTS);
    const ref_prompt *r = &g_prompts[1];
    const uint32_t N = (uint32_t)(r->n_prompt + r->n_greedy), DEC = 3; /* 70 tokens */
    /* l_I + k + l_L = 52 < 70: ESA selects 16 of the middle tokens, window drops them all */
    esar_model_gpu_desc d = {.max_tokens = 128, .n_initial = 4, .n_local = 32, .top_k = 16, .chunk = 16};
    esar_model_gpu *m = gpu_model(&e, &d);
    const uint32_t V = esar_model_gpu_config(m)->n_vocab;
    float *dense = alloc_logits(N, V), *got = alloc_logits(N, V);
    esar_err err;
    EXPECT_OK(esar_model_gpu_set_attention(m, ESA_ATTENTION_DENSE, &err), &err);
    gpu_run(m, 0, r->toks, N, dense, 0);
    const esa_attention modes[2] = {ESA_ATTENTION_ESA, ESA_ATTENTION_WINDOW};
    for (int i = 0; i < 2; i++) {
        EXPECT_OK(esar_model_gpu_set_attention(m, modes[i], &err), &err);
        gpu_run(m, 0, r->toks, N - DEC, got, 0);
        for (uint32_t t = N - DEC; t < N; t++) /* decode steps in the same mode */
            EXPECT_OK(esar_model_gpu_forward(m, r->toks + t, 1, got + (size_t)t * V, 1, NULL, NULL, &err), &err);
        EXPECT(all_finite(got, (size_t)N * V), "%s: non-finite logits", i ? "window" : "ESA");
        int agree = 0;
        for (uint32_t t = 0; t < N; t++)
            agree += ref_argmax(got + (size_t)t * V, V) == ref_argmax(dense + (size_t)t * V, V);
        long bad;
        fprintf(stderr, "  %s (l_I 4, l_L 32, k 16, chunk 16) over %u tokens: normalized difference from dense "
                "%.3g, argmax as dense at %d/%u positions\n", i ? "window" : "ESA", N,
                norm_error(got, dense, (size_t)N * V, 1.0, &bad), agree, N);
    }
    esar_model_gpu_destroy(m);
    d.top_k = 64; /* 4 + 64 + 32 >= 70: nothing to drop */
    m = gpu_model(&e, &d);
    gpu_run(m, 0, r->toks, N, got, 0);
    double diff = compare("ESA with k 64 (nothing dropped) vs dense", got, dense, N, V, 1e-3);
    fprintf(stderr, "model_gpu modes: ESA with nothing to drop %s dense (max |diff| %.3g)\n",
            diff == 0.0 ? "is bit for bit" : "differs from", diff);
    free(dense), free(got);
    esar_model_gpu_destroy(m);
    env_close(&e);
}

int main(int argc, char **argv)
{
    static const struct { const char *name; void (*run)(void); } parts[] = {
        {"tiny", test_tiny}, {"args", test_args}, {"ref", test_ref},
        {"llama_cpp", test_llama_cpp}, {"chunks", test_chunks}, {"modes", test_modes},
    };
    const char *which = argc > 1 ? argv[1] : "tiny";
    rng_seed(11);
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        if (strcmp(which, parts[i].name))
            continue;
        parts[i].run();
        if (g_failures) {
            fprintf(stderr, "test_model_gpu %s: %d failures\n", which, g_failures);
            return 1;
        }
        fprintf(stderr, "test_model_gpu %s: passed\n", which);
        return 0;
    }
    fprintf(stderr, "usage: test_model_gpu [tiny|args|ref|llama_cpp|chunks|modes]\n");
    return 2;
}
