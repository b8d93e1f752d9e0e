/* CPU feature detection through cpuid. A feature counts only when the OS also saves the
 * register state it needs (XGETBV), or the first instruction using it would fault. */
#include "core/cpu.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

/* Linux hands out the AMX tile state (XTILEDATA, state component 18) only to a process
 * that asks for it; without leave the first tile instruction faults. */
static bool amx_leave(void) {
#if defined(__linux__) && defined(SYS_arch_prctl)
    const long req_xcomp_perm = 0x1023, xtiledata = 18;
    return syscall(SYS_arch_prctl, req_xcomp_perm, xtiledata) == 0;
#else
    return false;
#endif
}

static unsigned long long read_xcr0(void) {
    unsigned int lo, hi;
    /* xgetbv by its bytes: the mnemonic needs -mxsave, which the build must not require. */
    __asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}

static void detect(meshlm_cpu_caps *c) {
    unsigned int a, b, cx, d;
    if (!__get_cpuid(1, &a, &b, &cx, &d)) return;
    bool osxsave = cx & (1u << 27);
    bool fma = cx & (1u << 12), f16c = cx & (1u << 29), avx = cx & (1u << 28);
    if (!osxsave || !avx) return;
    unsigned long long xcr0 = read_xcr0();
    bool ymm = (xcr0 & 0x6) == 0x6;          /* SSE and AVX state */
    bool zmm = ymm && (xcr0 & 0xe0) == 0xe0; /* opmask and both halves of zmm */
    if (!ymm) return;
    c->fma = fma;
    c->f16c = f16c;
    if (!__get_cpuid_count(7, 0, &a, &b, &cx, &d)) return;
    c->avx2 = b & (1u << 5);
    if (zmm) {
        c->avx512f = b & (1u << 16);
        c->avx512bw = b & (1u << 30);
        c->avx512vl = b & (1u << 31);
        c->avx512vnni = cx & (1u << 11);
        bool tiles = (xcr0 & 0x60000) == 0x60000; /* XTILECFG and XTILEDATA */
        /* AMX-TILE, then the products: AMX-INT8 (bit 25) and AMX-BF16 (bit 22). */
        bool amx = tiles && (d & (1u << 24)) && (d & ((1u << 25) | (1u << 22))) && amx_leave();
        c->amx_int8 = amx && (d & (1u << 25));
        c->amx_bf16 = amx && (d & (1u << 22));
        if (__get_cpuid_count(7, 1, &a, &b, &cx, &d)) c->avx512bf16 = a & (1u << 5);
    }
}

/* The processor's brand string (CPUID leaves 0x80000002-4), spaces trimmed. */
static void brand(char *out, size_t n) {
    unsigned int r[12], top, b, c, d;
    if (!__get_cpuid(0x80000000u, &top, &b, &c, &d) || top < 0x80000004u) return;
    for (unsigned int i = 0; i < 3; i++) __get_cpuid(0x80000002u + i, &r[4 * i], &r[4 * i + 1], &r[4 * i + 2], &r[4 * i + 3]);
    char s[49];
    memcpy(s, r, 48);
    s[48] = 0;
    const char *start = s;
    while (*start == ' ') start++;
    size_t len = strlen(start);
    while (len && start[len - 1] == ' ') len--;
    if (len) snprintf(out, n, "%.*s", (int)len, start);
}
#else
static void detect(meshlm_cpu_caps *c) { (void)c; }
static void brand(char *out, size_t n) { (void)out, (void)n; }
#endif

static meshlm_cpu_caps caps;
static meshlm_cpu_path path;
static bool avx512, amx;
static char features[160];
static char name[64] = "unknown CPU";
static pthread_once_t once = PTHREAD_ONCE_INIT;

static bool has_avx2(const meshlm_cpu_caps *c) { return c->avx2 && c->fma && c->f16c; }

static bool has_avx512(const meshlm_cpu_caps *c) {
    return has_avx2(c) && c->avx512f && c->avx512bw && c->avx512vl && c->avx512vnni;
}

