/* haystack.c - filler text to a token length with needle lines at chosen depths. */
#include "haystack.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const esar_haystack_intro =
    "There is an important piece of information hidden inside a lot of irrelevant text. Find "
    "it and memorize it. I will quiz you about the important information there.\n";
const char *const esar_haystack_filler =
    "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again. ";
const char *const esar_passkey_question = "What is the pass key?";
const char *const esar_passkey_answer_prefix = "The pass key is";

void esar_passkey_line(uint32_t key, char *buf, size_t cap)
{
    snprintf(buf, cap, "The pass key is %u. Remember it. %u is the pass key.", key, key);
}

int esar_passkey_found(const char *text, size_t len, uint32_t key)
{
    char want[16];
    int w = snprintf(want, sizeof want, "%u", key);
    for (size_t i = 0; i + (size_t)w <= len; i++) {
        if (memcmp(text + i, want, (size_t)w) != 0)
            continue;
        int digit_before = i > 0 && text[i - 1] >= '0' && text[i - 1] <= '9';
        int digit_after = i + (size_t)w < len && text[i + w] >= '0' && text[i + w] <= '9';
        if (!digit_before && !digit_after)
            return 1;
    }
    return 0;
}

static esar_status count_tokens(const esar_tokenizer *t, const char *s, size_t len, uint32_t *n,
                                esar_err *err)
{
    size_t need = 0;
    esar_status st = esar_tokenize(t, s, len, 0, NULL, 0, &need, err);
    if (st != ESAR_OK && st != ESAR_ERR_LIMIT)
        return st;
    if (need > UINT32_MAX)
        return esar_fail(err, ESAR_ERR_LIMIT, "haystack: %zu tokens", need);
    *n = (uint32_t)need;
    return ESAR_OK;
}

esar_status esar_haystack(const esar_tokenizer *t, uint32_t target_tokens, const esar_needle *needles,
                          size_t n, char **text, size_t *len, uint32_t *tokens, esar_err *err)
{
    if (!t || !text || !len || !tokens || (n && !needles))
        return esar_fail(err, ESAR_ERR_ARG, "haystack: a needed pointer is NULL");
    *text = NULL;
    size_t needle_bytes = 0;
    for (size_t i = 0; i < n; i++) {
        if (!needles[i].line || !(needles[i].depth >= 0.0 && needles[i].depth <= 1.0))
            return esar_fail(err, ESAR_ERR_ARG, "haystack: needle %zu has no line or a depth outside [0, 1]", i);
        needle_bytes += strlen(needles[i].line) + 2;
    }
    /* tokens of one paragraph as it repeats (a paragraph after another), and of the rest */
    size_t fl = strlen(esar_haystack_filler), il = strlen(esar_haystack_intro);
    char two[512];
    snprintf(two, sizeof two, "%s%s", esar_haystack_filler, esar_haystack_filler);
    uint32_t t1 = 0, t2 = 0, tfix = 0;
    esar_status st = count_tokens(t, two, fl, &t1, err);
    if (st == ESAR_OK)
        st = count_tokens(t, two, 2 * fl, &t2, err);
    if (st == ESAR_OK)
        st = count_tokens(t, esar_haystack_intro, il, &tfix, err);
    for (size_t i = 0; st == ESAR_OK && i < n; i++) {
        uint32_t tn = 0;
        st = count_tokens(t, needles[i].line, strlen(needles[i].line), &tn, err);
        tfix += tn + 1;
    }
    if (st != ESAR_OK)
        return st;
    uint32_t per = t2 > t1 ? t2 - t1 : 1;
    uint64_t paras = target_tokens > tfix ? (target_tokens - tfix + per - 1) / per : 1;
    if (paras == 0)
        paras = 1;
    size_t cap = il + needle_bytes + (size_t)paras * fl + 1;
    char *s = malloc(cap);
    if (!s)
        return esar_fail(err, ESAR_ERR_NOMEM, "haystack: out of memory for %zu bytes", cap);
    size_t at = 0;
    memcpy(s, esar_haystack_intro, il);
    at = il;
    /* needles in depth order: needle i goes before paragraph round(depth * paras) */
    size_t *order = malloc(sizeof *order * (n ? n : 1));
    if (!order) {
        free(s);
        return esar_fail(err, ESAR_ERR_NOMEM, "haystack: out of memory");
    }
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    for (size_t i = 1; i < n; i++) /* insertion sort: stable, n is small */
        for (size_t j = i; j > 0 && needles[order[j]].depth < needles[order[j - 1]].depth; j--) {
            size_t tmp = order[j];
            order[j] = order[j - 1];
            order[j - 1] = tmp;
        }
    size_t next = 0;
    for (uint64_t p = 0; p <= paras; p++) {
        while (next < n && (uint64_t)(needles[order[next]].depth * (double)paras + 0.5) <= p) {
            const char *line = needles[order[next]].line;
            size_t ll = strlen(line);
            if (at > il && s[at - 1] == ' ')
                at--; /* the needle ends the sentence run: no trailing space before it */
            if (at > 0 && s[at - 1] != '\n')
                s[at++] = '\n';
            memcpy(s + at, line, ll);
            at += ll;
            s[at++] = '\n';
            next++;
        }
        if (p < paras) {
            memcpy(s + at, esar_haystack_filler, fl);
            at += fl;
        }
    }
    free(order);
    if (at > 0 && s[at - 1] == ' ')
        at--;
    s[at] = 0;
    uint32_t total = 0;
    st = count_tokens(t, s, at, &total, err);
    if (st != ESAR_OK) {
        free(s);
        return st;
    }
    *text = s;
    *len = at;
    *tokens = total;
    return ESAR_OK;
}
