/* step.c - one attention step: the order of stages of ESA-SPEC sections 3-5 for one chunk,
 * recorded into a command buffer, and the simple blocking API on top of it.
 *
 *   append K/V (+queries) -> compress new keys -> [select: compress queries, scores
 *   (per-query shift, max over the chunk), proximity + histogram, radix top-k]
 *   -> attention parts (split-K) -> log-sum-exp merge into the output. */
#include "internal.h"

#include <float.h>
#include <math.h>
#include <string.h>

static void dispatch(esa_cache *c, VkCommandBuffer cb, int pipe, const void *pc, uint32_t size,
                     uint32_t x, uint32_t y)
{
    esa_context *ctx = c->ctx;
    esa_cmd_push(ctx, cb, ctx->pipes[pipe], pc, size);
    ctx->vk.vkCmdDispatch(cb, x, y, 1);
    esa_cmd_barrier(ctx, cb);
}

void esa_record_compress(esa_cache *c, VkCommandBuffer cb, const esa_pc_compress *in)
{
    /* A workgroup covers 4 * ESA_COMPRESS_WG rows and ESA_COMPRESS_TOKENS tokens (one with the
     * one-token pipeline). A decode step has one token: one workgroup would read the whole
     * matrix (2 MiB for a Llama-3-8B query), so the columns are split until there are
     * ctx->select.compress_groups workgroups (at least 64 columns each, the partials within
     * part_o, which no attention holds at this point of a step: every dispatch ends with a
     * barrier), and compress_reduce.comp adds the splits. */
    esa_context *ctx = c->ctx;
    esa_pc_compress pc = *in;
    uint32_t quads = esa_div_up(pc.rows, 4), tt = pc.n == 1 ? 1u : ESA_COMPRESS_TOKENS;
    uint32_t gx = esa_div_up(quads, ESA_COMPRESS_WG), gy = esa_div_up(pc.n, tt);
    uint32_t splits = 1, want = ctx->select.compress_groups;
    if (gx * gy < want) {
        uint64_t room = c->part_floats / ((uint64_t)pc.n * quads * 4);
        splits = esa_min_u32(esa_div_up(want, gx * gy), esa_div_up(pc.cols, 64));
        splits = (uint32_t)(room < splits ? room : splits);
        splits = esa_max_u32(splits, 1);
    }
    pc.split_cols = esa_div_up(pc.cols, splits);
    splits = esa_div_up(pc.cols, pc.split_cols);
    pc.part = splits > 1 ? c->part_o.address : 0;
    esa_cmd_push(ctx, cb, ctx->pipes[pc.n == 1 ? ESA_PIPE_COMPRESS_ONE : ESA_PIPE_COMPRESS], &pc, sizeof pc);
    ctx->vk.vkCmdDispatch(cb, gx, gy, splits);
    if (splits > 1) { /* the barrier after the reduce keeps the next split's partials apart */
        esa_cmd_barrier(ctx, cb);
        dispatch(c, cb, ESA_PIPE_COMPRESS_REDUCE, &pc, sizeof pc, esa_div_up(pc.n * quads, ctx->wg_size), 1);
    }
}

void esa_record_scores(esa_cache *c, VkCommandBuffer cb, const esa_pc_score *sc)
{
    /* One token per invocation for one query (at most score_groups workgroups, which then
     * loop), score_tm for chunks: past 65535 workgroups (the spec's minimum of
     * maxComputeWorkGroupCount[0]) the range goes in several dispatches, each a slice of f and
     * of the keys; the row maxima of mode 0 accumulate over all of them before mode 1. */
    esa_context *ctx = c->ctx;
    uint32_t per_wg = ESA_SCORE_WG * (sc->n > 1 ? c->score_tm : 1u);
    uint32_t cap = sc->n > 1 ? 0u : ctx->select.score_groups;
    const uint32_t slice = per_wg * 65535u;
    for (uint32_t mode = sc->n > 1 ? 0u : 1u; mode < 2; mode++)
        for (uint32_t m = 0; m < sc->lm; m += slice) {
            esa_pc_score pc = *sc;
            pc.mode = mode;
            pc.m0 = sc->m0 + m;
            pc.lm = esa_min_u32(slice, sc->lm - m);
            pc.f = sc->f + (VkDeviceAddress)m * 4;
            esa_cmd_push(ctx, cb, c->score_pipe[sc->n > 1], &pc, sizeof pc);
            uint32_t groups = esa_div_up(pc.lm, per_wg);
            ctx->vk.vkCmdDispatch(cb, cap ? esa_min_u32(groups, cap) : groups, 1, 1);
            esa_cmd_barrier(ctx, cb);
        }
}

