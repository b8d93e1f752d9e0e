/* GGUF reader: maps a file (or borrows a caller's buffer) and validates every field
 * before anything is used, so that no later access can leave the mapping. */
#include "io/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/dtype.h"
#include "core/status.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "GGUF values are read in place, which needs a little-endian host"
#endif

/* The smallest possible kv (8-byte key length, 1-byte key, 4-byte type, 1-byte value) and
 * tensor info (name length, 1-byte name, n_dims, one dim, type, offset): counts in the
 * header are checked against these before anything is allocated. */
enum {
    MIN_KV_BYTES = 8 + 1 + 4 + 1,
    MIN_TENSOR_BYTES = 8 + 1 + 4 + 8 + 4 + 8,
    MAX_KEY_LEN = 65535,
    MAX_NAME_LEN = 63,
    MAX_ALIGNMENT = 1 << 20,
    N_VTYPES = MESHLM_GGUF_F64 + 1,
};

typedef struct gkv {
    size_t key_off;  /* into the name arena */
    size_t at;       /* file offset of the kv, for messages */
    int type;
    int elem_type;   /* arrays only */
    uint64_t n;      /* strings: byte length; arrays: element count */
    size_t val;      /* file offset of the value (string bytes, first array element) */
    size_t str_base; /* string arrays: index of element 0 in str_offs */
} gkv;

typedef struct tinfo {
    size_t name_off;
    size_t at;
    uint64_t rel; /* data offset relative to the data section */
} tinfo;

typedef struct name_index {
    int64_t *slots; /* entry + 1; 0 is empty */
    size_t mask;
} name_index;

struct meshlm_gguf {
    char *path;
    const uint8_t *base;
    size_t size;
    void *map; /* NULL for caller buffers */
    uint32_t version, alignment;
    size_t data_start;
    int64_t n_kv, n_tensors;
    gkv *kvs;
    tinfo *tinfos;
    meshlm_gguf_tensor *tensors;
    size_t *str_offs; /* file offset of each string-array element's length prefix */
    size_t n_str, cap_str;
    char *arena; /* NUL-terminated keys and tensor names */
    size_t arena_len, arena_cap;
    name_index kv_index, tensor_index;
};

typedef struct cursor {
    const uint8_t *p;
    size_t size, pos;
    const char *file;
    char what[200]; /* what is being read, for messages */
} cursor;

static const size_t vtype_sizes[N_VTYPES] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
static const char *const vtype_names[N_VTYPES] = {
    "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64",
};

const char *meshlm_gguf_vtype_name(int t) {
    return t >= 0 && t < N_VTYPES ? vtype_names[t] : "invalid-type";
}

size_t meshlm_gguf_vtype_size(int t) { return t >= 0 && t < N_VTYPES ? vtype_sizes[t] : 0; }

/* Every tensor type id GGUF has assigned, including ones it later withdrew, so a file using
 * one is reported as unsupported by name rather than as garbage. */
static const char *const ggml_type_names[] = {
    "F32", "F16", "Q4_0", "Q4_1", "Q4_2", "Q4_3", "Q5_0", "Q5_1", "Q8_0", "Q8_1", "Q2_K",
    "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K", "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL",
    "IQ3_S", "IQ2_S", "IQ4_XS", "I8", "I16", "I32", "I64", "F64", "IQ1_M", "BF16", "Q4_0_4_4",
    "Q4_0_4_8", "Q4_0_8_8", "TQ1_0", "TQ2_0", "IQ4_NL_4_4", "IQ4_NL_4_8", "IQ4_NL_8_8", "MXFP4",
    "NVFP4", "Q1_0",
};
enum { N_GGML_TYPES = sizeof ggml_type_names / sizeof ggml_type_names[0] };

static void __attribute__((format(printf, 2, 3))) describe(cursor *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->what, sizeof c->what, fmt, ap);
    va_end(ap);
}

static size_t left(const cursor *c) { return c->size - c->pos; }

static int need(cursor *c, uint64_t n) {
    if (n <= left(c)) return MESHLM_OK;
    return meshlm_fail(MESHLM_ERR_FORMAT,
                       "%s: %s at offset %zu: needs %" PRIu64 " bytes but only %zu remain "
                       "(file is %zu bytes)",
                       c->file, c->what, c->pos, n, left(c), c->size);
}

static int read_u32(cursor *c, uint32_t *v) {
    int rc = need(c, 4);
    if (rc) return rc;
    memcpy(v, c->p + c->pos, 4);
    c->pos += 4;
    return MESHLM_OK;
}

static int read_u64(cursor *c, uint64_t *v) {
    int rc = need(c, 8);
    if (rc) return rc;
    memcpy(v, c->p + c->pos, 8);
    c->pos += 8;
    return MESHLM_OK;
}

