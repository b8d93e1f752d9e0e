/* Stop strings on streamed text. The matcher keeps the tail of the text that could still
 * grow into a stop string and releases everything before it, so a caller never shows
 * text it would have to take back, and never shows the stop string itself. */
#include <stdlib.h>
#include <string.h>

#include "core/status.h"

struct meshlm_stop {
    char **stops;
    size_t *lens;
    size_t n;
    char *pending; /* text not yet released: always shorter than the longest stop string */
    size_t n_pending, cap_pending;
    char *out; /* what the last call released */
    size_t cap_out;
    int which; /* the stop string that ended the stream, -1 while none has */
};

meshlm_status meshlm_stop_create(const char *const *stops, size_t n, meshlm_stop **out) {
    if (!out || (n && !stops)) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "stop: NULL argument");
    *out = NULL;
    meshlm_stop *s = calloc(1, sizeof *s);
    if (!s) return meshlm_fail(MESHLM_ERR_NOMEM, "stop: out of memory");
    s->which = -1;
    s->stops = calloc(n ? n : 1, sizeof *s->stops);
    s->lens = calloc(n ? n : 1, sizeof *s->lens);
    if (!s->stops || !s->lens) {
        meshlm_stop_free(s);
        return meshlm_fail(MESHLM_ERR_NOMEM, "stop: out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        if (!stops[i] || !stops[i][0]) {
            meshlm_stop_free(s);
            return meshlm_fail(MESHLM_ERR_INVALID_ARG, "stop: string %zu is empty", i);
        }
        s->lens[i] = strlen(stops[i]);
        if (!(s->stops[i] = strdup(stops[i]))) {
            meshlm_stop_free(s);
            return meshlm_fail(MESHLM_ERR_NOMEM, "stop: out of memory");
        }
        s->n = i + 1;
    }
    *out = s;
    return MESHLM_OK;
}

void meshlm_stop_free(meshlm_stop *s) {
    if (!s) return;
    for (size_t i = 0; i < s->n; i++) free(s->stops[i]);
    free(s->stops);
    free(s->lens);
    free(s->pending);
    free(s->out);
    free(s);
}

static bool reserve(char **p, size_t *cap, size_t need) {
    if (need <= *cap) return true;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    char *q = realloc(*p, c);
    if (!q) return false;
    *p = q;
    *cap = c;
    return true;
}

/* The earliest complete stop string in text (ties: the first listed), or -1. */
static int find_stop(const meshlm_stop *s, const char *text, size_t len, size_t *at) {
    int best = -1;
    for (size_t i = 0; i < s->n; i++) {
        const char *hit = memmem(text, len, s->stops[i], s->lens[i]);
        if (hit && (best < 0 || (size_t)(hit - text) < *at)) {
            best = (int)i;
            *at = (size_t)(hit - text);
        }
    }
    return best;
}

/* The length of the longest tail of text that is a proper prefix of some stop string:
 * the text that must wait for more before it can be shown. */
static size_t held_tail(const meshlm_stop *s, const char *text, size_t len) {
    size_t hold = 0;
    for (size_t i = 0; i < s->n; i++) {
        size_t k = s->lens[i] - 1 < len ? s->lens[i] - 1 : len;
        for (; k > hold; k--)
            if (!memcmp(text + len - k, s->stops[i], k)) {
                hold = k;
                break;
            }
    }
    return hold;
}

/* Moves the first n pending bytes to the output and keeps the rest pending. */
static int release(meshlm_stop *s, size_t n, size_t drop, const char **out, size_t *out_len) {
    if (!reserve(&s->out, &s->cap_out, n + 1)) return meshlm_fail(MESHLM_ERR_NOMEM, "stop: out of memory");
    memcpy(s->out, s->pending, n);
    s->out[n] = '\0';
    memmove(s->pending, s->pending + n + drop, s->n_pending - n - drop);
    s->n_pending -= n + drop;
    *out = s->out;
    *out_len = n;
    return MESHLM_OK;
}

meshlm_status meshlm_stop_push(meshlm_stop *s, const char *text, size_t len, const char **out, size_t *out_len,
                               bool *stopped) {
    if (!s || (len && !text) || !out || !out_len || !stopped)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "stop_push: NULL argument");
    *out = "";
    *out_len = 0;
    *stopped = s->which >= 0;
    if (*stopped) return MESHLM_OK;
    if (!reserve(&s->pending, &s->cap_pending, s->n_pending + len + 1))
        return meshlm_fail(MESHLM_ERR_NOMEM, "stop: out of memory");
    memcpy(s->pending + s->n_pending, text, len);
    s->n_pending += len;
    size_t at = 0;
    int hit = find_stop(s, s->pending, s->n_pending, &at);
    if (hit >= 0) {
        s->which = hit;
        *stopped = true;
        return (meshlm_status)release(s, at, s->n_pending - at, out, out_len);
    }
    return (meshlm_status)release(s, s->n_pending - held_tail(s, s->pending, s->n_pending), 0, out, out_len);
}

meshlm_status meshlm_stop_flush(meshlm_stop *s, const char **out, size_t *out_len) {
    if (!s || !out || !out_len) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "stop_flush: NULL argument");
    int rc = release(s, s->n_pending, 0, out, out_len);
    s->which = -1;
    return (meshlm_status)rc;
}

int meshlm_stop_which(const meshlm_stop *s) { return s ? s->which : -1; }
