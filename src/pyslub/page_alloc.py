"""The segment and its page allocators.

``Segment`` owns the one mapping that holds every piece of allocator state (layout:
``pyslub._layout``) and hands out word views of its regions to the slab core.  Two buddy
allocators run over it, one for the **arena** (slabs and large kmalloc blocks: the memory that
object addresses point into) and one for the **metadata region** (per-cpu records, counters,
sheaves: memory no object view can reach).  Both keep the kernel's shape (mm/page_alloc.c
``free_area[order]``): free blocks of ``2**order`` pages on per-order lists linked through their
page records (PM_NEXT/PM_PREV), PG_BUDDY and the order in PM_FLAGS on a block's first page.

Every page of an allocated block gets PM_HEAD = the block's first page, so
``virt_to_head_page(addr)`` is one load; free pages have PM_HEAD = 0.  Page 0 of each region is
reserved so that 0 can be NULL.  The page records of both regions are one array: metadata page
``k`` is record ``nr_pages + k``.

Locks: each allocator has a mutex in the header (H_ZONE_LOCK, H_META_LOCK), a leaf lock: no
other lock is taken while it is held.
"""

import _posixshmem
import mmap
import os

import cython

if cython.compiled:
    from cython.cimports.pyslub._prim import fetch_add, gettid, mutex_lock, mutex_unlock
else:
    from pyslub._layout import *  # noqa: F403 (C enums when compiled: _layout.pxd)
    from pyslub._prim import gettid, mutex_lock, mutex_unlock

    def zone_lock(seg, idx):
        mutex_lock(seg.hdr, idx, gettid())

    def zone_unlock(seg, idx):
        mutex_unlock(seg.hdr, idx)

from pyslub._layout import SEG_MAGIC as _MAGIC  # noqa: E402

# process-local identity of a Segment object (thread bindings are cached per token)
_next_token = cython.declare(cython.longlong, 1)
# what the factories pass to Segment() (compiled: a C global, not reachable from Python)
_SEAL = cython.declare(object, object())


def _align(x, a):
    return (x + a - 1) // a * a


def _word_view(m, start, nbytes):
    return memoryview(m)[start:start + nbytes].cast("q")


def segment_plan(arena_bytes, nr_cpus, max_caches, meta_bytes, shared=False):
    """Byte offsets of every region for these sizes: dict of name -> offset, plus 'total'.
    A shared segment also has the owner bytes (which process allocated each live object)."""
    npages = arena_bytes >> PAGE_SHIFT
    mpages = meta_bytes >> PAGE_SHIFT
    plan = {"hdr": 0}
    off = HDR_WORDS * 8
    plan["desc"] = off
    off = _align(off + max_caches * DESC_STRIDE * 8, PAGE_SIZE)
    plan["pm"] = off
    off = _align(off + (npages + mpages) * PM_STRIDE * 8, PAGE_SIZE)
    plan["state"] = off
    off = _align(off + (arena_bytes >> 3), PAGE_SIZE)
    plan["owner"] = 0
    if shared:
        plan["owner"] = off
        off = _align(off + (arena_bytes >> 3), PAGE_SIZE)
    plan["meta"] = off
    off += meta_bytes
    plan["arena"] = off
    plan["total"] = off + arena_bytes + GUARD_BYTES
    return plan


