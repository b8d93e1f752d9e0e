/* meshlm serve: the OpenAI-compatible HTTP server. It listens at once (GET /health answers
 * 503 while the model loads), then serves until SIGINT or SIGTERM, after which in-flight
 * requests get a grace period and the process exits 0. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apps/args.h"
#include "apps/commands.h"
#include "apps/run_opts.h"
#include "mesh/mesh.h"
#include "server/replica.h"
#include "server/server.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: meshlm serve -m FILE [options]\n"
            "  an OpenAI-compatible HTTP server: POST /v1/chat/completions, /v1/completions, /tokenize,\n"
            "  /detokenize; GET /v1/models, /health, /metrics, and a chat page at GET /\n"
            "  -m, --model FILE       GGUF model\n"
            "  --host H               address to listen on (default 127.0.0.1)\n"
            "  --port N               port (default 8080)\n"
            "  -np, --parallel N      sequences generated at once (default 32)\n"
            "  --max-queue N          sequences waiting beyond those; more get 503 (default 128)\n"
            "  -c, --ctx-size N       positions per sequence (0 = the model's, capped at 4096; default 0)\n"
            "  --alias NAME           the model's name in the API (default: the file's base name)\n"
            "  --api-key K            require Authorization: Bearer K (or X-Api-Key: K); /health stays open\n"
            "  --api-key-file F       the key's first line from a file\n"
            "  --timeout S            close idle or slow connections after S seconds (default 60)\n"
            "  --grace S              on SIGINT/SIGTERM, time in-flight requests get to finish (default 10)\n"
            "  --max-body BYTES       largest request body, e.g. 8M (default 8M)\n"
            "  -t, --threads N        threads (default: all cores)\n"
            "  --mesh RxC             split the model over R x C devices\n"
            "  --transport T          threads (default) or mpi: one device per rank; rank 0 serves HTTP\n"
            "                         and the other ranks follow its batch, e.g.\n"
            "                         mpirun -np 2 meshlm serve --transport mpi --mesh 1x2 -m FILE\n"
            "  --ccl-timeout S        mpi: a collective that waits S seconds for its peers ends the job\n"
            "                         with an error naming the rank and host (default 60; -1 = never)\n"
            "  --opt P, --opt-set LIST  optimization preset and overrides, as for run\n"
            "  --expert-parallel      on a mesh, each device holds a share of a mixture's experts whole\n"
            "  --kv-type T            KV cache type: f32 (default), f16, bf16, q8_0\n"
            "  --kv-mem BYTES         KV cache budget (default: ctx x parallel, at most 1G)\n"
            "  --chunk N              prompt tokens per sequence per step (default 64)\n"
            "  --no-prefix-cache      compute every prompt in full: no reuse of cached prompt prefixes\n"
            "  --ignore-eos           generate max_tokens even past end-of-generation (benchmarks)\n"
            "  --no-webui             no chat page: GET / answers 404\n");
}

typedef struct serve_opts {
    srv_params p;
    run_opts ro;
    meshlm_batch_params bp;
    const char *key_file;
} serve_opts;

/* The first line of a key file, without its newline. */
static char *read_key(const char *path) {
    char *text = NULL;
    size_t len = 0;
    if (!meshlm_arg_read_file("serve", path, &text, &len)) return NULL;
    text[strcspn(text, "\r\n")] = '\0';
    if (!text[0]) {
        fprintf(stderr, "meshlm serve: --api-key-file %s: the key is empty\n", path);
        free(text);
        return NULL;
    }
    return text;
}

