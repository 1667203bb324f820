/* gguf.c - reads and validates a GGUF file (ggml/docs/gguf.md), then answers lookups.
 *
 * Parsing runs twice over the same bytes: a measuring pass that checks everything and counts
 * what must be stored (values, name bytes), then a filling pass into storage of exactly that
 * size. So nothing is allocated from a count the file claims before the bytes backing it have
 * been seen, and no pointer into growing storage is ever invalidated.
 */
#define _POSIX_C_SOURCE 200809L
#include "gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct kv_entry {
    const char *key;
    esar_gguf_value val;
} kv_entry;

struct esar_gguf {
    const uint8_t *base; /* the file's bytes */
    uint64_t size;
    void *map;           /* munmap(map, size) on close, when mapped */
    uint8_t *copy;       /* free(copy) on close, when read instead of mapped */
    uint32_t version, alignment;
    uint64_t data_offset;
    uint64_t n_kv, n_tensors;
    kv_entry *kv;                /* [n_kv] file order */
    const kv_entry **kv_sorted;  /* [n_kv] by key */
    esar_gguf_tensor *tensors;   /* [n_tensors] file order */
    const esar_gguf_tensor **t_sorted; /* [n_tensors] by name */
    esar_gguf_value *pool;       /* [n_pool] elements of string and array arrays */
    char *names;                 /* NUL-terminated keys and tensor names */
};

/* The cursor over the file, and the storage the filling pass writes (NULL while measuring). */
typedef struct parser {
    const uint8_t *p;
    uint64_t size, pos;
    esar_err *err;
    esar_gguf_value *pool;
    uint64_t n_pool;
    char *names;
    uint64_t n_names;
    uint32_t alignment; /* general.alignment once read, else the default */
} parser;

