"""kmalloc / kfree / ksize: the kernel's size classes, ZERO_SIZE_PTR, large allocations.

Expected classes come from the kernel's ``kmalloc_index()`` (mm/slab_common.c, 4 KiB pages):
1..8 -> 8, 65..96 -> 96, 129..192 -> 192, every other size -> the next power of two, up to
8 KiB (KMALLOC_MAX_CACHE_SIZE).  Above that ``kmalloc_large()`` takes ``get_order(size)``
whole pages from the page allocator.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pyslub
from pyslub import SlabError

PAGE = 4096
EXAMPLES = 40 if pyslub.COMPILED else 12


def expected_class(size: int) -> int:
    """kmalloc_index() of the kernel, as a size."""
    if size <= 8:
        return 8
    if 64 < size <= 96:
        return 96
    if 128 < size <= 192:
        return 192
    return 1 << (size - 1).bit_length()


def class_name(cls: int) -> str:
    return f"kmalloc-{cls // 1024}k" if cls >= 1024 else f"kmalloc-{cls}"


def large_order(size: int) -> int:
    """get_order(): the smallest order whose block holds ``size`` bytes."""
    order = 0
    while PAGE << order < size:
        order += 1
    return order


@pytest.fixture
def mem():
    return pyslub.Memory(size=32 << 20, nr_cpus=4)


def test_kmalloc_sizes_table():
    assert pyslub.KMALLOC_SIZES == (8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096,
                                    8192)
    assert pyslub.ZERO_SIZE_PTR == 16


# every class boundary: the class's own size, one above the previous class, and 1
BOUNDARIES = sorted({1, 2, 7} | {c for c in pyslub.KMALLOC_SIZES}
                    | {c + 1 for c in pyslub.KMALLOC_SIZES[:-1]} | {63, 65, 95, 97, 127, 129,
                                                                    191, 193, 255, 257})


@pytest.mark.parametrize("size", BOUNDARIES)
def test_size_class(mem, size):
    a = mem.kmalloc(size)
    cls = expected_class(size)
    cache = mem.cache_of(a)
    assert cache.name == class_name(cls)
    assert cache.info["object_size"] == cls
    assert mem.ksize(a) == cls                    # plain kmalloc caches: ksize = slot size
    assert mem.ksize(a) >= size
    assert cache.slab_of(a)                       # a real object of that cache
    assert a % 8 == 0
    if cls & (cls - 1) == 0:                      # power-of-two classes: natural alignment
        assert a % cls == 0
    mem.kfree(a)
    assert cache.live_objects() == 0
    assert cache.validate() == []


def test_documented_examples(mem):
    for size, name in ((97, "kmalloc-128"), (65, "kmalloc-96"), (129, "kmalloc-192"),
                       (96, "kmalloc-96"), (192, "kmalloc-192"), (193, "kmalloc-256"),
                       (1000, "kmalloc-1k"), (1025, "kmalloc-2k"), (4097, "kmalloc-8k"),
                       (8192, "kmalloc-8k")):
        assert mem.cache_of(mem.kmalloc(size)).name == name, size


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.integers(1, 8192), min_size=1, max_size=60),
       cpus=st.lists(st.integers(0, 3), min_size=1, max_size=60))
def test_random_sizes_hold_their_bytes(sizes, cpus):
    """Each object holds ``size`` bytes of its own: fill all of them, then check all of them;
    free half, allocate again, check the survivors."""
    mem = pyslub.Memory(size=16 << 20, nr_cpus=4)
    objs = []
    for i, size in enumerate(sizes):
        with mem.on_cpu(cpus[i % len(cpus)]):
            a = mem.kmalloc(size)
        assert mem.ksize(a) == expected_class(size)
        pattern = bytes((i * 7 + j) & 0xFF for j in range(size))
        mem.cache_of(a).view(a)[:size] = pattern
        objs.append((a, size, pattern))
    assert len({a for a, _, _ in objs}) == len(objs)
    # slots do not overlap: [a, a + ksize) are disjoint
    spans = sorted((a, a + mem.ksize(a)) for a, _, _ in objs)
    assert all(hi <= lo2 for (_, hi), (lo2, _) in itertools.pairwise(spans))
    for a, size, pattern in objs:
        assert bytes(mem.cache_of(a).view(a)[:size]) == pattern
    for a, _, _ in objs[::2]:
        mem.kfree(a)
    again = [mem.kmalloc(s) for _, s, _ in objs[::2]]
    survivors = objs[1::2]
    assert not {a for a, _, _ in survivors} & set(again)
    for a, size, pattern in survivors:
        assert bytes(mem.cache_of(a).view(a)[:size]) == pattern
    for c in mem.caches.values():
        assert c.validate() == []


def test_kmalloc_zero(mem):
    live = mem.kmalloc(8)                           # kmalloc caches exist
    caches = {n: c.live_objects() for n, c in mem.caches.items()}
    free = mem.free_pages()
    assert mem.kmalloc(0) == pyslub.ZERO_SIZE_PTR
    assert mem.kmalloc(0) == pyslub.ZERO_SIZE_PTR   # not an allocation: the same every time
    mem.kfree(pyslub.ZERO_SIZE_PTR)
    mem.kfree(pyslub.ZERO_SIZE_PTR)
    mem.kfree(0)
    assert {n: c.live_objects() for n, c in mem.caches.items()} == caches
    assert mem.free_pages() == free
    with pytest.raises(SlabError):
        mem.cache_of(pyslub.ZERO_SIZE_PTR)          # never a real object
    mem.kfree(live)
    assert mem.caches["kmalloc-8"].live_objects() == 0


LARGE = [8193, 12288, 16384, 16385, 32768, 65537, 1 << 20, 3 << 20, 4 << 20]


@pytest.mark.parametrize("size", LARGE)
def test_large_allocation(mem, size):
    order = large_order(size)
    free = mem.free_pages()
    a = mem.kmalloc(size)
    assert a % PAGE == 0
    assert a % (PAGE << order) == 0               # a buddy block is naturally aligned
    assert mem.ksize(a) == PAGE << order
    assert mem.free_pages() == free - (1 << order)
    with pytest.raises(SlabError):
        mem.cache_of(a)                            # whole pages, not a slab object
    mem.kfree(a)
    assert mem.free_pages() == free
    with pytest.raises(SlabError):
        mem.ksize(a)                               # no longer allocated


@pytest.mark.parametrize("size", [8193, 20000, 1 << 20])
def test_large_interior_kfree_refused(mem, size):
    a = mem.kmalloc(size)
    n = mem.ksize(a)
    free = mem.free_pages()
    for off in sorted({1, 8, PAGE, n - PAGE, n - 8, n // 2}):
        with pytest.raises(SlabError):
            mem.kfree(a + off)
        with pytest.raises(SlabError):
            mem.ksize(a + off)
        assert mem.free_pages() == free            # the block is still allocated
        assert mem.ksize(a) == n
    mem.kfree(a)
    assert mem.free_pages() == free + (n // PAGE)


def test_large_double_kfree_refused(mem):
    a = mem.kmalloc(20000)
    mem.kfree(a)
    free = mem.free_pages()
    with pytest.raises(SlabError):
        mem.kfree(a)
    assert mem.free_pages() == free


def test_large_and_small_do_not_overlap(mem):
    objs = []
    for i in range(40):
        size = (8193 + 3000 * i) if i % 3 == 0 else 1 + 200 * i
        objs.append(mem.kmalloc(size))
    spans = sorted((a, a + mem.ksize(a)) for a in objs)
    assert all(hi <= lo2 for (_, hi), (lo2, _) in itertools.pairwise(spans))
    # no large block lies on a page of any slab
    slab_pages = set()
    for c in mem.caches.values():
        for s in c.slabs():
            slab_pages.update(range(s // PAGE, s // PAGE + (1 << c.info["order"])))
    for a in objs:
        if mem.ksize(a) > 8192:
            assert not set(range(a // PAGE, (a + mem.ksize(a)) // PAGE)) & slab_pages


@pytest.mark.parametrize("size", [-1, -4096, (4 << 20) + 1, 1 << 40])
def test_bad_sizes(mem, size):
    free = mem.free_pages()
    with pytest.raises(ValueError):
        mem.kmalloc(size)
    assert mem.free_pages() == free


@pytest.mark.parametrize("size", [8.0, "8", None])
def test_non_integer_sizes(mem, size):
    with pytest.raises((TypeError, ValueError)):
        mem.kmalloc(size)


def test_large_allocation_exhaustion():
    mem = pyslub.Memory(size=1 << 20, nr_cpus=2)         # 255 usable pages, no order-8 block
    free = mem.free_pages()
    with pytest.raises(MemoryError):
        mem.kmalloc(1 << 20)
    assert mem.free_pages() == free
    blocks = []
    while True:
        try:
            blocks.append(mem.kmalloc(64 << 10))          # order 4
        except MemoryError:
            break
    assert len(blocks) == 15                              # 16 blocks of 16 pages, one holds page 0
    for b in blocks:
        mem.kfree(b)
    assert mem.free_pages() == free
    assert mem.kmalloc(512 << 10) % (512 << 10) == 0       # merged back into big buddies


def test_kfree_of_small_objects(mem):
    objs = {s: [mem.kmalloc(s) for _ in range(30)] for s in (8, 96, 700, 3000)}
    for s, xs in objs.items():
        cache = mem.caches[class_name(expected_class(s))]
        assert cache.live_objects() == 30
        for i, x in enumerate(xs):
            mem.kfree(x)
            assert cache.live_objects() == 29 - i
        assert cache.validate() == []


def test_kfree_of_a_user_cache_object(mem):
    """kfree() takes the cache from the object's slab, so any slab object can be kfree'd."""
    c = mem.create_cache("user", 200)
    xs = [c.alloc() for _ in range(50)]
    for x in xs:
        assert mem.cache_of(x) is c
        assert mem.ksize(x) == c.info["size"]
        mem.kfree(x)
    assert c.live_objects() == 0 and c.validate() == []


def test_kmalloc_on_every_cpu(mem):
    objs = []
    for cpu in range(4):
        with mem.on_cpu(cpu):
            objs += [mem.kmalloc(100) for _ in range(70)]
    assert len(set(objs)) == len(objs)
    cache = mem.caches["kmalloc-128"]
    assert cache.live_objects() == len(objs)
    with mem.on_cpu(2):                                  # freed from another cpu
        p = np.array(objs, dtype=np.uint64)
        mem.kfree_bulk(p)
    assert not p.any() and cache.live_objects() == 0 and cache.validate() == []


def test_user_cache_named_like_a_kmalloc_cache():
    """kmalloc-* names belong to the kmalloc caches: a user cache may not take one, and
    kmalloc keeps working (and never hands out a user cache's objects)."""
    mem = pyslub.Memory(size=4 << 20, nr_cpus=2)
    with pytest.raises(ValueError, match="kmalloc"):
        mem.create_cache("kmalloc-64", 64)
    user = mem.create_cache("kmalloc64", 64)
    for size in (8, 100, 64, 8, 5000):
        a = mem.kmalloc(size)
        assert mem.ksize(a) >= size
        if size <= 8192:
            assert mem.cache_of(a) is not user
        mem.kfree(a)
