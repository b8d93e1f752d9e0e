/* The batch scheduler: slots of running sequences over one paged KV pool and one forward
 * buffer. Each step puts every decoding sequence's next token first, then fills the rest
 * of the step with prefill chunks, runs it as one forward step, and samples each sequence
 * whose last row was in it with that sequence's own sampler.
 * Prefix caching: a request starts on the longest chain of cached full pages its prompt
 * begins with (kv_paged.h) and prefills only the rest; every page a step fills is
 * registered, so the next turn of a chat or the next prompt with the same system prompt
 * finds it. A row's KV and logits do not depend on what else was in its step (the batch
 * invariance), so a cached page holds the very bits the request would have computed. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/dtype.h"
#include "core/pool.h"
#include "core/status.h"
#include "model/forward.h"
#include "runtime/mesh_session.h"
#include "runtime/sampler.h"

enum { DEFAULT_BATCH = 32, DEFAULT_CHUNK = 64, DEFAULT_PAGE = 64, DEFAULT_CTX_CAP = 4096 };
#define DEFAULT_MEM_CAP ((size_t)1 << 30)

typedef struct request {
    int32_t id;
    bool released; /* its arrays are freed; the record goes at the next compaction */
    int32_t *prompt, *gen;
    int32_t n_prompt, n_gen, n_predict, need; /* need: positions reserved while it runs */
    meshlm_sampler_params sp;
    meshlm_finish finish;
    double t_admit, t_first, t_end;
} request;

/* A running sequence: its request, page table, sampler, and how far it has come. */
typedef struct slot {
    int32_t req; /* the request's id; -1 = free */
    meshlm_kv_seq seq;
    meshlm_sampler sampler;
    int32_t n_done; /* prompt tokens evaluated */
    int32_t pos;    /* next position to evaluate */
    int32_t next;   /* the generated token to evaluate next */
    int32_t n_reg;  /* leading pages registered (or found) in the prefix index */
    uint64_t chain; /* the index entry of page n_reg - 1 (0: none) */
} slot;

/* On one device, kv holds the pages themselves; on a mesh every device holds its heads'
 * pages and kv is only the ledger of page ids (one value per row), whose reservations hold
 * on every device because all pools have the same page count.
 * reqs holds the records of the requests not yet released, in id order (ids are given in
 * order, so submit appends); released ones stay as tombstones until they are half the
 * array, which is then compacted: memory follows the requests still held. */
struct meshlm_batch {
    const meshlm_model *m;
    meshlm_pool *pool;
    meshlm_kv_pool *kv;
    meshlm_forward_buf buf;
    meshlm_mesh_session *ms; /* NULL on one device */
    bool ignore_eog, prefix; /* prefix: the prefix cache is on */
    int64_t prefix_queries, prefix_hits, prompt_rows;
    int32_t n_ctx, n_batch, n_chunk, max_rows;
    slot *slots;
    request *reqs;
    int32_t n_reqs, cap_reqs, n_released; /* records, their capacity, tombstones among them */
    int32_t next_id, next_wait, n_open;   /* next_wait: the first id admit looks at */
    int32_t *tokens, *pos, *out_rows, *out_slot, *page_tokens; /* page_tokens: one page's */
    meshlm_kv_seq **seqs;
    float *logits;
};

