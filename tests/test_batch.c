/* Batched serving against one sequence at a time: at temperature 0, 32 prompts of
 * different lengths served together (chunked prefill sharing steps with decodes) give
 * each the tokens it gets alone; a step's logits are bitwise those of the row run alone
 * or with its prompt in other chunks; more requests than the KV cache holds run in waves
 * and give every page back; requests that can never fit fail clearly. Synthetic tiny
 * models, and stories260K when present. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/dtype.h"
#include "meshlm.h"
#include "model/forward.h"
#include "model/synth.h"
#include "t.h"

enum { N_REQ = 32, MAX_PROMPT = 300, N_GEN = 10 };

static int32_t prompt_len(int i) { return 1 + (i * 37 + i * i * 5) % MAX_PROMPT; }

static void make_prompt(const meshlm_model *m, int i, int32_t *out) {
    int32_t V = meshlm_model_n_vocab(m);
    for (int32_t t = 0; t < prompt_len(i); t++) out[t] = (int32_t)(((i + 1) * 7919 + t * 104729) % (V - 8));
}

static meshlm_sampler_params greedy(void) {
    meshlm_sampler_params sp = meshlm_sampler_defaults();
    sp.temperature = 0.0f;
    return sp;
}

/* The reference: one session, generating as meshlm run does. Returns n_gen; *stopped
 * tells whether an end-of-generation token ended it. */
static int32_t alone(const meshlm_model *m, const char *mesh, const int32_t *prompt, int32_t n, int32_t n_predict,
                     int32_t *out, bool *stopped) {
    meshlm_session_params p = meshlm_session_defaults();
    p.n_ctx = 512;
    p.n_threads = mesh ? 1 : 2;
    p.mesh = mesh;
    p.sampler = greedy();
    meshlm_session *s = NULL;
    int32_t n_gen = 0;
    *stopped = false;
    if (meshlm_session_create(m, &p, &s) != MESHLM_OK) {
        CHECK_MSG(0, "session: %s", meshlm_last_error());
        return 0;
    }
    CHECK(meshlm_session_eval(s, prompt, n) == MESHLM_OK);
    while (n_gen < n_predict) {
        int32_t tok;
        CHECK(meshlm_session_sample(s, &tok) == MESHLM_OK);
        if (meshlm_token_is_eog(m, tok)) {
            *stopped = true;
            break;
        }
        out[n_gen++] = tok;
        if (n_gen == n_predict || meshlm_session_pos(s) >= 512) break;
        CHECK(meshlm_session_eval(s, &tok, 1) == MESHLM_OK);
    }
    meshlm_session_free(s);
    return n_gen;
}

static meshlm_batch *open_batch(const meshlm_model *m, int32_t n_batch, int32_t chunk, int threads, size_t kv_mem,
                                const char *mesh) {
    meshlm_batch_params bp = meshlm_batch_defaults();
    bp.mesh = mesh;
    bp.n_ctx = 512;
    bp.n_batch = n_batch;
    bp.n_chunk = chunk;
    bp.n_threads = threads;
    bp.page_size = 16;
    bp.kv_mem = kv_mem;
    meshlm_batch *b = NULL;
    int rc = meshlm_batch_create(m, &bp, &b);
    CHECK_MSG(rc == MESHLM_OK, "batch: %s", meshlm_last_error());
    return b;
}

/* Serves requests [0, n) through b and checks each against its run alone (ref). */
/* Requests get ids id0, id0 + 1, ... (a batch may serve several rounds). */
static void serve_and_compare(const meshlm_model *m, meshlm_batch *b, int n, int32_t id0, int32_t ref[][N_GEN],
                              const int32_t *ref_n, const bool *ref_stop, const char *label) {
    int32_t prompt[MAX_PROMPT], id, left = 1, steps = 0;
    for (int i = 0; i < n; i++) {
        make_prompt(m, i, prompt);
        meshlm_sampler_params sp = greedy();
        CHECK(meshlm_batch_submit(b, prompt, prompt_len(i), &sp, N_GEN, &id) == MESHLM_OK && id == id0 + i);
    }
    while (left > 0 && steps++ < 100000)
        if (meshlm_batch_step(b, &left) != MESHLM_OK) {
            CHECK_MSG(0, "%s: step: %s", label, meshlm_last_error());
            break;
        }
    for (int i = 0; i < n; i++) {
        meshlm_batch_result r;
        CHECK(meshlm_batch_result_get(b, id0 + i, &r) == MESHLM_OK);
        CHECK_MSG(r.n_gen == ref_n[i] && memcmp(r.tokens, ref[i], sizeof(int32_t) * (size_t)r.n_gen) == 0,
                  "%s: request %d (prompt %d): %d tokens, alone %d, differ", label, i, prompt_len(i), r.n_gen,
                  ref_n[i]);
        CHECK(r.n_prompt == prompt_len(i));
        CHECK(r.finish == (ref_stop[i] ? MESHLM_FINISH_STOP : MESHLM_FINISH_LENGTH));
    }
    int32_t total, free_pages;
    meshlm_batch_kv_pages(b, &total, &free_pages);
    CHECK_MSG(total == free_pages, "%s: %d of %d pages free after the last request", label, free_pages, total);
}

