/* The integer dot tiles of kernels_q8_avx2.c, written once and instantiated there twice:
 * with vpmaddubsw + vpmaddwd (AVX2), and with the AVX512-VNNI instructions that fuse a
 * multiply with the add after it (vpdpbusd, vpdpwssd, on ymm registers). Both give the
 * same integers, so the same bits, as the reference. Include only from that file, with
 * KV (1 for the VNNI instance), KTARGET (the target attribute), KN(name) (the instance's
 * name for name) and KPR (rows per tile when there are several tokens) defined. No
 * include guard: one copy per instance. */

#define KINLINE KTARGET __attribute__((always_inline)) static inline

/* acc + the int32 lanes of madd(a, b). */
KINLINE __m256i KN(madd_add)(__m256i acc, __m256i a, __m256i b) {
#if KV
    return _mm256_dpwssd_epi32(acc, a, b);
#else
    return _mm256_add_epi32(acc, _mm256_madd_epi16(a, b));
#endif
}

/* out[i] = the sum of the int32 lanes of v[i] for i < count (count <= 4 * MT), four per
 * horizontal-add tree; v is padded in place to a multiple of four. */
KINLINE void KN(lane_totals)(__m256i *v, int count, int *out) {
    for (int i = count; i % 4; i++) v[i] = _mm256_setzero_si256();
    for (int i = 0; i < count; i += 4) _mm_storeu_si128((__m128i *)(out + i), hsum4_i32(v[i], v[i + 1], v[i + 2], v[i + 3]));
}

/* nr rows (rs bytes apart) against nt tokens (as bytes apart), n elements each: every
 * weight block is decoded once for all tokens; type, nr and nt are constants at every call
 * so the tile lives in registers.
 *
 * The symmetric 4- and 5-bit formats multiply their unsigned codes and take the offset
 * off as off * a, computed once per token for every row: in AVX2 as int16 pairs (exact:
 * |c * a| <= 31 * 127 per product), with VNNI as the lanes the row's products then add
 * to. sum(c - off) * a is the reference's lane. (Q8_0 and Q4_0 sum in block order, in
 * kernels_q8_blk.h.)
 *
 * With several tokens the block's scalar float steps run a row at a time across the
 * tokens' lanes: the products d_w * d_a in one multiply, which the multiply-adds then
 * broadcast from memory, and the affine formats' min chains in one multiply-add. Each lane
 * does the reference's operation on the reference's operands, so the bits stay. */
KINLINE void KN(tile32)(int type, const uint8_t *row, size_t rs, int nr, const uint8_t *act, size_t as,
                        int64_t n, float *y, int64_t ys, int nt) {
    const bool affine = affine32(type), lanes = nt > 1;
    const int off = offset32(type);
    const size_t bytes = bytes32(type);
    const __m256i voff = _mm256_set1_epi8((char)off);
#if !KV
    const __m256i ones = _mm256_set1_epi16(1);
#endif
    __m256 acc[4][MT];
    __m128 accm4[4];
    float accm[4][MT];
    for (int r = 0; r < nr; r++) {
        accm4[r] = _mm_setzero_ps();
        for (int t = 0; t < nt; t++) acc[r][t] = _mm256_setzero_ps(), accm[r][t] = 0.0f;
    }
    for (int64_t k = 0; k < n / QK; k++) {
        __m256i w[4];
        float dw[4], mw[4], dd[4 * MT];
        const meshlm_act32 *a[MT];
        for (int t = 0; t < nt; t++) a[t] = (const meshlm_act32 *)(act + t * as) + k;
        for (int r = 0; r < nr; r++) {
            const uint8_t *b = row + r * rs + k * bytes;
            w[r] = block_codes(type, b);
            dw[r] = half(b);
            mw[r] = affine ? half(b + 2) : 0.0f;
        }
        if (lanes) {
            const int t1 = nt > 1 ? 1 : 0, t2 = nt > 2 ? 2 : 0, t3 = nt > 3 ? 3 : 0;
            __m128 da = _mm_setr_ps(a[0]->d, a[t1]->d, a[t2]->d, a[t3]->d);
            __m128 sa = affine ? _mm_setr_ps(a[0]->s, a[t1]->s, a[t2]->s, a[t3]->s) : _mm_setzero_ps();
            for (int r = 0; r < nr; r++) {
                _mm_storeu_ps(dd + MT * r, _mm_mul_ps(_mm_set1_ps(dw[r]), da));
                if (affine) accm4[r] = _mm_fmadd_ps(_mm_set1_ps(mw[r]), sa, accm4[r]);
            }
        }
        /* Each token's codes and offset are loaded once for all the rows. */
        for (int t = 0; t < nt; t++) {
            __m256i q = _mm256_loadu_si256((const __m256i *)a[t]->q);
#if KV
            const __m256i zero = _mm256_setzero_si256();
            __m256i base = off ? _mm256_sub_epi32(zero, _mm256_dpbusd_epi32(zero, voff, q)) : zero;
#else
            __m256i qo = off ? _mm256_maddubs_epi16(voff, q) : _mm256_setzero_si256();
#endif
            for (int r = 0; r < nr; r++) {
#if KV
                __m256i p = _mm256_dpbusd_epi32(base, w[r], q);
#else
                __m256i p = _mm256_maddubs_epi16(w[r], q);
                if (off) p = _mm256_sub_epi16(p, qo);
                p = _mm256_madd_epi16(p, ones);
#endif
                __m256 scale = lanes ? _mm256_broadcast_ss(dd + MT * r + t) : _mm256_set1_ps(dw[r] * a[t]->d);
                acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), scale, acc[r][t]);
                if (affine && !lanes) accm[r][t] = fmaf(mw[r], a[t]->s, accm[r][t]);
            }
        }
    }
    for (int r = 0; r < nr; r++) {
        float m[4];
        _mm_storeu_ps(m, accm4[r]);
        for (int t = 0; t < nt; t++) {
            float mt = lanes ? m[t] : accm[r][t];
            y[r + t * ys] = affine ? meshlm_hsum8(acc[r][t]) + mt : meshlm_hsum8(acc[r][t]);
        }
    }
}

