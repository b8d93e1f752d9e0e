/* meshlm run: generate a continuation of a prompt, or of many (--batch). The continuation
 * goes to stdout; load information and timings go to stderr. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "apps/args.h"
#include "apps/commands.h"
#include "apps/run_opts.h"
#include "apps/stream.h"
#include "meshlm.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct gen_stats {
    int32_t n_prompt, n_gen;
    double t_prompt, t_gen;
} gen_stats;

/* Samples until end of generation, a stop string, n_predict tokens, a full context or
 * Ctrl-C, writing the text as it comes; ends the line either way. */
static int generate(const run_opts *o, const meshlm_model *m, meshlm_session *s, meshlm_stream *out,
                    const int32_t *prompt, int32_t n_prompt, gen_stats *st) {
    double t0 = now_s();
    if (meshlm_session_eval(s, prompt, n_prompt) != MESHLM_OK) return -1;
    st->n_prompt = n_prompt;
    st->t_prompt = now_s() - t0;
    t0 = now_s();
    int32_t n_ctx = meshlm_session_n_ctx(s);
    while ((o->n_predict < 0 || st->n_gen < o->n_predict) && !meshlm_run_interrupted()) {
        int32_t tok;
        if (meshlm_session_sample(s, &tok) != MESHLM_OK) return -1;
        if (!o->bp.ignore_eog && meshlm_token_is_eog(m, tok)) break;
        if (meshlm_stream_push(out, tok) != MESHLM_OK) return -1;
        fwrite(out->out, 1, out->n_out, stdout);
        fflush(stdout);
        st->n_gen++;
        if (out->stopped) break;
        if (meshlm_session_pos(s) >= n_ctx) {
            fprintf(stderr, "meshlm run: context full (%d tokens): stopping\n", n_ctx);
            break;
        }
        if (meshlm_session_eval(s, &tok, 1) != MESHLM_OK) return -1;
    }
    st->t_gen = now_s() - t0;
    if (meshlm_stream_end(out) != MESHLM_OK) return -1;
    fwrite(out->out, 1, out->n_out, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    return 0;
}

/* Tokens of text into *ids (grown as needed); the count, or -1 after recording why. */
static int32_t tokenize(const meshlm_model *m, const char *text, size_t len, int32_t **ids, int32_t *cap) {
    int32_t n = 0;
    meshlm_status st = meshlm_tokenize(m, text, len, true, true, *ids, *cap, &n);
    if (st == MESHLM_ERR_RANGE) {
        int32_t *grown = realloc(*ids, (size_t)n * sizeof *grown);
        if (!grown) return -1;
        *ids = grown;
        *cap = n;
        st = meshlm_tokenize(m, text, len, true, true, *ids, *cap, &n);
    }
    return st == MESHLM_OK ? n : -1;
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

/* One prompt of a batch as it streams: its text so far and whether a stop string ended it. */
typedef struct pending {
    meshlm_stream stream;
    char *text;
    size_t n_text;
    int32_t n_seen; /* generated tokens already passed to the stream */
    bool stopped;
} pending;

static bool take_text(pending *p) {
    char *grown = realloc(p->text, p->n_text + p->stream.n_out + 1);
    if (!grown) return false;
    p->text = grown;
    memcpy(p->text + p->n_text, p->stream.out, p->stream.n_out);
    p->n_text += p->stream.n_out;
    p->text[p->n_text] = '\0';
    return true;
}

/* Feeds the tokens a request generated since the last look into its stream; a stop string
 * cancels it, so its pages serve others at once. */
static int follow(meshlm_batch *b, int32_t id, pending *p) {
    meshlm_batch_result r;
    if (meshlm_batch_result_get(b, id, &r) != MESHLM_OK) return -1;
    for (; p->n_seen < r.n_gen && !p->stopped; p->n_seen++) {
        if (meshlm_stream_push(&p->stream, r.tokens[p->n_seen]) != MESHLM_OK || !take_text(p)) return -1;
        p->stopped = p->stream.stopped;
    }
    if (p->stopped && !r.finish && meshlm_batch_cancel(b, id) != MESHLM_OK) return -1;
    return 0;
}

static double ms3(double ms) { return round(ms * 1e3) / 1e3; }

/* The JSON line of a finished prompt, then its record is released. */
static int print_result(meshlm_batch *b, int32_t id, const char *prompt, pending *p) {
    meshlm_batch_result r;
    if (meshlm_batch_result_get(b, id, &r) != MESHLM_OK) return -1;
    if (!p->stopped && (meshlm_stream_end(&p->stream) != MESHLM_OK || !take_text(p))) return -1;
    bool stop = p->stopped || r.finish == MESHLM_FINISH_STOP;
    json_t *line = json_pack("{s:i, s:s, s:s%, s:i, s:i, s:s, s:{s:f, s:f, s:f}}", "index", id, "prompt", prompt,
                             "text", p->text ? p->text : "", p->n_text, "n_prompt", r.n_prompt, "n_gen", r.n_gen,
                             "finish_reason", stop ? "stop" : "length", "timings", "prompt_ms", ms3(r.prompt_ms),
                             "gen_ms", ms3(r.gen_ms), "tokens_per_s",
                             ms3(r.gen_ms > 0 ? r.n_gen * 1e3 / r.gen_ms : 0.0));
    if (!line) {
        fprintf(stderr, "meshlm run: prompt %d is not valid UTF-8 text\n", id);
        return -1;
    }
    char *s = json_dumps(line, JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
    json_decref(line);
    if (!s) return -1;
    puts(s);
    fflush(stdout);
    free(s);
    return meshlm_batch_release(b, id) == MESHLM_OK ? 0 : -1;
}

/* Submits every line as a request. */
static int submit_all(const run_opts *o, const meshlm_model *m, meshlm_batch *b, char **lines, int32_t n) {
    int32_t *ids = NULL, cap = 0, id, n_pred = o->n_predict > INT32_MAX ? INT32_MAX : (int32_t)o->n_predict;
    int rc = 0;
    for (int32_t i = 0; i < n && !rc; i++) {
        int32_t n_ids = tokenize(m, lines[i], strlen(lines[i]), &ids, &cap);
        if (n_ids < 0 || meshlm_batch_submit(b, ids, n_ids, &o->sp.sampler, n_pred, &id) != MESHLM_OK) {
            fprintf(stderr, "meshlm run: prompt %d (line '%.40s'): %s\n", i, lines[i], meshlm_last_error());
            rc = -1;
        }
    }
    free(ids);
    return rc;
}

/* Steps the batch until every prompt is printed (or Ctrl-C), printing each as soon as it
 * and all before it are done. */
static int serve(const run_opts *o, meshlm_batch *b, char **lines, int32_t n, pending *p, int64_t *total) {
    int32_t left = n, next = 0;
    while (next < n) {
        if (meshlm_run_interrupted()) return 1;
        if (left > 0 && meshlm_batch_step(b, &left) != MESHLM_OK) return -1;
        for (int32_t i = next; i < n && o->n_stops; i++)
            if (follow(b, i, &p[i]) != 0) return -1;
        meshlm_batch_result r;
        while (next < n && meshlm_batch_result_get(b, next, &r) == MESHLM_OK && r.finish) {
            if (!o->n_stops && follow(b, next, &p[next]) != 0) return -1;
            *total += r.n_gen;
            if (print_result(b, next, lines[next], &p[next]) != 0) return -1;
            next++;
        }
    }
    return 0;
}

/* --batch: every line of the file (or the -p text) as a request, served together. */
static int run_batch(const run_opts *o, const meshlm_model *m, char *text, size_t len) {
    char **lines = NULL;
    int32_t n = split_lines(text, len, &lines);
    meshlm_batch *b = NULL;
    pending *p = n > 0 ? calloc((size_t)n, sizeof *p) : NULL;
    int rc = -1;
    meshlm_batch_params bp = o->bp;
    bp.n_ctx = o->sp.n_ctx;
    bp.n_threads = o->sp.n_threads;
    bp.topology = o->sp.topology;
    for (int32_t i = 0; i < n && p; i++)
        if (meshlm_stream_init(&p[i].stream, m, o->special, o->stops, o->n_stops) != MESHLM_OK) goto done;
    if (n < 0 || (n > 0 && !p)) {
        fprintf(stderr, "meshlm run: out of memory\n");
        goto done;
    }
    if (meshlm_batch_create(m, &bp, &b) != MESHLM_OK || submit_all(o, m, b, lines, n) != 0) goto done;
    double t0 = now_s();
    int64_t total = 0;
    rc = serve(o, b, lines, n, p, &total);
    double dt = now_s() - t0;
    if (rc == 1 && !o->quiet) fprintf(stderr, "meshlm run: interrupted: the prompts not printed were not finished\n");
    if (rc >= 0 && !o->quiet)
        fprintf(stderr, "meshlm run: %d prompts, %lld tokens generated in %.1f ms (%.2f tokens/s aggregate)\n", n,
                (long long)total, dt * 1e3, dt > 0 ? (double)total / dt : 0.0);
done:
    if (rc < 0) fprintf(stderr, "meshlm run: %s\n", meshlm_last_error()[0] ? meshlm_last_error() : "out of memory");
    for (int32_t i = 0; i < n && p; i++) {
        meshlm_stream_free(&p[i].stream);
        free(p[i].text);
    }
    free(p);
    free(lines);
    meshlm_batch_free(b);
    return rc < 0 ? 1 : rc == 1 ? MESHLM_EXIT_INTERRUPTED : 0;
}

static int run_one(const run_opts *o, meshlm_model *m, const char *text, size_t len) {
    meshlm_session *s = NULL;
    meshlm_stream out = {0};
    int32_t *ids = NULL, cap = 0, n_ids = tokenize(m, text, len, &ids, &cap);
    int rc = 1;
    if (n_ids < 0) goto fail;
    if (n_ids == 0) {
        fprintf(stderr, "meshlm run: the prompt is empty and the model adds no BOS token: nothing to continue\n");
        goto done;
    }
    if (meshlm_session_create(m, &o->sp, &s) != MESHLM_OK ||
        meshlm_stream_init(&out, m, o->special, o->stops, o->n_stops) != MESHLM_OK)
        goto fail;
    if (n_ids >= meshlm_session_n_ctx(s)) {
        fprintf(stderr, "meshlm run: the prompt has %d tokens; the context holds %d (raise -c)\n", n_ids,
                meshlm_session_n_ctx(s));
        goto done;
    }
    gen_stats gs = {0};
    if (generate(o, m, s, &out, ids, n_ids, &gs) != 0) goto fail;
    if (!o->quiet)
        fprintf(stderr, "meshlm run: prompt %d tokens in %.1f ms (%.2f tokens/s); generation %d tokens in %.1f ms (%.2f tokens/s)\n",
            gs.n_prompt, gs.t_prompt * 1e3, gs.t_prompt > 0 ? gs.n_prompt / gs.t_prompt : 0.0, gs.n_gen,
            gs.t_gen * 1e3, gs.t_gen > 0 ? gs.n_gen / gs.t_gen : 0.0);
    rc = meshlm_run_interrupted() ? MESHLM_EXIT_INTERRUPTED : 0;
    goto done;
fail:
    fprintf(stderr, "meshlm run: %s\n", meshlm_last_error());
done:
    free(ids);
    meshlm_stream_free(&out);
    meshlm_session_free(s);
    return rc;
}

int meshlm_cmd_run(int argc, char **argv) {
    run_opts o;
    int rc = meshlm_run_parse(argc, argv, "run", &o);
    if (rc) return rc == 1 ? 0 : rc;
    if ((rc = meshlm_run_start_mpi(&o, &argc, &argv))) return rc;
    if (o.chat) {
        rc = meshlm_chat_main(&o);
    } else {
        char *text = NULL;
        size_t len = 0;
        meshlm_model *m = NULL;
        rc = 1;
        /* run_batch cuts the text into lines in place: -p is copied too. */
        if (o.prompt_file ? meshlm_arg_read_file("run", o.prompt_file, &text, &len)
                          : (text = strdup(o.prompt)) != NULL) {
            if (!o.prompt_file) len = strlen(text);
            if ((m = meshlm_run_load(&o))) {
                meshlm_run_catch_sigint();
                rc = o.batch ? run_batch(&o, m, text, len) : run_one(&o, m, text, len);
            }
        }
        meshlm_model_free(m);
        free(text);
    }
    if (o.mpi && rc == 0) meshlm_mpi_stop();
    return rc;
}
