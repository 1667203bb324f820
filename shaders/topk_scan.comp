#version 450
// topk_scan.comp - one invocation: turns per-block (above, tied) counts into each block's
// output offset and the number of ties before it, in block (= position) order. nblocks is
// small (keys / 4096), so a serial loop is cheaper than a second dispatch.
#include "topk.glsl"

layout(local_size_x = 1) in;

void main()
{
    uint need = pc.state.v[S_NEED];
    uint out_base = 0u, eq_base = 0u;
    for (uint b = 0u; b < pc.nblocks; b++) {
        uint gt = pc.blocks.v[2u * b], eq = pc.blocks.v[2u * b + 1u];
        uint ties = eq_base < need ? min(eq, need - eq_base) : 0u;
        pc.blocks.v[2u * b] = out_base;
        pc.blocks.v[2u * b + 1u] = eq_base;
        out_base += gt + ties;
        eq_base += eq;
    }
}
