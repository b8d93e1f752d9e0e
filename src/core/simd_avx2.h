/* Internal to core: small AVX2 helpers shared by the kernel files. Include only inside an
 * x86 guard, after <immintrin.h> and <string.h>; each helper carries its own target
 * attribute, so including files still build without -mavx2. */
#ifndef MESHLM_CORE_SIMD_AVX2_H
#define MESHLM_CORE_SIMD_AVX2_H

#include <stdint.h>

#define MESHLM_AVX2 __attribute__((target("avx2,fma,f16c")))

/* The lane tree every kernel's reference follows: (0+4, 1+5, 2+6, 3+7), then the pairs
 * (01 + 23), then the two. */
MESHLM_AVX2 static inline float meshlm_hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Elements 0..15 from the low nibbles of 16 bytes, 16..31 from the high ones. The bytes
 * go to both halves with one broadcast load and each half shifts by its own count, which
 * costs one shift and one mask instead of two masks, a shift and a lane insert. */
MESHLM_AVX2 static inline __m256i meshlm_nibbles32(const uint8_t *qs) {
    __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qs));
    v = _mm256_srlv_epi64(v, _mm256_setr_epi64x(0, 0, 4, 4));
    return _mm256_and_si256(v, _mm256_set1_epi8(0x0f));
}

/* Eight BF16 values at p as floats: the 16 bytes go to both halves with one broadcast
 * load and one byte shuffle puts each value in the top of its float, zeros below, so the
 * decode spends no shift on the ports the multiply-adds need. */
MESHLM_AVX2 static inline __m256 meshlm_bf16x8(const void *p) {
    const __m256i put = _mm256_setr_epi8(-1, -1, 0, 1, -1, -1, 2, 3, -1, -1, 4, 5, -1, -1, 6, 7, -1, -1, 8, 9, -1,
                                         -1, 10, 11, -1, -1, 12, 13, -1, -1, 14, 15);
    __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_shuffle_epi8(v, put));
}

/* Byte j is 0x10 when bit j of the little-endian word at p is set: the fifth bits of the
 * Q5 formats, spread next to their nibbles. */
MESHLM_AVX2 static inline __m256i meshlm_fifth_bits(const uint8_t *p) {
    uint32_t qh;
    memcpy(&qh, p, sizeof qh);
    const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2,
                                            2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL); /* byte k: 1 << k */
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)qh), spread);
    v = _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x10));
}

#endif
