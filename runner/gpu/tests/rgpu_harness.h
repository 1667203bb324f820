/* rgpu_harness.h - shared by the runner/gpu tests: a validated runtime (or a loud skip), and
 * helpers to put host arrays on the device and read them back. The PRNG, EXPECT and
 * norm_error come from the library's tests/harness.h (its esa_context helpers go unused). */
#ifndef ESAG_RGPU_HARNESS_H
#define ESAG_RGPU_HARNESS_H

#include "kernels.h"

#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#endif
#include "harness.h"
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

#include "cpu_ref.h"

#include <string.h>

/* EXPECT that an esag call succeeded, printing the runtime's last error if not. */
#define EXPECT_ST(call)                                                                        \
    do {                                                                                       \
        esag_status st_ = (call);                                                              \
        EXPECT(st_ == ESAG_OK, "%s: %s: %s", #call, esag_status_string(st_), esag_rt_last_error(rt)); \
    } while (0)

/* A runtime on the default device with validation on (with the esa-vk context when
 * with_attention); exits with the skip code when the machine has no usable device. */
static inline esag_rt *rg_runtime(int with_attention)
{
    char msg[512] = "";
    esag_rt_desc d = {.enable_validation = 1, .print_validation = 1, .without_attention = !with_attention,
                      .error_message = msg, .error_message_size = sizeof msg};
    esag_rt *rt = NULL;
    esag_status s = esag_rt_create(&d, &rt);
    if (s == ESAG_ERR_NO_DEVICE || s == ESAG_ERR_UNSUPPORTED) {
        fprintf(stderr, "SKIP: no usable Vulkan device (%s)\n", msg);
        exit(SKIP_CODE);
    }
    if (s != ESAG_OK) {
        fprintf(stderr, "FAIL: esag_rt_create: %s\n", msg);
        exit(1);
    }
    if (esag_rt_validation_count(rt) == UINT32_MAX) {
        fprintf(stderr, "FAIL: VK_LAYER_KHRONOS_validation is not installed\n");
        exit(1);
    }
    const esag_device_info *di = esag_rt_device_info(rt);
    fprintf(stderr, "device: %s, subgroup %u (min %u), shared %u bytes\n", di->name, di->subgroup_size,
            di->min_subgroup_size, di->max_shared_memory);
    return rt;
}

/* Kernels with the given tuning (NULL: the device profile); fails the test if refused. */
static inline esag_kernels *rg_kernels(esag_rt *rt, const esag_tuning *t)
{
    esag_kernels *k = NULL;
    esag_status s = esag_kernels_create(rt, t, &k);
    if (s != ESAG_OK) {
        fprintf(stderr, "FAIL: esag_kernels_create: %s: %s\n", esag_status_string(s), esag_rt_last_error(rt));
        exit(1);
    }
    return k;
}

/* A device buffer holding bytes (or zeros when data is NULL); exits on failure. */
static inline esag_buffer rg_upload(esag_rt *rt, const void *data, size_t bytes)
{
    esag_buffer b;
    esag_status s = esag_buffer_create(rt, bytes, ESAG_MEM_DEVICE, &b);
    if (s == ESAG_OK) {
        void *zeros = data ? NULL : calloc(1, bytes ? bytes : 1);
        s = esag_buffer_write(rt, &b, 0, data ? data : zeros, bytes);
        free(zeros);
    }
    if (s != ESAG_OK) {
        fprintf(stderr, "FAIL: device buffer of %zu bytes: %s\n", bytes, esag_rt_last_error(rt));
        exit(1);
    }
    return b;
}

static inline void rg_download(esag_rt *rt, const esag_buffer *b, void *out, size_t bytes)
{
    if (esag_buffer_read(rt, b, 0, out, bytes) != ESAG_OK) {
        fprintf(stderr, "FAIL: reading back %zu bytes: %s\n", bytes, esag_rt_last_error(rt));
        exit(1);
    }
}

/* Ends a test: zero validation messages and no failures. Kernels and buffers go first. */
static inline int rg_finish(esag_rt *rt, const char *name)
{
    uint32_t v = esag_rt_validation_count(rt);
    EXPECT(v == 0, "%u validation messages", v);
    esag_rt_destroy(rt);
    return expect_finish(name);
}

#endif
