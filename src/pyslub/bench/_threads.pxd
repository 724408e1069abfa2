# C-level declarations of the GIL-free producer/consumer loops (_threads.py).
from pyslub._layout cimport *
from pyslub._prim cimport (tsc_start, tsc_stop, wallclock_ns, load_acquire, store_release,
                           cpu_relax)
from pyslub.slab cimport KmemCache, virt_to_head_page, current_cpu, cpu_rec, stats_rec
from pyslub.bulk cimport kmem_cache_alloc_bulk, kmem_cache_free_bulk
from pyslub.cache cimport nogil_enter_wait, nogil_exit, nogil_safepoint

cdef extern from "<sched.h>" nogil:
    int sched_yield()

cdef enum:
    H_HEAD = 0               # ctl word: batches published by the producer
    H_TAIL = 32              # ctl word: batches given back by the consumer (256 bytes away)
    CTL_WORDS = 64

cdef class Handoff:
    cdef readonly i64 slots           # batches in flight at most
    cdef readonly i64 cap             # addresses per batch at most
    cdef i64[::1] buf                 # slots x cap addresses
    cdef i64[::1] counts              # addresses in each slot (-1: the producer gave up)
    cdef i64[::1] ctl                 # H_HEAD, H_TAIL
