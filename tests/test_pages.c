/* test_pages.c - the K/V cache in pages under a device-memory budget (src/pages.c): caches
 * whose pages mostly live in host memory, read in place or gathered by copy, give the same
 * bits and the same selections as a cache with every page on the device, through chunks and
 * decode steps that cross page boundaries, dense steps, truncates into pages that were moved
 * to host memory, clear, and a save/load round trip between paged and unpaged caches; a host
 * budget that runs out fails a step by its named status and leaves the cache usable; the
 * memory query counts what the budget allows; host pages of several slabs all given back and
 * reused. */
#include "harness.h"

#include <string.h>

#define LAYERS 3
#define H 4
#define G 2
#define D 32
#define DC 8
#define PT 16 /* page_tokens */
#define MAXT 400
#define HD (H * D)
#define GD (G * D)
#define PAGE_BYTES ((uint64_t)PT * GD * 2 * 2)
/* per layer: 1 page of initial tokens, ceil((24 + 8) / 16) = 2 of local and current, 1 spare */
#define MIN_PAGES (LAYERS * 4)

enum { REF, DIRECT, COPY, ROOMY, N_CACHES };
static const char *const NAME[N_CACHES] = {"all on device", "host, direct", "host, copy", "roomier budget"};

static float g_a[LAYERS][DC * HD], g_b[LAYERS][DC * GD];

static esa_cache_desc base_desc(esa_score_mode mode)
{
    return (esa_cache_desc){.n_layers = LAYERS, .n_heads = H, .n_kv_heads = G, .head_dim = D, .n_initial = 4,
                            .n_local = 24, .top_k = 16, .compress_dim = DC, .chunk = 8, .max_tokens = MAXT,
                            .score_mode = mode, .page_tokens = PT};
}

static esa_cache *make_cache(esa_context *ctx, esa_cache_desc d, int matrices)
{
    return harness_cache(ctx, d, matrices ? g_a[0] : NULL, g_b[0]);
}

static esa_cache_desc paged_desc(esa_score_mode mode, uint32_t kv_read, uint64_t pages)
{
    esa_cache_desc d = base_desc(mode);
    d.kv_device_budget = pages * PAGE_BYTES;
    d.kv_read = kv_read;
    return d;
}

typedef esa_status (*attend_fn)(esa_cache *, uint32_t, uint32_t, esa_dtype, const void *, const void *,
                                const void *, float *, esa_step_info *);

/* One call of n tokens per layer, the same inputs for every cache (NULL ones skipped); every
 * output must equal the first cache's bit for bit, and so must every selection. */
static void step_all(esa_cache **cs, int nc, uint32_t n, uint64_t seed, attend_fn fn, const char *what)
{
    float *q = malloc(sizeof(float) * n * HD), *k = malloc(sizeof(float) * n * GD),
          *v = malloc(sizeof(float) * n * GD), *o0 = malloc(sizeof(float) * n * HD),
          *o = malloc(sizeof(float) * n * HD);
    rng_seed(seed);
    for (uint32_t l = 0; l < LAYERS; l++) {
        fill_normal(q, (size_t)n * HD, 1.0f);
        fill_normal(k, (size_t)n * GD, 1.0f);
        fill_normal(v, (size_t)n * GD, 1.0f);
        uint32_t sel0[64], n0 = 0;
        for (int i = 0; i < nc; i++) {
            if (!cs[i])
                continue;
            esa_status s = fn(cs[i], l, n, ESA_F32, q, k, v, i ? o : o0, NULL);
            EXPECT(s == ESA_SUCCESS, "%s, %s, layer %u: %s", what, NAME[i], l, esa_status_string(s));
            uint32_t sel[64], ns = 0;
            EXPECT_STATUS(esa_cache_last_selection(cs[i], l, i ? sel : sel0, 64, i ? &ns : &n0), ESA_SUCCESS);
            if (!i)
                continue;
            long first = -1;
            for (size_t e = 0; e < (size_t)n * HD && first < 0; e++)
                if (memcmp(&o[e], &o0[e], sizeof(float)) != 0)
                    first = (long)e;
            EXPECT(first < 0, "%s, %s, layer %u (%u tokens): output differs first at token %ld head %ld dim %ld: %g vs %g",
                   what, NAME[i], l, n, first / HD, first % HD / D, first % D, first < 0 ? 0.0 : o[first],
                   first < 0 ? 0.0 : o0[first]);
            EXPECT(ns == n0 && memcmp(sel, sel0, ns * 4) == 0, "%s, %s, layer %u: selects %u tokens, wanted %u (or others)",
                   what, NAME[i], l, ns, n0);
        }
    }
    free(q);
    free(k);
    free(v);
    free(o0);
    free(o);
}

