#version 450
// score.comp - importance of middle tokens from compressed queries and keys (spec 4.3).
//   mode 0 (chunks only): rowmax[c] = max over m of s_c(m), by atomicMax on order keys
//                         (max is order-independent, so the result is deterministic);
//   mode 1: f[m] = s_0(m) for one query, else max_c (s_c(m) - rowmax[c]).
// One query (decode): the query is loaded once a lane and the lane walks the middle tokens
// (grid-stride; on CPU drivers esa_select_tuning.score_groups caps the workgroups, so each
// lane walks many), each key row streamed word by word into the dot product. Chunks: every
// lane keeps TM middle tokens' compressed keys in registers and the queries stream past: for
// each query, the 8 lanes of a cluster load a slice
// of it each (16 bytes) and pass the slices around by subgroup shuffles, so each query word is
// loaded once per 8*TM keys (lavapipe loads lane by lane: loads, not FMAs, are its cost).
// DC (d', or G*d with exact scores) is a specialization constant and a multiple of 8: the
// loops over it unroll and the register arrays are indexed by constants. kc rows are fp16,
// 16-byte aligned; qc rows f32. With exact scores the keys are the cache's K rows, read
// through the layer's page table (PAGED, pages.glsl). PAGED is a specialization constant, not
// a push-constant test: CPU drivers execute both sides of a branch under a mask, so a run-time
// choice between the two loads would pay for both.
#extension GL_EXT_control_flow_attributes : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#include "common.glsl"
#include "pages.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint DC = 32;  // score dimension, a multiple of 8
layout(constant_id = 2) const uint TM = 8;   // middle tokens per lane for chunks
layout(constant_id = 3) const bool PAGED = false; // exact scores: K rows through the page table

layout(buffer_reference, std430, buffer_reference_align = 16) buffer UV4Buf { uvec4 v[]; };

layout(push_constant) uniform PC {
    F32Buf qc; U32Buf kc; U32Buf rowmax; F32Buf f; UV2Buf pages;
    uint n, dc, m0, lm, mode, page_shift;
} pc;

const uint NQ = DC / 4u;             // vec4 chunks of a query
const uint NQL = (NQ + 7u) / 8u;     // chunks a lane loads: lane + 8j
const uint NK = DC / 8u;             // uvec4 words (8 halves) of a key

// Query c, whole, into q[NQ] in every lane of the cluster (src0: its first lane, cl: this lane
// in it). Macros, not functions: arrays sized by specialization constants stay local.
#define LOAD_QUERY(c)                                                                          \
    {                                                                                          \
        vec4 mine_[NQL];                                                                       \
        [[unroll]] for (uint j_ = 0u; j_ < NQL; j_++) {                                        \
            uint ch_ = cl + 8u * j_;                                                           \
            mine_[j_] = ch_ < NQ ? V4Buf(pc.qc).v[(c) * NQ + ch_] : vec4(0.0);                 \
        }                                                                                      \
        [[unroll]] for (uint ch_ = 0u; ch_ < NQ; ch_++)                                        \
            q[ch_] = subgroupShuffle(mine_[ch_ / 8u], src0 + ch_ % 8u);                        \
    }

// The key row of middle token m into kk[2*NK] (zeros when !live).
#define LOAD_KEY(kk, m, live)                                                                  \
    uvec2 kr_ = PAGED && (live) ? page_row(pc.pages, pc.m0 + (m), pc.page_shift, NK * 16u)    \
                                : uvec2(0u);                                                   \
    [[unroll]] for (uint w_ = 0u; w_ < NK; w_++) {                                             \
        uvec4 a_ = !(live)                ? uvec4(0u)                                          \
                   : PAGED               ? UV4Buf(kr_).v[w_]                                   \
                                         : UV4Buf(pc.kc).v[(pc.m0 + (m)) * NK + w_];           \
        kk[2u * w_] = vec4(unpackHalf2x16(a_.x), unpackHalf2x16(a_.y));                        \
        kk[2u * w_ + 1u] = vec4(unpackHalf2x16(a_.z), unpackHalf2x16(a_.w));                   \
    }

