/* model_gpu.c - the Llama forward pass on the device (model_gpu.h): weights uploaded as GGUF
 * stores them, every block recorded into the runtime's command buffer with esa-vk's attention
 * in the middle, one submission per chunk of tokens, the cache rolled back when a chunk fails.
 * model_ref.c is the statement of what it computes. Buffers carry their shapes as [dim][dim]
 * comments: C is the cache's chunk length (tokens per submission), T the tokens of one chunk,
 * E the embedding length, F the feed-forward length, H and G the query and KV heads of d dims
 * (Hd = H*d, Gd = G*d), V the vocabulary. */
#include "model_gpu.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NO_LAYER UINT32_MAX
#define WEIGHT_ALIGN 256u /* offset of each tensor in its buffer (the kernels need 16) */

/* One block. Its tensors share one device buffer; wq|wk|wv and w_gate|w_up lie back to back
 * when they share a type, so that they are also one matrix each (wqkv, wgu: rows 0 when not):
 * one product instead of three for a decode token, one instead of two for gate/up. */
typedef struct gpu_layer {
    esag_buffer buf;
    esag_matrix wq, wk, wv, wqkv;   /* [Hd][E], [Gd][E], [Gd][E]; [Hd + 2 Gd][E] */
    esag_matrix wo;                 /* [E][Hd] */
    esag_matrix w_gate, w_up, wgu;  /* [F][E] each; [2F][E] */
    esag_matrix w_down;             /* [E][F] */
    VkDeviceAddress attn_norm, ffn_norm; /* f32 [E] */
} gpu_layer;

struct esar_model_gpu {
    esag_rt *rt;
    esag_kernels *k;
    esa_context *ctx;
    esar_llama_config cfg;
    esa_cache *cache;                /* every layer's K/V, fp16 */
    esa_attention attention;
    uint32_t max_tokens, chunk, pos;
    int timestamps;                  /* the queue writes them */
    esag_buffer globals;             /* token_embd, output (untied), output_norm */
    esag_matrix embd, output;        /* [V][E]; output == embd when tied */
    VkDeviceAddress out_norm;        /* f32 [E] */
    gpu_layer *layers;               /* [n_layers] */
    /* activations, f32 unless said */
    esag_buffer ids;                 /* uint32 [C] token ids */
    esag_buffer x;                   /* [C][E] the residual stream */
    esag_buffer xn;                  /* [C][E] normed input of a sublayer */
    esag_buffer qkv;                 /* q [T][Hd], then k [T][Gd], then v [T][Gd] (packed for T) */
    esag_buffer attn;                /* [C][Hd] attention output */
    esag_buffer gu;                  /* [C][2F] gate | up of each token */
    esag_buffer h;                   /* [C][F] silu(gate) * up */
    esag_buffer logits;              /* [logit_rows][V], made when first needed */
    uint32_t logit_rows;
    esar_model_gpu_stats stats;
    /* the q/k tap: every layer's q [T][Hd] and k [T][Gd] of a chunk, [n_layers][C][Hd + Gd] */
    esag_buffer tap;
    esar_qk_tap_fn tap_fn;
    void *tap_user;
    float *tap_host;                 /* one layer's part, read back */
};

/* ---- errors ------------------------------------------------------------------------------ */

/* A failed call of the runtime or of esa-vk: DEVICE, naming the call and its layer. */
static esar_status device_fail(esar_err *err, const char *what, uint32_t layer, const char *status,
                               const char *why)
{
    char where[32] = "";
    if (layer != NO_LAYER)
        snprintf(where, sizeof where, " (layer %u)", layer);
    return esar_fail(err, ESAR_ERR_DEVICE, "model_gpu: %s%s: %s: %s", what, where, status, why);
}

static esar_status rt_fail(esar_model_gpu *m, esar_err *err, esag_status s, const char *what, uint32_t layer)
{
    return device_fail(err, what, layer, esag_status_string(s), esag_rt_last_error(m->rt));
}

static esar_status attention_fail(esar_model_gpu *m, esar_err *err, esa_status s, const char *what, uint32_t layer)
{
    return device_fail(err, what, layer, esa_status_string(s), esa_context_last_error(m->ctx));
}

/* A runtime call that must succeed, inside a function with m and err in scope. */
#define TRY(call, what, layer)                                                                 \
    do {                                                                                       \
        esag_status s_ = (call);                                                               \
        if (s_ != ESAG_OK)                                                                     \
            return rt_fail(m, err, s_, what, layer);                                           \
    } while (0)

/* ---- create ------------------------------------------------------------------------------ */

