/* rt.c - the runtime: Vulkan instance and device, and the esa-vk context on them.
 *
 * Buffers live in rt_buffer.c; pipelines, command buffers and timestamps in rt_cmd.c. */
#include "rt_internal.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *esag_status_string(esag_status status)
{
    switch (status) {
    case ESAG_OK: return "ESAG_OK";
    case ESAG_ERR_ARG: return "ESAG_ERR_ARG";
    case ESAG_ERR_HOST_MEMORY: return "ESAG_ERR_HOST_MEMORY";
    case ESAG_ERR_DEVICE_MEMORY: return "ESAG_ERR_DEVICE_MEMORY";
    case ESAG_ERR_NO_DEVICE: return "ESAG_ERR_NO_DEVICE";
    case ESAG_ERR_UNSUPPORTED: return "ESAG_ERR_UNSUPPORTED";
    case ESAG_ERR_VULKAN: return "ESAG_ERR_VULKAN";
    case ESAG_ERR_LIMIT: return "ESAG_ERR_LIMIT";
    case ESAG_ERR_DEVICE_LOST: return "ESAG_ERR_DEVICE_LOST";
    case ESAG_ERR_ATTENTION: return "ESAG_ERR_ATTENTION";
    }
    return "unknown esag_status";
}

esag_status esag_fail(esag_rt *rt, esag_status status, const char *fmt, ...)
{
    if (rt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(rt->last_error, sizeof rt->last_error, fmt, ap);
        va_end(ap);
    }
    return status;
}

esag_status esag_vk_fail(esag_rt *rt, VkResult r, const char *what)
{
    esag_status s = ESAG_ERR_VULKAN;
    if (r == VK_ERROR_OUT_OF_HOST_MEMORY)
        s = ESAG_ERR_HOST_MEMORY;
    else if (r == VK_ERROR_OUT_OF_DEVICE_MEMORY)
        s = ESAG_ERR_DEVICE_MEMORY;
    else if (r == VK_ERROR_DEVICE_LOST)
        s = ESAG_ERR_DEVICE_LOST;
    return esag_fail(rt, s, "%s failed: VkResult %d", what, (int)r);
}

static VKAPI_ATTR VkBool32 VKAPI_CALL on_validation(VkDebugUtilsMessageSeverityFlagBitsEXT sev,
                                                     VkDebugUtilsMessageTypeFlagsEXT type,
                                                     const VkDebugUtilsMessengerCallbackDataEXT *d,
                                                     void *user)
{
    (void)type;
    esag_rt *rt = user;
    if (sev & (VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT |
               VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT)) {
        if (rt->validation_count != UINT32_MAX)
            rt->validation_count++;
        if (rt->print_validation)
            fprintf(stderr, "esa-run validation: %s\n", d && d->pMessage ? d->pMessage : "?");
    }
    return VK_FALSE;
}

static int has_instance_layer(const esag_vk *vk, const char *name)
{
    uint32_t n = 0;
    if (vk->vkEnumerateInstanceLayerProperties(&n, NULL) != VK_SUCCESS || n == 0)
        return 0;
    VkLayerProperties *p = calloc(n, sizeof *p);
    int found = 0;
    if (p && vk->vkEnumerateInstanceLayerProperties(&n, p) >= 0)
        for (uint32_t i = 0; i < n && !found; i++)
            found = strcmp(p[i].layerName, name) == 0;
    free(p);
    return found;
}

static int has_device_ext(const esag_vk *vk, VkPhysicalDevice pd, const char *name)
{
    uint32_t n = 0;
    if (vk->vkEnumerateDeviceExtensionProperties(pd, NULL, &n, NULL) != VK_SUCCESS || n == 0)
        return 0;
    VkExtensionProperties *p = calloc(n, sizeof *p);
    int found = 0;
    if (p && vk->vkEnumerateDeviceExtensionProperties(pd, NULL, &n, p) >= 0)
        for (uint32_t i = 0; i < n && !found; i++)
            found = strcmp(p[i].extensionName, name) == 0;
    free(p);
    return found;
}

