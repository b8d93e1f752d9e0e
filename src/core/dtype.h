/* Tensor element types. Values below MESHLM_TYPE_GGUF_END are GGUF's (ggml's) type ids so
 * they go straight into and out of files, with GGUF's block layouts byte for byte. The
 * block-float types (core/bfp.h) are meshlm's own, for weights repacked at load: their ids
 * lie far above anything GGUF assigns, and files may not use them. */
#ifndef MESHLM_CORE_DTYPE_H
#define MESHLM_CORE_DTYPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum meshlm_type {
    MESHLM_TYPE_F32 = 0,
    MESHLM_TYPE_F16 = 1,
    MESHLM_TYPE_Q4_0 = 2,
    MESHLM_TYPE_Q4_1 = 3,
    MESHLM_TYPE_Q5_0 = 6,
    MESHLM_TYPE_Q5_1 = 7,
    MESHLM_TYPE_Q8_0 = 8,
    MESHLM_TYPE_Q4_K = 12,
    MESHLM_TYPE_Q5_K = 13,
    MESHLM_TYPE_Q6_K = 14,
    MESHLM_TYPE_BF16 = 30,
    MESHLM_TYPE_MXFP4 = 39, /* E8M0 exponent byte + 32 E2M1 codes; gpt-oss's expert weights */
    MESHLM_TYPE_GGUF_END = 64, /* GGUF ids stay below this (ggml has assigned 0..41); not a type */
    MESHLM_TYPE_BFP8 = 64,     /* 16 values share an 8-bit exponent; sign + 7-bit magnitude each */
    MESHLM_TYPE_BFP4 = 65,     /* 16 values share an 8-bit exponent; sign + 3-bit magnitude each */
    MESHLM_TYPE_COUNT = 66     /* one past the largest id; not a type */
} meshlm_type;

/* True if t is in the table above: it has a name and a block layout. */
bool meshlm_type_known(int t);
/* True if t is a type meshlm can compute with: known, and reached by the row codecs and
 * dot kernels of core/quant.h. */
bool meshlm_type_supported(int t);
/* True if t is a known type that GGUF files may hold (not meshlm's own block floats). */
bool meshlm_type_in_gguf(int t);
/* GGUF's name ("Q4_K", "BF16"; "BFP8", "BFP4" for meshlm's own), or "type-N" for ids
 * meshlm does not know. */
const char *meshlm_type_name(int t);
/* Parses a name, case-insensitive ("q8_0", "F16"); -1 if unknown. */
int meshlm_type_from_name(const char *name);
/* Elements per block (1 for F32/F16/BF16, 16 for BFP8/BFP4, 32 or 256 for the other
 * quantized types); 0 for unknown types, as are the byte sizes below. */
int64_t meshlm_type_block_elems(int t);
/* Bytes per block. */
size_t meshlm_type_block_bytes(int t);
/* Bytes of a row of n elements; n must be a multiple of the block size. */
size_t meshlm_type_row_bytes(int t, int64_t n);

/* Scalar conversions (IEEE half, bfloat16 with round-to-nearest-even). */
float meshlm_fp16_to_fp32(uint16_t h);
uint16_t meshlm_fp32_to_fp16(float f);
float meshlm_bf16_to_fp32(uint16_t h);
uint16_t meshlm_fp32_to_bf16(float f);
/* Half of 2^(e - 127), an E8M0 exponent byte as ggml scales MXFP4 (whose code table holds
 * twice the E2M1 values): 2^(e - 128), denormal for e < 2, and 2^127 for e = 255, which
 * ggml reads as a number, not as the OCP format's NaN. */
float meshlm_e8m0_to_fp32_half(uint8_t e);

#endif
