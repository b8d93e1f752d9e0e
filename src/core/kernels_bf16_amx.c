/* AMX-BF16 tiles for BF16 weights against BF16 activations, every token count: the order
 * kernels_bf16.c defines is what TDPBF16PS computes, so these are bit for bit its reference.
 *
 * A is 16 weight rows by one 32-value chunk, read straight from the rows (the pair layout
 * the instruction wants of A is the rows' own); B is one chunk of 16 tokens, pairs
 * interleaved across the tokens (B[k][2t + j] = value 2k + j of token t), staged once per
 * call for all its rows; C, 16 rows by 16 tokens, accumulates over the whole row. A single
 * token needs no staging: its chunk is already a B of one column. The chunk past the end
 * of a row is copied with zeros behind it, and the rows past the last full 16 take the
 * AVX-512 form, which gives the same bits. */
#include "core/kernels.h"

#include <stddef.h>
#include <stdint.h>

#if defined(__x86_64__)
#include <immintrin.h>

#include "core/amx.h"
#include "core/bf16_tile.h"

#define TARGET __attribute__((target("avx512f,avx512bw,avx512vl,amx-tile,amx-bf16")))
#define INLINE TARGET __attribute__((always_inline)) static inline
#define CB 64                         /* bytes per chunk: 32 BF16 values */
#define TILE 16                       /* rows, and tokens, per tile */
#define STAGE_BYTES (512 << 10)       /* staged token tiles per thread */
#define MAX_CHUNKS (STAGE_BYTES / (TILE * CB))

/* Per thread: the staged token tiles, a panel's last chunk zero padded, and C landing. */
static _Thread_local uint8_t b_stage[STAGE_BYTES] __attribute__((aligned(64)));
static _Thread_local uint8_t w_tail[2][TILE * CB] __attribute__((aligned(64)));
static _Thread_local float c_out[TILE * TILE] __attribute__((aligned(64)));

/* Every tile has 16 rows. Tiles 0-3: C (16 rows x `cols` tokens); 4-5: A (16 rows x 32
 * values); 6: B of 16 tokens, or a third A for one token (64 bytes either way); 7: B (16
 * pairs x `cols` tokens). */
TARGET static void configure(int cols) {
#define CONFIG(cols) {.palette = 1,                                                                           \
                      .colsb = {4 * (cols), 4 * (cols), 4 * (cols), 4 * (cols), CB, CB, CB, 4 * (cols)},     \
                      .rows = {TILE, TILE, TILE, TILE, TILE, TILE, TILE, TILE}}
    static const meshlm_tile_config one = CONFIG(1), many = CONFIG(TILE);
#undef CONFIG
    _tile_loadconfig(cols == 1 ? &one : &many);
}

/* Tokens of act (as bytes apart; nt real, the rest repeat the last and are dropped) as B
 * tiles, chunk after chunk: one transpose of their 16 words per chunk. */
INLINE void stage_tokens(const uint8_t *act, size_t as, int nt, int64_t nc, uint8_t *out) {
    for (int64_t c = 0; c < nc; c++, out += TILE * CB) {
        __m512i v[TILE];
        for (int t = 0; t < TILE; t++) v[t] = _mm512_loadu_si512(act + (size_t)(t < nt ? t : nt - 1) * as + c * CB);
        meshlm_transpose16(v);
        for (int k = 0; k < TILE; k++) _mm512_store_si512(out + k * CB, v[k]);
    }
}

/* The last chunk of 16 rows, n values in all, with zeros past the row (loaded whole, it
 * would bring in the next row's values, or run past the matrix). */
INLINE const uint8_t *tail(const uint8_t *rows, size_t rs, int64_t n, uint8_t *out) {
    const int64_t c = (n - 1) / 32 * 32, left = n - c;
    const __mmask32 m = left >= 32 ? 0xffffffffu : (__mmask32)((1u << left) - 1);
    for (int r = 0; r < TILE; r++)
        _mm512_store_si512(out + r * CB, _mm512_maskz_loadu_epi16(m, rows + (size_t)r * rs + (size_t)c * 2));
    return out;
}

/* A's chunk c of the panel at rows: straight from the rows but for the padded last one. */
#define A_AT(rows, tl, c) ((c) < full ? (rows) + (size_t)(c) * CB : (tl))
#define A_STRIDE(rs, c) ((c) < full ? (rs) : CB)

/* np (1 or 2) panels of 16 rows by nt (1 or 2) staged token tiles at b (nc chunks each):
 * C tile 2i + j for panel i and token tile j, over the whole row; then each token's 16 row
 * results go out as one 64-byte store. Inlined with constant np and nt. */
