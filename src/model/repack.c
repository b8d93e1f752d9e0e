/* Repacking matrices by class: gather the class's matrices, check every one, allocate
 * every buffer, and only then convert row by row (decode to f32, encode in the target). */
#include "model/repack.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/dtype.h"
#include "core/hugemem.h"
#include "core/quant.h"
#include "core/status.h"
#include "model/options.h"

static const char *const class_names[MESHLM_WCLASS_COUNT] = {"wqkv", "wo", "w13", "w2", "embd", "output"};

static const int targets[] = {MESHLM_TYPE_F32,  MESHLM_TYPE_F16,  MESHLM_TYPE_BF16, MESHLM_TYPE_Q8_0,
                              MESHLM_TYPE_Q4_0, MESHLM_TYPE_BFP8, MESHLM_TYPE_BFP4};
enum { N_TARGETS = sizeof targets / sizeof targets[0] };

#define TARGET_LIST "F32, F16, BF16, Q8_0, Q4_0, BFP8, BFP4"

const char *meshlm_wclass_name(int c) { return c >= 0 && c < MESHLM_WCLASS_COUNT ? class_names[c] : NULL; }

bool meshlm_repack_target(int type) {
    for (int i = 0; i < N_TARGETS; i++)
        if (targets[i] == type) return true;
    return false;
}

/* One item "class=type", already cut out of the spec and trimmed (len bytes at s). */
static int parse_item(const char *s, size_t len, meshlm_repack_spec *out) {
    const char *eq = memchr(s, '=', len);
    if (len == 0)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "repack spec: empty item (expected CLASS=TYPE, e.g. w13=bfp4)");
    if (!eq)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG,
                           "repack spec: item '%.*s' has no '=' (expected CLASS=TYPE, e.g. w13=bfp4)", (int)len, s);
    char cls[16] = "", typ[16] = "";
    size_t nc = (size_t)(eq - s), nt = len - nc - 1;
    while (nc && isspace((unsigned char)s[nc - 1])) nc--;
    while (nt && isspace((unsigned char)eq[1])) eq++, nt--;
    if (nc < sizeof cls) memcpy(cls, s, nc), cls[nc] = 0;
    if (nt < sizeof typ) memcpy(typ, eq + 1, nt), typ[nt] = 0;
    int c = -1;
    for (int i = 0; i < MESHLM_WCLASS_COUNT && nc < sizeof cls; i++)
        if (!strcasecmp(cls, class_names[i])) c = i;
    if (c < 0)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG,
                           "repack spec: unknown tensor class '%.*s' (classes: wqkv, wo, w13, w2, embd, output)",
                           (int)(eq - s), s);
    int t = nt < sizeof typ ? meshlm_type_from_name(typ) : -1;
    if (t < 0)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "repack spec: unknown type '%.*s' for %s (types: " TARGET_LIST ")",
                           (int)nt, eq + 1, class_names[c]);
    if (!meshlm_repack_target(t))
        return meshlm_fail(MESHLM_ERR_INVALID_ARG,
                           "repack spec: %s is not a repack target for %s (types: " TARGET_LIST ")",
                           meshlm_type_name(t), class_names[c]);
    if (out->type[c] >= 0)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "repack spec: class %s is given twice", class_names[c]);
    out->type[c] = t;
    return MESHLM_OK;
}

int meshlm_repack_parse(const char *text, meshlm_repack_spec *out) {
    for (int c = 0; c < MESHLM_WCLASS_COUNT; c++) out->type[c] = -1;
    if (!text) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "repack spec: NULL");
    const char *p = text;
    while (isspace((unsigned char)*p)) p++;
    if (!*p) return MESHLM_OK;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *s = p;
        while (len && isspace((unsigned char)*s)) s++, len--;
        while (len && isspace((unsigned char)s[len - 1])) len--;
        int rc = parse_item(s, len, out);
        if (rc) {
            for (int c = 0; c < MESHLM_WCLASS_COUNT; c++) out->type[c] = -1;
            return rc;
        }
        if (!end) return MESHLM_OK;
        p = end + 1;
    }
}

/* A matrix of the class, with the tensor name for messages. */
typedef struct member {
    meshlm_matrix *w;
    char name[48];
} member;

static void add(member *list, int *n, meshlm_matrix *w, int layer, const char *what) {
    if (!w->data) return; /* a mixture-of-experts layer has no dense FFN */
    list[*n].w = w;
    if (layer >= 0)
        snprintf(list[*n].name, sizeof list[*n].name, "blk.%d.%s", layer, what);
    else
        snprintf(list[*n].name, sizeof list[*n].name, "%s", what);
    (*n)++;
}

/* The class's matrices (at most 3 per layer). */
static int members(meshlm_model *m, meshlm_wclass c, member *list) {
    int n = 0;
    if (c == MESHLM_WCLASS_EMBD) add(list, &n, &m->tok_embd, -1, "token_embd.weight");
    if (c == MESHLM_WCLASS_OUTPUT)
        add(list, &n, &m->output, -1, m->hp.tied_output ? "token_embd.weight (as LM head)" : "output.weight");
    for (int il = 0; il < m->hp.n_layer; il++) {
        meshlm_layer *L = &m->layers[il];
        switch (c) {
        case MESHLM_WCLASS_WQKV:
            add(list, &n, &L->wq, il, "attn_q.weight");
            add(list, &n, &L->wk, il, "attn_k.weight");
            add(list, &n, &L->wv, il, "attn_v.weight");
            break;
        case MESHLM_WCLASS_WO: add(list, &n, &L->wo, il, "attn_output.weight"); break;
        case MESHLM_WCLASS_W13:
            add(list, &n, &L->w1, il, "ffn_gate.weight");
            add(list, &n, &L->w3, il, "ffn_up.weight");
            break;
        case MESHLM_WCLASS_W2: add(list, &n, &L->w2, il, "ffn_down.weight"); break;
        default: break;
        }
    }
    return n;
}

