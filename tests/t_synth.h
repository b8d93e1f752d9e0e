/* Tests' synthetic models: the "tiny" shape of an architecture in one weight type, written
 * into a test's temporary directory. */
#ifndef MESHLM_TEST_T_SYNTH_H
#define MESHLM_TEST_T_SYNTH_H

#include <stdio.h>
#include <string.h>

#include "core/dtype.h"
#include "meshlm.h"
#include "model/synth.h"
#include "t.h"

/* Writes dir/ARCH-TYPE.gguf into path and "ARCH TYPE" into label; false (a failed check
 * naming the error) when it cannot. gemma2 gets a window of 8 positions, which short
 * tests cross, and soft-caps tight enough to bend its values; gemma3 the same window and
 * final cap, one windowed and one global layer, and a global rope of its own base, scaled;
 * phi3 an original context of 64, so contexts past it take the long LongRoPE factors;
 * smollm3 four layers, the last without rope. */
static inline bool t_synth_tiny(const char *dir, const char *arch, int type, char *path, size_t path_cap, char *label,
                                size_t label_cap) {
    meshlm_synth_params p;
    CHECK(meshlm_synth_preset("tiny", arch, &p) == MESHLM_OK);
    p.type = type;
    p.sliding_window = 8, p.attn_softcap = 2.0f, p.final_softcap = 10.0f;
    if (!strcmp(arch, "gemma3")) p.swa_pattern = 2, p.rope_theta = 1e6f, p.rope_scale = 4.0f;
    if (!strcmp(arch, "phi3")) p.n_ctx_orig = 64;
    if (!strcmp(arch, "smollm3")) p.n_layer = 4;
    snprintf(path, path_cap, "%s/%s-%s.gguf", dir, arch, meshlm_type_name(type));
    snprintf(label, label_cap, "%s %s", arch, meshlm_type_name(type));
    if (meshlm_synth_write(&p, path) == MESHLM_OK) return true;
    CHECK_MSG(0, "%s: %s", label, meshlm_last_error());
    return false;
}

#endif
