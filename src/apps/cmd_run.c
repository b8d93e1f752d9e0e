/* meshlm run: generate a continuation of a prompt. The continuation goes to stdout; load
 * information and timings go to stderr. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "apps/args.h"
#include "apps/commands.h"
#include "meshlm.h"
#include "model/model.h"
#include "model/options.h"
#include "model/synth.h"
#include "tokenizer/tokenizer.h"

#define DEFAULT_MODEL "models/default.gguf"
#define SYNTH_MODEL "models/synthetic-tiny.gguf"

typedef struct run_opts {
    const char *model, *prompt, *prompt_file, *output;
    int64_t n_predict;
    meshlm_session_params sp;
    meshlm_batch_params bp;
    bool batch; /* --batch given: serve the lines of -f together */
    bool quiet; /* MPI ranks other than 0 print nothing but errors */
    bool prefetch; /* --prefetch: read the weights in ahead of compute (cold start) */
} run_opts;

static void run_usage(FILE *f) {
    fprintf(f,
            "usage: meshlm run [-m FILE] (-p TEXT | -f FILE) [options]\n"
            "  -m, --model FILE       GGUF model (default: " DEFAULT_MODEL ", else a synthetic model)\n"
            "  -p, --prompt TEXT      prompt\n"
            "  -f, --file FILE        read the prompt from a file\n"
            "  -n, --n-predict N      tokens to generate (-1 = until end of generation or context; default -1)\n"
            "  -c, --ctx-size N       context size (0 = the model's, capped at 4096; default 0)\n"
            "  -t, --threads N        threads per device (default: all cores on 1x1, 1 per device on a mesh)\n"
            "  --mesh RxC             split the model over R x C devices (tensor parallel; default 1x1)\n"
            "  --topology T           collectives: linear or ring (default: the preset's, ring for performance)\n"
            "  --links N              chunks in flight per collective step (default 1)\n"
            "  --transport T          threads (default) or mpi: one device per rank, e.g.\n"
            "                         mpirun -np 4 meshlm run --transport mpi --mesh 1x4 -m FILE -p TEXT\n"
            "  --temp T               temperature, 0 = greedy (default 0.8)\n"
            "  --top-k K              top-k, 0 = off (default 40)\n"
            "  --top-p P              top-p, 1 = off (default 0.95)\n"
            "  --min-p P              min-p, 0 = off (default 0.05)\n"
            "  --repeat-penalty X     repetition penalty, 1 = off (default 1)\n"
            "  --repeat-last-n N      tokens the penalty looks back at (default 64)\n"
            "  -s, --seed S           random seed (-1 = random; default -1)\n"
            "  --opt P                optimization preset: generic, performance (default) or accuracy\n"
            "  --opt-set LIST         switch single options on top of the preset, name=value,...:\n"
            "                         fuse_qkv, fuse_w13, fuse_rs, fuse_ag, ring, prefetch, stream,\n"
            "                         persistent, f32_act (on/off), topology=linear|ring, and weight\n"
            "                         classes wqkv, wo, w13, w2, embd, output = f32|f16|bf16|q8_0|q4_0|\n"
            "                         bfp8|bfp4 (repacked at load; changes results), e.g. w13=bfp4\n"
            "  --prefetch             read the weights in on a thread ahead of compute (as\n"
            "                         --opt-set prefetch=on; the performance preset does it)\n"
            "serving many prompts at once:\n"
            "  --batch N              serve every line of -f FILE as its own prompt, N sequences at a time\n"
            "                         (default 32 when given); prints one JSON line per prompt, in input order\n"
            "  -o, --output jsonl     the output format of --batch (the only one)\n"
            "  --chunk N              prompt tokens per sequence per step (default 64)\n"
            "  --kv-type T            KV cache type, also without --batch: f32 (default), f16, bf16, q8_0\n"
            "  --kv-mem BYTES         KV cache budget, e.g. 512M (default: ctx x batch, at most 1G)\n"
            "  --page-size N          positions per KV page (default 64)\n");
}

