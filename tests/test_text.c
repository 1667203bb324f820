/* test_text.c - the runner's text helpers: next-token sampling (sample.h) and the long-context
 * retrieval prompts (haystack.h).
 *  - `test_text`: a synthetic byte-level vocabulary (gguf_build.h), no model needed;
 *  - `test_text model`: the haystack at real lengths with the model's tokenizer (skips without
 *    the file). */
#include "gguf_build.h"
#include "haystack.h"
#include "runner_harness.h"
#include "sample.h"

#include <math.h>

static void test_sampling(void)
{
    esar_err err = {{0}};
    enum { V = 1000 };
    static float logits[V];
    for (int i = 0; i < V; i++)
        logits[i] = (float)((i * 37) % 101) * 0.01f;
    logits[500] = 3.0f;
    logits[700] = 3.0f; /* a tie: greedy takes the lower id */
    logits[3] = NAN;
    esar_sampler *s = NULL;
    EXPECT_OK(esar_sampler_create(&(esar_sampler_desc){0}, V, &s, &err), &err);
    int32_t tok = -1;
    EXPECT_OK(esar_sample(s, logits, &tok, &err), &err);
    EXPECT(tok == 500, "greedy with a tie took %d, wanted 500", tok);
    esar_sampler_destroy(s);

    /* temperature + top-p: the kept set is the most likely tokens up to the mass; with one
     * token far above the rest and top_p 0.5 it is that token alone, every time */
    static float peaked[V];
    for (int i = 0; i < V; i++)
        peaked[i] = 0.0f;
    peaked[42] = 20.0f;
    EXPECT_OK(esar_sampler_create(&(esar_sampler_desc){.temperature = 1.0f, .top_p = 0.5f, .seed = 3}, V, &s, &err),
              &err);
    int only = 1;
    for (int r = 0; r < 200; r++) {
        EXPECT_OK(esar_sample(s, peaked, &tok, &err), &err);
        only &= tok == 42;
    }
    EXPECT(only, "top-p 0.5 of a peaked distribution sampled another token");
    esar_sampler_destroy(s);

    /* two equally likely tokens among negligible ones: both drawn, about half each, nothing
     * else, and the same draws for the same seed */
    static float two[V];
    for (int i = 0; i < V; i++)
        two[i] = -50.0f;
    two[10] = two[20] = 0.0f;
    int count[2][3] = {{0}};
    for (int run = 0; run < 2; run++) {
        EXPECT_OK(esar_sampler_create(&(esar_sampler_desc){.temperature = 0.7f, .top_p = 0.9f, .seed = 11}, V, &s,
                                      &err), &err);
        for (int r = 0; r < 2000; r++) {
            EXPECT_OK(esar_sample(s, two, &tok, &err), &err);
            count[run][tok == 10 ? 0 : tok == 20 ? 1 : 2]++;
        }
        esar_sampler_destroy(s);
    }
    EXPECT(count[0][2] == 0 && count[0][0] > 850 && count[0][1] > 850, "two-way split %d/%d/%d", count[0][0],
           count[0][1], count[0][2]);
    EXPECT(count[0][0] == count[1][0], "same seed, different draws (%d vs %d)", count[0][0], count[1][0]);

    /* temperature without top-p follows the softmax: p(0) = e^1 / (e^1 + 1) for logits {1, 0} */
    static float pair[2] = {1.0f, 0.0f};
    EXPECT_OK(esar_sampler_create(&(esar_sampler_desc){.temperature = 1.0f, .seed = 5}, 2, &s, &err), &err);
    int zeros = 0;
    for (int r = 0; r < 20000; r++) {
        EXPECT_OK(esar_sample(s, pair, &tok, &err), &err);
        zeros += tok == 0;
    }
    double p0 = exp(1.0) / (exp(1.0) + 1.0), got = zeros / 20000.0;
    EXPECT(fabs(got - p0) < 0.015, "p(token 0) %.4f, wanted %.4f", got, p0);
    esar_sampler_destroy(s);

    /* bad arguments */
    EXPECT(esar_sampler_create(&(esar_sampler_desc){.temperature = -1.0f}, V, &s, &err) == ESAR_ERR_ARG && !s,
           "negative temperature");
    EXPECT(esar_sampler_create(&(esar_sampler_desc){.temperature = 1.0f, .top_p = 1.5f}, V, &s, &err) == ESAR_ERR_ARG,
           "top_p > 1");
    EXPECT(esar_sampler_create(&(esar_sampler_desc){0}, 0, &s, &err) == ESAR_ERR_ARG, "empty vocabulary");
    EXPECT_OK(esar_sampler_create(&(esar_sampler_desc){0}, 2, &s, &err), &err);
    float nan2[2] = {NAN, NAN};
    EXPECT(esar_sample(s, nan2, &tok, &err) == ESAR_ERR_ARG, "all NaN");
    EXPECT(esar_sample(s, NULL, &tok, &err) == ESAR_ERR_ARG, "NULL logits");
    esar_sampler_destroy(s);
    esar_sampler_destroy(NULL);
}

