/* fit.h - the query/key compressions of ESA's selection (ESA-SPEC section 6), fit offline from
 * calibration data: the closed-form optimum of the paper's objective, PCA and random
 * projections as baselines.
 *
 * Notation (ESA-SPEC 4): a query q (length H*d, the H heads concatenated, rotated at the global
 * position w) and a pre-RoPE key k (length G*d) score f = q . R k, where R [H*d][G*d] repeats
 * each KV head for the H/G query heads that read it. The compressions A [d'][H*d] and B
 * [d'][G*d] approximate it by (A q) . (B k) = q . W k with W = A^T B of rank d'.
 *
 * The paper (Wang et al., arXiv 2502.14477, section 3.3) minimises, over calibration pairs,
 *     sum_{c,m} (q_c . R k_m - (A q_c) . (B k_m))^2 = || Q (R - W) K^T ||_F^2
 * by gradient descent. That objective depends on the data only through the Gram matrices
 * Cq = Q^T Q and Ck = K^T K, and has a closed-form minimiser (reduced-rank regression):
 * with Cq = Vq Sq^2 Vq^T and Ck = Vk Sk^2 Vk^T, let X = Sq Vq^T R Vk Sk and X_d' its truncated
 * SVD P S T^T; then W = Vq Sq^-1 X_d' Sk^-1 Vk^T, factored as A = S^1/2 P^T Sq^-1 Vq^T and
 * B = S^1/2 T^T Sk^-1 Vk^T (Eckart-Young in the whitened coordinates). Everything here runs in
 * double precision through LAPACK and BLAS. */
#ifndef ESA_CALIB_FIT_H
#define ESA_CALIB_FIT_H

#include <stdint.h>

typedef enum fit_method {
    FIT_CLOSED_FORM = 0, /* the optimum of the objective above */
    FIT_PCA = 1,         /* keys projected on their top-d' principal directions: B = U^T,
                          * A = (R U)^T, U the top eigenvectors of Ck (the baseline the
                          * paper compares with) */
    FIT_RANDOM = 2       /* Gaussian B [d'][G*d] with entries of variance 1/d', A = B R^T
                          * (Johnson-Lindenstrauss: E[W] = R) */
} fit_method;

/* The sufficient statistics of one layer's calibration data. */
typedef struct fit_data {
    uint32_t n_heads, n_kv_heads, head_dim;
    uint32_t hd, gd;     /* H*d, G*d */
    double *cq;          /* [hd][hd] sum of q q^T */
    double *ck;          /* [gd][gd] sum of k k^T */
    uint64_t nq, nk;     /* vectors added */
} fit_data;

/* 0 on success, -1 out of memory. */
int fit_data_init(fit_data *f, uint32_t n_heads, uint32_t n_kv_heads, uint32_t head_dim);
void fit_data_free(fit_data *f);
/* Add n queries q [n][hd] (already rotated at w) or n keys k [n][gd]. */
void fit_data_add_queries(fit_data *f, const float *q, uint32_t n);
void fit_data_add_keys(fit_data *f, const float *k, uint32_t n);

/* A [dc][hd] and B [dc][gd], row-major (esa_cache_set_compression's layout). dc >= 1; rows
 * beyond the rank of the data are zero. ridge: added to both Gram matrices' diagonals as a
 * fraction of their mean eigenvalue (0: the exact optimum; a little keeps directions the
 * data barely spans from being amplified). seed: FIT_RANDOM only. Returns 0, -1 out of memory,
 * -2 when LAPACK fails (or there is no data). */
int fit_compute(const fit_data *f, fit_method method, uint32_t dc, double ridge, uint64_t seed, float *a,
                float *b);

/* The objective || Q (R - A^T B) K^T ||_F^2 = tr(M^T Cq M Ck), M = R - A^T B; with a = b = NULL
 * it is || Q R K^T ||_F^2 (nothing approximated). Negative when out of memory. */
double fit_objective(const fit_data *f, const float *a, const float *b, uint32_t dc);

const char *fit_method_name(fit_method m);

#endif
