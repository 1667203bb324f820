#version 450
// topk_filter.comp - the one read of the keys, a workgroup per block of BLOCK keys: a key above
// the threshold bin of digit 0 (or in it, when the whole bin is taken) is selected: its bit is
// set in the block's bitmap and counted in blocks[]; a key in the bin is a candidate, appended
// as (key, index) to the list topk_resolve reads, and counted in the digit-1 histogram. The
// list's order depends on atomic timing; nothing downstream depends on that order.
#include "topk.glsl"

layout(local_size_x = 256) in;

const uint ITEMS = BLOCK / gl_WorkGroupSize.x; // keys per invocation, at most 32 (a bit mask)

// Past this many candidates in a block, its digit-1 counts go through shared memory.
const uint MANY = gl_WorkGroupSize.x;

shared uint s_bits[WORDS];
shared uint s_hist[BINS];
shared uint s_taken, s_ncand, s_at;

void main()
{
    uint lid = gl_LocalInvocationIndex, blk = gl_WorkGroupID.x, base = blk * BLOCK;
    uint bin = pc.state.v[S_BIN];
    bool whole = pc.state.v[S_ALL] != 0u;
    for (uint w = lid; w < WORDS; w += gl_WorkGroupSize.x)
        s_bits[w] = 0u;
    if (lid == 0u) {
        s_taken = 0u;
        s_ncand = 0u;
    }
    barrier();
    uint taken = 0u, cmask = 0u;
    for (uint i = 0u; i < ITEMS; i++) {
        uint j = base + i * gl_WorkGroupSize.x + lid; // neighbours read neighbours
        if (j >= pc.lm)
            break;
        uint d = pc.keys.v[j] >> 21;
        if (d > bin || (d == bin && whole)) {
            atomicOr(s_bits[(j - base) >> 5], 1u << (j & 31u));
            taken++;
        } else if (d == bin) {
            cmask |= 1u << i;
        }
    }
    if (taken != 0u)
        atomicAdd(s_taken, taken);
    uint nc = bitCount(cmask);
    uint at = nc != 0u ? atomicAdd(s_ncand, nc) : 0u;
    barrier();
    if (lid == 0u) {
        pc.blocks.v[blk] = s_taken;
        s_at = s_ncand != 0u ? atomicAdd(pc.state.v[S_NCAND], s_ncand) : 0u;
    }
    for (uint w = lid; w < WORDS; w += gl_WorkGroupSize.x)
        pc.bits.v[blk * WORDS + w] = s_bits[w];
    barrier();
    at += s_at;
    bool many = s_ncand > MANY;
    if (many) {
        for (uint b = lid; b < BINS; b += gl_WorkGroupSize.x)
            s_hist[b] = 0u;
        barrier();
    }
    for (; cmask != 0u; cmask &= cmask - 1u) {
        uint j = base + uint(findLSB(cmask)) * gl_WorkGroupSize.x + lid;
        uint key = pc.keys.v[j];
        pc.cand.v[at++] = uvec2(key, j);
        uint d = (key >> 10) & (BINS - 1u);
        if (many)
            atomicAdd(s_hist[d], 1u);
        else
            atomicAdd(pc.state.v[S_HIST1 + d], 1u);
    }
    if (many) {
        barrier();
        for (uint b = lid; b < BINS; b += gl_WorkGroupSize.x)
            if (s_hist[b] != 0u)
                atomicAdd(pc.state.v[S_HIST1 + b], s_hist[b]);
    }
}
