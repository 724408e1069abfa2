/*
 * pyslub primitives: the only code that needs real pointers, atomics, futexes, thread identity
 * or the TSC.  Their plain-Python twins live in _prim.py (uncompiled pyslub runs every public
 * operation under one lock per Memory, so the twins are plain loads and stores).  Everything
 * above them is one source for both.
 *
 *   biased locks   pyslub_membarrier(): the slow side of a biased cpu record, which its one
 *                  user then updates with plain stores, no atomic (slab.py's header)
 *   pair swaps     pyslub_cmpxchg_double()       cmpxchg_double_slab(): LOCKed cmpxchg16b on a
 *                                                slab's (freelist, counters)
 *                  pyslub_this_cpu_cmpxchg_double() this_cpu_cmpxchg_double() on a cpu's
 *                                                (freelist, tid).  Also LOCKed: in userspace two
 *                                                threads running as the same logical cpu can be
 *                                                on two cores at once (the kernel's %gs-relative
 *                                                unlocked form is only atomic against its own cpu)
 *   words          pyslub_cmpxchg(), xchg(), fetch_add(), load_acquire(), store_release(),
 *                  load_seq_cst()
 *   locks          spinlock (per-cpu local lock: owner tid in the word, spin then yield)
 *                  mutex    (list_lock, barn lock, page allocator: a futex word, owner tid in
 *                            the low 30 bits and FUTEX_WAITERS in bit 31, as the kernel's robust
 *                            futexes lay it out; works across processes in a shared mapping)
 *                  Both are robust: a waiter that finds the holder dead takes the lock over
 *                  and is told so (return 1), like pthread's EOWNERDEAD
 *   liveness       pyslub_alive(): is a thread / process id running (zombies are dead)
 *   identity       pyslub_gettid() (cached per thread; reset in a forked child), getcpu()
 *   TLS            pyslub_tls: the calling thread's last (Memory token, cpu, seat) binding
 *   clocks         time_bench's serialised TSC reads (Intel doc #324264 pattern), wall clock
 *
 * Pair operands must be 16-byte aligned (the layout guarantees it).
 */
#ifndef PYSLUB_PRIM_H
#define PYSLUB_PRIM_H
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

typedef long long pyslub_i64;

/* ---- pair swaps ----------------------------------------------------------------------------- */
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
#define pyslub_cpu_relax() __builtin_ia32_pause()
#else
/* Portable fallback: a 16-byte __atomic CAS (libatomic may lock), no cycle counter. */
static inline int pyslub_cmpxchg_double(long long *p, long long o1, long long o2,
                                        long long n1, long long n2)
{
    __int128 o = ((__int128)(unsigned long long)o2 << 64) | (unsigned long long)o1;
    __int128 n = ((__int128)(unsigned long long)n2 << 64) | (unsigned long long)n1;
    return __atomic_compare_exchange_n((__int128 *)p, &o, n, 0, __ATOMIC_SEQ_CST,
                                       __ATOMIC_SEQ_CST);
}
static inline unsigned long long pyslub_tsc_start(void)
{
    struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}
#define pyslub_tsc_stop pyslub_tsc_start
#define pyslub_cpu_relax() __asm__ __volatile__("" ::: "memory")
#endif
#define pyslub_this_cpu_cmpxchg_double pyslub_cmpxchg_double


static inline unsigned long long pyslub_wallclock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (unsigned long long)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

#define pyslub_barrier() __asm__ __volatile__("" ::: "memory")

/* ---- word atomics --------------------------------------------------------------------------- */
static inline int pyslub_cmpxchg(long long *p, long long o, long long n)
{
    return __atomic_compare_exchange_n(p, &o, n, 0, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED);
}
static inline long long pyslub_xchg(long long *p, long long v)
{
    return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST);
}
static inline long long pyslub_fetch_add(long long *p, long long v)
{
    return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
}
static inline long long pyslub_load_acquire(long long *p)
{
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}
static inline void pyslub_store_release(long long *p, long long v)
{
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
}
/* A load in the seq_cst total order: with fetch_add on both sides it makes the store-buffering
 * handshake (each side adds to its word, then reads the other's) exact, as the fork protocol of
 * cache.py needs.  On x86 the same MOV as load_acquire (the cost is in the locked add). */
