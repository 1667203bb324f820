#version 450
// topk_pick.comp - one workgroup: the bin of digit 0 (bits 31..21) that holds the k-th largest
// key, from the histogram proximity.comp gathered; how many of its keys to take, and whether
// that is all of them (then no key needs a closer look).
layout(local_size_x = 256) in;
#include "topk.glsl"
#define SCAN_COUNTS BINS
#include "wgscan.glsl"

void main()
{
    uint lid = gl_LocalInvocationIndex;
    for (uint b = lid; b < BINS; b += gl_WorkGroupSize.x)
        s_cnt[b] = pc.state.v[b];
    barrier();
    wg_crossing(0u, BINS, true, pc.k);
    if (lid == 0u) {
        uint bin = s_cross_at, need = pc.k - s_cross_before;
        pc.state.v[S_BIN] = bin;
        pc.state.v[S_NEED] = need;
        pc.state.v[S_ALL] = s_cnt[bin] == need ? 1u : 0u;
    }
}
