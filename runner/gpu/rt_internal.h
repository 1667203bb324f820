/* rt_internal.h - the structure behind esag_rt, shared by rt.c, rt_buffer.c and rt_cmd.c. */
#ifndef ESAG_RT_INTERNAL_H
#define ESAG_RT_INTERNAL_H

#include "rt.h"

#define ESAG_PUSH_BYTES 128u              /* the one push-constant range of every pipeline */
#define ESAG_STAGING_BYTES (16u << 20)    /* chunk of esag_buffer_write/read without a mapping */

struct esag_rt {
    esag_vk vk;                           /* this runtime's entry points */
    void *loader;                         /* the dlopen handle of libvulkan */
    VkInstance instance;
    VkDebugUtilsMessengerEXT messenger;
    VkPhysicalDevice physical;
    VkDevice device;
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
    int unmapped_device_buffers;          /* esag_rt_desc */
    char last_error[512];
};

/* rt_vk.c: open the loader (the handle, or NULL) and fill the global entries of vk; load the
 * instance-level and device-level entries (0 if a required one is missing). */
void *esag_vk_open(esag_vk *vk);
void esag_vk_close(void *lib);
int esag_vk_load_instance(esag_vk *vk, VkInstance instance);
int esag_vk_load_device(esag_vk *vk, VkDevice device);

/* Translate a failed VkResult into a status, with what failed. */
esag_status esag_vk_fail(esag_rt *rt, VkResult r, const char *what);

#endif
