#version 450
// matmul.comp - y[t][r] (+)= sum_c W[r][c] * x[t][c] for many tokens (prefill): a BM x BN
// tile of (rows x tokens) per workgroup, register-tiled TM x TN per invocation, W read in its
// GGUF block format (quant.glsl).
//
// Per block of 32 columns: the workgroup dequantizes BM rows of it into shared memory once and
// loads BN tokens of x beside it; then every invocation runs 32 steps of a TM x TN outer
// product from there. Each weight is dequantized once per BN tokens and each x value read once
// per BM rows. Shared: 32 * (BM + BN) floats (16 KiB for 64 x 64). Tiles past the last row or
// token compute on clamped (repeated) inputs and are not written.
// Constraints (host-checked): TM, TN multiples of 4; WG = (BM / TM) * (BN / TN).
#include "common.glsl"
#include "quant.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint BM = 64;
layout(constant_id = 2) const uint BN = 64;
layout(constant_id = 3) const uint TM = 4;
layout(constant_id = 4) const uint TN = 4;

layout(push_constant) uniform PC {
    WBuf w;      // [rows][nb] blocks
    V4Buf x;     // f32 [T][ldx]
    F32Buf y;    // f32 [T][ldy]
    uint rows, nb, ldx, ldy;
    uint T, accumulate, groups_x, pad;
} pc;

const uint BM4 = BM / 4u, BN4 = BN / 4u, TM4 = TM / 4u, TN4 = TN / 4u;
shared vec4 ws[32u * BM4]; // [k][BM]: dequantized weights of this block, rows fastest
shared vec4 xs[32u * BN4]; // [k][BN]: x, tokens fastest

void main()
{
    uint row0 = gl_WorkGroupID.x * BM, tok0 = gl_WorkGroupID.y * BN;
    uint lid = gl_LocalInvocationID.x;
    uint tr = lid % (BM / TM), tc = lid / (BM / TM); // this invocation's TM x TN sub-tile
    vec4 acc[TN][TM4];
    for (uint j = 0u; j < TN; j++)
        for (uint i = 0u; i < TM4; i++)
            acc[j][i] = vec4(0.0);
    uint xstride = pc.ldx >> 2u;
    for (uint b = 0u; b < pc.nb; b++) {
        for (uint e = lid; e < BM * 4u; e += gl_WorkGroupSize.x) {
            uint r = e >> 2u, u = e & 3u;
            uint row = min(row0 + r, pc.rows - 1u);
            vec4 lo, hi;
            float d, m;
            load_unit(pc.w, row * pc.nb + b, u, lo, hi, d, m);
            lo = d * lo + m;
            hi = d * hi + m;
            for (uint c = 0u; c < 4u; c++) {
                ws[(4u * u + c) * BM4 + (r >> 2u)][r & 3u] = lo[c];
                ws[(16u + 4u * u + c) * BM4 + (r >> 2u)][r & 3u] = hi[c];
            }
        }
        for (uint e = lid; e < BN * 8u; e += gl_WorkGroupSize.x) {
            uint tt = e >> 3u, q = e & 7u;
            uint tok = min(tok0 + tt, pc.T - 1u);
            vec4 v = pc.x.v[tok * xstride + b * 8u + q];
            for (uint c = 0u; c < 4u; c++)
                xs[(4u * q + c) * BN4 + (tt >> 2u)][tt & 3u] = v[c];
        }
        barrier();
        for (uint k = 0u; k < 32u; k++) {
            vec4 a[TM4];
            for (uint i = 0u; i < TM4; i++)
                a[i] = ws[k * BM4 + tr * TM4 + i];
            for (uint j4 = 0u; j4 < TN4; j4++) {
                vec4 bx = xs[k * BN4 + tc * TN4 + j4];
                for (uint c = 0u; c < 4u; c++)
                    for (uint i = 0u; i < TM4; i++)
                        acc[j4 * 4u + c][i] += a[i] * bx[c];
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
                float s = acc[j][i >> 2u][i & 3u];
                pc.y.v[o] = pc.accumulate != 0u ? pc.y.v[o] + s : s;
            }
        }
    }
}
