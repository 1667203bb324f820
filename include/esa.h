/* esa.h - esa-vk: Efficient Selective Attention for long contexts on any Vulkan device.
 *
 * Each attention step attends to the first l_I tokens, the last l_L tokens, the current tokens,
 * and the k middle tokens that score highest through low-dimensional query/key projections
 * (Wang et al., "Unshackling Context Length: An Efficient Selective Attention Approach through
 * Query-Key Compression", arXiv 2502.14477). The math is restated in ESA-SPEC.md.
 *
 * Two levels of API:
 *  - simple: esa_context_create() owns a Vulkan instance and device; esa_attend() takes host
 *    pointers, runs one step and returns when the output is in host memory.
 *  - engine: esa_context_create_external() adopts the caller's VkInstance/VkDevice/queue;
 *    esa_cmd_attend() records one step into the caller's command buffer, reading and writing
 *    the caller's buffers by device address (see esa_cmd_attend for the barriers it expects).
 *
 * Thread safety: a context and the caches made from it are externally synchronized (one thread
 * at a time per context, caches included). Separate contexts are independent. The library has
 * no global state and never reads environment variables.
 *
 * Errors: every fallible function returns an esa_status; the library never aborts the host.
 */
#ifndef ESA_H
#define ESA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(ESA_STATIC)
#define ESA_API
#elif defined(_WIN32)
#if defined(ESA_BUILDING)
#define ESA_API __declspec(dllexport)
#else
#define ESA_API __declspec(dllimport)
#endif
#elif defined(__GNUC__)
#define ESA_API __attribute__((visibility("default")))
#else
#define ESA_API
#endif

#define ESA_VERSION_MAJOR 0
#define ESA_VERSION_MINOR 3
#define ESA_VERSION_PATCH 0
#define ESA_VERSION_NUMBER (ESA_VERSION_MAJOR * 10000 + ESA_VERSION_MINOR * 100 + ESA_VERSION_PATCH)

/* Runtime version: ESA_VERSION_NUMBER of the library actually linked. */
ESA_API unsigned esa_version(void);
/* Runtime version as "major.minor.patch"; static storage. */
ESA_API const char *esa_version_string(void);

/* Status codes. The numeric values are pinned: they never change between versions. */
typedef enum esa_status {
    ESA_SUCCESS = 0,
    ESA_ERROR_INVALID_ARGUMENT = 1,   /* a NULL pointer, a value out of range, a bad shape */
    ESA_ERROR_OUT_OF_HOST_MEMORY = 2,
    ESA_ERROR_OUT_OF_DEVICE_MEMORY = 3,
    ESA_ERROR_NO_DEVICE = 4,          /* no Vulkan loader, or no device (matching the request) */
    ESA_ERROR_DEVICE_UNSUPPORTED = 5, /* the device lacks a feature the shaders need */
    ESA_ERROR_VULKAN = 6,             /* a Vulkan call failed: see esa_context_last_vk_result() */
    ESA_ERROR_CAPACITY = 7,           /* the step would exceed the cache's max_tokens */
    ESA_ERROR_NOT_READY = 8,          /* a layer's compression matrices were never set */
    ESA_ERROR_NON_FINITE = 9,         /* an input holds NaN or infinity */
    ESA_ERROR_DEVICE_LOST = 10,
    ESA_ERROR_LIMIT = 11,             /* a shape beyond a device limit (buffer range, memory) */
    ESA_ERROR_IO = 12,                /* a file could not be opened, read or written */
    ESA_ERROR_FILE_CORRUPT = 13,      /* not an esa-vk cache file, truncated, or damaged */
    ESA_ERROR_FILE_MISMATCH = 14      /* a cache file of another format version or cache shape */
} esa_status;

/* A static, human-readable name of a status ("ESA_ERROR_CAPACITY: ..."). Never NULL. */
ESA_API const char *esa_status_string(esa_status status);

/* ---------------------------------------------------------------------------------------- */
/* Context: one Vulkan device                                                                */

typedef struct esa_context esa_context;

/* Which kernel variants a context builds (src/tuning.c): chosen by the device's type, or one
 * forced, so that tests run the GPU variants on a CPU driver (lavapipe) and a benchmark can
 * compare both on one device. Results agree within rounding either way; only speed differs. */