/* The matrix called name, [rows][cols], of a type the kernels read in place. */
static esar_status find_matrix(const esar_gguf *g, const char *name, uint32_t rows, uint32_t cols,
                               const esar_gguf_tensor **out, esar_err *err)
{
    uint64_t ne[2] = {cols, rows};
    esar_status st = esar_gguf_get_tensor(g, name, 2, ne, out, err);
    if (st)
        return st;
    uint64_t bytes = esag_tensor_bytes((*out)->type, rows, cols);
    if (bytes == 0 || bytes != (*out)->n_bytes)
        return esar_fail(err, ESAR_ERR_UNSUPPORTED,
                         "model_gpu: tensor '%s' has type %s, which the GPU kernels cannot read (F32, F16, "
                         "Q4_1, Q8_0)", name, esar_type_info_of((*out)->type)->name);
    return ESAR_OK;
}

/* Where the next tensor of `bytes` goes in a buffer filled up to *end: right after the previous
 * one when packed (a fused matrix), else at the next aligned offset. */
static uint64_t place(uint64_t *end, uint64_t bytes, int packed)
{
    uint64_t off = packed ? *end : (*end + WEIGHT_ALIGN - 1) / WEIGHT_ALIGN * WEIGHT_ALIGN;
    *end = off + bytes;
    return off;
}

static esag_matrix matrix_at(const esag_buffer *b, uint64_t off, const esar_gguf_tensor *t)
{
    return (esag_matrix){.data = b->address + off, .type = t->type, .rows = (uint32_t)t->n_rows,
                         .cols = (uint32_t)t->ne[0]};
}

/* A norm vector [E] as f32 at off in b (dequantized on the host: the kernels take f32). */
static esar_status upload_norm(esar_model_gpu *m, const esar_gguf *g, const char *name, esag_buffer *b,
                               uint64_t off, float *tmp, esar_err *err)
{
    const esar_gguf_tensor *t;
    uint64_t ne[1] = {m->cfg.n_embd};
    esar_status st = esar_gguf_get_tensor(g, name, 1, ne, &t, err);
    if (st || (st = esar_gguf_tensor_row(t, 0, tmp, err)))
        return st;
    TRY(esag_buffer_write(m->rt, b, off, tmp, sizeof(float) * m->cfg.n_embd), "esag_buffer_write", NO_LAYER);
    return ESAR_OK;
}

/* The tensor's bytes, unchanged, at off in b. */
static esar_status upload_matrix(esar_model_gpu *m, const esar_gguf_tensor *t, esag_buffer *b, uint64_t off,
                                 esar_err *err)
{
    esag_status s = esag_buffer_write(m->rt, b, off, t->data, t->n_bytes);
    if (s != ESAG_OK) {
        esar_status st = rt_fail(m, err, s, "esag_buffer_write", NO_LAYER);
        esar_err_suffix(err, " (tensor '%s')", t->name);
        return st;
    }
    return ESAR_OK;
}

static esar_status device_buffer(esar_model_gpu *m, uint64_t bytes, esag_buffer *b, const char *what,
                                 esar_err *err)
{
    esag_status s = esag_buffer_create(m->rt, bytes, ESAG_MEM_DEVICE, b);
    if (s != ESAG_OK) {
        esar_status st = rt_fail(m, err, s, "esag_buffer_create", NO_LAYER);
        esar_err_suffix(err, " (%s, %llu bytes)", what, (unsigned long long)bytes);
        return st;
    }
    return ESAR_OK;
}

static esar_status upload_globals(esar_model_gpu *m, const esar_gguf *g, float *tmp, esar_err *err)
{
    const esar_llama_config *c = &m->cfg;
    const esar_gguf_tensor *embd, *out = NULL;
    esar_status st = find_matrix(g, "token_embd.weight", c->n_vocab, c->n_embd, &embd, err);
    if (!st && !c->tied_output)
        st = find_matrix(g, "output.weight", c->n_vocab, c->n_embd, &out, err);
    if (st)
        return st;
    uint64_t end = 0, o_embd = place(&end, embd->n_bytes, 0), o_out = out ? place(&end, out->n_bytes, 0) : 0;
    uint64_t o_norm = place(&end, sizeof(float) * c->n_embd, 0);
    if ((st = device_buffer(m, end, &m->globals, "token_embd, output, output_norm", err)) ||
        (st = upload_matrix(m, embd, &m->globals, o_embd, err)) ||
        (out && (st = upload_matrix(m, out, &m->globals, o_out, err))) ||
        (st = upload_norm(m, g, "output_norm.weight", &m->globals, o_norm, tmp, err)))
        return st;
    m->embd = matrix_at(&m->globals, o_embd, embd);
    m->output = out ? matrix_at(&m->globals, o_out, out) : m->embd;
    m->out_norm = m->globals.address + o_norm;
    return ESAR_OK;
}