/* A length-prefixed string: leaves *off at its first byte and the cursor after it. */
static int read_str(cursor *c, size_t *off, uint64_t *len) {
    int rc = read_u64(c, len);
    if (rc) return rc;
    if (*len > left(c))
        return meshlm_fail(MESHLM_ERR_FORMAT,
                           "%s: %s at offset %zu: string length %" PRIu64
                           " exceeds the %zu bytes left in the file",
                           c->file, c->what, c->pos - 8, *len, left(c));
    *off = c->pos;
    c->pos += (size_t)*len;
    return MESHLM_OK;
}

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603u;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211u;
    return h;
}

typedef const char *(*name_fn)(const meshlm_gguf *g, int64_t i);

static const char *kv_name(const meshlm_gguf *g, int64_t i) {
    return g->arena + g->kvs[i].key_off;
}

static const char *tensor_name(const meshlm_gguf *g, int64_t i) {
    return g->arena + g->tinfos[i].name_off;
}

static int index_init(name_index *ix, int64_t n) {
    size_t cap = 16;
    while (cap < (size_t)n * 2) cap <<= 1;
    ix->slots = calloc(cap, sizeof *ix->slots);
    ix->mask = cap - 1;
    return ix->slots ? MESHLM_OK : meshlm_fail(MESHLM_ERR_NOMEM, "out of memory for a name index");
}

/* Open addressing with linear probing; returns the entry named s, or -1 and the empty slot
 * where it would go. */
static int64_t index_probe(const name_index *ix, const meshlm_gguf *g, name_fn name,
                           const char *s, size_t *slot) {
    size_t i = (size_t)hash_str(s) & ix->mask;
    while (ix->slots[i]) {
        int64_t e = ix->slots[i] - 1;
        if (strcmp(name(g, e), s) == 0) return e;
        i = (i + 1) & ix->mask;
    }
    *slot = i;
    return -1;
}

/* Adds entry i; returns the earlier entry of the same name instead, if any. */
static int64_t index_put(name_index *ix, const meshlm_gguf *g, name_fn name, int64_t i) {
    size_t slot = 0;
    int64_t prev = index_probe(ix, g, name, name(g, i), &slot);
    if (prev < 0) ix->slots[slot] = i + 1;
    return prev;
}

static int64_t index_get(const name_index *ix, const meshlm_gguf *g, name_fn name,
                         const char *s) {
    size_t slot;
    if (!ix->slots) return -1;
    return index_probe(ix, g, name, s, &slot);
}

/* Copies len bytes plus a NUL into the arena; names are referred to by offset because the
 * arena moves as it grows. */
static int arena_add(meshlm_gguf *g, const uint8_t *s, size_t len, size_t *off) {
    if (g->arena_cap - g->arena_len < len + 1) {
        size_t cap = g->arena_cap ? g->arena_cap : 4096;
        while (cap - g->arena_len < len + 1) cap *= 2;
        char *a = realloc(g->arena, cap);
        if (!a) return meshlm_fail(MESHLM_ERR_NOMEM, "%s: out of memory for names", g->path);
        g->arena = a;
        g->arena_cap = cap;
    }
    memcpy(g->arena + g->arena_len, s, len);
    g->arena[g->arena_len + len] = '\0';
    *off = g->arena_len;
    g->arena_len += len + 1;
    return MESHLM_OK;
}

static int parse_header(meshlm_gguf *g, cursor *c) {
    if (c->size < 4)
        return meshlm_fail(MESHLM_ERR_FORMAT,
                           "%s: file is %zu bytes, too short for the GGUF magic", g->path,
                           c->size);
    if (memcmp(c->p, "GGUF", 4) != 0)
        return meshlm_fail(MESHLM_ERR_FORMAT,
                           "%s: bad magic at offset 0: bytes %02x %02x %02x %02x, expected "
                           "'GGUF' (47 47 55 46)",
                           g->path, c->p[0], c->p[1], c->p[2], c->p[3]);
    c->pos = 4;
    describe(c, "version");
    int rc = read_u32(c, &g->version);
    if (rc) return rc;
    uint32_t v = g->version;
    if (v >= 0x10000)
        return meshlm_fail(MESHLM_ERR_FORMAT,
                           "%s: version %" PRIu32 " (0x%08" PRIx32 ") at offset 4 is implausible: "
                           "the file looks byte-swapped (big-endian?); only little-endian "
                           "GGUF versions 2 and 3 are supported",
                           g->path, v, v);
    if (v != 2 && v != 3)
        return meshlm_fail(v ? MESHLM_ERR_UNSUPPORTED : MESHLM_ERR_FORMAT,
                           "%s: GGUF version %" PRIu32 " at offset 4 is not supported "
                           "(only versions 2 and 3)",
                           g->path, v);
    uint64_t nt, nk;
    describe(c, "tensor count");
    if ((rc = read_u64(c, &nt))) return rc;
    describe(c, "kv count");
    if ((rc = read_u64(c, &nk))) return rc;
    if (nt > left(c) / MIN_TENSOR_BYTES)
        return meshlm_fail(MESHLM_ERR_FORMAT,
                           "%s: tensor count %" PRIu64 " at offset 8 is impossible: only %zu "
                           "bytes follow the header (a tensor info takes at least %d)",
                           g->path, nt, left(c), MIN_TENSOR_BYTES);
    if (nk > left(c) / MIN_KV_BYTES)
        return meshlm_fail(MESHLM_ERR_FORMAT,
                           "%s: kv count %" PRIu64 " at offset 16 is impossible: only %zu "
                           "bytes follow the header (a kv takes at least %d)",
                           g->path, nk, left(c), MIN_KV_BYTES);
    g->n_tensors = (int64_t)nt;
    g->n_kv = (int64_t)nk;
    return MESHLM_OK;
}

