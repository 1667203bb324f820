/* persist.c - a cache to a file and back (esa_cache_save, esa_cache_load), so an application
 * can reopen a long document without recomputing its keys and values.
 *
 * File format, version 1 (integers little-endian; the arrays are the device's bytes as they
 * are: fp16 K, V and compressed keys, f32 matrices):
 *   header, 128 bytes:  "ESAVKKV\n", u32 version, u32 header bytes (128), u32 n_layers,
 *                       n_heads, n_kv_heads, head_dim, rope_dims, rope_style, score_mode,
 *                       d' in use, global_pos, f32 rope_theta, u32 max layer length, zeros to
 *                       byte 120, then u64 hash of bytes 0..119
 *   per layer, in order: u32 layer, u32 len, u32 has_matrices, u32 0;
 *                       K [len][G*d] fp16, V [len][G*d] fp16,
 *                       compressed scores only: kc [len][d'] fp16, and when has_matrices
 *                       A^T [H*d][d'] and B^T [G*d][d'] f32 (as the cache keeps them: the
 *                       query rotation at global_pos folded into A^T);
 *                       u64 hash of the section (its 16-byte head and the arrays)
 *   trailer:            "ESAVKEND"
 * Every part is a whole number of 8-byte words (G*d and d' are multiples of 8), and the
 * hash is FNV-1a over those words. The fields checked against the cache on load are the ones
 * the stored bytes depend on; ESA parameters (l_I, l_L, k, epsilon, l_C, position mode) and
 * the logit scale act at attention time and may differ (global_pos too with exact scores), and
 * max_tokens must hold the longest layer. Load reads the file twice: it is verified whole before the cache is touched. */
#include "bytes.h"
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define FILE_VERSION 1u
#define HEADER_BYTES 128u
#define STAGING_BYTES (8u << 20)

static const char MAGIC[8] = {'E', 'S', 'A', 'V', 'K', 'K', 'V', '\n'};
static const char TRAILER[8] = {'E', 'S', 'A', 'V', 'K', 'E', 'N', 'D'};

/* ---- the header ------------------------------------------------------------------------- */

enum { H_VERSION = 8, H_BYTES = 12, H_LAYERS = 16, H_HEADS = 20, H_KV_HEADS = 24, H_DIM = 28,
       H_ROPE_DIMS = 32, H_ROPE_STYLE = 36, H_SCORES = 40, H_DC = 44, H_GLOBAL = 48, H_THETA = 52,
       H_MAX_LEN = 56, H_HASH = 120 };

static void make_header(const esa_cache *c, uint8_t *h)
{
    const esa_cache_desc *d = &c->d;
    uint32_t max_len = 0, theta;
    for (uint32_t l = 0; l < d->n_layers; l++)
        max_len = esa_max_u32(max_len, c->layers[l].len);
    memcpy(&theta, &d->rope_theta, 4);
    memset(h, 0, HEADER_BYTES);
    memcpy(h, MAGIC, 8);
    esa_put_u32(h + H_VERSION, FILE_VERSION);
    esa_put_u32(h + H_BYTES, HEADER_BYTES);
    esa_put_u32(h + H_LAYERS, d->n_layers);
    esa_put_u32(h + H_HEADS, d->n_heads);
    esa_put_u32(h + H_KV_HEADS, d->n_kv_heads);
    esa_put_u32(h + H_DIM, d->head_dim);
    esa_put_u32(h + H_ROPE_DIMS, d->rope_dims);
    esa_put_u32(h + H_ROPE_STYLE, (uint32_t)d->rope_style);
    esa_put_u32(h + H_SCORES, (uint32_t)d->score_mode);
    esa_put_u32(h + H_DC, c->dc);
    esa_put_u32(h + H_GLOBAL, d->global_pos);
    esa_put_u32(h + H_THETA, theta);
    esa_put_u32(h + H_MAX_LEN, max_len);
    esa_put_u64(h + H_HASH, esa_hash_words(ESA_HASH_SEED, h, H_HASH));
}

/* The file's header against the cache: CORRUPT for what is not an esa-vk cache file,
 * MISMATCH for another version or shape, CAPACITY for more tokens than max_tokens. */
