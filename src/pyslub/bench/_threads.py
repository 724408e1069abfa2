"""GIL-free loops for ``pyslub bench threads``: a producer thread allocates, a consumer frees.

mimalloc-bench's xmalloc-test shape with one thread on each side: the producer allocates
batches of objects on its cpu and hands them over through a ``Handoff`` ring (single producer,
single consumer: each side publishes its index with a release store, the other reads it with
an acquire load; a side that finds the ring full or empty spins briefly, then yields its core);
the consumer frees them on its cpu -- every free a *remote* one, into slabs the consumer's cpu
does not own.  Both loops call the core's C-level functions as ``pyslub.bench._native`` does
(``kmem_cache_alloc_bulk`` / ``slab_alloc_node``, ``kmem_cache_free_bulk`` / ``do_slab_free``)
with the GIL released for the whole timed region (one GIL-free section of cache.py's fork
protocol; a side that waits for the other steps out of it while a fork is pending), and
return what the native loops return:
``(objects, tsc_start, tsc_stop, start_ns, stop_ns)``.  The calling thread's cpu (``on_cpu``)
is looked up once before the clock starts; the Memory must be unchecked (``checks=False``).

Uncompiled the same source runs as plain Python with the GIL (slow; for the tests).
"""

import cython

if not cython.compiled:
    import time

    from pyslub._layout import *  # noqa: F403 (C enums when compiled)
    from pyslub._prim import (
        cpu_relax,
        load_acquire,
        store_release,
        tsc_start,
        tsc_stop,
        wallclock_ns,
    )
    from pyslub.bulk import kmem_cache_alloc_bulk, kmem_cache_free_bulk
    from pyslub.cache import nogil_enter_wait, nogil_exit, nogil_safepoint
    from pyslub.slab import KmemCache, cpu_rec, current_cpu, stats_rec, virt_to_head_page

    H_HEAD = 0
    H_TAIL = 32
    CTL_WORDS = 64

    def sched_yield():
        time.sleep(0)

import numpy as np  # noqa: E402


def _words(n):
    """n zeroed 64-bit words (a typed memoryview compiled, a memoryview of int64 not)."""
    return memoryview(np.zeros(max(int(n), 1), dtype=np.int64)).cast("B").cast("q")


@cython.cclass
class Handoff:
    """The ring between one producer and one consumer: ``slots`` batches of up to ``cap``
    addresses.  Use each one for one producer/consumer pair of calls."""

    def __init__(self, slots: i64, cap: i64):
        if slots < 1 or cap < 1:
            raise ValueError(f"Handoff needs slots >= 1 and cap >= 1, got {slots}, {cap}")
        self.slots = slots
        self.cap = cap
        self.buf = _words(slots * cap)
        self.counts = _words(slots)
        self.ctl = _words(CTL_WORDS)


@cython.cfunc
@cython.inline
@cython.nogil
@cython.exceptval(check=False)
def ctl_load(h: Handoff, i: i64) -> i64:
    if cython.compiled:
        return load_acquire(cython.address(h.ctl[i]))
    else:
        return load_acquire(h.ctl, i)


@cython.cfunc
@cython.inline
@cython.nogil
@cython.exceptval(check=False)
def ctl_store(h: Handoff, i: i64, v: i64) -> cython.void:
    if cython.compiled:
        store_release(cython.address(h.ctl[i]), v)
    else:
        store_release(h.ctl, i, v)


@cython.cfunc
@cython.inline
@cython.nogil
@cython.exceptval(check=False)
def wait(spins: cython.int) -> cython.int:
    """The other side is behind: spin briefly (it runs on the other core), then yield -- and
    step out of the GIL-free section while a fork is pending: the other side may be waiting
    for that fork to end before it starts (cache.py's fork protocol)."""
    if spins < 64:
        cpu_relax()
    else:
        nogil_safepoint()
        sched_yield()
    return spins + 1


@cython.cfunc
def cpu_of(s: KmemCache) -> i64:
    if s.checks:
        raise ValueError(f"cache {s.name!r}: the native loops run the kernel's unchecked paths; "
                         "create the Memory with checks=False")
    return current_cpu(s)