static const uint8_t k_scalar_size[ESAR_GGUF_TYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

const char *esar_gguf_type_name(uint32_t type)
{
    static const char *names[ESAR_GGUF_TYPE_COUNT] = {"u8",  "i8",   "u16",    "i16",   "u32",
                                                      "i32", "f32",  "bool",   "string", "array",
                                                      "u64", "i64",  "f64"};
    return type < ESAR_GGUF_TYPE_COUNT ? names[type] : "?";
}

static uint64_t left(const parser *P) { return P->size - P->pos; }

static esar_status truncated(parser *P, uint64_t n, const char *what, const char *ctx)
{
    return esar_fail(P->err, ESAR_ERR_FORMAT,
                     "gguf: truncated: %s%s%s needs %llu bytes at offset %llu, only %llu left",
                     ctx, *ctx ? ": " : "", what, (unsigned long long)n,
                     (unsigned long long)P->pos, (unsigned long long)left(P));
}

static uint64_t le(const uint8_t *b, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = (v << 8) | b[i];
    return v;
}

static esar_status rd_u32(parser *P, uint32_t *v, const char *what, const char *ctx)
{
    if (left(P) < 4)
        return truncated(P, 4, what, ctx);
    *v = (uint32_t)le(P->p + P->pos, 4);
    P->pos += 4;
    return ESAR_OK;
}

static esar_status rd_u64(parser *P, uint64_t *v, const char *what, const char *ctx)
{
    if (left(P) < 8)
        return truncated(P, 8, what, ctx);
    *v = le(P->p + P->pos, 8);
    P->pos += 8;
    return ESAR_OK;
}

/* A length-prefixed string; *s points into the file. */
static esar_status rd_str(parser *P, esar_gguf_str *s, const char *what, const char *ctx)
{
    uint64_t at = P->pos, len = 0;
    esar_status st = rd_u64(P, &len, what, ctx);
    if (st)
        return st;
    if (len > left(P))
        return esar_fail(P->err, ESAR_ERR_FORMAT,
                         "gguf: %s%s%s at offset %llu has length %llu, but only %llu bytes are left",
                         ctx, *ctx ? ": " : "", what, (unsigned long long)at,
                         (unsigned long long)len, (unsigned long long)left(P));
    s->ptr = (const char *)P->p + P->pos;
    s->len = len;
    P->pos += len;
    return ESAR_OK;
}

/* Stores a NUL-terminated copy of s in the names arena (or only counts it while measuring). */
static const char *keep_name(parser *P, esar_gguf_str s)
{
    const char *r = NULL;
    if (P->names) {
        char *d = P->names + P->n_names;
        memcpy(d, s.ptr, (size_t)s.len);
        d[s.len] = 0;
        r = d;
    }
    P->n_names += s.len + 1;
    return r;
}

static esar_status decode_scalar(const uint8_t *b, esar_gguf_type t, esar_gguf_value *out)
{
    out->type = t;
    switch (t) {
    case ESAR_GGUF_U8: case ESAR_GGUF_U16: case ESAR_GGUF_U32: case ESAR_GGUF_U64:
    case ESAR_GGUF_BOOL:
        out->v.u = le(b, k_scalar_size[t]);
        break;
    case ESAR_GGUF_I8: out->v.i = (int8_t)b[0]; break;
    case ESAR_GGUF_I16: out->v.i = (int16_t)(uint16_t)le(b, 2); break;
    case ESAR_GGUF_I32: out->v.i = (int32_t)(uint32_t)le(b, 4); break;
    case ESAR_GGUF_I64: {
        uint64_t u = le(b, 8);
        memcpy(&out->v.i, &u, 8);
        break;
    }
    case ESAR_GGUF_F32: {
        uint32_t u = (uint32_t)le(b, 4);
        float f;
        memcpy(&f, &u, 4);
        out->v.f = f;
        break;
    }
    case ESAR_GGUF_F64: {
        uint64_t u = le(b, 8);
        memcpy(&out->v.f, &u, 8);
        break;
    }
    default:
        return ESAR_ERR_ARG;
    }
    return ESAR_OK;
}

/* Parses one value of type t; out is NULL while measuring. ctx names the key for messages. */
static esar_status parse_value(parser *P, uint32_t t, int depth, esar_gguf_value *out, const char *ctx)
{
    esar_status st;
    if (t >= ESAR_GGUF_TYPE_COUNT)
        return esar_fail(P->err, ESAR_ERR_FORMAT, "gguf: %s: unknown value type %u before offset %llu",
                         ctx, t, (unsigned long long)P->pos);
    if (t == ESAR_GGUF_STRING) {
        esar_gguf_str s;
        if ((st = rd_str(P, &s, "string value", ctx)))
            return st;
        if (out) {
            out->type = ESAR_GGUF_STRING;
            out->v.str = s;
        }
        return ESAR_OK;
    }
    if (t != ESAR_GGUF_ARRAY) {
        uint64_t n = k_scalar_size[t];
        if (left(P) < n)
            return truncated(P, n, esar_gguf_type_name(t), ctx);
        if (t == ESAR_GGUF_BOOL && P->p[P->pos] > 1)
            return esar_fail(P->err, ESAR_ERR_FORMAT, "gguf: %s: bool at offset %llu is %u, not 0 or 1",
                             ctx, (unsigned long long)P->pos, P->p[P->pos]);
        if (out)
            decode_scalar(P->p + P->pos, (esar_gguf_type)t, out);
        P->pos += n;
        return ESAR_OK;
    }

    uint64_t at = P->pos, count = 0;
    uint32_t et = 0;
    if ((st = rd_u32(P, &et, "array element type", ctx)) || (st = rd_u64(P, &count, "array count", ctx)))
        return st;
    if (et >= ESAR_GGUF_TYPE_COUNT)
        return esar_fail(P->err, ESAR_ERR_FORMAT, "gguf: %s: array at offset %llu has unknown element type %u",
                         ctx, (unsigned long long)at, et);
    if (et == ESAR_GGUF_ARRAY && depth + 1 >= ESAR_GGUF_MAX_DEPTH)
        return esar_fail(P->err, ESAR_ERR_UNSUPPORTED, "gguf: %s: arrays nested deeper than %d at offset %llu",
                         ctx, ESAR_GGUF_MAX_DEPTH, (unsigned long long)at);
    /* The fewest bytes one element can take: bounds count before anything is reserved. */
    uint64_t min_elem = et == ESAR_GGUF_STRING ? 8 : et == ESAR_GGUF_ARRAY ? 12 : k_scalar_size[et];
    if (count > left(P) / min_elem)
        return esar_fail(P->err, ESAR_ERR_FORMAT,
                         "gguf: %s: array at offset %llu claims %llu %s elements (at least %llu bytes each), "
                         "but only %llu bytes are left",
                         ctx, (unsigned long long)at, (unsigned long long)count, esar_gguf_type_name(et),
                         (unsigned long long)min_elem, (unsigned long long)left(P));
    if (out) {
        out->type = ESAR_GGUF_ARRAY;
        out->v.arr.type = (esar_gguf_type)et;
        out->v.arr.count = count;
        out->v.arr.raw = NULL;
        out->v.arr.items = NULL;
    }
    if (et != ESAR_GGUF_STRING && et != ESAR_GGUF_ARRAY) {
        if (et == ESAR_GGUF_BOOL)
            for (uint64_t i = 0; i < count; i++)
                if (P->p[P->pos + i] > 1)
                    return esar_fail(P->err, ESAR_ERR_FORMAT,
                                     "gguf: %s: bool element %llu at offset %llu is %u, not 0 or 1", ctx,
                                     (unsigned long long)i, (unsigned long long)(P->pos + i), P->p[P->pos + i]);
        if (out)
            out->v.arr.raw = P->p + P->pos;
        P->pos += count * min_elem;
        return ESAR_OK;
    }
    /* Reserve the elements contiguously, then parse each (nested arrays reserve after). */
    esar_gguf_value *items = P->pool ? P->pool + P->n_pool : NULL;
    P->n_pool += count;
    if (out)
        out->v.arr.items = items;
    /* an element that is an array carries its own element type and count, as a value does */
    for (uint64_t i = 0; i < count; i++)
        if ((st = parse_value(P, et, depth + 1, items ? &items[i] : NULL, ctx)))
            return st;
    return ESAR_OK;
}

static esar_status parse_kv(parser *P, uint64_t index, kv_entry *out)
{
    char ctx[128];
    uint64_t at = P->pos;
    esar_gguf_str key = {0};
    uint32_t t = 0;
    esar_status st;
    snprintf(ctx, sizeof ctx, "key/value #%llu", (unsigned long long)index);
    if ((st = rd_str(P, &key, "key", ctx)))
        return st;
    if (key.len == 0)
        return esar_fail(P->err, ESAR_ERR_FORMAT, "gguf: %s at offset %llu has an empty key", ctx,
                         (unsigned long long)at);
    if (memchr(key.ptr, 0, (size_t)key.len))
        return esar_fail(P->err, ESAR_ERR_FORMAT, "gguf: %s at offset %llu: key holds a NUL byte", ctx,
                         (unsigned long long)at);
    snprintf(ctx, sizeof ctx, "key '%.*s'", key.len > 80 ? 80 : (int)key.len, key.ptr);
    if ((st = rd_u32(P, &t, "value type", ctx)))
        return st;
    esar_gguf_value tmp;
    if ((st = parse_value(P, t, 0, &tmp, ctx)))
        return st;
    if (esar_gguf_str_eq(key, "general.alignment")) {
        if (tmp.type != ESAR_GGUF_U32)
            return esar_fail(P->err, ESAR_ERR_FORMAT, "gguf: general.alignment is %s, must be u32",
                             esar_gguf_type_name(tmp.type));
        if (tmp.v.u == 0 || (tmp.v.u & (tmp.v.u - 1)))
            return esar_fail(P->err, ESAR_ERR_FORMAT, "gguf: general.alignment %llu is not a power of two",
                             (unsigned long long)tmp.v.u);
        P->alignment = (uint32_t)tmp.v.u;
    }
    const char *name = keep_name(P, key);
    if (out) {
        out->key = name;
        out->val = tmp;
    }
    return ESAR_OK;
}

static esar_status parse_tensor_info(parser *P, uint64_t index, esar_gguf_tensor *out)
{
    char ctx[128];
    uint64_t at = P->pos;
    esar_gguf_str name;
    esar_status st;
    esar_gguf_tensor t;
    memset(&t, 0, sizeof t);
    snprintf(ctx, sizeof ctx, "tensor info #%llu", (unsigned long long)index);
    if ((st = rd_str(P, &name, "name", ctx)))
        return st;
    if (name.len == 0 || name.len > ESAR_GGUF_MAX_NAME || memchr(name.ptr, 0, (size_t)name.len))
        return esar_fail(P->err, ESAR_ERR_FORMAT,
                         "gguf: %s at offset %llu: name of %llu bytes is empty, longer than %d or holds a NUL",
                         ctx, (unsigned long long)at, (unsigned long long)name.len, ESAR_GGUF_MAX_NAME);
    snprintf(ctx, sizeof ctx, "tensor '%.*s'", (int)name.len, name.ptr);
    if ((st = rd_u32(P, &t.n_dims, "n_dims", ctx)))
        return st;
    if (t.n_dims > ESAR_GGUF_MAX_DIMS)
        return esar_fail(P->err, ESAR_ERR_FORMAT, "gguf: %s has %u dimensions, at most %d allowed", ctx,
                         t.n_dims, ESAR_GGUF_MAX_DIMS);
    t.n_elems = 1;
    for (uint32_t d = 0; d < ESAR_GGUF_MAX_DIMS; d++) {
        t.ne[d] = 1;
        if (d >= t.n_dims)
            continue;
        if ((st = rd_u64(P, &t.ne[d], "dimension", ctx)))
            return st;
        if (t.ne[d] > (uint64_t)INT64_MAX)
            return esar_fail(P->err, ESAR_ERR_FORMAT, "gguf: %s: dimension %u is %llu, over INT64_MAX", ctx,
                             d, (unsigned long long)t.ne[d]);
        if (t.ne[d] && t.n_elems > (uint64_t)INT64_MAX / t.ne[d])
            return esar_fail(P->err, ESAR_ERR_FORMAT, "gguf: %s: the element count overflows 63 bits at dimension %u",
                             ctx, d);
        t.n_elems *= t.ne[d];
    }
    if ((st = rd_u32(P, &t.type, "type", ctx)))
        return st;
    const esar_type_info *ti = esar_type_info_of(t.type);
    if (!ti)
        return esar_fail(P->err, ESAR_ERR_FORMAT, "gguf: %s has unknown ggml type %u", ctx, t.type);
    if (t.ne[0] % ti->block_elems)
        return esar_fail(P->err, ESAR_ERR_FORMAT, "gguf: %s: row length %llu is not a multiple of the %s block (%u)",
                         ctx, (unsigned long long)t.ne[0], ti->name, ti->block_elems);
    t.row_bytes = t.ne[0] / ti->block_elems * ti->block_bytes; /* <= 2^63 / 1 * 292 / 32: no overflow */
    uint64_t blocks = t.n_elems / ti->block_elems;
    if (blocks > (uint64_t)INT64_MAX / ti->block_bytes)
        return esar_fail(P->err, ESAR_ERR_FORMAT, "gguf: %s: byte size of %llu %s blocks overflows", ctx,
                         (unsigned long long)blocks, ti->name);
    t.n_bytes = blocks * ti->block_bytes;
    t.n_rows = t.ne[0] ? t.n_elems / t.ne[0] : 0;
    if ((st = rd_u64(P, &t.offset, "data offset", ctx)))
        return st;
    if (t.offset % P->alignment)
        return esar_fail(P->err, ESAR_ERR_FORMAT, "gguf: %s: data offset %llu is not a multiple of the alignment %u",
                         ctx, (unsigned long long)t.offset, P->alignment);
    t.name = keep_name(P, name);
    if (out)
        *out = t;
    return ESAR_OK;
}

static int cmp_kv(const void *a, const void *b)
{
    return strcmp((*(const kv_entry *const *)a)->key, (*(const kv_entry *const *)b)->key);
}
static int cmp_tname(const void *a, const void *b)
{
    return strcmp((*(const esar_gguf_tensor *const *)a)->name, (*(const esar_gguf_tensor *const *)b)->name);
}
static int cmp_toff(const void *a, const void *b)
{
    const esar_gguf_tensor *x = *(const esar_gguf_tensor *const *)a, *y = *(const esar_gguf_tensor *const *)b;
    if (x->offset != y->offset)
        return x->offset < y->offset ? -1 : 1;
    return x->n_bytes < y->n_bytes ? -1 : x->n_bytes > y->n_bytes;
}

/* One pass over the file: measuring when g's arrays are NULL, filling otherwise. */
static esar_status parse_all(parser *P, esar_gguf *g)
{
    esar_status st;
    uint64_t n_tensors = 0, n_kv = 0;
    P->pos = 0;
    P->n_pool = P->n_names = 0;
    P->alignment = ESAR_GGUF_DEFAULT_ALIGNMENT;
    if (P->size < 4)
        return esar_fail(P->err, ESAR_ERR_FORMAT, "gguf: file of %llu bytes is too short for the magic",
                         (unsigned long long)P->size);
    if (memcmp(P->p, "GGUF", 4))
        return esar_fail(P->err, ESAR_ERR_FORMAT,
                         "gguf: bad magic %02x %02x %02x %02x at offset 0 (want \"GGUF\")", P->p[0], P->p[1],
                         P->p[2], P->p[3]);
    P->pos = 4;
    if ((st = rd_u32(P, &g->version, "version", "header")))
        return st;
    if (g->version == 1)
        return esar_fail(P->err, ESAR_ERR_UNSUPPORTED, "gguf: version 1 (32-bit counts) is not supported");
    if (g->version != 2 && g->version != 3) {
        if ((g->version & 0xffff) == 0 && (g->version >> 16))
            return esar_fail(P->err, ESAR_ERR_UNSUPPORTED,
                             "gguf: version field 0x%08x looks like a big-endian file; only little-endian is supported",
                             g->version);
        return esar_fail(P->err, ESAR_ERR_FORMAT, "gguf: unsupported version %u (want 2 or 3)", g->version);
    }
    if ((st = rd_u64(P, &n_tensors, "tensor count", "header")) || (st = rd_u64(P, &n_kv, "key/value count", "header")))
        return st;
    /* A key/value takes at least 8 + 1 + 4 + 1 bytes, a tensor info 8 + 1 + 4 + 4 + 8. */
    if (n_kv > left(P) / 14)
        return esar_fail(P->err, ESAR_ERR_FORMAT, "gguf: header claims %llu key/value pairs, but only %llu bytes follow",
                         (unsigned long long)n_kv, (unsigned long long)left(P));
    if (n_tensors > left(P) / 25)
        return esar_fail(P->err, ESAR_ERR_FORMAT, "gguf: header claims %llu tensors, but only %llu bytes follow",
                         (unsigned long long)n_tensors, (unsigned long long)left(P));
    g->n_kv = n_kv;
    g->n_tensors = n_tensors;
    for (uint64_t i = 0; i < n_kv; i++)
        if ((st = parse_kv(P, i, g->kv ? &g->kv[i] : NULL)))
            return st;
    g->alignment = P->alignment;
    for (uint64_t i = 0; i < n_tensors; i++)
        if ((st = parse_tensor_info(P, i, g->tensors ? &g->tensors[i] : NULL)))
            return st;
    g->data_offset = (P->pos + g->alignment - 1) / g->alignment * g->alignment;
    return ESAR_OK;
}

/* Checks, after filling: data extents, overlaps, duplicate names and keys. */
static esar_status check_tables(esar_gguf *g, esar_err *err)
{
    for (uint64_t i = 0; i < g->n_kv; i++)
        g->kv_sorted[i] = &g->kv[i];
    qsort(g->kv_sorted, (size_t)g->n_kv, sizeof *g->kv_sorted, cmp_kv);
    for (uint64_t i = 1; i < g->n_kv; i++)
        if (!strcmp(g->kv_sorted[i - 1]->key, g->kv_sorted[i]->key))
            return esar_fail(err, ESAR_ERR_FORMAT, "gguf: duplicate key '%s'", g->kv_sorted[i]->key);

    for (uint64_t i = 0; i < g->n_tensors; i++)
        g->t_sorted[i] = &g->tensors[i];
    qsort(g->t_sorted, (size_t)g->n_tensors, sizeof *g->t_sorted, cmp_tname);
    for (uint64_t i = 1; i < g->n_tensors; i++)
        if (!strcmp(g->t_sorted[i - 1]->name, g->t_sorted[i]->name))
            return esar_fail(err, ESAR_ERR_FORMAT, "gguf: duplicate tensor name '%s'", g->t_sorted[i]->name);

    uint64_t room = g->data_offset <= g->size ? g->size - g->data_offset : 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        esar_gguf_tensor *t = &g->tensors[i];
        if (g->data_offset > g->size || t->offset > room || t->n_bytes > room - t->offset)
            return esar_fail(err, ESAR_ERR_FORMAT,
                             "gguf: tensor '%s' data at file offset %llu + %llu (%llu bytes) lies past the end of the "
                             "file (%llu bytes)",
                             t->name, (unsigned long long)g->data_offset, (unsigned long long)t->offset,
                             (unsigned long long)t->n_bytes, (unsigned long long)g->size);
        t->data = g->base + g->data_offset + t->offset;
    }
    /* t_sorted is reused for the overlap check, then sorted back by name. */
    qsort(g->t_sorted, (size_t)g->n_tensors, sizeof *g->t_sorted, cmp_toff);
    for (uint64_t i = 1; i < g->n_tensors; i++) {
        const esar_gguf_tensor *a = g->t_sorted[i - 1], *b = g->t_sorted[i];
        if (a->offset + a->n_bytes > b->offset && a->n_bytes && b->n_bytes)
            return esar_fail(err, ESAR_ERR_FORMAT, "gguf: tensors '%s' [%llu, %llu) and '%s' [%llu, %llu) overlap",
                             a->name, (unsigned long long)a->offset, (unsigned long long)(a->offset + a->n_bytes),
                             b->name, (unsigned long long)b->offset, (unsigned long long)(b->offset + b->n_bytes));
    }
    qsort(g->t_sorted, (size_t)g->n_tensors, sizeof *g->t_sorted, cmp_tname);
    return ESAR_OK;
}

