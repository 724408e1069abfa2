"""The SLUB slab core: mm/slub.c (v4.4 era) over a flat segment, safe for real threads.

Design (as mm/slub.c's header, adapted)
---------------------------------------
A cache hands out objects of one size from *slabs*: blocks of ``2**order`` pages cut into
``objects`` slots of ``size`` bytes.  A free object holds the address of the next free object
of its slab at ``offset`` (the *free pointer*), so freelists live inside the objects themselves.
Each logical cpu owns one *cpu slab* (``c.page``) whose free objects sit on the lockless per-cpu
freelist ``c.freelist``, versioned by ``c.tid``; alloc and free on the cpu slab are one swap of
the pair ``(c.freelist, c.tid)`` (``this_cpu_cmpxchg``).  Frees into other slabs go to the
slab's own ``page.freelist``, swapped together with ``page.counters`` (``cmpxchg_double_slab``,
a locked cmpxchg16b): the expensive operation the detached-freelist bulk free pays once per slab
instead of once per object.

Cpus are threads
----------------
A logical cpu is whatever thread runs "on" it (``Memory.on_cpu``, or the default policy), and
several threads may run as the same cpu at once, on different cores: in userspace that is what
preemption is to the kernel.  So:

* the fast paths stay tid + cmpxchg16b, and the pair swap is a *locked* cmpxchg16b (the kernel's
  ``this_cpu_cmpxchg_double`` is unlocked because only its own cpu can touch the pair);
* where the kernel disables IRQs (``___slab_alloc``, bulk alloc, the 2015 bulk frees'
  ``c->freelist`` splices, deactivation, cpu partial lists, flushes), a thread *claims* its cpu:
  ``cpu_claim`` sets TID_BUSY in ``c.tid`` with one pair swap and ``cpu_release`` stores the next
  tid.  While the bit is set no fast path of that cpu succeeds (their swaps expect a tid without
  it; they wait and retry), and no other thread claims the cpu: the PREEMPT_RT ``local_lock``
  shape, with the kernel's tid protocol doing the work;
* ``list_lock`` is a futex mutex in the cache descriptor; the page allocators have their own.

Biased cpu records (the common case costs no atomic)
----------------------------------------------------
Most cpu records are only ever used by one thread (a thread per cpu).  The first thread to claim
a record that was never shared takes its *bias* (``c.bias`` = its tid, set only while it holds
TID_BUSY or the pcs lock).  The bias owner then enters its sections with plain stores --
``c.incs`` = 1, compiler barrier, ``c.revoke`` still 0? -- and swaps (c.freelist, c.tid) with two
plain stores (``this_cpu_write_owned``): in effect the kernel's unlocked this_cpu ops, with no
interrupter.  Any other thread that reaches the record revokes first (``bias_revoke``): it stores
``c.revoke`` = 1, runs ``membarrier()`` (every running thread of the process passes a full barrier,
so the owner either sees the request or its section is visible), waits for ``c.incs`` = 0, clears
the bias; from then on everybody uses the locked protocol.  An owner that takes the record
REBIAS_RUN times in a row after the others left gets the bias back.  Without membarrier (old
kernels, uncompiled mode) nothing is biased.

Lock order
----------
  1. cpu claim (TID_BUSY in c.tid) -- at most one cpu at a time, except flushes of every cpu
     (flush_all, destroy, fork), which take them one after another, never two at once
  2. node->list_lock (``list_lock``)
  3. the page allocator's zone lock (a leaf: nothing is taken while it is held)
  4. slab_lock (implicit: ``cmpxchg_double_slab`` swaps freelist+counters atomically)

What protects what
------------------
* ``page.freelist``, ``page.counters`` {inuse, objects, frozen}: changed only through
  ``cmpxchg_double_slab``.  ``inuse`` counts objects NOT on page.freelist (allocated, or on a
  cpu freelist).  ``frozen`` = owned by a cpu (its cpu slab, or on its cpu partial list in
  v4.4); a frozen slab is on no node list and list management leaves it alone.
* ``c.freelist``, ``c.tid``: changed only by a successful ``this_cpu_cmpxchg`` (fast paths) or
  by the thread holding the cpu's claim (a biased section counts as the claim).  ``c.page``,
  ``c.partial``: only under the claim.  ``c.bias``: set under the claim, cleared by a revoker
  after the owner's section ended.  All
  objects on ``c.freelist`` belong to ``c.page``.
* ``n.partial``, ``n.nr_partial``, ``n.full``, PG_PARTIAL and the list links of slabs on them:
  ``list_lock``.  ``nr_slabs``, ``total_objects``: atomic adds.
* counters: per (cpu, seat).  A thread owns one seat of the Memory, so it is the only writer of
  its words on every cpu and a plain increment is exact; threads beyond NR_SEATS share one seat
  and add atomically.  ``stats()`` sums the seats.
* object state bytes (safe mode, ``checks``): ``OBJ_LIVE`` is set by the thread that took the
  object off a freelist, cleared by the thread that frees it before the object is linked anywhere.
* What a thread may touch: its own cpu's records (claimed for anything but the two fast paths),
  slabs through their pair swaps, node lists under list_lock.  No Python code runs inside any of
  it: the core touches no Python object (the functions are ``nogil``), reports and recordings go
  into a C ring that the public layer turns into Python objects after the operation.

States of a slab
----------------
  cpu slab (frozen)  --deactivate-->  node partial | full (on no list) | freed
  cpu partial (frozen, v4.4) --unfreeze_partials--> node partial | freed
  node partial  --get_partial_node--> cpu slab / cpu partial
  full  --first free (__slab_free)--> cpu partial (frozen) | node partial (no cpu partial)

Deviations from the kernel (each also noted where it happens)
-------------------------------------------------------------
* One NUMA node; no pfmemalloc; no IRQs: the cpu claim stands in for "IRQs off", and every claim
  ends with a new tid (the kernel bumps tid only where it must; the effect on fast paths is the
  same).
* ``__slab_free`` / ``___slab_alloc`` are ``slab_free_slowpath`` / ``slab_alloc_slowpath``
  (Python mangles double-underscore names); ``do_slab_free`` is ``slab_free()`` of v4.4 (the
  name modern kernels use for the same function).
* Every free pointer loaded from object memory is checked (``get_freepointer_safe``: it must be
  an object slot of the same slab): a corrupted freelist is reported and treated as its end
  instead of crashing.  List walks are bounded by ``objects``.  In safe mode (``checks``) an
  object taken off any freelist must be free by its state byte, else the list is cut there and
  the allocation fails with ERR_CORRUPT.  A freelist given back to its slab (deactivation, a
  7.0 refill's rest) is trimmed first (``trim_freelist``): cut before an object in use or, at
  deactivation, one on the slab's page.freelist, and behind its last distinct object when it
  loops; relinking it as it was wrote into held objects and miscounted ``inuse``.
* Debug flags (F, Z, P, U, T) change the layout and the paths exactly as v4.4 does (no cpu
  partial lists, every free through the locked slow path, one object per slow-path allocation,
  the full list kept for U).  Any of them runs alloc/free_debug_processing (v4.4): pointer and
  double-free checks, and check_object's red zone / poison / padding / free pointer checks with
  the byte fills of init_object (pyslub.debug, its C twins in debug.pxd); __free_slab checks a
  debug slab (slab_pad_check, check_object on every object).  7.0 debug caches take each object
  under list_lock (alloc_single_from_partial / _new_slab, free_to_partial_list).  The kmalloc
  red zone of ~v6.1 (SLAB_KMALLOC + U + Z: orig_size behind the tracks) comes with them.  U
  tracks and T traces are written by the public layer after the operation (pyslub.debug).
* pyslub counts six extra events (cmpxchg_double_cpu, cmpxchg_double_slab, list_lock,
  local_lock, barn_lock, bias_revoke).
* CONFIG_SLAB_FREELIST_HARDENED, CONFIG_SLAB_FREELIST_RANDOM and the v5.7 free pointer
  placement are per cache (pyslub.hardening), not build options.  Every free pointer access
  goes through get_freepointer / set_freepointer (which test ``s.hardened``).  Where the
  kernel's ``BUG_ON(object == fp)`` would stop the machine, set_freepointer reports it and
  leaves the word alone, and the free path that called it returns with nothing freed (a
  duplicate inside one bulk array is dropped); the public call raises SlabError.  The
  address term of the XOR is the arena offset of the stored word, the same in every process
  of a shared arena.
"""

import threading
import warnings

import cython

if cython.compiled:
    from cython.cimports.pyslub._prim import (
        getcpu,
        membarrier_init,
        tls_cpu,
        tls_seat,
        tls_set,
        tls_token,
    )
    from cython.cimports.pyslub.debug import (
        CHK_ALIGN_PADDING,
        CHK_FREEPTR,
        CHK_KMALLOC_REDZONE,
        CHK_OBJECT_PADDING,
        CHK_POISON,
        CHK_REDZONE,
        POISON_END,
        POISON_FREE,
        POISON_INUSE,
        REP_NOT_FREED,
        REP_SLAB_PAD,
        SLUB_RED_ACTIVE,
        SLUB_RED_INACTIVE,
        check_bytes,
        get_orig_size,
        init_object,
        init_tracking,
        pad_start,
        set_orig_size,
        slub_debug_orig_size,
    )
else:
    from pyslub._layout import *  # noqa: F403 (C enums when compiled: _layout.pxd)
    from pyslub._prim import (
        cmpxchg,
        cmpxchg_double,
        fetch_add,
        getcpu,
        gettid,
        load_acquire,
        membarrier,
        membarrier_init,
        mix64,
        mutex_lock,
        mutex_unlock,
        store_release,
        swab,
        this_cpu_cmpxchg_double,
        tls_cpu,
        tls_seat,
        tls_set,
        tls_token,
    )

    RING_WORDS = 65536
    R_WPOS = 0
    R_RPOS = 1
    R_LOST = 2
    R_DATA = 8
    EV_REPORT = 1
    EV_FREE_LIST = 2
    EV_SLAB_FREE = 3
    EV_MASK_RECORD = 2
    EV_MASK_PROBE = 4

    def ring_reserve(s, n):
        w = s.ring[R_WPOS]
        if w + n > RING_WORDS:
            s.ring[R_LOST] += 1
            return 0
        s.ring[R_WPOS] = w + n
        return w

    def ring_commit(s, w, head):
        s.ring[w] = head

    def ring_add(s, i, n):
        s.ring[i] += n

    def ring_reset(s, end):
        if s.ring[R_WPOS] != end:
            return False
        s.ring[R_WPOS] = R_DATA
        return True

    def wait_busy(spins):
        raise RuntimeError("pyslub: a cpu is claimed by an interrupted operation")

    def busy_too_long(s, spins):
        return False

    from pyslub.debug import (
        CHK_ALIGN_PADDING,
        CHK_FREEPTR,
        CHK_KMALLOC_REDZONE,
        CHK_OBJECT_PADDING,
        CHK_POISON,
        CHK_REDZONE,
        POISON_END,
        POISON_FREE,
        POISON_INUSE,
        REP_NOT_FREED,
        REP_SLAB_PAD,
        SLUB_RED_ACTIVE,
        SLUB_RED_INACTIVE,
        check_bytes,
        get_orig_size,
        init_object,
        init_tracking,
        pad_start,
        set_orig_size,
        slub_debug_orig_size,
    )
    from pyslub.page_alloc import Segment

    def arena_mem(s):
        return s.seg.arena

    def freelist_ptr(s, ptr, ptr_addr):
        return ptr ^ s.random ^ swab(ptr_addr)

    def get_freepointer(s, obj):
        a = obj + s.offset
        if s.hardened:
            return freelist_ptr(s, s.words[a >> 3], a)
        return s.words[a >> 3]

    def set_freepointer(s, obj, fp):
        a = obj + s.offset
        if s.hardened:
            if obj == fp:
                s.naive_double_free(obj)
                return True
            fp = freelist_ptr(s, fp, a)
        s.words[a >> 3] = fp
        return False

    def obj_to_index(s, off):
        return (off * s.reciprocal_size + RECIPROCAL_HALF) >> RECIPROCAL_SHIFT

    def bad_freepointer(s, fp, base, span):
        off = fp - base
        return fp != 0 and (off < 0 or off >= span or obj_to_index(s, off) * s.size != off)

    def page_objects(s, page):
        return (s.pm[page * PM_STRIDE + PM_COUNTERS] >> OBJECTS_SHIFT) & OBJECTS_MASK

    def get_freepointer_safe(s, obj, page):
        fp = get_freepointer(s, obj)
        if bad_freepointer(s, fp, page << PAGE_SHIFT, page_objects(s, page) * s.size):
            return s.freepointer_corrupt(obj, fp, page)
        return fp

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

    def virt_to_head_page(s, addr):
        return s.pm[(addr >> PAGE_SHIFT) * PM_STRIDE + PM_HEAD]

    def stat(s, st, item):
        s.meta[abs(st) + item] += 1

    def stat_add(s, st, item, n):
        s.meta[abs(st) + item] += n

    def next_tid(s, tid):
        return tid + s.tid_step

    def page_addr(page):
        return page << PAGE_SHIFT

    def cmpxchg_double_slab(s, st, page, old_fl, old_cnt, new_fl, new_cnt):
        stat(s, st, CMPXCHG_DOUBLE_SLAB)
        if cmpxchg_double(s.pm, page * PM_STRIDE + PM_FREELIST, old_fl, old_cnt, new_fl,
                          new_cnt):
            return True
        stat(s, st, CMPXCHG_DOUBLE_FAIL)
        return False

    def this_cpu_cmpxchg(s, st, c, old_fl, old_tid, new_fl, new_tid):
        stat(s, st, CMPXCHG_DOUBLE_CPU)
        return this_cpu_cmpxchg_double(s.meta, c + C_FREELIST, old_fl, old_tid, new_fl,
                                       new_tid)

    def read_tid(s, c):
        return load_acquire(s.meta, c + C_TID)

    def this_cpu_write_owned(s, st, c, new_fl, new_tid):
        stat(s, st, CMPXCHG_DOUBLE_CPU)
        s.meta[c + C_FREELIST] = new_fl
        s.meta[c + C_TID] = new_tid

    def bias_enter(s, c, me):
        return False            # uncompiled: no biased records (s.bias is False)

    def bias_exit(s, c):
        pass

    def cpu_claim(s, c, st):
        # uncompiled, every public operation runs alone (pyslub.memory): nothing can hold it
        tid = read_tid(s, c)
        if tid & TID_BUSY:
            raise RuntimeError("pyslub: cpu claimed twice (an interrupted operation?)")
        s.meta[c + C_TID] = tid | TID_BUSY
        stat(s, st, LOCAL_LOCK)
        return tid

    def cpu_release(s, c, tid):
        store_release(s.meta, c + C_TID, next_tid(s, tid))

    def list_lock(s, st):
        mutex_lock(s.desc, s.d + N_LIST_LOCK, gettid())
        stat(s, st, LIST_LOCK)

    def list_unlock(s):
        mutex_unlock(s.desc, s.d + N_LIST_LOCK)

    def nr_partial_of(s):
        return s.desc[s.d + N_NR_PARTIAL]

    def min_partial_of(s):
        return s.desc[s.d + D_MIN_PARTIAL]

    def cpu_partial_of(s):
        return s.desc[s.d + D_CPU_PARTIAL]

    def inc_slabs_node(s, objects):
        fetch_add(s.desc, s.d + N_NR_SLABS, 1)
        fetch_add(s.desc, s.d + N_TOTAL_OBJECTS, objects)

    def shuffle_start(s, count):
        n = fetch_add(s.desc, s.d + D_SHUFFLE_POS, 1)
        return (mix64(s.random_seed + n) & 0x7FFFFFFF) % count

    def dec_slabs_node(s, objects):
        fetch_add(s.desc, s.d + N_NR_SLABS, -1)
        fetch_add(s.desc, s.d + N_TOTAL_OBJECTS, -objects)

    def cpu_rec(s, cpu):
        return s.cpu_base + cpu * CPU_STRIDE

    def stats_rec(s, cpu, seat):
        st = s.stats_base + (cpu * (NR_SEATS + 1) + seat) * NR_STATS
        return -st if seat == SHARED_SEAT else st

