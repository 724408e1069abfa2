"""Per-cpu sheaves and the barn (Linux 6.18 opt-in, 7.0 for every cache), and the entry points
that pick a generation's paths.

A **sheaf** is an array of object pointers (Bonwick's magazine): the fast paths pop and push
``objects[size]`` under the cpu's ``local_trylock`` -- no atomic on the object, no list.  Each
cpu has a ``main`` sheaf (never NULL while unlocked for a cache with sheaves) and maybe a
``spare``; the per-node **barn** keeps full and empty sheaves for exchange (at most
MAX_FULL_SHEAVES / MAX_EMPTY_SHEAVES where the kernel checks).  Sheaves are refilled from slabs
in bulk and flushed back through the detached-freelist bulk free in batches of PCS_BATCH_MAX.

=============  ===============================================================================
generation     what sits below the sheaves
=============  ===============================================================================
6.18           the v4.4 cpu slabs (``create_cache(..., sheaf_capacity=N)`` opts a cache in):
               refill = kmem_cache_alloc_bulk, flush = kmem_cache_free_bulk into the cpu
               slab or __slab_free; counters ALLOC_PCS / FREE_PCS
7.0            node partial lists only (slab.py's ``*70`` functions): refill = refill_objects
               (get_partial_node_bulk, then new slabs), flush = __kmem_cache_free_bulk;
               capacity from calculate_sheaf_capacity (sizing.py); alloc_fastpath /
               free_fastpath now count sheaf operations
=============  ===============================================================================

Debug caches have no sheaves (capacity 0), in both.

Lock order (with slab.py's): pcs lock (C_LOCK: a trylock on the fast paths; a thread that
finds it taken by another thread of its cpu goes to the slab paths, as the kernel's
local_trylock callers do) -> barn lock (B_LOCK, which also guards the cache's pool of sheaf
blocks) -> the metadata allocator (leaf).  Neither is held while slabs are refilled or flushed:
those run unlocked on sheaves detached from the cpu, or on a batch copied to the stack.

What protects what: a sheaf attached to a cpu (main, spare) with its size and objects -- that
cpu's pcs lock; a sheaf in the barn -- the barn lock; a detached sheaf -- the thread holding it.
Objects in sheaves are in use from their slab's view (counted in ``inuse``) and free from the
user's (state OBJ_FREE in safe mode).

pyslub deviations: sheaves live in the metadata region (the kernel kmallocs them) so that no
object view can reach them; SHEAF_ALLOC / SHEAF_FREE count the same events.  Freed sheaf
blocks stay with their cache.  One node: get_barn() is the cache's one barn and no object is
remote.  No kfree_rcu (its counters stay 0).  6.18 stacks its sheaves on v4.4's cpu slabs.
"""

import cython

if not cython.compiled:
    from pyslub._layout import *  # noqa: F403 (C enums when compiled)
    from pyslub._prim import gettid, mutex_lock, mutex_unlock, spin_lock, spin_trylock, spin_unlock
    from pyslub.bulk import kmem_cache_alloc_bulk, kmem_cache_free_bulk
    from pyslub.slab import (
        EV_REPORT,
        KmemCache,
        current_cpu,
        stat,
        stat_add,
        stats_rec,
        virt_to_head_page,
    )


    def pcs_trylock(s, c, st):
        return spin_trylock(s.meta, c + C_LOCK, gettid())

    def pcs_lock(s, c, st):
        spin_lock(s.meta, c + C_LOCK, gettid())

    def pcs_unlock(s, c):
        spin_unlock(s.meta, c + C_LOCK)

    def pcs_unlock_held(s, c, how):
        spin_unlock(s.meta, c + C_LOCK)

    def _meta_words(s):
        return s.meta

    def copy_words(dst, di, src, si, n):
        for i in range(n):
            dst[di + i] = src[si + i]

    def take_sheaf_object(s, obj):
        if s.state[obj >> 3] != OBJ_FREE:
            return s.take_object(virt_to_head_page(s, obj), obj)
        s.state[obj >> 3] = OBJ_LIVE
        return 0

    def alloc_from_pcs(s: KmemCache, c: i64, st: i64) -> i64:
        """alloc_from_pcs(): pop main's top object under the cpu's local_trylock; 0 when the
        lock is taken or no sheaf can be made usable (the caller takes the slab path),
        ERR_CORRUPT.  (Compiled: inline in sheaves.pxd.)"""
        how = pcs_trylock(s, c, st)
        if not how:
            return 0
        stat(s, st, LOCAL_LOCK)
        main: i64 = s.meta[c + C_MAIN]
        size: i64 = s.meta[main + SH_SIZE]
        if size == 0:
            return alloc_from_pcs_empty(s, c, st)
        obj: i64 = s.meta[main + SH_OBJECTS + size - 1]
        s.meta[main + SH_SIZE] = size - 1
        if s.checks and take_sheaf_object(s, obj) < 0:
            pcs_unlock_held(s, c, how)
            return ERR_CORRUPT
        pcs_unlock_held(s, c, how)
        stat(s, st, ALLOC_FASTPATH if s.gen == GEN_V70 else ALLOC_PCS)
        return obj

    def free_to_pcs(s: KmemCache, c: i64, st: i64, obj: i64) -> cython.bint:
        """free_to_pcs(): push onto main under the local_trylock; False: take the slab path.
        (Compiled: inline in sheaves.pxd.)"""
        how = pcs_trylock(s, c, st)
        if not how:
            return False
        stat(s, st, LOCAL_LOCK)
        main: i64 = s.meta[c + C_MAIN]
        size: i64 = s.meta[main + SH_SIZE]
        if size == s.sheaf_capacity:
            return free_to_pcs_full(s, c, st, obj)
        s.meta[main + SH_OBJECTS + size] = obj
        s.meta[main + SH_SIZE] = size + 1
        pcs_unlock_held(s, c, how)
        stat(s, st, FREE_FASTPATH if s.gen == GEN_V70 else FREE_PCS)
        return True

    def barn_lock(s, st):
        mutex_lock(s.desc, s.d + B_LOCK, gettid())
        stat(s, st, BARN_LOCK)

    def barn_unlock(s):
        mutex_unlock(s.desc, s.d + B_LOCK)

    def meta_ptr(s, off):
        return s.meta[off:]

    # =============================================================================================
    # Entry points: every generation (the public layer and the native benchmarks call these)
    # =============================================================================================

    def kmem_cache_alloc(s: KmemCache, c: i64, st: i64) -> i64:
        """slab_alloc_node(): sheaves first when the cache has them, then the generation's slab
        path.  An object, 0 (out of memory) or ERR_CORRUPT."""
        obj: i64
        if s.sheaf_capacity:
            obj = alloc_from_pcs(s, c, st)
            if obj:
                return obj
        return s.slab_alloc_node(c, st, s.object_size)

    def kmalloc_cache(s: KmemCache, c: i64, st: i64, size: i64) -> i64:
        """__kmalloc_cache_noprof() (kmalloc_trace() in v6.1): an object of the kmalloc cache
        ``s`` for a request of ``size`` bytes, which a debug kmalloc cache records (orig_size)."""
        obj: i64
        if s.sheaf_capacity:
            obj = alloc_from_pcs(s, c, st)
            if obj:
                return obj
        return s.slab_alloc_node(c, st, size)


    def kmem_cache_free(s: KmemCache, c: i64, st: i64, page: i64, obj: i64) -> cython.void:
        """slab_free(): sheaves first, then the slab (7.0 counts FREE_SLOWPATH for it)."""
        if s.sheaf_capacity and free_to_pcs(s, c, st, obj):
            return
        if s.gen == GEN_V70:
            s.slab_free70(st, page, obj, obj, 1)
            stat(s, st, FREE_SLOWPATH)
            return
        s.do_slab_free(c, st, page, obj, 0, 1)


    def kmem_cache_alloc_bulk_any(s: KmemCache, c: i64, st: i64, size: i64,
                                  p: cython.p_longlong) -> i64:
        """kmem_cache_alloc_bulk() of every generation: all or nothing (size, 0, ERR_CORRUPT)."""
        if not s.sheaf_capacity and s.gen != GEN_V70:
            return kmem_cache_alloc_bulk(s, c, st, size, p)
        return alloc_bulk_sheaves(s, c, st, size, p)

    def kmem_cache_free_bulk_any(s: KmemCache, c: i64, st: i64, size: i64, p: cython.p_longlong,
                                 strategy: cython.int) -> cython.void:
        """kmem_cache_free_bulk() of every generation; ``strategy`` is the detached-freelist
        generation for whatever goes to slabs (everything, without sheaves)."""
        if s.sheaf_capacity:
            free_to_pcs_bulk(s, c, st, size, p, strategy)
            return
        kmem_cache_free_bulk(s, c, st, size, p, strategy)
        if s.gen == GEN_V70:
            stat_add(s, st, FREE_SLOWPATH, size)       # slab_free_bulk()




