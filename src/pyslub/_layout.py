"""Flat metadata layout shared by the compiled core and its plain-Python twin.

Every hot structure of the kernel (``struct page``, ``struct kmem_cache_cpu``) lives in a flat
array of 64-bit words, never in Python objects, so the fast paths touch no Python object and a
later GIL-free core can use them unchanged.  This module holds the word offsets and bit fields;
``_layout.pxd`` declares the same numbers as C enums for the compiled modules
(``tests/test_layout.py`` checks that the two files agree).

Arena (one anonymous mmap)::

    +--------+--------+--------+-----       -----+--------+
    | page 0 | page 1 | page 2 |   ...  4 KiB    | page N |   byte address = offset in arena
    +--------+--------+--------+-----       -----+--------+   address 0 is NULL (page 0 reserved)
        |        |
        v        v
    page metadata (one 8-word record per page, a second mmap; "struct page", SLUB view):
    [freelist][counters][slab_cache][flags][head][next][prev][pages]
     ^^^^^^^^^^^^^^^^^^ one 16-byte-aligned double word: cmpxchg_double_slab() swaps both.
"""

import cython

i64 = cython.longlong   # the word type (a ctypedef in _layout.pxd); for uncompiled annotations

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT            # 4 KiB pages, as on x86-64
MAX_ORDER = 11                         # buddy orders 0 .. MAX_ORDER-1, as v4.4 (must fit flags)

# struct page, SLUB view: word offsets inside one page record
PM_FREELIST = 0      # first free object of the slab (0 = none); for a cpu slab: remote frees only
PM_COUNTERS = 1      # {inuse:16, objects:15, frozen:1}; swapped together with PM_FREELIST
PM_SLAB_CACHE = 2    # id of the owning kmem_cache (0 = not a slab page)
PM_FLAGS = 3         # PG_* bits below, compound order in bits ORDER_SHIFT..
PM_HEAD = 4          # page index of the compound head (a head page points to itself)
PM_NEXT = 5          # lru.next on node lists / buddy lists; cpu-partial chain "next"
PM_PREV = 6          # lru.prev on node lists / buddy lists
PM_PAGES = 7         # cpu-partial chain: pages | pobjects << 32 (overlays lru in the kernel)
PM_STRIDE = 8        # words per page record: 64 bytes, keeps PM_FREELIST 16-byte aligned
PM_STRIDE_SHIFT = 3

# PM_FLAGS bits
PG_SLAB = 1          # head page of a slab
PG_HEAD = 2          # head page of a compound allocation (slab or large kmalloc)
PG_TAIL = 4          # tail page of a compound allocation
PG_BUDDY = 8         # first page of a free block on a buddy free list
PG_LARGE = 16        # head page of a large kmalloc allocation (not a slab)
PG_RESERVED = 32     # never handed out (page 0: makes address 0 NULL)
ORDER_SHIFT = 8      # compound / buddy order lives in bits 8..15 of PM_FLAGS
ORDER_MASK = 0xFF

# page.counters bitfield (bit 0..15 inuse, 16..30 objects, 31 frozen), as v4.4 struct page
INUSE_MASK = 0xFFFF
OBJECTS_SHIFT = 16
OBJECTS_MASK = 0x7FFF
FROZEN_BIT = 1 << 31
MAX_OBJS_PER_PAGE = 32767
PAGES_MASK = 0xFFFFFFFF   # cpu-partial chain word: pages in bits 0..31, pobjects above
RECIPROCAL_SHIFT = 32     # object index = (offset * reciprocal_size + HALF) >> SHIFT
RECIPROCAL_HALF = 1 << 31

# struct kmem_cache_cpu: word offsets inside one per-cpu record
C_FREELIST = 0       # lockless freelist of the cpu slab
C_TID = 1            # transaction id; swapped together with C_FREELIST (16-byte aligned pair)
C_PAGE = 2           # page index of the cpu slab (0 = none)
C_PARTIAL = 3        # page index of the first frozen cpu-partial slab (0 = none)
C_STAT = 8           # SLUB_STATS counters start here
CPU_STRIDE = 48      # words per cpu record (multiple of 2: keeps the pair aligned)

