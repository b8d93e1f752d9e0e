/* Prefix caching in the batch: requests sharing a system prompt and multi-turn chats that
 * resend their history get bitwise the tokens they get with the cache off (greedy, and
 * sampled with a repeat penalty over the whole prompt), while the stats show the shared
 * full pages served from the cache and the prefill rows saved; a small KV budget evicts
 * cached pages least recently used first and still gives the same tokens; cancelling a
 * request whose pages another one shares leaves those pages to it; threads meshes (1x2,
 * 2x1) make the same decisions as 1x1. Ends with a measurement: time to first token of a
 * chat's second turn over a 512-token history, cache on and off. Tiny synthetic models. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/dtype.h"
#include "meshlm.h"
#include "model/forward.h"
#include "model/synth.h"
#include "t.h"

enum { PAGE = 16, MAX_TOK = 700, MAX_GEN = 24, N_CTX = 1024 };

/* A request and what the batch gave it. */
typedef struct job {
    int32_t prompt[MAX_TOK], n_prompt, n_gen, id;
    meshlm_sampler_params sp;
    int32_t out[MAX_GEN], n_out;
    meshlm_finish finish;
    double prompt_ms;
} job;

/* A batch's shape: the mesh, slots, chunk, KV pages (0 = default) and the cache switch. */
typedef struct cfg {
    const char *mesh;
    int32_t n_batch, n_chunk, kv_pages;
    bool no_cache, ignore_eog;
} cfg;

/* n deterministic tokens of stream seed, below the synthetic vocabulary's control tokens. */
static void make_tokens(const meshlm_model *m, uint64_t seed, int32_t n, int32_t *out) {
    uint64_t st = seed * 0x9e3779b97f4a7c15u + 1;
    for (int32_t i = 0; i < n; i++) out[i] = (int32_t)(t_xorshift(&st) % (uint32_t)(meshlm_model_n_vocab(m) - 8));
}

/* Greedy for even k, else sampled with its own seed and a repeat penalty (whose history
 * must hold the whole prompt, cached or not). */
static meshlm_sampler_params sampler(int k) {
    meshlm_sampler_params sp = meshlm_sampler_defaults();
    if (k % 2 == 0) {
        sp.temperature = 0.0f;
    } else {
        sp.temperature = 0.9f;
        sp.repeat_penalty = 1.3f;
        sp.repeat_last_n = 256;
        sp.seed = 1000u + (uint64_t)k;
    }
    return sp;
}

static meshlm_batch *open_batch(const meshlm_model *m, const cfg *c) {
    meshlm_batch_params bp = meshlm_batch_defaults();
    bp.mesh = c->mesh;
    bp.n_ctx = N_CTX;
    bp.n_batch = c->n_batch;
    bp.n_chunk = c->n_chunk;
    bp.n_threads = c->mesh ? 1 : 2;
    bp.page_size = PAGE;
    bp.no_prefix_cache = c->no_cache;
    bp.ignore_eog = c->ignore_eog;
    if (c->kv_pages) {
        meshlm_kv_params kp = meshlm_kv_params_for(m, m->hp.n_head_kv, MESHLM_TYPE_F32, PAGE, 0);
        bp.kv_mem = meshlm_kv_page_bytes(&kp) * (size_t)c->kv_pages;
    }
    meshlm_batch *b = NULL;
    int rc = meshlm_batch_create(m, &bp, &b);
    CHECK_MSG(rc == MESHLM_OK, "batch: %s", meshlm_last_error());
    return b;
}

static meshlm_batch_stats stats(const meshlm_batch *b) {
    meshlm_batch_stats s;
    CHECK(meshlm_batch_stats_get(b, &s) == MESHLM_OK);
    return s;
}

/* Reads a request's result into its job. */
static void collect(meshlm_batch *b, job *j) {
    meshlm_batch_result r;
    CHECK(meshlm_batch_result_get(b, j->id, &r) == MESHLM_OK);
    j->n_out = r.n_gen < MAX_GEN ? r.n_gen : MAX_GEN;
    memcpy(j->out, r.tokens, sizeof(int32_t) * (size_t)j->n_out);
    j->finish = r.finish;
    j->prompt_ms = r.prompt_ms;
}

