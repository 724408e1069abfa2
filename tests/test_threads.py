"""Threads are cpus (issue 7): stress, exact counters, real contention, the cpu policies.

Every test checks invariants, never timings.  While the threads run, each allocation's
addresses are registered in a ``Ledger`` before anyone may free them and dropped before they
are freed, so an address handed out twice while held is caught at once.  Afterwards: nothing
lost (everything freed, ``live_objects() == 0``, the occupancy files empty after a flush, every
page back in the page allocator after ``shrink()``), ``validate() == []``, and the SLUB counters
equal to the work done.  Bulks straddle ``NOGIL_MIN`` so that some calls release the GIL, and
``sys.setswitchinterval(1e-6)`` makes the threads interleave between bytecodes as often as
CPython allows.  Sized on ``pyslub.COMPILED``: the uncompiled rerun (tests/test_pure_mode.py)
does ~1/20 of the operations (every operation runs alone under the Memory's guard there).
"""

from __future__ import annotations

import contextlib
import os
import queue
import random
import sys
import threading
import warnings
from collections.abc import Callable

import numpy as np
import pytest

import pyslub
from pyslub import FREE_BULK_STRATEGIES

COMPILED = pyslub.COMPILED
NOGIL_MIN = 256              # pyslub.cache.NOGIL_MIN (a C constant when compiled)
SCALE = 1.0 if COMPILED else 0.05
ARENA = 64 << 20
OBJ = 64
BULKS = (16, 100, NOGIL_MIN - 1, NOGIL_MIN, 600)


def ops(n: int) -> int:
    return max(4, int(n * SCALE))


@pytest.fixture(autouse=True)
def fast_switch():
    """Switch threads as often as CPython allows (restored afterwards)."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


class Ledger:
    """Who holds which address.  ``take`` right after an allocation returns, ``give`` right
    before the free: an address the allocator hands out while someone holds it is a
    duplicate.  One byte per 8 arena bytes, under a lock (the core calls run outside it)."""

    def __init__(self, arena: int = ARENA) -> None:
        self.held = np.zeros(arena >> 3, dtype=np.uint8)
        self.lock = threading.Lock()
        self.dups: list[int] = []
        self.strays: list[int] = []

    def take(self, addrs) -> None:
        idx = np.asarray(addrs, dtype=np.uint64) >> np.uint64(3)
        with self.lock:
            again = idx[self.held[idx] != 0]
            self.dups.extend(int(a) << 3 for a in again)
            if len(np.unique(idx)) != len(idx):
                self.dups.append(-1)              # twice in one allocation
            self.held[idx] = 1

    def give(self, addrs) -> None:
        idx = np.asarray(addrs, dtype=np.uint64) >> np.uint64(3)
        with self.lock:
            bad = idx[self.held[idx] == 0]
            self.strays.extend(int(a) << 3 for a in bad)
            self.held[idx] = 0

    def check(self) -> None:
        assert self.dups == [], f"handed out twice while held: {self.dups[:8]}"
        assert self.strays == [], f"freed without being held: {self.strays[:8]}"
        assert int(self.held.sum()) == 0, "the test lost track of some objects"


def run_threads(n: int, target: Callable[[int], object], timeout: float = 120) -> list:
    """Run ``target(k)`` for k in range(n) in n threads started together; their results, or
    the first exception re-raised."""
    results: list = [None] * n
    errors: list = []
    barrier = threading.Barrier(n)

    def body(k: int) -> None:
        try:
            barrier.wait()
            results[k] = target(k)
        except BaseException as e:   # noqa: BLE001 (re-raised in the main thread)
            errors.append(e)
            barrier.abort()

    threads = [threading.Thread(target=body, args=(k,), daemon=True) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    if errors:
        raise errors[0]
    return results


def binding(mem: pyslub.Memory, how: str, k: int):
    """``own``: thread k on cpu k; ``shared``: several threads per cpu; ``thread`` / ``sched``:
    the Memory's default policy (no on_cpu)."""
    if how == "own":
        return mem.on_cpu(k)
    if how == "shared":
        return mem.on_cpu(k % 2)
    return contextlib.nullcontext()


def make_memory(how: str, nthreads: int) -> pyslub.Memory:
    if how == "own":
        return pyslub.Memory(size=ARENA, nr_cpus=nthreads)
    if how == "shared":
        return pyslub.Memory(size=ARENA, nr_cpus=4)
    return pyslub.Memory(size=ARENA, nr_cpus=2, cpu_policy=how)


