#version 450
// topk_filter.comp - a read of the keys, a workgroup per block of BLOCK keys: a key above the
// threshold prefix (bits 31..21, or 31..10 after a deep pick), or on it when all keys on it are
// taken, is selected: its bit is set in the block's bitmap and counted in blocks[]; a key on
// the prefix is a candidate, appended as (key, index) to the list topk_resolve reads, counted
// in the histogram of its next digit (bits 20..10, or 9..0) and in blocks[nblocks + block].
// The list's order depends on atomic timing; nothing downstream depends on that order.
#include "topk.glsl"

layout(local_size_x = 256) in;

const uint ITEMS = BLOCK / gl_WorkGroupSize.x; // keys per invocation, at most 32 (a bit mask)

// Past this many candidates in a block, its histogram goes through shared memory.
const uint MANY = gl_WorkGroupSize.x;

shared uint s_bits[WORDS];
shared uint s_hist[BINS];
shared uint s_taken, s_ncand, s_at;

void main()
{
    uint lid = gl_LocalInvocationIndex, blk = gl_WorkGroupID.x, base = blk * BLOCK;
    uint prefix = pc.state.v[S_PREFIX], shift = pc.state.v[S_SHIFT];
    uint next = shift == 21u ? 10u : 0u, nmask = shift == 21u ? BINS - 1u : 1023u;
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
        uint d = pc.keys.v[j] >> shift;
        if (d > prefix || (d == prefix && whole)) {
            atomicOr(s_bits[(j - base) >> 5], 1u << (j & 31u));
            taken++;
        } else if (d == prefix) {
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
        pc.blocks.v[pc.nblocks + blk] = s_ncand;
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
        uint d = (key >> next) & nmask;
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
