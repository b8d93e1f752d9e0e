/* Synthetic models' named shapes: the real models' dimensions (whole or a few of their
 * layers), and how a preset adapts when it is made another arch. */
#include <string.h>

#include "core/dtype.h"
#include "core/status.h"
#include "model/synth.h"

typedef struct preset {
    const char *name, *arch;
    int32_t n_embd, n_layer, n_head, n_head_kv, n_ff, n_vocab, head_dim, n_ctx;
    bool tied, rope_freqs;
    float rope_freqs_factor, rope_theta, rms_eps;
    int32_t sliding_window; /* the windowed families'; 0 = their default */
    int32_t n_expert, n_expert_used, n_ff_exp, n_ff_shexp; /* 0 = dense */
    int expert_type; /* the experts' own type as the model ships them; 0 = the file's type */
} preset;

static const preset presets[] = {
    /* tiny's window is small enough for short tests to cross it */
    {"tiny", "llama", 256, 2, 4, 2, 512, 1024, 0, 512, false, false, 0, 10000.0f, 1e-5f, 32, 0, 0, 0, 0, 0},
    {"llama-1b", "llama", 2048, 16, 32, 8, 8192, 128256, 0, 131072, true, true, 32, 500000.0f, 1e-5f, 0, 0, 0, 0, 0, 0},
    {"llama-8b", "llama", 4096, 32, 32, 8, 14336, 128256, 0, 131072, false, true, 8, 500000.0f, 1e-5f, 0, 0, 0, 0, 0,
     0},
    {"llama70b-2l", "llama", 8192, 2, 64, 8, 28672, 128256, 0, 131072, false, true, 8, 500000.0f, 1e-5f, 0, 0, 0, 0,
     0, 0},
    {"qwen3-0.6b", "qwen3", 1024, 28, 16, 8, 3072, 151936, 128, 40960, true, false, 0, 1000000.0f, 1e-6f, 0, 0, 0, 0,
     0, 0},
    {"qwen2-0.5b", "qwen2", 896, 24, 14, 2, 4864, 151936, 0, 32768, true, false, 0, 1000000.0f, 1e-6f, 0, 0, 0, 0, 0,
     0},
    {"gemma2-2b", "gemma2", 2304, 26, 8, 4, 9216, 256000, 256, 8192, true, false, 0, 10000.0f, 1e-6f, 4096, 0, 0, 0,
     0, 0},
    {"gemma3-1b", "gemma3", 1152, 26, 4, 1, 6912, 262144, 256, 32768, true, false, 0, 1000000.0f, 1e-6f, 512, 0, 0, 0,
     0, 0},
    {"phi3.5-mini", "phi3", 3072, 32, 32, 32, 8192, 32064, 0, 131072, false, false, 0, 10000.0f, 1e-5f, 0, 0, 0, 0, 0,
     0},
    {"smollm3-3b", "smollm3", 2048, 36, 16, 4, 11008, 128256, 0, 65536, true, false, 0, 5000000.0f, 1e-6f, 0, 0, 0, 0,
     0, 0},
    /* The MoE models' real layers, few of them: Qwen3-30B-A3B, Mixtral 8x7B (its experts
     * are n_ff wide), Qwen1.5-MoE-A2.7B and gpt-oss-20b (heads of 64 whatever n_embd, YaRN
     * 32 over 4096 by gpt-oss's defaults, MXFP4 experts as it ships them). */
    {"qwen3-30b-a3b-4l", "qwen3moe", 2048, 4, 32, 4, 6144, 151936, 128, 40960, false, false, 0, 1000000.0f, 1e-6f, 0,
     128, 8, 768, 0, 0},
    {"mixtral-8x7b-2l", "llama", 4096, 2, 32, 8, 14336, 32000, 0, 32768, false, false, 0, 1000000.0f, 1e-5f, 0, 8, 2,
     0, 0, 0},
    {"qwen2moe-a2.7b-2l", "qwen2moe", 2048, 2, 16, 16, 5632, 151936, 0, 8192, false, false, 0, 1000000.0f, 1e-6f, 0,
     60, 4, 1408, 5632, 0},
    {"gpt-oss-20b-4l", "gpt-oss", 2880, 4, 64, 8, 2880, 201088, 64, 131072, false, false, 0, 150000.0f, 1e-5f, 128,
     32, 4, 2880, 0, MESHLM_TYPE_MXFP4},
};
enum { N_PRESETS = sizeof presets / sizeof presets[0] };