static esar_status open_bytes(esar_gguf *g, esar_err *err)
{
    parser P = {.p = g->base, .size = g->size, .err = err};
    esar_status st = parse_all(&P, g);
    if (st)
        return st;
    /* Every count below was backed by bytes in the measuring pass, so these sizes are bounded
     * by a small multiple of the file size. */
    uint64_t n_pool = P.n_pool, n_names = P.n_names;
    if (n_pool > SIZE_MAX / sizeof(esar_gguf_value) || g->n_kv > SIZE_MAX / sizeof(kv_entry) ||
        g->n_tensors > SIZE_MAX / sizeof(esar_gguf_tensor) || n_names >= SIZE_MAX)
        return esar_fail(err, ESAR_ERR_NOMEM, "gguf: tables too large for this address space");
    g->kv = calloc((size_t)g->n_kv + 1, sizeof *g->kv);
    g->kv_sorted = calloc((size_t)g->n_kv + 1, sizeof *g->kv_sorted);
    g->tensors = calloc((size_t)g->n_tensors + 1, sizeof *g->tensors);
    g->t_sorted = calloc((size_t)g->n_tensors + 1, sizeof *g->t_sorted);
    g->pool = calloc((size_t)n_pool + 1, sizeof *g->pool);
    g->names = malloc((size_t)n_names + 1);
    if (!g->kv || !g->kv_sorted || !g->tensors || !g->t_sorted || !g->pool || !g->names)
        return esar_fail(err, ESAR_ERR_NOMEM, "gguf: out of memory for %llu values, %llu keys, %llu tensors",
                         (unsigned long long)n_pool, (unsigned long long)g->n_kv, (unsigned long long)g->n_tensors);
    P.pool = g->pool;
    P.names = g->names;
    if ((st = parse_all(&P, g)))
        return st;
    if (P.n_pool != n_pool || P.n_names != n_names) /* cannot happen: same bytes, same code */
        return esar_fail(err, ESAR_ERR_FORMAT, "gguf: internal error: the two passes disagree");
    return check_tables(g, err);
}

