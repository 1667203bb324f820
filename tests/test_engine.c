/* test_engine.c - the engine-level API: esa-vk adopts the test's own VkInstance/VkDevice and
 * records steps into the test's command buffers, reading and writing the test's buffers by
 * device address; the outputs must equal the simple API's on the same inputs. */
#include <vulkan/vulkan.h>

#include "harness.h"

#include <string.h>

static uint32_t g_vk_messages;
static VKAPI_ATTR VkBool32 VKAPI_CALL on_msg(VkDebugUtilsMessageSeverityFlagBitsEXT sev,
                                              VkDebugUtilsMessageTypeFlagsEXT type,
                                              const VkDebugUtilsMessengerCallbackDataEXT *d, void *u)
{
    (void)type;
    (void)u;
    if (sev & (VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT)) {
        g_vk_messages++;
        fprintf(stderr, "validation: %s\n", d->pMessage);
    }
    return VK_FALSE;
}

typedef struct buf {
    VkBuffer b;
    VkDeviceMemory m;
    void *map;
    VkDeviceAddress addr;
} buf;

static int make_buf(VkPhysicalDevice pd, VkDevice dev, VkDeviceSize size, buf *out)
{
    VkBufferCreateInfo bi = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO, .size = size,
                             .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_SHADER_DEVICE_ADDRESS_BIT};
    if (vkCreateBuffer(dev, &bi, NULL, &out->b) != VK_SUCCESS)
        return 0;
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(dev, out->b, &req);
    VkPhysicalDeviceMemoryProperties mp;
    vkGetPhysicalDeviceMemoryProperties(pd, &mp);
    uint32_t want = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT, t = 0;
    while (t < mp.memoryTypeCount && !((req.memoryTypeBits >> t & 1u) && (mp.memoryTypes[t].propertyFlags & want) == want))
        t++;
    VkMemoryAllocateFlagsInfo fi = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_FLAGS_INFO,
                                    .flags = VK_MEMORY_ALLOCATE_DEVICE_ADDRESS_BIT};
    VkMemoryAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO, .pNext = &fi,
                               .allocationSize = req.size, .memoryTypeIndex = t};
    if (t == mp.memoryTypeCount || vkAllocateMemory(dev, &ai, NULL, &out->m) != VK_SUCCESS)
        return 0;
    vkBindBufferMemory(dev, out->b, out->m, 0);
    vkMapMemory(dev, out->m, 0, VK_WHOLE_SIZE, 0, &out->map);
    VkBufferDeviceAddressInfo da = {.sType = VK_STRUCTURE_TYPE_BUFFER_DEVICE_ADDRESS_INFO, .buffer = out->b};
    out->addr = vkGetBufferDeviceAddress(dev, &da);
    return 1;
}

static void free_buf(VkDevice dev, buf *b)
{
    vkDestroyBuffer(dev, b->b, NULL);
    vkFreeMemory(dev, b->m, NULL);
}

