"""Freelist hardening, freelist randomisation and the v5.7 free pointer placement
(pyslub.hardening; CONFIG_SLAB_FREELIST_HARDENED / CONFIG_SLAB_FREELIST_RANDOM)."""

from __future__ import annotations

import numpy as np
import pytest

import pyslub
from pyslub import SLAB_POISON, SLAB_RED_ZONE, Memory, SlabError
from pyslub.hardening import cache_secrets, random_seq

GENERATIONS = ["4.4", "6.18", "7.0"]


def word(mem, addr):
    return int.from_bytes(mem.raw(addr, 8), "little", signed=True)


def swab(x):
    return int.from_bytes((x % 2**64).to_bytes(8, "little"), "big", signed=True)


def fresh_slab_order(c, mem):
    """The objects of one fresh slab in the order its freelist hands them out."""
    with mem.on_cpu(0):
        first = c.alloc()
        rest = [c.alloc() for _ in range(c.objects - 1)]
    return [first, *rest]


# ---- the options --------------------------------------------------------------------------

@pytest.mark.parametrize("kw, exc, text", [
    ({"freeptr": "end"}, ValueError, "freeptr must be one of"),
    ({"freelist_hardened": 1}, TypeError, "freelist_hardened must be a bool"),
    ({"freelist_random": "yes"}, TypeError, "freelist_random must be a bool"),
    ({"random_seed": 1.5}, TypeError, "random_seed must be an int"),
])
def test_bad_options_are_refused_by_name(kw, exc, text):
    with pytest.raises(exc, match=text):
        Memory(size=4 << 20, nr_cpus=2, **kw)
    if "random_seed" in kw:                        # a Memory's option only
        return
    mem = Memory(size=4 << 20, nr_cpus=2)
    with pytest.raises(exc, match=text):
        mem.create_cache("x", 64, **kw)
    assert "x" not in mem.caches                   # nothing was made


def test_per_cache_choices_override_the_memory_defaults():
    mem = Memory(size=8 << 20, nr_cpus=2, freelist_hardened=True, freelist_random=True)
    a = mem.create_cache("a", 64)
    b = mem.create_cache("b", 64, freelist_hardened=False, freelist_random=False,
                         freeptr="middle")
    assert (a.hardened, a.freelist_random, a.offset) == (True, True, 0)
    assert (b.hardened, b.freelist_random, b.offset) == (False, False, 32)
    assert a.info["freelist_hardened"] and not b.info["freelist_hardened"]
    assert b.info["freeptr"] == "middle" and a.info["freeptr"] == "start"
    assert mem.cache_of(mem.kmalloc(64)).hardened   # the kmalloc caches follow the Memory


# ---- the free pointer in the middle of the object --------------------------------------------

@pytest.mark.parametrize("object_size, offset", [(8, 0), (16, 8), (24, 8), (64, 32),
                                                 (100, 48), (232, 112)])
def test_middle_placement_is_align_down_half_the_object(object_size, offset):
    mem = Memory(size=8 << 20, nr_cpus=2, freeptr="middle")
    c = mem.create_cache("m", object_size)
    assert c.offset == offset
    assert mem.create_cache("z", object_size, flags=SLAB_RED_ZONE).offset == offset
    p = mem.create_cache("p", object_size, flags=SLAB_POISON)   # poison: behind the object
    assert p.offset == p.inuse
    assert mem.create_cache("s", object_size, freeptr="start").offset == 0


@pytest.mark.parametrize("freeptr, first_word_kept", [("start", False), ("middle", True)])
def test_a_freed_objects_first_word_survives_only_with_middle_placement(freeptr,
                                                                        first_word_kept):
    mem = Memory(size=8 << 20, nr_cpus=2, checks=False, freeptr=freeptr)
    c = mem.create_cache("m", 64)
    with mem.on_cpu(0):
        a, b = c.alloc(), c.alloc()
        mem.view(a)[:] = b"\xab" * 64
        c.free(b)
        c.free(a)                                  # a -> b: a's free pointer is b
        assert c.freepointer(a) == b
        assert (bytes(mem.raw(a, 8)) == b"\xab" * 8) is first_word_kept
        assert word(mem, a + c.offset) == b
        assert (c.alloc(), c.alloc()) == (a, b)
    assert c.validate() == []