# =============================================================================================
# Sheaf blocks (the kernel's __alloc_empty_sheaf / free_empty_sheaf)
# =============================================================================================

@cython.cfunc
@cython.nogil
@cython.exceptval(check=False)
def alloc_empty_sheaf(s: KmemCache, st: i64, capacity: i64) -> i64:
    """An empty sheaf of ``capacity`` (meta word offset; 0 when the metadata region is full).
    Blocks of the cache's own capacity come from its pool (barn lock), others are their own
    metadata block."""
    sh: i64 = 0
    w: i64
    words: i64 = SH_OBJECTS + capacity
    k: i64
    if capacity == s.sheaf_capacity:
        barn_lock(s, st)
        sh = s.desc[s.d + D_SHEAF_POOL]
        if sh == 0:                            # carve a chunk into blocks for the pool
            w = s.seg.meta_alloc(64 * words * 8)
            if w:
                for k in range(1, 64):
                    s.meta[w + k * words + SH_NEXT] = s.desc[s.d + D_SHEAF_POOL]
                    s.desc[s.d + D_SHEAF_POOL] = w + k * words
                sh = w
        else:
            s.desc[s.d + D_SHEAF_POOL] = s.meta[sh + SH_NEXT]
        if sh:
            s.desc[s.d + D_NR_SHEAVES] += 1
        barn_unlock(s)
    else:
        sh = s.seg.meta_alloc(words * 8)
    if sh == 0:
        return 0
    s.meta[sh + SH_NEXT] = 0
    s.meta[sh + SH_SIZE] = 0
    s.meta[sh + SH_CAPACITY] = capacity
    s.meta[sh + SH_CACHE] = s.id
    if capacity == s.sheaf_capacity:           # (an oversize prefill sheaf is a kzalloc)
        stat(s, st, SHEAF_ALLOC)
    return sh


@cython.cfunc
@cython.nogil
@cython.exceptval(check=False)
def free_empty_sheaf(s: KmemCache, st: i64, sh: i64) -> cython.void:
    capacity: i64 = s.meta[sh + SH_CAPACITY]
    if capacity == s.sheaf_capacity:
        barn_lock(s, st)
        s.meta[sh + SH_NEXT] = s.desc[s.d + D_SHEAF_POOL]
        s.desc[s.d + D_SHEAF_POOL] = sh
        s.desc[s.d + D_NR_SHEAVES] -= 1
        barn_unlock(s)
        stat(s, st, SHEAF_FREE)
    else:
        s.seg.meta_free(sh, (SH_OBJECTS + capacity) * 8)   # oversize: kfree, not counted


