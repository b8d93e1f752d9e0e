/* meshlm synth: writes a model with deterministic random weights and a synthetic
 * tokenizer, from a preset or explicit dimensions. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "apps/args.h"
#include "apps/commands.h"
#include "core/dtype.h"
#include "meshlm.h"
#include "model/synth.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: meshlm synth --arch llama|qwen2|qwen3|qwen3moe|qwen2moe|gemma2|gemma3|phi3|smollm3|gpt-oss\n"
            "                    (--preset NAME | --n-embd N --n-layer N --n-head N [--n-head-kv N]\n"
            "                    --n-ff N --n-vocab N [--head-dim N] [--n-ctx N]) --type TYPE -o FILE\n"
            "                    [--seed S] [--tied|--untied] [--rope-theta F]\n"
            "                    [--rope-freqs|--no-rope-freqs] [--sliding-window N] [--attn-softcap F]\n"
            "                    [--final-softcap F] [--swa-pattern N] [--rope-scale F] [--n-ctx-orig N]\n"
            "                    [--pre NAME] [--n-expert N] [--n-expert-used N] [--n-ff-exp N]\n"
            "                    [--n-ff-shexp N] [--expert-type T]\n"
            "\n"
            "Writes a GGUF model with deterministic random weights (the same options give\n"
            "the same bytes) and a synthetic byte-level BPE tokenizer; meshlm and llama.cpp\n"
            "both load it.\n"
            "\n"
            "  --arch A         llama, qwen2 (q/k/v biases), qwen3 (q/k norms), gemma2 (post-norms,\n"
            "                   GeGLU, soft-caps, sliding window; always tied), gemma3 (gemma2's\n"
            "                   parts without the attention cap, q/k norms, five windowed layers\n"
            "                   of six with rope base 10000), phi3 (fused q/k/v and gate/up,\n"
            "                   LongRoPE factors), smollm3 (llama's parts, every fourth layer\n"
            "                   without rope), qwen3moe (qwen3's attention, every FFN a mixture of\n"
            "                   experts), qwen2moe (qwen2's attention, experts and a shared\n"
            "                   expert; always untied) or gpt-oss (q/k/v and output biases,\n"
            "                   attention sinks, even layers windowed, YaRN rope, biased router\n"
            "                   and experts with a SwiGLU clamped at 7; always untied); overrides\n"
            "                   the preset's own arch\n"
            "  --preset NAME    %s\n"
            "                   (dimension options given with a preset override it)\n"
            "  --n-embd N, --n-layer N, --n-head N, --n-ff N, --n-vocab N\n"
            "                   the shape when there is no preset; --n-head-kv defaults to\n"
            "                   --n-head, --head-dim to n-embd/n-head (gpt-oss's heads need not\n"
            "                   fill n-embd), --n-ctx to 2048\n"
            "  --type TYPE      type of every matrix, embedding and LM head included (norms, biases,\n"
            "                   sinks and MoE routers stay F32): F32, F16, BF16, Q8_0, Q4_0, Q4_1,\n"
            "                   Q5_0, Q5_1, Q4_K, Q5_K, Q6_K. Every matrix row length (n-embd,\n"
            "                   n-head*head-dim, n-ff, n-ff-exp, n-ff-shexp) must be a multiple of\n"
            "                   the type's block size (32; 256 for K-quants), otherwise synth fails\n"
            "                   naming the tensor and the sizes\n"
            "  -o FILE          output path\n"
            "  --seed S         weight seed (default 1)\n"
            "  --tied           no output.weight: the LM head is the embedding\n"
            "  --untied         a separate output.weight\n"
            "  --rope-theta F   rope base frequency\n"
            "  --rope-freqs     write llama3 rope scaling factors (llama only)\n"
            "  --sliding-window N  gemma2, gemma3, gpt-oss: the window of the windowed layers\n"
            "                   (tiny: 32, else gemma2 4096, gemma3 512, gpt-oss 128); phi3: stated\n"
            "                   only\n"
            "  --attn-softcap F, --final-softcap F\n"
            "                   gemma2: the attention and final logit soft-caps (50, 30); gemma3:\n"
            "                   the final one only (none unless given)\n"
            "  --swa-pattern N  gemma3: layer il is windowed when il %% N < N - 1 (6); \"all\"\n"
            "                   windows every layer\n"
            "  --rope-scale F   gemma2, gemma3: linear rope scaling (gemma3: of its global layers);\n"
            "                   gpt-oss: the YaRN factor (32)\n"
            "  --n-ctx-orig N   phi3: the original context of the LongRoPE factors (4096); longer\n"
            "                   contexts take the long factors. gpt-oss: YaRN's original context\n"
            "                   (4096). At most --n-ctx\n"
            "  --pre NAME       the tokenizer's pre-tokenizer name (tokenizer.ggml.pre), e.g.\n"
            "                   tekken or smollm, to test other families' splits on the same\n"
            "                   vocabulary (default: llama-bpe, qwen2 for the qwen archs, gpt-4o\n"
            "                   for gpt-oss); written as given, so a name meshlm does not know\n"
            "                   fails at load\n"
            "  --n-expert N     qwen3moe, qwen2moe, gpt-oss, llama: experts per layer (at most\n"
            "                   1024), each a SwiGLU, stored stacked in 3-D tensors beside an F32\n"
            "                   router; llama MoE layers (Mixtral's) have no dense FFN, 0 makes\n"
            "                   them dense again. Default 8 for qwen3moe, qwen2moe and gpt-oss\n"
            "                   unless the preset has experts\n"
            "  --n-expert-used N  experts each token takes, 1 to --n-expert (default: the preset's,\n"
            "                   else 2, gpt-oss 4, at most --n-expert)\n"
            "  --n-ff-exp N     qwen3moe, qwen2moe: each expert's width (default: the preset's,\n"
            "                   else n-ff/4); llama's and gpt-oss's experts are --n-ff wide\n"
            "                   (gpt-oss: --n-ff-exp alone sets --n-ff too)\n"
            "  --n-ff-shexp N   qwen2moe: the shared expert's width (default: the preset's, else\n"
            "                   n-ff/2)\n"
            "  --expert-type T  the routed experts' type (default --type's; gpt-oss-20b-4l's MXFP4),\n"
            "                   e.g. MXFP4 experts beside Q8_0 for the rest, as gpt-oss ships\n",
            meshlm_synth_preset_names());
}

typedef struct opts {
    const char *arch, *preset, *type, *out, *pre, *expert_type;
    int64_t dims[8]; /* by dim_names index; -1 = not given */
    uint64_t seed;
    int tied;        /* -1 not given, 0 untied, 1 tied */
    int rope_freqs;  /* -1 not given */
    double rope_theta, attn_softcap, final_softcap, rope_scale;
    int64_t sliding_window, swa_pattern, n_ctx_orig; /* -1 not given */
    int64_t n_expert, n_expert_used, n_ff_exp, n_ff_shexp; /* -1 not given */
    bool seed_given, help;
} opts;

