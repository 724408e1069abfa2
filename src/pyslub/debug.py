"""slab_debug: the kernel's SLUB debugging (mm/slub.c, spec §6.2), the parts above the core.

* ``parse_slab_debug(text)`` reads the ``slab_debug=`` boot option (also ``slub_debug=``) with
  the modern grammar: blocks separated by ``;``, each ``<flags>[,<cache>[,<cache>...]]``; the
  flags are letters ``F Z P U T O`` (case-insensitive) and ``-`` (all off so far); an empty
  flag list before a cache list means ``FZPU`` (DEBUG_DEFAULT_FLAGS); a cache name ending in
  ``*`` matches by prefix; a block without a cache list sets the global flags.
  ``Memory(slab_debug=...)`` takes it, else the ``PYSLUB_SLAB_DEBUG`` environment variable.
* ``kmem_cache_flags(config, name, flags)`` is the kernel's function of that name: the flags of
  the first block whose list matches ``name``, else the global flags, or'ed into ``flags``
  (``SLAB_NO_USER_FLAGS`` ignores the option, as slub_kunit's caches do).
* ``O`` (disable_higher_order_debug): a cache whose minimum order would grow because of the
  debug metadata gets no ``Z P U`` (kmem_cache_open()).

Deviations: ``A`` (failslab) is refused (pyslub has no fault injection per cache); an unknown
letter is a ValueError (the kernel prints "slab_debug option '%c' unknown. skipped").  The
kernel accepts ``slab_debug`` without ``=`` for "everything on": pass ``""``.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass

from pyslub._layout import (
    FROZEN_BIT,
    INUSE_MASK,
    MAX_OBJS_PER_PAGE,
    N_FULL_HEAD,
    N_PARTIAL_HEAD,
    OBJ_FREE,
    OBJ_LEAKED,
    OBJECT_POISON,
    OBJECTS_MASK,
    OBJECTS_SHIFT,
    ORDER_MASK,
    ORDER_SHIFT,
    PAGE_SHIFT,
    PAGE_SIZE,
    PG_SLAB,
    PM_COUNTERS,
    PM_FLAGS,
    PM_FREELIST,
    PM_NEXT,
    PM_STRIDE,
    SLAB_CONSISTENCY_CHECKS,
    SLAB_NO_USER_FLAGS,
    SLAB_POISON,
    SLAB_RED_ZONE,
    SLAB_STORE_USER,
    SLAB_TRACE,
)
from pyslub._prim import swab
from pyslub.sizing import SIZEOF_ORIG_SIZE, SIZEOF_TRACK, SLAB_KMALLOC, slub_debug_orig_size

DEBUG_DEFAULT_FLAGS = SLAB_CONSISTENCY_CHECKS | SLAB_RED_ZONE | SLAB_POISON | SLAB_STORE_USER
DEBUG_METADATA_FLAGS = SLAB_RED_ZONE | SLAB_POISON | SLAB_STORE_USER
FLAG_LETTERS = {"f": SLAB_CONSISTENCY_CHECKS, "z": SLAB_RED_ZONE, "p": SLAB_POISON,
                "u": SLAB_STORE_USER, "t": SLAB_TRACE}
ENV = "PYSLUB_SLAB_DEBUG"
TRACK_ALLOC = 0
TRACK_FREE = 1


@dataclass(frozen=True)
class SlabDebug:
    """A parsed ``slab_debug=`` option."""

    text: str
    global_flags: int                                  # slub_debug
    blocks: tuple[tuple[int, tuple[str, ...]], ...]    # (flags, cache patterns), in order
    higher_order_disable: bool                         # O

    def flags_for(self, name: str, flags: int) -> int:
        return kmem_cache_flags(self, name, flags)


def _parse_block(block: str, where: str) -> tuple[int, tuple[str, ...] | None, bool]:
    """parse_slub_debug_flags() on one block: (flags, cache patterns or None, saw 'O')."""
    letters, sep, caches = block.partition(",")
    higher = False
    if letters == "" and sep:
        flags = DEBUG_DEFAULT_FLAGS                    # ",dentry": full debugging for those
    else:
        flags = 0
        for ch in letters:
            lo = ch.lower()
            if lo == "-":
                flags = 0
            elif lo == "o":
                higher = True
            elif lo == "a":
                raise ValueError(f"slab_debug {where}: 'A' (failslab) is not supported by "
                                 "pyslub")
            elif lo in FLAG_LETTERS:
                flags |= FLAG_LETTERS[lo]
            else:
                raise ValueError(f"slab_debug {where}: unknown option {ch!r} (flags are "
                                 "F Z P U T O and -)")
    if not sep:
        return flags, None, higher
    # empty names (",,", a trailing ",") match nothing, as in the kernel's compare
    return flags, tuple(n for n in caches.split(",") if n), higher


def parse_slab_debug(text: str) -> SlabDebug:
    """setup_slub_debug(): the option's value (what follows ``slab_debug=``)."""
    if not isinstance(text, str):
        raise TypeError(f"slab_debug must be a str, got {type(text).__name__}")
    if text.startswith(("slab_debug=", "slub_debug=")):
        text = text.split("=", 1)[1]
    if text == "":
        return SlabDebug(text, DEBUG_DEFAULT_FLAGS, (), False)   # no options: everything on
    global_flags = 0                    # slub_debug without CONFIG_SLUB_DEBUG_ON: off
    blocks = []
    higher = False
    for i, block in enumerate(text.split(";")):
        if block == "":                                # completely empty blocks are skipped
            continue
        flags, names, o = _parse_block(block, f"block {i + 1} ({block!r})")
        higher = higher or o
        if names is None:
            global_flags = flags
        else:
            blocks.append((flags, names))
    return SlabDebug(text, global_flags, tuple(blocks), higher)


