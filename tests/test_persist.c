/* test_persist.c - esa_cache_save / esa_cache_load: a round trip gives a cache whose next
 * steps equal the original's bit for bit (compressed and exact scores); damaged, truncated,
 * foreign, newer-version and mismatched files are refused by their named status and leave the
 * loading cache as it was; I/O failures name the file. */
#define _POSIX_C_SOURCE 200809L /* mkdir, rmdir */
#include "harness.h"

#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LAYERS 2
#define H 4
#define G 2
#define D 32
#define DC 8
#define TOKENS 40 /* past l_I + k + l_L, so steps select */

static esa_cache_desc base_desc(esa_score_mode mode)
{
    return (esa_cache_desc){.n_layers = LAYERS, .n_heads = H, .n_kv_heads = G, .head_dim = D, .n_initial = 2,
                            .n_local = 8, .top_k = 4, .compress_dim = DC, .chunk = 8, .max_tokens = 64,
                            .score_mode = mode};
}

static float g_a[LAYERS][DC * H * D], g_b[LAYERS][DC * G * D];

static esa_cache *make_cache(esa_context *ctx, esa_cache_desc d, int matrices)
{
    return harness_cache(ctx, d, matrices ? g_a[0] : NULL, g_b[0]);
}

/* n tokens of random q, k, v through every layer; out [n][H][D] of the last layer. */
static void step(esa_cache *c, uint32_t n, uint64_t seed, float *out)
{
    float *q = malloc(sizeof(float) * n * H * D), *k = malloc(sizeof(float) * n * G * D),
          *v = malloc(sizeof(float) * n * G * D);
    rng_seed(seed);
    for (uint32_t l = 0; l < LAYERS; l++) {
        fill_normal(q, (size_t)n * H * D, 1.0f);
        fill_normal(k, (size_t)n * G * D, 1.0f);
        fill_normal(v, (size_t)n * G * D, 1.0f);
        EXPECT_STATUS(esa_attend(c, l, n, ESA_F32, q, k, v, out, NULL), ESA_SUCCESS);
    }
    free(q);
    free(k);
    free(v);
}

static uint8_t *read_bytes(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)len + 1);
    *n = fread(b, 1, (size_t)len, f);
    fclose(f);
    return b;
}

static void write_bytes(const char *path, const uint8_t *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(b, 1, n, f);
        fclose(f);
    }
}

/* A damaged copy of the file must be refused with `want`, and the cache (3 tokens a layer)
 * must still hold its 3 tokens. */
static void refused(esa_context *ctx, esa_cache *c, const uint8_t *file, size_t n, const char *what,
                    esa_status want, const char *msg_part)
{
    const char *path = "test_persist_bad.kv";
    write_bytes(path, file, n);
    esa_status s = esa_cache_load(c, path);
    const char *msg = esa_context_last_error(ctx);
    EXPECT(s == want, "%s: load returned %s (%s), wanted %s", what, esa_status_string(s), msg,
           esa_status_string(want));
    EXPECT(!msg_part || strstr(msg, msg_part), "%s: message \"%s\" lacks \"%s\"", what, msg, msg_part);
    for (uint32_t l = 0; l < LAYERS; l++) {
        uint32_t len = 99;
        esa_cache_length(c, l, &len);
        EXPECT(len == 3, "%s: a refused load changed layer %u's length to %u", what, l, len);
    }
    remove(path);
}

