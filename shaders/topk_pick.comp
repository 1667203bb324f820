#version 450
// topk_pick.comp - one workgroup: finds the digit bin that holds the k-th largest candidate,
// narrows prefix/mask to it, lowers `need` by the keys above it, and clears the histogram for
// the next pass. Pass 0 starts from need = k.
#include "topk.glsl"

layout(local_size_x_id = 0) in;

shared uint sh[BINS];
shared uint s_done;

void main()
{
    uint lid = gl_LocalInvocationID.x, wg = gl_WorkGroupSize.x;
    if (lid == 0u)
        s_done = pc.pass == 0u ? 0u : pc.state.v[S_DONE];
    for (uint b = lid; b < BINS; b += wg) {
        sh[b] = pc.state.v[b];
        pc.state.v[b] = 0u;
    }
    barrier();
    if (lid != 0u || s_done != 0u)
        return;
    uint need = pc.pass == 0u ? pc.k : pc.state.v[S_NEED];
    uint shift = digit_shift(pc.pass), nb = 1u << digit_bits(pc.pass);
    // Walk the bins from the largest digit down: the bin that crosses `need` is the threshold.
    uint above = 0u, bin = 0u;
    for (int b = int(nb) - 1; b >= 0; b--) {
        uint h = sh[uint(b)];
        if (above + h >= need) {
            bin = uint(b);
            break;
        }
        above += h;
    }
    need -= above;
    uint prefix = pc.pass == 0u ? 0u : pc.state.v[S_PREFIX];
    uint mask = pc.pass == 0u ? 0u : pc.state.v[S_MASK];
    pc.state.v[S_PREFIX] = prefix | (bin << shift);
    pc.state.v[S_MASK] = mask | ((nb - 1u) << shift);
    pc.state.v[S_NEED] = need;
    pc.state.v[S_DONE] = (sh[bin] == need || pc.pass == 2u) ? 1u : 0u;
}
