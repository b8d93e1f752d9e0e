/* GGUF reader and writer: round trips through the writer, a hand-built v2 file, the shared
 * real files when present, and a suite of malformed files that must each be rejected with
 * the right status and a message that says where the problem is. */
#include <glob.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/dtype.h"
#include "io/gguf.h"
#include "meshlm.h"
#include "t.h"

static char tmpdir[64];

static const char *tmp_path(const char *name) {
    static char buf[256];
    snprintf(buf, sizeof buf, "%s/%s", tmpdir, name);
    return buf;
}

static int has(const char *needle) { return strstr(meshlm_last_error(), needle) != NULL; }

/* ---- a byte builder for hand-made files ---- */

typedef struct bb {
    uint8_t *p;
    size_t n, cap;
} bb;

static void b_bytes(bb *b, const void *s, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (!b->p) abort();
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}
static void b_u32(bb *b, uint32_t v) { b_bytes(b, &v, 4); }
static void b_u64(bb *b, uint64_t v) { b_bytes(b, &v, 8); }
static void b_str(bb *b, const char *s) {
    b_u64(b, strlen(s));
    b_bytes(b, s, strlen(s));
}
static void b_pad(bb *b, size_t align) {
    while (b->n % align) b_bytes(b, "", 1);
}
static void b_header(bb *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    b_bytes(b, "GGUF", 4);
    b_u32(b, version);
    b_u64(b, n_tensors);
    b_u64(b, n_kv);
}
static void b_kv_u32(bb *b, const char *key, uint32_t v) {
    b_str(b, key);
    b_u32(b, MESHLM_GGUF_U32);
    b_u32(b, v);
}
/* Returns the offset of the tensor info, which error messages must quote. */
static size_t b_tensor(bb *b, const char *name, uint32_t n_dims, const uint64_t *ne,
                       uint32_t type, uint64_t off) {
    size_t at = b->n;
    b_str(b, name);
    b_u32(b, n_dims);
    for (uint32_t d = 0; d < n_dims; d++) b_u64(b, ne[d]);
    b_u32(b, type);
    b_u64(b, off);
    return at;
}
static void b_zeros(bb *b, size_t n) {
    for (size_t i = 0; i < n; i++) b_bytes(b, "", 1);
}

/* Opens the bytes from an exact-size copy, so a sanitizer catches any read past the end. */
static int open_bb(const bb *b, meshlm_gguf **g) {
    uint8_t *copy = malloc(b->n ? b->n : 1);
    memcpy(copy, b->p, b->n);
    int rc = meshlm_gguf_open_memory(copy, b->n, "bad.gguf", g);
    if (rc == 0) meshlm_gguf_close(*g);
    free(copy);
    return rc;
}

#define EXPECT_FAIL(b, status, ...)                                                          \
    do {                                                                                     \
        meshlm_gguf *g_ = NULL;                                                              \
        int rc_ = open_bb(b, &g_);                                                           \
        const char *subs_[] = {"bad.gguf", __VA_ARGS__};                                     \
        CHECK_MSG(rc_ == (status), "status %d, expected %d (%s)", rc_, (status),             \
                  meshlm_last_error());                                                      \
        for (size_t k_ = 0; k_ < sizeof subs_ / sizeof subs_[0]; k_++)                       \
            CHECK_MSG(has(subs_[k_]), "message '%s' lacks '%s'", meshlm_last_error(),        \
                      subs_[k_]);                                                            \
        free((b)->p);                                                                        \
        *(b) = (bb){0};                                                                      \
    } while (0)

/* ---- writer round trip ---- */

typedef struct fill_ctx {
    int fail_at;
    int calls;
} fill_ctx;

static uint8_t pattern(int64_t index, size_t i) { return (uint8_t)(index * 37 + i * 11 + 5); }

static int fill_pattern(void *user, int64_t index, const meshlm_gguf_tensor *t, void *buf) {
    fill_ctx *c = user;
    c->calls++;
    if (index == c->fail_at) return MESHLM_ERR_IO;
    for (size_t i = 0; i < t->nbytes; i++) ((uint8_t *)buf)[i] = pattern(index, i);
    return 0;
}

static const struct {
    const char *name;
    int type, n_dims;
    int64_t ne[4];
} wtensors[] = {
    {"a.f32", MESHLM_TYPE_F32, 2, {5, 3}},
    {"b.f16", MESHLM_TYPE_F16, 1, {7}},
    {"c.q4_0", MESHLM_TYPE_Q4_0, 2, {64, 2}},
    {"d.q8_0", MESHLM_TYPE_Q8_0, 3, {32, 3, 2}},
    {"e.q4_k", MESHLM_TYPE_Q4_K, 4, {256, 1, 1, 2}},
    {"f.bf16", MESHLM_TYPE_BF16, 1, {3}},
    {"g.q6_k", MESHLM_TYPE_Q6_K, 2, {256, 2}},
};
enum { N_WT = sizeof wtensors / sizeof wtensors[0] };

