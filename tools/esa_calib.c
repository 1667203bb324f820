/* esa_calib.c - esa-calib: the offline calibration of ESA's query/key compressions (ESA-SPEC 6).
 *
 *   esa-calib fit SAMPLES --dim D' [--method closed-form|pca|random] [--global-pos W]
 *                 [--ridge R] [--tokens N] -o OUT.esac
 *       per layer, the compressions A, B from the queries and keys of a calibration text
 *       (SAMPLES: esa-run --dump-qk, tools/calib/qk_file.h), written as an esa-vk compression
 *       file (esa_compression_save) that esa_cache_load_compression and esa-run --compression
 *       load. Queries are rotated at W (default 4096, l_L's default: the w of ESA-SPEC 5), as the
 *       selection sees them.
 *   esa-calib recall SAMPLES MAPS.esac... [--top-k K --initial N --local N --chunk N --radius R]
 *                 [--out DIR]
 *       per layer, the top-k recall of selection by each compression file against selection
 *       by exact full-dimension scores (the same normalisation and proximity: esa_ref), on
 *       held-out samples: prefill chunks at three depths and decode queries at three, every one
 *       with more middle tokens than k. Writes recall.md (also on stdout), recall.csv,
 *       recall.json and recall.png (gnuplot) to DIR (default calib-out). */
#define _POSIX_C_SOURCE 200809L
#include "calib/fit.h"
#include "calib/qk_file.h"
#include "esa.h"
#include "esa_ref.h"
#include "tool_print.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define MAX_MAPS 8

