"""The timed loops of prototype-kernel's slab_bulk_test01/02/03, run inside the compiled core.

Like the kernel modules, every loop calls the allocator's C-level entry points directly
(``kmem_cache_alloc``, ``kmem_cache_free``, ``kmem_cache_alloc_bulk_any``,
``kmem_cache_free_bulk_any`` of sheaves.py: the sheaves of 6.18 / 7.0 caches, then the
generation's slab paths), with no Python object touched between the two clock reads and the
GIL released for the whole timed region (so loops in several threads run in parallel).  Each
loop is one GIL-free section of cache.py's fork protocol, entered before the clock starts: a
fork() waits for running loops, and a loop waits for a fork in progress.  The
calling thread's cpu (``Memory.on_cpu``, or the Memory's default policy) is looked up once
before the clock starts.  These are the kernel's unchecked paths: the cache's Memory must have
``checks=False``.  Each
``bench_*`` function reads the wall clock then the TSC (``time_bench_start``), runs the loop,
reads the TSC then the wall clock (``time_bench_stop``) and returns
``(invoked_cnt, tsc_start, tsc_stop, start_ns, stop_ns)``; ``pyslub.bench.drivers`` turns that
into a ``TimeBenchRecord``.  The cache is created and destroyed by the caller, outside the
timed region, as the kernel modules do.

Uncompiled (``PYSLUB_PURE=1`` or no build) the same source runs as plain Python over the
plain-Python core, with ``time.perf_counter_ns`` as the "TSC".

test03's object hash lives where the kernel keeps it: inside the objects.  ``struct my_obj
{ struct hlist_node node; void *page; char pad[200]; }`` -- words 0 and 1 of an allocated object
are ``node.next`` / ``node.pprev``, word 2 is ``obj->page`` (the simulated struct-page pointer
``VMEMMAP_BASE + page_index * 64``, see ``objhash.struct_page_ptr``).  The free pointer word of
a slab object is free for the owner to overwrite while the object is allocated.  ``pprev`` holds
the address of the previous node (its ``next`` is word 0) or ``-(bucket + 1)`` for
``&objhash[bucket].first``.  Behaviour equals ``pyslub.bench.objhash.ObjHash`` (tested).
"""

import cython

if cython.compiled:
    cnp.import_array()                     # cnp and the core's names come from _native.pxd
else:
    from pyslub._layout import *  # noqa: F403 (C enums when compiled)
    from pyslub._prim import barrier, tsc_start, tsc_stop, wallclock_ns
    from pyslub.bench.jhash import jhash_8bytes
    from pyslub.bench.objhash import HASHSZ, OBJHASH_INITVAL, VMEMMAP_BASE
    from pyslub.cache import Cache, nogil_enter_wait, nogil_exit
    from pyslub.sheaves import (
        kmem_cache_alloc,
        kmem_cache_alloc_bulk_any,
        kmem_cache_free,
        kmem_cache_free_bulk_any,
    )
    from pyslub.slab import KmemCache, cpu_rec, current_cpu, stats_rec, virt_to_head_page

    OBJHASH_SZ = HASHSZ
    OBJ_NODE_NEXT = 0
    OBJ_NODE_PPREV = 1
    OBJ_PAGE = 2
    OBJ_MIN_SIZE = 24
    VMEMMAP_WORD = VMEMMAP_BASE - (1 << 64)
    LIST_POISON1 = 0xDEAD000000000100 - (1 << 64)
    LIST_POISON2 = 0xDEAD000000000200 - (1 << 64)

    def objhash_bucket(page):
        return jhash_8bytes(page, OBJHASH_INITVAL) % OBJHASH_SZ

import numpy as np  # noqa: E402

# =============================================================================================
# Clocks, Python-callable (the python driver and the TSC calibration use them)
# =============================================================================================

def read_tsc() -> int:
    """The serialised TSC read of time_bench_start (CPUID; RDTSC); perf_counter_ns uncompiled."""
    return tsc_start()


def read_tsc_stop() -> int:
    """The serialised TSC read of time_bench_stop (RDTSCP; CPUID)."""
    return tsc_stop()


def read_wallclock_ns() -> int:
    """CLOCK_REALTIME in ns (the kernel's getnstimeofday / ktime_get_real_ts64)."""
    return wallclock_ns()


