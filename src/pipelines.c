/* pipelines.c - compute pipelines from the embedded SPIR-V.
 *
 * One pipeline layout for all: a single 128-byte push-constant range and no descriptor sets
 * (buffers are reached by device address). Per-device tuning (workgroup size, tile sizes) goes
 * in as specialization constants. */
#include "esa_shaders.h"
#include "internal.h"

typedef struct shader_entry {
    const uint32_t *code;
    const size_t *size;
} shader_entry;

static const shader_entry shaders[ESA_PIPE_COUNT] = {
    [ESA_PIPE_APPEND] = {esa_shader_append_spv, &esa_shader_append_spv_size},
    [ESA_PIPE_COMPRESS] = {esa_shader_compress_spv, &esa_shader_compress_spv_size},
    [ESA_PIPE_COMPRESS_ONE] = {esa_shader_compress_spv, &esa_shader_compress_spv_size},
    [ESA_PIPE_COMPRESS_REDUCE] = {esa_shader_compress_reduce_spv, &esa_shader_compress_reduce_spv_size},
    [ESA_PIPE_PROXIMITY] = {esa_shader_proximity_spv, &esa_shader_proximity_spv_size},
    [ESA_PIPE_TOPK_PICK] = {esa_shader_topk_pick_spv, &esa_shader_topk_pick_spv_size},
    [ESA_PIPE_TOPK_HIST1] = {esa_shader_topk_hist1_spv, &esa_shader_topk_hist1_spv_size},
    [ESA_PIPE_TOPK_FILTER] = {esa_shader_topk_filter_spv, &esa_shader_topk_filter_spv_size},
    [ESA_PIPE_TOPK_RESOLVE] = {esa_shader_topk_resolve_spv, &esa_shader_topk_resolve_spv_size},
    [ESA_PIPE_TOPK_WRITE] = {esa_shader_topk_write_spv, &esa_shader_topk_write_spv_size},
    [ESA_PIPE_ROPE_Q] = {esa_shader_rope_q_spv, &esa_shader_rope_q_spv_size},
    [ESA_PIPE_MERGE] = {esa_shader_merge_spv, &esa_shader_merge_spv_size},
    [ESA_PIPE_PROBE] = {esa_shader_probe_read_spv, &esa_shader_probe_read_spv_size},
    [ESA_PIPE_GATHER] = {esa_shader_gather_spv, &esa_shader_gather_spv_size},
};

static esa_status make_module(esa_context *ctx, const uint32_t *code, size_t size,
                              VkShaderModule *out)
{
    VkShaderModuleCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
        .codeSize = size,
        .pCode = code,
    };
    VkResult r = ctx->vk.vkCreateShaderModule(ctx->device, &ci, NULL, out);
    return r == VK_SUCCESS ? ESA_SUCCESS : esa_vk_fail(ctx, r, "vkCreateShaderModule");
}

/* A pipeline with specialization constants ids 0..n-1 = spec[0..n-1]. */
static esa_status make_pipeline(esa_context *ctx, VkShaderModule module, const uint32_t *spec,
                                uint32_t n, VkPipeline *out)
{
    VkSpecializationMapEntry map[16];
    for (uint32_t i = 0; i < n; i++)
        map[i] = (VkSpecializationMapEntry){.constantID = i, .offset = 4 * i, .size = 4};
    VkSpecializationInfo si = {.mapEntryCount = n, .pMapEntries = map, .dataSize = 4 * n, .pData = spec};
    VkComputePipelineCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
        .stage = {
            .sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
            .stage = VK_SHADER_STAGE_COMPUTE_BIT,
            .module = module,
            .pName = "main",
            .pSpecializationInfo = n ? &si : NULL,
        },
        .layout = ctx->layout,
    };
    VkResult r = ctx->vk.vkCreateComputePipelines(ctx->device, VK_NULL_HANDLE, 1, &ci, NULL, out);
    return r == VK_SUCCESS ? ESA_SUCCESS : esa_vk_fail(ctx, r, "vkCreateComputePipelines");
}

