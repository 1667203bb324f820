/* esa-info: lists the Vulkan devices esa-vk sees, with what it needs of them, and the device it
 * would choose (ESA_DEVICE: an index, or a substring of the device name). */
#include "esa.h"
#include "tool_device.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *type_name(esa_device_type t)
{
    switch (t) {
    case ESA_DEVICE_INTEGRATED: return "integrated GPU";
    case ESA_DEVICE_DISCRETE: return "discrete GPU";
    case ESA_DEVICE_VIRTUAL: return "virtual GPU";
    case ESA_DEVICE_CPU: return "CPU";
    default: return "other";
    }
}

static void print_info(const esa_device_info *d)
{
    printf("%u: %s\n", d->index, d->name);
    printf("   type %s, vendor 0x%04x, device 0x%04x, Vulkan %u.%u.%u\n", type_name(d->type),
           d->vendor_id, d->device_id, d->api_version >> 22, (d->api_version >> 12) & 0x3ff,
           d->api_version & 0xfff);
    printf("   driver %s (%s)\n", d->driver_name, d->driver_info);
    printf("   subgroup size %u (range %u..%u), shared memory %u bytes, workgroup %u invocations\n",
           d->subgroup_size, d->min_subgroup_size, d->max_subgroup_size, d->max_shared_memory,
           d->max_workgroup_invocations);
    printf("   maxStorageBufferRange %llu MiB, maxMemoryAllocationSize %llu MiB, device-local heap %llu MiB\n",
           (unsigned long long)(d->max_storage_buffer_range >> 20),
           (unsigned long long)(d->max_memory_allocation_size >> 20),
           (unsigned long long)(d->device_local_bytes >> 20));
    printf("   timestamps %s\n", d->timestamp_period_ns > 0 ? "yes" : "no");
}

int main(int argc, char **argv)
{
    (void)argv;
    if (argc > 1) {
        printf("usage: esa-info   (lists devices; ESA_DEVICE=INDEX|NAME picks one)\n");
        return 0;
    }
    esa_device_info infos[16];
    uint32_t n = 0;
    esa_status s = esa_enumerate_devices(infos, 16, &n);
    if (s != ESA_SUCCESS) {
        fprintf(stderr, "esa-info: %s\n", esa_status_string(s));
        return 1;
    }
    printf("esa-vk %s: %u Vulkan device%s\n", esa_version_string(), n, n == 1 ? "" : "s");
    for (uint32_t i = 0; i < n && i < 16; i++)
        print_info(&infos[i]);
    const char *env = getenv("ESA_DEVICE");
    char why[256] = "";
    esa_context_desc desc = {.error_message = why, .error_message_size = sizeof why};
    tool_device_request(env, &desc);
    esa_context *ctx;
    s = esa_context_create(&desc, &ctx);
    if (s != ESA_SUCCESS) {
        printf("chosen: none: %s (%s)\n", esa_status_string(s), why);
        return 1;
    }
    esa_device_info d;
    esa_context_device_info(ctx, &d);
    printf("chosen%s: %u (%s)\n", env && env[0] ? " by ESA_DEVICE" : "", d.index, d.name);
    esa_context_destroy(ctx);
    return 0;
}
