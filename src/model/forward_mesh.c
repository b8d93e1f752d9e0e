#include "model/forward_mesh.h"

#include <stdlib.h>
#include <string.h>

#include "core/status.h"

static int64_t len(meshlm_range r) { return r.hi - r.lo; }

/* A device may hold an empty slice; malloc(0) may return NULL, so every buffer gets at
 * least one float. */
static float *floats(size_t n) { return malloc((n ? n : 1) * sizeof(float)); }

int meshlm_mesh_fwd_init(meshlm_mesh_fwd *f, const meshlm_model *m, int rows, int cols, const meshlm_device *dev,
                         int32_t max_tok, int32_t n_ctx, int32_t n_threads, int kv_type, int32_t page_size,
                         int32_t kv_pages) {
    const meshlm_hparams *hp = &m->hp;
    memset(f, 0, sizeof *f);
    int axis_a = meshlm_shard_axis_a(rows, cols);
    int n_a = axis_a == 0 ? rows : cols, n_b = axis_a == 0 ? cols : rows;
    int rc = meshlm_shard_build(m, axis_a, n_a, n_b, meshlm_mesh_rank(dev, axis_a), meshlm_mesh_rank(dev, 1 - axis_a),
                                &f->sh);
    if (rc) return rc;
    f->max_tok = max_tok;
    f->n_ctx = n_ctx;
    size_t t = (size_t)max_tok, e = (size_t)hp->n_embd, hd = (size_t)hp->head_dim;
    size_t q = (size_t)len(f->sh.heads) * hd, kvd = (size_t)len(f->sh.kv_heads) * hd, ff = (size_t)len(f->sh.ffn);
    f->x = floats(t * e), f->xn = floats(t * e), f->xs = floats(t * e), f->q = floats(t * q);
    f->k = floats(t * kvd), f->v = floats(t * kvd), f->att = floats(t * q), f->ys = floats(t * e);
    f->gather = floats(t * e), f->gate = floats(t * ff), f->up = floats(t * ff);
    f->attn_scratch = floats(meshlm_attention_scratch_floats(n_threads, n_ctx, hp->head_dim));
    f->logits = floats(t * (size_t)len(f->sh.vocab));
    f->rows = malloc(t * sizeof *f->rows);
    f->counts = malloc((size_t)n_b * sizeof *f->counts);
    f->e_all = malloc((size_t)n_b * sizeof *f->e_all);
    if (!f->x || !f->xn || !f->xs || !f->q || !f->k || !f->v || !f->att || !f->ys || !f->gather || !f->gate ||
        !f->up || !f->attn_scratch || !f->logits || !f->rows || !f->counts || !f->e_all) {
        meshlm_mesh_fwd_free(f);
        return meshlm_fail(MESHLM_ERR_NOMEM, "device %d: out of memory for activation buffers", dev->id);
    }
    for (int i = 0; i < n_b; i++) f->e_all[i] = meshlm_shard_split(hp->n_embd, 1, n_b, i);
    /* A device without KV heads still keeps a one-head pool, so that reservations (and
     * their page ids) stay in step across the mesh. */
    int32_t kv_heads = len(f->sh.kv_heads) ? (int32_t)len(f->sh.kv_heads) : 1;
    meshlm_kv_params kp = meshlm_kv_params_for(m, kv_heads, kv_type, page_size, 0);
    kp.mem_bytes = meshlm_kv_page_bytes(&kp) * (size_t)kv_pages;
    if ((rc = meshlm_kv_pool_create(&kp, &f->kv)) || (rc = meshlm_kv_seq_init(&f->seq, n_ctx, f->kv)) ||
        (rc = meshlm_rope_init(&f->rope, hp->head_dim, hp->n_rot, hp->rope_neox, hp->rope_theta, m->rope_freqs)) ||
        (rc = meshlm_pool_create(n_threads, &f->pool)) || (rc = meshlm_forward_reserve(f->pool, m, max_tok))) {
        meshlm_mesh_fwd_free(f);
        return rc;
    }
    return MESHLM_OK;
}

void meshlm_mesh_fwd_free(meshlm_mesh_fwd *f) {
    meshlm_shard_free(&f->sh);
    meshlm_kv_seq_free(&f->seq);
    meshlm_kv_pool_free(f->kv);
    meshlm_pool_free(f->pool);
    free(f->x), free(f->xn), free(f->xs), free(f->q), free(f->k), free(f->v), free(f->att), free(f->ys);
    free(f->gather), free(f->gate), free(f->up), free(f->attn_scratch), free(f->logits), free(f->rows);
    free(f->counts), free(f->e_all);
    memset(f, 0, sizeof *f);
}

/* y = w . x[:, k) for n_tok rows of x (width e): copies the column slice when it is not
 * the whole row; an empty slice contributes zeros. */
