/* memory.c - buffers with their own memory, reached by device address.
 *
 * DEVICE buffers prefer DEVICE_LOCAL memory; UPLOAD buffers are HOST_VISIBLE (write-combined is
 * fine); READBACK buffers prefer HOST_CACHED for fast reads; HOST buffers (K/V pages beyond the
 * device budget) prefer HOST_VISIBLE memory that is not DEVICE_LOCAL. Shaders read and write host-visible
 * buffers directly (no staging copies): the per-step inputs and outputs are small. */
#include "internal.h"

static int pick_type(const VkPhysicalDeviceMemoryProperties *mp, uint32_t bits,
                     VkMemoryPropertyFlags want, VkMemoryPropertyFlags avoid)
{
    for (uint32_t i = 0; i < mp->memoryTypeCount; i++) {
        VkMemoryPropertyFlags f = mp->memoryTypes[i].propertyFlags;
        if ((bits & (1u << i)) && (f & want) == want && !(f & avoid))
            return (int)i;
    }
    return -1;
}

esa_status esa_buffer_create(esa_context *ctx, VkDeviceSize size, enum esa_mem_kind kind,
                             esa_buffer *out)
{
    esa_vk *vk = &ctx->vk;
    *out = (esa_buffer){0};
    if (size == 0)
        size = 16;
    size = (size + 15) & ~(VkDeviceSize)15;
    if (size > ctx->info.max_memory_allocation_size)
        return esa_fail(ctx, ESA_ERROR_LIMIT,
                        "a buffer of %llu bytes exceeds maxMemoryAllocationSize (%llu)",
                        (unsigned long long)size,
                        (unsigned long long)ctx->info.max_memory_allocation_size);
    VkBufferCreateInfo bi = {
        .sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
        .size = size,
        .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_SHADER_DEVICE_ADDRESS_BIT |
                 VK_BUFFER_USAGE_TRANSFER_DST_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
                 VK_BUFFER_USAGE_INDIRECT_BUFFER_BIT, /* top-k sizes some dispatches itself */
        .sharingMode = VK_SHARING_MODE_EXCLUSIVE,
    };
    VkResult r = vk->vkCreateBuffer(ctx->device, &bi, NULL, &out->buffer);
    if (r != VK_SUCCESS)
        return esa_vk_fail(ctx, r, "vkCreateBuffer");
    VkMemoryRequirements req;
    vk->vkGetBufferMemoryRequirements(ctx->device, out->buffer, &req);
    const VkPhysicalDeviceMemoryProperties *mp = &ctx->mem_props;
    const VkMemoryPropertyFlags hv = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT;
    int t = -1;
    switch (kind) {
    case ESA_MEM_DEVICE:
        t = pick_type(mp, req.memoryTypeBits, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, 0);
        if (t < 0)
            t = pick_type(mp, req.memoryTypeBits, 0, 0);
        break;
    case ESA_MEM_UPLOAD:
        t = pick_type(mp, req.memoryTypeBits, hv | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT, 0);
        if (t < 0)
            t = pick_type(mp, req.memoryTypeBits, hv, 0);
        break;
    case ESA_MEM_HOST:
        t = pick_type(mp, req.memoryTypeBits, hv | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT,
                      VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT);
        if (t < 0)
            t = pick_type(mp, req.memoryTypeBits, hv | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT, 0);
        if (t < 0)
            t = pick_type(mp, req.memoryTypeBits, hv, 0);
        break;
    case ESA_MEM_READBACK:
        t = pick_type(mp, req.memoryTypeBits, hv | VK_MEMORY_PROPERTY_HOST_CACHED_BIT, 0);
        if (t < 0)
            t = pick_type(mp, req.memoryTypeBits, hv, 0);
        break;
    }
    if (t < 0) {
        esa_buffer_destroy(ctx, out);
        return esa_fail(ctx, ESA_ERROR_DEVICE_UNSUPPORTED, "no suitable memory type");
    }
    VkMemoryAllocateFlagsInfo fi = {
        .sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_FLAGS_INFO,
        .flags = VK_MEMORY_ALLOCATE_DEVICE_ADDRESS_BIT,
    };
    VkMemoryAllocateInfo ai = {
        .sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
        .pNext = &fi,
        .allocationSize = req.size,
        .memoryTypeIndex = (uint32_t)t,
    };
    r = vk->vkAllocateMemory(ctx->device, &ai, NULL, &out->memory);
    if (r != VK_SUCCESS) {
        esa_buffer_destroy(ctx, out);
        return esa_vk_fail(ctx, r, "vkAllocateMemory");
    }
    r = vk->vkBindBufferMemory(ctx->device, out->buffer, out->memory, 0);
    if (r != VK_SUCCESS) {
        esa_buffer_destroy(ctx, out);
        return esa_vk_fail(ctx, r, "vkBindBufferMemory");
    }
    out->size = size;
    out->alloc_size = req.size;
    out->flags = mp->memoryTypes[t].propertyFlags;
    if (out->flags & VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT) {
        ctx->mem_local += req.size;
        if (ctx->mem_local > ctx->mem_peak_local)
            ctx->mem_peak_local = ctx->mem_local;
    }
    if (out->flags & hv)
        ctx->mem_host += req.size;
    ctx->mem_allocs++;
    out->coherent = (mp->memoryTypes[t].propertyFlags & VK_MEMORY_PROPERTY_HOST_COHERENT_BIT) != 0;
    if (mp->memoryTypes[t].propertyFlags & hv) {
        r = vk->vkMapMemory(ctx->device, out->memory, 0, VK_WHOLE_SIZE, 0, &out->map);
        if (r != VK_SUCCESS) {
            esa_buffer_destroy(ctx, out);
            return esa_vk_fail(ctx, r, "vkMapMemory");
        }
    }
    VkBufferDeviceAddressInfo da = {
        .sType = VK_STRUCTURE_TYPE_BUFFER_DEVICE_ADDRESS_INFO,
        .buffer = out->buffer,
    };
    out->address = vk->vkGetBufferDeviceAddress(ctx->device, &da);
    return ESA_SUCCESS;
}

