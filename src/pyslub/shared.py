"""Caches of a shared arena: every operation inside the gate, every live object with its owner.

A shared segment (``Memory.create_shared`` / ``Memory.attach``) holds every piece of allocator
state, so a ``SharedCache`` is only a process-local view onto a descriptor in the mapping, as
``Cache`` is.  What it adds is what process death needs (``pyslub.recovery`` has the rules):

* **the gate**: each operation runs between ``gate_enter`` and ``gate_exit``
  (``pyslub.procs``), so that ``recover()`` can stop the world;
* **owner bytes**: an object handed out gets its process slot in ``seg.owner`` *after* the core
  returned it, and a free clears the byte *before* the core frees it.  An object whose state
  byte says live and whose owner byte is 0 is therefore in flight (an allocation that never
  returned, or a free that never finished): recover() frees it.  A free the core refuses puts
  the bytes back.

Uncompiled, the gate functions do nothing: every operation of a shared segment runs under the
Memory's guard and a lock on the segment's file (pyslub.memory).
"""

import cython

if cython.compiled:
    import cython.cimports.numpy as cnp
    from cython.cimports.cpython.bytearray import PyByteArray_AS_STRING
    from cython.cimports.pyslub.procs import gate_enter, gate_exit
else:
    from pyslub._layout import *  # noqa: F403 (C enums when compiled: _layout.pxd)
    from pyslub.cache import array_size
    from pyslub.procs import gate_enter, gate_exit
    from pyslub.slab import current_cpu

from pyslub.cache import Cache, PrefilledSheaf, address_arg  # noqa: E402
from pyslub.errors import SlabError  # noqa: E402


@cython.cfunc
def gate_in(s: Cache) -> i64:
    """Enter the gate for an operation of the calling thread on ``s``'s segment; its seat.
    A recoverer that died with the gate closed is finished by us (recover()), then we retry."""
    if s.seg.closed:
        raise SlabError("this shared Memory was closed in this process")
    seat: i64 = current_cpu(s) >> 32
    while not gate_enter(s.seg, seat, s.seg.pslot):
        s.binder.__self__.recover()
    return seat


@cython.cfunc
def set_owner(s: Cache, addr: i64, slot: cython.int) -> cython.void:
    if 0 < addr < s.arena_bytes:
        s.seg.owner[addr >> 3] = slot


@cython.cfunc
def take_owner(s: Cache, addr: i64) -> cython.int:
    """Clear ``addr``'s owner byte (before its free); the old value."""
    old: cython.int = 0
    if 0 < addr < s.arena_bytes:
        old = s.seg.owner[addr >> 3]
        s.seg.owner[addr >> 3] = 0
    return old


def _count(p, size) -> int:
    """Entries of ``p[:size]`` the owner bytes are handled for, checked as the core checks
    them (TypeError / ValueError otherwise: nothing was touched)."""
    return array_size(p, size, True)


@cython.cfunc
def owners_set(s: Cache, p, n: i64, slot: cython.int) -> cython.void:
    i: i64
    if cython.compiled:                        # p was checked by array_size (uint64, C order)
        pv = cython.cast(cython.p_ulonglong, cnp.PyArray_DATA(p))
        for i in range(n):
            set_owner(s, pv[i], slot)
    else:
        for i in range(n):
            set_owner(s, int(p[i]), slot)


@cython.cfunc
def owners_take(s: Cache, p, n: i64):
    """Clear the owner bytes of ``p[:n]`` (before their free); the old values (bytes)."""
    old = bytearray(n)
    i: i64
    if cython.compiled:
        pv = cython.cast(cython.p_ulonglong, cnp.PyArray_DATA(p))
        ov = cython.cast(cython.p_uchar, PyByteArray_AS_STRING(old))
        for i in range(n):
            ov[i] = take_owner(s, pv[i])
    else:
        for i in range(n):
            old[i] = take_owner(s, int(p[i]))
    return old


@cython.cfunc
def owners_restore(s: Cache, p, n: i64, old) -> cython.void:
    i: i64
    for i in range(n):
        set_owner(s, int(p[i]), old[i])


