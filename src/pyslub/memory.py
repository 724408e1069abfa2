"""``Memory``: one arena, its logical cpus, its caches, and kmalloc.

This is the object a Python program holds.  It owns the page allocator (the arena), creates
caches sized by the kernel's formulas, runs code "on" a logical cpu, and offers the kmalloc
family on top of the kernel's kmalloc size classes.
"""

from __future__ import annotations

import contextlib
import operator
from collections.abc import Iterator

import numpy as np

from pyslub._layout import (
    FREE_BULK_STRATEGIES,
    MAX_ORDER,
    ORDER_MASK,
    ORDER_SHIFT,
    PAGE_SHIFT,
    PAGE_SIZE,
    PG_HEAD,
    PG_LARGE,
    PG_SLAB,
    PM_FLAGS,
    PM_HEAD,
    PM_SLAB_CACHE,
    PM_STRIDE,
    SLAB_POISON,
    SLAB_RED_ZONE,
    SLAB_STORE_USER,
)
from pyslub.bulk import Cache, kfree_bulk_array
from pyslub.errors import SlabError
from pyslub.page_alloc import PageAllocator
from pyslub.sizing import cache_geometry, get_order

DEFAULT_ARENA = 1 << 30          # 1 GiB of address space, backed lazily by the OS
DEFAULT_NR_CPUS = 8              # the seed's machine: nr_cpu_ids = 8 (spec §1.6)
ZERO_SIZE_PTR = 16               # what kmalloc(0) returns; kfree() ignores it
# kmalloc size classes (mm/slab_common.c kmalloc_info[], PAGE_SIZE 4 KiB): 8 .. 8 KiB
KMALLOC_SIZES = (8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192)
KMALLOC_MAX_CACHE_SIZE = KMALLOC_SIZES[-1]
KMALLOC_MAX_SIZE = PAGE_SIZE << (MAX_ORDER - 1)


def kmalloc_index(size: int) -> int:
    """Index into KMALLOC_SIZES of the smallest class holding ``size`` bytes (size >= 1)."""
    for i, cls in enumerate(KMALLOC_SIZES):
        if size <= cls:
            return i
    raise ValueError(f"{size} is above the largest kmalloc cache")


