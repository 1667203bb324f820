/* chat.h - chat prompts in the format a model's tokenizer.chat_template produces.
 *
 * There is no Jinja interpreter here. A template is recognized by its content: it is compared,
 * ignoring formatting white space outside string literals and reading the literals' escapes,
 * with the templates this file knows; anything else fails with ESAR_ERR_UNSUPPORTED rather than
 * being guessed at. Known today:
 *  - ChatML (<|im_start|>role\ncontent<|im_end|>\n per message, "<|im_start|>assistant\n" as the
 *    generation prompt), optionally with a default system message inserted before the first
 *    message when that one is not a system message (SmolLM2's template does this).
 *
 * Lifetime: esar_chat copies what it needs from the template. Thread safety: immutable after
 * create.
 */
#ifndef ESAR_CHAT_H
#define ESAR_CHAT_H

#include "status.h"
#include "tokenizer.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum esar_chat_kind {
    ESAR_CHAT_CHATML = 1
} esar_chat_kind;

typedef struct esar_chat_msg {
    const char *role;    /* NUL-terminated: "system", "user", "assistant", ... */
    const char *content; /* NUL-terminated */
} esar_chat_msg;

typedef struct esar_chat esar_chat;

/* Recognizes the Jinja template tpl[0..len). UNSUPPORTED (with the template's opening in the
 * message) when it is not one this file knows. */
esar_status esar_chat_create(const char *tpl, size_t len, esar_chat **out, esar_err *err);
/* Reads tokenizer.chat_template from g; NOT_FOUND when the file has none. */
esar_status esar_chat_create_from_gguf(const esar_gguf *g, esar_chat **out, esar_err *err);
void esar_chat_destroy(esar_chat *c); /* NULL is fine */

esar_chat_kind esar_chat_kind_of(const esar_chat *c);
/* The default system message the template inserts, NUL-terminated; "" when it has none. */
const char *esar_chat_default_system(const esar_chat *c);

/* Writes the prompt text for msgs[0..n) into buf[0..cap) (no NUL added); *len_out receives the
 * full length, and ESAR_ERR_LIMIT is returned when it exceeds cap. add_generation_prompt opens
 * the assistant's turn, as the template's add_generation_prompt does. */
esar_status esar_chat_format(const esar_chat *c, const esar_chat_msg *msgs, size_t n, int add_generation_prompt,
                             char *buf, size_t cap, size_t *len_out, esar_err *err);

/* Tokenizes the same prompt without letting message text become special tokens: the template's
 * own markers are looked up as tokens, and each stretch of text between two markers is
 * tokenized with esar_tokenize without PARSE_SPECIAL. When no role or content contains a special
 * token's text this equals esar_tokenize(format(...), PARSE_SPECIAL), which is what llama.cpp
 * does. Buffer contract as esar_tokenize (ESAR_ERR_LIMIT, *n_out the count needed). */
esar_status esar_chat_tokenize(const esar_chat *c, const esar_tokenizer *t, const esar_chat_msg *msgs, size_t n,
                               int add_generation_prompt, int32_t *tokens, size_t cap, size_t *n_out,
                               esar_err *err);

#ifdef __cplusplus
}
#endif

#endif
