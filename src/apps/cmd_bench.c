/* meshlm bench: prompt-processing (ppN) and generation (tgN) speed in the manner of
 * llama-bench, with the machine's read bandwidth and peak FLOP/s measured in the same run,
 * so every row also says how close it comes to the hardware's limit. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "apps/args.h"
#include "apps/bench_probe.h"
#include "apps/commands.h"
#include "core/cpu.h"
#include "core/dtype.h"
#include "mesh/mesh.h"
#include "model/model.h"

enum { MAX_LIST = 16, MAX_REPS = 100, PROBE_BYTES = 512 << 20 };

typedef struct bench_opts {
    const char *model, *topology, *format;
    int64_t prompts[MAX_LIST], gens[MAX_LIST], threads[MAX_LIST];
    int n_prompts, n_gens, n_threads;
    const char *meshes[MAX_LIST];
    int n_meshes;
    int64_t reps;
} bench_opts;

typedef struct bench_row {
    const char *mesh;
    int threads, n_prompt, n_gen;
    double samples_ts[MAX_REPS], avg_ts, sd_ts, avg_ns, sd_ns;
    int n_samples;
    double bytes_per_token, membw, peak, roofline;
} bench_row;

typedef struct machine {
    int ncpu;
    double bw[2], peak[2]; /* 1 thread, all threads */
} machine;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void usage(FILE *f) {
    fprintf(f, "usage: meshlm bench -m FILE [-p LIST] [-n LIST] [-t LIST] [-r N] [--mesh LIST] [--topology T]\n"
               "                    [-o md|json|csv]\n"
               "  -p LIST      prompt lengths to time, comma-separated (default 512; 0 = none)\n"
               "  -n LIST      generation lengths to time (default 128; 0 = none)\n"
               "  -t LIST      threads per device (default: all cores)\n"
               "  -r N         repetitions per test, after one warm-up (default 5)\n"
               "  --mesh LIST  mesh shapes, e.g. 1x1,1x2 (default 1x1)\n"
               "  -o FORMAT    md (default), json or csv\n"
               "Rows give tokens/s (mean +- sd); decode rows also bytes of weights read per token and the\n"
               "fraction of the measured read bandwidth they reach, prefill rows the fraction of measured peak FLOP/s.\n");
}

/* "512,1024" into out; false (with a message) on a bad element. */
static bool parse_list(const char *flag, const char *s, int64_t lo, int64_t hi, int64_t *out, int *n) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    *n = 0;
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        if (*n == MAX_LIST) {
            fprintf(stderr, "meshlm bench: %s: at most %d values\n", flag, MAX_LIST);
            return false;
        }
        if (!meshlm_arg_int("bench", flag, tok, lo, hi, &out[(*n)++])) return false;
    }
    return *n > 0;
}

static int parse(int argc, char **argv, bench_opts *o) {
    static char meshes[512];
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        bool missing = false, ok = true;
#define TAKE(flag, alias) meshlm_arg_take(argc, argv, &i, flag, alias, &v, &missing)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (TAKE("-m", "--model")) {
            o->model = v;
        } else if (TAKE("-p", "--n-prompt")) {
            ok = missing || parse_list("-p", v, 0, 1 << 20, o->prompts, &o->n_prompts);
        } else if (TAKE("-n", "--n-gen")) {
            ok = missing || parse_list("-n", v, 0, 1 << 20, o->gens, &o->n_gens);
        } else if (TAKE("-t", "--threads")) {
            ok = missing || parse_list("-t", v, 1, 4096, o->threads, &o->n_threads);
        } else if (TAKE("-r", "--repetitions")) {
            ok = missing || meshlm_arg_int("bench", "-r", v, 1, MAX_REPS, &o->reps);
        } else if (TAKE("--mesh", NULL)) {
            if (!missing) {
                snprintf(meshes, sizeof meshes, "%s", v);
                o->n_meshes = 0;
                for (char *tok = strtok(meshes, ","); tok && o->n_meshes < MAX_LIST; tok = strtok(NULL, ","))
                    o->meshes[o->n_meshes++] = tok;
            }
        } else if (TAKE("--topology", NULL)) {
            o->topology = v;
        } else if (TAKE("-o", "--output")) {
            o->format = v;
            ok = missing || !strcmp(v, "md") || !strcmp(v, "json") || !strcmp(v, "csv");
            if (!ok) fprintf(stderr, "meshlm bench: -o: '%s' is not md, json or csv\n", v);
        } else {
            fprintf(stderr, "meshlm bench: unknown option '%s'\n", argv[i]);
            return 2;
        }
