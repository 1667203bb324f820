/* qk_file.c - calibration samples in safetensors form (qk_file.h): a writer that sizes every
 * tensor up front and takes rows in any order, and a reader with a small JSON parser for the
 * header (objects, strings, integers, arrays; anything else is skipped). */
#define _POSIX_C_SOURCE 200809L /* fseeko */
#include "qk_file.h"

#include "quant.h" /* esar_f32_to_f16, esar_f16_to_f32 */

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#define MAX_HEADER (16u << 20)

static int fail(char *err, size_t errsz, const char *fmt, ...)
{
    if (err && errsz) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errsz, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* src into dst, cut to what fits */
static void copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = 0;
}

static uint64_t row_elems(const qk_file *q, int which)
{
    return (uint64_t)(which ? q->m.n_kv_heads : q->m.n_heads) * q->m.head_dim;
}

/* ---- writing ------------------------------------------------------------------------------ */

/* s with JSON's specials escaped into out (cap bytes). */
static void json_escape(const char *s, char *out, size_t cap)
{
    size_t j = 0;
    for (; *s && j + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            out[j++] = '\\', out[j++] = (char)c;
        else if (c < 0x20)
            j += (size_t)snprintf(out + j, 7, "\\u%04x", c);
        else
            out[j++] = (char)c;
    }
    out[j] = 0;
}

int qk_write_open(qk_file *w, const char *path, const qk_meta *m, char *err, size_t errsz)
{
    memset(w, 0, sizeof *w);
    if (!m->n_layers || !m->n_heads || !m->n_kv_heads || !m->head_dim || !m->n_tokens)
        return fail(err, errsz, "%s: an empty shape", path);
    w->m = *m;
    w->f16 = 1;
    w->off = calloc((size_t)m->n_layers * 2, sizeof *w->off);
    size_t cap = 512 + (size_t)m->n_layers * 256;
    char *h = malloc(cap);
    if (!w->off || !h) {
        free(h);
        qk_close(w);
        return fail(err, errsz, "out of memory");
    }
    char src[600], att[80];
    json_escape(m->source, src, sizeof src);
    json_escape(m->attention, att, sizeof att);
    size_t n = (size_t)snprintf(h, cap,
                                "{\"__metadata__\":{\"format\":\"esa-vk qk 1\",\"n_layers\":\"%u\",\"n_heads\":\"%u\","
                                "\"n_kv_heads\":\"%u\",\"head_dim\":\"%u\",\"rope_dims\":\"%u\",\"rope_theta\":\"%.9g\","
                                "\"rope_style\":\"%s\",\"source\":\"%s\",\"attention\":\"%s\"}",
                                m->n_layers, m->n_heads, m->n_kv_heads, m->head_dim, m->rope_dims,
                                (double)m->rope_theta, m->neox ? "neox" : "interleaved", src, att);
    uint64_t at = 0;
    for (uint32_t l = 0; l < m->n_layers; l++)
        for (int which = 0; which < 2; which++) {
            uint64_t bytes = (uint64_t)m->n_tokens * row_elems(w, which) * 2;
            w->off[l * 2 + which] = at;
            n += (size_t)snprintf(h + n, cap - n, ",\"layers.%u.%c\":{\"dtype\":\"F16\",\"shape\":[%u,%llu],"
                                  "\"data_offsets\":[%llu,%llu]}", l, which ? 'k' : 'q', m->n_tokens,
                                  (unsigned long long)row_elems(w, which), (unsigned long long)at,
                                  (unsigned long long)(at + bytes));
            at += bytes;
        }
    n += (size_t)snprintf(h + n, cap - n, "}");
    while (n % 8) /* the data starts 8-byte aligned */
        h[n++] = ' ';
    errno = 0;
    w->f = fopen(path, "wb");
    if (!w->f) {
        free(h);
        qk_close(w);
        return fail(err, errsz, "cannot create %s: %s", path, strerror(errno));
    }
    uint8_t len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (uint8_t)((uint64_t)n >> (8 * i));
    int ok = fwrite(len, 1, 8, w->f) == 8 && fwrite(h, 1, n, w->f) == n;
    free(h);
    w->data_start = 8 + n;
    /* the file at its full size, so rows may come in any order */
    ok = ok && fseeko(w->f, (off_t)(w->data_start + at - 1), SEEK_SET) == 0 && fputc(0, w->f) != EOF;
    if (!ok) {
        qk_close(w);
        remove(path);
        return fail(err, errsz, "writing %s: %s", path, strerror(errno));
    }
    return 0;
}

