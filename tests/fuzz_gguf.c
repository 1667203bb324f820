/* fuzz_gguf.c - the fuzz entry for the GGUF reader: open any bytes, and when they pass, read
 * every value, array element, tensor and row through the public API, then build the tokenizer
 * and chat template from it when they are there and use them, and the reference model when the
 * file holds a small enough one (one forward pass of two tokens). Built for libFuzzer with
 * ESA_FUZZ=ON under clang, and driven on deterministic mutations by test_fuzz_gguf.c. */
#include "chat.h"
#include "gguf.h"
#include "model_ref.h"
#include "tokenizer.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Visits a value and its elements; budget bounds the work on files with huge arrays. */
static void walk(const esar_gguf_value *v, uint64_t *budget, volatile double *sink)
{
    esar_gguf_value e;
    esar_err err;
    switch (v->type) {
    case ESAR_GGUF_STRING:
        if (v->v.str.len)
            *sink += (unsigned char)v->v.str.ptr[v->v.str.len - 1];
        break;
    case ESAR_GGUF_ARRAY:
        for (uint64_t i = 0; i < v->v.arr.count && *budget; i++, (*budget)--) {
            if (esar_gguf_array_get(v, i, &e, &err) != ESAR_OK)
                abort(); /* in range by construction: a failure is a reader bug */
            walk(&e, budget, sink);
        }
        break;
    default:
        *sink += (double)v->v.u;
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    esar_err err;
    err.msg[0] = 0;
    esar_gguf *g = NULL;
    if (esar_gguf_open_memory(data, size, &g, &err) != ESAR_OK) {
        if (g || !err.msg[0] || !memchr(err.msg, 0, sizeof err.msg))
            abort(); /* a failure must clear out and say why */
        return 0;
    }
    volatile double sink = 0;
    uint64_t budget = 1u << 16;
    for (uint64_t i = 0; i < esar_gguf_kv_count(g); i++) {
        const char *key = NULL;
        const esar_gguf_value *v = esar_gguf_kv_at(g, i, &key);
        if (!v || !key || esar_gguf_find(g, key) != v)
            abort();
        walk(v, &budget, &sink);
        uint32_t u;
        int64_t i64;
        float f;
        int b;
        esar_gguf_str s;
        const esar_gguf_value *arr;
        (void)esar_gguf_get_u32(g, key, &u, &err);
        (void)esar_gguf_get_i64(g, key, &i64, &err);
        (void)esar_gguf_get_f32(g, key, &f, &err);
        (void)esar_gguf_get_bool(g, key, &b, &err);
        (void)esar_gguf_get_str(g, key, &s, &err);
        (void)esar_gguf_get_array(g, key, ESAR_GGUF_TYPE_COUNT, &arr, &err);
    }
    uint64_t elems = 1u << 20;
    float *row = NULL;
    for (uint64_t i = 0; i < esar_gguf_tensor_count(g); i++) {
        const esar_gguf_tensor *t = esar_gguf_tensor_at(g, i);
        if (!t || esar_gguf_find_tensor(g, t->name) != t)
            abort();
        if (t->n_bytes) /* touch the first and last byte: both must be inside the input */
            sink += t->data[0] + t->data[t->n_bytes - 1];
        for (uint64_t r = 0; r < t->n_rows && t->ne[0] <= elems; r++) {
            float *nr = realloc(row, sizeof(float) * (size_t)(t->ne[0] ? t->ne[0] : 1));
            if (!nr)
                break;
            row = nr;
            (void)esar_gguf_tensor_row(t, r, row, &err);
            elems -= t->ne[0];
            if (t->ne[0] == 0)
                break;
        }
    }
    free(row);

    esar_tokenizer *t = NULL;
    if (esar_tokenizer_create(g, &t, &err) == ESAR_OK) {
        static const char text[] = "Hello <|im_start|>wor\xC3\xA9ld 123  \n\xFF'll <user>\xE2\x82";
        int32_t toks[256];
        char back[512];
        size_t n = 0, m = 0;
        for (uint32_t f = 0; f < 8; f++)
            if (esar_tokenize(t, text, sizeof text - 1, f, toks, 256, &n, &err) == ESAR_OK)
                (void)esar_detokenize(t, toks, n, f & 1, back, sizeof back, &m, &err);
        for (int32_t id = -1; id <= (int32_t)esar_tokenizer_n_vocab(t) && id < 4096; id++) {
            const char *p;
            size_t l;
            if (esar_token_piece(t, id, 1, &p, &l, &err) == ESAR_OK && l)
                sink += (unsigned char)p[l - 1];
        }
        esar_chat *c = NULL;
        if (esar_chat_create_from_gguf(g, &c, &err) == ESAR_OK) {
            esar_chat_msg msgs[2] = {{"user", "hi <|im_end|>"}, {"assistant", "yo"}};
            (void)esar_chat_tokenize(c, t, msgs, 2, 1, toks, 256, &n, &err);
            (void)esar_chat_format(c, msgs, 2, 1, back, sizeof back, &m, &err);
        }
        esar_chat_destroy(c);
    }
    esar_tokenizer_destroy(t);

    esar_llama_config cfg;
    if (esar_llama_config_read(g, &cfg, &err) == ESAR_OK &&
        (uint64_t)cfg.n_layers * cfg.n_embd * (cfg.n_ff + cfg.n_embd) < (1u << 22) &&
        (uint64_t)cfg.n_vocab * cfg.n_embd < (1u << 22)) {
        esar_model_ref_desc desc = {.max_tokens = 4};
        esar_model_ref *m = NULL;
        if (esar_model_ref_create(g, &desc, &m, &err) == ESAR_OK) {
            int32_t toks[2] = {0, (int32_t)(cfg.n_vocab - 1)};
            float *logits = malloc(sizeof(float) * 2 * cfg.n_vocab);
            if (logits)
                (void)esar_model_ref_forward(m, toks, 2, logits, 0, &err);
            free(logits);
        }
        esar_model_ref_destroy(m);
    }
    esar_gguf_close(g);
    (void)sink;
    return 0;
}