def from_environment() -> SlabDebug | None:
    """``PYSLUB_SLAB_DEBUG``, parsed (None when unset)."""
    text = os.environ.get(ENV)
    if text is None:
        return None
    try:
        return parse_slab_debug(text)
    except ValueError as e:
        raise ValueError(f"{ENV}={text!r}: {e}") from None


def _matches(pattern: str, name: str) -> bool:
    """kmem_cache_flags()'s compare: a prefix up to '*', else the whole name."""
    star = pattern.find("*")
    if star >= 0:
        return name.startswith(pattern[:star])
    return name == pattern


def kmem_cache_flags(config: SlabDebug | None, name: str, flags: int) -> int:
    """kmem_cache_flags(): the cache's flags with the option applied."""
    if config is None or flags & SLAB_NO_USER_FLAGS:
        return flags
    for block_flags, names in config.blocks:
        if any(_matches(p, name) for p in names):
            return flags | block_flags
    return flags | config.global_flags


def cache_flags(config: SlabDebug | None, name: str, object_size: int, align: int, flags: int,
                nr_cpus: int) -> int:
    """kmem_cache_flags(), then kmem_cache_open()'s ``O`` rule: without the debug metadata
    flags when they would raise the cache's minimum order (get_order(size) >
    get_order(object_size))."""
    from pyslub.sizing import cache_geometry, get_order

    flags = kmem_cache_flags(config, name, flags)
    if config is not None and config.higher_order_disable and flags & DEBUG_METADATA_FLAGS:
        g = cache_geometry(object_size, align, flags, nr_cpus)
        if get_order(g.size) > get_order(object_size):
            flags &= ~DEBUG_METADATA_FLAGS
    return flags


# =============================================================================================
# Object checks (v4.4 init_object / check_object, with the kmalloc red zone of ~v6.1); debug.pxd
# has the core's C twins, slab.py's check_object() runs them
# =============================================================================================

