"""Reports on bench results: the seed's side-by-side table, a rich table, JSON and a plot.

Independent of the allocator: everything consumes *record-likes*, i.e. a ``TimeBenchRecord``, a
``SeedPoint`` or a plain mapping with

- the bulk size as ``step`` or ``bulk``;
- cycles per element as ``tsc_cycles`` or ``cycles``;
- ns per element as ``time_interval``/``invoked_cnt`` (exact), or ``ns`` (float), or the
  kernel's ``ns_per_call_quotient``/``ns_per_call_decimal`` pair.

``results`` arguments map a strategy name to a sequence of record-likes (several records for
one bulk size are reduced to their median).
"""

from __future__ import annotations

import json
import math
import os
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, is_dataclass
from typing import TYPE_CHECKING, Any

from pyslub.bench.seed import BULK_SIZES, SEED_AFTER, SEED_BEFORE
from pyslub.bench.time_bench import TimeBenchRecord

if TYPE_CHECKING:
    from rich.table import Table

__all__ = [
    "JSON_FORMAT",
    "bulk_of",
    "cycles_of",
    "median_record",
    "ns_of",
    "ns_text_of",
    "plot",
    "print_strategy_table",
    "read_json",
    "record_to_dict",
    "render_strategy_table",
    "render_table",
    "side_by_side",
    "stats_table",
    "strategy_table",
    "value_table",
    "write_json",
]

JSON_FORMAT = "pyslub.bench/1"

RecordLike = Any  # TimeBenchRecord | SeedPoint | Mapping[str, Any]
Results = Mapping[str, Sequence[RecordLike]]


# -- accessors on record-likes -------------------------------------------------------------------
def _get(r: RecordLike, *names: str) -> Any:
    for name in names:
        if isinstance(r, Mapping):
            if name in r and r[name] is not None:
                return r[name]
        elif getattr(r, name, None) is not None:
            return getattr(r, name)
    return None


def bulk_of(r: RecordLike) -> int:
    """Bulk size (``step`` of the kernel record)."""
    v = _get(r, "step", "bulk")
    if v is None:
        raise KeyError("record has neither 'step' nor 'bulk'")
    return int(v)


def cycles_of(r: RecordLike) -> int:
    """TSC cycles per element."""
    v = _get(r, "tsc_cycles", "cycles")
    if v is None:
        raise KeyError("record has neither 'tsc_cycles' nor 'cycles'")
    return int(v)


def ns_of(r: RecordLike) -> float:
    """ns per element as a float (exact from the intervals when available)."""
    interval, cnt = _get(r, "time_interval"), _get(r, "invoked_cnt")
    if interval and cnt:
        return interval / cnt
    ns = _get(r, "ns")
    if ns is not None:
        return float(ns)
    q, d = _get(r, "ns_per_call_quotient"), _get(r, "ns_per_call_decimal")
    if q is not None and d is not None:
        return q + d / 1000.0  # d < 1000 assumed (see TimeBenchRecord.calc_stats)
    raise KeyError("record has no ns per element")


def ns_text_of(r: RecordLike) -> str:
    """ns per element as printed: the kernel's ``q.ddd`` if the record has it, else %.3f."""
    q, d = _get(r, "ns_per_call_quotient"), _get(r, "ns_per_call_decimal")
    if q is not None and d is not None and _get(r, "time_interval"):
        return f"{q}.{d:03d}"
    return f"{ns_of(r):.3f}"


def _by_bulk(records: Iterable[RecordLike]) -> dict[int, list[RecordLike]]:
    out: dict[int, list[RecordLike]] = {}
    for r in records:
        out.setdefault(bulk_of(r), []).append(r)
    return out


def _median_ns(records: Iterable[RecordLike]) -> dict[int, float]:
    return {b: statistics.median(ns_of(r) for r in rs) for b, rs in _by_bulk(records).items()}


