/* meshlm info: what a model file holds: architecture, hyper-parameters, tokenizer and a
 * table of its tensors. */
#include <stdio.h>
#include <string.h>

#include "apps/commands.h"
#include "core/dtype.h"
#include "model/forward.h"
#include "model/kv_paged.h"
#include "model/model.h"

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
    printf("rms norm eps      %g\n", (double)hp->rms_eps);
    printf("output            %s\n", hp->tied_output ? "tied to the embedding" : "separate output.weight");
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

int meshlm_cmd_info(int argc, char **argv) {
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: meshlm info -m FILE\n");
            return 0;
        }
        if ((!strcmp(argv[i], "-m") || !strcmp(argv[i], "--model")) && i + 1 < argc) {
            path = argv[++i];
            continue;
        }
        fprintf(stderr, "meshlm info: unknown option or missing value: '%s'\n", argv[i]);
        return 2;
    }
    if (!path) {
        fprintf(stderr, "usage: meshlm info -m FILE\n");
        return 2;
    }
    meshlm_model *m;
    if (meshlm_model_load(path, &m) != MESHLM_OK) {
        fprintf(stderr, "meshlm info: %s\n", meshlm_last_error());
        return 1;
    }
    printf("file              %s\n", path);
    print_hparams(m);
    print_tokenizer(m->tok);
    print_tensors(m->gguf);
    meshlm_model_free(m);
    return 0;
}
