/* The integer path's definitions: activations quantized to int8 blocks, and the dot of a
 * weight row with such a row, written plainly. The SIMD kernels (kernels_q8_avx2.c) must
 * give these exact bits, so every float operation here is spelled out in its order.
 *
 * Quantizing a block: amax = the largest |x|, d = amax / 127, q = x * (127 / amax) rounded
 * to nearest, ties to even (the CPU's default mode, as lrintf and cvtps2dq use), clamped
 * to [-127, 127] (a NaN gives -127). Blocks depend only on their own values.
 *
 * Dot of a row with a quantized activation row, Q8_0, Q4_0 and MXFP4 (block order): a
 * block's 32 products of codes sum exactly to one integer, which becomes a float and is
 * added with one fused multiply-add, acc = fma(sum, d_w * d_a, acc), block after block.
 * MXFP4's codes are its table's int8 values (twice E2M1) and d_w its exponent's half
 * scale, so d_w * d_a only moves d_a's exponent: exact unless it leaves the normal range. This is the order
 * an AMX tile gives (one int32 per row and token and block), so their prefill and batch
 * tiles and the one-token kernels agree bit for bit.
 *
 * The K-quants (block order too, per super-block): a super-block's 256 products, each
 * times its sub-block scale, sum exactly to one integer, acc = fma(sum, d_w * d_a, acc).
 * Q4_K and Q5_K take their mins in a second chain, accm = fma(sum of m_j times the
 * activation's sub-block sums, dmin * d_a, accm), subtracted at the end; Q6_K's offset 32
 * comes off inside the integer, so it has one chain.
 *
 * Q4_1, Q5_0, Q5_1 (lane order): the products of codes are summed exactly in integers, in
 * eight lanes: lane l takes elements 4l..4l+3 of every 32 elements (the int32 lanes of an
 * AVX2 madd over a 32-byte block). Per block each lane's integer becomes a float and is
 * added with one fused multiply-add, acc[l] = fma(lane, d_w * d_a, acc[l]); the lanes then
 * sum as a tree, (0+4, 1+5, 2+6, 3+7), then (01+23), then the two. Q4_1 and Q5_1's min term
 * runs in one more f32 chain, added at the end. Only the float steps can differ between
 * orders of work, so fixing them fixes the bits. */
#include <math.h>
#include <string.h>

#include "core/dtype.h"
#include "core/kernels.h"
#include "core/quant_impl.h"

#define QK MESHLM_QK
#define QK_K MESHLM_QK_K

static float load_half(const uint8_t *p) {
    return meshlm_fp16_to_fp32((uint16_t)(p[0] | (p[1] << 8)));
}

/* x * id rounded to nearest even and clamped; a NaN maps to -127 as cvtps2dq's
 * out-of-range value does after the same clamp. */
static int act_code(float v) {
    if (!(v >= -127.0f)) return -127;
    if (v > 127.0f) return 127;
    return (int)lrintf(v);
}

/* Scale of a block and the factor that maps it onto [-127, 127]. */
static void act_scale(const float *x, int n, float *d, float *id) {
    float amax = 0.0f;
    for (int j = 0; j < n; j++) {
        float a = fabsf(x[j]);
        if (a > amax) amax = a;
    }
    *d = amax / 127.0f;
    *id = amax > 0.0f ? 127.0f / amax : 0.0f;
}

void meshlm_quantize_act32_ref(const float *x, meshlm_act32 *dst, int64_t n) {
    for (int64_t i = 0; i < n; i += QK, x += QK, dst++) {
        float id;
        act_scale(x, QK, &dst->d, &id);
        int sum = 0;
        for (int j = 0; j < QK; j++) {
            dst->q[j] = (int8_t)act_code(x[j] * id);
            sum += dst->q[j];
        }
        dst->s = dst->d * (float)sum;
    }
}

