/* kernel_push.h - push-constant blocks of the model kernels, mirrored from shaders/<name>.comp.
 *
 * Addresses first (8-byte aligned in std430), then 32-bit fields. Each struct must match its
 * GLSL block byte for byte; the asserts pin the sizes the shaders were written for. */
#ifndef ESAG_KERNEL_PUSH_H
#define ESAG_KERNEL_PUSH_H

#include <stddef.h>
#include <stdint.h>

typedef struct esag_pc_mat { /* shaders/matvec.comp and shaders/matmul.comp */
    uint64_t w;               /* weight blocks [rows][nb] */
    uint64_t x;               /* f32 [T][ldx] */
    uint64_t y;               /* f32 [T][ldy] */
    uint32_t rows, nb, ldx, ldy;
    uint32_t T, accumulate, groups_x, pad;
} esag_pc_mat;
_Static_assert(sizeof(esag_pc_mat) == 56, "matvec/matmul push constants");
_Static_assert(offsetof(esag_pc_mat, rows) == 24, "matvec/matmul push constants");

typedef struct esag_pc_embed { /* shaders/embed.comp */
    uint64_t table, ids, out;
    uint32_t rows, nb, ldo, T;
} esag_pc_embed;
_Static_assert(sizeof(esag_pc_embed) == 40, "embed push constants");

typedef struct esag_pc_rmsnorm { /* shaders/rmsnorm.comp */
    uint64_t x, w, out;
    uint32_t cols, ldx, ldo, T;
    float eps;
    uint32_t pad;
} esag_pc_rmsnorm;
_Static_assert(sizeof(esag_pc_rmsnorm) == 48, "rmsnorm push constants");
_Static_assert(offsetof(esag_pc_rmsnorm, eps) == 40, "rmsnorm push constants");

typedef struct esag_pc_silu { /* shaders/silu_mul.comp */
    uint64_t g, u, out;
    uint32_t n, ld_in, ldo, T;
} esag_pc_silu;
_Static_assert(sizeof(esag_pc_silu) == 40, "silu_mul push constants");

typedef struct esag_pc_add { /* shaders/add.comp */
    uint64_t a, b, out;
    uint32_t n, groups_x;
} esag_pc_add;
_Static_assert(sizeof(esag_pc_add) == 32, "add push constants");

typedef struct esag_pc_scale { /* shaders/scale.comp */
    uint64_t a, out;
    uint32_t n, groups_x;
    float s;
    uint32_t pad;
} esag_pc_scale;
_Static_assert(sizeof(esag_pc_scale) == 32, "scale push constants");
_Static_assert(offsetof(esag_pc_scale, s) == 24, "scale push constants");

#endif
