/* meshlm bench-serve: a load generator for OpenAI-compatible servers in the manner of
 * `vllm bench serve`. It keeps up to --concurrency streamed requests in flight (or sends them
 * at Poisson arrivals), times each token's arrival and reports throughput and the TTFT, TPOT,
 * ITL and end-to-end latency distributions. The workloads: random token ids of an exact
 * length, one fixed prompt, or multi-turn conversations that share a system prompt (the case
 * a prefix cache is for). */
#include <curl/curl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps/args.h"
#include "apps/bench_serve_load.h"
#include "apps/bench_serve_stats.h"
#include "apps/commands.h"

enum dataset { DS_RANDOM, DS_FIXED, DS_MULTI_TURN };

static void usage(FILE *f) {
    fprintf(f,
            "usage: meshlm bench-serve --url URL [options]\n"
            "  drives an OpenAI-compatible server with streamed requests and reports throughput and\n"
            "  latency (TTFT, TPOT, ITL, end-to-end) as vllm bench serve does\n"
            "  --url URL              the server, e.g. http://127.0.0.1:8080 (required)\n"
            "  --endpoint PATH        /v1/completions (default) or /v1/chat/completions\n"
            "  --model NAME           the request's model (default: the first of GET /v1/models)\n"
            "  --api-key K            send Authorization: Bearer K\n"
            "  --concurrency N        requests in flight at once (default 1)\n"
            "  --num-prompts N        requests in all (default 10 x concurrency, at least concurrency)\n"
            "  --request-rate R       requests per second, Poisson arrivals (default inf: as slots free up)\n"
            "  --dataset D            random (default), fixed or multi-turn:\n"
            "                         random: --input-len random token ids each (random words on the\n"
            "                           chat endpoint), ids drawn from [--token-lo, --token-hi)\n"
            "                         fixed: every request sends --prompt TEXT or --prompt-file F\n"
            "                         multi-turn: --conversations of --turns user turns on the chat\n"
            "                           endpoint, a --shared-prefix system prompt, the whole history resent\n"
            "  --input-len N          prompt tokens (random) or words (chat, multi-turn turns) (default 128)\n"
            "  --output-len N         max_tokens of each request (default 128)\n"
            "  --token-lo N, --token-hi N  the random token ids' range (default 1000, 8000)\n"
            "  --prompt TEXT, --prompt-file F  the fixed dataset's prompt\n"
            "  --conversations N      multi-turn: conversations (default: the concurrency)\n"
            "  --turns N              multi-turn: user turns per conversation (default 4)\n"
            "  --shared-prefix N      multi-turn: words of the system prompt all share (default 200)\n"
            "  --no-ignore-eos        let the model end a reply early (default: ignore_eos: true)\n"
            "  --temperature F        sampling temperature (default 0)\n"
            "  --seed S               seed of the workload and the arrivals (default 0)\n"
            "  --warmup N             requests sent first and not measured (default 0)\n"
            "  --label TEXT           a name for the run, printed with the results\n"
            "  -o FORMAT              text (default) or json\n"
            "  Exit status: 0 when every request succeeded, 1 when any failed, 130 on Ctrl-C (after\n"
            "  printing what was measured).\n");
}

typedef struct bs_opts {
    const char *url, *endpoint, *model, *api_key, *dataset_name, *prompt, *prompt_file, *label, *format;
    int64_t concurrency, num_prompts, input_len, output_len, token_lo, token_hi, conversations, turns, shared_prefix,
        warmup, seed;
    double rate, temperature;
    bool no_ignore_eos, json;
    enum dataset dataset;
} bs_opts;

