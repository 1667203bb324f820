/* test_fuzz_gguf.c - runs the fuzz entry (fuzz_gguf.c) on thousands of deterministic mutations
 * of three small valid GGUFs written here (gguf_build.h: the value/tensor sample, the tokenizer
 * sample with its chat template, a tiny Llama): every truncation, a bit flip at every byte, interesting
 * integers (huge counts and lengths, out-of-range types) over every aligned word, and seeded
 * random multi-byte damage. Meant for the ASan/UBSan build, where a bad read stops the test.
 * `test_fuzz_gguf --write-seeds DIR` writes the seeds, for a libFuzzer corpus. */
#include "gguf.h"
#include "gguf_build.h"
#include "runner_harness.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t g_state = 0x243f6a8885a308d3ull;
static uint64_t rnd(void)
{
    uint64_t z = (g_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static long g_runs, g_accepted;

/* Runs the entry on an exactly sized heap copy, so any read past the end is caught. */
static void run(const uint8_t *p, size_t n)
{
    uint8_t *copy = malloc(n ? n : 1);
    if (!copy)
        return;
    memcpy(copy, p, n);
    LLVMFuzzerTestOneInput(copy, n);
    esar_gguf *g = NULL;
    esar_err err;
    if (esar_gguf_open_memory(copy, n, &g, &err) == ESAR_OK)
        g_accepted++;
    esar_gguf_close(g);
    free(copy);
    g_runs++;
}

/* Every mutation family over one seed. Byte-by-byte mutations cover the header, metadata and
 * tensor infos (up to the data section, plus a little), and only a sparse sample of the tensor
 * data, where a mutation changes numbers, not structure. */
static void mutate_all(const gb *s)
{
    uint8_t *m = malloc(s->n * 2 + 64);
    if (!m)
        return;
    esar_gguf *g = NULL;
    size_t span = s->n;
    if (esar_gguf_open_memory(s->p, s->n, &g, NULL) == ESAR_OK && esar_gguf_data_offset(g) + 256 < s->n)
        span = (size_t)esar_gguf_data_offset(g) + 256;
    esar_gguf_close(g);
    for (size_t n = 0; n <= s->n; n += n < span ? 1 : 997)
        run(s->p, n);
    run(s->p, s->n - 1);
    for (size_t i = 0; i < span; i++) {
        memcpy(m, s->p, s->n);
        m[i] ^= (uint8_t)(1u << (rnd() & 7));
        run(m, s->n);
    }
    static const uint64_t words[] = {0, 1, 2, 7, 8, 9, 12, 13, 14, 31, 32, 33, 64, 255, 0x7fffffffu,
                                     0x80000000u, 0xffffffffu, 1ull << 32, 1ull << 40, 1ull << 61,
                                     1ull << 62, 0x7fffffffffffffffull, 0x8000000000000000ull,
                                     0xffffffffffffffffull};
    size_t nw = sizeof words / sizeof words[0];
    for (size_t i = 0; i + 8 <= span; i += 4) {
        for (size_t w = 0; w < nw; w += 1 + (i % 3)) {
            memcpy(m, s->p, s->n);
            int width = (w & 1) ? 8 : 4;
            for (int b = 0; b < width; b++)
                m[i + (size_t)b] = (uint8_t)(words[w] >> (8 * b));
            run(m, s->n);
        }
    }
    for (int it = 0; it < 3000; it++) {
        size_t n = s->n;
        memcpy(m, s->p, n);
        int k = 1 + (int)(rnd() % 4);
        for (int j = 0; j < k; j++) {
            size_t at = (size_t)(rnd() % (n < span ? n : span));
            switch (rnd() % 5) {
            case 0: m[at] = (uint8_t)rnd(); break;
            case 1: m[at] ^= 0x80; break;
            case 2: /* delete a byte */
                memmove(m + at, m + at + 1, n - at - 1);
                n--;
                break;
            case 3: /* duplicate a run of bytes */
                if (n + 16 <= s->n * 2 + 64) {
                    size_t len = 1 + (size_t)(rnd() % 16);
                    if (at + len > n)
                        len = n - at;
                    memmove(m + at + len, m + at, n - at);
                    n += len;
                }
                break;
            default: /* an interesting word */
                if (at + 8 <= n) {
                    uint64_t w = words[rnd() % nw];
                    for (int b = 0; b < 8; b++)
                        m[at + (size_t)b] = (uint8_t)(w >> (8 * b));
                }
                break;
            }
            if (n == 0)
                break;
        }
        run(m, n);
    }
    free(m);
}

int main(int argc, char **argv)
{
    enum { N_SEEDS = 3 };
    gb seeds[N_SEEDS] = {{0}, {0}, {0}};
    gb_sample(&seeds[0]);
    gb_tok_opts o = {0};
    gb_tokenizer_sample(&seeds[1], &o);
    gb_tiny_opts to = {0};
    gb_tiny_llama(&seeds[2], &to);
    for (int i = 0; i < N_SEEDS; i++)
        if (seeds[i].oom)
            return 1;
    if (argc == 3 && !strcmp(argv[1], "--write-seeds")) { /* a corpus for the libFuzzer binary */
        int ok = 1;
        for (int i = 0; i < N_SEEDS; i++) {
            char path[4096];
            snprintf(path, sizeof path, "%s/seed%d.gguf", argv[2], i);
            FILE *f = fopen(path, "wb");
            ok &= f && fwrite(seeds[i].p, 1, seeds[i].n, f) == seeds[i].n;
            if (f)
                ok &= fclose(f) == 0;
        }
        return ok ? 0 : 1;
    }
    for (int i = 0; i < N_SEEDS; i++) {
        long before = g_accepted;
        mutate_all(&seeds[i]);
        EXPECT(g_accepted > before, "seed %d: no mutation was accepted: the seed itself must be", i);
        fprintf(stderr, "seed %d (%zu bytes): %ld inputs run so far, %ld accepted\n", i, seeds[i].n, g_runs,
                g_accepted);
        free(seeds[i].p);
    }
    return runner_finish("test_fuzz_gguf");
}
