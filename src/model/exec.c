#include "model/exec.h"

#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "model/moe.h"

enum { STREAM_WINDOW = 16 << 20 };

static int64_t len(meshlm_range r) { return r.hi - r.lo; }

void meshlm_qk_rope(const meshlm_rope *rope, const meshlm_hparams *hp, float *x, const float *norm, int n_heads,
                    const float *cs) {
    int hd = hp->head_dim;
    if (norm)
        for (int h = 0; h < n_heads; h++) meshlm_rmsnorm(x + h * hd, x + h * hd, norm, hd, hp->rms_eps);
    if (rope) meshlm_rope_rotate(rope, x, n_heads, cs);
}

/* The rope of layer il: the windowed layers of some models rotate with a base of their own,
 * and some models leave a layer unrotated (NULL). */
static const meshlm_rope *layer_rope(const meshlm_exec *x, int il) {
    if (!meshlm_layer_roped(&x->m->hp, il)) return NULL;
    return &x->rope[meshlm_layer_rope_swa(&x->m->hp, il)];
}

/* Row t's angles for layer il's rope, taken at the start of the step. */
static const float *row_angles(const meshlm_exec *x, int il, int64_t t) {
    return x->angles + ((size_t)t * 2 + (meshlm_layer_rope_swa(&x->m->hp, il) ? 1 : 0)) * (size_t)x->m->hp.head_dim;
}

const meshlm_plan *meshlm_exec_pick(const meshlm_plan *plans, const meshlm_step *st) {
    return &plans[st->n_out == st->n && st->n <= plans[MESHLM_MODE_DECODE].max_tok ? MESHLM_MODE_DECODE
                                                                                      : MESHLM_MODE_PREFILL];
}

/* A step in flight: the plan, the rows, and where each buffer lies for this row count. */
typedef struct run {
    meshlm_exec *x;
    const meshlm_plan *p;
    const meshlm_step *st;
    float *buf[MESHLM_BUF_COUNT + 1];
} run;

int meshlm_exec_init(meshlm_exec *x, const meshlm_model *m, const meshlm_shard *sh, const meshlm_plan *largest,
                     bool persistent, int32_t n_ctx, int n_threads) {
    memset(x, 0, sizeof *x);
    x->m = m;
    x->sh = sh;
    size_t t = (size_t)largest->max_tok;
    x->rows = malloc(t * sizeof *x->rows);
    x->attn_scratch = malloc((meshlm_attention_scratch_floats(n_threads, n_ctx, m->hp.head_dim) + 1) * sizeof(float));
    x->angles = malloc((t * 2 * (size_t)m->hp.head_dim + 1) * sizeof(float));
    x->counts = malloc((size_t)sh->n_b * sizeof *x->counts);
    x->e_all = malloc((size_t)sh->n_b * sizeof *x->e_all);
    if (persistent) {
        x->arena_floats = meshlm_plan_arena_floats(largest, largest->max_tok);
        x->arena = malloc((x->arena_floats + 1) * sizeof(float));
    }
    const meshlm_hparams *hp = &m->hp;
    if (hp->n_expert) {
        size_t picks = t * (size_t)hp->n_expert_used;
        int64_t widest = hp->n_embd > hp->n_ff_exp ? hp->n_embd : hp->n_ff_exp;
        x->moe_ids = malloc((2 * picks + (size_t)hp->n_expert + 1) * sizeof *x->moe_ids);
        x->moe_weights = malloc(picks * sizeof *x->moe_weights);
        x->moe_in = malloc((size_t)hp->n_expert * sizeof *x->moe_in);
        /* Each expert's rows are prepared apart, so allow one partial block row per expert. */
        x->moe_act = malloc(meshlm_matmul_act_bytes((int64_t)picks + hp->n_expert, widest));
    }
    if (!x->rows || !x->attn_scratch || !x->angles || !x->counts || !x->e_all || (persistent && !x->arena) ||
        (hp->n_expert && (!x->moe_ids || !x->moe_weights || !x->moe_in || !x->moe_act))) {
        meshlm_exec_free(x);
        return meshlm_fail(MESHLM_ERR_NOMEM, "executor: out of memory for %d rows", largest->max_tok);
    }
    for (int i = 0; i < sh->n_b; i++) x->e_all[i] = meshlm_shard_split(m->hp.n_embd, 1, sh->n_b, i);
    return MESHLM_OK;
}

void meshlm_exec_free(meshlm_exec *x) {
    meshlm_prefetch_stop(x->stream);
    free(x->rows), free(x->attn_scratch), free(x->angles), free(x->counts), free(x->e_all), free(x->arena);
    free(x->moe_ids), free(x->moe_weights), free(x->moe_in), free(x->moe_act);
    memset(x, 0, sizeof *x);
}

