/* The panel layout of core/panel.h: packing, the plain reference, and its two kernels, both
 * bit for bit the block order of kernels_q8.c (one exact int32 per row, token and block,
 * then acc = fma(sum, d_w * d_a, acc)):
 * - AVX-512 VNNI, any token count: a zmm holds one int32 per row of the panel, so each
 *   64-byte load of codes meets a broadcast group of 4 activation codes in one vpdpbusd
 *   and a block's 16 row sums are ready with nothing to reduce. vpdpbusd wants unsigned
 *   weights: Q8_0's codes go in with the top bit flipped (w + 128) and Q4_0's nibbles as
 *   they are (w + 8); each sum starts at -offset * (the block's activation code sum).
 * - AMX int8, several tokens: A is 16 tokens' 32 codes of a block (restaged once per
 *   call), B a block of the panel as it lies (Q4_0's nibbles unpacked once per panel), C
 *   16 tokens x 16 rows of exact sums, so each token's 16 outputs leave in one store;
 *   two token tiles meet two panels per step. Q8_0 and Q4_0 with enough tokens take the
 *   rows kernel's AMX form instead (kernels_q8_amx.c), fed from the panels (rows_form).
 * Q4_K runs the same two shapes per sub-block (its codes need no offset), with the
 * sub-block scales applied to the exact sums in the integer; Q5_K takes Q4_K's VNNI shape
 * for every token count, and Q6_K the VNNI shape too, its 16-value scale groups too
 * narrow for a 32-deep tile (their own sections below). */
#include <math.h>
#include <string.h>

#include "core/amx.h"
#include "core/cpu.h"
#include "core/dtype.h"
#include "core/kernels.h"
#include "core/panel.h"
#include "core/quant_impl.h"

#define QK MESHLM_QK
#define QK_K MESHLM_QK_K
#define PR MESHLM_PANEL_ROWS
#define MAX_PANEL_IN (32 * 1024) /* the longest row packed */

static bool q8_type(int type) { return type == MESHLM_TYPE_Q8_0; }

/* How a Q8_0, Q4_0 or MXFP4 panel block is read: its scales' bytes per row and its codes. */
typedef enum kind { K_Q4 = 0, K_Q8 = 1, K_MX = 2 } kind;

static kind kind_of(int type) { return type == MESHLM_TYPE_Q8_0 ? K_Q8 : type == MESHLM_TYPE_MXFP4 ? K_MX : K_Q4; }

/* Bytes of one row's scale: an fp16, or MXFP4's exponent byte. */
static int scale_bytes(kind k) { return k == K_MX ? 1 : 2; }

/* Where the parts of a Q4_K, a Q5_K and a Q6_K panel super-block lie (core/panel.h): Q5_K
 * is Q4_K with its qh at K_CODES and its codes Q5_QS - K_CODES further on; Q6_K's scales
 * are in its head, its qh in its codes. */
enum { K_DMIN = 2 * PR, K_SCALES = 4 * PR, K_CODES = 16 * PR, K_PAIR = 32 * PR };
enum { Q5_QS = 48 * PR };
enum { Q6_SCALES = 2 * PR, Q6_QH = 128 * PR };

static bool k_type(int type) {
    return type == MESHLM_TYPE_Q4_K || type == MESHLM_TYPE_Q5_K || type == MESHLM_TYPE_Q6_K;
}

bool meshlm_panel_worth(int type, int64_t n_out, int64_t n_in) {
    return (type == MESHLM_TYPE_Q8_0 || type == MESHLM_TYPE_Q4_0 || type == MESHLM_TYPE_MXFP4 || k_type(type)) &&
           n_out > 0 && n_out % PR == 0 &&
           n_in > 0 && n_in <= MAX_PANEL_IN && meshlm_cpu_path_get() == MESHLM_CPU_AVX2 &&
           (meshlm_cpu_avx512_get() || meshlm_panel_avx2_has(type));
}

/* n bytes between a row's super-block and its place in the panel's, either way. */
static void move(uint8_t *blk, uint8_t *row, size_t n, bool to_panel) {
    if (to_panel)
        memcpy(blk, row, n);
    else
        memcpy(row, blk, n);
}

/* Row r's super-block b and its parts in panel super-block blk, the matrix's i-th, moved one
 * way or the other: the one description of the K-quant layouts, for packing and for the
 * plain form. */
static void k_layout(int type, uint8_t *blk, int64_t i, uint8_t *b, int r, bool to_panel) {
    if (type != MESHLM_TYPE_Q6_K) {
        /* Q5_K's qh lies as one more pair of sub-blocks' codes would, before the codes */
        const bool five = type == MESHLM_TYPE_Q5_K;
        const int qs = five ? Q5_QS : K_CODES, row_qs = five ? 16 + QK_K / 8 : 16;
        move(blk + 2 * r, b, 2, to_panel);
        move(blk + K_DMIN + 2 * r, b + 2, 2, to_panel);
        for (int i = 0; i < 12; i++) move(blk + K_SCALES + PR * i + r, b + 4 + i, 1, to_panel);
        for (int g = 0; g < 8 && five; g++) move(blk + K_CODES + 4 * (PR * g + r), b + 16 + 4 * g, 4, to_panel);
        for (int jp = 0; jp < 4; jp++)
            for (int g = 0; g < 8; g++)
                move(blk + qs + K_PAIR * jp + 4 * (PR * g + r), b + row_qs + 32 * jp + 4 * g, 4, to_panel);
        return;
    }
    uint8_t *head = blk + meshlm_q6k_panel_head(i), *codes = blk + meshlm_q6k_panel_codes(i);
    move(head + 2 * r, b + QK_K / 2 + QK_K / 4 + QK_K / 16, 2, to_panel);
    for (int g = 0; g < 16; g++) move(head + Q6_SCALES + PR * g + r, b + QK_K / 2 + QK_K / 4 + g, 1, to_panel);
    for (int h = 0; h < 2; h++) {
        for (int g = 0; g < 16; g++) move(codes + 64 * PR * h + 4 * (PR * g + r), b + 64 * h + 4 * g, 4, to_panel);
        for (int g = 0; g < 8; g++)
            move(codes + Q6_QH + 32 * PR * h + 4 * (PR * g + r), b + QK_K / 2 + 32 * h + 4 * g, 4, to_panel);
    }
}

static void pack_k(int type, const uint8_t *src, size_t row_stride, int64_t n_out, int64_t n_in, uint8_t *out) {
    const size_t bb = meshlm_type_block_bytes(type);
    const int64_t nsb = n_in / QK_K;
    for (int64_t p = 0; p < n_out / PR; p++)
        for (int64_t k = 0; k < nsb; k++, out += PR * bb)
            for (int r = 0; r < PR; r++)
                k_layout(type, out, p * nsb + k, (uint8_t *)src + (size_t)(PR * p + r) * row_stride + (size_t)k * bb, r,
                         true);
}

