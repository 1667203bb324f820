/* rt.h - the GPU runtime of esa-run: one Vulkan device and compute queue, buffers reached by
 * device address, compute pipelines from embedded SPIR-V, command recording and timestamps;
 * and the esa-vk context that records attention into the same command buffers.
 *
 * The Vulkan loader is opened at run time (a machine without one gets ESAG_ERR_NO_DEVICE, not
 * a failure to start) and every call goes through the runtime's own table of entry points
 * (esag_rt_vk, rt_vk.h): no global state, so runtimes live side by side. The library keeps
 * its own tables: it is handed the loader's vkGetInstanceProcAddr and the same
 * VkInstance/VkDevice/VkQueue (esa_context_create_external).
 *
 * Thread safety: a runtime, and everything made from it, is externally synchronized.
 * Errors: every fallible call returns an esag_status and leaves a one-line description in
 * esag_rt_last_error(); nothing aborts.
 */
#ifndef ESAG_RT_H
#define ESAG_RT_H

#include "rt_vk.h" /* Vulkan types before esa.h: declares the library's engine-level API */

#include "esa.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes; the values are pinned. */
typedef enum esag_status {
    ESAG_OK = 0,
    ESAG_ERR_ARG = 1,           /* a NULL pointer, a shape or alignment the call does not take */
    ESAG_ERR_HOST_MEMORY = 2,
    ESAG_ERR_DEVICE_MEMORY = 3,
    ESAG_ERR_NO_DEVICE = 4,     /* no Vulkan loader, no device, or none matching the request */
    ESAG_ERR_UNSUPPORTED = 5,   /* the device lacks a feature the kernels need */
    ESAG_ERR_VULKAN = 6,        /* a Vulkan call failed: the VkResult is in the message */
    ESAG_ERR_LIMIT = 7,         /* a size beyond a device limit */
    ESAG_ERR_DEVICE_LOST = 8,
    ESAG_ERR_ATTENTION = 9      /* esa-vk refused: its esa_status is in the message */
} esag_status;

/* A static name of a status ("ESAG_ERR_ARG"); never NULL. */
const char *esag_status_string(esag_status status);

typedef struct esag_rt esag_rt;

typedef struct esag_rt_desc {
    /* Which device: device_name (a case-insensitive substring of the name) wins if set; else
     * device_index_plus_1 (0 = choose: discrete > integrated > virtual > CPU). */
    const char *device_name;
    uint32_t device_index_plus_1;
    int enable_validation;   /* VK_LAYER_KHRONOS_validation, messages counted (see below) */
    int print_validation;    /* print each validation message to stderr */
    int without_attention;   /* 1: do not create the esa-vk context (kernel tests, tools) */
    int unmapped_device_buffers; /* 1: never map ESAG_MEM_DEVICE buffers, as on a discrete GPU
                                  * (tests the staging copies on unified-memory devices) */
    /* Optional: where esag_rt_create writes why it failed (NUL-terminated, truncated). */
    char *error_message;
    size_t error_message_size;
} esag_rt_desc;

typedef struct esag_device_info {
    char name[256];
    uint32_t vendor_id, device_id, api_version;
    VkPhysicalDeviceType type;
    uint32_t index;                    /* among vkEnumeratePhysicalDevices */
    uint32_t subgroup_size;            /* default compute subgroup size */
    uint32_t min_subgroup_size;        /* smallest a compute shader may run with */
    uint32_t max_shared_memory;        /* maxComputeSharedMemorySize, bytes */
    uint32_t max_workgroup_invocations;
    uint32_t max_workgroup_size_x;     /* maxComputeWorkGroupSize[0] */
    uint32_t max_workgroup_count[3];
    uint64_t max_memory_allocation_size;
    uint64_t max_storage_buffer_range;
    int unified_memory;                /* a DEVICE_LOCAL type is also HOST_VISIBLE */
    int shader_int64;                  /* shaderInt64: enabled on the device when supported */
    float timestamp_period_ns;         /* 0: the queue writes no timestamps */
    uint32_t timestamp_valid_bits;
} esag_device_info;

/* Create a runtime: instance, device (bufferDeviceAddress; compute subgroup basic, arithmetic
 * and ballot - esa-vk needs ballot), one compute queue, a command buffer, a pipeline layout
 * (one 128-byte push-constant range, no descriptor sets) and, unless desc->without_attention,
 * the esa-vk context on the same device. desc may be NULL. On failure *out is NULL. */
esag_status esag_rt_create(const esag_rt_desc *desc, esag_rt **out);

/* Waits for the device to be idle, destroys what the runtime made (the esa-vk context first).
 * Buffers and pipelines made from it must be destroyed before. Accepts NULL. */
void esag_rt_destroy(esag_rt *rt);

const char *esag_rt_last_error(const esag_rt *rt); /* never NULL */
const esag_device_info *esag_rt_device_info(const esag_rt *rt);
/* Validation messages (warnings and errors) so far; UINT32_MAX when validation was asked for
 * but the layer is not installed; 0 without validation. Includes the library's messages on
 * the shared device (they pass through the same messenger). */
uint32_t esag_rt_validation_count(const esag_rt *rt);
/* The esa-vk context on this device (NULL with without_attention). Owned by the runtime. */
esa_context *esag_rt_attention(esag_rt *rt);
VkDevice esag_rt_device(const esag_rt *rt);
/* The runtime's Vulkan entry points, for commands the runtime has no helper for. */
const esag_vk *esag_rt_vk(const esag_rt *rt);
VkPipelineLayout esag_rt_layout(const esag_rt *rt);