# enum stat_item (v4.4 order) followed by pyslub's own counters
ALLOC_FASTPATH = 0
ALLOC_SLOWPATH = 1
FREE_FASTPATH = 2
FREE_SLOWPATH = 3
FREE_FROZEN = 4
FREE_ADD_PARTIAL = 5
FREE_REMOVE_PARTIAL = 6
ALLOC_FROM_PARTIAL = 7
ALLOC_SLAB = 8
ALLOC_REFILL = 9
ALLOC_NODE_MISMATCH = 10
FREE_SLAB = 11
CPUSLAB_FLUSH = 12
DEACTIVATE_FULL = 13
DEACTIVATE_EMPTY = 14
DEACTIVATE_TO_HEAD = 15
DEACTIVATE_TO_TAIL = 16
DEACTIVATE_REMOTE_FREES = 17
DEACTIVATE_BYPASS = 18
ORDER_FALLBACK = 19
CMPXCHG_DOUBLE_CPU_FAIL = 20
CMPXCHG_DOUBLE_FAIL = 21
CPU_PARTIAL_ALLOC = 22
CPU_PARTIAL_FREE = 23
CPU_PARTIAL_NODE = 24
CPU_PARTIAL_DRAIN = 25
NR_SLUB_STAT_ITEMS = 26
# not in the kernel: how often each synchronisation primitive was used (spec §8)
CMPXCHG_DOUBLE_CPU = 26   # this_cpu_cmpxchg_double attempts (unlocked pair swap)
CMPXCHG_DOUBLE_SLAB = 27  # cmpxchg_double_slab attempts (locked cmpxchg16b)
LIST_LOCK = 28            # n->list_lock acquisitions
NR_STATS = 29

# deactivate_slab() placement
DEACTIVATE_TO_HEAD_POS = 0
DEACTIVATE_TO_TAIL_POS = 1

# check_free_addr() results below zero: why an address is not an object of the cache
BAD_NULL = -1
BAD_OUTSIDE = -2
BAD_NOT_SLAB = -3
BAD_OTHER_CACHE = -4
BAD_BOUNDARY = -5

# deactivate_slab() target of a slab
M_NONE = 0
M_PARTIAL = 1
M_FULL = 2
M_FREE = 3

# free_bulk strategies (pyslub.FREE_BULK_STRATEGIES is the name list, in this order)
FB_FALLBACK = 0
FB_BULK_V2 = 1
FB_DETACHED = 2
FB_LOOKAHEAD_FWD = 3
FB_LOOKAHEAD = 4
FB_SWAP = 5
NR_FREE_BULK = 6

# kernel flag values (include/linux/slab.h, v4.4; SLAB_DEBUG_FREE renamed in v4.6)
SLAB_CONSISTENCY_CHECKS = 0x00000100
SLAB_RED_ZONE = 0x00000400
SLAB_POISON = 0x00000800
SLAB_HWCACHE_ALIGN = 0x00002000
SLAB_STORE_USER = 0x00010000
SLAB_DEBUG_FLAGS = SLAB_CONSISTENCY_CHECKS | SLAB_RED_ZONE | SLAB_POISON | SLAB_STORE_USER
OBJECT_POISON = 0x80000000       # kernel __OBJECT_POISON: poison the object bytes too
CMPXCHG_DOUBLE = 0x40000000      # kernel __CMPXCHG_DOUBLE: slab pair swapped by cmpxchg16b

STAT_NAMES = (
    "alloc_fastpath", "alloc_slowpath", "free_fastpath", "free_slowpath", "free_frozen",
    "free_add_partial", "free_remove_partial", "alloc_from_partial", "alloc_slab",
    "alloc_refill", "alloc_node_mismatch", "free_slab", "cpuslab_flush", "deactivate_full",
    "deactivate_empty", "deactivate_to_head", "deactivate_to_tail", "deactivate_remote_frees",
    "deactivate_bypass", "order_fallback", "cmpxchg_double_cpu_fail", "cmpxchg_double_fail",
    "cpu_partial_alloc", "cpu_partial_free", "cpu_partial_node", "cpu_partial_drain",
)
EXTRA_STAT_NAMES = ("cmpxchg_double_cpu", "cmpxchg_double_slab", "list_lock")

FREE_BULK_STRATEGIES = ("fallback", "bulk-v2", "detached", "lookahead-fwd", "lookahead", "swap")