/* Parses one option at argv[*i]; returns 1 if handled, 0 if unknown, -1 on a bad value. */
static int parse_opt(int argc, char **argv, int *i, run_opts *o) {
    const char *v = NULL;
    bool missing = false;
    int64_t n;
    double x;
    meshlm_sampler_params *sp = &o->sp.sampler;
#define TAKE(flag, alias) meshlm_arg_take(argc, argv, i, flag, alias, &v, &missing)
#define CHECK_MISSING(flag)                                                        \
    if (missing) {                                                                 \
        fprintf(stderr, "meshlm run: %s needs a value\n", flag);                   \
        return -1;                                                                 \
    }
    if (TAKE("-m", "--model")) { CHECK_MISSING("-m"); o->model = v; return 1; }
    if (TAKE("--mesh", NULL)) { CHECK_MISSING("--mesh"); o->sp.mesh = v; return 1; }
    if (TAKE("--topology", NULL)) { CHECK_MISSING("--topology"); o->sp.topology = v; return 1; }
    if (TAKE("--transport", NULL)) { CHECK_MISSING("--transport"); o->sp.transport = v; return 1; }
    if (TAKE("--links", NULL)) {
        CHECK_MISSING("--links");
        if (!meshlm_arg_int("run", "--links", v, 1, 64, &n)) return -1;
        o->sp.links = (int32_t)n;
        return 1;
    }
    if (!strcmp(argv[*i], "--prefetch")) { o->prefetch = true; return 1; }
    if (TAKE("--opt", NULL)) { CHECK_MISSING("--opt"); o->sp.opt = o->bp.opt = v; return 1; }
    if (TAKE("--opt-set", NULL)) { CHECK_MISSING("--opt-set"); o->sp.opt_set = o->bp.opt_set = v; return 1; }
    if (TAKE("-p", "--prompt")) { CHECK_MISSING("-p"); o->prompt = v; return 1; }
    if (TAKE("-o", "--output")) {
        CHECK_MISSING("-o");
        if (strcmp(v, "jsonl") != 0) {
            fprintf(stderr, "meshlm run: -o: '%s' is not a known format (jsonl)\n", v);
            return -1;
        }
        o->output = v;
        return 1;
    }
    if (TAKE("--kv-type", NULL)) { CHECK_MISSING("--kv-type"); o->bp.kv_type = o->sp.kv_type = v; return 1; }
    if (TAKE("--kv-mem", NULL)) {
        CHECK_MISSING("--kv-mem");
        return meshlm_arg_bytes("run", "--kv-mem", v, &o->bp.kv_mem) ? 1 : -1;
    }
    struct { const char *flag; int32_t *dst; int64_t lo, hi; } ints[] = {
        {"--batch", &o->bp.n_batch, 1, 4096}, {"--chunk", &o->bp.n_chunk, 1, 1 << 16},
        {"--page-size", &o->bp.page_size, 1, 1 << 16},
    };
    for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++) {
        if (!TAKE(ints[k].flag, NULL)) continue;
        CHECK_MISSING(ints[k].flag);
        if (!meshlm_arg_int("run", ints[k].flag, v, ints[k].lo, ints[k].hi, &n)) return -1;
        *ints[k].dst = (int32_t)n;
        o->batch |= k == 0;
        return 1;
    }
    if (TAKE("-f", "--file")) { CHECK_MISSING("-f"); o->prompt_file = v; return 1; }
    if (TAKE("-n", "--n-predict")) {
        CHECK_MISSING("-n");
        return meshlm_arg_int("run", "-n", v, -1, INT32_MAX, &o->n_predict) ? 1 : -1;
    }
    if (TAKE("-c", "--ctx-size")) {
        CHECK_MISSING("-c");
        if (!meshlm_arg_int("run", "-c", v, 0, INT32_MAX, &n)) return -1;
        o->sp.n_ctx = (int32_t)n;
        return 1;
    }
    if (TAKE("-t", "--threads")) {
        CHECK_MISSING("-t");
        if (!meshlm_arg_int("run", "-t", v, 1, 4096, &n)) return -1;
        o->sp.n_threads = (int32_t)n;
        return 1;
    }
    if (TAKE("-s", "--seed")) {
        CHECK_MISSING("-s");
        if (!meshlm_arg_int("run", "-s", v, -1, INT64_MAX, &n)) return -1;
        sp->seed = n < 0 ? UINT64_MAX : (uint64_t)n;
        return 1;
    }
    if (TAKE("--top-k", NULL)) {
        CHECK_MISSING("--top-k");
        if (!meshlm_arg_int("run", "--top-k", v, 0, INT32_MAX, &n)) return -1;
        sp->top_k = (int32_t)n;
        return 1;
    }
    if (TAKE("--repeat-last-n", NULL)) {
        CHECK_MISSING("--repeat-last-n");
        if (!meshlm_arg_int("run", "--repeat-last-n", v, 0, 1 << 20, &n)) return -1;
        sp->repeat_last_n = (int32_t)n;
        return 1;
    }
    struct { const char *flag; float *dst; double lo, hi; } floats[] = {
        {"--temp", &sp->temperature, 0, 1e6},       {"--top-p", &sp->top_p, 1e-9, 1},
        {"--min-p", &sp->min_p, 0, 1},              {"--repeat-penalty", &sp->repeat_penalty, 1e-6, 1e6},
    };
    for (size_t k = 0; k < sizeof floats / sizeof floats[0]; k++) {
        if (!TAKE(floats[k].flag, NULL)) continue;
        CHECK_MISSING(floats[k].flag);
        if (!meshlm_arg_float("run", floats[k].flag, v, floats[k].lo, floats[k].hi, &x)) return -1;
        *floats[k].dst = (float)x;
        return 1;
    }