void esa_record_proximity(esa_cache *c, VkCommandBuffer cb, uint32_t lm, uint32_t radius)
{
    esa_pc_proximity px = {
        .f = c->f.address, .keys = c->keys.address, .state = c->topk.address, .lm = lm,
        .radius = radius,
    };
    dispatch(c, cb, ESA_PIPE_PROXIMITY, &px, sizeof px,
             esa_div_up(lm, c->ctx->wg_size * c->ctx->proximity_items), 1);
}

void esa_record_topk(esa_cache *c, VkCommandBuffer cb, uint32_t lm, uint32_t k, uint32_t pos0,
                     VkDeviceAddress out)
{
    /* shaders/topk.glsl: pick 0; hist1 and pick 1, sized by pick 0 (empty unless the threshold
     * bin of the first 11 bits is huge); filter (one read of the keys); resolve (1 workgroup,
     * over the candidates); write (reads the bitmap, lm / 8 bytes) */
    esa_context *ctx = c->ctx;
    uint32_t nblocks = esa_div_up(lm, ESA_TOPK_BLOCK);
    esa_pc_topk pc = {
        .keys = c->keys.address, .state = c->topk.address, .blocks = c->blocks.address,
        .bits = c->topk_bits.address, .cand = c->cand.address, .out = out, .lm = lm, .k = k,
        .nblocks = nblocks, .pos0 = pos0, .cap = c->d.max_tokens,
    };
    /* topk_filter and topk_resolve count into blocks[] by atomics; the barrier after pick 0
     * orders this clear before them */
    ctx->vk.vkCmdFillBuffer(cb, c->blocks.buffer, 0, (VkDeviceSize)nblocks * 8, 0);
    dispatch(c, cb, ESA_PIPE_TOPK_PICK, &pc, sizeof pc, 1, 1);
    esa_cmd_push(ctx, cb, ctx->pipes[ESA_PIPE_TOPK_HIST1], &pc, sizeof pc);
    ctx->vk.vkCmdDispatchIndirect(cb, c->topk.buffer, ESA_TOPK_ARGS * 4);
    esa_cmd_barrier(ctx, cb);
    pc.pass = 1;
    esa_cmd_push(ctx, cb, ctx->pipes[ESA_PIPE_TOPK_PICK], &pc, sizeof pc);
    ctx->vk.vkCmdDispatchIndirect(cb, c->topk.buffer, (ESA_TOPK_ARGS + 3) * 4);
    esa_cmd_barrier(ctx, cb);
    dispatch(c, cb, ESA_PIPE_TOPK_FILTER, &pc, sizeof pc, nblocks, 1);
    dispatch(c, cb, ESA_PIPE_TOPK_RESOLVE, &pc, sizeof pc, 1, 1);
    dispatch(c, cb, ESA_PIPE_TOPK_WRITE, &pc, sizeof pc, nblocks, 1);
}

