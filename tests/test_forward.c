/* The engine's forward pass against a naive reference written here: plain loops, double
 * accumulation, every position recomputed from scratch, weights read by name from the
 * file. Synthetic models of each architecture and weight type, plus stories260K. Also:
 * prefill-at-once equals token-by-token, and thread counts give identical bits.
 *
 * For the weight types whose matmuls use int8 activations (Q8_0 .. Q6_K) the reference
 * rounds its activations the same way (written here independently, in double). The
 * engine then matches it within the f32 tolerance below, except where an activation sits
 * on a rounding tie (x * 127 / max within f32 noise of k + 1/2): f32 and double may round
 * it apart, one code step, which in these 64-wide models moves logits by up to ~0.05.
 * So an int8 model passes if it is within the tolerance, or else (a tie flipped) if it is
 * closer to the int8 reference than to the reference with unrounded activations and no
 * farther from it than the two references are from each other. An engine that skipped
 * or botched the rounding fails both. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/dtype.h"
#include "core/quant.h"
#include "io/gguf.h"
#include "model/model.h"
#include "model/synth.h"
#include "t.h"

/* Logits may differ from the double reference by float rounding: stated tolerance. */
#define TOL_ABS 1e-4
#define TOL_REL 1e-4

/* A weight read as doubles, with its stored type (which decides how the engine rounds the
 * activations it multiplies). */
typedef struct ref_w {
    double *w;
    int type;
} ref_w;

static double *load_t(const meshlm_gguf *g, const char *name, int64_t *n_out, int *type) {
    const meshlm_gguf_tensor *t = meshlm_gguf_find_tensor(g, name);
    if (!t) return NULL;
    if (type) *type = t->type;
    int64_t rows = t->ne[1] * t->ne[2] * t->ne[3], n = t->ne[0] * rows;
    float *f = malloc((size_t)n * sizeof *f);
    double *d = malloc((size_t)n * sizeof *d);
    size_t rb = meshlm_type_row_bytes(t->type, t->ne[0]);
    for (int64_t r = 0; r < rows; r++) meshlm_dequantize_row(t->type, (const char *)t->data + r * rb, f + r * t->ne[0], t->ne[0]);
    for (int64_t i = 0; i < n; i++) d[i] = f[i];
    free(f);
    if (n_out) *n_out = n;
    return d;
}

static double *load(const meshlm_gguf *g, const char *name, int64_t *n_out) { return load_t(g, name, n_out, NULL); }

static ref_w load_w(const meshlm_gguf *g, const char *name) {
    ref_w r = {NULL, MESHLM_TYPE_F32};
    r.w = load_t(g, name, NULL, &r.type);
    return r;
}

static double *layer_w(const meshlm_gguf *g, int il, const char *suffix) {
    char name[96];
    snprintf(name, sizeof name, "blk.%d.%s", il, suffix);
    return load(g, name, NULL);
}

static ref_w layer_wt(const meshlm_gguf *g, int il, const char *suffix) {
    char name[96];
    snprintf(name, sizeof name, "blk.%d.%s", il, suffix);
    return load_w(g, name);
}

/* The engine multiplies weights of the quantized types by int8 activations: each block of
 * 32 values (256 for the K-quants) becomes d * q with d = max|x| / 127 and q = x * 127 /
 * max|x| rounded to nearest, ties to even. Modeled here in double. */
static int act_block(int type) {
    switch (type) {
    case MESHLM_TYPE_Q8_0:
    case MESHLM_TYPE_Q4_0:
    case MESHLM_TYPE_Q4_1:
    case MESHLM_TYPE_Q5_0:
    case MESHLM_TYPE_Q5_1: return 32;
    case MESHLM_TYPE_Q4_K:
    case MESHLM_TYPE_Q5_K:
    case MESHLM_TYPE_Q6_K: return 256;
    case MESHLM_TYPE_BF16: return meshlm_act_block(MESHLM_TYPE_BF16);
    default: return 0;
    }
}

static bool no_rounding; /* set while computing the reference with unrounded activations */

/* Where the CPU has AVX512-BF16 the engine rounds activations to BF16 for BF16 weights
 * (nearest even, denormals to zero): modeled as that rounding of the f32 value. */
