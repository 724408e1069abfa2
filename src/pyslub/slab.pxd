# C-level declaration of the slab core (slab.py).  Fields are commented where they are declared;
# the invariants and the lock order are in slab.py's header.
from pyslub._layout cimport *
from pyslub._prim cimport (cmpxchg_double, this_cpu_cmpxchg_double,
                           membarrier, cmpxchg, fetch_add,
                           load_acquire, store_release, cpu_relax, barrier, mutex_lock,
                           mutex_unlock, spin_lock, spin_unlock, gettid, swab, mix64)
from pyslub.page_alloc cimport Segment

cdef class KmemCache:
    # --- where things live (private: nothing here is reachable from Python) -------------------
    cdef Segment seg                  # the mapping holding all state below
    cdef i64[::1] words               # the arena as 64-bit words (free pointers live in objects)
    cdef i64[::1] pm                  # page records (struct page)
    cdef i64[::1] meta                # metadata region (cpu records, counters, sheaves)
    cdef i64[::1] desc                # descriptor words of every cache; ours start at d
    cdef unsigned char[::1] state     # object state bytes (OBJ_*), addr >> 3
    cdef i64[::1] ring                # process-local event ring (reports, recorders, probes)
    cdef i64 d                        # word index of our descriptor in desc
    cdef i64 cpu_base                 # meta word index of cpu 0's record
    cdef i64 stats_base               # meta word index of the counters [cpu][seat][NR_STATS]
    cdef i64 token                    # the segment's process-local token (thread bindings)
    # --- geometry (kernel struct kmem_cache; immutable, copied from the descriptor) -----------
    cdef readonly str name
    cdef readonly int id              # page.slab_cache of this cache's slabs
    cdef readonly int gen             # GEN_V44 / GEN_V618 / GEN_V70
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
    cdef readonly i64 sheaf_capacity  # 0: no sheaves
    cdef i64 reciprocal_size          # round(2**32 / size): object index without a division
    cdef readonly i64 arena_bytes
    cdef readonly int nr_cpus
    cdef i64 tid_step                 # TID_STEP = roundup_pow_of_two(nr_cpus)
    cdef readonly bint debug          # kmem_cache_debug(s)
    cdef readonly bint checks         # MEM_CHECKS: object state checked on every alloc/free
    cdef readonly bint bias           # biased cpu records (membarrier available, compiled)
    cdef readonly bint robust         # shared segment: claims name their owner, and a waiter
                                      # takes over (and repairs) what a dead process held
    # --- hardening (pyslub.hardening; kernel build options, per cache here) --------------------
    cdef readonly bint hardened       # CONFIG_SLAB_FREELIST_HARDENED: encoded free pointers
    cdef i64 random                   # s->random: their XOR key (never readable from Python)
    cdef readonly bint freelist_random  # CONFIG_SLAB_FREELIST_RANDOM: shuffled new slabs
    cdef i64 random_seed              # random_seq's seed, and of the shuffle start positions
    cdef i64[::1] random_seq          # s->random_seq: a permutation of slot byte offsets
    # --- observation (process-local) -----------------------------------------------------------
    cdef i64 observe                  # EV_* mask of events recorded into ring
    cdef object recorders             # record_frees() collectors (list), drained after each op
    cdef readonly list reports        # kernel-style reports of detected corruption
    cdef object drain_lock            # one thread at a time turns the ring into Python objects
    cdef object binder                # Memory callback: sets the calling thread's binding

    # freelist words
    cdef i64 freepointer_corrupt(self, i64 obj, i64 fp, i64 page) noexcept nogil
    cdef void naive_double_free(self, i64 obj) noexcept nogil
    cdef i64 shuffle_freelist(self, i64 start, i64 objects) noexcept nogil
    cdef void emit(self, i64 kind, i64 a, i64 b, i64 c, i64 d) noexcept nogil
    cpdef drain(self)
    cpdef lost_records(self, i64 lost)
    # node lists (list_lock held)
    cdef void add_partial(self, i64 page, int tail) noexcept nogil
    cdef void remove_partial(self, i64 page) noexcept nogil
    cdef void add_full(self, i64 page) noexcept nogil
    cdef void remove_full(self, i64 page) noexcept nogil
    # slabs
    cdef i64 new_slab(self, i64 st) noexcept nogil
    cdef void discard_slab(self, i64 page) noexcept nogil
    # allocation
    cdef i64 slab_alloc_node(self, i64 c, i64 st, i64 orig_size) noexcept nogil
    cdef i64 slab_alloc(self, i64 c, i64 st, i64 orig_size) noexcept nogil
    cdef i64 slab_alloc_slowpath(self, i64 c, i64 st, i64 orig_size) noexcept nogil
    cdef i64 load_freelist(self, i64 c, i64 st, i64 page, i64 freelist) noexcept nogil
    cdef i64 get_freelist(self, i64 st, i64 page) noexcept nogil
    cdef i64 new_slab_objects(self, i64 c, i64 st) noexcept nogil
    cdef i64 get_partial_node(self, i64 c, i64 st) noexcept nogil
    cdef bint alloc_debug_processing(self, i64 st, i64 page, i64 obj, i64 orig_size) noexcept nogil
    cdef bint check_object(self, i64 page, i64 obj, int val) noexcept nogil
    cdef bint slab_pad_check(self, i64 page) noexcept nogil
    cdef i64 take_object(self, i64 page, i64 obj) noexcept nogil
    # cpu slab and cpu partial list (cpu claimed)
    cdef i64 trim_freelist(self, i64 page, i64 freelist) noexcept nogil
    cdef i64 mark_freelist(self, i64 page, i64 head, i64 limit, int want, int mark) noexcept nogil
    cdef void deactivate_slab(self, i64 c, i64 st, i64 page, i64 freelist) noexcept nogil
    cdef void flush_slab(self, i64 c, i64 st) noexcept nogil
    cdef void put_cpu_partial(self, i64 c, i64 st, i64 page, bint drain) noexcept nogil
    cdef void unfreeze_partials(self, i64 c, i64 st) noexcept nogil
    cdef void flush_cpu_claimed(self, i64 c, i64 st) noexcept nogil
    # free
    cdef void do_slab_free(self, i64 c, i64 st, i64 page, i64 head, i64 tail,
                           i64 cnt) noexcept nogil
    cdef void slab_free_slowpath(self, i64 c, i64 st, i64 page, i64 head, i64 tail,
                                 i64 cnt) noexcept nogil
    cdef bint free_debug_processing(self, i64 page, i64 head, i64 tail, i64 cnt) noexcept nogil
    cdef bint on_freelist(self, i64 page, i64 search) noexcept nogil
    cdef void record(self, i64 page, i64 head, i64 cnt, int fast) noexcept nogil
    cdef i64 check_free_addr(self, i64 addr) noexcept nogil
    cdef i64 release_checked(self, i64 addr) noexcept nogil
    cdef i64 shrink_node(self, i64 st) noexcept nogil
    # 7.0 slab level (no cpu slabs)
    cdef i64 new_slab70(self, i64 st) noexcept nogil
    cdef i64 alloc_from_new_slab(self, i64 st, i64 page, i64 *p, i64 off, i64 count,
                                 bint handout) noexcept nogil
    cdef i64 get_freelist_nofreeze(self, i64 st, i64 page) noexcept nogil
    cdef void cut_freelist(self, i64 st, i64 page) noexcept nogil
    cdef i64 get_from_partial_node(self, i64 st, i64 orig_size) noexcept nogil
    cdef i64 alloc_single_from_partial(self, i64 st, i64 page, i64 orig_size) noexcept nogil
    cdef i64 alloc_single_from_new_slab(self, i64 st, i64 page, i64 orig_size) noexcept nogil
    cdef i64 slab_alloc70(self, i64 c, i64 st, i64 orig_size) noexcept nogil
    cdef i64 refill_objects(self, i64 st, i64 *p, i64 off, i64 lo, i64 hi,
                            bint handout) noexcept nogil
    cdef i64 refill_objects_node(self, i64 st, i64 *p, i64 off, i64 lo, i64 hi,
                                 bint handout) noexcept nogil
    cdef void slab_free70(self, i64 st, i64 page, i64 head, i64 tail, i64 cnt) noexcept nogil
    cdef void free_to_partial_list(self, i64 st, i64 page, i64 head, i64 tail,
                                   i64 cnt) noexcept nogil