static void record_select(esa_cache *c, VkCommandBuffer cb, esa_layer *L, uint32_t n,
                          uint32_t nI, uint32_t lm)
{
    esa_context *ctx = c->ctx;
    const esa_cache_desc *d = &c->d;
    int exact = d->score_mode == ESA_SCORES_EXACT;
    uint32_t hd = d->n_heads * d->head_dim;
    esa_pc_compress cq = {
        .x = c->qs.address, .mt = exact ? c->a_exact.address : L->at.address, .out = c->qc.address,
        .n = n, .rows = c->dc, .cols = hd, .x_stride = hd, .out_stride = c->dc,
    };
    esa_record_compress(c, cb, &cq);
    ctx->vk.vkCmdFillBuffer(cb, c->topk.buffer, 0, VK_WHOLE_SIZE, 0);
    ctx->vk.vkCmdFillBuffer(cb, c->rowmax.buffer, 0, VK_WHOLE_SIZE, 0);
    esa_cmd_barrier(ctx, cb);
    esa_cmd_stamp(ctx, cb, ESA_STAGE_COMPRESS);
    esa_pc_score sc = {
        .qc = c->qc.address, .kc = exact ? 0 : L->kc.address, .pages = exact ? L->table.address : 0,
        .rowmax = c->rowmax.address, .f = c->f.address, .n = n, .dc = c->dc, .m0 = nI, .lm = lm,
        .page_shift = exact ? c->page_shift : 0,
    };
    esa_record_scores(c, cb, &sc);
    esa_cmd_stamp(ctx, cb, ESA_STAGE_SCORE);
    esa_record_proximity(c, cb, lm, c->radius);
    esa_cmd_stamp(ctx, cb, ESA_STAGE_PROXIMITY);
    esa_record_topk(c, cb, lm, d->top_k, nI, L->sel.address);
    esa_cmd_stamp(ctx, cb, ESA_STAGE_TOPK);
}

/* Split the parts' keys over workgroups so the device has enough of them (flash-decoding):
 * at least the tuning's workgroup count with `base` workgroups per split (row tiles times KV
 * heads), each split at least 16 keys per key lane and at most split_keys where the partial
 * slots allow (doubled until they do), at most lane_keys, and within the partial-slot
 * capacity (each split writes one slot per key lane; cache.c sizes it for parts of
 * max_tokens + chunk keys in all). Returns the keys per split. */
static uint32_t plan_splits(esa_cache *c, const esa_attend_tuning *t, const esa_segment *seg,
                            uint32_t nseg, uint32_t n, uint32_t base)
{
    uint64_t total = 0;
    for (uint32_t i = 0; i < nseg; i++)
        total += seg[i].count;
    uint64_t row_floats = (uint64_t)n * c->d.n_heads * c->d.head_dim;
    uint64_t max_slots = c->part_floats / row_floats;
    uint32_t want = esa_max_u32(1u, esa_div_up(t->workgroups, base));
    uint64_t unit = t->kl;
    uint64_t len = (total + want - 1) / want;
    if (t->split_keys && len > (uint64_t)t->split_keys * unit)
        len = (uint64_t)t->split_keys * unit;
    if (len < 16 * unit)
        len = 16 * unit;
    uint64_t cap = t->lane_keys ? (uint64_t)t->lane_keys * t->kl : UINT64_MAX;
    for (;;) {
        len = (len + unit - 1) / unit * unit;
        if (len > cap) /* the cache holds the slots this needs (cache.c) */
            return (uint32_t)cap;
        uint64_t slots = 0;
        for (uint32_t i = 0; i < nseg; i++)
            slots += (seg[i].count + len - 1) / len * t->kl;
        if (slots <= max_slots || len >= total)
            return (uint32_t)len;
        len *= 2;
    }
}

/* The query frames of the parts (at most 2 distinct ones: ESA's global and local frames, or
 * the true positions), rotated by rope_q.comp into cache->qf; frame[i] of each part. */
static uint32_t record_frames(esa_cache *c, VkCommandBuffer cb, uint32_t n, const esa_segment *seg,
                              uint32_t nseg, uint32_t *frame)
{
    const esa_cache_desc *d = &c->d;
    uint32_t pos0[2] = {0, 0}, step[2] = {0, 0}, nf = 0;
    for (uint32_t i = 0; i < nseg; i++) {
        uint32_t f = 0;
        while (f < nf && !(pos0[f] == seg[i].q_rope_pos0 && step[f] == seg[i].q_rope_step))
            f++;
        if (f == nf && nf < 2) {
            pos0[nf] = seg[i].q_rope_pos0;
            step[nf++] = seg[i].q_rope_step;
        }
        frame[i] = f < nf ? f : 0; /* callers pass at most 2 frames (esa_debug_attend checks) */
    }
    if (nf == 0)
        return 0;
    uint32_t hd = d->n_heads * d->head_dim;
    esa_pc_rope_q pr = {
        .q = c->qs.address, .out0 = c->qf[0].address, .out1 = c->qf[1].address,
        .rope = c->rope.address, .n = n, .hd = hd, .d = d->head_dim, .rd = d->rope_dims,
        .neox = d->rope_style == ESA_ROPE_NEOX, .pos0_0 = pos0[0], .step_0 = step[0],
        .pos0_1 = pos0[1], .step_1 = step[1], .scale = d->scale * 1.44269504088896340736f,
    };
    dispatch(c, cb, ESA_PIPE_ROPE_Q, &pr, sizeof pr, esa_div_up(n * hd / 2, c->ctx->wg_size), nf);
    return nf;
}

