/* The paged KV cache: every type read back exactly as stored and within its format's error
 * of the written floats, sequences interleaved and in waves that overflow the pool, pages
 * reused without touching other sequences, a full cache failing cleanly, and the edges;
 * prefix caching: shared pages counted per holder, cached pages kept in LRU order and
 * evicted only when needed, lookups exact (the whole chain and the tokens, never a hash). */
#include <stdint.h>
#include <string.h>

#include "core/dtype.h"
#include "core/quant.h"
#include "meshlm.h"
#include "model/kv_paged.h"
#include "t.h"

#define HEAD 32
#define MAXD 128

/* A value per (seq id, layer, pos, index, K or V), regenerated on demand, so any check can
 * recompute what a sequence should hold without keeping copies. */
static float val(uint32_t id, int layer, int pos, int i, int which) {
    uint32_t h = id * 0x9e3779b1u ^ (uint32_t)layer * 0x85ebca6bu ^ (uint32_t)pos * 0xc2b2ae35u ^
                 (uint32_t)i * 0x27d4eb2fu ^ (uint32_t)which * 0x165667b1u;
    h ^= h >> 15, h *= 0x2c1b3c6du, h ^= h >> 12, h *= 0x297a2d39u, h ^= h >> 15;
    float x = (float)(h & 0xffffff) / (float)0x1000000 * 4.0f - 2.0f;
    return (h >> 24) % 7 == 0 ? x * 30.0f : x; /* a few outliers, as real keys have */
}

static void gen_row(float *row, uint32_t id, int layer, int pos, int which, int dim) {
    for (int i = 0; i < dim; i++) row[i] = val(id, layer, pos, i, which);
}

/* The row as the pool should store it: encoded in type and decoded again. */
static void stored_row(float *row, int type, uint32_t id, int layer, int pos, int which, int dim) {
    float src[MAXD];
    uint8_t enc[MAXD * 4];
    gen_row(src, id, layer, pos, which, dim);
    meshlm_quantize_row(type, src, enc, dim);
    meshlm_dequantize_row(type, enc, row, dim);
}

/* Largest |decoded - original| the format allows for element i of a row. */
static double elem_bound(int type, const float *orig, int i) {
    double a = fabs(orig[i]);
    switch (type) {
    case MESHLM_TYPE_F32: return 0.0;
    case MESHLM_TYPE_F16: return a * 0x1p-11 + 0x1p-24;
    case MESHLM_TYPE_BF16: return a * 0x1p-8;
    default: { /* Q8_0: half a step of amax/127, plus the fp16 rounding of the scale */
        double amax = 0.0;
        for (int j = i - i % 32; j < i - i % 32 + 32; j++) amax = fmax(amax, fabs(orig[j]));
        return amax / 127.0 * (0.5 + 127.0 * 0x1p-11) * 1.0001;
    }
    }
}

static int write_pos(meshlm_kv_pool *kv, const meshlm_kv_seq *s, uint32_t id, int n_layer, int dim, int pos) {
    float k[MAXD], v[MAXD];
    int st = MESHLM_OK;
    for (int l = 0; l < n_layer && !st; l++) {
        gen_row(k, id, l, pos, 0, dim);
        gen_row(v, id, l, pos, 1, dim);
        st = meshlm_kv_write(kv, s, l, pos, k, v);
    }
    return st;
}

/* Checks every position of s against what sequence id wrote: the decoded rows bit for bit,
 * the stored values against the originals within the format's bound. Returns the number of
 * mismatches. */
static int verify(const meshlm_kv_pool *kv, const meshlm_kv_seq *s, uint32_t id, int type, int n_layer, int dim) {
    int bad = 0;
    float k[MAXD], v[MAXD], ks[MAXD], vs[MAXD], ko[MAXD], vo[MAXD];
    for (int l = 0; l < n_layer; l++)
        for (int p = 0; p < s->len; p++) {
            stored_row(ks, type, id, l, p, 0, dim);
            stored_row(vs, type, id, l, p, 1, dim);
            gen_row(ko, id, l, p, 0, dim);
            gen_row(vo, id, l, p, 1, dim);
            if (meshlm_kv_read(kv, s, l, p, k, v) != MESHLM_OK) return bad + 1;
            bad += memcmp(k, ks, sizeof(float) * dim) != 0;
            bad += memcmp(v, vs, sizeof(float) * dim) != 0;
            for (int i = 0; i < dim; i++) {
                bad += fabs(ks[i] - ko[i]) > elem_bound(type, ko, i);
                bad += fabs(vs[i] - vo[i]) > elem_bound(type, vo, i);
            }
        }
    return bad;
}