int qk_write_rows(qk_file *w, uint32_t layer, uint32_t pos0, uint32_t n, const float *q, const float *k)
{
    if (layer >= w->m.n_layers || pos0 >= w->m.n_tokens)
        return 0;
    if (n > w->m.n_tokens - pos0)
        n = w->m.n_tokens - pos0;
    for (int which = 0; which < 2; which++) {
        const float *x = which ? k : q;
        uint64_t e = row_elems(w, which), count = (uint64_t)n * e;
        uint16_t *h = malloc(count * 2);
        if (!h)
            return -1;
        for (uint64_t i = 0; i < count; i++)
            h[i] = esar_f32_to_f16(x[i]);
        uint64_t at = w->data_start + w->off[layer * 2 + which] + (uint64_t)pos0 * e * 2;
        int ok = fseeko(w->f, (off_t)at, SEEK_SET) == 0 && fwrite(h, 2, count, w->f) == count;
        free(h);
        if (!ok)
            return -1;
    }
    w->written += n;
    return 0;
}

int qk_write_close(qk_file *w, const char *path, char *err, size_t errsz)
{
    uint64_t want = (uint64_t)w->m.n_tokens * w->m.n_layers;
    int ok = w->f && fflush(w->f) == 0 && !ferror(w->f);
    if (w->f && fclose(w->f) != 0)
        ok = 0;
    w->f = NULL;
    int rc = 0;
    if (!ok)
        rc = fail(err, errsz, "writing %s failed", path);
    else if (w->written != want)
        rc = fail(err, errsz, "%s: %llu of %llu layer rows were written", path, (unsigned long long)w->written,
                  (unsigned long long)want);
    if (rc)
        remove(path);
    qk_close(w);
    return rc;
}

/* ---- reading ------------------------------------------------------------------------------ */

typedef struct json {
    const char *p, *end;
} json;

static void ws(json *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static int eat(json *j, char c)
{
    ws(j);
    if (j->p < j->end && *j->p == c) {
        j->p++;
        return 1;
    }
    return 0;
}

/* A string into out (escapes other than \" and \\ kept as they are); 0 on error. */
static int jstring(json *j, char *out, size_t cap)
{
    if (!eat(j, '"'))
        return 0;
    size_t n = 0;
    while (j->p < j->end && *j->p != '"') {
        char c = *j->p++;
        if (c == '\\' && j->p < j->end)
            c = *j->p++;
        if (n + 1 < cap)
            out[n++] = c;
    }
    if (j->p >= j->end)
        return 0;
    j->p++;
    out[n] = 0;
    return 1;
}

static int jint(json *j, uint64_t *v)
{
    ws(j);
    char *e;
    errno = 0;
    unsigned long long x = strtoull(j->p, &e, 10);
    if (e == j->p || errno || e > j->end)
        return 0;
    j->p = e;
    *v = x;
    return 1;
}

static int skip(json *j, int depth)
{
    ws(j);
    if (j->p >= j->end || depth > 32)
        return 0;
    char c = *j->p;
    if (c == '"') {
        char tmp[8];
        return jstring(j, tmp, sizeof tmp);
    }
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        j->p++;
        if (eat(j, close))
            return 1;
        do {
            if (c == '{') {
                char tmp[8];
                if (!jstring(j, tmp, sizeof tmp) || !eat(j, ':'))
                    return 0;
            }
            if (!skip(j, depth + 1))
                return 0;
        } while (eat(j, ','));
        return eat(j, close);
    }
    while (j->p < j->end && *j->p != ',' && *j->p != '}' && *j->p != ']') /* number, true, null */
        j->p++;
    return 1;
}

static int jints(json *j, uint64_t *v, int cap, int *n)
{
    *n = 0;
    if (!eat(j, '['))
        return 0;
    if (eat(j, ']'))
        return 1;
    do {
        uint64_t x;
        if (!jint(j, &x) || *n == cap)
            return 0;
        v[(*n)++] = x;
    } while (eat(j, ','));
    return eat(j, ']');
}

typedef struct tensor {
    char name[64], dtype[16];
    uint64_t shape[4], off[2];
    int rank;
} tensor;