static void matmul_k(meshlm_mesh_fwd *f, const meshlm_matrix *w, meshlm_range k, const float *x, int64_t e,
                     int n_tok, float *y) {
    if (w->n_out == 0) return;
    if (len(k) == 0) {
        memset(y, 0, (size_t)n_tok * (size_t)w->n_out * sizeof(float));
        return;
    }
    const float *in = x;
    if (len(k) != e) {
        for (int t = 0; t < n_tok; t++)
            memcpy(f->xs + (size_t)t * len(k), x + (size_t)t * e + k.lo, (size_t)len(k) * sizeof(float));
        in = f->xs;
    }
    meshlm_matmul(f->pool, w, in, n_tok, y);
}

/* Sums partial products over axis B (the split embedding width). */
static int reduce_b(meshlm_ccl *ccl, const meshlm_device *dev, const meshlm_mesh_fwd *f, float *buf, size_t n) {
    if (f->sh.n_b == 1 || n == 0) return MESHLM_OK;
    return meshlm_ccl_all_reduce(ccl, dev, f->sh.axis_b, buf, n);
}

/* Row-parallel output (WO, W2): partial sums of this device's output-width slice are
 * reduced over A, then the slices of axis B are gathered back into full rows of y. */
static int row_parallel_out(meshlm_mesh_fwd *f, meshlm_ccl *ccl, const meshlm_device *dev, int n_tok, int64_t e,
                            float *y) {
    const meshlm_shard *s = &f->sh;
    size_t width = (size_t)len(s->e);
    int rc = MESHLM_OK;
    if (s->n_a > 1 && width) rc = meshlm_ccl_all_reduce(ccl, dev, s->axis_a, f->ys, (size_t)n_tok * width);
    if (rc) return rc;
    if (s->n_b == 1) {
        memcpy(y, f->ys, (size_t)n_tok * (size_t)e * sizeof(float));
        return MESHLM_OK;
    }
    for (int i = 0; i < s->n_b; i++) f->counts[i] = (size_t)n_tok * (size_t)len(f->e_all[i]);
    rc = meshlm_ccl_all_gather(ccl, dev, s->axis_b, f->ys, f->gather, (size_t)n_tok * (size_t)e, f->counts);
    if (rc) return rc;
    const float *src = f->gather;
    for (int i = 0; i < s->n_b; i++) {
        size_t w = (size_t)len(f->e_all[i]);
        for (int t = 0; t < n_tok; t++) memcpy(y + (size_t)t * e + f->e_all[i].lo, src + (size_t)t * w, w * sizeof(float));
        src += (size_t)n_tok * w;
    }
    return MESHLM_OK;
}

static void add_bias(float *y, const float *bias, int n_tok, int64_t dim) {
    if (!bias) return;
    for (int t = 0; t < n_tok; t++) meshlm_add(y + (size_t)t * dim, bias, dim);
}

static int attention_block(const meshlm_model *m, meshlm_mesh_fwd *f, meshlm_ccl *ccl, const meshlm_device *dev,
                           int il, const meshlm_step *st) {
    const meshlm_hparams *hp = &m->hp;
    const meshlm_layer *L = &m->layers[il];
    const meshlm_shard_layer *S = &f->sh.layers[il];
    int n_tok = st->n;
    int64_t e = hp->n_embd, hd = hp->head_dim;
    int n_q = (int)len(f->sh.heads), n_kv = (int)len(f->sh.kv_heads);
    size_t q_dim = (size_t)n_q * hd, kv_dim = (size_t)n_kv * hd;
    for (int t = 0; t < n_tok; t++) meshlm_rmsnorm(f->xn + t * e, f->x + t * e, L->attn_norm, e, hp->rms_eps);
    matmul_k(f, &S->wq, S->kq, f->xn, e, n_tok, f->q);
    matmul_k(f, &S->wk, S->kk, f->xn, e, n_tok, f->k);
    matmul_k(f, &S->wv, S->kv, f->xn, e, n_tok, f->v);
    int rc;
    if ((rc = reduce_b(ccl, dev, f, f->q, n_tok * q_dim)) || (rc = reduce_b(ccl, dev, f, f->k, n_tok * kv_dim)) ||
        (rc = reduce_b(ccl, dev, f, f->v, n_tok * kv_dim)))
        return rc;
    add_bias(f->q, S->bq, n_tok, (int64_t)q_dim);
    add_bias(f->k, S->bk, n_tok, (int64_t)kv_dim);
    add_bias(f->v, S->bv, n_tok, (int64_t)kv_dim);
    if (n_q) {
        for (int t = 0; t < n_tok; t++) {
            float *k = f->k + (size_t)t * kv_dim, *v = f->v + (size_t)t * kv_dim;
            meshlm_qk_rope(&f->rope, hp, f->q + (size_t)t * q_dim, L->q_norm, n_q, st->pos[t]);
            meshlm_qk_rope(&f->rope, hp, k, L->k_norm, n_kv, st->pos[t]);
            meshlm_kv_write(f->kv, st->seqs[t], il, st->pos[t], k, v);
        }
        meshlm_attention_args args = {
            .kv = f->kv, .layer = il, .rows = f->rows, .n_rows = n_tok, .q = f->q, .out = f->att,
            .n_heads = n_q, .head0 = (int)f->sh.heads.lo, .group = hp->n_head / hp->n_head_kv,
            .kv0 = (int)f->sh.kv_heads.lo, .head_dim = (int)hd, .q_dim = q_dim, .scratch = f->attn_scratch};
        meshlm_attention(f->pool, &args);
    }
    matmul_k(f, &S->wo, (meshlm_range){0, (int64_t)q_dim}, f->att, (int64_t)q_dim, n_tok, f->ys);
    if ((rc = row_parallel_out(f, ccl, dev, n_tok, e, f->xn))) return rc;
    meshlm_add(f->x, f->xn, (int64_t)n_tok * e);
    return MESHLM_OK;
}

