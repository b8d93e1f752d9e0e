/* Probes of the machine's limits, measured in the same run as a benchmark so its figures
 * can be read as fractions of them: read bandwidth and peak floating-point rate. */
#ifndef MESHLM_APPS_BENCH_PROBE_H
#define MESHLM_APPS_BENCH_PROBE_H

#include <stddef.h>

enum { MESHLM_BW_MAX_SAMPLES = 512 };

/* Read-bandwidth samples at one thread count, one per pass, pooled over every probe of a
 * run: a shared machine's bandwidth drifts, so a limit is the median of many passes taken
 * before, between and after the tests, and its range says how far the machine wandered. */
typedef struct meshlm_bw_series {
    int threads, n;
    double gbps[MESHLM_BW_MAX_SAMPLES];
} meshlm_bw_series;

/* Adds passes samples to s: s->threads threads each stream a disjoint part of a bytes-sized
 * buffer (larger than the caches) with the wide loads the decode kernels use, and a pass's
 * rate is the bytes over the time from the start to the last thread's end. Returns 0, or
 * -1 if memory or threads run out. */
int meshlm_probe_read(meshlm_bw_series *s, size_t bytes, int passes);

/* The median of s's samples and their range; all 0 when it has none. */
void meshlm_bw_stats(const meshlm_bw_series *s, double *median, double *lo, double *hi);

/* Peak f32 GFLOP/s of n_threads: independent fused multiply-adds in registers, with the
 * widest vectors the kernels use here (AVX-512 where its tier runs, else AVX2+FMA, else
 * scalar), so MESHLM_CPU=avx2 on a larger CPU is held to an AVX2 machine's peak. */
double meshlm_probe_peak_gflops(int n_threads);

/* Peak int8 multiply-add rate of n_threads in G ops/s (a product and a sum count two, as
 * FLOPs do), with the int8 dot the kernels use here: AMX tiles where the AMX tier is on,
 * else AVX-512 VNNI, else AVX2's vpmaddubsw and vpmaddwd; 0 on the scalar path. The
 * integer-path prefill rows are fractions of this one. */
double meshlm_probe_peak_int8_gops(int n_threads);

/* Peak BF16 GFLOP/s of n_threads on AMX-BF16 tiles where the AMX tier runs them, else 0
 * (BF16 rows are then fractions of the FMA peak). */
double meshlm_probe_peak_bf16_gflops(int n_threads);

#endif
