// pages.glsl - K/V pages (src/pages.c): a layer's page table holds one 64-bit device address a
// page (as uvec2); a page holds K [page_tokens][G*d] then V [page_tokens][G*d] in fp16, so
// token t's K row is at table[t >> shift] + (t & (page_tokens - 1)) * row_bytes and its V row
// v_off = page_tokens * row_bytes further on. Addresses are added with carry in 32-bit halves
// (no 64-bit integer feature needed).
#extension GL_EXT_buffer_reference_uvec2 : require

layout(buffer_reference, std430, buffer_reference_align = 8) buffer UV2Buf { uvec2 v[]; };

uvec2 addr_add(uvec2 a, uint off)
{
    uint carry;
    uint lo = uaddCarry(a.x, off, carry);
    return uvec2(lo, a.y + carry);
}

// The address of token t's K row (row_bytes bytes) in the pages of `table`.
uvec2 page_row(UV2Buf table, uint t, uint shift, uint row_bytes)
{
    return addr_add(table.v[t >> shift], (t & ((1u << shift) - 1u)) * row_bytes);
}
