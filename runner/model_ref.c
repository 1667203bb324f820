/* model_ref.c - the plain-loop Llama forward pass (model_ref.h states the math). Buffers carry
 * their shapes as [dim][dim] comments; t indexes the n tokens of one call, H and G are query and
 * KV heads, d the head dimension, E the embedding length, F the feed-forward length, V the
 * vocabulary, P the cache capacity (max_tokens). */
#include "model_ref.h"

#include "quant.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct layer {
    float *attn_norm;                   /* [E] */
    float *ffn_norm;                    /* [E] */
    const esar_gguf_tensor *wq;         /* [H*d][E]: rows are outputs */
    const esar_gguf_tensor *wk, *wv;    /* [G*d][E] */
    const esar_gguf_tensor *wo;         /* [E][H*d] */
    const esar_gguf_tensor *w_gate;     /* [F][E] */
    const esar_gguf_tensor *w_up;       /* [F][E] */
    const esar_gguf_tensor *w_down;     /* [E][F] */
} layer;

struct esar_model_ref {
    esar_llama_config cfg;
    const esar_gguf_tensor *tok_embd; /* [V][E] */
    const esar_gguf_tensor *output;   /* [V][E], tok_embd when tied */
    float *out_norm;                  /* [E] */
    layer *layers;                    /* [n_layers] */
    uint32_t max_tokens, pos;
    int kv_f16;
    float *k_cache;                   /* [n_layers][P][G*d], K after RoPE */
    float *v_cache;                   /* [n_layers][P][G*d] */
};

/* ---- config ------------------------------------------------------------------------------- */

static esar_status arch_u32(const esar_gguf *g, const char *arch, const char *name, int required, uint32_t dflt,
                            uint32_t *out, esar_err *err)
{
    char key[160];
    snprintf(key, sizeof key, "%s.%s", arch, name);
    if (!required && !esar_gguf_find(g, key)) {
        *out = dflt;
        return ESAR_OK;
    }
    return esar_gguf_get_u32(g, key, out, err);
}

static esar_status arch_f32(const esar_gguf *g, const char *arch, const char *name, int required, float dflt,
                            float *out, esar_err *err)
{
    char key[160];
    snprintf(key, sizeof key, "%s.%s", arch, name);
    if (!required && !esar_gguf_find(g, key)) {
        *out = dflt;
        return ESAR_OK;
    }
    return esar_gguf_get_f32(g, key, out, err);
}

