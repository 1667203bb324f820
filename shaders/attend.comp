#version 450
// attend.comp - one split of one part of the attention: a tile of rows (query x head of one
// GQA group) against a range of keys, with online softmax (FlashAttention's running max and
// sum, Dao et al. 2022). Writes the un-normalized output and (max, sum) of each row to a
// partial slot; merge.comp combines slots by log-sum-exp in a fixed order (flash-decoding's
// split-K, deterministic).
//
// The unit of work is a cluster of 8 adjacent lanes of a subgroup that reads one key at a
// time: lane l loads blocks l, l+8, ... of the key (a block is 8 dims, one 16-byte load) and
// rotates them. Then either
//   TD = 1: every lane owns RPI whole rows, and takes the other lanes' blocks by subgroup
//           shuffles: each key word is loaded once for the 8*RPI rows of the cluster (where
//           loads are costly, as on lavapipe, which loads lane by lane, this ratio is the
//           speed), or
//   TD = 8: the cluster owns RPI rows, each lane its own blocks of them; partial scores are
//           summed by xor-shuffles (each lane reads one coalesced slice: GPUs, and decode).
// KL clusters of a workgroup take the split's keys round-robin (key lanes), each writing its
// own slot; the rest of the clusters take different rows of the tile. Rows and the key block
// live in registers: every shape is a specialization constant, so every loop over dims
// unrolls and the register arrays are indexed by constants only.
//
// Queries come rotated and prescaled by scale*log2(e) (rope_q.comp), so scores are in log2
// units; the stored max is converted back to natural log for merge.comp. Queries and keys are
// read in RoPE pair order (NeoX: dims p and p + RD/2 of a rotated block side by side), values
// and the output in natural order; a dot product does not depend on the order of its terms.
//
// Workgroup (x, y, z) = (row tile, split, KV head): row tiles first, so that workgroups run
// one after another (a CPU driver runs them in order) read the same keys, from cache. Keys are
// cache positions: key_first + i, or list[key_first + i]. K/V rows are found through the
// layer's page table (pages.glsl), or, when `rows` is set (a list part whose rows were gathered
// first, pages.c), at rows + (key_first + i) * row bytes. Keys are rotated at 0 (k_rope_zero:
// none) or at position - k_rope_sub: a contiguous part steps each lane's rotation by KL
// positions a key, recomputed exactly (rope.glsl) every ANCHOR keys; a list part recomputes it
// for every key. A key is visible to query c iff its cache position <= q_cache_pos0 + c: the
// causal mask for local/dense parts, always true for global parts.
#extension GL_EXT_control_flow_attributes : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#ifdef LOAD64
#extension GL_EXT_shader_explicit_arithmetic_types_int64 : require
#endif
#include "common.glsl"
#include "pages.glsl"
#include "rope.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint D = 64;    // head dim, a multiple of 8
layout(constant_id = 2) const uint GS = 1;    // query heads per KV head
layout(constant_id = 3) const uint RD = 64;   // rotated dims, a multiple of 8, <= D
layout(constant_id = 4) const uint NEOX = 0;  // 1: pairs (i, i + RD/2), else (2i, 2i+1)
layout(constant_id = 5) const uint TD = 1;    // lanes per row: 1 or 8
layout(constant_id = 6) const uint RPI = 1;   // rows per lane (TD 1) or per cluster (TD 8)
layout(constant_id = 7) const uint KL = 1;    // key lanes: clusters with their own keys

// Key and value words, and page addresses. A CPU driver (lavapipe) loads a lane-varying
// buffer access lane by lane, one loop per component: the LOAD64 build (attend64, where the
// device has shaderInt64) reads them as 64-bit components, half the loops (esa-bench: prefill
// attention 1.2x faster on lavapipe). The same bits either way.
#ifdef LOAD64
layout(buffer_reference, std430, buffer_reference_align = 16) buffer U64V2Buf { u64vec2 v[]; };
layout(buffer_reference, std430, buffer_reference_align = 8) buffer U64Buf { uint64_t v[]; };
uvec4 load_words4(uvec2 a, uint i)
{
    u64vec2 w = U64V2Buf(a).v[i];
    return uvec4(unpack32(w.x), unpack32(w.y));
}
uvec2 load_words2(uvec2 a, uint i) { return unpack32(U64Buf(a).v[i]); }
#else
layout(buffer_reference, std430, buffer_reference_align = 16) buffer UV4Buf { uvec4 v[]; };
uvec4 load_words4(uvec2 a, uint i) { return UV4Buf(a).v[i]; }
uvec2 load_words2(uvec2 a, uint i) { return UV2Buf(a).v[i]; }
#endif

