"""The bulk API: kmem_cache_alloc_bulk and every generation of kmem_cache_free_bulk (spec §4-5).

A bulk free hands the slab core *lists*: objects of one slab linked through their own free
pointers (a **detached freelist**), head on the caller's stack, so publishing costs one pair
swap per list instead of one per object.  The generations differ in how they find lists:

=================  ==========================================================================
strategy           kernel code (spec section)
=================  ==========================================================================
fallback           slab_common's generic loop of kmem_cache_free()                     (§1.2)
bulk-v2            bulk API V2, June 2015 -- the seed's "before": cpu-slab objects spliced
                   onto c.freelist in the IRQ-off loop, every other one its own
                   __slab_free()                                                       (§4.0)
detached           seed patch 2/3: runs of *consecutive* same-slab objects             (§4.2)
lookahead-fwd      seed patch 3/3 as posted: forward scan, look-ahead of 3 foreign objects,
                   consumed slots NULLed -- the seed's "after"                         (§4.3)
lookahead          merged in v4.4: backward scan, look-ahead 3, slab_free() fast path
                   for the cpu slab                                                    (§4.4)
swap               v5.19+: backward scan, matches swapped to the end, no NULLs         (§5.3)
=================  ==========================================================================

pyslub deviations: the "IRQ-off" sections are plain code (calls are serialised per cpu);
``slab_post_alloc_hook`` and friends do not exist; before any object of a call is freed every
address is checked (``check_bulk``), so a bad entry frees nothing.
"""

import cython
import numpy as np

if cython.compiled:
    cnp.import_array()                    # cnp and the core's names come from bulk.pxd
else:
    from pyslub._layout import *  # noqa: F403 (C enums when compiled)
    from pyslub.slab import (
        KmemCache,
        bad_freepointer,
        get_freepointer,
        next_tid,
        obj_to_index,
        object_page,
        page_addr,
        page_objects,
        set_freepointer,
        this_cpu,
        virt_to_head_page,
    )

from pyslub._layout import FREE_BULK_STRATEGIES  # noqa: E402
from pyslub.errors import SlabError  # noqa: E402
from pyslub.slab import BAD_REASONS  # noqa: E402

# strategy name -> FB_* id (a C-level dict when compiled: one lookup per free_bulk call)
STRATEGY_IDS = cython.declare(dict, {name: i for i, name in enumerate(FREE_BULK_STRATEGIES)})

# =============================================================================================
# Allocation (v4.4, spec §4.4)
# =============================================================================================

def kmem_cache_alloc_bulk(s, size, p):
    """Fill p[0:size] with objects; all or nothing (returns size or 0).

    Objects come straight off c.freelist inside one "IRQ-off" section (no per-object pair
    swap, no stat); an empty c.freelist refills through ___slab_alloc with IRQs still off.
    """
    c: i64 = this_cpu(s)
    i: i64 = 0
    obj: i64
    fp: i64
    page: i64 = s.cpu_slab[c + C_PAGE]
    base: i64 = page_addr(page)               # the cpu slab's object slots: every free
    span: i64 = page_objects(s, page) * s.size    # pointer loaded must be one of them
    freelist: i64 = s.cpu_slab[c + C_FREELIST]    # c->freelist, kept in a register (IRQs off)
    while i < size:
        obj = freelist
        if obj == 0:
            s.cpu_slab[c + C_FREELIST] = 0
            obj = s.slab_alloc_slowpath(c)
            if obj == 0:
                break
            p[i] = obj
            i += 1
            page = s.cpu_slab[c + C_PAGE]
            base = page_addr(page)
            span = page_objects(s, page) * s.size
            freelist = s.cpu_slab[c + C_FREELIST]
            continue
        fp = get_freepointer(s, obj)
        if bad_freepointer(s, fp, base, span):
            fp = s.freepointer_corrupt(obj, fp, page)
        freelist = fp
        p[i] = obj
        i += 1
    s.cpu_slab[c + C_FREELIST] = freelist
    s.cpu_slab[c + C_TID] = next_tid(s, s.cpu_slab[c + C_TID])
    if i == size:
        return size
    # error: __kmem_cache_free_bulk(s, i, p), the generic loop
    j: i64
    for j in range(i):
        s.cache_free(p[j])
        p[j] = 0
    return 0


# =============================================================================================
# Free: the six generations
# =============================================================================================

