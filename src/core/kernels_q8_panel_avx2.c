/* The panel kernels of core/panel.h in AVX2 (with FMA and F16C), for CPUs without AVX-512:
 * bit for bit meshlm_panel_dot_ref, that is one exact int32 per row, token and block (a
 * K-quant's super-block, its sub-block scales applied in the integer), then
 * acc = fma(sum, d_w * d_a, acc) block after block.
 *
 * The register tile. A ymm holds one int32 lane per row of half a panel: the 32 bytes of a
 * panel group that belong to rows 8h .. 8h + 7 are 4 codes of each, and a broadcast group
 * of 4 activation codes meets them in one vpmaddubsw, whose int16 pairs add up over the
 * groups of a block (or of a sub-block) before one vpmaddwd makes them the rows' int32
 * sums (times a sub-block scale where there is one). One token (decode) takes both halves
 * of a panel per block, so each 64-byte line is used whole as it streams past; several
 * (prefill) take half a panel against 4 tokens, so each weight vector, decoded once, meets
 * 4 tokens, and the tile's int16 sums, int32 sums and the decoded vector fit the 16 ymm
 * (the float chains, touched once a block, may live in memory). Both halves against 2
 * tokens measured no faster.
 *
 * No saturation. vpmaddubsw multiplies unsigned bytes by signed ones and adds each pair
 * into an int16, saturating; the activation codes are any int8, so the unsigned side is
 * kept small: at most 15 (Q4_0's nibbles, Q4_K's codes, the nibbles of Q8_0's w + 128), a
 * pair at most 2 * 15 * 128 = 3840 in size and eight pairs add up exactly in an int16;
 * MXFP4's values plus 12, at most 24, four pairs; Q6_K's 6-bit codes, at most 63, two.
 * Q8_0 sums its two nibbles apart (w + 128 = 16 hi + lo, each against the same codes):
 * the row kernels' sign trick, |w| against a with w's sign, turns a = -128 into -128
 * again. The offsets come off in the int32: 128, 8 or 12 times the block's activation
 * code sum (staged per token), Q6_K's 32 times its scales against the activation's
 * 16-value sums, and Q4_K's mins meet those sums in their own chain. */
#include <string.h>

#include "core/dtype.h"
#include "core/panel.h"
#include "core/quant_impl.h"

#define QK MESHLM_QK
#define QK_K MESHLM_QK_K
#define PR MESHLM_PANEL_ROWS

#if defined(__x86_64__)
#include <immintrin.h>

#define TARGET __attribute__((target("avx2,fma,f16c")))
#define INLINE TARGET __attribute__((always_inline)) static inline
#define HR (PR / 2)      /* rows of half a panel: the int32 lanes of a ymm */
#define TT 4             /* tokens per prefill tile */
#define MAX_TOK 64       /* tokens whose code sums are staged at once */
#define MAX_BLOCKS 1024  /* rows of up to 32768 values */
#define AHEAD 8          /* blocks prefetched ahead: panels lie end to end, one stream */
#define K_AHEAD 3        /* the same in super-blocks */

/* How a Q8_0, Q4_0 or MXFP4 panel block is read. */
typedef enum kind { K_Q4, K_Q8, K_MX } kind;

/* Where the parts of a Q4_K and a Q6_K panel super-block lie (core/panel.h). */
enum { K_DMIN = 2 * PR, K_SCALES = 4 * PR, K_CODES = 16 * PR, K_PAIR = 32 * PR };
enum { Q6_SCALES = 2 * PR, Q6_QH = 128 * PR };

static _Thread_local int16_t sum_stage[MAX_TOK * MAX_BLOCKS];

/* ---- shared steps ---- */

/* Four activation codes at q, in every int32 lane. */
INLINE __m256i act4(const int8_t *q) {
    int32_t v;
    memcpy(&v, q, sizeof v);
    return _mm256_set1_epi32(v);
}

/* a + b in int16 (in int32 with wide) lanes, the sum opaque to the compiler: a tile's
 * chains of adds stay chains, where the compiler would rebalance them into trees whose
 * temporaries do not fit the registers. */
INLINE __m256i add_chain(__m256i a, __m256i b, bool wide) {
    __m256i r = wide ? _mm256_add_epi32(a, b) : _mm256_add_epi16(a, b);
    __asm__("" : "+x"(r));
    return r;
}

