/* unicode.h - the UTF-8 and Unicode facts the tokenizer needs: strict decoding, the categories
 * of its pre-tokenizer (\p{L}, \p{N}, \s), the GPT-2 byte-to-unicode map, and helpers that make
 * decoded token bytes safe to print. Tables: unicode_data.h (Unicode 15.1, the same letter and
 * number sets as llama.cpp's unicode-data.cpp). */
#ifndef ESAR_UNICODE_H
#define ESAR_UNICODE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    ESAR_UC_LETTER = 1,     /* general category L* */
    ESAR_UC_NUMBER = 2,     /* general category N* */
    ESAR_UC_WHITESPACE = 4  /* the White_Space property (what \s matches) */
};

/* Category bits of a code point (0 for everything else, and for values past U+10FFFF). */
uint32_t esar_unicode_flags(uint32_t cp);

/* Decodes one strict UTF-8 sequence at s[0..n) (n >= 1): returns its length (1..4) and sets *cp,
 * or returns the negated length of the maximal ill-formed subpart (-1..-3) when the bytes there
 * are not valid UTF-8 (overlong forms, surrogates, > U+10FFFF and truncations included). */
int esar_utf8_decode(const uint8_t *s, size_t n, uint32_t *cp);

/* Encodes cp (<= U+10FFFF) into out, returns the byte count (1..4), 0 for an invalid cp. */
int esar_utf8_encode(uint32_t cp, char out[4]);

/* Length of the longest prefix of s[0..n) that does not end inside a sequence that more bytes
 * could still complete: for streaming decoded text without cutting characters in half. */
size_t esar_utf8_complete_prefix(const char *s, size_t n);

/* Copies s[0..n) to out, replacing each maximal ill-formed subpart by U+FFFD (as Unicode and
 * WHATWG recommend). Returns the length of the result, which needs at most 3 * n bytes; writes
 * at most cap bytes (a call with cap 0 only measures). */
size_t esar_utf8_sanitize(const char *s, size_t n, char *out, size_t cap);

/* GPT-2's reversible byte <-> code point map: printable Latin-1 bytes map to themselves, the
 * other 68 bytes to U+0100.. in order. unicode_to_byte returns -1 for a code point off the map. */
uint32_t esar_byte_to_unicode(uint8_t b);
int esar_unicode_to_byte(uint32_t cp);

#ifdef __cplusplus
}
#endif

#endif