/* Q4_K and Q5_K, nr rows (rs bytes apart) against nt tokens: per 64-element chunk each
 * row's two sub-blocks are decoded once for all tokens, and each (row, token) lane gathers
 * sub-block scale times codes times activation exactly in int32. Per super-block the
 * lanes and the min terms of the whole tile are reduced together, four per tree. */
KINLINE void KN(tile_k_affine)(bool five, const uint8_t *row, size_t rs, int nr, const uint8_t *act, size_t as,
                               int64_t n, float *y, int64_t ys, int nt) {
    const size_t bytes = five ? MESHLM_Q5K_BYTES : MESHLM_Q4K_BYTES;
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const __m128i pair = _mm_setr_epi8(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    float acc[4][MT], accm[4][MT];
    for (int r = 0; r < nr; r++)
        for (int t = 0; t < nt; t++) acc[r][t] = 0.0f, accm[r][t] = 0.0f;
    for (int64_t k = 0; k < n / QK_K; k++) {
        __m256i p[4][MT], scb[4], mins[4];
        float d[4], dmin[4];
        for (int r = 0; r < nr; r++) {
            const uint8_t *b = row + r * rs + k * bytes;
            uint64_t sc, mn;
            scales_k(b + 4, &sc, &mn);
            scb[r] = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)sc)));
            mins[r] = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(_mm_cvtsi64_si128((long long)mn), pair));
            d[r] = half(b), dmin[r] = half(b + 2);
            for (int t = 0; t < nt; t++) p[r][t] = _mm256_setzero_si256();
        }
        for (int c = 0; c < 4; c++)
            for (int r = 0; r < nr; r++) {
                const uint8_t *b = row + r * rs + k * bytes, *qs = b + 16 + (five ? QK_K / 8 : 0);
                __m256i v = _mm256_loadu_si256((const __m256i *)(qs + 32 * c));
                __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
                if (five) {
                    __m256i h = _mm256_loadu_si256((const __m256i *)(b + 16));
                    lo = _mm256_or_si256(lo, bit_to_4(h, 2 * c));
                    hi = _mm256_or_si256(hi, bit_to_4(h, 2 * c + 1));
                }
                /* The scale of sub-block j in every int16: bytes 2j, 2j+1 of scb. */
                __m256i slo = _mm256_shuffle_epi8(scb[r], _mm256_set1_epi16((short)(0x0100 + 0x0202 * (2 * c))));
                __m256i shi = _mm256_shuffle_epi8(scb[r], _mm256_set1_epi16((short)(0x0100 + 0x0202 * (2 * c + 1))));
                for (int t = 0; t < nt; t++) {
                    const int8_t *q = ((const meshlm_act256 *)(act + t * as) + k)->q + 64 * c;
                    __m256i a0 = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)q));
                    __m256i a1 = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(q + 32)));
                    p[r][t] = KN(madd_add)(KN(madd_add)(p[r][t], a0, slo), a1, shi);
                }
            }
        __m256i pv[4 * MT], mv[4 * MT];
        int psum[4 * MT], msum[4 * MT];
        for (int t = 0; t < nt; t++) {
            __m256i bs = _mm256_loadu_si256((const __m256i *)((const meshlm_act256 *)(act + t * as) + k)->bsum);
            for (int r = 0; r < nr; r++) pv[r + nr * t] = p[r][t], mv[r + nr * t] = _mm256_madd_epi16(bs, mins[r]);
        }
        KN(lane_totals)(pv, nr * nt, psum);
        KN(lane_totals)(mv, nr * nt, msum);
        for (int t = 0; t < nt; t++) {
            float da = ((const meshlm_act256 *)(act + t * as) + k)->d;
            for (int r = 0; r < nr; r++) {
                acc[r][t] = fmaf((float)psum[r + nr * t], d[r] * da, acc[r][t]);
                accm[r][t] = fmaf((float)msum[r + nr * t], dmin[r] * da, accm[r][t]);
            }
        }
    }
    for (int r = 0; r < nr; r++)
        for (int t = 0; t < nt; t++) y[r + t * ys] = acc[r][t] - accm[r][t];
}

