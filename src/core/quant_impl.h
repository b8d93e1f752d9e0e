/* Internal to the quant module: the K-quant row codecs (quant_k.c, reached through the
 * dispatch in quant.c; n a multiple of 256) and the helpers both files share. */
#ifndef MESHLM_CORE_QUANT_IMPL_H
#define MESHLM_CORE_QUANT_IMPL_H

#include <stdint.h>

#define MESHLM_QK 32    /* elements in a Q4_0 .. Q8_0 block */
#define MESHLM_QK_K 256 /* elements in a K-quant super-block */
#define MESHLM_ACT_ALIGN 256 /* a multiple of every activation block */

/* Bytes per block, as GGUF lays them out (scales first, then packed values). */
enum {
    MESHLM_Q4_0_BYTES = 2 + MESHLM_QK / 2,
    MESHLM_Q4_1_BYTES = 4 + MESHLM_QK / 2,
    MESHLM_Q5_0_BYTES = 2 + 4 + MESHLM_QK / 2,
    MESHLM_Q5_1_BYTES = 4 + 4 + MESHLM_QK / 2,
    MESHLM_Q8_0_BYTES = 2 + MESHLM_QK,
    MESHLM_MXFP4_BYTES = 1 + MESHLM_QK / 2,
    MESHLM_Q4K_BYTES = 2 + 2 + 12 + MESHLM_QK_K / 2,
    MESHLM_Q5K_BYTES = 2 + 2 + 12 + MESHLM_QK_K / 8 + MESHLM_QK_K / 2,
    MESHLM_Q6K_BYTES = MESHLM_QK_K / 2 + MESHLM_QK_K / 4 + MESHLM_QK_K / 16 + 2,
};

/* MXFP4's 16 E2M1 codes as integers, twice their values (0, 0.5, 1, 1.5, 2, 3, 4, 6 and
 * their negatives) so they fit int8; meshlm_e8m0_to_fp32_half's half scale undoes it. */
extern const int8_t meshlm_mxfp4_values[16];

/* Activations quantized for the integer dot kernels (core/quant.h, meshlm_quantize_act).
 * Weights in 32-element blocks pair with meshlm_act32: 32 int8 codes q, their scale d
 * (x ~ d * q) and s = d * sum(q), which the affine formats' min term needs. K-quants
 * pair with meshlm_act256: 256 codes, d, and the sum of each 16 codes. The scale is an
 * f32, not an f16: it costs 2 bytes a block of a row that lives in cache anyway, and the
 * weight-times-activation scale is then one f32 product of two exact values. */
typedef struct meshlm_act32 {
    float d, s;
    int8_t q[MESHLM_QK];
} meshlm_act32;

typedef struct meshlm_act256 {
    float d;
    int16_t bsum[MESHLM_QK_K / 16];
    int8_t q[MESHLM_QK_K];
} meshlm_act256;

/* The reference activation quantizers and integer dots (kernels_q8.c), the definitions the
 * SIMD forms reproduce bit for bit. */
void meshlm_quantize_act32_ref(const float *x, meshlm_act32 *dst, int64_t n);
void meshlm_quantize_act256_ref(const float *x, meshlm_act256 *dst, int64_t n);
float meshlm_qdot_ref(int type, const void *row, const void *act, int64_t n);

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