/* The haystack: the needles where asked, in order, the length close to the target, the text
 * built only from the intro, filler and needles. */
static void check_haystack(const esar_tokenizer *t, uint32_t target, double slack, const char *what)
{
    esar_err err = {{0}};
    char l1[96], l2[96];
    esar_passkey_line(48213, l1, sizeof l1);
    esar_passkey_line(907, l2, sizeof l2);
    esar_needle nd[2] = {{l1, 0.75}, {l2, 0.25}};
    char *text = NULL;
    size_t len = 0;
    uint32_t tokens = 0;
    EXPECT_OK(esar_haystack(t, target, nd, 2, &text, &len, &tokens, &err), &err);
    if (!text)
        return;
    EXPECT(strlen(text) == len, "%s: length %zu vs strlen %zu", what, len, strlen(text));
    EXPECT(fabs((double)tokens - target) <= slack * target + 40, "%s: %u tokens for a target of %u", what, tokens,
           target);
    const char *a = strstr(text, l1), *b = strstr(text, l2);
    EXPECT(a && b && b < a, "%s: needles missing or out of depth order", what);
    if (a && b) {
        double da = (double)(a - text) / (double)len, db = (double)(b - text) / (double)len;
        EXPECT(fabs(da - 0.75) < 0.05 && fabs(db - 0.25) < 0.05, "%s: needles at %.3f and %.3f of the text", what, da,
               db);
    }
    EXPECT(!strncmp(text, esar_haystack_intro, strlen(esar_haystack_intro)), "%s: intro", what);
    EXPECT(esar_passkey_found(text, len, 48213) && esar_passkey_found(text, len, 907) &&
               !esar_passkey_found(text, len, 4821) && !esar_passkey_found(text, len, 90),
           "%s: passkey_found", what);
    free(text);
}

static void test_haystack_synthetic(void)
{
    gb g = {0};
    gb_tokenizer_sample(&g, &(gb_tok_opts){0});
    esar_err err = {{0}};
    esar_gguf *f = NULL;
    esar_tokenizer *t = NULL;
    EXPECT_OK(esar_gguf_open_memory(g.p, g.n, &f, &err), &err);
    EXPECT_OK(esar_tokenizer_create(f, &t, &err), &err);
    if (t) {
        /* a byte-level toy vocabulary: about one token a byte */
        check_haystack(t, 3000, 0.05, "synthetic");
        char *text = NULL;
        size_t len = 0;
        uint32_t tokens = 0;
        EXPECT(esar_haystack(t, 100, &(esar_needle){"x", 1.5}, 1, &text, &len, &tokens, &err) == ESAR_ERR_ARG && !text,
               "depth outside [0, 1]");
        EXPECT(esar_haystack(t, 100, NULL, 1, &text, &len, &tokens, &err) == ESAR_ERR_ARG, "NULL needles");
        EXPECT_OK(esar_haystack(t, 10, NULL, 0, &text, &len, &tokens, &err), &err);
        EXPECT(text && strstr(text, "The grass is green."), "a short target still has a paragraph");
        free(text);
    }
    esar_tokenizer_destroy(t);
    esar_gguf_close(f);
    free(g.p);
    EXPECT(esar_passkey_found("is 123.", 7, 123) && !esar_passkey_found("1234", 4, 123) &&
               !esar_passkey_found("0123", 4, 123) && !esar_passkey_found("", 0, 1),
           "passkey_found on edges");
}

static int test_model(void)
{
    char path[1024];
    if (!runner_model_path(ESA_SOURCE_DIR, path, sizeof path))
        return SKIP_CODE;
    esar_err err = {{0}};
    esar_gguf *f = NULL;
    esar_tokenizer *t = NULL;
    EXPECT_OK(esar_gguf_open(path, &f, &err), &err);
    if (f)
        EXPECT_OK(esar_tokenizer_create(f, &t, &err), &err);
    if (t) {
        check_haystack(t, 4096, 0.02, "model 4k");
        check_haystack(t, 32768, 0.02, "model 32k");
    }
    esar_tokenizer_destroy(t);
    esar_gguf_close(f);
    return runner_finish("test_text model");
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "model"))
        return test_model();
    test_sampling();
    test_haystack_synthetic();
    return runner_finish("test_text");
}
