/* GGUF writer: metadata and tensor descriptions are held in memory, already serialized;
 * tensor data is streamed through one reusable buffer so files of any size can be written. */
#include "io/gguf.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "core/status.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "GGUF values are written from host memory, which needs a little-endian host"
#endif

enum { MAX_KEY_LEN = 65535, MAX_NAME_LEN = 63, MAX_ALIGNMENT = 1 << 20 };

typedef struct wkv {
    char *key;
    int type;
    int elem_type;
    uint64_t n;    /* strings: byte length; arrays: element count */
    uint8_t *blob; /* the value's bytes as they go into the file, after any count */
    size_t blob_len;
} wkv;

typedef struct wtensor {
    char name[MAX_NAME_LEN + 1];
    meshlm_gguf_tensor t;
} wtensor;

struct meshlm_gguf_writer {
    wkv *kvs;
    size_t n_kv, cap_kv;
    wtensor *ts;
    size_t n_t, cap_t;
};

/* A FILE with a running byte count and a sticky error, so a sequence of writes needs one
 * check at the end. */
typedef struct out_file {
    FILE *f;
    uint64_t pos;
    int err; /* errno of the first failure, or 0 */
} out_file;

int meshlm_gguf_writer_create(meshlm_gguf_writer **out) {
    if (!out) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "gguf_writer_create: out is NULL");
    *out = calloc(1, sizeof **out);
    return *out ? MESHLM_OK : meshlm_fail(MESHLM_ERR_NOMEM, "gguf writer: out of memory");
}

void meshlm_gguf_writer_free(meshlm_gguf_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kvs[i].key);
        free(w->kvs[i].blob);
    }
    free(w->kvs);
    free(w->ts);
    free(w);
}

static int grow(void **arr, size_t *cap, size_t n, size_t elem) {
    if (n < *cap) return MESHLM_OK;
    size_t c = *cap ? *cap * 2 : 16;
    void *p = realloc(*arr, c * elem);
    if (!p) return meshlm_fail(MESHLM_ERR_NOMEM, "gguf writer: out of memory");
    *arr = p;
    *cap = c;
    return MESHLM_OK;
}

/* Stores a value, taking ownership of blob (freed on failure too); a key set before has its
 * value replaced in place, so the file keeps the order keys were first set in. */
static int put_kv(meshlm_gguf_writer *w, const char *key, int type, int elem_type, uint64_t n,
                  uint8_t *blob, size_t blob_len) {
    size_t klen = key ? strlen(key) : 0;
    if (!w || klen == 0 || klen > MAX_KEY_LEN) {
        free(blob);
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "gguf writer: key '%.120s' is %s",
                           key ? key : "(null)", klen ? "too long" : "empty or missing");
    }
    wkv *kv = NULL;
    for (size_t i = 0; i < w->n_kv && !kv; i++)
        if (strcmp(w->kvs[i].key, key) == 0) kv = &w->kvs[i];
    if (!kv) {
        char *k = malloc(klen + 1);
        if (!k || grow((void **)&w->kvs, &w->cap_kv, w->n_kv, sizeof *w->kvs)) {
            free(k);
            free(blob);
            return meshlm_fail(MESHLM_ERR_NOMEM, "gguf writer: out of memory for key '%s'", key);
        }
        memcpy(k, key, klen + 1);
        kv = &w->kvs[w->n_kv++];
        *kv = (wkv){.key = k};
    }
    free(kv->blob);
    kv->type = type;
    kv->elem_type = elem_type;
    kv->n = n;
    kv->blob = blob;
    kv->blob_len = blob_len;
    return MESHLM_OK;
}

