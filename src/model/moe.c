#include "model/moe.h"

#include <math.h>
#include <string.h>

#include "core/status.h"
#include "model/shard.h"

/* The highest score whose expert is not among chosen[0..k) (the lower id among equals). */
static int32_t next_best(const float *scores, int32_t n_expert, const int32_t *chosen, int32_t k) {
    int32_t best = -1;
    for (int32_t x = 0; x < n_expert; x++) {
        bool taken = false;
        for (int32_t j = 0; j < k && !taken; j++) taken = chosen[j] == x;
        if (!taken && (best < 0 || scores[x] > scores[best])) best = x;
    }
    return best;
}

void meshlm_moe_route(const float *scores, int32_t n_expert, int32_t n_used, bool norm, bool softmax_k,
                      int32_t *chosen, float *weight) {
    float max = scores[0], sum = 0;
    for (int32_t x = 1; x < n_expert; x++)
        if (scores[x] > max) max = scores[x];
    /* The chosen are the highest scores either way: only what their weights are over differs. */
    for (int32_t k = 0; k < n_used; k++) {
        chosen[k] = next_best(scores, n_expert, chosen, k);
        weight[k] = expf(scores[chosen[k]] - max);
    }
    if (softmax_k)
        for (int32_t k = 0; k < n_used; k++) sum += weight[k];
    else
        for (int32_t x = 0; x < n_expert; x++) sum += expf(scores[x] - max);
    for (int32_t k = 0; k < n_used; k++) weight[k] /= sum;
    if (!norm) return;
    float total = 0;
    for (int32_t k = 0; k < n_used; k++) total += weight[k];
    /* As llama.cpp clamps it: the smallest normal half, so no division by zero. */
    if (total < 6.103515625e-5f) total = 6.103515625e-5f;
    for (int32_t k = 0; k < n_used; k++) weight[k] /= total;
}

/* One pass of the threads over every chosen expert's gate and up matrices (phase 0) or
 * down matrices (phase 1), their rows laid end to end and split evenly. */
typedef struct pass {
    const meshlm_moe_args *a;
    int phase;
} pass;

static void pass_rows(void *arg, int ith, int nth) {
    const pass *p = arg;
    const meshlm_moe_args *a = p->a;
    int64_t e = a->hp->n_embd, ff = a->gate[0].n_out, per = p->phase ? e : 2 * ff;
    long total = 0, lo, hi, base = 0;
    for (int32_t x = 0; x < a->n_local; x++) total += a->start[x + 1] > a->start[x] ? (long)per : 0;
    meshlm_split_range(total, ith, nth, &lo, &hi);
    for (int32_t x = 0; x < a->n_local && base < hi; x++) {
        int32_t cnt = a->start[x + 1] - a->start[x];
        if (cnt == 0) continue;
        long from = lo > base ? lo - base : 0, to = hi - base < per ? hi - base : per;
        base += per;
        if (from >= to) continue;
        if (p->phase) {
            meshlm_matmul_rows(&a->in[x], &a->down[x], from, to, a->ey + (size_t)a->start[x] * (size_t)e);
            continue;
        }
        float *g = a->egu + (size_t)a->start[x] * 2 * (size_t)ff, *u = g + (size_t)cnt * (size_t)ff;
        if (from < ff) meshlm_matmul_rows(&a->in[x], &a->gate[x], from, to < ff ? to : (long)ff, g);
        if (to > ff) meshlm_matmul_rows(&a->in[x], &a->up[x], from > ff ? from - ff : 0, to - ff, u);
    }
}

/* Each local expert's rows (those that chose it, in row order), expert after expert. */
static void group(const meshlm_moe_args *a) {
    int32_t used = a->hp->n_expert_used, at = 0;
    for (int32_t x = 0; x < a->n_local; x++) {
        a->start[x] = at;
        for (int32_t t = 0; t < a->n; t++)
            for (int32_t k = 0; k < used; k++)
                if (a->chosen[(size_t)t * (size_t)used + (size_t)k] == a->first + x) a->rows[at++] = t;
    }
    a->start[a->n_local] = at;
}

/* Row t's weight for expert id. */
static float weight_of(const meshlm_moe_args *a, int32_t t, int32_t id) {
    int32_t used = a->hp->n_expert_used;
    for (int32_t k = 0; k < used; k++)
        if (a->chosen[(size_t)t * (size_t)used + (size_t)k] == id) return a->weight[(size_t)t * (size_t)used + (size_t)k];
    return 0;
}

/* With none of the experts' width here, this device's share of the sum is the down
 * biases alone, if it holds them. */
static void down_bias_only(const meshlm_moe_args *a) {
    int64_t e = a->hp->n_embd;
    if (!a->down_b || !a->down_bias) return;
    for (int32_t x = 0; x < a->n_local; x++)
        for (int32_t t = 0; t < a->n; t++) {
            float w = weight_of(a, t, a->first + x), *o = a->out + (size_t)t * (size_t)e;
            const float *b = a->down_b + (size_t)(a->first + x) * (size_t)e;
            for (int64_t d = 0; w != 0 && d < e; d++) o[d] += w * b[d];
        }
}

