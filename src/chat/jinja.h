/* The chat-template engine: a Jinja2 subset that renders Hugging Face chat templates the way
 * transformers' apply_chat_template does (trim_blocks, lstrip_blocks, immutable sandbox,
 * loopcontrols, tojson as json.dumps, raise_exception, strftime_now). Internal module. */
#ifndef MESHLM_CHAT_JINJA_H
#define MESHLM_CHAT_JINJA_H

#include <stddef.h>

typedef struct meshlm_jinja meshlm_jinja;
struct json_t; /* jansson */

/* Parses a template (trim_blocks, lstrip_blocks, one trailing newline dropped). On error returns
 * MESHLM_ERR_FORMAT with meshlm_fail() message "line L, col C: what is wrong". */
int meshlm_jinja_parse(const char *src, size_t len, meshlm_jinja **out);

/* Renders with the variables of a JSON object (its keys become top-level variables; JSON null = None).
 * *out is malloc'ed, NUL-terminated, *len bytes. raise_exception -> MESHLM_ERR_INVALID_ARG with the
 * template's message; runtime errors name line and column; budget overruns -> MESHLM_ERR_RANGE. */
int meshlm_jinja_render(const meshlm_jinja *t, const struct json_t *vars, char **out, size_t *len);

/* Like meshlm_jinja_render with a smaller output cap and step budget (bytes, node evaluations);
 * 0 keeps the default. The fuzzer uses it to stay fast. */
int meshlm_jinja_render_limited(const meshlm_jinja *t, const struct json_t *vars, size_t max_output,
                                long long max_steps, char **out, size_t *len);

void meshlm_jinja_free(meshlm_jinja *t);

#endif
