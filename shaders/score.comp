#version 450
// score.comp - importance of middle tokens from compressed queries and keys (spec 4.3).
//   mode 0 (chunks only): rowmax[c] = max over m of s_c(m), by atomicMax on order keys
//                         (max is order-independent, so the result is deterministic);
//   mode 1: f[m] = s_0(m) for one query, else max_c (s_c(m) - rowmax[c]).
// One invocation per middle token m; the queries pass through shared memory in tiles.
// kc rows are fp16 pairs; dc is even.
#include "common.glsl"
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_KHR_shader_subgroup_basic : require

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint QTILE_FLOATS = 4096;

layout(push_constant) uniform PC {
    F32Buf qc; U32Buf kc; U32Buf rowmax; F32Buf f;
    uint n, dc, m0, lm, mode, pad;
} pc;

shared float sq[QTILE_FLOATS];

void main()
{
    uint m = gl_GlobalInvocationID.x;
    bool live = m < pc.lm;
    uint row = (pc.m0 + (live ? m : 0u)) * (pc.dc / 2u);
    uint qt = max(1u, QTILE_FLOATS / pc.dc); // queries per tile
    float best = NEG_INF;
    bool any_nan = false;
    for (uint c0 = 0u; c0 < pc.n; c0 += qt) {
        uint nq = min(qt, pc.n - c0);
        for (uint j = gl_LocalInvocationID.x; j < nq * pc.dc; j += gl_WorkGroupSize.x)
            sq[j] = pc.qc.v[c0 * pc.dc + j];
        barrier();
        for (uint c = 0u; c < nq; c++) {
            float s = 0.0;
            if (live) {
                for (uint p = 0u; p < pc.dc / 2u; p++) {
                    vec2 kv = unpackHalf2x16(pc.kc.v[row + p]);
                    s += sq[c * pc.dc + 2u * p] * kv.x + sq[c * pc.dc + 2u * p + 1u] * kv.y;
                }
            }
            if (pc.mode == 0u) {
                uint key = live ? order_key(s) : 0u;
                uint kmax = subgroupMax(key);
                if (subgroupElect() && kmax != 0u)
                    atomicMax(pc.rowmax.v[c0 + c], kmax);
            } else if (pc.n == 1u) {
                best = s;
            } else {
                float sh = s - order_key_decode(pc.rowmax.v[c0 + c]);
                any_nan = any_nan || isnan(sh);
                best = max(best, sh);
            }
        }
        barrier();
    }
    if (pc.mode == 1u && live)
        pc.f.v[m] = any_nan ? uintBitsToFloat(0x7fc00000u) : best;
}
