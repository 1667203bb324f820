/* cache.c - a sequence's cache: validation of its description, device buffers for every layer,
 * the compression matrices (with the query rotation folded in) and the scratch of one step. */
#include "internal.h"

#include <math.h>
#include <string.h>

_Static_assert((ESA_MAX_TOKENS + ESA_TOPK_BLOCK - 1) / ESA_TOPK_BLOCK <= ESA_TOPK_MAX_BLOCKS,
               "topk_resolve.comp keeps one shared counter per block of the longest middle");

#define CHECK(cond, ...)                                                                       \
    do {                                                                                       \
        if (!(cond))                                                                           \
            return esa_fail(ctx, ESA_ERROR_INVALID_ARGUMENT, __VA_ARGS__);                     \
    } while (0)

/* Fill defaults and check every field; on error the message names the field. */
static esa_status resolve_desc(esa_context *ctx, const esa_cache_desc *in, esa_cache_desc *d,
                               uint32_t *radius)
{
    *d = *in;
    CHECK(ESA_RESERVED_ZERO(in->reserved), "esa_cache_desc.reserved must be zero");
    CHECK(d->n_layers >= 1 && d->n_layers <= 1024, "n_layers must be 1..1024 (got %u)", d->n_layers);
    CHECK(d->n_heads >= 1 && d->n_heads <= 256, "n_heads must be 1..256 (got %u)", d->n_heads);
    CHECK(d->n_kv_heads >= 1 && d->n_heads % d->n_kv_heads == 0,
          "n_kv_heads must divide n_heads (got %u / %u)", d->n_heads, d->n_kv_heads);
    CHECK(d->head_dim >= 16 && d->head_dim <= 256 && d->head_dim % 8 == 0,
          "head_dim must be a multiple of 8 in 16..256 (got %u)", d->head_dim);
    if (d->rope_dims == 0)
        d->rope_dims = d->head_dim;
    CHECK(d->rope_dims % 8 == 0 && d->rope_dims <= d->head_dim,
          "rope_dims must be a multiple of 8 and <= head_dim (got %u)", d->rope_dims);
    if (d->rope_theta == 0.0f)
        d->rope_theta = 10000.0f;
    CHECK(isfinite(d->rope_theta) && d->rope_theta > 1.0f, "rope_theta must be > 1");
    CHECK(d->rope_style == ESA_ROPE_INTERLEAVED || d->rope_style == ESA_ROPE_NEOX, "bad rope_style");
    if (d->scale == 0.0f)
        d->scale = 1.0f / sqrtf((float)d->head_dim);
    CHECK(isfinite(d->scale) && d->scale > 0.0f, "scale must be positive and finite");
    if (d->n_initial == 0)
        d->n_initial = 128;
    if (d->n_local == 0)
        d->n_local = 4096;
    if (d->top_k == 0)
        d->top_k = 2048;
    CHECK(d->top_k <= ESA_MAX_TOP_K, "top_k must be <= %u (got %u)", ESA_MAX_TOP_K, d->top_k);
    if (d->compress_dim == 0) /* 128, or H*d for models narrower than that */
        d->compress_dim = esa_min_u32(128u, d->n_heads * d->head_dim);
    CHECK(d->score_mode == ESA_SCORES_EXACT ||
              (d->compress_dim % 8 == 0 && d->compress_dim >= 8 &&
               d->compress_dim <= d->n_heads * d->head_dim),
          "compress_dim must be a multiple of 8 and <= n_heads*head_dim (got %u)", d->compress_dim);
    CHECK(d->proximity_radius >= ESA_RADIUS_NONE && d->proximity_radius <= ESA_MAX_RADIUS,
          "proximity_radius must be ESA_RADIUS_NONE or 0..%d (got %d)", ESA_MAX_RADIUS,
          d->proximity_radius);
    *radius = d->proximity_radius == 0 ? 1u : d->proximity_radius < 0 ? 0u : (uint32_t)d->proximity_radius;
    d->proximity_radius = *radius ? (int32_t)*radius : ESA_RADIUS_NONE; /* resolved, for get_desc */
    if (d->chunk == 0)
        d->chunk = 512;
    CHECK(d->chunk <= 4096, "chunk must be <= 4096 (got %u)", d->chunk);
    if (d->global_pos == 0)
        d->global_pos = d->n_local;
    CHECK(d->position_mode == ESA_POSITIONS_EXTRAPOLATE || d->position_mode == ESA_POSITIONS_EXACT,
          "bad position_mode");
    CHECK(d->score_mode == ESA_SCORES_COMPRESSED || d->score_mode == ESA_SCORES_EXACT, "bad score_mode");
    CHECK(d->kv_read <= ESA_KV_READ_COPY, "bad kv_read (%u)", d->kv_read);
    CHECK(d->max_tokens >= 1, "max_tokens is required");
    CHECK(d->max_tokens <= (1u << 30) / d->n_kv_heads / d->head_dim,
          "max_tokens too large for 32-bit element indices (max_tokens*G*d must be < 2^30)");
    /* dispatches over the middle tokens (proximity, top-k) stay within 65535 workgroups */
    CHECK(d->max_tokens <= ESA_MAX_TOKENS, "max_tokens must be <= %u (got %u)", ESA_MAX_TOKENS,
          d->max_tokens);
    return ESA_SUCCESS;
}

