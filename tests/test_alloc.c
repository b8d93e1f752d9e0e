/* Decode allocates nothing: malloc and friends are interposed in this executable
 * (forwarding to glibc's __libc_* entry points) and counted, in every thread, while a
 * switch is on. Through the public API, on a synthetic model: create a session, prefill a
 * prompt, then 100 decode steps (meshlm_session_eval of one token and
 * meshlm_session_sample) must make zero allocations, on 1x1 with 1 and 2 threads and on
 * 1x2, 2x1 and 2x2 meshes (threads transport), with the default sampler and greedily, for
 * the presets that keep persistent buffers (performance, accuracy). The generic preset
 * allocates each step's activations: its count must be what meshlm_session_step_allocs says.
 * The first allocations seen are reported with a raw backtrace (resolve the addresses with
 * addr2line -e test_alloc). Under AddressSanitizer the sanitizer owns malloc: skipped. */
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MESHLM_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define MESHLM_ASAN 1
#endif

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/dtype.h"
#include "meshlm.h"
#include "model/synth.h"
#include "t.h"

#ifndef MESHLM_ASAN
#include <execinfo.h>

void *__libc_malloc(size_t size);
void *__libc_calloc(size_t n, size_t size);
void *__libc_realloc(void *p, size_t size);
void __libc_free(void *p);
void *__libc_memalign(size_t align, size_t size);

static atomic_int counting;
static atomic_long n_allocs;
static atomic_int n_traced;
static _Thread_local int in_hook;

enum { MAX_TRACES = 3 };

/* Counts one allocation while the switch is on; the first few print where they come from.
 * backtrace() may itself allocate (it loads libgcc once), hence the per-thread guard. */
static void note(const char *what, size_t size) {
    if (!atomic_load_explicit(&counting, memory_order_relaxed) || in_hook) return;
    in_hook = 1;
    atomic_fetch_add(&n_allocs, 1);
    if (atomic_fetch_add(&n_traced, 1) < MAX_TRACES) {
        void *frames[32];
        int n = backtrace(frames, 32);
        char line[96];
        int len = snprintf(line, sizeof line, "allocation during decode: %s(%zu) from:\n", what, size);
        if (write(2, line, (size_t)len) < 0) len = 0;
        backtrace_symbols_fd(frames, n, 2);
    }
    in_hook = 0;
}

void *malloc(size_t size) {
    note("malloc", size);
    return __libc_malloc(size);
}

void *calloc(size_t n, size_t size) {
    note("calloc", n * size);
    return __libc_calloc(n, size);
}

void *realloc(void *p, size_t size) {
    note("realloc", size);
    return __libc_realloc(p, size);
}

void free(void *p) {
    if (p) note("free", 0);
    __libc_free(p);
}

void *memalign(size_t align, size_t size) {
    note("memalign", size);
    return __libc_memalign(align, size);
}

void *aligned_alloc(size_t align, size_t size) {
    note("aligned_alloc", size);
    return __libc_memalign(align, size);
}

int posix_memalign(void **out, size_t align, size_t size) {
    note("posix_memalign", size);
    if (align < sizeof(void *) || (align & (align - 1))) return EINVAL;
    void *p = __libc_memalign(align, size);
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}

static void count_on(void) {
    atomic_store(&n_allocs, 0);
    atomic_store(&counting, 1);
}

static long count_off(void) {
    atomic_store(&counting, 0);
    return atomic_load(&n_allocs);
}

/* The interposer itself must see allocations, or a zero would prove nothing. */
static void check_hook_works(void) {
    atomic_store(&n_traced, MAX_TRACES); /* these three need no backtrace */
    count_on();
    void *volatile p = malloc(100);
    p = realloc(p, 200);
    free(p);
    long n = count_off();
    CHECK_MSG(n == 3, "the interposed malloc counted %ld of 3 calls", n);
    atomic_store(&n_traced, 0);
}

