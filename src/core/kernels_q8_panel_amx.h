/* The AMX form of the panel dots (see kernels_q8_panel.c), included there once. */

#define ATARGET __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,amx-tile,amx-int8")))
#define AINLINE ATARGET __attribute__((always_inline)) static inline
#define TT 16                  /* tokens per tile */
#define ACT_BLOCK (16 * QK + 64) /* a token tile's block: 16 tokens' 32 codes, then their 16 scales */
#define STAGE_TILES 64         /* token tiles staged at once, at most */
#define STAGE_BYTES (4 * MAX_BLOCKS * ACT_BLOCK) /* their room: four tiles of the longest row */
#define LAG 2                  /* blocks of the 2x2 form whose C tiles are stored before their floats run */
#define KC 16                  /* blocks per chunk: a 2x2 step's A and B tiles (36 KiB) stay in L1 */

/* Per thread: the staged token tiles (both forms); Q4_K's unpacked panel, C landing place
 * and accumulators; the 2x2 form's C of two groups of LAG blocks (four tiles a block), a
 * chunk of two panels' unpacked Q4_0 codes, the accumulators of two panels and a sink for
 * the products of a repeated panel or token tile. */
static _Thread_local uint8_t act_stage[STAGE_BYTES] __attribute__((aligned(64)));
static _Thread_local int8_t q4_stage[MAX_BLOCKS * PR * QK] __attribute__((aligned(64)));
static _Thread_local int32_t c_stage[2][TT * PR] __attribute__((aligned(64)));
static _Thread_local float acc_stage[STAGE_TILES][TT * PR] __attribute__((aligned(64)));
static _Thread_local int32_t c4_stage[2][LAG][4][TT * PR] __attribute__((aligned(64)));
static _Thread_local int8_t q4_chunk[2][KC * PR * QK] __attribute__((aligned(64)));
static _Thread_local float acc2_stage[STAGE_TILES][2][TT * PR] __attribute__((aligned(64)));
static _Thread_local float acc_scratch[3][TT * PR] __attribute__((aligned(64)));

/* Q4_K's tiles 0-1: C (16 tokens x 16 rows of int32); 2-3: A (16 tokens x 32 codes); 4-5:
 * B (8 groups x 16 rows x 4 codes); two of each so sub-block q + 1 multiplies while sub-block
 * q's integer steps run. */
ATARGET static void configure(void) {
    static const meshlm_tile_config c = {.palette = 1,
                                  .colsb = {PR * 4, PR * 4, QK, QK, PR * 4, PR * 4},
                                  .rows = {TT, TT, TT, TT, QK / 4, QK / 4}};
    _tile_loadconfig(&c);
}

/* The 2x2 form's: tiles 0-3 C (token tile i x panel j at 2i + j), 4-5 A (two token tiles),
 * 6-7 B (two panels): every A and B load serves two products, and four independent
 * products are in flight. */
ATARGET static void configure_2x2(void) {
    static const meshlm_tile_config c = {.palette = 1,
                                  .colsb = {PR * 4, PR * 4, PR * 4, PR * 4, QK, QK, PR * 4, PR * 4},
                                  .rows = {TT, TT, TT, TT, TT, TT, QK / 4, QK / 4}};
    _tile_loadconfig(&c);
}

/* Tokens of act (as apart; nt real, the rest repeat the last) as A tiles, block after block. */
AINLINE void stage_tokens(const uint8_t *act, size_t as, int nt, int64_t nb, uint8_t *out) {
    for (int64_t k = 0; k < nb; k++, out += ACT_BLOCK)
        for (int t = 0; t < TT; t++) {
            const meshlm_act32 *a = (const meshlm_act32 *)(act + (size_t)(t < nt ? t : nt - 1) * as) + k;
            _mm256_store_si256((__m256i *)(out + QK * t), _mm256_loadu_si256((const __m256i *)a->q));
            memcpy(out + TT * QK + 4 * t, &a->d, sizeof a->d);
        }
}

/* Blocks k0..k1 of two Q4_0 panels' codes as signed bytes in B's layout: group g of block
 * k0 + i at 512i + 64g of q4_chunk[j]. */
