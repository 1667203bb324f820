/* quant.h - ggml tensor types: block sizes, and dequantization of a row to f32 on the CPU.
 *
 * The block layouts are ggml's (ggml/src/ggml-common.h); numbers are little-endian. A row of n
 * elements of a block type holds n / block_elems blocks of block_bytes each, back to back.
 * Dequantization is exact in the sense of ggml's dequantize_row_*: the same integer codes
 * times the same fp16 scales, computed in float.
 */
#ifndef ESAR_QUANT_H
#define ESAR_QUANT_H

#include "status.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ggml_type values as stored in GGUF tensor infos (pinned by the file format). */
enum {
    ESAR_TYPE_F32 = 0,
    ESAR_TYPE_F16 = 1,
    ESAR_TYPE_Q4_0 = 2,
    ESAR_TYPE_Q4_1 = 3,
    ESAR_TYPE_Q5_0 = 6,
    ESAR_TYPE_Q5_1 = 7,
    ESAR_TYPE_Q8_0 = 8,
    ESAR_TYPE_Q8_1 = 9,
    ESAR_TYPE_BF16 = 30,
    ESAR_TYPE_COUNT = 43 /* one past the largest value the runner knows the size of */
};

typedef struct esar_type_info {
    const char *name;      /* "Q4_1" */
    uint32_t block_elems;  /* elements per block: 1 for plain types, 32 or 256 for quants */
    uint32_t block_bytes;  /* bytes per block */
    int dequant;           /* 1 when esar_dequant_row handles the type */
} esar_type_info;

/* The size facts of a ggml type, or NULL for a value that is no (longer a) ggml type. */
const esar_type_info *esar_type_info_of(uint32_t type);

/* IEEE half and bfloat16 to float, exact (subnormals, infinities and NaN kept). */
float esar_f16_to_f32(uint16_t h);
float esar_bf16_to_f32(uint16_t h);
/* float to IEEE half, round to nearest even (for tests and writers). */
uint16_t esar_f32_to_f16(float f);

/* Dequantizes n elements of type `type` from src (src_bytes readable) into dst[n].
 * n must be a multiple of the type's block_elems and src must hold the n / block_elems blocks.
 * Fails with ESAR_ERR_UNSUPPORTED for a type without a dequantizer, ESAR_ERR_ARG otherwise. */
esar_status esar_dequant_row(uint32_t type, const void *src, size_t src_bytes, float *dst,
                             uint64_t n, esar_err *err);

#ifdef __cplusplus
}
#endif

#endif