static void set_scalars(meshlm_gguf_writer *w) {
    uint8_t u8 = 200;
    int8_t i8 = -100;
    uint16_t u16 = 60000;
    int16_t i16 = -30000;
    uint64_t u64 = 0x123456789abcdefULL;
    int64_t i64 = -0x123456789abcdefLL;
    double f64 = 2.718281828459045;
    CHECK(meshlm_gguf_set_val(w, "t.u8", MESHLM_GGUF_U8, &u8) == 0);
    CHECK(meshlm_gguf_set_val(w, "t.i8", MESHLM_GGUF_I8, &i8) == 0);
    CHECK(meshlm_gguf_set_val(w, "t.u16", MESHLM_GGUF_U16, &u16) == 0);
    CHECK(meshlm_gguf_set_val(w, "t.i16", MESHLM_GGUF_I16, &i16) == 0);
    CHECK(meshlm_gguf_set_u32(w, "t.u32", 4000000000u) == 0);
    CHECK(meshlm_gguf_set_i32(w, "t.i32", -2000000000) == 0);
    CHECK(meshlm_gguf_set_f32(w, "t.f32", 1.5f) == 0);
    CHECK(meshlm_gguf_set_bool(w, "t.bool", true) == 0);
    CHECK(meshlm_gguf_set_val(w, "t.u64", MESHLM_GGUF_U64, &u64) == 0);
    CHECK(meshlm_gguf_set_val(w, "t.i64", MESHLM_GGUF_I64, &i64) == 0);
    CHECK(meshlm_gguf_set_val(w, "t.f64", MESHLM_GGUF_F64, &f64) == 0);
    uint64_t big = UINT64_MAX;
    CHECK(meshlm_gguf_set_val(w, "t.u64max", MESHLM_GGUF_U64, &big) == 0);
    CHECK(meshlm_gguf_set_str(w, "t.str", "first") == 0);
    CHECK(meshlm_gguf_set_str(w, "t.str", "h\xc3\xa9llo") == 0); /* replaces */
    CHECK(meshlm_gguf_set_str(w, "t.empty", "") == 0);
    CHECK(meshlm_gguf_set_val(w, "t.bad", MESHLM_GGUF_STRING, "x") == MESHLM_ERR_INVALID_ARG);
    CHECK(meshlm_gguf_set_u32(w, "", 1) == MESHLM_ERR_INVALID_ARG);
}

static void set_arrays(meshlm_gguf_writer *w) {
    const char *strs[] = {"<unk>", "", "\xe2\x96\x81the", "a b"};
    float f32s[] = {0.5f, -1.25f, 3e38f};
    int32_t i32s[] = {-1, 0, 2147483647};
    double f64s[] = {1e300, -0.0};
    bool bools[] = {true, false, true};
    int16_t i16s[] = {-5, 5};
    uint64_t u64s[] = {1, UINT64_MAX};
    CHECK(meshlm_gguf_set_arr_str(w, "a.str", strs, 4) == 0);
    CHECK(meshlm_gguf_set_arr_str(w, "a.str0", NULL, 0) == 0);
    CHECK(meshlm_gguf_set_arr_f32(w, "a.f32", f32s, 3) == 0);
    CHECK(meshlm_gguf_set_arr_i32(w, "a.i32", i32s, 3) == 0);
    CHECK(meshlm_gguf_set_arr(w, "a.f64", MESHLM_GGUF_F64, f64s, 2) == 0);
    CHECK(meshlm_gguf_set_arr(w, "a.bool", MESHLM_GGUF_BOOL, bools, 3) == 0);
    CHECK(meshlm_gguf_set_arr(w, "a.i16", MESHLM_GGUF_I16, i16s, 2) == 0);
    CHECK(meshlm_gguf_set_arr(w, "a.u64", MESHLM_GGUF_U64, u64s, 2) == 0);
    CHECK(meshlm_gguf_set_arr(w, "a.u8e", MESHLM_GGUF_U8, NULL, 0) == 0);
    CHECK(meshlm_gguf_set_arr(w, "a.arr", MESHLM_GGUF_ARRAY, f32s, 1) == MESHLM_ERR_INVALID_ARG);
}

static void check_scalars(const meshlm_gguf *g) {
    int64_t v = 0;
    double f = 0;
    bool b = false;
    const char *s;
    size_t len;
    CHECK(meshlm_gguf_get_int(g, "t.u8", &v) == 0 && v == 200);
    CHECK(meshlm_gguf_get_int(g, "t.i8", &v) == 0 && v == -100);
    CHECK(meshlm_gguf_get_int(g, "t.u16", &v) == 0 && v == 60000);
    CHECK(meshlm_gguf_get_int(g, "t.i16", &v) == 0 && v == -30000);
    CHECK(meshlm_gguf_get_int(g, "t.u32", &v) == 0 && v == 4000000000LL);
    CHECK(meshlm_gguf_get_int(g, "t.i32", &v) == 0 && v == -2000000000);
    CHECK(meshlm_gguf_get_int(g, "t.u64", &v) == 0 && v == 0x123456789abcdefLL);
    CHECK(meshlm_gguf_get_int(g, "t.i64", &v) == 0 && v == -0x123456789abcdefLL);
    CHECK(meshlm_gguf_get_float(g, "t.f32", &f) == 0 && f == 1.5);
    CHECK(meshlm_gguf_get_float(g, "t.f64", &f) == 0 && f == 2.718281828459045);
    CHECK(meshlm_gguf_get_bool(g, "t.bool", &b) == 0 && b);
    CHECK(meshlm_gguf_get_str(g, "t.str", &s, &len) == 0 && len == 6 &&
          !memcmp(s, "h\xc3\xa9llo", 6));
    CHECK(meshlm_gguf_get_str(g, "t.empty", &s, &len) == 0 && len == 0);
    CHECK(meshlm_gguf_kv_type(g, meshlm_gguf_find_key(g, "t.i16")) == MESHLM_GGUF_I16);
    /* Getter errors name the key and the type found. */
    CHECK(meshlm_gguf_get_int(g, "t.u64max", &v) == MESHLM_ERR_FORMAT && has("t.u64max") &&
          has("18446744073709551615"));
    CHECK(meshlm_gguf_get_int(g, "t.str", &v) == MESHLM_ERR_FORMAT && has("'t.str'") &&
          has("string"));
    CHECK(meshlm_gguf_get_float(g, "t.u32", &f) == MESHLM_ERR_FORMAT && has("u32"));
    CHECK(meshlm_gguf_get_bool(g, "t.u8", &b) == MESHLM_ERR_FORMAT);
    CHECK(meshlm_gguf_get_str(g, "t.i8", &s, &len) == MESHLM_ERR_FORMAT);
    CHECK(meshlm_gguf_get_int(g, "no.such", &v) == MESHLM_ERR_NOT_FOUND && has("no.such"));
    CHECK(meshlm_gguf_find_key(g, "no.such") == -1);
}