#undef TAKE
#undef CHECK_MISSING
    return 0;
}

static bool file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Without -m: the user's models/default.gguf, or else a small synthetic model (made once),
 * announced plainly because its weights are random. */
static const char *default_model(void) {
    if (file_exists(DEFAULT_MODEL)) return DEFAULT_MODEL;
    fprintf(stderr,
            "meshlm run: no -m given and no " DEFAULT_MODEL ": using a SYNTHETIC model with RANDOM weights\n"
            "meshlm run: (" SYNTH_MODEL "); its text is meaningless. Put a real Llama/Qwen GGUF at\n"
            "meshlm run: " DEFAULT_MODEL " or pass -m FILE for real output.\n");
    if (file_exists(SYNTH_MODEL)) return SYNTH_MODEL;
    meshlm_synth_params p;
    if (mkdir("models", 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "meshlm run: cannot create models/: %s\n", strerror(errno));
        return NULL;
    }
    if (meshlm_synth_preset("tiny", NULL, &p) != MESHLM_OK || meshlm_synth_write(&p, SYNTH_MODEL) != MESHLM_OK) {
        fprintf(stderr, "meshlm run: cannot make the synthetic model: %s\n", meshlm_last_error());
        return NULL;
    }
    return SYNTH_MODEL;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Writes a token's text to stdout without splitting a UTF-8 character. */
static void emit(const meshlm_model *m, meshlm_detok *d, int32_t id) {
    char buf[256];
    size_t n = 0;
    if (meshlm_detok_push(m->tok, d, id, buf, sizeof buf, &n) == MESHLM_OK) fwrite(buf, 1, n, stdout);
    fflush(stdout);
}

typedef struct gen_stats {
    int32_t n_prompt, n_gen;
    double t_prompt, t_gen;
} gen_stats;

static int generate(const meshlm_model *m, meshlm_session *s, const int32_t *prompt, int32_t n_prompt,
                    int64_t n_predict, int32_t n_ctx, gen_stats *st) {
    double t0 = now_s();
    if (meshlm_session_eval(s, prompt, n_prompt) != MESHLM_OK) return -1;
    st->n_prompt = n_prompt;
    st->t_prompt = now_s() - t0;
    meshlm_detok d = {0};
    t0 = now_s();
    while (n_predict < 0 || st->n_gen < n_predict) {
        int32_t tok;
        if (meshlm_session_sample(s, &tok) != MESHLM_OK) return -1;
        if (meshlm_token_is_eog(m, tok)) break;
        emit(m, &d, tok);
        st->n_gen++;
        if (meshlm_session_pos(s) >= n_ctx) {
            fprintf(stderr, "meshlm run: context full (%d tokens): stopping\n", n_ctx);
            break;
        }
        if (meshlm_session_eval(s, &tok, 1) != MESHLM_OK) return -1;
    }
    st->t_gen = now_s() - t0;
    char tail[16];
    size_t n = 0;
    meshlm_detok_flush(&d, tail, sizeof tail, &n);
    fwrite(tail, 1, n, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    return 0;
}

/* A growing string, for the JSON lines. */
typedef struct strbuf {
    char *p;
    size_t n, cap;
} strbuf;

static bool sb_put(strbuf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = (b->n + n + 1) * 2;
        char *p = realloc(b->p, cap);
        if (!p) return false;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
    return true;
}

/* A JSON string: quotes, backslashes and control bytes escaped; other bytes as they are
 * (the detokenizer emits valid UTF-8). */
static bool sb_json(strbuf *b, const char *s, size_t n) {
    bool ok = sb_put(b, "\"", 1);
    for (size_t i = 0; i < n && ok; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\', esc[1] = (char)c;
            ok = sb_put(b, esc, 2);
        } else if (c == '\n') {
            ok = sb_put(b, "\\n", 2);
        } else if (c == '\t') {
            ok = sb_put(b, "\\t", 2);
        } else if (c == '\r') {
            ok = sb_put(b, "\\r", 2);
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            ok = sb_put(b, esc, 6);
        } else {
            ok = sb_put(b, (const char *)&c, 1);
        }
    }
    return ok && sb_put(b, "\"", 1);
}

/* The text of generated tokens, characters never split. */
static bool detok_all(const meshlm_model *m, const int32_t *ids, int32_t n, strbuf *out) {
    meshlm_detok d = {0};
    char buf[256];
    size_t k = 0;
    for (int32_t i = 0; i < n; i++) {
        if (meshlm_detok_push(m->tok, &d, ids[i], buf, sizeof buf, &k) != MESHLM_OK || !sb_put(out, buf, k))
            return false;
    }
    return meshlm_detok_flush(&d, buf, sizeof buf, &k) == MESHLM_OK && sb_put(out, buf, k);
}

/* The prompts: every non-empty line (a trailing \r dropped), in place. */
static int32_t split_lines(char *text, size_t len, char ***lines) {
    int32_t n = 0, cap = 0;
    *lines = NULL;
    for (size_t i = 0; i < len;) {
        size_t j = i;
        while (j < len && text[j] != '\n') j++;
        size_t e = j > i && text[j - 1] == '\r' ? j - 1 : j;
        text[e] = '\0';
        if (e > i) {
            if (n == cap) {
                cap = cap ? 2 * cap : 64;
                char **grown = realloc(*lines, (size_t)cap * sizeof *grown);
                if (!grown) return -1;
                *lines = grown;
            }
            (*lines)[n++] = text + i;
        }
        i = j + 1;
    }
    return n;
}

static bool print_result(const meshlm_model *m, int32_t i, const char *prompt, const meshlm_batch_result *r) {
    strbuf b = {0}, text = {0};
    char num[256];
    bool ok = detok_all(m, r->tokens, r->n_gen, &text);
    snprintf(num, sizeof num, "{\"index\": %d, \"prompt\": ", i);
    ok = ok && sb_put(&b, num, strlen(num)) && sb_json(&b, prompt, strlen(prompt)) && sb_put(&b, ", \"text\": ", 10) &&
         sb_json(&b, text.p ? text.p : "", text.n);
    snprintf(num, sizeof num,
             ", \"n_prompt\": %d, \"n_gen\": %d, \"finish_reason\": \"%s\", \"timings\": {\"prompt_ms\": %.3f, "
             "\"gen_ms\": %.3f, \"tokens_per_s\": %.3f}}\n",
             r->n_prompt, r->n_gen, r->finish == MESHLM_FINISH_STOP ? "stop" : "length", r->prompt_ms, r->gen_ms,
             r->gen_ms > 0 ? r->n_gen * 1e3 / r->gen_ms : 0.0);
    ok = ok && sb_put(&b, num, strlen(num));
    if (ok) fputs(b.p, stdout);
    free(b.p);
    free(text.p);
    return ok;
}

/* --batch: every line of the file (or the -p text) as a request, served together. */
static int run_batch(const run_opts *o, const meshlm_model *m, char *text, size_t len) {
    char **lines = NULL;
    int32_t n = split_lines(text, len, &lines), *ids = NULL, left = 1;
    meshlm_batch *b = NULL;
    int rc = 1;
    if (n < 0) {
        fprintf(stderr, "meshlm run: out of memory\n");
        return 1;
    }
    meshlm_batch_params bp = o->bp;
    bp.n_ctx = o->sp.n_ctx;
    bp.n_threads = o->sp.n_threads;
    bp.mesh = o->sp.mesh;
    bp.topology = o->sp.topology;
    if (meshlm_batch_create(m, &bp, &b) != MESHLM_OK) goto fail;
    int32_t n_pred = o->n_predict > INT32_MAX ? INT32_MAX : (int32_t)o->n_predict, cap = 0, id;
    for (int32_t i = 0; i < n; i++) {
        int32_t n_ids = 0;
        meshlm_status st = meshlm_tokenize(m, lines[i], strlen(lines[i]), true, true, ids, cap, &n_ids);
        if (st == MESHLM_ERR_RANGE) {
            free(ids);
            cap = n_ids;
            ids = malloc((size_t)cap * sizeof *ids);
            if (!ids) goto fail;
            st = meshlm_tokenize(m, lines[i], strlen(lines[i]), true, true, ids, cap, &n_ids);
        }
        if (st != MESHLM_OK) goto fail;
        if (meshlm_batch_submit(b, ids, n_ids, &o->sp.sampler, n_pred, &id) != MESHLM_OK) {
            fprintf(stderr, "meshlm run: prompt %d (line '%.40s'): %s\n", i, lines[i], meshlm_last_error());
            goto done;
        }
    }
    double t0 = now_s();
    while (left > 0)
        if (meshlm_batch_step(b, &left) != MESHLM_OK) goto fail;
    double dt = now_s() - t0;
    int64_t total = 0;
    for (int32_t i = 0; i < n; i++) {
        meshlm_batch_result r;
        if (meshlm_batch_result_get(b, i, &r) != MESHLM_OK) goto fail;
        total += r.n_gen;
        if (!print_result(m, i, lines[i], &r)) {
            fprintf(stderr, "meshlm run: out of memory\n");
            goto done;
        }
    }
    fflush(stdout);
    if (!o->quiet)
        fprintf(stderr, "meshlm run: %d prompts, %lld tokens generated in %.1f ms (%.2f tokens/s aggregate)\n", n,
                (long long)total, dt * 1e3, dt > 0 ? (double)total / dt : 0.0);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "meshlm run: %s\n", meshlm_last_error());
done:
    free(ids);
    free(lines);
    meshlm_batch_free(b);
    return rc;
}