void meshlm_panel_pack(int type, const void *src, size_t row_stride, int64_t n_out, int64_t n_in, void *dst) {
    if (k_type(type)) {
        pack_k(type, src, row_stride, n_out, n_in, dst);
        return;
    }
    const size_t bb = meshlm_type_block_bytes(type), pb = PR * bb;
    const int groups = q8_type(type) ? 8 : 4, sb = scale_bytes(kind_of(type));
    const int64_t nb = n_in / QK;
    uint8_t *out = dst;
    for (int64_t p = 0; p < n_out / PR; p++)
        for (int64_t k = 0; k < nb; k++, out += pb)
            for (int r = 0; r < PR; r++) {
                const uint8_t *b = (const uint8_t *)src + (size_t)(PR * p + r) * row_stride + (size_t)k * bb;
                memcpy(out + sb * r, b, (size_t)sb);
                for (int g = 0; g < groups; g++) memcpy(out + sb * PR + (size_t)(PR * g + r) * 4, b + sb + 4 * g, 4);
            }
}

/* Row r's scale in a panel block. */
static float scale_at(kind k, const uint8_t *blk, int r) {
    if (k == K_MX) return meshlm_e8m0_to_fp32_half(blk[r]);
    return meshlm_fp16_to_fp32((uint16_t)(blk[2 * r] | (blk[2 * r + 1] << 8)));
}

/* Row r's code of element e in a panel block's codes c. */
static int panel_code(kind k, const uint8_t *c, int r, int e) {
    if (k == K_Q8) return (int8_t)c[(PR * (e / 4) + r) * 4 + e % 4];
    int g = (e % 16) / 4;
    uint8_t v = c[(PR * g + r) * 4 + e % 4], nib = e < 16 ? v & 0xf : v >> 4;
    return k == K_MX ? meshlm_mxfp4_values[nib] : nib - 8;
}

/* The K-quants' plain form: each row rebuilt from its panel, then the row reference. */
static void dot_ref_k(int type, const uint8_t *w, size_t row_bytes, int64_t lo, int64_t hi, const uint8_t *act,
                      size_t act_stride, int64_t n, int64_t n_tok, float *y, int64_t y_stride) {
    const size_t bb = meshlm_type_block_bytes(type);
    uint8_t row[(MAX_PANEL_IN / QK_K) * MESHLM_Q6K_BYTES];
    const int64_t nsb = n / QK_K;
    for (int64_t i = lo; i < hi; i++) {
        uint8_t *panel = (uint8_t *)w + (size_t)(i / PR) * PR * row_bytes;
        for (int64_t k = 0; k < nsb; k++)
            k_layout(type, panel + (size_t)k * PR * bb, i / PR * nsb + k, row + k * bb, (int)(i % PR), false);
        for (int64_t t = 0; t < n_tok; t++) y[i + t * y_stride] = meshlm_qdot_ref(type, row, act + (size_t)t * act_stride, n);
    }
}

void meshlm_panel_dot_ref(int type, const void *w, size_t row_bytes, int64_t lo, int64_t hi, const void *act,
                          size_t act_stride, int64_t n, int64_t n_tok, float *y, int64_t y_stride) {
    if (k_type(type)) {
        dot_ref_k(type, w, row_bytes, lo, hi, act, act_stride, n, n_tok, y, y_stride);
        return;
    }
    const kind kd = kind_of(type);
    const size_t pb = PR * meshlm_type_block_bytes(type);
    for (int64_t row = lo; row < hi; row++) {
        const uint8_t *panel = (const uint8_t *)w + (size_t)(row / PR) * PR * row_bytes;
        const int r = (int)(row % PR);
        for (int64_t t = 0; t < n_tok; t++) {
            const meshlm_act32 *a = (const meshlm_act32 *)((const uint8_t *)act + (size_t)t * act_stride);
            float acc = 0.0f;
            for (int64_t k = 0; k < n / QK; k++) {
                const uint8_t *blk = panel + (size_t)k * pb;
                int sum = 0;
                for (int e = 0; e < QK; e++) sum += panel_code(kd, blk + scale_bytes(kd) * PR, r, e) * a[k].q[e];
                acc = fmaf((float)sum, scale_at(kd, blk, r) * a[k].d, acc);
            }
            y[row + t * y_stride] = acc;
        }
    }
}

#if defined(__x86_64__)
#include <immintrin.h>

#define TARGET __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))
#define INLINE TARGET __attribute__((always_inline)) static inline
#define TV 4           /* tokens per VNNI tile of the K-quants */
#define TQ 8           /* tokens per VNNI tile of Q8_0, Q4_0 and MXFP4 */
#define MAX_BLOCKS 1024 /* rows of up to 32768 values */
#define MAX_TOK 64     /* tokens whose code sums are found at once */
#define AHEAD 8        /* blocks prefetched ahead: panels lie end to end, one stream */
#define K_AHEAD 2      /* the same in K-quant super-blocks */

static _Thread_local int32_t sum_stage[MAX_TOK * MAX_BLOCKS];

/* What vpdpbusd's unsigned weights carry over their codes: Q8_0's flipped top bit, Q4_0's
 * unsigned nibbles, MXFP4's table shifted by 12. */
static int32_t offset_of(kind k) { return k == K_Q8 ? 128 : k == K_MX ? 12 : 8; }

/* The sums of each block's 32 codes of activation row a, times scale: (q + 128) summed by
 * vpsadbw, less 32 * 128. */
INLINE void code_sums(const meshlm_act32 *a, int64_t nb, int32_t scale, int32_t *out) {
    const __m256i top = _mm256_set1_epi8((char)0x80), zero = _mm256_setzero_si256();
    for (int64_t k = 0; k < nb; k++) {
        __m256i s = _mm256_sad_epu8(_mm256_xor_si256(_mm256_loadu_si256((const __m256i *)a[k].q), top), zero);
        __m128i h = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
        out[k] = scale * ((int32_t)(_mm_cvtsi128_si64(h) + _mm_extract_epi64(h, 1)) - 32 * 128);
    }
}

/* Part i of n of the super-block of bytes at p asked for: a K-quant tile spreads its
 * prefetches over its steps, since a burst of all of a super-block's lines stalls on the
 * line fill buffers. */
INLINE void fetch_part(const uint8_t *p, size_t bytes, int i, int n) {
    const uintptr_t end = (uintptr_t)p + bytes * (size_t)(i + 1) / (size_t)n;
    for (uintptr_t l = ((uintptr_t)p + bytes * (size_t)i / (size_t)n) & ~(uintptr_t)63; l < end; l += 64)
        _mm_prefetch((const char *)l, _MM_HINT_T0);
}

