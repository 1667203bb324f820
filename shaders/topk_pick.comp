#version 450
// topk_pick.comp - one workgroup: the bin of the next digit that holds the k-th largest key,
// from a histogram; how many keys of that bin to take, and whether that is all of them (then
// no key needs a closer look).
//   pass 0: digit 0 (bits 31..21), histogram by proximity.comp. Also sizes the dispatches of
//           topk_hist1 and pass 1: empty unless the bin holds more than deep_limit() keys.
//   pass 1: digit 1 (bits 20..10) of the keys in that bin, histogram by topk_hist1.
layout(local_size_x_id = 0) in; // esa_select_tuning.topk_wg (tuning.c)
#include "topk.glsl"
#define SCAN_COUNTS BINS
#include "wgscan.glsl"

void main()
{
    uint lid = gl_LocalInvocationIndex;
    uint at = pc.pass == 0u ? 0u : S_HIST1;
    for (uint b = lid; b < BINS; b += gl_WorkGroupSize.x)
        s_cnt[b] = pc.state.v[at + b];
    uint need = pc.pass == 0u ? pc.k : pc.state.v[S_NEED];
    wg_crossing(0u, BINS, true, need);
    if (lid == 0u) {
        uint bin = s_cross_at, count = s_cnt[bin];
        need -= s_cross_before;
        bool all = count == need;
        pc.state.v[S_PREFIX] = pc.pass == 0u ? bin : (pc.state.v[S_PREFIX] << 11) | bin;
        pc.state.v[S_SHIFT] = pc.pass == 0u ? 21u : 10u;
        pc.state.v[S_NEED] = need;
        pc.state.v[S_ALL] = all ? 1u : 0u;
        if (pc.pass == 0u) {
            bool deep = !all && count > deep_limit();
            pc.state.v[S_ARGS + 0u] = deep ? pc.nblocks : 0u;
            pc.state.v[S_ARGS + 1u] = 1u;
            pc.state.v[S_ARGS + 2u] = 1u;
            pc.state.v[S_ARGS + 3u] = deep ? 1u : 0u;
            pc.state.v[S_ARGS + 4u] = 1u;
            pc.state.v[S_ARGS + 5u] = 1u;
        }
    }
}
