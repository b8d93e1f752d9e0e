/* The AMX tile configuration every tile kernel loads. Keep each one a static constant:
 * GCC 12 does not see ldtilecfg read its operand, drops stores into a local that only it
 * reads, and the instruction then faults on the garbage. */
#ifndef MESHLM_CORE_AMX_H
#define MESHLM_CORE_AMX_H

#include <stdint.h>

/* LDTILECFG's 64-byte operand (Intel SDM): palette 1, then per tile register its bytes
 * per row and its rows. */
typedef struct meshlm_tile_config {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} meshlm_tile_config;

#endif
