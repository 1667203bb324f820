/* cpu_ref.c - the CPU reference of the model kernels (see cpu_ref.h). */
#include "cpu_ref.h"

#include <math.h>
#include <string.h>

float ref_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 31u, m = h & 1023u, bits;
    if (e == 0) {
        float v = ldexpf((float)m, -24); /* zero and subnormals */
        return sign ? -v : v;
    }
    if (e == 31)
        bits = sign | 0x7f800000u | (m << 13);
    else
        bits = sign | ((e + 112u) << 23) | (m << 13);
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t ref_f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    float a = fabsf(f);
    if (isnan(f))
        return sign | 0x7e00u;
    if (a >= 65520.0f) /* rounds to infinity */
        return sign | 0x7c00u;
    if (a < ldexpf(1.0f, -14)) { /* subnormal: units of 2^-24, nearest even by rintf */
        float q = rintf(a * 16777216.0f);
        return sign | (uint16_t)q;
    }
    int e;
    float mant = frexpf(a, &e);             /* a = mant * 2^e, mant in [0.5, 1) */
    float q = rintf(ldexpf(mant, 11));      /* 11 significant bits, nearest even */
    if (q >= 2048.0f) {
        q = 1024.0f;
        e++;
    }
    return sign | (uint16_t)((uint32_t)(e + 14) << 10) | (uint16_t)((uint32_t)q - 1024u);
}

size_t ref_row_bytes(uint32_t type, uint32_t n)
{
    if (n % 32)
        return 0;
    switch (type) {
    case 0: return (size_t)n * 4;
    case 1: return (size_t)n * 2;
    case 3: return (size_t)n / 32 * 20;
    case 8: return (size_t)n / 32 * 34;
    default: return 0;
    }
}

static void put_f16(uint8_t *p, float f)
{
    uint16_t h = ref_f32_to_f16(f);
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}

static float get_f16(const uint8_t *p) { return ref_f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }

void ref_quantize_row(uint32_t type, const float *x, uint32_t n, uint8_t *out)
{
    for (uint32_t b = 0; b < n / 32; b++) {
        const float *v = x + 32 * b;
        if (type == 0) {
            memcpy(out + 128 * b, v, 128);
        } else if (type == 1) {
            for (int j = 0; j < 32; j++)
                put_f16(out + 64 * b + 2 * j, v[j]);
        } else if (type == 3) { /* ggml quantize_row_q4_1_ref */
            uint8_t *blk = out + 20 * b;
            float lo = v[0], hi = v[0];
            for (int j = 1; j < 32; j++) {
                lo = fminf(lo, v[j]);
                hi = fmaxf(hi, v[j]);
            }
            float d = (hi - lo) / 15.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
            put_f16(blk, d);
            put_f16(blk + 2, lo);
            for (int j = 0; j < 16; j++) {
                int q0 = (int)((v[j] - lo) * id + 0.5f), q1 = (int)((v[j + 16] - lo) * id + 0.5f);
                q0 = q0 > 15 ? 15 : q0;
                q1 = q1 > 15 ? 15 : q1;
                blk[4 + j] = (uint8_t)(q0 | q1 << 4);
            }
        } else if (type == 8) { /* ggml quantize_row_q8_0_ref */
            uint8_t *blk = out + 34 * b;
            float amax = 0.0f;
            for (int j = 0; j < 32; j++)
                amax = fmaxf(amax, fabsf(v[j]));
            float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
            put_f16(blk, d);
            for (int j = 0; j < 32; j++)
                blk[2 + j] = (uint8_t)(int8_t)roundf(v[j] * id);
        }
    }
}

void ref_dequant_row(uint32_t type, const uint8_t *row, uint32_t n, float *out)
{
    for (uint32_t b = 0; b < n / 32; b++) {
        float *o = out + 32 * b;
        if (type == 0) {
            memcpy(o, row + 128 * b, 128);
        } else if (type == 1) {
            for (int j = 0; j < 32; j++)
                o[j] = get_f16(row + 64 * b + 2 * j);
        } else if (type == 3) {
            const uint8_t *blk = row + 20 * b;
            float d = get_f16(blk), m = get_f16(blk + 2);
            for (int j = 0; j < 16; j++) {
                o[j] = d * (float)(blk[4 + j] & 15) + m;
                o[j + 16] = d * (float)(blk[4 + j] >> 4) + m;
            }
        } else if (type == 8) {
            const uint8_t *blk = row + 34 * b;
            float d = get_f16(blk);
            for (int j = 0; j < 32; j++)
                o[j] = d * (float)(int8_t)blk[2 + j];
        }
    }
}

void ref_matmul(const float *w, uint32_t rows, uint32_t cols, const float *x, uint32_t ldx,
                uint32_t T, float *y, uint32_t ldy, int accumulate)
{
    for (uint32_t t = 0; t < T; t++)
        for (uint32_t r = 0; r < rows; r++) {
            double s = accumulate ? (double)y[(size_t)t * ldy + r] : 0.0;
            for (uint32_t c = 0; c < cols; c++)
                s += (double)w[(size_t)r * cols + c] * (double)x[(size_t)t * ldx + c];
            y[(size_t)t * ldy + r] = (float)s;
        }
}

void ref_rmsnorm(const float *x, const float *w, uint32_t T, uint32_t cols, float eps, float *out)
{
    for (uint32_t t = 0; t < T; t++) {
        const float *xr = x + (size_t)t * cols;
        double ss = 0.0;
        for (uint32_t c = 0; c < cols; c++)
            ss += (double)xr[c] * xr[c];
        double inv = 1.0 / sqrt(ss / cols + eps);
        for (uint32_t c = 0; c < cols; c++)
            out[(size_t)t * cols + c] = (float)(xr[c] * inv * w[c]);
    }
}

void ref_silu_mul(const float *g, const float *u, uint32_t n, float *out)
{
    for (uint32_t i = 0; i < n; i++)
        out[i] = (float)((double)g[i] / (1.0 + exp(-(double)g[i])) * u[i]);
}
