"""Plain-Python twins of the primitives in ``_prim.h``.

The compiled core calls the C versions with a pointer to a word; uncompiled, the same call
sites pass ``(words, index)`` and land here.  Uncompiled pyslub runs every public operation of a
Memory under one lock (``pyslub.memory``), so these are plain loads and stores: correct because
nothing else runs meanwhile.  The "TSC" of the uncompiled core is ``time.perf_counter_ns``.
"""

import ctypes
import os
import threading
import time


def cmpxchg_double(words, i, o1, o2, n1, n2):
    """Swap ``words[i], words[i+1]`` from ``(o1, o2)`` to ``(n1, n2)``; True on success."""
    if words[i] == o1 and words[i + 1] == o2:
        words[i] = n1
        words[i + 1] = n2
        return True
    return False


this_cpu_cmpxchg_double = cmpxchg_double


def membarrier_init():
    return False            # uncompiled: no biased locks (every operation runs alone anyway)


def membarrier(glob):
    pass


def cmpxchg(words, i, o, n):
    if words[i] == o:
        words[i] = n
        return True
    return False


def xchg(words, i, v):
    old = words[i]
    words[i] = v
    return old


def fetch_add(words, i, v):
    old = words[i]
    words[i] = old + v
    return old


def load_acquire(words, i):
    return words[i]


def store_release(words, i, v):
    words[i] = v


def load_seq_cst(words, i):
    return words[i]


_U64 = (1 << 64) - 1


def _signed(v):
    return v - (1 << 64) if v >> 63 else v


def swab(x):
    """swab64(): the bytes of a word in reverse order (words are signed 64-bit values)."""
    return _signed(int.from_bytes((x & _U64).to_bytes(8, "little"), "big"))


def mix64(x):
    """splitmix64's output function of ``x`` (see _prim.h)."""
    z = (x + 0x9E3779B97F4A7C15) & _U64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _U64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _U64
    return _signed(z ^ (z >> 31))


def cpu_relax():
    pass


def spin_lock(words, i, me):
    """0: taken (uncompiled, every operation runs alone: a word still set belongs to an
    operation that died, see pyslub.recovery)."""
    words[i] = me
    return 0


def spin_trylock(words, i, me):
    if words[i]:
        return False
    words[i] = me
    return True


def spin_unlock(words, i):
    words[i] = 0


mutex_lock = spin_lock


def mutex_unlock(words, i):
    words[i] = 0


def gettid():
    return threading.get_native_id()


def tid_reset():
    pass


def getpid():
    return os.getpid()


def getcpu():
    c = _libc().sched_getcpu()
    return c if c >= 0 else 0


def _libc():
    global _LIBC
    if _LIBC is None:
        _LIBC = ctypes.CDLL(None, use_errno=True)
    return _LIBC


_LIBC = None


def alive(pid):
    """Is the thread / process ``pid`` running?  (A zombie, killed but not reaped, is dead.)"""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    state = stat[stat.rfind(b")") + 2:][:1]
    return state not in (b"Z", b"X")


def tsc_start():
    return time.perf_counter_ns()


def tsc_stop():
    return time.perf_counter_ns()


def wallclock_ns():
    return time.time_ns()


def barrier():
    pass


_tls = threading.local()


def tls_token():
    return getattr(_tls, "token", 0)


def tls_cpu():
    return getattr(_tls, "cpu", 0)


def tls_seat():
    return getattr(_tls, "seat", 0)


def tls_set(token, cpu, seat):
    _tls.token, _tls.cpu, _tls.seat = token, cpu, seat