static void check_arrays(const meshlm_gguf *g) {
    int et;
    uint64_t n;
    const void *d;
    const char *s;
    size_t len;
    CHECK(meshlm_gguf_get_arr(g, "a.str", &et, &n, &d) == 0 && et == MESHLM_GGUF_STRING && n == 4);
    CHECK(meshlm_gguf_get_arr_str(g, "a.str", 0, &s, &len) == 0 && len == 5 &&
          !memcmp(s, "<unk>", 5));
    CHECK(meshlm_gguf_get_arr_str(g, "a.str", 1, &s, &len) == 0 && len == 0);
    CHECK(meshlm_gguf_get_arr_str(g, "a.str", 2, &s, &len) == 0 && len == 6 &&
          !memcmp(s, "\xe2\x96\x81the", 6));
    CHECK(meshlm_gguf_get_arr_str(g, "a.str", 3, &s, &len) == 0 && len == 3 &&
          !memcmp(s, "a b", 3));
    CHECK(meshlm_gguf_get_arr_str(g, "a.str", 4, &s, &len) == MESHLM_ERR_RANGE && has("a.str"));
    CHECK(meshlm_gguf_get_arr(g, "a.str0", &et, &n, &d) == 0 && et == MESHLM_GGUF_STRING && n == 0);
    CHECK(meshlm_gguf_get_arr_str(g, "a.f32", 0, &s, &len) == MESHLM_ERR_FORMAT && has("f32"));
    CHECK(meshlm_gguf_get_arr(g, "a.f32", &et, &n, &d) == 0 && et == MESHLM_GGUF_F32 && n == 3);
    float f[3];
    memcpy(f, d, sizeof f);
    CHECK(f[0] == 0.5f && f[1] == -1.25f && f[2] == 3e38f);
    CHECK(meshlm_gguf_get_arr(g, "a.i32", &et, &n, &d) == 0 && et == MESHLM_GGUF_I32 && n == 3);
    int32_t i[3];
    memcpy(i, d, sizeof i);
    CHECK(i[0] == -1 && i[1] == 0 && i[2] == 2147483647);
    CHECK(meshlm_gguf_get_arr(g, "a.f64", &et, &n, &d) == 0 && et == MESHLM_GGUF_F64 && n == 2);
    double dv[2];
    memcpy(dv, d, sizeof dv);
    CHECK(dv[0] == 1e300 && dv[1] == 0.0);
    CHECK(meshlm_gguf_get_arr(g, "a.bool", &et, &n, &d) == 0 && et == MESHLM_GGUF_BOOL && n == 3 &&
          !memcmp(d, "\1\0\1", 3));
    CHECK(meshlm_gguf_get_arr(g, "a.i16", &et, &n, &d) == 0 && et == MESHLM_GGUF_I16 && n == 2);
    CHECK(meshlm_gguf_get_arr(g, "a.u64", &et, &n, &d) == 0 && et == MESHLM_GGUF_U64 && n == 2);
    uint64_t u[2];
    memcpy(u, d, sizeof u);
    CHECK(u[0] == 1 && u[1] == UINT64_MAX);
    CHECK(meshlm_gguf_get_arr(g, "a.u8e", &et, &n, &d) == 0 && et == MESHLM_GGUF_U8 && n == 0);
    CHECK(meshlm_gguf_get_arr(g, "t.u8", &et, &n, &d) == MESHLM_ERR_FORMAT && has("t.u8"));
}

static void check_tensors(const meshlm_gguf *g, uint32_t align) {
    CHECK(meshlm_gguf_n_tensors(g) == N_WT);
    CHECK(meshlm_gguf_data_offset(g) % align == 0);
    for (int i = 0; i < N_WT; i++) {
        const meshlm_gguf_tensor *t = meshlm_gguf_tensor_at(g, i);
        CHECK(t && meshlm_gguf_find_tensor(g, wtensors[i].name) == t);
        if (!t) continue;
        CHECK(strcmp(t->name, wtensors[i].name) == 0);
        CHECK(t->type == wtensors[i].type && t->n_dims == wtensors[i].n_dims);
        int64_t rows = 1;
        for (int d = 0; d < 4; d++) {
            int64_t want = d < wtensors[i].n_dims ? wtensors[i].ne[d] : 1;
            CHECK(t->ne[d] == want);
            if (d) rows *= want;
        }
        CHECK(t->nbytes == meshlm_type_row_bytes(t->type, t->ne[0]) * (size_t)rows);
        CHECK(t->offset % align == 0 && t->offset >= meshlm_gguf_data_offset(g));
        const meshlm_gguf_tensor *t0 = meshlm_gguf_tensor_at(g, 0);
        CHECK((uint64_t)((const uint8_t *)t->data - (const uint8_t *)t0->data) ==
              t->offset - t0->offset);
        int ok = 1;
        for (size_t k = 0; k < t->nbytes; k++) ok &= ((const uint8_t *)t->data)[k] == pattern(i, k);
        CHECK_MSG(ok, "tensor %s data differs", t->name);
    }
    CHECK(meshlm_gguf_find_tensor(g, "nope") == NULL);
    CHECK(meshlm_gguf_tensor_at(g, N_WT) == NULL && meshlm_gguf_tensor_at(g, -1) == NULL);
}

static meshlm_gguf_writer *make_writer(uint32_t align) {
    meshlm_gguf_writer *w;
    CHECK(meshlm_gguf_writer_create(&w) == 0);
    if (align) CHECK(meshlm_gguf_set_u32(w, "general.alignment", align) == 0);
    set_scalars(w);
    set_arrays(w);
    for (int i = 0; i < N_WT; i++)
        CHECK(meshlm_gguf_add_tensor(w, wtensors[i].name, wtensors[i].type, wtensors[i].n_dims,
                                     wtensors[i].ne) == 0);
    return w;
}