static esa_status check_header(const esa_cache *c, const uint8_t *h, const char *path)
{
    esa_context *ctx = c->ctx;
    if (memcmp(h, MAGIC, 8) != 0)
        return esa_fail(ctx, ESA_ERROR_FILE_CORRUPT, "%s is not an esa-vk cache file", path);
    if (esa_get_u64(h + H_HASH) != esa_hash_words(ESA_HASH_SEED, h, H_HASH))
        return esa_fail(ctx, ESA_ERROR_FILE_CORRUPT, "%s: the header fails its checksum", path);
    if (esa_get_u32(h + H_VERSION) != FILE_VERSION || esa_get_u32(h + H_BYTES) != HEADER_BYTES)
        return esa_fail(ctx, ESA_ERROR_FILE_MISMATCH, "%s: format version %u, this library reads version %u",
                        path, esa_get_u32(h + H_VERSION), FILE_VERSION);
    uint8_t mine[HEADER_BYTES];
    make_header(c, mine);
    static const struct { int at; const char *name; } fields[] = {
        {H_LAYERS, "n_layers"}, {H_HEADS, "n_heads"}, {H_KV_HEADS, "n_kv_heads"}, {H_DIM, "head_dim"},
        {H_ROPE_DIMS, "rope_dims"}, {H_ROPE_STYLE, "rope_style"}, {H_SCORES, "score_mode"},
        {H_DC, "compress_dim"}, {H_GLOBAL, "global_pos"}, {H_THETA, "rope_theta (bits)"},
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        uint32_t f = esa_get_u32(h + fields[i].at), m = esa_get_u32(mine + fields[i].at);
        /* global_pos is folded into the stored A^T only: exact-score files do not depend on it */
        if (fields[i].at == H_GLOBAL && c->d.score_mode == ESA_SCORES_EXACT)
            continue;
        if (f != m)
            return esa_fail(ctx, ESA_ERROR_FILE_MISMATCH, "%s: %s is %u in the file, %u in this cache", path,
                            fields[i].name, f, m);
    }
    if (esa_get_u32(h + H_MAX_LEN) > c->d.max_tokens)
        return esa_fail(ctx, ESA_ERROR_CAPACITY, "%s holds %u tokens in a layer; this cache's max_tokens is %u",
                        path, esa_get_u32(h + H_MAX_LEN), c->d.max_tokens);
    return ESA_SUCCESS;
}

/* ---- arrays of a layer ------------------------------------------------------------------ */

typedef struct array {
    esa_buffer *buf;              /* NULL: the layer's K (which 0) or V (1) pages */
    uint64_t bytes;
    uint32_t layer;
    int which;
} array;

/* The arrays of layer l's section, given its length and whether its matrices are stored. */
static uint32_t layer_arrays(const esa_cache *c, uint32_t l, uint32_t len, int matrices, array *a)
{
    const esa_cache_desc *d = &c->d;
    esa_layer *L = &c->layers[l];
    uint64_t gd = (uint64_t)d->n_kv_heads * d->head_dim, hd = (uint64_t)d->n_heads * d->head_dim;
    uint32_t n = 0;
    a[n++] = (array){NULL, len * gd * 2, l, 0};
    a[n++] = (array){NULL, len * gd * 2, l, 1};
    if (d->score_mode == ESA_SCORES_COMPRESSED) {
        a[n++] = (array){&L->kc, (uint64_t)len * c->dc * 2, l, 0};
        if (matrices) {
            a[n++] = (array){&L->at, hd * c->dc * 4, l, 0};
            a[n++] = (array){&L->bt, gd * c->dc * 4, l, 0};
        }
    }
    return n;
}

/* ---- files ------------------------------------------------------------------------------ */

typedef struct io {
    esa_cache *cache;
    esa_context *ctx;
    FILE *f;
    const char *path;
    esa_buffer staging;           /* READBACK (save) or UPLOAD (load) */
    uint8_t *host;                /* load: the file's bytes land and are hashed here, not in
                                   * UPLOAD memory, which may be write-combined (slow to read) */
} io;