static const char *const dim_names[] = {"--n-embd", "--n-layer", "--n-head", "--n-head-kv",
                                        "--n-ff", "--n-vocab", "--head-dim", "--n-ctx"};
enum { D_EMBD, D_LAYER, D_HEAD, D_HEAD_KV, D_FF, D_VOCAB, D_HEAD_DIM, D_CTX, N_DIMS };

static int parse_dim(opts *o, const char *flag, const char *val) {
    for (int d = 0; d < N_DIMS; d++) {
        if (strcmp(flag, dim_names[d])) continue;
        int64_t lo = d == D_HEAD_DIM ? 0 : 1;
        return meshlm_arg_int("synth", flag, val, lo, 1 << 30, &o->dims[d]) ? 1 : -1;
    }
    return 0;
}

/* One option with its value; returns how many argv entries it used, or -1. */
static int parse_one(opts *o, int argc, char **argv, int i) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) return o->help = true, 1;
    if (!strcmp(a, "--tied")) return o->tied = 1, 1;
    if (!strcmp(a, "--untied")) return o->tied = 0, 1;
    if (!strcmp(a, "--rope-freqs")) return o->rope_freqs = 1, 1;
    if (!strcmp(a, "--no-rope-freqs")) return o->rope_freqs = 0, 1;
    if (i + 1 >= argc) {
        fprintf(stderr, "meshlm synth: %s '%s'\n", a[0] == '-' ? "missing value for" : "unexpected argument", a);
        return -1;
    }
    const char *v = argv[i + 1];
    int rc = parse_dim(o, a, v);
    if (rc) return rc < 0 ? -1 : 2;
    if (!strcmp(a, "--arch")) return o->arch = v, 2;
    if (!strcmp(a, "--preset")) return o->preset = v, 2;
    if (!strcmp(a, "--type")) return o->type = v, 2;
    if (!strcmp(a, "--expert-type")) return o->expert_type = v, 2;
    if (!strcmp(a, "--pre")) return o->pre = v, 2;
    if (!strcmp(a, "-o") || !strcmp(a, "--output")) return o->out = v, 2;
    if (!strcmp(a, "--seed")) {
        int64_t seed;
        if (!meshlm_arg_int("synth", a, v, 0, INT64_MAX, &seed)) return -1;
        o->seed = (uint64_t)seed;
        o->seed_given = true;
        return 2;
    }
    if (!strcmp(a, "--rope-theta"))
        return meshlm_arg_float("synth", a, v, 1e-3, 1e12, &o->rope_theta) ? 2 : -1;
    if (!strcmp(a, "--sliding-window"))
        return meshlm_arg_int("synth", a, v, 1, 1 << 24, &o->sliding_window) ? 2 : -1;
    if (!strcmp(a, "--attn-softcap"))
        return meshlm_arg_float("synth", a, v, 1e-3, 1e6, &o->attn_softcap) ? 2 : -1;
    if (!strcmp(a, "--final-softcap"))
        return meshlm_arg_float("synth", a, v, 1e-3, 1e6, &o->final_softcap) ? 2 : -1;
    if (!strcmp(a, "--swa-pattern")) {
        if (v && !strcmp(v, "all")) return o->swa_pattern = 0, 2;
        return meshlm_arg_int("synth", a, v, 1, 1024, &o->swa_pattern) ? 2 : -1;
    }
    if (!strcmp(a, "--n-ctx-orig"))
        return meshlm_arg_int("synth", a, v, 1, 1 << 24, &o->n_ctx_orig) ? 2 : -1;
    if (!strcmp(a, "--rope-scale"))
        return meshlm_arg_float("synth", a, v, 1e-3, 1e6, &o->rope_scale) ? 2 : -1;
    if (!strcmp(a, "--n-expert")) return meshlm_arg_int("synth", a, v, 0, 1024, &o->n_expert) ? 2 : -1;
    if (!strcmp(a, "--n-expert-used"))
        return meshlm_arg_int("synth", a, v, 1, 1024, &o->n_expert_used) ? 2 : -1;
    if (!strcmp(a, "--n-ff-exp")) return meshlm_arg_int("synth", a, v, 1, 1 << 30, &o->n_ff_exp) ? 2 : -1;
    if (!strcmp(a, "--n-ff-shexp")) return meshlm_arg_int("synth", a, v, 1, 1 << 30, &o->n_ff_shexp) ? 2 : -1;
    fprintf(stderr, "meshlm synth: unknown option '%s' (see meshlm synth --help)\n", a);
    return -1;
}