esar_status esar_llama_config_read(const esar_gguf *g, esar_llama_config *cfg, esar_err *err)
{
    if (!g || !cfg)
        return esar_fail(err, ESAR_ERR_ARG, "model: NULL argument");
    memset(cfg, 0, sizeof *cfg);
    esar_gguf_str a;
    esar_status st = esar_gguf_get_str(g, "general.architecture", &a, err);
    if (st)
        return st;
    if (!esar_gguf_str_eq(a, "llama"))
        return esar_fail(err, ESAR_ERR_UNSUPPORTED, "model: architecture '%.*s' is not supported (only llama)",
                         (int)(a.len > 64 ? 64 : a.len), a.ptr);
    const char *arch = "llama";
    uint32_t key_len = 0, val_len = 0;
    if ((st = arch_u32(g, arch, "block_count", 1, 0, &cfg->n_layers, err)) ||
        (st = arch_u32(g, arch, "embedding_length", 1, 0, &cfg->n_embd, err)) ||
        (st = arch_u32(g, arch, "feed_forward_length", 1, 0, &cfg->n_ff, err)) ||
        (st = arch_u32(g, arch, "attention.head_count", 1, 0, &cfg->n_heads, err)) ||
        (st = arch_u32(g, arch, "attention.head_count_kv", 0, cfg->n_heads, &cfg->n_kv_heads, err)) ||
        (st = arch_u32(g, arch, "context_length", 1, 0, &cfg->n_ctx_train, err)) ||
        (st = arch_f32(g, arch, "rope.freq_base", 0, 10000.0f, &cfg->rope_theta, err)) ||
        (st = arch_f32(g, arch, "attention.layer_norm_rms_epsilon", 1, 0.0f, &cfg->rms_eps, err)) ||
        (st = arch_u32(g, arch, "attention.key_length", 0, 0, &key_len, err)) ||
        (st = arch_u32(g, arch, "attention.value_length", 0, 0, &val_len, err)))
        return st;
    if (!cfg->n_layers || !cfg->n_embd || !cfg->n_ff || !cfg->n_heads || !cfg->n_kv_heads || !cfg->n_ctx_train)
        return esar_fail(err, ESAR_ERR_FORMAT, "model: a zero among block_count %u, embedding_length %u, "
                         "feed_forward_length %u, head_count %u, head_count_kv %u, context_length %u",
                         cfg->n_layers, cfg->n_embd, cfg->n_ff, cfg->n_heads, cfg->n_kv_heads, cfg->n_ctx_train);
    if (cfg->n_layers > 4096 || cfg->n_embd > (1u << 16) || cfg->n_ff > (1u << 18) || cfg->n_heads > 1024)
        return esar_fail(err, ESAR_ERR_FORMAT, "model: implausible sizes (%u blocks, embedding %u, ffn %u, %u heads)",
                         cfg->n_layers, cfg->n_embd, cfg->n_ff, cfg->n_heads);
    if (cfg->n_heads % cfg->n_kv_heads)
        return esar_fail(err, ESAR_ERR_FORMAT, "model: head_count %u is not a multiple of head_count_kv %u",
                         cfg->n_heads, cfg->n_kv_heads);
    cfg->head_dim = key_len ? key_len : cfg->n_embd / cfg->n_heads;
    if (!key_len && cfg->n_embd % cfg->n_heads)
        return esar_fail(err, ESAR_ERR_FORMAT, "model: embedding_length %u is not a multiple of head_count %u",
                         cfg->n_embd, cfg->n_heads);
    if (val_len && val_len != cfg->head_dim)
        return esar_fail(err, ESAR_ERR_UNSUPPORTED, "model: key_length %u != value_length %u", cfg->head_dim, val_len);
    if ((st = arch_u32(g, arch, "rope.dimension_count", 0, cfg->head_dim, &cfg->rope_dims, err)))
        return st;
    if (cfg->head_dim == 0 || cfg->head_dim > 1024 || cfg->rope_dims > cfg->head_dim || cfg->rope_dims % 2)
        return esar_fail(err, ESAR_ERR_FORMAT, "model: head dimension %u with rope.dimension_count %u", cfg->head_dim,
                         cfg->rope_dims);
    if (!(cfg->rope_theta > 0.0f) || !isfinite(cfg->rope_theta) || !(cfg->rms_eps > 0.0f) || !isfinite(cfg->rms_eps))
        return esar_fail(err, ESAR_ERR_FORMAT, "model: rope.freq_base %g or layer_norm_rms_epsilon %g out of range",
                         cfg->rope_theta, cfg->rms_eps);
    esar_gguf_str scaling;
    if (esar_gguf_find(g, "llama.rope.scaling.type")) {
        if ((st = esar_gguf_get_str(g, "llama.rope.scaling.type", &scaling, err)))
            return st;
        if (!esar_gguf_str_eq(scaling, "none"))
            return esar_fail(err, ESAR_ERR_UNSUPPORTED, "model: RoPE scaling '%.*s' is not supported",
                             (int)(scaling.len > 32 ? 32 : scaling.len), scaling.ptr);
    }
    const esar_gguf_tensor *emb = esar_gguf_find_tensor(g, "token_embd.weight");
    if (!emb)
        return esar_fail(err, ESAR_ERR_NOT_FOUND, "model: no tensor 'token_embd.weight'");
    if (emb->n_dims != 2 || emb->ne[0] != cfg->n_embd || emb->ne[1] == 0 || emb->ne[1] > INT32_MAX)
        return esar_fail(err, ESAR_ERR_TYPE, "model: token_embd.weight has shape [%llu, %llu], wanted [%u, n_vocab]",
                         (unsigned long long)emb->ne[0], (unsigned long long)emb->ne[1], cfg->n_embd);
    cfg->n_vocab = (uint32_t)emb->ne[1];
    cfg->tied_output = esar_gguf_find_tensor(g, "output.weight") == NULL;
    return ESAR_OK;
}