/* Each request's tokens alone on mesh (NULL = 1x1), then served in batches of several
 * shapes on the same mesh (the cases whose bit is set in which): the same tokens. */
static void check_texts(const meshlm_model *m, const char *label, const char *mesh, unsigned which) {
    static int32_t ref[N_REQ][N_GEN];
    int32_t ref_n[N_REQ], prompt[MAX_PROMPT];
    bool stop[N_REQ];
    for (int i = 0; i < N_REQ; i++) {
        make_prompt(m, i, prompt);
        ref_n[i] = alone(m, mesh, prompt, prompt_len(i), N_GEN, ref[i], &stop[i]);
    }
    char what[128];
    struct { int32_t n_batch, chunk; int threads; bool waves; } cases[] = {
        {32, 64, 2, false}, /* all at once */
        {32, 7, 1, false},  /* small chunks: prompts span many steps, beside decodes */
        {5, 64, 2, false},  /* more requests than slots */
        {32, 64, 2, true},  /* waves by memory: a cache for 4 sequences */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        if (!(which >> c & 1)) continue;
        size_t mem = 0;
        if (cases[c].waves) {
            meshlm_kv_params kp = meshlm_kv_params_for(m, m->hp.n_head_kv, MESHLM_TYPE_F32, 16, 0);
            mem = meshlm_kv_page_bytes(&kp) * (size_t)(4 * ((MAX_PROMPT + N_GEN + 15) / 16));
        }
        int threads = mesh ? 1 : cases[c].threads;
        meshlm_batch *b = open_batch(m, cases[c].n_batch, cases[c].chunk, threads, mem, mesh);
        if (!b) continue;
        snprintf(what, sizeof what, "%s batch %d chunk %d -t %d mesh %s%s", label, cases[c].n_batch, cases[c].chunk,
                 threads, mesh ? mesh : "1x1", cases[c].waves ? " (4 sequences of KV)" : "");
        serve_and_compare(m, b, N_REQ, 0, ref, ref_n, stop, what);
        if (cases[c].waves) {
            /* A second round through the same cache: the same texts, every page back. */
            int32_t total, free_pages;
            meshlm_batch_kv_pages(b, &total, &free_pages);
            serve_and_compare(m, b, N_REQ, N_REQ, ref, ref_n, stop, what);
            int32_t total2, free2;
            meshlm_batch_kv_pages(b, &total2, &free2);
            CHECK(total2 == total && free2 == total);
        }
        meshlm_batch_free(b);
        fprintf(stderr, "%s: %d requests as alone\n", what, N_REQ);
    }
}

/* Logits of a row: alone in its step, or with other sequences' rows around it, or with its
 * prompt cut into other chunks: the same bits. Internal forward steps on one pool. */
