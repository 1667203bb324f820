/* test_model_ref.c - the CPU reference forward pass.
 *  - A tiny synthetic Llama written here (no model file needed): running tokens one at a time
 *    through the KV cache gives the logits of running them in one call; a missing tensor, a
 *    wrong shape, a type without dequantizer, a token outside the vocabulary and a full cache
 *    are refused with messages that name them.
 *  - With the model file: logits against llama.cpp's (tests/data/logits_ref.txt, recorded by
 *    tools/ref/record_logits.py). Each prompt is run with its 32-token greedy continuation in
 *    one call; the test compares the recorded top logits and checks that the reference's argmax
 *    picks llama.cpp's greedy token at every step (so a greedy run of the reference gives the
 *    same 32 tokens) unless llama.cpp itself had a near tie there. */
#define _POSIX_C_SOURCE 200809L
#include "gguf.h"
#include "gguf_build.h"
#include "model_ref.h"
#include "runner_harness.h"

#include "logits_ref.h" /* after the harness: it uses EXPECT */

#include <math.h>
#include <stdint.h>

#ifndef ESA_SOURCE_DIR
#define ESA_SOURCE_DIR "."
#endif

/* ---- the tiny model of gguf_build.h ------------------------------------------------------ */

static esar_model_ref *tiny_model(const gb_tiny_opts *o, gb *g, esar_gguf **f, esar_status want, const char *needle)
{
    memset(g, 0, sizeof *g);
    gb_tiny_llama(g, o);
    esar_err err = {{0}};
    esar_model_ref *m = NULL;
    *f = NULL;
    EXPECT_OK(esar_gguf_open_memory(g->p, g->n, f, &err), &err);
    esar_model_ref_desc desc = {.max_tokens = 16};
    esar_status s = *f ? esar_model_ref_create(*f, &desc, &m, &err) : ESAR_ERR_ARG;
    EXPECT(s == want, "model create: %s (%s), wanted %s", esar_status_string(s), err.msg, esar_status_string(want));
    if (needle)
        EXPECT(strstr(err.msg, needle), "message '%s' lacks '%s'", err.msg, needle);
    return m;
}

static void test_tiny(void)
{
    gb g;
    esar_gguf *f;
    gb_tiny_opts o = {0};
    esar_model_ref *m = tiny_model(&o, &g, &f, ESAR_OK, NULL);
    if (m) {
        const esar_llama_config *c = esar_model_ref_config(m);
        EXPECT(c->n_layers == TL && c->head_dim == TD && c->n_vocab == TV && !c->tied_output, "tiny config");
        static const int32_t toks[6] = {3, 17, 0, 39, 17, 5};
        static float all[6][TV], one[TV];
        esar_err err;
        EXPECT_OK(esar_model_ref_forward(m, toks, 6, &all[0][0], 0, &err), &err);
        EXPECT(esar_model_ref_pos(m) == 6, "pos after 6");
        /* the same tokens through the cache: 2, then 1 at a time */
        esar_model_ref_reset(m);
        double worst = 0.0;
        EXPECT_OK(esar_model_ref_forward(m, toks, 2, NULL, 0, &err), &err);
        for (int t = 2; t < 6; t++) {
            EXPECT_OK(esar_model_ref_forward(m, toks + t, 1, one, 1, &err), &err);
            for (int i = 0; i < TV; i++)
                worst = fmax(worst, fabs((double)one[i] - all[t][i]));
        }
        EXPECT(worst < 1e-5, "cached vs one call: max |diff| %g", worst);
        static float last[TV];
        esar_model_ref_reset(m);
        EXPECT_OK(esar_model_ref_forward(m, toks, 6, last, 1, &err), &err);
        EXPECT(!memcmp(last, all[5], sizeof last), "last_only gives the last row");
        int finite = 1;
        for (int t = 0; t < 6; t++)
            for (int i = 0; i < TV; i++)
                finite &= isfinite(all[t][i]);
        EXPECT(finite, "non-finite logits");
        int32_t bad = TV;
        uint32_t before = esar_model_ref_pos(m);
        EXPECT(esar_model_ref_forward(m, &bad, 1, NULL, 0, &err) == ESAR_ERR_ARG && strstr(err.msg, "token 40"),
               "token out of range: %s", err.msg);
        EXPECT(esar_model_ref_pos(m) == before, "a refused call appends nothing");
        int32_t many[11] = {0};
        EXPECT(esar_model_ref_forward(m, many, 11, NULL, 0, &err) == ESAR_ERR_LIMIT && strstr(err.msg, "max_tokens 16"),
               "cache overflow: %s", err.msg);
        esar_model_ref_destroy(m);
    }
    esar_gguf_close(f);
    free(g.p);

    gb_tiny_opts miss = {.skip = "blk.1.ffn_up.weight"};
    esar_model_ref_destroy(tiny_model(&miss, &g, &f, ESAR_ERR_NOT_FOUND, "blk.1.ffn_up.weight"));
    esar_gguf_close(f);
    free(g.p);
    gb_tiny_opts shape = {.misshape = "blk.0.attn_k.weight"};
    esar_model_ref_destroy(tiny_model(&shape, &g, &f, ESAR_ERR_TYPE, "blk.0.attn_k.weight"));
    esar_gguf_close(f);
    free(g.p);
    gb_tiny_opts tied = {.skip = "output.weight"};
    esar_model_ref *m2 = tiny_model(&tied, &g, &f, ESAR_OK, NULL);
    EXPECT(m2 && esar_model_ref_config(m2)->tied_output, "no output.weight: tied to token_embd");
    esar_model_ref_destroy(m2);
    esar_gguf_close(f);
    free(g.p);
    gb_tiny_opts q8 = {.q8_1 = "blk.0.ffn_norm.weight"};
    esar_model_ref_destroy(tiny_model(&q8, &g, &f, ESAR_ERR_UNSUPPORTED, "'blk.0.ffn_norm.weight' has type Q8_1"));
    esar_gguf_close(f);
    free(g.p);
}