static double bf16_round(double v) {
    float f = (float)v;
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7f800000u) == 0) return 0.0;
    u += 0x7fffu + ((u >> 16) & 1u);
    u &= 0xffff0000u;
    memcpy(&f, &u, sizeof f);
    return f;
}

static void round_act(const double *x, int n, int blk, double *out) {
    if (blk == MESHLM_ACT_BF16) {
        for (int i = 0; i < n; i++) out[i] = bf16_round(x[i]);
        return;
    }
    for (int i = 0; i < n; i += blk) {
        double amax = 0;
        for (int j = i; j < i + blk; j++) amax = fmax(amax, fabs(x[j]));
        for (int j = i; j < i + blk; j++) out[j] = amax > 0 ? nearbyint(x[j] * 127.0 / amax) * (amax / 127.0) : 0.0;
    }
}

/* y[o] = sum_i W[o][i] x[i] (+ b[o]) where W is n_out rows of n_in. */
static void ref_matvec(ref_w w, const double *b, const double *x, int n_in, int n_out, double *y) {
    double *xr = malloc(sizeof(double) * n_in);
    int blk = no_rounding ? 0 : act_block(w.type);
    if (blk)
        round_act(x, n_in, blk, xr);
    else
        memcpy(xr, x, sizeof(double) * n_in);
    for (int o = 0; o < n_out; o++) {
        double s = b ? b[o] : 0.0;
        for (int i = 0; i < n_in; i++) s += w.w[(size_t)o * n_in + i] * xr[i];
        y[o] = s;
    }
    free(xr);
}

static void ref_norm(const double *x, const double *w, int n, double eps, double *y) {
    double ss = 0;
    for (int i = 0; i < n; i++) ss += x[i] * x[i];
    double sc = 1.0 / sqrt(ss / n + eps);
    for (int i = 0; i < n; i++) y[i] = x[i] * sc * w[i];
}

/* YaRN's factor (0 = none) and original context, for ref_rope. */
static double yarn_factor;
static int yarn_orig;

/* With YaRN, pair i's angle moves from the extrapolated one to the one divided by the
 * factor along a ramp between the pairs that turn 32 and 1 times over the original
 * context (rounded out to whole pairs); cos and sin then grow by 1 + 0.1 ln factor,
 * which the caller applies. */
static double yarn_angle(double th, int i, int n_rot, double base) {
    double lo = fmax(0, floor(n_rot * log(yarn_orig / (32 * 2 * M_PI)) / (2 * log(base))));
    double hi = fmin(n_rot - 1, ceil(n_rot * log(yarn_orig / (2 * M_PI)) / (2 * log(base))));
    double ramp = 1 - fmin(1, fmax(0, (i - lo) / fmax(0.001, hi - lo)));
    return th / yarn_factor * (1 - ramp) + th * ramp;
}

static void ref_rope(double *v, int hd, int n_rot, bool neox, double base, const double *ff, double pos) {
    for (int i = 0; i < n_rot / 2; i++) {
        double th = pos * pow(base, -2.0 * i / n_rot) / (ff ? ff[i] : 1.0);
        if (yarn_factor > 0) th = yarn_angle(th, i, n_rot, base);
        int a = neox ? i : 2 * i, b = neox ? i + n_rot / 2 : 2 * i + 1;
        double x0 = v[a], x1 = v[b];
        v[a] = x0 * cos(th) - x1 * sin(th);
        v[b] = x0 * sin(th) + x1 * cos(th);
    }
    (void)hd;
}

/* gpt-oss's expert activation: the gate clamped above at 7, the up value to [-7, 7]. */
static double swiglu_oai(double g, double u) {
    g = fmin(g, 7.0), u = fmax(-7.0, fmin(u, 7.0));
    return g / (1 + exp(-1.702 * g)) * (u + 1);
}

/* A mixture-of-experts FFN of one row: softmax over the router's scores, the n_used
 * highest, renormalised, each a SwiGLU expert read from the 3-D tensors; adds into y.
 * gpt-oss: biases on the router and the experts, the weights a softmax over the chosen
 * scores, its clamped SwiGLU. */