static void check_logits_bitwise(const meshlm_model *m, const char *label) {
    int32_t V = m->hp.n_vocab, pa[MAX_PROMPT], pb[MAX_PROMPT];
    int32_t na = 280, nb = 100;
    for (int32_t t = 0; t < na; t++) pa[t] = (t * 7919 + 3) % (V - 8);
    for (int32_t t = 0; t < nb; t++) pb[t] = (t * 104729 + 11) % (V - 8);
    meshlm_pool *pool = NULL;
    meshlm_kv_pool *kv = NULL;
    meshlm_forward_buf buf;
    meshlm_kv_params kp = meshlm_kv_params_for(m, m->hp.n_head_kv, MESHLM_TYPE_F32, 16, 0);
    kp.mem_bytes = meshlm_kv_page_bytes(&kp) * 64;
    CHECK(meshlm_pool_create(2, &pool) == MESHLM_OK);
    CHECK(meshlm_kv_pool_create(&kp, &kv) == MESHLM_OK);
    CHECK(meshlm_forward_buf_init(&buf, m, 512, 512, 2, NULL) == MESHLM_OK);
    meshlm_kv_seq a, bseq;
    CHECK(meshlm_kv_seq_init(&a, 512, kv) == MESHLM_OK && meshlm_kv_seq_init(&bseq, 512, kv) == MESHLM_OK);
    float *whole = malloc(sizeof(float) * V), *mixed = malloc(sizeof(float) * 2 * (size_t)V);

    /* A's prompt in one step. */
    CHECK_MSG(meshlm_forward(m, pool, kv, &a, &buf, pa, na, 0, whole) == MESHLM_OK, "%s", meshlm_last_error());
    meshlm_kv_release(kv, &a);
    /* A's prompt in chunks of 13, each step shared with a chunk of B's prompt. */
    CHECK(meshlm_kv_reserve(kv, &a, na) == MESHLM_OK && meshlm_kv_reserve(kv, &bseq, nb) == MESHLM_OK);
    int32_t tok[64], pos[64], da = 0, db = 0, rows[2];
    meshlm_kv_seq *seqs[64];
    while (da < na) {
        int32_t n = 0, n_out = 0;
        for (int32_t i = 0; i < 9 && db < nb; i++, db++) tok[n] = pb[db], pos[n] = db, seqs[n++] = &bseq;
        for (int32_t i = 0; i < 13 && da < na; i++, da++) tok[n] = pa[da], pos[n] = da, seqs[n++] = &a;
        if (da == na) rows[n_out++] = n - 1;
        meshlm_step st = {.n = n, .tokens = tok, .pos = pos, .seqs = seqs, .n_out = n_out, .out_rows = rows};
        CHECK(meshlm_forward_step(m, pool, kv, &buf, &st, mixed) == MESHLM_OK);
    }
    CHECK_MSG(memcmp(whole, mixed, sizeof(float) * V) == 0, "%s: chunked prompt beside B: logits differ", label);
    /* A decode row of A alone, then the same row beside B's next row (both outputs). */
    int32_t next = 17;
    CHECK(meshlm_kv_reserve(kv, &a, na + 1) == MESHLM_OK && meshlm_kv_reserve(kv, &bseq, nb + 1) == MESHLM_OK);
    int32_t p1 = na, z = 0;
    meshlm_kv_seq *sa = &a;
    meshlm_step one = {.n = 1, .tokens = &next, .pos = &p1, .seqs = &sa, .n_out = 1, .out_rows = &z};
    CHECK(meshlm_forward_step(m, pool, kv, &buf, &one, whole) == MESHLM_OK);
    tok[0] = 5, pos[0] = nb, seqs[0] = &bseq, tok[1] = next, pos[1] = na, seqs[1] = &a;
    rows[0] = 1, rows[1] = 0;
    meshlm_step two = {.n = 2, .tokens = tok, .pos = pos, .seqs = seqs, .n_out = 2, .out_rows = rows};
    CHECK(meshlm_forward_step(m, pool, kv, &buf, &two, mixed) == MESHLM_OK);
    CHECK_MSG(memcmp(whole, mixed, sizeof(float) * V) == 0, "%s: decode beside B: logits differ", label);

    /* A position outside the reservation is refused, not written. */
    int32_t far = 500;
    one.pos = &far;
    CHECK(meshlm_forward_step(m, pool, kv, &buf, &one, whole) == MESHLM_ERR_RANGE);
    meshlm_kv_release(kv, &a);
    meshlm_kv_release(kv, &bseq);
    CHECK(meshlm_kv_pool_free_pages(kv) == meshlm_kv_pool_pages(kv));
    meshlm_kv_seq_free(&a);
    meshlm_kv_seq_free(&bseq);
    free(whole), free(mixed);
    meshlm_forward_buf_free(&buf);
    meshlm_kv_pool_free(kv);
    meshlm_pool_free(pool);
}