static int jtensor(json *j, tensor *t)
{
    if (!eat(j, '{'))
        return 0;
    do {
        char key[32];
        int n;
        if (!jstring(j, key, sizeof key) || !eat(j, ':'))
            return 0;
        if (!strcmp(key, "dtype")) {
            if (!jstring(j, t->dtype, sizeof t->dtype))
                return 0;
        } else if (!strcmp(key, "shape")) {
            if (!jints(j, t->shape, 4, &t->rank))
                return 0;
        } else if (!strcmp(key, "data_offsets")) {
            if (!jints(j, t->off, 2, &n) || n != 2)
                return 0;
        } else if (!skip(j, 1)) {
            return 0;
        }
    } while (eat(j, ','));
    return eat(j, '}');
}

static int meta_u32(const char *v, uint32_t *out)
{
    char *e;
    unsigned long x = strtoul(v, &e, 10);
    if (e == v || *e || x == 0 || x > 1u << 20)
        return 0;
    *out = (uint32_t)x;
    return 1;
}

int qk_read_open(qk_file *r, const char *path, char *err, size_t errsz)
{
    memset(r, 0, sizeof *r);
    errno = 0;
    r->f = fopen(path, "rb");
    if (!r->f)
        return fail(err, errsz, "cannot open %s: %s", path, strerror(errno));
    uint8_t len8[8];
    uint64_t hl = 0;
    if (fread(len8, 1, 8, r->f) != 8) {
        qk_close(r);
        return fail(err, errsz, "%s is not a safetensors file (too short)", path);
    }
    for (int i = 7; i >= 0; i--)
        hl = hl << 8 | len8[i];
    if (hl < 2 || hl > MAX_HEADER) {
        qk_close(r);
        return fail(err, errsz, "%s is not a safetensors file (header length %llu)", path, (unsigned long long)hl);
    }
    char *h = malloc(hl + 1);
    if (!h || fread(h, 1, hl, r->f) != hl) {
        free(h);
        qk_close(r);
        return fail(err, errsz, "%s: the header is truncated", path);
    }
    h[hl] = 0;
    r->data_start = 8 + hl;
    json j = {h, h + hl};
    tensor *ts = NULL;
    int nt = 0, cap = 0, ok = eat(&j, '{'), seen_meta = 0;
    char format[64] = "", style[32] = "", theta[64] = "";
    uint32_t *dims[5] = {&r->m.n_layers, &r->m.n_heads, &r->m.n_kv_heads, &r->m.head_dim, &r->m.rope_dims};
    static const char *const dim_names[5] = {"n_layers", "n_heads", "n_kv_heads", "head_dim", "rope_dims"};
    while (ok && !eat(&j, '}')) {
        char key[64];
        ok = jstring(&j, key, sizeof key) && eat(&j, ':');
        if (ok && !strcmp(key, "__metadata__")) {
            seen_meta = 1;
            ok = eat(&j, '{');
            while (ok && !eat(&j, '}')) {
                char k[64], v[256];
                ok = jstring(&j, k, sizeof k) && eat(&j, ':') && jstring(&j, v, sizeof v);
                for (int i = 0; ok && i < 5; i++)
                    if (!strcmp(k, dim_names[i]) && !meta_u32(v, dims[i]))
                        ok = 0;
                if (!strcmp(k, "format"))
                    copy_str(format, sizeof format, v);
                else if (!strcmp(k, "rope_style"))
                    copy_str(style, sizeof style, v);
                else if (!strcmp(k, "rope_theta"))
                    copy_str(theta, sizeof theta, v);
                else if (!strcmp(k, "source"))
                    copy_str(r->m.source, sizeof r->m.source, v);
                else if (!strcmp(k, "attention"))
                    copy_str(r->m.attention, sizeof r->m.attention, v);
                if (ok)
                    eat(&j, ',');
            }
        } else if (ok) {
            if (nt == cap) {
                cap = cap ? 2 * cap : 64;
                tensor *g = realloc(ts, sizeof *ts * (size_t)cap);
                if (!g) {
                    ok = 0;
                    break;
                }
                ts = g;
            }
            memset(&ts[nt], 0, sizeof ts[nt]);
            copy_str(ts[nt].name, sizeof ts[nt].name, key);
            ok = jtensor(&j, &ts[nt]);
            nt++;
        }
        if (ok)
            eat(&j, ',');
    }
    free(h);
    int rc = 0;
    char *end;
    if (!ok)
        rc = fail(err, errsz, "%s: the safetensors header is not valid JSON of the expected form", path);
    else if (!seen_meta || strcmp(format, "esa-vk qk 1"))
        rc = fail(err, errsz, "%s: no \"format\": \"esa-vk qk 1\" in its __metadata__", path);
    else if (!r->m.n_layers || !r->m.n_heads || !r->m.n_kv_heads || !r->m.head_dim || !r->m.rope_dims ||
             r->m.n_heads % r->m.n_kv_heads || r->m.rope_dims > r->m.head_dim)
        rc = fail(err, errsz, "%s: the metadata lacks a shape (n_layers, n_heads, n_kv_heads, head_dim, rope_dims)", path);
    else if ((r->m.rope_theta = strtof(theta, &end)) <= 0 || end == theta || *end)
        rc = fail(err, errsz, "%s: rope_theta \"%s\"", path, theta);
    else if (strcmp(style, "interleaved") && strcmp(style, "neox"))
        rc = fail(err, errsz, "%s: rope_style \"%s\" (interleaved or neox)", path, style);
    r->m.neox = !strcmp(style, "neox");
    if (!rc && !(r->off = calloc((size_t)r->m.n_layers * 2, sizeof *r->off)))
        rc = fail(err, errsz, "out of memory");
    /* every layer's q and k: one dtype, [n][H*d] and [n][G*d], the same n, inside the file */
    fseeko(r->f, 0, SEEK_END);
    uint64_t file_bytes = (uint64_t)ftello(r->f);
    for (uint32_t l = 0; !rc && l < r->m.n_layers; l++)
        for (int which = 0; !rc && which < 2; which++) {
            char want[64];
            snprintf(want, sizeof want, "layers.%u.%c", l, which ? 'k' : 'q');
            const tensor *t = NULL;
            for (int i = 0; i < nt && !t; i++)
                if (!strcmp(ts[i].name, want))
                    t = &ts[i];
            if (!t) {
                rc = fail(err, errsz, "%s: no tensor %s", path, want);
                break;
            }
            int f16 = !strcmp(t->dtype, "F16");
            if (!f16 && strcmp(t->dtype, "F32"))
                rc = fail(err, errsz, "%s: %s is %s (F16 or F32 are read)", path, want, t->dtype);
            else if (l + which && f16 != r->f16)
                rc = fail(err, errsz, "%s: %s is %s, the others %s", path, want, t->dtype, r->f16 ? "F16" : "F32");
            else if (t->rank != 2 || t->shape[1] != row_elems(r, which) || !t->shape[0] || t->shape[0] > 1u << 26 ||
                     (l + which && t->shape[0] != r->m.n_tokens))
                rc = fail(err, errsz, "%s: %s has shape [%llu, %llu], wanted [n, %llu] with n as the others", path,
                          want, (unsigned long long)t->shape[0], (unsigned long long)t->shape[1],
                          (unsigned long long)row_elems(r, which));
            else if (t->off[1] - t->off[0] != t->shape[0] * t->shape[1] * (f16 ? 2 : 4) || t->off[1] < t->off[0] ||
                     r->data_start + t->off[1] > file_bytes)
                rc = fail(err, errsz, "%s: %s's data_offsets do not match its shape or pass the end of the file", path,
                          want);
            r->f16 = f16;
            r->m.n_tokens = (uint32_t)t->shape[0];
            if (!rc)
                r->off[l * 2 + which] = t->off[0];
        }
    free(ts);
    if (rc)
        qk_close(r);
    return rc;
}

int qk_read_rows(qk_file *r, uint32_t layer, int which, uint32_t row0, uint32_t n, float *out)
{
    if (layer >= r->m.n_layers || row0 > r->m.n_tokens || n > r->m.n_tokens - row0)
        return -1;
    uint64_t e = row_elems(r, which), count = (uint64_t)n * e, es = r->f16 ? 2 : 4;
    uint64_t at = r->data_start + r->off[layer * 2 + which] + (uint64_t)row0 * e * es;
    if (fseeko(r->f, (off_t)at, SEEK_SET) != 0)
        return -1;
    if (!r->f16)
        return fread(out, 4, count, r->f) == count ? 0 : -1;
    uint16_t *h = malloc(count * 2);
    int ok = h && fread(h, 2, count, r->f) == count;
    for (uint64_t i = 0; ok && i < count; i++)
        out[i] = esar_f16_to_f32(h[i]);
    free(h);
    return ok ? 0 : -1;
}

void qk_close(qk_file *r)
{
    if (r->f)
        fclose(r->f);
    free(r->off);
    r->f = NULL;
    r->off = NULL;
}