@cython.cfunc
@cython.nogil
@cython.exceptval(check=False)
def pcs_trylock_slow(s: KmemCache, c: i64, st: i64, me: i64) -> cython.int:
    """pcs_trylock() (inline: sheaves.pxd) when no biased section could be opened: a trylock
    of the lock word, then a bias another thread holds is revoked (it may be inside a
    section), or the record is biased to us; on a shared segment a dead holder's lock is
    taken over and repaired.  PCS_LOCKED or 0.  Compiled only (the uncompiled pcs_trylock is
    the plain trylock above)."""
    b: i64
    if not spin_trylock(cython.address(s.meta[c + C_LOCK]), me):
        if not s.robust:
            return 0
        b = s.meta[c + C_LOCK]              # shared segment: is the holder dead?
        if b == 0 or alive(b) or not cmpxchg(cython.address(s.meta[c + C_LOCK]), b, me):
            return 0
        pcs_repair(s, c, st)
        return PCS_LOCKED
    b = s.meta[c + C_BIAS]
    if b != 0 and b != me:
        bias_revoke(s, c, st)
    elif s.bias and b == 0:
        try_rebias(s, c, me)
    return PCS_LOCKED


@cython.cfunc
@cython.nogil
@cython.exceptval(check=False)
def pcs_repair(s: KmemCache, c: i64, st: i64) -> cython.void:
    """cpu record ``c``'s sheaf lock was taken over from a thread that died holding it
    (shared segments), maybe halfway through a pop, a push or a swap with the barn: its main
    and spare sheaves cannot be trusted (one may also sit on a barn list).  They are dropped --
    their objects stay out of circulation until recover() -- and a fresh empty main sheaf is
    installed.  Counted in H_DAMAGED."""
    sh: i64 = alloc_empty_sheaf(s, st, s.sheaf_capacity)
    if sh:
        s.meta[c + C_MAIN] = sh
    else:                                      # metadata full: keep the sheaf, not its objects
        s.meta[s.meta[c + C_MAIN] + SH_SIZE] = 0
    s.meta[c + C_SPARE] = 0
    fetch_add(cython.address(s.seg.hdr[H_DAMAGED]), 1)


@cython.cfunc
@cython.nogil
@cython.exceptval(check=False)
def barn_repair(s: KmemCache) -> cython.void:
    """The barn lock was taken over from a thread that died holding it (shared segments),
    maybe with a list half relinked: the full and empty lists and the sheaf pool are dropped
    (their sheaves and objects return at recover()).  Counted in H_DAMAGED."""
    d: i64 = s.d
    s.desc[d + B_FULL] = 0
    s.desc[d + B_EMPTY] = 0
    s.desc[d + B_NR_FULL] = 0
    s.desc[d + B_NR_EMPTY] = 0
    s.desc[d + D_SHEAF_POOL] = 0
    fetch_add(cython.address(s.seg.hdr[H_DAMAGED]), 1)


# =============================================================================================
# Refill and flush: where sheaves meet slabs
# =============================================================================================

@cython.cfunc
@cython.nogil
@cython.exceptval(check=False)
def slab_alloc_objects(s: KmemCache, c: i64, st: i64, p: cython.p_longlong, off: i64,
                       n: i64, handout: cython.bint) -> i64:
    """__kmem_cache_alloc_bulk() of the generation below the sheaves: exactly ``n`` objects
    into p[off..] or none (returns n or 0, ERR_CORRUPT when safe mode cut a freelist)."""
    got: i64
    j: i64
    if s.gen == GEN_V70:
        got = s.refill_objects(st, p, off, n, n, handout)
        if got == n:
            return n
        for j in range(got):                   # all or nothing: straight back to slabs
            if handout and s.checks:
                s.state[p[off + j] >> 3] = OBJ_FREE
        if got:
            slab_free_objects(s, c, st, p, off, got, FB_SWAP)
        return 0
    # 6.18: the v4.4 bulk allocation from the cpu slab
    if cython.compiled:
        got = kmem_cache_alloc_bulk(s, c, st, n, cython.address(p[off]))
    else:
        view = p[off:off + n] if isinstance(p, list) else p[off:]
        got = kmem_cache_alloc_bulk(s, c, st, n, view)
        if isinstance(p, list):
            p[off:off + n] = view
    if got > 0 and not handout and s.checks:
        for j in range(n):                     # into a sheaf: free from the user's view
            s.state[p[off + j] >> 3] = OBJ_FREE
    return got


@cython.cfunc
@cython.nogil
@cython.exceptval(check=False)
def sheaf_drop_in_use(s: KmemCache, p: cython.p_longlong, off: i64, n: i64) -> i64:
    """pyslub (safe mode), before a sheaf's objects go back to slabs: they are free by their
    state bytes. One in use got into a sheaf through a freelist that a write after free led
    to an object of another sheaf (which then handed it out): giving it back would write a
    free pointer into its owner's object. It stays out (leaked), reported (REP_SHEAF_LIVE).
    Compacts p[off..off+n); returns how many are left."""
    if not s.checks:
        return n
    i: i64
    k: i64 = off
    obj: i64
    for i in range(off, off + n):
        obj = p[i]
        if s.state[obj >> 3] == OBJ_FREE:
            p[k] = obj
            k += 1
        else:
            s.emit(EV_REPORT, REP_SHEAF_LIVE, obj, s.state[obj >> 3], virt_to_head_page(s, obj))
    return k - off


@cython.cfunc
@cython.nogil
@cython.exceptval(check=False)
def slab_free_objects(s: KmemCache, c: i64, st: i64, p: cython.p_longlong, off: i64, n: i64,
                      strategy: cython.int) -> cython.void:
    """__kmem_cache_free_bulk(): free p[off..off+n) to their slabs with a detached-freelist
    generation (the kernel's: swap); the array is permuted or NULLed.  No FREE_SLOWPATH."""
    if n <= 0:
        return
    if cython.compiled:
        kmem_cache_free_bulk(s, c, st, n, cython.address(p[off]), strategy)
    else:
        kmem_cache_free_bulk(s, c, st, n, [p[i] for i in range(off, off + n)], strategy)


