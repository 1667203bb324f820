#version 450
// compress.comp - out[t] = M . x[t] for a few vectors: compresses queries (q' = A rope_w(q),
// with the rotation folded into A on the host) and keys (k' = B k, spec 4.2).
// One invocation per pair of output rows (pairs so fp16 output packs into one uint); the
// matrix is stored transposed, [cols][rows], so neighbouring invocations read neighbouring
// words. x[t] is staged through shared memory in tiles of TILE columns.
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint TILE = 2048;

layout(push_constant) uniform PC {
    U32Buf x; F32Buf mt; U32Buf o;
    uint n, rows, cols, x_stride, out_stride, x_f16, out_f16, x_row0;
} pc;

shared float sx[TILE];

void main()
{
    uint t = gl_WorkGroupID.y;
    uint r = 2u * gl_GlobalInvocationID.x;
    uint xrow = pc.x_row0 + t;
    vec2 acc = vec2(0.0);
    for (uint c0 = 0u; c0 < pc.cols; c0 += TILE) {
        uint tile = min(TILE, pc.cols - c0);
        for (uint j = gl_LocalInvocationID.x; j < tile; j += gl_WorkGroupSize.x) {
            uint e = c0 + j;
            float xv;
            if (pc.x_f16 != 0u)
                xv = unpackHalf2x16(pc.x.v[(xrow * pc.x_stride + e) >> 1])[e & 1u];
            else
                xv = uintBitsToFloat(pc.x.v[xrow * pc.x_stride + e]);
            sx[j] = xv;
        }
        barrier();
        if (r < pc.rows) {
            for (uint j = 0u; j < tile; j++) {
                uint base = (c0 + j) * pc.rows + r;
                acc.x += pc.mt.v[base] * sx[j];
                if (r + 1u < pc.rows)
                    acc.y += pc.mt.v[base + 1u] * sx[j];
            }
        }
        barrier();
    }
    if (r >= pc.rows)
        return;
    if (pc.out_f16 != 0u) {
        pc.o.v[(t * pc.out_stride + r) >> 1] = packHalf2x16(acc); // rows and stride are even
    } else {
        pc.o.v[t * pc.out_stride + r] = floatBitsToUint(acc.x);
        if (r + 1u < pc.rows)
            pc.o.v[t * pc.out_stride + r + 1u] = floatBitsToUint(acc.y);
    }
}
