#version 450
// embed.comp - out[t][c] = table[ids[t]][c]: gather and dequantize rows of an embedding table
// stored in its GGUF block format (quant.glsl); one invocation per unit of 8 elements, one
// token per y index. An id >= rows writes NaN over the token's row (loud, never out of bounds).
#include "common.glsl"
#include "quant.glsl"

layout(local_size_x_id = 0) in;

layout(push_constant) uniform PC {
    WBuf table;  // [rows][nb] blocks
    U32Buf ids;  // uint [T]
    F32Buf out_; // f32 [T][ldo]
    uint rows, nb, ldo, T;
} pc;

void main()
{
    uint e = gl_GlobalInvocationID.x, t = gl_WorkGroupID.y;
    if (e >= pc.nb * 4u)
        return;
    uint b = e >> 2u, u = e & 3u;
    uint id = pc.ids.v[t];
    vec4 lo = vec4(uintBitsToFloat(0x7fc00000u)), hi = lo;
    if (id < pc.rows) {
        float d, m;
        load_unit(pc.table, id * pc.nb + b, u, lo, hi, d, m);
        lo = d * lo + m;
        hi = d * hi + m;
    }
    uint o = t * pc.ldo + b * 32u + 4u * u;
    for (uint c = 0u; c < 4u; c++) {
        pc.out_.v[o + c] = lo[c];
        pc.out_.v[o + 16u + c] = hi[c];
    }
}
