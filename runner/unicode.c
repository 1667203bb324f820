/* unicode.c - strict UTF-8, category lookup by binary search over generated ranges, and the
 * GPT-2 byte map (Radford et al. 2019, openai/gpt-2 encoder.py bytes_to_unicode). */
#include "unicode.h"

#include "unicode_data.h"

#include <string.h>

static int in_ranges(const uint32_t (*r)[2], size_t n, uint32_t cp)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cp < r[mid][0])
            hi = mid;
        else if (cp > r[mid][1])
            lo = mid + 1;
        else
            return 1;
    }
    return 0;
}

static int is_white_space(uint32_t cp)
{
    /* PropList.txt White_Space; the same list as llama.cpp's unicode_set_whitespace */
    if ((cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680)
        return 1;
    if (cp >= 0x2000 && cp <= 0x200A)
        return 1;
    return cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

uint32_t esar_unicode_flags(uint32_t cp)
{
    uint32_t f = 0;
    if (cp < 0x80) {
        if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z')
            return ESAR_UC_LETTER;
        if (cp >= '0' && cp <= '9')
            return ESAR_UC_NUMBER;
        return is_white_space(cp) ? ESAR_UC_WHITESPACE : 0;
    }
    if (in_ranges(k_letter_ranges, sizeof k_letter_ranges / sizeof k_letter_ranges[0], cp))
        f |= ESAR_UC_LETTER;
    if (in_ranges(k_number_ranges, sizeof k_number_ranges / sizeof k_number_ranges[0], cp))
        f |= ESAR_UC_NUMBER;
    if (is_white_space(cp))
        f |= ESAR_UC_WHITESPACE;
    return f;
}

int esar_utf8_decode(const uint8_t *s, size_t n, uint32_t *cp)
{
    uint8_t b0 = s[0];
    if (b0 < 0x80) {
        *cp = b0;
        return 1;
    }
    int len;
    uint32_t c, lo = 0x80, hi = 0xBF; /* the range allowed for the second byte */
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        len = 2;
        c = b0 & 0x1F;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        len = 3;
        c = b0 & 0x0F;
        if (b0 == 0xE0)
            lo = 0xA0; /* no overlong forms */
        if (b0 == 0xED)
            hi = 0x9F; /* no surrogates */
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        len = 4;
        c = b0 & 0x07;
        if (b0 == 0xF0)
            lo = 0x90;
        if (b0 == 0xF4)
            hi = 0x8F; /* <= U+10FFFF */
    } else {
        return -1; /* continuation byte, C0, C1 or F5..FF */
    }
    for (int i = 1; i < len; i++) {
        if ((size_t)i >= n)
            return -i;
        uint8_t b = s[i];
        if (b < (i == 1 ? lo : 0x80) || b > (i == 1 ? hi : 0xBF))
            return -i;
        c = (c << 6) | (b & 0x3F);
    }
    *cp = c;
    return len;
}

int esar_utf8_encode(uint32_t cp, char out[4])
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp >= 0xD800 && cp <= 0xDFFF)
        return 0;
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    if (cp <= 0x10FFFF) {
        out[0] = (char)(0xF0 | (cp >> 18));
        out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[3] = (char)(0x80 | (cp & 0x3F));
        return 4;
    }
    return 0;
}

size_t esar_utf8_complete_prefix(const char *s, size_t n)
{
    /* Only the last three bytes can begin a sequence still waiting for bytes. */
    size_t start = n > 3 ? n - 3 : 0;
    for (size_t i = start; i < n; i++) {
        uint32_t cp;
        int r = esar_utf8_decode((const uint8_t *)s + i, n - i, &cp);
        /* ill-formed only because the input ends: a prefix of a valid sequence */
        if (r < 0 && i + (size_t)(-r) == n && (uint8_t)s[i] >= 0xC2 && (uint8_t)s[i] <= 0xF4)
            return i;
    }
    return n;
}

size_t esar_utf8_sanitize(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int r = esar_utf8_decode((const uint8_t *)s + i, n - i, &cp);
        const char *src = s + i;
        size_t len = (size_t)r;
        if (r < 0) {
            src = "\xEF\xBF\xBD";
            len = 3;
            i += (size_t)(-r);
        } else {
            i += (size_t)r;
        }
        for (size_t k = 0; k < len; k++, o++)
            if (o < cap)
                out[o] = src[k];
    }
    return o;
}

static int printable_latin1(uint32_t b)
{
    return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

uint32_t esar_byte_to_unicode(uint8_t b)
{
    if (printable_latin1(b))
        return b;
    uint32_t k = 0; /* rank of b among the bytes that are not printable */
    for (uint32_t x = 0; x < b; x++)
        k += !printable_latin1(x);
    return 256 + k;
}

int esar_unicode_to_byte(uint32_t cp)
{
    if (cp < 256)
        return printable_latin1(cp) ? (int)cp : -1;
    if (cp >= 256 + 68)
        return -1;
    uint32_t k = cp - 256;
    for (uint32_t x = 0; x < 256; x++)
        if (!printable_latin1(x) && k-- == 0)
            return (int)x;
    return -1;
}
