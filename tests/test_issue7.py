"""The scenarios of issue 7's "Why" list, as regression tests.

Each one was a crash, a duplicate handout or silent corruption on the single-threaded core:

1. kfree_bulk checked its array, then called Python code and read the array again: a profile
   hook or a second thread rewriting ``p[0]`` in between made the core index the page records
   with an unchecked address (SIGSEGV)                                    -> test_kfree_bulk_*
2. ``shrink()`` allocated Python objects while slabs were unlinked; a ``__del__`` run by the
   cyclic GC called ``cache.free()``: nr_partial -1, objects handed out twice
                                                                   -> test_shrink_with_finalizers
3. ``mem.pa.cur_cpu = 50_000_000; cache.alloc()``: SIGSEGV (writable internals)
                                                                    -> test_internals_* below
4. two threads in overlapping ``on_cpu`` blocks ran on each other's cpu
                                  -> test_threads.py::test_on_cpu_binds_only_the_calling_thread*
5. uncompiled, 4 threads doing alloc_bulk/free_bulk got 134,658 duplicate handouts
                        -> test_threads.py::test_stress_bulk (its uncompiled rerun, 4 threads)
6. fork(): a child's ordinary use corrupted the parent       -> test_fork.py (scenario "quiet")

Crash candidates run in child processes (``childproc``), compiled and uncompiled.
"""

from __future__ import annotations

import pytest
from childproc import MODES, RERUN, launch_all, report

import pyslub

COMPILED = pyslub.COMPILED

CHILD = r'''
import gc, json, sys, threading, time
import numpy as np
import pyslub
from pyslub import SlabError

CASE = sys.argv[1]
out = {"compiled": pyslub.COMPILED}
WILD = (1 << 62) + 8                  # outside any arena, 8-aligned


def live(mem, a):
    try:
        mem.view(a)
        return True
    except SlabError:
        return False


if CASE in ("kfree-profile", "kfree-thread", "free_bulk-thread"):
    sys.setswitchinterval(1e-6)           # the rewriting thread runs between any two bytecodes
    mem = pyslub.Memory(size=64 << 20, nr_cpus=2)
    c = mem.create_cache("objs", 64)
    rounds = 30 if pyslub.COMPILED else 4
    refused = freed = 0
    leftovers = []
    for r in range(rounds):
        if CASE == "free_bulk-thread":
            addrs = c.alloc_many(3000).tolist()
        else:
            addrs = [mem.kmalloc(s) for s in (8, 64, 200, 4096, 9000) * 100]
        p = np.array(addrs, dtype=np.uint64)
        stop = threading.Event()

        def rewrite():
            while not stop.is_set():
                p[0] = WILD
                time.sleep(0)               # let the caller run with p[0] rewritten ...
                p[0] = addrs[0]
                time.sleep(0)               # ... and with it restored

        if CASE == "kfree-profile":
            events = [r]                    # a different parity of rewrites every round

            def hook(frame, event, arg):
                events[0] += 1
                p[0] = WILD if events[0] % 2 else addrs[0]
            sys.setprofile(hook)
        else:
            t = threading.Thread(target=rewrite)
            t.start()
        try:
            if CASE == "free_bulk-thread":
                c.free_bulk(p, strategy="fallback")
            else:
                mem.kfree_bulk(p)
            freed += 1
            ok = not any(live(mem, a) for a in addrs)
        except SlabError as e:
            refused += 1
            assert "p[0]" in str(e), e         # the only entry anyone rewrote
            ok = all(live(mem, a) for a in addrs)       # nothing was freed
            leftovers.append(addrs)
        finally:
            sys.setprofile(None)
            stop.set()
            if CASE != "kfree-profile":
                t.join()
        assert ok, "a call freed some objects but not all"
        if leftovers:                       # refused: free them, nobody rewriting now
            mem.kfree_bulk(np.array(leftovers.pop(), dtype=np.uint64))
    out["refused"], out["freed"] = refused, freed
    out["validate"] = sum((k.validate() for k in mem.caches.values()), [])
    out["live"] = sum(k.live_objects() for k in mem.caches.values())

elif CASE == "shrink-finalizers":
    mem = pyslub.Memory(size=64 << 20, nr_cpus=2)
    c = mem.create_cache("shrunk", 64)
    pool = list(c.alloc_many(4000).tolist())
    held = set(pool)
    dups = []
    nr_partial_seen = []

    class Freer:
        def __del__(self):
            if pool:
                a = pool.pop()
                held.discard(a)
                c.free(a)

    gc.set_threshold(1, 1, 1)
    for r in range(100 if pyslub.COMPILED else 12):
        for _ in range(10):
            f = Freer()
            f.me = f                       # a cycle: the cyclic GC finalizes it
        c.shrink()
        nr_partial_seen.append(c.occupancy()["partial"])
        for a in c.alloc_many(5).tolist():
            if a in held:
                dups.append(a)
            held.add(a)
            pool.insert(0, a)
    gc.set_threshold(700, 10, 10)
    del f
    gc.collect()
    pool.clear()
    out["dups"] = dups[:5]
    out["min_partial_seen"] = min(nr_partial_seen)
    out["validate"] = c.validate()
    c.free_bulk(np.array(sorted(held), dtype=np.uint64))
    out["live"] = c.live_objects()
    out["validate"] += c.validate()

elif CASE.startswith("hole-"):
    # known holes (reported): each must end in a Python exception, not SIGSEGV
    mem = pyslub.Memory(size=16 << 20, nr_cpus=2)
    c = mem.create_cache("t", 64)
    a = c.alloc()
    try:
        if CASE == "hole-mapping":
            import struct
            from pyslub import _layout as L
            m = mem._seg.mapping           # the mmap holding header, page records, cpu records
            pm = struct.unpack_from("q", m, L.H_PM_OFF * 8)[0]
            struct.pack_into("q", m, pm + ((a >> L.PAGE_SHIFT) * L.PM_STRIDE + L.PM_HEAD) * 8,
                             1 << 40)
        elif CASE == "hole-set_binding":
            pyslub.slab.set_binding(mem._seg, 50_000_000, 0)
        elif CASE == "hole-cpu_users_add":
            pyslub.slab.cpu_users_add(mem._seg, 1 << 40, 1)
        c.free(a)
        c.free(c.alloc())
        out["outcome"] = "no effect"
    except (SlabError, ValueError, TypeError, AttributeError, IndexError) as e:
        out["outcome"] = type(e).__name__
print(json.dumps(out))
'''

