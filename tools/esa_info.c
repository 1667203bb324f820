/* esa-info: lists the Vulkan devices esa-vk sees and what it would choose. */
#include "esa.h"

#include <stdio.h>

int main(void)
{
    esa_device_info infos[16];
    uint32_t n = 0;
    esa_status s = esa_enumerate_devices(infos, 16, &n);
    if (s != ESA_SUCCESS) {
        fprintf(stderr, "esa-info: %s\n", esa_status_string(s));
        return 1;
    }
    for (uint32_t i = 0; i < n && i < 16; i++)
        printf("%u: %s (%s) subgroup %u\n", i, infos[i].name, infos[i].driver_info, infos[i].subgroup_size);
    return 0;
}