@cython.cfunc
def words_of(a: object) -> cython.p_longlong:
    """A uint64 numpy array's data as 64-bit words: a pointer compiled, a memoryview not."""
    if cython.compiled:
        return cython.cast(cython.p_longlong, cnp.PyArray_DATA(cython.cast(cnp.ndarray, a)))
    else:
        return memoryview(a).cast("B").cast("q")


def objs_array(n) -> np.ndarray:
    """The ``objs[]`` / ``GLOBAL_OBJS[]`` array of a bench loop (zeroed uint64)."""
    return np.zeros(max(int(n), 1), dtype=np.uint64)


# =============================================================================================
# my__kmem_cache_alloc_bulk / my__kmem_cache_free_bulk (slab_common's generic fallbacks, copied
# into the kernel modules as noinline functions)
# =============================================================================================

@cython.cfunc
@cython.nogil
@cython.exceptval(check=False)
def my_kmem_cache_free_bulk(s: KmemCache, c: i64, st: i64, nr: i64,
                            p: cython.p_longlong) -> cython.void:
    """``kmem_cache_free(s, p[i])`` per object: slab_free(s, virt_to_head_page(x), x, NULL, 1)."""
    i: i64
    for i in range(nr):
        kmem_cache_free(s, c, st, virt_to_head_page(s, p[i]), p[i])


@cython.cfunc
@cython.nogil
@cython.exceptval(check=False)
def my_kmem_cache_alloc_bulk(s: KmemCache, c: i64, st: i64, nr: i64,
                             p: cython.p_longlong) -> cython.bint:
    """``kmem_cache_alloc`` per object; on failure free what was taken and return False."""
    i: i64
    x: i64
    for i in range(nr):
        x = kmem_cache_alloc(s, c, st)
        p[i] = x
        if x <= 0:
            my_kmem_cache_free_bulk(s, c, st, i, p)
            return False
    return True


# noinline: the timed loops call the fallbacks through pointers (see _native.pxd)
my__kmem_cache_alloc_bulk = my_kmem_cache_alloc_bulk
my__kmem_cache_free_bulk = my_kmem_cache_free_bulk


@cython.cfunc
def cpu_of(s: KmemCache) -> i64:
    """The calling thread's cpu|seat (before the clock starts); the Memory must be unchecked."""
    if s.checks:
        raise ValueError(f"cache {s.name!r}: the native loops run the kernel's unchecked paths; "
                         "create the Memory with checks=False")
    return current_cpu(s)


# =============================================================================================
# slab_bulk_test01 / test02 loops
# =============================================================================================

def bench_for_loop(loops: i64) -> tuple:
    """time_bench_for_loop: an empty loop with a compiler barrier (loop overhead)."""
    cnt: i64 = 0
    _i: i64
    ns0: cython.ulonglong
    t0: cython.ulonglong
    t1: cython.ulonglong
    ns1: cython.ulonglong
    with cython.nogil:
        ns0 = wallclock_ns()
        t0 = tsc_start()
        for _i in range(loops):
            cnt += 1
            barrier()
        t1 = tsc_stop()
        ns1 = wallclock_ns()
    return cnt, t0, t1, ns0, ns1


def bench_fastpath_reuse(s: KmemCache, loops: i64) -> tuple:
    """benchmark_kmem_cache_fastpath_reuse: alloc 1, barrier, free 1; counts alloc+free once."""
    cs: i64 = cpu_of(s)
    c: i64 = cpu_rec(s, cs & 0xFFFFFFFF)
    st: i64 = stats_rec(s, cs & 0xFFFFFFFF, cs >> 32)
    cnt: i64 = 0
    _i: i64
    obj: i64
    ns0: cython.ulonglong
    t0: cython.ulonglong
    t1: cython.ulonglong
    ns1: cython.ulonglong
    nogil_enter_wait()                # a fork() waits for the loop (cache.py)
    with cython.nogil:
        ns0 = wallclock_ns()
        t0 = tsc_start()
        for _i in range(loops):
            obj = kmem_cache_alloc(s, c, st)
            if obj <= 0:
                break
            barrier()
            kmem_cache_free(s, c, st, virt_to_head_page(s, obj), obj)
            cnt += 1
        t1 = tsc_stop()
        ns1 = wallclock_ns()
        nogil_exit()
    return cnt, t0, t1, ns0, ns1


