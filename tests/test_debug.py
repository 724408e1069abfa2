"""Issue 8: slab_debug -- the kernel's debug semantics (v4.4), its reports, and the fidelity
fixes of the issue's "Why" list.  Every test runs compiled and uncompiled."""

from __future__ import annotations

import numpy as np
import pytest

import pyslub
from pyslub import SLAB_CONSISTENCY_CHECKS, SLAB_POISON, SLAB_RED_ZONE, SLAB_STORE_USER, SlabError
from pyslub._layout import STAT_NAMES


def kernel_shrink_order(partial, free_of):
    """__kmem_cache_shrink()'s list operations, literally: list_move() to the discard list or
    to promote[free - 1] (at that list's head), then list_splice(promote[i], &n->partial) for
    i = 31 .. 0 (each at the partial list's head)."""
    rest = list(partial)
    promote = [[] for _ in range(32)]
    for page in partial:
        free = free_of[page]
        if free == 64:
            rest.remove(page)
        elif free <= 32:
            rest.remove(page)
            promote[free - 1].insert(0, page)
    for i in range(31, -1, -1):
        rest = promote[i] + rest
    return rest


def test_shrink_promotes_like_the_kernel_and_counts_nothing():
    mem = pyslub.Memory(size=16 << 20, nr_cpus=1)
    c = mem.create_cache("shrink", 64)                 # 64 objects per order-0 slab
    assert c.objects == 64
    p = c.alloc_many(64 * 8)
    slabs = sorted({c.slab_of(int(a)) for a in p})
    assert len(slabs) == 8
    by_slab = {s: [int(a) for a in p if c.slab_of(int(a)) == s] for s in slabs}
    # free counts: two slabs with 3 free, two with 1, one with 40, one with 32, one empty,
    # one with 2: buckets with more than one member show list_move()'s reversal
    for s, nfree in zip(slabs, (3, 40, 3, 1, 64, 32, 1, 2), strict=True):
        for a in by_slab[s][:nfree]:
            c.free(a)
    c.flush_all()
    before = c.node_partial()
    free_of = {s: c.slab_state(s)["objects"] - c.slab_state(s)["inuse"] for s in before}
    assert sorted(free_of.values()) == [1, 1, 2, 3, 3, 32, 40, 64]
    expected = kernel_shrink_order(before, free_of)
    stats = c.stats()
    assert c.shrink() == 1
    assert c.node_partial() == expected
    after = c.stats()
    assert {k: after[k] - stats[k] for k in STAT_NAMES if after[k] != stats[k]} == {}
    assert c.validate() == []


GENERATIONS = ("4.4", "6.18", "7.0")


@pytest.mark.parametrize("slub", GENERATIONS)
@pytest.mark.parametrize("flag", [SLAB_RED_ZONE, SLAB_POISON, SLAB_STORE_USER,
                                  SLAB_CONSISTENCY_CHECKS])
def test_any_debug_flag_runs_the_free_checks(flag, slub):
    """v4.4: kmem_cache_debug(s) (any debug flag) runs free_debug_processing's checks; with
    the safe mode off they are what catches a double free."""
    mem = pyslub.Memory(size=16 << 20, nr_cpus=2, checks=False, slub=slub)
    c = mem.create_cache("dbg", 64, flags=flag)
    a = c.alloc()
    b = c.alloc()
    c.free(a)
    with pytest.raises(SlabError, match=r"Object already free: 0x[0-9a-f]+ \(double free\)"):
        c.free(a)
    assert len([r for r in c.reports if "Object already free" in r]) == 1
    x, y = c.alloc(), c.alloc()
    assert len({x, y, b}) == 3                          # nobody owns an object twice


@pytest.mark.skipif(pyslub.COMPILED, reason="drives the core's __slab_free directly, which is "
                    "a C function when compiled: a count mismatch cannot be made through the API")
def test_bulk_count_mismatch_is_reported_and_freed():
    """v4.4 free_debug_processing: "Bulk freelist count(%d) invalid(%d)" and the list is freed
    all the same (ret stays 1)."""
    mem = pyslub.Memory(size=16 << 20, nr_cpus=1, checks=False)
    c = mem.create_cache("cnt", 64, flags=SLAB_CONSISTENCY_CHECKS)
    objs = [c.alloc() for _ in range(4)]
    c.flush_all()
    page = c.check_addr(objs[0])
    head, tail = objs[0], objs[2]
    c.words[(objs[0] + c.offset) >> 3] = objs[1]       # a detached list of 3, told it holds 2
    c.words[(objs[1] + c.offset) >> 3] = objs[2]
    cpu, st = c._cpu_seat()
    free_before = c.slab_state(c.slab_of(head))["inuse"]
    c.slab_free_slowpath(cpu, st, page, head, tail, 2)
    c._after()
    assert [r for r in c.reports if "Bulk" in r] == [
        f"BUG cnt: Bulk freelist count(2) invalid(3) (slab {c.slab_of(head):#x})"]
    assert c.slab_state(c.slab_of(head))["inuse"] == free_before - 2   # inuse -= cnt (kernel)
    assert c.free_objects(c.slab_of(head))[:3] == [head, objs[1], tail]


# -- the "Why" scenarios that main had fixed already: regression tests -------------------------

STRATEGIES = pyslub.FREE_BULK_STRATEGIES


@pytest.mark.parametrize("flags", [0, SLAB_CONSISTENCY_CHECKS])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_refused_free_bulk_changes_nothing(flags, strategy):
    """F: ``c.free(x); c.free_bulk([a, b, x])`` used to relink a and b before refusing."""
    mem = pyslub.Memory(size=16 << 20, nr_cpus=2)
    c = mem.create_cache("why", 64, flags=flags)
    a, b, x = c.alloc(), c.alloc(), c.alloc()
    c.free(x)
    p = np.array([a, b, x], dtype=np.uint64)
    with pytest.raises(SlabError, match=r"p\[2\] = 0x[0-9a-f]+ is not allocated.*nothing was "
                                        "freed"):
        c.free_bulk(p, strategy=strategy)
    assert list(p) == [a, b, x]
    got = {c.alloc() for _ in range(8)}
    assert not got & {a, b}
    assert c.validate() == []
    c.free_bulk(np.array([a, b], dtype=np.uint64), strategy=strategy)   # still ours to free


