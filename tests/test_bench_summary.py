"""The numbers the bench screen prints: quartiles, "improved" from ns, verdicts, layout."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from pyslub.bench import summary as sm
from pyslub.bench.time_bench import TimeBenchRecord


def meas(strategy: str, bulk: int, rnd: int, ns: float) -> SimpleNamespace:
    rec = TimeBenchRecord(invoked_cnt=1_000_000, time_interval=round(ns * 1_000_000), step=bulk)
    spec = SimpleNamespace(kind="bulk_quick_reuse", strategy=strategy, step=bulk,
                           round_no=rnd, nmatch=None)
    return SimpleNamespace(ok=True, spec=spec, record=rec, label=strategy)


def test_spread_quartiles_and_single_value() -> None:
    s = sm.Spread.of([5.0, 1.0, 3.0, 2.0, 4.0])
    assert (s.median, s.lo, s.hi, s.q1, s.q3, s.n) == (3.0, 1.0, 5.0, 2.0, 4.0, 5)
    assert s.rel == pytest.approx(2 / 3)
    one = sm.Spread.of([7.0])
    assert (one.q1, one.median, one.q3) == (7.0, 7.0, 7.0)
    with pytest.raises(ValueError):
        sm.Spread.of([])


def test_improved_is_on_ns_not_truncated_cycles() -> None:
    # 3.140 vs 3.324 ns: the same 7 TSC ticks at 2.25 GHz, so the seed's cycles give 0.0 %
    ms = [meas("bulk-v2", 16, 0, 3.324), meas("lookahead-fwd", 16, 0, 3.140)]
    (row,) = sm.pair_rows(ms, "bulk-v2", "lookahead-fwd")
    assert row.improved.median == pytest.approx((3.324 - 3.140) / 3.324 * 100)
    assert sm.fmt_pct(row.improved.median) == "5.5%"


def test_rounds_are_paired_and_verdicts_grouped() -> None:
    ms = []
    for rnd in range(4):
        for bulk, before, after in ((1, 10.0, 12.0), (2, 10.0, 10.1), (16, 20.0, 8.0),
                                    (30, 21.0, 9.0)):
            ms += [meas("bulk-v2", bulk, rnd, before + rnd), meas("lookahead-fwd", bulk, rnd,
                                                                   after + rnd)]
    rows = sm.pair_rows(ms, "bulk-v2", "lookahead-fwd")
    assert [r.bulk for r in rows] == [1, 2, 16, 30]
    assert [sm.classify(r) for r in rows] == ["regresses", "even", "helps", "helps"]
    vs = sm.verdicts(rows)
    assert [v.kind for v in vs] == ["helps", "regresses", "even"]
    assert vs[0].bulk_text() == "bulk 16-30"
    assert vs[0].text("lookahead-fwd").startswith("lookahead-fwd helps at bulk 16-30: ")
    assert vs[0].text("lookahead-fwd").endswith("; seed +71..+77%")
    assert vs[1].text("x").startswith("x regresses at bulk 1: ")
    lines = sm.pair_table(rows, "bulk-v2", "lookahead-fwd")
    assert lines[0].startswith("bulk- bulk-v2 ") and lines[0].endswith(" - seed")
    assert lines[3].startswith(" 16 - ") and lines[3].endswith(" -  71.0%")
    assert len({len(ln) for ln in lines[1:]}) == 1          # rows line up


def test_runs_of_bulk_sizes() -> None:
    order = (1, 2, 3, 4, 8, 16, 30, 32, 34)
    assert sm.runs((1, 2, 3, 8, 16, 34), order) == "1-3, 8-16, 34"
    assert sm.runs((4,), order) == "4"


def test_text_table_widths() -> None:
    lines = sm.text_table(["a", "bb"], [["1", "22222"], ["333", "4"]], left=(0,))
    assert lines == ["a       bb", "1    22222", "333      4"]