typedef enum esa_tuning {
    ESA_TUNING_AUTO = 0, /* CPU variants on CPU devices (lavapipe), GPU variants elsewhere */
    ESA_TUNING_CPU = 1,
    ESA_TUNING_GPU = 2
} esa_tuning;

typedef struct esa_context_desc {
    /* Which device: device_name (a case-insensitive substring of the device name) wins if set;
     * else device_index + 1 (so 0 means "choose": discrete > integrated > virtual > CPU). */
    const char *device_name;
    uint32_t device_index_plus_1;
    /* Enable VK_LAYER_KHRONOS_validation and count its messages (esa_context_validation_count).
     * If the layer is not installed the context is still created, without it, and
     * esa_context_validation_count() returns UINT32_MAX. */
    int enable_validation;
    /* Print every validation message to stderr (only with enable_validation). */
    int print_validation;
    /* Optional host allocation callbacks for the library's own host memory (all three or none).
     * user is passed back unchanged. */
    void *(*alloc)(void *user, size_t size);
    void *(*realloc)(void *user, void *ptr, size_t size);
    void (*free)(void *user, void *ptr);
    void *alloc_user;
    /* Optional: where esa_context_create writes why it failed (the context, and so
     * esa_context_last_error, does not exist then); NUL-terminated, truncated to the size. */
    char *error_message;
    size_t error_message_size;
    esa_tuning tuning;    /* default ESA_TUNING_AUTO */
    uint32_t reserved[7]; /* must be zero */
} esa_context_desc;

/* Create a context that owns its Vulkan instance and device. desc may be NULL (all defaults).
 * On failure *out is set to NULL. The Vulkan loader is opened at run time (libvulkan.so.1). */
ESA_API esa_status esa_context_create(const esa_context_desc *desc, esa_context **out);

/* Destroy a context; waits for the device to be idle. Accepts NULL. All caches made from the
 * context must be destroyed first. */
ESA_API void esa_context_destroy(esa_context *ctx);

typedef enum esa_device_type {
    ESA_DEVICE_OTHER = 0,
    ESA_DEVICE_INTEGRATED = 1,
    ESA_DEVICE_DISCRETE = 2,
    ESA_DEVICE_VIRTUAL = 3,
    ESA_DEVICE_CPU = 4
} esa_device_type;

typedef struct esa_device_info {
    char name[256];
    char driver_name[256];
    char driver_info[256];
    uint32_t vendor_id, device_id;
    uint32_t api_version;            /* VK_MAKE_API_VERSION form */
    uint32_t driver_version;
    esa_device_type type;
    uint32_t subgroup_size;          /* the default subgroup size in compute shaders */
    uint32_t min_subgroup_size, max_subgroup_size;
    uint64_t max_storage_buffer_range;
    uint64_t max_memory_allocation_size;
    uint64_t device_local_bytes;     /* size of the largest DEVICE_LOCAL heap */
    uint32_t max_shared_memory;      /* maxComputeSharedMemorySize */
    uint32_t max_workgroup_invocations;
    float timestamp_period_ns;       /* 0 if the queue has no timestamps */
    uint32_t index;                  /* index among the physical devices (0 for an external
                                      * context) */
} esa_device_info;

ESA_API esa_status esa_context_device_info(const esa_context *ctx, esa_device_info *info);

/* List the physical devices without creating a context: writes up to cap entries to infos and
 * the total count to *count. infos may be NULL (cap 0) to query the count. */
ESA_API esa_status esa_enumerate_devices(esa_device_info *infos, uint32_t cap, uint32_t *count);

/* Validation messages seen so far (errors and warnings) if the context enabled validation;
 * UINT32_MAX if validation was asked for but the layer is missing; 0 otherwise. */
ESA_API uint32_t esa_context_validation_count(const esa_context *ctx);

/* The VkResult (as int32) of the last failed Vulkan call, for ESA_ERROR_VULKAN. */
ESA_API int32_t esa_context_last_vk_result(const esa_context *ctx);

/* A description of the last error, with context (e.g. which limit was exceeded); never NULL. */
ESA_API const char *esa_context_last_error(const esa_context *ctx);

