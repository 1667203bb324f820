/* test_gguf.c - the GGUF reader and the dequantizers: a synthetic file holding every value type
 * and one tensor of each type read back value by value; every kind of broken file refused with
 * the right status and a message naming the fault; half-float conversion exhaustively; and, when
 * the model file is there, its metadata, shapes and dequantized rows against values recorded
 * with the gguf Python package (tools/ref/record_tensors.py). */
#define _POSIX_C_SOURCE 200809L
#include "gguf.h"
#include "gguf_build.h"
#include "runner_harness.h"

#include <math.h>
#include <stdint.h>
#include <unistd.h>

#ifndef ESA_SOURCE_DIR
#define ESA_SOURCE_DIR "."
#endif

/* The expected element e of a sample tensor, written from the format description element by
 * element (not block by block as the dequantizer is). */
static float sample_expect(int which, uint64_t e)
{
    int blk = (int)(e / 32), k = (int)(e % 32);
    int nib = k < 16 ? k : 31 - k;
    int hbit = (int)((SAMPLE_QH >> k) & 1);
    switch (which) {
    case 0: return (float)e * 0.5f - 3.0f;
    case 1: { static const float v[4] = {1.0f, -2.0f, 0.5f, 65504.0f}; return v[e]; }
    case 2: return e ? -3.0f : 1.5f;
    case 3: return (float)(nib - 8) * 0.5f * (float)(blk + 1);
    case 4: return (float)nib * 0.25f * (float)(blk + 1) - 1.5f;
    case 5: return (float)((nib | hbit << 4) - 16) * 0.125f;
    case 6: return (float)(nib | hbit << 4) * 0.25f + 0.5f;
    case 7: return (float)(int8_t)(uint8_t)(k * 8 - 128) * 0.0625f;
    }
    return NAN;
}

