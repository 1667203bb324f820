/* test_tokenizer.c - the byte-level BPE tokenizer and the chat template:
 *  - UTF-8 and Unicode helpers (strictness, the GPT-2 byte map, streaming and sanitizing);
 *  - a small synthetic vocabulary written here: merge order, the fallback to bytes, special
 *    and user-defined tokens, refusals of unsupported or broken tokenizer keys;
 *  - round trips of random byte strings, valid UTF-8 or not;
 *  - with the model file: every case of tests/data/tokens_ref.txt (llama.cpp's tokens, recorded
 *    by tools/ref/record_tokens.py) and the chat prompts rendered by jinja2 from its template. */
#define _POSIX_C_SOURCE 200809L
#include "chat.h"
#include "gguf.h"
#include "gguf_build.h"
#include "runner_harness.h"
#include "tokenizer.h"
#include "unicode.h"

#include <stdint.h>

#ifndef ESA_SOURCE_DIR
#define ESA_SOURCE_DIR "."
#endif

static uint64_t g_state = 0x853c49e6748fea9bull;
static uint64_t rnd(void)
{
    uint64_t z = (g_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void test_unicode(void)
{
    uint32_t seen[324] = {0};
    for (int b = 0; b < 256; b++) {
        uint32_t cp = esar_byte_to_unicode((uint8_t)b);
        EXPECT(cp < 324 && !seen[cp]++, "byte 0x%02x maps to U+%04X twice or out of range", b, cp);
        EXPECT(esar_unicode_to_byte(cp) == b, "byte 0x%02x does not map back", b);
    }
    EXPECT(esar_byte_to_unicode(' ') == 0x120 && esar_byte_to_unicode('\n') == 0x10A, "GPT-2's Ġ and Ċ");
    EXPECT(esar_unicode_to_byte(0x20) == -1 && esar_unicode_to_byte(0x144) == -1, "off-map code points");

    struct {
        const char *s;
        int want; /* length, or minus the ill-formed subpart */
        uint32_t cp;
    } dec[] = {
        {"A", 1, 'A'},          {"\xC3\xA9", 2, 0xE9},         {"\xE2\x82\xAC", 3, 0x20AC},
        {"\xF0\x9F\x98\x80", 4, 0x1F600}, {"\xC0\x80", -1, 0}, {"\xC1\xBF", -1, 0},
        {"\xE0\x80\x80", -1, 0}, {"\xED\xA0\x80", -1, 0}, /* surrogate */
        {"\xF4\x90\x80\x80", -1, 0}, {"\xF5\x80", -1, 0},      {"\x80", -1, 0},
        {"\xE2\x82", -2, 0},    {"\xF0\x9F\x98", -3, 0},       {"\xE2\x28\xA1", -1, 0},
    };
    for (size_t i = 0; i < sizeof dec / sizeof dec[0]; i++) {
        uint32_t cp = 0;
        int r = esar_utf8_decode((const uint8_t *)dec[i].s, strlen(dec[i].s), &cp);
        EXPECT(r == dec[i].want && (r < 0 || cp == dec[i].cp), "decode case %zu: %d U+%04X", i, r, cp);
    }
    char enc[4];
    EXPECT(esar_utf8_encode(0xD800, enc) == 0 && esar_utf8_encode(0x110000, enc) == 0, "encode refuses");
    for (uint32_t cp = 0; cp < 0x110000; cp += 97) {
        int n = esar_utf8_encode(cp, enc);
        uint32_t back = 0;
        if (n)
            EXPECT(esar_utf8_decode((const uint8_t *)enc, (size_t)n, &back) == n && back == cp, "U+%04X", cp);
    }
    EXPECT(esar_unicode_flags('a') == ESAR_UC_LETTER && esar_unicode_flags('7') == ESAR_UC_NUMBER, "ascii");
    EXPECT(esar_unicode_flags(0x4E2D) == ESAR_UC_LETTER && esar_unicode_flags(0x0663) == ESAR_UC_NUMBER, "CJK, Arabic 3");
    EXPECT(esar_unicode_flags(0x216B) == ESAR_UC_NUMBER && esar_unicode_flags(0xBD) == ESAR_UC_NUMBER, "Nl, No");
    EXPECT(esar_unicode_flags(0x3000) == ESAR_UC_WHITESPACE && esar_unicode_flags(0x85) == ESAR_UC_WHITESPACE, "ws");
    EXPECT(esar_unicode_flags(0x200B) == 0 && esar_unicode_flags(0x1F600) == 0 && esar_unicode_flags(0x301) == 0,
           "ZWSP, emoji, combining mark are none of L, N, \\s");
    EXPECT(esar_unicode_flags(0x1C) == 0, "U+001C is not White_Space");

    EXPECT(esar_utf8_complete_prefix("ab\xE2\x82", 4) == 2, "cut euro sign");
    EXPECT(esar_utf8_complete_prefix("ab\xE2\x82\xAC", 5) == 5, "whole euro sign");
    EXPECT(esar_utf8_complete_prefix("ab\xF0", 3) == 2, "lone lead byte");
    EXPECT(esar_utf8_complete_prefix("ab\x80", 3) == 3, "stray continuation: nothing to wait for");
    EXPECT(esar_utf8_complete_prefix("ab\xE0\x80", 4) == 4, "never valid: nothing to wait for");
    char out[64];
    /* Python: b"a\xe2\x82b\xff\xed\xa0\x80".decode("utf-8", "replace") == "a\ufffdb\ufffd\ufffd\ufffd\ufffd" */
    size_t n = esar_utf8_sanitize("a\xE2\x82" "b\xFF\xED\xA0\x80", 8, out, sizeof out);
    EXPECT(n == 17 && !memcmp(out, "a\xEF\xBF\xBD" "b\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD", 17),
           "sanitize: %zu bytes", n);
    EXPECT(esar_utf8_sanitize("ok", 2, NULL, 0) == 2, "measure only");
}

/* ---- the synthetic vocabulary of gguf_build.h ------------------------------------------- */

static esar_tokenizer *make_tok(const gb_tok_opts *o, esar_status want, const char *needle)
{
    gb g = {0};
    gb_tokenizer_sample(&g, o);
    esar_err err = {{0}};
    esar_gguf *f = NULL;
    esar_tokenizer *t = NULL;
    EXPECT_OK(esar_gguf_open_memory(g.p, g.n, &f, &err), &err);
    esar_status s = esar_tokenizer_create(f, &t, &err);
    EXPECT(s == want, "tokenizer_create: %s (%s), wanted %s", esar_status_string(s), err.msg, esar_status_string(want));
    if (needle)
        EXPECT(strstr(err.msg, needle), "message '%s' lacks '%s'", err.msg, needle);
    esar_gguf_close(f); /* the tokenizer must not need the file any more */
    free(g.p);
    return t;
}

static void expect_tokens(const esar_tokenizer *t, const char *text, uint32_t flags, const int32_t *want, size_t n_want)
{
    int32_t got[256];
    size_t n = 0;
    esar_err err = {{0}};
    EXPECT_OK(esar_tokenize(t, text, strlen(text), flags, got, 256, &n, &err), &err);
    int same = n == n_want && !memcmp(got, want, n * sizeof *got);
    EXPECT(same, "'%s' (flags %u): got %zu tokens, wanted %zu", text, flags, n, n_want);
    for (size_t i = 0; !same && i < n; i++)
        fprintf(stderr, "  got[%zu] = %d%s", i, got[i], i + 1 == n ? "\n" : "");
}
#define B(c) (V_BYTE0 + (unsigned char)(c))
#define TOKS(text, flags, ...)                                                                   \
    do {                                                                                         \
        static const int32_t w_[] = {__VA_ARGS__};                                               \
        expect_tokens(t, text, flags, w_, sizeof w_ / sizeof w_[0]);                             \
    } while (0)

/* detokenize(tokenize(x)) == x for random bytes: UTF-8 of all lengths, invalid bytes, digits,
 * spaces, contractions and pieces of special tokens. */
static void round_trips(const esar_tokenizer *t, int iters, const char *what)
{
    static const char *const atoms[] = {"a", "Z", "7", " ", "  ", "\n", "\t", "'s", "'ll", "\xC3\xA9", "\xE4\xB8\xAD",
                                        "\xF0\x9F\x98\x80", "\xE2\x82", "\xFF", "\x80", "\xC0\x80", "\xED\xA0\x80",
                                        "<|im_start|>", "<|im_end|>", "<|im", "<user>", "hello", "\xC2\xA0", "!?",
                                        "\xD9\xA3", "\x00", "\r\n", "\xE3\x80\x80"};
    size_t n_atoms = sizeof atoms / sizeof atoms[0];
    char text[512], back[1024];
    int32_t toks[600];
    int bad = 0;
    for (int it = 0; it < iters; it++) {
        size_t len = 0, parts = rnd() % 40;
        for (size_t p = 0; p < parts; p++) {
            size_t k = (size_t)(rnd() % n_atoms);
            size_t l = k == 25 ? 1 : strlen(atoms[k]);
            if (len + l > sizeof text)
                break;
            int spelled = 1; /* only bytes the vocabulary spells can come back */
            for (size_t q = 0; q < l; q++)
                spelled &= esar_tokenizer_has_byte(t, (uint8_t)atoms[k][q]);
            if (!spelled)
                continue;
            memcpy(text + len, atoms[k], l);
            len += l;
        }
        if (rnd() % 4 == 0) /* and sometimes random bytes, of those the vocabulary spells */
            for (size_t p = 0; p < 16 && len < sizeof text; p++) {
                uint8_t b = (uint8_t)rnd();
                if (esar_tokenizer_has_byte(t, b))
                    text[len++] = (char)b;
            }
        for (int mode = 0; mode < 2; mode++) {
            uint32_t tf = mode ? ESAR_TOKENIZE_PARSE_SPECIAL : 0, df = mode ? ESAR_DETOKENIZE_RENDER_SPECIAL : 0;
            size_t n = 0, m = 0;
            esar_err err = {{0}};
            esar_status s1 = esar_tokenize(t, text, len, tf, toks, 600, &n, &err);
            esar_status s2 = s1 ? s1 : esar_detokenize(t, toks, n, df, back, sizeof back, &m, &err);
            if ((s1 || s2 || m != len || memcmp(back, text, len)) && bad++ < 3)
                EXPECT(0, "%s round trip %d mode %d: %s, %zu bytes back for %zu (%s)", what, it, mode,
                       esar_status_string(s1 ? s1 : s2), m, len, err.msg);
        }
    }
}

static void test_synthetic(void)
{
    gb_tok_opts o = {0};
    esar_tokenizer *t = make_tok(&o, ESAR_OK, NULL);
    if (!t)
        return;
    EXPECT(esar_tokenizer_n_vocab(t) == V_COUNT && esar_tokenizer_bos(t) == V_START && esar_tokenizer_eos(t) == V_END,
           "sizes and ids");
    TOKS("hello", 0, V_HELLO);
    /* " hello": Ġ h would merge at rank 4, but h e (rank 1) takes the h first */
    TOKS(" hello", 0, B(' '), V_HELLO);
    TOKS("aaa", 0, V_AA, B('a'));          /* leftmost pair of equal rank first */
    TOKS("aaaa", 0, V_AA, V_AA);
    TOKS("xy", 0, B('x'), B('y'));         /* "x y" merges to a text with no token: bytes */
    TOKS("12", 0, B('1'), B('2'));         /* \p{N} split off one by one, so "1 2" never applies */
    TOKS("a12", 0, B('a'), B('1'), B('2'));
    TOKS("<|im_start|>he", ESAR_TOKENIZE_PARSE_SPECIAL, V_START, V_HE);
    TOKS("<|im_start|>", 0, B('<'), B('|'), B('i'), B('m'), B('_'), B('s'), B('t'), B('a'), B('r'), B('t'), B('|'),
         B('>'));
    TOKS("x<user>y", 0, B('x'), V_USER, B('y')); /* user-defined tokens cut even without PARSE_SPECIAL */
    TOKS("<|im_end|><|im_end|>", ESAR_TOKENIZE_PARSE_SPECIAL, V_END, V_END);
    TOKS("he", ESAR_TOKENIZE_ADD_BOS, V_START, V_HE);
    TOKS("  he", 0, B(' '), B(' '), V_HE);        /* \s+(?!\S) leaves one space to the word */
    TOKS("\xFF" "a", 0, B(0xFF), B('a'));           /* an invalid byte is kept */

    int32_t few[2];
    size_t n = 0;
    esar_err err;
    EXPECT(esar_tokenize(t, "hello hello hello", 17, 0, few, 2, &n, &err) == ESAR_ERR_LIMIT && n == 5 &&
               few[0] == V_HELLO, "LIMIT reports the count needed");
    EXPECT_OK(esar_tokenize(t, NULL, 0, 0, NULL, 0, &n, &err), &err);
    EXPECT(n == 0, "empty text, no tokens");
    const char *piece;
    size_t len;
    EXPECT_OK(esar_token_piece(t, V_START, 0, &piece, &len, &err), &err);
    EXPECT(len == 0, "control tokens are hidden by default");
    EXPECT_OK(esar_token_piece(t, V_START, ESAR_DETOKENIZE_RENDER_SPECIAL, &piece, &len, &err), &err);
    EXPECT(len == 12 && !memcmp(piece, "<|im_start|>", 12), "rendered control token");
    EXPECT_OK(esar_token_piece(t, B(' '), 0, &piece, &len, &err), &err);
    EXPECT(len == 1 && piece[0] == ' ', "Ġ decodes to a space");
    EXPECT(esar_token_piece(t, V_COUNT, 0, &piece, &len, &err) == ESAR_ERR_ARG && strstr(err.msg, "outside"),
           "id out of range: %s", err.msg);
    int32_t bad[2] = {V_HE, -5};
    char buf[8];
    EXPECT(esar_detokenize(t, bad, 2, 0, buf, sizeof buf, &len, &err) == ESAR_ERR_ARG && strstr(err.msg, "position 1"),
           "bad id position: %s", err.msg);
    round_trips(t, 3000, "synthetic");
    esar_tokenizer_destroy(t);

    gb_tok_opts m = {.model = "llama"};
    make_tok(&m, ESAR_ERR_UNSUPPORTED, "'llama'");
    gb_tok_opts p = {.pre = "qwen2"};
    make_tok(&p, ESAR_ERR_UNSUPPORTED, "'qwen2'");
    gb_tok_opts bm = {.bad_merge = 1};
    make_tok(&bm, ESAR_ERR_FORMAT, "merge #8 'nospace'");
    gb_tok_opts bb = {.bos = V_COUNT};
    make_tok(&bb, ESAR_ERR_FORMAT, "bos_token_id");
    gb_tok_opts db = {.drop_byte = 1};
    t = make_tok(&db, ESAR_OK, NULL);
    if (t) {
        EXPECT(!esar_tokenizer_has_byte(t, 'z') && esar_tokenizer_has_byte(t, 'y'), "has_byte");
        TOKS("az", 0, B('a'), B(0xEF), B(0xBF), B(0xBD)); /* a byte without a token shows as U+FFFD */
        EXPECT(esar_tokenize(t, "xyz", 3, ESAR_TOKENIZE_STRICT, NULL, 0, &n, &err) == ESAR_ERR_UNSUPPORTED &&
                   strstr(err.msg, "byte 0x7a at offset 2"), "strict: %s", err.msg);
        esar_tokenizer_destroy(t);
    }
    gb_tok_opts df = {.drop_byte = 1, .drop_fffd = 1};
    make_tok(&df, ESAR_ERR_FORMAT, "byte 0xbf");
    gb_tok_opts st = {.short_types = 1};
    make_tok(&st, ESAR_ERR_FORMAT, "token types");
    gb_tok_opts bt = {.bad_type = 1};
    make_tok(&bt, ESAR_ERR_FORMAT, "type 9");
}

static void test_chat_synthetic(void)
{
    esar_err err;
    esar_chat *c = NULL;
    /* the same template as SmolLM2's, formatted differently, with a different default */
    const char *tpl = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
                      "{{ \"<|im_start|>system\\nBe brief.<|im_end|>\\n\" }}{% endif %}"
                      "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
                      "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
    EXPECT_OK(esar_chat_create(tpl, strlen(tpl), &c, &err), &err);
    EXPECT(esar_chat_kind_of(c) == ESAR_CHAT_CHATML && !strcmp(esar_chat_default_system(c), "Be brief."),
           "default system '%s'", esar_chat_default_system(c));
    esar_chat_msg msgs[2] = {{"user", "Hi"}, {"assistant", "Yo"}};
    char buf[256];
    size_t len = 0;
    EXPECT_OK(esar_chat_format(c, msgs, 2, 1, buf, sizeof buf, &len, &err), &err);
    const char *want = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                       "<|im_start|>assistant\nYo<|im_end|>\n<|im_start|>assistant\n";
    EXPECT(len == strlen(want) && !memcmp(buf, want, len), "format: %.*s", (int)len, buf);
    EXPECT(esar_chat_format(c, msgs, 2, 1, buf, 10, &len, &err) == ESAR_ERR_LIMIT && len == strlen(want), "LIMIT");
    esar_chat_destroy(c);

    const char *plain = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
                        "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' "
                        "}}{% endif %}";
    EXPECT_OK(esar_chat_create(plain, strlen(plain), &c, &err), &err);
    EXPECT(c && !esar_chat_default_system(c)[0], "plain ChatML has no default system");
    EXPECT_OK(esar_chat_format(c, msgs, 1, 0, buf, sizeof buf, &len, &err), &err);
    EXPECT(len == 30 && !memcmp(buf, "<|im_start|>user\nHi<|im_end|>\n", 30), "plain: %.*s", (int)len, buf);
    esar_chat_destroy(c);

    const char *unknown[] = {
        "{% for message in messages %}{{'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + "
        "message['content'] | trim + '<|eot_id|>'}}{% endfor %}",
        /* ChatML, but with text outside the tags: it would render, so it is not the same template */
        "{% for message in messages %}\n{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
        "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
        "{%- for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
        "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
        "",
        /* unterminated literals (libFuzzer found the first overflowing the normalizer) */
        "{{ 'abc", "{{ '", "{% if x == \"", "{{ 'a\\",
    };
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        c = (esar_chat *)1;
        EXPECT(esar_chat_create(unknown[i], strlen(unknown[i]), &c, &err) == ESAR_ERR_UNSUPPORTED && !c &&
                   strstr(err.msg, "not one this runner knows"),
               "unknown template %zu: %s", i, err.msg);
    }
}

static int unhex(const char *h, char *out, size_t cap, size_t *n)
{
    *n = 0;
    if (!strcmp(h, "-"))
        return 1;
    size_t l = strlen(h);
    if (l % 2 || l / 2 > cap)
        return 0;
    for (size_t i = 0; i < l; i += 2) {
        unsigned v;
        if (sscanf(h + i, "%2x", &v) != 1)
            return 0;
        out[(*n)++] = (char)v;
    }
    return 1;
}

/* The model: tokens_ref.txt against llama.cpp, chat prompts against jinja2, round trips. */
static int test_model(void)
{
    char buf[4096];
    const char *path = runner_model_path(ESA_SOURCE_DIR, buf, sizeof buf);
    if (!path)
        return 0;
    esar_err err;
    esar_gguf *g = NULL;
    esar_tokenizer *t = NULL;
    esar_chat *c = NULL;
    EXPECT_OK(esar_gguf_open(path, &g, &err), &err);
    if (g)
        EXPECT_OK(esar_tokenizer_create(g, &t, &err), &err);
    if (g)
        EXPECT_OK(esar_chat_create_from_gguf(g, &c, &err), &err);
    esar_gguf_close(g);
    if (!t || !c) {
        esar_tokenizer_destroy(t);
        esar_chat_destroy(c);
        return 1;
    }
    EXPECT(esar_tokenizer_n_vocab(t) == 49152 && esar_tokenizer_bos(t) == 1 && esar_tokenizer_eos(t) == 2 &&
               !esar_tokenizer_add_bos(t), "model vocabulary facts");
    EXPECT(!strcmp(esar_chat_default_system(c), "You are a helpful AI assistant named SmolLM, trained by Hugging Face"),
           "default system: '%s'", esar_chat_default_system(c));

    char ref[4096];
    snprintf(ref, sizeof ref, "%s/tests/data/tokens_ref.txt", ESA_SOURCE_DIR);
    FILE *fp = fopen(ref, "r");
    EXPECT(fp, "cannot open %s", ref);
    static char line[1 << 16];
    static char text[1 << 14], text2[1 << 14];
    static int32_t want[4096], got[4096];
    int cases = 0, agree = 0, chats = 0, chats_ok = 0;
    while (fp && fgets(line, sizeof line, fp)) {
        if (line[0] == '#')
            continue;
        char *save = NULL, *tokp = strtok_r(line, " \n", &save);
        if (!tokp)
            continue;
        size_t len = 0, nw = 0, n = 0;
        esar_chat_msg msgs[8];
        static char roles[8][256], contents[8][1024];
        int is_chat = !strcmp(tokp, "chat"), add_gen = 0, n_msgs = 0, ok = 1;
        uint32_t flags = 0;
        if (is_chat) {
            add_gen = atoi(strtok_r(NULL, " \n", &save));
            n_msgs = atoi(strtok_r(NULL, " \n", &save));
            for (int i = 0; i < n_msgs && i < 8; i++) {
                size_t lr, lc;
                ok &= unhex(strtok_r(NULL, " \n", &save), roles[i], 255, &lr);
                ok &= unhex(strtok_r(NULL, " \n", &save), contents[i], 1023, &lc);
                roles[i][lr] = 0;
                contents[i][lc] = 0;
                msgs[i] = (esar_chat_msg){roles[i], contents[i]};
            }
            flags = ESAR_TOKENIZE_PARSE_SPECIAL;
        } else {
            flags = atoi(tokp) ? ESAR_TOKENIZE_PARSE_SPECIAL : 0;
        }
        ok &= unhex(strtok_r(NULL, " \n", &save), text, sizeof text, &len);
        nw = (size_t)atol(strtok_r(NULL, " \n", &save));
        for (size_t i = 0; i < nw && i < 4096; i++) {
            char *s = strtok_r(NULL, " \n", &save);
            want[i] = s ? atoi(s) : -1;
        }
        EXPECT(ok && nw < 4096, "bad reference line %d", cases + chats);
        if (is_chat) {
            size_t l2 = 0;
            chats++;
            EXPECT_OK(esar_chat_format(c, msgs, (size_t)n_msgs, add_gen, text2, sizeof text2, &l2, &err), &err);
            int same_text = l2 == len && !memcmp(text, text2, len);
            EXPECT(same_text, "chat %d: prompt differs from jinja2's:\n%.*s\n---\n%.*s", chats, (int)l2, text2,
                   (int)len, text);
            EXPECT_OK(esar_chat_tokenize(c, t, msgs, (size_t)n_msgs, add_gen, got, 4096, &n, &err), &err);
            int same = n == nw && !memcmp(got, want, n * sizeof *got);
            EXPECT(same, "chat %d: chat_tokenize gives %zu tokens, llama.cpp %zu", chats, n, nw);
            chats_ok += same_text && same;
        }
        cases++;
        n = 0;
        esar_status s = esar_tokenize(t, text, len, flags, got, 4096, &n, &err);
        int same = s == ESAR_OK && n == nw && !memcmp(got, want, n * sizeof *got);
        agree += same;
        if (!same) {
            EXPECT(0, "case %d (special %u) '%.*s': %zu tokens, llama.cpp %zu", cases, flags, (int)len, text, n, nw);
            for (size_t i = 0; i < n || i < nw; i++)
                if (i >= n || i >= nw || got[i] != want[i]) {
                    fprintf(stderr, "  first difference at %zu: %d vs llama.cpp %d\n", i, i < n ? got[i] : -1,
                            i < nw ? want[i] : -1);
                    break;
                }
        }
        size_t m = 0;
        uint32_t df = flags ? ESAR_DETOKENIZE_RENDER_SPECIAL : 0;
        EXPECT_OK(esar_detokenize(t, got, n, df, text2, sizeof text2, &m, &err), &err);
        EXPECT(m == len && !memcmp(text2, text, len), "case %d does not round-trip", cases);
    }
    if (fp)
        fclose(fp);
    fprintf(stderr, "model: %d/%d reference tokenizations agree with llama.cpp; %d/%d chat prompts match\n", agree,
            cases, chats_ok, chats);
    EXPECT(cases >= 150 && chats >= 5, "only %d cases, %d chats in %s", cases, chats, ref);
    round_trips(t, 2000, "model");
    /* SmolLM2 has no token for byte 0x04: U+FFFD stands in (llama.cpp drops the byte), or an error */
    int missing = 0;
    for (int b = 0; b < 256; b++)
        missing += !esar_tokenizer_has_byte(t, (uint8_t)b);
    EXPECT(missing == 21, "%d bytes without a token, expected 21", missing);
    int32_t a[8], f[8];
    size_t na = 0, nf = 0;
    EXPECT_OK(esar_tokenize(t, "a\x04" "b", 3, 0, a, 8, &na, &err), &err);
    EXPECT_OK(esar_tokenize(t, "a\xEF\xBF\xBD" "b", 5, 0, f, 8, &nf, &err), &err);
    EXPECT(na == nf && !memcmp(a, f, na * sizeof *a), "U+0004 tokenizes as U+FFFD");
    EXPECT(esar_tokenize(t, "a\x04" "b", 3, ESAR_TOKENIZE_STRICT, a, 8, &na, &err) == ESAR_ERR_UNSUPPORTED &&
               strstr(err.msg, "0x04 at offset 1"), "strict: %s", err.msg);
    esar_tokenizer_destroy(t);
    esar_chat_destroy(c);
    return 1;
}

/* `test_tokenizer`: no model needed; `test_tokenizer model`: against llama.cpp (skips without
 * the model file). */
int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "model"))
        return test_model() ? runner_finish("test_tokenizer model") : SKIP_CODE;
    test_unicode();
    test_synthetic();
    test_chat_synthetic();
    return runner_finish("test_tokenizer");
}
