/* stage_debug.c - host-pointer wrappers that run one stage of a step (stage_debug.h).
 *
 * Each call stages its inputs through a temporary host-visible buffer into the device buffers
 * that a step uses, records that stage with the recording functions of step.c (the very code
 * esa_record_chunk runs), copies the result into a temporary read-back buffer, and waits. */
#include "stage_debug.h"

#include "internal.h"

#include <string.h>

#define CHECK(cond, ...)                                                                       \
    do {                                                                                       \
        if (!(cond))                                                                           \
            return esa_fail(ctx, ESA_ERROR_INVALID_ARGUMENT, __VA_ARGS__);                     \
    } while (0)

/* One blocking submission with its staging: pieces are packed at 16-byte offsets. */
typedef struct run {
    esa_context *ctx;
    VkCommandBuffer cb;
    esa_buffer up, down;
    VkDeviceSize up_at, down_at;
} run;

static VkDeviceSize pad16(uint64_t bytes) { return (VkDeviceSize)((bytes + 15) & ~(uint64_t)15); }

static void run_free(run *r)
{
    esa_buffer_destroy(r->ctx, &r->up);
    esa_buffer_destroy(r->ctx, &r->down);
}

/* up_bytes, down_bytes: the sum of the pad16'd pieces put/got later */
static esa_status run_begin(run *r, esa_context *ctx, VkDeviceSize up_bytes, VkDeviceSize down_bytes)
{
    *r = (run){.ctx = ctx};
    esa_status s = esa_buffer_create(ctx, up_bytes, ESA_MEM_UPLOAD, &r->up);
    if (s == ESA_SUCCESS)
        s = esa_buffer_create(ctx, down_bytes, ESA_MEM_READBACK, &r->down);
    if (s == ESA_SUCCESS)
        s = esa_begin(ctx, &r->cb);
    if (s != ESA_SUCCESS)
        run_free(r);
    return s;
}

/* Record a copy of bytes from the staging to dst at dst_off; returns where to write them. */
static void *stage(run *r, uint64_t bytes, const esa_buffer *dst, VkDeviceSize dst_off)
{
    void *p = (uint8_t *)r->up.map + r->up_at;
    if (bytes) {
        VkBufferCopy region = {.srcOffset = r->up_at, .dstOffset = dst_off, .size = bytes};
        r->ctx->vk.vkCmdCopyBuffer(r->cb, r->up.buffer, dst->buffer, 1, &region);
    }
    r->up_at += pad16(bytes);
    return p;
}

static void put(run *r, const void *src, uint64_t bytes, const esa_buffer *dst, VkDeviceSize dst_off)
{
    void *p = stage(r, bytes, dst, dst_off);
    if (bytes)
        memcpy(p, src, (size_t)bytes);
}

/* The same into layer 0's logical K (which 0) or V (1) array from byte off, through its pages
 * (made first, on the device for a cache without a budget). */
static esa_status put_pages(run *r, esa_cache *c, const void *src, uint64_t bytes, int which, uint64_t off)
{
    if (!bytes)
        return ESA_SUCCESS;
    uint64_t row = (uint64_t)c->d.n_kv_heads * c->d.head_dim * 2;
    esa_status s = esa_pages_place(c, r->cb, 0, 0, (uint32_t)((off + bytes + row - 1) / row));
    if (s != ESA_SUCCESS)
        return s;
    memcpy((uint8_t *)r->up.map + r->up_at, src, (size_t)bytes);
    esa_pages_record_copy(c, r->cb, 0, which, off, &r->up, r->up_at, bytes, 1);
    r->up_at += pad16(bytes);
    return ESA_SUCCESS;
}

/* Record a copy of bytes from src at src_off to the read-back; returns where they will be. */
static const void *get(run *r, const esa_buffer *src, VkDeviceSize src_off, uint64_t bytes)
{
    const void *p = (const uint8_t *)r->down.map + r->down_at;
    if (bytes) {
        VkBufferCopy region = {.srcOffset = src_off, .dstOffset = r->down_at, .size = bytes};
        r->ctx->vk.vkCmdCopyBuffer(r->cb, src->buffer, r->down.buffer, 1, &region);
    }
    r->down_at += pad16(bytes);
    return p;
}

/* Submit, wait, and make the read-back readable. The staging is freed by run_free. */
static esa_status run_end(run *r)
{
    esa_buffer_flush(r->ctx, &r->up);
    esa_status s = esa_submit_wait(r->ctx);
    if (s == ESA_SUCCESS)
        esa_buffer_invalidate(r->ctx, &r->down);
    return s;
}