static void check_sample(const esar_gguf *g)
{
    esar_err err = {{0}};
    uint32_t u32;
    int64_t i64;
    float f;
    int b;
    esar_gguf_str s;
    const esar_gguf_value *v;
    esar_gguf_value e;

    EXPECT(esar_gguf_version(g) == 3, "version %u", esar_gguf_version(g));
    EXPECT(esar_gguf_alignment(g) == SAMPLE_ALIGN, "alignment %u", esar_gguf_alignment(g));
    EXPECT(esar_gguf_data_offset(g) % SAMPLE_ALIGN == 0, "data offset");
    EXPECT(esar_gguf_kv_count(g) == SAMPLE_N_KV, "kv count %llu", (unsigned long long)esar_gguf_kv_count(g));
    EXPECT_OK(esar_gguf_get_str(g, "general.architecture", &s, &err), &err);
    EXPECT(esar_gguf_str_eq(s, "llama"), "architecture");
    EXPECT_OK(esar_gguf_get_u32(g, "t.u8", &u32, &err), &err);
    EXPECT(u32 == 200, "u8 %u", u32);
    EXPECT_OK(esar_gguf_get_i64(g, "t.i8", &i64, &err), &err);
    EXPECT(i64 == -5, "i8");
    EXPECT_OK(esar_gguf_get_u32(g, "t.u16", &u32, &err), &err);
    EXPECT(u32 == 60000, "u16");
    EXPECT_OK(esar_gguf_get_i64(g, "t.i16", &i64, &err), &err);
    EXPECT(i64 == -30000, "i16");
    EXPECT_OK(esar_gguf_get_u32(g, "t.u32", &u32, &err), &err);
    EXPECT(u32 == 4000000000u, "u32");
    EXPECT_OK(esar_gguf_get_i64(g, "t.i32", &i64, &err), &err);
    EXPECT(i64 == -2000000000, "i32");
    EXPECT_OK(esar_gguf_get_f32(g, "t.f32", &f, &err), &err);
    EXPECT(f == 1.5f, "f32");
    EXPECT_OK(esar_gguf_get_bool(g, "t.bool", &b, &err), &err);
    EXPECT(b == 1, "bool");
    EXPECT_OK(esar_gguf_get_i64(g, "t.u64", &i64, &err), &err);
    EXPECT(i64 == (1ll << 40), "u64");
    EXPECT_OK(esar_gguf_get_i64(g, "t.i64", &i64, &err), &err);
    EXPECT(i64 == -(1ll << 40), "i64");
    EXPECT_OK(esar_gguf_get_f32(g, "t.f64", &f, &err), &err);
    EXPECT(f == -2.25f, "f64");
    EXPECT_OK(esar_gguf_get_str(g, "t.str", &s, &err), &err);
    EXPECT(esar_gguf_str_eq(s, "hello, gguf"), "str");

    /* typed lookups that must refuse */
    EXPECT(esar_gguf_get_u32(g, "t.i8", &u32, &err) == ESAR_ERR_TYPE, "negative into u32");
    EXPECT(strstr(err.msg, "t.i8"), "message names the key: %s", err.msg);
    EXPECT(esar_gguf_get_u32(g, "t.u64", &u32, &err) == ESAR_ERR_TYPE, "2^40 into u32");
    EXPECT(esar_gguf_get_f32(g, "t.str", &f, &err) == ESAR_ERR_TYPE, "string as float");
    EXPECT(esar_gguf_get_u32(g, "no.such.key", &u32, &err) == ESAR_ERR_NOT_FOUND, "missing key");
    EXPECT(strstr(err.msg, "no.such.key"), "message names the missing key: %s", err.msg);
    EXPECT(esar_gguf_get_array(g, "t.arr_i32", ESAR_GGUF_STRING, &v, &err) == ESAR_ERR_TYPE, "elem type");

    EXPECT_OK(esar_gguf_get_array(g, "t.arr_str", ESAR_GGUF_STRING, &v, &err), &err);
    EXPECT(v->v.arr.count == 3, "arr_str count");
    EXPECT_OK(esar_gguf_array_get(v, 2, &e, &err), &err);
    EXPECT(e.type == ESAR_GGUF_STRING && esar_gguf_str_eq(e.v.str, "h\xc3\xa9llo"), "arr_str[2]");
    EXPECT_OK(esar_gguf_array_get(v, 1, &e, &err), &err);
    EXPECT(e.v.str.len == 0, "arr_str[1] empty");
    EXPECT(esar_gguf_array_get(v, 3, &e, &err) == ESAR_ERR_ARG, "index past the end");
    EXPECT_OK(esar_gguf_get_array(g, "t.arr_i32", ESAR_GGUF_I32, &v, &err), &err);
    EXPECT_OK(esar_gguf_array_get(v, 1, &e, &err), &err);
    EXPECT(e.type == ESAR_GGUF_I32 && e.v.i == -2, "arr_i32[1]");
    EXPECT_OK(esar_gguf_get_array(g, "t.arr_bool", ESAR_GGUF_BOOL, &v, &err), &err);
    EXPECT_OK(esar_gguf_array_get(v, 0, &e, &err), &err);
    EXPECT(e.v.u == 1, "arr_bool[0]");
    EXPECT_OK(esar_gguf_get_array(g, "t.arr_f32", ESAR_GGUF_F32, &v, &err), &err);
    EXPECT_OK(esar_gguf_array_get(v, 1, &e, &err), &err);
    EXPECT(e.v.f == -1.0, "arr_f32[1]");
    EXPECT_OK(esar_gguf_get_array(g, "t.nested", ESAR_GGUF_ARRAY, &v, &err), &err);
    EXPECT(v->v.arr.count == 3, "nested count");
    if (v->v.arr.count == 3) {
        const esar_gguf_value *a0 = &v->v.arr.items[0], *a1 = &v->v.arr.items[1], *a2 = &v->v.arr.items[2];
        EXPECT(a0->type == ESAR_GGUF_ARRAY && a0->v.arr.type == ESAR_GGUF_U16 && a0->v.arr.count == 2, "nested[0]");
        EXPECT_OK(esar_gguf_array_get(a0, 1, &e, &err), &err);
        EXPECT(e.v.u == 2, "nested[0][1]");
        EXPECT(a1->v.arr.type == ESAR_GGUF_STRING && a1->v.arr.count == 1 &&
                   esar_gguf_str_eq(a1->v.arr.items[0].v.str, "x"), "nested[1]");
        EXPECT(a2->v.arr.type == ESAR_GGUF_U8 && a2->v.arr.count == 0, "nested[2]");
    }
    EXPECT_OK(esar_gguf_get_array(g, "t.empty", ESAR_GGUF_U64, &v, &err), &err);
    EXPECT(v->v.arr.count == 0, "empty");

    /* file order of the pairs */
    const char *key = NULL;
    EXPECT(esar_gguf_kv_at(g, 0, &key) && !strcmp(key, "general.architecture"), "kv_at(0)");
    EXPECT(esar_gguf_kv_at(g, SAMPLE_N_KV, &key) == NULL, "kv_at past the end");

    EXPECT(esar_gguf_tensor_count(g) == SAMPLE_N_TENSORS, "tensor count");
    for (int i = 0; i < SAMPLE_N_TENSORS; i++) {
        const sample_tensor *st = &k_sample_tensors[i];
        const esar_gguf_tensor *t = NULL;
        EXPECT_OK(esar_gguf_get_tensor(g, st->name, st->n_dims, st->ne, &t, &err), &err);
        if (!t)
            continue;
        EXPECT(t == esar_gguf_tensor_at(g, (uint64_t)i), "%s: file order", st->name);
        EXPECT(t->type == st->type && t->n_bytes == st->bytes && t->offset == (uint64_t)i * SAMPLE_ALIGN,
               "%s: type %u bytes %llu offset %llu", st->name, t->type, (unsigned long long)t->n_bytes,
               (unsigned long long)t->offset);
        float row[256];
        for (uint64_t r = 0; r < t->n_rows; r++) {
            esar_status s2 = esar_gguf_tensor_row(t, r, row, &err);
            if (st->type == 14) {
                EXPECT(s2 == ESAR_ERR_UNSUPPORTED && strstr(err.msg, "Q6_K") && strstr(err.msg, "t.q6_k"),
                       "Q6_K must be refused by name: %s", err.msg);
                continue;
            }
            EXPECT(s2 == ESAR_OK, "%s row %llu: %s", st->name, (unsigned long long)r, err.msg);
            for (uint64_t c = 0; c < t->ne[0]; c++) {
                float want = sample_expect(i, r * t->ne[0] + c);
                EXPECT(row[c] == want, "%s[%llu][%llu] = %g, want %g", st->name, (unsigned long long)r,
                       (unsigned long long)c, row[c], want);
            }
        }
        EXPECT(esar_gguf_tensor_row(t, t->n_rows, row, &err) == ESAR_ERR_ARG, "row past the end");
    }
    uint64_t wrong[2] = {8, 3};
    const esar_gguf_tensor *t = NULL;
    EXPECT(esar_gguf_get_tensor(g, "t.f32", 2, wrong, &t, &err) == ESAR_ERR_TYPE && strstr(err.msg, "[8, 2, 1, 1]"),
           "shape mismatch message: %s", err.msg);
    EXPECT(esar_gguf_get_tensor(g, "t.none", 0, NULL, &t, &err) == ESAR_ERR_NOT_FOUND && strstr(err.msg, "t.none"),
           "missing tensor message: %s", err.msg);
}