/* acc plus the int16 pair sums of u (unsigned) times a (signed), exact within the bounds
 * of the header comment. */
INLINE __m256i mac16(__m256i acc, __m256i u, __m256i a) { return add_chain(acc, _mm256_maddubs_epi16(u, a), false); }

/* The lines of one panel block (bytes long at p) asked for ahead of their use. */
INLINE void fetch(const uint8_t *p, size_t bytes) {
    for (size_t l = 0; l < bytes; l += 64) _mm_prefetch((const char *)p + l, _MM_HINT_T0);
}

/* Part i of n of a super-block of bytes at p asked for: a K-quant tile spreads its
 * super-block's prefetches over its steps, as a burst of them all stalls on the line
 * fill buffers. */
INLINE void fetch_part(const uint8_t *p, size_t bytes, int i, int n) {
    const uintptr_t end = (uintptr_t)p + bytes * (size_t)(i + 1) / (size_t)n;
    for (uintptr_t l = ((uintptr_t)p + bytes * (size_t)i / (size_t)n) & ~(uintptr_t)63; l < end; l += 64)
        _mm_prefetch((const char *)l, _MM_HINT_T0);
}

/* out[h * nt + t], the dots of half h0 + h's rows with token t, to yp + t * ys (yp the
 * panel's first row), those of panel rows [r0, r1) only. */
INLINE void put(const __m256 *out, int h0, int nh, int nt, float *yp, int64_t ys, int64_t r0, int64_t r1) {
    for (int h = 0; h < nh; h++) {
        const int64_t base = HR * (h0 + h);
        for (int t = 0; t < nt; t++) {
            float *d = yp + t * ys + base;
            if (r0 <= base && base + HR <= r1) {
                _mm256_storeu_ps(d, out[h * nt + t]);
                continue;
            }
            float o[HR];
            _mm256_storeu_ps(o, out[h * nt + t]);
            for (int i = 0; i < HR; i++)
                if (base + i >= r0 && base + i < r1) d[i] = o[i];
        }
    }
}

/* ---- Q8_0, Q4_0, MXFP4 ---- */

/* Each block's activation code sum of token row a (at most 32 * 128 in size), by vpsadbw
 * on q + 128. */
TARGET static void code_sums(const meshlm_act32 *a, int64_t nb, int16_t *out) {
    const __m256i top = _mm256_set1_epi8((char)0x80), zero = _mm256_setzero_si256();
    for (int64_t k = 0; k < nb; k++) {
        __m256i s = _mm256_sad_epu8(_mm256_xor_si256(_mm256_loadu_si256((const __m256i *)a[k].q), top), zero);
        __m128i h = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
        out[k] = (int16_t)(_mm_cvtsi128_si64(h) + _mm_extract_epi64(h, 1) - 32 * 128);
    }
}

/* Half h's 8 row scales of a block: fp16, or MXFP4's exponent bytes as 2^(e - 128), whose
 * float has exponent field e - 1, or for e < 2 the denormal 0x200000 << e (as
 * meshlm_e8m0_to_fp32_half). */
INLINE __m256 scales8(kind kd, const uint8_t *blk, int h) {
    if (kd != K_MX) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(blk + 2 * HR * h)));
    const __m256i e = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(blk + HR * h)));
    const __m256i normal = _mm256_slli_epi32(_mm256_sub_epi32(e, _mm256_set1_epi32(1)), 23);
    const __m256i denormal = _mm256_sllv_epi32(_mm256_set1_epi32(0x00200000), e);
    return _mm256_castsi256_ps(_mm256_blendv_epi8(normal, denormal, _mm256_cmpgt_epi32(_mm256_set1_epi32(2), e)));
}

/* Q8_0: s[h][t], the rows' exact sums of (w + 128) * a over block k, from the codes c of
 * the tile's first half (halves 32 bytes apart, groups 64). */