int meshlm_exec_setup(meshlm_exec *x, meshlm_plan *plans, const meshlm_model *m, const meshlm_shard *sh,
                      const meshlm_opts *o, int32_t max_tok, int32_t n_ctx, int n_threads) {
    memset(x, 0, sizeof *x);
    int rc = meshlm_plan_build(m, sh, MESHLM_MODE_DECODE, max_tok, o, &plans[MESHLM_MODE_DECODE]);
    if (!rc && (rc = meshlm_plan_build(m, sh, MESHLM_MODE_PREFILL, max_tok, o, &plans[MESHLM_MODE_PREFILL])))
        meshlm_plan_free(&plans[MESHLM_MODE_DECODE]);
    if (rc) return rc;
    rc = meshlm_exec_init(x, m, sh, &plans[MESHLM_MODE_PREFILL], o->persistent, n_ctx, n_threads);
    if (!rc && o->stream) rc = meshlm_exec_stream(x, &plans[MESHLM_MODE_DECODE]);
    if (rc) {
        meshlm_exec_free(x);
        meshlm_plan_free(&plans[0]);
        meshlm_plan_free(&plans[1]);
    }
    return rc;
}

int meshlm_exec_stream(meshlm_exec *x, const meshlm_plan *p) {
    if (x->stream || p->n_regions == 0) return MESHLM_OK;
    meshlm_prefetch_region *reg = malloc((size_t)p->n_regions * sizeof *reg);
    const void **data = malloc((size_t)p->n_regions * sizeof *data);
    size_t *bytes = malloc((size_t)p->n_regions * sizeof *bytes);
    int rc = reg && data && bytes ? meshlm_plan_regions(p, data, bytes, p->n_regions)
                                  : meshlm_fail(MESHLM_ERR_NOMEM, "stream: out of memory");
    size_t window = 0;
    for (int32_t i = 0; !rc && i < p->n_regions; i++) {
        reg[i] = (meshlm_prefetch_region){data[i], bytes[i]};
        window += bytes[i];
    }
    /* Lines pulled in too early are evicted before compute reads them: run at most two
     * layers or 16 MiB ahead, whichever is less, so the lines wait in the shared cache. */
    if (!rc && x->m->hp.n_layer > 0) window = window / (size_t)x->m->hp.n_layer * 2;
    if (window > STREAM_WINDOW) window = STREAM_WINDOW;
    meshlm_prefetch_params pp = {.mode = MESHLM_PREFETCH_LINES, .window = window, .cyclic = true};
    if (!rc) rc = meshlm_prefetch_start(reg, p->n_regions, &pp, &x->stream);
    free(reg), free(data), free(bytes);
    return rc;
}

/* The columns k of n rows of in (width in_w): in itself when k is the whole row, else a
 * copy in XS (a 2-D mesh's slice of the embedding width). */
static const float *columns(run *r, meshlm_range k, const float *in, int64_t in_w, int n) {
    if (len(k) == in_w) return in;
    float *xs = r->buf[MESHLM_BUF_XS];
    for (int t = 0; t < n; t++)
        memcpy(xs + (size_t)t * len(k), in + (size_t)t * in_w + k.lo, (size_t)len(k) * sizeof(float));
    return xs;
}

/* out = w . in[:, k); an empty slice of columns contributes zeros. */
static void matmul(run *r, const meshlm_plan_step *s, int n) {
    const meshlm_matrix *w = s->w[0];
    float *y = r->buf[s->out];
    if (w->n_out == 0) return;
    if (len(s->k[0]) == 0) {
        memset(y, 0, (size_t)n * (size_t)w->n_out * sizeof(float));
        return;
    }
    const float *in = columns(r, s->k[0], r->buf[s->in], r->p->width[s->in], n);
    meshlm_matmul_ex(r->x->pool, &r->p->mm, w, in, n, y);
}

static void matmul_qkv(run *r, const meshlm_plan_step *s, int n) {
    float *y[3] = {r->buf[MESHLM_BUF_Q], r->buf[MESHLM_BUF_K], r->buf[MESHLM_BUF_V]};
    if (len(s->k[0]) == 0) {
        for (int i = 0; i < 3; i++) memset(y[i], 0, (size_t)n * (size_t)s->w[i]->n_out * sizeof(float));
        return;
    }
    const float *in = columns(r, s->k[0], r->buf[s->in], r->p->width[s->in], n);
    meshlm_matmul_multi(r->x->pool, &r->p->mm, s->w, 3, in, n, y);
}

static void matmul_w13(run *r, const meshlm_plan_step *s, int n) {
    float *gate = r->buf[MESHLM_BUF_GATE], *up = r->buf[MESHLM_BUF_UP];
    if (s->w[0]->n_out == 0) return;
    if (len(s->k[0]) == 0) {
        memset(gate, 0, (size_t)n * (size_t)s->w[0]->n_out * sizeof(float));
        memset(up, 0, (size_t)n * (size_t)s->w[0]->n_out * sizeof(float));
        return;
    }
    const float *in = columns(r, s->k[0], r->buf[s->in], r->p->width[s->in], n);
    meshlm_matmul_w13(r->x->pool, &r->p->mm, s->w[0], s->w[1], in, n, gate, up, s->epilogue);
}

