"""After a process died inside an operation: stop the world and rebuild from ground truth.

A process killed in the middle of an operation on a shared segment leaves what it was changing
half changed: objects taken off a freelist but never handed out, a free that set an object's
state but never linked it, a slab frozen for a cpu that no longer runs, a sheaf half refilled.
The locks it held are taken over by the first waiter, which repairs what each protects (the
layer that owns the lock does that: ``page_alloc``, ``slab``, ``sheaves``), so the survivors
never wait forever and never corrupt their own objects.  What such repairs cannot know is which
free objects are lost: ``recover()`` finds them.

``recover()`` closes the operation gate (``pyslub.procs``) and waits until no live thread is
inside an operation.  Nothing moves then except what the dead left, and the **object state
bytes** are the ground truth (safe mode; an arena without checks has none and cannot be
recovered this way):

  OBJ_LIVE with an owner     handed out: stays so (an orphan if its owner is dead)
  OBJ_LIVE, owner 0          taken by an operation that never returned: free again
  OBJ_FREE / OBJ_FREEING     free: linked into its slab's freelist
  OBJ_LEAKED                 stays out of circulation
  in a prefilled sheaf       (of a live process) stays in it

Every cache is then rebuilt as the kernel would leave it after flushing every cpu: each slab's
freelist is made of its free objects in address order, no slab is frozen, no cpu record holds
a slab or objects, every sheaf is empty, the node partial list holds every slab with a free
object (the empty ones beyond min_partial are freed), and the counts are recounted.  The page
allocators' free lists are rebuilt from the page records (a block a dead operation took but
never turned into a slab or a large allocation is free again).  Seats and gate words of dead
threads are released, and process slots that no live object names are freed.
"""

import cython

if not cython.compiled:
    from pyslub._layout import *  # noqa: F403 (C enums when compiled: _layout.pxd)
    from pyslub._prim import alive
    from pyslub.page_alloc import Segment
    from pyslub.slab import (
        KmemCache,
        cpu_rec,
        page_objects,
        set_freepointer,
    )

import numpy as np  # noqa: E402

from pyslub import procs  # noqa: E402
from pyslub.errors import SlabError  # noqa: E402

PREFILL_MARK = 0x80     # temporary state of objects in live prefilled sheaves (during a rebuild)


def recover(seg: Segment, caches: list) -> dict:
    """Stop the world, rebuild every cache of ``caches`` (views of every live descriptor) and
    both page allocators; returns what was found and done."""
    if not (seg.hdr[H_FLAGS] & MEM_CHECKS):
        raise SlabError("recover() rebuilds from the object state bytes: this arena was "
                        "created with checks=False and has none")
    procs.gate_close(seg)
    try:
        dead = procs.mark_dead(seg)
        dead_slots = [s for s in range(1, MAX_PROCS) if procs.proc_is_dead(seg, s)]
        for w in (H_REG_LOCK, H_ZONE_LOCK, H_META_LOCK):   # nobody is inside an operation
            seg.hdr[w] = 0
        report = {"dead_pids": [procs.proc_pid(seg, s) for s in dead],
                  "damaged": int(seg.hdr[H_DAMAGED]),
                  "reclaimed_objects": 0, "reclaimed_pages": 0, "slabs_freed": 0}
        seg.hdr[H_DAMAGED] = 0
        report["reclaimed_pages"] = _rebuild_pages(seg)
        for s in caches:
            r, freed = _rebuild_cache(s)
            report["reclaimed_objects"] += r
            report["slabs_freed"] += freed
        _release_seats(seg)
        live = object_owners(seg, caches)
        report["orphans"] = sum(int(live.get(slot, 0)) for slot in dead_slots)
        procs.proc_free_slots(seg, [slot for slot in range(1, MAX_PROCS)
                                    if not live.get(slot) and procs.proc_is_dead(seg, slot)])
        _free_closed_slots(seg, live)
    finally:
        procs.gate_open(seg)
    return report


# =============================================================================================
# Page allocators
# =============================================================================================

