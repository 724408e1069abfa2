"""The two ways of running a timed benchmark loop: ``native`` and ``python``.

A *driver* owns the loop between ``time_bench_start`` and ``time_bench_stop`` of each kind of
measurement the prototype-kernel modules make:

==================  ===========================================================================
``native``          the loop runs inside the compiled module ``pyslub.bench._native`` and calls
                    the core's C-level functions (``slab_alloc_node``, ``do_slab_free``,
                    ``kmem_cache_alloc_bulk``, ``kmem_cache_free_bulk``), as the kernel modules
                    call the kernel's: what the allocator itself costs.
``python``          the loop runs in Python and calls the public API (``cache.alloc()``,
                    ``cache.free(a)``, ``cache.alloc_bulk(p)``, ``cache.free_bulk(p, None,
                    strategy)``; test03's hash is ``pyslub.bench.objhash.ObjHash``): what a
                    Python program pays.
==================  ===========================================================================

Each method gets the ``TimeBenchRecord`` (``rec.loops`` iterations, ``rec.step`` objects per
iteration), fills its clock fields and ``invoked_cnt``, and returns ``invoked_cnt`` (0 means
"function being timed failed", as in the kernel).  Cache creation and destruction happen in the
caller (``pyslub.bench.suite``), outside the timed region.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pyslub._layout import FREE_BULK_STRATEGIES
from pyslub.bench import _native
from pyslub.bench.objhash import ObjHash, struct_page_ptr
from pyslub.bench.time_bench import TimeBenchClock, TimeBenchRecord

__all__ = [
    "DRIVERS",
    "NativeDriver",
    "PythonDriver",
    "bench_clock",
    "get_driver",
    "my_kmem_cache_alloc_bulk",
    "my_kmem_cache_free_bulk",
]


def bench_clock() -> TimeBenchClock:
    """The clocks of a python-driver measurement: the same serialised TSC reads and wall clock
    the native loops use (``time.perf_counter_ns`` as the "TSC" when uncompiled)."""
    return TimeBenchClock(
        tsc_start=_native.read_tsc,
        tsc_stop=_native.read_tsc_stop,
        wallclock_ns=_native.read_wallclock_ns,
    )


def _fill(rec: TimeBenchRecord, result: tuple[int, int, int, int, int]) -> int:
    """Store what a native loop measured: (invoked_cnt, tsc_start, tsc_stop, start, stop)."""
    cnt, rec.tsc_start, rec.tsc_stop, rec.start_ns, rec.stop_ns = result
    rec.invoked_cnt = cnt
    return cnt


class NativeDriver:
    """Timed loops inside the compiled module, calling the core at C level."""

    name = "native"

    def objs(self, n: int) -> np.ndarray:
        return _native.objs_array(n)

    def objhash(self, cache: Any) -> Any:
        """test03's hash, kept inside the objects of ``cache``."""
        return _native.NativeObjHash(cache)

    def for_loop(self, rec: TimeBenchRecord) -> int:
        return _fill(rec, _native.bench_for_loop(rec.loops))

    def fastpath_reuse(self, rec: TimeBenchRecord, cache: Any) -> int:
        return _fill(rec, _native.bench_fastpath_reuse(cache, rec.loops))

    def bulk_fallback(self, rec: TimeBenchRecord, cache: Any, bulk: int, objs: Any) -> int:
        return _fill(rec, _native.bench_bulk_fallback(cache, rec.loops, bulk, objs))

    def bulk_quick_reuse(self, rec: TimeBenchRecord, cache: Any, bulk: int, strategy: str,
                         objs: Any) -> int:
        sid = FREE_BULK_STRATEGIES.index(strategy)
        return _fill(rec, _native.bench_bulk_quick_reuse(cache, rec.loops, bulk, sid, objs))

    def test03(self, rec: TimeBenchRecord, cache: Any, objhash: Any, bulk: int, modulo: int,
               strategy: str | None, objs: Any) -> int:
        """test03's loop; ``strategy`` None = FALLBACK_BULK (my__ per-object loops)."""
        sid = 0 if strategy is None else FREE_BULK_STRATEGIES.index(strategy)
        return _fill(rec, _native.bench_test03(objhash, rec.loops, bulk, modulo,
                                               strategy is not None, sid, objs))


