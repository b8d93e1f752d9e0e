#include "model/forward.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"

int meshlm_kv_cache_init(meshlm_kv_cache *kv, int32_t n_layer, int32_t kv_dim, int32_t n_ctx) {
    memset(kv, 0, sizeof *kv);
    kv->n_ctx = n_ctx;
    kv->n_layer = n_layer;
    kv->kv_dim = kv_dim;
    size_t n = (size_t)n_ctx * (size_t)n_layer * (size_t)kv_dim;
    if (n == 0) return MESHLM_OK;
    kv->k = calloc(n, sizeof(float));
    kv->v = calloc(n, sizeof(float));
    if (!kv->k || !kv->v) {
        meshlm_kv_cache_free(kv);
        return meshlm_fail(MESHLM_ERR_NOMEM, "KV cache: cannot allocate %zu MiB for %d positions",
                           2 * n * sizeof(float) >> 20, n_ctx);
    }
    return MESHLM_OK;
}

void meshlm_kv_cache_free(meshlm_kv_cache *kv) {
    free(kv->k);
    free(kv->v);
    kv->k = kv->v = NULL;
}

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
    b->last = malloc(e * sizeof(float));
    b->scores = malloc((size_t)n_threads * (size_t)n_ctx * sizeof(float));
    if (!b->x || !b->xn || !b->q || !b->k || !b->v || !b->att || !b->gate || !b->up || !b->last || !b->scores) {
        meshlm_forward_buf_free(b);
        return meshlm_fail(MESHLM_ERR_NOMEM, "forward buffers: out of memory for %d tokens", max_tok);
    }
    return meshlm_rope_init(&b->rope, hp->head_dim, hp->n_rot, hp->rope_neox, hp->rope_theta, m->rope_freqs);
}

void meshlm_forward_buf_free(meshlm_forward_buf *b) {
    free(b->x), free(b->xn), free(b->q), free(b->k), free(b->v), free(b->att);
    free(b->gate), free(b->up), free(b->last), free(b->scores);
    memset(b, 0, sizeof *b);
}

/* Each (token, head) pair attends over the cached positions; the pairs are split across
 * threads, each with its own row of score scratch. */
static void attention_heads(void *arg, int ith, int nth) {
    const meshlm_attention_args *j = arg;
    int hd = j->head_dim;
    size_t q_dim = j->q_dim, kv_dim = j->kv_dim;
    const float *kc = j->k, *vc = j->v;
    float *scores = j->scores + (size_t)ith * j->n_ctx;
    float scale = 1.0f / sqrtf((float)hd);
    long lo, hi;
    meshlm_split_range((long)j->n_tok * j->n_heads, ith, nth, &lo, &hi);
    for (long p = lo; p < hi; p++) {
        int t = (int)(p / j->n_heads), h = (int)(p % j->n_heads);
        int n_pos = j->pos + t + 1;
        const float *q = j->q + t * q_dim + (size_t)h * hd;
        size_t kv_off = (size_t)((j->head0 + h) / j->group - j->kv0) * hd;
        for (int s = 0; s < n_pos; s++) {
            const float *k = kc + s * kv_dim + kv_off;
            float dot = 0.0f;
            for (int d = 0; d < hd; d++) dot += q[d] * k[d];
            scores[s] = dot * scale;
        }
        meshlm_softmax(scores, n_pos);
        float *out = j->out + t * q_dim + (size_t)h * hd;
        memset(out, 0, (size_t)hd * sizeof(float));
        for (int s = 0; s < n_pos; s++) {
            const float *v = vc + s * kv_dim + kv_off;
            for (int d = 0; d < hd; d++) out[d] += scores[s] * v[d];
        }
    }
}

void meshlm_attention(meshlm_pool *pool, const meshlm_attention_args *a) {
    meshlm_pool_run(pool, attention_heads, (void *)a);
}

static void add_bias(float *y, const float *bias, int n_tok, int dim) {
    if (!bias) return;
    for (int t = 0; t < n_tok; t++) meshlm_add(y + (size_t)t * dim, bias, dim);
}

