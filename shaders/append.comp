#version 450
// append.comp - stores a step's new keys and values in the fp16 cache pages and its queries as
// fp32. One invocation per element pair of one token (gl_WorkGroupID.y); inputs are f32 or
// f16. The cache is reached through the layer's page table (pages.glsl).
#include "common.glsl"
#include "pages.glsl"

layout(local_size_x_id = 0) in;

layout(push_constant) uniform PC {
    U32Buf q_in; U32Buf k_in; U32Buf v_in;
    F32Buf q_out; UV2Buf pages;
    uint n, hd, gd, pos, in_f16, page_shift, v_off, pad0;
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
        uvec2 row = page_row(pc.pages, pc.pos + t, pc.page_shift, pc.gd * 2u);
        U32Buf(row).v[i] = packHalf2x16(load_pair(pc.k_in, src));
        U32Buf(addr_add(row, pc.v_off)).v[i] = packHalf2x16(load_pair(pc.v_in, src));
    }
}
