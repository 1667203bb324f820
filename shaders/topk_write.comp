#version 450
// topk_write.comp - a workgroup per block: the block's selection bitmap (WORDS words, one an
// invocation, instead of BLOCK keys) becomes ascending positions pos0 + index, written from
// the block's offset that topk_resolve computed.
#include "topk.glsl"

layout(local_size_x = WORDS) in;

#include "wgscan.glsl"

void main()
{
    uint lid = gl_LocalInvocationIndex, blk = gl_WorkGroupID.x;
    uint first = pc.blocks.v[blk];
    if (first == (blk + 1u < pc.nblocks ? pc.blocks.v[blk + 1u] : pc.k))
        return; // nothing selected here (uniform: every invocation reads the same words)
    uint w = pc.bits.v[blk * WORDS + lid];
    uint at = first + wg_exclusive_add(bitCount(w));
    uint pos = pc.pos0 + blk * BLOCK + lid * 32u;
    for (; w != 0u; w &= w - 1u, at++)
        if (at < pc.k) // holds whenever the counts agree; never write past out[k]
            pc.o.v[at] = pos + uint(findLSB(w));
}