# ---- event ring (process-local): EV_* records written by the core, read after each operation --
cdef enum:
    ROBUST_WAIT = 1 << 14             # fast-path waits for TID_BUSY before the slow path
    RING_WORDS = 65536
    R_WPOS = 0                        # next free word (reserved with cmpxchg)
    R_RPOS = 1                        # next record to read (the draining thread's)
    R_LOST = 2                        # records dropped because the ring was full
    R_DATA = 8
    EV_REPORT = 1                     # [kind|EV, report code, object, slab, detail]
    EV_FREE_LIST = 2                  # record_frees: [kind, slab, cnt, fast, obj...]
    EV_SLAB_FREE = 3                  # probe: [kind, slab, cnt, was_frozen, PROBE_* case]
    EV_MASK_RECORD = 2                # observe bits: record_frees() ...
    EV_MASK_PROBE = 4                 # ... probe()


# Tiny helpers with the kernel's names, inline in every module that cimports this file.
# slab.py defines their plain-Python twins.

cdef inline i64 freelist_ptr(KmemCache s, i64 ptr, i64 ptr_addr) noexcept nogil:
    """freelist_ptr_encode() / _decode() of a hardened cache: the same XOR both ways."""
    return ptr ^ s.random ^ swab(ptr_addr)

cdef inline i64 get_freepointer(KmemCache s, i64 obj) noexcept nogil:
    """The free pointer stored inside a free object (decoded when the cache is hardened)."""
    cdef i64 a = obj + s.offset
    if s.hardened:
        return freelist_ptr(s, s.words[a >> 3], a)
    return s.words[a >> 3]