# ---- CONFIG_SLAB_FREELIST_HARDENED --------------------------------------------------------------

@pytest.mark.parametrize("slub", GENERATIONS)
def test_hardened_free_pointers_are_stored_encoded(slub):
    mem = Memory(size=8 << 20, nr_cpus=2, slub=slub, freelist_hardened=True)
    c = mem.create_cache("h", 64)
    objs = c.alloc_many(c.objects * 3)
    c.free_bulk(objs)
    c.flush_all()
    keys = set()
    for slab in c.slabs():
        free = c.free_objects(slab)
        assert len(free) == c.objects          # the decoded lists are whole
        for obj, nxt in zip(free, free[1:] + [0], strict=True):
            raw = word(mem, obj + c.offset)
            assert c.freepointer(obj) == nxt
            assert raw != nxt
            keys.add(raw ^ nxt ^ swab(obj + c.offset))
    assert len(keys) == 1                            # one s->random per cache ...
    other = mem.create_cache("h2", 64)
    x, y = other.alloc(), other.alloc()
    other.free(y)
    other.free(x)
    assert word(mem, x + other.offset) ^ y ^ swab(x + other.offset) not in keys   # ... each its own
    assert c.validate() == [] and other.validate() == []


def test_the_key_comes_from_the_seed_and_the_name():
    s1 = cache_secrets(7, "a")
    assert s1 == cache_secrets(7, "a")
    assert s1 != cache_secrets(7, "b") and s1 != cache_secrets(8, "a")
    assert cache_secrets(None, "a") != cache_secrets(None, "a")


@pytest.mark.parametrize("hardened", [False, True])
def test_a_forged_free_pointer_is_caught_only_when_hardened(hardened):
    """The use after free that hardening exists for: an attacker writes the address of a live
    object into a freed one.  Unhardened (checks=False: the kernel's unchecked paths) the live
    object is handed out a second time; hardened the word decodes to garbage, which the core
    reports as a corrupt free pointer instead."""
    mem = Memory(size=8 << 20, nr_cpus=2, checks=False, freelist_hardened=hardened)
    c = mem.create_cache("victim", 64)
    with mem.on_cpu(0):
        live = c.alloc()
        freed = c.alloc()
        c.free(freed)                                # the cpu freelist's head
        mem.raw(freed + c.offset, 8)[:] = live.to_bytes(8, "little")
        assert c.alloc() == freed
        if hardened:
            nxt = c.alloc()
            assert nxt != live
            assert any("Freepointer corrupt" in r for r in c.reports)
        else:
            assert c.alloc() == live                 # two owners: what the kernel allows
            assert c.reports == []


def test_naive_double_free_is_refused_on_the_fast_and_the_slow_path():
    mem = Memory(size=8 << 20, nr_cpus=2, checks=False, freelist_hardened=True)
    c = mem.create_cache("h", 64)
    with mem.on_cpu(0):
        a = c.alloc()
        c.free(a)                                    # a is c->freelist now
        before = c.stats()
        with pytest.raises(SlabError, match=r"naive double free.*" + hex(a)):
            c.free(a)
        assert c.stats()["free_fastpath"] == before["free_fastpath"]
        objs = [c.alloc() for _ in range(c.objects + 1)]   # a, ..., then a new slab
        assert objs[0] == a and len(set(objs)) == len(objs)
        c.free(objs[1])                              # into a slab that is not the cpu's:
        with pytest.raises(SlabError, match="naive double free"):   # page->freelist == it
            c.free(objs[1])
    assert c.validate() == [f"reported: {r}" for r in c.reports]    # nothing else is wrong
    assert len(c.reports) == 2
    assert c.live_objects() == len(objs) - 1