/* Submits jobs[0..n) together and steps b until every request has finished. */
static void serve(meshlm_batch *b, job *jobs, int n) {
    for (int i = 0; i < n; i++)
        CHECK_MSG(meshlm_batch_submit(b, jobs[i].prompt, jobs[i].n_prompt, &jobs[i].sp, jobs[i].n_gen,
                                      &jobs[i].id) == MESHLM_OK, "submit: %s", meshlm_last_error());
    int32_t left = 1;
    for (int steps = 0; left > 0 && steps < 100000; steps++)
        if (meshlm_batch_step(b, &left) != MESHLM_OK) {
            CHECK_MSG(0, "step: %s", meshlm_last_error());
            return;
        }
    for (int i = 0; i < n; i++) collect(b, &jobs[i]);
}

static bool same_out(const job *a, const job *b) {
    return a->n_out == b->n_out && a->finish == b->finish &&
           !memcmp(a->out, b->out, sizeof(int32_t) * (size_t)a->n_out);
}

static void check_same(const job *ref, const job *got, int n, const char *label) {
    for (int i = 0; i < n; i++)
        CHECK_MSG(same_out(&ref[i], &got[i]), "%s: request %d (%d prompt tokens): %d tokens vs %d without the cache",
                  label, i, got[i].n_prompt, got[i].n_out, ref[i].n_out);
}

/* With nothing running, every page is free or cached. */
static void check_idle(const meshlm_batch *b, const char *label) {
    meshlm_batch_stats s = stats(b);
    CHECK_MSG(s.pages_free + s.pages_cached == s.pages_total && s.requests_running == 0 && s.requests_waiting == 0,
              "%s: %d free + %d cached of %d pages, %d running, %d waiting", label, s.pages_free, s.pages_cached,
              s.pages_total, s.requests_running, s.requests_waiting);
    int32_t total, avail;
    meshlm_batch_kv_pages(b, &total, &avail);
    CHECK(total == s.pages_total && avail == total);
}

enum { N_SYS = 6, SYS_LEN = 100 };

/* Request i: the shared 100-token system prompt (6 full pages and 4 tokens), then its own. */
static void system_jobs(const meshlm_model *m, job *jobs) {
    for (int i = 0; i < N_SYS; i++) {
        job *j = &jobs[i];
        memset(j, 0, sizeof *j);
        make_tokens(m, 1, SYS_LEN, j->prompt);
        j->n_prompt = SYS_LEN + 3 + 7 * i;
        make_tokens(m, 100 + (uint64_t)i, j->n_prompt - SYS_LEN, j->prompt + SYS_LEN);
        j->n_gen = 8;
        j->sp = sampler(i);
    }
}

/* The shared system prompt through c: request 0 first, then the rest at once (they find its
 * 6 pages), then all of them again (each finds its whole prompt's full pages). The same
 * tokens as ref; the hits and prefill rows as computed here. The stats out, for meshes. */
static void check_system_prompt(const meshlm_model *m, const job *ref, const cfg *c, const char *label,
                                meshlm_batch_stats *out) {
    static job got[N_SYS];
    char what[160];
    snprintf(what, sizeof what, "%s system prompt, mesh %s batch %d chunk %d", label, c->mesh ? c->mesh : "1x1",
             c->n_batch, c->n_chunk);
    meshlm_batch *b = open_batch(m, c);
    if (!b) return;
    system_jobs(m, got);
    serve(b, got, 1);
    serve(b, got + 1, N_SYS - 1);
    check_same(ref, got, N_SYS, what);
    meshlm_batch_stats s = stats(b);
    int64_t tokens = 0, again = 0;
    for (int i = 0; i < N_SYS; i++) tokens += got[i].n_prompt, again += (got[i].n_prompt - 1) / PAGE * PAGE;
    CHECK_MSG(s.prefix_hits == (N_SYS - 1) * 96 && s.prefix_queries == tokens &&
                  s.prompt_rows == tokens - s.prefix_hits,
              "%s: %lld hits of %lld queries, %lld rows", what, (long long)s.prefix_hits, (long long)s.prefix_queries,
              (long long)s.prompt_rows);
    serve(b, got, N_SYS);
    check_same(ref, got, N_SYS, what);
    meshlm_batch_stats s2 = stats(b);
    CHECK_MSG(s2.prefix_hits - s.prefix_hits == again && s2.prompt_rows - s.prompt_rows == tokens - again,
              "%s: second round %lld hits, %lld expected", what, (long long)(s2.prefix_hits - s.prefix_hits),
              (long long)again);
    check_idle(b, what);
    if (out) *out = s2;
    meshlm_batch_free(b);
    fprintf(stderr, "%s: as without the cache; %lld of %lld prompt tokens from the cache\n", what,
            (long long)s2.prefix_hits, (long long)s2.prefix_queries);
}