static esar_status upload_layer(esar_model_gpu *m, const esar_gguf *g, uint32_t l, float *tmp, esar_err *err)
{
    const esar_llama_config *c = &m->cfg;
    const uint32_t E = c->n_embd, F = c->n_ff, Hd = c->n_heads * c->head_dim, Gd = c->n_kv_heads * c->head_dim;
    enum { Q, K, V, O, GATE, UP, DOWN, N_MAT };
    static const char *const sfx[N_MAT] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up",
                                           "ffn_down"};
    const uint32_t shape[N_MAT][2] = {{Hd, E}, {Gd, E}, {Gd, E}, {E, Hd}, {F, E}, {F, E}, {E, F}};
    const esar_gguf_tensor *t[N_MAT];
    char name[96];
    for (int i = 0; i < N_MAT; i++) {
        snprintf(name, sizeof name, "blk.%u.%s.weight", l, sfx[i]);
        esar_status st = find_matrix(g, name, shape[i][0], shape[i][1], &t[i], err);
        if (st)
            return st;
    }
    /* a fused matrix needs one type and each part's end 16-byte aligned (the next one's start) */
    int fuse_qkv = t[Q]->type == t[K]->type && t[K]->type == t[V]->type && t[Q]->n_bytes % 16 == 0 &&
                   t[K]->n_bytes % 16 == 0;
    int fuse_gu = t[GATE]->type == t[UP]->type && t[GATE]->n_bytes % 16 == 0;
    uint64_t end = 0, off[N_MAT];
    for (int i = 0; i < N_MAT; i++)
        off[i] = place(&end, t[i]->n_bytes, ((i == K || i == V) && fuse_qkv) || (i == UP && fuse_gu));
    uint64_t off_an = place(&end, sizeof(float) * E, 0), off_fn = place(&end, sizeof(float) * E, 0);
    gpu_layer *L = &m->layers[l];
    esar_status st = device_buffer(m, end, &L->buf, "a block's weights", err);
    for (int i = 0; !st && i < N_MAT; i++)
        st = upload_matrix(m, t[i], &L->buf, off[i], err);
    if (st)
        return st;
    snprintf(name, sizeof name, "blk.%u.attn_norm.weight", l);
    if ((st = upload_norm(m, g, name, &L->buf, off_an, tmp, err)))
        return st;
    snprintf(name, sizeof name, "blk.%u.ffn_norm.weight", l);
    if ((st = upload_norm(m, g, name, &L->buf, off_fn, tmp, err)))
        return st;
    L->wq = matrix_at(&L->buf, off[Q], t[Q]);
    L->wk = matrix_at(&L->buf, off[K], t[K]);
    L->wv = matrix_at(&L->buf, off[V], t[V]);
    L->wo = matrix_at(&L->buf, off[O], t[O]);
    L->w_gate = matrix_at(&L->buf, off[GATE], t[GATE]);
    L->w_up = matrix_at(&L->buf, off[UP], t[UP]);
    L->w_down = matrix_at(&L->buf, off[DOWN], t[DOWN]);
    if (fuse_qkv)
        L->wqkv = (esag_matrix){.data = L->wq.data, .type = L->wq.type, .rows = Hd + 2 * Gd, .cols = E};
    if (fuse_gu)
        L->wgu = (esag_matrix){.data = L->w_gate.data, .type = L->w_gate.type, .rows = 2 * F, .cols = E};
    L->attn_norm = L->buf.address + off_an;
    L->ffn_norm = L->buf.address + off_fn;
    return ESAR_OK;
}

