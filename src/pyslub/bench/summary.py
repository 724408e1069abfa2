"""What ``pyslub bench`` prints: medians and spreads over rounds, "improved", verdicts, text.

Pure functions over finished measurements (``pyslub.bench.suite.Measurement``) that return
plain-text lines of fixed width -- no rich, no terminal probing -- so the output can be tested
line by line and stays the same in a pipe, a log and a terminal.

Noise: every number is a median over rounds (the rounds are interleaved: each round runs every
configuration once), printed with its interquartile range ``[q1-q3]`` over the rounds (the
JSON also has min and max).  "improved" is the seed's
``(before - after) / before * 100``, computed per round on exact ns (``time_interval /
invoked_cnt``, not the truncated cycles(tsc)), then reduced the same way.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pyslub.bench.seed import SEED_AFTER, SEED_BEFORE, SEED_IMPROVED_PCT

__all__ = [
    "NOISE_PCT",
    "PairRow",
    "Spread",
    "Verdict",
    "fmt_ns",
    "fmt_pct",
    "pair_rows",
    "pair_table",
    "spread_table",
    "classify",
    "runs",
    "text_table",
    "verdict_lines",
    "verdicts",
]

NOISE_PCT = 5.0        # |improved| below this (or a range crossing 0) counts as no difference
SEED_IMPROVED = {p.bulk: pct for p, pct in zip(SEED_BEFORE, SEED_IMPROVED_PCT, strict=True)}
SEED_NS = {p.bulk: (p.ns, a.ns) for p, a in zip(SEED_BEFORE, SEED_AFTER, strict=True)}


@dataclass(frozen=True)
class Spread:
    """Median, quartiles and range of one quantity over rounds.

    The tables print ``median [q1-q3]``: on a shared machine single rounds can be 2x off
    (preemption, another job), which the range shows but the quartiles shrug off."""

    median: float
    lo: float                 # min
    hi: float                 # max
    n: int
    q1: float
    q3: float

    @classmethod
    def of(cls, values: Iterable[float]) -> Spread:
        vs = sorted(float(v) for v in values if not math.isnan(v))
        if not vs:
            raise ValueError("no values")
        if len(vs) == 1:
            q1 = q3 = vs[0]
        else:
            q1, _, q3 = statistics.quantiles(vs, n=4, method="inclusive")
        return cls(statistics.median(vs), vs[0], vs[-1], len(vs), q1, q3)

    @property
    def rel(self) -> float:
        """(q3 - q1) / median: how much the quantity moved between rounds."""
        return (self.q3 - self.q1) / self.median if self.median else 0.0

    def to_dict(self) -> dict[str, float]:
        return {"median": self.median, "q1": self.q1, "q3": self.q3, "min": self.lo,
                "max": self.hi, "n": self.n}


@dataclass(frozen=True)
class PairRow:
    """One bulk size of the seed's side-by-side: before, after, improved (percent)."""

    bulk: int
    before: Spread
    after: Spread
    improved: Spread

    @property
    def seed_improved(self) -> float | None:
        return SEED_IMPROVED.get(self.bulk)

    def to_dict(self) -> dict[str, Any]:
        return {"bulk": self.bulk, "before_ns": self.before.to_dict(),
                "after_ns": self.after.to_dict(), "improved_pct": self.improved.to_dict(),
                "seed_improved_pct": self.seed_improved}


def _ns(m: Any) -> float:
    return float(m.record.time_interval / m.record.invoked_cnt)


def pair_rows(ms: Sequence[Any], before: str, after: str, kind: str = "bulk_quick_reuse",
              key: Callable[[Any], int] | None = None) -> list[PairRow]:
    """Rows for every bulk size (or ``key(measurement)``) measured with both strategies,
    rounds paired by round number."""
    cells: dict[tuple[int, str], dict[int, float]] = {}
    for m in ms:
        if m.ok and m.spec.kind == kind and m.spec.strategy in (before, after):
            k = m.spec.step if key is None else key(m)
            cells.setdefault((k, m.spec.strategy), {})[m.spec.round_no] = _ns(m)
    rows = []
    for bulk in sorted({b for b, _ in cells}):
        b, a = cells.get((bulk, before)), cells.get((bulk, after))
        if not b or not a:
            continue
        rounds = sorted(set(b) & set(a))
        improved = [(b[r] - a[r]) / b[r] * 100.0 for r in rounds if b[r] > 0]
        if not improved:
            continue
        rows.append(PairRow(bulk, Spread.of(b.values()), Spread.of(a.values()),
                            Spread.of(improved)))
    return rows


