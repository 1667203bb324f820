/* tokenizer.c - byte-level BPE: vocabulary and merge tables from GGUF, special-token
 * partition, the hand-written pre-tokenizer (llama.cpp's unicode_regex_split_custom_gpt2 and its
 * \p{N} split), BPE merging by rank with a binary heap, and the byte map back for decoding. */
#include "tokenizer.h"

#include "unicode.h"

#include <stdlib.h>
#include <string.h>

typedef struct strref {
    uint32_t off, len; /* into arena */
} strref;

struct esar_tokenizer {
    uint32_t n_vocab;
    char *arena;
    strref *text;          /* [n_vocab] stored text (byte-encoded for normal tokens) */
    strref *piece;         /* [n_vocab] the bytes the token stands for */
    uint8_t *type;         /* [n_vocab] ESAR_TOKEN_* */
    uint32_t *vocab_ht;    /* [vocab_mask + 1] id + 1, 0 = empty; open addressing */
    uint32_t vocab_mask;
    uint32_t n_merges;
    strref *merge_a, *merge_b; /* [n_merges] the two sides of merge rank i */
    uint32_t *merge_ht;    /* [merge_mask + 1] rank + 1 */
    uint32_t merge_mask;
    int32_t bos, eos, unk;
    int add_bos;
    int split_digits;      /* the "smollm" family: \p{N} split off before the GPT-2 split */
    int32_t *specials;     /* [n_specials] control/unknown/user-defined ids, longest text first */
    uint32_t n_specials;
    int32_t byte_token[256]; /* -1 for a byte no token spells (SmolLM2 lacks 21 of them) */
    int all_bytes;           /* every byte has its token */
    char byte_enc[256][2]; /* UTF-8 of GPT-2's code point for each byte */
    uint8_t byte_enc_len[256];
};

/* ---- hashing ------------------------------------------------------------------------------ */

static uint64_t fnv(uint64_t h, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 0x100000001b3ull;
    return h;
}
#define FNV0 0xcbf29ce484222325ull

static uint64_t pair_hash(const char *a, size_t na, const char *b, size_t nb)
{
    return fnv(fnv(FNV0, a, na) * 0x9e3779b97f4a7c15ull + na, b, nb);
}

static int ref_eq(const esar_tokenizer *t, strref r, const char *s, size_t n)
{
    return r.len == n && (n == 0 || memcmp(t->arena + r.off, s, n) == 0);
}

int32_t esar_tokenizer_find(const esar_tokenizer *t, const char *text, size_t len)
{
    if (!t || (!text && len))
        return -1;
    for (uint64_t h = fnv(FNV0, text, len);; h++) {
        uint32_t v = t->vocab_ht[h & t->vocab_mask];
        if (!v)
            return -1;
        if (ref_eq(t, t->text[v - 1], text, len))
            return (int32_t)(v - 1);
    }
}

/* The rank of merging a and b, or -1. */
static int64_t merge_rank(const esar_tokenizer *t, const char *a, size_t na, const char *b, size_t nb)
{
    if (!t->n_merges)
        return -1;
    for (uint64_t h = pair_hash(a, na, b, nb);; h++) {
        uint32_t v = t->merge_ht[h & t->merge_mask];
        if (!v)
            return -1;
        if (ref_eq(t, t->merge_a[v - 1], a, na) && ref_eq(t, t->merge_b[v - 1], b, nb))
            return (int64_t)(v - 1);
    }
}

static uint32_t table_size(uint64_t n) /* a power of two >= 2n, >= 16 */
{
    uint32_t s = 16;
    while (s < 2 * n)
        s *= 2;
    return s;
}

/* ---- create ------------------------------------------------------------------------------- */

static int cmp_special(const void *pa, const void *pb)
{
    const int64_t *a = pa, *b = pb; /* {length, id} */
    if (a[0] != b[0])
        return a[0] > b[0] ? -1 : 1;
    return a[1] < b[1] ? -1 : a[1] > b[1];
}

static esar_status get_id(const esar_gguf *g, const char *key, uint32_t n_vocab, int32_t *out, esar_err *err)
{
    uint32_t v;
    *out = -1;
    if (!esar_gguf_find(g, key))
        return ESAR_OK;
    esar_status st = esar_gguf_get_u32(g, key, &v, err);
    if (st)
        return st;
    if (v >= n_vocab)
        return esar_fail(err, ESAR_ERR_FORMAT, "tokenizer: %s = %u is not below the vocabulary size %u", key, v,
                         n_vocab);
    *out = (int32_t)v;
    return ESAR_OK;
}

