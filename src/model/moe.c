#include "model/moe.h"

#include <math.h>
#include <string.h>

void meshlm_moe_route(const float *scores, int32_t n_expert, int32_t n_used, bool norm, int32_t *chosen,
                      float *weight) {
    float max = scores[0], sum = 0;
    for (int32_t x = 1; x < n_expert; x++)
        if (scores[x] > max) max = scores[x];
    for (int32_t x = 0; x < n_expert; x++) sum += expf(scores[x] - max);
    for (int32_t k = 0; k < n_used; k++) {
        int32_t best = -1;
        for (int32_t x = 0; x < n_expert; x++) {
            bool taken = false;
            for (int32_t j = 0; j < k && !taken; j++) taken = chosen[j] == x;
            if (!taken && (best < 0 || scores[x] > scores[best])) best = x;
        }
        chosen[k] = best;
        weight[k] = expf(scores[best] - max) / sum;
    }
    if (!norm) return;
    float total = 0;
    for (int32_t k = 0; k < n_used; k++) total += weight[k];
    /* As llama.cpp clamps it: the smallest normal half, so no division by zero. */
    if (total < 6.103515625e-5f) total = 6.103515625e-5f;
    for (int32_t k = 0; k < n_used; k++) weight[k] /= total;
}

void meshlm_moe(const meshlm_moe_args *a) {
    const meshlm_hparams *hp = a->hp;
    int64_t e = hp->n_embd;
    int32_t used = hp->n_expert_used;
    memset(a->out, 0, sizeof(float) * (size_t)a->n * (size_t)e);
    meshlm_matmul_ex(a->pool, a->mm, a->router, a->x, a->n, a->scores);
    for (int32_t t = 0; a->shexp_gate && t < a->n; t++) {
        float d = 0;
        for (int64_t i = 0; i < e; i++) d += a->x[(size_t)t * (size_t)e + (size_t)i] * a->shexp_gate[i];
        a->shexp_scale[t] = 1.0f / (1.0f + expf(-d));
    }
    for (int32_t t = 0; t < a->n; t++)
        meshlm_moe_route(a->scores + (size_t)t * (size_t)hp->n_expert, hp->n_expert, used, hp->expert_norm,
                         a->chosen + (size_t)t * (size_t)used, a->weight + (size_t)t * (size_t)used);
    if (a->n_local == 0 || a->gate[0].n_out == 0) return;
    int64_t ff = a->gate[0].n_out;
    for (int32_t x = 0; x < a->n_local; x++) {
        int32_t id = a->first + x, n_rows = 0;
        for (int32_t t = 0; t < a->n; t++)
            for (int32_t k = 0; k < used; k++)
                if (a->chosen[(size_t)t * (size_t)used + (size_t)k] == id) a->rows[n_rows++] = t;
        if (n_rows == 0) continue;
        for (int32_t i = 0; i < n_rows; i++)
            memcpy(a->ein + (size_t)i * (size_t)e, a->x + (size_t)a->rows[i] * (size_t)e, sizeof(float) * (size_t)e);
        float *g = a->egu, *u = a->egu + (size_t)n_rows * (size_t)ff;
        meshlm_matmul_w13(a->pool, a->mm, &a->gate[x], &a->up[x], a->ein, n_rows, g, u, true);
        meshlm_matmul_ex(a->pool, a->mm, &a->down[x], g, n_rows, a->ey);
        for (int32_t i = 0; i < n_rows; i++) {
            int32_t t = a->rows[i];
            float w = 0;
            for (int32_t k = 0; k < used; k++)
                if (a->chosen[(size_t)t * (size_t)used + (size_t)k] == id) w = a->weight[(size_t)t * (size_t)used + (size_t)k];
            float *o = a->out + (size_t)t * (size_t)e;
            const float *y = a->ey + (size_t)i * (size_t)e;
            for (int64_t d = 0; d < e; d++) o[d] += w * y[d];
        }
    }
}