/* One cache for every layer, with the model's attention shape and the desc's ESA parameters. */
static esar_status make_cache(esar_model_gpu *m, const esar_model_gpu_desc *desc, esar_err *err)
{
    const esar_llama_config *c = &m->cfg;
    esa_compression_info file = {0};
    if (desc->compression_file) { /* its d'; esa_cache_load_compression checks the rest */
        esa_status es = esa_compression_read(m->ctx, desc->compression_file, &file, NULL, NULL);
        if (es != ESA_SUCCESS)
            return attention_fail(m, err, es, "esa_compression_read", NO_LAYER);
    }
    const int compressed = desc->compress_a != NULL || desc->compression_file != NULL;
    esa_cache_desc cd = {
        .n_layers = c->n_layers, .n_heads = c->n_heads, .n_kv_heads = c->n_kv_heads, .head_dim = c->head_dim,
        .rope_dims = c->rope_dims, .rope_theta = c->rope_theta,
        .rope_style = ESA_ROPE_INTERLEAVED, /* model_ref.h: pairs (2i, 2i+1), llama.cpp's normal RoPE */
        .scale = (float)(1.0 / sqrt((double)c->head_dim)),
        .n_initial = desc->n_initial, .n_local = desc->n_local, .top_k = desc->top_k,
        .compress_dim = desc->compression_file ? file.compress_dim : compressed ? desc->compress_dim : 0,
        .proximity_radius = desc->proximity_radius, .chunk = desc->chunk, .global_pos = desc->global_pos,
        .position_mode = desc->position_mode,
        .score_mode = compressed ? ESA_SCORES_COMPRESSED : ESA_SCORES_EXACT,
        .max_tokens = desc->max_tokens,
        .kv_device_budget = desc->kv_device_budget, .page_tokens = desc->page_tokens, .kv_read = desc->kv_read,
    };
    esa_status es = esa_cache_create(m->ctx, &cd, &m->cache);
    if (es != ESA_SUCCESS)
        return attention_fail(m, err, es, "esa_cache_create", NO_LAYER);
    if (desc->compression_file && (es = esa_cache_load_compression(m->cache, desc->compression_file)) != ESA_SUCCESS)
        return attention_fail(m, err, es, "esa_cache_load_compression", NO_LAYER);
    for (uint32_t l = 0; desc->compress_a && !desc->compression_file && l < c->n_layers; l++)
        if ((es = esa_cache_set_compression(m->cache, l, desc->compress_a[l], desc->compress_b[l])) != ESA_SUCCESS)
            return attention_fail(m, err, es, "esa_cache_set_compression", l);
    if ((es = esa_cache_get_desc(m->cache, &cd)) != ESA_SUCCESS)
        return attention_fail(m, err, es, "esa_cache_get_desc", NO_LAYER);
    m->chunk = cd.chunk;
    return ESAR_OK;
}

static esar_status create(esar_model_gpu *m, const esar_gguf *g, const esar_model_gpu_desc *desc, esar_err *err)
{
    esar_llama_config *c = &m->cfg;
    esar_status st = esar_llama_config_read(g, c, err);
    if (st)
        return st;
    const uint32_t E = c->n_embd, F = c->n_ff, Hd = c->n_heads * c->head_dim, Gd = c->n_kv_heads * c->head_dim;
    if (E % 32 || F % 32 || Hd % 32)
        return esar_fail(err, ESAR_ERR_UNSUPPORTED, "model_gpu: embedding %u, feed-forward %u and H*d %u must be "
                         "multiples of 32 (the kernels read rows by blocks of 32)", E, F, Hd);
    if (desc->compress_a)
        for (uint32_t l = 0; l < c->n_layers; l++)
            if (!desc->compress_a[l] || !desc->compress_b[l])
                return esar_fail(err, ESAR_ERR_ARG, "model_gpu: compression matrices of layer %u are NULL", l);
    m->layers = calloc(c->n_layers, sizeof *m->layers);
    float *tmp = malloc(sizeof(float) * E); /* [E] a norm vector */
    if (!m->layers || !tmp) {
        free(tmp);
        return esar_fail(err, ESAR_ERR_NOMEM, "model_gpu: out of memory");
    }
    st = upload_globals(m, g, tmp, err);
    for (uint32_t l = 0; !st && l < c->n_layers; l++)
        st = upload_layer(m, g, l, tmp, err);
    free(tmp);
    if (st || (st = make_cache(m, desc, err)))
        return st;
    const uint64_t C = m->chunk, f = sizeof(float);
    if ((st = device_buffer(m, C * sizeof(uint32_t), &m->ids, "token ids", err)) ||
        (st = device_buffer(m, C * E * f, &m->x, "activations", err)) ||
        (st = device_buffer(m, C * E * f, &m->xn, "activations", err)) ||
        (st = device_buffer(m, C * (Hd + 2ull * Gd) * f, &m->qkv, "activations", err)) ||
        (st = device_buffer(m, C * Hd * f, &m->attn, "activations", err)) ||
        (st = device_buffer(m, C * 2 * F * f, &m->gu, "activations", err)) ||
        (st = device_buffer(m, C * F * f, &m->h, "activations", err)))
        return st;
    const esag_device_info *di = esag_rt_device_info(m->rt);
    m->timestamps = di->timestamp_period_ns > 0.0f && di->timestamp_valid_bits > 0;
    return ESAR_OK;
}

