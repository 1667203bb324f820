/* cpu_ref.h - the CPU reference of the model kernels (the spec the GPU tests compare with):
 * plain loops, double accumulation, no code shared with the GPU path. Layouts are row-major,
 * with each buffer's shape written beside it. Weight types are ggml_type values (0 F32, 1 F16,
 * 3 Q4_1, 8 Q8_0); rows of quantized types are blocks of 32 elements (ggml-common.h). */
#ifndef ESAG_CPU_REF_H
#define ESAG_CPU_REF_H

#include <stddef.h>
#include <stdint.h>

/* IEEE half <-> float (round to nearest even; subnormals, infinities and NaN kept). */
float ref_f16_to_f32(uint16_t h);
uint16_t ref_f32_to_f16(float f);

/* Bytes of one row of n elements (n a multiple of 32); 0 for another type. */
size_t ref_row_bytes(uint32_t type, uint32_t n);

/* Quantize x[n] into one row of `type` blocks (ggml's reference quantizers: Q4_1 from the
 * block's min and max, Q8_0 from its absolute max, F16 rounded to nearest even). */
void ref_quantize_row(uint32_t type, const float *x, uint32_t n, uint8_t *out);

/* Dequantize one row of n elements: out[n]. */
void ref_dequant_row(uint32_t type, const uint8_t *row, uint32_t n, float *out);

/* y[t][r] = (accumulate ? y[t][r] : 0) + sum_c w[r][c] x[t][c], in double:
 * w [rows][cols] (dequantized), x [T][ldx], y [T][ldy]. */
void ref_matmul(const float *w, uint32_t rows, uint32_t cols, const float *x, uint32_t ldx,
                uint32_t T, float *y, uint32_t ldy, int accumulate);

/* out[t][c] = x[t][c] / sqrt(mean_c x[t][c]^2 + eps) * w[c]: x, out [T][cols], w [cols]. */
void ref_rmsnorm(const float *x, const float *w, uint32_t T, uint32_t cols, float eps, float *out);

/* silu(g) * u, elementwise over n values. */
void ref_silu_mul(const float *g, const float *u, uint32_t n, float *out);

#endif