/* ---- QKV: the generic sequence (matmuls, bias, rope + KV write) and the fused pass ---- */

static void bias(run *r, const meshlm_plan_step *s, int n) {
    for (int i = 0; i < 3; i++) {
        if (!s->vec[i]) continue;
        int64_t w = r->p->width[s->out + i];
        for (int t = 0; t < n; t++) meshlm_add(r->buf[s->out + i] + (size_t)t * w, s->vec[i], w);
    }
}

static void rope_kv(run *r, const meshlm_plan_step *s, int n) {
    const meshlm_hparams *hp = &r->x->m->hp;
    const meshlm_layer *L = &r->x->m->layers[s->layer];
    int64_t qd = r->p->width[MESHLM_BUF_Q], kvd = r->p->width[MESHLM_BUF_K];
    int n_q = (int)(qd / hp->head_dim), n_kv = (int)(kvd / hp->head_dim);
    const meshlm_rope *rope = layer_rope(r->x, s->layer);
    for (int t = 0; t < n; t++) {
        float *k = r->buf[MESHLM_BUF_K] + (size_t)t * kvd, *v = r->buf[MESHLM_BUF_V] + (size_t)t * kvd;
        const float *cs = row_angles(r->x, s->layer, t);
        meshlm_qk_rope(rope, hp, r->buf[MESHLM_BUF_Q] + (size_t)t * qd, L->q_norm, n_q, cs);
        meshlm_qk_rope(rope, hp, k, L->k_norm, n_kv, cs);
        meshlm_kv_write(r->x->kv, r->st->seqs[t], s->layer, r->st->pos[t], k, v);
    }
}

typedef struct qkv_job {
    run *r;
    const meshlm_plan_step *s;
    const meshlm_matmul_in *in;
    int n_q, n_kv;
} qkv_job;

/* Query head h: its rows of WQ for every token, bias, norm and rope while they are hot. */
static void q_head(const qkv_job *j, int h) {
    const meshlm_hparams *hp = &j->r->x->m->hp;
    int64_t hd = hp->head_dim, qd = j->r->p->width[MESHLM_BUF_Q];
    float *q = j->r->buf[MESHLM_BUF_Q];
    meshlm_matmul_rows(j->in, j->s->w[0], (long)(h * hd), (long)((h + 1) * hd), q);
    for (int64_t t = 0; t < j->in->n_tok; t++) {
        float *qh = q + t * qd + h * hd;
        if (j->s->vec[0]) meshlm_add(qh, j->s->vec[0] + h * hd, hd);
        meshlm_qk_rope(layer_rope(j->r->x, j->s->layer), hp, qh, j->r->x->m->layers[j->s->layer].q_norm, 1,
                       row_angles(j->r->x, j->s->layer, t));
    }
}

/* K or V head h (which 1 or 2): its rows; for K, bias, norm and rope; then into the cache. */
static void kv_head(const qkv_job *j, int which, int h) {
    const meshlm_hparams *hp = &j->r->x->m->hp;
    const meshlm_step *st = j->r->st;
    int64_t hd = hp->head_dim, kvd = j->r->p->width[MESHLM_BUF_K];
    float *y = j->r->buf[which == 1 ? MESHLM_BUF_K : MESHLM_BUF_V];
    meshlm_matmul_rows(j->in, j->s->w[which], (long)(h * hd), (long)((h + 1) * hd), y);
    for (int64_t t = 0; t < j->in->n_tok; t++) {
        float *yh = y + t * kvd + h * hd;
        if (j->s->vec[which]) meshlm_add(yh, j->s->vec[which] + h * hd, hd);
        if (which == 1)
            meshlm_qk_rope(layer_rope(j->r->x, j->s->layer), hp, yh, j->r->x->m->layers[j->s->layer].k_norm, 1,
                           row_angles(j->r->x, j->s->layer, t));
        meshlm_kv_write_slice(j->r->x->kv, st->seqs[t], j->s->layer, st->pos[t], (int32_t)(h * hd), (int32_t)hd,
                              which == 1 ? yh : NULL, which == 2 ? yh : NULL);
    }
}

/* Threads split the heads of Q, then K, then V (equal work each), never inside one head,
 * so each head's values go from the matmul through rope into the cache in one go. Each
 * element is computed as in the generic sequence. */
static void qkv_heads(void *arg, int ith, int nth) {
    const qkv_job *j = arg;
    long lo, hi;
    meshlm_split_range(j->n_q + 2 * j->n_kv, ith, nth, &lo, &hi);
    for (long u = lo; u < hi; u++) {
        if (u < j->n_q)
            q_head(j, (int)u);
        else
            kv_head(j, 1 + (int)((u - j->n_q) / j->n_kv), (int)((u - j->n_q) % j->n_kv));
    }
}

