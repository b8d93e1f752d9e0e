/* Row conversions and dot products for every supported type: the plain, readable
 * reference forms. Faster SIMD forms (a later issue) must match these. n is a multiple of
 * the type's block size in every call. */
#ifndef MESHLM_CORE_QUANT_H
#define MESHLM_CORE_QUANT_H

#include <stdbool.h>
#include <stdint.h>

/* dst[0..n) = the values encoded in the row src. */
void meshlm_dequantize_row(int type, const void *src, float *dst, int64_t n);

/* Encodes src[0..n) into meshlm_type_row_bytes(type, n) bytes at dst. Deterministic;
 * for K-quants a simple (not optimal) search of scales is fine. */
void meshlm_quantize_row(int type, const float *src, void *dst, int64_t n);

/* sum_i row[i] * x[i], where row is encoded in type and x is f32. */
float meshlm_vec_dot(int type, const void *row, const float *x, int64_t n);

/* True if type has a codec here (every type meshlm_type_supported accepts). */
bool meshlm_quant_supported(int type);

#endif