@cython.cfunc
@cython.nogil
@cython.exceptval(check=False)
def refill_sheaf(s: KmemCache, c: i64, st: i64, sh: i64) -> cython.bint:
    """refill_sheaf(): fill a detached sheaf to capacity from slabs (SHEAF_REFILL)."""
    size: i64 = s.meta[sh + SH_SIZE]
    to_fill: i64 = s.meta[sh + SH_CAPACITY] - size
    filled: i64
    if to_fill <= 0:
        return True
    if s.gen == GEN_V70:                       # bulk from node partial lists, new slabs
        if cython.compiled:
            filled = s.refill_objects(st, cython.address(s.meta[0]), sh + SH_OBJECTS + size,
                                      to_fill, to_fill, False)
        else:
            filled = s.refill_objects(st, s.meta, sh + SH_OBJECTS + size, to_fill, to_fill,
                                      False)
    else:
        if cython.compiled:
            filled = slab_alloc_objects(s, c, st, cython.address(s.meta[0]),
                                        sh + SH_OBJECTS + size, to_fill, False)
        else:
            filled = slab_alloc_objects(s, c, st, s.meta, sh + SH_OBJECTS + size, to_fill,
                                        False)
        if filled < 0:
            filled = 0
    s.meta[sh + SH_SIZE] = size + filled
    stat_add(s, st, SHEAF_REFILL, filled)
    return filled == to_fill


@cython.cfunc
@cython.nogil
@cython.exceptval(check=False)
def sheaf_flush_unused(s: KmemCache, c: i64, st: i64, sh: i64,
                       strategy: cython.int) -> cython.void:
    """sheaf_flush_unused(): every object of a detached sheaf back to its slab."""
    size: i64 = s.meta[sh + SH_SIZE]
    if size:
        stat_add(s, st, SHEAF_FLUSH, size)
        if cython.compiled:
            size = sheaf_drop_in_use(s, cython.address(s.meta[0]), sh + SH_OBJECTS, size)
            slab_free_objects(s, c, st, cython.address(s.meta[0]), sh + SH_OBJECTS, size,
                              strategy)
        else:
            size = sheaf_drop_in_use(s, s.meta, sh + SH_OBJECTS, size)
            slab_free_objects(s, c, st, s.meta, sh + SH_OBJECTS, size, strategy)
        s.meta[sh + SH_SIZE] = 0


@cython.cfunc
@cython.nogil
@cython.exceptval(check=False)
def sheaf_flush_main_batch(s: KmemCache, c: i64, st: i64, strategy: cython.int) -> i64:
    """__sheaf_flush_main_batch(): called locked, returns unlocked.  The PCS_BATCH_MAX most
    recently freed objects of main are copied to the stack and freed to slabs; returns how many
    main still holds."""
    batch = cython.declare(i64[32])
    main: i64 = s.meta[c + C_MAIN]
    size: i64 = s.meta[main + SH_SIZE]
    n: i64 = size if size < PCS_BATCH_MAX else PCS_BATCH_MAX
    i: i64
    size -= n
    for i in range(n):
        batch[i] = s.meta[main + SH_OBJECTS + size + i]
    s.meta[main + SH_SIZE] = size
    pcs_unlock(s, c)
    stat_add(s, st, SHEAF_FLUSH, n)
    slab_free_objects(s, c, st, batch, 0, sheaf_drop_in_use(s, batch, 0, n), strategy)
    return size


@cython.cfunc
@cython.nogil
@cython.exceptval(check=False)
def sheaf_flush_main(s: KmemCache, c: i64, st: i64, strategy: cython.int) -> cython.void:
    """sheaf_flush_main(): empty main completely (the blocking local_lock each batch)."""
    remaining: i64 = 1
    while remaining:
        pcs_lock(s, c, st)
        stat(s, st, LOCAL_LOCK)
        remaining = sheaf_flush_main_batch(s, c, st, strategy)     # returns unlocked


@cython.cfunc
@cython.nogil
@cython.exceptval(check=False)
def sheaf_try_flush_main(s: KmemCache, c: i64, st: i64, strategy: cython.int) -> cython.bint:
    """sheaf_try_flush_main(): the same with trylocks; True if anything was flushed."""
    flushed: cython.bint = False
    while True:
        if not pcs_trylock(s, c, st):
            return flushed
        stat(s, st, LOCAL_LOCK)
        flushed = True
        if sheaf_flush_main_batch(s, c, st, strategy) == 0:
            return True


# =============================================================================================
# The barn (§3.9): LIFO lists of full and empty sheaves, linked through SH_NEXT
# =============================================================================================

@cython.cfunc
@cython.nogil
@cython.exceptval(check=False)
def barn_get_empty_sheaf(s: KmemCache, st: i64) -> i64:
    d: i64 = s.d
    sh: i64 = 0
    if s.desc[d + B_NR_EMPTY] == 0:            # racy check, as the kernel
        return 0
    barn_lock(s, st)
    sh = s.desc[d + B_EMPTY]
    if sh:
        s.desc[d + B_EMPTY] = s.meta[sh + SH_NEXT]
        s.desc[d + B_NR_EMPTY] -= 1
    barn_unlock(s)
    return sh


@cython.cfunc
@cython.nogil
@cython.exceptval(check=False)
def barn_put_empty_sheaf(s: KmemCache, st: i64, sh: i64) -> cython.void:
    barn_lock(s, st)
    s.meta[sh + SH_NEXT] = s.desc[s.d + B_EMPTY]
    s.desc[s.d + B_EMPTY] = sh
    s.desc[s.d + B_NR_EMPTY] += 1
    barn_unlock(s)


@cython.cfunc
@cython.nogil
@cython.exceptval(check=False)
def barn_put_full_sheaf(s: KmemCache, st: i64, sh: i64) -> cython.void:
    barn_lock(s, st)
    s.meta[sh + SH_NEXT] = s.desc[s.d + B_FULL]
    s.desc[s.d + B_FULL] = sh
    s.desc[s.d + B_NR_FULL] += 1
    barn_unlock(s)