static esag_status create_instance(esag_rt *rt, int validation)
{
    const char *layer = "VK_LAYER_KHRONOS_validation";
    const char *ext = VK_EXT_DEBUG_UTILS_EXTENSION_NAME;
    const esag_vk *vk = &rt->vk;
    int use_layer = validation && has_instance_layer(vk, layer);
    if (validation && !use_layer)
        rt->validation_count = UINT32_MAX;
    VkApplicationInfo app = {
        .sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
        .pApplicationName = "esa-run",
        .pEngineName = "esa-run",
        .apiVersion = VK_API_VERSION_1_2,
    };
    VkDebugUtilsMessengerCreateInfoEXT mi = {
        .sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT,
        .messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT |
                           VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT,
        .messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT |
                       VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                       VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT,
        .pfnUserCallback = on_validation,
        .pUserData = rt,
    };
    VkInstanceCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
        .pNext = use_layer ? &mi : NULL, /* also catches messages of instance creation */
        .pApplicationInfo = &app,
        .enabledLayerCount = use_layer ? 1u : 0u,
        .ppEnabledLayerNames = &layer,
        .enabledExtensionCount = use_layer ? 1u : 0u,
        .ppEnabledExtensionNames = &ext,
    };
    VkResult r = vk->vkCreateInstance(&ci, NULL, &rt->instance);
    if (r == VK_ERROR_INCOMPATIBLE_DRIVER)
        return esag_fail(rt, ESAG_ERR_NO_DEVICE, "no Vulkan driver (VK_ERROR_INCOMPATIBLE_DRIVER)");
    if (r != VK_SUCCESS)
        return esag_vk_fail(rt, r, "vkCreateInstance");
    if (!esag_vk_load_instance(&rt->vk, rt->instance))
        return esag_fail(rt, ESAG_ERR_NO_DEVICE, "the Vulkan loader lacks instance entry points");
    if (use_layer) {
        if (!vk->vkCreateDebugUtilsMessengerEXT)
            return esag_fail(rt, ESAG_ERR_VULKAN, "the validation layer has no debug-utils messenger");
        r = vk->vkCreateDebugUtilsMessengerEXT(rt->instance, &mi, NULL, &rt->messenger);
        if (r != VK_SUCCESS)
            return esag_vk_fail(rt, r, "vkCreateDebugUtilsMessengerEXT");
    }
    return ESAG_OK;
}

/* Fill info for one physical device; returns NULL if it has what the kernels (and, with
 * need_ballot, esa-vk) need, else why not. */
static const char *describe(const esag_vk *vk, VkPhysicalDevice pd, uint32_t index, int need_ballot,
                            esag_device_info *info)
{
    memset(info, 0, sizeof *info);
    VkPhysicalDeviceProperties base;
    vk->vkGetPhysicalDeviceProperties(pd, &base);
    snprintf(info->name, sizeof info->name, "%s", base.deviceName);
    info->vendor_id = base.vendorID;
    info->device_id = base.deviceID;
    info->api_version = base.apiVersion;
    info->type = base.deviceType;
    info->index = index;
    if (base.apiVersion < VK_API_VERSION_1_2)
        return "Vulkan 1.2 is required"; /* 1.1/1.2 structs may not be chained below */
    VkPhysicalDeviceSubgroupSizeControlPropertiesEXT ssc = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_PROPERTIES_EXT};
    VkPhysicalDeviceSubgroupProperties sg = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES};
    VkPhysicalDeviceMaintenance3Properties m3 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES, .pNext = &sg};
    int has_ssc = has_device_ext(vk, pd, VK_EXT_SUBGROUP_SIZE_CONTROL_EXTENSION_NAME);
    if (has_ssc)
        sg.pNext = &ssc;
    VkPhysicalDeviceProperties2 p2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &m3};
    vk->vkGetPhysicalDeviceProperties2(pd, &p2);
    const VkPhysicalDeviceLimits *lim = &p2.properties.limits;
    info->subgroup_size = sg.subgroupSize;
    /* without the extension a compute shader runs with the one size reported */
    info->min_subgroup_size = has_ssc && ssc.minSubgroupSize ? ssc.minSubgroupSize : sg.subgroupSize;
    info->max_shared_memory = lim->maxComputeSharedMemorySize;
    info->max_workgroup_invocations = lim->maxComputeWorkGroupInvocations;
    info->max_workgroup_size_x = lim->maxComputeWorkGroupSize[0];
    for (int i = 0; i < 3; i++)
        info->max_workgroup_count[i] = lim->maxComputeWorkGroupCount[i];
    info->max_memory_allocation_size = m3.maxMemoryAllocationSize;
    info->max_storage_buffer_range = lim->maxStorageBufferRange;
    info->timestamp_period_ns = lim->timestampComputeAndGraphics ? lim->timestampPeriod : 0.0f;
    VkPhysicalDeviceMemoryProperties mp;
    vk->vkGetPhysicalDeviceMemoryProperties(pd, &mp);
    for (uint32_t i = 0; i < mp.memoryTypeCount; i++) {
        VkMemoryPropertyFlags f = mp.memoryTypes[i].propertyFlags;
        if ((f & VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT) && (f & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT))
            info->unified_memory = 1;
    }

    VkPhysicalDeviceVulkan12Features f12 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
    VkPhysicalDeviceFeatures2 f2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &f12};
    vk->vkGetPhysicalDeviceFeatures2(pd, &f2);
    VkSubgroupFeatureFlags need = VK_SUBGROUP_FEATURE_BASIC_BIT | VK_SUBGROUP_FEATURE_ARITHMETIC_BIT;
    if (need_ballot)
        need |= VK_SUBGROUP_FEATURE_BALLOT_BIT;
    info->shader_int64 = f2.features.shaderInt64 == VK_TRUE;
    if (!f12.bufferDeviceAddress)
        return "bufferDeviceAddress is required";
    if (!(sg.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) || (sg.supportedOperations & need) != need)
        return need_ballot ? "compute subgroup operations basic, arithmetic and ballot are required"
                           : "compute subgroup operations basic and arithmetic are required";
    if (info->min_subgroup_size == 0 || info->max_shared_memory < 16384 ||
        info->max_workgroup_invocations < 256 || lim->maxComputeWorkGroupSize[0] < 256)
        return "16 KiB of shared memory and 256-invocation workgroups are required";
    return NULL;
}

