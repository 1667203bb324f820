#version 450
// append.comp - stores a step's new keys and values in the fp16 cache and its queries as fp32.
// One invocation per element pair of one token (gl_WorkGroupID.y); inputs are f32 or f16.
#include "common.glsl"

layout(local_size_x_id = 0) in;

layout(push_constant) uniform PC {
    U32Buf q_in; U32Buf k_in; U32Buf v_in;
    F32Buf q_out; U32Buf k_cache; U32Buf v_cache;
    uint n, hd, gd, pos, in_f16, pad0, pad1, pad2;
} pc;

vec2 load_pair(U32Buf b, uint pair)
{
    if (pc.in_f16 != 0u)
        return unpackHalf2x16(b.v[pair]);
    return vec2(uintBitsToFloat(b.v[2u * pair]), uintBitsToFloat(b.v[2u * pair + 1u]));
}

void main()
{
    uint t = gl_WorkGroupID.y;
    uint i = gl_GlobalInvocationID.x; // pair index within the token
    if (t >= pc.n)
        return;
    if (i < pc.hd / 2u) {
        vec2 q = load_pair(pc.q_in, t * (pc.hd / 2u) + i);
        pc.q_out.v[t * pc.hd + 2u * i] = q.x;
        pc.q_out.v[t * pc.hd + 2u * i + 1u] = q.y;
    }
    if (i < pc.gd / 2u) {
        uint src = t * (pc.gd / 2u) + i;
        uint dst = (pc.pos + t) * (pc.gd / 2u) + i;
        pc.k_cache.v[dst] = packHalf2x16(load_pair(pc.k_in, src));
        pc.v_cache.v[dst] = packHalf2x16(load_pair(pc.v_in, src));
    }
}