def test_without_hardening_the_same_double_free_hands_one_object_out_twice():
    mem = Memory(size=8 << 20, nr_cpus=2, checks=False)
    c = mem.create_cache("h", 64)
    with mem.on_cpu(0):
        a = c.alloc()
        c.free(a)
        c.free(a)                                    # nothing notices: a points to itself
        assert c.alloc() == a and c.alloc() == a


def test_safe_mode_refuses_the_double_free_before_hardening_sees_it():
    mem = Memory(size=8 << 20, nr_cpus=2, freelist_hardened=True)
    c = mem.create_cache("h", 64)
    a = c.alloc()
    c.free(a)
    with pytest.raises(SlabError, match="already free|not allocated"):
        c.free(a)
    assert not any("naive" in r for r in c.reports)


@pytest.mark.parametrize("strategy", pyslub.FREE_BULK_STRATEGIES)
def test_naive_double_free_in_one_bulk_array_is_dropped_not_linked(strategy):
    """checks=False + hardened: an array holding an object twice in a row trips the BUG_ON
    while the detached freelist is built; the duplicate is dropped (the object is freed once)."""
    mem = Memory(size=8 << 20, nr_cpus=2, checks=False, freelist_hardened=True)
    c = mem.create_cache("h", 64)
    with mem.on_cpu(0):
        objs = c.alloc_many(8)
        p = np.array([*objs[:4], objs[4], objs[4], *objs[5:]], dtype=np.uint64)
        try:
            c.free_bulk(p, strategy=strategy)
        except SlabError as e:
            assert "naive double free" in str(e)
        again = c.alloc_many(8)
    assert len(set(int(x) for x in again)) == 8      # never one object twice
    assert c.validate() == [f"reported: {r}" for r in c.reports]
    assert len(c.reports) == 1


@pytest.mark.parametrize("strategy", pyslub.FREE_BULK_STRATEGIES)
def test_naive_double_free_on_a_slab_that_is_not_the_cpu_slab_counts_once(strategy):
    """The same through __slab_free (the slab is not the cpu slab): the count given with the
    list is the objects linked. The swap builder counted the dropped duplicate too: inuse
    one too low."""
    mem = Memory(size=8 << 20, nr_cpus=1, checks=False, freelist_hardened=True)
    c = mem.create_cache("h", 64)
    objs = c.alloc_many(c.objects * 2)                # slab 1 full, no longer the cpu slab
    a, b = int(objs[0]), int(objs[1])
    with pytest.raises(SlabError, match="naive double free"):
        c.free_bulk(np.array([b, a, a], dtype=np.uint64), strategy=strategy)
    assert c.slab_state(c.slab_of(a))["inuse"] == c.objects - 2
    assert c.validate() == [f"reported: {r}" for r in c.reports] and len(c.reports) == 1


# ---- CONFIG_SLAB_FREELIST_RANDOM --------------------------------------------------------------

@pytest.mark.parametrize("slub", ["4.4", "6.18"])
def test_a_new_slab_follows_random_seq_from_a_random_start(slub):
    mem = Memory(size=8 << 20, nr_cpus=2, slub=slub, freelist_random=True, random_seed=42)
    c = mem.create_cache("r", 64)
    order = fresh_slab_order(c, mem)
    base = c.slab_of(order[0])
    offsets = [a - base for a in order]
    assert sorted(offsets) == [i * c.size for i in range(c.objects)]   # every slot once
    seq = list(random_seq(cache_secrets(42, "r")[1], c.objects, c.size))
    start = seq.index(offsets[0])
    assert offsets == seq[start:] + seq[:start]     # the sequence, wrapped at its end
    assert offsets != sorted(offsets)


def test_a_fixed_seed_repeats_the_shuffles_and_another_seed_does_not():
    def run(seed):
        mem = Memory(size=8 << 20, nr_cpus=2, freelist_random=True, random_seed=seed)
        c = mem.create_cache("r", 128)
        with mem.on_cpu(0):
            return [c.alloc() for _ in range(4 * c.objects)]
    assert run(1) == run(1)
    assert run(1) != run(2)