/* The usual ending: read bytes of src back into out, submit, wait, free the staging. */
static esa_status run_finish(run *r, const esa_buffer *src, void *out, uint64_t bytes)
{
    const void *back = get(r, src, 0, bytes);
    esa_status s = run_end(r);
    if (s == ESA_SUCCESS)
        memcpy(out, back, (size_t)bytes);
    run_free(r);
    return s;
}

esa_status esa_debug_proximity(esa_cache *c, const float *f, uint32_t lm, uint32_t radius,
                               uint32_t *keys, uint32_t *hist)
{
    if (!c)
        return ESA_ERROR_INVALID_ARGUMENT;
    esa_context *ctx = c->ctx;
    CHECK(f && keys, "f and keys must not be NULL");
    CHECK(lm >= 1 && lm <= c->d.max_tokens, "lm must be 1..max_tokens (got %u)", lm);
    CHECK(radius <= ESA_MAX_RADIUS, "radius must be <= %d (got %u)", ESA_MAX_RADIUS, radius);
    uint64_t bytes = (uint64_t)lm * 4, hist_bytes = ESA_TOPK_BINS * 4;
    run r;
    esa_status s = run_begin(&r, ctx, pad16(bytes), pad16(bytes) + pad16(hist_bytes));
    if (s != ESA_SUCCESS)
        return s;
    put(&r, f, bytes, &c->f, 0);
    ctx->vk.vkCmdFillBuffer(r.cb, c->topk.buffer, 0, VK_WHOLE_SIZE, 0);
    esa_cmd_barrier(ctx, r.cb);
    esa_record_proximity(c, r.cb, lm, radius);
    const void *k_back = get(&r, &c->keys, 0, bytes);
    const void *h_back = get(&r, &c->topk, 0, hist_bytes);
    s = run_end(&r);
    if (s == ESA_SUCCESS) {
        memcpy(keys, k_back, (size_t)bytes);
        if (hist)
            memcpy(hist, h_back, (size_t)hist_bytes);
    }
    run_free(&r);
    return s;
}

esa_status esa_debug_topk(esa_cache *c, const float *f, uint32_t lm, uint32_t radius, uint32_t k,
                          uint32_t pos0, uint32_t *out)
{
    if (!c)
        return ESA_ERROR_INVALID_ARGUMENT;
    esa_context *ctx = c->ctx;
    CHECK(f && out, "f and out must not be NULL");
    CHECK(lm >= 1 && lm <= c->d.max_tokens, "lm must be 1..max_tokens (got %u)", lm);
    CHECK(k >= 1 && k <= lm, "k must be 1..lm (got %u)", k);
    CHECK(radius <= ESA_MAX_RADIUS, "radius must be <= %d (got %u)", ESA_MAX_RADIUS, radius);
    CHECK((uint64_t)pos0 + lm <= UINT32_MAX, "pos0 + lm must fit 32 bits");
    esa_buffer sel;
    esa_status s = esa_buffer_create(ctx, (VkDeviceSize)k * 4, ESA_MEM_DEVICE, &sel);
    if (s != ESA_SUCCESS)
        return s;
    run r;
    s = run_begin(&r, ctx, pad16((uint64_t)lm * 4), pad16((uint64_t)k * 4));
    if (s != ESA_SUCCESS) {
        esa_buffer_destroy(ctx, &sel);
        return s;
    }
    put(&r, f, (uint64_t)lm * 4, &c->f, 0);
    ctx->vk.vkCmdFillBuffer(r.cb, c->topk.buffer, 0, VK_WHOLE_SIZE, 0);
    esa_cmd_barrier(ctx, r.cb);
    esa_record_proximity(c, r.cb, lm, radius);
    esa_record_topk(c, r.cb, lm, k, pos0, sel.address);
    s = run_finish(&r, &sel, out, (uint64_t)k * 4);
    esa_buffer_destroy(ctx, &sel);
    return s;
}

