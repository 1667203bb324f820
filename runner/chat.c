/* chat.c - recognizes a chat template by content and renders its prompts: ChatML, with or
 * without a default system message. */
#include "chat.h"

#include <stdlib.h>
#include <string.h>

struct esar_chat {
    esar_chat_kind kind;
    int has_system; /* the template inserts a default system message (even an empty one) */
    char *system;   /* that message, "" for none */
};

/* Marks a string literal's start and end in a normalized template. */
#define LIT "\x01"

/* The known templates, normalized. SYS marks where a default system message may stand. */
#define SYS "\x02"
static const char k_chatml_system[] =
    "{%formessageinmessages%}"
    "{%ifloop.firstandmessages[0][" LIT "role" LIT "]!=" LIT "system" LIT "%}"
    "{{" LIT "<|im_start|>system\n" SYS "<|im_end|>\n" LIT "}}{%endif%}"
    "{{" LIT "<|im_start|>" LIT "+message[" LIT "role" LIT "]+" LIT "\n" LIT "+message[" LIT "content" LIT "]+" LIT
    "<|im_end|>" LIT "+" LIT "\n" LIT "}}{%endfor%}"
    "{%ifadd_generation_prompt%}{{" LIT "<|im_start|>assistant\n" LIT "}}{%endif%}";
static const char k_chatml[] =
    "{%formessageinmessages%}"
    "{{" LIT "<|im_start|>" LIT "+message[" LIT "role" LIT "]+" LIT "\n" LIT "+message[" LIT "content" LIT "]+" LIT
    "<|im_end|>" LIT "+" LIT "\n" LIT "}}{%endfor%}"
    "{%ifadd_generation_prompt%}{{" LIT "<|im_start|>assistant\n" LIT "}}{%endif%}";

/* Normalizes a Jinja template: text outside tags kept as is; inside {{ }} and {% %} white space
 * dropped and string literals replaced by LIT + their unescaped content + LIT. out holds at
 * least len + 1 bytes (a literal's two quotes become two LIT bytes, escapes only shrink).
 * Returns SIZE_MAX for a literal that never ends: no template this file knows. */
static size_t normalize(const char *s, size_t len, char *out)
{
    size_t o = 0;
    int in_tag = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!in_tag) {
            if (c == '{' && i + 1 < len && (s[i + 1] == '{' || s[i + 1] == '%')) {
                in_tag = 1;
                out[o++] = c;
                out[o++] = s[++i];
                continue;
            }
            out[o++] = c;
            continue;
        }
        if ((c == '}' || c == '%') && i + 1 < len && s[i + 1] == '}') {
            in_tag = 0;
            out[o++] = c;
            out[o++] = s[++i];
            continue;
        }
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
            continue;
        if (c == '\'' || c == '"') {
            char q = c;
            out[o++] = LIT[0];
            for (i++; i < len && s[i] != q; i++) {
                char d = s[i];
                if (d == '\\' && i + 1 < len) {
                    char e = s[++i];
                    d = e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e;
                }
                out[o++] = d;
            }
            if (i >= len)
                return SIZE_MAX;
            out[o++] = LIT[0];
            continue;
        }
        out[o++] = c;
    }
    out[o] = 0;
    return o;
}

/* Matches normalized text against a pattern holding at most one SYS; on a match the text at SYS
 * (which must not cross a literal's end) goes to *sys. */
static int match(const char *text, size_t n, const char *pat, const char **sys, size_t *sys_len)
{
    const char *hole = strchr(pat, SYS[0]);
    if (!hole) {
        if (strlen(pat) != n || memcmp(text, pat, n))
            return 0;
        *sys = "";
        *sys_len = 0;
        return 1;
    }
    size_t pre = (size_t)(hole - pat), post = strlen(hole + 1);
    if (n < pre + post || memcmp(text, pat, pre) || memcmp(text + n - post, hole + 1, post) ||
        memchr(text + pre, LIT[0], n - pre - post))
        return 0;
    *sys = text + pre;
    *sys_len = n - pre - post;
    return 1;
}

