#include "model/forward.h"

#include <stdlib.h>
#include <string.h>

#include "core/status.h"

int meshlm_forward_buf_init(meshlm_forward_buf *b, const meshlm_model *m, int32_t max_tok, int32_t n_ctx,
                            int32_t n_threads, const meshlm_opts *opts) {
    meshlm_opts perf = meshlm_opts_preset(MESHLM_PRESET_PERFORMANCE);
    memset(b, 0, sizeof *b);
    b->max_tok = max_tok;
    b->n_ctx = n_ctx;
    b->n_threads = n_threads;
    if (!opts) opts = &perf;
    int rc = meshlm_plan_shard(m, meshlm_shard_axis_a(1, 1), 1, 1, 0, 0, opts, &b->sh);
    if (rc) return rc;
    if ((rc = meshlm_exec_setup(&b->exec, b->plan, m, &b->sh, opts, max_tok, n_ctx, n_threads))) {
        meshlm_shard_free(&b->sh);
        return rc;
    }
    b->pos = malloc((size_t)max_tok * sizeof *b->pos);
    b->seqs = malloc((size_t)max_tok * sizeof *b->seqs);
    if (!b->pos || !b->seqs) {
        meshlm_forward_buf_free(b);
        return meshlm_fail(MESHLM_ERR_NOMEM, "forward buffers: out of memory for %d tokens", max_tok);
    }
    rc = meshlm_model_ropes(m, n_ctx, b->rope);
    if (rc) meshlm_forward_buf_free(b);
    return rc;
}

int meshlm_model_ropes(const meshlm_model *m, int32_t n_ctx, meshlm_rope rope[2]) {
    const meshlm_hparams *hp = &m->hp;
    /* As llama.cpp picks them: rope_freqs first, else by the context a sequence may reach. */
    const float *factors = m->rope_freqs;
    if (!factors) factors = n_ctx > hp->n_ctx_orig ? m->rope_long : m->rope_short;
    int rc = meshlm_rope_init(&rope[0], hp->head_dim, hp->n_rot, hp->rope_neox, hp->rope_theta, factors,
                              hp->rope_scale);
    if (rc) return rc;
    if (hp->rope_attn_factor > 0) rope[0].mscale = hp->rope_attn_factor;
    if (hp->rope_yarn > 0 &&
        (rc = meshlm_rope_yarn(&rope[0], hp->rope_theta, hp->rope_yarn, hp->n_ctx_orig, hp->yarn_beta_fast,
                               hp->yarn_beta_slow, hp->rope_attn_factor)))
        return rc;
    if (hp->rope_theta_swa <= 0) {
        rope[1] = rope[0];
        return MESHLM_OK;
    }
    if (!hp->rope_swa_scaled)
        return meshlm_rope_init(&rope[1], hp->head_dim, hp->n_rot, hp->rope_neox, hp->rope_theta_swa, m->rope_freqs,
                                1.0);
    rc = meshlm_rope_init(&rope[1], hp->head_dim, hp->n_rot, hp->rope_neox, hp->rope_theta_swa, factors,
                          hp->rope_scale);
    if (!rc && hp->rope_yarn > 0)
        rc = meshlm_rope_yarn(&rope[1], hp->rope_theta_swa, hp->rope_yarn, hp->n_ctx_orig, hp->yarn_beta_fast,
                              hp->yarn_beta_slow, hp->rope_attn_factor);
    return rc;
}

void meshlm_forward_buf_free(meshlm_forward_buf *b) {
    meshlm_exec_free(&b->exec);
    meshlm_plan_free(&b->plan[0]);
    meshlm_plan_free(&b->plan[1]);
    meshlm_shard_free(&b->sh);
    free(b->pos), free(b->seqs);
    memset(b, 0, sizeof *b);
}

int meshlm_forward_reserve(meshlm_pool *pool, const meshlm_model *m, int32_t max_tok) {
    const meshlm_hparams *hp = &m->hp;
    int64_t n_in = hp->n_embd;
    if (hp->n_ff > n_in) n_in = hp->n_ff;
    if (hp->n_ff_exp > n_in) n_in = hp->n_ff_exp;
    if ((int64_t)hp->n_head * hp->head_dim > n_in) n_in = (int64_t)hp->n_head * hp->head_dim;
    return meshlm_matmul_reserve(pool, max_tok, n_in);
}

meshlm_kv_params meshlm_kv_params_for(const meshlm_model *m, int32_t kv_heads, int type, int32_t page_size,
                                      size_t mem_bytes) {
    return (meshlm_kv_params){.n_layer = m->hp.n_layer, .kv_dim = kv_heads * m->hp.head_dim,
                              .head_dim = m->hp.head_dim, .page_size = page_size, .type = type,
                              .mem_bytes = mem_bytes};
}

int meshlm_forward_step(const meshlm_model *m, meshlm_pool *pool, meshlm_kv_pool *kv, meshlm_forward_buf *b,
                        const meshlm_step *st, float *logits) {
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
    }
    b->exec.pool = pool;
    b->exec.kv = kv;
    b->exec.rope = b->rope;
    return meshlm_exec_step(&b->exec, meshlm_exec_pick(b->plan, st), st, logits);
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

int meshlm_forward_window(const meshlm_model *m, meshlm_kv_pool *kv, meshlm_kv_seq *seq, int32_t pos) {
    int32_t window = meshlm_model_window(&m->hp), first = window > 0 && pos >= window ? pos - window + 1 : 0;
    if (seq->n_dropped == 0) return MESHLM_OK;
    if (pos == 0) {
        meshlm_kv_release(kv, seq);
        return MESHLM_OK;
    }
    if (first < seq->n_dropped * meshlm_kv_pool_page_size(kv))
        return meshlm_fail(MESHLM_ERR_RANGE,
                           "forward at position %d needs positions from %d, but those below %d left the window and "
                           "were dropped",
                           pos, first, seq->n_dropped * meshlm_kv_pool_page_size(kv));
    return MESHLM_OK;
}

int meshlm_forward(const meshlm_model *m, meshlm_pool *pool, meshlm_kv_pool *kv, meshlm_kv_seq *seq,
                   meshlm_forward_buf *b, const int32_t *tokens, int32_t n, int32_t pos, float *logits) {
    int rc = meshlm_forward_check(m, tokens, n, pos, seq->max_len);
    if (!rc) rc = meshlm_forward_window(m, kv, seq, pos);
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
    int32_t window = meshlm_model_window(&m->hp);
    if (!rc && window > 0) meshlm_kv_drop(kv, seq, pos + n - window + 1);
    return rc;
}