def assert_all_back(mem: pyslub.Memory, cache, free_pages_before: int) -> None:
    """Nothing lost: no live object, empty occupancy after a flush, every page back after a
    shrink, validate() clean all along."""
    assert cache.validate() == []
    assert cache.live_objects() == 0
    cache.flush_cpu()
    occ = cache.occupancy()
    assert occ["objects"] == 0 and occ["objects_partial"] == 0 and occ["cpu_slabs"] == 0, occ
    assert occ["partial"] == occ["slabs"], occ          # every slab left is an empty partial
    assert cache.validate() == []
    cache.shrink()
    occ = cache.occupancy()
    assert occ["slabs"] == 0 and occ["total_objects"] == 0, occ
    assert mem.free_pages() == free_pages_before
    assert cache.validate() == []


def assert_cpu_pairs(s: dict) -> None:
    """Every per-cpu pair swap is one attempt: a fast path success or a retry."""
    assert s["cmpxchg_double_cpu"] == (s["alloc_fastpath"] + s["free_fastpath"]
                                       + s["cmpxchg_double_cpu_fail"]), s


# =============================================================================================
# Stress: single objects and bulks, 2 / 4 / 8 threads, every way of binding them to cpus
# =============================================================================================

def single_worker(cache, ledger: Ledger, n: int, seed: int) -> tuple[int, int]:
    rng = random.Random(seed)
    held: list[int] = []
    allocs = frees = 0
    for _ in range(n):
        if len(held) < 200 and (not held or rng.random() < 0.55):
            a = cache.alloc()
            ledger.take([a])
            held.append(a)
            allocs += 1
        else:
            a = held.pop(rng.randrange(len(held)))
            ledger.give([a])
            cache.free(a)
            frees += 1
    for a in held:
        ledger.give([a])
        cache.free(a)
        frees += 1
    return allocs, frees


def bulk_worker(cache, ledger: Ledger, n: int, seed: int) -> int:
    """alloc_bulk / free_bulk of sizes around NOGIL_MIN, every strategy in turn; returns the
    number of objects allocated (and freed)."""
    rng = random.Random(seed)
    held: list[np.ndarray] = []
    total = 0
    for i in range(n):
        if len(held) < 3 and (not held or rng.random() < 0.55):
            p = np.zeros(BULKS[rng.randrange(len(BULKS))], dtype=np.uint64)
            assert cache.alloc_bulk(p) == len(p)
            ledger.take(p)
            held.append(p)
            total += len(p)
        else:
            p = held.pop(rng.randrange(len(held)))
            ledger.give(p)
            cache.free_bulk(p, strategy=FREE_BULK_STRATEGIES[i % len(FREE_BULK_STRATEGIES)])
    for p in held:
        ledger.give(p)
        cache.free_bulk(p)
    return total


@pytest.mark.parametrize("how", ["own", "shared", "thread", "sched"])
@pytest.mark.parametrize("nthreads", [2, 4, 8])
@pytest.mark.parametrize("kind", ["single", "bulk"])
def test_stress(kind, nthreads, how):
    mem = make_memory(how, nthreads)
    cache = mem.create_cache("stress", OBJ)
    pages = mem.free_pages()
    ledger = Ledger()

    def work(k):
        with binding(mem, how, k):
            if kind == "single":
                return single_worker(cache, ledger, ops(2500), seed=k)
            return bulk_worker(cache, ledger, ops(600), seed=100 + k)

    done = run_threads(nthreads, work)
    ledger.check()
    s = cache.stats()
    assert_cpu_pairs(s)
    if kind == "single":
        allocs = sum(a for a, _ in done)
        assert allocs == sum(f for _, f in done)
        assert s["alloc_fastpath"] + s["alloc_slowpath"] == allocs, s
        assert s["free_fastpath"] + s["free_slowpath"] == allocs, s
        if how == "own":                 # thread k ran on cpu k only: per-cpu counts exact
            for k, (a, f) in enumerate(done):
                sk = cache.stats(cpu=k)
                assert sk["alloc_fastpath"] + sk["alloc_slowpath"] == a
                assert sk["free_fastpath"] + sk["free_slowpath"] == f
    else:
        # v4.4 kmem_cache_alloc_bulk takes objects off c->freelist inside its IRQ-off section
        # and calls ___slab_alloc directly: neither alloc counter moves
        assert s["alloc_fastpath"] == 0 and s["alloc_slowpath"] == 0, s
    assert_all_back(mem, cache, pages)