static void ref_moe(const meshlm_gguf *g, const meshlm_hparams *hp, int il, const double *xn, double *y) {
    int E = hp->n_embd, F = hp->n_ff_exp, X = hp->n_expert, K = hp->n_expert_used;
    ref_w router = layer_wt(g, il, "ffn_gate_inp.weight"), gate = layer_wt(g, il, "ffn_gate_exps.weight");
    ref_w up = layer_wt(g, il, "ffn_up_exps.weight"), down = layer_wt(g, il, "ffn_down_exps.weight");
    double *p = malloc(sizeof(double) * X), *g1 = malloc(sizeof(double) * F), *g3 = malloc(sizeof(double) * F);
    double *o = malloc(sizeof(double) * E), mx = -INFINITY, sum = 0, chosen_sum = 0;
    bool *taken = calloc((size_t)X, sizeof *taken);
    int *pick = malloc(sizeof(int) * K);
    bool oai = hp->arch == MESHLM_ARCH_GPTOSS;
    double *rb = layer_w(g, il, "ffn_gate_inp.bias"), *gb = layer_w(g, il, "ffn_gate_exps.bias");
    double *ub = layer_w(g, il, "ffn_up_exps.bias"), *db = layer_w(g, il, "ffn_down_exps.bias");
    ref_matvec(router, rb, xn, E, X, p);
    for (int x = 0; x < X; x++) mx = fmax(mx, p[x]);
    for (int x = 0; x < X; x++) sum += (p[x] = exp(p[x] - mx));
    for (int k = 0; k < K; k++) {
        int best = -1;
        for (int x = 0; x < X; x++)
            if (!taken[x] && (best < 0 || p[x] > p[best])) best = x;
        taken[best] = true, pick[k] = best, chosen_sum += p[best] / sum;
    }
    for (int k = 0; k < K; k++) {
        int x = pick[k];
        ref_w ge = {gate.w + (size_t)x * F * E, gate.type}, ue = {up.w + (size_t)x * F * E, up.type};
        ref_w de = {down.w + (size_t)x * E * F, down.type};
        ref_matvec(ge, gb ? gb + (size_t)x * F : NULL, xn, E, F, g1);
        ref_matvec(ue, ub ? ub + (size_t)x * F : NULL, xn, E, F, g3);
        for (int i = 0; i < F; i++) g1[i] = oai ? swiglu_oai(g1[i], g3[i]) : g1[i] / (1 + exp(-g1[i])) * g3[i];
        ref_matvec(de, db ? db + (size_t)x * E : NULL, g1, F, E, o);
        double w = p[x] / sum / (hp->expert_norm || oai ? chosen_sum : 1.0);
        for (int i = 0; i < E; i++) y[i] += w * o[i];
    }
    free(router.w), free(gate.w), free(up.w), free(down.w), free(rb), free(gb), free(ub), free(db);
    free(p), free(g1), free(g3), free(o), free(taken), free(pick);
    if (!hp->shared_expert) return;
    /* qwen2moe: a shared expert of width n_ff for every row, scaled by sigmoid(x . gate) */
    int S = hp->n_ff;
    double *sg = layer_w(g, il, "ffn_gate_inp_shexp.weight"), d = 0;
    ref_w w1 = layer_wt(g, il, "ffn_gate_shexp.weight"), w3 = layer_wt(g, il, "ffn_up_shexp.weight");
    ref_w w2 = layer_wt(g, il, "ffn_down_shexp.weight");
    g1 = malloc(sizeof(double) * S), g3 = malloc(sizeof(double) * S), o = malloc(sizeof(double) * E);
    for (int i = 0; i < E; i++) d += xn[i] * sg[i];
    ref_matvec(w1, NULL, xn, E, S, g1);
    ref_matvec(w3, NULL, xn, E, S, g3);
    for (int i = 0; i < S; i++) g1[i] = g1[i] / (1 + exp(-g1[i])) * g3[i];
    ref_matvec(w2, NULL, g1, S, E, o);
    for (int i = 0; i < E; i++) y[i] += o[i] / (1 + exp(-d));
    free(sg), free(w1.w), free(w3.w), free(w2.w), free(g1), free(g3), free(o);
}