def bench_bulk_fallback(s: KmemCache, loops: i64, bulk: i64, objs: object) -> tuple:
    """benchmark_slab_fallback_bulk: my__kmem_cache_alloc_bulk, barrier, my__..._free_bulk."""
    cs: i64 = cpu_of(s)
    c: i64 = cpu_rec(s, cs & 0xFFFFFFFF)
    st: i64 = stats_rec(s, cs & 0xFFFFFFFF, cs >> 32)
    p: cython.p_longlong = words_of(objs)
    cnt: i64 = 0
    _i: i64
    ns0: cython.ulonglong
    t0: cython.ulonglong
    t1: cython.ulonglong
    ns1: cython.ulonglong
    nogil_enter_wait()                # a fork() waits for the loop (cache.py)
    with cython.nogil:
        ns0 = wallclock_ns()
        t0 = tsc_start()
        for _i in range(loops):
            if not my__kmem_cache_alloc_bulk(s, c, st, bulk, p):
                break
            barrier()
            my__kmem_cache_free_bulk(s, c, st, bulk, p)
            cnt += bulk
        t1 = tsc_stop()
        ns1 = wallclock_ns()
        nogil_exit()
    return cnt, t0, t1, ns0, ns1


def bench_bulk_quick_reuse(s: KmemCache, loops: i64, bulk: i64, strategy: cython.int,
                           objs: object) -> tuple:
    """benchmark_slab_bulk01 (test01) and test02's loop: kmem_cache_alloc_bulk, barrier,
    kmem_cache_free_bulk with free_bulk generation ``strategy`` (FB_*)."""
    cs: i64 = cpu_of(s)
    c: i64 = cpu_rec(s, cs & 0xFFFFFFFF)
    st: i64 = stats_rec(s, cs & 0xFFFFFFFF, cs >> 32)
    p: cython.p_longlong = words_of(objs)
    cnt: i64 = 0
    _i: i64
    ns0: cython.ulonglong
    t0: cython.ulonglong
    t1: cython.ulonglong
    ns1: cython.ulonglong
    nogil_enter_wait()                # a fork() waits for the loop (cache.py)
    with cython.nogil:
        ns0 = wallclock_ns()
        t0 = tsc_start()
        for _i in range(loops):
            if kmem_cache_alloc_bulk_any(s, c, st, bulk, p) <= 0:
                break
            barrier()
            kmem_cache_free_bulk_any(s, c, st, bulk, p, strategy)
            cnt += bulk
        t1 = tsc_stop()
        ns1 = wallclock_ns()
        nogil_exit()
    return cnt, t0, t1, ns0, ns1


def bench_alloc_free_order(s: KmemCache, loops: i64, n: i64, objs: object,
                           order: object) -> tuple:
    """The 6.18 sheaves cover letter's microbenchmark: ``loops`` times, allocate ``n`` objects
    one by one (kmem_cache_alloc), then free them one by one (kmem_cache_free) in the order
    ``order`` (a permutation of 0..n-1: identity = FIFO, or shuffled).  Counts objects."""
    cs: i64 = cpu_of(s)
    c: i64 = cpu_rec(s, cs & 0xFFFFFFFF)
    st: i64 = stats_rec(s, cs & 0xFFFFFFFF, cs >> 32)
    p: cython.p_longlong = words_of(objs)
    o: cython.p_longlong = words_of(order)
    cnt: i64 = 0
    _i: i64
    j: i64
    x: i64
    ok: cython.bint = True
    ns0: cython.ulonglong
    t0: cython.ulonglong
    t1: cython.ulonglong
    ns1: cython.ulonglong
    nogil_enter_wait()                # a fork() waits for the loop (cache.py)
    with cython.nogil:
        ns0 = wallclock_ns()
        t0 = tsc_start()
        for _i in range(loops):
            for j in range(n):
                x = kmem_cache_alloc(s, c, st)
                if x <= 0:
                    ok = False
                    break
                p[j] = x
            if not ok:
                break
            barrier()
            for j in range(n):
                x = p[o[j]]
                kmem_cache_free(s, c, st, virt_to_head_page(s, x), x)
            cnt += n
        t1 = tsc_stop()
        ns1 = wallclock_ns()
        nogil_exit()
    return cnt, t0, t1, ns0, ns1


# =============================================================================================
# slab_bulk_test03: the object hash inside the objects
# =============================================================================================

