// quant.glsl - reading GGUF weight blocks in place: a "unit" of 8 elements, or a whole block.
//
// The weights are the GGUF tensor bytes uploaded as they are (ggml block layouts, little
// endian); the tensor must start 16-byte aligned (GGUF aligns tensor data to 32). A row of
// `cols` elements is nb = cols / 32 blocks of 32 elements; block g of the tensor is row
// g / nb, block g % nb of it.
//
// Every type is read by units: unit u (0..3) of a block is elements 4u..4u+3 ("lo") and
// 16+4u..16+4u+3 ("hi"). That pairing is Q4_1's (byte j holds element j in its low nibble and
// element j+16 in its high one); the other types use it too so every kernel loads x the same
// way. A unit's values are d * lo + m and d * hi + m (m = 0 except for Q4_1):
//   Q4_1: 20-byte blocks {f16 d, f16 m, 16 bytes of nibbles}: 5 words, 4-byte aligned rows.
//   Q8_0: 34-byte blocks {f16 d, int8 q[32]}: 17 halfwords, so a block starts 4-byte aligned
//         only when g is even. Read in place from uint words: block g starts at halfword 17g;
//         for g odd its quants are whole words, for g even each quant word straddles two words
//         and is rebuilt from two halves. Only the 4-byte words that hold the tensor's bytes
//         are read (the last may hold 2 bytes past its end: buffers are whole words), so the
//         upload needs no padding and no repacking.
//   F16:  16 words per block.  F32: 8 vec4 per block.
//
// load_block reads a whole block instead, for kernels whose invocations take whole blocks
// (fewer loads): q[j] = the codes of elements 4j..4j+3 (natural order), values d * q + m.
//
// Define exactly one of TYPE_F32, TYPE_F16, TYPE_Q4_1, TYPE_Q8_0 before including.

#if defined(TYPE_F32)
#define WBuf V4Buf
#define HAS_MIN 0
void load_unit(V4Buf w, uint g, uint u, out vec4 lo, out vec4 hi, out float d, out float m)
{
    lo = w.v[g * 8u + u];
    hi = w.v[g * 8u + 4u + u];
    d = 1.0;
    m = 0.0;
}
void load_block(V4Buf w, uint g, out vec4 q[8], out float d, out float m)
{
    for (uint j = 0u; j < 8u; j++)
        q[j] = w.v[g * 8u + j];
    d = 1.0;
    m = 0.0;
}
#elif defined(TYPE_F16)
#define WBuf U32Buf
#define HAS_MIN 0
void load_unit(U32Buf w, uint g, uint u, out vec4 lo, out vec4 hi, out float d, out float m)
{
    uint i = g * 16u + 2u * u;
    lo = vec4(unpackHalf2x16(w.v[i]), unpackHalf2x16(w.v[i + 1u]));
    hi = vec4(unpackHalf2x16(w.v[i + 8u]), unpackHalf2x16(w.v[i + 9u]));
    d = 1.0;
    m = 0.0;
}
void load_block(U32Buf w, uint g, out vec4 q[8], out float d, out float m)
{
    for (uint j = 0u; j < 8u; j++)
        q[j] = vec4(unpackHalf2x16(w.v[g * 16u + 2u * j]), unpackHalf2x16(w.v[g * 16u + 2u * j + 1u]));
    d = 1.0;
    m = 0.0;
}
#elif defined(TYPE_Q4_1)
#define WBuf U32Buf
#define HAS_MIN 1
void load_unit(U32Buf w, uint g, uint u, out vec4 lo, out vec4 hi, out float d, out float m)
{
    uint i = g * 5u;
    vec2 dm = unpackHalf2x16(w.v[i]);
    uint q = w.v[i + 1u + u];
    lo = vec4(uvec4(q, q >> 8u, q >> 16u, q >> 24u) & 0xFu);
    hi = vec4(uvec4(q >> 4u, q >> 12u, q >> 20u, q >> 28u) & 0xFu);
    d = dm.x;
    m = dm.y;
}
void load_block(U32Buf w, uint g, out vec4 q[8], out float d, out float m)
{
    vec2 dm = unpackHalf2x16(w.v[g * 5u]);
    for (uint j = 0u; j < 4u; j++) {
        uint b = w.v[g * 5u + 1u + j]; // bytes 4j..4j+3: elements 4j.. (low), 16+4j.. (high)
        q[j] = vec4(uvec4(b, b >> 8u, b >> 16u, b >> 24u) & 0xFu);
        q[j + 4u] = vec4(uvec4(b >> 4u, b >> 12u, b >> 20u, b >> 28u) & 0xFu);
    }
    d = dm.x;
    m = dm.y;
}
#elif defined(TYPE_Q8_0)
#define WBuf U32Buf
#define HAS_MIN 0
vec4 int8x4(uint q)
{
    return vec4(ivec4(uvec4(q << 24u, q << 16u, q << 8u, q)) >> 24);
}
void load_unit(U32Buf w, uint g, uint u, out vec4 lo, out vec4 hi, out float d, out float m)
{
    uint i = (g * 17u) >> 1u; // the word holding d, halfword 17g
    vec2 dd = unpackHalf2x16(w.v[i]);
    uint ql, qh;
    if ((g & 1u) != 0u) { // d is the high half of word i; quant word j is word i + 1 + j
        d = dd.y;
        ql = w.v[i + 1u + u];
        qh = w.v[i + 5u + u];
    } else { // d is the low half of word i; quant word j = high half of i+j, low half of i+j+1
        d = dd.x;
        ql = (w.v[i + u] >> 16u) | (w.v[i + u + 1u] << 16u);
        qh = (w.v[i + u + 4u] >> 16u) | (w.v[i + u + 5u] << 16u);
    }
    lo = int8x4(ql);
    hi = int8x4(qh);
    m = 0.0;
}
// Branch-free: the 9 words from the one holding d; for g odd they are the block's own, for g
// even the last one also holds the next block's first halfword (or the tensor's last 2 bytes
// and 2 beyond them, inside the same 4-byte word).
void load_block(U32Buf w, uint g, out vec4 q[8], out float d, out float m)
{
    uint i = (g * 17u) >> 1u;
    bool odd = (g & 1u) != 0u;
    uint a = w.v[i];
    vec2 dd = unpackHalf2x16(a);
    d = odd ? dd.y : dd.x;
    for (uint j = 0u; j < 8u; j++) {
        uint b = w.v[i + 1u + j];
        q[j] = int8x4(odd ? b : (a >> 16u) | (b << 16u));
        a = b;
    }
    m = 0.0;
}
#else
#error "define one of TYPE_F32, TYPE_F16, TYPE_Q4_1, TYPE_Q8_0"
#endif