static int valid_attention(esa_attention a)
{
    return a == ESA_ATTENTION_ESA || a == ESA_ATTENTION_DENSE || a == ESA_ATTENTION_WINDOW;
}

esar_status esar_model_gpu_create(const esar_gguf *g, esag_rt *rt, esag_kernels *k,
                                  const esar_model_gpu_desc *desc, esar_model_gpu **out, esar_err *err)
{
    if (out)
        *out = NULL;
    if (!g || !rt || !k || !desc || !out)
        return esar_fail(err, ESAR_ERR_ARG, "model_gpu: NULL argument");
    esa_context *ctx = esag_rt_attention(rt);
    if (!ctx)
        return esar_fail(err, ESAR_ERR_ARG, "model_gpu: the runtime has no esa-vk context (without_attention)");
    if (desc->max_tokens == 0 || desc->max_tokens > ESA_MAX_TOKENS)
        return esar_fail(err, ESAR_ERR_ARG, "model_gpu: max_tokens %u must be 1..%u", desc->max_tokens,
                         ESA_MAX_TOKENS);
    if (!valid_attention(desc->attention))
        return esar_fail(err, ESAR_ERR_ARG, "model_gpu: attention %d is not ESA, DENSE or WINDOW",
                         (int)desc->attention);
    if (!desc->compress_a != !desc->compress_b)
        return esar_fail(err, ESAR_ERR_ARG, "model_gpu: compress_a and compress_b are given together or not at all");
    esar_model_gpu *m = calloc(1, sizeof *m);
    if (!m)
        return esar_fail(err, ESAR_ERR_NOMEM, "model_gpu: out of memory");
    m->rt = rt, m->k = k, m->ctx = ctx;
    m->attention = desc->attention;
    m->max_tokens = desc->max_tokens;
    esar_status st = create(m, g, desc, err);
    if (st) {
        esar_model_gpu_destroy(m);
        return st;
    }
    *out = m;
    return ESAR_OK;
}

void esar_model_gpu_destroy(esar_model_gpu *m)
{
    if (!m)
        return;
    (void)esag_wait(m->rt); /* every forward waits for its work; this is for a caller's pending one */
    esa_cache_destroy(m->cache);
    for (uint32_t l = 0; m->layers && l < m->cfg.n_layers; l++)
        esag_buffer_destroy(m->rt, &m->layers[l].buf);
    esag_buffer *bufs[] = {&m->globals, &m->ids, &m->x, &m->xn, &m->qkv, &m->attn, &m->gu, &m->h, &m->logits,
                           &m->tap};
    free(m->tap_host);
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        esag_buffer_destroy(m->rt, bufs[i]);
    free(m->layers);
    free(m);
}

const esar_llama_config *esar_model_gpu_config(const esar_model_gpu *m) { return m ? &m->cfg : NULL; }
uint32_t esar_model_gpu_pos(const esar_model_gpu *m) { return m ? m->pos : 0; }

esar_status esar_model_gpu_set_qk_tap(esar_model_gpu *m, esar_qk_tap_fn fn, void *user, esar_err *err)
{
    if (!m)
        return esar_fail(err, ESAR_ERR_ARG, "model_gpu: NULL argument");
    esag_buffer_destroy(m->rt, &m->tap);
    free(m->tap_host);
    m->tap_host = NULL;
    m->tap_fn = NULL;
    if (!fn)
        return ESAR_OK;
    const esar_llama_config *c = &m->cfg;
    uint64_t per = (uint64_t)m->chunk * (c->n_heads + c->n_kv_heads) * c->head_dim;
    esag_status gs = esag_buffer_create(m->rt, per * c->n_layers * sizeof(float), ESAG_MEM_READBACK, &m->tap);
    if (gs != ESAG_OK)
        return rt_fail(m, err, gs, "esag_buffer_create (q/k tap)", NO_LAYER);
    m->tap_host = malloc(per * sizeof(float));
    if (!m->tap_host) {
        esag_buffer_destroy(m->rt, &m->tap);
        return esar_fail(err, ESAR_ERR_NOMEM, "model_gpu: q/k tap");
    }
    m->tap_fn = fn;
    m->tap_user = user;
    return ESAR_OK;
}

