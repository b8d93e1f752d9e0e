/* The reference attention kernels: every float operation spelled out in the order attn.h
 * fixes, which the AVX2 forms repeat lane for lane. */
#include "core/attn.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/cpu.h"
#include "core/dtype.h"
#include "core/quant.h"

float meshlm_attn_exp(float x) {
    x = x > MESHLM_ATTN_EXP_MIN ? x : MESHLM_ATTN_EXP_MIN;
    float n = rintf(x * MESHLM_ATTN_LOG2E);
    float r = fmaf(n, -MESHLM_ATTN_LN2_HI, x);
    r = fmaf(n, -MESHLM_ATTN_LN2_LO, r);
    float p = 1.0f / 5040.0f;
    p = fmaf(p, r, 1.0f / 720.0f);
    p = fmaf(p, r, 1.0f / 120.0f);
    p = fmaf(p, r, 1.0f / 24.0f);
    p = fmaf(p, r, 1.0f / 6.0f);
    p = fmaf(p, r, 0.5f);
    p = fmaf(p, r, 1.0f);
    p = fmaf(p, r, 1.0f);
    uint32_t bits = (uint32_t)((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* The lane tree of meshlm_hsum8, for sums and for maxima. */
static float tree_sum(const float *l) { return ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7])); }

/* a unless b is larger, as MAXPS(a, b) returns b when a is NaN. */
static float max2(float a, float b) { return a > b ? a : b; }

static float tree_max(const float *l) {
    return max2(max2(max2(l[0], l[4]), max2(l[2], l[6])), max2(max2(l[1], l[5]), max2(l[3], l[7])));
}

static float lane_dot(const float *q, const float *k, int hd) {
    float l[8] = {0};
    for (int d = 0; d < hd; d++) l[d % 8] = fmaf(q[d], k[d], l[d % 8]);
    return tree_sum(l);
}

static void scores_ref(int type, const void *k, size_t k_stride, int n, const float *q, int nq, int hd, float scale,
                       float *s, size_t s_stride) {
    float buf[MESHLM_ATTN_MAX_DIM];
    const uint8_t *row = k;
    for (int i = 0; i < n; i++, row += k_stride) {
        meshlm_dequantize_row(type, row, buf, hd);
        for (int j = 0; j < nq; j++) s[(size_t)j * s_stride + (size_t)i] = lane_dot(q + (size_t)j * hd, buf, hd) * scale;
    }
}

static void softmax_ref(float *s, int n, float *max, float *sum) {
    float m[8], t[8] = {0};
    for (int l = 0; l < 8; l++) m[l] = -INFINITY;
    for (int i = 0; i < n; i++) m[i % 8] = max2(s[i], m[i % 8]);
    float mx = tree_max(m);
    for (int i = 0; i < n; i++) {
        s[i] = meshlm_attn_exp(s[i] - mx);
        t[i % 8] += s[i];
    }
    *max = mx;
    *sum = tree_sum(t);
}

static void wsum_ref(int type, const void *v, size_t v_stride, int n, const float *w, size_t w_stride, int nq, int hd,
                     float *acc, size_t acc_stride) {
    float buf[MESHLM_ATTN_MAX_DIM];
    const uint8_t *row = v;
    for (int i = 0; i < n; i++, row += v_stride) {
        meshlm_dequantize_row(type, row, buf, hd);
        for (int j = 0; j < nq; j++) {
            float wi = w[(size_t)j * w_stride + (size_t)i], *a = acc + (size_t)j * acc_stride;
            for (int d = 0; d < hd; d++) a[d] = fmaf(wi, buf[d], a[d]);
        }
    }
}

/* One table per type, the type bound at compile time. */
#define REF_KERNELS(name, type)                                                                                     \
    static void scores_##name(const void *k, size_t ks, int n, const float *q, int nq, int hd, float scale,       \
                              float *s, size_t ss) {                                                              \
        scores_ref(type, k, ks, n, q, nq, hd, scale, s, ss);                                                      \
    }                                                                                                             \
    static void wsum_##name(const void *v, size_t vs, int n, const float *w, size_t ws, int nq, int hd,           \
                            float *acc, size_t as) {                                                              \
        wsum_ref(type, v, vs, n, w, ws, nq, hd, acc, as);                                                         \
    }                                                                                                             \
    static const meshlm_attn_kernels ref_##name = {scores_##name, softmax_ref, wsum_##name};

REF_KERNELS(f32, MESHLM_TYPE_F32)
REF_KERNELS(f16, MESHLM_TYPE_F16)
REF_KERNELS(bf16, MESHLM_TYPE_BF16)
REF_KERNELS(q8_0, MESHLM_TYPE_Q8_0)

const meshlm_attn_kernels *meshlm_attn_kernels_ref(int type) {
    switch (type) {
    case MESHLM_TYPE_F32: return &ref_f32;
    case MESHLM_TYPE_F16: return &ref_f16;
    case MESHLM_TYPE_BF16: return &ref_bf16;
    case MESHLM_TYPE_Q8_0: return &ref_q8_0;
    default: return NULL;
    }
}

const meshlm_attn_kernels *meshlm_attn_kernels_get(int type, int hd) {
    const meshlm_attn_kernels *ref = meshlm_attn_kernels_ref(type);
    if (!ref || hd < 1 || hd > MESHLM_ATTN_MAX_DIM || hd % meshlm_type_block_elems(type)) return NULL;
    const meshlm_attn_kernels *fast = NULL;
    if (meshlm_cpu_path_get() == MESHLM_CPU_AVX2) fast = meshlm_attn_kernels_avx2(type, hd);
    return fast ? fast : ref;
}