static void usage(FILE *f)
{
    fprintf(f, "usage: esa-calib fit SAMPLES --dim D [--method closed-form|pca|random] [--global-pos W]\n"
               "                     [--ridge R] [--tokens N] [--seed S] -o OUT.esac\n"
               "       esa-calib recall SAMPLES MAPS.esac... [--top-k K] [--initial N] [--local N] [--chunk N]\n"
               "                     [--radius R] [--out DIR] [--no-plots]\n"
               "SAMPLES: queries and keys of a text (esa-run --dump-qk). fit writes the compressions of\n"
               "ESA-SPEC 6 for each layer; recall measures top-k recall of selection with them against\n"
               "exact full-dimension scores on held-out samples.\n");
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int parse_u32(const char *name, const char *s, uint32_t lo, uint32_t hi, uint32_t *out)
{
    char *e;
    errno = 0;
    unsigned long v = strtoul(s, &e, 10);
    if (e == s || *e || errno || v < lo || v > hi) {
        fprintf(stderr, "esa-calib: --%s takes an integer in %u..%u (got \"%s\")\n", name, lo, hi, s);
        return 0;
    }
    *out = (uint32_t)v;
    return 1;
}

/* Every query of rows [row0, row0 + n) of a layer, rotated at w: q [n][H*d]. */
static int rotated_queries(qk_file *r, uint32_t layer, uint32_t row0, uint32_t n, uint32_t w, float *q)
{
    if (qk_read_rows(r, layer, 0, row0, n, q) != 0)
        return 0;
    const qk_meta *m = &r->m;
    for (size_t i = 0; i < (size_t)n * m->n_heads; i++)
        esa_ref_rope(q + i * m->head_dim, m->head_dim, m->rope_dims, m->rope_theta, m->neox, (double)w);
    return 1;
}

/* The samples file, or 0 after saying why. */
static int open_samples(qk_file *r, const char *path)
{
    char err[512];
    if (qk_read_open(r, path, err, sizeof err) == 0)
        return 1;
    fprintf(stderr, "esa-calib: %s\n", err);
    return 0;
}

/* ---- fit ---------------------------------------------------------------------------------- */

static int cmd_fit(int argc, char **argv)
{
    const char *samples = NULL, *out = NULL, *method_name = "closed-form";
    uint32_t dc = 0, w = 4096, tokens = 0, seed = 1;
    double ridge = 0.0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = 1;
        if (a[0] != '-' && !samples)
            samples = a;
        else if (!strcmp(a, "--dim") && v)
            ok = parse_u32("dim", v, 8, 1024, &dc), i++;
        else if (!strcmp(a, "--method") && v)
            method_name = v, i++;
        else if (!strcmp(a, "--global-pos") && v)
            ok = parse_u32("global-pos", v, 1, 1u << 24, &w), i++;
        else if (!strcmp(a, "--tokens") && v)
            ok = parse_u32("tokens", v, 1, 1u << 26, &tokens), i++;
        else if (!strcmp(a, "--seed") && v)
            ok = parse_u32("seed", v, 0, UINT32_MAX, &seed), i++;
        else if (!strcmp(a, "--ridge") && v) {
            char *e;
            ridge = strtod(v, &e);
            ok = e != v && !*e && ridge >= 0 && ridge < 1;
            if (!ok)
                fprintf(stderr, "esa-calib: --ridge takes a number in [0, 1)\n");
            i++;
        } else if (!strcmp(a, "-o") && v)
            out = v, i++;
        else {
            fprintf(stderr, "esa-calib fit: unexpected \"%s\"\n", a);
            ok = 0;
        }
        if (!ok)
            return 2;
    }
    fit_method method = !strcmp(method_name, "closed-form") ? FIT_CLOSED_FORM
                        : !strcmp(method_name, "pca")       ? FIT_PCA
                        : !strcmp(method_name, "random")    ? FIT_RANDOM
                                                            : (fit_method)-1;
    if (!samples || !out || !dc || (int)method < 0) {
        if ((int)method < 0)
            fprintf(stderr, "esa-calib: --method takes closed-form, pca or random\n");
        usage(stderr);
        return 2;
    }
    if (dc % 8) {
        fprintf(stderr, "esa-calib: --dim must be a multiple of 8 (esa-vk reads compressed keys in blocks of 8)\n");
        return 2;
    }
    qk_file r;
    if (!open_samples(&r, samples))
        return 1;
    const qk_meta *m = &r.m;
    uint32_t n = tokens && tokens < m->n_tokens ? tokens : m->n_tokens, hd = m->n_heads * m->head_dim,
             gd = m->n_kv_heads * m->head_dim;
    if (dc > hd) {
        fprintf(stderr, "esa-calib: --dim %u exceeds H*d = %u\n", dc, hd);
        qk_close(&r);
        return 2;
    }
    fprintf(stderr, "esa-calib fit: %s (%s): %u layers, %u/%u heads of %u, %u tokens; %s, d' %u, w %u\n", samples,
            m->source, m->n_layers, m->n_heads, m->n_kv_heads, m->head_dim, n, fit_method_name(method), dc, w);
    float **a = calloc(m->n_layers, sizeof *a), **b = calloc(m->n_layers, sizeof *b);
    float *q = malloc(sizeof(float) * 1024 * hd), *k = malloc(sizeof(float) * 1024 * gd);
    int rc = a && b && q && k ? 0 : 1;
    double t0 = now_s();
    for (uint32_t l = 0; !rc && l < m->n_layers; l++) {
        fit_data f;
        a[l] = malloc(sizeof(float) * dc * hd);
        b[l] = malloc(sizeof(float) * dc * gd);
        if (!a[l] || !b[l] || fit_data_init(&f, m->n_heads, m->n_kv_heads, m->head_dim) != 0) {
            rc = 1;
            break;
        }
        for (uint32_t t = 0; !rc && t < n; t += 1024) {
            uint32_t c = n - t < 1024 ? n - t : 1024;
            if (!rotated_queries(&r, l, t, c, w, q) || qk_read_rows(&r, l, 1, t, c, k) != 0) {
                fprintf(stderr, "esa-calib: reading layer %u of %s failed\n", l, samples);
                rc = 1;
                break;
            }
            fit_data_add_queries(&f, q, c);
            fit_data_add_keys(&f, k, c);
        }
        int fr = rc ? 0 : fit_compute(&f, method, dc, ridge, (uint64_t)seed * 1000003u + l, a[l], b[l]);
        if (fr != 0) {
            fprintf(stderr, "esa-calib: layer %u: the fit failed (%s)\n", l, fr == -1 ? "out of memory" : "LAPACK");
            rc = 1;
        }
        if (!rc) {
            double full = fit_objective(&f, NULL, NULL, dc), left = fit_objective(&f, a[l], b[l], dc);
            fprintf(stderr, "  layer %2u: objective %.3e of ||Q R K^T||^2 left (%.1f s)\n", l, left / full,
                    now_s() - t0);
        }
        fit_data_free(&f);
    }
    if (!rc) {
        esa_compression_info info = {.n_layers = m->n_layers, .n_heads = m->n_heads, .n_kv_heads = m->n_kv_heads,
                                     .head_dim = m->head_dim, .compress_dim = dc, .rope_dims = m->rope_dims,
                                     .rope_theta = m->rope_theta,
                                     .rope_style = m->neox ? ESA_ROPE_NEOX : ESA_ROPE_INTERLEAVED,
                                     .global_pos = w, .method = (uint32_t)method};
        esa_status s = esa_compression_save(NULL, out, &info, (const float *const *)a, (const float *const *)b);
        if (s != ESA_SUCCESS) {
            fprintf(stderr, "esa-calib: writing %s: %s\n", out, esa_status_string(s));
            rc = 1;
        } else {
            fprintf(stderr, "esa-calib: wrote %s\n", out);
        }
    }
    for (uint32_t l = 0; a && b && l < m->n_layers; l++) {
        free(a[l]);
        free(b[l]);
    }
    free(a);
    free(b);
    free(q);
    free(k);
    qk_close(&r);
    return rc;
}

