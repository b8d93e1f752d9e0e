/* Tensor element types. Values are GGUF's (ggml's) type ids so they go straight
 * into and out of files; block layouts are GGUF's, byte for byte. */
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
    MESHLM_TYPE_COUNT = 40 /* one past the largest id GGUF defines; not a type */
} meshlm_type;

/* True if t is a type meshlm can compute with (the list above). */
bool meshlm_type_supported(int t);
/* GGUF's name ("Q4_K", "BF16"), or "type-N" for ids meshlm does not know. */
const char *meshlm_type_name(int t);
/* Parses a name, case-insensitive ("q8_0", "F16"); -1 if unknown. */
int meshlm_type_from_name(const char *name);
/* Elements per block (1 for F32/F16/BF16, 32 or 256 for quantized types). */
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

#endif
