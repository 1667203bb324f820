// topk.glsl - shared by the top-k passes: the k largest order keys, ties to the lower position,
// written ascending by position. Radix select from the most significant bits as in AIR top-k
// (rapidsai/raft select_radix.cuh: 11-bit digits, the next digit's histogram fused into the
// filter), with dispatch boundaries instead of inter-workgroup spinning (Vulkan has no
// forward-progress guarantee between workgroups), and with ties resolved by position so the
// result depends only on the set of keys, never on the order of atomics.
//
//   proximity.comp  keys[lm], and the histogram of digit 0 (bits 31..21) in state
//   topk_pick       1 workgroup: the threshold bin b0 of digit 0 and `need`, its keys to take
//   topk_filter     the one read of the keys, a workgroup per block of BLOCK keys: a key above
//                   b0 is selected (a bit in the block's bitmap, a count in blocks[]); a key in
//                   b0 is a candidate, appended as (key, index) to a list, and counted in the
//                   histogram of digit 1 (bits 20..10)
//   topk_resolve    1 workgroup, over the candidates only: the threshold key T and the position
//                   cutoff among the keys equal to T; sets the taken candidates' bits and turns
//                   blocks[] into output offsets
//   topk_write      a workgroup per block: its bitmap (BLOCK / 8 bytes, not the keys) ->
//                   ascending positions at the block's offset
//
// The candidate list has room for cap >= lm entries, so it cannot overflow.
#include "common.glsl"

layout(buffer_reference, std430, buffer_reference_align = 8) buffer U2Buf { uvec2 v[]; };

layout(push_constant) uniform PC {
    U32Buf keys;    // uint [lm] order keys
    U32Buf state;   // uint [S_WORDS], zeroed before proximity.comp
    U32Buf blocks;  // uint [nblocks]: keys taken per block, then (resolve) its output offset
    U32Buf bits;    // uint [nblocks][WORDS]: selection bitmap, bit i of a block = key base + i
    U2Buf cand;     // uvec2 [cap]: candidates (key, index), in no particular order
    U32Buf o;       // uint [k]: pos0 + index of the selected keys, ascending
    uint lm, k, nblocks, pos0, cap, pad;
} pc;

const uint BINS = 2048u;          // 11-bit digits
const uint S_HIST1 = 2048u;       // state: [0, 2048) digit 0 histogram, [2048, 4096) digit 1
const uint S_BIN = 4096u;         // threshold bin of digit 0
const uint S_NEED = 4097u;        // keys of that bin to take (1 .. its count)
const uint S_ALL = 4098u;         // 1 when the whole bin is taken: no candidates
const uint S_NCAND = 4099u;       // candidates appended (a global counter)
const uint BLOCK = 4096u;         // keys per block in filter and write
const uint WORDS = BLOCK / 32u;   // bitmap words per block
const uint MAX_BLOCKS = 4096u;    // ESA_MAX_TOKENS / BLOCK, rounded up
