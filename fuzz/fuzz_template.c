/* Parses and renders arbitrary template text against a small fixed conversation, under a
 * small output cap and step budget: any input must either render or fail cleanly, with a
 * NUL-terminated result whose length is the one reported. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chat/jinja.h"
#include "meshlm.h"

static const char context[] =
    "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"},"
    " {\"role\": \"user\", \"content\": \"Hi 'you' \\\"there\\\"\\n\\u00e9\"},"
    " {\"role\": \"assistant\", \"content\": null, \"tool_calls\": [{\"type\": \"function\","
    " \"function\": {\"name\": \"get\", \"arguments\": {\"x\": 1, \"y\": [true, 2.5]}}}]},"
    " {\"role\": \"tool\", \"content\": \"42\"}],"
    " \"add_generation_prompt\": true, \"bos_token\": \"<s>\", \"eos_token\": \"</s>\","
    " \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"get\", \"parameters\": {}}}],"
    " \"documents\": null}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static json_t *vars;
    if (!vars && !(vars = json_loads(context, 0, NULL))) abort();
    if (size > 16384) return 0;
    meshlm_jinja *t = NULL;
    if (meshlm_jinja_parse((const char *)data, size, &t) != MESHLM_OK) return 0;
    char *out = NULL;
    size_t len = 0;
    if (meshlm_jinja_render_limited(t, vars, 1 << 16, 200000, &out, &len) == MESHLM_OK && strlen(out) > len) abort();
    free(out);
    meshlm_jinja_free(t);
    return 0;
}
