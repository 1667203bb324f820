/* device.c - contexts: Vulkan instance and device, device choice, capabilities, submission.
 *
 * The shaders need Vulkan 1.2 with bufferDeviceAddress (every buffer is reached by address),
 * compute subgroup operations basic/arithmetic/ballot/shuffle and a subgroup size that is a
 * multiple of 8; a device without them is refused. */
#include "internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static VKAPI_ATTR VkBool32 VKAPI_CALL on_validation(VkDebugUtilsMessageSeverityFlagBitsEXT sev,
                                                     VkDebugUtilsMessageTypeFlagsEXT type,
                                                     const VkDebugUtilsMessengerCallbackDataEXT *d,
                                                     void *user)
{
    (void)type;
    esa_context *ctx = user;
    if (sev & (VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT |
               VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT)) {
        ctx->validation_count++;
        if (ctx->print_validation)
            fprintf(stderr, "esa-vk validation: %s\n", d && d->pMessage ? d->pMessage : "?");
    }
    return VK_FALSE;
}

static int has_layer(esa_vk *vk, const char *name)
{
    uint32_t n = 0;
    if (vk->vkEnumerateInstanceLayerProperties(&n, NULL) != VK_SUCCESS || n == 0)
        return 0;
    VkLayerProperties props[64];
    if (n > 64)
        n = 64;
    if (vk->vkEnumerateInstanceLayerProperties(&n, props) < 0)
        return 0;
    for (uint32_t i = 0; i < n; i++)
        if (strcmp(props[i].layerName, name) == 0)
            return 1;
    return 0;
}

static int has_device_ext(esa_vk *vk, VkPhysicalDevice pd, const char *name)
{
    uint32_t n = 0;
    if (vk->vkEnumerateDeviceExtensionProperties(pd, NULL, &n, NULL) != VK_SUCCESS || n == 0)
        return 0;
    VkExtensionProperties *props = malloc(sizeof *props * n);
    int found = 0;
    if (props && vk->vkEnumerateDeviceExtensionProperties(pd, NULL, &n, props) >= 0)
        for (uint32_t i = 0; i < n && !found; i++)
            found = strcmp(props[i].extensionName, name) == 0;
    free(props);
    return found;
}

static esa_device_type map_type(VkPhysicalDeviceType t)
{
    switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return ESA_DEVICE_INTEGRATED;
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return ESA_DEVICE_DISCRETE;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return ESA_DEVICE_VIRTUAL;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return ESA_DEVICE_CPU;
    default: return ESA_DEVICE_OTHER;
    }
}

