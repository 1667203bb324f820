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
static const char CSV_HEADER[] = "task,method,length,tokens,depth,value,found,answer";
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

/* hits and prompts of one grid cell (several prompts where merged runs repeat it) */
static uint32_t cell_count(const cell *cells, uint32_t nc, int task, uint32_t mi, uint32_t length, const double *depth,
                           uint32_t *hit)
{
    uint32_t all = 0;
    *hit = 0;
    for (uint32_t i = 0; i < nc; i++)
        if (cells[i].task == task && cells[i].method == mi && cells[i].length == length &&
            (!depth || cells[i].depth == *depth)) {
            all++;
            *hit += (uint32_t)cells[i].found;
        }
    return all;
}

static int method_ran(const cell *cells, uint32_t nc, int task, uint32_t mi)
{
    for (uint32_t i = 0; i < nc; i++)
        if (cells[i].task == task && cells[i].method == mi)
            return 1;
    return 0;
}

/* A markdown table's header and rule: the lead columns, n titled columns, the tail columns. */
static void md_header(FILE *md, const char *lead, const char *lead_rule, char title[][16], uint32_t n,
                      const char *rule, const char *tail, const char *tail_rule)
{
    fprintf(md, "%s", lead);
    for (uint32_t i = 0; i < n; i++)
        fprintf(md, " %s |", title[i]);
    fprintf(md, "%s\n%s", tail, lead_rule);
    for (uint32_t i = 0; i < n; i++)
        fprintf(md, "%s", rule);
    fprintf(md, "%s\n", tail_rule);
}

/* eval.csv, eval.json and eval.md of the cells so far: rewritten after every cell, so that a
 * run stopped part way (hours on a CPU device) keeps what it measured. o gives the grid: tasks,
 * lengths, depths and method labels (cells[].method indexes o->eval_method). */
static void write_tables(const options *o, const cell *cells, uint32_t nc, const char *cmdline)
{
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
    fprintf(csv, "%s\n", CSV_HEADER);
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
        char title[MAX_EVAL][16];
        fprintf(md, "\n%s:\n\n", TASK_NAME[task]);
        for (uint32_t li = 0; li < o->n_eval_len; li++)
            snprintf(title[li], sizeof title[li], "%u", o->eval_len[li]);
        md_header(md, "| method |", "|---|", title, o->n_eval_len, "---:|", "", "");
        for (uint32_t mi = 0; mi < o->n_eval_method; mi++) {
            if (!method_ran(cells, nc, task, mi)) /* not yet, or (merged) not on this task */
                continue;
            fprintf(md, "| %s |", method_label(o->eval_method[mi]));
            for (uint32_t li = 0; li < o->n_eval_len; li++) {
                uint32_t hit, all = cell_count(cells, nc, task, mi, o->eval_len[li], NULL, &hit);
                if (all)
                    fprintf(md, " %u/%u |", hit, all);
                else
                    fprintf(md, " - |");
            }
            fprintf(md, "\n");
        }
        /* by depth: a row per method and length that has prompts */
        fprintf(md, "\n%s by depth (yes: retrieved, no: missed, -: not run; k/n where n prompts share a cell):\n\n",
                TASK_NAME[task]);
        for (uint32_t di = 0; di < o->n_eval_depth; di++)
            snprintf(title[di], sizeof title[di], "%.2f", o->eval_depth[di]);
        md_header(md, "| method | length |", "|---|---:|", title, o->n_eval_depth, ":---:|", " retrieved |", "---:|");
        for (uint32_t mi = 0; mi < o->n_eval_method; mi++)
            for (uint32_t li = 0; li < o->n_eval_len; li++) {
                uint32_t hit, all = cell_count(cells, nc, task, mi, o->eval_len[li], NULL, &hit);
                if (!all)
                    continue;
                fprintf(md, "| %s | %u |", method_label(o->eval_method[mi]), o->eval_len[li]);
                for (uint32_t di = 0; di < o->n_eval_depth; di++) {
                    uint32_t h, a = cell_count(cells, nc, task, mi, o->eval_len[li], &o->eval_depth[di], &h);
                    if (a == 0)
                        fprintf(md, " - |");
                    else if (a == 1)
                        fprintf(md, " %s |", h ? "yes" : "no");
                    else
                        fprintf(md, " %u/%u |", h, a);
                }
                fprintf(md, " %u/%u |\n", hit, all);
            }
    }
    fclose(csv);
    fclose(js);
    fclose(md);
}