INLINE void sums_q8(const uint8_t *c, int nh, const meshlm_act32 *const *a, int64_t k, int nt, __m256i s[2][TT]) {
    const __m256i m4 = _mm256_set1_epi8(0x0f), top = _mm256_set1_epi8((char)0x80);
    __m256i lo[2][TT], hi[2][TT];
    for (int h = 0; h < nh; h++)
        for (int t = 0; t < nt; t++) lo[h][t] = hi[h][t] = _mm256_setzero_si256();
    for (int g = 0; g < 8; g++)
        for (int h = 0; h < nh; h++) {
            const __m256i u = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(c + 64 * g + 32 * h)), top);
            const __m256i ul = _mm256_and_si256(u, m4), uh = _mm256_and_si256(_mm256_srli_epi16(u, 4), m4);
            for (int t = 0; t < nt; t++) {
                const __m256i q = act4(a[t][k].q + 4 * g);
                lo[h][t] = mac16(lo[h][t], ul, q);
                hi[h][t] = mac16(hi[h][t], uh, q);
            }
        }
    for (int h = 0; h < nh; h++)
        for (int t = 0; t < nt; t++)
            s[h][t] = _mm256_add_epi32(_mm256_madd_epi16(lo[h][t], _mm256_set1_epi16(1)),
                                       _mm256_madd_epi16(hi[h][t], _mm256_set1_epi16(16)));
}

/* Q4_0 and MXFP4: the same for their nibbles (low ones elements 0..15, high ones 16..31),
 * MXFP4's looked up in lut as value + 12; Q4_0's 8 products a row per group share one
 * int16 sum. */
INLINE void sums_q4(bool mx, __m256i lut, const uint8_t *c, int nh, const meshlm_act32 *const *a, int64_t k, int nt,
                    __m256i s[2][TT]) {
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    __m256i lo[2][TT], hi[2][TT];
    for (int h = 0; h < nh; h++)
        for (int t = 0; t < nt; t++) lo[h][t] = hi[h][t] = _mm256_setzero_si256();
    for (int g = 0; g < 4; g++)
        for (int h = 0; h < nh; h++) {
            const __m256i v = _mm256_loadu_si256((const __m256i *)(c + 64 * g + 32 * h));
            __m256i nl = _mm256_and_si256(v, m4), nh4 = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
            if (mx) nl = _mm256_shuffle_epi8(lut, nl), nh4 = _mm256_shuffle_epi8(lut, nh4);
            for (int t = 0; t < nt; t++) {
                lo[h][t] = mac16(lo[h][t], nl, act4(a[t][k].q + 4 * g));
                if (mx)
                    hi[h][t] = mac16(hi[h][t], nh4, act4(a[t][k].q + 16 + 4 * g));
                else
                    lo[h][t] = mac16(lo[h][t], nh4, act4(a[t][k].q + 16 + 4 * g));
            }
        }
    const __m256i ones = _mm256_set1_epi16(1);
    for (int h = 0; h < nh; h++)
        for (int t = 0; t < nt; t++) {
            s[h][t] = _mm256_madd_epi16(lo[h][t], ones);
            if (mx) s[h][t] = _mm256_add_epi32(s[h][t], _mm256_madd_epi16(hi[h][t], ones));
        }
}

/* Halves h0 .. h0 + nh - 1 of one panel (blocks pb bytes apart from p0) against nt tokens
 * (as bytes apart from act, their code sums at sums[t * nb + k]): out[h * nt + t]. With pf
 * the blocks AHEAD on are asked for. */
INLINE void tile32(kind kd, const uint8_t *p0, size_t pb, int64_t nb, int h0, int nh, const uint8_t *act, size_t as,
                   int nt, const int16_t *sums, bool pf, __m256 *out) {
    const int off = kd == K_Q8 ? 128 : kd == K_MX ? 12 : 8;
    const int codes = (kd == K_MX ? PR : 2 * PR) + 32 * h0;
    int8_t t12[16];
    for (int i = 0; i < 16; i++) t12[i] = (int8_t)(meshlm_mxfp4_values[i] + 12);
    const __m256i lut = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)t12));
    const meshlm_act32 *a[TT];
    __m256 acc[2][TT];
    for (int t = 0; t < nt; t++) a[t] = (const meshlm_act32 *)(act + t * as);
    for (int h = 0; h < nh; h++)
        for (int t = 0; t < nt; t++) acc[h][t] = _mm256_setzero_ps();
    for (int64_t k = 0; k < nb; k++) {
        const uint8_t *blk = p0 + (size_t)k * pb;
        if (pf) fetch(blk + AHEAD * pb, pb);
        __m256i s[2][TT];
        if (kd == K_Q8)
            sums_q8(blk + codes, nh, a, k, nt, s);
        else
            sums_q4(kd == K_MX, lut, blk + codes, nh, a, k, nt, s);
        for (int h = 0; h < nh; h++) {
            const __m256 dw = scales8(kd, blk, h0 + h);
            for (int t = 0; t < nt; t++) {
                const __m256i v = _mm256_sub_epi32(s[h][t], _mm256_set1_epi32(off * sums[t * nb + k]));
                acc[h][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(v), _mm256_mul_ps(dw, _mm256_set1_ps(a[t][k].d)), acc[h][t]);
            }
        }
    }
    for (int h = 0; h < nh; h++)
        for (int t = 0; t < nt; t++) out[h * nt + t] = acc[h][t];
}

