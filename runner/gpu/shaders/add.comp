#version 450
// add.comp - out[i] = a[i] + b[i] (a residual add); out may alias a or b.
#include "common.glsl"

layout(local_size_x_id = 0) in;

layout(push_constant) uniform PC {
    F32Buf a, b, out_; // f32 [n]
    uint n, groups_x;
} pc;

void main()
{
    uint i = folded_group(pc.groups_x) * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
    if (i < pc.n)
        pc.out_.v[i] = pc.a.v[i] + pc.b.v[i];
}