static int reserve_strs(meshlm_gguf *g, uint64_t n) {
    if (g->cap_str - g->n_str >= n) return MESHLM_OK;
    size_t cap = g->cap_str ? g->cap_str : 64;
    while (cap - g->n_str < n) cap *= 2;
    size_t *s = realloc(g->str_offs, cap * sizeof *s);
    if (!s) return meshlm_fail(MESHLM_ERR_NOMEM, "%s: out of memory for string arrays", g->path);
    g->str_offs = s;
    g->cap_str = cap;
    return MESHLM_OK;
}

/* Fails with "<file>: key '<key>' at offset N: <details>". */
static int __attribute__((format(printf, 5, 6)))
kv_fail(const char *file, const char *key, size_t at, int status, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return meshlm_fail(status, "%s: key '%.120s' at offset %zu: %s", file, key, at, msg);
}

static int check_bools(cursor *c, const char *key, uint64_t n) {
    for (uint64_t i = 0; i < n; i++)
        if (c->p[c->pos + i] > 1)
            return kv_fail(c->file, key, c->pos + (size_t)i, MESHLM_ERR_FORMAT,
                           "bool value %u is neither 0 nor 1", c->p[c->pos + i]);
    return MESHLM_OK;
}

static int parse_str_array(meshlm_gguf *g, cursor *c, gkv *kv, const char *key) {
    if (kv->n > left(c) / 8)
        return kv_fail(g->path, key, kv->at, MESHLM_ERR_FORMAT,
                       "array of %" PRIu64 " strings cannot fit in the %zu bytes left", kv->n,
                       left(c));
    int rc = reserve_strs(g, kv->n);
    if (rc) return rc;
    kv->str_base = g->n_str;
    kv->val = c->pos;
    /* Checked inline rather than through read_str: vocabularies have 100k+ elements. */
    for (uint64_t i = 0; i < kv->n; i++) {
        uint64_t len;
        if (left(c) < 8)
            return kv_fail(g->path, key, c->pos, MESHLM_ERR_FORMAT,
                           "element %" PRIu64 " is cut off by the end of the file", i);
        memcpy(&len, c->p + c->pos, 8);
        if (len > left(c) - 8)
            return kv_fail(g->path, key, c->pos, MESHLM_ERR_FORMAT,
                           "element %" PRIu64 ": string length %" PRIu64 " exceeds the %zu "
                           "bytes left in the file",
                           i, len, left(c));
        g->str_offs[g->n_str++] = c->pos;
        c->pos += 8 + (size_t)len;
    }
    return MESHLM_OK;
}

static int parse_array(meshlm_gguf *g, cursor *c, gkv *kv, const char *key) {
    uint32_t et;
    int rc;
    describe(c, "array element type of key '%.120s'", key);
    if ((rc = read_u32(c, &et))) return rc;
    if (et >= N_VTYPES)
        return kv_fail(g->path, key, c->pos - 4, MESHLM_ERR_FORMAT,
                       "invalid array element type %" PRIu32 " (valid: 0..%d)", et,
                       N_VTYPES - 1);
    if (et == MESHLM_GGUF_ARRAY)
        return kv_fail(g->path, key, c->pos - 4, MESHLM_ERR_UNSUPPORTED,
                       "nested arrays (arrays of arrays) are not supported");
    kv->elem_type = (int)et;
    describe(c, "array length of key '%.120s'", key);
    if ((rc = read_u64(c, &kv->n))) return rc;
    if (et == MESHLM_GGUF_STRING) return parse_str_array(g, c, kv, key);
    size_t es = vtype_sizes[et];
    if (kv->n > left(c) / es)
        return kv_fail(g->path, key, kv->at, MESHLM_ERR_FORMAT,
                       "array of %" PRIu64 " %s elements (%zu bytes each) needs more than "
                       "the %zu bytes left",
                       kv->n, vtype_names[et], es, left(c));
    kv->val = c->pos;
    if (et == MESHLM_GGUF_BOOL && (rc = check_bools(c, key, kv->n))) return rc;
    c->pos += (size_t)kv->n * es;
    return MESHLM_OK;
}

