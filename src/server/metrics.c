/* vLLM's metric names with meshlm's prefix, in Prometheus text format: gauges, counters and
 * the latency histograms, rendered from the snapshot the engine publishes. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "server/internal.h"

static const double bounds[SRV_N_BUCKETS - 1] = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5,
                                                  0.75,  1.0,   2.5,  5.0,  7.5,  10,   20,   40,  80};

void meshlm_srv_hist_observe(srv_hist *h, double seconds) {
    int k = 0;
    while (k < SRV_N_BUCKETS - 1 && seconds > bounds[k]) k++;
    h->counts[k]++;
    h->count++;
    h->sum += seconds;
}

typedef struct text {
    char *p;
    size_t len, cap;
    bool oom;
} text;

/* printf into the growing buffer; a failed allocation marks it and drops the rest. */
__attribute__((format(printf, 2, 3))) static void put(text *t, const char *fmt, ...) {
    for (int tries = 0; tries < 2 && !t->oom; tries++) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->p ? t->p + t->len : NULL, t->p ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->oom = true;
            return;
        }
        if (t->p && t->len + (size_t)n < t->cap) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap ? t->cap : 4096;
        while (cap <= t->len + (size_t)n) cap *= 2;
        char *grown = realloc(t->p, cap);
        if (!grown) {
            t->oom = true;
            return;
        }
        t->p = grown;
        t->cap = cap;
    }
}

static void histogram(text *t, const char *name, const char *help, const srv_hist *h) {
    put(t, "# HELP meshlm:%s %s\n# TYPE meshlm:%s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (int k = 0; k < SRV_N_BUCKETS - 1; k++) {
        cum += h->counts[k];
        put(t, "meshlm:%s_bucket{le=\"%g\"} %llu\n", name, bounds[k], (unsigned long long)cum);
    }
    put(t, "meshlm:%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)h->count);
    put(t, "meshlm:%s_sum %.6f\nmeshlm:%s_count %llu\n", name, h->sum, name, (unsigned long long)h->count);
}

char *meshlm_srv_metrics_render(const srv_metrics *m, size_t *len) {
    static const char *const reasons[SRV_N_REASONS] = {"stop", "length", "abort"};
    text t = {0};
    put(&t, "# HELP meshlm:num_requests_running Sequences in the batch.\n# TYPE meshlm:num_requests_running gauge\n"
            "meshlm:num_requests_running %d\n", m->running);
    put(&t, "# HELP meshlm:num_requests_waiting Sequences waiting for a slot.\n"
            "# TYPE meshlm:num_requests_waiting gauge\nmeshlm:num_requests_waiting %d\n", m->waiting);
    put(&t, "# HELP meshlm:kv_cache_usage_perc KV cache pages in use (1 = all).\n"
            "# TYPE meshlm:kv_cache_usage_perc gauge\nmeshlm:kv_cache_usage_perc %.6f\n", m->kv_usage);
    put(&t, "# HELP meshlm:prompt_tokens_total Prompt tokens processed.\n# TYPE meshlm:prompt_tokens_total counter\n"
            "meshlm:prompt_tokens_total %llu\n", (unsigned long long)m->prompt_tokens);
    put(&t, "# HELP meshlm:generation_tokens_total Tokens generated.\n"
            "# TYPE meshlm:generation_tokens_total counter\nmeshlm:generation_tokens_total %llu\n",
        (unsigned long long)m->generation_tokens);
    put(&t, "# HELP meshlm:prefix_cache_queries_total Prompt tokens looked up in the prefix cache.\n"
            "# TYPE meshlm:prefix_cache_queries_total counter\nmeshlm:prefix_cache_queries_total %llu\n",
        (unsigned long long)m->prefix_queries);
    put(&t, "# HELP meshlm:prefix_cache_hits_total Prompt tokens whose KV came from the prefix cache.\n"
            "# TYPE meshlm:prefix_cache_hits_total counter\nmeshlm:prefix_cache_hits_total %llu\n",
        (unsigned long long)m->prefix_hits);
    put(&t, "# HELP meshlm:request_success_total Sequences finished, by reason.\n"
            "# TYPE meshlm:request_success_total counter\n");
    for (int r = 0; r < SRV_N_REASONS; r++)
        put(&t, "meshlm:request_success_total{finished_reason=\"%s\"} %llu\n", reasons[r],
            (unsigned long long)m->success[r]);
    histogram(&t, "time_to_first_token_seconds", "From arrival to the first generated token.",
              &m->hist[SRV_HIST_TTFT]);
    histogram(&t, "inter_token_latency_seconds", "Between generated tokens.", &m->hist[SRV_HIST_ITL]);
    histogram(&t, "e2e_request_latency_seconds", "From arrival to the finish.", &m->hist[SRV_HIST_E2E]);
    histogram(&t, "request_queue_time_seconds", "From arrival to admission into the batch.",
              &m->hist[SRV_HIST_QUEUE]);
    if (t.oom) {
        free(t.p);
        return NULL;
    }
    *len = t.len;
    return t.p;
}
