/* The endpoints: requests decoded, templated and tokenized here on the connection's own
 * thread, handed to the engine as jobs, and their tokens turned back into text (whole
 * characters, stop strings held back) as OpenAI responses or server-sent events. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "server/internal.h"
#include "server/oai.h"
#include "tokenizer/tokenizer.h"

static pthread_mutex_t template_mu = PTHREAD_MUTEX_INITIALIZER;

void meshlm_srv_reply_error(srv_reply *out, int status, const char *param, const char *fmt, ...) {
    srv_error e;
    meshlm_srv_error(&e, status, param, "%s", "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e.message, sizeof e.message, fmt, ap);
    va_end(ap);
    *out = (srv_reply){.status = status, .ctype = "application/json"};
    out->body = meshlm_srv_error_json(&e, &out->len);
}

static void reply_err(srv_reply *out, const srv_error *e) {
    *out = (srv_reply){.status = e->status, .ctype = "application/json"};
    out->body = meshlm_srv_error_json(e, &out->len);
}

/* Compares without an early exit, so response time says nothing about the key. */
static bool same_key(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    unsigned char d = la != lb;
    for (size_t i = 0; i < la; i++) d |= (unsigned char)(a[i] ^ b[i % (lb ? lb : 1)]);
    return !d;
}

srv_route meshlm_srv_route_find(srv_server *s, const char *method, const char *url, const char *auth,
                                const char *api_key_header, srv_reply *out) {
    static const struct { const char *path; const char *method; srv_route r; } routes[] = {
        {"/", "GET", ROUTE_WEBUI},
        {"/health", "GET", ROUTE_HEALTH},
        {"/metrics", "GET", ROUTE_METRICS},
        {"/v1/models", "GET", ROUTE_MODELS},
        {"/models", "GET", ROUTE_MODELS},
        {"/v1/chat/completions", "POST", ROUTE_CHAT},
        {"/chat/completions", "POST", ROUTE_CHAT},
        {"/v1/completions", "POST", ROUTE_COMPLETIONS},
        {"/completions", "POST", ROUTE_COMPLETIONS},
        {"/tokenize", "POST", ROUTE_TOKENIZE},
        {"/detokenize", "POST", ROUTE_DETOKENIZE},
    };
    size_t k = 0;
    while (k < sizeof routes / sizeof routes[0] && strcmp(url, routes[k].path) != 0) k++;
    if (k == sizeof routes / sizeof routes[0] || (routes[k].r == ROUTE_WEBUI && s->p.no_webui)) {
        meshlm_srv_reply_error(out, 404, NULL, "no route %.200s %.200s", method, url);
        return ROUTE_NONE;
    }
    if (strcmp(method, routes[k].method) != 0 && !(!strcmp(method, "HEAD") && !strcmp(routes[k].method, "GET"))) {
        meshlm_srv_reply_error(out, 405, NULL, "%.200s takes %s, not %.40s", url, routes[k].method, method);
        out->allow = routes[k].method;
        return ROUTE_NONE;
    }
    /* The page holds no data and asks for the key itself; /health tells a loading server. */
    if (routes[k].r != ROUTE_HEALTH && routes[k].r != ROUTE_WEBUI && s->p.api_key) {
        const char *key = api_key_header;
        if (!key && auth && !strncmp(auth, "Bearer ", 7)) key = auth + 7;
        if (!key || !same_key(key, s->p.api_key)) {
            meshlm_srv_reply_error(out, 401, NULL, "%s API key", key ? "incorrect" : "missing");
            return ROUTE_NONE;
        }
    }
    return routes[k].r;
}

/* A follower turns one job's tokens into text: the detokenizer, then the stop strings. */
typedef struct follower {
    meshlm_detokenizer *d;
    meshlm_stop *stop;
    int32_t n_read, n_gen, n_prompt;
    bool stopped, done, sent_final;
    const char *finish; /* "stop", "length", or NULL when aborted or failed */
    char *text;         /* the text so far (a stream's: since the last chunk) */
    size_t n_text, cap_text;
} follower;

struct srv_stream {
    srv_server *s;
    srv_call *call;
    srv_kind kind;
    bool include_usage, started, ended;
    follower *f;
    int32_t n, per_prompt;
    char id[64];
    time_t created;
    char *out;
    size_t n_out, cap_out, off;
    double last_out;
    int32_t *scratch;
    int32_t cap_scratch;
};

