/* AMX int8 tiles for the block-order dots (Q8_0, Q4_0) of several tokens: the prefill and
 * batched-decode form of kernels_q8_blk.h, bit for bit the reference.
 *
 * One tdpbssd multiplies a tile of 16 weight rows by 32 codes (A) with 32 codes of 16
 * tokens (B) into 16 x 16 exact int32 block sums (C): the reference's integers. The float
 * step per block is the reference's, acc = fma(sum, d_w * d_a, acc), on a vector of 16
 * tokens for each of the 16 rows. A is read straight from the weight rows for Q8_0 (32
 * signed codes at a stride of a row) and from a panel of unpacked codes for Q4_0; B wants
 * each token's codes in 4-byte groups interleaved across the tokens, so the activations
 * are restaged once per call for all its rows. Rows past the last full 16 and calls with
 * a single token (decode, which the weight stream bounds, not the products) go to the
 * VNNI kernels, which give the same bits. The same tiles also run on Q8_0 and Q4_0 panels
 * (core/panel.h), whose 16 rows are restaged into A as the rows' are. */
#include "core/kernels.h"

#include <stddef.h>
#include <stdint.h>

#include "core/amx.h"
#include "core/dtype.h"
#include "core/quant_impl.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <string.h>

#define TARGET __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,amx-tile,amx-int8")))
#define INLINE TARGET __attribute__((always_inline)) static inline
#define QK MESHLM_QK
#define TT 16                   /* tokens per tile */
#define TR 16                   /* rows per tile */
#define ACT_BLOCK (8 * 64 + 64) /* a token tile's block: 8 groups x 16 tokens x 4 codes, 16 scales */
#define W_BLOCK (TR * QK)       /* a Q4_0 panel's block of unpacked codes */
#define MAX_BLOCKS 1024         /* rows of up to 32768 values take tiles */
#define STAGE_BYTES (MAX_BLOCKS * ACT_BLOCK)
#define MAX_TILES 64            /* token tiles staged at once */
#define KC 32                   /* blocks per chunk: 16 KiB of A tiles */
#define KR 32                   /* blocks per range of the blocked form */
#define KB_PANELS 64            /* panels the blocked form carries from range to range */
#define KB_TILES 32             /* and token tiles */
_Static_assert(KB_TILES * KR <= MAX_BLOCKS, "a range of every token tile fits the staging area");

/* Per thread: the restaged activations of one call, a panel's codes, its weight scales
 * as floats, the two C tiles' landing place and a panel's accumulators per token tile. */
static _Thread_local uint8_t act_stage[STAGE_BYTES] __attribute__((aligned(64)));
static _Thread_local int8_t w_stage[MAX_BLOCKS * W_BLOCK] __attribute__((aligned(64)));
static _Thread_local float dw_stage[MAX_BLOCKS * TR] __attribute__((aligned(64)));
static _Thread_local int32_t c_stage[2][TR * TT] __attribute__((aligned(64)));
static _Thread_local float acc_stage[MAX_TILES][TR * TT] __attribute__((aligned(64)));
static _Thread_local float acc_kb[KB_PANELS][KB_TILES][TR * TT] __attribute__((aligned(64)));

/* Tiles 0-1: C (16 rows x 16 int32); 2-3: A (16 rows x 32 codes); 4-5: B (8 groups x 16
 * tokens x 4 codes). Two of each so block k + 1 multiplies while block k's floats run.
 * (Deeper rotations, which reload an A or B tile that a product still reads, were slower
 * here.) */
TARGET static void configure(void) {
    static const meshlm_tile_config c = {.palette = 1,
                                  .colsb = {TT * 4, TT * 4, QK, QK, TT * 4, TT * 4},
                                  .rows = {TR, TR, TR, TR, QK / 4, QK / 4}};
    _tile_loadconfig(&c);
}

/* Tokens t0..t0+15 of act (as bytes apart; those at or past nt repeat token nt - 1, and
 * their results are dropped) as B tiles, block after block: each token's 32 codes are 8
 * dwords, tokens t and t + 8 share a zmm, and an 8 x 8 dword transpose in each half puts
 * group g of all 16 tokens in token order. */
