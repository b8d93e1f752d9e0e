#include "model/plan.h"

#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "core/quant.h"
#include "core/status.h"

static const char *const OP_NAMES[MESHLM_OP_COUNT] = {
    "embed", "rmsnorm", "matmul", "matmul_qkv", "qkv_rope_kv", "bias", "rope_kv", "attention", "all_reduce",
    "gather_concat", "gather_add", "add", "silu_mul", "gelu_mul", "matmul_w13", "rs_silu_ag", "matmul_w13_rs", "qkv_rs",
    "gather_heads", "out_rows", "lm_head", "softcap", "moe", "scale_rows", "moe_a2a"};
static const char *const BUF_NAMES[MESHLM_BUF_COUNT + 1] = {
    "x", "xn", "xs", "q", "k", "v", "att", "ys", "gather", "gate", "up", "rs", "last", "qkv", "qkvs", "attf",
    "moe", "router", "ein", "egu", "ey", "shgate", "a2a", "logits"};

const char *meshlm_op_name(meshlm_op op) { return op >= 0 && op < MESHLM_OP_COUNT ? OP_NAMES[op] : "?"; }
const char *meshlm_mode_name(meshlm_mode mode) { return mode == MESHLM_MODE_DECODE ? "decode" : "prefill"; }

static int64_t len(meshlm_range r) { return r.hi - r.lo; }

/* The steps are built once, so a growing array is fine here (never in the forward). */
static int emit(meshlm_plan *p, meshlm_plan_step s) {
    if (p->n_steps == p->cap) {
        int32_t cap = p->cap ? 2 * p->cap : 64;
        meshlm_plan_step *n = realloc(p->steps, (size_t)cap * sizeof *n);
        if (!n) return meshlm_fail(MESHLM_ERR_NOMEM, "plan: out of memory for %d steps", cap);
        p->steps = n;
        p->cap = cap;
    }
    for (int i = 0; i < 3; i++)
        if (s.w[i]) s.weight_bytes += (uint64_t)s.w[i]->n_out * s.w[i]->row_bytes;
    s.region = -1;
    if (s.w[0]) {
        s.region = p->n_regions;
        for (int i = 0; i < 3; i++) p->n_regions += s.w[i] != NULL;
    }
    p->weight_bytes += s.weight_bytes;
    p->steps[p->n_steps++] = s;
    return MESHLM_OK;
}

#define STEP(L, ...) ((meshlm_plan_step){.layer = (L), __VA_ARGS__})

static int all_reduce(meshlm_plan *p, int axis, int n_dev, int layer, int buf, int n_buf) {
    if (n_dev == 1) return MESHLM_OK;
    return emit(p, STEP(layer, .op = MESHLM_OP_ALL_REDUCE, .in = buf, .out = buf, .n_buf = n_buf,
                        .axis = axis));
}

/* A row-parallel matrix (WO, W2) and what follows it: the partial sums reduced over A, the
 * slices of B assembled, post_norm (if any) applied to the whole rows, each row scaled by
 * its shared-expert gate when gated, the residual added. */
static int row_parallel(meshlm_plan *p, const meshlm_matrix *w, int in, int layer, const float *post_norm,
                        bool gated) {
    int rc, out = p->n_b == 1 ? MESHLM_BUF_XN : MESHLM_BUF_YS;
    meshlm_range k = {0, w->n_in};
    if ((rc = emit(p, STEP(layer, .op = MESHLM_OP_MATMUL, .in = in, .out = out, .w = {w}, .k = {k}))) ||
        (rc = all_reduce(p, p->axis_a, p->n_a, layer, out, 1)))
        return rc;
    /* The post-norm needs the whole row, so it cannot fold into the gather's add. */
    if (p->n_b > 1 && p->opts.fuse_ag && !post_norm && !gated)
        return emit(p, STEP(layer, .op = MESHLM_OP_GATHER_ADD, .in = out, .out = MESHLM_BUF_X,
                            .axis = p->axis_b));
    if (p->n_b > 1 && (rc = emit(p, STEP(layer, .op = MESHLM_OP_GATHER_CONCAT, .in = out,
                                         .out = MESHLM_BUF_XN, .axis = p->axis_b))))
        return rc;
    if (post_norm && (rc = emit(p, STEP(layer, .op = MESHLM_OP_RMSNORM, .in = MESHLM_BUF_XN, .out = MESHLM_BUF_XN,
                                        .vec = {post_norm}))))
        return rc;
    if (gated && (rc = emit(p, STEP(layer, .op = MESHLM_OP_SCALE_ROWS, .in = MESHLM_BUF_SHGATE, .out = MESHLM_BUF_XN))))
        return rc;
    return emit(p, STEP(layer, .op = MESHLM_OP_ADD, .in = MESHLM_BUF_XN, .out = MESHLM_BUF_X));
}