@cython.final
@cython.cclass
class Segment:
    """One mapping with every piece of allocator state: build it with ``Segment.private``
    (anonymous, this process and its forked children's copies) or ``Segment.create_shared`` /
    ``Segment.attach`` (a POSIX shared memory object that processes map by name)."""

    def __init__(self, *args):
        if not cython.compiled:                   # plain Python has no __cinit__
            Segment.__cinit__(self, *args)

    def __cinit__(self, seal, mapping, shared, name=None, fd=-1):
        # __cinit__ always runs (tp_new): the memoryviews can never be unset.  Only this
        # module's factories hold the seal: a Segment over a mapping they did not format or
        # check cannot be made (the compiled core trusts every word of a segment).
        global _next_token
        if seal is not _SEAL:
            raise TypeError("Segment objects are made by Segment.private, create_shared and "
                            "attach")
        self.mapping = mapping
        self.shared = shared
        self.name = name
        self.fd = fd
        whole = _word_view(mapping, 0, HDR_WORDS * 8)
        if whole[H_MAGIC] != _MAGIC:
            raise ValueError("not a pyslub segment (bad magic number)")
        if whole[H_VERSION] != SEG_VERSION:
            raise ValueError(f"pyslub segment layout version {whole[H_VERSION]}, this pyslub "
                             f"reads version {SEG_VERSION}")
        self.hdr = whole
        self.arena_bytes = whole[H_ARENA_BYTES]
        self.nr_pages = self.arena_bytes >> PAGE_SHIFT
        self.meta_bytes = whole[H_META_BYTES]
        self.meta_pages = self.meta_bytes >> PAGE_SHIFT
        self.nr_cpus = whole[H_NR_CPUS]
        self.max_caches = whole[H_MAX_CACHES]
        self.desc = _word_view(mapping, whole[H_DESC_OFF], self.max_caches * DESC_STRIDE * 8)
        self.pm = _word_view(mapping, whole[H_PM_OFF],
                             (self.nr_pages + self.meta_pages) * PM_STRIDE * 8)
        self.state = memoryview(mapping)[whole[H_STATE_OFF]:
                                         whole[H_STATE_OFF] + (self.arena_bytes >> 3)]
        self.meta = _word_view(mapping, whole[H_META_OFF], self.meta_bytes)
        self.words = _word_view(mapping, whole[H_ARENA_OFF], self.arena_bytes)
        self.arena = memoryview(mapping)[whole[H_ARENA_OFF]:whole[H_ARENA_OFF]
                                         + self.arena_bytes]
        if whole[H_OWNER_OFF]:
            self.owner = memoryview(mapping)[whole[H_OWNER_OFF]:
                                             whole[H_OWNER_OFF] + (self.arena_bytes >> 3)]
        else:
            self.owner = memoryview(bytearray(1))
        self.token = _next_token
        _next_token += 1
        self.pslot = 0
        self.closed = False

    @staticmethod
    def private(arena_bytes, nr_cpus, max_caches=1024, meta_bytes=0):
        """A fresh segment in an anonymous MAP_PRIVATE mapping (a forked child gets a private
        copy-on-write copy of all of it)."""
        _check_sizes(arena_bytes, nr_cpus)
        if meta_bytes == 0:
            meta_bytes = default_meta_bytes(nr_cpus)
        plan = segment_plan(arena_bytes, nr_cpus, max_caches, meta_bytes)
        m = mmap.mmap(-1, plan["total"], flags=mmap.MAP_PRIVATE)
        format_segment(m, plan, arena_bytes, nr_cpus, max_caches, meta_bytes)
        return Segment(_SEAL, m, False)

    @staticmethod
    def create_shared(name, arena_bytes, nr_cpus, max_caches=1024, meta_bytes=0):
        """A fresh segment in the POSIX shared memory object ``name`` (``/dev/shm/<name>``),
        created exclusively (FileExistsError if the name is taken); processes map it with
        ``Segment.attach(name)``."""
        _check_sizes(arena_bytes, nr_cpus)
        if meta_bytes == 0:
            meta_bytes = default_meta_bytes(nr_cpus)
        plan = segment_plan(arena_bytes, nr_cpus, max_caches, meta_bytes, shared=True)
        fd = _posixshmem.shm_open(_shm_path(name), os.O_CREAT | os.O_EXCL | os.O_RDWR,
                                  mode=0o600)
        try:
            os.ftruncate(fd, plan["total"])
            m = mmap.mmap(fd, plan["total"], flags=mmap.MAP_SHARED)
        except BaseException:
            os.close(fd)
            _posixshmem.shm_unlink(_shm_path(name))
            raise
        format_segment(m, plan, arena_bytes, nr_cpus, max_caches, meta_bytes)
        return Segment(_SEAL, m, True, name, fd)

    @staticmethod
    def attach(name):
        """Map the shared segment ``name`` made by ``create_shared``.  FileNotFoundError when
        there is none (never created, or unlinked); ValueError when it is not a pyslub segment
        or was made by a pyslub with another layout version."""
        try:
            fd = _posixshmem.shm_open(_shm_path(name), os.O_RDWR, mode=0o600)
        except FileNotFoundError:
            raise FileNotFoundError(f"no shared pyslub arena named {name!r} (never created, "
                                    "or unlinked)") from None
        try:
            size = os.fstat(fd).st_size
            if size < HDR_WORDS * 8:
                raise ValueError(f"shared memory {name!r} is not a pyslub arena "
                                 f"({size} bytes, smaller than a segment header)")
            m = mmap.mmap(fd, size, flags=mmap.MAP_SHARED)
            hdr = _word_view(m, 0, HDR_WORDS * 8)
            magic, version, total = hdr[H_MAGIC], hdr[H_VERSION], hdr[H_SEG_BYTES]
            hdr.release()
            if magic != _MAGIC:
                raise ValueError(f"shared memory {name!r} is not a pyslub arena (bad magic "
                                 "number, or still being created)")
            if version != SEG_VERSION:
                raise ValueError(f"shared memory {name!r} holds a pyslub arena of layout "
                                 f"version {version}; this pyslub reads version {SEG_VERSION}")
            if total != size:
                raise ValueError(f"shared memory {name!r}: {size} bytes, its header says "
                                 f"{total}")
        except BaseException:
            os.close(fd)
            raise
        return Segment(_SEAL, m, True, name, fd)

    def close(self):
        """This process is done with the segment: no operation may start on it any more (the
        Memory checks ``closed``), and its shm file descriptor is closed.  The mapping itself
        goes away with the last reference to this object."""
        self.closed = True
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    @staticmethod
    def unlink(name):
        """Remove the name (as shm_unlink: mappings stay valid until closed)."""
        try:
            _posixshmem.shm_unlink(_shm_path(name))
        except FileNotFoundError:
            raise FileNotFoundError(f"no shared pyslub arena named {name!r}") from None

    # ---- the two buddy allocators -----------------------------------------------------------
    # region 0: the arena (records 0 .. nr_pages-1); region 1: metadata (records nr_pages ..)

    def _list_add(self, fa, base, page, order):
        head: i64 = self.hdr[fa + 2 * order]
        r: i64 = (base + page) * PM_STRIDE
        self.pm[r + PM_FLAGS] = PG_BUDDY | (order << ORDER_SHIFT)
        self.pm[r + PM_HEAD] = 0
        self.pm[r + PM_NEXT] = head
        self.pm[r + PM_PREV] = 0
        if head:
            self.pm[(base + head) * PM_STRIDE + PM_PREV] = page
        self.hdr[fa + 2 * order] = page
        self.hdr[fa + 2 * order + 1] += 1

    def _list_del(self, fa, base, page, order):
        r: i64 = (base + page) * PM_STRIDE
        nxt: i64 = self.pm[r + PM_NEXT]
        prv: i64 = self.pm[r + PM_PREV]
        if prv:
            self.pm[(base + prv) * PM_STRIDE + PM_NEXT] = nxt
        else:
            self.hdr[fa + 2 * order] = nxt
        if nxt:
            self.pm[(base + nxt) * PM_STRIDE + PM_PREV] = prv
        self.pm[r + PM_FLAGS] = 0
        self.pm[r + PM_NEXT] = 0
        self.pm[r + PM_PREV] = 0
        self.hdr[fa + 2 * order + 1] -= 1

    def _buddy_alloc(self, region, order):
        fa: i64 = H_FREE_AREA if region == 0 else H_META_FREE_AREA
        base: i64 = 0 if region == 0 else self.nr_pages
        o: cython.int = order
        while o < MAX_ORDER and self.hdr[fa + 2 * o] == 0:
            o += 1
        if o >= MAX_ORDER:
            return 0
        page: i64 = self.hdr[fa + 2 * o]
        self._list_del(fa, base, page, o)
        while o > order:                       # split, giving back the upper halves
            o -= 1
            self._list_add(fa, base, page + (1 << o), o)
        i: i64
        for i in range(1 << order):
            self.pm[(base + page + i) * PM_STRIDE + PM_HEAD] = page
            self.pm[(base + page + i) * PM_STRIDE + PM_FLAGS] = PG_TAIL
        self.pm[(base + page) * PM_STRIDE + PM_FLAGS] = PG_HEAD | (order << ORDER_SHIFT)
        self.hdr[H_NR_FREE_PAGES if region == 0 else H_META_NR_FREE] -= 1 << order
        return page

    def _buddy_free(self, region, page, order):
        fa: i64 = H_FREE_AREA if region == 0 else H_META_FREE_AREA
        base: i64 = 0 if region == 0 else self.nr_pages
        limit: i64 = self.nr_pages if region == 0 else self.meta_pages
        i: i64
        r: i64
        for i in range(1 << order):
            r = (base + page + i) * PM_STRIDE
            self.pm[r + PM_HEAD] = 0
            self.pm[r + PM_FLAGS] = 0
        self.hdr[H_NR_FREE_PAGES if region == 0 else H_META_NR_FREE] += 1 << order
        buddy: i64
        bflags: i64
        while order < MAX_ORDER - 1:
            buddy = page ^ (1 << order)
            if buddy >= limit:
                break
            bflags = self.pm[(base + buddy) * PM_STRIDE + PM_FLAGS]
            if not (bflags & PG_BUDDY) or ((bflags >> ORDER_SHIFT) & ORDER_MASK) != order:
                break
            self._list_del(fa, base, buddy, order)
            if buddy < page:
                page = buddy
            order += 1
        self._list_add(fa, base, page, order)

    def relist(self, region):
        """Rebuild one region's free lists from its page records: every page that belongs to
        no block (PM_HEAD 0) is free, in the largest naturally aligned runs.  (Zone lock held,
        or the world stopped: recover().)"""
        fa: i64 = H_FREE_AREA if region == 0 else H_META_FREE_AREA
        nfree: i64 = H_NR_FREE_PAGES if region == 0 else H_META_NR_FREE
        base: i64 = 0 if region == 0 else self.nr_pages
        count: i64 = self.nr_pages if region == 0 else self.meta_pages
        o: cython.int
        page: i64
        order: cython.int
        k: i64
        r: i64
        for o in range(MAX_ORDER):
            self.hdr[fa + 2 * o] = 0
            self.hdr[fa + 2 * o + 1] = 0
        self.hdr[nfree] = 0
        for page in range(1, count):
            r = (base + page) * PM_STRIDE
            if self.pm[r + PM_HEAD] == 0:
                self.pm[r + PM_FLAGS] = 0
                self.pm[r + PM_NEXT] = 0
                self.pm[r + PM_PREV] = 0
        self.pm[base * PM_STRIDE + PM_FLAGS] = PG_RESERVED
        page = 1
        while page < count:
            if self.pm[(base + page) * PM_STRIDE + PM_HEAD] != 0:
                page += 1
                continue
            order = MAX_ORDER - 1
            while order > 0:
                if not ((page & ((1 << order) - 1)) or page + (1 << order) > count):
                    k = 0
                    while k < (1 << order) and self.pm[(base + page + k) * PM_STRIDE
                                                       + PM_HEAD] == 0:
                        k += 1
                    if k == (1 << order):
                        break
                order -= 1
            self._list_add(fa, base, page, order)
            self.hdr[nfree] += 1 << order
            page += 1 << order

    def zone_repair(self, idx):
        """The zone lock ``idx`` was taken over from a thread that died holding it (shared
        segments), maybe halfway through a split or a merge: the region's free lists are
        rebuilt (relist).  Pages of a block the dead thread took stay taken until recover().
        Counted in H_DAMAGED."""
        self.relist(0 if idx == H_ZONE_LOCK else 1)
        if cython.compiled:
            fetch_add(cython.address(self.hdr[H_DAMAGED]), 1)
        else:
            self.hdr[H_DAMAGED] += 1

    def alloc_pages(self, order):
        """Take a block of 2**order arena pages; its first page index, 0 when none is free.

        Every page of the block gets PM_HEAD; the first page PG_HEAD and the order, the others
        PG_TAIL.  The caller sets PG_SLAB / PG_LARGE on top.
        """
        if order < 0 or order >= MAX_ORDER:
            return 0
        page: i64 = 0
        zone_lock(self, H_ZONE_LOCK)
        if self.hdr[H_FAIL_AFTER] != 0:           # fault injection (tests): < 0 is off
            if self.hdr[H_FAIL_AFTER] > 0:
                self.hdr[H_FAIL_AFTER] -= 1
            page = self._buddy_alloc(0, order)
        zone_unlock(self, H_ZONE_LOCK)
        return page

    def free_pages(self, page, order):
        """Give back a block taken with alloc_pages(order), merging it with free buddies."""
        zone_lock(self, H_ZONE_LOCK)
        self._buddy_free(0, page, order)
        zone_unlock(self, H_ZONE_LOCK)

    def meta_alloc(self, nbytes):
        """Metadata memory, zeroed: the word offset of a block of at least ``nbytes`` in the
        metadata region (0 when it is full)."""
        order: cython.int = 0
        while (PAGE_SIZE << order) < nbytes:
            order += 1
        if order >= MAX_ORDER:
            return 0
        zone_lock(self, H_META_LOCK)
        page: i64 = self._buddy_alloc(1, order)
        zone_unlock(self, H_META_LOCK)
        if page == 0:
            return 0
        w: i64 = page << (PAGE_SHIFT - 3)
        i: i64
        for i in range((PAGE_SIZE << order) >> 3):
            self.meta[w + i] = 0
        return w

    def meta_free(self, w, nbytes):
        """Give back a block of meta_alloc(nbytes) at word offset ``w``."""
        order: cython.int = 0
        while (PAGE_SIZE << order) < nbytes:
            order += 1
        zone_lock(self, H_META_LOCK)
        self._buddy_free(1, w >> (PAGE_SHIFT - 3), order)
        zone_unlock(self, H_META_LOCK)

    def alloc_large(self, order):
        """kmalloc_large(): a compound block marked PG_LARGE; its first page, 0 when none."""
        page: i64 = self.alloc_pages(order)
        if page:
            self.pm[page * PM_STRIDE + PM_FLAGS] |= PG_LARGE
            if self.hdr[H_FLAGS] & MEM_CHECKS:
                self.state[page << (PAGE_SHIFT - 3)] = OBJ_LIVE
        return page

    def free_large(self, page):
        """kfree() of a large block (PG_LARGE at ``page``, checked by the caller)."""
        r: i64 = page * PM_STRIDE
        order: cython.int = (self.pm[r + PM_FLAGS] >> ORDER_SHIFT) & ORDER_MASK
        self.pm[r + PM_FLAGS] &= ~PG_LARGE
        self.state[page << (PAGE_SHIFT - 3)] = OBJ_FREE
        self.free_pages(page, order)

    def kfree_large(self, addr):
        """kfree() of a large block: True when ``addr`` started one (now freed)."""
        if self.large_order(addr) < 0:
            return False
        if self.hdr[H_FLAGS] & MEM_CHECKS and self.state[addr >> 3] != OBJ_LIVE:
            return False
        self.free_large(addr >> PAGE_SHIFT)
        return True

    def large_order(self, addr):
        """Order of the large kmalloc block starting at ``addr``, or -1."""
        if addr & (PAGE_SIZE - 1) or not (0 < addr < self.arena_bytes):
            return -1
        flags: i64 = self.pm[(addr >> PAGE_SHIFT) * PM_STRIDE + PM_FLAGS]
        if (flags & (PG_LARGE | PG_HEAD)) != (PG_LARGE | PG_HEAD):
            return -1
        return (flags >> ORDER_SHIFT) & ORDER_MASK

    # ---- Python-visible helpers (tests, tools) ----------------------------------------------

    def set_flags(self, flags):
        """Set MEM_* flags (before any cache exists)."""
        self.hdr[H_FLAGS] |= flags

    def is_live(self, addr):
        """Safe mode: is the object (or large block) at ``addr`` handed out?"""
        return 0 < addr < self.arena_bytes and self.state[addr >> 3] == OBJ_LIVE

    def raw(self, addr, nbytes):
        """A writable memoryview of arena bytes [addr, addr + nbytes) (bounds checked by the
        caller)."""
        return self.arena[addr:addr + nbytes]

    def flags(self):
        return int(self.hdr[H_FLAGS])

    def set_config(self, gen, core):
        """Shared segments, by their creator: the SLUB generation and the core (CORE_*)."""
        self.hdr[H_GEN] = gen
        self.hdr[H_CORE] = core

    def config(self):
        """(generation, core) written by the creator."""
        return int(self.hdr[H_GEN]), int(self.hdr[H_CORE])

    def nr_caches(self):
        """Descriptor ids handed out so far (ids 1 .. nr_caches-1)."""
        return int(self.hdr[H_NR_CACHES])

    def descriptor_live(self, cid):
        return (0 < cid < self.hdr[H_NR_CACHES]
                and self.desc[cid * DESC_STRIDE + D_STATE] == DS_LIVE)

    def op_marker(self):
        """Uncompiled cores on a shared segment: pid of the process inside an operation."""
        return int(self.hdr[H_PURE_OP])

    def set_op_marker(self, pid):
        if not isinstance(pid, int) or not 0 <= pid < 1 << 31:
            raise ValueError(f"pid {pid!r}")
        self.hdr[H_PURE_OP] = pid

    def damaged(self):
        """Locks and cpu claims taken over from dead holders since the last recover()."""
        return int(self.hdr[H_DAMAGED])

    def inject_failures(self, after):
        """Make arena page allocations fail after ``after`` more successes (-1 turns it off)."""
        self.hdr[H_FAIL_AFTER] = after

    def free_counts(self):
        """Free arena blocks per order (like /proc/buddyinfo)."""
        return [int(self.hdr[H_FREE_AREA + 2 * o + 1]) for o in range(MAX_ORDER)]

    @property
    def nr_free_pages(self):
        return int(self.hdr[H_NR_FREE_PAGES])

    def page_word(self, page, word):
        """Word ``word`` of arena page record ``page`` (read-only access for tools and tests)."""
        if not (0 <= page < self.nr_pages) or not (0 <= word < PM_STRIDE):
            raise IndexError(f"no page record word ({page}, {word})")
        return int(self.pm[page * PM_STRIDE + word])


