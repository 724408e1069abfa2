"""Every bad input is refused with the right exception, and a refused call changes nothing.

"Nothing changed" is checked on everything observable: SLUB_STATS counters, occupancy, live
objects, cpu and node lists, slab list, free pages, reports, and ``validate() == []``; for
arrays also the array's contents.  After a refused bulk call its good objects must still be
allocated -- and freeable.
"""

from __future__ import annotations

import numpy as np
import pytest

import pyslub
from pyslub import SlabError
from pyslub._layout import PM_HEAD

STRATEGIES = pyslub.FREE_BULK_STRATEGIES
NULL_SKIPPING = ("lookahead-fwd", "lookahead")
ARENA = 16 << 20
NR_CPUS = 4


# =============================================================================================
# Fixtures and helpers
# =============================================================================================

class World:
    """A small arena with two plain 96-byte caches in a lived-in state: objects on several
    cpus, partial slabs, a cpu partial list, some objects freed.  96 bytes: 42 objects per
    4 KiB slab and 64 bytes of slack at the slab's end (an address there is no object)."""

    def __init__(self):
        self.mem = pyslub.Memory(size=ARENA, nr_cpus=NR_CPUS)
        self.c = self.mem.create_cache("c", 96)
        self.other = self.mem.create_cache("other", 96)
        per = self.c.info["objs_per_slab"]
        assert per * 96 < 4096 << self.c.info["order"]      # there is slack after the last
        self.live = []
        for cpu in range(NR_CPUS):
            with self.mem.on_cpu(cpu):
                objs = [self.c.alloc() for _ in range(per + 5 * cpu + 3)]
                for x in objs[::3]:                           # free every third
                    self.c.free(x)
                self.live += [x for i, x in enumerate(objs) if i % 3]
        self.foreign = [self.other.alloc() for _ in range(10)]
        self.large = self.mem.kmalloc(3 * 4096)              # a large kmalloc block
        for i, x in enumerate(self.live):                    # contents: part of the state
            self.c.view(x)[:] = bytes([i & 0xFF]) * 96
        for i, x in enumerate(self.foreign):
            self.other.view(x)[:] = bytes([0xA0 + i]) * 96
        assert self.c.validate() == [] and self.other.validate() == []

    # addresses that are not objects of cache c, by reason
    def bad_addresses(self):
        x = self.live[0]
        slab = self.c.slab_of(x)
        slab_end = slab + (4096 << self.c.info["order"])
        per = self.c.info["objs_per_slab"]
        free_page = find_free_page(self.mem)
        return {
            "null": (0, "NULL"),
            "negative": (-96, "outside"),
            "arena_end": (ARENA, "outside"),
            "beyond_arena": (ARENA + 4096, "outside"),
            "int64_max": (2**63 - 1, "outside"),
            "high_bit": (2**63, "outside"),               # what a uint64 array can hold
            "all_ones": (2**64 - 96, "outside"),
            "reserved_page0": (96, "not on a slab page"),
            "free_page": (free_page, "not on a slab page"),
            "large_kmalloc": (self.large, "not on a slab page"),
            "other_cache": (self.foreign[0], "another cache"),
            "plus_one": (x + 1, "boundary"),
            "plus_eight": (x + 8, "boundary"),
            "last_byte": (x + 95, "boundary"),
            "slab_slack": (slab + per * 96, "boundary"),      # in the slab, after the last
            "slab_last_byte": (slab_end - 1, "boundary"),
        }


BAD_KINDS = ("null", "negative", "arena_end", "beyond_arena", "int64_max", "high_bit",
             "all_ones", "reserved_page0", "free_page", "large_kmalloc", "other_cache",
             "plus_one", "plus_eight", "last_byte", "slab_slack", "slab_last_byte")