static void qkv_rope(run *r, const meshlm_plan_step *s, int n) {
    int64_t hd = r->x->m->hp.head_dim;
    meshlm_matmul_in in;
    meshlm_matmul_prepare(r->x->pool, &r->p->mm, s->w[0]->type, r->buf[s->in], n, s->w[0]->n_in, &in);
    qkv_job j = {r, s, &in, (int)(r->p->width[MESHLM_BUF_Q] / hd), (int)(r->p->width[MESHLM_BUF_K] / hd)};
    meshlm_pool_run(r->x->pool, qkv_heads, &j);
}

static int moe(run *r, const meshlm_plan_step *s, int n) {
    meshlm_exec *x = r->x;
    const meshlm_shard_layer *S = &x->sh->layers[s->layer];
    const meshlm_layer *L = &x->m->layers[s->layer];
    int32_t used = x->m->hp.n_expert_used;
    meshlm_moe_args a = {.pool = x->pool, .mm = &r->p->mm, .hp = &x->m->hp, .router = s->w[0],
                         .gate = S->eg, .up = S->eu, .down = S->ed, .first = (int32_t)x->sh->experts.lo,
                         .n_local = (int32_t)len(x->sh->experts), .x = r->buf[s->in], .n = n, .out = r->buf[s->out],
                         .scores = r->buf[MESHLM_BUF_ROUTER], .ein = r->buf[MESHLM_BUF_EIN],
                         .egu = r->buf[MESHLM_BUF_EGU], .ey = r->buf[MESHLM_BUF_EY], .chosen = x->moe_ids,
                         .weight = x->moe_weights, .rows = x->moe_ids + (size_t)n * (size_t)used,
                         .start = x->moe_ids + 2 * (size_t)n * (size_t)used, .in = x->moe_in, .act = x->moe_act,
                         .shexp_gate = s->vec[0], .shexp_scale = r->buf[MESHLM_BUF_SHGATE],
                         .router_b = L->router_b, .gate_b = L->exp_gate_b, .up_b = L->exp_up_b,
                         .down_b = L->exp_down_b, .ff_lo = x->sh->exp_ff.lo, .down_bias = x->sh->exp_down_bias};
    if (s->op == MESHLM_OP_MOE) {
        meshlm_moe(&a);
        return MESHLM_OK;
    }
    const meshlm_shard *sh = x->sh;
    meshlm_moe_a2a_args c = {.ccl = x->ccl, .dev = x->dev, .axis = s->axis, .n_dev = sh->n_a * sh->n_b,
                             .rank = sh->n_a == 1 ? sh->b : sh->a, .send = r->buf[MESHLM_BUF_EIN],
                             .recv = r->buf[MESHLM_BUF_A2A], .mine = r->buf[MESHLM_BUF_EY]};
    return meshlm_moe_a2a(&a, &c);
}

static void attention(run *r, const meshlm_plan_step *s, int n) {
    const meshlm_hparams *hp = &r->x->m->hp;
    const meshlm_shard *sh = r->x->sh;
    meshlm_attention_args args = {
        .kv = r->x->kv, .layer = s->layer, .rows = r->x->rows, .n_rows = n, .q = r->buf[MESHLM_BUF_Q],
        .out = r->buf[MESHLM_BUF_ATT], .n_heads = (int)len(sh->att_heads), .head0 = (int)sh->att_heads.lo,
        .group = hp->n_head / hp->n_head_kv, .kv0 = (int)sh->att_kv.lo, .head_dim = hp->head_dim,
        .q_dim = (size_t)r->p->width[MESHLM_BUF_Q], .scratch = r->x->attn_scratch, .scale = hp->attn_scale,
        .softcap = hp->attn_softcap, .window = meshlm_layer_window(hp, s->layer),
        .sinks = r->x->m->layers[s->layer].attn_sinks};
    meshlm_attention(r->x->pool, &args);
}

/* ---- collectives ---- */

/* LAST and LOGITS hold the output rows only. */
static int rows_of(const run *r, int buf) {
    return buf == MESHLM_BUF_LOGITS || buf == MESHLM_BUF_LAST ? r->st->n_out : r->st->n;
}

static int all_reduce(run *r, const meshlm_plan_step *s) {
    size_t n = 0;
    for (int i = 0; i < s->n_buf; i++) n += (size_t)r->p->width[s->in + i] * (size_t)rows_of(r, s->in + i);
    if (n == 0) return MESHLM_OK;
    return meshlm_ccl_all_reduce(r->x->ccl, r->x->dev, s->axis, r->buf[s->in], n);
}

/* Gathers every B rank's slice of the row-parallel output YS; then either assembles the
 * rows into out (generic) or adds the slices into the residual in place (fused). */