POISON_INUSE = 0x5A        # whole new slab and padding
POISON_FREE = 0x6B         # free object body
POISON_END = 0xA5          # last byte of a poisoned object
SLUB_RED_INACTIVE = 0xBB
SLUB_RED_ACTIVE = 0xCC
CHK_REDZONE = 1
CHK_POISON = 2
CHK_FREEPTR = 3
CHK_KMALLOC_REDZONE = 4
CHK_ALIGN_PADDING = 5
CHK_OBJECT_PADDING = 6
CHK_WHAT = {CHK_REDZONE: "Redzone", CHK_POISON: "Poison", CHK_FREEPTR: "Freepointer corrupt",
            CHK_KMALLOC_REDZONE: "kmalloc Redzone", CHK_ALIGN_PADDING: "Alignment padding",
            CHK_OBJECT_PADDING: "Object padding"}
# report codes of the core beyond _layout's REP_* (debug.pxd has the same values)
REP_SLAB_PAD = 32          # __free_slab: slab_pad_check() failed (see slab.py)
REP_NOT_FREED = 33         # debug free: check_object() failed [obj, 0, page]


def init_object(mem, obj, object_size, inuse, flags, val):
    if flags & OBJECT_POISON:
        mem[obj:obj + object_size - 1] = bytes([POISON_FREE]) * (object_size - 1)
        mem[obj + object_size - 1] = POISON_END
    if flags & SLAB_RED_ZONE:
        mem[obj + object_size:obj + inuse] = bytes([val]) * (inuse - object_size)


def check_bytes(mem, obj, start, value, n, what):
    fault = -1
    for i in range(n):
        if mem[start + i] != value:
            fault = start + i
            break
    if fault < 0:
        return 0
    end = start + n
    while end > fault and mem[end - 1] == value:
        end -= 1
    r = (what | (mem[fault] << 3) | (value << 11) | ((fault - obj) << 19)
         | ((end - fault) << 41))
    mem[fault:end] = bytes([value]) * (end - fault)
    return r


def get_info_end(offset, inuse):
    """get_info_end(): where the tracks begin (after a free pointer stored outside the
    object)."""
    return inuse + 8 if offset >= inuse else inuse


def init_tracking(mem, obj, offset, inuse, flags):
    if flags & SLAB_STORE_USER:
        o = obj + get_info_end(offset, inuse)
        mem[o:o + 2 * SIZEOF_TRACK] = bytes(2 * SIZEOF_TRACK)


def pad_start(offset, inuse, flags):
    """check_pad_bytes(): the end of the metadata (free pointer, tracks, orig_size)."""
    off = get_info_end(offset, inuse)
    if flags & SLAB_STORE_USER:
        off += 2 * SIZEOF_TRACK
        if flags & SLAB_KMALLOC:
            off += SIZEOF_ORIG_SIZE
    return off


def set_orig_size(mem, obj, offset, inuse, flags, orig_size):
    if slub_debug_orig_size(flags):
        o = obj + get_info_end(offset, inuse) + 2 * SIZEOF_TRACK
        mem[o:o + 4] = orig_size.to_bytes(4, "little")


def get_orig_size(mem, obj, offset, inuse, flags, object_size):
    if not slub_debug_orig_size(flags):
        return object_size
    o = obj + get_info_end(offset, inuse) + 2 * SIZEOF_TRACK
    return int.from_bytes(mem[o:o + 4], "little")


# =============================================================================================
# Reports: records as the kernel prints them
# =============================================================================================

class Report(str):
    """One report record.  Its string value is the first line, as the kernel prints it:
    ``BUG <cache> (Not tainted): <what>`` (a bug) or ``FIX <cache>: <action>`` (the repair that
    follows it).  ``kind`` is "BUG" or "FIX", ``info`` the INFO lines, ``obj`` / ``slab`` the
    addresses concerned (or None), ``text`` the whole report.  One record is one count of
    slub_kunit's ``slab_errors``."""

    kind: str
    cache: str
    title: str
    info: tuple
    obj: int | None
    slab: int | None

    def __new__(cls, kind, cache, title, info=(), obj=None, slab=None):
        line = (f"BUG {cache} (Not tainted): {title}" if kind == "BUG"
                else f"{kind} {cache}: {title}")
        self = super().__new__(cls, line)
        self.kind, self.cache, self.title = kind, cache, title
        self.info, self.obj, self.slab = tuple(info), obj, slab
        return self

    @property
    def text(self):
        if self.kind != "BUG":
            return str(self)
        bar = "=" * 77
        return "\n".join([bar, str(self), "-" * 77, ""] + list(self.info))

    def __reduce__(self):
        return (Report, (self.kind, self.cache, self.title, self.info, self.obj, self.slab))


