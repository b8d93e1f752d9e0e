#include "apps/bench_serve_stats.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

bool meshlm_bs_samples_add(meshlm_bs_samples *s, double v) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        double *grown = realloc(s->v, cap * sizeof *grown);
        if (!grown) return false;
        s->v = grown;
        s->cap = cap;
    }
    s->v[s->n++] = v;
    return true;
}

void meshlm_bs_samples_free(meshlm_bs_samples *s) {
    free(s->v);
    *s = (meshlm_bs_samples){0};
}

double meshlm_bs_percentile(const double *sorted, size_t n, double q) {
    double rank = q / 100.0 * (double)(n - 1);
    size_t lo = (size_t)floor(rank), hi = (size_t)ceil(rank);
    if (hi >= n) hi = n - 1;
    return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - (double)lo);
}

bool meshlm_bs_report_add(meshlm_bs_report *r, const meshlm_bs_result *res, int turn, int64_t prompt_tokens) {
    if (!res->ok) {
        r->failed++;
        return true;
    }
    r->completed++;
    int64_t in = res->prompt_tokens >= 0 ? res->prompt_tokens : prompt_tokens;
    int64_t out = res->completion_tokens >= 0 ? res->completion_tokens : (int64_t)res->n_chunks;
    r->input_tokens += in > 0 ? in : 0;
    r->output_tokens += out;
    double e2e = (res->end - res->start) * 1e3;
    if (!meshlm_bs_samples_add(&r->e2e, e2e)) return false;
    /* A reply with no text at all (an immediate end of generation) has no first token. */
    if (!res->n_chunks) return true;
    double ttft = (res->chunk_t[0] - res->start) * 1e3;
    if (!meshlm_bs_samples_add(&r->ttft, ttft)) return false;
    if (turn == 1 && !meshlm_bs_samples_add(&r->ttft_first, ttft)) return false;
    if (turn == 2 && !meshlm_bs_samples_add(&r->ttft_later, ttft)) return false;
    for (size_t i = 1; i < res->n_chunks; i++)
        if (!meshlm_bs_samples_add(&r->itl, (res->chunk_t[i] - res->chunk_t[i - 1]) * 1e3)) return false;
    if (out > 1 && !meshlm_bs_samples_add(&r->tpot, (e2e - ttft) / (double)(out - 1))) return false;
    return true;
}

typedef struct summary {
    bool any;
    double mean, p50, p99;
} summary;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts the samples in place. */
static summary summarize(meshlm_bs_samples *s) {
    summary m = {0};
    if (!s->n) return m;
    qsort(s->v, s->n, sizeof *s->v, cmp_double);
    double sum = 0;
    for (size_t i = 0; i < s->n; i++) sum += s->v[i];
    m.any = true;
    m.mean = sum / (double)s->n;
    m.p50 = meshlm_bs_percentile(s->v, s->n, 50);
    m.p99 = meshlm_bs_percentile(s->v, s->n, 99);
    return m;
}

static double per_s(double x, double dur) { return dur > 0 ? x / dur : 0; }

/* One metric's block: a dashed title, then mean, median and p99. */
static void print_metric(FILE *f, const char *title, const char *abbr, meshlm_bs_samples *s) {
    enum { WIDTH = 50 };
    int len = (int)strlen(title) + 2, left = (WIDTH - len) / 2, right = WIDTH - len - left;
    fprintf(f, "%.*s %s %.*s\n", left > 0 ? left : 0, "--------------------------------------------------", title,
            right > 0 ? right : 0, "--------------------------------------------------");
    summary m = summarize(s);
    const char *what[3] = {"Mean", "Median", "P99"};
    double v[3] = {m.mean, m.p50, m.p99};
    for (int i = 0; i < 3; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s %s (ms):", what[i], abbr);
        if (m.any) fprintf(f, "%-40s %.2f\n", name, v[i]);
        else fprintf(f, "%-40s n/a\n", name);
    }
}