/* Fill info for one physical device; returns 1 if it has what the shaders need (else why). */
static int describe(esa_vk *vk, VkPhysicalDevice pd, uint32_t index, esa_device_info *info,
                    const char **why)
{
    VkPhysicalDeviceSubgroupProperties sg = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES};
    VkPhysicalDeviceSubgroupSizeControlPropertiesEXT ssc = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_PROPERTIES_EXT};
    VkPhysicalDeviceDriverProperties drv = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES, .pNext = &sg};
    VkPhysicalDeviceProperties2 p2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &drv};
    /* The subgroup size range comes from VK_EXT_subgroup_size_control where the device has it
     * (valid whatever API version the caller's instance asked for). */
    int has_ssc = has_device_ext(vk, pd, VK_EXT_SUBGROUP_SIZE_CONTROL_EXTENSION_NAME);
    if (has_ssc)
        sg.pNext = &ssc;
    VkPhysicalDeviceProperties base;
    vk->vkGetPhysicalDeviceProperties(pd, &base);
    if (base.apiVersion < VK_API_VERSION_1_2) {
        /* the 1.2 property structs may not be chained on an older device */
        memset(info, 0, sizeof *info);
        snprintf(info->name, sizeof info->name, "%s", base.deviceName);
        info->api_version = base.apiVersion;
        info->type = map_type(base.deviceType);
        info->index = index;
        *why = "Vulkan 1.2 is required";
        return 0;
    }
    vk->vkGetPhysicalDeviceProperties2(pd, &p2);
    const VkPhysicalDeviceProperties *p = &p2.properties;
    memset(info, 0, sizeof *info);
    snprintf(info->name, sizeof info->name, "%s", p->deviceName);
    snprintf(info->driver_name, sizeof info->driver_name, "%s", drv.driverName);
    snprintf(info->driver_info, sizeof info->driver_info, "%s", drv.driverInfo);
    info->vendor_id = p->vendorID;
    info->device_id = p->deviceID;
    info->api_version = p->apiVersion;
    info->driver_version = p->driverVersion;
    info->type = map_type(p->deviceType);
    info->subgroup_size = sg.subgroupSize;
    info->min_subgroup_size = has_ssc ? ssc.minSubgroupSize : sg.subgroupSize;
    info->max_subgroup_size = has_ssc ? ssc.maxSubgroupSize : sg.subgroupSize;
    info->max_storage_buffer_range = p->limits.maxStorageBufferRange;
    info->max_shared_memory = p->limits.maxComputeSharedMemorySize;
    info->max_workgroup_invocations = p->limits.maxComputeWorkGroupInvocations;
    info->index = index;
    /* maxMemoryAllocationSize (Vulkan 1.1 maintenance3) */
    VkPhysicalDeviceMaintenance3Properties m3 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES};
    VkPhysicalDeviceProperties2 q2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &m3};
    vk->vkGetPhysicalDeviceProperties2(pd, &q2);
    info->max_memory_allocation_size = m3.maxMemoryAllocationSize;
    VkPhysicalDeviceMemoryProperties mp;
    vk->vkGetPhysicalDeviceMemoryProperties(pd, &mp);
    for (uint32_t i = 0; i < mp.memoryHeapCount; i++)
        if ((mp.memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) &&
            mp.memoryHeaps[i].size > info->device_local_bytes)
            info->device_local_bytes = mp.memoryHeaps[i].size;
    info->timestamp_period_ns = p->limits.timestampComputeAndGraphics ? p->limits.timestampPeriod : 0.0f;

    VkPhysicalDeviceVulkan12Features f12 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
    VkPhysicalDeviceFeatures2 f2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &f12};
    *why = NULL;
    vk->vkGetPhysicalDeviceFeatures2(pd, &f2);
    const VkSubgroupFeatureFlags need_ops = VK_SUBGROUP_FEATURE_BASIC_BIT |
                                            VK_SUBGROUP_FEATURE_ARITHMETIC_BIT |
                                            VK_SUBGROUP_FEATURE_BALLOT_BIT |
                                            VK_SUBGROUP_FEATURE_SHUFFLE_BIT;
    if (!f12.bufferDeviceAddress)
        *why = "bufferDeviceAddress is required";
    else if (!(sg.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) ||
             (sg.supportedOperations & need_ops) != need_ops)
        *why = "compute subgroup operations (basic, arithmetic, ballot, shuffle) are required";
    else if (sg.subgroupSize < 8 || sg.subgroupSize % 8 != 0 || sg.subgroupSize > 128)
        *why = "a subgroup size of 8, 16, ... 128 is required (attend.comp's 8-lane clusters)";
    else if (info->max_shared_memory < 16384 || info->max_workgroup_invocations < 256 ||
             p->limits.maxComputeWorkGroupSize[0] < 256)
        *why = "16 KiB of shared memory and 256-invocation workgroups are required";
    return *why == NULL;
}

static int type_rank(esa_device_type t)
{
    switch (t) {
    case ESA_DEVICE_DISCRETE: return 4;
    case ESA_DEVICE_INTEGRATED: return 3;
    case ESA_DEVICE_VIRTUAL: return 2;
    case ESA_DEVICE_CPU: return 1;
    default: return 0;
    }
}

static int name_matches(const char *name, const char *want)
{
    size_t n = strlen(name), w = strlen(want);
    for (size_t i = 0; i + w <= n; i++) {
        size_t j = 0;
        while (j < w && tolower((unsigned char)name[i + j]) == tolower((unsigned char)want[j]))
            j++;
        if (j == w)
            return 1;
    }
    return 0;
}

