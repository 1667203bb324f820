#version 450
// compress.comp - out[t] = M . x[t] for a few vectors: compresses queries (q' = A rope_w(q),
// with the rotation folded into A on the host) and keys (k' = B k, spec 4.2).
// One invocation per pair of output rows (pairs so fp16 output packs into one uint) and up to
// TT tokens: each matrix word loaded serves TT tokens (register tiling; a chunk of 512 keys
// reads the matrix 64 times instead of 512). The matrix is stored transposed, [cols][rows], so
// neighbouring invocations read neighbouring words. The tokens' x pass through shared memory
// in tiles of TILE / TT columns. Keys are read from the cache's pages (x_shift != 0: fp16 rows
// of x_stride halves through the page table x_pages, pages.glsl).
#include "common.glsl"
#include "pages.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint TILE = 2048; // floats of shared memory for x
layout(constant_id = 2) const uint TT = 8;      // tokens per workgroup

layout(push_constant) uniform PC {
    U32Buf x; F32Buf mt; U32Buf o; UV2Buf x_pages;
    uint n, rows, cols, x_stride, out_stride, x_f16, out_f16, x_row0, x_shift, pad;
} pc;

const uint TC = TILE / TT; // columns per tile
shared float sx[TILE];     // [TT][TC]

void main()
{
    uint t0 = gl_WorkGroupID.y * TT;
    uint nt = min(TT, pc.n - t0);
    uint r = 2u * gl_GlobalInvocationID.x;
    vec2 acc[TT];
    for (uint t = 0u; t < TT; t++)
        acc[t] = vec2(0.0);
    for (uint c0 = 0u; c0 < pc.cols; c0 += TC) {
        uint tile = min(TC, pc.cols - c0);
        for (uint j = gl_LocalInvocationID.x; j < nt * TC; j += gl_WorkGroupSize.x) {
            uint t = j / TC, e = c0 + j % TC;
            float xv = 0.0;
            if (e < pc.cols) {
                uint xrow = pc.x_row0 + t0 + t;
                if (pc.x_shift != 0u)
                    xv = unpackHalf2x16(U32Buf(page_row(pc.x_pages, xrow, pc.x_shift, pc.x_stride * 2u)).v[e >> 1])[e & 1u];
                else if (pc.x_f16 != 0u)
                    xv = unpackHalf2x16(pc.x.v[(xrow * pc.x_stride + e) >> 1])[e & 1u];
                else
                    xv = uintBitsToFloat(pc.x.v[xrow * pc.x_stride + e]);
            }
            sx[j] = xv;
        }
        barrier();
        if (r < pc.rows) {
            bool pair = r + 1u < pc.rows;
            for (uint j = 0u; j < tile; j++) {
                uint base = (c0 + j) * pc.rows + r;
                vec2 m = vec2(pc.mt.v[base], pair ? pc.mt.v[base + 1u] : 0.0);
                for (uint t = 0u; t < TT; t++) {
                    if (t >= nt)
                        break;
                    acc[t] += m * sx[t * TC + j];
                }
            }
        }
        barrier();
    }
    if (r >= pc.rows)
        return;
    for (uint t = 0u; t < nt; t++) {
        uint orow = (t0 + t) * pc.out_stride;
        if (pc.out_f16 != 0u) {
            pc.o.v[(orow + r) >> 1] = packHalf2x16(acc[t]); // rows and stride are even
        } else {
            pc.o.v[orow + r] = floatBitsToUint(acc[t].x);
            if (r + 1u < pc.rows)
                pc.o.v[orow + r + 1u] = floatBitsToUint(acc[t].y);
        }
    }
}
