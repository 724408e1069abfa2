"""Each free_bulk generation on the spec's worked example and on a fresh 64-object bulk.

p = [A1, B1, A2, C1, A3, B2] (letter = slab; none of them the cpu slab).  The expected list
sequences are derived by hand in spec §4.2-§4.4 and §5.3; lists are written head -> tail.
"""

import numpy as np
import pytest

import pyslub


@pytest.fixture
def abc(seed_cache):
    """Objects A1..A3, B1..B2, C1 on three full slabs that are not the cpu slab."""
    objs = [seed_cache.alloc() for _ in range(4 * 32)]     # slabs 0..3, cpu slab = 3
    by_slab = {}
    for o in objs:
        by_slab.setdefault(seed_cache.slab_of(o), []).append(o)
    a, b, c, _ = by_slab.values()
    names = {"A1": a[0], "A2": a[1], "A3": a[2], "B1": b[0], "B2": b[1], "C1": c[0]}
    return seed_cache, names


EXAMPLE = ["A1", "B1", "A2", "C1", "A3", "B2"]

EXPECTED = {
    # generic loop, and V2: one __slab_free per object not on the cpu slab
    "fallback": [["A1"], ["B1"], ["A2"], ["C1"], ["A3"], ["B2"]],
    "bulk-v2": [["A1"], ["B1"], ["A2"], ["C1"], ["A3"], ["B2"]],
    # patch 2/3: only consecutive runs coalesce -- none here
    "detached": [["A1"], ["B1"], ["A2"], ["C1"], ["A3"], ["B2"]],
    # patch 3/3: forward; tail = first found, head = last matched
    "lookahead-fwd": [["A3", "A2", "A1"], ["B2", "B1"], ["C1"]],
    # v4.4: backward; {B2}, {A1,A2,A3}, {C1}, {B1}
    "lookahead": [["B2"], ["A1", "A2", "A3"], ["C1"], ["B1"]],
    # v5.19: backward with swaps; {B2}, {A..}, {B1}, {C1}
    "swap": [["B2"], ["A1", "A2", "A3"], ["B1"], ["C1"]],
}


@pytest.mark.parametrize("strategy", pyslub.FREE_BULK_STRATEGIES)
def test_worked_example(abc, strategy):
    cache, names = abc
    addr = {v: k for k, v in names.items()}
    p = np.array([names[n] for n in EXAMPLE], dtype=np.uint64)
    with pyslub.record_frees(cache) as rec:
        cache.free_bulk(p, strategy=strategy)
    assert [[addr[o] for o in objs] for objs in rec.lists] == EXPECTED[strategy]
    assert all(kind == "slow" for _, _, kind in rec)
    for slab, objs, _ in rec:
        assert {cache.slab_of(o) for o in objs} == {slab}
    if strategy in ("lookahead", "lookahead-fwd"):
        assert not p.any()                           # consumed slots NULLed
    elif strategy == "swap":
        assert [addr[int(x)] for x in p] == ["C1", "B1", "A1", "A2", "A3", "B2"]
    else:
        assert [addr[int(x)] for x in p] == EXAMPLE  # untouched
    assert cache.validate() == []
    assert cache.stats()["free_slowpath"] == len(EXPECTED[strategy])


@pytest.mark.parametrize("strategy", ["lookahead", "lookahead-fwd"])
def test_null_entries_are_skipped_by_the_lookahead_generations(abc, strategy):
    cache, names = abc
    p = np.array([0, names["A1"], 0, names["A2"], 0], dtype=np.uint64)
    with pyslub.record_frees(cache) as rec:
        cache.free_bulk(p, strategy=strategy)
    assert len(rec) == 1 and sorted(rec[0][1]) == sorted([names["A1"], names["A2"]])
    assert cache.validate() == []


@pytest.mark.parametrize("strategy", ["fallback", "bulk-v2", "detached", "swap"])
def test_null_entries_are_rejected_by_the_others(abc, strategy):
    cache, names = abc
    p = np.array([names["A1"], 0], dtype=np.uint64)
    with pytest.raises(pyslub.SlabError, match=r"p\[1\] = 0x0 is NULL"):
        cache.free_bulk(p, strategy=strategy)
    assert cache.stats()["free_slowpath"] == 0 and p[0] == names["A1"]


