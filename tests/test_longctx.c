/* A 32k-position context through the whole forward pass, against an unpaged reference.
 * A small F32 synthetic llama gets 32767 positions of K/V per layer written straight into
 * the paged cache, on pages interleaved with a decoy sequence's (so a wrong page-table
 * lookup reads the decoy's values); then one token is decoded at position 32767 under the
 * generic and the performance presets. The reference here keeps the same K/V rows (as the
 * cache stores them, read back) in plain contiguous arrays and computes that token's logits
 * in double precision. Stated tolerance: |d logit| <= 2e-4 + 2e-4 |logit|. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/dtype.h"
#include "model/forward.h"
#include "model/synth.h"
#include "t.h"

enum { N_POS = 32767, PAGE = 64 };

static float synth_value(uint32_t *x) {
    *x = *x * 1664525u + 1013904223u;
    return (float)(*x >> 8) * (1.0f / 16777216.0f) - 0.5f;
}

/* y = W x for an F32 matrix, in double. */
static void matvec(const meshlm_matrix *w, const double *x, double *y) {
    const float *d = w->data;
    for (int64_t o = 0; o < w->n_out; o++) {
        double s = 0;
        for (int64_t i = 0; i < w->n_in; i++) s += (double)d[o * w->n_in + i] * x[i];
        y[o] = s;
    }
}

static void norm(const double *x, const float *w, int n, double eps, double *y) {
    double ss = 0;
    for (int i = 0; i < n; i++) ss += x[i] * x[i];
    double sc = 1.0 / sqrt(ss / n + eps);
    for (int i = 0; i < n; i++) y[i] = x[i] * sc * w[i];
}

static void rope(double *v, int n_rot, double base, int pos) {
    for (int i = 0; i < n_rot / 2; i++) {
        double th = pos * pow(base, -2.0 * i / n_rot), x0 = v[2 * i], x1 = v[2 * i + 1];
        v[2 * i] = x0 * cos(th) - x1 * sin(th);
        v[2 * i + 1] = x0 * sin(th) + x1 * cos(th);
    }
}

/* The logits of token tok at position N_POS over K/V rows kc, vc ([layer][pos][kv_dim],
 * positions 0..N_POS-1 given; position N_POS is the token's own). */
