#version 450
// gather.comp - copies the K and V rows of a list of cache positions, from wherever their pages
// live, into one device buffer in list order: the COPY way of reading K/V in host pages
// (pages.c), one read of each selected row over the bus, after which the attention reads
// device memory. Each invocation moves 16 bytes; the grid strides over the rows.
#include "common.glsl"
#include "pages.glsl"

layout(local_size_x_id = 0) in;

layout(buffer_reference, std430, buffer_reference_align = 16) buffer UV4Buf { uvec4 v[]; };

layout(push_constant) uniform PC {
    UV2Buf pages; U32Buf list; uvec2 out_;
    uint count, row_bytes, page_shift, v_off, v_out, pad;
} pc;

void main()
{
    uint per_row = pc.row_bytes / 16u; // K and V: 2 * per_row words a token
    uint total = pc.count * 2u * per_row;
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    for (uint i = gl_GlobalInvocationID.x; i < total; i += stride) {
        uint t = i / (2u * per_row), r = i % (2u * per_row);
        uint is_v = r / per_row, w = r % per_row;
        uvec2 src = page_row(pc.pages, pc.list.v[t], pc.page_shift, pc.row_bytes);
        if (is_v != 0u)
            src = addr_add(src, pc.v_off);
        UV4Buf dst = UV4Buf(addr_add(pc.out_, is_v * pc.v_out + t * pc.row_bytes));
        dst.v[w] = UV4Buf(src).v[w];
    }
}
