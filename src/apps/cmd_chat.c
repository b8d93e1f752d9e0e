/* meshlm chat: a conversation in the terminal. Each turn renders the whole conversation
 * with the model's chat template and evaluates only the tokens the session does not
 * already hold, so a long conversation costs its new tokens, not its length. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "apps/args.h"
#include "apps/commands.h"
#include "apps/run_opts.h"
#include "apps/stream.h"
#include "mesh/mesh.h"
#include "model/model.h"

typedef struct chat {
    const run_opts *o;
    meshlm_model *m;
    meshlm_session *s;
    meshlm_chat_template *tmpl;
    meshlm_stream out;
    meshlm_chat_message *msgs; /* roles and contents owned */
    size_t n_msgs, cap_msgs, n_keep; /* n_keep: the system message /clear keeps */
    int32_t *ids, cap_ids;
    char *reply;
    size_t n_reply;
    bool tty;
    int turn;
} chat;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static bool push_msg(chat *c, const char *role, const char *content, size_t len) {
    if (c->n_msgs == c->cap_msgs) {
        size_t cap = c->cap_msgs ? 2 * c->cap_msgs : 16;
        meshlm_chat_message *grown = realloc(c->msgs, cap * sizeof *grown);
        if (!grown) return false;
        c->msgs = grown;
        c->cap_msgs = cap;
    }
    char *r = strdup(role), *t = strndup(content, len);
    if (!r || !t) {
        free(r);
        free(t);
        return false;
    }
    c->msgs[c->n_msgs++] = (meshlm_chat_message){r, t};
    return true;
}

static void pop_msgs(chat *c, size_t keep) {
    while (c->n_msgs > keep) {
        c->n_msgs--;
        free((char *)c->msgs[c->n_msgs].role);
        free((char *)c->msgs[c->n_msgs].content);
    }
}

/* The next input line without its newline, or NULL at end of input (or Ctrl-C while
 * waiting). Under MPI rank 0 reads and every rank gets the same line. */
static char *read_line(chat *c) {
    char *line = NULL;
    size_t cap = 0;
    int64_t n = -1;
    if (c->o->rank == 0) {
        if (c->tty) fputs("> ", stderr);
        ssize_t k = getline(&line, &cap, stdin);
        n = k;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
    }
    if (c->o->mpi) {
        if (meshlm_mpi_bcast(&n, sizeof n) != MESHLM_OK) n = -1;
        if (n >= 0 && c->o->rank != 0 && !(line = calloc((size_t)n + 1, 1))) n = -1;
        if (n >= 0 && meshlm_mpi_bcast(line, (size_t)n) != MESHLM_OK) n = -1;
    }
    if (n < 0) {
        free(line);
        return NULL;
    }
    return line;
}

/* The conversation as tokens, with the BOS the model expects when its template does not
 * write one; control tokens are parsed from the rendered markup. */
static int32_t render_tokens(chat *c) {
    char *text = NULL;
    size_t len = 0;
    if (meshlm_chat_render(c->tmpl, c->msgs, c->n_msgs, true, &text, &len) != MESHLM_OK) return -1;
    int32_t n = 0, off = meshlm_tokenizer_add_bos(c->m->tok) ? 1 : 0;
    meshlm_status st = meshlm_tokenize(c->m, text, len, false, true, c->ids + off, c->cap_ids - off, &n);
    if (st == MESHLM_ERR_RANGE) {
        int32_t *grown = realloc(c->ids, (size_t)(n + off) * sizeof *grown);
        if (grown) {
            c->ids = grown;
            c->cap_ids = n + off;
            st = meshlm_tokenize(c->m, text, len, false, true, c->ids + off, c->cap_ids - off, &n);
        }
    }
    meshlm_free(text);
    if (st != MESHLM_OK) return -1;
    int32_t bos = meshlm_token_bos(c->m);
    if (!off || bos < 0 || (n > 0 && c->ids[off] == bos)) {
        memmove(c->ids, c->ids + off, (size_t)n * sizeof *c->ids);
        return n;
    }
    c->ids[0] = bos;
    return n + 1;
}

static bool take_reply(chat *c) {
    char *grown = realloc(c->reply, c->n_reply + c->out.n_out + 1);
    if (!grown) return false;
    c->reply = grown;
    memcpy(c->reply + c->n_reply, c->out.out, c->out.n_out);
    c->n_reply += c->out.n_out;
    c->reply[c->n_reply] = '\0';
    fwrite(c->out.out, 1, c->out.n_out, stdout);
    fflush(stdout);
    return true;
}

/* Streams the assistant's reply to the current logits; returns the tokens generated. */
static int32_t reply(chat *c) {
    const run_opts *o = c->o;
    int32_t n_gen = 0, n_ctx = meshlm_session_n_ctx(c->s), tok;
    c->n_reply = 0;
    while (o->n_predict < 0 || n_gen < o->n_predict) {
        if (meshlm_run_interrupted()) break;
        if (meshlm_session_sample(c->s, &tok) != MESHLM_OK) return -1;
        if (meshlm_token_is_eog(c->m, tok) && !o->bp.ignore_eog) break;
        if (meshlm_stream_push(&c->out, tok) != MESHLM_OK || !take_reply(c)) return -1;
        n_gen++;
        if (c->out.stopped) break;
        if (meshlm_session_pos(c->s) >= n_ctx) {
            fprintf(stderr, "\nmeshlm chat: context full (%d tokens): /clear to start over, or raise -c\n", n_ctx);
            break;
        }
        if (meshlm_session_eval(c->s, &tok, 1) != MESHLM_OK) return -1;
    }
    if (meshlm_stream_end(&c->out) != MESHLM_OK || !take_reply(c)) return -1;
    fputc('\n', stdout);
    fflush(stdout);
    return n_gen;
}