static bool print_text(FILE *f, meshlm_bs_report *r) {
    fprintf(f, "============ Serving Benchmark Result ============\n");
    if (r->label) fprintf(f, "%-40s %s\n", "Label:", r->label);
    fprintf(f, "%-40s %s\n", "Endpoint:", r->url);
    fprintf(f, "%-40s %s\n", "Model:", r->model);
    fprintf(f, "%-40s %s\n", "Dataset:", r->dataset);
    fprintf(f, "%-40s %lld\n", "Maximum request concurrency:", (long long)r->concurrency);
    if (r->request_rate > 0) fprintf(f, "%-40s %g\n", "Request rate (req/s):", r->request_rate);
    else fprintf(f, "%-40s inf\n", "Request rate (req/s):");
    if (r->interrupted)
        fprintf(f, "%-40s yes (%lld in flight dropped)\n", "Interrupted:", (long long)r->dropped);
    fprintf(f, "%-40s %lld\n", "Successful requests:", (long long)r->completed);
    fprintf(f, "%-40s %lld\n", "Failed requests:", (long long)r->failed);
    fprintf(f, "%-40s %.2f\n", "Benchmark duration (s):", r->duration_s);
    fprintf(f, "%-40s %lld\n", "Total input tokens:", (long long)r->input_tokens);
    fprintf(f, "%-40s %lld\n", "Total generated tokens:", (long long)r->output_tokens);
    fprintf(f, "%-40s %.2f\n", "Request throughput (req/s):", per_s((double)r->completed, r->duration_s));
    fprintf(f, "%-40s %.2f\n", "Output token throughput (tok/s):", per_s((double)r->output_tokens, r->duration_s));
    fprintf(f, "%-40s %.2f\n", "Total token throughput (tok/s):",
            per_s((double)(r->input_tokens + r->output_tokens), r->duration_s));
    print_metric(f, "Time to First Token", "TTFT", &r->ttft);
    if (r->multi_turn) {
        print_metric(f, "TTFT, first turns", "TTFT", &r->ttft_first);
        print_metric(f, "TTFT, later turns", "TTFT", &r->ttft_later);
    }
    print_metric(f, "Time per Output Token (excl. 1st token)", "TPOT", &r->tpot);
    print_metric(f, "Inter-token Latency", "ITL", &r->itl);
    print_metric(f, "End-to-end Latency", "E2EL", &r->e2e);
    fprintf(f, "==================================================\n");
    return !ferror(f);
}

/* {mean, p50, p99, count}; the statistics are null without samples. */
static json_t *metric_json(meshlm_bs_samples *s) {
    summary m = summarize(s);
    return json_pack("{s:o, s:o, s:o, s:I}", "mean", m.any ? json_real(m.mean) : json_null(), "p50",
                     m.any ? json_real(m.p50) : json_null(), "p99", m.any ? json_real(m.p99) : json_null(), "count",
                     (json_int_t)s->n);
}

/* Sets key to value (taken); false when either is missing. */
static bool put(json_t *o, const char *key, json_t *value) { return value && json_object_set_new(o, key, value) == 0; }

static bool print_json(FILE *f, meshlm_bs_report *r) {
    json_t *o = json_object();
    double d = r->duration_s;
    bool ok = o && put(o, "label", r->label ? json_string(r->label) : json_null()) &&
              put(o, "url", json_string(r->url)) && put(o, "model", json_string(r->model)) &&
              put(o, "dataset", json_string(r->dataset)) && put(o, "max_concurrency", json_integer(r->concurrency)) &&
              put(o, "request_rate", r->request_rate > 0 ? json_real(r->request_rate) : json_null()) &&
              put(o, "num_prompts", json_integer(r->num_prompts)) && put(o, "input_len", json_integer(r->input_len)) &&
              put(o, "output_len", json_integer(r->output_len)) && put(o, "interrupted", json_boolean(r->interrupted)) &&
              put(o, "dropped", json_integer(r->dropped)) && put(o, "completed", json_integer(r->completed)) &&
              put(o, "failed", json_integer(r->failed)) && put(o, "duration_s", json_real(d)) &&
              put(o, "total_input_tokens", json_integer(r->input_tokens)) &&
              put(o, "total_output_tokens", json_integer(r->output_tokens)) &&
              put(o, "request_throughput", json_real(per_s((double)r->completed, d))) &&
              put(o, "output_throughput", json_real(per_s((double)r->output_tokens, d))) &&
              put(o, "total_token_throughput", json_real(per_s((double)(r->input_tokens + r->output_tokens), d))) &&
              put(o, "ttft_ms", metric_json(&r->ttft)) && put(o, "tpot_ms", metric_json(&r->tpot)) &&
              put(o, "itl_ms", metric_json(&r->itl)) && put(o, "e2e_ms", metric_json(&r->e2e));
    if (ok && r->multi_turn)
        ok = put(o, "ttft_first_turn_ms", metric_json(&r->ttft_first)) &&
             put(o, "ttft_later_turns_ms", metric_json(&r->ttft_later));
    char *text = ok ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(10)) : NULL;
    json_decref(o);
    if (!text) return false;
    fprintf(f, "%s\n", text);
    free(text);
    return !ferror(f);
}

bool meshlm_bs_report_print(FILE *f, meshlm_bs_report *r, bool json) {
    bool ok = json ? print_json(f, r) : print_text(f, r);
    return fflush(f) == 0 && ok;
}

void meshlm_bs_report_free(meshlm_bs_report *r) {
    meshlm_bs_samples *all[] = {&r->ttft, &r->tpot, &r->itl, &r->e2e, &r->ttft_first, &r->ttft_later};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) meshlm_bs_samples_free(all[i]);
}
