/* rt_buffer.c - buffers with their own memory, reached by device address, and blocking
 * host<->device copies.
 *
 * DEVICE buffers take DEVICE_LOCAL memory that the host cannot see where the device has it
 * (discrete GPUs), else DEVICE_LOCAL host-visible memory (integrated GPUs, lavapipe), which is
 * then mapped so uploads are a memcpy. UPLOAD and READBACK buffers are host-visible. */
#include "rt_internal.h"

#include <string.h>

static int find_type(const VkPhysicalDeviceMemoryProperties *mp, uint32_t bits,
                     VkMemoryPropertyFlags want, VkMemoryPropertyFlags avoid)
{
    for (uint32_t i = 0; i < mp->memoryTypeCount; i++) {
        VkMemoryPropertyFlags f = mp->memoryTypes[i].propertyFlags;
        if ((bits >> i & 1u) && (f & want) == want && !(f & avoid))
            return (int)i;
    }
    return -1;
}

static int choose_type(const VkPhysicalDeviceMemoryProperties *mp, uint32_t bits, esag_mem kind)
{
    const VkMemoryPropertyFlags dl = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT;
    const VkMemoryPropertyFlags hv = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT;
    /* candidates in order of preference; the first that exists wins */
    VkMemoryPropertyFlags want[3], avoid[3];
    switch (kind) {
    case ESAG_MEM_DEVICE:
        want[0] = dl, avoid[0] = hv;
        want[1] = dl, avoid[1] = 0;
        want[2] = 0, avoid[2] = 0;
        break;
    case ESAG_MEM_UPLOAD:
        want[0] = hv | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT, avoid[0] = 0;
        want[1] = want[2] = hv, avoid[1] = avoid[2] = 0;
        break;
    default:
        want[0] = hv | VK_MEMORY_PROPERTY_HOST_CACHED_BIT, avoid[0] = 0;
        want[1] = want[2] = hv, avoid[1] = avoid[2] = 0;
        break;
    }
    for (int i = 0; i < 3; i++) {
        int t = find_type(mp, bits, want[i], avoid[i]);
        if (t >= 0)
            return t;
    }
    return -1;
}

esag_status esag_buffer_create(esag_rt *rt, VkDeviceSize size, esag_mem kind, esag_buffer *out)
{
    if (!rt || !out || kind > ESAG_MEM_READBACK)
        return esag_fail(rt, ESAG_ERR_ARG, "esag_buffer_create: bad arguments");
    *out = (esag_buffer){0};
    const esag_vk *vk = &rt->vk;
    size = size ? (size + 15) & ~(VkDeviceSize)15 : 16;
    if (size > rt->info.max_memory_allocation_size)
        return esag_fail(rt, ESAG_ERR_LIMIT, "a buffer of %llu bytes exceeds maxMemoryAllocationSize (%llu)",
                         (unsigned long long)size, (unsigned long long)rt->info.max_memory_allocation_size);
    VkBufferCreateInfo bi = {
        .sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
        .size = size,
        .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_SHADER_DEVICE_ADDRESS_BIT |
                 VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT,
        .sharingMode = VK_SHARING_MODE_EXCLUSIVE,
    };
    VkResult r = vk->vkCreateBuffer(rt->device, &bi, NULL, &out->buffer);
    if (r != VK_SUCCESS)
        return esag_vk_fail(rt, r, "vkCreateBuffer");
    VkMemoryRequirements req;
    vk->vkGetBufferMemoryRequirements(rt->device, out->buffer, &req);
    int t = choose_type(&rt->mem_props, req.memoryTypeBits, kind);
    if (t < 0) {
        esag_buffer_destroy(rt, out);
        return esag_fail(rt, ESAG_ERR_UNSUPPORTED, "no memory type for a buffer of kind %d", (int)kind);
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
    r = vk->vkAllocateMemory(rt->device, &ai, NULL, &out->memory);
    if (r == VK_SUCCESS)
        r = vk->vkBindBufferMemory(rt->device, out->buffer, out->memory, 0);
    VkMemoryPropertyFlags flags = rt->mem_props.memoryTypes[t].propertyFlags;
    int map = (flags & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT) && !(kind == ESAG_MEM_DEVICE && rt->unmapped_device_buffers);
    if (r == VK_SUCCESS && map)
        r = vk->vkMapMemory(rt->device, out->memory, 0, VK_WHOLE_SIZE, 0, &out->map);
    if (r != VK_SUCCESS) {
        esag_buffer_destroy(rt, out);
        return esag_vk_fail(rt, r, "allocating, binding or mapping buffer memory");
    }
    out->coherent = (flags & VK_MEMORY_PROPERTY_HOST_COHERENT_BIT) != 0;
    out->size = size;
    VkBufferDeviceAddressInfo da = {.sType = VK_STRUCTURE_TYPE_BUFFER_DEVICE_ADDRESS_INFO, .buffer = out->buffer};
    out->address = vk->vkGetBufferDeviceAddress(rt->device, &da);
    return ESAG_OK;
}

void esag_buffer_destroy(esag_rt *rt, esag_buffer *b)
{
    if (!rt || !b)
        return;
    if (b->map)
        rt->vk.vkUnmapMemory(rt->device, b->memory);
    if (b->buffer)
        rt->vk.vkDestroyBuffer(rt->device, b->buffer, NULL);
    if (b->memory)
        rt->vk.vkFreeMemory(rt->device, b->memory, NULL);
    *b = (esag_buffer){0};
}

static void sync_range(esag_rt *rt, const esag_buffer *b, int to_device)
{
    if (b->coherent)
        return;
    VkMappedMemoryRange mr = {.sType = VK_STRUCTURE_TYPE_MAPPED_MEMORY_RANGE, .memory = b->memory,
                              .size = VK_WHOLE_SIZE};
    if (to_device)
        rt->vk.vkFlushMappedMemoryRanges(rt->device, 1, &mr);
    else
        rt->vk.vkInvalidateMappedMemoryRanges(rt->device, 1, &mr);
}

/* One blocking copy on the transfer command buffer. */
static esag_status copy_now(esag_rt *rt, const esag_buffer *src, VkDeviceSize src_off,
                            const esag_buffer *dst, VkDeviceSize dst_off, VkDeviceSize size)
{
    const esag_vk *vk = &rt->vk;
    VkResult r = vk->vkResetCommandBuffer(rt->xfer_cmd, 0);
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                   .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
    if (r == VK_SUCCESS)
        r = vk->vkBeginCommandBuffer(rt->xfer_cmd, &bi);
    if (r != VK_SUCCESS)
        return esag_vk_fail(rt, r, "beginning a transfer");
    VkBufferCopy c = {.srcOffset = src_off, .dstOffset = dst_off, .size = size};
    vk->vkCmdCopyBuffer(rt->xfer_cmd, src->buffer, dst->buffer, 1, &c);
    VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER, .srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
                          .dstAccessMask = VK_ACCESS_HOST_READ_BIT};
    vk->vkCmdPipelineBarrier(rt->xfer_cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &mb,
                             0, NULL, 0, NULL);
    r = vk->vkEndCommandBuffer(rt->xfer_cmd);
    VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1,
                       .pCommandBuffers = &rt->xfer_cmd};
    if (r == VK_SUCCESS)
        r = vk->vkQueueSubmit(rt->queue, 1, &si, rt->xfer_fence);
    if (r != VK_SUCCESS)
        return esag_vk_fail(rt, r, "submitting a transfer");
    r = vk->vkWaitForFences(rt->device, 1, &rt->xfer_fence, VK_TRUE, UINT64_MAX);
    VkResult r2 = vk->vkResetFences(rt->device, 1, &rt->xfer_fence);
    if (r != VK_SUCCESS || r2 != VK_SUCCESS)
        return esag_vk_fail(rt, r != VK_SUCCESS ? r : r2, "waiting for a transfer");
    return ESAG_OK;
}