void meshlm_qk_rope(const meshlm_rope *rope, const meshlm_hparams *hp, float *x, const float *norm, int n_heads,
                    int n_tok, int pos) {
    int hd = hp->head_dim;
    for (int t = 0; t < n_tok; t++) {
        float *row = x + (size_t)t * n_heads * hd;
        if (norm)
            for (int h = 0; h < n_heads; h++) meshlm_rmsnorm(row + h * hd, row + h * hd, norm, hd, hp->rms_eps);
        meshlm_rope_apply(rope, row, n_heads, pos + t);
    }
}

static void attention_block(const meshlm_model *m, meshlm_pool *pool, meshlm_kv_cache *kv, meshlm_forward_buf *b,
                            int il, int n_tok, int pos) {
    const meshlm_hparams *hp = &m->hp;
    const meshlm_layer *L = &m->layers[il];
    int e = hp->n_embd, q_dim = hp->n_head * hp->head_dim, kv_dim = kv->kv_dim;
    for (int t = 0; t < n_tok; t++)
        meshlm_rmsnorm(b->xn + (size_t)t * e, b->x + (size_t)t * e, L->attn_norm, e, hp->rms_eps);
    meshlm_matmul(pool, &L->wq, b->xn, n_tok, b->q);
    meshlm_matmul(pool, &L->wk, b->xn, n_tok, b->k);
    meshlm_matmul(pool, &L->wv, b->xn, n_tok, b->v);
    add_bias(b->q, L->bq, n_tok, q_dim);
    add_bias(b->k, L->bk, n_tok, kv_dim);
    add_bias(b->v, L->bv, n_tok, kv_dim);
    meshlm_qk_rope(&b->rope, hp, b->q, L->q_norm, hp->n_head, n_tok, pos);
    meshlm_qk_rope(&b->rope, hp, b->k, L->k_norm, hp->n_head_kv, n_tok, pos);
    size_t layer_off = (size_t)il * kv->n_ctx * kv_dim;
    memcpy(kv->k + layer_off + (size_t)pos * kv_dim, b->k, (size_t)n_tok * kv_dim * sizeof(float));
    memcpy(kv->v + layer_off + (size_t)pos * kv_dim, b->v, (size_t)n_tok * kv_dim * sizeof(float));
    meshlm_attention_args args = {
        .q = b->q, .out = b->att, .k = kv->k + layer_off, .v = kv->v + layer_off, .scores = b->scores,
        .n_tok = n_tok, .pos = pos, .n_ctx = kv->n_ctx, .n_heads = hp->n_head, .head0 = 0,
        .group = hp->n_head / hp->n_head_kv, .kv0 = 0, .head_dim = hp->head_dim,
        .q_dim = (size_t)q_dim, .kv_dim = (size_t)kv_dim};
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

static void forward_chunk(const meshlm_model *m, meshlm_pool *pool, meshlm_kv_cache *kv, meshlm_forward_buf *b,
                          const int32_t *tokens, int n_tok, int pos) {
    int e = m->hp.n_embd;
    for (int t = 0; t < n_tok; t++) meshlm_matrix_row(&m->tok_embd, tokens[t], b->x + (size_t)t * e);
    for (int il = 0; il < m->hp.n_layer; il++) {
        attention_block(m, pool, kv, b, il, n_tok, pos);
        mlp_block(m, pool, b, il, n_tok);
    }
    memcpy(b->last, b->x + (size_t)(n_tok - 1) * e, (size_t)e * sizeof(float));
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

int meshlm_forward(const meshlm_model *m, meshlm_pool *pool, meshlm_kv_cache *kv, meshlm_forward_buf *b,
                   const int32_t *tokens, int32_t n, int32_t pos, float *logits) {
    int rc = meshlm_forward_check(m, tokens, n, pos, kv->n_ctx);
    if (rc) return rc;
    for (int32_t done = 0; done < n; done += b->max_tok) {
        int32_t chunk = n - done < b->max_tok ? n - done : b->max_tok;
        forward_chunk(m, pool, kv, b, tokens + done, chunk, pos + done);
    }
    meshlm_rmsnorm(b->last, b->last, m->output_norm, m->hp.n_embd, m->hp.rms_eps);
    meshlm_matmul(pool, &m->output, b->last, 1, logits);
    return MESHLM_OK;
}
