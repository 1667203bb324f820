#version 450
// matvec.comp - y[t][r] (+)= sum_c W[r][c] * x[t][c] for few tokens: one token per z index,
// NR rows per workgroup (spec constant), W read in its GGUF block format (quant.glsl).
//
// The weights are read once per token, so this is the decode kernel (T = 1), where the time is
// the time to stream W. The invocations of a workgroup split a row's units (8 elements each,
// 4 per block): adjacent invocations read adjacent words of a block; each x unit is loaded
// once and used for all NR rows (and, for Q4_1, its sum serves the m term of all of them).
// Partial sums meet by subgroupAdd, then across subgroups in shared memory.
#include "common.glsl"
#include "quant.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint NR = 2;      // rows per workgroup
layout(constant_id = 2) const uint MAX_SG = 64; // >= subgroups per workgroup

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
    for (uint r = 0u; r < NR; r++) {
        float s = subgroupAdd(acc[r]);
        if (subgroupElect())
            red[r * MAX_SG + gl_SubgroupID] = s;
    }
    barrier();
    uint r = gl_LocalInvocationID.x;
    if (r < NR && row0 + r < pc.rows) {
        float s = 0.0;
        for (uint j = 0u; j < gl_NumSubgroups; j++)
            s += red[r * MAX_SG + j];
        uint o = t * pc.ldy + row0 + r;
        pc.y.v[o] = pc.accumulate != 0u ? pc.y.v[o] + s : s;
    }
}
