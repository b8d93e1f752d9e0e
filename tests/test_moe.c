/* The mixture-of-experts step on its own: routing (softmax then top-k, renormalised or not,
 * and gpt-oss's softmax over the chosen), and the expert-parallel all-to-all combine, which
 * must give every device the bits one device's meshlm_moe gives, on 2, 3 and 4 devices,
 * linear and ring, with some devices choosing no expert of another. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/dtype.h"
#include "core/ops.h"
#include "core/pool.h"
#include "mesh/mesh.h"
#include "model/moe.h"
#include "model/shard.h"
#include "model/synth.h"
#include "t.h"

enum { N_ROWS = 13 };

static void test_route(void) {
    const float s[6] = {0.5f, 2.0f, -1.0f, 2.0f, 1.5f, 0.0f};
    int32_t ids[3];
    float w[3];
    /* Equal scores: the lower id first. */
    meshlm_moe_route(s, 6, 3, false, false, ids, w);
    CHECK(ids[0] == 1 && ids[1] == 3 && ids[2] == 4);
    double sum = 0;
    for (int x = 0; x < 6; x++) sum += exp(s[x] - 2.0);
    CHECK_NEAR(w[0], 1.0 / sum, 1e-6);
    CHECK_NEAR(w[2], exp(-0.5) / sum, 1e-6);
    meshlm_moe_route(s, 6, 3, true, false, ids, w);
    CHECK_NEAR(w[0] + w[1] + w[2], 1.0, 1e-6);
    /* gpt-oss: a softmax over the three chosen scores only. */
    meshlm_moe_route(s, 6, 3, false, true, ids, w);
    double k = 2 + exp(-0.5);
    CHECK(ids[0] == 1 && ids[1] == 3 && ids[2] == 4);
    CHECK_NEAR(w[0], 1.0 / k, 1e-6);
    CHECK_NEAR(w[2], exp(-0.5) / k, 1e-6);
}

/* One device's step: its shard's experts, its own pool and scratch. */
typedef struct device_moe {
    meshlm_shard sh;
    meshlm_pool *pool;
    float *scores, *ein, *egu, *ey, *a2a, *out, *weight;
    int32_t *ids;
    meshlm_matmul_in *in;
    uint8_t *act;
} device_moe;

typedef struct job {
    const meshlm_model *m;
    const float *x;
    int layer, n_dev;
    meshlm_ccl *ccl;
    device_moe dev[4];
    int rc[4];
} job;

static void device_init(device_moe *d, const meshlm_model *m, int n_dev, int rank) {
    const meshlm_hparams *hp = &m->hp;
    size_t picks = (size_t)N_ROWS * (size_t)hp->n_expert_used, e = (size_t)hp->n_embd, f = (size_t)hp->n_ff_exp;
    memset(d, 0, sizeof *d);
    CHECK(meshlm_shard_build(m, 1, n_dev, 1, rank, 0, &d->sh) == MESHLM_OK);
    CHECK(meshlm_shard_experts(m, &d->sh, n_dev > 1) == MESHLM_OK);
    CHECK(meshlm_pool_create(1, &d->pool) == MESHLM_OK);
    d->scores = calloc((size_t)N_ROWS * (size_t)hp->n_expert, sizeof(float));
    d->ein = calloc(picks * e, sizeof(float));
    d->egu = calloc(picks * 2 * f, sizeof(float));
    d->ey = calloc(picks * e, sizeof(float));
    d->a2a = calloc(picks * e, sizeof(float));
    d->out = calloc((size_t)N_ROWS * e, sizeof(float));
    d->weight = calloc(picks, sizeof(float));
    d->ids = calloc(2 * picks + (size_t)hp->n_expert + 1, sizeof(int32_t));
    d->in = calloc((size_t)hp->n_expert, sizeof *d->in);
    d->act = malloc(meshlm_matmul_act_bytes((int64_t)picks + hp->n_expert, (int64_t)(e > f ? e : f)));
}

static void device_free(device_moe *d) {
    meshlm_shard_free(&d->sh);
    meshlm_pool_free(d->pool);
    free(d->scores), free(d->ein), free(d->egu), free(d->ey), free(d->a2a), free(d->out), free(d->weight);
    free(d->ids), free(d->in), free(d->act);
}

static meshlm_moe_args args_of(const job *J, device_moe *d, const meshlm_matmul_cfg *mm) {
    const meshlm_layer *L = &J->m->layers[J->layer];
    const meshlm_shard_layer *S = &d->sh.layers[J->layer];
    size_t picks = (size_t)N_ROWS * (size_t)J->m->hp.n_expert_used;
    return (meshlm_moe_args){.pool = d->pool, .mm = mm, .hp = &J->m->hp, .router = &L->router, .gate = S->eg,
                             .up = S->eu, .down = S->ed, .first = (int32_t)d->sh.experts.lo,
                             .n_local = (int32_t)(d->sh.experts.hi - d->sh.experts.lo), .x = J->x, .n = N_ROWS,
                             .out = d->out, .scores = d->scores, .ein = d->ein, .egu = d->egu, .ey = d->ey,
                             .chosen = d->ids, .weight = d->weight, .rows = d->ids + picks,
                             .start = d->ids + 2 * picks, .in = d->in, .act = d->act, .router_b = L->router_b,
                             .gate_b = L->exp_gate_b, .up_b = L->exp_up_b, .down_b = L->exp_down_b,
                             .ff_lo = d->sh.exp_ff.lo, .down_bias = d->sh.exp_down_bias};
}

