/* Generated ids to the text a user sees: the detokenizer (whole UTF-8 characters, control
 * tokens hidden unless --special) followed by the stop strings of -r / --stop. */
#ifndef MESHLM_APPS_STREAM_H
#define MESHLM_APPS_STREAM_H

#include <stdbool.h>
#include <stddef.h>

#include "meshlm.h"

typedef struct meshlm_stream {
    meshlm_detokenizer *detok;
    meshlm_stop *stop; /* NULL without stop strings */
    bool stopped;      /* a stop string has appeared: nothing more comes out */
    char *out;         /* the text of the last call */
    size_t n_out, cap_out;
} meshlm_stream;

/* special: show control tokens; stops: n stop strings (none may be empty). */
meshlm_status meshlm_stream_init(meshlm_stream *s, const meshlm_model *m, bool special, const char *const *stops,
                                 int n_stops);
void meshlm_stream_free(meshlm_stream *s);
/* Adds a generated token; s->out/s->n_out get the text to show now. */
meshlm_status meshlm_stream_push(meshlm_stream *s, int32_t id);
/* Ends the stream: whatever was held back comes out in s->out; s is ready for another. */
meshlm_status meshlm_stream_end(meshlm_stream *s);

#endif