static int type_rank(VkPhysicalDeviceType t)
{
    switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return 4;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return 3;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return 2;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return 1;
    default: return 0;
    }
}

static int contains_nocase(const char *hay, const char *needle)
{
    size_t n = strlen(hay), w = strlen(needle);
    for (size_t i = 0; i + w <= n; i++) {
        size_t j = 0;
        while (j < w && tolower((unsigned char)hay[i + j]) == tolower((unsigned char)needle[j]))
            j++;
        if (j == w)
            return 1;
    }
    return 0;
}

static esag_status choose_device(esag_rt *rt, const esag_rt_desc *desc, int need_ballot)
{
    const esag_vk *vk = &rt->vk;
    uint32_t n = 0;
    VkResult r = vk->vkEnumeratePhysicalDevices(rt->instance, &n, NULL);
    if (r != VK_SUCCESS)
        return esag_vk_fail(rt, r, "vkEnumeratePhysicalDevices");
    if (n == 0)
        return esag_fail(rt, ESAG_ERR_NO_DEVICE, "no Vulkan device");
    VkPhysicalDevice pds[32];
    if (n > 32)
        n = 32;
    r = vk->vkEnumeratePhysicalDevices(rt->instance, &n, pds);
    if (r < 0)
        return esag_vk_fail(rt, r, "vkEnumeratePhysicalDevices");
    int named = desc && desc->device_name && desc->device_name[0];
    int indexed = !named && desc && desc->device_index_plus_1;
    int best = -1, best_rank = -1;
    const char *why_not = NULL;
    for (uint32_t i = 0; i < n; i++) {
        esag_device_info info;
        const char *why = describe(&rt->vk, pds[i], i, need_ballot, &info);
        if ((named && !contains_nocase(info.name, desc->device_name)) ||
            (indexed && desc->device_index_plus_1 - 1 != i))
            continue;
        if (why) {
            if (named || indexed)
                return esag_fail(rt, ESAG_ERR_UNSUPPORTED, "device %u (%s): %s", i, info.name, why);
            why_not = why;
            continue;
        }
        if (type_rank(info.type) > best_rank) {
            best = (int)i;
            best_rank = type_rank(info.type);
            rt->info = info;
        }
    }
    if (best < 0) {
        if (why_not)
            return esag_fail(rt, ESAG_ERR_UNSUPPORTED, "no usable device: %s", why_not);
        if (named)
            return esag_fail(rt, ESAG_ERR_NO_DEVICE, "no device name contains \"%s\"", desc->device_name);
        return esag_fail(rt, ESAG_ERR_NO_DEVICE, "no device %u (there are %u)",
                         desc->device_index_plus_1 - 1, n);
    }
    rt->physical = pds[best];
    return ESAG_OK;
}

