/* Template lexer: splits the source into text and tag tokens, applying Hugging Face's whitespace
 * settings (trim_blocks, lstrip_blocks) and the explicit {%- -%} / {{- -}} / {#- -#} controls. */
#include <stdlib.h>
#include <string.h>

#include "chat/jinja_impl.h"

typedef struct lexer {
    const char *s;
    size_t n, pos;
    size_t lpos, lstart; /* line cursor: position counted up to, start of its line */
    int line;
    int depth; /* open brackets inside a tag, so "}}" of a dict literal does not close it */
    jtoks *out;
} lexer;

/* Line and column of pos; a cursor makes the usual increasing queries cheap. */
static void where(lexer *L, size_t pos, int *line, int *col) {
    if (pos < L->lpos) {
        L->lpos = L->lstart = 0;
        L->line = 1;
    }
    for (; L->lpos < pos && L->lpos < L->n; L->lpos++)
        if (L->s[L->lpos] == '\n') {
            L->line++;
            L->lstart = L->lpos + 1;
        }
    *line = L->line;
    *col = (int)(pos - L->lstart) + 1;
}

static int push(lexer *L, jtok_kind kind, size_t at, const char *s, size_t n) {
    jtoks *o = L->out;
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 64;
        jtok *v = realloc(o->v, cap * sizeof *v);
        if (!v) return meshlm_fail(MESHLM_ERR_NOMEM, "out of memory");
        o->v = v;
        o->cap = cap;
    }
    jtok *t = &o->v[o->n++];
    t->kind = kind;
    t->s = s;
    t->n = n;
    where(L, at, &t->line, &t->col);
    return 0;
}

static int lex_err(lexer *L, size_t at, const char *what) {
    int line, col;
    where(L, at, &line, &col);
    return meshlm_fail(MESHLM_ERR_FORMAT, "line %d, col %d: %s", line, col, what);
}

