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

Everything here is C-level (``nogil``): the functions take the cache, the calling thread's cpu
record ``c`` and counter block ``st`` (see slab.py), and a pointer to words the caller owns (the
public layer copies the caller's array in first: nothing another thread does to that array can
reach the core).  "IRQ-off" sections are cpu claims (slab.py).  pyslub deviations:
``slab_post_alloc_hook`` and friends do not exist; the public layer checks every address (and,
in safe mode, every object's state) before any object of a call is freed, so a bad entry frees
nothing.
"""

import cython

if not cython.compiled:
    from pyslub._layout import *  # noqa: F403 (C enums when compiled)
    from pyslub.page_alloc import Segment
    from pyslub.slab import (
        EV_MASK_RECORD,
        KmemCache,
        bad_freepointer,
        cpu_claim,
        cpu_rec,
        cpu_release,
        get_freepointer,
        obj_to_index,
        object_page,
        page_addr,
        page_objects,
        set_freepointer,
        stat_add,
        stats_rec,
        virt_to_head_page,
    )

if not cython.compiled:
    DetachedFreelist = cython.struct(page=i64, freelist=i64, tail=i64, cnt=i64)

# =============================================================================================
# Allocation (v4.4, spec §4.4)
# =============================================================================================


@cython.cfunc
@cython.nogil
@cython.exceptval(check=False)
def kmem_cache_alloc_bulk(s: KmemCache, c: i64, st: i64, size: i64,
                          p: cython.p_longlong) -> i64:
    """Fill p[0:size] with objects; all or nothing: returns size, 0 (out of memory) or
    ERR_CORRUPT (safe mode: a freelist led to an object in use; reported).

    Objects come straight off c.freelist inside one "IRQ-off" section (the cpu claim; no
    per-object pair swap, no stat); an empty c.freelist refills through ___slab_alloc with the
    claim still held.
    """
    tid: i64 = cpu_claim(s, c, st)          # local_irq_disable()
    i: i64 = 0
    err: i64 = 0
    obj: i64
    fp: i64
    page: i64 = s.meta[c + C_PAGE]
    base: i64 = page_addr(page)             # the cpu slab's object slots: every free
    span: i64 = page_objects(s, page) * s.size    # pointer loaded must be one of them
    freelist: i64 = s.meta[c + C_FREELIST]  # c->freelist, kept in a register (IRQs off)
    while i < size:
        obj = freelist
        if obj == 0:
            s.meta[c + C_FREELIST] = 0
            obj = s.slab_alloc_slowpath(c, st, s.object_size)
            freelist = s.meta[c + C_FREELIST]
            if obj <= 0:
                err = obj
                break
            p[i] = obj
            i += 1
            page = s.meta[c + C_PAGE]
            base = page_addr(page)
            span = page_objects(s, page) * s.size
            continue
        if s.checks and s.take_object(page, obj) < 0:
            freelist = 0                    # cut the list before the object in use
            err = ERR_CORRUPT
            break
        fp = get_freepointer(s, obj)
        if bad_freepointer(s, fp, base, span):
            fp = s.freepointer_corrupt(obj, fp, page)
        freelist = fp
        p[i] = obj
        i += 1
    s.meta[c + C_FREELIST] = freelist
    cpu_release(s, c, tid)                  # c->tid = next_tid(c->tid); local_irq_enable()
    if i == size:
        return size
    # error: __kmem_cache_free_bulk(s, i, p), the generic loop
    j: i64
    for j in range(i):
        if s.checks:
            s.state[p[j] >> 3] = OBJ_FREE
        s.do_slab_free(c, st, virt_to_head_page(s, p[j]), p[j], 0, 1)
        p[j] = 0
    return err


# =============================================================================================
# Free: the six generations
# =============================================================================================

@cython.cfunc
@cython.inline
@cython.nogil
@cython.exceptval(check=False)
def df_start(s: KmemCache, df: cython.pointer(DetachedFreelist), obj: i64) -> cython.void:
    """Start a list with ``obj`` as its tail."""
    set_freepointer(s, obj, 0)
    df[0].page = virt_to_head_page(s, obj)
    df[0].tail = obj
    df[0].freelist = obj
    df[0].cnt = 1


@cython.cfunc
@cython.inline
@cython.nogil
@cython.exceptval(check=False)
def df_push(s: KmemCache, df: cython.pointer(DetachedFreelist), obj: i64) -> cython.void:
    """Push ``obj`` on the head of the list (unsynchronised: the caller owns the object)."""
    if set_freepointer(s, obj, df[0].freelist):   # its BUG_ON fired: the duplicate is dropped
        return
    df[0].freelist = obj
    df[0].cnt += 1


@cython.cfunc
@cython.inline
@cython.nogil
@cython.exceptval(check=False)
def cpu_freelist_push(s: KmemCache, c: i64, head: i64, tail: i64, cnt: i64) -> cython.void:
    """Splice head..tail onto c.freelist inside an "IRQ-off" section (cpu claimed: bulk-v2,
    2/3, 3/3)."""
    if s.observe & EV_MASK_RECORD:
        s.record(s.meta[c + C_PAGE], head, cnt, True)
    if set_freepointer(s, tail, s.meta[c + C_FREELIST]):  # its BUG_ON fired: nothing freed
        return
    s.meta[c + C_FREELIST] = head


@cython.cfunc
@cython.inline
@cython.nogil
@cython.exceptval(check=False)
def slowpath_free(s: KmemCache, c: i64, st: i64, page: i64, head: i64, tail: i64,
                  cnt: i64) -> cython.void:
    """Call __slab_free directly, as the 2015 patches do (recorded as "slow")."""
    if s.observe & EV_MASK_RECORD:
        s.record(page, head, cnt, False)
    s.slab_free_slowpath(c, st, page, head, tail, cnt)


@cython.cfunc
@cython.nogil
@cython.exceptval(check=False)
def free_bulk_fallback(s: KmemCache, c: i64, st: i64, size: i64,
                       p: cython.p_longlong) -> cython.void:
    """__kmem_cache_free_bulk(): kmem_cache_free() per object."""
    i: i64
    for i in range(size):
        s.do_slab_free(c, st, virt_to_head_page(s, p[i]), p[i], 0, 1)


@cython.cfunc
@cython.nogil
@cython.exceptval(check=False)
def free_bulk_v2(s: KmemCache, c: i64, st: i64, size: i64, p: cython.p_longlong) -> cython.void:
    """Bulk API V2 (June 2015, the seed's "before"): one __slab_free per foreign object."""
    tid: i64 = cpu_claim(s, c, st)          # local_irq_disable()
    i: i64
    obj: i64
    page: i64
    for i in range(size):
        obj = p[i]
        page = virt_to_head_page(s, obj)
        if s.meta[c + C_PAGE] == page:      # "Fastpath: local CPU free"
            cpu_freelist_push(s, c, obj, obj, 1)
        else:
            cpu_release(s, c, tid)          # c->tid = next_tid(c->tid); local_irq_enable()
            slowpath_free(s, c, st, page, obj, obj, 1)
            tid = cpu_claim(s, c, st)       # local_irq_disable(); c = this_cpu_ptr()
    cpu_release(s, c, tid)


@cython.cfunc
@cython.nogil
@cython.exceptval(check=False)
def free_bulk_detached(s: KmemCache, c: i64, st: i64, size: i64,
                       p: cython.p_longlong) -> cython.void:
    """Seed patch 2/3: coalesce runs of consecutive same-slab objects into a detached list."""
    df: DetachedFreelist = DetachedFreelist(page=0, freelist=0, tail=0, cnt=0)
    dfp: cython.pointer(DetachedFreelist) = cython.address(df)
    tid: i64 = cpu_claim(s, c, st)
    i: i64
    obj: i64
    page: i64
    for i in range(size):
        obj = p[i]
        page = virt_to_head_page(s, obj)
        if page == dfp[0].page:
            df_push(s, dfp, obj)
        elif page == s.meta[c + C_PAGE]:
            cpu_freelist_push(s, c, obj, obj, 1)
        else:
            if dfp[0].page:
                cpu_release(s, c, tid)
                slowpath_free(s, c, st, dfp[0].page, dfp[0].freelist, dfp[0].tail, dfp[0].cnt)
                tid = cpu_claim(s, c, st)
            df_start(s, dfp, obj)
    cpu_release(s, c, tid)
    if dfp[0].page:
        slowpath_free(s, c, st, dfp[0].page, dfp[0].freelist, dfp[0].tail, dfp[0].cnt)


@cython.cfunc
@cython.nogil
@cython.exceptval(check=False)
def build_detached_freelist_fwd(s: KmemCache, size: i64, p: cython.p_longlong,
                                df: cython.pointer(DetachedFreelist), start: i64,
                                depth: i64) -> i64:
    """Seed patch 3/3: scan forward from ``start``; returns where the next scan starts.

    Matching objects are taken (slot NULLed) until ``depth`` foreign objects were seen;
    the resume point only moves past the prefix that had no gap.
    """
    lookahead: i64 = 0
    obj: i64 = 0
    i: i64
    df[0].page = 0
    while start < size:                    # the first non-NULL object starts the list
        obj = p[start]
        start += 1
        if obj:
            df_start(s, df, obj)
            p[start - 1] = 0
            break
    if df[0].page == 0:
        return start
    for i in range(start, size):
        obj = p[i]
        if obj == 0:
            continue
        if virt_to_head_page(s, obj) == df[0].page:
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
@cython.nogil
@cython.exceptval(check=False)
def free_bulk_lookahead_fwd(s: KmemCache, c: i64, st: i64, size: i64,
                            p: cython.p_longlong) -> cython.void:
    df: DetachedFreelist = DetachedFreelist(page=0, freelist=0, tail=0, cnt=0)
    dfp: cython.pointer(DetachedFreelist) = cython.address(df)
    depth: i64 = s.desc[s.d + D_LOOKAHEAD]
    it: i64 = 0
    tid: i64
    while it < size:
        it = build_detached_freelist_fwd(s, size, p, dfp, it, depth)
        if dfp[0].page:
            if s.meta[c + C_PAGE] == dfp[0].page:     # racy read, re-checked IRQ-off
                tid = cpu_claim(s, c, st)             # local_irq_disable()
                if s.meta[c + C_PAGE] == dfp[0].page:
                    cpu_freelist_push(s, c, dfp[0].freelist, dfp[0].tail, dfp[0].cnt)
                    cpu_release(s, c, tid)
                    continue
                cpu_release(s, c, tid)
            slowpath_free(s, c, st, dfp[0].page, dfp[0].freelist, dfp[0].tail, dfp[0].cnt)


@cython.cfunc
@cython.nogil
@cython.exceptval(check=False)
def build_detached_freelist(s: KmemCache, size: i64, p: cython.p_longlong,
                            df: cython.pointer(DetachedFreelist), depth: i64) -> i64:
    """v4.4: scan backward from ``size``; returns the new exclusive end (0 = done).

    The list's tail is the last array entry of the run, its head the lowest-index match; the
    scan stops at the ``depth``-th foreign object and resumes just after the first one.
    """
    first_skipped: i64 = 0
    lookahead: i64 = depth
    obj: i64 = 0
    df[0].page = 0
    while size > 0:                        # skip trailing NULLs
        size -= 1
        obj = p[size]
        if obj:
            break
    if obj == 0:
        return 0
    df_start(s, df, obj)
    p[size] = 0
    page: i64 = df[0].page                 # df->page / df->freelist / df->cnt live in
    head: i64 = obj                        # registers during the scan
    cnt: i64 = 1
    while size > 0:
        size -= 1
        obj = p[size]
        if obj == 0:
            continue                       # already consumed
        if virt_to_head_page(s, obj) == page:
            p[size] = 0
            if set_freepointer(s, obj, head):  # push at the head (BUG_ON: the duplicate
                continue                       # is dropped)
            head = obj
            cnt += 1
            continue
        lookahead -= 1
        if lookahead == 0:
            break
        if first_skipped == 0:
            first_skipped = size + 1
    df[0].freelist = head
    df[0].cnt = cnt
    return first_skipped


@cython.cfunc
@cython.nogil
@cython.exceptval(check=False)
def free_bulk_lookahead(s: KmemCache, c: i64, st: i64, size: i64,
                        p: cython.p_longlong) -> cython.void:
    df: DetachedFreelist = DetachedFreelist(page=0, freelist=0, tail=0, cnt=0)
    dfp: cython.pointer(DetachedFreelist) = cython.address(df)
    depth: i64 = s.desc[s.d + D_LOOKAHEAD]
    while size:
        size = build_detached_freelist(s, size, p, dfp, depth)
        if dfp[0].page:
            s.do_slab_free(c, st, dfp[0].page, dfp[0].freelist, dfp[0].tail, dfp[0].cnt)


@cython.cfunc
@cython.nogil
@cython.exceptval(check=False)
def build_detached_freelist_swap(s: KmemCache, size: i64, p: cython.p_longlong,
                                 df: cython.pointer(DetachedFreelist), depth: i64) -> i64:
    """v5.19+: like v4.4 but matches are swapped to the end of the window; no NULLs."""
    lookahead: i64 = depth
    size -= 1
    obj: i64 = p[size]
    df_start(s, df, obj)
    page: i64 = df[0].page
    head: i64 = obj                        # df_push() on locals: df is written once, at the end
    cnt: i64 = 1
    same: i64 = size
    while size > 0:
        size -= 1
        obj = p[size]
        if virt_to_head_page(s, obj) == page:
            same -= 1
            if size != same:
                p[size] = p[same]
                p[same] = obj
            if set_freepointer(s, obj, head):  # BUG_ON: the duplicate is dropped (and out
                continue                       # of the window, as a linked one)
            head = obj
            cnt += 1
            continue
        lookahead -= 1
        if lookahead == 0:
            break
    df[0].freelist = head
    df[0].cnt = cnt
    return same


@cython.cfunc
@cython.nogil
@cython.exceptval(check=False)
def free_bulk_swap(s: KmemCache, c: i64, st: i64, size: i64, p: cython.p_longlong) -> cython.void:
    df: DetachedFreelist = DetachedFreelist(page=0, freelist=0, tail=0, cnt=0)
    dfp: cython.pointer(DetachedFreelist) = cython.address(df)
    depth: i64 = s.desc[s.d + D_LOOKAHEAD]
    while size:
        size = build_detached_freelist_swap(s, size, p, dfp, depth)
        s.do_slab_free(c, st, dfp[0].page, dfp[0].freelist, dfp[0].tail, dfp[0].cnt)


@cython.cfunc
@cython.nogil
@cython.exceptval(check=False)
def kmem_cache_free_bulk(s: KmemCache, c: i64, st: i64, size: i64, p: cython.p_longlong,
                         strategy: cython.int) -> cython.void:
    """Dispatch to one generation; ``p[0:size]`` must have passed check_bulk()."""
    if size <= 0:
        return                                 # WARN_ON(!size) in the kernel
    if strategy == FB_LOOKAHEAD:
        free_bulk_lookahead(s, c, st, size, p)
    elif strategy == FB_LOOKAHEAD_FWD:
        free_bulk_lookahead_fwd(s, c, st, size, p)
    elif strategy == FB_SWAP:
        free_bulk_swap(s, c, st, size, p)
    elif strategy == FB_DETACHED:
        free_bulk_detached(s, c, st, size, p)
    elif strategy == FB_BULK_V2:
        free_bulk_v2(s, c, st, size, p)
    else:
        free_bulk_fallback(s, c, st, size, p)


# =============================================================================================
# Checking an array before anything is freed
# =============================================================================================

@cython.cfunc
@cython.nogil
@cython.exceptval(check=False)
def check_bulk(s: KmemCache, size: i64, p: cython.p_longlong, allow_null: cython.bint) -> i64:
    """0 when every entry of p[0:size] may be freed (NULLs skipped if ``allow_null``), else
    -(((index + 1) << 5) | -reason) for the first entry that may not (reason: BAD_*).

    Every address must be an object slot of ``s``.  Safe mode also needs every object handed
    out and listed once: each is marked OBJ_FREEING as it passes (an entry met again is a
    duplicate), then all become OBJ_FREE -- or, when one fails, the marks are undone and
    nothing changes.  Neighbours usually share a slab: once an address passed the full
    object_page() check, the next ones in the same slab only need the object-boundary test.
    """
    i: i64
    addr: i64
    off: i64
    page: i64
    sb: cython.int
    bad: i64 = 0
    base: i64 = 0                          # slab of the last checked address ...
    span: i64 = 0                          # ... and the bytes its object slots cover
    checks: cython.bint = s.checks         # locals: the state stores may alias anything
    osize: i64 = s.size
    state: cython.p_uchar
    if cython.compiled:
        state = cython.address(s.state[0])
    else:
        state = s.state
    for i in range(size):
        addr = p[i]
        if addr == 0 and allow_null:
            continue
        off = addr - base
        if off < 0 or off >= span:
            page = object_page(s, addr)
            if page < 0:
                bad = page
                break
            base = page_addr(page)
            span = page_objects(s, page) * osize
            off = addr - base
        if obj_to_index(s, off) * osize != off:
            bad = BAD_BOUNDARY
            break
        if checks:
            sb = state[addr >> 3]
            if sb != OBJ_LIVE:
                bad = (BAD_FREE if sb == OBJ_FREE else BAD_FREEING if sb == OBJ_FREEING
                       else BAD_LEAKED)
                break
            state[addr >> 3] = OBJ_FREEING
    if not checks:
        return 0 if bad == 0 else -(((i + 1) << 5) | -bad)
    j: i64
    mark: cython.uchar = OBJ_LIVE if bad else OBJ_FREE
    for j in range(i if bad else size):
        if p[j]:
            state[p[j] >> 3] = mark
    return 0 if bad == 0 else -(((i + 1) << 5) | -bad)


# =============================================================================================
# kfree_bulk: kmem_cache_free_bulk(NULL, ...) (v4.6, spec §5.1)
# =============================================================================================

@cython.cfunc
@cython.exceptval(check=False)
def kfree_check(seg: Segment, caches: list, size: i64, p: cython.p_longlong) -> i64:
    """check_bulk() for kfree_bulk: every non-NULL entry must be the start of a large kmalloc
    block, or an object of a live cache of this Memory (``caches``: by id, GIL held); safe
    mode marks and checks state bytes the same way.  Returns 0 or the encoded first failure."""
    i: i64
    addr: i64
    head: i64
    cid: i64
    sb: cython.int
    bad: i64 = 0
    s: KmemCache
    checks: cython.bint = bool(seg.hdr[H_FLAGS] & MEM_CHECKS)
    for i in range(size):
        addr = p[i]
        if addr == 0:
            continue
        if addr < 0 or addr >= seg.arena_bytes:
            bad = BAD_OUTSIDE
            break
        head = seg.pm[(addr >> PAGE_SHIFT) * PM_STRIDE + PM_HEAD]
        if head and seg.pm[head * PM_STRIDE + PM_FLAGS] & PG_LARGE:
            if addr != page_addr(head):
                bad = BAD_BOUNDARY
                break
        else:
            if head == 0 or not (seg.pm[head * PM_STRIDE + PM_FLAGS] & PG_SLAB):
                bad = BAD_NOT_SLAB
                break
            cid = seg.pm[head * PM_STRIDE + PM_SLAB_CACHE]
            if cid <= 0 or cid >= len(caches) or caches[cid] is None:
                bad = BAD_NOT_SLAB
                break
            s = caches[cid]
            if object_page(s, addr) < 0:
                bad = object_page(s, addr)
                break
        if checks:
            sb = seg.state[addr >> 3]
            if sb != OBJ_LIVE:
                bad = (BAD_FREE if sb == OBJ_FREE else BAD_FREEING if sb == OBJ_FREEING
                       else BAD_LEAKED)
                break
            seg.state[addr >> 3] = OBJ_FREEING
    j: i64
    if checks:
        for j in range(i if bad else size):
            if p[j]:
                seg.state[p[j] >> 3] = OBJ_LIVE if bad else OBJ_FREE
    return 0 if bad == 0 else -(((i + 1) << 5) | -bad)


@cython.cfunc
@cython.exceptval(check=False)
def kfree_bulk_lists(seg: Segment, caches: list, cpu: i64, seat: i64, size: i64,
                     p: cython.p_longlong) -> cython.void:
    """The v4.6 loop over a checked array: each detached list takes its cache from its slab
    (``page->slab_cache``); a large allocation found at the scan position is freed on its own
    (kfree_hook + free pages).  NULLs skipped, consumed slots NULLed.  GIL held (``caches`` is
    the Memory's list of caches by id, read as C-level objects), no Python code runs."""
    df: DetachedFreelist = DetachedFreelist(page=0, freelist=0, tail=0, cnt=0)
    dfp: cython.pointer(DetachedFreelist) = cython.address(df)
    s: KmemCache
    j: i64
    addr: i64
    head: i64
    while size > 0:
        j = size - 1
        while j >= 0 and p[j] == 0:
            j -= 1
        if j < 0:
            break
        addr = p[j]
        head = seg.pm[(addr >> PAGE_SHIFT) * PM_STRIDE + PM_HEAD]
        if not (seg.pm[head * PM_STRIDE + PM_FLAGS] & PG_SLAB):   # not a slab page
            p[j] = 0
            if seg.pm[head * PM_STRIDE + PM_FLAGS] & PG_LARGE:
                seg.free_large(head)            # (else: a duplicate entry, already freed)
            size = j
            continue
        s = caches[seg.pm[head * PM_STRIDE + PM_SLAB_CACHE]]   # df->s = page->slab_cache
        size = build_detached_freelist(s, j + 1, p, dfp, s.desc[s.d + D_LOOKAHEAD])
        if dfp[0].page:
            s.do_slab_free(cpu_rec(s, cpu), stats_rec(s, cpu, seat), dfp[0].page,
                           dfp[0].freelist, dfp[0].tail, dfp[0].cnt)
            if s.gen == GEN_V70:                   # slab_free_bulk(): kfree_bulk bypasses
                stat_add(s, stats_rec(s, cpu, seat), FREE_SLOWPATH, dfp[0].cnt)  # sheaves
