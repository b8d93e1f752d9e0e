/* A tiny test harness: CHECK records a failure and goes on; a test file's main returns
 * t_done(), which prints "N passed, M failed" and exits non-zero on failure.
 * t_skip(why) exits 77, which CTest reports as skipped. */
#ifndef MESHLM_TEST_T_H
#define MESHLM_TEST_T_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static int t_passed, t_failed;

#define CHECK(cond)                                                                      \
    do {                                                                                 \
        if (cond) {                                                                      \
            t_passed++;                                                                  \
        } else {                                                                         \
            t_failed++;                                                                  \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);     \
        }                                                                                \
    } while (0)

#define CHECK_MSG(cond, ...)                                                             \
    do {                                                                                 \
        if (cond) {                                                                      \
            t_passed++;                                                                  \
        } else {                                                                         \
            t_failed++;                                                                  \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);     \
            fprintf(stderr, __VA_ARGS__);                                                \
            fputc('\n', stderr);                                                         \
        }                                                                                \
    } while (0)

#define CHECK_NEAR(a, b, tol) CHECK_MSG(fabs((double)(a) - (double)(b)) <= (tol), "%g vs %g", (double)(a), (double)(b))

static inline int t_done(void) {
    printf("%d passed, %d failed\n", t_passed, t_failed);
    return t_failed ? 1 : 0;
}

static inline void t_skip(const char *why) {
    printf("SKIP: %s\n", why);
    exit(77);
}

/* The tests' deterministic data: a xorshift64 step on *state, its upper bits out. */
static inline uint32_t t_xorshift(uint64_t *state) {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return (uint32_t)(*state >> 16);
}

#endif
