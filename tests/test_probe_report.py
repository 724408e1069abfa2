"""__slab_free probe presentation on hand-made records (the core hook comes separately)."""

from __future__ import annotations

import pytest

from pyslub.tools import probe_report as pr

RECS = [(0x1000, 1, False, "cpu_partial"), (0x1000, 16, True, "frozen"),
        (0x2000, 3, False, "partial"), (0x3000, 32, False, "discard"),
        (0x4000, 3, True, "frozen")]


def test_summary_numbers():
    s = pr.summarize(RECS, freed=100)
    assert (s.calls, s.objects, s.freed, s.frozen_calls) == (5, 55, 100, 2)
    assert s.mean == 11.0 and s.calls_per_1000 == 50.0
    assert s.per_call == {1: 1, 16: 1, 3: 2, 32: 1}
    assert dict(s.histogram()) == {"1": 1, "2": 0, "3": 2, "4": 0, "5-8": 0, "9-16": 1,
                                   "17-32": 1, "33-64": 0, "65+": 0}
    assert s.cases == {"cpu_partial": 1, "frozen": 2, "partial": 1, "discard": 1}
    assert pr.summarize(RECS).calls_per_1000 == pytest.approx(1000 * 5 / 55)


def test_bad_records():
    with pytest.raises(ValueError, match="probe record 1"):
        pr.summarize([RECS[0], (1, 2)])
    with pytest.raises(ValueError, match="cnt must be"):
        pr.summarize([(1, 0, False, "frozen")])
    with pytest.raises(ValueError, match="less than"):
        pr.summarize(RECS, freed=10)


def test_table_and_lines():
    per = pr.compare({"bulk-v2": [(1, 1, False, "partial")] * 4, "lookahead-fwd": RECS},
                     freed={"bulk-v2": 4, "lookahead-fwd": 55})
    t = pr.table(per)
    assert t.row_count == 2 and len(t.columns) == len(pr.BUCKETS) + 6
    out = pr.lines(per)
    assert out[0].startswith("bulk-v2        calls=4 objects=4 mean=1.00 calls/1k=1000.0")
    assert out[1].endswith("[1:1 3:2 9-16:1 17-32:1]")
