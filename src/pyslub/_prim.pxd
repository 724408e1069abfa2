# C declarations of the primitives in _prim.h (plain-Python twins: _prim.py).
from pyslub._layout cimport i64

cdef extern from "_prim.h" nogil:
    bint cmpxchg_double "pyslub_cmpxchg_double"(i64 *p, i64 o1, i64 o2, i64 n1, i64 n2)
    bint this_cpu_cmpxchg_double "pyslub_this_cpu_cmpxchg_double"(i64 *p, i64 o1, i64 o2,
                                                                   i64 n1, i64 n2)
    unsigned long long tsc_start "pyslub_tsc_start"()
    unsigned long long tsc_stop "pyslub_tsc_stop"()
    unsigned long long wallclock_ns "pyslub_wallclock_ns"()
    void barrier "pyslub_barrier"()
