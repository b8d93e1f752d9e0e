/* Presets and --opt-set: the values each preset holds, every option switchable alone,
 * all-or-nothing errors that name the item. */
#include <string.h>

#include "core/dtype.h"
#include "core/status.h"
#include "model/options.h"
#include "t.h"

static void test_presets(void) {
    meshlm_preset p;
    CHECK(meshlm_preset_parse("performance", &p) == MESHLM_OK && p == MESHLM_PRESET_PERFORMANCE);
    CHECK(meshlm_preset_parse("Generic", &p) == MESHLM_OK && p == MESHLM_PRESET_GENERIC);
    CHECK(meshlm_preset_parse("fast", &p) == MESHLM_ERR_INVALID_ARG && strstr(meshlm_last_error(), "fast"));
    meshlm_opts g = meshlm_opts_preset(MESHLM_PRESET_GENERIC), f = meshlm_opts_preset(MESHLM_PRESET_PERFORMANCE);
    meshlm_opts a = meshlm_opts_preset(MESHLM_PRESET_ACCURACY);
    CHECK(!g.fuse_qkv && !g.fuse_w13 && !g.ring && !g.prefetch && !g.persistent && !g.f32_act);
    CHECK(f.fuse_qkv && f.fuse_w13 && f.ring && f.persistent && !f.f32_act);
    CHECK(a.f32_act && a.fuse_w13);
    for (int c = 0; c < MESHLM_CLASS_COUNT; c++) CHECK(g.repack[c] == -1 && f.repack[c] == -1 && a.repack[c] == -1);
}

static void test_set(void) {
    meshlm_opts o = meshlm_opts_preset(MESHLM_PRESET_PERFORMANCE);
    CHECK(meshlm_opts_set(&o, "fuse_w13=off,topology=linear,w13=q4_0,stream=yes") == MESHLM_OK);
    CHECK(!o.fuse_w13 && !o.ring && o.stream && o.fuse_qkv && o.repack[MESHLM_CLASS_W13] == MESHLM_TYPE_Q4_0);
    char line[512];
    meshlm_opts_describe(&o, line, sizeof line);
    CHECK_MSG(strstr(line, "preset=performance") && strstr(line, "fuse_w13=off") && strstr(line, "w13=Q4_0"), "%s",
              line);
    char tiny[12];
    meshlm_opts_describe(&o, tiny, sizeof tiny);
    CHECK(strlen(tiny) == sizeof tiny - 1);

    meshlm_opts before = o;
    static const char *const bad[] = {"", "fuse_w13", "fuse_w13=maybe", "warp=on", "w13=q9_9", "=on", "ring=",
                                      "fuse_qkv=off,bogus=1", "topology=mesh"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_MSG(meshlm_opts_set(&o, bad[i]) == MESHLM_ERR_INVALID_ARG, "'%s' accepted", bad[i]);
        CHECK_MSG(memcmp(&o, &before, sizeof o) == 0, "'%s' changed the options", bad[i]);
    }
    CHECK(meshlm_opts_set(&o, "warp=on") != MESHLM_OK && strstr(meshlm_last_error(), "warp"));
    CHECK(meshlm_opts_set(&o, "fuse_w13=maybe") != MESHLM_OK && strstr(meshlm_last_error(), "maybe"));
    CHECK(meshlm_class_name(MESHLM_CLASS_WQKV) && !strcmp(meshlm_class_name(MESHLM_CLASS_WQKV), "wqkv"));
    CHECK(meshlm_class_name(MESHLM_CLASS_COUNT) == NULL);
}

int main(void) {
    test_presets();
    test_set();
    return t_done();
}
