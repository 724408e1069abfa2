"""Plain-Python twins of the primitives in ``_prim.h``.

The compiled core calls the C versions with a pointer to the first word of a pair; uncompiled,
the same call sites pass ``(words, index)`` and land here.  A lock makes the pair swaps atomic
between Python threads (the C versions use cmpxchg16b).  The "TSC" of the uncompiled core is
``time.perf_counter_ns`` (1 tick = 1 ns).
"""

import threading
import time

_pair_lock = threading.Lock()


def cmpxchg_double(words, i, o1, o2, n1, n2):
    """Swap ``words[i], words[i+1]`` from ``(o1, o2)`` to ``(n1, n2)``; True on success."""
    with _pair_lock:
        if words[i] == o1 and words[i + 1] == o2:
            words[i] = n1
            words[i + 1] = n2
            return True
        return False


this_cpu_cmpxchg_double = cmpxchg_double


def tsc_start():
    return time.perf_counter_ns()


def tsc_stop():
    return time.perf_counter_ns()


def wallclock_ns():
    return time.time_ns()


def barrier():
    pass