static void run_case(const meshlm_model *m, const char *mesh, int threads, float temp, const char *opt) {
    int rc;
    meshlm_session_params sp = meshlm_session_defaults();
    sp.opt = opt;
    sp.n_ctx = 256;
    sp.n_threads = threads;
    sp.mesh = mesh;
    sp.sampler.seed = 42;
    sp.sampler.temperature = temp;
    meshlm_session *s = NULL;
    /* Creating a session allocates plenty: seeing it proves library calls are counted. */
    atomic_store(&n_traced, MAX_TRACES);
    count_on();
    rc = meshlm_session_create(m, &sp, &s);
    long setup = count_off();
    atomic_store(&n_traced, 0);
    CHECK_MSG(setup > 0, "%s: session creation counted no allocation: the interposer is not in effect", mesh);
    if (rc != MESHLM_OK) {
        CHECK_MSG(0, "%s t%d: %s", mesh, threads, meshlm_last_error());
        return;
    }
    const char *prompt = "Once upon a time, in a mesh of small devices, a model decoded without allocating.";
    int32_t ids[128], n = 0, tok = 0;
    CHECK(meshlm_tokenize(m, prompt, strlen(prompt), true, false, ids, 128, &n) == MESHLM_OK);
    CHECK(meshlm_session_eval(s, ids, n) == MESHLM_OK);
    CHECK(meshlm_session_sample(s, &tok) == MESHLM_OK);
    int bad = 0;
    bool generic = !strcmp(opt, "generic");
    uint64_t steps0 = meshlm_session_step_allocs(s);
    if (generic) atomic_store(&n_traced, MAX_TRACES); /* expected: no backtraces */
    count_on();
    for (int i = 0; i < 100; i++) {
        bad += meshlm_session_eval(s, &tok, 1) != MESHLM_OK;
        bad += meshlm_session_sample(s, &tok) != MESHLM_OK;
    }
    long allocs = count_off();
    atomic_store(&n_traced, 0);
    long engine = (long)(meshlm_session_step_allocs(s) - steps0);
    CHECK_MSG(bad == 0, "%s t%d: %d calls failed: %s", mesh, threads, bad, meshlm_last_error());
    if (generic)
        /* each step's arena: one malloc and one free per device */
        CHECK_MSG(engine >= 100 && allocs == 2 * engine, "generic, mesh %s: %ld calls counted, the engine says %ld steps",
                  mesh, allocs, engine);
    else
        CHECK_MSG(allocs == 0 && engine == 0, "%s, mesh %s, %d thread(s), temp %.1f: %ld allocations in 100 decode steps",
                  opt, mesh, threads, (double)temp, allocs);
    printf("%s, mesh %s, %d thread(s), temp %.1f: %ld allocation calls in 100 decode steps\n", opt, mesh, threads,
           (double)temp, allocs);
    meshlm_session_free(s);
}
#endif

int main(void) {
#ifdef MESHLM_ASAN
    t_skip("AddressSanitizer owns malloc in this build: allocations are not counted");
#else
    void *frames[4];
    backtrace(frames, 4); /* loads what backtrace needs now, not during a count */
    check_hook_works();
    char dir[] = "/tmp/meshlm-alloc-XXXXXX", path[64];
    if (!mkdtemp(dir)) t_skip("cannot make a temporary directory");
    snprintf(path, sizeof path, "%s/tiny.gguf", dir);
    meshlm_synth_params p;
    CHECK(meshlm_synth_preset("tiny", "llama", &p) == MESHLM_OK);
    p.type = MESHLM_TYPE_Q8_0;
    int rc = meshlm_synth_write(&p, path);
    CHECK_MSG(rc == MESHLM_OK, "%s", meshlm_last_error());
    meshlm_model *m = NULL;
    if (rc == MESHLM_OK && meshlm_model_load(path, &m) == MESHLM_OK) {
        const struct {
            const char *mesh;
            int threads;
        } cases[] = {{"1x1", 1}, {"1x1", 2}, {"1x2", 1}, {"2x1", 1}, {"2x2", 1}};
        const char *opts[] = {"performance", "accuracy", "generic"};
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            for (size_t k = 0; k < sizeof opts / sizeof opts[0]; k++) {
                run_case(m, cases[i].mesh, cases[i].threads, 0.8f, opts[k]);
                if (k == 0) run_case(m, cases[i].mesh, cases[i].threads, 0.0f, opts[k]);
            }
    } else {
        CHECK_MSG(0, "load: %s", meshlm_last_error());
    }
    meshlm_model_free(m);
    unlink(path);
    rmdir(dir);
    return t_done();
#endif
}