@cython.cclass
class DetachedFreelist:
    """struct detached_freelist: a list of objects of one slab, linked inside the objects."""

    def __init__(self):
        self.page = 0
        self.freelist = 0
        self.tail = 0
        self.cnt = 0


@cython.cfunc
@cython.inline
@cython.exceptval(check=False)
def df_start(s: KmemCache, df: DetachedFreelist, obj: i64) -> cython.void:
    """Start a list with ``obj`` as its tail."""
    set_freepointer(s, obj, 0)
    df.page = virt_to_head_page(s, obj)
    df.tail = obj
    df.freelist = obj
    df.cnt = 1


@cython.cfunc
@cython.inline
@cython.exceptval(check=False)
def df_push(s: KmemCache, df: DetachedFreelist, obj: i64) -> cython.void:
    """Push ``obj`` on the head of the list (unsynchronised: the caller owns the object)."""
    set_freepointer(s, obj, df.freelist)
    df.freelist = obj
    df.cnt += 1


@cython.cfunc
@cython.inline
@cython.exceptval(check=False)
def cpu_freelist_push(s: KmemCache, c: i64, head: i64, tail: i64, cnt: i64) -> cython.void:
    """Splice head..tail onto c.freelist inside an "IRQ-off" section (bulk-v2, 2/3, 3/3)."""
    if s.recorder is not None:
        s.record(s.cpu_slab[c + C_PAGE], head, cnt, True)
    set_freepointer(s, tail, s.cpu_slab[c + C_FREELIST])
    s.cpu_slab[c + C_FREELIST] = head


@cython.cfunc
@cython.inline
@cython.exceptval(check=False)
def slowpath_free(s: KmemCache, c: i64, page: i64, head: i64, tail: i64,
                  cnt: i64) -> cython.void:
    """Call __slab_free directly, as the 2015 patches do (recorded as "slow")."""
    if s.recorder is not None:
        s.record(page, head, cnt, False)
    s.slab_free_slowpath(c, page, head, tail, cnt)


@cython.cfunc
@cython.exceptval(check=False)
def free_bulk_fallback(s: KmemCache, size: i64, p: cython.p_longlong) -> cython.void:
    """__kmem_cache_free_bulk(): kmem_cache_free() per object."""
    i: i64
    for i in range(size):
        s.do_slab_free(virt_to_head_page(s, p[i]), p[i], 0, 1)


@cython.cfunc
@cython.exceptval(check=False)
def free_bulk_v2(s: KmemCache, size: i64, p: cython.p_longlong) -> cython.void:
    """Bulk API V2 (June 2015, the seed's "before"): one __slab_free per foreign object."""
    c: i64 = this_cpu(s)                  # local_irq_disable()
    i: i64
    obj: i64
    page: i64
    for i in range(size):
        obj = p[i]
        page = virt_to_head_page(s, obj)
        if s.cpu_slab[c + C_PAGE] == page:      # "Fastpath: local CPU free"
            cpu_freelist_push(s, c, obj, obj, 1)
        else:
            s.cpu_slab[c + C_TID] = next_tid(s, s.cpu_slab[c + C_TID])
            slowpath_free(s, c, page, obj, obj, 1)      # IRQs enabled around it
            c = this_cpu(s)
    s.cpu_slab[c + C_TID] = next_tid(s, s.cpu_slab[c + C_TID])


@cython.cfunc
@cython.exceptval(check=False)
def free_bulk_detached(s: KmemCache, size: i64, p: cython.p_longlong,
                       df: DetachedFreelist) -> cython.void:
    """Seed patch 2/3: coalesce runs of consecutive same-slab objects into a detached list."""
    c: i64 = this_cpu(s)
    i: i64
    obj: i64
    page: i64
    df.page = 0
    for i in range(size):
        obj = p[i]
        page = virt_to_head_page(s, obj)
        if page == df.page:
            df_push(s, df, obj)
        elif page == s.cpu_slab[c + C_PAGE]:
            cpu_freelist_push(s, c, obj, obj, 1)
        else:
            if df.page:
                s.cpu_slab[c + C_TID] = next_tid(s, s.cpu_slab[c + C_TID])
                slowpath_free(s, c, df.page, df.freelist, df.tail, df.cnt)
                c = this_cpu(s)
            df_start(s, df, obj)
    s.cpu_slab[c + C_TID] = next_tid(s, s.cpu_slab[c + C_TID])
    if df.page:
        slowpath_free(s, c, df.page, df.freelist, df.tail, df.cnt)


