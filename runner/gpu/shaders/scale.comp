#version 450
// scale.comp - out[i] = s * a[i] (a copy when s = 1); out may alias a.
#include "common.glsl"

layout(local_size_x_id = 0) in;

layout(push_constant) uniform PC {
    F32Buf a, out_; // f32 [n]
    uint n, groups_x;
    float s;
    uint pad;
} pc;

void main()
{
    uint i = folded_group(pc.groups_x) * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
    if (i < pc.n)
        pc.out_.v[i] = pc.s * pc.a.v[i];
}
