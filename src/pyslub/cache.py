"""``Cache``: the public face of a slab cache -- what a Python program calls.

Every method checks its arguments, finds the calling thread's cpu and seat, runs one core
operation (``slab.py``, ``bulk.py``) and turns what the core reported into Python results and
exceptions.  Guarantees of every operation here:

* **No Python code runs inside a core operation.**  Arguments are converted before it starts
  (``__index__`` of an address argument runs first), and a numpy array is copied once into
  memory the core owns before anything is checked; results are copied back after it ends.
  Another thread writing the caller's array meanwhile cannot reach the core.
* **Nothing is freed unless everything may be.**  Every address is checked first, and in safe
  mode (``Memory(checks=True)``, the default) every object's state: a double free, a never
  allocated slot, a duplicate inside one array or an object another call is freeing raises
  ``SlabError`` naming the address, its index and the reason, and changes nothing.
* **The GIL is released** around bulk operations of at least ``NOGIL_MIN`` objects (the core
  does not rely on it), so threads on different cores allocate and free in parallel.
"""

import operator

import cython
import numpy as np

if cython.compiled:
    cnp.import_array()                    # cnp and the core's names come from cache.pxd
else:
    from pyslub._layout import *  # noqa: F403 (C enums when compiled)
    from pyslub.bulk import check_bulk, kfree_bulk_lists, kfree_check
    from pyslub.page_alloc import Segment
    from pyslub.sheaves import (
        barn_shrink,
        kmalloc_cache,
        kmem_cache_alloc,
        kmem_cache_alloc_bulk_any,
        kmem_cache_free,
        kmem_cache_free_bulk_any,
        pcs_flush_all,
    )
    from pyslub.slab import (
        INUSE_MASK,
        R_RPOS,
        R_WPOS,
        KmemCache,
        cpu_claim,
        cpu_rec,
        cpu_release,
        current_cpu,
        get_freepointer,
        get_freepointer_safe,
        object_page,
        page_addr,
        stats_rec,
    )

from pyslub import debug as _debug  # noqa: E402
from pyslub._layout import (  # noqa: E402
    EXTRA_STAT_NAMES,
    FREE_BULK_STRATEGIES,
    STAT_NAMES,
    STAT_NAMES_70,
    STAT_NAMES_618,
)
from pyslub.errors import SlabError  # noqa: E402
from pyslub.sheaves import alloc_from_sheaf, prefill_sheaf, return_sheaf, sheaf_size  # noqa: E402
from pyslub.sizing import MAX_PARTIAL, MIN_PARTIAL, SLAB_KMALLOC  # noqa: E402
from pyslub.slab import BAD_REASONS, release_descriptor  # noqa: E402

# Bulk operations of at least this many objects release the GIL: measured with
# benchmarks/nogil_threshold.py (a `with nogil` block costs ~40 ns, ~3 us while another thread
# runs Python code, against ~1-2 ns of core work per object).
NOGIL_MIN = cython.declare(i64, 256)
STACK_WORDS = cython.declare(i64, 256)   # arrays up to this size are copied to the C stack
# the cpu half of current_cpu()'s result, as a C value (the literal alone is a Python int
# to Cython: `cs & 0xFFFFFFFF` would box cs and AND two Python objects)
CPU_MASK = cython.declare(i64, 0xFFFFFFFF)
# GIL-free core sections and fork().  A child's copy of a private segment is consistent only
# if no thread is inside a core operation when fork() runs.  A GIL-holding operation cannot be
# (the forking thread holds the GIL then, and an operation runs no Python code), so what needs a
# protocol are the sections that run core code with the GIL released: the bulks below and the
# native benchmark loops (pyslub.bench._native, _threads).  Two atomic words:
#   _nogil_sections  threads of this process inside a GIL-free section
#   _forks_pending   fork()s between Memory's before-fork hook and its after-fork hooks
#                    (a count: two threads may be forking at once)
# The forking thread (fork_begin, GIL held) adds 1 to _forks_pending, then waits for
# _nogil_sections to be 0 (holding the GIL: a section never needs it to end).  A section enters
# with nogil_enter(), GIL held: add 1 to _nogil_sections, then read _forks_pending.  No fork
# pending: release the GIL, and take the 1 back at the end (nogil_exit).  A fork pending: take
# the 1 back at once and keep the GIL -- a bulk then runs holding it; a benchmark loop waits
# for the fork to end with the GIL released and tries again (nogil_enter_wait).  Each side
# adds to its word before it reads the other's, seq_cst: at least one of them sees the other's
# add, so every section is either waited for or sees the fork.  After the wait Memory's hook
# returns, but other before-fork hooks still run (CPython runs them in reverse order of
# registration: those of modules imported before pyslub, logging's among them, come after
# ours), and they and the import lock may drop the GIL: a thread that takes it then cannot
# start a GIL-free section, so none is inside the core at fork().  The after-fork hooks take
# the fork back (fork_end); the child, alone, sets both words to 0.  A section that waits for
# a partner thread (the producer/consumer loops) must not keep a fork waiting, since the
# partner may be waiting for the fork: at those points it steps out while a fork is pending
# (nogil_safepoint).  Cost on a bulk: one more load of a global.
_nogil_sections = cython.declare(i64, 0)
_forks_pending = cython.declare(i64, 0)


def nogil_min() -> int:
    """Bulk operations of at least this many objects release the GIL."""
    return NOGIL_MIN


@cython.cfunc
@cython.exceptval(check=False)
def nogil_enter() -> cython.bint:
    """GIL held: enter a GIL-free section, unless a fork is pending (then False: run with the
    GIL held, or wait).  Uncompiled nothing releases the GIL: False."""
    if cython.compiled:
        fetch_add(cython.address(_nogil_sections), 1)
        if load_seq_cst(cython.address(_forks_pending)) == 0:
            return True
        fetch_add(cython.address(_nogil_sections), -1)
    return False


@cython.cfunc
@cython.nogil
@cython.exceptval(check=False)
def nogil_exit() -> cython.void:
    """The end of a section that nogil_enter() (or nogil_enter_wait()) entered."""
    if cython.compiled:
        fetch_add(cython.address(_nogil_sections), -1)


