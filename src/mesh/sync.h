/* Waiting inside the mesh layer without a mutex: a 32-bit flag that only grows, read by
 * spinning briefly and then sleeping on a futex, so many device threads on few cores
 * hand their core to the thread they wait for instead of livelocking. */
#ifndef MESHLM_MESH_SYNC_H
#define MESHLM_MESH_SYNC_H

#include <stdatomic.h>
#include <stdint.h>

typedef struct mesh_flag {
    _Atomic uint32_t value;   /* compared modulo 2^32, so it may wrap */
    _Atomic uint32_t waiters; /* sleepers, so a setter skips the wake syscall when none */
} mesh_flag;

/* Returns once value >= target (modulo 2^32); the load that saw it is an acquire. */
void mesh_flag_wait(mesh_flag *f, uint32_t target);

/* Stores value with release order and wakes sleepers. Only one thread may set a flag. */
void mesh_flag_set(mesh_flag *f, uint32_t value);

/* Adds one with release order and wakes sleepers; any thread may add. */
void mesh_flag_add(mesh_flag *f);

static inline uint32_t mesh_flag_get(mesh_flag *f) {
    return atomic_load_explicit(&f->value, memory_order_acquire);
}

#endif