esar_status esar_gguf_open_memory(const void *data, size_t size, esar_gguf **out, esar_err *err)
{
    if (!out)
        return esar_fail(err, ESAR_ERR_ARG, "gguf: out is NULL");
    *out = NULL;
    if (!data && size)
        return esar_fail(err, ESAR_ERR_ARG, "gguf: data is NULL");
    esar_gguf *g = calloc(1, sizeof *g);
    if (!g)
        return esar_fail(err, ESAR_ERR_NOMEM, "gguf: out of memory");
    g->base = data ? data : (const uint8_t *)"";
    g->size = size;
    esar_status st = open_bytes(g, err);
    if (st) {
        esar_gguf_close(g);
        return st;
    }
    *out = g;
    return ESAR_OK;
}

esar_status esar_gguf_open(const char *path, esar_gguf **out, esar_err *err)
{
    if (!out || !path)
        return esar_fail(err, ESAR_ERR_ARG, "gguf: path or out is NULL");
    *out = NULL;
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return esar_fail(err, ESAR_ERR_IO, "gguf: cannot open '%s': %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return esar_fail(err, ESAR_ERR_IO, "gguf: '%s' is not a regular file", path);
    }
    esar_gguf *g = calloc(1, sizeof *g);
    if (!g) {
        close(fd);
        return esar_fail(err, ESAR_ERR_NOMEM, "gguf: out of memory");
    }
    g->size = (uint64_t)sb.st_size;
    if ((uint64_t)sb.st_size > SIZE_MAX) {
        close(fd);
        free(g);
        return esar_fail(err, ESAR_ERR_IO, "gguf: '%s' is too large to map", path);
    }
    if (g->size) {
        void *m = mmap(NULL, (size_t)g->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m != MAP_FAILED) {
            g->map = m;
            g->base = m;
        } else {
            /* No mmap (some file systems): read the file instead. */
            g->copy = malloc((size_t)g->size);
            size_t got = 0;
            while (g->copy && got < g->size) {
                ssize_t r = pread(fd, g->copy + got, (size_t)g->size - got, (off_t)got);
                if (r <= 0)
                    break;
                got += (size_t)r;
            }
            if (!g->copy || got != g->size) {
                close(fd);
                esar_gguf_close(g);
                return esar_fail(err, ESAR_ERR_IO, "gguf: cannot map or read '%s'", path);
            }
            g->base = g->copy;
        }
    } else {
        g->base = (const uint8_t *)"";
    }
    close(fd);
    esar_status st = open_bytes(g, err);
    if (st) {
        esar_err_suffix(err, " (in '%s')", path);
        esar_gguf_close(g);
        return st;
    }
    *out = g;
    return ESAR_OK;
}