/* MXFP4's code values plus 12, in every 128-bit lane, for a byte shuffle. */
INLINE __m512i mx_lut(void) {
    int8_t t[16];
    for (int i = 0; i < 16; i++) t[i] = (int8_t)(meshlm_mxfp4_values[i] + 12);
    return _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)t));
}

/* The 16 rows' MXFP4 scales, 2^(e - 128) from their exponent bytes at b: exponent field e - 1,
 * or for e < 2 the denormals 2^-128 and 2^-127 (as meshlm_e8m0_to_fp32_half). */
INLINE __m512 e8m0_half16(const uint8_t *b) {
    const __m512i e = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)b));
    const __m512i normal = _mm512_slli_epi32(_mm512_sub_epi32(e, _mm512_set1_epi32(1)), 23);
    const __m512i denormal = _mm512_sllv_epi32(_mm512_set1_epi32(0x00200000), e);
    return _mm512_castsi512_ps(_mm512_mask_blend_epi32(_mm512_cmpge_epu32_mask(e, _mm512_set1_epi32(2)), denormal, normal));
}

/* vpdpbusd with its accumulator a tied operand. In the Q6_K tile with several tokens, whose
 * sixteen chains fill the registers, gcc 12 copied the intrinsic's accumulator around each
 * use and spilled: this form measured 11% faster there, and 6% slower for one token. */
INLINE __m512i dpbusd_tied(__m512i s, __m512i w, __m512i a) {
#if defined(__clang__)
    return _mm512_dpbusd_epi32(s, w, a);
#else
    __asm__("vpdpbusd %2, %1, %0" : "+v"(s) : "v"(w), "v"(a));
    return s;
#endif
}

/* Four activation codes at q, in every lane. */
INLINE __m512i act_group4(const int8_t *q) {
    int32_t v;
    memcpy(&v, q, sizeof v);
    return _mm512_set1_epi32(v);
}

/* One panel (blocks pb bytes apart from p0) against nt <= TQ tokens; the lanes of mask go
 * to y + t * ys (the panel's first row of token t). sums holds each token's block offset
 * terms, -offset * (code sum), nb apart. Each 64-byte load of codes (unpacked once) meets
 * every token of the tile, so the unpacking and the prefetches are shared by up to TQ
 * tokens; with few tokens each keeps two chains of vpdpbusd, so their latency is hidden. */
INLINE void vnni_tile(kind kd, const uint8_t *p0, size_t pb, const uint8_t *act, size_t as, int64_t nb, int nt,
                      const int32_t *sums, float *y, int64_t ys, __mmask16 mask, bool fetch) {
    const bool q8 = kd == K_Q8, mx = kd == K_MX, two = nt < 4;
    const __m512i top = _mm512_set1_epi8((char)0x80), low = _mm512_set1_epi8(0x0f);
    const __m512i lut = mx ? mx_lut() : _mm512_setzero_si512();
    const meshlm_act32 *a[TQ];
    __m512 acc[TQ];
    for (int j = 0; j < nt; j++) a[j] = (const meshlm_act32 *)(act + j * as), acc[j] = _mm512_setzero_ps();
    for (int64_t k = 0; k < nb; k++) {
        const uint8_t *blk = p0 + (size_t)k * pb, *c = blk + (mx ? PR : 2 * PR);
        /* Measured: 20-40% more from DRAM than the hardware prefetcher alone. Only the
         * first tile of tokens streams the panel from memory; the others find it cached. */
        if (fetch)
            for (size_t l = 0; l < pb; l += 64) _mm_prefetch((const char *)blk + AHEAD * pb + l, _MM_HINT_T0);
        const __m512 dw = mx ? e8m0_half16(blk) : _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)blk));
        __m512i s[TQ], e[TQ];
        for (int j = 0; j < nt; j++) s[j] = _mm512_set1_epi32(sums[j * nb + k]), e[j] = _mm512_setzero_si512();
        if (q8) {
            for (int g = 0; g < 8; g += 2) {
                __m512i w0 = _mm512_xor_si512(_mm512_loadu_si512(c + 64 * g), top);
                __m512i w1 = _mm512_xor_si512(_mm512_loadu_si512(c + 64 * (g + 1)), top);
                for (int j = 0; j < nt; j++) {
                    s[j] = _mm512_dpbusd_epi32(s[j], w0, act_group4(a[j][k].q + 4 * g));
                    if (two)
                        e[j] = _mm512_dpbusd_epi32(e[j], w1, act_group4(a[j][k].q + 4 * (g + 1)));
                    else
                        s[j] = _mm512_dpbusd_epi32(s[j], w1, act_group4(a[j][k].q + 4 * (g + 1)));
                }
            }
        } else {
            for (int g = 0; g < 4; g++) {
                __m512i v = _mm512_loadu_si512(c + 64 * g);
                __m512i lo = _mm512_and_si512(v, low), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), low);
                if (mx) lo = _mm512_shuffle_epi8(lut, lo), hi = _mm512_shuffle_epi8(lut, hi);
                for (int j = 0; j < nt; j++) {
                    s[j] = _mm512_dpbusd_epi32(s[j], lo, act_group4(a[j][k].q + 4 * g));
                    if (two)
                        e[j] = _mm512_dpbusd_epi32(e[j], hi, act_group4(a[j][k].q + 4 * (g + 4)));
                    else
                        s[j] = _mm512_dpbusd_epi32(s[j], hi, act_group4(a[j][k].q + 4 * (g + 4)));
                }
            }
        }
        if (two)
            for (int j = 0; j < nt; j++) s[j] = _mm512_add_epi32(s[j], e[j]);
        for (int j = 0; j < nt; j++)
            acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[j]), _mm512_mul_ps(dw, _mm512_set1_ps(a[j][k].d)), acc[j]);
    }
    for (int j = 0; j < nt; j++) _mm512_mask_storeu_ps(y + j * ys, mask, acc[j]);
}

/* The rows [lo, hi) that panel p holds, as lanes. */
static inline __mmask16 panel_mask(int64_t p, int64_t lo, int64_t hi) {
    uint32_t m = 0xffff;
    if (PR * p < lo) m &= 0xffffu << (lo - PR * p);
    if (PR * (p + 1) > hi) m &= 0xffffu >> (PR * (p + 1) - hi);
    return (__mmask16)m;
}

