/* gguf_build.h - writes small GGUF files in memory for the tests and the fuzz seed, including
 * deliberately broken ones: nothing here checks what it writes. */
#ifndef ESA_GGUF_BUILD_H
#define ESA_GGUF_BUILD_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct gb {
    uint8_t *p;
    size_t n, cap;
    int oom;
} gb;

static inline void gb_bytes(gb *g, const void *src, size_t n)
{
    if (g->oom)
        return;
    if (g->n + n > g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 256;
        while (cap < g->n + n)
            cap *= 2;
        uint8_t *p = realloc(g->p, cap);
        if (!p) {
            g->oom = 1;
            return;
        }
        g->p = p;
        g->cap = cap;
    }
    if (n)
        memcpy(g->p + g->n, src, n);
    g->n += n;
}
static inline void gb_le(gb *g, uint64_t v, int n)
{
    uint8_t b[8];
    for (int i = 0; i < n; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    gb_bytes(g, b, (size_t)n);
}
static inline void gb_u8(gb *g, uint8_t v) { gb_le(g, v, 1); }
static inline void gb_u16(gb *g, uint16_t v) { gb_le(g, v, 2); }
static inline void gb_u32(gb *g, uint32_t v) { gb_le(g, v, 4); }
static inline void gb_u64(gb *g, uint64_t v) { gb_le(g, v, 8); }
static inline void gb_f32(gb *g, float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    gb_u32(g, u);
}
static inline void gb_f64(gb *g, double f)
{
    uint64_t u;
    memcpy(&u, &f, 8);
    gb_u64(g, u);
}
static inline void gb_strn(gb *g, const char *s, size_t n)
{
    gb_u64(g, n);
    gb_bytes(g, s, n);
}
static inline void gb_str(gb *g, const char *s) { gb_strn(g, s, strlen(s)); }
static inline void gb_header(gb *g, uint32_t version, uint64_t n_tensors, uint64_t n_kv)
{
    gb_bytes(g, "GGUF", 4);
    gb_u32(g, version);
    gb_u64(g, n_tensors);
    gb_u64(g, n_kv);
}
/* key + type; the caller writes the value */
static inline void gb_key(gb *g, const char *key, uint32_t type)
{
    gb_str(g, key);
    gb_u32(g, type);
}
static inline void gb_kv_u32(gb *g, const char *key, uint32_t v)
{
    gb_key(g, key, 4);
    gb_u32(g, v);
}
static inline void gb_kv_f32(gb *g, const char *key, float v)
{
    gb_key(g, key, 6);
    gb_f32(g, v);
}
static inline void gb_kv_bool(gb *g, const char *key, int v)
{
    gb_key(g, key, 7);
    gb_u8(g, (uint8_t)v);
}
static inline void gb_kv_str(gb *g, const char *key, const char *v)
{
    gb_key(g, key, 8);
    gb_str(g, v);
}
static inline void gb_kv_arr_str(gb *g, const char *key, size_t n, const char *const *v)
{
    gb_key(g, key, 9);
    gb_u32(g, 8);
    gb_u64(g, n);
    for (size_t i = 0; i < n; i++)
        gb_str(g, v[i]);
}
static inline void gb_kv_arr_i32(gb *g, const char *key, size_t n, const int32_t *v)
{
    gb_key(g, key, 9);
    gb_u32(g, 5);
    gb_u64(g, n);
    for (size_t i = 0; i < n; i++)
        gb_u32(g, (uint32_t)v[i]);
}
static inline void gb_tensor_info(gb *g, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type,
                                  uint64_t offset)
{
    gb_str(g, name);
    gb_u32(g, n_dims);
    for (uint32_t d = 0; d < n_dims; d++)
        gb_u64(g, ne[d]);
    gb_u32(g, type);
    gb_u64(g, offset);
}
static inline void gb_pad(gb *g, size_t align)
{
    while (g->n % align)
        gb_u8(g, 0);
}

/* ---- the sample: every value type, nested arrays, one tensor of each type ----------------- */

#define SAMPLE_ALIGN 64
#define SAMPLE_QH 0xA5A5F00Fu
enum { SAMPLE_N_TENSORS = 9, SAMPLE_N_KV = 20 };
typedef struct sample_tensor {
    const char *name;
    uint32_t type, n_dims;
    uint64_t ne[2];
    uint64_t bytes;
} sample_tensor;
static const sample_tensor k_sample_tensors[SAMPLE_N_TENSORS] = {
    {"t.f32", 0, 2, {8, 2}, 64},  {"t.f16", 1, 1, {4, 1}, 8},    {"t.bf16", 30, 1, {2, 1}, 4},
    {"t.q4_0", 2, 2, {32, 2}, 36}, {"t.q4_1", 3, 1, {64, 1}, 40}, {"t.q5_0", 6, 1, {32, 1}, 22},
    {"t.q5_1", 7, 1, {32, 1}, 24}, {"t.q8_0", 8, 1, {32, 1}, 34}, {"t.q6_k", 14, 1, {256, 1}, 210},
};

/* IEEE half of a few exact values */
static inline uint16_t gb_half(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if (!(u & 0x7fffffffu))
        return (uint16_t)(u >> 16);
    return (uint16_t)(((u >> 16) & 0x8000) | ((((u >> 23) & 0xff) - 112) << 10) | ((u >> 13) & 0x3ff));
}

/* The tensor data of the sample, in file order; bytes as the quant formats define them. */
static inline void gb_sample_data(gb *g, int which)
{
    switch (which) {
    case 0:
        for (int i = 0; i < 16; i++)
            gb_f32(g, (float)i * 0.5f - 3.0f);
        break;
    case 1:
        gb_u16(g, gb_half(1.0f)); gb_u16(g, gb_half(-2.0f)); gb_u16(g, gb_half(0.5f)); gb_u16(g, 0x7bff);
        break;
    case 2:
        gb_u16(g, 0x3fc0); gb_u16(g, 0xc040); /* 1.5, -3 */
        break;
    case 3: case 4:
        for (int b = 0; b < 2; b++) {
            gb_u16(g, gb_half((which == 3 ? 0.5f : 0.25f) * (float)(b + 1)));
            if (which == 4)
                gb_u16(g, gb_half(-1.5f));
            for (int j = 0; j < 16; j++)
                gb_u8(g, (uint8_t)(j | ((15 - j) << 4)));
        }
        break;
    case 5: case 6:
        gb_u16(g, gb_half(which == 5 ? 0.125f : 0.25f));
        if (which == 6)
            gb_u16(g, gb_half(0.5f));
        gb_u32(g, SAMPLE_QH);
        for (int j = 0; j < 16; j++)
            gb_u8(g, (uint8_t)(j | ((15 - j) << 4)));
        break;
    case 7:
        gb_u16(g, gb_half(0.0625f));
        for (int j = 0; j < 32; j++)
            gb_u8(g, (uint8_t)(j * 8 - 128));
        break;
    default:
        for (int j = 0; j < 210; j++)
            gb_u8(g, (uint8_t)j);
        break;
    }
}

static inline void gb_sample(gb *g)
{
    gb_header(g, 3, SAMPLE_N_TENSORS, SAMPLE_N_KV);
    gb_kv_str(g, "general.architecture", "llama");
    gb_kv_u32(g, "general.alignment", SAMPLE_ALIGN);
    gb_key(g, "t.u8", 0); gb_u8(g, 200);
    gb_key(g, "t.i8", 1); gb_u8(g, (uint8_t)-5);
    gb_key(g, "t.u16", 2); gb_u16(g, 60000);
    gb_key(g, "t.i16", 3); gb_u16(g, (uint16_t)-30000);
    gb_kv_u32(g, "t.u32", 4000000000u);
    gb_key(g, "t.i32", 5); gb_u32(g, (uint32_t)-2000000000);
    gb_kv_f32(g, "t.f32", 1.5f);
    gb_kv_bool(g, "t.bool", 1);
    gb_key(g, "t.u64", 10); gb_u64(g, 1ull << 40);
    gb_key(g, "t.i64", 11); gb_u64(g, (uint64_t)-(1ll << 40));
    gb_key(g, "t.f64", 12); gb_f64(g, -2.25);
    static const char *const strs[3] = {"a", "", "h\xc3\xa9llo"};
    gb_kv_arr_str(g, "t.arr_str", 3, strs);
    static const int32_t ints[3] = {1, -2, 3};
    gb_kv_arr_i32(g, "t.arr_i32", 3, ints);
    gb_key(g, "t.arr_bool", 9); gb_u32(g, 7); gb_u64(g, 2); gb_u8(g, 1); gb_u8(g, 0);
    gb_key(g, "t.arr_f32", 9); gb_u32(g, 6); gb_u64(g, 2); gb_f32(g, 0.5f); gb_f32(g, -1.0f);
    /* [[1, 2] (u16), ["x"], [] (u8)] */
    gb_key(g, "t.nested", 9); gb_u32(g, 9); gb_u64(g, 3);
    gb_u32(g, 2); gb_u64(g, 2); gb_u16(g, 1); gb_u16(g, 2);
    gb_u32(g, 8); gb_u64(g, 1); gb_str(g, "x");
    gb_u32(g, 0); gb_u64(g, 0);
    gb_key(g, "t.empty", 9); gb_u32(g, 10); gb_u64(g, 0);
    gb_kv_str(g, "t.str", "hello, gguf");
    for (int i = 0; i < SAMPLE_N_TENSORS; i++)
        gb_tensor_info(g, k_sample_tensors[i].name, k_sample_tensors[i].n_dims, k_sample_tensors[i].ne,
                       k_sample_tensors[i].type, (uint64_t)i * SAMPLE_ALIGN);
    gb_pad(g, SAMPLE_ALIGN);
    for (int i = 0; i < SAMPLE_N_TENSORS; i++) {
        size_t start = g->n;
        gb_sample_data(g, i);
        if (i + 1 < SAMPLE_N_TENSORS)
            while (g->n - start < SAMPLE_ALIGN)
                gb_u8(g, 0xee);
    }
}

/* GPT-2's byte-to-unicode code point of b, as UTF-8 (written out here, independently of the
 * runner's table). */
static inline int gb_byte_char(uint8_t b, char out[2])
{
    int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    uint32_t cp = b;
    if (!printable) {
        cp = 256;
        for (uint32_t x = 0; x < b; x++)
            cp += !((x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE);
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
}

/* ---- a tokenizer: 4 special tokens, the 256 byte tokens, 7 merged ones, a chat template ---- */

enum { V_EOT, V_START, V_END, V_USER, V_BYTE0 }; /* ids; bytes follow at V_BYTE0 + b */
#define N_BYTES 256
static const char *const k_extra[] = {"ll", "he", "hell", "hello", "\xC4\xA0h", "aa", "12"};
enum { V_LL = V_BYTE0 + N_BYTES, V_HE, V_HELL, V_HELLO, V_GH, V_AA, V_12, V_COUNT };

typedef struct gb_tok_opts {
    const char *model, *pre;
    int bad_merge, bos, drop_byte, drop_fffd, short_types, bad_type;
} gb_tok_opts;

static inline void gb_tokenizer_sample(gb *g, const gb_tok_opts *o)
{
    const char *merges[] = {"l l", "h e", "he ll", "hell o", "\xC4\xA0 h", "a a", "x y", "1 2",
                            o->bad_merge ? "nospace" : "q q"};
    size_t n_merges = sizeof merges / sizeof merges[0];
    gb_header(g, 3, 0, 8);
    gb_kv_str(g, "tokenizer.ggml.model", o->model ? o->model : "gpt2");
    gb_kv_str(g, "tokenizer.ggml.pre", o->pre ? o->pre : "smollm");
    gb_key(g, "tokenizer.ggml.tokens", 9);
    gb_u32(g, 8);
    gb_u64(g, V_COUNT);
    gb_str(g, "<|endoftext|>");
    gb_str(g, "<|im_start|>");
    gb_str(g, "<|im_end|>");
    gb_str(g, "<user>");
    for (int b = 0; b < N_BYTES; b++) {
        char e[4];
        int n = gb_byte_char((uint8_t)b, e);
        if ((o->drop_byte && b == 'z') || (o->drop_fffd && b == 0xBF))
            gb_str(g, "zz-missing");
        else
            gb_strn(g, e, (size_t)n);
    }
    for (size_t i = 0; i < sizeof k_extra / sizeof k_extra[0]; i++)
        gb_str(g, k_extra[i]);
    gb_key(g, "tokenizer.ggml.token_type", 9);
    gb_u32(g, 5);
    gb_u64(g, o->short_types ? V_COUNT - 1 : V_COUNT);
    for (int i = 0; i < V_COUNT - (o->short_types ? 1 : 0); i++)
        gb_u32(g, i <= V_END ? 3 : i == V_USER ? 4 : (o->bad_type && i == V_HE) ? 9 : 1);
    gb_kv_arr_str(g, "tokenizer.ggml.merges", n_merges, merges);
    gb_kv_u32(g, "tokenizer.ggml.bos_token_id", o->bos ? (uint32_t)o->bos : V_START);
    gb_kv_u32(g, "tokenizer.ggml.eos_token_id", V_END);
    gb_kv_str(g, "tokenizer.chat_template",
              "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
              "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
              "{% endif %}");
}


/* ---- a tiny Llama: 2 blocks, E 32, F 64, 4 heads over 2 KV heads of 8 (or of head_dim, E = 4 x
 * head_dim), vocabulary 40 ------------------------------------------------------------------- */

enum { TE = 32, TF = 64, TH = 4, TG = 2, TD = 8, TV = 40, TL = 2 };

typedef struct gb_tiny_opts {
    const char *skip;      /* a tensor to leave out */
    const char *misshape;  /* a tensor written with one row too many */
    const char *q8_1;      /* a tensor written as Q8_1, a type without a CPU dequantizer */
    uint32_t head_dim;     /* 0: TD; 16 gives a head esa-vk takes (it needs 16..256), with
                              embedding length TH * head_dim */
} gb_tiny_opts;

static inline float gb_frand(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (float)((double)(z >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

typedef struct tiny_tensor {
    char name[64];
    uint64_t ne0, ne1;
    uint32_t type;
} tiny_tensor;

static inline void gb_tiny_llama(gb *g, const gb_tiny_opts *o)
{
    uint64_t state = 0x2545f4914f6cdd1dull;
    const uint64_t D = o->head_dim ? o->head_dim : TD, E = TH * D;
    tiny_tensor ts[3 + 9 * TL];
    int n = 0;
#define T(nm, a, b) (snprintf(ts[n].name, 64, "%s", nm), ts[n].ne0 = (a), ts[n].ne1 = (b), ts[n].type = 0, n++)
    T("token_embd.weight", E, TV);
    T("output_norm.weight", E, 1);
    T("output.weight", E, TV);
    for (int l = 0; l < TL; l++) {
        static const char *const sfx[9] = {"attn_norm", "ffn_norm", "attn_q", "attn_k", "attn_v", "attn_output",
                                           "ffn_gate", "ffn_up", "ffn_down"};
        const uint64_t shp[9][2] = {{E, 1}, {E, 1}, {E, TH * D}, {E, TG * D}, {E, TG * D},
                                    {TH * D, E}, {E, TF}, {E, TF}, {TF, E}};
        for (int i = 0; i < 9; i++) {
            char nm[64];
            snprintf(nm, sizeof nm, "blk.%d.%s.weight", l, sfx[i]);
            T(nm, shp[i][0], shp[i][1]);
        }
    }
#undef T
    int kept = 0;
    for (int i = 0; i < n; i++) {
        if (o->skip && !strcmp(ts[i].name, o->skip))
            continue;
        if (o->misshape && !strcmp(ts[i].name, o->misshape))
            ts[i].ne1++;
        if (o->q8_1 && !strcmp(ts[i].name, o->q8_1))
            ts[i].type = 9;
        ts[kept++] = ts[i];
    }
    gb_header(g, 3, (uint64_t)kept, 10);
    gb_kv_str(g, "general.architecture", "llama");
    gb_kv_u32(g, "llama.block_count", TL);
    gb_kv_u32(g, "llama.embedding_length", (uint32_t)E);
    gb_kv_u32(g, "llama.feed_forward_length", TF);
    gb_kv_u32(g, "llama.attention.head_count", TH);
    gb_kv_u32(g, "llama.attention.head_count_kv", TG);
    gb_kv_u32(g, "llama.context_length", 64);
    gb_kv_f32(g, "llama.rope.freq_base", 10000.0f);
    gb_kv_f32(g, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    gb_kv_u32(g, "llama.rope.dimension_count", (uint32_t)D);
    uint64_t off = 0;
    for (int i = 0; i < kept; i++) {
        uint64_t ne[2] = {ts[i].ne0, ts[i].ne1};
        gb_tensor_info(g, ts[i].name, ts[i].ne1 == 1 ? 1 : 2, ne, ts[i].type, off);
        uint64_t bytes = ts[i].type == 9 ? ts[i].ne0 / 32 * 36 * ts[i].ne1 : ts[i].ne0 * ts[i].ne1 * 4;
        off += (bytes + 31) / 32 * 32;
    }
    gb_pad(g, 32);
    for (int i = 0; i < kept; i++) {
        size_t start = g->n;
        int norm = strstr(ts[i].name, "norm") != NULL;
        if (ts[i].type == 9)
            for (uint64_t j = 0; j < ts[i].ne0 / 32 * 36 * ts[i].ne1; j++)
                gb_u8(g, 0);
        else
            for (uint64_t j = 0; j < ts[i].ne0 * ts[i].ne1; j++)
                gb_f32(g, norm ? 1.0f + 0.1f * gb_frand(&state) : 0.3f * gb_frand(&state));
        while ((g->n - start) % 32)
            gb_u8(g, 0);
    }
}

#endif
