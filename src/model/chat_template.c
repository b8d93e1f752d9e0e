/* A model's chat template: the text its GGUF carries (tokenizer.chat_template), or an
 * override, or ChatML, bound to its vocabulary's bos and eos texts. */
#include <string.h>

#include "chat/chat.h"
#include "core/status.h"
#include "model/model.h"

/* The stored text of a special token, or "" when the vocabulary has none. */
static const char *token_text(const meshlm_tokenizer *tok, int32_t id, char *buf, size_t cap) {
    const char *p;
    size_t n;
    buf[0] = '\0';
    if (id < 0 || meshlm_tokenizer_text(tok, id, &p, &n) != MESHLM_OK || n >= cap) return buf;
    memcpy(buf, p, n);
    buf[n] = '\0';
    return buf;
}

meshlm_status meshlm_chat_template_from_model(const meshlm_model *m, const char *text, meshlm_chat_template **out) {
    if (!m || !out) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "chat_template_from_model: NULL argument");
    const char *src = text;
    size_t len = text ? strlen(text) : 0;
    bool fallback = false;
    if (!src && meshlm_gguf_get_str(m->gguf, "tokenizer.chat_template", &src, &len) != MESHLM_OK) {
        src = meshlm_chat_chatml;
        len = strlen(meshlm_chat_chatml);
        fallback = true;
    }
    char bos[256], eos[256];
    return (meshlm_status)meshlm_chat_template_create(
        src, len, token_text(m->tok, meshlm_tokenizer_bos(m->tok), bos, sizeof bos),
        token_text(m->tok, meshlm_tokenizer_eos(m->tok), eos, sizeof eos), fallback, out);
}