/* The router's scores (biased), the shared expert's gates, and each row's choices. */
static void route(const meshlm_moe_args *a) {
    const meshlm_hparams *hp = a->hp;
    int64_t e = hp->n_embd;
    int32_t used = hp->n_expert_used;
    meshlm_matmul_ex(a->pool, a->mm, a->router, a->x, a->n, a->scores);
    for (int32_t t = 0; a->router_b && t < a->n; t++)
        meshlm_add(a->scores + (size_t)t * (size_t)hp->n_expert, a->router_b, hp->n_expert);
    for (int32_t t = 0; a->shexp_gate && t < a->n; t++) {
        float d = 0;
        for (int64_t i = 0; i < e; i++) d += a->x[(size_t)t * (size_t)e + (size_t)i] * a->shexp_gate[i];
        a->shexp_scale[t] = 1.0f / (1.0f + expf(-d));
    }
    for (int32_t t = 0; t < a->n; t++)
        meshlm_moe_route(a->scores + (size_t)t * (size_t)hp->n_expert, hp->n_expert, used, hp->expert_norm,
                         hp->expert_softmax_k, a->chosen + (size_t)t * (size_t)used,
                         a->weight + (size_t)t * (size_t)used);
}

/* This device's experts over the rows that chose them: ey row i is expert x's output for
 * row rows[i] (start[x] <= i < start[x + 1]), its down bias added when this device adds it. */
static void run_experts(const meshlm_moe_args *a) {
    const meshlm_hparams *hp = a->hp;
    int64_t e = hp->n_embd, ff = a->gate[0].n_out;
    group(a);
    /* Inputs: each expert's rows gathered and prepared in its own part of act. */
    size_t act_at = 0;
    for (int32_t x = 0; x < a->n_local; x++) {
        int32_t cnt = a->start[x + 1] - a->start[x];
        if (cnt == 0) continue;
        float *in = a->ein + (size_t)a->start[x] * (size_t)e;
        for (int32_t i = 0; i < cnt; i++)
            memcpy(in + (size_t)i * (size_t)e, a->x + (size_t)a->rows[a->start[x] + i] * (size_t)e,
                   sizeof(float) * (size_t)e);
        meshlm_matmul_prepare_own(a->pool, a->mm, a->gate[x].type, in, cnt, e, a->act + act_at, &a->in[x]);
        act_at += meshlm_matmul_act_bytes(cnt, e);
    }
    pass p = {a, 0};
    meshlm_pool_run(a->pool, pass_rows, &p);
    act_at = 0;
    for (int32_t x = 0; x < a->n_local; x++) {
        int32_t cnt = a->start[x + 1] - a->start[x];
        if (cnt == 0) continue;
        float *g = a->egu + (size_t)a->start[x] * 2 * (size_t)ff, *u = g + (size_t)cnt * (size_t)ff;
        for (int32_t i = 0; a->gate_b && i < cnt; i++) {
            size_t at = (size_t)(a->first + x) * (size_t)hp->n_ff_exp + (size_t)a->ff_lo;
            meshlm_add(g + (size_t)i * (size_t)ff, a->gate_b + at, ff);
            meshlm_add(u + (size_t)i * (size_t)ff, a->up_b + at, ff);
        }
        if (hp->expert_act == MESHLM_ACT_SWIGLU_OAI)
            meshlm_swiglu_oai_mul(g, u, (int64_t)cnt * ff);
        else
            meshlm_silu_mul(g, u, (int64_t)cnt * ff);
        meshlm_matmul_prepare_own(a->pool, a->mm, a->down[x].type, g, cnt, ff, a->act + act_at, &a->in[x]);
        act_at += meshlm_matmul_act_bytes(cnt, ff);
    }
    p.phase = 1;
    meshlm_pool_run(a->pool, pass_rows, &p);
    for (int32_t x = 0; a->down_b && a->down_bias && x < a->n_local; x++)
        for (int32_t i = a->start[x]; i < a->start[x + 1]; i++)
            meshlm_add(a->ey + (size_t)i * (size_t)e, a->down_b + (size_t)(a->first + x) * (size_t)e, e);
}

/* o += w * y: the one place an expert's output joins a row's sum, so every way of
 * combining adds the same bits. */
static void accumulate(float *o, float w, const float *y, int64_t e) {
    for (int64_t d = 0; d < e; d++) o[d] += w * y[d];
}

