// topk.glsl - shared by the top-k passes: radix select of the k largest order keys, ties to
// the lower position, in the manner of AIR top-k (rapidsai/raft select_radix.cuh) but with
// dispatch boundaries instead of inter-workgroup spinning (Vulkan has no forward-progress
// guarantee between workgroups), and with ties resolved by position so the set is deterministic.
//
// Digits: bits 31..21 (pass 0, histogram fused into proximity.comp), 20..10 (pass 1), 9..0
// (pass 2). After pass p's pick, keys whose masked bits exceed `prefix` are in for sure, keys
// equal to it on the mask are candidates of which the first `need` (by position) are taken.
// `done` is set once the candidates can all be taken (or the key is fully resolved).
#include "common.glsl"

layout(push_constant) uniform PC {
    U32Buf keys; U32Buf state; U32Buf blocks; U32Buf o;
    uint lm, k, pass, nblocks, pos0, pad;
} pc;

const uint BINS = 2048u;
const uint S_PREFIX = 2048u, S_MASK = 2049u, S_NEED = 2050u, S_DONE = 2051u;
const uint BLOCK_ITEMS = 16u; // keys per invocation in count/write (workgroup size 256)

uint digit_shift(uint pass) { return pass == 0u ? 21u : (pass == 1u ? 10u : 0u); }
uint digit_bits(uint pass) { return pass == 2u ? 10u : 11u; }
