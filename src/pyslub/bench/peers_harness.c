/*
 * peers_harness.c -- the C side of `pyslub bench peers`.
 *
 * Times alloc-N-then-free-N of fixed-size objects with the clock discipline of prototype-
 * kernel's time_bench (as pyslub/bench/_native.py does): wall clock, then a serialised
 * CPUID;RDTSC at start; RDTSCP;CPUID, then the wall clock at stop.  Every function returns
 * the same five numbers as pyslub's native loops: invoked_cnt, tsc_start, tsc_stop, start_ns,
 * stop_ns (out[0..4]).
 *
 *   peers_open()          dlopen() an allocator's shared library, dlsym() its malloc/free
 *   peers_bench_malloc()  loops x (N x malloc(size), then N x free) through those pointers
 *   peers_bench_stack()   the limit of an array stack: N pops, then N pushes of slot pointers
 *   peers_bench_freelist()the limit of an in-object freelist (SLUB's shape, no slabs): N pops
 *                         following the link stored in each free object, then N pushes
 *   peers_bench_xmalloc() remote frees (mimalloc-bench's xmalloc-test shape, one thread each
 *                         side): the calling thread mallocs batches and hands them over a ring
 *                         to a consumer thread that frees them (`pyslub bench threads`)
 *
 * Built at run time by pyslub.bench.peers with the system C compiler (cc -O2 -shared -fPIC).
 * Where valgrind's callgrind.h exists, peers_callgrind(1) makes each timed loop collect its
 * instructions and dump them (callgrind does not see functions called through ctypes'
 * libffi, so --toggle-collect cannot find them).
 * No allocator is linked in: each one is loaded with RTLD_LOCAL, so they do not replace the
 * process's malloc; the calls go through function pointers, so none can be optimised away.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__has_include)
#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#define HAVE_CALLGRIND 1
#endif
#endif
#ifndef HAVE_CALLGRIND
#define HAVE_CALLGRIND 0
#define CALLGRIND_TOGGLE_COLLECT do { } while (0)
#define CALLGRIND_DUMP_STATS do { } while (0)
#endif

#define MAX_ALLOCATORS 8
#define MAX_BULK 4096

typedef void *(*malloc_fn)(size_t);
typedef void (*free_fn)(void *);

static struct {
    void *handle;
    malloc_fn malloc;
    free_fn free;
} allocators[MAX_ALLOCATORS];
static int nr_allocators;

static inline uint64_t tsc_start(void)
{
    uint32_t lo, hi;
    __asm__ __volatile__("cpuid\n\trdtsc" : "=a"(lo), "=d"(hi) : "a"(0) : "rbx", "rcx");
    return ((uint64_t)hi << 32) | lo;
}

static inline uint64_t tsc_stop(void)
{
    uint32_t lo, hi;
    __asm__ __volatile__("rdtscp\n\tmov %%eax, %0\n\tmov %%edx, %1\n\tcpuid"
                         : "=r"(lo), "=r"(hi) : : "rax", "rbx", "rcx", "rdx");
    return ((uint64_t)hi << 32) | lo;
}

static inline uint64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* the compiler must assume objs[] is read and written here: no fusing the two phases */
#define barrier(objs) __asm__ __volatile__("" : : "r"(objs) : "memory")

static int callgrind;                   /* collect + dump around each timed loop */

int peers_callgrind(int on)
{
    callgrind = on && HAVE_CALLGRIND;
    return HAVE_CALLGRIND;
}

#define BENCH_START(out) do { (out)[3] = wall_ns(); (out)[1] = tsc_start(); \
                              if (callgrind) CALLGRIND_TOGGLE_COLLECT; } while (0)
#define BENCH_STOP(out, cnt) do { if (callgrind) CALLGRIND_TOGGLE_COLLECT; \
                                  (out)[2] = tsc_stop(); (out)[4] = wall_ns(); \
                                  (out)[0] = (cnt); \
                                  if (callgrind) CALLGRIND_DUMP_STATS; } while (0)