cdef inline bint set_freepointer(KmemCache s, i64 obj, i64 fp) noexcept nogil:
    """Store ``fp`` in free object ``obj``.  True when a hardened cache's BUG_ON(object ==
    fp) fired (naive double-free detection): reported, nothing stored; the caller's free
    path then frees nothing.  (Inlined, the unhardened branch's constant False folds away.)"""
    cdef i64 a = obj + s.offset
    if s.hardened:
        if obj == fp:
            s.naive_double_free(obj)
            return True
        s.words[a >> 3] = freelist_ptr(s, fp, a)
        return False
    s.words[a >> 3] = fp
    return False

cdef inline i64 obj_to_index(KmemCache s, i64 off) noexcept nogil:
    """Slot index of byte offset ``off`` in a slab, rounded: exact when ``off`` is a slot start
    (reciprocal_size instead of a division); ``obj_to_index(s, off) * s.size == off`` tells."""
    return (off * s.reciprocal_size + RECIPROCAL_HALF) >> RECIPROCAL_SHIFT

cdef inline bint bad_freepointer(KmemCache s, i64 fp, i64 base, i64 span) noexcept nogil:
    """fp is neither NULL nor an object slot of the slab whose slots cover [base, base+span)."""
    cdef i64 off = fp - base
    return fp != 0 and (off < 0 or off >= span or obj_to_index(s, off) * s.size != off)

cdef inline i64 page_objects(KmemCache s, i64 page) noexcept nogil:
    return (s.pm[page * PM_STRIDE + PM_COUNTERS] >> OBJECTS_SHIFT) & OBJECTS_MASK

cdef inline i64 get_freepointer_safe(KmemCache s, i64 obj, i64 page) noexcept nogil:
    """get_freepointer(), checked: the next free object must be an object of the same slab.

    pyslub deviation: the kernel trusts object memory; we must never leave the arena.
    """
    cdef i64 fp = get_freepointer(s, obj)
    if bad_freepointer(s, fp, page << PAGE_SHIFT, page_objects(s, page) * s.size):
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