int main(void)
{
    esa_context *simple = harness_context(); /* skips loudly without a device */
    const char *layer = "VK_LAYER_KHRONOS_validation", *ext = VK_EXT_DEBUG_UTILS_EXTENSION_NAME;
    VkApplicationInfo app = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO, .apiVersion = VK_API_VERSION_1_2};
    VkInstanceCreateInfo ici = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO, .pApplicationInfo = &app,
                                .enabledLayerCount = 1, .ppEnabledLayerNames = &layer,
                                .enabledExtensionCount = 1, .ppEnabledExtensionNames = &ext};
    VkInstance inst;
    if (vkCreateInstance(&ici, NULL, &inst) != VK_SUCCESS) {
        fprintf(stderr, "FAIL: vkCreateInstance\n");
        return 1;
    }
    VkDebugUtilsMessengerCreateInfoEXT mci = {
        .sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT,
        .messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT,
        .messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT,
        .pfnUserCallback = on_msg};
    PFN_vkCreateDebugUtilsMessengerEXT cm = (PFN_vkCreateDebugUtilsMessengerEXT)vkGetInstanceProcAddr(inst, "vkCreateDebugUtilsMessengerEXT");
    PFN_vkDestroyDebugUtilsMessengerEXT dm = (PFN_vkDestroyDebugUtilsMessengerEXT)vkGetInstanceProcAddr(inst, "vkDestroyDebugUtilsMessengerEXT");
    VkDebugUtilsMessengerEXT messenger;
    cm(inst, &mci, NULL, &messenger);
    esa_device_info info;
    esa_context_device_info(simple, &info);
    uint32_t npd = 8;
    VkPhysicalDevice pds[8];
    vkEnumeratePhysicalDevices(inst, &npd, pds);
    VkPhysicalDevice pd = pds[info.index < npd ? info.index : 0];
    uint32_t nq = 8, fam = 0;
    VkQueueFamilyProperties qf[8];
    vkGetPhysicalDeviceQueueFamilyProperties(pd, &nq, qf);
    while (fam < nq && !(qf[fam].queueFlags & VK_QUEUE_COMPUTE_BIT))
        fam++;
    float prio = 1.0f;
    VkDeviceQueueCreateInfo qci = {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO, .queueFamilyIndex = fam,
                                   .queueCount = 1, .pQueuePriorities = &prio};
    VkPhysicalDeviceVulkan12Features f12 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES,
                                            .bufferDeviceAddress = VK_TRUE};
    VkDeviceCreateInfo dci = {.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO, .pNext = &f12,
                              .queueCreateInfoCount = 1, .pQueueCreateInfos = &qci};
    VkDevice dev;
    if (vkCreateDevice(pd, &dci, NULL, &dev) != VK_SUCCESS) {
        fprintf(stderr, "FAIL: vkCreateDevice\n");
        return 1;
    }
    VkQueue queue;
    vkGetDeviceQueue(dev, fam, 0, &queue);

    esa_context *ext_ctx = NULL;
    esa_external_device_desc xd = {.get_instance_proc_addr = vkGetInstanceProcAddr, .instance = inst,
                                   .physical_device = pd, .device = dev, .queue = queue, .queue_family = fam,
                                   .tuning = harness_tuning()};
    EXPECT_STATUS(esa_context_create_external(NULL, &ext_ctx), ESA_ERROR_INVALID_ARGUMENT);
    esa_external_device_desc xbad = xd;
    xbad.tuning = (esa_tuning)7;
    EXPECT(esa_context_create_external(&xbad, &ext_ctx) == ESA_ERROR_INVALID_ARGUMENT && !ext_ctx, "tuning 7");
    xbad = xd;
    xbad.features = 2; /* no such feature */
    EXPECT(esa_context_create_external(&xbad, &ext_ctx) == ESA_ERROR_INVALID_ARGUMENT && !ext_ctx, "features 2");
    /* features 0: this context's attention reads 32-bit words, the simple context's 64-bit
     * ones where it enabled shaderInt64 (CPU tuning, lavapipe): the steps below compare them,
     * NeoX pairs in the rotated half of each head and plain blocks in the rest */
    EXPECT_STATUS(esa_context_create_external(&xd, &ext_ctx), ESA_SUCCESS);

    enum { H = 6, G = 2, D = 64, HD = H * D, GD = G * D, C = 16, STEPS = 18 };
    esa_cache_desc d = {.n_layers = 1, .n_heads = H, .n_kv_heads = G, .head_dim = D, .n_initial = 4,
                        .n_local = 16, .top_k = 8, .chunk = C, .max_tokens = C * STEPS,
                        .score_mode = ESA_SCORES_EXACT, .rope_style = ESA_ROPE_NEOX, .rope_dims = 32};
    esa_cache *xc = NULL, *sc = NULL;
    /* the engine's cache in pages of 16 tokens, under the smallest device budget (1 initial,
     * 2 local + current and 1 spare page): its page moves are recorded into the caller's
     * command buffer too, and the selected rows read by copy */
    esa_cache_desc xdesc = d;
    xdesc.page_tokens = 16;
    xdesc.kv_device_budget = 4ull * 16 * GD * 2 * 2;
    xdesc.kv_read = ESA_KV_READ_COPY;
    EXPECT_STATUS(esa_cache_create(ext_ctx, &xdesc, &xc), ESA_SUCCESS);
    EXPECT_STATUS(esa_cache_create(simple, &d, &sc), ESA_SUCCESS);
    buf bq, bk, bv, bo;
    EXPECT(make_buf(pd, dev, C * HD * 4, &bq) && make_buf(pd, dev, C * GD * 4, &bk) &&
               make_buf(pd, dev, C * GD * 4, &bv) && make_buf(pd, dev, C * HD * 4, &bo), "buffers");
    VkCommandPoolCreateInfo pci = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                   .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT, .queueFamilyIndex = fam};
    VkCommandPool pool;
    vkCreateCommandPool(dev, &pci, NULL, &pool);
    VkCommandBufferAllocateInfo cai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO, .commandPool = pool,
                                       .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY, .commandBufferCount = 1};
    VkCommandBuffer cb;
    vkAllocateCommandBuffers(dev, &cai, &cb);
    esa_step_buffers sb = {.q = bq.addr, .k = bk.addr, .v = bv.addr, .out = bo.addr, .dtype = ESA_F32};
    EXPECT_STATUS(esa_cmd_attend(xc, cb, 0, C + 1, &sb, NULL), ESA_ERROR_INVALID_ARGUMENT);
    EXPECT_STATUS(esa_cmd_attend(xc, NULL, 0, 1, &sb, NULL), ESA_ERROR_INVALID_ARGUMENT);
    esa_step_buffers bad_sb = sb;
    bad_sb.attention = (esa_attention)3;
    EXPECT_STATUS(esa_cmd_attend(xc, cb, 0, 1, &bad_sb, NULL), ESA_ERROR_INVALID_ARGUMENT);
    bad_sb = sb;
    bad_sb.reserved[1] = 1;
    EXPECT_STATUS(esa_cmd_attend(xc, cb, 0, 1, &bad_sb, NULL), ESA_ERROR_INVALID_ARGUMENT);
    rng_seed(5);
    static float q[C * HD], k[C * GD], v[C * GD], o_simple[C * HD];
    uint32_t total = 0;
    for (int step = 0; step < STEPS; step++) {
        uint32_t n = step % 3 == 2 ? 1 : C - (uint32_t)(step % 8);
        total += n;
        fill_normal(q, n * HD, 1.0f);
        fill_normal(k, n * GD, 1.0f);
        fill_normal(v, n * GD, 1.0f);
        memcpy(bq.map, q, n * HD * 4);
        memcpy(bk.map, k, n * GD * 4);
        memcpy(bv.map, v, n * GD * 4);
        VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
        vkBeginCommandBuffer(cb, &bi);
        esa_step_info si;
        /* every attention the engine records, against the simple call of the same name */
        static const esa_attention modes[] = {ESA_ATTENTION_ESA, ESA_ATTENTION_ESA, ESA_ATTENTION_DENSE,
                                              ESA_ATTENTION_ESA, ESA_ATTENTION_WINDOW};
        sb.attention = modes[step % 5];
        EXPECT_STATUS(esa_cache_reserve(xc, n), ESA_SUCCESS); /* before recording: its rule */
        EXPECT_STATUS(esa_cmd_attend(xc, cb, 0, n, &sb, &si), ESA_SUCCESS);
        VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER, .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT,
                              .dstAccessMask = VK_ACCESS_HOST_READ_BIT};
        vkCmdPipelineBarrier(cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &mb, 0, NULL, 0, NULL);
        vkEndCommandBuffer(cb);
        VkSubmitInfo sub = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &cb};
        vkQueueSubmit(queue, 1, &sub, VK_NULL_HANDLE);
        vkQueueWaitIdle(queue);
        esa_status (*simple_call)(esa_cache *, uint32_t, uint32_t, esa_dtype, const void *,
                                  const void *, const void *, float *, esa_step_info *) =
            sb.attention == ESA_ATTENTION_DENSE    ? esa_attend_dense
            : sb.attention == ESA_ATTENTION_WINDOW ? esa_attend_window
                                                   : esa_attend;
        EXPECT_STATUS(simple_call(sc, 0, n, ESA_F32, q, k, v, o_simple, NULL), ESA_SUCCESS);
        long bad;
        double err = norm_error(bo.map, o_simple, n * HD, 1e-6, &bad);
        EXPECT(err <= 1e-6, "step %d (n %u, selected %u): engine vs simple error %.3g at %ld", step, n,
               si.n_selected, err, bad);
    }
    esa_cache_memory mem = {0};
    EXPECT_STATUS(esa_cache_memory_usage(xc, &mem), ESA_SUCCESS);
    EXPECT(mem.device_pages == 4 && mem.host_pages == (total + 15) / 16 - 4 && mem.host_pages > 0,
           "engine cache of %u tokens: %llu device, %llu host pages", total, (unsigned long long)mem.device_pages,
           (unsigned long long)mem.host_pages);
    esa_cache_destroy(xc);
    esa_cache_destroy(sc);
    esa_context_destroy(ext_ctx);
    vkDestroyCommandPool(dev, pool, NULL);
    free_buf(dev, &bq);
    free_buf(dev, &bk);
    free_buf(dev, &bv);
    free_buf(dev, &bo);
    vkDestroyDevice(dev, NULL);
    dm(inst, messenger, NULL);
    vkDestroyInstance(inst, NULL);
    EXPECT(g_vk_messages == 0, "%u validation messages on the engine's device", g_vk_messages);
    return harness_finish(simple, "test_engine");
}
