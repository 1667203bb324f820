/* internal.h - the structures behind esa.h's opaque handles, shared by the host sources. */
#ifndef ESA_INTERNAL_H
#define ESA_INTERNAL_H

#include "vk_table.h" /* before esa.h: declares the engine-level API */
#include "esa.h"
#include "push.h"

#include <stdarg.h>
#include <stdint.h>

/* A buffer with its own memory, reached by device address. map is non-NULL for host-visible
 * buffers (mapped for their whole life). */
typedef struct esa_buffer {
    VkBuffer buffer;
    VkDeviceMemory memory;
    VkDeviceAddress address;
    VkDeviceSize size;
    void *map;
    int coherent;
    VkDeviceSize alloc_size;      /* the memory's size, for esa_context_memory_usage */
    VkMemoryPropertyFlags flags;  /* of its memory type */
} esa_buffer;

enum esa_pipeline_id {
    ESA_PIPE_APPEND,
    ESA_PIPE_COMPRESS,
    ESA_PIPE_COMPRESS_ONE, /* compress.comp with TT 1: one token */
    ESA_PIPE_COMPRESS_REDUCE,
    ESA_PIPE_PROXIMITY,
    ESA_PIPE_TOPK_PICK,
    ESA_PIPE_TOPK_HIST1,
    ESA_PIPE_TOPK_FILTER,
    ESA_PIPE_TOPK_RESOLVE,
    ESA_PIPE_TOPK_WRITE,
    ESA_PIPE_ROPE_Q,
    ESA_PIPE_MERGE,
    ESA_PIPE_PROBE,
    ESA_PIPE_GATHER,
    ESA_PIPE_COUNT
};

/* Kernel shapes of the selection stages, per device type (tuning.c's table). */
typedef struct esa_select_tuning {
    uint32_t topk_wg;           /* workgroup size of topk_pick and topk_hist1 */
    uint32_t filter_wg;         /* of topk_filter (the subgroup size where the table says 0) */
    uint32_t filter_lane_words; /* 1: topk_filter scans lane-owned words, 0: subgroup ballots */
    uint32_t score_groups;      /* one query's score dispatch: at most this many workgroups, each
                                 * lane walking several middle tokens; 0: one token each */
    uint32_t compress_groups;   /* compress.comp splits its columns until it has this many
                                 * workgroups (compress_reduce.comp adds the splits) */
} esa_select_tuning;

#define ESA_TS_MAX 64u /* timestamps per command buffer */

struct esa_context {
    esa_vk vk;
    void *loader;                 /* dlopen handle when the context opened the loader */
    int owns_device;              /* 0 for esa_context_create_external */
    VkInstance instance;
    VkPhysicalDevice physical;
    uint32_t physical_index;      /* its index in vkEnumeratePhysicalDevices (0 if external) */
    VkDevice device;
    VkQueue queue;
    uint32_t queue_family;
    VkDebugUtilsMessengerEXT messenger;
    uint32_t validation_count;    /* UINT32_MAX: asked for, layer missing */
    int print_validation;
    VkPhysicalDeviceMemoryProperties mem_props;
    esa_device_info info;
    esa_tuning tuning;            /* asked for until esa_context_init_device_state resolves
                                   * AUTO: then CPU or GPU (tuning.c) */
    VkCommandPool pool;
    VkCommandBuffer cmd;
    VkFence fence;
    VkPipelineLayout layout;      /* one push-constant range, no descriptor sets */
    VkPipeline pipes[ESA_PIPE_COUNT];
    int shader_int64;             /* shaderInt64 is enabled on the device: the context's own
                                   * where supported, an adopted one where the caller says so
                                   * (ESA_FEATURE_SHADER_INT64) */
    VkShaderModule attend_module; /* attend and score pipelines depend on the shape: made per */
    VkShaderModule score_module;  /* cache */
    uint32_t wg_size;             /* default workgroup size of the 1-D kernels */
    uint32_t proximity_items;     /* keys per invocation of proximity.comp */
    esa_select_tuning select;     /* the selection kernels' shapes, set with the pipelines */
    int32_t last_vk;
    char last_error[512];
    /* profile.c: timestamps of the simple API's submissions */
    VkQueryPool ts_pool;
    uint32_t ts_used;             /* queries written into the current command buffer */
    int profiling;                /* esa_context_set_profiling */
    int stamping;                 /* the current command buffer is the context's own, profiled */
    int ts_overflow;
    uint64_t ts_mask;             /* timestampValidBits of the queue family */
    int8_t ts_stage[ESA_TS_MAX];  /* what ended at each query: an esa_stage, or -1 (start) */
    esa_profile profile;
    /* memory.c: what the context's buffers hold */
    uint64_t mem_local, mem_host, mem_allocs, mem_peak_local;
    void *(*alloc)(void *, size_t);
    void *(*realloc_fn)(void *, void *, size_t);
    void (*free_fn)(void *, void *);
    void *alloc_user;
};