/* The kernel variants the context built: ESA_TUNING_CPU or ESA_TUNING_GPU (never AUTO);
 * ESA_TUNING_AUTO for a NULL context. */
ESA_API esa_tuning esa_context_tuning(const esa_context *ctx);

/* ---------------------------------------------------------------------------------------- */
/* Cache: one sequence's K/V and compressed keys, for every layer                            */

typedef struct esa_cache esa_cache;

typedef enum esa_rope_style {
    ESA_ROPE_INTERLEAVED = 0, /* pairs (2i, 2i+1): GPT-J, llama.cpp "normal" mode */
    ESA_ROPE_NEOX = 1         /* pairs (i, i + rope_dims/2) */
} esa_rope_style;

typedef enum esa_position_mode {
    ESA_POSITIONS_EXTRAPOLATE = 0, /* spec 5: global part at fixed distance w, local part causal */
    ESA_POSITIONS_EXACT = 1        /* true positions everywhere (sparsity only) */
} esa_position_mode;

typedef enum esa_score_mode {
    ESA_SCORES_COMPRESSED = 0, /* q' = A q, k' = B k with the caller's matrices (spec 4.2) */
    ESA_SCORES_EXACT = 1       /* full-dimension scores, no matrices needed (for checking) */
} esa_score_mode;

#define ESA_RADIUS_NONE (-1) /* proximity_radius value asking for epsilon = 0 */

typedef struct esa_cache_desc {
    /* Model shape (required). */
    uint32_t n_layers;      /* 1..1024 */
    uint32_t n_heads;       /* H query heads, 1..256 */
    uint32_t n_kv_heads;    /* G key/value heads, divides H */
    uint32_t head_dim;      /* d: 64, 80, 96, 128 (any multiple of 8 in 16..256 is accepted) */
    uint32_t rope_dims;     /* rotated dims, a multiple of 8, <= d; 0 = d */
    float rope_theta;       /* RoPE base; 0 = 10000 */
    esa_rope_style rope_style;
    float scale;            /* logit scale; 0 = 1/sqrt(d) */
    /* ESA parameters (0 = default). */
    uint32_t n_initial;     /* l_I, default 128 */
    uint32_t n_local;       /* l_L, default 4096 */
    uint32_t top_k;         /* k, default 2048; 1..ESA_MAX_TOP_K */
    uint32_t compress_dim;  /* d', default min(128, H*d), a multiple of 8, <= H*d and <= 1024
                             * (unused with exact scores) */
    int32_t proximity_radius; /* epsilon, default 1; ESA_RADIUS_NONE for 0; at most 64 */
    uint32_t chunk;         /* l_C, default 512: longer calls are split into chunks */
    uint32_t global_pos;    /* w, default l_L */
    esa_position_mode position_mode;
    esa_score_mode score_mode;
    /* Capacity. */
    uint32_t max_tokens;    /* tokens per layer the cache can hold (required); at most
                             * ESA_MAX_TOKENS, max_tokens*G*d < 2^30 and max_tokens*d' < 2^31
                             * (32-bit element indices in the shaders) */
    /* Paging (ESA-SPEC 8; 0 = default). K and V live in pages of page_tokens tokens. */
    uint64_t kv_device_budget; /* bytes of device memory for K/V pages, all layers together;
                             * 0: no budget, every page on the device (allocated at create).
                             * Otherwise pages that do not fit live in host memory; the pages
                             * of every layer's initial, local and current tokens (and the
                             * compressed keys) stay on the device, so the budget must hold
                             * n_layers * (ceil(l_I/pt) + ceil((l_L + l_C)/pt) + 1) pages
                             * (esa_cache_create names the minimum otherwise). The device pages
                             * are allocated at create. */
    uint64_t kv_host_budget; /* bytes of host memory for K/V pages; 0: as much as the system
                             * gives. Host pages are allocated as the context grows. */
    uint32_t page_tokens;   /* pt, a power of two in 16..65536; default 256 (or the power of
                             * two above max_tokens when that is smaller) */
    uint32_t kv_read;       /* esa_kv_read: how steps read K/V in host pages */
    uint32_t reserved[2];   /* must be zero */
} esa_cache_desc;

