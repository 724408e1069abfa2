"""Exact SLUB_STATS and occupancy after scripted steps (v4.4 semantics, spec §3 and §6.1).

Every expected number below is derived from the kernel's code paths in the comments, not read
back from pyslub.  Geometry: the seed cache, 32 objects per slab, min_partial 5, cpu_partial 13.
pyslub's own ``local_lock`` counts the cpu claims: one per section the kernel runs with IRQs
disabled (___slab_alloc via __slab_alloc, put_cpu_partial from __slab_free, a flush).
"""

import pyslub

OBJS = 32
SLAB = 8192


def nonzero(stats):
    return {k: v for k, v in stats.items() if v}


def alloc_slabs(cache, nslabs):
    """Allocate nslabs * 32 objects on the current cpu; returns them grouped by slab."""
    objs = [cache.alloc() for _ in range(nslabs * OBJS)]
    slabs = {}
    for o in objs:
        slabs.setdefault(cache.slab_of(o), []).append(o)
    assert len(slabs) == nslabs and all(len(v) == OBJS for v in slabs.values())
    return objs, list(slabs.values())


def test_first_alloc_of_a_fresh_cache(seed_cache):
    a = seed_cache.alloc()
    # ___slab_alloc: no cpu slab, no partial -> new_slab_objects -> new slab (one claim)
    assert nonzero(seed_cache.stats()) == {"alloc_slowpath": 1, "alloc_slab": 1,
                                           "local_lock": 1}
    assert seed_cache.occupancy() == {"objects": 32, "objects_partial": 0, "partial": 0,
                                      "cpu_slabs": 1, "slabs": 1, "total_objects": 32}
    st = seed_cache.cpu_state(0)
    assert st["page"] == seed_cache.slab_of(a) and st["freelist"] == a + 256  # address order
    assert seed_cache.slab_state(st["page"]) == {"freelist": 0, "inuse": 32, "objects": 32,
                                                  "frozen": True}
    seed_cache.free(a)                    # on the cpu slab: lockless fast path
    assert seed_cache.stats()["free_fastpath"] == 1
    assert seed_cache.stats()["cmpxchg_double_cpu"] == 1
    assert seed_cache.validate() == []


def test_filling_a_slab_then_the_next_alloc(seed_cache):
    objs = [seed_cache.alloc() for _ in range(OBJS + 1)]
    s = seed_cache.stats()
    # 1 slow + 31 fast fill slab 0; the 33rd: get_freelist() finds page.freelist empty ->
    # DEACTIVATE_BYPASS (slab 0 is now full, unfrozen, on no list) -> new slab
    assert (s["alloc_fastpath"], s["alloc_slowpath"], s["alloc_slab"],
            s["deactivate_bypass"]) == (31, 2, 2, 1)
    full = seed_cache.slab_state(seed_cache.slab_of(objs[0]))
    assert full == {"freelist": 0, "inuse": 32, "objects": 32, "frozen": False}
    assert seed_cache.occupancy()["slabs"] == 2 and seed_cache.occupancy()["cpu_slabs"] == 1
    assert seed_cache.validate() == []


def test_free_into_a_full_slab_freezes_it_onto_the_cpu_partial_list(seed_cache):
    objs = [seed_cache.alloc() for _ in range(OBJS + 1)]
    seed_cache.reset_stats()
    slab0 = seed_cache.slab_of(objs[0])
    seed_cache.free(objs[0])
    # __slab_free: prior == NULL, not frozen, cpu partial on -> freeze + put_cpu_partial
    assert nonzero(seed_cache.stats()) == {"free_slowpath": 1, "cpu_partial_free": 1,
                                           "cmpxchg_double_slab": 1, "local_lock": 1}
    assert seed_cache.cpu_state(0)["partial"] == [slab0]
    assert seed_cache.slab_state(slab0)["frozen"] is True
    seed_cache.free(objs[1])              # into a frozen slab: FREE_FROZEN, no list work
    assert seed_cache.stats()["free_frozen"] == 1
    assert seed_cache.stats()["list_lock"] == 0
    assert seed_cache.slab_state(slab0)["inuse"] == 30
    assert seed_cache.validate() == []


