#include "model/forward.h"

#include <stdlib.h>
#include <string.h>

#include "core/status.h"

int meshlm_forward_buf_init(meshlm_forward_buf *b, const meshlm_model *m, int32_t max_tok, int32_t n_ctx,
                            int32_t n_threads) {
    const meshlm_hparams *hp = &m->hp;
    memset(b, 0, sizeof *b);
    b->max_tok = max_tok;
    b->n_ctx = n_ctx;
    b->n_threads = n_threads;
    size_t t = (size_t)max_tok, e = (size_t)hp->n_embd;
    size_t q = (size_t)hp->n_head * hp->head_dim, kv = (size_t)hp->n_head_kv * hp->head_dim;
    b->x = malloc(t * e * sizeof(float));
    b->xn = malloc(t * e * sizeof(float));
    b->q = malloc(t * q * sizeof(float));
    b->k = malloc(t * kv * sizeof(float));
    b->v = malloc(t * kv * sizeof(float));
    b->att = malloc(t * q * sizeof(float));
    b->gate = malloc(t * (size_t)hp->n_ff * sizeof(float));
    b->up = malloc(t * (size_t)hp->n_ff * sizeof(float));
    b->last = malloc(t * e * sizeof(float));
    b->attn_scratch = malloc(meshlm_attention_scratch_floats(n_threads, n_ctx, hp->head_dim) * sizeof(float));
    b->rows = malloc(t * sizeof *b->rows);
    b->pos = malloc(t * sizeof *b->pos);
    b->seqs = malloc(t * sizeof *b->seqs);
    if (!b->x || !b->xn || !b->q || !b->k || !b->v || !b->att || !b->gate || !b->up || !b->last ||
        !b->attn_scratch || !b->rows || !b->pos || !b->seqs) {
        meshlm_forward_buf_free(b);
        return meshlm_fail(MESHLM_ERR_NOMEM, "forward buffers: out of memory for %d tokens", max_tok);
    }
    return meshlm_rope_init(&b->rope, hp->head_dim, hp->n_rot, hp->rope_neox, hp->rope_theta, m->rope_freqs);
}

void meshlm_forward_buf_free(meshlm_forward_buf *b) {
    free(b->x), free(b->xn), free(b->q), free(b->k), free(b->v), free(b->att);
    free(b->gate), free(b->up), free(b->last), free(b->attn_scratch);
    free(b->rows), free(b->pos), free(b->seqs);
    memset(b, 0, sizeof *b);
}

int meshlm_forward_reserve(meshlm_pool *pool, const meshlm_model *m, int32_t max_tok) {
    const meshlm_hparams *hp = &m->hp;
    int64_t n_in = hp->n_embd;
    if (hp->n_ff > n_in) n_in = hp->n_ff;
    if ((int64_t)hp->n_head * hp->head_dim > n_in) n_in = (int64_t)hp->n_head * hp->head_dim;
    return meshlm_matmul_reserve(pool, max_tok, n_in);
}

meshlm_kv_params meshlm_kv_params_for(const meshlm_model *m, int32_t kv_heads, int type, int32_t page_size,
                                      size_t mem_bytes) {
    return (meshlm_kv_params){.n_layer = m->hp.n_layer, .kv_dim = kv_heads * m->hp.head_dim,
                              .head_dim = m->hp.head_dim, .page_size = page_size, .type = type,
                              .mem_bytes = mem_bytes};
}

static void add_bias(float *y, const float *bias, int n_tok, int dim) {
    if (!bias) return;
    for (int t = 0; t < n_tok; t++) meshlm_add(y + (size_t)t * dim, bias, dim);
}

void meshlm_qk_rope(const meshlm_rope *rope, const meshlm_hparams *hp, float *x, const float *norm, int n_heads,
                    int32_t pos) {
    int hd = hp->head_dim;
    if (norm)
        for (int h = 0; h < n_heads; h++) meshlm_rmsnorm(x + h * hd, x + h * hd, norm, hd, hp->rms_eps);
    meshlm_rope_apply(rope, x, n_heads, pos);
}

static void attention_block(const meshlm_model *m, meshlm_pool *pool, meshlm_kv_pool *kv, meshlm_forward_buf *b,
                            const meshlm_step *st, int il) {
    const meshlm_hparams *hp = &m->hp;
    const meshlm_layer *L = &m->layers[il];
    int n_tok = st->n, e = hp->n_embd, q_dim = hp->n_head * hp->head_dim, kv_dim = hp->n_head_kv * hp->head_dim;
    for (int t = 0; t < n_tok; t++)
        meshlm_rmsnorm(b->xn + (size_t)t * e, b->x + (size_t)t * e, L->attn_norm, e, hp->rms_eps);
    meshlm_matmul(pool, &L->wq, b->xn, n_tok, b->q);
    meshlm_matmul(pool, &L->wk, b->xn, n_tok, b->k);
    meshlm_matmul(pool, &L->wv, b->xn, n_tok, b->v);
    add_bias(b->q, L->bq, n_tok, q_dim);
    add_bias(b->k, L->bk, n_tok, kv_dim);
    add_bias(b->v, L->bv, n_tok, kv_dim);
    for (int t = 0; t < n_tok; t++) {
        float *k = b->k + (size_t)t * kv_dim, *v = b->v + (size_t)t * kv_dim;
        meshlm_qk_rope(&b->rope, hp, b->q + (size_t)t * q_dim, L->q_norm, hp->n_head, st->pos[t]);
        meshlm_qk_rope(&b->rope, hp, k, L->k_norm, hp->n_head_kv, st->pos[t]);
        meshlm_kv_write(kv, st->seqs[t], il, st->pos[t], k, v);
    }
    meshlm_attention_args args = {
        .kv = kv, .layer = il, .rows = b->rows, .n_rows = n_tok, .q = b->q, .out = b->att,
        .n_heads = hp->n_head, .head0 = 0, .group = hp->n_head / hp->n_head_kv, .kv0 = 0,
        .head_dim = hp->head_dim, .q_dim = (size_t)q_dim, .scratch = b->attn_scratch};
    meshlm_attention(pool, &args);
    meshlm_matmul(pool, &L->wo, b->att, n_tok, b->xn);
    meshlm_add(b->x, b->xn, (int64_t)n_tok * e);
}

