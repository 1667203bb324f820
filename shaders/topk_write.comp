#version 450
// topk_write.comp - a workgroup per block, its first subgroup only: the block's selection
// bitmap (WORDS words, not BLOCK keys) becomes ascending positions pos0 + index, written from
// the block's offset that topk_resolve computed. Subgroup scans only (no shared memory, no
// barrier), so any workgroup and subgroup size serves.
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_KHR_shader_subgroup_basic : require
#include "topk.glsl"

layout(local_size_x_id = 0) in;

void main()
{
    if (gl_SubgroupID != 0u)
        return;
    uint blk = gl_WorkGroupID.x, lane = gl_SubgroupInvocationID, S = gl_SubgroupSize;
    uint at = pc.blocks.v[blk];
    if (at == (blk + 1u < pc.nblocks ? pc.blocks.v[blk + 1u] : pc.k))
        return; // nothing selected here (uniform: every lane reads the same words)
    for (uint w0 = 0u; w0 < WORDS; w0 += S) {
        uint wi = w0 + lane;
        uint w = wi < WORDS ? pc.bits.v[blk * WORDS + wi] : 0u;
        uint n = bitCount(w);
        uint mine = at + subgroupExclusiveAdd(n);
        uint pos = pc.pos0 + blk * BLOCK + wi * 32u;
        for (; w != 0u; w &= w - 1u, mine++)
            if (mine < pc.k) // holds whenever the counts agree; never write past out[k]
                pc.o.v[mine] = pos + uint(findLSB(w));
        at += subgroupAdd(n);
    }
}
