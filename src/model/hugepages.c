/* Weights on transparent huge pages. Decode streams every matrix once per token; on 4 KiB
 * pages that is a TLB miss every 4 KiB, on 2 MiB pages one every 2 MiB. The file's own
 * mapping cannot be backed by huge pages (page-cache pages of a regular file are small),
 * so the matrices are copied into one anonymous mapping advised MADV_HUGEPAGE, in the
 * order a forward pass reads them, and the model's views point there. */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "core/status.h"
#include "model/model.h"

enum { HUGE_PAGE = 2 << 20, ALIGN = 64 };

/* The matrices a pass reads, in order; the LM head last. */
static int matrices(meshlm_model *m, meshlm_matrix **out) {
    int n = 0;
    for (int il = 0; il < m->hp.n_layer; il++) {
        meshlm_layer *L = &m->layers[il];
        meshlm_matrix *ws[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w1, &L->w3, &L->w2};
        for (int i = 0; i < 7; i++) out[n++] = ws[i];
    }
    out[n++] = &m->output;
    return n;
}

static size_t bytes_of(const meshlm_matrix *w) { return (size_t)w->n_out * w->row_bytes; }

static size_t round_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

int meshlm_model_hugepages(meshlm_model *m) {
    if (m->huge) return MESHLM_OK;
    meshlm_matrix **ws = malloc(sizeof *ws * (size_t)(7 * m->hp.n_layer + 1));
    if (!ws) return meshlm_fail(MESHLM_ERR_NOMEM, "huge pages: out of memory");
    int n = matrices(m, ws);
    size_t total = 0;
    for (int i = 0; i < n; i++) total += round_up(bytes_of(ws[i]), ALIGN);
    size_t map = round_up(total, HUGE_PAGE) + HUGE_PAGE;
    char *raw = mmap(NULL, map, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) {
        free(ws);
        return meshlm_fail(MESHLM_ERR_NOMEM, "huge pages: cannot map %zu bytes for the weights", map);
    }
    /* Start on a huge-page boundary; the advice is a hint (a kernel without THP, or with
     * it off, leaves small pages: the copy still works). */
    char *base = (char *)round_up((size_t)raw, HUGE_PAGE), *at = base;
    (void)madvise(base, round_up(total, HUGE_PAGE), MADV_HUGEPAGE);
    const void *tied = m->output.data == m->tok_embd.data ? m->tok_embd.data : NULL;
    for (int i = 0; i < n; i++) {
        memcpy(at, ws[i]->data, bytes_of(ws[i]));
        ws[i]->data = at;
        at += round_up(bytes_of(ws[i]), ALIGN);
    }
    /* A tied LM head shares the embedding's rows: lookups read the copy too. */
    if (tied) m->tok_embd.data = m->output.data;
    m->huge = raw;
    m->huge_bytes = map;
    free(ws);
    return MESHLM_OK;
}