static meshlm_kv_params params(int type, int n_layer, int dim, int page_size, int n_pages) {
    meshlm_kv_params p = {.n_layer = n_layer, .kv_dim = dim, .head_dim = HEAD, .page_size = page_size, .type = type};
    p.mem_bytes = meshlm_kv_page_bytes(&p) * (size_t)n_pages;
    return p;
}

/* Pages held by the sequences plus the free ones account for the whole pool, each page once. */
static int pages_consistent(const meshlm_kv_pool *kv, const meshlm_kv_seq *seqs, int n) {
    int32_t cap = meshlm_kv_pool_pages(kv), held = 0;
    unsigned char seen[256] = {0};
    for (int i = 0; i < n; i++)
        for (int32_t j = 0; j < seqs[i].n_pages; j++) {
            int32_t pg = seqs[i].pages[j];
            if (pg < 0 || pg >= cap || seen[pg]++) return 0;
            held++;
        }
    return held + meshlm_kv_pool_free_pages(kv) == cap;
}

static void test_params(void) {
    meshlm_kv_pool *kv = (meshlm_kv_pool *)1;
    meshlm_kv_params ok = params(MESHLM_TYPE_F16, 2, 64, 16, 4);
    CHECK(meshlm_kv_page_bytes(&ok) == 2 * 2 * 16 * 64 * 2);
    meshlm_kv_params q8_3 = params(MESHLM_TYPE_Q8_0, 1, 32, 3, 1);
    CHECK(meshlm_kv_page_bytes(&q8_3) == 256); /* 2 x 3 rows x 34 = 204, padded to 64 */
    meshlm_kv_params q8 = params(MESHLM_TYPE_Q8_0, 1, 64, 1, 1);
    CHECK(meshlm_kv_page_bytes(&q8) == 192); /* 2 x 2 blocks x 34 = 136, padded */

    meshlm_kv_params p = ok;
    p.n_layer = 0;
    CHECK(meshlm_kv_pool_create(&p, &kv) == MESHLM_ERR_INVALID_ARG && kv == NULL);
    CHECK(strstr(meshlm_last_error(), "n_layer 0") != NULL);
    p = ok, p.kv_dim = 0;
    CHECK(meshlm_kv_pool_create(&p, &kv) == MESHLM_ERR_INVALID_ARG);
    p = ok, p.page_size = 0;
    CHECK(meshlm_kv_pool_create(&p, &kv) == MESHLM_ERR_INVALID_ARG);
    CHECK(strstr(meshlm_last_error(), "page_size 0") != NULL);
    p = ok, p.kv_dim = 48;
    CHECK(meshlm_kv_pool_create(&p, &kv) == MESHLM_ERR_INVALID_ARG);
    p = ok, p.type = MESHLM_TYPE_Q4_0;
    CHECK(meshlm_kv_pool_create(&p, &kv) == MESHLM_ERR_UNSUPPORTED);
    CHECK(strstr(meshlm_last_error(), "Q4_0") != NULL);
    p = ok, p.type = MESHLM_TYPE_Q8_0, p.head_dim = 16;
    CHECK(meshlm_kv_pool_create(&p, &kv) == MESHLM_ERR_UNSUPPORTED);
    CHECK(strstr(meshlm_last_error(), "head_dim is 16") != NULL);
    p = ok, p.mem_bytes = meshlm_kv_page_bytes(&ok) - 1;
    CHECK(meshlm_kv_pool_create(&p, &kv) == MESHLM_ERR_INVALID_ARG);
    CHECK(strstr(meshlm_last_error(), "smaller than one page") != NULL);

    /* Capacity rounds the budget down to whole pages. */
    p = ok, p.mem_bytes = meshlm_kv_page_bytes(&ok) * 7 / 2;
    CHECK(meshlm_kv_pool_create(&p, &kv) == MESHLM_OK);
    CHECK(meshlm_kv_pool_pages(kv) == 3 && meshlm_kv_pool_free_pages(kv) == 3 && meshlm_kv_pool_page_size(kv) == 16);
    meshlm_kv_seq s;
    CHECK(meshlm_kv_seq_init(&s, 0, kv) == MESHLM_ERR_INVALID_ARG);
    meshlm_kv_seq_free(&s);
    meshlm_kv_pool_free(kv);
    meshlm_kv_pool_free(NULL);
}

