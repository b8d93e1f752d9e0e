/* The block-order dots of kernels_q8.c (Q8_0, Q4_0 and MXFP4), written once and instantiated in
 * kernels_q8_avx2.c with the same KV, KTARGET and KN as kernels_q8_tiles.h. A block's 32
 * products sum to one exact int32 per (row, token), the order AMX tiles give, before its
 * one fused multiply-add; so a tile runs eight rows at once, reduces their eight lane
 * vectors to one vector of eight row sums, and carries eight rows' float chains in one
 * register. No include guard: one copy per instance. */

#define KBINLINE KTARGET __attribute__((always_inline)) static inline

#if KV
#define KBT 2 /* tokens per tile: the VNNI instance has 32 registers */
#else
#define KBT 1
#endif

/* Lane i: the sum of the int32 lanes of p[i], for i < 8 (integers: exact in any order). */
KBINLINE __m256i KN(row_sums8)(const __m256i *p) {
    __m256i a = _mm256_hadd_epi32(p[0], p[1]), b = _mm256_hadd_epi32(p[2], p[3]);
    __m256i c = _mm256_hadd_epi32(p[4], p[5]), d = _mm256_hadd_epi32(p[6], p[7]);
    __m256i ab = _mm256_hadd_epi32(a, b), cd = _mm256_hadd_epi32(c, d);
    return _mm256_add_epi32(_mm256_permute2x128_si256(ab, cd, 0x20), _mm256_permute2x128_si256(ab, cd, 0x31));
}

/* Eight rows rp[] (the first nr real, the rest repeats) against nt <= KBT tokens (as bytes
 * apart). With VNNI, the signed codes (Q8_0's, MXFP4's looked-up values) go in with the
 * top bit flipped (w + 128) and Q4_0's nibbles as they are (w + 8); each lane starts at
 * -offset * its activation codes. In AVX2 the signed codes take the sign step (vpmaddubsw's
 * int16 pairs cannot hold 2 * 255 * 127) and Q4_0 takes 8 * a off the int16 pairs, which
 * stay within 2 * 15 * 127. */
KBINLINE void KN(blk_tile)(int type, const uint8_t *const *rp, int nr, const uint8_t *act, size_t as, int64_t n,
                          float *y, int64_t ys, int nt) {
    const bool mx = type == MESHLM_TYPE_MXFP4;
    const bool q8 = type == MESHLM_TYPE_Q8_0 || mx; /* signed codes */
    const size_t bytes = mx ? MESHLM_MXFP4_BYTES : q8 ? MESHLM_Q8_0_BYTES : MESHLM_Q4_0_BYTES;
    const int off = q8 ? (KV ? 128 : 0) : 8;
    const __m256i voff = _mm256_set1_epi8((char)off);
#if !KV
    const __m256i ones = _mm256_set1_epi16(1);
#endif
    const meshlm_act32 *a[KBT];
    __m256 acc[KBT];
    for (int t = 0; t < nt; t++) a[t] = (const meshlm_act32 *)(act + t * as), acc[t] = _mm256_setzero_ps();
    for (int64_t k = 0; k < n / QK; k++) {
        __m256 dw;
        if (mx) {
            uint8_t e[8];
            for (int i = 0; i < 8; i++) e[i] = rp[i][k * bytes];
            dw = e8m0_half8(e);
        } else {
            uint16_t h[8];
            for (int i = 0; i < 8; i++) memcpy(&h[i], rp[i] + k * bytes, sizeof h[i]);
            dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)h));
        }
        __m256i q[KBT], base[KBT], p[KBT][8];
        for (int t = 0; t < nt; t++) {
            q[t] = _mm256_loadu_si256((const __m256i *)a[t][k].q);
#if KV
            const __m256i zero = _mm256_setzero_si256();
            base[t] = _mm256_sub_epi32(zero, _mm256_dpbusd_epi32(zero, voff, q[t]));
#else
            base[t] = off ? _mm256_maddubs_epi16(voff, q[t]) : _mm256_setzero_si256();
#endif
        }
        for (int i = 0; i < 8; i++) {
            const __m256i w = block_codes(type, rp[i] + k * bytes);
#if KV
            const __m256i u = q8 ? _mm256_xor_si256(w, _mm256_set1_epi8((char)0x80)) : w;
            for (int t = 0; t < nt; t++) p[t][i] = _mm256_dpbusd_epi32(base[t], u, q[t]);
#else
            const __m256i u = q8 ? _mm256_abs_epi8(w) : w;
            for (int t = 0; t < nt; t++) {
                __m256i s = _mm256_maddubs_epi16(u, q8 ? _mm256_sign_epi8(q[t], w) : q[t]);
                if (off) s = _mm256_sub_epi16(s, base[t]);
                p[t][i] = _mm256_madd_epi16(s, ones);
            }
#endif
        }
        for (int t = 0; t < nt; t++) {
            __m256 dd = _mm256_mul_ps(dw, _mm256_set1_ps(a[t][k].d));
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(KN(row_sums8)(p[t])), dd, acc[t]);
        }
    }
    for (int t = 0; t < nt; t++) {
        float o[8];
        _mm256_storeu_ps(o, acc[t]);
        for (int i = 0; i < nr; i++) y[i + t * ys] = o[i];
    }
}

/* Rows eight at a time (the last group repeats its last row) against tokens KBT at a time;
 * nt is a constant at each call so the tile's registers are fixed. */
KBINLINE void KN(blk_rows)(int type, const uint8_t *row, size_t rs, int64_t n_rows, const uint8_t *act, size_t as,
                          int64_t n, int64_t n_tok, float *y, int64_t ys) {
    for (int64_t r = 0; r < n_rows; r += 8) {
        const int nr = n_rows - r < 8 ? (int)(n_rows - r) : 8;
        const uint8_t *rp[8];
        for (int i = 0; i < 8; i++) rp[i] = row + (size_t)(r + (i < nr ? i : nr - 1)) * rs;
        int64_t t = 0;
        for (; t + KBT <= n_tok; t += KBT) KN(blk_tile)(type, rp, nr, act + t * as, as, n, y + r + t * ys, ys, KBT);
        if (KBT > 1 && t < n_tok) KN(blk_tile)(type, rp, nr, act + t * as, as, n, y + r + t * ys, ys, 1);
    }
}

#define KBLK(name, TYPE)                                                                                     \
    KTARGET static float KN(qdot_##name)(const void *row, const void *act, int64_t n) {                      \
        float y;                                                                                             \
        KN(blk_rows)(TYPE, row, 0, 1, act, 0, n, 1, &y, 0);                                                  \
        return y;                                                                                            \
    }                                                                                                        \
    KTARGET static void KN(qrows_##name)(const void *rows, size_t rs, int64_t n_rows, const void *act, size_t as, \
                                         int64_t n, int64_t n_tok, float *y, int64_t ys) {                   \
        KN(blk_rows)(TYPE, rows, rs, n_rows, act, as, n, n_tok, y, ys);                                      \
    }

KBLK(q8_0, MESHLM_TYPE_Q8_0)
KBLK(q4_0, MESHLM_TYPE_Q4_0)
KBLK(mxfp4, MESHLM_TYPE_MXFP4)

#undef KBLK
#undef KBT
#undef KBINLINE
