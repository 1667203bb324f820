#version 450
// attend.comp - one split of one part of the attention: QT queries x GS heads of one GQA group
// (rows) against a range of keys, with online softmax (FlashAttention's running max and sum).
// Writes the un-normalized output and (max, sum) of each row to a partial slot; merge.comp
// combines slots by log-sum-exp in a fixed order (flash-decoding's split-K, deterministic).
//
// Workgroup (x, y, z) = (split, query tile, KV head). Keys are cache positions: key_first + i,
// or list[key_first + i]. RoPE is applied here: queries at q_rope_pos0 + c*q_rope_step, keys at
// 0 (k_rope_zero) or position - k_rope_sub. A key is visible to query c iff its cache position
// <= q_cache_pos0 + c, which is the causal mask for local/dense parts and always true for
// global parts (their keys precede the chunk).
#include "common.glsl"
#include "rope.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint D = 64;   // head dim
layout(constant_id = 2) const uint GS = 1;   // query heads per KV head
layout(constant_id = 3) const uint QT = 1;   // queries per tile
layout(constant_id = 4) const uint KT = 16;  // keys per tile

layout(push_constant) uniform PC {
    F32Buf q; U32Buf k; U32Buf v; U32Buf list; F32Buf part_o; V2Buf part_ml; V4Buf rope;
    uint n, n_heads, key_first, key_count, split_len, q_cache_pos0, q_rope_pos0, q_rope_step;
    uint k_rope_zero, k_rope_sub, slot_base, rope_dims, rope_neox, use_list;
    float scale;
    uint pad;
} pc;

const uint R = QT * GS;
const uint PER = (R * D + gl_WorkGroupSize.x - 1u) / gl_WorkGroupSize.x; // outputs per invocation

shared float sq[R * D];
shared float sk[KT * D];
shared float sv[KT * D];
shared float ss[R * KT];
shared uint skpos[KT];
shared float sm[R], sl[R], salpha[R];

float load_half(U32Buf b, uint idx) { return unpackHalf2x16(b.v[idx >> 1])[idx & 1u]; }

void main()
{
    uint lid = gl_LocalInvocationID.x, wg = gl_WorkGroupSize.x;
    uint g = gl_WorkGroupID.z;
    uint c0 = gl_WorkGroupID.y * QT;
    uint kbeg = gl_WorkGroupID.x * pc.split_len;
    uint kend = min(kbeg + pc.split_len, pc.key_count);
    uint n_kv = pc.n_heads / GS;

    for (uint idx = lid; idx < R * D; idx += wg) {
        uint r = idx / D, e = idx % D;
        uint c = c0 + r / GS, h = g * GS + r % GS;
        float x = 0.0;
        if (c < pc.n) {
            uint row = (c * pc.n_heads + h) * D;
            uint pe = rope_partner(e, pc.rope_dims, pc.rope_neox);
            x = rope_apply(pc.rope, e, pc.q.v[row + e], pc.q.v[row + pe],
                           pc.q_rope_pos0 + c * pc.q_rope_step, pc.rope_dims, pc.rope_neox);
        }
        sq[idx] = x * pc.scale;
    }
    for (uint r = lid; r < R; r += wg) {
        sm[r] = NEG_INF;
        sl[r] = 0.0;
    }
    float acc[PER];
    for (uint i = 0u; i < PER; i++)
        acc[i] = 0.0;
    barrier();

    for (uint t0 = kbeg; t0 < kend; t0 += KT) {
        for (uint idx = lid; idx < KT * D; idx += wg) {
            uint j = idx / D, e = idx % D;
            float kx = 0.0, vx = 0.0;
            uint pos = 0xffffffffu;
            if (t0 + j < kend) {
                pos = pc.use_list != 0u ? pc.list.v[pc.key_first + t0 + j] : pc.key_first + t0 + j;
                uint row = (pos * n_kv + g) * D;
                uint pe = rope_partner(e, pc.rope_dims, pc.rope_neox);
                uint kp = pc.k_rope_zero != 0u ? 0u : pos - pc.k_rope_sub;
                kx = rope_apply(pc.rope, e, load_half(pc.k, row + e), load_half(pc.k, row + pe), kp,
                                pc.rope_dims, pc.rope_neox);
                vx = load_half(pc.v, row + e);
            }
            sk[idx] = kx;
            sv[idx] = vx;
            if (e == 0u)
                skpos[j] = pos;
        }
        barrier();
        for (uint idx = lid; idx < R * KT; idx += wg) {
            uint r = idx / KT, j = idx % KT;
            uint c = c0 + r / GS;
            float s = NEG_INF;
            if (c < pc.n && skpos[j] != 0xffffffffu && skpos[j] <= pc.q_cache_pos0 + c) {
                s = 0.0;
                for (uint e = 0u; e < D; e++)
                    s += sq[r * D + e] * sk[j * D + e];
            }
            ss[idx] = s;
        }
        barrier();
        for (uint r = lid; r < R; r += wg) {
            float mt = NEG_INF;
            for (uint j = 0u; j < KT; j++)
                mt = max(mt, ss[r * KT + j]);
            float mold = sm[r], mnew = max(mold, mt);
            float alpha = mold == NEG_INF ? (mnew == NEG_INF ? 1.0 : 0.0) : exp(mold - mnew);
            float sum = 0.0;
            for (uint j = 0u; j < KT; j++) {
                float s = ss[r * KT + j];
                float p = s == NEG_INF ? 0.0 : exp(s - mnew);
                ss[r * KT + j] = p;
                sum += p;
            }
            sl[r] = sl[r] * alpha + sum;
            sm[r] = mnew;
            salpha[r] = alpha;
        }
        barrier();
        for (uint i = 0u; i < PER; i++) {
            uint idx = lid + i * wg;
            if (idx < R * D) {
                uint r = idx / D, e = idx % D;
                float a = acc[i] * salpha[r];
                for (uint j = 0u; j < KT; j++)
                    a += ss[r * KT + j] * sv[j * D + e];
                acc[i] = a;
            }
        }
        barrier();
    }

    uint slot = pc.slot_base + gl_WorkGroupID.x;
    uint rows = pc.n * pc.n_heads;
    for (uint i = 0u; i < PER; i++) {
        uint idx = lid + i * wg;
        if (idx < R * D) {
            uint r = idx / D, e = idx % D;
            uint c = c0 + r / GS, h = g * GS + r % GS;
            if (c < pc.n)
                pc.part_o.v[(slot * rows + c * pc.n_heads + h) * D + e] = acc[i];
        }
    }
    for (uint r = lid; r < R; r += wg) {
        uint c = c0 + r / GS, h = g * GS + r % GS;
        if (c < pc.n)
            pc.part_ml.v[slot * rows + c * pc.n_heads + h] = vec2(sm[r], sl[r]);
    }
}
