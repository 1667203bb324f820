/* tokenizer.h - byte-level BPE (GPT-2 style) from a GGUF file's tokenizer.ggml.* keys, giving
 * the same tokens as llama.cpp for valid UTF-8.
 *
 * Encoding, as llama.cpp does it (src/llama-vocab.cpp, src/unicode.cpp):
 *  1. Special tokens: the text is cut at every occurrence of a control, unknown or user-defined
 *     token's text (longest first) when ESAR_TOKENIZE_PARSE_SPECIAL is set; without it only
 *     user-defined tokens cut (a user-defined token is ordinary text to the model's authors).
 *  2. Pre-tokenization of each remaining piece: for tokenizer.ggml.pre "smollm" (and the
 *     pre-tokenizers llama.cpp gives the same expressions) every \p{N} code point is split off
 *     alone, then each part is split by GPT-2's expression
 *         's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *     implemented by hand (no regex library); for "gpt-2" only the second split runs.
 *  3. Each word's bytes are mapped through GPT-2's byte-to-unicode table and merged by BPE: the
 *     adjacent pair of lowest merge rank first, leftmost among equals (Sennrich et al. 2016,
 *     "Neural Machine Translation of Rare Words with Subword Units").
 *
 * Text is bytes, and every byte that has a token is kept: detokenize(tokenize(x)) == x (with
 * PARSE_SPECIAL and RENDER_SPECIAL both set, or with neither when x holds no user-defined
 * token's text), valid UTF-8 or not. Valid UTF-8 tokenizes exactly as in llama.cpp. Two cases
 * differ from llama.cpp, both outside what a model sees in practice:
 *  - a byte outside valid UTF-8 is kept as that byte and split like a symbol (llama.cpp puts
 *    U+FFFD in its place, losing it);
 *  - a vocabulary need not spell every byte (SmolLM2's lacks 21: 0x04 0x06 0x13 0x14 0x16 0x1D
 *    0xC0 0xC1 0xF1 0xF2 0xF5..0xFF, so U+0004 or a code point in planes 4..11 has no tokens).
 *    A character (or stray byte) holding such a byte becomes U+FFFD, so the loss shows; llama.cpp
 *    drops it silently. ESAR_TOKENIZE_STRICT makes it an error instead.
 *
 * Lifetime: the tokenizer copies what it needs; the GGUF file may be closed after create.
 * Thread safety: a tokenizer is immutable after create; concurrent calls are fine.
 */
#ifndef ESAR_TOKENIZER_H
#define ESAR_TOKENIZER_H

#include "gguf.h"
#include "status.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* tokenizer.ggml.token_type values (llama.cpp's llama_token_type, pinned by the files). */
enum {
    ESAR_TOKEN_UNDEFINED = 0,
    ESAR_TOKEN_NORMAL = 1,
    ESAR_TOKEN_UNKNOWN = 2,
    ESAR_TOKEN_CONTROL = 3,
    ESAR_TOKEN_USER_DEFINED = 4,
    ESAR_TOKEN_UNUSED = 5,
    ESAR_TOKEN_BYTE = 6
};

/* esar_tokenize flags */
#define ESAR_TOKENIZE_PARSE_SPECIAL 1u /* control/unknown token texts in the input become tokens */
#define ESAR_TOKENIZE_ADD_BOS 2u       /* start with the BOS token (the model's choice is
                                          esar_tokenizer_add_bos) */
#define ESAR_TOKENIZE_STRICT 4u        /* fail (UNSUPPORTED, naming the offset) on a byte no token
                                          spells, instead of writing U+FFFD for it */
/* esar_token_piece / esar_detokenize flags */
#define ESAR_DETOKENIZE_RENDER_SPECIAL 1u /* control and unknown tokens give their text, not "" */

typedef struct esar_tokenizer esar_tokenizer;

/* Builds the tokenizer from g's tokenizer.ggml.{model,pre,tokens,token_type,merges,
 * bos_token_id,eos_token_id,unknown_token_id,add_bos_token}. Fails with UNSUPPORTED for another
 * tokenizer model or pre-tokenizer (the message names it), FORMAT for inconsistent keys (a
 * merge without a space, a token id out of range, a type array of the wrong length), and when
 * the vocabulary lacks a byte and cannot spell U+FFFD to stand in for it either. */
esar_status esar_tokenizer_create(const esar_gguf *g, esar_tokenizer **out, esar_err *err);
/* NULL is fine. */
void esar_tokenizer_destroy(esar_tokenizer *t);

uint32_t esar_tokenizer_n_vocab(const esar_tokenizer *t);
int32_t esar_tokenizer_bos(const esar_tokenizer *t); /* -1 when the file names none */
int32_t esar_tokenizer_eos(const esar_tokenizer *t); /* -1 when the file names none */
int esar_tokenizer_add_bos(const esar_tokenizer *t); /* tokenizer.ggml.add_bos_token, 0 if absent */
/* The token type (ESAR_TOKEN_*), or -1 for an id out of range. */
int esar_tokenizer_token_type(const esar_tokenizer *t, int32_t id);
/* 1 when some token spells byte b on its own (byte-level vocabularies usually spell all 256). */
int esar_tokenizer_has_byte(const esar_tokenizer *t, uint8_t b);
/* The id of the token whose text (as stored, byte-encoded) is text[0..len), or -1. */
int32_t esar_tokenizer_find(const esar_tokenizer *t, const char *text, size_t len);

/* Tokenizes text[0..len) into tokens[0..cap). *n_out receives the number of tokens the text
 * needs; when that exceeds cap, the first cap are written and ESAR_ERR_LIMIT is returned (call
 * again with a larger buffer; at most 3 * len + 1 tokens are ever needed: U+FFFD, standing in for
 * one byte without a token, may take three). tokens may be NULL when
 * cap is 0, text may be NULL when len is 0. */
esar_status esar_tokenize(const esar_tokenizer *t, const char *text, size_t len, uint32_t flags,
                          int32_t *tokens, size_t cap, size_t *n_out, esar_err *err);

/* The bytes token id stands for (not NUL-terminated, valid until destroy): byte-decoded for
 * normal tokens, the stored text for user-defined ones and, with RENDER_SPECIAL, for control
 * and unknown ones; empty otherwise. Bytes of one token may be part of a UTF-8 character
 * that the next token completes: see esar_utf8_complete_prefix in unicode.h. */
esar_status esar_token_piece(const esar_tokenizer *t, int32_t id, uint32_t flags, const char **piece,
                             size_t *len, esar_err *err);

/* Concatenates the pieces of tokens[0..n) into buf[0..cap). *len_out receives the full length;
 * ESAR_ERR_LIMIT when it exceeds cap (the first cap bytes are written). No NUL is added.
 * The result is the exact bytes; it may hold invalid UTF-8 when the tokens do (a token sequence
 * cut inside a character, or a model's odd choice): esar_utf8_sanitize makes it printable. */
esar_status esar_detokenize(const esar_tokenizer *t, const int32_t *tokens, size_t n, uint32_t flags,
                            char *buf, size_t cap, size_t *len_out, esar_err *err);

#ifdef __cplusplus
}
#endif

#endif
