"""Percpu sheaves: exact counters after scripted steps, for 7.0 and 6.18 (sheaves.md §3-4).

Every expected number is derived in the comments from the kernel's code paths as sheaves.md
gives them, not read back from pyslub.  Geometry: the seed cache (232 B, HWCACHE_ALIGN, 8 cpus)
-> 256-byte slots, 32 objects per order-1 slab, min_partial 5; 7.0's capacity for it is 28
(26 pointers + the 32-byte header = 240 B, rounded up to kmalloc-256: (256 - 32) / 8).
pyslub's own counters: ``local_lock`` = pcs lock (and v4.4 cpu claim) acquisitions,
``barn_lock`` = barn lock acquisitions (the barn lock also guards the cache's pool of sheaf
blocks, so every sheaf allocation or free takes it once).
"""

import numpy as np
import pytest

import pyslub

CAP = 28
OBJS = 32


def nonzero(stats):
    return {k: v for k, v in stats.items() if v}


@pytest.fixture
def mem70():
    return pyslub.Memory(size=32 << 20, nr_cpus=8, slub="7.0")


@pytest.fixture
def c70(mem70):
    c = mem70.create_cache("seed", 232, flags=pyslub.SLAB_HWCACHE_ALIGN)
    c.reset_stats()               # creation gave every cpu an empty main sheaf (SHEAF_ALLOC)
    return c


def test_capacities_follow_calculate_sheaf_capacity(mem70):
    sizes = {8: 60, 200: 60, 256: 28, 1000: 28, 1024: 12, 4000: 12, 4096: 4, 8192: 4}
    for i, (size, cap) in enumerate(sizes.items()):
        c = mem70.create_cache(f"c{i}", size)
        assert c.info["sheaf_capacity"] == cap, size
        assert c.info["cpu_partial"] == 0 and c.slub == "7.0"
    # an explicit request is a minimum; any debug flag means no sheaves
    assert mem70.create_cache("big", 256, sheaf_capacity=40).sheaf_capacity == 40
    assert mem70.create_cache("small", 256, sheaf_capacity=8).sheaf_capacity == 28
    assert mem70.create_cache("dbg", 256, flags=pyslub.SLAB_RED_ZONE).sheaf_capacity == 0
    # cpu_partial is inert in 7.0: writing 0 succeeds, anything else is refused
    c = mem70.caches["c0"]
    c.cpu_partial = 0
    with pytest.raises(ValueError):
        c.cpu_partial = 13


def test_first_alloc_refills_a_sheaf_from_a_new_slab(c70):
    a = c70.alloc()
    # alloc_from_pcs: trylock (local_lock 1); main empty -> __pcs_replace_empty_main: no spare;
    # barn_replace_empty_sheaf: nr_full == 0, racy check, no lock -> BARN_GET_FAIL; no spare and
    # barn_get_empty_sheaf: nr_empty == 0 -> none; unlock; alloc_empty_sheaf (pool: barn_lock 1,
    # SHEAF_ALLOC 1); refill_sheaf: refill_objects: no partial slab -> new_slab (ALLOC_SLAB) ->
    # alloc_from_new_slab takes 28 of its 32 objects, the slab with 4 left goes to the node
    # partial head (list_lock 1); SHEAF_REFILL 28; trylock again (local_lock 2): main is empty
    # and there is no spare -> the empty main becomes the spare, the full sheaf main; pop:
    # ALLOC_FASTPATH ("from percpu sheaves" in 7.0).  No pair swap anywhere: the new slab was
    # nobody else's.
    assert nonzero(c70.stats()) == {
        "alloc_fastpath": 1, "alloc_slab": 1, "sheaf_refill": 28, "sheaf_alloc": 1,
        "barn_get_fail": 1, "list_lock": 1, "local_lock": 2, "barn_lock": 1}
    assert c70.sheaf_state()["cpus"][0] == (27, 0)
    # objects in sheaves count as in use: only the 4 on the slab's freelist are "free"
    assert c70.occupancy() == {"objects": 28, "objects_partial": 28, "partial": 1,
                               "cpu_slabs": 0, "slabs": 1, "total_objects": 32}
    assert c70.live_objects() == 1 and c70.validate() == []
    c70.free(a)                               # free_to_pcs: room in main
    assert c70.stats()["free_fastpath"] == 1 and c70.sheaf_state()["cpus"][0] == (28, 0)


