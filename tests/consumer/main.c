/* consumer: built against an installed esa-vk; checks the header and the library agree. */
#include <esa.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
    if (esa_version() != ESA_VERSION_NUMBER) {
        fprintf(stderr, "header %d, library %u\n", ESA_VERSION_NUMBER, esa_version());
        return 1;
    }
    printf("esa-vk %s: %s\n", esa_version_string(), esa_status_string(ESA_ERROR_CAPACITY));
    return strncmp(esa_status_string(ESA_ERROR_CAPACITY), "ESA_ERROR_CAPACITY", 18) != 0;
}