meshlm_batch_params meshlm_batch_defaults(void) {
    return (meshlm_batch_params){.n_batch = DEFAULT_BATCH, .n_chunk = DEFAULT_CHUNK, .page_size = DEFAULT_PAGE};
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

/* The mesh's devices, and the page ledger sized like the one-device pool would be. */
static int mesh_alloc(meshlm_batch *b, const meshlm_batch_params *p, const meshlm_kv_params *kp,
                      const meshlm_opts *opts, int rows, int cols, int n_threads) {
    meshlm_ccl_options ccl = {.topology = opts->ring ? MESHLM_TOPOLOGY_RING : MESHLM_TOPOLOGY_LINEAR,
                              .transport = MESHLM_TRANSPORT_THREADS, .links = 1, .staging_bytes = 4u << 20};
    int rc;
    if (p->topology && (rc = meshlm_topology_parse(p->topology, &ccl.topology))) return rc;
    if (p->transport && strcmp(p->transport, "threads") != 0) {
        if (strcmp(p->transport, "mpi") != 0)
            return meshlm_fail(MESHLM_ERR_INVALID_ARG, "transport '%s' is not one of: threads, mpi", p->transport);
        ccl.transport = MESHLM_TRANSPORT_MPI;
        ccl.timeout_s = meshlm_ccl_timeout(p->ccl_timeout);
    }
    size_t page = meshlm_kv_page_bytes(kp);
    int32_t n_pages = page && kp->mem_bytes >= page ? (int32_t)(kp->mem_bytes / page) : 1;
    meshlm_kv_params ledger = {.n_layer = 1, .kv_dim = 1, .head_dim = 1, .page_size = kp->page_size,
                               .type = MESHLM_TYPE_F32};
    ledger.mem_bytes = meshlm_kv_page_bytes(&ledger) * (size_t)n_pages;
    meshlm_mesh_config cfg = {.n_ctx = b->n_ctx, .n_threads = n_threads, .max_tok = b->max_rows,
                              .max_out = b->n_batch, .page_size = kp->page_size, .kv_pages = n_pages,
                              .kv_type = kp->type, .opts = *opts};
    if ((rc = meshlm_kv_pool_create(&ledger, &b->kv)) ||
        (rc = meshlm_mesh_session_create(b->m, rows, cols, &ccl, &cfg, NULL, &b->ms)))
        return rc;
    return MESHLM_OK;
}

/* Everything but the requests is allocated here, once. */
static int batch_alloc(meshlm_batch *b, const meshlm_batch_params *p, int n_threads) {
    const meshlm_model *m = b->m;
    int type, rc, rows = 1, cols = 1;
    meshlm_opts opts;
    if ((rc = meshlm_kv_type_parse(p->kv_type, &type)) || (rc = meshlm_opts_make(p->opt, p->opt_set, &opts))) return rc;
    if (p->mesh && (rc = meshlm_mesh_parse(p->mesh, &rows, &cols))) return rc;
    int32_t ps = p->page_size > 0 ? p->page_size : DEFAULT_PAGE;
    meshlm_kv_params kp = meshlm_kv_params_for(m, m->hp.n_head_kv, type, ps, 0);
    size_t page = meshlm_kv_page_bytes(&kp);
    kp.mem_bytes = p->kv_mem;
    if (kp.mem_bytes == 0 && page) {
        size_t pages = (size_t)((b->n_ctx + ps - 1) / ps) * (size_t)b->n_batch;
        kp.mem_bytes = pages * page < DEFAULT_MEM_CAP ? pages * page : DEFAULT_MEM_CAP;
        if (kp.mem_bytes < page) kp.mem_bytes = page;
    }
    if (rows * cols > 1 || (p->transport && !strcmp(p->transport, "mpi")))
        rc = mesh_alloc(b, p, &kp, &opts, rows, cols, p->n_threads ? p->n_threads : 1);
    else if (!(rc = meshlm_pool_create(n_threads, &b->pool)) && !(rc = meshlm_kv_pool_create(&kp, &b->kv)) &&
             !(rc = meshlm_forward_buf_init(&b->buf, m, b->max_rows, b->n_ctx, n_threads, &opts)))
        rc = meshlm_forward_reserve(b->pool, m, b->max_rows);
    if (rc) return rc;
    size_t r = (size_t)b->max_rows, V = (size_t)m->hp.n_vocab;
    b->slots = calloc((size_t)b->n_batch, sizeof *b->slots);
    b->tokens = malloc(r * sizeof *b->tokens);
    b->pos = malloc(r * sizeof *b->pos);
    b->out_rows = malloc(r * sizeof *b->out_rows);
    b->out_slot = malloc(r * sizeof *b->out_slot);
    b->seqs = malloc(r * sizeof *b->seqs);
    b->logits = malloc((size_t)b->n_batch * V * sizeof *b->logits);
    b->page_tokens = malloc((size_t)ps * sizeof *b->page_tokens);
    if (!b->slots || !b->tokens || !b->pos || !b->out_rows || !b->out_slot || !b->seqs || !b->logits ||
        !b->page_tokens)
        return meshlm_fail(MESHLM_ERR_NOMEM, "batch: out of memory for %d sequences", b->n_batch);
    meshlm_sampler_params sp = meshlm_sampler_defaults();
    for (int32_t i = 0; i < b->n_batch; i++) {
        b->slots[i].req = -1;
        if ((rc = meshlm_kv_seq_init(&b->slots[i].seq, b->n_ctx, b->kv)) ||
            (rc = meshlm_sampler_init(&b->slots[i].sampler, &sp, m->hp.n_vocab)))
            return rc;
    }
    return MESHLM_OK;
}

meshlm_status meshlm_batch_create(const meshlm_model *m, const meshlm_batch_params *p, meshlm_batch **out) {
    if (!m || !p || !out) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "meshlm_batch_create: NULL argument");
    *out = NULL;
    if (p->n_batch < 0 || p->n_chunk < 0 || p->n_ctx < 0 || p->n_ctx > m->hp.n_ctx_train || p->page_size < 0 ||
        p->n_threads < 0)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG,
                           "batch: n_batch %d, n_chunk %d, page_size %d must be >= 0 and n_ctx %d in [0, %d]",
                           p->n_batch, p->n_chunk, p->page_size, p->n_ctx, m->hp.n_ctx_train);
    meshlm_batch *b = calloc(1, sizeof *b);
    if (!b) return meshlm_fail(MESHLM_ERR_NOMEM, "batch: out of memory");
    b->m = m;
    b->n_ctx = p->n_ctx ? p->n_ctx : m->hp.n_ctx_train < DEFAULT_CTX_CAP ? m->hp.n_ctx_train : DEFAULT_CTX_CAP;
    b->n_batch = p->n_batch ? p->n_batch : DEFAULT_BATCH;
    b->n_chunk = p->n_chunk ? p->n_chunk : DEFAULT_CHUNK;
    b->ignore_eog = p->ignore_eog;
    b->prefix = !p->no_prefix_cache;
    b->max_rows = b->n_batch + b->n_chunk;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int rc = batch_alloc(b, p, p->n_threads ? p->n_threads : cores > 0 ? (int)cores : 1);
    if (rc) {
        meshlm_batch_free(b);
        return (meshlm_status)rc;
    }
    *out = b;
    return MESHLM_OK;
}

