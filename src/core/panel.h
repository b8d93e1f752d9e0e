/* Q8_0, Q4_0, MXFP4, Q4_K, Q5_K and Q6_K matrices repacked in panels of 16 rows, the optimized tier's weight
 * layout: the layout the int8 dot instructions want, so a block's products for 16 rows
 * come from whole 64-byte loads with nothing to reduce across lanes (VNNI), and an AMX B
 * tile is a block's codes as they lie. The block order (kernels_q8.c) does not depend on
 * the layout, so panels give the rows' bits exactly.
 *
 * Panel p (rows 16p..16p+15) is 16 * row_bytes bytes at 16p * row_bytes; its block k is
 * 16 * block_bytes bytes at k times that, the same size as the rows it holds.
 * - Q8_0, Q4_0: the 16 rows' fp16 scales, then the codes in 4-byte groups interleaved
 *   across the rows, byte (16g + r) * 4 + j holding row r's element 4g + j. Q8_0 keeps its
 *   signed codes (8 groups, 512 bytes); Q4_0 keeps its bytes (4 groups, 256 bytes), whose
 *   low nibbles are elements 0..15 and high ones 16..31.
 * - MXFP4: as Q4_0, with the 16 rows' exponent bytes (16 bytes) in place of the scales.
 * - Q4_K (a super-block of 256): the 16 d at 0, the 16 dmin at 32, the 12 bytes of packed
 *   scales and mins laid across the rows (byte i of row r at 64 + 16i + r), then from 256
 *   the code bytes, 512 per pair of sub-blocks jp: row r's bytes 32jp + 4g .. + 3 at
 *   512jp + (16g + r) * 4, low nibbles sub-block 2jp, high ones 2jp + 1.
 * - Q5_K: Q4_K's d, dmin and scales; qh from 256 (row r's bytes 4g .. + 3 at (16g + r) * 4,
 *   bit j the fifth bits of sub-block j), then Q4_K's code bytes from 768.
 * - Q6_K: a head of 288 bytes, the 16 d at 0 and the 16 signed scales laid across the rows
 *   (scale g of row r at 32 + 16g + r), and 3072 bytes of codes, ql at 0 (row r's bytes
 *   64h + 4g .. + 3 at 1024h + (16g + r) * 4) and qh from 2048 (its bytes 32h + 4g .. + 3
 *   at 2048 + 512h + (16g + r) * 4). A super-block is 3360 bytes, half a cache line past a
 *   whole number of them, so the matrix's even super-blocks (counted from its first) hold
 *   their codes first and their head after, and the odd ones the other way round: every
 *   super-block's codes start on a line when the matrix does, and a 64-byte load of them
 *   never straddles two. */
#ifndef MESHLM_CORE_PANEL_H
#define MESHLM_CORE_PANEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MESHLM_PANEL_ROWS 16

/* Where the head and the codes of the matrix's Q6_K panel super-block i lie in it. */
static inline size_t meshlm_q6k_panel_head(int64_t i) { return i & 1 ? 0 : 192 * MESHLM_PANEL_ROWS; }
static inline size_t meshlm_q6k_panel_codes(int64_t i) { return i & 1 ? 18 * MESHLM_PANEL_ROWS : 0; }

/* Whether an n_out x n_in matrix of type can be packed (Q8_0, Q4_0, MXFP4, Q4_K, Q5_K or Q6_K, n_out a
 * multiple of 16, n_in at most 32768) and this CPU has the panel kernels that make packing pay
 * (AVX-512 VNNI, or the type's AVX2 form). */
bool meshlm_panel_worth(int type, int64_t n_out, int64_t n_in);

/* Packs n_out rows of n_in values (row_stride bytes apart at src) into dst, which holds
 * n_out * meshlm_type_row_bytes(type, n_in) bytes. */
void meshlm_panel_pack(int type, const void *src, size_t row_stride, int64_t n_out, int64_t n_in, void *dst);

/* y[r + t * y_stride] for lo <= r < hi and t < n_tok: the dot of packed row r with
 * activation row t (act_stride bytes apart, meshlm_quantize_act's format), bit for bit
 * meshlm_vec_qdot_ref on the unpacked row. Any lo and hi; whole panels cost the same. */
void meshlm_panel_dot(int type, const void *w, size_t row_bytes, int64_t lo, int64_t hi, const void *act,
                      size_t act_stride, int64_t n, int64_t n_tok, float *y, int64_t y_stride);

/* The same in plain C, for any CPU (the kernels' reference). */
void meshlm_panel_dot_ref(int type, const void *w, size_t row_bytes, int64_t lo, int64_t hi, const void *act,
                          size_t act_stride, int64_t n, int64_t n_tok, float *y, int64_t y_stride);

/* The AVX2 forms (kernels_q8_panel_avx2.c), for CPUs without AVX-512: whether type has one,
 * and meshlm_panel_dot through it (false, doing nothing, when it has none). */
bool meshlm_panel_avx2_has(int type);
bool meshlm_panel_dot_avx2(int type, const void *w, size_t row_bytes, int64_t lo, int64_t hi, const void *act,
                           size_t act_stride, int64_t n, int64_t n_tok, float *y, int64_t y_stride);

#endif