esa_status esa_pipelines_create(esa_context *ctx)
{
    VkPushConstantRange range = {.stageFlags = VK_SHADER_STAGE_COMPUTE_BIT, .offset = 0, .size = 128};
    VkPipelineLayoutCreateInfo li = {
        .sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
        .pushConstantRangeCount = 1,
        .pPushConstantRanges = &range,
    };
    VkResult r = ctx->vk.vkCreatePipelineLayout(ctx->device, &li, NULL, &ctx->layout);
    if (r != VK_SUCCESS)
        return esa_vk_fail(ctx, r, "vkCreatePipelineLayout");
    uint32_t wg = ctx->wg_size;
    /* compress: TILE floats of x in shared memory */
    uint32_t shared_floats = ctx->info.max_shared_memory / 4u;
    uint32_t compress_tile = esa_min_u32(2048u, shared_floats / 2u);
    /* proximity: its tile and halo of keys plus a 2048-bin histogram in shared memory */
    esa_select_tuning_for(ctx, &ctx->select);
    const esa_select_tuning sel = ctx->select;
    ctx->proximity_items = 16; /* a multiple of 4: 4 fits wg 256 in the spec's minimum 16 KiB */
    while (ctx->proximity_items > 4 &&
           ((uint64_t)ctx->proximity_items * wg + 2u * ESA_MAX_RADIUS + ESA_TOPK_BINS) * 4u >
               ctx->info.max_shared_memory)
        ctx->proximity_items /= 2;
    for (int i = 0; i < ESA_PIPE_COUNT; i++) {
        VkShaderModule m;
        esa_status s = make_module(ctx, shaders[i].code, *shaders[i].size, &m);
        if (s != ESA_SUCCESS)
            return s;
        uint32_t spec[3] = {wg, 0, 0};
        uint32_t nspec = 1;
        if (i == ESA_PIPE_COMPRESS || i == ESA_PIPE_COMPRESS_ONE) {
            spec[0] = ESA_COMPRESS_WG;
            spec[1] = compress_tile;
            spec[2] = i == ESA_PIPE_COMPRESS ? ESA_COMPRESS_TOKENS : 1u;
            nspec = 3;
        } else if (i == ESA_PIPE_PROXIMITY) {
            spec[1] = ESA_MAX_RADIUS;
            spec[2] = ctx->proximity_items;
            nspec = 3;
        } else if (i == ESA_PIPE_TOPK_FILTER) {
            spec[0] = sel.filter_wg; /* subgroups only: any size that splits a block */
            spec[1] = sel.filter_lane_words;
            nspec = 2;
        } else if (i == ESA_PIPE_TOPK_WRITE) {
            spec[0] = ctx->info.subgroup_size; /* one subgroup a block */
        } else if (i == ESA_PIPE_TOPK_PICK || i == ESA_PIPE_TOPK_HIST1) {
            spec[0] = sel.topk_wg; /* any multiple of 16 (wgscan.glsl) */
        } else if (i == ESA_PIPE_TOPK_RESOLVE) {
            nspec = 0; /* 256, fixed: its loops over the candidates (topk_resolve.comp) */
        }
        s = make_pipeline(ctx, m, spec, nspec, &ctx->pipes[i]);
        ctx->vk.vkDestroyShaderModule(ctx->device, m, NULL);
        if (s != ESA_SUCCESS)
            return s;
    }
    int w64 = esa_attend_load64(ctx);
    esa_status s = make_module(ctx, w64 ? esa_shader_attend64_spv : esa_shader_attend_spv,
                               w64 ? esa_shader_attend64_spv_size : esa_shader_attend_spv_size,
                               &ctx->attend_module);
    if (s == ESA_SUCCESS)
        s = make_module(ctx, esa_shader_score_spv, esa_shader_score_spv_size, &ctx->score_module);
    return s;
}

void esa_pipelines_destroy(esa_context *ctx)
{
    for (int i = 0; i < ESA_PIPE_COUNT; i++)
        if (ctx->pipes[i])
            ctx->vk.vkDestroyPipeline(ctx->device, ctx->pipes[i], NULL);
    if (ctx->attend_module)
        ctx->vk.vkDestroyShaderModule(ctx->device, ctx->attend_module, NULL);
    if (ctx->score_module)
        ctx->vk.vkDestroyShaderModule(ctx->device, ctx->score_module, NULL);
    if (ctx->layout)
        ctx->vk.vkDestroyPipelineLayout(ctx->device, ctx->layout, NULL);
}

esa_status esa_score_pipeline(esa_context *ctx, uint32_t dc, uint32_t tm, int paged, VkPipeline *out)
{
    uint32_t spec[4] = {ESA_SCORE_WG, dc, tm, paged ? 1u : 0u}; /* a bool constant: 4 bytes */
    return make_pipeline(ctx, ctx->score_module, spec, 4, out);
}

esa_status esa_attend_pipeline(esa_context *ctx, const esa_cache_desc *d,
                               const esa_attend_tuning *t, VkPipeline *out)
{
    uint32_t spec[8] = {t->wg, d->head_dim, d->n_heads / d->n_kv_heads, d->rope_dims,
                        d->rope_style == ESA_ROPE_NEOX, t->td, t->rpi, t->kl};
    return make_pipeline(ctx, ctx->attend_module, spec, 8, out);
}

void esa_cmd_push(esa_context *ctx, VkCommandBuffer cb, VkPipeline p, const void *pc,
                  uint32_t size)
{
    ctx->vk.vkCmdBindPipeline(cb, VK_PIPELINE_BIND_POINT_COMPUTE, p);
    ctx->vk.vkCmdPushConstants(cb, ctx->layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, size, pc);
}

void esa_cmd_barrier(esa_context *ctx, VkCommandBuffer cb)
{
    VkMemoryBarrier mb = {
        .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
        .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
        .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT |
                         VK_ACCESS_TRANSFER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT |
                         VK_ACCESS_INDIRECT_COMMAND_READ_BIT, /* topk_pick writes dispatch sizes */
    };
    VkPipelineStageFlags src = VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT;
    ctx->vk.vkCmdPipelineBarrier(cb, src, src | VK_PIPELINE_STAGE_DRAW_INDIRECT_BIT, 0, 1, &mb, 0,
                                 NULL, 0, NULL);
}