#undef TAKE
        if (missing) fprintf(stderr, "meshlm bench: %s needs a value\n", argv[i]);
        if (missing || !ok) return 2;
    }
    if (!o->model) {
        fprintf(stderr, "meshlm bench: -m FILE is required\n");
        return 2;
    }
    return -1;
}

static void stats(bench_row *r, const double *secs, int tokens) {
    double sum_ts = 0, sum_ns = 0;
    for (int i = 0; i < r->n_samples; i++) {
        r->samples_ts[i] = tokens / secs[i];
        sum_ts += r->samples_ts[i];
        sum_ns += secs[i] * 1e9;
    }
    r->avg_ts = sum_ts / r->n_samples;
    r->avg_ns = sum_ns / r->n_samples;
    double v_ts = 0, v_ns = 0;
    for (int i = 0; i < r->n_samples; i++) {
        v_ts += (r->samples_ts[i] - r->avg_ts) * (r->samples_ts[i] - r->avg_ts);
        v_ns += (secs[i] * 1e9 - r->avg_ns) * (secs[i] * 1e9 - r->avg_ns);
    }
    r->sd_ts = r->n_samples > 1 ? sqrt(v_ts / (r->n_samples - 1)) : 0;
    r->sd_ns = r->n_samples > 1 ? sqrt(v_ns / (r->n_samples - 1)) : 0;
}

/* Token ids for timing: spread over the vocabulary, deterministic. */
static int32_t bench_token(const meshlm_model *m, int i) { return (int32_t)((i * 7919 + 13) % m->hp.n_vocab); }

/* One test, warm-up then reps: a prompt of n_prompt tokens at once, or n_gen tokens one by one. */
static int time_test(const meshlm_model *m, meshlm_session *s, int n_prompt, int n_gen, int reps, double *secs) {
    int32_t *ids = malloc((size_t)(n_prompt > 0 ? n_prompt : 1) * sizeof *ids);
    if (!ids) return -1;
    for (int i = 0; i < n_prompt; i++) ids[i] = bench_token(m, i);
    for (int r = -1; r < reps; r++) {
        meshlm_session_reset(s);
        double t0 = now_s();
        if (n_prompt > 0 && meshlm_session_eval(s, ids, n_prompt) != MESHLM_OK) break;
        for (int i = 0; i < n_gen; i++) {
            int32_t tok = bench_token(m, i);
            if (meshlm_session_eval(s, &tok, 1) != MESHLM_OK) {
                free(ids);
                return -1;
            }
        }
        if (r >= 0) secs[r] = now_s() - t0;
    }
    free(ids);
    return 0;
}

/* FLOPs of a prefill of n tokens: every layer matrix per token, the LM head once, and the
 * causal attention scores and sums. */
static double prefill_flops(const meshlm_model *m, int n) {
    const meshlm_hparams *hp = &m->hp;
    double lm = (double)m->output.n_in * (double)m->output.n_out;
    double layers = (double)meshlm_model_n_params(m) - (double)m->tok_embd.n_in * m->tok_embd.n_out -
                    (hp->tied_output ? 0.0 : lm);
    double attn = 2.0 * hp->n_layer * hp->n_head * hp->head_dim * (double)n * (n + 1);
    return 2.0 * n * layers + 2.0 * lm + attn;
}

static int mesh_devices(const char *mesh) {
    int r = 1, c = 1;
    return meshlm_mesh_parse(mesh, &r, &c) == MESHLM_OK ? r * c : 1;
}

static void fill_roofline(const meshlm_model *m, const machine *mc, bench_row *r) {
    int used = r->threads * mesh_devices(r->mesh);
    int all = used > 1 ? 1 : 0;
    r->bytes_per_token = r->n_gen ? (double)meshlm_model_weight_bytes(m) : 0.0;
    r->membw = mc->bw[all];
    r->peak = mc->peak[all];
    if (r->n_gen)
        r->roofline = r->avg_ts * r->bytes_per_token / (r->membw * 1e9);
    else
        r->roofline = prefill_flops(m, r->n_prompt) / (r->avg_ns * 1e-9) / (r->peak * 1e9);
}

static const char *main_type(const meshlm_model *m) {
    size_t bytes[MESHLM_TYPE_COUNT] = {0};
    for (int64_t i = 0; i < meshlm_gguf_n_tensors(m->gguf); i++) {
        const meshlm_gguf_tensor *t = meshlm_gguf_tensor_at(m->gguf, i);
        if (t->n_dims >= 2 && t->type >= 0 && t->type < MESHLM_TYPE_COUNT) bytes[t->type] += t->nbytes;
    }
    int best = 0;
    for (int t = 1; t < MESHLM_TYPE_COUNT; t++)
        if (bytes[t] > bytes[best]) best = t;
    return meshlm_type_name(best);
}

