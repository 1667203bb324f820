/* model_gpu.h - the forward pass of a Llama-architecture GGUF model on a Vulkan device, with
 * esa-vk as its attention: the GPU counterpart of model_ref.h, computing the same function.
 *
 * Weights are the GGUF tensors uploaded unchanged (dequantized in the shaders, kernels.h); the
 * activations are f32; q, k, v go to esa-vk pre-RoPE, and esa_cmd_attend records the attention
 * of every layer into the same command buffer as the rest of the layer. One esa-vk cache holds
 * the K/V of every layer (fp16). A call to esar_model_gpu_forward runs its tokens in chunks of
 * the cache's chunk length (l_C), all layers of a chunk in one submission.
 *
 * Attention (esar_model_gpu_desc.attention): ESA (initial + selected middle + local + current
 * tokens, positions remapped to read past the trained context), dense (every token, true
 * positions: the model as trained) or window (initial + local tokens, StreamingLLM). Selection
 * scores are full-dimension (ESA_SCORES_EXACT) unless compression matrices are given.
 *
 * Lifetime: the model reads the GGUF file at create only; rt and k must outlive the model.
 * Thread safety: like the runtime (externally synchronized).
 */
#ifndef ESAR_MODEL_GPU_H
#define ESAR_MODEL_GPU_H

#include "kernels.h"
#include "model_ref.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct esar_model_gpu esar_model_gpu;

typedef struct esar_model_gpu_desc {
    uint32_t max_tokens;        /* positions the cache holds (required), <= ESA_MAX_TOKENS */
    esa_attention attention;    /* ESA_ATTENTION_ESA (0), _DENSE or _WINDOW */
    /* esa-vk parameters; 0 takes the ESA-SPEC default (esa_cache_desc) */
    uint32_t n_initial, n_local, top_k, chunk, global_pos;
    int32_t proximity_radius;
    esa_position_mode position_mode;
    /* Per-layer compression matrices (spec 4.2) for compressed scores: a[l] [d'][H*d] and b[l]
     * [d'][G*d] as esa_cache_set_compression takes them, copied at create. NULL: exact scores.
     * compress_dim is their d' (0: esa-vk's default, min(128, H*d)); unused without them. */
    uint32_t compress_dim;
    const float *const *compress_a;
    const float *const *compress_b;
    /* Or an esa-vk compression file (esa-calib), loaded with esa_cache_load_compression, which
     * checks it against the model (a mismatch is DEVICE naming the field); it takes precedence
     * over compress_a/b, and its d' over compress_dim. global_pos must be the file's. */
    const char *compression_file;
    /* K/V paging (esa_cache_desc; 0: every page on the device) */
    uint64_t kv_device_budget;
    uint32_t page_tokens, kv_read;
} esar_model_gpu_desc;

/* Reads the config (esar_llama_config_read), checks and uploads every tensor, makes the cache.
 * ARG for a NULL argument, max_tokens 0, a bad attention, a runtime without its esa-vk context
 * or a missing compression matrix; UNSUPPORTED names a tensor type the kernels cannot read;
 * DEVICE carries the runtime's or esa-vk's message with the call that failed (out of device
 * memory, a limit, ESA parameters esa_cache_create refuses). On failure nothing is left. */
esar_status esar_model_gpu_create(const esar_gguf *g, esag_rt *rt, esag_kernels *k,
                                  const esar_model_gpu_desc *desc, esar_model_gpu **out,
                                  esar_err *err);
void esar_model_gpu_destroy(esar_model_gpu *m); /* NULL is fine; waits for the device */

const esar_llama_config *esar_model_gpu_config(const esar_model_gpu *m);
/* The model's esa-vk cache, for queries (esa_cache_memory_usage, esa_cache_length). */
const esa_cache *esar_model_gpu_cache(const esar_model_gpu *m);
/* Tokens in the cache: the position the next token gets. */
uint32_t esar_model_gpu_pos(const esar_model_gpu *m);
/* Keeps the first len tokens of the cache (len <= pos): for the next turn of a chat. */
esar_status esar_model_gpu_truncate(esar_model_gpu *m, uint32_t len, esar_err *err);
/* Changes the attention for the following calls (the cache is kept). */
esar_status esar_model_gpu_set_attention(esar_model_gpu *m, esa_attention a, esar_err *err);

/* Called after each chunk with the tokens done so far of this call and its total. */
typedef void (*esar_progress_fn)(void *user, uint32_t done, uint32_t total);

/* Runs tokens[0..n) at positions pos .. pos + n - 1 and appends them to the cache, as
 * esar_model_ref_forward: logits[n][n_vocab] (row i for the token after tokens[i]), or with
 * last_only only the last row, logits[n_vocab]; logits may be NULL. progress may be NULL.
 * ARG for a token outside the vocabulary (nothing appended), LIMIT past max_tokens, DEVICE
 * for a failed recording or submission (the cache then holds the chunks that completed, every
 * layer rolled back to them, and pos says how many: the model stays usable). */
esar_status esar_model_gpu_forward(esar_model_gpu *m, const int32_t *tokens, uint32_t n,
                                   float *logits, int last_only, esar_progress_fn progress,
                                   void *user, esar_err *err);

/* Called after each chunk has run, once per layer in order, with that layer's queries
 * q [T][H*d] and keys k [T][G*d] of the chunk, f32, before RoPE (as the attention receives
 * them), for the tokens at positions pos0 .. pos0 + T - 1; the arrays are valid during the call. */
typedef void (*esar_qk_tap_fn)(void *user, uint32_t layer, uint32_t pos0, uint32_t T, const float *q,
                               const float *k);
/* Install (fn non-NULL) or remove the tap: calibration dumps (ESA-SPEC 6). It costs a copy of
 * every layer's q and k to host memory per chunk. DEVICE when its buffer cannot be made. */
esar_status esar_model_gpu_set_qk_tap(esar_model_gpu *m, esar_qk_tap_fn fn, void *user, esar_err *err);

/* Device time of the calls so far, by timestamps (first to last command of each chunk's
 * submission): calls of more than one token (prefill) and of one token (decode), with their
 * token counts. All zero on a queue without timestamps. */
typedef struct esar_model_gpu_stats {
    double prefill_ms, decode_ms;
    uint64_t prefill_tokens, decode_tokens;
} esar_model_gpu_stats;
void esar_model_gpu_stats_get(const esar_model_gpu *m, esar_model_gpu_stats *s);

#ifdef __cplusplus
}
#endif

#endif