/* Returns 0 to go on, 1 after --help, 2 on a usage error (said on stderr). */
static int parse(int argc, char **argv, bs_opts *o) {
    *o = (bs_opts){.dataset_name = "random", .format = "text", .concurrency = 1, .input_len = 128,
                   .output_len = 128, .token_lo = 1000, .token_hi = 8000, .turns = 4, .shared_prefix = 200};
    const char *rate = NULL, *temp = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        bool missing = false;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 1;
        }
        struct { const char *flag, *alias; const char **dst; } txt[] = {
            {"--url", NULL, &o->url},          {"--endpoint", NULL, &o->endpoint},
            {"--model", NULL, &o->model},      {"--api-key", NULL, &o->api_key},
            {"--dataset", NULL, &o->dataset_name}, {"--prompt", NULL, &o->prompt},
            {"--prompt-file", NULL, &o->prompt_file}, {"--label", NULL, &o->label},
            {"-o", "--output", &o->format},    {"--request-rate", NULL, &rate},
            {"--temperature", NULL, &temp},
        };
        struct { const char *flag; int64_t lo, hi; int64_t *dst; } ints[] = {
            {"--concurrency", 1, 65536, &o->concurrency},   {"--num-prompts", 1, INT32_MAX, &o->num_prompts},
            {"--input-len", 1, 1 << 24, &o->input_len},     {"--output-len", 1, 1 << 24, &o->output_len},
            {"--token-lo", 0, INT32_MAX, &o->token_lo},     {"--token-hi", 1, INT32_MAX, &o->token_hi},
            {"--conversations", 1, 1 << 20, &o->conversations}, {"--turns", 1, 1 << 16, &o->turns},
            {"--shared-prefix", 0, 1 << 24, &o->shared_prefix}, {"--warmup", 0, INT32_MAX, &o->warmup},
            {"--seed", 0, INT64_MAX, &o->seed},
        };
        int done = 0;
        for (size_t k = 0; k < sizeof txt / sizeof txt[0] && !done; k++)
            if (meshlm_arg_take(argc, argv, &i, txt[k].flag, txt[k].alias, &v, &missing)) {
                if (!missing) *txt[k].dst = v;
                done = missing ? -1 : 1;
            }
        for (size_t k = 0; k < sizeof ints / sizeof ints[0] && !done; k++)
            if (meshlm_arg_take(argc, argv, &i, ints[k].flag, NULL, &v, &missing))
                done = !missing && meshlm_arg_int("bench-serve", ints[k].flag, v, ints[k].lo, ints[k].hi, ints[k].dst)
                           ? 1 : -1;
        if (!done && !strcmp(a, "--no-ignore-eos")) {
            o->no_ignore_eos = true;
            done = 1;
        }
        if (!done) {
            fprintf(stderr, "meshlm bench-serve: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
        if (done < 0) {
            if (missing) fprintf(stderr, "meshlm bench-serve: %s needs a value\n", a);
            return 2;
        }
    }
    if (rate && strcmp(rate, "inf") != 0 && !meshlm_arg_float("bench-serve", "--request-rate", rate, 1e-6, 1e9, &o->rate))
        return 2;
    if (temp && !meshlm_arg_float("bench-serve", "--temperature", temp, 0, 100, &o->temperature)) return 2;
    const char *err = NULL;
    if (!strcmp(o->dataset_name, "random")) o->dataset = DS_RANDOM;
    else if (!strcmp(o->dataset_name, "fixed")) o->dataset = DS_FIXED;
    else if (!strcmp(o->dataset_name, "multi-turn")) o->dataset = DS_MULTI_TURN;
    else err = "--dataset: expected random, fixed or multi-turn";
    bool chat_endpoint = o->endpoint && strstr(o->endpoint, "chat/completions");
    if (!o->url) err = "--url URL is required";
    else if (strncmp(o->url, "http://", 7) != 0 && strncmp(o->url, "https://", 8) != 0)
        err = "--url: expected an http:// or https:// URL";
    else if (o->endpoint && o->endpoint[0] != '/') err = "--endpoint: expected a path starting with '/'";
    else if (strcmp(o->format, "text") != 0 && strcmp(o->format, "json") != 0) err = "-o: expected text or json";
    else if (o->token_lo >= o->token_hi) err = "--token-lo must be below --token-hi";
    else if (o->prompt && o->prompt_file) err = "--prompt and --prompt-file exclude each other";
    else if (o->dataset == DS_FIXED && !o->prompt && !o->prompt_file)
        err = "--dataset fixed needs --prompt TEXT or --prompt-file F";
    else if (o->dataset != DS_FIXED && (o->prompt || o->prompt_file))
        err = "--prompt and --prompt-file are for --dataset fixed";
    else if (o->dataset == DS_MULTI_TURN && o->num_prompts)
        err = "--num-prompts does not apply to --dataset multi-turn (it sends --conversations x --turns)";
    else if (o->dataset == DS_MULTI_TURN && o->endpoint && !chat_endpoint)
        err = "--dataset multi-turn runs on a chat endpoint (/v1/chat/completions)";
    else if (o->num_prompts && o->num_prompts < o->concurrency)
        err = "--num-prompts must be at least --concurrency";
    if (err) {
        fprintf(stderr, "meshlm bench-serve: %s\n", err);
        return 2;
    }
    if (!o->endpoint) o->endpoint = o->dataset == DS_MULTI_TURN ? "/v1/chat/completions" : "/v1/completions";
    if (!o->num_prompts) o->num_prompts = 10 * o->concurrency;
    if (!o->conversations) o->conversations = o->concurrency;
    o->json = !strcmp(o->format, "json");
    return 0;
}

