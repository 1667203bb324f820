#version 450
// matvec.comp - y[t][r] (+)= sum_c W[r][c] * x[t][c] for few tokens: one token per z index,
// NR rows per workgroup (spec constant), W read in its GGUF block format (quant.glsl).
//
// The weights are read once per token, so this is the decode kernel (T = 1), where the time is
// the time to stream W. The invocations of a workgroup split the columns of its NR rows: by
// units of 8 elements (4 a block; adjacent invocations read adjacent words: coalesced, for
// GPUs) or, with WHOLE = 1, by whole blocks (5 words a Q4_1 block instead of 8 word loads for
// its 4 units: for CPU devices such as lavapipe, which load a subgroup's addresses one lane
// at a time, so the count of loads is the cost). Each x value is loaded once for all NR rows
// (and, for Q4_1, its sum serves the m term of all of them). Partial sums meet by subgroupAdd,
// then across subgroups in shared memory (no shared memory nor barrier when the workgroup is
// one subgroup).
#include "common.glsl"
#include "quant.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint NR = 2;      // rows per workgroup
layout(constant_id = 2) const uint MAX_SG = 64; // >= subgroups per workgroup
layout(constant_id = 3) const uint WHOLE = 0;   // 1: invocations take whole blocks

layout(push_constant) uniform PC {
    WBuf w;      // [rows][nb] blocks
    V4Buf x;     // f32 [T][ldx]
    F32Buf y;    // f32 [T][ldy]
    uint rows, nb, ldx, ldy;
    uint T, accumulate, groups_x, pad;
} pc;

shared float red[NR * MAX_SG];

void main()
{
    uint row0 = folded_group(pc.groups_x) * NR;
    if (row0 >= pc.rows)
        return; // the whole workgroup: barriers stay in uniform control flow
    uint t = gl_WorkGroupID.z;
    uint xb = t * (pc.ldx >> 2u);
    float acc[NR];
    for (uint r = 0u; r < NR; r++)
        acc[r] = 0.0;
    if (WHOLE != 0u) {
        for (uint b = gl_LocalInvocationID.x; b < pc.nb; b += gl_WorkGroupSize.x) {
            vec4 xv[8];
            for (uint k = 0u; k < 8u; k++)
                xv[k] = pc.x.v[xb + b * 8u + k];
#if HAS_MIN
            float xs = dot((xv[0] + xv[1]) + (xv[2] + xv[3]) + (xv[4] + xv[5]) + (xv[6] + xv[7]), vec4(1.0));
#endif
            for (uint r = 0u; r < NR; r++) {
                uint row = min(row0 + r, pc.rows - 1u);
                vec4 q[8];
                float d, m;
                load_block(pc.w, row * pc.nb + b, q, d, m);
                vec4 s = q[0] * xv[0];
                for (uint k = 1u; k < 8u; k++)
                    s += q[k] * xv[k];
#if HAS_MIN
                acc[r] += d * dot(s, vec4(1.0)) + m * xs;
#else
                acc[r] += d * dot(s, vec4(1.0));
#endif
            }
        }
    } else {
        uint units = pc.nb * 4u;
        for (uint i = gl_LocalInvocationID.x; i < units; i += gl_WorkGroupSize.x) {
            uint b = i >> 2u, u = i & 3u;
            vec4 xlo = pc.x.v[xb + b * 8u + u];
            vec4 xhi = pc.x.v[xb + b * 8u + 4u + u];
#if HAS_MIN
            float xs = dot(xlo + xhi, vec4(1.0));
#endif
            for (uint r = 0u; r < NR; r++) {
                uint row = min(row0 + r, pc.rows - 1u);
                vec4 lo, hi;
                float d, m;
                load_unit(pc.w, row * pc.nb + b, u, lo, hi, d, m);
#if HAS_MIN
                acc[r] += d * (dot(lo, xlo) + dot(hi, xhi)) + m * xs;
#else
                acc[r] += d * (dot(lo, xlo) + dot(hi, xhi));
#endif
            }
        }
    }
    if (MAX_SG == 1u) { // the workgroup is one subgroup: its sums are final, no barrier
        for (uint r = 0u; r < NR; r++) {
            float s = subgroupAdd(acc[r]);
            if (subgroupElect() && row0 + r < pc.rows) {
                uint o = t * pc.ldy + row0 + r;
                pc.y.v[o] = pc.accumulate != 0u ? pc.y.v[o] + s : s;
            }
        }
        return;
    }
    for (uint r = 0u; r < NR; r++) {
        float s = subgroupAdd(acc[r]);
        if (subgroupElect())
            red[r * MAX_SG + gl_SubgroupID] = s;
    }
    barrier();
    for (uint r = gl_LocalInvocationID.x; r < NR && row0 + r < pc.rows; r += gl_WorkGroupSize.x) {
        float s = 0.0;
        for (uint j = 0u; j < gl_NumSubgroups; j++)
            s += red[r * MAX_SG + j];
        uint o = t * pc.ldy + row0 + r;
        pc.y.v[o] = pc.accumulate != 0u ? pc.y.v[o] + s : s;
    }
}