def test_frees_into_a_full_main_swap_the_spare_then_go_to_the_barn(mem70, c70):
    with mem70.on_cpu(1):
        objs = [c70.alloc() for _ in range(2 * CAP + 2)]
    c70.reset_stats()
    # cpu 0 has never run: main is its empty initial sheaf, no spare
    for x in objs[:CAP]:
        c70.free(x)                           # 28 pushes fill main (one lock each)
    assert nonzero(c70.stats(cpu=0)) == {"free_fastpath": CAP, "local_lock": CAP}
    c70.reset_stats()
    c70.free(objs[CAP])
    # main full, no spare -> barn_get_empty_sheaf: nr_empty == 0 (racy, no lock) -> alloc_empty
    # (unlock; alloc_empty_sheaf: barn_lock, SHEAF_ALLOC) -> got_empty: trylock ->
    # __pcs_install_empty_sheaf: no spare -> spare = the full main, main = the empty sheaf; push
    assert nonzero(c70.stats(cpu=0)) == {"free_fastpath": 1, "sheaf_alloc": 1,
                                         "local_lock": 2, "barn_lock": 1}
    assert c70.sheaf_state()["cpus"][0] == (1, CAP)
    for x in objs[CAP + 1:2 * CAP]:
        c70.free(x)                           # main fills again (27 more)
    c70.reset_stats()
    c70.free(objs[2 * CAP])
    # main and spare full -> barn_replace_full_sheaf: nr_full 0 < 10 but nr_empty == 0 ->
    # -ENOMEM (racy checks, no lock): put_fail -> alloc_empty: unlock, alloc_empty_sheaf
    # (barn_lock, SHEAF_ALLOC) -> trylock -> __pcs_install_empty_sheaf: spare full and main full
    # -> the full main goes to the barn (barn_lock, BARN_PUT; the limit is not checked there),
    # main = the empty sheaf; push.  BARN_PUT_FAIL only counts when the allocation fails.
    assert nonzero(c70.stats(cpu=0)) == {"free_fastpath": 1, "sheaf_alloc": 1, "barn_put": 1,
                                         "local_lock": 2, "barn_lock": 2}
    assert c70.sheaf_state() | {"cpus": None} == {"capacity": CAP, "cpus": None,
                                                   "barn_full": 1, "barn_empty": 0}
    assert c70.sheaf_state()["cpus"][0] == (1, CAP)
    assert c70.validate() == []


def test_barn_limit_flushes_the_spare(mem70, c70):
    # enough objects for 12 full sheaves freed on cpu 0
    with mem70.on_cpu(1):
        objs = [c70.alloc() for _ in range(13 * CAP)]
    for x in objs[:12 * CAP]:
        c70.free(x)
    # main + spare hold 2 sheaves; every later full main went to the barn, one per 28 frees:
    # (12*28 - 2*28) / 28 = 10 = MAX_FULL_SHEAVES, all through -ENOMEM + install (no empty
    # sheaf is ever in the barn here); main is full again
    st = c70.sheaf_state()
    assert (st["barn_full"], st["barn_empty"], st["cpus"][0]) == (10, 0, (CAP, CAP))
    c70.reset_stats()
    c70.free(objs[12 * CAP])
    # barn_replace_full_sheaf: nr_full >= 10 -> -E2BIG (racy, no lock): BARN_PUT_FAIL; the spare
    # is detached, unlocked, flushed to slabs (sheaf_flush_unused: SHEAF_FLUSH 28 through the
    # swap-form detached freelist; every object's slab was full, so each list is one
    # __slab_free into a full slab: list_lock + FREE_ADD_PARTIAL) and reused as the empty
    # sheaf: trylock, install (no spare: spare = full main, main = it); push.
    s = c70.stats(cpu=0)
    assert (s["free_fastpath"], s["barn_put_fail"], s["sheaf_flush"], s["sheaf_alloc"],
            s["barn_put"], s["local_lock"]) == (1, 1, CAP, 0, 0, 2)
    assert s["free_slowpath"] == 0                # flushes are not user frees
    assert s["free_add_partial"] == s["list_lock"] > 0
    assert c70.sheaf_state()["barn_full"] == 10 and c70.sheaf_state()["cpus"][0] == (1, CAP)
    assert c70.validate() == []


