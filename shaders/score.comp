#version 450
// score.comp - importance of middle tokens from compressed queries and keys (spec 4.3).
//   mode 0 (chunks only): rowmax[c] = max over m of s_c(m), by atomicMax on order keys
//                         (max is order-independent, so the result is deterministic);
//   mode 1: f[m] = s_0(m) for one query, else max_c (s_c(m) - rowmax[c]).
// One invocation per middle token m; the queries pass through shared memory in tiles, and each
// key word loaded serves QB queries at once (register tiling: the key row is read once per QB
// queries instead of once per query). kc rows are fp16; dc is even, and rows are read 8 halves
// (16 bytes) at a time when dc is a multiple of 8.
#include "common.glsl"
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_KHR_shader_subgroup_basic : require

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint QTILE_FLOATS = 4096;

layout(buffer_reference, std430, buffer_reference_align = 16) buffer U4Buf { uvec4 v[]; };

layout(push_constant) uniform PC {
    F32Buf qc; U32Buf kc; U32Buf rowmax; F32Buf f;
    uint n, dc, m0, lm, mode, pad;
} pc;

const uint QB = 8u; // queries per register block

shared float sq[QTILE_FLOATS];

// acc[i] += sq[q * dc + e] * k[e] over the row, for the queries q = qb + i, i < bs <= QB
void dot_block(uint row_half, uint qb, uint bs, inout float acc[QB])
{
    if (pc.dc % 8u == 0u) {
        U4Buf k4 = U4Buf(pc.kc);
        uint r4 = row_half / 8u;
        for (uint p = 0u; p < pc.dc / 8u; p++) {
            uvec4 w = k4.v[r4 + p];
            vec2 a = unpackHalf2x16(w.x), b = unpackHalf2x16(w.y);
            vec2 c = unpackHalf2x16(w.z), d = unpackHalf2x16(w.w);
            for (uint i = 0u; i < QB; i++) {
                if (i >= bs)
                    break;
                uint o = (qb + i) * pc.dc + 8u * p;
                acc[i] += sq[o] * a.x + sq[o + 1u] * a.y + sq[o + 2u] * b.x + sq[o + 3u] * b.y +
                          sq[o + 4u] * c.x + sq[o + 5u] * c.y + sq[o + 6u] * d.x + sq[o + 7u] * d.y;
            }
        }
    } else {
        for (uint p = 0u; p < pc.dc / 2u; p++) {
            vec2 a = unpackHalf2x16(pc.kc.v[row_half / 2u + p]);
            for (uint i = 0u; i < QB; i++) {
                if (i >= bs)
                    break;
                uint o = (qb + i) * pc.dc + 2u * p;
                acc[i] += sq[o] * a.x + sq[o + 1u] * a.y;
            }
        }
    }
}

// One query (decode): the query straight from shared memory, one scalar sum.
float dot_one(uint row_half)
{
    float s = 0.0;
    for (uint p = 0u; p < pc.dc / 2u; p++) {
        vec2 a = unpackHalf2x16(pc.kc.v[row_half / 2u + p]);
        s += sq[2u * p] * a.x + sq[2u * p + 1u] * a.y;
    }
    return s;
}

void main()
{
    uint m = gl_GlobalInvocationID.x;
    bool live = m < pc.lm;
    uint row_half = (pc.m0 + (live ? m : 0u)) * pc.dc;
    if (pc.n == 1u) { // uniform
        for (uint j = gl_LocalInvocationID.x; j < pc.dc; j += gl_WorkGroupSize.x)
            sq[j] = pc.qc.v[j];
        barrier();
        if (live)
            pc.f.v[m] = dot_one(row_half);
        return;
    }
    // queries per tile (the host keeps dc <= QTILE_FLOATS) and per block; a tile is a whole
    // number of blocks, so blocks never straddle tiles
    uint qt = max(1u, QTILE_FLOATS / pc.dc);
    uint bs = min(min(QB, qt), pc.n);
    qt = qt / bs * bs;
    float best = NEG_INF;
    bool any_nan = false;
    for (uint c0 = 0u; c0 < pc.n; c0 += qt) {
        uint nq = min(qt, pc.n - c0);
        // pad the tile to whole blocks with zero queries (their scores are ignored)
        uint nq_pad = (nq + bs - 1u) / bs * bs;
        for (uint j = gl_LocalInvocationID.x; j < nq_pad * pc.dc; j += gl_WorkGroupSize.x)
            sq[j] = j < nq * pc.dc ? pc.qc.v[c0 * pc.dc + j] : 0.0;
        barrier();
        for (uint qb = 0u; qb < nq; qb += bs) {
            float acc[QB];
            for (uint i = 0u; i < QB; i++)
                acc[i] = 0.0;
            if (live)
                dot_block(row_half, qb, bs, acc);
            for (uint i = 0u; i < bs && qb + i < nq; i++) {
                uint c = c0 + qb + i;
                float s = acc[i];
                if (pc.mode == 0u) {
                    uint key = live ? order_key(s) : 0u;
                    uint kmax = subgroupMax(key);
                    if (subgroupElect() && kmax != 0u)
                        atomicMax(pc.rowmax.v[c], kmax);
                } else if (pc.n == 1u) {
                    best = s;
                } else {
                    float sh = s - order_key_decode(pc.rowmax.v[c]);
                    any_nan = any_nan || isnan(sh);
                    best = max(best, sh);
                }
            }
        }
        barrier();
    }
    if (pc.mode == 1u && live)
        pc.f.v[m] = any_nan ? uintBitsToFloat(0x7fc00000u) : best;
}