/* Several sequences grown one position at a time, round robin, so their pages interleave in
 * the pool; then every value of every sequence checked. */
static void test_interleaved(int type, int page_size) {
    enum { NS = 4, NL = 3, DIM = 64, LEN = 13 };
    int pages_per = (LEN + page_size - 1) / page_size;
    meshlm_kv_params p = params(type, NL, DIM, page_size, NS * pages_per);
    meshlm_kv_pool *kv;
    CHECK(meshlm_kv_pool_create(&p, &kv) == MESHLM_OK);
    meshlm_kv_seq s[NS];
    for (int i = 0; i < NS; i++) CHECK(meshlm_kv_seq_init(&s[i], LEN, kv) == MESHLM_OK);
    int st = 0;
    for (int pos = 0; pos < LEN; pos++)
        for (int i = 0; i < NS; i++) {
            st |= meshlm_kv_reserve(kv, &s[i], pos + 1);
            st |= write_pos(kv, &s[i], 100 + i, NL, DIM, pos);
        }
    CHECK(st == MESHLM_OK);
    CHECK(meshlm_kv_pool_free_pages(kv) == 0);
    CHECK(pages_consistent(kv, s, NS));
    for (int i = 0; i < NS; i++) {
        CHECK(s[i].len == LEN && s[i].n_pages == pages_per);
        int bad = verify(kv, &s[i], 100 + i, type, NL, DIM);
        CHECK_MSG(bad == 0, "%s page_size %d seq %d: %d mismatches", meshlm_type_name(type), page_size, i, bad);
    }
    for (int i = 0; i < NS; i++) meshlm_kv_release(kv, &s[i]), meshlm_kv_seq_free(&s[i]);
    CHECK(meshlm_kv_pool_free_pages(kv) == meshlm_kv_pool_pages(kv));
    meshlm_kv_pool_free(kv);
}

/* More sequences than the pool holds, in waves: a long-lived sequence stays throughout, the
 * others start while pages remain, a reserve that does not fit fails without changing
 * anything, finished sequences release pages that the next ones reuse. */
static void test_waves(int type) {
    enum { NL = 2, DIM = 64, PS = 4, CAP = 12, SLOTS = 6, TOTAL = 20 };
    meshlm_kv_params p = params(type, NL, DIM, PS, CAP);
    meshlm_kv_pool *kv;
    CHECK(meshlm_kv_pool_create(&p, &kv) == MESHLM_OK);
    meshlm_kv_seq s[SLOTS];
    uint32_t ids[SLOTS] = {0};
    for (int i = 0; i < SLOTS; i++) CHECK(meshlm_kv_seq_init(&s[i], 16, kv) == MESHLM_OK);

    /* Slot 0 holds 9 positions (3 pages) for the whole test. */
    ids[0] = 7;
    CHECK(meshlm_kv_reserve(kv, &s[0], 9) == MESHLM_OK);
    for (int pos = 0; pos < 9; pos++) CHECK(write_pos(kv, &s[0], ids[0], NL, DIM, pos) == MESHLM_OK);

    int started = 0, finished = 0, full_seen = 0, bad = 0;
    uint32_t next_id = 1000;
    for (int round = 0; finished < TOTAL; round++) {
        /* Each running sequence grows by 3 positions; one that cannot is stuck and finishes
         * as if it had been preempted: released, its last write checked first. */
        for (int i = 1; i < SLOTS; i++) {
            if (ids[i] == 0) continue;
            int32_t len = s[i].len, free_before = meshlm_kv_pool_free_pages(kv);
            int32_t n_pages = s[i].n_pages, last = n_pages ? s[i].pages[n_pages - 1] : -1;
            int st = meshlm_kv_reserve(kv, &s[i], len + 3 + (i + round) % 3);
            if (st == MESHLM_OK) {
                for (int pos = len; pos < s[i].len; pos++) bad += write_pos(kv, &s[i], ids[i], NL, DIM, pos) != 0;
            } else {
                CHECK(st == MESHLM_ERR_RANGE);
                const char *msg = meshlm_last_error();
                int is_full = strstr(msg, "KV cache full: needs") != NULL;
                CHECK(is_full || strstr(msg, "max_positions is 16") != NULL);
                full_seen += is_full;
                CHECK(s[i].len == len && s[i].n_pages == n_pages && (n_pages == 0 || s[i].pages[n_pages - 1] == last));
                CHECK(n_pages == s[i].max_pages || s[i].pages[n_pages] == -1);
                CHECK(meshlm_kv_pool_free_pages(kv) == free_before);
                bad += verify(kv, &s[i], ids[i], type, NL, DIM);
                meshlm_kv_release(kv, &s[i]);
                CHECK(s[i].len == 0 && s[i].n_pages == 0 && meshlm_kv_pool_free_pages(kv) == free_before + n_pages);
                ids[i] = 0;
                finished++;
            }
        }
        /* Empty slots start new sequences while there are sequences left to start. */
        for (int i = 1; i < SLOTS && started < TOTAL; i++)
            if (ids[i] == 0) ids[i] = next_id++, started++;
        CHECK(pages_consistent(kv, s, SLOTS));
        bad += verify(kv, &s[0], ids[0], type, NL, DIM);
        CHECK(round < 200);
        if (round >= 200) break;
    }
    CHECK_MSG(bad == 0, "%s waves: %d mismatches", meshlm_type_name(type), bad);
    CHECK(full_seen > 0);
    CHECK(meshlm_kv_pool_pages(kv) == CAP);
    CHECK(meshlm_kv_pool_free_pages(kv) == CAP - 3);
    meshlm_kv_release(kv, &s[0]);
    meshlm_kv_release(kv, &s[0]);
    CHECK(meshlm_kv_pool_free_pages(kv) == CAP);
    for (int i = 0; i < SLOTS; i++) meshlm_kv_seq_free(&s[i]);
    meshlm_kv_pool_free(kv);
}