static void round_trip(esa_context *ctx, esa_score_mode mode, const char *path)
{
    const char *name = mode == ESA_SCORES_EXACT ? "exact" : "compressed";
    esa_cache *a = make_cache(ctx, base_desc(mode), 1);
    /* the loading cache: other ESA parameters are allowed, no matrices of its own */
    esa_cache_desc other = base_desc(mode);
    other.n_local = 6;
    other.max_tokens = 48;
    if (mode == ESA_SCORES_COMPRESSED)
        other.global_pos = 8; /* the default follows l_L; it is folded into the saved A^T */
    esa_cache *b = make_cache(ctx, base_desc(mode), 0), *c = make_cache(ctx, other, 0);
    if (!a || !b || !c)
        goto done;
    float *out_a = malloc(sizeof(float) * TOKENS * H * D), *out_b = malloc(sizeof(float) * TOKENS * H * D);
    step(a, TOKENS - 1, 1, out_a); /* chunks of 8 and a tail */
    step(a, 1, 2, out_a);          /* a decode step */
    EXPECT_STATUS(esa_cache_save(a, path), ESA_SUCCESS);
    EXPECT_STATUS(esa_cache_save(a, path), ESA_SUCCESS); /* over an existing file */
    EXPECT_STATUS(esa_cache_load(b, path), ESA_SUCCESS);
    EXPECT_STATUS(esa_cache_load(c, path), ESA_SUCCESS);
    for (uint32_t l = 0; l < LAYERS; l++) {
        uint32_t la = 0, lb = 0, lc = 0;
        esa_cache_length(a, l, &la);
        esa_cache_length(b, l, &lb);
        esa_cache_length(c, l, &lc);
        EXPECT(la == TOKENS && lb == TOKENS && lc == TOKENS, "%s: lengths %u %u %u after load", name, la, lb, lc);
    }
    /* the same next steps on the original and the loaded cache: same bits */
    for (int t = 0; t < 2; t++) {
        uint32_t n = t ? 8 : 1;
        step(a, n, 10 + (uint64_t)t, out_a);
        step(b, n, 10 + (uint64_t)t, out_b);
        EXPECT(memcmp(out_a, out_b, sizeof(float) * n * H * D) == 0, "%s: a %u-token step after load differs",
               name, n);
        for (uint32_t l = 0; l < LAYERS; l++) {
            uint32_t sa[16], sb[16], na = 0, nb = 0;
            EXPECT_STATUS(esa_cache_last_selection(a, l, sa, 16, &na), ESA_SUCCESS);
            EXPECT_STATUS(esa_cache_last_selection(b, l, sb, 16, &nb), ESA_SUCCESS);
            EXPECT(na == nb && na > 0 && memcmp(sa, sb, na * 4) == 0, "%s: layer %u selects differently after load",
                   name, l);
        }
    }
    free(out_a);
    free(out_b);
done:
    esa_cache_destroy(a);
    esa_cache_destroy(b);
    esa_cache_destroy(c);
}

