/* Token sampling: repetition penalty, top-k, top-p, min-p, temperature and a seeded draw,
 * in llama.cpp's order. Temperature 0 is greedy (argmax, lowest id on ties). */
#ifndef MESHLM_RUNTIME_SAMPLER_H
#define MESHLM_RUNTIME_SAMPLER_H

#include <stdint.h>

#include "meshlm.h"

typedef struct meshlm_candidate {
    int32_t id;
    float logit, p;
} meshlm_candidate;

typedef struct meshlm_sampler {
    meshlm_sampler_params params;
    int32_t n_vocab;
    meshlm_candidate *cand; /* n_vocab, allocated once */
    int32_t *history;       /* ring of the last repeat_last_n tokens */
    int32_t n_history, history_pos;
    uint64_t rng;
} meshlm_sampler;

int meshlm_sampler_init(meshlm_sampler *s, const meshlm_sampler_params *p, int32_t n_vocab);
void meshlm_sampler_free(meshlm_sampler *s);
/* Forgets the token history (the random state goes on). */
void meshlm_sampler_reset(meshlm_sampler *s);
/* Remembers a token (prompt or generated) for the repetition penalty. */
void meshlm_sampler_accept(meshlm_sampler *s, int32_t token);
/* Draws a token from logits (n_vocab values, not modified). */
int32_t meshlm_sampler_sample(meshlm_sampler *s, const float *logits);

/* The sampler in two halves, so a vocabulary split across devices never has to be
 * gathered: each shard turns its logits of ids [lo, lo + n) into at most
 * meshlm_sampler_n_candidates(s, n) penalized candidates, best first (reads s only, so
 * shards may run it concurrently); the shards' candidates together then go to pick. */
int32_t meshlm_sampler_n_candidates(const meshlm_sampler *s, int32_t n);
int32_t meshlm_sampler_candidates(const meshlm_sampler *s, const float *logits, int32_t lo, int32_t n,
                                  meshlm_candidate *out);
int32_t meshlm_sampler_pick(meshlm_sampler *s, meshlm_candidate *c, int32_t n);

#endif
