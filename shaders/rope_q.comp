#version 450
// rope_q.comp - the queries of a step rotated for each frame the attention parts use, and
// prescaled by scale*log2(e) (attend.comp keeps scores in log2 units): frame f puts query c at
// position pos0[f] + c*step[f] (ESA-SPEC section 5: the global frame at w for every query, the
// local frame at l_L + c; true positions for dense attention). Rotating once here keeps
// rotation out of attend.comp's per-key loop for the queries.
//
// One invocation per rotary pair of one query head (gl_WorkGroupID.y = the frame). Pair p of a
// head is dims (p, p + rd/2) in NeoX style, (2p, 2p+1) otherwise, for p < rd/2; past the
// rotated dims, (2p, 2p+1) unrotated. The output keeps the natural order of dims.
#include "common.glsl"
#include "rope.glsl"

layout(local_size_x_id = 0) in;

layout(push_constant) uniform PC {
    F32Buf q;                   // [n][H*d] pre-RoPE
    F32Buf out0, out1;          // [n][H*d] per frame
    V2Buf rope;                 // rope.glsl table
    uint n, hd, d, rd, neox;
    uint pos0_0, step_0, pos0_1, step_1;
    float scale;                // logit scale times log2(e)
} pc;

void main()
{
    uint i = gl_GlobalInvocationID.x;
    uint f = gl_WorkGroupID.y;
    uint half_hd = pc.hd / 2u;
    if (i >= pc.n * half_hd)
        return;
    uint t = i / half_hd, w = i % half_hd;
    uint base = t * pc.hd + (w / (pc.d / 2u)) * pc.d;
    uint p = w % (pc.d / 2u);
    bool rot = p < pc.rd / 2u;
    uint e0 = rot && pc.neox != 0u ? p : 2u * p;
    uint e1 = rot && pc.neox != 0u ? p + pc.rd / 2u : 2u * p + 1u;
    vec2 x = vec2(pc.q.v[base + e0], pc.q.v[base + e1]);
    if (rot) {
        uint pos = f == 0u ? pc.pos0_0 + t * pc.step_0 : pc.pos0_1 + t * pc.step_1;
        x = cmul(x, rope_cs1(pc.rope, pc.rd / 2u, p, pos));
    }
    x *= pc.scale;
    F32Buf o = f == 0u ? pc.out0 : pc.out1;
    o.v[base + e0] = x.x;
    o.v[base + e1] = x.y;
}