uint32_t esa_record_attention(esa_cache *c, VkCommandBuffer cb, esa_layer *L, uint32_t n,
                              uint32_t P, const esa_segment *seg, uint32_t nseg, VkDeviceAddress out)
{
    esa_context *ctx = c->ctx;
    const esa_cache_desc *d = &c->d;
    int v = n == 1 ? 0 : 1;
    const esa_attend_tuning *t = &c->attend[v];
    uint32_t tile_rows = t->wg / (8u * t->kl) * (t->td == 1 ? 8u : 1u) * t->rpi;
    uint32_t qtiles = esa_div_up(n * (d->n_heads / d->n_kv_heads), tile_rows);
    uint32_t split_len = plan_splits(c, t, seg, nseg, n, qtiles * d->n_kv_heads);
    uint32_t frame[ESA_MAX_SEGMENTS];
    record_frames(c, cb, n, seg, nseg, frame);
    uint32_t row = d->n_kv_heads * d->head_dim * 2;
    esa_pc_attend pa = {
        .pages = L->table.address, .list = L->sel.address,
        .part_o = c->part_o.address, .part_ml = c->part_ml.address, .rope = c->rope.address,
        .n = n, .n_heads = d->n_heads, .split_len = split_len, .q_cache_pos0 = P,
        .page_shift = c->page_shift,
    };
    uint32_t slot = 0;
    for (uint32_t i = 0; i < nseg; i++) {
        if (seg[i].count == 0)
            continue;
        pa.q = c->qf[frame[i]].address;
        pa.key_first = seg[i].first;
        pa.key_count = seg[i].count;
        pa.use_list = seg[i].use_list;
        pa.k_rope_zero = seg[i].k_rope_zero;
        pa.k_rope_sub = seg[i].k_rope_sub;
        pa.slot_base = slot;
        pa.rows = seg[i].gathered ? c->gather.address : 0;
        pa.v_off = seg[i].gathered ? d->top_k * row : c->page_tokens * row;
        uint32_t splits = esa_div_up(seg[i].count, split_len);
        esa_cmd_push(ctx, cb, c->attend_pipe[v], &pa, sizeof pa);
        ctx->vk.vkCmdDispatch(cb, qtiles, splits, d->n_kv_heads);
        slot += splits * t->kl;
    }
    esa_cmd_barrier(ctx, cb);
    esa_cmd_stamp(ctx, cb, ESA_STAGE_ATTENTION);
    esa_pc_merge pm = {
        .part_o = c->part_o.address, .part_ml = c->part_ml.address, .out = out,
        .rows = n * d->n_heads, .d = d->head_dim, .n_slots = slot,
    };
    /* merge.comp strides over the grid: stay within maxComputeWorkGroupCount[0] >= 65535 */
    dispatch(c, cb, ESA_PIPE_MERGE, &pm, sizeof pm,
             esa_min_u32(esa_div_up(n * d->n_heads * d->head_dim, ctx->wg_size), 65535u), 1);
    esa_cmd_stamp(ctx, cb, ESA_STAGE_MERGE);
    return slot;
}

/* COPY reads (pages.c): the selected rows, from wherever their pages are, into c->gather. */
static void record_gather(esa_cache *c, VkCommandBuffer cb, esa_layer *L, uint32_t count)
{
    uint32_t row = c->d.n_kv_heads * c->d.head_dim * 2;
    esa_pc_gather pg = {
        .pages = L->table.address, .list = L->sel.address, .out = c->gather.address,
        .count = count, .row_bytes = row, .page_shift = c->page_shift,
        .v_off = c->page_tokens * row, .v_out = c->d.top_k * row,
    };
    uint64_t words = (uint64_t)count * 2 * (row / 16);
    dispatch(c, cb, ESA_PIPE_GATHER, &pg, sizeof pg,
             (uint32_t)esa_min_u32(esa_div_up((uint32_t)words, c->ctx->wg_size), 65535u), 1);
}