static double *reference(const meshlm_model *m, int32_t tok, float *kc, float *vc) {
    const meshlm_hparams *hp = &m->hp;
    int E = hp->n_embd, H = hp->n_head, KVH = hp->n_head_kv, D = hp->head_dim, F = hp->n_ff, V = hp->n_vocab;
    size_t kvd = (size_t)KVH * D, per_layer = (size_t)(N_POS + 1) * kvd;
    double *x = malloc(sizeof(double) * E), *xn = malloc(sizeof(double) * E), *q = malloc(sizeof(double) * H * D);
    double *k = malloc(sizeof(double) * kvd), *v = malloc(sizeof(double) * kvd), *att = malloc(sizeof(double) * H * D);
    double *tmp = malloc(sizeof(double) * (E > F ? E : F)), *g1 = malloc(sizeof(double) * F);
    double *g3 = malloc(sizeof(double) * F), *sc = malloc(sizeof(double) * (N_POS + 1));
    double *logits = malloc(sizeof(double) * V);
    for (int i = 0; i < E; i++) x[i] = ((const float *)m->tok_embd.data)[(size_t)tok * E + i];
    for (int il = 0; il < hp->n_layer; il++) {
        const meshlm_layer *L = &m->layers[il];
        norm(x, L->attn_norm, E, hp->rms_eps, xn);
        matvec(&L->wq, xn, q);
        matvec(&L->wk, xn, k);
        matvec(&L->wv, xn, v);
        for (int h = 0; h < H; h++) rope(q + h * D, hp->n_rot, hp->rope_theta, N_POS);
        for (int h = 0; h < KVH; h++) rope(k + h * D, hp->n_rot, hp->rope_theta, N_POS);
        float *K = kc + il * per_layer, *Vv = vc + il * per_layer;
        for (size_t i = 0; i < kvd; i++) K[N_POS * kvd + i] = (float)k[i], Vv[N_POS * kvd + i] = (float)v[i];
        for (int h = 0; h < H; h++) {
            int g = h / (H / KVH);
            double mx = -INFINITY, sum = 0;
            for (int s = 0; s <= N_POS; s++) {
                double d = 0;
                /* the engine stores its own k and v as floats, and so does this */
                for (int i = 0; i < D; i++) d += q[h * D + i] * K[(size_t)s * kvd + g * D + i];
                sc[s] = d / sqrt((double)D);
                if (sc[s] > mx) mx = sc[s];
            }
            for (int s = 0; s <= N_POS; s++) sum += (sc[s] = exp(sc[s] - mx));
            for (int i = 0; i < D; i++) {
                double a = 0;
                for (int s = 0; s <= N_POS; s++) a += sc[s] * Vv[(size_t)s * kvd + g * D + i];
                att[h * D + i] = a / sum;
            }
        }
        matvec(&L->wo, att, tmp);
        for (int i = 0; i < E; i++) x[i] += tmp[i];
        norm(x, L->ffn_norm, E, hp->rms_eps, xn);
        matvec(&L->w1, xn, g1);
        matvec(&L->w3, xn, g3);
        for (int i = 0; i < F; i++) g1[i] = g1[i] / (1 + exp(-g1[i])) * g3[i];
        matvec(&L->w2, g1, tmp);
        for (int i = 0; i < E; i++) x[i] += tmp[i];
    }
    norm(x, m->output_norm, E, hp->rms_eps, xn);
    matvec(&m->output, xn, logits);
    free(x), free(xn), free(q), free(k), free(v), free(att), free(tmp), free(g1), free(g3), free(sc);
    return logits;
}

/* Decodes tok at N_POS under opts after filling the cache; the K/V rows as stored go to kc, vc. */
static float *engine(const meshlm_model *m, int kv_type, const meshlm_opts *opts, int32_t tok, float *kc, float *vc) {
    const meshlm_hparams *hp = &m->hp;
    size_t kvd = (size_t)hp->n_head_kv * hp->head_dim, per_layer = (size_t)(N_POS + 1) * kvd;
    meshlm_kv_params kp = meshlm_kv_params_for(m, hp->n_head_kv, kv_type, PAGE, 0);
    kp.mem_bytes = meshlm_kv_page_bytes(&kp) * (size_t)(2 * ((N_POS + PAGE) / PAGE + 1));
    meshlm_kv_pool *kv = NULL;
    meshlm_kv_seq seq, decoy;
    meshlm_pool *pool = NULL;
    meshlm_forward_buf buf;
    float *logits = malloc(sizeof(float) * (size_t)hp->n_vocab), *row = malloc(sizeof(float) * kvd);
    CHECK(meshlm_kv_pool_create(&kp, &kv) == MESHLM_OK && meshlm_kv_seq_init(&seq, N_POS + 1, kv) == MESHLM_OK);
    CHECK(meshlm_kv_seq_init(&decoy, N_POS + 1, kv) == MESHLM_OK);
    for (int32_t len = PAGE; len < N_POS + 1 + PAGE; len += PAGE) {
        int32_t n = len < N_POS + 1 ? len : N_POS + 1;
        CHECK(meshlm_kv_reserve(kv, &seq, n) == MESHLM_OK && meshlm_kv_reserve(kv, &decoy, n) == MESHLM_OK);
    }
    uint32_t a = 7, b = 99;
    for (int il = 0; il < hp->n_layer; il++)
        for (int32_t p = 0; p < N_POS; p++) {
            float *k = kc + il * per_layer + (size_t)p * kvd, *v = vc + il * per_layer + (size_t)p * kvd;
            for (size_t i = 0; i < kvd; i++) k[i] = synth_value(&a), v[i] = synth_value(&a);
            meshlm_kv_write(kv, &seq, il, p, k, v);
            meshlm_kv_read(kv, &seq, il, p, k, v); /* the reference sees what the cache holds */
            for (size_t i = 0; i < kvd; i++) row[i] = 10.0f * synth_value(&b);
            meshlm_kv_write(kv, &decoy, il, p, row, row);
        }
    CHECK(meshlm_pool_create(2, &pool) == MESHLM_OK && meshlm_forward_reserve(pool, m, 1) == MESHLM_OK);
    CHECK(meshlm_forward_buf_init(&buf, m, 1, N_POS + 1, 2, opts) == MESHLM_OK);
    int32_t pos = N_POS, out = 0;
    meshlm_kv_seq *sp = &seq;
    meshlm_step st = {.n = 1, .tokens = &tok, .pos = &pos, .seqs = &sp, .n_out = 1, .out_rows = &out};
    CHECK_MSG(meshlm_forward_step(m, pool, kv, &buf, &st, logits) == MESHLM_OK, "%s", meshlm_last_error());
    meshlm_forward_buf_free(&buf);
    meshlm_pool_free(pool);
    meshlm_kv_release(kv, &seq), meshlm_kv_release(kv, &decoy);
    meshlm_kv_seq_free(&seq), meshlm_kv_seq_free(&decoy);
    meshlm_kv_pool_free(kv);
    free(row);
    return logits;
}