static int check_target(meshlm_wclass c, int type) {
    if (c < 0 || c >= MESHLM_WCLASS_COUNT)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "repack: tensor class %d does not exist", (int)c);
    if (!meshlm_repack_target(type))
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "repack %s: %s is not a repack target (types: " TARGET_LIST ")",
                           class_names[c], meshlm_type_name(type));
    if (!meshlm_type_supported(type))
        return meshlm_fail(MESHLM_ERR_UNSUPPORTED,
                           "repack %s: type %s is not computed with by this build's kernels yet", class_names[c],
                           meshlm_type_name(type));
    return MESHLM_OK;
}

/* Decodes each row to f32 and encodes it in type; x holds one row. */
static void convert(const meshlm_matrix *w, int type, void *dst, size_t row_bytes, float *x) {
    for (int64_t r = 0; r < w->n_out; r++) {
        meshlm_dequantize_row(w->type, (const char *)w->data + (size_t)r * w->row_bytes, x, w->n_in);
        meshlm_quantize_row(type, x, (char *)dst + (size_t)r * row_bytes, w->n_in);
    }
}

int meshlm_repack_class(meshlm_model *m, meshlm_wclass c, int type) {
    int rc = check_target(c, type);
    if (rc) return rc;
    member *list = malloc((size_t)(3 * m->hp.n_layer + 1) * sizeof *list);
    if (!list) return meshlm_fail(MESHLM_ERR_NOMEM, "repack %s: out of memory", class_names[c]);
    int n = members(m, c, list), todo = 0;
    int64_t blk = meshlm_type_block_elems(type), widest = 0;
    for (int i = 0; i < n && !rc; i++) {
        const meshlm_matrix *w = list[i].w;
        if (w->type == type) continue;
        if (w->n_in % blk)
            rc = meshlm_fail(MESHLM_ERR_INVALID_ARG,
                             "repack %s to %s: %s has rows of %lld values, not a multiple of the %s block (%lld)",
                             class_names[c], meshlm_type_name(type), list[i].name, (long long)w->n_in,
                             meshlm_type_name(type), (long long)blk);
        if (w->n_in > widest) widest = w->n_in;
        list[todo++] = list[i];
    }
    if (rc || todo == 0) {
        free(list);
        return rc;
    }
    void **bufs = calloc((size_t)todo, sizeof *bufs);
    void **owned = realloc(m->owned, (size_t)(m->n_owned + todo) * sizeof *owned);
    float *x = malloc((size_t)widest * sizeof *x);
    if (owned) m->owned = owned;
    if (!bufs || !owned || !x) rc = meshlm_fail(MESHLM_ERR_NOMEM, "repack %s: out of memory", class_names[c]);
    for (int i = 0; i < todo && !rc; i++) {
        bufs[i] = meshlm_alloc_weights(meshlm_type_row_bytes(type, list[i].w->n_in) * (size_t)list[i].w->n_out);
        if (!bufs[i])
            rc = meshlm_fail(MESHLM_ERR_NOMEM, "repack %s: out of memory for %s", class_names[c], list[i].name);
    }
    for (int i = 0; i < todo && !rc; i++) {
        meshlm_matrix *w = list[i].w;
        size_t row_bytes = meshlm_type_row_bytes(type, w->n_in);
        convert(w, type, bufs[i], row_bytes, x);
        *w = (meshlm_matrix){bufs[i], type, w->n_in, w->n_out, row_bytes, false};
        m->owned[m->n_owned++] = bufs[i];
    }
    if (rc && bufs)
        for (int i = 0; i < todo; i++) free(bufs[i]);
    free(bufs);
    free(x);
    free(list);
    return rc;
}

int meshlm_repack(meshlm_model *m, const meshlm_repack_spec *spec) {
    for (int c = 0; c < MESHLM_WCLASS_COUNT; c++) {
        if (spec->type[c] < 0) continue;
        int rc = meshlm_repack_class(m, (meshlm_wclass)c, spec->type[c]);
        if (rc) return rc;
    }
    return MESHLM_OK;
}

_Static_assert((int)MESHLM_CLASS_COUNT == (int)MESHLM_WCLASS_COUNT, "one list of tensor classes");

meshlm_status meshlm_model_prepare(meshlm_model *m, const char *opt, const char *opt_set) {
    if (!m) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "meshlm_model_prepare: NULL model");
    meshlm_opts o;
    int rc = meshlm_opts_make(opt, opt_set, &o);
    meshlm_repack_spec spec;
    for (int c = 0; c < MESHLM_WCLASS_COUNT; c++) spec.type[c] = o.repack[c];
    if (!rc) rc = meshlm_repack(m, &spec);
    if (!rc && o.hugepages) rc = meshlm_model_hugepages(m, meshlm_opts_panels(&o));
    if (!rc && o.prefetch && !o.hugepages) rc = meshlm_model_prefetch(m);
    return (meshlm_status)rc;
}