esa_status esa_record_chunk(esa_cache *c, VkCommandBuffer cb, uint32_t layer, uint32_t n,
                            const esa_step_io *io, enum esa_step_mode mode, esa_step_info *info)
{
    esa_context *ctx = c->ctx;
    const esa_cache_desc *d = &c->d;
    esa_layer *L = &c->layers[layer];
    uint32_t P = L->len;
    uint32_t hd = d->n_heads * d->head_dim, gd = d->n_kv_heads * d->head_dim;
    uint32_t nI = esa_min_u32(d->n_initial, P);
    uint32_t nL = esa_min_u32(d->n_local, P - nI);
    uint32_t lm = P - nI - nL;
    int append_only = mode == ESA_STEP_APPEND;
    int window = mode == ESA_STEP_WINDOW;
    uint64_t dense_up_to = (uint64_t)d->n_initial + (window ? 0u : d->top_k) + d->n_local;
    int dense = mode == ESA_STEP_DENSE || (uint64_t)P + n <= dense_up_to;
    int select = !dense && !window && lm > d->top_k;

    /* pages for the new tokens, and the initial and local ones on the device: the one part
     * that can fail (host memory), so it comes before anything else is recorded */
    esa_status s = esa_pages_place(c, cb, layer, P, n);
    if (s != ESA_SUCCESS)
        return s;
    esa_cmd_barrier(ctx, cb); /* the scratch may still be in use by the previous step */
    esa_pc_append pa = {
        .q_in = io->q, .k_in = io->k, .v_in = io->v, .q_out = c->qs.address,
        .pages = L->table.address, .n = n, .hd = append_only ? 0 : hd, .gd = gd, .pos = P,
        .in_f16 = (uint32_t)io->in_f16, .page_shift = c->page_shift, .v_off = c->page_tokens * gd * 2,
    };
    dispatch(c, cb, ESA_PIPE_APPEND, &pa, sizeof pa, esa_div_up(esa_max_u32(hd, gd) / 2, ctx->wg_size), n);
    esa_cmd_stamp(ctx, cb, ESA_STAGE_APPEND);
    if (d->score_mode == ESA_SCORES_COMPRESSED) {
        esa_pc_compress ck = {
            .x_pages = L->table.address, .mt = L->bt.address,
            .out = L->kc.address + (VkDeviceAddress)P * c->dc * 2, .n = n, .rows = c->dc,
            .cols = gd, .x_stride = gd, .out_stride = c->dc, .x_f16 = 1, .out_f16 = 1, .x_row0 = P,
            .x_shift = c->page_shift,
        };
        esa_record_compress(c, cb, &ck);
        esa_cmd_barrier(ctx, cb);
        esa_cmd_stamp(ctx, cb, ESA_STAGE_COMPRESS);
    }
    if (append_only) {
        L->len = P + n;
        L->n_selected = 0;
        L->sel_first = 0;
        return ESA_SUCCESS;
    }
    int gathered = 0;
    if (select) {
        record_select(c, cb, L, n, nI, lm);
        gathered = c->kv_read == ESA_KV_READ_COPY && L->host_pages > 0 && c->gather.buffer;
        if (gathered)
            record_gather(c, cb, L, d->top_k);
    }

    esa_segment seg[3];
    uint32_t nseg = 0;
    if (dense) {
        seg[nseg++] = (esa_segment){.first = 0, .count = P + n, .q_rope_pos0 = P, .q_rope_step = 1};
    } else {
        int exact_pos = d->position_mode == ESA_POSITIONS_EXACT;
        esa_segment g = exact_pos ? (esa_segment){.q_rope_pos0 = P, .q_rope_step = 1}
                                  : (esa_segment){.q_rope_pos0 = d->global_pos, .k_rope_zero = 1};
        g.first = 0;
        g.count = nI;
        seg[nseg++] = g;
        if (select) {
            g.first = 0;
            g.count = d->top_k;
            g.use_list = 1;
            g.gathered = (uint32_t)gathered;
        } else {
            g.first = nI;
            g.count = window ? 0 : lm;
        }
        seg[nseg++] = g;
        esa_segment loc = exact_pos ? (esa_segment){.q_rope_pos0 = P, .q_rope_step = 1}
                                    : (esa_segment){.q_rope_pos0 = nL, .q_rope_step = 1, .k_rope_sub = P - nL};
        loc.first = P - nL;
        loc.count = nL + n;
        seg[nseg++] = loc;
    }
    esa_record_attention(c, cb, L, n, P, seg, nseg, io->out);

    L->len = P + n;
    L->n_selected = dense || window ? 0 : (select ? d->top_k : lm);
    L->sel_first = select ? 0xffffffffu : nI; /* a range when nothing was chosen */
    if (info) {
        info->dense = (uint32_t)dense;
        info->n_initial = nI;
        info->n_middle = lm;
        info->n_local = nL;
        info->n_selected = L->n_selected;
        info->n_chunks++;
    }
    return ESA_SUCCESS;
}