@cython.cfunc
@cython.nogil
@cython.exceptval(check=False)
def barn_get_full_or_empty_sheaf(s: KmemCache, st: i64) -> i64:
    """A full sheaf if the barn has one, else an empty one, else 0 (prefill)."""
    d: i64 = s.d
    sh: i64 = 0
    barn_lock(s, st)
    if s.desc[d + B_FULL]:
        sh = s.desc[d + B_FULL]
        s.desc[d + B_FULL] = s.meta[sh + SH_NEXT]
        s.desc[d + B_NR_FULL] -= 1
    elif s.desc[d + B_EMPTY]:
        sh = s.desc[d + B_EMPTY]
        s.desc[d + B_EMPTY] = s.meta[sh + SH_NEXT]
        s.desc[d + B_NR_EMPTY] -= 1
    barn_unlock(s)
    return sh


@cython.cfunc
@cython.nogil
@cython.exceptval(check=False)
def barn_replace_empty_sheaf(s: KmemCache, st: i64, empty: i64) -> i64:
    """Give the barn an empty sheaf for a full one (0 when it has none; limits not checked)."""
    d: i64 = s.d
    full: i64 = 0
    if s.desc[d + B_NR_FULL] == 0:
        return 0
    barn_lock(s, st)
    full = s.desc[d + B_FULL]
    if full:
        s.desc[d + B_FULL] = s.meta[full + SH_NEXT]
        s.desc[d + B_NR_FULL] -= 1
        s.meta[empty + SH_NEXT] = s.desc[d + B_EMPTY]
        s.desc[d + B_EMPTY] = empty
        s.desc[d + B_NR_EMPTY] += 1
    barn_unlock(s)
    return full


@cython.cfunc
@cython.nogil
@cython.exceptval(check=False)
def barn_replace_full_sheaf(s: KmemCache, st: i64, full: i64) -> i64:
    """Give the barn a full sheaf for an empty one: the empty sheaf, or -E2BIG (the barn holds
    MAX_FULL_SHEAVES full ones: racy check, not rechecked under the lock), -ENOMEM (no empty)."""
    d: i64 = s.d
    empty: i64 = 0
    if s.desc[d + B_NR_FULL] >= MAX_FULL_SHEAVES:
        return -7                              # -E2BIG
    if s.desc[d + B_NR_EMPTY] == 0:
        return -12                             # -ENOMEM
    barn_lock(s, st)
    empty = s.desc[d + B_EMPTY]
    if empty:
        s.desc[d + B_EMPTY] = s.meta[empty + SH_NEXT]
        s.desc[d + B_NR_EMPTY] -= 1
        s.meta[full + SH_NEXT] = s.desc[d + B_FULL]
        s.desc[d + B_FULL] = full
        s.desc[d + B_NR_FULL] += 1
    barn_unlock(s)
    return empty if empty else -12


# =============================================================================================
# Single objects: alloc_from_pcs / free_to_pcs (§3.1-3.5)
# =============================================================================================

@cython.cfunc
@cython.nogil
@cython.exceptval(check=False)
def pcs_replace_empty_main(s: KmemCache, c: i64, st: i64) -> cython.bint:
    """__pcs_replace_empty_main() (7.0 final): called locked with main empty; True with the
    lock held and a non-empty main, False with the lock dropped."""
    d: i64 = s.d
    spare: i64 = s.meta[c + C_SPARE]
    main: i64 = s.meta[c + C_MAIN]
    full: i64
    empty: i64 = 0
    if spare and s.meta[spare + SH_SIZE] > 0:
        s.meta[c + C_MAIN] = spare
        s.meta[c + C_SPARE] = main
        return True
    full = barn_replace_empty_sheaf(s, st, main)
    if full:
        stat(s, st, BARN_GET)
        s.meta[c + C_MAIN] = full
        return True
    stat(s, st, BARN_GET_FAIL)
    if spare:                                  # the spare is empty here
        empty = spare
        s.meta[c + C_SPARE] = 0
    else:
        empty = barn_get_empty_sheaf(s, st)
    pcs_unlock(s, c)
    if empty == 0:
        empty = alloc_empty_sheaf(s, st, s.sheaf_capacity)
        if empty == 0:
            return False
    if not refill_sheaf(s, c, st, empty):      # "very low on memory"
        sheaf_flush_unused(s, c, st, empty, s.desc[d + D_FB_STRATEGY])
        free_empty_sheaf(s, st, empty)
        return False
    full = empty
    if not pcs_trylock(s, c, st):
        barn_put_full_sheaf(s, st, full)
        stat(s, st, BARN_PUT)
        return False
    stat(s, st, LOCAL_LOCK)
    main = s.meta[c + C_MAIN]
    spare = s.meta[c + C_SPARE]
    if s.meta[main + SH_SIZE] == 0:
        if spare == 0:
            s.meta[c + C_SPARE] = main         # keep the empty main as spare (7.0 tweak)
        else:
            barn_put_empty_sheaf(s, st, main)
        s.meta[c + C_MAIN] = full
        return True
    if spare == 0:
        s.meta[c + C_SPARE] = full
        return True
    if s.meta[spare + SH_SIZE] == 0:
        barn_put_empty_sheaf(s, st, spare)
        s.meta[c + C_SPARE] = full
        return True
    barn_put_full_sheaf(s, st, full)           # raced: both already usable
    stat(s, st, BARN_PUT)
    return True


@cython.cfunc
@cython.nogil
@cython.exceptval(check=False)
def alloc_from_pcs_empty(s: KmemCache, c: i64, st: i64) -> i64:
    """alloc_from_pcs() (inline: sheaves.pxd) found main empty, locked: __pcs_replace_empty_main,
    then the pop.  The lock may have been dropped and retaken meanwhile: pcs_unlock()."""
    if not pcs_replace_empty_main(s, c, st):
        return 0
    main: i64 = s.meta[c + C_MAIN]
    size: i64 = s.meta[main + SH_SIZE]
    obj: i64 = s.meta[main + SH_OBJECTS + size - 1]
    s.meta[main + SH_SIZE] = size - 1
    if s.checks and s.take_object(virt_to_head_page(s, obj), obj) < 0:
        pcs_unlock(s, c)
        return ERR_CORRUPT
    pcs_unlock(s, c)
    stat(s, st, ALLOC_FASTPATH if s.gen == GEN_V70 else ALLOC_PCS)
    return obj


