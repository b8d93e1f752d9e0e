/* Reference codecs for the float types and ggml's 32-element block formats, plus the
 * per-type dispatch. Block layouts are GGUF's, byte for byte: every multi-byte field is
 * little-endian and read through memcpy, so blocks need no alignment. */
#include "core/quant.h"

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "core/bfp.h"
#include "core/cpu.h"
#include "core/dtype.h"
#include "core/kernels.h"
#include "core/quant_impl.h"

#define QK MESHLM_QK

static float load_half(const uint8_t *p) {
    uint16_t h = (uint16_t)(p[0] | (p[1] << 8));
    return meshlm_fp16_to_fp32(h);
}

static void store_u16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)(v & 0xff);
    p[1] = (uint8_t)(v >> 8);
}

static uint32_t load_u32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static void store_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* Saturating at the largest finite half: beyond it the block cannot be represented
 * anyway, and a finite scale keeps the damage inside the block. */
uint16_t meshlm_scale_to_fp16(float d) {
    const float half_max = 65504.0f;
    if (d > half_max) d = half_max;
    if (d < -half_max) d = -half_max;
    return meshlm_fp32_to_fp16(d);
}

int meshlm_round_clamp(float v, int lo, int hi) {
    if (!(v >= (float)lo)) return lo;
    if (v >= (float)hi) return hi;
    return (int)lroundf(v);
}

/* ---- F32, F16, BF16 ---- */

static void dequant_f32(const void *src, float *dst, int64_t n) {
    memcpy(dst, src, (size_t)n * sizeof(float));
}

static void quant_f32(const float *src, void *dst, int64_t n) {
    memcpy(dst, src, (size_t)n * sizeof(float));
}

static void dequant_f16(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i++) dst[i] = load_half(p + 2 * i);
}

static void quant_f16(const float *src, void *dst, int64_t n) {
    uint8_t *p = dst;
    for (int64_t i = 0; i < n; i++) store_u16(p + 2 * i, meshlm_fp32_to_fp16(src[i]));
}

static void dequant_bf16(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i++)
        dst[i] = meshlm_bf16_to_fp32((uint16_t)(p[2 * i] | (p[2 * i + 1] << 8)));
}

static void quant_bf16(const float *src, void *dst, int64_t n) {
    uint8_t *p = dst;
    for (int64_t i = 0; i < n; i++) store_u16(p + 2 * i, meshlm_fp32_to_bf16(src[i]));
}

/* ---- 32-element blocks ----
 * Element j < 16 sits in the low nibble of qs[j], element j + 16 in its high nibble; the
 * 5-bit formats keep element j's fifth bit as bit j of the little-endian word qh. */

static void dequant_q4_0(const void *src, float *dst, int64_t n) {
    const uint8_t *b = src;
    for (int64_t i = 0; i < n; i += QK, b += MESHLM_Q4_0_BYTES, dst += QK) {
        float d = load_half(b);
        const uint8_t *qs = b + 2;
        for (int j = 0; j < QK / 2; j++) {
            dst[j] = (float)((qs[j] & 0xf) - 8) * d;
            dst[j + QK / 2] = (float)((qs[j] >> 4) - 8) * d;
        }
    }
}

static void dequant_q4_1(const void *src, float *dst, int64_t n) {
    const uint8_t *b = src;
    for (int64_t i = 0; i < n; i += QK, b += MESHLM_Q4_1_BYTES, dst += QK) {
        float d = load_half(b), m = load_half(b + 2);
        const uint8_t *qs = b + 4;
        for (int j = 0; j < QK / 2; j++) {
            dst[j] = (float)(qs[j] & 0xf) * d + m;
            dst[j + QK / 2] = (float)(qs[j] >> 4) * d + m;
        }
    }
}