static esa_status io_error(io *o, const char *what)
{
    int e = errno;
    if (ferror(o->f) || e)
        return esa_fail(o->ctx, ESA_ERROR_IO, "%s %s: %s", what, o->path, e ? strerror(e) : "I/O error");
    return esa_fail(o->ctx, ESA_ERROR_FILE_CORRUPT, "%s is truncated (%s)", o->path, what);
}

static esa_status write_all(io *o, const void *p, size_t n)
{
    errno = 0;
    return fwrite(p, 1, n, o->f) == n ? ESA_SUCCESS : io_error(o, "writing");
}

static esa_status read_all(io *o, void *p, size_t n)
{
    errno = 0;
    return fread(p, 1, n, o->f) == n ? ESA_SUCCESS : io_error(o, "reading");
}

/* Device -> file, hashing what is written. */
static esa_status save_array(io *o, const array *a, uint64_t *h)
{
    for (uint64_t off = 0; off < a->bytes;) {
        uint64_t n = a->bytes - off < STAGING_BYTES ? a->bytes - off : STAGING_BYTES;
        esa_status s = a->buf ? esa_copy_wait(o->ctx, a->buf, off, &o->staging, 0, n)
                              : esa_pages_copy_wait(o->cache, a->layer, a->which, off, &o->staging, 0, n, 0);
        if (s != ESA_SUCCESS)
            return s;
        esa_buffer_invalidate(o->ctx, &o->staging);
        *h = esa_hash_words(*h, o->staging.map, (size_t)n);
        if ((s = write_all(o, o->staging.map, (size_t)n)) != ESA_SUCCESS)
            return s;
        off += n;
    }
    return ESA_SUCCESS;
}

/* File -> hash, and to the device when upload is set. */
static esa_status load_array(io *o, const array *a, uint64_t *h, int upload)
{
    for (uint64_t off = 0; off < a->bytes;) {
        uint64_t n = a->bytes - off < STAGING_BYTES ? a->bytes - off : STAGING_BYTES;
        esa_status s = read_all(o, o->host, (size_t)n);
        if (s != ESA_SUCCESS)
            return s;
        *h = esa_hash_words(*h, o->host, (size_t)n);
        if (upload) {
            memcpy(o->staging.map, o->host, (size_t)n);
            esa_buffer_flush(o->ctx, &o->staging);
            s = a->buf ? esa_copy_wait(o->ctx, &o->staging, 0, a->buf, off, n)
                       : esa_pages_copy_wait(o->cache, a->layer, a->which, off, &o->staging, 0, n, 1);
            if (s != ESA_SUCCESS)
                return s;
        }
        off += n;
    }
    return ESA_SUCCESS;
}

/* The pages of an emptied layer about to receive len tokens: the initial and local ones on the
 * device, the rest where the budget puts them; the layer then counts len tokens, so that the
 * next layers' placement keeps its local pages on the device. */
static esa_status make_pages(esa_cache *c, uint32_t l, uint32_t len)
{
    VkCommandBuffer cb;
    esa_status s = esa_begin(c->ctx, &cb);
    if (s != ESA_SUCCESS)
        return s;
    s = esa_pages_place(c, cb, l, len, 0);
    esa_status w = esa_submit_wait(c->ctx);
    if (s == ESA_SUCCESS && w == ESA_SUCCESS)
        c->layers[l].len = len;
    return s != ESA_SUCCESS ? s : w;
}

static esa_status save_to(esa_cache *c, io *o)
{
    uint8_t head[HEADER_BYTES];
    make_header(c, head);
    esa_status s = write_all(o, head, sizeof head);
    for (uint32_t l = 0; s == ESA_SUCCESS && l < c->d.n_layers; l++) {
        esa_layer *L = &c->layers[l];
        int matrices = c->d.score_mode == ESA_SCORES_COMPRESSED && L->ready;
        uint8_t sec[16] = {0};
        esa_put_u32(sec, l);
        esa_put_u32(sec + 4, L->len);
        esa_put_u32(sec + 8, (uint32_t)matrices);
        uint64_t h = esa_hash_words(ESA_HASH_SEED, sec, sizeof sec);
        s = write_all(o, sec, sizeof sec);
        array a[5];
        uint32_t na = layer_arrays(c, l, L->len, matrices, a);
        for (uint32_t i = 0; s == ESA_SUCCESS && i < na; i++)
            s = save_array(o, &a[i], &h);
        uint8_t tail[8];
        esa_put_u64(tail, h);
        if (s == ESA_SUCCESS)
            s = write_all(o, tail, sizeof tail);
    }
    if (s == ESA_SUCCESS)
        s = write_all(o, TRAILER, sizeof TRAILER);
    return s;
}