static int parse_value(meshlm_gguf *g, cursor *c, gkv *kv, const char *key) {
    int rc;
    if (kv->type == MESHLM_GGUF_ARRAY) return parse_array(g, c, kv, key);
    describe(c, "value of key '%.120s'", key);
    if (kv->type == MESHLM_GGUF_STRING) return read_str(c, &kv->val, &kv->n);
    size_t es = vtype_sizes[kv->type];
    if ((rc = need(c, es))) return rc;
    if (kv->type == MESHLM_GGUF_BOOL && (rc = check_bools(c, key, 1))) return rc;
    kv->val = c->pos;
    c->pos += es;
    return MESHLM_OK;
}

static int parse_key(meshlm_gguf *g, cursor *c, int64_t i, gkv *kv) {
    size_t off = 0;
    uint64_t len = 0;
    describe(c, "key of kv #%" PRId64, i);
    int rc = read_str(c, &off, &len);
    if (rc) return rc;
    const char *bad = len == 0 ? "empty key"
                      : len > MAX_KEY_LEN ? "key longer than 65535 bytes"
                      : memchr(c->p + off, 0, (size_t)len) ? "key contains a NUL byte"
                                                             : NULL;
    if (bad)
        return meshlm_fail(MESHLM_ERR_FORMAT, "%s: kv #%" PRId64 " at offset %zu: %s", g->path,
                           i, kv->at, bad);
    if ((rc = arena_add(g, c->p + off, (size_t)len, &kv->key_off))) return rc;
    int64_t prev = index_put(&g->kv_index, g, kv_name, i);
    if (prev >= 0)
        return meshlm_fail(MESHLM_ERR_FORMAT,
                           "%s: duplicate key '%.120s' at offset %zu (first at offset %zu)",
                           g->path, kv_name(g, i), kv->at, g->kvs[prev].at);
    return MESHLM_OK;
}

static int parse_kvs(meshlm_gguf *g, cursor *c) {
    int rc;
    g->kvs = calloc((size_t)g->n_kv + 1, sizeof *g->kvs);
    if (!g->kvs) return meshlm_fail(MESHLM_ERR_NOMEM, "%s: out of memory for metadata", g->path);
    if ((rc = index_init(&g->kv_index, g->n_kv))) return rc;
    for (int64_t i = 0; i < g->n_kv; i++) {
        gkv *kv = &g->kvs[i];
        kv->at = c->pos;
        if ((rc = parse_key(g, c, i, kv))) return rc;
        const char *key = kv_name(g, i);
        uint32_t t;
        describe(c, "value type of key '%.120s'", key);
        if ((rc = read_u32(c, &t))) return rc;
        if (t >= N_VTYPES)
            return kv_fail(g->path, key, c->pos - 4, MESHLM_ERR_FORMAT,
                           "invalid value type %" PRIu32 " (valid: 0..%d)", t, N_VTYPES - 1);
        kv->type = (int)t;
        if ((rc = parse_value(g, c, kv, key))) return rc;
    }
    return MESHLM_OK;
}

static int apply_alignment(meshlm_gguf *g) {
    g->alignment = MESHLM_GGUF_DEFAULT_ALIGNMENT;
    int64_t i = index_get(&g->kv_index, g, kv_name, "general.alignment");
    if (i < 0) return MESHLM_OK;
    const gkv *kv = &g->kvs[i];
    const char *key = "general.alignment";
    if (kv->type != MESHLM_GGUF_U32)
        return kv_fail(g->path, key, kv->at, MESHLM_ERR_FORMAT, "type %s, expected u32",
                       vtype_names[kv->type]);
    uint32_t a;
    memcpy(&a, g->base + kv->val, 4);
    if (a == 0 || (a & (a - 1)) != 0 || a > MAX_ALIGNMENT)
        return kv_fail(g->path, key, kv->at, MESHLM_ERR_FORMAT,
                       "%" PRIu32 " is not a power of two between 1 and %d", a, MAX_ALIGNMENT);
    g->alignment = a;
    return MESHLM_OK;
}

