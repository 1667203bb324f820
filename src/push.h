/* push.h - push-constant blocks of every shader, mirrored from shaders/<name>.comp.
 *
 * Addresses come first (8-byte aligned in std430), then 32-bit fields. Each struct must match
 * its GLSL block byte for byte; the asserts pin the sizes that the shaders were written for. */
#ifndef ESA_PUSH_H
#define ESA_PUSH_H

#include <stddef.h>
#include <stdint.h>

typedef struct esa_pc_append { /* shaders/append.comp */
    uint64_t q_in, k_in, v_in;  /* [n][H*d], [n][G*d], [n][G*d] in f32 or f16 */
    uint64_t q_out;             /* f32 [n][H*d] */
    uint64_t pages;             /* the layer's page table (pages.glsl) */
    uint32_t n, hd, gd, pos;    /* tokens, H*d, G*d, first cache position */
    uint32_t in_f16, page_shift, v_off, pad; /* v_off: bytes from a page's K rows to its V rows */
} esa_pc_append;
_Static_assert(sizeof(esa_pc_append) == 72, "append push constants");

typedef struct esa_pc_compress { /* shaders/compress.comp */
    uint64_t x;                 /* [n][x_stride] f32 or f16 */
    uint64_t mt;                /* f32 [cols][rows rounded up to 4]: the matrix, transposed */
    uint64_t out;               /* [n][out_stride] f32 or f16 */
    uint64_t x_pages;           /* x_shift != 0: x is the cache's K, through this page table */
    uint64_t part;              /* f32 [splits][n][rows up to 4]: partial sums when split_cols < cols */
    uint32_t n, rows, cols, x_stride, out_stride, x_f16, out_f16, x_row0, x_shift;
    uint32_t split_cols;        /* columns a workgroup sums (esa_record_compress sets it) */
} esa_pc_compress;
_Static_assert(sizeof(esa_pc_compress) == 80, "compress push constants");
#define ESA_COMPRESS_TOKENS 8u /* tokens per workgroup of compress.comp (its TT; 1 for one token) */
#define ESA_COMPRESS_WG 32u    /* its workgroup size: four output rows an invocation */

typedef struct esa_pc_score { /* shaders/score.comp */
    uint64_t qc;                /* f32 [n][dc] */
    uint64_t kc;                /* f16 [*][dc] */
    uint64_t rowmax;            /* uint [n] order keys */
    uint64_t f;                 /* f32 [lm] */
    uint64_t pages;             /* page_shift != 0: the keys are K rows through this page table */
    uint32_t n, dc, m0, lm, mode, page_shift;
} esa_pc_score;
_Static_assert(sizeof(esa_pc_score) == 64, "score push constants");

typedef struct esa_pc_proximity { /* shaders/proximity.comp */
    uint64_t f;                 /* f32 [lm rounded up to 4], read as vec4s */
    uint64_t keys;              /* uint [lm], 16-byte aligned */
    uint64_t state;             /* uint [ESA_TOPK_STATE_WORDS]: its histogram is words 0..2047 */
    uint32_t lm, radius;
} esa_pc_proximity;
_Static_assert(sizeof(esa_pc_proximity) == 32, "proximity push constants");

typedef struct esa_pc_topk { /* shaders/topk.glsl: topk_{pick,hist1,filter,resolve,write}.comp */
    uint64_t keys;              /* uint [lm] order keys */
    uint64_t state;             /* uint [ESA_TOPK_STATE_WORDS] (see ESA_TOPK_*), zeroed first */
    uint64_t blocks;            /* uint [2][nblocks] */
    uint64_t bits;              /* uint [nblocks][ESA_TOPK_WORDS] selection bitmap */
    uint64_t cand;              /* uint [cap][2] candidates (key, index) */
    uint64_t out;               /* uint [k] */
    uint32_t lm, k, nblocks, pos0;
    uint32_t cap;               /* >= lm: entries cand has room for */
    uint32_t pass;              /* topk_pick: 0 or 1 */
} esa_pc_topk;
_Static_assert(sizeof(esa_pc_topk) == 72, "topk push constants");
_Static_assert(offsetof(esa_pc_topk, lm) == 48, "topk push constants: addresses first");

