/* AVX2+FMA dot kernels for the block floats against f32 activations. As in
 * kernels_avx2.c, every function carries its own target attribute, so the file builds
 * without -mavx2 and is called only after core/cpu.c has seen the features.
 *
 * A block's 16 codes become signed bytes (BFP8: the magnitude with the sign applied by
 * psignb; BFP4: a table lookup of each nibble), are widened to f32 and dotted with x in 8
 * lanes; that sum times the block's step goes into running lanes, two blocks in flight,
 * summed across lanes once at the end. Only the order of f32 sums differs from the
 * reference in bfp.c. */
#include "core/bfp.h"

#include <math.h>
#include <stddef.h>

#include "core/dtype.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#include <pthread.h>
#include <string.h>

#include "core/simd_avx2.h"

#define TARGET __attribute__((target("avx2,fma,f16c")))
#define BLK MESHLM_BFP_BLOCK

/* The step of every exponent byte, looked up instead of computed: a block is only 16
 * values, and building the float (with a branch for subnormal steps) cost a quarter of
 * its instructions. Filled once, by meshlm_dot_bfp_avx2, before any kernel runs. */
static float steps8[256], steps4[256];
static pthread_once_t steps_once = PTHREAD_ONCE_INIT;

static void fill_steps(void) {
    for (int e = 0; e < 256; e++) {
        steps8[e] = meshlm_bfp_step(e, 7);
        steps4[e] = meshlm_bfp_step(e, 3);
    }
}

/* sum_j q[j] * x[j] over 16 signed bytes, in 8 lanes. */
TARGET static inline __m256 dot16_i8(__m128i q, const float *x) {
    __m256 lo = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q));
    __m256 hi = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_unpackhi_epi64(q, q)));
    return _mm256_fmadd_ps(hi, _mm256_loadu_ps(x + 8), _mm256_mul_ps(lo, _mm256_loadu_ps(x)));
}

/* psignb negates where the code's byte is negative (sign bit set) and zeroes where it is
 * 0, whose magnitude is 0 anyway; so -0 (0x80) also gives 0. */
TARGET static inline __m256 block_bfp8(const uint8_t *b, const float *x) {
    __m128i v = _mm_loadu_si128((const __m128i *)(b + 1));
    return dot16_i8(_mm_sign_epi8(_mm_and_si128(v, _mm_set1_epi8(0x7f)), v), x);
}

/* Low nibbles are elements 0..7 and high nibbles 8..15, so one unpack puts all 16 in
 * order; pshufb then maps each sign-magnitude nibble to its signed value. */
TARGET static inline __m256 block_bfp4(const uint8_t *b, const float *x) {
    const __m128i lut = _mm_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, 0, -1, -2, -3, -4, -5, -6, -7);
    const __m128i low4 = _mm_set1_epi8(0x0f);
    __m128i v = _mm_loadl_epi64((const __m128i *)(b + 1));
    __m128i lo = _mm_and_si128(v, low4), hi = _mm_and_si128(_mm_srli_epi16(v, 4), low4);
    return dot16_i8(_mm_shuffle_epi8(lut, _mm_unpacklo_epi64(lo, hi)), x);
}

/* Two independent accumulators hide the FMA latency; an odd last block goes to the first. */
#define BFP_DOT(name, bytes, steps)                                                              \
    TARGET static float dot_##name(const void *row, const float *x, int64_t n) {               \
        if (n <= 0 || n % BLK) return NAN;                                                     \
        const uint8_t *b = row;                                                                \
        int64_t nb = n / BLK, i = 0;                                                           \
        __m256 a0 = _mm256_setzero_ps(), a1 = a0;                                              \
        for (; i + 2 <= nb; i += 2, b += 2 * (bytes), x += 2 * BLK) {                          \
            a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(&steps[b[0]]), block_##name(b, x), a0);  \
            a1 = _mm256_fmadd_ps(_mm256_broadcast_ss(&steps[b[bytes]]), block_##name(b + (bytes), x + BLK), a1); \
        }                                                                                      \
        if (i < nb) a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(&steps[b[0]]), block_##name(b, x), a0); \
        return meshlm_hsum8(_mm256_add_ps(a0, a1));                                            \
    }

BFP_DOT(bfp8, MESHLM_BFP8_BYTES, steps8)
BFP_DOT(bfp4, MESHLM_BFP4_BYTES, steps4)

#endif

meshlm_dot_fn meshlm_dot_bfp_avx2(int type) {
#if defined(__x86_64__) || defined(__i386__)
    pthread_once(&steps_once, fill_steps);
    if (type == MESHLM_TYPE_BFP8) return dot_bfp8;
    if (type == MESHLM_TYPE_BFP4) return dot_bfp4;
#endif
    (void)type;
    return NULL;
}
