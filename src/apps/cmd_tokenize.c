/* meshlm tokenize: the token ids of a text under a model file's tokenizer. Needs only
 * the vocabulary, so vocab-only GGUF files work too. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps/args.h"
#include "apps/commands.h"
#include "io/gguf.h"
#include "meshlm.h"
#include "tokenizer/tokenizer.h"

static const char usage[] =
    "usage: meshlm tokenize -m FILE (-p TEXT | -f FILE) [--no-special] [--no-parse-special]\n"
    "\n"
    "Prints the token ids of the text on one line, separated by spaces.\n"
    "  -m, --model FILE      GGUF model or vocabulary file\n"
    "  -p, --prompt TEXT     the text\n"
    "  -f, --file FILE       read the text from FILE, bytes exactly as stored\n"
    "  --no-special          do not add BOS/EOS (default: as the model's flags say)\n"
    "  --no-parse-special    read control-token texts such as <|eot_id|> as plain text\n";

typedef struct tok_opts {
    const char *model, *prompt, *file;
    bool add_special, parse_special;
} tok_opts;

/* Returns 0 to go on, or the exit code (help: 0 printed, errors: 2). */
static int parse_args(int argc, char **argv, tok_opts *o, bool *done) {
    *done = false;
    for (int i = 1; i < argc; i++) {
        bool missing = false;
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(usage, stdout);
            *done = true;
            return 0;
        }
        if (meshlm_arg_take(argc, argv, &i, "-m", "--model", &o->model, &missing) ||
            meshlm_arg_take(argc, argv, &i, "-p", "--prompt", &o->prompt, &missing) ||
            meshlm_arg_take(argc, argv, &i, "-f", "--file", &o->file, &missing)) {
            if (missing) {
                fprintf(stderr, "meshlm tokenize: %s needs a value\n", argv[i]);
                return 2;
            }
            continue;
        }
        if (!strcmp(argv[i], "--no-special")) o->add_special = false;
        else if (!strcmp(argv[i], "--no-parse-special")) o->parse_special = false;
        else {
            fprintf(stderr, "meshlm tokenize: unknown option '%s'\n%s", argv[i], usage);
            return 2;
        }
    }
    if (!o->model || (!o->prompt == !o->file)) {
        fprintf(stderr, "meshlm tokenize: need -m and exactly one of -p or -f\n%s", usage);
        return 2;
    }
    return 0;
}

static int print_ids(const meshlm_tokenizer *t, const char *text, size_t len, const tok_opts *o) {
    int32_t cap = (int32_t)(len < 1u << 29 ? len : 1u << 29) + 16, n = 0;
    int32_t *ids = malloc((size_t)cap * sizeof *ids);
    int rc = ids ? meshlm_tokenizer_encode(t, text, len, o->add_special, o->parse_special, ids,
                                           cap, &n)
                 : MESHLM_ERR_NOMEM;
    if (rc == MESHLM_ERR_RANGE) {
        free(ids);
        cap = n;
        ids = malloc((size_t)cap * sizeof *ids);
        rc = ids ? meshlm_tokenizer_encode(t, text, len, o->add_special, o->parse_special, ids,
                                           cap, &n)
                 : MESHLM_ERR_NOMEM;
    }
    if (rc) {
        fprintf(stderr, "meshlm tokenize: %s\n",
                rc == MESHLM_ERR_NOMEM ? "out of memory" : meshlm_last_error());
        free(ids);
        return 1;
    }
    for (int32_t i = 0; i < n; i++) printf(i ? " %d" : "%d", (int)ids[i]);
    putchar('\n');
    free(ids);
    return fflush(stdout) == 0 ? 0 : 1;
}

int meshlm_cmd_tokenize(int argc, char **argv) {
    tok_opts o = {.add_special = true, .parse_special = true};
    bool done;
    int rc = parse_args(argc, argv, &o, &done);
    if (rc || done) return rc;

    char *owned = NULL;
    const char *text = o.prompt;
    size_t len = o.prompt ? strlen(o.prompt) : 0;
    if (o.file && !meshlm_arg_read_file("tokenize", o.file, &owned, &len)) return 1;
    if (o.file) text = owned;

    meshlm_gguf *g = NULL;
    meshlm_tokenizer *t = NULL;
    if (meshlm_gguf_open(o.model, &g) != MESHLM_OK || meshlm_tokenizer_from_gguf(g, &t) != MESHLM_OK) {
        fprintf(stderr, "meshlm tokenize: %s\n", meshlm_last_error());
        rc = 1;
    } else {
        rc = print_ids(t, text, len, &o);
    }
    meshlm_tokenizer_free(t);
    meshlm_gguf_close(g);
    free(owned);
    return rc;
}
