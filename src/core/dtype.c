#include "core/dtype.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

typedef struct type_traits {
    const char *name;
    int64_t block_elems;
    size_t block_bytes;
    bool computed; /* the codecs and dot kernels of core/quant.c handle it */
} type_traits;

/* Block sizes follow GGUF's layouts: e.g. Q4_0 = f16 scale + 16 bytes of nibbles, MXFP4 =
 * exponent byte + 16 bytes of nibbles. The block floats are one exponent byte + 16
 * sign-magnitude codes (core/bfp.h); they are not computed with until quant.c dispatches
 * to core/bfp.h. */
static const type_traits traits[MESHLM_TYPE_COUNT] = {
    [MESHLM_TYPE_F32] = {"F32", 1, 4, true},
    [MESHLM_TYPE_F16] = {"F16", 1, 2, true},
    [MESHLM_TYPE_Q4_0] = {"Q4_0", 32, 2 + 16, true},
    [MESHLM_TYPE_Q4_1] = {"Q4_1", 32, 2 + 2 + 16, true},
    [MESHLM_TYPE_Q5_0] = {"Q5_0", 32, 2 + 4 + 16, true},
    [MESHLM_TYPE_Q5_1] = {"Q5_1", 32, 2 + 2 + 4 + 16, true},
    [MESHLM_TYPE_Q8_0] = {"Q8_0", 32, 2 + 32, true},
    [MESHLM_TYPE_Q4_K] = {"Q4_K", 256, 2 + 2 + 12 + 128, true},
    [MESHLM_TYPE_Q5_K] = {"Q5_K", 256, 2 + 2 + 12 + 32 + 128, true},
    [MESHLM_TYPE_Q6_K] = {"Q6_K", 256, 128 + 64 + 16 + 2, true},
    [MESHLM_TYPE_BF16] = {"BF16", 1, 2, true},
    [MESHLM_TYPE_MXFP4] = {"MXFP4", 32, 1 + 16, true},
    [MESHLM_TYPE_BFP8] = {"BFP8", 16, 1 + 16, true},
    [MESHLM_TYPE_BFP4] = {"BFP4", 16, 1 + 8, true},
};

bool meshlm_type_known(int t) { return t >= 0 && t < MESHLM_TYPE_COUNT && traits[t].name != NULL; }

bool meshlm_type_supported(int t) { return meshlm_type_known(t) && traits[t].computed; }

bool meshlm_type_in_gguf(int t) { return meshlm_type_known(t) && t < MESHLM_TYPE_GGUF_END; }

/* Unknown ids are named "type-N" as the header promises; the buffer is per thread so
 * concurrent callers do not overwrite each other's names. */
const char *meshlm_type_name(int t) {
    static _Thread_local char unknown[24];
    if (meshlm_type_known(t)) return traits[t].name;
    snprintf(unknown, sizeof unknown, "type-%d", t);
    return unknown;
}

int meshlm_type_from_name(const char *name) {
    if (!name) return -1;
    for (int t = 0; t < MESHLM_TYPE_COUNT; t++)
        if (traits[t].name && strcasecmp(traits[t].name, name) == 0) return t;
    return -1;
}

int64_t meshlm_type_block_elems(int t) { return meshlm_type_known(t) ? traits[t].block_elems : 0; }

size_t meshlm_type_block_bytes(int t) { return meshlm_type_known(t) ? traits[t].block_bytes : 0; }

size_t meshlm_type_row_bytes(int t, int64_t n) {
    if (!meshlm_type_known(t) || n < 0) return 0;
    return (size_t)(n / traits[t].block_elems) * traits[t].block_bytes;
}

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float meshlm_fp16_to_fp32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    if (exp == 0x1f) return bits_f32(sign | 0x7f800000 | (mant << 13)); /* inf, nan */
    if (exp == 0) {
        /* Subnormal halves are mant * 2^-24: exact in f32. */
        float v = (float)mant * (1.0f / 16777216.0f);
        return sign ? -v : v;
    }
    return bits_f32(sign | ((exp + 112) << 23) | (mant << 13));
}

uint16_t meshlm_fp32_to_fp16(float f) {
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t exp = (u >> 23) & 0xff;
    uint32_t mant = u & 0x7fffff;
    if (exp == 0xff) {
        /* Inf, or NaN keeping the top of its payload (forced non-zero so it stays NaN). */
        uint16_t payload = (uint16_t)(mant >> 13);
        if (mant && !payload) payload = 0x200;
        return sign | 0x7c00 | payload;
    }
    int32_t e = (int32_t)exp - 127 + 15;
    if (e >= 0x1f) return sign | 0x7c00; /* overflow to inf */
    if (e <= 0) {
        /* Subnormal or zero half: shift the implicit-one mantissa, round to nearest even. */
        if (e < -10) return sign;
        mant |= 0x800000;
        uint32_t shift = (uint32_t)(14 - e);
        uint32_t half = mant >> shift;
        uint32_t rem = mant & ((1u << shift) - 1);
        uint32_t mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return sign | (uint16_t)half;
    }
    uint32_t h = ((uint32_t)e << 10) | (mant >> 13);
    uint32_t rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++; /* may carry into inf: correct */
    return sign | (uint16_t)h;
}

float meshlm_bf16_to_fp32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

uint16_t meshlm_fp32_to_bf16(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffff) > 0x7f800000) return (uint16_t)((u >> 16) | 0x40); /* quiet nan */
    u += 0x7fff + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

float meshlm_e8m0_to_fp32_half(uint8_t e) {
    /* 2^(e - 128) has biased exponent e - 1; below that the value is the denormal
     * mantissa 0x200000 (2^-128) or 0x400000 (2^-127). */
    return bits_f32(e < 2 ? 0x00200000u << e : (uint32_t)(e - 1) << 23);
}
