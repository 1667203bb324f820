/* profile.c - where the device time goes: timestamps between the stages of the simple API's
 * submissions, the memory the context holds, and a read-bandwidth probe to measure stages
 * against (KERNEL-NOTES: report each stage as a fraction of what the device can stream).
 *
 * Timestamps follow the Vulkan rules: only on queue families with timestampValidBits > 0,
 * differences masked to those bits and scaled by timestampPeriod. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

const char *esa_stage_name(esa_stage stage)
{
    static const char *const names[ESA_STAGE_COUNT] = {
        "append", "compress", "score", "proximity", "topk", "attention", "merge",
    };
    return (unsigned)stage < ESA_STAGE_COUNT ? names[stage] : "?";
}

/* The queue family's valid timestamp bits as a mask; 0 if it has none. */
static uint64_t timestamp_mask(esa_context *ctx)
{
    if (ctx->info.timestamp_period_ns <= 0.0f)
        return 0;
    uint32_t n = 0;
    ctx->vk.vkGetPhysicalDeviceQueueFamilyProperties(ctx->physical, &n, NULL);
    if (ctx->queue_family >= n || n > 64)
        return 0;
    VkQueueFamilyProperties props[64];
    ctx->vk.vkGetPhysicalDeviceQueueFamilyProperties(ctx->physical, &n, props);
    uint32_t bits = props[ctx->queue_family].timestampValidBits;
    if (bits == 0)
        return 0;
    return bits >= 64 ? ~0ull : (1ull << bits) - 1;
}

static esa_status make_pool(esa_context *ctx, uint32_t count, VkQueryPool *out)
{
    VkQueryPoolCreateInfo qi = {
        .sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO,
        .queryType = VK_QUERY_TYPE_TIMESTAMP,
        .queryCount = count,
    };
    VkResult r = ctx->vk.vkCreateQueryPool(ctx->device, &qi, NULL, out);
    return r == VK_SUCCESS ? ESA_SUCCESS : esa_vk_fail(ctx, r, "vkCreateQueryPool");
}

static esa_status need_timestamps(esa_context *ctx)
{
    if (!ctx->ts_mask)
        ctx->ts_mask = timestamp_mask(ctx);
    if (!ctx->ts_mask)
        return esa_fail(ctx, ESA_ERROR_DEVICE_UNSUPPORTED,
                        "%s: the compute queue family has no timestamps", ctx->info.name);
    return ESA_SUCCESS;
}

esa_status esa_context_set_profiling(esa_context *ctx, int enable)
{
    if (!ctx)
        return ESA_ERROR_INVALID_ARGUMENT;
    if (!enable) {
        ctx->profiling = 0;
        return ESA_SUCCESS;
    }
    esa_status s = need_timestamps(ctx);
    if (s == ESA_SUCCESS && !ctx->ts_pool)
        s = make_pool(ctx, ESA_TS_MAX, &ctx->ts_pool);
    if (s != ESA_SUCCESS)
        return s;
    ctx->profiling = 1;
    return ESA_SUCCESS;
}

esa_status esa_context_get_profile(esa_context *ctx, esa_profile *profile, int reset)
{
    if (!ctx || !profile)
        return esa_fail(ctx, ESA_ERROR_INVALID_ARGUMENT, "ctx and profile must not be NULL");
    *profile = ctx->profile;
    if (reset)
        memset(&ctx->profile, 0, sizeof ctx->profile);
    return ESA_SUCCESS;
}

void esa_profile_begin(esa_context *ctx, VkCommandBuffer cb)
{
    ctx->stamping = 0;
    if (!ctx->profiling)
        return;
    ctx->vk.vkCmdResetQueryPool(cb, ctx->ts_pool, 0, ESA_TS_MAX);
    ctx->ts_used = 0;
    ctx->ts_overflow = 0;
    ctx->stamping = 1;
    esa_cmd_stamp(ctx, cb, -1);
}

void esa_cmd_stamp(esa_context *ctx, VkCommandBuffer cb, int stage)
{
    if (!ctx->stamping)
        return;
    if (ctx->ts_used >= ESA_TS_MAX) {
        ctx->ts_overflow = 1;
        return;
    }
    /* written once every earlier command has completed: the stages are separated by
     * barriers, so each difference is one stage's time */
    ctx->vk.vkCmdWriteTimestamp(cb, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, ctx->ts_pool, ctx->ts_used);
    ctx->ts_stage[ctx->ts_used++] = (int8_t)stage;
}

void esa_profile_collect(esa_context *ctx)
{
    if (!ctx->stamping)
        return;
    ctx->stamping = 0;
    if (ctx->ts_overflow) {
        ctx->profile.dropped++;
        return;
    }
    uint32_t n = ctx->ts_used;
    if (n < 2) /* a copy or an upload: nothing that belongs to a stage */
        return;
    uint64_t t[ESA_TS_MAX];
    VkResult r = ctx->vk.vkGetQueryPoolResults(ctx->device, ctx->ts_pool, 0, n, sizeof t, t,
                                               sizeof t[0], VK_QUERY_RESULT_64_BIT);
    if (r != VK_SUCCESS) {
        ctx->profile.dropped++;
        return;
    }
    double ms = ctx->info.timestamp_period_ns * 1e-6;
    for (uint32_t i = 1; i < n; i++)
        if (ctx->ts_stage[i] >= 0)
            ctx->profile.stage_ms[ctx->ts_stage[i]] += (double)((t[i] - t[i - 1]) & ctx->ts_mask) * ms;
    ctx->profile.total_ms += (double)((t[n - 1] - t[0]) & ctx->ts_mask) * ms;
    ctx->profile.submissions++;
}