static int mlp_block(const meshlm_model *m, meshlm_mesh_fwd *f, meshlm_ccl *ccl, const meshlm_device *dev, int il,
                     int n_tok) {
    const meshlm_hparams *hp = &m->hp;
    const meshlm_shard_layer *S = &f->sh.layers[il];
    int64_t e = hp->n_embd, ff = len(f->sh.ffn);
    for (int t = 0; t < n_tok; t++) meshlm_rmsnorm(f->xn + t * e, f->x + t * e, m->layers[il].ffn_norm, e, hp->rms_eps);
    matmul_k(f, &S->w1, S->k1, f->xn, e, n_tok, f->gate);
    matmul_k(f, &S->w3, S->k3, f->xn, e, n_tok, f->up);
    int rc;
    if ((rc = reduce_b(ccl, dev, f, f->gate, (size_t)n_tok * ff)) || (rc = reduce_b(ccl, dev, f, f->up, (size_t)n_tok * ff)))
        return rc;
    meshlm_silu_mul(f->gate, f->up, (int64_t)n_tok * ff);
    matmul_k(f, &S->w2, (meshlm_range){0, ff}, f->gate, ff, n_tok, f->ys);
    if ((rc = row_parallel_out(f, ccl, dev, n_tok, e, f->xn))) return rc;
    meshlm_add(f->x, f->xn, (int64_t)n_tok * e);
    return MESHLM_OK;
}

/* Embedding rows live with the device holding their vocab slice; the others contribute
 * zeros, so the all-reduce over A reproduces each row exactly. */
static int embed(const meshlm_model *m, meshlm_mesh_fwd *f, meshlm_ccl *ccl, const meshlm_device *dev,
                 const int32_t *tokens, int n_tok) {
    int64_t e = m->hp.n_embd;
    for (int t = 0; t < n_tok; t++) {
        float *row = f->x + (size_t)t * e;
        if (tokens[t] >= f->sh.vocab.lo && tokens[t] < f->sh.vocab.hi)
            meshlm_matrix_row(&f->sh.embd, tokens[t] - f->sh.vocab.lo, row);
        else
            memset(row, 0, (size_t)e * sizeof(float));
    }
    if (f->sh.n_a == 1) return MESHLM_OK;
    return meshlm_ccl_all_reduce(ccl, dev, f->sh.axis_a, f->x, (size_t)n_tok * (size_t)e);
}

int meshlm_mesh_forward_step(const meshlm_model *m, meshlm_mesh_fwd *f, meshlm_ccl *ccl, const meshlm_device *dev,
                             const meshlm_step *st) {
    int64_t e = m->hp.n_embd;
    for (int t = 0; t < st->n; t++) f->rows[t] = (meshlm_attn_row){st->seqs[t], st->pos[t]};
    int rc = embed(m, f, ccl, dev, st->tokens, st->n);
    for (int il = 0; il < m->hp.n_layer && !rc; il++) {
        rc = attention_block(m, f, ccl, dev, il, st);
        if (!rc) rc = mlp_block(m, f, ccl, dev, il, st->n);
    }
    if (rc || st->n_out == 0) return rc;
    for (int i = 0; i < st->n_out; i++)
        meshlm_rmsnorm(f->gather + (size_t)i * e, f->x + (size_t)st->out_rows[i] * e, m->output_norm, e,
                       m->hp.rms_eps);
    matmul_k(f, &f->sh.lm_head, f->sh.k_lm, f->gather, e, st->n_out, f->logits);
    return reduce_b(ccl, dev, f, f->logits, (size_t)st->n_out * (size_t)len(f->sh.vocab));
}

int meshlm_mesh_forward(const meshlm_model *m, meshlm_mesh_fwd *f, meshlm_ccl *ccl, const meshlm_device *dev,
                        const int32_t *tokens, int32_t n, int32_t pos) {
    int32_t pos_buf[64];
    meshlm_kv_seq *seqs[64];
    int32_t step = f->max_tok < 64 ? f->max_tok : 64;
    int rc = meshlm_kv_reserve(f->kv, &f->seq, pos + n);
    for (int32_t done = 0; done < n && !rc; done += step) {
        int32_t chunk = n - done < step ? n - done : step, last = chunk - 1;
        for (int32_t t = 0; t < chunk; t++) {
            pos_buf[t] = pos + done + t;
            seqs[t] = &f->seq;
        }
        meshlm_step st = {.n = chunk, .tokens = tokens + done, .pos = pos_buf, .seqs = seqs,
                          .n_out = done + chunk == n, .out_rows = &last};
        rc = meshlm_mesh_forward_step(m, f, ccl, dev, &st);
    }
    return rc;
}