static void test_round_trip(uint32_t align) {
    meshlm_gguf_writer *w = make_writer(align);
    const char *path = tmp_path(align ? "rt_align.gguf" : "rt.gguf");
    fill_ctx fc = {.fail_at = -1};
    CHECK_MSG(meshlm_gguf_write(w, path, fill_pattern, &fc) == 0, "%s", meshlm_last_error());
    CHECK(fc.calls == N_WT);
    meshlm_gguf_writer_free(w);
    meshlm_gguf *g = NULL;
    int rc = meshlm_gguf_open(path, &g);
    CHECK_MSG(rc == 0, "%s", meshlm_last_error());
    if (rc) return;
    uint32_t want = align ? align : MESHLM_GGUF_DEFAULT_ALIGNMENT;
    CHECK(meshlm_gguf_version(g) == 3 && meshlm_gguf_alignment(g) == want);
    CHECK(meshlm_gguf_n_kv(g) == 23 + (align ? 1 : 0));
    CHECK(strcmp(meshlm_gguf_path(g), path) == 0);
    check_scalars(g);
    check_arrays(g);
    check_tensors(g, want);
    meshlm_gguf_close(g);
}

static void test_writer_errors(void) {
    meshlm_gguf_writer *w;
    CHECK(meshlm_gguf_writer_create(&w) == 0);
    int64_t ne[4] = {32, 2, 1, 1}, bad[4] = {33, 1, 1, 1}, zero[4] = {32, 0, 1, 1};
    char long_name[80];
    memset(long_name, 'x', 64);
    long_name[64] = '\0';
    CHECK(meshlm_gguf_add_tensor(w, "t", MESHLM_TYPE_Q8_0, 2, ne) == 0);
    CHECK(meshlm_gguf_add_tensor(w, "t", MESHLM_TYPE_Q8_0, 2, ne) == MESHLM_ERR_INVALID_ARG);
    CHECK(meshlm_gguf_add_tensor(w, long_name, MESHLM_TYPE_F32, 1, ne) == MESHLM_ERR_INVALID_ARG);
    CHECK(meshlm_gguf_add_tensor(w, "", MESHLM_TYPE_F32, 1, ne) == MESHLM_ERR_INVALID_ARG);
    CHECK(meshlm_gguf_add_tensor(w, "u", MESHLM_TYPE_Q8_0, 1, bad) == MESHLM_ERR_INVALID_ARG);
    CHECK(meshlm_gguf_add_tensor(w, "u", MESHLM_TYPE_F32, 2, zero) == MESHLM_ERR_INVALID_ARG);
    CHECK(meshlm_gguf_add_tensor(w, "u", MESHLM_TYPE_F32, 0, ne) == MESHLM_ERR_INVALID_ARG);
    CHECK(meshlm_gguf_add_tensor(w, "u", MESHLM_TYPE_F32, 5, ne) == MESHLM_ERR_INVALID_ARG);
    CHECK(meshlm_gguf_add_tensor(w, "u", 10, 1, ne) == MESHLM_ERR_INVALID_ARG);
    CHECK(meshlm_gguf_add_tensor(w, "u", MESHLM_TYPE_F32, 1, ne) == 0);
    /* A failing fill aborts the write, leaves nothing behind and keeps its status. */
    char path[256];
    snprintf(path, sizeof path, "%s", tmp_path("aborted.gguf"));
    fill_ctx fc = {.fail_at = 1};
    CHECK(meshlm_gguf_write(w, path, fill_pattern, &fc) == MESHLM_ERR_IO && has("'u'"));
    CHECK(access(path, F_OK) != 0);
    char partial[300];
    snprintf(partial, sizeof partial, "%s.partial", path);
    CHECK(access(partial, F_OK) != 0);
    CHECK(meshlm_gguf_set_u32(w, "general.alignment", 48) == 0);
    fc.fail_at = -1;
    CHECK(meshlm_gguf_write(w, path, fill_pattern, &fc) == MESHLM_ERR_INVALID_ARG);
    CHECK(meshlm_gguf_set_f32(w, "general.alignment", 64) == 0);
    CHECK(meshlm_gguf_write(w, path, fill_pattern, &fc) == MESHLM_ERR_INVALID_ARG);
    CHECK(meshlm_gguf_set_u32(w, "general.alignment", 64) == 0);
    CHECK(meshlm_gguf_write(w, tmp_path("no/such/dir.gguf"), fill_pattern, &fc) == MESHLM_ERR_IO);
    CHECK_MSG(meshlm_gguf_write(w, path, fill_pattern, &fc) == 0, "%s", meshlm_last_error());
    meshlm_gguf_writer_free(w);
    meshlm_gguf *g;
    CHECK(meshlm_gguf_open(path, &g) == 0 && meshlm_gguf_alignment(g) == 64);
    if (g) meshlm_gguf_close(g);
}

/* A metadata-only file: the data section may be absent entirely. */
static void test_empty_writer(void) {
    meshlm_gguf_writer *w;
    CHECK(meshlm_gguf_writer_create(&w) == 0);
    CHECK(meshlm_gguf_write(w, tmp_path("empty.gguf"), NULL, NULL) == 0);
    meshlm_gguf_writer_free(w);
    meshlm_gguf *g;
    CHECK(meshlm_gguf_open(tmp_path("empty.gguf"), &g) == 0);
    CHECK(g && meshlm_gguf_n_kv(g) == 0 && meshlm_gguf_n_tensors(g) == 0);
    meshlm_gguf_close(g);
}

