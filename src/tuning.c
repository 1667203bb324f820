/* tuning.c - per-device tuning of the kernels, as data: a table of attention profiles, chosen
 * when a cache is made (by the context's tuning: the device type unless the caller forced one,
 * esa_context_desc.tuning), then fitted to the cache's shape and to the device's subgroup size;
 * and a table of the selection kernels' shapes (esa_select_tuning_for, at the end, into
 * ctx->select when the pipelines are made). Nothing else in the library branches on the device
 * type, except where host pages are read (esa_kv_read_for: a matter of memory, not of kernels).
 *
 * attend.comp reads each key once per 8-lane cluster; its speed is set by how many rows each
 * loaded key word serves and by how the lanes share a row (see attend.comp):
 *  - CPU drivers (lavapipe) run a subgroup as SIMD lanes but load memory lane by lane, about
 *    ten FMAs a 32-bit word, while shuffles are cheap: whole rows per lane (td 1), several of
 *    them (rpi), the key's blocks passed around the cluster by shuffles. Decode has a group's
 *    few rows only: their dims split over the 8 lanes (td 8). Measured with esa-bench on Mesa
 *    22.3 (lavapipe's shader compiler also takes minutes for large register tiles: rpi is
 *    kept small). A lane-varying buffer load costs one loop over the lanes per component,
 *    whatever its width: with shaderInt64 the keys and values come as 64-bit words (load64:
 *    attend64), and the prefill attention of esa-bench ran 1.2x faster (12-05, 16k and 64k).
 *    A uniform address costs the same loop (a probe reading one address per subgroup: 8x the
 *    loads, 7.6x the time), and fma() instead of mul + add changed nothing: the loads are the
 *    cost. score.comp's words as 64-bit components changed nothing either (score stage 1066
 *    ms at 16k, 5331-5465 ms at 64k, both ways): not kept.
 *    llvmpipe also ends the loops of an invocation after 65535 iterations in all (gallivm's
 *    guard against endless loops): on any CPU device, whichever profile runs, a key lane takes
 *    at most 16384 keys (lane_keys: a list part with rotation costs up to three iterations a
 *    key, its run, the key and the inner loop's exit), so long parts are split further (and
 *    the cache holds more partial slots). Only those parts need a third; one cap for all parts
 *    keeps the split plan simple.
 *    A chunk reads every key of a part once per row tile, and a CPU runs a dispatch's
 *    workgroups in order, row tiles first (step.c): splits of 4096 keys (split_keys: 1 MiB of
 *    K and V of a 64-dim head, a core's L2 on this machine) are read from cache by all the row
 *    tiles after the first. Dense prefill at 64k tokens (SmolLM2 shape): 1.9x faster than
 *    splits of 16384 (esa-bench, README).
 *  - GPUs keep few registers per invocation: 8 lanes share a row, a 1/8 slice of its dims
 *    each, so a key row is read as one coalesced run; decode spreads the keys over the
 *    clusters of a workgroup (kl). Not yet measured on a GPU. */
#include "internal.h"

typedef struct attend_profile {
    const char *name;
    esa_attend_tuning decode, chunk; /* rpi 0: the GQA group (all heads of one KV head) */
    int load64;                      /* attend64 (64-bit key/value words) where shaderInt64 is on */
} attend_profile;

static const attend_profile profiles[] = {
    {"cpu", {.td = 8, .rpi = 0, .kl = 1, .wg = 8, .workgroups = 64, .reg_dims = 1024},
            {.td = 1, .rpi = 4, .kl = 1, .wg = 8, .workgroups = 64, .reg_dims = 512, .split_keys = 4096},
            .load64 = 1},
    {"gpu", {.td = 8, .rpi = 0, .kl = 16, .wg = 128, .workgroups = 512, .reg_dims = 64},
            {.td = 8, .rpi = 2, .kl = 1, .wg = 128, .workgroups = 512, .reg_dims = 32},
            .load64 = 0},
};

static const attend_profile *attend_profile_of(const esa_context *ctx)
{
    return &profiles[ctx->tuning == ESA_TUNING_CPU ? 0 : 1];
}