static void truncate_all(esa_cache **cs, int nc, uint32_t len)
{
    for (int i = 0; i < nc; i++)
        for (uint32_t l = 0; cs[i] && l < LAYERS; l++)
            EXPECT_STATUS(esa_cache_truncate(cs[i], l, len), ESA_SUCCESS);
}

static uint32_t layer_len(esa_cache *c)
{
    uint32_t len = 0;
    esa_cache_length(c, 0, &len);
    return len;
}

/* Device pages within the budget, host pages for the rest, and the bytes that go with them. */
static void check_memory(esa_cache *c, uint64_t budget_pages, const char *what)
{
    esa_cache_memory m;
    EXPECT_STATUS(esa_cache_memory_usage(c, &m), ESA_SUCCESS);
    uint64_t pages = 0;
    for (uint32_t l = 0; l < LAYERS; l++) {
        uint32_t len = 0;
        esa_cache_length(c, l, &len);
        pages += (len + PT - 1) / PT;
    }
    EXPECT(m.page_tokens == PT && m.page_bytes == PAGE_BYTES, "%s: pages of %u tokens, %llu bytes", what,
           m.page_tokens, (unsigned long long)m.page_bytes);
    EXPECT(m.device_pages + m.host_pages == pages, "%s: %llu + %llu pages in use, the lengths need %llu", what,
           (unsigned long long)m.device_pages, (unsigned long long)m.host_pages, (unsigned long long)pages);
    if (budget_pages) {
        EXPECT(m.device_pages <= budget_pages, "%s: %llu device pages over a budget of %llu", what,
               (unsigned long long)m.device_pages, (unsigned long long)budget_pages);
        EXPECT(m.host_bytes >= m.host_pages * PAGE_BYTES, "%s: %llu host bytes for %llu host pages", what,
               (unsigned long long)m.host_bytes, (unsigned long long)m.host_pages);
    } else {
        EXPECT(m.host_pages == 0 && m.host_bytes == 0, "%s: no budget, yet %llu host pages (%llu bytes)", what,
               (unsigned long long)m.host_pages, (unsigned long long)m.host_bytes);
        EXPECT(m.device_bytes >= (uint64_t)LAYERS * (MAXT / PT) * PAGE_BYTES,
               "%s: %llu device bytes cannot hold every page", what, (unsigned long long)m.device_bytes);
    }
}

