/* The chat layer's internal side: what the model layer needs to bind a model's template
 * (the public functions are in meshlm.h). */
#ifndef MESHLM_CHAT_CHAT_H
#define MESHLM_CHAT_CHAT_H

#include <stdbool.h>
#include <stddef.h>

#include "meshlm.h"

/* ChatML, the prompt format of Qwen, Hermes and most fine-tunes: the usual choice for a
 * model that names none, as llama.cpp and transformers also fall back to it. */
extern const char meshlm_chat_chatml[];

/* meshlm_chat_template_parse, marking a template chosen for want of the model's own. */
int meshlm_chat_template_create(const char *text, size_t len, const char *bos, const char *eos, bool fallback,
                                meshlm_chat_template **out);

#endif