/* A broken file must be refused with `want` and a message containing `needle`. */
static void expect_refused(const char *what, const gb *g, esar_status want, const char *needle)
{
    esar_err err = {{0}};
    esar_gguf *out = (esar_gguf *)1;
    esar_status s = esar_gguf_open_memory(g->p, g->n, &out, &err);
    EXPECT(s == want, "%s: got %s (%s), wanted %s", what, esar_status_string(s), err.msg, esar_status_string(want));
    EXPECT(out == NULL, "%s: out not cleared", what);
    EXPECT(strstr(err.msg, needle), "%s: message '%s' lacks '%s'", what, err.msg, needle);
    if (s == ESAR_OK)
        esar_gguf_close(out);
}

/* One tensor info plus enough zero data; the file is otherwise valid. */
static void one_tensor(gb *g, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type, uint64_t offset,
                       size_t data)
{
    gb_header(g, 3, 1, 0);
    gb_tensor_info(g, name, n_dims, ne, type, offset);
    gb_pad(g, 32);
    for (size_t i = 0; i < data; i++)
        gb_u8(g, 0);
}

static void test_refusals(const gb *sample)
{
    gb g = {0};
#define RESET() (free(g.p), memset(&g, 0, sizeof g))

    gb_bytes(&g, sample->p, sample->n);
    g.p[0] = 'X';
    expect_refused("bad magic", &g, ESAR_ERR_FORMAT, "magic");
    RESET();
    gb_header(&g, 1, 0, 0);
    expect_refused("version 1", &g, ESAR_ERR_UNSUPPORTED, "version 1");
    RESET();
    gb_header(&g, 4, 0, 0);
    expect_refused("version 4", &g, ESAR_ERR_FORMAT, "version 4");
    RESET();
    gb_header(&g, 0x03000000u, 0, 0);
    expect_refused("big-endian", &g, ESAR_ERR_UNSUPPORTED, "big-endian");
    RESET();
    expect_refused("empty file", &g, ESAR_ERR_FORMAT, "too short");
    gb_header(&g, 3, 0, 1ull << 62);
    expect_refused("huge kv count", &g, ESAR_ERR_FORMAT, "key/value pairs");
    RESET();
    gb_header(&g, 3, 1ull << 62, 0);
    expect_refused("huge tensor count", &g, ESAR_ERR_FORMAT, "tensors");
    RESET();
    gb_header(&g, 3, 0, 1);
    gb_u64(&g, 1ull << 63);
    gb_bytes(&g, "abcdefghijklmnop", 16);
    expect_refused("huge key length", &g, ESAR_ERR_FORMAT, "length 9223372036854775808");
    RESET();
    gb_header(&g, 3, 0, 1);
    gb_key(&g, "k", 9);
    gb_u32(&g, 4);
    gb_u64(&g, 1ull << 61);
    gb_u64(&g, 0);
    expect_refused("huge u32 array", &g, ESAR_ERR_FORMAT, "claims 2305843009213693952 u32");
    RESET();
    gb_header(&g, 3, 0, 1);
    gb_key(&g, "k", 9);
    gb_u32(&g, 8);
    gb_u64(&g, 1ull << 40);
    gb_u64(&g, 0);
    expect_refused("huge string array", &g, ESAR_ERR_FORMAT, "string elements");
    RESET();
    gb_header(&g, 3, 0, 1);
    gb_key(&g, "k", 9);
    gb_u32(&g, 9);
    gb_u64(&g, 1ull << 40);
    gb_u64(&g, 0);
    expect_refused("huge array of arrays", &g, ESAR_ERR_FORMAT, "array elements");
    RESET();
    gb_header(&g, 3, 0, 1);
    gb_key(&g, "weird", 13);
    gb_u32(&g, 0);
    expect_refused("unknown value type", &g, ESAR_ERR_FORMAT, "unknown value type 13");
    RESET();
    gb_header(&g, 3, 0, 1);
    gb_key(&g, "k", 9);
    gb_u32(&g, 77);
    gb_u64(&g, 0);
    expect_refused("unknown element type", &g, ESAR_ERR_FORMAT, "unknown element type 77");
    RESET();
    gb_header(&g, 3, 0, 1);
    gb_key(&g, "deep", 9);
    for (int d = 0; d < 12; d++) {
        gb_u32(&g, 9);
        gb_u64(&g, 1);
    }
    gb_u32(&g, 0);
    gb_u64(&g, 0);
    expect_refused("nesting too deep", &g, ESAR_ERR_UNSUPPORTED, "nested deeper");
    RESET();
    gb_header(&g, 3, 0, 1);
    gb_key(&g, "flag", 7);
    gb_u8(&g, 2);
    expect_refused("bool 2", &g, ESAR_ERR_FORMAT, "not 0 or 1");
    RESET();
    gb_header(&g, 3, 0, 1);
    gb_key(&g, "", 4);
    gb_u32(&g, 0);
    expect_refused("empty key", &g, ESAR_ERR_FORMAT, "empty key");
    RESET();
    gb_header(&g, 3, 0, 1);
    gb_strn(&g, "a\0b", 3);
    gb_u32(&g, 4);
    gb_u32(&g, 0);
    expect_refused("NUL in key", &g, ESAR_ERR_FORMAT, "NUL");
    RESET();
    gb_header(&g, 3, 0, 2);
    gb_kv_u32(&g, "dup", 1);
    gb_kv_u32(&g, "dup", 2);
    expect_refused("duplicate key", &g, ESAR_ERR_FORMAT, "duplicate key 'dup'");
    RESET();
    gb_header(&g, 3, 0, 1);
    gb_kv_u32(&g, "general.alignment", 48);
    expect_refused("alignment 48", &g, ESAR_ERR_FORMAT, "power of two");
    RESET();
    gb_header(&g, 3, 0, 1);
    gb_kv_u32(&g, "general.alignment", 0);
    expect_refused("alignment 0", &g, ESAR_ERR_FORMAT, "power of two");
    RESET();
    gb_header(&g, 3, 0, 1);
    gb_key(&g, "general.alignment", 2);
    gb_u16(&g, 32);
    expect_refused("alignment u16", &g, ESAR_ERR_FORMAT, "must be u32");
    RESET();

    uint64_t ne5[5] = {1, 1, 1, 1, 1};
    one_tensor(&g, "w", 5, ne5, 0, 0, 4);
    expect_refused("5 dims", &g, ESAR_ERR_FORMAT, "5 dimensions");
    RESET();
    uint64_t ne_big[1] = {1ull << 63};
    one_tensor(&g, "w", 1, ne_big, 0, 0, 4);
    expect_refused("dim over INT64_MAX", &g, ESAR_ERR_FORMAT, "over INT64_MAX");
    RESET();
    uint64_t ne_ovf[2] = {1ull << 32, 1ull << 32};
    one_tensor(&g, "w", 2, ne_ovf, 0, 0, 4);
    expect_refused("element count overflow", &g, ESAR_ERR_FORMAT, "overflows");
    RESET();
    uint64_t ne_bytes[1] = {0x7fffffffffffffe0ull};
    one_tensor(&g, "w", 1, ne_bytes, 8, 0, 4);
    expect_refused("byte size overflow", &g, ESAR_ERR_FORMAT, "byte size");
    RESET();
    uint64_t ne1[1] = {32};
    one_tensor(&g, "w", 1, ne1, 4, 0, 64);
    expect_refused("removed type Q4_2", &g, ESAR_ERR_FORMAT, "unknown ggml type 4");
    RESET();
    one_tensor(&g, "w", 1, ne1, 200, 0, 64);
    expect_refused("type 200", &g, ESAR_ERR_FORMAT, "unknown ggml type 200");
    RESET();
    uint64_t ne33[1] = {33};
    one_tensor(&g, "w", 1, ne33, 2, 0, 64);
    expect_refused("row not whole blocks", &g, ESAR_ERR_FORMAT, "not a multiple of the Q4_0 block");
    RESET();
    one_tensor(&g, "w", 1, ne1, 0, 16, 256);
    expect_refused("misaligned offset", &g, ESAR_ERR_FORMAT, "not a multiple of the alignment 32");
    RESET();
    one_tensor(&g, "w", 1, ne1, 0, 1ull << 60, 256);
    expect_refused("data far past the end", &g, ESAR_ERR_FORMAT, "past the end");
    RESET();
    one_tensor(&g, "w", 1, ne1, 0, 0, 127);
    expect_refused("data one byte short", &g, ESAR_ERR_FORMAT, "tensor 'w'");
    RESET();
    one_tensor(&g, "", 1, ne1, 0, 0, 128);
    expect_refused("empty name", &g, ESAR_ERR_FORMAT, "name");
    RESET();
    one_tensor(&g, "0123456789012345678901234567890123456789012345678901234567890123", 1, ne1, 0, 0, 128);
    expect_refused("64-byte name", &g, ESAR_ERR_FORMAT, "longer than 63");
    RESET();
    gb_header(&g, 3, 2, 0);
    gb_tensor_info(&g, "w", 1, ne1, 0, 0);
    gb_tensor_info(&g, "w", 1, ne1, 0, 128);
    gb_pad(&g, 32);
    for (int i = 0; i < 256; i++)
        gb_u8(&g, 0);
    expect_refused("duplicate tensor", &g, ESAR_ERR_FORMAT, "duplicate tensor name 'w'");
    RESET();
    gb_header(&g, 3, 2, 0);
    gb_tensor_info(&g, "a", 1, ne1, 0, 0);
    gb_tensor_info(&g, "b", 1, ne1, 0, 96);
    gb_pad(&g, 32);
    for (int i = 0; i < 256; i++)
        gb_u8(&g, 0);
    expect_refused("overlap", &g, ESAR_ERR_FORMAT, "overlap");
    RESET();

    /* Every prefix of the valid sample is refused as FORMAT (never crashes, never accepted). */
    int bad = 0;
    for (size_t n = 0; n < sample->n; n++) {
        esar_err err;
        esar_gguf *out = NULL;
        esar_status s = esar_gguf_open_memory(sample->p, n, &out, &err);
        if (s != ESAR_ERR_FORMAT && bad++ < 5)
            EXPECT(0, "prefix of %zu bytes: %s (%s)", n, esar_status_string(s), err.msg);
        esar_gguf_close(out);
    }
    /* Version 2 reads as version 3 does. */
    gb_bytes(&g, sample->p, sample->n);
    g.p[4] = 2;
    esar_err err;
    esar_gguf *v2 = NULL;
    EXPECT_OK(esar_gguf_open_memory(g.p, g.n, &v2, &err), &err);
    EXPECT(esar_gguf_version(v2) == 2, "v2");
    esar_gguf_close(v2);
    RESET();
#undef RESET
}