enum { N_CONV = 3, N_TURN = 3, TURN_GEN = 12 };

/* Three conversations of three turns served side by side: turn t + 1 resends turn t's
 * prompt and reply plus a new message. Fills out[conv][turn]; returns the hits it expects. */
static int64_t conversations(const meshlm_model *m, const cfg *c, job out[N_CONV][N_TURN], meshlm_batch_stats *st) {
    meshlm_batch *b = open_batch(m, c);
    int64_t expect = 0;
    if (!b) return 0;
    for (int t = 0; t < N_TURN; t++) {
        job turn[N_CONV];
        for (int k = 0; k < N_CONV; k++) {
            job *j = &turn[k];
            memset(j, 0, sizeof *j);
            if (t == 0) {
                j->n_prompt = 20 + 9 * k;
                make_tokens(m, 200 + (uint64_t)k, j->n_prompt, j->prompt);
            } else {
                const job *p = &out[k][t - 1];
                memcpy(j->prompt, p->prompt, sizeof(int32_t) * (size_t)p->n_prompt);
                memcpy(j->prompt + p->n_prompt, p->out, sizeof(int32_t) * (size_t)p->n_out);
                j->n_prompt = p->n_prompt + p->n_out + 5 + 4 * t;
                make_tokens(m, 300 + (uint64_t)(10 * k + t), 5 + 4 * t, j->prompt + p->n_prompt + p->n_out);
                /* The previous turn filled the pages of its positions written (all but the
                 * reply's last token); this one may take whole pages short of its last token. */
                int32_t filled = (p->n_prompt + p->n_out - 1) / PAGE, room = (j->n_prompt - 1) / PAGE;
                expect += (int64_t)(filled < room ? filled : room) * PAGE;
            }
            j->n_gen = TURN_GEN;
            j->sp = sampler(k);
        }
        serve(b, turn, N_CONV);
        for (int k = 0; k < N_CONV; k++) out[k][t] = turn[k];
    }
    *st = stats(b);
    check_idle(b, "conversations");
    meshlm_batch_free(b);
    return expect;
}

static void check_conversations(const meshlm_model *m, const char *label) {
    static job ref[N_CONV][N_TURN], got[N_CONV][N_TURN];
    meshlm_batch_stats s_ref, s;
    cfg off = {.n_batch = N_CONV, .n_chunk = 32, .no_cache = true, .ignore_eog = true};
    cfg on = {.n_batch = N_CONV, .n_chunk = 32, .ignore_eog = true};
    conversations(m, &off, ref, &s_ref);
    int64_t expect = conversations(m, &on, got, &s);
    for (int k = 0; k < N_CONV; k++)
        for (int t = 0; t < N_TURN; t++)
            CHECK_MSG(same_out(&ref[k][t], &got[k][t]) && got[k][t].n_out == TURN_GEN,
                      "%s: conversation %d turn %d differs with the cache", label, k, t);
    CHECK(s_ref.prefix_hits == 0 && s_ref.prefix_queries == 0);
    CHECK_MSG(expect > 0 && s.prefix_hits == expect, "%s: %lld hits, %lld expected", label,
              (long long)s.prefix_hits, (long long)expect);
    CHECK(s.prompt_rows == s_ref.prompt_rows - s.prefix_hits);
    fprintf(stderr, "%s conversations: as without the cache; prefill %lld rows instead of %lld\n", label,
            (long long)s.prompt_rows, (long long)s_ref.prompt_rows);
}

/* A budget of 10 pages: six prompts overflow it (evicting as they go), then one prompt that
 * needs every page (evicting all the cached ones), then an earlier prompt (found no more),
 * then the long one again: the LRU order evicted its chain from the end (the earlier prompt
 * took the free page and the long one's last 2 cached pages), so its first 7 are still there.
 * Tokens as without the cache throughout. */