static void same_as_device(esa_context *ctx, esa_score_mode mode)
{
    const char *mname = mode == ESA_SCORES_EXACT ? "exact" : "compressed";
    esa_cache *cs[N_CACHES] = {
        make_cache(ctx, base_desc(mode), 1),
        make_cache(ctx, paged_desc(mode, ESA_KV_READ_DIRECT, MIN_PAGES), 1),
        make_cache(ctx, paged_desc(mode, ESA_KV_READ_COPY, MIN_PAGES), 1),
        make_cache(ctx, paged_desc(mode, ESA_KV_READ_COPY, MIN_PAGES + 5), 1),
    };
    static const uint64_t budget[N_CACHES] = {0, MIN_PAGES, MIN_PAGES, MIN_PAGES + 5};
    for (int i = 0; i < N_CACHES; i++)
        if (!cs[i])
            goto done;
    char what[96];
    /* chunks and decode steps ending on, before and after page boundaries (PT = 16, chunk 8) */
    static const uint32_t calls[] = {13, 1, 2, 16, 31, 1, 1, 64, 1, 15, 17, 1, 40, 1, 1, 0};
    uint64_t seed = 100;
    for (int i = 0; calls[i]; i++) {
        snprintf(what, sizeof what, "%s, call %d", mname, i);
        step_all(cs, N_CACHES, calls[i], seed++, esa_attend, what);
    }
    for (int i = 0; i < N_CACHES; i++) {
        snprintf(what, sizeof what, "%s, %s at %u tokens", mname, NAME[i], layer_len(cs[i]));
        check_memory(cs[i], budget[i], what);
    }
    esa_cache_memory m;
    esa_cache_memory_usage(cs[DIRECT], &m);
    EXPECT(m.host_pages == 3 * 13 - MIN_PAGES && m.kv_read == ESA_KV_READ_DIRECT, "%s: %llu host pages (read %u)", mname,
           (unsigned long long)m.host_pages, m.kv_read);
    /* dense and window steps read the host pages too */
    snprintf(what, sizeof what, "%s, dense", mname);
    step_all(cs, N_CACHES, 9, seed++, esa_attend_dense, what);
    snprintf(what, sizeof what, "%s, window", mname);
    step_all(cs, N_CACHES, 1, seed++, esa_attend_window, what);
    /* back into pages that went to host memory: inside a page, on a boundary, and to 0 */
    static const uint32_t cuts[] = {77, 48, 0};
    for (int t = 0; t < 3; t++) {
        truncate_all(cs, N_CACHES, cuts[t]);
        snprintf(what, sizeof what, "%s, truncated to %u", mname, cuts[t]);
        for (int i = 0; i < N_CACHES; i++)
            check_memory(cs[i], budget[i], what);
        step_all(cs, N_CACHES, 1, seed++, esa_attend, what);
        step_all(cs, N_CACHES, 50, seed++, esa_attend, what);
        step_all(cs, N_CACHES, 1, seed++, esa_attend, what);
    }
    /* clear gives every page back; the cache fills again */
    for (int i = 0; i < N_CACHES; i++) {
        EXPECT_STATUS(esa_cache_clear(cs[i]), ESA_SUCCESS);
        esa_cache_memory_usage(cs[i], &m);
        EXPECT(m.device_pages == 0 && m.host_pages == 0, "%s, %s: %llu + %llu pages after clear", mname, NAME[i],
               (unsigned long long)m.device_pages, (unsigned long long)m.host_pages);
    }
    snprintf(what, sizeof what, "%s, after clear", mname);
    step_all(cs, N_CACHES, 200, seed++, esa_attend, what);
    step_all(cs, N_CACHES, 1, seed++, esa_attend, what);

    /* save/load: paged -> unpaged and unpaged -> paged give the same next steps */
    if (mode == ESA_SCORES_COMPRESSED) {
        const char *p1 = "test_pages_paged.kv", *p2 = "test_pages_flat.kv";
        EXPECT_STATUS(esa_cache_save(cs[COPY], p1), ESA_SUCCESS);
        EXPECT_STATUS(esa_cache_save(cs[REF], p2), ESA_SUCCESS);
        esa_cache *loaded[N_CACHES] = {cs[REF], make_cache(ctx, base_desc(mode), 0),
                                       make_cache(ctx, paged_desc(mode, ESA_KV_READ_DIRECT, MIN_PAGES), 0),
                                       make_cache(ctx, paged_desc(mode, ESA_KV_READ_COPY, MIN_PAGES + 1), 0)};
        if (loaded[1] && loaded[2] && loaded[3]) {
            EXPECT_STATUS(esa_cache_load(loaded[1], p1), ESA_SUCCESS);
            EXPECT_STATUS(esa_cache_load(loaded[2], p2), ESA_SUCCESS);
            EXPECT_STATUS(esa_cache_load(loaded[3], p1), ESA_SUCCESS);
            check_memory(loaded[2], MIN_PAGES, "loaded into a paged cache");
            step_all(loaded, N_CACHES, 1, seed, esa_attend, "after load");
            step_all(loaded, N_CACHES, 20, seed + 1, esa_attend, "after load");
            /* a file larger than the budgets hold is refused before the cache is touched */
            esa_cache_desc small = paged_desc(mode, ESA_KV_READ_DIRECT, MIN_PAGES);
            small.kv_host_budget = 2 * PAGE_BYTES;
            esa_cache *sm = make_cache(ctx, small, 0);
            if (sm) {
                EXPECT_STATUS(esa_cache_load(sm, p2), ESA_ERROR_OUT_OF_HOST_MEMORY);
                EXPECT(strstr(esa_context_last_error(ctx), "budgets"), "message \"%s\"", esa_context_last_error(ctx));
                EXPECT(layer_len(sm) == 0, "a refused load left %u tokens", layer_len(sm));
                check_memory(sm, MIN_PAGES, "after a load beyond the budgets");
                esa_cache_destroy(sm);
            }
            /* a damaged file leaves a paged cache as it was */
            FILE *f = fopen(p1, "r+b");
            EXPECT(f != NULL, "open %s", p1);
            if (f) {
                fseek(f, 128 + 16 + 300, SEEK_SET); /* layer 0's keys */
                int ch = fgetc(f);
                fseek(f, 128 + 16 + 300, SEEK_SET);
                fputc(ch ^ 0x20, f);
                fclose(f);
            }
            uint32_t before = layer_len(loaded[2]);
            EXPECT_STATUS(esa_cache_load(loaded[2], p1), ESA_ERROR_FILE_CORRUPT);
            EXPECT(layer_len(loaded[2]) == before, "a refused load changed the length %u -> %u", before,
                   layer_len(loaded[2]));
            check_memory(loaded[2], MIN_PAGES, "after a refused load");
            step_all(loaded, N_CACHES, 1, seed + 2, esa_attend, "after a refused load");
        }
        for (int i = 1; i < N_CACHES; i++)
            esa_cache_destroy(loaded[i]);
        remove(p1);
        remove(p2);
    }
done:
    for (int i = 0; i < N_CACHES; i++)
        esa_cache_destroy(cs[i]);
}

