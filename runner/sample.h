/* sample.h - choosing the next token from logits: greedy, or temperature with nucleus (top-p)
 * sampling (Holtzman et al. 2020, "The Curious Case of Neural Text Degeneration"), from a
 * seeded generator so a run repeats exactly.
 *
 * Thread safety: a sampler is one caller's (it holds the generator state and a scratch).
 */
#ifndef ESAR_SAMPLE_H
#define ESAR_SAMPLE_H

#include "status.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct esar_sampler_desc {
    float temperature; /* 0: greedy (the largest logit, the lowest id among equals) */
    float top_p;       /* keep the most likely tokens whose probabilities sum to top_p (0 or 1:
                        * all); with temperature > 0 only */
    uint64_t seed;
} esar_sampler_desc;

typedef struct esar_sampler esar_sampler;

/* ARG for a temperature < 0 or not finite, top_p outside [0, 1], or n_vocab 0. */
esar_status esar_sampler_create(const esar_sampler_desc *desc, uint32_t n_vocab, esar_sampler **out,
                                esar_err *err);
void esar_sampler_destroy(esar_sampler *s); /* NULL is fine */

/* The next token for logits[n_vocab]. NaN logits never win; ARG when every logit is NaN. */
esar_status esar_sample(esar_sampler *s, const float *logits, int32_t *token, esar_err *err);

#ifdef __cplusplus
}
#endif

#endif