# for arrays: one address per check of object_page(), plus the values only a uint64 array
# can carry (the negative one cannot be stored)
ARRAY_BAD_KINDS = ("null", "beyond_arena", "high_bit", "all_ones", "reserved_page0",
                   "large_kmalloc", "other_cache", "plus_eight", "slab_slack")


def find_free_page(mem) -> int:
    """Address of a page the buddy allocator holds free (no slab, no large block on it)."""
    seg = mem._seg                                   # read-only page-record access (tests)
    for page in range(seg.nr_pages - 1, 0, -1):
        if seg.page_word(page, PM_HEAD) == 0:
            return page << 12
    raise AssertionError("no free page")


@pytest.fixture
def world():
    return World()


def snapshot(w: World) -> dict:
    out = {"free_pages": w.mem.free_pages(),
           "contents": [bytes(w.c.view(x)) for x in w.live]
           + [bytes(w.other.view(x)) for x in w.foreign]}
    for cache in (w.c, w.other):
        out[cache.name] = {
            "stats": cache.stats(), "occupancy": cache.occupancy(),
            "live": cache.live_objects(), "slabs": cache.slabs(),
            "node_partial": cache.node_partial(), "reports": list(cache.reports),
            "cpus": [cache.cpu_state(k) for k in range(NR_CPUS)],
            "slab_states": {s: cache.slab_state(s) for s in cache.slabs()},
        }
    return out


def assert_unchanged(w: World, before: dict) -> None:
    after = snapshot(w)
    for key in before:
        assert after[key] == before[key], f"{key} changed"
    assert w.c.validate() == []
    assert w.other.validate() == []


def u64(values) -> np.ndarray:
    return np.array([v % 2**64 for v in values], dtype=np.uint64)


def free_all(w: World, objs) -> None:
    n = w.c.live_objects()
    w.c.free_bulk(u64(objs), strategy="fallback")
    assert w.c.live_objects() == n - len(objs)
    assert w.c.validate() == []


# =============================================================================================
# cache.free / cache.view / cache.slab_of
# =============================================================================================

@pytest.mark.parametrize("kind", BAD_KINDS)
def test_free_bad_address_changes_nothing(world, kind):
    addr, reason = world.bad_addresses()[kind]
    before = snapshot(world)
    with pytest.raises(SlabError, match=reason):
        world.c.free(addr)
    assert_unchanged(world, before)
    free_all(world, world.live)                 # every live object is still freeable


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_view_bad_address(world, kind):
    addr, reason = world.bad_addresses()[kind]
    before = snapshot(world)
    with pytest.raises(SlabError, match=reason):
        world.c.view(addr)
    with pytest.raises(SlabError):
        world.c.slab_of(addr)
    assert_unchanged(world, before)


@pytest.mark.parametrize("bad", [None, "4096", 4096.0, b"\x00\x10", [4096]])
def test_free_non_integer_address(world, bad):
    before = snapshot(world)
    with pytest.raises((TypeError, ValueError)):
        world.c.free(bad)
    assert_unchanged(world, before)


def test_view_of_a_good_object(world):
    x, y = world.live[0], world.live[1]
    v = world.c.view(x)
    assert len(v) == 96 and not v.readonly
    v[:] = bytes(range(96))
    world.c.view(y)[:] = b"\xee" * 96
    assert bytes(world.c.view(x)) == bytes(range(96))     # neighbours do not overlap
    assert world.c.validate() == []


def test_free_twice_through_a_refused_call_is_still_one_free(world):
    """A refused free must not have half-freed the object: freeing it properly afterwards
    is its one and only free."""
    x = world.live[0]
    with pytest.raises(SlabError):
        world.c.free(x + 1)
    n = world.c.live_objects()
    world.c.free(x)
    assert world.c.live_objects() == n - 1
    assert world.c.validate() == []


# =============================================================================================
# cache.free_bulk
# =============================================================================================