/* Rows [lo, hi) of a Q8_0, Q4_0 or MXFP4 panel matrix against n_tok tokens: MAX_TOK tokens'
 * code sums staged at a time, then each panel against them, both halves for one token,
 * else half by half against TT tokens at a time. */
INLINE void dot32(kind kd, const uint8_t *w, size_t rb, int64_t lo, int64_t hi, const uint8_t *act, size_t as,
                  int64_t n, int64_t n_tok, float *y, int64_t ys) {
    const int64_t nb = n / QK;
    const size_t pb = PR * (kd == K_Q8 ? MESHLM_Q8_0_BYTES : kd == K_MX ? MESHLM_MXFP4_BYTES : MESHLM_Q4_0_BYTES);
    for (int64_t t0 = 0; t0 < n_tok; t0 += MAX_TOK) {
        const int nt = n_tok - t0 < MAX_TOK ? (int)(n_tok - t0) : MAX_TOK;
        const uint8_t *at = act + (size_t)t0 * as;
        for (int t = 0; t < nt; t++) code_sums((const meshlm_act32 *)(at + (size_t)t * as), nb, sum_stage + t * nb);
        for (int64_t p = lo / PR; PR * p < hi; p++) {
            const uint8_t *p0 = w + (size_t)p * PR * rb;
            const int64_t r0 = lo > PR * p ? lo - PR * p : 0, r1 = hi - PR * p < PR ? hi - PR * p : PR;
            float *yp = y + PR * p + t0 * ys;
            __m256 out[2 * TT];
            if (nt == 1) {
                tile32(kd, p0, pb, nb, 0, 2, at, as, 1, sum_stage, true, out);
                put(out, 0, 2, 1, yp, ys, r0, r1);
                continue;
            }
            for (int h = (int)(r0 / HR); HR * h < r1; h++)
                for (int t = 0; t < nt; t += TT) {
                    const uint8_t *a = at + (size_t)t * as;
                    const int16_t *s = sum_stage + t * nb;
                    const bool pf = HR * h <= r0 && t == 0;
                    const int m = nt - t < TT ? nt - t : TT;
                    switch (m) {
                    case 1: tile32(kd, p0, pb, nb, h, 1, a, as, 1, s, pf, out); break;
                    case 2: tile32(kd, p0, pb, nb, h, 1, a, as, 2, s, pf, out); break;
                    case 3: tile32(kd, p0, pb, nb, h, 1, a, as, 3, s, pf, out); break;
                    default: tile32(kd, p0, pb, nb, h, 1, a, as, TT, s, pf, out); break;
                    }
                    put(out, h, 1, m, yp + t * ys, ys, r0, r1);
                }
        }
    }
}

TARGET static void dot_q8_0(const uint8_t *w, size_t rb, int64_t lo, int64_t hi, const uint8_t *act, size_t as,
                            int64_t n, int64_t n_tok, float *y, int64_t ys) {
    dot32(K_Q8, w, rb, lo, hi, act, as, n, n_tok, y, ys);
}

TARGET static void dot_q4_0(const uint8_t *w, size_t rb, int64_t lo, int64_t hi, const uint8_t *act, size_t as,
                            int64_t n, int64_t n_tok, float *y, int64_t ys) {
    dot32(K_Q4, w, rb, lo, hi, act, as, n, n_tok, y, ys);
}

TARGET static void dot_mxfp4(const uint8_t *w, size_t rb, int64_t lo, int64_t hi, const uint8_t *act, size_t as,
                             int64_t n, int64_t n_tok, float *y, int64_t ys) {
    dot32(K_MX, w, rb, lo, hi, act, as, n, n_tok, y, ys);
}