static void test_v2(void) {
    bb b = {0};
    b_header(&b, 2, 2, 2);
    b_kv_u32(&b, "x.n", 7);
    b_str(&b, "x.name");
    b_u32(&b, MESHLM_GGUF_STRING);
    b_str(&b, "v2 file");
    uint64_t ne1[1] = {4}, ne2[2] = {2, 3};
    b_tensor(&b, "w1", 1, ne1, MESHLM_TYPE_F32, 0);
    b_tensor(&b, "w2", 2, ne2, MESHLM_TYPE_F16, 32);
    b_pad(&b, 32);
    size_t data = b.n;
    float v[4] = {1, 2, 3, 4};
    b_bytes(&b, v, 16);
    b_zeros(&b, 16);
    b_zeros(&b, 12);
    meshlm_gguf *g;
    int rc = meshlm_gguf_open_memory(b.p, b.n, "v2.gguf", &g);
    CHECK_MSG(rc == 0, "%s", meshlm_last_error());
    if (rc == 0) {
        int64_t n;
        const char *s;
        size_t len;
        CHECK(meshlm_gguf_version(g) == 2 && meshlm_gguf_data_offset(g) == data);
        CHECK(meshlm_gguf_get_int(g, "x.n", &n) == 0 && n == 7);
        CHECK(meshlm_gguf_get_str(g, "x.name", &s, &len) == 0 && len == 7);
        const meshlm_gguf_tensor *t = meshlm_gguf_find_tensor(g, "w1");
        CHECK(t && t->offset == data && t->nbytes == 16 && !memcmp(t->data, v, 16));
        t = meshlm_gguf_find_tensor(g, "w2");
        CHECK(t && t->offset == data + 32 && t->nbytes == 12 && t->ne[1] == 3);
        meshlm_gguf_close(g);
    }
    free(b.p);
}

static void test_stories(void) {
    const char *path = MESHLM_SHARED_DIR "/models/stories260K.gguf";
    if (access(path, R_OK) != 0) {
        printf("skipping real-model checks: %s not found\n", path);
        return;
    }
    meshlm_gguf *g;
    int rc = meshlm_gguf_open(path, &g);
    CHECK_MSG(rc == 0, "%s", meshlm_last_error());
    if (rc) return;
    const char *s;
    size_t len;
    int64_t v;
    CHECK(meshlm_gguf_get_str(g, "general.architecture", &s, &len) == 0 && len == 5 &&
          !memcmp(s, "llama", 5));
    CHECK(meshlm_gguf_get_int(g, "llama.block_count", &v) == 0 && v == 5);
    CHECK(meshlm_gguf_get_int(g, "llama.embedding_length", &v) == 0 && v == 64);
    CHECK(meshlm_gguf_n_tensors(g) == 47);
    const meshlm_gguf_tensor *t = meshlm_gguf_find_tensor(g, "token_embd.weight");
    CHECK(t && t->type == MESHLM_TYPE_F32 && t->n_dims == 2 && t->ne[0] == 64 && t->ne[1] == 512);
    CHECK(t && t->nbytes == 64 * 512 * 4);
    for (int64_t i = 0; i < meshlm_gguf_n_tensors(g); i++)
        CHECK(meshlm_gguf_tensor_at(g, i)->type == MESHLM_TYPE_F32);
    CHECK(meshlm_gguf_find_tensor(g, "blk.4.ffn_down.weight") != NULL);
    CHECK(meshlm_gguf_get_arr_str(g, "tokenizer.ggml.tokens", 1, &s, &len) == 0 && len == 3 &&
          !memcmp(s, "<s>", 3));
    meshlm_gguf_close(g);
}

static void test_vocabs(void) {
    static const struct {
        const char *file;
        int64_t n_kv;
        uint64_t n_tokens;
    } known[] = {
        {"ggml-vocab-gpt-2.gguf", 16, 50257},
        {"ggml-vocab-llama-bpe.gguf", 20, 128256},
        {"ggml-vocab-llama-spm.gguf", 22, 32000},
        {"ggml-vocab-qwen2.gguf", 20, 151936},
    };
    glob_t gl;
    if (glob(MESHLM_SHARED_DIR "/vocab/*.gguf", 0, NULL, &gl) != 0) {
        printf("skipping vocabulary checks: no %s/vocab/*.gguf\n", MESHLM_SHARED_DIR);
        return;
    }
    for (size_t f = 0; f < gl.gl_pathc; f++) {
        meshlm_gguf *g;
        int rc = meshlm_gguf_open(gl.gl_pathv[f], &g);
        CHECK_MSG(rc == 0, "%s", meshlm_last_error());
        if (rc) continue;
        int et;
        uint64_t n;
        const void *d;
        const char *s;
        size_t len;
        CHECK(meshlm_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n, &d) == 0 &&
              et == MESHLM_GGUF_STRING && n > 0);
        CHECK(meshlm_gguf_get_arr_str(g, "tokenizer.ggml.tokens", n - 1, &s, &len) == 0);
        CHECK(meshlm_gguf_n_tensors(g) == 0);
        const char *base = strrchr(gl.gl_pathv[f], '/') + 1;
        for (size_t k = 0; k < sizeof known / sizeof known[0]; k++) {
            if (strcmp(base, known[k].file) != 0) continue;
            CHECK_MSG(meshlm_gguf_n_kv(g) == known[k].n_kv, "%s: %" PRId64 " keys", base,
                      meshlm_gguf_n_kv(g));
            CHECK_MSG(n == known[k].n_tokens, "%s: %" PRIu64 " tokens", base, n);
        }
        meshlm_gguf_close(g);
    }
    globfree(&gl);
}

static void test_open_errors(void) {
    meshlm_gguf *g = (meshlm_gguf *)1;
    CHECK(meshlm_gguf_open(tmp_path("missing.gguf"), &g) == MESHLM_ERR_IO && g == NULL &&
          has("missing.gguf"));
    FILE *f = fopen(tmp_path("zero.gguf"), "wb");
    if (f) fclose(f);
    CHECK(meshlm_gguf_open(tmp_path("zero.gguf"), &g) == MESHLM_ERR_FORMAT && has("zero.gguf"));
    CHECK(meshlm_gguf_open(tmpdir, &g) == MESHLM_ERR_IO);
    CHECK(meshlm_gguf_open_memory(NULL, 0, "nothing.gguf", &g) == MESHLM_ERR_FORMAT &&
          has("nothing.gguf"));
}