/* How a step reads the selected tokens' K/V from pages in host memory. */
typedef enum esa_kv_read {
    ESA_KV_READ_AUTO = 0,   /* by device (tuning.c): DIRECT where device and host share memory
                             * (CPU drivers, integrated GPUs), COPY on discrete GPUs */
    ESA_KV_READ_DIRECT = 1, /* the attention reads them where they are, by device address */
    ESA_KV_READ_COPY = 2    /* the selected rows are first gathered into device memory (one
                             * read of each over the bus), then attended */
} esa_kv_read;

#define ESA_MAX_TOP_K 65536u
#define ESA_MAX_TOKENS 16776960u /* 65535 * 256: per layer */
#define ESA_MAX_RADIUS 64

/* Create a cache. desc is validated (ESA_ERROR_INVALID_ARGUMENT, with the field named in
 * esa_context_last_error; this includes d' (G*d with exact scores) above 1024, and a
 * kv_device_budget below its minimum) and device memory is allocated now: the compressed keys
 * of max_tokens tokens of every layer, the step scratch, and the device's K/V pages (every
 * page without a budget, the budget's worth with one). K/V pages in host memory are allocated
 * as layers grow, in slabs of at most 64 MiB. ESA_ERROR_LIMIT if a buffer would exceed
 * maxMemoryAllocationSize, ESA_ERROR_OUT_OF_DEVICE_MEMORY if the device is full. Buffers are
 * reached by device address, never bound, so maxStorageBufferRange does not limit them. */
ESA_API esa_status esa_cache_create(esa_context *ctx, const esa_cache_desc *desc, esa_cache **out);

/* Destroy a cache; waits for its work to finish. Accepts NULL. */
ESA_API void esa_cache_destroy(esa_cache *cache);

/* The resolved parameters (defaults filled in: page_tokens and kv_read too; proximity_radius
 * as the epsilon in use, or ESA_RADIUS_NONE for 0). */
ESA_API esa_status esa_cache_get_desc(const esa_cache *cache, esa_cache_desc *desc);

/* Set one layer's compression matrices (spec 4.2), copied to the device:
 *   a [d'][H*d] row-major: q' = A . rope_w(q), q = the H query heads concatenated;
 *   b [d'][G*d] row-major: k' = B . k, k = the G pre-RoPE key heads concatenated
 *     (the GQA-reduced form: sum the column blocks of heads that share a KV head).
 * Must be called for every layer before its first step in ESA_SCORES_COMPRESSED mode; may be
 * called again only while the layer holds no tokens (cached compressed keys would go stale). */
ESA_API esa_status esa_cache_set_compression(esa_cache *cache, uint32_t layer, const float *a,
                                             const float *b);

/* Memory of one cache. */
typedef struct esa_cache_memory {
    uint64_t device_bytes;  /* device memory the cache holds: K/V pages on the device,
                             * compressed keys, matrices, page tables and step scratch */
    uint64_t host_bytes;    /* host memory it holds for K/V pages */
    uint64_t device_pages;  /* K/V pages in use on the device */
    uint64_t host_pages;    /* K/V pages in use in host memory */
    uint64_t page_bytes;    /* bytes of one page (K and V of page_tokens tokens) */
    uint32_t page_tokens;
    uint32_t kv_read;       /* the esa_kv_read in use (AUTO resolved) */
    uint64_t reserved[2];
} esa_cache_memory;

/* What the cache holds now. Pages freed by truncate or clear stay held for reuse. */
ESA_API esa_status esa_cache_memory_usage(const esa_cache *cache, esa_cache_memory *usage);

/* Make sure that the next step of n tokens (1..chunk) of every layer finds the memory its
 * pages need: host pages are allocated now, up to the host budget. After it succeeds, one
 * esa_cmd_attend (or esa_attend) of at most n tokens per layer cannot fail for memory, so an
 * engine that calls it before recording a chunk never has to abandon a command buffer with
 * some layers' steps in it. ESA_ERROR_OUT_OF_HOST_MEMORY when the pages are not there (nothing
 * changed), ESA_ERROR_CAPACITY past max_tokens. A cache without a device budget needs nothing:
 * ESA_SUCCESS at once. */
ESA_API esa_status esa_cache_reserve(esa_cache *cache, uint32_t n);

/* Tokens held by a layer. */
ESA_API esa_status esa_cache_length(const esa_cache *cache, uint32_t layer, uint32_t *len);

