/* rt_cmd.c - the runtime's command buffer (begin, submit, wait), pipelines, dispatches,
 * barriers and timestamps. */
#include "rt_internal.h"

esag_status esag_pipeline_create(esag_rt *rt, const uint32_t *code, size_t code_size,
                                 const uint32_t *spec, uint32_t nspec, VkPipeline *out)
{
    if (!rt || !code || !code_size || (code_size & 3u) || !out || nspec > 16 || (nspec && !spec))
        return esag_fail(rt, ESAG_ERR_ARG, "esag_pipeline_create: bad arguments");
    *out = VK_NULL_HANDLE;
    const esag_vk *vk = &rt->vk;
    VkShaderModuleCreateInfo mi = {
        .sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
        .codeSize = code_size,
        .pCode = code,
    };
    VkShaderModule module;
    VkResult r = vk->vkCreateShaderModule(rt->device, &mi, NULL, &module);
    if (r != VK_SUCCESS)
        return esag_vk_fail(rt, r, "vkCreateShaderModule");
    VkSpecializationMapEntry map[16];
    for (uint32_t i = 0; i < nspec; i++)
        map[i] = (VkSpecializationMapEntry){.constantID = i, .offset = 4 * i, .size = 4};
    VkSpecializationInfo si = {.mapEntryCount = nspec, .pMapEntries = map, .dataSize = 4 * nspec, .pData = spec};
    VkComputePipelineCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
        .stage = {
            .sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
            .stage = VK_SHADER_STAGE_COMPUTE_BIT,
            .module = module,
            .pName = "main",
            .pSpecializationInfo = nspec ? &si : NULL,
        },
        .layout = rt->layout,
    };
    r = vk->vkCreateComputePipelines(rt->device, VK_NULL_HANDLE, 1, &ci, NULL, out);
    vk->vkDestroyShaderModule(rt->device, module, NULL);
    if (r != VK_SUCCESS) {
        *out = VK_NULL_HANDLE;
        return esag_vk_fail(rt, r, "vkCreateComputePipelines");
    }
    return ESAG_OK;
}

void esag_pipeline_destroy(esag_rt *rt, VkPipeline p)
{
    if (rt && p)
        rt->vk.vkDestroyPipeline(rt->device, p, NULL);
}

void esag_cmd_dispatch(esag_rt *rt, VkCommandBuffer cb, VkPipeline p, const void *push,
                       uint32_t size, uint32_t gx, uint32_t gy, uint32_t gz)
{
    rt->vk.vkCmdBindPipeline(cb, VK_PIPELINE_BIND_POINT_COMPUTE, p);
    if (size)
        rt->vk.vkCmdPushConstants(cb, rt->layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, size, push);
    rt->vk.vkCmdDispatch(cb, gx, gy, gz);
}

void esag_cmd_barrier(esag_rt *rt, VkCommandBuffer cb)
{
    VkMemoryBarrier mb = {
        .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
        .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
        .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT |
                         VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
    };
    VkPipelineStageFlags st = VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT;
    rt->vk.vkCmdPipelineBarrier(cb, st, st, 0, 1, &mb, 0, NULL, 0, NULL);
}

void esag_cmd_copy(esag_rt *rt, VkCommandBuffer cb, const esag_buffer *src, VkDeviceSize src_off,
                   const esag_buffer *dst, VkDeviceSize dst_off, VkDeviceSize size)
{
    VkBufferCopy c = {.srcOffset = src_off, .dstOffset = dst_off, .size = size};
    rt->vk.vkCmdCopyBuffer(cb, src->buffer, dst->buffer, 1, &c);
}

esag_status esag_cmd_reset_timestamps(esag_rt *rt, VkCommandBuffer cb, uint32_t count)
{
    if (!rt->timestamps)
        return esag_fail(rt, ESAG_ERR_UNSUPPORTED, "the queue writes no timestamps");
    if (count > ESAG_MAX_TIMESTAMPS)
        return esag_fail(rt, ESAG_ERR_ARG, "at most %u timestamps", ESAG_MAX_TIMESTAMPS);
    rt->vk.vkCmdResetQueryPool(cb, rt->timestamps, 0, count);
    return ESAG_OK;
}

void esag_cmd_timestamp(esag_rt *rt, VkCommandBuffer cb, uint32_t i)
{
    if (rt->timestamps && i < ESAG_MAX_TIMESTAMPS)
        rt->vk.vkCmdWriteTimestamp(cb, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, rt->timestamps, i);
}

