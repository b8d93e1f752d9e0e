/* Options of `run` and `chat`, model loading, MPI start-up and Ctrl-C, shared by both. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "apps/args.h"
#include "apps/run_opts.h"
#include "mesh/mesh.h"
#include "model/model.h"
#include "model/options.h"
#include "model/synth.h"

#define DEFAULT_MODEL "models/default.gguf"
#define SYNTH_MODEL "models/synthetic-tiny.gguf"

static void usage(FILE *f, const char *cmd) {
    if (!strcmp(cmd, "chat"))
        fprintf(f, "usage: meshlm chat [-m FILE] [-sys TEXT] [--chat-template FILE] [options]\n"
                   "  a conversation: each line typed is a user turn, the reply streams as it comes;\n"
                   "  /clear starts over, /exit or end of input quits, Ctrl-C stops a reply.\n"
                   "  Without a terminal on stdin, each line of input is a turn.\n");
    else
        fprintf(f, "usage: meshlm run [-m FILE] (-p TEXT | -f FILE) [options]\n");
    fprintf(f,
            "  -m, --model FILE       GGUF model (default: " DEFAULT_MODEL ", else a synthetic model)\n"
            "  -p, --prompt TEXT      prompt (in chat mode: the first user turn)\n"
            "  -f, --file FILE        read the prompt from a file (- = standard input)\n"
            "  -e, --escape           process escapes (\\n, \\t, \\\\, \\\", \\xHH) in -p and -sys\n"
            "  -sys, --system-prompt TEXT  system message (chat mode)\n"
            "  -cnv, --conversation   run: chat mode, as `meshlm chat`\n"
            "  --chat-template FILE   a Jinja chat template instead of the model's\n"
            "  -r, --reverse-prompt S, --stop S   stop when the text contains S (repeatable)\n"
            "  --ignore-eos           go on past end-of-generation tokens\n"
            "  --special              show control tokens (<s>, <|eot_id|>, ...) as text\n"
            "  -n, --n-predict N      tokens to generate (-1 = until end of generation or context; default -1)\n"
            "  -c, --ctx-size N       context size (0 = the model's, capped at 4096; default 0)\n"
            "  -t, --threads N        threads per device (default: all cores on 1x1, 1 per device on a mesh)\n"
            "  --mesh RxC             split the model over R x C devices (tensor parallel; default 1x1)\n"
            "  --topology T           collectives: linear or ring (default: the preset's, ring for performance)\n"
            "  --links N              chunks in flight per collective step (default 1)\n"
            "  --transport T          threads (default) or mpi: one device per rank, e.g.\n"
            "                         mpirun -np 4 meshlm run --transport mpi --mesh 1x4 -m FILE -p TEXT\n"
            "                         (under mpirun with several ranks, mpi is the default)\n"
            "  --ccl-timeout S        mpi: a collective that waits S seconds for its peers ends the job\n"
            "                         with an error naming the rank and host (default 60; -1 = never)\n"
            "  --temp T               temperature, <= 0 = greedy (default 0.8)\n"
            "  --top-k K              top-k, 0 = off (default 40)\n"
            "  --top-p P              top-p, 1 = off (default 0.95)\n"
            "  --min-p P              min-p, 0 = off (default 0.05)\n"
            "  --repeat-penalty X     repetition penalty, 1 = off (default 1)\n"
            "  --repeat-last-n N      tokens the penalty looks back at (default 64)\n"
            "  -s, --seed S           random seed (-1 = random; default -1)\n"
            "  --opt P                optimization preset: generic, performance (default) or accuracy\n"
            "  --opt-set LIST         switch single options on top of the preset, name=value,...:\n"
            "                         fuse_qkv, fuse_w13, fuse_rs, fuse_ag, ring, prefetch, stream,\n"
            "                         persistent, f32_act, hugepages, panels, expert_parallel (on a\n"
            "                         mesh, each device holds a share of a mixture's experts whole),\n"
            "                         on/off; topology=linear|ring; and weight\n"
            "                         classes wqkv, wo, w13, w2, embd, output = f32|f16|bf16|q8_0|q4_0|\n"
            "                         bfp8|bfp4 (repacked at load; changes results), e.g. w13=bfp4\n"
            "  --expert-parallel      on a mesh, each device holds a share of a mixture's experts\n"
            "                         whole (as --opt-set expert_parallel=on)\n"
            "  --prefetch             read the weights in on a thread ahead of compute (as\n"
            "                         --opt-set prefetch=on; the performance preset does it)\n"
            "  --kv-type T            KV cache type: f32 (default), f16, bf16, q8_0\n"
            "  --version              print meshlm's version\n");
    if (strcmp(cmd, "chat") != 0)
        fprintf(f,
                "serving many prompts at once:\n"
                "  --batch N              serve every line of -f FILE as its own prompt, N sequences at a time\n"
                "                         (default 32 when given); prints one JSON line per prompt, in input\n"
                "                         order, each as soon as it and those before it are done\n"
                "  -o, --output jsonl     the output format of --batch (the only one)\n"
                "  --chunk N              prompt tokens per sequence per step (default 64)\n"
                "  --kv-mem BYTES         KV cache budget, e.g. 512M (default: ctx x batch, at most 1G)\n"
                "  --page-size N          positions per KV page (default 64)\n"
                "  --no-prefix-cache      compute every prompt in full: no reuse of cached prompt prefixes\n");
}

/* Flags that take no value; returns 1 if argv[i] is one. */
static int parse_switch(const char *a, run_opts *o) {
    struct { const char *flag, *alias; bool *dst; } sw[] = {
        {"--prefetch", NULL, &o->prefetch}, {"-e", "--escape", &o->escape},
        {"--expert-parallel", NULL, &o->expert_parallel},
        {"-cnv", "--conversation", &o->chat}, {"--special", NULL, &o->special},
        {"--ignore-eos", NULL, &o->bp.ignore_eog}, {"--no-prefix-cache", NULL, &o->bp.no_prefix_cache},
    };
    for (size_t k = 0; k < sizeof sw / sizeof sw[0]; k++)
        if (!strcmp(a, sw[k].flag) || (sw[k].alias && !strcmp(a, sw[k].alias))) {
            *sw[k].dst = true;
            return 1;
        }
    return 0;
}