/* A full cache: the failing reserve names the pages needed and free and changes nothing;
 * pages of a released sequence are the ones the next sequence gets. */
static void test_full_and_reuse(void) {
    meshlm_kv_params p = params(MESHLM_TYPE_F32, 2, 32, 4, 5);
    meshlm_kv_pool *kv;
    CHECK(meshlm_kv_pool_create(&p, &kv) == MESHLM_OK);
    meshlm_kv_seq a, b;
    CHECK(meshlm_kv_seq_init(&a, 64, kv) == MESHLM_OK);
    CHECK(meshlm_kv_seq_init(&b, 64, kv) == MESHLM_OK);
    CHECK(a.max_pages == 16 && a.max_len == 64 && a.pages[0] == -1);
    CHECK(meshlm_kv_reserve(kv, &a, 12) == MESHLM_OK && a.n_pages == 3);
    for (int pos = 0; pos < 12; pos++) write_pos(kv, &a, 1, 2, 32, pos);
    CHECK(meshlm_kv_reserve(kv, &b, 9) == MESHLM_ERR_RANGE);
    CHECK(strstr(meshlm_last_error(), "KV cache full: needs 3 more pages, 2 free") != NULL);
    CHECK(b.len == 0 && b.n_pages == 0 && b.pages[0] == -1 && meshlm_kv_pool_free_pages(kv) == 2);
    CHECK(meshlm_kv_reserve(kv, &b, 8) == MESHLM_OK && meshlm_kv_pool_free_pages(kv) == 0);
    for (int pos = 0; pos < 8; pos++) write_pos(kv, &b, 2, 2, 32, pos);
    CHECK(meshlm_kv_reserve(kv, &a, 13) == MESHLM_ERR_RANGE && a.len == 12 && a.n_pages == 3);
    CHECK(verify(kv, &a, 1, MESHLM_TYPE_F32, 2, 32) == 0);
    CHECK(verify(kv, &b, 2, MESHLM_TYPE_F32, 2, 32) == 0);

    int32_t a_pages[3];
    memcpy(a_pages, a.pages, sizeof a_pages);
    meshlm_kv_release(kv, &a);
    CHECK(meshlm_kv_pool_free_pages(kv) == 3 && a.pages[0] == -1);
    CHECK(verify(kv, &b, 2, MESHLM_TYPE_F32, 2, 32) == 0);
    CHECK(meshlm_kv_reserve(kv, &a, 10) == MESHLM_OK);
    CHECK(memcmp(a.pages, a_pages, sizeof a_pages) == 0);
    for (int pos = 0; pos < 10; pos++) write_pos(kv, &a, 3, 2, 32, pos);
    CHECK(verify(kv, &a, 3, MESHLM_TYPE_F32, 2, 32) == 0);
    CHECK(verify(kv, &b, 2, MESHLM_TYPE_F32, 2, 32) == 0);
    meshlm_kv_release(kv, &a), meshlm_kv_release(kv, &b);
    CHECK(meshlm_kv_pool_free_pages(kv) == 5);
    meshlm_kv_seq_free(&a), meshlm_kv_seq_free(&b);
    meshlm_kv_pool_free(kv);
}

