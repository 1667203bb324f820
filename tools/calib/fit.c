/* fit.c - closed-form, PCA and random compressions for ESA scores (fit.h has the math and the
 * paper it comes from). Gram matrices are accumulated with BLAS (dsyrk); eigen and singular
 * value decompositions come from LAPACK (dsyevd, dgesdd). */
#include "fit.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK 256 /* vectors converted to double per dsyrk call */

int fit_data_init(fit_data *f, uint32_t n_heads, uint32_t n_kv_heads, uint32_t head_dim)
{
    memset(f, 0, sizeof *f);
    if (!n_heads || !n_kv_heads || !head_dim || n_heads % n_kv_heads)
        return -1;
    f->n_heads = n_heads;
    f->n_kv_heads = n_kv_heads;
    f->head_dim = head_dim;
    f->hd = n_heads * head_dim;
    f->gd = n_kv_heads * head_dim;
    f->cq = calloc((size_t)f->hd * f->hd, sizeof(double));
    f->ck = calloc((size_t)f->gd * f->gd, sizeof(double));
    if (!f->cq || !f->ck) {
        fit_data_free(f);
        return -1;
    }
    return 0;
}

void fit_data_free(fit_data *f)
{
    free(f->cq);
    free(f->ck);
    f->cq = f->ck = NULL;
}

/* c[dim][dim] (upper triangle) += x^T x for x [n][dim] */
static void add_gram(double *c, uint32_t dim, const float *x, uint32_t n)
{
    double *blk = malloc(sizeof(double) * BLOCK * dim);
    if (!blk) { /* one vector at a time, without the scratch */
        for (uint32_t t = 0; t < n; t++)
            for (uint32_t i = 0; i < dim; i++)
                for (uint32_t j = i; j < dim; j++)
                    c[(size_t)i * dim + j] += (double)x[(size_t)t * dim + i] * x[(size_t)t * dim + j];
        return;
    }
    for (uint32_t t0 = 0; t0 < n; t0 += BLOCK) {
        uint32_t m = n - t0 < BLOCK ? n - t0 : BLOCK;
        for (size_t i = 0; i < (size_t)m * dim; i++)
            blk[i] = x[(size_t)t0 * dim + i];
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)dim, (int)m, 1.0, blk, (int)dim, 1.0, c, (int)dim);
    }
    free(blk);
}

void fit_data_add_queries(fit_data *f, const float *q, uint32_t n)
{
    add_gram(f->cq, f->hd, q, n);
    f->nq += n;
}

void fit_data_add_keys(fit_data *f, const float *k, uint32_t n)
{
    add_gram(f->ck, f->gd, k, n);
    f->nk += n;
}

/* The full symmetric matrix from an upper triangle, plus ridge * mean eigenvalue on the
 * diagonal. */
static double *symmetric(const double *up, uint32_t dim, double ridge)
{
    double *m = malloc(sizeof(double) * dim * dim);
    if (!m)
        return NULL;
    double trace = 0;
    for (uint32_t i = 0; i < dim; i++) {
        trace += up[(size_t)i * dim + i];
        for (uint32_t j = i; j < dim; j++)
            m[(size_t)i * dim + j] = m[(size_t)j * dim + i] = up[(size_t)i * dim + j];
    }
    for (uint32_t i = 0; i < dim; i++)
        m[(size_t)i * dim + i] += ridge * trace / dim;
    return m;
}

/* Eigen-decomposition of a symmetric dim x dim matrix (overwritten by its eigenvectors, as
 * columns, eigenvalues ascending). Returns 0 or -2. */
static int eig(double *m, uint32_t dim, double *w)
{
    return LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'U', (lapack_int)dim, m, (lapack_int)dim, w) == 0 ? 0 : -2;
}

/* Whitening of one side: the eigenvectors with eigenvalue above a floor, as columns of
 * v [dim][r] scaled by sqrt(eigenvalue) (s) and 1/sqrt (inv), largest first. *r their count. */
typedef struct side {
    double *v;    /* [dim][r] eigenvectors */
    double *s;    /* [r] sqrt(eigenvalue) */
    uint32_t r;
} side;