@cython.cfunc
@cython.nogil
@cython.exceptval(check=False)
def pcs_install_empty_sheaf(s: KmemCache, c: i64, st: i64, empty: i64) -> cython.void:
    """__pcs_install_empty_sheaf() (locked)."""
    main: i64 = s.meta[c + C_MAIN]
    spare: i64 = s.meta[c + C_SPARE]
    if spare == 0 and s.meta[main + SH_SIZE] == s.sheaf_capacity:
        s.meta[c + C_SPARE] = main
        s.meta[c + C_MAIN] = empty
    elif s.meta[main + SH_SIZE] < s.sheaf_capacity:
        barn_put_empty_sheaf(s, st, empty)     # someone made room meanwhile
    elif spare and s.meta[spare + SH_SIZE] < s.sheaf_capacity:
        s.meta[c + C_MAIN] = spare
        s.meta[c + C_SPARE] = main
        barn_put_empty_sheaf(s, st, empty)
    else:
        barn_put_full_sheaf(s, st, main)       # limit ignored
        stat(s, st, BARN_PUT)
        s.meta[c + C_MAIN] = empty


@cython.cfunc
@cython.nogil
@cython.exceptval(check=False)
def pcs_replace_full_main(s: KmemCache, c: i64, st: i64) -> cython.bint:
    """__pcs_replace_full_main(): called locked with main full; True locked with room in
    main, False unlocked."""
    cap: i64 = s.sheaf_capacity
    strategy: cython.int = s.desc[s.d + D_FB_STRATEGY]
    main: i64
    spare: i64
    empty: i64
    r: i64
    put_fail: cython.bint
    while True:                                # restart:
        main = s.meta[c + C_MAIN]
        spare = s.meta[c + C_SPARE]
        put_fail = False
        empty = 0
        if spare == 0:
            empty = barn_get_empty_sheaf(s, st)
            if empty:
                s.meta[c + C_SPARE] = main
                s.meta[c + C_MAIN] = empty
                return True
        elif s.meta[spare + SH_SIZE] < cap:
            s.meta[c + C_MAIN] = spare
            s.meta[c + C_SPARE] = main
            return True
        else:                                  # main and spare both full
            r = barn_replace_full_sheaf(s, st, main)
            if r > 0:
                stat(s, st, BARN_PUT)
                s.meta[c + C_MAIN] = r
                return True
            if r == -7:                        # E2BIG: the barn is full of full sheaves
                stat(s, st, BARN_PUT_FAIL)
                s.meta[c + C_SPARE] = 0
                pcs_unlock(s, c)
                sheaf_flush_unused(s, c, st, spare, strategy)
                empty = spare                  # got_empty:
            else:
                put_fail = True
        if empty == 0:                         # alloc_empty:
            pcs_unlock(s, c)
            empty = alloc_empty_sheaf(s, st, cap)
            if empty == 0:
                if put_fail:
                    stat(s, st, BARN_PUT_FAIL)
                if not sheaf_try_flush_main(s, c, st, strategy):
                    return False
                if not pcs_trylock(s, c, st):
                    return False
                stat(s, st, LOCAL_LOCK)
                if s.meta[s.meta[c + C_MAIN] + SH_SIZE] == cap:
                    continue                   # refilled meanwhile: restart
                return True
        if not pcs_trylock(s, c, st):              # got_empty:
            barn_put_empty_sheaf(s, st, empty)
            return False
        stat(s, st, LOCAL_LOCK)
        pcs_install_empty_sheaf(s, c, st, empty)
        return True


@cython.cfunc
@cython.nogil
@cython.exceptval(check=False)
def free_to_pcs_full(s: KmemCache, c: i64, st: i64, obj: i64) -> cython.bint:
    """free_to_pcs() (inline: sheaves.pxd) found main full, locked: __pcs_replace_full_main,
    then the push (the lock may have been dropped and retaken: pcs_unlock())."""
    if not pcs_replace_full_main(s, c, st):
        return False
    main: i64 = s.meta[c + C_MAIN]
    size: i64 = s.meta[main + SH_SIZE]
    s.meta[main + SH_OBJECTS + size] = obj
    s.meta[main + SH_SIZE] = size + 1
    pcs_unlock(s, c)
    stat(s, st, FREE_FASTPATH if s.gen == GEN_V70 else FREE_PCS)
    return True


# =============================================================================================
# Bulk: alloc_from_pcs_bulk / free_to_pcs_bulk (§3.11, §3.12)
# =============================================================================================

@cython.cfunc
@cython.nogil
@cython.exceptval(check=False)
def alloc_from_pcs_bulk(s: KmemCache, c: i64, st: i64, size: i64,
                        p: cython.p_longlong) -> i64:
    """Copy objects from main (swapping in the spare or a barn-full sheaf when it empties);
    stops when the barn has none (no refill: "avoid copying pointers twice").  Returns how
    many; ERR_CORRUPT (safe mode) after giving them back."""
    got: i64 = 0
    main: i64
    full: i64
    n: i64
    msize: i64
    src: i64
    i: i64
    k: i64
    obj: i64
    m: cython.p_longlong = _meta_words(s)     # not re-read through s in the loops
    while got < size:
        if not pcs_trylock(s, c, st):
            break
        stat(s, st, LOCAL_LOCK)
        main = s.meta[c + C_MAIN]
        if s.meta[main + SH_SIZE] == 0:
            full = s.meta[c + C_SPARE]
            if full and s.meta[full + SH_SIZE] > 0:
                s.meta[c + C_MAIN] = full
                s.meta[c + C_SPARE] = main
                main = full
            else:
                full = barn_replace_empty_sheaf(s, st, main)
                if full == 0:
                    stat(s, st, BARN_GET_FAIL)
                    pcs_unlock(s, c)
                    break
                stat(s, st, BARN_GET)
                s.meta[c + C_MAIN] = full
                main = full
        msize = s.meta[main + SH_SIZE]
        n = size - got if size - got < msize else msize
        msize -= n
        src = main + SH_OBJECTS + msize        # the top of the stack, order preserved
        if s.checks:
            for i in range(n):
                obj = m[src + i]
                if take_sheaf_object(s, obj) < 0:
                    # (cannot happen but through a core bug: no view reaches a sheaf) drop the
                    # bad object, keep the untaken ones, give back the taken ones
                    for k in range(i + 1, n):
                        m[src + k - i - 1] = m[src + k]
                    s.meta[main + SH_SIZE] = msize + n - i - 1
                    pcs_unlock(s, c)
                    return give_back(s, c, st, p, got + i)
                p[got + i] = obj
        else:
            copy_words(p, got, m, src, n)
        s.meta[main + SH_SIZE] = msize
        pcs_unlock(s, c)
        stat_add(s, st, ALLOC_FASTPATH if s.gen == GEN_V70 else ALLOC_PCS, n)
        got += n
    return got