static void mlp_block(const meshlm_model *m, meshlm_pool *pool, meshlm_forward_buf *b, int il, int n_tok) {
    const meshlm_hparams *hp = &m->hp;
    const meshlm_layer *L = &m->layers[il];
    int e = hp->n_embd;
    for (int t = 0; t < n_tok; t++)
        meshlm_rmsnorm(b->xn + (size_t)t * e, b->x + (size_t)t * e, L->ffn_norm, e, hp->rms_eps);
    meshlm_matmul(pool, &L->w1, b->xn, n_tok, b->gate);
    meshlm_matmul(pool, &L->w3, b->xn, n_tok, b->up);
    meshlm_silu_mul(b->gate, b->up, (int64_t)n_tok * hp->n_ff);
    meshlm_matmul(pool, &L->w2, b->gate, n_tok, b->xn);
    meshlm_add(b->x, b->xn, (int64_t)n_tok * e);
}

int meshlm_forward_step(const meshlm_model *m, meshlm_pool *pool, meshlm_kv_pool *kv, meshlm_forward_buf *b,
                        const meshlm_step *st, float *logits) {
    int e = m->hp.n_embd;
    if (st->n < 1 || st->n > b->max_tok || st->n_out < 0 || st->n_out > st->n)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "forward step: %d rows (at most %d), %d outputs", st->n,
                           b->max_tok, st->n_out);
    for (int t = 0; t < st->n; t++) {
        if (st->tokens[t] < 0 || st->tokens[t] >= m->hp.n_vocab)
            return meshlm_fail(MESHLM_ERR_INVALID_ARG, "token %d at row %d is outside the vocabulary [0, %d)",
                               st->tokens[t], t, m->hp.n_vocab);
        if (st->pos[t] < 0 || st->pos[t] >= st->seqs[t]->len)
            return meshlm_fail(MESHLM_ERR_RANGE, "forward step: row %d at position %d, only %d reserved", t,
                               st->pos[t], st->seqs[t]->len);
        b->rows[t] = (meshlm_attn_row){st->seqs[t], st->pos[t]};
        meshlm_matrix_row(&m->tok_embd, st->tokens[t], b->x + (size_t)t * e);
    }
    for (int il = 0; il < m->hp.n_layer; il++) {
        attention_block(m, pool, kv, b, st, il);
        mlp_block(m, pool, b, il, st->n);
    }
    if (st->n_out == 0) return MESHLM_OK;
    for (int i = 0; i < st->n_out; i++)
        meshlm_rmsnorm(b->last + (size_t)i * e, b->x + (size_t)st->out_rows[i] * e, m->output_norm, e,
                       m->hp.rms_eps);
    meshlm_matmul(pool, &m->output, b->last, st->n_out, logits);
    return MESHLM_OK;
}

int meshlm_forward_check(const meshlm_model *m, const int32_t *tokens, int32_t n, int32_t pos, int32_t n_ctx) {
    if (n <= 0) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "forward: no tokens to evaluate");
    if (pos < 0 || (int64_t)pos + n > n_ctx)
        return meshlm_fail(MESHLM_ERR_RANGE, "context full: %d + %d tokens exceed the context size %d", pos, n, n_ctx);
    for (int32_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= m->hp.n_vocab)
            return meshlm_fail(MESHLM_ERR_INVALID_ARG, "token %d at index %d is outside the vocabulary [0, %d)",
                               tokens[i], i, m->hp.n_vocab);
    return MESHLM_OK;
}

int meshlm_forward(const meshlm_model *m, meshlm_pool *pool, meshlm_kv_pool *kv, meshlm_kv_seq *seq,
                   meshlm_forward_buf *b, const int32_t *tokens, int32_t n, int32_t pos, float *logits) {
    int rc = meshlm_forward_check(m, tokens, n, pos, seq->max_len);
    if (!rc) rc = meshlm_kv_reserve(kv, seq, pos + n);
    for (int32_t done = 0; done < n && !rc; done += b->max_tok) {
        int32_t chunk = n - done < b->max_tok ? n - done : b->max_tok, last = chunk - 1;
        for (int32_t t = 0; t < chunk; t++) {
            b->pos[t] = pos + done + t;
            b->seqs[t] = seq;
        }
        meshlm_step st = {.n = chunk, .tokens = tokens + done, .pos = b->pos, .seqs = b->seqs,
                          .n_out = done + chunk == n, .out_rows = &last};
        rc = meshlm_forward_step(m, pool, kv, b, &st, logits);
    }
    return rc;
}