def test_lookahead_depth_is_a_setting(abc):
    cache, names = abc
    addr = {v: k for k, v in names.items()}
    with pytest.raises(ValueError, match="lookahead"):
        cache.lookahead = 1              # v4.4 would stop before noting where to resume
    cache.lookahead = 2                  # the second foreign object ends every scan
    p = np.array([names[n] for n in EXAMPLE], dtype=np.uint64)
    with pyslub.record_frees(cache) as rec:
        cache.free_bulk(p)
    assert [[addr[o] for o in objs] for objs in rec.lists] == \
        [["B2"], ["A2", "A3"], ["C1"], ["B1"], ["A1"]]
    assert cache.info["lookahead"] == 2 and cache.validate() == []


# a fresh bulk of 64: slab 0 (full, no longer the cpu slab) then slab 1 (the cpu slab)
# strategy -> (free_fastpath, free_slowpath, cmpxchg_double_slab, cmpxchg_double_cpu)
FRESH64 = {
    "fallback": (32, 32, 32, 32),        # every object its own slab_free()
    "bulk-v2": (0, 32, 32, 0),           # cpu-slab objects spliced in the IRQ-off loop
    "detached": (0, 1, 1, 0),            # one run per slab
    "lookahead-fwd": (0, 1, 1, 0),
    "lookahead": (1, 1, 1, 1),           # the cpu-slab list through slab_free()'s fast path
    "swap": (1, 1, 1, 1),
}


@pytest.mark.parametrize("strategy", pyslub.FREE_BULK_STRATEGIES)
def test_fresh_bulk_of_64(seed_cache, strategy):
    p = np.zeros(64, dtype=np.uint64)
    assert seed_cache.alloc_bulk(p) == 64
    s = seed_cache.stats()
    # v4.4 bulk alloc counts no ALLOC_FASTPATH; the two refills are slow-path events
    assert (s["alloc_fastpath"], s["alloc_slab"], s["deactivate_bypass"]) == (0, 2, 1)
    assert len({seed_cache.slab_of(int(x)) for x in p}) == 2
    seed_cache.reset_stats()
    seed_cache.free_bulk(p, strategy=strategy)
    s = seed_cache.stats()
    assert (s["free_fastpath"], s["free_slowpath"], s["cmpxchg_double_slab"],
            s["cmpxchg_double_cpu"]) == FRESH64[strategy]
    # the first free into the full slab 0 froze it onto the cpu partial list
    assert s["cpu_partial_free"] == 1
    assert seed_cache.live_objects() == 0 and seed_cache.validate() == []


def test_alloc_bulk_is_all_or_nothing(mem):
    cache = mem.create_cache("big", 4000)
    pages = mem.free_pages()
    mem.inject_page_failures(3)               # three more slabs, then the page allocator fails
    p = np.zeros(10_000, dtype=np.uint64)
    assert cache.alloc_bulk(p) == 0
    assert not p.any() and cache.live_objects() == 0 and cache.validate() == []
    mem.inject_page_failures(-1)
    assert cache.alloc_bulk(p, 100) == 100 and len(set(p[:100].tolist())) == 100
    cache.free_bulk(p, 100)
    cache.shrink()
    cache.flush_cpu()
    assert cache.validate() == [] and mem.free_pages() <= pages


def test_kfree_bulk_mixes_caches_and_large_allocations(mem):
    pages = mem.free_pages()
    addrs = [mem.kmalloc(n) for n in (8, 100, 100, 3000, 20000, 8, 9000)] + [0]
    caches = {mem.cache_of(a).name for a in addrs if a and mem.ksize(a) <= 8192}
    assert caches == {"kmalloc-8", "kmalloc-128", "kmalloc-4k"}
    p = np.array(addrs, dtype=np.uint64)
    mem.kfree_bulk(p)
    assert not p.any()
    for name in caches:
        assert mem.caches[name].live_objects() == 0 and mem.caches[name].validate() == []
        mem.caches[name].shrink()
        mem.caches[name].flush_cpu()
        mem.caches[name].shrink()
    assert mem.free_pages() == pages - sum(mem.caches[n].occupancy()["slabs"]
                                           * (1 << mem.caches[n].order) for n in caches)
