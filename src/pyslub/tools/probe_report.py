"""Presentation of ``__slab_free`` probes: how many objects each call frees, per strategy.

The seed's author put perf probes on ``__slab_free()`` while running slab_bulk_test03 to see
how much page bulking the detached freelist achieves.  The core will record one tuple per
``__slab_free`` call (the hook is the lead's; see ``pyslub.probe``, to come)::

    (slab_addr: int, cnt: int, was_frozen: bool, case: str)

``cnt`` is the number of objects the call frees (the detached list's length), ``was_frozen``
the slab's frozen bit before the call, and ``case`` the branch it took, one of :data:`CASES`
(other strings are counted as they come).  This module turns such records into the numbers
the seed's probes gave: the distribution of objects per call, the mean, and the calls per
1,000 objects freed, per strategy.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

ProbeRecord = tuple[int, int, bool, str]

CASES = {
    "frozen": "into a frozen slab (a cpu slab or a cpu partial slab): no list work "
              "(FREE_FROZEN)",
    "cpu_partial": "first free into a full slab: frozen onto the cpu partial list "
                   "(CPU_PARTIAL_FREE)",
    "node_partial": "full slab put on the node partial list, no cpu partial lists "
                    "(FREE_ADD_PARTIAL)",
    "partial": "a node partial slab stays partial (lock taken, nothing to move)",
    "discard": "the slab became empty with nr_partial >= min_partial: freed "
               "(FREE_REMOVE_PARTIAL / FREE_SLAB)",
}
BUCKETS = ((1, 1), (2, 2), (3, 3), (4, 4), (5, 8), (9, 16), (17, 32), (33, 64), (65, 1 << 62))


def _label(lo: int, hi: int) -> str:
    return str(lo) if lo == hi else (f"{lo}+" if hi >= 1 << 62 else f"{lo}-{hi}")


@dataclass
class ProbeSummary:
    """The distribution of one strategy's ``__slab_free`` calls."""

    calls: int
    objects: int                    # objects freed through __slab_free
    freed: int                      # objects freed in total (fast path included)
    per_call: dict[int, int]        # cnt -> calls
    cases: dict[str, int]
    frozen_calls: int

    @property
    def mean(self) -> float:
        return self.objects / self.calls if self.calls else 0.0

    @property
    def calls_per_1000(self) -> float:
        return 1000.0 * self.calls / self.freed if self.freed else 0.0

    def histogram(self) -> list[tuple[str, int]]:
        return [(_label(lo, hi), sum(n for c, n in self.per_call.items() if lo <= c <= hi))
                for lo, hi in BUCKETS]


def summarize(records: Iterable[ProbeRecord], freed: int | None = None) -> ProbeSummary:
    """Summarize one run's records; ``freed`` = every object the run freed (default: the
    objects the records carry, i.e. all frees went through ``__slab_free``)."""
    per_call: Counter[int] = Counter()
    cases: Counter[str] = Counter()
    calls = objects = frozen = 0
    for i, rec in enumerate(records):
        try:
            _slab, cnt, was_frozen, case = rec
        except (TypeError, ValueError):
            raise ValueError(f"probe record {i}: expected (slab_addr, cnt, was_frozen, case), "
                             f"got {rec!r}") from None
        if not isinstance(cnt, int) or cnt < 1:
            raise ValueError(f"probe record {i}: cnt must be an int >= 1, got {cnt!r}")
        calls += 1
        objects += cnt
        per_call[cnt] += 1
        cases[str(case)] += 1
        frozen += bool(was_frozen)
    if freed is None:
        freed = objects
    if freed < objects:
        raise ValueError(f"freed ({freed}) is less than the objects the probes saw ({objects})")
    return ProbeSummary(calls, objects, freed, dict(per_call), dict(cases), frozen)


def table(per_strategy: Mapping[str, ProbeSummary], title: str = "") -> Any:
    """A rich Table: per strategy, % of calls freeing 1, 2, 3, ... objects, the mean, the calls
    per 1,000 objects, % into frozen slabs and the cases taken."""
    from rich.table import Table
    t = Table(title=title or "__slab_free probes: objects freed per call (% of calls)",
              title_justify="left")
    t.add_column("strategy")
    for lo, hi in BUCKETS:
        t.add_column(_label(lo, hi), justify="right")
    for c in ("calls", "mean objs/call", "calls per 1k objs", "% frozen", "cases"):
        t.add_column(c, justify="left" if c == "cases" else "right")
    for name, s in per_strategy.items():
        hist = s.histogram()
        t.add_row(name, *[f"{100.0 * n / s.calls:.1f}" if s.calls else "-" for _, n in hist],
                  f"{s.calls:,}", f"{s.mean:.2f}", f"{s.calls_per_1000:.1f}",
                  f"{100.0 * s.frozen_calls / s.calls:.1f}" if s.calls else "-",
                  " ".join(f"{k}={v}" for k, v in sorted(s.cases.items())))
    return t


def lines(per_strategy: Mapping[str, ProbeSummary]) -> list[str]:
    """Plain-text form of :func:`table`, one line per strategy (for logs and docs)."""
    out = []
    for name, s in per_strategy.items():
        dist = " ".join(f"{label}:{n}" for label, n in s.histogram() if n)
        out.append(f"{name:<14} calls={s.calls} objects={s.objects} mean={s.mean:.2f} "
                   f"calls/1k={s.calls_per_1000:.1f} frozen={s.frozen_calls} [{dist}]")
    return out


def compare(per_strategy: Mapping[str, Sequence[ProbeRecord]],
            freed: Mapping[str, int] | None = None) -> dict[str, ProbeSummary]:
    """:func:`summarize` for each strategy's records (``freed`` per strategy, optional)."""
    return {name: summarize(recs, None if freed is None else freed.get(name))
            for name, recs in per_strategy.items()}


__all__ = ["BUCKETS", "CASES", "ProbeRecord", "ProbeSummary", "compare", "lines", "summarize",
           "table"]