/* Returns the allocator's slot (>= 0), or -1 with the reason in err. */
int peers_open(const char *path, const char *malloc_sym, const char *free_sym,
               char *err, int errlen)
{
    void *h, *m, *f;

    if (nr_allocators == MAX_ALLOCATORS) {
        snprintf(err, errlen, "too many allocators");
        return -1;
    }
    h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(err, errlen, "%s", dlerror());
        return -1;
    }
    m = dlsym(h, malloc_sym);
    f = dlsym(h, free_sym);
    if (!m || !f) {
        snprintf(err, errlen, "%s: no %s/%s", path, malloc_sym, free_sym);
        dlclose(h);
        return -1;
    }
    allocators[nr_allocators].handle = h;
    allocators[nr_allocators].malloc = (malloc_fn)m;
    allocators[nr_allocators].free = (free_fn)f;
    return nr_allocators++;
}

/* loops iterations of: bulk x malloc(size) into objs[], then free them in the same order. */
int peers_bench_malloc(int slot, long loops, int bulk, long size, uint64_t *out)
{
    void *objs[MAX_BULK];
    malloc_fn m;
    free_fn f;
    uint64_t cnt = 0;
    long i;
    int j;

    if (slot < 0 || slot >= nr_allocators || bulk < 1 || bulk > MAX_BULK)
        return -1;
    m = allocators[slot].malloc;
    f = allocators[slot].free;
    BENCH_START(out);
    for (i = 0; i < loops; i++) {
        for (j = 0; j < bulk; j++) {
            objs[j] = m((size_t)size);
            if (!objs[j]) {
                while (j--)
                    f(objs[j]);
                BENCH_STOP(out, cnt);
                return -2;
            }
        }
        barrier(objs);
        for (j = 0; j < bulk; j++)
            f(objs[j]);
        cnt += bulk;
    }
    BENCH_STOP(out, cnt);
    return 0;
}

/* The array-stack limit: free slots' addresses in an array; alloc = pop, free = push. */
int peers_bench_stack(long loops, int bulk, long size, uint64_t *out)
{
    long nslots = 2L * MAX_BULK;
    char *mem = malloc((size_t)(nslots * size));
    void **stack = malloc(sizeof(void *) * (size_t)nslots);
    void *objs[MAX_BULK];
    uint64_t cnt = 0;
    long i, top;
    int j;

    if (!mem || !stack || bulk < 1 || bulk > MAX_BULK) {
        free(mem);
        free(stack);
        return -1;
    }
    for (top = 0; top < nslots; top++)
        stack[top] = mem + top * size;
    BENCH_START(out);
    for (i = 0; i < loops; i++) {
        for (j = 0; j < bulk; j++)
            objs[j] = stack[--top];
        barrier(objs);
        for (j = 0; j < bulk; j++)
            stack[top++] = objs[j];
        barrier(objs);
        cnt += bulk;
    }
    BENCH_STOP(out, cnt);
    free(stack);
    free(mem);
    return 0;
}

/* The in-object freelist limit: each free object's first word links to the next free one. */
int peers_bench_freelist(long loops, int bulk, long size, uint64_t *out)
{
    long nslots = 2L * MAX_BULK;
    char *mem = malloc((size_t)(nslots * size));
    void *head = NULL;
    void *objs[MAX_BULK];
    uint64_t cnt = 0;
    long i, k;
    int j;

    if (!mem || bulk < 1 || bulk > MAX_BULK) {
        free(mem);
        return -1;
    }
    for (k = nslots - 1; k >= 0; k--) {
        *(void **)(mem + k * size) = head;
        head = mem + k * size;
    }
    BENCH_START(out);
    for (i = 0; i < loops; i++) {
        for (j = 0; j < bulk; j++) {
            objs[j] = head;
            head = *(void **)head;
        }
        barrier(objs);
        for (j = 0; j < bulk; j++) {
            *(void **)objs[j] = head;
            head = objs[j];
        }
        barrier(objs);
        cnt += bulk;
    }
    BENCH_STOP(out, cnt);
    free(mem);
    return 0;
}