/* Words for prompts on endpoints that take text: plain, common, one token or two in most
 * vocabularies. */
static const char *const words[] = {
    "the",    "of",     "and",   "to",     "in",    "is",     "that",  "for",    "it",     "as",    "with",
    "was",    "on",     "be",    "by",     "this",  "are",    "from",  "at",     "or",     "an",    "which",
    "one",    "have",   "had",   "not",    "but",   "what",   "all",   "were",   "when",   "we",    "there",
    "can",    "time",   "more",  "about",  "many",  "then",   "them",  "these",  "some",   "would", "make",
    "like",   "into",   "water", "long",   "little", "very",  "after", "words",  "called", "just",  "where",
    "most",   "know",   "river", "house",  "light", "world",  "small", "number", "people", "city",  "story",
    "garden", "window", "music", "stone",  "paper", "forest", "bread", "morning", "road",  "summer", "letter",
};

/* n random words, space-separated (malloc'd). */
static char *random_words(uint64_t *rng, int64_t n) {
    size_t longest = 0, n_words = sizeof words / sizeof words[0];
    for (size_t i = 0; i < n_words; i++)
        if (strlen(words[i]) > longest) longest = strlen(words[i]);
    char *text = malloc((size_t)n * (longest + 1) + 1), *p = text;
    if (!text) return NULL;
    *p = '\0';
    for (int64_t i = 0; i < n; i++) {
        const char *w = words[meshlm_bs_rand(rng) % n_words];
        size_t len = strlen(w);
        if (i) *p++ = ' ';
        memcpy(p, w, len + 1);
        p += len;
    }
    return text;
}

/* A conversation of the multi-turn workload. */
typedef struct conv {
    json_t *messages; /* the history so far: system, then user and assistant turns */
    uint64_t rng;     /* its own stream: the text does not depend on the order turns finish in */
    int64_t turn;     /* turns sent */
    bool in_flight;
} conv;

/* What to send next and what to do with the results: one for the warm-up, one for the run. */
typedef struct workload {
    const bs_opts *o;
    const char *model;
    bool chat;
    uint64_t rng;
    int64_t total, issued;
    const char *fixed;       /* the fixed dataset's prompt */
    conv *convs;             /* multi-turn: n_convs conversations of turns turns */
    int64_t n_convs, turns;
    char *system;            /* multi-turn: the shared system prompt */
    meshlm_bs_report *rep;   /* NULL for the warm-up */
    int64_t failed;
} workload;

/* Sets key to value (taken); false when either is missing. */
static bool put(json_t *o, const char *key, json_t *value) { return value && json_object_set_new(o, key, value) == 0; }

