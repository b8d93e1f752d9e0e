/* meshlm bench-serve's measurements: what one streamed request gave, the samples of a run
 * (TTFT, TPOT, ITL, end-to-end latency), their summaries and the printed report. */
#ifndef MESHLM_APPS_BENCH_SERVE_STATS_H
#define MESHLM_APPS_BENCH_SERVE_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* One finished request, as the load loop saw it. Times are seconds on one monotonic clock. */
typedef struct meshlm_bs_result {
    bool ok;
    const char *error;          /* why it failed (when !ok) */
    double start, end;          /* request sent; last byte received */
    const double *chunk_t;      /* arrival time of each chunk that carried text */
    size_t n_chunks;
    int64_t prompt_tokens;      /* the usage chunk's; -1 when there was none */
    int64_t completion_tokens;  /* the same */
    const char *text;           /* the streamed text, NUL-terminated */
    size_t n_text;
} meshlm_bs_result;

/* A growing list of samples (milliseconds). */
typedef struct meshlm_bs_samples {
    double *v;
    size_t n, cap;
} meshlm_bs_samples;

bool meshlm_bs_samples_add(meshlm_bs_samples *s, double v);
void meshlm_bs_samples_free(meshlm_bs_samples *s);

/* The q-th percentile (0..100) of n sorted values, interpolating linearly between the
 * closest ranks (numpy's default). n must be > 0. */
double meshlm_bs_percentile(const double *sorted, size_t n, double q);

/* A run: its description (for the header) and what it measured. */
typedef struct meshlm_bs_report {
    const char *label, *url, *model, *dataset; /* label may be NULL */
    int64_t concurrency, num_prompts, input_len, output_len;
    double request_rate; /* <= 0: unlimited */
    bool multi_turn, interrupted;
    int64_t completed, failed, dropped; /* dropped: in flight when interrupted */
    double duration_s;
    int64_t input_tokens, output_tokens;
    meshlm_bs_samples ttft, tpot, itl, e2e, ttft_first, ttft_later;
} meshlm_bs_report;

/* Adds a finished request. turn: 0 when the workload has no turns, 1 for a conversation's
 * first turn, 2 for a later one. prompt_tokens: the input length to count when the server
 * sent no usage (-1: unknown). Returns false when out of memory. */
bool meshlm_bs_report_add(meshlm_bs_report *r, const meshlm_bs_result *res, int turn, int64_t prompt_tokens);

/* Prints the report as a text table, or (json) as one JSON object on one line. Returns
 * false on a write or memory error. */
bool meshlm_bs_report_print(FILE *f, meshlm_bs_report *r, bool json);

void meshlm_bs_report_free(meshlm_bs_report *r);

#endif
