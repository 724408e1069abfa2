"""The processes of a shared segment: the process table, liveness, and the operation gate.

A shared segment (``Memory.create_shared`` / ``Memory.attach``) is used by several processes
at once, each running its threads as logical cpus exactly as threads do in one process.  This
module holds what the core needs to know about them:

* **The process table** (H_PROCS): one slot per attached process, ``(pid, start time, state)``.
  A process takes a slot when it attaches and marks it PS_CLOSED when it closes.  A slot whose
  process is gone without closing (its pid is not running, or runs another program: the start
  time differs) belongs to a *dead* process.  The slot number is what the owner bytes hold
  (which process allocated each live object), so the live objects of a dead process can be
  listed (``Memory.orphans``).  Slots are reused only after ``recover()`` found no object that
  names them.
* **The operation gate** (H_SEAT_GATE, H_GATE_SHARED, H_RECOVER): every public operation on a
  shared segment runs *inside the gate* -- its thread's gate word is non-zero (a depth) from
  before it touches allocator state until after -- so that ``recover()`` can stop the world:
  it closes the gate (H_RECOVER = its tid), waits until no live thread is inside, rebuilds,
  and opens it again.
  The gate is an asymmetric lock like the biased cpu records: entering is a plain store, a
  compiler barrier and a load; the recovery pays a ``membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)``
  (every running thread of every process passes a full barrier: either it saw the gate closed,
  or its gate word is visible).  Without a global membarrier the store is followed by a full
  fence.  A thread without a stats seat uses its process slot's counter (atomic adds).

Uncompiled, every public operation of a shared segment runs under a lock on the segment's file
(``flock``), so the gate is not needed and its functions do nothing (see pyslub.memory).
"""

import os

import cython

if cython.compiled:
    from cython.cimports.pyslub._prim import alive, gettid
else:
    from pyslub._layout import *  # noqa: F403 (C enums when compiled: _layout.pxd)
    from pyslub._prim import alive, gettid

    def gate_enter(seg, seat, slot):
        return True

    def gate_exit(seg, seat, slot):
        pass

from pyslub.page_alloc import Segment  # noqa: E402
from pyslub.slab import lock_registry, unlock_registry  # noqa: E402

PROC_STATES = {PS_FREE: "free", PS_ATTACHED: "attached", PS_CLOSED: "closed", PS_DEAD: "dead"}


