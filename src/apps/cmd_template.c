/* meshlm template: renders a chat template file with a conversation read as JSON from stdin,
 * the way Hugging Face's apply_chat_template would, and prints the result exactly. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps/args.h"
#include "apps/commands.h"
#include "chat/jinja.h"
#include "meshlm.h"

static const char usage[] =
    "usage: meshlm template TEMPLATE_FILE < case.json\n"
    "\n"
    "Renders a Jinja2 chat template with the JSON object on stdin as its variables\n"
    "(messages, add_generation_prompt, bos_token, eos_token, tools, documents, ...) and\n"
    "prints the rendering exactly, without an added newline. Exits 1 if the template\n"
    "fails to parse or raises.\n";

static int render(const char *path, const char *src, size_t len, const json_t *vars) {
    meshlm_jinja *t = NULL;
    char *out = NULL;
    size_t n = 0;
    int rc = meshlm_jinja_parse(src, len, &t);
    if (!rc) rc = meshlm_jinja_render(t, vars, &out, &n);
    meshlm_jinja_free(t);
    if (rc) {
        fprintf(stderr, "meshlm template: %s: %s\n", path, meshlm_last_error());
        return 1;
    }
    size_t w = fwrite(out, 1, n, stdout);
    free(out);
    return w == n && fflush(stdout) == 0 ? 0 : 1;
}

int meshlm_cmd_template(int argc, char **argv) {
    if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        fputs(usage, stdout);
        return 0;
    }
    if (argc != 2 || argv[1][0] == '-') {
        fprintf(stderr, "meshlm template: need exactly one template file\n%s", usage);
        return 2;
    }
    char *src = NULL;
    size_t len = 0;
    if (!meshlm_arg_read_file("template", argv[1], &src, &len)) return 1;
    json_error_t err;
    json_t *vars = json_loadf(stdin, JSON_ALLOW_NUL, &err);
    int rc;
    if (!vars || !json_is_object(vars)) {
        fprintf(stderr, "meshlm template: stdin: %s\n", vars ? "expected a JSON object" : err.text);
        rc = 1;
    } else {
        rc = render(argv[1], src, len, vars);
    }
    json_decref(vars);
    free(src);
    return rc;
}