/* One pass over the file: verify (upload 0) or verify and load (upload 1). lens[] and mats[]
 * get each layer's length and whether its matrices are stored. */
static esa_status load_pass(esa_cache *c, io *o, int upload, uint32_t *lens, int *mats)
{
    uint8_t head[HEADER_BYTES];
    esa_status s = read_all(o, head, sizeof head);
    if (s == ESA_SUCCESS)
        s = check_header(c, head, o->path);
    uint32_t max_len = s == ESA_SUCCESS ? esa_get_u32(head + H_MAX_LEN) : 0;
    for (uint32_t l = 0; s == ESA_SUCCESS && l < c->d.n_layers; l++) {
        uint8_t sec[16];
        if ((s = read_all(o, sec, sizeof sec)) != ESA_SUCCESS)
            break;
        uint32_t len = esa_get_u32(sec + 4), m = esa_get_u32(sec + 8);
        if (esa_get_u32(sec) != l || len > max_len || m > 1 || esa_get_u32(sec + 12) != 0 ||
            (m && c->d.score_mode != ESA_SCORES_COMPRESSED) ||
            (!m && len && c->d.score_mode == ESA_SCORES_COMPRESSED)) {
            s = esa_fail(c->ctx, ESA_ERROR_FILE_CORRUPT, "%s: layer %u's section head is damaged", o->path, l);
            break;
        }
        lens[l] = len;
        mats[l] = (int)m;
        if (upload && (s = make_pages(c, l, len)) != ESA_SUCCESS)
            break;
        uint64_t h = esa_hash_words(ESA_HASH_SEED, sec, sizeof sec);
        array a[5];
        uint32_t na = layer_arrays(c, l, len, (int)m, a);
        for (uint32_t i = 0; s == ESA_SUCCESS && i < na; i++)
            s = load_array(o, &a[i], &h, upload);
        uint8_t tail[8];
        if (s == ESA_SUCCESS && (s = read_all(o, tail, sizeof tail)) == ESA_SUCCESS && esa_get_u64(tail) != h)
            s = esa_fail(c->ctx, ESA_ERROR_FILE_CORRUPT, "%s: layer %u fails its checksum", o->path, l);
    }
    uint8_t end[9];
    if (s == ESA_SUCCESS && (s = read_all(o, end, 8)) == ESA_SUCCESS &&
        (memcmp(end, TRAILER, 8) != 0 || fread(end + 8, 1, 1, o->f) != 0))
        s = esa_fail(c->ctx, ESA_ERROR_FILE_CORRUPT, "%s: bytes after the last layer are not the trailer", o->path);
    return s;
}

static void close_io(io *o)
{
    if (o->f)
        fclose(o->f);
    o->f = NULL;
    esa_buffer_destroy(o->ctx, &o->staging);
    esa_free(o->ctx, o->host);
    o->host = NULL;
}

/* On failure nothing is left open (close_io is still safe to call). */
static esa_status open_io(esa_cache *c, const char *path, const char *mode, enum esa_mem_kind kind, io *o)
{
    *o = (io){.cache = c, .ctx = c->ctx, .path = path};
    errno = 0;
    o->f = fopen(path, mode);
    if (!o->f)
        return esa_fail(c->ctx, ESA_ERROR_IO, "cannot open %s: %s", path, errno ? strerror(errno) : "fopen failed");
    esa_status s = esa_buffer_create(c->ctx, STAGING_BYTES, kind, &o->staging);
    if (s == ESA_SUCCESS && kind == ESA_MEM_UPLOAD && !(o->host = esa_malloc(c->ctx, STAGING_BYTES)))
        s = ESA_ERROR_OUT_OF_HOST_MEMORY;
    if (s != ESA_SUCCESS)
        close_io(o);
    return s;
}