/* ---- recall ------------------------------------------------------------------------------- */

typedef struct maps {
    const char *path;
    esa_compression_info info;
    float *a, *b;            /* [n_layers][d'][H*d], [n_layers][d'][G*d] */
} maps;

/* One evaluation point: queries at rows [p, p + n) attend after the p cached tokens. */
typedef struct point {
    uint32_t p, n;
} point;

/* Top-k selection (esa_ref) of the middle of rows [0, p) for the queries qrot [n][H*d] with
 * the given compression (a NULL: exact scores); idx receives cfg.top_k positions. */
static void select_tokens(const esa_ref_config *base, const float *a, const float *b, uint32_t dc,
                          const float *qrot_pre, const float *keys, uint32_t p, uint32_t n, uint32_t *idx,
                          float *scratch_qc, float *scratch_kc, float *f, float *fp)
{
    esa_ref_config cfg = *base;
    cfg.exact_scores = a == NULL;
    cfg.compress_dim = dc;
    uint32_t gd = cfg.n_kv_heads * cfg.head_dim, kdim = a ? dc : gd;
    uint32_t lm = p - cfg.n_initial - cfg.n_local;
    /* queries arrive rotated at w already: esa_ref_compress_queries would rotate again, so
     * rotate at 0 (the identity) */
    cfg.global_pos = 0;
    esa_ref_compress_queries(&cfg, a, qrot_pre, n, scratch_qc);
    esa_ref_compress_keys(&cfg, b, keys + (size_t)cfg.n_initial * gd, lm, scratch_kc);
    esa_ref_importance(scratch_qc, n, scratch_kc, lm, kdim, f);
    esa_ref_proximity(f, lm, cfg.radius, fp);
    esa_ref_topk(fp, lm, cfg.top_k, idx);
}

