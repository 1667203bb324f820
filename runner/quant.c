/* quant.c - ggml type sizes and the CPU dequantizers of the classic block formats.
 *
 * Formats, per block of 32 (ggml/src/ggml-common.h, dequantize_row_* in ggml-quants.c):
 *   Q4_0: f16 d, 16 bytes of nibbles;            x = (q - 8) * d
 *   Q4_1: f16 d, f16 m, 16 bytes of nibbles;     x = q * d + m
 *   Q5_0: f16 d, u32 high bits, 16 bytes;        x = (q5 - 16) * d
 *   Q5_1: f16 d, f16 m, u32 high bits, 16 bytes; x = q5 * d + m
 *   Q8_0: f16 d, 32 int8;                        x = q * d
 * Nibble j of byte j holds element j (low 4 bits) and element j + 16 (high 4 bits).
 */
#include "quant.h"

#include <math.h>
#include <string.h>

static const esar_type_info k_types[ESAR_TYPE_COUNT] = {
    [0] = {"F32", 1, 4, 1},       [1] = {"F16", 1, 2, 1},      [2] = {"Q4_0", 32, 18, 1},
    [3] = {"Q4_1", 32, 20, 1},    [6] = {"Q5_0", 32, 22, 1},   [7] = {"Q5_1", 32, 24, 1},
    [8] = {"Q8_0", 32, 34, 1},    [9] = {"Q8_1", 32, 36, 0},   [10] = {"Q2_K", 256, 84, 0},
    [11] = {"Q3_K", 256, 110, 0}, [12] = {"Q4_K", 256, 144, 0}, [13] = {"Q5_K", 256, 176, 0},
    [14] = {"Q6_K", 256, 210, 0}, [15] = {"Q8_K", 256, 292, 0}, [16] = {"IQ2_XXS", 256, 66, 0},
    [17] = {"IQ2_XS", 256, 74, 0}, [18] = {"IQ3_XXS", 256, 98, 0}, [19] = {"IQ1_S", 256, 50, 0},
    [20] = {"IQ4_NL", 32, 18, 0}, [21] = {"IQ3_S", 256, 110, 0}, [22] = {"IQ2_S", 256, 82, 0},
    [23] = {"IQ4_XS", 256, 136, 0}, [24] = {"I8", 1, 1, 0},    [25] = {"I16", 1, 2, 0},
    [26] = {"I32", 1, 4, 0},      [27] = {"I64", 1, 8, 0},     [28] = {"F64", 1, 8, 0},
    [29] = {"IQ1_M", 256, 56, 0}, [30] = {"BF16", 1, 2, 1},    [34] = {"TQ1_0", 256, 54, 0},
    [35] = {"TQ2_0", 256, 66, 0}, [39] = {"MXFP4", 32, 17, 0},
};

const esar_type_info *esar_type_info_of(uint32_t type)
{
    if (type >= ESAR_TYPE_COUNT || !k_types[type].name)
        return NULL;
    return &k_types[type];
}

float esar_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13);
    } else if (exp) {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    } else if (man) {
        /* subnormal: value = man * 2^-24, exact in float */
        float f = (float)man * 0x1p-24f;
        return sign ? -f : f;
    } else {
        bits = sign;
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

float esar_bf16_to_f32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t esar_f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) /* inf or NaN (quiet, keeps a payload bit) */
        return (uint16_t)(sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 | ((ax >> 13) & 0x3ff) : 0));
    if (ax >= 0x477ff000u) /* rounds to >= 65520: overflow */
        return (uint16_t)(sign | 0x7c00);
    if (ax < 0x38800000u) { /* below the smallest normal half: round man * 2^-24 */
        float a;
        memcpy(&a, &ax, 4);
        return (uint16_t)(sign | (uint16_t)lrintf(a * 0x1p24f)); /* default rounding: even */
    }
    uint32_t r = ax - 0x38000000u; /* rebias exponent 127 -> 15, still 23 mantissa bits */
    r += 0xfff + ((r >> 13) & 1);  /* round to nearest even on the 13 dropped bits */
    return (uint16_t)(sign | (r >> 13));
}

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