esar_status esar_chat_create(const char *tpl, size_t len, esar_chat **out, esar_err *err)
{
    if (!out || (!tpl && len))
        return esar_fail(err, ESAR_ERR_ARG, "chat: NULL argument");
    *out = NULL;
    char *norm = malloc(len + 1);
    esar_chat *c = calloc(1, sizeof *c);
    if (!norm || !c) {
        free(norm);
        free(c);
        return esar_fail(err, ESAR_ERR_NOMEM, "chat: out of memory");
    }
    size_t n = normalize(tpl ? tpl : "", len, norm);
    const char *sys = NULL;
    size_t sys_len = 0;
    if (n != SIZE_MAX) {
        if (match(norm, n, k_chatml_system, &sys, &sys_len)) {
            c->kind = ESAR_CHAT_CHATML;
            c->has_system = 1;
        } else if (match(norm, n, k_chatml, &sys, &sys_len)) {
            c->kind = ESAR_CHAT_CHATML;
        }
    }
    if (c->kind) {
        c->system = malloc(sys_len + 1);
        if (c->system) {
            memcpy(c->system, sys, sys_len);
            c->system[sys_len] = 0;
        }
    }
    free(norm);
    if (!c->kind) {
        free(c);
        /* the opening, with control characters shown as '.' */
        char head[81];
        size_t k = 0;
        for (; k < len && k < 80; k++)
            head[k] = (unsigned char)tpl[k] < 0x20 ? '.' : tpl[k];
        head[k] = 0;
        return esar_fail(err, ESAR_ERR_UNSUPPORTED,
                         "chat: the chat template (%zu bytes) is not one this runner knows (ChatML); it begins "
                         "\"%s\"", len, head);
    }
    if (!c->system) {
        free(c);
        return esar_fail(err, ESAR_ERR_NOMEM, "chat: out of memory");
    }
    *out = c;
    return ESAR_OK;
}

esar_status esar_chat_create_from_gguf(const esar_gguf *g, esar_chat **out, esar_err *err)
{
    esar_gguf_str s;
    if (out)
        *out = NULL;
    esar_status st = esar_gguf_get_str(g, "tokenizer.chat_template", &s, err);
    if (st)
        return st;
    if (s.len > SIZE_MAX - 1)
        return esar_fail(err, ESAR_ERR_LIMIT, "chat: template too long");
    return esar_chat_create(s.ptr, (size_t)s.len, out, err);
}

void esar_chat_destroy(esar_chat *c)
{
    if (!c)
        return;
    free(c->system);
    free(c);
}

esar_chat_kind esar_chat_kind_of(const esar_chat *c) { return c ? c->kind : (esar_chat_kind)0; }
const char *esar_chat_default_system(const esar_chat *c) { return c ? c->system : ""; }

/* The prompt as a sequence of parts: markers (special tokens) and text. Both the text renderer
 * and the tokenizer walk this one sequence, so they cannot disagree. */
typedef struct sink {
    int (*marker)(struct sink *, const char *);
    int (*text)(struct sink *, const char *, size_t);
} sink;

static int walk(const esar_chat *c, const esar_chat_msg *msgs, size_t n, int add_gen, sink *k)
{
    for (size_t i = 0; i < n; i++) {
        if (i == 0 && c->has_system && strcmp(msgs[0].role, "system") != 0)
            if (!k->marker(k, "<|im_start|>") || !k->text(k, "system\n", 7) ||
                !k->text(k, c->system, strlen(c->system)) || !k->marker(k, "<|im_end|>") || !k->text(k, "\n", 1))
                return 0;
        if (!k->marker(k, "<|im_start|>") || !k->text(k, msgs[i].role, strlen(msgs[i].role)) || !k->text(k, "\n", 1) ||
            !k->text(k, msgs[i].content, strlen(msgs[i].content)) || !k->marker(k, "<|im_end|>") ||
            !k->text(k, "\n", 1))
            return 0;
    }
    if (add_gen && (!k->marker(k, "<|im_start|>") || !k->text(k, "assistant\n", 10)))
        return 0;
    return 1;
}

static esar_status check_msgs(const esar_chat *c, const esar_chat_msg *msgs, size_t n, esar_err *err)
{
    if (!c || (!msgs && n))
        return esar_fail(err, ESAR_ERR_ARG, "chat: NULL argument");
    for (size_t i = 0; i < n; i++)
        if (!msgs[i].role || !msgs[i].content)
            return esar_fail(err, ESAR_ERR_ARG, "chat: message %zu has a NULL role or content", i);
    return ESAR_OK;
}

typedef struct text_sink {
    sink base;
    char *buf;
    size_t cap, len;
} text_sink;

static int ts_text(sink *k, const char *s, size_t n)
{
    text_sink *t = (text_sink *)k;
    if (t->len < t->cap)
        memcpy(t->buf + t->len, s, n < t->cap - t->len ? n : t->cap - t->len);
    t->len += n;
    return 1;
}
static int ts_marker(sink *k, const char *m) { return ts_text(k, m, strlen(m)); }