AINLINE void unpack_q4(const uint8_t *const *pp, size_t pb, int64_t k0, int64_t k1) {
    const __m512i low = _mm512_set1_epi8(0x0f), eight = _mm512_set1_epi8(8);
    for (int j = 0; j < 2; j++)
        for (int64_t k = k0; k < k1; k++) {
            const uint8_t *c = pp[j] + (size_t)k * pb + 2 * PR;
            int8_t *o = q4_chunk[j] + (k - k0) * PR * QK;
            for (int g = 0; g < 4; g++) {
                __m512i v = _mm512_loadu_si512(c + 64 * g);
                _mm512_store_si512(o + 64 * g, _mm512_sub_epi8(_mm512_and_si512(v, low), eight));
                _mm512_store_si512(o + 64 * (g + 4), _mm512_sub_epi8(_mm512_and_si512(_mm512_srli_epi16(v, 4), low), eight));
            }
        }
}

/* Block k's four products: A tiles from the two token tiles' stages, B from the panels (Q8_0
 * as they lie) or the unpacked chunk. The tile numbers are literals, as the intrinsics want. */
#define ISSUE4(k)                                                                                            \
    do {                                                                                                     \
        _tile_loadd(4, st[0] + (k) * ACT_BLOCK, QK);                                                         \
        _tile_loadd(6, q8 ? pp[0] + (size_t)(k) * pb + 2 * PR : (const uint8_t *)q4_chunk[0] + ((k) - k0) * PR * QK, PR * 4); \
        _tile_zero(0);                                                                                       \
        _tile_dpbssd(0, 4, 6);                                                                               \
        _tile_loadd(7, q8 ? pp[1] + (size_t)(k) * pb + 2 * PR : (const uint8_t *)q4_chunk[1] + ((k) - k0) * PR * QK, PR * 4); \
        _tile_zero(1);                                                                                       \
        _tile_dpbssd(1, 4, 7);                                                                               \
        _tile_loadd(5, st[1] + (k) * ACT_BLOCK, QK);                                                         \
        _tile_zero(2);                                                                                       \
        _tile_dpbssd(2, 5, 6);                                                                               \
        _tile_zero(3);                                                                                       \
        _tile_dpbssd(3, 5, 7);                                                                               \
    } while (0)

#define STORE4(c)                                                                                            \
    do {                                                                                                     \
        _tile_stored(0, (c)[0], PR * 4);                                                                     \
        _tile_stored(1, (c)[1], PR * 4);                                                                     \
        _tile_stored(2, (c)[2], PR * 4);                                                                     \
        _tile_stored(3, (c)[3], PR * 4);                                                                     \
    } while (0)

#define EACH_T(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15)
#define T_LOAD(t) __m512 a##t = _mm512_load_ps(acc + (t) * PR);
#define T_FMA(t) a##t = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512(c + (t) * PR)), _mm512_mul_ps(dw, _mm512_set1_ps(da[t])), a##t);
#define T_STORE(t) _mm512_store_ps(acc + (t) * PR, a##t);

/* Blocks k..k+n-1's float steps for token tile i and panel j, from their stored C
 * (cb[u][2i + j]): the 16 token accumulators stay in registers across the blocks, each
 * block's step the reference's fma. */
AINLINE void floats_lag(int32_t (*cb)[4][TT * PR], int n, int i, int j, const uint8_t *pj, size_t pb,
                        const uint8_t *st, int64_t k, float *acc) {
    EACH_T(T_LOAD)
    for (int u = 0; u < n; u++) {
        const int32_t *c = cb[u][2 * i + j];
        const float *da = (const float *)(st + (k + u) * ACT_BLOCK + TT * QK);
        const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(pj + (size_t)(k + u) * pb)));
        EACH_T(T_FMA)
    }
    EACH_T(T_STORE)
}

/* Blocks k0..k1 of two panels (pp) against two staged token tiles (st), LAG blocks at a
 * time: a group's products and C stores are issued, then the previous group's floats run
 * beside them. acc[2i + j] is token tile i and panel j's. */
AINLINE void chunk_2x2(bool q8, const uint8_t *const *pp, size_t pb, const uint8_t *const *st, int64_t k0,
                       int64_t k1, float *const *acc) {
    int64_t prev = -1;
    int n_prev = 0, b = 0;
    for (int64_t k = k0; k < k1 || n_prev; k += LAG, b ^= 1) {
        const int n = k < k1 ? (k1 - k < LAG ? (int)(k1 - k) : LAG) : 0;
        for (int u = 0; u < n; u++) {
            ISSUE4(k + u);
            STORE4(c4_stage[b][u]);
        }
        /* The token tiles' next blocks come from L2 (or L3): asked for now, they are in L1
         * when their tile loads issue. */
        for (int i = 0; i < 2 && k + LAG < k1; i++)
            for (int l = 0; l < LAG * ACT_BLOCK; l += 64)
                _mm_prefetch((const char *)st[i] + (k + LAG) * ACT_BLOCK + l, _MM_HINT_T0);
        for (int q = 0; q < 4 && n_prev; q++)
            floats_lag(c4_stage[b ^ 1], n_prev, q / 2, q % 2, pp[q % 2], pb, st[q / 2], prev, acc[q]);
        prev = k;
        n_prev = n;
    }
}

