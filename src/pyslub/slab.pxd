# C-level declaration of the slab core (slab.py).  Fields are commented where they are declared;
# the invariants and the lock order are in slab.py's header.
from pyslub._layout cimport *
from pyslub._prim cimport cmpxchg_double, this_cpu_cmpxchg_double, barrier
from pyslub.page_alloc cimport PageAllocator

cdef class KmemCache:
    # --- where things live ---------------------------------------------------------------------
    cdef readonly PageAllocator pa    # the arena and its page records
    cdef readonly i64[::1] words             # arena as 64-bit words (free pointers live in the objects)
    cdef readonly i64[::1] pm              # page records (struct page)
    cdef readonly object cpu_mem      # mmap backing cpu_slab (16-byte aligned pairs)
    cdef readonly i64[::1] cpu_slab          # nr_cpus records of CPU_STRIDE words: kmem_cache_cpu + stats
    # --- geometry (kernel struct kmem_cache) -----------------------------------------------------
    cdef readonly str name
    cdef readonly int id              # page.slab_cache of this cache's slabs
    cdef readonly i64 flags           # SLAB_* | OBJECT_POISON | CMPXCHG_DOUBLE
    cdef readonly i64 object_size     # what the user asked for
    cdef readonly i64 size            # slot size incl. metadata and alignment
    cdef readonly i64 align
    cdef readonly i64 offset          # free pointer offset inside a slot
    cdef readonly i64 inuse           # offset where metadata starts
    cdef readonly int order           # oo: preferred slab order ...
    cdef readonly i64 objects         # ... and its objects per slab
    cdef readonly int min_order       # min: smallest order holding one object ...
    cdef readonly i64 min_objects     # ... and its objects per slab
    cdef readonly i64 min_partial     # keep at least this many empty-able slabs on the node list
    cdef readonly i64 cpu_partial     # max free objects kept on each cpu partial list
    cdef readonly i64 reciprocal_size # round(2**32 / size): object index without a division
    cdef readonly i64 arena_bytes
    cdef readonly int nr_cpus
    cdef readonly i64 tid_step        # TID_STEP = roundup_pow_of_two(nr_cpus)
    cdef readonly bint debug          # kmem_cache_debug(s)
    # --- kmem_cache_node (one node) --------------------------------------------------------------
    cdef readonly i64 nr_partial      # slabs on the partial list    [list_lock]
    cdef readonly i64 partial_head            # first / last page on it       [list_lock]
    cdef readonly i64 partial_tail
    cdef readonly i64 full_head               # full list, SLAB_STORE_USER only [list_lock]
    cdef readonly i64 full_tail
    cdef readonly i64 nr_slabs        # all slabs of the cache (atomic in the kernel)
    cdef readonly i64 total_objects   # objects in all slabs
    cdef readonly int list_lock       # 1 while held (serialised model; a spinlock later)
    # --- bulk settings ---------------------------------------------------------------------------
    cdef readonly int fb_strategy     # default free_bulk strategy (FB_*)
    cdef readonly int lookahead       # look-ahead depth of the lookahead strategies (3)
    # --- observation ---------------------------------------------------------------------------
    cdef public object recorder       # None, or a list collecting (slab, objects, kind) per free
    cdef readonly list reports        # kernel-style reports of detected corruption
    cdef readonly bint dead           # destroyed

    # freelist words
    cdef i64 freepointer_corrupt(self, i64 obj, i64 fp, i64 page) noexcept
    # node lists
    cdef void take_list_lock(self, i64 c) noexcept
    cdef void release_list_lock(self) noexcept
    cdef void add_partial(self, i64 page, int tail) noexcept
    cdef void remove_partial(self, i64 page) noexcept
    cdef void add_full(self, i64 page) noexcept
    cdef void remove_full(self, i64 page) noexcept
    # slabs
    cdef i64 new_slab(self, i64 c) noexcept
    cdef void discard_slab(self, i64 page) noexcept
    # allocation
    cdef i64 slab_alloc_node(self) noexcept
    cdef i64 slab_alloc_slowpath(self, i64 c) noexcept
    cdef i64 load_freelist(self, i64 c, i64 page, i64 freelist) noexcept
    cdef i64 get_freelist(self, i64 page) noexcept
    cdef i64 new_slab_objects(self, i64 c) noexcept
    cdef i64 get_partial_node(self, i64 c) noexcept
    cdef bint alloc_debug_processing(self, i64 page, i64 obj) noexcept
    # cpu slab and cpu partial list
    cdef void deactivate_slab(self, i64 c, i64 page, i64 freelist) noexcept
    cdef void flush_slab(self, i64 c) noexcept
    cdef void put_cpu_partial(self, i64 c, i64 page, bint drain) noexcept
    cdef void unfreeze_partials(self, i64 c) noexcept
    # free
    cdef void do_slab_free(self, i64 page, i64 head, i64 tail, i64 cnt) noexcept
    cdef void slab_free_slowpath(self, i64 c, i64 page, i64 head, i64 tail, i64 cnt) noexcept
    cdef bint free_debug_processing(self, i64 page, i64 head, i64 tail, i64 cnt) noexcept
    cdef void record(self, i64 page, i64 head, i64 cnt, int fast) noexcept
    cdef i64 check_free_addr(self, i64 addr) noexcept
    cdef i64 cache_free(self, i64 addr) noexcept