static int run_model(const run_opts *o, char *text, size_t len) {
    double t0 = now_s();
    meshlm_model *m = NULL;
    meshlm_session *s = NULL;
    int32_t *ids = NULL;
    int rc = 1;
    meshlm_opts opts;
    if (meshlm_opts_make(o->sp.opt, o->sp.opt_set, &opts) != MESHLM_OK) goto fail;
    if (meshlm_model_load(o->model, &m) != MESHLM_OK) goto fail;
    if (meshlm_model_prepare(m, o->sp.opt, o->sp.opt_set) != MESHLM_OK) goto fail;
    if (o->prefetch && !opts.prefetch && meshlm_model_prefetch(m) != MESHLM_OK) goto fail;
    if (!o->quiet) {
        fprintf(stderr, "meshlm run: loaded %s (%s, %d layers, %d embd, vocab %d) in %.2f s\n", o->model,
                meshlm_model_arch(m), m->hp.n_layer, m->hp.n_embd, m->hp.n_vocab, now_s() - t0);
        char desc[512];
        meshlm_opts_describe(&opts, desc, sizeof desc);
        fprintf(stderr, "meshlm run: options %s\n", desc);
        if (o->sp.mesh)
            fprintf(stderr, "meshlm run: mesh %s, topology %s, transport %s\n", o->sp.mesh,
                    o->sp.topology ? o->sp.topology : opts.ring ? "ring" : "linear",
                    o->sp.transport ? o->sp.transport : "threads");
    }
    if (o->batch) {
        rc = run_batch(o, m, text, len);
        goto done;
    }
    int32_t n_ids = 0;
    meshlm_status st = meshlm_tokenize(m, text, len, true, true, NULL, 0, &n_ids);
    if (st != MESHLM_OK && st != MESHLM_ERR_RANGE) goto fail;
    ids = malloc((size_t)(n_ids > 0 ? n_ids : 1) * sizeof *ids);
    if (!ids || meshlm_tokenize(m, text, len, true, true, ids, n_ids, &n_ids) != MESHLM_OK) goto fail;
    if (n_ids == 0) {
        fprintf(stderr, "meshlm run: the prompt is empty and the model adds no BOS token: nothing to continue\n");
        goto done;
    }
    if (meshlm_session_create(m, &o->sp, &s) != MESHLM_OK) goto fail;
    int32_t n_ctx = meshlm_session_n_ctx(s);
    if (n_ids >= n_ctx) {
        fprintf(stderr, "meshlm run: the prompt has %d tokens; the context holds %d (raise -c)\n", n_ids, n_ctx);
        goto done;
    }
    gen_stats gs = {0};
    if (generate(m, s, ids, n_ids, o->n_predict, n_ctx, &gs) != 0) goto fail;
    if (!o->quiet)
        fprintf(stderr, "meshlm run: prompt %d tokens in %.1f ms (%.2f tokens/s); generation %d tokens in %.1f ms (%.2f tokens/s)\n",
            gs.n_prompt, gs.t_prompt * 1e3, gs.t_prompt > 0 ? gs.n_prompt / gs.t_prompt : 0.0, gs.n_gen,
            gs.t_gen * 1e3, gs.t_gen > 0 ? gs.n_gen / gs.t_gen : 0.0);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "meshlm run: %s\n", meshlm_last_error());
