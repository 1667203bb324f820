#version 450
// topk_resolve.comp - one workgroup, over the candidates of topk_filter only (the keys on the
// threshold prefix: usually a few thousand; lm at worst, when all keys are equal, so its loops
// over them are unrolled by hand: CAND_LOOP):
//   1. (prefix of bits 31..21) digit 1 (bits 20..10): its bin b1 from their histogram;
//   2. one read of the candidates: those above b1 are taken, those on it ("survivors") are
//      counted by digit 2 (bits 9..0) and by block, and copied behind the list when there is
//      room, so the next read sees only them. After a deep pick (prefix of bits 31..10) the
//      candidates are the survivors (topk_filter counted them by block; digit 2 is counted
//      here);
//   3. digit 2 gives the exact threshold key T and `need`, how many keys equal to T to take.
//      When fewer are needed than there are, per-block counts of the ties find the block where
//      the running count reaches `need`;
//   4. one read of the survivors: a key > T is taken, and so is a key equal to T in a block
//      before that one; the ties in that block form a bitmap whose lowest `need` are taken.
// Taking a key sets its bit in the selection bitmap and counts it in its block; last, an
// exclusive scan turns blocks[] into output offsets for topk_write. Every step depends only on
// the set of candidates, not on their order in the list.
#include "topk.glsl"

layout(local_size_x = 256) in; // 256 on every device: see CAND_LOOP

const uint TIES = 1024u; // s_cnt: [0, 1024) digit-2 histogram, [TIES, TIES + nblocks) ties
#define SCAN_COUNTS (TIES + MAX_BLOCKS)
#include "wgscan.glsl"

// The loops over the candidate list: each invocation visits entries i0, i0 + 256, ..,
// i0 + 7 * 256 an iteration, the eight visits written out, not a loop. llvmpipe ends an
// invocation's loops after 65535 iterations in all (gallivm's guard against endless loops,
// unrolling hints or not), and the list may hold every middle token (ESA_MAX_TOKENS, all keys
// equal), read up to four times: 4 * 16.8M / (256 * 8) = 33k iterations. VISIT(i) must check
// i < end itself.
#define CAND_LOOP(first, end, VISIT)                                                           \
    for (uint i0_ = (first) + gl_LocalInvocationIndex; i0_ < (end); i0_ += 8u * gl_WorkGroupSize.x) { \
        uint s_ = gl_WorkGroupSize.x;                                                          \
        VISIT(i0_); VISIT(i0_ + s_); VISIT(i0_ + 2u * s_); VISIT(i0_ + 3u * s_);                \
        VISIT(i0_ + 4u * s_); VISIT(i0_ + 5u * s_); VISIT(i0_ + 6u * s_); VISIT(i0_ + 7u * s_); \
    }

shared uint s_tie[WORDS]; // the ties in the cutoff block
shared uint s_m;          // survivors copied behind the list

void take(uvec2 c)
{
    atomicAdd(pc.blocks.v[c.y / BLOCK], 1u);
    atomicOr(pc.bits.v[c.y >> 5], 1u << (c.y & 31u));
}

// s_cnt[0, mask] = the histogram of (key >> shift) & mask over the n candidates (one read of
// the list: topk_filter counts no digits, which on CPU drivers cost an atomic a candidate in
// a pass over all the keys).
void count_digit(uint n, uint shift, uint mask)
{
    uint lid = gl_LocalInvocationIndex, wg = gl_WorkGroupSize.x;
    for (uint b = lid; b <= mask; b += wg)
        s_cnt[b] = 0u;
    barrier();
#define COUNT_VISIT(i) if ((i) < n) atomicAdd(s_cnt[(pc.cand.v[(i)].x >> shift) & mask], 1u)
    CAND_LOOP(0u, n, COUNT_VISIT)
    barrier();
}

// One candidate of step 2: taken above b1, counted (and copied) as a survivor on it.
void digit1_visit(uvec2 c, uint n, uint b1, bool whole, bool copy)
{
    uint d = (c.x >> 10) & (BINS - 1u);
    if (d > b1 || (whole && d == b1)) {
        take(c);
    } else if (d == b1) {
        atomicAdd(s_cnt[c.x & 1023u], 1u);
        atomicAdd(s_cnt[TIES + c.y / BLOCK], 1u);
        if (copy)
            pc.cand.v[n + atomicAdd(s_m, 1u)] = c;
    }
}

// One candidate of step 4, of the survivors with T's bits 31..10: taken above T, or equal to
// T in a block before `cut`; the ties in block `cut` go to its bitmap.
void last_visit(uvec2 c, uint t, uint cut)
{
    if ((c.x ^ t) >> 10 != 0u)
        return; // not a survivor (when they were not copied)
    uint blk = c.y / BLOCK;
    if (c.x > t || (c.x == t && blk < cut))
        take(c);
    else if (c.x == t && blk == cut)
        atomicOr(s_tie[(c.y % BLOCK) >> 5], 1u << (c.y & 31u));
}