static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }
static bool is_name0(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* The next tag opener at or after pos, or n. */
static size_t next_tag(const lexer *L, size_t pos) {
    for (size_t i = pos; i + 1 < L->n; i++)
        if (L->s[i] == '{' && (L->s[i + 1] == '{' || L->s[i + 1] == '%' || L->s[i + 1] == '#')) return i;
    return L->n;
}

/* Where lstrip_blocks cuts text that ends at a block tag: the start of the spaces before the
 * tag when only spaces and tabs separate it from the start of its line. */
static size_t lstrip_cut(const lexer *L, size_t from, size_t tag) {
    size_t k = tag;
    while (k > 0 && (L->s[k - 1] == ' ' || L->s[k - 1] == '\t')) k--;
    if (k > 0 && L->s[k - 1] != '\n') return tag;
    return k > from ? k : from;
}

/* After a tag closing at pos: skips whitespace when the tag ended with '-', else one newline
 * when trim_blocks applies. */
static size_t after_close(const lexer *L, size_t pos, bool minus, bool trim) {
    if (minus) {
        while (pos < L->n && is_ws(L->s[pos])) pos++;
    } else if (trim && pos < L->n && L->s[pos] == '\n') {
        pos++;
    }
    return pos;
}

static size_t scan_number(const lexer *L, size_t i, bool *is_float) {
    *is_float = false;
    while (i < L->n && (is_digit(L->s[i]) || L->s[i] == '_')) i++;
    if (i + 1 < L->n && L->s[i] == '.' && is_digit(L->s[i + 1])) {
        *is_float = true;
        i++;
        while (i < L->n && (is_digit(L->s[i]) || L->s[i] == '_')) i++;
    }
    if (i < L->n && (L->s[i] == 'e' || L->s[i] == 'E')) {
        size_t j = i + 1;
        if (j < L->n && (L->s[j] == '+' || L->s[j] == '-')) j++;
        if (j < L->n && is_digit(L->s[j])) {
            *is_float = true;
            i = j;
            while (i < L->n && is_digit(L->s[i])) i++;
        }
    }
    return i;
}

static int scan_string(lexer *L, size_t i, size_t *end) {
    char q = L->s[i];
    for (size_t j = i + 1; j < L->n; j++) {
        if (L->s[j] == '\\') {
            j++;
        } else if (L->s[j] == q) {
            *end = j + 1;
            return 0;
        }
    }
    return lex_err(L, i, "unterminated string literal");
}

static const char *const ops2[] = {"**", "//", "==", "!=", "<=", ">=", NULL};

/* Lexes one token inside a tag at pos; returns its end in *end. */
static int lex_token(lexer *L, size_t i, size_t *end) {
    const char *s = L->s;
    char c = s[i];
    if (is_name0(c)) {
        size_t j = i + 1;
        while (j < L->n && (is_name0(s[j]) || is_digit(s[j]))) j++;
        *end = j;
        return push(L, TK_NAME, i, s + i, j - i);
    }
    if (is_digit(c)) {
        bool fl;
        size_t j = scan_number(L, i, &fl);
        *end = j;
        return push(L, fl ? TK_FLOAT : TK_INT, i, s + i, j - i);
    }
    if (c == '\'' || c == '"') {
        int rc = scan_string(L, i, end);
        return rc ? rc : push(L, TK_STRING, i, s + i, *end - i);
    }
    for (int k = 0; ops2[k]; k++)
        if (i + 1 < L->n && s[i] == ops2[k][0] && s[i + 1] == ops2[k][1]) {
            *end = i + 2;
            return push(L, TK_OP, i, s + i, 2);
        }
    if (!strchr("+-*/%~<>()[]{}.,:|=", c) || c == '\0') return lex_err(L, i, "unexpected character in tag");
    if (c == '(' || c == '[' || c == '{') L->depth++;
    if ((c == ')' || c == ']' || c == '}') && L->depth > 0) L->depth--;
    *end = i + 1;
    return push(L, TK_OP, i, s + i, 1);
}

/* Lexes a {{ }} or {% %} tag whose opener is at pos; sets *next past it. */
static int lex_tag(lexer *L, size_t pos, bool block, size_t *next, bool *raw) {
    int rc = push(L, block ? TK_BLOCK_BEGIN : TK_VAR_BEGIN, pos, L->s + pos, 2);
    size_t i = pos + 2;
    if (i < L->n && (L->s[i] == '-' || (block && L->s[i] == '+'))) i++;
    char close = block ? '%' : '}';
    size_t first = L->out->n;
    L->depth = 0;
    while (!rc) {
        while (i < L->n && is_ws(L->s[i])) i++;
        if (i >= L->n) return lex_err(L, pos, block ? "unclosed block tag" : "unclosed variable tag");
        bool minus = L->s[i] == '-' || (block && L->s[i] == '+');
        size_t c = minus ? i + 1 : i;
        if (L->depth == 0 && c + 1 < L->n && L->s[c] == close && L->s[c + 1] == '}') {
            rc = push(L, block ? TK_BLOCK_END : TK_VAR_END, i, L->s + i, c + 2 - i);
            *raw = block && L->out->n == first + 2 && L->out->v[first].n == 3 &&
                   !memcmp(L->out->v[first].s, "raw", 3);
            *next = after_close(L, c + 2, L->s[i] == '-', block && L->s[i] != '+');
            return rc;
        }
        rc = lex_token(L, i, &i);
    }
    return rc;
}

/* Finds "{% endraw %}" (with optional '-' controls) from pos; emits the raw text. */
static int lex_raw(lexer *L, size_t pos, size_t *next) {
    for (size_t i = pos; i + 1 < L->n; i++) {
        if (L->s[i] != '{' || L->s[i + 1] != '%') continue;
        size_t j = i + 2;
        bool lminus = j < L->n && L->s[j] == '-';
        if (lminus) j++;
        while (j < L->n && is_ws(L->s[j])) j++;
        if (L->n - j < 6 || memcmp(L->s + j, "endraw", 6)) continue;
        j += 6;
        while (j < L->n && is_ws(L->s[j])) j++;
        bool rminus = j < L->n && L->s[j] == '-';
        if (rminus) j++;
        if (j + 1 >= L->n || L->s[j] != '%' || L->s[j + 1] != '}') continue;
        size_t end = lminus ? i : lstrip_cut(L, pos, i);
        if (lminus)
            while (end > pos && is_ws(L->s[end - 1])) end--;
        int rc = end > pos ? push(L, TK_TEXT, pos, L->s + pos, end - pos) : 0;
        *next = after_close(L, j + 2, rminus, true);
        return rc;
    }
    return lex_err(L, pos, "missing {% endraw %}");
}

/* Skips a comment opened at pos. */
static int lex_comment(lexer *L, size_t pos, size_t *next) {
    for (size_t i = pos + 2; i + 1 < L->n; i++)
        if (L->s[i] == '#' && L->s[i + 1] == '}') {
            bool minus = i > pos + 2 && L->s[i - 1] == '-';
            *next = after_close(L, i + 2, minus, true);
            return 0;
        }
    return lex_err(L, pos, "unclosed comment");
}

/* Emits the text [from, tag) after the whitespace control of the tag at `tag`. */
static int emit_text(lexer *L, size_t from, size_t tag) {
    size_t end = tag;
    if (tag < L->n) {
        char kind = L->s[tag + 1], ctl = tag + 2 < L->n ? L->s[tag + 2] : 0;
        if (ctl == '-') {
            while (end > from && is_ws(L->s[end - 1])) end--;
        } else if ((kind == '%' || kind == '#') && ctl != '+') {
            end = lstrip_cut(L, from, tag);
        }
    }
    return end > from ? push(L, TK_TEXT, from, L->s + from, end - from) : 0;
}

int meshlm_jinja_lex(const char *src, size_t len, jtoks *out) {
    lexer L = {.s = src, .n = len, .line = 1, .out = out};
    size_t pos = 0;
    while (pos < L.n) {
        size_t tag = next_tag(&L, pos);
        int rc = emit_text(&L, pos, tag);
        if (rc || tag >= L.n) return rc ? rc : push(&L, TK_EOF, L.n, L.s + L.n, 0);
        char kind = L.s[tag + 1];
        bool raw = false;
        if (kind == '#') rc = lex_comment(&L, tag, &pos);
        else rc = lex_tag(&L, tag, kind == '%', &pos, &raw);
        if (!rc && raw) {
            out->n -= 3; /* the raw tag itself leaves no tokens */
            rc = lex_raw(&L, pos, &pos);
        }
        if (rc) return rc;
    }
    return push(&L, TK_EOF, L.n, L.s + L.n, 0);
}
