# C-level declarations of the bulk API (bulk.py), for the benchmark drivers.
from pyslub._layout cimport *
from pyslub.slab cimport *
cimport numpy as cnp

cdef class DetachedFreelist:
    cdef public i64 page          # the slab (0: no list was built)
    cdef public i64 freelist      # head
    cdef public i64 tail          # last object; its free pointer is set when published
    cdef public i64 cnt           # objects on the list

cdef class Cache(KmemCache):
    cdef readonly DetachedFreelist df   # scratch list of free_bulk (the kernel's is on the stack)

cdef i64 kmem_cache_alloc_bulk(KmemCache s, i64 size, i64 *p) noexcept
cdef void kmem_cache_free_bulk(KmemCache s, i64 size, i64 *p, int strategy,
                               DetachedFreelist df) noexcept
cdef i64 check_bulk(KmemCache s, i64 size, i64 *p, bint allow_null) noexcept
