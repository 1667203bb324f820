/* esa_run_eval.c - esa-run --eval: long-context retrieval accuracy over a grid of prompt lengths
 * and needle depths, for several attentions and compressions, made offline (runner/haystack.h).
 *
 * Tasks: the passkey (Mohtashami & Jaggi 2023: "The pass key is N. Remember it. N is the pass
 * key." in filler, then "What is the pass key?") and multi-key needle-in-a-haystack (four lines
 * "One of the special magic numbers for KEY is: VALUE.", one of them asked for; the others at
 * other depths). Methods: dense (true positions), window (initial + local tokens only), esa
 * (exact full-dimension scores), or a compression file (ESA with its matrices). A prompt counts
 * as retrieved when the greedy answer holds the value as a whole number. Writes eval.md (also on
 * stdout), eval.csv, eval.json and one heat map per task and method (gnuplot) to --eval-out. */
#define _POSIX_C_SOURCE 200809L
#include "esa_run.h"
#include "haystack.h"
#include "tool_print.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum { TASK_PASSKEY = 1, TASK_MULTIKEY = 2 };
static const char *const TASK_NAME[] = {"", "passkey", "multikey"};
static const char *const WORDS[] = {"amber-lake", "silent-forest", "copper-river", "velvet-sky"};

typedef struct cell {
    int task, found;
    uint32_t method, length, tokens;
    double depth;
    uint32_t value;
    char answer[96];
} cell;

/* A method's label: the attention, or the compression file's name without its folders. */
static const char *method_label(const char *m)
{
    const char *slash = strrchr(m, '/');
    return slash ? slash + 1 : m;
}

static int is_file_method(const char *m)
{
    return strcmp(m, "dense") && strcmp(m, "window") && strcmp(m, "esa");
}

static uint32_t value_of(uint32_t seed, uint32_t task, uint32_t li, uint32_t di, uint32_t k, uint32_t digits)
{
    uint64_t z = (uint64_t)seed * 0x9e3779b97f4a7c15ull + task * 1000003u + li * 7919u + di * 104729u + k * 31u;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    uint32_t lo = digits == 5 ? 10000u : 1000000u;
    return lo + (uint32_t)((z ^ (z >> 31)) % (9u * lo));
}

/* The prompt of one cell: haystack text with the needles, the question, the answer's opening. */
static int build(run *R, cell *c, uint32_t li, uint32_t di, int32_t **toks, uint32_t *n)
{
    char lines[4][160], question[200], prefix[160];
    esar_needle nd[4];
    size_t nn = 0;
    if (c->task == TASK_PASSKEY) {
        c->value = value_of(R->o.seed, 1, li, di, 0, 5);
        esar_passkey_line(c->value, lines[0], sizeof lines[0]);
        nd[nn++] = (esar_needle){lines[0], c->depth};
        snprintf(question, sizeof question, "%s", esar_passkey_question);
        snprintf(prefix, sizeof prefix, "%s", esar_passkey_answer_prefix);
    } else {
        /* the asked key at the cell's depth, the others a quarter apart (wrapping) */
        for (uint32_t k = 0; k < 4; k++) {
            uint32_t v = value_of(R->o.seed, 2, li, di, k, 7);
            if (k == 0)
                c->value = v;
            snprintf(lines[k], sizeof lines[k], "One of the special magic numbers for %s is: %u.", WORDS[k], v);
            double d = c->depth + 0.25 * k;
            nd[nn++] = (esar_needle){lines[k], d > 1.0 ? d - 1.0 : d};
        }
        snprintf(question, sizeof question, "What is the special magic number for %s mentioned in the provided "
                                            "text?", WORDS[0]);
        snprintf(prefix, sizeof prefix, "The special magic number for %s mentioned in the provided text is", WORDS[0]);
    }
    esar_err err = {{0}};
    char *text = NULL;
    size_t len = 0;
    uint32_t ntok = 0;
    esar_status s = esar_haystack(R->tok, c->length, nd, nn, &text, &len, &ntok, &err);
    if (s != ESAR_OK)
        return fail("haystack", s, &err);
    size_t ql = strlen(question);
    char *full = realloc(text, len + ql + 3);
    if (!full) {
        free(text);
        return fprintf(stderr, "esa-run: out of memory\n"), 0;
    }
    len += (size_t)sprintf(full + len, "\n%s%s", question, R->o.raw || !R->chat ? "\n" : "");
    int ok = tokenize_prompt(R, full, len, prefix, toks, n);
    free(full);
    c->tokens = *n;
    return ok;
}

/* The model for a method: exact scores, or the method's compression file. */
static int model_for(run *R, const char *method, uint32_t max_tokens)
{
    esar_model_gpu_destroy(R->m);
    R->m = NULL;
    esar_model_gpu_desc d = R->o.md;
    d.max_tokens = max_tokens;
    d.compression_file = is_file_method(method) ? method : NULL;
    if (d.compression_file && !R->o.md.global_pos) {
        esa_compression_info ci;
        if (esa_compression_read(NULL, method, &ci, NULL, NULL) == ESA_SUCCESS)
            d.global_pos = ci.global_pos;
    }
    esar_err err = {{0}};
    esar_status s = esar_model_gpu_create(R->g, R->rt, R->k, &d, &R->m, &err);
    return s == ESAR_OK ? 1 : fail(method, s, &err);
}

