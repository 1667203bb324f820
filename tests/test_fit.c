/* test_fit.c - the compression fit (tools/calib/fit.c) on synthetic data: the closed form is
 * never worse than PCA or random maps on the objective, equals a brute-force optimum on a
 * problem small enough to search, and recovers planted low-rank structure exactly. */
#include "expect.h"
#include "calib/fit.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static uint64_t g_rng = 12345;
static double normal(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    double u1 = ((g_rng >> 11) + 1.0) / 9007199254740993.0;
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    double u2 = (g_rng >> 11) / 9007199254740992.0;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* Queries and keys with some correlation between dims (not isotropic), n of each. */
static void random_data(fit_data *f, uint32_t n)
{
    uint32_t hd = f->hd, gd = f->gd;
    float *q = malloc(sizeof(float) * n * hd), *k = malloc(sizeof(float) * n * gd);
    float *mq = malloc(sizeof(float) * hd * hd), *mk = malloc(sizeof(float) * gd * gd);
    for (uint32_t i = 0; i < hd * hd; i++)
        mq[i] = (float)normal() * (i % (hd + 1) == 0 ? 2.0f : 0.3f);
    for (uint32_t i = 0; i < gd * gd; i++)
        mk[i] = (float)normal() * (i % (gd + 1) == 0 ? 2.0f : 0.3f);
    float *z = malloc(sizeof(float) * (hd > gd ? hd : gd));
    for (uint32_t t = 0; t < n; t++) {
        for (uint32_t i = 0; i < hd; i++)
            z[i] = (float)normal() * (1.0f + 3.0f * (i < 4));
        for (uint32_t i = 0; i < hd; i++) {
            float s = 0;
            for (uint32_t j = 0; j < hd; j++)
                s += mq[i * hd + j] * z[j];
            q[(size_t)t * hd + i] = s;
        }
        for (uint32_t i = 0; i < gd; i++)
            z[i] = (float)normal() * (1.0f + 2.0f * (i % 5 == 0));
        for (uint32_t i = 0; i < gd; i++) {
            float s = 0;
            for (uint32_t j = 0; j < gd; j++)
                s += mk[i * gd + j] * z[j];
            k[(size_t)t * gd + i] = s;
        }
    }
    fit_data_add_queries(f, q, n);
    fit_data_add_keys(f, k, n);
    free(q);
    free(k);
    free(mq);
    free(mk);
    free(z);
}

static double objective_of(const fit_data *f, fit_method m, uint32_t dc, double ridge)
{
    float *a = malloc(sizeof(float) * dc * f->hd), *b = malloc(sizeof(float) * dc * f->gd);
    int rc = fit_compute(f, m, dc, ridge, 99, a, b);
    EXPECT(rc == 0, "fit_compute(%s) returned %d", fit_method_name(m), rc);
    double o = rc == 0 ? fit_objective(f, a, b, dc) : INFINITY;
    free(a);
    free(b);
    return o;
}

/* Closed form <= PCA and <= random on the objective, for several shapes and d'. */
static void never_worse(void)
{
    static const uint32_t shapes[][4] = {{4, 2, 8, 4}, {4, 2, 8, 12}, {9, 3, 8, 8}, {6, 6, 4, 3}, {8, 1, 16, 5}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        fit_data f;
        EXPECT(fit_data_init(&f, shapes[s][0], shapes[s][1], shapes[s][2]) == 0, "init");
        random_data(&f, 600);
        uint32_t dc = shapes[s][3];
        double full = fit_objective(&f, NULL, NULL, dc);
        double cf = objective_of(&f, FIT_CLOSED_FORM, dc, 0.0), pc = objective_of(&f, FIT_PCA, dc, 0.0),
               rn = objective_of(&f, FIT_RANDOM, dc, 0.0);
        fprintf(stderr, "H %u G %u d %u d' %u: objective / ||QRK^T||^2: closed form %.4f, PCA %.4f, random %.4f\n",
                shapes[s][0], shapes[s][1], shapes[s][2], dc, cf / full, pc / full, rn / full);
        EXPECT(cf <= pc * (1 + 1e-9) && cf <= rn * (1 + 1e-9), "shape %zu: closed form %g worse than PCA %g or random %g",
               s, cf, pc, rn);
        EXPECT(cf < 0.999 * pc, "shape %zu: closed form %g no better than PCA %g on correlated data", s, cf, pc);
        /* with d' at the full rank min(hd, gd) nothing is lost */
        uint32_t full_rank = f.hd < f.gd ? f.hd : f.gd;
        double exact = objective_of(&f, FIT_CLOSED_FORM, full_rank, 0.0);
        EXPECT(exact <= 1e-9 * full, "shape %zu: d' = %u leaves %g of %g", s, full_rank, exact, full);
        fit_data_free(&f);
    }
}

/* H 2, G 1, d 2 (hd 4, gd 2), d' 1: W = u v^T. For a direction v the best u is closed
 * (R Ck v / v^T Ck v) and the objective is tr(R^T Cq R Ck) - v^T Ck R^T Cq R Ck v / v^T Ck v;
 * a fine grid over the half circle of v finds the optimum by search. */
static void brute_force(void)
{
    for (int trial = 0; trial < 5; trial++) {
        fit_data f;
        fit_data_init(&f, 2, 1, 2);
        random_data(&f, 40);
        double cq[16], ck[4], r[8] = {1, 0, 0, 1, 1, 0, 0, 1}; /* R [4][2]: both heads read the one KV head */
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++)
                cq[i * 4 + j] = f.cq[(i < j ? i : j) * 4 + (i < j ? j : i)];
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 2; j++)
                ck[i * 2 + j] = f.ck[(i < j ? i : j) * 2 + (i < j ? j : i)];
        /* P = R^T Cq R (2x2), base = tr(P Ck) */
        double p[4] = {0};
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 2; j++)
                for (int a = 0; a < 4; a++)
                    for (int b = 0; b < 4; b++)
                        p[i * 2 + j] += r[a * 2 + i] * cq[a * 4 + b] * r[b * 2 + j];
        double base = 0;
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 2; j++)
                base += p[i * 2 + j] * ck[j * 2 + i];
        double best = INFINITY;
        for (int s = 0; s < 200000; s++) {
            double th = 3.141592653589793 * s / 200000, v[2] = {cos(th), sin(th)};
            double ckv[2] = {ck[0] * v[0] + ck[1] * v[1], ck[2] * v[0] + ck[3] * v[1]};
            double vckv = v[0] * ckv[0] + v[1] * ckv[1];
            double num = ckv[0] * (p[0] * ckv[0] + p[1] * ckv[1]) + ckv[1] * (p[2] * ckv[0] + p[3] * ckv[1]);
            double o = base - num / vckv;
            if (o < best)
                best = o;
        }
        double cf = objective_of(&f, FIT_CLOSED_FORM, 1, 0.0), full = fit_objective(&f, NULL, NULL, 1);
        EXPECT(fabs(cf - best) <= 1e-6 * full, "trial %d: closed form %.9g, search %.9g (of %.6g)", trial, cf, best, full);
        if (trial == 0)
            fprintf(stderr, "brute force: closed form %.9g, search over 200000 directions %.9g\n", cf, best);
        fit_data_free(&f);
    }
}