static int gather(run *r, const meshlm_plan_step *s, int n, bool add) {
    meshlm_exec *x = r->x;
    int64_t e = x->m->hp.n_embd;
    for (int i = 0; i < x->sh->n_b; i++) x->counts[i] = (size_t)n * (size_t)len(x->e_all[i]);
    int rc = meshlm_ccl_all_gather(x->ccl, x->dev, s->axis, r->buf[s->in], r->buf[MESHLM_BUF_GATHER],
                                   (size_t)n * (size_t)e, x->counts);
    if (rc) return rc;
    const float *src = r->buf[MESHLM_BUF_GATHER];
    float *y = r->buf[s->out];
    for (int i = 0; i < x->sh->n_b; i++) {
        size_t w = (size_t)len(x->e_all[i]);
        for (int t = 0; t < n; t++) {
            float *row = y + (size_t)t * e + x->e_all[i].lo;
            if (add)
                meshlm_add(row, src + (size_t)t * w, (int64_t)w);
            else
                memcpy(row, src + (size_t)t * w, w * sizeof(float));
        }
        src += (size_t)n * w;
    }
    return MESHLM_OK;
}

/* g = act(g) * u with the model's FFN activation. */
static void glu(const run *r, float *g, const float *u, int64_t n) {
    if (r->x->m->hp.ffn_act == MESHLM_ACT_GELU)
        meshlm_gelu_mul(g, u, n);
    else
        meshlm_silu_mul(g, u, n);
}

/* The Galaxy's form of the MLP's reduction: each B rank reduces only its chunk of GATE and
 * UP, applies silu * mul to it, and the chunks of GATE are gathered back; half the bytes of
 * two all-reduces and 1/n_b of the silu work. */
static int rs_silu_ag(run *r, const meshlm_plan_step *s, int n) {
    meshlm_exec *x = r->x;
    size_t total = (size_t)n * (size_t)r->p->width[MESHLM_BUF_GATE], off, cnt;
    if (total == 0) return MESHLM_OK;
    int rank = meshlm_mesh_rank(x->dev, s->axis);
    meshlm_ccl_chunk(total, x->sh->n_b, rank, &off, &cnt);
    float *g = r->buf[MESHLM_BUF_RS], *u = g + (size_t)n * (size_t)(r->p->width[MESHLM_BUF_RS] / 2);
    int rc = meshlm_ccl_reduce_scatter(x->ccl, x->dev, s->axis, r->buf[MESHLM_BUF_GATE], total, g);
    if (!rc) rc = meshlm_ccl_reduce_scatter(x->ccl, x->dev, s->axis, r->buf[MESHLM_BUF_UP], total, u);
    if (rc) return rc;
    glu(r, g, u, (int64_t)cnt);
    return meshlm_ccl_all_gather(x->ccl, x->dev, s->axis, g, r->buf[MESHLM_BUF_GATE], total, NULL);
}

typedef struct cols_job {
    const meshlm_matmul_in *in;
    const meshlm_matrix *w1, *w3; /* w3 may be NULL */
    float *gate, *up;
    long lo, hi;
} cols_job;

/* The threads split one column chunk's rows of W1 (and W3). */
static void cols_rows(void *arg, int ith, int nth) {
    const cols_job *j = arg;
    long lo, hi;
    meshlm_split_range(j->hi - j->lo, ith, nth, &lo, &hi);
    meshlm_matmul_rows(j->in, j->w1, j->lo + lo, j->lo + hi, j->gate);
    if (j->w3) meshlm_matmul_rows(j->in, j->w3, j->lo + lo, j->lo + hi, j->up);
}

/* W1 and W3 chunk by chunk with the reduce-scatter over B fused in: this device makes its
 * partners' column chunks first and announces each, and sums its own chunk as soon as
 * every partner has made it, then silu * mul on that chunk and a column all-gather of GATE.
 * The sums are in rank order, as the linear reduce-scatter's. Where axis B crosses
 * processes (MPI) the same result comes from the unfused pass and collectives. */
