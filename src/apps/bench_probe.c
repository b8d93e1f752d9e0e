#include "apps/bench_probe.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/amx.h"
#include "core/cpu.h"
#include "core/pool.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define HAVE_X86 1
#endif

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

enum { MAX_READERS = 64 };

typedef struct read_job {
    const uint64_t *buf;
    size_t n;
    uint64_t sink[MAX_READERS * 8]; /* one slot per thread, 8 apart: no false sharing between sums */
} read_job;

#ifdef HAVE_X86
/* 256-bit loads into four independent integer sums: the loop is bound by memory, not by
 * the core (plain 64-bit loads cap one core well below what it can pull). */
__attribute__((target("avx2"))) static uint64_t sum_avx2(const uint64_t *p, long lo, long hi) {
    __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
    long i = lo;
    for (; i + 16 <= hi; i += 16) {
        a = _mm256_add_epi64(a, _mm256_loadu_si256((const __m256i *)(p + i)));
        b = _mm256_add_epi64(b, _mm256_loadu_si256((const __m256i *)(p + i + 4)));
        c = _mm256_add_epi64(c, _mm256_loadu_si256((const __m256i *)(p + i + 8)));
        d = _mm256_add_epi64(d, _mm256_loadu_si256((const __m256i *)(p + i + 12)));
    }
    uint64_t out[4], s = 0;
    _mm256_storeu_si256((__m256i *)out, _mm256_add_epi64(_mm256_add_epi64(a, b), _mm256_add_epi64(c, d)));
    for (; i < hi; i++) s += p[i];
    return s + out[0] + out[1] + out[2] + out[3];
}

/* The same with 512-bit loads, which the decode kernels use where the CPU has them. */
__attribute__((target("avx512f"))) static uint64_t sum_avx512(const uint64_t *p, long lo, long hi) {
    __m512i a = _mm512_setzero_si512(), b = a, c = a, d = a;
    long i = lo;
    for (; i + 32 <= hi; i += 32) {
        a = _mm512_add_epi64(a, _mm512_loadu_si512(p + i));
        b = _mm512_add_epi64(b, _mm512_loadu_si512(p + i + 8));
        c = _mm512_add_epi64(c, _mm512_loadu_si512(p + i + 16));
        d = _mm512_add_epi64(d, _mm512_loadu_si512(p + i + 24));
    }
    /* Summed unsigned: the reduction intrinsic adds as signed, which may overflow. */
    uint64_t out[8], s = 0;
    _mm512_storeu_si512(out, _mm512_add_epi64(_mm512_add_epi64(a, b), _mm512_add_epi64(c, d)));
    for (int k = 0; k < 8; k++) s += out[k];
    for (; i < hi; i++) s += p[i];
    return s;
}
#endif

/* Integer sums: no reassociation limits; the result is kept so the compiler cannot drop
 * the reads. */
static void read_part(void *arg, int ith, int nth) {
    read_job *j = arg;
    long lo, hi;
    meshlm_split_range((long)j->n, ith, nth, &lo, &hi);
#ifdef HAVE_X86
    if (meshlm_cpu_path_get() == MESHLM_CPU_AVX2) {
        uint64_t s = meshlm_cpu_avx512_get() ? sum_avx512(j->buf, lo, hi) : sum_avx2(j->buf, lo, hi);
        j->sink[ith * 8] = s;
        return;
    }
#endif
    uint64_t a = 0, b = 0, c = 0, d = 0;
    long i = lo;
    for (; i + 4 <= hi; i += 4) {
        a += j->buf[i];
        b += j->buf[i + 1];
        c += j->buf[i + 2];
        d += j->buf[i + 3];
    }
    for (; i < hi; i++) a += j->buf[i];
    j->sink[ith * 8] = a + b + c + d;
}