def test_remote_frees_into_a_cpu_slab_then_refill_and_flush(mem, seed_cache):
    a, b, c = (seed_cache.alloc() for _ in range(3))
    slab = seed_cache.slab_of(a)
    with mem.on_cpu(1):
        assert mem.cpu == 1
        seed_cache.free(a)
        seed_cache.free(b)
    # cpu 1 has no cpu slab: __slab_free into cpu 0's frozen slab
    assert nonzero(seed_cache.stats(cpu=1)) == {"free_slowpath": 2, "free_frozen": 2,
                                                "cmpxchg_double_slab": 2}
    assert seed_cache.slab_state(slab)["freelist"] == b       # b pushed in front of a
    assert seed_cache.slab_state(slab)["inuse"] == 30
    # cpu 0 drains its 29-object freelist, then ___slab_alloc refills from page.freelist
    more = [seed_cache.alloc() for _ in range(29 + 2)]
    s0 = seed_cache.stats(cpu=0)
    assert s0["alloc_refill"] == 1 and s0["alloc_slowpath"] == 2
    assert set(more[-2:]) == {a, b}
    for o in more[-2:]:
        seed_cache.free(o)                # back onto the cpu freelist (fast path)
    with mem.on_cpu(1):
        seed_cache.free(c)                # a remote free again
    seed_cache.reset_stats()
    seed_cache.flush_cpu(0)
    # deactivate_slab: page.freelist != NULL -> DEACTIVATE_REMOTE_FREES, to the tail;
    # stage 1 moves 1 of the 2 cpu-freelist objects (one swap), stage 2 the last one
    s = seed_cache.stats()
    assert (s["cpuslab_flush"], s["deactivate_remote_frees"], s["deactivate_to_tail"],
            s["list_lock"], s["cmpxchg_double_slab"]) == (1, 1, 1, 1, 2)
    assert seed_cache.node_partial() == [slab]
    occ = seed_cache.occupancy()
    assert (occ["partial"], occ["objects_partial"], occ["cpu_slabs"]) == (1, 29, 0)
    assert seed_cache.validate() == []


def test_cpu_partial_drain_and_min_partial_discard(seed_cache):
    # 16 slabs s0..s15, s15 the cpu slab; then every object of s0..s14 freed in order
    _, slabs = alloc_slabs(seed_cache, 16)
    addrs = [seed_cache.slab_of(objs[0]) for objs in slabs]
    seed_cache.reset_stats()
    for objs in slabs[:15]:
        for o in objs:
            seed_cache.free(o)
    # each slab: 1st free freezes it onto the cpu partial list (pobjects += 1), 31 FREE_FROZEN.
    # The 15th put sees pobjects 14 > cpu_partial 13: unfreeze_partials() walks s13..s0
    # (LIFO chain), all empty: the first 5 go to the node list, 9 are freed (min_partial 5).
    assert nonzero(seed_cache.stats()) == {
        "free_slowpath": 480, "free_frozen": 465, "cpu_partial_free": 15,
        "cpu_partial_drain": 1, "free_add_partial": 5, "deactivate_empty": 9,
        "free_slab": 9, "list_lock": 1, "cmpxchg_double_slab": 480 + 14, "local_lock": 15}
    assert seed_cache.node_partial() == [addrs[k] for k in (13, 12, 11, 10, 9)]
    assert seed_cache.cpu_state(0)["partial"] == [addrs[14]]
    assert seed_cache.occupancy() == {"objects": 64, "objects_partial": 0, "partial": 5,
                                      "cpu_slabs": 2, "slabs": 7, "total_objects": 224}
    assert seed_cache.validate() == []
    # the next alloc: cpu slab s15 is full -> bypass; take s14 from the cpu partial list
    seed_cache.reset_stats()
    seed_cache.alloc()
    assert nonzero(seed_cache.stats()) == {"alloc_slowpath": 1, "deactivate_bypass": 1,
                                           "cpu_partial_alloc": 1, "alloc_refill": 1,
                                           "cmpxchg_double_slab": 2, "local_lock": 1}
    assert seed_cache.cpu_state(0)["page"] == addrs[14]