CASES = ("kfree-profile", "kfree-thread", "free_bulk-thread", "shrink-finalizers")
HOLES = ("hole-mapping", "hole-set_binding", "hole-cpu_users_add")
_RESULTS: dict = {}


def _key(case: str, mode: str):
    return (CHILD, (case,), mode)


@pytest.fixture(scope="module")
def children():
    keys = [_key(c, m) for c in CASES for m in MODES] + [_key(h, "compiled") for h in HOLES]
    return launch_all(keys, _RESULTS)


needs_children = pytest.mark.skipif(RERUN, reason="the compiled run launches both modes")


@needs_children
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", ["kfree-profile", "kfree-thread", "free_bulk-thread"])
def test_kfree_bulk_array_rewritten_during_the_call(children, case, mode):
    """The array is copied once before anything is checked: a rewrite of p[0] by a profile
    hook or another thread either is seen by the check (SlabError naming p[0], nothing freed)
    or is not seen at all (everything freed) -- never a crash, never half a call."""
    out = report(children[_key(case, mode)], _key(case, mode))
    assert out["validate"] == []
    assert out["live"] == 0
    assert out["freed"] + out["refused"] > 0
    if case == "kfree-profile":                  # the hook's rewrites were seen, or not
        assert out["freed"] and out["refused"], out


@needs_children
@pytest.mark.parametrize("mode", MODES)
def test_shrink_with_finalizers(children, mode):
    out = report(children[_key("shrink-finalizers", mode)], _key("shrink-finalizers", mode))
    assert out["dups"] == []
    assert out["min_partial_seen"] >= 0
    assert out["validate"] == []
    assert out["live"] == 0


