#version 450
// topk_filter.comp - a read of the keys, a workgroup per block of BLOCK keys, each subgroup a
// contiguous run of it: a key above the threshold prefix (bits 31..21, or 31..10 after a deep
// pick), or on it when all keys on it are taken, is selected: its bit is set in the block's
// bitmap (each word written once: a subgroup ballot, or a lane's own word on CPU drivers) and
// counted in blocks[]; a key on the prefix is a candidate, appended as (key, index) to the
// list topk_resolve reads (which counts their next digit itself) and counted in
// blocks[nblocks + block].
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
// operation per key, for CPU drivers; 0: the subgroup reads neighbours together (GPUs).
layout(constant_id = 1) const uint LANE_WORDS = 0;

// One key of a lane's word (LANE_WORDS): its selection and candidate bits.
void classify(uint key, uint c, uint shift, uint prefix, inout uint word, inout uint cw)
{
    uint d = key >> shift;
    word |= uint(d > prefix) << c;
    cw |= uint(d == prefix) << c;
}

// LANE_WORDS: lane `lane` takes words lane, lane + S, .. of this subgroup's run. Written for
// how CPU drivers run a subgroup, as one SIMD program under an execution mask: an `if` body is
// executed whether or not any lane takes it, while a loop stops as soon as no lane goes on.
// So the per-key work is branch-free, and the rare work (a candidate's atomics, the word that
// holds the end of the keys) sits in loops whose trip counts are data: skipped when no lane
// has any (measured on lavapipe: the same filter with `if`-guarded atomics per key took 5x
// the time of a plain read of the keys).
void filter_lane_words(uint blk, uint base, uint first, uint run, uint prefix, uint shift, bool whole)
{
    uint S = gl_SubgroupSize, lane = gl_SubgroupInvocationID;
    uint taken = 0u, ncand = 0u;
    U4Buf keys4 = U4Buf(pc.keys); // 32 keys = 128 bytes: a word's keys are 16-byte aligned
    uint nw = run / 32u;
    uint full = pc.lm <= first ? 0u : min(nw, (pc.lm - first) / 32u); // words with 32 live keys
    for (uint w = lane; w < nw; w += S) {
        uint j0 = first + 32u * w, word = 0u, cw = 0u;
        for (uint q = w < full ? 0u : 8u; q < 8u; q++) {
            uvec4 k4 = keys4.v[j0 / 4u + q];
            classify(k4.x, 4u * q, shift, prefix, word, cw);
            classify(k4.y, 4u * q + 1u, shift, prefix, word, cw);
            classify(k4.z, 4u * q + 2u, shift, prefix, word, cw);
            classify(k4.w, 4u * q + 3u, shift, prefix, word, cw);
        }
        // the word that holds the end of the keys (at most one in all), key by key
        for (uint c = 0u; w >= full && c < 32u && j0 + c < pc.lm; c++)
            classify(pc.keys.v[j0 + c], c, shift, prefix, word, cw);
        if (whole) { // every key on the prefix is taken: no candidates
            word |= cw;
            cw = 0u;
        }
        pc.bits.v[blk * WORDS + (j0 - base) / 32u] = word;
        taken += bitCount(word);
        uint nc = bitCount(cw), at = 0u;
        ncand += nc;
        if (nc != 0u) // one atomic a word (masked off, it costs a pass over the lanes, no more)
            at = atomicAdd(pc.state.v[S_NCAND], nc);
        for (; cw != 0u; cw &= cw - 1u) {
            uint j = j0 + uint(findLSB(cw));
            pc.cand.v[at++] = uvec2(pc.keys.v[j], j);
        }
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
    bool whole = pc.state.v[S_ALL] != 0u;
    if (LANE_WORDS != 0u) {
        filter_lane_words(blk, base, first, run, prefix, shift, whole);
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
            if (cand)
                pc.cand.v[at] = uvec2(key, j);
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