#undef EACH_T
#undef T_LOAD
#undef T_FMA
#undef T_STORE

/* Token groups as big as the stage holds; per group the panels two at a time (an odd last
 * one paired with itself), their blocks in chunks of KC against the token tiles two at a
 * time (likewise), then each token's 16 rows of each panel in one store. */
ATARGET static void amx_dot(int type, const uint8_t *w, size_t rb, int64_t lo, int64_t hi, const uint8_t *act,
                            size_t as, int64_t n, int64_t n_tok, float *y, int64_t ys) {
    const bool q8 = q8_type(type);
    const int64_t nb = n / QK;
    const size_t pb = PR * meshlm_type_block_bytes(type);
    int64_t tiles_max = STAGE_BYTES / (nb * ACT_BLOCK);
    if (tiles_max > STAGE_TILES) tiles_max = STAGE_TILES;
    configure_2x2();
    const int64_t p_lo = lo / PR, p_hi = (hi + PR - 1) / PR;
    for (int64_t t0 = 0; t0 < n_tok; t0 += tiles_max * TT) {
        const int64_t nt = n_tok - t0 < tiles_max * TT ? n_tok - t0 : tiles_max * TT, tiles = (nt + TT - 1) / TT;
        for (int64_t i = 0; i < tiles; i++) {
            int real = nt - i * TT < TT ? (int)(nt - i * TT) : TT;
            stage_tokens(act + (size_t)(t0 + i * TT) * as, as, real, nb, act_stage + i * nb * ACT_BLOCK);
        }
        for (int64_t p = p_lo; p < p_hi; p += 2) {
            const int np = p + 1 < p_hi ? 2 : 1;
            const uint8_t *pp[2] = {w + (size_t)p * PR * rb, w + (size_t)(p + np - 1) * PR * rb};
            memset(acc2_stage, 0, (size_t)tiles * sizeof acc2_stage[0]);
            for (int64_t k0 = 0; k0 < nb; k0 += KC) {
                const int64_t k1 = nb - k0 < KC ? nb : k0 + KC;
                if (!q8) unpack_q4(pp, pb, k0, k1);
                for (int64_t i = 0; i < tiles; i += 2) {
                    const int64_t i1 = i + 1 < tiles ? i + 1 : i;
                    const uint8_t *st[2] = {act_stage + i * nb * ACT_BLOCK, act_stage + i1 * nb * ACT_BLOCK};
                    /* A repeated panel or token tile adds into a scratch accumulator. */
                    float *acc[4] = {acc2_stage[i][0], np > 1 ? acc2_stage[i][1] : acc_scratch[0],
                                     i1 > i ? acc2_stage[i1][0] : acc_scratch[1],
                                     i1 > i && np > 1 ? acc2_stage[i1][1] : acc_scratch[2]};
                    chunk_2x2(q8, pp, pb, st, k0, k1, acc);
                }
            }
            for (int j = 0; j < np; j++) {
                const __mmask16 mask = panel_mask(p + j, lo, hi);
                for (int64_t t = 0; t < nt; t++)
                    _mm512_mask_storeu_ps(y + PR * (p + j) + (t0 + t) * ys, mask,
                                          _mm512_load_ps(acc2_stage[t / TT][j] + (t % TT) * PR));
            }
        }
    }
    _tile_release();
}

#undef ISSUE4
#undef STORE4

/* ---- Q4_K ----
 * A is 16 tokens' 32 codes of a sub-block, B a sub-block of the panel (nibbles unpacked
 * once per panel as unsigned bytes, hence vpdpbsud's signed-by-unsigned products), C the
 * sub-block's exact sums. Each token's 16 sums are scaled by their rows' sub-block scales
 * in the integer and gathered over the super-block in a register; at its end the mins and
 * the two float steps run, the float chains in memory. */