esa_status esa_debug_scores(esa_cache *c, const float *qc, uint32_t n, const uint16_t *kc,
                            uint32_t m0, uint32_t lm, float *f)
{
    if (!c)
        return ESA_ERROR_INVALID_ARGUMENT;
    esa_context *ctx = c->ctx;
    CHECK(qc && kc && f, "qc, kc and f must not be NULL");
    CHECK(n >= 1 && n <= c->d.chunk, "n must be 1..chunk (got %u)", n);
    CHECK(lm >= 1 && (uint64_t)m0 + lm <= c->d.max_tokens, "need 1 <= lm and m0 + lm <= max_tokens");
    esa_layer *L = &c->layers[0];
    int exact = c->d.score_mode == ESA_SCORES_EXACT;
    uint32_t dc = c->dc;
    uint64_t q_bytes = (uint64_t)n * dc * 4, k_bytes = (uint64_t)lm * dc * 2, f_bytes = (uint64_t)lm * 4;
    run r;
    esa_status s = run_begin(&r, ctx, pad16(q_bytes) + pad16(k_bytes), pad16(f_bytes));
    if (s != ESA_SUCCESS)
        return s;
    put(&r, qc, q_bytes, &c->qc, 0);
    if (exact)
        s = put_pages(&r, c, kc, k_bytes, 0, (uint64_t)m0 * dc * 2); /* dc = G*d: K rows */
    else
        put(&r, kc, k_bytes, &L->kc, (VkDeviceSize)m0 * dc * 2);
    if (s != ESA_SUCCESS) {
        esa_submit_wait(ctx); /* ends the command buffer */
        run_free(&r);
        return s;
    }
    ctx->vk.vkCmdFillBuffer(r.cb, c->rowmax.buffer, 0, VK_WHOLE_SIZE, 0);
    esa_cmd_barrier(ctx, r.cb);
    esa_pc_score sc = {
        .qc = c->qc.address, .kc = exact ? 0 : L->kc.address, .pages = exact ? L->table.address : 0,
        .rowmax = c->rowmax.address, .f = c->f.address, .n = n, .dc = dc, .m0 = m0, .lm = lm,
        .page_shift = exact ? c->page_shift : 0,
    };
    esa_record_scores(c, r.cb, &sc);
    s = run_finish(&r, &c->f, f, f_bytes);
    return s;
}

esa_status esa_debug_compress(esa_cache *c, const void *x, esa_dtype x_dtype, uint32_t n,
                              const float *m, uint32_t rows, uint32_t cols, void *out,
                              esa_dtype out_dtype)
{
    if (!c)
        return ESA_ERROR_INVALID_ARGUMENT;
    esa_context *ctx = c->ctx;
    CHECK(x && m && out, "x, m and out must not be NULL");
    CHECK((x_dtype == ESA_F32 || x_dtype == ESA_F16) && (out_dtype == ESA_F32 || out_dtype == ESA_F16),
          "bad dtype");
    CHECK(n >= 1 && n <= 65535 && rows >= 1 && cols >= 1, "n (1..65535), rows and cols must be >= 1");
    /* fp16 rows are read and written as packed pairs: the library's strides are always even */
    CHECK(x_dtype == ESA_F32 || cols % 2 == 0, "fp16 input needs an even cols");
    CHECK(out_dtype == ESA_F32 || rows % 2 == 0, "fp16 output needs an even rows");
    uint64_t x_bytes = (uint64_t)n * cols * (x_dtype == ESA_F16 ? 2 : 4);
    uint32_t rs = (rows + 3u) & ~3u; /* compress.glsl: the matrix's rows padded to 4 */
    uint64_t m_bytes = (uint64_t)rs * cols * 4;
    uint64_t o_bytes = (uint64_t)n * rows * (out_dtype == ESA_F16 ? 2 : 4);
    esa_buffer xb = {0}, mb = {0}, ob = {0};
    esa_status s = esa_buffer_create(ctx, x_bytes, ESA_MEM_DEVICE, &xb);
    if (s == ESA_SUCCESS)
        s = esa_buffer_create(ctx, m_bytes, ESA_MEM_DEVICE, &mb);
    if (s == ESA_SUCCESS)
        s = esa_buffer_create(ctx, o_bytes, ESA_MEM_DEVICE, &ob);
    run r;
    if (s == ESA_SUCCESS)
        s = run_begin(&r, ctx, pad16(x_bytes) + pad16(m_bytes), pad16(o_bytes));
    if (s == ESA_SUCCESS) {
        put(&r, x, x_bytes, &xb, 0);
        float *mt = stage(&r, m_bytes, &mb, 0); /* [cols][rs] */
        memset(mt, 0, m_bytes);
        for (uint32_t i = 0; i < rows; i++)
            for (uint32_t j = 0; j < cols; j++)
                mt[(size_t)j * rs + i] = m[(size_t)i * cols + j];
        esa_cmd_barrier(ctx, r.cb);
        esa_pc_compress pc = {
            .x = xb.address, .mt = mb.address, .out = ob.address, .n = n, .rows = rows,
            .cols = cols, .x_stride = cols, .out_stride = rows,
            .x_f16 = x_dtype == ESA_F16, .out_f16 = out_dtype == ESA_F16,
        };
        esa_record_compress(c, r.cb, &pc);
        esa_cmd_barrier(ctx, r.cb);
        s = run_finish(&r, &ob, out, o_bytes);
    }
    esa_buffer_destroy(ctx, &xb);
    esa_buffer_destroy(ctx, &mb);
    esa_buffer_destroy(ctx, &ob);
    return s;
}

