#include "runtime/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/status.h"

meshlm_sampler_params meshlm_sampler_defaults(void) {
    return (meshlm_sampler_params){.temperature = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f,
                                   .repeat_penalty = 1.0f, .repeat_last_n = 64, .seed = UINT64_MAX};
}

static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* A uniform double in [0, 1) from the top 53 bits. */
static double uniform(uint64_t *state) { return (double)(splitmix64(state) >> 11) * (1.0 / 9007199254740992.0); }

int meshlm_sampler_init(meshlm_sampler *s, const meshlm_sampler_params *p, int32_t n_vocab) {
    memset(s, 0, sizeof *s);
    if (!(p->temperature >= 0.0f) || !(p->top_p > 0.0f && p->top_p <= 1.0f) || !(p->min_p >= 0.0f && p->min_p <= 1.0f) ||
        p->top_k < 0 || !(p->repeat_penalty > 0.0f) || p->repeat_last_n < 0)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG,
                           "sampler: temp %g, top-k %d, top-p %g, min-p %g, repeat-penalty %g, repeat-last-n %d: "
                           "need temp >= 0, top-k >= 0, 0 < top-p <= 1, 0 <= min-p <= 1, penalty > 0, last-n >= 0",
                           (double)p->temperature, p->top_k, (double)p->top_p, (double)p->min_p,
                           (double)p->repeat_penalty, p->repeat_last_n);
    s->params = *p;
    s->n_vocab = n_vocab;
    s->rng = p->seed == UINT64_MAX ? (uint64_t)time(NULL) ^ (uint64_t)clock() << 32 : p->seed;
    s->cand = malloc((size_t)n_vocab * sizeof *s->cand);
    s->history = malloc((size_t)(p->repeat_last_n > 0 ? p->repeat_last_n : 1) * sizeof *s->history);
    if (!s->cand || !s->history) {
        meshlm_sampler_free(s);
        return meshlm_fail(MESHLM_ERR_NOMEM, "sampler: out of memory for %d candidates", n_vocab);
    }
    return MESHLM_OK;
}

void meshlm_sampler_free(meshlm_sampler *s) {
    free(s->cand);
    free(s->history);
    s->cand = NULL;
    s->history = NULL;
}

void meshlm_sampler_reset(meshlm_sampler *s) {
    s->n_history = 0;
    s->history_pos = 0;
}

void meshlm_sampler_accept(meshlm_sampler *s, int32_t token) {
    int32_t cap = s->params.repeat_last_n;
    if (cap <= 0) return;
    s->history[s->history_pos] = token;
    s->history_pos = (s->history_pos + 1) % cap;
    if (s->n_history < cap) s->n_history++;
}

static int by_logit_desc(const void *a, const void *b) {
    const meshlm_candidate *x = a, *y = b;
    if (x->logit != y->logit) return x->logit > y->logit ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Penalizes each distinct recent token once, as llama.cpp does: positive logits are
 * divided by the penalty, negative ones multiplied. c holds ids [lo, lo + n) in order. */
static void apply_penalty(const meshlm_sampler *s, meshlm_candidate *c, int32_t lo, int32_t n) {
    float pen = s->params.repeat_penalty;
    if (pen == 1.0f) return;
    for (int32_t i = 0; i < s->n_history; i++) {
        int32_t id = s->history[i];
        bool seen = false;
        for (int32_t j = 0; j < i && !seen; j++) seen = s->history[j] == id;
        if (seen || id < lo || id >= lo + n) continue;
        meshlm_candidate *x = &c[id - lo];
        x->logit = x->logit > 0 ? x->logit / pen : x->logit * pen;
    }
}

/* Softmax of the first n candidates at temperature temp, into p. */
static void softmax_cand(meshlm_candidate *c, int32_t n, float temp) {
    float max = c[0].logit;
    for (int32_t i = 1; i < n; i++)
        if (c[i].logit > max) max = c[i].logit;
    double sum = 0.0;
    for (int32_t i = 0; i < n; i++) {
        c[i].p = expf((c[i].logit - max) / temp);
        sum += c[i].p;
    }
    for (int32_t i = 0; i < n; i++) c[i].p = (float)(c[i].p / sum);
}

/* Keeps the k highest logits at the front, sorted (a partial selection when k is small). */
static int32_t keep_top_k(meshlm_candidate *c, int32_t n, int32_t k) {
    if (k <= 0 || k >= n) {
        qsort(c, (size_t)n, sizeof *c, by_logit_desc);
        return n;
    }
    /* Insertion into a sorted prefix of k: O(n k) worst case but O(n) for typical logits. */
    qsort(c, (size_t)k, sizeof *c, by_logit_desc);
    for (int32_t i = k; i < n; i++) {
        if (by_logit_desc(&c[i], &c[k - 1]) >= 0) continue;
        meshlm_candidate x = c[i];
        int32_t j = k - 1;
        while (j > 0 && by_logit_desc(&x, &c[j - 1]) < 0) {
            c[j] = c[j - 1];
            j--;
        }
        c[j] = x;
    }
    return k;
}

int32_t meshlm_sampler_n_candidates(const meshlm_sampler *s, int32_t n) {
    int32_t k = s->params.temperature <= 0.0f ? 1 : s->params.top_k;
    return k > 0 && k < n ? k : n;
}

int32_t meshlm_sampler_candidates(const meshlm_sampler *s, const float *logits, int32_t lo, int32_t n,
                                  meshlm_candidate *out) {
    for (int32_t i = 0; i < n; i++) out[i] = (meshlm_candidate){lo + i, logits[i], 0.0f};
    apply_penalty(s, out, lo, n);
    if (n == 0) return 0;
    int32_t k = meshlm_sampler_n_candidates(s, n);
    /* Greedy keeps the best only; ties go to the lowest id, as a full argmax would. */
    if (k == 1) {
        int32_t best = 0;
        for (int32_t i = 1; i < n; i++)
            if (out[i].logit > out[best].logit) best = i;
        out[0] = out[best];
        return 1;
    }
    return keep_top_k(out, n, k);
}

int32_t meshlm_sampler_sample(meshlm_sampler *s, const float *logits) {
    int32_t n = meshlm_sampler_candidates(s, logits, 0, s->n_vocab, s->cand);
    return meshlm_sampler_pick(s, s->cand, n);
}

int32_t meshlm_sampler_pick(meshlm_sampler *s, meshlm_candidate *c, int32_t n) {
    const meshlm_sampler_params *p = &s->params;
    if (p->temperature <= 0.0f) {
        int32_t best = 0;
        for (int32_t i = 1; i < n; i++)
            if (c[i].logit > c[best].logit || (c[i].logit == c[best].logit && c[i].id < c[best].id)) best = i;
        return c[best].id;
    }
    n = keep_top_k(c, n, p->top_k);
    if (p->top_p < 1.0f) {
        softmax_cand(c, n, 1.0f);
        double cum = 0.0;
        int32_t keep = n;
        for (int32_t i = 0; i < n; i++) {
            cum += c[i].p;
            if (cum >= p->top_p) {
                keep = i + 1;
                break;
            }
        }
        n = keep;
    }
    if (p->min_p > 0.0f) {
        float floor = c[0].logit + logf(p->min_p); /* p_i >= min_p * p_max, in logit space */
        int32_t keep = 1;
        while (keep < n && c[keep].logit >= floor) keep++;
        n = keep;
    }
    softmax_cand(c, n, p->temperature);
    double r = uniform(&s->rng), cum = 0.0;
    for (int32_t i = 0; i < n; i++) {
        cum += c[i].p;
        if (r < cum) return c[i].id;
    }
    return c[n - 1].id;
}
