#version 450
// proximity.comp - spec 4.4: keys[j] = order_key(max of f over [j - radius, j + radius] in M),
// and the first top-k histogram (bits 31..21 of every key) fused in, so top-k starts without
// another read of the keys. The window max is taken over order keys, where NaN sorts lowest
// and key 0 (outside M) changes no max.
//
// A workgroup takes a tile of ITEMS * size keys, its order keys (plus a halo of HALO on each
// side) staged in shared memory as uvec4s; each invocation makes four neighbouring keys at a
// time from the uvec4s that cover their windows, and stores them as one uvec4. Memory is
// touched 16 bytes an access: CPU drivers run every load, store or atomic lane by lane, so
// the number of accesses, not of bytes, sets their speed (measured on lavapipe: README).
#extension GL_EXT_control_flow_attributes : require
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint MAX_RADIUS = 64;
// Keys per invocation, a multiple of 4: a workgroup covers ITEMS * its size keys, so that
// clearing and adding up the 2048 bins of its histogram costs little next to its keys.
layout(constant_id = 2) const uint ITEMS = 16;

layout(buffer_reference, std430, buffer_reference_align = 16) buffer U4Buf { uvec4 v[]; };

layout(push_constant) uniform PC {
    V4Buf f;   // f32 [lm], read as vec4s (the cache pads it to a multiple of 4)
    U4Buf keys; U32Buf state;
    uint lm, radius;
} pc;

const uint BINS = 2048u;
const uint HALO = (MAX_RADIUS + 3u) & ~3u; // keys staged before and after the tile
shared uint sh[BINS];
shared uvec4 sk[(gl_WorkGroupSize.x * ITEMS + 2u * HALO) / 4u];

void main()
{
    uint lid = gl_LocalInvocationID.x;
    uint wg = gl_WorkGroupSize.x, tile = wg * ITEMS;
    uint base = gl_WorkGroupID.x * tile;
    for (uint b = lid; b < BINS; b += wg)
        sh[b] = 0u;
    // sk[i] holds the keys of f[base - HALO + 4i .. + 3]; 0 outside [0, lm). The load is
    // clamped into f, never conditional.
    uint last4 = (pc.lm - 1u) / 4u;
    for (uint i = lid; i < (tile + 2u * HALO) / 4u; i += wg) {
        int g0 = int(base) - int(HALO) + 4 * int(i);
        vec4 x = pc.f.v[uint(clamp(g0 / 4, 0, int(last4)))];
        uvec4 k;
        [[unroll]] for (uint e = 0u; e < 4u; e++) {
            int g = g0 + int(e);
            k[e] = g >= 0 && uint(g) < pc.lm ? order_key(x[e]) : 0u;
        }
        sk[i] = k;
    }
    barrier();
    uint r = pc.radius;
    for (uint it = 0u; it < ITEMS / 4u; it++) {
        uint p = 4u * (lid + wg * it); // this group's first key, from the tile's start
        if (base + p >= pc.lm)
            break;
        // window of key p + o: tile positions p + o - r .. p + o + r, i.e. sk entries from
        // (HALO + p - r) / 4 to (HALO + p + 3 + r) / 4
        uvec4 best = uvec4(0u);
        for (uint c = (HALO + p - r) / 4u; c <= (HALO + p + 3u + r) / 4u; c++) {
            uvec4 v = sk[c];
            [[unroll]] for (uint e = 0u; e < 4u; e++) {
                int d = int(4u * c + e) - int(HALO + p); // v[e]'s place from key p
                [[unroll]] for (uint o = 0u; o < 4u; o++)
                    best[o] = uint(d - int(o) + int(r)) <= 2u * r ? max(best[o], v[e]) : best[o];
            }
        }
        uint live = min(4u, pc.lm - (base + p));
        if (live == 4u)
            pc.keys.v[(base + p) / 4u] = best;
        for (uint e = 0u; e < live; e++)
            atomicAdd(sh[best[e] >> 21], 1u);
        // the last, partial group only (a loop, skipped unless a lane has one)
        for (uint e = 0u; live < 4u && e < live; e++)
            U32Buf(pc.keys).v[base + p + e] = best[e];
    }
    barrier();
    for (uint b = lid; b < BINS; b += wg)
        if (sh[b] != 0u)
            atomicAdd(pc.state.v[b], sh[b]);
}