static esag_status check_range(esag_rt *rt, const esag_buffer *b, VkDeviceSize offset,
                               const void *host, size_t size)
{
    if (!rt)
        return ESAG_ERR_ARG;
    if (!b || !b->buffer || (size && !host))
        return esag_fail(rt, ESAG_ERR_ARG, "buffer copy: NULL buffer or host pointer");
    if (offset > b->size || size > b->size - offset)
        return esag_fail(rt, ESAG_ERR_ARG, "buffer copy: [%llu, +%zu) outside a buffer of %llu bytes",
                         (unsigned long long)offset, size, (unsigned long long)b->size);
    if (!b->map && !rt->staging.buffer)
        return esag_buffer_create(rt, ESAG_STAGING_BYTES, ESAG_MEM_READBACK, &rt->staging);
    return ESAG_OK;
}

esag_status esag_buffer_write(esag_rt *rt, esag_buffer *dst, VkDeviceSize offset,
                              const void *src, size_t size)
{
    esag_status s = check_range(rt, dst, offset, src, size);
    if (s != ESAG_OK || size == 0)
        return s;
    if (dst->map) {
        memcpy((char *)dst->map + offset, src, size);
        sync_range(rt, dst, 1);
        return ESAG_OK;
    }
    for (size_t done = 0; done < size && s == ESAG_OK;) {
        size_t n = size - done < ESAG_STAGING_BYTES ? size - done : ESAG_STAGING_BYTES;
        memcpy(rt->staging.map, (const char *)src + done, n);
        sync_range(rt, &rt->staging, 1);
        s = copy_now(rt, &rt->staging, 0, dst, offset + done, n);
        done += n;
    }
    return s;
}

esag_status esag_buffer_read(esag_rt *rt, const esag_buffer *src, VkDeviceSize offset,
                             void *dst, size_t size)
{
    esag_status s = check_range(rt, src, offset, dst, size);
    if (s != ESAG_OK || size == 0)
        return s;
    if (src->map) {
        sync_range(rt, src, 0);
        memcpy(dst, (const char *)src->map + offset, size);
        return ESAG_OK;
    }
    for (size_t done = 0; done < size && s == ESAG_OK;) {
        size_t n = size - done < ESAG_STAGING_BYTES ? size - done : ESAG_STAGING_BYTES;
        s = copy_now(rt, src, offset + done, &rt->staging, 0, n);
        if (s == ESAG_OK) {
            sync_range(rt, &rt->staging, 0);
            memcpy((char *)dst + done, rt->staging.map, n);
        }
        done += n;
    }
    return s;
}
