/* Model-level validation: files that are valid GGUF but not a valid model must fail with
 * a message naming what is wrong (missing keys listed together, the tensor and its shape,
 * the unsupported architecture), never crash. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/dtype.h"
#include "io/gguf.h"
#include "meshlm.h"
#include "t.h"

enum { E = 32, H = 4, KVH = 2, FF = 64, NV = 262 };

typedef struct variant {
    const char *arch;
    const char *drop_key;    /* a key left out */
    const char *drop_tensor; /* a tensor left out */
    const char *bad_tensor;  /* a tensor written with a wrong shape */
    int n_head_kv;
} variant;

static int fill_small(void *user, int64_t index, const meshlm_gguf_tensor *t, void *buf) {
    (void)user, (void)index;
    float *f = buf;
    int64_t n = (int64_t)(t->nbytes / sizeof(float));
    for (int64_t i = 0; i < n; i++) f[i] = (float)((i * 37 + index * 11) % 17 - 8) / 64.0f;
    return 0;
}

static void set_vocab(meshlm_gguf_writer *w) {
    static char names[NV][12];
    const char *tokens[NV];
    float scores[NV];
    int32_t types[NV];
    for (int i = 0; i < NV; i++) {
        if (i < 3) snprintf(names[i], sizeof names[i], "%s", i == 0 ? "<unk>" : i == 1 ? "<s>" : "</s>");
        else if (i < 259) snprintf(names[i], sizeof names[i], "<0x%02X>", i - 3);
        else snprintf(names[i], sizeof names[i], "\xe2\x96\x81%c", 'a' + (i - 259));
        tokens[i] = names[i];
        scores[i] = i < 259 ? 0.0f : -(float)(i - 259);
        types[i] = i == 0 ? 2 : i < 3 ? 3 : i < 259 ? 6 : 1;
    }
    meshlm_gguf_set_str(w, "tokenizer.ggml.model", "llama");
    meshlm_gguf_set_arr_str(w, "tokenizer.ggml.tokens", tokens, NV);
    meshlm_gguf_set_arr_f32(w, "tokenizer.ggml.scores", scores, NV);
    meshlm_gguf_set_arr_i32(w, "tokenizer.ggml.token_type", types, NV);
    meshlm_gguf_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
    meshlm_gguf_set_u32(w, "tokenizer.ggml.eos_token_id", 2);
}

static void add_tensor(meshlm_gguf_writer *w, const variant *v, const char *name, int64_t ne0, int64_t ne1) {
    if (v->drop_tensor && !strcmp(v->drop_tensor, name)) return;
    int64_t ne[2] = {ne0, ne1};
    if (v->bad_tensor && !strcmp(v->bad_tensor, name)) ne[1] += 1;
    meshlm_gguf_add_tensor(w, name, MESHLM_TYPE_F32, ne[1] == 1 ? 1 : 2, ne);
}

static void set_u32(meshlm_gguf_writer *w, const variant *v, const char *arch, const char *suffix, uint32_t val) {
    char key[96];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    if (v->drop_key && !strcmp(v->drop_key, key)) return;
    meshlm_gguf_set_u32(w, key, val);
}