/* Tokens MAX_TOK at a time, each panel once per group against TQ tokens at a time. */
TARGET static void vnni_dot(int type, const uint8_t *w, size_t rb, int64_t lo, int64_t hi, const uint8_t *act,
                            size_t as, int64_t n, int64_t n_tok, float *y, int64_t ys) {
    const kind kd = kind_of(type);
    const int64_t nb = n / QK;
    const size_t pb = PR * meshlm_type_block_bytes(type);
    for (int64_t t0 = 0; t0 < n_tok; t0 += MAX_TOK) {
        const int64_t nt = n_tok - t0 < MAX_TOK ? n_tok - t0 : MAX_TOK;
        for (int64_t t = 0; t < nt; t++)
            code_sums((const meshlm_act32 *)(act + (size_t)(t0 + t) * as), nb, -offset_of(kd), sum_stage + t * nb);
        for (int64_t p = lo / PR; PR * p < hi; p++) {
            const uint8_t *p0 = w + (size_t)p * PR * rb;
            const __mmask16 mask = panel_mask(p, lo, hi);
            for (int64_t t = 0; t < nt; t += TQ) {
                const uint8_t *at = act + (size_t)(t0 + t) * as;
                const int32_t *s = sum_stage + t * nb;
                float *yt = y + PR * p + (t0 + t) * ys;
                const bool fetch = t == 0;
#define TILE(c) \
    case c: vnni_tile(kd, p0, pb, at, as, nb, c, s, yt, ys, mask, fetch); break
                switch (nt - t < TQ ? nt - t : TQ) {
                    TILE(1); TILE(2); TILE(3); TILE(4); TILE(5); TILE(6); TILE(7);
                    default: vnni_tile(kd, p0, pb, at, as, nb, TQ, s, yt, ys, mask, fetch); break;
                }
#undef TILE
            }
        }
    }
}

/* ---- Q4_K ---- */

/* The 16 rows' scale (or, with mins, min) of sub-block j as int32 lanes, from the 12
 * bytes of scales laid across the rows at s (the 6-bit packing of quant_k.c). */
INLINE __m512i k_scale(const uint8_t *s, int j, bool mins) {
    const int base = mins ? 4 : 0;
    __m128i v;
    if (j < 4) {
        v = _mm_and_si128(_mm_loadu_si128((const __m128i *)(s + PR * (j + base))), _mm_set1_epi8(63));
    } else {
        __m128i lo = _mm_loadu_si128((const __m128i *)(s + PR * (j + 4)));
        lo = _mm_and_si128(mins ? _mm_srli_epi16(lo, 4) : lo, _mm_set1_epi8(0x0f));
        __m128i top = _mm_loadu_si128((const __m128i *)(s + PR * (j - 4 + base)));
        v = _mm_or_si128(lo, _mm_and_si128(_mm_srli_epi16(top, 2), _mm_set1_epi8(0x30)));
    }
    return _mm512_cvtepu8_epi32(v);
}

/* Mins of sub-blocks 2p and 2p + 1 as the two int16 halves of each row's lane. */
INLINE __m512i k_min_pair(const uint8_t *s, int p) {
    return _mm512_or_si512(k_scale(s, 2 * p, true), _mm512_slli_epi32(k_scale(s, 2 * p + 1, true), 16));
}

/* Activation row a's sub-block sums (16-value sums added in pairs, at most 32 * 128 in
 * size) as int16 pairs: out[4k + p] holds super-block k's sub-blocks 2p and 2p + 1. */
static void k_sum_pairs(const meshlm_act256 *a, int64_t nsb, int32_t *out) {
    for (int64_t k = 0; k < nsb; k++)
        for (int p = 0; p < 4; p++) {
            const int16_t *b = a[k].bsum + 4 * p;
            uint32_t lo = (uint16_t)(b[0] + b[1]), hi = (uint16_t)(b[2] + b[3]);
            out[4 * k + p] = (int32_t)(lo | hi << 16);
        }
}

/* One Q4_K panel against nt <= TV tokens. A pair of sub-blocks is one 64-byte load per
 * group of four elements (low nibbles sub-block 2jp, high ones 2jp + 1); each sub-block's
 * 16 row sums are scaled by their sub-block scales in the integer, and the mins meet the
 * token's sub-block sums in four vpdpwssd. */
INLINE void vnni_tile_k(const uint8_t *p0, const uint8_t *act, size_t as, int64_t nsb, int nt, const int32_t *pairs,
                        float *y, int64_t ys, __mmask16 mask, bool fetch) {
    const size_t pb = PR * MESHLM_Q4K_BYTES;
    const __m512i low = _mm512_set1_epi8(0x0f);
    const meshlm_act256 *a[TV];
    __m512 acc[TV], accm[TV];
    for (int j = 0; j < nt; j++) a[j] = (const meshlm_act256 *)(act + j * as), acc[j] = accm[j] = _mm512_setzero_ps();
    for (int64_t k = 0; k < nsb; k++) {
        const uint8_t *blk = p0 + (size_t)k * pb, *sc = blk + K_SCALES, *c = blk + K_CODES;
        __m512i isum[TV], msum[TV];
        for (int j = 0; j < nt; j++) isum[j] = msum[j] = _mm512_setzero_si512();
        for (int jp = 0; jp < 4; jp++) {
            if (fetch) fetch_part(blk + K_AHEAD * pb, pb, jp, 4);
            __m512i x[TV], z[TV];
            for (int j = 0; j < nt; j++) x[j] = z[j] = _mm512_setzero_si512();
            for (int g = 0; g < 8; g++) {
                __m512i v = _mm512_loadu_si512(c + K_PAIR * jp + 64 * g);
                __m512i lo = _mm512_and_si512(v, low), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), low);
                for (int j = 0; j < nt; j++) {
                    x[j] = _mm512_dpbusd_epi32(x[j], lo, act_group4(a[j][k].q + 64 * jp + 4 * g));
                    z[j] = _mm512_dpbusd_epi32(z[j], hi, act_group4(a[j][k].q + 64 * jp + 32 + 4 * g));
                }
            }
            const __m512i s0 = k_scale(sc, 2 * jp, false), s1 = k_scale(sc, 2 * jp + 1, false);
            for (int j = 0; j < nt; j++)
                isum[j] = _mm512_add_epi32(isum[j], _mm512_add_epi32(_mm512_mullo_epi32(x[j], s0), _mm512_mullo_epi32(z[j], s1)));
        }
        for (int p = 0; p < 4; p++) {
            const __m512i m = k_min_pair(sc, p);
            for (int j = 0; j < nt; j++) msum[j] = _mm512_dpwssd_epi32(msum[j], m, _mm512_set1_epi32(pairs[j * 4 * nsb + 4 * k + p]));
        }
        const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)blk));
        const __m512 dm = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(blk + K_DMIN)));
        for (int j = 0; j < nt; j++) {
            const __m512 da = _mm512_set1_ps(a[j][k].d);
            acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[j]), _mm512_mul_ps(dw, da), acc[j]);
            accm[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(msum[j]), _mm512_mul_ps(dm, da), accm[j]);
        }
    }
    for (int j = 0; j < nt; j++) _mm512_mask_storeu_ps(y + j * ys, mask, _mm512_sub_ps(acc[j], accm[j]));
}

