# C-level declarations of the sheaf layer and the entry points of every generation (sheaves.py).
from pyslub._layout cimport *
from pyslub.slab cimport *
from libc.string cimport memcpy
from pyslub.bulk cimport kmem_cache_alloc_bulk, kmem_cache_free_bulk
from pyslub._prim cimport (gettid, spin_lock, spin_trylock, spin_unlock, mutex_lock, mutex_unlock,
                           alive, cmpxchg)

cdef i64 alloc_empty_sheaf(KmemCache s, i64 st, i64 capacity) noexcept nogil
cdef void free_empty_sheaf(KmemCache s, i64 st, i64 sh) noexcept nogil
cdef i64 slab_alloc_objects(KmemCache s, i64 c, i64 st, i64 *p, i64 off, i64 n,
                            bint handout) noexcept nogil
cdef void slab_free_objects(KmemCache s, i64 c, i64 st, i64 *p, i64 off, i64 n,
                            int strategy) noexcept nogil
cdef bint refill_sheaf(KmemCache s, i64 c, i64 st, i64 sh) noexcept nogil
cdef void sheaf_flush_unused(KmemCache s, i64 c, i64 st, i64 sh, int strategy) noexcept nogil
cdef i64 sheaf_flush_main_batch(KmemCache s, i64 c, i64 st, int strategy) noexcept nogil
cdef void sheaf_flush_main(KmemCache s, i64 c, i64 st, int strategy) noexcept nogil
cdef bint sheaf_try_flush_main(KmemCache s, i64 c, i64 st, int strategy) noexcept nogil
cdef i64 barn_get_empty_sheaf(KmemCache s, i64 st) noexcept nogil
cdef void barn_put_empty_sheaf(KmemCache s, i64 st, i64 sh) noexcept nogil
cdef void barn_put_full_sheaf(KmemCache s, i64 st, i64 sh) noexcept nogil
cdef i64 barn_get_full_or_empty_sheaf(KmemCache s, i64 st) noexcept nogil
cdef i64 barn_replace_empty_sheaf(KmemCache s, i64 st, i64 empty) noexcept nogil
cdef i64 barn_replace_full_sheaf(KmemCache s, i64 st, i64 full) noexcept nogil
cdef bint pcs_replace_empty_main(KmemCache s, i64 c, i64 st) noexcept nogil
cdef i64 alloc_from_pcs_empty(KmemCache s, i64 c, i64 st) noexcept nogil
cdef void pcs_install_empty_sheaf(KmemCache s, i64 c, i64 st, i64 empty) noexcept nogil
cdef bint pcs_replace_full_main(KmemCache s, i64 c, i64 st) noexcept nogil
cdef bint free_to_pcs_full(KmemCache s, i64 c, i64 st, i64 obj) noexcept nogil
cdef i64 alloc_from_pcs_bulk(KmemCache s, i64 c, i64 st, i64 size, i64 *p) noexcept nogil
cdef void pcs_repair(KmemCache s, i64 c, i64 st) noexcept nogil
cdef void barn_repair(KmemCache s) noexcept nogil
cdef i64 give_back(KmemCache s, i64 c, i64 st, i64 *p, i64 n) noexcept nogil
cdef void free_to_pcs_bulk(KmemCache s, i64 c, i64 st, i64 size, i64 *p,
                           int strategy) noexcept nogil
cdef void pcs_flush_all(KmemCache s, i64 c, i64 st) noexcept nogil
cdef void barn_shrink(KmemCache s, i64 c, i64 st) noexcept nogil
cdef i64 *_meta_base(KmemCache s) noexcept nogil
cdef i64 alloc_bulk_sheaves(KmemCache s, i64 c, i64 st, i64 size, i64 *p) noexcept nogil


cdef int pcs_trylock_slow(KmemCache s, i64 c, i64 st, i64 me) noexcept nogil

cdef enum:
    PCS_LOCKED = 1                    # pcs_trylock(): the lock word is held
    PCS_BIASED = 2                    # pcs_trylock(): a biased section is open

