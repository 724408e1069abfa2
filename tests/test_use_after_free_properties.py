"""Hypothesis: random API calls interleaved with random writes into *freed* objects (use after
free, through ``mem.raw``: views refuse freed objects), in the default safe mode, with F and
with Z P (whose byte checks restore what they find: never in an object somebody holds).

Whatever the writes do to the free pointers stored in freed objects, afterwards:
* no object is ever handed to two owners (every address returned while we hold it is new);
* every object handed out lies on a slab of its own cache, at a slot boundary;
* the objects we hold keep their contents;
* no crash: a corrupted freelist ends as a report (the cache's ``reports``) and an error of
  the allocation that met it, or is cut and the objects behind it leaked -- never more.
"""

from __future__ import annotations

import os

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pyslub
from pyslub import Memory, SlabError

# PYSLUB_UAF_EXAMPLES=5000 for a long run (docs/debugging.md)
EXAMPLES = int(os.environ.get("PYSLUB_UAF_EXAMPLES", 60 if pyslub.COMPILED else 15))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

OPS = st.lists(st.tuples(st.sampled_from(["alloc", "alloc_bulk", "free", "free_bulk",
                                          "write_freed", "flush", "shrink"]),
                         st.integers(0, 2**32 - 1)), min_size=5, max_size=60)


HARDENING = [{}, {"freelist_hardened": True, "freelist_random": True, "freeptr": "middle"}]


@SETTINGS
@given(ops=OPS, flags=st.sampled_from([0, pyslub.SLAB_CONSISTENCY_CHECKS,
                                       pyslub.SLAB_POISON | pyslub.SLAB_RED_ZONE]),
       slub=st.sampled_from(["4.4", "7.0"]), size=st.sampled_from([16, 64, 200]),
       hardening=st.sampled_from(HARDENING))
def test_writes_into_freed_objects_never_give_one_object_two_owners(ops, flags, slub, size,
                                                                     hardening):
    mem = Memory(size=16 << 20, nr_cpus=2, slub=slub, **hardening)
    c = mem.create_cache("victim", size, flags=flags)
    held: dict[int, bytes] = {}
    freed: list[int] = []
    words = (c.size // 8) if c.size >= 8 else 1

    def take(addrs):
        for a in addrs:
            assert a not in held, f"{a:#x} handed out while held"
            assert mem.cache_of(a) is c
            c.slab_of(a)                             # a slot boundary of one of its slabs
            tag = a.to_bytes(8, "little") * (size // 8)
            mem.view(a)[:len(tag)] = tag
            held[a] = tag

    for op, x in ops:
        with mem.on_cpu(x % 2):
            try:
                if op == "alloc":
                    take([c.alloc()])
                elif op == "alloc_bulk":
                    p = np.zeros(1 + x % 40, dtype=np.uint64)
                    if c.alloc_bulk(p):
                        take([int(a) for a in p])
                elif op == "free" and held:
                    a = sorted(held)[x % len(held)]
                    del held[a]
                    c.free(a)
                    freed.append(a)
                elif op == "free_bulk" and held:
                    k = 1 + x % len(held)
                    q = sorted(held)[:k]
                    for a in q:
                        del held[a]
                    c.free_bulk(np.array(q, dtype=np.uint64))
                    freed.extend(q)
                elif op == "write_freed" and freed:
                    a = freed[x % len(freed)]
                    if a not in held:                  # a use after free: any word of it
                        w = (x >> 8) % words
                        target = [0, a, a + c.size, 8, x, *held][(x >> 16) % (5 + len(held))]
                        mem.raw(a + 8 * w, 8)[:] = int(target % 2**63).to_bytes(8, "little")
                elif op == "flush":
                    c.flush_cpu()
                elif op == "shrink":
                    c.shrink()
            except (SlabError, MemoryError):
                pass                                # refused or detected: nothing handed out
    for a, tag in held.items():                     # our objects were never touched
        assert bytes(mem.view(a)[:len(tag)]) == tag
    c.validate()                                    # reports, never a crash