esa_status esa_debug_attend(esa_cache *c, const float *q, uint32_t n, uint32_t q_cache_pos0,
                            const uint16_t *k, const uint16_t *v, uint32_t nk,
                            const uint32_t *list, uint32_t nlist, const esa_debug_segment *seg,
                            uint32_t nseg, float *out, uint32_t *slots)
{
    if (!c)
        return ESA_ERROR_INVALID_ARGUMENT;
    esa_context *ctx = c->ctx;
    const esa_cache_desc *d = &c->d;
    CHECK(q && out && (nk == 0 || (k && v)) && (nlist == 0 || list) && (nseg == 0 || seg),
          "a needed pointer is NULL");
    CHECK(n >= 1 && n <= d->chunk, "n must be 1..chunk (got %u)", n);
    CHECK(nk <= d->max_tokens, "nk must be <= max_tokens (got %u)", nk);
    CHECK(nlist <= d->top_k, "nlist must be <= top_k (got %u)", nlist);
    CHECK(nseg <= ESA_MAX_SEGMENTS, "at most %u segments (a chunk's partial slots)", ESA_MAX_SEGMENTS);
    uint32_t frames = 0;
    for (uint32_t i = 0; i < nseg; i++) {
        int seen = 0;
        for (uint32_t j = 0; j < i; j++)
            seen |= seg[j].q_rope_pos0 == seg[i].q_rope_pos0 && seg[j].q_rope_step == seg[i].q_rope_step;
        frames += !seen;
    }
    CHECK(frames <= 2, "at most 2 distinct query frames (q_rope_pos0, q_rope_step)");
    for (uint32_t i = 0; i < nlist; i++)
        CHECK(list[i] < nk, "list[%u] = %u is not a stored key (nk %u)", i, list[i], nk);
    esa_segment sg[ESA_MAX_SEGMENTS];
    uint64_t total = 0;
    for (uint32_t i = 0; i < nseg; i++) {
        uint64_t end = (uint64_t)seg[i].first + seg[i].count;
        CHECK(end <= (seg[i].use_list ? nlist : nk), "segment %u reaches past its keys", i);
        total += seg[i].count;
        /* the cache's partial slots are sized for a step's parts (cache.c), which never hold
         * more keys than the cache and a chunk; overlapping parts could hold more */
        CHECK(total <= (uint64_t)d->max_tokens + d->chunk,
              "the segments hold %llu keys in all; a step attends max_tokens + chunk = %llu at most",
              (unsigned long long)total, (unsigned long long)d->max_tokens + d->chunk);
        sg[i] = (esa_segment){
            .first = seg[i].first, .count = seg[i].count, .use_list = seg[i].use_list != 0,
            .q_rope_pos0 = seg[i].q_rope_pos0, .q_rope_step = seg[i].q_rope_step,
            .k_rope_zero = seg[i].k_rope_zero != 0, .k_rope_sub = seg[i].k_rope_sub,
        };
    }
    esa_layer *L = &c->layers[0];
    uint64_t hd = (uint64_t)d->n_heads * d->head_dim, gd = (uint64_t)d->n_kv_heads * d->head_dim;
    uint64_t q_bytes = n * hd * 4, kv_bytes = nk * gd * 2, l_bytes = (uint64_t)nlist * 4;
    esa_buffer ob;
    esa_status s = esa_buffer_create(ctx, q_bytes, ESA_MEM_DEVICE, &ob);
    if (s != ESA_SUCCESS)
        return s;
    run r;
    s = run_begin(&r, ctx, pad16(q_bytes) + 2 * pad16(kv_bytes) + pad16(l_bytes), pad16(q_bytes));
    if (s == ESA_SUCCESS) {
        put(&r, q, q_bytes, &c->qs, 0);
        s = put_pages(&r, c, k, kv_bytes, 0, 0);
        if (s == ESA_SUCCESS)
            s = put_pages(&r, c, v, kv_bytes, 1, 0);
        if (s != ESA_SUCCESS) {
            esa_submit_wait(ctx);
            run_free(&r);
            esa_buffer_destroy(ctx, &ob);
            return s;
        }
        put(&r, list, l_bytes, &L->sel, 0);
        esa_cmd_barrier(ctx, r.cb);
        uint32_t used = esa_record_attention(c, r.cb, L, n, q_cache_pos0, sg, nseg, ob.address);
        if (slots)
            *slots = used;
        s = run_finish(&r, &ob, out, q_bytes);
    }
    esa_buffer_destroy(ctx, &ob);
    return s;
}