/* F16 and Q8_0 pages end to end: every request finishes and gives its pages back; how many
 * greedy tokens agree with F32 pages is printed (the attention test bounds the numbers). */
static void check_kv_types(const meshlm_model *m) {
    const char *types[] = {"f32", "f16", "q8_0"};
    int32_t first[8][N_GEN], n_first[8], prompt[MAX_PROMPT], id, left = 1;
    for (int t = 0; t < 3; t++) {
        meshlm_batch_params bp = meshlm_batch_defaults();
        bp.n_ctx = 512;
        bp.n_batch = 8;
        bp.n_threads = 2;
        bp.kv_type = types[t];
        meshlm_batch *b = NULL;
        CHECK_MSG(meshlm_batch_create(m, &bp, &b) == MESHLM_OK, "%s: %s", types[t], meshlm_last_error());
        if (!b) continue;
        for (int i = 0; i < 8; i++) {
            make_prompt(m, i, prompt);
            meshlm_sampler_params sp = greedy();
            CHECK(meshlm_batch_submit(b, prompt, prompt_len(i), &sp, N_GEN, &id) == MESHLM_OK);
        }
        left = 1;
        while (left > 0 && meshlm_batch_step(b, &left) == MESHLM_OK) continue;
        CHECK(left == 0);
        int agree = 0, total = 0;
        for (int i = 0; i < 8; i++) {
            meshlm_batch_result r;
            CHECK(meshlm_batch_result_get(b, i, &r) == MESHLM_OK && r.finish != MESHLM_FINISH_NONE);
            if (t == 0) {
                n_first[i] = r.n_gen;
                memcpy(first[i], r.tokens, sizeof(int32_t) * (size_t)r.n_gen);
            }
            for (int32_t k = 0; k < r.n_gen && k < n_first[i] && r.tokens[k] == first[i][k]; k++) agree++;
            total += n_first[i];
        }
        int32_t pages, free_pages;
        meshlm_batch_kv_pages(b, &pages, &free_pages);
        CHECK(pages == free_pages);
        fprintf(stderr, "KV %s: %d of %d greedy tokens as with f32 pages (up to the first difference)\n", types[t],
                agree, total);
        meshlm_batch_free(b);
    }
}

/* Errors: a request longer than the context, or than the whole cache, fails at submit with
 * a message; the batch goes on serving the others. */
static void check_errors(const meshlm_model *m) {
    meshlm_kv_params kp = meshlm_kv_params_for(m, m->hp.n_head_kv, MESHLM_TYPE_F32, 16, 0);
    meshlm_batch *b = open_batch(m, 4, 64, 1, meshlm_kv_page_bytes(&kp) * 4, NULL); /* 64 positions */
    if (!b) return;
    int32_t prompt[512], id, left = 1;
    for (int i = 0; i < 512; i++) prompt[i] = i % 200;
    meshlm_sampler_params sp = greedy();
    CHECK(meshlm_batch_submit(b, prompt, 60, &sp, 10, &id) == MESHLM_ERR_RANGE);
    CHECK(strstr(meshlm_last_error(), "KV pages") != NULL);
    CHECK(meshlm_batch_submit(b, prompt, 512, &sp, 1, &id) == MESHLM_ERR_RANGE);
    CHECK(strstr(meshlm_last_error(), "context") != NULL);
    CHECK(meshlm_batch_submit(b, prompt, 0, &sp, 1, &id) == MESHLM_ERR_INVALID_ARG);
    sp.top_p = 2.0f;
    CHECK(meshlm_batch_submit(b, prompt, 8, &sp, 1, &id) == MESHLM_ERR_INVALID_ARG);
    sp = greedy();
    for (int i = 0; i < 3; i++) CHECK(meshlm_batch_submit(b, prompt, 30, &sp, 4, &id) == MESHLM_OK);
    while (left > 0) CHECK(meshlm_batch_step(b, &left) == MESHLM_OK);
    meshlm_batch_result r0, r2;
    CHECK(meshlm_batch_result_get(b, 0, &r0) == MESHLM_OK && meshlm_batch_result_get(b, 2, &r2) == MESHLM_OK);
    CHECK(r0.n_gen == r2.n_gen && memcmp(r0.tokens, r2.tokens, sizeof(int32_t) * (size_t)r0.n_gen) == 0);
    CHECK(meshlm_batch_result_get(b, 3, &r0) == MESHLM_ERR_INVALID_ARG);
    meshlm_batch_free(b);
    meshlm_batch_params bp = meshlm_batch_defaults();
    /* Sessions take a KV type too. */
    meshlm_session_params spp = meshlm_session_defaults();
    spp.n_ctx = 64;
    spp.n_threads = 1;
    spp.kv_type = "q8_0";
    meshlm_session *s = NULL;
    int32_t tok;
    CHECK(meshlm_session_create(m, &spp, &s) == MESHLM_OK);
    CHECK(s && meshlm_session_eval(s, prompt, 8) == MESHLM_OK && meshlm_session_sample(s, &tok) == MESHLM_OK);
    meshlm_session_free(s);
    spp.kv_type = "f64";
    CHECK(meshlm_session_create(m, &spp, &s) == MESHLM_ERR_INVALID_ARG && strstr(meshlm_last_error(), "f64"));
    bp.kv_type = "q4_0";
    CHECK(meshlm_batch_create(m, &bp, &b) == MESHLM_ERR_INVALID_ARG && b == NULL);
    bp.kv_type = NULL;
    bp.mesh = "1y2";
    CHECK(meshlm_batch_create(m, &bp, &b) == MESHLM_ERR_INVALID_ARG && b == NULL);
}

