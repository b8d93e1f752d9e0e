/* meshlm info: what a model file holds: architecture, hyper-parameters, tokenizer and a
 * table of its tensors. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "apps/args.h"
#include "apps/commands.h"
#include "core/dtype.h"
#include "core/status.h"
#include "mesh/mesh.h"
#include "model/forward.h"
#include "model/kv_paged.h"
#include "model/model.h"
#include "model/options.h"
#include "model/plan.h"

/* KV memory per position and per page (64 positions, the default) for each KV type the
 * paged cache supports, and at the training context. */
static void print_kv(const meshlm_model *m) {
    const meshlm_hparams *hp = &m->hp;
    int types[] = {MESHLM_TYPE_F32, MESHLM_TYPE_F16, MESHLM_TYPE_BF16, MESHLM_TYPE_Q8_0};
    printf("KV cache          per position / per page of 64 / at the training context %d:\n", hp->n_ctx_train);
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        meshlm_kv_params kp = meshlm_kv_params_for(m, hp->n_head_kv, types[i], 64, 0);
        size_t page = meshlm_kv_page_bytes(&kp);
        if (page == 0 || hp->head_dim % meshlm_type_block_elems(types[i])) {
            printf("  %-5s           not available (head size %d)\n", meshlm_type_name(types[i]), hp->head_dim);
            continue;
        }
        double per_pos = 2.0 * hp->n_layer * (double)meshlm_type_row_bytes(types[i], (int64_t)hp->n_head_kv * hp->head_dim);
        double pages = (double)((hp->n_ctx_train + 63) / 64);
        printf("  %-5s           %.1f KiB / %.2f MiB / %.1f MiB%s\n", meshlm_type_name(types[i]), per_pos / 1024,
               (double)page / (1024.0 * 1024.0), pages * (double)page / (1024.0 * 1024.0),
               types[i] == MESHLM_TYPE_F32 ? " (default)" : "");
    }
}

/* Which layers are windowed, and which are not rotated, as counts and the first few. */
static void print_layer_sets(const meshlm_hparams *hp) {
    for (int set = 0; set < 2; set++) {
        int n = 0, shown = 0;
        char list[96] = "";
        for (int il = 0; il < hp->n_layer; il++) {
            bool in = set == 0 ? meshlm_layer_window(hp, il) > 0 : !meshlm_layer_roped(hp, il);
            if (!in) continue;
            size_t len = strlen(list);
            if (shown < 8) shown++, snprintf(list + len, sizeof list - len, "%s%d", n ? " " : "", il);
            n++;
        }
        if (n == 0) continue;
        const char *more = n > shown ? " ..." : "";
        if (set == 0)
            printf("sliding window    %d positions on %d of %d layers (%s%s)%s\n", hp->n_swa, n, hp->n_layer, list,
                   more, n < hp->n_layer ? "; the others see every position" : ": older KV pages are freed");
        else
            printf("no rope           on %d of %d layers (%s%s)\n", n, hp->n_layer, list, more);
    }
}