@cython.cfunc
@cython.exceptval(check=False)
def build_detached_freelist_fwd(s: KmemCache, size: i64, p: cython.p_longlong,
                                df: DetachedFreelist, start: i64, depth: i64) -> i64:
    """Seed patch 3/3: scan forward from ``start``; returns where the next scan starts.

    Matching objects are taken (slot NULLed) until ``depth`` foreign objects were seen;
    the resume point only moves past the prefix that had no gap.
    """
    lookahead: i64 = 0
    obj: i64 = 0
    i: i64
    df.page = 0
    while start < size:                    # the first non-NULL object starts the list
        obj = p[start]
        start += 1
        if obj:
            df_start(s, df, obj)
            p[start - 1] = 0
            break
    if df.page == 0:
        return start
    for i in range(start, size):
        obj = p[i]
        if obj == 0:
            continue
        if virt_to_head_page(s, obj) == df.page:
            df_push(s, df, obj)
            p[i] = 0
            if lookahead == 0:
                start += 1
        else:
            lookahead += 1
            if lookahead >= depth:
                break
    return start


@cython.cfunc
@cython.exceptval(check=False)
def free_bulk_lookahead_fwd(s: KmemCache, size: i64, p: cython.p_longlong,
                            df: DetachedFreelist) -> cython.void:
    it: i64 = 0
    c: i64
    while it < size:
        it = build_detached_freelist_fwd(s, size, p, df, it, s.lookahead)
        if df.page:
            c = this_cpu(s)
            if s.cpu_slab[c + C_PAGE] == df.page:      # local_irq_disable() + re-check
                cpu_freelist_push(s, c, df.freelist, df.tail, df.cnt)
                s.cpu_slab[c + C_TID] = next_tid(s, s.cpu_slab[c + C_TID])
            else:
                slowpath_free(s, c, df.page, df.freelist, df.tail, df.cnt)


@cython.cfunc
@cython.exceptval(check=False)
def build_detached_freelist(s: KmemCache, size: i64, p: cython.p_longlong,
                            df: DetachedFreelist, depth: i64) -> i64:
    """v4.4: scan backward from ``size``; returns the new exclusive end (0 = done).

    The list's tail is the last array entry of the run, its head the lowest-index match; the
    scan stops at the ``depth``-th foreign object and resumes just after the first one.
    """
    first_skipped: i64 = 0
    lookahead: i64 = depth
    obj: i64 = 0
    df.page = 0
    while size > 0:                        # skip trailing NULLs
        size -= 1
        obj = p[size]
        if obj:
            break
    if obj == 0:
        return 0
    df_start(s, df, obj)
    p[size] = 0
    page: i64 = df.page                    # df->page / df->freelist / df->cnt live in
    head: i64 = obj                        # registers during the scan
    cnt: i64 = 1
    while size > 0:
        size -= 1
        obj = p[size]
        if obj == 0:
            continue                       # already consumed
        if virt_to_head_page(s, obj) == page:
            set_freepointer(s, obj, head)  # push at the head
            head = obj
            cnt += 1
            p[size] = 0
            continue
        lookahead -= 1
        if lookahead == 0:
            break
        if first_skipped == 0:
            first_skipped = size + 1
    df.freelist = head
    df.cnt = cnt
    return first_skipped


@cython.cfunc
@cython.exceptval(check=False)
def free_bulk_lookahead(s: KmemCache, size: i64, p: cython.p_longlong,
                        df: DetachedFreelist) -> cython.void:
    while size:
        size = build_detached_freelist(s, size, p, df, s.lookahead)
        if df.page:
            s.do_slab_free(df.page, df.freelist, df.tail, df.cnt)


@cython.cfunc
@cython.exceptval(check=False)
def build_detached_freelist_swap(s: KmemCache, size: i64, p: cython.p_longlong,
                                 df: DetachedFreelist, depth: i64) -> i64:
    """v5.19+: like v4.4 but matches are swapped to the end of the window; no NULLs."""
    lookahead: i64 = depth
    size -= 1
    obj: i64 = p[size]
    df_start(s, df, obj)
    same: i64 = size
    while size > 0:
        size -= 1
        obj = p[size]
        if virt_to_head_page(s, obj) == df.page:
            df_push(s, df, obj)
            same -= 1
            if size != same:
                p[size] = p[same]
                p[same] = obj
            continue
        lookahead -= 1
        if lookahead == 0:
            break
    return same


