/* Cancelling and releasing batch requests: a waiting request cancelled never runs; a
 * running one cancelled mid-decode keeps its tokens so far and gives its slot and pages back
 * at once; the others' greedy tokens are bitwise those of a run without the cancelled ones;
 * released ids are unknown afterwards; and a long run that releases what it reads holds
 * bounded memory (heap in use after 20000 requests within a small bound of that after
 * 1000, with the first request never released). A synthetic tiny model, 1x1 and 1x2. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/dtype.h"
#include "meshlm.h"
#include "t.h"
#include "t_synth.h"

#if defined(__SANITIZE_ADDRESS__)
#define T_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define T_ASAN 1
#endif
#endif
#ifdef T_ASAN
/* ASan's allocator keeps its own books (mallinfo2 sees nothing); gcc installs no header
 * for it, the runtime of both compilers has it. */
size_t __sanitizer_get_current_allocated_bytes(void);
#endif

enum { N_REQ = 8, N_GEN = 12, PAGE = 16, MAX_PROMPT = 40 };

/* Request 3 has the longest prompt: cancelled in the middle of its prefill. */
static int32_t prompt_len(int i) { return i == 3 ? MAX_PROMPT - 3 : 3 + (i * 13) % 20; }

static void make_prompt(int32_t V, int i, int32_t *out) {
    for (int32_t t = 0; t < prompt_len(i); t++) out[t] = (int32_t)(((i + 1) * 7919 + t * 104729) % (V - 8));
}

static meshlm_sampler_params greedy(void) {
    meshlm_sampler_params sp = meshlm_sampler_defaults();
    sp.temperature = 0.0f;
    return sp;
}

static meshlm_batch *open_batch(const meshlm_model *m, const char *mesh, int32_t n_batch, int32_t n_chunk) {
    meshlm_batch_params bp = meshlm_batch_defaults();
    bp.n_ctx = 128;
    bp.n_batch = n_batch;
    bp.n_chunk = n_chunk;
    bp.n_threads = mesh ? 1 : 2;
    bp.page_size = PAGE;
    bp.mesh = mesh;
    bp.ignore_eog = true; /* every request runs its N_GEN steps: cancels land mid-decode */
    meshlm_batch *b = NULL;
    int rc = meshlm_batch_create(m, &bp, &b);
    CHECK_MSG(rc == MESHLM_OK, "batch %s: %s", mesh ? mesh : "1x1", meshlm_last_error());
    return b;
}

static void run_out(meshlm_batch *b) {
    int32_t left = 1;
    for (int steps = 0; left > 0 && steps < 100000; steps++)
        if (meshlm_batch_step(b, &left) != MESHLM_OK) {
            CHECK_MSG(0, "step: %s", meshlm_last_error());
            return;
        }
}

/* Serves the requests whose bit is set in which (in order), every one to the end; their
 * tokens into ref. */
static void reference(const meshlm_model *m, const char *mesh, unsigned which, int32_t ref[][N_GEN]) {
    meshlm_batch *b = open_batch(m, mesh, 3, 8);
    if (!b) return;
    int32_t prompt[MAX_PROMPT], id, ids[N_REQ];
    meshlm_sampler_params sp = greedy();
    for (int i = 0; i < N_REQ; i++) {
        if (!(which >> i & 1)) continue;
        make_prompt(meshlm_model_n_vocab(m), i, prompt);
        CHECK(meshlm_batch_submit(b, prompt, prompt_len(i), &sp, N_GEN, &id) == MESHLM_OK);
        ids[i] = id;
    }
    run_out(b);
    for (int i = 0; i < N_REQ; i++) {
        meshlm_batch_result r;
        if (!(which >> i & 1)) continue;
        CHECK(meshlm_batch_result_get(b, ids[i], &r) == MESHLM_OK && r.n_gen == N_GEN);
        memcpy(ref[i], r.tokens, sizeof ref[i]);
    }
    meshlm_batch_free(b);
}

/* Requests 0..7 on 3 slots; 7 is cancelled while it waits, 1 once it has decoded a few
 * tokens, and 3, admitted into 1's slot, in the middle of its prefill (chunks of 8). */