/* A host budget of a few pages: a step that needs one more fails by its status, naming the
 * budget, with the length and the pages in use as before; truncating makes room again. */
static void host_budget(esa_context *ctx)
{
    esa_cache_desc d = paged_desc(ESA_SCORES_COMPRESSED, ESA_KV_READ_AUTO, MIN_PAGES);
    d.kv_host_budget = 6 * PAGE_BYTES;
    esa_cache *cs[2] = {make_cache(ctx, base_desc(ESA_SCORES_COMPRESSED), 1), make_cache(ctx, d, 1)};
    if (!cs[0] || !cs[1])
        goto done;
    /* the 12 device pages and 6 host pages hold 18 pages: 6 a layer, 96 tokens */
    step_all(cs, 2, 90, 1, esa_attend, "under the host budget");
    esa_cache_memory m0, m1;
    EXPECT_STATUS(esa_cache_memory_usage(cs[1], &m0), ESA_SUCCESS);
    EXPECT(m0.host_pages == 6 && m0.device_pages == MIN_PAGES, "at 90 tokens: %llu host, %llu device pages",
           (unsigned long long)m0.host_pages, (unsigned long long)m0.device_pages);
    static float q[40 * HD], k[40 * GD], v[40 * GD], o[40 * HD];
    rng_seed(9);
    fill_normal(q, 40 * HD, 1.0f);
    fill_normal(k, 40 * GD, 1.0f);
    fill_normal(v, 40 * GD, 1.0f);
    /* layer 0 has room for 6 more tokens in its last page; a 7th needs a page: refused */
    EXPECT_STATUS(esa_attend(cs[1], 0, 6, ESA_F32, q, k, v, o, NULL), ESA_SUCCESS);
    EXPECT_STATUS(esa_attend(cs[1], 0, 1, ESA_F32, q, k, v, o, NULL), ESA_ERROR_OUT_OF_HOST_MEMORY);
    EXPECT(strstr(esa_context_last_error(ctx), "host"), "the message \"%s\" does not name the host budget",
           esa_context_last_error(ctx));
    EXPECT(layer_len(cs[1]) == 96, "a failed step changed the length to %u", layer_len(cs[1]));
    /* a call of 5 chunks from 80 tokens: the first two fit (a page freed by the truncate), the
     * third needs one more page and fails; the call keeps nothing of the first two */
    EXPECT_STATUS(esa_cache_truncate(cs[1], 0, 80), ESA_SUCCESS);
    EXPECT_STATUS(esa_cache_memory_usage(cs[1], &m0), ESA_SUCCESS);
    EXPECT_STATUS(esa_attend(cs[1], 0, 40, ESA_F32, q, k, v, o, NULL), ESA_ERROR_OUT_OF_HOST_MEMORY);
    EXPECT(layer_len(cs[1]) == 80, "a failed call of 40 tokens left the length at %u", layer_len(cs[1]));
    EXPECT_STATUS(esa_cache_memory_usage(cs[1], &m1), ESA_SUCCESS);
    EXPECT(m1.host_pages + m1.device_pages == m0.host_pages + m0.device_pages,
           "a failed call left %llu host + %llu device pages in use, before %llu + %llu",
           (unsigned long long)m1.host_pages, (unsigned long long)m1.device_pages,
           (unsigned long long)m0.host_pages, (unsigned long long)m0.device_pages);
    EXPECT_STATUS(esa_attend(cs[1], 0, 16, ESA_F32, q, k, v, o, NULL), ESA_SUCCESS); /* fits again */
    /* esa_cache_reserve answers before anything is recorded: layer 0 is at 96 tokens, full */
    EXPECT_STATUS(esa_cache_memory_usage(cs[1], &m0), ESA_SUCCESS);
    EXPECT_STATUS(esa_cache_reserve(cs[1], 1), ESA_ERROR_OUT_OF_HOST_MEMORY);
    EXPECT_STATUS(esa_cache_memory_usage(cs[1], &m1), ESA_SUCCESS);
    EXPECT(!memcmp(&m0, &m1, sizeof m0) && layer_len(cs[1]) == 96, "a refused reserve changed the cache");
    EXPECT_STATUS(esa_cache_reserve(cs[1], 0), ESA_ERROR_INVALID_ARGUMENT);
    EXPECT_STATUS(esa_cache_reserve(cs[1], 9), ESA_ERROR_INVALID_ARGUMENT); /* chunk is 8 */
    EXPECT_STATUS(esa_cache_reserve(NULL, 1), ESA_ERROR_INVALID_ARGUMENT);
    EXPECT_STATUS(esa_cache_reserve(cs[0], 8), ESA_SUCCESS); /* no budget: nothing to do */
    /* still usable: after making room, the same steps as the unbudgeted cache; a reserve that
     * succeeds means every layer's next step of that many tokens finds its pages */
    truncate_all(cs, 2, 40);
    EXPECT_STATUS(esa_cache_reserve(cs[1], 8), ESA_SUCCESS);
    step_all(cs, 2, 8, 5, esa_attend, "after a reserve");
    step_all(cs, 2, 30, 3, esa_attend, "after truncating");
    step_all(cs, 2, 1, 4, esa_attend, "after truncating");
done:
    esa_cache_destroy(cs[0]);
    esa_cache_destroy(cs[1]);
}