def test_bulk_fallback_counts_every_object():
    """free_bulk "fallback" is one kmem_cache_free per object: exactly one of the two free
    counters per object, also with four threads on two cpus."""
    mem = pyslub.Memory(size=ARENA, nr_cpus=2)
    cache = mem.create_cache("fallback", OBJ)
    ledger = Ledger()
    n = ops(150)

    def work(k):
        total = 0
        with mem.on_cpu(k % 2):
            for i in range(n):
                p = cache.alloc_many(BULKS[i % len(BULKS)])
                ledger.take(p)
                ledger.give(p)
                cache.free_bulk(p, strategy="fallback")
                total += len(p)
        return total

    total = sum(run_threads(4, work))
    ledger.check()
    s = cache.stats()
    assert s["free_fastpath"] + s["free_slowpath"] == total, s
    assert cache.validate() == []


def test_more_threads_than_seats():
    """Threads beyond the NR_SEATS (16) counter seats share one seat with atomic adds: the
    counters stay exact with 24 threads alive at once on 2 cpus."""
    mem = pyslub.Memory(size=ARENA, nr_cpus=2)
    cache = mem.create_cache("seats", OBJ)
    ledger = Ledger()

    def work(k):
        return single_worker(cache, ledger, ops(800), seed=k)

    done = run_threads(24, work)
    ledger.check()
    s = cache.stats()
    assert s["alloc_fastpath"] + s["alloc_slowpath"] == sum(a for a, _ in done)
    assert s["free_fastpath"] + s["free_slowpath"] == sum(f for _, f in done)
    assert_cpu_pairs(s)
    assert cache.validate() == []


# =============================================================================================
# Producer / consumer: allocated on cpu 0, freed on cpu 1, handed over through a queue.Queue
# =============================================================================================

def _pipeline(nprod: int, ncons: int, produce: Callable, consume: Callable) -> None:
    """Threads 0..nprod-1 run ``produce(k, q)``; the others ``consume(k, item)`` for every item
    until the last producer has finished."""
    q: queue.Queue = queue.Queue(maxsize=64)
    stop = object()
    left = [nprod]
    lock = threading.Lock()

    def work(k):
        if k >= nprod:
            while (item := q.get()) is not stop:
                consume(k, item)
            return
        try:
            produce(k, q)
        finally:
            with lock:
                left[0] -= 1
                last = left[0] == 0
            if last:
                for _ in range(ncons):
                    q.put(stop)

    run_threads(nprod + ncons, work)


@pytest.mark.parametrize("kind", ["single", "bulk"])
def test_remote_frees_producer_consumer(kind):
    """Producers on cpu 0 allocate, consumers on cpu 1 free: every consumer free goes to a slab
    that is not its cpu slab (cpu 1 never allocates), so on cpu 1 every free is __slab_free
    and nothing is counted as allocated."""
    mem = pyslub.Memory(size=ARENA, nr_cpus=2)
    cache = mem.create_cache("remote", OBJ)
    pages = mem.free_pages()
    ledger = Ledger()
    n = ops(3000 if kind == "single" else 120)
    produced = [0, 0]
    freed_singly = [0, 0]

    def produce(k, q):
        with mem.on_cpu(0):
            for i in range(n):
                if kind == "single":
                    p = [cache.alloc() for _ in range(1 + i % 7)]
                else:
                    p = cache.alloc_many(BULKS[(i + k) % len(BULKS)])
                ledger.take(p)
                produced[k] += len(p)
                q.put(p)

    def consume(k, p):
        with mem.on_cpu(1):
            ledger.give(p)
            if kind == "single":
                for a in p:
                    cache.free(a)
                freed_singly[k - 2] += len(p)
            else:
                cache.free_bulk(p, strategy=FREE_BULK_STRATEGIES[len(p) % 6])

    _pipeline(2, 2, produce, consume)
    ledger.check()
    s0, s1 = cache.stats(cpu=0), cache.stats(cpu=1)
    assert s1["alloc_fastpath"] == s1["alloc_slowpath"] == s1["alloc_slab"] == 0, s1
    assert s0["free_fastpath"] == s0["free_slowpath"] == 0, s0
    assert s1["free_fastpath"] == 0, s1
    if kind == "single":
        assert s0["alloc_fastpath"] + s0["alloc_slowpath"] == sum(produced)
        assert s1["free_slowpath"] == sum(freed_singly) == sum(produced)
    else:
        assert s1["free_slowpath"] > 0
    assert_all_back(mem, cache, pages)


