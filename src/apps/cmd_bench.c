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
#include "apps/bench_compare.h"
#include "apps/bench_probe.h"
#include "apps/commands.h"
#include "core/cpu.h"
#include "core/dtype.h"
#include "core/quant.h"
#include "core/status.h"
#include "mesh/mesh.h"
#include "model/forward.h"
#include "model/kv_paged.h"
#include "model/model.h"
#include "model/options.h"

enum { MAX_LIST = 16, MAX_REPS = 100, PROBE_BYTES = 512 << 20 };

typedef struct bench_opts {
    const char *model, *topology, *format;
    int64_t prompts[MAX_LIST], gens[MAX_LIST], threads[MAX_LIST];
    int n_prompts, n_gens, n_threads;
    const char *meshes[MAX_LIST];
    int n_meshes;
    int64_t reps;
    int64_t batches[MAX_LIST], ctx_long[MAX_LIST], batch_pp, batch_tg;
    int n_batches, n_ctx_long;
    const char *kv_type, *opt, *opt_set;
    bool pp_tg_given; /* -p or -n given: the standard rows run beside the batch ones */
    bool compare;     /* --compare: the presets and ablations table instead */
    bool expert_parallel;   /* --expert-parallel: as --opt-set expert_parallel=on */
    char opt_set_buf[1024]; /* --opt-set with --expert-parallel's item in front */
} bench_opts;

/* A batched row (llama-batched-bench's shape): n_batch sequences prefill n_prompt tokens
 * each, then decode n_gen steps of one token each; or (n_kv > 0) one sequence decoding
 * n_gen tokens after n_kv positions of KV. */
typedef struct batch_row {
    int threads, n_batch, n_prompt, n_gen, n_kv;
    double pp_s, tg_s, pp_ts, tg_ts, tg_ts_user;
    bool synthetic_kv;
} batch_row;

typedef struct bench_row {
    const char *mesh;
    int threads, n_prompt, n_gen;
    double samples_ts[MAX_REPS], avg_ts, sd_ts, avg_ns, sd_ns;
    int n_samples;
    double bytes_per_token, membw, peak, roofline;
} bench_row;

enum { MAX_BW_SERIES = 8, BW_PASSES = 9, PEAK_PASSES = 5 };