/* Host pages in several slabs, grown while the pages before them were in use, then all given
 * back by a truncate to 0 (the pool's free list must have room for every page it ever held:
 * it had room only for what was free when it grew, an overflow the ASan build catches), then
 * the same length again, which must reuse them: no more host memory. One layer of big pages
 * (1 MiB: 64 to a slab). */
static void host_slabs(esa_context *ctx)
{
    enum { BH = 8, BD = 128, BGD = BH * BD, BPT = 256, BN = 80 * BPT };
    esa_cache_desc d = {.n_layers = 1, .n_heads = BH, .n_kv_heads = BH, .head_dim = BD, .n_initial = 16,
                        .n_local = BPT, .chunk = BPT, .max_tokens = BN, .score_mode = ESA_SCORES_EXACT,
                        .page_tokens = BPT, .kv_device_budget = 4ull * BPT * BGD * 4};
    esa_cache *c = harness_cache(ctx, d, NULL, NULL);
    if (!c)
        return;
    float *k = malloc(sizeof(float) * BPT * BGD);
    fill_normal(k, (size_t)BPT * BGD, 1.0f);
    esa_cache_memory m1 = {0}, m2 = {0};
    for (int round = 0; round < 2; round++) {
        esa_status s = ESA_SUCCESS;
        for (uint32_t t = 0; s == ESA_SUCCESS && t < BN; t += BPT)
            s = esa_append(c, 0, BPT, ESA_F32, k, k);
        EXPECT(s == ESA_SUCCESS, "slabs, round %d: %s (%s)", round, esa_status_string(s), esa_context_last_error(ctx));
        EXPECT_STATUS(esa_cache_memory_usage(c, round ? &m2 : &m1), ESA_SUCCESS);
        EXPECT_STATUS(esa_cache_truncate(c, 0, 0), ESA_SUCCESS);
    }
    EXPECT(m1.host_pages == 76 && m1.host_bytes > 64 * m1.page_bytes && m2.host_pages == m1.host_pages &&
               m2.host_bytes == m1.host_bytes,
           "slabs: %llu host pages in %llu bytes, then %llu in %llu", (unsigned long long)m1.host_pages,
           (unsigned long long)m1.host_bytes, (unsigned long long)m2.host_pages, (unsigned long long)m2.host_bytes);
    free(k);
    esa_cache_destroy(c);
}

