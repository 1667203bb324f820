/* rt_vk.h - the runtime's Vulkan entry points: one table per runtime, loaded through
 * vkGetInstanceProcAddr from the loader opened at run time (no global function pointers, so
 * runtimes on different instances and devices stay independent; see volk's README on why an
 * embedded user must not share global pointers). */
#ifndef ESAG_RT_VK_H
#define ESAG_RT_VK_H

#ifndef VK_NO_PROTOTYPES
#define VK_NO_PROTOTYPES
#endif
#include <vulkan/vulkan.h>

#define ESAG_VK_INSTANCE_FUNCS(X)                                                              \
    X(vkDestroyInstance) X(vkEnumeratePhysicalDevices) X(vkGetPhysicalDeviceProperties)        \
    X(vkGetPhysicalDeviceProperties2) X(vkGetPhysicalDeviceFeatures2)                          \
    X(vkGetPhysicalDeviceMemoryProperties) X(vkGetPhysicalDeviceQueueFamilyProperties)         \
    X(vkEnumerateDeviceExtensionProperties) X(vkCreateDevice) X(vkGetDeviceProcAddr)

#define ESAG_VK_DEVICE_FUNCS(X)                                                                \
    X(vkDestroyDevice) X(vkGetDeviceQueue) X(vkDeviceWaitIdle) X(vkQueueSubmit)                \
    X(vkQueueWaitIdle) X(vkCreateCommandPool) X(vkDestroyCommandPool)                          \
    X(vkAllocateCommandBuffers) X(vkResetCommandBuffer) X(vkBeginCommandBuffer)                \
    X(vkEndCommandBuffer) X(vkCreateFence) X(vkDestroyFence) X(vkWaitForFences)                \
    X(vkResetFences) X(vkCreateBuffer) X(vkDestroyBuffer) X(vkGetBufferMemoryRequirements)     \
    X(vkAllocateMemory) X(vkFreeMemory) X(vkBindBufferMemory) X(vkMapMemory)                   \
    X(vkUnmapMemory) X(vkFlushMappedMemoryRanges) X(vkInvalidateMappedMemoryRanges)            \
    X(vkGetBufferDeviceAddress) X(vkCreateShaderModule) X(vkDestroyShaderModule)               \
    X(vkCreateComputePipelines) X(vkDestroyPipeline) X(vkCreatePipelineLayout)                 \
    X(vkDestroyPipelineLayout) X(vkCreateQueryPool) X(vkDestroyQueryPool)                      \
    X(vkGetQueryPoolResults) X(vkCmdBindPipeline) X(vkCmdPushConstants) X(vkCmdDispatch)       \
    X(vkCmdPipelineBarrier) X(vkCmdCopyBuffer) X(vkCmdFillBuffer) X(vkCmdResetQueryPool)       \
    X(vkCmdWriteTimestamp)

#define ESAG_VK_PFN(name) PFN_##name name;
typedef struct esag_vk {
    PFN_vkGetInstanceProcAddr vkGetInstanceProcAddr;
    PFN_vkCreateInstance vkCreateInstance;
    PFN_vkEnumerateInstanceLayerProperties vkEnumerateInstanceLayerProperties;
    PFN_vkEnumerateInstanceExtensionProperties vkEnumerateInstanceExtensionProperties;
    ESAG_VK_INSTANCE_FUNCS(ESAG_VK_PFN)
    PFN_vkCreateDebugUtilsMessengerEXT vkCreateDebugUtilsMessengerEXT;   /* NULL without */
    PFN_vkDestroyDebugUtilsMessengerEXT vkDestroyDebugUtilsMessengerEXT; /* the extension */
    ESAG_VK_DEVICE_FUNCS(ESAG_VK_PFN)
} esag_vk;
#undef ESAG_VK_PFN

#endif
