/* engine.c - the engine-level API: adopt the caller's device, record into its command buffers. */
#include "internal.h"

#include <string.h>

esa_status esa_context_create_external(const esa_external_device_desc *desc, esa_context **out)
{
    if (!out)
        return ESA_ERROR_INVALID_ARGUMENT;
    *out = NULL;
    if (!desc || !desc->get_instance_proc_addr || !desc->instance || !desc->physical_device ||
        !desc->device || !desc->queue)
        return ESA_ERROR_INVALID_ARGUMENT;
    if (!ESA_RESERVED_ZERO(desc->reserved) || !esa_tuning_valid(desc->tuning) ||
        (desc->features & ~(uint32_t)ESA_FEATURE_SHADER_INT64) != 0)
        return ESA_ERROR_INVALID_ARGUMENT;
    esa_context *ctx = esa_calloc(NULL, 1, sizeof *ctx);
    if (!ctx)
        return ESA_ERROR_OUT_OF_HOST_MEMORY;
    ctx->owns_device = 0;
    ctx->instance = desc->instance;
    ctx->physical = desc->physical_device;
    ctx->queue = desc->queue;
    ctx->queue_family = desc->queue_family;
    ctx->tuning = desc->tuning;
    ctx->shader_int64 = (desc->features & ESA_FEATURE_SHADER_INT64) != 0;
    esa_status s = ESA_SUCCESS;
    if (!esa_vk_load_global(&ctx->vk, desc->get_instance_proc_addr) ||
        !esa_vk_load_instance(&ctx->vk, ctx->instance))
        s = esa_fail(ctx, ESA_ERROR_NO_DEVICE, "the given loader lacks entry points");
    if (s == ESA_SUCCESS) {
        ctx->device = desc->device;
        if (!esa_vk_load_device(&ctx->vk, ctx->device))
            s = esa_fail(ctx, ESA_ERROR_NO_DEVICE, "the given device lacks entry points");
    }
    if (s == ESA_SUCCESS && ctx->shader_int64) { /* before any module that uses it is made */
        VkPhysicalDeviceFeatures2 f2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
        ctx->vk.vkGetPhysicalDeviceFeatures2(ctx->physical, &f2);
        if (!f2.features.shaderInt64)
            s = esa_fail(ctx, ESA_ERROR_INVALID_ARGUMENT,
                         "ESA_FEATURE_SHADER_INT64: the physical device does not support shaderInt64");
    }
    if (s == ESA_SUCCESS)
        s = esa_context_init_device_state(ctx);
    if (s != ESA_SUCCESS) {
        esa_context_destroy(ctx);
        return s;
    }
    *out = ctx;
    return ESA_SUCCESS;
}

esa_status esa_cmd_attend(esa_cache *c, VkCommandBuffer cb, uint32_t layer, uint32_t n,
                          const esa_step_buffers *b, esa_step_info *info)
{
    if (!c)
        return ESA_ERROR_INVALID_ARGUMENT;
    esa_context *ctx = c->ctx;
    if (!cb || !b || !b->q || !b->k || !b->v || !b->out)
        return esa_fail(ctx, ESA_ERROR_INVALID_ARGUMENT, "cb, buffers and their addresses are required");
    if (((b->q | b->k | b->v | b->out) & 3u) != 0)
        return esa_fail(ctx, ESA_ERROR_INVALID_ARGUMENT, "addresses must be 4-byte aligned");
    if (b->dtype != ESA_F32 && b->dtype != ESA_F16)
        return esa_fail(ctx, ESA_ERROR_INVALID_ARGUMENT, "bad dtype");
    if (b->attention != ESA_ATTENTION_ESA && b->attention != ESA_ATTENTION_DENSE &&
        b->attention != ESA_ATTENTION_WINDOW)
        return esa_fail(ctx, ESA_ERROR_INVALID_ARGUMENT, "bad attention (%d)", (int)b->attention);
    if (!ESA_RESERVED_ZERO(b->reserved))
        return esa_fail(ctx, ESA_ERROR_INVALID_ARGUMENT, "esa_step_buffers.reserved must be zero");
    if (layer >= c->d.n_layers)
        return esa_fail(ctx, ESA_ERROR_INVALID_ARGUMENT, "layer %u out of range", layer);
    if (n == 0 || n > c->d.chunk)
        return esa_fail(ctx, ESA_ERROR_INVALID_ARGUMENT, "n must be 1..chunk (%u)", c->d.chunk);
    if (!c->layers[layer].ready)
        return esa_fail(ctx, ESA_ERROR_NOT_READY, "layer %u has no compression matrices", layer);
    if ((uint64_t)c->layers[layer].len + n > c->d.max_tokens)
        return esa_fail(ctx, ESA_ERROR_CAPACITY, "layer %u is full", layer);
    if (info)
        memset(info, 0, sizeof *info);
    esa_step_io io = {.q = b->q, .k = b->k, .v = b->v, .out = b->out, .in_f16 = b->dtype == ESA_F16};
    static const enum esa_step_mode modes[] = {ESA_STEP_ESA, ESA_STEP_DENSE, ESA_STEP_WINDOW};
    return esa_record_chunk(c, cb, layer, n, &io, modes[b->attention], info);
}