/* The rotations of rope.glsl: t[((l * 256 + j) * rd/2 + i) * 2 + (0: cos, 1: sin)] of j * 256^l
 * positions for rotary pair i, computed in double with the angle reduced first. */
static void rope_table(const esa_cache_desc *d, float *t)
{
    uint32_t half = d->rope_dims / 2;
    for (uint32_t lvl = 0; lvl < 3; lvl++)
        for (uint32_t j = 0; j < 256; j++)
            for (uint32_t i = 0; i < half; i++) {
                double turns_per_pos = pow((double)d->rope_theta, -2.0 * i / d->rope_dims) /
                                       6.283185307179586476925286766559;
                double turns = (double)j * ldexp(1.0, 8 * (int)lvl) * turns_per_pos;
                double ang = 6.283185307179586476925286766559 * (turns - floor(turns));
                size_t at = (((size_t)lvl * 256 + j) * half + i) * 2;
                t[at] = (float)cos(ang);
                t[at + 1] = (float)sin(ang);
            }
}

/* For element e of a head: its pair partner, and whether it is the first of the pair. */
static uint32_t pair_of(const esa_cache_desc *d, uint32_t e, int *first, uint32_t *pair)
{
    uint32_t half = d->rope_dims / 2;
    if (d->rope_style == ESA_ROPE_NEOX) {
        *pair = e % half;
        *first = e < half;
        return e < half ? e + half : e - half;
    }
    *pair = e / 2;
    *first = (e & 1u) == 0;
    return e ^ 1u;
}

/* rot[e][e'] of RoPE at position w for one head: x'[e] = sum over e' of rot[e][e'] x[e']. */
static void rope_entry(const esa_cache_desc *d, double w, uint32_t e, uint32_t e2, double *val)
{
    if (e >= d->rope_dims || e2 >= d->rope_dims) {
        *val = e == e2 ? 1.0 : 0.0;
        return;
    }
    int first;
    uint32_t pair;
    uint32_t partner = pair_of(d, e, &first, &pair);
    double ang = w * pow((double)d->rope_theta, -2.0 * pair / d->rope_dims);
    if (e2 == e)
        *val = cos(ang);
    else if (e2 == partner)
        *val = first ? -sin(ang) : sin(ang);
    else
        *val = 0.0;
}

static esa_status upload(esa_cache *c, esa_buffer *dst, const void *src, size_t bytes)
{
    esa_context *ctx = c->ctx;
    esa_buffer st;
    esa_status s = esa_buffer_create(ctx, bytes, ESA_MEM_UPLOAD, &st);
    if (s != ESA_SUCCESS)
        return s;
    memcpy(st.map, src, bytes);
    esa_buffer_flush(ctx, &st);
    s = esa_copy_wait(ctx, &st, 0, dst, 0, bytes);
    esa_buffer_destroy(ctx, &st);
    return s;
}