static int cmd_recall(int argc, char **argv)
{
    const char *samples = NULL, *out_dir = "calib-out";
    maps mp[MAX_MAPS];
    uint32_t nm = 0, k = 2048, l_i = 128, l_l = 4096, chunk = 512, radius = 1;
    int plots = 1;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = 1;
        if (a[0] != '-' && !samples)
            samples = a;
        else if (a[0] != '-' && nm < MAX_MAPS)
            mp[nm++] = (maps){.path = a};
        else if (!strcmp(a, "--top-k") && v)
            ok = parse_u32("top-k", v, 1, ESA_MAX_TOP_K, &k), i++;
        else if (!strcmp(a, "--initial") && v)
            ok = parse_u32("initial", v, 1, 1u << 20, &l_i), i++;
        else if (!strcmp(a, "--local") && v)
            ok = parse_u32("local", v, 1, 1u << 20, &l_l), i++;
        else if (!strcmp(a, "--chunk") && v)
            ok = parse_u32("chunk", v, 1, 4096, &chunk), i++;
        else if (!strcmp(a, "--radius") && v)
            ok = parse_u32("radius", v, 0, ESA_MAX_RADIUS, &radius), i++;
        else if (!strcmp(a, "--out") && v)
            out_dir = v, i++;
        else if (!strcmp(a, "--no-plots"))
            plots = 0;
        else {
            fprintf(stderr, "esa-calib recall: unexpected \"%s\"%s\n", a, nm == MAX_MAPS ? " (8 maps at most)" : "");
            ok = 0;
        }
        if (!ok)
            return 2;
    }
    if (!samples || !nm) {
        usage(stderr);
        return 2;
    }
    qk_file r;
    if (!open_samples(&r, samples))
        return 1;
    const qk_meta *m = &r.m;
    const uint32_t hd = m->n_heads * m->head_dim, gd = m->n_kv_heads * m->head_dim, N = m->n_tokens;
    int rc = 0;
    uint32_t w = 0, max_dc = 0;
    for (uint32_t i = 0; i < nm && !rc; i++) {
        esa_compression_info *in = &mp[i].info;
        esa_status s = esa_compression_read(NULL, mp[i].path, in, NULL, NULL);
        if (s == ESA_SUCCESS && (in->n_layers != m->n_layers || in->n_heads != m->n_heads ||
                                 in->n_kv_heads != m->n_kv_heads || in->head_dim != m->head_dim ||
                                 in->rope_dims != m->rope_dims || in->rope_theta != m->rope_theta ||
                                 (in->rope_style == ESA_ROPE_NEOX) != m->neox || (i && in->global_pos != w))) {
            fprintf(stderr, "esa-calib: %s does not fit %s (another model shape, RoPE or w)\n", mp[i].path, samples);
            rc = 1;
            break;
        }
        if (s == ESA_SUCCESS) {
            mp[i].a = malloc(sizeof(float) * in->n_layers * in->compress_dim * hd);
            mp[i].b = malloc(sizeof(float) * in->n_layers * in->compress_dim * gd);
            s = mp[i].a && mp[i].b ? esa_compression_read(NULL, mp[i].path, in, mp[i].a, mp[i].b)
                                   : ESA_ERROR_OUT_OF_HOST_MEMORY;
        }
        if (s != ESA_SUCCESS) {
            fprintf(stderr, "esa-calib: %s: %s\n", mp[i].path, esa_status_string(s));
            rc = 1;
        }
        w = in->global_pos;
        max_dc = in->compress_dim > max_dc ? in->compress_dim : max_dc;
    }
    /* the evaluation points: chunks ending at 1/2, 3/4 and the end of the samples, decode
     * queries at the same depths; each needs more than k middle tokens */
    point pts[6];
    uint32_t np = 0;
    for (int kind = 0; kind < 2 && !rc; kind++)
        for (int e = 2; e <= 4; e++) {
            uint32_t n = kind ? 1 : chunk, end = (uint32_t)((uint64_t)N * (uint32_t)e / 4);
            if (end < n || end - n < l_i + l_l + k + 1)
                continue;
            pts[np++] = (point){end - n, n};
        }
    if (!rc && !np) {
        fprintf(stderr, "esa-calib: %u tokens of samples are too few: a point needs l_I + l_L + k + l_C = %u before "
                        "its queries\n", N, l_i + l_l + k + chunk);
        rc = 1;
    }
    esa_ref_config base = {.n_heads = m->n_heads, .n_kv_heads = m->n_kv_heads, .head_dim = m->head_dim,
                           .rope_dims = m->rope_dims, .rope_theta = m->rope_theta, .rope_neox = m->neox,
                           .n_initial = l_i, .n_local = l_l, .top_k = k, .radius = radius, .chunk = chunk};
    double *recall = calloc((size_t)m->n_layers * nm * 2, sizeof(double)); /* [layer][map][chunk, decode] */
    float *keys = malloc(sizeof(float) * N * gd), *q = malloc(sizeof(float) * chunk * hd);
    uint32_t lm_max = N, kd = gd > max_dc ? gd : max_dc;
    float *qc = malloc(sizeof(float) * chunk * kd), *kc = malloc(sizeof(float) * (size_t)lm_max * kd),
          *f = malloc(sizeof(float) * lm_max), *fp = malloc(sizeof(float) * lm_max);
    uint32_t *exact = malloc(sizeof(uint32_t) * k), *got = malloc(sizeof(uint32_t) * k);
    char *mark = calloc(lm_max, 1);
    if (!rc && (!recall || !keys || !q || !qc || !kc || !f || !fp || !exact || !got || !mark)) {
        fprintf(stderr, "esa-calib: out of memory\n");
        rc = 1;
    }
    if (!rc)
        fprintf(stderr, "esa-calib recall: %s (%s), %u tokens, %u layers; k %u, l_I %u, l_L %u, radius %u, w %u; %u "
                        "points (chunks of %u and decode queries)\n", samples, m->source, N, m->n_layers, k, l_i, l_l,
                radius, w, np, chunk);
    double t0 = now_s();
    for (uint32_t l = 0; !rc && l < m->n_layers; l++) {
        if (qk_read_rows(&r, l, 1, 0, N, keys) != 0) {
            rc = 1;
            break;
        }
        for (size_t i = 0; i < (size_t)N * gd; i++) /* as the cache stores them */
            keys[i] = esa_ref_f16_round(keys[i]);
        uint32_t count[2] = {0, 0};
        for (uint32_t pi = 0; pi < np && !rc; pi++) {
            const point *pt = &pts[pi];
            int kind = pt->n == 1;
            if (!rotated_queries(&r, l, pt->p, pt->n, w, q)) {
                rc = 1;
                break;
            }
            uint32_t lm = pt->p - l_i - l_l;
            select_tokens(&base, NULL, NULL, 0, q, keys, pt->p, pt->n, exact, qc, kc, f, fp);
            for (uint32_t i = 0; i < k; i++)
                mark[exact[i]] = 1;
            for (uint32_t mi = 0; mi < nm; mi++) {
                uint32_t dc = mp[mi].info.compress_dim;
                select_tokens(&base, mp[mi].a + (size_t)l * dc * hd, mp[mi].b + (size_t)l * dc * gd, dc, q, keys,
                              pt->p, pt->n, got, qc, kc, f, fp);
                uint32_t hit = 0;
                for (uint32_t i = 0; i < k; i++)
                    hit += mark[got[i]];
                recall[((size_t)l * nm + mi) * 2 + kind] += (double)hit / k;
            }
            memset(mark, 0, lm);
            count[kind]++;
        }
        for (uint32_t mi = 0; mi < nm; mi++)
            for (int kind = 0; kind < 2; kind++)
                if (count[kind])
                    recall[((size_t)l * nm + mi) * 2 + kind] /= count[kind];
        fprintf(stderr, "  layer %2u:", l);
        for (uint32_t mi = 0; mi < nm; mi++)
            fprintf(stderr, " %s %.3f/%.3f", mp[mi].path, recall[((size_t)l * nm + mi) * 2],
                    recall[((size_t)l * nm + mi) * 2 + 1]);
        fprintf(stderr, " (%.0f s)\n", now_s() - t0);
    }
    if (!rc) {
        if (mkdir(out_dir, 0755) != 0 && errno != EEXIST) {
            fprintf(stderr, "esa-calib: cannot create %s: %s\n", out_dir, strerror(errno));
            rc = 1;
        }
    }
    if (!rc) {
        char path[1024];
        static const char *const mname[] = {"closed-form", "pca", "random", "other"};
        snprintf(path, sizeof path, "%s/recall.csv", out_dir);
        FILE *csv = fopen(path, "w");
        snprintf(path, sizeof path, "%s/recall.md", out_dir);
        FILE *md = fopen(path, "w");
        snprintf(path, sizeof path, "%s/recall.json", out_dir);
        FILE *js = fopen(path, "w");
        snprintf(path, sizeof path, "%s/recall.dat", out_dir);
        FILE *dat = fopen(path, "w");
        if (!csv || !md || !js || !dat) {
            fprintf(stderr, "esa-calib: cannot write to %s\n", out_dir);
            rc = 1;
        }
        if (!rc) {
            fprintf(md, "Top-k recall against exact full-dimension selection: %s (%s), %u tokens; k %u, l_I %u, "
                        "l_L %u, radius %u, w %u; chunks of %u queries and single decode queries at 1/2, 3/4 and "
                        "the end of the text.\n\n| layer |", samples, m->source, N, k, l_i, l_l, radius, w, chunk);
            fprintf(csv, "layer");
            fprintf(js, "{\"samples\": \"%s\", \"tokens\": %u, \"top_k\": %u, \"n_initial\": %u, \"n_local\": %u, "
                        "\"radius\": %u, \"global_pos\": %u, \"chunk\": %u, \"maps\": [", samples, N, k, l_i, l_l,
                        radius, w, chunk);
            for (uint32_t mi = 0; mi < nm; mi++) {
                const char *mn = mname[mp[mi].info.method < 3 ? mp[mi].info.method : 3];
                fprintf(md, " %s d'=%u chunk | decode |", mn, mp[mi].info.compress_dim);
                fprintf(csv, ",%s_%u_chunk,%s_%u_decode", mn, mp[mi].info.compress_dim, mn, mp[mi].info.compress_dim);
                fprintf(js, "%s{\"file\": \"%s\", \"method\": \"%s\", \"compress_dim\": %u, \"recall\": [", mi ? ", " : "",
                        mp[mi].path, mn, mp[mi].info.compress_dim);
                for (uint32_t l = 0; l < m->n_layers; l++)
                    fprintf(js, "%s[%.5f, %.5f]", l ? ", " : "", recall[((size_t)l * nm + mi) * 2],
                            recall[((size_t)l * nm + mi) * 2 + 1]);
                fprintf(js, "]}");
            }
            fprintf(md, "\n|---|");
            for (uint32_t mi = 0; mi < nm; mi++)
                fprintf(md, "---:|---:|");
            fprintf(md, "\n");
            fprintf(csv, "\n");
            fprintf(js, "]}\n");
            double *mean = calloc((size_t)nm * 2, sizeof(double));
            for (uint32_t l = 0; l < m->n_layers; l++) {
                fprintf(md, "| %u |", l);
                fprintf(csv, "%u", l);
                fprintf(dat, "%u", l);
                for (uint32_t mi = 0; mi < nm; mi++)
                    for (int kind = 0; kind < 2; kind++) {
                        double v = recall[((size_t)l * nm + mi) * 2 + kind];
                        if (mean)
                            mean[mi * 2 + kind] += v / m->n_layers;
                        fprintf(md, " %.3f |", v);
                        fprintf(csv, ",%.5f", v);
                        fprintf(dat, " %.5f", v);
                    }
                fprintf(md, "\n");
                fprintf(csv, "\n");
                fprintf(dat, "\n");
            }
            fprintf(md, "| **mean** |");
            for (uint32_t mi = 0; mi < nm && mean; mi++)
                fprintf(md, " **%.3f** | **%.3f** |", mean[mi * 2], mean[mi * 2 + 1]);
            fprintf(md, "\n");
            free(mean);
        }
        if (csv)
            fclose(csv);
        if (md)
            fclose(md);
        if (js)
            fclose(js);
        if (dat)
            fclose(dat);
        if (!rc && plots) {
            snprintf(path, sizeof path, "%s/recall.gp", out_dir);
            FILE *g = fopen(path, "w");
            if (g) {
                fprintf(g, "set terminal png size 900,500\nset output 'recall.png'\nset grid\nset key bottom left\n"
                           "set title 'top-%u recall against exact selection, per layer (prefill chunks)'\n"
                           "set xlabel 'layer'\nset ylabel 'recall'\nset yrange [0:1.02]\nset style data linespoints\n"
                           "plot ", k);
                for (uint32_t mi = 0; mi < nm; mi++)
                    fprintf(g, "%s'recall.dat' using 1:%u title '%s (d'' %u)'", mi ? ", " : "", 2 + 2 * mi,
                            mname[mp[mi].info.method < 3 ? mp[mi].info.method : 3], mp[mi].info.compress_dim);
                fprintf(g, "\n");
                fclose(g);
                char cmd[1200];
                snprintf(cmd, sizeof cmd, "cd '%s' && gnuplot recall.gp", out_dir);
                if (system("command -v gnuplot >/dev/null 2>&1") != 0)
                    fprintf(stderr, "esa-calib: gnuplot not found: no recall.png (apt-get install gnuplot-nox)\n");
                else if (system(cmd) != 0)
                    fprintf(stderr, "esa-calib: gnuplot failed on %s/recall.gp\n", out_dir);
            }
        }
        if (!rc)
            tool_print_file(out_dir, "recall.md");
    }
    for (uint32_t i = 0; i < nm; i++) {
        free(mp[i].a);
        free(mp[i].b);
    }
    free(recall);
    free(keys);
    free(q);
    free(qc);
    free(kc);
    free(f);
    free(fp);
    free(exact);
    free(got);
    free(mark);
    qk_close(&r);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "fit"))
        return cmd_fit(argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "recall"))
        return cmd_recall(argc, argv);
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        usage(stdout);
        return 0;
    }
    usage(stderr);
    return 2;
}