/* Flags whose value is kept as text; returns 1 if handled, -1 on a missing value. */
static int parse_text(int argc, char **argv, int *i, run_opts *o) {
    struct { const char *flag, *alias; const char **dst; } txt[] = {
        {"-m", "--model", &o->model},        {"--mesh", NULL, &o->sp.mesh},
        {"--topology", NULL, &o->sp.topology}, {"--transport", NULL, &o->sp.transport},
        {"--opt", NULL, &o->sp.opt},         {"--opt-set", NULL, &o->sp.opt_set},
        {"-p", "--prompt", &o->prompt},      {"--kv-type", NULL, &o->sp.kv_type},
        {"-f", "--file", &o->prompt_file},   {"-sys", "--system-prompt", &o->system},
        {"--chat-template", NULL, &o->template_file},
    };
    const char *v = NULL;
    bool missing = false;
    for (size_t k = 0; k < sizeof txt / sizeof txt[0]; k++) {
        if (!meshlm_arg_take(argc, argv, i, txt[k].flag, txt[k].alias, &v, &missing)) continue;
        if (missing) {
            fprintf(stderr, "meshlm %s: %s needs a value\n", o->cmd, txt[k].flag);
            return -1;
        }
        *txt[k].dst = v;
        return 1;
    }
    bool rev = meshlm_arg_take(argc, argv, i, "-r", "--reverse-prompt", &v, &missing);
    if (!rev && !meshlm_arg_take(argc, argv, i, "--stop", NULL, &v, &missing)) return 0;
    if (missing || !v[0] || o->n_stops == MESHLM_RUN_MAX_STOPS) {
        fprintf(stderr, "meshlm %s: %s needs a non-empty value (at most %d of them)\n", o->cmd,
                rev ? "-r" : "--stop", MESHLM_RUN_MAX_STOPS);
        return -1;
    }
    o->stops[o->n_stops++] = v;
    return 1;
}