static esa_status create_instance(esa_context *ctx, int validation)
{
    esa_vk *vk = &ctx->vk;
    const char *layers[1] = {"VK_LAYER_KHRONOS_validation"};
    const char *exts[1] = {VK_EXT_DEBUG_UTILS_EXTENSION_NAME};
    int use_layer = validation && has_layer(vk, layers[0]);
    if (validation && !use_layer)
        ctx->validation_count = UINT32_MAX;
    /* 1.3 where the loader has it, so 1.3 property structs may be queried on 1.3 devices */
    uint32_t api = VK_API_VERSION_1_2, loader_api = 0;
    if (vk->vkEnumerateInstanceVersion && vk->vkEnumerateInstanceVersion(&loader_api) == VK_SUCCESS &&
        loader_api >= VK_API_VERSION_1_3)
        api = VK_API_VERSION_1_3;
    VkApplicationInfo app = {
        .sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
        .pApplicationName = "esa-vk",
        .pEngineName = "esa-vk",
        .engineVersion = ESA_VERSION_NUMBER,
        .apiVersion = api,
    };
    VkDebugUtilsMessengerCreateInfoEXT mi = {
        .sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT,
        .messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT |
                           VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT,
        .messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT |
                       VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                       VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT,
        .pfnUserCallback = on_validation,
        .pUserData = ctx,
    };
    VkInstanceCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
        .pNext = use_layer ? &mi : NULL, /* also catches instance creation messages */
        .pApplicationInfo = &app,
        .enabledLayerCount = use_layer ? 1u : 0u,
        .ppEnabledLayerNames = layers,
        .enabledExtensionCount = use_layer ? 1u : 0u,
        .ppEnabledExtensionNames = exts,
    };
    VkResult r = vk->vkCreateInstance(&ci, NULL, &ctx->instance);
    if (r == VK_ERROR_INCOMPATIBLE_DRIVER)
        return esa_fail(ctx, ESA_ERROR_NO_DEVICE, "no Vulkan driver (VK_ERROR_INCOMPATIBLE_DRIVER)");
    if (r != VK_SUCCESS)
        return esa_vk_fail(ctx, r, "vkCreateInstance");
    if (!esa_vk_load_instance(vk, ctx->instance))
        return esa_fail(ctx, ESA_ERROR_NO_DEVICE, "the Vulkan loader lacks instance entry points");
    if (use_layer && vk->vkCreateDebugUtilsMessengerEXT) {
        r = vk->vkCreateDebugUtilsMessengerEXT(ctx->instance, &mi, NULL, &ctx->messenger);
        if (r != VK_SUCCESS)
            return esa_vk_fail(ctx, r, "vkCreateDebugUtilsMessengerEXT");
    }
    return ESA_SUCCESS;
}

/* Choose a physical device as the desc asks (name substring, index, or best type). */
static esa_status choose_device(esa_context *ctx, const esa_context_desc *desc)
{
    esa_vk *vk = &ctx->vk;
    uint32_t n = 0;
    VkResult r = vk->vkEnumeratePhysicalDevices(ctx->instance, &n, NULL);
    if (r != VK_SUCCESS)
        return esa_vk_fail(ctx, r, "vkEnumeratePhysicalDevices");
    if (n == 0)
        return esa_fail(ctx, ESA_ERROR_NO_DEVICE, "no Vulkan device");
    VkPhysicalDevice pds[32];
    if (n > 32)
        n = 32;
    r = vk->vkEnumeratePhysicalDevices(ctx->instance, &n, pds);
    if (r < 0)
        return esa_vk_fail(ctx, r, "vkEnumeratePhysicalDevices");
    int best = -1, best_rank = -1;
    const char *why_best = NULL;
    esa_device_info info;
    for (uint32_t i = 0; i < n; i++) {
        const char *why;
        int ok = describe(vk, pds[i], i, &info, &why);
        int named = desc && desc->device_name && desc->device_name[0];
        int indexed = desc && desc->device_index_plus_1;
        if (named && !name_matches(info.name, desc->device_name))
            continue;
        if (!named && indexed && desc->device_index_plus_1 - 1 != i)
            continue;
        if (!ok) {
            if (named || indexed)
                return esa_fail(ctx, ESA_ERROR_DEVICE_UNSUPPORTED, "device %u (%s): %s", i, info.name, why);
            why_best = why;
            continue;
        }
        int rank = type_rank(info.type);
        if (rank > best_rank) {
            best = (int)i;
            best_rank = rank;
        }
    }
    if (best < 0) {
        if (why_best)
            return esa_fail(ctx, ESA_ERROR_DEVICE_UNSUPPORTED, "no usable device: %s", why_best);
        if (desc && desc->device_name && desc->device_name[0])
            return esa_fail(ctx, ESA_ERROR_NO_DEVICE, "no device name contains \"%s\"", desc->device_name);
        return esa_fail(ctx, ESA_ERROR_NO_DEVICE, "no device with index %u (there are %u)",
                        desc ? desc->device_index_plus_1 - 1 : 0, n);
    }
    ctx->physical = pds[best];
    ctx->physical_index = (uint32_t)best;
    return ESA_SUCCESS;
}