int meshlm_probe_read(meshlm_rate_series *s, size_t bytes, int passes) {
    meshlm_pool *pool;
    if (meshlm_pool_create(s->threads < 1 ? 1 : s->threads > MAX_READERS ? MAX_READERS : s->threads, &pool) != 0)
        return -1;
    uint64_t *buf = malloc(bytes);
    if (!buf) {
        meshlm_pool_free(pool);
        return -1;
    }
    memset(buf, 1, bytes); /* real pages, not the shared zero page */
    read_job job = {.buf = buf, .n = bytes / sizeof(uint64_t)};
    meshlm_pool_run(pool, read_part, &job); /* warm: pages mapped, threads awake */
    for (int pass = 0; pass < passes && s->n < MESHLM_RATE_MAX_SAMPLES; pass++) {
        double t0 = now_s();
        meshlm_pool_run(pool, read_part, &job);
        s->v[s->n++] = (double)bytes / (now_s() - t0) / 1e9;
    }
    free(buf);
    meshlm_pool_free(pool);
    return 0;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void meshlm_series_stats(const meshlm_rate_series *s, double *median, double *lo, double *hi) {
    *median = *lo = *hi = 0.0;
    if (s->n < 1) return;
    double v[MESHLM_RATE_MAX_SAMPLES];
    memcpy(v, s->v, (size_t)s->n * sizeof *v);
    qsort(v, (size_t)s->n, sizeof *v, by_value);
    *median = s->n % 2 ? v[s->n / 2] : 0.5 * (v[s->n / 2 - 1] + v[s->n / 2]);
    *lo = v[0];
    *hi = v[s->n - 1];
}

enum { FMA_ITERS = 20000000 };

typedef struct flop_job {
    double flops[64];
    bool avx2, avx512; /* the FMA probe's widths */
    bool vnni, amx;    /* the int8 probe's instructions */
} flop_job;

#ifdef HAVE_X86
/* Ten independent accumulators cover the FMA latency on current cores. */
__attribute__((target("avx2,fma"))) static double fma_avx2(void) {
    __m256 acc[10], mul = _mm256_set1_ps(0.999999f), add = _mm256_set1_ps(1e-7f);
    for (int k = 0; k < 10; k++) acc[k] = _mm256_set1_ps((float)k);
    for (long i = 0; i < FMA_ITERS / 10; i++)
        for (int k = 0; k < 10; k++) acc[k] = _mm256_fmadd_ps(acc[k], mul, add);
    __m256 s = acc[0];
    for (int k = 1; k < 10; k++) s = _mm256_add_ps(s, acc[k]);
    float out[8];
    _mm256_storeu_ps(out, s);
    return out[0] != 12345.0f ? (double)FMA_ITERS / 10 * 10 * 8 * 2 : 0.0;
}

/* The same with 512-bit registers: the machine's peak is that of its widest FMA. */
__attribute__((target("avx512f"))) static double fma_avx512(void) {
    __m512 acc[10], mul = _mm512_set1_ps(0.999999f), add = _mm512_set1_ps(1e-7f);
    for (int k = 0; k < 10; k++) acc[k] = _mm512_set1_ps((float)k);
    for (long i = 0; i < FMA_ITERS / 10; i++)
        for (int k = 0; k < 10; k++) acc[k] = _mm512_fmadd_ps(acc[k], mul, add);
    __m512 s = acc[0];
    for (int k = 1; k < 10; k++) s = _mm512_add_ps(s, acc[k]);
    float out[16];
    _mm512_storeu_ps(out, s);
    return out[0] != 12345.0f ? (double)FMA_ITERS / 10 * 10 * 16 * 2 : 0.0;
}
#endif

static double fma_scalar(void) {
    float acc[8], mul = 0.999999f, add = 1e-7f;
    for (int k = 0; k < 8; k++) acc[k] = (float)k;
    for (long i = 0; i < FMA_ITERS / 8; i++)
        for (int k = 0; k < 8; k++) acc[k] = acc[k] * mul + add;
    float s = 0;
    for (int k = 0; k < 8; k++) s += acc[k];
    return s != 12345.0f ? (double)FMA_ITERS / 8 * 8 * 2 : 0.0;
}

static void flop_part(void *arg, int ith, int nth) {
    flop_job *j = arg;
    (void)nth;
#ifdef HAVE_X86
    double f = j->avx512 ? fma_avx512() : j->avx2 ? fma_avx2() : fma_scalar();
#else
    double f = fma_scalar();
#endif
    if (ith < 64) j->flops[ith] = f;
}

enum { INT8_ITERS = 2000000 };

#ifdef HAVE_X86
/* Four independent tile products in registers (tiles 0-3 C, 4-5 A, 6-7 B): 16 x 16 x 64
 * int8 multiply-adds each, or with bf16 16 x 16 x 32 BF16 ones. */
__attribute__((target("amx-tile,amx-int8,amx-bf16"))) static double tiles(bool bf16) {
    static const uint8_t zero[1024] __attribute__((aligned(64)));
    static const meshlm_tile_config c = {.palette = 1,
                                  .colsb = {64, 64, 64, 64, 64, 64, 64, 64},
                                  .rows = {16, 16, 16, 16, 16, 16, 16, 16}};
    _tile_loadconfig(&c);
    _tile_loadd(4, zero, 64);
    _tile_loadd(5, zero, 64);
    _tile_loadd(6, zero, 64);
    _tile_loadd(7, zero, 64);
    for (long i = 0; i < INT8_ITERS / 4; i++) {
        if (bf16) {
            _tile_dpbf16ps(0, 4, 6);
            _tile_dpbf16ps(1, 4, 7);
            _tile_dpbf16ps(2, 5, 6);
            _tile_dpbf16ps(3, 5, 7);
        } else {
            _tile_dpbssd(0, 4, 6);
            _tile_dpbssd(1, 4, 7);
            _tile_dpbssd(2, 5, 6);
            _tile_dpbssd(3, 5, 7);
        }
    }
    _tile_release();
    return (double)INT8_ITERS * 16 * 16 * (bf16 ? 32 : 64) * 2;
}

static void bf16_part(void *arg, int ith, int nth) {
    flop_job *j = arg;
    (void)nth;
    if (ith < 64) j->flops[ith] = tiles(true);
}

/* Ten independent vpdpbusd chains on zmm: 64 multiply-adds each. */
__attribute__((target("avx512f,avx512vnni"))) static double int8_vnni(void) {
    __m512i acc[10], a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(-2);
    for (int k = 0; k < 10; k++) acc[k] = _mm512_set1_epi32(k);
    for (long i = 0; i < INT8_ITERS * 8L / 10; i++)
        for (int k = 0; k < 10; k++) acc[k] = _mm512_dpbusd_epi32(acc[k], a, b);
    __m512i s = acc[0];
    for (int k = 1; k < 10; k++) s = _mm512_add_epi32(s, acc[k]);
    int32_t out[16];
    _mm512_storeu_si512(out, s);
    return out[0] != 12345 ? (double)(INT8_ITERS * 8L / 10) * 10 * 64 * 2 : 0.0;
}

/* Without VNNI the kernels' int8 dot is vpmaddubsw, vpmaddwd and vpaddd: 32 multiply-adds
 * per three instructions, ten independent chains of them. Each chain has its own weights
 * and the activations are opaque each pass, so no product can be hoisted or shared. */
__attribute__((target("avx2"))) static double int8_avx2(void) {
    __m256i acc[10], b[10], a = _mm256_set1_epi8(3), ones = _mm256_set1_epi16(1);
    for (int k = 0; k < 10; k++) acc[k] = _mm256_set1_epi32(k), b[k] = _mm256_set1_epi8((char)(2 * k - 9));
    for (long i = 0; i < INT8_ITERS * 8L / 10; i++) {
        __asm__ volatile("" : "+x"(a));
        for (int k = 0; k < 10; k++)
            acc[k] = _mm256_add_epi32(acc[k], _mm256_madd_epi16(_mm256_maddubs_epi16(a, b[k]), ones));
    }
    __m256i s = acc[0];
    for (int k = 1; k < 10; k++) s = _mm256_add_epi32(s, acc[k]);
    int32_t out[8];
    _mm256_storeu_si256((__m256i *)out, s);
    return out[0] != 12345 ? (double)(INT8_ITERS * 8L / 10) * 10 * 32 * 2 : 0.0;
}
#endif

static void int8_part(void *arg, int ith, int nth) {
    flop_job *j = arg;
    (void)nth;
    double f = 0.0;
#ifdef HAVE_X86
    f = j->amx ? tiles(false) : j->vnni ? int8_vnni() : j->avx2 ? int8_avx2() : 0.0;
#endif
    if (ith < 64) j->flops[ith] = f;
}

int meshlm_probe_peak(meshlm_rate_series *s, meshlm_peak_kind kind, int passes) {
    const bool simd = meshlm_cpu_path_get() == MESHLM_CPU_AVX2;
    flop_job job = {.avx2 = meshlm_cpu_path_get() != MESHLM_CPU_SCALAR, .avx512 = meshlm_cpu_avx512_get()};
    void (*part)(void *, int, int) = flop_part;
    if (kind == MESHLM_PEAK_INT8) {
        if (!simd) return 0;
        job = (flop_job){.avx2 = true, .vnni = meshlm_cpu_avx512_get(), .amx = meshlm_cpu_amx_get()};
        part = int8_part;
    } else if (kind == MESHLM_PEAK_BF16) {
#ifdef HAVE_X86
        if (!meshlm_cpu_amx_get() || !meshlm_cpu_detect()->amx_bf16) return 0;
        job = (flop_job){.amx = true};
        part = bf16_part;
#else
        return 0;
#endif
    }
    const int n_threads = s->threads < 1 ? 1 : s->threads > 64 ? 64 : s->threads;
    meshlm_pool *pool;
    if (meshlm_pool_create(n_threads, &pool) != 0) return -1;
    for (int pass = 0; pass < passes && s->n < MESHLM_RATE_MAX_SAMPLES; pass++) {
        double t0 = now_s(), total = 0.0;
        meshlm_pool_run(pool, part, &job);
        double dt = now_s() - t0;
        for (int i = 0; i < n_threads; i++) total += job.flops[i];
        if (total > 0.0) s->v[s->n++] = total / dt / 1e9;
    }
    meshlm_pool_free(pool);
    return 0;
}