/* Numeric flags; returns 1 if handled, 0 if unknown, -1 on a bad value. */
static int parse_number(int argc, char **argv, int *i, run_opts *o) {
    const char *v = NULL, *c = o->cmd;
    bool missing = false;
    int64_t n;
    double x;
    meshlm_sampler_params *sp = &o->sp.sampler;
    struct { const char *flag, *alias; int32_t *dst; int64_t lo, hi; } ints[] = {
        {"--batch", NULL, &o->bp.n_batch, 1, 4096},     {"--chunk", NULL, &o->bp.n_chunk, 1, 1 << 16},
        {"--page-size", NULL, &o->bp.page_size, 1, 1 << 16}, {"--links", NULL, &o->sp.links, 1, 64},
        {"-c", "--ctx-size", &o->sp.n_ctx, 0, INT32_MAX}, {"-t", "--threads", &o->sp.n_threads, 1, 4096},
        {"--top-k", NULL, &sp->top_k, 0, INT32_MAX},    {"--repeat-last-n", NULL, &sp->repeat_last_n, 0, 1 << 20},
    };
    const char *a = argv[*i];
    bool seed = !strcmp(a, "-s") || !strcmp(a, "--seed");
    if (seed || !strcmp(a, "-n") || !strcmp(a, "--n-predict")) {
        if (!meshlm_arg_take(argc, argv, i, a, NULL, &v, &missing) || missing) {
            fprintf(stderr, "meshlm %s: %s needs a value\n", c, a);
            return -1;
        }
        if (!meshlm_arg_int(c, seed ? "-s" : "-n", v, -1, seed ? INT64_MAX : INT32_MAX, &n)) return -1;
        if (seed)
            sp->seed = n < 0 ? UINT64_MAX : (uint64_t)n;
        else
            o->n_predict = n;
        return 1;
    }
    for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++) {
        if (!meshlm_arg_take(argc, argv, i, ints[k].flag, ints[k].alias, &v, &missing)) continue;
        if (missing) {
            fprintf(stderr, "meshlm %s: %s needs a value\n", c, ints[k].flag);
            return -1;
        }
        if (!meshlm_arg_int(c, ints[k].flag, v, ints[k].lo, ints[k].hi, &n)) return -1;
        *ints[k].dst = (int32_t)n;
        o->batch |= k == 0;
        return 1;
    }
    struct { const char *flag; float *dst; double lo, hi; } floats[] = {
        {"--temp", &sp->temperature, -1e6, 1e6}, {"--top-p", &sp->top_p, 1e-9, 1},
        {"--min-p", &sp->min_p, 0, 1},           {"--repeat-penalty", &sp->repeat_penalty, 1e-6, 1e6},
        {"--ccl-timeout", &o->sp.ccl_timeout, -1, 1e6},
    };
    for (size_t k = 0; k < sizeof floats / sizeof floats[0]; k++) {
        if (!meshlm_arg_take(argc, argv, i, floats[k].flag, NULL, &v, &missing)) continue;
        if (missing) {
            fprintf(stderr, "meshlm %s: %s needs a value\n", c, floats[k].flag);
            return -1;
        }
        if (!meshlm_arg_float(c, floats[k].flag, v, floats[k].lo, floats[k].hi, &x)) return -1;
        /* llama.cpp's convention: any temperature <= 0 samples greedily. */
        *floats[k].dst = (float)(floats[k].dst == &sp->temperature && x < 0 ? 0 : x);
        return 1;
    }
    return 0;
}

/* -o jsonl, --kv-mem; returns 1 if handled, 0 if unknown, -1 on a bad value. */
static int parse_other(int argc, char **argv, int *i, run_opts *o) {
    const char *v = NULL;
    bool missing = false;
    if (meshlm_arg_take(argc, argv, i, "-o", "--output", &v, &missing)) {
        if (missing || strcmp(v, "jsonl") != 0) {
            fprintf(stderr, "meshlm %s: -o: '%s' is not a known format (jsonl)\n", o->cmd, missing ? "" : v);
            return -1;
        }
        o->output = v;
        return 1;
    }
    if (meshlm_arg_take(argc, argv, i, "--kv-mem", NULL, &v, &missing)) {
        if (missing) {
            fprintf(stderr, "meshlm %s: --kv-mem needs a value\n", o->cmd);
            return -1;
        }
        return meshlm_arg_bytes(o->cmd, "--kv-mem", v, &o->bp.kv_mem) ? 1 : -1;
    }
    return 0;
}