/* Q6_K, nr rows against nt tokens: unsigned 6-bit codes, each 16 with its own scale (the
 * two 128-bit halves of a madd); per super-block the lanes and the offset 32 times the
 * scaled activation sums are reduced for the whole tile as Q4_K's are, and subtracted
 * in the integer. */
KINLINE void KN(tile_q6_k)(const uint8_t *row, size_t rs, int nr, const uint8_t *act, size_t as, int64_t n,
                           float *y, int64_t ys, int nt) {
    const __m256i m4 = _mm256_set1_epi8(0x0f), m2 = _mm256_set1_epi8(0x30);
    float acc[4][MT];
    for (int r = 0; r < nr; r++)
        for (int t = 0; t < nt; t++) acc[r][t] = 0.0f;
    for (int64_t k = 0; k < n / QK_K; k++) {
        __m256i p[4][MT], sc16[4], sch[4][2];
        float d[4];
        for (int r = 0; r < nr; r++) {
            const uint8_t *b = row + r * rs + k * MESHLM_Q6K_BYTES;
            sc16[r] = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(b + QK_K / 2 + QK_K / 4)));
            /* Scales 0..7, and 8..15, in both halves, for the in-lane shuffles below. */
            sch[r][0] = _mm256_permute4x64_epi64(sc16[r], 0x44);
            sch[r][1] = _mm256_permute4x64_epi64(sc16[r], 0xee);
            d[r] = half(b + QK_K / 2 + QK_K / 4 + QK_K / 16);
            for (int t = 0; t < nt; t++) p[r][t] = _mm256_setzero_si256();
        }
        for (int h = 0; h < 2; h++)
            for (int r = 0; r < nr; r++) {
                const uint8_t *b = row + r * rs + k * MESHLM_Q6K_BYTES;
                __m256i ql0 = _mm256_loadu_si256((const __m256i *)(b + 64 * h));
                __m256i ql1 = _mm256_loadu_si256((const __m256i *)(b + 64 * h + 32));
                __m256i qh = _mm256_loadu_si256((const __m256i *)(b + QK_K / 2 + 32 * h));
                for (int j = 0; j < 4; j++) {
                    __m256i lo = j & 1 ? ql1 : ql0;
                    lo = j < 2 ? lo : _mm256_srli_epi16(lo, 4);
                    __m256i hb = j == 0 ? _mm256_slli_epi16(qh, 4)
                                 : j == 1 ? _mm256_slli_epi16(qh, 2)
                                 : j == 2 ? qh
                                          : _mm256_srli_epi16(qh, 2);
                    __m256i v = _mm256_or_si256(_mm256_and_si256(lo, m4), _mm256_and_si256(hb, m2));
                    /* Scale 8h + 2j in the low half, 8h + 2j + 1 in the high one. */
                    __m256i s = _mm256_shuffle_epi8(sch[r][h], _mm256_setr_m128i(_mm_set1_epi16((short)(0x0100 + 0x0202 * (2 * j))),
                                                                                 _mm_set1_epi16((short)(0x0100 + 0x0202 * (2 * j + 1)))));
                    for (int t = 0; t < nt; t++) {
                        const int8_t *q = ((const meshlm_act256 *)(act + t * as) + k)->q + 128 * h + 32 * j;
                        __m256i x = _mm256_maddubs_epi16(v, _mm256_loadu_si256((const __m256i *)q));
                        p[r][t] = KN(madd_add)(p[r][t], x, s);
                    }
                }
            }
        __m256i pv[4 * MT], mv[4 * MT];
        int psum[4 * MT], offs[4 * MT];
        for (int t = 0; t < nt; t++) {
            __m256i bs = _mm256_loadu_si256((const __m256i *)((const meshlm_act256 *)(act + t * as) + k)->bsum);
            for (int r = 0; r < nr; r++) pv[r + nr * t] = p[r][t], mv[r + nr * t] = _mm256_madd_epi16(bs, sc16[r]);
        }
        KN(lane_totals)(pv, nr * nt, psum);
        KN(lane_totals)(mv, nr * nt, offs);
        for (int t = 0; t < nt; t++) {
            float da = ((const meshlm_act256 *)(act + t * as) + k)->d;
            for (int r = 0; r < nr; r++)
                acc[r][t] = fmaf((float)(psum[r + nr * t] - 32 * offs[r + nr * t]), d[r] * da, acc[r][t]);
        }
    }
    for (int r = 0; r < nr; r++)
        for (int t = 0; t < nt; t++) y[r + t * ys] = acc[r][t];
}

