"""Property tests of the bulk API over random arrays spanning many slabs and cpus.

The central property: ``free_bulk(p)`` frees exactly the objects in ``p`` -- no more, no fewer
-- with every strategy.  It is checked three ways: the live count, the untouched contents of
the objects that stay allocated, and the slots the allocator hands out afterwards.  For the
last one ``min_partial`` is raised (to 10, the most set_min_partial() allows) so that few slabs
are given back: after a flush every free object of the remaining slabs sits on the node partial
list, and SLUB drains that list before it allocates a new slab (``___slab_alloc`` ->
``get_partial_node`` before ``new_slab``).  So allocating as many objects as are free must
return *exactly* the free slots of the slabs that exist, without a new slab.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pyslub

STRATEGIES = pyslub.FREE_BULK_STRATEGIES
NULL_SKIPPING = ("lookahead-fwd", "lookahead")
NR_CPUS = 4
EXAMPLES = 100 if pyslub.COMPILED else 25
SETTINGS = settings(max_examples=EXAMPLES, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

FLAGS = [0, pyslub.SLAB_HWCACHE_ALIGN, pyslub.SLAB_CONSISTENCY_CHECKS,
         pyslub.SLAB_POISON | pyslub.SLAB_RED_ZONE,
         pyslub.SLAB_STORE_USER | pyslub.SLAB_CONSISTENCY_CHECKS]
SIZES = [8, 24, 64, 100, 232, 512, 1000, 3000]


def pattern(tag: int, size: int) -> bytes:
    word = (tag * 0x9E3779B1 + 1).to_bytes(8, "little")
    return (word * (size // 8 + 1))[:size]


def allocate(mem, cache, n, rng) -> list[int]:
    """n objects in chunks, on random cpus, by alloc() or alloc_bulk()."""
    objs: list[int] = []
    while len(objs) < n:
        k = min(n - len(objs), int(rng.integers(1, 40)))
        with mem.on_cpu(int(rng.integers(NR_CPUS))):
            if rng.random() < 0.5:
                objs += [cache.alloc() for _ in range(k)]
            else:
                objs += [int(x) for x in cache.alloc_many(k)]
    return objs


def all_slots(cache) -> set[int]:
    size = cache.info["size"]
    out = set()
    for slab in cache.slabs():
        out.update(slab + i * size for i in range(cache.slab_state(slab)["objects"]))
    return out


def check_array_after(strategy, p, orig, sheaves=False):
    if sheaves:
        assert np.array_equal(p, orig), "the sheaf path leaves the array alone"
    elif strategy in NULL_SKIPPING:
        assert not p.any(), "lookahead strategies NULL every consumed slot"
    elif strategy == "swap":
        assert sorted(p.tolist()) == sorted(orig.tolist()), "swap only permutes"
    else:
        assert np.array_equal(p, orig), "this strategy leaves the array alone"


def check_contents(cache, kept: dict[int, bytes]):
    for addr, data in kept.items():
        assert bytes(cache.view(addr)) == data, f"object {addr:#x} was overwritten"


@SETTINGS
@given(object_size=st.sampled_from(SIZES), flags=st.sampled_from(FLAGS),
       n=st.integers(1, 300), keep=st.floats(0, 0.9), strategy=st.sampled_from(STRATEGIES),
       final_strategy=st.sampled_from(STRATEGIES), lookahead=st.integers(2, 6),
       nulls=st.integers(0, 20), seed=st.integers(0, 2**32 - 1),
       slub=st.sampled_from(["4.4", "6.18", "7.0"]))
def test_free_bulk_frees_exactly_the_array(object_size, flags, n, keep, strategy,
                                           final_strategy, lookahead, nulls, seed, slub):
    rng = np.random.default_rng(seed)
    mem = pyslub.Memory(size=16 << 20, nr_cpus=NR_CPUS, slub=slub)
    pages = mem.free_pages()
    kw = {"sheaf_capacity": int(rng.integers(1, 64))} if slub == "6.18" else {}
    c = mem.create_cache("bulk", object_size, flags=flags, **kw)
    c.lookahead = lookahead
    c.min_partial = 10                            # keep slabs: see the module docstring
    objs = allocate(mem, c, n, rng)
    assert len(set(objs)) == n
    for x in objs:
        c.slab_of(x)                              # each one a real object of c
    mask = rng.random(n) < keep
    kept = {x: pattern(i, object_size) for i, x in enumerate(objs) if mask[i]}
    freed = [x for i, x in enumerate(objs) if not mask[i]]
    for addr, data in kept.items():
        c.view(addr)[:] = data

    entries = list(freed)
    rng.shuffle(entries)
    if strategy in NULL_SKIPPING:                 # NULLs sprinkled in are skipped
        for _ in range(nulls):
            entries.insert(int(rng.integers(len(entries) + 1)), 0)
    p = np.array(entries, dtype=np.uint64)
    orig = p.copy()
    with mem.on_cpu(int(rng.integers(NR_CPUS))):
        c.free_bulk(p, strategy=strategy)
    check_array_after(strategy, p, orig, bool(c.sheaf_capacity))
    assert c.live_objects() == len(kept)
    assert c.validate() == []
    assert c.reports == []
    check_contents(c, kept)

    # every free slot comes back exactly once, before any new slab is made
    c.flush_cpu()
    assert c.validate() == []
    free_slots = all_slots(c) - set(kept)
    slabs_before = c.slabs()
    with mem.on_cpu(int(rng.integers(NR_CPUS))):
        q = np.zeros(len(free_slots), dtype=np.uint64)
        assert c.alloc_bulk(q) == len(q) or len(q) == 0
    assert c.slabs() == slabs_before, "a new slab while free objects were left"
    assert set(q.tolist()) == free_slots and len(set(q.tolist())) == len(q)
    check_contents(c, kept)
    with mem.on_cpu(0):
        extra = c.alloc()                          # now the cache is full: a new slab
    assert c.slab_of(extra) not in slabs_before

    # free everything, with another strategy; shrink gives every page back
    p = np.array(list(kept) + q.tolist() + [extra], dtype=np.uint64)
    rng.shuffle(p)
    with mem.on_cpu(int(rng.integers(NR_CPUS))):
        c.free_bulk(p, strategy=final_strategy)
    assert c.live_objects() == 0 and c.validate() == []
    c.shrink()
    assert c.slabs() == [] and mem.free_pages() == pages


@SETTINGS
@given(n=st.integers(1, 200), size_frac=st.floats(0, 1), strategy=st.sampled_from(STRATEGIES),
       seed=st.integers(0, 2**32 - 1))
def test_free_bulk_size_argument(n, size_frac, strategy, seed):
    """Only p[:size] is freed; the rest of the array is neither read nor written."""
    rng = np.random.default_rng(seed)
    mem = pyslub.Memory(size=8 << 20, nr_cpus=NR_CPUS)
    c = mem.create_cache("sz", 64)
    objs = allocate(mem, c, n, rng)
    rng.shuffle(objs)
    size = int(size_frac * n)
    p = np.array(objs, dtype=np.uint64)
    orig = p.copy()
    c.free_bulk(p, size=size, strategy=strategy)
    check_array_after(strategy, p[:size], orig[:size])
    assert np.array_equal(p[size:], orig[size:])
    assert c.live_objects() == n - size
    assert c.validate() == []
    rest = np.array(objs[size:], dtype=np.uint64)          # still allocated: freeable now
    c.free_bulk(rest, strategy=strategy)
    assert c.live_objects() == 0 and c.validate() == []


@SETTINGS
@given(strategy=st.sampled_from(STRATEGIES), rounds=st.integers(1, 6),
       n=st.integers(1, 150), seed=st.integers(0, 2**32 - 1))
def test_bulk_round_trips_never_hand_out_an_object_twice(strategy, rounds, n, seed):
    """Repeated alloc_bulk / free_bulk of random halves on random cpus: the live set is always
    exactly what the model says, and alloc_bulk never returns a live object."""
    rng = np.random.default_rng(seed)
    mem = pyslub.Memory(size=16 << 20, nr_cpus=NR_CPUS)
    c = mem.create_cache("rt", 232, flags=pyslub.SLAB_HWCACHE_ALIGN)
    live: set[int] = set()
    for _ in range(rounds):
        with mem.on_cpu(int(rng.integers(NR_CPUS))):
            p = np.zeros(n, dtype=np.uint64)
            assert c.alloc_bulk(p) == n
        got = set(p.tolist())
        assert len(got) == n and not got & live
        live |= got
        victims = [x for x in sorted(live) if rng.random() < 0.5]
        rng.shuffle(victims)
        with mem.on_cpu(int(rng.integers(NR_CPUS))):
            c.free_bulk(np.array(victims, dtype=np.uint64), strategy=strategy)
        live -= set(victims)
        assert c.live_objects() == len(live)
        assert c.validate() == []


# =============================================================================================
# kfree_bulk
# =============================================================================================

entry = st.one_of(
    st.tuples(st.just("small"), st.integers(1, 8192)),
    st.tuples(st.just("large"), st.integers(8193, 64 << 10)),
    st.tuples(st.just("user"), st.just(0)),
    st.tuples(st.just("null"), st.just(0)),
)


@SETTINGS
@given(entries=st.lists(entry, min_size=1, max_size=120),
       kept=st.lists(st.integers(1, 20000), max_size=20),
       user_size=st.sampled_from([16, 100, 500]), seed=st.integers(0, 2**32 - 1))
def test_kfree_bulk_mixed(entries, kept, user_size, seed):
    rng = np.random.default_rng(seed)
    mem = pyslub.Memory(size=32 << 20, nr_cpus=NR_CPUS)
    pages = mem.free_pages()
    user = mem.create_cache("user", user_size)
    # objects that stay allocated, with contents
    keep = {}
    for i, size in enumerate(kept):
        a = mem.kmalloc(size)
        if size <= 8192:
            mem.cache_of(a).view(a)[:size] = pattern(1000 + i, size)
        keep[a] = size
    arr = []
    for kind, size in entries:
        with mem.on_cpu(int(rng.integers(NR_CPUS))):
            if kind == "null":
                arr.append(0)
            elif kind == "user":
                arr.append(user.alloc())
            else:
                arr.append(mem.kmalloc(size))
    nonnull = [a for a in arr if a]
    assert len(set(nonnull)) == len(nonnull) and not set(nonnull) & set(keep)
    rng.shuffle(arr)
    p = np.array(arr, dtype=np.uint64)
    with mem.on_cpu(int(rng.integers(NR_CPUS))):
        mem.kfree_bulk(p)
    assert not p.any()
    # every slab object in the array is free; only the kept ones live
    for c in list(mem.caches.values()):
        expect = sum(1 for a, s in keep.items() if s <= 8192 and mem.cache_of(a) is c)
        assert c.live_objects() == expect, c.name
        assert c.validate() == [], c.name
        assert c.stats()["order_fallback"] == 0
    for i, (a, size) in enumerate(keep.items()):
        if size <= 8192:
            assert bytes(mem.cache_of(a).view(a)[:size]) == pattern(1000 + i, size)
    # page accounting: the large blocks of the array went back, the kept ones did not
    slab_pages = sum(len(c.slabs()) << c.info["order"] for c in mem.caches.values())
    large_pages = sum(mem.ksize(a) // 4096 for a, s in keep.items() if s > 8192)
    assert mem.free_pages() == pages - slab_pages - large_pages
    # and the memory is usable again
    again = [mem.kmalloc(s) for k, s in entries if k == "large"]
    assert not set(again) & set(keep)
    for a in again + list(keep):
        mem.kfree(a)


def rng_large(mem, a) -> bool:
    """Was ``a`` a large allocation?  (Page aligned and not on a slab page.)"""
    if a % 4096:
        return False
    try:
        mem.cache_of(a)
    except pyslub.SlabError:
        return True
    return False


@SETTINGS
@given(n=st.integers(1, 100), seed=st.integers(0, 2**32 - 1))
def test_kfree_bulk_size_argument(n, seed):
    rng = np.random.default_rng(seed)
    mem = pyslub.Memory(size=16 << 20, nr_cpus=NR_CPUS)
    objs = [mem.kmalloc(int(s)) for s in rng.integers(1, 20000, n)]
    size = int(rng.integers(0, n + 1))
    p = np.array(objs, dtype=np.uint64)
    free = mem.free_pages()
    mem.kfree_bulk(p, size=size)
    assert not p[:size].any()
    assert p[size:].tolist() == objs[size:]
    small_left = sum(1 for a in objs[size:] if mem.ksize(a) <= 8192)
    assert sum(c.live_objects() for c in mem.caches.values()) == small_left
    for a in objs:                               # a freed large block has no ksize any more
        if a not in objs[size:] and rng_large(mem, a):
            with pytest.raises(pyslub.SlabError):
                mem.ksize(a)
    mem.kfree_bulk(p)
    assert not p.any()
    assert mem.free_pages() >= free
    for c in mem.caches.values():
        assert c.live_objects() == 0 and c.validate() == []


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_free_bulk_across_every_cpu_slab(strategy):
    """Each cpu holds a cpu slab and a cpu partial list; one bulk free on cpu 0 returns objects
    of all of them (remote frees into frozen slabs of other cpus)."""
    mem = pyslub.Memory(size=16 << 20, nr_cpus=NR_CPUS)
    c = mem.create_cache("x", 232, flags=pyslub.SLAB_HWCACHE_ALIGN)
    per = c.info["objs_per_slab"]
    objs = []
    for cpu in range(NR_CPUS):
        with mem.on_cpu(cpu):
            mine = [c.alloc() for _ in range(3 * per + 5)]
            first_slab = mine[:per]
            for x in first_slab[::3]:              # first slab partly freed: cpu partial list
                c.free(x)
            objs += first_slab[1::3] + first_slab[2::3] + mine[per:]
        assert c.cpu_state(cpu)["partial"]
    assert all(c.cpu_state(k)["page"] for k in range(NR_CPUS))
    p = np.array(objs, dtype=np.uint64)
    np.random.default_rng(1).shuffle(p)
    orig = p.copy()
    with mem.on_cpu(0):
        c.free_bulk(p, strategy=strategy)
    check_array_after(strategy, p, orig)
    assert c.live_objects() == 0
    assert c.validate() == []
    # each cpu's own cpu slab is still its own: allocating there works and is distinct
    got = []
    for cpu in range(NR_CPUS):
        with mem.on_cpu(cpu):
            got += [c.alloc() for _ in range(per)]
    assert len(set(got)) == len(got)
    assert c.validate() == []