INLINE void block(const uint8_t *r0, const uint8_t *r1, size_t rs, const uint8_t *t0, const uint8_t *t1,
                  int64_t n, int64_t nc, const uint8_t *b0, const uint8_t *b1, int np, int nt, int real0, int real1,
                  float *y, int64_t ys) {
    const int64_t full = n / 32;
    _tile_zero(0);
    if (nt > 1) _tile_zero(1);
    if (np > 1) _tile_zero(2);
    if (np > 1 && nt > 1) _tile_zero(3);
    for (int64_t c = 0; c < nc; c++) {
        _tile_loadd(4, A_AT(r0, t0, c), A_STRIDE(rs, c));
        _tile_loadd(6, b0 + c * TILE * CB, CB);
        if (np > 1) _tile_loadd(5, A_AT(r1, t1, c), A_STRIDE(rs, c));
        if (nt > 1) _tile_loadd(7, b1 + c * TILE * CB, CB);
        _tile_dpbf16ps(0, 4, 6);
        if (nt > 1) _tile_dpbf16ps(1, 4, 7);
        if (np > 1) _tile_dpbf16ps(2, 5, 6);
        if (np > 1 && nt > 1) _tile_dpbf16ps(3, 5, 7);
    }
    /* C holds row m, token t at m * 16 + t: a transpose gives each token its 16 rows. */
#define OUT(TC, row0, tok0, real)                                                                   \
    do {                                                                                            \
        _tile_stored(TC, c_out, TILE * 4);                                                          \
        __m512i v[TILE];                                                                            \
        for (int m = 0; m < TILE; m++) v[m] = _mm512_load_si512(c_out + m * TILE);                  \
        meshlm_transpose16(v);                                                                      \
        for (int t = 0; t < (real); t++)                                                            \
            _mm512_storeu_ps(y + (row0) + ((tok0) + t) * ys, _mm512_castsi512_ps(v[t]));            \
    } while (0)
    OUT(0, 0, 0, real0);
    if (nt > 1) OUT(1, 0, TILE, real1);
    if (np > 1) OUT(2, TILE, 0, real0);
    if (np > 1 && nt > 1) OUT(3, TILE, TILE, real1);
#undef OUT
}

/* Rows in pairs of panels against the staged tiles in pairs; the odd ones go alone. */
INLINE void staged(const uint8_t *rows, size_t rs, int64_t full_rows, int64_t n, int64_t nc, int64_t tiles,
                   int64_t nt, float *y, int64_t ys) {
    for (int64_t p = 0; p < full_rows; p += 2 * TILE) {
        const int np = full_rows - p >= 2 * TILE ? 2 : 1;
        const uint8_t *r0 = rows + (size_t)p * rs, *r1 = r0 + (size_t)TILE * rs;
        const uint8_t *t0 = tail(r0, rs, n, w_tail[0]), *t1 = np > 1 ? tail(r1, rs, n, w_tail[1]) : NULL;
        for (int64_t i = 0; i < tiles; i += 2) {
            const uint8_t *b0 = b_stage + i * nc * TILE * CB, *b1 = b0 + nc * TILE * CB;
            const int real0 = nt - i * TILE < TILE ? (int)(nt - i * TILE) : TILE;
            const int real1 = nt - (i + 1) * TILE < TILE ? (int)(nt - (i + 1) * TILE) : TILE;
            float *yp = y + p + i * TILE * ys;
            if (i + 1 < tiles && np > 1) block(r0, r1, rs, t0, t1, n, nc, b0, b1, 2, 2, real0, real1, yp, ys);
            else if (i + 1 < tiles) block(r0, r1, rs, t0, t1, n, nc, b0, b1, 1, 2, real0, real1, yp, ys);
            else if (np > 1) block(r0, r1, rs, t0, t1, n, nc, b0, b1, 2, 1, real0, 0, yp, ys);
            else block(r0, r1, rs, t0, t1, n, nc, b0, b1, 1, 1, real0, 0, yp, ys);
        }
    }
}

/* One token: B is its activation row itself (16 pairs of one column per chunk) and C, 16
 * rows of one column, goes straight to y. One panel at a time: with more, their 32 or 48
 * row streams were slower than the dependent products of one. */
INLINE void single(const uint8_t *rows, size_t rs, const uint8_t *act, int64_t n, int64_t nc, float *y) {
    const int64_t full = n / 32;
    const uint8_t *tl = full < nc ? tail(rows, rs, n, w_tail[0]) : NULL;
    _tile_zero(0);
    for (int64_t c = 0; c < nc; c++) {
        _tile_loadd(7, act + c * CB, 4);
        _tile_loadd(4, A_AT(rows, tl, c), A_STRIDE(rs, c));
        _tile_dpbf16ps(0, 4, 7);
    }
    _tile_stored(0, y, 4);
}

TARGET static void qrows_amx(const void *rows_v, size_t rs, int64_t n_rows, const void *act_v, size_t as,
                             int64_t n, int64_t n_tok, float *y, int64_t ys) {
    const uint8_t *rows = rows_v, *act = act_v;
    const int64_t nc = (n + 31) / 32, full_rows = n_rows / TILE * TILE;
    const int64_t group = MAX_CHUNKS / (nc ? nc : 1) * TILE; /* tokens staged at once */
    meshlm_qdot_rows_fn rest = meshlm_qrows_bf16_avx512();
    if (full_rows == 0 || group == 0) {
        rest(rows, rs, n_rows, act, as, n, n_tok, y, ys);
        return;
    }
    if (n_tok == 1) {
        configure(1);
        for (int64_t p = 0; p < full_rows; p += TILE) single(rows + (size_t)p * rs, rs, act, n, nc, y + p);
    } else {
        configure(TILE);
        for (int64_t t0 = 0; t0 < n_tok; t0 += group) {
            const int64_t nt = n_tok - t0 < group ? n_tok - t0 : group, tiles = (nt + TILE - 1) / TILE;
            for (int64_t i = 0; i < tiles; i++) {
                const int real = nt - i * TILE < TILE ? (int)(nt - i * TILE) : TILE;
                stage_tokens(act + (size_t)(t0 + i * TILE) * as, as, real, nc, b_stage + i * nc * TILE * CB);
            }
            staged(rows, rs, full_rows, n, nc, tiles, nt, y + t0 * ys, ys);
        }
    }
    _tile_release();
    if (full_rows < n_rows)
        rest(rows + (size_t)full_rows * rs, rs, n_rows - full_rows, act, as, n, n_tok, y + full_rows, ys);
}
#endif

meshlm_qdot_rows_fn meshlm_qrows_bf16_amx(void) {
#if defined(__x86_64__)
    return qrows_amx;
#else
    return NULL;
#endif
}