static void test_half(void)
{
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = esar_f16_to_f32((uint16_t)h);
        uint16_t back = esar_f32_to_f16(f);
        int nan = ((h >> 10) & 0x1f) == 0x1f && (h & 0x3ff);
        int ok = nan ? (isnan(f) && ((back >> 10) & 0x1f) == 0x1f && (back & 0x3ff)) : back == h;
        if (!ok && bad++ < 5)
            EXPECT(0, "half 0x%04x -> %g -> 0x%04x", h, f, back);
    }
    EXPECT(esar_f16_to_f32(0x3c00) == 1.0f && esar_f16_to_f32(0xc000) == -2.0f, "1 and -2");
    EXPECT(esar_f16_to_f32(0x0001) == 0x1p-24f, "smallest subnormal");
    EXPECT(isinf(esar_f16_to_f32(0x7c00)), "inf");
    EXPECT(esar_f32_to_f16(65520.0f) == 0x7c00 && esar_f32_to_f16(65519.0f) == 0x7bff, "overflow rounding");
    EXPECT(esar_f32_to_f16(1.0f + 0x1p-11f) == 0x3c00 && esar_f32_to_f16(1.0f + 3 * 0x1p-11f) == 0x3c02,
           "ties to even");
    EXPECT(esar_bf16_to_f32(0x3fc0) == 1.5f, "bf16");
    esar_err err;
    float out[32];
    uint8_t blk[34] = {0};
    EXPECT(esar_dequant_row(8, blk, 33, out, 32, &err) == ESAR_ERR_ARG, "short source");
    EXPECT(esar_dequant_row(8, blk, 34, out, 31, &err) == ESAR_ERR_ARG, "partial block");
    EXPECT(esar_dequant_row(5, blk, 34, out, 32, &err) == ESAR_ERR_ARG, "unknown type");
}