void esa_profile_destroy(esa_context *ctx)
{
    if (ctx->ts_pool)
        ctx->vk.vkDestroyQueryPool(ctx->device, ctx->ts_pool, NULL);
    ctx->ts_pool = VK_NULL_HANDLE;
}

esa_status esa_context_memory_usage(const esa_context *ctx, esa_memory_usage *usage)
{
    if (!ctx || !usage)
        return ESA_ERROR_INVALID_ARGUMENT;
    *usage = (esa_memory_usage){
        .device_local_bytes = ctx->mem_local,
        .host_visible_bytes = ctx->mem_host,
        .allocations = ctx->mem_allocs,
        .peak_device_local_bytes = ctx->mem_peak_local,
    };
    return ESA_SUCCESS;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* One timed pass of the probe shader; *ns receives its device time. */
static esa_status probe_once(esa_context *ctx, VkQueryPool pool, const esa_pc_probe *pc,
                             uint32_t groups, double *ns)
{
    VkCommandBuffer cb;
    esa_status s = esa_begin(ctx, &cb);
    if (s != ESA_SUCCESS)
        return s;
    esa_vk *vk = &ctx->vk;
    vk->vkCmdResetQueryPool(cb, pool, 0, 2);
    esa_cmd_barrier(ctx, cb);
    vk->vkCmdWriteTimestamp(cb, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, pool, 0);
    esa_cmd_push(ctx, cb, ctx->pipes[ESA_PIPE_PROBE], pc, sizeof *pc);
    vk->vkCmdDispatch(cb, groups, 1, 1);
    vk->vkCmdWriteTimestamp(cb, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, pool, 1);
    s = esa_submit_wait(ctx);
    if (s != ESA_SUCCESS)
        return s;
    uint64_t t[2];
    VkResult r = vk->vkGetQueryPoolResults(ctx->device, pool, 0, 2, sizeof t, t, sizeof t[0],
                                           VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT);
    if (r != VK_SUCCESS)
        return esa_vk_fail(ctx, r, "vkGetQueryPoolResults");
    *ns = (double)((t[1] - t[0]) & ctx->ts_mask) * ctx->info.timestamp_period_ns;
    return ESA_SUCCESS;
}

esa_status esa_context_probe_bandwidth(esa_context *ctx, uint64_t bytes, uint32_t repeats,
                                       double *gbytes_per_s)
{
    if (!ctx || !gbytes_per_s)
        return esa_fail(ctx, ESA_ERROR_INVALID_ARGUMENT, "ctx and gbytes_per_s must not be NULL");
    bytes = (bytes + 15) & ~15ull;
    if (bytes < 4096 || bytes / 16 > UINT32_MAX || bytes > ctx->info.max_memory_allocation_size)
        return esa_fail(ctx, ESA_ERROR_INVALID_ARGUMENT,
                        "probe size %llu bytes: must be 4096 .. min(maxMemoryAllocationSize %llu, 64 GiB)",
                        (unsigned long long)bytes, (unsigned long long)ctx->info.max_memory_allocation_size);
    if (repeats < 1 || repeats > 1000)
        return esa_fail(ctx, ESA_ERROR_INVALID_ARGUMENT, "repeats %u: must be 1 .. 1000", repeats);
    esa_status s = need_timestamps(ctx);
    if (s != ESA_SUCCESS)
        return s;
    double *ns = esa_malloc(ctx, sizeof *ns * repeats);
    if (!ns)
        return esa_fail(ctx, ESA_ERROR_OUT_OF_HOST_MEMORY, "probe timings");
    uint32_t count = (uint32_t)(bytes / 16);
    /* enough workgroups to fill any device, each streaming at least a few KiB */
    uint32_t groups = esa_max_u32(1u, esa_min_u32(65535u, esa_div_up(count, ctx->wg_size * 4u)));
    esa_buffer src = {0}, sink = {0};
    VkQueryPool pool = VK_NULL_HANDLE;
    int profiling = ctx->profiling;
    ctx->profiling = 0; /* the probe is not a step */
    s = esa_buffer_create(ctx, bytes, ESA_MEM_DEVICE, &src);
    if (s == ESA_SUCCESS)
        s = esa_buffer_create(ctx, (VkDeviceSize)groups * 4, ESA_MEM_DEVICE, &sink);
    if (s == ESA_SUCCESS)
        s = make_pool(ctx, 2, &pool);
    if (s == ESA_SUCCESS) { /* defined contents */
        VkCommandBuffer cb;
        s = esa_begin(ctx, &cb);
        if (s == ESA_SUCCESS) {
            ctx->vk.vkCmdFillBuffer(cb, src.buffer, 0, VK_WHOLE_SIZE, 0x5bd1e995u);
            s = esa_submit_wait(ctx);
        }
    }
    esa_pc_probe pc = {.src = src.address, .sink = sink.address, .count = count};
    double warm;
    if (s == ESA_SUCCESS)
        s = probe_once(ctx, pool, &pc, groups, &warm);
    for (uint32_t i = 0; s == ESA_SUCCESS && i < repeats; i++)
        s = probe_once(ctx, pool, &pc, groups, &ns[i]);
    if (s == ESA_SUCCESS) {
        qsort(ns, repeats, sizeof *ns, cmp_double);
        double med = repeats % 2 ? ns[repeats / 2] : 0.5 * (ns[repeats / 2 - 1] + ns[repeats / 2]);
        *gbytes_per_s = med > 0.0 ? (double)bytes / med : 0.0;
    }
    ctx->profiling = profiling;
    if (pool)
        ctx->vk.vkDestroyQueryPool(ctx->device, pool, NULL);
    esa_buffer_destroy(ctx, &sink);
    esa_buffer_destroy(ctx, &src);
    esa_free(ctx, ns);
    return s;
}