#define K_ACT_SB (8 * TT * QK + 64 + 4 * 64) /* a token tile's super-block: codes, scales, sum pairs */
#define K_KC 4                               /* super-blocks per chunk: 16 KiB of B tiles */

static _Thread_local float accm_stage[STAGE_TILES][TT * PR] __attribute__((aligned(64)));

/* Tokens of act as A tiles, super-block after super-block: sub-block j's at 512j, then the
 * 16 scales, then sum pair p of token t at 4t + 64p. */
AINLINE void stage_tokens_k(const uint8_t *act, size_t as, int nt, int64_t nsb, uint8_t *out) {
    for (int64_t k = 0; k < nsb; k++, out += K_ACT_SB)
        for (int t = 0; t < TT; t++) {
            const meshlm_act256 *a = (const meshlm_act256 *)(act + (size_t)(t < nt ? t : nt - 1) * as) + k;
            for (int j = 0; j < 8; j++)
                _mm256_store_si256((__m256i *)(out + TT * QK * j + QK * t), _mm256_loadu_si256((const __m256i *)(a->q + QK * j)));
            memcpy(out + 8 * TT * QK + 4 * t, &a->d, sizeof a->d);
            int32_t pair[4];
            k_sum_pairs(a, 1, pair);
            for (int p = 0; p < 4; p++) memcpy(out + 8 * TT * QK + 64 + 64 * p + 4 * t, &pair[p], 4);
        }
}

/* A Q4_K panel's codes as unsigned bytes in B's layout: sub-block j of super-block k at
 * 4096k + 512j. */
AINLINE void unpack_q4_k(const uint8_t *p0, int64_t nsb) {
    const __m512i low = _mm512_set1_epi8(0x0f);
    for (int64_t k = 0; k < nsb; k++) {
        const uint8_t *c = p0 + (size_t)k * PR * MESHLM_Q4K_BYTES + K_CODES;
        int8_t *o = q4_stage + k * 8 * PR * QK;
        for (int jp = 0; jp < 4; jp++)
            for (int g = 0; g < 8; g++) {
                __m512i v = _mm512_loadu_si512(c + K_PAIR * jp + 64 * g);
                _mm512_store_si512(o + PR * QK * (2 * jp) + 64 * g, _mm512_and_si512(v, low));
                _mm512_store_si512(o + PR * QK * (2 * jp + 1) + 64 * g, _mm512_and_si512(_mm512_srli_epi16(v, 4), low));
            }
    }
}

#define EACH_TOKEN(X) X(0); X(1); X(2); X(3); X(4); X(5); X(6); X(7); X(8); X(9); X(10); X(11); X(12); X(13); X(14); X(15)

#define K_ISSUE(TC, TA, TB, q)                                                                               \
    do {                                                                                                     \
        _tile_loadd(TA, st + ((q) / 8) * K_ACT_SB + TT * QK * ((q) % 8), QK);                               \
        _tile_loadd(TB, q4_stage + (q) * PR * QK, PR * 4);                                                   \
        _tile_zero(TC);                                                                                      \
        _tile_dpbsud(TC, TA, TB);                                                                            \
    } while (0)

#define K_TOK_SCALE(t) isum##t = _mm512_add_epi32(isum##t, _mm512_mullo_epi32(_mm512_load_si512(c + (t) * PR), sc))

/* Super-block k's end for token t: its mins, the two float steps, the sum cleared. */
#define K_TOK_END(t)                                                                                         \
    do {                                                                                                     \
        __m512i ms = _mm512_setzero_si512();                                                                 \
        for (int p = 0; p < 4; p++)                                                                          \
            ms = _mm512_dpwssd_epi32(ms, mp[p], _mm512_set1_epi32(pairs[16 * p + (t)]));                    \
        const __m512 da = _mm512_set1_ps(dav[t]);                                                            \
        _mm512_store_ps(accp + (t) * PR, _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum##t), _mm512_mul_ps(dw, da),  \
                                                         _mm512_load_ps(accp + (t) * PR)));                  \
        _mm512_store_ps(accmp + (t) * PR, _mm512_fmadd_ps(_mm512_cvtepi32_ps(ms), _mm512_mul_ps(dm, da),      \
                                                          _mm512_load_ps(accmp + (t) * PR)));                \
        isum##t = _mm512_setzero_si512();                                                                    \
    } while (0)