def test_flush_cpu_and_shrink(mem70, c70):
    with mem70.on_cpu(1):
        objs = [c70.alloc() for _ in range(3 * CAP)]
    for x in objs:
        c70.free(x)                           # cpu 0: main 28, spare 28, barn 1 full
    assert c70.sheaf_state()["barn_full"] == 1
    c70.reset_stats()
    c70.flush_cpu(0)
    # pcs_flush_all: local_lock, detach the spare, unlock; spare: SHEAF_FLUSH 28 + free
    # (barn_lock, SHEAF_FREE); sheaf_flush_main: local_lock, one batch of PCS_BATCH_MAX >= 28
    # -> SHEAF_FLUSH 28, main stays attached, empty
    s = c70.stats(cpu=0)
    assert (s["sheaf_flush"], s["sheaf_free"], s["local_lock"], s["barn_lock"]) == \
        (2 * CAP, 1, 2, 1)
    assert c70.sheaf_state()["cpus"][0] == (0, None)
    assert c70.sheaf_state()["barn_full"] == 1          # the barn is not flushed by a flush
    c70.reset_stats()
    # cpu 1 still holds its main: 28 * 3 allocated there -> its refills left sheaves behind
    c70.shrink()
    # flush_all: every cpu with sheaves in use; then barn_shrink: the full sheaf flushed (28)
    # and freed; then the empty slabs are freed (no FREE_SLAB counted by shrink)
    s = c70.stats()
    assert s["sheaf_flush"] >= CAP and s["sheaf_free"] >= 1
    assert c70.sheaf_state()["barn_full"] == 0
    assert c70.sheaf_objects() == [] and c70.live_objects() == 0
    assert c70.occupancy()["slabs"] == 0 and c70.validate() == []


def test_bulk_alloc_and_free_through_sheaves(c70):
    p = np.zeros(40, dtype=np.uint64)
    assert c70.alloc_bulk(p) == 40
    # alloc_from_pcs_bulk: trylock; main empty, no spare with objects; barn_replace_empty_sheaf:
    # none -> BARN_GET_FAIL, stop (no refill: "avoid copying pointers twice"); then
    # __kmem_cache_alloc_bulk(40): refill_objects from a new slab (32) and another (8 of 32),
    # ALLOC_SLOWPATH += 40
    s = c70.stats()
    assert (s["alloc_fastpath"], s["alloc_slowpath"], s["barn_get_fail"], s["alloc_slab"]) == \
        (0, 40, 1, 2)
    assert len(set(p.tolist())) == 40 and c70.live_objects() == 40
    c70.reset_stats()
    c70.free_bulk(p)
    # free_to_pcs_bulk: main (empty) takes 28; full -> no spare: barn_get_empty_sheaf: none
    # -> no_empty: the remaining 12 go straight to slabs (__kmem_cache_free_bulk), counted as
    # FREE_SLOWPATH; the bulk path never allocates sheaves
    s = c70.stats()
    assert (s["free_fastpath"], s["free_slowpath"], s["sheaf_alloc"]) == (CAP, 12, 0)
    assert c70.live_objects() == 0 and c70.validate() == []
    assert (p != 0).all()                     # the sheaf path leaves the array as it was


def test_debug_caches_bypass_sheaves(mem70):
    d = mem70.create_cache("dbg", 232, flags=pyslub.SLAB_CONSISTENCY_CHECKS)
    assert d.sheaf_capacity == 0
    d.reset_stats()
    objs = [d.alloc() for _ in range(3)]
    for x in objs:
        d.free(x)
    s = d.stats()
    assert (s["alloc_fastpath"], s["alloc_slowpath"], s["free_fastpath"],
            s["free_slowpath"], s["local_lock"]) == (0, 3, 0, 3, 0)
    assert d.validate() == []


def test_prefilled_sheaf(c70):
    with c70.prefill_sheaf(10) as sh:
        # no spare yet: SHEAF_PREFILL_SLOW; barn empty -> BARN_GET_FAIL; a new sheaf, refilled
        # to capacity (28)
        assert sh.size == CAP
        objs = [sh.alloc() for _ in range(10)]
    # return: no spare on the cpu -> it becomes the spare (SHEAF_RETURN_FAST)
    s = c70.stats()
    assert (s["sheaf_prefill_slow"], s["barn_get_fail"], s["sheaf_return_fast"],
            s["sheaf_refill"]) == (1, 1, 1, CAP)
    assert c70.sheaf_state()["cpus"][0] == (0, CAP - 10)
    assert c70.live_objects() == 10
    with c70.prefill_sheaf(40) as big:        # larger than the capacity: oversize
        assert big.size == 40
        more = [big.alloc() for _ in range(40)]
        with pytest.raises(pyslub.SlabError):
            big.alloc()
    assert c70.stats()["sheaf_prefill_oversize"] == 1
    for x in objs + more:
        c70.free(x)
    assert c70.live_objects() == 0 and c70.validate() == []


