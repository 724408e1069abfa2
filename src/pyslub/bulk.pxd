# C-level declarations of the bulk API (bulk.py), for the public layer and the bench drivers.
from pyslub._layout cimport *
from pyslub.slab cimport *
from pyslub.page_alloc cimport Segment

cdef struct DetachedFreelist:
    i64 page                  # the slab (0: no list was built)
    i64 freelist              # head
    i64 tail                  # last object; its free pointer is set when published
    i64 cnt                   # objects on the list

cdef i64 kmem_cache_alloc_bulk(KmemCache s, i64 c, i64 st, i64 size, i64 *p) noexcept nogil
cdef void kmem_cache_free_bulk(KmemCache s, i64 c, i64 st, i64 size, i64 *p,
                               int strategy) noexcept nogil
cdef i64 check_bulk(KmemCache s, i64 size, i64 *p, bint allow_null) noexcept nogil
cdef i64 build_detached_freelist(KmemCache s, i64 size, i64 *p, DetachedFreelist *df,
                                 i64 depth) noexcept nogil
cdef i64 kfree_check(Segment seg, list caches, i64 size, i64 *p) noexcept
cdef void kfree_bulk_lists(Segment seg, list caches, i64 cpu, i64 seat, i64 size,
                           i64 *p) noexcept