static void print_hparams(const meshlm_model *m) {
    const meshlm_hparams *hp = &m->hp;
    printf("architecture      %s\n", hp->arch_name);
    printf("layers            %d\n", hp->n_layer);
    printf("embedding         %d\n", hp->n_embd);
    printf("heads             %d (KV heads %d, head size %d)\n", hp->n_head, hp->n_head_kv, hp->head_dim);
    printf("feed-forward      %d\n", hp->n_ff);
    printf("vocabulary        %d\n", hp->n_vocab);
    printf("training context  %d\n", hp->n_ctx_train);
    printf("rope              %s, base %g, %d dims%s\n", hp->rope_neox ? "neox" : "normal", (double)hp->rope_theta,
           hp->n_rot, m->rope_freqs ? ", llama3 frequency factors" : "");
    if (hp->rope_scale != 1.0f) printf("rope scaling      linear, positions divided by %g\n", (double)hp->rope_scale);
    if (hp->rope_yarn > 0)
        printf("rope scaling      YaRN, factor %g over %d positions (betas %g, %g), cos and sin times %g\n",
               (double)hp->rope_yarn, hp->n_ctx_orig, (double)hp->yarn_beta_fast, (double)hp->yarn_beta_slow,
               (double)hp->rope_attn_factor * (1 + 0.1 * log((double)hp->rope_yarn)));
    if (m->rope_long || m->rope_short)
        printf("rope factors      LongRoPE, long past %d positions (else short), attention factor %g\n",
               hp->n_ctx_orig, (double)hp->rope_attn_factor);
    if (hp->arch == MESHLM_ARCH_PHI3)
        printf("fused tensors     %sgate/up, split into views\n",
               meshlm_gguf_find_tensor(m->gguf, "blk.0.attn_qkv.weight") ? "q/k/v and " : "");
    if (hp->rope_theta_swa > 0 && hp->n_swa > 0)
        printf("windowed rope     base %g, %s, on the windowed layers\n", (double)hp->rope_theta_swa,
               hp->rope_swa_scaled ? "scaled as the others" : "unscaled");
    printf("rms norm eps      %g\n", (double)hp->rms_eps);
    printf("output            %s\n", hp->tied_output ? "tied to the embedding" : "separate output.weight");
    const meshlm_layer *L0 = &m->layers[0];
    if (!hp->n_expert || hp->shared_expert)
        printf("feed-forward act  %s\n", hp->ffn_act == MESHLM_ACT_GELU ? "GeGLU (gelu, tanh form)" : "SwiGLU (silu)");
    if (hp->n_expert && hp->expert_softmax_k)
        printf("experts           %d of %d per token, each %d wide; top %d by router score, weights a softmax over "
               "them\n",
               hp->n_expert_used, hp->n_expert, hp->n_ff_exp, hp->n_expert_used);
    else if (hp->n_expert)
        printf("experts           %d of %d per token, each %d wide; softmax router, the chosen weights %s\n",
               hp->n_expert_used, hp->n_expert, hp->n_ff_exp, hp->expert_norm ? "renormalised" : "as they are");
    if (hp->n_expert)
        printf("expert act        %s\n", hp->expert_act == MESHLM_ACT_SWIGLU_OAI
                                            ? "clamped SwiGLU (gate at most 7, x sigmoid(1.702 x); up in [-7, 7], plus 1)"
                                            : "SwiGLU (silu)");
    if (L0->router_b) printf("biases            router, experts, attention output\n");
    if (L0->attn_sinks) printf("attention sinks   one logit per head in each softmax\n");
    printf("query scale       %g\n", (double)hp->attn_scale);
    if (m->layers[0].q_norm) printf("q/k norms         RMS norm of each query and key head before rope\n");
    if (m->layers[0].attn_post_norm) printf("post-norms        after attention and after the feed-forward\n");
    if (hp->embd_scale > 0) printf("embedding scale   %g (sqrt of the embedding length)\n", (double)hp->embd_scale);
    if (hp->attn_softcap > 0) printf("attention cap     %g (soft-capped scores)\n", (double)hp->attn_softcap);
    if (hp->final_softcap > 0) printf("final logit cap   %g\n", (double)hp->final_softcap);
    print_layer_sets(hp);
    printf("parameters        %.3f M\n", (double)meshlm_model_n_params(m) / 1e6);
    printf("weights per token %.3f MB read per decoded token\n", (double)meshlm_model_weight_bytes(m) / 1e6);
    print_kv(m);
}

static void print_tokenizer(const meshlm_tokenizer *t) {
    printf("tokenizer         %s, pre-tokenizer %s, %d tokens, BOS %d, EOS %d\n",
           meshlm_tokenizer_kind(t) == MESHLM_TOK_SPM ? "llama (SentencePiece)" : "gpt2 (byte-level BPE)",
           meshlm_tokenizer_pre(t), meshlm_tokenizer_n_vocab(t), meshlm_tokenizer_bos(t), meshlm_tokenizer_eos(t));
}

static void print_tensors(const meshlm_gguf *g) {
    printf("\nGGUF v%u, alignment %u, %zu bytes, %lld tensors\n", meshlm_gguf_version(g), meshlm_gguf_alignment(g),
           meshlm_gguf_file_size(g), (long long)meshlm_gguf_n_tensors(g));
    printf("%-36s %-6s %-24s %14s\n", "name", "type", "shape", "bytes");
    for (int64_t i = 0; i < meshlm_gguf_n_tensors(g); i++) {
        const meshlm_gguf_tensor *t = meshlm_gguf_tensor_at(g, i);
        char shape[64];
        int n = snprintf(shape, sizeof shape, "[%lld", (long long)t->ne[0]);
        for (int d = 1; d < t->n_dims; d++) n += snprintf(shape + n, sizeof shape - (size_t)n, ", %lld", (long long)t->ne[d]);
        snprintf(shape + n, sizeof shape - (size_t)n, "]");
        printf("%-36s %-6s %-24s %14zu\n", t->name, meshlm_type_name(t->type), shape, t->nbytes);
    }
}

typedef struct info_opts {
    const char *path, *opt, *opt_set, *mesh, *mode;
    bool plan;
    int64_t device, rows;
} info_opts;