static void check_cancel(const meshlm_model *m, const char *mesh) {
    const char *label = mesh ? mesh : "1x1";
    int32_t V = meshlm_model_n_vocab(m);
    static int32_t ref_all[N_REQ][N_GEN], ref_some[N_REQ][N_GEN];
    const unsigned survivors = 0xff & ~(1u << 1 | 1u << 3 | 1u << 7);
    reference(m, mesh, 0xff, ref_all);
    reference(m, mesh, survivors, ref_some);
    meshlm_batch *b = open_batch(m, mesh, 3, 8);
    if (!b) return;
    int32_t prompt[MAX_PROMPT], id, left = 1, total, free0, free1;
    meshlm_sampler_params sp = greedy();
    for (int i = 0; i < N_REQ; i++) {
        make_prompt(V, i, prompt);
        CHECK(meshlm_batch_submit(b, prompt, prompt_len(i), &sp, N_GEN, &id) == MESHLM_OK && id == i);
    }
    meshlm_batch_result r;
    /* Waiting: cancelled before any step, never admitted. */
    CHECK(meshlm_batch_cancel(b, 7) == MESHLM_OK);
    CHECK(meshlm_batch_result_get(b, 7, &r) == MESHLM_OK && r.finish == MESHLM_FINISH_CANCELLED && r.n_gen == 0);
    CHECK(meshlm_batch_release(b, 6) == MESHLM_ERR_INVALID_ARG && strstr(meshlm_last_error(), "cancel it first"));
    /* Running: request 1 after a few decoded tokens; its tokens so far are its own. */
    int steps = 0;
    while (steps++ < 1000 && meshlm_batch_result_get(b, 1, &r) == MESHLM_OK && r.n_gen < 3)
        CHECK(meshlm_batch_step(b, &left) == MESHLM_OK);
    CHECK(meshlm_batch_result_get(b, 1, &r) == MESHLM_OK && r.finish == MESHLM_FINISH_NONE && r.n_gen >= 3);
    CHECK_MSG(memcmp(r.tokens, ref_all[1], sizeof(int32_t) * (size_t)r.n_gen) == 0,
              "%s: request 1's tokens so far differ", label);
    CHECK(meshlm_batch_release(b, 1) == MESHLM_ERR_INVALID_ARG && strstr(meshlm_last_error(), "still running"));
    int32_t n_before = r.n_gen;
    meshlm_batch_kv_pages(b, &total, &free0);
    CHECK(meshlm_batch_cancel(b, 1) == MESHLM_OK);
    meshlm_batch_kv_pages(b, &total, &free1);
    int32_t pages_1 = (prompt_len(1) + N_GEN + PAGE - 1) / PAGE;
    CHECK_MSG(free1 == free0 + pages_1, "%s: %d free pages before the cancel, %d after", label, free0, free1);
    CHECK(meshlm_batch_result_get(b, 1, &r) == MESHLM_OK && r.finish == MESHLM_FINISH_CANCELLED &&
          r.n_gen == n_before);
    /* Request 3 takes the freed slot; after one chunk of its prompt it is cancelled, and
     * its pages come back (so it was running). */
    CHECK(meshlm_batch_step(b, &left) == MESHLM_OK);
    CHECK(meshlm_batch_result_get(b, 3, &r) == MESHLM_OK && r.finish == MESHLM_FINISH_NONE && r.n_gen == 0);
    meshlm_batch_kv_pages(b, &total, &free0);
    CHECK(meshlm_batch_cancel(b, 3) == MESHLM_OK && meshlm_batch_cancel(b, 3) == MESHLM_OK);
    meshlm_batch_kv_pages(b, &total, &free1);
    int32_t pages_3 = (prompt_len(3) + N_GEN + PAGE - 1) / PAGE;
    CHECK_MSG(free1 == free0 + pages_3, "%s: %d free pages before cancelling 3, %d after", label, free0, free1);
    CHECK(meshlm_batch_result_get(b, 3, &r) == MESHLM_OK && r.finish == MESHLM_FINISH_CANCELLED && r.n_gen == 0);
    run_out(b);
    for (int i = 0; i < N_REQ; i++) {
        if (!(survivors >> i & 1)) continue;
        CHECK(meshlm_batch_result_get(b, i, &r) == MESHLM_OK && r.finish == MESHLM_FINISH_LENGTH && r.n_gen == N_GEN);
        CHECK_MSG(memcmp(r.tokens, ref_some[i], sizeof ref_some[i]) == 0 &&
                      memcmp(r.tokens, ref_all[i], sizeof ref_all[i]) == 0,
                  "%s: request %d beside cancelled ones: tokens differ", label, i);
        /* Cancelling a finished request leaves it as it is. */
        CHECK(meshlm_batch_cancel(b, i) == MESHLM_OK);
        CHECK(meshlm_batch_result_get(b, i, &r) == MESHLM_OK && r.finish == MESHLM_FINISH_LENGTH);
    }
    meshlm_batch_kv_pages(b, &total, &free1);
    CHECK_MSG(free1 == total, "%s: %d of %d pages free at the end", label, free1, total);
    CHECK(meshlm_batch_cancel(b, N_REQ) == MESHLM_ERR_INVALID_ARG);
    CHECK(meshlm_batch_cancel(b, -1) == MESHLM_ERR_INVALID_ARG);
    /* Released: unknown to every call, whatever the order of release. */
    for (int i = N_REQ - 1; i >= 0; i -= 2) CHECK(meshlm_batch_release(b, i) == MESHLM_OK);
    for (int i = 0; i < N_REQ; i += 2) CHECK(meshlm_batch_release(b, i) == MESHLM_OK);
    for (int i = 0; i < N_REQ; i++) {
        CHECK(meshlm_batch_result_get(b, i, &r) == MESHLM_ERR_INVALID_ARG && strstr(meshlm_last_error(), "released"));
        CHECK(meshlm_batch_cancel(b, i) == MESHLM_ERR_INVALID_ARG);
        CHECK(meshlm_batch_release(b, i) == MESHLM_ERR_INVALID_ARG);
    }
    /* The batch goes on, ids after the released ones. */
    make_prompt(V, 2, prompt);
    CHECK(meshlm_batch_submit(b, prompt, prompt_len(2), &sp, N_GEN, &id) == MESHLM_OK && id == N_REQ);
    run_out(b);
    CHECK(meshlm_batch_result_get(b, id, &r) == MESHLM_OK && memcmp(r.tokens, ref_all[2], sizeof ref_all[2]) == 0);
    meshlm_batch_free(b);
    fprintf(stderr, "%s: cancels waiting, decoding and in prefill; the others as alone\n", label);
}