typedef struct machine {
    int ncpu;
    meshlm_rate_series bw[MAX_BW_SERIES]; /* one per thread count probed */
    int n_bw;
    /* Each kind's peak at 1 thread and at all of them; a kind this CPU's kernels do not
     * use has no samples (its median reads 0). */
    meshlm_rate_series peak[MESHLM_PEAK_KINDS][2];
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
               "  --batch LIST batched decode rows, as llama-batched-bench: for each B, B sequences prefill\n"
               "               --batch-pp tokens each (default 128) then decode --batch-tg steps (default 32);\n"
               "               aggregate and per-user decode tokens/s\n"
               "  --ctx-long LIST  decode speed of one sequence after LIST positions of context, e.g.\n"
               "               8192,32768,131072 (the KV is filled with synthetic rows, not a real prefill)\n"
               "  --kv-type T  KV cache type of the batched rows: f32 (default), f16, bf16, q8_0\n"
               "  --opt P, --opt-set LIST  the optimization preset and overrides of every row (as for run)\n"
               "  --expert-parallel      on a mesh, each device holds a share of a mixture's experts whole\n"
               "  --compare    instead: generic, performance and performance with each option switched, on\n"
               "               the first mesh and thread count, repetitions interleaved; prefill and decode\n"
               "               t/s, ms/token, ratios to generic, GB/token, heap allocations per decode step\n"
               "With --batch or --ctx-long and no -p/-n, only those rows run.\n"
               "Rows give tokens/s (mean +- sd); decode rows also bytes of weights read per token and the\n"
               "fraction of the measured read bandwidth they reach (the median of passes at the row's thread\n"
               "count before, after each decode row and at the end), prefill rows the fraction of measured\n"
               "peak FLOP/s.\n");
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
            o->pp_tg_given = true;
        } else if (TAKE("-n", "--n-gen")) {
            ok = missing || parse_list("-n", v, 0, 1 << 20, o->gens, &o->n_gens);
            o->pp_tg_given = true;
        } else if (TAKE("--batch", NULL)) {
            ok = missing || parse_list("--batch", v, 1, 4096, o->batches, &o->n_batches);
        } else if (TAKE("--ctx-long", NULL)) {
            ok = missing || parse_list("--ctx-long", v, 1, 1 << 20, o->ctx_long, &o->n_ctx_long);
        } else if (TAKE("--batch-pp", NULL)) {
            ok = missing || meshlm_arg_int("bench", "--batch-pp", v, 1, 1 << 20, &o->batch_pp);
        } else if (TAKE("--batch-tg", NULL)) {
            ok = missing || meshlm_arg_int("bench", "--batch-tg", v, 1, 1 << 20, &o->batch_tg);
        } else if (TAKE("--kv-type", NULL)) {
            o->kv_type = v;
            ok = missing || meshlm_type_from_name(v) >= 0;
            if (!ok) fprintf(stderr, "meshlm bench: --kv-type: '%s' is not f32, f16, bf16 or q8_0\n", v);
        } else if (!strcmp(argv[i], "--compare")) {
            o->compare = true;
        } else if (!strcmp(argv[i], "--expert-parallel")) {
            o->expert_parallel = true;
        } else if (TAKE("--opt", NULL)) {
            o->opt = v;
        } else if (TAKE("--opt-set", NULL)) {
            o->opt_set = v;
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
    if (o->expert_parallel && !(o->opt_set = meshlm_arg_opt_set_add("bench", o->opt_set, "expert_parallel=on",
                                                                    o->opt_set_buf, sizeof o->opt_set_buf)))
        return 2;
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

/* FLOPs of a prefill of n tokens: every layer matrix per token (of a mixture of experts,
 * only the experts a token uses), the LM head once, and the causal attention scores and sums. */
static double prefill_flops(const meshlm_model *m, int n) {
    const meshlm_hparams *hp = &m->hp;
    double lm = (double)m->output.n_in * (double)m->output.n_out;
    double layers = (double)meshlm_model_n_params(m) - (double)m->tok_embd.n_in * m->tok_embd.n_out -
                    (hp->tied_output ? 0.0 : lm);
    if (hp->n_expert)
        layers -= (double)hp->n_layer * (hp->n_expert - hp->n_expert_used) * 3.0 * hp->n_embd * hp->n_ff_exp;
    double attn = 2.0 * hp->n_layer * hp->n_head * hp->head_dim * (double)n * (n + 1);
    return 2.0 * n * layers + 2.0 * lm + attn;
}

static int mesh_devices(const char *mesh) {
    int r = 1, c = 1;
    return meshlm_mesh_parse(mesh, &r, &c) == MESHLM_OK ? r * c : 1;
}

static int main_type_id(const meshlm_model *m);

/* Whether most of the model's matrix bytes take the int8 dots (the integer path). */
static bool int8_path(const meshlm_model *m) {
    int t = main_type_id(m);
    return meshlm_act_block(t) > 0 && t != MESHLM_TYPE_BF16;
}

/* The bandwidth series of threads threads, made on first use; NULL past MAX_BW_SERIES. */
static meshlm_rate_series *bw_series(machine *mc, int threads) {
    for (int i = 0; i < mc->n_bw; i++)
        if (mc->bw[i].threads == threads) return &mc->bw[i];
    if (mc->n_bw == MAX_BW_SERIES) return NULL;
    meshlm_rate_series *s = &mc->bw[mc->n_bw++];
    s->threads = threads;
    s->n = 0;
    return s;
}

/* BW_PASSES more samples of the read bandwidth of threads threads. */
static void probe_bw(machine *mc, int threads) {
    meshlm_rate_series *s = bw_series(mc, threads);
    if (s) meshlm_probe_read(s, PROBE_BYTES, BW_PASSES);
}

/* PEAK_PASSES more samples of every peak, at 1 thread and at all. */
static void probe_peaks(machine *mc) {
    for (int k = 0; k < MESHLM_PEAK_KINDS; k++)
        for (int all = 0; all < 2; all++) meshlm_probe_peak(&mc->peak[k][all], (meshlm_peak_kind)k, PEAK_PASSES);
}

/* The median of a peak's samples. */
static double peak_of(const machine *mc, meshlm_peak_kind kind, int all) {
    double med, lo, hi;
    meshlm_series_stats(&mc->peak[kind][all], &med, &lo, &hi);
    return med;
}

/* The threads a row runs: its threads on each device of its mesh. */
static int row_threads(const bench_row *r) { return r->threads * mesh_devices(r->mesh); }

static void fill_roofline(const meshlm_model *m, machine *mc, bench_row *r) {
    int used = row_threads(r);
    int all = used > 1 ? 1 : 0;
    double lo, hi;
    r->bytes_per_token = r->n_gen ? (double)meshlm_model_weight_bytes(m) : 0.0;
    meshlm_series_stats(bw_series(mc, used) ? bw_series(mc, used) : &mc->bw[0], &r->membw, &lo, &hi);
    /* Types whose dots run on int8 activations are held to the int8 peak. */
    r->peak = peak_of(mc, MESHLM_PEAK_FMA, all);
    if (int8_path(m) && peak_of(mc, MESHLM_PEAK_INT8, all) > 0) r->peak = peak_of(mc, MESHLM_PEAK_INT8, all);
    if (main_type_id(m) == MESHLM_TYPE_BF16 && peak_of(mc, MESHLM_PEAK_BF16, all) > 0)
        r->peak = peak_of(mc, MESHLM_PEAK_BF16, all);
    if (r->n_gen)
        r->roofline = r->avg_ts * r->bytes_per_token / (r->membw * 1e9);
    else
        r->roofline = prefill_flops(m, r->n_prompt) / (r->avg_ns * 1e-9) / (r->peak * 1e9);
}

static int main_type_id(const meshlm_model *m) {
    size_t bytes[MESHLM_TYPE_COUNT] = {0};
    for (int64_t i = 0; i < meshlm_gguf_n_tensors(m->gguf); i++) {
        const meshlm_gguf_tensor *t = meshlm_gguf_tensor_at(m->gguf, i);
        if (t->n_dims >= 2 && t->type >= 0 && t->type < MESHLM_TYPE_COUNT) bytes[t->type] += t->nbytes;
    }
    int best = 0;
    for (int t = 1; t < MESHLM_TYPE_COUNT; t++)
        if (bytes[t] > bytes[best]) best = t;
    return best;
}

static const char *main_type(const meshlm_model *m) { return meshlm_type_name(main_type_id(m)); }

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

/* The batched engine driven directly, as llama-batched-bench drives llama.cpp: a pool,
 * a paged KV cache and forward steps of many rows, no sampling. */
typedef struct rig {
    meshlm_pool *pool;
    meshlm_kv_pool *kv;
    meshlm_forward_buf buf;
    meshlm_kv_seq *seqs;
    int n_seq;
    int32_t *tok, *pos, *out;
    meshlm_kv_seq **row_seq;
    float *logits;
} rig;

/* Frees what rig_open made, also after a partial open. */
static void rig_close(rig *g) {
    for (int i = 0; g->seqs && i < g->n_seq; i++) meshlm_kv_seq_free(&g->seqs[i]);
    free(g->seqs), free(g->tok), free(g->pos), free(g->out), free(g->row_seq), free(g->logits);
    meshlm_forward_buf_free(&g->buf);
    meshlm_kv_pool_free(g->kv);
    meshlm_pool_free(g->pool);
}

/* n_seq sequences of n_ctx positions each, reserved; steps of up to max_rows rows. */
static int rig_open(rig *g, const meshlm_model *m, const meshlm_opts *opts, int threads, int type, int n_seq,
                    int32_t n_ctx, int32_t max_rows) {
    memset(g, 0, sizeof *g);
    meshlm_kv_params kp = meshlm_kv_params_for(m, m->hp.n_head_kv, type, 64, 0);
    kp.mem_bytes = meshlm_kv_page_bytes(&kp) * (size_t)((n_ctx + 63) / 64) * (size_t)n_seq;
    int rc;
    if ((rc = meshlm_pool_create(threads, &g->pool)) || (rc = meshlm_kv_pool_create(&kp, &g->kv)) ||
        (rc = meshlm_forward_buf_init(&g->buf, m, max_rows, n_ctx, threads, opts)) ||
        (rc = meshlm_forward_reserve(g->pool, m, max_rows)))
        return rc;
    g->seqs = calloc((size_t)n_seq, sizeof *g->seqs);
    g->tok = malloc((size_t)max_rows * sizeof *g->tok);
    g->pos = malloc((size_t)max_rows * sizeof *g->pos);
    g->out = malloc((size_t)max_rows * sizeof *g->out);
    g->row_seq = malloc((size_t)max_rows * sizeof *g->row_seq);
    g->logits = malloc((size_t)max_rows * (size_t)m->hp.n_vocab * sizeof *g->logits);
    if (!g->seqs || !g->tok || !g->pos || !g->out || !g->row_seq || !g->logits)
        return meshlm_fail(MESHLM_ERR_NOMEM, "bench: out of memory for %d sequences", n_seq);
    g->n_seq = n_seq;
    for (int i = 0; i < n_seq; i++)
        if ((rc = meshlm_kv_seq_init(&g->seqs[i], n_ctx, g->kv)) || (rc = meshlm_kv_reserve(g->kv, &g->seqs[i], n_ctx)))
            return rc;
    return MESHLM_OK;
}

/* One forward step of the rig's rows (tok, pos, row_seq), logits for out[0..n_out). */
static int rig_step(const meshlm_model *m, rig *g, int32_t n, int32_t n_out) {
    meshlm_step st = {.n = n, .tokens = g->tok, .pos = g->pos, .seqs = g->row_seq, .n_out = n_out,
                      .out_rows = g->out};
    return meshlm_forward_step(m, g->pool, g->kv, &g->buf, &st, g->logits);
}

/* n_gen decode steps of one row per sequence, every sequence's position starting at pos0. */
static int rig_decode(const meshlm_model *m, rig *g, int32_t pos0, int n_gen) {
    for (int t = 0; t < n_gen; t++) {
        for (int s = 0; s < g->n_seq; s++) {
            g->tok[s] = bench_token(m, t * 31 + s);
            g->pos[s] = pos0 + t;
            g->row_seq[s] = &g->seqs[s];
            g->out[s] = s;
        }
        int rc = rig_step(m, g, g->n_seq, g->n_seq);
        if (rc) return rc;
    }
    return MESHLM_OK;
}

enum { BENCH_ROWS = 512 };

/* B sequences prefill n_prompt tokens (packed into steps of BENCH_ROWS rows), then decode. */
static int time_batch(const meshlm_model *m, const meshlm_opts *opts, int threads, int type, batch_row *r) {
    rig g;
    int32_t max_rows = r->n_batch > BENCH_ROWS ? r->n_batch : BENCH_ROWS;
    int rc = rig_open(&g, m, opts, threads, type, r->n_batch, r->n_prompt + r->n_gen, max_rows);
    double t0 = now_s();
    int32_t n = 0, n_out = 0;
    for (int s = 0; s < r->n_batch && !rc; s++)
        for (int t = 0; t < r->n_prompt && !rc; t++) {
            g.tok[n] = bench_token(m, s * 977 + t);
            g.pos[n] = t;
            g.row_seq[n] = &g.seqs[s];
            if (t == r->n_prompt - 1) g.out[n_out++] = n;
            if (++n == max_rows || (s == r->n_batch - 1 && t == r->n_prompt - 1)) {
                rc = rig_step(m, &g, n, n_out);
                n = n_out = 0;
            }
        }
    double t1 = now_s();
    if (!rc) rc = rig_decode(m, &g, r->n_prompt, r->n_gen);
    double t2 = now_s();
    rig_close(&g);
    r->pp_s = t1 - t0;
    r->tg_s = t2 - t1;
    r->pp_ts = (double)r->n_batch * r->n_prompt / r->pp_s;
    r->tg_ts = (double)r->n_batch * r->n_gen / r->tg_s;
    r->tg_ts_user = r->tg_ts / r->n_batch;
    return rc;
}

/* One sequence decoding after n_kv positions whose K and V rows are written directly
 * (small pseudo-random values): decode cost depends on the KV length, not its content. */
static int time_long(const meshlm_model *m, const meshlm_opts *opts, int threads, int type, batch_row *r) {
    rig g;
    int rc = rig_open(&g, m, opts, threads, type, 1, r->n_kv + r->n_gen, 1);
    int32_t kv_dim = m->hp.n_head_kv * m->hp.head_dim;
    float *row = malloc((size_t)kv_dim * sizeof *row);
    if (!rc && !row) rc = meshlm_fail(MESHLM_ERR_NOMEM, "bench: out of memory");
    uint32_t x = 12345;
    for (int32_t p = 0; p < r->n_kv && !rc; p++)
        for (int32_t l = 0; l < m->hp.n_layer && !rc; l++) {
            for (int32_t i = 0; i < kv_dim; i++) {
                x = x * 1664525u + 1013904223u;
                row[i] = (float)(x >> 8) * (1.0f / 16777216.0f) - 0.5f;
            }
            rc = meshlm_kv_write(g.kv, &g.seqs[0], l, p, row, row);
        }
    free(row);
    double t0 = now_s();
    if (!rc) rc = rig_decode(m, &g, r->n_kv, r->n_gen);
    r->tg_s = now_s() - t0;
    rig_close(&g);
    r->tg_ts = r->tg_ts_user = r->n_gen / r->tg_s;
    r->synthetic_kv = true;
    return rc;
}

static int run_batch_rows(const meshlm_model *m, const bench_opts *o, int threads, batch_row *rows, int *n_rows) {
    int type_b = o->kv_type ? meshlm_type_from_name(o->kv_type) : MESHLM_TYPE_F32;
    int type_l = o->kv_type ? type_b : MESHLM_TYPE_F16;
    meshlm_opts opts;
    if (meshlm_opts_make(o->opt, o->opt_set, &opts)) return -1;
    for (int i = 0; i < o->n_batches; i++) {
        batch_row *r = &rows[(*n_rows)++];
        *r = (batch_row){.threads = threads, .n_batch = (int)o->batches[i], .n_prompt = (int)o->batch_pp,
                         .n_gen = (int)o->batch_tg};
        fprintf(stderr, "meshlm bench: %d threads, batch %d (pp %d, tg %d)...\n", threads, r->n_batch, r->n_prompt,
                r->n_gen);
        if (time_batch(m, &opts, threads, type_b, r)) return -1;
    }
    for (int i = 0; i < o->n_ctx_long; i++) {
        batch_row *r = &rows[(*n_rows)++];
        *r = (batch_row){.threads = threads, .n_batch = 1, .n_gen = 8, .n_kv = (int)o->ctx_long[i]};
        fprintf(stderr, "meshlm bench: %d threads, decode after %d positions of synthetic KV (%s)...\n", threads,
                r->n_kv, meshlm_type_name(type_l));
        if (time_long(m, &opts, threads, type_l, r)) return -1;
    }
    return 0;
}

static const char *row_kv_type(const bench_opts *o, const batch_row *r) {
    if (o->kv_type) return meshlm_type_name(meshlm_type_from_name(o->kv_type));
    return r->n_kv ? "F16" : "F32";
}

static void print_batch_md(const model_desc *d, const bench_opts *o, const batch_row *rows, int n) {
    printf("\n| model | threads | kv | B | PP | TG | N_KV | T_PP s | S_PP t/s | T_TG s | S_TG t/s | per user t/s |\n");
    printf("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for (int i = 0; i < n; i++) {
        const batch_row *r = &rows[i];
        printf("| %s | %d | %s | %d | %d | %d | %d%s | %.3f | %.2f | %.3f | %.2f | %.2f |\n", d->type_label, r->threads,
               row_kv_type(o, r), r->n_batch, r->n_prompt, r->n_gen, r->n_kv ? r->n_kv : r->n_prompt + r->n_gen,
               r->synthetic_kv ? " (synthetic)" : "", r->pp_s, r->pp_ts, r->tg_s, r->tg_ts, r->tg_ts_user);
    }
}

/* The batched rows as more objects of the JSON array (after the standard ones, if any). */
static void print_batch_json(const model_desc *d, const bench_opts *o, const batch_row *rows, int n) {
    for (int i = 0; i < n; i++) {
        const batch_row *r = &rows[i];
        printf("%s  {\"model_filename\": \"%s\", \"model_type\": \"%s\", \"n_threads\": %d, \"test\": \"%s\", "
               "\"kv_type\": \"%s\", \"n_batch\": %d, \"n_prompt\": %d, \"n_gen\": %d, \"n_kv\": %d, "
               "\"synthetic_kv\": %s, \"pp_s\": %.6f, \"pp_ts\": %.6f, \"tg_s\": %.6f, \"tg_ts\": %.6f, "
               "\"tg_ts_per_user\": %.6f}",
               i == 0 ? "" : ",\n", d->file, d->type_label, r->threads, r->n_kv ? "ctx_long" : "batch",
               row_kv_type(o, r), r->n_batch, r->n_prompt, r->n_gen, r->n_kv ? r->n_kv : r->n_prompt + r->n_gen,
               r->synthetic_kv ? "true" : "false", r->pp_s, r->pp_ts, r->tg_s, r->tg_ts, r->tg_ts_user);
    }
}

static void print_batch_csv(const model_desc *d, const bench_opts *o, const batch_row *rows, int n) {
    printf("\nmodel_filename,model_type,n_threads,test,kv_type,n_batch,n_prompt,n_gen,n_kv,synthetic_kv,pp_s,pp_ts,"
           "tg_s,tg_ts,tg_ts_per_user\n");
    for (int i = 0; i < n; i++) {
        const batch_row *r = &rows[i];
        printf("\"%s\",\"%s\",%d,%s,%s,%d,%d,%d,%d,%d,%.6f,%.6f,%.6f,%.6f,%.6f\n", d->file, d->type_label, r->threads,
               r->n_kv ? "ctx_long" : "batch", row_kv_type(o, r), r->n_batch, r->n_prompt, r->n_gen,
               r->n_kv ? r->n_kv : r->n_prompt + r->n_gen, r->synthetic_kv, r->pp_s, r->pp_ts, r->tg_s, r->tg_ts,
               r->tg_ts_user);
    }
}

static void print_md(const model_desc *d, const machine *mc, const bench_row *rows, int n) {
    printf("cpu: %s (%s); read bandwidth", meshlm_cpu_features(), meshlm_cpu_name());
    for (int i = 0; i < mc->n_bw; i++) {
        double med, lo, hi;
        meshlm_series_stats(&mc->bw[i], &med, &lo, &hi);
        printf("%s %.1f GB/s (%d thread%s: median of %d passes, %.1f-%.1f)", i ? "," : "", med, mc->bw[i].threads,
               mc->bw[i].threads > 1 ? "s" : "", mc->bw[i].n, lo, hi);
    }
    static const char *const names[] = {"FMA peak", "int8 peak", "BF16 tile peak"};
    static const char *const units[] = {"GFLOP/s", "G ops/s", "GFLOP/s"};
    for (int k = 0; k < MESHLM_PEAK_KINDS; k++) {
        if (mc->peak[k][0].n == 0) continue;
        printf("; %s", names[k]);
        for (int all = 0; all < 2; all++) {
            const meshlm_rate_series *ps = &mc->peak[k][all];
            double med, lo, hi;
            meshlm_series_stats(ps, &med, &lo, &hi);
            printf("%s %.1f %s (%d thread%s: median of %d passes, %.1f-%.1f)", all ? "," : "", med, units[k],
                   ps->threads, ps->threads > 1 ? "s" : "", ps->n, lo, hi);
        }
    }
    printf("\n\n");
    if (n == 0) return;
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

static void print_json(const model_desc *d, const bench_opts *o, const bench_row *rows, int n, const batch_row *brows,
                       int nb) {
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
               r->mesh, r->bytes_per_token, r->membw, r->peak, r->roofline, meshlm_cpu_features(),
               i + 1 < n || nb ? "," : "");
    }
    print_batch_json(d, o, brows, nb);
    printf("%s]\n", nb ? "\n" : "");
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
    mc->n_bw = 0;
    probe_bw(mc, 1);
    probe_bw(mc, mc->ncpu);
    for (int k = 0; k < MESHLM_PEAK_KINDS; k++)
        for (int all = 0; all < 2; all++) mc->peak[k][all] = (meshlm_rate_series){.threads = all ? mc->ncpu : 1};
    probe_peaks(mc);
}