meshlm_cpu_path meshlm_cpu_choose(const meshlm_cpu_caps *c, const char *override, const char **warning) {
    meshlm_cpu_path best = has_avx2(c) ? MESHLM_CPU_AVX2 : MESHLM_CPU_SCALAR;
    if (warning) *warning = NULL;
    if (!override || !*override) return best;
    if (!strcmp(override, "scalar")) return MESHLM_CPU_SCALAR;
    if (!strcmp(override, "avx2")) {
        if (has_avx2(c)) return MESHLM_CPU_AVX2;
        if (warning) *warning = "MESHLM_CPU=avx2 but this CPU lacks AVX2, FMA or F16C";
        return best;
    }
    if (!strcmp(override, "avx512")) {
        if (has_avx512(c)) return MESHLM_CPU_AVX2;
        if (warning) *warning = "MESHLM_CPU=avx512 but this CPU lacks AVX2, FMA, F16C or AVX-512 F, BW, VL, VNNI";
        return best;
    }
    if (!strcmp(override, "amx")) {
        if (has_avx512(c) && c->amx_int8) return MESHLM_CPU_AVX2;
        if (warning) *warning = "MESHLM_CPU=amx but this CPU (or the OS) offers no AMX int8 with AVX-512 VNNI";
        return best;
    }
    if (warning) *warning = "MESHLM_CPU is none of scalar, avx2, avx512, amx";
    return best;
}

bool meshlm_cpu_choose_avx512(const meshlm_cpu_caps *c, const char *override) {
    if (!has_avx512(c)) return false;
    return !override || (strcmp(override, "scalar") && strcmp(override, "avx2"));
}

bool meshlm_cpu_choose_amx(const meshlm_cpu_caps *c, const char *override) {
    if (!meshlm_cpu_choose_avx512(c, override) || !c->amx_int8) return false;
    return !override || strcmp(override, "avx512");
}

static void init(void) {
    detect(&caps);
    brand(name, sizeof name);
    const char *warning;
    const char *override = getenv("MESHLM_CPU");
    path = meshlm_cpu_choose(&caps, override, &warning);
    avx512 = meshlm_cpu_choose_avx512(&caps, override);
    amx = meshlm_cpu_choose_amx(&caps, override);
    if (warning)
        fprintf(stderr, "meshlm: %s; using the %s path%s\n", warning, meshlm_cpu_path_name(path),
                avx512 ? " with AVX-512" : "");
    const struct {
        bool on;
        const char *name;
    } list[] = {{caps.avx2, "avx2"},         {caps.fma, "fma"},           {caps.f16c, "f16c"},
                {caps.avx512f, "avx512f"},   {caps.avx512bw, "avx512bw"}, {caps.avx512vl, "avx512vl"},
                {caps.avx512vnni, "avx512vnni"}, {caps.avx512bf16, "avx512bf16"}, {caps.amx_int8, "amx_int8"},
                {caps.amx_bf16, "amx_bf16"}};
    size_t len = 0;
    for (size_t i = 0; i < sizeof list / sizeof list[0]; i++)
        if (list[i].on) len += (size_t)snprintf(features + len, sizeof features - len, "%s ", list[i].name);
    snprintf(features + len, sizeof features - len, "path=%s%s%s", meshlm_cpu_path_name(path),
             avx512 ? "+avx512" : "", amx ? "+amx" : "");
}

const meshlm_cpu_caps *meshlm_cpu_detect(void) {
    pthread_once(&once, init);
    return &caps;
}

const char *meshlm_cpu_features(void) {
    pthread_once(&once, init);
    return features;
}

const char *meshlm_cpu_name(void) {
    pthread_once(&once, init);
    return name;
}

meshlm_cpu_path meshlm_cpu_path_get(void) {
    pthread_once(&once, init);
    return path;
}

bool meshlm_cpu_avx512_get(void) {
    pthread_once(&once, init);
    return avx512;
}

bool meshlm_cpu_amx_get(void) {
    pthread_once(&once, init);
    return amx;
}

const char *meshlm_cpu_path_name(meshlm_cpu_path p) { return p == MESHLM_CPU_AVX2 ? "avx2" : "scalar"; }