static int parse_tensor_name(meshlm_gguf *g, cursor *c, int64_t i, tinfo *ti) {
    size_t off = 0;
    uint64_t len = 0;
    describe(c, "name of tensor #%" PRId64, i);
    int rc = read_str(c, &off, &len);
    if (rc) return rc;
    if (len == 0)
        return meshlm_fail(MESHLM_ERR_FORMAT,
                           "%s: tensor #%" PRId64 " (tensor info at offset %zu): empty name",
                           g->path, i, ti->at);
    if (len > MAX_NAME_LEN)
        return meshlm_fail(MESHLM_ERR_FORMAT,
                           "%s: tensor '%.64s...' (tensor info at offset %zu): name is %" PRIu64
                           " bytes, the limit is %d",
                           g->path, (const char *)c->p + off, ti->at, len, MAX_NAME_LEN);
    if (memchr(c->p + off, 0, (size_t)len))
        return meshlm_fail(MESHLM_ERR_FORMAT,
                           "%s: tensor #%" PRId64 " (tensor info at offset %zu): name contains "
                           "a NUL byte",
                           g->path, i, ti->at);
    if ((rc = arena_add(g, c->p + off, (size_t)len, &ti->name_off))) return rc;
    int64_t prev = index_put(&g->tensor_index, g, tensor_name, i);
    if (prev >= 0)
        return meshlm_fail(MESHLM_ERR_FORMAT,
                           "%s: duplicate tensor name '%s' (tensor info at offset %zu; first "
                           "at offset %zu)",
                           g->path, tensor_name(g, i), ti->at, g->tinfos[prev].at);
    return MESHLM_OK;
}

/* Fails with "<file>: tensor '<name>' (tensor info at offset N): <details>". */
static int __attribute__((format(printf, 4, 5)))
tensor_fail(const meshlm_gguf *g, int64_t i, int status, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return meshlm_fail(status, "%s: tensor '%s' (tensor info at offset %zu): %s", g->path,
                       tensor_name(g, i), g->tinfos[i].at, msg);
}

static int parse_dims(meshlm_gguf *g, cursor *c, int64_t i, meshlm_gguf_tensor *t) {
    uint32_t nd;
    int rc = read_u32(c, &nd);
    if (rc) return rc;
    if (nd < 1 || nd > MESHLM_GGUF_MAX_DIMS)
        return tensor_fail(g, i, MESHLM_ERR_FORMAT, "%" PRIu32 " dimensions (1 to %d allowed)",
                           nd, MESHLM_GGUF_MAX_DIMS);
    t->n_dims = (int)nd;
    uint64_t count = 1;
    for (int d = 0; d < MESHLM_GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < nd; d++) {
        uint64_t ne;
        if ((rc = read_u64(c, &ne))) return rc;
        if (ne == 0 || ne > (uint64_t)INT64_MAX)
            return tensor_fail(g, i, MESHLM_ERR_FORMAT,
                               "dimension %" PRIu32 " is %" PRIu64 " (1 to 2^63-1 allowed)", d,
                               ne);
        if (count > (uint64_t)INT64_MAX / ne)
            return tensor_fail(g, i, MESHLM_ERR_FORMAT,
                               "element count overflows at dimension %" PRIu32 " (%" PRIu64 ")",
                               d, ne);
        count *= ne;
        t->ne[d] = (int64_t)ne;
    }
    return MESHLM_OK;
}

/* Type checks and the byte size; nothing larger than the file can be valid, which also
 * keeps the size within size_t. */
static int check_type(meshlm_gguf *g, int64_t i, meshlm_gguf_tensor *t, uint32_t type) {
    if (type < N_GGML_TYPES && !meshlm_type_supported((int)type))
        return tensor_fail(g, i, MESHLM_ERR_UNSUPPORTED,
                           "type %" PRIu32 " (%s) is not supported by meshlm", type,
                           ggml_type_names[type]);
    /* meshlm's own ids (the block floats) are unknown to GGUF, so unknown in a file too. */
    if (!meshlm_type_in_gguf((int)type) || !meshlm_type_supported((int)type))
        return tensor_fail(g, i, MESHLM_ERR_FORMAT, "unknown type id %" PRIu32, type);
    t->type = (int)type;
    int64_t blk = meshlm_type_block_elems(t->type);
    if (t->ne[0] % blk != 0)
        return tensor_fail(g, i, MESHLM_ERR_FORMAT,
                           "ne[0] = %" PRId64 " is not a multiple of the %s block size %" PRId64,
                           t->ne[0], meshlm_type_name(t->type), blk);
    uint64_t row_blocks = (uint64_t)(t->ne[0] / blk), bb = meshlm_type_block_bytes(t->type);
    uint64_t bytes = row_blocks > g->size / bb ? UINT64_MAX : row_blocks * bb;
    for (int d = 1; d < MESHLM_GGUF_MAX_DIMS && bytes <= g->size; d++)
        bytes = bytes > g->size / (uint64_t)t->ne[d] ? UINT64_MAX : bytes * (uint64_t)t->ne[d];
    if (bytes > g->size)
        return tensor_fail(g, i, MESHLM_ERR_FORMAT,
                           "its data would be larger than the file (%zu bytes)", g->size);
    t->nbytes = (size_t)bytes;
    return MESHLM_OK;
}

