#include "core/sync.h"

#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Long enough to catch a peer that is a few hundred nanoseconds behind on its own core,
 * short enough that an oversubscribed thread gives its core away quickly. */
enum { SPIN_ROUNDS = 2000, YIELD_ROUNDS = 4 };

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield" ::: "memory");
#endif
}

static inline int reached(uint32_t v, uint32_t target) { return (int32_t)(v - target) >= 0; }

void meshlm_flag_wait(meshlm_flag *f, uint32_t target) {
    for (int i = 0; i < SPIN_ROUNDS; i++) {
        if (reached(atomic_load_explicit(&f->value, memory_order_acquire), target)) return;
        cpu_relax();
    }
    for (int i = 0; i < YIELD_ROUNDS; i++) {
        if (reached(atomic_load_explicit(&f->value, memory_order_acquire), target)) return;
        sched_yield();
    }
    /* Registering before re-reading pairs with the setter's store-then-read of waiters
     * (both sequentially consistent), so either we see the new value or it sees us. */
    for (;;) {
        atomic_fetch_add(&f->waiters, 1);
        uint32_t v = atomic_load(&f->value);
        if (!reached(v, target)) syscall(SYS_futex, (uint32_t *)&f->value, FUTEX_WAIT_PRIVATE, v, NULL, NULL, 0);
        atomic_fetch_sub(&f->waiters, 1);
        if (reached(atomic_load_explicit(&f->value, memory_order_acquire), target)) return;
    }
}

static void wake(meshlm_flag *f) {
    if (atomic_load(&f->waiters)) syscall(SYS_futex, (uint32_t *)&f->value, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

void meshlm_flag_set(meshlm_flag *f, uint32_t value) {
    atomic_store(&f->value, value);
    wake(f);
}

void meshlm_flag_add(meshlm_flag *f) {
    atomic_fetch_add(&f->value, 1);
    wake(f);
}