/* Returns 0 to go on, 1 after --help, 2 on a usage error. */
static int parse(int argc, char **argv, serve_opts *o) {
    memset(o, 0, sizeof *o);
    o->p = (srv_params){.host = "127.0.0.1", .port = 8080, .parallel = 32, .max_queue = 128, .timeout_s = 60,
                        .grace_s = 10, .max_body = 8u << 20};
    o->ro.cmd = "serve";
    o->ro.sp = meshlm_session_defaults();
    o->bp = meshlm_batch_defaults();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        bool missing = false;
        int64_t n;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 1;
        }
        struct { const char *flag, *alias; const char **dst; } txt[] = {
            {"-m", "--model", &o->p.model_path}, {"--host", NULL, &o->p.host},      {"--alias", NULL, &o->p.alias},
            {"--api-key", NULL, &o->p.api_key},   {"--api-key-file", NULL, &o->key_file},
            {"--mesh", NULL, &o->bp.mesh},        {"--opt", NULL, &o->bp.opt},       {"--opt-set", NULL, &o->bp.opt_set},
            {"--kv-type", NULL, &o->bp.kv_type}, {"--transport", NULL, &o->ro.sp.transport},
        };
        struct { const char *flag, *alias; int64_t lo, hi; int kind; void *dst; } ints[] = {
            {"--port", NULL, 1, 65535, 0, &o->p.port},          {"--parallel", "-np", 1, 4096, 1, &o->p.parallel},
            {"--max-queue", NULL, 0, 1 << 20, 1, &o->p.max_queue}, {"-c", "--ctx-size", 0, INT32_MAX, 1, &o->bp.n_ctx},
            {"--timeout", NULL, 1, 86400, 0, &o->p.timeout_s},  {"--grace", NULL, 0, 86400, 0, &o->p.grace_s},
            {"-t", "--threads", 1, 4096, 1, &o->bp.n_threads},  {"--chunk", NULL, 1, 1 << 16, 1, &o->bp.n_chunk},
        };
        int done = 0;
        for (size_t k = 0; k < sizeof txt / sizeof txt[0] && !done; k++)
            if (meshlm_arg_take(argc, argv, &i, txt[k].flag, txt[k].alias, &v, &missing)) {
                if (!missing) *txt[k].dst = v;
                done = missing ? -1 : 1;
            }
        for (size_t k = 0; k < sizeof ints / sizeof ints[0] && !done; k++)
            if (meshlm_arg_take(argc, argv, &i, ints[k].flag, ints[k].alias, &v, &missing)) {
                done = !missing && meshlm_arg_int("serve", ints[k].flag, v, ints[k].lo, ints[k].hi, &n) ? 1 : -1;
                if (done > 0 && ints[k].kind) *(int32_t *)ints[k].dst = (int32_t)n;
                else if (done > 0) *(int *)ints[k].dst = (int)n;
            }
        double secs = 0;
        if (!done && meshlm_arg_take(argc, argv, &i, "--ccl-timeout", NULL, &v, &missing)) {
            done = !missing && meshlm_arg_float("serve", "--ccl-timeout", v, -1, 1e6, &secs) ? 1 : -1;
            o->bp.ccl_timeout = (float)secs;
        }
        if (!done && meshlm_arg_take(argc, argv, &i, "--kv-mem", NULL, &v, &missing))
            done = !missing && meshlm_arg_bytes("serve", "--kv-mem", v, &o->bp.kv_mem) ? 1 : -1;
        if (!done && meshlm_arg_take(argc, argv, &i, "--max-body", NULL, &v, &missing))
            done = !missing && meshlm_arg_bytes("serve", "--max-body", v, &o->p.max_body) ? 1 : -1;
        if (!done && !strcmp(a, "--no-prefix-cache")) {
            o->bp.no_prefix_cache = true;
            done = 1;
        }
        if (!done && !strcmp(a, "--ignore-eos")) {
            o->bp.ignore_eog = true;
            done = 1;
        }
        if (!done && !strcmp(a, "--no-webui")) {
            o->p.no_webui = true;
            done = 1;
        }
        if (!done && !strcmp(a, "--expert-parallel")) {
            o->ro.expert_parallel = true;
            done = 1;
        }
        if (!done) {
            fprintf(stderr, "meshlm serve: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
        if (done < 0) {
            if (missing) fprintf(stderr, "meshlm serve: %s needs a value\n", a);
            return 2;
        }
    }
    if (!o->p.model_path) {
        fprintf(stderr, "meshlm serve: -m FILE is required\n");
        return 2;
    }
    if (o->p.api_key && o->key_file) {
        fprintf(stderr, "meshlm serve: --api-key and --api-key-file exclude each other\n");
        return 2;
    }
    if (o->ro.expert_parallel &&
        !(o->bp.opt_set = meshlm_arg_opt_set_add("serve", o->bp.opt_set, "expert_parallel=on", o->ro.opt_set,
                                                 sizeof o->ro.opt_set)))
        return 2;
    o->bp.n_batch = o->p.parallel;
    o->ro.model = o->p.model_path;
    o->ro.sp.opt = o->bp.opt;
    o->ro.sp.opt_set = o->bp.opt_set;
    o->ro.sp.mesh = o->bp.mesh;
    if (o->ro.sp.transport && strcmp(o->ro.sp.transport, "threads") && strcmp(o->ro.sp.transport, "mpi")) {
        fprintf(stderr, "meshlm serve: --transport: '%s' is not threads or mpi\n", o->ro.sp.transport);
        return 2;
    }
    return 0;
}

/* How long a replica waits for word from rank 0 (a log or a heartbeat) before it takes
 * rank 0 for lost: the collectives' deadline, and never less than three heartbeats. */