void meshlm_quantize_act256_ref(const float *x, meshlm_act256 *dst, int64_t n) {
    for (int64_t i = 0; i < n; i += QK_K, x += QK_K, dst++) {
        float id;
        act_scale(x, QK_K, &dst->d, &id);
        for (int g = 0; g < QK_K / 16; g++) {
            int sum = 0;
            for (int j = 16 * g; j < 16 * g + 16; j++) {
                dst->q[j] = (int8_t)act_code(x[j] * id);
                sum += dst->q[j];
            }
            dst->bsum[g] = (int16_t)sum;
        }
    }
}

/* The lane tree of the header comment (the order of an AVX2 horizontal add). */
static float lane_sum(const float *acc) {
    float a0 = acc[0] + acc[4], a1 = acc[1] + acc[5], a2 = acc[2] + acc[6], a3 = acc[3] + acc[7];
    return (a0 + a2) + (a1 + a3);
}

/* Lane l of one 32-element block: sum of w[e] * q[e] for e in 4l..4l+3. */
static int lane_dot(const int *w, const int8_t *q, int l) {
    int p = 0;
    for (int e = 4 * l; e < 4 * l + 4; e++) p += w[e] * q[e];
    return p;
}

/* The 32 codes of a block of a 32-element type as integers, offset removed for the
 * symmetric formats (Q4_0: q - 8, Q5_0: q - 16, Q8_0 as stored, MXFP4 through its
 * table); the affine ones keep their unsigned codes and the min goes to the extra chain. */
static void codes32(int type, const uint8_t *b, int *w) {
    const uint8_t *qs;
    uint32_t qh = 0;
    int off = 0;
    switch (type) {
    case MESHLM_TYPE_Q8_0:
        for (int j = 0; j < QK; j++) w[j] = (int8_t)b[2 + j];
        return;
    case MESHLM_TYPE_MXFP4:
        for (int j = 0; j < QK / 2; j++) {
            w[j] = meshlm_mxfp4_values[b[1 + j] & 0xf];
            w[j + QK / 2] = meshlm_mxfp4_values[b[1 + j] >> 4];
        }
        return;
    case MESHLM_TYPE_Q4_0: qs = b + 2, off = 8; break;
    case MESHLM_TYPE_Q4_1: qs = b + 4; break;
    case MESHLM_TYPE_Q5_0: memcpy(&qh, b + 2, 4), qs = b + 6, off = 16; break;
    default: memcpy(&qh, b + 4, 4), qs = b + 8; break; /* Q5_1 */
    }
    for (int j = 0; j < QK / 2; j++) {
        w[j] = (qs[j] & 0xf) + (int)(((qh >> j) & 1) << 4) - off;
        w[j + QK / 2] = (qs[j] >> 4) + (int)(((qh >> (j + QK / 2)) & 1) << 4) - off;
    }
}

static float qdot32_block(int type, const uint8_t *b, const meshlm_act32 *a, int64_t n) {
    const size_t bytes = meshlm_type_block_bytes(type);
    float acc = 0.0f;
    int w[QK];
    for (int64_t i = 0; i < n; i += QK, b += bytes, a++) {
        codes32(type, b, w);
        int sum = 0;
        for (int j = 0; j < QK; j++) sum += w[j] * a->q[j];
        float dw = type == MESHLM_TYPE_MXFP4 ? meshlm_e8m0_to_fp32_half(b[0]) : load_half(b);
        acc = fmaf((float)sum, dw * a->d, acc);
    }
    return acc;
}

static float qdot32(int type, const uint8_t *b, const meshlm_act32 *a, int64_t n) {
    const size_t bytes = meshlm_type_block_bytes(type);
    const int affine = type == MESHLM_TYPE_Q4_1 || type == MESHLM_TYPE_Q5_1;
    float acc[8] = {0}, accm = 0.0f;
    int w[QK];
    for (int64_t i = 0; i < n; i += QK, b += bytes, a++) {
        codes32(type, b, w);
        float dd = load_half(b) * a->d;
        for (int l = 0; l < 8; l++) acc[l] = fmaf((float)lane_dot(w, a->q, l), dd, acc[l]);
        if (affine) accm = fmaf(load_half(b + 2), a->s, accm);
    }
    return lane_sum(acc) + accm;
}