/* The bytes a normal token stands for: each code point of its text mapped back through the
 * byte table; a code point off the table (a vocabulary quirk) is kept as its UTF-8. */
static uint32_t decode_text(const char *s, uint32_t n, char *out)
{
    uint32_t o = 0;
    for (uint32_t i = 0; i < n;) {
        uint32_t cp;
        int r = esar_utf8_decode((const uint8_t *)s + i, n - i, &cp);
        if (r < 0) {
            out[o++] = s[i++];
            continue;
        }
        int b = esar_unicode_to_byte(cp);
        if (b >= 0)
            out[o++] = (char)b;
        else
            for (int k = 0; k < r; k++)
                out[o++] = s[i + (uint32_t)k];
        i += (uint32_t)r;
    }
    return o;
}

static esar_status create(const esar_gguf *g, esar_tokenizer *t, esar_err *err)
{
    esar_status st;
    esar_gguf_str model, pre;
    const esar_gguf_value *toks, *types = NULL, *merges = NULL;
    esar_gguf_value e;

    if ((st = esar_gguf_get_str(g, "tokenizer.ggml.model", &model, err)))
        return st;
    if (!esar_gguf_str_eq(model, "gpt2"))
        return esar_fail(err, ESAR_ERR_UNSUPPORTED,
                         "tokenizer: tokenizer.ggml.model '%.*s' is not supported (only 'gpt2', byte-level BPE)",
                         (int)(model.len > 64 ? 64 : model.len), model.ptr);
    if ((st = esar_gguf_get_str(g, "tokenizer.ggml.pre", &pre, err)))
        return st;
    /* the pre-tokenizers llama.cpp gives exactly these expressions */
    if (esar_gguf_str_eq(pre, "smollm") || esar_gguf_str_eq(pre, "codeshell") || esar_gguf_str_eq(pre, "exaone") ||
        esar_gguf_str_eq(pre, "minerva-7b"))
        t->split_digits = 1;
    else if (esar_gguf_str_eq(pre, "gpt-2"))
        t->split_digits = 0;
    else
        return esar_fail(err, ESAR_ERR_UNSUPPORTED,
                         "tokenizer: pre-tokenizer '%.*s' is not supported (known: smollm, codeshell, exaone, "
                         "minerva-7b, gpt-2)",
                         (int)(pre.len > 64 ? 64 : pre.len), pre.ptr);

    if ((st = esar_gguf_get_array(g, "tokenizer.ggml.tokens", ESAR_GGUF_STRING, &toks, err)))
        return st;
    uint64_t n = toks->v.arr.count;
    if (n == 0 || n > INT32_MAX - 1)
        return esar_fail(err, ESAR_ERR_FORMAT, "tokenizer: %llu tokens (want 1 .. 2^31 - 2)", (unsigned long long)n);
    t->n_vocab = (uint32_t)n;
    if (esar_gguf_find(g, "tokenizer.ggml.token_type")) {
        if ((st = esar_gguf_get_array(g, "tokenizer.ggml.token_type", ESAR_GGUF_I32, &types, err)))
            return st;
        if (types->v.arr.count != n)
            return esar_fail(err, ESAR_ERR_FORMAT, "tokenizer: %llu token types for %llu tokens",
                             (unsigned long long)types->v.arr.count, (unsigned long long)n);
    }
    if (esar_gguf_find(g, "tokenizer.ggml.merges")) {
        if ((st = esar_gguf_get_array(g, "tokenizer.ggml.merges", ESAR_GGUF_STRING, &merges, err)))
            return st;
        if (merges->v.arr.count > INT32_MAX - 1)
            return esar_fail(err, ESAR_ERR_FORMAT, "tokenizer: too many merges");
        t->n_merges = (uint32_t)merges->v.arr.count;
    }
    if ((st = get_id(g, "tokenizer.ggml.bos_token_id", t->n_vocab, &t->bos, err)) ||
        (st = get_id(g, "tokenizer.ggml.eos_token_id", t->n_vocab, &t->eos, err)) ||
        (st = get_id(g, "tokenizer.ggml.unknown_token_id", t->n_vocab, &t->unk, err)))
        return st;
    if (esar_gguf_find(g, "tokenizer.ggml.add_bos_token") &&
        (st = esar_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &t->add_bos, err)))
        return st;

    /* arena: token texts, their pieces (never longer than the text), merge sides */
    uint64_t bytes = 0;
    for (uint64_t i = 0; i < n; i++)
        bytes += 2 * toks->v.arr.items[i].v.str.len;
    for (uint32_t i = 0; i < t->n_merges; i++)
        bytes += merges->v.arr.items[i].v.str.len;
    if (bytes >= UINT32_MAX)
        return esar_fail(err, ESAR_ERR_UNSUPPORTED, "tokenizer: %llu bytes of vocabulary text (at most 4 GiB)",
                         (unsigned long long)bytes);
    t->arena = malloc((size_t)bytes + 1);
    t->text = calloc((size_t)n, sizeof *t->text);
    t->piece = calloc((size_t)n, sizeof *t->piece);
    t->type = calloc((size_t)n, 1);
    t->vocab_mask = table_size(n) - 1;
    t->vocab_ht = calloc((size_t)t->vocab_mask + 1, sizeof *t->vocab_ht);
    t->merge_a = calloc((size_t)t->n_merges + 1, sizeof *t->merge_a);
    t->merge_b = calloc((size_t)t->n_merges + 1, sizeof *t->merge_b);
    t->merge_mask = table_size(t->n_merges) - 1;
    t->merge_ht = calloc((size_t)t->merge_mask + 1, sizeof *t->merge_ht);
    t->specials = calloc((size_t)n, sizeof *t->specials);
    int64_t *sp = calloc((size_t)n, 2 * sizeof(int64_t));
    if (!t->arena || !t->text || !t->piece || !t->type || !t->vocab_ht || !t->merge_a || !t->merge_b ||
        !t->merge_ht || !t->specials || !sp) {
        free(sp);
        return esar_fail(err, ESAR_ERR_NOMEM, "tokenizer: out of memory for %llu tokens", (unsigned long long)n);
    }
    uint32_t at = 0;
    for (uint32_t i = 0; i < t->n_vocab; i++) {
        esar_gguf_str s = toks->v.arr.items[i].v.str;
        int32_t type = ESAR_TOKEN_NORMAL;
        if (types) {
            esar_gguf_array_get(types, i, &e, NULL);
            if (e.v.i < ESAR_TOKEN_UNDEFINED || e.v.i > ESAR_TOKEN_BYTE) {
                free(sp);
                return esar_fail(err, ESAR_ERR_FORMAT, "tokenizer: token %u has type %lld (want 0..6)", i,
                                 (long long)e.v.i);
            }
            type = (int32_t)e.v.i;
        }
        t->type[i] = (uint8_t)type;
        t->text[i] = (strref){at, (uint32_t)s.len};
        memcpy(t->arena + at, s.ptr, (size_t)s.len);
        at += (uint32_t)s.len;
        /* the piece */
        uint32_t plen;
        if (type == ESAR_TOKEN_NORMAL) {
            plen = decode_text(s.ptr, (uint32_t)s.len, t->arena + at);
        } else if (type == ESAR_TOKEN_BYTE && s.len == 6 && !memcmp(s.ptr, "<0x", 3) && s.ptr[5] == '>') {
            char hex[3] = {s.ptr[3], s.ptr[4], 0}, *end;
            long b = strtol(hex, &end, 16);
            if (*end) {
                free(sp);
                return esar_fail(err, ESAR_ERR_FORMAT, "tokenizer: byte token %u '%.6s' is not <0xHH>", i, s.ptr);
            }
            t->arena[at] = (char)b;
            plen = 1;
        } else {
            memcpy(t->arena + at, s.ptr, (size_t)s.len);
            plen = (uint32_t)s.len;
        }
        t->piece[i] = (strref){at, plen};
        at += plen;
        /* vocabulary hash: a repeated text maps to its last id, as in llama.cpp */
        for (uint64_t h = fnv(FNV0, s.ptr, (size_t)s.len);; h++) {
            uint32_t *slot = &t->vocab_ht[h & t->vocab_mask];
            if (!*slot || ref_eq(t, t->text[*slot - 1], s.ptr, (size_t)s.len)) {
                *slot = i + 1;
                break;
            }
        }
        if ((type == ESAR_TOKEN_CONTROL || type == ESAR_TOKEN_UNKNOWN || type == ESAR_TOKEN_USER_DEFINED) && s.len) {
            sp[2 * t->n_specials] = (int64_t)s.len;
            sp[2 * t->n_specials + 1] = i;
            t->n_specials++;
        }
    }
    qsort(sp, t->n_specials, 2 * sizeof(int64_t), cmp_special);
    for (uint32_t i = 0; i < t->n_specials; i++)
        t->specials[i] = (int32_t)sp[2 * i + 1];
    free(sp);

    for (uint32_t r = 0; r < t->n_merges; r++) {
        esar_gguf_str s = merges->v.arr.items[r].v.str;
        /* "left right", split at the first space after the first byte (llama.cpp's rule) */
        const char *space = s.len > 1 ? memchr(s.ptr + 1, ' ', (size_t)s.len - 1) : NULL;
        if (!space)
            return esar_fail(err, ESAR_ERR_FORMAT, "tokenizer: merge #%u '%.*s' has no space between its two sides", r,
                             (int)(s.len > 40 ? 40 : s.len), s.ptr);
        uint32_t na = (uint32_t)(space - s.ptr), nb = (uint32_t)s.len - na - 1;
        memcpy(t->arena + at, s.ptr, (size_t)s.len);
        t->merge_a[r] = (strref){at, na};
        t->merge_b[r] = (strref){at + na + 1, nb};
        at += (uint32_t)s.len;
        /* a repeated merge keeps its first (lowest) rank, as in llama.cpp */
        for (uint64_t h = pair_hash(s.ptr, na, space + 1, nb);; h++) {
            uint32_t *slot = &t->merge_ht[h & t->merge_mask];
            if (!*slot) {
                *slot = r + 1;
                break;
            }
            if (ref_eq(t, t->merge_a[*slot - 1], s.ptr, na) && ref_eq(t, t->merge_b[*slot - 1], space + 1, nb))
                break;
        }
    }

    t->all_bytes = 1;
    for (int b = 0; b < 256; b++) {
        t->byte_enc_len[b] = (uint8_t)esar_utf8_encode(esar_byte_to_unicode((uint8_t)b), t->byte_enc[b]);
        t->byte_token[b] = esar_tokenizer_find(t, t->byte_enc[b], t->byte_enc_len[b]);
        t->all_bytes &= t->byte_token[b] >= 0;
    }
    /* Bytes without a token are replaced by U+FFFD (EF BF BD), which must then be spellable. */
    static const uint8_t fffd[3] = {0xEF, 0xBF, 0xBD};
    for (int i = 0; i < 3 && !t->all_bytes; i++)
        if (t->byte_token[fffd[i]] < 0)
            return esar_fail(err, ESAR_ERR_FORMAT,
                             "tokenizer: the vocabulary has no token for byte 0x%02x, nor for all bytes of U+FFFD "
                             "to stand in for such bytes",
                             fffd[i]);
    return ESAR_OK;
}