@cython.cclass
class NativeObjHash:
    """test03's 16-bucket LIFO object hash, with its hlist nodes inside the objects of ``s``.

    The Python-callable methods (``add_one``, ``extract``, ``extract_bulk``, ``list_len``,
    ``drain``) exist for set-up, teardown and tests; the timed loop uses the C functions.
    """

    def __init__(self, s: Cache):
        if s.object_size < OBJ_MIN_SIZE:
            raise ValueError(f"test03 objects need >= {OBJ_MIN_SIZE} bytes "
                             f"(hlist_node + page pointer), cache has {s.object_size}")
        self.s = s
        self.words = s.words
        self.pm = s.pm
        if not cython.compiled:
            self.heads = [0] * OBJHASH_SZ
        i: cython.int
        for i in range(OBJHASH_SZ):
            self.heads[i] = 0
        self.objhash_cnt = 0
        self.too_many = 0
        self.skipped_many = 0
        self.same_page = 0

    def add_one(self, obj) -> bool:
        """objhash_add_one(obj)."""
        return objhash_add_one(self, obj)

    def extract(self, last_obj, no_match) -> int:
        """objhash_extract(last_obj or NULL, no_match); 0 where the kernel returns NULL."""
        return objhash_extract(self, 0 if last_obj is None else last_obj, no_match)

    def extract_bulk(self, objs, bulk, modulo_match) -> bool:
        """test03's extraction loop over ``objs[0:bulk]`` (uint64 array)."""
        return extract_bulk(self, words_of(objs), bulk, modulo_match)

    def page_of(self, obj: i64) -> int:
        """The struct-page pointer stored in ``obj->page`` (unsigned)."""
        return (int(self.words[(obj >> 3) + OBJ_PAGE]) + 2**64) % 2**64

    def list_len(self) -> list:
        """Length of each bucket."""
        b: cython.int
        n: i64
        obj: i64
        out = []
        for b in range(OBJHASH_SZ):
            n = 0
            obj = self.heads[b]
            while obj and n <= self.objhash_cnt:
                n += 1
                obj = self.words[(obj >> 3) + OBJ_NODE_NEXT]
            out.append(n)
        return out

    def drain(self) -> list:
        """Unlink everything (module exit): objects in bucket order, head first."""
        b: cython.int
        obj: i64
        out = []
        for b in range(OBJHASH_SZ):
            obj = self.heads[b]
            while obj and len(out) <= self.objhash_cnt:
                out.append(obj)
                obj = self.words[(obj >> 3) + OBJ_NODE_NEXT]
            self.heads[b] = 0
        self.objhash_cnt = 0
        return out


@cython.cfunc
@cython.nogil
@cython.inline
@cython.exceptval(check=False)
def objhash_add_one(h: NativeObjHash, obj: i64) -> cython.bint:
    """objhash_add_one: INIT_HLIST_NODE, obj->page = virt_to_head_page(obj), hash the page
    pointer, hlist_add_head on that bucket."""
    if obj == 0:
        return False
    h.objhash_cnt += 1
    w: i64 = obj >> 3
    h.words[w + OBJ_NODE_NEXT] = 0
    h.words[w + OBJ_NODE_PPREV] = 0
    h.words[w + OBJ_PAGE] = VMEMMAP_WORD + (h.pm[(obj >> PAGE_SHIFT) * PM_STRIDE + PM_HEAD] << 6)
    b: i64 = objhash_bucket(h.words[w + OBJ_PAGE])
    first: i64 = h.heads[b]
    h.words[w + OBJ_NODE_NEXT] = first                   # n->next = h->first
    if first:
        h.words[(first >> 3) + OBJ_NODE_PPREV] = obj     # first->pprev = &n->next
    h.heads[b] = obj                                     # h->first = n
    h.words[w + OBJ_NODE_PPREV] = -(b + 1)               # n->pprev = &h->first
    return True


@cython.cfunc
@cython.nogil
@cython.inline
@cython.exceptval(check=False)
def hlist_del(h: NativeObjHash, obj: i64) -> cython.void:
    w: i64 = obj >> 3
    nxt: i64 = h.words[w + OBJ_NODE_NEXT]
    pprev: i64 = h.words[w + OBJ_NODE_PPREV]
    if pprev < 0:
        h.heads[-pprev - 1] = nxt                        # *pprev = next (a bucket head)
    else:
        h.words[(pprev >> 3) + OBJ_NODE_NEXT] = nxt      # *pprev = next (previous node)
    if nxt:
        h.words[(nxt >> 3) + OBJ_NODE_PPREV] = pprev
    h.words[w + OBJ_NODE_NEXT] = LIST_POISON1
    h.words[w + OBJ_NODE_PPREV] = LIST_POISON2