/* Page boundaries, the max_positions limit, shrinking reserves and out-of-range writes. */
static void test_edges(void) {
    meshlm_kv_params p = params(MESHLM_TYPE_BF16, 1, 32, 4, 8);
    meshlm_kv_pool *kv;
    CHECK(meshlm_kv_pool_create(&p, &kv) == MESHLM_OK);
    meshlm_kv_seq s;
    CHECK(meshlm_kv_seq_init(&s, 10, kv) == MESHLM_OK && s.max_pages == 3);
    CHECK(meshlm_kv_reserve(kv, &s, 8) == MESHLM_OK && s.n_pages == 2 && s.len == 8);
    CHECK(meshlm_kv_reserve(kv, &s, 5) == MESHLM_OK && s.len == 8 && s.n_pages == 2);
    CHECK(meshlm_kv_reserve(kv, &s, 9) == MESHLM_OK && s.n_pages == 3);
    CHECK(meshlm_kv_reserve(kv, &s, 10) == MESHLM_OK && s.n_pages == 3 && s.len == 10);
    CHECK(meshlm_kv_reserve(kv, &s, 11) == MESHLM_ERR_RANGE);
    CHECK(strstr(meshlm_last_error(), "11 positions requested, max_positions is 10") != NULL);
    CHECK(s.len == 10 && s.n_pages == 3 && meshlm_kv_pool_free_pages(kv) == 5);
    for (int pos = 0; pos < 10; pos++) CHECK(write_pos(kv, &s, 9, 1, 32, pos) == MESHLM_OK);
    float row[32] = {0};
    CHECK(meshlm_kv_write(kv, &s, 0, 10, row, row) == MESHLM_ERR_RANGE);
    CHECK(meshlm_kv_write(kv, &s, 0, -1, row, row) == MESHLM_ERR_RANGE);
    CHECK(meshlm_kv_write(kv, &s, 1, 0, row, row) == MESHLM_ERR_RANGE);
    CHECK(strstr(meshlm_last_error(), "layer 1") != NULL);
    CHECK(meshlm_kv_read(kv, &s, 0, 10, row, NULL) == MESHLM_ERR_RANGE);
    CHECK(verify(kv, &s, 9, MESHLM_TYPE_BF16, 1, 32) == 0);
    meshlm_kv_release(kv, &s);
    CHECK(meshlm_kv_write(kv, &s, 0, 0, row, row) == MESHLM_ERR_RANGE);
    meshlm_kv_seq_free(&s);
    CHECK(s.pages == NULL);
    meshlm_kv_pool_free(kv);

    /* A one-page pool of one position: the smallest cache works. */
    p = params(MESHLM_TYPE_Q8_0, 1, 32, 1, 1);
    CHECK(meshlm_kv_pool_create(&p, &kv) == MESHLM_OK && meshlm_kv_pool_pages(kv) == 1);
    CHECK(meshlm_kv_seq_init(&s, 1, kv) == MESHLM_OK);
    CHECK(meshlm_kv_reserve(kv, &s, 1) == MESHLM_OK && meshlm_kv_pool_free_pages(kv) == 0);
    CHECK(write_pos(kv, &s, 5, 1, 32, 0) == MESHLM_OK);
    CHECK(verify(kv, &s, 5, MESHLM_TYPE_Q8_0, 1, 32) == 0);
    meshlm_kv_release(kv, &s);
    meshlm_kv_seq_free(&s);
    meshlm_kv_pool_free(kv);
}

/* Tokens of page i of a sequence tagged tag: page 1 of tag 0 and tag 1 are the same, so only
 * the chain tells them apart. */