esar_status esar_tokenizer_create(const esar_gguf *g, esar_tokenizer **out, esar_err *err)
{
    if (!out || !g)
        return esar_fail(err, ESAR_ERR_ARG, "tokenizer: NULL file or out");
    *out = NULL;
    esar_tokenizer *t = calloc(1, sizeof *t);
    if (!t)
        return esar_fail(err, ESAR_ERR_NOMEM, "tokenizer: out of memory");
    esar_status st = create(g, t, err);
    if (st) {
        esar_tokenizer_destroy(t);
        return st;
    }
    *out = t;
    return ESAR_OK;
}

void esar_tokenizer_destroy(esar_tokenizer *t)
{
    if (!t)
        return;
    free(t->arena);
    free(t->text);
    free(t->piece);
    free(t->type);
    free(t->vocab_ht);
    free(t->merge_a);
    free(t->merge_b);
    free(t->merge_ht);
    free(t->specials);
    free(t);
}

uint32_t esar_tokenizer_n_vocab(const esar_tokenizer *t) { return t ? t->n_vocab : 0; }
int32_t esar_tokenizer_bos(const esar_tokenizer *t) { return t ? t->bos : -1; }
int32_t esar_tokenizer_eos(const esar_tokenizer *t) { return t ? t->eos : -1; }
int esar_tokenizer_add_bos(const esar_tokenizer *t) { return t ? t->add_bos : 0; }
int esar_tokenizer_token_type(const esar_tokenizer *t, int32_t id)
{
    return t && id >= 0 && (uint32_t)id < t->n_vocab ? t->type[id] : -1;
}