static void write_plots(const options *o, const cell *cells, uint32_t nc)
{
    char path[1024];
    if (!o->plots)
        return;
    /* heat maps: length (rows) x depth (columns); the fraction retrieved, -1 where no prompt ran
     * (a stopped run, or a merge of runs over different grids) */
    snprintf(path, sizeof path, "%s/eval.gp", o->eval_out);
    FILE *g = fopen(path, "w");
    if (!g)
        return;
    fprintf(g, "set terminal png size 700,450\nset cbrange [-1:1]\nunset colorbox\n"
               "set palette defined (-1 '#bdc3c7', -0.01 '#bdc3c7', 0 '#c0392b', 1 '#27ae60')\n"
               "set xlabel 'needle depth'\nset ylabel 'prompt tokens'\n");
    for (int task = 1; task <= 2; task++)
        for (uint32_t mi = 0; o->eval & task && mi < o->n_eval_method; mi++) {
            if (!method_ran(cells, nc, task, mi))
                continue;
            char dat[1100];
            snprintf(dat, sizeof dat, "%s/eval_%s_%u.dat", o->eval_out, TASK_NAME[task], mi);
            FILE *d = fopen(dat, "w");
            if (!d)
                continue;
            for (uint32_t li = 0; li < o->n_eval_len; li++) {
                for (uint32_t di = 0; di < o->n_eval_depth; di++) {
                    uint32_t h, a = cell_count(cells, nc, task, mi, o->eval_len[li], &o->eval_depth[di], &h);
                    fprintf(d, "%u %u %.3f\n", di, li, a ? (double)h / a : -1.0);
                }
                fprintf(d, "\n");
            }
            fclose(d);
            fprintf(g, "set output 'eval_%s_%s.png'\nset title \"%s: %s\\n(green: retrieved, red: missed, grey: not run)\"\n",
                    TASK_NAME[task], method_label(o->eval_method[mi]), TASK_NAME[task],
                    method_label(o->eval_method[mi]));
            fprintf(g, "set xtics (");
            for (uint32_t di = 0; di < o->n_eval_depth; di++)
                fprintf(g, "%s'%.2f' %u", di ? ", " : "", o->eval_depth[di], di);
            fprintf(g, ")\nset ytics (");
            for (uint32_t li = 0; li < o->n_eval_len; li++)
                fprintf(g, "%s'%u' %u", li ? ", " : "", o->eval_len[li], li);
            /* one filled box a cell: gnuplot's "image" wants a grid of at least 2 x 2 */
            fprintf(g, ")\nset xrange [-0.5:%u.5]\nset yrange [-0.5:%u.5]\nplot 'eval_%s_%u.dat' using "
                       "1:2:(0.5):(0.5):3 with boxxyerror fill solid noborder lc palette notitle\n",
                    o->n_eval_depth - 1, o->n_eval_len - 1, TASK_NAME[task], mi);
        }
    fclose(g);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "cd '%s' && gnuplot eval.gp", o->eval_out);
    if (system("command -v gnuplot >/dev/null 2>&1") != 0)
        fprintf(stderr, "esa-run: gnuplot not found: no heat maps (apt-get install gnuplot-nox)\n");
    else if (system(cmd) != 0)
        fprintf(stderr, "esa-run: gnuplot failed on %s/eval.gp\n", o->eval_out);
}

/* The end of a run or a merge: the tables, the heat maps, eval.md on stdout. */
static void write_results(const options *o, const cell *cells, uint32_t nc, const char *cmdline)
{
    write_tables(o, cells, nc, cmdline);
    write_plots(o, cells, nc);
    tool_print_file(o->eval_out, "eval.md");
}

/* --eval-out, made if missing (its parent must exist). 1 on success. */
static int make_out(const char *dir)
{
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return fprintf(stderr, "esa-run: cannot create %s: %s\n", dir, strerror(errno)), 0;
    return 1;
}

/* the command line, for the tables */
static void command_line(int argc, char **argv, char *out, size_t size)
{
    snprintf(out, size, "esa-run");
    for (int i = 1; i < argc; i++) {
        size_t l = strlen(out);
        snprintf(out + l, size - l, " %s", argv[i]);
    }
}

int run_eval(run *R, int argc, char **argv)
{
    options *o = &R->o;
    char cmdline[1024];
    command_line(argc, argv, cmdline, sizeof cmdline);
    if (!make_out(o->eval_out))
        return 0;
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
                    write_tables(o, cells, nc, cmdline);
                    fprintf(stderr, "esa-run eval [%u/%u, %.0f s]: %s %s, %u tokens, depth %.2f: %s\n", done, total,
                            now_s() - t0, TASK_NAME[task], method_label(m), c->tokens, c->depth,
                            c->found ? "retrieved" : "missed");
                }
    }
    write_results(o, cells, nc, cmdline);
    free(cells);
    return ok;
}