done:
    free(ids);
    meshlm_session_free(s);
    meshlm_model_free(m);
    return rc;
}

int meshlm_cmd_run(int argc, char **argv) {
    run_opts o = {.n_predict = -1, .sp = meshlm_session_defaults(), .bp = meshlm_batch_defaults()};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            run_usage(stdout);
            return 0;
        }
        int r = parse_opt(argc, argv, &i, &o);
        if (r < 0) return 2;
        if (r == 0) {
            fprintf(stderr, "meshlm run: unknown option '%s'\n", argv[i]);
            run_usage(stderr);
            return 2;
        }
    }
    if (!o.prompt == !o.prompt_file) {
        fprintf(stderr, "meshlm run: give exactly one of -p TEXT or -f FILE\n");
        return 2;
    }
    if (o.output && !o.batch) {
        fprintf(stderr, "meshlm run: -o jsonl goes with --batch N\n");
        return 2;
    }
    o.bp.transport = o.sp.transport;
    int rank = 0, size = 1;
    bool mpi = o.sp.transport && !strcmp(o.sp.transport, "mpi");
    if (mpi) {
        if (!o.model) {
            fprintf(stderr, "meshlm run: --transport mpi needs -m FILE (every rank loads the same file)\n");
            return 2;
        }
        if (meshlm_mpi_start(&argc, &argv, &rank, &size) != MESHLM_OK) {
            fprintf(stderr, "meshlm run: %s\n", meshlm_last_error());
            return 1;
        }
        /* Every rank samples the same tokens; one copy of the text is enough. */
        o.quiet = rank != 0;
        if (o.quiet && !freopen("/dev/null", "w", stdout)) {
            fprintf(stderr, "meshlm run: rank %d: cannot silence stdout\n", rank);
            return 1;
        }
    }
    if (!o.model && !(o.model = default_model())) return 1;
    char *owned = NULL;
    size_t len = 0;
    if (o.prompt_file && !meshlm_arg_read_file("run", o.prompt_file, &owned, &len)) return 1;
    if (!owned) {
        /* run_model may cut the text into lines in place: give it a copy of -p too. */
        len = strlen(o.prompt);
        if (!(owned = strdup(o.prompt))) return 1;
    }
    int rc = run_model(&o, owned, len);
    if (mpi && rc == 0) meshlm_mpi_stop();
    free(owned);
    return rc;
}