layout(push_constant) uniform PC {
    F32Buf q; UV2Buf pages; uvec2 rows; U32Buf list; F32Buf part_o; V2Buf part_ml; V4Buf rope;
    uint n, n_heads, key_first, key_count, split_len, q_cache_pos0;
    uint k_rope_zero, k_rope_sub, slot_base, use_list, page_shift, v_off;
} pc;

const uint NB = D / 8u;                    // blocks per head
const uint NBL = (NB + 7u) / 8u;           // blocks a lane loads: lane + 8j
const uint NBR = TD == 1u ? NB : NBL;      // blocks of a row a lane holds
const uint ROWS_CL = TD == 1u ? 8u * RPI : RPI; // rows per cluster
const uint ANCHOR = 32u;
const float LN2 = 0.69314718055994530942;

// NeoX rotated blocks pair dim 4b+i with RD/2+4b+i; every other block 8b+2i with 8b+2i+1.
bool neox_block(uint b) { return NEOX != 0u && b < RD / 8u; }

// A query block in pair order (f32 rows, 16-byte aligned: D % 8 == 0).
void load_q_block(uint row, uint b, out vec2 p[4])
{
    V4Buf q4 = V4Buf(pc.q);
    vec4 a, c;
    if (neox_block(b)) {
        a = q4.v[(row + 4u * b) / 4u];
        c = q4.v[(row + RD / 2u + 4u * b) / 4u];
        p[0] = vec2(a.x, c.x); p[1] = vec2(a.y, c.y); p[2] = vec2(a.z, c.z); p[3] = vec2(a.w, c.w);
    } else {
        a = q4.v[(row + 8u * b) / 4u];
        c = q4.v[(row + 8u * b) / 4u + 1u];
        p[0] = a.xy; p[1] = a.zw; p[2] = c.xy; p[3] = c.zw;
    }
}

// The cache position of the part's key idx.
uint key_pos(uint idx) { return pc.use_list != 0u ? pc.list.v[pc.key_first + idx] : pc.key_first + idx; }

// A key block in pair order from the fp16 head at address kh (16-byte aligned).
void load_k_block(uvec2 kh, uint b, out vec2 p[4])
{
    if (neox_block(b)) {
        uvec2 a = load_words2(kh, b), c = load_words2(kh, RD / 8u + b);
        vec2 a0 = unpackHalf2x16(a.x), a1 = unpackHalf2x16(a.y);
        vec2 c0 = unpackHalf2x16(c.x), c1 = unpackHalf2x16(c.y);
        p[0] = vec2(a0.x, c0.x); p[1] = vec2(a0.y, c0.y); p[2] = vec2(a1.x, c1.x); p[3] = vec2(a1.y, c1.y);
    } else {
        uvec4 a = load_words4(kh, b);
        p[0] = unpackHalf2x16(a.x); p[1] = unpackHalf2x16(a.y);
        p[2] = unpackHalf2x16(a.z); p[3] = unpackHalf2x16(a.w);
    }
}