/* Logits of the last of n tokens, computed from scratch. */
static double *ref_forward(const meshlm_model *m, const int32_t *tok, int n) {
    const meshlm_gguf *g = m->gguf;
    const meshlm_hparams *hp = &m->hp;
    int E = hp->n_embd, H = hp->n_head, KVH = hp->n_head_kv, D = hp->head_dim, F = hp->n_ff, V = hp->n_vocab;
    double eps = hp->rms_eps;
    double *emb = load(g, "token_embd.weight", NULL);
    double *ff = load(g, "rope_freqs.weight", NULL);
    /* phi3: the long factors for the sessions' 64 positions when its original context is
     * shorter, the short ones otherwise; either way the attention factor on cos and sin */
    if (!ff && hp->arch == MESHLM_ARCH_PHI3)
        ff = load(g, 64 > hp->n_ctx_orig ? "rope_factors_long.weight" : "rope_factors_short.weight", NULL);
    double amp = hp->rope_attn_factor > 0 ? hp->rope_attn_factor : 1.0;
    bool oai = hp->arch == MESHLM_ARCH_GPTOSS;
    yarn_factor = hp->rope_yarn, yarn_orig = hp->n_ctx_orig;
    if (yarn_factor > 0) amp *= 1 + 0.1 * log(yarn_factor);
    double *x = calloc((size_t)n * E, sizeof *x), *xn = malloc(sizeof(double) * E);
    double *q = malloc(sizeof(double) * n * H * D), *k = malloc(sizeof(double) * n * KVH * D);
    double *v = malloc(sizeof(double) * n * KVH * D), *att = malloc(sizeof(double) * H * D);
    double *tmp = malloc(sizeof(double) * (E > F ? E : F)), *g1 = malloc(sizeof(double) * F), *g3 = malloc(sizeof(double) * F);
    double *sc = malloc(sizeof(double) * n);
    bool gemma = hp->arch == MESHLM_ARCH_GEMMA2 || hp->arch == MESHLM_ARCH_GEMMA3;
    for (int t = 0; t < n; t++)
        for (int i = 0; i < E; i++) x[(size_t)t * E + i] = emb[(size_t)tok[t] * E + i] * (gemma ? sqrt((double)E) : 1.0);
    for (int il = 0; il < hp->n_layer; il++) {
        /* gpt-oss: the FFN's input norm is named post_attention_norm; the attention's output
         * has a bias, and each head a sink logit in its softmax */
        double *an = layer_w(g, il, "attn_norm.weight");
        double *fn = layer_w(g, il, oai ? "post_attention_norm.weight" : "ffn_norm.weight");
        double *pan = oai ? NULL : layer_w(g, il, "post_attention_norm.weight");
        double *pfn = layer_w(g, il, "post_ffw_norm.weight");
        double *bo = layer_w(g, il, "attn_output.bias"), *sinks = layer_w(g, il, "attn_sinks.weight");
        /* gemma: layers where il % pattern < pattern - 1 see the last n_swa positions (gemma2's
         * even layers); gemma3 rotates them with their own base, unscaled, and the others with
         * positions divided by the linear scaling factor */
        int window = gemma && (hp->swa_pattern == 0 || il % hp->swa_pattern < hp->swa_pattern - 1) ? hp->n_swa : 0;
        if (oai) window = il % 2 == 0 ? hp->n_swa : 0; /* gpt-oss: the even layers */
        /* smollm3: every fourth layer has no rope */
        bool roped = hp->arch != MESHLM_ARCH_SMOLLM3 || (il + 1) % 4 != 0;
        bool own_rope = window && hp->rope_theta_swa > 0;
        double base = own_rope ? hp->rope_theta_swa : hp->rope_theta, scale = own_rope ? 1.0 : hp->rope_scale;
        ref_w wq = layer_wt(g, il, "attn_q.weight"), wk = layer_wt(g, il, "attn_k.weight");
        ref_w wv = layer_wt(g, il, "attn_v.weight"), wo = layer_wt(g, il, "attn_output.weight");
        /* phi3's fused q/k/v rows and gate/up rows, split as pointers into one load */
        ref_w qkv = layer_wt(g, il, "attn_qkv.weight"), up = layer_wt(g, il, "ffn_up.weight");
        bool fused_up = hp->arch == MESHLM_ARCH_PHI3;
        if (qkv.w) {
            wq = qkv, wk = qkv, wv = qkv;
            wk.w += (size_t)H * D * E, wv.w += (size_t)(H + KVH) * D * E;
        }
        double *bq = layer_w(g, il, "attn_q.bias"), *bk = layer_w(g, il, "attn_k.bias"), *bv = layer_w(g, il, "attn_v.bias");
        double *qn = layer_w(g, il, "attn_q_norm.weight"), *kn = layer_w(g, il, "attn_k_norm.weight");
        ref_w w1 = layer_wt(g, il, "ffn_gate.weight"), w2 = layer_wt(g, il, "ffn_down.weight");
        ref_w w3 = up;
        if (fused_up) w1 = up, w3.w += (size_t)F * E;
        for (int t = 0; t < n; t++) {
            ref_norm(x + (size_t)t * E, an, E, eps, xn);
            ref_matvec(wq, bq, xn, E, H * D, q + (size_t)t * H * D);
            ref_matvec(wk, bk, xn, E, KVH * D, k + (size_t)t * KVH * D);
            ref_matvec(wv, bv, xn, E, KVH * D, v + (size_t)t * KVH * D);
            for (int h = 0; h < H; h++) {
                double *qh = q + (size_t)t * H * D + h * D;
                if (qn) ref_norm(qh, qn, D, eps, qh);
                if (!roped) continue;
                ref_rope(qh, D, hp->n_rot, hp->rope_neox, base, ff, t / scale);
                for (int i = 0; i < hp->n_rot; i++) qh[i] *= amp;
            }
            for (int h = 0; h < KVH; h++) {
                double *kh = k + (size_t)t * KVH * D + h * D;
                if (kn) ref_norm(kh, kn, D, eps, kh);
                if (!roped) continue;
                ref_rope(kh, D, hp->n_rot, hp->rope_neox, base, ff, t / scale);
                for (int i = 0; i < hp->n_rot; i++) kh[i] *= amp;
            }
        }
        double *x2 = malloc(sizeof(double) * n * E);
        memcpy(x2, x, sizeof(double) * n * E);
        for (int t = 0; t < n; t++) {
            for (int h = 0; h < H; h++) {
                int kvh = h / (H / KVH);
                double mx = -INFINITY, sum = 0;
                int first = window && t >= window ? t - window + 1 : 0;
                for (int s = first; s <= t; s++) {
                    double d = 0;
                    for (int i = 0; i < D; i++) d += q[(size_t)t * H * D + h * D + i] * k[(size_t)s * KVH * D + kvh * D + i];
                    sc[s] = d / sqrt((double)D);
                    if (hp->attn_softcap > 0) sc[s] = hp->attn_softcap * tanh(sc[s] / hp->attn_softcap);
                    if (sc[s] > mx) mx = sc[s];
                }
                if (sinks) mx = fmax(mx, sinks[h]), sum = exp(sinks[h] - mx);
                for (int s = first; s <= t; s++) sum += (sc[s] = exp(sc[s] - mx));
                for (int i = 0; i < D; i++) {
                    double a = 0;
                    for (int s = first; s <= t; s++) a += sc[s] / sum * v[(size_t)s * KVH * D + kvh * D + i];
                    att[h * D + i] = a;
                }
            }
            ref_matvec(wo, bo, att, H * D, E, tmp);
            if (pan) ref_norm(tmp, pan, E, eps, tmp);
            for (int i = 0; i < E; i++) x2[(size_t)t * E + i] += tmp[i];
            ref_norm(x2 + (size_t)t * E, fn, E, eps, xn);
            if (hp->n_expert) {
                ref_moe(g, hp, il, xn, x2 + (size_t)t * E);
                continue;
            }
            ref_matvec(w1, NULL, xn, E, F, g1);
            ref_matvec(w3, NULL, xn, E, F, g3);
            for (int i = 0; i < F; i++) {
                double u = g1[i];
                g1[i] = gemma ? 0.5 * u * (1 + tanh(sqrt(2 / M_PI) * (u + 0.044715 * u * u * u))) * g3[i]
                              : u / (1 + exp(-u)) * g3[i];
            }
            ref_matvec(w2, NULL, g1, F, E, tmp);
            if (pfn) ref_norm(tmp, pfn, E, eps, tmp);
            for (int i = 0; i < E; i++) x2[(size_t)t * E + i] += tmp[i];
        }
        memcpy(x, x2, sizeof(double) * n * E);
        free(x2);
        if (qkv.w)
            free(qkv.w);
        else
            free(wq.w), free(wk.w), free(wv.w);
        free(an), free(fn), free(wo.w), free(bq), free(bk), free(bv);
        free(qn), free(kn), free(up.w), free(w2.w), free(pan), free(pfn), free(bo), free(sinks);
        if (!fused_up) free(w1.w);
    }
    double *onorm = load(g, "output_norm.weight", NULL);
    ref_w out = load_w(g, "output.weight");
    if (!out.w) out = load_w(g, "token_embd.weight");
    double *logits = malloc(sizeof(double) * V);
    ref_norm(x + (size_t)(n - 1) * E, onorm, E, eps, xn);
    ref_matvec(out, NULL, xn, E, V, logits);
    if (hp->final_softcap > 0)
        for (int i = 0; i < V; i++) logits[i] = hp->final_softcap * tanh(logits[i] / hp->final_softcap);
    free(onorm), free(out.w), free(emb), free(ff), free(x), free(xn), free(q), free(k), free(v), free(att);
    free(tmp), free(g1), free(g3), free(sc);
    return logits;
}