INLINE void stage_tile(const uint8_t *act, size_t as, int nt, int64_t nb, uint8_t *out) {
    const uint8_t *tok[TT];
    for (int t = 0; t < TT; t++) tok[t] = act + (size_t)(t < nt ? t : nt - 1) * as;
    const __m512i lo = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13), hi = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);
    int32_t off[TT];
    for (int t = 0; t < TT; t++) off[t] = (int32_t)(tok[t] - tok[0]);
    const __m512i voff = _mm512_loadu_si512(off);
    for (int64_t k = 0; k < nb; k++, out += ACT_BLOCK) {
        const size_t at = (size_t)k * sizeof(meshlm_act32);
        __m512i r[8], u[8], v[8];
        for (int i = 0; i < 8; i++) {
            __m256i a = _mm256_loadu_si256((const __m256i *)(tok[i] + at + offsetof(meshlm_act32, q)));
            __m256i b = _mm256_loadu_si256((const __m256i *)(tok[i + 8] + at + offsetof(meshlm_act32, q)));
            r[i] = _mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1);
        }
        for (int i = 0; i < 8; i += 2) {
            u[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
            u[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
        }
        for (int i = 0; i < 8; i += 4)
            for (int j = 0; j < 2; j++) {
                v[i + 2 * j] = _mm512_unpacklo_epi64(u[i + j], u[i + j + 2]);
                v[i + 2 * j + 1] = _mm512_unpackhi_epi64(u[i + j], u[i + j + 2]);
            }
        /* v[0..3] hold groups 0..3 of tokens 0-3 (and 8-11) in lane 0 and 4..7 in lane 1;
         * v[4..7] the same for tokens 4-7 (12-15). */
        for (int g = 0; g < 4; g++) {
            _mm512_store_si512(out + 64 * g, _mm512_permutex2var_epi64(v[g], lo, v[4 + g]));
            _mm512_store_si512(out + 64 * (g + 4), _mm512_permutex2var_epi64(v[g], hi, v[4 + g]));
        }
        __m512 d = _mm512_i32gather_ps(voff, tok[0] + at + offsetof(meshlm_act32, d), 1);
        _mm512_store_ps(out + 8 * 64, d);
    }
}

/* The 16 rows' scales of each block as floats, and their codes as signed bytes (Q4_0's
 * minus 8), 32 per row and block: one aligned 512-byte A tile per block, which stays in
 * L1 for all the token tiles, where straight from the rows each of its 16 lines of 32
 * bytes could straddle two cache lines. */
INLINE void stage_panel(bool q8, const uint8_t *rows, size_t rs, int64_t nb) {
    const size_t bytes = q8 ? MESHLM_Q8_0_BYTES : MESHLM_Q4_0_BYTES;
    int32_t off[TR];
    for (int r = 0; r < TR; r++) off[r] = (int32_t)((size_t)r * rs);
    const __m512i voff = _mm512_loadu_si512(off);
    for (int64_t k = 0; k < nb; k++) {
        const uint8_t *b = rows + (size_t)k * bytes;
        __m256i h = _mm512_cvtepi32_epi16(_mm512_i32gather_epi32(voff, b, 1));
        _mm512_store_ps(dw_stage + k * TR, _mm512_cvtph_ps(h));
    }
    const __m256i mask = _mm256_set1_epi8(0x0f), eight = _mm256_set1_epi8(8);
    for (int r = 0; r < TR; r++)
        for (int64_t k = 0; k < nb; k++) {
            const uint8_t *qs = rows + (size_t)r * rs + (size_t)k * bytes + 2;
            __m256i v;
            if (q8) {
                v = _mm256_loadu_si256((const __m256i *)qs);
            } else {
                v = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qs));
                v = _mm256_and_si256(_mm256_srlv_epi64(v, _mm256_setr_epi64x(0, 0, 4, 4)), mask);
                v = _mm256_sub_epi8(v, eight);
            }
            _mm256_store_si256((__m256i *)(w_stage + k * W_BLOCK + r * QK), v);
        }
}

