#include "apps/bench_serve_load.h"

#include <curl/curl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { MAX_ERROR_BODY = 2048, POLL_MS = 100 };

double meshlm_bs_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

uint64_t meshlm_bs_rand(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

typedef struct buf {
    char *p;
    size_t n, cap;
} buf;

/* Appends n bytes and keeps the text NUL-terminated. */
static bool buf_add(buf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *grown = realloc(b->p, cap);
        if (!grown) return false;
        b->p = grown;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
    return true;
}

/* One request in flight and what its stream has given so far. An easy handle lives as long
 * as its slot, so its connection is reused by the next request. */
typedef struct slot {
    const meshlm_bs_load *l;
    struct curl_slist *headers;
    CURL *easy;
    bool busy;
    char *body;
    void *tag;
    long status;
    buf line, data, text, err, why; /* partial line, event data, streamed text, error body, failure */
    bool has_data, done_seen, oom;
    double start, last;
    double *chunk_t;
    size_t n_chunks, cap_chunks;
    int64_t prompt_tokens, completion_tokens;
    char errbuf[CURL_ERROR_SIZE];
} slot;

/* Keeps the first reason a request failed. */
static void note_failure(slot *s, const char *what, const char *detail, size_t n) {
    if (s->why.n) return;
    if (n > 500) n = 500;
    if (!buf_add(&s->why, what, strlen(what)) || !buf_add(&s->why, detail, n)) s->oom = true;
}

static bool add_chunk_time(slot *s, double t) {
    if (s->n_chunks == s->cap_chunks) {
        size_t cap = s->cap_chunks ? s->cap_chunks * 2 : 64;
        double *grown = realloc(s->chunk_t, cap * sizeof *grown);
        if (!grown) return false;
        s->chunk_t = grown;
        s->cap_chunks = cap;
    }
    s->chunk_t[s->n_chunks++] = t;
    return true;
}

/* A complete event: [DONE], an error, or a chunk with text and/or usage. */
static bool on_event(slot *s, double t) {
    const char *d = s->data.p;
    size_t n = s->data.n;
    s->has_data = false;
    s->data.n = 0;
    if (s->done_seen) return true;
    if (n == 6 && !memcmp(d, "[DONE]", 6)) {
        s->done_seen = true;
        return true;
    }
    json_error_t je;
    /* A model may stream a NUL character (\u0000): it is text like any other. */
    json_t *j = json_loadb(d, n, JSON_ALLOW_NUL, &je);
    if (!json_is_object(j)) {
        note_failure(s, "an event is not a JSON object: ", d, n);
        json_decref(j);
        return !s->oom;
    }
    json_t *e = json_object_get(j, "error");
    if (e && !json_is_null(e)) note_failure(s, "error event: ", d, n);
    json_t *c0 = json_array_get(json_object_get(j, "choices"), 0);
    json_t *txt = s->l->chat ? json_object_get(json_object_get(c0, "delta"), "content") : json_object_get(c0, "text");
    bool ok = !s->oom;
    if (json_is_string(txt) && json_string_length(txt) > 0)
        ok = ok && add_chunk_time(s, t) && buf_add(&s->text, json_string_value(txt), json_string_length(txt));
    json_t *u = json_object_get(j, "usage");
    json_t *pt = json_object_get(u, "prompt_tokens"), *ct = json_object_get(u, "completion_tokens");
    if (json_is_integer(pt)) s->prompt_tokens = json_integer_value(pt);
    if (json_is_integer(ct)) s->completion_tokens = json_integer_value(ct);
    json_decref(j);
    return ok;
}

/* One line of the stream, without its "\n": a blank line ends an event, "data:" lines make
 * its data; comments (keep-alives) and other fields are skipped. */
static bool on_line(slot *s, const char *p, size_t n, double t) {
    if (n && p[n - 1] == '\r') n--;
    if (!n) return s->has_data ? on_event(s, t) : true;
    if (p[0] == ':') return true;
    const char *colon = memchr(p, ':', n);
    size_t k = colon ? (size_t)(colon - p) : n;
    if (k != 4 || memcmp(p, "data", 4) != 0) return true;
    const char *v = colon ? colon + 1 : p + n;
    size_t vn = (size_t)(p + n - v);
    if (vn && *v == ' ') v++, vn--;
    if (s->has_data && !buf_add(&s->data, "\n", 1)) return false;
    s->has_data = true;
    return buf_add(&s->data, v, vn);
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud) {
    slot *s = ud;
    size_t n = size * nmemb;
    double t = meshlm_bs_now();
    s->last = t;
    if (!s->status && curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &s->status) != CURLE_OK) s->status = 0;
    if (s->status < 200 || s->status > 299) {
        /* An error reply is kept (its start) for the message, never parsed as a stream. */
        size_t room = s->err.n < MAX_ERROR_BODY ? MAX_ERROR_BODY - s->err.n : 0;
        if (buf_add(&s->err, p, n < room ? n : room)) return n;
        s->oom = true;
        return 0;
    }
    if (!buf_add(&s->line, p, n)) {
        s->oom = true;
        return 0;
    }
    size_t off = 0;
    const char *nl;
    while ((nl = memchr(s->line.p + off, '\n', s->line.n - off))) {
        size_t len = (size_t)(nl - (s->line.p + off));
        if (!on_line(s, s->line.p + off, len, t)) {
            s->oom = true;
            return 0;
        }
        off += len + 1;
    }
    memmove(s->line.p, s->line.p + off, s->line.n - off);
    s->line.n -= off;
    return n;
}