def test_freelist_pointing_at_a_live_object_is_caught_at_alloc():
    mem = pyslub.Memory(size=16 << 20, nr_cpus=1)
    c = mem.create_cache("uaf", 64, flags=SLAB_CONSISTENCY_CHECKS)
    objs = [c.alloc() for _ in range(4)]
    c.free(objs[1])
    mem.raw(objs[1] + c.offset, 8)[:] = int(objs[2]).to_bytes(8, "little")
    assert c.validate() != []
    # F: v4.4's debug ___slab_alloc deactivates the cpu slab after each object, with the rest
    # of its freelist, which trim_freelist cuts before objs[2]: reported, never handed out
    n = len(c.reports)
    assert c.alloc() == objs[1]
    assert [r.split(" (slab")[0] for r in c.reports[n:]] == [
        f"BUG uaf: Freelist points to an object in use: {objs[2]:#x}"]
    seen = {c.alloc() for _ in range(200)}
    assert not seen & set(objs)


@pytest.mark.parametrize("hardening", [{}, {"freelist_hardened": True, "freeptr": "middle"}])
@pytest.mark.parametrize("loop_to", [2, 0])
def test_cpu_freelist_cycle_is_cut_and_counted_once(loop_to, hardening):
    """A use after free points the last object of the cpu freelist back into the list (at an
    earlier object, or at itself). Deactivation used to give the loop's objects back again
    and again: ``inuse`` reached 0 and the slab was discarded under objects still held."""
    mem = pyslub.Memory(size=16 << 20, nr_cpus=1, **hardening)
    c = mem.create_cache("loop", 64)
    objs = [c.alloc() for _ in range(c.objects)]             # the cpu slab, full
    for a in objs[0], objs[2], objs[3]:
        c.free(a)                                             # cpu freelist: 3 -> 2 -> 0
    assert c.freepointer(objs[0]) == 0
    held = [a for i, a in enumerate(objs) if i not in (0, 2, 3)]
    for a in held:
        mem.view(a)[:8] = a.to_bytes(8, "little")
    target = objs[loop_to]
    word = objs[0] + c.offset
    stored = int.from_bytes(mem.raw(word, 8), "little")        # 0, or encoded 0 (hardened)
    if hardening:                                             # ptr ^ s->random ^ swab(&ptr)
        stored ^= target                                      # the same key, another ptr
    else:
        stored = target
    mem.raw(word, 8)[:] = stored.to_bytes(8, "little")
    assert c.freepointer(objs[0]) == target
    n = len(c.reports)
    c.flush_cpu()
    slab = c.slab_of(objs[0])
    line = (f"BUG loop: Freelist cycle detected in cpu freelist of slab {slab:#x}: object "
            f"{objs[0]:#x} points back to {target:#x}; FIX loop: freelist truncated after "
            f"{objs[0]:#x}")
    assert [str(r) for r in c.reports[n:]] == [line]
    assert c.validate() == [f"reported: {line}"]              # and nothing else is wrong
    c.shrink()
    assert c.nr_slabs == 1
    for a in held:                                            # still ours, untouched
        assert bytes(mem.view(a)[:8]) == a.to_bytes(8, "little")
    again = {c.alloc() for _ in range(3)}
    assert again == {objs[0], objs[2], objs[3]}               # each given back once
    c.free_bulk(np.array(held + sorted(again), dtype=np.uint64))
    assert c.validate() == [f"reported: {line}"] and c.live_objects() == 0


@pytest.mark.parametrize("hardening", [{}, {"freelist_hardened": True, "freeptr": "middle"}])
def test_cpu_freelist_into_a_live_object_is_cut_at_deactivation(hardening):
    """A use after free points a cpu freelist object at an object in use. Deactivation used
    to relink that object (a write into memory its owner holds) and hand it out again."""
    mem = pyslub.Memory(size=16 << 20, nr_cpus=1, **hardening)
    c = mem.create_cache("into", 64)
    objs = [c.alloc() for _ in range(c.objects)]
    for a in objs[0], objs[2], objs[3]:
        c.free(a)                                             # cpu freelist: 3 -> 2 -> 0
    held = [a for i, a in enumerate(objs) if i not in (0, 2, 3)]
    for a in held:
        mem.view(a)[:64] = a.to_bytes(8, "little") * 8
    word = objs[2] + c.offset
    stored = int.from_bytes(mem.raw(word, 8), "little")       # -> objs[0], maybe encoded
    stored ^= objs[0] ^ objs[5] if hardening else stored ^ objs[5]
    mem.raw(word, 8)[:] = stored.to_bytes(8, "little")
    assert c.freepointer(objs[2]) == objs[5]
    n = len(c.reports)
    c.flush_cpu()
    assert [str(r).split(" (slab")[0] for r in c.reports[n:]] == [
        f"BUG into: Freelist points to an object in use: {objs[5]:#x}"]
    for a in held:
        assert bytes(mem.view(a)[:64]) == a.to_bytes(8, "little") * 8
    got = {c.alloc() for _ in range(3)}
    assert {objs[2], objs[3]} < got and not got & set(held) and objs[0] not in got
    assert c.live_objects() == len(held) + 3 + 1              # + objs[0]: leaked, on purpose


def test_cpu_freelist_into_the_page_freelist_is_cut_at_deactivation():
    """A use after free points the cpu freelist into the slab's page.freelist (remote frees).
    Deactivation relinked those objects onto it a second time: a loop in page.freelist and
    ``inuse`` two too low, so freeing the objects still held took it below 0."""
    mem = pyslub.Memory(size=16 << 20, nr_cpus=2)
    c = mem.create_cache("alias", 64)
    with mem.on_cpu(0):
        objs = [c.alloc() for _ in range(c.objects)]
    with mem.on_cpu(1):
        c.free(objs[0])
        c.free(objs[1])                                       # remote: page.freelist 1 -> 0
    with mem.on_cpu(0):
        c.free(objs[3])                                       # cpu freelist: 3
        mem.raw(objs[3] + c.offset, 8)[:] = objs[1].to_bytes(8, "little")   # 3 -> 1
        c.flush_cpu(0)
    line = (f"BUG alias: Freelist points into the slab's other freelist: {objs[1]:#x} (slab "
            f"{c.slab_of(objs[0]):#x}; a write after free?); FIX alias: freelist cut before "
            "it, the objects after it are leaked")
    assert c.reports == [line]
    assert c.validate() == [f"reported: {line}"]              # inuse exact, no loop
    assert c.slab_state(c.slab_of(objs[0]))["inuse"] == c.objects - 3
    with mem.on_cpu(1):
        got = [c.alloc() for _ in range(3)]
    assert sorted(got) == sorted([objs[0], objs[1], objs[3]])
    c.free_bulk(np.array(objs, dtype=np.uint64))
    assert c.validate() == [f"reported: {line}"] and c.live_objects() == 0


