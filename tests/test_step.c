/* test_step.c - the whole ESA step on the device against the CPU reference (esa_ref_step):
 * outputs by normalized error, selections as sets with ties judged by the reference's scores,
 * over several shapes, modes and call sizes, including l_M just below, at and above k. */
#include "esa_ref.h"
#include "harness.h"

#include <string.h>

typedef struct shape {
    const char *name;
    uint32_t H, G, d, rope_dims;
    esa_rope_style style;
    uint32_t l_I, l_L, k, dc, chunk;
    int32_t radius;
    esa_position_mode pos;
    esa_score_mode scores;
    uint32_t steps[12]; /* tokens per call, 0 ends */
    float key_scale;    /* spread of keys: large values make large logits */
} shape;

/* The reference's F' over M for a chunk about to be processed (layer state before it). */
static float *ref_importance(const esa_ref_config *cfg, const esa_ref_layer *L, const float *q,
                             uint32_t n, uint32_t nI, uint32_t lm)
{
    uint32_t dc = L->kc_dim;
    float *qc = malloc(sizeof(float) * n * dc), *f = malloc(sizeof(float) * lm),
          *fp = malloc(sizeof(float) * lm);
    esa_ref_compress_queries(cfg, L->a, q, n, qc);
    esa_ref_importance(qc, n, L->kc + (size_t)nI * dc, lm, dc, f);
    esa_ref_proximity(f, lm, cfg->radius, fp);
    free(qc);
    free(f);
    return fp;
}