/* host memory through the context's callbacks */
void *esa_malloc(esa_context *ctx, size_t size);
void *esa_calloc(esa_context *ctx, size_t n, size_t size);
void esa_free(esa_context *ctx, void *p);

/* Record a failure's description; returns status for "return esa_fail(...)" chains. */
esa_status esa_fail(esa_context *ctx, esa_status status, const char *fmt, ...);
/* Translate a failed VkResult: remembers it and picks the status. */
esa_status esa_vk_fail(esa_context *ctx, VkResult r, const char *what);

/* memory.c */
/* HOST: K/V pages in host memory the device reads by address (HOST_VISIBLE, preferably not
 * DEVICE_LOCAL: system memory on a discrete GPU) */
enum esa_mem_kind { ESA_MEM_DEVICE, ESA_MEM_UPLOAD, ESA_MEM_READBACK, ESA_MEM_HOST };
esa_status esa_buffer_create(esa_context *ctx, VkDeviceSize size, enum esa_mem_kind kind,
                             esa_buffer *out);
void esa_buffer_destroy(esa_context *ctx, esa_buffer *b);
/* Make host writes visible / device writes readable for non-coherent mappings. */
void esa_buffer_flush(esa_context *ctx, esa_buffer *b);
void esa_buffer_invalidate(esa_context *ctx, esa_buffer *b);
/* Copy n bytes from src + src_off to dst + dst_off in a submission of its own, waited for,
 * with a barrier on each side: after the device's earlier writes, before its later reads. */
esa_status esa_copy_wait(esa_context *ctx, const esa_buffer *src, VkDeviceSize src_off, const esa_buffer *dst,
                         VkDeviceSize dst_off, VkDeviceSize n);

/* pipelines.c */
esa_status esa_pipelines_create(esa_context *ctx);
void esa_pipelines_destroy(esa_context *ctx);
/* How attend.comp runs on this device (tuning.c): lanes per row (td: 1 or 8), rows per lane
 * (td 1) or per 8-lane cluster (td 8) (rpi), key lanes (kl: clusters with their own keys),
 * workgroup size (wg: a multiple of 8*kl and of the subgroup size), the workgroups a part is
 * split into at least (workgroups), the cap on rpi*head_dim/td that bounds registers
 * (reg_dims), the keys a split gives one key lane at most where the partial slots allow it
 * (split_keys: a CPU core's cache of K and V, which every row tile then reads; 0: the
 * workgroup count alone sets the splits), and the most keys one key lane may loop over
 * (lane_keys, 0: no limit). */
typedef struct esa_attend_tuning {
    const char *name;
    uint32_t td, rpi, kl, wg, workgroups, reg_dims, split_keys, lane_keys;
} esa_attend_tuning;
/* 1: attend pipelines come from attend64 (the profile asks for it, shaderInt64 is on) */
int esa_attend_load64(const esa_context *ctx);
void esa_attend_tuning_for(const esa_context *ctx, uint32_t head_dim, uint32_t group, int decode,
                           esa_attend_tuning *out);
/* The score pipeline for score dimension dc (a multiple of 8) and tm tokens per lane; paged:
 * exact scores, the keys read through the page table. */
