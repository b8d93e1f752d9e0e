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

/* ---- The integer path: int8 activations ----
 * For weights in Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K and Q6_K, matmul quantizes each
 * activation row once to int8 blocks and takes integer dots with the weight rows
 * (definitions in kernels_q8.c). Results are bit for bit the same on the scalar and the
 * AVX2 paths, for one token or many, and a row's result depends only on that row. */

/* Bytes of one activation row of n values quantized for weights of type; 0 when type
 * keeps f32 activations (F32, F16, BF16 and any other). */
size_t meshlm_act_row_bytes(int type, int64_t n);

/* Values per activation block for weights of type (32 or 256 int8 blocks, or
 * MESHLM_ACT_BF16: BF16 activations for BF16 weights where the CPU has AVX512-BF16), 0 for
 * f32 activations. Two types with the same block share one quantized activation row. */
#define MESHLM_ACT_BF16 2
int meshlm_act_block(int type);

/* x[0..n) quantized for weights of type into meshlm_act_row_bytes(type, n) bytes at dst;
 * the fastest quantizer of this CPU path, byte for byte meshlm_quantize_act_ref. Quantized
 * rows hold floats: dst (and act below) must be 4-byte aligned; weight rows need not be. */
void meshlm_quantize_act(int type, const float *x, void *dst, int64_t n);
void meshlm_quantize_act_ref(int type, const float *x, void *dst, int64_t n);

/* The dot of a weight row of type with a quantized activation row: the fastest kernel,
 * bit for bit meshlm_vec_qdot_ref. It differs from meshlm_vec_dot(row, x) by the rounding
 * of the activations: at most sum over blocks of (d_a / 2) * sum_i |w_i| (d_a = the block's
 * activation scale), plus f32 rounding. */
float meshlm_vec_qdot(int type, const void *row, const void *act, int64_t n);
float meshlm_vec_qdot_ref(int type, const void *row, const void *act, int64_t n);

/* y[r + t * y_stride] = meshlm_vec_qdot(type, rows + r * row_stride bytes, act + t *
 * act_stride bytes, n) for r < n_rows and t < n_tok, bit for bit; each weight block is
 * decoded once for several tokens. */
void meshlm_vec_qdot_rows(int type, const void *rows, size_t row_stride, int64_t n_rows, const void *act,
                          size_t act_stride, int64_t n, int64_t n_tok, float *y, int64_t y_stride);

/* True when type's rows kernel does its own cache blocking (the AMX tiles, which restage
 * the activations once per call) and so wants each thread's whole range in one call. */
bool meshlm_vec_qdot_rows_whole(int type);

/* True if type has a codec here (every type meshlm_type_supported accepts). */
bool meshlm_quant_supported(int type);

#endif