/* A copy of n fixed-size values; bools are normalized to the 0/1 bytes GGUF requires. */
static uint8_t *copy_values(int type, const void *v, uint64_t n, size_t *len) {
    size_t es = meshlm_gguf_vtype_size(type);
    if (es == 0 || n > SIZE_MAX / es) return NULL;
    *len = (size_t)n * es;
    uint8_t *b = malloc(*len ? *len : 1);
    if (!b) return NULL;
    if (type == MESHLM_GGUF_BOOL)
        for (size_t i = 0; i < *len; i++) b[i] = ((const bool *)v)[i] ? 1 : 0;
    else if (*len)
        memcpy(b, v, *len);
    return b;
}

int meshlm_gguf_set_val(meshlm_gguf_writer *w, const char *key, int vtype, const void *v) {
    if (meshlm_gguf_vtype_size(vtype) == 0 || !v)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "gguf writer: key '%s': type %s is not a "
                           "fixed-size scalar type", key ? key : "(null)",
                           meshlm_gguf_vtype_name(vtype));
    size_t len;
    uint8_t *b = copy_values(vtype, v, 1, &len);
    if (!b) return meshlm_fail(MESHLM_ERR_NOMEM, "gguf writer: out of memory");
    return put_kv(w, key, vtype, 0, 0, b, len);
}

int meshlm_gguf_set_arr(meshlm_gguf_writer *w, const char *key, int elem_type, const void *v,
                        uint64_t n) {
    size_t es = meshlm_gguf_vtype_size(elem_type);
    if (es == 0 || (!v && n))
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "gguf writer: key '%s': bad array of %s",
                           key ? key : "(null)", meshlm_gguf_vtype_name(elem_type));
    size_t len;
    uint8_t *b = copy_values(elem_type, v, n, &len);
    if (!b)
        return meshlm_fail(MESHLM_ERR_NOMEM, "gguf writer: key '%s': no memory for %" PRIu64
                           " elements", key ? key : "(null)", n);
    return put_kv(w, key, MESHLM_GGUF_ARRAY, elem_type, n, b, len);
}

int meshlm_gguf_set_u32(meshlm_gguf_writer *w, const char *key, uint32_t v) {
    return meshlm_gguf_set_val(w, key, MESHLM_GGUF_U32, &v);
}

int meshlm_gguf_set_i32(meshlm_gguf_writer *w, const char *key, int32_t v) {
    return meshlm_gguf_set_val(w, key, MESHLM_GGUF_I32, &v);
}

int meshlm_gguf_set_f32(meshlm_gguf_writer *w, const char *key, float v) {
    return meshlm_gguf_set_val(w, key, MESHLM_GGUF_F32, &v);
}

int meshlm_gguf_set_bool(meshlm_gguf_writer *w, const char *key, bool v) {
    return meshlm_gguf_set_val(w, key, MESHLM_GGUF_BOOL, &v);
}

int meshlm_gguf_set_arr_f32(meshlm_gguf_writer *w, const char *key, const float *v, uint64_t n) {
    return meshlm_gguf_set_arr(w, key, MESHLM_GGUF_F32, v, n);
}

int meshlm_gguf_set_arr_i32(meshlm_gguf_writer *w, const char *key, const int32_t *v,
                            uint64_t n) {
    return meshlm_gguf_set_arr(w, key, MESHLM_GGUF_I32, v, n);
}

int meshlm_gguf_set_str(meshlm_gguf_writer *w, const char *key, const char *v) {
    if (!v) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "gguf writer: key '%s': NULL string",
                               key ? key : "(null)");
    size_t len = strlen(v);
    uint8_t *b = malloc(len ? len : 1);
    if (!b) return meshlm_fail(MESHLM_ERR_NOMEM, "gguf writer: out of memory");
    memcpy(b, v, len);
    return put_kv(w, key, MESHLM_GGUF_STRING, 0, len, b, len);
}