def test_sheaf_holding_an_object_in_use_does_not_give_it_back():
    """A use after free points a slab's freelist at an object that sits in another cpu's
    sheaf. A refill takes it into this cpu's sheaf, which hands it out; flushing the other
    sheaf then wrote a free pointer into the object its owner holds."""
    mem = pyslub.Memory(size=16 << 20, nr_cpus=2, slub="7.0")
    c = mem.create_cache("sheafed", 16)
    with mem.on_cpu(0):
        lo, hi = sorted((c.alloc(), c.alloc()))
        c.free(lo)
        c.flush_cpu(0)                                        # lo: back on its slab
    with mem.on_cpu(1):
        c.free(hi)                                            # hi: in cpu 1's sheaf
    word = lo + c.offset
    mem.raw(word, 8)[:] = hi.to_bytes(8, "little")            # lo -> hi
    assert c.freepointer(lo) == hi
    with mem.on_cpu(0):
        got = [c.alloc() for _ in range(2)]
    assert hi in got                                          # (the allocator cannot know)
    mem.view(hi)[:16] = b"\x11" * 16
    n = len(c.reports)
    c.flush_cpu(1)
    assert bytes(mem.view(hi)[:16]) == b"\x11" * 16
    line = (f"BUG sheafed: Sheaf holds an object in use: {hi:#x} (slab {c.slab_of(hi):#x}; a "
            f"write after free led a freelist to it?); FIX sheafed: Object at {hi:#x} not "
            "given back to its slab")
    assert c.reports[n:] == [line]
    with mem.on_cpu(0):
        c.free(hi)                                            # still its owner's to free
    assert c.validate()[-1] == f"reported: {line}"


@pytest.mark.parametrize("checks", [True, False])
def test_70_debug_slab_whose_freelist_ran_out_early_goes_to_the_full_list(checks):
    """7.0, F: a write after free stores NULL in a free object's free pointer: the slab's
    freelist ends there (nothing to detect: NULL is a valid end), with objects still counted
    free. The slab stayed on the partial list with a NULL freelist; the next free took NULL
    for "on the full list" and listed it a second time: the partial list looped into itself
    and the next allocation never returned."""
    mem = pyslub.Memory(size=16 << 20, nr_cpus=1, slub="7.0", checks=checks)
    c = mem.create_cache("cut70", 64, flags=SLAB_CONSISTENCY_CHECKS)
    a0, a1, a2 = c.alloc(), c.alloc(), c.alloc()
    c.free(a2)                                                # freelist: a2 -> a3 -> ...
    mem.raw(a2 + c.offset, 8)[:] = bytes(8)                   # a2 -> NULL
    assert c.alloc() == a2 and c.reports == []
    slab = c.slab_of(a0)
    c.free(a0)                                                # the slab was "full": partial
    assert c.node_partial() == [slab]
    b = c.alloc()
    assert b == a0 and c.node_partial() == []
    for a in a0, a1, a2:
        c.free(a)
    assert c.node_partial() == [slab]
    assert c.validate() == ["BUG cut70 (Not tainted): Wrong object count. Counter is 0 but "
                            "counted were 61", "FIX cut70: Object count adjusted."]
    assert c.validate() == []                                 # adjusted: consistent again


@pytest.mark.parametrize("dtype", [">u8", "<i8", "u4"])
def test_alloc_bulk_refuses_foreign_dtypes(dtype):
    mem = pyslub.Memory(size=16 << 20, nr_cpus=1)
    c = mem.create_cache("dt", 64)
    with pytest.raises(TypeError, match="native uint64"):
        c.alloc_bulk(np.zeros(4, dtype=dtype))
    assert c.nr_slabs == 0


def test_destroy_cache_of_another_memory_is_refused():
    m1 = pyslub.Memory(size=16 << 20, nr_cpus=1)
    m2 = pyslub.Memory(size=16 << 20, nr_cpus=1)
    mine = m1.create_cache("x", 64)
    theirs = m2.create_cache("x", 64)
    with pytest.raises(SlabError, match="does not belong to this Memory"):
        m1.destroy_cache(theirs)
    assert not mine.dead and not theirs.dead and m1.caches == {"x": mine}


def test_kfree_bulk_mixed_small_large_is_atomic():
    mem = pyslub.Memory(size=16 << 20, nr_cpus=1)
    small, big = mem.kmalloc(32), mem.kmalloc(20000)
    pages = mem.free_pages()
    with pytest.raises(SlabError, match="duplicate.*nothing was freed"):
        mem.kfree_bulk(np.array([small, big, big], dtype=np.uint64))
    assert mem.free_pages() == pages
    mem.kfree_bulk(np.array([small, big], dtype=np.uint64))


def test_cpu_slabs_counts_partial_only_under_a_cpu_slab():
    """v4.4 show_slab_objects(SO_CPU): c->partial is looked at only when c->page is set."""
    mem = pyslub.Memory(size=16 << 20, nr_cpus=1)
    c = mem.create_cache("occ", 64)
    p = c.alloc_many(64 * 3)
    c.free(int(p[0]))                       # first free into a full slab: cpu partial list
    st = c.cpu_state(0)
    assert st["page"] and len(st["partial"]) == 1
    assert c.occupancy()["cpu_slabs"] == 2
    c.free_bulk(p[64 * 2:].copy())          # the cpu slab's own objects: it stays the cpu slab
    mem2 = pyslub.Memory(size=16 << 20, nr_cpus=1)
    d = mem2.create_cache("occ", 64)
    q = d.alloc_many(64 * 2)                # the second slab's last object empties c.freelist:
    d.alloc()                               # a third slab
    d.free(int(q[0]))
    assert d.cpu_state(0)["page"]
    assert d.occupancy()["cpu_slabs"] == 1 + len(d.cpu_state(0)["partial"])


# -- slab_debug= -------------------------------------------------------------------------------

F, Z, P, U, T = (SLAB_CONSISTENCY_CHECKS, SLAB_RED_ZONE, SLAB_POISON, SLAB_STORE_USER,
                 pyslub.SLAB_TRACE)


@pytest.mark.parametrize("text, name, flags", [
    ("", "dentry", F | Z | P | U),                     # no options: full debugging
    ("FZ", "dentry", F | Z),
    ("fz", "dentry", F | Z),                            # case-insensitive
    ("Z,dentry", "dentry", Z),
    ("Z,dentry", "inode", 0),                           # a list only: global stays off
    (",dentry", "dentry", F | Z | P | U),               # no letters before a list: FZPU
    ("Z,dentry;U,kmalloc-*", "kmalloc-64", U),          # documentation example, prefix glob
    ("Z,dentry;U,kmalloc-*", "dentry", Z),
    ("Z,dentry;U,kmalloc-*", "dentr", 0),               # names compare whole
    ("FZ;-,zs_handle,zspage", "zspage", 0),             # '-': off for those
    ("FZ;-,zs_handle,zspage", "other", F | Z),
    ("P;;Z,a", "b", P),                                 # empty blocks are skipped
    ("FZ-U", "x", U),                                   # '-' clears what came before it
    ("T,x", "x", T),
    ("Z,a*,b;P,ab", "ab", Z),                           # the first matching block wins
    ("slub_debug=U", "x", U),                           # the option's name may be included
])
def test_slab_debug_grammar(text, name, flags):
    from pyslub.debug import kmem_cache_flags, parse_slab_debug
    assert kmem_cache_flags(parse_slab_debug(text), name, 0) == flags
    assert kmem_cache_flags(parse_slab_debug(text), name, pyslub.SLAB_NO_USER_FLAGS) == \
        pyslub.SLAB_NO_USER_FLAGS                       # slub_kunit's caches ignore it


