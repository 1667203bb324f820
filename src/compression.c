/* compression.c - compression matrices (ESA-SPEC 4.2) to a file and back, so a calibration
 * (ESA-SPEC 6, tools/calib) is done once per model and loaded by every engine that runs it.
 *
 * File format, version 1 (integers little-endian):
 *   header, 64 bytes:  "ESAVKCM\n", u32 version, u32 header bytes (64), u32 n_layers, n_heads,
 *                      n_kv_heads, head_dim, compress_dim, rope_dims (resolved), rope_style,
 *                      global_pos, f32 rope_theta, u32 method, zeros to byte 56, then u64
 *                      hash of bytes 0..55
 *   per layer:         A [d'][H*d] f32, then B [d'][G*d] f32, row-major, as
 *                      esa_cache_set_compression takes them (A acts on queries rotated at
 *                      global_pos with the file's RoPE)
 *   trailer:           u64 hash of every layer's bytes, then "ESAVKEND"
 * d' is a multiple of 8, so every part is a whole number of 8-byte words (FNV-1a, bytes.h). */
#include "bytes.h"
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define CM_VERSION 1u
#define CM_HEADER 64u

static const char CM_MAGIC[8] = {'E', 'S', 'A', 'V', 'K', 'C', 'M', '\n'};
static const char CM_TRAILER[8] = {'E', 'S', 'A', 'V', 'K', 'E', 'N', 'D'};

enum { C_VERSION = 8, C_BYTES = 12, C_LAYERS = 16, C_HEADS = 20, C_KV = 24, C_DIM = 28, C_DC = 32,
       C_ROPE_DIMS = 36, C_STYLE = 40, C_GLOBAL = 44, C_THETA = 48, C_METHOD = 52, C_HASH = 56 };

static esa_status check_info(esa_context *ctx, const esa_compression_info *in, const char *path)
{
    const uint32_t H = in->n_heads, G = in->n_kv_heads, d = in->head_dim;
    if (in->n_layers < 1 || in->n_layers > 1024 || H < 1 || H > 256 || G < 1 || H % G || d < 8 || d > 256 ||
        d % 8 || in->compress_dim < 8 || in->compress_dim % 8 || in->compress_dim > 1024 ||
        in->compress_dim > H * d || in->rope_dims > d || in->rope_dims % 8 ||
        (in->rope_style != ESA_ROPE_INTERLEAVED && in->rope_style != ESA_ROPE_NEOX) || !(in->rope_theta > 0) ||
        !isfinite(in->rope_theta) || in->global_pos < 1)
        return esa_fail(ctx, ESA_ERROR_INVALID_ARGUMENT,
                        "%s: a compression shape out of range (n_layers %u, heads %u/%u of %u, d' %u, rope_dims "
                        "%u, global_pos %u)", path, in->n_layers, H, G, d, in->compress_dim, in->rope_dims,
                        in->global_pos);
    return ESA_SUCCESS;
}

static void make_header(const esa_compression_info *in, uint8_t *h)
{
    uint32_t theta;
    memcpy(&theta, &in->rope_theta, 4);
    memset(h, 0, CM_HEADER);
    memcpy(h, CM_MAGIC, 8);
    esa_put_u32(h + C_VERSION, CM_VERSION);
    esa_put_u32(h + C_BYTES, CM_HEADER);
    esa_put_u32(h + C_LAYERS, in->n_layers);
    esa_put_u32(h + C_HEADS, in->n_heads);
    esa_put_u32(h + C_KV, in->n_kv_heads);
    esa_put_u32(h + C_DIM, in->head_dim);
    esa_put_u32(h + C_DC, in->compress_dim);
    esa_put_u32(h + C_ROPE_DIMS, in->rope_dims ? in->rope_dims : in->head_dim);
    esa_put_u32(h + C_STYLE, (uint32_t)in->rope_style);
    esa_put_u32(h + C_GLOBAL, in->global_pos);
    esa_put_u32(h + C_THETA, theta);
    esa_put_u32(h + C_METHOD, in->method);
    esa_put_u64(h + C_HASH, esa_hash_words(ESA_HASH_SEED, h, C_HASH));
}