@cython.cfunc
@cython.exceptval(check=False)
def free_bulk_swap(s: KmemCache, size: i64, p: cython.p_longlong,
                   df: DetachedFreelist) -> cython.void:
    while size:
        size = build_detached_freelist_swap(s, size, p, df, s.lookahead)
        s.do_slab_free(df.page, df.freelist, df.tail, df.cnt)


def kmem_cache_free_bulk(s, size, p, strategy, df):
    """Dispatch to one generation; ``p[0:size]`` must have passed check_bulk()."""
    if size <= 0:
        return                                 # WARN_ON(!size) in the kernel
    if strategy == FB_LOOKAHEAD:
        free_bulk_lookahead(s, size, p, df)
    elif strategy == FB_LOOKAHEAD_FWD:
        free_bulk_lookahead_fwd(s, size, p, df)
    elif strategy == FB_SWAP:
        free_bulk_swap(s, size, p, df)
    elif strategy == FB_DETACHED:
        free_bulk_detached(s, size, p, df)
    elif strategy == FB_BULK_V2:
        free_bulk_v2(s, size, p)
    else:
        free_bulk_fallback(s, size, p)


def check_bulk(s, size, p, allow_null):
    """Index of the first entry that is not an object of ``s`` (NULLs allowed if
    ``allow_null``), or -1 when all are.  pyslub's guard: nothing is freed unless all pass.

    Neighbours usually share a slab: once an address passed the full object_page() check,
    the next ones in the same slab only need the object-boundary test.
    """
    i: i64
    addr: i64
    off: i64
    page: i64
    base: i64 = 0                          # slab of the last checked address ...
    span: i64 = 0                          # ... and the bytes its object slots cover
    for i in range(size):
        addr = p[i]
        if addr == 0 and allow_null:
            continue
        off = addr - base
        if off < 0 or off >= span:
            page = object_page(s, addr)
            if page < 0:
                return i
            base = page_addr(page)
            span = page_objects(s, page) * s.size
            off = addr - base
        if obj_to_index(s, off) * s.size != off:
            return i
    return -1


# =============================================================================================
# numpy arrays in, pointers out (the one place that differs between the two speeds)
# =============================================================================================

@cython.cfunc
def array_size(p: object, size: object, writable: cython.bint) -> i64:
    """Check ``p`` is a C-contiguous 1-d uint64 ndarray; return the number of entries used."""
    n: i64
    if cython.compiled:
        if not cnp.PyArray_Check(p):
            raise TypeError(f"expected a numpy uint64 array, got {type(p).__name__}")
        arr: cnp.ndarray = p
        if (cnp.PyArray_TYPE(arr) != cnp.NPY_UINT64 or cnp.PyArray_NDIM(arr) != 1
                or not cnp.PyArray_IS_C_CONTIGUOUS(arr)):
            raise TypeError("expected a 1-d C-contiguous numpy array of dtype uint64, got "
                            f"dtype {p.dtype} with shape {p.shape}")
        if writable and not cnp.PyArray_ISWRITEABLE(arr):
            raise TypeError("the address array must be writable")
        n = cnp.PyArray_DIM(arr, 0)
    else:
        if not isinstance(p, np.ndarray):
            raise TypeError(f"expected a numpy uint64 array, got {type(p).__name__}")
        if p.dtype != np.uint64 or p.ndim != 1 or not p.flags.c_contiguous:
            raise TypeError("expected a 1-d C-contiguous numpy array of dtype uint64, got "
                            f"dtype {p.dtype} with shape {p.shape}")
        if writable and not p.flags.writeable:
            raise TypeError("the address array must be writable")
        n = p.shape[0]
    if size is None:
        return n
    if not isinstance(size, int) or size < 0:
        raise ValueError(f"size must be a non-negative int, got {size!r}")
    if size > n:
        raise ValueError(f"size {size} is larger than the array ({n} entries)")
    return size


@cython.cfunc
def array_words(p: object) -> cython.p_longlong:
    """The array's data as 64-bit words: a pointer compiled, a memoryview uncompiled."""
    if cython.compiled:
        return cython.cast(cython.p_longlong, cnp.PyArray_DATA(cython.cast(cnp.ndarray, p)))
    else:
        return memoryview(p).cast("B").cast("q")


# =============================================================================================
# Public face of a cache: the core plus the bulk API
# =============================================================================================