/* The limits once more at the end, so they span the whole run. */
static void reprobe(machine *mc) {
    fprintf(stderr, "meshlm bench: measuring read bandwidth and peaks again...\n");
    for (int i = 0; i < mc->n_bw; i++) probe_bw(mc, mc->bw[i].threads);
    probe_peaks(mc);
}

/* Every test of one (mesh, threads) pair on one session. */
static int run_config(const meshlm_model *m, const bench_opts *o, machine *mc, const char *mesh, int threads,
                      bench_row *rows, int *n_rows) {
    int64_t max_len = 1;
    for (int i = 0; i < o->n_prompts; i++) max_len = o->prompts[i] > max_len ? o->prompts[i] : max_len;
    for (int i = 0; i < o->n_gens; i++) max_len = o->gens[i] > max_len ? o->gens[i] : max_len;
    meshlm_session_params sp = meshlm_session_defaults();
    sp.n_ctx = (int32_t)(max_len < m->hp.n_ctx_train ? max_len : m->hp.n_ctx_train);
    sp.n_threads = threads;
    sp.mesh = mesh;
    sp.topology = o->topology;
    sp.opt = o->opt;
    sp.opt_set = o->opt_set;
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
            /* A row's limit is probed right after it: a decode row's bandwidth at its own
             * thread count, a prefill row's peaks. */
            if (pass)
                probe_bw(mc, row_threads(r));
            else
                probe_peaks(mc);
            fill_roofline(m, mc, r);
        }
    meshlm_session_free(s);
    return 0;
}

