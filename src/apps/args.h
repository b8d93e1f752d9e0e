/* Command-line value parsing shared by the subcommands: strict numbers, clear messages. */
#ifndef MESHLM_APPS_ARGS_H
#define MESHLM_APPS_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* If argv[*i] is flag (or its alias, may be NULL), stores the next argument in *value,
 * advances *i and returns true. A flag without a value sets *missing. */
bool meshlm_arg_take(int argc, char **argv, int *i, const char *flag, const char *alias, const char **value,
                     bool *missing);

/* Strict conversions: the whole string must be a number in [lo, hi]. On failure they
 * print "meshlm CMD: FLAG: ..." to stderr and return false. */
bool meshlm_arg_int(const char *cmd, const char *flag, const char *s, int64_t lo, int64_t hi, int64_t *out);
bool meshlm_arg_float(const char *cmd, const char *flag, const char *s, double lo, double hi, double *out);

/* A byte count with an optional K, M or G suffix (powers of 1024), in [1, 2^50]. */
bool meshlm_arg_bytes(const char *cmd, const char *flag, const char *s, size_t *out);

/* An --opt-set list with item added in front (item alone when opt_set is NULL), written
 * into buf: what a shorthand flag such as --expert-parallel asks for. NULL, after saying
 * so on stderr, when it does not fit. */
const char *meshlm_arg_opt_set_add(const char *cmd, const char *opt_set, const char *item, char *buf, size_t cap);

/* Reads a whole file ("-": standard input) into a NUL-terminated buffer (bytes exactly
 * as stored). */
bool meshlm_arg_read_file(const char *cmd, const char *path, char **out, size_t *len);

#endif