void meshlm_batch_free(meshlm_batch *b) {
    if (!b) return;
    if (b->slots)
        for (int32_t i = 0; i < b->n_batch; i++) {
            meshlm_kv_seq_free(&b->slots[i].seq);
            meshlm_sampler_free(&b->slots[i].sampler);
        }
    for (int32_t i = 0; i < b->n_reqs; i++) free(b->reqs[i].prompt), free(b->reqs[i].gen);
    free(b->reqs), free(b->slots), free(b->tokens), free(b->pos), free(b->out_rows), free(b->out_slot);
    free(b->seqs), free(b->logits), free(b->page_tokens);
    meshlm_forward_buf_free(&b->buf);
    meshlm_mesh_session_free(b->ms);
    meshlm_kv_pool_free(b->kv);
    meshlm_pool_free(b->pool);
    free(b);
}

/* Pages that hold this many positions. */
static int32_t pages_for(const meshlm_batch *b, int32_t positions) {
    int32_t ps = meshlm_kv_pool_page_size(b->kv);
    return (positions + ps - 1) / ps;
}

/* Checks that the request can ever run and copies it; n_predict 0 finishes at once. */
static int add_request(meshlm_batch *b, const int32_t *tokens, int32_t n, const meshlm_sampler_params *sp,
                       int32_t n_predict) {
    if (n < 1) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "batch: a request needs at least one prompt token");
    for (int32_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= b->m->hp.n_vocab)
            return meshlm_fail(MESHLM_ERR_INVALID_ARG, "batch: token %d at index %d is outside the vocabulary [0, %d)",
                               tokens[i], i, b->m->hp.n_vocab);
    if (n >= b->n_ctx)
        return meshlm_fail(MESHLM_ERR_RANGE, "batch: the prompt has %d tokens; the context holds %d", n, b->n_ctx);
    int64_t want = n_predict < 0 ? b->n_ctx : (int64_t)n + n_predict;
    int32_t need = want < b->n_ctx ? (int32_t)want : b->n_ctx;
    if (pages_for(b, need) > meshlm_kv_pool_pages(b->kv))
        return meshlm_fail(MESHLM_ERR_RANGE,
                           "batch: a request of %d positions needs %d KV pages; the whole cache has %d (raise the KV "
                           "budget or lower -n)", need, pages_for(b, need), meshlm_kv_pool_pages(b->kv));
    meshlm_sampler check;
    int rc = meshlm_sampler_init(&check, sp, 1);
    meshlm_sampler_free(&check);
    if (rc) return rc;
    if (b->next_id == INT32_MAX)
        return meshlm_fail(MESHLM_ERR_RANGE, "batch: %d requests submitted: no ids are left", b->next_id);
    if (b->n_reqs == b->cap_reqs) {
        int32_t cap = b->cap_reqs ? 2 * b->cap_reqs : 64;
        request *grown = realloc(b->reqs, (size_t)cap * sizeof *grown);
        if (!grown) return meshlm_fail(MESHLM_ERR_NOMEM, "batch: out of memory for requests");
        b->reqs = grown;
        b->cap_reqs = cap;
    }
    request *r = &b->reqs[b->n_reqs];
    *r = (request){.id = b->next_id, .n_prompt = n, .n_predict = n_predict, .need = need, .sp = *sp};
    r->prompt = malloc((size_t)n * sizeof *r->prompt);
    r->gen = malloc((size_t)(need - n + 1) * sizeof *r->gen);
    if (!r->prompt || !r->gen) {
        free(r->prompt), free(r->gen);
        return meshlm_fail(MESHLM_ERR_NOMEM, "batch: out of memory for a request of %d tokens", n);
    }
    memcpy(r->prompt, tokens, (size_t)n * sizeof *tokens);
    if (n_predict == 0)
        r->finish = MESHLM_FINISH_LENGTH;
    else
        b->n_open++;
    b->n_reqs++;
    b->next_id++;
    return MESHLM_OK;
}