static int cmp_float_desc(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

/* Sets equal, or every disagreement is a tie with the k-th score (relative tol). */
static int check_selection(const uint32_t *gpu, const uint32_t *ref, uint32_t k, const float *fp,
                           uint32_t lm, uint32_t nI, const char *what)
{
    float *sorted = malloc(sizeof(float) * lm);
    memcpy(sorted, fp, sizeof(float) * lm);
    qsort(sorted, lm, sizeof(float), cmp_float_desc);
    float kth = sorted[k - 1];
    double span = fabs((double)sorted[0]) + fabs((double)sorted[lm - 1]) + 1e-30;
    free(sorted);
    char *in_ref = calloc(lm, 1);
    for (uint32_t i = 0; i < k; i++)
        in_ref[ref[i] - nI] = 1;
    int differs = 0, ok = 1;
    for (uint32_t i = 0; i < k; i++) {
        if (i > 0 && gpu[i] <= gpu[i - 1]) {
            EXPECT(0, "%s: selection not ascending at %u (%u after %u)", what, i, gpu[i], gpu[i - 1]);
            ok = 0;
            break;
        }
        if (gpu[i] < nI || gpu[i] >= nI + lm) {
            EXPECT(0, "%s: selected position %u outside M [%u, %u)", what, gpu[i], nI, nI + lm);
            ok = 0;
            break;
        }
        if (!in_ref[gpu[i] - nI]) {
            differs = 1;
            double gap = fabs((double)fp[gpu[i] - nI] - kth) / span;
            if (gap > 1e-5) {
                EXPECT(0, "%s: GPU selected position %u (score %g) that the reference did not "
                          "(k-th score %g)", what, gpu[i], fp[gpu[i] - nI], kth);
                ok = 0;
                break;
            }
        }
    }
    free(in_ref);
    return ok ? (differs ? 2 : 1) : 0;
}

#define PT 16 /* page_tokens of the paged runs: many page boundaries */

/* window: esa_attend_window against the reference with k = 0 (no middle token selected).
 * kv_read nonzero: a one-layer cache in pages of PT tokens under the smallest device budget,
 * so most pages live in host memory and are read that way (ESA_KV_READ_DIRECT or _COPY). */
static void run_shape(esa_context *ctx, const shape *s, uint64_t seed, int window, uint32_t kv_read)
{
    rng_seed(seed);
    uint32_t total = 0;
    for (int i = 0; s->steps[i]; i++)
        total += s->steps[i];
    uint32_t layers = kv_read ? 1 : 2, layer = layers - 1;
    uint64_t min_pages = (s->l_I + PT - 1) / PT + (s->l_L + s->chunk + PT - 1) / PT + 1;
    esa_cache_desc desc = {
        .n_layers = layers, .n_heads = s->H, .n_kv_heads = s->G, .head_dim = s->d,
        .rope_dims = s->rope_dims, .rope_theta = 10000.0f, .rope_style = s->style,
        .n_initial = s->l_I, .n_local = s->l_L, .top_k = s->k, .compress_dim = s->dc,
        .proximity_radius = s->radius, .chunk = s->chunk, .position_mode = s->pos,
        .score_mode = s->scores, .max_tokens = total,
        .page_tokens = kv_read ? PT : 0, .kv_read = kv_read,
        .kv_device_budget = kv_read ? min_pages * PT * s->G * s->d * 4 : 0,
    };
    esa_cache *cache = NULL;
    esa_status st = esa_cache_create(ctx, &desc, &cache);
    EXPECT(st == ESA_SUCCESS, "%s: esa_cache_create: %s (%s)", s->name, esa_status_string(st),
           esa_context_last_error(ctx));
    if (st != ESA_SUCCESS)
        return;
    esa_cache_get_desc(cache, &desc);
    uint32_t hd = s->H * s->d, gd = s->G * s->d;
    esa_ref_config cfg = {
        .n_heads = s->H, .n_kv_heads = s->G, .head_dim = s->d, .rope_dims = desc.rope_dims,
        .rope_theta = desc.rope_theta, .rope_neox = s->style == ESA_ROPE_NEOX, .scale = desc.scale,
        .n_initial = s->l_I, .n_local = s->l_L, .top_k = window ? 0 : s->k, .compress_dim = s->dc,
        .radius = s->radius < 0 ? 0u : (s->radius == 0 ? 1u : (uint32_t)s->radius),
        .chunk = s->chunk, .global_pos = desc.global_pos,
        .exact_positions = s->pos == ESA_POSITIONS_EXACT, .exact_scores = s->scores == ESA_SCORES_EXACT,
    };
    float *a = NULL, *b = NULL;
    if (s->scores == ESA_SCORES_COMPRESSED) {
        a = malloc(sizeof(float) * s->dc * hd);
        b = malloc(sizeof(float) * s->dc * gd);
        fill_normal(a, (size_t)s->dc * hd, 1.0f / sqrtf((float)hd));
        fill_normal(b, (size_t)s->dc * gd, 1.0f / sqrtf((float)gd));
        EXPECT_STATUS(esa_cache_set_compression(cache, layer, a, b), ESA_SUCCESS);
    }
    esa_ref_layer ref;
    esa_ref_layer_init(&ref, &cfg, total, a, b);
    uint32_t maxn = 0;
    for (int i = 0; s->steps[i]; i++)
        maxn = s->steps[i] > maxn ? s->steps[i] : maxn;
    float *q = malloc(sizeof(float) * maxn * hd), *k = malloc(sizeof(float) * maxn * gd),
          *v = malloc(sizeof(float) * maxn * gd), *o = malloc(sizeof(float) * maxn * hd),
          *o_ref = malloc(sizeof(float) * maxn * hd);
    uint32_t *sel = malloc(sizeof(uint32_t) * s->k), *sel_ref = malloc(sizeof(uint32_t) * s->k);
    for (int i = 0; s->steps[i]; i++) {
        uint32_t n = s->steps[i];
        fill_normal(q, (size_t)n * hd, 1.0f);
        fill_normal(k, (size_t)n * gd, s->key_scale);
        fill_normal(v, (size_t)n * gd, 1.0f);
        /* the reference's importance for the last chunk of this call, before it runs */
        uint32_t last0 = (n - 1) / s->chunk * s->chunk, nl = n - last0;
        uint32_t P = ref.len + last0;
        uint32_t nI = P < s->l_I ? P : s->l_I, nL = (P - nI) < s->l_L ? P - nI : s->l_L;
        uint32_t lm = P - nI - nL;
        esa_step_info info;
        esa_ref_step_info info_ref;
        /* reference first for chunks before the last, then the last alone, so its F' is seen */
        float *fp = NULL;
        if (last0)
            esa_ref_step(&cfg, &ref, last0, q, k, v, o_ref, NULL, &info_ref);
        if (lm > s->k && !window)
            fp = ref_importance(&cfg, &ref, q + (size_t)last0 * hd, nl, nI, lm);
        esa_ref_step_info ri;
        esa_ref_step(&cfg, &ref, nl, q + (size_t)last0 * hd, k + (size_t)last0 * gd,
                     v + (size_t)last0 * gd, o_ref + (size_t)last0 * hd, sel_ref, &ri);
        st = (window ? esa_attend_window : esa_attend)(cache, layer, n, ESA_F32, q, k, v, o, &info);
        EXPECT(st == ESA_SUCCESS, "%s step %d: %s (%s)", s->name, i, esa_status_string(st),
               esa_context_last_error(ctx));
        EXPECT(info.dense == (uint32_t)ri.dense && info.n_selected == ri.n_selected &&
                   info.n_middle == ri.n_middle,
               "%s step %d: info dense %u/%d selected %u/%u middle %u/%u", s->name, i, info.dense,
               ri.dense, info.n_selected, ri.n_selected, info.n_middle, ri.n_middle);
        int same = 1;
        if (fp) {
            uint32_t count = 0;
            EXPECT_STATUS(esa_cache_last_selection(cache, layer, sel, s->k, &count), ESA_SUCCESS);
            EXPECT(count == s->k, "%s: %u selected, wanted %u", s->name, count, s->k);
            char what[96];
            snprintf(what, sizeof what, "%s step %d", s->name, i);
            int r = check_selection(sel, sel_ref, s->k, fp, lm, nI, what);
            same = r == 1;
            if (r == 2)
                fprintf(stderr, "%s: selection differs from the reference by score ties only\n", what);
            free(fp);
        }
        long bad;
        /* earlier chunks' outputs of this call compare always; the last chunk when the
         * selection agreed (a tie-broken selection attends to other tokens) */
        size_t cmp_rows = same ? n : last0;
        double err = norm_error(o, o_ref, cmp_rows * hd, 2e-3, &bad);
        EXPECT(err <= 2e-3, "%s step %d (P=%u n=%u lm=%u): output error %.3g at [%ld] (token %ld head %ld dim %ld): %g vs %g",
               s->name, i, P, n, lm, err, bad, bad / (long)hd, (bad % (long)hd) / (long)s->d,
               bad % (long)s->d, bad >= 0 ? o[bad] : 0.0, bad >= 0 ? o_ref[bad] : 0.0);
    }
    uint32_t len = 0;
    esa_cache_length(cache, layer, &len);
    EXPECT(len == total, "%s: length %u, wanted %u", s->name, len, total);
    if (layer) {
        esa_cache_length(cache, 0, &len);
        EXPECT(len == 0, "%s: untouched layer 0 has %u tokens", s->name, len);
    }
    if (kv_read) {
        esa_cache_memory mem;
        EXPECT_STATUS(esa_cache_memory_usage(cache, &mem), ESA_SUCCESS);
        uint64_t pages = (total + PT - 1) / PT;
        EXPECT(mem.device_pages == min_pages && mem.host_pages == pages - min_pages && mem.kv_read == kv_read,
               "%s: %llu device and %llu host pages (read %u), wanted %llu and %llu", s->name,
               (unsigned long long)mem.device_pages, (unsigned long long)mem.host_pages, mem.kv_read,
               (unsigned long long)min_pages, (unsigned long long)(pages - min_pages));
    }
    esa_ref_layer_free(&ref);
    free(q); free(k); free(v); free(o); free(o_ref); free(sel); free(sel_ref); free(a); free(b);
    esa_cache_destroy(cache);
}

int main(void)
{
    esa_context *ctx = harness_context();
    /* l_I + k + l_L = 4 + 24 + 16 = 44: the early calls are dense, then l_M crosses k */
    static const shape shapes[] = {
        {"gqa-neox-compressed", 6, 2, 64, 64, ESA_ROPE_NEOX, 4, 16, 24, 16, 8, 0,
         ESA_POSITIONS_EXTRAPOLATE, ESA_SCORES_COMPRESSED, {5, 13, 1, 20, 1, 1, 7, 30, 1, 64, 1, 0}, 1.0f},
        {"mha-interleaved-exact", 4, 4, 32, 16, ESA_ROPE_INTERLEAVED, 3, 9, 17, 8, 7, ESA_RADIUS_NONE,
         ESA_POSITIONS_EXTRAPOLATE, ESA_SCORES_EXACT, {1, 2, 30, 1, 1, 40, 1, 33, 1, 0}, 1.0f},
        {"gqa-exact-positions", 9, 3, 64, 64, ESA_ROPE_INTERLEAVED, 4, 16, 20, 32, 16, 3,
         ESA_POSITIONS_EXACT, ESA_SCORES_COMPRESSED, {40, 1, 1, 50, 1, 17, 1, 0}, 1.0f},
        {"large-logits", 8, 2, 128, 128, ESA_ROPE_NEOX, 8, 32, 40, 32, 32, 1,
         ESA_POSITIONS_EXTRAPOLATE, ESA_SCORES_EXACT, {100, 1, 77, 1, 0}, 12.0f},
        {"head-dim-80", 4, 1, 80, 64, ESA_ROPE_NEOX, 2, 10, 13, 16, 9, 2,
         ESA_POSITIONS_EXTRAPOLATE, ESA_SCORES_COMPRESSED, {30, 1, 1, 25, 1, 0}, 0.01f},
        {"head-dim-96-small-logits", 12, 4, 96, 96, ESA_ROPE_INTERLEAVED, 5, 12, 19, 48, 10, 1,
         ESA_POSITIONS_EXTRAPOLATE, ESA_SCORES_COMPRESSED, {37, 1, 23, 1, 1, 0}, 1e-3f},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        for (int window = 0; window < 2; window++)
            for (uint32_t kv_read = 0; kv_read <= ESA_KV_READ_COPY; kv_read++) {
                static const char *const how[] = {"", " host pages, direct", " host pages, copied"};
                int before = g_failures;
                run_shape(ctx, &shapes[i], 1000 + i, window, kv_read);
                fprintf(stderr, "%-24s %s%s %s\n", shapes[i].name, window ? "window" : "esa   ", how[kv_read],
                        g_failures == before ? "ok" : "FAILED");
            }
    return harness_finish(ctx, "test_step");
}