typedef struct model_desc {
    const char *file, *type;
    char type_label[64];
    uint64_t size, n_params;
} model_desc;

/* 1.24 B, 260.12 K: a count in the unit that reads best. */
static void scaled(char *out, size_t cap, double v) {
    if (v >= 1e9)
        snprintf(out, cap, "%.2f B", v / 1e9);
    else if (v >= 1e6)
        snprintf(out, cap, "%.2f M", v / 1e6);
    else
        snprintf(out, cap, "%.2f K", v / 1e3);
}

static void test_name(const bench_row *r, char *out, size_t cap) {
    if (r->n_gen)
        snprintf(out, cap, "tg%d", r->n_gen);
    else
        snprintf(out, cap, "pp%d", r->n_prompt);
}

static void print_md(const model_desc *d, const machine *mc, const bench_row *rows, int n) {
    printf("cpu: %s; read bandwidth %.1f GB/s (1 thread), %.1f GB/s (%d threads); peak %.1f GFLOP/s (1 thread), "
           "%.1f GFLOP/s (%d threads)\n\n",
           meshlm_cpu_features(), mc->bw[0], mc->bw[1], mc->ncpu, mc->peak[0], mc->peak[1], mc->ncpu);
    printf("| model | size | params | mesh | threads | test | t/s | GB/token | roofline |\n");
    printf("| --- | ---: | ---: | --- | ---: | --- | ---: | ---: | ---: |\n");
    char params[32];
    scaled(params, sizeof params, (double)d->n_params);
    for (int i = 0; i < n; i++) {
        const bench_row *r = &rows[i];
        char test[32], gb[32] = "-";
        test_name(r, test, sizeof test);
        if (r->n_gen) snprintf(gb, sizeof gb, "%.3f", r->bytes_per_token / 1e9);
        printf("| %s | %.2f GiB | %s | %s | %d | %s | %.2f ± %.2f | %s | %.1f%% %s |\n", d->type_label,
               (double)d->size / (1 << 30), params, r->mesh, r->threads, test, r->avg_ts, r->sd_ts, gb,
               100 * r->roofline, r->n_gen ? "of bw" : "of peak");
    }
}

static void print_json(const model_desc *d, const bench_row *rows, int n) {
    printf("[\n");
    for (int i = 0; i < n; i++) {
        const bench_row *r = &rows[i];
        char test[32];
        test_name(r, test, sizeof test);
        printf("  {\"model_filename\": \"%s\", \"model_type\": \"%s\", \"model_size\": %llu, \"model_n_params\": %llu, "
               "\"n_threads\": %d, \"n_prompt\": %d, \"n_gen\": %d, \"test\": \"%s\", \"avg_ts\": %.6f, "
               "\"stddev_ts\": %.6f, \"avg_ns\": %.0f, \"stddev_ns\": %.0f, \"samples_ts\": [",
               d->file, d->type_label, (unsigned long long)d->size, (unsigned long long)d->n_params, r->threads,
               r->n_prompt, r->n_gen, test, r->avg_ts, r->sd_ts, r->avg_ns, r->sd_ns);
        for (int k = 0; k < r->n_samples; k++) printf("%s%.6f", k ? ", " : "", r->samples_ts[k]);
        printf("], \"mesh\": \"%s\", \"bytes_per_token\": %.0f, \"membw_gbps\": %.3f, \"peak_gflops\": %.3f, "
               "\"roofline_frac\": %.6f, \"cpu_features\": \"%s\"}%s\n",
               r->mesh, r->bytes_per_token, r->membw, r->peak, r->roofline, meshlm_cpu_features(), i + 1 < n ? "," : "");
    }
    printf("]\n");
}

static void print_csv(const model_desc *d, const bench_row *rows, int n) {
    printf("model_filename,model_type,model_size,model_n_params,n_threads,n_prompt,n_gen,test,avg_ts,stddev_ts,"
           "avg_ns,stddev_ns,mesh,bytes_per_token,membw_gbps,peak_gflops,roofline_frac,cpu_features\n");
    for (int i = 0; i < n; i++) {
        const bench_row *r = &rows[i];
        char test[32];
        test_name(r, test, sizeof test);
        printf("\"%s\",\"%s\",%llu,%llu,%d,%d,%d,%s,%.6f,%.6f,%.0f,%.0f,%s,%.0f,%.3f,%.3f,%.6f,\"%s\"\n", d->file,
               d->type_label, (unsigned long long)d->size, (unsigned long long)d->n_params, r->threads, r->n_prompt,
               r->n_gen, test, r->avg_ts, r->sd_ts, r->avg_ns, r->sd_ns, r->mesh, r->bytes_per_token, r->membw, r->peak,
               r->roofline, meshlm_cpu_features());
    }
}