static void page_tokens(int32_t *t, int tag, int i) {
    for (int k = 0; k < 4; k++) t[k] = i == 1 ? 50 + k : tag * 100 + i * 10 + k;
}

/* Sequence a's pages 0..n) registered in a chain; the last entry. */
static uint64_t register_chain(meshlm_kv_pool *kv, const meshlm_kv_seq *a, int tag, int n) {
    uint64_t chain = 0;
    int32_t t[4];
    for (int i = 0; i < n; i++) {
        page_tokens(t, tag, i);
        chain = meshlm_kv_register(kv, a, i, chain, t);
    }
    return chain;
}

/* Counts: held + free + cached = capacity, with a page held by two sequences once. */
static bool accounted(const meshlm_kv_pool *kv, int32_t held) {
    return held + meshlm_kv_pool_free_pages(kv) + meshlm_kv_pool_cached_pages(kv) == meshlm_kv_pool_pages(kv);
}

static void test_prefix(void) {
    meshlm_kv_params p = params(MESHLM_TYPE_F32, 1, 32, 4, 8);
    meshlm_kv_pool *kv;
    CHECK(meshlm_kv_pool_create(&p, &kv) == MESHLM_OK);
    meshlm_kv_seq a, b, c;
    CHECK(meshlm_kv_seq_init(&a, 32, kv) == MESHLM_OK && meshlm_kv_seq_init(&b, 32, kv) == MESHLM_OK &&
          meshlm_kv_seq_init(&c, 32, kv) == MESHLM_OK);
    int32_t toks[32], hit;
    uint64_t chain;
    for (int i = 0; i < 4; i++) page_tokens(toks + 4 * i, 0, i);
    /* A: 3 pages written and registered (its 4th page of 2 positions stays unregistered). */
    CHECK(meshlm_kv_reserve_prefix(kv, &a, toks, 13, 14, &hit, &chain) == MESHLM_OK && hit == 0 && chain == 0);
    for (int pos = 0; pos < 14; pos++) CHECK(write_pos(kv, &a, 1, 1, 32, pos) == MESHLM_OK);
    uint64_t a_end = register_chain(kv, &a, 0, 3);
    CHECK(a_end != 0 && meshlm_kv_register(kv, &a, 2, 0, toks) == a_end); /* registered once */
    /* B: the same first 9 tokens, then others; at most 9 / 4 = 2 pages are looked up. */
    CHECK(meshlm_kv_reserve_prefix(kv, &b, toks, 9, 12, &hit, &chain) == MESHLM_OK && hit == 2);
    CHECK(b.pages[0] == a.pages[0] && b.pages[1] == a.pages[1] && b.pages[2] != a.pages[2] && b.len == 12);
    CHECK(accounted(kv, 4 + 1) && meshlm_kv_pool_free_pages(kv) == 3);
    float k[32], k0[32];
    CHECK(meshlm_kv_read(kv, &b, 0, 7, k, NULL) == MESHLM_OK && meshlm_kv_read(kv, &a, 0, 7, k0, NULL) == MESHLM_OK);
    CHECK(memcmp(k, k0, sizeof k) == 0);
    /* A ends: its shared pages stay B's, its third is cached, its fourth free. */
    meshlm_kv_release(kv, &a);
    CHECK(meshlm_kv_pool_cached_pages(kv) == 1 && meshlm_kv_pool_free_pages(kv) == 4 && accounted(kv, 3));
    /* The same page 1 tokens after another page 0: not found (a different chain). */
    int32_t other[8];
    page_tokens(other, 1, 0), page_tokens(other + 4, 1, 1);
    CHECK(meshlm_kv_reserve_prefix(kv, &c, other, 8, 8, &hit, &chain) == MESHLM_OK && hit == 0);
    meshlm_kv_release(kv, &c);
    /* B ends: pages 1 and 0 join the LRU list after A's page 2 (the oldest). */
    int32_t a2 = -1;
    CHECK(meshlm_kv_reserve_prefix(kv, &c, toks, 12, 12, &hit, &chain) == MESHLM_OK && hit == 3 && chain == a_end);
    a2 = c.pages[2];
    meshlm_kv_release(kv, &c);
    meshlm_kv_release(kv, &b);
    CHECK(meshlm_kv_pool_cached_pages(kv) == 3 && accounted(kv, 0));
    /* A reserve of everything free plus one evicts the least recently used cached page: the
     * chain's page 2, released before pages 1 and 0. */
    int32_t n_free = meshlm_kv_pool_free_pages(kv);
    CHECK(meshlm_kv_reserve(kv, &c, (n_free + 1) * 4) == MESHLM_OK && meshlm_kv_pool_cached_pages(kv) == 2);
    bool took = false;
    for (int32_t i = 0; i < c.n_pages; i++) took |= c.pages[i] == a2;
    CHECK(took);
    CHECK(meshlm_kv_reserve_prefix(kv, &b, toks, 12, 12, &hit, &chain) == MESHLM_ERR_RANGE && b.len == 0 &&
          b.pages[0] == -1 && strstr(meshlm_last_error(), "KV cache full"));
    meshlm_kv_release(kv, &c);
    CHECK(meshlm_kv_reserve_prefix(kv, &b, toks, 12, 12, &hit, &chain) == MESHLM_OK && hit == 2);
    /* Claimed cached pages are not counted as free too: with 2 shared, 6 more fit, 7 do not. */
    meshlm_kv_release(kv, &b);
    meshlm_kv_seq d;
    CHECK(meshlm_kv_seq_init(&d, 40, kv) == MESHLM_OK);
    CHECK(meshlm_kv_reserve_prefix(kv, &d, toks, 12, 36, &hit, &chain) == MESHLM_ERR_RANGE && d.len == 0 &&
          strstr(meshlm_last_error(), "KV cache full") && meshlm_kv_pool_cached_pages(kv) == 2);
    CHECK(meshlm_kv_reserve_prefix(kv, &b, toks, 12, 36, &hit, &chain) == MESHLM_ERR_RANGE);
    meshlm_kv_seq_free(&d);
    CHECK(meshlm_kv_reserve_prefix(kv, &b, toks, 12, 32, &hit, &chain) == MESHLM_OK && hit == 2 &&
          meshlm_kv_pool_free_pages(kv) == 0 && meshlm_kv_pool_cached_pages(kv) == 0);
    meshlm_kv_release(kv, &b);
    /* Everything taken at once evicts every cached page: nothing is found afterwards. */
    CHECK(meshlm_kv_reserve(kv, &c, 32) == MESHLM_OK && meshlm_kv_pool_cached_pages(kv) == 0);
    meshlm_kv_release(kv, &c);
    CHECK(meshlm_kv_pool_free_pages(kv) == 8);
    CHECK(meshlm_kv_reserve_prefix(kv, &b, toks, 12, 12, &hit, &chain) == MESHLM_OK && hit == 0);
    meshlm_kv_release(kv, &b);
    CHECK(meshlm_kv_reserve_prefix(kv, &b, toks, 3, 2, &hit, &chain) == MESHLM_ERR_INVALID_ARG);
    meshlm_kv_seq_free(&a), meshlm_kv_seq_free(&b), meshlm_kv_seq_free(&c);
    meshlm_kv_pool_free(kv);
}

