/* The AMX form of the panel dots (see kernels_q8_panel.c), included there once. */

#define ATARGET __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,amx-tile,amx-int8")))
#define AINLINE ATARGET __attribute__((always_inline)) static inline
#define TT 16                  /* tokens per tile */
#define ACT_BLOCK (16 * QK + 64) /* a token tile's block: 16 tokens' 32 codes, then their 16 scales */
#define STAGE_TILES 64         /* token tiles staged at once, at most */
#define STAGE_BYTES (4 * MAX_BLOCKS * ACT_BLOCK) /* their room: four tiles of the longest row */
#define KC 32                  /* blocks per chunk: 16 KiB of B tiles stay in L1 */

static _Thread_local uint8_t act_stage[STAGE_BYTES] __attribute__((aligned(64)));
static _Thread_local int8_t q4_stage[MAX_BLOCKS * PR * QK] __attribute__((aligned(64)));
static _Thread_local int32_t c_stage[2][TT * PR] __attribute__((aligned(64)));
static _Thread_local float acc_stage[STAGE_TILES][TT * PR] __attribute__((aligned(64)));

/* Tiles 0-1: C (16 tokens x 16 rows of int32); 2-3: A (16 tokens x 32 codes); 4-5: B (8
 * groups x 16 rows x 4 codes); two of each so block k + 1 multiplies while block k's floats
 * run. (Rotating more, which reloads an A or B tile that a product still reads, was slower.) */
ATARGET static void configure(void) {
    static const meshlm_tile_config c = {.palette = 1,
                                  .colsb = {PR * 4, PR * 4, QK, QK, PR * 4, PR * 4},
                                  .rows = {TT, TT, TT, TT, QK / 4, QK / 4}};
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

/* A Q4_0 panel's codes as signed bytes in B's layout: group g of block k at 512k + 64g. */
AINLINE void unpack_q4(const uint8_t *p0, size_t pb, int64_t nb) {
    const __m512i low = _mm512_set1_epi8(0x0f), eight = _mm512_set1_epi8(8);
    for (int64_t k = 0; k < nb; k++) {
        const uint8_t *c = p0 + (size_t)k * pb + 2 * PR;
        int8_t *o = q4_stage + k * PR * QK;
        for (int g = 0; g < 4; g++) {
            __m512i v = _mm512_loadu_si512(c + 64 * g);
            _mm512_store_si512(o + 64 * g, _mm512_sub_epi8(_mm512_and_si512(v, low), eight));
            _mm512_store_si512(o + 64 * (g + 4), _mm512_sub_epi8(_mm512_and_si512(_mm512_srli_epi16(v, 4), low), eight));
        }
    }
}

/* Token t's float step for block k: C row t holds its 16 rows' sums. The accumulators are
 * named: an array of 16 zmm is past what the compiler keeps in registers. */
#define TOK_FLOATS(t)                                                                                        \
    acc##t = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512(c + (t) * PR)),                           \
                             _mm512_mul_ps(dw, _mm512_set1_ps(da[t])), acc##t)
#define EACH_TOKEN(X) X(0); X(1); X(2); X(3); X(4); X(5); X(6); X(7); X(8); X(9); X(10); X(11); X(12); X(13); X(14); X(15)

/* Block k's products into C tile TC from A tile TA and B tile TB (literals: the intrinsics
 * paste the numbers into the instruction). */
#define ISSUE(TC, TA, TB, k)                                                                                 \
    do {                                                                                                     \
        _tile_loadd(TA, st + (k) * ACT_BLOCK, QK);                                                           \
        if (q8)                                                                                              \
            _tile_loadd(TB, p0 + (size_t)(k) * pb + 2 * PR, PR * 4);                                         \
        else                                                                                                 \
            _tile_loadd(TB, q4_stage + (k) * PR * QK, PR * 4);                                               \
        _tile_zero(TC);                                                                                      \
        _tile_dpbssd(TC, TA, TB);                                                                            \
    } while (0)

#define FINISH(TC, k)                                                                                        \
    do {                                                                                                     \
        _tile_stored(TC, c_stage[TC], PR * 4);                                                               \
        const int32_t *c = c_stage[TC];                                                                      \
        const float *da = (const float *)(st + (k) * ACT_BLOCK + TT * QK);                                   \
        const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p0 + (size_t)(k) * pb)));     \
        EACH_TOKEN(TOK_FLOATS);                                                                              \
    } while (0)