/* Drop every token of every layer (the matrices stay). */
ESA_API esa_status esa_cache_clear(esa_cache *cache);

/* Drop a layer's tokens from position len on (len <= its length): for a rejected draft, a
 * regenerated answer, or the next turn of a chat. The tokens kept are unchanged; the last
 * selection is forgotten; pages wholly past len return to their pools (the next step brings
 * the new local window's pages back to the device if they were moved to host memory). Not
 * while a step of this layer recorded by esa_cmd_attend is pending. */
ESA_API esa_status esa_cache_truncate(esa_cache *cache, uint32_t layer, uint32_t len);

/* Save every layer's tokens (keys, values, compressed keys) and compression matrices to a
 * file (format: src/persist.c), written beside it and renamed over it, so a failed save leaves
 * an older file as it was. ESA_ERROR_IO names the file and the system's reason. The last
 * selections are not saved. Not while a step recorded by esa_cmd_attend is pending. */
ESA_API esa_status esa_cache_save(esa_cache *cache, const char *path);

/* Load a file of esa_cache_save into a cache of the same shape (n_layers, heads, head_dim,
 * RoPE, score mode, d', global_pos; the other ESA parameters may differ), replacing its
 * tokens, and the matrices of the layers that had them. The file is verified whole first:
 * ESA_ERROR_IO when it cannot be read, ESA_ERROR_FILE_CORRUPT when it is not such a file, is
 * truncated or fails a checksum, ESA_ERROR_FILE_MISMATCH for another format version or shape,
 * ESA_ERROR_CAPACITY for a layer longer than max_tokens; the cache is then unchanged. Should
 * the file change between the check and the load, the cache is left empty (and its layers
 * whose matrices were being replaced need esa_cache_set_compression). */
ESA_API esa_status esa_cache_load(esa_cache *cache, const char *path);

/* Compression matrices in a file (ESA-SPEC 6: calibrated once per model, by tools/calib's
 * esa-calib, then loaded by every engine that runs the model). Format: src/compression.c. */
typedef struct esa_compression_info {
    uint32_t n_layers, n_heads, n_kv_heads, head_dim; /* the model's attention shape */
    uint32_t compress_dim;   /* d': rows of every A and B, a multiple of 8 */
    uint32_t rope_dims;      /* the RoPE of the queries A acts on (0 = head_dim) */
    float rope_theta;
    esa_rope_style rope_style;
    uint32_t global_pos;     /* w: A acts on queries rotated at w (esa_cache_set_compression) */
    uint32_t method;         /* what fit them, for the reader: esa_compression_method */
    uint32_t reserved[6];    /* zero */
} esa_compression_info;

typedef enum esa_compression_method {
    ESA_COMPRESSION_CLOSED_FORM = 0, /* the optimum of ESA-SPEC 6's objective */
    ESA_COMPRESSION_PCA = 1,
    ESA_COMPRESSION_RANDOM = 2,
    ESA_COMPRESSION_OTHER = 3
} esa_compression_method;

/* Write info->n_layers layers' a[l] [d'][H*d] and b[l] [d'][G*d] (row-major, as
 * esa_cache_set_compression takes them) to path. ctx may be NULL (no message then).
 * ESA_ERROR_INVALID_ARGUMENT for an impossible shape, ESA_ERROR_NON_FINITE for NaN or infinity
 * in a matrix, ESA_ERROR_IO when the file cannot be written (nothing is left behind). */
ESA_API esa_status esa_compression_save(esa_context *ctx, const char *path, const esa_compression_info *info,
                                        const float *const *a, const float *const *b);

/* Read a compression file: its info, and with a and b (both or neither) every layer's
 * matrices into a [n_layers][d'][H*d] and b [n_layers][d'][G*d] (sized from an info-only call
 * first). ESA_ERROR_IO, ESA_ERROR_FILE_CORRUPT (not such a file, truncated, a checksum),
 * ESA_ERROR_FILE_MISMATCH (another format version). ctx may be NULL. */
ESA_API esa_status esa_compression_read(esa_context *ctx, const char *path, esa_compression_info *info, float *a,
                                        float *b);

