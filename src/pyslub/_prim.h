/*
 * pyslub primitives: the only code that needs real pointers, atomics or the TSC.
 * Their plain-Python twins live in _prim.py; everything above them is one source for both.
 *
 *   pyslub_cmpxchg_double()          cmpxchg_double_slab(): LOCKed cmpxchg16b on (freelist, counters)
 *   pyslub_this_cpu_cmpxchg_double() this_cpu_cmpxchg_double(): cmpxchg16b WITHOUT lock, like the
 *                                    kernel's %gs-relative per-cpu op (it only has to be atomic
 *                                    against the same cpu)
 *   pyslub_tsc_start/stop()          time_bench's serialised TSC reads (Intel doc #324264 pattern)
 *   pyslub_barrier()                 compiler barrier
 *
 * Both pair operands must be 16-byte aligned (the layout guarantees it).
 */
#ifndef PYSLUB_PRIM_H
#define PYSLUB_PRIM_H
#include <stdint.h>

#if defined(__x86_64__)
static inline int pyslub_cmpxchg_double(long long *p, long long o1, long long o2,
                                        long long n1, long long n2)
{
    unsigned char ok;
    __asm__ __volatile__("lock; cmpxchg16b %1\n\tsete %0"
                         : "=q"(ok), "+m"(*(volatile __int128 *)p), "+a"(o1), "+d"(o2)
                         : "b"(n1), "c"(n2)
                         : "cc", "memory");
    return ok;
}

static inline int pyslub_this_cpu_cmpxchg_double(long long *p, long long o1, long long o2,
                                                 long long n1, long long n2)
{
    unsigned char ok;
    __asm__ __volatile__("cmpxchg16b %1\n\tsete %0"
                         : "=q"(ok), "+m"(*(volatile __int128 *)p), "+a"(o1), "+d"(o2)
                         : "b"(n1), "c"(n2)
                         : "cc", "memory");
    return ok;
}

static inline unsigned long long pyslub_tsc_start(void)
{
    unsigned int lo, hi;
    __asm__ __volatile__("cpuid\n\trdtsc" : "=a"(lo), "=d"(hi) : "a"(0) : "rbx", "rcx");
    return ((unsigned long long)hi << 32) | lo;
}

static inline unsigned long long pyslub_tsc_stop(void)
{
    unsigned int lo, hi;
    __asm__ __volatile__("rdtscp\n\tmov %%eax, %0\n\tmov %%edx, %1\n\tcpuid"
                         : "=r"(lo), "=r"(hi) : : "rax", "rbx", "rcx", "rdx");
    return ((unsigned long long)hi << 32) | lo;
}
#else
/* Portable fallback: same semantics, no lock-free guarantee, no cycle counter. */
#include <time.h>
static inline int pyslub_cmpxchg_double(long long *p, long long o1, long long o2,
                                        long long n1, long long n2)
{
    if (p[0] != o1 || p[1] != o2) return 0;
    p[0] = n1; p[1] = n2; return 1;
}
#define pyslub_this_cpu_cmpxchg_double pyslub_cmpxchg_double
static inline unsigned long long pyslub_tsc_start(void)
{
    struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}
#define pyslub_tsc_stop pyslub_tsc_start
#endif

static inline unsigned long long pyslub_wallclock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (unsigned long long)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

#define pyslub_barrier() __asm__ __volatile__("" ::: "memory")
#endif