/* ---- Q4_K ---- */

/* Half h's 8 rows' 6-bit value of sub-block j (a scale, or with mins a min), from the 12
 * bytes of scales laid across the rows at s (the packing of quant_k.c), as int16 pairs
 * (v, v), one per int32 lane: the factor vpmaddwd applies to both int16 sums of a row. */
INLINE __m256i k_factor(const uint8_t *s, int j, bool mins, int h) {
    const int base = mins ? 4 : 0;
    s += HR * h;
    __m128i v;
    if (j < 4) {
        v = _mm_and_si128(_mm_loadl_epi64((const __m128i *)(s + PR * (j + base))), _mm_set1_epi8(63));
    } else {
        __m128i lo = _mm_loadl_epi64((const __m128i *)(s + PR * (j + 4)));
        lo = _mm_and_si128(mins ? _mm_srli_epi16(lo, 4) : lo, _mm_set1_epi8(0x0f));
        const __m128i top = _mm_loadl_epi64((const __m128i *)(s + PR * (j - 4 + base)));
        v = _mm_or_si128(lo, _mm_and_si128(_mm_srli_epi16(top, 2), _mm_set1_epi8(0x30)));
    }
    return _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(v, v));
}

/* Sub-blocks 2jp and 2jp + 1 of a Q4_K panel super-block (blk; codes c of the tile's first
 * half): their codes, the low and the high nibbles of pair jp, summed over the 8 groups in
 * int16, then times the sub-block scales into isum. A small tile takes both nibbles of a
 * load at once; a large one takes them one after the other, which halves its int16 sums. */
INLINE void k_pair(const uint8_t *blk, const uint8_t *c, int jp, int h0, int nh, const meshlm_act256 *const *a,
                   int64_t k, int nt, __m256i isum[2][TT]) {
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const bool both = nh * nt <= 2;
    for (int odd = 0; odd < 2; odd += both ? 2 : 1) {
        __m256i x[2][TT], z[2][TT];
        for (int h = 0; h < nh; h++)
            for (int t = 0; t < nt; t++) x[h][t] = z[h][t] = _mm256_setzero_si256();
        for (int g = 0; g < 8; g++)
            for (int h = 0; h < nh; h++) {
                const __m256i v = _mm256_loadu_si256((const __m256i *)(c + K_PAIR * jp + 64 * g + 32 * h));
                const __m256i lo = _mm256_and_si256(odd ? _mm256_srli_epi16(v, 4) : v, m4);
                const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
                for (int t = 0; t < nt; t++) {
                    const int8_t *q = a[t][k].q + 64 * jp + 32 * odd + 4 * g;
                    x[h][t] = mac16(x[h][t], lo, act4(q));
                    if (both) z[h][t] = mac16(z[h][t], hi, act4(q + 32));
                }
            }
        for (int h = 0; h < nh; h++) {
            const __m256i f = k_factor(blk + K_SCALES, 2 * jp + odd, false, h0 + h);
            const __m256i f1 = k_factor(blk + K_SCALES, 2 * jp + 1, false, h0 + h);
            for (int t = 0; t < nt; t++) {
                isum[h][t] = _mm256_add_epi32(isum[h][t], _mm256_madd_epi16(x[h][t], f));
                if (both) isum[h][t] = _mm256_add_epi32(isum[h][t], _mm256_madd_epi16(z[h][t], f1));
            }
        }
    }
}

/* Halves h0 .. h0 + nh - 1 of one Q4_K panel against nt tokens: out[h * nt + t]. The mins
 * meet the token's 16-value sums in their own chain, a vpmaddwd of (m, m) against
 * (bsum[2j], bsum[2j + 1]) per sub-block. */