esa_status esa_score_pipeline(esa_context *ctx, uint32_t dc, uint32_t tm, int paged, VkPipeline *out);
/* ctx->select for the context's resolved tuning (tuning.c's table). */
void esa_select_tuning_for(const esa_context *ctx, esa_select_tuning *out);
#define ESA_SCORE_WG 64u      /* score.comp's workgroup size */
#define ESA_SCORE_MAX_DC 1024u /* its register rows: d' (G*d with exact scores) at most this */
/* Whether every word of a caller's reserved array is zero; the count comes from the array. */
static inline int esa_words_zero(const uint32_t *w, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (w[i])
            return 0;
    return 1;
}
#define ESA_RESERVED_ZERO(arr) esa_words_zero((arr), sizeof(arr) / sizeof((arr)[0]))
/* Whether an esa_tuning from a caller's desc is one of the enum's values. */
static inline int esa_tuning_valid(esa_tuning t)
{
    return t == ESA_TUNING_AUTO || t == ESA_TUNING_CPU || t == ESA_TUNING_GPU;
}
/* How steps read K/V in host pages on this device: an esa_kv_read (tuning.c). */
uint32_t esa_kv_read_for(const esa_context *ctx);
/* The attend pipeline for one cache shape and tuning. */
esa_status esa_attend_pipeline(esa_context *ctx, const esa_cache_desc *d,
                               const esa_attend_tuning *t, VkPipeline *out);
void esa_cmd_push(esa_context *ctx, VkCommandBuffer cb, VkPipeline p, const void *pc,
                  uint32_t size);
/* A compute->compute (and transfer->compute) memory barrier between dependent dispatches. */
void esa_cmd_barrier(esa_context *ctx, VkCommandBuffer cb);

/* device.c: run the context's one-shot command buffer: begin / submit and wait */
esa_status esa_begin(esa_context *ctx, VkCommandBuffer *cb);
esa_status esa_submit_wait(esa_context *ctx);
/* profile.c: a timestamp at the end of `stage` (an esa_stage, or -1 for the start) when the
 * context's own command buffer is being profiled; nothing otherwise. */
void esa_cmd_stamp(esa_context *ctx, VkCommandBuffer cb, int stage);
/* called by esa_begin and, after a successful wait, by esa_submit_wait */
void esa_profile_begin(esa_context *ctx, VkCommandBuffer cb);
void esa_profile_collect(esa_context *ctx);
void esa_profile_destroy(esa_context *ctx);
/* finish a context (shared by create and create_external) */
esa_status esa_context_init_device_state(esa_context *ctx);

/* pages.c: K/V pages of one kind of memory, carved from slabs (few allocations). A page holds
 * K [page_tokens][G*d] then V [page_tokens][G*d], fp16. A page handle is its id in the pool,
 * with ESA_PAGE_HOST set for the host pool; ESA_PAGE_NONE: not allocated. */
#define ESA_PAGE_HOST 0x80000000u
#define ESA_PAGE_NONE 0xffffffffu
typedef struct esa_pool {
    esa_buffer *slabs;
    uint32_t n_slabs, cap_slabs;
    uint32_t pages_per_slab;
    uint32_t *free_ids;           /* stack of free page ids */
    uint32_t n_free, cap_free;
    uint64_t limit;               /* pages this pool may hold */
    uint64_t total;               /* pages in its slabs */
    enum esa_mem_kind kind;
} esa_pool;

/* cache.c / step.c */
typedef struct esa_layer {
    esa_buffer table;             /* uvec2 [max_pages]: each page's device address (pages.c) */
    uint32_t *page;               /* [max_pages] page handles */
    uint64_t *addr;               /* [max_pages] the table's contents, as the host keeps it */
    uint32_t n_pages;             /* pages allocated: they cover tokens [0, n_pages * pt) */
    uint32_t host_pages;          /* of them, in the host pool */
    esa_buffer kc;                /* f16 [max_tokens][d'] */
    esa_buffer at, bt;            /* f32 A^T [H*d][d'] (rope_w folded in), B^T [G*d][d'] */
    esa_buffer sel;               /* uint [top_k]: last selection, cache positions */
    uint32_t len;
    uint32_t n_selected;
    uint32_t sel_first;           /* selection is [sel_first, +n_selected) unless ~0u: then sel */
    int ready;                    /* matrices set (or exact scores) */
} esa_layer;

