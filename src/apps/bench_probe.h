/* Probes of the machine's limits, measured in the same run as a benchmark so its figures
 * can be read as fractions of them: read bandwidth and peak floating-point rate. */
#ifndef MESHLM_APPS_BENCH_PROBE_H
#define MESHLM_APPS_BENCH_PROBE_H

#include <stddef.h>

enum { MESHLM_RATE_MAX_SAMPLES = 512 };

/* Samples of one rate (GB/s read, or G operations/s) at one thread count, one per pass,
 * pooled over every probe of a run: a shared machine drifts, so a limit is the median of
 * many passes taken before, between and after the tests, and its range says how far the
 * machine wandered. */
typedef struct meshlm_rate_series {
    int threads, n;
    double v[MESHLM_RATE_MAX_SAMPLES];
} meshlm_rate_series;

/* The median of s's samples and their range; all 0 when it has none. */
void meshlm_series_stats(const meshlm_rate_series *s, double *median, double *lo, double *hi);

/* Adds passes samples to s: s->threads threads each stream a disjoint part of a bytes-sized
 * buffer (larger than the caches) with the wide loads the decode kernels use, and a pass's
 * rate is the bytes over the time from the start to the last thread's end. Returns 0, or
 * -1 if memory or threads run out. */
int meshlm_probe_read(meshlm_rate_series *s, size_t bytes, int passes);

typedef enum meshlm_peak_kind {
    /* f32 fused multiply-adds with the widest vectors the kernels use here (AVX-512 where
     * its tier runs, else AVX2+FMA, else scalar), so MESHLM_CPU=avx2 on a larger CPU is
     * held to an AVX2 machine's peak. GFLOP/s. */
    MESHLM_PEAK_FMA = 0,
    /* The int8 dot the kernels use here: AMX tiles where the AMX tier is on, else AVX-512
     * VNNI, else AVX2's vpmaddubsw and vpmaddwd; none on the scalar path. G ops/s (a
     * product and a sum count two, as FLOPs do); the integer-path prefill rows are
     * fractions of it. */
    MESHLM_PEAK_INT8 = 1,
    /* BF16 on AMX tiles where the AMX tier runs them, else none (BF16 rows are then
     * fractions of the FMA peak). GFLOP/s. */
    MESHLM_PEAK_BF16 = 2,
    MESHLM_PEAK_KINDS = 3,
} meshlm_peak_kind;

/* Adds passes samples of kind's peak rate at s->threads threads: in a pass every thread
 * runs independent chains of the instruction in registers once, and the rate is their
 * operations over the time to the last thread's end. Adds none where this CPU's kernels
 * have no such instruction. Returns 0, or -1 if the threads cannot start. */
int meshlm_probe_peak(meshlm_rate_series *s, meshlm_peak_kind kind, int passes);

#endif