INLINE void tile_k(const uint8_t *p0, int64_t nsb, int h0, int nh, const uint8_t *act, size_t as, int nt, bool pf,
                   __m256 *out) {
    const size_t pb = PR * MESHLM_Q4K_BYTES;
    const meshlm_act256 *a[TT];
    __m256 acc[2][TT], accm[2][TT];
    for (int t = 0; t < nt; t++) a[t] = (const meshlm_act256 *)(act + t * as);
    for (int h = 0; h < nh; h++)
        for (int t = 0; t < nt; t++) acc[h][t] = accm[h][t] = _mm256_setzero_ps();
    for (int64_t k = 0; k < nsb; k++) {
        const uint8_t *blk = p0 + (size_t)k * pb, *c = blk + K_CODES + 32 * h0;
        __m256i isum[2][TT], msum[2][TT];
        for (int h = 0; h < nh; h++)
            for (int t = 0; t < nt; t++) isum[h][t] = msum[h][t] = _mm256_setzero_si256();
        for (int jp = 0; jp < 4; jp++) {
            if (pf) fetch_part(blk + K_AHEAD * pb, pb, jp, 4);
            k_pair(blk, c, jp, h0, nh, a, k, nt, isum);
        }
        for (int j = 0; j < 8; j++)
            for (int h = 0; h < nh; h++) {
                const __m256i f = k_factor(blk + K_SCALES, j, true, h0 + h);
                for (int t = 0; t < nt; t++) {
                    int32_t b;
                    memcpy(&b, a[t][k].bsum + 2 * j, sizeof b);
                    msum[h][t] = _mm256_add_epi32(msum[h][t], _mm256_madd_epi16(f, _mm256_set1_epi32(b)));
                }
            }
        for (int h = 0; h < nh; h++) {
            const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(blk + 2 * HR * (h0 + h))));
            const __m256 dm = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(blk + K_DMIN + 2 * HR * (h0 + h))));
            for (int t = 0; t < nt; t++) {
                const __m256 da = _mm256_set1_ps(a[t][k].d);
                acc[h][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[h][t]), _mm256_mul_ps(dw, da), acc[h][t]);
                accm[h][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(msum[h][t]), _mm256_mul_ps(dm, da), accm[h][t]);
            }
        }
    }
    for (int h = 0; h < nh; h++)
        for (int t = 0; t < nt; t++) out[h * nt + t] = _mm256_sub_ps(acc[h][t], accm[h][t]);
}

/* ---- Q6_K ----
 * A 128-value half hh of a super-block is four quarters of 32; group g (0..7) of quarter q
 * is ql's bytes 4g (q even) or 4g + 32 (q odd), low nibbles for q < 2 and high ones after,
 * under qh's bytes 4g, two bits per quarter. Its scale group is 8hh + 2q + g / 4. */

/* Half h's unsigned 6-bit codes of group g of quarter q of half hh, from a super-block's codes. */
INLINE __m256i q6_codes(const uint8_t *codes, int hh, int q, int g, int h) {
    const __m256i l = _mm256_loadu_si256((const __m256i *)(codes + 64 * PR * hh + 64 * (g + 8 * (q & 1)) + 32 * h));
    const __m256i b = _mm256_loadu_si256((const __m256i *)(codes + Q6_QH + 32 * PR * hh + 64 * g + 32 * h));
    const __m256i lo = _mm256_and_si256(q < 2 ? l : _mm256_srli_epi16(l, 4), _mm256_set1_epi8(0x0f));
    const __m256i top = q == 0 ? _mm256_slli_epi16(b, 4) : q == 1 ? _mm256_slli_epi16(b, 2) : q == 2 ? b : _mm256_srli_epi16(b, 2);
    return _mm256_or_si256(lo, _mm256_and_si256(top, _mm256_set1_epi8(0x30)));
}

/* Half h's 8 rows' signed scales of groups g0 and g1 as int16 pairs (s_g0, s_g1), from a
 * super-block's head. */
INLINE __m256i q6_scales(const uint8_t *head, int g0, int g1, int h) {
    const __m128i s0 = _mm_loadl_epi64((const __m128i *)(head + Q6_SCALES + PR * g0 + HR * h));
    const __m128i s1 = _mm_loadl_epi64((const __m128i *)(head + Q6_SCALES + PR * g1 + HR * h));
    return _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(s0, s1));
}

/* Groups g and g + 1 of quarter q of half hh of a Q6_K panel super-block: their int16 sums
 * (at most 2 * 16128) times their scale into isum. */
