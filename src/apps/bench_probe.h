/* Probes of the machine's limits, measured in the same run as a benchmark so its figures
 * can be read as fractions of them: read bandwidth and peak floating-point rate. */
#ifndef MESHLM_APPS_BENCH_PROBE_H
#define MESHLM_APPS_BENCH_PROBE_H

#include <stddef.h>

/* Read bandwidth in GB/s: n_threads sum disjoint parts of a bytes-sized buffer (larger than
 * the caches); the best of a few passes. Returns a negative value if memory runs out. */
double meshlm_probe_read_gbps(int n_threads, size_t bytes);

/* Peak f32 GFLOP/s of n_threads: independent fused multiply-adds in registers, with the
 * widest vectors this CPU has (AVX-512, AVX2+FMA, or scalar), so prefill fractions are of
 * the machine's peak, whichever path the kernels take. */
double meshlm_probe_peak_gflops(int n_threads);

/* Peak int8 multiply-add rate of n_threads in G ops/s (a product and a sum count two, as
 * FLOPs do), with the widest int8 dot the kernels use here: AMX tiles where the AMX tier
 * is on, else AVX-512 VNNI, else 0 (no int8 peak beyond the FMA one). The integer-path
 * prefill rows are fractions of this one. */
double meshlm_probe_peak_int8_gops(int n_threads);

/* Peak BF16 GFLOP/s of n_threads on AMX-BF16 tiles where the AMX tier runs them, else 0
 * (BF16 rows are then fractions of the FMA peak). */
double meshlm_probe_peak_bf16_gflops(int n_threads);

#endif