/* ---- malformed files ---- */

/* A small valid file using most value types, whose last tensor ends exactly at the end of
 * the file, so that every proper prefix of it is invalid. */
static void build_small(bb *b) {
    b_header(b, 3, 2, 5);
    b_kv_u32(b, "general.alignment", 16);
    b_str(b, "general.name");
    b_u32(b, MESHLM_GGUF_STRING);
    b_str(b, "tiny");
    b_str(b, "tok.list");
    b_u32(b, MESHLM_GGUF_ARRAY);
    b_u32(b, MESHLM_GGUF_STRING);
    b_u64(b, 3);
    b_str(b, "a");
    b_str(b, "bc");
    b_str(b, "");
    b_str(b, "tok.scores");
    b_u32(b, MESHLM_GGUF_ARRAY);
    b_u32(b, MESHLM_GGUF_F32);
    b_u64(b, 2);
    b_zeros(b, 8);
    b_str(b, "flag");
    b_u32(b, MESHLM_GGUF_BOOL);
    b_bytes(b, "\1", 1);
    uint64_t ne_a[1] = {4}, ne_b[1] = {32};
    b_tensor(b, "w.a", 1, ne_a, MESHLM_TYPE_F32, 0);
    b_tensor(b, "w.b", 1, ne_b, MESHLM_TYPE_Q8_0, 16);
    b_pad(b, 16);
    b_zeros(b, 16 + 34);
}

static void test_truncation(void) {
    bb b = {0};
    build_small(&b);
    meshlm_gguf *g;
    CHECK_MSG(open_bb(&b, &g) == 0, "%s", meshlm_last_error());
    int bad = 0;
    for (size_t n = 0; n < b.n; n++) {
        bb prefix = {.p = b.p, .n = n};
        int rc = open_bb(&prefix, &g);
        if (rc != MESHLM_ERR_FORMAT || !has("bad.gguf")) {
            bad++;
            fprintf(stderr, "prefix %zu: status %d: %s\n", n, rc, meshlm_last_error());
        }
    }
    CHECK_MSG(bad == 0, "%d of %zu prefixes not rejected", bad, b.n);
    free(b.p);
}

static void test_bad_headers(void) {
    bb b = {0};
    b_bytes(&b, "GGUX", 4);
    b_zeros(&b, 40);
    EXPECT_FAIL(&b, MESHLM_ERR_FORMAT, "magic", "offset 0");
    b_bytes(&b, "GGU", 3);
    EXPECT_FAIL(&b, MESHLM_ERR_FORMAT, "3 bytes");
    static const struct {
        uint32_t v;
        int status;
        const char *msg;
    } versions[] = {
        {1, MESHLM_ERR_UNSUPPORTED, "version 1 "}, {4, MESHLM_ERR_UNSUPPORTED, "version 4 "},
        {0, MESHLM_ERR_FORMAT, "version 0 "},     {0x03000000, MESHLM_ERR_FORMAT, "byte-swapped"},
    };
    for (size_t i = 0; i < sizeof versions / sizeof versions[0]; i++) {
        b_header(&b, versions[i].v, 0, 0);
        EXPECT_FAIL(&b, versions[i].status, versions[i].msg, "offset 4");
    }
    b_header(&b, 3, 1ULL << 60, 0);
    b_zeros(&b, 100);
    EXPECT_FAIL(&b, MESHLM_ERR_FORMAT, "tensor count 1152921504606846976", "offset 8");
    b_header(&b, 3, 0, UINT64_MAX);
    b_zeros(&b, 100);
    EXPECT_FAIL(&b, MESHLM_ERR_FORMAT, "kv count 18446744073709551615", "offset 16");
}

/* Starts a one-kv file and writes the key and value type. */
static void kv_start(bb *b, const char *key, uint32_t type) {
    b_header(b, 3, 0, 1);
    b_str(b, key);
    b_u32(b, type);
}

