# C-level declaration of the segment and its page allocators (page_alloc.py).
from pyslub._layout cimport *
from pyslub._prim cimport gettid, mutex_lock, mutex_unlock

cdef class Segment:
    cdef object mapping               # the mmap holding everything below (private)
    cdef readonly bint shared         # a POSIX shm segment (else anonymous MAP_PRIVATE)
    cdef readonly object name         # its shm name (None: private)
    cdef readonly int fd              # its shm file descriptor, kept open (-1: private)
    cdef i64[::1] hdr                 # header words (H_*)
    cdef i64[::1] desc                # cache descriptors (D_*, N_*, B_*): MAX_CACHES x DESC_STRIDE
    cdef i64[::1] pm                  # page records of the arena, then of the metadata region
    cdef unsigned char[::1] state     # object state bytes (OBJ_*), one per 8 arena bytes
    cdef unsigned char[::1] owner     # shared: process slot that allocated each live object
    cdef i64[::1] meta                # metadata region: cpu records, counters, sheaves
    cdef i64[::1] words               # the arena as 64-bit words (free pointers live here)
    cdef object arena                 # the arena as bytes (object views are slices of it)
    cdef readonly i64 arena_bytes
    cdef readonly i64 nr_pages        # arena pages (page 0 reserved: address 0 = NULL)
    cdef readonly i64 meta_bytes
    cdef readonly i64 meta_pages
    cdef readonly int nr_cpus
    cdef readonly int max_caches
    cdef readonly i64 token           # process-local identity (thread bindings are cached by it)
    cdef readonly int pslot           # shared: this process's slot in the process table (0: none)
    cdef readonly bint closed         # close() was called: no operation may start

    cdef void _list_add(self, i64 fa, i64 base, i64 page, int order) noexcept nogil
    cdef void _list_del(self, i64 fa, i64 base, i64 page, int order) noexcept nogil
    cdef i64 _buddy_alloc(self, int region, int order) noexcept nogil
    cdef void _buddy_free(self, int region, i64 page, int order) noexcept nogil
    cdef void relist(self, int region) noexcept nogil
    cdef void zone_repair(self, int idx) noexcept nogil
    cdef i64 alloc_pages(self, int order) noexcept nogil
    cdef void free_pages(self, i64 page, int order) noexcept nogil
    cdef i64 meta_alloc(self, i64 nbytes) noexcept nogil
    cdef void meta_free(self, i64 w, i64 nbytes) noexcept nogil
    cpdef i64 alloc_large(self, int order)
    cdef void free_large(self, i64 page) noexcept nogil
    cpdef i64 large_order(self, i64 addr) noexcept

cdef inline void zone_lock(Segment seg, int idx) noexcept nogil:
    if mutex_lock(&seg.hdr[idx], gettid()):
        seg.zone_repair(idx)              # taken over from a holder that died

cdef inline void zone_unlock(Segment seg, int idx) noexcept nogil:
    mutex_unlock(&seg.hdr[idx])