/* String arrays are stored serialized (length, bytes, length, bytes...), as in the file. */
int meshlm_gguf_set_arr_str(meshlm_gguf_writer *w, const char *key, const char *const *v,
                            uint64_t n) {
    size_t total = 0;
    for (uint64_t i = 0; i < n; i++) {
        size_t l = v && v[i] ? strlen(v[i]) : SIZE_MAX;
        if (l == SIZE_MAX)
            return meshlm_fail(MESHLM_ERR_INVALID_ARG, "gguf writer: key '%s': string %" PRIu64
                               " is NULL", key ? key : "(null)", i);
        if (total > SIZE_MAX - 8 - l)
            return meshlm_fail(MESHLM_ERR_NOMEM, "gguf writer: key '%s': array too large",
                               key ? key : "(null)");
        total += 8 + l;
    }
    uint8_t *b = malloc(total ? total : 1), *p = b;
    if (!b) return meshlm_fail(MESHLM_ERR_NOMEM, "gguf writer: out of memory");
    for (uint64_t i = 0; i < n; i++) {
        uint64_t l = strlen(v[i]);
        memcpy(p, &l, 8);
        memcpy(p + 8, v[i], (size_t)l);
        p += 8 + l;
    }
    return put_kv(w, key, MESHLM_GGUF_ARRAY, MESHLM_GGUF_STRING, n, b, total);
}

static int check_shape(const char *name, int type, int n_dims, const int64_t *ne,
                       size_t *nbytes) {
    if (n_dims < 1 || n_dims > MESHLM_GGUF_MAX_DIMS || !ne)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "gguf writer: tensor '%s': %d dimensions "
                           "(1 to %d allowed)", name, n_dims, MESHLM_GGUF_MAX_DIMS);
    if (meshlm_type_known(type) && !meshlm_type_in_gguf(type))
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "gguf writer: tensor '%s': type %s is meshlm's "
                           "own (a repack target) and has no GGUF id", name, meshlm_type_name(type));
    if (!meshlm_type_supported(type))
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "gguf writer: tensor '%s': unsupported type "
                           "%d", name, type);
    int64_t blk = meshlm_type_block_elems(type);
    if (ne[0] < 1 || ne[0] % blk != 0)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "gguf writer: tensor '%s': ne[0] = %" PRId64
                           " is not a positive multiple of the %s block size %" PRId64,
                           name, ne[0], meshlm_type_name(type), blk);
    uint64_t count = 1, bytes = (uint64_t)(ne[0] / blk) * meshlm_type_block_bytes(type);
    for (int d = 0; d < n_dims; d++) {
        if (ne[d] < 1 || count > (uint64_t)INT64_MAX / (uint64_t)ne[d] ||
            (d > 0 && bytes > SIZE_MAX / (uint64_t)ne[d]))
            return meshlm_fail(MESHLM_ERR_INVALID_ARG, "gguf writer: tensor '%s': dimension %d "
                               "(%" PRId64 ") is zero, negative or too large", name, d, ne[d]);
        count *= (uint64_t)ne[d];
        if (d > 0) bytes *= (uint64_t)ne[d];
    }
    *nbytes = (size_t)bytes;
    return MESHLM_OK;
}

int meshlm_gguf_add_tensor(meshlm_gguf_writer *w, const char *name, int type, int n_dims,
                           const int64_t *ne) {
    size_t len = name ? strlen(name) : 0;
    if (!w || len == 0 || len > MAX_NAME_LEN)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "gguf writer: tensor name '%.64s' must be "
                           "1 to %d bytes", name ? name : "(null)", MAX_NAME_LEN);
    for (size_t i = 0; i < w->n_t; i++)
        if (strcmp(w->ts[i].name, name) == 0)
            return meshlm_fail(MESHLM_ERR_INVALID_ARG, "gguf writer: duplicate tensor '%s'",
                               name);
    size_t nbytes = 0;
    int rc = check_shape(name, type, n_dims, ne, &nbytes);
    if (rc) return rc;
    if ((rc = grow((void **)&w->ts, &w->cap_t, w->n_t, sizeof *w->ts))) return rc;
    wtensor *t = &w->ts[w->n_t++];
    memset(t, 0, sizeof *t);
    memcpy(t->name, name, len + 1);
    t->t.type = type;
    t->t.n_dims = n_dims;
    for (int d = 0; d < MESHLM_GGUF_MAX_DIMS; d++) t->t.ne[d] = d < n_dims ? ne[d] : 1;
    t->t.nbytes = nbytes;
    return MESHLM_OK;
}