def median_record(records: Iterable[RecordLike]) -> list[RecordLike]:
    """One record per bulk size (in first-seen order): the one with the median ns (the lower
    middle for an even count), so ``side_by_side`` prints a real measured line."""
    out = []
    for rs in _by_bulk(records).values():
        ordered = sorted(rs, key=ns_of)
        out.append(ordered[(len(ordered) - 1) // 2])
    return out


# -- (a) the seed's side-by-side layout ----------------------------------------------------------
def side_by_side(
    before_records: Sequence[RecordLike],
    after_records: Sequence[RecordLike],
    *,
    before_label: str = "Bulk-API-before",
    after_label: str = "Bulk-API with patchset",
    basis: str = "cycles",
) -> list[str]:
    """Lines in the seed cover letter's layout, one per bulk size of ``before_records``::

        bulk- Bulk-API-before           - Bulk-API with patchset
          1 -  42 cycles(tsc) 10.520 ns -  47 cycles(tsc) 11.931 ns - improved -11.9%

    improved = (before - after) / before * 100 with one decimal, on cycles as in the seed
    (``basis="ns"`` computes it on ns instead).  Pairs rows by bulk size; every bulk size of
    ``before_records`` must appear in ``after_records``.
    """
    if basis not in ("cycles", "ns"):
        raise ValueError("basis must be 'cycles' or 'ns'")
    after = {bulk_of(r): r for r in after_records}
    lines = [f"bulk- {before_label:<25} - {after_label}"]
    for b in before_records:
        bulk = bulk_of(b)
        if bulk not in after:
            raise ValueError(f"bulk {bulk} missing from after_records")
        a = after[bulk]
        if basis == "cycles":
            x, y = float(cycles_of(b)), float(cycles_of(a))
        else:
            x, y = ns_of(b), ns_of(a)
        improved = f"{(x - y) / x * 100.0:.1f}%" if x else "n/a"
        lines.append(
            f"{bulk:3d} - {cycles_of(b):3d} cycles(tsc) {ns_text_of(b):>6} ns - "
            f"{cycles_of(a):3d} cycles(tsc) {ns_text_of(a):>6} ns - improved {improved}"
        )
    return lines


# -- (b) rich table of strategies x bulk sizes ---------------------------------------------------
def strategy_table(results: Results, *, title: str | None = None, seed: bool = True) -> Table:
    """A rich Table: one row per bulk size, ns/object per strategy, the seed's ns alongside."""
    from rich.table import Table

    table = Table(title=title or "ns per object (alloc + free), median over runs")
    table.add_column("bulk", justify="right")
    seed_before = {p.bulk: p.ns for p in SEED_BEFORE}
    seed_after = {p.bulk: p.ns for p in SEED_AFTER}
    if seed:
        table.add_column("seed before", justify="right", style="dim")
        table.add_column("seed after", justify="right", style="dim")
    medians = {name: _median_ns(rs) for name, rs in results.items()}
    for name in medians:
        table.add_column(name, justify="right")
    bulks = sorted({b for m in medians.values() for b in m} | (set(BULK_SIZES) if seed else set()))
    for bulk in bulks:
        row = [str(bulk)]
        if seed:
            row += [_fmt(seed_before.get(bulk)), _fmt(seed_after.get(bulk))]
        row += [_fmt(m.get(bulk)) for m in medians.values()]
        table.add_row(*row)
    return table


def _fmt(v: float | None) -> str:
    return "-" if v is None or math.isnan(v) else f"{v:.3f}"


def render_strategy_table(results: Results, *, width: int = 120, **kw: Any) -> str:
    """``strategy_table`` rendered to plain text."""
    from rich.console import Console

    console = Console(width=width, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    try:
        console.print(strategy_table(results, **kw))
        return console.export_text()
    finally:
        console.file.close()


def render_table(table: Any, *, width: int = 120) -> str:
    """Any rich renderable (e.g. a Table) as plain text."""
    from rich.console import Console

    console = Console(width=width, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    try:
        console.print(table)
        return console.export_text()
    finally:
        console.file.close()


def value_table(
    rows: Mapping[str, Mapping[str, float | None]],
    *,
    title: str,
    row_header: str = "",
    fmt: str = "{:.3f}",
) -> Table:
    """A rich Table of ``rows[row][column]`` values (missing cells print "-")."""
    from rich.table import Table

    table = Table(title=title)
    table.add_column(row_header, justify="right")
    columns: list[str] = []
    for cells in rows.values():
        columns.extend(c for c in cells if c not in columns)
    for c in columns:
        table.add_column(c, justify="right")
    for label, cells in rows.items():
        vals = [cells.get(c) for c in columns]
        table.add_row(label, *("-" if v is None or math.isnan(v) else fmt.format(v)
                               for v in vals))
    return table


def stats_table(
    rows: Mapping[str, Mapping[str, float]],
    columns: Sequence[str],
    *,
    title: str = "SLUB_STATS counters per object",
    row_header: str = "bulk",
) -> Table:
    """Counter deltas per object (alloc+free pair) as a rich Table: one row per measurement,
    one column per counter name in ``columns``."""
    return value_table({label: {c: cells.get(c, 0.0) for c in columns}
                        for label, cells in rows.items()},
                       title=title, row_header=row_header, fmt="{:.3f}")


def print_strategy_table(results: Results, *, console: Any = None, **kw: Any) -> None:
    """Print ``strategy_table`` to ``console`` (default: a new rich Console on stdout)."""
    from rich.console import Console

    (console or Console()).print(strategy_table(results, **kw))


# -- (c) JSON ------------------------------------------------------------------------------------
def record_to_dict(r: RecordLike) -> dict[str, Any]:
    """A JSON-ready dict of a record-like, with ``ns_per_elem`` (float) added when known."""
    if isinstance(r, TimeBenchRecord):
        d = r.to_dict()
    elif is_dataclass(r) and not isinstance(r, type):
        d = asdict(r)
    elif isinstance(r, Mapping):
        d = dict(r)
    else:
        raise TypeError(f"not a record: {type(r).__name__}")
    try:
        ns = ns_of(r)
    except KeyError:
        ns = None
    d.setdefault("ns_per_elem", None if ns is None or math.isnan(ns) else ns)
    return d


def write_json(
    path: str | os.PathLike[str],
    records: Results | Sequence[RecordLike],
    *,
    meta: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Write ``{"format", "meta", "results", **extra}``; results keep the strategy mapping if
    given.  NaN and infinities become null (strict JSON)."""
    if isinstance(records, Mapping):
        results: Any = {k: [record_to_dict(r) for r in v] for k, v in records.items()}
    else:
        results = [record_to_dict(r) for r in records]
    payload = {"format": JSON_FORMAT, "meta": dict(meta or {}), "results": results,
               **{k: v for k, v in (extra or {}).items() if k not in ("format", "meta",
                                                                       "results")}}
    payload = _finite(payload)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=1, allow_nan=False)
        f.write("\n")


def _finite(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, Mapping):
        return {str(k): _finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_finite(v) for v in x]
    return x


def read_json(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a file written by ``write_json`` (checks the format tag)."""
    with open(path, encoding="utf-8") as f:
        payload = json.load(f)
    if payload.get("format") != JSON_FORMAT:
        raise ValueError(f"{path}: not a {JSON_FORMAT} file")
    return payload


# -- (d) plot ------------------------------------------------------------------------------------
def plot(
    path: str | os.PathLike[str],
    results: Results,
    *,
    title: str | None = None,
    seed: bool = True,
    logy: bool = False,
    styles: Mapping[str, Mapping[str, Any]] | None = None,
) -> None:
    """Plot ns/object vs bulk size (log x) per strategy; seed before/after dashed.

    ``logy`` helps when the curves are orders of magnitude apart (uncompiled Python vs the
    seed).  ``styles`` maps a result name to extra matplotlib line keywords (color, linestyle).
    Uses matplotlib's Agg canvas directly (no pyplot, no global backend switch).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FixedLocator, NullLocator

    fig = Figure(figsize=(9, 5.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ticks: set[int] = set()
    for name, records in results.items():
        med = _median_ns(records)
        xs = sorted(med)
        ticks.update(xs)
        kw: dict[str, Any] = {"marker": "o", "markersize": 3}
        kw.update((styles or {}).get(name, {}))
        ax.plot(xs, [med[x] for x in xs], label=name, **kw)
    if seed:
        for points, label in (
            (SEED_BEFORE, "seed before (bulk API V2)"),
            (SEED_AFTER, "seed after (3 patches)"),
        ):
            xs = [p.bulk for p in points]
            ticks.update(xs)
            ax.plot(
                xs,
                [p.ns for p in points],
                linestyle="--",
                marker="x",
                markersize=3,
                color="black" if "before" in label else "dimgray",
                linewidth=2,
                label=f"{label}, i7-4790K",
            )
    ax.set_xscale("log")
    labelled: list[int] = []
    for t in sorted(ticks):  # drop ticks too close to the previous one to be readable
        if not labelled or t >= labelled[-1] * 1.12:
            labelled.append(t)
    if labelled:
        ax.xaxis.set_major_locator(FixedLocator(labelled))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticklabels([str(t) for t in labelled], fontsize=7)
    ax.set_xlabel("bulk size (objects)")
    ax.set_ylabel("ns per object (alloc + free)")
    if logy:
        ax.set_yscale("log")
    else:
        ax.set_ylim(bottom=0)
    ax.set_title(title or "slab bulk alloc+free cost")
    ax.grid(True, which="major", alpha=0.3)
    if len(results) + (2 if seed else 0) > 6:     # many curves: legend beside the axes
        fig.set_size_inches(12, 5.5)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