@pytest.mark.parametrize("text, what", [("FX", "unknown option 'X'"), ("A", "failslab"),
                                        ("Z;q,dentry", "block 2")])
def test_slab_debug_bad_options_name_the_letter(text, what):
    with pytest.raises(ValueError, match=what):
        pyslub.Memory(size=16 << 20, nr_cpus=1, slab_debug=text)
    with pytest.raises(TypeError):
        pyslub.Memory(size=16 << 20, nr_cpus=1, slab_debug=7)


def test_slab_debug_reaches_caches_and_kmalloc(monkeypatch):
    mem = pyslub.Memory(size=16 << 20, nr_cpus=2, slab_debug="Z,dent*;U,kmalloc-64")
    d = mem.create_cache("dentry", 192)
    i = mem.create_cache("inode", 192)
    assert d.flags & (F | Z | P | U) == Z and d.debug and d.size == 192 + 16
    assert not i.debug and i.size == 192
    a = mem.kmalloc(64)
    assert mem.cache_of(a).flags & U and mem.cache_of(a).name == "kmalloc-64"
    assert not mem.cache_of(mem.kmalloc(32)).debug
    monkeypatch.setenv("PYSLUB_SLAB_DEBUG", "P")
    env = pyslub.Memory(size=16 << 20, nr_cpus=1)
    assert env.create_cache("x", 64).flags & P
    assert not pyslub.Memory(size=16 << 20, nr_cpus=1, slab_debug="-").create_cache(
        "x", 64).debug                                  # the argument wins over the variable
    monkeypatch.setenv("PYSLUB_SLAB_DEBUG", "Q")
    with pytest.raises(ValueError, match="PYSLUB_SLAB_DEBUG='Q': .*unknown option 'Q'"):
        pyslub.Memory(size=16 << 20, nr_cpus=1)


def test_slab_debug_O_drops_metadata_when_the_order_would_grow():
    """kmem_cache_open(): with O, a cache whose get_order(size) exceeds get_order(object_size)
    because of Z/P/U metadata loses those flags (F stays)."""
    mem = pyslub.Memory(size=16 << 20, nr_cpus=2, slab_debug="FZPUO")
    big = mem.create_cache("big", 4096)                 # 4096 + metadata: order 1 > 0
    small = mem.create_cache("small", 1000)
    assert big.flags & (F | Z | P | U) == F and big.size == 4096
    assert small.flags & (F | Z | P | U) == F | Z | P | U


# -- slub_kunit ports (lib/slub_kunit.c; spec §6.3): len(validate()) == the kernel's count -----

NO_USER = pyslub.SLAB_NO_USER_FLAGS


@pytest.fixture(params=[(checks, slub) for slub in ("4.4", "6.18", "7.0")
                        for checks in (True, False)],
                ids=lambda p: f"{'checks' if p[0] else 'unchecked'}-{p[1]}")
def kmem(request):
    """A Memory whose slab_debug= would turn everything on: the kunit caches ignore it.  Every
    SLUB generation: debug caches run the same alloc/free debug processing in each (7.0's
    alloc_single_from_partial / _new_slab, free_to_partial_list)."""
    checks, slub = request.param
    return pyslub.Memory(size=16 << 20, nr_cpus=2, checks=checks, slub=slub, slab_debug="FZPU")


def test_clobber_zone(kmem):
    s = kmem.create_cache("TestSlub_RZ_alloc", 64, flags=Z | NO_USER)
    p = s.alloc()
    kmem.raw(p + 64, 1)[0] = 0x12
    errors = s.validate()
    assert len(errors) == 2
    assert errors[0] == "BUG TestSlub_RZ_alloc (Not tainted): Redzone overwritten"
    assert errors[0].info[0] == f"INFO: {p + 64:#x}-{p + 64:#x}. First byte 0x12 instead of 0xcc"
    assert errors[1] == f"FIX TestSlub_RZ_alloc: Restoring {p + 64:#x}-{p + 64:#x}=0xcc"
    assert s.validate() == []                          # repaired
    s.free(p)
    s.destroy()


@pytest.mark.parametrize("hardened", [False, True])
def test_next_pointer(kmem, hardened):
    """(Also with CONFIG_SLAB_FREELIST_HARDENED, as in distribution kernels: the inverted
    byte of the encoded word decodes to a pointer just as wrong.)"""
    s = kmem.create_cache("TestSlub_next_ptr_free", 64, flags=P | NO_USER,
                          freelist_hardened=hardened)
    p = s.alloc()
    s.free(p)
    fp = kmem.raw(p + s.offset, 8)
    saved = bytes(fp)
    fp[0] ^= 0xFF                                      # p[s->offset] = ~p[s->offset]
    errors = s.validate()
    n = s.objects                                      # 56 slots of 72 bytes, all free
    assert [str(e).split(": ", 1)[1] for e in errors] == [
        "Freechain corrupt", f"Wrong object count. Counter is 0 but counted were {n - 1}",
        "Object count adjusted."]
    assert errors[0].obj == p
    fp[:] = saved                                      # *ptr_addr = tmp
    errors = s.validate()
    assert [str(e).split(": ", 1)[1] for e in errors] == [
        f"Wrong object count. Counter is {n - 1} but counted were 0", "Object count adjusted."]
    assert s.validate() == []
    s.destroy()


@pytest.mark.parametrize("name, where, value", [("TestSlub_1th_word_free", 0, 0x78),
                                                ("TestSlub_50th_word_free", 50, 0x9A)])
def test_poison_overwritten_after_free(kmem, name, where, value):
    """test_first_word, test_clobber_50th_byte."""
    s = kmem.create_cache(name, 64, flags=P | NO_USER)
    p = s.alloc()
    s.free(p)
    kmem.raw(p + where, 1)[0] = value
    errors = s.validate()
    assert errors == [f"BUG {name} (Not tainted): Poison overwritten",
                      f"FIX {name}: Restoring {p + where:#x}-{p + where:#x}=0x6b"]
    assert s.validate() == []
    s.destroy()