static void test_bad_kvs(void) {
    bb b = {0};
    b_header(&b, 3, 0, 1);
    b_u64(&b, 1ULL << 62);
    b_zeros(&b, 20);
    EXPECT_FAIL(&b, MESHLM_ERR_FORMAT, "kv #0", "string length 4611686018427387904", "offset 24");
    kv_start(&b, "k.s", MESHLM_GGUF_STRING);
    b_u64(&b, 1ULL << 50);
    b_zeros(&b, 20);
    EXPECT_FAIL(&b, MESHLM_ERR_FORMAT, "'k.s'", "string length 1125899906842624");
    kv_start(&b, "k.a", MESHLM_GGUF_ARRAY);
    b_u32(&b, MESHLM_GGUF_U32);
    b_u64(&b, 1ULL << 40);
    b_zeros(&b, 64);
    EXPECT_FAIL(&b, MESHLM_ERR_FORMAT, "'k.a'", "1099511627776", "offset 24");
    /* (2^61 + 1) * 8 wraps to 8: a check that multiplies first would accept it. */
    kv_start(&b, "k.o", MESHLM_GGUF_ARRAY);
    b_u32(&b, MESHLM_GGUF_U64);
    b_u64(&b, (1ULL << 61) + 1);
    b_zeros(&b, 16);
    EXPECT_FAIL(&b, MESHLM_ERR_FORMAT, "'k.o'", "2305843009213693953");
    kv_start(&b, "k.ss", MESHLM_GGUF_ARRAY);
    b_u32(&b, MESHLM_GGUF_STRING);
    b_u64(&b, 1ULL << 40);
    b_zeros(&b, 64);
    EXPECT_FAIL(&b, MESHLM_ERR_FORMAT, "'k.ss'", "strings");
    kv_start(&b, "k.se", MESHLM_GGUF_ARRAY);
    b_u32(&b, MESHLM_GGUF_STRING);
    b_u64(&b, 2);
    b_str(&b, "ok");
    b_u64(&b, 1000);
    b_zeros(&b, 8);
    EXPECT_FAIL(&b, MESHLM_ERR_FORMAT, "'k.se'", "element 1: string length 1000");
    kv_start(&b, "k.x", 13);
    b_zeros(&b, 16);
    EXPECT_FAIL(&b, MESHLM_ERR_FORMAT, "'k.x'", "invalid value type 13");
    kv_start(&b, "k.e", MESHLM_GGUF_ARRAY);
    b_u32(&b, 99);
    b_u64(&b, 1);
    b_zeros(&b, 16);
    EXPECT_FAIL(&b, MESHLM_ERR_FORMAT, "'k.e'", "element type 99");
    kv_start(&b, "k.n", MESHLM_GGUF_ARRAY);
    b_u32(&b, MESHLM_GGUF_ARRAY);
    b_u64(&b, 1);
    b_u32(&b, MESHLM_GGUF_U8);
    b_u64(&b, 1);
    b_zeros(&b, 8);
    EXPECT_FAIL(&b, MESHLM_ERR_UNSUPPORTED, "'k.n'", "nested");
    kv_start(&b, "k.b", MESHLM_GGUF_BOOL);
    b_bytes(&b, "\2", 1);
    EXPECT_FAIL(&b, MESHLM_ERR_FORMAT, "'k.b'", "bool value 2");
    kv_start(&b, "k.ba", MESHLM_GGUF_ARRAY);
    b_u32(&b, MESHLM_GGUF_BOOL);
    b_u64(&b, 2);
    b_bytes(&b, "\1\7", 2);
    EXPECT_FAIL(&b, MESHLM_ERR_FORMAT, "'k.ba'", "bool value 7");
    b_header(&b, 3, 0, 2);
    b_kv_u32(&b, "k.d", 1);
    b_kv_u32(&b, "k.d", 2);
    EXPECT_FAIL(&b, MESHLM_ERR_FORMAT, "duplicate key 'k.d'", "offset 43", "first at offset 24");
    b_header(&b, 3, 0, 2);
    b_kv_u32(&b, "k.ok", 1);
    b_kv_u32(&b, "", 2);
    EXPECT_FAIL(&b, MESHLM_ERR_FORMAT, "kv #1", "empty key", "offset 44");
    b_header(&b, 3, 0, 1);
    b_u64(&b, 3);
    b_bytes(&b, "a\0b", 3);
    b_u32(&b, MESHLM_GGUF_U8);
    b_zeros(&b, 1);
    EXPECT_FAIL(&b, MESHLM_ERR_FORMAT, "kv #0", "NUL");
}

static void test_bad_alignment(void) {
    bb b = {0};
    const uint32_t values[] = {0, 3, 48, 1u << 30};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        char want[32];
        snprintf(want, sizeof want, ": %" PRIu32 " is not", values[i]);
        b_header(&b, 3, 0, 1);
        b_kv_u32(&b, "general.alignment", values[i]);
        EXPECT_FAIL(&b, MESHLM_ERR_FORMAT, "'general.alignment'", want, "offset 24");
    }
    kv_start(&b, "general.alignment", MESHLM_GGUF_U64);
    b_u64(&b, 32);
    EXPECT_FAIL(&b, MESHLM_ERR_FORMAT, "'general.alignment'", "type u64, expected u32");
    kv_start(&b, "general.alignment", MESHLM_GGUF_STRING);
    b_str(&b, "32");
    EXPECT_FAIL(&b, MESHLM_ERR_FORMAT, "'general.alignment'", "type string");
}

/* A one-tensor file with data_bytes of data after the aligned header; returns where the
 * tensor info starts. */
static size_t one_tensor(bb *b, const char *name, uint32_t nd, const uint64_t *ne, uint32_t type,
                         uint64_t off, size_t data_bytes) {
    b_header(b, 3, 1, 0);
    size_t at = b_tensor(b, name, nd, ne, type, off);
    b_pad(b, 32);
    b_zeros(b, data_bytes);
    return at;
}

#define EXPECT_TENSOR_FAIL(b, at, status, ...)                                               \
    do {                                                                                     \
        char where_[48];                                                                     \
        snprintf(where_, sizeof where_, "(tensor info at offset %zu)", (size_t)(at));        \
        EXPECT_FAIL(b, status, where_, __VA_ARGS__);                                         \
    } while (0)

