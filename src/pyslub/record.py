"""``record_frees``: watch which detached lists a bulk free hands to the slabs."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


class FreeRecord(list):
    """One ``(slab address, [objects head..tail], "fast" | "slow")`` per list handed over.

    "fast" = the list went onto the cpu freelist (the cpu slab's lockless path), "slow" =
    ``__slab_free`` published it in the slab with one cmpxchg_double.  The core writes the
    lists into a C ring while it works; they become tuples here after each operation.
    """

    @property
    def lists(self) -> list[list[int]]:
        return [objs for _, objs, _ in self]


@contextlib.contextmanager
def record_frees(cache: Any) -> Iterator[FreeRecord]:
    """``with record_frees(cache) as rec:`` collects every list freed into ``cache``."""
    rec = FreeRecord()
    cache._add_recorder(rec)
    try:
        yield rec
    finally:
        cache._remove_recorder(rec)