/* ----------------------------------------------------------------------------------------- */
/* The simple, blocking API                                                                   */

/* NaN, infinity, and (for fp32 keys and values, which are stored as fp16) magnitudes beyond
 * the fp16 range are refused: each would turn the attention into NaN. */
static int finite_input(const void *p, size_t count, esa_dtype dtype, float limit)
{
    if (dtype == ESA_F32) {
        const float *f = p;
        for (size_t i = 0; i < count; i++)
            if (!(fabsf(f[i]) <= limit))
                return 0;
    } else {
        const uint16_t *h = p;
        for (size_t i = 0; i < count; i++)
            if ((h[i] & 0x7c00u) == 0x7c00u)
                return 0;
    }
    return 1;
}

static esa_status attend(esa_cache *c, uint32_t layer, uint32_t n, esa_dtype dtype,
                         const void *q, const void *k, const void *v, float *out,
                         esa_step_info *info, enum esa_step_mode mode)
{
    if (!c)
        return ESA_ERROR_INVALID_ARGUMENT;
    esa_context *ctx = c->ctx;
    const esa_cache_desc *d = &c->d;
    if (!k || !v || (mode != ESA_STEP_APPEND && (!q || !out)))
        return esa_fail(ctx, ESA_ERROR_INVALID_ARGUMENT, "q, k, v and out must not be NULL");
    if (layer >= d->n_layers)
        return esa_fail(ctx, ESA_ERROR_INVALID_ARGUMENT, "layer %u out of range (n_layers %u)", layer, d->n_layers);
    if (n == 0)
        return esa_fail(ctx, ESA_ERROR_INVALID_ARGUMENT, "n must be at least 1");
    if (dtype != ESA_F32 && dtype != ESA_F16)
        return esa_fail(ctx, ESA_ERROR_INVALID_ARGUMENT, "bad dtype");
    esa_layer *L = &c->layers[layer];
    if (!L->ready)
        return esa_fail(ctx, ESA_ERROR_NOT_READY, "layer %u has no compression matrices", layer);
    if ((uint64_t)L->len + n > d->max_tokens)
        return esa_fail(ctx, ESA_ERROR_CAPACITY, "layer %u holds %u tokens; %u more exceed max_tokens %u",
                        layer, L->len, n, d->max_tokens);
    /* append-only steps take no queries: hd = 0 makes them empty below */
    size_t hd = mode == ESA_STEP_APPEND ? 0 : (size_t)d->n_heads * d->head_dim;
    size_t gd = (size_t)d->n_kv_heads * d->head_dim;
    size_t esz = dtype == ESA_F32 ? 4 : 2;
    if ((hd && !finite_input(q, n * hd, dtype, FLT_MAX)) || !finite_input(k, n * gd, dtype, 65504.0f) ||
        !finite_input(v, n * gd, dtype, 65504.0f))
        return esa_fail(ctx, ESA_ERROR_NON_FINITE,
                        "q, k or v holds NaN or infinity, or k or v a magnitude beyond fp16 (65504)");
    if (info)
        memset(info, 0, sizeof *info);
    /* restored if a chunk fails, so the layer looks as before the call */
    uint32_t len0 = L->len, sel0 = L->n_selected, first0 = L->sel_first;
    for (uint32_t t0 = 0; t0 < n; t0 += d->chunk) {
        uint32_t m = esa_min_u32(d->chunk, n - t0);
        uint8_t *up = c->upload.map;
        if (hd)
            memcpy(up, (const uint8_t *)q + t0 * hd * esz, m * hd * esz);
        memcpy(up + m * hd * esz, (const uint8_t *)k + t0 * gd * esz, m * gd * esz);
        memcpy(up + m * (hd + gd) * esz, (const uint8_t *)v + t0 * gd * esz, m * gd * esz);
        esa_buffer_flush(ctx, &c->upload);
        esa_step_io io = {
            .q = c->upload.address,
            .k = c->upload.address + m * hd * esz,
            .v = c->upload.address + m * (hd + gd) * esz,
            .out = c->download.address,
            .in_f16 = dtype == ESA_F16,
        };
        VkCommandBuffer cb;
        esa_status s = esa_begin(ctx, &cb);
        if (s == ESA_SUCCESS) {
            s = esa_record_chunk(c, cb, layer, m, &io, mode, info);
            esa_status w = esa_submit_wait(ctx); /* also when nothing was recorded: ends the buffer */
            if (s == ESA_SUCCESS)
                s = w;
        }
        if (s != ESA_SUCCESS) {
            L->len = len0; /* the cache holds no partial step */
            L->n_selected = sel0;
            L->sel_first = first0;
            esa_pages_release(c, layer, len0); /* nor the pages of its earlier chunks */
            return s;
        }
        if (hd) {
            esa_buffer_invalidate(ctx, &c->download);
            memcpy(out + t0 * hd, c->download.map, m * hd * sizeof(float));
        }
    }
    return ESA_SUCCESS;
}