def object_check_records(name, chk, obj, slab_addr):
    """The records of one failed check_object() in the core (an EV_REPORT REP_OBJECT)."""
    what = chk & 7
    if what == CHK_FREEPTR:
        return [Report("BUG", name, "Freepointer corrupt",
                       [f"INFO: Object {obj:#x} @offset={obj - slab_addr} (free pointer set to "
                        "NULL: the rest of the freelist is lost)"], obj, slab_addr)]
    value = (chk >> 3) & 0xFF
    expected = (chk >> 11) & 0xFF
    fault = obj + ((chk >> 19) & ((1 << 22) - 1))
    end = fault + ((chk >> 41) & ((1 << 22) - 1))
    return [Report("BUG", name, f"{CHK_WHAT[what]} overwritten",
                   [f"INFO: {fault:#x}-{end - 1:#x}. First byte {value:#x} instead of "
                    f"{expected:#x}", f"INFO: Object {obj:#x} @offset={obj - slab_addr}"],
                   obj, slab_addr),
            Report("FIX", name, f"Restoring {fault:#x}-{end - 1:#x}={expected:#x}", (), obj,
                   slab_addr)]


def slab_pad_records(name, slab, order, fault, end, remainder):
    """slab_pad_check()'s two records: the tail of the slab at ``slab`` (``remainder`` bytes up
    to its end) had bytes other than POISON_INUSE from ``fault`` to ``end`` (exclusive); the
    FIX restores the whole tail (as validate()'s)."""
    tail = slab + (PAGE_SIZE << order) - remainder
    return [Report("BUG", name, f"Padding overwritten. {fault:#x}-{end - 1:#x}", (), None, slab),
            Report("FIX", name, f"Restoring {tail:#x}-{tail + remainder - 1:#x}={POISON_INUSE:#x}",
                   (), None, slab)]


# =============================================================================================
# validate_slab_cache() (v4.4): checks that repair, with the kernel's records
# =============================================================================================

