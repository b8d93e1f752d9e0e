#include "core/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

enum { MSG_CAP = 1024 };
static _Thread_local char last_msg[MSG_CAP];

const char *meshlm_last_error(void) { return last_msg; }

void meshlm_clear_error(void) { last_msg[0] = '\0'; }

int meshlm_fail(int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_msg, MSG_CAP, fmt, ap);
    va_end(ap);
    return status;
}

int meshlm_fail_prefix(int status, const char *fmt, ...) {
    char old[MSG_CAP];
    memcpy(old, last_msg, MSG_CAP);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(last_msg, MSG_CAP, fmt, ap);
    va_end(ap);
    if (n >= 0 && n < MSG_CAP - 2) {
        last_msg[n] = ':';
        last_msg[n + 1] = ' ';
        size_t room = MSG_CAP - (size_t)n - 2;
        size_t len = strnlen(old, room - 1);
        memcpy(last_msg + n + 2, old, len);
        last_msg[n + 2 + len] = '\0';
    }
    return status;
}

const char *meshlm_status_name(meshlm_status s) {
    switch (s) {
    case MESHLM_OK: return "ok";
    case MESHLM_ERR_INVALID_ARG: return "invalid argument";
    case MESHLM_ERR_IO: return "I/O error";
    case MESHLM_ERR_FORMAT: return "format error";
    case MESHLM_ERR_UNSUPPORTED: return "unsupported";
    case MESHLM_ERR_NOMEM: return "out of memory";
    case MESHLM_ERR_RANGE: return "out of range";
    case MESHLM_ERR_NOT_FOUND: return "not found";
    case MESHLM_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}