static esa_status choose_attend(esa_cache *c)
{
    esa_context *ctx = c->ctx; /* c->attend[] is set (before alloc_all sized the slots by it) */
    /* score.comp keeps tm keys of dc halves per lane: about 256 floats */
    c->score_tm = esa_max_u32(1u, esa_min_u32(8u, 256u / c->dc));
    /* one query: a pipeline of its own, with tm 1 (the register tile of the chunk path, though
     * never run, made lavapipe's one-query path 3.5x slower) */
    int paged = c->d.score_mode == ESA_SCORES_EXACT;
    esa_status ss = esa_score_pipeline(ctx, c->dc, 1, paged, &c->score_pipe[0]);
    if (ss == ESA_SUCCESS)
        ss = esa_score_pipeline(ctx, c->dc, c->score_tm, paged, &c->score_pipe[1]);
    if (ss != ESA_SUCCESS)
        return ss;
    for (int v = 0; v < 2; v++) {
        esa_status s = esa_attend_pipeline(ctx, &c->d, &c->attend[v], &c->attend_pipe[v]);
        if (s != ESA_SUCCESS)
            return s;
    }
    return ESA_SUCCESS;
}

/* The partial slots a step's parts (max_tokens + chunk keys in all) need in splits of `keys`
 * keys a key lane (0: no such splits, no slots). */
static uint64_t slots_for(const esa_cache_desc *d, uint32_t keys, uint32_t kl)
{
    if (!keys)
        return 0;
    uint64_t per_split = (uint64_t)keys * kl;
    return (ESA_MAX_SEGMENTS + ((uint64_t)d->max_tokens + d->chunk + per_split - 1) / per_split) * kl;
}

static esa_status alloc_all(esa_cache *c)
{
    esa_context *ctx = c->ctx;
    const esa_cache_desc *d = &c->d;
    uint64_t hd = (uint64_t)d->n_heads * d->head_dim, gd = (uint64_t)d->n_kv_heads * d->head_dim;
    uint64_t T = d->max_tokens, C = d->chunk;
    int exact = d->score_mode == ESA_SCORES_EXACT;
    esa_status s;
#define ALLOC(buf, bytes, kind)                                                                \
    do {                                                                                       \
        s = esa_buffer_create(ctx, (VkDeviceSize)(bytes), kind, buf);                          \
        if (s != ESA_SUCCESS)                                                                  \
            return s;                                                                          \
    } while (0)
    for (uint32_t l = 0; l < d->n_layers; l++) {
        esa_layer *L = &c->layers[l];
        if (!exact) {
            ALLOC(&L->kc, T * c->dc * 2, ESA_MEM_DEVICE);
            ALLOC(&L->at, hd * c->dc * 4, ESA_MEM_DEVICE);
            ALLOC(&L->bt, gd * c->dc * 4, ESA_MEM_DEVICE);
        }
        ALLOC(&L->sel, (uint64_t)d->top_k * 4, ESA_MEM_DEVICE);
        L->ready = exact;
    }
    ALLOC(&c->rope, 3ull * 256 * d->rope_dims / 2 * 8, ESA_MEM_DEVICE);
    ALLOC(&c->qs, C * hd * 4, ESA_MEM_DEVICE);
    ALLOC(&c->qf[0], C * hd * 4, ESA_MEM_DEVICE);
    ALLOC(&c->qf[1], C * hd * 4, ESA_MEM_DEVICE);
    ALLOC(&c->qc, C * c->dc * 4, ESA_MEM_DEVICE);
    ALLOC(&c->rowmax, C * 4, ESA_MEM_DEVICE);
    ALLOC(&c->f, (T + 3) / 4 * 16, ESA_MEM_DEVICE); /* proximity.comp reads whole vec4s */
    ALLOC(&c->keys, T * 4, ESA_MEM_DEVICE);
    ALLOC(&c->topk, ESA_TOPK_STATE_WORDS * 4, ESA_MEM_DEVICE);
    uint64_t blocks = esa_div_up(d->max_tokens, ESA_TOPK_BLOCK);
    ALLOC(&c->blocks, 2 * blocks * 4, ESA_MEM_DEVICE);
    ALLOC(&c->topk_bits, blocks * ESA_TOPK_WORDS * 4, ESA_MEM_DEVICE);
    ALLOC(&c->cand, T * 8, ESA_MEM_DEVICE);
    /* partial slots: 4 a chunk row (a part each, whole), 1024 a decode row; more where a key
     * lane may loop over only so many keys (esa_attend_tuning.lane_keys), and, up to
     * ESA_PART_BUDGET bytes, for the splits the tuning prefers (split_keys; where they do not
     * fit, step.c's plan takes longer splits) */
    c->part_floats = 4ull * C * hd;
    if (c->part_floats < 1024ull * hd)
        c->part_floats = 1024ull * hd;
    for (int v = 0; v < 2; v++) {
        const esa_attend_tuning *t = &c->attend[v];
        uint64_t row_floats = (v == 0 ? 1 : C) * hd;
        uint64_t need = slots_for(d, t->lane_keys, t->kl) * row_floats;
        uint64_t want = slots_for(d, t->split_keys, t->kl) * row_floats;
        if (want > ESA_PART_BUDGET / 4)
            want = ESA_PART_BUDGET / 4;
        if (c->part_floats < need)
            c->part_floats = need;
        if (c->part_floats < want)
            c->part_floats = want;
    }
    ALLOC(&c->part_o, c->part_floats * 4, ESA_MEM_DEVICE);
    ALLOC(&c->part_ml, c->part_floats / d->head_dim * 8, ESA_MEM_DEVICE);
    ALLOC(&c->upload, C * (hd + 2 * gd) * 4, ESA_MEM_UPLOAD);
    ALLOC(&c->download, C * hd * 4, ESA_MEM_READBACK);
    ALLOC(&c->readback, (uint64_t)d->top_k * 4, ESA_MEM_READBACK);
#undef ALLOC
    return esa_pages_create(c);
}