esar_status esar_dequant_row(uint32_t type, const void *src, size_t src_bytes, float *dst,
                             uint64_t n, esar_err *err)
{
    const esar_type_info *ti = esar_type_info_of(type);
    if (!ti)
        return esar_fail(err, ESAR_ERR_ARG, "dequant: unknown ggml type %u", type);
    if (!ti->dequant)
        return esar_fail(err, ESAR_ERR_UNSUPPORTED, "dequant: no CPU dequantizer for type %s", ti->name);
    if (n % ti->block_elems)
        return esar_fail(err, ESAR_ERR_ARG, "dequant: %llu elements is not a multiple of the %s block (%u)",
                         (unsigned long long)n, ti->name, ti->block_elems);
    uint64_t nb = n / ti->block_elems;
    if ((!src || !dst) && n)
        return esar_fail(err, ESAR_ERR_ARG, "dequant: NULL buffer");
    if (nb > src_bytes / ti->block_bytes)
        return esar_fail(err, ESAR_ERR_ARG, "dequant: %llu %s elements need %llu bytes, have %zu",
                         (unsigned long long)n, ti->name,
                         (unsigned long long)nb * ti->block_bytes, src_bytes);
    const uint8_t *s = src;
    switch (type) {
    case ESAR_TYPE_F32:
        memcpy(dst, s, (size_t)n * 4); /* little-endian host assumed, as ggml does */
        break;
    case ESAR_TYPE_F16:
        for (uint64_t i = 0; i < n; i++)
            dst[i] = esar_f16_to_f32(rd16(s + 2 * i));
        break;
    case ESAR_TYPE_BF16:
        for (uint64_t i = 0; i < n; i++)
            dst[i] = esar_bf16_to_f32(rd16(s + 2 * i));
        break;
    case ESAR_TYPE_Q4_0:
        for (uint64_t b = 0; b < nb; b++, s += 18, dst += 32) {
            float d = esar_f16_to_f32(rd16(s));
            for (int j = 0; j < 16; j++) {
                dst[j] = (float)((s[2 + j] & 0x0f) - 8) * d;
                dst[j + 16] = (float)((s[2 + j] >> 4) - 8) * d;
            }
        }
        break;
    case ESAR_TYPE_Q4_1:
        for (uint64_t b = 0; b < nb; b++, s += 20, dst += 32) {
            float d = esar_f16_to_f32(rd16(s)), m = esar_f16_to_f32(rd16(s + 2));
            for (int j = 0; j < 16; j++) {
                dst[j] = (float)(s[4 + j] & 0x0f) * d + m;
                dst[j + 16] = (float)(s[4 + j] >> 4) * d + m;
            }
        }
        break;
    case ESAR_TYPE_Q5_0:
        for (uint64_t b = 0; b < nb; b++, s += 22, dst += 32) {
            float d = esar_f16_to_f32(rd16(s));
            uint32_t qh = rd32(s + 2);
            for (int j = 0; j < 16; j++) {
                int x0 = (int)((s[6 + j] & 0x0f) | (((qh >> j) << 4) & 0x10)) - 16;
                int x1 = (int)((s[6 + j] >> 4) | ((qh >> (j + 12)) & 0x10)) - 16;
                dst[j] = (float)x0 * d;
                dst[j + 16] = (float)x1 * d;
            }
        }
        break;
    case ESAR_TYPE_Q5_1:
        for (uint64_t b = 0; b < nb; b++, s += 24, dst += 32) {
            float d = esar_f16_to_f32(rd16(s)), m = esar_f16_to_f32(rd16(s + 2));
            uint32_t qh = rd32(s + 4);
            for (int j = 0; j < 16; j++) {
                int x0 = (int)((s[8 + j] & 0x0f) | (((qh >> j) << 4) & 0x10));
                int x1 = (int)((s[8 + j] >> 4) | ((qh >> (j + 12)) & 0x10));
                dst[j] = (float)x0 * d + m;
                dst[j + 16] = (float)x1 * d + m;
            }
        }
        break;
    case ESAR_TYPE_Q8_0:
        for (uint64_t b = 0; b < nb; b++, s += 34, dst += 32) {
            float d = esar_f16_to_f32(rd16(s));
            for (int j = 0; j < 32; j++)
                dst[j] = (float)(int8_t)s[2 + j] * d;
        }
        break;
    default:
        return esar_fail(err, ESAR_ERR_UNSUPPORTED, "dequant: no CPU dequantizer for type %s", ti->name);
    }
    return ESAR_OK;
}