void esar_gguf_close(esar_gguf *g)
{
    if (!g)
        return;
    if (g->map)
        munmap(g->map, (size_t)g->size);
    free(g->copy);
    free(g->kv);
    free(g->kv_sorted);
    free(g->tensors);
    free(g->t_sorted);
    free(g->pool);
    free(g->names);
    free(g);
}

uint32_t esar_gguf_version(const esar_gguf *g) { return g ? g->version : 0; }
uint32_t esar_gguf_alignment(const esar_gguf *g) { return g ? g->alignment : 0; }
uint64_t esar_gguf_data_offset(const esar_gguf *g) { return g ? g->data_offset : 0; }
uint64_t esar_gguf_kv_count(const esar_gguf *g) { return g ? g->n_kv : 0; }
uint64_t esar_gguf_tensor_count(const esar_gguf *g) { return g ? g->n_tensors : 0; }

const esar_gguf_value *esar_gguf_kv_at(const esar_gguf *g, uint64_t i, const char **key)
{
    if (!g || i >= g->n_kv)
        return NULL;
    if (key)
        *key = g->kv[i].key;
    return &g->kv[i].val;
}

const esar_gguf_value *esar_gguf_find(const esar_gguf *g, const char *key)
{
    if (!g || !key)
        return NULL;
    uint64_t lo = 0, hi = g->n_kv;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(g->kv_sorted[mid]->key, key);
        if (c == 0)
            return &g->kv_sorted[mid]->val;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

int esar_gguf_str_eq(esar_gguf_str s, const char *c)
{
    size_t n = strlen(c);
    return s.len == n && memcmp(s.ptr, c, n) == 0;
}

static esar_status find_typed(const esar_gguf *g, const char *key, const esar_gguf_value **v, esar_err *err)
{
    if (!g || !key)
        return esar_fail(err, ESAR_ERR_ARG, "gguf: NULL file or key");
    *v = esar_gguf_find(g, key);
    if (!*v)
        return esar_fail(err, ESAR_ERR_NOT_FOUND, "gguf: no key '%s'", key);
    return ESAR_OK;
}

static int is_unsigned(esar_gguf_type t)
{
    return t == ESAR_GGUF_U8 || t == ESAR_GGUF_U16 || t == ESAR_GGUF_U32 || t == ESAR_GGUF_U64;
}
static int is_signed(esar_gguf_type t)
{
    return t == ESAR_GGUF_I8 || t == ESAR_GGUF_I16 || t == ESAR_GGUF_I32 || t == ESAR_GGUF_I64;
}

esar_status esar_gguf_get_u32(const esar_gguf *g, const char *key, uint32_t *out, esar_err *err)
{
    const esar_gguf_value *v;
    esar_status st = find_typed(g, key, &v, err);
    if (st)
        return st;
    if (is_unsigned(v->type) && v->v.u <= UINT32_MAX)
        *out = (uint32_t)v->v.u;
    else if (is_signed(v->type) && v->v.i >= 0 && v->v.i <= (int64_t)UINT32_MAX)
        *out = (uint32_t)v->v.i;
    else
        return esar_fail(err, ESAR_ERR_TYPE, "gguf: key '%s' is %s%s, wanted an integer in [0, 2^32)", key,
                         esar_gguf_type_name(v->type),
                         is_unsigned(v->type) || is_signed(v->type) ? " out of range" : "");
    return ESAR_OK;
}

esar_status esar_gguf_get_i64(const esar_gguf *g, const char *key, int64_t *out, esar_err *err)
{
    const esar_gguf_value *v;
    esar_status st = find_typed(g, key, &v, err);
    if (st)
        return st;
    if (is_unsigned(v->type) && v->v.u <= (uint64_t)INT64_MAX)
        *out = (int64_t)v->v.u;
    else if (is_signed(v->type))
        *out = v->v.i;
    else
        return esar_fail(err, ESAR_ERR_TYPE, "gguf: key '%s' is %s, wanted a 64-bit signed integer", key,
                         esar_gguf_type_name(v->type));
    return ESAR_OK;
}

esar_status esar_gguf_get_f32(const esar_gguf *g, const char *key, float *out, esar_err *err)
{
    const esar_gguf_value *v;
    esar_status st = find_typed(g, key, &v, err);
    if (st)
        return st;
    if (v->type != ESAR_GGUF_F32 && v->type != ESAR_GGUF_F64)
        return esar_fail(err, ESAR_ERR_TYPE, "gguf: key '%s' is %s, wanted f32 or f64", key,
                         esar_gguf_type_name(v->type));
    *out = (float)v->v.f;
    return ESAR_OK;
}

esar_status esar_gguf_get_bool(const esar_gguf *g, const char *key, int *out, esar_err *err)
{
    const esar_gguf_value *v;
    esar_status st = find_typed(g, key, &v, err);
    if (st)
        return st;
    if (v->type != ESAR_GGUF_BOOL)
        return esar_fail(err, ESAR_ERR_TYPE, "gguf: key '%s' is %s, wanted bool", key, esar_gguf_type_name(v->type));
    *out = (int)v->v.u;
    return ESAR_OK;
}

esar_status esar_gguf_get_str(const esar_gguf *g, const char *key, esar_gguf_str *out, esar_err *err)
{
    const esar_gguf_value *v;
    esar_status st = find_typed(g, key, &v, err);
    if (st)
        return st;
    if (v->type != ESAR_GGUF_STRING)
        return esar_fail(err, ESAR_ERR_TYPE, "gguf: key '%s' is %s, wanted string", key, esar_gguf_type_name(v->type));
    *out = v->v.str;
    return ESAR_OK;
}

esar_status esar_gguf_get_array(const esar_gguf *g, const char *key, esar_gguf_type elem_type,
                                const esar_gguf_value **out, esar_err *err)
{
    const esar_gguf_value *v;
    esar_status st = find_typed(g, key, &v, err);
    if (st)
        return st;
    if (v->type != ESAR_GGUF_ARRAY)
        return esar_fail(err, ESAR_ERR_TYPE, "gguf: key '%s' is %s, wanted an array", key, esar_gguf_type_name(v->type));
    if (elem_type != ESAR_GGUF_TYPE_COUNT && v->v.arr.type != elem_type)
        return esar_fail(err, ESAR_ERR_TYPE, "gguf: key '%s' is an array of %s, wanted %s", key,
                         esar_gguf_type_name(v->v.arr.type), esar_gguf_type_name(elem_type));
    *out = v;
    return ESAR_OK;
}

esar_status esar_gguf_array_get(const esar_gguf_value *arr, uint64_t i, esar_gguf_value *out, esar_err *err)
{
    if (!arr || !out || arr->type != ESAR_GGUF_ARRAY)
        return esar_fail(err, ESAR_ERR_ARG, "gguf: array_get on a NULL or non-array value");
    if (i >= arr->v.arr.count)
        return esar_fail(err, ESAR_ERR_ARG, "gguf: array index %llu out of range (count %llu)",
                         (unsigned long long)i, (unsigned long long)arr->v.arr.count);
    if (arr->v.arr.items) {
        *out = arr->v.arr.items[i];
        return ESAR_OK;
    }
    return decode_scalar(arr->v.arr.raw + i * k_scalar_size[arr->v.arr.type], arr->v.arr.type, out);
}

const esar_gguf_tensor *esar_gguf_tensor_at(const esar_gguf *g, uint64_t i)
{
    return g && i < g->n_tensors ? &g->tensors[i] : NULL;
}

const esar_gguf_tensor *esar_gguf_find_tensor(const esar_gguf *g, const char *name)
{
    if (!g || !name)
        return NULL;
    uint64_t lo = 0, hi = g->n_tensors;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(g->t_sorted[mid]->name, name);
        if (c == 0)
            return g->t_sorted[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

esar_status esar_gguf_get_tensor(const esar_gguf *g, const char *name, uint32_t n_dims, const uint64_t *ne,
                                 const esar_gguf_tensor **out, esar_err *err)
{
    if (!g || !name || !out || n_dims > ESAR_GGUF_MAX_DIMS)
        return esar_fail(err, ESAR_ERR_ARG, "gguf: get_tensor: bad argument");
    const esar_gguf_tensor *t = esar_gguf_find_tensor(g, name);
    if (!t)
        return esar_fail(err, ESAR_ERR_NOT_FOUND, "gguf: no tensor '%s'", name);
    if (ne) {
        int ok = 1;
        for (uint32_t d = 0; d < ESAR_GGUF_MAX_DIMS; d++)
            ok &= t->ne[d] == (d < n_dims ? ne[d] : 1);
        if (!ok)
            return esar_fail(err, ESAR_ERR_TYPE, "gguf: tensor '%s' has shape [%llu, %llu, %llu, %llu], wanted "
                             "[%llu, %llu, %llu, %llu]", name,
                             (unsigned long long)t->ne[0], (unsigned long long)t->ne[1],
                             (unsigned long long)t->ne[2], (unsigned long long)t->ne[3],
                             (unsigned long long)(n_dims > 0 ? ne[0] : 1), (unsigned long long)(n_dims > 1 ? ne[1] : 1),
                             (unsigned long long)(n_dims > 2 ? ne[2] : 1), (unsigned long long)(n_dims > 3 ? ne[3] : 1));
    }
    *out = t;
    return ESAR_OK;
}

esar_status esar_gguf_tensor_row(const esar_gguf_tensor *t, uint64_t row, float *dst, esar_err *err)
{
    if (!t || !dst)
        return esar_fail(err, ESAR_ERR_ARG, "gguf: tensor_row: NULL tensor or destination");
    if (row >= t->n_rows)
        return esar_fail(err, ESAR_ERR_ARG, "gguf: tensor '%s': row %llu out of range (%llu rows)", t->name,
                         (unsigned long long)row, (unsigned long long)t->n_rows);
    esar_status st = esar_dequant_row(t->type, t->data + row * t->row_bytes, (size_t)t->row_bytes, dst, t->ne[0], err);
    if (st)
        esar_err_prefix(err, "tensor '%s': ", t->name);
    return st;
}