# Tiny helpers with the kernel's names, inline in every module that cimports this file.
# slab.py defines their plain-Python twins.

cdef inline i64 get_freepointer(KmemCache s, i64 obj) noexcept nogil:
    """The free pointer stored inside a free object."""
    return s.words[(obj + s.offset) >> 3]

cdef inline void set_freepointer(KmemCache s, i64 obj, i64 fp) noexcept nogil:
    s.words[(obj + s.offset) >> 3] = fp

cdef inline i64 obj_to_index(KmemCache s, i64 off) noexcept nogil:
    """Slot index of byte offset ``off`` in a slab, rounded: exact when ``off`` is a slot start
    (reciprocal_size instead of a division); ``obj_to_index(s, off) * s.size == off`` tells."""
    return (off * s.reciprocal_size + RECIPROCAL_HALF) >> RECIPROCAL_SHIFT

cdef inline bint bad_freepointer(KmemCache s, i64 fp, i64 base, i64 span) noexcept nogil:
    """fp is neither NULL nor an object slot of the slab whose slots cover [base, base+span)."""
    cdef i64 off = fp - base
    return fp != 0 and (off < 0 or off >= span or obj_to_index(s, off) * s.size != off)

cdef inline i64 get_freepointer_safe(KmemCache s, i64 obj, i64 page) noexcept:
    """get_freepointer(), checked: the next free object must be an object of the same slab.

    pyslub deviation: the kernel trusts object memory; we must never leave the arena.
    """
    cdef i64 fp = s.words[(obj + s.offset) >> 3]
    if bad_freepointer(s, fp, page << PAGE_SHIFT,
                       ((s.pm[page * PM_STRIDE + PM_COUNTERS] >> OBJECTS_SHIFT) & OBJECTS_MASK)
                       * s.size):
        return s.freepointer_corrupt(obj, fp, page)
    return fp

cdef inline i64 object_page(KmemCache s, i64 addr) noexcept nogil:
    """The slab page of ``addr`` if it is an object slot of this cache, else BAD_* (< 0)."""
    if addr == 0:
        return BAD_NULL
    if addr < 0 or addr >= s.arena_bytes:
        return BAD_OUTSIDE
    cdef i64 page = s.pm[(addr >> PAGE_SHIFT) * PM_STRIDE + PM_HEAD]
    cdef i64 r = page * PM_STRIDE
    if page == 0 or not (s.pm[r + PM_FLAGS] & PG_SLAB):
        return BAD_NOT_SLAB
    if s.pm[r + PM_SLAB_CACHE] != s.id:
        return BAD_OTHER_CACHE
    cdef i64 off = addr - (page << PAGE_SHIFT)
    cdef i64 idx = obj_to_index(s, off)
    if idx * s.size != off or idx >= ((s.pm[r + PM_COUNTERS] >> OBJECTS_SHIFT) & OBJECTS_MASK):
        return BAD_BOUNDARY
    return page

cdef inline i64 virt_to_head_page(KmemCache s, i64 addr) noexcept nogil:
    """Index of the compound head page of a (validated) address; 0 when not allocated."""
    return s.pm[(addr >> PAGE_SHIFT) * PM_STRIDE + PM_HEAD]

cdef inline i64 this_cpu(KmemCache s) noexcept nogil:
    """Word index of the current cpu's kmem_cache_cpu record."""
    return s.pa.cur_cpu * CPU_STRIDE

cdef inline void stat(KmemCache s, i64 c, int item) noexcept nogil:
    s.cpu_slab[c + C_STAT + item] += 1

cdef inline i64 next_tid(KmemCache s, i64 tid) noexcept nogil:
    return tid + s.tid_step

cdef inline i64 page_objects(KmemCache s, i64 page) noexcept nogil:
    return (s.pm[page * PM_STRIDE + PM_COUNTERS] >> OBJECTS_SHIFT) & OBJECTS_MASK

cdef inline bint cmpxchg_double_slab(KmemCache s, i64 page, i64 old_fl, i64 old_cnt,
                                     i64 new_fl, i64 new_cnt) noexcept nogil:
    """Swap (page.freelist, page.counters): the kernel's locked cmpxchg16b (or slab_lock)."""
    cdef i64 c = this_cpu(s)
    stat(s, c, CMPXCHG_DOUBLE_SLAB)
    if cmpxchg_double(&s.pm[page * PM_STRIDE + PM_FREELIST], old_fl, old_cnt, new_fl, new_cnt):
        return True
    stat(s, c, CMPXCHG_DOUBLE_FAIL)
    return False

cdef inline bint this_cpu_cmpxchg(KmemCache s, i64 c, i64 old_fl, i64 old_tid,
                                  i64 new_fl, i64 new_tid) noexcept nogil:
    """Swap (c.freelist, c.tid) of cpu record ``c``: cmpxchg16b without the lock prefix."""
    stat(s, c, CMPXCHG_DOUBLE_CPU)
    return this_cpu_cmpxchg_double(&s.cpu_slab[c + C_FREELIST], old_fl, old_tid, new_fl, new_tid)

cdef inline i64 page_addr(i64 page) noexcept nogil:
    return page << PAGE_SHIFT