int main(void)
{
    esa_context *ctx = harness_context();
    rng_seed(7);
    for (int l = 0; l < LAYERS; l++) {
        fill_normal(g_a[l], DC * H * D, 0.2f);
        fill_normal(g_b[l], DC * G * D, 0.2f);
    }
    const char *path = "test_persist.kv";
    round_trip(ctx, ESA_SCORES_EXACT, path);
    round_trip(ctx, ESA_SCORES_COMPRESSED, path); /* leaves the compressed cache's file */

    size_t n = 0;
    uint8_t *file = read_bytes(path, &n);
    EXPECT(file && n > 128, "the saved file is missing");
    esa_cache *c = make_cache(ctx, base_desc(ESA_SCORES_COMPRESSED), 1);
    if (file && c) {
        float out[3 * H * D];
        step(c, 3, 5, out);
        uint8_t *bad = malloc(n + 16);
        /* header: magic, checksum, version */
        memcpy(bad, file, n);
        bad[0] = 'X';
        refused(ctx, c, bad, n, "bad magic", ESA_ERROR_FILE_CORRUPT, "not an esa-vk cache file");
        memcpy(bad, file, n);
        bad[16] ^= 1; /* n_layers, without fixing the checksum */
        refused(ctx, c, bad, n, "header bit", ESA_ERROR_FILE_CORRUPT, "header");
        memcpy(bad, file, n);
        bad[8] = 2;
        harness_rehash(bad, 120);
        refused(ctx, c, bad, n, "version 2", ESA_ERROR_FILE_MISMATCH, "version 2");
        memcpy(bad, file, n);
        bad[56] = 65; /* max length 65 > max_tokens 64 */
        harness_rehash(bad, 120);
        refused(ctx, c, bad, n, "too long", ESA_ERROR_CAPACITY, "max_tokens");
        /* payload: a bit in layer 0's keys, in the last layer's matrices, a section head */
        memcpy(bad, file, n);
        bad[128 + 16 + 100] ^= 0x10;
        refused(ctx, c, bad, n, "key bit", ESA_ERROR_FILE_CORRUPT, "layer 0 fails its checksum");
        memcpy(bad, file, n);
        bad[n - 8 - 8 - 40] ^= 0x01;
        refused(ctx, c, bad, n, "matrix bit", ESA_ERROR_FILE_CORRUPT, "layer 1 fails its checksum");
        memcpy(bad, file, n);
        bad[128 + 4] = 200; /* layer 0's length beyond the header's maximum */
        refused(ctx, c, bad, n, "section head", ESA_ERROR_FILE_CORRUPT, "section head");
        /* truncations, at the header, inside a layer, before the trailer; bytes after it */
        size_t cuts[] = {0, 60, 128, 128 + 16 + 7, n / 2, n - 8, n - 1};
        for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
            char what[48];
            snprintf(what, sizeof what, "cut at %zu of %zu", cuts[i], n);
            refused(ctx, c, file, cuts[i], what, ESA_ERROR_FILE_CORRUPT, cuts[i] ? NULL : "truncated");
        }
        memcpy(bad, file, n);
        memset(bad + n, 0, 16);
        refused(ctx, c, bad, n + 16, "trailing bytes", ESA_ERROR_FILE_CORRUPT, "trailer");
        free(bad);

        /* caches of another shape */
        esa_cache_desc shapes[4];
        const char *names[4] = {"head_dim", "compress_dim", "score_mode", "global_pos"};
        for (int i = 0; i < 4; i++)
            shapes[i] = base_desc(ESA_SCORES_COMPRESSED);
        shapes[0].head_dim = 64;
        shapes[1].compress_dim = 16;
        shapes[2].score_mode = ESA_SCORES_EXACT;
        shapes[3].global_pos = 5;
        for (int i = 0; i < 4; i++) {
            esa_cache *o = make_cache(ctx, shapes[i], 0); /* the header is refused first */
            if (!o)
                continue;
            EXPECT_STATUS(esa_cache_load(o, path), ESA_ERROR_FILE_MISMATCH);
            EXPECT(strstr(esa_context_last_error(ctx), names[i]), "mismatch message \"%s\" lacks %s",
                   esa_context_last_error(ctx), names[i]);
            esa_cache_destroy(o);
        }
        /* still usable after all that */
        step(c, 1, 6, out);
        EXPECT_STATUS(esa_cache_load(c, path), ESA_SUCCESS);
    }
    /* arguments and I/O */
    if (c) {
        EXPECT_STATUS(esa_cache_save(NULL, path), ESA_ERROR_INVALID_ARGUMENT);
        EXPECT_STATUS(esa_cache_save(c, NULL), ESA_ERROR_INVALID_ARGUMENT);
        EXPECT_STATUS(esa_cache_save(c, ""), ESA_ERROR_INVALID_ARGUMENT);
        EXPECT_STATUS(esa_cache_load(NULL, path), ESA_ERROR_INVALID_ARGUMENT);
        EXPECT_STATUS(esa_cache_load(c, NULL), ESA_ERROR_INVALID_ARGUMENT);
        EXPECT_STATUS(esa_cache_load(c, "no-such-dir/none.kv"), ESA_ERROR_IO);
        EXPECT(strstr(esa_context_last_error(ctx), "no-such-dir/none.kv"), "I/O message \"%s\"",
               esa_context_last_error(ctx));
        EXPECT_STATUS(esa_cache_save(c, "no-such-dir/none.kv"), ESA_ERROR_IO);
        /* a save that cannot write leaves the file it would replace as it was */
        char tmp[64];
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        EXPECT(mkdir(tmp, 0700) == 0, "mkdir %s", tmp);
        EXPECT_STATUS(esa_cache_save(c, path), ESA_ERROR_IO);
        rmdir(tmp);
        size_t m = 0;
        uint8_t *again = read_bytes(path, &m);
        EXPECT(again && file && m == n && memcmp(again, file, n) == 0, "a failed save changed the old file");
        free(again);
    }
    esa_cache_destroy(c);
    free(file);
    remove(path);
    return harness_finish(ctx, "test_persist");
}