def test_no_cpu_partial_slabs_go_to_the_node_list_and_empty_ones_are_freed(seed_cache):
    seed_cache.cpu_partial = 0
    _, slabs = alloc_slabs(seed_cache, 7)
    seed_cache.reset_stats()
    for objs in slabs[:6]:
        for o in objs:
            seed_cache.free(o)
    # 1st free of each full slab: freeze, put_cpu_partial, cpu_partial == 0 -> unfreeze at
    # once -> node list (FREE_ADD_PARTIAL, lock).  Last free: inuse 0 with prior != NULL ->
    # lock; discarded only once nr_partial >= min_partial (5): slabs 4 and 5.
    assert nonzero(seed_cache.stats()) == {
        "free_slowpath": 192, "cpu_partial_free": 6, "free_add_partial": 6,
        "free_remove_partial": 2, "free_slab": 2, "list_lock": 12,
        "cmpxchg_double_slab": 192 + 6, "local_lock": 6}
    assert seed_cache.occupancy()["partial"] == 4
    assert seed_cache.occupancy()["slabs"] == 5
    assert all(seed_cache.slab_state(s)["inuse"] == 0 for s in seed_cache.node_partial())
    assert seed_cache.validate() == []
    # shrink() frees the cached empty slabs
    assert seed_cache.shrink() == 4
    assert seed_cache.occupancy()["slabs"] == 1 and seed_cache.validate() == []


def test_get_partial_node_takes_extra_slabs_for_the_cpu_partial_list(mem, seed_cache):
    _, slabs = alloc_slabs(seed_cache, 6)
    addrs = [seed_cache.slab_of(objs[0]) for objs in slabs]
    for objs in slabs[:5]:
        for o in objs[:3]:                 # 3 of 32 free in s0..s4 (cpu partial, pobjects 5)
            seed_cache.free(o)
    seed_cache.flush_cpu(0)                # unfreeze_partials walks the chain s4..s0
    assert seed_cache.node_partial() == [addrs[k] for k in (4, 3, 2, 1, 0)]
    seed_cache.reset_stats()
    with mem.on_cpu(3):
        seed_cache.alloc()
    # get_partial_node: s4 -> cpu slab (available 3), s3 -> cpu partial (6, not > 13/2),
    # s2 -> cpu partial (9 > 6: stop)
    s = seed_cache.stats(cpu=3)
    assert (s["alloc_from_partial"], s["cpu_partial_node"], s["list_lock"]) == (1, 2, 1)
    assert seed_cache.cpu_state(3)["page"] == addrs[4]
    assert seed_cache.cpu_state(3)["partial"] == [addrs[2], addrs[3]]
    assert seed_cache.node_partial() == [addrs[1], addrs[0]]
    assert seed_cache.validate() == []


def test_destroy_refuses_while_objects_live(mem, seed_cache):
    a = seed_cache.alloc()
    b = seed_cache.alloc()
    seed_cache.free(a)
    try:
        seed_cache.destroy()
    except pyslub.SlabError as e:
        assert "1 live objects" in str(e)
    else:
        raise AssertionError("destroy() must refuse")
    assert seed_cache.validate() == []
    seed_cache.free(b)
    free_before = mem.free_pages()
    seed_cache.destroy()
    assert mem.free_pages() == free_before + 2           # the order-1 slab went back
    assert "seed" not in mem.caches
