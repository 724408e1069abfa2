# C-level declaration of the public cache class (cache.py).
from pyslub._layout cimport *
from pyslub.slab cimport *
from pyslub.bulk cimport check_bulk, kfree_check, kfree_bulk_lists
from pyslub.sheaves cimport (kmem_cache_alloc, kmem_cache_free, kmem_cache_alloc_bulk_any,
                             kmem_cache_free_bulk_any, pcs_flush_all, barn_shrink,
                             kmalloc_cache)
from libc.string cimport memcpy
from libc.stdlib cimport malloc, free as c_free
cimport numpy as cnp
from pyslub._prim cimport load_seq_cst
from cpython.long cimport PyLong_AsLongLongAndOverflow

cdef class Cache(KmemCache):
    pass

cdef i64 array_size(object p, object size, bint writable) except? -1
cdef i64 address_value(object addr) except? -1
cdef int check_alive(KmemCache c) except? -1
from pyslub.page_alloc cimport Segment

# GIL-free sections and fork() (the protocol: cache.py, where _nogil_sections is declared)
cdef bint nogil_enter() noexcept
cdef void nogil_exit() noexcept nogil
cdef void wait_no_fork() noexcept nogil
cdef void nogil_enter_wait() noexcept
cdef void nogil_safepoint() noexcept nogil