/* Groups 0-7 of 16 rows (v[g], dword r of row r) as the rows' 32 codes each, rows 2m and
 * 2m + 1 at o + 64m: pairs of groups interleave (dwords, then qwords) into each row's
 * groups 0-3 and 4-7 within 128-bit lanes (lane L holding rows 4L..4L+3), and a 4 x 4
 * transpose of lanes puts a row's two halves and the next row's side by side. */
INLINE void rows_of_groups(const __m512i *v, int8_t *o) {
    __m512i a[8], b[8];
    for (int i = 0; i < 8; i += 2) {
        a[i] = _mm512_unpacklo_epi32(v[i], v[i + 1]);
        a[i + 1] = _mm512_unpackhi_epi32(v[i], v[i + 1]);
    }
    for (int h = 0; h < 2; h++) {
        const __m512i *p = a + 4 * h;
        b[4 * h + 0] = _mm512_unpacklo_epi64(p[0], p[2]);
        b[4 * h + 1] = _mm512_unpackhi_epi64(p[0], p[2]);
        b[4 * h + 2] = _mm512_unpacklo_epi64(p[1], p[3]);
        b[4 * h + 3] = _mm512_unpackhi_epi64(p[1], p[3]);
    }
    /* b[j] is row 4L + j's groups 0-3 in lane L, b[4 + j] its groups 4-7 */
    for (int j0 = 0; j0 < 4; j0 += 2) {
        const __m512i t0 = _mm512_shuffle_i64x2(b[j0], b[4 + j0], _MM_SHUFFLE(1, 0, 1, 0));
        const __m512i t1 = _mm512_shuffle_i64x2(b[j0], b[4 + j0], _MM_SHUFFLE(3, 2, 3, 2));
        const __m512i t2 = _mm512_shuffle_i64x2(b[j0 + 1], b[5 + j0], _MM_SHUFFLE(1, 0, 1, 0));
        const __m512i t3 = _mm512_shuffle_i64x2(b[j0 + 1], b[5 + j0], _MM_SHUFFLE(3, 2, 3, 2));
        const int m = j0 / 2; /* lane L gives rows 4L + j0, 4L + j0 + 1: output 2L + m */
        _mm512_store_si512(o + 64 * (0 + m), _mm512_shuffle_i64x2(t0, t2, _MM_SHUFFLE(2, 0, 2, 0)));
        _mm512_store_si512(o + 64 * (2 + m), _mm512_shuffle_i64x2(t0, t2, _MM_SHUFFLE(3, 1, 3, 1)));
        _mm512_store_si512(o + 64 * (4 + m), _mm512_shuffle_i64x2(t1, t3, _MM_SHUFFLE(2, 0, 2, 0)));
        _mm512_store_si512(o + 64 * (6 + m), _mm512_shuffle_i64x2(t1, t3, _MM_SHUFFLE(3, 1, 3, 1)));
    }
}

/* The same A tiles and scales from a panel of 16 rows (core/panel.h), whose codes lie in
 * 4-byte groups across the rows (group g of row r at 64g + 4r; Q4_0's low nibbles are
 * groups 0-3 and its high nibbles groups 4-7). */
INLINE void stage_from_panel(bool q8, const uint8_t *panel, int64_t nb) {
    const size_t pb = TR * (q8 ? MESHLM_Q8_0_BYTES : MESHLM_Q4_0_BYTES);
    const __m512i low = _mm512_set1_epi8(0x0f), eight = _mm512_set1_epi8(8);
    for (int64_t k = 0; k < nb; k++) {
        const uint8_t *b = panel + (size_t)k * pb;
        _mm512_store_ps(dw_stage + k * TR, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)b)));
        __m512i v[8];
        for (int g = 0; g < 4; g++) {
            const __m512i c = _mm512_loadu_si512(b + 2 * TR + 64 * g);
            if (q8) {
                v[g] = c;
                v[g + 4] = _mm512_loadu_si512(b + 2 * TR + 64 * (g + 4));
            } else {
                v[g] = _mm512_sub_epi8(_mm512_and_si512(c, low), eight);
                v[g + 4] = _mm512_sub_epi8(_mm512_and_si512(_mm512_srli_epi16(c, 4), low), eight);
            }
        }
        rows_of_groups(v, w_stage + k * W_BLOCK);
    }
}