esag_status esag_read_timestamps(esag_rt *rt, uint32_t count, double *ns)
{
    if (!rt->timestamps)
        return esag_fail(rt, ESAG_ERR_UNSUPPORTED, "the queue writes no timestamps");
    if (count == 0 || count > ESAG_MAX_TIMESTAMPS || !ns)
        return esag_fail(rt, ESAG_ERR_ARG, "esag_read_timestamps: 1..%u queries", ESAG_MAX_TIMESTAMPS);
    uint64_t ticks[ESAG_MAX_TIMESTAMPS];
    VkResult r = rt->vk.vkGetQueryPoolResults(rt->device, rt->timestamps, 0, count, sizeof ticks, ticks,
                                              sizeof ticks[0], VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT);
    if (r != VK_SUCCESS)
        return esag_vk_fail(rt, r, "vkGetQueryPoolResults");
    uint32_t bits = rt->info.timestamp_valid_bits;
    uint64_t mask = bits >= 64 ? ~0ull : (1ull << bits) - 1;
    for (uint32_t i = 0; i < count; i++)
        ns[i] = (double)(ticks[i] & mask) * rt->info.timestamp_period_ns;
    return ESAG_OK;
}

esag_status esag_submit(esag_rt *rt)
{
    const esag_vk *vk = &rt->vk;
    if (!rt->recording)
        return esag_fail(rt, ESAG_ERR_ARG, "esag_submit without esag_begin");
    rt->recording = 0;
    VkMemoryBarrier mb = {
        .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
        .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
        .dstAccessMask = VK_ACCESS_HOST_READ_BIT,
    };
    vk->vkCmdPipelineBarrier(rt->cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                             VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &mb, 0, NULL, 0, NULL);
    VkResult r = vk->vkEndCommandBuffer(rt->cmd);
    if (r != VK_SUCCESS)
        return esag_vk_fail(rt, r, "vkEndCommandBuffer");
    VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &rt->cmd};
    r = vk->vkQueueSubmit(rt->queue, 1, &si, rt->fence);
    if (r != VK_SUCCESS)
        return esag_vk_fail(rt, r, "vkQueueSubmit");
    rt->pending = 1;
    return ESAG_OK;
}

esag_status esag_wait(esag_rt *rt)
{
    if (!rt->pending)
        return ESAG_OK;
    rt->pending = 0;
    VkResult r = rt->vk.vkWaitForFences(rt->device, 1, &rt->fence, VK_TRUE, UINT64_MAX);
    VkResult r2 = rt->vk.vkResetFences(rt->device, 1, &rt->fence);
    if (r != VK_SUCCESS)
        return esag_vk_fail(rt, r, "vkWaitForFences");
    if (r2 != VK_SUCCESS)
        return esag_vk_fail(rt, r2, "vkResetFences");
    return ESAG_OK;
}

esag_status esag_submit_wait(esag_rt *rt)
{
    esag_status s = esag_submit(rt);
    return s == ESAG_OK ? esag_wait(rt) : s;
}

void esag_abandon(esag_rt *rt)
{
    if (!rt || !rt->recording)
        return;
    rt->recording = 0;
    /* Its result does not matter: the buffer is never submitted, and esag_begin resets it from
     * the executable or the invalid state alike (the pool allows per-buffer resets). */
    (void)rt->vk.vkEndCommandBuffer(rt->cmd);
}

esag_status esag_begin(esag_rt *rt, VkCommandBuffer *cb)
{
    if (!rt || !cb)
        return ESAG_ERR_ARG;
    if (rt->recording)
        return esag_fail(rt, ESAG_ERR_ARG, "esag_begin while recording");
    esag_status s = esag_wait(rt);
    if (s != ESAG_OK)
        return s;
    VkResult r = rt->vk.vkResetCommandBuffer(rt->cmd, 0);
    if (r != VK_SUCCESS)
        return esag_vk_fail(rt, r, "vkResetCommandBuffer");
    VkCommandBufferBeginInfo bi = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
        .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT,
    };
    r = rt->vk.vkBeginCommandBuffer(rt->cmd, &bi);
    if (r != VK_SUCCESS)
        return esag_vk_fail(rt, r, "vkBeginCommandBuffer");
    rt->recording = 1;
    *cb = rt->cmd;
    return ESAG_OK;
}