@cython.cfunc
@cython.nogil
@cython.exceptval(check=False)
def wait_no_fork() -> cython.void:
    """Outside any section, GIL released: until no fork is pending."""
    spins: cython.int = 0
    if cython.compiled:
        while load_seq_cst(cython.address(_forks_pending)) != 0:
            if spins < 64:
                cpu_relax()
            else:
                yield_cpu()
            spins += 1


@cython.cfunc
@cython.exceptval(check=False)
def nogil_enter_wait() -> cython.void:
    """GIL held: enter a GIL-free section, first waiting with the GIL released while a fork is
    pending (the benchmark loops: they may not hold the GIL for their whole run)."""
    if cython.compiled:
        while not nogil_enter():
            with cython.nogil:
                wait_no_fork()


@cython.cfunc
@cython.nogil
@cython.exceptval(check=False)
def nogil_safepoint() -> cython.void:
    """Inside a section, between two core operations (where a loop waits for another thread):
    while a fork is pending, leave the section and wait for it to end, then enter again."""
    if cython.compiled:
        while load_seq_cst(cython.address(_forks_pending)) != 0:
            fetch_add(cython.address(_nogil_sections), -1)
            wait_no_fork()
            fetch_add(cython.address(_nogil_sections), 1)


def fork_begin() -> None:
    """Before fork(), GIL held: no new GIL-free section may start until fork_end(); wait until
    no thread of this process is inside one (they finish their core work, then block on the
    GIL)."""
    if cython.compiled:
        fetch_add(cython.address(_forks_pending), 1)
        spins: cython.int = 0
        while load_seq_cst(cython.address(_nogil_sections)) != 0:
            if spins < 64:
                cpu_relax()
            else:
                yield_cpu()
            spins += 1


def fork_state() -> tuple:
    """(threads inside GIL-free core sections, fork()s pending) in this process: for tests."""
    if cython.compiled:
        return (load_seq_cst(cython.address(_nogil_sections)),
                load_seq_cst(cython.address(_forks_pending)))
    return (0, 0)


def fork_end(child: bool) -> None:
    """After fork(), GIL held: in the parent one fork less is pending; the child is the forking
    thread alone (no section, no fork in progress)."""
    if cython.compiled:
        if child:
            store_release(cython.address(_nogil_sections), 0)
            store_release(cython.address(_forks_pending), 0)
        else:
            fetch_add(cython.address(_forks_pending), -1)

# strategy name -> FB_* id (a C-level dict when compiled: one lookup per free_bulk call)
STRATEGY_IDS = cython.declare(dict, {name: i for i, name in enumerate(FREE_BULK_STRATEGIES)})

# counter name -> internal index, and the names each generation reports, in its enum order
STAT_INDEX = {name: i for i, name in enumerate(STAT_NAMES_618)}
STAT_INDEX.update({name: 43 + i for i, name in enumerate(EXTRA_STAT_NAMES)})
GEN_STAT_NAMES = {GEN_V44: STAT_NAMES + EXTRA_STAT_NAMES,
                  GEN_V618: STAT_NAMES_618 + EXTRA_STAT_NAMES,
                  GEN_V70: STAT_NAMES_70 + EXTRA_STAT_NAMES}
GEN_NAMES = {GEN_V44: "4.4", GEN_V618: "6.18", GEN_V70: "7.0"}


def address_arg(addr) -> int:
    """An address argument as an int: ints and anything with ``__index__`` (numpy integers),
    never floats (TypeError); values that do not fit 64 bits become -1, i.e. outside."""
    return address_value(addr)


@cython.cfunc
@cython.exceptval(-1, check=True)
def address_value(addr: object) -> i64:
    """address_arg() for compiled callers: a C call, no Python-level one."""
    if type(addr) is not int:
        addr = operator.index(addr)
    overflow: cython.int = 0
    v: i64
    if cython.compiled:
        v = PyLong_AsLongLongAndOverflow(addr, cython.address(overflow))
    elif addr < -(1 << 63) or addr >= (1 << 63):
        overflow = 1
    else:
        v = addr
    return -1 if overflow else v


@cython.cfunc
def check_alive(c: KmemCache) -> cython.int:
    """Cache._check_alive() for compiled callers (no method lookup)."""
    if c.desc[c.d + D_STATE] != DS_LIVE:
        raise SlabError(f"cache {c.name!r} was destroyed")
    return 0


@cython.cfunc
def array_size(p: object, size: object, writable: cython.bint) -> i64:
    """Check ``p`` is a C-contiguous 1-d native-endian uint64 ndarray; entries used."""
    n: i64
    if cython.compiled:
        if not cnp.PyArray_Check(p):
            raise TypeError(f"expected a numpy uint64 array, got {type(p).__name__}")
        arr: cnp.ndarray = p
        if (cnp.PyArray_TYPE(arr) != cnp.NPY_UINT64 or cnp.PyArray_NDIM(arr) != 1
                or not cnp.PyArray_IS_C_CONTIGUOUS(arr) or not cnp.PyArray_ISNOTSWAPPED(arr)):
            raise TypeError("expected a 1-d C-contiguous numpy array of native uint64, got "
                            f"dtype {p.dtype.str} with shape {p.shape}")
        if writable and not cnp.PyArray_ISWRITEABLE(arr):
            raise TypeError("the address array must be writable")
        n = cnp.PyArray_DIM(arr, 0)
    else:
        if not isinstance(p, np.ndarray):
            raise TypeError(f"expected a numpy uint64 array, got {type(p).__name__}")
        if (p.dtype != np.uint64 or p.ndim != 1 or not p.flags.c_contiguous
                or not p.dtype.isnative):
            raise TypeError("expected a 1-d C-contiguous numpy array of native uint64, got "
                            f"dtype {p.dtype.str} with shape {p.shape}")
        if writable and not p.flags.writeable:
            raise TypeError("the address array must be writable")
        n = p.shape[0]
    if size is None:
        return n
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ValueError(f"size must be a non-negative int, got {size!r}")
    if size > n:
        raise ValueError(f"size {size} is larger than the array ({n} entries)")
    return size


