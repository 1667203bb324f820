#version 450
// rmsnorm.comp - out[t][c] = x[t][c] / sqrt(mean_c(x[t][c]^2) + eps) * w[c] (Llama RMSNorm),
// one workgroup per token. out may alias x (each element is read before its own write).
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint MAX_SG = 64; // >= subgroups per workgroup

layout(push_constant) uniform PC {
    V4Buf x;     // f32 [T][ldx], cols used
    V4Buf w;     // f32 [cols]
    V4Buf out_;  // f32 [T][ldo]
    uint cols, ldx, ldo, T; // cols, ldx, ldo multiples of 4
    float eps;
    uint pad;
} pc;

shared float red[MAX_SG];

void main()
{
    uint t = gl_WorkGroupID.x;
    uint n4 = pc.cols >> 2u, xb = t * (pc.ldx >> 2u), ob = t * (pc.ldo >> 2u);
    float ss = 0.0;
    for (uint i = gl_LocalInvocationID.x; i < n4; i += gl_WorkGroupSize.x) {
        vec4 v = pc.x.v[xb + i];
        ss += dot(v, v);
    }
    float total;
    WORKGROUP_SUM(total, ss, red, MAX_SG)
    float inv = inversesqrt(total / float(pc.cols) + pc.eps);
    for (uint i = gl_LocalInvocationID.x; i < n4; i += gl_WorkGroupSize.x)
        pc.out_.v[ob + i] = pc.x.v[xb + i] * inv * pc.w.v[i];
}
