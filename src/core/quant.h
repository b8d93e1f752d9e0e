/* Row conversions and dot products for every supported type: the plain, readable
 * reference forms, plus the dot that dispatches to SIMD kernels which must match them. n is
 * a multiple of the type's block size in every call. */
#ifndef MESHLM_CORE_QUANT_H
#define MESHLM_CORE_QUANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* dst[0..n) = the values encoded in the row src. */
void meshlm_dequantize_row(int type, const void *src, float *dst, int64_t n);

/* Encodes src[0..n) into meshlm_type_row_bytes(type, n) bytes at dst. Deterministic;
 * for K-quants a simple (not optimal) search of scales is fine. */
void meshlm_quantize_row(int type, const float *src, void *dst, int64_t n);

/* sum_i row[i] * x[i], where row is encoded in type and x is f32: the fastest kernel the
 * CPU runs (see core/cpu.h; MESHLM_CPU=scalar forces the reference). Matches
 * meshlm_vec_dot_ref up to reassociation of f32 sums. */
float meshlm_vec_dot(int type, const void *row, const float *x, int64_t n);

/* y[t * y_stride] = meshlm_vec_dot(type, row, x + t * x_stride, n) for t < n_tok, bit for
 * bit, whatever n_tok is; faster than that loop because each block of the row is decoded
 * once for several tokens. */
void meshlm_vec_dot_multi(int type, const void *row, const float *x, int64_t n, int64_t n_tok, int64_t x_stride,
                          float *y, int64_t y_stride);

/* y[r + t * y_stride] = meshlm_vec_dot(type, rows + r * row_stride bytes, x + t * x_stride,
 * n) for r < n_rows and t < n_tok, bit for bit; several rows share each token's x while it
 * is in L1. */
void meshlm_vec_dot_rows(int type, const void *rows, size_t row_stride, int64_t n_rows, const float *x, int64_t n,
                         int64_t n_tok, int64_t x_stride, float *y, int64_t y_stride);

/* The reference dot, on every CPU: decodes a chunk (a block, or 256 elements of a float
 * type) at a time, sums it in f32 and adds the chunk sums in order. */
float meshlm_vec_dot_ref(int type, const void *row, const float *x, int64_t n);

/* True if type has a codec here (every type meshlm_type_supported accepts). */
bool meshlm_quant_supported(int type);

#endif