def _rebuild_pages(seg: Segment) -> int:
    """Rebuild both buddy allocators' free lists from the page records; returns the arena pages
    of blocks that a dead operation took and never made a slab or a large allocation of."""
    page: i64
    r: i64
    flags: i64
    order: cython.int
    k: i64
    lost: i64 = 0
    # arena: a block is in use if its head is a slab or a large block still handed out
    page = 1
    while page < seg.nr_pages:
        r = page * PM_STRIDE
        flags = seg.pm[r + PM_FLAGS]
        if seg.pm[r + PM_HEAD] == page and flags & PG_HEAD:
            order = (flags >> ORDER_SHIFT) & ORDER_MASK
            if (flags & PG_SLAB) or ((flags & PG_LARGE)
                                     and (seg.state[page << (PAGE_SHIFT - 3)] & 3) == OBJ_LIVE
                                     and _large_owned(seg, page)):
                page += 1 << order
                continue
            lost += 1 << order                   # taken by a dead operation: free again
            if flags & PG_LARGE:
                seg.state[page << (PAGE_SHIFT - 3)] = OBJ_FREE
            for k in range(1 << order):
                seg.pm[(page + k) * PM_STRIDE + PM_HEAD] = 0
                seg.pm[(page + k) * PM_STRIDE + PM_FLAGS] = 0
            page += 1 << order
            continue
        seg.pm[r + PM_HEAD] = 0                  # free (or a dead operation's torn block)
        seg.pm[r + PM_FLAGS] = 0
        page += 1
    seg.relist(0)
    # metadata region: blocks with a head in use stay (a dead operation's block leaks)
    base: i64 = seg.nr_pages
    page = 1
    while page < seg.meta_pages:
        r = (base + page) * PM_STRIDE
        flags = seg.pm[r + PM_FLAGS]
        if seg.pm[r + PM_HEAD] == page and flags & PG_HEAD:
            page += 1 << ((flags >> ORDER_SHIFT) & ORDER_MASK)
            continue
        seg.pm[r + PM_HEAD] = 0
        seg.pm[r + PM_FLAGS] = 0
        page += 1
    seg.relist(1)
    return lost


def _large_owned(seg: Segment, page: i64) -> cython.bint:
    """A live large block of a shared segment has an owner (0: a dead kmalloc in flight)."""
    if not seg.hdr[H_OWNER_OFF]:
        return True
    return seg.owner[page << (PAGE_SHIFT - 3)] != 0


# =============================================================================================
# Caches
# =============================================================================================

def _slabs_of(s: KmemCache) -> list:
    """Head pages of the cache's slabs (a scan of the page records)."""
    out = []
    page: i64 = 1
    r: i64
    flags: i64
    while page < s.seg.nr_pages:
        r = page * PM_STRIDE
        flags = s.pm[r + PM_FLAGS]
        if s.pm[r + PM_HEAD] == page and flags & PG_HEAD:
            if flags & PG_SLAB and s.pm[r + PM_SLAB_CACHE] == s.id:
                out.append(page)
            page += 1 << ((flags >> ORDER_SHIFT) & ORDER_MASK)
        else:
            page += 1
    return out


