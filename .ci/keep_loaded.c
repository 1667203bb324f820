/* keep_loaded.c - preloaded into the sanitizer run of the tests: dlclose does nothing, so the
 * Vulkan driver and its LLVM stay mapped until exit. The Vulkan loader unloads the driver at
 * vkDestroyInstance; memory the driver's globals still point to would then read as leaked to
 * LeakSanitizer (as "<unknown module>"), hiding real leaks among false ones. */
int dlclose(void *handle);

int dlclose(void *handle)
{
    (void)handle;
    return 0;
}