static bool append(char **buf, size_t *n, size_t *cap, const char *text, size_t len) {
    if (*n + len + 1 > *cap) {
        size_t c = *cap ? *cap : 256;
        while (c < *n + len + 1) c *= 2;
        char *grown = realloc(*buf, c);
        if (!grown) return false;
        *buf = grown;
        *cap = c;
    }
    if (len) memcpy(*buf + *n, text, len);
    *n += len;
    (*buf)[*n] = '\0';
    return true;
}

/* Text the detokenizer completed, through the stop strings; a stop ends the job early. */
static int emit(srv_stream *st, follower *f, srv_job *j, const char *t, size_t len) {
    if (f->stop) {
        bool stopped = false;
        if (meshlm_stop_push(f->stop, t, len, &t, &len, &stopped) != MESHLM_OK) return -1;
        if (stopped) {
            f->stopped = f->done = true;
            f->finish = "stop";
            meshlm_srv_queue_cancel(&st->s->q, st->call, j, true);
        }
    }
    return append(&f->text, &f->n_text, &f->cap_text, t, len) ? 0 : -1;
}

static int feed(srv_stream *st, follower *f, srv_job *j, const int32_t *toks, int32_t n) {
    for (int32_t k = 0; k < n && !f->stopped; k++) {
        const char *t;
        size_t len;
        if (meshlm_detokenizer_push(f->d, toks[k], &t, &len) != MESHLM_OK) return -1;
        f->n_gen++;
        if (emit(st, f, j, t, len) < 0) return -1;
    }
    return 0;
}

/* The job has finished: what the detokenizer and the stop strings held back comes out. */
static int finish(srv_stream *st, follower *f, srv_job *j, meshlm_finish fin) {
    const char *t;
    size_t len;
    if (meshlm_detokenizer_flush(f->d, &t, &len) != MESHLM_OK || emit(st, f, j, t, len) < 0) return -1;
    if (!f->stopped && f->stop) {
        if (meshlm_stop_flush(f->stop, &t, &len) != MESHLM_OK || !append(&f->text, &f->n_text, &f->cap_text, t, len))
            return -1;
    }
    if (!f->stopped)
        f->finish = fin == MESHLM_FINISH_STOP ? "stop" : fin == MESHLM_FINISH_LENGTH ? "length" : NULL;
    f->done = true;
    return 0;
}

static bool has_news(srv_stream *st) {
    for (int32_t i = 0; i < st->n; i++) {
        srv_job *j = &st->call->jobs[i];
        if (!st->f[i].done && (j->n_tokens > st->f[i].n_read || j->state == JOB_DONE)) return true;
    }
    return false;
}

/* Waits up to 100 ms for the engine, then feeds each job's new tokens to its follower. */
static int advance(srv_stream *st) {
    srv_call *c = st->call;
    pthread_mutex_lock(&c->mu);
    if (!has_news(st)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&c->cv, &c->mu, &ts);
    }
    pthread_mutex_unlock(&c->mu);
    for (int32_t i = 0; i < st->n; i++) {
        follower *f = &st->f[i];
        srv_job *j = &c->jobs[i];
        if (f->done) continue;
        pthread_mutex_lock(&c->mu);
        int32_t n_new = j->n_tokens - f->n_read;
        bool done = j->state == JOB_DONE;
        meshlm_finish fin = j->finish;
        if (n_new > st->cap_scratch) {
            int32_t *grown = realloc(st->scratch, (size_t)n_new * sizeof *grown);
            if (!grown) {
                pthread_mutex_unlock(&c->mu);
                return -1;
            }
            st->scratch = grown;
            st->cap_scratch = n_new;
        }
        if (n_new > 0) memcpy(st->scratch, j->tokens + f->n_read, (size_t)n_new * sizeof *st->scratch);
        pthread_mutex_unlock(&c->mu);
        f->n_read += n_new;
        if (feed(st, f, j, st->scratch, n_new) < 0) return -1;
        if (done && !f->done && finish(st, f, j, fin) < 0) return -1;
    }
    return 0;
}

static bool all_done(const srv_stream *st) {
    for (int32_t i = 0; i < st->n; i++)
        if (!st->f[i].done) return false;
    return true;
}

