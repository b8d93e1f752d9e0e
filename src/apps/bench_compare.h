/* meshlm bench --compare: generic vs performance vs each single-option ablation, one run. */
#ifndef MESHLM_APPS_BENCH_COMPARE_H
#define MESHLM_APPS_BENCH_COMPARE_H

#include "meshlm.h"

typedef struct meshlm_bench_compare_args {
    const char *model_file, *mesh, *format; /* format: md, json or csv */
    int threads, n_prompt, n_gen, reps;
} meshlm_bench_compare_args;

/* Times every configuration on m (sessions created up front, repetitions interleaved) and
 * prints the table: prefill and decode tokens/s, ms per token, ratios to generic, bytes of
 * weights per token, heap allocations per decode step. */
int meshlm_bench_compare(const meshlm_model *m, const meshlm_bench_compare_args *a);

#endif
