#include "model/forward_mesh.h"

#include <stdlib.h>
#include <string.h>

#include "core/status.h"

static int64_t len(meshlm_range r) { return r.hi - r.lo; }

int meshlm_mesh_fwd_init(meshlm_mesh_fwd *f, const meshlm_model *m, int rows, int cols, const meshlm_device *dev,
                         int32_t max_tok, int32_t n_ctx, int32_t n_threads, int kv_type, int32_t page_size,
                         int32_t kv_pages, const meshlm_opts *opts) {
    meshlm_opts perf = meshlm_opts_preset(MESHLM_PRESET_PERFORMANCE);
    memset(f, 0, sizeof *f);
    int axis_a = meshlm_shard_axis_a(rows, cols);
    int n_a = axis_a == 0 ? rows : cols, n_b = axis_a == 0 ? cols : rows;
    const meshlm_opts *o = opts ? opts : &perf;
    int rc = meshlm_plan_shard(m, axis_a, n_a, n_b, meshlm_mesh_rank(dev, axis_a), meshlm_mesh_rank(dev, 1 - axis_a), o,
                               &f->sh);
    if (rc) return rc;
    f->max_tok = max_tok;
    f->n_ctx = n_ctx;
    if ((rc = meshlm_exec_setup(&f->exec, f->plan, m, &f->sh, o, max_tok, n_ctx, n_threads))) {
        meshlm_shard_free(&f->sh);
        return rc;
    }
    /* A device may hold an empty vocab slice; malloc(0) may return NULL. */
    f->logits = malloc(((size_t)max_tok * (size_t)len(f->sh.vocab) + 1) * sizeof(float));
    if (!f->logits) {
        meshlm_mesh_fwd_free(f);
        return meshlm_fail(MESHLM_ERR_NOMEM, "device %d: out of memory for logits", dev->id);
    }
    /* A device without KV heads still keeps a one-head pool, so that reservations (and
     * their page ids) stay in step across the mesh. */
    int32_t kv_heads = len(f->sh.att_kv) ? (int32_t)len(f->sh.att_kv) : 1;
    meshlm_kv_params kp = meshlm_kv_params_for(m, kv_heads, kv_type, page_size, 0);
    kp.mem_bytes = meshlm_kv_page_bytes(&kp) * (size_t)kv_pages;
    if ((rc = meshlm_kv_pool_create(&kp, &f->kv)) || (rc = meshlm_kv_seq_init(&f->seq, n_ctx, f->kv)) ||
        (rc = meshlm_model_ropes(m, n_ctx, f->rope)) ||
        (rc = meshlm_pool_create(n_threads, &f->pool)) || (rc = meshlm_forward_reserve(f->pool, m, max_tok))) {
        meshlm_mesh_fwd_free(f);
        return rc;
    }
    f->exec.pool = f->pool;
    f->exec.kv = f->kv;
    f->exec.rope = f->rope;
    return MESHLM_OK;
}

void meshlm_mesh_fwd_free(meshlm_mesh_fwd *f) {
    meshlm_exec_free(&f->exec);
    meshlm_plan_free(&f->plan[0]);
    meshlm_plan_free(&f->plan[1]);
    meshlm_shard_free(&f->sh);
    meshlm_kv_seq_free(&f->seq);
    meshlm_kv_pool_free(f->kv);
    meshlm_pool_free(f->pool);
    free(f->logits);
    memset(f, 0, sizeof *f);
}

int meshlm_mesh_forward_step(const meshlm_model *m, meshlm_mesh_fwd *f, meshlm_ccl *ccl, const meshlm_device *dev,
                             const meshlm_step *st) {
    (void)m;
    f->exec.ccl = ccl;
    f->exec.dev = dev;
    return meshlm_exec_step(&f->exec, meshlm_exec_pick(f->plan, st), st, f->logits);
}

int meshlm_mesh_forward(const meshlm_model *m, meshlm_mesh_fwd *f, meshlm_ccl *ccl, const meshlm_device *dev,
                        const int32_t *tokens, int32_t n, int32_t pos) {
    int32_t pos_buf[64];
    meshlm_kv_seq *seqs[64];
    int32_t step = f->max_tok < 64 ? f->max_tok : 64;
    int rc = meshlm_forward_window(m, f->kv, &f->seq, pos);
    if (!rc) rc = meshlm_kv_reserve(f->kv, &f->seq, pos + n);
    for (int32_t done = 0; done < n && !rc; done += step) {
        int32_t chunk = n - done < step ? n - done : step, last = chunk - 1;
        for (int32_t t = 0; t < chunk; t++) {
            pos_buf[t] = pos + done + t;
            seqs[t] = &f->seq;
        }
        meshlm_step st = {.n = chunk, .tokens = tokens + done, .pos = pos_buf, .seqs = seqs,
                          .n_out = done + chunk == n, .out_rows = &last};
        rc = meshlm_mesh_forward_step(m, f, ccl, dev, &st);
    }
    int32_t window = meshlm_model_window(&m->hp);
    if (!rc && window > 0) meshlm_kv_drop(f->kv, &f->seq, pos + n - window + 1);
    return rc;
}