meshlm_status meshlm_batch_submit(meshlm_batch *b, const int32_t *tokens, int32_t n_tokens,
                                  const meshlm_sampler_params *sp, int32_t n_predict, int32_t *id) {
    if (!b || !tokens || !sp || !id) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "meshlm_batch_submit: NULL argument");
    int rc = add_request(b, tokens, n_tokens, sp, n_predict);
    if (rc) return (meshlm_status)rc;
    *id = b->next_id - 1;
    return MESHLM_OK;
}

/* The index of the first record whose id is at least id (n_reqs if none): records are in
 * id order. */
static int32_t lower_bound(const meshlm_batch *b, int32_t id) {
    int32_t lo = 0, hi = b->n_reqs;
    while (lo < hi) {
        int32_t mid = lo + (hi - lo) / 2;
        if (b->reqs[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The record of a request a slot runs (never released: only finished ones are). */
static request *running(meshlm_batch *b, const slot *s) { return &b->reqs[lower_bound(b, s->req)]; }

/* id's record index for the public calls, or a failure saying why there is none. */
static int lookup(const meshlm_batch *b, int32_t id, int32_t *index) {
    if (id < 0 || id >= b->next_id)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "batch: no request %d (%d submitted)", id, b->next_id);
    int32_t i = lower_bound(b, id);
    if (i == b->n_reqs || b->reqs[i].id != id || b->reqs[i].released)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "request %d was released", id);
    *index = i;
    return MESHLM_OK;
}

/* Admits waiting requests in order while a slot and their pages are free (cached pages
 * count as free, and those a prompt's prefix finds are shared rather than taken); the first
 * that does not fit waits (and those behind it), so no request starves. At least the last
 * prompt token is evaluated, for its logits, so a shared page is never written. */
static int admit(meshlm_batch *b) {
    int32_t w = lower_bound(b, b->next_wait);
    for (int32_t i = 0; i < b->n_batch && w < b->n_reqs; i++) {
        slot *s = &b->slots[i];
        if (s->req >= 0) continue;
        while (w < b->n_reqs && b->reqs[w].finish) w++;
        b->next_wait = w < b->n_reqs ? b->reqs[w].id : b->next_id;
        if (w == b->n_reqs) break;
        request *r = &b->reqs[w];
        int32_t hit = 0;
        uint64_t chain = 0;
        if ((b->prefix ? meshlm_kv_reserve_prefix(b->kv, &s->seq, r->prompt, r->n_prompt - 1, r->need, &hit, &chain)
                       : meshlm_kv_reserve(b->kv, &s->seq, r->need)) != MESHLM_OK)
            break;
        meshlm_sampler_free(&s->sampler);
        int rc = meshlm_sampler_init(&s->sampler, &r->sp, b->m->hp.n_vocab);
        if (rc) {
            meshlm_kv_release(b->kv, &s->seq);
            return rc;
        }
        for (int32_t t = 0; t < r->n_prompt; t++) meshlm_sampler_accept(&s->sampler, r->prompt[t]);
        s->req = r->id;
        s->n_reg = hit;
        s->chain = chain;
        s->n_done = s->pos = hit * meshlm_kv_pool_page_size(b->kv);
        if (b->prefix) {
            b->prefix_queries += r->n_prompt;
            b->prefix_hits += s->n_done;
        }
        r->t_admit = now_ms();
        w++;
        b->next_wait = w < b->n_reqs ? b->reqs[w].id : b->next_id;
    }
    return MESHLM_OK;
}

/* Appends a row of s at its next position to the step being built. */
static void add_row(meshlm_batch *b, int32_t *n, slot *s, int32_t token) {
    b->tokens[*n] = token;
    b->pos[*n] = s->pos++;
    b->seqs[*n] = &s->seq;
    (*n)++;
}

/* Registers every page of a running sequence that the last step filled, under the tokens
 * at its positions (prompt, then generated), so later requests can share it. */
static void register_full(meshlm_batch *b, slot *s) {
    const request *r = running(b, s);
    int32_t ps = meshlm_kv_pool_page_size(b->kv);
    /* A dropped page breaks the chain: the pages after it cannot say what came before. */
    for (; (s->n_reg + 1) * ps <= s->pos && s->n_reg >= s->seq.n_dropped; s->n_reg++) {
        for (int32_t t = 0, p = s->n_reg * ps; t < ps; t++, p++)
            b->page_tokens[t] = p < r->n_prompt ? r->prompt[p] : r->gen[p - r->n_prompt];
        s->chain = meshlm_kv_register(b->kv, &s->seq, s->n_reg, s->chain, b->page_tokens);
    }
}

/* Ends a request: its pages go back to the pool (registered ones stay cached there) and
 * its slot is free for the queue. */
static void finish(meshlm_batch *b, slot *s, meshlm_finish why) {
    request *r = running(b, s);
    r->finish = why;
    r->t_end = now_ms();
    meshlm_kv_release(b->kv, &s->seq);
    s->req = -1;
    b->n_open--;
}

/* The sequence's next token from its logits row: stop, or keep it and go on. */
static void sample(meshlm_batch *b, slot *s, const float *logits) {
    request *r = running(b, s);
    int32_t tok = meshlm_sampler_sample(&s->sampler, logits);
    if (r->n_gen == 0) r->t_first = now_ms();
    if (!b->ignore_eog && meshlm_token_is_eog(b->m, tok)) {
        finish(b, s, MESHLM_FINISH_STOP);
        return;
    }
    r->gen[r->n_gen++] = tok;
    meshlm_sampler_accept(&s->sampler, tok);
    if (r->n_gen == r->n_predict || s->pos >= b->n_ctx)
        finish(b, s, MESHLM_FINISH_LENGTH);
    else
        s->next = tok;
}

meshlm_status meshlm_batch_step(meshlm_batch *b, int32_t *n_left) {
    int rc = admit(b);
    int32_t n = 0, n_out = 0;
    for (int32_t i = 0; i < b->n_batch && !rc; i++) {
        slot *s = &b->slots[i];
        if (s->req < 0 || s->n_done < running(b, s)->n_prompt) continue;
        b->out_rows[n_out] = n;
        b->out_slot[n_out++] = i;
        add_row(b, &n, s, s->next);
    }
    for (int32_t i = 0; i < b->n_batch && !rc && n < b->max_rows; i++) {
        slot *s = &b->slots[i];
        if (s->req < 0) continue;
        request *r = running(b, s);
        int32_t c = r->n_prompt - s->n_done;
        if (c <= 0) continue;
        if (c > b->n_chunk) c = b->n_chunk;
        if (c > b->max_rows - n) c = b->max_rows - n;
        for (int32_t t = 0; t < c; t++) add_row(b, &n, s, r->prompt[s->n_done++]);
        b->prompt_rows += c;
        if (s->n_done == r->n_prompt) {
            b->out_rows[n_out] = n - 1;
            b->out_slot[n_out++] = i;
        }
    }
    if (!rc && n > 0) {
        meshlm_step st = {.n = n, .tokens = b->tokens, .pos = b->pos, .seqs = b->seqs, .n_out = n_out,
                          .out_rows = b->out_rows};
        rc = b->ms ? meshlm_mesh_session_step(b->ms, &st, b->logits)
                   : meshlm_forward_step(b->m, b->pool, b->kv, &b->buf, &st, b->logits);
    }
    for (int32_t i = 0; i < b->n_batch && !rc && b->prefix; i++)
        if (b->slots[i].req >= 0) register_full(b, &b->slots[i]);
    /* Registered first: a page that leaves the window stays cached for later prompts. */
    int32_t window = meshlm_model_window(&b->m->hp);
    for (int32_t i = 0; i < b->n_batch && !rc && window > 0; i++)
        if (b->slots[i].req >= 0) meshlm_kv_drop(b->kv, &b->slots[i].seq, b->slots[i].pos - window + 1);
    for (int32_t o = 0; o < n_out && !rc; o++)
        sample(b, &b->slots[b->out_slot[o]], b->logits + (size_t)o * b->m->hp.n_vocab);
    if (!rc) rc = admit(b);
    *n_left = b->n_open;
    return (meshlm_status)rc;
}

/* Valid at any time: a running request's tokens so far (its gen array never moves). */
meshlm_status meshlm_batch_result_get(const meshlm_batch *b, int32_t id, meshlm_batch_result *out) {
    if (!b || !out) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "meshlm_batch_result_get: NULL argument");
    int32_t i;
    int rc = lookup(b, id, &i);
    if (rc) return (meshlm_status)rc;
    const request *r = &b->reqs[i];
    *out = (meshlm_batch_result){.tokens = r->gen, .n_prompt = r->n_prompt, .n_gen = r->n_gen, .finish = r->finish};
    if (r->t_first > 0) out->prompt_ms = r->t_first - r->t_admit;
    if (r->finish && r->t_first > 0) out->gen_ms = r->t_end - r->t_first;
    return MESHLM_OK;
}

/* Between steps nothing runs: a running request leaves its slot and pages at once, a
 * waiting one is skipped by admit. */
meshlm_status meshlm_batch_cancel(meshlm_batch *b, int32_t id) {
    if (!b) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "meshlm_batch_cancel: NULL batch");
    int32_t i;
    int rc = lookup(b, id, &i);
    if (rc) return (meshlm_status)rc;
    request *r = &b->reqs[i];
    if (r->finish) return MESHLM_OK;
    for (int32_t k = 0; k < b->n_batch; k++)
        if (b->slots[k].req == id) {
            finish(b, &b->slots[k], MESHLM_FINISH_CANCELLED);
            return MESHLM_OK;
        }
    r->finish = MESHLM_FINISH_CANCELLED;
    r->t_end = now_ms();
    b->n_open--;
    return MESHLM_OK;
}

