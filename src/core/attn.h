/* The inner loops of decode attention over rows of encoded K and V (F32, F16, BF16 or Q8_0),
 * for one KV head and a few query heads that share it (GQA), so each row is decoded once
 * for all of them. model/attention.c cuts positions into pieces and calls these per run of
 * rows that sit consecutively in memory.
 *
 * The arithmetic is fixed so that every path gives the same bits (the scalar reference
 * here, the AVX2 forms in attn_avx2.c) and a run can be cut anywhere without changing them:
 * - a K or V value is decoded to f32 exactly as meshlm_dequantize_row decodes it;
 * - a score q . k sums in eight lanes, lane l taking elements l, l + 8, ... in order with
 *   fused multiply-adds from 0; the lanes add as ((l0 + l4) + (l2 + l6)) + ((l1 + l5) +
 *   (l3 + l7)), the tree of meshlm_hsum8; the result is multiplied by the scale;
 * - a piece's maximum and its sum of weights run in eight lanes too, lane l taking
 *   positions l, l + 8, ... of the piece, folded by the same tree (the maximum with
 *   a > b ? a : b, which skips NaNs);
 * - a weight is exp(score - max) by meshlm_attn_exp below;
 * - value d of a head's weighted sum is fma(w, V[d], acc[d]) over the rows in order. */
#ifndef MESHLM_CORE_ATTN_H
#define MESHLM_CORE_ATTN_H

#include <stddef.h>

/* Most query heads one call handles; more heads per KV head take several calls. */
#define MESHLM_ATTN_MAX_Q 8
/* Most values per head (the scalar reference decodes a row into a buffer this long). */
#define MESHLM_ATTN_MAX_DIM 1024

typedef struct meshlm_attn_kernels {
    /* s[j * s_stride + i] = scale * (q + j * hd) . K_i for rows i < n (k_stride bytes apart,
     * the first at k) and query heads j < nq <= MESHLM_ATTN_MAX_Q. */
    void (*scores)(const void *k, size_t k_stride, int n, const float *q, int nq, int hd, float scale, float *s,
                   size_t s_stride);
    /* Over s[0..n): *max = their maximum, s[i] = exp(s[i] - *max), *sum = the weights' sum. */
    void (*softmax)(float *s, int n, float *max, float *sum);
    /* acc[j * acc_stride + d] gains w[j * w_stride + i] * V_i[d] for rows i < n in order,
     * d < hd, j < nq <= MESHLM_ATTN_MAX_Q. */
    void (*wsum)(const void *v, size_t v_stride, int n, const float *w, size_t w_stride, int nq, int hd, float *acc,
                 size_t acc_stride);
} meshlm_attn_kernels;

/* The kernels this process's CPU path uses for rows of type with heads of hd values; NULL
 * for a type other than F32, F16, BF16 or Q8_0 (Q8_0 needs hd % 32 == 0). */
const meshlm_attn_kernels *meshlm_attn_kernels_get(int type, int hd);

/* The scalar reference, on every CPU. */
const meshlm_attn_kernels *meshlm_attn_kernels_ref(int type);

/* The AVX2+FMA+F16C forms, bit for bit the reference; NULL when there are none for this
 * type and hd (hd % 8 != 0, or off x86). Valid only on a CPU with those features. */
const meshlm_attn_kernels *meshlm_attn_kernels_avx2(int type, int hd);

/* exp(x) for x <= 0 in f32 operations any path repeats exactly: x clamped to -88, split as
 * n ln 2 + r with n = x / ln 2 rounded to nearest even, e^r by its Taylor series to r^7 in
 * Horner form with fused multiply-adds, times 2^n built from the exponent bits (0 for
 * n = -127). Within a few ulp of expf on [-87, 0]. */
float meshlm_attn_exp(float x);

/* The constants of meshlm_attn_exp, one definition for every path. */
#define MESHLM_ATTN_EXP_MIN (-88.0f)
#define MESHLM_ATTN_LOG2E 1.44269504f
#define MESHLM_ATTN_LN2_HI 0.693359375f    /* ln 2 to 10 bits, so n * LN2_HI is exact */
#define MESHLM_ATTN_LN2_LO (-2.12194440e-4f) /* ln 2 - LN2_HI */

#endif