static int parse_tensor(meshlm_gguf *g, cursor *c, int64_t i) {
    tinfo *ti = &g->tinfos[i];
    meshlm_gguf_tensor *t = &g->tensors[i];
    ti->at = c->pos;
    int rc = parse_tensor_name(g, c, i, ti);
    if (rc) return rc;
    const char *name = tensor_name(g, i);
    uint32_t type;
    describe(c, "dimensions of tensor '%s'", name);
    if ((rc = parse_dims(g, c, i, t))) return rc;
    describe(c, "type of tensor '%s'", name);
    if ((rc = read_u32(c, &type))) return rc;
    if ((rc = check_type(g, i, t, type))) return rc;
    describe(c, "data offset of tensor '%s'", name);
    if ((rc = read_u64(c, &ti->rel))) return rc;
    if (ti->rel % g->alignment != 0)
        return tensor_fail(g, i, MESHLM_ERR_FORMAT,
                           "data offset %" PRIu64 " is not a multiple of the alignment %" PRIu32,
                           ti->rel, g->alignment);
    return MESHLM_OK;
}

static int parse_tensors(meshlm_gguf *g, cursor *c) {
    int rc;
    g->tinfos = calloc((size_t)g->n_tensors + 1, sizeof *g->tinfos);
    g->tensors = calloc((size_t)g->n_tensors + 1, sizeof *g->tensors);
    if (!g->tinfos || !g->tensors)
        return meshlm_fail(MESHLM_ERR_NOMEM, "%s: out of memory for tensor infos", g->path);
    if ((rc = index_init(&g->tensor_index, g->n_tensors))) return rc;
    for (int64_t i = 0; i < g->n_tensors; i++)
        if ((rc = parse_tensor(g, c, i))) return rc;
    return MESHLM_OK;
}

typedef struct span {
    uint64_t begin, end;
    int64_t idx;
} span;

static int cmp_span(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int check_overlaps(meshlm_gguf *g) {
    span *s = malloc(((size_t)g->n_tensors + 1) * sizeof *s);
    if (!s) return meshlm_fail(MESHLM_ERR_NOMEM, "%s: out of memory", g->path);
    for (int64_t i = 0; i < g->n_tensors; i++)
        s[i] = (span){g->tensors[i].offset, g->tensors[i].offset + g->tensors[i].nbytes, i};
    qsort(s, (size_t)g->n_tensors, sizeof *s, cmp_span);
    int rc = MESHLM_OK;
    for (int64_t i = 1; i < g->n_tensors && !rc; i++) {
        if (s[i].begin >= s[i - 1].end) continue;
        const span *a = &s[i - 1], *b = &s[i];
        rc = tensor_fail(g, b->idx, MESHLM_ERR_FORMAT,
                         "data [%" PRIu64 ", %" PRIu64 ") overlaps tensor '%s' data [%" PRIu64
                         ", %" PRIu64 ")",
                         b->begin, b->end, tensor_name(g, a->idx), a->begin, a->end);
    }
    free(s);
    return rc;
}

/* Tensor data offsets are relative to the data section, which starts at the end of the
 * tensor infos rounded up to the alignment. */
static int place_tensors(meshlm_gguf *g, size_t header_end) {
    uint64_t start = ((uint64_t)header_end + g->alignment - 1) / g->alignment * g->alignment;
    g->data_start = start > g->size ? g->size : (size_t)start;
    for (int64_t i = 0; i < g->n_tensors; i++) {
        meshlm_gguf_tensor *t = &g->tensors[i];
        uint64_t rel = g->tinfos[i].rel;
        if (rel > UINT64_MAX - start - t->nbytes || start + rel + t->nbytes > g->size)
            return tensor_fail(g, i, MESHLM_ERR_FORMAT,
                               "data [%" PRIu64 ", %" PRIu64 ") extends past the end of the "
                               "file (%zu bytes)",
                               start + rel, start + rel + t->nbytes, g->size);
        t->offset = start + rel;
        t->data = g->base + t->offset;
        t->name = tensor_name(g, i);
    }
    return check_overlaps(g);
}

static int parse(meshlm_gguf *g) {
    cursor c = {.p = g->base, .size = g->size, .file = g->path};
    int rc = parse_header(g, &c);
    if (!rc) rc = parse_kvs(g, &c);
    if (!rc) rc = apply_alignment(g);
    if (!rc) rc = parse_tensors(g, &c);
    if (!rc) rc = place_tensors(g, c.pos);
    return rc;
}

static int open_mapped(const uint8_t *base, size_t size, void *map, const char *name,
                       meshlm_gguf **out) {
    meshlm_gguf *g = calloc(1, sizeof *g);
    char *path = strdup(name);
    if (!g || !path) {
        free(g);
        free(path);
        if (map) munmap(map, size);
        return meshlm_fail(MESHLM_ERR_NOMEM, "%s: out of memory", name);
    }
    g->path = path;
    g->base = base;
    g->size = size;
    g->map = map;
    int rc = parse(g);
    if (rc) {
        meshlm_gguf_close(g);
        return rc;
    }
    *out = g;
    return MESHLM_OK;
}

int meshlm_gguf_open_memory(const void *buf, size_t size, const char *name, meshlm_gguf **out) {
    if (!out) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "gguf_open_memory: out is NULL");
    *out = NULL;
    if (!name) name = "<memory>";
    if (!buf && size)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "%s: NULL buffer of %zu bytes", name, size);
    static const uint8_t empty[1];
    return open_mapped(buf ? buf : empty, size, NULL, name, out);
}

