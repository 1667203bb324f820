#version 450
// merge.comp - combines the partial slots of every (query, head) row by log-sum-exp, in slot
// order (FlashInfer cascade.cuh's MergeState rule): an empty slot has max = -inf and sum = 0
// and contributes nothing; a row with no key at all yields zeros, never NaN.
#include "common.glsl"

layout(local_size_x_id = 0) in;

layout(push_constant) uniform PC {
    F32Buf part_o; V2Buf part_ml; F32Buf o;
    uint rows, d, n_slots, pad;
} pc;

void main()
{
    // Grid-stride: a chunk can hold more elements (n*H*d up to 2^28) than one dispatch of at
    // most maxComputeWorkGroupCount[0] (>= 65535) workgroups covers; the host caps the grid.
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    for (uint idx = gl_GlobalInvocationID.x; idx < pc.rows * pc.d; idx += stride) {
        uint row = idx / pc.d, e = idx % pc.d;
        float mx = NEG_INF;
        for (uint s = 0u; s < pc.n_slots; s++)
            mx = max(mx, pc.part_ml.v[s * pc.rows + row].x);
        float num = 0.0, den = 0.0;
        if (mx != NEG_INF) {
            for (uint s = 0u; s < pc.n_slots; s++) {
                vec2 ml = pc.part_ml.v[s * pc.rows + row];
                if (ml.x == NEG_INF)
                    continue;
                float w = exp(ml.x - mx);
                num += w * pc.part_o.v[(s * pc.rows + row) * pc.d + e];
                den += w * ml.y;
            }
        }
        pc.o.v[idx] = den > 0.0 ? num / den : 0.0;
    }
}