int esa_attend_load64(const esa_context *ctx)
{
    return attend_profile_of(ctx)->load64 && ctx->shader_int64;
}

void esa_attend_tuning_for(const esa_context *ctx, uint32_t head_dim, uint32_t group, int decode,
                           esa_attend_tuning *out)
{
    const attend_profile *p = attend_profile_of(ctx);
    esa_attend_tuning t = decode ? p->decode : p->chunk;
    /* llvmpipe's loop guard belongs to the driver, whichever variant runs on it */
    t.lane_keys = ctx->info.type == ESA_DEVICE_CPU ? 16384u : 0u;
    if (t.rpi == 0) /* decode: the group's heads of the one query */
        t.rpi = group;
    /* registers: rows times dims per lane */
    while (t.rpi > 1 && t.rpi * head_dim / t.td > t.reg_dims)
        t.rpi = (t.rpi + 1) / 2;
    if (!decode) /* a chunk has 4 partial slots per row at least (cache.c): one per part, one lane */
        t.kl = 1;
    /* whole subgroups, whole clusters of 8 lanes, kl of them at least */
    uint32_t unit = esa_max_u32(8u * t.kl, ctx->info.subgroup_size);
    if (unit % (8u * t.kl) != 0)
        unit *= 8u * t.kl;
    t.wg = esa_max_u32(unit, t.wg / unit * unit);
    t.name = p->name;
    *out = t;
}

/* The selection kernels, as data. CPU drivers (llvmpipe, measured with esa-bench on Mesa 22.3:
 * README, "What changed") run each memory access of a subgroup lane by lane and an `if` body
 * under a mask whether or not a lane takes it, and switch a workgroup's subgroups as coroutines
 * at every barrier:
 *  - topk_wg: topk_pick and topk_hist1 (pick is one workgroup of barriers): 64. topk_resolve
 *    stays 256 wide on every device: llvmpipe's limit of 65535 loop iterations an invocation
 *    (above) bounds its passes over a list of up to ESA_MAX_TOKENS candidates
 *    (topk_resolve.comp; compress.comp too takes 4 columns an iteration for it);
 *  - filter_wg 0 = one subgroup, so no workgroup waits on another subgroup; lane_words: each
 *    lane scans whole 32-key bitmap words branch-free, its candidates in a loop
 *    (topk_filter.comp);
 *  - score_groups: one query's scores from at most 64 workgroups, each lane walking many keys
 *    with the query loaded once (2.1x faster at 128k tokens, Llama-3-8B shape, than one key per
 *    invocation);
 *  - compress_groups: a few workgroups per thread.
 * GPUs: 256-wide passes, the subgroup reading neighbours together by ballots (coalesced), one
 * key per invocation, enough workgroups to spread a matrix read over the device. Not yet
 * measured on a GPU. */
static const esa_select_tuning select_profiles[] = {
    {.topk_wg = 64, .filter_wg = 0, .filter_lane_words = 1, .score_groups = 64, .compress_groups = 16},
    {.topk_wg = 256, .filter_wg = 256, .filter_lane_words = 0, .score_groups = 0, .compress_groups = 256},
};

void esa_select_tuning_for(const esa_context *ctx, esa_select_tuning *out)
{
    *out = select_profiles[ctx->tuning == ESA_TUNING_CPU ? 0 : 1];
    if (out->filter_wg == 0)
        out->filter_wg = ctx->info.subgroup_size;
}

uint32_t esa_kv_read_for(const esa_context *ctx)
{
    /* where the device and the host share memory a host page is as near as a device page:
     * read it in place; a discrete GPU reads host pages over the bus, so the selected rows are
     * gathered once and attended from device memory (a prefill chunk reads each key once per
     * row tile). esa-bench --kv-read compares them; not yet measured on a discrete GPU. */
    return ctx->info.type == ESA_DEVICE_DISCRETE || ctx->info.type == ESA_DEVICE_OTHER ? ESA_KV_READ_COPY
                                                                                       : ESA_KV_READ_DIRECT;
}
