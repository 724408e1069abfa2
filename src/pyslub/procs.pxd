# C-level side of the process table and the operation gate (procs.py).
from pyslub._layout cimport *
from pyslub._prim cimport (alive, gettid, cmpxchg, fetch_add, store_release, load_acquire,
                           gate_fence, global_barrier, cpu_relax)
from pyslub.page_alloc cimport Segment

cdef extern from "<sched.h>" nogil:
    int sched_yield()

cdef bint cas_word(Segment seg, i64 i, i64 old, i64 new)
cdef int pause(int spins)

cdef inline int gate_pause(int spins) noexcept nogil:
    if spins < 64:
        cpu_relax()
    else:
        sched_yield()
    return spins + 1

cdef inline void gate_exit(Segment seg, i64 seat, i64 slot) noexcept nogil:
    """The calling thread leaves its operation."""
    if seat < NR_SEATS:
        store_release(&seg.hdr[H_SEAT_GATE + seat], seg.hdr[H_SEAT_GATE + seat] - 1)
    else:
        fetch_add(&seg.hdr[H_GATE_SHARED + slot], -1)

cdef inline bint gate_enter(Segment seg, i64 seat, i64 slot) noexcept nogil:
    """The calling thread (stats seat ``seat``, process slot ``slot``) starts an operation on
    the shared segment, waiting while a recovery runs (procs.py's header has the protocol).
    False, and not entered, when the recoverer died: the caller runs recover() and retries."""
    cdef int spins = 0
    cdef i64 holder
    if seat < NR_SEATS and seg.hdr[H_SEAT_GATE + seat] > 0:
        seg.hdr[H_SEAT_GATE + seat] += 1    # nested (a finalizer inside an operation): a
        return True                         # recovery is waiting for the outer one to end
    while True:
        if seat < NR_SEATS:                 # the seat's thread is its only writer; a depth,
            seg.hdr[H_SEAT_GATE + seat] += 1    # so a call nested by a finalizer is harmless
        else:
            fetch_add(&seg.hdr[H_GATE_SHARED + slot], 1)
        gate_fence()                        # store, then load (the recoverer's membarrier)
        holder = load_acquire(&seg.hdr[H_RECOVER])
        if holder == 0:
            return True
        gate_exit(seg, seat, slot)
        while load_acquire(&seg.hdr[H_RECOVER]) == holder:
            spins = gate_pause(spins)
            if (spins & 1023) == 0 and not alive(holder):
                return False