cdef inline void stat(KmemCache s, i64 st, int item) noexcept nogil:
    """Count an event in the calling thread's seat of its cpu (st < 0: the shared seat)."""
    if st >= 0:
        s.meta[st + item] += 1
    else:
        fetch_add(&s.meta[-st + item], 1)

cdef inline void stat_add(KmemCache s, i64 st, int item, i64 n) noexcept nogil:
    if st >= 0:
        s.meta[st + item] += n
    else:
        fetch_add(&s.meta[-st + item], n)

cdef inline i64 next_tid(KmemCache s, i64 tid) noexcept nogil:
    return tid + s.tid_step

cdef inline i64 page_addr(i64 page) noexcept nogil:
    return page << PAGE_SHIFT

cdef inline bint cmpxchg_double_slab(KmemCache s, i64 st, i64 page, i64 old_fl, i64 old_cnt,
                                     i64 new_fl, i64 new_cnt) noexcept nogil:
    """Swap (page.freelist, page.counters): the kernel's locked cmpxchg16b (or slab_lock)."""
    stat(s, st, CMPXCHG_DOUBLE_SLAB)
    if cmpxchg_double(&s.pm[page * PM_STRIDE + PM_FREELIST], old_fl, old_cnt, new_fl, new_cnt):
        return True
    stat(s, st, CMPXCHG_DOUBLE_FAIL)
    cpu_relax()
    return False

cdef inline bint this_cpu_cmpxchg(KmemCache s, i64 st, i64 c, i64 old_fl, i64 old_tid,
                                  i64 new_fl, i64 new_tid) noexcept nogil:
    """Swap (c.freelist, c.tid) of cpu record ``c``."""
    stat(s, st, CMPXCHG_DOUBLE_CPU)
    return this_cpu_cmpxchg_double(&s.meta[c + C_FREELIST], old_fl, old_tid, new_fl, new_tid)

cdef inline void this_cpu_write_owned(KmemCache s, i64 st, i64 c, i64 new_fl,
                                      i64 new_tid) noexcept nogil:
    """this_cpu_cmpxchg_double() by the record's bias owner: two plain stores, tid last.
    Deviation: the kernel's unlocked cmpxchg16b only guards against an interrupt on its own
    cpu between the reads and the write; a biased section has no such interrupter (any other
    thread revokes the bias first and waits for the section to end, bias_revoke), so the
    swap cannot fail and is written directly.  Counted as the swap it stands for."""
    stat(s, st, CMPXCHG_DOUBLE_CPU)
    s.meta[c + C_FREELIST] = new_fl
    s.meta[c + C_TID] = new_tid

cdef inline i64 read_tid(KmemCache s, i64 c) noexcept nogil:
    """c.tid, read before c.freelist and c.page (an acquire load: the kernel's barrier())."""
    return load_acquire(&s.meta[c + C_TID])

cdef inline bint bias_enter(KmemCache s, i64 c, i64 me) noexcept nogil:
    """Enter a section of cpu record ``c`` as its bias owner: True when the calling thread
    holds the record's bias and no revocation is pending; it then uses the record with plain
    loads and stores (no other thread touches it) until bias_exit().  Sections nest."""
    if s.meta[c + C_BIAS] != me:
        return False
    cdef i64 depth = s.meta[c + C_INCS]
    if depth:
        s.meta[c + C_INCS] = depth + 1
        return True
    s.meta[c + C_INCS] = 1
    barrier()                     # store, then load: the revoker's membarrier() fences the cpu
    if s.meta[c + C_REVOKE] == 0:
        return True
    store_release(&s.meta[c + C_INCS], 0)
    return False

cdef inline void bias_exit(KmemCache s, i64 c) noexcept nogil:
    store_release(&s.meta[c + C_INCS], s.meta[c + C_INCS] - 1)

