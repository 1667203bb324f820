/* vk_table.h - the Vulkan entry points esa-vk calls, loaded per context.
 *
 * No global function pointers: an engine that embeds esa-vk may load Vulkan its own way (volk,
 * its own loader), so each context keeps its own table, filled from the vkGetInstanceProcAddr it
 * was given or found (volk README, "optimizing device calls"). */
#ifndef ESA_VK_TABLE_H
#define ESA_VK_TABLE_H

#include <vulkan/vulkan.h>

#define ESA_VK_INSTANCE_FUNCS(X)                                                               \
    X(vkDestroyInstance)                                                                       \
    X(vkEnumeratePhysicalDevices)                                                              \
    X(vkGetPhysicalDeviceProperties)                                                           \
    X(vkGetPhysicalDeviceProperties2)                                                          \
    X(vkGetPhysicalDeviceFeatures2)                                                            \
    X(vkGetPhysicalDeviceMemoryProperties)                                                     \
    X(vkGetPhysicalDeviceQueueFamilyProperties)                                                \
    X(vkEnumerateDeviceExtensionProperties)                                                    \
    X(vkCreateDevice)                                                                          \
    X(vkGetDeviceProcAddr)

#define ESA_VK_DEVICE_FUNCS(X)                                                                 \
    X(vkDestroyDevice)                                                                         \
    X(vkGetDeviceQueue)                                                                        \
    X(vkDeviceWaitIdle)                                                                        \
    X(vkQueueSubmit)                                                                           \
    X(vkQueueWaitIdle)                                                                         \
    X(vkCreateBuffer)                                                                          \
    X(vkDestroyBuffer)                                                                         \
    X(vkGetBufferMemoryRequirements)                                                           \
    X(vkAllocateMemory)                                                                        \
    X(vkFreeMemory)                                                                            \
    X(vkBindBufferMemory)                                                                      \
    X(vkMapMemory)                                                                             \
    X(vkUnmapMemory)                                                                           \
    X(vkFlushMappedMemoryRanges)                                                               \
    X(vkInvalidateMappedMemoryRanges)                                                          \
    X(vkGetBufferDeviceAddress)                                                                \
    X(vkCreateShaderModule)                                                                    \
    X(vkDestroyShaderModule)                                                                   \
    X(vkCreatePipelineLayout)                                                                  \
    X(vkDestroyPipelineLayout)                                                                 \
    X(vkCreateComputePipelines)                                                                \
    X(vkDestroyPipeline)                                                                       \
    X(vkCreateCommandPool)                                                                     \
    X(vkDestroyCommandPool)                                                                    \
    X(vkAllocateCommandBuffers)                                                                \
    X(vkResetCommandBuffer)                                                                    \
    X(vkBeginCommandBuffer)                                                                    \
    X(vkEndCommandBuffer)                                                                      \
    X(vkCreateFence)                                                                           \
    X(vkDestroyFence)                                                                          \
    X(vkWaitForFences)                                                                         \
    X(vkResetFences)                                                                           \
    X(vkCmdBindPipeline)                                                                       \
    X(vkCmdPushConstants)                                                                      \
    X(vkCmdDispatch)                                                                           \
    X(vkCmdDispatchIndirect)                                                                   \
    X(vkCmdPipelineBarrier)                                                                    \
    X(vkCmdFillBuffer)                                                                         \
    X(vkCmdUpdateBuffer)                                                                       \
    X(vkCreateQueryPool)                                                                       \
    X(vkDestroyQueryPool)                                                                      \
    X(vkCmdResetQueryPool)                                                                     \
    X(vkCmdWriteTimestamp)                                                                     \
    X(vkGetQueryPoolResults)                                                                   \
    X(vkCmdCopyBuffer)

typedef struct esa_vk {
    PFN_vkGetInstanceProcAddr vkGetInstanceProcAddr;
    PFN_vkCreateInstance vkCreateInstance;
    PFN_vkEnumerateInstanceLayerProperties vkEnumerateInstanceLayerProperties;
    PFN_vkEnumerateInstanceVersion vkEnumerateInstanceVersion;
    PFN_vkCreateDebugUtilsMessengerEXT vkCreateDebugUtilsMessengerEXT;
    PFN_vkDestroyDebugUtilsMessengerEXT vkDestroyDebugUtilsMessengerEXT;
#define ESA_X(name) PFN_##name name;
    ESA_VK_INSTANCE_FUNCS(ESA_X)
    ESA_VK_DEVICE_FUNCS(ESA_X)
#undef ESA_X
} esa_vk;

/* Open the system loader (libvulkan.so.1); returns NULL if there is none. */
void *esa_vk_open_loader(PFN_vkGetInstanceProcAddr *gipa);
void esa_vk_close_loader(void *handle);
/* Global-level entry points (vkCreateInstance, ...) from gipa. */
int esa_vk_load_global(esa_vk *vk, PFN_vkGetInstanceProcAddr gipa);
/* Instance-level entry points; returns 0 if one is missing. */
int esa_vk_load_instance(esa_vk *vk, VkInstance instance);
/* Device-level entry points; returns 0 if one is missing. */
int esa_vk_load_device(esa_vk *vk, VkDevice device);

#endif
