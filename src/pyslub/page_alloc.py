"""The page allocator: one arena of 4 KiB pages, a buddy allocator, and ``struct page`` records.

Slabs (mm/slub.c ``allocate_slab``/``__free_slab``) and large kmalloc allocations take compound
blocks of ``2**order`` pages from here and give them back.  Free blocks sit on per-order free
lists linked through the page records (PM_NEXT/PM_PREV), with PG_BUDDY and the order in
PM_FLAGS on the block's first page, as mm/page_alloc.c keeps them in ``free_area[order]``.

Every page of an allocated block gets PM_HEAD = the block's first page, so
``virt_to_head_page(addr)`` is one load; free pages have PM_HEAD = 0.  Page 0 is reserved so that
address 0 can be NULL.
"""

import mmap

import cython

if not cython.compiled:
    from pyslub._layout import (
        MAX_ORDER,
        ORDER_MASK,
        ORDER_SHIFT,
        PAGE_SHIFT,
        PG_BUDDY,
        PG_HEAD,
        PG_RESERVED,
        PG_TAIL,
        PM_FLAGS,
        PM_HEAD,
        PM_NEXT,
        PM_PREV,
        PM_STRIDE,
    )


def _word_view(m):
    return memoryview(m).cast("B").cast("q")


@cython.final
@cython.cclass
class PageAllocator:
    """A buddy allocator over an anonymous mmap of ``size`` bytes (lazily backed)."""

    def __init__(self, *args):
        if not cython.compiled:                   # plain Python has no __cinit__
            PageAllocator.__cinit__(self, *args)

    def __cinit__(self, size, nr_cpus):
        # __cinit__ always runs (tp_new): the memoryviews can never be unset.
        npages = size >> PAGE_SHIFT
        if npages < 2 or (npages << PAGE_SHIFT) != size:
            raise ValueError(f"arena size {size} must be a multiple of 4096 and >= 8192")
        if nr_cpus < 1 or nr_cpus > 1024:
            raise ValueError(f"nr_cpus {nr_cpus} must be in 1..1024")
        self.arena = mmap.mmap(-1, size)
        self.meta = mmap.mmap(-1, npages * PM_STRIDE * 8)
        self.words = _word_view(self.arena)
        self.pm = _word_view(self.meta)
        self.free_area = memoryview(bytearray(2 * MAX_ORDER * 8)).cast("q")
        self.nr_pages = npages
        self.arena_bytes = size
        self.nr_free_pages = 0
        self.nr_cpus = nr_cpus
        self.cur_cpu = 0
        self.fail_after = -1
        self.pm[0 * PM_STRIDE + PM_FLAGS] = PG_RESERVED
        # hand the pages out as the largest naturally aligned blocks that fit
        page: i64 = 1
        order: cython.int
        while page < npages:
            order = MAX_ORDER - 1
            while order > 0 and ((page & ((1 << order) - 1)) or page + (1 << order) > npages):
                order -= 1
            self._list_add(page, order)
            self.nr_free_pages += 1 << order
            page += 1 << order

    # ---- free lists -------------------------------------------------------------------------

    def _list_add(self, page, order):
        head: i64 = self.free_area[2 * order]
        r: i64 = page * PM_STRIDE
        self.pm[r + PM_FLAGS] = PG_BUDDY | (order << ORDER_SHIFT)
        self.pm[r + PM_HEAD] = 0
        self.pm[r + PM_NEXT] = head
        self.pm[r + PM_PREV] = 0
        if head:
            self.pm[head * PM_STRIDE + PM_PREV] = page
        self.free_area[2 * order] = page
        self.free_area[2 * order + 1] += 1

    def _list_del(self, page, order):
        r: i64 = page * PM_STRIDE
        nxt: i64 = self.pm[r + PM_NEXT]
        prv: i64 = self.pm[r + PM_PREV]
        if prv:
            self.pm[prv * PM_STRIDE + PM_NEXT] = nxt
        else:
            self.free_area[2 * order] = nxt
        if nxt:
            self.pm[nxt * PM_STRIDE + PM_PREV] = prv
        self.pm[r + PM_FLAGS] = 0
        self.pm[r + PM_NEXT] = 0
        self.pm[r + PM_PREV] = 0
        self.free_area[2 * order + 1] -= 1

    # ---- allocation -------------------------------------------------------------------------

    def alloc_pages(self, order):
        """Take a block of 2**order pages; returns its first page index, 0 when none is free.

        Every page of the block gets PM_HEAD; the first page PG_HEAD and the order, the others
        PG_TAIL.  The caller sets PG_SLAB / PG_LARGE on top.
        """
        if order < 0 or order >= MAX_ORDER:
            return 0
        if self.fail_after >= 0:
            if self.fail_after == 0:
                return 0
            self.fail_after -= 1
        o: cython.int = order
        while o < MAX_ORDER and self.free_area[2 * o] == 0:
            o += 1
        if o >= MAX_ORDER:
            return 0
        page: i64 = self.free_area[2 * o]
        self._list_del(page, o)
        while o > order:                       # split, giving back the upper halves
            o -= 1
            self._list_add(page + (1 << o), o)
        i: i64
        for i in range(1 << order):
            self.pm[(page + i) * PM_STRIDE + PM_HEAD] = page
            self.pm[(page + i) * PM_STRIDE + PM_FLAGS] = PG_TAIL
        self.pm[page * PM_STRIDE + PM_FLAGS] = PG_HEAD | (order << ORDER_SHIFT)
        self.nr_free_pages -= 1 << order
        return page

    def free_pages(self, page, order):
        """Give back a block taken with alloc_pages(order), merging it with free buddies."""
        i: i64
        r: i64
        for i in range(1 << order):
            r = (page + i) * PM_STRIDE
            self.pm[r + PM_HEAD] = 0
            self.pm[r + PM_FLAGS] = 0
        self.nr_free_pages += 1 << order
        buddy: i64
        bflags: i64
        while order < MAX_ORDER - 1:
            buddy = page ^ (1 << order)
            if buddy >= self.nr_pages:
                break
            bflags = self.pm[buddy * PM_STRIDE + PM_FLAGS]
            if not (bflags & PG_BUDDY) or ((bflags >> ORDER_SHIFT) & ORDER_MASK) != order:
                break
            self._list_del(buddy, order)
            if buddy < page:
                page = buddy
            order += 1
        self._list_add(page, order)

    # ---- Python-visible helpers (tests, tools) ----------------------------------------------

    def inject_failures(self, after):
        """Make page allocations fail after ``after`` more successes (``-1`` turns it off)."""
        self.fail_after = after

    def free_counts(self):
        """Number of free blocks per order (like /proc/buddyinfo)."""
        return [int(self.free_area[2 * o + 1]) for o in range(MAX_ORDER)]

    def page_alloc(self, order):
        """Python access to alloc_pages (tests)."""
        return self.alloc_pages(order)

    def page_free(self, page, order):
        """Python access to free_pages (tests)."""
        self.free_pages(page, order)