/* Set every layer's matrices of an empty, compressed-score cache from a compression file,
 * after checking it against the cache: ESA_ERROR_FILE_MISMATCH naming the first field that
 * differs (n_layers, heads, head_dim, d', rope_dims, rope_style, rope_theta, global_pos);
 * ESA_ERROR_INVALID_ARGUMENT for an exact-score cache or one that holds tokens; the read
 * errors of esa_compression_read; ESA_ERROR_NON_FINITE for NaN or infinity in a matrix. The
 * cache is unchanged on those errors (a device failure while uploading may leave some layers
 * set). */
ESA_API esa_status esa_cache_load_compression(esa_cache *cache, const char *path);

typedef enum esa_dtype {
    ESA_F32 = 0,
    ESA_F16 = 1 /* IEEE half, as uint16_t */
} esa_dtype;

/* What one step did (for diagnostics and tests). */
typedef struct esa_step_info {
    uint32_t dense;         /* 1: nothing to choose, dense attention with true positions */
    uint32_t n_initial;     /* |I| of the last chunk */
    uint32_t n_middle;      /* l_M of the last chunk */
    uint32_t n_local;       /* |L| of the last chunk */
    uint32_t n_selected;    /* |M_k| of the last chunk (0 when dense) */
    uint32_t n_chunks;
} esa_step_info;

/* One attention step of one layer (simple API, blocking):
 *   appends the n new tokens' pre-RoPE keys k[n][G][d] and values v[n][G][d] (dtype, stored
 *   as fp16) after the layer's cached tokens, compresses their keys, and writes the attention
 *   output of their queries q[n][H][d] (pre-RoPE, dtype) to out[n][H][d] (fp32), attending to
 *   initial, selected middle, local and current tokens (causal among the current ones).
 * n may exceed the chunk length l_C: the step is then processed as consecutive chunks.
 * Inputs are checked first (ESA_ERROR_NON_FINITE, nothing appended): no NaN or infinity, and
 * fp32 keys and values within the fp16 range (|x| <= 65504), since they are stored as fp16.
 * On any error the layer's cache is unchanged. With a device budget, each chunk first moves
 * pages between device and host memory (pages.c); ESA_ERROR_OUT_OF_HOST_MEMORY when the host
 * budget (or the system) has no page left for it: the layer keeps what it held before the
 * call, and truncating it (or another layer) makes room. info may be NULL. */
ESA_API esa_status esa_attend(esa_cache *cache, uint32_t layer, uint32_t n, esa_dtype dtype,
                              const void *q, const void *k, const void *v, float *out,
                              esa_step_info *info);

/* Dense causal attention with true positions over the whole layer (the comparison baseline),
 * appending like esa_attend. Same contract. */
ESA_API esa_status esa_attend_dense(esa_cache *cache, uint32_t layer, uint32_t n, esa_dtype dtype,
                                    const void *q, const void *k, const void *v, float *out,
                                    esa_step_info *info);

/* Window attention (StreamingLLM's attention sinks, Xiao et al. 2023, "Efficient Streaming
 * Language Models with Attention Sinks"): like esa_attend with no middle token selected, so
 * each step reads only the initial, local and current tokens, with the cache's position mode.
 * While P + n <= l_I + l_L it is dense attention with true positions. Same contract. */
ESA_API esa_status esa_attend_window(esa_cache *cache, uint32_t layer, uint32_t n, esa_dtype dtype,
                                     const void *q, const void *k, const void *v, float *out,
                                     esa_step_info *info);

/* Append n tokens' pre-RoPE keys k[n][G][d] and values v[n][G][d] to a layer without attending
 * (their keys are compressed as in esa_attend): for keys and values an engine already has, or
 * a context whose prefill outputs are not needed. Same checks and guarantees as esa_attend. */
ESA_API esa_status esa_append(esa_cache *cache, uint32_t layer, uint32_t n, esa_dtype dtype,
                              const void *k, const void *v);

/* The middle tokens selected by the layer's last step (cache positions, ascending): M_k of an
 * ESA step, all of M when l_M <= k, nothing (count 0) after a dense step or esa_append.
 * Writes min(count, cap) entries; *count receives the full count. After a step recorded by
 * esa_cmd_attend, call it only once that command buffer has completed. It submits a copy on
 * the context's queue and waits for it. */