static bool same_act(const meshlm_matrix *a, const meshlm_matrix *b) {
    return meshlm_act_block(a->type) == meshlm_act_block(b->type);
}

/* The output projection's bias, whole on every device: added to the residual once the
 * projection's sums are complete. */
static int out_bias(meshlm_plan *p, const meshlm_layer *L, int il) {
    if (!L->bo) return MESHLM_OK;
    return emit(p, STEP(il, .op = MESHLM_OP_BIAS, .in = MESHLM_BUF_X, .out = MESHLM_BUF_X, .vec = {L->bo}));
}

static int attention(meshlm_plan *p, const meshlm_model *m, const meshlm_shard *sh, int il) {
    const meshlm_layer *L = &m->layers[il];
    const meshlm_shard_layer *S = &sh->layers[il];
    bool heads = len(sh->att_heads) > 0;
    int rc = emit(p, STEP(il, .op = MESHLM_OP_RMSNORM, .in = MESHLM_BUF_X, .out = MESHLM_BUF_XN,
                          .vec = {L->attn_norm}));
    if (!rc && sh->split_att) {
        /* Each B rank keeps its heads: reduce-scatter in, attention on its share, heads gathered. */
        rc = emit(p, STEP(il, .op = MESHLM_OP_QKV_RS, .in = MESHLM_BUF_XN, .out = MESHLM_BUF_Q, .w = {&S->wqkv},
                          .k = {S->kq}, .vec = {S->bqkv}, .axis = p->axis_b, .pipelined = p->opts.fuse_rs));
        if (!rc && heads)
            rc = emit(p, STEP(il, .op = MESHLM_OP_ROPE_KV, .in = MESHLM_BUF_Q, .out = MESHLM_BUF_K));
        if (!rc && heads)
            rc = emit(p, STEP(il, .op = MESHLM_OP_ATTENTION, .in = MESHLM_BUF_Q, .out = MESHLM_BUF_ATT));
        if (!rc)
            rc = emit(p, STEP(il, .op = MESHLM_OP_GATHER_HEADS, .in = MESHLM_BUF_ATT, .out = MESHLM_BUF_ATTF,
                              .axis = p->axis_b));
        if (!rc) rc = row_parallel(p, &S->wo, MESHLM_BUF_ATTF, il, L->attn_post_norm, false);
        return rc ? rc : out_bias(p, L, il);
    }
    meshlm_plan_step qkv = STEP(il, .in = MESHLM_BUF_XN, .out = MESHLM_BUF_Q, .w = {&S->wq, &S->wk, &S->wv},
                                .k = {S->kq, S->kk, S->kv}, .vec = {S->bq, S->bk, S->bv});
    /* Fusing the head work into the matmul needs whole sums (no reduce over B) and one
     * activation format; fusing the three matmuls needs their columns to agree. */
    bool one_input = S->kq.lo == S->kk.lo && S->kq.hi == S->kk.hi && S->kq.lo == S->kv.lo && S->kq.hi == S->kv.hi;
    if (!rc && p->opts.fuse_qkv && p->n_b == 1 && heads && same_act(&S->wq, &S->wk) && same_act(&S->wq, &S->wv)) {
        qkv.op = MESHLM_OP_QKV_ROPE;
        rc = emit(p, qkv);
    } else if (!rc) {
        if (p->opts.fuse_qkv && one_input) {
            qkv.op = MESHLM_OP_MATMUL_QKV;
            rc = emit(p, qkv);
            if (!rc) rc = all_reduce(p, p->axis_b, p->n_b, il, MESHLM_BUF_Q, 3);
        } else {
            for (int i = 0; i < 3 && !rc; i++)
                rc = emit(p, STEP(il, .op = MESHLM_OP_MATMUL, .in = MESHLM_BUF_XN,
                                  .out = MESHLM_BUF_Q + i, .w = {qkv.w[i]}, .k = {qkv.k[i]}));
            for (int i = 0; i < 3 && !rc; i++) rc = all_reduce(p, p->axis_b, p->n_b, il, MESHLM_BUF_Q + i, 1);
        }
        if (!rc && (S->bq || S->bk || S->bv))
            rc = emit(p, STEP(il, .op = MESHLM_OP_BIAS, .in = MESHLM_BUF_Q, .out = MESHLM_BUF_Q,
                              .vec = {S->bq, S->bk, S->bv}));
        if (!rc && heads)
            rc = emit(p, STEP(il, .op = MESHLM_OP_ROPE_KV, .in = MESHLM_BUF_Q, .out = MESHLM_BUF_K));
    }
    if (!rc && heads)
        rc = emit(p, STEP(il, .op = MESHLM_OP_ATTENTION, .in = MESHLM_BUF_Q, .out = MESHLM_BUF_ATT));
    if (!rc) rc = row_parallel(p, &S->wo, MESHLM_BUF_ATT, il, L->attn_post_norm, false);
    return rc ? rc : out_bias(p, L, il);
}