@pytest.mark.parametrize("position", ["first", "middle", "last"])
@pytest.mark.parametrize("kind", ARRAY_BAD_KINDS)
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_free_bulk_bad_entry_frees_nothing(world, strategy, kind, position):
    addr, reason = world.bad_addresses()[kind]
    if kind == "null" and strategy in NULL_SKIPPING:
        pytest.skip("NULL entries are skipped by the lookahead strategies (tested below)")
    good = world.live[:7]
    i = {"first": 0, "middle": 3, "last": 7}[position]
    entries = good[:i] + [addr] + good[i:]
    p = u64(entries)
    orig = p.copy()
    before = snapshot(world)
    with pytest.raises(SlabError, match=reason) as exc:
        world.c.free_bulk(p, strategy=strategy)
    msg = str(exc.value)
    assert f"p[{i}]" in msg                           # names the index ...
    assert f"{addr % 2**64:#x}" in msg               # ... and the address
    assert np.array_equal(p, orig)                    # array untouched
    assert_unchanged(world, before)
    # the good objects are still allocated: freeing them now works, once each
    q = u64(good)
    world.c.free_bulk(q, strategy=strategy)
    assert world.c.live_objects() == before["c"]["live"] - len(good)
    assert world.c.validate() == []


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_free_bulk_first_bad_index_is_named(world, strategy):
    bad = world.bad_addresses()
    entries = world.live[:3] + [bad["plus_eight"][0]] + world.live[3:5] + [bad["other_cache"][0]]
    p = u64(entries)
    with pytest.raises(SlabError, match=r"p\[3\]"):
        world.c.free_bulk(p, strategy=strategy)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_free_bulk_size_excludes_bad_tail(world, strategy):
    """Only p[:size] is looked at: a bad entry behind ``size`` is no error and stays put."""
    bad = world.bad_addresses()["plus_one"][0]
    good = world.live[:6]
    p = u64(good + [bad, world.live[6]])
    n = world.c.live_objects()
    world.c.free_bulk(p, size=6, strategy=strategy)
    assert world.c.live_objects() == n - 6
    assert list(p[6:]) == [bad, world.live[6]]
    assert world.c.validate() == []
    world.c.free(world.live[6])                       # p[7] was not freed


@pytest.mark.parametrize("strategy", NULL_SKIPPING)
def test_free_bulk_lookahead_skips_null_entries(world, strategy):
    good = world.live[:6]
    p = u64([0, good[0], 0, 0] + good[1:4] + [0] + good[4:] + [0])
    n = world.c.live_objects()
    world.c.free_bulk(p, strategy=strategy)
    assert world.c.live_objects() == n - 6
    assert not p.any()                                # consumed slots NULLed
    assert world.c.validate() == []
    world.c.free_bulk(u64([0, 0, 0]), strategy=strategy)      # only NULLs: a no-op
    assert world.c.live_objects() == n - 6


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_free_bulk_empty(world, strategy):
    before = snapshot(world)
    world.c.free_bulk(np.zeros(0, dtype=np.uint64), strategy=strategy)
    p = u64(world.live[:4])
    world.c.free_bulk(p, size=0, strategy=strategy)
    assert list(p) == world.live[:4]
    assert_unchanged(world, before)


def _bad_arrays(objs):
    good = u64(objs)
    ro = good.copy()
    ro.flags.writeable = False
    return {
        "list": list(objs),
        "tuple": tuple(objs),
        "int64": np.array(objs, dtype=np.int64),
        "uint32": np.array(objs, dtype=np.uint32),
        "float64": np.array(objs, dtype=np.float64),
        "object": np.array(objs, dtype=object),
        "2d": good.reshape(1, -1).copy(),
        "strided": np.repeat(good, 2)[::2],
        "reversed_view": good[::-1],
        "read_only": ro,
        "memoryview": memoryview(good.copy()),
    }