static void stream_destroy(srv_stream *st) {
    if (!st) return;
    for (int32_t i = 0; i < st->n && st->f; i++) {
        meshlm_detokenizer_free(st->f[i].d);
        meshlm_stop_free(st->f[i].stop);
        free(st->f[i].text);
    }
    free(st->f);
    free(st->out);
    free(st->scratch);
    meshlm_srv_call_unref(st->call);
    free(st);
}

void meshlm_srv_stream_free(srv_stream *st) {
    if (!st) return;
    meshlm_srv_queue_cancel(&st->s->q, st->call, NULL, false);
    stream_destroy(st);
}

/* The prompt's tokens: the chat template's rendering (with the BOS the model expects when
 * the template writes none, as `meshlm chat` does), or a completion prompt's text or ids. */
static int32_t tokenize(srv_server *s, const char *text, size_t len, bool chat, bool add_special, int32_t **ids,
                        srv_error *err) {
    int32_t n = 0, off = chat && meshlm_tokenizer_add_bos(s->m->tok) ? 1 : 0, cap = (int32_t)(len < 1024 ? 1024 : len) + 2;
    bool special = !chat && add_special;
    if (!(*ids = malloc((size_t)cap * sizeof **ids))) goto oom;
    meshlm_status rc = meshlm_tokenize(s->m, text, len, special, true, *ids + off, cap - off, &n);
    if (rc == MESHLM_ERR_RANGE) {
        int32_t *grown = realloc(*ids, (size_t)(n + off) * sizeof *grown);
        if (!grown) goto oom;
        *ids = grown;
        rc = meshlm_tokenize(s->m, text, len, special, true, *ids + off, n, &n);
    }
    if (rc != MESHLM_OK) {
        meshlm_srv_error(err, 400, NULL, "cannot tokenize: %s", meshlm_last_error());
        free(*ids);
        *ids = NULL;
        return -1;
    }
    if (!off) return n;
    int32_t bos = meshlm_token_bos(s->m);
    if (bos < 0 || (n > 0 && (*ids)[off] == bos)) {
        memmove(*ids, *ids + off, (size_t)n * sizeof **ids);
        return n;
    }
    (*ids)[0] = bos;
    return n + 1;
oom:
    free(*ids);
    *ids = NULL;
    meshlm_srv_error(err, 500, NULL, "out of memory");
    return -1;
}

static int32_t chat_prompt(srv_server *s, const srv_request *r, int32_t **ids, srv_error *err) {
    char *text = NULL;
    size_t len = 0;
    pthread_mutex_lock(&template_mu);
    meshlm_status rc = meshlm_chat_render_json(s->tmpl, r->messages, &text, &len);
    if (rc != MESHLM_OK) meshlm_srv_error(err, rc == MESHLM_ERR_NOMEM ? 500 : 400, "messages",
                                          "the chat template failed: %s", meshlm_last_error());
    pthread_mutex_unlock(&template_mu);
    if (rc != MESHLM_OK) return -1;
    int32_t n = tokenize(s, text, len, true, false, ids, err);
    meshlm_free(text);
    return n;
}

static bool known_model(const srv_server *s, const char *name) {
    return !name || !strcmp(name, s->name) || !strcmp(name, s->base) ||
           (strlen(name) == s->base_stem && !strncmp(name, s->base, s->base_stem));
}

/* Fills the call's jobs from the request's prompts: n choices each, checked against the
 * context. */