static int matmul_w13_rs(run *r, const meshlm_plan_step *s, int n) {
    meshlm_exec *x = r->x;
    int64_t ff = r->p->width[MESHLM_BUF_GATE];
    if (!meshlm_ccl_axis_shared(x->ccl, s->axis)) {
        matmul_w13(r, s, n);
        return rs_silu_ag(r, s, n);
    }
    float *gate = r->buf[MESHLM_BUF_GATE], *up = r->buf[MESHLM_BUF_UP];
    const float *in = len(s->k[0]) ? columns(r, s->k[0], r->buf[s->in], r->p->width[s->in], n) : NULL;
    meshlm_matmul_in min;
    if (in) meshlm_matmul_prepare(x->pool, &r->p->mm, s->w[0]->type, in, n, s->w[0]->n_in, &min);
    meshlm_ccl_rs rs;
    /* GATE and UP are adjacent: one input of 2n rows of ff columns */
    int rc = meshlm_ccl_rs_begin(x->ccl, x->dev, s->axis, gate, 2 * (size_t)n, (size_t)ff, NULL, &rs);
    for (int k = 0; k < rs.g && !rc; k++) {
        size_t off, cnt;
        meshlm_ccl_chunk((size_t)ff, rs.g, meshlm_ccl_rs_chunk(&rs, k), &off, &cnt);
        if (in) {
            cols_job j = {&min, s->w[0], s->w[1], gate, up, (long)off, (long)(off + cnt)};
            meshlm_pool_run(x->pool, cols_rows, &j);
        } else {
            for (int t = 0; t < n; t++) {
                memset(gate + (size_t)t * ff + off, 0, cnt * sizeof(float));
                memset(up + (size_t)t * ff + off, 0, cnt * sizeof(float));
            }
        }
        meshlm_ccl_rs_ready(&rs, k);
    }
    size_t off, cnt;
    meshlm_ccl_chunk((size_t)ff, rs.g, rs.r, &off, &cnt);
    float *g = r->buf[MESHLM_BUF_RS];
    if (!rc) rc = meshlm_ccl_rs_end(&rs, g);
    if (rc) return rc;
    glu(r, g, g + (size_t)n * cnt, (int64_t)((size_t)n * cnt));
    return meshlm_ccl_all_gather_cols(x->ccl, x->dev, s->axis, g, gate, (size_t)n, (size_t)ff, NULL);
}

/* The attention split over B, in: the combined QKV matmul and its reduce-scatter, after
 * which this rank holds its heads' q, k and v (bias added), in Q, K and V. Pipelined, the
 * matmul makes the partners' chunks first, as in matmul_w13_rs; else it makes them all, then
 * reduces. Where B crosses processes: an all-reduce, then this rank's columns. */
static int qkv_rs(run *r, const meshlm_plan_step *s, int n) {
    meshlm_exec *x = r->x;
    const meshlm_shard *sh = x->sh;
    const meshlm_matrix *w = s->w[0];
    int64_t ld = r->p->width[MESHLM_BUF_QKV], own = r->p->width[MESHLM_BUF_QKVS];
    float *qkv = r->buf[MESHLM_BUF_QKV], *mine = r->buf[MESHLM_BUF_QKVS];
    const float *in = len(s->k[0]) ? columns(r, s->k[0], r->buf[s->in], r->p->width[s->in], n) : NULL;
    bool shared = meshlm_ccl_axis_shared(x->ccl, s->axis), whole = !shared || !s->pipelined;
    meshlm_matmul_in min;
    if (in) meshlm_matmul_prepare(x->pool, &r->p->mm, w->type, in, n, w->n_in, &min);
    if (whole && in) {
        cols_job j = {&min, w, NULL, qkv, NULL, 0, (long)ld};
        meshlm_pool_run(x->pool, cols_rows, &j);
    } else if (!in) {
        memset(qkv, 0, (size_t)n * (size_t)ld * sizeof(float));
    }
    int rc;
    if (!shared) {
        if ((rc = meshlm_ccl_all_reduce(x->ccl, x->dev, s->axis, qkv, (size_t)n * (size_t)ld))) return rc;
        for (int t = 0; t < n; t++)
            memcpy(mine + (size_t)t * own, qkv + (size_t)t * ld + sh->qkv_bounds[sh->b], (size_t)own * sizeof(float));
    } else {
        meshlm_ccl_rs rs;
        rc = meshlm_ccl_rs_begin(x->ccl, x->dev, s->axis, qkv, (size_t)n, (size_t)ld, sh->qkv_bounds, &rs);
        for (int k = 0; k < rs.g && !rc; k++) {
            if (!whole && in) {
                int c = meshlm_ccl_rs_chunk(&rs, k);
                cols_job j = {&min, w, NULL, qkv, NULL, (long)sh->qkv_bounds[c], (long)sh->qkv_bounds[c + 1]};
                meshlm_pool_run(x->pool, cols_rows, &j);
            }
            meshlm_ccl_rs_ready(&rs, k);
        }
        if (!rc) rc = meshlm_ccl_rs_end(&rs, mine);
        if (rc) return rc;
    }
    int64_t qd = r->p->width[MESHLM_BUF_Q], kvd = r->p->width[MESHLM_BUF_K];
    for (int t = 0; t < n; t++) {
        float *row = mine + (size_t)t * own;
        if (s->vec[0]) meshlm_add(row, s->vec[0] + sh->qkv_bounds[sh->b], own);
        memcpy(r->buf[MESHLM_BUF_Q] + (size_t)t * qd, row, (size_t)qd * sizeof(float));
        memcpy(r->buf[MESHLM_BUF_K] + (size_t)t * kvd, row + qd, (size_t)kvd * sizeof(float));
        memcpy(r->buf[MESHLM_BUF_V] + (size_t)t * kvd, row + qd + kvd, (size_t)kvd * sizeof(float));
    }
    return MESHLM_OK;
}