/* Expert-parallel over a mesh whose devices lie along one axis: the experts' outputs go to
 * their rows by an all-to-all (the sums then come out as one device's). On a 2-D mesh the
 * experts span both axes, which no one collective covers: partial sums are all-reduced. */
static bool moe_a2a(const meshlm_plan *p) {
    return p->opts.expert_parallel && p->n_a * p->n_b > 1 && (p->n_a == 1 || p->n_b == 1);
}

/* A mixture-of-experts FFN: one step runs this device's experts for the rows that chose
 * them, and the partial sums meet over both axes before the residual add. Its bytes are
 * those one token reads: the router and as many of this device's experts as a token uses. */
static int moe(meshlm_plan *p, const meshlm_model *m, const meshlm_shard *sh, int il) {
    const meshlm_shard_layer *S = &sh->layers[il];
    bool a2a = moe_a2a(p);
    int rc = emit(p, STEP(il, .op = a2a ? MESHLM_OP_MOE_A2A : MESHLM_OP_MOE, .in = MESHLM_BUF_XN,
                          .out = MESHLM_BUF_MOE, .w = {&m->layers[il].router}, .vec = {m->layers[il].shexp_gate},
                          .axis = p->n_a == 1 ? p->axis_b : p->axis_a));
    if (rc) return rc;
    int64_t n_local = len(sh->experts), used = m->hp.n_expert_used < n_local ? m->hp.n_expert_used : n_local;
    uint64_t per = n_local ? (uint64_t)S->eg[0].n_out * S->eg[0].row_bytes + (uint64_t)S->eu[0].n_out * S->eu[0].row_bytes +
                                 (uint64_t)S->ed[0].n_out * S->ed[0].row_bytes
                           : 0;
    p->steps[p->n_steps - 1].weight_bytes += (uint64_t)used * per;
    p->weight_bytes += (uint64_t)used * per;
    if (!a2a && ((rc = all_reduce(p, p->axis_a, p->n_a, il, MESHLM_BUF_MOE, 1)) ||
                 (rc = all_reduce(p, p->axis_b, p->n_b, il, MESHLM_BUF_MOE, 1))))
        return rc;
    return emit(p, STEP(il, .op = MESHLM_OP_ADD, .in = MESHLM_BUF_MOE, .out = MESHLM_BUF_X));
}