/* ---- against llama.cpp -------------------------------------------------------------------- */

static int test_model(int kv_f16, int max_prompts)
{
    char buf[4096];
    const char *path = runner_model_path(ESA_SOURCE_DIR, buf, sizeof buf);
    if (!path)
        return 0;
    esar_err err;
    esar_gguf *g = NULL;
    esar_model_ref *m = NULL;
    EXPECT_OK(esar_gguf_open(path, &g, &err), &err);
    esar_model_ref_desc desc = {.max_tokens = 256, .kv_f16 = kv_f16};
    if (g)
        EXPECT_OK(esar_model_ref_create(g, &desc, &m, &err), &err);
    if (!m) {
        esar_gguf_close(g);
        return 1;
    }
    const esar_llama_config *c = esar_model_ref_config(m);
    EXPECT(c->n_layers == 30 && c->n_embd == 576 && c->n_ff == 1536 && c->n_heads == 9 && c->n_kv_heads == 3 &&
               c->head_dim == 64 && c->rope_dims == 64 && c->n_vocab == 49152 && c->n_ctx_train == 8192 &&
               c->rope_theta == 100000.0f && c->tied_output,
           "SmolLM2 config");

    char ref[4096];
    snprintf(ref, sizeof ref, "%s/tests/data/logits_ref.txt", ESA_SOURCE_DIR);
    FILE *fp = fopen(ref, "r");
    EXPECT(fp, "cannot open %s", ref);
    static ref_prompt r;
    ref_tally t = {0};
    int prompts = 0;
    while (fp && prompts < max_prompts && ref_read_prompt(fp, &r)) {
        uint32_t n = (uint32_t)(r.n_prompt + r.n_greedy);
        float *logits = malloc(sizeof(float) * n * c->n_vocab); /* [n][V] */
        if (!logits)
            break;
        esar_model_ref_reset(m);
        EXPECT_OK(esar_model_ref_forward(m, r.toks, n, logits, 0, &err), &err);
        ref_check_prompt(&r, logits, c->n_vocab, "reference", prompts, &t);
        free(logits);
        prompts++;
    }
    if (fp)
        fclose(fp);
    EXPECT(prompts >= (max_prompts < 3 ? max_prompts : 3), "only %d prompts in %s", prompts, ref);
    fprintf(stderr,
            "model (K/V %s): %d prompts; max |logit - llama.cpp| %.4f, mean %.4f over %ld logits; greedy argmax "
            "agrees at %d/%d steps (%d near-tie disagreements)\n",
            kv_f16 ? "fp16" : "f32", prompts, t.max_diff, t.n_diff ? t.sum_diff / t.n_diff : 0.0, t.n_diff,
            t.steps_agree, t.steps, t.ties);
    esar_model_ref_destroy(m);
    esar_gguf_close(g);
    return 1;
}

/* `test_model_ref`: the tiny model; `test_model_ref model`: the model file (skips without it). */
int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "model")) {
        /* fp16 K/V as llama.cpp's cache; the f32 path is the tiny test's. Debug and sanitizer
         * builds (ESA_TEST_QUICK) take the first prompt only: they are 10-50x slower. */
#ifdef ESA_TEST_QUICK
        int ran = test_model(1, 1);
#else
        int ran = test_model(1, 1000);
#endif
        if (!ran)
            return SKIP_CODE;
        return runner_finish("test_model_ref model");
    }
    test_tiny();
    return runner_finish("test_model_ref");
}
