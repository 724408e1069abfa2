# C-level twins of pyslub/debug.py's object checks, inlined into the core (slab.py) at the
# alloc_debug_processing / free_debug_processing / allocate_slab call sites.  debug.py itself is
# not compiled: everything else in it runs outside operations.
from libc.string cimport memset
from pyslub._layout cimport *

cdef enum:
    POISON_INUSE = 0x5a
    POISON_FREE = 0x6b
    POISON_END = 0xa5
    SLUB_RED_INACTIVE = 0xbb
    SLUB_RED_ACTIVE = 0xcc
    CHK_REDZONE = 1
    CHK_POISON = 2
    CHK_FREEPTR = 3


cdef inline void init_object(unsigned char *mem, i64 obj, i64 object_size, i64 inuse,
                             i64 flags, int val) noexcept nogil:
    if flags & OBJECT_POISON:
        memset(mem + obj, POISON_FREE, object_size - 1)
        mem[obj + object_size - 1] = POISON_END
    if flags & SLAB_RED_ZONE:
        memset(mem + obj + object_size, val, inuse - object_size)


cdef inline i64 check_bytes(unsigned char *mem, i64 obj, i64 start, int value, i64 n,
                            int what) noexcept nogil:
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


cdef inline i64 check_object_core(unsigned char *mem, i64 obj, i64 base, i64 span, i64 size,
                                  i64 object_size, i64 inuse, i64 offset, i64 flags,
                                  int val) noexcept nogil:
    cdef i64 r
    cdef i64 fp
    if flags & SLAB_RED_ZONE:
        r = check_bytes(mem, obj, obj + object_size, val, inuse - object_size, CHK_REDZONE)
        if r:
            return r
    if (flags & OBJECT_POISON) and val != SLUB_RED_ACTIVE:
        r = check_bytes(mem, obj, obj, POISON_FREE, object_size - 1, CHK_POISON)
        if r:
            return r
        r = check_bytes(mem, obj, obj + object_size - 1, POISON_END, 1, CHK_POISON)
        if r:
            return r
    if offset == 0 and val == SLUB_RED_ACTIVE:
        return 0
    fp = (<i64 *>(mem + obj + offset))[0]
    if fp != 0 and (fp < base or fp >= base + span or (fp - base) % size != 0):
        (<i64 *>(mem + obj + offset))[0] = 0
        return CHK_FREEPTR
    return 0