/* The real model: shapes and metadata, and rows against tests/data/gguf_ref.txt. */
static int test_model(void)
{
    char buf[4096];
    const char *path = runner_model_path(ESA_SOURCE_DIR, buf, sizeof buf);
    if (!path)
        return 0;
    esar_err err;
    esar_gguf *g = NULL;
    EXPECT_OK(esar_gguf_open(path, &g, &err), &err);
    if (!g)
        return 1;
    uint32_t u;
    float f;
    esar_gguf_str s;
    EXPECT(esar_gguf_tensor_count(g) == 272, "tensor count");
    EXPECT_OK(esar_gguf_get_str(g, "general.architecture", &s, &err), &err);
    EXPECT(esar_gguf_str_eq(s, "llama"), "architecture");
    EXPECT_OK(esar_gguf_get_u32(g, "llama.block_count", &u, &err), &err);
    EXPECT(u == 30, "block_count");
    EXPECT_OK(esar_gguf_get_f32(g, "llama.rope.freq_base", &f, &err), &err);
    EXPECT(f == 100000.0f, "rope.freq_base");
    const esar_gguf_value *toks;
    EXPECT_OK(esar_gguf_get_array(g, "tokenizer.ggml.tokens", ESAR_GGUF_STRING, &toks, &err), &err);
    uint64_t ne[2] = {576, 49152};
    const esar_gguf_tensor *t;
    EXPECT_OK(esar_gguf_get_tensor(g, "token_embd.weight", 2, ne, &t, &err), &err);

    /* gguf_ref.txt: "name row n v0 v1 ... v(n-1) sum" lines, values printed with %.9g */
    char ref[4096];
    snprintf(ref, sizeof ref, "%s/tests/data/gguf_ref.txt", ESA_SOURCE_DIR);
    FILE *fp = fopen(ref, "r");
    EXPECT(fp, "cannot open %s", ref);
    int lines = 0;
    char line[4096], name[128];
    while (fp && fgets(line, sizeof line, fp)) {
        unsigned long long row;
        int n, used;
        if (line[0] == '#' || sscanf(line, "%127s %llu %d%n", name, &row, &n, &used) != 3)
            continue;
        t = esar_gguf_find_tensor(g, name);
        EXPECT(t, "no tensor %s", name);
        if (!t || row >= t->n_rows || n < 0 || (uint64_t)n > t->ne[0])
            continue;
        float *r = malloc(sizeof(float) * (size_t)t->ne[0]);
        if (!r)
            break;
        EXPECT_OK(esar_gguf_tensor_row(t, row, r, &err), &err);
        char *p = line + used, *end;
        for (int i = 0; i <= n; i++) {
            double want = strtod(p, &end);
            EXPECT(end != p, "%s: short line", name);
            p = end;
            if (i < n) {
                EXPECT((float)want == r[i], "%s[%llu][%d] = %.9g, gguf-py says %.9g", name, row, i, r[i], want);
                continue;
            }
            double sum = 0.0;
            for (uint64_t k = 0; k < t->ne[0]; k++)
                sum += r[k];
            EXPECT(fabs(sum - want) <= 1e-6 * (1.0 + fabs(want)), "%s row %llu sum %.12g, gguf-py %.12g", name,
                   row, sum, want);
        }
        free(r);
        lines++;
    }
    if (fp)
        fclose(fp);
    EXPECT(lines >= 5, "only %d reference rows in %s", lines, ref);
    fprintf(stderr, "model: %d rows matched gguf-py\n", lines);
    esar_gguf_close(g);
    return 1;
}

