/* Private types of the template engine: tokens, syntax tree, values, evaluation context. */
#ifndef MESHLM_CHAT_JINJA_IMPL_H
#define MESHLM_CHAT_JINJA_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chat/jinja.h"
#include "core/status.h"

enum {
    JINJA_PARSE_DEPTH = 200,      /* nesting of expressions and blocks */
    JINJA_EVAL_DEPTH = 1500,      /* C recursion while evaluating, across macro calls */
    JINJA_CALL_DEPTH = 200,       /* macro calls in progress */
    JINJA_VALUE_DEPTH = 256,      /* nesting of lists and dicts inside each other */
    JINJA_RANGE_MAX = 100000,     /* items a range() may produce */
    JINJA_LIST_MAX = 1 << 20,     /* items a list operation may produce */
};
#define JINJA_OUTPUT_MAX ((size_t)8 << 20)
#define JINJA_STEPS_MAX 50000000LL

/* ---- tokens ---- */
typedef enum {
    TK_EOF, TK_TEXT, TK_BLOCK_BEGIN, TK_BLOCK_END, TK_VAR_BEGIN, TK_VAR_END,
    TK_NAME, TK_STRING, TK_INT, TK_FLOAT, TK_OP
} jtok_kind;

typedef struct jtok {
    jtok_kind kind;
    int line, col;
    const char *s; /* into the source; TK_STRING: the raw literal with its quotes */
    size_t n;
} jtok;

typedef struct jtoks {
    jtok *v;
    size_t n, cap;
} jtoks;

int meshlm_jinja_lex(const char *src, size_t len, jtoks *out);

/* ---- values ---- */
typedef enum {
    JV_UNDEF, JV_NONE, JV_BOOL, JV_INT, JV_FLOAT, JV_STR, JV_LIST, JV_DICT, JV_NS, JV_FUNC, JV_LOOP
} jv_kind;

typedef struct jstr jstr;
typedef struct jlist jlist;
typedef struct jdict jdict;
typedef struct jfunc jfunc;
typedef struct jloop jloop;

typedef struct jv {
    jv_kind kind;
    uint8_t unsafe; /* JV_UNDEF: the jv_kind of an object whose method the sandbox refuses, or 0 */
    union {
        bool b;
        int64_t i;
        double f;
        jstr *s;
        jlist *l;
        jdict *d; /* JV_DICT and JV_NS */
        jfunc *fn;
        jloop *loop;
        const char *name; /* JV_UNDEF: what was looked up, or NULL */
    } u;
} jv;

struct jstr {
    int rc;
    size_t n;
    char p[]; /* NUL-terminated */
};

struct jlist {
    int rc;
    bool tuple;
    int depth;
    size_t n, cap;
    jv *v;
};

struct jdict {
    int rc;
    int depth;
    size_t n, cap;
    jv *k, *v;
};

typedef struct jnode jnode;

typedef enum { FN_BUILTIN, FN_MACRO, FN_METHOD } jfunc_kind;

struct jfunc {
    int rc;
    jfunc_kind kind;
    int id;            /* FN_BUILTIN: which global */
    const jnode *node; /* FN_MACRO */
    jv self;           /* FN_METHOD: the object */
    const char *name;  /* FN_METHOD: method name (static or tree-owned) */
};

struct jloop {
    int rc;
    jlist *items;
    size_t i;
};

static inline jv jv_undef(const char *name) { jv v = {.kind = JV_UNDEF}; v.u.name = name; return v; }
static inline jv jv_none(void) { return (jv){.kind = JV_NONE}; }
static inline jv jv_bool(bool b) { jv v = {.kind = JV_BOOL}; v.u.b = b; return v; }
static inline jv jv_int(int64_t i) { jv v = {.kind = JV_INT}; v.u.i = i; return v; }
static inline jv jv_float(double f) { jv v = {.kind = JV_FLOAT}; v.u.f = f; return v; }

jv meshlm_jinja_ref(jv v);
void meshlm_jinja_unref(jv v);
int meshlm_jinja_str_new(const char *s, size_t n, jv *out);
int meshlm_jinja_list_new(size_t cap, jv *out);
int meshlm_jinja_list_push(jv list, jv item); /* takes item */
int meshlm_jinja_dict_new(jv_kind kind, jv *out);
int meshlm_jinja_dict_set(jv dict, jv key, jv val); /* takes key and val */
/* Borrowed value for a key, or NULL. */
const jv *meshlm_jinja_dict_get(jv dict, jv key);
const jv *meshlm_jinja_dict_gets(jv dict, const char *key, size_t n);
int meshlm_jinja_func_new(jfunc_kind kind, jv *out);

bool meshlm_jinja_truthy(jv v);
bool meshlm_jinja_equal(jv a, jv b);
/* -1, 0, 1 into *r; fails for types Python cannot order. */
int meshlm_jinja_compare(jv a, jv b, int *r);
const char *meshlm_jinja_type_name(jv v);
bool meshlm_jinja_is_number(jv v);
double meshlm_jinja_num(jv v);