/* The tap's calls for a chunk that has run. */
static esar_status call_tap(esar_model_gpu *m, uint32_t T, esar_err *err)
{
    const esar_llama_config *c = &m->cfg;
    const uint32_t Hd = c->n_heads * c->head_dim, Gd = c->n_kv_heads * c->head_dim;
    for (uint32_t l = 0; l < c->n_layers; l++) {
        esag_status gs = esag_buffer_read(m->rt, &m->tap, (VkDeviceSize)l * m->chunk * (Hd + Gd) * sizeof(float),
                                          m->tap_host, (size_t)T * (Hd + Gd) * sizeof(float));
        if (gs != ESAG_OK)
            return rt_fail(m, err, gs, "esag_buffer_read (q/k tap)", l);
        m->tap_fn(m->tap_user, l, m->pos, T, m->tap_host, m->tap_host + (size_t)T * Hd);
    }
    return ESAR_OK;
}

const esa_cache *esar_model_gpu_cache(const esar_model_gpu *m)
{
    return m ? m->cache : NULL;
}

void esar_model_gpu_stats_get(const esar_model_gpu *m, esar_model_gpu_stats *s)
{
    if (!s)
        return;
    if (m)
        *s = m->stats;
    else
        memset(s, 0, sizeof *s);
}

/* Every layer back to len tokens. Used with len = pos after a failed chunk, whose attention
 * steps advanced the cache when they were recorded (esa_cmd_attend) but never ran. */
static esar_status truncate_all(esar_model_gpu *m, uint32_t len, esar_err *err)
{
    for (uint32_t l = 0; l < m->cfg.n_layers; l++) {
        esa_status es = esa_cache_truncate(m->cache, l, len);
        if (es != ESA_SUCCESS)
            return attention_fail(m, err, es, "esa_cache_truncate", l);
    }
    return ESAR_OK;
}

esar_status esar_model_gpu_truncate(esar_model_gpu *m, uint32_t len, esar_err *err)
{
    if (!m)
        return esar_fail(err, ESAR_ERR_ARG, "model_gpu: NULL argument");
    if (len > m->pos)
        return esar_fail(err, ESAR_ERR_ARG, "model_gpu: truncate to %u tokens, but the cache holds %u", len, m->pos);
    esar_status st = truncate_all(m, len, err);
    if (st == ESAR_OK)
        m->pos = len;
    return st;
}

esar_status esar_model_gpu_set_attention(esar_model_gpu *m, esa_attention a, esar_err *err)
{
    if (!m)
        return esar_fail(err, ESAR_ERR_ARG, "model_gpu: NULL argument");
    if (!valid_attention(a))
        return esar_fail(err, ESAR_ERR_ARG, "model_gpu: attention %d is not ESA, DENSE or WINDOW", (int)a);
    m->attention = a;
    return ESAR_OK;
}

/* ---- forward ----------------------------------------------------------------------------- */