/* The dense FFN from XN (or a mixture's shared expert, gated), added into X. */
static int dense(meshlm_plan *p, const meshlm_model *m, const meshlm_shard *sh, int il, bool gated) {
    const meshlm_shard_layer *S = &sh->layers[il];
    const float *post = m->layers[il].ffn_post_norm;
    int rc = MESHLM_OK;
    bool whole = p->n_b == 1, one_input = S->k1.lo == S->k3.lo && S->k1.hi == S->k3.hi;
    /* The matmul's epilogue applies silu only; GeGLU takes its own step after it. */
    bool silu = m->hp.ffn_act == MESHLM_ACT_SILU;
    if (p->opts.fuse_w13 && p->opts.fuse_rs && one_input && !whole) {
        rc = emit(p, STEP(il, .op = MESHLM_OP_MATMUL_W13_RS, .in = MESHLM_BUF_XN, .out = MESHLM_BUF_GATE,
                          .w = {&S->w1, &S->w3}, .k = {S->k1, S->k3}, .axis = p->axis_b));
        return rc ? rc : row_parallel(p, &S->w2, MESHLM_BUF_GATE, il, post, gated);
    }
    if (p->opts.fuse_w13 && one_input) {
        rc = emit(p, STEP(il, .op = MESHLM_OP_MATMUL_W13, .in = MESHLM_BUF_XN, .out = MESHLM_BUF_GATE,
                          .w = {&S->w1, &S->w3}, .k = {S->k1, S->k3}, .epilogue = whole && silu));
        if (!rc && !whole && !p->opts.fuse_rs) rc = all_reduce(p, p->axis_b, p->n_b, il, MESHLM_BUF_GATE, 2);
    } else {
        rc = emit(p, STEP(il, .op = MESHLM_OP_MATMUL, .in = MESHLM_BUF_XN, .out = MESHLM_BUF_GATE,
                          .w = {&S->w1}, .k = {S->k1}));
        if (!rc)
            rc = emit(p, STEP(il, .op = MESHLM_OP_MATMUL, .in = MESHLM_BUF_XN, .out = MESHLM_BUF_UP,
                              .w = {&S->w3}, .k = {S->k3}));
        if (!rc && !whole && !p->opts.fuse_rs) {
            rc = all_reduce(p, p->axis_b, p->n_b, il, MESHLM_BUF_GATE, 1);
            if (!rc) rc = all_reduce(p, p->axis_b, p->n_b, il, MESHLM_BUF_UP, 1);
        }
    }
    bool fused_epilogue = p->opts.fuse_w13 && one_input && whole && silu;
    if (!rc && !whole && p->opts.fuse_rs)
        rc = emit(p, STEP(il, .op = MESHLM_OP_RS_SILU_AG, .in = MESHLM_BUF_GATE, .out = MESHLM_BUF_GATE,
                          .axis = p->axis_b));
    else if (!rc && !fused_epilogue)
        rc = emit(p, STEP(il, .op = silu ? MESHLM_OP_SILU_MUL : MESHLM_OP_GELU_MUL, .in = MESHLM_BUF_UP,
                          .out = MESHLM_BUF_GATE));
    return rc ? rc : row_parallel(p, &S->w2, MESHLM_BUF_GATE, il, post, gated);
}

static int mlp(meshlm_plan *p, const meshlm_model *m, const meshlm_shard *sh, int il) {
    int rc = emit(p, STEP(il, .op = MESHLM_OP_RMSNORM, .in = MESHLM_BUF_X, .out = MESHLM_BUF_XN,
                          .vec = {m->layers[il].ffn_norm}));
    if (rc || !m->hp.n_expert) return rc ? rc : dense(p, m, sh, il, false);
    /* The experts' sum goes into X first: the shared expert reads XN, which it leaves alone. */
    rc = moe(p, m, sh, il);
    return rc || !m->hp.shared_expert ? rc : dense(p, m, sh, il, true);
}