static int hexdigit(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* llama.cpp's -e: C escapes in place (the text only shrinks). */
static void unescape(char *s) {
    char *w = s;
    for (const char *r = s; *r; r++) {
        if (*r != '\\' || !r[1]) {
            *w++ = *r;
            continue;
        }
        static const char from[] = "nrtabfv\\'\"?", to[] = "\n\r\t\a\b\f\v\\'\"?";
        const char *k = strchr(from, *++r);
        int hi, lo;
        if (k) {
            *w++ = to[k - from];
        } else if (*r == 'x' && (hi = hexdigit(r[1])) >= 0 && (lo = hexdigit(r[2])) >= 0) {
            *w++ = (char)(hi * 16 + lo);
            r += 2;
        } else {
            *w++ = '\\';
            *w++ = *r;
        }
    }
    *w = '\0';
}

int meshlm_run_parse(int argc, char **argv, const char *cmd, run_opts *o) {
    *o = (run_opts){.cmd = cmd, .n_predict = -1, .sp = meshlm_session_defaults(), .bp = meshlm_batch_defaults(),
                    .chat = !strcmp(cmd, "chat")};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout, cmd);
            return 1;
        }
        if (!strcmp(argv[i], "--version")) {
            printf("meshlm %s\n", meshlm_version());
            return 1;
        }
        int r = parse_switch(argv[i], o);
        if (!r) r = parse_text(argc, argv, &i, o);
        if (!r) r = parse_number(argc, argv, &i, o);
        if (!r) r = parse_other(argc, argv, &i, o);
        if (r < 0) return 2;
        if (r == 0) {
            fprintf(stderr, "meshlm %s: unknown option '%s'\n", cmd, argv[i]);
            usage(stderr, cmd);
            return 2;
        }
    }
    o->chat |= o->system != NULL;
    if (o->expert_parallel &&
        !(o->sp.opt_set = meshlm_arg_opt_set_add(cmd, o->sp.opt_set, "expert_parallel=on", o->opt_set,
                                                 sizeof o->opt_set)))
        return 2;
    /* argv's strings are the process's own to change. */
    if (o->escape && o->prompt) unescape((char *)o->prompt);
    if (o->escape && o->system) unescape((char *)o->system);
    o->bp.opt = o->sp.opt;
    o->bp.opt_set = o->sp.opt_set;
    o->bp.kv_type = o->sp.kv_type;
    if (o->chat && (o->batch || o->prompt_file)) {
        fprintf(stderr, "meshlm %s: chat mode reads its turns from standard input: -f and --batch do not apply\n", cmd);
        return 2;
    }
    if (!o->chat && !o->prompt == !o->prompt_file) {
        fprintf(stderr, "meshlm %s: give exactly one of -p TEXT or -f FILE\n", cmd);
        return 2;
    }
    if (o->output && !o->batch) {
        fprintf(stderr, "meshlm %s: -o jsonl goes with --batch N\n", cmd);
        return 2;
    }
    return 0;
}

/* The ranks of a job mpirun started, from the variables OpenMPI, MPICH and Slurm's PMI
 * set (1 when none is set). */
static long launched_ranks(void) {
    const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v && atol(v) > 0) return atol(v);
    }
    return 1;
}

int meshlm_run_start_mpi(run_opts *o, int *argc, char ***argv) {
    static char mesh[32];
    long ranks = launched_ranks();
    if (!o->sp.transport && ranks > 1) {
        /* Without this every rank would run its own copy of the model and print its text. */
        o->sp.transport = "mpi";
        if (!o->sp.mesh) {
            snprintf(mesh, sizeof mesh, "1x%ld", ranks);
            o->sp.mesh = mesh;
        }
    }
    o->bp.transport = o->sp.transport;
    o->bp.ccl_timeout = o->sp.ccl_timeout;
    o->bp.mesh = o->sp.mesh;
    o->mpi = o->sp.transport && !strcmp(o->sp.transport, "mpi");
    if (!o->mpi) return 0;
    if (!o->model) {
        fprintf(stderr, "meshlm %s: --transport mpi needs -m FILE (every rank loads the same file)\n", o->cmd);
        return 2;
    }
    int size = 1;
    if (meshlm_mpi_start(argc, argv, &o->rank, &size) != MESHLM_OK) {
        fprintf(stderr, "meshlm %s: %s\n", o->cmd, meshlm_last_error());
        if (ranks > 1)
            fprintf(stderr, "meshlm %s: launched as %ld ranks: build meshlm with MPI, or run it without mpirun\n",
                    o->cmd, ranks);
        return 1;
    }
    /* Every rank must draw the same tokens: a random seed is rank 0's. */
    if (o->sp.sampler.seed == UINT64_MAX) {
        uint64_t seed = (uint64_t)time(NULL) ^ (uint64_t)clock() << 32;
        if (meshlm_mpi_bcast(&seed, sizeof seed) != MESHLM_OK) {
            fprintf(stderr, "meshlm %s: %s\n", o->cmd, meshlm_last_error());
            return 1;
        }
        o->sp.sampler.seed = seed == UINT64_MAX ? 0 : seed;
    }
    o->quiet = o->rank != 0;
    if (o->quiet && !freopen("/dev/null", "w", stdout)) {
        fprintf(stderr, "meshlm %s: rank %d: cannot silence stdout\n", o->cmd, o->rank);
        return 1;
    }
    return 0;
}

