#version 450
// topk_count.comp - per block of BLOCK_ITEMS*256 keys: how many are in for sure (above the
// threshold on the mask) and how many tie with it. Feeds topk_scan.
#include "topk.glsl"
#extension GL_KHR_shader_subgroup_arithmetic : require

layout(local_size_x = 256) in;

shared uint s_gt, s_eq;

void main()
{
    uint lid = gl_LocalInvocationID.x;
    if (lid == 0u) {
        s_gt = 0u;
        s_eq = 0u;
    }
    barrier();
    uint prefix = pc.state.v[S_PREFIX], mask = pc.state.v[S_MASK];
    uint base = gl_WorkGroupID.x * 256u * BLOCK_ITEMS;
    uint gt = 0u, eq = 0u;
    for (uint i = 0u; i < BLOCK_ITEMS; i++) {
        uint j = base + i * 256u + lid;
        if (j < pc.lm) {
            uint km = pc.keys.v[j] & mask;
            gt += km > prefix ? 1u : 0u;
            eq += km == prefix ? 1u : 0u;
        }
    }
    gt = subgroupAdd(gt);
    eq = subgroupAdd(eq);
    if (subgroupElect()) {
        atomicAdd(s_gt, gt);
        atomicAdd(s_eq, eq);
    }
    barrier();
    if (lid == 0u) {
        pc.blocks.v[2u * gl_WorkGroupID.x] = s_gt;
        pc.blocks.v[2u * gl_WorkGroupID.x + 1u] = s_eq;
    }
}