@pytest.mark.parametrize("which", list(_bad_arrays([8, 16])))
@pytest.mark.parametrize("strategy", [None, *STRATEGIES])
def test_free_bulk_bad_array_type(world, which, strategy):
    p = _bad_arrays(world.live[:4])[which]
    before = snapshot(world)
    with pytest.raises(TypeError):
        world.c.free_bulk(p, strategy=strategy)
    assert_unchanged(world, before)
    free_all(world, world.live[:4])


@pytest.mark.parametrize("size", [5, 100, -1])
def test_free_bulk_bad_size(world, size):
    p = u64(world.live[:4])
    before = snapshot(world)
    with pytest.raises(ValueError):
        world.c.free_bulk(p, size=size)
    assert list(p) == world.live[:4]
    assert_unchanged(world, before)


@pytest.mark.parametrize("strategy", ["", "LOOKAHEAD", "v4.4", "slub", 3])
def test_free_bulk_unknown_strategy(world, strategy):
    p = u64(world.live[:4])
    before = snapshot(world)
    with pytest.raises(ValueError):
        world.c.free_bulk(p, strategy=strategy)
    assert list(p) == world.live[:4]
    assert_unchanged(world, before)


# =============================================================================================
# cache.alloc_bulk / alloc_many
# =============================================================================================

@pytest.mark.parametrize("which", list(_bad_arrays([8, 16])))
def test_alloc_bulk_bad_array_type(world, which):
    p = _bad_arrays([0, 0, 0, 0])[which]
    before = snapshot(world)
    with pytest.raises(TypeError):
        world.c.alloc_bulk(p)
    assert_unchanged(world, before)


@pytest.mark.parametrize("size", [5, 1000, -1])
def test_alloc_bulk_bad_size(world, size):
    p = np.full(4, 7, dtype=np.uint64)
    before = snapshot(world)
    with pytest.raises(ValueError):
        world.c.alloc_bulk(p, size=size)
    assert list(p) == [7, 7, 7, 7]
    assert_unchanged(world, before)


def test_alloc_bulk_size_limits_what_is_written(world):
    p = np.full(6, 7, dtype=np.uint64)
    assert world.c.alloc_bulk(p, size=4) == 4
    assert list(p[4:]) == [7, 7]
    assert len(set(p[:4].tolist())) == 4
    for x in p[:4]:
        world.c.slab_of(int(x))
    assert world.c.alloc_bulk(p, size=0) == 0
    assert world.c.validate() == []


# =============================================================================================
# kfree / kfree_bulk
# =============================================================================================

def kmalloc_world(w: World):
    """kmalloc'ed objects of several classes plus a large block."""
    small = [w.mem.kmalloc(s) for s in (8, 50, 100, 200, 1000, 5000) for _ in range(3)]
    return small, w.mem.kmalloc(20000)


def kmalloc_snapshot(w: World) -> dict:
    return {"free_pages": w.mem.free_pages(),
            "caches": {name: (c.live_objects(), c.stats(), c.occupancy())
                       for name, c in w.mem.caches.items()}}


@pytest.mark.parametrize("offset", [1, 8, 4095])
def test_kfree_interior_addresses(world, offset):
    small, large = kmalloc_world(world)
    before = kmalloc_snapshot(world)
    with pytest.raises(SlabError):
        world.mem.kfree(large + offset)           # inside the large block
    with pytest.raises(SlabError):
        world.mem.kfree(small[-1] + (offset % 8 or 8))     # inside a 5000-byte (8k) object
    assert kmalloc_snapshot(world) == before
    assert world.mem.ksize(large) == 32768         # still allocated: 20000 B -> order 3
    world.mem.kfree(large)
    assert world.mem.free_pages() == before["free_pages"] + 8
    for x in small:
        world.mem.kfree(x)


@pytest.mark.parametrize("addr", [-1, ARENA, ARENA + 8, 2**63, 2**64 - 8, 8, 4096 * 3 + 8])
def test_kfree_bad_address(world, addr):
    kmalloc_world(world)
    before = kmalloc_snapshot(world)
    with pytest.raises(SlabError):
        world.mem.kfree(addr)
    assert kmalloc_snapshot(world) == before