@cython.cfunc
@cython.nogil
@cython.exceptval(check=False)
def give_back(s: KmemCache, c: i64, st: i64, p: cython.p_longlong, n: i64) -> i64:
    """All or nothing: objects handed out so far by this call go straight back to slabs."""
    j: i64
    if s.checks:
        for j in range(n):
            s.state[p[j] >> 3] = OBJ_FREE
    slab_free_objects(s, c, st, p, 0, n, FB_SWAP)
    return ERR_CORRUPT


@cython.cfunc
@cython.nogil
@cython.exceptval(check=False)
def free_to_pcs_bulk(s: KmemCache, c: i64, st: i64, size: i64, p: cython.p_longlong,
                     strategy: cython.int) -> cython.void:
    """free_to_pcs_bulk(): append batches to main, exchanging full sheaves through the barn;
    when no empty sheaf can be had the rest goes straight to slabs (never allocates or flushes
    sheaves).  One node: no remote objects."""
    cap: i64 = s.sheaf_capacity
    done: i64 = 0
    main: i64
    spare: i64
    e: i64
    k: i64
    msize: i64
    m: cython.p_longlong = _meta_words(s)
    while done < size:
        if not pcs_trylock(s, c, st):
            break                              # fallback
        stat(s, st, LOCAL_LOCK)
        main = s.meta[c + C_MAIN]
        if s.meta[main + SH_SIZE] == cap:
            spare = s.meta[c + C_SPARE]
            if spare == 0:
                e = barn_get_empty_sheaf(s, st)
                if e == 0:
                    pcs_unlock(s, c)           # no_empty
                    break
                s.meta[c + C_SPARE] = main
                s.meta[c + C_MAIN] = e
            elif s.meta[spare + SH_SIZE] < cap:
                s.meta[c + C_MAIN] = spare
                s.meta[c + C_SPARE] = main
            else:
                e = barn_replace_full_sheaf(s, st, main)
                if e < 0:
                    stat(s, st, BARN_PUT_FAIL)
                    pcs_unlock(s, c)
                    break
                stat(s, st, BARN_PUT)
                s.meta[c + C_MAIN] = e
            main = s.meta[c + C_MAIN]
        msize = s.meta[main + SH_SIZE]
        k = size - done if size - done < cap - msize else cap - msize
        copy_words(m, main + SH_OBJECTS + msize, p, done, k)
        s.meta[main + SH_SIZE] = msize + k
        pcs_unlock(s, c)
        stat_add(s, st, FREE_FASTPATH if s.gen == GEN_V70 else FREE_PCS, k)
        done += k
    if done < size:                            # fallback: __kmem_cache_free_bulk
        slab_free_objects(s, c, st, p, done, size - done, strategy)
        stat_add(s, st, FREE_SLOWPATH, size - done)


@cython.cfunc
@cython.nogil
@cython.exceptval(check=False)
def alloc_bulk_sheaves(s: KmemCache, c: i64, st: i64, size: i64, p: cython.p_longlong) -> i64:
    """kmem_cache_alloc_bulk() with sheaves (or 7.0 without): alloc_from_pcs_bulk, then
    __kmem_cache_alloc_bulk for the rest; all or nothing (what the sheaves gave goes straight
    back to slabs, not to sheaves)."""
    i: i64 = 0
    got: i64
    if s.sheaf_capacity:
        i = alloc_from_pcs_bulk(s, c, st, size, p)
        if i < 0:
            return i
    if i == size:
        return size
    if s.gen == GEN_V70:
        got = s.refill_objects(st, p, i, size - i, size - i, True)
        if got == size - i:
            if not s.debug:                        # (debug: counted once per object)
                stat_add(s, st, ALLOC_SLOWPATH, size - i)
            return size
        give_back(s, c, st, p, i + got)
        return 0
    if cython.compiled:
        got = kmem_cache_alloc_bulk(s, c, st, size - i, cython.address(p[i]))
    else:
        got = kmem_cache_alloc_bulk(s, c, st, size - i, p[i:])
    if got > 0:
        return size
    if i:
        give_back(s, c, st, p, i)
    return got


# =============================================================================================
# Flushing, shrinking, destroying (§3.13)
# =============================================================================================

@cython.cfunc
@cython.nogil
@cython.exceptval(check=False)
def pcs_flush_all(s: KmemCache, c: i64, st: i64) -> cython.void:
    """pcs_flush_all() of cpu ``c``: spare flushed and freed, main flushed (stays attached),
    straight to slabs, skipping the barn."""
    if not s.sheaf_capacity:
        return
    strategy: cython.int = s.desc[s.d + D_FB_STRATEGY]
    pcs_lock(s, c, st)
    stat(s, st, LOCAL_LOCK)
    spare: i64 = s.meta[c + C_SPARE]
    s.meta[c + C_SPARE] = 0
    pcs_unlock(s, c)
    if spare:
        sheaf_flush_unused(s, c, st, spare, strategy)
        free_empty_sheaf(s, st, spare)
    sheaf_flush_main(s, c, st, strategy)


