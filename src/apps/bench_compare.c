/* meshlm bench --compare: what the optimized tier is worth. The generic preset, the
 * performance preset, and performance with each of its options switched the other way run
 * on one model and mesh in one process, their repetitions interleaved (config after config,
 * then again), so machine noise falls on all of them alike. The model comes as loaded: the
 * options that act on the model itself (huge pages) get a second copy of it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "apps/bench_compare.h"
#include "core/status.h"
#include "mesh/mesh.h"
#include "model/model.h"
#include "model/options.h"

enum { MAX_CFG = 12, MAX_REP = 100 };

typedef struct cfg_row {
    const char *opt, *set, *label;
    const meshlm_model *m; /* the model as the row's options place it */
    meshlm_session *s;
    double pp_s[MAX_REP], tg_s[MAX_REP];
    double pp_ts, tg_ts, ms_tok, pp_ratio, tg_ratio, allocs_per_step;
} cfg_row;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int32_t token(const meshlm_model *m, int i) { return (int32_t)((i * 7919 + 13) % m->hp.n_vocab); }

/* The configurations worth running on this mesh: options that change no step here (no
 * collectives on 1x1, no B axis on 1xN) are left out rather than timed as noise. */
static int configs(int rows, int cols, cfg_row *c) {
    int n = 0;
    bool mesh = rows * cols > 1, axis_b = rows > 1 && cols > 1;
    c[n++] = (cfg_row){.opt = "generic", .label = "generic"};
    c[n++] = (cfg_row){.opt = "performance", .label = "performance"};
    c[n++] = (cfg_row){.opt = "performance", .set = "fuse_qkv=off", .label = "perf -fuse_qkv"};
    c[n++] = (cfg_row){.opt = "performance", .set = "fuse_w13=off", .label = "perf -fuse_w13"};
    if (axis_b) c[n++] = (cfg_row){.opt = "performance", .set = "fuse_rs=off", .label = "perf -fuse_rs"};
    if (axis_b) c[n++] = (cfg_row){.opt = "performance", .set = "fuse_ag=off", .label = "perf -fuse_ag"};
    if (mesh) c[n++] = (cfg_row){.opt = "performance", .set = "ring=off", .label = "perf -ring"};
    c[n++] = (cfg_row){.opt = "performance", .set = "panels=off", .label = "perf -panels"};
    c[n++] = (cfg_row){.opt = "performance", .set = "persistent=off", .label = "perf -persistent"};
    c[n++] = (cfg_row){.opt = "performance", .set = "stream=on", .label = "perf +stream"};
    if (meshlm_opts_preset(MESHLM_PRESET_PERFORMANCE).hugepages)
        c[n++] = (cfg_row){.opt = "performance", .set = "hugepages=off", .label = "perf -hugepages"};
    else
        c[n++] = (cfg_row){.opt = "performance", .set = "hugepages=on", .label = "perf +hugepages"};
    return n;
}

/* One repetition of config c: a prompt of n_prompt tokens at once, then (after a reset)
 * n_gen tokens one at a time; counts the heap allocations of the decode steps. */
static int time_once(const meshlm_model *m, cfg_row *c, int n_prompt, int n_gen, int32_t *ids, int rep) {
    meshlm_session_reset(c->s);
    double t0 = now_s();
    if (n_prompt > 0 && meshlm_session_eval(c->s, ids, n_prompt) != MESHLM_OK) return -1;
    double t1 = now_s();
    meshlm_session_reset(c->s);
    uint64_t a0 = meshlm_session_step_allocs(c->s);
    double t2 = now_s();
    for (int i = 0; i < n_gen; i++) {
        int32_t tok = token(m, i);
        if (meshlm_session_eval(c->s, &tok, 1) != MESHLM_OK) return -1;
    }
    double t3 = now_s();
    if (rep < 0) return 0;
    c->pp_s[rep] = t1 - t0;
    c->tg_s[rep] = t3 - t2;
    if (n_gen > 0) c->allocs_per_step = (double)(meshlm_session_step_allocs(c->s) - a0) / n_gen;
    return 0;
}