def _rebuild_cache(s: KmemCache):
    """One cache from its objects' state bytes; (objects reclaimed, slabs freed)."""
    d: i64 = s.d
    c: i64
    cpu: i64
    sh: i64
    page: i64
    reclaimed: i64 = 0
    freed: i64 = 0
    nfree: i64
    total: i64 = 0
    s.desc[d + N_LIST_LOCK] = 0
    s.desc[d + B_LOCK] = 0
    _mark_prefilled(s, PREFILL_MARK)
    # cpu records: nothing cached, no claim, no bias (their slabs and sheaves are rebuilt below)
    for cpu in range(s.nr_cpus):
        c = cpu_rec(s, cpu)
        s.meta[c + C_FREELIST] = 0
        s.meta[c + C_TID] = (s.meta[c + C_TID] & ~TID_BUSY) + s.tid_step
        s.meta[c + C_PAGE] = 0
        s.meta[c + C_PARTIAL] = 0
        for w in (C_LOCK, C_BIAS, C_INCS, C_REVOKE, C_OWNER, C_LAST, C_RUN):
            s.meta[c + w] = 0
        for w in (C_MAIN, C_SPARE):
            sh = s.meta[c + w]
            if sh:
                s.meta[sh + SH_SIZE] = 0
    # the barn: every sheaf empty
    sh = s.desc[d + B_FULL]
    nsheaves: i64 = s.desc[d + D_NR_SHEAVES] + 1
    while sh and nsheaves > 0:
        s.meta[sh + SH_SIZE] = 0
        nxt: i64 = s.meta[sh + SH_NEXT]
        s.meta[sh + SH_NEXT] = s.desc[d + B_EMPTY]
        s.desc[d + B_EMPTY] = sh
        s.desc[d + B_NR_EMPTY] += 1
        sh = nxt
        nsheaves -= 1
    s.desc[d + B_FULL] = 0
    s.desc[d + B_NR_FULL] = 0
    # slabs and the node lists
    s.desc[d + N_PARTIAL_HEAD] = 0
    s.desc[d + N_PARTIAL_TAIL] = 0
    s.desc[d + N_NR_PARTIAL] = 0
    s.desc[d + N_FULL_HEAD] = 0
    s.desc[d + N_FULL_TAIL] = 0
    s.desc[d + N_NR_SLABS] = 0
    s.desc[d + N_TOTAL_OBJECTS] = 0
    empty_kept: i64 = 0
    for page in _slabs_of(s):
        s.pm[page * PM_STRIDE + PM_FLAGS] &= ~PG_PARTIAL
        s.pm[page * PM_STRIDE + PM_NEXT] = 0
        s.pm[page * PM_STRIDE + PM_PREV] = 0
        s.pm[page * PM_STRIDE + PM_PAGES] = 0
        nfree = _rebuild_slab(s, page)
        if nfree < 0:
            reclaimed += -nfree >> 16
            nfree = -nfree & 0xFFFF
        total = page_objects(s, page)
        s.desc[d + N_NR_SLABS] += 1
        s.desc[d + N_TOTAL_OBJECTS] += total
        if nfree == total and empty_kept >= s.desc[d + D_MIN_PARTIAL]:
            s.discard_slab(page)
            freed += 1
        elif nfree:
            if nfree == total:
                empty_kept += 1
            s.add_partial(page, DEACTIVATE_TO_TAIL_POS)
        else:
            s.add_full(page)
    _mark_prefilled(s, OBJ_FREE)
    return reclaimed, freed


def _rebuild_slab(s: KmemCache, page: i64) -> i64:
    """The slab's freelist from its objects' states (address order), counters recomputed,
    unfrozen.  Returns the free count, or -(free | reclaimed << 16) when some objects that a
    dead operation had taken were made free again."""
    base: i64 = page << PAGE_SHIFT
    n: i64 = page_objects(s, page)
    i: i64
    obj: i64
    sb: cython.int
    head: i64 = 0
    nfree: i64 = 0
    reclaimed: i64 = 0
    shared: cython.bint = s.seg.hdr[H_OWNER_OFF] != 0
    i = n - 1
    while i >= 0:
        obj = base + i * s.size
        sb = s.state[obj >> 3]
        if sb == OBJ_LIVE and shared and s.seg.owner[obj >> 3] == 0:
            sb = OBJ_FREE                         # taken by an operation that never returned
            reclaimed += 1
        if sb == OBJ_FREE or sb == OBJ_FREEING:
            s.state[obj >> 3] = OBJ_FREE
            set_freepointer(s, obj, head)
            head = obj
            nfree += 1
        i -= 1
    s.pm[page * PM_STRIDE + PM_FREELIST] = head
    s.pm[page * PM_STRIDE + PM_COUNTERS] = (n - nfree) | (n << OBJECTS_SHIFT)
    if reclaimed:
        return -(nfree | (reclaimed << 16))
    return nfree


def _mark_prefilled(s: KmemCache, mark: cython.int) -> None:
    """Objects in prefilled sheaves held by live processes: set their state to ``mark``
    (PREFILL_MARK keeps them out of the rebuilt freelists; OBJ_FREE restores them)."""
    sh: i64 = s.desc[s.d + D_PREFILLED]
    n: i64 = s.desc[s.d + D_NR_SHEAVES] + 1
    k: i64
    while sh and n > 0:
        for k in range(s.meta[sh + SH_SIZE]):
            s.state[s.meta[sh + SH_OBJECTS + k] >> 3] = mark
        sh = s.meta[sh + SH_NEXT]
        n -= 1