esa_status esa_cache_save(esa_cache *c, const char *path)
{
    if (!c)
        return ESA_ERROR_INVALID_ARGUMENT;
    if (!path || !*path)
        return esa_fail(c->ctx, ESA_ERROR_INVALID_ARGUMENT, "path must be a file name");
    /* written beside the target, then renamed over it: a failed save leaves the old file */
    size_t pl = strlen(path);
    char *tmp = esa_malloc(c->ctx, pl + 5);
    if (!tmp)
        return ESA_ERROR_OUT_OF_HOST_MEMORY;
    memcpy(tmp, path, pl);
    memcpy(tmp + pl, ".tmp", 5);
    io o;
    esa_status s = open_io(c, tmp, "wb", ESA_MEM_READBACK, &o);
    if (s == ESA_SUCCESS) {
        s = save_to(c, &o);
        errno = 0;
        if (fclose(o.f) != 0 && s == ESA_SUCCESS)
            s = esa_fail(c->ctx, ESA_ERROR_IO, "writing %s: %s", tmp, errno ? strerror(errno) : "fclose failed");
        o.f = NULL;
        close_io(&o);
        if (s == ESA_SUCCESS && rename(tmp, path) != 0) {
            remove(path); /* where rename does not replace a file */
            errno = 0;
            if (rename(tmp, path) != 0)
                s = esa_fail(c->ctx, ESA_ERROR_IO, "cannot rename %s to %s: %s", tmp, path,
                             errno ? strerror(errno) : "rename failed");
        }
        if (s != ESA_SUCCESS)
            remove(tmp);
    }
    esa_free(c->ctx, tmp);
    return s;
}

esa_status esa_cache_load(esa_cache *c, const char *path)
{
    if (!c)
        return ESA_ERROR_INVALID_ARGUMENT;
    if (!path || !*path)
        return esa_fail(c->ctx, ESA_ERROR_INVALID_ARGUMENT, "path must be a file name");
    uint32_t n = c->d.n_layers;
    uint32_t *lens = esa_calloc(c->ctx, n, sizeof *lens);
    int *mats = esa_calloc(c->ctx, n, sizeof *mats);
    io o = {0};
    esa_status s = lens && mats ? open_io(c, path, "rb", ESA_MEM_UPLOAD, &o) : ESA_ERROR_OUT_OF_HOST_MEMORY;
    if (s == ESA_SUCCESS)
        s = load_pass(c, &o, 0, lens, mats); /* the cache is untouched until the file checks out */
    if (s == ESA_SUCCESS)
        s = esa_pages_check_fit(c, lens); /* a host budget too small for the file: unchanged too */
    if (s == ESA_SUCCESS) {
        for (uint32_t l = 0; l < n; l++) { /* every old page free first, for the new placement */
            c->layers[l].len = 0;
            esa_pages_release(c, l, 0);
        }
        rewind(o.f);
        s = load_pass(c, &o, 1, lens, mats);
        /* a second pass that fails (the file changed under us, or the device) leaves every layer
         * empty, and the layers whose matrices were being replaced without them */
        for (uint32_t l = 0; l < n; l++) {
            esa_layer *L = &c->layers[l];
            L->len = s == ESA_SUCCESS ? lens[l] : 0;
            L->n_selected = 0;
            L->sel_first = 0;
            if (s != ESA_SUCCESS)
                esa_pages_release(c, l, 0);
            if (mats[l])
                L->ready = s == ESA_SUCCESS;
        }
        if (s != ESA_SUCCESS) {
            esa_fail(c->ctx, s, "loading %s failed after it was verified: the cache is now empty (%s)", path,
                     c->ctx->last_error);
        }
    }
    close_io(&o);
    esa_free(c->ctx, lens);
    esa_free(c->ctx, mats);
    return s;
}