static int whiten(const double *gram, uint32_t dim, double ridge, side *out)
{
    memset(out, 0, sizeof *out);
    double *m = symmetric(gram, dim, ridge), *w = malloc(sizeof(double) * dim);
    int rc = m && w ? eig(m, dim, w) : -1;
    if (rc == 0 && !(w[dim - 1] > 0))
        rc = -2; /* no data */
    if (rc == 0) {
        double floor = w[dim - 1] * 1e-12;
        uint32_t r = 0;
        while (r < dim && w[dim - 1 - r] > floor)
            r++;
        out->v = malloc(sizeof(double) * dim * r);
        out->s = malloc(sizeof(double) * r);
        if (!out->v || !out->s)
            rc = -1;
        for (uint32_t j = 0; rc == 0 && j < r; j++) {
            uint32_t src = dim - 1 - j;
            out->s[j] = sqrt(w[src]);
            for (uint32_t i = 0; i < dim; i++)
                out->v[(size_t)i * r + j] = m[(size_t)i * dim + src];
        }
        out->r = r;
    }
    free(m);
    free(w);
    return rc;
}

static void side_free(side *s)
{
    free(s->v);
    free(s->s);
}

/* Row i of R x for x [gd][cols]: query dim i reads key dim (group(i / d) * d + i % d). */
static const double *r_row(const fit_data *f, const double *x, uint32_t cols, uint32_t i)
{
    uint32_t d = f->head_dim, h = i / d, g = h / (f->n_heads / f->n_kv_heads);
    return x + (size_t)(g * d + i % d) * cols;
}

static int closed_form(const fit_data *f, uint32_t dc, double ridge, float *a, float *b)
{
    side q, k = {0};
    int rc = whiten(f->cq, f->hd, ridge, &q);
    if (rc == 0)
        rc = whiten(f->ck, f->gd, ridge, &k);
    uint32_t rq = q.r, rk = k.r, mn = rq < rk ? rq : rk;
    double *rvk = NULL, *x = NULL, *sv = NULL, *u = NULL, *vt = NULL;
    if (rc == 0) {
        rvk = malloc(sizeof(double) * f->hd * rk);
        x = malloc(sizeof(double) * rq * rk);
        sv = malloc(sizeof(double) * mn);
        u = malloc(sizeof(double) * rq * mn);
        vt = malloc(sizeof(double) * mn * rk);
        if (!rvk || !x || !sv || !u || !vt)
            rc = -1;
    }
    if (rc == 0) {
        /* X = Sq Vq^T (R Vk) Sk */
        for (uint32_t i = 0; i < f->hd; i++)
            memcpy(rvk + (size_t)i * rk, r_row(f, k.v, rk, i), sizeof(double) * rk);
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)rq, (int)rk, (int)f->hd, 1.0, q.v, (int)rq, rvk,
                    (int)rk, 0.0, x, (int)rk);
        for (uint32_t i = 0; i < rq; i++)
            for (uint32_t j = 0; j < rk; j++)
                x[(size_t)i * rk + j] *= q.s[i] * k.s[j];
        rc = LAPACKE_dgesdd(LAPACK_ROW_MAJOR, 'S', (lapack_int)rq, (lapack_int)rk, x, (lapack_int)rk, sv, u,
                            (lapack_int)mn, vt, (lapack_int)rk) == 0 ? 0 : -2;
    }
    if (rc == 0) {
        /* A row c = sqrt(s_c) * sum_j P[j][c] / Sq[j] * Vq[:, j]; B likewise with T and Vk */
        memset(a, 0, sizeof(float) * dc * f->hd);
        memset(b, 0, sizeof(float) * dc * f->gd);
        for (uint32_t c = 0; c < dc && c < mn; c++) {
            double g = sqrt(sv[c]);
            for (uint32_t i = 0; i < f->hd; i++) {
                double acc = 0;
                for (uint32_t j = 0; j < rq; j++)
                    acc += q.v[(size_t)i * rq + j] * u[(size_t)j * mn + c] / q.s[j];
                a[(size_t)c * f->hd + i] = (float)(g * acc);
            }
            for (uint32_t i = 0; i < f->gd; i++) {
                double acc = 0;
                for (uint32_t j = 0; j < rk; j++)
                    acc += k.v[(size_t)i * rk + j] * vt[(size_t)c * rk + j] / k.s[j];
                b[(size_t)c * f->gd + i] = (float)(g * acc);
            }
        }
    }
    side_free(&q);
    side_free(&k);
    free(rvk);
    free(x);
    free(sv);
    free(u);
    free(vt);
    return rc;
}

