#version 450
// topk_filter.comp - a read of the keys, a workgroup per block of BLOCK keys, each subgroup a
// contiguous run of it: a key above the threshold prefix (bits 31..21, or 31..10 after a deep
// pick), or on it when all keys on it are taken, is selected: its bit is set in the block's
// bitmap (the words are subgroup ballots, written once each) and counted in blocks[]; a key on
// the prefix is a candidate, appended as (key, index) to the list topk_resolve reads, counted
// in the histogram of its next digit (bits 20..10, or 9..0) and in blocks[nblocks + block].
// Subgroup operations only: no shared memory and no barrier (lavapipe switches coroutines at
// every barrier of a many-subgroup workgroup), so the workgroup size is free (a
// specialization constant). blocks[] must be zero before (esa_record_topk clears it).
// The list's order depends on atomic timing; nothing downstream depends on that order.
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_KHR_shader_subgroup_ballot : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_EXT_control_flow_attributes : require
#include "topk.glsl"

layout(local_size_x_id = 0) in;
// 1: each lane scans whole bitmap words (32 neighbouring keys) itself, with no subgroup
// operation per key, for CPU drivers (lavapipe runs a ballot per 8 keys slowly, and its loads
// cost the same strided or not); 0: the subgroup reads neighbours together (GPUs).
layout(constant_id = 1) const uint LANE_WORDS = 0;

// LANE_WORDS: lane `lane` takes words lane, lane + S, .. of this subgroup's run.
void filter_lane_words(uint blk, uint base, uint first, uint run, uint prefix, uint shift, uint next,
                       uint nmask, bool whole)
{
    uint S = gl_SubgroupSize, lane = gl_SubgroupInvocationID;
    uint taken = 0u, ncand = 0u;
    for (uint w = lane; w < run / 32u; w += S) {
        uint j0 = first + 32u * w, word = 0u;
        [[unroll]] for (uint c = 0u; c < 32u; c++) {
            uint j = j0 + c;
            bool live = j < pc.lm;
            uint key = live ? pc.keys.v[j] : 0u;
            uint d = key >> shift;
            if (live && (d > prefix || (d == prefix && whole)))
                word |= 1u << c;
            if (live && d == prefix && !whole) {
                uint at = atomicAdd(pc.state.v[S_NCAND], 1u);
                pc.cand.v[at] = uvec2(key, j);
                atomicAdd(pc.state.v[S_HIST1 + ((key >> next) & nmask)], 1u);
                ncand++;
            }
        }
        pc.bits.v[blk * WORDS + (j0 - base) / 32u] = word;
        taken += bitCount(word);
    }
    taken = subgroupAdd(taken);
    ncand = subgroupAdd(ncand);
    if (subgroupElect()) {
        if (taken != 0u)
            atomicAdd(pc.blocks.v[blk], taken);
        if (ncand != 0u)
            atomicAdd(pc.blocks.v[pc.nblocks + blk], ncand);
    }
}

void main()
{
    uint blk = gl_WorkGroupID.x, base = blk * BLOCK;
    uint S = gl_SubgroupSize, lane = gl_SubgroupInvocationID;
    uint run = BLOCK / gl_NumSubgroups; // a multiple of 32 and of S (the host sizes the group)
    uint first = base + gl_SubgroupID * run;
    uint prefix = pc.state.v[S_PREFIX], shift = pc.state.v[S_SHIFT];
    uint next = shift == 21u ? 10u : 0u, nmask = shift == 21u ? BINS - 1u : 1023u;
    bool whole = pc.state.v[S_ALL] != 0u;
    if (LANE_WORDS != 0u) {
        filter_lane_words(blk, base, first, run, prefix, shift, next, nmask, whole);
        return;
    }
    uint taken = 0u, ncand = 0u, word = 0u;
    for (uint i = 0u; i < run; i += S) {
        uint j = first + i + lane; // neighbours read neighbours
        bool live = j < pc.lm;
        uint key = live ? pc.keys.v[j] : 0u;
        uint d = key >> shift;
        bool sel = live && (d > prefix || (d == prefix && whole));
        bool cand = live && d == prefix && !whole;
        uvec4 b = subgroupBallot(sel);
        taken += subgroupBallotBitCount(b);
        uint w0 = blk * WORDS + (first - base + i) / 32u; // the bitmap word of key first + i
        if (S >= 32u) {
            if (lane < S / 32u)
                pc.bits.v[w0 + lane] = b[lane];
        } else {
            word |= b.x << (i % 32u);
            if ((i + S) % 32u == 0u) {
                if (lane == 0u)
                    pc.bits.v[w0] = word;
                word = 0u;
            }
        }
        uvec4 cb = subgroupBallot(cand);
        uint nc = subgroupBallotBitCount(cb);
        if (nc != 0u) { // uniform
            uint at = 0u;
            if (subgroupElect())
                at = atomicAdd(pc.state.v[S_NCAND], nc);
            at = subgroupBroadcastFirst(at) + subgroupBallotExclusiveBitCount(cb);
            uint digit = (key >> next) & nmask;
            uint lo = subgroupMin(cand ? digit : 0xffffffffu), hi = subgroupMax(cand ? digit : 0u);
            if (cand)
                pc.cand.v[at] = uvec2(key, j);
            if (lo == hi) { // the usual case with many candidates: one bin, one atomic
                if (subgroupElect())
                    atomicAdd(pc.state.v[S_HIST1 + lo], nc);
            } else if (cand) {
                atomicAdd(pc.state.v[S_HIST1 + digit], 1u);
            }
            ncand += nc;
        }
    }
    if (subgroupElect()) {
        if (taken != 0u)
            atomicAdd(pc.blocks.v[blk], taken);
        if (ncand != 0u)
            atomicAdd(pc.blocks.v[pc.nblocks + blk], ncand);
    }
}