static double max_diff(const float *got, const double *ref, int n) {
    double m = 0;
    for (int i = 0; i < n; i++) m = fmax(m, fabs(got[i] - ref[i]));
    return m;
}

static double compare(const float *got, const double *ref, int n) {
    double worst = 0;
    for (int i = 0; i < n; i++) {
        double err = fabs(got[i] - ref[i]) / (TOL_ABS + TOL_REL * fabs(ref[i]));
        if (err > worst) worst = err;
    }
    return worst; /* <= 1 passes */
}

static meshlm_session *session(const meshlm_model *m, int threads) {
    meshlm_session_params sp = meshlm_session_defaults();
    sp.n_threads = threads;
    sp.n_ctx = 256;
    sp.sampler.temperature = 0;
    meshlm_session *s = NULL;
    CHECK(meshlm_session_create(m, &sp, &s) == MESHLM_OK);
    return s;
}

/* Prefill of n (<= 160) tokens vs the reference; then the same tokens one at a time with
 * another thread count must give the same bits. */
static void check_model(const char *path, const char *label, int n) {
    meshlm_model *m;
    if (meshlm_model_load(path, &m) != MESHLM_OK) {
        CHECK_MSG(0, "%s: %s", label, meshlm_last_error());
        return;
    }
    int V = m->hp.n_vocab;
    int32_t tok[160];
    for (int i = 0; i < n; i++) tok[i] = (int32_t)((i * 7919 + 17) % V);
    meshlm_session *a = session(m, 1), *b = session(m, 3);
    if (a && b) {
        CHECK(meshlm_session_eval(a, tok, n) == MESHLM_OK);
        for (int i = 0; i < n; i++) CHECK(meshlm_session_eval(b, tok + i, 1) == MESHLM_OK);
        CHECK_MSG(memcmp(meshlm_session_logits(a), meshlm_session_logits(b), sizeof(float) * V) == 0,
                  "%s: prefill and decode logits differ", label);
        const float *got = meshlm_session_logits(a);
        double *ref = ref_forward(m, tok, n);
        double w = compare(got, ref, V);
        bool int8 = act_block(m->output.type) || act_block(m->layers[0].wq.type);
        if (int8 && w > 1.0) {
            no_rounding = true;
            double *ref_f = ref_forward(m, tok, n);
            no_rounding = false;
            double eq = max_diff(got, ref, V), ef = max_diff(got, ref_f, V), dq = 0;
            for (int i = 0; i < V; i++) dq = fmax(dq, fabs(ref[i] - ref_f[i]));
            CHECK_MSG(eq < ef && eq <= dq,
                      "%s: logits %.3g from the int8-activation reference, %.3g from the f32 one (which are %.3g apart)",
                      label, eq, ef, dq);
            fprintf(stderr, "%-28s a rounding tie flipped: %.3g from the int8 reference, %.3g from the f32 one\n",
                    label, eq, ef);
            free(ref_f);
        } else {
            CHECK_MSG(w <= 1.0, "%s: logits differ from the reference by %.3g x the tolerance", label, w);
        }
        fprintf(stderr, "%-28s max error %.3f of tolerance\n", label, w);
        free(ref);
    }
    meshlm_session_free(a);
    meshlm_session_free(b);
    meshlm_model_free(m);
}

