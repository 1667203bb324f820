/* haystack.h - long-context retrieval prompts made offline: a filler paragraph repeated to a
 * length in tokens, with needle lines placed at chosen depths.
 *
 * The passkey task (Mohtashami & Jaggi 2023, "Landmark Attention"): the line
 * "The pass key is N. Remember it. N is the pass key." hidden in filler, then the question
 * "What is the pass key?". The same builder serves several needles (multi-key
 * needle-in-a-haystack: "One of the special magic numbers for KEY is: VALUE.").
 *
 * Lengths are counted with the model's tokenizer: the text is built from a token estimate of
 * one filler paragraph, then tokenized whole, so the count returned is exact for that text.
 */
#ifndef ESAR_HAYSTACK_H
#define ESAR_HAYSTACK_H

#include "status.h"
#include "tokenizer.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct esar_needle {
    const char *line;   /* NUL-terminated; a newline is added after it */
    double depth;       /* where it starts, as a fraction of the filler (0 first, 1 last) */
} esar_needle;

/* The opening sentence, the filler paragraph, and the passkey lines, as used by haystack.c. */
extern const char *const esar_haystack_intro;
extern const char *const esar_haystack_filler;

/* Builds intro + filler with needles[0..n) at their depths, about target_tokens tokens long
 * (with the intro; at least one filler paragraph), into *text (malloc'd, NUL-terminated, the
 * caller frees) of *len bytes; *tokens receives its exact token count (no BOS). ARG for a bad
 * depth (outside [0, 1]) or a NULL pointer. */
esar_status esar_haystack(const esar_tokenizer *t, uint32_t target_tokens, const esar_needle *needles,
                          size_t n, char **text, size_t *len, uint32_t *tokens, esar_err *err);

/* The passkey line for key into buf (cap >= 96). */
void esar_passkey_line(uint32_t key, char *buf, size_t cap);
/* The question that follows the haystack, and the answer's opening that a prompt may pre-fill. */
extern const char *const esar_passkey_question;
extern const char *const esar_passkey_answer_prefix;

/* 1 when text[0..len) holds key as a whole number (not inside a longer run of digits). */
int esar_passkey_found(const char *text, size_t len, uint32_t key);

#ifdef __cplusplus
}
#endif

#endif