static esa_status create_device(esa_context *ctx)
{
    esa_vk *vk = &ctx->vk;
    uint32_t nq = 0;
    vk->vkGetPhysicalDeviceQueueFamilyProperties(ctx->physical, &nq, NULL);
    VkQueueFamilyProperties qf[16];
    if (nq > 16)
        nq = 16;
    vk->vkGetPhysicalDeviceQueueFamilyProperties(ctx->physical, &nq, qf);
    int fam = -1;
    for (uint32_t i = 0; i < nq && fam < 0; i++) /* a compute queue, preferring one with graphics off */
        if ((qf[i].queueFlags & VK_QUEUE_COMPUTE_BIT) && !(qf[i].queueFlags & VK_QUEUE_GRAPHICS_BIT))
            fam = (int)i;
    for (uint32_t i = 0; i < nq && fam < 0; i++)
        if (qf[i].queueFlags & VK_QUEUE_COMPUTE_BIT)
            fam = (int)i;
    if (fam < 0)
        return esa_fail(ctx, ESA_ERROR_DEVICE_UNSUPPORTED, "the device has no compute queue");
    float prio = 1.0f;
    VkDeviceQueueCreateInfo qi = {
        .sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
        .queueFamilyIndex = (uint32_t)fam,
        .queueCount = 1,
        .pQueuePriorities = &prio,
    };
    VkPhysicalDeviceVulkan12Features f12 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES,
        .bufferDeviceAddress = VK_TRUE,
    };
    /* shaderInt64 where the device has it: attend64 (tuning.c) */
    VkPhysicalDeviceFeatures2 have = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
    vk->vkGetPhysicalDeviceFeatures2(ctx->physical, &have);
    VkPhysicalDeviceFeatures want = {.shaderInt64 = have.features.shaderInt64};
    ctx->shader_int64 = have.features.shaderInt64 == VK_TRUE;
    VkDeviceCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
        .pNext = &f12,
        .queueCreateInfoCount = 1,
        .pQueueCreateInfos = &qi,
        .pEnabledFeatures = &want,
    };
    VkResult r = vk->vkCreateDevice(ctx->physical, &ci, NULL, &ctx->device);
    if (r != VK_SUCCESS)
        return esa_vk_fail(ctx, r, "vkCreateDevice");
    ctx->queue_family = (uint32_t)fam;
    if (!esa_vk_load_device(vk, ctx->device))
        return esa_fail(ctx, ESA_ERROR_NO_DEVICE, "the driver lacks device entry points");
    vk->vkGetDeviceQueue(ctx->device, ctx->queue_family, 0, &ctx->queue);
    return ESA_SUCCESS;
}

esa_status esa_context_init_device_state(esa_context *ctx)
{
    esa_vk *vk = &ctx->vk;
    const char *why;
    if (!describe(vk, ctx->physical, ctx->physical_index, &ctx->info, &why))
        return esa_fail(ctx, ESA_ERROR_DEVICE_UNSUPPORTED, "%s: %s", ctx->info.name, why);
    vk->vkGetPhysicalDeviceMemoryProperties(ctx->physical, &ctx->mem_props);
    if (ctx->tuning == ESA_TUNING_AUTO)
        ctx->tuning = ctx->info.type == ESA_DEVICE_CPU ? ESA_TUNING_CPU : ESA_TUNING_GPU;
    ctx->wg_size = 256;
    VkCommandPoolCreateInfo pi = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
        .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
        .queueFamilyIndex = ctx->queue_family,
    };
    VkResult r = vk->vkCreateCommandPool(ctx->device, &pi, NULL, &ctx->pool);
    if (r != VK_SUCCESS)
        return esa_vk_fail(ctx, r, "vkCreateCommandPool");
    VkCommandBufferAllocateInfo ai = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
        .commandPool = ctx->pool,
        .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
        .commandBufferCount = 1,
    };
    r = vk->vkAllocateCommandBuffers(ctx->device, &ai, &ctx->cmd);
    if (r != VK_SUCCESS)
        return esa_vk_fail(ctx, r, "vkAllocateCommandBuffers");
    VkFenceCreateInfo fi = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    r = vk->vkCreateFence(ctx->device, &fi, NULL, &ctx->fence);
    if (r != VK_SUCCESS)
        return esa_vk_fail(ctx, r, "vkCreateFence");
    return esa_pipelines_create(ctx);
}