@cython.cfunc
@cython.nogil
@cython.exceptval(check=False)
@cython.cdivision(True)
def objhash_extract(h: NativeObjHash, last_obj: i64, no_match: cython.bint) -> i64:
    """objhash_extract: pop the head of the first non-empty bucket, searching from the bucket
    of last_obj->page (bucket 0 for NULL), one bucket further with ``no_match``."""
    hash_idx: i64 = 0
    last_page: i64 = 0
    obj: i64
    skip_bucket: i64 = 0
    _n: i64
    if last_obj != 0:
        last_page = h.words[(last_obj >> 3) + OBJ_PAGE]
        hash_idx = objhash_bucket(last_page)
    if h.objhash_cnt < 2:
        h.too_many += 1                                  # "request too many objects"
        return 0
    if no_match:
        hash_idx = (hash_idx + 1) % OBJHASH_SZ
    for _n in range(OBJHASH_SZ):                         # the kernel loops while(1)
        obj = h.heads[hash_idx]
        if obj == 0:
            skip_bucket += 1
            hash_idx = (hash_idx + 1) % OBJHASH_SZ
            continue
        if no_match and last_obj != 0 and h.words[(obj >> 3) + OBJ_PAGE] == last_page:
            h.same_page += 1                             # "return same page"
        hlist_del(h, obj)
        h.objhash_cnt -= 1
        if skip_bucket >= OBJHASH_SZ // 2:
            h.skipped_many += 1                          # "search skipped many buckets"
        return obj
    return 0


@cython.cfunc
@cython.nogil
@cython.exceptval(check=False)
@cython.cdivision(True)
def extract_bulk(h: NativeObjHash, p: cython.p_longlong, bulk: i64, modulo: i64) -> cython.bint:
    """Refill p[0:bulk] from the hash: every ``modulo``-th slot from the bucket of the current
    p[0] (no_match false), the others from a page other than the previous pick's."""
    j: i64
    last: i64 = 0
    if modulo <= 0:
        modulo = 32768 * 2                               # N-match "disabled", % kept
    for j in range(bulk):
        if j % modulo == 0:
            last = objhash_extract(h, p[0], False)
        else:
            last = objhash_extract(h, last, True)
        if last == 0:
            return False
        p[j] = last
    return True


@cython.cdivision(True)
def bench_test03(h: NativeObjHash, loops: i64, bulk: i64, modulo: i64, use_bulk: cython.bint,
                 strategy: cython.int, objs: object) -> tuple:
    """__benchmark_slab_bulk of slab_bulk_test03 (type BULK when ``use_bulk``, else
    FALLBACK_BULK): allocate ``bulk`` objects, add them to the hash, barrier, refill the array
    from the hash (scattered over many slabs), free it.  Hashing is inside the timed region."""
    s: Cache = h.s
    cs: i64 = cpu_of(s)
    c: i64 = cpu_rec(s, cs & 0xFFFFFFFF)
    st: i64 = stats_rec(s, cs & 0xFFFFFFFF, cs >> 32)
    p: cython.p_longlong = words_of(objs)
    cnt: i64 = 0
    _i: i64
    j: i64
    ok: cython.bint
    ns0: cython.ulonglong
    t0: cython.ulonglong
    t1: cython.ulonglong
    ns1: cython.ulonglong
    nogil_enter_wait()                # a fork() waits for the loop (cache.py)
    with cython.nogil:
        ns0 = wallclock_ns()
        t0 = tsc_start()
        for _i in range(loops):
            if use_bulk:
                ok = kmem_cache_alloc_bulk_any(s, c, st, bulk, p) > 0
            else:
                ok = my__kmem_cache_alloc_bulk(s, c, st, bulk, p)
            if not ok:
                break
            for j in range(bulk):
                objhash_add_one(h, p[j])
            barrier()
            if not extract_bulk(h, p, bulk, modulo):
                break
            if use_bulk:
                kmem_cache_free_bulk_any(s, c, st, bulk, p, strategy)
            else:
                my__kmem_cache_free_bulk(s, c, st, bulk, p)
            cnt += bulk
        t1 = tsc_stop()
        ns1 = wallclock_ns()
        nogil_exit()
    return cnt, t0, t1, ns0, ns1
