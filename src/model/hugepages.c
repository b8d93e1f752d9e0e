/* The model's matrices on transparent huge pages (core/hugemem.h says why). The file's
 * own mapping cannot be backed by huge pages (page-cache pages of a regular file are
 * small), so the matrices are copied into one buffer, in the order a forward pass reads
 * them, and the model's views point there. */
#include <stdlib.h>
#include <string.h>

#include "core/hugemem.h"
#include "core/panel.h"
#include "core/status.h"
#include "model/model.h"

enum { ALIGN = 64 };

/* Appends w to out unless it is bound for panels. */
static void add(meshlm_matrix **out, int *n, meshlm_matrix *w, bool panels) {
    if (!w->data) return; /* a mixture-of-experts layer has no dense FFN */
    if (!panels || !meshlm_panel_worth(w->type, w->n_out, w->n_in)) out[(*n)++] = w;
}

/* The matrices a pass reads, in order, the LM head last; with panels, those not bound
 * for panels. */
static int matrices(meshlm_model *m, bool panels, meshlm_matrix **out) {
    int n = 0;
    for (int il = 0; il < m->hp.n_layer; il++) {
        meshlm_layer *L = &m->layers[il];
        meshlm_matrix *ws[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w1, &L->w3, &L->w2};
        for (int i = 0; i < 7; i++) add(out, &n, ws[i], panels);
    }
    add(out, &n, &m->output, panels);
    return n;
}

static size_t bytes_of(const meshlm_matrix *w) { return (size_t)w->n_out * w->row_bytes; }

static size_t round_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

int meshlm_model_hugepages(meshlm_model *m, bool panels) {
    if (m->huge) return MESHLM_OK;
    meshlm_matrix **ws = malloc(sizeof *ws * (size_t)(7 * m->hp.n_layer + 1));
    if (!ws) return meshlm_fail(MESHLM_ERR_NOMEM, "huge pages: out of memory");
    int n = matrices(m, panels, ws);
    size_t total = 0;
    for (int i = 0; i < n; i++) total += round_up(bytes_of(ws[i]), ALIGN);
    char *base = meshlm_alloc_weights(total), *at = base;
    if (!base) {
        free(ws);
        return meshlm_fail(MESHLM_ERR_NOMEM, "huge pages: out of memory for %zu bytes of weights", total);
    }
    const void *tied = m->output.data == m->tok_embd.data ? m->tok_embd.data : NULL;
    for (int i = 0; i < n; i++) {
        memcpy(at, ws[i]->data, bytes_of(ws[i]));
        ws[i]->data = at;
        at += round_up(bytes_of(ws[i]), ALIGN);
    }
    /* A tied LM head shares the embedding's rows: lookups read the copy too. */
    if (tied) m->tok_embd.data = m->output.data;
    m->huge = base;
    m->huge_bytes = total;
    free(ws);
    return MESHLM_OK;
}