static esag_status create_device(esag_rt *rt)
{
    const esag_vk *vk = &rt->vk;
    uint32_t nq = 0;
    vk->vkGetPhysicalDeviceQueueFamilyProperties(rt->physical, &nq, NULL);
    VkQueueFamilyProperties qf[16];
    if (nq > 16)
        nq = 16;
    vk->vkGetPhysicalDeviceQueueFamilyProperties(rt->physical, &nq, qf);
    int fam = -1; /* a compute queue, preferring one without graphics */
    for (uint32_t i = 0; i < nq && fam < 0; i++)
        if ((qf[i].queueFlags & VK_QUEUE_COMPUTE_BIT) && !(qf[i].queueFlags & VK_QUEUE_GRAPHICS_BIT))
            fam = (int)i;
    for (uint32_t i = 0; i < nq && fam < 0; i++)
        if (qf[i].queueFlags & VK_QUEUE_COMPUTE_BIT)
            fam = (int)i;
    if (fam < 0)
        return esag_fail(rt, ESAG_ERR_UNSUPPORTED, "%s has no compute queue", rt->info.name);
    rt->queue_family = (uint32_t)fam;
    rt->info.timestamp_valid_bits = qf[fam].timestampValidBits;
    if (rt->info.timestamp_valid_bits == 0)
        rt->info.timestamp_period_ns = 0.0f;
    float prio = 1.0f;
    VkDeviceQueueCreateInfo qi = {
        .sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
        .queueFamilyIndex = rt->queue_family,
        .queueCount = 1,
        .pQueuePriorities = &prio,
    };
    VkPhysicalDeviceVulkan12Features f12 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES,
        .bufferDeviceAddress = VK_TRUE,
    };
    VkPhysicalDeviceFeatures f10 = {.shaderInt64 = rt->info.shader_int64 ? VK_TRUE : VK_FALSE};
    VkDeviceCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
        .pNext = &f12,
        .pEnabledFeatures = &f10,
        .queueCreateInfoCount = 1,
        .pQueueCreateInfos = &qi,
    };
    VkResult r = vk->vkCreateDevice(rt->physical, &ci, NULL, &rt->device);
    if (r != VK_SUCCESS)
        return esag_vk_fail(rt, r, "vkCreateDevice");
    if (!esag_vk_load_device(&rt->vk, rt->device))
        return esag_fail(rt, ESAG_ERR_NO_DEVICE, "the driver lacks device entry points");
    rt->vk.vkGetDeviceQueue(rt->device, rt->queue_family, 0, &rt->queue);
    vk->vkGetPhysicalDeviceMemoryProperties(rt->physical, &rt->mem_props);
    return ESAG_OK;
}

/* Command pool, the user's and the transfer command buffer with their fences, the pipeline
 * layout and the timestamp pool. */
static esag_status create_device_objects(esag_rt *rt)
{
    const esag_vk *vk = &rt->vk;
    VkCommandPoolCreateInfo pi = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
        .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
        .queueFamilyIndex = rt->queue_family,
    };
    VkResult r = vk->vkCreateCommandPool(rt->device, &pi, NULL, &rt->pool);
    if (r != VK_SUCCESS)
        return esag_vk_fail(rt, r, "vkCreateCommandPool");
    VkCommandBuffer cbs[2];
    VkCommandBufferAllocateInfo ai = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
        .commandPool = rt->pool,
        .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
        .commandBufferCount = 2,
    };
    r = vk->vkAllocateCommandBuffers(rt->device, &ai, cbs);
    if (r != VK_SUCCESS)
        return esag_vk_fail(rt, r, "vkAllocateCommandBuffers");
    rt->cmd = cbs[0];
    rt->xfer_cmd = cbs[1];
    VkFenceCreateInfo fi = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    if ((r = vk->vkCreateFence(rt->device, &fi, NULL, &rt->fence)) != VK_SUCCESS ||
        (r = vk->vkCreateFence(rt->device, &fi, NULL, &rt->xfer_fence)) != VK_SUCCESS)
        return esag_vk_fail(rt, r, "vkCreateFence");
    VkPushConstantRange range = {.stageFlags = VK_SHADER_STAGE_COMPUTE_BIT, .size = ESAG_PUSH_BYTES};
    VkPipelineLayoutCreateInfo li = {
        .sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
        .pushConstantRangeCount = 1,
        .pPushConstantRanges = &range,
    };
    r = vk->vkCreatePipelineLayout(rt->device, &li, NULL, &rt->layout);
    if (r != VK_SUCCESS)
        return esag_vk_fail(rt, r, "vkCreatePipelineLayout");
    if (rt->info.timestamp_period_ns > 0.0f) {
        VkQueryPoolCreateInfo qi = {
            .sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO,
            .queryType = VK_QUERY_TYPE_TIMESTAMP,
            .queryCount = ESAG_MAX_TIMESTAMPS,
        };
        r = vk->vkCreateQueryPool(rt->device, &qi, NULL, &rt->timestamps);
        if (r != VK_SUCCESS)
            return esag_vk_fail(rt, r, "vkCreateQueryPool");
    }
    return ESAG_OK;
}