/* Defaults for a shape given by dimensions alone, per arch family. */
static void custom_defaults(const char *arch, meshlm_synth_params *p) {
    bool llama = !strcmp(arch, "llama"), gemma2 = !strcmp(arch, "gemma2"), gemma3 = !strcmp(arch, "gemma3");
    bool phi3 = !strcmp(arch, "phi3"), gpt_oss = !strcmp(arch, "gpt-oss");
    memset(p, 0, sizeof *p);
    p->arch = arch;
    p->n_ctx = 2048;
    p->tied_output = gemma2 || gemma3;
    p->rope_theta = gemma2 || phi3 ? 10000.0f : llama ? 500000.0f : gpt_oss ? 150000.0f : 1000000.0f;
    p->rms_eps = llama || phi3 || gpt_oss ? 1e-5f : 1e-6f;
    if (!strcmp(arch, "smollm3")) p->tied_output = true, p->rope_theta = 5000000.0f;
    p->seed = 1;
}

static int32_t *dim_field(meshlm_synth_params *p, int d) {
    int32_t *f[N_DIMS] = {&p->n_embd, &p->n_layer, &p->n_head, &p->n_head_kv,
                          &p->n_ff, &p->n_vocab, &p->head_dim, &p->n_ctx};
    return f[d];
}

static bool arch_is(const char *arch, const char *a, const char *b, const char *c) {
    return !strcmp(arch, a) || !strcmp(arch, b) || (c && !strcmp(arch, c));
}

