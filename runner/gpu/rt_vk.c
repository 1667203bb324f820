/* rt_vk.c - opening the Vulkan loader and filling a runtime's entry-point table. */
#include "rt_internal.h"

#include <dlfcn.h>

void *esag_vk_open(esag_vk *vk)
{
    static const char *const names[] = {"libvulkan.so.1", "libvulkan.so"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        void *lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
        if (!lib)
            continue;
        union { void *p; PFN_vkGetInstanceProcAddr f; } sym = {.p = dlsym(lib, "vkGetInstanceProcAddr")};
        vk->vkGetInstanceProcAddr = sym.f;
        if (vk->vkGetInstanceProcAddr) {
            PFN_vkGetInstanceProcAddr gipa = vk->vkGetInstanceProcAddr;
            vk->vkCreateInstance = (PFN_vkCreateInstance)gipa(VK_NULL_HANDLE, "vkCreateInstance");
            vk->vkEnumerateInstanceLayerProperties = (PFN_vkEnumerateInstanceLayerProperties)gipa(
                VK_NULL_HANDLE, "vkEnumerateInstanceLayerProperties");
            vk->vkEnumerateInstanceExtensionProperties = (PFN_vkEnumerateInstanceExtensionProperties)gipa(
                VK_NULL_HANDLE, "vkEnumerateInstanceExtensionProperties");
            if (vk->vkCreateInstance && vk->vkEnumerateInstanceLayerProperties &&
                vk->vkEnumerateInstanceExtensionProperties)
                return lib;
        }
        dlclose(lib);
    }
    return NULL;
}

void esag_vk_close(void *lib)
{
    if (lib)
        dlclose(lib);
}

int esag_vk_load_instance(esag_vk *vk, VkInstance instance)
{
    int ok = 1;
#define ESAG_LOAD(name) ok &= (vk->name = (PFN_##name)vk->vkGetInstanceProcAddr(instance, #name)) != NULL;
    ESAG_VK_INSTANCE_FUNCS(ESAG_LOAD)
#undef ESAG_LOAD
    vk->vkCreateDebugUtilsMessengerEXT =
        (PFN_vkCreateDebugUtilsMessengerEXT)vk->vkGetInstanceProcAddr(instance, "vkCreateDebugUtilsMessengerEXT");
    vk->vkDestroyDebugUtilsMessengerEXT =
        (PFN_vkDestroyDebugUtilsMessengerEXT)vk->vkGetInstanceProcAddr(instance, "vkDestroyDebugUtilsMessengerEXT");
    return ok;
}

int esag_vk_load_device(esag_vk *vk, VkDevice device)
{
    int ok = 1;
#define ESAG_LOAD(name) ok &= (vk->name = (PFN_##name)vk->vkGetDeviceProcAddr(device, #name)) != NULL;
    ESAG_VK_DEVICE_FUNCS(ESAG_LOAD)
#undef ESAG_LOAD
    return ok;
}
