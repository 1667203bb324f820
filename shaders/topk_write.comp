#version 450
// topk_write.comp - writes the selected positions (pos0 + index), ascending: each block walks
// its keys in position order, ranks them with workgroup prefix sums, and writes at the offset
// topk_scan gave it. Ties with the threshold are taken while the running tie count < need.
#include "topk.glsl"
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_KHR_shader_subgroup_basic : require

layout(local_size_x = 256) in;

shared uint s_part[256]; // per-subgroup totals (at most 256 subgroups of one invocation)
shared uint s_tot_take, s_tot_eq;

void main()
{
    // Element order follows (subgroup, lane), so prefix sums follow position order whatever
    // the driver's mapping of local invocations to subgroups.
    uint lane = gl_SubgroupID * gl_SubgroupSize + gl_SubgroupInvocationID;
    uint prefix = pc.state.v[S_PREFIX], mask = pc.state.v[S_MASK], need = pc.state.v[S_NEED];
    uint out_at = pc.blocks.v[2u * gl_WorkGroupID.x];
    uint eq_at = pc.blocks.v[2u * gl_WorkGroupID.x + 1u];
    uint base = gl_WorkGroupID.x * 256u * BLOCK_ITEMS;
    for (uint i = 0u; i < BLOCK_ITEMS; i++) {
        uint j = base + i * 256u + lane;
        uint km = j < pc.lm ? (pc.keys.v[j] & mask) : 0u;
        bool gt = j < pc.lm && km > prefix;
        bool eq = j < pc.lm && km == prefix;
        // ranks of the ties first: whether a tie is taken depends on it
        uint e = eq ? 1u : 0u;
        uint e_ex = subgroupExclusiveAdd(e);
        uint e_sg = subgroupAdd(e);
        if (subgroupElect())
            s_part[gl_SubgroupID] = e_sg;
        barrier();
        if (gl_LocalInvocationIndex == 0u) {
            uint run = 0u;
            for (uint s = 0u; s < gl_NumSubgroups; s++) {
                uint t = s_part[s];
                s_part[s] = run;
                run += t;
            }
            s_tot_eq = run;
        }
        barrier();
        bool take = gt || (eq && eq_at + s_part[gl_SubgroupID] + e_ex < need);
        barrier();
        uint t = take ? 1u : 0u;
        uint t_ex = subgroupExclusiveAdd(t);
        uint t_sg = subgroupAdd(t);
        if (subgroupElect())
            s_part[gl_SubgroupID] = t_sg;
        barrier();
        if (gl_LocalInvocationIndex == 0u) {
            uint run = 0u;
            for (uint s = 0u; s < gl_NumSubgroups; s++) {
                uint tt = s_part[s];
                s_part[s] = run;
                run += tt;
            }
            s_tot_take = run;
        }
        barrier();
        if (take)
            pc.o.v[out_at + s_part[gl_SubgroupID] + t_ex] = pc.pos0 + j;
        out_at += s_tot_take;
        eq_at += s_tot_eq;
        barrier();
    }
}
