#include "model/shard.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/dtype.h"
#include "core/hugemem.h"
#include "core/panel.h"
#include "core/status.h"

int meshlm_shard_axis_a(int rows, int cols) {
    (void)cols;
    return rows > 1 ? 0 : 1;
}

meshlm_range meshlm_shard_split(int64_t n, int64_t unit, int g, int i) {
    int64_t units = (n + unit - 1) / unit, base = units / g, extra = units % g;
    int64_t lo = i * base + (i < extra ? i : extra), len = base + (i < extra ? 1 : 0);
    meshlm_range r = {lo * unit, (lo + len) * unit};
    if (r.lo > n) r.lo = n;
    if (r.hi > n) r.hi = n;
    return r;
}

static int64_t gcd64(int64_t a, int64_t b) {
    while (b) {
        int64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* The rows and columns [cols) of w: a view when the columns are whole rows, else a copy
 * of each row's byte range (columns are whole blocks by construction). */
static int slice(meshlm_shard *s, const meshlm_matrix *w, meshlm_range rows, meshlm_range cols, meshlm_matrix *out) {
    int64_t n_out = rows.hi - rows.lo, n_in = cols.hi - cols.lo, bs = meshlm_type_block_elems(w->type);
    size_t bb = meshlm_type_block_bytes(w->type);
    *out = (meshlm_matrix){NULL, w->type, n_in, n_out, meshlm_type_row_bytes(w->type, n_in), false};
    /* A matrix the model does not have (the dense FFN of a mixture of experts) stays empty. */
    if (!w->data) *out = (meshlm_matrix){0};
    if (n_out == 0 || n_in == 0 || !w->data) return MESHLM_OK;
    const char *src = (const char *)w->data + (size_t)rows.lo * w->row_bytes;
    if (n_in == w->n_in) {
        out->data = src;
        return MESHLM_OK;
    }
    char *copy = malloc((size_t)n_out * out->row_bytes);
    void **owned = realloc(s->owned, (size_t)(s->n_owned + 1) * sizeof *owned);
    if (!copy || !owned) {
        free(copy);
        if (owned) s->owned = owned;
        return meshlm_fail(MESHLM_ERR_NOMEM, "shard: out of memory for a %lld x %lld slice", (long long)n_out,
                           (long long)n_in);
    }
    s->owned = owned;
    s->owned[s->n_owned++] = copy;
    size_t col_off = (size_t)(cols.lo / bs) * bb;
    for (int64_t r = 0; r < n_out; r++)
        memcpy(copy + (size_t)r * out->row_bytes, src + (size_t)r * w->row_bytes + col_off, out->row_bytes);
    out->data = copy;
    return MESHLM_OK;
}

/* The embedding-width columns this device takes of a column-parallel matrix, in whole
 * blocks of its type. */
static meshlm_range k_split(const meshlm_shard *s, const meshlm_matrix *w) {
    return meshlm_shard_split(w->n_in, meshlm_type_block_elems(w->type), s->n_b, s->b);
}

static int build_layer(const meshlm_model *m, meshlm_shard *s, const meshlm_layer *L, meshlm_shard_layer *S) {
    int64_t hd = m->hp.head_dim;
    meshlm_range q_rows = {s->heads.lo * hd, s->heads.hi * hd};
    meshlm_range kv_rows = {s->kv_heads.lo * hd, s->kv_heads.hi * hd};
    S->kq = k_split(s, &L->wq);
    S->kk = k_split(s, &L->wk);
    S->kv = k_split(s, &L->wv);
    S->k1 = k_split(s, &L->w1);
    S->k3 = k_split(s, &L->w3);
    S->bq = L->bq ? L->bq + q_rows.lo : NULL;
    S->bk = L->bk ? L->bk + kv_rows.lo : NULL;
    S->bv = L->bv ? L->bv + kv_rows.lo : NULL;
    int rc;
    if ((rc = slice(s, &L->wq, q_rows, S->kq, &S->wq)) || (rc = slice(s, &L->wk, kv_rows, S->kk, &S->wk)) ||
        (rc = slice(s, &L->wv, kv_rows, S->kv, &S->wv)) || (rc = slice(s, &L->wo, s->e, q_rows, &S->wo)) ||
        (rc = slice(s, &L->w1, s->ffn, S->k1, &S->w1)) || (rc = slice(s, &L->w3, s->ffn, S->k3, &S->w3)) ||
        (rc = slice(s, &L->w2, s->e, s->ffn, &S->w2)))
        return rc;
    return MESHLM_OK;
}

/* Head slices must start on a block boundary of WO's columns, and ffn slices on one of
 * W2's; uneven shapes leave some devices smaller slices or none (the Galaxy's padding). */
static void ranges(const meshlm_model *m, meshlm_shard *s) {
    const meshlm_hparams *hp = &m->hp;
    int64_t hd = hp->head_dim, group = hp->n_head / hp->n_head_kv;
    /* Block sizes (1, 32, 256) divide one another, so the largest fits every layer. */
    int64_t bs_wo = 1, bs_w2 = 1;
    for (int il = 0; il < hp->n_layer; il++) {
        int64_t bo = meshlm_type_block_elems(m->layers[il].wo.type), b2 = meshlm_type_block_elems(m->layers[il].w2.type);
        if (bo > bs_wo) bs_wo = bo;
        if (b2 > bs_w2) bs_w2 = b2;
    }
    s->heads = meshlm_shard_split(hp->n_head, bs_wo / gcd64(hd, bs_wo), s->n_a, s->a);
    if (s->heads.hi > s->heads.lo)
        s->kv_heads = (meshlm_range){s->heads.lo / group, (s->heads.hi - 1) / group + 1};
    else
        s->kv_heads = (meshlm_range){0, 0};
    s->ffn = meshlm_shard_split(hp->n_ff, bs_w2, s->n_a, s->a);
    s->vocab = meshlm_shard_split(hp->n_vocab, 1, s->n_a, s->a);
    s->e = meshlm_shard_split(hp->n_embd, 1, s->n_b, s->b);
}

int meshlm_shard_build(const meshlm_model *m, int axis_a, int n_a, int n_b, int a, int b, meshlm_shard *s) {
    memset(s, 0, sizeof *s);
    *s = (meshlm_shard){.axis_a = axis_a, .axis_b = 1 - axis_a, .n_a = n_a, .n_b = n_b, .a = a, .b = b};
    ranges(m, s);
    s->att_heads = s->heads;
    s->att_kv = s->kv_heads;
    s->layers = calloc((size_t)m->hp.n_layer, sizeof *s->layers);
    if (!s->layers) return meshlm_fail(MESHLM_ERR_NOMEM, "shard: out of memory");
    int rc = slice(s, &m->tok_embd, s->vocab, (meshlm_range){0, m->hp.n_embd}, &s->embd);
    s->k_lm = k_split(s, &m->output);
    if (!rc) rc = slice(s, &m->output, s->vocab, s->k_lm, &s->lm_head);
    for (int il = 0; il < m->hp.n_layer && !rc; il++) rc = build_layer(m, s, &m->layers[il], &s->layers[il]);
    if (rc) meshlm_shard_free(s);
    return rc;
}

void meshlm_shard_free(meshlm_shard *s) {
    for (int i = 0; i < s->n_owned; i++) free(s->owned[i]);
    free(s->owned);
    free(s->layers);
    free(s->qkv_bounds);
    free(s->att_bounds);
    memset(s, 0, sizeof *s);
}

/* B rank j's query heads (a share of the A slice's) and the KV heads they read. */
static void att_share(const meshlm_model *m, const meshlm_shard *s, int j, meshlm_range *q, meshlm_range *kv) {
    int64_t group = m->hp.n_head / m->hp.n_head_kv;
    meshlm_range r = meshlm_shard_split(s->heads.hi - s->heads.lo, 1, s->n_b, j);
    *q = (meshlm_range){s->heads.lo + r.lo, s->heads.lo + r.hi};
    *kv = q->hi > q->lo ? (meshlm_range){q->lo / group, (q->hi - 1) / group + 1} : (meshlm_range){0, 0};
}

/* Keeps a buffer the shard owns. */
static int own(meshlm_shard *s, void *p) {
    void **owned = realloc(s->owned, (size_t)(s->n_owned + 1) * sizeof *owned);
    if (!owned) return meshlm_fail(MESHLM_ERR_NOMEM, "shard: out of memory");
    s->owned = owned;
    s->owned[s->n_owned++] = p;
    return MESHLM_OK;
}

/* Rows [lo, hi) of w restricted to the columns cols, appended at dst (row_bytes each). */
static char *copy_rows(char *dst, const meshlm_matrix *w, int64_t lo, int64_t hi, meshlm_range cols) {
    int64_t bs = meshlm_type_block_elems(w->type);
    size_t rb = meshlm_type_row_bytes(w->type, cols.hi - cols.lo);
    size_t at = (size_t)(cols.lo / bs) * meshlm_type_block_bytes(w->type);
    for (int64_t r = lo; r < hi; r++, dst += rb) memcpy(dst, (const char *)w->data + (size_t)r * w->row_bytes + at, rb);
    return dst;
}

/* The combined wqkv (and bias) of one layer, rank after rank. */
static int combine_layer(const meshlm_model *m, meshlm_shard *s, const meshlm_layer *L, meshlm_shard_layer *S) {
    int64_t hd = m->hp.head_dim, ld = s->qkv_bounds[s->n_b];
    size_t rb = meshlm_type_row_bytes(L->wq.type, S->kq.hi - S->kq.lo);
    char *data = malloc((size_t)ld * rb + 1), *at = data;
    float *bias = L->bq ? malloc(sizeof(float) * (size_t)ld) : NULL, *b = bias;
    int rc = data ? own(s, data) : meshlm_fail(MESHLM_ERR_NOMEM, "shard: out of memory for wqkv");
    if (!rc && L->bq) rc = bias ? own(s, bias) : meshlm_fail(MESHLM_ERR_NOMEM, "shard: out of memory");
    if (rc) return rc;
    for (int j = 0; j < s->n_b; j++) {
        meshlm_range q, kv;
        att_share(m, s, j, &q, &kv);
        at = copy_rows(at, &L->wq, q.lo * hd, q.hi * hd, S->kq);
        at = copy_rows(at, &L->wk, kv.lo * hd, kv.hi * hd, S->kq);
        at = copy_rows(at, &L->wv, kv.lo * hd, kv.hi * hd, S->kq);
        if (!bias) continue;
        memcpy(b, L->bq + q.lo * hd, sizeof(float) * (size_t)((q.hi - q.lo) * hd)), b += (q.hi - q.lo) * hd;
        memcpy(b, L->bk + kv.lo * hd, sizeof(float) * (size_t)((kv.hi - kv.lo) * hd)), b += (kv.hi - kv.lo) * hd;
        memcpy(b, L->bv + kv.lo * hd, sizeof(float) * (size_t)((kv.hi - kv.lo) * hd)), b += (kv.hi - kv.lo) * hd;
    }
    S->wqkv = (meshlm_matrix){data, L->wq.type, S->kq.hi - S->kq.lo, ld, rb, false};
    S->bqkv = bias;
    return MESHLM_OK;
}

/* The pages of a matrix read no more leave this process's resident set. The bytes stay
 * valid (a file view is read again on demand), so a page shared with a neighbour still in
 * use costs a re-read at most. */
static void release(const meshlm_matrix *w) {
#ifdef MADV_PAGEOUT
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), lo = ((uintptr_t)w->data + page - 1) & ~(page - 1);
    uintptr_t hi = ((uintptr_t)w->data + (size_t)w->n_out * w->row_bytes) & ~(page - 1);
    if (hi > lo) madvise((void *)lo, hi - lo, MADV_PAGEOUT);
#else
    (void)w;
#endif
}

/* w repacked into panels in a copy the shard owns, where core/panel.h finds it worth it.
 * The copy is what decode streams, and a copy anyway, so it goes on huge pages. What it
 * was packed from is read no more: a column slice the shard copied is freed, and with
 * release_view the pages of a view into the model leave the resident set. */
static int pack(meshlm_shard *s, meshlm_matrix *w, bool release_view) {
    if (!w->data || w->panels || !meshlm_panel_worth(w->type, w->n_out, w->n_in)) return MESHLM_OK;
    void *copy = meshlm_alloc_weights((size_t)w->n_out * w->row_bytes);
    int rc = copy ? own(s, copy) : meshlm_fail(MESHLM_ERR_NOMEM, "shard: out of memory for a %lld x %lld panel copy",
                                               (long long)w->n_out, (long long)w->n_in);
    if (rc) return rc;
    meshlm_panel_pack(w->type, w->data, w->row_bytes, w->n_out, w->n_in, copy);
    bool copied = false;
    for (int i = 0; i < s->n_owned && !copied; i++)
        if (s->owned[i] == w->data) {
            free(s->owned[i]);
            s->owned[i] = s->owned[--s->n_owned];
            copied = true;
        }
    if (!copied && release_view) release(w);
    w->data = copy;
    w->panels = true;
    return MESHLM_OK;
}

int meshlm_shard_panels(const meshlm_model *m, meshlm_shard *s) {
    int rc = pack(s, &s->lm_head, false);
    for (int il = 0; il < m->hp.n_layer && !rc; il++) {
        meshlm_shard_layer *S = &s->layers[il];
        meshlm_matrix *w[] = {&S->wq, &S->wk, &S->wv, &S->wo, &S->w1, &S->w2, &S->w3, &S->wqkv};
        for (size_t i = 0; i < sizeof w / sizeof w[0] && !rc; i++) rc = pack(s, w[i], false);
        /* This device's experts too, their file pages let go: most of a mixture's bytes, of
         * which a device then holds only its share. */
        for (int64_t x = 0; S->eg && x < s->experts.hi - s->experts.lo && !rc; x++)
            if (!(rc = pack(s, &S->eg[x], true)) && !(rc = pack(s, &S->eu[x], true))) rc = pack(s, &S->ed[x], true);
    }
    return rc;
}

int meshlm_shard_experts(const meshlm_model *m, meshlm_shard *s, bool expert_parallel) {
    const meshlm_hparams *hp = &m->hp;
    if (!hp->n_expert) return MESHLM_OK;
    int n_dev = s->n_a * s->n_b, dev = s->a * s->n_b + s->b;
    int64_t unit = 1;
    for (int il = 0; il < hp->n_layer; il++) {
        int64_t b = meshlm_type_block_elems(m->layers[il].exp_down[0].type);
        if (b > unit) unit = b;
    }
    s->experts = expert_parallel ? meshlm_shard_split(hp->n_expert, 1, n_dev, dev) : (meshlm_range){0, hp->n_expert};
    s->exp_ff = expert_parallel ? (meshlm_range){0, hp->n_ff_exp} : meshlm_shard_split(hp->n_ff_exp, unit, n_dev, dev);
    s->exp_down_bias = expert_parallel || dev == 0;
    int64_t n_local = s->experts.hi - s->experts.lo;
    meshlm_range all_e = {0, hp->n_embd};
    for (int il = 0; il < hp->n_layer; il++) {
        const meshlm_layer *L = &m->layers[il];
        meshlm_shard_layer *S = &s->layers[il];
        meshlm_matrix *w = calloc((size_t)(3 * n_local + 1), sizeof *w);
        int rc = w ? own(s, w) : meshlm_fail(MESHLM_ERR_NOMEM, "shard: out of memory for layer %d's experts", il);
        if (rc) return rc;
        S->eg = w, S->eu = w + n_local, S->ed = w + 2 * n_local;
        for (int64_t x = 0; x < n_local && !rc; x++) {
            int64_t g = s->experts.lo + x;
            if ((rc = slice(s, &L->exp_gate[g], s->exp_ff, all_e, &S->eg[x])) ||
                (rc = slice(s, &L->exp_up[g], s->exp_ff, all_e, &S->eu[x])) ||
                (rc = slice(s, &L->exp_down[g], all_e, s->exp_ff, &S->ed[x])))
                return rc;
            /* Cut in width, down's columns were copied: its file pages are read no more. */
            if (S->ed[x].data != L->exp_down[g].data) release(&L->exp_down[g]);
        }
    }
    return MESHLM_OK;
}

int meshlm_shard_split_attention(const meshlm_model *m, meshlm_shard *s) {
    if (s->n_b < 2) return meshlm_fail(MESHLM_ERR_UNSUPPORTED, "shard: no axis B to split the attention over");
    for (int il = 0; il < m->hp.n_layer; il++) {
        const meshlm_layer *L = &m->layers[il];
        const meshlm_shard_layer *S = &s->layers[il];
        if (L->wq.type != L->wk.type || L->wq.type != L->wv.type || S->kq.lo != S->kk.lo || S->kq.hi != S->kk.hi ||
            S->kq.lo != S->kv.lo || S->kq.hi != S->kv.hi)
            return meshlm_fail(MESHLM_ERR_UNSUPPORTED, "shard: layer %d's wq, wk and wv differ in type or columns", il);
    }
    int64_t hd = m->hp.head_dim;
    s->qkv_bounds = calloc((size_t)s->n_b + 1, sizeof *s->qkv_bounds);
    s->att_bounds = calloc((size_t)s->n_b + 1, sizeof *s->att_bounds);
    if (!s->qkv_bounds || !s->att_bounds) return meshlm_fail(MESHLM_ERR_NOMEM, "shard: out of memory");
    for (int j = 0; j < s->n_b; j++) {
        meshlm_range q, kv;
        att_share(m, s, j, &q, &kv);
        s->qkv_bounds[j + 1] = s->qkv_bounds[j] + ((q.hi - q.lo) + 2 * (kv.hi - kv.lo)) * hd;
        s->att_bounds[j + 1] = s->att_bounds[j] + (q.hi - q.lo) * hd;
    }
    for (int il = 0; il < m->hp.n_layer; il++) {
        int rc = combine_layer(m, s, &m->layers[il], &s->layers[il]);
        if (rc) return rc;
    }
    att_share(m, s, s->b, &s->att_heads, &s->att_kv);
    s->split_att = true;
    return MESHLM_OK;
}