/* Blocks k0..k1 of a panel against one staged token tile, carrying the accumulators at
 * accp (token t's 16 rows at 16t). */
AINLINE void chunk(bool q8, const uint8_t *p0, size_t pb, const uint8_t *st, int64_t k0, int64_t k1, float *accp) {
#define ACC_LOAD(t) __m512 acc##t = _mm512_load_ps(accp + (t) * PR)
    EACH_TOKEN(ACC_LOAD);
    ISSUE(0, 2, 4, k0);
    int64_t k = k0;
    for (; k + 2 <= k1; k += 2) {
        ISSUE(1, 3, 5, k + 1);
        FINISH(0, k);
        if (k + 2 < k1) ISSUE(0, 2, 4, k + 2);
        FINISH(1, k + 1);
    }
    if (k < k1) FINISH(0, k);
#define ACC_STORE(t) _mm512_store_ps(accp + (t) * PR, acc##t)
    EACH_TOKEN(ACC_STORE);
}

/* Token groups as big as the stage holds; per group each panel once, its blocks in chunks
 * of KC against every token tile, then each token's 16 rows in one store. */
ATARGET static void amx_dot(int type, const uint8_t *w, size_t rb, int64_t lo, int64_t hi, const uint8_t *act,
                            size_t as, int64_t n, int64_t n_tok, float *y, int64_t ys) {
    const bool q8 = q8_type(type);
    const int64_t nb = n / QK;
    const size_t pb = PR * meshlm_type_block_bytes(type);
    int64_t tiles_max = STAGE_BYTES / (nb * ACT_BLOCK);
    if (tiles_max > STAGE_TILES) tiles_max = STAGE_TILES;
    configure();
    for (int64_t t0 = 0; t0 < n_tok; t0 += tiles_max * TT) {
        const int64_t nt = n_tok - t0 < tiles_max * TT ? n_tok - t0 : tiles_max * TT, tiles = (nt + TT - 1) / TT;
        for (int64_t i = 0; i < tiles; i++) {
            int real = nt - i * TT < TT ? (int)(nt - i * TT) : TT;
            stage_tokens(act + (size_t)(t0 + i * TT) * as, as, real, nb, act_stage + i * nb * ACT_BLOCK);
        }
        for (int64_t p = lo / PR; PR * p < hi; p++) {
            const uint8_t *p0 = w + (size_t)p * PR * rb;
            if (!q8) unpack_q4(p0, pb, nb);
            memset(acc_stage, 0, (size_t)tiles * sizeof acc_stage[0]);
            for (int64_t k0 = 0; k0 < nb; k0 += KC)
                for (int64_t i = 0; i < tiles; i++)
                    chunk(q8, p0, pb, act_stage + i * nb * ACT_BLOCK, k0, nb - k0 < KC ? nb : k0 + KC, acc_stage[i]);
            const __mmask16 mask = panel_mask(p, lo, hi);
            for (int64_t t = 0; t < nt; t++)
                _mm512_mask_storeu_ps(y + PR * p + (t0 + t) * ys, mask, _mm512_load_ps(acc_stage[t / TT] + (t % TT) * PR));
        }
    }
    _tile_release();
}

#undef ISSUE
#undef FINISH
#undef TOK_FLOATS
#undef EACH_TOKEN
#undef ACC_LOAD
#undef ACC_STORE