class _Validator:
    """One validate_slab_cache() run over a debug cache (cpus flushed, caller exclusive)."""

    def __init__(self, cache, v):
        self.c = cache
        self.pm, self.state, self.mem = v["pm"], v["state"], v["mem"]
        self.desc, self.d = v["desc"], v["d"]
        self.random = v["random"]
        self.name = cache.name
        self.records = []

    # ---- struct page fields ------------------------------------------------------------------
    def counters(self, page):
        cnt = self.pm[page * PM_STRIDE + PM_COUNTERS]
        return cnt & INUSE_MASK, (cnt >> OBJECTS_SHIFT) & OBJECTS_MASK

    def set_counters(self, page, inuse, objects):
        r = page * PM_STRIDE + PM_COUNTERS
        self.pm[r] = (self.pm[r] & FROZEN_BIT) | inuse | (objects << OBJECTS_SHIFT)

    def order(self, page):
        return (self.pm[page * PM_STRIDE + PM_FLAGS] >> ORDER_SHIFT) & ORDER_MASK

    def fp(self, obj):
        """get_freepointer() (decoded when the cache is hardened)."""
        o = obj + self.c.offset
        return int.from_bytes(self.mem[o:o + 8], "little", signed=True) ^ self.fp_key(o)

    def set_fp(self, obj, value):
        o = obj + self.c.offset
        self.mem[o:o + 8] = (value ^ self.fp_key(o)).to_bytes(8, "little", signed=True)

    def fp_key(self, ptr_addr):
        """What freelist_ptr() XORs a stored free pointer with (0: not hardened)."""
        return 0 if self.random is None else self.random ^ swab(ptr_addr)

    def valid_pointer(self, page, p):
        """check_valid_pointer()."""
        if p == 0:
            return True
        base = page << PAGE_SHIFT
        objects = self.counters(page)[1]
        return base <= p < base + objects * self.c.size and (p - base) % self.c.size == 0

    # ---- records -----------------------------------------------------------------------------
    def page_info(self, page):
        inuse, objects = self.counters(page)
        return (f"INFO: Slab {page << PAGE_SHIFT:#x} objects={objects} used={inuse} "
                f"fp={self.pm[page * PM_STRIDE + PM_FREELIST]:#x} "
                f"flags={self.pm[page * PM_STRIDE + PM_FLAGS]:#06x}")

    def slab_err(self, page, title):
        self.records.append(Report("BUG", self.name, title, [self.page_info(page)], None,
                                   page << PAGE_SHIFT))

    def object_err(self, page, obj, title, extra=()):
        tracks = (track_info(self.mem[obj:obj + self.c.size], self.c)
                  if self.c.flags & SLAB_STORE_USER else [])
        self.records.append(Report(
            "BUG", self.name, title,
            list(extra) + tracks + [self.page_info(page),
                                    f"INFO: Object {obj:#x} @offset={obj - (page << PAGE_SHIFT)} "
                                    f"fp={self.fp(obj):#x}"], obj, page << PAGE_SHIFT))

    def slab_fix(self, page, text, obj=None):
        self.records.append(Report("FIX", self.name, text, (), obj, page << PAGE_SHIFT))

    # ---- checks ------------------------------------------------------------------------------
    def check_bytes_and_report(self, page, obj, what, start, value, n):
        mem = self.mem
        fault = next((start + i for i in range(n) if mem[start + i] != value), None)
        if fault is None:
            return True
        end = start + n
        while end > fault and mem[end - 1] == value:
            end -= 1
        self.object_err(page, obj, f"{what} overwritten",
                        [f"INFO: {fault:#x}-{end - 1:#x}. First byte {mem[fault]:#x} instead "
                         f"of {value:#x}"])
        self.slab_fix(page, f"Restoring {fault:#x}-{end - 1:#x}={value:#x}", obj)
        mem[fault:end] = bytes([value]) * (end - fault)
        return False

    def check_pad_bytes(self, page, obj):
        c = self.c
        off = pad_start(c.offset, c.inuse, c.flags)
        if c.size == off:
            return True
        return self.check_bytes_and_report(page, obj, "Object padding", obj + off,
                                           POISON_INUSE, c.size - off)

    def check_object(self, page, obj, val):
        """check_object() of v4.4 (with ~v6.1's kmalloc red zone): stops at the first red
        zone / poison failure."""
        c = self.c
        if c.flags & SLAB_RED_ZONE:
            if not self.check_bytes_and_report(page, obj, "Redzone", obj + c.object_size, val,
                                               c.inuse - c.object_size):
                return False
            if val == SLUB_RED_ACTIVE and slub_debug_orig_size(c.flags):
                orig = get_orig_size(self.mem, obj, c.offset, c.inuse, c.flags, c.object_size)
                if orig < c.object_size and not self.check_bytes_and_report(
                        page, obj, "kmalloc Redzone", obj + orig, val, c.object_size - orig):
                    return False
        elif c.flags & SLAB_POISON and c.object_size < c.inuse:
            self.check_bytes_and_report(page, obj, "Alignment padding", obj + c.object_size,
                                        POISON_INUSE, c.inuse - c.object_size)
        if c.flags & SLAB_POISON:
            if val != SLUB_RED_ACTIVE and c.flags & OBJECT_POISON and (
                    not self.check_bytes_and_report(page, obj, "Poison", obj, POISON_FREE,
                                                    c.object_size - 1)
                    or not self.check_bytes_and_report(page, obj, "Poison",
                                                       obj + c.object_size - 1, POISON_END, 1)):
                return False
            self.check_pad_bytes(page, obj)
        if c.offset < c.inuse and val == SLUB_RED_ACTIVE:
            return True                 # object and free pointer overlap: cannot check it
        if not self.valid_pointer(page, self.fp(obj)):
            self.object_err(page, obj, "Freepointer corrupt")
            self.set_fp(obj, 0)         # the rest of this slab's freelist is lost
            return False
        return True

    def slab_pad_check(self, page):
        if not self.c.flags & SLAB_POISON:
            return True
        start = page << PAGE_SHIFT
        length = PAGE_SIZE << self.order(page)
        end = start + length
        remainder = length % self.c.size
        if not remainder:
            return True
        mem = self.mem
        fault = next((i for i in range(end - remainder, end) if mem[i] != POISON_INUSE), None)
        if fault is None:
            return True
        while end > fault and mem[end - 1] == POISON_INUSE:
            end -= 1
        bug, fix = slab_pad_records(self.name, start, self.order(page), fault, end, remainder)
        self.records += [Report(bug.kind, bug.cache, bug.title, [self.page_info(page)],
                                None, start), fix]
        mem[start + length - remainder:start + length] = bytes([POISON_INUSE]) * remainder
        return False

    def check_slab(self, page):
        from pyslub.sizing import order_objects
        if not self.pm[page * PM_STRIDE + PM_FLAGS] & PG_SLAB:
            self.slab_err(page, "Not a valid slab page")
            return False
        inuse, objects = self.counters(page)
        maxobj = order_objects(self.order(page), self.c.size)
        if objects > maxobj:
            self.slab_err(page, f"objects {objects} > max {maxobj}")
            return False
        if inuse > objects:
            self.slab_err(page, f"inuse {inuse} > max {objects}")
            return False
        self.slab_pad_check(page)
        return True

    def on_freelist(self, page, search):
        """on_freelist() of v4.4 with its fixes; returns (found, free objects in order)."""
        from pyslub.sizing import order_objects
        nr = 0
        obj = 0
        fp = self.pm[page * PM_STRIDE + PM_FREELIST]
        inuse, objects = self.counters(page)
        free = []
        while fp and nr <= objects:
            if fp == search:
                return True, free
            if not self.valid_pointer(page, fp):
                if obj:
                    self.object_err(page, obj, "Freechain corrupt")
                    self.set_fp(obj, 0)
                else:
                    self.slab_err(page, "Freepointer corrupt")
                    self.pm[page * PM_STRIDE + PM_FREELIST] = 0
                    self.set_counters(page, objects, objects)
                    self.slab_fix(page, "Freelist cleared")
                    return False, []
                break
            obj = fp
            free.append(obj)
            fp = self.fp(obj)
            nr += 1
        if nr > objects:                # (v6.14's fix; v4.4 would store a negative inuse)
            self.slab_err(page, "Freelist cycle detected")
            self.pm[page * PM_STRIDE + PM_FREELIST] = 0
            self.set_counters(page, objects, objects)
            self.slab_fix(page, "Freelist cleared")
            return False, []
        max_objects = min(order_objects(self.order(page), self.c.size), MAX_OBJS_PER_PAGE)
        if objects != max_objects:
            self.slab_err(page, f"Wrong number of objects. Found {objects} but should be "
                                f"{max_objects}")
            objects = max_objects
            self.set_counters(page, inuse, objects)
            self.slab_fix(page, "Number of objects adjusted.")
        if inuse != objects - nr:
            self.slab_err(page, f"Wrong object count. Counter is {inuse} but counted were "
                                f"{objects - nr}")
            self.set_counters(page, objects - nr, objects)
            self.slab_fix(page, "Object count adjusted.")
        return search is None, free

    def validate_slab(self, page):
        if not self.check_slab(page):
            return
        ok, free = self.on_freelist(page, None)
        from pyslub.sizing import order_objects
        objects = min(self.counters(page)[1], order_objects(self.order(page), self.c.size))
        addr = page << PAGE_SHIFT
        slots = [addr + i * self.c.size for i in range(objects)]
        if self.c.checks:               # the repairs' leaks and recoveries, in the state bytes
            on_list = set(free)
            for obj in slots:
                sb = self.state[obj >> 3]
                if obj in on_list and sb == OBJ_LEAKED:
                    self.state[obj >> 3] = OBJ_FREE
                elif obj not in on_list and sb == OBJ_FREE:
                    self.state[obj >> 3] = OBJ_LEAKED
        if not ok:
            return
        on_list = set(free)
        for obj in slots:
            if obj in on_list and not self.check_object(page, obj, SLUB_RED_INACTIVE):
                return
        for obj in slots:
            if obj not in on_list and not self.check_object(page, obj, SLUB_RED_ACTIVE):
                return

    def pages(self, head):
        out, page = [], head
        while page and len(out) <= self.c.nr_slabs:
            out.append(page)
            page = self.pm[page * PM_STRIDE + PM_NEXT]
        return out