/* Q4_K's form of vnni_dot: the tokens' sub-block sum pairs staged where the code sums go. */
TARGET static void vnni_dot_k(const uint8_t *w, size_t rb, int64_t lo, int64_t hi, const uint8_t *act, size_t as,
                              int64_t n, int64_t n_tok, float *y, int64_t ys) {
    const int64_t nsb = n / QK_K;
    for (int64_t t0 = 0; t0 < n_tok; t0 += MAX_TOK) {
        const int64_t nt = n_tok - t0 < MAX_TOK ? n_tok - t0 : MAX_TOK;
        for (int64_t t = 0; t < nt; t++)
            k_sum_pairs((const meshlm_act256 *)(act + (size_t)(t0 + t) * as), nsb, sum_stage + t * 4 * nsb);
        for (int64_t p = lo / PR; PR * p < hi; p++) {
            const uint8_t *p0 = w + (size_t)p * PR * rb;
            const __mmask16 mask = panel_mask(p, lo, hi);
            for (int64_t t = 0; t < nt; t += TV) {
                const uint8_t *at = act + (size_t)(t0 + t) * as;
                const int32_t *s = sum_stage + t * 4 * nsb;
                float *yt = y + PR * p + (t0 + t) * ys;
                const bool fetch = t == 0;
                switch (nt - t < TV ? nt - t : TV) {
                case 1: vnni_tile_k(p0, at, as, nsb, 1, s, yt, ys, mask, fetch); break;
                case 2: vnni_tile_k(p0, at, as, nsb, 2, s, yt, ys, mask, fetch); break;
                case 3: vnni_tile_k(p0, at, as, nsb, 3, s, yt, ys, mask, fetch); break;
                default: vnni_tile_k(p0, at, as, nsb, TV, s, yt, ys, mask, fetch); break;
                }
            }
        }
    }
}

/* ---- Q5_K ----
 * Q4_K's tile with a fifth bit in each code: bit j of qh's byte for element l belongs to
 * element l of sub-block j, so one 64-byte load of qh per group of four elements serves
 * all four pairs of sub-blocks. One token tile (decode) decodes its codes as it goes. More
 * tokens take them decoded once per chunk of the panel into a stage, as bytes 0..31 beside
 * the sub-block scales and min pairs as lanes, which each tile then reads with nothing to
 * decode (decoding as it goes measured half the speed of a 4-token tile). Between chunks
 * each token's two f32 chains wait in q5_acc. */

#define Q5_TV 4   /* tokens per tile */
#define Q5_TOK 64 /* tokens per pass over a panel */
#define Q5_KC 2   /* super-blocks per staged chunk: 10 KiB of stage, read by every tile from L1 */

/* A staged super-block: the codes of pair jp, group g at 1024jp + 128g (sub-block 2jp's
 * 64 bytes, then 2jp + 1's), the eight scales from Q5_SCALES, the four min pairs after. */
enum { Q5_SCALES = QK_K * PR, Q5_MINS = Q5_SCALES + 8 * 64, Q5_STAGED = Q5_MINS + 4 * 64 };

static _Thread_local uint8_t q5_stage[Q5_KC * Q5_STAGED] __attribute__((aligned(64)));
static _Thread_local float q5_acc[Q5_TOK][2][PR] __attribute__((aligned(64)));

/* c with 16 added to the bytes whose bit j in h is set. */
INLINE __m512i add_fifth(__m512i c, __m512i h, int j) {
    return _mm512_mask_add_epi8(c, _mm512_test_epi8_mask(h, _mm512_set1_epi8((char)(1 << j))), c, _mm512_set1_epi8(16));
}

/* Group g of pair jp's codes in panel super-block blk, whole: sub-block 2jp's in lo,
 * 2jp + 1's in hi. */
INLINE void q5_codes(const uint8_t *blk, int jp, int g, __m512i *lo, __m512i *hi) {
    const __m512i low = _mm512_set1_epi8(0x0f), v = _mm512_loadu_si512(blk + Q5_QS + K_PAIR * jp + 64 * g);
    const __m512i h = _mm512_loadu_si512(blk + K_CODES + 64 * g);
    *lo = add_fifth(_mm512_and_si512(v, low), h, 2 * jp);
    *hi = add_fifth(_mm512_and_si512(_mm512_srli_epi16(v, 4), low), h, 2 * jp + 1);
}

/* Super-blocks [k0, k1) of the panel at p0 decoded into the stage. */
TARGET static void q5_stage_chunk(const uint8_t *p0, int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; k++) {
        const uint8_t *blk = p0 + (size_t)k * PR * MESHLM_Q5K_BYTES;
        uint8_t *st = q5_stage + (k - k0) * Q5_STAGED;
        for (int jp = 0; jp < 4; jp++)
            for (int g = 0; g < 8; g++) {
                __m512i lo, hi;
                q5_codes(blk, jp, g, &lo, &hi);
                _mm512_store_si512(st + 1024 * jp + 128 * g, lo);
                _mm512_store_si512(st + 1024 * jp + 128 * g + 64, hi);
            }
        for (int j = 0; j < 8; j++) _mm512_store_si512(st + Q5_SCALES + 64 * j, k_scale(blk + K_SCALES, j, false));
        for (int p = 0; p < 4; p++) _mm512_store_si512(st + Q5_MINS + 64 * p, k_min_pair(blk + K_SCALES, p));
    }
}

/* Super-blocks [k0, k1) of one Q5_K panel against nt <= Q5_TV tokens, from the stage or
 * from the panel, their chains carried in acc; each token's sub-block sum pairs (as
 * k_sum_pairs) 4 * nsb apart at pairs; prefetches `ahead` blocks past each (none for 0). */