static esa_context *alloc_context(const esa_context_desc *desc)
{
    esa_context tmp = {0};
    if (desc && desc->alloc) {
        tmp.alloc = desc->alloc;
        tmp.realloc_fn = desc->realloc;
        tmp.free_fn = desc->free;
        tmp.alloc_user = desc->alloc_user;
    }
    esa_context *ctx = esa_malloc(&tmp, sizeof *ctx);
    if (ctx)
        *ctx = tmp;
    return ctx;
}

esa_status esa_context_create(const esa_context_desc *desc, esa_context **out)
{
    if (!out)
        return ESA_ERROR_INVALID_ARGUMENT;
    *out = NULL;
    if (desc && (!ESA_RESERVED_ZERO(desc->reserved) || !esa_tuning_valid(desc->tuning) ||
                 (desc->alloc || desc->free) != (desc->alloc && desc->free)))
        return ESA_ERROR_INVALID_ARGUMENT;
    esa_context *ctx = alloc_context(desc);
    if (!ctx)
        return ESA_ERROR_OUT_OF_HOST_MEMORY;
    ctx->owns_device = 1;
    ctx->print_validation = desc ? desc->print_validation : 0;
    ctx->tuning = desc ? desc->tuning : ESA_TUNING_AUTO;
    PFN_vkGetInstanceProcAddr gipa = NULL;
    ctx->loader = esa_vk_open_loader(&gipa);
    esa_status s = ESA_SUCCESS;
    if (!ctx->loader || !esa_vk_load_global(&ctx->vk, gipa))
        s = esa_fail(ctx, ESA_ERROR_NO_DEVICE, "no Vulkan loader (libvulkan.so.1)");
    if (s == ESA_SUCCESS)
        s = create_instance(ctx, desc ? desc->enable_validation : 0);
    if (s == ESA_SUCCESS)
        s = choose_device(ctx, desc);
    if (s == ESA_SUCCESS)
        s = create_device(ctx);
    if (s == ESA_SUCCESS)
        s = esa_context_init_device_state(ctx);
    if (s != ESA_SUCCESS) {
        if (desc && desc->error_message && desc->error_message_size)
            snprintf(desc->error_message, desc->error_message_size, "%s",
                     ctx->last_error[0] ? ctx->last_error : esa_status_string(s));
        esa_context_destroy(ctx);
        return s;
    }
    *out = ctx;
    return ESA_SUCCESS;
}

void esa_context_destroy(esa_context *ctx)
{
    if (!ctx)
        return;
    esa_vk *vk = &ctx->vk;
    if (ctx->device) {
        if (ctx->owns_device)
            vk->vkDeviceWaitIdle(ctx->device);
        else if (ctx->queue)
            vk->vkQueueWaitIdle(ctx->queue);
        esa_pipelines_destroy(ctx);
        esa_profile_destroy(ctx);
        if (ctx->fence)
            vk->vkDestroyFence(ctx->device, ctx->fence, NULL);
        if (ctx->pool)
            vk->vkDestroyCommandPool(ctx->device, ctx->pool, NULL);
        if (ctx->owns_device)
            vk->vkDestroyDevice(ctx->device, NULL);
    }
    if (ctx->owns_device && ctx->instance) {
        if (ctx->messenger)
            vk->vkDestroyDebugUtilsMessengerEXT(ctx->instance, ctx->messenger, NULL);
        vk->vkDestroyInstance(ctx->instance, NULL);
    }
    esa_vk_close_loader(ctx->loader);
    esa_context tmp = *ctx;
    esa_free(&tmp, ctx);
}