def validate_slab_cache(cache, views):
    """validate_slab_cache() of v4.4 (the cpus already flushed): validate_slab() on every slab
    of the node partial list, and of the full list with SLAB_STORE_USER.  Returns the records.
    ``views``: the cache's writable views, from Cache.validate() (not reachable otherwise)."""
    v = _Validator(cache, views)
    for page in v.pages(v.desc[v.d + N_PARTIAL_HEAD]):
        v.validate_slab(page)
    if cache.flags & SLAB_STORE_USER:
        for page in v.pages(v.desc[v.d + N_FULL_HEAD]):
            v.validate_slab(page)
    return v.records


def shutdown_records(cache):
    """kmem_cache_destroy() of a cache with objects left: list_slab_objects()'s slab_err (an
    INFO line per object left, at most 16 here) and kmem_cache_destroy's complaint (slub_kunit
    test_leak_destroy counts 2)."""
    left = []
    for slab in cache.slabs():
        free = set(cache.free_objects(slab))
        objects = cache.slab_state(slab)["objects"]
        left += [slab + i * cache.size for i in range(objects)
                 if slab + i * cache.size not in free]
    info = [f"INFO: Object {a:#x} @offset={a & (PAGE_SIZE - 1)}" for a in left[:16]]
    return [Report("BUG", cache.name, f"Objects remaining in {cache.name} on "
                   "__kmem_cache_shutdown()", info),
            Report("ERR", cache.name, "kmem_cache_destroy: Slab cache still has objects")]