int meshlm_cmd_bench(int argc, char **argv) {
    bench_opts o = {.prompts = {512}, .n_prompts = 1, .gens = {128}, .n_gens = 1, .n_threads = 0, .reps = 5,
                    .meshes = {"1x1"}, .n_meshes = 1, .format = "md", .batch_pp = 128, .batch_tg = 32};
    int rc = parse(argc, argv, &o);
    if (rc >= 0) return rc;
    machine mc;
    probe(&mc);
    if (o.n_threads == 0) o.threads[o.n_threads++] = mc.ncpu;
    meshlm_model *m = NULL;
    if (meshlm_model_load(o.model, &m) != MESHLM_OK) {
        fprintf(stderr, "meshlm bench: %s\n", meshlm_last_error());
        return 1;
    }
    /* --compare runs its own option sets; an --opt-set list's weight classes repack the
     * model under all of them. */
    if (o.compare && meshlm_model_prepare(m, "generic", o.opt_set) != MESHLM_OK) {
        fprintf(stderr, "meshlm bench: %s\n", meshlm_last_error());
        meshlm_model_free(m);
        return 1;
    }
    if (o.compare) {
        meshlm_bench_compare_args ca = {.model_file = o.model, .mesh = o.meshes[0], .format = o.format,
                                        .threads = (int)o.threads[0], .n_prompt = (int)o.prompts[0],
                                        .n_gen = (int)o.gens[0], .reps = (int)o.reps};
        rc = meshlm_bench_compare(m, &ca);
        if (rc) fprintf(stderr, "meshlm bench: %s\n", meshlm_last_error());
        meshlm_model_free(m);
        return rc ? 1 : 0;
    }
    if (meshlm_model_prepare(m, o.opt, o.opt_set) != MESHLM_OK) {
        fprintf(stderr, "meshlm bench: %s\n", meshlm_last_error());
        meshlm_model_free(m);
        return 1;
    }
    model_desc d = {.file = o.model, .type = main_type(m), .n_params = meshlm_model_n_params(m)};
    for (int64_t i = 0; i < meshlm_gguf_n_tensors(m->gguf); i++) d.size += meshlm_gguf_tensor_at(m->gguf, i)->nbytes;
    char params[32];
    scaled(params, sizeof params, (double)d.n_params);
    snprintf(d.type_label, sizeof d.type_label, "%s %s %s", m->hp.arch_name, params, d.type);
    bench_row *rows = calloc((size_t)MAX_LIST * MAX_LIST * 2 * MAX_LIST, sizeof *rows);
    batch_row *brows = calloc((size_t)MAX_LIST * 2 * MAX_LIST, sizeof *brows);
    int n_rows = 0, n_brows = 0;
    rc = rows && brows ? 0 : -1;
    bool standard = o.pp_tg_given || (o.n_batches == 0 && o.n_ctx_long == 0);
    for (int mi = 0; mi < o.n_meshes && !rc && standard; mi++)
        for (int ti = 0; ti < o.n_threads && !rc; ti++)
            rc = run_config(m, &o, &mc, o.meshes[mi], (int)o.threads[ti], rows, &n_rows);
    if (!rc && n_rows) {
        reprobe(&mc);
        for (int i = 0; i < n_rows; i++) fill_roofline(m, &mc, &rows[i]);
    }
    for (int ti = 0; ti < o.n_threads && !rc; ti++) rc = run_batch_rows(m, &o, (int)o.threads[ti], brows, &n_brows);
    if (rc) {
        fprintf(stderr, "meshlm bench: %s\n", rows && brows ? meshlm_last_error() : "out of memory");
    } else if (!strcmp(o.format, "json")) {
        print_json(&d, &o, rows, n_rows, brows, n_brows);
    } else if (!strcmp(o.format, "csv")) {
        print_csv(&d, rows, n_rows);
        if (n_brows) print_batch_csv(&d, &o, brows, n_brows);
    } else {
        print_md(&d, &mc, rows, n_rows);
        if (n_brows) print_batch_md(&d, &o, brows, n_brows);
    }
    free(rows);
    free(brows);
    meshlm_model_free(m);
    return rc ? 1 : 0;
}