// Steps 1 and 2: t holds bits 31..21 of T and gets bits 20..10. Returns true when every key
// on the new prefix is taken (then nothing is left to do); else the survivors are counted in
// s_cnt and are cand[n, n + m) when copy, or those of cand[0, n) with t's bits 31..10.
bool digit1(uint n, uint nblk, inout uint t, inout uint need, out uint m, out bool copy)
{
    uint lid = gl_LocalInvocationIndex, wg = gl_WorkGroupSize.x;
    count_digit(n, 10u, BINS - 1u);
    wg_crossing(0u, BINS, true, need);
    uint b1 = s_cross_at;
    need -= s_cross_before;
    m = s_cnt[b1];
    bool whole = m == need; // then every key >= t | b1 << 10 is taken: this read does it all
    t |= b1 << 10;
    copy = !whole && m <= pc.cap - n;
    barrier();

    for (uint i = lid; i < TIES + nblk; i += wg)
        s_cnt[i] = 0u;
    if (lid == 0u)
        s_m = 0u;
    barrier();
#define DIGIT1_VISIT(i) if ((i) < n) digit1_visit(pc.cand.v[(i)], n, b1, whole, copy)
    CAND_LOOP(0u, n, DIGIT1_VISIT)
    barrier();
    return whole;
}

// Steps 3 and 4: t holds bits 31..10 of T; s_cnt[0, 1024) counts digit 2 of the m survivors,
// which are the candidates in cand[first, first + count) with t's bits 31..10, and
// s_cnt[TIES + b] counts the survivors of block b.
void last_digit(uint nblk, uint t, uint need, uint first, uint count, uint m)
{
    uint lid = gl_LocalInvocationIndex, wg = gl_WorkGroupSize.x;
    for (uint w = lid; w < WORDS; w += wg)
        s_tie[w] = 0u;
    wg_crossing(0u, 1024u, true, need);
    uint ties = s_cnt[s_cross_at];
    need -= s_cross_before;
    t |= s_cross_at;            // T, exactly
    bool whole = ties == need;  // then every key >= T is taken
    uint cut = 0xffffffffu;     // the block where the ties run out
    if (!whole) {
        if (ties != m) { // other survivors than the ties were counted: count the ties alone
            barrier();
            for (uint b = lid; b < nblk; b += wg)
                s_cnt[TIES + b] = 0u;
            barrier();
#define TIE_VISIT(i)                                                                           \
    if ((i) < first + count && pc.cand.v[(i)].x == t)                                          \
        atomicAdd(s_cnt[TIES + pc.cand.v[(i)].y / BLOCK], 1u)
            CAND_LOOP(first, first + count, TIE_VISIT)
            barrier();
        }
        wg_crossing(TIES, nblk, false, need);
        cut = s_cross_at;
        need -= s_cross_before; // ties to take in block cut
    }

#define LAST_VISIT(i) if ((i) < first + count) last_visit(pc.cand.v[(i)], t, cut)
    CAND_LOOP(first, first + count, LAST_VISIT)
    barrier();
    if (whole)
        return;
    for (uint w = lid; w < WORDS; w += wg)
        s_cnt[w] = bitCount(s_tie[w]);
    wg_crossing(0u, WORDS, false, need);
    uint last = s_cross_at, r = need - s_cross_before; // the r-th tie of word `last`
    for (uint w = lid; w <= last; w += wg) {
        uint bits = s_tie[w];
        if (w == last) {
            uint keep = 0u;
            for (; r > 0u; r--) {
                keep |= bits & (0u - bits); // lowest remaining bit
                bits &= bits - 1u;
            }
            bits = keep;
        }
        if (bits != 0u)
            atomicOr(pc.bits.v[cut * WORDS + w], bits);
    }
    if (lid == 0u)
        atomicAdd(pc.blocks.v[cut], need);
}

void main()
{
    uint lid = gl_LocalInvocationIndex, wg = gl_WorkGroupSize.x;
    uint n = pc.state.v[S_NCAND], nblk = pc.nblocks;
    // (uniform branches: every invocation reads the same words)
    if (pc.state.v[S_ALL] == 0u) { // else topk_filter took all keys on the prefix
        uint need = pc.state.v[S_NEED], prefix = pc.state.v[S_PREFIX];
        if (pc.state.v[S_SHIFT] == 21u) {
            uint t = prefix << 21, m;
            bool copy;
            if (!digit1(n, nblk, t, need, m, copy))
                last_digit(nblk, t, need, copy ? n : 0u, copy ? m : n, m);
        } else { // deep: the candidates are the survivors
            count_digit(n, 0u, 1023u);
            for (uint b = lid; b < nblk; b += wg)
                s_cnt[TIES + b] = pc.blocks.v[nblk + b];
            last_digit(nblk, prefix << 10, need, 0u, n, n);
        }
    }

    // offsets: blocks[] was counted with atomics, so it is read with them
    memoryBarrierBuffer();
    barrier();
    for (uint b = lid; b < nblk; b += wg)
        s_cnt[b] = atomicAdd(pc.blocks.v[b], 0u);
    barrier();
    uint per = (nblk + wg - 1u) / wg;
    uint lo = min(lid * per, nblk), hi = min(lo + per, nblk);
    uint sum = 0u;
    for (uint b = lo; b < hi; b++)
        sum += s_cnt[b];
    uint at = wg_exclusive_add(sum);
    for (uint b = lo; b < hi; b++) {
        pc.blocks.v[b] = at;
        at += s_cnt[b];
    }
}