int main(void) {
    char dir[] = "/tmp/meshlm-batch-XXXXXX", path[256];
    if (!mkdtemp(dir)) t_skip("cannot make a temporary directory");
    /* the second gemma3 windows every layer, so its sequences drop pages as they go */
    const char *archs[] = {"llama",    "qwen3",    "gemma2", "gemma3", "phi3", "smollm3", "gemma3",
                           "qwen3moe", "qwen2moe", "gpt-oss"};
    for (int a = 0; a < 10; a++) {
        meshlm_synth_params p;
        CHECK(meshlm_synth_preset("tiny", archs[a], &p) == MESHLM_OK);
        p.type = a == 0 ? MESHLM_TYPE_Q8_0 : MESHLM_TYPE_F32;
        /* gemma: a window well inside the prompts and their pages; gemma3: one windowed
         * and one global layer, the global one's rope scaled */
        p.sliding_window = 40;
        if (a == 3) p.swa_pattern = 2, p.rope_theta = 1e6f, p.rope_scale = 4.0f;
        /* phi3: long LongRoPE factors for contexts past 64 positions */
        if (a == 4) p.n_ctx_orig = 64;
        if (a == 5) p.n_layer = 4;
        if (a == 6) p.swa_pattern = -1, p.sliding_window = 20;
        /* qwen3moe: many rows choose each expert in a step, some none */
        if (a == 7) p.type = MESHLM_TYPE_Q8_0, p.n_expert = 16, p.n_expert_used = 4;
        /* gpt-oss: its even layers windowed, sinks, biases, MXFP4 experts */
        if (a == 9) p.type = MESHLM_TYPE_Q8_0, p.expert_type_given = true, p.expert_type = MESHLM_TYPE_MXFP4;
        snprintf(path, sizeof path, "%s/%s-%d.gguf", dir, archs[a], a);
        meshlm_model *m = NULL;
        if (meshlm_synth_write(&p, path) != MESHLM_OK || meshlm_model_load(path, &m) != MESHLM_OK) {
            CHECK_MSG(0, "%s: %s", archs[a], meshlm_last_error());
            continue;
        }
        check_logits_bitwise(m, archs[a]);
        check_texts(m, archs[a], NULL, a == 0 ? 0xf : a == 6 ? 0xb : 0x1);
        if (a != 1) check_texts(m, archs[a], a == 0 ? "1x2" : "2x2", 0x8);
        if (a == 0) check_errors(m);
        if (a == 0) check_kv_types(m);
        meshlm_model_free(m);
        unlink(path);
    }
    rmdir(dir);
    const char *stories = MESHLM_SHARED_DIR "/models/stories260K.gguf";
    meshlm_model *m = NULL;
    if (access(stories, R_OK) == 0 && meshlm_model_load(stories, &m) == MESHLM_OK) {
        check_texts(m, "stories260K", NULL, 0x1);
        meshlm_model_free(m);
    } else {
        printf("note: stories260K.gguf absent: synthetic models only\n");
    }
    return t_done();
}