void meshlm_moe(const meshlm_moe_args *a) {
    int64_t e = a->hp->n_embd;
    memset(a->out, 0, sizeof(float) * (size_t)a->n * (size_t)e);
    route(a);
    if (a->n_local == 0) return;
    if (a->gate[0].n_out == 0) {
        down_bias_only(a);
        return;
    }
    run_experts(a);
    /* Summed expert by expert in id order: a row's sum is the same whatever shares the step. */
    for (int32_t x = 0; x < a->n_local; x++)
        for (int32_t i = a->start[x]; i < a->start[x + 1]; i++) {
            int32_t t = a->rows[i];
            accumulate(a->out + (size_t)t * (size_t)e, weight_of(a, t, a->first + x),
                       a->ey + (size_t)i * (size_t)e, e);
        }
}

/* The device of the expert-parallel split that holds expert id. */
static int holder(const meshlm_range *experts, int n_dev, int32_t id) {
    int j = 0;
    while (j < n_dev - 1 && id >= experts[j].hi) j++;
    return j;
}

/* Row t's choices held by device j, in id order, into ids; returns how many. */
static int picks_on(const meshlm_moe_args *a, int32_t t, const meshlm_range *experts, int n_dev, int j,
                    int32_t *ids) {
    int32_t used = a->hp->n_expert_used, n = 0;
    for (int32_t k = 0; k < used; k++) {
        int32_t id = a->chosen[(size_t)t * (size_t)used + (size_t)k];
        if (holder(experts, n_dev, id) != j) continue;
        int32_t at = n++;
        while (at > 0 && ids[at - 1] > id) ids[at] = ids[at - 1], at--;
        ids[at] = id;
    }
    return n;
}

int meshlm_moe_a2a(const meshlm_moe_args *a, const meshlm_moe_a2a_args *c) {
    int64_t e = a->hp->n_embd;
    int g = c->n_dev;
    meshlm_range experts[MESHLM_MESH_MAX_DEVICES];
    size_t send[MESHLM_MESH_MAX_DEVICES], recv[MESHLM_MESH_MAX_DEVICES], rows[MESHLM_MESH_MAX_DEVICES], off;
    int32_t ids[MESHLM_MOE_MAX_USED];
    if (g > MESHLM_MESH_MAX_DEVICES || a->hp->n_expert_used > MESHLM_MOE_MAX_USED ||
        a->n_local > MESHLM_MOE_MAX_LOCAL)
        return meshlm_fail(MESHLM_ERR_UNSUPPORTED,
                           "moe: %d devices, %d experts per token or %d per device are too many", g,
                           (int)a->hp->n_expert_used, (int)a->n_local);
    for (int j = 0; j < g; j++) experts[j] = meshlm_shard_split(a->hp->n_expert, 1, g, j);
    route(a);
    if (a->n_local > 0) run_experts(a);
    /* To each device, the outputs of this device's experts for that device's rows: row by
     * row, each row's experts in id order (each expert's rows are in row order in ey). */
    int32_t cursor[MESHLM_MOE_MAX_LOCAL];
    for (int32_t x = 0; x < a->n_local; x++) cursor[x] = a->start[x];
    float *out = c->send;
    size_t my_lo = 0, my_len = 0;
    for (int j = 0; j < g; j++) {
        size_t lo, len;
        meshlm_ccl_chunk((size_t)a->n, g, j, &lo, &len);
        if (j == c->rank) my_lo = lo, my_len = len;
        rows[j] = len * (size_t)e;
        send[j] = 0;
        for (size_t t = lo; t < lo + len; t++) {
            int n = picks_on(a, (int32_t)t, experts, g, c->rank, ids);
            for (int i = 0; i < n; i++) {
                int32_t x = ids[i] - a->first;
                memcpy(out, a->ey + (size_t)cursor[x]++ * (size_t)e, sizeof(float) * (size_t)e);
                out += e;
            }
            send[j] += (size_t)n * (size_t)e;
        }
    }
    for (int j = 0; j < g; j++) {
        recv[j] = 0;
        for (size_t t = my_lo; t < my_lo + my_len; t++)
            recv[j] += (size_t)picks_on(a, (int32_t)t, experts, g, j, ids) * (size_t)e;
    }
    int rc = meshlm_ccl_all_to_all(c->ccl, c->dev, c->axis, c->send, send, c->recv, recv);
    if (rc) return rc;
    /* Each of this device's rows sums its experts in id order, device block after device
     * block (the split keeps ids ascending over the devices), as meshlm_moe does. */
    const float *from[MESHLM_MESH_MAX_DEVICES];
    off = 0;
    for (int j = 0; j < g; j++) from[j] = c->recv + off, off += recv[j];
    memset(c->mine, 0, sizeof(float) * my_len * (size_t)e);
    for (size_t t = my_lo; t < my_lo + my_len; t++)
        for (int j = 0; j < g; j++) {
            int n = picks_on(a, (int32_t)t, experts, g, j, ids);
            for (int i = 0; i < n; i++, from[j] += e)
                accumulate(c->mine + (t - my_lo) * (size_t)e, weight_of(a, (int32_t)t, ids[i]), from[j], e);
        }
    return meshlm_ccl_all_gather(c->ccl, c->dev, c->axis, c->mine, a->out, (size_t)a->n * (size_t)e, rows);
}
