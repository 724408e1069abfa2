"""The SLUB slab core: mm/slub.c (v4.4 era) over a flat arena.

Design (as mm/slub.c's header, adapted)
---------------------------------------
A cache hands out objects of one size from *slabs*: blocks of ``2**order`` pages cut into
``objects`` slots of ``size`` bytes.  A free object holds the address of the next free object
of its slab at ``offset`` (the *free pointer*), so freelists live inside the objects themselves.
Each logical cpu owns one *cpu slab* (``c.page``) whose free objects sit on the lockless per-cpu
freelist ``c.freelist``, versioned by ``c.tid``; alloc and free on the cpu slab are one swap of
the pair ``(c.freelist, c.tid)`` (``this_cpu_cmpxchg_double``).  Frees into other slabs go to the
slab's own ``page.freelist``, swapped together with ``page.counters`` (``cmpxchg_double_slab``,
a locked cmpxchg16b): the expensive operation the detached-freelist bulk free pays once per slab
instead of once per object.

Lock order
----------
  1. cpu context (the kernel disables IRQs / preemption; pyslub's core runs under the GIL, so a
     cpu's record is only touched by the thread running as that cpu -- see ``Memory.on_cpu``)
  2. node->list_lock (``take_list_lock``)
  3. slab_lock (implicit: ``cmpxchg_double_slab`` swaps freelist+counters atomically)

What protects what
------------------
* ``page.freelist``, ``page.counters`` {inuse, objects, frozen}: changed only through
  ``cmpxchg_double_slab``.  ``inuse`` counts objects NOT on page.freelist (allocated, or on a
  cpu freelist).  ``frozen`` = owned by a cpu (its cpu slab, or on its cpu partial list in
  v4.4); a frozen slab is on no node list and list management leaves it alone.
* ``c.freelist``, ``c.tid``: changed only through ``this_cpu_cmpxchg`` (fast paths) or inside the
  cpu's own slow paths.  All objects on ``c.freelist`` belong to ``c.page``.
* ``n.partial``, ``n.nr_partial``, ``n.full`` and the list links of slabs on them:
  ``list_lock``.

States of a slab
----------------
  cpu slab (frozen)  --deactivate-->  node partial | full (on no list) | freed
  cpu partial (frozen, v4.4) --unfreeze_partials--> node partial | freed
  node partial  --get_partial_node--> cpu slab / cpu partial
  full  --first free (__slab_free)--> cpu partial (frozen) | node partial (no cpu partial)

Deviations from the kernel (each also noted where it happens)
-------------------------------------------------------------
* One NUMA node; no pfmemalloc; no IRQs: "IRQ off" sections are plain code under the GIL.
* ``__slab_free`` / ``___slab_alloc`` are ``slab_free_slowpath`` / ``slab_alloc_slowpath``
  (Python mangles double-underscore names); ``do_slab_free`` is ``slab_free()`` of v4.4 (the
  name modern kernels use for the same function).
* Every free pointer loaded from object memory is checked (``get_freepointer_safe``: it must be
  an object slot of the same slab): a corrupted freelist is reported in ``reports`` and treated
  as its end instead of crashing.  List walks are bounded by ``objects``.
* Debug flags (F, Z, P, U) change the layout and the paths exactly as v4.4 does (no cpu partial
  lists, every free through the locked slow path, one object per slow-path allocation, the full
  list kept for U); of their runtime checks only F's exist yet (invalid pointers, double frees:
  ``free_debug_processing``), and P fills new slabs with POISON_INUSE.
* pyslub counts three extra events (cmpxchg_double_cpu, cmpxchg_double_slab, list_lock).
"""

import mmap
import operator
import sys

import cython

if cython.compiled:
    from cython.cimports.cpython.object import PyObject_GenericSetAttr
else:
    from pyslub._layout import *  # noqa: F403 (C enums when compiled: _layout.pxd)
    from pyslub._prim import barrier, cmpxchg_double, this_cpu_cmpxchg_double

    def get_freepointer(s, obj):
        return s.words[(obj + s.offset) >> 3]

    def set_freepointer(s, obj, fp):
        s.words[(obj + s.offset) >> 3] = fp

    def virt_to_head_page(s, addr):
        return s.pm[(addr >> PAGE_SHIFT) * PM_STRIDE + PM_HEAD]

    def this_cpu(s):
        return s.pa.cur_cpu * CPU_STRIDE

    def stat(s, c, item):
        s.cpu_slab[c + C_STAT + item] += 1

    def next_tid(s, tid):
        return tid + s.tid_step

    def page_objects(s, page):
        return (s.pm[page * PM_STRIDE + PM_COUNTERS] >> OBJECTS_SHIFT) & OBJECTS_MASK

    def page_addr(page):
        return page << PAGE_SHIFT

    def object_page(s, addr):
        if addr == 0:
            return BAD_NULL
        if addr < 0 or addr >= s.arena_bytes:
            return BAD_OUTSIDE
        page = s.pm[(addr >> PAGE_SHIFT) * PM_STRIDE + PM_HEAD]
        r = page * PM_STRIDE
        if page == 0 or not (s.pm[r + PM_FLAGS] & PG_SLAB):
            return BAD_NOT_SLAB
        if s.pm[r + PM_SLAB_CACHE] != s.id:
            return BAD_OTHER_CACHE
        off = addr - (page << PAGE_SHIFT)
        idx = obj_to_index(s, off)
        if idx * s.size != off or idx >= ((s.pm[r + PM_COUNTERS] >> OBJECTS_SHIFT)
                                           & OBJECTS_MASK):
            return BAD_BOUNDARY
        return page

    def obj_to_index(s, off):
        return (off * s.reciprocal_size + RECIPROCAL_HALF) >> RECIPROCAL_SHIFT

    def bad_freepointer(s, fp, base, span):
        off = fp - base
        return fp != 0 and (off < 0 or off >= span or obj_to_index(s, off) * s.size != off)

    def cmpxchg_double_slab(s, page, old_fl, old_cnt, new_fl, new_cnt):
        c = this_cpu(s)
        stat(s, c, CMPXCHG_DOUBLE_SLAB)
        if cmpxchg_double(s.pm, page * PM_STRIDE + PM_FREELIST, old_fl, old_cnt, new_fl,
                          new_cnt):
            return True
        stat(s, c, CMPXCHG_DOUBLE_FAIL)
        return False

    def this_cpu_cmpxchg(s, c, old_fl, old_tid, new_fl, new_tid):
        stat(s, c, CMPXCHG_DOUBLE_CPU)
        return this_cpu_cmpxchg_double(s.cpu_slab, c + C_FREELIST, old_fl, old_tid, new_fl,
                                       new_tid)

    def get_freepointer_safe(s, obj, page):
        fp = s.words[(obj + s.offset) >> 3]
        if bad_freepointer(s, fp, page << PAGE_SHIFT,
                           ((s.pm[page * PM_STRIDE + PM_COUNTERS] >> OBJECTS_SHIFT)
                            & OBJECTS_MASK) * s.size):
            return s.freepointer_corrupt(obj, fp, page)
        return fp