/* The expert options over the preset's experts; an option given neither way takes the
 * default meshlm_synth_preset gives a dense shape made MoE. The library checks the rest. */
static int expert_params(const opts *o, meshlm_synth_params *p) {
    bool gpt_oss = !strcmp(p->arch, "gpt-oss"), moe_arch = arch_is(p->arch, "qwen3moe", "qwen2moe", "gpt-oss");
    bool given = o->n_expert >= 0 || o->n_expert_used >= 0 || o->n_ff_exp >= 0 || o->n_ff_shexp >= 0;
    if (given && !moe_arch && strcmp(p->arch, "llama"))
        return fprintf(stderr, "meshlm synth: --n-expert, --n-expert-used, --n-ff-exp and --n-ff-shexp are "
                               "for qwen3moe, qwen2moe, gpt-oss and llama, not %s\n", p->arch), -1;
    if (o->n_expert >= 0) p->n_expert = (int32_t)o->n_expert;
    else if (moe_arch && !p->n_expert) p->n_expert = 8;
    int32_t used = gpt_oss ? 4 : 2;
    if (o->n_expert_used >= 0) p->n_expert_used = (int32_t)o->n_expert_used;
    else if (!p->n_expert) p->n_expert_used = 0;
    else if (!p->n_expert_used || p->n_expert_used > p->n_expert)
        p->n_expert_used = p->n_expert < used ? p->n_expert : used;
    if (p->n_expert_used && !p->n_expert)
        return fprintf(stderr, "meshlm synth: --n-expert-used needs experts (--n-expert N, or an MoE preset)\n"),
               -1;
    if (p->n_expert_used > p->n_expert)
        return fprintf(stderr, "meshlm synth: --n-expert-used %d exceeds the %d experts\n", p->n_expert_used,
                       p->n_expert), -1;
    if (o->n_ff_exp >= 0) p->n_ff_exp = (int32_t)o->n_ff_exp;
    else if (!p->n_expert) p->n_ff_exp = 0;
    else if (gpt_oss) p->n_ff_exp = p->n_ff;
    else if (moe_arch && !p->n_ff_exp) p->n_ff_exp = p->n_ff / 4;
    /* gpt-oss's n_ff is its experts' width: --n-ff-exp alone sets it too */
    if (gpt_oss && o->n_ff_exp >= 0 && o->dims[D_FF] < 0) p->n_ff = p->n_ff_exp;
    /* a preset's own expert type goes with its experts */
    if (!p->n_expert && !o->expert_type) p->expert_type_given = false;
    if (o->n_ff_shexp >= 0) p->n_ff_shexp = (int32_t)o->n_ff_shexp;
    else if (!strcmp(p->arch, "qwen2moe") && !p->n_ff_shexp) p->n_ff_shexp = p->n_ff / 2;
    if (!strcmp(p->arch, "qwen2moe") && p->n_ff_shexp <= 0)
        return fprintf(stderr, "meshlm synth: qwen2moe needs --n-ff-shexp (its shared expert's width)\n"), -1;
    return 0;
}

