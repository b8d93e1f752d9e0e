/* Status codes and per-thread error messages shared by every layer. */
#ifndef MESHLM_CORE_STATUS_H
#define MESHLM_CORE_STATUS_H

#include "meshlm.h"

/* Records a formatted message for this thread and returns status, so a failure site
 * reads: return meshlm_fail(MESHLM_ERR_FORMAT, "%s: tensor '%s': ...", path, name); */
int meshlm_fail(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prepends "prefix: " to this thread's current message (adds context on the way up). */
int meshlm_fail_prefix(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Forgets this thread's message. */
void meshlm_clear_error(void);

#endif
