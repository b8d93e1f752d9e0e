/* Waiting without a mutex (device threads of a mesh, pool workers): a 32-bit flag that only grows, read by
 * spinning briefly and then sleeping on a futex, so many threads on few cores
 * hand their core to the thread they wait for instead of livelocking. */
#ifndef MESHLM_CORE_SYNC_H
#define MESHLM_CORE_SYNC_H

#include <stdatomic.h>
#include <stdint.h>

typedef struct meshlm_flag {
    _Atomic uint32_t value;   /* compared modulo 2^32, so it may wrap */
    _Atomic uint32_t waiters; /* sleepers, so a setter skips the wake syscall when none */
} meshlm_flag;

/* Returns once value >= target (modulo 2^32); the load that saw it is an acquire. */
void meshlm_flag_wait(meshlm_flag *f, uint32_t target);

/* Stores value with release order and wakes sleepers. Only one thread may set a flag. */
void meshlm_flag_set(meshlm_flag *f, uint32_t value);

/* Adds one with release order and wakes sleepers; any thread may add. */
void meshlm_flag_add(meshlm_flag *f);

static inline uint32_t meshlm_flag_get(meshlm_flag *f) {
    return atomic_load_explicit(&f->value, memory_order_acquire);
}

#endif
