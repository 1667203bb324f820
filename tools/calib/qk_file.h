/* qk_file.h - calibration samples: every layer's queries and keys over a text, as a model
 * computes them, in a safetensors file (https://github.com/huggingface/safetensors: an 8-byte
 * little-endian header length, a JSON header, then the raw tensors), so any engine can write
 * the input of esa-calib.
 *
 * The file's tensors, for each layer l of the model:
 *   "layers.<l>.q"  F16 or F32 [n_tokens][H*d]: the queries, before RoPE, heads concatenated
 *   "layers.<l>.k"  F16 or F32 [n_tokens][G*d]: the keys, before RoPE
 * row t being the token at position t. "__metadata__" (all values strings):
 *   "format": "esa-vk qk 1", "n_layers", "n_heads", "n_kv_heads", "head_dim", "rope_dims",
 *   "rope_theta", "rope_style" ("interleaved" or "neox"), and optionally "source" (what text,
 *   which model) and "attention" (what attention the model ran with while writing them). */
#ifndef ESA_CALIB_QK_FILE_H
#define ESA_CALIB_QK_FILE_H

#include <stdint.h>
#include <stdio.h>

typedef struct qk_meta {
    uint32_t n_layers, n_heads, n_kv_heads, head_dim, rope_dims;
    float rope_theta;
    int neox;                 /* rope_style: 0 interleaved, 1 neox */
    uint32_t n_tokens;
    char source[256], attention[32];
} qk_meta;

typedef struct qk_file {
    FILE *f;
    qk_meta m;
    int f16;                  /* the tensors' dtype: 1 F16, 0 F32 */
    uint64_t data_start;      /* file offset of the data section */
    uint64_t *off;            /* [n_layers][2]: data offsets of q and k */
    uint64_t written;         /* rows written (writer): for a count check at close */
} qk_file;

/* Writer (F16): creates path with every tensor sized for m->n_tokens; rows are then written
 * in any order. 0, or -1 with a message in err. */
int qk_write_open(qk_file *w, const char *path, const qk_meta *m, char *err, size_t errsz);
/* Rows pos0 .. pos0 + n - 1 of one layer's q [n][H*d] and k [n][G*d] (rows past n_tokens are
 * dropped). 0 or -1 (I/O). */
int qk_write_rows(qk_file *w, uint32_t layer, uint32_t pos0, uint32_t n, const float *q, const float *k);
/* 0, or -1 when writing failed or not every row was written (the file is then removed). */
int qk_write_close(qk_file *w, const char *path, char *err, size_t errsz);

/* Reader: 0, or -1 with a message (not such a file, a missing tensor or key, shapes that
 * disagree with the metadata, a truncated file). */
int qk_read_open(qk_file *r, const char *path, char *err, size_t errsz);
/* Rows row0 .. row0 + n - 1 of layer's q (which 0) or k (1) as float. 0 or -1. */
int qk_read_rows(qk_file *r, uint32_t layer, int which, uint32_t row0, uint32_t n, float *out);
void qk_close(qk_file *r);

#endif
