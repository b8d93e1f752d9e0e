/* The panel kernels of core/panel.h in AVX2, for CPUs without AVX-512. */
#include "core/panel.h"

bool meshlm_panel_avx2_has(int type) {
    (void)type;
    return false;
}

bool meshlm_panel_dot_avx2(int type, const void *w, size_t row_bytes, int64_t lo, int64_t hi, const void *act,
                           size_t act_stride, int64_t n, int64_t n_tok, float *y, int64_t y_stride) {
    (void)type, (void)w, (void)row_bytes, (void)lo, (void)hi, (void)act, (void)act_stride, (void)n, (void)n_tok;
    (void)y, (void)y_stride;
    return false;
}