INLINE void vnni_tile_q5(bool staged, const uint8_t *p0, int64_t k0, int64_t k1, const uint8_t *act, size_t as,
                         const int32_t *pairs, int64_t nsb, int nt, float (*acc)[2][PR], int64_t ahead) {
    const size_t pb = PR * MESHLM_Q5K_BYTES;
    const meshlm_act256 *a[Q5_TV];
    __m512 ac[Q5_TV], am[Q5_TV];
    for (int j = 0; j < nt; j++) {
        a[j] = (const meshlm_act256 *)(act + j * as);
        ac[j] = _mm512_load_ps(acc[j][0]), am[j] = _mm512_load_ps(acc[j][1]);
    }
    for (int64_t k = k0; k < k1; k++) {
        const uint8_t *blk = p0 + (size_t)k * pb, *st = q5_stage + (k - k0) * Q5_STAGED;
        __m512i isum[Q5_TV], msum[Q5_TV];
        for (int j = 0; j < nt; j++) isum[j] = msum[j] = _mm512_setzero_si512();
        for (int jp = 0; jp < 4; jp++) {
            if (ahead) fetch_part(blk + ahead * pb, pb, jp, 4);
            __m512i x[Q5_TV], z[Q5_TV];
            for (int j = 0; j < nt; j++) x[j] = z[j] = _mm512_setzero_si512();
            for (int g = 0; g < 8; g++) {
                __m512i lo, hi;
                if (staged) {
                    lo = _mm512_load_si512(st + 1024 * jp + 128 * g);
                    hi = _mm512_load_si512(st + 1024 * jp + 128 * g + 64);
                } else {
                    q5_codes(blk, jp, g, &lo, &hi);
                }
                for (int j = 0; j < nt; j++) {
                    x[j] = _mm512_dpbusd_epi32(x[j], lo, act_group4(a[j][k].q + 64 * jp + 4 * g));
                    z[j] = _mm512_dpbusd_epi32(z[j], hi, act_group4(a[j][k].q + 64 * jp + 32 + 4 * g));
                }
            }
            const __m512i s0 =
                staged ? _mm512_load_si512(st + Q5_SCALES + 128 * jp) : k_scale(blk + K_SCALES, 2 * jp, false);
            const __m512i s1 =
                staged ? _mm512_load_si512(st + Q5_SCALES + 128 * jp + 64) : k_scale(blk + K_SCALES, 2 * jp + 1, false);
            for (int j = 0; j < nt; j++) {
                const __m512i xs = _mm512_add_epi32(_mm512_mullo_epi32(x[j], s0), _mm512_mullo_epi32(z[j], s1));
                isum[j] = _mm512_add_epi32(isum[j], xs);
            }
        }
        for (int p = 0; p < 4; p++) {
            const __m512i m = staged ? _mm512_load_si512(st + Q5_MINS + 64 * p) : k_min_pair(blk + K_SCALES, p);
            for (int j = 0; j < nt; j++)
                msum[j] = _mm512_dpwssd_epi32(msum[j], m, _mm512_set1_epi32(pairs[j * 4 * nsb + 4 * k + p]));
        }
        const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)blk));
        const __m512 dm = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(blk + K_DMIN)));
        for (int j = 0; j < nt; j++) {
            const __m512 da = _mm512_set1_ps(a[j][k].d);
            ac[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[j]), _mm512_mul_ps(dw, da), ac[j]);
            am[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(msum[j]), _mm512_mul_ps(dm, da), am[j]);
        }
    }
    for (int j = 0; j < nt; j++) _mm512_store_ps(acc[j][0], ac[j]), _mm512_store_ps(acc[j][1], am[j]);
}

/* Rows [lo, hi) of Q5_K panels against n_tok tokens, Q5_TOK at a time. Staged, a panel
 * goes in chunks of Q5_KC super-blocks, the first tile of a chunk prefetching the next;
 * unstaged (one tile), whole, K_AHEAD blocks ahead. */
TARGET static void vnni_dot_q5(const uint8_t *w, size_t rb, int64_t lo, int64_t hi, const uint8_t *act, size_t as,
                               int64_t n, int64_t n_tok, float *y, int64_t ys) {
    const int64_t nsb = n / QK_K;
    for (int64_t t0 = 0; t0 < n_tok; t0 += Q5_TOK) {
        const int64_t nt = n_tok - t0 < Q5_TOK ? n_tok - t0 : Q5_TOK;
        const bool staged = nt > Q5_TV;
        const int64_t kc = staged ? Q5_KC : nsb;
        for (int64_t t = 0; t < nt; t++)
            k_sum_pairs((const meshlm_act256 *)(act + (size_t)(t0 + t) * as), nsb, sum_stage + t * 4 * nsb);
        for (int64_t p = lo / PR; PR * p < hi; p++) {
            const uint8_t *p0 = w + (size_t)p * PR * rb;
            memset(q5_acc, 0, sizeof q5_acc[0] * (size_t)nt);
            for (int64_t k0 = 0; k0 < nsb; k0 += kc) {
                const int64_t k1 = nsb - k0 < kc ? nsb : k0 + kc;
                if (staged) q5_stage_chunk(p0, k0, k1);
                for (int64_t t = 0; t < nt; t += Q5_TV) {
                    const uint8_t *at = act + (size_t)(t0 + t) * as;
                    const int64_t ahead = !staged ? K_AHEAD : t == 0 ? k1 - k0 : 0;
                    const int32_t *pr = sum_stage + t * 4 * nsb;
                    switch ((nt - t < Q5_TV ? nt - t : Q5_TV) + (staged ? Q5_TV : 0)) {
                    case 1: vnni_tile_q5(false, p0, k0, k1, at, as, pr, nsb, 1, q5_acc + t, ahead); break;
                    case 2: vnni_tile_q5(false, p0, k0, k1, at, as, pr, nsb, 2, q5_acc + t, ahead); break;
                    case 3: vnni_tile_q5(false, p0, k0, k1, at, as, pr, nsb, 3, q5_acc + t, ahead); break;
                    case 4: vnni_tile_q5(false, p0, k0, k1, at, as, pr, nsb, Q5_TV, q5_acc + t, ahead); break;
                    case 5: vnni_tile_q5(true, p0, k0, k1, at, as, pr, nsb, 1, q5_acc + t, ahead); break;
                    case 6: vnni_tile_q5(true, p0, k0, k1, at, as, pr, nsb, 2, q5_acc + t, ahead); break;
                    case 7: vnni_tile_q5(true, p0, k0, k1, at, as, pr, nsb, 3, q5_acc + t, ahead); break;
                    default: vnni_tile_q5(true, p0, k0, k1, at, as, pr, nsb, Q5_TV, q5_acc + t, ahead); break;
                    }
                }
            }
            const __mmask16 mask = panel_mask(p, lo, hi);
            for (int64_t t = 0; t < nt; t++)
                _mm512_mask_storeu_ps(y + PR * p + (t0 + t) * ys, mask,
                                      _mm512_sub_ps(_mm512_load_ps(q5_acc[t][0]), _mm512_load_ps(q5_acc[t][1])));
        }
    }
}

/* ---- Q6_K ----
 * Four element groups of one 64-byte load each make a group of the four quarters of a
 * 128-value half: ql's bytes 4g (low nibbles quarter 0, high ones quarter 2) and 4g + 32
 * (quarters 1 and 3) and qh's bytes 4g (two bits per quarter). Each 16-value scale group
 * sums exactly and is scaled in the integer, less 32 times the scale against the token's
 * sum of those 16 codes: the reference's one sum per super-block.
 * With more tokens than one tile, each chunk of Q6_KC super-blocks of a panel is decoded
 * once into a stage (its codes as whole bytes, its scales as int32 lanes and as int16
 * pairs), which every tile of Q6_TOK tokens then reads from L1; the offsets come off two
 * groups a vpdpwssd. One tile unpacks as it goes and takes the offset group by group,
 * which measured faster for a single token. */

#define Q6_TOK 64 /* tokens per pass over a panel */
#define Q6_KC 2   /* super-blocks per staged chunk: 11 KiB of stage */
enum { Q6_ST_SCALES = 64 * 64, Q6_ST_PAIRS = Q6_ST_SCALES + 16 * 64, Q6_STAGED = Q6_ST_PAIRS + 8 * 64 };