# -- number formats ------------------------------------------------------------------------------
def fmt_ns(v: float) -> str:
    """Three significant digits, at most one decimal above 10 ns: 9.10, 19.9, 162."""
    if v >= 99.95:
        return f"{v:.0f}"
    if v >= 9.995:
        return f"{v:.1f}"
    return f"{v:.2f}"


def fmt_pct(v: float) -> str:
    return f"{v:.1f}%"


def _ns_cell(s: Spread) -> str:
    return f"{fmt_ns(s.median)} [{fmt_ns(s.q1)}-{fmt_ns(s.q3)}]"


def _int_text(v: float) -> str:
    return str(round(v) + 0)          # never "-0"


def _pct_cell(s: Spread) -> str:
    return f"{fmt_pct(s.median)} [{_int_text(s.q1)}..{_int_text(s.q3)}]"


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]], *, sep: str = "  ",
               left: Sequence[int] = (), width: int = 100) -> list[str]:
    """Fixed-width lines: every column as wide as its widest cell, right-aligned except the
    column indices in ``left``; trailing blanks stripped.  Columns are set one blank apart
    when two would make a line wider than ``width``."""
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]
    if sum(widths) + len(sep) * (len(widths) - 1) > width:
        sep = " "

    def line(cells: Sequence[str]) -> str:
        out = [(str(c).ljust(w) if i in left else str(c).rjust(w))
               for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        return sep.join(out).rstrip()

    return [line(header), *(line(r) for r in rows)]


def pair_table(rows: Sequence[PairRow], before: str, after: str, *,
               seed: bool = True) -> list[str]:
    """The seed's side-by-side layout (``bulk- before - after - improved``), with spreads;
    medians and ranges in their own sub-columns so they line up."""
    body = []
    for r in rows:
        cells = [str(r.bulk), fmt_ns(r.before.median), _range_cell(r.before),
                 fmt_ns(r.after.median), _range_cell(r.after), fmt_pct(r.improved.median),
                 f"[{_int_text(r.improved.q1)}..{_int_text(r.improved.q3)}]"]
        if seed:
            cells.append("-" if r.seed_improved is None else fmt_pct(r.seed_improved))
        body.append(cells)
    w = [max([len(c[i]) for c in body], default=0) for i in range(len(body[0]) if body else 8)]
    groups = [(before, w[1] + 1 + w[2]), (after, w[3] + 1 + w[4]), ("improved", w[5] + 1 + w[6])]
    head = "bulk- " + " - ".join(name.ljust(width) for name, width in groups)
    if seed:
        head += " - seed"
    lines = [head.rstrip()]
    for c in body:
        line = (f"{c[0]:>3} - {c[1]:>{w[1]}} {c[2]:<{w[2]}} - {c[3]:>{w[3]}} {c[4]:<{w[4]}} - "
                f"{c[5]:>{w[5]}} {c[6]:<{w[6]}}")
        if seed:
            line += f" - {c[7]:>6}"
        lines.append(line.rstrip())
    return lines


def _range_cell(s: Spread) -> str:
    return f"[{fmt_ns(s.q1)}-{fmt_ns(s.q3)}]"


def spread_table(columns: Mapping[str, Mapping[int, Spread]], *, row_header: str = "bulk",
                 spread: bool = False, seed: bool = False) -> list[str]:
    """ns per object, one column per name, one row per key (bulk size); ``spread`` adds the
    ``[min-max]`` to each cell, ``seed`` the seed's before/after ns."""
    keys = sorted({k for col in columns.values() for k in col})
    head = [row_header] + (["seed-bef", "seed-aft"] if seed else []) + list(columns)
    rows = []
    for k in keys:
        cells = [str(k)]
        if seed:
            sb = SEED_NS.get(k)
            cells += [fmt_ns(sb[0]), fmt_ns(sb[1])] if sb else ["-", "-"]
        for col in columns.values():
            s = col.get(k)
            cells.append("-" if s is None else (_ns_cell(s) if spread else fmt_ns(s.median)))
        rows.append(cells)
    return text_table(head, rows)


# -- verdicts ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Verdict:
    """The bulk sizes where the after strategy helps, regresses, or makes no clear difference.

    A bulk size *helps* when after was faster in at least 3 rounds of 4 (the first quartile of
    "improved" is above 0) and by ``NOISE_PCT`` or more at the median; it *regresses* when it
    was slower in 3 rounds of 4 (third quartile below 0) by ``NOISE_PCT`` or more at the
    median; anything else (the rounds disagree, or the difference is small) is *even*."""

    kind: str                 # "helps" | "regresses" | "even"
    bulks: tuple[int, ...]
    lo: float                 # smallest / largest median improvement (percent)
    hi: float
    round_lo: float           # smallest first / largest third quartile of the improvement
    round_hi: float
    order: tuple[int, ...] = ()   # every bulk size of the table, to print runs as "16-34"

    @property
    def seed(self) -> tuple[float, float] | None:
        vals = [SEED_IMPROVED[b] for b in self.bulks if b in SEED_IMPROVED]
        return (min(vals), max(vals)) if vals else None

    def bulk_text(self) -> str:
        return "bulk " + runs(self.bulks, self.order or self.bulks)

    def text(self, after: str) -> str:
        if self.kind == "helps":
            what = f"{after} helps at {self.bulk_text()}: {_range(self.lo, self.hi)} faster"
        elif self.kind == "regresses":
            what = (f"{after} regresses at {self.bulk_text()}: {_range(-self.hi, -self.lo)} "
                    "slower")
        else:
            what = (f"no clear difference at {self.bulk_text()} "
                    f"(quartiles {_signed_range(self.round_lo, self.round_hi)})")
        seed = self.seed
        return what + ("" if seed is None else f"; seed {_signed_range(*seed)}")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "bulks": list(self.bulks), "improved_min": self.lo,
                "improved_max": self.hi, "round_min": self.round_lo,
                "round_max": self.round_hi, "seed": list(self.seed) if self.seed else None}