def produce(h: Handoff, s: KmemCache, total: i64, batch: i64, bulk: cython.bint) -> tuple:
    """Allocate ``total`` objects in batches of ``batch`` (alloc_bulk, or one slab_alloc_node
    per object) and publish each batch in ``h``."""
    if not 1 <= batch <= h.cap:
        raise ValueError(f"batch {batch} outside 1..{h.cap}")
    return timed_side(h, s, total, batch, bulk, 0, True)


def consume(h: Handoff, s: KmemCache, total: i64, bulk: cython.bint,
            strategy: cython.int) -> tuple:
    """Free the batches ``h`` receives until ``total`` objects were freed (free_bulk with
    strategy FB_* ``strategy``, or one do_slab_free per object) or the producer gave up."""
    return timed_side(h, s, total, h.cap, bulk, strategy, False)


@cython.cfunc
def timed_side(h: Handoff, s: KmemCache, total: i64, batch: i64, bulk: cython.bint,
               strategy: cython.int, producer: cython.bint) -> tuple:
    """One side's loop between the clock reads, GIL released; the five numbers."""
    cs: i64 = cpu_of(s)
    c: i64 = cpu_rec(s, cs & 0xFFFFFFFF)
    st: i64 = stats_rec(s, cs & 0xFFFFFFFF, cs >> 32)
    done: i64
    ns0: cython.ulonglong
    t0: cython.ulonglong
    t1: cython.ulonglong
    ns1: cython.ulonglong
    nogil_enter_wait()                    # a fork() waits for the loop (cache.py)
    with cython.nogil:
        ns0 = wallclock_ns()
        t0 = tsc_start()
        if producer:
            done = produce_loop(h, s, c, st, total, batch, bulk)
        else:
            done = consume_loop(h, s, c, st, total, bulk, strategy)
        t1 = tsc_stop()
        ns1 = wallclock_ns()
        nogil_exit()
    return done, t0, t1, ns0, ns1


@cython.cfunc
@cython.inline
@cython.nogil
@cython.exceptval(check=False)
def slot_words(h: Handoff, slot: i64) -> cython.p_longlong:
    """The addresses of batch ``slot`` (a pointer compiled, a memoryview slice not)."""
    if cython.compiled:
        return cython.address(h.buf[slot * h.cap])
    else:
        return h.buf[slot * h.cap:(slot + 1) * h.cap]


@cython.cfunc
@cython.nogil
@cython.exceptval(check=False)
def produce_loop(h: Handoff, s: KmemCache, c: i64, st: i64, total: i64, batch: i64,
                 bulk: cython.bint) -> i64:
    done: i64 = 0
    head: i64 = 0
    n: i64
    i: i64 = 0
    x: i64
    slot: i64
    spins: cython.int
    p: cython.p_longlong
    ok: cython.bint = True
    while done < total:
        n = batch if total - done > batch else total - done
        spins = 0
        while head - ctl_load(h, H_TAIL) >= h.slots:
            spins = wait(spins)
        slot = head % h.slots
        p = slot_words(h, slot)
        if bulk:
            ok = kmem_cache_alloc_bulk(s, c, st, n, p) > 0
        else:
            for i in range(n):
                x = s.slab_alloc_node(c, st, s.object_size)
                if x <= 0:
                    ok = False
                    break
                p[i] = x
            if not ok:
                for x in range(i):
                    s.do_slab_free(c, st, virt_to_head_page(s, p[x]), p[x], 0, 1)
        h.counts[slot] = n if ok else -1
        head += 1
        ctl_store(h, H_HEAD, head)
        if not ok:
            break
        done += n
    return done


@cython.cfunc
@cython.nogil
@cython.exceptval(check=False)
def consume_loop(h: Handoff, s: KmemCache, c: i64, st: i64, total: i64, bulk: cython.bint,
                 strategy: cython.int) -> i64:
    done: i64 = 0
    tail: i64 = 0
    n: i64
    i: i64
    slot: i64
    spins: cython.int
    p: cython.p_longlong
    while done < total:
        spins = 0
        while ctl_load(h, H_HEAD) == tail:
            spins = wait(spins)
        slot = tail % h.slots
        n = h.counts[slot]
        if n < 0:
            break
        p = slot_words(h, slot)
        if bulk:
            kmem_cache_free_bulk(s, c, st, n, p, strategy)
        else:
            for i in range(n):
                s.do_slab_free(c, st, virt_to_head_page(s, p[i]), p[i], 0, 1)
        tail += 1
        ctl_store(h, H_TAIL, tail)
        done += n
    return done