const char *meshlm_synth_preset_names(void) {
    return "tiny, llama-1b, llama-8b, llama70b-2l, qwen3-0.6b, qwen2-0.5b, gemma2-2b, gemma3-1b, phi3.5-mini, "
           "smollm3-3b, qwen3-30b-a3b-4l, mixtral-8x7b-2l, qwen2moe-a2.7b-2l, gpt-oss-20b-4l";
}

static bool is(const char *arch, const char *name) { return !strcmp(arch, name); }
/* The archs whose every layer is MoE. */
static bool all_moe(const char *arch) { return is(arch, "qwen3moe") || is(arch, "qwen2moe") || is(arch, "gpt-oss"); }

/* The preset's experts as far as p's arch has them; p->n_ff is already the preset's. */
static void preset_experts(const preset *s, meshlm_synth_params *p) {
    bool qwen2moe = is(p->arch, "qwen2moe"), gpt_oss = is(p->arch, "gpt-oss");
    if (all_moe(p->arch) && !s->n_expert) {
        /* a dense shape's: 8 experts a quarter of its n_ff wide (tiny: 128), 2 used (gpt-oss
         * takes 4, as its own model does) */
        p->n_expert = 8;
        p->n_expert_used = gpt_oss ? 4 : 2;
        p->n_ff_exp = s->n_ff / 4;
    } else if (all_moe(p->arch) || (s->n_expert && is(p->arch, "llama"))) {
        p->n_expert = s->n_expert;
        p->n_expert_used = s->n_expert_used;
        p->n_ff_exp = s->n_ff_exp ? s->n_ff_exp : s->n_ff;
    }
    /* a shared expert half of n_ff wide when the preset has none (tiny: 256) */
    if (qwen2moe) p->n_ff_shexp = s->n_ff_shexp ? s->n_ff_shexp : s->n_ff / 2;
    /* llama states no expert width: its experts are n_ff wide; gpt-oss states it under both
     * keys */
    if (p->n_expert && is(p->arch, "llama")) {
        p->n_ff = p->n_ff_exp;
        p->n_ff_exp = 0;
    }
    if (gpt_oss) p->n_ff = p->n_ff_exp;
    /* llama.cpp requires qwen2moe's and gpt-oss's output.weight */
    if (qwen2moe || gpt_oss) p->tied_output = false;
    if (p->n_expert && s->expert_type) {
        p->expert_type_given = true;
        p->expert_type = s->expert_type;
    }
}

int meshlm_synth_preset(const char *name, const char *arch, meshlm_synth_params *p) {
    if (arch && !meshlm_synth_arch_known(arch))
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "unknown arch '%s' (known: %s)", arch, meshlm_synth_arch_names());
    const preset *s = NULL;
    for (size_t i = 0; name && i < N_PRESETS; i++)
        if (!strcmp(presets[i].name, name)) s = &presets[i];
    if (!s)
        return meshlm_fail(MESHLM_ERR_NOT_FOUND, "unknown preset '%s' (known: %s)",
                           name ? name : "(null)", meshlm_synth_preset_names());
    memset(p, 0, sizeof *p);
    p->arch = arch ? arch : s->arch;
    p->n_embd = s->n_embd;
    p->n_layer = s->n_layer;
    p->n_head = s->n_head;
    p->n_head_kv = s->n_head_kv;
    p->n_ff = s->n_ff;
    p->n_vocab = s->n_vocab;
    p->head_dim = s->head_dim;
    p->n_ctx = s->n_ctx;
    p->type = MESHLM_TYPE_F32;
    /* llama.cpp's gemma2 always takes the embedding as its LM head: an output.weight would
     * be a tensor it refuses as unused. Gemma 3's models are tied too (its files may not be). */
    p->tied_output = s->tied || is(p->arch, "gemma2") || is(p->arch, "gemma3");
    p->sliding_window = s->sliding_window;
    /* rope_freqs.weight is a llama tensor: llama.cpp rejects it in qwen files. */
    p->rope_freqs = s->rope_freqs && is(p->arch, "llama");
    p->rope_freqs_factor = s->rope_freqs_factor;
    p->rope_theta = s->rope_theta;
    p->rms_eps = s->rms_eps;
    p->seed = 1;
    preset_experts(s, p);
    return MESHLM_OK;
}