def test_clobber_redzone_free(kmem):
    s = kmem.create_cache("TestSlub_RZ_free", 64, flags=Z | NO_USER)
    p = s.alloc()
    s.free(p)
    kmem.raw(p + 64, 1)[0] = 0xAB
    errors = s.validate()
    assert len(errors) == 2 and errors[0].title == "Redzone overwritten"
    assert errors[0].info[0].endswith("First byte 0xab instead of 0xbb")
    s.destroy()


def test_leak_destroy(kmem):
    s = kmem.create_cache("TestSlub_leak_destroy", 64, flags=NO_USER)
    p = s.alloc()
    with pytest.raises(SlabError, match="Objects remaining") as e:
        s.destroy()
    new = e.value.reports                              # refused: nothing changed, no report
    assert len(new) == 2 and s.validate() == []
    assert new[0] == ("BUG TestSlub_leak_destroy (Not tainted): Objects remaining in "
                      "TestSlub_leak_destroy on __kmem_cache_shutdown()")
    assert new[0].info == (f"INFO: Object {p:#x} @offset={p & 4095}",)
    s.free(p)
    s.destroy()


# -- the core's checks at alloc and free (alloc/free_debug_processing) -------------------------

def test_free_with_clobbered_redzone_leaks_the_object(kmem):
    c = kmem.create_cache("rz", 64, flags=Z | NO_USER)
    a, b = c.alloc(), c.alloc()
    kmem.raw(a + 64, 1)[0] = 0x55
    with pytest.raises(SlabError, match=r"Redzone overwritten"):
        c.free(a)
    assert c.reports[-3:] == ["BUG rz (Not tainted): Redzone overwritten",
                              f"FIX rz: Restoring {a + 64:#x}-{a + 64:#x}=0xcc",
                              f"FIX rz: Object at {a:#x} not freed"]   # (modern; v4.4 freed it)
    assert a not in c.free_objects(c.slab_of(a))       # leaked on purpose
    got = {c.alloc() for _ in range(100)}
    assert a not in got and b not in got
    c.free(b)
    if kmem.checks:
        with pytest.raises(SlabError, match="leaked on purpose"):
            c.free(a)
    assert c.validate() == []


def test_poison_and_red_zone_bytes_follow_the_object_state(kmem):
    c = kmem.create_cache("zp", 60, flags=Z | P | NO_USER)
    assert (c.object_size, c.inuse, c.offset) == (60, 64, 64)
    a = c.alloc()
    raw = kmem.raw(a, c.size)
    assert bytes(raw[:59]) == b"\x6b" * 59 and raw[59] == 0xA5
    assert bytes(raw[60:64]) == b"\xcc" * 4                 # SLUB_RED_ACTIVE
    c.view(a)[:] = b"\x01" * 60
    c.free(a)
    assert bytes(raw[:59]) == b"\x6b" * 59 and raw[59] == 0xA5
    assert bytes(raw[60:64]) == b"\xbb" * 4                 # SLUB_RED_INACTIVE
    assert raw[c.size - 1] == 0x5A                          # padding: POISON_INUSE
    raw[10] = 0                                             # write after free ...
    b = c.alloc()                                           # ... caught when handed out again:
    assert b != a and c.slab_of(b) != c.slab_of(a)          # the slab is marked all used
    assert c.reports[-3:] == ["BUG zp (Not tainted): Poison overwritten",
                              f"FIX zp: Restoring {a + 10:#x}-{a + 10:#x}=0x6b",
                              "FIX zp: Marking all objects used"]
    assert c.slab_state(c.slab_of(a))["inuse"] == c.objects
    assert c.validate() == []


def test_padding_checks_in_validate(kmem):
    c = kmem.create_cache("pad", 64, flags=P | NO_USER)     # size 72: 64 bytes of slab padding
    a = c.alloc()
    slab = c.slab_of(a)
    tail = slab + 4096 - (4096 % c.size)
    kmem.raw(tail + 3, 1)[0] = 1
    kmem.raw(a + c.size - 8 + 8, 1)                         # (in bounds)
    errors = c.validate()
    assert errors == [f"BUG pad (Not tainted): Padding overwritten. {tail + 3:#x}-{tail + 3:#x}",
                      f"FIX pad: Restoring {tail:#x}-{slab + 4095:#x}=0x5a"]
    assert c.validate() == []


def test_debugging_doc_example_runs():
    import re
    from pathlib import Path
    doc = (Path(__file__).resolve().parents[1] / "docs" / "debugging.md").read_text()
    exec(compile(re.findall(r"```python\n(.*?)```", doc, re.S)[0], "debugging.md", "exec"), {})


def test_the_validators_writable_views_are_not_reachable() -> None:
    """validate_slab_cache() repairs through writable views of the page records and state
    bytes; they go from the compiled Cache.validate() to the validator only."""
    if not pyslub.COMPILED:
        pytest.skip("uncompiled, every module attribute is reachable anyway")
    assert not hasattr(pyslub.Cache, "_debug_views")
    assert not hasattr(pyslub.cache, "debug_views")


def test_store_user_tracks_the_python_call_site_cpu_and_pid() -> None:
    import inspect
    import os
    mem = pyslub.Memory(size=16 << 20, nr_cpus=2, slab_debug="U")
    c = mem.create_cache("tracked", 64)
    here = inspect.currentframe()
    with mem.on_cpu(1):
        a = c.alloc(); line_a = here.f_lineno                      # noqa: E702
    t = c.track(a)
    assert t["free"] is None
    assert t["alloc"]["site"] == f"{__file__}:{line_a} {here.f_code.co_name}"
    assert (t["alloc"]["cpu"], t["alloc"]["pid"]) == (1, os.getpid())
    p = c.alloc_many(4)
    c.free_bulk(p.copy(), strategy="lookahead-fwd"); line_f = here.f_lineno  # noqa: E702
    for x in p:
        f = c.track(int(x))["free"]
        assert f["site"].endswith(f":{line_f} {here.f_code.co_name}") and f["cpu"] == 0
        assert 0 <= f["age"] < 60_000
    with pytest.raises(SlabError, match="no SLAB_STORE_USER"):
        pyslub.Memory(size=8 << 20, nr_cpus=2).create_cache("plain", 64).track(a)


@pytest.mark.parametrize("slub", GENERATIONS)
def test_object_reports_carry_the_tracks(slub) -> None:
    mem = pyslub.Memory(size=16 << 20, nr_cpus=2, slab_debug="FZU", slub=slub)
    c = mem.create_cache("z", 60)
    b = c.alloc()
    mem.raw(b + 60, 1)[:] = b"\x00"                  # one byte of the right red zone
    recs = c.validate()
    bug = next(r for r in recs if r.startswith("BUG z (Not tainted): Redzone overwritten"))
    assert any(ln.startswith("INFO: Allocated in ") and __file__ in ln for ln in bug.info)


