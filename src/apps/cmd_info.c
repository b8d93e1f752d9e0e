/* meshlm info: what a model file holds: architecture, hyper-parameters, tokenizer and a
 * table of its tensors. */
#include <stdio.h>
#include <string.h>

#include "apps/commands.h"
#include "core/dtype.h"
#include "model/model.h"

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
    double kv_per_tok = 2.0 * hp->n_layer * hp->n_head_kv * hp->head_dim * sizeof(float);
    printf("KV cache          %.1f KiB per token (f32); %.1f MiB at the training context\n", kv_per_tok / 1024,
           kv_per_tok * hp->n_ctx_train / (1024.0 * 1024.0));
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
