/* What the CPU we run on can do, found at run time so one build serves every x86-64 CPU,
 * and which kernel path follows from it. */
#ifndef MESHLM_CORE_CPU_H
#define MESHLM_CORE_CPU_H

#include <stdbool.h>

typedef struct meshlm_cpu_caps {
    bool avx2, fma, f16c;
    bool avx512f, avx512bw, avx512vl, avx512vnni, avx512bf16;
    bool amx_int8; /* AMX tiles with int8 products, and the OS's leave to use them */
    bool amx_bf16; /* AMX tiles with BF16 products, and the same leave */
} meshlm_cpu_caps;

typedef enum meshlm_cpu_path {
    MESHLM_CPU_SCALAR = 0, /* the reference kernels, any CPU */
    MESHLM_CPU_AVX2 = 1,   /* needs AVX2, FMA and F16C together */
} meshlm_cpu_path;

/* Detected once; every flag is false off x86 or when the OS does not save the registers. */
const meshlm_cpu_caps *meshlm_cpu_detect(void);

/* Space-separated detected features (e.g. "avx2 fma f16c"), then "path=<name>": for
 * benchmark output. */
const char *meshlm_cpu_features(void);

/* The processor's name as its maker states it (e.g. "AMD EPYC"), or "unknown CPU". */
const char *meshlm_cpu_name(void);

/* The path for these caps under an override ("scalar", "avx2", "avx512", "amx", or NULL/""
 * for the best; "avx512" means the AVX2 path plus the AVX-512 tier below, "amx" that and the
 * AMX tier). An override the CPU
 * cannot honour, or an unknown one, falls back to the best path and sets *warning (when
 * given) to say why. */
meshlm_cpu_path meshlm_cpu_choose(const meshlm_cpu_caps *caps, const char *override, const char **warning);

/* Whether the AVX-512 tier runs on top of the AVX2 path: the kernels that have an AVX-512
 * VNNI form (the integer dots) use it, every other kernel stays AVX2. A tier rather than a
 * third path, so that code asking "is the path AVX2?" keeps its answer. It needs the AVX2
 * path and AVX-512 F, BW, VL and VNNI together, and an override other than "avx2" or
 * "scalar". */
bool meshlm_cpu_choose_avx512(const meshlm_cpu_caps *caps, const char *override);

/* meshlm_cpu_choose_avx512 for this process (detected caps, MESHLM_CPU), decided once. */
bool meshlm_cpu_avx512_get(void);

/* Whether the AMX tier runs on top of the AVX-512 one: the block-order integer dots take
 * AMX int8 tiles for several tokens, and BF16 weights AMX-BF16 tiles where caps.amx_bf16. It needs the AVX-512 tier, AMX int8 (with the OS's
 * leave, asked for at detection) and an override of "amx" or none. */
bool meshlm_cpu_choose_amx(const meshlm_cpu_caps *caps, const char *override);

/* meshlm_cpu_choose_amx for this process, decided once. */
bool meshlm_cpu_amx_get(void);

/* The path for this process: meshlm_cpu_choose with the detected caps and the environment
 * variable MESHLM_CPU, decided once (a warning goes to stderr). */
meshlm_cpu_path meshlm_cpu_path_get(void);

const char *meshlm_cpu_path_name(meshlm_cpu_path path);

#endif