/* ---- encode ------------------------------------------------------------------------------- */

/* Work buffers of one esar_tokenize call. */
typedef struct work {
    int32_t *out;
    size_t n_out, cap_out;
    struct unit {
        uint32_t cp;    /* code point; RAW_BYTE for a byte outside valid UTF-8 */
        uint32_t off;   /* byte offset in the piece */
        uint8_t len;    /* bytes */
        uint8_t flags;  /* ESAR_UC_* */
    } *units;
    size_t cap_units;
    struct sym {
        uint32_t start; /* into enc */
        uint32_t n;     /* bytes of enc; 0 once merged into its left neighbour */
        uint32_t byte0, nbytes; /* the original bytes it covers */
        int32_t prev, next;
    } *syms;
    size_t cap_syms;
    struct bigram {
        uint32_t rank, left, right, nl, nr;
    } *heap;
    size_t n_heap, cap_heap;
    char *enc;
    size_t cap_enc;
} work;

#define RAW_BYTE 0xFFFFFFFEu
#define OUT_OF_RANGE 0xFFFFFFFFu
#define IN_RANGE 0x80u /* added to unit flags inside the current piece */

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 1;
    size_t c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    if (c > SIZE_MAX / elem)
        return 0;
    void *q = realloc(*p, c * elem);
    if (!q)
        return 0;
    *p = q;
    *cap = c;
    return 1;
}