def test_without_randomisation_slabs_are_in_address_order():
    mem = Memory(size=8 << 20, nr_cpus=2)
    c = mem.create_cache("r", 64)
    order = fresh_slab_order(c, mem)
    assert order == sorted(order) and order[1] - order[0] == c.size


def test_a_smaller_fallback_slab_skips_the_offsets_it_does_not_have():
    """next_freelist_entry(): when allocate_slab() falls back to s->min (fewer objects), the
    entries of random_seq beyond the slab are skipped."""
    mem = Memory(size=2 << 20, nr_cpus=2, freelist_random=True, random_seed=3)
    filler = mem.create_cache("filler", 256)       # order-0 slabs
    assert filler.order == 0
    big = mem.create_cache("big", 1024)
    assert big.order > big.min_order
    held = []
    while True:                                      # every page becomes a filler slab
        try:
            held.append(filler.alloc())
        except MemoryError:
            break
    for a in held:                                   # empty every other slab: no free buddies
        if (filler.slab_of(a) >> 12) % 2:
            filler.free(a)
    filler.shrink()
    assert filler.nr_slabs < len(held) // filler.objects
    with mem.on_cpu(0):
        first = big.alloc()
        objs = [first] + [big.alloc() for _ in range(big.min_objects - 1)]
    assert big.stats()["order_fallback"] == 1
    base = big.slab_of(first)
    offsets = [a - base for a in objs]
    seq = list(random_seq(cache_secrets(3, "big")[1], big.objects, big.size))
    small = [o for o in seq if o < big.min_objects * big.size]
    start = small.index(offsets[0])
    assert offsets == small[start:] + small[:start]
    assert big.validate() == []


@pytest.mark.parametrize("slub", GENERATIONS)
@pytest.mark.parametrize("checks", [True, False])
def test_all_three_together_keep_every_invariant(slub, checks):
    mem = Memory(size=16 << 20, nr_cpus=2, slub=slub, checks=checks, freelist_hardened=True,
                 freelist_random=True, freeptr="middle", random_seed=5)
    c = mem.create_cache("all", 200)
    held = set()
    rng = np.random.default_rng(0)
    for _ in range(30):
        with mem.on_cpu(int(rng.integers(2))):
            p = c.alloc_many(int(rng.integers(1, 300)))
            got = {int(x) for x in p}
            assert not got & held and len(got) == len(p)
            for a in list(got)[:5]:
                mem.view(a)[:8] = a.to_bytes(8, "little")
            held |= got
            k = int(rng.integers(0, len(held) + 1))
            out = sorted(held)[:k]
            c.free_bulk(np.array(out, dtype=np.uint64))
            held -= set(out)
    assert c.live_objects() == len(held)
    assert c.validate() == []
    c.free_bulk(np.array(sorted(held), dtype=np.uint64))
    c.destroy()


def test_a_shared_arena_decodes_another_processes_free_pointers(tmp_path):
    """The key and the seed live in the cache's descriptor: every process's view of a shared
    cache decodes the same lists."""
    name = f"pyslub_test_hard_{np.random.default_rng().integers(1 << 30)}"
    with Memory.create_shared(name, size=16 << 20, nr_cpus=2, freelist_hardened=True,
                              freelist_random=True, random_seed=9) as mem:
        c = mem.create_cache("shared-h", 64)
        objs = c.alloc_many(100)
        addrs = sorted(int(x) for x in objs)
        other = Memory.attach(name)
        try:
            view = other.cache("shared-h")
            assert view.hardened and view.freelist_random
            view.free_bulk(objs)                     # through the other mapping
            assert view.validate() == [] and c.validate() == []
            for slab in c.slabs():                   # both mappings read the same lists
                assert view.free_objects(slab) == c.free_objects(slab)
            assert sum(len(c.free_objects(s)) for s in c.slabs()) >= len(addrs)
            again = view.alloc_many(100)
            assert len({int(x) for x in again}) == 100
            c.free_bulk(again)
        finally:
            other.close()