INLINE void q6_groups(const uint8_t *head, const uint8_t *codes, int hh, int q, int g, int h0, int nh,
                      const meshlm_act256 *const *a, int64_t k, int nt, __m256i isum[2][TT]) {
    const int grp = 8 * hh + 2 * q + g / 4;
    for (int h = 0; h < nh; h++) {
        const __m256i v0 = q6_codes(codes, hh, q, g, h0 + h), v1 = q6_codes(codes, hh, q, g + 1, h0 + h);
        const __m256i f = q6_scales(head, grp, grp, h0 + h);
        for (int t = 0; t < nt; t++) {
            const int8_t *aq = a[t][k].q + 128 * hh + 32 * q + 4 * g;
            const __m256i x = mac16(_mm256_maddubs_epi16(v0, act4(aq)), v1, act4(aq + 4));
            isum[h][t] = _mm256_add_epi32(isum[h][t], _mm256_madd_epi16(x, f));
        }
    }
}

/* Halves h0 .. h0 + nh - 1 of one Q6_K panel, whose first super-block is the matrix's
 * i0-th, against nt tokens: out[h * nt + t]. The offset 32 comes off as 32 times the scales
 * against the token's 16-value sums, two groups a vpmaddwd. */
INLINE void tile_q6(const uint8_t *p0, int64_t i0, int64_t nsb, int h0, int nh, const uint8_t *act, size_t as, int nt,
                    bool pf, __m256 *out) {
    const size_t pb = PR * MESHLM_Q6K_BYTES;
    const meshlm_act256 *a[TT];
    __m256 acc[2][TT];
    for (int t = 0; t < nt; t++) a[t] = (const meshlm_act256 *)(act + t * as);
    for (int h = 0; h < nh; h++)
        for (int t = 0; t < nt; t++) acc[h][t] = _mm256_setzero_ps();
    for (int64_t k = 0; k < nsb; k++) {
        const uint8_t *blk = p0 + (size_t)k * pb, *head = blk + meshlm_q6k_panel_head(i0 + k);
        const uint8_t *codes = blk + meshlm_q6k_panel_codes(i0 + k);
        __m256i isum[2][TT], osum[2][TT];
        for (int h = 0; h < nh; h++)
            for (int t = 0; t < nt; t++) isum[h][t] = osum[h][t] = _mm256_setzero_si256();
        for (int hh = 0; hh < 2; hh++)
            for (int g = 0; g < 8; g += 2) {
                if (pf) fetch_part(blk + K_AHEAD * pb, pb, 4 * hh + g / 2, 8);
                q6_groups(head, codes, hh, 0, g, h0, nh, a, k, nt, isum);
                q6_groups(head, codes, hh, 1, g, h0, nh, a, k, nt, isum);
                q6_groups(head, codes, hh, 2, g, h0, nh, a, k, nt, isum);
                q6_groups(head, codes, hh, 3, g, h0, nh, a, k, nt, isum);
            }
        for (int i = 0; i < 8; i++)
            for (int h = 0; h < nh; h++) {
                const __m256i f = q6_scales(head, 2 * i, 2 * i + 1, h0 + h);
                for (int t = 0; t < nt; t++) {
                    int32_t b;
                    memcpy(&b, a[t][k].bsum + 2 * i, sizeof b);
                    osum[h][t] = _mm256_add_epi32(osum[h][t], _mm256_madd_epi16(f, _mm256_set1_epi32(b)));
                }
            }
        for (int h = 0; h < nh; h++) {
            const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(head + 2 * HR * (h0 + h))));
            for (int t = 0; t < nt; t++) {
                const __m256i v = _mm256_sub_epi32(isum[h][t], _mm256_slli_epi32(osum[h][t], 5));
                acc[h][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(v), _mm256_mul_ps(dw, _mm256_set1_ps(a[t][k].d)), acc[h][t]);
            }
        }
    }
    for (int h = 0; h < nh; h++)
        for (int t = 0; t < nt; t++) out[h * nt + t] = acc[h][t];
}

/* tile_q6 or tile_k (i0 is tile_q6's). */
INLINE void tile_kq(bool q6, const uint8_t *p0, int64_t i0, int64_t nsb, int h0, int nh, const uint8_t *act, size_t as,
                    int nt, bool pf, __m256 *out) {
    if (q6)
        tile_q6(p0, i0, nsb, h0, nh, act, as, nt, pf, out);
    else
        tile_k(p0, nsb, h0, nh, act, as, nt, pf, out);
}

/* Rows [lo, hi) of a Q4_K (q6 false) or Q6_K panel matrix against n_tok tokens: both
 * halves of each panel for one token, else half by half against TT tokens at a time. */
