#version 450
// matmul.comp - y[t][r] (+)= sum_c W[r][c] * x[t][c] for many tokens (prefill): a BM x BN
// tile of (rows x tokens) per workgroup, register-tiled TM x TN per invocation, W read in its
// GGUF block format (quant.glsl).
//
// Per block of 32 columns: the workgroup dequantizes BM rows of it into shared memory once and
// loads BN tokens of x beside it; then each invocation runs 8 steps of 4 columns, TM x TN dot
// products of vec4s each. Shared memory holds vec4s of 4 consecutive columns ([8][BM] and
// [8][BN]), so every shared load and store moves 16 bytes. Each weight is dequantized once per
// BN tokens and each x value read once per BM rows. Shared: 128 * (BM + BN) bytes (16 KiB
// for 64 x 64). WHOLE = 1 dequantizes whole blocks per invocation instead of 4-block units (as
// in matvec.comp: fewer loads, for CPU devices). Tiles past the last row or token compute on
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

shared vec4 ws[8u * BM]; // [k4][BM]: dequantized weights, columns 4 k4 .. 4 k4 + 3
shared vec4 xs[8u * BN]; // [k4][BN]: x

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
                for (uint k4 = 0u; k4 < 8u; k4++)
                    ws[k4 * BM + r] = d * q[k4] + m;
            }
        } else {
            for (uint e = lid; e < BM * 4u; e += gl_WorkGroupSize.x) {
                uint r = e >> 2u, u = e & 3u;
                vec4 lo, hi;
                float d, m;
                load_unit(pc.w, min(row0 + r, pc.rows - 1u) * pc.nb + b, u, lo, hi, d, m);
                ws[u * BM + r] = d * lo + m;        // columns 4u .. 4u + 3
                ws[(4u + u) * BM + r] = d * hi + m; // columns 16 + 4u ..
            }
        }
        for (uint e = lid; e < BN * 8u; e += gl_WorkGroupSize.x) {
            uint tt = e >> 3u, k4 = e & 7u;
            uint tok = min(tok0 + tt, pc.T - 1u);
            xs[k4 * BN + tt] = pc.x.v[tok * xstride + b * 8u + k4];
        }
        barrier();
        for (uint k4 = 0u; k4 < 8u; k4++) {
            vec4 a[TM];
            for (uint i = 0u; i < TM; i++)
                a[i] = ws[k4 * BM + tr * TM + i];
            for (uint j = 0u; j < TN; j++) {
                vec4 bx = xs[k4 * BN + tc * TN + j];
                for (uint i = 0u; i < TM; i++)
                    acc[j][i] += dot(a[i], bx);
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
