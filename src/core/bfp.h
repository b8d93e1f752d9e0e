/* Block floats, the seed system's weight formats: 16 values share one 8-bit exponent and
 * each keeps a sign and a magnitude (BFP8: 8 bits per value, BFP4: 4). meshlm's own types
 * (MESHLM_TYPE_BFP8, MESHLM_TYPE_BFP4), made by repacking weights at load, never stored in
 * GGUF files.
 *
 * Encoding of a block of 16 values, B = 8 or 4 bits per value, M = B - 1 magnitude bits:
 *   byte 0        e, the shared exponent, biased as an f32's exponent field (0..254)
 *   BFP8          byte 1 + j holds value j: bit 7 the sign, bits 6..0 the magnitude
 *   BFP4          byte 1 + j (j < 8) holds value j in bits 3..0 and value j + 8 in bits
 *                 7..4; in each nibble bit 3 is the sign, bits 2..0 the magnitude
 *   value         (-1)^sign * magnitude * 2^(e - 127 - (M - 1))
 * Sign-magnitude as on the seed, with no hidden bit: a value whose own exponent is e has
 * its leading one in magnitude bit M - 1; smaller values are shifted right and lose bits.
 * Every value decodes exactly to an f32 (at most 7 significant bits times a power of two
 * between 2^-133 and 2^125), so decoding needs no rounding. The encoder never writes
 * e = 255; a hand-made block with it decodes by the same formula and may overflow to inf.
 *
 * Encoding from f32:
 *   - e is the largest exponent field of the block's finite non-zero values, f32
 *     subnormals counting as 1 (their scale); a block of zeros (and non-finite values
 *     only) gets e = 0.
 *   - magnitude = |v| / 2^(e - 127 - (M - 1)) rounded to nearest, ties to even, then
 *     saturated at 2^M - 1 (the block maximum may round up to 2^M, which does not fit).
 *   - the sign is v's sign bit, so -0.0 and tiny negatives that round to zero keep it.
 *   - non-finite values do not take part in choosing e: +-inf saturates to +-(2^M - 1)
 *     (the largest magnitude of the block's scale), NaN becomes +0. Decoded blocks are
 *     always finite, and one bad value cannot wipe out its 15 neighbours.
 * Error bound: for a block whose largest finite |v| is amax, a normal f32, every finite
 * value decodes within amax * 2^-M of itself (2^-7 for BFP8, 2^-3 for BFP4): rounding is
 * at most half a step, amax is at least 2^(M-1) steps, and saturation only cuts values of
 * at least 2^M - 1/2 steps down to 2^M - 1. Blocks of f32 subnormals are within half a
 * step, 2^(-126 - M), absolutely.
 *
 * Rows are n values, n a multiple of 16 (MESHLM_BFP_BLOCK). The row functions have the
 * signatures of core/quant.h's per-type codecs; given any other n they reject the row
 * loudly instead of guessing: dequantize writes NaN to dst[0..n), the dot returns NaN and
 * quantize writes nothing. meshlm_bfp_check_row says why with a message. */
#ifndef MESHLM_CORE_BFP_H
#define MESHLM_CORE_BFP_H

#include <stdint.h>

#include "core/kernels.h"

#define MESHLM_BFP_BLOCK 16

enum {
    MESHLM_BFP8_BYTES = 1 + MESHLM_BFP_BLOCK,
    MESHLM_BFP4_BYTES = 1 + MESHLM_BFP_BLOCK / 2,
};

/* MESHLM_OK if type is BFP8 or BFP4 and n a positive multiple of 16, else a failure whose
 * message names the type and the length. */
int meshlm_bfp_check_row(int type, int64_t n);

void meshlm_dequantize_row_bfp8(const void *src, float *dst, int64_t n);
void meshlm_quantize_row_bfp8(const float *src, void *dst, int64_t n);
/* The reference dot with f32 activations, in meshlm_vec_dot_ref's order: each block's 16
 * decoded products summed in order in f32, then the block sums added in order. */
float meshlm_vec_dot_bfp8(const void *row, const float *x, int64_t n);

void meshlm_dequantize_row_bfp4(const void *src, float *dst, int64_t n);
void meshlm_quantize_row_bfp4(const float *src, void *dst, int64_t n);
float meshlm_vec_dot_bfp4(const void *row, const float *x, int64_t n);

/* The AVX2+FMA kernel for type (BFP8 or BFP4; bfp_avx2.c), or NULL for other types and
 * off x86. Valid only on a CPU with those features (see core/cpu.h). It differs from the
 * reference dot only by reassociation of f32 sums (each block's integer-weighted sum of x
 * in 8 lanes, times the block's scale, into 8 running lanes summed once at the end):
 *   |kernel - reference| <= 1e-5 * sum_i |w_i x_i| + FLT_MIN
 * as tests/test_bfp.c checks. A wrong n gives NaN as above. */
meshlm_dot_fn meshlm_dot_bfp_avx2(int type);

/* 2^(e - 127 - (m_bits - 1)), the value of one magnitude step of a block with exponent
 * byte e: exact for every e in 0..255 and m_bits 3 or 7. */
float meshlm_bfp_step(int e, int m_bits);

#endif