static _Thread_local uint8_t q6_stage[Q6_KC * Q6_STAGED] __attribute__((aligned(64)));
static _Thread_local float q6_acc[Q6_TOK][PR] __attribute__((aligned(64)));

/* The 16 rows' signed scale of group g, as int32 lanes. */
INLINE __m512i q6_scale(const uint8_t *head, int g) {
    return _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(head + Q6_SCALES + PR * g)));
}

/* The 16 rows' scales of groups 2i and 2i + 1 as the two int16 halves of each row's lane. */
INLINE __m512i q6_scale_pair(const uint8_t *head, int i) {
    const __m512i lo = q6_scale(head, 2 * i), hi = _mm512_slli_epi32(q6_scale(head, 2 * i + 1), 16);
    return _mm512_mask_blend_epi16((__mmask32)0xaaaaaaaa, lo, hi);
}

/* The four quarters' 6-bit codes of element group g of half h, from a super-block's codes. */
INLINE void q6_unpack(const uint8_t *codes, int h, int g, __m512i v[4]) {
    const __m512i low = _mm512_set1_epi8(0x0f), two = _mm512_set1_epi8(0x30);
    const __m512i l0 = _mm512_loadu_si512(codes + 64 * PR * h + 64 * g);
    const __m512i l1 = _mm512_loadu_si512(codes + 64 * PR * h + 64 * (g + 8));
    const __m512i hb = _mm512_loadu_si512(codes + Q6_QH + 32 * PR * h + 64 * g);
    v[0] = _mm512_or_si512(_mm512_and_si512(l0, low), _mm512_and_si512(_mm512_slli_epi16(hb, 4), two));
    v[1] = _mm512_or_si512(_mm512_and_si512(l1, low), _mm512_and_si512(_mm512_slli_epi16(hb, 2), two));
    v[2] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l0, 4), low), _mm512_and_si512(hb, two));
    v[3] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l1, 4), low),
                           _mm512_and_si512(_mm512_srli_epi16(hb, 2), two));
}

/* Super-blocks [k0, k1) of the panel at p0, whose first is the matrix's i0-th, decoded into
 * the stage: the codes in the order a tile reads them, then the scales, then their pairs. */
TARGET static void q6_stage_chunk(const uint8_t *p0, int64_t i0, int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; k++) {
        const uint8_t *blk = p0 + (size_t)k * PR * MESHLM_Q6K_BYTES;
        const uint8_t *head = blk + meshlm_q6k_panel_head(i0 + k), *codes = blk + meshlm_q6k_panel_codes(i0 + k);
        uint8_t *st = q6_stage + (k - k0) * Q6_STAGED;
        for (int h = 0; h < 2; h++)
            for (int g = 0; g < 8; g++) {
                __m512i v[4];
                q6_unpack(codes, h, g, v);
                for (int q = 0; q < 4; q++) _mm512_store_si512(st + 64 * (4 * (8 * h + g) + q), v[q]);
            }
        for (int g = 0; g < 16; g++) _mm512_store_si512(st + Q6_ST_SCALES + 64 * g, q6_scale(head, g));
        for (int i = 0; i < 8; i++) _mm512_store_si512(st + Q6_ST_PAIRS + 64 * i, q6_scale_pair(head, i));
    }
}

/* Super-blocks [k0, k1) of one Q6_K panel (the matrix's i0-th super-block first) against
 * nt <= TV tokens, from the stage or from the panel, their chains carried in acc. Staged,
 * it prefetches `ahead` super-blocks past each (none for 0); unstaged, K_AHEAD, a constant
 * (a variable distance there measured 6% slower streaming). For each half and each half of
 * its 32 element positions, four scale groups (one per quarter) gather their sums. */
INLINE void vnni_tile_q6(bool staged, const uint8_t *p0, int64_t i0, int64_t k0, int64_t k1, const uint8_t *act,
                         size_t as, int nt, float (*acc)[PR], int64_t ahead) {
    const size_t pb = PR * MESHLM_Q6K_BYTES;
    const meshlm_act256 *a[TV];
    __m512 ac[TV];
    for (int j = 0; j < nt; j++) a[j] = (const meshlm_act256 *)(act + j * as), ac[j] = _mm512_load_ps(acc[j]);
    for (int64_t k = k0; k < k1; k++) {
        const uint8_t *blk = p0 + (size_t)k * pb, *st = q6_stage + (k - k0) * Q6_STAGED;
        const uint8_t *head = blk + meshlm_q6k_panel_head(i0 + k), *codes = blk + meshlm_q6k_panel_codes(i0 + k);
        __m512i isum[TV];
        for (int j = 0; j < nt; j++) isum[j] = _mm512_setzero_si512();
        for (int h = 0; h < 2; h++)
            for (int half = 0; half < 2; half++) {
                if (!staged || ahead) fetch_part(blk + (staged ? ahead : K_AHEAD) * pb, pb, 2 * h + half, 4);
                __m512i x[TV][4];
                for (int j = 0; j < nt; j++)
                    for (int q = 0; q < 4; q++) x[j][q] = _mm512_setzero_si512();
                for (int g = 4 * half; g < 4 * half + 4; g++) {
                    __m512i v[4];
                    if (staged)
                        for (int q = 0; q < 4; q++) v[q] = _mm512_load_si512(st + 64 * (4 * (8 * h + g) + q));
                    else
                        q6_unpack(codes, h, g, v);
                    for (int j = 0; j < nt; j++)
                        for (int q = 0; q < 4; q++) {
                            const __m512i c = act_group4(a[j][k].q + 128 * h + 32 * q + 4 * g);
                            x[j][q] = nt > 1 ? dpbusd_tied(x[j][q], v[q], c) : _mm512_dpbusd_epi32(x[j][q], v[q], c);
                        }
                }
                for (int q = 0; q < 4; q++) {
                    const int grp = 8 * h + 2 * q + half;
                    const __m512i sc = staged ? _mm512_load_si512(st + Q6_ST_SCALES + 64 * grp) : q6_scale(head, grp);
                    for (int j = 0; j < nt; j++) {
                        __m512i xq = x[j][q];
                        if (!staged) xq = _mm512_sub_epi32(xq, _mm512_set1_epi32(32 * a[j][k].bsum[grp]));
                        isum[j] = _mm512_add_epi32(isum[j], _mm512_mullo_epi32(xq, sc));
                    }
                }
            }
        if (staged) {
            __m512i osum[TV];
            for (int j = 0; j < nt; j++) osum[j] = _mm512_setzero_si512();
            for (int i = 0; i < 8; i++) {
                const __m512i sp = _mm512_load_si512(st + Q6_ST_PAIRS + 64 * i);
                for (int j = 0; j < nt; j++) {
                    int32_t b;
                    memcpy(&b, a[j][k].bsum + 2 * i, sizeof b);
                    osum[j] = _mm512_dpwssd_epi32(osum[j], sp, _mm512_set1_epi32(b));
                }
            }
            for (int j = 0; j < nt; j++) isum[j] = _mm512_sub_epi32(isum[j], _mm512_slli_epi32(osum[j], 5));
        }
        const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)head));
        for (int j = 0; j < nt; j++)
            ac[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[j]), _mm512_mul_ps(dw, _mm512_set1_ps(a[j][k].d)), ac[j]);
    }
    for (int j = 0; j < nt; j++) _mm512_store_ps(acc[j], ac[j]);
}