static double replica_timeout(const serve_opts *o) {
    double t = meshlm_ccl_timeout(o->bp.ccl_timeout);
    return t > 0 && t < 3.0 ? 3.0 : t;
}

/* A rank other than 0 of an MPI job: the same model and batch as rank 0, which it follows
 * step by step; no HTTP. */
static int replica(serve_opts *o) {
    meshlm_model *m = meshlm_run_load(&o->ro);
    meshlm_batch *b = NULL;
    int rc = 1;
    if (m && meshlm_batch_create(m, &o->bp, &b) == MESHLM_OK && meshlm_srv_replica_run(b, replica_timeout(o)) == MESHLM_OK)
        rc = 0;
    if (rc && m) fprintf(stderr, "meshlm serve: rank %d: %s\n", o->ro.rank, meshlm_last_error());
    /* A batch whose mesh lost a rank is left to the exit: freeing it may wait on that rank. */
    if (rc && b) return rc;
    meshlm_batch_free(b);
    meshlm_model_free(m);
    return rc;
}

int meshlm_cmd_serve(int argc, char **argv) {
    serve_opts o;
    int rc = parse(argc, argv, &o);
    if (rc) return rc == 1 ? 0 : rc;
    char *key = o.key_file ? read_key(o.key_file) : NULL;
    if (o.key_file && !key) return 1;
    if (key) o.p.api_key = key;
    if ((rc = meshlm_run_start_mpi(&o.ro, &argc, &argv))) {
        free(key);
        return rc;
    }
    o.bp.transport = o.ro.bp.transport;
    o.bp.mesh = o.ro.bp.mesh;
    o.p.replicas = o.ro.mpi;
    o.p.replica_timeout_s = replica_timeout(&o);
    if (o.ro.mpi && o.ro.rank != 0) {
        free(key);
        signal(SIGINT, SIG_IGN); /* rank 0 decides when serving ends */
        signal(SIGTERM, SIG_IGN);
        rc = replica(&o);
        /* After a failure a lost peer would never finish MPI_Finalize. */
        if (rc == 0) meshlm_mpi_stop();
        return rc;
    }
    /* Every thread inherits these blocked; the main thread takes them with sigwait. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    srv_server *s = NULL;
    meshlm_model *m = NULL;
    meshlm_batch *b = NULL;
    rc = 1;
    if (meshlm_srv_create(&o.p, &s) != MESHLM_OK) goto done;
    fprintf(stderr, "meshlm serve: listening on http://%s:%d\n", o.p.host, o.p.port);
    if (!(m = meshlm_run_load(&o.ro))) goto done;
    if (meshlm_batch_create(m, &o.bp, &b) != MESHLM_OK) {
        fprintf(stderr, "meshlm serve: %s\n", meshlm_last_error());
        goto done;
    }
    int32_t n_ctx = o.bp.n_ctx;
    if (!n_ctx) n_ctx = meshlm_model_n_ctx_train(m) > 0 && meshlm_model_n_ctx_train(m) < 4096
                            ? meshlm_model_n_ctx_train(m) : 4096;
    if (meshlm_srv_ready(s, m, b, n_ctx) != MESHLM_OK) {
        fprintf(stderr, "meshlm serve: %s\n", meshlm_last_error());
        goto done;
    }
    fprintf(stderr, "meshlm serve: ready: model '%s', %d sequences at once, context %d\n",
            o.p.alias ? o.p.alias : o.p.model_path, o.p.parallel, n_ctx);
    if (o.ro.mpi)
        fprintf(stderr, "meshlm serve: rank 0 is pid %ld; SIGTERM to it ends serving gracefully (a signal to mpirun "
                        "ends the whole job at once)\n", (long)getpid());
    int sig = 0;
    while (sigwait(&set, &sig) != 0) continue;
    if (meshlm_srv_mesh_lost(s)) {
        /* The lost ranks will never finish a collective or MPI_Finalize. Every request has
         * had its error and new ones get 503 (the engine fails them all now): give the
         * replies a second to go out, then leave without waiting for the lost ranks (mpirun
         * ends the rest of the job). */
        sleep(1);
        fprintf(stderr, "meshlm serve: exiting: the mesh of ranks failed\n");
        fflush(NULL);
        _exit(1);
    }
    fprintf(stderr, "meshlm serve: %s: stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    meshlm_srv_shutdown(s);
    rc = 0;
done:
    meshlm_srv_free(s);
    meshlm_model_free(m);
    free(key);
    /* A rank 0 that failed (a port taken, a model that would not load) leaves without
     * MPI_Finalize, which would wait for replicas still in a collective; mpirun then ends
     * the job. */
    if (o.ro.mpi && rc == 0) meshlm_mpi_stop();
    return rc;
}