/* The attention split over B, out: every rank's heads gathered into the A slice's rows,
 * in head order, as WO takes them. */
static int gather_heads(run *r, const meshlm_plan_step *s, int n) {
    meshlm_exec *x = r->x;
    const int64_t *b = x->sh->att_bounds;
    int64_t qa = r->p->width[MESHLM_BUF_ATTF];
    float *out = r->buf[MESHLM_BUF_ATTF];
    if (meshlm_ccl_axis_shared(x->ccl, s->axis))
        return meshlm_ccl_all_gather_cols(x->ccl, x->dev, s->axis, r->buf[MESHLM_BUF_ATT], out, (size_t)n, (size_t)qa,
                                          b);
    for (int i = 0; i < x->sh->n_b; i++) x->counts[i] = (size_t)n * (size_t)(b[i + 1] - b[i]);
    float *tmp = r->buf[MESHLM_BUF_QKV];
    int rc = meshlm_ccl_all_gather(x->ccl, x->dev, s->axis, r->buf[MESHLM_BUF_ATT], tmp, (size_t)n * (size_t)qa,
                                   x->counts);
    for (int i = 0; i < x->sh->n_b && !rc; i++) {
        size_t w = (size_t)(b[i + 1] - b[i]);
        for (int t = 0; t < n; t++) memcpy(out + (size_t)t * qa + b[i], tmp + (size_t)t * w, w * sizeof(float));
        tmp += (size_t)n * w;
    }
    return rc;
}

/* ---- ends of the pass ---- */

/* Embedding rows live with the device holding their vocab slice; the others contribute
 * zeros, so the all-reduce over A that follows on a mesh reproduces each row exactly (the
 * scale too: it is applied by the holder alone). */
static void embed(run *r, int n) {
    const meshlm_shard *sh = r->x->sh;
    int64_t e = r->x->m->hp.n_embd;
    float scale = r->x->m->hp.embd_scale;
    for (int t = 0; t < n; t++) {
        float *row = r->buf[MESHLM_BUF_X] + (size_t)t * e;
        int32_t tok = r->st->tokens[t];
        if (tok >= sh->vocab.lo && tok < sh->vocab.hi) {
            meshlm_matrix_row(&sh->embd, tok - sh->vocab.lo, row);
            if (scale > 0)
                for (int64_t i = 0; i < e; i++) row[i] *= scale;
        } else {
            memset(row, 0, (size_t)e * sizeof(float));
        }
    }
}

/* Rows of a norm or an add, split among the threads when there are several (a row's
 * values do not depend on which thread takes it). */
typedef struct rows_job {
    const run *r;
    const meshlm_plan_step *s;
    int n;
} rows_job;

static void norm_or_add(void *arg, int ith, int nth) {
    const rows_job *j = arg;
    const meshlm_plan_step *s = j->s;
    const meshlm_hparams *hp = &j->r->x->m->hp;
    const size_t e = (size_t)hp->n_embd;
    long lo, hi;
    meshlm_split_range(j->n, ith, nth, &lo, &hi);
    for (long t = lo; t < hi; t++)
        if (s->op == MESHLM_OP_RMSNORM)
            meshlm_rmsnorm(j->r->buf[s->out] + t * e, j->r->buf[s->in] + t * e, s->vec[0], (int64_t)e, hp->rms_eps);
        else
            meshlm_add(j->r->buf[MESHLM_BUF_X] + t * e, j->r->buf[s->in] + t * e, (int64_t)e);
}

static void rows_step(run *r, const meshlm_plan_step *s, int n) {
    rows_job j = {r, s, n};
    if (n > 1)
        meshlm_pool_run(r->x->pool, norm_or_add, &j);
    else
        norm_or_add(&j, 0, 1);
}

static void out_rows(run *r, const meshlm_plan_step *s) {
    int64_t e = r->x->m->hp.n_embd;
    for (int i = 0; i < r->st->n_out; i++)
        meshlm_rmsnorm(r->buf[MESHLM_BUF_LAST] + (size_t)i * e, r->buf[MESHLM_BUF_X] + (size_t)r->st->out_rows[i] * e,
                       s->vec[0], e, r->x->m->hp.rms_eps);
}

