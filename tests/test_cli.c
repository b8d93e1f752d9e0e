/* The meshlm command as a user meets it: exit codes, messages on stderr, text on stdout,
 * and the default model path (a synthetic model, announced as random). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "t.h"

/* Runs a shell command; returns its exit code and captures stdout and stderr. */
static int sh(const char *cmd, char *out, size_t out_cap, char *err, size_t err_cap) {
    char full[2048], errpath[] = "/tmp/meshlm-cli-err-XXXXXX";
    int fd = mkstemp(errpath);
    if (fd < 0) return -1;
    close(fd);
    snprintf(full, sizeof full, "%s 2>%s", cmd, errpath);
    FILE *p = popen(full, "r");
    if (!p) return -1;
    size_t n = fread(out, 1, out_cap - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    FILE *e = fopen(errpath, "rb");
    n = e ? fread(err, 1, err_cap - 1, e) : 0;
    err[n] = '\0';
    if (e) fclose(e);
    unlink(errpath);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static char out[1 << 16], err[1 << 16];

/* The string value of "key" in a JSON line, unescaped (the escapes meshlm writes). */
static bool json_string(const char *line, const char *key, char *val, size_t cap) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\": \"", key);
    const char *p = strstr(line, pat);
    if (!p) return false;
    p += strlen(pat);
    size_t n = 0;
    for (; *p && *p != '"' && n + 1 < cap; p++) {
        char c = *p;
        if (c == '\\') {
            c = *++p;
            if (c == 'n') c = '\n';
            else if (c == 't') c = '\t';
            else if (c == 'r') c = '\r';
            else if (c == 'u') {
                c = (char)strtol((char[]){p[1], p[2], p[3], p[4], 0}, NULL, 16);
                p += 4;
            }
        }
        val[n++] = c;
    }
    val[n] = '\0';
    return *p == '"';
}

static void expect_fail(const char *args, int code, const char *in_stderr) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s %s", MESHLM_BIN, args);
    int rc = sh(cmd, out, sizeof out, err, sizeof err);
    CHECK_MSG(rc == code, "'%s' exited %d, want %d; stderr: %s", args, rc, code, err);
    CHECK_MSG(strstr(err, in_stderr) != NULL, "'%s': stderr lacks '%s': %s", args, in_stderr, err);
    CHECK_MSG(out[0] == '\0', "'%s' printed to stdout: %s", args, out);
}

/* run -f FILE --batch N -o jsonl: one line per prompt in input order with every field,
 * each text the one `run -p` gives alone. */
static void check_batch_run(const char *dir) {
    char cmd[1024], path[512], line[4096], val[4096];
    snprintf(path, sizeof path, "%s/prompts.txt", dir);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return;
    fprintf(f, "Once upon a time\nThe \"quick\" fox\r\n\na\nHello, world! This is a longer prompt.\n");
    fclose(f);
    snprintf(cmd, sizeof cmd, "cd %s && %s run -f prompts.txt --batch 3 --chunk 5 -n 12 --temp 0 -t 2 -o jsonl "
             "--kv-mem 2M --page-size 32 --kv-type f32", dir,
             MESHLM_BIN);
    int rc = sh(cmd, out, sizeof out, err, sizeof err);
    CHECK_MSG(rc == 0, "batch run exited %d: %s", rc, err);
    static char all[sizeof out];
    memcpy(all, out, sizeof out);
    const char *p = all;
    for (int i = 0; i < 4; i++) {
        const char *nl = strchr(p, '\n');
        CHECK(nl != NULL);
        if (!nl) return;
        size_t n = (size_t)(nl - p) < sizeof line - 1 ? (size_t)(nl - p) : sizeof line - 1;
        memcpy(line, p, n);
        line[n] = '\0';
        p = nl + 1;
        char want[64];
        snprintf(want, sizeof want, "{\"index\": %d, ", i);
        CHECK_MSG(strncmp(line, want, strlen(want)) == 0, "line %d: %s", i, line);
        const char *fields[] = {"\"n_prompt\": ", "\"n_gen\": 12", "\"finish_reason\": \"length\"",
                                "\"timings\": {\"prompt_ms\": ", "\"gen_ms\": ", "\"tokens_per_s\": "};
        for (size_t k = 0; k < sizeof fields / sizeof fields[0]; k++)
            CHECK_MSG(strstr(line, fields[k]) != NULL, "line %d lacks %s: %s", i, fields[k], line);
        const char *unquoted[] = {"Once upon a time", "The \"quick\" fox", "a", "Hello, world! This is a longer prompt."};
        CHECK(json_string(line, "prompt", val, sizeof val) && strcmp(val, unquoted[i]) == 0);
        CHECK(json_string(line, "text", val, sizeof val));
        snprintf(cmd, sizeof cmd, "cd %s && %s run -p '%s' -n 12 --temp 0 -t 1", dir, MESHLM_BIN, unquoted[i]);
        rc = sh(cmd, out, sizeof out, err, sizeof err);
        size_t len = strlen(out);
        if (len && out[len - 1] == '\n') out[len - 1] = '\0';
        CHECK_MSG(rc == 0 && strcmp(out, val) == 0, "prompt %d: batch text '%s', alone '%s'", i, val, out);
    }
    CHECK(*p == '\0');
    expect_fail("run -p hi -o jsonl", 2, "--batch");
    expect_fail("run -p hi --batch 2 -o csv", 2, "-o");
    expect_fail("run -p hi --batch 2 --kv-mem 12Q", 2, "--kv-mem");
}

