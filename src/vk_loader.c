/* vk_loader.c - fills a context's Vulkan function table (see vk_table.h for why per context). */
#include "vk_table.h"

#include <dlfcn.h>
#include <stddef.h>

void *esa_vk_open_loader(PFN_vkGetInstanceProcAddr *gipa)
{
    static const char *names[] = {"libvulkan.so.1", "libvulkan.so"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        void *h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
        if (!h)
            continue;
        /* POSIX allows converting the object pointer to a function pointer through a union. */
        union { void *obj; PFN_vkGetInstanceProcAddr fn; } u;
        u.obj = dlsym(h, "vkGetInstanceProcAddr");
        if (u.obj) {
            *gipa = u.fn;
            return h;
        }
        dlclose(h);
    }
    return NULL;
}

void esa_vk_close_loader(void *handle)
{
    if (handle)
        dlclose(handle);
}

int esa_vk_load_global(esa_vk *vk, PFN_vkGetInstanceProcAddr gipa)
{
    vk->vkGetInstanceProcAddr = gipa;
    vk->vkCreateInstance = (PFN_vkCreateInstance)gipa(VK_NULL_HANDLE, "vkCreateInstance");
    vk->vkEnumerateInstanceLayerProperties = (PFN_vkEnumerateInstanceLayerProperties)gipa(
        VK_NULL_HANDLE, "vkEnumerateInstanceLayerProperties");
    vk->vkEnumerateInstanceVersion =
        (PFN_vkEnumerateInstanceVersion)gipa(VK_NULL_HANDLE, "vkEnumerateInstanceVersion");
    return vk->vkCreateInstance && vk->vkEnumerateInstanceLayerProperties;
}

int esa_vk_load_instance(esa_vk *vk, VkInstance instance)
{
    int ok = 1;
#define ESA_X(name)                                                                            \
    vk->name = (PFN_##name)vk->vkGetInstanceProcAddr(instance, #name);                         \
    ok &= vk->name != NULL;
    ESA_VK_INSTANCE_FUNCS(ESA_X)
#undef ESA_X
    /* optional: only present when the debug-utils extension was enabled */
    vk->vkCreateDebugUtilsMessengerEXT = (PFN_vkCreateDebugUtilsMessengerEXT)vk->vkGetInstanceProcAddr(
        instance, "vkCreateDebugUtilsMessengerEXT");
    vk->vkDestroyDebugUtilsMessengerEXT = (PFN_vkDestroyDebugUtilsMessengerEXT)vk->vkGetInstanceProcAddr(
        instance, "vkDestroyDebugUtilsMessengerEXT");
    return ok;
}

int esa_vk_load_device(esa_vk *vk, VkDevice device)
{
    int ok = 1;
#define ESA_X(name)                                                                            \
    vk->name = (PFN_##name)vk->vkGetDeviceProcAddr(device, #name);                             \
    ok &= vk->name != NULL;
    ESA_VK_DEVICE_FUNCS(ESA_X)
#undef ESA_X
    return ok;
}