esa_status esa_attend(esa_cache *c, uint32_t layer, uint32_t n, esa_dtype dtype, const void *q,
                      const void *k, const void *v, float *out, esa_step_info *info)
{
    return attend(c, layer, n, dtype, q, k, v, out, info, ESA_STEP_ESA);
}

esa_status esa_attend_dense(esa_cache *c, uint32_t layer, uint32_t n, esa_dtype dtype,
                            const void *q, const void *k, const void *v, float *out,
                            esa_step_info *info)
{
    return attend(c, layer, n, dtype, q, k, v, out, info, ESA_STEP_DENSE);
}

esa_status esa_attend_window(esa_cache *c, uint32_t layer, uint32_t n, esa_dtype dtype,
                             const void *q, const void *k, const void *v, float *out,
                             esa_step_info *info)
{
    return attend(c, layer, n, dtype, q, k, v, out, info, ESA_STEP_WINDOW);
}

esa_status esa_append(esa_cache *c, uint32_t layer, uint32_t n, esa_dtype dtype, const void *k,
                      const void *v)
{
    return attend(c, layer, n, dtype, NULL, k, v, NULL, NULL, ESA_STEP_APPEND);
}

esa_status esa_cache_last_selection(esa_cache *c, uint32_t layer, uint32_t *positions,
                                    uint32_t cap, uint32_t *count)
{
    if (!c || !count || (cap && !positions) || layer >= c->d.n_layers)
        return esa_fail(c ? c->ctx : NULL, ESA_ERROR_INVALID_ARGUMENT, "bad argument");
    esa_context *ctx = c->ctx;
    esa_layer *L = &c->layers[layer];
    *count = L->n_selected;
    uint32_t m = esa_min_u32(cap, L->n_selected);
    if (m == 0)
        return ESA_SUCCESS;
    if (L->sel_first != 0xffffffffu) {
        for (uint32_t i = 0; i < m; i++)
            positions[i] = L->sel_first + i;
        return ESA_SUCCESS;
    }
    /* the selection was written by a shader in an earlier submit: the copy's barrier orders it */
    esa_status s = esa_copy_wait(ctx, &L->sel, 0, &c->readback, 0, (VkDeviceSize)m * 4);
    if (s != ESA_SUCCESS)
        return s;
    esa_buffer_invalidate(ctx, &c->readback);
    memcpy(positions, c->readback.map, (size_t)m * 4);
    return ESA_SUCCESS;
}
