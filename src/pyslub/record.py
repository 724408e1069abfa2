"""``record_frees``: watch which detached lists a bulk free hands to the slabs."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

EV_MASK_RECORD = 2      # slab.pxd's observe bits
EV_MASK_PROBE = 4


class FreeRecord(list):
    """One ``(slab address, [objects head..tail], "fast" | "slow")`` per list handed over.

    "fast" = the list went onto the cpu freelist (the cpu slab's lockless path), "slow" =
    ``__slab_free`` published it in the slab with one cmpxchg_double.  The core writes the
    lists into a C ring while it works; they become tuples here after each operation.
    ``lost``: records the ring had no room for (one call produced more than it holds; a
    RuntimeWarning says so too).
    """

    lost = 0

    @property
    def lists(self) -> list[list[int]]:
        return [objs for _, objs, _ in self]


@contextlib.contextmanager
def record_frees(cache: Any) -> Iterator[FreeRecord]:
    """``with record_frees(cache) as rec:`` collects every list freed into ``cache``."""
    rec = FreeRecord()
    cache._add_recorder(rec, EV_MASK_RECORD)
    try:
        yield rec
    finally:
        cache._remove_recorder(rec)


class ProbeRecord(list):
    """One ``(slab address, cnt, was_frozen, case)`` per ``__slab_free`` call, as the seed's
    perf probes on ``__slab_free()`` saw them: ``cnt`` objects freed by the call (the detached
    list's length), the slab's frozen bit before it, and the branch it took (one of
    ``pyslub.slab.PROBE_CASES``'s names).  ``pyslub.tools.probe_report`` summarises them.
    ``lost``: records the core's event ring had no room for."""

    lost = 0

    @property
    def counts(self) -> list[int]:
        return [cnt for _, cnt, _, _ in self]


@contextlib.contextmanager
def probe(cache: Any) -> Iterator[ProbeRecord]:
    """``with pyslub.probe(cache) as p:`` records every ``__slab_free`` call into ``cache``.
    Off (the default), the core pays one predicted branch per call."""
    rec = ProbeRecord()
    cache._add_recorder(rec, EV_MASK_PROBE)
    try:
        yield rec
    finally:
        cache._remove_recorder(rec)
