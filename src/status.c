/* status.c - version, status names, error recording and small helpers. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ESA_STR2(x) #x
#define ESA_STR(x) ESA_STR2(x)

unsigned esa_version(void) { return ESA_VERSION_NUMBER; }

const char *esa_version_string(void)
{
    return ESA_STR(ESA_VERSION_MAJOR) "." ESA_STR(ESA_VERSION_MINOR) "." ESA_STR(ESA_VERSION_PATCH);
}

const char *esa_status_string(esa_status status)
{
    switch (status) {
    case ESA_SUCCESS: return "ESA_SUCCESS";
    case ESA_ERROR_INVALID_ARGUMENT: return "ESA_ERROR_INVALID_ARGUMENT: an argument is NULL, out of range or inconsistent";
    case ESA_ERROR_OUT_OF_HOST_MEMORY: return "ESA_ERROR_OUT_OF_HOST_MEMORY";
    case ESA_ERROR_OUT_OF_DEVICE_MEMORY: return "ESA_ERROR_OUT_OF_DEVICE_MEMORY";
    case ESA_ERROR_NO_DEVICE: return "ESA_ERROR_NO_DEVICE: no Vulkan loader or no matching device";
    case ESA_ERROR_DEVICE_UNSUPPORTED: return "ESA_ERROR_DEVICE_UNSUPPORTED: the device lacks a required feature";
    case ESA_ERROR_VULKAN: return "ESA_ERROR_VULKAN: a Vulkan call failed";
    case ESA_ERROR_CAPACITY: return "ESA_ERROR_CAPACITY: the cache is full (max_tokens)";
    case ESA_ERROR_NOT_READY: return "ESA_ERROR_NOT_READY: the layer's compression matrices are not set";
    case ESA_ERROR_NON_FINITE: return "ESA_ERROR_NON_FINITE: an input holds NaN or infinity";
    case ESA_ERROR_DEVICE_LOST: return "ESA_ERROR_DEVICE_LOST";
    case ESA_ERROR_LIMIT: return "ESA_ERROR_LIMIT: a size exceeds a device limit";
    case ESA_ERROR_IO: return "ESA_ERROR_IO: a file could not be opened, read or written";
    case ESA_ERROR_FILE_CORRUPT: return "ESA_ERROR_FILE_CORRUPT: not an esa-vk cache file, truncated or damaged";
    case ESA_ERROR_FILE_MISMATCH: return "ESA_ERROR_FILE_MISMATCH: the file's format version or cache shape differs";
    }
    return "unknown esa_status";
}

esa_status esa_fail(esa_context *ctx, esa_status status, const char *fmt, ...)
{
    if (ctx) { /* through a copy: the arguments may include the previous message */
        char msg[sizeof ctx->last_error];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        memcpy(ctx->last_error, msg, sizeof msg);
    }
    return status;
}

esa_status esa_vk_fail(esa_context *ctx, VkResult r, const char *what)
{
    esa_status s = ESA_ERROR_VULKAN;
    if (r == VK_ERROR_OUT_OF_HOST_MEMORY)
        s = ESA_ERROR_OUT_OF_HOST_MEMORY;
    else if (r == VK_ERROR_OUT_OF_DEVICE_MEMORY)
        s = ESA_ERROR_OUT_OF_DEVICE_MEMORY;
    else if (r == VK_ERROR_DEVICE_LOST)
        s = ESA_ERROR_DEVICE_LOST;
    if (ctx)
        ctx->last_vk = (int32_t)r;
    return esa_fail(ctx, s, "%s failed: VkResult %d", what, (int)r);
}

void *esa_malloc(esa_context *ctx, size_t size)
{
    if (ctx && ctx->alloc)
        return ctx->alloc(ctx->alloc_user, size);
    return malloc(size);
}

void *esa_calloc(esa_context *ctx, size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        return NULL;
    void *p = esa_malloc(ctx, n * size);
    if (p)
        memset(p, 0, n * size);
    return p;
}

void esa_free(esa_context *ctx, void *p)
{
    if (!p)
        return;
    if (ctx && ctx->free_fn)
        ctx->free_fn(ctx->alloc_user, p);
    else
        free(p);
}

uint32_t esa_max_u32(uint32_t a, uint32_t b) { return a > b ? a : b; }
uint32_t esa_min_u32(uint32_t a, uint32_t b) { return a < b ? a : b; }
uint32_t esa_div_up(uint32_t a, uint32_t b) { return (a + b - 1u) / b; }

int32_t esa_context_last_vk_result(const esa_context *ctx) { return ctx ? ctx->last_vk : 0; }

const char *esa_context_last_error(const esa_context *ctx)
{
    return ctx ? ctx->last_error : "no context";
}
