/* test_qk_file.c - calibration sample files (tools/calib/qk_file.c): rows written in any order
 * read back as written (to fp16), a file another writer made (F32, keys in another order, extra
 * metadata) reads too, and malformed files are refused with a message naming what is wrong. */
#include "expect.h"
#include "calib/qk_file.h"
#include "quant.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


enum { L = 3, H = 4, G = 2, D = 8, N = 37 };

static float value(uint32_t l, int which, uint32_t t, uint32_t i)
{
    return (float)sin(0.37 * l + 1.3 * which + 0.11 * t + 0.07 * i) * (float)(1 + t % 5);
}

/* A safetensors file from a header string and data bytes of the given size (zeros). */
static void raw_file(const char *path, const char *header, size_t data)
{
    FILE *f = fopen(path, "wb");
    size_t n = strlen(header);
    uint8_t len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (uint8_t)((uint64_t)n >> (8 * i));
    fwrite(len, 1, 8, f);
    fwrite(header, 1, n, f);
    for (size_t i = 0; i < data; i++)
        fputc(0, f);
    fclose(f);
}

static void refused(const char *path, const char *part)
{
    qk_file r;
    char err[512] = "";
    int rc = qk_read_open(&r, path, err, sizeof err);
    EXPECT(rc != 0, "%s: accepted, wanted a refusal about \"%s\"", path, part);
    EXPECT(rc == 0 || strstr(err, part), "%s: message \"%s\" lacks \"%s\"", path, err, part);
    if (rc == 0)
        qk_close(&r);
}

#define META "\"__metadata__\":{\"format\":\"esa-vk qk 1\",\"n_layers\":\"1\",\"n_heads\":\"2\",\"n_kv_heads\":\"1\"," \
             "\"head_dim\":\"8\",\"rope_dims\":\"8\",\"rope_theta\":\"10000\",\"rope_style\":\"neox\"}"