// Word w of a key row (8 halves) into the running dot product s with the query.
#define ROW_WORD(s, word, w)                                                                   \
    {                                                                                          \
        uvec4 a_ = (word);                                                                     \
        s += dot(q[2u * (w)], vec4(unpackHalf2x16(a_.x), unpackHalf2x16(a_.y)));              \
        s += dot(q[2u * (w) + 1u], vec4(unpackHalf2x16(a_.z), unpackHalf2x16(a_.w)));         \
    }

#define DOT_ROW(s, kk)                                                                         \
    {                                                                                          \
        s = 0.0;                                                                               \
        [[unroll]] for (uint ch_ = 0u; ch_ < NQ; ch_++)                                        \
            s += dot(q[ch_], kk[ch_]);                                                         \
    }

void main()
{
    uint sgl = gl_SubgroupInvocationID;
    uint cl = sgl % 8u, src0 = sgl - cl;
    vec4 q[NQ];
    if (pc.n == 1u) { // uniform
        LOAD_QUERY(0u);
        uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
        for (uint m = gl_GlobalInvocationID.x; m < pc.lm; m += stride) {
            float s1 = 0.0; // the order of DOT_ROW
            if (PAGED) {
                uvec2 kr = page_row(pc.pages, pc.m0 + m, pc.page_shift, NK * 16u);
                [[unroll]] for (uint w = 0u; w < NK; w++)
                    ROW_WORD(s1, UV4Buf(kr).v[w], w);
            } else {
                [[unroll]] for (uint w = 0u; w < NK; w++)
                    ROW_WORD(s1, UV4Buf(pc.kc).v[(pc.m0 + m) * NK + w], w);
            }
            pc.f.v[m] = s1;
        }
        return;
    }
    // chunks: TM tokens per lane, m = base + lane + WG * t (a workgroup covers WG*TM tokens)
    uint base = gl_WorkGroupID.x * gl_WorkGroupSize.x * TM + gl_LocalInvocationID.x;
    vec4 k[TM][2u * NK];
    bool live[TM];
    [[unroll]] for (uint t = 0u; t < TM; t++) {
        uint m = base + gl_WorkGroupSize.x * t;
        live[t] = m < pc.lm;
        LOAD_KEY(k[t], m, live[t]);
    }
    float best[TM];
    bool nan_seen[TM];
    [[unroll]] for (uint t = 0u; t < TM; t++) {
        best[t] = NEG_INF;
        nan_seen[t] = false;
    }
    // Every lane runs the same queries in the same order: subgroup operations are uniform.
    for (uint c0 = 0u; c0 < pc.n; c0 += 8u) {
        // the row maxima of 8 queries, one per lane of the cluster
        float rm_mine = 0.0;
        if (pc.mode == 1u && c0 + cl < pc.n)
            rm_mine = order_key_decode(pc.rowmax.v[c0 + cl]);
        uint nc = min(8u, pc.n - c0);
        for (uint j = 0u; j < nc; j++) {
            uint c = c0 + j;
            LOAD_QUERY(c);
            float rm = subgroupShuffle(rm_mine, src0 + j);
            uint kmax = 0u;
            [[unroll]] for (uint t = 0u; t < TM; t++) {
                float s;
                DOT_ROW(s, k[t]);
                if (pc.mode == 0u) {
                    kmax = max(kmax, live[t] ? order_key(s) : 0u);
                } else {
                    float sh = s - rm;
                    nan_seen[t] = nan_seen[t] || isnan(sh);
                    best[t] = max(best[t], sh);
                }
            }
            if (pc.mode == 0u) {
                kmax = subgroupMax(kmax);
                if (subgroupElect() && kmax != 0u)
                    atomicMax(pc.rowmax.v[c], kmax);
            }
        }
    }
    if (pc.mode == 1u)
        [[unroll]] for (uint t = 0u; t < TM; t++)
            if (live[t])
                pc.f.v[base + gl_WorkGroupSize.x * t] = nan_seen[t] ? uintBitsToFloat(0x7fc00000u) : best[t];
}