@cython.cclass
class SharedCache(Cache):
    """A cache of a shared arena (see the module docstring); the API is ``Cache``'s."""

    def alloc(self):
        seat: i64 = gate_in(self)
        try:
            a = Cache.alloc(self)
            set_owner(self, a, self.seg.pslot)
            return a
        finally:
            gate_exit(self.seg, seat, self.seg.pslot)

    def kmalloc(self, size):
        seat: i64 = gate_in(self)
        try:
            a = Cache.kmalloc(self, size)
            set_owner(self, a, self.seg.pslot)
            return a
        finally:
            gate_exit(self.seg, seat, self.seg.pslot)

    def free(self, addr):
        a: i64 = address_arg(addr)
        seat: i64 = gate_in(self)
        try:
            old: cython.int = take_owner(self, a)
            try:
                Cache.free(self, a)
            except BaseException:
                set_owner(self, a, old)
                raise
        finally:
            gate_exit(self.seg, seat, self.seg.pslot)

    def alloc_bulk(self, p, size=None):
        seat: i64 = gate_in(self)
        try:
            got = Cache.alloc_bulk(self, p, size)
            if got:
                owners_set(self, p, got, self.seg.pslot)
            return got
        finally:
            gate_exit(self.seg, seat, self.seg.pslot)

    def free_bulk(self, p, size=None, strategy=None):
        return self._release(p, size, Cache.free_bulk, (self, p, size, strategy))

    def _release(self, p, size, fn, args):
        """``fn(*args)``, a free of the objects ``p[:size]``, inside the gate: their owner
        bytes cleared first and put back if it raises (nothing was freed then)."""
        seat: i64 = gate_in(self)
        try:
            n: i64 = _count(p, size)
            old = owners_take(self, p, n) if n > 0 else None
            try:
                return fn(*args)
            except BaseException:
                if n > 0:
                    owners_restore(self, p, n, old)
                raise
        finally:
            gate_exit(self.seg, seat, self.seg.pslot)

    def prefill_sheaf(self, size):
        """kmem_cache_prefill_sheaf() as a context manager (``with cache.prefill_sheaf(n) as
        sh: sh.alloc()``); objects taken from it get this process as their owner."""
        return SharedPrefilledSheaf(self, size)

    def _gated(self, fn, *args):
        """``fn(self, *args)`` inside the gate (the multi-step operations)."""
        seat: i64 = gate_in(self)
        try:
            return fn(self, *args)
        finally:
            gate_exit(self.seg, seat, self.seg.pslot)

    def flush_cpu(self, cpu=None):
        return self._gated(Cache.flush_cpu, cpu)

    def shrink(self):
        return self._gated(Cache.shrink)

    def destroy(self):
        return self._gated(Cache.destroy)

    def validate(self):
        return self._gated(Cache.validate)

    # Memory-level operations of a shared arena, run by its first kmalloc cache (they need a
    # cache for the calling thread's cpu and seat)

    def _kmalloc_large(self, order):
        seat: i64 = gate_in(self)
        try:
            page = self.seg.alloc_large(order)
            if page:
                set_owner(self, page << PAGE_SHIFT, self.seg.pslot)
            return page
        finally:
            gate_exit(self.seg, seat, self.seg.pslot)

    def _kfree_large(self, addr):
        a: i64 = address_arg(addr)
        seat: i64 = gate_in(self)
        try:
            old: cython.int = take_owner(self, a)
            if not self.seg.kfree_large(a):
                set_owner(self, a, old)
                return False
            return True
        finally:
            gate_exit(self.seg, seat, self.seg.pslot)

    def _kfree_bulk(self, fn, seg, caches, p, size):
        """kfree_bulk ``fn(seg, caches, self, p, size)`` inside the gate (see _release)."""
        return self._release(p, size, fn, (seg, caches, self, p, size))


class SharedPrefilledSheaf(PrefilledSheaf):
    """A prefilled sheaf of a shared cache: filled and returned inside the gate, its objects
    owned by this process once taken."""

    def __enter__(self):
        s = self.cache
        seat = gate_in(s)
        try:
            return PrefilledSheaf.__enter__(self)
        finally:
            gate_exit(s.seg, seat, s.seg.pslot)

    def alloc(self):
        s = self.cache
        seat = gate_in(s)
        try:
            a = PrefilledSheaf.alloc(self)
            set_owner(s, a, s.seg.pslot)
            return a
        finally:
            gate_exit(s.seg, seat, s.seg.pslot)

    def __exit__(self, *exc):
        s = self.cache
        seat = gate_in(s)
        try:
            return PrefilledSheaf.__exit__(self, *exc)
        finally:
            gate_exit(s.seg, seat, s.seg.pslot)