static inline long long pyslub_load_seq_cst(long long *p)
{
    return __atomic_load_n(p, __ATOMIC_SEQ_CST);
}

/* ---- word arithmetic ------------------------------------------------------------------------ */
/* swab64(): the bytes of a word in reverse order (the hardened free pointer's address term). */
static inline long long pyslub_swab(long long x)
{
    return (long long)__builtin_bswap64((unsigned long long)x);
}
/* splitmix64's output function: a well-mixed word from a counter (shuffle_freelist's start
 * positions; the kernel draws them from get_random_u32_below()). */
static inline long long pyslub_mix64(long long x)
{
    unsigned long long z = (unsigned long long)x + 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return (long long)(z ^ (z >> 31));
}

/* ---- thread identity ------------------------------------------------------------------------ */
/* initial-exec: one %fs-relative load instead of a __tls_get_addr call per read (the module is
 * dlopen'ed, but these 32 bytes fit glibc's static TLS surplus). */
#define PYSLUB_TLS __thread __attribute__((tls_model("initial-exec")))
static PYSLUB_TLS long long pyslub_tid_cache;
static int pyslub_tid_atfork;

/* A forked child inherits the parent thread's TLS: forget the cached tid. */
static void pyslub_tid_reset(void) { pyslub_tid_cache = 0; }

/* A thread's first gettid: the syscall, cached (out of line: pyslub_gettid() is inlined into
 * every fast path, whose inlining budget this would use up.  Not "cold": gcc would move the
 * call into a .cold part of each caller, and a jump into it from a native benchmark loop
 * makes callgrind's --toggle-collect=..._native_*bench_* stop counting). */
static __attribute__((noinline)) long long pyslub_gettid_first(void)
{
    if (!__atomic_exchange_n(&pyslub_tid_atfork, 1, __ATOMIC_RELAXED))
        pthread_atfork(NULL, NULL, pyslub_tid_reset);
    return pyslub_tid_cache = (long long)syscall(SYS_gettid);
}

/* The kernel thread id of the caller (system-wide unique while the thread lives). */
static inline long long pyslub_gettid(void)
{
    long long t = pyslub_tid_cache;
    if (__builtin_expect(t == 0, 0))
        t = pyslub_gettid_first();
    return t;
}

static inline long long pyslub_getpid(void) { return (long long)getpid(); }

/* The physical cpu the caller runs on (glibc 2.35+ reads it from rseq: one load). */
static inline long long pyslub_getcpu(void)
{
    int c = sched_getcpu();
    return c < 0 ? 0 : c;
}

/* Is the thread (or process) with this id still alive?  kill(id, 0) accepts thread ids; a
 * killed process that its parent has not reaped yet is a zombie, which kill() still finds:
 * /proc/<id>/stat tells (state Z or X).  Slow (a syscall, maybe a file read): only for
 * waiters that have waited long, and for recovery. */
static int pyslub_alive(long long id)
{
    char path[64], buf[512];
    int fd;
    ssize_t n;
    char *p;
    if (id <= 0 || id > 0x3fffffff) return 0;
    if (kill((pid_t)id, 0) != 0 && errno == ESRCH) return 0;
    snprintf(path, sizeof path, "/proc/%lld/stat", id);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno != ENOENT && errno != ESRCH;
    n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = 0;
    p = strrchr(buf, ')');                 /* "pid (comm) S ...": comm may hold ')' */
    if (p == NULL || p[1] != ' ') return 1;
    return p[2] != 'Z' && p[2] != 'X';
}

/* ---- the calling thread's cpu binding (one-entry cache) ---------------------------------------
 * token: the Memory whose binding this is (Memory tokens are never reused), cpu, seat.  Filled
 * by pyslub.memory from its per-thread records; read on every operation. */