/* The request's JSON around input (taken): the prompt, or the messages. */
static char *request_body(const workload *w, json_t *input) {
    const bs_opts *o = w->o;
    json_t *req = json_object();
    if (!req) {
        json_decref(input);
        return NULL;
    }
    bool ok = put(req, w->chat ? "messages" : "prompt", input) && put(req, "model", json_string(w->model)) &&
              put(req, "max_tokens", json_integer(o->output_len)) &&
              put(req, "temperature", json_real(o->temperature)) && put(req, "stream", json_true()) &&
              put(req, "stream_options", json_pack("{s:b}", "include_usage", 1)) &&
              (o->no_ignore_eos || put(req, "ignore_eos", json_true()));
    char *body = ok ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    return body;
}

/* [{"role": role, "content": text}] appended to messages; text is taken. */
static bool add_message(json_t *messages, const char *role, char *text, size_t len) {
    json_t *content = text ? json_stringn(text, len) : NULL;
    free(text);
    json_t *m = content ? json_pack("{s:s, s:o}", "role", role, "content", content) : NULL;
    return m && json_array_append_new(messages, m) == 0;
}

static json_t *single_turn_input(workload *w) {
    const bs_opts *o = w->o;
    if (w->chat || o->dataset == DS_FIXED) {
        char *text = o->dataset == DS_FIXED ? strdup(w->fixed) : random_words(&w->rng, o->input_len);
        if (!w->chat) {
            json_t *s = text ? json_string(text) : NULL;
            free(text);
            return s;
        }
        json_t *messages = json_array();
        if (messages && add_message(messages, "user", text, text ? strlen(text) : 0)) return messages;
        if (!messages) free(text);
        json_decref(messages);
        return NULL;
    }
    json_t *ids = json_array();
    for (int64_t i = 0; ids && i < o->input_len; i++) {
        uint64_t id = (uint64_t)o->token_lo + meshlm_bs_rand(&w->rng) % (uint64_t)(o->token_hi - o->token_lo);
        if (json_array_append_new(ids, json_integer((json_int_t)id)) < 0) {
            json_decref(ids);
            return NULL;
        }
    }
    return ids;
}

/* The next turn of a conversation: one already under way comes first, so that at most
 * --concurrency conversations are open at once. */
static int next_turn(workload *w, char **body, void **tag) {
    conv *pick = NULL, *fresh = NULL;
    bool more = false;
    for (int64_t i = 0; i < w->n_convs && !pick; i++) {
        conv *c = &w->convs[i];
        if (c->turn < w->turns) more = true;
        if (c->in_flight || c->turn >= w->turns) continue;
        if (c->turn > 0) pick = c;
        else if (!fresh) fresh = c;
    }
    if (!pick) pick = fresh;
    if (!pick) return more ? 0 : -1;
    if (!pick->messages) {
        pick->messages = json_array();
        if (!pick->messages || !add_message(pick->messages, "system", strdup(w->system), strlen(w->system)))
            return -2;
    }
    char *text = random_words(&pick->rng, w->o->input_len);
    if (!add_message(pick->messages, "user", text, text ? strlen(text) : 0)) return -2;
    if (!(*body = request_body(w, json_incref(pick->messages)))) return -2;
    pick->turn++;
    pick->in_flight = true;
    *tag = pick;
    return 1;
}

static int next_request(void *ctx, char **body, void **tag) {
    workload *w = ctx;
    int r;
    if (w->convs) r = next_turn(w, body, tag);
    else if (w->issued >= w->total) r = -1;
    else {
        json_t *input = single_turn_input(w);
        *body = input ? request_body(w, input) : NULL;
        *tag = NULL;
        r = *body ? 1 : -2;
    }
    if (r == 1) w->issued++;
    if (r == -2) fprintf(stderr, "meshlm bench-serve: out of memory\n");
    return r;
}