static int make_jobs(srv_server *s, const srv_request *r, srv_call *c, srv_error *err) {
    for (size_t p = 0; p < (r->kind == SRV_CHAT ? 1 : r->n_prompts); p++) {
        int32_t *ids = NULL, n;
        if (r->kind == SRV_CHAT) {
            n = chat_prompt(s, r, &ids, err);
        } else if (r->prompts[p].text) {
            n = tokenize(s, r->prompts[p].text, r->prompts[p].len, false, true, &ids, err);
        } else {
            n = r->prompts[p].n_ids;
            for (int32_t k = 0; k < n; k++)
                if (r->prompts[p].ids[k] >= s->n_vocab) {
                    meshlm_srv_error(err, 400, "prompt", "token id %d is out of range (the vocabulary has %d)",
                                     r->prompts[p].ids[k], s->n_vocab);
                    return -1;
                }
            if (!(ids = malloc((size_t)(n ? n : 1) * sizeof *ids))) {
                meshlm_srv_error(err, 500, NULL, "out of memory");
                return -1;
            }
            memcpy(ids, r->prompts[p].ids, (size_t)n * sizeof *ids);
        }
        if (n < 0) return -1;
        const char *where = r->kind == SRV_CHAT ? "messages" : "prompt";
        if (n == 0) {
            free(ids);
            meshlm_srv_error(err, 400, where, "the prompt is empty (and the model adds no BOS token)");
            return -1;
        }
        if (n >= s->n_ctx || (r->max_tokens > 0 && n + r->max_tokens > s->n_ctx)) {
            free(ids);
            if (r->max_tokens > 0)
                meshlm_srv_error(err, 400, where, "This model's maximum context length is %d tokens. However, you "
                                 "requested %lld tokens (%d in the %s, %lld in the completion). Please reduce the "
                                 "length of the %s or completion.", s->n_ctx, (long long)(n + r->max_tokens), n,
                                 where, (long long)r->max_tokens, where);
            else
                meshlm_srv_error(err, 400, where, "This model's maximum context length is %d tokens. However, your "
                                 "%s resulted in %d tokens. Please reduce the length of the %s.", s->n_ctx, where, n,
                                 where);
            err->code = "context_length_exceeded";
            return -1;
        }
        for (int32_t k = 0; k < r->n; k++) {
            srv_job *j = &c->jobs[p * (size_t)r->n + (size_t)k];
            if (!(j->prompt = k + 1 < r->n ? malloc((size_t)n * sizeof *ids) : ids)) {
                free(ids);
                meshlm_srv_error(err, 500, NULL, "out of memory");
                return -1;
            }
            if (j->prompt != ids) memcpy(j->prompt, ids, (size_t)n * sizeof *ids);
            j->n_prompt = n;
            j->n_predict = r->max_tokens > 0 ? (int32_t)r->max_tokens : -1;
            j->sp = r->sp;
            /* The choices of one prompt differ: each its own seed. */
            if (r->sp.seed != UINT64_MAX) j->sp.seed = r->sp.seed + (uint64_t)k;
        }
    }
    return 0;
}

static srv_stream *stream_new(srv_server *s, const srv_request *r, srv_call *c, srv_error *err) {
    static unsigned long long counter;
    srv_stream *st = calloc(1, sizeof *st);
    if (!st || !(st->f = calloc((size_t)c->n_jobs, sizeof *st->f))) {
        free(st);
        meshlm_srv_error(err, 500, NULL, "out of memory");
        return NULL;
    }
    st->s = s;
    st->call = c;
    st->n = c->n_jobs;
    st->kind = r->kind;
    st->per_prompt = r->n;
    st->include_usage = r->include_usage;
    st->created = time(NULL);
    st->last_out = meshlm_srv_now();
    unsigned long long k = __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED);
    snprintf(st->id, sizeof st->id, "%s-%llx%06llx", r->kind == SRV_CHAT ? "chatcmpl" : "cmpl",
             (unsigned long long)st->created, k & 0xffffff);
    for (int32_t i = 0; i < st->n; i++) {
        st->f[i].n_prompt = c->jobs[i].n_prompt;
        if (meshlm_detokenizer_create(s->m, false, &st->f[i].d) != MESHLM_OK ||
            (r->n_stops && meshlm_stop_create((const char *const *)r->stops, r->n_stops, &st->f[i].stop) != MESHLM_OK)) {
            meshlm_srv_error(err, 500, NULL, "%s", meshlm_last_error());
            st->n = i + 1;
            st->call = NULL;
            stream_destroy(st);
            return NULL;
        }
    }
    return st;
}

/* Waits until the engine has taken every job into the batch (or refused one). */
static int wait_submitted(srv_stream *st, srv_alive_fn alive, void *actx, srv_error *err) {
    srv_call *c = st->call;
    for (;;) {
        pthread_mutex_lock(&c->mu);
        int32_t queued = 0, failed = -1;
        for (int32_t i = 0; i < c->n_jobs; i++) {
            queued += c->jobs[i].state == JOB_QUEUED;
            if (c->jobs[i].failed) failed = i;
        }
        if (failed >= 0) meshlm_srv_error(err, c->jobs[failed].fail_status, NULL, "%s", c->error);
        if (queued && failed < 0) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 1;
            pthread_cond_timedwait(&c->cv, &c->mu, &ts);
        }
        pthread_mutex_unlock(&c->mu);
        if (failed >= 0) return -1;
        if (!queued) return 0;
        if (!alive(actx)) return -2;
    }
}