static void check_eviction(const meshlm_model *m, const char *label) {
    static job ref[9], got[9];
    for (int pass = 0; pass < 2; pass++) {
        job *j = pass ? got : ref;
        cfg c = {.n_batch = 2, .n_chunk = 32, .kv_pages = 10, .no_cache = pass == 0, .ignore_eog = true};
        meshlm_batch *b = open_batch(m, &c);
        if (!b) return;
        for (int i = 0; i < 9; i++) {
            memset(&j[i], 0, sizeof j[i]);
            j[i].n_gen = 8;
            j[i].sp = sampler(i);
        }
        for (int i = 0; i < 6; i++) {
            j[i].n_prompt = 40 + 3 * i;
            make_tokens(m, 400 + (uint64_t)i, j[i].n_prompt, j[i].prompt);
        }
        j[6].n_prompt = 150; /* with 8 generated: 158 positions, all 10 pages */
        make_tokens(m, 500, 150, j[6].prompt);
        j[7] = j[0], j[7].sp = sampler(7);
        j[8] = j[6];
        serve(b, j, 6);
        meshlm_batch_stats s0 = stats(b);
        serve(b, j + 6, 1);
        meshlm_batch_stats s1 = stats(b);
        serve(b, j + 7, 1);
        meshlm_batch_stats s2 = stats(b);
        serve(b, j + 8, 1);
        meshlm_batch_stats s3 = stats(b);
        if (pass) {
            CHECK_MSG(s0.pages_cached > 0 && s0.pages_total == 10, "%s: %d cached of %d", label, s0.pages_cached,
                      s0.pages_total);
            CHECK(s1.prefix_hits == s0.prefix_hits);
            CHECK_MSG(s1.pages_cached == 9 && s1.pages_free == 1, "%s: after the long prompt %d cached, %d free",
                      label, s1.pages_cached, s1.pages_free);
            CHECK(s2.prefix_hits == s1.prefix_hits);
            CHECK_MSG(s3.prefix_hits - s2.prefix_hits == 7 * PAGE, "%s: the long prompt again found %lld tokens",
                      label, (long long)(s3.prefix_hits - s2.prefix_hits));
        }
        check_idle(b, label);
        meshlm_batch_free(b);
    }
    check_same(ref, got, 9, "eviction");
    fprintf(stderr, "%s eviction (10 pages): as without the cache\n", label);
}

/* Runs b until request id has generated n tokens. */
static void run_until(meshlm_batch *b, int32_t id, int32_t n) {
    meshlm_batch_result r;
    int32_t left = 1;
    for (int steps = 0; steps < 10000; steps++) {
        CHECK(meshlm_batch_result_get(b, id, &r) == MESHLM_OK);
        if (r.n_gen >= n || r.finish || left == 0) return;
        CHECK(meshlm_batch_step(b, &left) == MESHLM_OK);
    }
}

/* A decodes; B arrives and shares A's first 3 pages; A is cancelled: B keeps them and ends as
 * it would alone. C arrives, shares them too, and is cancelled mid-prefill; D, the same
 * prompt as C, then finishes as alone. Pages add up at every point. */
