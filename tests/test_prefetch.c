/* The weight prefetcher: visits regions in order, never more than its window ahead of
 * compute, follows compute across passes, stops promptly, and leaves a cold file's pages
 * resident. */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "core/dtype.h"
#include "core/prefetch.h"
#include "core/status.h"
#include "meshlm.h"
#include "model/model.h"
#include "model/synth.h"
#include "t.h"

enum { MIB = 1 << 20 };

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Polls until progress reaches want (or 10 s pass) and returns the last value seen. */
static uint32_t wait_progress(meshlm_prefetch *pf, uint32_t want) {
    double end = now_s() + 10.0;
    uint32_t got;
    while ((int32_t)((got = meshlm_prefetch_progress(pf)) - want) < 0 && now_s() < end) usleep(1000);
    return got;
}

static void test_window(void) {
    enum { N = 8 };
    char *mem = calloc(N, MIB);
    meshlm_prefetch_region r[N];
    for (int i = 0; i < N; i++) r[i] = (meshlm_prefetch_region){mem + (size_t)i * MIB, MIB};
    meshlm_prefetch_params p = {.mode = MESHLM_PREFETCH_PAGES, .window = 2 * MIB, .cyclic = false};
    meshlm_prefetch *pf = NULL;
    CHECK(meshlm_prefetch_start(r, N, &p, &pf) == MESHLM_OK);
    /* Regions 0, 1 and 2 start within 2 MiB of region 0; region 3 starts 3 MiB ahead. */
    CHECK(wait_progress(pf, 3) == 3);
    usleep(50 * 1000);
    CHECK_MSG(meshlm_prefetch_progress(pf) == 3, "ran %u regions ahead with a 2-region window",
              meshlm_prefetch_progress(pf));
    meshlm_prefetch_at(pf, 5);
    CHECK(wait_progress(pf, N) == N);
    meshlm_prefetch_stop(pf);
    free(mem);
}

static void test_cyclic_and_stop(void) {
    enum { N = 4 };
    static char mem[N][8192];
    meshlm_prefetch_region r[N];
    for (int i = 0; i < N; i++) r[i] = (meshlm_prefetch_region){mem[i], sizeof mem[i]};
    meshlm_prefetch_params p = {.mode = MESHLM_PREFETCH_LINES, .window = 8192, .cyclic = true};
    meshlm_prefetch *pf = NULL;
    CHECK(meshlm_prefetch_start(r, N, &p, &pf) == MESHLM_OK);
    for (uint32_t g = 0; g < 3 * N; g++) meshlm_prefetch_at(pf, g);
    /* Third pass, compute at its last region: the prefetcher follows into the fourth pass. */
    CHECK(wait_progress(pf, 3 * N + 1) >= 3 * N + 1);
    usleep(20 * 1000);
    CHECK_MSG(meshlm_prefetch_progress(pf) <= 3 * N + 1, "progress %u with compute at %u", meshlm_prefetch_progress(pf),
              3 * N - 1);
    double t = now_s();
    meshlm_prefetch_stop(pf); /* it is waiting for compute now */
    CHECK(now_s() - t < 1.0);
}

/* A file written, synced and dropped from the page cache is resident after prefetching. */
static void test_cold_file(void) {
    char path[] = "/tmp/meshlm-prefetch-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0) return;
    unlink(path);
    size_t bytes = 4 * MIB;
    char *buf = malloc(bytes);
    memset(buf, 7, bytes);
    CHECK(write(fd, buf, bytes) == (ssize_t)bytes);
    free(buf);
    fsync(fd);
    posix_fadvise(fd, 0, (off_t)bytes, POSIX_FADV_DONTNEED);
    void *map = mmap(NULL, bytes, PROT_READ, MAP_PRIVATE, fd, 0);
    CHECK(map != MAP_FAILED);
    size_t page = (size_t)sysconf(_SC_PAGESIZE), n_pages = bytes / page;
    unsigned char *vec = malloc(n_pages);
    mincore(map, bytes, vec);
    size_t before = 0;
    for (size_t i = 0; i < n_pages; i++) before += vec[i] & 1;
    meshlm_prefetch_region r = {map, bytes};
    meshlm_prefetch_params p = {.mode = MESHLM_PREFETCH_PAGES, .window = bytes, .cyclic = false};
    meshlm_prefetch *pf = NULL;
    CHECK(meshlm_prefetch_start(&r, 1, &p, &pf) == MESHLM_OK);
    CHECK(wait_progress(pf, 1) == 1);
    meshlm_prefetch_stop(pf);
    mincore(map, bytes, vec);
    size_t after = 0;
    for (size_t i = 0; i < n_pages; i++) after += vec[i] & 1;
    fprintf(stderr, "cold file: %zu of %zu pages resident before, %zu after\n", before, n_pages, after);
    CHECK(after == n_pages);
    free(vec);
    munmap(map, bytes);
    close(fd);
}

/* meshlm_model_prefetch visits every matrix, and the logits do not change. */
static void test_model(void) {
    char dir[] = "/tmp/meshlm-prefetch-model-XXXXXX", path[256];
    if (!mkdtemp(dir)) {
        CHECK_MSG(0, "cannot make a temporary directory");
        return;
    }
    snprintf(path, sizeof path, "%s/tiny.gguf", dir);
    meshlm_synth_params sp;
    CHECK(meshlm_synth_preset("tiny", "llama", &sp) == MESHLM_OK);
    sp.type = MESHLM_TYPE_Q8_0;
    CHECK(meshlm_synth_write(&sp, path) == MESHLM_OK);
    float *want = NULL;
    for (int with = 0; with < 2; with++) {
        meshlm_model *m = NULL;
        meshlm_session *s = NULL;
        CHECK(meshlm_model_load(path, &m) == MESHLM_OK);
        if (!m) break;
        if (with) {
            CHECK(meshlm_model_prefetch(m) == MESHLM_OK && m->prefetch);
            CHECK(meshlm_model_prefetch(m) == MESHLM_OK);
            /* 7 matrices per layer and the LM head. */
            CHECK(wait_progress(m->prefetch, (uint32_t)(7 * m->hp.n_layer + 1)) == (uint32_t)(7 * m->hp.n_layer + 1));
        }
        meshlm_session_params p = meshlm_session_defaults();
        p.n_ctx = 64;
        CHECK(meshlm_session_create(m, &p, &s) == MESHLM_OK);
        int32_t toks[] = {1, 50, 60, 70};
        CHECK(meshlm_session_eval(s, toks, 4) == MESHLM_OK);
        int32_t nv = meshlm_model_n_vocab(m);
        if (!with) {
            want = malloc((size_t)nv * sizeof *want);
            memcpy(want, meshlm_session_logits(s), (size_t)nv * sizeof *want);
        } else {
            CHECK(memcmp(want, meshlm_session_logits(s), (size_t)nv * sizeof *want) == 0);
        }
        meshlm_session_free(s);
        meshlm_model_free(m);
    }
    CHECK(meshlm_model_prefetch(NULL) == MESHLM_ERR_INVALID_ARG);
    free(want);
    remove(path);
    rmdir(dir);
}

int main(void) {
    meshlm_prefetch *pf = (meshlm_prefetch *)1;
    meshlm_prefetch_params p = {0};
    CHECK(meshlm_prefetch_start(NULL, 1, &p, &pf) == MESHLM_ERR_INVALID_ARG && pf == NULL);
    meshlm_prefetch_stop(NULL);
    test_window();
    test_cyclic_and_stop();
    test_cold_file();
    test_model();
    return t_done();
}