static int build_params(const opts *o, meshlm_synth_params *p) {
    if (!o->out) return fprintf(stderr, "meshlm synth: -o FILE is required\n"), -1;
    if (!o->type) return fprintf(stderr, "meshlm synth: --type is required\n"), -1;
    if (!o->preset && !o->arch)
        return fprintf(stderr, "meshlm synth: --arch is required without --preset\n"), -1;
    if (o->arch && !meshlm_synth_arch_known(o->arch))
        return fprintf(stderr, "meshlm synth: --arch: unknown arch '%s' (%s)\n", o->arch, meshlm_synth_arch_names()),
               -1;
    if (o->preset) {
        if (meshlm_synth_preset(o->preset, o->arch, p) != MESHLM_OK)
            return fprintf(stderr, "meshlm synth: --preset: %s\n", meshlm_last_error()), -1;
    } else {
        custom_defaults(o->arch, p);
    }
    for (int d = 0; d < N_DIMS; d++)
        if (o->dims[d] >= 0) *dim_field(p, d) = (int32_t)o->dims[d];
    if (!o->preset) {
        if (o->dims[D_HEAD_KV] < 0) p->n_head_kv = p->n_head;
        const int required[] = {D_EMBD, D_LAYER, D_HEAD, D_FF, D_VOCAB};
        for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
            if (o->dims[required[i]] < 0)
                return fprintf(stderr, "meshlm synth: %s is required without --preset\n",
                               dim_names[required[i]]), -1;
    }
    p->type = meshlm_type_from_name(o->type);
    if (p->type < 0)
        return fprintf(stderr, "meshlm synth: --type: unknown type '%s'\n", o->type), -1;
    if (o->expert_type) {
        p->expert_type_given = true;
        p->expert_type = meshlm_type_from_name(o->expert_type);
        if (p->expert_type < 0)
            return fprintf(stderr, "meshlm synth: --expert-type: unknown type '%s'\n", o->expert_type), -1;
    }
    if (o->seed_given) p->seed = o->seed;
    if (o->tied >= 0) p->tied_output = o->tied;
    if (o->rope_freqs >= 0) p->rope_freqs = o->rope_freqs;
    if (o->rope_theta > 0) p->rope_theta = (float)o->rope_theta;
    if (o->sliding_window > 0) p->sliding_window = (int32_t)o->sliding_window;
    if (o->attn_softcap > 0) p->attn_softcap = (float)o->attn_softcap;
    if (o->final_softcap > 0) p->final_softcap = (float)o->final_softcap;
    if (o->swa_pattern >= 0) p->swa_pattern = o->swa_pattern ? (int32_t)o->swa_pattern : -1;
    if (o->rope_scale > 0) p->rope_scale = (float)o->rope_scale;
    if (o->n_ctx_orig > 0) p->n_ctx_orig = (int32_t)o->n_ctx_orig;
    if (o->pre) p->pre = o->pre;
    return expert_params(o, p);
}

typedef struct progress_state {
    double start, last;
    bool tty;
} progress_state;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* At most two updates a second (one line rewritten on a terminal, else one line each,
 * every few seconds), and always the last one. */
static void report(void *user, const char *tensor, uint64_t done, uint64_t total) {
    progress_state *s = user;
    double t = now_s();
    if (done < total && t - s->last < (s->tty ? 0.5 : 5.0)) return;
    s->last = t;
    fprintf(stderr, "%smeshlm synth: %5.1f%% of %.1f MiB (%s)%s", s->tty ? "\r\033[K" : "",
            total ? 100.0 * (double)done / (double)total : 100.0, (double)total / 1048576.0, tensor,
            s->tty && done < total ? "" : "\n");
}

int meshlm_cmd_synth(int argc, char **argv) {
    opts o = {.tied = -1, .rope_freqs = -1, .sliding_window = -1, .swa_pattern = -1, .n_ctx_orig = -1, .seed = 1,
              .n_expert = -1, .n_expert_used = -1, .n_ff_exp = -1, .n_ff_shexp = -1};
    for (int d = 0; d < N_DIMS; d++) o.dims[d] = -1;
    for (int i = 1; i < argc;) {
        int used = parse_one(&o, argc, argv, i);
        if (used < 0) return 2;
        i += used;
    }
    if (o.help) {
        usage(stdout);
        return 0;
    }
    meshlm_synth_params p;
    if (build_params(&o, &p)) return 2;
    progress_state ps = {now_s(), 0, isatty(STDERR_FILENO)};
    p.progress = report;
    p.progress_user = &ps;
    int rc = meshlm_synth_write(&p, o.out);
    if (rc != MESHLM_OK) {
        const char *msg = meshlm_last_error();
        fprintf(stderr, "meshlm %s%s\n", strncmp(msg, "synth: ", 7) ? "synth: " : "", msg);
        return rc == MESHLM_ERR_INVALID_ARG || rc == MESHLM_ERR_UNSUPPORTED ? 2 : 1;
    }
    char experts[64] = "";
    if (p.n_expert)
        snprintf(experts, sizeof experts, ", %d %s%sexperts (%d used)", p.n_expert,
                 p.expert_type_given ? meshlm_type_name(p.expert_type) : "", p.expert_type_given ? " " : "",
                 p.n_expert_used);
    fprintf(stderr, "meshlm synth: wrote %s (%s, %s, %d layers%s, %d vocab) in %.2f s\n", o.out, p.arch,
            meshlm_type_name(p.type), p.n_layer, experts, p.n_vocab, now_s() - ps.start);
    return 0;
}