static void put(out_file *o, const void *p, size_t n) {
    if (o->err || n == 0) return;
    errno = 0;
    if (fwrite(p, 1, n, o->f) != n) o->err = errno ? errno : EIO;
    o->pos += n;
}

static void put_u32(out_file *o, uint32_t v) { put(o, &v, 4); }
static void put_u64(out_file *o, uint64_t v) { put(o, &v, 8); }

static void put_str(out_file *o, const char *s) {
    uint64_t n = strlen(s);
    put_u64(o, n);
    put(o, s, (size_t)n);
}

static void pad_to(out_file *o, uint64_t target) {
    static const uint8_t zeros[256];
    while (o->pos < target && !o->err) {
        uint64_t n = target - o->pos;
        put(o, zeros, n < sizeof zeros ? (size_t)n : sizeof zeros);
    }
}

static uint64_t align_up(uint64_t x, uint32_t a) { return (x + a - 1) / a * a; }

static int writer_alignment(const meshlm_gguf_writer *w, uint32_t *align) {
    *align = MESHLM_GGUF_DEFAULT_ALIGNMENT;
    for (size_t i = 0; i < w->n_kv; i++) {
        const wkv *kv = &w->kvs[i];
        if (strcmp(kv->key, "general.alignment") != 0) continue;
        uint32_t a = 0;
        if (kv->type == MESHLM_GGUF_U32) memcpy(&a, kv->blob, 4);
        if (a == 0 || (a & (a - 1)) != 0 || a > MAX_ALIGNMENT)
            return meshlm_fail(MESHLM_ERR_INVALID_ARG, "gguf writer: general.alignment must be "
                               "a u32 power of two between 1 and %d", MAX_ALIGNMENT);
        *align = a;
    }
    return MESHLM_OK;
}

/* The byte size of everything before the data section, so absolute tensor offsets are known
 * before anything is written. */
static uint64_t header_bytes(const meshlm_gguf_writer *w) {
    uint64_t n = 4 + 4 + 8 + 8;
    for (size_t i = 0; i < w->n_kv; i++) {
        const wkv *kv = &w->kvs[i];
        n += 8 + strlen(kv->key) + 4 + kv->blob_len;
        if (kv->type == MESHLM_GGUF_STRING) n += 8;
        if (kv->type == MESHLM_GGUF_ARRAY) n += 4 + 8;
    }
    for (size_t i = 0; i < w->n_t; i++)
        n += 8 + strlen(w->ts[i].name) + 4 + 8 * (uint64_t)w->ts[i].t.n_dims + 4 + 8;
    return n;
}

static void write_header(out_file *o, const meshlm_gguf_writer *w, uint64_t data_start) {
    put(o, "GGUF", 4);
    put_u32(o, 3);
    put_u64(o, w->n_t);
    put_u64(o, w->n_kv);
    for (size_t i = 0; i < w->n_kv; i++) {
        const wkv *kv = &w->kvs[i];
        put_str(o, kv->key);
        put_u32(o, (uint32_t)kv->type);
        if (kv->type == MESHLM_GGUF_ARRAY) put_u32(o, (uint32_t)kv->elem_type);
        if (kv->type == MESHLM_GGUF_ARRAY || kv->type == MESHLM_GGUF_STRING) put_u64(o, kv->n);
        put(o, kv->blob, kv->blob_len);
    }
    for (size_t i = 0; i < w->n_t; i++) {
        const meshlm_gguf_tensor *t = &w->ts[i].t;
        put_str(o, w->ts[i].name);
        put_u32(o, (uint32_t)t->n_dims);
        for (int d = 0; d < t->n_dims; d++) put_u64(o, (uint64_t)t->ne[d]);
        put_u32(o, (uint32_t)t->type);
        put_u64(o, t->offset - data_start);
    }
    pad_to(o, data_start);
}