int main(void)
{
    const char *path = "test_qk_file.safetensors";
    qk_meta m = {.n_layers = L, .n_heads = H, .n_kv_heads = G, .head_dim = D, .rope_dims = D, .rope_theta = 5e5f,
                 .n_tokens = N};
    snprintf(m.source, sizeof m.source, "a \"quoted\" source\\");
    qk_file w;
    char err[512] = "";
    EXPECT(qk_write_open(&w, path, &m, err, sizeof err) == 0, "qk_write_open: %s", err);
    /* chunks of 8 rows, layers and chunks in reverse order, the last chunk past n_tokens */
    static float q[16 * H * D], k[16 * G * D];
    for (int l = L - 1; l >= 0; l--)
        for (int c = 4; c >= 0; c--) {
            for (uint32_t t = 0; t < 8; t++) {
                for (uint32_t i = 0; i < H * D; i++)
                    q[t * H * D + i] = value((uint32_t)l, 0, (uint32_t)c * 8 + t, i);
                for (uint32_t i = 0; i < G * D; i++)
                    k[t * G * D + i] = value((uint32_t)l, 1, (uint32_t)c * 8 + t, i);
            }
            EXPECT(qk_write_rows(&w, (uint32_t)l, (uint32_t)c * 8, 8, q, k) == 0, "write rows");
        }
    EXPECT(qk_write_close(&w, path, err, sizeof err) == 0, "qk_write_close: %s", err);

    qk_file r;
    EXPECT(qk_read_open(&r, path, err, sizeof err) == 0, "qk_read_open: %s", err);
    if (!g_failures) {
        EXPECT(r.m.n_layers == L && r.m.n_heads == H && r.m.n_kv_heads == G && r.m.head_dim == D &&
                   r.m.n_tokens == N && r.m.rope_theta == 5e5f && !r.m.neox && r.f16,
               "metadata read back: %u layers, %u/%u heads of %u, %u tokens, theta %g", r.m.n_layers, r.m.n_heads,
               r.m.n_kv_heads, r.m.head_dim, r.m.n_tokens, r.m.rope_theta);
        EXPECT(!strcmp(r.m.source, "a \"quoted\" source\\"), "source \"%s\"", r.m.source);
        static float got[N * H * D];
        for (uint32_t l = 0; l < L; l++)
            for (int which = 0; which < 2; which++) {
                uint32_t e = which ? G * D : H * D;
                EXPECT(qk_read_rows(&r, l, which, 0, N, got) == 0, "read layer %u", l);
                for (uint32_t t = 0; t < N; t++)
                    for (uint32_t i = 0; i < e; i++) {
                        float want = esar_f16_to_f32(esar_f32_to_f16(value(l, which, t, i)));
                        if (got[t * e + i] != want) {
                            EXPECT(0, "layer %u %c row %u [%u]: %g, wanted %g", l, which ? 'k' : 'q', t, i,
                                   got[t * e + i], want);
                            t = N;
                            break;
                        }
                    }
            }
        EXPECT(qk_read_rows(&r, 0, 0, 30, 8, got) != 0, "a read past the last row succeeded");
        qk_close(&r);
    }
    /* a writer that misses rows leaves no file */
    m.n_tokens = 4;
    EXPECT(qk_write_open(&w, "test_qk_short.safetensors", &m, err, sizeof err) == 0, "open: %s", err);
    qk_write_rows(&w, 0, 0, 4, q, k);
    EXPECT(qk_write_close(&w, "test_qk_short.safetensors", err, sizeof err) != 0 && strstr(err, "were written"),
           "a file with missing rows was accepted (%s)", err);
    EXPECT(fopen("test_qk_short.safetensors", "rb") == NULL, "the incomplete file was left");

    /* another writer: F32, keys before queries, another metadata key */
    const char *other = "test_qk_other.safetensors";
    raw_file(other, "{\"layers.0.k\":{\"dtype\":\"F32\",\"shape\":[2,8],\"data_offsets\":[0,64]},"
                    "\"layers.0.q\":{\"dtype\":\"F32\",\"shape\":[2,16],\"data_offsets\":[64,192]}," META "}",
             192);
    EXPECT(qk_read_open(&r, other, err, sizeof err) == 0 && r.m.neox && !r.f16 && r.m.n_tokens == 2,
           "an F32 file from another writer: %s", err);
    qk_close(&r);
    /* refusals */
    raw_file(other, "{\"layers.0.q\":{\"dtype\":\"F32\",\"shape\":[2,16],\"data_offsets\":[0,128]}," META "}", 128);
    refused(other, "no tensor layers.0.k");
    raw_file(other, "{\"layers.0.k\":{\"dtype\":\"F32\",\"shape\":[2,9],\"data_offsets\":[0,72]},"
                    "\"layers.0.q\":{\"dtype\":\"F32\",\"shape\":[2,16],\"data_offsets\":[72,200]}," META "}", 200);
    refused(other, "has shape [2, 9]");
    raw_file(other, "{\"layers.0.k\":{\"dtype\":\"F32\",\"shape\":[2,8],\"data_offsets\":[0,64]},"
                    "\"layers.0.q\":{\"dtype\":\"F32\",\"shape\":[2,16],\"data_offsets\":[64,192]}," META "}", 100);
    refused(other, "pass the end of the file");
    raw_file(other, "{\"layers.0.k\":{\"dtype\":\"BF16\",\"shape\":[2,8],\"data_offsets\":[0,32]},"
                    "\"layers.0.q\":{\"dtype\":\"F32\",\"shape\":[2,16],\"data_offsets\":[32,160]}," META "}", 160);
    refused(other, "BF16");
    raw_file(other, "{\"layers.0.q\":{\"dtype\":\"F32\",\"shape\":[2,16],\"data_offsets\":[0,128]}}", 128);
    refused(other, "format");
    raw_file(other, "{\"layers.0.q\":{\"dtype\":\"F32\",\"shape\":[2,16", 0);
    refused(other, "not valid JSON");
    raw_file(other, "", 0);
    refused(other, "header length 0");
    refused("no-such-file.safetensors", "cannot open");
    remove(other);
    remove(path);
    return expect_finish("test_qk_file");
}