int main(void)
{
    esa_context *ctx = harness_context();
    rng_seed(3);
    for (int l = 0; l < LAYERS; l++) {
        fill_normal(g_a[l], DC * HD, 0.2f);
        fill_normal(g_b[l], DC * GD, 0.2f);
    }
    same_as_device(ctx, ESA_SCORES_COMPRESSED);
    same_as_device(ctx, ESA_SCORES_EXACT);
    host_budget(ctx);
    host_slabs(ctx);

    /* arguments */
    esa_cache_memory m;
    EXPECT_STATUS(esa_cache_memory_usage(NULL, &m), ESA_ERROR_INVALID_ARGUMENT);
    esa_cache *c = make_cache(ctx, paged_desc(ESA_SCORES_EXACT, 0, MIN_PAGES), 0);
    EXPECT_STATUS(esa_cache_memory_usage(c, NULL), ESA_ERROR_INVALID_ARGUMENT);
    esa_cache_desc got;
    if (c && esa_cache_get_desc(c, &got) == ESA_SUCCESS)
        EXPECT(got.page_tokens == PT && got.kv_device_budget == MIN_PAGES * PAGE_BYTES,
               "get_desc: page_tokens %u, budget %llu", got.page_tokens, (unsigned long long)got.kv_device_budget);
    esa_cache_destroy(c);
    c = make_cache(ctx, (esa_cache_desc){.n_layers = 1, .n_heads = H, .n_kv_heads = G, .head_dim = D,
                                         .max_tokens = 5000, .score_mode = ESA_SCORES_EXACT}, 0);
    if (c && esa_cache_get_desc(c, &got) == ESA_SUCCESS)
        EXPECT(got.page_tokens == 256 && (got.kv_read == ESA_KV_READ_DIRECT || got.kv_read == ESA_KV_READ_COPY),
               "defaults resolved: page_tokens %u, kv_read %u", got.page_tokens, got.kv_read);
    esa_cache_destroy(c);
    /* one byte short of the smallest budget is refused, naming the minimum */
    esa_cache_desc d = paged_desc(ESA_SCORES_EXACT, 0, MIN_PAGES);
    d.kv_device_budget -= 1;
    c = NULL;
    EXPECT_STATUS(esa_cache_create(ctx, &d, &c), ESA_ERROR_INVALID_ARGUMENT);
    EXPECT(strstr(esa_context_last_error(ctx), "kv_device_budget"), "message \"%s\"", esa_context_last_error(ctx));
    esa_cache_destroy(c);
    return harness_finish(ctx, "test_pages");
}