# -- python driver ------------------------------------------------------------------------------
def my_kmem_cache_free_bulk(cache: Any, nr: int, p: list[int]) -> None:
    """slab_common's generic free loop, written against the public API."""
    free = cache.free
    for i in range(nr):
        free(p[i])


def my_kmem_cache_alloc_bulk(cache: Any, nr: int, p: list[int]) -> bool:
    """slab_common's generic alloc loop; on failure frees what it got and returns False."""
    alloc = cache.alloc
    for i in range(nr):
        try:
            p[i] = alloc()
        except MemoryError:
            my_kmem_cache_free_bulk(cache, i, p)
            return False
    return True


class PythonDriver:
    """Timed loops in Python over the public API (what a Python user pays)."""

    name = "python"

    def objs(self, n: int) -> np.ndarray:
        return np.zeros(max(int(n), 1), dtype=np.uint64)

    def objhash(self, cache: Any) -> ObjHash:
        check_addr = cache.check_addr           # slab page index of an object
        return ObjHash(lambda obj: struct_page_ptr(check_addr(obj)))

    def for_loop(self, rec: TimeBenchRecord) -> int:
        cnt = 0
        rec.start()
        for _ in range(rec.loops):
            cnt += 1
        rec.stop(cnt)
        return cnt

    def fastpath_reuse(self, rec: TimeBenchRecord, cache: Any) -> int:
        alloc, free = cache.alloc, cache.free
        cnt = 0
        rec.start()
        try:
            for _ in range(rec.loops):
                obj = alloc()
                free(obj)
                cnt += 1
        except MemoryError:
            pass
        rec.stop(cnt)
        return cnt

    def bulk_fallback(self, rec: TimeBenchRecord, cache: Any, bulk: int, objs: Any) -> int:
        p = [0] * bulk
        cnt = 0
        rec.start()
        for _ in range(rec.loops):
            if not my_kmem_cache_alloc_bulk(cache, bulk, p):
                break
            my_kmem_cache_free_bulk(cache, bulk, p)
            cnt += bulk
        rec.stop(cnt)
        return cnt

    def bulk_quick_reuse(self, rec: TimeBenchRecord, cache: Any, bulk: int, strategy: str,
                         objs: Any) -> int:
        p = objs[:bulk]                          # a view: alloc_bulk/free_bulk use all of it
        alloc_bulk, free_bulk = cache.alloc_bulk, cache.free_bulk
        cnt = 0
        rec.start()
        for _ in range(rec.loops):
            if not alloc_bulk(p):
                break
            free_bulk(p, None, strategy)
            cnt += bulk
        rec.stop(cnt)
        return cnt

    def test03(self, rec: TimeBenchRecord, cache: Any, objhash: ObjHash, bulk: int,
               modulo: int, strategy: str | None, objs: Any) -> int:
        p = objs[:bulk]
        lst = [0] * bulk
        alloc_bulk, free_bulk = cache.alloc_bulk, cache.free_bulk
        add_bulk, extract_bulk = objhash.add_bulk, objhash.extract_bulk
        cnt = 0
        rec.start()
        for _ in range(rec.loops):
            if strategy is not None:
                if not alloc_bulk(p):
                    break
                lst = p.tolist()
            elif not my_kmem_cache_alloc_bulk(cache, bulk, lst):
                break
            add_bulk(lst, bulk)
            if not extract_bulk(lst, bulk, modulo):
                break
            if strategy is not None:
                p[:] = lst
                free_bulk(p, None, strategy)
            else:
                my_kmem_cache_free_bulk(cache, bulk, lst)
            cnt += bulk
        rec.stop(cnt)
        return cnt


DRIVERS = {"native": NativeDriver, "python": PythonDriver}


def get_driver(name: str) -> NativeDriver | PythonDriver:
    """A driver by name ("native" or "python")."""
    try:
        return DRIVERS[name]()
    except KeyError:
        raise ValueError(f"unknown driver {name!r}; choose one of {tuple(DRIVERS)}") from None