static void run_device(void *ctx, const meshlm_device *dev) {
    job *J = ctx;
    device_moe *d = &J->dev[dev->col];
    meshlm_matmul_cfg mm = meshlm_matmul_cfg_default();
    meshlm_moe_args a = args_of(J, d, &mm);
    meshlm_moe_a2a_args c = {.ccl = J->ccl, .dev = dev, .axis = 1, .n_dev = J->n_dev, .rank = dev->col,
                             .send = d->ein, .recv = d->a2a, .mine = d->ey};
    J->rc[dev->col] = meshlm_moe_a2a(&a, &c);
}

/* Layer il of the model at path: one device's meshlm_moe, then the all-to-all combine on
 * meshes of 2 to 4 devices, both topologies; every device must hold one device's bits. */
static void check_model(const char *path, const char *label) {
    meshlm_model *m = NULL;
    if (meshlm_model_load(path, &m) != MESHLM_OK) {
        CHECK_MSG(0, "%s: %s", label, meshlm_last_error());
        return;
    }
    size_t e = (size_t)m->hp.n_embd;
    float *x = malloc((size_t)N_ROWS * e * sizeof(float));
    for (size_t i = 0; i < (size_t)N_ROWS * e; i++) x[i] = sinf((float)i * 0.37f) * 2.0f;
    for (int il = 0; il < m->hp.n_layer; il++) {
        job J = {.m = m, .x = x, .layer = il, .n_dev = 1};
        device_init(&J.dev[0], m, 1, 0);
        meshlm_matmul_cfg mm = meshlm_matmul_cfg_default();
        meshlm_moe_args a = args_of(&J, &J.dev[0], &mm);
        meshlm_moe(&a);
        float *want = malloc((size_t)N_ROWS * e * sizeof(float));
        memcpy(want, J.dev[0].out, (size_t)N_ROWS * e * sizeof(float));
        device_free(&J.dev[0]);
        for (int n_dev = 2; n_dev <= 4; n_dev++)
            for (int topo = 0; topo < 2; topo++) {
                meshlm_mesh *mesh = NULL;
                CHECK(meshlm_mesh_create(1, n_dev, &mesh) == MESHLM_OK);
                meshlm_ccl_options o = {.topology = topo ? MESHLM_TOPOLOGY_RING : MESHLM_TOPOLOGY_LINEAR,
                                        .transport = MESHLM_TRANSPORT_THREADS, .links = 1};
                CHECK(mesh && meshlm_ccl_create(mesh, &o, &J.ccl) == MESHLM_OK);
                J.n_dev = n_dev;
                for (int d = 0; d < n_dev; d++) device_init(&J.dev[d], m, n_dev, d);
                meshlm_mesh_run(mesh, run_device, &J);
                for (int d = 0; d < n_dev; d++) {
                    CHECK_MSG(J.rc[d] == MESHLM_OK, "%s: %s", label, meshlm_last_error());
                    CHECK_MSG(!memcmp(J.dev[d].out, want, (size_t)N_ROWS * e * sizeof(float)),
                              "%s layer %d, %d devices %s: device %d differs from one device", label, il, n_dev,
                              topo ? "ring" : "linear", d);
                    device_free(&J.dev[d]);
                }
                meshlm_ccl_free(J.ccl);
                meshlm_mesh_free(mesh);
            }
        free(want);
    }
    free(x);
    meshlm_model_free(m);
}

int main(void) {
    test_route();
    char dir[] = "/tmp/meshlm-moe-XXXXXX", path[256];
    if (!mkdtemp(dir)) t_skip("cannot make a temporary directory");
    struct {
        const char *arch;
        int type, expert_type, n_expert, n_used;
    } cases[] = {
        {"qwen3moe", MESHLM_TYPE_F32, MESHLM_TYPE_F32, 8, 2},
        {"qwen3moe", MESHLM_TYPE_Q8_0, MESHLM_TYPE_Q8_0, 16, 4},
        /* 5 experts over 4 devices: one device holds two, the others one */
        {"qwen3moe", MESHLM_TYPE_Q8_0, MESHLM_TYPE_Q4_0, 5, 3},
        {"gpt-oss", MESHLM_TYPE_Q8_0, MESHLM_TYPE_MXFP4, 8, 4},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        meshlm_synth_params p;
        CHECK(meshlm_synth_preset("tiny", cases[c].arch, &p) == MESHLM_OK);
        p.type = cases[c].type;
        p.expert_type_given = true, p.expert_type = cases[c].expert_type;
        p.n_expert = cases[c].n_expert, p.n_expert_used = cases[c].n_used;
        char label[96];
        snprintf(path, sizeof path, "%s/moe-%zu.gguf", dir, c);
        snprintf(label, sizeof label, "%s %s, %s experts, %d of %d", cases[c].arch, meshlm_type_name(cases[c].type),
                 meshlm_type_name(cases[c].expert_type), cases[c].n_used, cases[c].n_expert);
        if (meshlm_synth_write(&p, path) != MESHLM_OK) {
            CHECK_MSG(0, "%s: %s", label, meshlm_last_error());
            continue;
        }
        check_model(path, label);
        fprintf(stderr, "%s: the all-to-all combine on 2-4 devices gives one device's bits\n", label);
        unlink(path);
    }
    rmdir(dir);
    return t_done();
}