@pytest.mark.parametrize("strategy", pyslub.FREE_BULK_STRATEGIES)
def test_free_bulk_strategy_decides_the_slab_level_part(c70, strategy):
    """7.0: what a bulk free cannot put into sheaves goes to slabs with the strategy asked
    for; record_frees shows those lists."""
    p = np.zeros(100, dtype=np.uint64)
    assert c70.alloc_bulk(p) == 100
    with pyslub.record_frees(c70) as rec:
        c70.free_bulk(p, strategy=strategy)
    assert sum(len(objs) for _, objs, _ in rec) == 100 - CAP
    assert all(kind == "slow" for _, _, kind in rec)   # no cpu slab in 7.0
    assert c70.live_objects() == 0 and c70.validate() == []


def test_618_opt_in_sheaves_above_the_cpu_slabs():
    mem = pyslub.Memory(size=32 << 20, nr_cpus=8, slub="6.18")
    plain = mem.create_cache("plain", 232, flags=pyslub.SLAB_HWCACHE_ALIGN)
    c = mem.create_cache("sheafed", 232, flags=pyslub.SLAB_HWCACHE_ALIGN, sheaf_capacity=32)
    assert plain.sheaf_capacity == 0 and c.sheaf_capacity == 32
    assert "alloc_cpu_sheaf" in c.stats() and len(c.stat_names()) == 43 + 6
    c.reset_stats()
    a = c.alloc()
    # alloc_from_pcs: trylock; main empty -> no spare, barn: nothing (BARN_GET_FAIL), no
    # empty; alloc_empty_sheaf (barn_lock, SHEAF_ALLOC); refill_sheaf via the v4.4 bulk
    # allocation: cpu claim (local_lock), c.freelist empty -> ___slab_alloc: new slab
    # (ALLOC_SLAB), its first object, then 31 straight off c.freelist (v4.4 counts nothing
    # per object in bulk) -> SHEAF_REFILL 32; trylock; the full sheaf becomes main; pop:
    # ALLOC_PCS (sysfs alloc_cpu_sheaf).  The cpu slab is now full (all 32 in the sheaf).
    assert nonzero(c.stats()) == {"alloc_cpu_sheaf": 1, "alloc_slab": 1, "sheaf_refill": 32,
                                  "sheaf_alloc": 1, "barn_get_fail": 1, "local_lock": 3,
                                  "barn_lock": 1}
    c.free(a)
    assert c.stats()["free_cpu_sheaf"] == 1
    plain.free(plain.alloc())                 # no sheaves: the v4.4 paths, 6.18's names
    assert plain.stats()["alloc_slowpath"] == 1 and plain.stats()["free_fastpath"] == 1
    assert c.validate() == [] and plain.validate() == []
    with pytest.raises(ValueError):
        pyslub.Memory(size=1 << 20, nr_cpus=1).create_cache("x", 64, sheaf_capacity=8)


@pytest.mark.parametrize("slub", ["4.4", "6.18", "7.0"])
def test_every_generation_hands_out_distinct_objects_and_gives_every_page_back(slub):
    mem = pyslub.Memory(size=32 << 20, nr_cpus=4, slub=slub)
    kw = {"sheaf_capacity": 16} if slub == "6.18" else {}
    c = mem.create_cache("g", 100, **kw)
    pages = mem.free_pages()
    rng = np.random.default_rng(3)
    live: set[int] = set()
    for step in range(300):
        with mem.on_cpu(int(rng.integers(4))):
            if rng.random() < 0.5 or not live:
                n = int(rng.integers(1, 90))
                p = np.zeros(n, dtype=np.uint64)
                assert c.alloc_bulk(p) == n
                got = set(p.tolist())
                assert len(got) == n and not got & live
                live |= got
            else:
                xs = list(live)[: int(rng.integers(1, len(live) + 1))]
                rng.shuffle(xs)
                c.free_bulk(np.array(xs, dtype=np.uint64),
                            strategy=pyslub.FREE_BULK_STRATEGIES[step % 6])
                live -= set(xs)
        assert c.live_objects() == len(live)
    assert c.validate() == []
    if live:
        c.free_bulk(np.array(sorted(live), dtype=np.uint64))
    c.shrink()
    for k in range(4):                       # 6.18: barn flushes may refreeze cpu partials
        c.flush_cpu(k)
    c.shrink()
    assert c.live_objects() == 0 and c.validate() == []
    c.destroy()
    assert mem.free_pages() == pages