static void check_cancel(const meshlm_model *m, const char *mesh, const char *label) {
    static job ref[4], got[4];
    int32_t shared[60];
    make_tokens(m, 600, 60, shared);
    for (int pass = 0; pass < 2; pass++) {
        job *j = pass ? got : ref;
        cfg c = {.mesh = mesh, .n_batch = 4, .n_chunk = 8, .no_cache = pass == 0, .ignore_eog = true};
        meshlm_batch *b = open_batch(m, &c);
        if (!b) return;
        int32_t extra[4] = {4, 10, 30, 30};
        for (int i = 0; i < 4; i++) {
            memset(&j[i], 0, sizeof j[i]);
            memcpy(j[i].prompt, shared, sizeof shared);
            j[i].n_prompt = 60 + extra[i];
            make_tokens(m, 700 + (uint64_t)(i == 3 ? 2 : i), extra[i], j[i].prompt + 60);
            j[i].n_gen = 20;
            j[i].sp = sampler(i);
        }
        if (pass == 0) { /* the references: each alone */
            for (int i = 0; i < 4; i++) serve(b, &j[i], 1);
            meshlm_batch_free(b);
            continue;
        }
        meshlm_sampler_params sp = j[0].sp;
        CHECK(meshlm_batch_submit(b, j[0].prompt, j[0].n_prompt, &sp, 20, &j[0].id) == MESHLM_OK);
        run_until(b, j[0].id, 3);
        CHECK(meshlm_batch_submit(b, j[1].prompt, j[1].n_prompt, &j[1].sp, 20, &j[1].id) == MESHLM_OK);
        int32_t left;
        CHECK(meshlm_batch_step(b, &left) == MESHLM_OK);
        meshlm_batch_stats s = stats(b);
        CHECK_MSG(s.prefix_hits == 48 && s.requests_running == 2, "%s: %lld hits, %d running", label,
                  (long long)s.prefix_hits, s.requests_running);
        CHECK(meshlm_batch_cancel(b, j[0].id) == MESHLM_OK);
        collect(b, &j[0]);
        CHECK(j[0].finish == MESHLM_FINISH_CANCELLED && j[0].n_out >= 3 &&
              !memcmp(j[0].out, ref[0].out, sizeof(int32_t) * (size_t)j[0].n_out));
        s = stats(b);
        int32_t b_pages = (j[1].n_prompt + 20 + PAGE - 1) / PAGE; /* B holds exactly its table */
        CHECK_MSG(s.pages_free + s.pages_cached + b_pages == s.pages_total && s.pages_cached > 0,
                  "%s: after cancelling A: %d free, %d cached, %d held, %d in all", label, s.pages_free,
                  s.pages_cached, b_pages, s.pages_total);
        CHECK(meshlm_batch_release(b, j[0].id) == MESHLM_OK);
        CHECK(meshlm_batch_submit(b, j[2].prompt, j[2].n_prompt, &j[2].sp, 20, &j[2].id) == MESHLM_OK);
        CHECK(meshlm_batch_step(b, &left) == MESHLM_OK);
        meshlm_batch_result r;
        CHECK(meshlm_batch_result_get(b, j[2].id, &r) == MESHLM_OK && r.n_gen == 0);
        CHECK(meshlm_batch_cancel(b, j[2].id) == MESHLM_OK);
        CHECK(stats(b).prefix_hits == 96);
        serve(b, &j[3], 1);
        collect(b, &j[1]);
        CHECK_MSG(same_out(&ref[1], &j[1]), "%s: B after A's cancel differs from B alone", label);
        CHECK_MSG(same_out(&ref[3], &j[3]), "%s: D after C's cancel differs from D alone", label);
        CHECK(stats(b).prefix_hits == 96 + 48); /* D finds the 3 shared pages: C filled none of its own */
        check_idle(b, label);
        meshlm_batch_free(b);
    }
    fprintf(stderr, "%s cancel with shared pages, mesh %s: as alone\n", label, mesh ? mesh : "1x1");
}

/* The shared system prompt on 1x1, then on threads meshes: each as without the cache on its
 * mesh, with the same hits and prefill rows as 1x1 (the same scheduling decisions). */
static void check_system_all(const meshlm_model *m, const char *label, bool meshes) {
    static job ref[N_SYS];
    system_jobs(m, ref);
    cfg off = {.n_batch = 1, .n_chunk = 64, .no_cache = true};
    meshlm_batch *b = open_batch(m, &off);
    if (!b) return;
    serve(b, ref, N_SYS);
    meshlm_batch_free(b);
    meshlm_batch_stats one, other;
    cfg on1 = {.n_batch = 1, .n_chunk = 64};
    check_system_prompt(m, ref, &on1, label, &one);
    cfg on4 = {.n_batch = 4, .n_chunk = 7};
    check_system_prompt(m, ref, &on4, label, NULL);
    if (!meshes) return;
    const char *shapes[] = {"1x2", "2x1"};
    for (int k = 0; k < 2; k++) {
        static job mref[N_SYS];
        system_jobs(m, mref);
        cfg moff = {.mesh = shapes[k], .n_batch = 1, .n_chunk = 64, .no_cache = true};
        if (!(b = open_batch(m, &moff))) continue;
        serve(b, mref, N_SYS);
        meshlm_batch_free(b);
        cfg mon = {.mesh = shapes[k], .n_batch = 1, .n_chunk = 64};
        check_system_prompt(m, mref, &mon, label, &other);
        CHECK_MSG(other.prefix_hits == one.prefix_hits && other.prompt_rows == one.prompt_rows,
                  "%s mesh %s: %lld hits, %lld rows; 1x1 %lld, %lld", label, shapes[k],
                  (long long)other.prefix_hits, (long long)other.prompt_rows, (long long)one.prefix_hits,
                  (long long)one.prompt_rows);
        int same = 0;
        for (int i = 0; i < N_SYS; i++) same += same_out(&mref[i], &ref[i]);
        fprintf(stderr, "%s mesh %s: %d of %d requests' tokens also equal 1x1's\n", label, shapes[k], same, N_SYS);
    }
}