/* eval.csv, eval.json and eval.md of the cells so far: rewritten after every cell, so that a
 * run stopped part way (hours on a CPU device) keeps what it measured. */
static void write_tables(const run *R, const cell *cells, uint32_t nc, const char *cmdline)
{
    const options *o = &R->o;
    char path[1024];
    snprintf(path, sizeof path, "%s/eval.csv", o->eval_out);
    FILE *csv = fopen(path, "w");
    snprintf(path, sizeof path, "%s/eval.json", o->eval_out);
    FILE *js = fopen(path, "w");
    snprintf(path, sizeof path, "%s/eval.md", o->eval_out);
    FILE *md = fopen(path, "w");
    if (!csv || !js || !md) {
        fprintf(stderr, "esa-run: cannot write to %s: %s\n", o->eval_out, strerror(errno));
        if (csv)
            fclose(csv);
        if (js)
            fclose(js);
        if (md)
            fclose(md);
        return;
    }
    fprintf(csv, "task,method,length,tokens,depth,value,found,answer\n");
    fprintf(js, "{\"command\": \"%s\", \"cells\": [", cmdline);
    for (uint32_t i = 0; i < nc; i++) {
        const cell *c = &cells[i];
        char ans[200];
        size_t j = 0;
        for (const char *p = c->answer; *p && j + 2 < sizeof ans; p++)
            if (*p != '"' && *p != '\\' && (unsigned char)*p >= 0x20)
                ans[j++] = *p;
        ans[j] = 0;
        fprintf(csv, "%s,%s,%u,%u,%.3f,%u,%d,\"%s\"\n", TASK_NAME[c->task], method_label(o->eval_method[c->method]),
                c->length, c->tokens, c->depth, c->value, c->found, ans);
        fprintf(js, "%s\n  {\"task\": \"%s\", \"method\": \"%s\", \"length\": %u, \"tokens\": %u, \"depth\": %.3f, "
                    "\"value\": %u, \"found\": %s, \"answer\": \"%s\"}", i ? "," : "", TASK_NAME[c->task],
                method_label(o->eval_method[c->method]), c->length, c->tokens, c->depth, c->value,
                c->found ? "true" : "false", ans);
    }
    fprintf(js, "\n]}\n");
    fprintf(md, "Retrieval accuracy over %u depths (%s), greedy answers; command: `%s`.\n", o->n_eval_depth,
            "needle placed at each depth of the filler", cmdline);
    for (int task = 1; task <= 2; task++) {
        if (!(o->eval & task))
            continue;
        fprintf(md, "\n%s:\n\n| method |", TASK_NAME[task]);
        for (uint32_t li = 0; li < o->n_eval_len; li++)
            fprintf(md, " %u |", o->eval_len[li]);
        fprintf(md, "\n|---|");
        for (uint32_t li = 0; li < o->n_eval_len; li++)
            fprintf(md, "---:|");
        fprintf(md, "\n");
        for (uint32_t mi = 0; mi < o->n_eval_method; mi++) {
            fprintf(md, "| %s |", method_label(o->eval_method[mi]));
            for (uint32_t li = 0; li < o->n_eval_len; li++) {
                uint32_t hit = 0, all = 0;
                for (uint32_t i = 0; i < nc; i++)
                    if (cells[i].task == task && cells[i].method == mi && cells[i].length == o->eval_len[li]) {
                        all++;
                        hit += (uint32_t)cells[i].found;
                    }
                if (all)
                    fprintf(md, " %u/%u |", hit, all);
                else
                    fprintf(md, " - |");
            }
            fprintf(md, "\n");
        }
    }
    fclose(csv);
    fclose(js);
    fclose(md);
}