/* One block over the T tokens in x (model_ref.h's recipe; runner/gpu/README.md). */
static esar_status record_layer(esar_model_gpu *m, VkCommandBuffer cb, uint32_t l, uint32_t T, esar_err *err)
{
    const esar_llama_config *c = &m->cfg;
    const gpu_layer *L = &m->layers[l];
    esag_rt *rt = m->rt;
    esag_kernels *k = m->k;
    const uint32_t E = c->n_embd, F = c->n_ff, Hd = c->n_heads * c->head_dim, Gd = c->n_kv_heads * c->head_dim;
    const VkDeviceAddress x = m->x.address, xn = m->xn.address, attn = m->attn.address, gu = m->gu.address;
    const VkDeviceAddress q = m->qkv.address, kk = q + sizeof(float) * T * Hd, v = kk + sizeof(float) * T * Gd;

    TRY(esag_cmd_rmsnorm(k, cb, x, 0, L->attn_norm, xn, 0, T, E, c->rms_eps), "esag_cmd_rmsnorm attn_norm", l);
    esag_cmd_barrier(rt, cb);
    if (T == 1 && L->wqkv.rows) { /* one token: q | k | v back to back is the packed layout too */
        TRY(esag_cmd_matmul(k, cb, &(esag_matmul_args){.w = L->wqkv, .x = xn, .y = q, .T = 1}),
            "esag_cmd_matmul attn_q|k|v", l);
    } else {
        TRY(esag_cmd_matmul(k, cb, &(esag_matmul_args){.w = L->wq, .x = xn, .y = q, .T = T}),
            "esag_cmd_matmul attn_q", l);
        TRY(esag_cmd_matmul(k, cb, &(esag_matmul_args){.w = L->wk, .x = xn, .y = kk, .T = T}),
            "esag_cmd_matmul attn_k", l);
        TRY(esag_cmd_matmul(k, cb, &(esag_matmul_args){.w = L->wv, .x = xn, .y = v, .T = T}),
            "esag_cmd_matmul attn_v", l);
    }
    esag_cmd_barrier(rt, cb); /* esa_cmd_attend reads q, k, v */
    if (m->tap_fn) /* q then k are back to back for T tokens */
        esag_cmd_copy(rt, cb, &m->qkv, 0, &m->tap, (VkDeviceSize)l * m->chunk * (Hd + Gd) * sizeof(float),
                      (VkDeviceSize)T * (Hd + Gd) * sizeof(float));
    esa_step_buffers sb = {.q = q, .k = kk, .v = v, .out = attn, .dtype = ESA_F32, .attention = m->attention};
    esa_status es = esa_cmd_attend(m->cache, cb, l, T, &sb, NULL);
    if (es != ESA_SUCCESS)
        return attention_fail(m, err, es, "esa_cmd_attend", l);
    esag_cmd_barrier(rt, cb); /* ... and wrote attn */
    TRY(esag_cmd_matmul(k, cb, &(esag_matmul_args){.w = L->wo, .x = attn, .y = x, .T = T, .accumulate = 1}),
        "esag_cmd_matmul attn_output", l);
    esag_cmd_barrier(rt, cb);

    TRY(esag_cmd_rmsnorm(k, cb, x, 0, L->ffn_norm, xn, 0, T, E, c->rms_eps), "esag_cmd_rmsnorm ffn_norm", l);
    esag_cmd_barrier(rt, cb);
    if (L->wgu.rows) {
        TRY(esag_cmd_matmul(k, cb, &(esag_matmul_args){.w = L->wgu, .x = xn, .y = gu, .ldy = 2 * F, .T = T}),
            "esag_cmd_matmul ffn_gate|up", l);
    } else { /* the same [T][2F] layout from two products */
        TRY(esag_cmd_matmul(k, cb, &(esag_matmul_args){.w = L->w_gate, .x = xn, .y = gu, .ldy = 2 * F, .T = T}),
            "esag_cmd_matmul ffn_gate", l);
        TRY(esag_cmd_matmul(k, cb, &(esag_matmul_args){.w = L->w_up, .x = xn, .y = gu + sizeof(float) * F,
                                                       .ldy = 2 * F, .T = T}),
            "esag_cmd_matmul ffn_up", l);
    }
    esag_cmd_barrier(rt, cb);
    TRY(esag_cmd_silu_mul(k, cb, gu, gu + sizeof(float) * F, 2 * F, m->h.address, 0, T, F), "esag_cmd_silu_mul", l);
    esag_cmd_barrier(rt, cb);
    TRY(esag_cmd_matmul(k, cb, &(esag_matmul_args){.w = L->w_down, .x = m->h.address, .y = x, .T = T, .accumulate = 1}),
        "esag_cmd_matmul ffn_down", l);
    esag_cmd_barrier(rt, cb);
    return ESAR_OK;
}

/* Embedding, every block, and the output head over the last `rows` tokens (0: none). */
static esar_status record_chunk(esar_model_gpu *m, VkCommandBuffer cb, uint32_t T, uint32_t rows, esar_err *err)
{
    const esar_llama_config *c = &m->cfg;
    esag_rt *rt = m->rt;
    esag_kernels *k = m->k;
    const uint32_t E = c->n_embd;
    if (m->timestamps) {
        TRY(esag_cmd_reset_timestamps(rt, cb, 2), "esag_cmd_reset_timestamps", NO_LAYER);
        esag_cmd_timestamp(rt, cb, 0);
    }
    TRY(esag_cmd_embed(k, cb, &m->embd, m->ids.address, T, m->x.address, 0), "esag_cmd_embed", NO_LAYER);
    esag_cmd_barrier(rt, cb);
    for (uint32_t l = 0; l < c->n_layers; l++) {
        esar_status st = record_layer(m, cb, l, T, err);
        if (st)
            return st;
    }
    if (rows) {
        VkDeviceAddress last = m->x.address + sizeof(float) * (uint64_t)(T - rows) * E;
        TRY(esag_cmd_rmsnorm(k, cb, last, 0, m->out_norm, m->xn.address, 0, rows, E, c->rms_eps),
            "esag_cmd_rmsnorm output_norm", NO_LAYER);
        esag_cmd_barrier(rt, cb);
        TRY(esag_cmd_matmul(k, cb, &(esag_matmul_args){.w = m->output, .x = m->xn.address, .y = m->logits.address,
                                                       .T = rows}),
            "esag_cmd_matmul output", NO_LAYER);
    }
    if (m->timestamps)
        esag_cmd_timestamp(rt, cb, 1);
    return ESAR_OK;
}