int meshlm_gguf_open(const char *path, meshlm_gguf **out) {
    if (!out || !path) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "gguf_open: NULL argument");
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return meshlm_fail(MESHLM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        int err = errno;
        close(fd);
        return meshlm_fail(MESHLM_ERR_IO, "%s: not a readable regular file%s%s", path,
                           err ? ": " : "", err ? strerror(err) : "");
    }
    if (st.st_size == 0) {
        close(fd);
        return meshlm_fail(MESHLM_ERR_FORMAT, "%s: file is empty (0 bytes)", path);
    }
    if ((uint64_t)st.st_size > SIZE_MAX) {
        close(fd);
        return meshlm_fail(MESHLM_ERR_IO, "%s: file too large to map", path);
    }
    size_t size = (size_t)st.st_size;
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int err = errno;
    close(fd);
    if (map == MAP_FAILED)
        return meshlm_fail(MESHLM_ERR_IO, "%s: cannot map %zu bytes: %s", path, size,
                           strerror(err));
    return open_mapped(map, size, map, path, out);
}

void meshlm_gguf_close(meshlm_gguf *g) {
    if (!g) return;
    if (g->map) munmap(g->map, g->size);
    free(g->path);
    free(g->kvs);
    free(g->tinfos);
    free(g->tensors);
    free(g->str_offs);
    free(g->arena);
    free(g->kv_index.slots);
    free(g->tensor_index.slots);
    free(g);
}

const char *meshlm_gguf_path(const meshlm_gguf *g) { return g->path; }
uint32_t meshlm_gguf_version(const meshlm_gguf *g) { return g->version; }
uint32_t meshlm_gguf_alignment(const meshlm_gguf *g) { return g->alignment; }
size_t meshlm_gguf_file_size(const meshlm_gguf *g) { return g->size; }
size_t meshlm_gguf_data_offset(const meshlm_gguf *g) { return g->data_start; }
int64_t meshlm_gguf_n_kv(const meshlm_gguf *g) { return g->n_kv; }
int64_t meshlm_gguf_n_tensors(const meshlm_gguf *g) { return g->n_tensors; }

const char *meshlm_gguf_key(const meshlm_gguf *g, int64_t i) {
    return i >= 0 && i < g->n_kv ? kv_name(g, i) : NULL;
}

int meshlm_gguf_kv_type(const meshlm_gguf *g, int64_t i) {
    return i >= 0 && i < g->n_kv ? g->kvs[i].type : -1;
}

int64_t meshlm_gguf_find_key(const meshlm_gguf *g, const char *key) {
    return key ? index_get(&g->kv_index, g, kv_name, key) : -1;
}

const meshlm_gguf_tensor *meshlm_gguf_tensor_at(const meshlm_gguf *g, int64_t i) {
    return i >= 0 && i < g->n_tensors ? &g->tensors[i] : NULL;
}

const meshlm_gguf_tensor *meshlm_gguf_find_tensor(const meshlm_gguf *g, const char *name) {
    int64_t i = name ? index_get(&g->tensor_index, g, tensor_name, name) : -1;
    return i >= 0 ? &g->tensors[i] : NULL;
}

