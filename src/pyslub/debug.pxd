# C-level twins of pyslub/debug.py's object checks, inlined into the core (slab.py) at the
# alloc_debug_processing / free_debug_processing / allocate_slab / __free_slab call sites.
# debug.py itself is not compiled: everything else in it runs outside operations.
from libc.string cimport memset
from pyslub._layout cimport *

cdef enum:
    POISON_INUSE = 0x5a
    POISON_FREE = 0x6b
    POISON_END = 0xa5
    SLUB_RED_INACTIVE = 0xbb
    SLUB_RED_ACTIVE = 0xcc
    # what a failed check_bytes() found (the low 3 bits of its word; pyslub.debug.CHK_WHAT)
    CHK_REDZONE = 1
    CHK_POISON = 2
    CHK_FREEPTR = 3
    CHK_KMALLOC_REDZONE = 4
    CHK_ALIGN_PADDING = 5
    CHK_OBJECT_PADDING = 6
    # not in _layout.pxd (yet): the Python values are in sizing.py / debug.py
    SLAB_KMALLOC = 0x00001000         # (v6.1) a kmalloc cache: orig_size with U
    SIZEOF_TRACK = 152                # struct track with CONFIG_STACKTRACE (sizing.SIZEOF_TRACK)
    SIZEOF_ORIG_SIZE = 4
    REP_SLAB_PAD = 32                 # __free_slab: slab_pad_check() failed (see slab.py)
    REP_NOT_FREED = 33                # debug free: check_object() failed [obj, 0, page]


cdef inline void init_object(unsigned char *mem, i64 obj, i64 object_size, i64 inuse,
                             i64 flags, int val) noexcept nogil:
    """init_object().  ``object_size``: the poisoned bytes, up to where the red zone begins
    (the modern kernel passes orig_size here for an allocated kmalloc object)."""
    if flags & OBJECT_POISON:
        memset(mem + obj, POISON_FREE, object_size - 1)
        mem[obj + object_size - 1] = POISON_END
    if flags & SLAB_RED_ZONE:
        memset(mem + obj + object_size, val, inuse - object_size)


cdef inline i64 check_bytes(unsigned char *mem, i64 obj, i64 start, int value, i64 n,
                            int what) noexcept nogil:
    """check_bytes_and_report() without the report: 0, or the packed word of the first bad
    byte run (what | byte << 3 | expected << 11 | offset in the slot << 19 | length << 41),
    the bytes restored."""
    cdef i64 i
    cdef i64 fault = -1
    cdef i64 end
    cdef i64 r
    for i in range(n):
        if mem[start + i] != value:
            fault = start + i
            break
    if fault < 0:
        return 0
    end = start + n
    while end > fault and mem[end - 1] == value:
        end -= 1
    r = (what | (<i64>mem[fault] << 3) | (<i64>value << 11) | ((fault - obj) << 19)
         | ((end - fault) << 41))
    memset(mem + fault, value, end - fault)
    return r


cdef inline bint slub_debug_orig_size(i64 flags) noexcept nogil:
    """(~v6.1) a kmalloc cache with SLAB_STORE_USER keeps each object's requested size."""
    return (flags & SLAB_STORE_USER) != 0 and (flags & SLAB_KMALLOC) != 0


cdef inline i64 get_info_end(i64 offset, i64 inuse) noexcept nogil:
    """get_info_end(): where the tracks begin -- inuse, plus the free pointer when it is
    stored outside the object (freeptr_outside_object)."""
    if offset >= inuse:
        return inuse + 8
    return inuse


cdef inline void init_tracking(unsigned char *mem, i64 obj, i64 offset, i64 inuse,
                               i64 flags) noexcept nogil:
    """init_tracking(): both tracks zeroed (never allocated, never freed)."""
    if flags & SLAB_STORE_USER:
        memset(mem + obj + get_info_end(offset, inuse), 0, 2 * SIZEOF_TRACK)


cdef inline i64 pad_start(i64 offset, i64 inuse, i64 flags) noexcept nogil:
    """check_pad_bytes(): the end of the metadata (free pointer, tracks, orig_size)."""
    cdef i64 off = get_info_end(offset, inuse)
    if flags & SLAB_STORE_USER:
        off += 2 * SIZEOF_TRACK
        if flags & SLAB_KMALLOC:
            off += SIZEOF_ORIG_SIZE
    return off


cdef inline void set_orig_size(unsigned char *mem, i64 obj, i64 offset, i64 inuse, i64 flags,
                               i64 orig_size) noexcept nogil:
    if slub_debug_orig_size(flags):
        (<unsigned int *>(mem + obj + get_info_end(offset, inuse) + 2 * SIZEOF_TRACK))[0] = \
            <unsigned int>orig_size


cdef inline i64 get_orig_size(unsigned char *mem, i64 obj, i64 offset, i64 inuse, i64 flags,
                              i64 object_size) noexcept nogil:
    if not slub_debug_orig_size(flags):
        return object_size
    return (<unsigned int *>(mem + obj + get_info_end(offset, inuse) + 2 * SIZEOF_TRACK))[0]