struct pyslub_tbind { long long token; long long cpu; long long seat; };
static PYSLUB_TLS struct pyslub_tbind pyslub_tls;
static inline long long pyslub_tls_token(void) { return pyslub_tls.token; }
static inline long long pyslub_tls_cpu(void) { return pyslub_tls.cpu; }
static inline long long pyslub_tls_seat(void) { return pyslub_tls.seat; }
static inline void pyslub_tls_set(long long token, long long cpu, long long seat)
{
    pyslub_tls.token = token; pyslub_tls.cpu = cpu; pyslub_tls.seat = seat;
}

/* ---- membarrier: the slow side of a biased (asymmetric) lock --------------------------------
 * A cpu record's bias owner enters a section with plain stores (in_cs = 1; compiler barrier;
 * check revoke).  A thread revoking it stores revoke = 1, then membarrier(): every running
 * thread of the process (GLOBAL: of every registered process) has executed a full barrier
 * since, so either the owner saw revoke, or the revoker sees in_cs (and waits for 0). */
#include <linux/membarrier.h>
static int pyslub_mb_ok = -1;
static int pyslub_mb_global_ok = 0;
static inline long pyslub_membarrier_cmd(int cmd)
{
    return syscall(__NR_membarrier, cmd, 0, 0);
}
/* Register this process for private (and global) expedited barriers; 1 when usable. */
static inline int pyslub_membarrier_init(void)
{
    if (pyslub_mb_ok < 0) {
        long q = pyslub_membarrier_cmd(MEMBARRIER_CMD_QUERY);
        pyslub_mb_ok = q > 0 && (q & MEMBARRIER_CMD_PRIVATE_EXPEDITED)
            && pyslub_membarrier_cmd(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0;
        if (q > 0 && (q & MEMBARRIER_CMD_GLOBAL_EXPEDITED))
            pyslub_mb_global_ok =
                pyslub_membarrier_cmd(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) == 0;
    }
    return pyslub_mb_ok;
}
/* The fast side of an asymmetric fence between processes (the operation gate): a compiler
 * barrier when the slow side can run a global expedited membarrier, else a full fence. */
static inline void pyslub_gate_fence(void)
{
    if (__builtin_expect(pyslub_mb_ok < 0, 0))      /* static: one copy per extension module */
        pyslub_membarrier_init();
    if (__builtin_expect(pyslub_mb_global_ok, 1))
        __asm__ __volatile__("" ::: "memory");
    else
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
}
/* The slow side: every running thread of every registered process passes a full barrier. */
static inline void pyslub_global_barrier(void)
{
    if (pyslub_mb_ok < 0)
        pyslub_membarrier_init();
    if (!pyslub_mb_global_ok || pyslub_membarrier_cmd(MEMBARRIER_CMD_GLOBAL_EXPEDITED) != 0)
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
}
static inline void pyslub_membarrier(int global)
{
    if (pyslub_membarrier_cmd(global ? MEMBARRIER_CMD_GLOBAL_EXPEDITED
                                     : MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0)
        __atomic_thread_fence(__ATOMIC_SEQ_CST);   /* unreachable once init succeeded */
}

/* ---- spinlock: the per-cpu local lock ---------------------------------------------------------
 * Word: 0 free, else the owner's tid.  Taken for short sections by the threads of one logical
 * cpu: spin briefly (the owner usually runs on another core), then yield the core (the owner may
 * be preempted on ours). */
static inline int pyslub_spin_trylock(long long *w, long long me)
{
    long long z = 0;
    return __atomic_compare_exchange_n(w, &z, me, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}
/* Blocking acquisition returns 0, or 1 when the lock was taken over from a holder that died
 * holding it (a process killed inside an operation): the caller then repairs what the lock
 * protects before using it, as with a robust mutex's EOWNERDEAD.  A waiter checks the holder's
 * liveness only after PYSLUB_DEAD_CHECK_SPINS yields: a live holder costs nothing extra. */
#define PYSLUB_DEAD_CHECK_SPINS 2048
static int pyslub_spin_lock_slow(long long *w, long long me)
{
    int spins = 0;
    long long v;
    for (;;) {
        v = __atomic_load_n(w, __ATOMIC_RELAXED);
        if (v == 0 && pyslub_spin_trylock(w, me))
            return 0;
        if (++spins < 128) {
            pyslub_cpu_relax();
            continue;
        }
        sched_yield();
        if ((spins & (PYSLUB_DEAD_CHECK_SPINS - 1)) == 0 && v != 0 && !pyslub_alive(v)
                && __atomic_compare_exchange_n(w, &v, me, 0, __ATOMIC_ACQUIRE,
                                               __ATOMIC_RELAXED))
            return 1;
    }
}
static inline int pyslub_spin_lock(long long *w, long long me)
{
    if (__builtin_expect(!pyslub_spin_trylock(w, me), 0))
        return pyslub_spin_lock_slow(w, me);
    return 0;
}
static inline void pyslub_spin_unlock(long long *w)
{
    __atomic_store_n(w, 0, __ATOMIC_RELEASE);
}

/* ---- mutex: list_lock, barn lock, page allocator ----------------------------------------------
 * The low 32 bits of a word: 0 free, else owner tid (bits 0..29) | PYSLUB_WAITERS (bit 31).
 * Uncontended: one cmpxchg to take, one to give back.  Contended: a short spin, then FUTEX_WAIT
 * (not FUTEX_PRIVATE: the word may be in a mapping shared by processes). */
#define PYSLUB_WAITERS 0x80000000u
#define PYSLUB_TID_MASK 0x3fffffffu

static inline long pyslub_futex(uint32_t *w, int op, uint32_t val)
{
    return syscall(SYS_futex, w, op, val, NULL, NULL, 0);
}
/* FUTEX_WAIT with a timeout: a waiter wakes now and then to see whether the holder is alive
 * (a holder killed with the lock never wakes anyone). */
static int pyslub_mutex_lock_slow(uint32_t *w, uint32_t me)
{
    uint32_t v, owner;
    int spins;
    struct timespec tmo = {0, 20 * 1000 * 1000};       /* 20 ms */
    for (spins = 0; spins < 64; spins++) {
        v = __atomic_load_n(w, __ATOMIC_RELAXED);
        if (v == 0 && __atomic_compare_exchange_n(w, &v, me, 0, __ATOMIC_ACQUIRE,
                                                  __ATOMIC_RELAXED))
            return 0;
        pyslub_cpu_relax();
    }
    for (;;) {
        v = __atomic_load_n(w, __ATOMIC_RELAXED);
        if (v == 0) {
            /* we may have been woken with other waiters queued: keep the WAITERS bit */
            if (__atomic_compare_exchange_n(w, &v, me | PYSLUB_WAITERS, 0, __ATOMIC_ACQUIRE,
                                            __ATOMIC_RELAXED))
                return 0;
            continue;
        }
        if (!(v & PYSLUB_WAITERS)) {
            uint32_t nv = v | PYSLUB_WAITERS;
            if (!__atomic_compare_exchange_n(w, &v, nv, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
                continue;
            v = nv;
        }
        if (syscall(SYS_futex, w, FUTEX_WAIT, v, &tmo, NULL, 0) != 0 && errno == ETIMEDOUT) {
            owner = v & PYSLUB_TID_MASK;
            if (owner && !pyslub_alive(owner)
                    && __atomic_compare_exchange_n(w, &v, me | PYSLUB_WAITERS, 0,
                                                   __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
                return 1;                             /* the holder died: ours, to repair */
        }
    }
}
static inline int pyslub_mutex_lock(long long *w64, long long me)
{
    uint32_t *w = (uint32_t *)w64, z = 0;
    if (__builtin_expect(!__atomic_compare_exchange_n(w, &z, (uint32_t)me & PYSLUB_TID_MASK, 0,
                                                      __ATOMIC_ACQUIRE, __ATOMIC_RELAXED), 0))
        return pyslub_mutex_lock_slow(w, (uint32_t)me & PYSLUB_TID_MASK);
    return 0;
}
static inline void pyslub_mutex_unlock(long long *w64)
{
    uint32_t *w = (uint32_t *)w64;
    if (__builtin_expect(__atomic_exchange_n(w, 0, __ATOMIC_RELEASE) & PYSLUB_WAITERS, 0))
        pyslub_futex(w, FUTEX_WAKE, 1);
}
#endif