KINLINE void KN(tile)(int type, const uint8_t *row, size_t rs, int nr, const uint8_t *act, size_t as, int64_t n,
                      float *y, int64_t ys, int nt) {
    switch (type) {
    case MESHLM_TYPE_Q4_K: KN(tile_k_affine)(false, row, rs, nr, act, as, n, y, ys, nt); break;
    case MESHLM_TYPE_Q5_K: KN(tile_k_affine)(true, row, rs, nr, act, as, n, y, ys, nt); break;
    case MESHLM_TYPE_Q6_K: KN(tile_q6_k)(row, rs, nr, act, as, n, y, ys, nt); break;
    default: KN(tile32)(type, row, rs, nr, act, as, n, y, ys, nt); break;
    }
}

/* nr rows against all n_tok tokens, MT at a time, then the last few with their own
 * constant tile sizes. */
KINLINE void KN(tokens)(int type, const uint8_t *p, size_t rs, int nr, const uint8_t *x, size_t as, int64_t n,
                        int64_t n_tok, float *y, int64_t ys) {
    int64_t t = 0;
    for (; t + MT <= n_tok; t += MT) KN(tile)(type, p, rs, nr, x + t * as, as, n, y + t * ys, ys, MT);
    switch (n_tok - t) {
    case 1: KN(tile)(type, p, rs, nr, x + t * as, as, n, y + t * ys, ys, 1); break;
    case 2: KN(tile)(type, p, rs, nr, x + t * as, as, n, y + t * ys, ys, 2); break;
    case 3: KN(tile)(type, p, rs, nr, x + t * as, as, n, y + t * ys, ys, 3); break;
    default: break;
    }
}

/* One token takes four rows at a time: their independent chains hide the latency of
 * each one's multiply-add chain, and the token's codes (and offset) serve all four.
 * Several tokens take KPR rows against tiles of MT tokens; the last rows go alone. */
KINLINE void KN(rows)(int type, const uint8_t *p, size_t rs, int64_t n_rows, const uint8_t *x, size_t as, int64_t n,
                      int64_t n_tok, float *y, int64_t ys) {
    int64_t r = 0;
    if (n_tok == 1)
        for (; r + 4 <= n_rows; r += 4) KN(tile)(type, p + r * rs, rs, 4, x, as, n, y + r, ys, 1);
    else
        for (; r + KPR <= n_rows; r += KPR) KN(tokens)(type, p + r * rs, rs, KPR, x, as, n, n_tok, y + r, ys);
    for (; r < n_rows; r++) KN(tokens)(type, p + r * rs, 0, 1, x, as, n, n_tok, y + r, ys);
}

#define KDOT(name, TYPE)                                                                                     \
    KTARGET static float KN(qdot_##name)(const void *row, const void *act, int64_t n) {                      \
        float y;                                                                                             \
        KN(tile)(TYPE, row, 0, 1, act, 0, n, &y, 0, 1);                                                      \
        return y;                                                                                            \
    }                                                                                                        \
    KTARGET static void KN(qrows_##name)(const void *rows, size_t rs, int64_t n_rows, const void *act, size_t as, \
                                         int64_t n, int64_t n_tok, float *y, int64_t ys) {                   \
        KN(rows)(TYPE, rows, rs, n_rows, act, as, n, n_tok, y, ys);                                          \
    }

KDOT(q4_1, MESHLM_TYPE_Q4_1)
KDOT(q5_0, MESHLM_TYPE_Q5_0)
KDOT(q5_1, MESHLM_TYPE_Q5_1)
KDOT(q4_k, MESHLM_TYPE_Q4_K)
KDOT(q5_k, MESHLM_TYPE_Q5_K)
KDOT(q6_k, MESHLM_TYPE_Q6_K)

#undef KDOT
#undef KINLINE
