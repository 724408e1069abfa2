# C-level side of the caches of a shared arena (shared.py).
from pyslub._layout cimport *
from pyslub.slab cimport current_cpu
from pyslub.cache cimport Cache, array_size

cdef class SharedCache(Cache):
    pass

cdef i64 gate_in(Cache s) except? -1
cdef void set_owner(Cache s, i64 addr, int slot)
cdef int take_owner(Cache s, i64 addr)
