// topk.glsl - shared by the top-k passes: the k largest order keys, ties to the lower position,
// written ascending by position. Radix select from the most significant bits as in AIR top-k
// (rapidsai/raft select_radix.cuh: 11-bit digits, the first digit's histogram fused into
// proximity.comp), with dispatch boundaries instead of inter-workgroup spinning (Vulkan has no
// forward-progress guarantee between workgroups), and with ties resolved by position so the
// result depends only on the set of keys, never on the order of atomics.
//
//   proximity.comp  keys[lm], and the histogram of digit 0 (bits 31..21) in state
//   topk_pick 0     1 workgroup: the threshold bin of digit 0 and `need`, its keys to take;
//                   when that bin holds very many keys ("deep"), it sizes the next two
//                   dispatches, which are empty otherwise:
//   topk_hist1      read 2 of the keys, deep only: histogram of digit 1 (bits 20..10) of the
//                   keys in the bin
//   topk_pick 1     deep only: the threshold narrows to bits 31..10
//   topk_filter     read 1 of the keys, a workgroup per block of BLOCK keys: a key above the
//                   threshold prefix is selected (a bit in the block's bitmap, a count in
//                   blocks[]); a key on it is a candidate, appended as (key, index) to a list
//   topk_resolve    1 workgroup, over the candidates only (the histograms of their next
//                   digits counted there): the threshold key T and the position
//                   cutoff among the keys equal to T; sets the taken candidates' bits and turns
//                   blocks[] into output offsets
//   topk_write      a workgroup per block: its bitmap (BLOCK / 8 bytes, not the keys) ->
//                   ascending positions at the block's offset
//
// The candidate list has room for cap >= lm entries, so it cannot overflow.
#include "common.glsl"

layout(buffer_reference, std430, buffer_reference_align = 8) buffer U2Buf { uvec2 v[]; };
layout(buffer_reference, std430, buffer_reference_align = 16) buffer U4Buf { uvec4 v[]; };

layout(push_constant) uniform PC {
    U32Buf keys;    // uint [lm] order keys
    U32Buf state;   // uint [S_WORDS], zeroed before proximity.comp
    U32Buf blocks;  // uint [2][nblocks]: keys taken per block, then (resolve) its output
                    // offset; candidates per block
    U32Buf bits;    // uint [nblocks][WORDS]: selection bitmap, bit i of a block = key base + i
    U2Buf cand;     // uvec2 [cap]: candidates (key, index), in no particular order
    U32Buf o;       // uint [k]: pos0 + index of the selected keys, ascending
    uint lm, k, nblocks, pos0, cap, pass;
} pc;

const uint BINS = 2048u;          // 11-bit digits (digit 2, bits 9..0, has 1024)
const uint S_HIST1 = 2048u;       // state: [0, 2048) digit 0 histogram, [2048, 4096) digit 1's (deep)
const uint S_PREFIX = 4096u;      // the threshold prefix: keys with key >> S_SHIFT above it
const uint S_SHIFT = 4097u;       //   are taken, keys on it are candidates; S_SHIFT 21 or 10
const uint S_NEED = 4098u;        // keys on the prefix to take (1 .. their count)
const uint S_ALL = 4099u;         // 1 when all keys on the prefix are taken: no candidates
const uint S_NCAND = 4100u;       // candidates appended (a global counter)
const uint S_ARGS = 4104u;        // dispatch sizes of topk_hist1 and pick 1 (3 words each)
const uint BLOCK = 4096u;         // keys per block in hist1, filter and write
const uint WORDS = BLOCK / 32u;   // bitmap words per block
const uint MAX_BLOCKS = 4096u;    // ESA_MAX_TOKENS / BLOCK, rounded up

// Deep when the bin of digit 0 holds more keys than this: reading the keys twice is then
// cheaper than one workgroup going through that many candidates.
uint deep_limit() { return max(65536u, pc.lm / 16u); }
