/* Fuzz target for the GGUF reader: any byte string must either be rejected cleanly or
 * yield a handle whose every kv and tensor can be read without leaving the buffer. */
#include <stdint.h>
#include <string.h>

#include "io/gguf.h"

static volatile uint64_t sink;

/* Calls the getter that matches each kv's type, and a wrong one, to exercise both paths. */
static void walk_kv(const meshlm_gguf *g, int64_t i) {
    const char *key = meshlm_gguf_key(g, i);
    int64_t iv;
    double fv;
    bool bv;
    const char *s;
    size_t len;
    int et;
    uint64_t n;
    const void *data;
    if (meshlm_gguf_find_key(g, key) != i) __builtin_trap();
    if (meshlm_gguf_get_int(g, key, &iv) == 0) sink += (uint64_t)iv;
    if (meshlm_gguf_get_float(g, key, &fv) == 0) sink += (uint64_t)(fv == fv);
    if (meshlm_gguf_get_bool(g, key, &bv) == 0) sink += bv;
    if (meshlm_gguf_get_str(g, key, &s, &len) == 0 && len) sink += (uint8_t)s[len - 1];
    if (meshlm_gguf_get_arr(g, key, &et, &n, &data) != 0) return;
    size_t es = meshlm_gguf_vtype_size(et);
    if (es && n) {
        uint8_t last[8];
        memcpy(last, (const uint8_t *)data + (n - 1) * es, es);
        sink += last[0];
    }
    for (uint64_t k = 0; k < n && et == MESHLM_GGUF_STRING; k++)
        if (meshlm_gguf_get_arr_str(g, key, k, &s, &len) == 0 && len) sink += (uint8_t)s[len - 1];
    if (meshlm_gguf_get_arr_str(g, key, n, &s, &len) == 0) __builtin_trap();
}

static void walk_tensor(const meshlm_gguf *g, int64_t i) {
    const meshlm_gguf_tensor *t = meshlm_gguf_tensor_at(g, i);
    if (meshlm_gguf_find_tensor(g, t->name) != t) __builtin_trap();
    const uint8_t *p = t->data;
    sink += p[0] + p[t->nbytes - 1] + (uint64_t)strlen(t->name);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    meshlm_gguf *g = NULL;
    if (meshlm_gguf_open_memory(data, size, "fuzz.gguf", &g) != 0) return 0;
    for (int64_t i = 0; i < meshlm_gguf_n_kv(g); i++) walk_kv(g, i);
    for (int64_t i = 0; i < meshlm_gguf_n_tensors(g); i++) walk_tensor(g, i);
    meshlm_gguf_close(g);
    return 0;
}