static void usage_of(const srv_stream *st, srv_usage *u) {
    *u = (srv_usage){0};
    for (int32_t i = 0; i < st->n; i++) {
        u->completion += st->f[i].n_gen;
        /* The n choices of one prompt share it: counted once. */
        if (i % st->per_prompt == 0) u->prompt += st->f[i].n_prompt;
    }
}

/* Blocks until every choice is done, then the whole response. */
static void respond_whole(srv_stream *st, srv_alive_fn alive, void *actx, srv_reply *out) {
    while (!all_done(st)) {
        if (advance(st) < 0) {
            meshlm_srv_reply_error(out, 500, NULL, "out of memory");
            return;
        }
        if (!all_done(st) && !alive(actx)) {
            *out = (srv_reply){.status = 0};
            return;
        }
    }
    srv_choice *ch = calloc(st->n > 0 ? (size_t)st->n : 1, sizeof *ch);
    if (!ch) {
        meshlm_srv_reply_error(out, 500, NULL, "out of memory");
        return;
    }
    for (int32_t i = 0; i < st->n; i++) {
        if (!st->f[i].finish) {
            free(ch);
            if (st->call->jobs[i].failed) meshlm_srv_reply_error(out, 500, NULL, "%s", st->call->error);
            else meshlm_srv_reply_error(out, 503, NULL, "the server is shutting down");
            return;
        }
        ch[i] = (srv_choice){st->f[i].text, st->f[i].n_text, st->f[i].finish};
    }
    srv_usage u;
    usage_of(st, &u);
    *out = (srv_reply){.status = 200, .ctype = "application/json"};
    out->body = meshlm_srv_response_json(st->kind, st->id, st->created, st->s->name, ch, (size_t)st->n, u, &out->len);
    free(ch);
    if (!out->body) meshlm_srv_reply_error(out, 500, NULL, "out of memory");
}

/* Chat and completions. */
static void generate(srv_server *s, srv_kind kind, const char *body, size_t len, srv_alive_fn alive, void *actx,
                     srv_reply *out) {
    srv_request r;
    srv_error err;
    srv_call *c = NULL;
    srv_stream *st = NULL;
    if (meshlm_srv_decode(kind, body, len, &r, &err) < 0) {
        reply_err(out, &err);
        return;
    }
    if (!known_model(s, r.model)) {
        meshlm_srv_error(&err, 404, "model", "The model `%.200s` does not exist", r.model);
        err.code = "model_not_found";
        goto fail;
    }
    size_t n_jobs = (kind == SRV_CHAT ? 1 : r.n_prompts) * (size_t)r.n;
    if (n_jobs > (size_t)s->q.limit) {
        meshlm_srv_error(&err, 400, "n", "%zu sequences in one request; the server runs at most %d at once", n_jobs,
                         s->q.limit);
        goto fail;
    }
    if (!(c = meshlm_srv_call_new((int32_t)n_jobs))) {
        meshlm_srv_error(&err, 500, NULL, "out of memory");
        goto fail;
    }
    if (make_jobs(s, &r, c, &err) < 0 || !(st = stream_new(s, &r, c, &err))) goto fail;
    c = NULL; /* the stream holds it now */
    int rc = meshlm_srv_queue_push(&s->q, st->call);
    if (rc < 0) {
        meshlm_srv_error(&err, 503, NULL, rc == -1 ? "the server is busy: try again later" : "the server is shutting down");
        reply_err(out, &err);
        out->retry_after = rc == -1 ? 1 : 0;
        stream_destroy(st);
        meshlm_srv_request_free(&r);
        return;
    }
    rc = wait_submitted(st, alive, actx, &err);
    if (rc == -2) {
        *out = (srv_reply){.status = 0};
        meshlm_srv_stream_free(st);
    } else if (rc < 0) {
        reply_err(out, &err);
        meshlm_srv_stream_free(st);
    } else if (r.stream) {
        *out = (srv_reply){.status = 200, .ctype = "text/event-stream", .stream = st};
    } else {
        respond_whole(st, alive, actx, out);
        meshlm_srv_stream_free(st);
    }
    meshlm_srv_request_free(&r);
    return;
fail:
    reply_err(out, &err);
    meshlm_srv_call_unref(c);
    meshlm_srv_request_free(&r);
}