int main(void) {
    char dir[] = "/tmp/meshlm-cli-XXXXXX", cmd[1024];
    if (!mkdtemp(dir)) t_skip("cannot make a temporary directory");
    expect_fail("", 2, "usage");
    expect_fail("frobnicate", 2, "unknown command 'frobnicate'");
    expect_fail("run -m /nonexistent.gguf -p hi", 1, "/nonexistent.gguf");
    expect_fail("run -p hi -n abc", 2, "-n: 'abc' is not a whole number");
    expect_fail("run -p hi --top-p 2", 2, "--top-p");
    expect_fail("run -p hi -f x", 2, "exactly one of -p");
    expect_fail("run --bogus", 2, "unknown option '--bogus'");
    expect_fail("info -m /nonexistent.gguf", 1, "/nonexistent.gguf");

    /* A file that is not GGUF. */
    snprintf(cmd, sizeof cmd, "printf 'NOTAGGUF-and-some-bytes' > %s/bad.gguf", dir);
    CHECK(system(cmd) == 0);
    snprintf(cmd, sizeof cmd, "info -m %s/bad.gguf", dir);
    expect_fail(cmd, 1, "bad.gguf");

    /* No -m and no models/default.gguf: a synthetic model is made and announced. */
    snprintf(cmd, sizeof cmd, "cd %s && %s run -p 'Once upon a time' -n 8 --temp 0 -t 2", dir, MESHLM_BIN);
    int rc = sh(cmd, out, sizeof out, err, sizeof err);
    CHECK_MSG(rc == 0, "default run exited %d: %s", rc, err);
    CHECK_MSG(strstr(err, "RANDOM weights") != NULL, "stderr: %s", err);
    CHECK_MSG(strstr(err, "tokens/s") != NULL, "stderr: %s", err);
    size_t n = strlen(out);
    CHECK(n > 0 && out[n - 1] == '\n');
    char first[sizeof out];
    memcpy(first, out, n + 1);
    rc = sh(cmd, out, sizeof out, err, sizeof err); /* greedy: the same text again, model reused */
    CHECK(rc == 0 && strcmp(first, out) == 0);

    check_batch_run(dir);

    snprintf(cmd, sizeof cmd, "%s info -m %s/models/synthetic-tiny.gguf", MESHLM_BIN, dir);
    rc = sh(cmd, out, sizeof out, err, sizeof err);
    CHECK_MSG(rc == 0 && strstr(out, "token_embd.weight") && strstr(out, "architecture"), "info: %s %s", out, err);

    /* info --plan: fused steps by default, the generic sequence with --opt generic. */
    snprintf(cmd, sizeof cmd, "%s info -m %s/models/synthetic-tiny.gguf --plan --mode decode", MESHLM_BIN, dir);
    rc = sh(cmd, out, sizeof out, err, sizeof err);
    CHECK_MSG(rc == 0 && strstr(out, "plan decode") && strstr(out, "qkv_rope_kv") && strstr(out, "matmul_w13") &&
                  !strstr(out, "plan prefill"),
              "info --plan: %s %s", out, err);
    snprintf(cmd, sizeof cmd, "%s info -m %s/models/synthetic-tiny.gguf --plan --opt generic --mesh 1x2 --device 1",
             MESHLM_BIN, dir);
    rc = sh(cmd, out, sizeof out, err, sizeof err);
    CHECK_MSG(rc == 0 && strstr(out, "plan prefill") && strstr(out, "silu_mul") && strstr(out, "all_reduce") &&
                  !strstr(out, "matmul_w13"),
              "info --plan --opt generic: %s %s", out, err);
    snprintf(cmd, sizeof cmd, "info -m %s/models/synthetic-tiny.gguf --plan --mesh 1x2 --device 2", dir);
    expect_fail(cmd, 1, "--device 2");
    snprintf(cmd, sizeof cmd, "info -m %s/models/synthetic-tiny.gguf --plan --opt-set fuse_w13=sometimes", dir);
    expect_fail(cmd, 1, "sometimes");

    /* Every preset gives the same greedy text; an unknown preset is named. */
    snprintf(cmd, sizeof cmd, "cd %s && %s run -p 'Once upon a time' -n 8 --temp 0 -t 2 --opt generic", dir, MESHLM_BIN);
    rc = sh(cmd, out, sizeof out, err, sizeof err);
    CHECK_MSG(rc == 0 && strcmp(out, first) == 0, "--opt generic: '%s' vs '%s'", out, first);
    snprintf(cmd, sizeof cmd, "cd %s && %s run -p 'Once upon a time' -n 8 --temp 0 --mesh 1x2 --opt-set fuse_qkv=off",
             dir, MESHLM_BIN);
    rc = sh(cmd, out, sizeof out, err, sizeof err);
    CHECK_MSG(rc == 0 && strcmp(out, first) == 0, "--mesh 1x2 --opt-set fuse_qkv=off: '%s' vs '%s'", out, first);
    expect_fail("run -p hi --opt turbo", 1, "'turbo' is not a preset");

    /* bench: llama-bench's JSON fields plus the roofline ones, one row per test. */
    snprintf(cmd, sizeof cmd, "%s bench -m %s/models/synthetic-tiny.gguf -p 16 -n 8 -r 2 -t 1 --mesh 1x1,1x2 -o json",
             MESHLM_BIN, dir);
    rc = sh(cmd, out, sizeof out, err, sizeof err);
    CHECK_MSG(rc == 0, "bench exited %d: %s", rc, err);
    const char *fields[] = {"\"model_filename\"", "\"model_type\"", "\"model_size\"", "\"model_n_params\"",
                            "\"n_threads\"", "\"n_prompt\"", "\"n_gen\"", "\"test\": \"pp16\"", "\"test\": \"tg8\"",
                            "\"avg_ts\"", "\"stddev_ts\"", "\"avg_ns\"", "\"stddev_ns\"", "\"samples_ts\"",
                            "\"mesh\": \"1x2\"", "\"bytes_per_token\"", "\"membw_gbps\"", "\"peak_gflops\"",
                            "\"roofline_frac\"", "\"cpu_features\""};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        CHECK_MSG(strstr(out, fields[i]) != NULL, "bench json lacks %s: %s", fields[i], out);
    int rows = 0;
    for (const char *p = out; (p = strstr(p, "\"test\"")) != NULL; p++) rows++;
    CHECK(rows == 4);
    /* Batched rows (and a long-context row) as extra JSON objects. */
    snprintf(cmd, sizeof cmd,
             "%s bench -m %s/models/synthetic-tiny.gguf --batch 1,3 --batch-pp 8 --batch-tg 4 --ctx-long 300 -t 2 -o json",
             MESHLM_BIN, dir);
    rc = sh(cmd, out, sizeof out, err, sizeof err);
    CHECK_MSG(rc == 0, "bench --batch exited %d: %s", rc, err);
    const char *bfields[] = {"\"test\": \"batch\"", "\"n_batch\": 3", "\"n_kv\": 12", "\"tg_ts\"",
                             "\"tg_ts_per_user\"", "\"pp_ts\"", "\"test\": \"ctx_long\"", "\"n_kv\": 300",
                             "\"synthetic_kv\": true", "\"kv_type\": \"F16\""};
    for (size_t i = 0; i < sizeof bfields / sizeof bfields[0]; i++)
        CHECK_MSG(strstr(out, bfields[i]) != NULL, "bench --batch json lacks %s: %s", bfields[i], out);
    CHECK(strstr(out, "\"test\": \"pp") == NULL && out[0] == '[');
    /* --compare: one row per configuration, generic first; the generic rows allocate. */
    snprintf(cmd, sizeof cmd, "%s bench -m %s/models/synthetic-tiny.gguf --compare -p 8 -n 4 -r 1 -t 1 --mesh 2x2 -o json",
             MESHLM_BIN, dir);
    rc = sh(cmd, out, sizeof out, err, sizeof err);
    CHECK_MSG(rc == 0, "bench --compare exited %d: %s", rc, err);
    const char *cfields[] = {"\"config\": \"generic\"", "\"config\": \"performance\"", "\"config\": \"perf -fuse_rs\"",
                             "\"config\": \"perf -ring\"", "\"tg_ratio_generic\"", "\"allocs_per_decode_step\": 4.000",
                             "\"allocs_per_decode_step\": 0.000", "\"ms_per_token\"", "\"bytes_per_token\""};
    for (size_t i = 0; i < sizeof cfields / sizeof cfields[0]; i++)
        CHECK_MSG(strstr(out, cfields[i]) != NULL, "bench --compare json lacks %s: %s", cfields[i], out);
    expect_fail("bench -m /nonexistent.gguf -p 8 -n 0 -r 1", 1, "/nonexistent.gguf");
    expect_fail("bench -p x", 2, "-p");

    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    return t_done();
}