static void widths(meshlm_plan *p, const meshlm_model *m, const meshlm_shard *sh) {
    const meshlm_hparams *hp = &m->hp;
    int64_t e = hp->n_embd, ff = len(sh->ffn), q = len(sh->att_heads) * hp->head_dim;
    int64_t kv = len(sh->att_kv) * hp->head_dim;
    bool split_b = p->n_b > 1;
    int64_t *w = p->width;
    w[MESHLM_BUF_X] = w[MESHLM_BUF_XN] = w[MESHLM_BUF_LAST] = e;
    w[MESHLM_BUF_XS] = split_b ? e : 0;
    w[MESHLM_BUF_Q] = w[MESHLM_BUF_ATT] = q;
    w[MESHLM_BUF_K] = w[MESHLM_BUF_V] = kv;
    w[MESHLM_BUF_YS] = split_b ? len(sh->e) : 0;
    w[MESHLM_BUF_GATHER] = split_b ? e : 0;
    w[MESHLM_BUF_GATE] = w[MESHLM_BUF_UP] = ff;
    /* A chunk of n * ff floats over n_b ranks is at most n * ff / n_b + 1 (mesh.h): per row
     * that is bounded by ff / n_b + 1, for the gate chunk and the up chunk. */
    w[MESHLM_BUF_RS] = split_b && p->opts.fuse_rs ? 2 * (ff / p->n_b + 1) : 0;
    w[MESHLM_BUF_LOGITS] = len(sh->vocab);
    if (hp->n_expert) {
        if (!hp->shared_expert) w[MESHLM_BUF_GATE] = w[MESHLM_BUF_UP] = w[MESHLM_BUF_RS] = 0;
        w[MESHLM_BUF_SHGATE] = hp->shared_expert ? 1 : 0;
        /* A row's input, gate and up, and output, once for each expert it chose. */
        w[MESHLM_BUF_MOE] = e;
        w[MESHLM_BUF_EIN] = w[MESHLM_BUF_EY] = e * hp->n_expert_used;
        w[MESHLM_BUF_ROUTER] = hp->n_expert;
        w[MESHLM_BUF_EGU] = 2 * len(sh->exp_ff) * hp->n_expert_used;
        w[MESHLM_BUF_A2A] = moe_a2a(p) ? e * hp->n_expert_used : 0;
    }
    if (sh->split_att) {
        w[MESHLM_BUF_QKV] = sh->qkv_bounds[p->n_b];
        w[MESHLM_BUF_QKVS] = sh->qkv_bounds[sh->b + 1] - sh->qkv_bounds[sh->b];
        w[MESHLM_BUF_ATTF] = len(sh->heads) * hp->head_dim;
    }
}

int meshlm_plan_build(const meshlm_model *m, const meshlm_shard *sh, meshlm_mode mode, int32_t max_tok,
                      const meshlm_opts *o, meshlm_plan *p) {
    memset(p, 0, sizeof *p);
    if (max_tok < 1) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "plan: %d rows per step", max_tok);
    p->mode = mode;
    p->max_tok = max_tok;
    p->opts = *o;
    p->axis_a = sh->axis_a, p->axis_b = sh->axis_b, p->n_a = sh->n_a, p->n_b = sh->n_b;
    /* Decode streams each weight row once past all of the step's tokens; prefill blocks
     * rows and tokens to stay in L2. Either way the same values come out. */
    p->mm = meshlm_matmul_cfg_default();
    if (mode == MESHLM_MODE_DECODE) p->mm.row_block_bytes = 64 << 10, p->mm.tok_block_bytes = 1 << 20;
    p->mm.f32_act = o->f32_act;
    widths(p, m, sh);
    /* The embedding reads one row per token, not the table: it is no weight region. */
    int rc = emit(p, STEP(-1, .op = MESHLM_OP_EMBED, .out = MESHLM_BUF_X));
    if (!rc) rc = all_reduce(p, p->axis_a, p->n_a, -1, MESHLM_BUF_X, 1);
    for (int il = 0; il < m->hp.n_layer && !rc; il++) {
        rc = attention(p, m, sh, il);
        if (!rc) rc = mlp(p, m, sh, il);
    }
    if (!rc)
        rc = emit(p, STEP(-1, .op = MESHLM_OP_OUT_ROWS, .in = MESHLM_BUF_X, .out = MESHLM_BUF_LAST,
                          .vec = {m->output_norm}));
    if (!rc)
        rc = emit(p, STEP(-1, .op = MESHLM_OP_LM_HEAD, .in = MESHLM_BUF_LAST, .out = MESHLM_BUF_LOGITS,
                          .w = {&sh->lm_head}, .k = {sh->k_lm}));
    if (!rc) rc = all_reduce(p, p->axis_b, p->n_b, -1, MESHLM_BUF_LOGITS, 1);
    if (!rc && m->hp.final_softcap > 0)
        rc = emit(p, STEP(-1, .op = MESHLM_OP_SOFTCAP, .in = MESHLM_BUF_LOGITS, .out = MESHLM_BUF_LOGITS));
    if (rc) meshlm_plan_free(p);
    return rc;
}