/* Device memory held besides the device pool of pages, for esa_cache_memory_usage. */
static uint64_t fixed_bytes(const esa_cache *c)
{
    uint64_t b = 0;
    for (uint32_t l = 0; l < c->d.n_layers; l++) {
        const esa_layer *L = &c->layers[l];
        b += L->table.alloc_size + L->kc.alloc_size + L->at.alloc_size + L->bt.alloc_size + L->sel.alloc_size;
    }
    const esa_buffer *bs[] = {&c->rope, &c->qf[0], &c->qf[1], &c->a_exact, &c->qs, &c->qc, &c->rowmax, &c->f,
                              &c->keys, &c->topk, &c->blocks, &c->topk_bits, &c->cand, &c->part_o,
                              &c->part_ml, &c->upload, &c->download, &c->readback, &c->gather};
    for (size_t i = 0; i < sizeof bs / sizeof bs[0]; i++)
        b += bs[i]->alloc_size;
    return b;
}

/* Exact-score mode: q'_g = sum over heads h of group g of rope_w(q_h), as a matrix A^T [H*d][G*d]. */
static esa_status init_exact(esa_cache *c)
{
    esa_context *ctx = c->ctx;
    const esa_cache_desc *d = &c->d;
    uint32_t D = d->head_dim, gs = d->n_heads / d->n_kv_heads, hd = d->n_heads * D, gd = d->n_kv_heads * D;
    esa_status s = esa_buffer_create(ctx, (VkDeviceSize)hd * gd * 4, ESA_MEM_DEVICE, &c->a_exact);
    if (s != ESA_SUCCESS)
        return s;
    float *at = esa_calloc(ctx, (size_t)hd * gd, sizeof(float));
    if (!at)
        return ESA_ERROR_OUT_OF_HOST_MEMORY;
    for (uint32_t h = 0; h < d->n_heads; h++)
        for (uint32_t e2 = 0; e2 < D; e2++)      /* input element (column of A) */
            for (uint32_t e = 0; e < D; e++) {   /* output element within group h/gs */
                double r;
                rope_entry(d, d->global_pos, e, e2, &r);
                at[(size_t)(h * D + e2) * gd + (h / gs) * D + e] = (float)r;
            }
    s = upload(c, &c->a_exact, at, (size_t)hd * gd * 4);
    esa_free(ctx, at);
    return s;
}