/* ---- remote frees: one producer, one consumer ------------------------------------------------
 * The ring is pyslub.bench._threads.Handoff's: `slots` batches of up to `cap` pointers; the
 * producer publishes its batch index with a release store, the consumer its own; a side that
 * finds the ring full (empty) spins briefly, then yields its core. */

struct xring {
    long slots, cap, total;
    void **buf;
    long *counts;
    free_fn free;
    int pin;
    long head __attribute__((aligned(128)));   /* batches published (producer) */
    long tail __attribute__((aligned(128)));   /* batches freed (consumer) */
};

static inline void xwait(int *spins)
{
    if (++*spins < 64) {
#if defined(__x86_64__)
        __builtin_ia32_pause();
#endif
    } else {
        sched_yield();
    }
}

static void xpin(int cpu)
{
    cpu_set_t set;

    if (cpu < 0)
        return;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

static void *xconsumer(void *arg)
{
    struct xring *r = arg;
    long tail = 0, done = 0, j, n;
    int spins;

    xpin(r->pin);
    while (done < r->total) {
        spins = 0;
        while (__atomic_load_n(&r->head, __ATOMIC_ACQUIRE) == tail)
            xwait(&spins);
        n = r->counts[tail % r->slots];
        for (j = 0; j < n; j++)
            r->free(r->buf[(tail % r->slots) * r->cap + j]);
        done += n;
        tail++;
        __atomic_store_n(&r->tail, tail, __ATOMIC_RELEASE);
    }
    return NULL;
}

/* total objects of `size` bytes, malloc'ed `batch` at a time by the calling thread and freed
 * by a consumer thread; pin_producer / pin_consumer: a core for each thread, or -1.  The clock
 * runs from the producer's first malloc until the consumer's last free. */
int peers_bench_xmalloc(int slot, long total, int batch, long size, int pin_producer,
                        int pin_consumer, uint64_t *out)
{
    struct xring *r;
    pthread_t consumer;
    cpu_set_t saved;
    malloc_fn m;
    long head = 0, done = 0, j, n;
    int spins, rc = 0;

    if (slot < 0 || slot >= nr_allocators || batch < 1 || batch > MAX_BULK || total < 1)
        return -1;
    r = aligned_alloc(128, (sizeof(*r) + 127) / 128 * 128);
    if (!r)
        return -1;
    memset(r, 0, sizeof(*r));
    r->slots = 64;
    r->cap = batch;
    r->total = total;
    r->buf = malloc(sizeof(void *) * (size_t)(r->slots * r->cap));
    r->counts = calloc((size_t)r->slots, sizeof(long));
    r->free = allocators[slot].free;
    r->pin = pin_consumer;
    m = allocators[slot].malloc;
    if (!r->buf || !r->counts || pthread_create(&consumer, NULL, xconsumer, r) != 0) {
        free(r->buf);
        free(r->counts);
        free(r);
        return -1;
    }
    pthread_getaffinity_np(pthread_self(), sizeof(saved), &saved);
    xpin(pin_producer);
    BENCH_START(out);
    while (done < total) {
        n = total - done < batch ? total - done : batch;
        spins = 0;
        while (head - __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE) >= r->slots)
            xwait(&spins);
        for (j = 0; j < n; j++) {
            r->buf[(head % r->slots) * r->cap + j] = m((size_t)size);
            if (!r->buf[(head % r->slots) * r->cap + j])
                rc = -2;                        /* NULL is freed harmlessly by free() */
        }
        r->counts[head % r->slots] = n;
        head++;
        __atomic_store_n(&r->head, head, __ATOMIC_RELEASE);
        done += n;
    }
    pthread_join(consumer, NULL);
    BENCH_STOP(out, (uint64_t)total);
    pthread_setaffinity_np(pthread_self(), sizeof(saved), &saved);
    free(r->buf);
    free(r->counts);
    free(r);
    return rc;
}