static int push_token(work *w, int32_t id)
{
    if (!grow((void **)&w->out, &w->cap_out, w->n_out + 1, sizeof *w->out))
        return 0;
    w->out[w->n_out++] = id;
    return 1;
}

static int bigram_less(const struct bigram *a, const struct bigram *b)
{
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static int heap_push(work *w, struct bigram b)
{
    if (!grow((void **)&w->heap, &w->cap_heap, w->n_heap + 1, sizeof *w->heap))
        return 0;
    size_t i = w->n_heap++;
    while (i > 0 && bigram_less(&b, &w->heap[(i - 1) / 2])) {
        w->heap[i] = w->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    w->heap[i] = b;
    return 1;
}

static struct bigram heap_pop(work *w)
{
    struct bigram top = w->heap[0], last = w->heap[--w->n_heap];
    size_t i = 0, n = w->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && bigram_less(&w->heap[c + 1], &w->heap[c]))
            c++;
        if (!bigram_less(&w->heap[c], &last))
            break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (n)
        w->heap[i] = last;
    return top;
}

static int add_bigram(const esar_tokenizer *t, work *w, int32_t left, int32_t right)
{
    if (left < 0 || right < 0)
        return 1;
    const struct sym *a = &w->syms[left], *b = &w->syms[right];
    int64_t rank = merge_rank(t, w->enc + a->start, a->n, w->enc + b->start, b->n);
    if (rank < 0)
        return 1;
    struct bigram g = {(uint32_t)rank, (uint32_t)left, (uint32_t)right, a->n, b->n};
    return heap_push(w, g);
}

/* BPE over one pre-tokenized word (raw bytes), appending its token ids. */
static esar_status bpe_word(const esar_tokenizer *t, work *w, const uint8_t *bytes, size_t n, esar_err *err)
{
    if (!grow((void **)&w->enc, &w->cap_enc, 2 * n, 1) || !grow((void **)&w->syms, &w->cap_syms, n, sizeof *w->syms))
        return esar_fail(err, ESAR_ERR_NOMEM, "tokenizer: out of memory for a word of %zu bytes", n);
    uint32_t at = 0;
    for (size_t i = 0; i < n; i++) {
        struct sym *s = &w->syms[i];
        s->start = at;
        s->n = t->byte_enc_len[bytes[i]];
        memcpy(w->enc + at, t->byte_enc[bytes[i]], s->n);
        at += s->n;
        s->byte0 = (uint32_t)i;
        s->nbytes = 1;
        s->prev = (int32_t)i - 1;
        s->next = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    w->n_heap = 0;
    for (size_t i = 1; i < n; i++)
        if (!add_bigram(t, w, (int32_t)i - 1, (int32_t)i))
            return esar_fail(err, ESAR_ERR_NOMEM, "tokenizer: out of memory");
    while (w->n_heap) {
        struct bigram g = heap_pop(w);
        struct sym *a = &w->syms[g.left], *b = &w->syms[g.right];
        /* stale: one side has changed since the pair was queued (a symbol only grows to the
         * right from a fixed start, so equal lengths mean equal text) */
        if (a->n != g.nl || b->n != g.nr || a->next != (int32_t)g.right || b->n == 0)
            continue;
        a->n += b->n;
        a->nbytes += b->nbytes;
        b->n = 0;
        a->next = b->next;
        if (b->next >= 0)
            w->syms[b->next].prev = (int32_t)g.left;
        if (!add_bigram(t, w, a->prev, (int32_t)g.left) || !add_bigram(t, w, (int32_t)g.left, a->next))
            return esar_fail(err, ESAR_ERR_NOMEM, "tokenizer: out of memory");
    }
    for (int32_t i = n ? 0 : -1; i >= 0; i = w->syms[i].next) {
        const struct sym *s = &w->syms[i];
        int32_t id = esar_tokenizer_find(t, w->enc + s->start, s->n);
        if (id >= 0) {
            if (!push_token(w, id))
                return esar_fail(err, ESAR_ERR_NOMEM, "tokenizer: out of memory");
            continue;
        }
        /* a merge whose result is not in the vocabulary: spell it byte by byte */
        for (uint32_t k = 0; k < s->nbytes; k++)
            if (!push_token(w, t->byte_token[bytes[s->byte0 + k]]))
                return esar_fail(err, ESAR_ERR_NOMEM, "tokenizer: out of memory");
    }
    return ESAR_OK;
}

/* GPT-2's split of units [a, b), as llama.cpp's unicode_regex_split_custom_gpt2:
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * Positions past b read as "no character", which is what the expression sees at the end. */
static esar_status gpt2_split(const esar_tokenizer *t, work *w, const uint8_t *text, size_t a, size_t b,
                              esar_err *err)
{
    const struct unit *u = w->units;
#define CPT(p) ((p) < b ? u[p].cp : OUT_OF_RANGE)
#define FL(p) ((p) < b ? (uint32_t)(u[p].flags | IN_RANGE) : 0u)
    size_t pos = a;
    while (pos < b) {
        size_t start = pos;
        uint32_t cpt = u[pos].cp, flags = FL(pos);
        if (cpt == '\'' && pos + 1 < b) {
            uint32_t c1 = CPT(pos + 1), c2 = CPT(pos + 2);
            if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd')
                pos += 2;
            else if (pos + 2 < b && ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')))
                pos += 3;
        }
        if (pos == start) {
            uint32_t f2 = cpt == ' ' ? FL(pos + 1) : flags;
            const uint32_t any = ESAR_UC_LETTER | ESAR_UC_NUMBER | ESAR_UC_WHITESPACE;
            if (f2 & ESAR_UC_LETTER) {
                pos += cpt == ' ';
                while (FL(pos) & ESAR_UC_LETTER)
                    pos++;
            } else if (f2 & ESAR_UC_NUMBER) {
                pos += cpt == ' ';
                while (FL(pos) & ESAR_UC_NUMBER)
                    pos++;
            } else if (f2 && !(f2 & any)) {
                pos += cpt == ' ';
                while (FL(pos) && !(FL(pos) & any))
                    pos++;
            } else {
                size_t nws = 0;
                while (FL(pos + nws) & ESAR_UC_WHITESPACE)
                    nws++;
                if (nws > 1 && CPT(pos + nws) != OUT_OF_RANGE)
                    pos += nws - 1; /* \s+(?!\S): leave the last space to the next word */
                else if (nws > 0)
                    pos += nws;
                else
                    pos++;
            }
        }
        uint32_t b0 = u[start].off, b1 = u[pos - 1].off + u[pos - 1].len;
        esar_status st = bpe_word(t, w, text + b0, b1 - b0, err);
        if (st)
            return st;
    }
#undef CPT
#undef FL
    return ESAR_OK;
}

int esar_tokenizer_has_byte(const esar_tokenizer *t, uint8_t b) { return t && t->byte_token[b] >= 0; }

/* Pre-tokenizes and encodes one piece of text holding no special token and, unless the
 * vocabulary spells every byte, no unit with a byte it cannot spell. */
static esar_status encode_clean(const esar_tokenizer *t, work *w, const uint8_t *text, size_t n, esar_err *err)
{
    if (n > UINT32_MAX)
        return esar_fail(err, ESAR_ERR_LIMIT, "tokenizer: a piece of %zu bytes is over 4 GiB", n);
    if (!grow((void **)&w->units, &w->cap_units, n, sizeof *w->units))
        return esar_fail(err, ESAR_ERR_NOMEM, "tokenizer: out of memory for %zu bytes of text", n);
    size_t nu = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int r = esar_utf8_decode(text + i, n - i, &cp);
        struct unit *un = &w->units[nu++];
        un->off = (uint32_t)i;
        if (r > 0) {
            un->cp = cp;
            un->len = (uint8_t)r;
            un->flags = (uint8_t)esar_unicode_flags(cp);
        } else { /* one byte outside valid UTF-8: kept, classed as a symbol as U+FFFD is */
            un->cp = RAW_BYTE;
            un->len = 1;
            un->flags = 0;
        }
        i += un->len;
    }
    if (!t->split_digits)
        return gpt2_split(t, w, text, 0, nu, err);
    /* first expression \p{N}: each number code point alone, the runs between as they are */
    for (size_t a = 0; a < nu;) {
        size_t b = a + 1;
        if (!(w->units[a].flags & ESAR_UC_NUMBER))
            while (b < nu && !(w->units[b].flags & ESAR_UC_NUMBER))
                b++;
        esar_status st = gpt2_split(t, w, text, a, b, err);
        if (st)
            return st;
        a = b;
    }
    return ESAR_OK;
}

/* Replaces every unit (a character, or one byte outside valid UTF-8) holding a byte that no
 * token spells by U+FFFD, or fails in strict mode; then encodes. at: the piece's offset in the
 * caller's text, for messages. */
static esar_status encode_piece(const esar_tokenizer *t, work *w, const uint8_t *text, size_t n, size_t at,
                                uint32_t flags, esar_err *err)
{
    if (t->all_bytes)
        return encode_clean(t, w, text, n, err);
    size_t extra = 0, first_bad = SIZE_MAX;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int r = esar_utf8_decode(text + i, n - i, &cp);
        size_t len = r > 0 ? (size_t)r : 1;
        for (size_t k = 0; k < len; k++)
            if (t->byte_token[text[i + k]] < 0) {
                if (first_bad == SIZE_MAX)
                    first_bad = i + k;
                extra += 3;
                break;
            }
        i += len;
    }
    if (first_bad == SIZE_MAX)
        return encode_clean(t, w, text, n, err);
    if (flags & ESAR_TOKENIZE_STRICT)
        return esar_fail(err, ESAR_ERR_UNSUPPORTED,
                         "tokenize: byte 0x%02x at offset %zu has no token in this vocabulary", text[first_bad],
                         at + first_bad);
    uint8_t *sub = malloc(n + extra);
    if (!sub)
        return esar_fail(err, ESAR_ERR_NOMEM, "tokenize: out of memory");
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int r = esar_utf8_decode(text + i, n - i, &cp);
        size_t len = r > 0 ? (size_t)r : 1, k = 0;
        while (k < len && t->byte_token[text[i + k]] >= 0)
            k++;
        if (k < len) {
            memcpy(sub + o, "\xEF\xBF\xBD", 3);
            o += 3;
        } else {
            memcpy(sub + o, text + i, len);
            o += len;
        }
        i += len;
    }
    esar_status st = encode_clean(t, w, sub, o, err);
    free(sub);
    return st;
}

