#version 450
// topk_hist.comp - histogram of the next digit of the keys that are still candidates.
#include "topk.glsl"

layout(local_size_x_id = 0) in;

shared uint sh[BINS];

void main()
{
    if (pc.state.v[S_DONE] != 0u)
        return; // uniform: every invocation reads the same word
    uint lid = gl_LocalInvocationID.x, wg = gl_WorkGroupSize.x;
    for (uint b = lid; b < BINS; b += wg)
        sh[b] = 0u;
    barrier();
    uint prefix = pc.state.v[S_PREFIX], mask = pc.state.v[S_MASK];
    uint shift = digit_shift(pc.pass), dmask = (1u << digit_bits(pc.pass)) - 1u;
    uint stride = gl_NumWorkGroups.x * wg;
    for (uint j = gl_GlobalInvocationID.x; j < pc.lm; j += stride) {
        uint key = pc.keys.v[j];
        if ((key & mask) == prefix)
            atomicAdd(sh[(key >> shift) & dmask], 1u);
    }
    barrier();
    for (uint b = lid; b < BINS; b += wg)
        if (sh[b] != 0u)
            atomicAdd(pc.state.v[b], sh[b]);
}