cdef inline int pcs_trylock(KmemCache s, i64 c, i64 st) noexcept nogil:
    """local_trylock(&s->cpu_sheaves->lock) of cpu record ``c``: free for the record's bias
    owner (the kernel's !RT local_trylock only disables preemption): PCS_BIASED; else
    pcs_trylock_slow() (not inline: a trylock of the lock word, a bias revocation): PCS_LOCKED
    or 0 (not taken)."""
    cdef i64 me = gettid()
    if s.bias and bias_enter(s, c, me):
        return PCS_BIASED
    return pcs_trylock_slow(s, c, st, me)

cdef inline void pcs_lock(KmemCache s, i64 c, i64 st) noexcept nogil:
    """local_lock(): the blocking variant (flushes)."""
    cdef i64 me = gettid()
    cdef i64 b
    if s.bias and bias_enter(s, c, me):
        return
    if spin_lock(&s.meta[c + C_LOCK], me):
        pcs_repair(s, c, st)                # taken over from a holder that died
    b = s.meta[c + C_BIAS]
    if b != 0 and b != me:
        bias_revoke(s, c, st)

cdef inline void pcs_unlock(KmemCache s, i64 c) noexcept nogil:
    """A biased hold is the owner's (bias == me and a section open); anything else holds the
    lock word (never both: an owner inside its section always re-enters biased)."""
    if s.meta[c + C_INCS] and s.meta[c + C_BIAS] == gettid():
        bias_exit(s, c)
    else:
        spin_unlock(&s.meta[c + C_LOCK])

cdef inline void pcs_unlock_held(KmemCache s, i64 c, int how) noexcept nogil:
    """pcs_unlock() by a holder that still holds the lock the way pcs_trylock() said it took
    it (``how``; nothing dropped and retaken since): no re-check of the bias."""
    if how == PCS_BIASED:
        bias_exit(s, c)
    else:
        spin_unlock(&s.meta[c + C_LOCK])

cdef inline i64 *_meta_words(KmemCache s) noexcept nogil:
    """The metadata region as a C array (a local pointer is not re-read through ``s`` after
    every store, as the memoryview's data pointer is)."""
    return &s.meta[0]

cdef inline void copy_words(i64 *dst, i64 di, i64 *src, i64 si, i64 n) noexcept nogil:
    """dst[di:di+n] = src[si:si+n] (no overlap: a sheaf and the caller's array)."""
    if n > 0:
        memcpy(&dst[di], &src[si], n * 8)

cdef inline i64 take_sheaf_object(KmemCache s, i64 obj) noexcept nogil:
    """Safe mode: take_object() of an object leaving a sheaf, its common case inline (the
    state byte is OBJ_FREE: now OBJ_LIVE); anything else is take_object()'s report."""
    if s.state[obj >> 3] != OBJ_FREE:
        return s.take_object(virt_to_head_page(s, obj), obj)
    s.state[obj >> 3] = OBJ_LIVE
    return 0

cdef inline i64 alloc_from_pcs(KmemCache s, i64 c, i64 st) noexcept nogil:
    """alloc_from_pcs(): pop main's top object under the cpu's local_trylock; 0 when the lock
    is taken or no sheaf can be made usable (the caller takes the slab path), ERR_CORRUPT.
    Inline in the callers: the pop; an empty main goes to alloc_from_pcs_empty() (sheaves.py:
    __pcs_replace_empty_main and the pop)."""
    cdef int how = pcs_trylock(s, c, st)
    cdef i64 main, size, obj
    if not how:
        return 0
    stat(s, st, LOCAL_LOCK)
    main = s.meta[c + C_MAIN]
    size = s.meta[main + SH_SIZE]
    if size == 0:
        return alloc_from_pcs_empty(s, c, st)
    obj = s.meta[main + SH_OBJECTS + size - 1]
    s.meta[main + SH_SIZE] = size - 1
    if s.checks and take_sheaf_object(s, obj) < 0:
        pcs_unlock_held(s, c, how)
        return ERR_CORRUPT
    pcs_unlock_held(s, c, how)
    stat(s, st, ALLOC_FASTPATH if s.gen == GEN_V70 else ALLOC_PCS)
    return obj

