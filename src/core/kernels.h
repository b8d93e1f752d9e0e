/* Internal to core: the per-type dot kernels that meshlm_vec_dot dispatches to. */
#ifndef MESHLM_CORE_KERNELS_H
#define MESHLM_CORE_KERNELS_H

#include <stdint.h>

/* sum_i row[i] * x[i] for one weight type; n > 0 and a multiple of the type's block. */
typedef float (*meshlm_dot_fn)(const void *row, const float *x, int64_t n);

/* The AVX2+FMA+F16C kernel for type, or NULL when there is none (or off x86). Calling one
 * is only valid on a CPU with those features. */
meshlm_dot_fn meshlm_dot_avx2(int type);

#endif