ESA_API esa_status esa_cache_last_selection(esa_cache *cache, uint32_t layer, uint32_t *positions,
                                            uint32_t cap, uint32_t *count);

/* ---------------------------------------------------------------------------------------- */
/* Profiling: device time per stage, memory, and the device's read bandwidth                */

/* The stages of a step, in order. A step's device time is split at the boundaries between
 * them (timestamps after each stage's dispatches and barrier). */
typedef enum esa_stage {
    ESA_STAGE_APPEND = 0,    /* new keys, values (and queries) into the cache */
    ESA_STAGE_COMPRESS = 1,  /* new keys and the queries through the compression matrices */
    ESA_STAGE_SCORE = 2,     /* importance scores of the middle tokens */
    ESA_STAGE_PROXIMITY = 3, /* max-pool over neighbours, order keys, first histogram */
    ESA_STAGE_TOPK = 4,      /* the k largest, ascending positions */
    ESA_STAGE_ATTENTION = 5, /* attention parts (split-K) over initial, selected, local tokens */
    ESA_STAGE_MERGE = 6,     /* log-sum-exp merge of the parts into the output */
    ESA_STAGE_COUNT = 7
} esa_stage;

/* A static name of a stage ("score"); "?" for a value out of range. */
ESA_API const char *esa_stage_name(esa_stage stage);

typedef struct esa_profile {
    double stage_ms[ESA_STAGE_COUNT]; /* device time per stage, summed since the last reset */
    double total_ms;                  /* device time of the recorded submissions, first to last
                                       * timestamp of each, summed */
    uint64_t submissions;             /* command buffers measured */
    uint64_t dropped;                 /* submissions not measured (query pool full) */
} esa_profile;

/* Turn timestamp profiling of the simple API's submissions (esa_attend, esa_attend_dense,
 * esa_append) on or off. Steps recorded by esa_cmd_attend are not profiled. Costs one
 * timestamp write per stage. ESA_ERROR_DEVICE_UNSUPPORTED if the queue family has no
 * timestamps (timestampValidBits 0). */
ESA_API esa_status esa_context_set_profiling(esa_context *ctx, int enable);

/* The profile accumulated since profiling was turned on or last reset; reset != 0 zeroes it
 * after the copy. */
ESA_API esa_status esa_context_get_profile(esa_context *ctx, esa_profile *profile, int reset);

typedef struct esa_memory_usage {
    uint64_t device_local_bytes;   /* memory the context holds in DEVICE_LOCAL types */
    uint64_t host_visible_bytes;   /* memory it holds in HOST_VISIBLE types (on unified memory
                                    * devices such as lavapipe a buffer counts in both) */
    uint64_t allocations;          /* live vkAllocateMemory allocations */
    uint64_t peak_device_local_bytes;
} esa_memory_usage;

/* Device memory held by the context and its caches now, and the peak since creation. */
ESA_API esa_status esa_context_memory_usage(const esa_context *ctx, esa_memory_usage *usage);

/* Measure the device's read bandwidth: a streaming read shader over a device buffer of `bytes`
 * (rounded up to 16; at most maxMemoryAllocationSize), timed with timestamps, `repeats` times
 * after one warm-up; *gbytes_per_s receives the median (1e9 bytes per second). Blocking; the
 * buffer is freed before return. Needs timestamps, as esa_context_set_profiling. */
ESA_API esa_status esa_context_probe_bandwidth(esa_context *ctx, uint64_t bytes, uint32_t repeats,
                                               double *gbytes_per_s);

/* ---------------------------------------------------------------------------------------- */
/* Engine level: the caller's Vulkan objects and command buffers.                            */
/* Declared when <vulkan/vulkan.h> (or volk.h) was included before esa.h.                    */
#if defined(VK_VERSION_1_2)