cdef inline bint free_to_pcs(KmemCache s, i64 c, i64 st, i64 obj) noexcept nogil:
    """free_to_pcs(): push onto main under the local_trylock; False: take the slab path.
    Inline in the callers: the push; a full main goes to free_to_pcs_full() (sheaves.py:
    __pcs_replace_full_main and the push)."""
    cdef int how = pcs_trylock(s, c, st)
    cdef i64 main, size
    if not how:
        return False
    stat(s, st, LOCAL_LOCK)
    main = s.meta[c + C_MAIN]
    size = s.meta[main + SH_SIZE]
    if size == s.sheaf_capacity:
        return free_to_pcs_full(s, c, st, obj)
    s.meta[main + SH_OBJECTS + size] = obj
    s.meta[main + SH_SIZE] = size + 1
    pcs_unlock_held(s, c, how)
    stat(s, st, FREE_FASTPATH if s.gen == GEN_V70 else FREE_PCS)
    return True

cdef inline void barn_lock(KmemCache s, i64 st) noexcept nogil:
    if mutex_lock(&s.desc[s.d + B_LOCK], gettid()):
        barn_repair(s)                      # taken over from a holder that died
    stat(s, st, BARN_LOCK)

cdef inline void barn_unlock(KmemCache s) noexcept nogil:
    mutex_unlock(&s.desc[s.d + B_LOCK])


# ---- entry points of every generation (inline: a cache without sheaves pays one branch) -----

cdef inline i64 kmem_cache_alloc(KmemCache s, i64 c, i64 st) noexcept nogil:
    """slab_alloc_node(): sheaves first when the cache has them, then the generation's slab
    path.  An object, 0 (out of memory) or ERR_CORRUPT."""
    cdef i64 obj
    if s.sheaf_capacity:
        obj = alloc_from_pcs(s, c, st)
        if obj:
            return obj
    return s.slab_alloc_node(c, st, s.object_size)

cdef inline i64 kmalloc_cache(KmemCache s, i64 c, i64 st, i64 size) noexcept nogil:
    """__kmalloc_cache_noprof() (kmalloc_trace() in v6.1): an object of the kmalloc cache
    ``s`` for a request of ``size`` bytes, which a debug kmalloc cache records (orig_size)."""
    cdef i64 obj
    if s.sheaf_capacity:
        obj = alloc_from_pcs(s, c, st)
        if obj:
            return obj
    return s.slab_alloc_node(c, st, size)

cdef inline void kmem_cache_free(KmemCache s, i64 c, i64 st, i64 page, i64 obj) noexcept nogil:
    """slab_free(): sheaves first, then the slab (7.0 counts FREE_SLOWPATH for it)."""
    if s.sheaf_capacity and free_to_pcs(s, c, st, obj):
        return
    if s.gen == GEN_V70:
        s.slab_free70(st, page, obj, obj, 1)
        stat(s, st, FREE_SLOWPATH)
        return
    s.do_slab_free(c, st, page, obj, 0, 1)

cdef inline i64 kmem_cache_alloc_bulk_any(KmemCache s, i64 c, i64 st, i64 size,
                                          i64 *p) noexcept nogil:
    """kmem_cache_alloc_bulk() of every generation: all or nothing (size, 0, ERR_CORRUPT)."""
    if not s.sheaf_capacity and s.gen != GEN_V70:
        return kmem_cache_alloc_bulk(s, c, st, size, p)
    return alloc_bulk_sheaves(s, c, st, size, p)

cdef inline void kmem_cache_free_bulk_any(KmemCache s, i64 c, i64 st, i64 size, i64 *p,
                                          int strategy) noexcept nogil:
    """kmem_cache_free_bulk() of every generation; ``strategy`` is the detached-freelist
    generation for whatever goes to slabs (everything, without sheaves)."""
    if s.sheaf_capacity:
        free_to_pcs_bulk(s, c, st, size, p, strategy)
        return
    kmem_cache_free_bulk(s, c, st, size, p, strategy)
    if s.gen == GEN_V70:
        stat_add(s, st, FREE_SLOWPATH, size)       # slab_free_bulk()
