/* gguf.h - a validating reader of GGUF model files (versions 2 and 3, little-endian).
 *
 * Layout (ggml/docs/gguf.md): magic "GGUF", u32 version, u64 tensor_count, u64 kv_count, the
 * key/value metadata, the tensor infos, then padding to general.alignment (default 32) and the
 * tensor data, each tensor at a multiple of the alignment from the start of the data section.
 *
 * esar_gguf_open() maps the file read-only and checks everything before it returns: sizes
 * against the bytes that are there, counts against what those bytes could hold, every tensor's
 * shape, type, alignment and extent, duplicate keys and names. A file that passes can be read
 * through this API without further bounds checks; one that fails gives a message naming what is
 * wrong and where (key, tensor, file offset). No allocation is larger than a small multiple of
 * the file size, whatever counts the file claims.
 *
 * Lifetime: every pointer handed out (strings, values, tensor infos, tensor data) lives until
 * esar_gguf_close(). Thread safety: an esar_gguf is immutable after open; concurrent reads are
 * fine.
 */
#ifndef ESAR_GGUF_H
#define ESAR_GGUF_H

#include "quant.h"
#include "status.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Metadata value types (pinned by the file format). */
typedef enum esar_gguf_type {
    ESAR_GGUF_U8 = 0,
    ESAR_GGUF_I8 = 1,
    ESAR_GGUF_U16 = 2,
    ESAR_GGUF_I16 = 3,
    ESAR_GGUF_U32 = 4,
    ESAR_GGUF_I32 = 5,
    ESAR_GGUF_F32 = 6,
    ESAR_GGUF_BOOL = 7,
    ESAR_GGUF_STRING = 8,
    ESAR_GGUF_ARRAY = 9,
    ESAR_GGUF_U64 = 10,
    ESAR_GGUF_I64 = 11,
    ESAR_GGUF_F64 = 12,
    ESAR_GGUF_TYPE_COUNT = 13
} esar_gguf_type;

#define ESAR_GGUF_MAX_DIMS 4
#define ESAR_GGUF_MAX_NAME 63     /* bytes in a tensor name, as ggml's GGML_MAX_NAME - 1 */
#define ESAR_GGUF_MAX_DEPTH 8     /* nesting of arrays inside arrays */
#define ESAR_GGUF_DEFAULT_ALIGNMENT 32

/* A string inside the file: UTF-8 by the format's rule (not checked), NOT NUL-terminated. */
typedef struct esar_gguf_str {
    const char *ptr;
    uint64_t len;
} esar_gguf_str;

/* One metadata value. Scalars are widened: unsigned types and bool in u, signed in i, floats in
 * f. An array keeps its element type and count; elements of a scalar type are `raw`, the
 * little-endian bytes in the file (read them with esar_gguf_array_get), elements that are
 * strings or arrays are `items`, one value each. */
typedef struct esar_gguf_value {
    esar_gguf_type type;
    union {
        uint64_t u;
        int64_t i;
        double f;
        esar_gguf_str str;
        struct {
            esar_gguf_type type;
            uint64_t count;
            const uint8_t *raw;                  /* scalar elements, else NULL */
            const struct esar_gguf_value *items; /* string or array elements, else NULL */
        } arr;
    } v;
} esar_gguf_value;

/* One tensor. ne[0] is the contiguous dimension (a row); dims past n_dims are 1. */
typedef struct esar_gguf_tensor {
    const char *name;     /* NUL-terminated */
    uint32_t type;        /* ggml type, see quant.h; always one esar_type_info_of knows */
    uint32_t n_dims;      /* 1..4 (0 is read as a scalar: one element) */
    uint64_t ne[ESAR_GGUF_MAX_DIMS];
    uint64_t n_elems;     /* product of ne */
    uint64_t n_rows;      /* n_elems / ne[0] (0 when ne[0] is 0) */
    uint64_t row_bytes;   /* bytes of one row */
    uint64_t offset;      /* from the start of the data section */
    uint64_t n_bytes;
    const uint8_t *data;  /* n_bytes, inside the mapping */
} esar_gguf_tensor;