/* Block k's float step for row r, from the C tile stored at c (dw: the block's 16 row
 * scales, da: its 16 token scales). The 16 accumulators are named, not an array: an
 * array of 16 zmm is past what the compiler will keep in registers, and spilled it would
 * put a load and a store on every multiply-add. */
#define ROW_FLOATS(r) \
    acc##r = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512(c + (r) * TT)), \
                             _mm512_mul_ps(_mm512_set1_ps(dw[r]), da), acc##r)

#define ACC_ROWS(X) X(0); X(1); X(2); X(3); X(4); X(5); X(6); X(7); X(8); X(9); X(10); X(11); X(12); X(13); X(14); X(15)

/* A block's products into C tile TC from A tile TA and B tile TB (the tile numbers must
 * be literals: the intrinsics paste them into the instruction). */
#define ISSUE(TC, TA, TB, k)                                                                                 \
    do {                                                                                                     \
        _tile_loadd(TA, w_stage + (k) * W_BLOCK, QK);                                                        \
        _tile_loadd(TB, st + (k) * ACT_BLOCK, TT * 4);                                                       \
        for (int l = 0; l < ACT_BLOCK; l += 64) _mm_prefetch((const char *)st + ((k) + 4) * ACT_BLOCK + l, _MM_HINT_T0); \
        _tile_zero(TC);                                                                                      \
        _tile_dpbssd(TC, TA, TB);                                                                            \
    } while (0)

#define FINISH(TC, k)                                                                                        \
    do {                                                                                                     \
        _tile_stored(TC, c_stage[TC], TT * 4);                                                               \
        const int32_t *c = c_stage[TC];                                                                      \
        const float *dw = dw_stage + (k) * TR;                                                               \
        const __m512 da = _mm512_load_ps(st + (k) * ACT_BLOCK + 8 * 64);                                     \
        ACC_ROWS(ROW_FLOATS);                                                                                \
    } while (0)

/* Blocks k0..k1 of 16 rows against one staged token tile, carrying the 16 x 16 float
 * accumulators at accp; the next block's tile product is issued before this block's
 * floats. */
INLINE void panel_chunk(int64_t k0, int64_t k1, const uint8_t *st, float *accp) {
#define ACC_LOAD(r) __m512 acc##r = _mm512_load_ps(accp + (r) * TT)
    ACC_ROWS(ACC_LOAD);
    ISSUE(0, 2, 4, k0);
    int64_t k = k0;
    for (; k + 2 <= k1; k += 2) {
        ISSUE(1, 3, 5, k + 1);
        FINISH(0, k);
        if (k + 2 < k1) ISSUE(0, 2, 4, k + 2);
        FINISH(1, k + 1);
    }
    if (k < k1) FINISH(0, k);
#define ACC_STORE(r) _mm512_store_ps(accp + (r) * TT, acc##r)
    ACC_ROWS(ACC_STORE);
}

/* A panel's accumulators (acc[i]: token tile i, 16 rows x 16 tokens) into y, nt tokens.
 * Each token's 16 rows go out as one 64-byte store: written a float at a time, the
 * outputs of a call spread over as many lines as it has tokens and rows, and push the
 * staged tiles out of L2. */
INLINE void store_tiles(float (*acc)[TR * TT], int64_t tiles, int64_t nt, float *y, int64_t ys) {
    const __m512i by_row = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                              _mm512_set1_epi32(TT));
    for (int64_t i = 0; i < tiles; i++)
        for (int64_t t = i * TT; t < nt && t < (i + 1) * TT; t++)
            _mm512_storeu_ps(y + t * ys, _mm512_i32gather_ps(by_row, acc[i] + t - i * TT, 4));
}

