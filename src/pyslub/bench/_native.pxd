# C-level declarations of the native benchmark loops (_native.py).
from pyslub._layout cimport *
from pyslub._prim cimport tsc_start, tsc_stop, wallclock_ns, barrier
from pyslub.slab cimport KmemCache, virt_to_head_page, current_cpu, cpu_rec, stats_rec
from pyslub.sheaves cimport (kmem_cache_alloc, kmem_cache_free, kmem_cache_alloc_bulk_any,
                             kmem_cache_free_bulk_any)
from pyslub.cache cimport Cache, nogil_enter_wait, nogil_exit
cimport numpy as cnp

cdef enum:
    OBJHASH_SZ = 16          # HASHSZ of slab_bulk_test03
    OBJHASH_INITVAL = 13     # jhash(&obj->page, 8, 13)
    OBJ_NODE_NEXT = 0        # struct my_obj word offsets: hlist_node.next ...
    OBJ_NODE_PPREV = 1       # ... hlist_node.pprev ...
    OBJ_PAGE = 2             # ... void *page (simulated struct page pointer)
    OBJ_MIN_SIZE = 24        # bytes the three words need

# The kernel modules force my__kmem_cache_{alloc,free}_bulk out of line ("noinline", so the
# fallback pays a call per bulk like the real bulk API).  Cython has no noinline: the loops call
# them through these pointers, which gcc cannot inline.
ctypedef bint (*alloc_bulk_fn)(KmemCache, i64, i64, i64, i64 *) noexcept nogil
ctypedef void (*free_bulk_fn)(KmemCache, i64, i64, i64, i64 *) noexcept nogil
cdef alloc_bulk_fn my__kmem_cache_alloc_bulk
cdef free_bulk_fn my__kmem_cache_free_bulk

cdef class NativeObjHash:
    cdef readonly Cache s             # the cache whose arena holds the objects
    cdef i64[::1] words               # its arena words (the hlist nodes live in the objects)
    cdef i64[::1] pm                  # its page records (virt_to_head_page)
    cdef i64 heads[16]                # hlist_head.first of each bucket (0 = empty)
    cdef readonly i64 objhash_cnt     # objects in the hash
    cdef readonly i64 too_many        # "Bad invarians: request too many objects"
    cdef readonly i64 skipped_many    # "Bad invarians: search skipped many buckets"
    cdef readonly i64 same_page       # "Bad invarians: return same page"


cdef inline i64 objhash_bucket(i64 page) noexcept nogil:
    """jhash(&page, 8, 13) % HASHSZ: the 8 bytes of a struct-page pointer, little-endian.

    Linux include/linux/jhash.h: a = b = c = JHASH_INITVAL + len + initval; a += bytes 0..3,
    b += bytes 4..7; __jhash_final(a, b, c); the hash is c.  Unsigned 32-bit arithmetic.
    """
    cdef unsigned int a, b, c
    a = 0xdeadbeefU + 8U + OBJHASH_INITVAL
    b = a
    c = a
    a += <unsigned int>((<unsigned long long>page) & 0xFFFFFFFFULL)
    b += <unsigned int>((<unsigned long long>page) >> 32)
    c ^= b
    c -= (b << 14) | (b >> 18)
    a ^= c
    a -= (c << 11) | (c >> 21)
    b ^= a
    b -= (a << 25) | (a >> 7)
    c ^= b
    c -= (b << 16) | (b >> 16)
    a ^= c
    a -= (c << 4) | (c >> 28)
    b ^= a
    b -= (a << 14) | (a >> 18)
    c ^= b
    c -= (b << 24) | (b >> 8)
    return c % OBJHASH_SZ

# 64-bit constants stored in object words (signed, as the arena words are)
cdef extern from *:
    """
    #define PYSLUB_VMEMMAP_WORD ((long long)0xffffea0000000000ULL)
    #define PYSLUB_LIST_POISON1 ((long long)0xdead000000000100ULL)
    #define PYSLUB_LIST_POISON2 ((long long)0xdead000000000200ULL)
    """
    const i64 VMEMMAP_WORD "PYSLUB_VMEMMAP_WORD"   # simulated vmemmap: struct page of page 0
    const i64 LIST_POISON1 "PYSLUB_LIST_POISON1"   # hlist_del() poison of node.next
    const i64 LIST_POISON2 "PYSLUB_LIST_POISON2"   # ... and of node.pprev