static bool request_done(void *ctx, void *tag, const meshlm_bs_result *r) {
    workload *w = ctx;
    conv *c = tag;
    if (!r->ok && !w->failed++)
        fprintf(stderr, "meshlm bench-serve: %srequest failed: %s\n", w->rep ? "" : "warm-up ", r->error);
    if (c) {
        c->in_flight = false;
        /* Without an answer the conversation cannot go on as planned: it ends here. */
        if (!r->ok) c->turn = w->turns;
        else if (!add_message(c->messages, "assistant", strndup(r->text, r->n_text), r->n_text)) return false;
    }
    /* Only token-id prompts have a length known without the server's usage. */
    int64_t known = !w->chat && w->o->dataset == DS_RANDOM ? w->o->input_len : -1;
    if (w->rep && !meshlm_bs_report_add(w->rep, r, c ? (c->turn == 1 ? 1 : 2) : 0, known)) {
        fprintf(stderr, "meshlm bench-serve: out of memory\n");
        return false;
    }
    return true;
}

/* A workload of total requests (multi-turn: total conversations of turns turns) from seed. */
static bool workload_init(workload *w, const bs_opts *o, const char *model, const char *fixed, int64_t total,
                          int64_t turns, uint64_t seed) {
    *w = (workload){.o = o, .model = model, .chat = strstr(o->endpoint, "chat/completions") != NULL,
                    .rng = seed, .total = total, .fixed = fixed};
    if (o->dataset != DS_MULTI_TURN || !total) return true;
    uint64_t sys_rng = seed ^ 0x73797374656dull;
    w->n_convs = total;
    w->turns = turns;
    w->total = total * turns;
    w->system = random_words(&sys_rng, o->shared_prefix);
    w->convs = calloc((size_t)total, sizeof *w->convs);
    if (!w->system || !w->convs) return false;
    for (int64_t i = 0; i < total; i++) {
        uint64_t s = seed + 0x636f6e76ull * (uint64_t)(i + 1);
        w->convs[i].rng = meshlm_bs_rand(&s);
    }
    return true;
}

static void workload_free(workload *w) {
    for (int64_t i = 0; w->convs && i < w->n_convs; i++) json_decref(w->convs[i].messages);
    free(w->convs);
    free(w->system);
}

/* Collects a reply body into a memory stream. */
static size_t collect(char *p, size_t size, size_t n, void *ud) { return fwrite(p, size, n, ud); }

static volatile sig_atomic_t interrupted;

/* Ctrl-C also ends the wait for the model list. */
static int abort_on_interrupt(void *ud, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d) {
    (void)ud, (void)a, (void)b, (void)c, (void)d;
    return interrupted != 0;
}

