/* Internal to the quant module: the K-quant row codecs (quant_k.c, reached through the
 * dispatch in quant.c; n a multiple of 256) and the helpers both files share. */
#ifndef MESHLM_CORE_QUANT_IMPL_H
#define MESHLM_CORE_QUANT_IMPL_H

#include <stdint.h>

#define MESHLM_QK_K 256

void meshlm_dequantize_row_q4_k(const void *src, float *dst, int64_t n);
void meshlm_dequantize_row_q5_k(const void *src, float *dst, int64_t n);
void meshlm_dequantize_row_q6_k(const void *src, float *dst, int64_t n);

void meshlm_quantize_row_q4_k(const float *src, void *dst, int64_t n);
void meshlm_quantize_row_q5_k(const float *src, void *dst, int64_t n);
void meshlm_quantize_row_q6_k(const float *src, void *dst, int64_t n);

/* The scale of a block, stored as an fp16 that stays finite: blocks whose range exceeds
 * what a half can scale clip instead of turning the whole block into inf and NaN. */
uint16_t meshlm_scale_to_fp16(float d);

/* v rounded to nearest and clamped into [lo, hi]; NaN gives lo. Clamping in float first
 * keeps the conversion defined for any input. */
int meshlm_round_clamp(float v, int lo, int hi);

#endif