/* Sub-block j's 6-bit scale and min from the 12 packed bytes (layout in quant_k.c). */
static void scale_min_k(const uint8_t *s, int j, int *sc, int *mn) {
    if (j < 4) {
        *sc = s[j] & 63;
        *mn = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0xf) | ((s[j - 4] >> 6) << 4);
        *mn = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

/* Q4_K and Q5_K: unsigned codes times their sub-block scales, one exact sum a super-block;
 * the mins against the activation's 16-element sums in the second chain. */
static float qdot_k_affine(int type, const uint8_t *b, const meshlm_act256 *a, int64_t n) {
    const int five = type == MESHLM_TYPE_Q5_K;
    const size_t bytes = five ? MESHLM_Q5K_BYTES : MESHLM_Q4K_BYTES;
    float acc = 0.0f, accm = 0.0f;
    for (int64_t i = 0; i < n; i += QK_K, b += bytes, a++) {
        const uint8_t *qh = b + 16, *qs = b + 16 + (five ? QK_K / 8 : 0);
        int sum = 0, mins = 0;
        for (int j = 0; j < QK_K / 32; j++) {
            int sc, mn, sub = 0;
            scale_min_k(b + 4, j, &sc, &mn);
            mins += mn * (a->bsum[2 * j] + a->bsum[2 * j + 1]);
            for (int l = 0; l < 32; l++) {
                int v = (qs[32 * (j / 2) + l] >> (4 * (j & 1))) & 0xf;
                if (five) v |= ((qh[l] >> j) & 1) << 4;
                sub += v * a->q[32 * j + l];
            }
            sum += sc * sub;
        }
        acc = fmaf((float)sum, load_half(b) * a->d, acc);
        accm = fmaf((float)mins, load_half(b + 2) * a->d, accm);
    }
    return acc - accm;
}

/* Q6_K: 6-bit codes less 32 times their signed 16-element scales, one exact sum a
 * super-block. */
static float qdot_q6_k(const uint8_t *b, const meshlm_act256 *a, int64_t n) {
    float acc = 0.0f;
    for (int64_t i = 0; i < n; i += QK_K, b += MESHLM_Q6K_BYTES, a++) {
        const uint8_t *ql = b, *qh = b + QK_K / 2;
        const int8_t *sc = (const int8_t *)(b + QK_K / 2 + QK_K / 4);
        int sum = 0;
        for (int e = 0; e < QK_K; e++) {
            int lo = (ql[64 * (e / 128) + e % 32 + 32 * ((e % 128 / 32) & 1)] >> ((e % 128) / 64 * 4)) & 0xf;
            int hi = (qh[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
            sum += sc[e / 16] * ((lo | (hi << 4)) - 32) * a->q[e];
        }
        acc = fmaf((float)sum, load_half(b + QK_K / 2 + QK_K / 4 + QK_K / 16) * a->d, acc);
    }
    return acc;
}

float meshlm_qdot_ref(int type, const void *row, const void *act, int64_t n) {
    switch (type) {
    case MESHLM_TYPE_Q8_0:
    case MESHLM_TYPE_Q4_0:
    case MESHLM_TYPE_MXFP4: return qdot32_block(type, row, act, n);
    case MESHLM_TYPE_Q4_1:
    case MESHLM_TYPE_Q5_0:
    case MESHLM_TYPE_Q5_1: return qdot32(type, row, act, n);
    case MESHLM_TYPE_Q4_K:
    case MESHLM_TYPE_Q5_K: return qdot_k_affine(type, row, act, n);
    case MESHLM_TYPE_Q6_K: return qdot_q6_k(row, act, n);
    case MESHLM_TYPE_BF16: return meshlm_qdot_bf16_ref(row, act, n);
    default: return 0.0f;
    }
}