esa_status esa_compression_save(esa_context *ctx, const char *path, const esa_compression_info *info,
                                const float *const *a, const float *const *b)
{
    if (!path || !*path || !info || !a || !b)
        return esa_fail(ctx, ESA_ERROR_INVALID_ARGUMENT, "path, info, a and b are required");
    esa_status s = check_info(ctx, info, path);
    if (s != ESA_SUCCESS)
        return s;
    for (uint32_t l = 0; l < info->n_layers; l++)
        if (!a[l] || !b[l])
            return esa_fail(ctx, ESA_ERROR_INVALID_ARGUMENT, "layer %u's matrix is NULL", l);
    const size_t na = (size_t)info->compress_dim * info->n_heads * info->head_dim,
                 nb = (size_t)info->compress_dim * info->n_kv_heads * info->head_dim;
    for (uint32_t l = 0; l < info->n_layers; l++) {
        for (size_t i = 0; i < na; i++)
            if (!isfinite(a[l][i]))
                return esa_fail(ctx, ESA_ERROR_NON_FINITE, "layer %u: A[%zu] is not finite", l, i);
        for (size_t i = 0; i < nb; i++)
            if (!isfinite(b[l][i]))
                return esa_fail(ctx, ESA_ERROR_NON_FINITE, "layer %u: B[%zu] is not finite", l, i);
    }
    uint8_t h[CM_HEADER];
    make_header(info, h);
    errno = 0;
    FILE *f = fopen(path, "wb");
    if (!f)
        return esa_fail(ctx, ESA_ERROR_IO, "cannot create %s: %s", path, errno ? strerror(errno) : "fopen failed");
    int ok = fwrite(h, 1, sizeof h, f) == sizeof h;
    uint64_t hash = ESA_HASH_SEED;
    for (uint32_t l = 0; ok && l < info->n_layers; l++) {
        /* the file is little-endian f32, as this machine's floats are (checked at build) */
        ok = fwrite(a[l], sizeof(float), na, f) == na && fwrite(b[l], sizeof(float), nb, f) == nb;
        hash = esa_hash_words(esa_hash_words(hash, a[l], na * 4), b[l], nb * 4);
    }
    uint8_t tail[16];
    esa_put_u64(tail, hash);
    memcpy(tail + 8, CM_TRAILER, 8);
    ok = ok && fwrite(tail, 1, sizeof tail, f) == sizeof tail;
    errno = 0;
    if (fclose(f) != 0)
        ok = 0;
    if (!ok) {
        remove(path);
        return esa_fail(ctx, ESA_ERROR_IO, "writing %s: %s", path, errno ? strerror(errno) : "short write");
    }
    return ESA_SUCCESS;
}

esa_status esa_compression_read(esa_context *ctx, const char *path, esa_compression_info *info, float *a, float *b)
{
    if (!path || !*path || !info)
        return esa_fail(ctx, ESA_ERROR_INVALID_ARGUMENT, "path and info are required");
    errno = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return esa_fail(ctx, ESA_ERROR_IO, "cannot open %s: %s", path, errno ? strerror(errno) : "fopen failed");
    uint8_t h[CM_HEADER];
    esa_status s = ESA_SUCCESS;
    if (fread(h, 1, sizeof h, f) != sizeof h || memcmp(h, CM_MAGIC, 8) != 0)
        s = esa_fail(ctx, ESA_ERROR_FILE_CORRUPT, "%s is not an esa-vk compression file", path);
    else if (esa_get_u64(h + C_HASH) != esa_hash_words(ESA_HASH_SEED, h, C_HASH))
        s = esa_fail(ctx, ESA_ERROR_FILE_CORRUPT, "%s: the header fails its checksum", path);
    else if (esa_get_u32(h + C_VERSION) != CM_VERSION || esa_get_u32(h + C_BYTES) != CM_HEADER)
        s = esa_fail(ctx, ESA_ERROR_FILE_MISMATCH, "%s: format version %u, this library reads version %u", path,
                     esa_get_u32(h + C_VERSION), CM_VERSION);
    esa_compression_info in = {0};
    if (s == ESA_SUCCESS) {
        in.n_layers = esa_get_u32(h + C_LAYERS);
        in.n_heads = esa_get_u32(h + C_HEADS);
        in.n_kv_heads = esa_get_u32(h + C_KV);
        in.head_dim = esa_get_u32(h + C_DIM);
        in.compress_dim = esa_get_u32(h + C_DC);
        in.rope_dims = esa_get_u32(h + C_ROPE_DIMS);
        in.rope_style = (esa_rope_style)esa_get_u32(h + C_STYLE);
        in.global_pos = esa_get_u32(h + C_GLOBAL);
        uint32_t theta = esa_get_u32(h + C_THETA);
        memcpy(&in.rope_theta, &theta, 4);
        in.method = esa_get_u32(h + C_METHOD);
        if (check_info(ctx, &in, path) != ESA_SUCCESS)
            s = esa_fail(ctx, ESA_ERROR_FILE_CORRUPT, "%s: the header holds an impossible shape", path);
    }
    if (s == ESA_SUCCESS && (a || b)) {
        if (!a || !b) {
            s = esa_fail(ctx, ESA_ERROR_INVALID_ARGUMENT, "a and b go together");
        } else {
            const size_t na = (size_t)in.compress_dim * in.n_heads * in.head_dim,
                         nb = (size_t)in.compress_dim * in.n_kv_heads * in.head_dim;
            uint64_t hash = ESA_HASH_SEED;
            for (uint32_t l = 0; s == ESA_SUCCESS && l < in.n_layers; l++) {
                float *al = a + l * na, *bl = b + l * nb;
                if (fread(al, sizeof(float), na, f) != na || fread(bl, sizeof(float), nb, f) != nb)
                    s = esa_fail(ctx, ESA_ERROR_FILE_CORRUPT, "%s is truncated in layer %u", path, l);
                else
                    hash = esa_hash_words(esa_hash_words(hash, al, na * 4), bl, nb * 4);
            }
            uint8_t tail[17];
            if (s == ESA_SUCCESS && (fread(tail, 1, 16, f) != 16 || memcmp(tail + 8, CM_TRAILER, 8) != 0 ||
                                     fread(tail + 16, 1, 1, f) != 0))
                s = esa_fail(ctx, ESA_ERROR_FILE_CORRUPT, "%s: the trailer is missing or followed by more bytes", path);
            else if (s == ESA_SUCCESS && esa_get_u64(tail) != hash)
                s = esa_fail(ctx, ESA_ERROR_FILE_CORRUPT, "%s: the matrices fail their checksum", path);
        }
    }
    fclose(f);
    if (s == ESA_SUCCESS)
        *info = in;
    return s;
}