from pyslub.hardening import random_seq  # noqa: E402
from pyslub.sizing import reciprocal_value  # noqa: E402

# Biased cpu records need membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED); without it (an old
# kernel, a seccomp filter, or uncompiled) every record stays in shared mode.
BIAS_OK = bool(membarrier_init())

# the branch a __slab_free call took (probe records), by PROBE_* code
PROBE_CASES = {PROBE_FROZEN: "frozen", PROBE_CPU_PARTIAL: "cpu_partial",
               PROBE_NODE_PARTIAL: "node_partial", PROBE_PARTIAL: "partial",
               PROBE_DISCARD: "discard", PROBE_REFUSED: "refused",
               PROBE_ISOLATED: "isolated"}

# why an address cannot be freed (check_free_addr() / free_checked() < 0)
BAD_REASONS = {
    BAD_NULL: "NULL pointer",
    BAD_OUTSIDE: "outside the arena",
    BAD_NOT_SLAB: "not on a slab page",
    BAD_OTHER_CACHE: "on a slab of another cache",
    BAD_BOUNDARY: "not on an object boundary",
    BAD_FREE: "not allocated (already free: a double free, or never handed out)",
    BAD_FREEING: "already being freed (it appears earlier in the same array, or another call "
                 "is freeing it)",
    BAD_LEAKED: "leaked on purpose by a failed consistency check",
}


def read_name(desc, d):
    """The NUL-padded name stored in descriptor words ``d + D_NAME ..``."""
    raw = b"".join(int(desc[d + D_NAME + i]).to_bytes(8, "little", signed=True)
                   for i in range(D_NAME_WORDS))
    return raw.rstrip(b"\0").decode("utf-8")


def name_words(name):
    """``name`` as D_NAME_WORDS signed words (ValueError when it does not fit 32 bytes)."""
    raw = name.encode("utf-8")
    if len(raw) > DESC_NAME_MAX or b"\0" in raw:
        raise ValueError(f"cache name {name!r} must be at most {DESC_NAME_MAX} bytes of UTF-8 "
                         "without NUL")
    raw = raw.ljust(DESC_NAME_MAX, b"\0")
    return [int.from_bytes(raw[8 * i:8 * i + 8], "little", signed=True)
            for i in range(D_NAME_WORDS)]


def report_text(name, code, a, b, c):
    """The kernel-style line of an EV_REPORT record (code REP_*, then its three words)."""
    if code == REP_FP_CORRUPT:
        return (f"BUG {name}: Freepointer corrupt: object {a:#x} (slab {page_addr(c):#x}) "
                f"points to {b & 0xFFFFFFFFFFFFFFFF:#x}; FIX {name}: freelist truncated, "
                "the objects after it are leaked")
    if code == REP_FREELIST_LIVE and b == OBJ_FREEING:      # (trim_freelist at deactivation)
        return (f"BUG {name}: Freelist points into the slab's other freelist: {a:#x} (slab "
                f"{page_addr(c):#x}; a write after free?); FIX {name}: freelist cut before it, "
                "the objects after it are leaked")
    if code == REP_FREELIST_LIVE:
        return (f"BUG {name}: Freelist points to an object in use: {a:#x} (slab "
                f"{page_addr(c):#x}; a write after free?); FIX {name}: freelist cut before it, "
                "the objects after it are leaked")
    if code == REP_CYCLE:
        return (f"BUG {name}: Freelist cycle detected in cpu freelist of slab "
                f"{page_addr(c):#x}: object {a:#x} points back to {b:#x}; FIX {name}: "
                f"freelist truncated after {a:#x}")
    if code == REP_INVALID_FREE:
        return (f"BUG {name}: Invalid object pointer {a:#x}; FIX {name}: Object at {b:#x} "
                "not freed")
    if code == REP_DOUBLE_FREE:
        return (f"BUG {name}: Object already free: {a:#x} (double free); FIX {name}: Object "
                f"at {b:#x} not freed")
    if code == REP_BULK_COUNT:
        return f"BUG {name}: Bulk freelist count({a}) invalid({b}) (slab {page_addr(c):#x})"
    if code == REP_NAIVE_DOUBLE_FREE:
        return (f"kernel BUG at mm/slub.c:set_freepointer()! {name}: object {a:#x} would point "
                f"to itself (naive double free or corruption, CONFIG_SLAB_FREELIST_HARDENED); "
                f"FIX {name}: Object at {a:#x} not freed")
    if code == REP_SHEAF_LIVE:
        return (f"BUG {name}: Sheaf holds an object in use: {a:#x} (slab {page_addr(c):#x}; "
                f"a write after free led a freelist to it?); FIX {name}: Object at {a:#x} not "
                "given back to its slab")
    if code == REP_ALLOC_CHECK:
        return (f"BUG {name}: Freelist Pointer check fails: object {a:#x} in slab "
                f"{page_addr(c):#x}; FIX {name}: Marking all objects used")
    return f"BUG {name}: report {code} ({a:#x}, {b:#x}, {c:#x})"


def report_records(name, code, a, b, c):
    """The report records of an EV_REPORT ring record (pyslub.debug.Report)."""
    from pyslub.debug import Report, object_check_records, slab_pad_records
    if code == REP_OBJECT:
        return object_check_records(name, a, b, page_addr(c))
    if code == REP_MARK_USED:
        return [Report("FIX", name, "Marking all objects used", (), a, page_addr(c))]
    if code == REP_NOT_FREED:
        return [Report("FIX", name, f"Object at {a:#x} not freed", (), a, page_addr(c))]
    if code == REP_SLAB_PAD:                        # __free_slab's slab_pad_check()
        return slab_pad_records(name, page_addr(c), b >> 44, a, a + (b & ((1 << 22) - 1)),
                                (b >> 22) & ((1 << 22) - 1))
    return [report_text(name, code, a, b, c)]


def create_descriptor(seg: Segment, name, geometry, gen, sheaf_capacity, kmalloc_index,
                      secrets=(0, 0)):
    """kmem_cache_create()'s bookkeeping: a new descriptor (id), its cpu records and counters,
    under the registry lock.  ValueError for a name in use; MemoryError when the descriptor
    table or the metadata region is full."""
    words = name_words(name)
    g = geometry
    lock_registry(seg)
    try:
        for cid in range(1, seg.hdr[H_NR_CACHES]):
            if (seg.desc[cid * DESC_STRIDE + D_STATE] == DS_LIVE
                    and read_name(seg.desc, cid * DESC_STRIDE) == name):
                raise ValueError(f"a cache named {name!r} exists already")
        cid = seg.hdr[H_NR_CACHES]
        if cid >= seg.max_caches:
            raise MemoryError(f"no room for cache {name!r}: {seg.max_caches - 1} caches were "
                              "created in this Memory (ids are not reused)")
        ncpu = seg.nr_cpus
        cpu_bytes = ncpu * CPU_STRIDE * 8
        stats_bytes = ncpu * (NR_SEATS + 1) * NR_STATS * 8
        cpu_off = cpu_records_alloc(seg, cpu_bytes)
        stats_off = seg.hdr[H_STATS_POOL]
        if stats_off:                               # a destroyed cache's counters: reuse
            seg.hdr[H_STATS_POOL] = seg.meta[stats_off]
            for i in range(stats_bytes >> 3):
                seg.meta[stats_off + i] = 0
        elif cpu_off:
            stats_off = seg.meta_alloc(stats_bytes)
        if not cpu_off or not stats_off:
            raise MemoryError(f"the metadata region is full: no room for cache {name!r}")
        for cpu in range(ncpu):
            seg.meta[cpu_off + cpu * CPU_STRIDE + C_TID] = cpu   # init_kmem_cache_cpus
        d = cid * DESC_STRIDE
        for i in range(DESC_STRIDE):
            seg.desc[d + i] = 0
        for i, w in enumerate(words):
            seg.desc[d + D_NAME + i] = w
        debug = bool(g.flags & SLAB_DEBUG_FLAGS)
        values = {
            D_GEN: gen, D_FLAGS: g.flags if debug else g.flags | CMPXCHG_DOUBLE,
            D_OBJECT_SIZE: g.object_size, D_SIZE: g.size, D_ALIGN: g.align,
            D_OFFSET: g.offset, D_INUSE: g.inuse, D_ORDER: g.order, D_OBJECTS: g.objects,
            D_MIN_ORDER: g.min_order, D_MIN_OBJECTS: g.min_objects,
            D_SHEAF_CAPACITY: sheaf_capacity, D_CPU_OFF: cpu_off, D_STATS_OFF: stats_off,
            D_KMALLOC: kmalloc_index, D_MIN_PARTIAL: g.min_partial,
            D_CPU_PARTIAL: g.cpu_partial, D_FB_STRATEGY: FB_LOOKAHEAD, D_LOOKAHEAD: 3,
            D_RANDOM: secrets[0], D_RANDOM_SEED: secrets[1],
        }
        for k, v in values.items():
            seg.desc[d + k] = v
        seg.desc[d + D_STATE] = DS_LIVE             # last: the cache exists from here on
        seg.hdr[H_NR_CACHES] = cid + 1
        return cid
    finally:
        unlock_registry(seg)


def cpu_records_alloc(seg: Segment, nbytes):
    """Zeroed room for a cache's cpu records (registry lock held): carved from chunks of
    CPU_CHUNK_BYTES, never given back (see _layout: cpu records are not reused)."""
    nwords = (nbytes + 127) // 128 * 16           # whole 128-byte lines
    if seg.hdr[H_CPU_BUMP] + nwords > seg.hdr[H_CPU_BUMP_END]:
        chunk = max(CPU_CHUNK_BYTES, nwords * 8)
        w = seg.meta_alloc(chunk)
        if not w:
            return 0
        seg.hdr[H_CPU_BUMP] = w
        seg.hdr[H_CPU_BUMP_END] = w + chunk // 8
    w = seg.hdr[H_CPU_BUMP]
    seg.hdr[H_CPU_BUMP] = w + nwords
    return w


def release_descriptor(seg: Segment, cid):
    """After destroy: the cache's counters go back to the pool (its id, descriptor and cpu
    records stay retired)."""
    if not 0 < cid < seg.hdr[H_NR_CACHES] or seg.desc[cid * DESC_STRIDE + D_STATE] != DS_DEAD:
        raise ValueError(f"cache id {cid}: not a destroyed cache of this Memory")
    lock_registry(seg)
    try:
        d = cid * DESC_STRIDE
        st = seg.desc[d + D_STATS_OFF]
        if st:
            seg.meta[st] = seg.hdr[H_STATS_POOL]
            seg.hdr[H_STATS_POOL] = st
            seg.desc[d + D_STATS_OFF] = 0
    finally:
        unlock_registry(seg)


def lock_registry(seg: Segment):
    """The registry mutex (cache create / destroy / lookup by name)."""
    if cython.compiled:
        _registry_lock(seg)
    else:
        mutex_lock(seg.hdr, H_REG_LOCK, gettid())