static void test_bad_tensors(void) {
    bb b = {0};
    uint64_t ne[5] = {32, 2, 1, 1, 1};
    size_t at = one_tensor(&b, "", 1, ne, MESHLM_TYPE_F32, 0, 128);
    EXPECT_TENSOR_FAIL(&b, at, MESHLM_ERR_FORMAT, "tensor #0", "empty name");
    char name64[65];
    memset(name64, 'n', 64);
    name64[64] = '\0';
    at = one_tensor(&b, name64, 1, ne, MESHLM_TYPE_F32, 0, 128);
    EXPECT_TENSOR_FAIL(&b, at, MESHLM_ERR_FORMAT, "nnnnnnnn", "name is 64 bytes");
    at = one_tensor(&b, "t.nodims", 0, ne, MESHLM_TYPE_F32, 0, 128);
    EXPECT_TENSOR_FAIL(&b, at, MESHLM_ERR_FORMAT, "'t.nodims'", "0 dimensions");
    at = one_tensor(&b, "t.5dims", 5, ne, MESHLM_TYPE_F32, 0, 512);
    EXPECT_TENSOR_FAIL(&b, at, MESHLM_ERR_FORMAT, "'t.5dims'", "5 dimensions");
    uint64_t zero[2] = {32, 0};
    at = one_tensor(&b, "t.zero", 2, zero, MESHLM_TYPE_F32, 0, 128);
    EXPECT_TENSOR_FAIL(&b, at, MESHLM_ERR_FORMAT, "'t.zero'", "dimension 1 is 0");
    uint64_t neg[1] = {1ULL << 63};
    at = one_tensor(&b, "t.neg", 1, neg, MESHLM_TYPE_F32, 0, 128);
    EXPECT_TENSOR_FAIL(&b, at, MESHLM_ERR_FORMAT, "'t.neg'", "9223372036854775808");
    uint64_t ovf[3] = {1ULL << 32, 1ULL << 32, 4};
    at = one_tensor(&b, "t.ovf", 3, ovf, MESHLM_TYPE_F32, 0, 128);
    EXPECT_TENSOR_FAIL(&b, at, MESHLM_ERR_FORMAT, "'t.ovf'", "element count overflows");
    uint64_t huge[2] = {1ULL << 20, 1ULL << 20};
    at = one_tensor(&b, "t.huge", 2, huge, MESHLM_TYPE_F32, 0, 128);
    EXPECT_TENSOR_FAIL(&b, at, MESHLM_ERR_FORMAT, "'t.huge'", "than the file");
    /* 2^62 floats are 2^64 bytes: a size that wraps to 0 must not pass as empty. */
    uint64_t wrap0[1] = {1ULL << 62};
    at = one_tensor(&b, "t.wrap0", 1, wrap0, MESHLM_TYPE_F32, 0, 128);
    EXPECT_TENSOR_FAIL(&b, at, MESHLM_ERR_FORMAT, "'t.wrap0'", "than the file");
    at = one_tensor(&b, "t.unk", 2, ne, 99, 0, 128);
    EXPECT_TENSOR_FAIL(&b, at, MESHLM_ERR_FORMAT, "'t.unk'", "unknown type id 99");
    at = one_tensor(&b, "t.unk42", 2, ne, 42, 0, 128);
    EXPECT_TENSOR_FAIL(&b, at, MESHLM_ERR_FORMAT, "'t.unk42'", "unknown type id 42");
    at = one_tensor(&b, "t.q2k", 2, ne, 10, 0, 128);
    EXPECT_TENSOR_FAIL(&b, at, MESHLM_ERR_UNSUPPORTED, "'t.q2k'", "type 10 (Q2_K)");
    at = one_tensor(&b, "t.q42", 2, ne, 4, 0, 128);
    EXPECT_TENSOR_FAIL(&b, at, MESHLM_ERR_UNSUPPORTED, "'t.q42'", "type 4 (Q4_2)");
    uint64_t ne48[1] = {48};
    at = one_tensor(&b, "t.blk", 1, ne48, MESHLM_TYPE_Q8_0, 0, 128);
    EXPECT_TENSOR_FAIL(&b, at, MESHLM_ERR_FORMAT, "'t.blk'", "ne[0] = 48",
                       "Q8_0 block size 32");
    at = one_tensor(&b, "t.mis", 1, ne, MESHLM_TYPE_F32, 4, 256);
    EXPECT_TENSOR_FAIL(&b, at, MESHLM_ERR_FORMAT, "'t.mis'", "offset 4 is not a multiple",
                       "alignment 32");
    at = one_tensor(&b, "t.far", 2, ne, MESHLM_TYPE_F32, 0, 255);
    EXPECT_TENSOR_FAIL(&b, at, MESHLM_ERR_FORMAT, "'t.far'", "extends past the end of the file");
    at = one_tensor(&b, "t.wrap", 1, ne, MESHLM_TYPE_F32, UINT64_MAX - 31, 256);
    EXPECT_TENSOR_FAIL(&b, at, MESHLM_ERR_FORMAT, "'t.wrap'", "extends past the end");
    /* Relative data ranges [64, 320) and [96, 160) overlap; [0, 64) touches but is fine. */
    b_header(&b, 3, 3, 0);
    uint64_t ne_big[1] = {64}, ne_small[1] = {16};
    b_tensor(&b, "t.first", 1, ne_small, MESHLM_TYPE_F32, 0);
    b_tensor(&b, "t.big", 1, ne_big, MESHLM_TYPE_F32, 64);
    at = b_tensor(&b, "t.inner", 1, ne_small, MESHLM_TYPE_F32, 96);
    b_pad(&b, 32);
    b_zeros(&b, 512);
    EXPECT_TENSOR_FAIL(&b, at, MESHLM_ERR_FORMAT, "'t.inner'", "overlaps tensor 't.big'");
    b_header(&b, 3, 2, 0);
    size_t first = b_tensor(&b, "t.dup", 1, ne, MESHLM_TYPE_F32, 0);
    at = b_tensor(&b, "t.dup", 1, ne, MESHLM_TYPE_F32, 128);
    b_pad(&b, 32);
    b_zeros(&b, 256);
    char first_s[48];
    snprintf(first_s, sizeof first_s, "first at offset %zu", first);
    EXPECT_FAIL(&b, MESHLM_ERR_FORMAT, "duplicate tensor name 't.dup'", first_s);
    (void)at;
}

static void test_malformed(void) {
    test_truncation();
    test_bad_headers();
    test_bad_kvs();
    test_bad_alignment();
    test_bad_tensors();
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_gguf.XXXXXX");
    if (!mkdtemp(tmpdir)) t_skip("cannot create a temporary directory");
    test_round_trip(0);
    test_round_trip(64);
    test_writer_errors();
    test_empty_writer();
    test_v2();
    test_open_errors();
    test_malformed();
    test_stories();
    test_vocabs();
    const char *files[] = {"rt.gguf", "rt_align.gguf", "aborted.gguf", "empty.gguf", "zero.gguf"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) remove(tmp_path(files[i]));
    rmdir(tmpdir);
    return t_done();
}