/* Rows [lo, hi) of Q6_K panels against n_tok tokens, Q6_TOK at a time. Staged, a panel
 * goes in chunks of Q6_KC super-blocks, the first tile of a chunk prefetching the next;
 * unstaged (one tile), whole, K_AHEAD super-blocks ahead. */
TARGET static void vnni_dot_q6(const uint8_t *w, size_t rb, int64_t lo, int64_t hi, const uint8_t *act, size_t as,
                               int64_t n, int64_t n_tok, float *y, int64_t ys) {
    const int64_t nsb = n / QK_K;
    for (int64_t t0 = 0; t0 < n_tok; t0 += Q6_TOK) {
        const int64_t nt = n_tok - t0 < Q6_TOK ? n_tok - t0 : Q6_TOK;
        const bool staged = nt > TV;
        const int64_t kc = staged ? Q6_KC : nsb;
        for (int64_t p = lo / PR; PR * p < hi; p++) {
            const uint8_t *p0 = w + (size_t)p * PR * rb;
            const int64_t i0 = p * nsb;
            memset(q6_acc, 0, sizeof q6_acc[0] * (size_t)nt);
            for (int64_t k0 = 0; k0 < nsb; k0 += kc) {
                const int64_t k1 = nsb - k0 < kc ? nsb : k0 + kc;
                if (staged) q6_stage_chunk(p0, i0, k0, k1);
                for (int64_t t = 0; t < nt; t += TV) {
                    const uint8_t *at = act + (size_t)(t0 + t) * as;
                    const int64_t ahead = staged && t == 0 ? k1 - k0 : 0;
                    switch ((nt - t < TV ? nt - t : TV) + (staged ? TV : 0)) {
                    case 1: vnni_tile_q6(false, p0, i0, k0, k1, at, as, 1, q6_acc + t, ahead); break;
                    case 2: vnni_tile_q6(false, p0, i0, k0, k1, at, as, 2, q6_acc + t, ahead); break;
                    case 3: vnni_tile_q6(false, p0, i0, k0, k1, at, as, 3, q6_acc + t, ahead); break;
                    case 4: vnni_tile_q6(false, p0, i0, k0, k1, at, as, TV, q6_acc + t, ahead); break;
                    case 5: vnni_tile_q6(true, p0, i0, k0, k1, at, as, 1, q6_acc + t, ahead); break;
                    case 6: vnni_tile_q6(true, p0, i0, k0, k1, at, as, 2, q6_acc + t, ahead); break;
                    case 7: vnni_tile_q6(true, p0, i0, k0, k1, at, as, 3, q6_acc + t, ahead); break;
                    default: vnni_tile_q6(true, p0, i0, k0, k1, at, as, TV, q6_acc + t, ahead); break;
                    }
                }
            }
            const __mmask16 mask = panel_mask(p, lo, hi);
            for (int64_t t = 0; t < nt; t++)
                _mm512_mask_storeu_ps(y + PR * p + (t0 + t) * ys, mask, _mm512_load_ps(q6_acc[t]));
        }
    }
}

#include "core/kernels_q8_panel_amx.h"

/* The AMX forms for Q8_0 and Q4_0, the same bits either way. The 2x2 form keeps two
 * panels' accumulators for every staged token tile in memory and streams the tiles past
 * each pair of panels; the rows kernel's form keeps each 16 rows' codes for a chunk of
 * the row in L1 and its accumulators in registers (rows past 4096 values in ranges, see
 * kernels_q8_amx.c), but restages every panel (Q8_0's 2x2 form reads its panels as they
 * lie, Q4_0's unpacks them too). Both forms side by side in one process, 1024-row calls:
 * the rows form won by 1.1-1.9x from 2048 to 28672 values, Q8_0 from 128 tokens and Q4_0
 * from 32, and lost by 0.75-0.93x with fewer tokens. */
static bool rows_form(bool q8, int64_t n_tok) { return n_tok >= (q8 ? 128 : 32); }

#endif

void meshlm_panel_dot(int type, const void *w, size_t row_bytes, int64_t lo, int64_t hi, const void *act,
                      size_t act_stride, int64_t n, int64_t n_tok, float *y, int64_t y_stride) {
#if defined(__x86_64__)
    if (meshlm_cpu_path_get() == MESHLM_CPU_AVX2 && meshlm_cpu_avx512_get() && n / QK <= MAX_BLOCKS) {
        const bool amx = n_tok > 1 && meshlm_cpu_amx_get();
        if (type == MESHLM_TYPE_Q5_K)
            vnni_dot_q5(w, row_bytes, lo, hi, act, act_stride, n, n_tok, y, y_stride);
        else if (type == MESHLM_TYPE_Q6_K)
            vnni_dot_q6(w, row_bytes, lo, hi, act, act_stride, n, n_tok, y, y_stride);
        else if (type == MESHLM_TYPE_Q4_K && amx)
            amx_dot_k(w, row_bytes, lo, hi, act, act_stride, n, n_tok, y, y_stride);
        else if (type == MESHLM_TYPE_Q4_K)
            vnni_dot_k(w, row_bytes, lo, hi, act, act_stride, n, n_tok, y, y_stride);
        else if (amx && type != MESHLM_TYPE_MXFP4) {
            /* the rows form declines ranges that split a panel */
            if (!rows_form(q8_type(type), n_tok) ||
                !meshlm_panel_dot_amx_rows(type, w, row_bytes, lo, hi, act, act_stride, n, n_tok, y, y_stride))
                amx_dot(type, w, row_bytes, lo, hi, act, act_stride, n, n_tok, y, y_stride);
        } else
            vnni_dot(type, w, row_bytes, lo, hi, act, act_stride, n, n_tok, y, y_stride);
        return;
    }
    if (meshlm_cpu_path_get() == MESHLM_CPU_AVX2 &&
        meshlm_panel_dot_avx2(type, w, row_bytes, lo, hi, act, act_stride, n, n_tok, y, y_stride))
        return;
#endif
    meshlm_panel_dot_ref(type, w, row_bytes, lo, hi, act, act_stride, n, n_tok, y, y_stride);
}
