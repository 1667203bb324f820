#version 450
// proximity.comp - spec 4.4: keys[j] = order_key(max of f over [j - radius, j + radius] in M),
// and the first top-k histogram (bits 31..21 of every key) fused in, so top-k starts without
// another read of the keys. The window max is taken over order keys, where NaN sorts lowest.
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint MAX_RADIUS = 64;
// Keys per invocation: a workgroup covers ITEMS * its size keys, so that clearing and adding
// up the 2048 bins of its histogram costs little next to its keys.
layout(constant_id = 2) const uint ITEMS = 16;

layout(push_constant) uniform PC {
    F32Buf f; U32Buf keys; U32Buf state;
    uint lm, radius;
} pc;

const uint BINS = 2048u;
shared uint sh[BINS];
shared uint sk[gl_WorkGroupSize.x * ITEMS + 2u * MAX_RADIUS];

void main()
{
    uint lid = gl_LocalInvocationID.x;
    uint wg = gl_WorkGroupSize.x, tile = wg * ITEMS;
    uint base = gl_WorkGroupID.x * tile;
    for (uint b = lid; b < BINS; b += wg)
        sh[b] = 0u;
    // Tile plus halo: sk[i] holds the key of f[base - radius + i].
    uint span = tile + 2u * pc.radius;
    for (uint i = lid; i < span; i += wg) {
        int g = int(base + i) - int(pc.radius);
        sk[i] = (g >= 0 && uint(g) < pc.lm) ? order_key(pc.f.v[uint(g)]) : 0u;
    }
    barrier();
    for (uint l = lid; l < tile && base + l < pc.lm; l += wg) {
        uint best = 0u;
        for (uint i = 0u; i <= 2u * pc.radius; i++)
            best = max(best, sk[l + i]);
        pc.keys.v[base + l] = best;
        atomicAdd(sh[best >> 21], 1u);
    }
    barrier();
    for (uint b = lid; b < BINS; b += wg)
        if (sh[b] != 0u)
            atomicAdd(pc.state.v[b], sh[b]);
}