def runs(keys: Sequence[int], order: Sequence[int]) -> str:
    """``keys`` as runs of consecutive entries of ``order``: (1, 2, 3, 8, 16), order
    (1, 2, 3, 4, 8, 16) -> "1-3, 8-16"."""
    pos = {k: i for i, k in enumerate(order)}
    ks = sorted(keys, key=lambda k: pos.get(k, len(pos)))
    out: list[list[int]] = []
    for k in ks:
        if out and pos.get(k) == pos.get(out[-1][-1], -2) + 1:
            out[-1].append(k)
        else:
            out.append([k])
    return ", ".join(str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in out)


def _range(lo: float, hi: float) -> str:
    a, b = round(lo), round(hi)
    return f"{a}%" if a == b else f"{a}-{b}%"


def _signed_range(lo: float, hi: float) -> str:
    a, b = round(lo) + 0, round(hi) + 0
    sa, sb = ("0" if a == 0 else f"{a:+d}"), ("0" if b == 0 else f"{b:+d}")
    return f"{sa}%" if a == b else f"{sa}..{sb}%"


def classify(r: PairRow) -> str:
    s = r.improved
    if s.q1 > 0 and s.median >= NOISE_PCT:
        return "helps"
    if s.q3 < 0 and s.median <= -NOISE_PCT:
        return "regresses"
    return "even"


def verdicts(rows: Sequence[PairRow]) -> list[Verdict]:
    """At most three verdicts, in the order helps, regresses, even (empty ones left out)."""
    order = tuple(r.bulk for r in rows)
    out = []
    for kind in ("helps", "regresses", "even"):
        rs = [r for r in rows if classify(r) == kind]
        if not rs:
            continue
        meds = [r.improved.median for r in rs]
        out.append(Verdict(kind, tuple(r.bulk for r in rs), min(meds), max(meds),
                           min(r.improved.q1 for r in rs), max(r.improved.q3 for r in rs),
                           order))
    return out


def verdict_lines(vs: Sequence[Verdict], after: str, prefix: str = "") -> list[str]:
    return [f"{prefix}{v.text(after)}" for v in vs]
