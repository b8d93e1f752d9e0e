/* Sampling: greedy, seeded draws, the filters and the repetition penalty. */
#include <math.h>
#include <string.h>

#include "runtime/sampler.h"
#include "t.h"

enum { NV = 6 };

static meshlm_sampler_params greedy(void) {
    meshlm_sampler_params p = meshlm_sampler_defaults();
    p.temperature = 0.0f;
    p.seed = 1;
    return p;
}

static void test_greedy(void) {
    meshlm_sampler s;
    meshlm_sampler_params p = greedy();
    CHECK(meshlm_sampler_init(&s, &p, NV) == MESHLM_OK);
    float logits[NV] = {0.1f, 3.0f, 2.0f, 3.0f, -1.0f, 0.0f};
    CHECK(meshlm_sampler_sample(&s, logits) == 1); /* ties go to the lowest id */
    meshlm_sampler_free(&s);
}

/* Counts draws of each id over many seeded samples. */
static void histogram(meshlm_sampler_params p, const float *logits, int n, int *counts) {
    meshlm_sampler s;
    CHECK(meshlm_sampler_init(&s, &p, NV) == MESHLM_OK);
    memset(counts, 0, NV * sizeof *counts);
    for (int i = 0; i < n; i++) counts[meshlm_sampler_sample(&s, logits)]++;
    meshlm_sampler_free(&s);
}

static void test_distribution(void) {
    float logits[NV] = {0.0f, logf(2.0f), logf(3.0f), logf(4.0f), -INFINITY, -INFINITY};
    meshlm_sampler_params p = meshlm_sampler_defaults();
    p.temperature = 1.0f, p.top_k = 0, p.top_p = 1.0f, p.min_p = 0.0f, p.seed = 42;
    int c[NV];
    histogram(p, logits, 20000, c);
    /* Expected 2000, 4000, 6000, 8000: allow 4 standard deviations. */
    for (int i = 0; i < 4; i++) CHECK_NEAR(c[i], 2000.0 * (i + 1), 4 * sqrt(20000 * 0.1 * (i + 1) * (1 - 0.1 * (i + 1))));
    CHECK(c[4] == 0 && c[5] == 0);
    int c2[NV];
    histogram(p, logits, 20000, c2);
    CHECK(memcmp(c, c2, sizeof c) == 0); /* same seed, same draws */
    p.top_k = 2;
    histogram(p, logits, 2000, c);
    CHECK(c[0] == 0 && c[1] == 0 && c[2] > 0 && c[3] > 0);
    p.top_k = 0, p.top_p = 0.5f; /* 0.4 + 0.3 reaches 0.5: keeps ids 3 and 2 */
    histogram(p, logits, 2000, c);
    CHECK(c[0] == 0 && c[1] == 0 && c[2] > 0 && c[3] > 0);
    p.top_p = 1.0f, p.min_p = 0.6f; /* keeps p >= 0.6 * 0.4: ids 3 (0.4) and 2 (0.3) */
    histogram(p, logits, 2000, c);
    CHECK(c[0] == 0 && c[1] == 0 && c[2] > 0 && c[3] > 0);
    p.min_p = 0.0f, p.temperature = 0.01f; /* near-greedy */
    histogram(p, logits, 500, c);
    CHECK(c[3] == 500);
}

static void test_penalty(void) {
    meshlm_sampler s;
    meshlm_sampler_params p = greedy();
    p.repeat_penalty = 2.0f, p.repeat_last_n = 2;
    CHECK(meshlm_sampler_init(&s, &p, NV) == MESHLM_OK);
    float logits[NV] = {1.0f, 3.0f, 2.0f, 0.0f, -1.0f, -2.0f};
    meshlm_sampler_accept(&s, 1);
    meshlm_sampler_accept(&s, 1);
    CHECK(meshlm_sampler_sample(&s, logits) == 2); /* 3/2 = 1.5 < 2 */
    meshlm_sampler_accept(&s, 2);
    meshlm_sampler_accept(&s, 4); /* the window of 2 now holds 2 and 4: id 1 is free again */
    CHECK(meshlm_sampler_sample(&s, logits) == 1);
    meshlm_sampler_free(&s);
}

static void test_bad_params(void) {
    meshlm_sampler s;
    meshlm_sampler_params p = greedy();
    p.top_p = 0.0f;
    CHECK(meshlm_sampler_init(&s, &p, NV) == MESHLM_ERR_INVALID_ARG);
    p = greedy();
    p.temperature = -1.0f;
    CHECK(meshlm_sampler_init(&s, &p, NV) == MESHLM_ERR_INVALID_ARG);
    CHECK(strstr(meshlm_last_error(), "temp") != NULL);
}

int main(void) {
    test_greedy();
    test_distribution();
    test_penalty();
    test_bad_params();
    return t_done();
}