void esa_buffer_destroy(esa_context *ctx, esa_buffer *b)
{
    if (!b)
        return;
    if (b->map)
        ctx->vk.vkUnmapMemory(ctx->device, b->memory);
    if (b->buffer)
        ctx->vk.vkDestroyBuffer(ctx->device, b->buffer, NULL);
    if (b->memory) {
        ctx->vk.vkFreeMemory(ctx->device, b->memory, NULL);
        if (b->alloc_size) { /* counted once bound (see esa_buffer_create) */
            if (b->flags & VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT)
                ctx->mem_local -= b->alloc_size;
            if (b->flags & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT)
                ctx->mem_host -= b->alloc_size;
            ctx->mem_allocs--;
        }
    }
    *b = (esa_buffer){0};
}

void esa_buffer_flush(esa_context *ctx, esa_buffer *b)
{
    if (b->map && !b->coherent) {
        VkMappedMemoryRange mr = {.sType = VK_STRUCTURE_TYPE_MAPPED_MEMORY_RANGE,
                                  .memory = b->memory, .size = VK_WHOLE_SIZE};
        ctx->vk.vkFlushMappedMemoryRanges(ctx->device, 1, &mr);
    }
}

void esa_buffer_invalidate(esa_context *ctx, esa_buffer *b)
{
    if (b->map && !b->coherent) {
        VkMappedMemoryRange mr = {.sType = VK_STRUCTURE_TYPE_MAPPED_MEMORY_RANGE,
                                  .memory = b->memory, .size = VK_WHOLE_SIZE};
        ctx->vk.vkInvalidateMappedMemoryRanges(ctx->device, 1, &mr);
    }
}

esa_status esa_copy_wait(esa_context *ctx, const esa_buffer *src, VkDeviceSize src_off, const esa_buffer *dst,
                         VkDeviceSize dst_off, VkDeviceSize n)
{
    VkCommandBuffer cb;
    esa_status s = esa_begin(ctx, &cb);
    if (s != ESA_SUCCESS)
        return s;
    esa_cmd_barrier(ctx, cb); /* after the device's earlier writes (earlier submissions too) */
    VkBufferCopy region = {.srcOffset = src_off, .dstOffset = dst_off, .size = n};
    ctx->vk.vkCmdCopyBuffer(cb, src->buffer, dst->buffer, 1, &region);
    esa_cmd_barrier(ctx, cb); /* before its later reads */
    return esa_submit_wait(ctx);
}