/* A panel of 16 rows against `tiles` staged token tiles, nt tokens real: the blocks go in
 * chunks of KC, each chunk's A tiles (16 KiB) staying in L1 while every token tile's B
 * tiles stream past them from L2. */
INLINE void panel_tiles(int64_t nb, int64_t tiles, int64_t nt, float *y, int64_t ys) {
    memset(acc_stage, 0, (size_t)tiles * sizeof acc_stage[0]);
    for (int64_t k0 = 0; k0 < nb; k0 += KC) {
        const int64_t k1 = nb - k0 < KC ? nb : k0 + KC;
        for (int64_t i = 0; i < tiles; i++) panel_chunk(k0, k1, act_stage + i * nb * ACT_BLOCK, acc_stage[i]);
    }
    store_tiles(acc_stage, tiles, nt, y, ys);
}

/* Long rows of panels: the row in ranges of KR blocks, each range's token tiles staged
 * once for all the call's panels and each panel's range once for all the tiles, with
 * every panel's accumulators kept (acc_kb) from one range to the next. The blocks still
 * meet the accumulators in order, so the bits are the unblocked form's. */
INLINE void amx_panels_blocked(bool q8, const uint8_t *w, size_t rb, int64_t n_rows, const uint8_t *act, size_t as,
                               int64_t n, int64_t n_tok, float *y, int64_t ys) {
    const int64_t nb = n / QK;
    const size_t pb = TR * (q8 ? MESHLM_Q8_0_BYTES : MESHLM_Q4_0_BYTES);
    configure();
    for (int64_t t0 = 0; t0 < n_tok; t0 += KB_TILES * TT) {
        const int64_t nt = n_tok - t0 < KB_TILES * TT ? n_tok - t0 : KB_TILES * TT, tiles = (nt + TT - 1) / TT;
        for (int64_t p0 = 0; p0 < n_rows; p0 += KB_PANELS * TR) {
            const int64_t np = (n_rows - p0) / TR < KB_PANELS ? (n_rows - p0) / TR : KB_PANELS;
            for (int64_t p = 0; p < np; p++) memset(acc_kb[p], 0, (size_t)tiles * sizeof acc_kb[p][0]);
            for (int64_t k0 = 0; k0 < nb; k0 += KR) {
                const int64_t kr = nb - k0 < KR ? nb - k0 : KR;
                for (int64_t i = 0; i < tiles; i++) {
                    int real = nt - i * TT < TT ? (int)(nt - i * TT) : TT;
                    stage_tile(act + (size_t)(t0 + i * TT) * as + (size_t)k0 * sizeof(meshlm_act32), as, real, kr,
                               act_stage + i * kr * ACT_BLOCK);
                }
                for (int64_t p = 0; p < np; p++) {
                    stage_from_panel(q8, w + (size_t)(p0 + p * TR) * rb + (size_t)k0 * pb, kr);
                    for (int64_t i = 0; i < tiles; i++) panel_chunk(0, kr, act_stage + i * kr * ACT_BLOCK, acc_kb[p][i]);
                }
            }
            for (int64_t p = 0; p < np; p++) store_tiles(acc_kb[p], tiles, nt, y + p0 + p * TR + t0 * ys, ys);
        }
    }
    _tile_release();
}

