/* logits_ref.h - llama.cpp's logits of the model file (tests/data/logits_ref.txt, recorded by
 * tools/ref/record_logits.py): the reader, and the rule a forward pass is held to against them.
 * Shared by test_model_ref (the CPU reference) and test_model_gpu (the device forward pass);
 * the includer provides EXPECT and g_failures (runner_harness.h or harness.h), and defines
 * _POSIX_C_SOURCE 200809L before its first include (strtok_r).
 *
 * Each prompt is run with its 32-token greedy continuation in one call; the recorded top logits
 * must be within LOGIT_TOL, and the pass's argmax must pick llama.cpp's greedy token at every
 * step (so a greedy run gives the same tokens) unless llama.cpp itself had a near tie there. */
#ifndef ESA_LOGITS_REF_H
#define ESA_LOGITS_REF_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef EXPECT
#error "include runner_harness.h or harness.h before logits_ref.h"
#endif

/* Tolerances against llama.cpp. It quantizes activations to 8 bits for its products with
 * quantized weights and keeps K and V in fp16, so its logits are not the exact ones: when this
 * test was written the largest difference was 0.84 and the mean 0.18, while the reference agreed
 * with an independent float64 numpy forward pass (tools/ref/numpy_forward.py) to 1e-5. */
#define LOGIT_TOL 1.5   /* max |reference - llama.cpp| over every recorded logit */
#define TIE_MARGIN 0.5  /* a greedy step may pick differently when both sides see the two
                           candidates within this many logits of each other */

typedef struct ref_prompt {
    int32_t toks[256];    /* the prompt, then its greedy continuation */
    int n_prompt, n_greedy;
    int top_pos[8], n_top;
    int32_t top_id[8][20];
    float top_val[8][20];
    int32_t step_id[64][5];
    float step_val[64][5];
} ref_prompt;

static inline int ref_read_pairs(char *s, int k, int32_t *ids, float *vals)
{
    char *save = NULL;
    int i = 0;
    for (char *p = strtok_r(s, " \n", &save); p && i < k; p = strtok_r(NULL, " \n", &save), i++)
        if (sscanf(p, "%d:%f", &ids[i], &vals[i]) != 2)
            return 0;
    return i == k;
}

/* The next prompt of the file; 0 at its end or on a malformed record. */
static inline int ref_read_prompt(FILE *fp, ref_prompt *r)
{
    static char line[1 << 15];
    memset(r, 0, sizeof *r);
    int have = 0;
    while (fgets(line, sizeof line, fp)) {
        int a, b, used = 0;
        if (line[0] == '#')
            continue;
        if (!strncmp(line, "end", 3))
            return have;
        if (sscanf(line, "prompt %d%n", &a, &used) == 1 || sscanf(line, "greedy %d%n", &a, &used) == 1) {
            int greedy = line[0] == 'g', base = greedy ? r->n_prompt : 0;
            if (a < 0 || base + a > 256)
                return 0;
            char *p = line + used;
            for (int i = 0; i < a; i++) {
                long v = strtol(p, &p, 10);
                r->toks[base + i] = (int32_t)v;
            }
            if (greedy)
                r->n_greedy = a;
            else
                r->n_prompt = a;
            have = 1;
        } else if (sscanf(line, "top %d %d%n", &a, &b, &used) == 2 && b == 20 && r->n_top < 8) {
            r->top_pos[r->n_top] = a;
            if (!ref_read_pairs(line + used, 20, r->top_id[r->n_top], r->top_val[r->n_top]))
                return 0;
            r->n_top++;
        } else if (sscanf(line, "step %d %d%n", &a, &b, &used) == 2 && b == 5 && a >= 0 && a < 64) {
            if (!ref_read_pairs(line + used, 5, r->step_id[a], r->step_val[a]))
                return 0;
        }
    }
    return 0;
}

static inline int ref_argmax(const float *x, uint32_t n)
{
    uint32_t best = 0;
    for (uint32_t i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return (int)best;
}

/* What a pass did against the recorded prompts, summed over them. */
typedef struct ref_tally {
    double max_diff, sum_diff;
    long n_diff;
    int steps, steps_agree, ties;
} ref_tally;

/* Checks logits[n_prompt + n_greedy][n_vocab] of one prompt (run with its continuation in one
 * call) against the record: top logits within LOGIT_TOL, and each greedy step's argmax (ties as
 * above). Returns the first step whose argmax is not llama.cpp's token (a near tie), or
 * r->n_greedy when all agree. who names the pass in messages, prompt numbers the prompt. */
static inline int ref_check_prompt(const ref_prompt *r, const float *logits, uint32_t n_vocab, const char *who,
                                   int prompt, ref_tally *t)
{
    for (int k = 0; k < r->n_top; k++) {
        const float *row = logits + (size_t)r->top_pos[k] * n_vocab;
        for (int i = 0; i < 20; i++) {
            double dlt = fabs((double)row[r->top_id[k][i]] - r->top_val[k][i]);
            t->max_diff = fmax(t->max_diff, dlt);
            t->sum_diff += dlt;
            t->n_diff++;
            EXPECT(dlt <= LOGIT_TOL, "%s: prompt %d pos %d id %d: %.4f vs llama.cpp %.4f", who, prompt,
                   r->top_pos[k], r->top_id[k][i], row[r->top_id[k][i]], r->top_val[k][i]);
        }
    }
    int first = r->n_greedy;
    for (int s = 0; s < r->n_greedy; s++) {
        const float *row = logits + (size_t)(r->n_prompt - 1 + s) * n_vocab;
        for (int i = 0; i < 5; i++) {
            double dlt = fabs((double)row[r->step_id[s][i]] - r->step_val[s][i]);
            t->max_diff = fmax(t->max_diff, dlt);
            t->sum_diff += dlt;
            t->n_diff++;
            EXPECT(dlt <= LOGIT_TOL, "%s: prompt %d step %d id %d: %.4f vs llama.cpp %.4f", who, prompt, s,
                   r->step_id[s][i], row[r->step_id[s][i]], r->step_val[s][i]);
        }
        int want = r->toks[r->n_prompt + s], got = ref_argmax(row, n_vocab);
        /* llama.cpp's gap between its pick and ours (at least its top-1 minus top-5 when ours
         * is not among its top 5), and our gap between the two */
        double theirs = r->step_val[s][0] - r->step_val[s][4];
        for (int i = 0; i < 5; i++)
            if (r->step_id[s][i] == got)
                theirs = r->step_val[s][0] - r->step_val[s][i];
        double ours = (double)row[got] - row[want];
        int tie = theirs < TIE_MARGIN && ours < TIE_MARGIN;
        t->steps++;
        t->steps_agree += got == want;
        t->ties += tie && got != want;
        EXPECT(got == want || tie,
               "%s: prompt %d step %d: picks %d (%.4f), llama.cpp picked %d (%.4f); gaps %.3f / %.3f", who, prompt,
               s, got, row[got], want, row[want], ours, theirs);
        if (got != want && tie)
            fprintf(stderr, "%s: prompt %d step %d: near tie, %d here, llama.cpp %d (gaps %.3f / %.3f)\n", who,
                    prompt, s, got, want, ours, theirs);
        if (got != want && first == r->n_greedy)
            first = s;
    }
    return first;
}

#endif