static int write_data(out_file *o, meshlm_gguf_writer *w, const char *path, uint32_t align,
                      meshlm_gguf_fill_fn fill, void *user) {
    size_t max = 1;
    for (size_t i = 0; i < w->n_t; i++)
        if (w->ts[i].t.nbytes > max) max = w->ts[i].t.nbytes;
    uint8_t *buf = calloc(1, max);
    if (!buf) return meshlm_fail(MESHLM_ERR_NOMEM, "%s: no memory for a %zu-byte tensor buffer",
                                 path, max);
    int rc = MESHLM_OK;
    for (size_t i = 0; i < w->n_t && !rc && !o->err; i++) {
        const meshlm_gguf_tensor *t = &w->ts[i].t;
        pad_to(o, t->offset);
        meshlm_clear_error();
        rc = fill(user, (int64_t)i, t, buf);
        if (rc && meshlm_last_error()[0])
            meshlm_fail_prefix(rc, "%s: tensor '%s'", path, t->name);
        else if (rc)
            meshlm_fail(rc, "%s: tensor '%s': fill callback failed (status %d)", path, t->name, rc);
        if (!rc) put(o, buf, t->nbytes);
    }
    if (!rc) pad_to(o, align_up(o->pos, align));
    free(buf);
    return rc;
}

static int write_file(meshlm_gguf_writer *w, FILE *f, const char *path, meshlm_gguf_fill_fn fill,
                      void *user) {
    uint32_t align;
    int rc = writer_alignment(w, &align);
    if (rc) return rc;
    uint64_t data_start = align_up(header_bytes(w), align), rel = 0;
    for (size_t i = 0; i < w->n_t; i++) {
        w->ts[i].t.name = w->ts[i].name;
        w->ts[i].t.offset = data_start + rel;
        w->ts[i].t.data = NULL;
        rel = align_up(rel + w->ts[i].t.nbytes, align);
    }
    out_file o = {.f = f};
    write_header(&o, w, data_start);
    if (!o.err && o.pos != data_start)
        return meshlm_fail(MESHLM_ERR_INTERNAL, "%s: header is %" PRIu64 " bytes, expected %"
                           PRIu64, path, o.pos, data_start);
    if (!o.err && (rc = write_data(&o, w, path, align, fill, user))) return rc;
    if (o.err)
        return meshlm_fail(MESHLM_ERR_IO, "%s: write failed near offset %" PRIu64 ": %s", path,
                           o.pos, strerror(o.err));
    return MESHLM_OK;
}

int meshlm_gguf_write(meshlm_gguf_writer *w, const char *path, meshlm_gguf_fill_fn fill,
                      void *user) {
    if (!w || !path || (!fill && w->n_t))
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "gguf_write: NULL argument");
    size_t plen = strlen(path);
    char *tmp = malloc(plen + sizeof ".partial");
    if (!tmp) return meshlm_fail(MESHLM_ERR_NOMEM, "%s: out of memory", path);
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".partial", sizeof ".partial");
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        int rc = meshlm_fail(MESHLM_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
        free(tmp);
        return rc;
    }
    int rc = write_file(w, f, path, fill, user);
    if (fclose(f) != 0 && !rc)
        rc = meshlm_fail(MESHLM_ERR_IO, "%s: close failed: %s", tmp, strerror(errno));
    if (!rc && rename(tmp, path) != 0)
        rc = meshlm_fail(MESHLM_ERR_IO, "%s: cannot rename to %s: %s", tmp, path,
                         strerror(errno));
    if (rc) remove(tmp);
    free(tmp);
    return rc;
}