/* The kv named key (NOT_FOUND if absent), which must have type want unless want is -1. */
static int lookup(const meshlm_gguf *g, const char *key, int want, const gkv **kv) {
    int64_t i = meshlm_gguf_find_key(g, key);
    if (i < 0)
        return meshlm_fail(MESHLM_ERR_NOT_FOUND, "%s: key '%s' not found", g->path,
                           key ? key : "(null)");
    *kv = &g->kvs[i];
    if (want < 0 || (*kv)->type == want) return MESHLM_OK;
    return kv_fail(g->path, key, (*kv)->at, MESHLM_ERR_FORMAT, "type %s, expected %s",
                   vtype_names[(*kv)->type], vtype_names[want]);
}

int meshlm_gguf_get_int(const meshlm_gguf *g, const char *key, int64_t *out) {
    const gkv *kv = NULL;
    int rc = lookup(g, key, -1, &kv);
    if (rc) return rc;
    int t = kv->type;
    if (t > MESHLM_GGUF_I32 && t != MESHLM_GGUF_U64 && t != MESHLM_GGUF_I64)
        return kv_fail(g->path, key, kv->at, MESHLM_ERR_FORMAT, "type %s, expected an integer",
                       vtype_names[t]);
    size_t es = vtype_sizes[t];
    uint64_t u = 0;
    memcpy(&u, g->base + kv->val, es);
    bool is_signed = t == MESHLM_GGUF_I8 || t == MESHLM_GGUF_I16 || t == MESHLM_GGUF_I32 ||
                     t == MESHLM_GGUF_I64;
    if (is_signed && es < 8 && (u >> (es * 8 - 1)) & 1) u |= UINT64_MAX << (es * 8);
    if (!is_signed && u > (uint64_t)INT64_MAX)
        return kv_fail(g->path, key, kv->at, MESHLM_ERR_FORMAT,
                       "%s value %" PRIu64 " does not fit in an int64", vtype_names[t], u);
    memcpy(out, &u, 8);
    return MESHLM_OK;
}

int meshlm_gguf_get_float(const meshlm_gguf *g, const char *key, double *out) {
    const gkv *kv = NULL;
    int rc = lookup(g, key, -1, &kv);
    if (rc) return rc;
    if (kv->type == MESHLM_GGUF_F64) {
        memcpy(out, g->base + kv->val, 8);
        return MESHLM_OK;
    }
    if (kv->type != MESHLM_GGUF_F32)
        return kv_fail(g->path, key, kv->at, MESHLM_ERR_FORMAT, "type %s, expected f32 or f64",
                       vtype_names[kv->type]);
    float f;
    memcpy(&f, g->base + kv->val, 4);
    *out = f;
    return MESHLM_OK;
}

int meshlm_gguf_get_bool(const meshlm_gguf *g, const char *key, bool *out) {
    const gkv *kv = NULL;
    int rc = lookup(g, key, MESHLM_GGUF_BOOL, &kv);
    if (!rc) *out = g->base[kv->val] != 0;
    return rc;
}

int meshlm_gguf_get_str(const meshlm_gguf *g, const char *key, const char **s, size_t *len) {
    const gkv *kv = NULL;
    int rc = lookup(g, key, MESHLM_GGUF_STRING, &kv);
    if (rc) return rc;
    *s = (const char *)g->base + kv->val;
    *len = (size_t)kv->n;
    return MESHLM_OK;
}

int meshlm_gguf_get_arr(const meshlm_gguf *g, const char *key, int *elem_type, uint64_t *n,
                        const void **data) {
    const gkv *kv = NULL;
    int rc = lookup(g, key, MESHLM_GGUF_ARRAY, &kv);
    if (rc) return rc;
    *elem_type = kv->elem_type;
    *n = kv->n;
    *data = g->base + kv->val;
    return MESHLM_OK;
}

int meshlm_gguf_get_arr_str(const meshlm_gguf *g, const char *key, uint64_t i,
                            const char **s, size_t *len) {
    const gkv *kv = NULL;
    int rc = lookup(g, key, MESHLM_GGUF_ARRAY, &kv);
    if (rc) return rc;
    if (kv->elem_type != MESHLM_GGUF_STRING)
        return kv_fail(g->path, key, kv->at, MESHLM_ERR_FORMAT,
                       "an array of %s, expected strings", vtype_names[kv->elem_type]);
    if (i >= kv->n)
        return kv_fail(g->path, key, kv->at, MESHLM_ERR_RANGE,
                       "index %" PRIu64 " is out of range (%" PRIu64 " strings)", i, kv->n);
    size_t off = g->str_offs[kv->str_base + i];
    uint64_t l;
    memcpy(&l, g->base + off, 8);
    *s = (const char *)g->base + off + 8;
    *len = (size_t)l;
    return MESHLM_OK;
}