esa_status esa_cache_load_compression(esa_cache *c, const char *path)
{
    if (!c)
        return ESA_ERROR_INVALID_ARGUMENT;
    esa_context *ctx = c->ctx;
    const esa_cache_desc *d = &c->d;
    if (d->score_mode != ESA_SCORES_COMPRESSED)
        return esa_fail(ctx, ESA_ERROR_INVALID_ARGUMENT, "the cache selects by exact scores: it takes no matrices");
    esa_compression_info in;
    esa_status s = esa_compression_read(ctx, path, &in, NULL, NULL);
    if (s != ESA_SUCCESS)
        return s;
    uint32_t theta_f, theta_c;
    memcpy(&theta_f, &in.rope_theta, 4);
    memcpy(&theta_c, &d->rope_theta, 4);
    const struct { const char *name; uint32_t file, cache; } fields[] = {
        {"n_layers", in.n_layers, d->n_layers}, {"n_heads", in.n_heads, d->n_heads},
        {"n_kv_heads", in.n_kv_heads, d->n_kv_heads}, {"head_dim", in.head_dim, d->head_dim},
        {"compress_dim", in.compress_dim, c->dc}, {"rope_dims", in.rope_dims, d->rope_dims},
        {"rope_style", (uint32_t)in.rope_style, (uint32_t)d->rope_style},
        {"global_pos", in.global_pos, d->global_pos}, {"rope_theta (bits)", theta_f, theta_c},
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (fields[i].file != fields[i].cache)
            return esa_fail(ctx, ESA_ERROR_FILE_MISMATCH, "%s: %s is %u in the file, %u in this cache", path,
                            fields[i].name, fields[i].file, fields[i].cache);
    for (uint32_t l = 0; l < d->n_layers; l++)
        if (c->layers[l].len)
            return esa_fail(ctx, ESA_ERROR_INVALID_ARGUMENT, "layer %u holds tokens: compressions are set on an "
                            "empty cache", l);
    const size_t na = (size_t)c->dc * d->n_heads * d->head_dim, nb = (size_t)c->dc * d->n_kv_heads * d->head_dim;
    float *a = esa_malloc(ctx, sizeof(float) * na * d->n_layers), *b = esa_malloc(ctx, sizeof(float) * nb * d->n_layers);
    s = a && b ? esa_compression_read(ctx, path, &in, a, b) : ESA_ERROR_OUT_OF_HOST_MEMORY;
    for (size_t i = 0; s == ESA_SUCCESS && i < na * d->n_layers; i++)
        if (!isfinite(a[i]))
            s = esa_fail(ctx, ESA_ERROR_NON_FINITE, "%s: A of layer %zu holds NaN or infinity", path, i / na);
    for (size_t i = 0; s == ESA_SUCCESS && i < nb * d->n_layers; i++)
        if (!isfinite(b[i]))
            s = esa_fail(ctx, ESA_ERROR_NON_FINITE, "%s: B of layer %zu holds NaN or infinity", path, i / nb);
    for (uint32_t l = 0; s == ESA_SUCCESS && l < d->n_layers; l++)
        s = esa_cache_set_compression(c, l, a + l * na, b + l * nb);
    esa_free(ctx, a);
    esa_free(ctx, b);
    return s;
}