INLINE void dot_k(bool q6, const uint8_t *w, size_t rb, int64_t lo, int64_t hi, const uint8_t *act, size_t as,
                  int64_t n, int64_t n_tok, float *y, int64_t ys) {
    const int64_t nsb = n / QK_K;
    for (int64_t p = lo / PR; PR * p < hi; p++) {
        const uint8_t *p0 = w + (size_t)p * PR * rb;
        const int64_t r0 = lo > PR * p ? lo - PR * p : 0, r1 = hi - PR * p < PR ? hi - PR * p : PR;
        float *yp = y + PR * p;
        __m256 out[2 * TT];
        if (n_tok == 1) {
            tile_kq(q6, p0, p * nsb, nsb, 0, 2, act, as, 1, true, out);
            put(out, 0, 2, 1, yp, ys, r0, r1);
            continue;
        }
        for (int h = (int)(r0 / HR); HR * h < r1; h++)
            for (int64_t t = 0; t < n_tok; t += TT) {
                const uint8_t *at = act + (size_t)t * as;
                const bool pf = HR * h <= r0 && t == 0;
                const int m = n_tok - t < TT ? (int)(n_tok - t) : TT;
                switch (m) {
                case 1: tile_kq(q6, p0, p * nsb, nsb, h, 1, at, as, 1, pf, out); break;
                case 2: tile_kq(q6, p0, p * nsb, nsb, h, 1, at, as, 2, pf, out); break;
                case 3: tile_kq(q6, p0, p * nsb, nsb, h, 1, at, as, 3, pf, out); break;
                default: tile_kq(q6, p0, p * nsb, nsb, h, 1, at, as, TT, pf, out); break;
                }
                put(out, h, 1, m, yp + t * ys, ys, r0, r1);
            }
    }
}

TARGET static void dot_q4_k(const uint8_t *w, size_t rb, int64_t lo, int64_t hi, const uint8_t *act, size_t as,
                            int64_t n, int64_t n_tok, float *y, int64_t ys) {
    dot_k(false, w, rb, lo, hi, act, as, n, n_tok, y, ys);
}

TARGET static void dot_q6_k(const uint8_t *w, size_t rb, int64_t lo, int64_t hi, const uint8_t *act, size_t as,
                            int64_t n, int64_t n_tok, float *y, int64_t ys) {
    dot_k(true, w, rb, lo, hi, act, as, n, n_tok, y, ys);
}

#endif

bool meshlm_panel_avx2_has(int type) {
#if defined(__x86_64__)
    return type == MESHLM_TYPE_Q8_0 || type == MESHLM_TYPE_Q4_0 || type == MESHLM_TYPE_MXFP4 ||
           type == MESHLM_TYPE_Q4_K || type == MESHLM_TYPE_Q6_K;
#else
    (void)type;
    return false;
#endif
}

bool meshlm_panel_dot_avx2(int type, const void *w, size_t row_bytes, int64_t lo, int64_t hi, const void *act,
                           size_t act_stride, int64_t n, int64_t n_tok, float *y, int64_t y_stride) {
#if defined(__x86_64__)
    if (!meshlm_panel_avx2_has(type) || n / QK > MAX_BLOCKS) return false;
    if (lo >= hi || n_tok < 1) return true;
    switch (type) {
    case MESHLM_TYPE_Q8_0: dot_q8_0(w, row_bytes, lo, hi, act, act_stride, n, n_tok, y, y_stride); break;
    case MESHLM_TYPE_Q4_0: dot_q4_0(w, row_bytes, lo, hi, act, act_stride, n, n_tok, y, y_stride); break;
    case MESHLM_TYPE_MXFP4: dot_mxfp4(w, row_bytes, lo, hi, act, act_stride, n, n_tok, y, y_stride); break;
    case MESHLM_TYPE_Q4_K: dot_q4_k(w, row_bytes, lo, hi, act, act_stride, n, n_tok, y, y_stride); break;
    default: dot_q6_k(w, row_bytes, lo, hi, act, act_stride, n, n_tok, y, y_stride); break;
    }
    return true;
#else
    (void)type, (void)w, (void)row_bytes, (void)lo, (void)hi, (void)act, (void)act_stride, (void)n, (void)n_tok;
    (void)y, (void)y_stride;
    return false;
#endif
}