def test_kfree_null_and_zero_size_ptr_are_no_ops(world):
    kmalloc_world(world)
    before = kmalloc_snapshot(world)
    world.mem.kfree(0)
    world.mem.kfree(pyslub.ZERO_SIZE_PTR)
    assert kmalloc_snapshot(world) == before


@pytest.mark.parametrize("position", [0, 4, 9])
@pytest.mark.parametrize("kind", ["interior", "large_interior", "outside", "high_bit",
                                  "not_slab", "free_page"])
def test_kfree_bulk_bad_entry_frees_nothing(world, kind, position):
    small, large = kmalloc_world(world)
    bad = {"interior": small[-1] + 8, "large_interior": large + 4096, "outside": ARENA + 64,
           "high_bit": 2**63 + 64, "not_slab": 96,
           "free_page": world.mem._seg.arena_bytes - 4096}[kind]
    entries = small[:4] + [large] + small[4:8]       # 9 good entries incl. the large block
    entries.insert(position, bad)
    p = u64(entries)
    orig = p.copy()
    before = kmalloc_snapshot(world)
    with pytest.raises(SlabError, match=rf"p\[{position}\]") as exc:
        world.mem.kfree_bulk(p)
    assert f"{bad % 2**64:#x}" in str(exc.value) or f"{bad - 2**64:#x}" in str(exc.value)
    assert np.array_equal(p, orig)
    assert kmalloc_snapshot(world) == before          # the large block was not freed either
    q = u64(small[:8] + [large])
    world.mem.kfree_bulk(q)
    assert not q.any()
    assert world.mem.free_pages() >= before["free_pages"] + 8      # (+ any emptied slab)
    for c in world.mem.caches.values():
        assert c.validate() == []


@pytest.mark.parametrize("which", list(_bad_arrays([8, 16])))
def test_kfree_bulk_bad_array_type(world, which):
    small, large = kmalloc_world(world)
    p = _bad_arrays(small[:3] + [large])[which]
    before = kmalloc_snapshot(world)
    with pytest.raises(TypeError):
        world.mem.kfree_bulk(p)
    assert kmalloc_snapshot(world) == before


def test_kfree_bulk_bad_size(world):
    small, large = kmalloc_world(world)
    p = u64(small[:3])
    before = kmalloc_snapshot(world)
    for size in (4, -1):
        with pytest.raises(ValueError):
            world.mem.kfree_bulk(p, size=size)
    assert list(p) == small[:3]
    assert kmalloc_snapshot(world) == before
    world.mem.kfree_bulk(p, size=2)                 # p[2] stays allocated
    assert list(p) == [0, 0, small[2]]
    world.mem.kfree(small[2])


# =============================================================================================
# create_cache
# =============================================================================================

@pytest.mark.parametrize("args, exc", [
    (("x", 8, 0, 0x1), ValueError),                          # not a SLAB_* flag pyslub knows
    (("x", 8, 0, 0x80000000), ValueError),                   # OBJECT_POISON: internal
    (("x", 8, 0, 0x40000000), ValueError),                   # CMPXCHG_DOUBLE: internal
    (("x", 8, 0, pyslub.SLAB_POISON | 0x4), ValueError),
    (("x", 8, 0, -1), ValueError),
    (("x", 7), ValueError),
    (("x", 0), ValueError),
    (("x", -8), ValueError),
    (("x", (4 << 20) + 1), ValueError),                      # above KMALLOC_MAX_SIZE
    (("x", 64, 3), ValueError),
    (("x", 64, 24), ValueError),
    (("x", 64, 12), ValueError),
    (("x", 64, -8), ValueError),
    (("x", 64, 8192), ValueError),                           # above PAGE_SIZE
    (("", 64), ValueError),
    (("x", 64.0), TypeError),
    (("x", "64"), TypeError),
    (("x", 64, 8.0), TypeError),
    (("x", 64, 0, 1.0), TypeError),
])
def test_create_cache_bad_arguments(args, exc):
    mem = pyslub.Memory(size=1 << 20, nr_cpus=2)
    free = mem.free_pages()
    with pytest.raises(exc):
        mem.create_cache(*args)
    assert mem.caches == {} and mem.free_pages() == free
    c = mem.create_cache("x", 64)                    # the name was not taken by the failure
    assert c.info["object_size"] == 64


