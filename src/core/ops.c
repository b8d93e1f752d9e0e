#include "core/ops.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>

#include "core/quant.h"
#include "core/status.h"

void meshlm_rmsnorm(float *y, const float *x, const float *w, int64_t n, float eps) {
    double ss = 0.0;
    for (int64_t i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float scale = (float)(1.0 / sqrt(ss / (double)n + eps));
    for (int64_t i = 0; i < n; i++) y[i] = x[i] * scale * (w ? w[i] : 1.0f);
}

void meshlm_softmax(float *x, int64_t n) {
    float max = x[0];
    for (int64_t i = 1; i < n; i++)
        if (x[i] > max) max = x[i];
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += x[i];
    }
    float inv = (float)(1.0 / sum);
    for (int64_t i = 0; i < n; i++) x[i] *= inv;
}

void meshlm_silu_mul(float *g, const float *u, int64_t n) {
    for (int64_t i = 0; i < n; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

void meshlm_add(float *y, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
}

int meshlm_rope_init(meshlm_rope *r, int head_dim, int n_rot, bool neox, double theta_base,
                     const float *freq_factors) {
    int max_pairs = (int)(sizeof r->inv_freq / sizeof r->inv_freq[0]);
    if (n_rot <= 0 || n_rot > head_dim || n_rot % 2 || n_rot / 2 > max_pairs)
        return meshlm_fail(MESHLM_ERR_UNSUPPORTED,
                           "rope: rotated dimensions %d must be even, at most the head size %d and %d",
                           n_rot, head_dim, 2 * max_pairs);
    if (!(theta_base > 0.0) || !isfinite(theta_base))
        return meshlm_fail(MESHLM_ERR_FORMAT, "rope: frequency base %g is not a positive number", theta_base);
    r->head_dim = head_dim;
    r->n_rot = n_rot;
    r->neox = neox;
    for (int i = 0; i < n_rot / 2; i++) {
        double f = pow(theta_base, -2.0 * i / n_rot);
        if (freq_factors) {
            if (!(freq_factors[i] > 0.0f) || !isfinite(freq_factors[i]))
                return meshlm_fail(MESHLM_ERR_FORMAT, "rope: frequency factor %d is %g, not a positive number",
                                   i, (double)freq_factors[i]);
            f /= freq_factors[i];
        }
        r->inv_freq[i] = f;
    }
    static _Atomic uint64_t next_id = 1;
    r->id = next_id++;
    return MESHLM_OK;
}

/* Each thread keeps the cos and sin of the last (rope, position) it rotated: the fused QKV
 * pass rotates a head at a time, and would otherwise take every head's double-precision
 * cos and sin again. The values are the same either way. */
static _Thread_local struct {
    uint64_t id;
    int64_t pos;
    float c[512], s[512];
} angles = {.pos = -1};

static void rope_angles(const meshlm_rope *r, int64_t pos) {
    if (angles.id == r->id && angles.pos == pos) return;
    for (int i = 0; i < r->n_rot / 2; i++) {
        double angle = (double)pos * r->inv_freq[i];
        angles.c[i] = (float)cos(angle), angles.s[i] = (float)sin(angle);
    }
    angles.id = r->id, angles.pos = pos;
}

void meshlm_rope_apply(const meshlm_rope *r, float *x, int n_heads, int64_t pos) {
    int half = r->n_rot / 2;
    rope_angles(r, pos);
    for (int i = 0; i < half; i++) {
        float c = angles.c[i], s = angles.s[i];
        /* neox pairs dimension i with i + n_rot/2; the normal layout pairs 2i with 2i+1. */
        int a = r->neox ? i : 2 * i;
        int b = r->neox ? i + half : 2 * i + 1;
        for (int h = 0; h < n_heads; h++) {
            float *v = x + (size_t)h * r->head_dim;
            float x0 = v[a], x1 = v[b];
            v[a] = x0 * c - x1 * s;
            v[b] = x0 * s + x1 * c;
        }
    }
}

void meshlm_matrix_row(const meshlm_matrix *w, int64_t id, float *out) {
    meshlm_dequantize_row(w->type, (const char *)w->data + (size_t)id * w->row_bytes, out, w->n_in);
}