def test_trace_logs_every_alloc_and_free(caplog) -> None:
    import logging
    mem = pyslub.Memory(size=8 << 20, nr_cpus=2, slab_debug="T")
    c = mem.create_cache("traced", 64)
    with caplog.at_level(logging.INFO, logger="pyslub.trace"):
        a = c.alloc()
        c.free(a)
        p = c.alloc_many(3)
        q = [int(x) for x in p]
        c.free_bulk(p)
    lines = [r.getMessage() for r in caplog.records if r.name == "pyslub.trace"
             and r.getMessage().startswith("TRACE ")]          # (frees add the object dump)
    kinds = [(ln.split()[2], int(ln.split()[3], 16)) for ln in lines]
    assert kinds == [("alloc", a), ("free", a)] + [("alloc", x) for x in q] + [
        ("free", x) for x in q]
    assert all(ln.startswith("TRACE traced ") and " inuse=" in ln and " fp=0x" in ln
               for ln in lines)
    assert lines[0].split()[4] == "inuse=1"
    caplog.clear()
    c.free(c.alloc())                                 # logging off: nothing recorded
    assert not [r for r in caplog.records if r.name == "pyslub.trace"]


# -- the kmalloc red zone (orig_size, ~v6.1) ---------------------------------------------------

KMALLOC = pyslub.SLAB_KMALLOC


def test_kmalloc_redzone_access(kmem):
    """slub_kunit test_kmalloc_redzone_access: 32-byte kmalloc-type cache with U and Z,
    __kmalloc_cache(s, 18), p[18] = p[19] = 0xab: validate -> 2 errors."""
    s = kmem.create_cache("TestSlub_RZ_kmalloc", 32, flags=KMALLOC | U | Z | NO_USER)
    # object 32 + red zone 8 = inuse 40; free pointer behind it; 2 tracks; orig_size; pad word
    assert (s.object_size, s.inuse, s.offset, s.size) == (32, 40, 40, 368)
    p = s.kmalloc(18)
    raw = kmem.raw(p, s.size)
    assert bytes(raw[18:40]) == b"\xcc" * 22                # kmalloc red zone + red zone
    orig = 40 + 8 + 2 * 152
    assert int.from_bytes(raw[orig:orig + 4], "little") == 18
    raw[18] = 0xAB
    raw[19] = 0xAB
    errors = s.validate()
    assert errors == ["BUG TestSlub_RZ_kmalloc (Not tainted): kmalloc Redzone overwritten",
                      f"FIX TestSlub_RZ_kmalloc: Restoring {p + 18:#x}-{p + 19:#x}=0xcc"]
    assert errors[0].info[0] == f"INFO: {p + 18:#x}-{p + 19:#x}. First byte 0xab instead of 0xcc"
    assert errors[0].obj == p
    assert s.validate() == []
    s.free(p)
    s.destroy()


def test_kmalloc_redzone_at_free_leaks_the_object(kmem):
    s = kmem.create_cache("rzk", 32, flags=KMALLOC | U | Z | NO_USER)
    a, b = s.kmalloc(20), s.kmalloc(32)
    kmem.raw(a + 31, 1)[0] = 0                              # last byte of the object
    kmem.raw(b + 31, 1)[0] = 0                              # (b asked for all 32 bytes)
    with pytest.raises(SlabError, match="kmalloc Redzone overwritten"):
        s.free(a)
    assert s.reports[-3:] == ["BUG rzk (Not tainted): kmalloc Redzone overwritten",
                              f"FIX rzk: Restoring {a + 31:#x}-{a + 31:#x}=0xcc",
                              f"FIX rzk: Object at {a:#x} not freed"]
    assert a not in s.free_objects(s.slab_of(a))            # leaked on purpose
    s.free(b)
    assert s.validate() == []


def test_alloc_of_a_kmalloc_cache_records_object_size(kmem):
    """kmem_cache_alloc() passes orig_size = object_size: no kmalloc red zone."""
    s = kmem.create_cache("rzk", 32, flags=KMALLOC | U | Z | NO_USER)
    p = s.alloc()
    orig = s.inuse + 8 + 2 * 152
    assert int.from_bytes(kmem.raw(p + orig, 4), "little") == 32
    kmem.raw(p + 18, 14)[:] = b"\x01" * 14
    assert s.validate() == []
    q = s.alloc_many(3)                                     # bulk: object_size too
    kmem.raw(int(q[1]) + 31, 1)[0] = 7
    assert s.validate() == []
    s.free(p)
    s.free_bulk(q)


def test_orig_size_needs_store_user_and_the_red_zone_needs_z():
    """slub_debug_orig_size() is SLAB_KMALLOC + SLAB_STORE_USER (the 4 bytes); the kmalloc red
    zone and the moved free pointer also need SLAB_RED_ZONE."""
    mem = pyslub.Memory(size=16 << 20, nr_cpus=2)
    ku = mem.create_cache("ku", 32, flags=KMALLOC | U)
    u = mem.create_cache("u", 32, flags=U)
    kz = mem.create_cache("kz", 32, flags=KMALLOC | Z)
    assert (ku.offset, ku.size) == (0, 32 + 2 * 152 + 4 + 4)   # 340, aligned to 8: 344
    assert u.size == 32 + 2 * 152
    assert (kz.offset, kz.inuse, kz.size) == (0, 40, 48)
    p = ku.kmalloc(5)
    assert int.from_bytes(mem.raw(p + 32 + 304, 4), "little") == 5
    mem.raw(p + 5, 27)[:] = b"\x02" * 27                   # no red zone: nothing to report
    assert ku.validate() == []
    q = kz.kmalloc(5)
    mem.raw(q + 5, 27)[:] = b"\x02" * 27
    assert kz.validate() == []                              # no orig_size without U
    ku.free(p)
    kz.free(q)


def test_mem_kmalloc_records_the_requested_size():
    mem = pyslub.Memory(size=16 << 20, nr_cpus=2, slab_debug="ZU,kmalloc-*")
    p = mem.kmalloc(18)
    kc = mem.cache_of(p)
    assert kc.name == "kmalloc-32" and kc.flags & KMALLOC and kc.flags & (Z | U) == Z | U
    assert kc.offset == kc.inuse == 40
    mem.raw(p + 20, 1)[0] = 0x11
    assert kc.validate() == ["BUG kmalloc-32 (Not tainted): kmalloc Redzone overwritten",
                             f"FIX kmalloc-32: Restoring {p + 20:#x}-{p + 20:#x}=0xcc"]
    mem.view(p)[:18] = b"x" * 18                            # the requested bytes are the user's
    assert kc.validate() == []
    mem.kfree(p)
    plain = pyslub.Memory(size=16 << 20, nr_cpus=2)
    q = plain.kmalloc(18)
    assert plain.cache_of(q).flags & KMALLOC and not plain.cache_of(q).debug
    plain.view(q)[:32] = b"y" * 32
    assert plain.cache_of(q).validate() == []
    plain.kfree(q)