typedef struct frag {
    size_t off, len;
    int32_t token; /* >= 0: a special token; -1: text */
} frag;

/* Cuts the text fragments at every occurrence of special token id (leftmost first). Returns 1
 * when it cut, 0 when the token does not occur, -1 when out of memory. */
static int split_on(const esar_tokenizer *t, const char *text, frag **fr, size_t *nf, size_t *cap, int32_t id)
{
    strref s = t->text[id];
    const char *needle = t->arena + s.off;
    size_t count = *nf;
    int cut = 0;
    for (size_t i = 0; i < count; i++) {
        frag f = (*fr)[i];
        if (f.token >= 0 || f.len < s.len)
            continue;
        size_t cur = f.off, end = f.off + f.len;
        int found = 0;
        for (size_t p = f.off; p + s.len <= end;) {
            const char *hit = memchr(text + p, needle[0], end - s.len + 1 - p);
            if (!hit)
                break;
            p = (size_t)(hit - text);
            if (memcmp(text + p, needle, s.len)) {
                p++;
                continue;
            }
            /* replace fragment i by: text before (in place), the token, then the rest later */
            if (!grow((void **)fr, cap, *nf + 2, sizeof **fr))
                return -1;
            if (!found)
                (*fr)[i].len = 0; /* marks i as consumed; pieces are appended after */
            found = 1;
            if (p > cur)
                (*fr)[(*nf)++] = (frag){cur, p - cur, -1};
            (*fr)[(*nf)++] = (frag){p, s.len, id};
            p += s.len;
            cur = p;
        }
        if (found && cur < end) {
            if (!grow((void **)fr, cap, *nf + 1, sizeof **fr))
                return -1;
            (*fr)[(*nf)++] = (frag){cur, end - cur, -1};
        }
        cut |= found;
    }
    return cut;
}