cdef inline i64 cpu_claim(KmemCache s, i64 c, i64 st) noexcept nogil:
    """Enter a section the kernel runs with IRQs disabled on this cpu ("local_irq_disable").

    The record's bias owner just enters (bias_enter: no atomic).  Any other thread sets
    TID_BUSY in c.tid with one pair swap, after revoking a bias another thread holds: until
    cpu_release() no fast path of this cpu can succeed (their swaps expect a tid without
    TID_BUSY) and no other thread enters such a section of this cpu.  Returns the tid found
    (without TID_BUSY), or'ed with CLAIM_BIASED for a biased section."""
    cdef i64 tid, fl, b
    cdef i64 me = gettid()
    cdef int spins = 0
    stat(s, st, LOCAL_LOCK)
    if s.robust:
        return cpu_claim_robust(s, c, me)
    if s.bias and bias_enter(s, c, me):
        return s.meta[c + C_TID] | CLAIM_BIASED
    while True:
        tid = read_tid(s, c)
        if not (tid & TID_BUSY):
            b = s.meta[c + C_BIAS]              # read after a tid without TID_BUSY: a bias is
            if b != 0 and b != me:              # only ever taken with TID_BUSY set
                bias_revoke(s, c, st)
                continue
            fl = s.meta[c + C_FREELIST]
            if this_cpu_cmpxchg_double(&s.meta[c + C_FREELIST], fl, tid, fl, tid | TID_BUSY):
                s.meta[c + C_OWNER] = me
                if s.bias and s.meta[c + C_BIAS] == 0:
                    try_rebias(s, c, me)
                return tid
        spins = wait_busy(spins)

cdef inline void cpu_release(KmemCache s, i64 c, i64 tid) noexcept nogil:
    """Leave the section ("local_irq_enable"): publish everything written meanwhile, then a new
    tid, so that fast paths which read the old one fail and retry."""
    if tid & CLAIM_BIASED:
        s.meta[c + C_TID] = next_tid(s, tid & ~CLAIM_BIASED)
        bias_exit(s, c)
        return
    if s.robust:
        store_release(&s.meta[c + C_TID], next_tid(s, tid))
        spin_unlock(&s.meta[c + C_OWNER])
        return
    s.meta[c + C_OWNER] = 0
    store_release(&s.meta[c + C_TID], next_tid(s, tid))

cdef inline i64 cpu_claim_robust(KmemCache s, i64 c, i64 me) noexcept nogil:
    """cpu_claim() on a shared segment, where the claimant may be killed: the claim's owner
    word C_OWNER is taken first, as a spin lock (its holder's tid), and only its holder sets
    TID_BUSY.  A waiter that finds the holder dead takes the word over (the spin lock checks
    liveness now and then) and repairs the record (claim_repair) before claiming it.  Biased
    records are off on shared segments."""
    cdef i64 tid, fl
    if spin_lock(&s.meta[c + C_OWNER], me):
        claim_repair(s, c)
    while True:                             # fast paths may swap the pair meanwhile
        tid = read_tid(s, c)
        fl = s.meta[c + C_FREELIST]
        if this_cpu_cmpxchg_double(&s.meta[c + C_FREELIST], fl, tid, fl, tid | TID_BUSY):
            return tid

cdef inline bint busy_too_long(KmemCache s, int spins) noexcept nogil:
    """A fast path has waited ROBUST_WAIT times for TID_BUSY to clear on a shared segment:
    it takes the slow path, whose claim notices a dead holder (cpu_claim_robust)."""
    return s.robust and spins >= ROBUST_WAIT

cdef inline int wait_busy(int spins) noexcept nogil:
    """Waiting for another thread of the same cpu: spin briefly, then give the core away."""
    if spins < 128:
        cpu_relax()
    else:
        yield_cpu()
    return spins + 1

cdef inline i64 ring_reserve(KmemCache s, i64 n) noexcept nogil:
    """Reserve n words of the event ring; their index, or 0 when it is full (counted)."""
    cdef i64 w
    while True:
        w = s.ring[R_WPOS]
        if w + n > RING_WORDS:
            fetch_add(&s.ring[R_LOST], 1)
            return 0
        if cmpxchg(&s.ring[R_WPOS], w, w + n):
            return w

