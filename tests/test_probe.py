"""pyslub.probe(): one record per __slab_free call, as the seed's perf probes saw them."""

import numpy as np

import pyslub

OBJS = 32


def test_probe_records_each_slab_free_call_with_its_count_and_case(mem, seed_cache):
    c = seed_cache
    objs = [c.alloc() for _ in range(3 * OBJS + 1)]   # 3 full slabs, the 4th is the cpu slab
    slabs = [c.slab_of(objs[k * OBJS]) for k in range(3)]
    # free 5 objects of slab 0 and 3 of slab 1, interleaved, then 2 of slab 2, with lookahead
    p = np.array(objs[0:5] + objs[OBJS:OBJS + 3] + objs[2 * OBJS:2 * OBJS + 2],
                 dtype=np.uint64)
    with pyslub.probe(c) as pr:
        c.free_bulk(p, strategy="lookahead")
    # v4.4 backward scan: {slab 2: 2}, {slab 1: 3}, {slab 0: 5}; each the first free into a
    # full slab: frozen onto cpu 0's partial list
    assert pr == [(slabs[2], 2, False, "cpu_partial"), (slabs[1], 3, False, "cpu_partial"),
                  (slabs[0], 5, False, "cpu_partial")]
    assert pr.counts == [2, 3, 5]
    with pyslub.probe(c) as pr:
        c.free(objs[5])                               # into slab 0, now frozen
        c.free(objs[-1])                              # the cpu slab: fast path, no probe
    assert pr == [(slabs[0], 1, True, "frozen")]
    assert c.stats()["free_slowpath"] == 4 and c.validate() == []


def test_probe_off_records_nothing_and_recorders_are_independent(seed_cache):
    c = seed_cache
    objs = [c.alloc() for _ in range(OBJS + 1)]
    with pyslub.record_frees(c) as rec:
        c.free(objs[0])
    assert len(rec) == 1
    with pyslub.probe(c) as pr:
        pass
    c.free(objs[1])                                   # after the block: not recorded
    assert pr == [] and len(rec) == 1
