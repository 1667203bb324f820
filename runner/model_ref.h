/* model_ref.h - the CPU reference forward pass of a Llama-architecture model read from GGUF.
 *
 * Plain loops in the manner of llama2.c (Karpathy, run.c), double accumulation, weights
 * dequantized row by row from the mapped file as they are used. Slow on purpose: it is the
 * executable statement of what the GPU forward pass must compute, not a way to run the model.
 *
 * The model (Touvron et al. 2023, "LLaMA"; llama.cpp's LLM_ARCH_LLAMA graph):
 *   x = token_embd[token]
 *   per block: h = x + attn_output(attention(rope(attn_q(rms(x))), rope(attn_k(rms(x))),
 *                                            attn_v(rms(x))))       rms weighted by attn_norm
 *              x = h + ffn_down(silu(ffn_gate(rms(h))) * ffn_up(rms(h)))   rms by ffn_norm
 *   logits = output(rms(x))   rms by output_norm; output is token_embd when the file ties them
 * RMSNorm: x / sqrt(mean(x^2) + eps) * w (Zhang & Sennrich 2019). SwiGLU (Shazeer 2020).
 * Attention: causal, grouped-query (query head h reads KV head h / (H / G)), scale 1/sqrt(d).
 * RoPE (Su et al. 2021) as llama.cpp applies it to this architecture, whose GGUF conversion
 * permutes the Q/K rows for it: pair (2i, 2i+1) of each head turns by pos * theta^(-2i/rope_dims)
 * for 2i < rope_dims, x0' = x0 cos - x1 sin, x1' = x0 sin + x1 cos; theta = rope.freq_base.
 *
 * Lifetime: the model reads weights from the esar_gguf it was made from, which must stay open
 * until esar_model_ref_destroy. Thread safety: one thread at a time per model.
 */
#ifndef ESAR_MODEL_REF_H
#define ESAR_MODEL_REF_H

#include "gguf.h"
#include "status.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The hyperparameters, from the <arch>.* keys (arch = general.architecture, "llama"). */
typedef struct esar_llama_config {
    uint32_t n_layers;    /* block_count */
    uint32_t n_embd;      /* embedding_length */
    uint32_t n_ff;        /* feed_forward_length */
    uint32_t n_heads;     /* attention.head_count, H */
    uint32_t n_kv_heads;  /* attention.head_count_kv, G (H when absent); divides H */
    uint32_t head_dim;    /* n_embd / H (attention.key_length when present) */
    uint32_t rope_dims;   /* rope.dimension_count (head_dim when absent), even, <= head_dim */
    uint32_t n_vocab;     /* rows of token_embd */
    uint32_t n_ctx_train; /* context_length */
    float rope_theta;     /* rope.freq_base (10000 when absent) */
    float rms_eps;        /* attention.layer_norm_rms_epsilon */
    int tied_output;      /* 1 when there is no output.weight and token_embd serves as the head */
} esar_llama_config;

/* Reads and checks the hyperparameters (NOT_FOUND names a missing key, FORMAT an inconsistent
 * value, UNSUPPORTED an architecture other than llama or a RoPE scaling it does not do). */
esar_status esar_llama_config_read(const esar_gguf *g, esar_llama_config *cfg, esar_err *err);

typedef struct esar_model_ref_desc {
    uint32_t max_tokens; /* positions the KV cache holds; 0 means 512; at most n_ctx_train * 4 */
    int kv_f16;          /* 1: round K and V to fp16 when cached (as llama.cpp's default cache
                            and esa-vk do); 0: keep them as float */
} esar_model_ref_desc;

typedef struct esar_model_ref esar_model_ref;

/* Reads the config, finds every tensor and checks its shape and that its type can be
 * dequantized (the message names the tensor), and allocates the KV cache. desc may be NULL. */
esar_status esar_model_ref_create(const esar_gguf *g, const esar_model_ref_desc *desc, esar_model_ref **out,
                                  esar_err *err);
void esar_model_ref_destroy(esar_model_ref *m); /* NULL is fine */

const esar_llama_config *esar_model_ref_config(const esar_model_ref *m);
/* Tokens in the KV cache: the position the next token gets. */
uint32_t esar_model_ref_pos(const esar_model_ref *m);
/* Empties the KV cache. */
void esar_model_ref_reset(esar_model_ref *m);

/* Runs tokens[0..n) at positions pos .. pos + n - 1 (pos = esar_model_ref_pos), appending them
 * to the KV cache. When logits is not NULL it receives logits[n][n_vocab], row i for the token
 * after tokens[i]; with last_only set it receives only the last row, logits[n_vocab].
 * ARG for a token id outside the vocabulary (nothing is appended then), LIMIT when the cache
 * would overflow. */
esar_status esar_model_ref_forward(esar_model_ref *m, const int32_t *tokens, uint32_t n, float *logits,
                                   int last_only, esar_err *err);

#ifdef __cplusplus
}
#endif

#endif