/* Scores of exact rank r: queries Z M^T plus components the scores cannot see (where the
 * heads of a group differ, the null space of R^T); keys isotropic. The closed form at d' = r
 * reproduces every score; PCA of the (isotropic) keys cannot know which r directions matter. */
static void planted(void)
{
    const uint32_t H = 4, G = 2, d = 8, r = 3, n = 500;
    fit_data f;
    fit_data_init(&f, H, G, d);
    uint32_t hd = f.hd, gd = f.gd;
    float *m = malloc(sizeof(float) * hd * r), *q = malloc(sizeof(float) * n * hd), *k = malloc(sizeof(float) * n * gd);
    for (uint32_t i = 0; i < hd * r; i++)
        m[i] = (float)normal();
    for (uint32_t t = 0; t < n; t++) {
        double z[3] = {normal(), normal(), normal()};
        for (uint32_t i = 0; i < hd; i++) {
            double s = 0;
            for (uint32_t j = 0; j < r; j++)
                s += m[i * r + j] * z[j];
            q[(size_t)t * hd + i] = (float)s;
        }
        /* add x to head 2g and -x to head 2g+1 of each group: R^T removes it */
        for (uint32_t g = 0; g < G; g++)
            for (uint32_t i = 0; i < d; i++) {
                float x = (float)(5.0 * normal());
                q[(size_t)t * hd + (2 * g) * d + i] += x;
                q[(size_t)t * hd + (2 * g + 1) * d + i] -= x;
            }
        for (uint32_t i = 0; i < gd; i++)
            k[(size_t)t * gd + i] = (float)normal();
    }
    fit_data_add_queries(&f, q, n);
    fit_data_add_keys(&f, k, n);
    double full = fit_objective(&f, NULL, NULL, r);
    double cf = objective_of(&f, FIT_CLOSED_FORM, r, 0.0), pc = objective_of(&f, FIT_PCA, r, 0.0);
    double cf_less = objective_of(&f, FIT_CLOSED_FORM, r - 1, 0.0);
    fprintf(stderr, "planted rank %u: closed form leaves %.3g of ||QRK^T||^2, PCA %.3f, closed form at d' %u %.3f\n", r,
            cf / full, pc / full, r - 1, cf_less / full);
    EXPECT(cf <= 1e-8 * full, "planted rank %u: closed form leaves %g of %g", r, cf, full);
    EXPECT(pc >= 0.1 * full, "planted: PCA unexpectedly recovers it (%g of %g)", pc, full);
    EXPECT(cf_less >= 0.01 * full, "planted: d' = %u should not suffice (%g of %g)", r - 1, cf_less, full);
    free(m);
    free(q);
    free(k);
    fit_data_free(&f);
}

int main(void)
{
    never_worse();
    brute_force();
    planted();
    /* arguments */
    fit_data f;
    EXPECT(fit_data_init(&f, 3, 2, 8) == -1, "H not a multiple of G accepted");
    fit_data_init(&f, 2, 1, 4);
    float a[8], b[4];
    EXPECT(fit_compute(&f, FIT_CLOSED_FORM, 1, 0.0, 0, a, b) == -2, "a fit without data succeeded");
    EXPECT(fit_compute(&f, FIT_CLOSED_FORM, 0, 0.0, 0, a, b) == -2, "d' = 0 accepted");
    fit_data_free(&f);
    return expect_finish("test_fit");
}
