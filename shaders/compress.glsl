// compress.glsl - shared by compress.comp and compress_reduce.comp: their push constants
// (esa_pc_compress in src/push.h), the matrix layout and the store of four output rows.
//
// The matrix is stored transposed, [cols][rs] floats, rs = rows rounded up to a multiple of 4
// (the cache's matrices have rows % 8 == 0; stage_debug.c pads), so that an invocation reads
// its four rows of a column as one 16-byte load.
#include "common.glsl"
#include "pages.glsl"

layout(push_constant) uniform PC {
    U32Buf x; V4Buf mt; U32Buf o; UV2Buf x_pages;
    V4Buf part;      // split_cols < cols: f32 [splits][n][rs], each split's partial sums
    uint n, rows, cols, x_stride, out_stride, x_f16, out_f16, x_row0, x_shift;
    uint split_cols; // columns a workgroup of compress.comp sums (its gl_WorkGroupID.z-th run)
} pc;

uint row_stride() { return (pc.rows + 3u) & ~3u; }

// Rows r .. r + 3 of token t's output, those below rows (r a multiple of 4).
void store_rows(uint t, uint r, vec4 acc)
{
    uint orow = t * pc.out_stride;
    if (pc.out_f16 != 0u) { // rows and stride are even
        pc.o.v[(orow + r) >> 1] = packHalf2x16(acc.xy);
        if (r + 2u < pc.rows)
            pc.o.v[(orow + r + 2u) >> 1] = packHalf2x16(acc.zw);
    } else {
        for (uint i = 0u; i < 4u && r + i < pc.rows; i++)
            pc.o.v[orow + r + i] = floatBitsToUint(acc[i]);
    }
}