struct esa_cache {
    esa_context *ctx;
    esa_cache_desc d;             /* resolved */
    uint32_t dc;                  /* compressed dim actually used (G*d in exact-score mode) */
    uint32_t radius;              /* resolved epsilon */
    esa_layer *layers;
    esa_buffer rope;              /* vec2 [3][256][rope_dims/2]: rope.glsl's rotations */
    esa_buffer qf[2];             /* f32 [chunk][H*d]: queries rotated per frame (rope_q) */
    esa_buffer a_exact;           /* exact-score mode: f32 [H*d][G*d], the group sum of rope_w */
    esa_buffer qs;                /* f32 [chunk][H*d] queries */
    esa_buffer qc;                /* f32 [chunk][dc] compressed queries */
    esa_buffer rowmax;            /* uint [chunk] */
    esa_buffer f;                 /* f32 [max_tokens] importance */
    esa_buffer keys;              /* uint [max_tokens] order keys after proximity */
    esa_buffer topk;              /* uint [ESA_TOPK_STATE_WORDS] */
    esa_buffer blocks;            /* uint [2][max blocks]: top-k counts (then output offsets),
                                   * candidates */
    esa_buffer topk_bits;         /* uint [max blocks][ESA_TOPK_WORDS] selection bitmap */
    esa_buffer cand;              /* uint [max_tokens][2] top-k candidates (key, index) */
    esa_buffer part_o, part_ml;   /* partial slots (part_o also holds compress.comp's split sums) */
    uint64_t part_floats;         /* capacity of part_o in floats */
    esa_buffer upload;            /* host-visible q, k, v of one chunk */
    esa_buffer download;          /* host-visible output of one chunk */
    esa_buffer readback;          /* host-visible uint [top_k] */
    VkPipeline attend_pipe[2];    /* [0] decode (one query), [1] chunk */
    VkPipeline score_pipe[2];     /* [0] one query, [1] chunk */
    uint32_t score_tm;            /* middle tokens per lane of score.comp for chunks */
    esa_attend_tuning attend[2];
    /* pages.c */
    esa_pool pool[2];             /* [0] device, [1] host */
    uint32_t page_tokens, page_shift, max_pages;
    uint64_t page_bytes;          /* K and V of page_tokens tokens */
    uint64_t fixed_bytes;         /* device memory besides the device pool's slabs */
    uint32_t kv_read;             /* esa_kv_read, resolved */
    esa_buffer gather;            /* COPY reads: f16 K [top_k][G*d] then V [top_k][G*d] */
};

/* pages.c */
/* Resolve the page size and budgets of c->d, allocate the page tables and the device pool
 * (ESA_ERROR_INVALID_ARGUMENT when the budget is below the minimum). */
esa_status esa_pages_create(esa_cache *c);
void esa_pages_destroy(esa_cache *c);
/* Before a step of n tokens at P cached: pages for tokens [0, P + n), those of the initial,
 * local and current tokens on the device (evicting other middle pages to host memory by copy,
 * or bringing them back), recorded into cb with a barrier after, or nothing recorded. Fails
 * only before recording anything (ESA_ERROR_OUT_OF_HOST_MEMORY when host pages run out). */
esa_status esa_pages_place(esa_cache *c, VkCommandBuffer cb, uint32_t layer, uint32_t P, uint32_t n);
/* Whether layers of lengths lens[n_layers] fit in the budgets' pages (else
 * ESA_ERROR_OUT_OF_HOST_MEMORY, named). */
esa_status esa_pages_check_fit(esa_cache *c, const uint32_t *lens);
/* Give back a layer's pages past its first len tokens. */
void esa_pages_release(esa_cache *c, uint32_t layer, uint32_t len);
/* Record copies of n bytes between the layer's logical K (which 0) or V (1) array, [tokens]
 * [G*d] fp16, from byte off, and buf at buf_off: into the pages when to_pages, else out. The
 * pages must exist. */