esa_status esa_cache_create(esa_context *ctx, const esa_cache_desc *desc, esa_cache **out)
{
    if (!out)
        return esa_fail(ctx, ESA_ERROR_INVALID_ARGUMENT, "out is NULL");
    *out = NULL;
    if (!ctx || !desc)
        return esa_fail(ctx, ESA_ERROR_INVALID_ARGUMENT, "ctx or desc is NULL");
    esa_cache_desc d;
    uint32_t radius = 0;
    esa_status s = resolve_desc(ctx, desc, &d, &radius);
    if (s != ESA_SUCCESS)
        return s;
    uint32_t dc = d.score_mode == ESA_SCORES_EXACT ? d.n_kv_heads * d.head_dim : d.compress_dim;
    if ((uint64_t)d.max_tokens * dc >= (1ull << 31))
        return esa_fail(ctx, ESA_ERROR_INVALID_ARGUMENT,
                        "max_tokens * score dimension (%u) must be < 2^31 for 32-bit indices", dc);
    if (dc > ESA_SCORE_MAX_DC)
        return esa_fail(ctx, ESA_ERROR_INVALID_ARGUMENT, "the score dimension %u (%s) exceeds %u", dc,
                        d.score_mode == ESA_SCORES_EXACT ? "G*d with exact scores" : "compress_dim",
                        ESA_SCORE_MAX_DC);
    esa_cache *c = esa_calloc(ctx, 1, sizeof *c);
    if (!c)
        return ESA_ERROR_OUT_OF_HOST_MEMORY;
    c->ctx = ctx;
    c->d = d;
    c->radius = radius;
    c->dc = dc;
    c->layers = esa_calloc(ctx, d.n_layers, sizeof *c->layers);
    if (!c->layers) {
        esa_cache_destroy(c);
        return ESA_ERROR_OUT_OF_HOST_MEMORY;
    }
    for (int v = 0; v < 2; v++)
        esa_attend_tuning_for(ctx, d.head_dim, d.n_heads / d.n_kv_heads, v == 0, &c->attend[v]);
    s = alloc_all(c);
    if (s == ESA_SUCCESS)
        s = choose_attend(c);
    if (s == ESA_SUCCESS) {
        size_t floats = 3u * 256u * d.rope_dims;
        float *t = esa_calloc(ctx, floats, sizeof(float));
        if (!t) {
            s = ESA_ERROR_OUT_OF_HOST_MEMORY;
        } else {
            rope_table(&d, t);
            s = upload(c, &c->rope, t, floats * sizeof(float));
            esa_free(ctx, t);
        }
    }
    if (s == ESA_SUCCESS && d.score_mode == ESA_SCORES_EXACT)
        s = init_exact(c);
    c->fixed_bytes = fixed_bytes(c);
    if (s != ESA_SUCCESS) {
        esa_cache_destroy(c);
        return s;
    }
    *out = c;
    return ESA_SUCCESS;
}

void esa_cache_destroy(esa_cache *c)
{
    if (!c)
        return;
    esa_context *ctx = c->ctx;
    /* a caller's device may have other queues busy: wait on ours only */
    if (ctx->owns_device)
        ctx->vk.vkDeviceWaitIdle(ctx->device);
    else
        ctx->vk.vkQueueWaitIdle(ctx->queue);
    if (c->layers) {
        for (uint32_t l = 0; l < c->d.n_layers; l++) {
            esa_layer *L = &c->layers[l];
            esa_buffer *bs[] = {&L->kc, &L->at, &L->bt, &L->sel};
            for (size_t i = 0; i < sizeof bs / sizeof bs[0]; i++)
                esa_buffer_destroy(ctx, bs[i]);
        }
    }
    esa_buffer *bs[] = {&c->rope, &c->qf[0], &c->qf[1], &c->a_exact, &c->qs, &c->qc, &c->rowmax, &c->f, &c->keys,
                        &c->topk, &c->blocks, &c->topk_bits, &c->cand, &c->part_o,
                        &c->part_ml, &c->upload, &c->download, &c->readback};
    for (size_t i = 0; i < sizeof bs / sizeof bs[0]; i++)
        esa_buffer_destroy(ctx, bs[i]);
    for (int v = 0; v < 2; v++)
        if (c->attend_pipe[v])
            ctx->vk.vkDestroyPipeline(ctx->device, c->attend_pipe[v], NULL);
    for (int v = 0; v < 2; v++)
        if (c->score_pipe[v])
            ctx->vk.vkDestroyPipeline(ctx->device, c->score_pipe[v], NULL);
    esa_pages_destroy(c);
    esa_free(ctx, c->layers);
    esa_free(ctx, c);
}

esa_status esa_cache_get_desc(const esa_cache *c, esa_cache_desc *desc)
{
    if (!c || !desc)
        return ESA_ERROR_INVALID_ARGUMENT;
    *desc = c->d;
    return ESA_SUCCESS;
}