void main()
{
    const uint CLUSTERS = gl_WorkGroupSize.x / 8u;
    uint sgl = gl_SubgroupInvocationID;
    uint cl = sgl % 8u;                      // lane within the cluster
    uint src0 = sgl - cl;                    // the cluster's first lane in the subgroup
    uint cluster = gl_SubgroupID * (gl_SubgroupSize / 8u) + sgl / 8u;
    uint kl = cluster % KL, rcl = cluster / KL;
    uint tile = gl_WorkGroupID.x, split = gl_WorkGroupID.y, g = gl_WorkGroupID.z;
    uint n_kv = pc.n_heads / GS;
    uint rows_total = pc.n * pc.n_heads;
    uint tile_rows = (CLUSTERS / KL) * ROWS_CL;
    uint cl_r0 = tile * tile_rows + rcl * ROWS_CL;            // the cluster's first row
    uint lane_r0 = cl_r0 + (TD == 1u ? cl * RPI : 0u);        // this lane's first row

    // --- this lane's rows (or row slices) in registers ----------------------------------
    vec2 qv[RPI][NBR * 4u];
    vec2 ov[RPI][NBR * 4u];
    float m[RPI], l[RPI];
    uint qlim[RPI]; // cache positions visible to the row: < qlim (0: no row)
    [[unroll]] for (uint i = 0u; i < RPI; i++) {
        uint r = lane_r0 + i;
        uint c = r / GS;
        m[i] = NEG_INF;
        l[i] = 0.0;
        qlim[i] = c < pc.n ? pc.q_cache_pos0 + c + 1u : 0u;
        uint row = (c * pc.n_heads + g * GS + r % GS) * D;
        [[unroll]] for (uint j = 0u; j < NBR; j++) {
            uint b = TD == 1u ? j : cl + 8u * j;
            vec2 p[4] = vec2[4](vec2(0.0), vec2(0.0), vec2(0.0), vec2(0.0));
            if (c < pc.n && b < NB)
                load_q_block(row, b, p);
            [[unroll]] for (uint e = 0u; e < 4u; e++) {
                qv[i][j * 4u + e] = p[e];
                ov[i][j * 4u + e] = vec2(0.0);
            }
        }
    }
    // The key loop is the same for the 8 lanes of a cluster (they shuffle): it stops after
    // the last position visible to the cluster's last query.
    uint c_last = min(pc.n - 1u, (cl_r0 + ROWS_CL - 1u) / GS);
    uint lim = pc.q_cache_pos0 + c_last + 1u;
    uint kbeg = split * pc.split_len;
    uint kend = min(kbeg + pc.split_len, pc.key_count);
    if (pc.use_list == 0u)
        kend = min(kend, lim > pc.key_first ? lim - pc.key_first : 0u);

    bool rot = pc.k_rope_zero == 0u;
    bool recur = rot && pc.use_list == 0u;
    uint half_rd = RD / 2u;
    // per loaded block: the key rotation now, and one step of KL positions
    vec2 cs[NBL][4], st[NBL][4];
    [[unroll]] for (uint j = 0u; j < NBL; j++) {
        uint b = cl + 8u * j;
        [[unroll]] for (uint e = 0u; e < 4u; e++) {
            cs[j][e] = vec2(1.0, 0.0);
            st[j][e] = vec2(1.0, 0.0);
        }
        if (recur && b < NB && 4u * b < half_rd)
            rope_cs4(pc.rope, half_rd, 4u * b, KL, st[j]);
    }

    // Keys come in runs: at a run's first key the rotation is computed exactly (rope_cs4,
    // six table loads a block), at the others stepped by the recurrence; a list part with
    // rotation (exact positions) has runs of one key. (A run is a loop, not an 'if' at every
    // key: llvmpipe runs an if body under a mask whether or not a lane takes it, and paid
    // the table loads' lane-by-lane loops at every key; a loop ends when no lane is in it.)
    // llvmpipe ends an invocation's loops after 65535 iterations in all, runs and keys
    // counted, each loop one more for its exit: up to three a key (runs of one key), so the
    // host keeps the keys of a lane under a third of that (esa_attend_tuning.lane_keys).
    uint run_keys = rot && pc.use_list != 0u ? 1u : ANCHOR;
    uint row_bytes = n_kv * D * 2u;
    bool gathered = pc.rows != uvec2(0u);
    uint page = 0xffffffffu; // the page whose address `base` holds (contiguous parts: few)
    uvec2 base = uvec2(0u);
    for (uint run0 = kbeg + kl; run0 < kend; run0 += run_keys * KL) {
        if (rot) {
            uint pos0 = key_pos(run0);
            [[unroll]] for (uint j = 0u; j < NBL; j++) {
                uint b = cl + 8u * j;
                if (b < NB && 4u * b < half_rd)
                    rope_cs4(pc.rope, half_rd, 4u * b, pos0 - pc.k_rope_sub, cs[j]);
            }
        }
        uint run_end = min(run0 + run_keys * KL, kend);
        for (uint idx = run0; idx < run_end; idx += KL) {
            uint pos = key_pos(idx);
            uvec2 kh;
            if (gathered) {
                kh = addr_add(pc.rows, (pc.key_first + idx) * row_bytes + g * D * 2u);
            } else {
                if (pos >> pc.page_shift != page) {
                    page = pos >> pc.page_shift;
                    base = load_words2(uvec2(pc.pages), page);
                }
                kh = addr_add(base, (pos & ((1u << pc.page_shift) - 1u)) * row_bytes + g * D * 2u);
            }
            uvec2 vh = addr_add(kh, pc.v_off);
            // this lane's blocks of the key, rotated
            vec2 kb[NBL][4];
            [[unroll]] for (uint j = 0u; j < NBL; j++) {
                uint b = cl + 8u * j;
                vec2 p[4] = vec2[4](vec2(0.0), vec2(0.0), vec2(0.0), vec2(0.0));
                if (b < NB) {
                    load_k_block(kh, b, p);
                    if (rot && 4u * b < half_rd) {
                        [[unroll]] for (uint e = 0u; e < 4u; e++) {
                            p[e] = cmul(p[e], cs[j][e]);
                            cs[j][e] = cmul(cs[j][e], st[j][e]);
                        }
                    }
                }
                [[unroll]] for (uint e = 0u; e < 4u; e++)
                    kb[j][e] = p[e];
            }
            // scores
            float s[RPI];
            [[unroll]] for (uint i = 0u; i < RPI; i++)
                s[i] = 0.0;
            [[unroll]] for (uint jb = 0u; jb < NBR; jb++) {
                vec2 kx[4];
                [[unroll]] for (uint e = 0u; e < 4u; e++)
                    kx[e] = TD == 1u ? subgroupShuffle(kb[jb / 8u][e], src0 + jb % 8u) : kb[jb][e];
                [[unroll]] for (uint i = 0u; i < RPI; i++)
                    [[unroll]] for (uint e = 0u; e < 4u; e++)
                        s[i] += dot(qv[i][jb * 4u + e], kx[e]);
            }
            // (a counted loop: llvmpipe does not unroll a shifted induction variable, and would
            // count its 3 iterations a key against its loop limit)
            if (TD > 1u)
                [[unroll]] for (uint sh = 0u; sh < 3u; sh++)
                    [[unroll]] for (uint i = 0u; i < RPI; i++)
                        s[i] += subgroupShuffleXor(s[i], 1u << sh);
            // online softmax without a branch: the output's rescale rides on the value
            // accumulation below (llvmpipe runs an if body under a mask whether or not a lane
            // takes it: a separate rescale cost a pass over every row's output at every key)
            float p[RPI], alpha[RPI];
            [[unroll]] for (uint i = 0u; i < RPI; i++) {
                float x = pos < qlim[i] ? s[i] : NEG_INF;
                float mn = max(m[i], x);
                alpha[i] = m[i] == mn ? 1.0 : exp2(m[i] - mn); // exactly 1 unless the max grew; 0 from -inf
                p[i] = x == NEG_INF ? 0.0 : exp2(x - mn);
                l[i] = l[i] * alpha[i] + p[i];
                m[i] = mn;
            }
            // values, natural order: block b is dims 8b..8b+7
            vec2 vb[NBL][4];
            [[unroll]] for (uint j = 0u; j < NBL; j++) {
                uint b = cl + 8u * j;
                uvec4 a = uvec4(0u);
                if (b < NB)
                    a = load_words4(vh, b);
                vb[j][0] = unpackHalf2x16(a.x); vb[j][1] = unpackHalf2x16(a.y);
                vb[j][2] = unpackHalf2x16(a.z); vb[j][3] = unpackHalf2x16(a.w);
            }
            [[unroll]] for (uint jb = 0u; jb < NBR; jb++) {
                vec2 vx[4];
                [[unroll]] for (uint e = 0u; e < 4u; e++)
                    vx[e] = TD == 1u ? subgroupShuffle(vb[jb / 8u][e], src0 + jb % 8u) : vb[jb][e];
                [[unroll]] for (uint i = 0u; i < RPI; i++)
                    [[unroll]] for (uint e = 0u; e < 4u; e++)
                        ov[i][jb * 4u + e] = ov[i][jb * 4u + e] * alpha[i] + p[i] * vx[e];
            }
        }
    }

    // --- write this cluster's partial slot -------------------------------------------------
    uint slot = pc.slot_base + split * KL + kl;
    [[unroll]] for (uint i = 0u; i < RPI; i++) {
        uint r = lane_r0 + i;
        uint c = r / GS;
        if (c >= pc.n)
            continue;
        uint orow = slot * rows_total + c * pc.n_heads + g * GS + r % GS;
        V4Buf o4 = V4Buf(pc.part_o);
        [[unroll]] for (uint j = 0u; j < NBR; j++) {
            uint b = TD == 1u ? j : cl + 8u * j;
            if (b >= NB)
                continue;
            uint base = (orow * D + 8u * b) / 4u;
            o4.v[base] = vec4(ov[i][j * 4u], ov[i][j * 4u + 1u]);
            o4.v[base + 1u] = vec4(ov[i][j * 4u + 2u], ov[i][j * 4u + 3u]);
        }
        if (TD == 1u || cl == 0u)
            pc.part_ml.v[orow] = vec2(m[i] == NEG_INF ? NEG_INF : m[i] * LN2, l[i]);
    }
}
