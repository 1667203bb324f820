#version 450
// probe_read.comp - the read-bandwidth probe: streams a buffer of uvec4s once (grid-strided,
// coalesced), folds it into one word per invocation-sized lane and writes one word per
// workgroup, so the reads cannot be dropped and the writes are negligible.
#include "common.glsl"

layout(local_size_x_id = 0) in;

layout(buffer_reference, std430, buffer_reference_align = 16) buffer U4Buf { uvec4 v[]; };

layout(push_constant) uniform PC {
    U4Buf src; U32Buf sink;
    uint count, pad; // uvec4 elements
} pc;

void main()
{
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    uvec4 acc = uvec4(0u);
    for (uint i = gl_GlobalInvocationID.x; i < pc.count; i += stride)
        acc ^= pc.src.v[i];
    uint x = acc.x ^ acc.y ^ acc.z ^ acc.w;
    // data-dependent but almost never taken: keeps the loads alive without a write per lane
    if (x == 0x9e3779b9u)
        pc.sink.v[gl_WorkGroupID.x] = x;
}
