#version 450
// silu_mul.comp - out[t][i] = silu(g[t][i]) * u[t][i], silu(a) = a / (1 + e^-a): the SwiGLU
// gate of a Llama FFN. g and u may be two halves of one [T][ld_in] buffer (a fused gate/up
// product); one token per y index.
#include "common.glsl"

layout(local_size_x_id = 0) in;

layout(push_constant) uniform PC {
    F32Buf g, u;  // f32 [T][ld_in], n used
    F32Buf out_;  // f32 [T][ldo]
    uint n, ld_in, ldo, T;
} pc;

void main()
{
    uint i = gl_GlobalInvocationID.x, t = gl_WorkGroupID.y;
    if (i >= pc.n)
        return;
    float a = pc.g.v[t * pc.ld_in + i];
    // e^-a overflows to inf for a < -88: a / inf = -0, the limit
    pc.out_.v[t * pc.ldo + i] = a / (1.0 + exp(-a)) * pc.u.v[t * pc.ld_in + i];
}
