// common.glsl - declarations shared by every esa-vk shader.
//
// Buffers are reached by device address (GL_EXT_buffer_reference) passed in push constants:
// nothing is bound, so no buffer is limited by maxStorageBufferRange, and the engine-level API
// can read and write the caller's buffers directly. fp16 data is read and written as packed
// uint pairs (unpackHalf2x16/packHalf2x16) so no 16-bit storage or arithmetic feature is needed.
#extension GL_EXT_buffer_reference : require

layout(buffer_reference, std430, buffer_reference_align = 4) buffer F32Buf { float v[]; };
layout(buffer_reference, std430, buffer_reference_align = 4) buffer U32Buf { uint v[]; };
layout(buffer_reference, std430, buffer_reference_align = 8) buffer V2Buf { vec2 v[]; };
layout(buffer_reference, std430, buffer_reference_align = 16) buffer V4Buf { vec4 v[]; };

#define NEG_INF uintBitsToFloat(0xff800000u)

// Order-preserving key of a float (larger float, larger key); +0 and -0 share one key, every
// NaN maps to 0 (below everything) and every other value to a key >= 1 (-inf gives 0x007fffff).
uint order_key(float x)
{
    if (isnan(x))
        return 0u;
    if (x == 0.0)
        x = 0.0; // folds -0 into +0
    uint b = floatBitsToUint(x);
    return (b & 0x80000000u) != 0u ? ~b : (b | 0x80000000u);
}

// Inverse of order_key for keys >= 1 (key 0, "NaN", decodes as NaN).
float order_key_decode(uint k)
{
    if (k == 0u)
        return uintBitsToFloat(0x7fc00000u);
    uint b = (k & 0x80000000u) != 0u ? (k & 0x7fffffffu) : ~k;
    return uintBitsToFloat(b);
}
