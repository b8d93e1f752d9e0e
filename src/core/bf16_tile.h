/* Internal to the BF16 kernels: the 16 x 16 transpose of 32-bit words that turns 16 rows of
 * BF16 pairs into 16 vectors of one pair each (lanes = rows), or 16 tokens into a B tile. */
#ifndef MESHLM_CORE_BF16_TILE_H
#define MESHLM_CORE_BF16_TILE_H

#if defined(__x86_64__)
#include <immintrin.h>

/* r[i] holds 16 words of row i; afterwards r[k] holds word k of rows 0..15 in lanes 0..15.
 * Words first interleave in pairs of rows, then in quads, then 128-bit lanes trade places. */
__attribute__((target("avx512f"), always_inline)) static inline void meshlm_transpose16(__m512i r[16]) {
    __m512i t[16], u[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        u[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
        u[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
        u[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
        u[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
    /* u[4q + j] lane L: word 4L + j of rows 4q..4q+3. */
    for (int j = 0; j < 4; j++) {
        __m512i v0 = _mm512_shuffle_i32x4(u[j], u[4 + j], 0x44), v1 = _mm512_shuffle_i32x4(u[j], u[4 + j], 0xee);
        __m512i v2 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0x44);
        __m512i v3 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0xee);
        r[j] = _mm512_shuffle_i32x4(v0, v2, 0x88);
        r[4 + j] = _mm512_shuffle_i32x4(v0, v2, 0xdd);
        r[8 + j] = _mm512_shuffle_i32x4(v1, v3, 0x88);
        r[12 + j] = _mm512_shuffle_i32x4(v1, v3, 0xdd);
    }
}
#endif

#endif