def test_cache_kmalloc_refuses_bad_input():
    mem = pyslub.Memory(size=16 << 20, nr_cpus=2)
    s = mem.create_cache("k", 32, flags=KMALLOC | U | Z)
    plain = mem.create_cache("p", 32, flags=U | Z)
    for bad, exc, what in ((0, ValueError, "outside 1..32"), (33, ValueError, "outside 1..32"),
                           (-1, ValueError, "outside"), ("8", TypeError, "must be an int"),
                           (True, TypeError, "must be an int"), (8.0, TypeError, "int")):
        with pytest.raises(exc, match=what):
            s.kmalloc(bad)
    with pytest.raises(ValueError, match="not a kmalloc cache"):
        plain.kmalloc(8)
    assert s.nr_slabs == 0 and plain.nr_slabs == 0 and s.reports == [] == plain.reports
    with pytest.raises(ValueError, match="unknown cache flags"):
        mem.create_cache("bad", 32, flags=0x1)


# -- 7.0 debug caches: the same alloc/free debug processing as 4.4 -----------------------------

def test_70_debug_cache_takes_one_object_per_slow_path_call():
    """sheaves.md 3.14: a debug cache has no sheaves; every allocation is one ___slab_alloc
    (ALLOC_SLOWPATH, bulk too), every free one __slab_free (FREE_SLOWPATH); the first object
    of a new slab comes from alloc_single_from_new_slab, the rest from the partial list."""
    mem = pyslub.Memory(size=16 << 20, nr_cpus=2, slub="7.0")
    c = mem.create_cache("d70", 64, flags=Z)
    assert c.sheaf_capacity == 0
    a = [c.alloc() for _ in range(3)]
    p = c.alloc_many(5)
    st = c.stats()
    assert (st["alloc_slowpath"], st["alloc_fastpath"], st["alloc_slab"]) == (8, 0, 1)
    assert c.nr_partial == 1 and c.slab_state(c.slab_of(a[0]))["inuse"] == 8
    raw = mem.raw(a[0], c.size)
    assert bytes(raw[64:72]) == b"\xcc" * 8                 # init_object(SLUB_RED_ACTIVE)
    for x in a:
        c.free(x)
    c.free_bulk(p)
    st = c.stats()
    assert (st["free_slowpath"], st["free_fastpath"]) == (8, 0)
    assert bytes(raw[64:72]) == b"\xbb" * 8                 # init_object(SLUB_RED_INACTIVE)
    assert c.validate() == []


@pytest.mark.parametrize("slub", GENERATIONS)
@pytest.mark.parametrize("flags, walked", [(Z | U, True), (Z, False)])
def test_full_slabs_are_validated_with_store_user(slub, flags, walked):
    """validate_slab_cache() walks the full list, which only U keeps (add_full): a red zone
    written in an object of a full slab is found with U, and (as in the kernel) not without."""
    mem = pyslub.Memory(size=16 << 20, nr_cpus=2, slub=slub)
    c = mem.create_cache("full", 64, flags=flags | NO_USER)
    objs = [c.alloc() for _ in range(c.objects)]
    assert len({c.slab_of(x) for x in objs}) == 1 and c.nr_partial == 0
    mem.raw(objs[3] + 64, 1)[0] = 0x77
    errors = c.validate()
    assert len(errors) == (2 if walked else 0)
    if walked:
        assert errors[0] == "BUG full (Not tainted): Redzone overwritten"
    else:
        with pytest.raises(SlabError, match="Redzone overwritten"):
            c.free(objs[3])                                 # caught at free instead
        del objs[3]
    for x in objs:
        c.free(x)
    assert c.validate() == []


# -- padding checks where the kernel runs them -------------------------------------------------

def test_padding_checks_at_alloc_and_free(kmem):
    """check_object() (P, no Z) checks the alignment padding [object_size, inuse) and, through
    check_pad_bytes(), the padding after the metadata: each bad run is one BUG + one FIX, the
    bytes restored, and neither fails the check (v4.4: "cleans up on its own")."""
    c = kmem.create_cache("pad", 60, align=64, flags=P | NO_USER)
    assert (c.object_size, c.inuse, c.offset, c.size) == (60, 64, 64, 128)
    a = c.alloc()
    raw = kmem.raw(a, c.size)
    assert bytes(raw[60:64]) == b"\x5a" * 4 and bytes(raw[72:128]) == b"\x5a" * 56
    raw[62] = 1                                             # alignment padding
    raw[100] = 2                                            # object padding
    raw[101] = 3
    n = len(c.reports)
    c.free(a)                                               # freed all the same
    assert c.reports[n:] == [
        "BUG pad (Not tainted): Alignment padding overwritten",
        f"FIX pad: Restoring {a + 62:#x}-{a + 62:#x}=0x5a",
        "BUG pad (Not tainted): Object padding overwritten",
        f"FIX pad: Restoring {a + 100:#x}-{a + 101:#x}=0x5a"]
    assert c.reports[n + 2].info[0] == (f"INFO: {a + 100:#x}-{a + 101:#x}. First byte 0x2 "
                                        "instead of 0x5a")
    assert a in c.free_objects(c.slab_of(a))
    assert bytes(raw[60:64]) == b"\x5a" * 4 and bytes(raw[72:128]) == b"\x5a" * 56
    raw[127] = 9                                            # a is the next object handed out
    assert c.alloc() == a
    assert c.reports[n + 4:] == ["BUG pad (Not tainted): Object padding overwritten",
                                 f"FIX pad: Restoring {a + 127:#x}-{a + 127:#x}=0x5a"]
    assert raw[127] == 0x5A
    c.free(a)
    assert c.validate() == []