/* Drops the tombstones, keeping id order, and gives back capacity a burst left unused. */
static void compact(meshlm_batch *b) {
    int32_t k = 0;
    for (int32_t i = 0; i < b->n_reqs; i++)
        if (!b->reqs[i].released) b->reqs[k++] = b->reqs[i];
    b->n_reqs = k;
    b->n_released = 0;
    if (b->cap_reqs > 64 && b->n_reqs < b->cap_reqs / 4) {
        int32_t cap = 2 * b->n_reqs > 64 ? 2 * b->n_reqs : 64;
        request *shrunk = realloc(b->reqs, (size_t)cap * sizeof *shrunk);
        if (shrunk) { /* on failure the larger array stays: nothing is lost */
            b->reqs = shrunk;
            b->cap_reqs = cap;
        }
    }
}

/* The tokens go now; the record once tombstones are half of all records, so a release
 * costs O(1) amortized and memory follows the requests not yet released. */
meshlm_status meshlm_batch_release(meshlm_batch *b, int32_t id) {
    if (!b) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "meshlm_batch_release: NULL batch");
    int32_t i;
    int rc = lookup(b, id, &i);
    if (rc) return (meshlm_status)rc;
    request *r = &b->reqs[i];
    if (!r->finish) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "request %d is still running: cancel it first", id);
    free(r->prompt), free(r->gen);
    r->prompt = r->gen = NULL;
    r->released = true;
    if (++b->n_released * 2 >= b->n_reqs) compact(b);
    return MESHLM_OK;
}

/* Cached pages count as free: the next request may take them. */
void meshlm_batch_kv_pages(const meshlm_batch *b, int32_t *total, int32_t *free_pages) {
    *total = meshlm_kv_pool_pages(b->kv);
    *free_pages = meshlm_kv_pool_free_pages(b->kv) + meshlm_kv_pool_cached_pages(b->kv);
}

/* Counters and the cache's state, for a server's metrics and the tests. */
meshlm_status meshlm_batch_stats_get(const meshlm_batch *b, meshlm_batch_stats *out) {
    if (!b || !out) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "meshlm_batch_stats_get: NULL argument");
    int32_t running = 0;
    for (int32_t i = 0; i < b->n_batch; i++) running += b->slots[i].req >= 0;
    *out = (meshlm_batch_stats){.prefix_queries = b->prefix_queries, .prefix_hits = b->prefix_hits,
                                .prompt_rows = b->prompt_rows, .pages_total = meshlm_kv_pool_pages(b->kv),
                                .pages_free = meshlm_kv_pool_free_pages(b->kv),
                                .pages_cached = meshlm_kv_pool_cached_pages(b->kv),
                                .requests_waiting = b->n_open - running, .requests_running = running};
    return MESHLM_OK;
}