@cython.cclass
class Cache(KmemCache):
    """A slab cache (``struct kmem_cache``): single-object and bulk alloc/free, state, stats.

    Create one with ``Memory.create_cache``.  Object addresses are byte offsets in the arena.
    """

    def __cinit__(self, *args):
        self.df = DetachedFreelist()

    def __init__(self, *args):
        if not cython.compiled:                   # plain Python has no __cinit__
            KmemCache.__cinit__(self, *args)
            Cache.__cinit__(self, *args)

    def alloc_bulk(self, p, size=None) -> int:
        """kmem_cache_alloc_bulk(): fill ``p[:size]`` (uint64 array) with new objects.

        All or nothing: returns ``size``, or 0 (out of memory) with nothing allocated.
        """
        n: i64 = array_size(p, size, True)
        if self.dead:
            self._check_alive()
        if n == 0:
            return 0
        return kmem_cache_alloc_bulk(self, n, array_words(p))

    def alloc_many(self, n) -> np.ndarray:
        """``n`` new objects as a uint64 array (MemoryError when out of memory)."""
        p = np.zeros(n, dtype=np.uint64)
        if n and self.alloc_bulk(p) != n:
            raise MemoryError(f"cache {self.name!r}: cannot allocate {n} objects")
        return p

    def free_bulk(self, p, size=None, strategy=None) -> None:
        """kmem_cache_free_bulk(): free ``p[:size]`` with one generation of the bulk free.

        ``strategy`` defaults to ``free_bulk_strategy``.  Every address is checked before
        anything is freed: SlabError names the first bad index.  The lookahead strategies
        NULL the consumed slots (and skip NULL entries); swap permutes the array.
        """
        n: i64 = array_size(p, size, True)
        st: cython.int = self.fb_strategy
        if strategy is not None:
            st = STRATEGY_IDS.get(strategy, -1)
            if st < 0:
                raise ValueError(f"unknown free_bulk strategy {strategy!r}; "
                                 f"choose one of {FREE_BULK_STRATEGIES}")
        if self.dead:
            self._check_alive()
        words: cython.p_longlong = array_words(p)
        bad: i64 = check_bulk(self, n, words, st == FB_LOOKAHEAD or st == FB_LOOKAHEAD_FWD)
        if bad >= 0:
            addr = int(p[bad])
            reason = BAD_REASONS[self.check_free_addr(words[bad])]
            raise SlabError(f"cache {self.name!r}: free_bulk: p[{bad}] = {addr:#x} is "
                            f"{reason}; nothing was freed")
        nreports = len(self.reports) if self.debug else 0
        kmem_cache_free_bulk(self, n, words, st, self.df)
        if self.debug:
            self.raise_new_reports(nreports)


# =============================================================================================
# kfree_bulk: kmem_cache_free_bulk(NULL, ...) (v4.6, spec §5.1)
# =============================================================================================

def kfree_bulk_array(mem, p, size=None):
    """Free kmalloc'ed objects of any cache (and large allocations) listed in ``p[:size]``.

    Each detached list takes its cache from its slab (``page->slab_cache``); a large
    allocation found at the scan position is freed on its own.  NULL entries are skipped and
    consumed slots NULLed, as the v4.6 code does.  Every entry is checked first.
    """
    n: i64 = array_size(p, size, True)
    words: cython.p_longlong = array_words(p)
    i: i64
    addr: i64
    for i in range(n):
        addr = words[i]
        if addr == 0 or mem._large_order(addr) >= 0:
            continue
        try:
            cache = mem.cache_of(addr)
        except SlabError as e:
            raise SlabError(f"kfree_bulk: p[{i}] = {addr:#x}: {e}; nothing was freed") from None
        if cache.check_addr(addr) < 0:
            raise SlabError(f"kfree_bulk: p[{i}] = {addr:#x} is "
                            f"{BAD_REASONS[cache.check_addr(addr)]}; nothing was freed")
    df: DetachedFreelist = DetachedFreelist()
    s: KmemCache
    j: i64
    while n > 0:
        j = n - 1
        while j >= 0 and words[j] == 0:
            j -= 1
        if j < 0:
            break
        addr = words[j]
        if mem._large_order(addr) >= 0:            # not a slab page: kfree_hook + free pages
            words[j] = 0
            mem.kfree(addr)
            n = j
            continue
        s = mem.cache_of(addr)                     # df->s = page->slab_cache
        n = build_detached_freelist(s, j + 1, words, df, s.lookahead)
        if df.page:
            s.do_slab_free(df.page, df.freelist, df.tail, df.cnt)