/* ---- create ------------------------------------------------------------------------------- */

/* The tensor name, checked to be [ne0, ne1] (ne1 = 1: a vector) of a type with a dequantizer. */
static esar_status weight(const esar_gguf *g, const char *name, uint64_t ne0, uint64_t ne1,
                          const esar_gguf_tensor **out, esar_err *err)
{
    uint64_t ne[2] = {ne0, ne1};
    esar_status st = esar_gguf_get_tensor(g, name, ne1 == 1 ? 1 : 2, ne, out, err);
    if (st)
        return st;
    const esar_type_info *ti = esar_type_info_of((*out)->type);
    if (!ti->dequant)
        return esar_fail(err, ESAR_ERR_UNSUPPORTED, "model: tensor '%s' has type %s, which has no CPU dequantizer",
                         name, ti->name);
    return ESAR_OK;
}

static esar_status vector(const esar_gguf *g, const char *name, uint32_t n, float **out, esar_err *err)
{
    const esar_gguf_tensor *t;
    esar_status st = weight(g, name, n, 1, &t, err);
    if (st)
        return st;
    *out = malloc(sizeof(float) * n);
    if (!*out)
        return esar_fail(err, ESAR_ERR_NOMEM, "model: out of memory");
    return esar_gguf_tensor_row(t, 0, *out, err);
}

static esar_status create(const esar_gguf *g, esar_model_ref *m, esar_err *err)
{
    esar_llama_config *c = &m->cfg;
    esar_status st = esar_llama_config_read(g, c, err);
    if (st)
        return st;
    if (m->max_tokens > 4 * (uint64_t)c->n_ctx_train)
        return esar_fail(err, ESAR_ERR_ARG, "model: max_tokens %u is over 4 x context_length (%u)", m->max_tokens,
                         c->n_ctx_train);
    uint32_t E = c->n_embd, F = c->n_ff, Hd = c->n_heads * c->head_dim, Gd = c->n_kv_heads * c->head_dim;
    if ((st = weight(g, "token_embd.weight", E, c->n_vocab, &m->tok_embd, err)) ||
        (st = vector(g, "output_norm.weight", E, &m->out_norm, err)))
        return st;
    if (c->tied_output)
        m->output = m->tok_embd;
    else if ((st = weight(g, "output.weight", E, c->n_vocab, &m->output, err)))
        return st;
    m->layers = calloc(c->n_layers, sizeof *m->layers);
    if (!m->layers)
        return esar_fail(err, ESAR_ERR_NOMEM, "model: out of memory");
    for (uint32_t l = 0; l < c->n_layers; l++) {
        layer *L = &m->layers[l];
        char n[10][64];
        static const char *const suffix[9] = {"attn_norm", "ffn_norm", "attn_q", "attn_k", "attn_v", "attn_output",
                                              "ffn_gate", "ffn_up", "ffn_down"};
        for (int i = 0; i < 9; i++)
            snprintf(n[i], sizeof n[i], "blk.%u.%s.weight", l, suffix[i]);
        if ((st = vector(g, n[0], E, &L->attn_norm, err)) || (st = vector(g, n[1], E, &L->ffn_norm, err)) ||
            (st = weight(g, n[2], E, Hd, &L->wq, err)) || (st = weight(g, n[3], E, Gd, &L->wk, err)) ||
            (st = weight(g, n[4], E, Gd, &L->wv, err)) || (st = weight(g, n[5], Hd, E, &L->wo, err)) ||
            (st = weight(g, n[6], E, F, &L->w_gate, err)) || (st = weight(g, n[7], E, F, &L->w_up, err)) ||
            (st = weight(g, n[8], F, E, &L->w_down, err)))
            return st;
    }
    if ((uint64_t)m->max_tokens * Gd > SIZE_MAX / sizeof(float) / c->n_layers)
        return esar_fail(err, ESAR_ERR_NOMEM, "model: a KV cache of %u tokens does not fit the address space",
                         m->max_tokens);
    size_t per = (size_t)c->n_layers * m->max_tokens * Gd;
    m->k_cache = malloc(sizeof(float) * per);
    m->v_cache = malloc(sizeof(float) * per);
    if (!m->k_cache || !m->v_cache)
        return esar_fail(err, ESAR_ERR_NOMEM, "model: out of memory for a KV cache of %u tokens", m->max_tokens);
    return ESAR_OK;
}