@needs_children
@pytest.mark.parametrize("hole", HOLES)
def test_former_hole_is_an_exception_not_a_crash(children, hole):
    """The mapping is private; set_binding / cpu_users_add check their indices."""
    out = report(children[_key(hole, "compiled")], _key(hole, "compiled"))
    assert out["outcome"] in ("AttributeError", "ValueError"), out


def test_segments_and_cache_views_cannot_be_forged():
    """A Segment only comes from its factories; a cache view only of a live descriptor."""
    from pyslub.cache import Cache
    from pyslub.page_alloc import Segment

    mem = pyslub.Memory(size=8 << 20, nr_cpus=2)
    c = mem.create_cache("real", 64)
    with pytest.raises(TypeError, match="made by Segment.private"):
        Segment(object(), bytearray(1 << 16), False)
    for cid in (0, c.id + 1, 1 << 40, -1, "1"):
        with pytest.raises(ValueError, match="no live cache"):
            Cache(mem._seg, cid, mem._bind)
    mem.destroy_cache(c)
    with pytest.raises(ValueError, match="no live cache"):
        Cache(mem._seg, c.id, mem._bind)
    for bad in ((mem._seg, 1 << 40, 0), (mem._seg, 0, 1 << 20), (mem._seg, -2, 0)):
        with pytest.raises(ValueError, match="outside"):
            pyslub.slab.set_binding(*bad)
    with pytest.raises(ValueError, match="not a destroyed cache"):
        pyslub.slab.release_descriptor(mem._seg, 1 << 40)


# ---- 3. internals are private or read-only (compiled: C attributes) -------------------------

HIDDEN = ("words", "pm", "meta", "desc", "state", "ring", "seg", "d", "cpu_base",
          "stats_base", "token", "binder", "reciprocal_size", "tid_step", "observe",
          "recorders", "drain_lock", "cpu_slab")
READONLY = ("name", "id", "gen", "flags", "object_size", "size", "align", "offset", "inuse",
            "order", "objects", "min_order", "min_objects", "arena_bytes", "nr_cpus", "debug",
            "checks", "reports")
SEG_HIDDEN = ("hdr", "desc", "pm", "state", "meta", "words", "arena", "mapping", "owner")
SEG_READONLY = ("arena_bytes", "nr_pages", "meta_bytes", "nr_cpus", "max_caches", "token",
                "shared")


def test_internals_of_a_cache_are_not_reachable_compiled():
    if not COMPILED:
        pytest.skip("uncompiled, attributes are Python ones (writes refused, below)")
    mem = pyslub.Memory(size=8 << 20, nr_cpus=2)
    cache = mem.create_cache("sealed", 64)
    for name in HIDDEN:
        assert not hasattr(cache, name), name
    for name in SEG_HIDDEN:
        assert not hasattr(mem._seg, name), name
    assert not hasattr(mem, "pa")


@pytest.mark.parametrize("name", READONLY + HIDDEN[:6])
def test_cache_attributes_cannot_be_written(name):
    mem = pyslub.Memory(size=8 << 20, nr_cpus=2)
    cache = mem.create_cache("sealed", 64)
    with pytest.raises(AttributeError):
        setattr(cache, name, 50_000_000)
    a = cache.alloc()
    cache.free(a)
    assert cache.validate() == []


@pytest.mark.parametrize("name", SEG_READONLY + SEG_HIDDEN)
def test_segment_attributes_cannot_be_written(name):
    if not COMPILED:
        pytest.skip("uncompiled, the Segment is a plain Python object")
    mem = pyslub.Memory(size=8 << 20, nr_cpus=2)
    with pytest.raises(AttributeError):
        setattr(mem._seg, name, 50_000_000)


def test_views_for_tools_are_read_only():
    mem = pyslub.Memory(size=8 << 20, nr_cpus=2)
    cache = mem.create_cache("views", 64)
    for name, view in cache._views().items():
        if isinstance(view, memoryview):
            assert view.readonly, name
            with pytest.raises(TypeError):
                view[0] = 1