def start_time(pid: int) -> int:
    """Field 22 of /proc/<pid>/stat (clock ticks since boot); 0 when there is no such process
    or it is a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return 0
    fields = stat[stat.rfind(b")") + 2:].split()
    if not fields or fields[0] in (b"Z", b"X"):
        return 0
    return int(fields[19])


def proc_attach(seg: Segment) -> int:
    """Take a process slot for the calling process (registry lock); its number, 1..63."""
    pid = os.getpid()
    start = start_time(pid)
    lock_registry(seg)
    try:
        for slot in range(1, MAX_PROCS):
            p = H_PROCS + slot * PROC_STRIDE
            if seg.hdr[p + P_STATE] == PS_FREE:
                seg.hdr[p + P_PID] = pid
                seg.hdr[p + P_START] = start
                seg.hdr[p + P_ATTACHES] += 1
                seg.hdr[p + P_STATE] = PS_ATTACHED
                seg.pslot = slot
                return slot
    finally:
        unlock_registry(seg)
    raise MemoryError(f"shared arena {seg.name!r}: all {MAX_PROCS - 1} process slots are taken "
                      "(recover() frees the slots of dead and closed processes whose objects "
                      "are all freed)")


def proc_detach(seg: Segment, slot: int) -> None:
    """The calling process closes: its slot becomes PS_CLOSED (objects it allocated that are
    still live are not orphans: others may hold them)."""
    lock_registry(seg)
    try:
        p = H_PROCS + slot * PROC_STRIDE
        if seg.hdr[p + P_PID] == os.getpid() and seg.hdr[p + P_STATE] == PS_ATTACHED:
            seg.hdr[p + P_STATE] = PS_CLOSED
    finally:
        unlock_registry(seg)


def proc_is_dead(seg: Segment, slot: int) -> bool:
    """Did the process of ``slot`` die attached (not running, or its pid reused)?"""
    p = H_PROCS + slot * PROC_STRIDE
    state = seg.hdr[p + P_STATE]
    if state == PS_DEAD:
        return True
    if state != PS_ATTACHED:
        return False
    pid = seg.hdr[p + P_PID]
    return not alive(pid) or start_time(pid) != seg.hdr[p + P_START]


def mark_dead(seg: Segment) -> list[int]:
    """Mark the slots of dead processes PS_DEAD (registry lock); the slots marked."""
    dead = []
    lock_registry(seg)
    try:
        for slot in range(1, MAX_PROCS):
            p = H_PROCS + slot * PROC_STRIDE
            if seg.hdr[p + P_STATE] == PS_ATTACHED and proc_is_dead(seg, slot):
                seg.hdr[p + P_STATE] = PS_DEAD
                dead.append(slot)
    finally:
        unlock_registry(seg)
    return dead


def proc_table(seg: Segment) -> list[dict]:
    """Every slot that is not free: slot, pid, state name, alive."""
    out = []
    for slot in range(1, MAX_PROCS):
        p = H_PROCS + slot * PROC_STRIDE
        state = seg.hdr[p + P_STATE]
        if state == PS_FREE:
            continue
        dead = proc_is_dead(seg, slot)
        out.append({"slot": slot, "pid": int(seg.hdr[p + P_PID]),
                    "state": "dead" if dead else PROC_STATES[state],
                    "alive": state != PS_DEAD and not dead and alive(seg.hdr[p + P_PID])})
    return out


def proc_pid(seg: Segment, slot: int) -> int:
    return int(seg.hdr[H_PROCS + slot * PROC_STRIDE + P_PID])


def proc_free_slots(seg: Segment, slots) -> None:
    """recover(): give back the slots of dead or closed processes that no object names."""
    for slot in slots:
        p = H_PROCS + slot * PROC_STRIDE
        if seg.hdr[p + P_STATE] in (PS_DEAD, PS_CLOSED):
            seg.hdr[p + P_STATE] = PS_FREE
            seg.hdr[p + P_PID] = 0
            seg.hdr[p + P_START] = 0


# =============================================================================================
# The gate (compiled: inline in procs.pxd; these are the recovery's side)
# =============================================================================================

def gate_close(seg: Segment) -> None:
    """Close the gate for a recovery by the calling thread: wait for a recovery in progress (or
    take over from a dead recoverer), then wait until no live thread is inside an operation."""
    me: i64 = gettid()
    holder: i64
    spins: cython.int = 0
    while True:
        holder = seg.hdr[H_RECOVER]
        if holder == 0 or (holder != me and not alive(holder)):
            if cas_word(seg, H_RECOVER, holder, me):
                break
        spins = pause(spins)
    if cython.compiled:
        global_barrier()
    seat: i64
    slot: i64
    spins = 0
    while True:
        busy = False
        for seat in range(NR_SEATS):
            if seg.hdr[H_SEAT_GATE + seat] and alive(seg.hdr[H_SEATS + seat]):
                busy = True
        for slot in range(1, MAX_PROCS):
            if seg.hdr[H_GATE_SHARED + slot] and not proc_is_dead(seg, slot):
                busy = True
        if not busy:
            return
        spins = pause(spins)


def gate_open(seg: Segment) -> None:
    """End of the recovery: dead threads' gate words are cleared, operations may start."""
    seat: i64
    for seat in range(NR_SEATS):
        if seg.hdr[H_SEAT_GATE + seat] and not alive(seg.hdr[H_SEATS + seat]):
            seg.hdr[H_SEAT_GATE + seat] = 0
    for slot in range(1, MAX_PROCS):
        if proc_is_dead(seg, slot):
            seg.hdr[H_GATE_SHARED + slot] = 0
    seg.hdr[H_RECOVERIES] += 1
    if cython.compiled:
        store_release(cython.address(seg.hdr[H_RECOVER]), 0)
    else:
        seg.hdr[H_RECOVER] = 0


def gate_holder(seg: Segment) -> int:
    return int(seg.hdr[H_RECOVER])


@cython.cfunc
def cas_word(seg: Segment, i: i64, old: i64, new: i64) -> cython.bint:
    if cython.compiled:
        return cmpxchg(cython.address(seg.hdr[i]), old, new)
    if seg.hdr[i] != old:
        return False
    seg.hdr[i] = new
    return True


@cython.cfunc
def pause(spins: cython.int) -> cython.int:
    if cython.compiled:
        return gate_pause(spins)
    return spins + 1