/* One user turn: render, evaluate what is new, stream the reply and keep it in the
 * conversation. Returns 0, or -1 on an error that ends the chat. */
static int turn(chat *c, const char *user) {
    size_t before = c->n_msgs;
    if (!push_msg(c, "user", user, strlen(user))) return -1;
    int32_t n = render_tokens(c), n_ctx = meshlm_session_n_ctx(c->s), n_eval;
    if (n < 0) {
        fprintf(stderr, "meshlm chat: %s\n", meshlm_last_error());
        pop_msgs(c, before);
        return 0;
    }
    if (n >= n_ctx) {
        fprintf(stderr, "meshlm chat: the conversation is %d tokens; the context holds %d: /clear to start over, or "
                        "raise -c\n", n, n_ctx);
        pop_msgs(c, before);
        return 0;
    }
    double t0 = now_s();
    if (meshlm_session_sync(c->s, c->ids, n, &n_eval) != MESHLM_OK) return -1;
    double t1 = now_s();
    int32_t n_gen = reply(c);
    if (n_gen < 0 || !push_msg(c, "assistant", c->reply ? c->reply : "", c->n_reply)) return -1;
    double t2 = now_s();
    c->turn++;
    if (!c->tty && !c->o->quiet)
        fprintf(stderr, "meshlm chat: turn %d: %d prompt tokens, %d reused, %d evaluated in %.1f ms; %d generated "
                        "in %.1f ms (%.2f tokens/s)\n", c->turn, n, n - n_eval, n_eval, (t1 - t0) * 1e3, n_gen,
                (t2 - t1) * 1e3, t2 > t1 ? n_gen / (t2 - t1) : 0.0);
    if (meshlm_run_interrupted()) {
        fprintf(stderr, "\nmeshlm chat: reply stopped\n");
        meshlm_run_clear_interrupt();
    }
    return 0;
}

/* The conversation loop: -p as the first turn, then a turn per line until /exit or the
 * end of input. */
static int converse(chat *c) {
    if (c->o->prompt && turn(c, c->o->prompt) != 0) return -1;
    for (;;) {
        char *line = read_line(c);
        if (!line) return 0;
        int rc = 0;
        if (!strcmp(line, "/exit") || !strcmp(line, "/quit")) {
            free(line);
            return 0;
        }
        if (!strcmp(line, "/clear")) {
            pop_msgs(c, c->n_keep);
            if (!c->o->quiet) fprintf(stderr, "meshlm chat: conversation cleared\n");
        } else if (line[0]) {
            rc = turn(c, line);
        }
        free(line);
        if (rc) return rc;
    }
}

/* The template: --chat-template FILE, the model's, or ChatML (said on stderr). */
static int load_template(chat *c) {
    char *text = NULL;
    size_t len;
    if (c->o->template_file && !meshlm_arg_read_file(c->o->cmd, c->o->template_file, &text, &len)) return -1;
    int rc = meshlm_chat_template_from_model(c->m, text, &c->tmpl);
    free(text);
    if (rc) {
        fprintf(stderr, "meshlm %s: %s%s%s\n", c->o->cmd, c->o->template_file ? c->o->template_file : "the model's ",
                c->o->template_file ? ": " : "", meshlm_last_error());
        return -1;
    }
    if (meshlm_chat_template_is_fallback(c->tmpl) && !c->o->quiet)
        fprintf(stderr, "meshlm %s: the model has no chat template: using ChatML (<|im_start|>role ... "
                        "<|im_end|>); --chat-template FILE gives another\n", c->o->cmd);
    return 0;
}

int meshlm_chat_main(run_opts *o) {
    chat c = {.o = o, .tty = isatty(STDIN_FILENO) != 0, .cap_ids = 1024};
    int rc = 1;
    if (!(c.ids = malloc((size_t)c.cap_ids * sizeof *c.ids))) return 1;
    if (!(c.m = meshlm_run_load(o)) || load_template(&c) != 0) goto done;
    if (meshlm_session_create(c.m, &o->sp, &c.s) != MESHLM_OK ||
        meshlm_stream_init(&c.out, c.m, o->special, o->stops, o->n_stops) != MESHLM_OK) {
        fprintf(stderr, "meshlm %s: %s\n", o->cmd, meshlm_last_error());
        goto done;
    }
    if (o->system && !push_msg(&c, "system", o->system, strlen(o->system))) goto done;
    c.n_keep = c.n_msgs;
    if (c.tty && !o->quiet)
        fprintf(stderr, "meshlm %s: type a message; /clear starts over, /exit quits, Ctrl-C stops a reply\n",
                o->cmd);
    meshlm_run_catch_sigint();
    rc = converse(&c) == 0 ? 0 : 1;
    if (rc) fprintf(stderr, "meshlm %s: %s\n", o->cmd, meshlm_last_error());
done:
    pop_msgs(&c, 0);
    free(c.msgs);
    free(c.ids);
    free(c.reply);
    meshlm_stream_free(&c.out);
    meshlm_session_free(c.s);
    meshlm_chat_template_free(c.tmpl);
    meshlm_model_free(c.m);
    return rc;
}

int meshlm_cmd_chat(int argc, char **argv) {
    run_opts o;
    int rc = meshlm_run_parse(argc, argv, "chat", &o);
    if (rc) return rc == 1 ? 0 : rc;
    if ((rc = meshlm_run_start_mpi(&o, &argc, &argv))) return rc;
    rc = meshlm_chat_main(&o);
    if (o.mpi && rc == 0) meshlm_mpi_stop();
    return rc;
}