static void probe(machine *mc) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    mc->ncpu = n > 0 ? (int)n : 1;
    fprintf(stderr, "meshlm bench: measuring read bandwidth and peak FLOP/s...\n");
    mc->bw[0] = meshlm_probe_read_gbps(1, PROBE_BYTES);
    mc->bw[1] = meshlm_probe_read_gbps(mc->ncpu, PROBE_BYTES);
    mc->peak[0] = meshlm_probe_peak_gflops(1);
    mc->peak[1] = meshlm_probe_peak_gflops(mc->ncpu);
}

/* Every test of one (mesh, threads) pair on one session. */
static int run_config(const meshlm_model *m, const bench_opts *o, const machine *mc, const char *mesh, int threads,
                      bench_row *rows, int *n_rows) {
    int64_t max_len = 1;
    for (int i = 0; i < o->n_prompts; i++) max_len = o->prompts[i] > max_len ? o->prompts[i] : max_len;
    for (int i = 0; i < o->n_gens; i++) max_len = o->gens[i] > max_len ? o->gens[i] : max_len;
    meshlm_session_params sp = meshlm_session_defaults();
    sp.n_ctx = (int32_t)(max_len < m->hp.n_ctx_train ? max_len : m->hp.n_ctx_train);
    sp.n_threads = threads;
    sp.mesh = mesh;
    sp.topology = o->topology;
    meshlm_session *s;
    if (meshlm_session_create(m, &sp, &s) != MESHLM_OK) return -1;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < (pass ? o->n_gens : o->n_prompts); i++) {
            int len = (int)(pass ? o->gens[i] : o->prompts[i]);
            if (len <= 0) continue;
            bench_row *r = &rows[(*n_rows)++];
            *r = (bench_row){.mesh = mesh, .threads = threads, .n_prompt = pass ? 0 : len, .n_gen = pass ? len : 0,
                             .n_samples = (int)o->reps};
            double secs[MAX_REPS];
            fprintf(stderr, "meshlm bench: mesh %s, %d threads, %s%d...\n", mesh, threads, pass ? "tg" : "pp", len);
            if (time_test(m, s, r->n_prompt, r->n_gen, (int)o->reps, secs) != 0) {
                meshlm_session_free(s);
                return -1;
            }
            stats(r, secs, len);
            fill_roofline(m, mc, r);
        }
    meshlm_session_free(s);
    return 0;
}

int meshlm_cmd_bench(int argc, char **argv) {
    bench_opts o = {.prompts = {512}, .n_prompts = 1, .gens = {128}, .n_gens = 1, .n_threads = 0, .reps = 5,
                    .meshes = {"1x1"}, .n_meshes = 1, .format = "md"};
    int rc = parse(argc, argv, &o);
    if (rc >= 0) return rc;
    machine mc;
    probe(&mc);
    if (o.n_threads == 0) o.threads[o.n_threads++] = mc.ncpu;
    meshlm_model *m;
    if (meshlm_model_load(o.model, &m) != MESHLM_OK) {
        fprintf(stderr, "meshlm bench: %s\n", meshlm_last_error());
        return 1;
    }
    model_desc d = {.file = o.model, .type = main_type(m), .n_params = meshlm_model_n_params(m)};
    for (int64_t i = 0; i < meshlm_gguf_n_tensors(m->gguf); i++) d.size += meshlm_gguf_tensor_at(m->gguf, i)->nbytes;
    char params[32];
    scaled(params, sizeof params, (double)d.n_params);
    snprintf(d.type_label, sizeof d.type_label, "%s %s %s", m->hp.arch_name, params, d.type);
    bench_row *rows = calloc((size_t)MAX_LIST * MAX_LIST * 2 * MAX_LIST, sizeof *rows);
    int n_rows = 0;
    rc = rows ? 0 : -1;
    for (int mi = 0; mi < o.n_meshes && !rc; mi++)
        for (int ti = 0; ti < o.n_threads && !rc; ti++)
            rc = run_config(m, &o, &mc, o.meshes[mi], (int)o.threads[ti], rows, &n_rows);
    if (rc)
        fprintf(stderr, "meshlm bench: %s\n", rows ? meshlm_last_error() : "out of memory");
    else if (!strcmp(o.format, "json"))
        print_json(&d, rows, n_rows);
    else if (!strcmp(o.format, "csv"))
        print_csv(&d, rows, n_rows);
    else
        print_md(&d, &mc, rows, n_rows);
    free(rows);
    meshlm_model_free(m);
    return rc ? 1 : 0;
}
