/* tool_device.h - how every esa-vk tool reads a device request (--device or ESA_DEVICE):
 * all digits is an index, anything else a substring of the device name. */
#ifndef ESA_TOOL_DEVICE_H
#define ESA_TOOL_DEVICE_H

#include "esa.h"

#include <stdlib.h>
#include <string.h>

static inline void tool_device_request(const char *want, esa_context_desc *desc)
{
    if (!want || !want[0])
        return;
    if (strspn(want, "0123456789") == strlen(want))
        desc->device_index_plus_1 = (uint32_t)strtoul(want, NULL, 10) + 1;
    else
        desc->device_name = want;
}

#endif