def test_create_cache_duplicate_name():
    mem = pyslub.Memory(size=1 << 20, nr_cpus=2)
    a = mem.create_cache("dup", 64)
    with pytest.raises(ValueError, match="dup"):
        mem.create_cache("dup", 128)
    assert mem.caches == {"dup": a} and a.info["object_size"] == 64


def test_create_cache_name_free_again_after_destroy():
    """A destroyed cache is gone (it is no longer in mem.caches): its name can be reused."""
    mem = pyslub.Memory(size=1 << 20, nr_cpus=2)
    a = mem.create_cache("again", 64)
    a.destroy()
    assert "again" not in mem.caches
    b = mem.create_cache("again", 32)
    assert b.info["object_size"] == 32 and mem.caches == {"again": b}


# =============================================================================================
# Tunables and read-only attributes
# =============================================================================================

@pytest.mark.parametrize("name, value", [
    ("min_partial", -1), ("min_partial", 1.5), ("min_partial", "3"), ("min_partial", None),
    ("cpu_partial", -1), ("cpu_partial", 2.0),
    ("lookahead", -1), ("lookahead", 0),
    ("free_bulk_strategy", "bogus"), ("free_bulk_strategy", None), ("free_bulk_strategy", 4),
])
def test_bad_tunable_values(world, name, value):
    info = world.c.info
    before = snapshot(world)
    with pytest.raises(ValueError):
        setattr(world.c, name, value)
    assert world.c.info == info
    assert_unchanged(world, before)


def test_cpu_partial_on_debug_cache():
    mem = pyslub.Memory(size=1 << 20, nr_cpus=2)
    for flag in (pyslub.SLAB_CONSISTENCY_CHECKS, pyslub.SLAB_RED_ZONE, pyslub.SLAB_POISON,
                 pyslub.SLAB_STORE_USER):
        d = mem.create_cache(f"dbg{flag}", 64, flags=flag)
        assert d.cpu_partial == 0
        for value in (1, 13, 30):
            with pytest.raises(ValueError):
                d.cpu_partial = value
        assert d.cpu_partial == 0
        d.cpu_partial = 0                            # 0 stays allowed
        d.min_partial = 7                            # other tunables work on debug caches
        assert d.info["min_partial"] == 7


def test_good_tunable_values_are_taken(world):
    world.c.min_partial = 8
    world.c.cpu_partial = 0
    world.c.free_bulk_strategy = "swap"
    world.c.lookahead = 5
    info = world.c.info
    assert (info["min_partial"], info["cpu_partial"], info["free_bulk_strategy"],
            info["lookahead"]) == (8, 0, "swap", 5)
    assert world.c.validate() == []


@pytest.mark.parametrize("value, stored", [(0, 5), (4, 5), (5, 5), (9, 9), (10, 10), (11, 10),
                                           (10**6, 10)])
def test_min_partial_is_clamped_as_set_min_partial(world, value, stored):
    """min_partial_store() -> set_min_partial(): clamped to MIN_PARTIAL..MAX_PARTIAL (5..10)."""
    world.c.min_partial = value
    assert world.c.min_partial == stored