esa_status esa_cache_set_compression(esa_cache *c, uint32_t layer, const float *a, const float *b)
{
    if (!c)
        return ESA_ERROR_INVALID_ARGUMENT;
    esa_context *ctx = c->ctx;
    CHECK(a && b, "a and b must not be NULL");
    CHECK(layer < c->d.n_layers, "layer %u out of range (n_layers %u)", layer, c->d.n_layers);
    CHECK(c->d.score_mode == ESA_SCORES_COMPRESSED, "exact-score caches take no matrices");
    CHECK(c->layers[layer].len == 0, "layer %u already holds tokens: its compressed keys would go stale", layer);
    const esa_cache_desc *d = &c->d;
    uint32_t D = d->head_dim, hd = d->n_heads * D, gd = d->n_kv_heads * D, dc = c->dc;
    for (size_t i = 0; i < (size_t)dc * hd; i++)
        if (!isfinite(a[i]))
            return esa_fail(ctx, ESA_ERROR_NON_FINITE, "a[%zu] is not finite", i);
    for (size_t i = 0; i < (size_t)dc * gd; i++)
        if (!isfinite(b[i]))
            return esa_fail(ctx, ESA_ERROR_NON_FINITE, "b[%zu] is not finite", i);
    float *at = esa_malloc(ctx, (size_t)hd * dc * sizeof(float));
    float *bt = esa_malloc(ctx, (size_t)gd * dc * sizeof(float));
    if (!at || !bt) {
        esa_free(ctx, at);
        esa_free(ctx, bt);
        return ESA_ERROR_OUT_OF_HOST_MEMORY;
    }
    /* A_eff = A . R_w (R_w = RoPE at the global position for every head), stored transposed */
    for (uint32_t r = 0; r < dc; r++)
        for (uint32_t h = 0; h < d->n_heads; h++)
            for (uint32_t e = 0; e < D; e++) {
                double acc = 0.0;
                for (uint32_t e2 = 0; e2 < D; e2++) {
                    double rot;
                    rope_entry(d, d->global_pos, e2, e, &rot);
                    if (rot != 0.0)
                        acc += (double)a[(size_t)r * hd + h * D + e2] * rot;
                }
                at[(size_t)(h * D + e) * dc + r] = (float)acc;
            }
    for (uint32_t r = 0; r < dc; r++)
        for (uint32_t j = 0; j < gd; j++)
            bt[(size_t)j * dc + r] = b[(size_t)r * gd + j];
    c->layers[layer].ready = 0; /* until both matrices are on the device */
    esa_status s = upload(c, &c->layers[layer].at, at, (size_t)hd * dc * 4);
    if (s == ESA_SUCCESS)
        s = upload(c, &c->layers[layer].bt, bt, (size_t)gd * dc * 4);
    esa_free(ctx, at);
    esa_free(ctx, bt);
    if (s == ESA_SUCCESS)
        c->layers[layer].ready = 1;
    return s;
}

esa_status esa_cache_length(const esa_cache *c, uint32_t layer, uint32_t *len)
{
    if (!c || !len || layer >= c->d.n_layers)
        return ESA_ERROR_INVALID_ARGUMENT;
    *len = c->layers[layer].len;
    return ESA_SUCCESS;
}

esa_status esa_cache_clear(esa_cache *c)
{
    if (!c)
        return ESA_ERROR_INVALID_ARGUMENT;
    for (uint32_t l = 0; l < c->d.n_layers; l++) {
        c->layers[l].len = 0;
        c->layers[l].n_selected = 0;
        esa_pages_release(c, l, 0);
    }
    return ESA_SUCCESS;
}

esa_status esa_cache_truncate(esa_cache *c, uint32_t layer, uint32_t len)
{
    if (!c)
        return ESA_ERROR_INVALID_ARGUMENT;
    if (layer >= c->d.n_layers)
        return esa_fail(c->ctx, ESA_ERROR_INVALID_ARGUMENT, "layer %u out of range (n_layers %u)", layer,
                        c->d.n_layers);
    esa_layer *L = &c->layers[layer];
    if (len > L->len)
        return esa_fail(c->ctx, ESA_ERROR_INVALID_ARGUMENT, "layer %u holds %u tokens: cannot truncate to %u",
                        layer, L->len, len);
    /* the tokens kept, and their compressed keys, are untouched; the selection was made over
     * tokens that may be gone */
    L->len = len;
    L->n_selected = 0;
    L->sel_first = 0;
    esa_pages_release(c, layer, len); /* pages wholly past len; the next step places the rest */
    return ESA_SUCCESS;
}