# =============================================================================================
# Seats, slots, orphans
# =============================================================================================

def _release_seats(seg: Segment) -> None:
    seat: i64
    owner: i64
    for seat in range(NR_SEATS):
        owner = seg.hdr[H_SEATS + seat]
        if owner and not alive(owner):
            seg.hdr[H_SEATS + seat] = 0
            seg.hdr[H_SEAT_GATE + seat] = 0


def _free_closed_slots(seg: Segment, live: dict) -> None:
    slot: i64
    p: i64
    for slot in range(1, MAX_PROCS):
        p = H_PROCS + slot * PROC_STRIDE
        if seg.hdr[p + P_STATE] == PS_CLOSED and not live.get(slot):
            procs.proc_free_slots(seg, [slot])


def object_owners(seg: Segment, caches: list) -> dict:
    """Live objects (and large blocks) per owner slot: {slot: count}."""
    counts = np.zeros(MAX_PROCS, dtype=np.int64)
    if not seg.hdr[H_OWNER_OFF]:
        return {}
    for s in caches:
        _count_live(s, counts)
    _count_large(seg, counts)
    return {slot: int(n) for slot, n in enumerate(counts) if n}


def _count_live(s: KmemCache, counts) -> None:
    page: i64
    i: i64
    obj: i64
    for page in _slabs_of(s):
        for i in range(page_objects(s, page)):
            obj = (page << PAGE_SHIFT) + i * s.size
            if s.state[obj >> 3] == OBJ_LIVE:
                counts[s.seg.owner[obj >> 3] & (MAX_PROCS - 1)] += 1


def _count_large(seg: Segment, counts) -> None:
    page: i64 = 1
    flags: i64
    while page < seg.nr_pages:
        flags = seg.pm[page * PM_STRIDE + PM_FLAGS]
        if seg.pm[page * PM_STRIDE + PM_HEAD] == page and flags & PG_HEAD:
            if flags & PG_LARGE and seg.state[page << (PAGE_SHIFT - 3)] == OBJ_LIVE:
                counts[seg.owner[page << (PAGE_SHIFT - 3)] & (MAX_PROCS - 1)] += 1
            page += 1 << ((flags >> ORDER_SHIFT) & ORDER_MASK)
        else:
            page += 1


def orphans(seg: Segment, caches: list) -> dict:
    """Live objects and large blocks whose allocating process died: {pid: uint64 array}, for
    the dead processes that still have some."""
    dead = {slot: procs.proc_pid(seg, slot) for slot in range(1, MAX_PROCS)
            if procs.proc_is_dead(seg, slot)}
    out = {pid: [] for pid in dead.values()}
    if not dead or not seg.hdr[H_OWNER_OFF]:
        return {}
    page: i64
    i: i64
    obj: i64
    slot: i64
    s: KmemCache
    for s in caches:
        for page in _slabs_of(s):
            for i in range(page_objects(s, page)):
                obj = (page << PAGE_SHIFT) + i * s.size
                if s.state[obj >> 3] == OBJ_LIVE:
                    slot = s.seg.owner[obj >> 3]
                    if slot in dead:
                        out[dead[slot]].append(obj)
    page = 1
    while page < seg.nr_pages:
        flags: i64 = seg.pm[page * PM_STRIDE + PM_FLAGS]
        if seg.pm[page * PM_STRIDE + PM_HEAD] == page and flags & PG_HEAD:
            if flags & PG_LARGE and seg.state[page << (PAGE_SHIFT - 3)] == OBJ_LIVE:
                slot = seg.owner[page << (PAGE_SHIFT - 3)]
                if slot in dead:
                    out[dead[slot]].append(page << PAGE_SHIFT)
            page += 1 << ((flags >> ORDER_SHIFT) & ORDER_MASK)
        else:
            page += 1
    return {pid: np.array(sorted(v), dtype=np.uint64) for pid, v in out.items() if v}