@cython.cfunc
@cython.nogil
@cython.exceptval(check=False)
def barn_shrink(s: KmemCache, c: i64, st: i64) -> cython.void:
    """barn_shrink(): every sheaf of the barn flushed to slabs and freed."""
    d: i64 = s.d
    strategy: cython.int = s.desc[d + D_FB_STRATEGY]
    barn_lock(s, st)
    full: i64 = s.desc[d + B_FULL]
    empty: i64 = s.desc[d + B_EMPTY]
    s.desc[d + B_FULL] = 0
    s.desc[d + B_EMPTY] = 0
    s.desc[d + B_NR_FULL] = 0
    s.desc[d + B_NR_EMPTY] = 0
    barn_unlock(s)
    nxt: i64
    while full:
        nxt = s.meta[full + SH_NEXT]
        sheaf_flush_unused(s, c, st, full, strategy)
        free_empty_sheaf(s, st, full)
        full = nxt
    while empty:
        nxt = s.meta[empty + SH_NEXT]
        free_empty_sheaf(s, st, empty)
        empty = nxt


def init_cpu_sheaves(s: KmemCache) -> None:
    """Every cpu gets an empty main sheaf (the kernel: one per possible cpu at creation)."""
    cs: i64 = current_cpu(s)
    st: i64 = stats_rec(s, cs & 0xFFFFFFFF, cs >> 32)
    cpu: i64
    sh: i64
    for cpu in range(s.nr_cpus):
        sh = alloc_empty_sheaf(s, st, s.sheaf_capacity)
        if sh == 0:
            raise MemoryError(f"cache {s.name!r}: the metadata region is full (sheaves)")
        s.meta[s.cpu_base + cpu * CPU_STRIDE + C_MAIN] = sh


# =============================================================================================
# The prefilled-sheaf API (§3.15): kmem_cache_prefill_sheaf / alloc_from_sheaf / return_sheaf
# =============================================================================================

def prefill_sheaf(s: KmemCache, c: i64, st: i64, size: i64) -> i64:
    """kmem_cache_prefill_sheaf(): a detached sheaf holding at least ``size`` objects (its
    meta offset), 0 on failure.  Larger than the capacity: an oversize sheaf of ``size``."""
    sh: i64 = 0
    if size <= 0:
        return 0
    if size > s.sheaf_capacity:
        stat(s, st, SHEAF_PREFILL_OVERSIZE)
        sh = alloc_empty_sheaf(s, st, size)
        if sh == 0:
            return 0
        if slab_alloc_objects(s, c, st, _meta_base(s), sh + SH_OBJECTS, size, False) != size:
            free_empty_sheaf(s, st, sh)
            return 0
        s.meta[sh + SH_SIZE] = size
        return sh
    pcs_lock(s, c, st)
    stat(s, st, LOCAL_LOCK)
    sh = s.meta[c + C_SPARE]
    if sh:
        s.meta[c + C_SPARE] = 0
        stat(s, st, SHEAF_PREFILL_FAST)
    pcs_unlock(s, c)
    if sh == 0:
        stat(s, st, SHEAF_PREFILL_SLOW)
        sh = barn_get_full_or_empty_sheaf(s, st)
        if sh and s.meta[sh + SH_SIZE]:
            stat(s, st, BARN_GET)
        else:
            stat(s, st, BARN_GET_FAIL)
    if sh == 0:
        sh = alloc_empty_sheaf(s, st, s.sheaf_capacity)
        if sh == 0:
            return 0
    if s.meta[sh + SH_SIZE] < size and not refill_sheaf(s, c, st, sh):
        sheaf_flush_unused(s, c, st, sh, s.desc[s.d + D_FB_STRATEGY])
        free_empty_sheaf(s, st, sh)
        return 0
    return sh


def alloc_from_sheaf(s: KmemCache, sh: i64) -> i64:
    """kmem_cache_alloc_from_sheaf(): objects[--size]; 0 when empty."""
    size: i64 = s.meta[sh + SH_SIZE]
    if size == 0:
        return 0
    obj: i64 = s.meta[sh + SH_OBJECTS + size - 1]
    s.meta[sh + SH_SIZE] = size - 1
    if s.checks and s.take_object(virt_to_head_page(s, obj), obj) < 0:
        return ERR_CORRUPT
    return obj


def return_sheaf(s: KmemCache, c: i64, st: i64, sh: i64) -> None:
    """kmem_cache_return_sheaf(): back to the cpu as its spare, else to the barn (refilled),
    else flushed and freed; an oversize sheaf is always flushed and freed."""
    strategy: cython.int = s.desc[s.d + D_FB_STRATEGY]
    if s.meta[sh + SH_CAPACITY] != s.sheaf_capacity:
        sheaf_flush_unused(s, c, st, sh, strategy)
        free_empty_sheaf(s, st, sh)
        return
    pcs_lock(s, c, st)
    stat(s, st, LOCAL_LOCK)
    if s.meta[c + C_SPARE] == 0:
        s.meta[c + C_SPARE] = sh
        pcs_unlock(s, c)
        stat(s, st, SHEAF_RETURN_FAST)
        return
    pcs_unlock(s, c)
    stat(s, st, SHEAF_RETURN_SLOW)
    if (s.desc[s.d + B_NR_FULL] >= MAX_FULL_SHEAVES or not refill_sheaf(s, c, st, sh)):
        sheaf_flush_unused(s, c, st, sh, strategy)
        free_empty_sheaf(s, st, sh)
        return
    barn_put_full_sheaf(s, st, sh)
    stat(s, st, BARN_PUT)


def sheaf_size(s: KmemCache, sh: i64) -> int:
    """kmem_cache_sheaf_size()."""
    return s.meta[sh + SH_SIZE]


@cython.cfunc
@cython.nogil
@cython.exceptval(check=False)
def _meta_base(s: KmemCache) -> cython.p_longlong:
    if cython.compiled:
        return cython.address(s.meta[0])
    else:
        return s.meta