cdef inline void ring_commit(KmemCache s, i64 w, i64 head) noexcept nogil:
    """Publish a reserved record: its header word last (readers stop at a zero header)."""
    store_release(&s.ring[w], head)

cdef inline void ring_add(KmemCache s, i64 i, i64 n) noexcept nogil:
    fetch_add(&s.ring[i], n)

cdef inline bint ring_reset(KmemCache s, i64 end) noexcept nogil:
    return cmpxchg(&s.ring[R_WPOS], end, R_DATA)

cdef extern from "<sched.h>" nogil:
    int yield_cpu "sched_yield"()

cdef inline void list_lock(KmemCache s, i64 st) noexcept nogil:
    """spin_lock(&n->list_lock).  Taken over from a holder that died (shared segments): the
    node lists are rebuilt before use (repair_node_lists)."""
    if mutex_lock(&s.desc[s.d + N_LIST_LOCK], gettid()):
        repair_node_lists(s)
    stat(s, st, LIST_LOCK)

cdef inline void list_unlock(KmemCache s) noexcept nogil:
    mutex_unlock(&s.desc[s.d + N_LIST_LOCK])

cdef inline i64 nr_partial_of(KmemCache s) noexcept nogil:
    return s.desc[s.d + N_NR_PARTIAL]

cdef inline i64 min_partial_of(KmemCache s) noexcept nogil:
    return s.desc[s.d + D_MIN_PARTIAL]

cdef inline i64 cpu_partial_of(KmemCache s) noexcept nogil:
    return s.desc[s.d + D_CPU_PARTIAL]

cdef inline void inc_slabs_node(KmemCache s, i64 objects) noexcept nogil:
    fetch_add(&s.desc[s.d + N_NR_SLABS], 1)
    fetch_add(&s.desc[s.d + N_TOTAL_OBJECTS], objects)

cdef inline i64 shuffle_start(KmemCache s, i64 count) noexcept nogil:
    """shuffle_freelist()'s start position: get_random_u32_below(count), drawn from the cache's
    stream (D_SHUFFLE_POS counts the draws, so a fixed random_seed repeats them)."""
    cdef i64 n = fetch_add(&s.desc[s.d + D_SHUFFLE_POS], 1)
    return (mix64(s.random_seed + n) & 0x7FFFFFFF) % count

cdef inline void dec_slabs_node(KmemCache s, i64 objects) noexcept nogil:
    fetch_add(&s.desc[s.d + N_NR_SLABS], -1)
    fetch_add(&s.desc[s.d + N_TOTAL_OBJECTS], -objects)

cdef inline i64 cpu_rec(KmemCache s, i64 cpu) noexcept nogil:
    return s.cpu_base + cpu * CPU_STRIDE

cdef inline i64 stats_rec(KmemCache s, i64 cpu, i64 seat) noexcept nogil:
    """Counter block of (cpu, seat); negative for the shared seat (atomic adds)."""
    cdef i64 st = s.stats_base + (cpu * (NR_SEATS + 1) + seat) * NR_STATS
    return -st if seat == SHARED_SEAT else st

cdef i64 current_cpu(KmemCache s) except -1
cdef void bias_revoke(KmemCache s, i64 c, i64 st) noexcept nogil
cdef void try_rebias(KmemCache s, i64 c, i64 me) noexcept nogil
cdef void claim_repair(KmemCache s, i64 c) noexcept nogil
cdef void repair_node_lists(KmemCache s) noexcept nogil

cdef inline void _registry_lock(Segment seg) noexcept:
    mutex_lock(&seg.hdr[H_REG_LOCK], gettid())

cdef inline void _registry_unlock(Segment seg) noexcept:
    mutex_unlock(&seg.hdr[H_REG_LOCK])


cdef inline unsigned char *arena_mem(KmemCache s) noexcept nogil:
    """The arena as bytes (debug byte checks: pyslub.debug)."""
    return <unsigned char *>&s.words[0]