def _check_sizes(arena_bytes, nr_cpus):
    npages = arena_bytes >> PAGE_SHIFT
    if npages < 2 or (npages << PAGE_SHIFT) != arena_bytes:
        raise ValueError(f"arena size {arena_bytes} must be a multiple of 4096 and >= 8192")
    if nr_cpus < 1 or nr_cpus > MAX_CPUS:
        raise ValueError(f"nr_cpus {nr_cpus} must be in 1..{MAX_CPUS}")


def _shm_path(name):
    """The shm_open() name of a segment: ``name`` as multiprocessing.shared_memory takes it."""
    if not isinstance(name, str) or not name or "/" in name or len(name) > 250:
        raise ValueError(f"shared arena name must be a non-empty str without '/', got {name!r}")
    return "/" + name


def default_meta_bytes(nr_cpus):
    """Metadata region size: counters are nr_cpus x (NR_SEATS + 1) blocks per cache."""
    per_cache = nr_cpus * (CPU_STRIDE + (NR_SEATS + 1) * NR_STATS) * 8 + 16 * PAGE_SIZE
    return _align(max(32 << 20, 256 * per_cache), 1 << (PAGE_SHIFT + MAX_ORDER - 1))


def format_segment(m, plan, arena_bytes, nr_cpus, max_caches, meta_bytes):
    """Write a fresh header and the two buddy allocators' free lists into mapping ``m``."""
    hdr = _word_view(m, 0, HDR_WORDS * 8)
    npages = arena_bytes >> PAGE_SHIFT
    mpages = meta_bytes >> PAGE_SHIFT
    hdr[H_VERSION] = SEG_VERSION
    hdr[H_SEG_BYTES] = plan["total"]
    hdr[H_NR_CPUS] = nr_cpus
    hdr[H_MAX_CACHES] = max_caches
    hdr[H_ARENA_OFF] = plan["arena"]
    hdr[H_ARENA_BYTES] = arena_bytes
    hdr[H_PM_OFF] = plan["pm"]
    hdr[H_STATE_OFF] = plan["state"]
    hdr[H_META_OFF] = plan["meta"]
    hdr[H_META_BYTES] = meta_bytes
    hdr[H_META_PM_OFF] = plan["pm"] + npages * PM_STRIDE * 8
    hdr[H_DESC_OFF] = plan["desc"]
    hdr[H_NR_CACHES] = 1                  # id 0 means "not a slab page"
    p = 1
    while p < nr_cpus:
        p <<= 1
    hdr[H_TID_STEP] = p
    hdr[H_NR_SEATS] = NR_SEATS
    hdr[H_FAIL_AFTER] = -1
    hdr[H_OWNER_OFF] = plan["owner"]
    if plan["owner"]:
        hdr[H_FLAGS] |= MEM_SHARED
    pm = _word_view(m, plan["pm"], (npages + mpages) * PM_STRIDE * 8)
    for fa, nfree, base, count in ((H_FREE_AREA, H_NR_FREE_PAGES, 0, npages),
                                   (H_META_FREE_AREA, H_META_NR_FREE, npages, mpages)):
        pm[base * PM_STRIDE + PM_FLAGS] = PG_RESERVED
        page = 1
        while page < count:               # the largest naturally aligned blocks that fit
            order = MAX_ORDER - 1
            while order > 0 and ((page & ((1 << order) - 1)) or page + (1 << order) > count):
                order -= 1
            head = hdr[fa + 2 * order]
            r = (base + page) * PM_STRIDE
            pm[r + PM_FLAGS] = PG_BUDDY | (order << ORDER_SHIFT)
            pm[r + PM_NEXT] = head
            if head:
                pm[(base + head) * PM_STRIDE + PM_PREV] = page
            hdr[fa + 2 * order] = page
            hdr[fa + 2 * order + 1] += 1
            hdr[nfree] += 1 << order
            page += 1 << order
    pm.release()
    hdr[H_MAGIC] = SEG_MAGIC              # last: a segment is valid once formatted
    hdr.release()