static int run_step(run *r, const meshlm_plan_step *s) {
    const meshlm_hparams *hp = &r->x->m->hp;
    int n = r->st->n;
    int64_t e = hp->n_embd;
    switch (s->op) {
    case MESHLM_OP_EMBED: embed(r, n); break;
    case MESHLM_OP_RMSNORM: rows_step(r, s, n); break;
    case MESHLM_OP_MATMUL: matmul(r, s, n); break;
    case MESHLM_OP_MATMUL_QKV: matmul_qkv(r, s, n); break;
    case MESHLM_OP_QKV_ROPE: qkv_rope(r, s, n); break;
    case MESHLM_OP_BIAS: bias(r, s, n); break;
    case MESHLM_OP_ROPE_KV: rope_kv(r, s, n); break;
    case MESHLM_OP_ATTENTION: attention(r, s, n); break;
    case MESHLM_OP_ALL_REDUCE: return all_reduce(r, s);
    case MESHLM_OP_GATHER_CONCAT: return gather(r, s, n, false);
    case MESHLM_OP_GATHER_ADD: return gather(r, s, n, true);
    case MESHLM_OP_ADD: rows_step(r, s, n); break;
    case MESHLM_OP_SILU_MUL:
        meshlm_silu_mul(r->buf[MESHLM_BUF_GATE], r->buf[MESHLM_BUF_UP], (int64_t)n * r->p->width[MESHLM_BUF_GATE]);
        break;
    case MESHLM_OP_GELU_MUL:
        meshlm_gelu_mul(r->buf[MESHLM_BUF_GATE], r->buf[MESHLM_BUF_UP], (int64_t)n * r->p->width[MESHLM_BUF_GATE]);
        break;
    case MESHLM_OP_MATMUL_W13: matmul_w13(r, s, n); break;
    case MESHLM_OP_RS_SILU_AG: return rs_silu_ag(r, s, n);
    case MESHLM_OP_MATMUL_W13_RS: return matmul_w13_rs(r, s, n);
    case MESHLM_OP_QKV_RS: return qkv_rs(r, s, n);
    case MESHLM_OP_GATHER_HEADS: return gather_heads(r, s, n);
    case MESHLM_OP_OUT_ROWS: out_rows(r, s); break;
    case MESHLM_OP_LM_HEAD: matmul(r, s, r->st->n_out); break;
    case MESHLM_OP_MOE:
    case MESHLM_OP_MOE_A2A: return moe(r, s, n);
    case MESHLM_OP_SCALE_ROWS:
        for (int t = 0; t < n; t++)
            for (int64_t i = 0; i < e; i++) r->buf[s->out][(size_t)t * (size_t)e + (size_t)i] *= r->buf[s->in][t];
        break;
    case MESHLM_OP_SOFTCAP:
        meshlm_softcap(r->buf[MESHLM_BUF_LOGITS], (int64_t)r->st->n_out * r->p->width[MESHLM_BUF_LOGITS],
                       hp->final_softcap);
        break;
    default: return meshlm_fail(MESHLM_ERR_INTERNAL, "plan step with unknown op %d", (int)s->op);
    }
    return MESHLM_OK;
}

int meshlm_exec_step(meshlm_exec *x, const meshlm_plan *p, const meshlm_step *st, float *logits) {
    if (st->n > p->max_tok)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "plan %s: %d rows, at most %d", meshlm_mode_name(p->mode), st->n,
                           p->max_tok);
    run r = {.x = x, .p = p, .st = st};
    float *arena = x->arena;
    if (!arena) {
        arena = malloc((meshlm_plan_arena_floats(p, st->n) + 1) * sizeof(float));
        if (!arena)
            return meshlm_fail(MESHLM_ERR_NOMEM, "plan %s: out of memory for %d rows", meshlm_mode_name(p->mode), st->n);
        x->n_alloc++;
    }
    float *at = arena;
    for (int b = 0; b < MESHLM_BUF_COUNT; b++) {
        r.buf[b] = at;
        at += (size_t)p->width[b] * (size_t)st->n;
    }
    r.buf[MESHLM_BUF_LOGITS] = logits;
    const size_t hd = (size_t)x->m->hp.head_dim;
    const int n_ropes = !x->rope ? 0 : x->m->hp.rope_theta_swa > 0 ? 2 : 1;
    for (int t = 0; t < st->n; t++) {
        x->rows[t] = (meshlm_attn_row){st->seqs[t], st->pos[t]};
        /* Once per row here, not per layer and head in the fused pass's head order; the
         * windowed layers' rope only where the model has one. */
        for (int k = 0; k < n_ropes; k++)
            meshlm_rope_angles(&x->rope[k], st->pos[t], x->angles + (2 * (size_t)t + k) * hd);
    }
    int rc = MESHLM_OK;
    bool want_logits = st->n_out > 0;
    for (int32_t i = 0; i < p->n_steps && !rc; i++) {
        const meshlm_plan_step *s = &p->steps[i];
        if (!want_logits && (s->op == MESHLM_OP_OUT_ROWS || s->op == MESHLM_OP_LM_HEAD || s->out == MESHLM_BUF_LOGITS))
            break;
        if (x->stream && s->region >= 0)
            meshlm_prefetch_at(x->stream, x->stream_pass * (uint32_t)p->n_regions + (uint32_t)s->region);
        rc = run_step(&r, s);
    }
    if (x->stream) x->stream_pass++;
    if (arena != x->arena) free(arena);
    return rc;
}
