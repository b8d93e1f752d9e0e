/* Decodes arbitrary bytes as each kind of request body (chat, completions, tokenize,
 * detokenize) and checks what a decoded request must hold: the status of a refusal, the
 * counts and ranges the engine relies on. The first byte picks the kind. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/request.h"

static void check(bool ok, const char *what) {
    if (ok) return;
    fprintf(stderr, "fuzz_request: %s\n", what);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    srv_kind kind = (srv_kind)(data[0] % 4);
    srv_request r;
    srv_error err;
    if (meshlm_srv_decode(kind, (const char *)data + 1, size - 1, &r, &err) < 0) {
        check(err.status >= 400 && err.status < 600 && err.message[0], "a refusal without status or message");
        check(!r.prompts && !r.messages && !r.stops && !r.tokens && !r.model, "a refusal left allocations");
        return 0;
    }
    if (kind == SRV_CHAT) check(r.messages != NULL, "chat without messages");
    if (kind == SRV_COMPLETION) {
        check(r.n_prompts >= 1 && r.n_prompts <= SRV_MAX_PROMPTS, "prompt count out of range");
        for (size_t i = 0; i < r.n_prompts; i++) {
            check((r.prompts[i].text != NULL) != (r.prompts[i].ids != NULL), "a prompt is neither text nor ids");
            for (int32_t k = 0; r.prompts[i].ids && k < r.prompts[i].n_ids; k++)
                check(r.prompts[i].ids[k] >= 0, "a negative token id");
        }
    }
    if (kind == SRV_CHAT || kind == SRV_COMPLETION) {
        check(r.n >= 1 && r.n <= SRV_MAX_N, "n out of range");
        check(r.max_tokens == -1 || (r.max_tokens >= 1 && r.max_tokens <= INT32_MAX), "max_tokens out of range");
        check(r.sp.temperature >= 0 && r.sp.temperature <= 2, "temperature out of range");
        check(r.sp.top_p > 0 && r.sp.top_p <= 1 && r.sp.min_p >= 0 && r.sp.min_p <= 1 && r.sp.top_k >= 0,
              "sampling out of range");
        check(r.n_stops <= SRV_MAX_STOPS, "too many stops");
        for (size_t i = 0; i < r.n_stops; i++) check(r.stops[i] && r.stops[i][0], "an empty stop string");
    }
    if (kind == SRV_TOKENIZE) check(r.n_prompts == 1 && r.prompts[0].text, "tokenize without content");
    if (kind == SRV_DETOKENIZE)
        for (int32_t k = 0; k < r.n_tokens; k++) check(r.tokens[k] >= 0, "a negative token id");
    meshlm_srv_request_free(&r);
    return 0;
}