/* A new handle for each request: libcurl counts the retries of dead kept-alive connections
 * per handle across transfers, so reusing one fails a request once a server (llama-server
 * does) has closed a few idle connections under it. Connections stay pooled in the multi. */
static bool slot_easy(slot *s) {
    curl_easy_cleanup(s->easy);
    if (!(s->easy = curl_easy_init())) return false;
    /* Connections wait a while for a busy server, transfers as long as generation takes. */
    return curl_easy_setopt(s->easy, CURLOPT_URL, s->l->url) == CURLE_OK &&
           curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, s->headers) == CURLE_OK &&
           curl_easy_setopt(s->easy, CURLOPT_WRITEFUNCTION, on_body) == CURLE_OK &&
           curl_easy_setopt(s->easy, CURLOPT_WRITEDATA, s) == CURLE_OK &&
           curl_easy_setopt(s->easy, CURLOPT_PRIVATE, s) == CURLE_OK &&
           curl_easy_setopt(s->easy, CURLOPT_ERRORBUFFER, s->errbuf) == CURLE_OK &&
           curl_easy_setopt(s->easy, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
           curl_easy_setopt(s->easy, CURLOPT_CONNECTTIMEOUT, 30L) == CURLE_OK;
}

static void slot_free(slot *s) {
    curl_easy_cleanup(s->easy);
    free(s->body);
    buf *all[] = {&s->line, &s->data, &s->text, &s->err, &s->why};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]->p);
    free(s->chunk_t);
}

static bool slot_start(CURLM *m, slot *s, char *body, void *tag, double now) {
    s->body = body;
    s->tag = tag;
    s->status = 0;
    s->line.n = s->data.n = s->text.n = s->err.n = s->why.n = 0;
    s->has_data = s->done_seen = s->oom = false;
    s->start = s->last = now;
    s->n_chunks = 0;
    s->prompt_tokens = s->completion_tokens = -1;
    s->errbuf[0] = '\0';
    if (!slot_easy(s) || curl_easy_setopt(s->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body)) != CURLE_OK ||
        curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, body) != CURLE_OK || curl_multi_add_handle(m, s->easy) != CURLM_OK)
        return false;
    s->busy = true;
    return true;
}