/* Layout of the top-k state buffer (uint words), as in shaders/topk.glsl. */
#define ESA_TOPK_BINS 2048u       /* words 0..2047: histogram of bits 31..21 of the keys */
#define ESA_TOPK_HIST1 2048u      /* words 2048..4095: histogram of digit 1 (deep picks only) */
#define ESA_TOPK_PREFIX 4096u     /* threshold prefix of the keys, */
#define ESA_TOPK_SHIFT 4097u      /* ... as key >> shift (21, or 10 after a deep pick) */
#define ESA_TOPK_NEED 4098u       /* keys on the prefix to take */
#define ESA_TOPK_ALL 4099u        /* 1: all keys on the prefix are taken */
#define ESA_TOPK_NCAND 4100u      /* candidates topk_filter appended */
#define ESA_TOPK_ARGS 4104u       /* VkDispatchIndirectCommand of topk_hist1, then of pick 1 */
#define ESA_TOPK_STATE_WORDS 4112u
#define ESA_TOPK_BLOCK 4096u      /* keys per workgroup in filter and write */
#define ESA_TOPK_WORDS (ESA_TOPK_BLOCK / 32u) /* bitmap words per block: write's workgroup */
#define ESA_TOPK_MAX_BLOCKS 4096u /* blocks resolve can count in shared memory */

typedef struct esa_pc_rope_q { /* shaders/rope_q.comp */
    uint64_t q;                 /* f32 [n][H*d] pre-RoPE */
    uint64_t out0, out1;        /* f32 [n][H*d]: the frames */
    uint64_t rope;              /* vec2 [3][256][rope_dims/2] (rope.glsl) */
    uint32_t n, hd, d, rd, neox;
    uint32_t pos0_0, step_0, pos0_1, step_1;
    float scale;                /* logit scale * log2(e) */
} esa_pc_rope_q;
_Static_assert(sizeof(esa_pc_rope_q) == 72, "rope_q push constants");

typedef struct esa_pc_attend { /* shaders/attend.comp */
    uint64_t q;                 /* f32 [n][H][d], rotated and prescaled (rope_q.comp) */
    uint64_t pages;             /* the layer's page table: f16 K, V [*][G][d] (pages.glsl) */
    uint64_t rows;              /* nonzero: K [*][G][d] of list entries, gathered (V at v_off) */
    uint64_t list;              /* uint cache positions (when use_list) */
    uint64_t part_o;            /* f32 [slots][n*H][d] */
    uint64_t part_ml;           /* vec2 [slots][n*H] (max, sum) */
    uint64_t rope;              /* vec2 [3][256][rope_dims/2] (rope.glsl) */
    uint32_t n, n_heads, key_first, key_count, split_len, q_cache_pos0;
    uint32_t k_rope_zero, k_rope_sub, slot_base, use_list;
    uint32_t page_shift, v_off; /* v_off: bytes from a K row to its V row */
} esa_pc_attend;
_Static_assert(sizeof(esa_pc_attend) == 104, "attend push constants");

typedef struct esa_pc_gather { /* shaders/gather.comp */
    uint64_t pages;             /* the layer's page table */
    uint64_t list;              /* uint [count] cache positions */
    uint64_t out;               /* f16 K [count][G*d] then V at out + v_out */
    uint32_t count, row_bytes, page_shift, v_off, v_out, pad;
} esa_pc_gather;
_Static_assert(sizeof(esa_pc_gather) == 48, "gather push constants");

typedef struct esa_pc_merge { /* shaders/merge.comp */
    uint64_t part_o, part_ml, out;
    uint32_t rows, d, n_slots, pad;
} esa_pc_merge;
_Static_assert(sizeof(esa_pc_merge) == 40, "merge push constants");

typedef struct esa_pc_probe { /* shaders/probe_read.comp */
    uint64_t src;               /* uvec4 [count] */
    uint64_t sink;              /* uint [workgroups] */
    uint32_t count, pad;
} esa_pc_probe;
_Static_assert(sizeof(esa_pc_probe) == 24, "probe push constants");

#endif