/* `test_gguf`: synthetic files; `test_gguf model`: the model file (skips without it). */
int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "model"))
        return test_model() ? runner_finish("test_gguf model") : SKIP_CODE;
    gb sample = {0};
    gb_sample(&sample);
    esar_err err;
    esar_gguf *g = NULL;
    EXPECT_OK(esar_gguf_open_memory(sample.p, sample.n, &g, &err), &err);
    if (g)
        check_sample(g);
    esar_gguf_close(g);

    /* the same through a real file and mmap */
    char path[] = "/tmp/esa_test_gguf_XXXXXX";
    int fd = mkstemp(path);
    EXPECT(fd >= 0, "mkstemp");
    if (fd >= 0) {
        EXPECT(write(fd, sample.p, sample.n) == (ssize_t)sample.n, "write");
        close(fd);
        g = NULL;
        EXPECT_OK(esar_gguf_open(path, &g, &err), &err);
        if (g)
            check_sample(g);
        esar_gguf_close(g);
        unlink(path);
    }
    EXPECT(esar_gguf_open("/nonexistent/x.gguf", &g, &err) == ESAR_ERR_IO && strstr(err.msg, "/nonexistent/x.gguf"),
           "missing file: %s", err.msg);
    EXPECT(esar_gguf_open("/tmp", &g, &err) == ESAR_ERR_IO, "directory");

    test_refusals(&sample);
    test_half();
    free(sample.p);
    return runner_finish("test_gguf");
}
