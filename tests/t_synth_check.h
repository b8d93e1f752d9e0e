/* What the synth tests share: a scratch directory for their files, reading keys and
 * tensors back, comparing files and tensors, expected failures, and the meshlm command. */
#ifndef MESHLM_TEST_T_SYNTH_CHECK_H
#define MESHLM_TEST_T_SYNTH_CHECK_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/dtype.h"
#include "io/gguf.h"
#include "meshlm.h"
#include "model/synth.h"
#include "t.h"

/* The test's scratch directory (made by its main). */
static char dir[64];

/* name inside dir; four results live at once. */
static inline const char *path_in(const char *name) {
    static char buf[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static inline int64_t key_int(const meshlm_gguf *g, const char *key) {
    int64_t v = -1;
    CHECK_MSG(meshlm_gguf_get_int(g, key, &v) == MESHLM_OK, "%s: %s", key, meshlm_last_error());
    return v;
}

static inline bool str_is(const meshlm_gguf *g, const char *key, const char *want) {
    const char *s;
    size_t n;
    if (meshlm_gguf_get_str(g, key, &s, &n) != MESHLM_OK) return false;
    return n == strlen(want) && memcmp(s, want, n) == 0;
}

/* ne1, ne2 = 1 for fewer dimensions; ne2 > 1: a 3-D tensor of ne2 stacked [ne0 x ne1]
 * matrices (the experts'). */
static inline void check_tensor3(const meshlm_gguf *g, const char *name, int type, int64_t ne0, int64_t ne1,
                                 int64_t ne2) {
    const meshlm_gguf_tensor *t = meshlm_gguf_find_tensor(g, name);
    CHECK_MSG(t != NULL, "missing tensor %s", name);
    if (!t) return;
    CHECK_MSG(t->type == type, "%s: type %s, want %s", name, meshlm_type_name(t->type), meshlm_type_name(type));
    CHECK_MSG(t->n_dims == (ne2 > 1 ? 3 : ne1 > 1 ? 2 : 1), "%s: n_dims %d", name, t->n_dims);
    CHECK_MSG(t->ne[0] == ne0 && t->ne[1] == ne1 && t->ne[2] == ne2 && t->ne[3] == 1,
              "%s: [%lld, %lld, %lld], want [%lld, %lld, %lld]", name, (long long)t->ne[0], (long long)t->ne[1],
              (long long)t->ne[2], (long long)ne0, (long long)ne1, (long long)ne2);
}

static inline void check_tensor(const meshlm_gguf *g, const char *name, int type, int64_t ne0, int64_t ne1) {
    check_tensor3(g, name, type, ne0, ne1, 1);
}

/* The bytes of a file (one spare byte after them), or NULL; *n gets the length. */
static inline char *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = sz >= 0 ? malloc((size_t)sz + 1) : NULL;
    *n = buf ? fread(buf, 1, (size_t)sz, f) : 0;
    fclose(f);
    return buf;
}

static inline bool same_file(const char *a, const char *b) {
    size_t na = 0, nb = 0;
    char *x = read_all(a, &na), *y = read_all(b, &nb);
    bool same = x && y && na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return same;
}

/* A tensor's bytes in a file, compared across files. */
static inline bool same_tensor(const char *pa, const char *pb, const char *name) {
    meshlm_gguf *a = NULL, *b = NULL;
    bool same = false;
    if (meshlm_gguf_open(pa, &a) == MESHLM_OK && meshlm_gguf_open(pb, &b) == MESHLM_OK) {
        const meshlm_gguf_tensor *ta = meshlm_gguf_find_tensor(a, name);
        const meshlm_gguf_tensor *tb = meshlm_gguf_find_tensor(b, name);
        same = ta && tb && ta->nbytes == tb->nbytes && !memcmp(ta->data, tb->data, ta->nbytes);
    }
    meshlm_gguf_close(a);
    meshlm_gguf_close(b);
    return same;
}

/* p must fail to write, with every needle in the message and no file left behind. */
static inline void expect_fail(meshlm_synth_params *p, const char *what, const char *const *needles) {
    const char *path = path_in("bad.gguf");
    int rc = meshlm_synth_write(p, path);
    CHECK_MSG(rc != MESHLM_OK, "%s: should fail", what);
    for (; *needles; needles++)
        CHECK_MSG(strstr(meshlm_last_error(), *needles) != NULL, "%s: '%s' not in '%s'", what, *needles,
                  meshlm_last_error());
    CHECK_MSG(access(path, F_OK) != 0, "%s: left a file", what);
}

/* Runs `meshlm synth args`; returns its exit code, or -1 if it cannot run. */
static inline int run_cmd(const char *args) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s synth %s >%s 2>&1", MESHLM_BIN, args, path_in("cmd.out"));
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Whether the last run_cmd printed needle. */
static inline bool cmd_output_has(const char *needle) {
    size_t n;
    char *out = read_all(path_in("cmd.out"), &n);
    bool has = out && (out[n] = '\0', strstr(out, needle) != NULL);
    free(out);
    return has;
}

#endif
