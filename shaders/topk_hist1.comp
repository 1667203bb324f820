#version 450
// topk_hist1.comp - deep selections only (topk_pick 0 sizes this dispatch, else it is empty):
// a workgroup per block of BLOCK keys counts digit 1 (bits 20..10) of the keys in the
// threshold bin of digit 0, so that topk_pick 1 can narrow the threshold before topk_filter.
#include "topk.glsl"

layout(local_size_x_id = 0) in; // esa_select_tuning.topk_wg (tuning.c)

shared uint s_hist[BINS];

void main()
{
    uint lid = gl_LocalInvocationIndex, base = gl_WorkGroupID.x * BLOCK;
    uint bin = pc.state.v[S_PREFIX];
    for (uint b = lid; b < BINS; b += gl_WorkGroupSize.x)
        s_hist[b] = 0u;
    barrier();
    for (uint j = base + lid; j < min(base + BLOCK, pc.lm); j += gl_WorkGroupSize.x) {
        uint key = pc.keys.v[j];
        if (key >> 21 == bin)
            atomicAdd(s_hist[(key >> 10) & (BINS - 1u)], 1u);
    }
    barrier();
    for (uint b = lid; b < BINS; b += gl_WorkGroupSize.x)
        if (s_hist[b] != 0u)
            atomicAdd(pc.state.v[S_HIST1 + b], s_hist[b]);
}