@pytest.mark.parametrize("name, value", [
    ("name", "renamed"), ("object_size", 8), ("size", 3), ("offset", 64), ("order", 5),
    ("objects", 1000), ("nr_partial", 7), ("total_objects", 0), ("reports", []),
])
def test_geometry_and_state_are_read_only(world, name, value):
    """Only the sysfs-writable tunables can be set; geometry and list state cannot be
    overwritten from Python (a wrong ``size`` would corrupt every later operation)."""
    before = getattr(world.c, name)
    with pytest.raises(AttributeError):
        setattr(world.c, name, value)
    assert getattr(world.c, name) == before
    assert world.c.validate() == []


# =============================================================================================
# Destroyed caches
# =============================================================================================

def test_destroy_refuses_while_objects_live(world):
    before = snapshot(world)
    n = world.c.live_objects()
    with pytest.raises(SlabError, match=rf"\b{n}\b"):
        world.c.destroy()
    # destroy's flush of the cpu slabs is allowed to move slabs; the objects stay valid
    assert world.c.live_objects() == n == before["c"]["live"]
    assert world.c.validate() == []
    assert not world.c.dead
    x = world.c.alloc()                               # still a working cache
    world.c.free(x)
    free_all(world, world.live)
    world.c.destroy()
    assert world.c.dead


def test_destroyed_cache_refuses_calls(world):
    x = world.live[0]
    world.c.free_bulk(u64(world.live), strategy="fallback")
    expected = world.mem.free_pages() + len(world.c.slabs()) * (1 << world.c.info["order"])
    world.c.destroy()
    assert world.c.dead
    assert world.mem.free_pages() == expected
    calls = {
        "alloc": lambda: world.c.alloc(),
        "free": lambda: world.c.free(x),
        "view": lambda: world.c.view(x),
        "alloc_bulk": lambda: world.c.alloc_bulk(np.zeros(3, dtype=np.uint64)),
        "alloc_bulk_empty": lambda: world.c.alloc_bulk(np.zeros(0, dtype=np.uint64)),
        "alloc_many": lambda: world.c.alloc_many(3),
        "free_bulk": lambda: world.c.free_bulk(u64([x])),
        "free_bulk_empty": lambda: world.c.free_bulk(np.zeros(0, dtype=np.uint64)),
        "flush_cpu": lambda: world.c.flush_cpu(),
        "shrink": lambda: world.c.shrink(),
        "destroy": lambda: world.c.destroy(),
        "live_objects": lambda: world.c.live_objects(),
    }
    for name, call in calls.items():
        with pytest.raises(SlabError, match="destroyed"):
            call()
        assert world.mem.free_pages() == expected, name
    assert world.other.validate() == []               # the other cache is unaffected


# =============================================================================================
# Arena exhaustion and injected page-allocation failures
# =============================================================================================

def fill(mem, cache):
    objs = []
    while True:
        try:
            objs.append(cache.alloc())
        except MemoryError:
            return objs


def test_exhaustion_alloc_then_bulk():
    mem = pyslub.Memory(size=64 << 10, nr_cpus=2)            # 15 usable pages
    c = mem.create_cache("t", 256)
    assert c.info["order"] == 0 and c.info["objs_per_slab"] == 16
    objs = fill(mem, c)
    assert len(objs) == 15 * 16 and len(set(objs)) == len(objs)
    assert mem.free_pages() == 0
    assert c.validate() == [] and c.live_objects() == len(objs)
    with pytest.raises(MemoryError):
        c.alloc()
    # nothing free at all: alloc_bulk fails, the array is untouched
    p = np.full(4, 12345, dtype=np.uint64)
    assert c.alloc_bulk(p) == 0
    assert list(p) == [12345] * 4
    assert c.live_objects() == len(objs)
    # two objects free: alloc_bulk(4) takes them, fails, gives them back (all or nothing)
    for x in objs[-2:]:
        c.free(x)
    live = c.live_objects()
    p = np.full(4, 777, dtype=np.uint64)
    assert c.alloc_bulk(p) == 0
    assert all(v in (0, 777) for v in p.tolist())
    assert c.live_objects() == live                   # nothing leaked
    assert c.validate() == []
    with pytest.raises(MemoryError):
        c.alloc_many(4)
    assert c.live_objects() == live and c.validate() == []
    # the two free objects really are free: exactly two more allocations succeed
    again = [c.alloc(), c.alloc()]            # no free page: they can only be those two
    assert sorted(again) == sorted(objs[-2:])
    with pytest.raises(MemoryError):
        c.alloc()
    # everything back: after a shrink every page returns to the page allocator
    for x in objs[:-2] + again:
        c.free(x)
    c.shrink()
    assert c.live_objects() == 0 and c.validate() == []
    assert mem.free_pages() == 15