@cython.cfunc
@cython.nogil
@cython.exceptval(check=False)
def compact_nulls(p: cython.p_longlong, n: i64) -> i64:
    """Move the non-NULL entries of p[0:n] to its front; how many there are."""
    i: i64
    m: i64 = 0
    for i in range(n):
        if p[i]:
            p[m] = p[i]
            m += 1
    return m


def _decode(code):
    """(index, BAD_* reason) of a check_bulk()/kfree_check() failure code."""
    code = -code
    return (code >> 5) - 1, -(code & 31)


@cython.cclass
class Cache(KmemCache):
    """A slab cache (``struct kmem_cache``): single-object and bulk alloc/free, state, stats.

    Create one with ``Memory.create_cache``.  Object addresses are byte offsets in the arena.
    """

    def __init__(self, *args):
        if not cython.compiled:                   # plain Python has no __cinit__
            KmemCache.__cinit__(self, *args)

    # =========================================================================================
    # Plumbing
    # =========================================================================================

    def _check_alive(self):
        if self.desc[self.d + D_STATE] != DS_LIVE:
            raise SlabError(f"cache {self.name!r} was destroyed")

    def _cpu_seat(self):
        """(cpu record, counter block) of the calling thread."""
        cs: i64 = current_cpu(self)
        return cpu_rec(self, cs & 0xFFFFFFFF), stats_rec(self, cs & 0xFFFFFFFF, cs >> 32)

    def _after(self):
        """After an operation: turn what the core reported into Python objects."""
        if self.ring[R_WPOS] != self.ring[R_RPOS]:
            self.drain()

    def _corrupt(self, what):
        self._after()
        last = self.reports[len(self.reports) - 1] if self.reports else "a freelist is corrupted"
        return SlabError(f"cache {self.name!r}: {what} failed: {last}")

    def _raise_refused(self, before):
        """Debug caches: raise if the consistency checks refused to free objects (the core
        said so: a "... not freed" record), naming what they found."""
        self._after()
        if len(self.reports) == before:           # (the common case: nothing to look at)
            return
        new = self.reports[before:]
        if any("not freed" in m for m in new):
            raise SlabError(f"cache {self.name!r}: " + "; ".join(
                m for m in new if "not freed" in m or m.startswith("BUG ")))

    # =========================================================================================
    # Single objects
    # =========================================================================================

    def alloc(self):
        """kmem_cache_alloc(): the address of a new object (MemoryError when out of memory)."""
        check_alive(self)
        cs: i64 = current_cpu(self)
        cpu: i64 = cs & CPU_MASK
        obj: i64 = kmem_cache_alloc(self, cpu_rec(self, cpu), stats_rec(self, cpu, cs >> 32))
        if self.ring[R_WPOS] != self.ring[R_RPOS]:
            self.drain()
        if obj <= 0:
            if obj == 0:
                raise MemoryError(f"cache {self.name!r}: out of memory (arena exhausted)")
            raise self._corrupt("alloc")
        if self.flags & (SLAB_STORE_USER | SLAB_TRACE):
            if self.flags & SLAB_STORE_USER:
                _debug.set_tracks(self.seg.raw, self, (obj,), _debug.TRACK_ALLOC, cpu)
            if self.flags & SLAB_TRACE:
                _debug.trace(self, (obj,), True)
        return obj

    def kmalloc(self, size):
        """__kmalloc_cache(s, gfp, size): an object of this kmalloc-type cache (created with
        ``SLAB_KMALLOC``, as the kmalloc caches are) for a request of ``size`` bytes, 1 to
        ``object_size``.  With SLAB_STORE_USER the cache records ``size`` (orig_size) and with
        SLAB_RED_ZONE red-zones the bytes from there to object_size ("kmalloc Redzone")."""
        if not isinstance(size, int) or isinstance(size, bool):
            raise TypeError(f"kmalloc size must be an int, got {type(size).__name__}")
        if not self.flags & SLAB_KMALLOC:
            raise ValueError(f"cache {self.name!r} is not a kmalloc cache (no SLAB_KMALLOC): "
                             "use alloc()")
        if not 1 <= size <= self.object_size:
            raise ValueError(f"kmalloc size {size} outside 1..{self.object_size} (the object "
                             f"size of cache {self.name!r})")
        self._check_alive()
        cs: i64 = current_cpu(self)
        cpu: i64 = cs & CPU_MASK
        obj: i64 = kmalloc_cache(self, cpu_rec(self, cpu), stats_rec(self, cpu, cs >> 32),
                                 size)
        if self.ring[R_WPOS] != self.ring[R_RPOS]:
            self.drain()
        if obj <= 0:
            if obj == 0:
                raise MemoryError(f"cache {self.name!r}: out of memory (arena exhausted)")
            raise self._corrupt("kmalloc")
        if self.flags & (SLAB_STORE_USER | SLAB_TRACE):
            if self.flags & SLAB_STORE_USER:
                _debug.set_tracks(self.seg.raw, self, (obj,), _debug.TRACK_ALLOC, cpu)
            if self.flags & SLAB_TRACE:
                _debug.trace(self, (obj,), True)
        return obj

    def free(self, addr):
        """kmem_cache_free(): free one object; SlabError (nothing freed) if ``addr`` is not an
        object of this cache, or (safe mode) not allocated."""
        check_alive(self)
        a: i64 = address_value(addr)
        cs: i64 = current_cpu(self)
        cpu: i64 = cs & CPU_MASK
        nreports = len(self.reports)
        if self.flags & SLAB_TRACE:
            _debug.trace(self, (a,), False, self.seg.raw)
        page: i64 = self.release_checked(a)
        if page < 0:
            raise SlabError(f"cache {self.name!r}: cannot free address {a:#x}: "
                            f"{BAD_REASONS[page]}")
        kmem_cache_free(self, cpu_rec(self, cpu), stats_rec(self, cpu, cs >> 32), page, a)
        if self.debug:
            self._raise_refused(nreports)
            if self.flags & SLAB_STORE_USER:
                _debug.set_tracks(self.seg.raw, self, (a,), _debug.TRACK_FREE, cpu)
        elif self.ring[R_WPOS] != self.ring[R_RPOS]:
            self._raise_refused(nreports)           # (a hardened cache's BUG_ON)

    def view(self, addr):
        """A writable memoryview of an allocated object's ``object_size`` bytes."""
        self._check_alive()
        a: i64 = address_arg(addr)
        page: i64 = object_page(self, a)
        if page < 0:
            raise SlabError(f"cache {self.name!r}: no object at {a:#x}: {BAD_REASONS[page]}")
        if self.checks and self.state[a >> 3] != OBJ_LIVE:
            raise SlabError(f"cache {self.name!r}: no object at {a:#x}: "
                            f"{BAD_REASONS[BAD_FREE]}")
        return self.seg.arena[a:a + self.object_size]

    def check_addr(self, addr):
        """The slab page index of ``addr`` if it is an object slot of this cache, else a
        negative BAD_* code (see ``pyslub.slab.BAD_REASONS``)."""
        return object_page(self, address_arg(addr))

    # =========================================================================================
    # Bulk
    # =========================================================================================

    def alloc_bulk(self, p, size=None):
        """kmem_cache_alloc_bulk(): fill ``p[:size]`` (uint64 array) with new objects.

        All or nothing: returns ``size``, or 0 (out of memory) with nothing allocated.
        """
        n: i64 = array_size(p, size, True)
        check_alive(self)
        if n == 0:
            return 0
        cs: i64 = current_cpu(self)
        cpu: i64 = cs & CPU_MASK
        c: i64 = cpu_rec(self, cpu)
        st: i64 = stats_rec(self, cpu, cs >> 32)
        got: i64
        if cython.compiled:
            stackbuf = cython.declare(i64[256])
            buf: cython.p_longlong = stackbuf
            if n > STACK_WORDS:
                buf = cython.cast(cython.p_longlong, malloc(n * 8))
                if buf == cython.NULL:
                    raise MemoryError("cannot allocate a scratch array")
            try:
                if n >= NOGIL_MIN and nogil_enter():
                    with cython.nogil:
                        got = kmem_cache_alloc_bulk_any(self, c, st, n, buf)
                        nogil_exit()
                else:                               # small, or a fork is pending
                    got = kmem_cache_alloc_bulk_any(self, c, st, n, buf)
                if got > 0:
                    memcpy(cnp.PyArray_DATA(cython.cast(cnp.ndarray, p)), buf, n * 8)
            finally:
                if buf != cython.address(stackbuf[0]):
                    c_free(buf)
        else:
            scratch = np.zeros(n, dtype=np.int64)
            got = kmem_cache_alloc_bulk_any(self, c, st, n, memoryview(scratch))
            if got > 0:
                p[:n] = scratch.view(np.uint64)
        if self.ring[R_WPOS] != self.ring[R_RPOS]:
            self.drain()
        if got < 0:
            raise self._corrupt("alloc_bulk")
        if got > 0 and self.flags & (SLAB_STORE_USER | SLAB_TRACE):
            addrs = p[:n].tolist()
            if self.flags & SLAB_STORE_USER:
                _debug.set_tracks(self.seg.raw, self, addrs, _debug.TRACK_ALLOC, cpu)
            if self.flags & SLAB_TRACE:
                _debug.trace(self, addrs, True)
        return got

    def alloc_many(self, n):
        """``n`` new objects as a uint64 array (MemoryError when out of memory)."""
        p = np.zeros(n, dtype=np.uint64)
        if n and self.alloc_bulk(p) != n:
            raise MemoryError(f"cache {self.name!r}: cannot allocate {n} objects")
        return p

    def free_bulk(self, p, size=None, strategy=None):
        """kmem_cache_free_bulk(): free ``p[:size]`` with one generation of the bulk free.

        ``strategy`` defaults to ``free_bulk_strategy``.  Every address (and in safe mode every
        object's state) is checked before anything is freed: SlabError names the first bad
        index.  The lookahead strategies NULL the consumed slots (and skip NULL entries); swap
        permutes the array.
        """
        n: i64 = array_size(p, size, True)
        sid: cython.int = self.desc[self.d + D_FB_STRATEGY]
        if strategy is not None:
            sid = STRATEGY_IDS.get(strategy, -1)
            if sid < 0:
                raise ValueError(f"unknown free_bulk strategy {strategy!r}; "
                                 f"choose one of {FREE_BULK_STRATEGIES}")
        check_alive(self)
        if n == 0:
            return
        cs: i64 = current_cpu(self)
        cpu: i64 = cs & CPU_MASK
        c: i64 = cpu_rec(self, cpu)
        st: i64 = stats_rec(self, cpu, cs >> 32)
        allow_null: cython.bint = sid == FB_LOOKAHEAD or sid == FB_LOOKAHEAD_FWD
        nreports = len(self.reports)
        addrs = None                                # U, T: the addresses (NULLed by the free)
        if self.flags & (SLAB_STORE_USER | SLAB_TRACE):
            addrs = p[:n].tolist()
            if self.flags & SLAB_TRACE:
                _debug.trace(self, addrs, False, self.seg.raw)
        bad: i64
        if cython.compiled:
            stackbuf = cython.declare(i64[256])
            buf: cython.p_longlong = stackbuf
            if n > STACK_WORDS:
                buf = cython.cast(cython.p_longlong, malloc(n * 8))
                if buf == cython.NULL:
                    raise MemoryError("cannot allocate a scratch array")
            try:
                memcpy(buf, cnp.PyArray_DATA(cython.cast(cnp.ndarray, p)), n * 8)
                bad = check_bulk(self, n, buf, allow_null)
                if bad == 0:
                    m: i64 = compact_nulls(buf, n) if self.sheaf_capacity and allow_null else n
                    if m >= NOGIL_MIN and nogil_enter():
                        with cython.nogil:
                            kmem_cache_free_bulk_any(self, c, st, m, buf, sid)
                            nogil_exit()
                    elif m:                         # small, or a fork is pending
                        kmem_cache_free_bulk_any(self, c, st, m, buf, sid)
                    if not self.sheaf_capacity:     # sheaves leave the array as it was
                        memcpy(cnp.PyArray_DATA(cython.cast(cnp.ndarray, p)), buf, n * 8)
            finally:
                if buf != cython.address(stackbuf[0]):
                    c_free(buf)
        else:
            scratch = p[:n].astype(np.int64)
            words = memoryview(scratch)
            bad = check_bulk(self, n, words, allow_null)
            if bad == 0:
                m = compact_nulls(words, n) if self.sheaf_capacity and allow_null else n
                if m:
                    kmem_cache_free_bulk_any(self, c, st, m, words, sid)
                if not self.sheaf_capacity:
                    p[:n] = scratch.view(np.uint64)
        if bad:
            i, reason = _decode(bad)
            addr = int(p[i])
            what = BAD_REASONS[reason]
            if reason == BAD_FREEING:
                earlier = [j for j in range(i) if int(p[j]) == addr]
                if earlier:
                    what = f"a duplicate of p[{earlier[0]}]"
            raise SlabError(f"cache {self.name!r}: free_bulk: p[{i}] = {addr:#x} is {what}; "
                            "nothing was freed")
        if self.debug:
            self._raise_refused(nreports)
            if addrs and self.flags & SLAB_STORE_USER:
                _debug.set_tracks(self.seg.raw, self, addrs, _debug.TRACK_FREE, cpu)
        elif self.ring[R_WPOS] != self.ring[R_RPOS]:
            self._raise_refused(nreports)           # (a hardened cache's BUG_ON)

    def track(self, addr):
        """SLAB_STORE_USER caches: the object's last allocation and free (struct track), as
        dicts of site ("file:line function" of the caller), cpu, pid, when and age (ms), or
        None where there was none."""
        self._check_alive()
        a: i64 = address_arg(addr)
        if not self.flags & SLAB_STORE_USER:
            raise SlabError(f"cache {self.name!r} has no SLAB_STORE_USER (slab_debug=U)")
        page: i64 = object_page(self, a)
        if page < 0:
            raise SlabError(f"cache {self.name!r}: no object at {a:#x}: {BAD_REASONS[page]}")
        view = self.seg.raw(a, self.size)
        return {"alloc": _debug.read_track(view, self, _debug.TRACK_ALLOC),
                "free": _debug.read_track(view, self, _debug.TRACK_FREE)}

    # =========================================================================================
    # Tunables (the writable sysfs files) and geometry
    # =========================================================================================

    @property
    def min_partial(self):
        """Keep at least this many empty-able slabs on the node list (sysfs ``min_partial``;
        a write is clamped to 5..10 as the kernel's set_min_partial() does)."""
        return int(self.desc[self.d + D_MIN_PARTIAL])

    @min_partial.setter
    def min_partial(self, value):
        v = _tunable("min_partial", value)
        self.desc[self.d + D_MIN_PARTIAL] = min(max(v, MIN_PARTIAL), MAX_PARTIAL)

    @property
    def cpu_partial(self):
        """Free objects kept on each cpu partial list (sysfs ``cpu_partial``; a write flushes
        every cpu, as cpu_partial_store() does; must stay 0 for debug caches)."""
        return int(self.desc[self.d + D_CPU_PARTIAL])

    @cpu_partial.setter
    def cpu_partial(self, value):
        v = _tunable("cpu_partial", value)
        if v and self.debug:
            raise ValueError("cpu_partial must be 0 for a debug cache (no cpu partial lists)")
        if v and self.gen == GEN_V70:
            raise ValueError("cpu_partial must be 0 in SLUB 7.0 (no cpu partial lists)")
        self._check_alive()
        self.desc[self.d + D_CPU_PARTIAL] = v
        self.flush_cpu(None)

    @property
    def lookahead(self):
        """Look-ahead depth of the lookahead strategies (3 in the kernel; at least 2)."""
        return int(self.desc[self.d + D_LOOKAHEAD])

    @lookahead.setter
    def lookahead(self, value):
        v = _tunable("lookahead", value)
        if v < 2:
            # v4.4 stops at the depth-th foreign object *before* noting the first one as
            # the resume point: with depth 1 the rest of the array would never be freed
            raise ValueError("lookahead must be >= 2")
        self.desc[self.d + D_LOOKAHEAD] = v

    @property
    def free_bulk_strategy(self):
        """Default strategy of ``free_bulk`` (one of ``pyslub.FREE_BULK_STRATEGIES``)."""
        return FREE_BULK_STRATEGIES[self.desc[self.d + D_FB_STRATEGY]]

    @free_bulk_strategy.setter
    def free_bulk_strategy(self, value):
        if value not in STRATEGY_IDS:
            raise ValueError(f"unknown free_bulk strategy {value!r}; "
                             f"choose one of {FREE_BULK_STRATEGIES}")
        self.desc[self.d + D_FB_STRATEGY] = STRATEGY_IDS[value]

    @property
    def dead(self):
        """True once the cache was destroyed."""
        return self.desc[self.d + D_STATE] != DS_LIVE

    @property
    def slub(self):
        """The SLUB generation this cache runs: "4.4", "6.18" or "7.0"."""
        return GEN_NAMES[self.gen]

    @property
    def info(self):
        """Geometry and tunables, with the sysfs names."""
        return {
            "name": self.name, "object_size": self.object_size, "size": self.size,
            "slab_size": self.size, "align": self.align, "offset": self.offset,
            "inuse": self.inuse, "order": self.order, "objs_per_slab": self.objects,
            "min_order": self.min_order, "min_objects": self.min_objects,
            "min_partial": self.min_partial, "cpu_partial": self.cpu_partial,
            "sheaf_capacity": self.sheaf_capacity, "flags": self.flags,
            "nr_cpus": self.nr_cpus, "slub": self.slub, "checks": self.checks,
            "free_bulk_strategy": self.free_bulk_strategy, "lookahead": self.lookahead,
            "freelist_hardened": self.hardened, "freelist_random": self.freelist_random,
            "freeptr": "middle" if self.flags & FREEPTR_MIDDLE else "start",
        }

    # =========================================================================================
    # State
    # =========================================================================================

    def stat_names(self):
        """The counter names ``stats()`` reports for this cache's generation, in enum order."""
        return GEN_STAT_NAMES[self.gen]

    def stats(self, cpu=None):
        """SLUB_STATS counters (sysfs names of this cache's generation) summed over cpus, or of
        one cpu, plus pyslub's own cmpxchg / lock counts."""
        if cpu is not None and not (isinstance(cpu, int) and 0 <= cpu < self.nr_cpus):
            raise ValueError(f"cpu {cpu!r} outside 0..{self.nr_cpus - 1}")
        totals = [0] * NR_STATS
        k: i64
        seat: i64
        i: cython.int
        base: i64
        for k in (range(self.nr_cpus) if cpu is None else (cpu,)):
            for seat in range(NR_SEATS + 1):
                base = self.stats_base + (k * (NR_SEATS + 1) + seat) * NR_STATS
                for i in range(NR_STATS):
                    totals[i] += self.meta[base + i]
        return {name: int(totals[STAT_INDEX[name]]) for name in GEN_STAT_NAMES[self.gen]}

    def reset_stats(self, name=None):
        """Clear every counter, or the one named (writing 0 to a sysfs stat file)."""
        items = range(NR_STATS)
        if name is not None:
            if name not in GEN_STAT_NAMES[self.gen]:
                raise ValueError(f"no counter {name!r} in SLUB {self.slub}")
            items = (STAT_INDEX[name],)
        for k in range(self.nr_cpus):
            for seat in range(NR_SEATS + 1):
                base = self.stats_base + (k * (NR_SEATS + 1) + seat) * NR_STATS
                for i in items:
                    self.meta[base + i] = 0

    def cpu_state(self, cpu):
        """kmem_cache_cpu of ``cpu``: freelist, tid, page (slab address) and partial slabs, and
        ``bias``: the native thread id (``threading.get_native_id()``) of the thread the record
        is biased to, 0 when it is in shared (locked) mode."""
        if not (isinstance(cpu, int) and 0 <= cpu < self.nr_cpus):
            raise ValueError(f"cpu {cpu!r} outside 0..{self.nr_cpus - 1}")
        c: i64 = cpu_rec(self, cpu)
        partial = []
        page: i64 = self.meta[c + C_PARTIAL]
        while page and len(partial) <= self.nr_slabs:
            partial.append(page_addr(page))
            page = self.pm[page * PM_STRIDE + PM_NEXT]
        page = self.meta[c + C_PAGE]
        return {"freelist": int(self.meta[c + C_FREELIST]),
                "tid": int(self.meta[c + C_TID] & ~TID_BUSY),
                "page": page_addr(page) if page else 0, "partial": partial,
                "bias": int(self.meta[c + C_BIAS])}

    @property
    def nr_slabs(self):
        return int(self.desc[self.d + N_NR_SLABS])

    @property
    def total_objects(self):
        return int(self.desc[self.d + N_TOTAL_OBJECTS])

    @property
    def nr_partial(self):
        return int(self.desc[self.d + N_NR_PARTIAL])

    def node_partial(self):
        """Slab addresses on the node partial list, head first."""
        out = []
        page: i64 = self.desc[self.d + N_PARTIAL_HEAD]
        while page and len(out) <= self.nr_slabs:
            out.append(page_addr(page))
            page = self.pm[page * PM_STRIDE + PM_NEXT]
        return out

    def slab_state(self, slab):
        """freelist, inuse, objects, frozen of the slab starting at address ``slab``."""
        a = address_arg(slab)
        page = a >> PAGE_SHIFT
        if (a & (PAGE_SIZE - 1) or not (0 < page < self.seg.nr_pages)
                or self.pm[page * PM_STRIDE + PM_SLAB_CACHE] != self.id
                or not (self.pm[page * PM_STRIDE + PM_FLAGS] & PG_SLAB)):
            raise SlabError(f"{a:#x} is not a slab of cache {self.name!r}")
        counters = self.pm[page * PM_STRIDE + PM_COUNTERS]
        return {"freelist": int(self.pm[page * PM_STRIDE + PM_FREELIST]),
                "inuse": counters & INUSE_MASK,
                "objects": (counters >> OBJECTS_SHIFT) & OBJECTS_MASK,
                "frozen": bool(counters & FROZEN_BIT)}

    def free_objects(self, slab):
        """The free objects of the slab at address ``slab``, in list order: its own freelist,
        then the freelist of any cpu whose cpu slab it is (bounded walks, corrupt links end
        them)."""
        st = self.slab_state(slab)
        page: i64 = slab >> PAGE_SHIFT
        out = []
        heads = [st["freelist"]]
        for cpu in range(self.nr_cpus):
            c: i64 = cpu_rec(self, cpu)
            if self.meta[c + C_PAGE] == page:
                heads.append(int(self.meta[c + C_FREELIST]))
        obj: i64
        for obj in heads:
            n: i64 = 0
            while obj and n < st["objects"]:
                out.append(int(obj))
                n += 1
                nxt: i64 = get_freepointer(self, obj)
                if object_page(self, nxt) != page:
                    break
                obj = nxt
        return out

    def freepointer(self, addr):
        """get_freepointer(): the free pointer stored in object ``addr`` (decoded when the cache is
        hardened): the next free object if ``addr`` is free, the object's own bytes if not.
        For validators, tools and teaching; SlabError if ``addr`` is not an object slot."""
        a: i64 = address_arg(addr)
        if object_page(self, a) < 0:
            raise SlabError(f"cache {self.name!r}: {a:#x} is {BAD_REASONS[object_page(self, a)]}")
        return int(get_freepointer(self, a))

    def slab_of(self, addr):
        """Address of the slab holding object ``addr`` (SlabError if it is not ours)."""
        a = address_arg(addr)
        page: i64 = object_page(self, a)
        if page < 0:
            raise SlabError(f"cache {self.name!r}: {a:#x} is {BAD_REASONS[page]}")
        return page_addr(page)

    def slabs(self):
        """Every slab of this cache (addresses, ascending), found from the page records."""
        out = []
        page: i64
        r: i64
        for page in range(1, self.seg.nr_pages):
            r = page * PM_STRIDE
            if self.pm[r + PM_SLAB_CACHE] == self.id and self.pm[r + PM_FLAGS] & PG_SLAB:
                out.append(page_addr(page))
        return out

    def occupancy(self):
        """The sysfs occupancy files: objects, objects_partial, partial, cpu_slabs, slabs,
        total_objects (v4.4 show_slab_objects semantics: a cpu's partial slabs count in
        cpu_slabs only when it has a cpu slab, as SO_CPU walks c->partial under c->page)."""
        partial_free = 0
        partial_inuse = 0
        for slab in self.node_partial():
            st = self.slab_state(slab)
            partial_free += st["objects"] - st["inuse"]
            partial_inuse += st["inuse"]
        cpu_slabs = 0
        for cpu in range(self.nr_cpus):
            st = self.cpu_state(cpu)
            if st["page"]:
                cpu_slabs += 1 + len(st["partial"])
        return {"objects": self.total_objects - partial_free, "objects_partial": partial_inuse,
                "partial": self.nr_partial, "cpu_slabs": cpu_slabs, "slabs": self.nr_slabs,
                "total_objects": self.total_objects}

    def live_objects(self):
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
            c = cpu_rec(self, cpu)
            page = self.meta[c + C_PAGE]
            obj = self.meta[c + C_FREELIST]
            n = 0
            while obj and n < self.objects:
                n += 1
                obj = get_freepointer_safe(self, obj, page)
            free += n
        free += len(self.sheaf_objects())
        self._after()
        return self.total_objects - free

    def sheaf_objects(self):
        """Every object sitting in a sheaf (the cpus' main and spare, the barn's full ones):
        allocated from its slab's view, free from the user's."""
        out = []
        sh: i64
        k: i64
        if not self.sheaf_capacity:
            return out
        heads = []
        for cpu in range(self.nr_cpus):
            c: i64 = cpu_rec(self, cpu)
            heads += [self.meta[c + C_MAIN], self.meta[c + C_SPARE]]
        sh = self.desc[self.d + B_FULL]
        guard = 0
        while sh and guard <= 1 << 20:
            heads.append(sh)
            sh = self.meta[sh + SH_NEXT]
            guard += 1
        for sh in heads:
            if sh:
                for k in range(min(self.meta[sh + SH_SIZE], self.meta[sh + SH_CAPACITY])):
                    out.append(int(self.meta[sh + SH_OBJECTS + k]))
        return out

    def prefill_sheaf(self, size):
        """kmem_cache_prefill_sheaf(): a context manager holding a detached sheaf of at least
        ``size`` objects for allocations that must not fail (``sheaf.alloc()``); on exit the
        sheaf goes back (kmem_cache_return_sheaf).  MemoryError when it cannot be filled."""
        return PrefilledSheaf(self, size)

    def sheaf_state(self):
        """The sheaves: per cpu (main size, spare size or None), the barn's full and empty
        counts, the capacity."""
        cpus = []
        for cpu in range(self.nr_cpus):
            c: i64 = cpu_rec(self, cpu)
            main: i64 = self.meta[c + C_MAIN]
            spare: i64 = self.meta[c + C_SPARE]
            cpus.append((int(self.meta[main + SH_SIZE]) if main else None,
                         int(self.meta[spare + SH_SIZE]) if spare else None))
        return {"capacity": self.sheaf_capacity, "cpus": cpus,
                "barn_full": int(self.desc[self.d + B_NR_FULL]),
                "barn_empty": int(self.desc[self.d + B_NR_EMPTY])}

    def validate(self):
        """Walk every slab and return the problems found (empty when consistent).

        Debug caches (any slab_debug flag): the kernel's validate_slab_cache() -- flush all
        cpus, then check_slab, on_freelist and check_object on every slab of the node lists,
        repairing as the kernel does -- returns its report records (``pyslub.debug.Report``,
        also appended to ``reports``; as many as slub_kunit counts), followed by anything the
        structural walk of every other cache still finds after the repairs."""
        from pyslub.validate import validate_cache
        self._after()
        if self.debug:
            from pyslub.debug import validate_slab_cache
            self.flush_all()
            with self.binder.__self__._exclusive("validate()"):
                records = validate_slab_cache(self, debug_views(self))
                self.reports.extend(records)
                return records + validate_cache(self, False)
        with self.binder.__self__._exclusive("validate()"):
            return validate_cache(self)

    def _views(self) -> dict:
        """Read-only views of the core's words, for validate() and the tools."""
        return {"pm": memoryview(self.pm).toreadonly(), "meta": memoryview(self.meta).toreadonly(),
                "words": memoryview(self.words).toreadonly(),
                "desc": memoryview(self.desc).toreadonly(),
                "state": memoryview(self.state).toreadonly(),
                "d": self.d, "cpu_base": self.cpu_base}

    # =========================================================================================
    # flush, shrink, destroy
    # =========================================================================================

    def flush_cpu(self, cpu=None):
        """__flush_cpu_slab(): deactivate the cpu slab and unfreeze the cpu partial list of
        ``cpu`` (all cpus when None), as flush_all() does: each cpu is claimed in turn."""
        self._check_alive()
        cpus = range(self.nr_cpus) if cpu is None else (cpu,)
        for k in cpus:
            if not (isinstance(k, int) and 0 <= k < self.nr_cpus):
                raise ValueError(f"cpu {k!r} outside 0..{self.nr_cpus - 1}")
        seat: i64 = current_cpu(self) >> 32
        kk: i64
        c: i64
        st: i64
        tid: i64
        for kk in cpus:
            c = cpu_rec(self, kk)
            st = stats_rec(self, kk, seat)
            if self.sheaf_capacity and (self.meta[c + C_SPARE] or   # has_pcs_used()
                                        self.meta[self.meta[c + C_MAIN] + SH_SIZE]):
                pcs_flush_all(self, c, st)        # flush_cpu_sheaves() first
            if self.gen != GEN_V70:
                tid = cpu_claim(self, c, st)      # the kernel runs this on each cpu (IPI)
                self.flush_cpu_claimed(c, st)
                cpu_release(self, c, tid)
        self._after()

    def flush_all(self):
        self.flush_cpu(None)

    def shrink(self):
        """kmem_cache_shrink(): flush all cpus, free the empty slabs on the node partial list
        and move the fullest slabs to its head; returns the number of slabs freed."""
        self.flush_all()
        cs: i64 = current_cpu(self)
        cpu: i64 = cs & 0xFFFFFFFF
        st: i64 = stats_rec(self, cpu, cs >> 32)
        if self.sheaf_capacity:
            barn_shrink(self, cpu_rec(self, cpu), st)
        freed: i64 = self.shrink_node(st)
        self._after()
        return freed

    def destroy(self):
        """kmem_cache_destroy(): refuses with SlabError while objects are alive."""
        self._check_alive()
        self.flush_all()
        cs: i64 = current_cpu(self)
        st: i64 = stats_rec(self, cs & 0xFFFFFFFF, cs >> 32)
        if self.sheaf_capacity:
            barn_shrink(self, cpu_rec(self, cs & 0xFFFFFFFF), st)
        live = self.live_objects()
        if live:
            from pyslub.debug import shutdown_records
            err = SlabError(f"cache {self.name!r} has {live} live objects remaining"
                            " (Objects remaining on __kmem_cache_shutdown())")
            err.reports = shutdown_records(self)    # the kernel's records; nothing changed
            raise err
        self.desc[self.d + D_STATE] = DS_DEAD
        self.shrink_node(st)
        page: i64
        for page in range(1, self.seg.nr_pages):     # nothing else can be left, but be sure
            if (self.pm[page * PM_STRIDE + PM_SLAB_CACHE] == self.id
                    and self.pm[page * PM_STRIDE + PM_FLAGS] & PG_SLAB):
                self.discard_slab(page)
        self._after()
        release_descriptor(self.seg, self.id)

    def __repr__(self):
        return (f"<Cache {self.name!r} object_size={self.object_size} size={self.size} "
                f"order={self.order} objs_per_slab={self.objects} slub={self.slub}>")