static double median(double *v, int n) {
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void print(const meshlm_bench_compare_args *a, const meshlm_model *m, const cfg_row *c, int n) {
    double gb = (double)meshlm_model_weight_bytes(m) / 1e9;
    if (!strcmp(a->format, "json")) {
        printf("[\n");
        for (int i = 0; i < n; i++)
            printf("  {\"model_filename\": \"%s\", \"mesh\": \"%s\", \"n_threads\": %d, \"config\": \"%s\", "
                   "\"opt\": \"%s\", \"opt_set\": \"%s\", \"n_prompt\": %d, \"n_gen\": %d, \"pp_ts\": %.6f, "
                   "\"tg_ts\": %.6f, \"ms_per_token\": %.6f, \"pp_ratio_generic\": %.6f, \"tg_ratio_generic\": %.6f, "
                   "\"bytes_per_token\": %.0f, \"allocs_per_decode_step\": %.3f}%s\n",
                   a->model_file, a->mesh, a->threads, c[i].label, c[i].opt, c[i].set ? c[i].set : "", a->n_prompt,
                   a->n_gen, c[i].pp_ts, c[i].tg_ts, c[i].ms_tok, c[i].pp_ratio, c[i].tg_ratio, gb * 1e9,
                   c[i].allocs_per_step, i + 1 < n ? "," : "");
        printf("]\n");
        return;
    }
    if (!strcmp(a->format, "csv")) {
        printf("model_filename,mesh,n_threads,config,n_prompt,n_gen,pp_ts,tg_ts,ms_per_token,pp_ratio_generic,"
               "tg_ratio_generic,bytes_per_token,allocs_per_decode_step\n");
        for (int i = 0; i < n; i++)
            printf("\"%s\",%s,%d,\"%s\",%d,%d,%.6f,%.6f,%.6f,%.6f,%.6f,%.0f,%.3f\n", a->model_file, a->mesh, a->threads,
                   c[i].label, a->n_prompt, a->n_gen, c[i].pp_ts, c[i].tg_ts, c[i].ms_tok, c[i].pp_ratio, c[i].tg_ratio,
                   gb * 1e9, c[i].allocs_per_step);
        return;
    }
    printf("%s, mesh %s, %d threads per device; medians of %d interleaved repetitions\n\n", a->model_file, a->mesh,
           a->threads, a->reps);
    printf("| config | pp%d t/s | tg%d t/s | ms/token | pp vs generic | tg vs generic | GB/token | allocs/step |\n",
           a->n_prompt, a->n_gen);
    printf("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for (int i = 0; i < n; i++)
        printf("| %s | %.2f | %.2f | %.2f | %.3fx | %.3fx | %.3f | %.1f |\n", c[i].label, c[i].pp_ts, c[i].tg_ts,
               c[i].ms_tok, c[i].pp_ratio, c[i].tg_ratio, gb, c[i].allocs_per_step);
    printf("\nprefetch (faulting a cold file in ahead of compute) does nothing on a warm page cache; it is measured "
           "cold with run --prefetch.\n");
}

/* The model for a row: as loaded (m), or, for rows whose options place the weights on huge
 * pages, a second copy loaded from the same file and placed there (*huge, made once). */
static int row_model(const meshlm_model *m, const meshlm_bench_compare_args *a, cfg_row *c, meshlm_model **huge) {
    meshlm_opts o;
    int rc = meshlm_opts_make(c->opt, c->set, &o);
    if (rc || !o.hugepages) {
        c->m = m;
        return rc;
    }
    if (!*huge && ((rc = meshlm_model_load(a->model_file, huge)) ||
                   (rc = meshlm_model_hugepages(*huge, meshlm_opts_panels(&o)))))
        return rc;
    c->m = *huge;
    return MESHLM_OK;
}

int meshlm_bench_compare(const meshlm_model *m, const meshlm_bench_compare_args *a) {
    int rows = 1, cols = 1, rc;
    if ((rc = meshlm_mesh_parse(a->mesh, &rows, &cols))) return rc;
    if (a->reps < 1 || a->reps > MAX_REP)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "--compare: %d repetitions (1..%d)", a->reps, MAX_REP);
    cfg_row c[MAX_CFG];
    int n = configs(rows, cols, c);
    int len = a->n_prompt > a->n_gen ? a->n_prompt : a->n_gen;
    int32_t *ids = malloc((size_t)(a->n_prompt > 0 ? a->n_prompt : 1) * sizeof *ids);
    if (!ids) return meshlm_fail(MESHLM_ERR_NOMEM, "--compare: out of memory");
    for (int i = 0; i < a->n_prompt; i++) ids[i] = token(m, i);
    rc = MESHLM_OK;
    meshlm_model *huge = NULL;
    for (int i = 0; i < n && !rc; i++) {
        if ((rc = row_model(m, a, &c[i], &huge))) break;
        meshlm_session_params sp = meshlm_session_defaults();
        sp.n_ctx = len < m->hp.n_ctx_train ? len : m->hp.n_ctx_train;
        sp.n_threads = a->threads;
        sp.mesh = a->mesh;
        sp.opt = c[i].opt;
        sp.opt_set = c[i].set;
        rc = meshlm_session_create(c[i].m, &sp, &c[i].s);
    }
    for (int r = -1; r < a->reps && !rc; r++)
        for (int i = 0; i < n && !rc; i++) {
            fprintf(stderr, "meshlm bench --compare: %s, repetition %d of %d%s\n", c[i].label, r + 1, a->reps,
                    r < 0 ? " (warm-up)" : "");
            rc = time_once(c[i].m, &c[i], a->n_prompt, a->n_gen, ids, r);
        }
    for (int i = 0; i < n && !rc; i++) {
        double pp = median(c[i].pp_s, a->reps), tg = median(c[i].tg_s, a->reps);
        c[i].pp_ts = pp > 0 ? a->n_prompt / pp : 0;
        c[i].tg_ts = tg > 0 ? a->n_gen / tg : 0;
        c[i].ms_tok = a->n_gen > 0 ? 1e3 * tg / a->n_gen : 0;
    }
    for (int i = 0; i < n && !rc; i++) {
        c[i].pp_ratio = c[0].pp_ts > 0 ? c[i].pp_ts / c[0].pp_ts : 0;
        c[i].tg_ratio = c[0].tg_ts > 0 ? c[i].tg_ts / c[0].tg_ts : 0;
    }
    if (!rc) print(a, m, c, n);
    for (int i = 0; i < n; i++) meshlm_session_free(c[i].s);
    meshlm_model_free(huge);
    free(ids);
    return rc;
}