esar_status esar_model_ref_create(const esar_gguf *g, const esar_model_ref_desc *desc, esar_model_ref **out,
                                  esar_err *err)
{
    if (!g || !out)
        return esar_fail(err, ESAR_ERR_ARG, "model: NULL argument");
    *out = NULL;
    esar_model_ref *m = calloc(1, sizeof *m);
    if (!m)
        return esar_fail(err, ESAR_ERR_NOMEM, "model: out of memory");
    m->max_tokens = desc && desc->max_tokens ? desc->max_tokens : 512;
    m->kv_f16 = desc ? desc->kv_f16 != 0 : 0;
    esar_status st = create(g, m, err);
    if (st) {
        esar_model_ref_destroy(m);
        return st;
    }
    *out = m;
    return ESAR_OK;
}

void esar_model_ref_destroy(esar_model_ref *m)
{
    if (!m)
        return;
    for (uint32_t l = 0; m->layers && l < m->cfg.n_layers; l++) {
        free(m->layers[l].attn_norm);
        free(m->layers[l].ffn_norm);
    }
    free(m->layers);
    free(m->out_norm);
    free(m->k_cache);
    free(m->v_cache);
    free(m);
}

const esar_llama_config *esar_model_ref_config(const esar_model_ref *m) { return m ? &m->cfg : NULL; }
uint32_t esar_model_ref_pos(const esar_model_ref *m) { return m ? m->pos : 0; }
void esar_model_ref_reset(esar_model_ref *m)
{
    if (m)
        m->pos = 0;
}

/* ---- kernels ------------------------------------------------------------------------------ */

/* sum_i a[i] b[i] in double; four partial sums only to let the additions overlap. */
static double dot(const float *a, const float *b, uint64_t n)
{
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    uint64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += (double)a[i] * b[i];
        s1 += (double)a[i + 1] * b[i + 1];
        s2 += (double)a[i + 2] * b[i + 2];
        s3 += (double)a[i + 3] * b[i + 3];
    }
    for (; i < n; i++)
        s0 += (double)a[i] * b[i];
    return (s0 + s1) + (s2 + s3);
}

/* out[t][r] = sum_i W[r][i] x[t][i] for t < n: W [rows][in] dequantized one row at a time into
 * row[in], so each weight row is read once per call whatever n is. */
static esar_status matmul(float *out, const esar_gguf_tensor *W, const float *x, uint32_t n, float *row,
                          esar_err *err)
{
    uint64_t rows = W->n_rows, in = W->ne[0];
    for (uint64_t r = 0; r < rows; r++) {
        esar_status st = esar_gguf_tensor_row(W, r, row, err);
        if (st)
            return st;
        for (uint32_t t = 0; t < n; t++)
            out[(size_t)t * rows + r] = (float)dot(row, x + (size_t)t * in, in);
    }
    return ESAR_OK;
}

/* out[E] = x[E] / sqrt(mean(x^2) + eps) * w[E] */
static void rmsnorm(float *out, const float *x, const float *w, uint32_t E, float eps)
{
    double ss = 0.0;
    for (uint32_t i = 0; i < E; i++)
        ss += (double)x[i] * x[i];
    double s = 1.0 / sqrt(ss / E + eps);
    for (uint32_t i = 0; i < E; i++)
        out[i] = (float)(x[i] * s) * w[i];
}