class PrefilledSheaf:
    """A sheaf of ``Cache.prefill_sheaf(size)``: ``alloc()`` pops an object (SlabError when
    empty), ``size`` how many are left; returned when the ``with`` block ends."""

    def __init__(self, cache, size):
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise ValueError(f"size must be a positive int, got {size!r}")
        self.cache = cache
        self.want = size
        self.sh = 0

    def __enter__(self):
        s = self.cache
        s._check_alive()
        cs = s._cpu_seat()
        self.sh = prefill_sheaf(s, cs[0], cs[1], self.want)
        s._after()
        if not self.sh:
            raise MemoryError(f"cache {s.name!r}: cannot prefill a sheaf of {self.want}")
        return self

    @property
    def size(self):
        return sheaf_size(self.cache, self.sh) if self.sh else 0

    def alloc(self):
        """kmem_cache_alloc_from_sheaf()."""
        if not self.sh:
            raise SlabError("the sheaf was returned")
        obj = alloc_from_sheaf(self.cache, self.sh)
        if obj == 0:
            raise SlabError(f"cache {self.cache.name!r}: the prefilled sheaf is empty")
        if obj < 0:
            raise self.cache._corrupt("alloc_from_sheaf")
        return obj

    def __exit__(self, *exc):
        s = self.cache
        if self.sh:
            cs = s._cpu_seat()
            return_sheaf(s, cs[0], cs[1], self.sh)
            self.sh = 0
            s._after()
        return False


