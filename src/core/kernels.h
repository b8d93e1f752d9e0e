/* Internal to core: the per-type dot kernels that meshlm_vec_dot dispatches to. */
#ifndef MESHLM_CORE_KERNELS_H
#define MESHLM_CORE_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* sum_i row[i] * x[i] for one weight type; n > 0 and a multiple of the type's block. */
typedef float (*meshlm_dot_fn)(const void *row, const float *x, int64_t n);

/* The AVX2+FMA+F16C kernel for type, or NULL when there is none (or off x86). Calling one
 * is only valid on a CPU with those features. */
meshlm_dot_fn meshlm_dot_avx2(int type);

/* y[t * y_stride] = the dot of row with x + t * x_stride for t < n_tok, each bit for bit
 * what the meshlm_dot_fn of the same type and path returns for that token alone. */
typedef void (*meshlm_dot_multi_fn)(const void *row, const float *x, int64_t n, int64_t n_tok, int64_t x_stride,
                                    float *y, int64_t y_stride);

/* The AVX2+FMA+F16C multi-token kernel for type, or NULL; same conditions as
 * meshlm_dot_avx2. */
meshlm_dot_multi_fn meshlm_dot_multi_avx2(int type);

/* y[r + t * y_stride] = the dot of row r (row_stride bytes apart) with x + t * x_stride,
 * for r < n_rows and t < n_tok, each bit for bit the meshlm_dot_fn result. */
typedef void (*meshlm_dot_rows_fn)(const void *rows, size_t row_stride, int64_t n_rows, const float *x, int64_t n,
                                   int64_t n_tok, int64_t x_stride, float *y, int64_t y_stride);

/* The AVX2+FMA+F16C kernel over several rows for type, or NULL; same conditions as
 * meshlm_dot_avx2. */
meshlm_dot_rows_fn meshlm_dot_rows_avx2(int type);

#endif