static esag_status create_attention(esag_rt *rt)
{
    esa_external_device_desc xd = {
        .get_instance_proc_addr = rt->vk.vkGetInstanceProcAddr,
        .instance = rt->instance,
        .physical_device = rt->physical,
        .device = rt->device,
        .queue = rt->queue,
        .queue_family = rt->queue_family,
        .features = rt->info.shader_int64 ? ESA_FEATURE_SHADER_INT64 : 0u, /* enabled above */
    };
    esa_status s = esa_context_create_external(&xd, &rt->esa);
    if (s != ESA_SUCCESS)
        return esag_fail(rt, ESAG_ERR_ATTENTION, "esa_context_create_external: %s",
                         esa_status_string(s));
    return ESAG_OK;
}

esag_status esag_rt_create(const esag_rt_desc *desc, esag_rt **out)
{
    if (!out)
        return ESAG_ERR_ARG;
    *out = NULL;
    esag_rt *rt = calloc(1, sizeof *rt);
    if (!rt)
        return ESAG_ERR_HOST_MEMORY;
    rt->print_validation = desc ? desc->print_validation : 0;
    rt->unmapped_device_buffers = desc ? desc->unmapped_device_buffers : 0;
    int attention = !(desc && desc->without_attention);
    esag_status s = ESAG_OK;
    rt->loader = esag_vk_open(&rt->vk);
    if (!rt->loader)
        s = esag_fail(rt, ESAG_ERR_NO_DEVICE, "no Vulkan loader (libvulkan.so.1)");
    if (s == ESAG_OK)
        s = create_instance(rt, desc ? desc->enable_validation : 0);
    if (s == ESAG_OK)
        s = choose_device(rt, desc, attention);
    if (s == ESAG_OK)
        s = create_device(rt);
    if (s == ESAG_OK)
        s = create_device_objects(rt);
    if (s == ESAG_OK && attention)
        s = create_attention(rt);
    if (s != ESAG_OK) {
        if (desc && desc->error_message && desc->error_message_size)
            snprintf(desc->error_message, desc->error_message_size, "%s: %s",
                     esag_status_string(s), rt->last_error);
        esag_rt_destroy(rt);
        return s;
    }
    *out = rt;
    return ESAG_OK;
}

void esag_rt_destroy(esag_rt *rt)
{
    if (!rt)
        return;
    if (rt->device) {
        const esag_vk *vk = &rt->vk;
        vk->vkDeviceWaitIdle(rt->device);
        esa_context_destroy(rt->esa);
        esag_buffer_destroy(rt, &rt->staging);
        if (rt->timestamps)
            vk->vkDestroyQueryPool(rt->device, rt->timestamps, NULL);
        if (rt->layout)
            vk->vkDestroyPipelineLayout(rt->device, rt->layout, NULL);
        if (rt->fence)
            vk->vkDestroyFence(rt->device, rt->fence, NULL);
        if (rt->xfer_fence)
            vk->vkDestroyFence(rt->device, rt->xfer_fence, NULL);
        if (rt->pool)
            vk->vkDestroyCommandPool(rt->device, rt->pool, NULL);
        vk->vkDestroyDevice(rt->device, NULL);
    }
    if (rt->instance) {
        if (rt->messenger)
            rt->vk.vkDestroyDebugUtilsMessengerEXT(rt->instance, rt->messenger, NULL);
        rt->vk.vkDestroyInstance(rt->instance, NULL);
    }
    esag_vk_close(rt->loader);
    free(rt);
}

const char *esag_rt_last_error(const esag_rt *rt)
{
    return rt ? rt->last_error : "no runtime";
}

const esag_device_info *esag_rt_device_info(const esag_rt *rt) { return &rt->info; }
uint32_t esag_rt_validation_count(const esag_rt *rt) { return rt->validation_count; }
esa_context *esag_rt_attention(esag_rt *rt) { return rt->esa; }
VkDevice esag_rt_device(const esag_rt *rt) { return rt->device; }
const esag_vk *esag_rt_vk(const esag_rt *rt) { return &rt->vk; }
VkPipelineLayout esag_rt_layout(const esag_rt *rt) { return rt->layout; }