/* One eval.csv row into c (its method as an index into labels, added when new). 1 on success. */
static int parse_row(char *line, cell *c, char labels[][64], uint32_t *n_labels)
{
    char *f[8];
    int nf = 0;
    f[nf++] = line;
    for (char *p = line; *p && nf < 8; p++)
        if (*p == ',') {
            *p = 0;
            f[nf++] = p + 1;
        }
    if (nf < 8)
        return 0;
    *c = (cell){0};
    c->task = !strcmp(f[0], "passkey") ? TASK_PASSKEY : !strcmp(f[0], "multikey") ? TASK_MULTIKEY : 0;
    char *end;
    unsigned long len = strtoul(f[2], &end, 10), tokens, value;
    if (!c->task || !*f[1] || strlen(f[1]) >= 64 || *end || !len || len > UINT32_MAX)
        return 0;
    tokens = strtoul(f[3], &end, 10);
    if (*end || tokens > UINT32_MAX)
        return 0;
    c->depth = strtod(f[4], &end);
    if (*end || !(c->depth >= 0.0 && c->depth <= 1.0))
        return 0;
    value = strtoul(f[5], &end, 10);
    if (*end || value > UINT32_MAX || (strcmp(f[6], "0") && strcmp(f[6], "1")))
        return 0;
    c->length = (uint32_t)len;
    c->tokens = (uint32_t)tokens;
    c->value = (uint32_t)value;
    c->found = f[6][0] == '1';
    char *a = f[7];
    a[strcspn(a, "\r\n")] = 0;
    size_t al = strlen(a);
    if (al >= 2 && a[0] == '"' && a[al - 1] == '"')
        a[al - 1] = 0, a++;
    snprintf(c->answer, sizeof c->answer, "%s", a);
    uint32_t m = 0;
    while (m < *n_labels && strcmp(labels[m], f[1]))
        m++;
    if (m == *n_labels) {
        if (m == MAX_EVAL)
            return 0;
        snprintf(labels[m], 64, "%s", f[1]);
        ++*n_labels;
    }
    c->method = m;
    return 1;
}

/* adds v to the ascending list (n at most MAX_EVAL) unless it is there; 0 when full */
static int add_sorted(double *list, uint32_t *n, double v)
{
    for (uint32_t i = 0; i < *n; i++)
        if (list[i] == v)
            return 1;
    if (*n == MAX_EVAL)
        return 0;
    uint32_t i = (*n)++;
    for (; i > 0 && list[i - 1] > v; i--)
        list[i] = list[i - 1];
    list[i] = v;
    return 1;
}

int run_eval_merge(const options *in, int argc, char **argv)
{
    options o = *in;
    char labels[MAX_EVAL][64];
    double lengths[MAX_EVAL];
    uint32_t n_labels = 0, nc = 0, cap = 0;
    cell *cells = NULL;
    o.eval = 0;
    o.n_eval_len = o.n_eval_depth = 0;
    char *dirs = malloc(strlen(in->eval_merge) + 1);
    if (!dirs)
        return fprintf(stderr, "esa-run: out of memory\n"), 0;
    strcpy(dirs, in->eval_merge);
    int ok = 1;
    for (char *save = NULL, *d = strtok_r(dirs, ",", &save); ok && d; d = strtok_r(NULL, ",", &save)) {
        char path[1100], line[1024];
        snprintf(path, sizeof path, "%s/eval.csv", d);
        FILE *f = fopen(path, "r");
        if (!f) {
            fprintf(stderr, "esa-run: --eval-merge: cannot read %s: %s\n", path, strerror(errno));
            ok = 0;
            break;
        }
        if (!fgets(line, sizeof line, f) || strncmp(line, CSV_HEADER, strlen(CSV_HEADER))) {
            fprintf(stderr, "esa-run: --eval-merge: %s is not an esa-run eval.csv (its first line is not \"%s\")\n",
                    path, CSV_HEADER);
            ok = 0;
        }
        for (uint32_t ln = 2; ok && fgets(line, sizeof line, f); ln++) {
            if (nc == cap) {
                cell *grown = realloc(cells, (cap = cap ? 2 * cap : 64) * sizeof *cells);
                if (!grown) {
                    fprintf(stderr, "esa-run: out of memory\n");
                    ok = 0;
                    break;
                }
                cells = grown;
            }
            cell *c = &cells[nc];
            if (!parse_row(line, c, labels, &n_labels)) {
                fprintf(stderr, "esa-run: --eval-merge: %s line %u: not a row of esa-run's eval.csv (or over %d "
                                "methods)\n", path, ln, MAX_EVAL);
                ok = 0;
            } else if (!add_sorted(lengths, &o.n_eval_len, c->length) ||
                       !add_sorted(o.eval_depth, &o.n_eval_depth, c->depth)) {
                fprintf(stderr, "esa-run: --eval-merge: over %d lengths or depths (%s line %u)\n", MAX_EVAL, path, ln);
                ok = 0;
            } else {
                o.eval |= c->task;
                nc++;
            }
        }
        fclose(f);
    }
    free(dirs);
    if (ok && !nc) {
        fprintf(stderr, "esa-run: --eval-merge: no prompts in %s\n", in->eval_merge);
        ok = 0;
    }
    ok = ok && make_out(o.eval_out);
    if (ok) {
        for (uint32_t m = 0; m < n_labels; m++)
            o.eval_method[m] = labels[m];
        for (uint32_t li = 0; li < o.n_eval_len; li++)
            o.eval_len[li] = (uint32_t)lengths[li];
        o.n_eval_method = n_labels;
        char cmdline[1024];
        command_line(argc, argv, cmdline, sizeof cmdline);
        write_results(&o, cells, nc, cmdline);
    }
    free(cells);
    return ok;
}