/* ---- growable byte buffer ---- */
typedef struct jbuf {
    char *p;
    size_t n, cap;
} jbuf;

int meshlm_jinja_buf_put(jbuf *b, const char *s, size_t n);
int meshlm_jinja_buf_putc(jbuf *b, char c);
int meshlm_jinja_buf_printf(jbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Moves the buffer into a string value and resets the buffer. */
int meshlm_jinja_buf_take(jbuf *b, jv *out);
/* A filter's ending: the buffer becomes *out, or is freed when rc says the filter failed. */
int meshlm_jinja_buf_finish(jbuf *b, int rc, jv *out);

/* Python str() and repr() appended to b. */
int meshlm_jinja_write_str(jbuf *b, jv v);
int meshlm_jinja_write_repr(jbuf *b, jv v);
int meshlm_jinja_write_float(jbuf *b, double f);
int meshlm_jinja_to_str(jv v, jv *out); /* str(v) as a string value */

/* ---- UTF-8 ---- */
size_t meshlm_jinja_utf8_len(const char *s, size_t n);
/* Decodes one code point at s[*i], advancing *i; invalid bytes decode as themselves. */
uint32_t meshlm_jinja_utf8_next(const char *s, size_t n, size_t *i);
int meshlm_jinja_utf8_put(jbuf *b, uint32_t cp);
bool meshlm_jinja_py_space(uint32_t cp);

/* ---- JSON ---- */
struct json_t;
int meshlm_jinja_from_json(const struct json_t *j, int depth, jv *out);
/* json.dumps(v, ensure_ascii=False, indent=indent) appended to b; indent NULL = one line. */
int meshlm_jinja_write_json(jbuf *b, jv v, const char *indent, size_t indent_n, bool sort_keys,
                            int level, size_t cap);

/* ---- syntax tree ---- */
typedef enum {
    /* expressions */
    N_LIT, N_NAME, N_LIST, N_TUPLE, N_DICT, N_ATTR, N_ITEM, N_SLICE, N_CALL, N_FILTER, N_TEST,
    N_NEG, N_POS, N_NOT, N_AND, N_OR, N_BIN, N_CMP, N_COND, N_HOLE,
    /* statements */
    S_TEXT, S_OUT, S_IF, S_FOR, S_SET, S_SETBLOCK, S_MACRO, S_CALLBLOCK, S_FILTER, S_BREAK,
    S_CONTINUE, S_BODY
} jnode_kind;

typedef enum {
    OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_FLOORDIV, OP_MOD, OP_POW, OP_CONCAT,
    OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE, OP_IN, OP_NOTIN
} jop;

struct jnode {
    jnode_kind kind;
    int op; /* jop; N_TEST: 1 when negated; S_FOR: 1 when recursive */
    int line, col;
    jnode *a, *b, *c;
    jnode **kids; /* body, elements, positional args, dict keys, compare operands */
    size_t nkids;
    jnode **alt; /* else body, keyword values, dict values, macro defaults */
    size_t nalt;
    const char **names; /* assignment targets, keyword names, macro parameters */
    size_t nnames;
    const char *str; /* name, attribute, filter/test name, text */
    size_t len;
    jv lit;
    int *ops; /* N_CMP: an operator per operand after the first */
};

typedef struct jarena jarena;

struct meshlm_jinja {
    jarena *arena;
    jnode *root;
};

void *meshlm_jinja_alloc(jarena **a, size_t n);
void meshlm_jinja_arena_free(jarena *a);

typedef struct jparser {
    const jtok *t;
    size_t n, pos;
    int depth;
    int loops; /* enclosing for loops, for break/continue */
    jarena **arena;
} jparser;

int meshlm_jinja_parse_expr(jparser *p, jnode **out);
/* Filters, tests and postfix operators applied to *node. */
int meshlm_jinja_parse_filters(jparser *p, jnode **node);
/* One filter, its name at the current token, applied to *node. */
int meshlm_jinja_parse_filter_call(jparser *p, const jtok *at, jnode **node);
/* A comma-separated tuple (or a single item): mode TUPLE_NAMES takes assignment targets,
 * TUPLE_NO_COND expressions without a trailing "if" (a for loop's iterable). */
enum { TUPLE_NAMES, TUPLE_EXPR, TUPLE_NO_COND };
int meshlm_jinja_parse_tuple(jparser *p, int mode, jnode **out);
int meshlm_jinja_parse_body(jparser *p, const char *const *ends, jnode **out, size_t *which);
jnode *meshlm_jinja_node(jparser *p, jnode_kind kind, const jtok *at);
int meshlm_jinja_perr(const jtok *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool meshlm_jinja_tok_is(const jtok *t, jtok_kind k, const char *s);
typedef struct jnvec {
    jnode **v;
    size_t n, cap;
} jnvec;
int meshlm_jinja_nvec_push(jnvec *v, jnode *n);
/* Moves the vector's nodes into the arena (freeing the vector). */
int meshlm_jinja_nvec_done(jparser *p, jnvec *v, jnode ***out, size_t *n);
char *meshlm_jinja_strdup(jparser *p, const char *s, size_t n);

/* ---- evaluation ---- */
typedef struct jscope jscope;

typedef struct jctx {
    jbuf *out;
    size_t total_out, max_out;
    long long steps, max_steps;
    int depth, calls;
    bool pos_set;
    jscope *scope, *root;
    jv hole; /* the input of a {% filter %} block or filtered {% set %} block */
} jctx;

int meshlm_jinja_eval(jctx *c, const jnode *n, jv *out);
/* Counts a step and a level of recursion against the budgets. */
int meshlm_jinja_enter(jctx *c);
/* Charges a builtin's work, proportional to the sizes of its operands, to the step budget. */
int meshlm_jinja_charge_steps(jctx *c, jv a, jv b);
/* Evaluates a call node; caller is the body of a {% call %} block, or undefined. */
int meshlm_jinja_eval_call(jctx *c, const jnode *call, jv caller, jv *out);
int meshlm_jinja_exec(jctx *c, const jnode *n);
int meshlm_jinja_exec_body(jctx *c, jnode *const *body, size_t n);
int meshlm_jinja_fail_at(jctx *c, const jnode *n, int rc);
int meshlm_jinja_emit(jctx *c, const char *s, size_t n);
int meshlm_jinja_lookup(jctx *c, const char *name, jv *out);
int meshlm_jinja_assign(jctx *c, const char *name, jv v); /* takes v */
int meshlm_jinja_getattr(jctx *c, jv obj, const char *name, size_t n, jv *out);
int meshlm_jinja_getitem(jctx *c, jv obj, jv key, jv *out);
int meshlm_jinja_binop(jctx *c, int op, jv a, jv b, jv *out);
int meshlm_jinja_contains(jv hay, jv needle, bool *out);
/* Materializes anything iterable into a list (a new reference). */
int meshlm_jinja_iterate(jv v, jv *out);

/* Call arguments, already evaluated. */
typedef struct jargs {
    jv *pos;
    size_t npos;
    const char **kwn;
    jv *kwv;
    size_t nkw;
} jargs;
/* Whether argument i (or keyword name) was given and is true, for a filter's flags. */
bool meshlm_jinja_flag(const jargs *a, size_t i, const char *name);

#define JINJA_KW_ONLY SIZE_MAX /* an argument index no positional argument has */

/* Takes a positional-or-keyword argument: pos index i or keyword name; NULL if absent. */
const jv *meshlm_jinja_arg(const jargs *a, size_t i, const char *name);
int meshlm_jinja_call(jctx *c, jv fn, const jargs *a, jv *out);
int meshlm_jinja_call_global(jctx *c, int id, const jargs *a, jv *out);
int meshlm_jinja_global(const char *name, jv *out); /* 0 found, 1 not a global */
int meshlm_jinja_call_macro(jctx *c, const jnode *m, const jargs *a, jv caller, jv *out);
int meshlm_jinja_filter(jctx *c, const char *name, jv in, const jargs *a, jv *out);
int meshlm_jinja_test(jctx *c, const char *name, jv in, const jargs *a, bool *out);
bool meshlm_jinja_has_test(const char *name);
bool meshlm_jinja_has_filter(const char *name);
/* The string filters: 1 when name is not one of them. */
int meshlm_jinja_str_filter(jctx *c, const char *name, jv in, const jargs *a, jv *out);
bool meshlm_jinja_has_str_filter(const char *name);
int meshlm_jinja_method(jctx *c, jv self, const char *name, const jargs *a, jv *out);
/* Whether obj.name is a method (bound lazily); sets *unsafe for methods the sandbox refuses. */
/* The static spelling of a method of obj called name, or NULL; *unsafe gets the static spelling
 * of a mutating method the sandbox refuses. Bound methods keep these, never the caller's text. */
const char *meshlm_jinja_method_name(jv obj, const char *name, const char **unsafe);
int meshlm_jinja_percent_format(jctx *c, jv fmt, jv args, jv *out);
int meshlm_jinja_str_format(jctx *c, jv self, const jargs *a, jv *out);
/* Python string helpers shared by methods and filters (self is a string). */
int meshlm_jinja_strip(jv s, const jv *chars, int which, jv *out);
int meshlm_jinja_splitlines(jv self, bool keepends, jv *out);
int meshlm_jinja_case(jv self, char mode, jv *out);
int meshlm_jinja_replace(const jctx *c, jv self, const jv *old, const jv *new, const jv *count, jv *out);
int meshlm_jinja_pad(const jctx *c, jv self, const jv *width, const jv *fill, char how, jv *out);
int meshlm_jinja_dict_items(jv d, jv *out);
int meshlm_jinja_slice(jv obj, const jv *start, const jv *stop, const jv *step, jv *out);
int meshlm_jinja_charge(jctx *c, size_t bytes);
/* Fails when a string of n bytes would exceed the output cap. */
int meshlm_jinja_check_len(const jctx *c, size_t n);
/* The error for using an undefined value (or a method the sandbox refuses). */
int meshlm_jinja_undefined_error(jv v);

#endif
