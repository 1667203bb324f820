#version 450
// matmul.comp - y[t][r] (+)= sum_c W[r][c] * x[t][c] for many tokens (prefill): a BM x BN
// tile of (rows x tokens) per workgroup, register-tiled TM x TN per invocation, W read in its
// GGUF block format (quant.glsl).
//
// Per block of 32 columns: the workgroup dequantizes BM rows of it into shared memory once and
// loads BN tokens of x beside it; then each invocation runs NK steps, each TM x TN dot products
// of one shared element per row and token. An element is a vec4 of 4 consecutive columns (NK =
// 8 of them a block), or with PACK64 (a build variant; shaderInt64) a u64vec4 holding the two
// vec4 of a quant.glsl unit, columns 4k.. and 16 + 4k.. (NK = 4): half as many shared loads of
// twice the width, which is what counts on lavapipe, where a load whose address differs between
// lanes is a loop over the lanes. Shared: 128 * (BM + BN) bytes either way (16 KiB for 64 x
// 64). Each weight is dequantized once per BN tokens and each x value read once per BM rows.
// WHOLE = 1 dequantizes whole blocks per invocation instead of 4-block units (as in
// matvec.comp: fewer loads, for CPU devices). Tiles past the last row or token compute on
// clamped (repeated) inputs and are not written.
// Constraints (host-checked): BM % TM == 0, BN % TN == 0, WG = (BM / TM) * (BN / TN).
#include "common.glsl"
#include "quant.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint BM = 64;
layout(constant_id = 2) const uint BN = 64;
layout(constant_id = 3) const uint TM = 4;
layout(constant_id = 4) const uint TN = 4;
layout(constant_id = 5) const uint WHOLE = 0;

layout(push_constant) uniform PC {
    WBuf w;      // [rows][nb] blocks
    V4Buf x;     // f32 [T][ldx]
    F32Buf y;    // f32 [T][ldy]
    uint rows, nb, ldx, ldy;
    uint T, accumulate, groups_x, pad;
} pc;

#ifdef PACK64
#extension GL_EXT_shader_explicit_arithmetic_types_int64 : require
const bool PACKED = true;
#define NK 4u
#define Elem u64vec4
Elem pack_unit(vec4 lo, vec4 hi)
{
    return u64vec4(packUint2x32(floatBitsToUint(lo.xy)), packUint2x32(floatBitsToUint(lo.zw)),
                   packUint2x32(floatBitsToUint(hi.xy)), packUint2x32(floatBitsToUint(hi.zw)));
}
void unpack_unit(Elem e, out vec4 lo, out vec4 hi)
{
    lo = vec4(uintBitsToFloat(unpackUint2x32(e.x)), uintBitsToFloat(unpackUint2x32(e.y)));
    hi = vec4(uintBitsToFloat(unpackUint2x32(e.z)), uintBitsToFloat(unpackUint2x32(e.w)));
}
// Unit u (columns 4u.. as lo, 16 + 4u.. as hi) of entry i of a shared array of n entries per
// element index (a macro: GLSL passes no shared array to a function).
#define STORE_UNIT(arr, n, u, i, lo, hi) arr[(u) * (n) + (i)] = pack_unit(lo, hi)
#else
const bool PACKED = false;
#define NK 8u
#define Elem vec4
void unpack_unit(Elem e, out vec4 lo, out vec4 hi) // one vec4: hi is not used
{
    lo = e;
    hi = vec4(0.0);
}
#define STORE_UNIT(arr, n, u, i, lo, hi) \
    {                                   \
        arr[(u) * (n) + (i)] = lo;      \
        arr[(4u + (u)) * (n) + (i)] = hi; \
    }
#endif

shared Elem ws[NK * BM]; // [k][BM]: dequantized weights, element k of each row
shared Elem xs[NK * BN]; // [k][BN]: x, likewise

void main()
{
    uint row0 = gl_WorkGroupID.x * BM, tok0 = gl_WorkGroupID.y * BN;
    uint lid = gl_LocalInvocationID.x;
    uint tr = lid % (BM / TM), tc = lid / (BM / TM); // this invocation's TM x TN sub-tile
    float acc[TN][TM];
    for (uint j = 0u; j < TN; j++)
        for (uint i = 0u; i < TM; i++)
            acc[j][i] = 0.0;
    uint xstride = pc.ldx >> 2u;
    for (uint b = 0u; b < pc.nb; b++) {
        if (WHOLE != 0u) {
            for (uint r = lid; r < BM; r += gl_WorkGroupSize.x) {
                vec4 q[8];
                float d, m;
                load_block(pc.w, min(row0 + r, pc.rows - 1u) * pc.nb + b, q, d, m);
                for (uint u = 0u; u < 4u; u++)
                    STORE_UNIT(ws, BM, u, r, d * q[u] + m, d * q[u + 4u] + m);
            }
        } else {
            for (uint e = lid; e < BM * 4u; e += gl_WorkGroupSize.x) {
                uint r = e >> 2u, u = e & 3u;
                vec4 lo, hi;
                float d, m;
                load_unit(pc.w, min(row0 + r, pc.rows - 1u) * pc.nb + b, u, lo, hi, d, m);
                STORE_UNIT(ws, BM, u, r, d * lo + m, d * hi + m);
            }
        }
        for (uint e = lid; e < BN * 4u; e += gl_WorkGroupSize.x) {
            uint tt = e >> 2u, u = e & 3u;
            uint o = min(tok0 + tt, pc.T - 1u) * xstride + b * 8u + u;
            STORE_UNIT(xs, BN, u, tt, pc.x.v[o], pc.x.v[o + 4u]);
        }
        barrier();
        for (uint k = 0u; k < NK; k++) {
            vec4 a[TM], ah[TM];
            for (uint i = 0u; i < TM; i++)
                unpack_unit(ws[k * BM + tr * TM + i], a[i], ah[i]);
            for (uint j = 0u; j < TN; j++) {
                vec4 bx, bh;
                unpack_unit(xs[k * BN + tc * TN + j], bx, bh);
                for (uint i = 0u; i < TM; i++)
                    acc[j][i] += PACKED ? dot(a[i], bx) + dot(ah[i], bh) : dot(a[i], bx);
            }
        }
        barrier();
    }
    for (uint j = 0u; j < TN; j++) {
        uint tok = tok0 + tc * TN + j;
        if (tok >= pc.T)
            break;
        for (uint i = 0u; i < TM; i++) {
            uint row = row0 + tr * TM + i;
            if (row < pc.rows) {
                uint o = tok * pc.ldy + row;
                pc.y.v[o] = pc.accumulate != 0u ? pc.y.v[o] + acc[j][i] : acc[j][i];
            }
        }
    }
}