typedef struct esar_gguf esar_gguf;

/* Maps and validates the file at path. On success *out owns the mapping; free with
 * esar_gguf_close. On failure *out is NULL and err says why. */
esar_status esar_gguf_open(const char *path, esar_gguf **out, esar_err *err);

/* Validates size bytes at data without copying them: data must stay valid and unchanged until
 * esar_gguf_close. For tests and fuzzing; also for files the caller has mapped itself. */
esar_status esar_gguf_open_memory(const void *data, size_t size, esar_gguf **out, esar_err *err);

/* Unmaps and frees; NULL is fine. */
void esar_gguf_close(esar_gguf *g);

uint32_t esar_gguf_version(const esar_gguf *g);
uint32_t esar_gguf_alignment(const esar_gguf *g);
uint64_t esar_gguf_data_offset(const esar_gguf *g); /* file offset of the data section */

/* ---- metadata ---------------------------------------------------------------------------- */

uint64_t esar_gguf_kv_count(const esar_gguf *g);
/* The i-th pair in file order (i < kv_count); key is NUL-terminated. */
const esar_gguf_value *esar_gguf_kv_at(const esar_gguf *g, uint64_t i, const char **key);
/* The value of key, or NULL. O(log n). */
const esar_gguf_value *esar_gguf_find(const esar_gguf *g, const char *key);
/* A static name of a value type ("u32", "array"), "?" when out of range. */
const char *esar_gguf_type_name(uint32_t type);

/* Typed lookups: NOT_FOUND when absent, TYPE when the value cannot be read as asked. Integer
 * getters take any integer type whose value fits; the float getter takes f32 or f64. */
esar_status esar_gguf_get_u32(const esar_gguf *g, const char *key, uint32_t *out, esar_err *err);
esar_status esar_gguf_get_i64(const esar_gguf *g, const char *key, int64_t *out, esar_err *err);
esar_status esar_gguf_get_f32(const esar_gguf *g, const char *key, float *out, esar_err *err);
esar_status esar_gguf_get_bool(const esar_gguf *g, const char *key, int *out, esar_err *err);
esar_status esar_gguf_get_str(const esar_gguf *g, const char *key, esar_gguf_str *out, esar_err *err);
/* An array whose elements have type elem_type (ESAR_GGUF_TYPE_COUNT: any). */
esar_status esar_gguf_get_array(const esar_gguf *g, const char *key, esar_gguf_type elem_type,
                                const esar_gguf_value **out, esar_err *err);
/* Element i of an array value as a value of its own (scalars widened as above). */
esar_status esar_gguf_array_get(const esar_gguf_value *arr, uint64_t i, esar_gguf_value *out,
                                esar_err *err);
/* 1 when the string s equals the NUL-terminated c. */
int esar_gguf_str_eq(esar_gguf_str s, const char *c);

/* ---- tensors ----------------------------------------------------------------------------- */

uint64_t esar_gguf_tensor_count(const esar_gguf *g);
const esar_gguf_tensor *esar_gguf_tensor_at(const esar_gguf *g, uint64_t i); /* file order */
/* The tensor called name, or NULL. O(log n). */
const esar_gguf_tensor *esar_gguf_find_tensor(const esar_gguf *g, const char *name);
/* The tensor called name, checked to have exactly the shape ne[0..n_dims) (a NULL ne skips the
 * check). NOT_FOUND or TYPE (with the shapes in the message) otherwise. */
esar_status esar_gguf_get_tensor(const esar_gguf *g, const char *name, uint32_t n_dims,
                                 const uint64_t *ne, const esar_gguf_tensor **out, esar_err *err);
/* Dequantizes row `row` (ne[0] elements) of t into dst[ne[0]]. */
esar_status esar_gguf_tensor_row(const esar_gguf_tensor *t, uint64_t row, float *dst, esar_err *err);

#ifdef __cplusplus
}
#endif

#endif