/* Decides how a finished transfer went, into r (whose strings point into s). */
static void slot_result(slot *s, CURLcode rc, meshlm_bs_result *r) {
    char msg[CURL_ERROR_SIZE + 64];
    if (!s->oom && rc == CURLE_OK && s->status >= 200 && s->status <= 299) {
        /* A stream cut short of its final newline still delivers its last event. */
        if (s->line.n && !on_line(s, s->line.p, s->line.n, s->last)) s->oom = true;
        if (!s->oom && s->has_data && !on_event(s, s->last)) s->oom = true;
        if (!s->done_seen) note_failure(s, "the stream ended before data: [DONE]", "", 0);
    }
    if (s->oom) {
        s->why.n = 0;
        note_failure(s, "out of memory", "", 0);
    } else if (rc != CURLE_OK) {
        s->why.n = 0;
        snprintf(msg, sizeof msg, "%s", s->errbuf[0] ? s->errbuf : curl_easy_strerror(rc));
        note_failure(s, "transfer failed: ", msg, strlen(msg));
    } else if (s->status < 200 || s->status > 299) {
        s->why.n = 0;
        snprintf(msg, sizeof msg, "HTTP %ld: ", s->status);
        note_failure(s, msg, s->err.p ? s->err.p : "", s->err.n);
    }
    *r = (meshlm_bs_result){.ok = !s->why.n, .error = s->why.p, .start = s->start, .end = s->last,
                            .chunk_t = s->chunk_t, .n_chunks = s->n_chunks, .prompt_tokens = s->prompt_tokens,
                            .completion_tokens = s->completion_tokens, .text = s->text.p ? s->text.p : "",
                            .n_text = s->text.n};
}

/* An exponential gap: Poisson arrivals at rate per second. */
static double gap(uint64_t *rng, double rate) {
    double u = ((double)(meshlm_bs_rand(rng) >> 11) + 1.0) * 0x1.0p-53; /* in (0, 1] */
    return -log(u) / rate;
}

/* A progress line, redrawn at most four times a second, on a terminal only. */
static void progress(const meshlm_bs_load *l, const meshlm_bs_outcome *o, bool tty, double *last, bool end) {
    if (!tty) return;
    double now = meshlm_bs_now();
    if (!end && now - *last < 0.25) return;
    *last = now;
    if (l->total > 0)
        fprintf(stderr, "\r%s: %lld/%lld done, %lld failed%s", l->what, (long long)o->finished, (long long)l->total,
                (long long)o->failed, end ? "\n" : "");
    else
        fprintf(stderr, "\r%s: %lld done, %lld failed%s", l->what, (long long)o->finished, (long long)o->failed,
                end ? "\n" : "");
}

static struct curl_slist *headers_of(const meshlm_bs_load *l) {
    /* No "Expect: 100-continue": it would hold large bodies back for a round trip. */
    const char *fixed[] = {"Content-Type: application/json", "Accept: text/event-stream", "Expect:"};
    struct curl_slist *h = NULL, *next;
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++, h = next)
        if (!(next = curl_slist_append(h, fixed[i]))) goto fail;
    if (l->api_key) {
        size_t n = strlen(l->api_key) + 32;
        char *auth = malloc(n);
        if (!auth) goto fail;
        snprintf(auth, n, "Authorization: Bearer %s", l->api_key);
        next = curl_slist_append(h, auth);
        free(auth);
        if (!next) goto fail;
        h = next;
    }
    return h;
fail:
    curl_slist_free_all(h);
    return NULL;
}

/* Reaps finished transfers; false to stop the run. */
static bool reap(CURLM *m, const meshlm_bs_load *l, meshlm_bs_outcome *o, int64_t *busy, int64_t *succeeded,
                 bool *any) {
    CURLMsg *msg;
    int left;
    bool go = true;
    while ((msg = curl_multi_info_read(m, &left))) {
        if (msg->msg != CURLMSG_DONE) continue;
        CURL *easy = msg->easy_handle;
        CURLcode rc = msg->data.result;
        char *priv = NULL;
        if (curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv) != CURLE_OK || !priv) return false;
        slot *s = (slot *)priv;
        if (curl_multi_remove_handle(m, easy) != CURLM_OK) go = false;
        meshlm_bs_result r;
        slot_result(s, rc, &r);
        s->busy = false;
        (*busy)--;
        *any = true;
        o->finished++;
        if (r.ok) (*succeeded)++;
        else o->failed++;
        if (r.end > o->t1) o->t1 = r.end;
        if (!r.ok && !*succeeded && (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST))
            o->refused = true;
        if (s->oom) {
            fprintf(stderr, "meshlm bench-serve: out of memory\n");
            go = false;
        }
        if (!l->done(l->ctx, s->tag, &r)) go = false;
        free(s->body);
        s->body = NULL;
    }
    return go;
}