/* Many pages registered and evicted in turn through a small table: probing and removal
 * keep every registered page findable and none of the evicted ones. */
static void test_index_churn(void) {
    meshlm_kv_params p = params(MESHLM_TYPE_F32, 1, 32, 2, 16);
    meshlm_kv_pool *kv;
    CHECK(meshlm_kv_pool_create(&p, &kv) == MESHLM_OK);
    meshlm_kv_seq s;
    CHECK(meshlm_kv_seq_init(&s, 4, kv) == MESHLM_OK);
    int bad = 0;
    for (int32_t r = 0; r < 400; r++) {
        int32_t t[4] = {r, r + 1, r % 7, r % 3}, hit;
        uint64_t chain;
        bad += meshlm_kv_reserve_prefix(kv, &s, t, 3, 4, &hit, &chain) != MESHLM_OK || hit != 0;
        uint64_t e = meshlm_kv_register(kv, &s, 0, 0, t);
        meshlm_kv_register(kv, &s, 1, e, t + 2);
        meshlm_kv_release(kv, &s);
        /* The 8 most recent requests' chains (16 pages) are all still there. */
        for (int32_t q = r > 7 ? r - 7 : 0; q <= r; q++) {
            int32_t u[4] = {q, q + 1, q % 7, q % 3};
            bad += meshlm_kv_reserve_prefix(kv, &s, u, 4, 4, &hit, &chain) != MESHLM_OK || hit != 2;
            meshlm_kv_release(kv, &s);
        }
        bad += meshlm_kv_pool_cached_pages(kv) != (r < 7 ? 2 * (r + 1) : 16);
    }
    CHECK_MSG(bad == 0, "%d bad lookups", bad);
    meshlm_kv_seq_free(&s);
    meshlm_kv_pool_free(kv);
}