typedef struct esa_external_device_desc {
    PFN_vkGetInstanceProcAddr get_instance_proc_addr; /* the caller's loader entry (required) */
    VkInstance instance;               /* created with apiVersion >= 1.2 */
    VkPhysicalDevice physical_device;
    VkDevice device;                   /* created with VkPhysicalDeviceVulkan12Features::
                                        * bufferDeviceAddress enabled */
    VkQueue queue;                     /* used only by the simple entry points and setup copies */
    uint32_t queue_family;             /* a family with VK_QUEUE_COMPUTE_BIT */
    esa_tuning tuning;                 /* default ESA_TUNING_AUTO */
    uint32_t features;                 /* ESA_FEATURE_* bits: optional features the caller
                                        * enabled on device, which the library may then use
                                        * (0: none). Vulkan cannot tell the library what a
                                        * device was created with: a bit for a feature the
                                        * device supports but device was not created with is
                                        * the caller's error (the validation layer reports it);
                                        * one the physical device does not support, or an
                                        * unknown bit, is ESA_ERROR_INVALID_ARGUMENT */
    uint32_t reserved[6];              /* must be zero */
} esa_external_device_desc;

/* Optional device features (esa_external_device_desc.features). A context on its own device
 * enables each one the device supports. */
enum {
    /* VkPhysicalDeviceFeatures::shaderInt64: CPU-tuned contexts read keys and values in 64-bit
     * words (the same bytes in half the load loops of lavapipe; the same results) */
    ESA_FEATURE_SHADER_INT64 = 1u
};

/* Adopt the caller's instance and device: the context creates only its own pipelines, command
 * pool and buffers there, and destroys only those. Host memory through the default allocator. */
ESA_API esa_status esa_context_create_external(const esa_external_device_desc *desc,
                                               esa_context **out);

/* What an engine-level step attends to (as esa_attend, esa_attend_dense, esa_attend_window). */
typedef enum esa_attention {
    ESA_ATTENTION_ESA = 0,    /* initial + selected middle + local + current tokens */
    ESA_ATTENTION_DENSE = 1,  /* every cached token, true positions */
    ESA_ATTENTION_WINDOW = 2  /* initial + local + current tokens */
} esa_attention;

/* The device addresses of one engine-level step (buffers created with
 * VK_BUFFER_USAGE_SHADER_DEVICE_ADDRESS_BIT): q [n][H][d], k and v [n][G][d] in dtype, out
 * [n][H][d] fp32. Addresses must be 4-byte aligned. Zero-initialized, it is an ESA step. */
typedef struct esa_step_buffers {
    VkDeviceAddress q, k, v, out;
    esa_dtype dtype;
    esa_attention attention;
    uint32_t reserved[2];     /* must be zero */
} esa_step_buffers;

/* Record one step of one layer (n <= the cache's chunk length) into the caller's command
 * buffer cb (recording, on a queue family with compute). Barriers the caller provides:
 *  - before: the writes of q, k, v must be made available to COMPUTE_SHADER / SHADER_READ;
 *  - after: out is written by COMPUTE_SHADER / SHADER_WRITE; barrier before reading it.
 * The library inserts its own barriers between its stages and at the start of each recorded
 * step. A cache with a device budget also records copies (vkCmdCopyBuffer) of whole pages
 * between device and host memory, of this or another layer, and page-table updates
 * (vkCmdUpdateBuffer), in transfer stages, before the step's dispatches. Such a step fails
 * (with nothing recorded) by ESA_ERROR_OUT_OF_HOST_MEMORY as esa_attend does; call
 * esa_cache_reserve before recording a chunk so that none can. Once a step of such a cache is
 * recorded, its command buffer must be submitted: the pages were already moved in the
 * cache's books, and a command buffer thrown away leaves them inconsistent (truncating does
 * not repair that). The cache's state advances at record time: submit recorded steps in record order,
 * exactly once, and do not let them run concurrently with esa_attend on the same cache.
 * The caller's buffers must stay alive until the command buffer completes.
 * The call binds its own compute pipelines and push constants (its own pipeline layout):
 * rebind your compute pipeline, push constants and descriptor sets afterwards.
 * Destroying the cache or context waits for the context's queue only: steps recorded into
 * command buffers submitted elsewhere must have completed first.
 * Inputs are not checked for NaN here (that would need a read-back). */
ESA_API esa_status esa_cmd_attend(esa_cache *cache, VkCommandBuffer cb, uint32_t layer,
                                  uint32_t n, const esa_step_buffers *buffers,
                                  esa_step_info *info);

#endif /* VK_VERSION_1_2 */

#ifdef __cplusplus
}
#endif

#endif