static int pca(const fit_data *f, uint32_t dc, float *a, float *b)
{
    side k;
    int rc = whiten(f->ck, f->gd, 0.0, &k);
    if (rc != 0)
        return rc;
    memset(a, 0, sizeof(float) * dc * f->hd);
    memset(b, 0, sizeof(float) * dc * f->gd);
    for (uint32_t c = 0; c < dc && c < k.r; c++) {
        for (uint32_t i = 0; i < f->gd; i++)
            b[(size_t)c * f->gd + i] = (float)k.v[(size_t)i * k.r + c];
        for (uint32_t i = 0; i < f->hd; i++)
            a[(size_t)c * f->hd + i] = (float)r_row(f, k.v, k.r, i)[c];
    }
    side_free(&k);
    return 0;
}

static uint64_t next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void random_maps(const fit_data *f, uint32_t dc, uint64_t seed, float *a, float *b)
{
    uint64_t s = seed;
    double scale = 1.0 / sqrt((double)dc);
    for (size_t i = 0; i < (size_t)dc * f->gd; i++) { /* Box-Muller */
        double u1 = ((next(&s) >> 11) + 1.0) / 9007199254740993.0, u2 = (next(&s) >> 11) / 9007199254740992.0;
        b[i] = (float)(scale * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
    }
    uint32_t d = f->head_dim, per = f->n_heads / f->n_kv_heads;
    for (uint32_t c = 0; c < dc; c++)
        for (uint32_t i = 0; i < f->hd; i++)
            a[(size_t)c * f->hd + i] = b[(size_t)c * f->gd + (i / d / per) * d + i % d];
}

int fit_compute(const fit_data *f, fit_method method, uint32_t dc, double ridge, uint64_t seed, float *a, float *b)
{
    if (!f || !a || !b || dc == 0)
        return -2;
    switch (method) {
    case FIT_CLOSED_FORM: return closed_form(f, dc, ridge, a, b);
    case FIT_PCA: return pca(f, dc, a, b);
    case FIT_RANDOM: random_maps(f, dc, seed, a, b); return 0;
    }
    return -2;
}

double fit_objective(const fit_data *f, const float *a, const float *b, uint32_t dc)
{
    uint32_t hd = f->hd, gd = f->gd;
    double *m = calloc((size_t)hd * gd, sizeof(double)), *t1 = malloc(sizeof(double) * hd * gd),
           *t2 = malloc(sizeof(double) * hd * gd), *cq = symmetric(f->cq, hd, 0.0), *ck = symmetric(f->ck, gd, 0.0);
    double obj = -1;
    if (m && t1 && t2 && cq && ck) {
        /* M = R - A^T B */
        uint32_t d = f->head_dim, per = f->n_heads / f->n_kv_heads;
        for (uint32_t i = 0; i < hd; i++)
            m[(size_t)i * gd + (i / d / per) * d + i % d] = 1.0;
        if (a && b)
            for (uint32_t c = 0; c < dc; c++)
                for (uint32_t i = 0; i < hd; i++) {
                    double ai = a[(size_t)c * hd + i];
                    if (ai != 0)
                        for (uint32_t j = 0; j < gd; j++)
                            m[(size_t)i * gd + j] -= ai * b[(size_t)c * gd + j];
                }
        /* tr(M^T Cq M Ck) = sum (Cq M) .* (M Ck) */
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)hd, (int)gd, (int)hd, 1.0, cq, (int)hd, m, (int)gd,
                    0.0, t1, (int)gd);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)hd, (int)gd, (int)gd, 1.0, m, (int)gd, ck, (int)gd,
                    0.0, t2, (int)gd);
        obj = 0;
        for (size_t i = 0; i < (size_t)hd * gd; i++)
            obj += t1[i] * t2[i];
    }
    free(m);
    free(t1);
    free(t2);
    free(cq);
    free(ck);
    return obj;
}

const char *fit_method_name(fit_method m)
{
    static const char *const names[] = {"closed-form", "pca", "random"};
    return (unsigned)m < 3 ? names[m] : "?";
}