esar_status esar_chat_format(const esar_chat *c, const esar_chat_msg *msgs, size_t n, int add_generation_prompt,
                             char *buf, size_t cap, size_t *len_out, esar_err *err)
{
    esar_status st = check_msgs(c, msgs, n, err);
    if (st)
        return st;
    if (!len_out || (!buf && cap))
        return esar_fail(err, ESAR_ERR_ARG, "chat_format: NULL buffer or length");
    text_sink t = {{ts_marker, ts_text}, buf, cap, 0};
    walk(c, msgs, n, add_generation_prompt, &t.base);
    *len_out = t.len;
    if (t.len > cap)
        return esar_fail(err, ESAR_ERR_LIMIT, "chat_format: the prompt needs %zu bytes, the buffer holds %zu", t.len,
                         cap);
    return ESAR_OK;
}

typedef struct tok_sink {
    sink base;
    const esar_tokenizer *tok;
    char *pending; /* text since the last marker */
    size_t n_pending, cap_pending;
    int32_t *out;
    size_t n_out, cap_out;
    esar_status st;
    esar_err *err;
} tok_sink;

static int push(tok_sink *k, int32_t id)
{
    if (k->n_out == k->cap_out) {
        size_t c = k->cap_out ? 2 * k->cap_out : 64;
        int32_t *p = realloc(k->out, c * sizeof *p);
        if (!p) {
            k->st = esar_fail(k->err, ESAR_ERR_NOMEM, "chat_tokenize: out of memory");
            return 0;
        }
        k->out = p;
        k->cap_out = c;
    }
    k->out[k->n_out++] = id;
    return 1;
}

static int flush(tok_sink *k)
{
    if (!k->n_pending)
        return 1;
    size_t need = 0;
    esar_status st = esar_tokenize(k->tok, k->pending, k->n_pending, 0, NULL, 0, &need, k->err);
    if (st && st != ESAR_ERR_LIMIT) {
        k->st = st;
        return 0;
    }
    for (size_t i = 0; i < need; i++) /* make room, then tokenize into place */
        if (!push(k, 0))
            return 0;
    k->n_out -= need;
    if ((k->st = esar_tokenize(k->tok, k->pending, k->n_pending, 0, k->out + k->n_out, need, &need, k->err)))
        return 0;
    k->n_out += need;
    k->n_pending = 0;
    return 1;
}

static int tk_text(sink *b, const char *s, size_t n)
{
    tok_sink *k = (tok_sink *)b;
    if (k->n_pending + n > k->cap_pending) {
        size_t c = k->cap_pending ? k->cap_pending : 256;
        while (c < k->n_pending + n)
            c *= 2;
        char *p = realloc(k->pending, c);
        if (!p) {
            k->st = esar_fail(k->err, ESAR_ERR_NOMEM, "chat_tokenize: out of memory");
            return 0;
        }
        k->pending = p;
        k->cap_pending = c;
    }
    memcpy(k->pending + k->n_pending, s, n);
    k->n_pending += n;
    return 1;
}

static int tk_marker(sink *b, const char *m)
{
    tok_sink *k = (tok_sink *)b;
    int32_t id = esar_tokenizer_find(k->tok, m, strlen(m));
    int type = esar_tokenizer_token_type(k->tok, id);
    if (id < 0 || (type != ESAR_TOKEN_CONTROL && type != ESAR_TOKEN_USER_DEFINED)) {
        k->st = esar_fail(k->err, ESAR_ERR_UNSUPPORTED,
                          "chat_tokenize: the template's marker %s is not a special token of this vocabulary", m);
        return 0;
    }
    return flush(k) && push(k, id);
}

esar_status esar_chat_tokenize(const esar_chat *c, const esar_tokenizer *t, const esar_chat_msg *msgs, size_t n,
                               int add_generation_prompt, int32_t *tokens, size_t cap, size_t *n_out,
                               esar_err *err)
{
    esar_status st = check_msgs(c, msgs, n, err);
    if (st)
        return st;
    if (!t || !n_out || (!tokens && cap))
        return esar_fail(err, ESAR_ERR_ARG, "chat_tokenize: NULL argument");
    *n_out = 0;
    tok_sink k = {{tk_marker, tk_text}, t, NULL, 0, 0, NULL, 0, 0, ESAR_OK, err};
    if (walk(c, msgs, n, add_generation_prompt, &k.base))
        flush(&k);
    st = k.st;
    if (!st) {
        *n_out = k.n_out;
        size_t m = k.n_out < cap ? k.n_out : cap;
        if (m)
            memcpy(tokens, k.out, m * sizeof *tokens);
        if (k.n_out > cap)
            st = esar_fail(err, ESAR_ERR_LIMIT, "chat_tokenize: the prompt needs %zu tokens, the buffer holds %zu",
                           k.n_out, cap);
    }
    free(k.pending);
    free(k.out);
    return st;
}
