#version 450
// compress.comp - out[t] = M . x[t] for a few vectors: compresses queries (q' = A rope_w(q),
// with the rotation folded into A on the host) and keys (k' = B k, spec 4.2).
// One invocation per four output rows (one 16-byte load of the transposed matrix a column,
// compress.glsl) and TT tokens: each matrix word loaded serves TT tokens (register tiling; a
// chunk of 512 keys reads the matrix 64 times instead of 512). TT is a specialization
// constant: 8 for chunks, 1 for one token (decode), so the token loop always unrolls. The
// tokens' x pass through shared memory in tiles of TILE / TT columns, zero past the last
// token. Keys are read from the cache's pages (x_shift != 0: fp16 rows of x_stride halves
// through the page table x_pages, pages.glsl). With few tokens the columns are split over
// workgroups too (gl_WorkGroupID.z: a run of split_cols columns each), whose partial sums
// compress_reduce.comp adds: else one workgroup would read the whole matrix.
#extension GL_EXT_control_flow_attributes : require
#include "compress.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint TILE = 2048; // floats of shared memory for x
layout(constant_id = 2) const uint TT = 8;      // tokens per workgroup

const uint TC = TILE / TT; // columns per tile
shared float sx[TILE];     // [TT][TC]

// Column jj of the tile into the TT accumulators.
#define COLUMN(jj)                                                                             \
    if ((jj) < tile) {                                                                         \
        vec4 m_ = pc.mt.v[(c0 + (jj)) * quads + q];                                            \
        [[unroll]] for (uint t_ = 0u; t_ < TT; t_++)                                           \
            acc[t_] += m_ * sx[t_ * TC + (jj)];                                                \
    }

void main()
{
    uint t0 = gl_WorkGroupID.y * TT;
    uint nt = min(TT, pc.n - t0);
    uint rs = row_stride(), quads = rs / 4u;
    uint q = gl_GlobalInvocationID.x; // rows 4q .. 4q + 3
    vec4 acc[TT];
    [[unroll]] for (uint t = 0u; t < TT; t++)
        acc[t] = vec4(0.0);
    uint cbeg = gl_WorkGroupID.z * pc.split_cols, cend = min(pc.cols, cbeg + pc.split_cols);
    for (uint c0 = cbeg; c0 < cend; c0 += TC) {
        uint tile = min(TC, cend - c0);
        // the tile's columns only (a split may hold fewer than TC), zero past the last token;
        // one data load an element, from an address chosen first (a CPU driver runs a load
        // under a branch lane by lane, taken or not)
        for (uint j = gl_LocalInvocationID.x; j < TT * tile; j += gl_WorkGroupSize.x) {
            uint t = j / tile, e = c0 + j % tile;
            uint xrow = pc.x_row0 + t0 + min(t, nt - 1u);
            uvec2 at;
            if (pc.x_shift != 0u)
                at = addr_add(page_row(pc.x_pages, xrow, pc.x_shift, pc.x_stride * 2u), (e >> 1) * 4u);
            else
                at = addr_add(uvec2(pc.x), (pc.x_f16 != 0u ? (xrow * pc.x_stride + e) >> 1 : xrow * pc.x_stride + e) * 4u);
            uint w = U32Buf(at).v[0];
            float xv = pc.x_f16 != 0u || pc.x_shift != 0u ? unpackHalf2x16(w)[e & 1u] : uintBitsToFloat(w);
            sx[t * TC + j % tile] = t < nt ? xv : 0.0;
        }
        barrier();
        // four columns an iteration, written out: llvmpipe ends an invocation's loops after 65535
        // iterations in all, and H*d may reach 65536 columns
        if (q < quads) { // (idle lanes skip the loop)
            for (uint j = 0u; j < tile; j += 4u) {
                COLUMN(j);
                COLUMN(j + 1u);
                COLUMN(j + 2u);
                COLUMN(j + 3u);
            }
        }
        barrier();
    }
    if (q >= quads)
        return;
    bool split = gl_NumWorkGroups.z > 1u;
    [[unroll]] for (uint t = 0u; t < TT; t++) { // constant indices: acc stays in registers
        if (t < nt) {
            if (split)
                pc.part.v[(gl_WorkGroupID.z * pc.n + t0 + t) * quads + q] = acc[t];
            else
                store_rows(t0 + t, 4u * q, acc[t]);
        }
    }
}