/* Heap in use now, in bytes. */
static size_t heap_in_use(void) {
#ifdef T_ASAN
    return __sanitizer_get_current_allocated_bytes();
#else
    return mallinfo2().uordblks;
#endif
}

/* Tiny requests submitted, served, read and released, a few at a time, with request 0 held
 * to the end (so the oldest record never goes): memory must not follow the id count. */
static void check_bounded(const meshlm_model *m) {
    enum { TOTAL = 20000, WAVE = 8, PROBE = 1000 };
    meshlm_batch *b = open_batch(m, NULL, WAVE, 8);
    if (!b) return;
    meshlm_sampler_params sp = greedy();
    int32_t prompt[2] = {5, 9}, first = -1, n_done = 0;
    size_t at_probe = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int32_t next = 0; next < TOTAL; next += WAVE) {
        int32_t ids[WAVE];
        for (int k = 0; k < WAVE; k++) {
            if (meshlm_batch_submit(b, prompt, 2, &sp, 1, &ids[k]) != MESHLM_OK || ids[k] != next + k) {
                CHECK_MSG(0, "submit %d: %s", next + k, meshlm_last_error());
                meshlm_batch_free(b);
                return;
            }
        }
        run_out(b);
        for (int k = 0; k < WAVE; k++) {
            meshlm_batch_result r;
            if (meshlm_batch_result_get(b, ids[k], &r) != MESHLM_OK || r.n_gen != 1) {
                CHECK_MSG(0, "request %d: %s", ids[k], meshlm_last_error());
                continue;
            }
            n_done++;
            if (ids[k] == 0) {
                first = r.tokens[0];
                continue;
            }
            if (r.tokens[0] != first) CHECK_MSG(0, "request %d: token %d, not %d", ids[k], r.tokens[0], first);
            if (meshlm_batch_release(b, ids[k]) != MESHLM_OK)
                CHECK_MSG(0, "release %d: %s", ids[k], meshlm_last_error());
        }
        if (next + WAVE == PROBE) at_probe = heap_in_use();
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    size_t at_end = heap_in_use();
    long grew = (long)at_end - (long)at_probe;
    CHECK(n_done == TOTAL);
    CHECK_MSG(grew < 16384, "heap in use grew by %ld bytes from request %d to %d", grew, PROBE, TOTAL);
    meshlm_batch_result r;
    CHECK(meshlm_batch_result_get(b, 0, &r) == MESHLM_OK && r.n_gen == 1 && r.tokens[0] == first);
    CHECK(meshlm_batch_result_get(b, 1, &r) == MESHLM_ERR_INVALID_ARG);
    CHECK(meshlm_batch_release(b, 0) == MESHLM_OK);
    fprintf(stderr, "%d requests in %.1f s: heap in use %zu bytes after %d, %zu after all (%+ld)\n", TOTAL,
            (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec), at_probe, PROBE, at_end, grew);
    meshlm_batch_free(b);
}

int main(void) {
    char dir[] = "/tmp/meshlm-batch-api-XXXXXX", path[256], label[64];
    if (!mkdtemp(dir)) t_skip("cannot make a temporary directory");
    if (!t_synth_tiny(dir, "llama", MESHLM_TYPE_Q8_0, path, sizeof path, label, sizeof label)) return t_done();
    meshlm_model *m = NULL;
    if (meshlm_model_load(path, &m) != MESHLM_OK) {
        CHECK_MSG(0, "%s: %s", label, meshlm_last_error());
        return t_done();
    }
    check_cancel(m, NULL);
    check_cancel(m, "1x2");
    check_bounded(m);
    meshlm_model_free(m);
    unlink(path);
    rmdir(dir);
    return t_done();
}