/* A chat's second turn over a 512-token history (prompt 512, reply 16, new message 32):
 * its time to first token and prefill rows with the cache off and on (best of 3). */
static void measure(const meshlm_model *m) {
    double best[2] = {1e30, 1e30};
    int64_t rows[2] = {0, 0};
    job t1, t2, first[2];
    for (int rep = 0; rep < 3; rep++)
        for (int on = 0; on < 2; on++) {
            cfg c = {.n_batch = 1, .n_chunk = 64, .no_cache = !on, .ignore_eog = true};
            meshlm_batch *b = open_batch(m, &c);
            if (!b) return;
            memset(&t1, 0, sizeof t1);
            t1.n_prompt = 512;
            make_tokens(m, 800, 512, t1.prompt);
            t1.n_gen = 16;
            t1.sp = sampler(0);
            serve(b, &t1, 1);
            t2 = t1;
            memcpy(t2.prompt + 512, t1.out, sizeof(int32_t) * 16);
            make_tokens(m, 801, 32, t2.prompt + 528);
            t2.n_prompt = 560;
            int64_t before = stats(b).prompt_rows;
            serve(b, &t2, 1);
            rows[on] = stats(b).prompt_rows - before;
            if (t2.prompt_ms < best[on]) best[on] = t2.prompt_ms;
            if (rep == 0) first[on] = t2;
            meshlm_batch_free(b);
        }
    CHECK(same_out(&first[0], &first[1]));
    CHECK(rows[0] == 560 && rows[1] == 560 - 512);
    printf("measure: turn 2 (560-token prompt, 512 + 16 shared): cache off %lld prefill rows, TTFT %.2f ms; "
           "cache on %lld rows, TTFT %.2f ms\n",
           (long long)rows[0], best[0], (long long)rows[1], best[1]);
}

/* Bad arguments of the new call. */
static void check_args(const meshlm_model *m) {
    meshlm_batch_stats s;
    CHECK(meshlm_batch_stats_get(NULL, &s) == MESHLM_ERR_INVALID_ARG);
    cfg c = {.n_batch = 1, .n_chunk = 8};
    meshlm_batch *b = open_batch(m, &c);
    if (!b) return;
    CHECK(meshlm_batch_stats_get(b, NULL) == MESHLM_ERR_INVALID_ARG);
    s = stats(b);
    CHECK(s.prefix_queries == 0 && s.prefix_hits == 0 && s.prompt_rows == 0 && s.pages_free == s.pages_total &&
          s.pages_cached == 0);
    meshlm_batch_free(b);
}

int main(void) {
    char dir[] = "/tmp/meshlm-pfx-XXXXXX", path[256];
    if (!mkdtemp(dir)) t_skip("cannot make a temporary directory");
    const int types[] = {MESHLM_TYPE_F32, MESHLM_TYPE_Q8_0};
    for (int k = 0; k < 2; k++) {
        meshlm_synth_params p;
        CHECK(meshlm_synth_preset("tiny", "llama", &p) == MESHLM_OK);
        p.type = types[k];
        p.n_ctx = N_CTX;
        snprintf(path, sizeof path, "%s/llama-%s.gguf", dir, meshlm_type_name(types[k]));
        meshlm_model *m = NULL;
        if (meshlm_synth_write(&p, path) != MESHLM_OK || meshlm_model_load(path, &m) != MESHLM_OK) {
            CHECK_MSG(0, "%s: %s", path, meshlm_last_error());
            continue;
        }
        const char *label = k == 0 ? "llama F32" : "llama Q8_0";
        if (k == 0) check_args(m);
        check_system_all(m, label, k == 1);
        check_conversations(m, label);
        check_eviction(m, label);
        check_cancel(m, NULL, label);
        if (k == 1) check_cancel(m, "1x2", label);
        if (k == 0) measure(m);
        meshlm_model_free(m);
        unlink(path);
    }
    rmdir(dir);
    return t_done();
}