@cython.cfunc
def debug_views(s: KmemCache) -> dict:
    """Writable views for validate_slab_cache()'s repairs (pyslub.debug): page records, object
    state bytes, the arena as bytes.  A C function (compiled): not reachable from Python, the
    views go only to the validator that Cache.validate() runs."""
    return {"pm": memoryview(s.pm), "state": memoryview(s.state),
            "mem": s.seg.raw(0, s.arena_bytes),
            "desc": memoryview(s.desc).toreadonly(), "d": s.d,
            "random": s.random if s.hardened else None}


def _tunable(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    return value


# =============================================================================================
# kfree_bulk over the caches of one Memory
# =============================================================================================

def kfree_bulk(seg: Segment, caches: list, any_cache: KmemCache, p, size=None):
    """kfree_bulk(): free kmalloc'ed objects of any cache (and large allocations) listed in
    ``p[:size]``; every entry checked first (``any_cache`` gives the calling thread's cpu)."""
    n: i64 = array_size(p, size, True)
    if n == 0:
        return
    cs: i64 = current_cpu(any_cache)
    bad: i64
    if cython.compiled:
        stackbuf = cython.declare(i64[256])
        buf: cython.p_longlong = stackbuf
        if n > STACK_WORDS:
            buf = cython.cast(cython.p_longlong, malloc(n * 8))
            if buf == cython.NULL:
                raise MemoryError("cannot allocate a scratch array")
        try:
            memcpy(buf, cnp.PyArray_DATA(cython.cast(cnp.ndarray, p)), n * 8)
            bad = kfree_check(seg, caches, n, buf)
            if bad == 0:
                kfree_bulk_lists(seg, caches, cs & 0xFFFFFFFF, cs >> 32, n, buf)
                memcpy(cnp.PyArray_DATA(cython.cast(cnp.ndarray, p)), buf, n * 8)
        finally:
            if buf != cython.address(stackbuf[0]):
                c_free(buf)
    else:
        scratch = p[:n].astype(np.int64)
        words = memoryview(scratch)
        bad = kfree_check(seg, caches, n, words)
        if bad == 0:
            kfree_bulk_lists(seg, caches, cs & 0xFFFFFFFF, cs >> 32, n, words)
            p[:n] = scratch.view(np.uint64)
    if bad:
        i, reason = _decode(bad)
        addr = int(p[i])
        what = BAD_REASONS[reason]
        if reason == BAD_FREEING and any(int(p[j]) == addr for j in range(i)):
            what = "a duplicate of an earlier entry"
        raise SlabError(f"kfree_bulk: p[{i}] = {addr:#x} is {what}; nothing was freed")
    for s in caches:
        if s is not None:
            s._after()