int meshlm_plan_shard(const meshlm_model *m, int axis_a, int n_a, int n_b, int a, int b, const meshlm_opts *o,
                      meshlm_shard *s) {
    int rc = meshlm_shard_build(m, axis_a, n_a, n_b, a, b, s);
    if (!rc && o->fuse_ag && n_b > 1 && meshlm_shard_split_attention(m, s) == MESHLM_ERR_NOMEM) rc = MESHLM_ERR_NOMEM;
    if (!rc) rc = meshlm_shard_experts(m, s, o->expert_parallel);
    if (!rc && meshlm_opts_panels(o)) rc = meshlm_shard_panels(m, s);
    if (rc && s->layers) meshlm_shard_free(s);
    return rc;
}

void meshlm_plan_free(meshlm_plan *p) {
    free(p->steps);
    memset(p, 0, sizeof *p);
}

size_t meshlm_plan_arena_floats(const meshlm_plan *p, int32_t n) {
    size_t sum = 0;
    for (int b = 0; b < MESHLM_BUF_COUNT; b++) sum += (size_t)p->width[b];
    return sum * (size_t)n;
}

int meshlm_plan_regions(const meshlm_plan *p, const void **data, size_t *bytes, int32_t cap) {
    int32_t n = 0;
    for (int32_t i = 0; i < p->n_steps; i++)
        for (int j = 0; j < 3 && p->steps[i].w[j]; j++) {
            if (n == cap) return meshlm_fail(MESHLM_ERR_RANGE, "plan: more than %d weight regions", cap);
            const meshlm_matrix *w = p->steps[i].w[j];
            data[n] = w->data;
            bytes[n++] = (size_t)w->n_out * w->row_bytes;
        }
    return MESHLM_OK;
}

/* "2048x8192 Q8_0" for the matrices of a step, "" for none. */
static void shapes(const meshlm_plan_step *s, char *buf, size_t size) {
    buf[0] = 0;
    size_t used = 0;
    for (int i = 0; i < 3 && s->w[i] && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%lldx%lld %s%s", i ? " + " : "",
                                 (long long)len(s->k[i]), (long long)s->w[i]->n_out, meshlm_type_name(s->w[i]->type),
                                 s->w[i]->panels ? "/p16" : "");
}

void meshlm_plan_print(const meshlm_plan *p, FILE *f) {
    char opts[512];
    meshlm_opts_describe(&p->opts, opts, sizeof opts);
    fprintf(f, "plan %s: %d steps, up to %d rows, mesh axes A=%d (%d devices) B=%d (%d devices), %.3f MB of "
               "weights per pass, %s activations, blocks of %zu KiB rows x %zu KiB tokens, %.2f MB of buffers\n",
            meshlm_mode_name(p->mode), p->n_steps, p->max_tok, p->axis_a, p->n_a, p->axis_b, p->n_b,
            (double)p->weight_bytes / 1e6, p->mm.f32_act ? "f32" : "int8", p->mm.row_block_bytes >> 10,
            p->mm.tok_block_bytes >> 10, (double)meshlm_plan_arena_floats(p, p->max_tok) * sizeof(float) / 1e6);
    fprintf(f, "options: %s\n", opts);
    fprintf(f, "%5s  %-13s %5s  %-7s %-7s %-44s %12s\n", "step", "op", "layer", "in", "out", "weights (in x out type)",
            "bytes");
    for (int32_t i = 0; i < p->n_steps; i++) {
        const meshlm_plan_step *s = &p->steps[i];
        char w[160], layer[16] = "-", in[16], out[16];
        shapes(s, w, sizeof w);
        if (s->layer >= 0) snprintf(layer, sizeof layer, "%d", s->layer);
        snprintf(in, sizeof in, "%s", s->op == MESHLM_OP_EMBED ? "tokens" : BUF_NAMES[s->in]);
        snprintf(out, sizeof out, "%s", BUF_NAMES[s->out]);
        if (s->op == MESHLM_OP_ALL_REDUCE || s->op == MESHLM_OP_GATHER_CONCAT || s->op == MESHLM_OP_GATHER_ADD ||
            s->op == MESHLM_OP_RS_SILU_AG || s->op == MESHLM_OP_GATHER_HEADS)
            snprintf(w, sizeof w, "over axis %d", s->axis);
        if (s->n_buf > 1) snprintf(out, sizeof out, "%s+%d", BUF_NAMES[s->in], s->n_buf - 1);
        fprintf(f, "%5d  %-13s %5s  %-7s %-7s %-44s %12llu\n", i, meshlm_op_name(s->op), layer, in, out, w,
                (unsigned long long)s->weight_bytes);
    }
}