INLINE void amx_rows(int type, bool from_panel, const uint8_t *rows, size_t rs, int64_t n_rows, const uint8_t *act,
                     size_t as, int64_t n, int64_t n_tok, float *y, int64_t ys) {
    const bool q8 = type == MESHLM_TYPE_Q8_0;
    const int64_t nb = n / QK, full = n_rows / TR * TR;
    meshlm_qdot_rows_fn rest = meshlm_qdot_rows_vnni(type);
    if (n_tok < 2 || nb > MAX_BLOCKS || full == 0) {
        rest(rows, rs, n_rows, act, as, n, n_tok, y, ys);
        return;
    }
    int64_t group = STAGE_BYTES / (nb * ACT_BLOCK); /* token tiles staged at once */
    group = (group < MAX_TILES ? group : MAX_TILES) * TT;
    configure();
    for (int64_t t0 = 0; t0 < n_tok; t0 += group) {
        const int64_t nt = n_tok - t0 < group ? n_tok - t0 : group;
        const int64_t tiles = (nt + TT - 1) / TT;
        for (int64_t i = 0; i < tiles; i++) {
            int real = nt - i * TT < TT ? (int)(nt - i * TT) : TT;
            stage_tile(act + (size_t)(t0 + i * TT) * as, as, real, nb, act_stage + i * nb * ACT_BLOCK);
        }
        for (int64_t p = 0; p < full; p += TR) {
            const uint8_t *panel = rows + (size_t)p * rs;
            if (from_panel)
                stage_from_panel(q8, panel, nb);
            else
                stage_panel(q8, panel, rs, nb);
            /* The next panel is 16 whole rows in a row: asked for now, it streams in while
             * this one's tiles run, instead of missing in the scale gathers. */
            if (p + TR < full)
                for (size_t at = 0; at < TR * rs; at += 64) _mm_prefetch((const char *)panel + TR * rs + at, _MM_HINT_T1);
            panel_tiles(nb, tiles, nt, y + p + t0 * ys, ys);
        }
    }
    _tile_release();
    if (full < n_rows) rest(rows + (size_t)full * rs, rs, n_rows - full, act, as, n, n_tok, y + full, ys);
}

TARGET static void qrows_q8_0(const void *rows, size_t rs, int64_t n_rows, const void *act, size_t as, int64_t n,
                              int64_t n_tok, float *y, int64_t ys) {
    amx_rows(MESHLM_TYPE_Q8_0, false, rows, rs, n_rows, act, as, n, n_tok, y, ys);
}

TARGET static void qrows_q4_0(const void *rows, size_t rs, int64_t n_rows, const void *act, size_t as, int64_t n,
                              int64_t n_tok, float *y, int64_t ys) {
    amx_rows(MESHLM_TYPE_Q4_0, false, rows, rs, n_rows, act, as, n, n_tok, y, ys);
}

/* Only through meshlm_panel_dot_amx_rows, whose checks keep amx_rows from its VNNI
 * fallbacks: those read rows, not panels. */
TARGET static void panels_amx(int type, const void *w, size_t rb, int64_t lo, int64_t hi, const void *act, size_t as,
                               int64_t n, int64_t n_tok, float *y, int64_t ys) {
    if (n / QK > 4 * KR)
        amx_panels_blocked(type == MESHLM_TYPE_Q8_0, (const uint8_t *)w + (size_t)lo * rb, rb, hi - lo, act, as, n,
                           n_tok, y + lo, ys);
    else
        amx_rows(type, true, (const uint8_t *)w + (size_t)lo * rb, rb, hi - lo, act, as, n, n_tok, y + lo, ys);
}
#endif

bool meshlm_panel_dot_amx_rows(int type, const void *w, size_t row_bytes, int64_t lo, int64_t hi, const void *act,
                               size_t act_stride, int64_t n, int64_t n_tok, float *y, int64_t y_stride) {
#if defined(__x86_64__)
    if ((type != MESHLM_TYPE_Q8_0 && type != MESHLM_TYPE_Q4_0) || lo % TR || hi % TR || n_tok < 2 || n / QK > MAX_BLOCKS)
        return false;
    panels_amx(type, w, row_bytes, lo, hi, act, act_stride, n, n_tok, y, y_stride);
    return true;
#else
    (void)type, (void)w, (void)row_bytes, (void)lo, (void)hi, (void)act, (void)act_stride, (void)n, (void)n_tok;
    (void)y, (void)y_stride;
    return false;
#endif
}

meshlm_qdot_rows_fn meshlm_qdot_rows_amx(int type) {
#if defined(__x86_64__)
    switch (type) {
    case MESHLM_TYPE_Q8_0: return qrows_q8_0;
    case MESHLM_TYPE_Q4_0: return qrows_q4_0;
    default: return NULL;
    }
#else
    (void)type;
    return NULL;
#endif
}