/* The first model id of GET base/v1/models (malloc'd), or NULL after saying why. */
static char *first_model(const bs_opts *o, const char *base) {
    size_t n_url = strlen(base) + 16, n_body = 0;
    char *url = malloc(n_url), *body = NULL, *auth = NULL, *id = NULL, errbuf[CURL_ERROR_SIZE] = "";
    FILE *mem = open_memstream(&body, &n_body);
    CURL *e = curl_easy_init();
    struct curl_slist *h = NULL;
    if (o->api_key && (auth = malloc(strlen(o->api_key) + 32)) != NULL) {
        sprintf(auth, "Authorization: Bearer %s", o->api_key);
        h = curl_slist_append(NULL, auth);
    }
    long status = 0;
    CURLcode rc = CURLE_OUT_OF_MEMORY;
    if (url && mem && e && (!o->api_key || h)) {
        snprintf(url, n_url, "%s/v1/models", base);
        rc = curl_easy_setopt(e, CURLOPT_URL, url);
        if (rc == CURLE_OK) rc = curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
        if (rc == CURLE_OK) rc = curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, collect);
        if (rc == CURLE_OK) rc = curl_easy_setopt(e, CURLOPT_WRITEDATA, mem);
        if (rc == CURLE_OK) rc = curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
        if (rc == CURLE_OK) rc = curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        if (rc == CURLE_OK) rc = curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, 10L);
        if (rc == CURLE_OK) rc = curl_easy_setopt(e, CURLOPT_TIMEOUT, 60L);
        if (rc == CURLE_OK) rc = curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, abort_on_interrupt);
        if (rc == CURLE_OK) rc = curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
        if (rc == CURLE_OK) rc = curl_easy_perform(e);
        if (rc == CURLE_OK && curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK) status = 0;
    }
    bool written = mem && fclose(mem) == 0;
    if (rc == CURLE_ABORTED_BY_CALLBACK) {
        fprintf(stderr, "meshlm bench-serve: interrupted\n");
    } else if (rc != CURLE_OK) {
        fprintf(stderr, "meshlm bench-serve: cannot reach %s: %s\n", url ? url : base,
                errbuf[0] ? errbuf : curl_easy_strerror(rc));
    } else if (!written) {
        fprintf(stderr, "meshlm bench-serve: out of memory\n");
    } else if (status != 200) {
        fprintf(stderr, "meshlm bench-serve: GET %s: HTTP %ld: %.500s\n", url, status, body);
    } else {
        json_t *j = json_loadb(body, n_body, 0, NULL);
        const char *s = json_string_value(json_object_get(json_array_get(json_object_get(j, "data"), 0), "id"));
        if (s && !(id = strdup(s))) fprintf(stderr, "meshlm bench-serve: out of memory\n");
        if (!s) fprintf(stderr, "meshlm bench-serve: GET %s: no model id in the reply; give --model\n", url);
        json_decref(j);
    }
    curl_easy_cleanup(e);
    curl_slist_free_all(h);
    free(auth);
    free(body);
    free(url);
    return id;
}

/* The first Ctrl-C stops the run (the handler resets itself: a second one ends the process). */
static void on_sigint(int sig) {
    (void)sig;
    interrupted = 1;
}

/* The run's description for the report header. */
static void describe(const bs_opts *o, const workload *w, char *out, size_t n) {
    if (o->dataset == DS_MULTI_TURN)
        snprintf(out, n, "multi-turn (%lld conversations x %lld turns, %lld-word shared prefix, %lld words a turn, "
                 "%lld out)", (long long)w->n_convs, (long long)w->turns, (long long)o->shared_prefix,
                 (long long)o->input_len, (long long)o->output_len);
    else if (o->dataset == DS_FIXED)
        snprintf(out, n, "fixed (%lld out)", (long long)o->output_len);
    else
        snprintf(out, n, "random (%lld %s in, %lld out)", (long long)o->input_len, w->chat ? "words" : "tokens",
                 (long long)o->output_len);
}

/* Runs one workload; returns 0, 1 (a failure said on stderr) or 130 (interrupted). */
static int drive(const bs_opts *o, workload *w, const char *url, const char *what, int64_t concurrency,
                 meshlm_bs_outcome *out) {
    meshlm_bs_load l = {.url = url, .api_key = o->api_key, .chat = w->chat, .concurrency = concurrency,
                        .rate = w->rep ? o->rate : 0, .seed = (uint64_t)o->seed ^ 0x6172726976616cull, .what = what,
                        .total = w->total, .next = next_request, .done = request_done, .ctx = w, .stop = &interrupted};
    if (!meshlm_bs_run(&l, out)) return 1;
    if (out->refused) {
        fprintf(stderr, "meshlm bench-serve: no connection to %s: is the server running?\n", url);
        return 1;
    }
    return out->interrupted ? 130 : 0;
}

