from pyslub._layout cimport *

cdef class PageAllocator:
    cdef readonly object arena        # anonymous mmap: the memory every object lives in
    cdef readonly object meta         # anonymous mmap: one PM_STRIDE-word record per page
    cdef readonly i64[::1] words             # the arena as 64-bit words (free pointers live here)
    cdef readonly i64[::1] pm               # page records ("struct page", SLUB view)
    cdef i64[::1] free_area           # per order: head page of the free list, then nr_free
    cdef readonly i64 nr_pages        # pages in the arena (page 0 reserved: address 0 = NULL)
    cdef readonly i64 arena_bytes
    cdef readonly i64 nr_free_pages
    cdef readonly int nr_cpus         # logical cpus 0 .. nr_cpus-1
    cdef public int cur_cpu           # the logical cpu the caller runs on (Memory.on_cpu)
    cdef readonly i64 fail_after      # fault injection: fail this many page allocations from now (<0: off)

    cdef i64 alloc_pages(self, int order)
    cdef void free_pages(self, i64 page, int order)
    cdef void _list_add(self, i64 page, int order)
    cdef void _list_del(self, i64 page, int order)