def test_kfree_bulk_from_other_threads():
    """kmalloc on two threads, kfree_bulk of mixed caches (and large blocks) on two others."""
    mem = pyslub.Memory(size=ARENA, nr_cpus=4)
    pages = mem.free_pages()
    ledger = Ledger()
    sizes = (8, 32, 64, 100, 256, 1000, 4096, 8192, 20000)
    n = ops(300)

    def produce(k, q):
        rng = random.Random(k)
        with mem.on_cpu(k):
            for _ in range(n):
                p = np.array([mem.kmalloc(sizes[rng.randrange(len(sizes))])
                              for _ in range(rng.randrange(1, 40))], dtype=np.uint64)
                ledger.take(p)
                q.put(p)

    def consume(k, p):
        with mem.on_cpu(k):
            ledger.give(p)
            mem.kfree_bulk(p)

    _pipeline(2, 2, produce, consume)
    ledger.check()
    for cache in mem.caches.values():
        assert cache.live_objects() == 0, cache.name
        assert cache.validate() == [], cache.name
        cache.shrink()
    assert mem.free_pages() == pages


def test_first_kmalloc_from_many_threads():
    """The kmalloc caches are created on first use, once, even when threads race for it."""
    mem = pyslub.Memory(size=ARENA, nr_cpus=2)
    go = threading.Barrier(4)

    def work(_k):
        go.wait()
        a = mem.kmalloc(64)
        mem.kfree(a)
        return a

    run_threads(4, work)
    assert sorted(mem.caches) == sorted(
        f"kmalloc-{s // 1024}k" if s >= 1024 else f"kmalloc-{s}" for s in pyslub.KMALLOC_SIZES)


# =============================================================================================
# Contention really happens
# =============================================================================================

def test_contention_moves_the_retry_counters_public_api():
    """Four threads as one cpu, bulks far above NOGIL_MIN (the GIL is released for the core
    work): the fast paths' pair swaps fail when another thread of the cpu changed its tid
    (cmpxchg_double_cpu_fail), slab pair swaps fail when two threads swap one slab's freelist
    at once (cmpxchg_double_fail).  Bounded: rounds until one of them moved."""
    if not COMPILED:
        pytest.skip("uncompiled, every operation runs alone: no swap can fail")
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two cores")
    mem = pyslub.Memory(size=256 << 20, nr_cpus=2)
    cache = mem.create_cache("contended", OBJ)
    ledger = Ledger(256 << 20)
    moved = 0
    for _ in range(20):
        def work(k):
            with mem.on_cpu(0):
                for i in range(40):
                    p = cache.alloc_many(4000 + 100 * k)
                    ledger.take(p)
                    ledger.give(p)
                    cache.free_bulk(p, strategy=("lookahead", "swap", "fallback")[i % 3])
        run_threads(4, work)
        s = cache.stats()
        moved = s["cmpxchg_double_cpu_fail"] + s["cmpxchg_double_fail"]
        if moved:
            break
    ledger.check()
    assert moved > 0, "no pair swap ever failed: the threads never overlapped in the core"
    assert_cpu_pairs(cache.stats())
    assert cache.validate() == []
    assert cache.live_objects() == 0


def test_contention_native_fast_paths_of_one_cpu():
    """The deterministic version: two threads run the compiled fast-path loop (alloc 1, free
    1, GIL released) as the same cpu; their pair swaps on (c.freelist, c.tid) collide.
    Every failed swap is retried, so the counts still add up exactly."""
    if not COMPILED:
        pytest.skip("the native loops need the compiled core")
    from pyslub.bench import _native

    mem = pyslub.Memory(size=ARENA, nr_cpus=2, checks=False)
    cache = mem.create_cache("native", OBJ)
    loops = 200_000
    fails = 0
    for _ in range(10):
        cache.reset_stats()

        def work(_k):
            with mem.on_cpu(0):
                return _native.bench_fastpath_reuse(cache, loops)[0]

        assert run_threads(2, work) == [loops, loops]
        s = cache.stats()
        assert s["alloc_fastpath"] + s["alloc_slowpath"] == 2 * loops, s
        assert s["free_fastpath"] + s["free_slowpath"] == 2 * loops, s
        assert_cpu_pairs(s)
        fails = s["cmpxchg_double_cpu_fail"]
        if fails:
            break
    assert fails > 0
    assert cache.validate() == []
    assert cache.live_objects() == 0


def test_bulks_above_nogil_min_release_the_gil():
    """While one thread is inside alloc_bulk of a million objects, another thread runs Python
    code: it sees the cache's slab count strictly between its value before and after the call
    (only possible if the GIL was released around the core work)."""
    if not COMPILED:
        pytest.skip("uncompiled, the core is Python: it holds the GIL")
    mem = pyslub.Memory(size=256 << 20, nr_cpus=2)
    cache = mem.create_cache("nogil", OBJ)
    p = np.zeros(1_000_000, dtype=np.uint64)
    def watch(seen: set[int], started: threading.Event, stop: threading.Event) -> None:
        started.set()
        while not stop.is_set():
            seen.add(cache.nr_slabs)

    for _ in range(5):
        seen: set[int] = set()
        stop = threading.Event()
        started = threading.Event()
        t = threading.Thread(target=watch, args=(seen, started, stop))
        t.start()
        started.wait()
        before = cache.nr_slabs
        cache.alloc_bulk(p)
        after = cache.nr_slabs
        stop.set()
        t.join()
        cache.free_bulk(p)
        cache.shrink()
        if any(before < v < after for v in seen):
            break
    assert any(before < v < after for v in seen), (before, after, sorted(seen)[:10])