/* Dropping the pages below a window: they go back (a registered one to the cache), the
 * rows left are intact, dropped rows are refused, the chain stops at a dropped page, and
 * the sequence keeps growing at its end and releases cleanly. */
static void test_drop(void) {
    meshlm_kv_params p = params(MESHLM_TYPE_F16, 2, 32, 4, 6);
    meshlm_kv_pool *kv;
    CHECK(meshlm_kv_pool_create(&p, &kv) == MESHLM_OK);
    meshlm_kv_seq s;
    CHECK(meshlm_kv_seq_init(&s, 40, kv) == MESHLM_OK);
    CHECK(meshlm_kv_reserve(kv, &s, 14) == MESHLM_OK && s.n_pages == 4 && meshlm_kv_pool_free_pages(kv) == 2);
    for (int pos = 0; pos < 14; pos++) CHECK(write_pos(kv, &s, 3, 2, 32, pos) == MESHLM_OK);
    int32_t t[4];
    page_tokens(t, 7, 0);
    uint64_t first = meshlm_kv_register(kv, &s, 0, 0, t);
    CHECK(first != 0);
    meshlm_kv_drop(kv, &s, 3); /* page 0 still holds position 3 */
    CHECK(s.n_dropped == 0 && meshlm_kv_pool_free_pages(kv) == 2);
    meshlm_kv_drop(kv, &s, 9); /* pages 0 and 1 hold only positions below 9 */
    CHECK(s.n_dropped == 2 && s.pages[0] == -1 && s.pages[1] == -1);
    CHECK(meshlm_kv_pool_free_pages(kv) == 3 && meshlm_kv_pool_cached_pages(kv) == 1 && accounted(kv, 2));
    float row[32];
    CHECK(meshlm_kv_read(kv, &s, 0, 7, row, NULL) == MESHLM_ERR_RANGE);
    CHECK(strstr(meshlm_last_error(), "dropped") != NULL);
    CHECK(meshlm_kv_write(kv, &s, 1, 0, row, row) == MESHLM_ERR_RANGE);
    for (int pos = 8; pos < 14; pos++) {
        float k[32], v[32], want[32];
        CHECK(meshlm_kv_read(kv, &s, 1, pos, k, v) == MESHLM_OK);
        stored_row(want, MESHLM_TYPE_F16, 3, 1, pos, 0, 32);
        CHECK(memcmp(k, want, sizeof k) == 0);
    }
    page_tokens(t, 7, 1);
    CHECK(meshlm_kv_register(kv, &s, 1, first, t) == 0);
    CHECK(meshlm_kv_reserve(kv, &s, 20) == MESHLM_OK && s.n_pages == 5 && s.n_dropped == 2);
    CHECK(write_pos(kv, &s, 3, 2, 32, 19) == MESHLM_OK);
    meshlm_kv_release(kv, &s);
    CHECK(s.n_pages == 0 && s.n_dropped == 0 && s.len == 0 && accounted(kv, 0));
    CHECK(meshlm_kv_reserve(kv, &s, 4) == MESHLM_OK && write_pos(kv, &s, 4, 2, 32, 0) == MESHLM_OK);
    meshlm_kv_release(kv, &s);
    meshlm_kv_seq_free(&s);
    meshlm_kv_pool_free(kv);
}

int main(void) {
    int types[] = {MESHLM_TYPE_F32, MESHLM_TYPE_F16, MESHLM_TYPE_BF16, MESHLM_TYPE_Q8_0};
    test_params();
    for (int t = 0; t < 4; t++) {
        test_interleaved(types[t], 1);
        test_interleaved(types[t], 4);
        test_interleaved(types[t], 13);
        test_interleaved(types[t], 16);
        test_waves(types[t]);
    }
    test_full_and_reuse();
    test_edges();
    test_prefix();
    test_index_churn();
    test_drop();
    return t_done();
}