int main(void) {
    char dir[] = "/tmp/meshlm-forward-XXXXXX";
    if (!mkdtemp(dir)) t_skip("cannot make a temporary directory");
    /* the second gemma3 windows every layer; the second llama has heads narrower than
     * n_embd / n_head, as Mistral-Nemo's */
    const char *archs[] = {"llama", "qwen2", "qwen3", "gemma2", "gemma3", "phi3", "smollm3", "gemma3", "llama",
                           "qwen3moe", "llama", "qwen2moe", "gpt-oss"};
    int types[] = {MESHLM_TYPE_F32, MESHLM_TYPE_F16, MESHLM_TYPE_BF16, MESHLM_TYPE_Q8_0, MESHLM_TYPE_Q4_0,
                   MESHLM_TYPE_Q4_1, MESHLM_TYPE_Q5_0, MESHLM_TYPE_Q5_1, MESHLM_TYPE_Q4_K, MESHLM_TYPE_Q5_K,
                   MESHLM_TYPE_Q6_K};
    char path[256], label[64];
    for (size_t a = 0; a < 13; a++)
        for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
            meshlm_synth_params p;
            CHECK(meshlm_synth_preset("tiny", archs[a], &p) == MESHLM_OK);
            p.type = types[t];
            p.seed = 11 + t;
            p.rope_freqs = a == 0;
            /* gemma: a window the 12 tokens cross, caps tight enough to bend the values;
             * gemma3: one windowed and one global layer, the global one's rope scaled and
             * based apart from the windowed one's */
            p.sliding_window = 5, p.attn_softcap = 1.5f, p.final_softcap = 4.0f;
            if (a == 4) p.swa_pattern = 2, p.rope_theta = 1e6f, p.rope_scale = 4.0f;
            /* phi3: the long factors (past an original context of 32) on half the types */
            if (a == 5) p.n_ctx_orig = t % 2 ? 32 : 0;
            /* smollm3: four layers, so that one has no rope */
            if (a == 6) p.n_layer = 4;
            if (a == 7) p.swa_pattern = -1;
            if (a == 8) p.n_embd = 512, p.n_head = 8, p.head_dim = 32;
            /* mixtures: 8 experts of 256 (Mixtral's: the FFN's width, 512), 2 or 3 per token */
            if (a == 9 || a == 11) p.n_ff_exp = 256;
            if (a == 10) p.n_expert = 8, p.n_expert_used = 3;
            /* gpt-oss: experts of 256 (its n_ff), the window the 12 tokens cross */
            if (a == 12) p.n_ff = p.n_ff_exp = 256;
            const char *variant = a == 7 ? " all-windowed" : a == 8 ? " head 32" : a == 10 ? " 8 experts" : "";
            snprintf(path, sizeof path, "%s/%s-%zu-%s.gguf", dir, archs[a], a, meshlm_type_name(types[t]));
            snprintf(label, sizeof label, "%s%s %s", archs[a], variant, meshlm_type_name(types[t]));
            if (meshlm_synth_write(&p, path) != MESHLM_OK) {
                CHECK_MSG(0, "%s: %s", label, meshlm_last_error());
                continue;
            }
            /* all-windowed: long enough that whole pages of 64 leave the window and go */
            check_model(path, label, a == 7 ? 150 : (a >= 3 && a <= 4) || a == 12 ? 12 : 7);
            unlink(path);
        }
    rmdir(dir);
    FILE *f = fopen(MESHLM_SHARED_DIR "/models/stories260K.gguf", "rb");
    if (f) {
        fclose(f);
        check_model(MESHLM_SHARED_DIR "/models/stories260K.gguf", "stories260K", 12);
    } else {
        printf("note: stories260K.gguf absent: checked synthetic models only\n");
    }
    return t_done();
}
