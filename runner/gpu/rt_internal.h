/* rt_internal.h - the structure behind esag_rt, shared by rt.c, rt_buffer.c and rt_cmd.c. */
#ifndef ESAG_RT_INTERNAL_H
#define ESAG_RT_INTERNAL_H

#include "rt.h"

#define ESAG_PUSH_BYTES 128u              /* the one push-constant range of every pipeline */
#define ESAG_STAGING_BYTES (16u << 20)    /* chunk of esag_buffer_write/read without a mapping */

struct esag_rt {
    VkInstance instance;
    VkDebugUtilsMessengerEXT messenger;
    VkPhysicalDevice physical;
    VkDevice device;
    struct VolkDeviceTable vk;            /* this device's entry points */
    VkQueue queue;
    uint32_t queue_family;
    esag_device_info info;
    VkPhysicalDeviceMemoryProperties mem_props;
    VkCommandPool pool;
    VkCommandBuffer cmd;                  /* the caller's (esag_begin) */
    VkFence fence;
    int recording, pending;
    VkCommandBuffer xfer_cmd;             /* blocking copies of esag_buffer_write/read */
    VkFence xfer_fence;
    esag_buffer staging;                  /* made on first use without a mapping */
    VkPipelineLayout layout;
    VkQueryPool timestamps;               /* ESAG_MAX_TIMESTAMPS, or none */
    esa_context *esa;
    uint32_t validation_count;            /* UINT32_MAX: asked for, layer missing */
    int print_validation;
    char last_error[512];
};

/* Translate a failed VkResult into a status, with what failed. */
esag_status esag_vk_fail(esag_rt *rt, VkResult r, const char *what);

#endif