static bool file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Without -m: the user's models/default.gguf, or else a small synthetic model (made once),
 * announced plainly because its weights are random. */
static const char *default_model(const char *cmd) {
    if (file_exists(DEFAULT_MODEL)) return DEFAULT_MODEL;
    fprintf(stderr,
            "meshlm %s: no -m given and no " DEFAULT_MODEL ": using a SYNTHETIC model with RANDOM weights\n"
            "meshlm %s: (" SYNTH_MODEL "); its text is meaningless. Put a real Llama/Qwen GGUF at\n"
            "meshlm %s: " DEFAULT_MODEL " or pass -m FILE for real output.\n", cmd, cmd, cmd);
    if (file_exists(SYNTH_MODEL)) return SYNTH_MODEL;
    meshlm_synth_params p;
    if (mkdir("models", 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "meshlm %s: cannot create models/: %s\n", cmd, strerror(errno));
        return NULL;
    }
    if (meshlm_synth_preset("tiny", NULL, &p) != MESHLM_OK || meshlm_synth_write(&p, SYNTH_MODEL) != MESHLM_OK) {
        fprintf(stderr, "meshlm %s: cannot make the synthetic model: %s\n", cmd, meshlm_last_error());
        return NULL;
    }
    return SYNTH_MODEL;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

meshlm_model *meshlm_run_load(const run_opts *o) {
    const char *path = o->model ? o->model : default_model(o->cmd);
    if (!path) return NULL;
    double t0 = now_s();
    meshlm_model *m = NULL;
    meshlm_opts opts;
    if (meshlm_opts_make(o->sp.opt, o->sp.opt_set, &opts) != MESHLM_OK || meshlm_model_load(path, &m) != MESHLM_OK ||
        meshlm_model_prepare(m, o->sp.opt, o->sp.opt_set) != MESHLM_OK ||
        (o->prefetch && !opts.prefetch && meshlm_model_prefetch(m) != MESHLM_OK)) {
        fprintf(stderr, "meshlm %s: %s\n", o->cmd, meshlm_last_error());
        meshlm_model_free(m);
        return NULL;
    }
    if (o->quiet) return m;
    fprintf(stderr, "meshlm %s: loaded %s (%s, %d layers, %d embd, vocab %d) in %.2f s\n", o->cmd, path,
            meshlm_model_arch(m), m->hp.n_layer, m->hp.n_embd, m->hp.n_vocab, now_s() - t0);
    char desc[512];
    meshlm_opts_describe(&opts, desc, sizeof desc);
    fprintf(stderr, "meshlm %s: options %s\n", o->cmd, desc);
    if (o->sp.mesh)
        fprintf(stderr, "meshlm %s: mesh %s, topology %s, transport %s\n", o->cmd, o->sp.mesh,
                o->sp.topology ? o->sp.topology : opts.ring ? "ring" : "linear",
                o->sp.transport ? o->sp.transport : "threads");
    return m;
}

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig) {
    (void)sig;
    /* A second Ctrl-C while the first is still being handled ends the program, as a
     * user pressing it twice expects. */
    if (interrupted) _exit(MESHLM_EXIT_INTERRUPTED);
    interrupted = 1;
}

void meshlm_run_catch_sigint(void) {
    struct sigaction sa = {.sa_handler = on_sigint};
    sigemptyset(&sa.sa_mask);
    /* No SA_RESTART: a chat waiting for its next line sees the read fail with EINTR. */
    sigaction(SIGINT, &sa, NULL);
}

bool meshlm_run_interrupted(void) { return interrupted != 0; }

void meshlm_run_clear_interrupt(void) { interrupted = 0; }