/* Appends a malloc'd event (NULL: out of memory) whose length *len holds, and frees it. */
static bool put_out(srv_stream *st, char *text, const size_t *len) {
    bool ok = text && append(&st->out, &st->n_out, &st->cap_out, text, *len);
    free(text);
    return ok;
}

/* The events of one round: each choice's new text, the final chunks of those that ended,
 * and after the last one the usage and [DONE]. */
static bool stream_round(srv_stream *st) {
    const char *model = st->s->name;
    size_t len;
    for (int32_t i = 0; i < st->n; i++) {
        follower *f = &st->f[i];
        if (f->n_text && !put_out(st, meshlm_srv_chunk(st->kind, st->id, st->created, model, i, false, f->text,
                                                       f->n_text, NULL, NULL, &len), &len))
            return false;
        f->n_text = 0;
        if (!f->done || f->sent_final) continue;
        f->sent_final = true;
        if (f->finish) {
            if (!put_out(st, meshlm_srv_chunk(st->kind, st->id, st->created, model, i, false, "", 0, f->finish, NULL,
                                              &len), &len))
                return false;
        } else {
            srv_error e;
            if (st->call->jobs[i].failed) meshlm_srv_error(&e, 500, NULL, "%s", st->call->error);
            else meshlm_srv_error(&e, 503, NULL, "the server is shutting down");
            char *err = meshlm_srv_error_json(&e, &len);
            bool ok = err && append(&st->out, &st->n_out, &st->cap_out, "data: ", 6) &&
                      append(&st->out, &st->n_out, &st->cap_out, err, len) &&
                      append(&st->out, &st->n_out, &st->cap_out, "\n\n", 2);
            free(err);
            if (!ok) return false;
        }
    }
    if (!all_done(st)) return true;
    if (st->include_usage) {
        srv_usage u;
        usage_of(st, &u);
        if (!put_out(st, meshlm_srv_chunk(st->kind, st->id, st->created, model, -1, false, NULL, 0, NULL, &u, &len),
                     &len))
            return false;
    }
    st->ended = true;
    return append(&st->out, &st->n_out, &st->cap_out, "data: [DONE]\n\n", 14);
}

long meshlm_srv_stream_read(srv_stream *st, char *buf, size_t max, srv_alive_fn alive, void *actx) {
    double keepalive = st->s->p.timeout_s > 3 ? st->s->p.timeout_s / 3.0 : 1.0;
    for (;;) {
        if (st->off < st->n_out) {
            size_t n = st->n_out - st->off < max ? st->n_out - st->off : max;
            memcpy(buf, st->out + st->off, n);
            st->off += n;
            st->last_out = meshlm_srv_now();
            return (long)n;
        }
        st->off = st->n_out = 0;
        if (st->ended) return 0;
        size_t len;
        if (!st->started) {
            st->started = true;
            for (int32_t i = 0; i < st->n && st->kind == SRV_CHAT; i++)
                if (!put_out(st, meshlm_srv_chunk(st->kind, st->id, st->created, st->s->name, i, true, "", 0, NULL,
                                                  NULL, &len), &len))
                    return -1;
            continue;
        }
        /* A departed client is noticed within a step, not at the next failed write. */
        if (!alive(actx) || advance(st) < 0 || !stream_round(st)) return -1;
        if (st->n_out) continue;
        /* An SSE comment keeps a quiet stream (a request still waiting) from timing out. */
        if (meshlm_srv_now() - st->last_out > keepalive && !append(&st->out, &st->n_out, &st->cap_out, ": keep-alive\n\n", 15))
            return -1;
    }
}

static void tokenize_route(srv_server *s, const char *body, size_t len, srv_reply *out) {
    srv_request r;
    srv_error err;
    if (meshlm_srv_decode(SRV_TOKENIZE, body, len, &r, &err) < 0) {
        reply_err(out, &err);
        return;
    }
    int32_t *ids = NULL, n = tokenize(s, r.prompts[0].text, r.prompts[0].len, false, r.add_special, &ids, &err);
    if (n < 0) {
        err.param = "content";
        reply_err(out, &err);
    } else {
        *out = (srv_reply){.status = 200, .ctype = "application/json"};
        if (!(out->body = meshlm_srv_tokens_json(ids, n, &out->len)))
            meshlm_srv_reply_error(out, 500, NULL, "out of memory");
    }
    free(ids);
    meshlm_srv_request_free(&r);
}