int main(void) {
    char dir[] = "/tmp/meshlm-longctx-XXXXXX", path[96];
    if (!mkdtemp(dir)) t_skip("cannot make a temporary directory");
    snprintf(path, sizeof path, "%s/long.gguf", dir);
    meshlm_synth_params p;
    CHECK(meshlm_synth_preset("tiny", "llama", &p) == MESHLM_OK);
    p.n_embd = 128, p.n_layer = 2, p.n_head = 4, p.n_head_kv = 2, p.n_ff = 256, p.n_ctx = 32768;
    p.type = MESHLM_TYPE_F32;
    p.rope_freqs = false;
    meshlm_model *m = NULL;
    CHECK_MSG(meshlm_synth_write(&p, path) == MESHLM_OK && meshlm_model_load(path, &m) == MESHLM_OK, "%s",
              meshlm_last_error());
    if (!m) return t_done();
    CHECK(m->rope_freqs == NULL && !m->hp.rope_neox);
    const meshlm_hparams *hp = &m->hp;
    size_t rows = (size_t)hp->n_layer * (N_POS + 1) * hp->n_head_kv * hp->head_dim;
    float *kc = malloc(sizeof(float) * rows), *vc = malloc(sizeof(float) * rows);
    int32_t tok = 97;
    meshlm_opts gen = meshlm_opts_preset(MESHLM_PRESET_GENERIC), perf = meshlm_opts_preset(MESHLM_PRESET_PERFORMANCE);
    int types[] = {MESHLM_TYPE_F32, MESHLM_TYPE_F16};
    for (int t = 0; t < 2; t++) {
        float *lg = engine(m, types[t], &gen, tok, kc, vc);
        float *lp = engine(m, types[t], &perf, tok, kc, vc);
        double *ref = reference(m, tok, kc, vc), worst = 0;
        for (int v = 0; v < hp->n_vocab; v++) {
            double d = fabs(lg[v] - ref[v]) / (2e-4 + 2e-4 * fabs(ref[v]));
            if (d > worst) worst = d;
        }
        CHECK_MSG(worst <= 1.0, "%s KV at 32k: logits off the reference by %.3g of the tolerance",
                  meshlm_type_name(types[t]), worst);
        CHECK_MSG(memcmp(lg, lp, sizeof(float) * (size_t)hp->n_vocab) == 0, "%s KV at 32k: presets differ",
                  meshlm_type_name(types[t]));
        printf("%s KV, decode at position %d: worst %.3g of the tolerance; generic and performance bitwise equal\n",
               meshlm_type_name(types[t]), N_POS, worst);
        free(lg), free(lp), free(ref);
    }
    free(kc), free(vc);
    meshlm_model_free(m);
    unlink(path);
    rmdir(dir);
    return t_done();
}
