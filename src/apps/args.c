#include "apps/args.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool meshlm_arg_take(int argc, char **argv, int *i, const char *flag, const char *alias, const char **value,
                     bool *missing) {
    const char *a = argv[*i];
    if (strcmp(a, flag) != 0 && !(alias && strcmp(a, alias) == 0)) return false;
    if (*i + 1 >= argc) {
        *missing = true;
        return true;
    }
    *value = argv[++*i];
    return true;
}

bool meshlm_arg_int(const char *cmd, const char *flag, const char *s, int64_t lo, int64_t hi, int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "meshlm %s: %s: '%s' is not a whole number in [%lld, %lld]\n", cmd, flag, s,
                (long long)lo, (long long)hi);
        return false;
    }
    *out = v;
    return true;
}

bool meshlm_arg_float(const char *cmd, const char *flag, const char *s, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi) {
        fprintf(stderr, "meshlm %s: %s: '%s' is not a number in [%g, %g]\n", cmd, flag, s, lo, hi);
        return false;
    }
    *out = v;
    return true;
}

bool meshlm_arg_bytes(const char *cmd, const char *flag, const char *s, size_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    unsigned shift = 0;
    if (end != s) {
        if (*end == 'K' || *end == 'k') shift = 10;
        if (*end == 'M' || *end == 'm') shift = 20;
        if (*end == 'G' || *end == 'g') shift = 30;
        if (shift) end++;
    }
    if (errno || end == s || *end || s[0] == '-' || v == 0 || v > (1ull << 50) >> shift) {
        fprintf(stderr, "meshlm %s: %s: '%s' is not a size in bytes (e.g. 512M, 2G)\n", cmd, flag, s);
        return false;
    }
    *out = (size_t)(v << shift);
    return true;
}

const char *meshlm_arg_opt_set_add(const char *cmd, const char *opt_set, const char *item, char *buf, size_t cap) {
    int n = opt_set && *opt_set ? snprintf(buf, cap, "%s,%s", item, opt_set) : snprintf(buf, cap, "%s", item);
    if (n >= 0 && (size_t)n < cap) return buf;
    fprintf(stderr, "meshlm %s: --opt-set is too long (at most %zu characters)\n", cmd, cap - 1 - strlen(item));
    return NULL;
}

bool meshlm_arg_read_file(const char *cmd, const char *path, char **out, size_t *len) {
    bool std_in = !strcmp(path, "-");
    FILE *f = std_in ? stdin : fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "meshlm %s: cannot open '%s': %s\n", cmd, path, strerror(errno));
        return false;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        char *grown = realloc(buf, cap * 2 + 1);
        if (!grown) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = grown;
        cap *= 2;
    }
    bool ok = buf && !ferror(f);
    if (!std_in) fclose(f);
    if (!ok) {
        fprintf(stderr, "meshlm %s: cannot read '%s'\n", cmd, path);
        free(buf);
        return false;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return true;
}