from pyslub._layout import EXTRA_STAT_NAMES, FREE_BULK_STRATEGIES, STAT_NAMES  # noqa: E402
from pyslub.errors import SlabError  # noqa: E402
from pyslub.sizing import reciprocal_value  # noqa: E402


@cython.cfunc
@cython.exceptval(check=True)
def address_arg(addr: object) -> i64:
    """An address argument as a word: ints and anything with ``__index__`` (numpy integers),
    never floats (TypeError); values that do not fit 64 bits become -1, i.e. outside."""
    if type(addr) is not int:
        addr = operator.index(addr)
    a: i64
    try:
        a = addr
    except OverflowError:
        a = -1
    return a


# why an address is not an object of this cache (check_free_addr() < 0)
BAD_REASONS = {
    BAD_NULL: "NULL pointer",
    BAD_OUTSIDE: "outside the arena",
    BAD_NOT_SLAB: "not on a slab page",
    BAD_OTHER_CACHE: "on a slab of another cache",
    BAD_BOUNDARY: "not on an object boundary",
}



def _roundup_pow_of_two(n):
    p = 1
    while p < n:
        p <<= 1
    return p


@cython.cclass
class KmemCache:
    """One slab cache (``struct kmem_cache``).  Create it with ``Memory.create_cache``."""

    def __cinit__(self, pa, cache_id, name, geometry):
        # Set up in __cinit__, which tp_new always runs: no instance can exist with its
        # memoryviews unset (the compiled core does not check them on every access).
        self.dead = False
        self.pa = pa
        self.words = pa.words
        self.pm = pa.pm
        self.nr_cpus = pa.nr_cpus
        self.cpu_mem = mmap.mmap(-1, max(PAGE_SIZE, pa.nr_cpus * CPU_STRIDE * 8))
        self.cpu_slab = memoryview(self.cpu_mem).cast("B").cast("q")
        self.name = name
        self.id = cache_id
        g = geometry
        self.debug = bool(g.flags & SLAB_DEBUG_FLAGS)
        # v4.4: any debug flag disables the cmpxchg_double fast publish (slab_lock instead)
        self.flags = g.flags if self.debug else g.flags | CMPXCHG_DOUBLE
        self.object_size = g.object_size
        self.size = g.size
        self.align = g.align
        self.offset = g.offset
        self.inuse = g.inuse
        self.order = g.order
        self.objects = g.objects
        self.min_order = g.min_order
        self.min_objects = g.min_objects
        self.min_partial = g.min_partial
        self.cpu_partial = g.cpu_partial
        self.reciprocal_size = reciprocal_value(g.size)
        self.arena_bytes = pa.arena_bytes
        self.tid_step = _roundup_pow_of_two(pa.nr_cpus)
        self.nr_partial = 0
        self.partial_head = 0
        self.partial_tail = 0
        self.full_head = 0
        self.full_tail = 0
        self.nr_slabs = 0
        self.total_objects = 0
        self.list_lock = 0
        self.fb_strategy = FB_LOOKAHEAD
        self.lookahead = 3
        self.recorder = None
        self.reports = []
        for cpu in range(pa.nr_cpus):
            self.cpu_slab[cpu * CPU_STRIDE + C_TID] = cpu      # init_kmem_cache_cpus: tid = cpu

    def __init__(self, *args):
        if not cython.compiled:                   # plain Python has no __cinit__
            KmemCache.__cinit__(self, *args)

    # =========================================================================================
    # Tunables (the writable sysfs files) go through __setattr__, the rest is read-only.
    # =========================================================================================

    def __setattr__(self, name, value):
        if name in ("min_partial", "cpu_partial", "lookahead"):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")
            if name == "cpu_partial" and value and self.debug:
                raise ValueError("cpu_partial must be 0 for a debug cache (no cpu partial lists)")
            if name == "lookahead" and value < 2:
                # v4.4 stops at the depth-th foreign object *before* noting the first one as
                # the resume point: with depth 1 the rest of the array would never be freed
                raise ValueError("lookahead must be >= 2")
            if name == "cpu_partial":
                self.flush_all()                 # cpu_partial_store(): flush_all(s)
        elif name == "free_bulk_strategy":
            if value not in FREE_BULK_STRATEGIES:
                raise ValueError(f"unknown free_bulk strategy {value!r}; "
                                 f"choose one of {FREE_BULK_STRATEGIES}")
            name = "fb_strategy"
            value = FREE_BULK_STRATEGIES.index(value)
        if cython.compiled:
            if name == "min_partial":
                self.min_partial = value
            elif name == "cpu_partial":
                self.cpu_partial = value
            elif name == "lookahead":
                self.lookahead = value
            elif name == "fb_strategy":
                self.fb_strategy = value
            else:
                PyObject_GenericSetAttr(self, name, value)
        else:
            # plain Python cannot make the other attributes read-only: refuse writes that do
            # not come from pyslub's own code, as the compiled class does
            caller = sys._getframe(1).f_globals.get("__name__", "")
            if name not in ("min_partial", "cpu_partial", "lookahead", "fb_strategy",
                            "recorder") and not caller.startswith("pyslub."):
                raise AttributeError(f"attribute {name!r} of KmemCache is read-only")
            object.__setattr__(self, name, value)

    @property
    def free_bulk_strategy(self):
        """Default strategy of ``free_bulk`` (one of ``pyslub.FREE_BULK_STRATEGIES``)."""
        return FREE_BULK_STRATEGIES[self.fb_strategy]

    # =========================================================================================
    # Primitives: freelist words and the two pair swaps
    # =========================================================================================

    def freepointer_corrupt(self, obj, fp, page):
        """A free pointer pointing outside its slab: report it, end the list there."""
        self.reports.append(
            f"BUG {self.name}: Freepointer corrupt: object 0x{obj:x} (slab 0x{page_addr(page):x})"
            f" points to 0x{fp & 0xFFFFFFFFFFFFFFFF:x}; FIX {self.name}: freelist truncated,"
            " the objects after it are leaked")
        return 0

    # =========================================================================================
    # Node lists (list_lock held)
    # =========================================================================================

    def take_list_lock(self, c):
        """spin_lock(&n->list_lock).  Serialised model: a flag (+ a counted acquisition)."""
        self.list_lock = 1
        stat(self, c, LIST_LOCK)

    def release_list_lock(self):
        self.list_lock = 0

    def add_partial(self, page, tail):
        """__add_partial(): put a slab on n->partial, at the head or the tail."""
        r: i64 = page * PM_STRIDE
        self.nr_partial += 1
        if tail == DEACTIVATE_TO_TAIL_POS:
            self.pm[r + PM_NEXT] = 0
            self.pm[r + PM_PREV] = self.partial_tail
            if self.partial_tail:
                self.pm[self.partial_tail * PM_STRIDE + PM_NEXT] = page
            else:
                self.partial_head = page
            self.partial_tail = page
        else:
            self.pm[r + PM_PREV] = 0
            self.pm[r + PM_NEXT] = self.partial_head
            if self.partial_head:
                self.pm[self.partial_head * PM_STRIDE + PM_PREV] = page
            else:
                self.partial_tail = page
            self.partial_head = page

    def remove_partial(self, page):
        r: i64 = page * PM_STRIDE
        nxt: i64 = self.pm[r + PM_NEXT]
        prv: i64 = self.pm[r + PM_PREV]
        if prv:
            self.pm[prv * PM_STRIDE + PM_NEXT] = nxt
        else:
            self.partial_head = nxt
        if nxt:
            self.pm[nxt * PM_STRIDE + PM_PREV] = prv
        else:
            self.partial_tail = prv
        self.pm[r + PM_NEXT] = 0
        self.pm[r + PM_PREV] = 0
        self.nr_partial -= 1

    def add_full(self, page):
        """add_full(): the full list is kept only for SLAB_STORE_USER caches, as in the kernel."""
        if not (self.flags & SLAB_STORE_USER):
            return
        r: i64 = page * PM_STRIDE
        self.pm[r + PM_NEXT] = 0
        self.pm[r + PM_PREV] = self.full_tail
        if self.full_tail:
            self.pm[self.full_tail * PM_STRIDE + PM_NEXT] = page
        else:
            self.full_head = page
        self.full_tail = page

    def remove_full(self, page):
        if not (self.flags & SLAB_STORE_USER):
            return
        r: i64 = page * PM_STRIDE
        nxt: i64 = self.pm[r + PM_NEXT]
        prv: i64 = self.pm[r + PM_PREV]
        if prv:
            self.pm[prv * PM_STRIDE + PM_NEXT] = nxt
        else:
            self.full_head = nxt
        if nxt:
            self.pm[nxt * PM_STRIDE + PM_PREV] = prv
        else:
            self.full_tail = prv
        self.pm[r + PM_NEXT] = 0
        self.pm[r + PM_PREV] = 0

    # =========================================================================================
    # Slabs from and back to the page allocator
    # =========================================================================================

    def new_slab(self, c):
        """allocate_slab(): a frozen slab, all objects "in use", freelist in address order."""
        order: cython.int = self.order
        page: i64 = self.pa.alloc_pages(order)
        if page == 0:
            order = self.min_order                  # oo = s->min, and retry
            page = self.pa.alloc_pages(order)
            if page == 0:
                return 0
            stat(self, c, ORDER_FALLBACK)
        objects: i64 = ((PAGE_SIZE << order) // self.size)
        r: i64 = page * PM_STRIDE
        self.pm[r + PM_FLAGS] |= PG_SLAB
        self.pm[r + PM_SLAB_CACHE] = self.id
        start: i64 = page_addr(page)
        if self.flags & SLAB_POISON:                # whole slab POISON_INUSE, then objects
            self.pa.arena[start:start + (PAGE_SIZE << order)] = b"\x5a" * (PAGE_SIZE << order)
        i: i64
        p: i64 = start
        for i in range(objects - 1):  # noqa: B007 (typed C loop counter)
            set_freepointer(self, p, p + self.size)
            p += self.size
        set_freepointer(self, p, 0)
        self.pm[r + PM_FREELIST] = start
        self.pm[r + PM_COUNTERS] = objects | (objects << OBJECTS_SHIFT) | FROZEN_BIT
        self.nr_slabs += 1                          # inc_slabs_node()
        self.total_objects += objects
        return page

    def discard_slab(self, page):
        """dec_slabs_node() + __free_slab(): the pages go back to the buddy allocator."""
        r: i64 = page * PM_STRIDE
        self.nr_slabs -= 1
        self.total_objects -= page_objects(self, page)
        order: cython.int = (self.pm[r + PM_FLAGS] >> ORDER_SHIFT) & ORDER_MASK
        self.pm[r + PM_FREELIST] = 0
        self.pm[r + PM_COUNTERS] = 0
        self.pm[r + PM_SLAB_CACHE] = 0
        self.pm[r + PM_PAGES] = 0
        self.pa.free_pages(page, order)

    # =========================================================================================
    # Allocation
    # =========================================================================================

    def slab_alloc_node(self):
        """slab_alloc_node(): the lockless fast path; returns an object address or 0."""
        c: i64 = this_cpu(self)
        tid: i64
        obj: i64
        page: i64
        nxt: i64
        while True:
            tid = self.cpu_slab[c + C_TID]
            barrier()                               # tid must be read before freelist/page
            obj = self.cpu_slab[c + C_FREELIST]
            page = self.cpu_slab[c + C_PAGE]
            if obj == 0:                            # (one node: node_match() always true)
                obj = self.slab_alloc_slowpath(c)   # __slab_alloc(): the IRQ save is implicit
                stat(self, c, ALLOC_SLOWPATH)
                return obj
            nxt = get_freepointer_safe(self, obj, page)
            if this_cpu_cmpxchg(self, c, obj, tid, nxt, next_tid(self, tid)):
                stat(self, c, ALLOC_FASTPATH)
                return obj
            stat(self, c, CMPXCHG_DOUBLE_CPU_FAIL)

    def load_freelist(self, c, page, freelist):
        """___slab_alloc's load_freelist: first object to the caller, the rest to c.freelist."""
        self.cpu_slab[c + C_FREELIST] = get_freepointer_safe(self, freelist, page)
        self.cpu_slab[c + C_TID] = next_tid(self, self.cpu_slab[c + C_TID])
        return freelist

    def slab_alloc_slowpath(self, c):
        """___slab_alloc() (v4.4): refill the cpu slab, or find / make another one."""
        page: i64 = self.cpu_slab[c + C_PAGE]
        freelist: i64
        while True:
            if page:                                # redo:
                freelist = self.cpu_slab[c + C_FREELIST]
                if freelist:
                    return self.load_freelist(c, page, freelist)
                freelist = self.get_freelist(page)
                if freelist:
                    stat(self, c, ALLOC_REFILL)
                    return self.load_freelist(c, page, freelist)
                self.cpu_slab[c + C_PAGE] = 0       # slab is full and now on no list
                stat(self, c, DEACTIVATE_BYPASS)
                page = 0
                continue
            # new_slab:
            if self.cpu_slab[c + C_PARTIAL]:
                page = self.cpu_slab[c + C_PARTIAL]
                self.cpu_slab[c + C_PAGE] = page
                self.cpu_slab[c + C_PARTIAL] = self.pm[page * PM_STRIDE + PM_NEXT]
                stat(self, c, CPU_PARTIAL_ALLOC)
                self.cpu_slab[c + C_FREELIST] = 0
                continue
            freelist = self.new_slab_objects(c)
            if freelist == 0:
                return 0                            # slab_out_of_memory()
            page = self.cpu_slab[c + C_PAGE]
            if not self.debug:
                return self.load_freelist(c, page, freelist)
            if not self.alloc_debug_processing(page, freelist):
                page = 0                            # slab failed checks: next slab needed
                continue
            # debug caches hand out one object and deactivate the rest
            self.deactivate_slab(c, page, get_freepointer_safe(self, freelist, page))
            self.cpu_slab[c + C_PAGE] = 0
            self.cpu_slab[c + C_FREELIST] = 0
            return freelist

    def get_freelist(self, page):
        """Take page.freelist for the cpu: inuse = objects, frozen = (freelist != NULL)."""
        r: i64 = page * PM_STRIDE
        fl: i64
        counters: i64
        new: i64
        while True:
            fl = self.pm[r + PM_FREELIST]
            counters = self.pm[r + PM_COUNTERS]
            new = (counters & ~(INUSE_MASK | FROZEN_BIT)) | ((counters >> OBJECTS_SHIFT)
                                                               & OBJECTS_MASK)
            if fl:
                new |= FROZEN_BIT
            if cmpxchg_double_slab(self, page, fl, counters, 0, new):
                return fl

    def new_slab_objects(self, c):
        """A cpu slab from the node partial list, or a fresh slab; returns its freelist."""
        freelist: i64 = self.get_partial_node(c)
        if freelist:
            return freelist
        page: i64 = self.new_slab(c)
        if page == 0:
            return 0
        if self.cpu_slab[c + C_PAGE]:
            self.flush_slab(c)
        r: i64 = page * PM_STRIDE
        freelist = self.pm[r + PM_FREELIST]
        self.pm[r + PM_FREELIST] = 0
        stat(self, c, ALLOC_SLAB)
        self.cpu_slab[c + C_PAGE] = page
        return freelist

    def get_partial_node(self, c):
        """Take slabs off n->partial: the first becomes the cpu slab (its whole freelist is
        taken), further ones go to the cpu partial list until more than cpu_partial/2 free
        objects were gathered.  acquire_slab() is inlined.
        """
        if self.nr_partial == 0:                    # racy check before the lock, as the kernel
            return 0
        self.take_list_lock(c)
        obj: i64 = 0
        available: i64 = 0
        page: i64 = self.partial_head
        nxt: i64
        r: i64
        fl: i64
        counters: i64
        new: i64
        free: i64
        while page:
            nxt = self.pm[page * PM_STRIDE + PM_NEXT]
            r = page * PM_STRIDE
            fl = self.pm[r + PM_FREELIST]
            counters = self.pm[r + PM_COUNTERS]
            free = ((counters >> OBJECTS_SHIFT) & OBJECTS_MASK) - (counters & INUSE_MASK)
            new = counters | FROZEN_BIT
            if obj == 0:                            # acquire_slab(mode=1): take the freelist
                new = (new & ~INUSE_MASK) | ((counters >> OBJECTS_SHIFT) & OBJECTS_MASK)
                if not cmpxchg_double_slab(self, page, fl, counters, 0, new):
                    break
            elif not cmpxchg_double_slab(self, page, fl, counters, fl, new):
                break
            self.remove_partial(page)
            if obj == 0:
                self.cpu_slab[c + C_PAGE] = page
                stat(self, c, ALLOC_FROM_PARTIAL)
                obj = fl
            else:
                self.put_cpu_partial(c, page, False)
                stat(self, c, CPU_PARTIAL_NODE)
            available += free
            if self.cpu_partial == 0 or available > self.cpu_partial // 2:
                break
            page = nxt
        self.release_list_lock()
        return obj

    def alloc_debug_processing(self, page, obj):
        """Consistency checks on the object handed out by a debug cache (F).

        On failure the kernel marks every object of the slab used and takes another slab.
        """
        if not (self.flags & SLAB_CONSISTENCY_CHECKS):
            return True
        if self.check_free_addr(obj) == page:
            return True
        self.reports.append(f"BUG {self.name}: Freelist Pointer check fails: object 0x{obj:x}"
                            f" in slab 0x{page_addr(page):x}; FIX {self.name}: Marking all"
                            " objects used")
        r: i64 = page * PM_STRIDE
        self.pm[r + PM_COUNTERS] = ((self.pm[r + PM_COUNTERS] & ~INUSE_MASK)
                                    | page_objects(self, page))
        self.pm[r + PM_FREELIST] = 0
        return False

    # =========================================================================================
    # Deactivation and the cpu partial list
    # =========================================================================================

    def deactivate_slab(self, c, page, freelist):
        """deactivate_slab() (v4.4, two stages): give a cpu slab back to the node."""
        r: i64 = page * PM_STRIDE
        tail: cython.int = DEACTIVATE_TO_HEAD_POS
        if self.pm[r + PM_FREELIST]:
            stat(self, c, DEACTIVATE_REMOTE_FREES)
            tail = DEACTIVATE_TO_TAIL_POS
        prior: i64
        counters: i64
        nextfree: i64
        steps: i64 = 0
        limit: i64 = page_objects(self, page)
        # stage 1: all but the last cpu-freelist object back to page.freelist, one swap each
        while freelist:
            nextfree = get_freepointer_safe(self, freelist, page)
            if nextfree == 0:
                break
            steps += 1
            if steps > limit:                       # a cycle: double free into the cpu list
                self.reports.append(f"BUG {self.name}: Freelist cycle detected in cpu freelist"
                                    f" of slab 0x{page_addr(page):x}; FIX {self.name}:"
                                    " freelist truncated")
                freelist = 0
                break
            while True:
                prior = self.pm[r + PM_FREELIST]
                counters = self.pm[r + PM_COUNTERS]
                set_freepointer(self, freelist, prior)
                if cmpxchg_double_slab(self, page, prior, counters, freelist,
                                            (counters & ~INUSE_MASK)
                                            | (((counters & INUSE_MASK) - 1) & INUSE_MASK)):
                    break
            freelist = nextfree
        # stage 2: unfreeze, with the last object, and put the slab where it belongs
        m: cython.int = M_NONE
        lm: cython.int = M_NONE
        locked: cython.bint = False
        old_fl: i64
        new_fl: i64
        new: i64
        while True:
            old_fl = self.pm[r + PM_FREELIST]
            counters = self.pm[r + PM_COUNTERS]
            new = counters
            if freelist:
                new = (new & ~INUSE_MASK) | (((new & INUSE_MASK) - 1) & INUSE_MASK)
                set_freepointer(self, freelist, old_fl)
                new_fl = freelist
            else:
                new_fl = old_fl
            new &= ~FROZEN_BIT
            if (new & INUSE_MASK) == 0 and self.nr_partial >= self.min_partial:
                m = M_FREE
            elif new_fl:
                m = M_PARTIAL
                if not locked:
                    locked = True
                    self.take_list_lock(c)
            else:
                m = M_FULL
                if self.debug and not locked:
                    locked = True
                    self.take_list_lock(c)
            if lm != m:
                if lm == M_PARTIAL:
                    self.remove_partial(page)
                elif lm == M_FULL:
                    self.remove_full(page)
                if m == M_PARTIAL:
                    self.add_partial(page, tail)
                    stat(self, c, DEACTIVATE_TO_TAIL if tail else DEACTIVATE_TO_HEAD)
                elif m == M_FULL:
                    stat(self, c, DEACTIVATE_FULL)
                    self.add_full(page)
            lm = m
            if cmpxchg_double_slab(self, page, old_fl, counters, new_fl, new):
                break
        if locked:
            self.release_list_lock()
        if m == M_FREE:
            stat(self, c, DEACTIVATE_EMPTY)
            self.discard_slab(page)
            stat(self, c, FREE_SLAB)

    def flush_slab(self, c):
        stat(self, c, CPUSLAB_FLUSH)
        self.deactivate_slab(c, self.cpu_slab[c + C_PAGE], self.cpu_slab[c + C_FREELIST])
        self.cpu_slab[c + C_TID] = next_tid(self, self.cpu_slab[c + C_TID])
        self.cpu_slab[c + C_PAGE] = 0
        self.cpu_slab[c + C_FREELIST] = 0

    def put_cpu_partial(self, c, page, drain):
        """Push a frozen slab on this cpu's partial list; drain the list to the node first when
        it already holds more than cpu_partial free objects.
        """
        oldpage: i64 = self.cpu_slab[c + C_PARTIAL]
        pages: i64 = 0
        pobjects: i64 = 0
        if oldpage:
            pages = self.pm[oldpage * PM_STRIDE + PM_PAGES] & PAGES_MASK
            pobjects = self.pm[oldpage * PM_STRIDE + PM_PAGES] >> 32
            if drain and pobjects > self.cpu_partial:
                self.unfreeze_partials(c)           # IRQs off around it in the kernel
                oldpage = 0
                pages = 0
                pobjects = 0
                stat(self, c, CPU_PARTIAL_DRAIN)
        r: i64 = page * PM_STRIDE
        pages += 1
        pobjects += page_objects(self, page) - (self.pm[r + PM_COUNTERS] & INUSE_MASK)
        self.pm[r + PM_PAGES] = pages | (pobjects << 32)
        self.pm[r + PM_NEXT] = oldpage
        self.pm[r + PM_PREV] = 0
        self.cpu_slab[c + C_PARTIAL] = page         # this_cpu_cmpxchg(c->partial, old, page)
        if self.cpu_partial == 0:
            self.unfreeze_partials(c)

    def unfreeze_partials(self, c):
        """Move every slab of this cpu's partial list to the node list (or free it)."""
        page: i64
        r: i64
        fl: i64
        counters: i64
        discard: i64 = 0
        locked: cython.bint = False
        while self.cpu_slab[c + C_PARTIAL]:
            page = self.cpu_slab[c + C_PARTIAL]
            r = page * PM_STRIDE
            self.cpu_slab[c + C_PARTIAL] = self.pm[r + PM_NEXT]
            if not locked:
                locked = True
                self.take_list_lock(c)
            while True:
                fl = self.pm[r + PM_FREELIST]
                counters = self.pm[r + PM_COUNTERS]
                if cmpxchg_double_slab(self, page, fl, counters, fl, counters & ~FROZEN_BIT):
                    break
            self.pm[r + PM_PAGES] = 0
            if (counters & INUSE_MASK) == 0 and self.nr_partial >= self.min_partial:
                self.pm[r + PM_NEXT] = discard
                discard = page
            else:
                self.add_partial(page, DEACTIVATE_TO_TAIL_POS)
                stat(self, c, FREE_ADD_PARTIAL)
        if locked:
            self.release_list_lock()
        while discard:
            page = discard
            discard = self.pm[page * PM_STRIDE + PM_NEXT]
            stat(self, c, DEACTIVATE_EMPTY)
            self.discard_slab(page)
            stat(self, c, FREE_SLAB)

    # =========================================================================================
    # Free
    # =========================================================================================

    def do_slab_free(self, page, head, tail, cnt):
        """slab_free() (v4.4 after the bulk rework): free the list head..tail of ``cnt`` objects
        of one slab.  ``tail == 0`` means the single object ``head``.
        """
        c: i64 = this_cpu(self)
        tail_obj: i64 = tail if tail else head
        tid: i64
        fl: i64
        if self.recorder is not None:
            self.record(page, head, cnt, page == self.cpu_slab[c + C_PAGE])
        while True:
            tid = self.cpu_slab[c + C_TID]
            barrier()
            if page == self.cpu_slab[c + C_PAGE]:
                fl = self.cpu_slab[c + C_FREELIST]
                set_freepointer(self, tail_obj, fl)
                if this_cpu_cmpxchg(self, c, fl, tid, head, next_tid(self, tid)):
                    stat(self, c, FREE_FASTPATH)    # once per call, not per object (v4.4)
                    return
                stat(self, c, CMPXCHG_DOUBLE_CPU_FAIL)
            else:
                self.slab_free_slowpath(c, page, head, tail_obj, cnt)
                return

    def slab_free_slowpath(self, c, page, head, tail, cnt):
        """__slab_free() (v4.4): splice head..tail in front of page.freelist with one swap."""
        stat(self, c, FREE_SLOWPATH)
        if self.debug:
            self.take_list_lock(c)                  # free_debug_processing() returns locked ...
            ok: cython.bint = self.free_debug_processing(page, head, tail, cnt)
            self.release_list_lock()                # ... and the loop drops it at once
            if not ok:
                return                              # objects leaked on purpose, as the kernel
        r: i64 = page * PM_STRIDE
        locked: cython.bint = False
        prior: i64
        counters: i64
        new: i64
        was_frozen: i64
        inuse: i64
        has_cpu_partial: cython.bint = not self.debug
        while True:
            if locked:
                self.release_list_lock()
                locked = False
            prior = self.pm[r + PM_FREELIST]
            counters = self.pm[r + PM_COUNTERS]
            set_freepointer(self, tail, prior)
            was_frozen = counters & FROZEN_BIT
            inuse = ((counters & INUSE_MASK) - cnt) & INUSE_MASK   # wraps on a double free
            new = (counters & ~INUSE_MASK) | inuse
            if (inuse == 0 or prior == 0) and not was_frozen:
                if has_cpu_partial and prior == 0:
                    new |= FROZEN_BIT               # first free into a full slab: freeze it
                else:
                    locked = True                   # speculative: a list change is needed
                    self.take_list_lock(c)
            if cmpxchg_double_slab(self, page, prior, counters, head, new):
                break
        if not locked:
            if (new & FROZEN_BIT) and not was_frozen:
                self.put_cpu_partial(c, page, True)
                stat(self, c, CPU_PARTIAL_FREE)
            if was_frozen:
                stat(self, c, FREE_FROZEN)
            return
        if inuse == 0 and self.nr_partial >= self.min_partial:
            # slab_empty:
            if prior:
                self.remove_partial(page)
                stat(self, c, FREE_REMOVE_PARTIAL)
            else:
                self.remove_full(page)
            self.release_list_lock()
            stat(self, c, FREE_SLAB)
            self.discard_slab(page)
            return
        if not has_cpu_partial and prior == 0:      # was full, now partial
            self.remove_full(page)
            self.add_partial(page, DEACTIVATE_TO_TAIL_POS)
            stat(self, c, FREE_ADD_PARTIAL)
        self.release_list_lock()

    def free_debug_processing(self, page, head, tail, cnt):
        """Consistency checks (F) on every object of a list about to be freed.

        Walks ``cnt`` objects from head: each must lie on this slab at an object boundary, and
        be neither on a freelist of the slab nor earlier in the same list ("Object already
        free": a double free); the walk must end at ``tail``.  On failure nothing is freed
        (leaked on purpose, as the kernel does) and a report is added.
        """
        if not (self.flags & SLAB_CONSISTENCY_CHECKS):
            return True
        seen = set()
        obj = head
        for n in range(cnt):
            if n:
                obj = get_freepointer(self, obj)
            if self.check_free_addr(obj) != page:
                self.reports.append(f"BUG {self.name}: Invalid object pointer 0x{obj:x};"
                                    f" FIX {self.name}: Object at 0x{head:x} not freed")
                return False
            if obj in seen or self.on_freelist(page, obj):
                self.reports.append(f"BUG {self.name}: Object already free: 0x{obj:x}"
                                    f" (double free); FIX {self.name}: Object at 0x{head:x}"
                                    " not freed")
                return False
            seen.add(obj)
        if obj != tail:
            self.reports.append(f"BUG {self.name}: Bulk freelist count({cnt}) invalid;"
                                f" FIX {self.name}: Object at 0x{head:x} not freed")
            return False
        return True

    def on_freelist(self, page, search):
        """Is ``search`` on page.freelist or (for a cpu slab) a cpu freelist?  Bounded walk."""
        limit = page_objects(self, page)
        heads = [self.pm[page * PM_STRIDE + PM_FREELIST]]
        for cpu in range(self.nr_cpus):
            if self.cpu_slab[cpu * CPU_STRIDE + C_PAGE] == page:
                heads.append(self.cpu_slab[cpu * CPU_STRIDE + C_FREELIST])
        for obj in heads:
            n = 0
            while obj and n <= limit:
                if obj == search:
                    return True
                n += 1
                obj = get_freepointer_safe(self, obj, page)
        return False

    def record(self, page, head, cnt, fast):
        """record_frees(): the list handed to the slab, walked from head, before it is linked."""
        objs = []
        obj = head
        for _ in range(cnt):
            objs.append(obj)
            if len(objs) < cnt:
                obj = get_freepointer(self, obj)
                if obj <= 0 or obj >= self.arena_bytes:
                    break
        self.recorder.append((page_addr(page), objs, "fast" if fast else "slow"))

    def check_free_addr(self, addr):
        """The slab page of ``addr`` if it is an object slot of this cache, else BAD_* (< 0)."""
        return object_page(self, addr)

    def check_addr(self, addr) -> int:
        """Python access to check_free_addr(): the slab page index, or BAD_* (< 0)."""
        return self.check_free_addr(address_arg(addr))

    def cache_free(self, addr):
        """kmem_cache_free() of a checked address; returns the page, or BAD_* and frees nothing."""
        page: i64 = self.check_free_addr(addr)
        if page > 0:
            self.do_slab_free(page, addr, 0, 1)
        return page

    # =========================================================================================
    # Public API: single objects
    # =========================================================================================

    def _check_alive(self):
        if self.dead:
            raise SlabError(f"cache {self.name!r} was destroyed")

    def alloc(self) -> int:
        """kmem_cache_alloc(): the address of a new object (MemoryError when out of memory)."""
        if self.dead:
            self._check_alive()
        obj: i64 = self.slab_alloc_node()
        if obj == 0:
            raise MemoryError(f"cache {self.name!r}: out of memory (arena exhausted)")
        return obj

    def free(self, addr) -> None:
        """kmem_cache_free(): free one object; SlabError if ``addr`` is not one of ours."""
        if self.dead:
            self._check_alive()
        nreports = len(self.reports) if self.debug else 0
        page: i64 = self.cache_free(address_arg(addr))
        if page < 0:
            raise SlabError(f"cache {self.name!r}: cannot free address {addr:#x}: "
                            f"{BAD_REASONS[page]}")
        if self.debug:
            self.raise_new_reports(nreports)

    def raise_new_reports(self, before):
        """Raise SlabError if checks since report number ``before`` refused to free objects."""
        refused = [m for m in self.reports[before:] if "not freed" in m]
        if refused:
            raise SlabError(f"cache {self.name!r}: " + "; ".join(refused))

    def view(self, addr) -> memoryview:
        """A writable memoryview of the object's ``object_size`` bytes."""
        self._check_alive()
        a: i64 = address_arg(addr)
        page: i64 = self.check_free_addr(a)
        if page < 0:
            raise SlabError(f"cache {self.name!r}: no object at {addr:#x}: {BAD_REASONS[page]}")
        return memoryview(self.pa.arena)[a:a + self.object_size]

    # =========================================================================================
    # Public API: state
    # =========================================================================================

    @property
    def info(self) -> dict:
        """Geometry and tunables, with the sysfs names."""
        return {
            "name": self.name, "object_size": self.object_size, "size": self.size,
            "slab_size": self.size, "align": self.align, "offset": self.offset,
            "inuse": self.inuse, "order": self.order, "objs_per_slab": self.objects,
            "min_order": self.min_order, "min_objects": self.min_objects,
            "min_partial": self.min_partial, "cpu_partial": self.cpu_partial,
            "flags": self.flags, "nr_cpus": self.nr_cpus,
            "free_bulk_strategy": self.free_bulk_strategy, "lookahead": self.lookahead,
        }

    def stats(self, cpu=None) -> dict:
        """SLUB_STATS counters (sysfs names) summed over cpus, or of one cpu, plus pyslub's own
        cmpxchg_double_cpu / cmpxchg_double_slab / list_lock counts."""
        if cpu is not None and not (0 <= cpu < self.nr_cpus):
            raise ValueError(f"cpu {cpu} outside 0..{self.nr_cpus - 1}")
        cpus = range(self.nr_cpus) if cpu is None else (cpu,)
        names = STAT_NAMES + EXTRA_STAT_NAMES
        return {name: sum(int(self.cpu_slab[k * CPU_STRIDE + C_STAT + i]) for k in cpus)
                for i, name in enumerate(names)}

    def reset_stats(self) -> None:
        """Clear every counter (writing 0 to the sysfs stat files)."""
        for k in range(self.nr_cpus):
            for i in range(NR_STATS):
                self.cpu_slab[k * CPU_STRIDE + C_STAT + i] = 0

    def cpu_state(self, cpu) -> dict:
        """kmem_cache_cpu of ``cpu``: freelist, tid, page (slab address) and partial slabs."""
        if not (0 <= cpu < self.nr_cpus):
            raise ValueError(f"cpu {cpu} outside 0..{self.nr_cpus - 1}")
        c = cpu * CPU_STRIDE
        partial = []
        page = self.cpu_slab[c + C_PARTIAL]
        while page and len(partial) <= self.nr_slabs:
            partial.append(page_addr(page))
            page = self.pm[page * PM_STRIDE + PM_NEXT]
        page = self.cpu_slab[c + C_PAGE]
        return {"freelist": int(self.cpu_slab[c + C_FREELIST]),
                "tid": int(self.cpu_slab[c + C_TID]),
                "page": page_addr(page) if page else 0, "partial": partial}

    def node_partial(self) -> list:
        """Slab addresses on the node partial list, head first."""
        out = []
        page = self.partial_head
        while page and len(out) <= self.nr_slabs:
            out.append(page_addr(page))
            page = self.pm[page * PM_STRIDE + PM_NEXT]
        return out

    def slab_state(self, slab) -> dict:
        """freelist, inuse, objects, frozen of the slab starting at address ``slab``."""
        page = slab >> PAGE_SHIFT
        if (slab & (PAGE_SIZE - 1) or not (0 < page < self.pa.nr_pages)
                or self.pm[page * PM_STRIDE + PM_SLAB_CACHE] != self.id
                or not (self.pm[page * PM_STRIDE + PM_FLAGS] & PG_SLAB)):
            raise SlabError(f"{slab:#x} is not a slab of cache {self.name!r}")
        counters = self.pm[page * PM_STRIDE + PM_COUNTERS]
        return {"freelist": int(self.pm[page * PM_STRIDE + PM_FREELIST]),
                "inuse": counters & INUSE_MASK,
                "objects": (counters >> OBJECTS_SHIFT) & OBJECTS_MASK,
                "frozen": bool(counters & FROZEN_BIT)}

    def slab_of(self, addr) -> int:
        """Address of the slab holding object ``addr`` (SlabError if it is not ours)."""
        page: i64 = self.check_free_addr(address_arg(addr))
        if page < 0:
            raise SlabError(f"cache {self.name!r}: {addr:#x} is {BAD_REASONS[page]}")
        return page_addr(page)

    def slabs(self) -> list:
        """Every slab of this cache (addresses, ascending), found from the page records."""
        out = []
        page: i64
        r: i64
        for page in range(1, self.pa.nr_pages):
            r = page * PM_STRIDE
            if self.pm[r + PM_SLAB_CACHE] == self.id and self.pm[r + PM_FLAGS] & PG_SLAB:
                out.append(page_addr(page))
        return out

    def occupancy(self) -> dict:
        """The sysfs occupancy files: objects, objects_partial, partial, cpu_slabs, slabs,
        total_objects (v4.4 show_slab_objects semantics)."""
        partial_free = 0
        partial_inuse = 0
        for slab in self.node_partial():
            st = self.slab_state(slab)
            partial_free += st["objects"] - st["inuse"]
            partial_inuse += st["inuse"]
        cpu_slabs = 0
        for cpu in range(self.nr_cpus):
            st = self.cpu_state(cpu)
            cpu_slabs += (1 if st["page"] else 0) + len(st["partial"])
        return {"objects": self.total_objects - partial_free, "objects_partial": partial_inuse,
                "partial": self.nr_partial, "cpu_slabs": cpu_slabs, "slabs": self.nr_slabs,
                "total_objects": self.total_objects}

    def validate(self) -> list:
        """Walk every slab and return the problems found (empty when consistent)."""
        from pyslub.validate import validate_cache
        return validate_cache(self)

    # =========================================================================================
    # Public API: flush, shrink, destroy
    # =========================================================================================

    def flush_cpu(self, cpu=None) -> None:
        """__flush_cpu_slab(): deactivate the cpu slab and unfreeze the cpu partial list of
        ``cpu`` (all cpus when None), as flush_all() does."""
        self._check_alive()
        cpus = range(self.nr_cpus) if cpu is None else (cpu,)
        for k in cpus:
            if not (0 <= k < self.nr_cpus):
                raise ValueError(f"cpu {k} outside 0..{self.nr_cpus - 1}")
        saved = self.pa.cur_cpu
        try:
            for k in cpus:
                self.pa.cur_cpu = k               # the kernel runs this on each cpu (IPI)
                c = k * CPU_STRIDE
                if self.cpu_slab[c + C_PAGE]:
                    self.flush_slab(c)
                self.unfreeze_partials(c)
        finally:
            self.pa.cur_cpu = saved

    def flush_all(self):
        self.flush_cpu(None)

    def shrink(self) -> int:
        """__kmem_cache_shrink(): flush all cpus, free the empty slabs on the node partial
        list and sort the rest by fullness; returns the number of slabs freed."""
        self._check_alive()
        self.flush_all()
        c: i64 = this_cpu(self)
        freed = 0
        slabs = self.node_partial()
        for slab in slabs:
            self.remove_partial(slab >> PAGE_SHIFT)
        keep = []
        for slab in slabs:
            st = self.slab_state(slab)
            if st["inuse"] == 0:
                self.discard_slab(slab >> PAGE_SHIFT)
                stat(self, c, FREE_SLAB)
                freed += 1
            else:
                keep.append((st["objects"] - st["inuse"], slab))
        keep.sort(key=lambda t: t[0])             # fullest first: allocations fill them up
        for _, slab in keep:
            self.add_partial(slab >> PAGE_SHIFT, DEACTIVATE_TO_TAIL_POS)
        return freed

    def live_objects(self) -> int:
        """Objects allocated (not free anywhere): total minus every freelist's length."""
        self._check_alive()
        free: i64 = 0
        page: i64
        counters: i64
        for slab in self.slabs():
            counters = self.pm[(slab >> PAGE_SHIFT) * PM_STRIDE + PM_COUNTERS]
            free += ((counters >> OBJECTS_SHIFT) & OBJECTS_MASK) - (counters & INUSE_MASK)
        c: i64
        obj: i64
        n: i64
        for cpu in range(self.nr_cpus):
            c = cpu * CPU_STRIDE
            page = self.cpu_slab[c + C_PAGE]
            obj = self.cpu_slab[c + C_FREELIST]
            n = 0
            while obj and n < self.objects:
                n += 1
                obj = get_freepointer_safe(self, obj, page)
            free += n
        return self.total_objects - free

    def destroy(self) -> None:
        """kmem_cache_destroy(): refuses with SlabError while objects are alive."""
        self._check_alive()
        self.flush_all()
        live = self.live_objects()
        if live:
            raise SlabError(f"cache {self.name!r} has {live} live objects remaining"
                            " (Objects remaining on __kmem_cache_shutdown())")
        for slab in self.node_partial():
            self.remove_partial(slab >> PAGE_SHIFT)
            self.discard_slab(slab >> PAGE_SHIFT)
        for slab in self.slabs():                  # nothing else can be left, but be sure
            self.discard_slab(slab >> PAGE_SHIFT)
        self.dead = True

    def __repr__(self):
        return (f"<KmemCache {self.name!r} object_size={self.object_size} size={self.size} "
                f"order={self.order} objs_per_slab={self.objects}>")