@pytest.mark.parametrize("how", ["shrink", "destroy"])
def test_free_slab_checks_a_debug_slab(kmem, how):
    """__free_slab() of a debug cache: slab_pad_check(), then check_object(SLUB_RED_INACTIVE)
    on every object; reported and repaired, the slab freed anyway."""
    c = kmem.create_cache("fs", 64, flags=P | NO_USER)     # 56 objects of 72 bytes, 64 left
    a = c.alloc()
    c.free(a)
    slab = c.slab_of(a)
    assert c.nr_partial == 1                                # empty, kept: nr_partial < 5
    tail = slab + 56 * 72
    kmem.raw(tail + 3, 2)[:] = b"\x00\x01"
    kmem.raw(a + 10, 1)[0] = 0x10                           # a write after free
    kmem.raw(a + 2 * 72 + 63, 1)[0] = 0x11                  # a never-allocated object's end
    n = len(c.reports)
    pages = kmem.free_pages()
    if how == "shrink":
        assert c.shrink() == 1
    else:
        c.destroy()
    assert kmem.free_pages() == pages + 1
    assert c.reports[n:] == [
        f"BUG fs (Not tainted): Padding overwritten. {tail + 3:#x}-{tail + 4:#x}",
        f"FIX fs: Restoring {tail:#x}-{slab + 4095:#x}=0x5a",
        "BUG fs (Not tainted): Poison overwritten",
        f"FIX fs: Restoring {a + 10:#x}-{a + 10:#x}=0x6b",
        "BUG fs (Not tainted): Poison overwritten",
        f"FIX fs: Restoring {a + 2 * 72 + 63:#x}-{a + 2 * 72 + 63:#x}=0xa5"]
    assert c.reports[n + 2].obj == a


def test_free_slab_of_a_clean_debug_slab_reports_nothing(kmem):
    c = kmem.create_cache("clean", 64, flags=Z | P | U | NO_USER)
    p = c.alloc_many(c.objects * 2)
    c.free_bulk(p)
    assert c.shrink() >= 1 and c.nr_slabs == 0 and c.reports == []


# -- mem.reports -------------------------------------------------------------------------------

def test_memory_reports_are_every_caches_in_creation_order():
    mem = pyslub.Memory(size=16 << 20, nr_cpus=2)
    a = mem.create_cache("a", 64, flags=Z)
    b = mem.create_cache("b", 64, flags=Z)
    gone = mem.create_cache("gone", 64, flags=Z)
    quiet = mem.create_cache("quiet", 64)
    assert mem.reports == []
    xb, xa, xg = b.alloc(), a.alloc(), gone.alloc()
    quiet.free(quiet.alloc())
    for x in (xb, xa, xg):
        mem.raw(x + 64, 1)[0] = 1
    rb = b.validate()                                   # b's records are made first ...
    ra = a.validate()
    rg = gone.validate()
    gone.free(xg)
    mem.destroy_cache(gone)
    with pytest.raises(SlabError, match="Redzone overwritten"):
        mem.raw(xa + 65, 1)[0] = 2
        a.free(xa)                                      # ... a's last
    assert len(ra) == len(rb) == len(rg) == 2
    assert mem.reports == ra + a.reports[2:] + rb + rg  # ... but a was created first
    assert mem.reports[-1] == f"FIX gone: Restoring {xg + 64:#x}-{xg + 64:#x}=0xcc"
    assert [r.cache for r in mem.reports] == ["a"] * 5 + ["b"] * 2 + ["gone"] * 2
    b.free(xb)


@pytest.mark.parametrize("slub", GENERATIONS)
def test_trace_dumps_the_object_on_free(caplog, slub) -> None:
    """The kernel's trace() also print_section("Object ", object, object_size) on free:
    print_hex_dump(DUMP_PREFIX_ADDRESS, 16, 1, ascii), before the free (the caller's bytes)."""
    import logging
    mem = pyslub.Memory(size=8 << 20, nr_cpus=2, slab_debug="T", slub=slub)
    c = mem.create_cache("traced", 64)
    d = mem.create_cache("odd", 24)
    a, b = c.alloc(), d.alloc()
    c.view(a)[:] = bytes(range(0x40, 0x80))
    d.view(b)[:] = b"pyslub\x00\xff" + bytes(range(0x61, 0x71))
    with caplog.at_level(logging.INFO, logger="pyslub.trace"):
        c.free(a)
        d.free_bulk(np.array([b], dtype=np.uint64))
        x = c.alloc()                                   # alloc: no dump
    lines = [r.getMessage() for r in caplog.records if r.name == "pyslub.trace"]
    assert lines[0].startswith(f"TRACE traced free {a:#x} inuse=")
    assert lines[1:5] == [
        f"Object {a:016x}: 40 41 42 43 44 45 46 47 48 49 4a 4b 4c 4d 4e 4f  @ABCDEFGHIJKLMNO",
        f"Object {a + 16:016x}: 50 51 52 53 54 55 56 57 58 59 5a 5b 5c 5d 5e 5f  PQRSTUVWXYZ[\\]^_",
        f"Object {a + 32:016x}: 60 61 62 63 64 65 66 67 68 69 6a 6b 6c 6d 6e 6f  `abcdefghijklmno",
        f"Object {a + 48:016x}: 70 71 72 73 74 75 76 77 78 79 7a 7b 7c 7d 7e 7f  "
        "pqrstuvwxyz{|}~."]
    assert lines[5].startswith(f"TRACE odd free {b:#x} inuse=")
    assert lines[6:8] == [
        f"Object {b:016x}: 70 79 73 6c 75 62 00 ff 61 62 63 64 65 66 67 68  pyslub..abcdefgh",
        f"Object {b + 16:016x}: 69 6a 6b 6c 6d 6e 6f 70                          ijklmnop"]
    assert lines[8].startswith(f"TRACE traced alloc {x:#x} ") and len(lines) == 9


def test_freelist_to_a_live_object_is_cut_before_the_debug_checks(kmem):
    """Safe mode + Z: a use after free points a freed object's free pointer at a live one.
    The allocation that meets the live object is refused before alloc_debug_processing()
    could check it as a free object and "restore" its red zone to 0xbb."""
    if not kmem.checks:
        pytest.skip("safe mode's state bytes catch it")
    s = kmem.create_cache("cut", 64, flags=Z | NO_USER)
    a, b, c = s.alloc(), s.alloc(), s.alloc()
    s.free(b)
    s.free(c)                                           # freelist: c -> b
    kmem.raw(c + s.offset, 8)[:] = a.to_bytes(8, "little")     # c -> a (live)
    assert s.alloc() == c
    if s.slub == "7.0":                                 # the next allocation meets a
        with pytest.raises(SlabError, match="Freelist points to an object in use"):
            s.alloc()
    else:           # a debug cpu slab is deactivated after each allocation (v4.4 ___slab_alloc)
        assert s.reports[-1].startswith(                # with the rest: trim_freelist cuts it
            f"BUG cut: Freelist points to an object in use: {a:#x}")
        assert s.alloc() not in (a, b, c)               # (b was behind the forged pointer)
    assert bytes(kmem.raw(a + 64, 8)) == b"\xcc" * 8     # a's red zone is still SLUB_RED_ACTIVE
    n = len(s.reports)
    s.free(a)
    s.free(c)
    assert s.reports[n:] == []