# =============================================================================================
# SLAB_STORE_USER (U): struct track, the last alloc and free of every object
# =============================================================================================
# struct track (v4.4, CONFIG_STACKTRACE): addr, addrs[16], cpu, pid, when.  pyslub's "addr" is
# the Python call site (file:line function) of the call into pyslub, kept as an index into this
# process's site table (the kernel's is a code address, printed with %pS); addrs[] stay zero;
# "when" is milliseconds of CLOCK_MONOTONIC (the kernel's jiffies at HZ=1000).

_SITES: list[str] = ["<unknown>"]
_SITE_IDS: dict[str, int] = {}


def caller_site() -> str:
    """The first frame outside pyslub: "file:line function"."""
    f = sys._getframe(1)
    while f is not None and f.f_globals.get("__name__", "").startswith("pyslub"):
        f = f.f_back
    if f is None:
        return "<unknown>"
    return f"{f.f_code.co_filename}:{f.f_lineno} {f.f_code.co_name}"


def _site_id(site: str) -> int:
    i = _SITE_IDS.get(site)
    if i is None:
        i = _SITE_IDS[site] = len(_SITES)
        _SITES.append(site)
    return i


def track_offset(cache) -> int:
    """get_track(): the tracks follow the free pointer when it is stored after the object,
    else they start at inuse (get_info_end())."""
    return get_info_end(cache.offset, cache.inuse)