bool meshlm_bs_run(const meshlm_bs_load *l, meshlm_bs_outcome *o) {
    *o = (meshlm_bs_outcome){0};
    CURLM *m = curl_multi_init();
    struct curl_slist *headers = headers_of(l);
    slot *slots = calloc((size_t)l->concurrency, sizeof *slots);
    bool ok = m && headers && slots;
    for (int64_t i = 0; ok && i < l->concurrency; i++) slots[i] = (slot){.l = l, .headers = headers};
    if (!ok) fprintf(stderr, "meshlm bench-serve: cannot set up libcurl (out of memory?)\n");
    uint64_t rng = l->seed;
    int64_t busy = 0, started = 0, succeeded = 0;
    bool exhausted = false, tty = isatty(STDERR_FILENO);
    double next_arrival = 0, last_progress = 0;
    while (ok) {
        if (*l->stop) {
            o->interrupted = true;
            break;
        }
        double now = meshlm_bs_now();
        bool waiting = false;
        while (!exhausted && busy < l->concurrency && !(l->rate > 0 && started && now < next_arrival)) {
            char *body = NULL;
            void *tag = NULL;
            int r = l->next(l->ctx, &body, &tag);
            waiting = r == 0;
            exhausted = r == -1;
            if (r != 1) {
                ok = r >= -1;
                break;
            }
            slot *s = slots;
            while (s->busy) s++;
            if (!slot_start(m, s, body, tag, now)) {
                free(body);
                fprintf(stderr, "meshlm bench-serve: cannot start a request\n");
                ok = false;
                break;
            }
            if (!started++) o->t0 = next_arrival = now;
            busy++;
            if (l->rate > 0) next_arrival += gap(&rng, l->rate);
        }
        if (!ok) break;
        if (!busy && exhausted) break;
        if (!busy && waiting) {
            fprintf(stderr, "meshlm bench-serve: no request can start and none is in flight\n");
            ok = false;
            break;
        }
        int running;
        if (curl_multi_perform(m, &running) != CURLM_OK) {
            fprintf(stderr, "meshlm bench-serve: libcurl failed\n");
            ok = false;
            break;
        }
        bool any = false;
        if (!reap(m, l, o, &busy, &succeeded, &any)) ok = false;
        if (!ok || o->refused) break;
        progress(l, o, tty, &last_progress, false);
        if (any) continue;
        int timeout = POLL_MS;
        if (l->rate > 0 && !exhausted && busy < l->concurrency && started) {
            double ms = (next_arrival - meshlm_bs_now()) * 1e3;
            timeout = ms < 0 ? 0 : ms < POLL_MS ? (int)ms + 1 : POLL_MS;
        }
        /* A signal interrupts the poll: Ctrl-C is seen at once. */
        if (curl_multi_poll(m, NULL, 0, timeout, NULL) != CURLM_OK) {
            fprintf(stderr, "meshlm bench-serve: libcurl failed\n");
            ok = false;
        }
    }
    if (o->interrupted || !o->finished) o->t1 = meshlm_bs_now();
    if (started) progress(l, o, tty, &last_progress, true);
    for (int64_t i = 0; slots && i < l->concurrency; i++) {
        if (slots[i].busy) {
            o->dropped++;
            if (curl_multi_remove_handle(m, slots[i].easy) != CURLM_OK) ok = false;
        }
        slot_free(&slots[i]);
    }
    free(slots);
    curl_slist_free_all(headers);
    if (m && curl_multi_cleanup(m) != CURLM_OK) ok = false;
    return ok;
}