void esa_pages_record_copy(esa_cache *c, VkCommandBuffer cb, uint32_t layer, int which, uint64_t off,
                           const esa_buffer *buf, VkDeviceSize buf_off, uint64_t n, int to_pages);
/* The same as one waited submission, with a barrier on each side. */
esa_status esa_pages_copy_wait(esa_cache *c, uint32_t layer, int which, uint64_t off,
                               const esa_buffer *buf, VkDeviceSize buf_off, uint64_t n, int to_pages);

/* The device addresses one step reads and writes (engine level and simple level alike). */
typedef struct esa_step_io {
    VkDeviceAddress q, k, v, out;
    int in_f16;
} esa_step_io;

/* What a chunk does: an ESA step, a dense step, or only append its keys and values. */
enum esa_step_mode { ESA_STEP_ESA, ESA_STEP_DENSE, ESA_STEP_WINDOW, ESA_STEP_APPEND };

/* step.c: record one chunk (n <= chunk) of one layer; updates the layer's length. Fails
 * (ESA_ERROR_OUT_OF_HOST_MEMORY: no host page) only before recording anything. */
esa_status esa_record_chunk(esa_cache *cache, VkCommandBuffer cb, uint32_t layer, uint32_t n,
                            const esa_step_io *io, enum esa_step_mode mode, esa_step_info *info);

/* The stages esa_record_chunk is made of, also recorded alone by stage_debug.c. Each records
 * its dispatches with a barrier after each, except esa_record_compress, which needs the
 * caller's barrier after it. */
/* out[t] = M . x[t] as pc describes (compress.comp); with few tokens its columns are split and
 * the partial sums pass through cache->part_o (a barrier before the reduce and after it). */
void esa_record_compress(esa_cache *cache, VkCommandBuffer cb, const esa_pc_compress *pc);
/* Importance f[lm] (score.comp; the row maxima when pc->n > 1); pc->rowmax must be zeroed. */
void esa_record_scores(esa_cache *cache, VkCommandBuffer cb, const esa_pc_score *pc);
/* cache->f -> cache->keys (proximity max, order keys) and the first top-k histogram into
 * cache->topk, which must be zeroed. */
void esa_record_proximity(esa_cache *cache, VkCommandBuffer cb, uint32_t lm, uint32_t radius);
/* The k (<= lm) largest of cache->keys[lm], ties to the lower position, written ascending as
 * pos0 + index to out[k]; continues the histogram esa_record_proximity started. */
void esa_record_topk(esa_cache *cache, VkCommandBuffer cb, uint32_t lm, uint32_t k, uint32_t pos0,
                     VkDeviceAddress out);

/* One attention part: keys first..first+count-1 (cache positions, or list entries when
 * use_list), queries rotated at q_rope_pos0 + c * q_rope_step, keys at 0 (k_rope_zero) or at
 * position - k_rope_sub. */
#define ESA_MAX_SEGMENTS 4u /* a chunk's partial slots hold 4 parts (cache.c) */
#define ESA_PART_BUDGET (64ull << 20) /* bytes of partial slots for preferred splits (cache.c) */
typedef struct esa_segment {
    uint32_t first, count, use_list;
    uint32_t gathered;            /* a list part whose rows are in cache->gather, in list order */
    uint32_t q_rope_pos0, q_rope_step, k_rope_zero, k_rope_sub;
} esa_segment;
/* The parts (split-K over workgroups) and their merge into out[n][H][d]: queries from
 * cache->qs, keys and values from L (list: L->sel), query c at cache position P + c.
 * Returns the partial slots used (the number of splits over all parts). */
uint32_t esa_record_attention(esa_cache *cache, VkCommandBuffer cb, esa_layer *L, uint32_t n,
                              uint32_t P, const esa_segment *seg, uint32_t nseg,
                              VkDeviceAddress out);

uint32_t esa_max_u32(uint32_t a, uint32_t b);
uint32_t esa_min_u32(uint32_t a, uint32_t b);
uint32_t esa_div_up(uint32_t a, uint32_t b);

#endif
