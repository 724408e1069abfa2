"""time_bench arithmetic and output line, the seed data, and the report helpers."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyslub.bench import report, seed
from pyslub.bench.time_bench import (
    TIME_BENCH_LOOP,
    TIME_BENCH_TSC,
    TimeBenchClock,
    TimeBenchRecord,
    measure_tsc_khz,
    time_bench_calc_stats,
    time_bench_loop,
)


def rec(invoked_cnt: int, tsc_interval: int, time_interval: int, **kw) -> TimeBenchRecord:
    r = TimeBenchRecord(
        invoked_cnt=invoked_cnt,
        tsc_start=1_000,
        tsc_stop=1_000 + tsc_interval,
        start_ns=5_000_000_000,
        stop_ns=5_000_000_000 + time_interval,
        **kw,
    )
    r.calc_stats()
    return r


# -- calc_stats / format_line ---------------------------------------------------------------------
def test_format_line_test01_like() -> None:
    # bulk 30 of test01: loops 10M / 30 iterations x 30 = 9,999,990 elements
    r = rec(9_999_990, 200_001_234, 50_075_123, loops=333_333, step=30)
    assert r.tsc_cycles == 20  # 200001234 // 9999990, truncated
    assert (r.ns_per_call_quotient, r.ns_per_call_decimal) == (5, 7)  # 75173 // 9999
    assert (r.time_sec, r.time_sec_remainder) == (0, 50_075_123)
    assert r.format_line("kmem bulk_quick_reuse") == (
        "time_bench: Type:kmem bulk_quick_reuse Per elem: 20 cycles(tsc) 5.007 ns (step:30) "
        "- (measurement period time:0.050075123 sec time_interval:50075123) "
        "- (invoke count:9999990 tsc_interval:200001234)"
    )


def test_zero_padding_of_decimal_and_remainder() -> None:
    r = rec(1_000_000, 4_000_000, 12_000_000_345, step=1)
    assert r.format_line("x").startswith("time_bench: Type:x Per elem: 4 cycles(tsc) 12000.000 ns")
    assert "measurement period time:12.000000345 sec time_interval:12000000345" in r.format_line(
        "x"
    )
    r = rec(1_000, 1_000, 1_000 * 7 + 5)  # 7.005 ns per call
    assert " 7.005 ns " in r.format_line("x")


def test_incorrect_roundup_decimal_with_1500_loops() -> None:
    # precision = 1500 // 1000 = 1, so the decimal is the raw remainder: 4200/1500 = 2.8 prints
    # as "2.1200" in the kernel
    r = rec(1500, 3000, 4200)
    assert (r.ns_per_call_quotient, r.ns_per_call_decimal) == (2, 1200)
    assert " 2.1200 ns " in r.format_line("t")
    r = rec(1500, 3000, 3001)  # true value 2.0007 -> "2.001"
    assert r.ns_text == "2.001"
    r = rec(1999, 3000, 1999 * 3 + 1998)  # remainder 1998, precision 1
    assert r.ns_text == "3.1998"
    r = rec(2000, 3000, 2000 * 3 + 1999)  # precision 2 -> 1999 // 2 = 999
    assert r.ns_text == "3.999"


def test_need_more_loops_and_32bit_limit() -> None:
    with pytest.raises(ValueError, match=re.escape("ERR: need more(>1000) loops(999) for timing")):
        rec(999, 1000, 1000)
    rec(1000, 1000, 1000)  # the boundary is accepted
    with pytest.raises(ValueError, match=re.escape("ERR: Invoke cnt(4294967296) too big overflow")):
        rec(2**32, 2**40, 2**40)
    r = rec(2**32 - 1, 2**40, 2**40)
    assert r.tsc_cycles == 2**40 // (2**32 - 1)
    assert time_bench_calc_stats(TimeBenchRecord(invoked_cnt=10)) is False


def test_zero_intervals_abort() -> None:
    with pytest.raises(ValueError, match="ZERO TSC time"):
        rec(1000, 0, 5)
    r = TimeBenchRecord(invoked_cnt=1000, tsc_start=0, tsc_stop=5000, start_ns=7, stop_ns=7)
    with pytest.raises(ValueError, match="ZERO wallclock time"):
        r.calc_stats()
    assert r.tsc_cycles == 5 and not r.stats_ok  # computed before the failure, as in C


def test_u64_wraparound_and_no_loop_flag() -> None:
    r = TimeBenchRecord(
        invoked_cnt=1000, tsc_start=2**64 - 10, tsc_stop=4990, start_ns=0, stop_ns=10_000
    )
    r.calc_stats()
    assert r.tsc_interval == 5000 and r.tsc_cycles == 5
    r = TimeBenchRecord(flags=TIME_BENCH_TSC, invoked_cnt=3, tsc_start=0, tsc_stop=77)
    r.calc_stats()  # no LOOP flag: no count check, cycles = whole interval, no wall clock
    assert (r.tsc_cycles, r.time_interval, r.stats_ok) == (77, 0, True)


@given(
    cnt=st.integers(1000, 2**32 - 1),
    tsc=st.integers(1, 2**50),
    ns=st.integers(1, 2**50),
)
def test_calc_stats_matches_exact_arithmetic(cnt: int, tsc: int, ns: int) -> None:
    r = rec(cnt, tsc, ns)
    assert r.tsc_cycles * cnt <= tsc < (r.tsc_cycles + 1) * cnt
    assert r.ns_per_call_quotient * cnt + (ns % cnt) == ns
    assert r.ns_per_call_decimal == (ns % cnt) // (cnt // 1000)
    assert r.time_sec * 10**9 + r.time_sec_remainder == ns
    line = r.format_line("p")
    assert f"{r.time_sec}.{r.time_sec_remainder:09d} sec" in line
    if cnt % 1000 == 0:  # then the decimal is the true 3-digit truncation
        assert r.ns_text == f"{ns // cnt}.{(ns * 1000 // cnt) % 1000:03d}"


# -- time_bench_loop ----------------------------------------------------------------------------
class FakeClock:
    """Every read advances time; records the order of reads."""

    def __init__(self) -> None:
        self.t = 0
        self.log: list[str] = []

    def _read(self, what: str, scale: int) -> int:
        self.t += 1000
        self.log.append(what)
        return self.t * scale

    def clock(self) -> TimeBenchClock:
        return TimeBenchClock(
            tsc_start=lambda: self._read("tsc_start", 4),
            tsc_stop=lambda: self._read("tsc_stop", 4),
            wallclock_ns=lambda: self._read("wall", 1),
        )


def test_time_bench_loop_prints_line_and_orders_clock_reads() -> None:
    fake = FakeClock()
    out: list[str] = []

    def bench(r: TimeBenchRecord) -> bool:
        r.start()
        fake.t += 3_000_000  # the "loop"
        r.stop(r.loops * r.step)
        return True

    r = time_bench_loop(1000, 3, "demo", bench, printer=out.append, clock=fake.clock())
    assert r is not None and r.stats_ok
    assert fake.log == ["wall", "tsc_start", "tsc_stop", "wall"]
    # tsc: 4 * 3_001_000 ticks, wall: 3_003_000 ns, over 3000 elements
    assert out == [r.format_line("demo")]
    assert r.tsc_cycles == 4 * 3_001_000 // 3000 and r.ns_text == "1001.000"
    assert r.txt == "demo"


def test_time_bench_loop_abort_warn_and_error_paths() -> None:
    out: list[str] = []
    assert time_bench_loop(10, 1, "x", lambda r: False, printer=out.append) is None
    assert out == ["time_bench: ABORT: function being timed failed"]

    fake = FakeClock()
    out.clear()

    def short(r: TimeBenchRecord) -> bool:
        r.start()
        r.stop(500)
        return True

    r = time_bench_loop(2000, 1, "short", short, printer=out.append, clock=fake.clock())
    assert r is not None and not r.stats_ok
    assert out[0] == "time_bench: WARNING: Invoke count(500) smaller than loops(2000)"
    assert out[1] == "time_bench: ERR: need more(>1000) loops(500) for timing"
    assert out[2].startswith("time_bench: Type:short Per elem: 0 cycles(tsc) 0.000 ns (step:1)")


def test_measure_tsc_khz_deterministic() -> None:
    t = [0]

    def clock_ns() -> int:
        t[0] += 1000
        return t[0]

    khz = measure_tsc_khz(lambda: t[0] * 5 // 2 + 77, duration_ns=1_000_000, clock_ns=clock_ns)
    assert khz == 2_500_000
    with pytest.raises(ValueError):
        measure_tsc_khz(lambda: 0, duration_ns=0)


def test_measure_tsc_khz_real_clock() -> None:
    import time

    khz = measure_tsc_khz(lambda: 3 * time.perf_counter_ns(), duration_ns=20_000_000)
    assert abs(khz - 3_000_000) < 30_000  # within 1 %


# -- seed data and the side-by-side report -------------------------------------------------------
def test_seed_improved_is_computed_on_cycles() -> None:
    for b, a, pct in zip(seed.SEED_BEFORE, seed.SEED_AFTER, seed.SEED_IMPROVED_PCT, strict=True):
        assert f"{seed.seed_improved(b.cycles, a.cycles):.1f}" == f"{pct:.1f}"
    pairs = zip(seed.SEED_BEFORE, seed.SEED_AFTER, strict=True)
    on_ns = [f"{seed.seed_improved(b.ns, a.ns):.1f}" for b, a in pairs]
    assert on_ns != [f"{p:.1f}" for p in seed.SEED_IMPROVED_PCT]
    assert on_ns[0] == "-13.4"


def test_seed_tables_are_consistent() -> None:
    assert [p.bulk for p in seed.SEED_BEFORE] == list(seed.BULK_SIZES)
    assert [p.bulk for p in seed.SEED_AFTER] == list(seed.BULK_SIZES)
    for table in (seed.PATCH2, seed.PATCH3):
        assert all(len(v) == len(seed.BULK_SIZES) for v in table.values())
    for key in ("fallback", "bulk", "before"):
        assert len(seed.MERGED_6_7[key]) == len(seed.BULK_SIZES)
    # cycles ~= 4 x ns on the 4.0 GHz machine (cycles truncated, so never above 4 x ns)
    for p in seed.SEED_BEFORE + seed.SEED_AFTER:
        assert 0 <= 4 * p.ns - p.cycles < 1.1


def test_side_by_side_reproduces_seed_table() -> None:
    lines = report.side_by_side(seed.SEED_BEFORE, seed.SEED_AFTER)
    collapsed = "\n".join(" ".join(line.split()) for line in lines) + "\n"
    assert collapsed == seed.SEED_TABLE_TEXT
    assert (
        lines[1] == "  1 -  42 cycles(tsc) 10.520 ns -  47 cycles(tsc) 11.931 ns - improved -11.9%"
    )
    # columns line up: the second " - " sits at the same offset on every row and the header
    assert len({line.index(" - ", 6) for line in lines}) == 1


def test_side_by_side_from_records_and_basis() -> None:
    before = [rec(9_999_990, 400_000_000, 100_000_000, step=30)]
    after = [{"bulk": 30, "cycles": 20, "ns": 5.0}]
    (hdr, row) = report.side_by_side(before, after, before_label="A", after_label="B")
    assert hdr.startswith("bulk- A ") and hdr.endswith(" - B")
    assert row == " 30 -  40 cycles(tsc) 10.000 ns -  20 cycles(tsc)  5.000 ns - improved 50.0%"
    row_ns = report.side_by_side(before, [{"bulk": 30, "cycles": 20, "ns": 7.5}], basis="ns")[1]
    assert row_ns.endswith("improved 25.0%")  # 10.0000001 -> 7.5
    with pytest.raises(ValueError):
        report.side_by_side(before, [{"bulk": 31, "cycles": 1, "ns": 1.0}])


def test_strategy_table_and_json_roundtrip(tmp_path) -> None:
    results = {
        "detached": [
            rec(10_000, 40_000, 25_000, step=16),
            rec(10_000, 40_000, 35_000, step=16),
            rec(10_000, 40_000, 30_000, step=16),
        ],
        "fallback": [
            {"bulk": 16, "cycles": 10, "ns": 11.5},
            {"bulk": 3000, "cycles": 1, "ns": 0.25},
        ],
    }
    text = report.render_strategy_table(results)
    row16 = next(line for line in text.splitlines() if re.match(r"\W*16\b", line))
    assert "17.424" in row16 and "5.015" in row16  # seed before/after for bulk 16
    assert "3.000" in row16 and "11.500" in row16  # median of 2.5/3.5/3.0, and the dict value
    assert any(re.match(r"\W*3000\b", line) for line in text.splitlines())

    path = tmp_path / "r.json"
    report.write_json(path, results, meta={"machine": "test"})
    payload = report.read_json(path)
    assert payload["meta"] == {"machine": "test"}
    first = payload["results"]["detached"][0]
    assert first["ns_per_elem"] == 2.5 and first["step"] == 16 and first["tsc_cycles"] == 4
    assert payload["results"]["fallback"][1]["ns_per_elem"] == 0.25
    json.loads(path.read_text())  # strict JSON (no NaN)
    report.write_json(tmp_path / "list.json", seed.SEED_BEFORE)
    assert report.read_json(tmp_path / "list.json")["results"][0] == {
        "bulk": 1,
        "cycles": 42,
        "ns": 10.52,
        "ns_per_elem": 10.52,
    }
    (tmp_path / "bad.json").write_text('{"format": "other"}')
    with pytest.raises(ValueError):
        report.read_json(tmp_path / "bad.json")


def test_plot_writes_png(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    results = {"bulk": [{"bulk": b, "cycles": 1, "ns": 100.0 / b} for b in seed.BULK_SIZES]}
    path = tmp_path / "p.png"
    report.plot(path, results, title="t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 10_000


def test_loop_flag_constant() -> None:
    assert TimeBenchRecord().flags & TIME_BENCH_LOOP