int meshlm_cmd_bench_serve(int argc, char **argv) {
    bs_opts o;
    int rc = parse(argc, argv, &o);
    if (rc) return rc == 1 ? 0 : rc;
    char *fixed = NULL, *model = NULL, *base = NULL, *url = NULL;
    size_t n_fixed = 0;
    if (o.prompt_file && !meshlm_arg_read_file("bench-serve", o.prompt_file, &fixed, &n_fixed)) return 1;
    if (o.prompt && !(fixed = strdup(o.prompt))) return 1;
    json_t *check = fixed ? json_string(fixed) : NULL;
    if (fixed && !check) {
        fprintf(stderr, "meshlm bench-serve: %s: the prompt is not UTF-8 text\n", o.prompt ? "--prompt" : "--prompt-file");
        free(fixed);
        return 2;
    }
    json_decref(check);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "meshlm bench-serve: cannot initialise libcurl\n");
        free(fixed);
        return 1;
    }
    struct sigaction sa = {.sa_handler = on_sigint, .sa_flags = SA_RESETHAND}, old_int;
    sigemptyset(&sa.sa_mask);
    void (*old_pipe)(int) = signal(SIGPIPE, SIG_IGN);
    bool handler = sigaction(SIGINT, &sa, &old_int) == 0;
    interrupted = 0;
    workload warm = {0}, run = {0};
    meshlm_bs_report rep = {0};
    rc = 1;
    base = strdup(o.url);
    for (size_t n = base ? strlen(base) : 0; n && base[n - 1] == '/'; n--) base[n - 1] = '\0';
    if (!base || !(url = malloc(strlen(base) + strlen(o.endpoint) + 1))) goto done;
    sprintf(url, "%s%s", base, o.endpoint);
    if (!(model = o.model ? strdup(o.model) : first_model(&o, base))) {
        if (interrupted) rc = 130;
        goto done;
    }
    int64_t total = o.dataset == DS_MULTI_TURN ? o.conversations : o.num_prompts;
    if (!workload_init(&run, &o, model, fixed, total, o.turns, (uint64_t)o.seed) ||
        !workload_init(&warm, &o, model, fixed, o.warmup, 1, (uint64_t)o.seed ^ 0x7761726d7570ull)) {
        fprintf(stderr, "meshlm bench-serve: out of memory\n");
        goto done;
    }
    meshlm_bs_outcome out;
    if (o.warmup) {
        fprintf(stderr, "meshlm bench-serve: %lld warm-up requests\n", (long long)o.warmup);
        rc = drive(&o, &warm, url, "warm-up", o.warmup < o.concurrency ? o.warmup : o.concurrency, &out);
        if (!rc && warm.failed) {
            fprintf(stderr, "meshlm bench-serve: %lld warm-up requests failed: not starting the benchmark\n",
                    (long long)warm.failed);
            rc = 1;
        }
        if (rc) goto done;
    }
    char dataset[256];
    describe(&o, &run, dataset, sizeof dataset);
    rep = (meshlm_bs_report){.label = o.label, .url = url, .model = model, .dataset = dataset,
                             .concurrency = o.concurrency, .num_prompts = run.total, .input_len = o.input_len,
                             .output_len = o.output_len, .request_rate = o.rate,
                             .multi_turn = o.dataset == DS_MULTI_TURN};
    run.rep = &rep;
    fprintf(stderr, "meshlm bench-serve: %lld requests to %s, model '%s', %lld at once\n", (long long)run.total, url,
            model, (long long)o.concurrency);
    rc = drive(&o, &run, url, "bench-serve", o.concurrency, &out);
    if (out.refused) goto done;
    rep.interrupted = out.interrupted;
    rep.dropped = out.dropped;
    rep.duration_s = out.t1 > out.t0 ? out.t1 - out.t0 : 0;
    if (!meshlm_bs_report_print(stdout, &rep, o.json)) {
        fprintf(stderr, "meshlm bench-serve: cannot write the report\n");
        rc = 1;
    }
    if (rep.failed) fprintf(stderr, "meshlm bench-serve: %lld of %lld requests failed (the first error is above)\n",
                            (long long)rep.failed, (long long)(rep.failed + rep.completed));
    if (!rc && rep.failed) rc = 1;
done:
    workload_free(&warm);
    workload_free(&run);
    meshlm_bs_report_free(&rep);
    free(model);
    free(url);
    free(base);
    free(fixed);
    if (handler) sigaction(SIGINT, &old_int, NULL);
    if (old_pipe != SIG_ERR) signal(SIGPIPE, old_pipe);
    curl_global_cleanup();
    return rc;
}