static void detokenize_route(srv_server *s, const char *body, size_t len, srv_reply *out) {
    srv_request r;
    srv_error err;
    if (meshlm_srv_decode(SRV_DETOKENIZE, body, len, &r, &err) < 0) {
        reply_err(out, &err);
        return;
    }
    meshlm_detokenizer *d = NULL;
    char *text = NULL;
    size_t n_text = 0, cap = 0;
    bool ok = meshlm_detokenizer_create(s->m, true, &d) == MESHLM_OK;
    const char *t;
    size_t tl;
    for (int32_t i = 0; ok && i < r.n_tokens; i++) {
        if (r.tokens[i] >= s->n_vocab) {
            meshlm_srv_reply_error(out, 400, "tokens", "token id %d is out of range (the vocabulary has %d)",
                                   r.tokens[i], s->n_vocab);
            goto done;
        }
        ok = meshlm_detokenizer_push(d, r.tokens[i], &t, &tl) == MESHLM_OK && append(&text, &n_text, &cap, t, tl);
    }
    ok = ok && meshlm_detokenizer_flush(d, &t, &tl) == MESHLM_OK && append(&text, &n_text, &cap, t, tl);
    *out = (srv_reply){.status = 200, .ctype = "application/json"};
    if (!ok || !(out->body = meshlm_srv_content_json(text, n_text, &out->len)))
        meshlm_srv_reply_error(out, 500, NULL, "cannot detokenize: %s", meshlm_last_error());
done:
    free(text);
    meshlm_detokenizer_free(d);
    meshlm_srv_request_free(&r);
}

static void text_reply(srv_reply *out, int status, const char *ctype, char *body, size_t len) {
    *out = (srv_reply){.status = status, .ctype = ctype, .body = body, .len = len};
    if (!body) meshlm_srv_reply_error(out, 500, NULL, "out of memory");
}

void meshlm_srv_handle(srv_server *s, srv_route r, const char *body, size_t len, srv_alive_fn alive, void *actx,
                       srv_reply *out) {
    if (r == ROUTE_WEBUI) {
        *out = (srv_reply){.status = 200, .ctype = "text/html; charset=utf-8", .page = meshlm_srv_webui_page,
                           .len = meshlm_srv_webui_page_len,
                           .csp = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                                  "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
                                  "frame-ancestors 'none'"};
        return;
    }
    bool ready = __atomic_load_n(&s->ready, __ATOMIC_ACQUIRE);
    if (r == ROUTE_HEALTH) {
        if (ready) text_reply(out, 200, "application/json", strdup("{\"status\":\"ok\"}"), 15);
        else meshlm_srv_reply_error(out, 503, NULL, "Loading model");
        if (!ready) out->retry_after = 1;
        return;
    }
    if (r == ROUTE_METRICS) {
        srv_metrics m = {0};
        if (ready) meshlm_srv_engine_snapshot(&s->e, &m);
        size_t n = 0;
        char *text = meshlm_srv_metrics_render(&m, &n);
        text_reply(out, 200, "text/plain; version=0.0.4", text, n);
        return;
    }
    if (r == ROUTE_MODELS) {
        size_t n = 0;
        char *text = meshlm_srv_models_json(s->name, s->created, ready ? s->n_ctx : 0, &n);
        text_reply(out, 200, "application/json", text, n);
        return;
    }
    if (!ready) {
        meshlm_srv_reply_error(out, 503, NULL, "Loading model");
        out->retry_after = 1;
        return;
    }
    if (__atomic_load_n(&s->e.broken, __ATOMIC_ACQUIRE)) {
        meshlm_srv_reply_error(out, 503, NULL, "the mesh of ranks failed (a rank is lost or unreachable): stopping");
        return;
    }
    if (__atomic_load_n(&s->stopping, __ATOMIC_ACQUIRE)) {
        meshlm_srv_reply_error(out, 503, NULL, "the server is shutting down");
        return;
    }
    if (r == ROUTE_TOKENIZE) {
        tokenize_route(s, body, len, out);
        return;
    }
    if (r == ROUTE_DETOKENIZE) {
        detokenize_route(s, body, len, out);
        return;
    }
    generate(s, r == ROUTE_CHAT ? SRV_CHAT : SRV_COMPLETION, body, len, alive, actx, out);
}
