/* Internal to core: the per-type dot kernels that meshlm_vec_dot dispatches to. */
#ifndef MESHLM_CORE_KERNELS_H
#define MESHLM_CORE_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* sum_i row[i] * x[i] for one weight type; n > 0 and a multiple of the type's block. */
typedef float (*meshlm_dot_fn)(const void *row, const float *x, int64_t n);

/* The AVX2+FMA+F16C kernel for type, or NULL when there is none (or off x86). Calling one
 * is only valid on a CPU with those features. */
meshlm_dot_fn meshlm_dot_avx2(int type);

/* dst[0..n) = row src decoded, bit for bit the reference decoder's values. */
typedef void (*meshlm_dequant_fn)(const void *src, float *dst, int64_t n);

/* The AVX2+F16C row decoder for type (F16, BF16), or NULL; same conditions as above. */
meshlm_dequant_fn meshlm_dequant_avx2(int type);

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

/* The integer path (kernels_q8.c defines it): x[0..n) quantized into the activation blocks
 * that type's weights pair with (meshlm_act32 or meshlm_act256, core/quant_impl.h). */
typedef void (*meshlm_act_quant_fn)(const float *x, void *dst, int64_t n);

/* The dot of a weight row with a quantized activation row. */
typedef float (*meshlm_qdot_fn)(const void *row, const void *act, int64_t n);

/* y[r + t * y_stride] = the meshlm_qdot_fn result for row r (row_stride bytes apart) and
 * activation row t (act_stride bytes apart), bit for bit, for r < n_rows, t < n_tok. */
typedef void (*meshlm_qdot_rows_fn)(const void *rows, size_t row_stride, int64_t n_rows, const void *act,
                                    size_t act_stride, int64_t n, int64_t n_tok, float *y, int64_t y_stride);

/* The AVX2+FMA+F16C forms (kernels_q8_avx2.c), bit for bit the references, or NULL; same
 * conditions as meshlm_dot_avx2. */
meshlm_act_quant_fn meshlm_act_quant_avx2(int type);
meshlm_qdot_fn meshlm_qdot_avx2(int type);
meshlm_qdot_rows_fn meshlm_qdot_rows_avx2(int type);

/* The same kernels with the AVX512-VNNI dot instructions on ymm registers, bit for bit the
 * AVX2 forms; valid only on a CPU that also has AVX512-VNNI and AVX512VL. */
meshlm_qdot_fn meshlm_qdot_vnni(int type);
meshlm_qdot_rows_fn meshlm_qdot_rows_vnni(int type);

/* BF16 activations for BF16 weights (kernels_bf16.c): a row of n values as BF16, zero
 * padded to a multiple of 32 (meshlm_act_bf16_bytes), and its dots with BF16 weight rows as
 * an AMX-BF16 tile computes them. The references run anywhere; the AVX-512 forms (NULL off
 * x86-64) need avx512f/bw/vl and avx512_bf16, and are bit for bit the references. */
size_t meshlm_act_bf16_bytes(int64_t n);
void meshlm_act_bf16_ref(const float *x, void *dst, int64_t n);
float meshlm_qdot_bf16_ref(const void *row, const void *act, int64_t n);
meshlm_act_quant_fn meshlm_act_bf16_avx512(void);
meshlm_qdot_fn meshlm_qdot_bf16_avx512(void);
meshlm_qdot_rows_fn meshlm_qrows_bf16_avx512(void);

/* The AMX-BF16 form of those rows (kernels_bf16_amx.c), or NULL off x86-64: bit for bit the
 * reference for every token count; rows past the last 16 take the AVX-512 form. Valid only
 * where those forms are and the CPU has AMX-BF16 with the OS's leave (caps.amx_bf16). */
meshlm_qdot_rows_fn meshlm_qrows_bf16_amx(void);

/* The AVX-512 VNNI forms (kernels_q8_avx512.c), bit for bit the references, or NULL for a
 * type without one. Calling one is only valid where meshlm_cpu_choose_avx512 allows. */
meshlm_qdot_fn meshlm_qdot_avx512(int type);
meshlm_qdot_rows_fn meshlm_qdot_rows_avx512(int type);

/* The AMX int8 form of the block-order rows (kernels_q8_amx.c) for Q8_0 and Q4_0, or NULL:
 * bit for bit the references; a single token, rows past the last 16 and rows of more than
 * 32768 values take the VNNI form. Valid only where meshlm_cpu_choose_amx allows. */
meshlm_qdot_rows_fn meshlm_qdot_rows_amx(int type);

/* The same kernel on Q8_0 or Q4_0 panels (core/panel.h), rows lo..hi of them, both multiples
 * of 16, for several tokens (longer rows in ranges): false, doing nothing, where it does not
 * apply. Valid only where meshlm_cpu_choose_amx allows. */
bool meshlm_panel_dot_amx_rows(int type, const void *w, size_t row_bytes, int64_t lo, int64_t hi, const void *act,
                               size_t act_stride, int64_t n, int64_t n_tok, float *y, int64_t y_stride);

#endif