class Memory:
    """An arena of ``size`` bytes with ``nr_cpus`` logical cpus.

    >>> mem = Memory(size=64 << 20, nr_cpus=2)
    >>> cache = mem.create_cache("packets", 232, flags=SLAB_HWCACHE_ALIGN)
    >>> addr = cache.alloc(); cache.view(addr)[:4] = b"abcd"; cache.free(addr)
    """

    def __init__(self, size: int = DEFAULT_ARENA, nr_cpus: int = DEFAULT_NR_CPUS) -> None:
        for what, value in (("size", size), ("nr_cpus", nr_cpus)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{what} must be an int, got {type(value).__name__}")
        self.pa = PageAllocator(size, nr_cpus)
        self.nr_cpus = nr_cpus
        self._caches: list[Cache | None] = [None]     # index = page.slab_cache id
        self._kmalloc: list[Cache] = []

    # ---- cpus --------------------------------------------------------------------------------

    @property
    def cpu(self) -> int:
        """The logical cpu the calling code runs on."""
        return self.pa.cur_cpu

    @contextlib.contextmanager
    def on_cpu(self, cpu: int) -> Iterator[None]:
        """Run the block on logical cpu ``cpu`` (its kmem_cache_cpu state is used).

        The current cpu belongs to the Memory, not to a thread: calls into the core are
        serialised by the GIL today, and real threads on logical cpus come with the GIL-free
        core.
        """
        if not isinstance(cpu, int) or isinstance(cpu, bool) or not (0 <= cpu < self.nr_cpus):
            raise ValueError(f"cpu {cpu!r} outside 0..{self.nr_cpus - 1}")
        saved = self.pa.cur_cpu
        self.pa.cur_cpu = cpu
        try:
            yield
        finally:
            self.pa.cur_cpu = saved

    # ---- caches ------------------------------------------------------------------------------

    def create_cache(self, name: str, object_size: int, align: int = 0, flags: int = 0) -> Cache:
        """kmem_cache_create(): a cache sized by the kernel's formulas for ``nr_cpus``."""
        if not isinstance(name, str) or not name:
            raise ValueError("cache name must be a non-empty str")
        if name.startswith("kmalloc-"):
            raise ValueError(f"cache name {name!r}: kmalloc-* names belong to the kmalloc caches")
        return self._create_cache(name, object_size, align, flags)

    def _create_cache(self, name: str, object_size: int, align: int, flags: int) -> Cache:
        if any(c is not None and not c.dead and c.name == name for c in self._caches):
            raise ValueError(f"a cache named {name!r} exists already")
        geometry = cache_geometry(object_size, align, flags, self.nr_cpus)
        cache = Cache(self.pa, len(self._caches), name, geometry)
        self._caches.append(cache)
        return cache

    def destroy_cache(self, cache: Cache) -> None:
        """kmem_cache_destroy() (same as ``cache.destroy()``), then forget the cache."""
        cache.destroy()
        self._caches[cache.id] = None

    @property
    def caches(self) -> dict[str, Cache]:
        """Live caches by name (kmalloc caches included once kmalloc was used)."""
        return {c.name: c for c in self._caches if c is not None and not c.dead}

    def free_pages(self) -> int:
        """Pages free in the page allocator."""
        return self.pa.nr_free_pages

    # ---- kmalloc -----------------------------------------------------------------------------

    def _kmalloc_caches(self) -> list[Cache]:
        if not self._kmalloc:                          # create_kmalloc_caches()
            self._kmalloc = [
                self._create_cache(f"kmalloc-{sz // 1024}k" if sz >= 1024 else f"kmalloc-{sz}",
                                   sz, 0, 0)
                for sz in KMALLOC_SIZES]
        return self._kmalloc

    def kmalloc(self, size: int) -> int:
        """kmalloc(): an object of at least ``size`` bytes; above 8 KiB whole pages."""
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ValueError(f"kmalloc size must be a non-negative int, got {size!r}")
        if size == 0:
            return ZERO_SIZE_PTR
        if size > KMALLOC_MAX_CACHE_SIZE:
            if size > KMALLOC_MAX_SIZE:
                raise ValueError(f"kmalloc size {size} above KMALLOC_MAX_SIZE "
                                 f"({KMALLOC_MAX_SIZE})")
            order = get_order(size)                    # kmalloc_large()
            page = self.pa.page_alloc(order)
            if page == 0:
                raise MemoryError(f"kmalloc({size}): no free block of order {order}")
            self.pa.pm[page * PM_STRIDE + PM_FLAGS] |= PG_LARGE
            return page << PAGE_SHIFT
        return self._kmalloc_caches()[kmalloc_index(size)].alloc()

    def _large_order(self, addr: int) -> int:
        """Order of the large kmalloc block starting at ``addr``, or -1."""
        if addr & (PAGE_SIZE - 1) or not (0 < addr < self.pa.arena_bytes):
            return -1
        flags = self.pa.pm[(addr >> PAGE_SHIFT) * PM_STRIDE + PM_FLAGS]
        if (flags & (PG_LARGE | PG_HEAD)) != (PG_LARGE | PG_HEAD):
            return -1
        return (flags >> ORDER_SHIFT) & ORDER_MASK

    def cache_of(self, addr: int) -> Cache:
        """The cache owning the slab object ``addr`` (virt_to_head_page()->slab_cache)."""
        addr = operator.index(addr)
        if not (0 < addr < self.pa.arena_bytes):
            raise SlabError(f"address {addr!r} is outside the arena")
        head = self.pa.pm[(addr >> PAGE_SHIFT) * PM_STRIDE + PM_HEAD]
        if head == 0 or not (self.pa.pm[head * PM_STRIDE + PM_FLAGS] & PG_SLAB):
            raise SlabError(f"address {addr:#x} is not on a slab page")
        cache = self._caches[self.pa.pm[head * PM_STRIDE + PM_SLAB_CACHE]]
        assert cache is not None
        return cache

    def kfree(self, addr: int) -> None:
        """kfree(): free a kmalloc'ed (or any slab) object; NULL and ZERO_SIZE_PTR are ignored."""
        addr = operator.index(addr)
        if addr in (0, ZERO_SIZE_PTR):
            return
        order = self._large_order(addr)
        if order >= 0:
            self.pa.pm[(addr >> PAGE_SHIFT) * PM_STRIDE + PM_FLAGS] &= ~PG_LARGE
            self.pa.page_free(addr >> PAGE_SHIFT, order)
            return
        self.cache_of(addr).free(addr)

    def ksize(self, addr: int) -> int:
        """ksize(): bytes usable at ``addr`` (the slot, or the whole large block)."""
        addr = operator.index(addr)
        order = self._large_order(addr)
        if order >= 0:
            return PAGE_SIZE << order
        cache = self.cache_of(addr)
        cache.slab_of(addr)                            # SlabError if not an object boundary
        if cache.flags & (SLAB_RED_ZONE | SLAB_POISON):
            return cache.object_size
        if cache.flags & SLAB_STORE_USER:
            return cache.inuse
        return cache.size

    def kfree_bulk(self, p: np.ndarray, size: int | None = None) -> None:
        """kfree_bulk(): kmem_cache_free_bulk(NULL, ...) -- each list's cache taken from its
        slab, large allocations freed on their own (v4.6 lookahead, NULLs skipped)."""
        kfree_bulk_array(self, p, size)

    def __repr__(self) -> str:
        return (f"<pyslub.Memory {self.pa.arena_bytes >> 20} MiB, {self.nr_cpus} cpus, "
                f"{len(self.caches)} caches>")


__all__ = ["Memory", "FREE_BULK_STRATEGIES", "KMALLOC_SIZES", "ZERO_SIZE_PTR"]