static int cmp_frag(const void *a, const void *b)
{
    const frag *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}

esar_status esar_tokenize(const esar_tokenizer *t, const char *text, size_t len, uint32_t flags,
                          int32_t *tokens, size_t cap, size_t *n_out, esar_err *err)
{
    if (!t || !n_out || (!text && len) || (!tokens && cap))
        return esar_fail(err, ESAR_ERR_ARG, "tokenize: NULL argument");
    *n_out = 0;
    work w;
    memset(&w, 0, sizeof w);
    esar_status st = ESAR_OK;
    frag *fr = NULL;
    size_t nf = 0, capf = 0;
    if ((flags & ESAR_TOKENIZE_ADD_BOS) && t->bos >= 0 && !push_token(&w, t->bos)) {
        st = esar_fail(err, ESAR_ERR_NOMEM, "tokenize: out of memory");
        goto done;
    }
    if (len) {
        if (!grow((void **)&fr, &capf, 1, sizeof *fr)) {
            st = esar_fail(err, ESAR_ERR_NOMEM, "tokenize: out of memory");
            goto done;
        }
        fr[nf++] = (frag){0, len, -1};
    }
    for (uint32_t i = 0; i < t->n_specials && nf; i++) {
        int32_t id = t->specials[i];
        if (!(flags & ESAR_TOKENIZE_PARSE_SPECIAL) && t->type[id] != ESAR_TOKEN_USER_DEFINED)
            continue;
        int cut = split_on(t, text, &fr, &nf, &capf, id);
        if (cut < 0) {
            st = esar_fail(err, ESAR_ERR_NOMEM, "tokenize: out of memory");
            goto done;
        }
        if (!cut)
            continue;
        /* drop consumed fragments, restore text order */
        size_t k = 0;
        for (size_t j = 0; j < nf; j++)
            if (fr[j].len)
                fr[k++] = fr[j];
        nf = k;
        qsort(fr, nf, sizeof *fr, cmp_frag);
    }
    for (size_t i = 0; i < nf && !st; i++) {
        if (fr[i].token >= 0) {
            if (!push_token(&w, fr[i].token))
                st = esar_fail(err, ESAR_ERR_NOMEM, "tokenize: out of memory");
        } else {
            st = encode_piece(t, &w, (const uint8_t *)text + fr[i].off, fr[i].len, fr[i].off, flags, err);
        }
    }
    if (!st) {
        *n_out = w.n_out;
        size_t m = w.n_out < cap ? w.n_out : cap;
        if (m)
            memcpy(tokens, w.out, m * sizeof *tokens);
        if (w.n_out > cap)
            st = esar_fail(err, ESAR_ERR_LIMIT, "tokenize: the text needs %zu tokens, the buffer holds %zu", w.n_out,
                           cap);
    }
done:
    free(fr);
    free(w.out);
    free(w.units);
    free(w.syms);
    free(w.heap);
    free(w.enc);
    return st;
}