/* Records a failure description in rt (for code built on the runtime); returns status. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
esag_status esag_fail(esag_rt *rt, esag_status status, const char *fmt, ...);

/* ---------------------------------------------------------------------------------------- */
/* Buffers                                                                                    */

typedef enum esag_mem {
    ESAG_MEM_DEVICE = 0,   /* DEVICE_LOCAL where possible; mapped too on unified memory */
    ESAG_MEM_UPLOAD = 1,   /* HOST_VISIBLE (coherent preferred), mapped */
    ESAG_MEM_READBACK = 2  /* HOST_VISIBLE, HOST_CACHED preferred, mapped */
} esag_mem;

/* A buffer with its own memory. address is its device address (shaders reach every buffer
 * that way); map is non-NULL when the memory is host-visible (mapped for its whole life). */
typedef struct esag_buffer {
    VkBuffer buffer;
    VkDeviceMemory memory;
    VkDeviceAddress address;
    VkDeviceSize size;     /* as asked, rounded up to 16 bytes */
    void *map;
    int coherent;
} esag_buffer;

/* size 0 makes a 16-byte buffer. ESAG_ERR_LIMIT above maxMemoryAllocationSize. */
esag_status esag_buffer_create(esag_rt *rt, VkDeviceSize size, esag_mem kind, esag_buffer *out);
/* Accepts NULL and a zeroed buffer. The device must no longer use it. */
void esag_buffer_destroy(esag_rt *rt, esag_buffer *b);

/* Copy host bytes into a buffer at offset (blocking): memcpy when mapped, else through a
 * staging buffer and the runtime's transfer command buffer. Not while a submission of the
 * runtime's command buffer that uses the range is pending. */
esag_status esag_buffer_write(esag_rt *rt, esag_buffer *dst, VkDeviceSize offset,
                              const void *src, size_t size);
/* Copy bytes from a buffer to the host (blocking), the reverse of esag_buffer_write. The
 * device writes must have completed (esag_wait). */
esag_status esag_buffer_read(esag_rt *rt, const esag_buffer *src, VkDeviceSize offset,
                             void *dst, size_t size);

/* ---------------------------------------------------------------------------------------- */
/* Pipelines                                                                                  */

/* A compute pipeline from SPIR-V (entry "main") with specialization constants ids 0..nspec-1
 * = spec[0..nspec-1] (32-bit each, nspec <= 16), on the runtime's layout. */
esag_status esag_pipeline_create(esag_rt *rt, const uint32_t *code, size_t code_size,
                                 const uint32_t *spec, uint32_t nspec, VkPipeline *out);
void esag_pipeline_destroy(esag_rt *rt, VkPipeline p); /* accepts VK_NULL_HANDLE */

/* ---------------------------------------------------------------------------------------- */
/* Commands                                                                                   */

/* Reset and begin the runtime's command buffer (after the previous submission completed). */
esag_status esag_begin(esag_rt *rt, VkCommandBuffer *cb);
/* End it (after a barrier making shader and transfer writes visible to the host) and submit. */
esag_status esag_submit(esag_rt *rt);
/* Wait for the last esag_submit; ESAG_ERR_DEVICE_LOST etc. on failure. No-op if none. */
esag_status esag_wait(esag_rt *rt);
esag_status esag_submit_wait(esag_rt *rt);
/* End the command buffer begun by esag_begin without submitting it, for a recording that
 * failed half-way (a refused esag_cmd_* or esa_cmd_attend); the next esag_begin resets it.
 * Work recorded into it never runs: state that advanced at record time (an esa-vk cache, see
 * esa_cmd_attend) is the caller's to roll back. No-op when not recording; accepts NULL. */
void esag_abandon(esag_rt *rt);

/* Bind p, push size bytes (<= 128) and dispatch gx*gy*gz workgroups. */
void esag_cmd_dispatch(esag_rt *rt, VkCommandBuffer cb, VkPipeline p, const void *push,
                       uint32_t size, uint32_t gx, uint32_t gy, uint32_t gz);
/* A global memory barrier: compute-shader and transfer writes before it are visible to
 * compute-shader and transfer reads and writes after it. Put one between dependent dispatches
 * (also before and after esa_cmd_attend, which expects exactly this). */
void esag_cmd_barrier(esag_rt *rt, VkCommandBuffer cb);
/* vkCmdCopyBuffer of one region. */
void esag_cmd_copy(esag_rt *rt, VkCommandBuffer cb, const esag_buffer *src, VkDeviceSize src_off,
                   const esag_buffer *dst, VkDeviceSize dst_off, VkDeviceSize size);

/* ---------------------------------------------------------------------------------------- */
/* Timestamps (device time, for measurements)                                                 */

#define ESAG_MAX_TIMESTAMPS 256u

/* Reset queries [0, count) in cb; call before writing them in the same command buffer.
 * ESAG_ERR_UNSUPPORTED when the queue writes no timestamps. */
esag_status esag_cmd_reset_timestamps(esag_rt *rt, VkCommandBuffer cb, uint32_t count);
/* Write query i (< ESAG_MAX_TIMESTAMPS) after all earlier commands complete. */
void esag_cmd_timestamp(esag_rt *rt, VkCommandBuffer cb, uint32_t i);
/* After the submission completed: ns[i] = query i in nanoseconds (from an arbitrary origin). */
esag_status esag_read_timestamps(esag_rt *rt, uint32_t count, double *ns);

#ifdef __cplusplus
}
#endif

#endif