#define K_FINISH(TC, q)                                                                                      \
    do {                                                                                                     \
        _tile_stored(TC, c_stage[TC], PR * 4);                                                               \
        const int32_t *c = c_stage[TC];                                                                      \
        const uint8_t *blk = p0 + (size_t)((q) / 8) * PR * MESHLM_Q4K_BYTES;                                 \
        const __m512i sc = k_scale(blk + K_SCALES, (q) % 8, false);                                          \
        EACH_TOKEN(K_TOK_SCALE);                                                                             \
        if ((q) % 8 == 7) {                                                                                  \
            const uint8_t *sb = st + ((q) / 8) * K_ACT_SB + 8 * TT * QK;                                     \
            const float *dav = (const float *)sb;                                                            \
            const int32_t *pairs = (const int32_t *)(sb + 64);                                               \
            const __m512i mp[4] = {k_min_pair(blk + K_SCALES, 0), k_min_pair(blk + K_SCALES, 1),             \
                                   k_min_pair(blk + K_SCALES, 2), k_min_pair(blk + K_SCALES, 3)};            \
            const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)blk));                     \
            const __m512 dm = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(blk + K_DMIN)));          \
            EACH_TOKEN(K_TOK_END);                                                                           \
        }                                                                                                    \
    } while (0)

/* Super-blocks k0..k1 of a panel against one staged token tile: its sub-blocks in turn,
 * two C tiles alternating as in chunk(). */
AINLINE void chunk_k(const uint8_t *p0, const uint8_t *st, int64_t k0, int64_t k1, float *accp, float *accmp) {
#define ISUM_ZERO(t) __m512i isum##t = _mm512_setzero_si512()
    EACH_TOKEN(ISUM_ZERO);
    const int64_t q1 = 8 * k1;
    int64_t q = 8 * k0;
    K_ISSUE(0, 2, 4, q);
    for (; q + 2 <= q1; q += 2) {
        K_ISSUE(1, 3, 5, q + 1);
        K_FINISH(0, q);
        if (q + 2 < q1) K_ISSUE(0, 2, 4, q + 2);
        K_FINISH(1, q + 1);
    }
#undef ISUM_ZERO
}

/* amx_dot for Q4_K: token groups as big as the stage holds, each panel once per group. */
ATARGET static void amx_dot_k(const uint8_t *w, size_t rb, int64_t lo, int64_t hi, const uint8_t *act, size_t as,
                              int64_t n, int64_t n_tok, float *y, int64_t ys) {
    const int64_t nsb = n / QK_K;
    int64_t tiles_max = STAGE_BYTES / (nsb * K_ACT_SB);
    if (tiles_max > STAGE_TILES) tiles_max = STAGE_TILES;
    configure();
    for (int64_t t0 = 0; t0 < n_tok; t0 += tiles_max * TT) {
        const int64_t nt = n_tok - t0 < tiles_max * TT ? n_tok - t0 : tiles_max * TT, tiles = (nt + TT - 1) / TT;
        for (int64_t i = 0; i < tiles; i++) {
            int real = nt - i * TT < TT ? (int)(nt - i * TT) : TT;
            stage_tokens_k(act + (size_t)(t0 + i * TT) * as, as, real, nsb, act_stage + i * nsb * K_ACT_SB);
        }
        for (int64_t p = lo / PR; PR * p < hi; p++) {
            const uint8_t *p0 = w + (size_t)p * PR * rb;
            unpack_q4_k(p0, nsb);
            memset(acc_stage, 0, (size_t)tiles * sizeof acc_stage[0]);
            memset(accm_stage, 0, (size_t)tiles * sizeof accm_stage[0]);
            for (int64_t k0 = 0; k0 < nsb; k0 += K_KC)
                for (int64_t i = 0; i < tiles; i++)
                    chunk_k(p0, act_stage + i * nsb * K_ACT_SB, k0, nsb - k0 < K_KC ? nsb : k0 + K_KC, acc_stage[i],
                            accm_stage[i]);
            const __mmask16 mask = panel_mask(p, lo, hi);
            for (int64_t t = 0; t < nt; t++) {
                const int64_t i = t / TT, at = (t % TT) * PR;
                _mm512_mask_storeu_ps(y + PR * p + (t0 + t) * ys, mask,
                                      _mm512_sub_ps(_mm512_load_ps(acc_stage[i] + at), _mm512_load_ps(accm_stage[i] + at)));
            }
        }
    }
    _tile_release();
}

#undef K_ISSUE
#undef K_FINISH
#undef K_TOK_SCALE
#undef K_TOK_END
#undef EACH_TOKEN