static void write_plots(const run *R, const cell *cells, uint32_t nc)
{
    const options *o = &R->o;
    char path[1024];
    if (!o->plots)
        return;
    /* heat maps: length (rows) x depth (columns), 1 retrieved, 0 missed */
    snprintf(path, sizeof path, "%s/eval.gp", o->eval_out);
    FILE *g = fopen(path, "w");
    if (!g)
        return;
    fprintf(g, "set terminal png size 700,450\nset view map\nset cbrange [0:1]\nunset colorbox\n"
               "set palette defined (0 '#c0392b', 1 '#27ae60')\nset xlabel 'needle depth'\nset ylabel 'prompt tokens'\n");
    for (int task = 1; task <= 2; task++)
        for (uint32_t mi = 0; o->eval & task && mi < o->n_eval_method; mi++) {
            char dat[1100];
            snprintf(dat, sizeof dat, "%s/eval_%s_%u.dat", o->eval_out, TASK_NAME[task], mi);
            FILE *d = fopen(dat, "w");
            if (!d)
                continue;
            for (uint32_t li = 0; li < o->n_eval_len; li++) {
                for (uint32_t di = 0; di < o->n_eval_depth; di++)
                    for (uint32_t i = 0; i < nc; i++)
                        if (cells[i].task == task && cells[i].method == mi && cells[i].length == o->eval_len[li] &&
                            cells[i].depth == o->eval_depth[di])
                            fprintf(d, "%u %u %d\n", di, li, cells[i].found);
                fprintf(d, "\n");
            }
            fclose(d);
            fprintf(g, "set output 'eval_%s_%s.png'\nset title '%s: %s (green: retrieved)'\n", TASK_NAME[task],
                    method_label(o->eval_method[mi]), TASK_NAME[task], method_label(o->eval_method[mi]));
            fprintf(g, "set xtics (");
            for (uint32_t di = 0; di < o->n_eval_depth; di++)
                fprintf(g, "%s'%.2f' %u", di ? ", " : "", o->eval_depth[di], di);
            fprintf(g, ")\nset ytics (");
            for (uint32_t li = 0; li < o->n_eval_len; li++)
                fprintf(g, "%s'%u' %u", li ? ", " : "", o->eval_len[li], li);
            fprintf(g, ")\nset xrange [-0.5:%u.5]\nset yrange [-0.5:%u.5]\nsplot 'eval_%s_%u.dat' using 1:2:3 with "
                       "image notitle\n", o->n_eval_depth - 1, o->n_eval_len - 1, TASK_NAME[task], mi);
        }
    fclose(g);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "cd '%s' && gnuplot eval.gp", o->eval_out);
    if (system("command -v gnuplot >/dev/null 2>&1") != 0)
        fprintf(stderr, "esa-run: gnuplot not found: no heat maps (apt-get install gnuplot-nox)\n");
    else if (system(cmd) != 0)
        fprintf(stderr, "esa-run: gnuplot failed on %s/eval.gp\n", o->eval_out);
}

int run_eval(run *R, int argc, char **argv)
{
    options *o = &R->o;
    char cmdline[1024] = "esa-run";
    for (int i = 1; i < argc; i++) {
        size_t l = strlen(cmdline);
        snprintf(cmdline + l, sizeof cmdline - l, " %s", argv[i]);
    }
    if (mkdir(o->eval_out, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "esa-run: cannot create %s: %s\n", o->eval_out, strerror(errno));
        return 0;
    }
    uint32_t max_len = 0;
    for (uint32_t li = 0; li < o->n_eval_len; li++)
        max_len = o->eval_len[li] > max_len ? o->eval_len[li] : max_len;
    uint32_t n_tasks = (o->eval & 1) + (o->eval >> 1 & 1);
    uint32_t total = n_tasks * o->n_eval_len * o->n_eval_depth * o->n_eval_method;
    cell *cells = calloc(total, sizeof *cells);
    if (!cells)
        return fprintf(stderr, "esa-run: out of memory\n"), 0;
    uint32_t nc = 0, done = 0;
    int ok = 1;
    double t0 = now_s();
    for (uint32_t mi = 0; ok && mi < o->n_eval_method; mi++) {
        const char *m = o->eval_method[mi];
        /* the haystack's intro, question, template and answer are well under 512 tokens */
        if (!model_for(R, m, max_len + 512 + o->n_predict)) {
            ok = 0;
            break;
        }
        esa_attention a = !strcmp(m, "dense") ? ESA_ATTENTION_DENSE : !strcmp(m, "window") ? ESA_ATTENTION_WINDOW
                                                                                             : ESA_ATTENTION_ESA;
        for (int task = 1; ok && task <= 2; task++)
            for (uint32_t li = 0; ok && o->eval & task && li < o->n_eval_len; li++)
                for (uint32_t di = 0; ok && di < o->n_eval_depth; di++) {
                    cell *c = &cells[nc];
                    *c = (cell){.task = task, .method = mi, .length = o->eval_len[li], .depth = o->eval_depth[di]};
                    int32_t *toks = NULL;
                    uint32_t n = 0;
                    stream st = {0};
                    if (!build(R, c, li, di, &toks, &n) || !generate(R, a, toks, n, &st, 0, NULL, NULL, NULL)) {
                        free(toks);
                        free(st.all);
                        ok = 0;
                        break;
                    }
                    c->found = esar_passkey_found(st.all ? st.all : "", st.len, c->value);
                    snprintf(c->answer, sizeof c->answer, "%s", st.all ? st.all : "");
                    for (char *p = c->answer; *p; p++)
                        if (*p == '\n' || *p == ',')
                            *p = ' ';
                    free(toks);
                    free(st.all);
                    nc++;
                    done++;
                    write_tables(R, cells, nc, cmdline);
                    fprintf(stderr, "esa-run eval [%u/%u, %.0f s]: %s %s, %u tokens, depth %.2f: %s\n", done, total,
                            now_s() - t0, TASK_NAME[task], method_label(m), c->tokens, c->depth,
                            c->found ? "retrieved" : "missed");
                }
    }
    write_tables(R, cells, nc, cmdline);
    write_plots(R, cells, nc);
    tool_print_file(o->eval_out, "eval.md");
    free(cells);
    return ok;
}
