/* UTF-8 helpers, GPT-2's byte-level alphabet and the streaming decoder. */
#include <string.h>

#include "core/status.h"
#include "tokenizer/tok_internal.h"

/* Bytes that are printable Latin-1 stand for themselves; the other 68 are moved, in byte
 * order, to U+0100.. so that every byte has a visible, non-space character. */
static bool byte_is_self(unsigned b) {
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

uint32_t bpe_byte_to_cp(unsigned char b) {
    if (byte_is_self(b)) return b;
    if (b <= 0x20) return 256u + b;
    if (b >= 0x7F && b <= 0xA0) return 256u + 33u + (b - 0x7Fu);
    return 256u + 67u; /* 0xAD, the soft hyphen */
}

int bpe_cp_to_byte(uint32_t cp) {
    if (cp < 256) return byte_is_self(cp) ? (int)cp : -1;
    if (cp <= 256 + 32) return (int)(cp - 256);
    if (cp <= 256 + 66) return (int)(0x7F + cp - 289);
    if (cp == 256 + 67) return 0xAD;
    return -1;
}

size_t utf8_put(uint32_t cp, char *out) {
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Checks the character starting at s against the UTF-8 well-formedness table. Returns
 * its length when complete and valid, 0 when it is a valid but unfinished prefix, and
 * -k when its first k bytes are a maximal ill-formed subpart (one U+FFFD each). */
static int utf8_check(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    int need;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) need = 1;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        return -1;
    }
    for (int i = 1; i <= need; i++) {
        if ((size_t)i >= n) return 0;
        unsigned b = s[i];
        if (b < lo || b > hi) return -i;
        lo = 0x80;
        hi = 0xBF;
    }
    return need + 1;
}

size_t utf8_get(const unsigned char *s, size_t n, uint32_t *cp) {
    int k = utf8_check(s, n);
    if (k <= 0) return 0;
    uint32_t c = s[0];
    if (k == 1) *cp = c;
    else if (k == 2) *cp = ((c & 0x1F) << 6) | (s[1] & 0x3Fu);
    else if (k == 3) *cp = ((c & 0x0F) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu);
    else *cp = ((c & 0x07) << 18) | ((s[1] & 0x3Fu) << 12) | ((s[2] & 0x3Fu) << 6) | (s[3] & 0x3Fu);
    return (size_t)k;
}

const char *tok_quote(char *buf, size_t cap, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    const size_t shown = n > 40 ? 40 : n;
    buf[o++] = '\'';
    for (size_t i = 0; i < shown && o + 8 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7F && c != '\\' && c != '\'') {
            buf[o++] = (char)c;
        } else {
            buf[o++] = '\\';
            buf[o++] = 'x';
            buf[o++] = hex[c >> 4];
            buf[o++] = hex[c & 15];
        }
    }
    buf[o++] = '\'';
    if (shown < n && o + 4 < cap) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
    return buf;
}

static const char replacement[3] = {'\xEF', '\xBF', '\xBD'};

static void emit(char *out, size_t cap, size_t *used, const void *b, size_t n) {
    if (*used + n <= cap) memcpy(out + *used, b, n);
    *used += n;
}

/* Decodes held-back bytes followed by a new piece; returns the output size (writing
 * only when it fits in cap) and the bytes to hold back for the next call. */
static size_t decode_stream(const unsigned char *pend, int np, const unsigned char *p,
                            size_t plen, char *out, size_t cap, unsigned char *hold,
                            int *nhold) {
    size_t total = (size_t)np + plen, used = 0, i = 0;
    *nhold = 0;
    while (i < total) {
        unsigned char win[4];
        size_t avail = total - i, w = avail < 4 ? avail : 4;
        for (size_t k = 0; k < w; k++) {
            size_t j = i + k;
            win[k] = j < (size_t)np ? pend[j] : p[j - (size_t)np];
        }
        int r = utf8_check(win, w);
        if (r > 0) {
            emit(out, cap, &used, win, (size_t)r);
            i += (size_t)r;
        } else if (r == 0) {
            memcpy(hold, win, w);
            *nhold = (int)w;
            break;
        } else {
            emit(out, cap, &used, replacement, sizeof replacement);
            i += (size_t)-r;
        }
    }
    return used;
}

int meshlm_detok_push(const meshlm_tokenizer *t, meshlm_detok *d, int32_t id, char *out,
                      size_t cap, size_t *n) {
    if (!t || !d || !n || (cap && !out))
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "detok_push: NULL argument");
    *n = 0;
    if (d->n_pending < 0 || d->n_pending > 3)
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "detok_push: corrupt decoder state");
    const char *p;
    size_t plen;
    int rc = meshlm_tokenizer_piece(t, id, &p, &plen);
    if (rc) return rc;
    unsigned char hold[4];
    int nhold;
    size_t need = decode_stream(d->pending, d->n_pending, (const unsigned char *)p, plen, out,
                                cap, hold, &nhold);
    if (need > cap) {
        *n = need;
        return meshlm_fail(MESHLM_ERR_RANGE, "detok_push: token %d needs %zu bytes, buffer has %zu",
                           (int)id, need, cap);
    }
    memcpy(d->pending, hold, (size_t)nhold);
    d->n_pending = nhold;
    *n = need;
    return MESHLM_OK;
}

int meshlm_detok_flush(meshlm_detok *d, char *out, size_t cap, size_t *n) {
    if (!d || !n || (cap && !out))
        return meshlm_fail(MESHLM_ERR_INVALID_ARG, "detok_flush: NULL argument");
    *n = 0;
    if (d->n_pending <= 0) {
        d->n_pending = 0;
        return MESHLM_OK;
    }
    if (cap < sizeof replacement) {
        *n = sizeof replacement;
        return meshlm_fail(MESHLM_ERR_RANGE, "detok_flush: needs %zu bytes, buffer has %zu",
                           sizeof replacement, cap);
    }
    memcpy(out, replacement, sizeof replacement);
    *n = sizeof replacement;
    d->n_pending = 0;
    return MESHLM_OK;
}