/* Runs one chunk of T tokens in one submission. *completed is set once the device has run it
 * (the cache then holds its tokens even if a later step, such as reading timestamps, fails). */
static esar_status run_chunk(esar_model_gpu *m, const int32_t *tokens, uint32_t T, uint32_t rows, double *ms,
                             int *completed, esar_err *err)
{
    esag_rt *rt = m->rt;
    *completed = 0;
    /* the ids are valid (checked by the caller), so int32 and uint32 hold the same bits */
    TRY(esag_buffer_write(rt, &m->ids, 0, tokens, sizeof(int32_t) * T), "esag_buffer_write token ids", NO_LAYER);
    /* the pages of every layer's step first: once recorded, a step must be submitted */
    esa_status es = esa_cache_reserve(m->cache, T);
    if (es != ESA_SUCCESS)
        return attention_fail(m, err, es, "esa_cache_reserve", NO_LAYER);
    VkCommandBuffer cb;
    TRY(esag_begin(rt, &cb), "esag_begin", NO_LAYER);
    esar_status st = record_chunk(m, cb, T, rows, err);
    if (st) {
        esag_abandon(rt);
        return st;
    }
    TRY(esag_submit_wait(rt), "esag_submit_wait", NO_LAYER);
    *completed = 1;
    if (m->timestamps) {
        double ns[2];
        TRY(esag_read_timestamps(rt, 2, ns), "esag_read_timestamps", NO_LAYER);
        *ms = (ns[1] - ns[0]) * 1e-6;
    }
    return ESAR_OK;
}

/* A logits buffer of at least rows rows. */
static esar_status logits_rows(esar_model_gpu *m, uint32_t rows, esar_err *err)
{
    if (rows <= m->logit_rows)
        return ESAR_OK;
    esag_buffer_destroy(m->rt, &m->logits);
    m->logit_rows = 0;
    esar_status st = device_buffer(m, sizeof(float) * (uint64_t)rows * m->cfg.n_vocab, &m->logits, "logits", err);
    if (st == ESAR_OK)
        m->logit_rows = rows;
    return st;
}

esar_status esar_model_gpu_forward(esar_model_gpu *m, const int32_t *tokens, uint32_t n, float *logits,
                                   int last_only, esar_progress_fn progress, void *user, esar_err *err)
{
    if (!m || (!tokens && n))
        return esar_fail(err, ESAR_ERR_ARG, "model_gpu: NULL argument");
    const uint32_t V = m->cfg.n_vocab, C = m->chunk;
    for (uint32_t t = 0; t < n; t++)
        if (tokens[t] < 0 || (uint32_t)tokens[t] >= V)
            return esar_fail(err, ESAR_ERR_ARG, "model_gpu: token %d at index %u is outside the vocabulary [0, %u)",
                             tokens[t], t, V);
    if (n > m->max_tokens - m->pos)
        return esar_fail(err, ESAR_ERR_LIMIT, "model_gpu: %u tokens after %u cached exceed max_tokens %u", n, m->pos,
                         m->max_tokens);
    if (n == 0)
        return ESAR_OK;
    esar_status st = logits ? logits_rows(m, last_only ? 1 : (n < C ? n : C), err) : ESAR_OK;
    for (uint32_t done = 0, T; !st && done < n; done += T) {
        T = n - done < C ? n - done : C;
        /* the output head runs only where rows are wanted: every chunk, or the last */
        uint32_t rows = !logits ? 0 : !last_only ? T : done + T == n ? 1 : 0;
        double ms = 0.0;
        int completed;
        st = run_chunk(m, tokens + done, T, rows, &ms, &completed, err);
        if (completed && !st && m->tap_fn)
            st = call_tap(m, T, err); /* at m->pos, the chunk's first position */
        if (completed) {
            m->pos += T;
            if (n > 1)
                m->stats.prefill_ms += ms, m->stats.prefill_tokens += T;
            else
                m->stats.decode_ms += ms, m->stats.decode_tokens += T;
        }
        if (!st && rows) {
            esag_status s = esag_buffer_read(m->rt, &m->logits, 0, last_only ? logits : logits + (size_t)done * V,
                                             sizeof(float) * (size_t)rows * V);
            if (s != ESAG_OK)
                st = rt_fail(m, err, s, "esag_buffer_read logits", NO_LAYER);
        }
        if (!st && progress)
            progress(user, done + T, n);
    }
    if (st) {
        /* keep the cache to the chunks that ran, so that pos and every layer agree */
        esar_err lost;
        if (truncate_all(m, m->pos, &lost))
            esar_err_suffix(err, "; rolling back: %s", lost.msg);
    }
    return st;
}