def unlock_registry(seg: Segment):
    if cython.compiled:
        _registry_unlock(seg)
    else:
        mutex_unlock(seg.hdr, H_REG_LOCK)


# =============================================================================================
# The calling thread's cpu
# =============================================================================================

def set_binding(seg: Segment, cpu: i64, seat: i64) -> None:
    """Cache the calling thread's (cpu, seat) for the Memory of segment ``seg`` (cpu -1: the
    "sched" policy, ``sched_getcpu() % nr_cpus`` on each operation).  Checked: the core
    indexes cpu records and counters with these values without looking again."""
    if not (-1 <= cpu < seg.nr_cpus) or not (0 <= seat <= SHARED_SEAT):
        raise ValueError(f"binding (cpu {cpu}, seat {seat}) outside this Memory's "
                         f"{seg.nr_cpus} cpus and {SHARED_SEAT + 1} seats")
    tls_set(seg.token, cpu, seat)


def clear_binding() -> None:
    """Forget the calling thread's cached binding (it is looked up again on the next call)."""
    tls_set(0, 0, 0)


def acquire_seat(seg: Segment, owner: i64) -> int:
    """A free stats seat of the segment for ``owner`` (a thread id), or SHARED_SEAT."""
    i: i64
    for i in range(NR_SEATS):
        if cython.compiled:
            if seg.hdr[H_SEATS + i] == 0 and cmpxchg(cython.address(seg.hdr[H_SEATS + i]),
                                                     0, owner):
                return i
        elif seg.hdr[H_SEATS + i] == 0:
            seg.hdr[H_SEATS + i] = owner
            return i
    return SHARED_SEAT


def release_seat(seg: Segment, seat: i64, owner: i64) -> None:
    """Give a seat back (its counters stay: they are summed with the others)."""
    if 0 <= seat < NR_SEATS:
        if cython.compiled:
            cmpxchg(cython.address(seg.hdr[H_SEATS + seat]), owner, 0)
        elif seg.hdr[H_SEATS + seat] == owner:
            seg.hdr[H_SEATS + seat] = 0


def cpu_users_add(seg: Segment, cpu: i64, delta: i64) -> None:
    """Threads bound to ``cpu`` by the default policy (H_CPU_USERS), atomically."""
    if not 0 <= cpu < seg.nr_cpus:
        raise ValueError(f"cpu {cpu} outside 0..{seg.nr_cpus - 1}")
    if cython.compiled:
        fetch_add(cython.address(seg.hdr[H_CPU_USERS + cpu]), delta)
    else:
        seg.hdr[H_CPU_USERS + cpu] += delta


def least_used_cpu(seg: Segment) -> int:
    """The cpu with the fewest threads bound by the default policy (the lowest on ties)."""
    best: i64 = 0
    k: i64
    for k in range(1, seg.nr_cpus):
        if seg.hdr[H_CPU_USERS + k] < seg.hdr[H_CPU_USERS + best]:
            best = k
    return best


def sched_cpu() -> int:
    """sched_getcpu(): the physical cpu the caller runs on now."""
    return getcpu()


@cython.cfunc
@cython.nogil
@cython.exceptval(check=False)
def bias_revoke(s: "KmemCache", c: i64, st: i64) -> cython.void:
    """Take cpu record ``c``'s bias away from the thread holding it (which is not us): ask
    (C_REVOKE), make sure it saw the request or we see its section (membarrier), wait for the
    section to end, then the record is in shared mode.  A bias owner never waits inside a
    section for anything that waits for a revocation: revocations happen only at the first
    lock of the lock order."""
    spins: cython.int = 0
    s.meta[c + C_REVOKE] = 1
    if cython.compiled:
        membarrier(s.seg.shared)
        while load_acquire(cython.address(s.meta[c + C_INCS])) != 0:
            spins = wait_busy(spins)
    s.meta[c + C_BIAS] = 0
    stat(s, st, BIAS_REVOKE)


@cython.cfunc
@cython.nogil
@cython.exceptval(check=False)
def try_rebias(s: "KmemCache", c: i64, me: i64) -> cython.void:
    """With cpu record ``c`` claimed (or its pcs lock held) and no bias on it: give the caller
    the bias if the record was never shared, or if the caller has taken it REBIAS_RUN times in
    a row since (a thread that outlived the others on its cpu)."""
    if s.meta[c + C_REVOKE] == 0:
        s.meta[c + C_BIAS] = me
        return
    if s.meta[c + C_LAST] == me:
        s.meta[c + C_RUN] += 1
    else:
        s.meta[c + C_LAST] = me
        s.meta[c + C_RUN] = 0
    if s.meta[c + C_RUN] >= REBIAS_RUN:
        s.meta[c + C_RUN] = 0
        s.meta[c + C_BIAS] = me
        s.meta[c + C_REVOKE] = 0


@cython.cfunc
@cython.nogil
@cython.exceptval(check=False)
def claim_repair(s: "KmemCache", c: i64) -> cython.void:
    """cpu record ``c``'s claim was taken over from a thread that died holding it (shared
    segments).  If it died inside the section (TID_BUSY still set), what it was changing --
    c.page, c.freelist, c.partial -- cannot be trusted: they are dropped (their slabs stay
    frozen and their objects out of circulation until recover() rebuilds the cache; nothing
    is handed out twice), and the record is released as empty.  Counted in H_DAMAGED."""
    tid: i64 = s.meta[c + C_TID]
    if tid & TID_BUSY:
        s.meta[c + C_PAGE] = 0
        s.meta[c + C_PARTIAL] = 0
        s.meta[c + C_FREELIST] = 0
        store_release(cython.address(s.meta[c + C_TID]), next_tid(s, tid & ~TID_BUSY))
    fetch_add(cython.address(s.seg.hdr[H_DAMAGED]), 1)


@cython.cfunc
@cython.nogil
@cython.exceptval(check=False)
def repair_node_lists(s: "KmemCache") -> cython.void:
    """list_lock was taken over from a thread that died holding it (shared segments), maybe
    in the middle of relinking a list: rebuild n->partial from the slabs' PG_PARTIAL bits (a
    slab a dead get_partial_node() had frozen already stays off the list: its cpu is gone), in
    address order, and recount nr_partial.  The full list (SLAB_STORE_USER) is emptied.  Slabs
    left off a list rejoin at recover().  Counted in H_DAMAGED."""
    d: i64 = s.d
    page: i64 = 1
    r: i64
    flags: i64
    tail: i64 = 0
    n: i64 = 0
    s.desc[d + N_PARTIAL_HEAD] = 0
    while page < s.seg.nr_pages:
        r = page * PM_STRIDE
        flags = s.pm[r + PM_FLAGS]
        if s.pm[r + PM_HEAD] == page and flags & PG_HEAD:
            if flags & PG_SLAB and s.pm[r + PM_SLAB_CACHE] == s.id and flags & PG_PARTIAL:
                if s.pm[r + PM_COUNTERS] & FROZEN_BIT:
                    s.pm[r + PM_FLAGS] = flags & ~PG_PARTIAL
                else:
                    s.pm[r + PM_PREV] = tail
                    s.pm[r + PM_NEXT] = 0
                    if tail:
                        s.pm[tail * PM_STRIDE + PM_NEXT] = page
                    else:
                        s.desc[d + N_PARTIAL_HEAD] = page
                    tail = page
                    n += 1
            page += 1 << ((flags >> ORDER_SHIFT) & ORDER_MASK)
        else:
            page += 1
    s.desc[d + N_PARTIAL_TAIL] = tail
    s.desc[d + N_NR_PARTIAL] = n
    s.desc[d + N_FULL_HEAD] = 0
    s.desc[d + N_FULL_TAIL] = 0
    fetch_add(cython.address(s.seg.hdr[H_DAMAGED]), 1)


def _roundup_pow_of_two(n):
    p = 1
    while p < n:
        p <<= 1
    return p