def test_exhaustion_kmalloc():
    mem = pyslub.Memory(size=64 << 10, nr_cpus=2)
    free = mem.free_pages()
    with pytest.raises(MemoryError):
        mem.kmalloc(64 << 10)                       # no order-4 block in a 16-page arena
    assert mem.free_pages() == free
    big = mem.kmalloc(32 << 10)                      # order 3: the upper half of the arena
    with pytest.raises(MemoryError):
        mem.kmalloc(32 << 10)
    mem.kfree(big)
    assert mem.free_pages() == free


@pytest.mark.parametrize("flags", [0, pyslub.SLAB_CONSISTENCY_CHECKS,
                                   pyslub.SLAB_POISON | pyslub.SLAB_RED_ZONE])
@pytest.mark.parametrize("after", [0, 1, 2])
def test_inject_failures_alloc_bulk(after, flags):
    mem = pyslub.Memory(size=ARENA, nr_cpus=2)
    c = mem.create_cache("inj", 512, flags=flags)
    per = c.info["objs_per_slab"]
    keep = [c.alloc() for _ in range(3)]             # one slab in use before the failures
    live = c.live_objects()
    mem.inject_page_failures(after)
    p = np.full(per * (after + 3), 9, dtype=np.uint64)
    assert c.alloc_bulk(p) == 0                      # needs after + 3 new slabs: too many
    assert all(v in (0, 9) for v in p.tolist())
    assert c.live_objects() == live
    assert c.validate() == []
    with pytest.raises(MemoryError):
        c.alloc_many(per * (after + 3))
    assert c.live_objects() == live and c.validate() == []
    mem.inject_page_failures(-1)
    p = np.zeros(per * (after + 3), dtype=np.uint64)
    assert c.alloc_bulk(p) == len(p)
    got = set(p.tolist())
    assert len(got) == len(p) and not got & set(keep)
    assert c.live_objects() == live + len(p) and c.validate() == []


def test_inject_failures_single_alloc_and_kmalloc():
    mem = pyslub.Memory(size=ARENA, nr_cpus=2)
    c = mem.create_cache("inj", 64)
    mem.inject_page_failures(0)
    with pytest.raises(MemoryError):
        c.alloc()
    with pytest.raises(MemoryError):
        mem.kmalloc(20000)
    assert c.live_objects() == 0 and c.validate() == [] and c.slabs() == []
    mem.inject_page_failures(1)                        # one more slab, then nothing
    objs = fill(mem, c)
    assert len(objs) == c.info["objs_per_slab"]
    assert c.validate() == [] and c.live_objects() == len(objs)
    mem.inject_page_failures(-1)
    assert c.alloc() not in objs


def test_numpy_integer_addresses_are_accepted(world):
    """Addresses read back from a uint64 array are numpy integers: free/view take them."""
    x, y = world.live[0], world.live[1]
    n = world.c.live_objects()
    assert len(world.c.view(np.uint64(x))) == 96
    world.c.free(np.uint64(x))
    world.c.free(np.int64(y))
    assert world.c.live_objects() == n - 2
    assert world.c.validate() == []
