// common.glsl - declarations shared by the esa-run model kernels.
//
// Every buffer is reached by device address from the push constants (GL_EXT_buffer_reference):
// nothing is bound. Halves are read as uint pairs (unpackHalf2x16): no 16-bit storage or
// float16 arithmetic feature is needed. 32-bit element indices: a tensor of up to 2^32 words.
#extension GL_EXT_buffer_reference : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require

layout(buffer_reference, std430, buffer_reference_align = 4) buffer F32Buf { float v[]; };
layout(buffer_reference, std430, buffer_reference_align = 4) buffer U32Buf { uint v[]; };
layout(buffer_reference, std430, buffer_reference_align = 16) buffer V4Buf { vec4 v[]; };

// A 1-D grid may exceed maxComputeWorkGroupCount[0]: the host folds it into x and y, passing
// the x count; this is the workgroup's index in the unfolded grid.
uint folded_group(uint groups_x)
{
    return gl_WorkGroupID.x + gl_WorkGroupID.y * groups_x;
}

// Sum of v over the workgroup, returned to every invocation. red must hold one float per
// subgroup and max_sg bound their number (the host sizes both by the device's smallest
// subgroup); with max_sg 1 (a spec constant) the workgroup is one subgroup: no shared memory,
// no barrier. Call in uniform control flow; red may be reused after the call.
#define WORKGROUP_SUM(result, v, red, max_sg)                                              \
    {                                                                                      \
        float s_ = subgroupAdd(v);                                                         \
        if (max_sg > 1u) {                                                                 \
            if (subgroupElect())                                                           \
                red[gl_SubgroupID] = s_;                                                   \
            barrier();                                                                     \
            s_ = 0.0;                                                                      \
            for (uint j_ = 0u; j_ < gl_NumSubgroups; j_++)                                 \
                s_ += red[j_];                                                             \
            barrier();                                                                     \
        }                                                                                  \
        result = s_;                                                                       \
    }