@cython.cclass
class KmemCache:
    """One slab cache (``struct kmem_cache``): the core.  The public face is ``pyslub.Cache``."""

    def __cinit__(self, seg: Segment, cache_id, binder, *args):
        # Set up in __cinit__, which tp_new always runs: no instance can exist with its
        # memoryviews unset (the compiled core does not check them on every access).
        self.seg = seg
        self.words = seg.words
        self.pm = seg.pm
        self.meta = seg.meta
        self.desc = seg.desc
        self.state = seg.state
        self.binder = binder
        self.token = seg.token
        self.ring = memoryview(bytearray(RING_WORDS * 8)).cast("q")
        self.ring[R_WPOS] = R_DATA
        if not (isinstance(cache_id, int) and 0 < cache_id < seg.hdr[H_NR_CACHES]
                and seg.desc[cache_id * DESC_STRIDE + D_STATE] == DS_LIVE):
            raise ValueError(f"no live cache with id {cache_id!r} in this segment")
        self.id = cache_id
        d: i64 = cache_id * DESC_STRIDE
        self.d = d
        self.name = read_name(self.desc, d)
        self.gen = self.desc[d + D_GEN]
        self.flags = self.desc[d + D_FLAGS]
        self.debug = bool(self.flags & SLAB_DEBUG_FLAGS)
        self.object_size = self.desc[d + D_OBJECT_SIZE]
        self.size = self.desc[d + D_SIZE]
        self.align = self.desc[d + D_ALIGN]
        self.offset = self.desc[d + D_OFFSET]
        self.inuse = self.desc[d + D_INUSE]
        self.order = self.desc[d + D_ORDER]
        self.objects = self.desc[d + D_OBJECTS]
        self.min_order = self.desc[d + D_MIN_ORDER]
        self.min_objects = self.desc[d + D_MIN_OBJECTS]
        self.sheaf_capacity = self.desc[d + D_SHEAF_CAPACITY]
        self.reciprocal_size = reciprocal_value(self.size)
        self.hardened = bool(self.flags & FREELIST_HARDENED)
        self.random = self.desc[d + D_RANDOM] if self.hardened else 0
        self.freelist_random = bool(self.flags & FREELIST_RANDOM)
        seed: i64 = self.desc[d + D_RANDOM_SEED]
        self.random_seed = mix64(seed)              # the start positions' stream
        self.random_seq = memoryview(random_seq(seed, self.objects if self.freelist_random
                                                else 0, self.size))
        self.arena_bytes = seg.arena_bytes
        self.nr_cpus = seg.nr_cpus
        self.tid_step = seg.hdr[H_TID_STEP]
        self.checks = bool(seg.hdr[H_FLAGS] & MEM_CHECKS)
        self.robust = seg.shared and cython.compiled
        self.bias = BIAS_OK and not self.robust
        self.cpu_base = self.desc[d + D_CPU_OFF]
        self.stats_base = self.desc[d + D_STATS_OFF]
        self.observe = 0
        self.recorders = []
        self.reports = []
        self.drain_lock = threading.Lock()

    def __init__(self, *args):
        if not cython.compiled:                   # plain Python has no __cinit__
            KmemCache.__cinit__(self, *args)

    # =========================================================================================
    # The event ring: what the core saw, for the public layer to read after the operation
    # =========================================================================================

    def emit(self, kind, a, b, c, d):
        """Append a record [kind | 5 << 8, a, b, c, d] (dropped, and counted, when full)."""
        w: i64 = ring_reserve(self, 5)
        if w == 0:
            return
        self.ring[w + 1] = a
        self.ring[w + 2] = b
        self.ring[w + 3] = c
        self.ring[w + 4] = d
        ring_commit(self, w, kind | (5 << 8))

    def drain(self):
        """Turn the ring's records into reports and recordings (Python objects).  Runs after
        operations, never inside one; one thread at a time (the others leave it to that one)."""
        if not self.drain_lock.acquire(False):
            return
        try:
            r: i64 = self.ring[R_RPOS]
            while r < self.ring[R_WPOS]:
                head: i64 = self.ring[r]
                if head == 0:                       # reserved, not written yet (another thread)
                    break
                n: i64 = head >> 8
                kind: i64 = head & 0xFF
                if kind == EV_REPORT:
                    self.reports.extend(report_records(self.name, self.ring[r + 1],
                                                       self.ring[r + 2], self.ring[r + 3],
                                                       self.ring[r + 4]))
                elif kind == EV_FREE_LIST:
                    cnt: i64 = self.ring[r + 2]
                    objs = [int(self.ring[r + 4 + i]) for i in range(min(cnt, n - 4))]
                    entry = (page_addr(self.ring[r + 1]), objs,
                             "fast" if self.ring[r + 3] else "slow")
                    for what, rec in self.recorders:
                        if what == EV_MASK_RECORD:
                            rec.append(entry)
                elif kind == EV_SLAB_FREE:
                    entry = (page_addr(self.ring[r + 1]), int(self.ring[r + 2]),
                             bool(self.ring[r + 3]), PROBE_CASES[self.ring[r + 4]])
                    for what, rec in self.recorders:
                        if what == EV_MASK_PROBE:
                            rec.append(entry)
                self.ring[r] = 0
                r += n
            self.ring[R_RPOS] = r
            if r == self.ring[R_WPOS] and ring_reset(self, r):
                self.ring[R_RPOS] = R_DATA
            lost: i64 = self.ring[R_LOST]
            if lost:
                ring_add(self, R_LOST, -lost)
                self.lost_records(lost)
        finally:
            self.drain_lock.release()

    def lost_records(self, lost):
        """The ring was full: ``lost`` records were dropped.  Counted in every recorder
        (``rec.lost``) and warned about (RuntimeWarning); with no recorder attached the lost
        records were reports, so the reports say it too."""
        msg = (f"pyslub: {lost} event records of cache {self.name!r} were dropped: the core's "
               "event ring was full (one call produced more records than it holds)")
        if not self.recorders:
            self.reports.append(msg)
        for _what, rec in self.recorders:
            rec.lost += lost
        warnings.warn(msg, RuntimeWarning, stacklevel=3)

    # =========================================================================================
    # Primitives: freelist words
    # =========================================================================================

    def freepointer_corrupt(self, obj, fp, page):
        """A free pointer pointing outside its slab: report it, end the list there."""
        self.emit(EV_REPORT, REP_FP_CORRUPT, obj, fp, page)
        return 0

    def naive_double_free(self, obj):
        """set_freepointer() of a hardened cache found ``object == fp``: the kernel BUG()s
        here; pyslub reports it and leaves the word as it was (the caller's path decides)."""
        self.emit(EV_REPORT, REP_NAIVE_DOUBLE_FREE, obj, 0, virt_to_head_page(self, obj))

    def shuffle_freelist(self, start, objects):
        """shuffle_freelist(): link the ``objects`` slots of the new slab at ``start`` in
        random_seq order from a random position (next_freelist_entry() skips the offsets a
        smaller fallback slab does not have); its first object (the new page.freelist)."""
        count: i64 = self.random_seq.shape[0]
        limit: i64 = objects * self.size
        pos: i64 = shuffle_start(self, count)
        idx: i64
        first: i64 = 0
        cur: i64 = 0
        k: i64
        for k in range(objects):  # noqa: B007 (typed C loop counter)
            idx = self.random_seq[pos]
            pos += 1
            if pos >= count:
                pos = 0
            while idx >= limit:
                idx = self.random_seq[pos]
                pos += 1
                if pos >= count:
                    pos = 0
            if cur:
                set_freepointer(self, cur, start + idx)
            else:
                first = start + idx
            cur = start + idx
        set_freepointer(self, cur, 0)
        return first

    # =========================================================================================
    # Node lists (list_lock held)
    # =========================================================================================

    def add_partial(self, page, tail):
        """__add_partial(): put a slab on n->partial, at the head or the tail."""
        r: i64 = page * PM_STRIDE
        d: i64 = self.d
        self.desc[d + N_NR_PARTIAL] += 1
        self.pm[r + PM_FLAGS] |= PG_PARTIAL
        if tail == DEACTIVATE_TO_TAIL_POS:
            self.pm[r + PM_NEXT] = 0
            self.pm[r + PM_PREV] = self.desc[d + N_PARTIAL_TAIL]
            if self.desc[d + N_PARTIAL_TAIL]:
                self.pm[self.desc[d + N_PARTIAL_TAIL] * PM_STRIDE + PM_NEXT] = page
            else:
                self.desc[d + N_PARTIAL_HEAD] = page
            self.desc[d + N_PARTIAL_TAIL] = page
        else:
            self.pm[r + PM_PREV] = 0
            self.pm[r + PM_NEXT] = self.desc[d + N_PARTIAL_HEAD]
            if self.desc[d + N_PARTIAL_HEAD]:
                self.pm[self.desc[d + N_PARTIAL_HEAD] * PM_STRIDE + PM_PREV] = page
            else:
                self.desc[d + N_PARTIAL_TAIL] = page
            self.desc[d + N_PARTIAL_HEAD] = page

    def remove_partial(self, page):
        r: i64 = page * PM_STRIDE
        d: i64 = self.d
        nxt: i64 = self.pm[r + PM_NEXT]
        prv: i64 = self.pm[r + PM_PREV]
        if prv:
            self.pm[prv * PM_STRIDE + PM_NEXT] = nxt
        else:
            self.desc[d + N_PARTIAL_HEAD] = nxt
        if nxt:
            self.pm[nxt * PM_STRIDE + PM_PREV] = prv
        else:
            self.desc[d + N_PARTIAL_TAIL] = prv
        self.pm[r + PM_NEXT] = 0
        self.pm[r + PM_PREV] = 0
        self.pm[r + PM_FLAGS] &= ~PG_PARTIAL
        self.desc[d + N_NR_PARTIAL] -= 1

    def add_full(self, page):
        """add_full(): the full list is kept only for SLAB_STORE_USER caches, as in the kernel."""
        if not (self.flags & SLAB_STORE_USER):
            return
        r: i64 = page * PM_STRIDE
        d: i64 = self.d
        self.pm[r + PM_NEXT] = 0
        self.pm[r + PM_PREV] = self.desc[d + N_FULL_TAIL]
        if self.desc[d + N_FULL_TAIL]:
            self.pm[self.desc[d + N_FULL_TAIL] * PM_STRIDE + PM_NEXT] = page
        else:
            self.desc[d + N_FULL_HEAD] = page
        self.desc[d + N_FULL_TAIL] = page

    def remove_full(self, page):
        if not (self.flags & SLAB_STORE_USER):
            return
        r: i64 = page * PM_STRIDE
        d: i64 = self.d
        nxt: i64 = self.pm[r + PM_NEXT]
        prv: i64 = self.pm[r + PM_PREV]
        if prv:
            self.pm[prv * PM_STRIDE + PM_NEXT] = nxt
        else:
            self.desc[d + N_FULL_HEAD] = nxt
        if nxt:
            self.pm[nxt * PM_STRIDE + PM_PREV] = prv
        else:
            self.desc[d + N_FULL_TAIL] = prv
        self.pm[r + PM_NEXT] = 0
        self.pm[r + PM_PREV] = 0

    # =========================================================================================
    # Slabs from and back to the page allocator
    # =========================================================================================

    def new_slab(self, st):
        """allocate_slab(): a frozen slab, all objects "in use", freelist in address order
        (shuffled with CONFIG_SLAB_FREELIST_RANDOM)."""
        order: cython.int = self.order
        page: i64 = self.seg.alloc_pages(order)
        if page == 0:
            order = self.min_order                  # oo = s->min, and retry
            page = self.seg.alloc_pages(order)
            if page == 0:
                return 0
            stat(self, st, ORDER_FALLBACK)
        objects: i64 = (PAGE_SIZE << order) // self.size
        r: i64 = page * PM_STRIDE
        start: i64 = page_addr(page)
        i: i64
        if self.flags & SLAB_POISON:                # whole slab POISON_INUSE, then objects
            for i in range((PAGE_SIZE << order) >> 3):
                self.words[(start >> 3) + i] = 0x5A5A5A5A5A5A5A5A
        freelist: i64 = start
        p: i64 = start
        if self.freelist_random and objects > 1:
            freelist = self.shuffle_freelist(start, objects)
            for i in range(objects):
                self.state[(start >> 3) + i * (self.size >> 3)] = OBJ_FREE
        else:                                       # address order
            for i in range(objects - 1):  # noqa: B007 (typed C loop counter)
                set_freepointer(self, p, p + self.size)
                self.state[p >> 3] = OBJ_FREE
                p += self.size
            set_freepointer(self, p, 0)
            self.state[p >> 3] = OBJ_FREE
        if self.flags & (SLAB_STORE_USER | SLAB_RED_ZONE | OBJECT_POISON):
            for i in range(objects):                # setup_object_debug()
                init_object(arena_mem(self), start + i * self.size, self.object_size,
                            self.inuse, self.flags, SLUB_RED_INACTIVE)
                init_tracking(arena_mem(self), start + i * self.size, self.offset,
                              self.inuse, self.flags)
        self.pm[r + PM_FREELIST] = freelist
        self.pm[r + PM_COUNTERS] = objects | (objects << OBJECTS_SHIFT) | FROZEN_BIT
        self.pm[r + PM_SLAB_CACHE] = self.id
        self.pm[r + PM_FLAGS] |= PG_SLAB            # last: the slab is now a slab of ours
        inc_slabs_node(self, objects)
        return page

    def discard_slab(self, page):
        """dec_slabs_node() + __free_slab(): the pages go back to the buddy allocator.  A debug
        cache checks the slab first, as v4.4's __free_slab(): slab_pad_check() and
        check_object(SLUB_RED_INACTIVE) on every object (reported and repaired; freed anyway)."""
        r: i64 = page * PM_STRIDE
        i: i64
        if self.debug:
            self.slab_pad_check(page)
            for i in range(page_objects(self, page)):
                self.check_object(page, page_addr(page) + i * self.size, SLUB_RED_INACTIVE)
        dec_slabs_node(self, page_objects(self, page))
        order: cython.int = (self.pm[r + PM_FLAGS] >> ORDER_SHIFT) & ORDER_MASK
        self.pm[r + PM_FLAGS] &= ~(PG_SLAB | PG_PARTIAL)
        self.pm[r + PM_FREELIST] = 0
        self.pm[r + PM_COUNTERS] = 0
        self.pm[r + PM_SLAB_CACHE] = 0
        self.pm[r + PM_PAGES] = 0
        self.seg.free_pages(page, order)

    # =========================================================================================
    # Allocation
    # =========================================================================================

    def slab_alloc_node(self, c, st, orig_size):
        """slab_alloc_node(): the lockless fast path; an object address, 0 when out of memory,
        or ERR_CORRUPT.  ``orig_size``: the requested size (kmalloc; else object_size), which
        a debug kmalloc cache records.  (7.0 has no cpu slab: straight to its ___slab_alloc.)"""
        if self.gen == GEN_V70:
            return self.slab_alloc70(c, st, orig_size)
        tid: i64
        obj: i64
        page: i64
        nxt: i64
        b: i64
        spins: cython.int = 0
        me: i64 = gettid()
        if self.bias and bias_enter(self, c, me):   # the record is ours: nobody else touches it
            obj = self.meta[c + C_FREELIST]
            page = self.meta[c + C_PAGE]
            if obj:
                nxt = get_freepointer(self, obj)
                if not (bad_freepointer(self, nxt, page << PAGE_SHIFT,
                                        page_objects(self, page) * self.size)
                        or (self.checks and self.state[obj >> 3] != OBJ_FREE)):
                    tid = self.meta[c + C_TID]
                    this_cpu_write_owned(self, st, c, nxt, next_tid(self, tid))
                    if self.checks:
                        self.state[obj >> 3] = OBJ_LIVE
                    bias_exit(self, c)
                    stat(self, st, ALLOC_FASTPATH)
                    return obj
            obj = self.slab_alloc(c, st, orig_size)  # (its claim nests in our section)
            bias_exit(self, c)
            stat(self, st, ALLOC_SLOWPATH)
            return obj
        while True:
            tid = read_tid(self, c)                 # acquire: before freelist and page
            if tid & TID_BUSY:                      # another thread of this cpu is "IRQ-off"
                if busy_too_long(self, spins):      # (or died so: the claim finds out)
                    obj = self.slab_alloc(c, st, orig_size)
                    stat(self, st, ALLOC_SLOWPATH)
                    return obj
                spins = wait_busy(spins)
                continue
            b = self.meta[c + C_BIAS]
            if b != 0 and b != me:                  # another thread holds the record's bias
                bias_revoke(self, c, st)
                continue
            obj = self.meta[c + C_FREELIST]
            page = self.meta[c + C_PAGE]
            if obj == 0:                            # (one node: node_match() always true)
                obj = self.slab_alloc(c, st, orig_size)  # __slab_alloc(): the cpu claim
                stat(self, st, ALLOC_SLOWPATH)
                return obj
            # obj is an object of c.page (core invariant), but another thread of this cpu may
            # have taken it meanwhile and be writing into it: check what we read before
            # installing it, and leave anything doubtful to the claimed slow path
            nxt = get_freepointer(self, obj)
            if (bad_freepointer(self, nxt, page << PAGE_SHIFT,
                                page_objects(self, page) * self.size)
                    or (self.checks and self.state[obj >> 3] != OBJ_FREE)):
                obj = self.slab_alloc(c, st, orig_size)
                stat(self, st, ALLOC_SLOWPATH)
                return obj
            if this_cpu_cmpxchg(self, st, c, obj, tid, nxt, next_tid(self, tid)):
                if self.checks:
                    self.state[obj >> 3] = OBJ_LIVE
                stat(self, st, ALLOC_FASTPATH)
                return obj
            stat(self, st, CMPXCHG_DOUBLE_CPU_FAIL)

    def slab_alloc(self, c, st, orig_size):
        """__slab_alloc(): ___slab_alloc with the cpu claimed (the kernel saves IRQs)."""
        tid: i64 = cpu_claim(self, c, st)
        obj: i64 = self.slab_alloc_slowpath(c, st, orig_size)
        cpu_release(self, c, tid)
        return obj

    def take_object(self, page, obj):
        """Safe mode: ``obj`` is leaving a freelist for its caller; it must be free.  Returns 0,
        or ERR_CORRUPT (reported) when the freelist led to an object that is handed out."""
        if self.state[obj >> 3] != OBJ_FREE:
            self.emit(EV_REPORT, REP_FREELIST_LIVE, obj, self.state[obj >> 3], page)
            return ERR_CORRUPT
        self.state[obj >> 3] = OBJ_LIVE
        return 0

    def load_freelist(self, c, st, page, freelist):
        """___slab_alloc's load_freelist: first object to the caller, the rest to c.freelist."""
        if self.checks and self.take_object(page, freelist) < 0:
            self.meta[c + C_FREELIST] = 0           # cut: the rest is leaked, on purpose
            return ERR_CORRUPT
        self.meta[c + C_FREELIST] = get_freepointer_safe(self, freelist, page)
        return freelist

    def slab_alloc_slowpath(self, c, st, orig_size):
        """___slab_alloc() (v4.4, cpu claimed): refill the cpu slab, or find / make another.
        ``orig_size``: what alloc_debug_processing() records (the kmalloc orig_size, ~v6.1)."""
        page: i64 = self.meta[c + C_PAGE]
        freelist: i64
        while True:
            if page:                                # redo:
                freelist = self.meta[c + C_FREELIST]
                if freelist:
                    return self.load_freelist(c, st, page, freelist)
                freelist = self.get_freelist(st, page)
                if freelist:
                    stat(self, st, ALLOC_REFILL)
                    return self.load_freelist(c, st, page, freelist)
                self.meta[c + C_PAGE] = 0           # slab is full and now on no list
                stat(self, st, DEACTIVATE_BYPASS)
                page = 0
                continue
            # new_slab:
            if self.meta[c + C_PARTIAL]:
                page = self.meta[c + C_PARTIAL]
                self.meta[c + C_PAGE] = page
                self.meta[c + C_PARTIAL] = self.pm[page * PM_STRIDE + PM_NEXT]
                stat(self, st, CPU_PARTIAL_ALLOC)
                self.meta[c + C_FREELIST] = 0
                continue
            freelist = self.new_slab_objects(c, st)
            if freelist == 0:
                return 0                            # slab_out_of_memory()
            page = self.meta[c + C_PAGE]
            if not self.debug:
                return self.load_freelist(c, st, page, freelist)
            if self.checks and self.state[freelist >> 3] != OBJ_FREE:
                # safe mode: a freelist leading to an object in use is cut before the debug
                # checks could "restore" bytes of that object; the slab goes back full
                self.take_object(page, freelist)    # (reported)
                self.deactivate_slab(c, st, page, 0)
                self.meta[c + C_PAGE] = 0
                self.meta[c + C_FREELIST] = 0
                return ERR_CORRUPT
            if not self.alloc_debug_processing(st, page, freelist, orig_size):
                page = 0                            # slab failed checks: next slab needed
                continue
            # debug caches hand out one object and deactivate the rest
            self.deactivate_slab(c, st, page, get_freepointer_safe(self, freelist, page))
            self.meta[c + C_PAGE] = 0
            self.meta[c + C_FREELIST] = 0
            if self.checks and self.take_object(page, freelist) < 0:
                return ERR_CORRUPT
            return freelist

    def get_freelist(self, st, page):
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
            if cmpxchg_double_slab(self, st, page, fl, counters, 0, new):
                return fl

    def new_slab_objects(self, c, st):
        """A cpu slab from the node partial list, or a fresh slab; returns its freelist."""
        freelist: i64 = self.get_partial_node(c, st)
        if freelist:
            return freelist
        page: i64 = self.new_slab(st)
        if page == 0:
            return 0
        if self.meta[c + C_PAGE]:
            self.flush_slab(c, st)
        r: i64 = page * PM_STRIDE
        freelist = self.pm[r + PM_FREELIST]
        self.pm[r + PM_FREELIST] = 0
        stat(self, st, ALLOC_SLAB)
        self.meta[c + C_PAGE] = page
        return freelist

    def get_partial_node(self, c, st):
        """Take slabs off n->partial: the first becomes the cpu slab (its whole freelist is
        taken), further ones go to the cpu partial list until more than cpu_partial/2 free
        objects were gathered.  acquire_slab() is inlined.
        """
        if nr_partial_of(self) == 0:                   # racy check before the lock, as the kernel
            return 0
        list_lock(self, st)
        obj: i64 = 0
        available: i64 = 0
        page: i64 = self.desc[self.d + N_PARTIAL_HEAD]
        nxt: i64
        r: i64
        fl: i64
        counters: i64
        new: i64
        free: i64
        cp: i64 = cpu_partial_of(self)
        while page:
            nxt = self.pm[page * PM_STRIDE + PM_NEXT]
            r = page * PM_STRIDE
            fl = self.pm[r + PM_FREELIST]
            counters = self.pm[r + PM_COUNTERS]
            free = ((counters >> OBJECTS_SHIFT) & OBJECTS_MASK) - (counters & INUSE_MASK)
            new = counters | FROZEN_BIT
            if obj == 0:                            # acquire_slab(mode=1): take the freelist
                new = (new & ~INUSE_MASK) | ((counters >> OBJECTS_SHIFT) & OBJECTS_MASK)
                if not cmpxchg_double_slab(self, st, page, fl, counters, 0, new):
                    break
            elif not cmpxchg_double_slab(self, st, page, fl, counters, fl, new):
                break
            self.remove_partial(page)
            if obj == 0:
                self.meta[c + C_PAGE] = page
                stat(self, st, ALLOC_FROM_PARTIAL)
                obj = fl
            else:
                self.put_cpu_partial(c, st, page, False)
                stat(self, st, CPU_PARTIAL_NODE)
            available += free
            if cp == 0 or available > cp // 2:
                break
            page = nxt
        list_unlock(self)
        return obj

    def alloc_debug_processing(self, st, page, obj, orig_size):
        """Consistency checks on the object handed out by a debug cache (v4.4: with any debug
        flag; F only since v4.6): a valid pointer ("Freelist Pointer check fails"), then
        check_object(SLUB_RED_INACTIVE).  On success set_orig_size() (~v6.1 kmalloc caches
        with U) and init_object(SLUB_RED_ACTIVE), which red-zones [orig_size, object_size) as
        well.  On failure the kernel marks every object of the slab used and takes another
        slab.
        """
        poison_size: i64 = self.object_size
        if self.check_free_addr(obj) == page:
            if self.check_object(page, obj, SLUB_RED_INACTIVE):
                set_orig_size(arena_mem(self), obj, self.offset, self.inuse, self.flags,
                              orig_size)
                if (self.flags & SLAB_RED_ZONE and slub_debug_orig_size(self.flags)
                        and orig_size < poison_size):
                    poison_size = orig_size         # the kmalloc red zone begins there
                init_object(arena_mem(self), obj, poison_size, self.inuse, self.flags,
                            SLUB_RED_ACTIVE)
                return True
            self.emit(EV_REPORT, REP_MARK_USED, obj, 0, page)
        else:
            self.emit(EV_REPORT, REP_ALLOC_CHECK, obj, 0, page)
        r: i64 = page * PM_STRIDE
        self.pm[r + PM_COUNTERS] = ((self.pm[r + PM_COUNTERS] & ~INUSE_MASK)
                                    | page_objects(self, page))
        self.pm[r + PM_FREELIST] = 0
        i: i64
        p: i64
        for i in range(page_objects(self, page)):   # its free objects are out of circulation
            p = page_addr(page) + i * self.size
            if self.state[p >> 3] == OBJ_FREE:
                self.state[p >> 3] = OBJ_LEAKED
        return False

    def check_object(self, page, obj, val):
        """check_object() of v4.4 (val: SLUB_RED_ACTIVE for an allocated object, _INACTIVE for
        a free one), with the kmalloc red zone of ~v6.1: the red zone (then, allocated, the
        kmalloc red zone [orig_size, object_size)), or without one the alignment padding; with
        P the poison of a free object and check_pad_bytes(); the free pointer where it can be
        checked.  Every bad byte run is reported (REP_OBJECT) and restored.  Returns False at
        the first failure v4.4 returns on; the padding checks report and go on ("cleans up on
        its own"), as there."""
        r: i64
        fp: i64
        off: i64
        orig: i64
        if self.flags & SLAB_RED_ZONE:
            r = check_bytes(arena_mem(self), obj, obj + self.object_size, val,
                            self.inuse - self.object_size, CHK_REDZONE)
            if r:
                self.emit(EV_REPORT, REP_OBJECT, r, obj, page)
                return False
            if val == SLUB_RED_ACTIVE and slub_debug_orig_size(self.flags):
                orig = get_orig_size(arena_mem(self), obj, self.offset, self.inuse, self.flags,
                                     self.object_size)
                if orig < self.object_size:
                    r = check_bytes(arena_mem(self), obj, obj + orig, val,
                                    self.object_size - orig, CHK_KMALLOC_REDZONE)
                    if r:
                        self.emit(EV_REPORT, REP_OBJECT, r, obj, page)
                        return False
        elif self.flags & SLAB_POISON and self.object_size < self.inuse:
            r = check_bytes(arena_mem(self), obj, obj + self.object_size, POISON_INUSE,
                            self.inuse - self.object_size, CHK_ALIGN_PADDING)
            if r:
                self.emit(EV_REPORT, REP_OBJECT, r, obj, page)
        if self.flags & SLAB_POISON:
            if val != SLUB_RED_ACTIVE and self.flags & OBJECT_POISON:
                r = check_bytes(arena_mem(self), obj, obj, POISON_FREE, self.object_size - 1,
                                CHK_POISON)
                if r == 0:
                    r = check_bytes(arena_mem(self), obj, obj + self.object_size - 1,
                                    POISON_END, 1, CHK_POISON)
                if r:
                    self.emit(EV_REPORT, REP_OBJECT, r, obj, page)
                    return False
            off = pad_start(self.offset, self.inuse, self.flags)     # check_pad_bytes()
            if off < self.size:
                r = check_bytes(arena_mem(self), obj, obj + off, POISON_INUSE, self.size - off,
                                CHK_OBJECT_PADDING)
                if r:
                    self.emit(EV_REPORT, REP_OBJECT, r, obj, page)
        if self.offset < self.inuse and val == SLUB_RED_ACTIVE:
            return True                 # object and free pointer overlap: cannot check it
        fp = get_freepointer(self, obj)
        if bad_freepointer(self, fp, page_addr(page), page_objects(self, page) * self.size):
            set_freepointer(self, obj, 0)   # the rest of this slab's freelist is lost
            self.emit(EV_REPORT, REP_OBJECT, CHK_FREEPTR, obj, page)
            return False
        return True

    def slab_pad_check(self, page):
        """slab_pad_check() (P): the slab's tail beyond its last object must be POISON_INUSE;
        reported (REP_SLAB_PAD) and restored."""
        if not self.flags & SLAB_POISON:
            return True
        start: i64 = page_addr(page)
        order: i64 = (self.pm[page * PM_STRIDE + PM_FLAGS] >> ORDER_SHIFT) & ORDER_MASK
        length: i64 = PAGE_SIZE << order
        remainder: i64 = length % self.size
        if remainder == 0:
            return True
        r: i64 = check_bytes(arena_mem(self), start, start + length - remainder, POISON_INUSE,
                             remainder, CHK_OBJECT_PADDING)
        if r == 0:
            return True
        # [kind, REP_SLAB_PAD, first bad byte, run length | tail length << 22 | order << 44,
        # page]
        self.emit(EV_REPORT, REP_SLAB_PAD, start + ((r >> 19) & ((1 << 22) - 1)),
                  ((r >> 41) & ((1 << 22) - 1)) | (remainder << 22) | (order << 44), page)
        return False

    # =========================================================================================
    # Deactivation and the cpu partial list (cpu claimed)
    # =========================================================================================

    def trim_freelist(self, page, freelist):
        """pyslub addition: make a freelist that is about to be given back to its slab (a cpu
        freelist at deactivation, the rest of a refill) safe to relink; returns its head.

        A write after free can make it lead to an object in use (safe mode: the state byte
        says so; the list is cut before it, REP_FREELIST_LIVE, the objects behind it are
        leaked; a head in use drops the whole list: 0) or loop back into itself (cut behind
        its last distinct object, REP_CYCLE; Brent's cycle search). Relinking such a list
        wrote into an object its owner holds, or gave the loop's objects back again and again
        until ``inuse`` reached 0 and a slab with objects in use was discarded. Only the cut
        object's free pointer is written. A pointer out of the slab ends the walk here and is
        left to the caller's get_freepointer_safe() (REP_FP_CORRUPT)."""
        if freelist == 0:
            return 0
        if self.checks and self.state[freelist >> 3] != OBJ_FREE:
            self.emit(EV_REPORT, REP_FREELIST_LIVE, freelist, self.state[freelist >> 3], page)
            return 0
        base: i64 = page << PAGE_SHIFT
        span: i64 = page_objects(self, page) * self.size
        limit: i64 = page_objects(self, page)
        obj: i64 = freelist
        nxt: i64
        steps: i64 = 0
        while True:                                 # each link checked; at most limit steps
            nxt = get_freepointer(self, obj)
            if nxt == 0 or bad_freepointer(self, nxt, base, span):
                return freelist                     # the end (or stage 1's corrupt pointer)
            if self.checks and self.state[nxt >> 3] != OBJ_FREE:
                set_freepointer(self, obj, 0)
                self.emit(EV_REPORT, REP_FREELIST_LIVE, nxt, self.state[nxt >> 3], page)
                return freelist
            steps += 1
            if steps >= limit:                      # more links than the slab has objects
                break
            obj = nxt
        # a loop (every link above is valid): find its length lam, then its first object
        power: i64 = 1
        lam: i64 = 1
        tortoise: i64 = freelist
        hare: i64 = get_freepointer(self, freelist)
        while hare != tortoise:
            if power == lam:
                tortoise = hare
                power *= 2
                lam = 0
            hare = get_freepointer(self, hare)
            lam += 1
        tortoise = freelist
        hare = freelist
        k: i64
        for k in range(lam):  # noqa: B007 (typed C loop counter)
            hare = get_freepointer(self, hare)
        while tortoise != hare:
            tortoise = get_freepointer(self, tortoise)
            hare = get_freepointer(self, hare)
        last: i64 = tortoise                        # the loop's last object points at its first
        for k in range(lam - 1):  # noqa: B007
            last = get_freepointer(self, last)
        set_freepointer(self, last, 0)
        self.emit(EV_REPORT, REP_CYCLE, last, tortoise, page)
        return freelist

    def mark_freelist(self, page, head, limit, want, mark):
        """Safe mode, deactivation: set the state byte of at most ``limit`` objects of the
        list at ``head`` from ``want`` to ``mark``; returns how many. deactivate_slab() marks
        the frozen slab's page.freelist OBJ_FREEING for trim_freelist(), which then cuts a cpu
        freelist that a write after free made run into it (relinking those objects put them
        on it twice and took them off ``inuse`` twice), and unmarks the same objects after.
        The chain below the head read here is stable while we hold the cpu (remote frees
        only push new heads: their own objects). The walk stops at the first link out of
        the slab or not in state ``want`` (a loop, an object in use)."""
        base: i64 = page << PAGE_SHIFT
        span: i64 = page_objects(self, page) * self.size
        obj: i64 = head
        n: i64 = 0
        while obj and n < limit and not bad_freepointer(self, obj, base, span):
            if self.state[obj >> 3] != want:
                break
            self.state[obj >> 3] = mark
            n += 1
            obj = get_freepointer(self, obj)
        return n

    def deactivate_slab(self, c, st, page, freelist):
        """deactivate_slab() (v4.4, two stages): give a cpu slab back to the node."""
        r: i64 = page * PM_STRIDE
        if freelist:
            head: i64 = self.pm[r + PM_FREELIST]
            marked: i64 = 0
            if self.checks and head:
                marked = self.mark_freelist(page, head, page_objects(self, page), OBJ_FREE,
                                            OBJ_FREEING)
            freelist = self.trim_freelist(page, freelist)
            if marked:
                self.mark_freelist(page, head, marked, OBJ_FREEING, OBJ_FREE)
        tail: cython.int = DEACTIVATE_TO_HEAD_POS
        if self.pm[r + PM_FREELIST]:
            stat(self, st, DEACTIVATE_REMOTE_FREES)
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
            if steps > limit:       # trim_freelist cut any loop: only a write racing with
                self.emit(EV_REPORT, REP_CYCLE, freelist, nextfree, page)   # us gets here;
                break               # freelist stays the last object (stage 2 links it)
            while True:
                prior = self.pm[r + PM_FREELIST]
                counters = self.pm[r + PM_COUNTERS]
                set_freepointer(self, freelist, prior)
                if cmpxchg_double_slab(self, st, page, prior, counters, freelist,
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
            if (new & INUSE_MASK) == 0 and nr_partial_of(self) >= min_partial_of(self):
                m = M_FREE
            elif new_fl:
                m = M_PARTIAL
                if not locked:
                    locked = True
                    list_lock(self, st)
            else:
                m = M_FULL
                if self.debug and not locked:
                    locked = True
                    list_lock(self, st)
            if lm != m:
                if lm == M_PARTIAL:
                    self.remove_partial(page)
                elif lm == M_FULL:
                    self.remove_full(page)
                if m == M_PARTIAL:
                    self.add_partial(page, tail)
                    stat(self, st, DEACTIVATE_TO_TAIL if tail else DEACTIVATE_TO_HEAD)
                elif m == M_FULL:
                    stat(self, st, DEACTIVATE_FULL)
                    self.add_full(page)
            lm = m
            if cmpxchg_double_slab(self, st, page, old_fl, counters, new_fl, new):
                break
        if locked:
            list_unlock(self)
        if m == M_FREE:
            stat(self, st, DEACTIVATE_EMPTY)
            self.discard_slab(page)
            stat(self, st, FREE_SLAB)

    def flush_slab(self, c, st):
        stat(self, st, CPUSLAB_FLUSH)
        self.deactivate_slab(c, st, self.meta[c + C_PAGE], self.meta[c + C_FREELIST])
        self.meta[c + C_PAGE] = 0
        self.meta[c + C_FREELIST] = 0

    def put_cpu_partial(self, c, st, page, drain):
        """Push a frozen slab on this cpu's partial list; drain the list to the node first when
        it already holds more than cpu_partial free objects.
        """
        oldpage: i64 = self.meta[c + C_PARTIAL]
        pages: i64 = 0
        pobjects: i64 = 0
        if oldpage:
            pages = self.pm[oldpage * PM_STRIDE + PM_PAGES] & PAGES_MASK
            pobjects = self.pm[oldpage * PM_STRIDE + PM_PAGES] >> 32
            if drain and pobjects > cpu_partial_of(self):
                self.unfreeze_partials(c, st)       # IRQs off around it in the kernel
                oldpage = 0
                pages = 0
                pobjects = 0
                stat(self, st, CPU_PARTIAL_DRAIN)
        r: i64 = page * PM_STRIDE
        pages += 1
        pobjects += page_objects(self, page) - (self.pm[r + PM_COUNTERS] & INUSE_MASK)
        self.pm[r + PM_PAGES] = pages | (pobjects << 32)
        self.pm[r + PM_NEXT] = oldpage
        self.pm[r + PM_PREV] = 0
        self.meta[c + C_PARTIAL] = page             # this_cpu_cmpxchg(c->partial, old, page)
        if cpu_partial_of(self) == 0:
            self.unfreeze_partials(c, st)

    def unfreeze_partials(self, c, st):
        """Move every slab of this cpu's partial list to the node list (or free it)."""
        page: i64
        r: i64
        fl: i64
        counters: i64
        discard: i64 = 0
        locked: cython.bint = False
        while self.meta[c + C_PARTIAL]:
            page = self.meta[c + C_PARTIAL]
            r = page * PM_STRIDE
            self.meta[c + C_PARTIAL] = self.pm[r + PM_NEXT]
            if not locked:
                locked = True
                list_lock(self, st)
            while True:
                fl = self.pm[r + PM_FREELIST]
                counters = self.pm[r + PM_COUNTERS]
                if cmpxchg_double_slab(self, st, page, fl, counters, fl,
                                       counters & ~FROZEN_BIT):
                    break
            self.pm[r + PM_PAGES] = 0
            if (counters & INUSE_MASK) == 0 and nr_partial_of(self) >= min_partial_of(self):
                self.pm[r + PM_NEXT] = discard
                discard = page
            else:
                self.add_partial(page, DEACTIVATE_TO_TAIL_POS)
                stat(self, st, FREE_ADD_PARTIAL)
        if locked:
            list_unlock(self)
        while discard:
            page = discard
            discard = self.pm[page * PM_STRIDE + PM_NEXT]
            stat(self, st, DEACTIVATE_EMPTY)
            self.discard_slab(page)
            stat(self, st, FREE_SLAB)

    def flush_cpu_claimed(self, c, st):
        """__flush_cpu_slab() of the claimed cpu ``c``: deactivate its cpu slab, unfreeze its
        cpu partial list."""
        if self.meta[c + C_PAGE]:
            self.flush_slab(c, st)
        self.unfreeze_partials(c, st)

    # =========================================================================================
    # Free
    # =========================================================================================

    def do_slab_free(self, c, st, page, head, tail, cnt):
        """slab_free() (v4.4 after the bulk rework): free the list head..tail of ``cnt`` objects
        of one slab.  ``tail == 0`` means the single object ``head``.
        """
        tail_obj: i64 = tail if tail else head
        tid: i64
        fl: i64
        spins: cython.int = 0
        if self.observe & EV_MASK_RECORD:
            self.record(page, head, cnt, page == self.meta[c + C_PAGE])
        if self.gen == GEN_V70:                     # no cpu slab: __slab_free, always
            self.slab_free70(st, page, head, tail_obj, cnt)
            return
        b: i64
        me: i64 = gettid()
        if self.bias and bias_enter(self, c, me):
            if page == self.meta[c + C_PAGE]:
                fl = self.meta[c + C_FREELIST]
                tid = self.meta[c + C_TID]
                if set_freepointer(self, tail_obj, fl):  # its BUG_ON fired: nothing freed
                    bias_exit(self, c)
                    return
                this_cpu_write_owned(self, st, c, head, next_tid(self, tid))
                bias_exit(self, c)
                stat(self, st, FREE_FASTPATH)
                return
            bias_exit(self, c)                      # __slab_free runs outside the section
            self.slab_free_slowpath(c, st, page, head, tail_obj, cnt)
            return
        while True:
            tid = read_tid(self, c)
            if tid & TID_BUSY:
                if busy_too_long(self, spins):      # __slab_free needs no claim
                    self.slab_free_slowpath(c, st, page, head, tail_obj, cnt)
                    return
                spins = wait_busy(spins)
                continue
            b = self.meta[c + C_BIAS]
            if b != 0 and b != me:
                bias_revoke(self, c, st)
                continue
            if page == self.meta[c + C_PAGE]:
                fl = self.meta[c + C_FREELIST]
                if set_freepointer(self, tail_obj, fl):  # its BUG_ON fired: nothing freed
                    return
                if this_cpu_cmpxchg(self, st, c, fl, tid, head, next_tid(self, tid)):
                    stat(self, st, FREE_FASTPATH)   # once per call, not per object (v4.4)
                    return
                stat(self, st, CMPXCHG_DOUBLE_CPU_FAIL)
            else:
                self.slab_free_slowpath(c, st, page, head, tail_obj, cnt)
                return

    def slab_free_slowpath(self, c, st, page, head, tail, cnt):
        """__slab_free() (v4.4): splice head..tail in front of page.freelist with one swap.
        Called with the cpu NOT claimed (put_cpu_partial claims it).  (7.0: its own
        __slab_free, which counts nothing.)"""
        if self.gen == GEN_V70:
            self.slab_free70(st, page, head, tail, cnt)
            return
        stat(self, st, FREE_SLOWPATH)
        if self.debug:
            list_lock(self, st)                     # free_debug_processing() returns locked ...
            ok: cython.bint = self.free_debug_processing(page, head, tail, cnt)
            list_unlock(self)                       # ... and the loop drops it at once
            if not ok:
                if self.observe & EV_MASK_PROBE:
                    self.emit(EV_SLAB_FREE, page, cnt, 0, PROBE_REFUSED)
                return                              # objects leaked on purpose, as the kernel
        r: i64 = page * PM_STRIDE
        locked: cython.bint = False
        prior: i64
        counters: i64
        new: i64
        was_frozen: i64
        inuse: i64
        tid: i64
        has_cpu_partial: cython.bint = not self.debug
        while True:
            if locked:
                list_unlock(self)
                locked = False
            prior = self.pm[r + PM_FREELIST]
            counters = self.pm[r + PM_COUNTERS]
            if set_freepointer(self, tail, prior):  # its BUG_ON fired (reported): nothing
                return                              # changed, the objects are not freed
            was_frozen = counters & FROZEN_BIT
            inuse = ((counters & INUSE_MASK) - cnt) & INUSE_MASK   # wraps on a double free
            new = (counters & ~INUSE_MASK) | inuse
            if (inuse == 0 or prior == 0) and not was_frozen:
                if has_cpu_partial and prior == 0:
                    new |= FROZEN_BIT               # first free into a full slab: freeze it
                else:
                    locked = True                   # speculative: a list change is needed
                    list_lock(self, st)
            if cmpxchg_double_slab(self, st, page, prior, counters, head, new):
                break
        case: cython.int = PROBE_PARTIAL
        if not locked:
            if (new & FROZEN_BIT) and not was_frozen:
                tid = cpu_claim(self, c, st)        # preempt_disable() + IRQs off inside
                self.put_cpu_partial(c, st, page, True)
                cpu_release(self, c, tid)
                stat(self, st, CPU_PARTIAL_FREE)
                case = PROBE_CPU_PARTIAL
            if was_frozen:
                stat(self, st, FREE_FROZEN)
                case = PROBE_FROZEN
        elif inuse == 0 and nr_partial_of(self) >= min_partial_of(self):
            # slab_empty:
            if prior:
                self.remove_partial(page)
                stat(self, st, FREE_REMOVE_PARTIAL)
            else:
                self.remove_full(page)
            list_unlock(self)
            stat(self, st, FREE_SLAB)
            self.discard_slab(page)
            case = PROBE_DISCARD
        else:
            if not has_cpu_partial and prior == 0:      # was full, now partial
                self.remove_full(page)
                self.add_partial(page, DEACTIVATE_TO_TAIL_POS)
                stat(self, st, FREE_ADD_PARTIAL)
                case = PROBE_NODE_PARTIAL
            list_unlock(self)
        if self.observe & EV_MASK_PROBE:
            self.emit(EV_SLAB_FREE, page, cnt, 1 if was_frozen else 0, case)

    def free_debug_processing(self, page, head, tail, cnt):
        """free_debug_processing() (v4.4: with any debug flag; list_lock held) on a list about to
        be freed.

        Walks from head to tail: each object must lie on this slab at an object boundary, and
        be neither on the slab's freelist nor earlier in the same list ("Object already free":
        a double free).  On such a failure nothing is freed (leaked on purpose, as the kernel
        does) and a report is added.  A walk whose length differs from ``cnt`` is reported
        ("Bulk freelist count(%d) invalid(%d)") and the list is freed all the same, as v4.4
        does.  (The walk is bounded by the slab's objects: pyslub's deviation.)
        """
        obj: i64 = head
        ok: cython.bint = True
        walked: i64 = 0
        nxt: i64
        k: i64
        limit: i64 = page_objects(self, page)
        while True:
            if self.check_free_addr(obj) != page:
                self.emit(EV_REPORT, REP_INVALID_FREE, obj, head, page)
                ok = False
                break
            # earlier in the same list: marked FREEING by this walk (state bytes are the
            # freeing thread's while the objects are on no list)
            if self.state[obj >> 3] == OBJ_FREEING or self.on_freelist(page, obj):
                self.emit(EV_REPORT, REP_DOUBLE_FREE, obj, head, page)
                ok = False
                break
            if not self.check_object(page, obj, SLUB_RED_ACTIVE):
                # not freed, out of circulation (as modern kernels; v4.4 freed it anyway)
                self.emit(EV_REPORT, REP_NOT_FREED, obj, 0, page)
                self.state[obj >> 3] = OBJ_LEAKED
                ok = False
                break
            self.state[obj >> 3] = OBJ_FREEING
            walked += 1
            if obj == tail and walked < cnt:
                # a duplicate inside one bulk array links the list back into itself: v4.4 stops
                # at tail and only reports the count; pyslub refuses it as the double free
                nxt = get_freepointer(self, obj)
                k = walked
                while k < cnt and self.check_free_addr(nxt) == page:
                    if self.state[nxt >> 3] == OBJ_FREEING:
                        self.emit(EV_REPORT, REP_DOUBLE_FREE, nxt, head, page)
                        ok = False
                        break
                    nxt = get_freepointer(self, nxt)
                    k += 1
                if not ok:
                    break
            if obj == tail or walked >= limit:
                break
            obj = get_freepointer(self, obj)
        if ok and (walked != cnt or obj != tail):
            self.emit(EV_REPORT, REP_BULK_COUNT, cnt, walked, page)
            ok = obj == tail                        # (tail not reached: cannot be linked)
        obj = head
        n: i64
        for n in range(walked):                     # undo the marks: free again
            if n:
                obj = get_freepointer(self, obj)
            self.state[obj >> 3] = OBJ_FREE if ok else OBJ_LEAKED
            if ok:
                init_object(arena_mem(self), obj, self.object_size, self.inuse, self.flags,
                            SLUB_RED_INACTIVE)
        return ok

    def on_freelist(self, page, search):
        """Is ``search`` on page.freelist or (for a cpu slab) a cpu freelist?  Bounded walk."""
        limit: i64 = page_objects(self, page)
        cpu: i64
        c: i64
        n: i64
        obj: i64
        for cpu in range(-1, self.nr_cpus):
            if cpu < 0:
                obj = self.pm[page * PM_STRIDE + PM_FREELIST]
            else:
                c = cpu_rec(self, cpu)
                if self.meta[c + C_PAGE] != page:
                    continue
                obj = self.meta[c + C_FREELIST]
            n = 0
            while obj and n <= limit:
                if obj == search:
                    return True
                n += 1
                obj = get_freepointer_safe(self, obj, page)
        return False

    def record(self, page, head, cnt, fast):
        """record_frees(): the list handed to the slab, walked from head, before it is linked."""
        n: i64 = cnt if cnt < 4096 else 4096
        i: i64
        obj: i64 = head
        w: i64 = ring_reserve(self, 4 + n)
        if w == 0:
            return
        self.ring[w + 1] = page
        self.ring[w + 2] = cnt
        self.ring[w + 3] = fast
        for i in range(n):
            self.ring[w + 4 + i] = obj
            if i + 1 < n:
                obj = get_freepointer(self, obj)
                if obj <= 0 or obj >= self.arena_bytes:
                    obj = 0
        ring_commit(self, w, EV_FREE_LIST | ((4 + n) << 8))

    def check_free_addr(self, addr):
        """The slab page of ``addr`` if it is an object slot of this cache, else BAD_* (< 0)."""
        return object_page(self, addr)

    def release_checked(self, addr):
        """Before kmem_cache_free() of an address from outside: its slab page, or BAD_*.
        Safe mode: the object must be handed out (its state byte), and is free from here on
        (the caller frees it next)."""
        page: i64 = object_page(self, addr)
        if page < 0:
            return page
        if self.checks:
            sb: cython.int = self.state[addr >> 3]
            if sb != OBJ_LIVE:
                return (BAD_FREE if sb == OBJ_FREE else BAD_FREEING if sb == OBJ_FREEING
                        else BAD_LEAKED)
            self.state[addr >> 3] = OBJ_FREE
        return page

    # =========================================================================================
    # 7.0: slabs without cpu slabs (the sheaves above them are in sheaves.py)
    # =========================================================================================

    def new_slab70(self, st):
        """allocate_slab() of 7.0: freelist in address order, inuse 0, not frozen (nobody
        knows the slab until it is handed out or listed)."""
        page: i64 = self.new_slab(st)
        if page:
            self.pm[page * PM_STRIDE + PM_COUNTERS] = page_objects(self, page) << OBJECTS_SHIFT
        return page

    def alloc_from_new_slab(self, st, page, p, off, count, handout):
        """alloc_from_new_slab(): up to ``count`` objects straight off a fresh slab's freelist
        into p[off..] (no pair swap: nobody else knows it); what is left goes to the head of
        the node partial list.  Returns the number taken.  ``handout``: they go to the caller
        (safe mode marks them in use), else into a sheaf."""
        r: i64 = page * PM_STRIDE
        fl: i64 = self.pm[r + PM_FREELIST]
        taken: i64 = 0
        mark: cython.bint = handout and self.checks
        while fl and taken < count:
            if mark:
                self.state[fl >> 3] = OBJ_LIVE
            p[off + taken] = fl
            taken += 1
            fl = get_freepointer(self, fl)
        self.pm[r + PM_FREELIST] = fl
        self.pm[r + PM_COUNTERS] = (page_objects(self, page) << OBJECTS_SHIFT) | taken
        if fl:
            list_lock(self, st)
            self.add_partial(page, DEACTIVATE_TO_HEAD_POS)
            list_unlock(self)
        return taken

    def get_freelist_nofreeze(self, st, page):
        """Take a slab's whole freelist: freelist NULL, inuse = objects, frozen untouched."""
        r: i64 = page * PM_STRIDE
        fl: i64
        counters: i64
        while True:
            fl = self.pm[r + PM_FREELIST]
            counters = self.pm[r + PM_COUNTERS]
            if cmpxchg_double_slab(self, st, page, fl, counters, 0,
                                   (counters & ~INUSE_MASK)
                                   | ((counters >> OBJECTS_SHIFT) & OBJECTS_MASK)):
                return fl

    def cut_freelist(self, st, page):
        """Safe mode, after a freelist led to an object in use: take the rest of the slab's
        freelist out of circulation (freelist NULL, every object counted in use: leaked on
        purpose, as v4.4's "Marking all objects used").  list_lock held if it is listed."""
        self.get_freelist_nofreeze(st, page)
        if self.pm[page * PM_STRIDE + PM_FLAGS] & PG_PARTIAL:
            self.remove_partial(page)

    def get_from_partial_node(self, st, orig_size):
        """get_from_partial_node() (7.0): pop ONE object off the first node partial slab with
        a pair swap (inuse + 1), under list_lock; the slab leaves the list once its freelist
        is empty.  An object, 0 (none), or ERR_CORRUPT (safe mode; reported, list cut).
        Debug caches: alloc_single_from_partial() on each slab in turn until one passes."""
        if nr_partial_of(self) == 0:               # racy check before the lock, as the kernel
            return 0
        list_lock(self, st)
        page: i64 = self.desc[self.d + N_PARTIAL_HEAD]
        r: i64
        fl: i64 = 0
        nxt: i64
        counters: i64
        if self.debug:
            while page:
                nxt = self.pm[page * PM_STRIDE + PM_NEXT]
                fl = self.alloc_single_from_partial(st, page, orig_size)
                if fl:
                    break
                page = nxt
            list_unlock(self)
            return fl
        while page:
            r = page * PM_STRIDE
            fl = self.pm[r + PM_FREELIST]
            counters = self.pm[r + PM_COUNTERS]
            if fl == 0:                             # cannot happen for a listed slab
                break
            nxt = get_freepointer_safe(self, fl, page)
            if cmpxchg_double_slab(self, st, page, fl, counters, nxt, counters + 1):
                if nxt == 0:
                    self.remove_partial(page)
                break
        if fl and self.checks and self.take_object(page, fl) < 0:
            self.cut_freelist(st, page)
            fl = ERR_CORRUPT
        list_unlock(self)
        return fl

    def slab_alloc70(self, c, st, orig_size):
        """___slab_alloc() (7.0): one object from a node partial slab, else from a new slab
        (its rest goes to the partial list).  Counts ALLOC_SLOWPATH.  Debug caches take both
        under list_lock with alloc_debug_processing() (alloc_single_from_partial /
        _new_slab), and try again when a slab fails its checks."""
        stat(self, st, ALLOC_SLOWPATH)
        obj: i64
        page: i64
        one = cython.declare(i64[1])
        while True:
            obj = self.get_from_partial_node(st, orig_size)
            if obj:
                return obj
            page = self.new_slab70(st)
            if page == 0:
                return 0
            stat(self, st, ALLOC_SLAB)
            if self.debug:
                obj = self.alloc_single_from_new_slab(st, page, orig_size)
                if obj:
                    return obj
                continue
            one[0] = 0
            self.alloc_from_new_slab(st, page, one, 0, 1, True)
            return one[0]

    def alloc_single_from_partial(self, st, page, orig_size):
        """alloc_single_from_partial() (debug caches, list_lock held): pop one object off a
        node partial slab and run alloc_debug_processing(); a slab that passes and becomes
        full moves to the full list (with U).  0 when the slab failed its checks: it is marked
        all used and, deviating from 7.0 (which freezes it so that no later free is accepted),
        kept on the full list as v4.4 keeps it."""
        r: i64 = page * PM_STRIDE
        fl: i64
        counters: i64
        nxt: i64
        while True:
            fl = self.pm[r + PM_FREELIST]
            counters = self.pm[r + PM_COUNTERS]
            if fl == 0:                             # cannot happen for a listed slab
                return 0
            if self.checks and self.state[fl >> 3] != OBJ_FREE:
                self.emit(EV_REPORT, REP_FREELIST_LIVE, fl, self.state[fl >> 3], page)
                self.cut_freelist(st, page)
                self.add_full(page)
                return ERR_CORRUPT
            nxt = get_freepointer_safe(self, fl, page)
            if cmpxchg_double_slab(self, st, page, fl, counters, nxt, counters + 1):
                break
        if not self.alloc_debug_processing(st, page, fl, orig_size):
            self.remove_partial(page)
            self.add_full(page)
            return 0
        if self.checks:
            self.state[fl >> 3] = OBJ_LIVE
        # the kernel tests inuse == objects; pyslub tests the freelist it left, the same
        # unless get_freepointer_safe() cut a corrupted one: such a slab has no free object
        # left either, and free_to_partial_list() takes a freelist of NULL to mean "on the
        # full list" (left on the partial list, the next free listed it a second time)
        if nxt == 0:
            self.remove_partial(page)
            self.add_full(page)
        return fl

    def alloc_single_from_new_slab(self, st, page, orig_size):
        """alloc_single_from_new_slab() (debug caches): the first object of a fresh slab
        through alloc_debug_processing(); the slab goes to the node partial list head (the
        full list with U when that was its only object), under list_lock.  0 when it failed
        its checks (kept on the full list, see alloc_single_from_partial)."""
        r: i64 = page * PM_STRIDE
        fl: i64 = self.pm[r + PM_FREELIST]
        objects: i64 = page_objects(self, page)
        self.pm[r + PM_FREELIST] = get_freepointer_safe(self, fl, page)
        self.pm[r + PM_COUNTERS] = (objects << OBJECTS_SHIFT) | 1
        if not self.alloc_debug_processing(st, page, fl, orig_size):
            list_lock(self, st)
            self.add_full(page)
            list_unlock(self)
            return 0
        if self.checks:
            self.state[fl >> 3] = OBJ_LIVE
        list_lock(self, st)
        if objects == 1:
            self.add_full(page)
        else:
            self.add_partial(page, DEACTIVATE_TO_HEAD_POS)
        list_unlock(self)
        return fl

    def refill_objects(self, st, p, off, lo, hi, handout):
        """refill_objects() (7.0): between ``lo`` and ``hi`` objects into p[off..], from the
        node partial list in bulk, then from new slabs.  Returns how many (< lo: out of memory
        or, safe mode, a corrupted freelist was cut)."""
        got: i64
        page: i64
        obj: i64
        if self.debug:              # __kmem_cache_alloc_bulk(): ___slab_alloc once per object
            got = 0
            while got < lo:
                obj = self.slab_alloc70(0, st, self.object_size)
                if obj <= 0:
                    break
                if not handout and self.checks:
                    self.state[obj >> 3] = OBJ_FREE
                p[off + got] = obj
                got += 1
            return got
        got = self.refill_objects_node(st, p, off, lo, hi, handout)
        while got < lo:
            page = self.new_slab70(st)
            if page == 0:
                break
            stat(self, st, ALLOC_SLAB)
            got += self.alloc_from_new_slab(st, page, p, off + got, hi - got, handout)
        return got

    def refill_objects_node(self, st, p, off, lo, hi, handout):
        """__refill_objects_node() with get_partial_node_bulk(): isolate node partial slabs
        under list_lock until the free objects they hold (read racily) reach ``lo`` without
        passing ``hi``; then, unlocked, take each one's whole freelist (the slab looks full),
        give back what exceeds ``hi`` through __slab_free, and relist the slabs not needed."""
        if nr_partial_of(self) == 0:
            return 0
        d: i64 = self.d
        head: i64 = 0
        tail: i64 = 0
        total: i64 = 0
        page: i64
        nxt: i64
        counters: i64
        free: i64
        list_lock(self, st)
        page = self.desc[d + N_PARTIAL_HEAD]
        while page:
            nxt = self.pm[page * PM_STRIDE + PM_NEXT]
            counters = self.pm[page * PM_STRIDE + PM_COUNTERS]
            free = ((counters >> OBJECTS_SHIFT) & OBJECTS_MASK) - (counters & INUSE_MASK)
            if total >= lo and total + free > hi:
                break
            self.remove_partial(page)               # clears PG_PARTIAL: "isolated"
            if tail:
                self.pm[tail * PM_STRIDE + PM_NEXT] = page
            else:
                head = page
            tail = page
            total += free
            if total >= hi:
                break
            page = nxt
        list_unlock(self)
        got: i64 = 0
        fl: i64
        last: i64
        cnt: i64
        base: i64
        span: i64
        fp: i64
        checks: cython.bint = self.checks          # (locals: the loop's stores may alias s)
        mark: cython.bint = handout and checks
        page = head
        while page:
            nxt = self.pm[page * PM_STRIDE + PM_NEXT]
            self.pm[page * PM_STRIDE + PM_NEXT] = 0
            fl = self.get_freelist_nofreeze(st, page)
            base = page_addr(page)                  # get_freepointer_safe() with the slab's
            span = page_objects(self, page) * self.size     # bounds out of the loop
            while fl and got < hi:
                if checks:
                    if self.state[fl >> 3] != OBJ_FREE:
                        self.emit(EV_REPORT, REP_FREELIST_LIVE, fl, self.state[fl >> 3], page)
                        fl = 0                      # the rest is leaked, on purpose
                        break
                    if mark:
                        self.state[fl >> 3] = OBJ_LIVE
                p[off + got] = fl
                got += 1
                fp = get_freepointer(self, fl)
                if bad_freepointer(self, fp, base, span):
                    fp = self.freepointer_corrupt(fl, fp, page)
                fl = fp
            if fl and checks and self.state[fl >> 3] != OBJ_FREE:
                self.emit(EV_REPORT, REP_FREELIST_LIVE, fl, self.state[fl >> 3], page)
                fl = 0                              # (the rest: leaked, on purpose)
            if fl:                                  # more than wanted: give the rest back
                last = fl
                cnt = 1
                nobj: i64 = page_objects(self, page)
                looped: cython.bint = False
                while True:             # (trim_freelist's checks, in the walk to the tail)
                    nxt2: i64 = get_freepointer(self, last)
                    if bad_freepointer(self, nxt2, base, span):
                        nxt2 = self.freepointer_corrupt(last, nxt2, page)
                    if nxt2 == 0:
                        break
                    if checks and self.state[nxt2 >> 3] != OBJ_FREE:
                        set_freepointer(self, last, 0)      # cut before an object in use
                        self.emit(EV_REPORT, REP_FREELIST_LIVE, nxt2, self.state[nxt2 >> 3],
                                  page)
                        break
                    if cnt >= nobj:     # more links than objects: a loop; cut it, walk again
                        if looped:
                            set_freepointer(self, last, 0)  # (cannot happen: trim cut it)
                            break
                        looped = True
                        self.trim_freelist(page, fl)
                        last = fl
                        cnt = 1
                        continue
                    last = nxt2
                    cnt += 1
                self.slab_free70(st, page, fl, last, cnt)
            page = nxt
            if got >= hi:
                break
        if page:                                    # isolated but not needed: relist them
            discard: i64 = 0
            list_lock(self, st)
            while page:
                nxt = self.pm[page * PM_STRIDE + PM_NEXT]
                self.pm[page * PM_STRIDE + PM_NEXT] = 0
                if ((self.pm[page * PM_STRIDE + PM_COUNTERS] & INUSE_MASK) == 0
                        and nr_partial_of(self) >= min_partial_of(self)):
                    self.pm[page * PM_STRIDE + PM_PREV] = discard
                    discard = page
                else:
                    self.add_partial(page, DEACTIVATE_TO_HEAD_POS)
                page = nxt
            list_unlock(self)
            while discard:                          # no FREE_SLAB here, as the kernel
                page = discard
                discard = self.pm[page * PM_STRIDE + PM_PREV]
                self.pm[page * PM_STRIDE + PM_PREV] = 0
                self.discard_slab(page)
        return got

    def slab_free70(self, st, page, head, tail, cnt):
        """__slab_free() (7.0): no frozen slabs, no cpu partial lists.  A slab that was full
        goes to the node partial tail; one that becomes empty is freed once nr_partial >=
        min_partial; an isolated slab (off every list: a refill holds it) is left alone.
        Counts no FREE_SLOWPATH (its callers do)."""
        if self.debug:
            self.free_to_partial_list(st, page, head, tail, cnt)
            return
        r: i64 = page * PM_STRIDE
        locked: cython.bint = False
        on_node_partial: cython.bint = False
        prior: i64
        counters: i64
        inuse: i64
        while True:
            if locked:
                list_unlock(self)
                locked = False
            prior = self.pm[r + PM_FREELIST]
            counters = self.pm[r + PM_COUNTERS]
            if set_freepointer(self, tail, prior):  # its BUG_ON fired: nothing freed
                return
            inuse = ((counters & INUSE_MASK) - cnt) & INUSE_MASK
            if inuse == 0 or prior == 0:            # a list change may be needed
                locked = True
                list_lock(self, st)
                on_node_partial = bool(self.pm[r + PM_FLAGS] & PG_PARTIAL)
            if cmpxchg_double_slab(self, st, page, prior, counters, head,
                                   (counters & ~INUSE_MASK) | inuse):
                break
        case: cython.int = PROBE_PARTIAL
        if locked:
            if prior and not on_node_partial:
                case = PROBE_ISOLATED               # a refill holds it: leave it alone
                list_unlock(self)
            elif inuse == 0 and nr_partial_of(self) >= min_partial_of(self):
                if prior:
                    self.remove_partial(page)
                    stat(self, st, FREE_REMOVE_PARTIAL)
                list_unlock(self)
                stat(self, st, FREE_SLAB)
                self.discard_slab(page)
                case = PROBE_DISCARD
            else:
                if prior == 0:
                    self.add_partial(page, DEACTIVATE_TO_TAIL_POS)
                    stat(self, st, FREE_ADD_PARTIAL)
                    case = PROBE_NODE_PARTIAL
                list_unlock(self)
        if self.observe & EV_MASK_PROBE:
            self.emit(EV_SLAB_FREE, page, cnt, 0, case)

    def free_to_partial_list(self, st, page, head, tail, cnt):
        """free_to_partial_list() (7.0 debug caches): everything under list_lock --
        free_debug_processing(), then the free itself; a slab that was full leaves the full
        list for the node partial tail, one that becomes empty is freed once nr_partial >=
        min_partial."""
        r: i64 = page * PM_STRIDE
        prior: i64
        counters: i64
        inuse: i64
        discard: cython.bint = False
        case: cython.int = PROBE_REFUSED
        list_lock(self, st)
        if self.free_debug_processing(page, head, tail, cnt):
            case = PROBE_PARTIAL
            while True:                             # (the swap: other paths may not hold it)
                prior = self.pm[r + PM_FREELIST]
                counters = self.pm[r + PM_COUNTERS]
                set_freepointer(self, tail, prior)
                inuse = ((counters & INUSE_MASK) - cnt) & INUSE_MASK
                if cmpxchg_double_slab(self, st, page, prior, counters, head,
                                       (counters & ~INUSE_MASK) | inuse):
                    break
            discard = inuse == 0 and nr_partial_of(self) >= min_partial_of(self)
            if prior == 0:                          # was on the full list
                self.remove_full(page)
                if not discard:
                    self.add_partial(page, DEACTIVATE_TO_TAIL_POS)
                    stat(self, st, FREE_ADD_PARTIAL)
                    case = PROBE_NODE_PARTIAL
            elif discard:
                self.remove_partial(page)
                stat(self, st, FREE_REMOVE_PARTIAL)
        list_unlock(self)
        if discard:
            stat(self, st, FREE_SLAB)
            self.discard_slab(page)
            case = PROBE_DISCARD
        if self.observe & EV_MASK_PROBE:
            self.emit(EV_SLAB_FREE, page, cnt, 0, case)

    # =========================================================================================
    # shrink (list_lock taken here)
    # =========================================================================================

    def shrink_node(self, st):
        """__kmem_cache_shrink() after flush_all (v4.4): under list_lock, take the empty slabs
        off the partial list and move slabs with at most SHRINK_PROMOTE_MAX (32) free objects to
        its head, fullest first (list_move() adds at a bucket's head, so each bucket is in reverse
        order of the walk; the slabs with more free objects follow in their order); then free
        the empty ones.
        Counts nothing, as the kernel.  Returns the number of slabs freed."""
        promote_head = cython.declare(i64[32])
        promote_tail = cython.declare(i64[32])
        i: cython.int
        for i in range(32):
            promote_head[i] = 0
            promote_tail[i] = 0
        d: i64 = self.d
        discard: i64 = 0
        rest_head: i64 = 0
        rest_tail: i64 = 0
        freed: i64 = 0
        kept: i64 = 0
        page: i64
        nxt: i64
        objects: i64
        free: i64
        counters: i64
        list_lock(self, st)
        page = self.desc[d + N_PARTIAL_HEAD]        # detach the whole list, then rebuild it
        self.desc[d + N_PARTIAL_HEAD] = 0
        self.desc[d + N_PARTIAL_TAIL] = 0
        while page:
            nxt = self.pm[page * PM_STRIDE + PM_NEXT]
            counters = self.pm[page * PM_STRIDE + PM_COUNTERS]
            objects = (counters >> OBJECTS_SHIFT) & OBJECTS_MASK
            free = objects - (counters & INUSE_MASK)
            self.pm[page * PM_STRIDE + PM_NEXT] = 0
            if free == objects:
                self.pm[page * PM_STRIDE + PM_FLAGS] &= ~PG_PARTIAL
                self.pm[page * PM_STRIDE + PM_PREV] = discard
                discard = page
            elif 0 < free <= 32:                    # list_move(): to the bucket's head
                i = free - 1
                self.pm[page * PM_STRIDE + PM_NEXT] = promote_head[i]
                if promote_tail[i] == 0:
                    promote_tail[i] = page
                promote_head[i] = page
                kept += 1
            else:
                if rest_tail:
                    self.pm[rest_tail * PM_STRIDE + PM_NEXT] = page
                else:
                    rest_head = page
                rest_tail = page
                kept += 1
            page = nxt
        # list_splice(promote + i, &n->partial) for i = 31 .. 0 puts bucket 0 first:
        # chain bucket 0, 1, ..., 31, then the slabs with more free objects, and relink prev
        tail: i64 = 0
        for i in range(33):
            page = promote_head[i] if i < 32 else rest_head
            if page == 0:
                continue
            if tail:
                self.pm[tail * PM_STRIDE + PM_NEXT] = page
            else:
                self.desc[d + N_PARTIAL_HEAD] = page
            tail = promote_tail[i] if i < 32 else rest_tail
        self.desc[d + N_PARTIAL_TAIL] = tail
        self.desc[d + N_NR_PARTIAL] = kept
        nxt = 0
        page = self.desc[d + N_PARTIAL_HEAD]
        while page:
            self.pm[page * PM_STRIDE + PM_PREV] = nxt
            nxt = page
            page = self.pm[page * PM_STRIDE + PM_NEXT]
        list_unlock(self)
        while discard:
            page = discard
            discard = self.pm[page * PM_STRIDE + PM_PREV]
            self.pm[page * PM_STRIDE + PM_PREV] = 0
            self.discard_slab(page)
            freed += 1
        return freed

    # =========================================================================================
    # Observation hooks (record_frees)
    # =========================================================================================

    def _add_recorder(self, rec, what=EV_MASK_RECORD):
        """From now on append to ``rec`` (a list) every list freed into this cache
        (``what`` EV_MASK_RECORD: record_frees) or every __slab_free call (EV_MASK_PROBE)."""
        self.drain()
        self.recorders.append((what, rec))
        self.observe |= what

    def _remove_recorder(self, rec):
        self.drain()
        self.recorders = [(w, r) for w, r in self.recorders if r is not rec]
        mask: i64 = 0
        for w, _ in self.recorders:
            mask |= w
        self.observe = mask

    def __repr__(self):
        return (f"<KmemCache {self.name!r} object_size={self.object_size} size={self.size} "
                f"order={self.order} objs_per_slab={self.objects}>")


@cython.cfunc
@cython.exceptval(-1, check=False)
def current_cpu(s: KmemCache) -> i64:
    """The logical cpu the calling thread runs on for this cache's Memory, and its seat:
    ``cpu | seat << 32``.  The Memory's binder (Python) fills the one-entry TLS cache on a miss
    (tls_* live in this module only: each compiled module has its own copy of a C TLS)."""
    if tls_token() != s.token:
        s.binder()
    cpu: i64 = tls_cpu()
    if cpu < 0:
        cpu = getcpu() % s.nr_cpus
    return cpu | (tls_seat() << 32)


if not cython.compiled:
    import sys as _sys

    def _read_only_outside_pyslub(self, name, value):
        """Uncompiled, attributes are plain Python ones: refuse writes that do not come from
        pyslub's own code (properties with setters, the tunables, still work), as the compiled
        class's C attributes do."""
        prop = getattr(type(self), name, None)
        if not isinstance(prop, property):
            caller = _sys._getframe(1).f_globals.get("__name__", "")
            if not caller.startswith("pyslub."):
                raise AttributeError(f"attribute {name!r} of {type(self).__name__} is read-only")
        object.__setattr__(self, name, value)

    KmemCache.__setattr__ = _read_only_outside_pyslub