/* Device `device` of the mesh: its shard, then its plan for each asked mode, printed. */
static int print_plans(const meshlm_model *m, const info_opts *o) {
    int rows = 1, cols = 1, rc;
    meshlm_opts opts;
    if ((rc = meshlm_opts_make(o->opt, o->opt_set, &opts))) return rc;
    if (o->mesh && (rc = meshlm_mesh_parse(o->mesh, &rows, &cols))) return rc;
    if (o->device >= rows * cols)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "--device %lld: the mesh %dx%d has devices 0..%d",
                           (long long)o->device, rows, cols, rows * cols - 1);
    int row = (int)(o->device / cols), col = (int)(o->device % cols), axis_a = meshlm_shard_axis_a(rows, cols);
    meshlm_shard sh;
    if ((rc = meshlm_plan_shard(m, axis_a, axis_a == 0 ? rows : cols, axis_a == 0 ? cols : rows,
                                axis_a == 0 ? row : col, axis_a == 0 ? col : row, &opts, &sh)))
        return rc;
    printf("device %lld of mesh %dx%d (row %d, col %d): heads [%lld, %lld) (attends [%lld, %lld)), ffn [%lld, %lld), "
           "vocab [%lld, %lld)\n",
           (long long)o->device, rows, cols, row, col, (long long)sh.heads.lo, (long long)sh.heads.hi,
           (long long)sh.att_heads.lo, (long long)sh.att_heads.hi,
           (long long)sh.ffn.lo, (long long)sh.ffn.hi, (long long)sh.vocab.lo, (long long)sh.vocab.hi);
    for (int mode = 0; mode < 2 && !rc; mode++) {
        if (o->mode && strcmp(o->mode, meshlm_mode_name((meshlm_mode)mode)) != 0) continue;
        meshlm_plan p;
        if ((rc = meshlm_plan_build(m, &sh, (meshlm_mode)mode, (int32_t)o->rows, &opts, &p))) break;
        meshlm_plan_print(&p, stdout);
        meshlm_plan_free(&p);
    }
    meshlm_shard_free(&sh);
    return rc;
}

#define INFO_USAGE                                                                                          \
    "usage: meshlm info -m FILE [--plan [--mode decode|prefill] [--opt P] [--opt-set LIST] [--mesh RxC]\n" \
    "                              [--device N] [--rows N]]\n"

int meshlm_cmd_info(int argc, char **argv) {
    info_opts o = {.rows = 64};
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        bool missing = false;
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf(INFO_USAGE "  --plan prints a device's forward plans (steps, ops, shapes, buffers, bytes of\n"
                              "  weights read) for the options, instead of the model's tables\n");
            return 0;
        }
        if (!strcmp(argv[i], "--plan")) {
            o.plan = true;
            continue;
        }
        const char **str = meshlm_arg_take(argc, argv, &i, "-m", "--model", &v, &missing) ? &o.path
                           : meshlm_arg_take(argc, argv, &i, "--opt", NULL, &v, &missing)     ? &o.opt
                           : meshlm_arg_take(argc, argv, &i, "--opt-set", NULL, &v, &missing) ? &o.opt_set
                           : meshlm_arg_take(argc, argv, &i, "--mesh", NULL, &v, &missing)    ? &o.mesh
                           : meshlm_arg_take(argc, argv, &i, "--mode", NULL, &v, &missing)    ? &o.mode
                                                                                               : NULL;
        int64_t *num = str ? NULL
                       : meshlm_arg_take(argc, argv, &i, "--device", NULL, &v, &missing) ? &o.device
                       : meshlm_arg_take(argc, argv, &i, "--rows", NULL, &v, &missing)   ? &o.rows
                                                                                          : NULL;
        if (missing) {
            fprintf(stderr, "meshlm info: %s needs a value\n", argv[i]);
            return 2;
        }
        if (str) {
            *str = v;
            continue;
        }
        if (num && meshlm_arg_int("info", argv[i - 1], v, num == &o.rows ? 1 : 0, 1 << 20, num)) continue;
        if (num) return 2;
        fprintf(stderr, "meshlm info: unknown option '%s'\n" INFO_USAGE, argv[i]);
        return 2;
    }
    if (!o.path) {
        fprintf(stderr, INFO_USAGE);
        return 2;
    }
    if (o.mode && strcmp(o.mode, "decode") != 0 && strcmp(o.mode, "prefill") != 0) {
        fprintf(stderr, "meshlm info: --mode: '%s' is not decode or prefill\n", o.mode);
        return 2;
    }
    meshlm_model *m;
    if (meshlm_model_load(o.path, &m) != MESHLM_OK) {
        fprintf(stderr, "meshlm info: %s\n", meshlm_last_error());
        return 1;
    }
    int rc = 0;
    if (o.plan) {
        if (meshlm_model_prepare(m, o.opt, o.opt_set) != MESHLM_OK || print_plans(m, &o) != MESHLM_OK) {
            fprintf(stderr, "meshlm info: %s\n", meshlm_last_error());
            rc = 1;
        }
        meshlm_model_free(m);
        return rc;
    }
    printf("file              %s\n", o.path);
    print_hparams(m);
    print_tokenizer(m->tok);
    print_tensors(m->gguf);
    meshlm_model_free(m);
    return 0;
}