/* Rotates each of n_heads heads of v[n_heads][d] for position pos: pairs (2i, 2i+1). */
static void rope(float *v, uint32_t n_heads, uint32_t d, uint32_t rope_dims, float theta, uint32_t pos)
{
    for (uint32_t i = 0; 2 * i < rope_dims; i++) {
        double ang = pos * pow(theta, -2.0 * i / rope_dims), c = cos(ang), s = sin(ang);
        for (uint32_t h = 0; h < n_heads; h++) {
            float *p = v + (size_t)h * d + 2 * i;
            double x0 = p[0], x1 = p[1];
            p[0] = (float)(x0 * c - x1 * s);
            p[1] = (float)(x0 * s + x1 * c);
        }
    }
}

static float f16_round(float x) { return esar_f16_to_f32(esar_f32_to_f16(x)); }

/* ---- forward ------------------------------------------------------------------------------ */

esar_status esar_model_ref_forward(esar_model_ref *m, const int32_t *tokens, uint32_t n, float *logits,
                                   int last_only, esar_err *err)
{
    if (!m || (!tokens && n))
        return esar_fail(err, ESAR_ERR_ARG, "model: NULL argument");
    const esar_llama_config *c = &m->cfg;
    for (uint32_t t = 0; t < n; t++)
        if (tokens[t] < 0 || (uint32_t)tokens[t] >= c->n_vocab)
            return esar_fail(err, ESAR_ERR_ARG, "model: token %d at index %u is outside the vocabulary [0, %u)",
                             tokens[t], t, c->n_vocab);
    if (n > m->max_tokens - m->pos)
        return esar_fail(err, ESAR_ERR_LIMIT, "model: %u tokens after %u cached exceed max_tokens %u", n, m->pos,
                         m->max_tokens);
    if (n == 0)
        return ESAR_OK;
    const uint32_t E = c->n_embd, F = c->n_ff, H = c->n_heads, G = c->n_kv_heads, d = c->head_dim;
    const uint32_t Hd = H * d, Gd = G * d, P = m->max_tokens, p0 = m->pos;
    const uint32_t rowmax = E > F ? (E > Hd ? E : Hd) : (F > Hd ? F : Hd);
    const double scale = 1.0 / sqrt((double)d);

    float *x = malloc(sizeof(float) * n * E);       /* [n][E] the residual stream */
    float *xb = malloc(sizeof(float) * n * E);      /* [n][E] normed input of a sublayer */
    float *xb2 = malloc(sizeof(float) * n * E);     /* [n][E] a sublayer's output */
    float *q = malloc(sizeof(float) * n * Hd);      /* [n][H][d] */
    float *k = malloc(sizeof(float) * n * Gd);      /* [n][G][d] */
    float *v = malloc(sizeof(float) * n * Gd);      /* [n][G][d] */
    float *att = malloc(sizeof(float) * n * Hd);    /* [n][H][d] attention output */
    float *hb = malloc(sizeof(float) * n * F);      /* [n][F] gate, then silu(gate) * up */
    float *hb2 = malloc(sizeof(float) * n * F);     /* [n][F] up */
    double *score = malloc(sizeof(double) * (p0 + n)); /* [p0 + n] one head's scores */
    float *row = malloc(sizeof(float) * rowmax);    /* [max(E, F, H*d)] one dequantized weight row */
    esar_status st = ESAR_OK;
    if (!x || !xb || !xb2 || !q || !k || !v || !att || !hb || !hb2 || !score || !row) {
        st = esar_fail(err, ESAR_ERR_NOMEM, "model: out of memory for %u tokens", n);
        goto done;
    }

    for (uint32_t t = 0; t < n; t++)
        if ((st = esar_gguf_tensor_row(m->tok_embd, (uint64_t)tokens[t], x + (size_t)t * E, err)))
            goto done;

    for (uint32_t l = 0; l < c->n_layers; l++) {
        const layer *L = &m->layers[l];
        float *kc = m->k_cache + (size_t)l * P * Gd; /* [P][G*d] */
        float *vc = m->v_cache + (size_t)l * P * Gd; /* [P][G*d] */

        /* attention */
        for (uint32_t t = 0; t < n; t++)
            rmsnorm(xb + (size_t)t * E, x + (size_t)t * E, L->attn_norm, E, c->rms_eps);
        if ((st = matmul(q, L->wq, xb, n, row, err)) || (st = matmul(k, L->wk, xb, n, row, err)) ||
            (st = matmul(v, L->wv, xb, n, row, err)))
            goto done;
        for (uint32_t t = 0; t < n; t++) {
            rope(q + (size_t)t * Hd, H, d, c->rope_dims, c->rope_theta, p0 + t);
            rope(k + (size_t)t * Gd, G, d, c->rope_dims, c->rope_theta, p0 + t);
            for (uint32_t i = 0; i < Gd; i++) {
                float kv = k[(size_t)t * Gd + i], vv = v[(size_t)t * Gd + i];
                kc[(size_t)(p0 + t) * Gd + i] = m->kv_f16 ? f16_round(kv) : kv;
                vc[(size_t)(p0 + t) * Gd + i] = m->kv_f16 ? f16_round(vv) : vv;
            }
        }
        for (uint32_t t = 0; t < n; t++) {
            uint32_t last = p0 + t; /* causal: positions 0..last */
            for (uint32_t h = 0; h < H; h++) {
                uint32_t g = h / (H / G);
                const float *qh = q + (size_t)t * Hd + (size_t)h * d;
                double mx = -INFINITY, sum = 0.0;
                for (uint32_t j = 0; j <= last; j++) {
                    score[j] = dot(qh, kc + (size_t)j * Gd + (size_t)g * d, d) * scale;
                    mx = score[j] > mx ? score[j] : mx;
                }
                for (uint32_t j = 0; j <= last; j++) {
                    score[j] = exp(score[j] - mx);
                    sum += score[j];
                }
                float *oh = att + (size_t)t * Hd + (size_t)h * d;
                for (uint32_t i = 0; i < d; i++) {
                    double o = 0.0;
                    for (uint32_t j = 0; j <= last; j++)
                        o += score[j] * vc[(size_t)j * Gd + (size_t)g * d + i];
                    oh[i] = (float)(o / sum);
                }
            }
        }
        if ((st = matmul(xb2, L->wo, att, n, row, err)))
            goto done;
        for (size_t i = 0; i < (size_t)n * E; i++)
            x[i] += xb2[i];

        /* feed-forward */
        for (uint32_t t = 0; t < n; t++)
            rmsnorm(xb + (size_t)t * E, x + (size_t)t * E, L->ffn_norm, E, c->rms_eps);
        if ((st = matmul(hb, L->w_gate, xb, n, row, err)) || (st = matmul(hb2, L->w_up, xb, n, row, err)))
            goto done;
        for (size_t i = 0; i < (size_t)n * F; i++) {
            double gte = hb[i];
            hb[i] = (float)(gte / (1.0 + exp(-gte)) * hb2[i]);
        }
        if ((st = matmul(xb2, L->w_down, hb, n, row, err)))
            goto done;
        for (size_t i = 0; i < (size_t)n * E; i++)
            x[i] += xb2[i];
    }

    if (logits) {
        uint32_t first = last_only ? n - 1 : 0;
        for (uint32_t t = first; t < n; t++)
            rmsnorm(xb + (size_t)(t - first) * E, x + (size_t)t * E, m->out_norm, E, c->rms_eps);
        if ((st = matmul(logits, m->output, xb, n - first, row, err)))
            goto done;
    }
    m->pos = p0 + n;

done:
    free(x);
    free(xb);
    free(xb2);
    free(q);
    free(k);
    free(v);
    free(att);
    free(hb);
    free(hb2);
    free(score);
    free(row);
    return st;
}