/* ---- decode ------------------------------------------------------------------------------- */

esar_status esar_token_piece(const esar_tokenizer *t, int32_t id, uint32_t flags, const char **piece, size_t *len,
                             esar_err *err)
{
    if (!t || !piece || !len)
        return esar_fail(err, ESAR_ERR_ARG, "token_piece: NULL argument");
    if (id < 0 || (uint32_t)id >= t->n_vocab)
        return esar_fail(err, ESAR_ERR_ARG, "token_piece: token id %d is outside the vocabulary [0, %u)", id,
                         t->n_vocab);
    int type = t->type[id];
    int shown = type == ESAR_TOKEN_NORMAL || type == ESAR_TOKEN_USER_DEFINED || type == ESAR_TOKEN_BYTE ||
                ((flags & ESAR_DETOKENIZE_RENDER_SPECIAL) && (type == ESAR_TOKEN_CONTROL || type == ESAR_TOKEN_UNKNOWN));
    *piece = t->arena + t->piece[id].off;
    *len = shown ? t->piece[id].len : 0;
    return ESAR_OK;
}

esar_status esar_detokenize(const esar_tokenizer *t, const int32_t *tokens, size_t n, uint32_t flags, char *buf,
                            size_t cap, size_t *len_out, esar_err *err)
{
    if (!t || !len_out || (!tokens && n) || (!buf && cap))
        return esar_fail(err, ESAR_ERR_ARG, "detokenize: NULL argument");
    size_t o = 0;
    *len_out = 0;
    for (size_t i = 0; i < n; i++) {
        const char *p = NULL;
        size_t l = 0;
        esar_status st = esar_token_piece(t, tokens[i], flags, &p, &l, err);
        if (st) {
            esar_err_prefix(err, "detokenize: position %zu: ", i);
            return st;
        }
        if (o < cap)
            memcpy(buf + o, p, l < cap - o ? l : cap - o);
        o += l;
    }
    *len_out = o;
    if (o > cap)
        return esar_fail(err, ESAR_ERR_LIMIT, "detokenize: the text needs %zu bytes, the buffer holds %zu", o, cap);
    return ESAR_OK;
}