def set_tracks(raw, cache, addrs, which: int, cpu: int) -> None:
    """set_track() for each object of ``addrs`` (``raw(addr, n)``: a writable view)."""
    site = _site_id(caller_site())
    when = time.monotonic_ns() // 1_000_000
    rec = (site.to_bytes(8, "little") + bytes(16 * 8) + cpu.to_bytes(4, "little")
           + os.getpid().to_bytes(4, "little") + when.to_bytes(8, "little"))
    off = track_offset(cache) + which * SIZEOF_TRACK
    for a in addrs:
        if a:
            raw(a + off, SIZEOF_TRACK)[:] = rec


def read_track(view, cache, which: int) -> dict | None:
    """One track of an object from ``view`` (its whole slot); None when never set."""
    off = track_offset(cache) + which * SIZEOF_TRACK
    t = bytes(view[off:off + SIZEOF_TRACK])
    site = int.from_bytes(t[:8], "little")
    if site == 0:
        return None
    cpu = int.from_bytes(t[136:140], "little")
    pid = int.from_bytes(t[140:144], "little")
    when = int.from_bytes(t[144:152], "little")
    return {"site": _SITES[site] if site < len(_SITES) else f"<site {site} of another process>",
            "addr": site, "cpu": cpu, "pid": pid, "when": when,
            "age": time.monotonic_ns() // 1_000_000 - when}


def track_info(view, cache) -> list[str]:
    """print_tracking(): the INFO lines of an object's two tracks."""
    out = []
    for which, verb in ((TRACK_ALLOC, "Allocated"), (TRACK_FREE, "Freed")):
        t = read_track(view, cache, which)
        if t is not None:
            out.append(f"INFO: {verb} in {t['site']} age={t['age']} cpu={t['cpu']} "
                       f"pid={t['pid']}")
    return out


# =============================================================================================
# SLAB_TRACE (T): trace()
# =============================================================================================
# The kernel prints "TRACE <cache> alloc|free <object> inuse=<n> fp=<freelist>" and, on free, a
# hex dump of the object (print_section("Object ", ...)) to the kernel log.  pyslub logs the
# same lines to the logging logger "pyslub.trace" at INFO, one record per line, so they are
# printed only when asked, e.g. logging.basicConfig(level=logging.INFO).

TRACE_LOG = logging.getLogger("pyslub.trace")


def print_section(text: str, addr: int, data: bytes) -> list[str]:
    """print_section() = print_hex_dump(level, text, DUMP_PREFIX_ADDRESS, 16, 1, addr, len,
    true): 16 bytes a line, "<text><address>: xx xx ... xx  <ascii>" (the ASCII column
    starts at 49, a non-printable byte is '.'); the address as %p of v4.4 printed it, 16 hex
    digits (modern kernels hash it)."""
    out = []
    for i in range(0, len(data), 16):
        row = data[i:i + 16]
        hexpart = " ".join(f"{b:02x}" for b in row)
        asc = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in row)
        out.append(f"{text}{addr + i:016x}: {hexpart.ljust(49)}{asc}")
    return out


def trace(cache, addrs, alloc: bool, raw=None) -> None:
    """trace(): one line per object, with its slab's inuse and freelist at that moment, and
    for a free the object's bytes (frees are traced before the free, as
    free_debug_processing() does: the dump shows what the caller left in it).  ``raw(addr,
    n)``: a view of arena bytes (needed for frees)."""
    if not TRACE_LOG.isEnabledFor(logging.INFO):
        return
    what = "alloc" if alloc else "free"
    for a in addrs:
        if not a:
            continue
        try:
            st = cache.slab_state(cache.slab_of(a))
        except Exception:  # noqa: BLE001 (not an object of the cache: the free will say so)
            continue
        TRACE_LOG.info("TRACE %s %s %#x inuse=%d fp=%#x", cache.name, what, a, st["inuse"],
                       st["freelist"])
        if not alloc and raw is not None:
            for line in print_section("Object ", a, bytes(raw(a, cache.object_size))):
                TRACE_LOG.info("%s", line)
