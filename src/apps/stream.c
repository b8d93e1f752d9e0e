/* The detokenizer and the stop strings chained, with one output buffer. */
#include <stdlib.h>
#include <string.h>

#include "apps/stream.h"

meshlm_status meshlm_stream_init(meshlm_stream *s, const meshlm_model *m, bool special, const char *const *stops,
                                 int n_stops) {
    *s = (meshlm_stream){0};
    meshlm_status rc = meshlm_detokenizer_create(m, special, &s->detok);
    if (!rc && n_stops > 0) rc = meshlm_stop_create(stops, (size_t)n_stops, &s->stop);
    if (rc) meshlm_stream_free(s);
    return rc;
}

void meshlm_stream_free(meshlm_stream *s) {
    meshlm_detokenizer_free(s->detok);
    meshlm_stop_free(s->stop);
    free(s->out);
    *s = (meshlm_stream){0};
}

static meshlm_status append(meshlm_stream *s, const char *p, size_t n) {
    if (s->n_out + n + 1 > s->cap_out) {
        size_t cap = 2 * (s->n_out + n + 1);
        char *q = realloc(s->out, cap);
        if (!q) return MESHLM_ERR_NOMEM;
        s->out = q;
        s->cap_out = cap;
    }
    memcpy(s->out + s->n_out, p, n);
    s->n_out += n;
    s->out[s->n_out] = '\0';
    return MESHLM_OK;
}

/* Passes decoded text through the stop strings into the output. */
static meshlm_status filter(meshlm_stream *s, const char *text, size_t n) {
    if (!s->stop) return append(s, text, n);
    const char *p;
    size_t k;
    meshlm_status rc = meshlm_stop_push(s->stop, text, n, &p, &k, &s->stopped);
    return rc ? rc : append(s, p, k);
}

meshlm_status meshlm_stream_push(meshlm_stream *s, int32_t id) {
    s->n_out = 0;
    if (s->stopped) return append(s, "", 0);
    const char *text;
    size_t n;
    meshlm_status rc = meshlm_detokenizer_push(s->detok, id, &text, &n);
    return rc ? rc : filter(s, text, n);
}

meshlm_status meshlm_stream_end(meshlm_stream *s) {
    s->n_out = 0;
    const char *text;
    size_t n;
    bool stopped = s->stopped;
    s->stopped = false;
    meshlm_status rc = meshlm_detokenizer_flush(s->detok, &text, &n);
    if (!rc && !stopped) rc = filter(s, text, n);
    /* The matcher's held-back tail comes out unless a stop string ended the stream; the
     * flush also readies it for the next stream either way. */
    if (!rc && s->stop && meshlm_stop_flush(s->stop, &text, &n) == MESHLM_OK && !stopped) rc = append(s, text, n);
    return rc ? rc : append(s, "", 0);
}