static int write_model(const char *path, const variant *v) {
    meshlm_gguf_writer *w;
    if (meshlm_gguf_writer_create(&w) != MESHLM_OK) return -1;
    const char *a = v->arch;
    meshlm_gguf_set_str(w, "general.architecture", a);
    set_u32(w, v, a, "context_length", 128);
    set_u32(w, v, a, "embedding_length", E);
    set_u32(w, v, a, "block_count", 1);
    set_u32(w, v, a, "feed_forward_length", FF);
    set_u32(w, v, a, "attention.head_count", H);
    set_u32(w, v, a, "attention.head_count_kv", (uint32_t)v->n_head_kv);
    char key[96];
    snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", a);
    if (!v->drop_key || strcmp(v->drop_key, key)) meshlm_gguf_set_f32(w, key, 1e-5f);
    set_vocab(w);
    int dh = E / H;
    add_tensor(w, v, "token_embd.weight", E, NV);
    add_tensor(w, v, "blk.0.attn_norm.weight", E, 1);
    add_tensor(w, v, "blk.0.attn_q.weight", E, H * dh);
    add_tensor(w, v, "blk.0.attn_k.weight", E, KVH * dh);
    add_tensor(w, v, "blk.0.attn_v.weight", E, KVH * dh);
    add_tensor(w, v, "blk.0.attn_output.weight", H * dh, E);
    add_tensor(w, v, "blk.0.ffn_norm.weight", E, 1);
    add_tensor(w, v, "blk.0.ffn_gate.weight", E, FF);
    add_tensor(w, v, "blk.0.ffn_up.weight", E, FF);
    add_tensor(w, v, "blk.0.ffn_down.weight", FF, E);
    add_tensor(w, v, "output_norm.weight", E, 1);
    int rc = meshlm_gguf_write(w, path, fill_small, NULL);
    meshlm_gguf_writer_free(w);
    return rc;
}

/* Writes the variant, loads it, and checks the status and that the message names want. */
static void expect(const char *dir, variant v, meshlm_status status, const char *want) {
    char path[256];
    snprintf(path, sizeof path, "%s/model.gguf", dir);
    if (!v.arch) v.arch = "llama";
    if (!v.n_head_kv) v.n_head_kv = KVH;
    CHECK(write_model(path, &v) == MESHLM_OK);
    meshlm_model *m = NULL;
    meshlm_status rc = meshlm_model_load(path, &m);
    CHECK_MSG(rc == status, "want status %d, got %d (%s)", status, rc, meshlm_last_error());
    if (want) CHECK_MSG(strstr(meshlm_last_error(), want) != NULL, "message '%s' lacks '%s'", meshlm_last_error(), want);
    if (status != MESHLM_OK) CHECK(m == NULL && strstr(meshlm_last_error(), path) != NULL);
    if (m) {
        CHECK(meshlm_model_n_vocab(m) == NV);
        CHECK(!strcmp(meshlm_model_arch(m), v.arch));
        meshlm_model_free(m);
    }
    unlink(path);
}

int main(void) {
    char dir[] = "/tmp/meshlm-model-XXXXXX";
    if (!mkdtemp(dir)) t_skip("cannot make a temporary directory");
    expect(dir, (variant){0}, MESHLM_OK, NULL);
    expect(dir, (variant){.drop_key = "llama.block_count"}, MESHLM_ERR_FORMAT, "llama.block_count");
    expect(dir, (variant){.drop_key = "llama.attention.layer_norm_rms_epsilon"}, MESHLM_ERR_FORMAT,
           "missing: llama.attention.layer_norm_rms_epsilon");
    expect(dir, (variant){.arch = "gpt-neox"}, MESHLM_ERR_UNSUPPORTED, "'gpt-neox' is not supported");
    expect(dir, (variant){.drop_tensor = "blk.0.ffn_up.weight"}, MESHLM_ERR_FORMAT, "'blk.0.ffn_up.weight' is missing");
    expect(dir, (variant){.bad_tensor = "blk.0.attn_k.weight"}, MESHLM_ERR_FORMAT, "blk.0.attn_k.weight' has shape [32, 17");
    expect(dir, (variant){.n_head_kv = 3}, MESHLM_ERR_FORMAT, "not a multiple of the KV head count 3");
    expect(dir, (variant){.arch = "qwen2"}, MESHLM_ERR_FORMAT, "blk.0.attn_q.bias' is missing");
    expect(dir, (variant){.drop_tensor = "output_norm.weight"}, MESHLM_ERR_FORMAT, "output_norm.weight");
    rmdir(dir);
    meshlm_model *m = NULL;
    CHECK(meshlm_model_load("/nonexistent/model.gguf", &m) != MESHLM_OK && m == NULL);
    CHECK(strstr(meshlm_last_error(), "/nonexistent/model.gguf") != NULL);
    return t_done();
}