# =============================================================================================
# The cpu of a thread: on_cpu binds the calling thread only, nests; the two default policies
# =============================================================================================

def test_on_cpu_binds_only_the_calling_thread_and_nests():
    mem = pyslub.Memory(size=8 << 20, nr_cpus=4)
    cache = mem.create_cache("bind", OBJ)
    inside = threading.Barrier(2)
    seen: dict[int, list[int]] = {0: [], 1: []}

    def work(k):
        outer, inner = (1, 2) if k == 0 else (3, 0)
        with mem.on_cpu(outer):
            inside.wait()                  # both threads inside their blocks at once
            seen[k].append(mem.cpu)
            cache.free(cache.alloc())
            with mem.on_cpu(inner):
                inside.wait()
                seen[k].append(mem.cpu)
                cache.free(cache.alloc())
            seen[k].append(mem.cpu)
            cache.free(cache.alloc())
        return mem.cpu

    ends = run_threads(2, work)
    assert seen == {0: [1, 2, 1], 1: [3, 0, 3]}
    assert ends[0] == ends[1] or all(0 <= e < 4 for e in ends)
    per_cpu = [cache.stats(cpu=k)["alloc_fastpath"] + cache.stats(cpu=k)["alloc_slowpath"]
               for k in range(4)]
    assert per_cpu == [1, 2, 1, 2]


def test_thread_policy_spreads_and_keeps_threads():
    """cpu_policy "thread": on first use a thread gets the cpu with fewest such threads, keeps
    it for its life, and gives it back when it ends."""
    mem = pyslub.Memory(size=8 << 20, nr_cpus=3, cpu_policy="thread")
    cache = mem.create_cache("policy", OBJ)
    ready = threading.Barrier(6)

    def work(_k):
        first = mem.cpu
        ready.wait()                       # all six bound before anyone leaves
        for _ in range(20):
            cache.free(cache.alloc())
            assert mem.cpu == first
        return first

    for _ in range(2):                     # the second batch finds every cpu free again
        cpus = run_threads(6, work)
        assert sorted(cpus) == [0, 0, 1, 1, 2, 2]
    assert mem.cpu in (0, 1, 2)


def test_sched_policy_follows_the_core():
    """cpu_policy "sched": the cpu is sched_getcpu() % nr_cpus at each operation."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        pytest.skip("needs two cores")
    mem = pyslub.Memory(size=8 << 20, nr_cpus=2, cpu_policy="sched")
    cache = mem.create_cache("sched", OBJ)

    def work(k):
        core = cores[k]
        os.sched_setaffinity(0, {core})     # this thread only (Linux)
        for _ in range(10):
            cache.free(cache.alloc())
        return core % 2, mem.cpu

    for want, got in run_threads(2, work):
        assert got == want
    for k in range(2):
        s = cache.stats(cpu=cores[k] % 2)
        assert s["alloc_fastpath"] + s["alloc_slowpath"] == 10


def test_policy_names_are_checked():
    with pytest.raises(ValueError, match="cpu_policy"):
        pyslub.Memory(size=8 << 20, nr_cpus=2, cpu_policy="round-robin")


# =============================================================================================
# The event ring is bounded: what it cannot hold is counted and said, never silently lost
# =============================================================================================

def test_record_frees_counts_what_the_ring_could_not_hold():
    mem = pyslub.Memory(size=ARENA, nr_cpus=2)
    cache = mem.create_cache("record", OBJ)
    n = 20000 if COMPILED else 200
    p = cache.alloc_many(n)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pyslub.record_frees(cache) as rec:
            cache.free_bulk(p, strategy="fallback")     # one record (5 words) per object
    recorded = sum(len(objs) for _, objs, _ in rec)
    assert recorded + rec.lost == n                     # fallback: one object per record
    if COMPILED:                                        # 100,000 words > the ring's 65,536
        assert rec.lost > 0
        assert any("event records" in str(w.message) for w in seen)
    else:
        assert rec.lost == 0
    assert cache.live_objects() == 0 and cache.validate() == []
