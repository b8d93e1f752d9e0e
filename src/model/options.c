#include "model/options.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/dtype.h"
#include "core/status.h"

static const char *const CLASS_NAMES[MESHLM_CLASS_COUNT] = {"wqkv", "wo", "w13", "w2", "embd", "output"};
static const char *const PRESET_NAMES[] = {"generic", "performance", "accuracy"};

/* A boolean option: its name and where it lives in the struct. */
typedef struct bool_opt {
    const char *name;
    size_t offset;
} bool_opt;

static const bool_opt BOOL_OPTS[] = {
    {"fuse_qkv", offsetof(meshlm_opts, fuse_qkv)},     {"fuse_w13", offsetof(meshlm_opts, fuse_w13)},
    {"fuse_rs", offsetof(meshlm_opts, fuse_rs)},       {"fuse_ag", offsetof(meshlm_opts, fuse_ag)},
    {"ring", offsetof(meshlm_opts, ring)},             {"prefetch", offsetof(meshlm_opts, prefetch)},
    {"stream", offsetof(meshlm_opts, stream)},         {"persistent", offsetof(meshlm_opts, persistent)},
    {"f32_act", offsetof(meshlm_opts, f32_act)},       {"hugepages", offsetof(meshlm_opts, hugepages)},
    {"panels", offsetof(meshlm_opts, panels)},         {"expert_parallel", offsetof(meshlm_opts, expert_parallel)},
};
enum { N_BOOL = sizeof BOOL_OPTS / sizeof BOOL_OPTS[0] };

const char *meshlm_class_name(int c) { return c >= 0 && c < MESHLM_CLASS_COUNT ? CLASS_NAMES[c] : NULL; }

meshlm_opts meshlm_opts_preset(meshlm_preset p) {
    meshlm_opts o = {.preset = p};
    for (int c = 0; c < MESHLM_CLASS_COUNT; c++) o.repack[c] = -1;
    if (p == MESHLM_PRESET_GENERIC) return o;
    /* The warm-cache streamer is off: it measured as a loss on CPUs. Expert parallelism is a
     * choice of layout (memory per device against balance), left to the user. */
    o.fuse_qkv = o.fuse_w13 = o.fuse_rs = o.fuse_ag = o.ring = o.prefetch = o.persistent = true;
    o.f32_act = p == MESHLM_PRESET_ACCURACY;
    /* Panels change the layout, not the bits (the block order), but hold only int8 dots. */
    o.panels = !o.f32_act;
    return o;
}

int meshlm_preset_parse(const char *name, meshlm_preset *out) {
    for (int i = 0; i < 3; i++)
        if (name && strcasecmp(name, PRESET_NAMES[i]) == 0) {
            *out = (meshlm_preset)i;
            return MESHLM_OK;
        }
    return meshlm_fail(MESHLM_ERR_INVALID_ARG, "--opt: '%s' is not a preset (generic, performance, accuracy)",
                       name ? name : "");
}

static int parse_bool(const char *v, bool *out) {
    static const char *const on[] = {"on", "1", "true", "yes"}, *const off[] = {"off", "0", "false", "no"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(v, on[i]) == 0) return *out = true, 0;
        if (strcasecmp(v, off[i]) == 0) return *out = false, 0;
    }
    return -1;
}

/* Applies one "name=value" item of length len to o. */
static int set_one(meshlm_opts *o, const char *item, size_t len) {
    char buf[128];
    if (len >= sizeof buf) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "--opt-set: item '%.40s...' is too long", item);
    memcpy(buf, item, len);
    buf[len] = '\0';
    char *eq = strchr(buf, '=');
    if (!eq || eq == buf || !eq[1])
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "--opt-set: '%s' is not name=value", buf);
    *eq = '\0';
    const char *name = buf, *value = eq + 1;
    for (int i = 0; i < N_BOOL; i++)
        if (strcmp(name, BOOL_OPTS[i].name) == 0) {
            if (parse_bool(value, (bool *)((char *)o + BOOL_OPTS[i].offset)) == 0) return MESHLM_OK;
            return meshlm_fail(MESHLM_ERR_INVALID_ARG, "--opt-set: %s takes on or off, not '%s'", name, value);
        }
    if (strcmp(name, "topology") == 0) {
        if (strcasecmp(value, "ring") == 0 || strcasecmp(value, "linear") == 0)
            return o->ring = strcasecmp(value, "ring") == 0, MESHLM_OK;
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "--opt-set: topology takes linear or ring, not '%s'", value);
    }
    for (int c = 0; c < MESHLM_CLASS_COUNT; c++)
        if (strcmp(name, CLASS_NAMES[c]) == 0) {
            int t = meshlm_type_from_name(value);
            if (t < 0 || !meshlm_type_known(t))
                return meshlm_fail(MESHLM_ERR_INVALID_ARG, "--opt-set: %s=%s: '%s' is not a weight type", name, value,
                                   value);
            o->repack[c] = t;
            return MESHLM_OK;
        }
    return meshlm_fail(MESHLM_ERR_INVALID_ARG,
                       "--opt-set: unknown option '%s' (fuse_qkv, fuse_w13, fuse_rs, fuse_ag, ring, topology, "
                       "prefetch, stream, persistent, f32_act, hugepages, panels, expert_parallel, or a tensor class: wqkv, wo, "
                       "w13, w2, embd, output)",
                       name);
}

int meshlm_opts_set(meshlm_opts *o, const char *spec) {
    if (!spec || !*spec) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "--opt-set: empty list");
    meshlm_opts next = *o;
    for (const char *p = spec; *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        int rc = set_one(&next, p, len);
        if (rc) return rc;
        p += len + (end ? 1 : 0);
    }
    *o = next;
    return MESHLM_OK;
}

int meshlm_opts_make(const char *preset, const char *spec, meshlm_opts *out) {
    meshlm_preset p = MESHLM_PRESET_PERFORMANCE;
    int rc = preset ? meshlm_preset_parse(preset, &p) : MESHLM_OK;
    if (rc) return rc;
    meshlm_opts o = meshlm_opts_preset(p);
    if (spec && *spec && (rc = meshlm_opts_set(&o, spec))) return rc;
    *out = o;
    return MESHLM_OK;
}

/* snprintf at *n, advancing *n but never past the end, so a small buffer truncates. */
static void append(char *buf, size_t size, size_t *n, const char *fmt, const char *a, const char *b) {
    if (*n >= size) return;
    int w = snprintf(buf + *n, size - *n, fmt, a, b);
    if (w > 0) *n = *n + (size_t)w < size ? *n + (size_t)w : size;
}

void meshlm_opts_describe(const meshlm_opts *o, char *buf, size_t size) {
    size_t n = 0;
    if (size == 0) return;
    buf[0] = '\0';
    append(buf, size, &n, "%s%s", "preset=", PRESET_NAMES[o->preset]);
    for (int i = 0; i < N_BOOL; i++)
        append(buf, size, &n, " %s=%s", BOOL_OPTS[i].name,
               *(const bool *)((const char *)o + BOOL_OPTS[i].offset) ? "on" : "off");
    for (int c = 0; c < MESHLM_CLASS_COUNT; c++)
        if (o->repack[c] >= 0) append(buf, size, &n, " %s=%s", CLASS_NAMES[c], meshlm_type_name(o->repack[c]));
}