esa_status esa_context_device_info(const esa_context *ctx, esa_device_info *info)
{
    if (!ctx || !info)
        return ESA_ERROR_INVALID_ARGUMENT;
    *info = ctx->info;
    return ESA_SUCCESS;
}

esa_tuning esa_context_tuning(const esa_context *ctx)
{
    return ctx ? ctx->tuning : ESA_TUNING_AUTO;
}

uint32_t esa_context_validation_count(const esa_context *ctx)
{
    return ctx ? ctx->validation_count : 0;
}

esa_status esa_enumerate_devices(esa_device_info *infos, uint32_t cap, uint32_t *count)
{
    if (!count || (cap && !infos))
        return ESA_ERROR_INVALID_ARGUMENT;
    *count = 0;
    esa_context tmp = {0};
    PFN_vkGetInstanceProcAddr gipa = NULL;
    tmp.loader = esa_vk_open_loader(&gipa);
    esa_status s = ESA_SUCCESS;
    if (!tmp.loader || !esa_vk_load_global(&tmp.vk, gipa))
        s = ESA_ERROR_NO_DEVICE;
    if (s == ESA_SUCCESS)
        s = create_instance(&tmp, 0);
    if (s == ESA_SUCCESS) {
        uint32_t n = 0;
        VkPhysicalDevice pds[32];
        tmp.vk.vkEnumeratePhysicalDevices(tmp.instance, &n, NULL);
        if (n > 32)
            n = 32;
        tmp.vk.vkEnumeratePhysicalDevices(tmp.instance, &n, pds);
        for (uint32_t i = 0; i < n && i < cap; i++) {
            const char *why;
            describe(&tmp.vk, pds[i], i, &infos[i], &why);
        }
        *count = n;
    }
    if (tmp.instance)
        tmp.vk.vkDestroyInstance(tmp.instance, NULL);
    esa_vk_close_loader(tmp.loader);
    return s;
}

esa_status esa_begin(esa_context *ctx, VkCommandBuffer *cb)
{
    VkResult r = ctx->vk.vkResetCommandBuffer(ctx->cmd, 0);
    if (r != VK_SUCCESS)
        return esa_vk_fail(ctx, r, "vkResetCommandBuffer");
    VkCommandBufferBeginInfo bi = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
        .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT,
    };
    r = ctx->vk.vkBeginCommandBuffer(ctx->cmd, &bi);
    if (r != VK_SUCCESS)
        return esa_vk_fail(ctx, r, "vkBeginCommandBuffer");
    *cb = ctx->cmd;
    esa_profile_begin(ctx, ctx->cmd);
    return ESA_SUCCESS;
}

esa_status esa_submit_wait(esa_context *ctx)
{
    esa_vk *vk = &ctx->vk;
    /* make shader writes to host-visible memory available to the host */
    VkMemoryBarrier mb = {
        .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
        .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
        .dstAccessMask = VK_ACCESS_HOST_READ_BIT,
    };
    vk->vkCmdPipelineBarrier(ctx->cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                             VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &mb, 0, NULL, 0, NULL);
    VkResult r = vk->vkEndCommandBuffer(ctx->cmd);
    if (r != VK_SUCCESS)
        return esa_vk_fail(ctx, r, "vkEndCommandBuffer");
    VkSubmitInfo si = {
        .sType = VK_STRUCTURE_TYPE_SUBMIT_INFO,
        .commandBufferCount = 1,
        .pCommandBuffers = &ctx->cmd,
    };
    r = vk->vkQueueSubmit(ctx->queue, 1, &si, ctx->fence);
    if (r != VK_SUCCESS)
        return esa_vk_fail(ctx, r, "vkQueueSubmit");
    r = vk->vkWaitForFences(ctx->device, 1, &ctx->fence, VK_TRUE, UINT64_MAX);
    vk->vkResetFences(ctx->device, 1, &ctx->fence);
    if (r != VK_SUCCESS) {
        ctx->stamping = 0;
        return esa_vk_fail(ctx, r, "vkWaitForFences");
    }
    esa_profile_collect(ctx);
    return ESA_SUCCESS;
}
