"""Cache geometry: the kernel's sizing formulas (spec §7), v4.4 form.

Pure Python on purpose: it runs once per ``create_cache``.  Each function carries the kernel's
name (mm/slab_common.c, mm/slub.c) so the two can be read side by side.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyslub._layout import (
    FREEPTR_MIDDLE,
    MAX_OBJS_PER_PAGE,
    MAX_ORDER,
    OBJECT_POISON,
    PAGE_SHIFT,
    PAGE_SIZE,
    SLAB_CONSISTENCY_CHECKS,
    SLAB_DEBUG_FLAGS,
    SLAB_HWCACHE_ALIGN,
    SLAB_NO_USER_FLAGS,
    SLAB_POISON,
    SLAB_RED_ZONE,
    SLAB_STORE_USER,
    SLAB_TRACE,
)

CACHE_LINE_SIZE = 64              # cache_line_size() on x86-64
ARCH_SLAB_MINALIGN = 8            # __alignof__(unsigned long long)
SIZEOF_VOID_P = 8
# struct track with CONFIG_STACKTRACE (v4.4): addr + addrs[TRACK_ADDRS_COUNT=16] + cpu + pid + when
SIZEOF_TRACK = 8 + 16 * 8 + 4 + 4 + 8
SIZEOF_ORIG_SIZE = 4              # unsigned int orig_size after the tracks (kmalloc + U, ~v6.1)
SLUB_MAX_ORDER = 3                # PAGE_ALLOC_COSTLY_ORDER
MIN_PARTIAL = 5
MAX_PARTIAL = 10
KMALLOC_MAX_SIZE = 1 << (MAX_ORDER + PAGE_SHIFT - 1)   # largest object a cache may have: 4 MiB

# SLAB_KMALLOC (v6.1 include/linux/slab.h): the cache is a kmalloc cache, so with U it records
# each object's requested size (orig_size) and with Z red-zones the bytes beyond it.  Defined
# here, not in _layout.py, for now (the compiled core has its twin in debug.pxd).
SLAB_KMALLOC = 0x00001000
ACCEPTED_FLAGS = (SLAB_HWCACHE_ALIGN | SLAB_POISON | SLAB_RED_ZONE | SLAB_STORE_USER
                  | SLAB_CONSISTENCY_CHECKS | SLAB_TRACE | SLAB_NO_USER_FLAGS | SLAB_KMALLOC)


def fls(x: int) -> int:
    """Find last set bit, 1-based; fls(0) == 0."""
    return x.bit_length()


def ilog2(x: int) -> int:
    return x.bit_length() - 1


def align_up(x: int, a: int) -> int:
    return (x + a - 1) & ~(a - 1)


def get_order(size: int) -> int:
    """Smallest order whose block (PAGE_SIZE << order) holds ``size`` bytes."""
    order = 0
    while (PAGE_SIZE << order) < size:
        order += 1
    return order


def order_objects(order: int, size: int, reserved: int = 0) -> int:
    return ((PAGE_SIZE << order) - reserved) // size


def reciprocal_value(size: int) -> int:
    """round(2**32 / size): ``(off * r + 2**31) >> 32 == off // size`` exactly when ``off`` is a
    multiple of ``size`` below 2**31 (the kernel's reciprocal_size serves the same purpose)."""
    return ((1 << 32) + size // 2) // size


def calculate_alignment(flags: int, align: int, size: int) -> int:
    """mm/slab_common.c: hardware cache alignment shrinks for small objects."""
    if flags & SLAB_HWCACHE_ALIGN:
        ralign = CACHE_LINE_SIZE
        while size <= ralign // 2:
            ralign //= 2
        align = max(align, ralign)
    if align < ARCH_SLAB_MINALIGN:
        align = ARCH_SLAB_MINALIGN
    return align_up(align, SIZEOF_VOID_P)


def slab_order(size: int, min_objects: int, max_order: int, fract_leftover: int,
               reserved: int = 0, slub_min_order: int = 0) -> int:
    if order_objects(slub_min_order, size, reserved) > MAX_OBJS_PER_PAGE:
        return get_order(size * MAX_OBJS_PER_PAGE) - 1
    order = max(slub_min_order, get_order(min_objects * size + reserved))
    while order <= max_order:
        slab_size = PAGE_SIZE << order
        rem = (slab_size - reserved) % size
        if rem <= slab_size // fract_leftover:
            break
        order += 1
    return order


def calculate_order(size: int, nr_cpus: int, reserved: int = 0, *, slub_min_order: int = 0,
                    slub_max_order: int = SLUB_MAX_ORDER, slub_min_objects: int = 0) -> int:
    """mm/slub.c calculate_order(), v4.4: try to waste at most 1/16, 1/8, 1/4 of a slab."""
    min_objects = slub_min_objects or 4 * (fls(nr_cpus) + 1)
    max_objects = order_objects(slub_max_order, size, reserved)
    min_objects = min(min_objects, max_objects)
    while min_objects > 1:
        fraction = 16
        while fraction >= 4:
            order = slab_order(size, min_objects, slub_max_order, fraction, reserved,
                               slub_min_order)
            if order <= slub_max_order:
                return order
            fraction //= 2
        min_objects -= 1
    order = slab_order(size, 1, slub_max_order, 1, reserved, slub_min_order)
    if order <= slub_max_order:
        return order
    order = slab_order(size, 1, MAX_ORDER, 1, reserved, slub_min_order)
    if order < MAX_ORDER:
        return order
    raise ValueError(f"object size {size} does not fit a slab of order < {MAX_ORDER}")


@dataclass(frozen=True)
class Geometry:
    """What calculate_sizes() decides for a cache (the layout of every slot)."""

    object_size: int   # bytes the user asked for
    size: int          # slot size: object + metadata + alignment
    align: int
    offset: int        # free pointer offset inside the slot
    inuse: int         # offset where metadata starts
    flags: int         # user flags | OBJECT_POISON when the object bytes are poisoned
    order: int         # preferred slab order (oo)
    objects: int       # objects per slab of that order
    min_order: int     # smallest order that holds one object (s->min)
    min_objects: int
    min_partial: int
    cpu_partial: int


def kmem_cache_debug(flags: int) -> bool:
    return bool(flags & SLAB_DEBUG_FLAGS)


def slub_debug_orig_size(flags: int) -> bool:
    """slub_debug_orig_size() (~v6.1): a kmalloc cache with SLAB_STORE_USER keeps every
    object's requested size (orig_size) behind its tracks."""
    return bool(flags & SLAB_STORE_USER and flags & SLAB_KMALLOC)


def calculate_sizes(object_size: int, align: int, flags: int, nr_cpus: int) -> Geometry:
    """mm/slub.c calculate_sizes() + kmem_cache_open() tunables, v4.4 (spec §7.2, §7.4), with
    the kmalloc orig_size word of ~v6.1 (SLAB_KMALLOC + SLAB_STORE_USER).

    FREEPTR_MIDDLE in ``flags``: the free pointer placement of v5.7+ (3202fa62fb43) -- where
    v4.4 uses the object's first word, the word at ``ALIGN_DOWN(object_size / 2, 8)``."""
    size = align_up(object_size, SIZEOF_VOID_P)
    if flags & SLAB_POISON:            # no ctor and no SLAB_DESTROY_BY_RCU in pyslub
        flags |= OBJECT_POISON
    if flags & SLAB_RED_ZONE and size == object_size:
        size += SIZEOF_VOID_P          # room for the right red zone
    inuse = size
    offset = 0
    if flags & SLAB_POISON or (flags & SLAB_RED_ZONE and slub_debug_orig_size(flags)):
        # the free pointer may not overwrite the poisoned object, nor (~v6.1) the kmalloc red
        # zone between orig_size and object_size
        offset = size
        size += SIZEOF_VOID_P
    elif flags & FREEPTR_MIDDLE:       # away from the edges small overflows reach
        offset = (object_size // 2) & ~(SIZEOF_VOID_P - 1)
    if flags & SLAB_STORE_USER:
        size += 2 * SIZEOF_TRACK
        if flags & SLAB_KMALLOC:       # (~v6.1) the original kmalloc request size
            size += SIZEOF_ORIG_SIZE
    if flags & SLAB_RED_ZONE:
        size += SIZEOF_VOID_P          # pad word catching writes before the next object
    size = align_up(size, align)
    order = calculate_order(size, nr_cpus)
    objects = order_objects(order, size)
    min_order = get_order(size)
    min_objects = order_objects(min_order, size)
    min_partial = min(max(ilog2(size) // 2, MIN_PARTIAL), MAX_PARTIAL)
    if kmem_cache_debug(flags):
        cpu_partial = 0
    elif size >= PAGE_SIZE:
        cpu_partial = 2
    elif size >= 1024:
        cpu_partial = 6
    elif size >= 256:
        cpu_partial = 13
    else:
        cpu_partial = 30
    return Geometry(object_size, size, align, offset, inuse, flags, order, objects, min_order,
                    min_objects, min_partial, cpu_partial)


SHEAF_HEADER = 32                 # struct slab_sheaf before objects[] on 64-bit
KMALLOC_CLASSES = (8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192)


def kmalloc_size_roundup(size: int) -> int:
    """The kmalloc bucket a request of ``size`` bytes gets (whole pages above 8 KiB)."""
    for cls in KMALLOC_CLASSES:
        if size <= cls:
            return cls
    return PAGE_SIZE << get_order(size)


def calculate_sheaf_capacity(size: int, flags: int, requested: int = 0) -> int:
    """7.0's calculate_sheaf_capacity(): 0 for any slab_debug flag; else half of the old
    cpu_partial object counts (4 / 12 / 26 / 60 by slot size), rounded up so the sheaf fills
    its kmalloc bucket (28 for 256-byte slots); an explicit request is a minimum."""
    if flags & SLAB_DEBUG_FLAGS:
        return 0
    cap = 4 if size >= PAGE_SIZE else 12 if size >= 1024 else 26 if size >= 256 else 60
    cap = (kmalloc_size_roundup(SHEAF_HEADER + cap * SIZEOF_VOID_P) - SHEAF_HEADER) \
        // SIZEOF_VOID_P
    return max(cap, requested)


def cache_geometry(object_size: int, align: int, flags: int, nr_cpus: int,
                   hardening_flags: int = 0) -> Geometry:
    """Check the arguments of create_cache() and size the cache; ValueError names what is wrong.
    ``hardening_flags``: pyslub.hardening's bits (not user flags: checked there)."""
    for what, value in (("object_size", object_size), ("align", align), ("flags", flags)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{what} must be an int, got {type(value).__name__}")
    if flags & ~ACCEPTED_FLAGS:
        raise ValueError(f"unknown cache flags {flags & ~ACCEPTED_FLAGS:#x}")
    if object_size < SIZEOF_VOID_P or object_size > KMALLOC_MAX_SIZE:
        raise ValueError(f"object_size {object_size} outside [{SIZEOF_VOID_P}, "
                         f"{KMALLOC_MAX_SIZE}] (kmem_cache_sanity_check)")
    if align < 0 or (align & (align - 1)) or align > PAGE_SIZE:
        raise ValueError(f"align {align} must be 0 or a power of two <= {PAGE_SIZE}")
    align = calculate_alignment(flags, align, object_size)
    return calculate_sizes(object_size, align, flags | hardening_flags, nr_cpus)