static void dequant_q5_0(const void *src, float *dst, int64_t n) {
    const uint8_t *b = src;
    for (int64_t i = 0; i < n; i += QK, b += MESHLM_Q5_0_BYTES, dst += QK) {
        float d = load_half(b);
        uint32_t qh = load_u32(b + 2);
        const uint8_t *qs = b + 6;
        for (int j = 0; j < QK / 2; j++) {
            int lo = (qs[j] & 0xf) | (int)(((qh >> j) & 1) << 4);
            int hi = (qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
            dst[j] = (float)(lo - 16) * d;
            dst[j + QK / 2] = (float)(hi - 16) * d;
        }
    }
}

static void dequant_q5_1(const void *src, float *dst, int64_t n) {
    const uint8_t *b = src;
    for (int64_t i = 0; i < n; i += QK, b += MESHLM_Q5_1_BYTES, dst += QK) {
        float d = load_half(b), m = load_half(b + 2);
        uint32_t qh = load_u32(b + 4);
        const uint8_t *qs = b + 8;
        for (int j = 0; j < QK / 2; j++) {
            int lo = (qs[j] & 0xf) | (int)(((qh >> j) & 1) << 4);
            int hi = (qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
            dst[j] = (float)lo * d + m;
            dst[j + QK / 2] = (float)hi * d + m;
        }
    }
}

static void dequant_q8_0(const void *src, float *dst, int64_t n) {
    const uint8_t *b = src;
    for (int64_t i = 0; i < n; i += QK, b += MESHLM_Q8_0_BYTES, dst += QK) {
        float d = load_half(b);
        for (int j = 0; j < QK; j++) dst[j] = (float)(int8_t)b[2 + j] * d;
    }
}

/* The value of largest magnitude, with its sign: the symmetric formats map it to the
 * extra negative level (-8 or -16), which gains one level of resolution. */
static float signed_absmax(const float *x, int n) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; j++) {
        if (fabsf(x[j]) > amax) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    return max;
}

static void min_max(const float *x, int n, float *lo, float *hi) {
    *lo = FLT_MAX;
    *hi = -FLT_MAX;
    for (int j = 0; j < n; j++) {
        if (x[j] < *lo) *lo = x[j];
        if (x[j] > *hi) *hi = x[j];
    }
}

/* Packs 32 codes of up to 5 bits: low nibbles into qs, fifth bits into qh (if given). */
static void pack_nibbles(const int *q, uint8_t *qs, uint8_t *qh) {
    uint32_t h = 0;
    for (int j = 0; j < QK / 2; j++) {
        qs[j] = (uint8_t)((q[j] & 0xf) | ((q[j + QK / 2] & 0xf) << 4));
        h |= (uint32_t)((q[j] >> 4) & 1) << j;
        h |= (uint32_t)((q[j + QK / 2] >> 4) & 1) << (j + QK / 2);
    }
    if (qh) store_u32(qh, h);
}

/* Symmetric formats (Q4_0, Q5_0): d = max / -half_levels, codes offset by half_levels. */
static void quant_sym(const float *src, uint8_t *dst, int64_t n, int bits, size_t bytes) {
    const int half_levels = 1 << (bits - 1), top = (1 << bits) - 1;
    int q[QK];
    for (int64_t i = 0; i < n; i += QK, src += QK, dst += bytes) {
        float d = signed_absmax(src, QK) / (float)-half_levels;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        store_u16(dst, meshlm_scale_to_fp16(d));
        for (int j = 0; j < QK; j++) q[j] = meshlm_round_clamp(src[j] * id + (float)half_levels, 0, top);
        pack_nibbles(q, dst + bytes - QK / 2, bits == 5 ? dst + 2 : NULL);
    }
}

/* Affine formats (Q4_1, Q5_1): the block's range [min, max] spread over all levels. */
static void quant_affine(const float *src, uint8_t *dst, int64_t n, int bits, size_t bytes) {
    const int top = (1 << bits) - 1;
    int q[QK];
    for (int64_t i = 0; i < n; i += QK, src += QK, dst += bytes) {
        float lo, hi;
        min_max(src, QK, &lo, &hi);
        float d = (hi - lo) / (float)top;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        store_u16(dst, meshlm_scale_to_fp16(d));
        store_u16(dst + 2, meshlm_scale_to_fp16(lo));
        for (int j = 0; j < QK; j++) q[j] = meshlm_round_clamp((src[j] - lo) * id, 0, top);
        pack_nibbles(q, dst + bytes - QK / 2, bits == 5 ? dst + 4 : NULL);
    }
}

static void quant_q4_0(const float *src, void *dst, int64_t n) { quant_sym(src, dst, n, 4, MESHLM_Q4_0_BYTES); }
static void quant_q5_0(const float *src, void *dst, int64_t n) { quant_sym(src, dst, n, 5, MESHLM_Q5_0_BYTES); }
static void quant_q4_1(const float *src, void *dst, int64_t n) { quant_affine(src, dst, n, 4, MESHLM_Q4_1_BYTES); }
static void quant_q5_1(const float *src, void *dst, int64_t n) { quant_affine(src, dst, n, 5, MESHLM_Q5_1_BYTES); }

static void quant_q8_0(const float *src, void *dst, int64_t n) {
    uint8_t *b = dst;
    for (int64_t i = 0; i < n; i += QK, src += QK, b += MESHLM_Q8_0_BYTES) {
        float amax = 0.0f;
        for (int j = 0; j < QK; j++) amax = fmaxf(amax, fabsf(src[j]));
        float d = amax / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        store_u16(b, meshlm_scale_to_fp16(d));
        for (int j = 0; j < QK; j++) b[2 + j] = (uint8_t)(int8_t)meshlm_round_clamp(src[j] * id, -127, 127);
    }
}

/* MXFP4: a block's value j is meshlm_mxfp4_values[code j] * 2^(e - 128), the codes
 * packed like Q4_0's after the exponent byte e. */

const int8_t meshlm_mxfp4_values[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

static void dequant_mxfp4(const void *src, float *dst, int64_t n) {
    const uint8_t *b = src;
    for (int64_t i = 0; i < n; i += QK, b += MESHLM_MXFP4_BYTES, dst += QK) {
        float d = meshlm_e8m0_to_fp32_half(b[0]);
        const uint8_t *qs = b + 1;
        for (int j = 0; j < QK / 2; j++) {
            dst[j] = (float)meshlm_mxfp4_values[qs[j] & 0xf] * d;
            dst[j + QK / 2] = (float)meshlm_mxfp4_values[qs[j] >> 4] * d;
        }
    }
}

/* The code nearest v / d, the first of equals on a tie (so +0 over -0, and the smaller
 * magnitude between two levels); a NaN gets code 0. */
static int mxfp4_code(float v, float d) {
    int best = 0;
    float best_err = fabsf(v);
    for (int c = 1; c < 16; c++) {
        float err = fabsf((float)meshlm_mxfp4_values[c] * d - v);
        if (err < best_err) best = c, best_err = err;
    }
    return best;
}

/* ggml's reference: the exponent puts the largest magnitude at 4..8 times the E2M1 unit,
 * so values past 6 units clip to 6. floorf(log2f()) rather than frexpf because ggml does,
 * and near a power of two log2f's rounding up picks the scale that holds amax. The clamp
 * keeps tiny blocks (amax < 2^-125) at exponent 0 and an infinite one in range. */
static void quant_mxfp4(const float *src, void *dst, int64_t n) {
    uint8_t *b = dst;
    int q[QK];
    for (int64_t i = 0; i < n; i += QK, src += QK, b += MESHLM_MXFP4_BYTES) {
        float amax = 0.0f;
        for (int j = 0; j < QK; j++)
            if (amax < fabsf(src[j])) amax = fabsf(src[j]);
        float e = amax > 0.0f ? floorf(log2f(amax)) - 2.0f + 127.0f : 0.0f;
        b[0] = (uint8_t)(e < 0.0f ? 0 : e > 254.0f ? 254 : (int)e);
        float d = meshlm_e8m0_to_fp32_half(b[0]);
        for (int j = 0; j < QK; j++) q[j] = mxfp4_code(src[j], d);
        pack_nibbles(q, b + 1, NULL);
    }
}

/* ---- dispatch ---- */

typedef struct codec {
    void (*dequant)(const void *src, float *dst, int64_t n);
    void (*quant)(const float *src, void *dst, int64_t n);
} codec;

static const codec codecs[MESHLM_TYPE_COUNT] = {
    [MESHLM_TYPE_F32] = {dequant_f32, quant_f32},
    [MESHLM_TYPE_F16] = {dequant_f16, quant_f16},
    [MESHLM_TYPE_BF16] = {dequant_bf16, quant_bf16},
    [MESHLM_TYPE_BFP8] = {meshlm_dequantize_row_bfp8, meshlm_quantize_row_bfp8},
    [MESHLM_TYPE_BFP4] = {meshlm_dequantize_row_bfp4, meshlm_quantize_row_bfp4},
    [MESHLM_TYPE_Q4_0] = {dequant_q4_0, quant_q4_0},
    [MESHLM_TYPE_Q4_1] = {dequant_q4_1, quant_q4_1},
    [MESHLM_TYPE_Q5_0] = {dequant_q5_0, quant_q5_0},
    [MESHLM_TYPE_Q5_1] = {dequant_q5_1, quant_q5_1},
    [MESHLM_TYPE_Q8_0] = {dequant_q8_0, quant_q8_0},
    [MESHLM_TYPE_MXFP4] = {dequant_mxfp4, quant_mxfp4},
    [MESHLM_TYPE_Q4_K] = {meshlm_dequantize_row_q4_k, meshlm_quantize_row_q4_k},
    [MESHLM_TYPE_Q5_K] = {meshlm_dequantize_row_q5_k, meshlm_quantize_row_q5_k},
    [MESHLM_TYPE_Q6_K] = {meshlm_dequantize_row_q6_k, meshlm_quantize_row_q6_k},
};

static const codec *codec_of(int type) {
    if (type < 0 || type >= MESHLM_TYPE_COUNT || !codecs[type].dequant) return NULL;
    return &codecs[type];
}

bool meshlm_quant_supported(int type) { return codec_of(type) != NULL; }

void meshlm_quantize_row(int type, const float *src, void *dst, int64_t n) {
    const codec *c = codec_of(type);
    if (c && n > 0) c->quant(src, dst, n);
}

/* Decodes one chunk at a time (a block, or 256 elements of a float type) into a stack
 * buffer, sums the chunk in f32 and adds the chunk sums in f32; SIMD kernels follow the
 * same order of chunks so they stay close to this. */
float meshlm_vec_dot_ref(int type, const void *row, const float *x, int64_t n) {
    const codec *c = codec_of(type);
    if (!c || n <= 0) return 0.0f;
    int64_t be = meshlm_type_block_elems(type);
    size_t bb = meshlm_type_block_bytes(type);
    int64_t chunk = be > 1 ? be : MESHLM_QK_K;
    const uint8_t *p = row;
    float buf[MESHLM_QK_K];
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i += chunk) {
        int64_t m = n - i < chunk ? n - i : chunk;
        c->dequant(p + (size_t)(i / be) * bb, buf, m);
        float part = 0.0f;
        for (int64_t j = 0; j < m; j++) part += buf[j] * x[i + j];
        sum += part;
    }
    return sum;
}

/* The fast kernel per type for this process's CPU path; NULL entries use the reference.
 * Filled once, before any reader sees it, by pthread_once. */
static meshlm_dot_fn fast_dot[MESHLM_TYPE_COUNT];
static meshlm_dequant_fn fast_dequant[MESHLM_TYPE_COUNT];
static meshlm_dot_multi_fn fast_multi[MESHLM_TYPE_COUNT];
static meshlm_dot_rows_fn fast_rows[MESHLM_TYPE_COUNT];
static meshlm_act_quant_fn fast_act[MESHLM_TYPE_COUNT];
static meshlm_qdot_fn fast_qdot[MESHLM_TYPE_COUNT];
static meshlm_qdot_rows_fn fast_qrows[MESHLM_TYPE_COUNT];
static bool fast_whole[MESHLM_TYPE_COUNT];
static pthread_once_t fast_dot_once = PTHREAD_ONCE_INIT;

/* BF16 weights take BF16 activations where the CPU has AVX512-BF16; elsewhere they keep
 * f32 activations (so BF16 results depend on the machine, as in llama.cpp, but never on the
 * kernel path or the token count within one: the AMX tiles, the AVX-512 form and the
 * reference all compute the tiles' order). */
static bool bf16_act(void) {
    const meshlm_cpu_caps *c = meshlm_cpu_detect();
    return c->avx512f && c->avx512bw && c->avx512vl && c->avx512bf16;
}

static void pick_bf16_kernels(void) {
    if (!bf16_act() || meshlm_cpu_path_get() == MESHLM_CPU_SCALAR) return;
    fast_act[MESHLM_TYPE_BF16] = meshlm_act_bf16_avx512();
    fast_qdot[MESHLM_TYPE_BF16] = meshlm_qdot_bf16_avx512();
    fast_qrows[MESHLM_TYPE_BF16] = meshlm_qrows_bf16_avx512();
    /* The tiles restage the activations per call, so they want a thread's rows at once. */
    if (meshlm_cpu_amx_get() && meshlm_cpu_detect()->amx_bf16 && meshlm_qrows_bf16_amx())
        fast_qrows[MESHLM_TYPE_BF16] = meshlm_qrows_bf16_amx(), fast_whole[MESHLM_TYPE_BF16] = true;
}

static void pick_avx2_kernels(void) {
    if (meshlm_cpu_path_get() != MESHLM_CPU_AVX2) return;
    /* The integer kernels' VNNI forms give the AVX2 forms' bits, so the path stays one. */
    const meshlm_cpu_caps *caps = meshlm_cpu_detect();
    const bool vnni = caps->avx512vnni && caps->avx512vl;
    for (int t = 0; t < MESHLM_TYPE_COUNT; t++)
        if (codec_of(t)) {
            fast_dot[t] = meshlm_dot_avx2(t);
            fast_dequant[t] = meshlm_dequant_avx2(t);
            if (!fast_dot[t]) fast_dot[t] = meshlm_dot_bfp_avx2(t);
            /* A multi kernel must repeat its own type's one-token kernel exactly. */
            if (fast_dot[t]) {
                fast_multi[t] = meshlm_dot_multi_avx2(t);
                fast_rows[t] = meshlm_dot_rows_avx2(t);
            }
            fast_act[t] = meshlm_act_quant_avx2(t);
            fast_qdot[t] = vnni ? meshlm_qdot_vnni(t) : meshlm_qdot_avx2(t);
            fast_qrows[t] = vnni ? meshlm_qdot_rows_vnni(t) : meshlm_qdot_rows_avx2(t);
        }
    if (!meshlm_cpu_avx512_get()) return;
    /* Only the types with an AVX-512 form change; the activation quantizer stays the AVX2
     * one, whose bytes are the reference's anyway. */
    for (int t = 0; t < MESHLM_TYPE_COUNT; t++) {
        meshlm_qdot_fn qdot = meshlm_qdot_avx512(t);
        meshlm_qdot_rows_fn qrows = meshlm_qdot_rows_avx512(t);
        if (qdot) fast_qdot[t] = qdot;
        if (qrows) fast_qrows[t] = qrows;
    }
    if (!meshlm_cpu_amx_get()) return;
    for (int t = 0; t < MESHLM_TYPE_COUNT; t++)
        if (meshlm_qdot_rows_amx(t)) fast_qrows[t] = meshlm_qdot_rows_amx(t), fast_whole[t] = true;
}

static void pick_dot_kernels(void) {
    pick_avx2_kernels();
    pick_bf16_kernels();
}

/* An unknown type decodes to zeros rather than leaving dst uninitialized. */
void meshlm_dequantize_row(int type, const void *src, float *dst, int64_t n) {
    const codec *c = codec_of(type);
    if (n <= 0) return;
    if (!c) {
        memset(dst, 0, (size_t)n * sizeof(float));
        return;
    }
    pthread_once(&fast_dot_once, pick_dot_kernels);
    if (fast_dequant[type]) {
        fast_dequant[type](src, dst, n);
        return;
    }
    c->dequant(src, dst, n);
}

float meshlm_vec_dot(int type, const void *row, const float *x, int64_t n) {
    pthread_once(&fast_dot_once, pick_dot_kernels);
    if (n > 0 && type >= 0 && type < MESHLM_TYPE_COUNT && fast_dot[type]) return fast_dot[type](row, x, n);
    return meshlm_vec_dot_ref(type, row, x, n);
}

void meshlm_vec_dot_multi(int type, const void *row, const float *x, int64_t n, int64_t n_tok, int64_t x_stride,
                          float *y, int64_t y_stride) {
    pthread_once(&fast_dot_once, pick_dot_kernels);
    if (n > 0 && type >= 0 && type < MESHLM_TYPE_COUNT && fast_multi[type]) {
        fast_multi[type](row, x, n, n_tok, x_stride, y, y_stride);
        return;
    }
    for (int64_t t = 0; t < n_tok; t++) y[t * y_stride] = meshlm_vec_dot(type, row, x + t * x_stride, n);
}

void meshlm_vec_dot_rows(int type, const void *rows, size_t row_stride, int64_t n_rows, const float *x, int64_t n,
                         int64_t n_tok, int64_t x_stride, float *y, int64_t y_stride) {
    pthread_once(&fast_dot_once, pick_dot_kernels);
    if (n > 0 && type >= 0 && type < MESHLM_TYPE_COUNT && fast_rows[type]) {
        fast_rows[type](rows, row_stride, n_rows, x, n, n_tok, x_stride, y, y_stride);
        return;
    }
    for (int64_t r = 0; r < n_rows; r++)
        meshlm_vec_dot_multi(type, (const uint8_t *)rows + (size_t)r * row_stride, x, n, n_tok, x_stride, y + r,
                             y_stride);
}

/* ---- the integer path ---- */

int meshlm_act_block(int type) {
    switch (type) {
    case MESHLM_TYPE_Q8_0:
    case MESHLM_TYPE_Q4_0:
    case MESHLM_TYPE_Q4_1:
    case MESHLM_TYPE_Q5_0:
    case MESHLM_TYPE_Q5_1:
    case MESHLM_TYPE_MXFP4: return QK;
    case MESHLM_TYPE_Q4_K:
    case MESHLM_TYPE_Q5_K:
    case MESHLM_TYPE_Q6_K: return MESHLM_QK_K;
    case MESHLM_TYPE_BF16: return bf16_act() ? MESHLM_ACT_BF16 : 0;
    default: return 0;
    }
}

size_t meshlm_act_row_bytes(int type, int64_t n) {
    int blk = meshlm_act_block(type);
    if (!blk || n <= 0) return 0;
    if (blk == MESHLM_ACT_BF16) return meshlm_act_bf16_bytes(n);
    size_t per = blk == QK ? sizeof(meshlm_act32) : sizeof(meshlm_act256);
    return (size_t)(n / blk) * per;
}

void meshlm_quantize_act_ref(int type, const float *x, void *dst, int64_t n) {
    int blk = meshlm_act_block(type);
    if (blk == MESHLM_ACT_BF16)
        meshlm_act_bf16_ref(x, dst, n);
    else if (blk == QK)
        meshlm_quantize_act32_ref(x, dst, n);
    else if (blk)
        meshlm_quantize_act256_ref(x, dst, n);
}

void meshlm_quantize_act(int type, const float *x, void *dst, int64_t n) {
    pthread_once(&fast_dot_once, pick_dot_kernels);
    if (n > 0 && type >= 0 && type < MESHLM_TYPE_COUNT && fast_act[type])
        fast_act[type](x, dst, n);
    else
        meshlm_quantize_act_ref(type, x, dst, n);
}

float meshlm_vec_qdot_ref(int type, const void *row, const void *act, int64_t n) {
    return n > 0 ? meshlm_qdot_ref(type, row, act, n) : 0.0f;
}

float meshlm_vec_qdot(int type, const void *row, const void *act, int64_t n) {
    pthread_once(&fast_dot_once, pick_dot_kernels);
    if (n > 0 && type >= 0 && type < MESHLM_TYPE_COUNT && fast_qdot[type]) return fast_qdot[type](row, act, n);
    return meshlm_vec_qdot_ref(type, row, act, n);
}

bool meshlm_vec_qdot_rows_whole(int type) {
    pthread_once(&fast_dot_once, pick_dot_kernels);
    return type >= 0 && type < MESHLM_TYPE_COUNT && fast_whole[type];
}

void meshlm_vec_qdot_rows(int type, const void *rows, size_t row_stride, int64_t n_rows, const void *act,
                          size_t act_stride, int64_t n, int64_t n_tok, float *y, int64_t y_stride) {
    pthread_once(&fast_dot_once, pick_dot_kernels);
    if (n > 0 && type >= 0 && type < MESHLM_TYPE_COUNT && fast_qrows[type]) {
        fast_qrows[type](rows, row_stride, n_rows, act, act_stride, n, n_tok, y, y_stride);
        return;
    }
    for (int64_t r = 0; r < n_rows; r++)
        for (int64_t t = 0; t < n_tok; t++)
            y[r + t * y_stride] = meshlm_vec_qdot_ref(type, (const uint8_t *)rows + (size_t)r * row_stride,
                                                      (const uint8_t *)act + (size_t)t * act_stride, n);
}
