"""Benchmark drivers end to end: test01/02/03 on tiny loops with both drivers, the native object
hash against the Python one, the CLI (JSON + PNG), and the uncompiled build."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

import pyslub
from pyslub import SLAB_HWCACHE_ALIGN, Memory
from pyslub.bench import _native, report, suite
from pyslub.bench.objhash import MODULO_MATCH_DISABLED, ObjHash, struct_page_ptr
from pyslub.bench.seed import BULK_SIZES
from pyslub.cli import main

LOOPS = 2000          # calc_stats needs invoked_cnt >= 1000 at every bulk size
LINE = re.compile(
    r"^time_bench: Type:(?P<txt>.+) Per elem: \d+ cycles\(tsc\) \d+\.\d{3,} ns "
    r"\(step:(?P<step>\d+)\) - \(measurement period time:\d+\.\d{9} sec time_interval:\d+\) "
    r"- \(invoke count:(?P<cnt>\d+) tsc_interval:\d+\)$")


def run(test: str, driver: str, **kw) -> tuple[list[suite.Measurement], list[str], suite.Runner]:
    config = suite.BenchConfig(loops=kw.pop("loops", LOOPS), **kw)
    lines: list[str] = []
    runner = suite.Runner(config, driver, printer=lines.append)
    ms = runner.run(suite.plan(test, config, driver))
    return ms, lines, runner


def check_common(ms: list[suite.Measurement], lines: list[str], runner: suite.Runner) -> None:
    assert ms and all(m.ok for m in ms)
    bench_lines = [ln for ln in lines if ln.startswith("time_bench:")]
    assert len(bench_lines) == len(ms)
    for m, ln in zip(ms, bench_lines, strict=True):
        match = LINE.match(ln)
        assert match, ln
        rec = m.record
        assert rec.stats_ok
        assert match["txt"] == m.spec.txt and int(match["step"]) == m.spec.step
        assert int(match["cnt"]) == rec.invoked_cnt
        if m.spec.step:
            assert rec.invoked_cnt == rec.loops * m.spec.step      # counter += bulk
        else:
            assert rec.invoked_cnt == rec.loops
        assert all(v >= 0 for v in m.stats.values())
    assert not [ln for ln in lines if "not destroyed" in ln or "ABORT" in ln]
    assert runner.mem.caches == {}                                  # every cache destroyed


# -- plans --------------------------------------------------------------------------------------
def test_plan_test01_matches_the_module() -> None:
    cfg = suite.BenchConfig(loops=10_000_000, strategies=("bulk-v2", "lookahead-fwd"))
    specs = suite.plan("test01", cfg, "native")
    assert [s.kind for s in specs[:4]] == [
        "for_loop", "fastpath_reuse", "bulk_fallback", "bulk_quick_reuse"]
    assert specs[0].loops == 100_000_000 and specs[1].loops == 10_000_000
    first = [s for s in specs if s.pass_no == 0 and s.kind == "bulk_quick_reuse"]
    assert [s.step for s in first] == list(BULK_SIZES)
    assert [s.loops for s in first] == [10_000_000 // b for b in BULK_SIZES]
    second = [s for s in specs if s.pass_no == 1]                   # fresh caches: bulk only
    assert {s.kind for s in second} == {"bulk_quick_reuse"}
    assert {s.strategy for s in second} == {"lookahead-fwd"}
    kept = suite.plan("test01", suite.BenchConfig(strategies=("bulk-v2", "swap"),
                                                  keep_cache=True), "native")
    assert {s.kind for s in kept if s.pass_no == 1} == {
        "fastpath_reuse", "bulk_fallback", "bulk_quick_reuse"}


def test_plan_test02_and_test03() -> None:
    cfg = suite.BenchConfig(loops=100_000, strategies=("lookahead",))
    (t2,) = suite.plan("test02", cfg, "native")
    assert (t2.loops, t2.step, t2.txt) == (100_000, 16, "kmem_cache_(free+alloc)_bulk")
    t3 = suite.plan("test03", cfg, "native")
    assert [s.txt for s in t3[:4]] == ["worse-case-bulk", "worse-case-fallback",
                                      "N-page-match-bulk", "N-page-match-fallback"]
    assert [s.nmatch for s in t3[::2]] == [0, 1, 2, 3, 4, 5, 6, 10, 65]
    assert all(s.loops == 100_000 // 64 and s.step == 64 for s in t3)
    assert {s.strategy for s in t3[1::2]} == {None}


def test_defaults_are_the_seed_geometry() -> None:
    cfg = suite.BenchConfig()
    for test in suite.TESTS:
        g = cfg.geometry(test)
        assert (g.size, g.order, g.objects, g.min_partial, g.cpu_partial) == (256, 1, 32, 5, 13)


# -- end to end, both drivers ------------------------------------------------------------------
@pytest.mark.parametrize("driver", ["native", "python"])
def test_test01_end_to_end(driver: str) -> None:
    ms, lines, runner = run("test01", driver, strategies=("bulk-v2", "lookahead-fwd"))
    check_common(ms, lines, runner)
    kinds = [m.spec.kind for m in ms]
    assert kinds.count("bulk_quick_reuse") == 2 * len(BULK_SIZES)
    assert kinds.count("bulk_fallback") == len(BULK_SIZES)
    for m in ms:
        per = m.stats_per_object
        if m.spec.kind in ("fastpath_reuse", "bulk_fallback"):
            # one kmem_cache_alloc and one kmem_cache_free per object
            assert per["alloc_fastpath"] + per["alloc_slowpath"] == pytest.approx(1.0)
            assert per["free_fastpath"] + per["free_slowpath"] == pytest.approx(1.0)
        if m.spec.kind == "bulk_quick_reuse" and m.spec.step <= 32:
            # a fresh cache: the bulk fits in the cpu slab, nothing reaches __slab_free
            assert per["free_slowpath"] == 0
    v2 = {m.spec.step: m for m in ms if m.spec.strategy == "bulk-v2"}
    fwd = {m.spec.step: m for m in ms if m.spec.strategy == "lookahead-fwd"}
    # the seed's point, in counters: beyond one slab, bulk-v2 pays __slab_free per foreign
    # object, the detached freelist once per slab run
    assert v2[48].stats_per_object["free_slowpath"] > 0.5
    assert fwd[48].stats_per_object["free_slowpath"] < 0.1


@pytest.mark.parametrize("driver", ["native", "python"])
def test_test02_end_to_end(driver: str) -> None:
    ms, lines, runner = run("test02", driver, loops=100, bulksz=48,
                            strategies=("fallback", "swap"))
    check_common(ms, lines, runner)
    assert [m.record.invoked_cnt for m in ms] == [4800, 4800]       # loops not divided
    assert "slab_bulk_test02: Bench bulk size:48" in lines


@pytest.mark.parametrize("driver", ["native", "python"])
def test_test03_end_to_end(driver: str) -> None:
    ms, lines, runner = run("test03", driver, strategies=("lookahead-fwd",), nmatch=(1, 65))
    check_common(ms, lines, runner)
    assert [m.spec.txt for m in ms] == ["worse-case-bulk", "worse-case-fallback",
                                        "N-page-match-bulk", "N-page-match-fallback"] * 1 + [
                                        "N-page-match-bulk", "N-page-match-fallback"]
    worst = ms[0].stats_per_object
    best = ms[2].stats_per_object                       # N=1: every object of one page
    assert worst["free_slowpath"] > 0.5                 # scattered: ~one __slab_free each
    assert best["free_slowpath"] < worst["free_slowpath"]


def test_keep_cache_shares_one_cache_per_pass() -> None:
    ms, lines, runner = run("test01", "native", strategies=("bulk-v2", "lookahead"),
                            keep_cache=True, bulk_sizes=(16, 64))
    check_common(ms, lines, runner)
    assert [m.spec.pass_no for m in ms] == [0] * 6 + [1] * 5
    # a kept cache still has its slabs: later measurements allocate fewer new slabs
    fb = [m for m in ms if m.spec.kind == "fastpath_reuse"]
    assert fb[0].stats["alloc_slab"] == 1 and fb[1].stats["alloc_slab"] == 1


def test_fragment_reproduces_the_seeds_jump_at_16() -> None:
    # slabs left with 12 free objects (other users of a merged cache): bulk 16 no longer fits
    # the cpu slab, so bulk-v2 pays __slab_free for most objects; the detached freelist does not
    ms, lines, runner = run("test01", "native", strategies=("bulk-v2", "lookahead-fwd"),
                            bulk_sizes=(8, 16), fragment=8, fragment_free=12)
    check_common(ms, lines, runner)
    per = {(m.spec.strategy, m.spec.step): m.stats_per_object["free_slowpath"]
           for m in ms if m.spec.kind == "bulk_quick_reuse"}
    assert per[("bulk-v2", 8)] == 0
    assert per[("bulk-v2", 16)] > 0.5
    assert per[("lookahead-fwd", 16)] < 0.1


def test_32bit_guard_aborts_like_the_kernel() -> None:
    cfg = suite.BenchConfig(loops=70_000, bulksz=32768, strategies=("lookahead",))
    lines: list[str] = []
    runner = suite.Runner(cfg, "native", printer=lines.append)
    (m,) = runner.run(suite.plan("test02", cfg, "native"))
    assert m.record is None and not m.ok
    assert "slab_bulk_test02: Loop cnt too big will overflow 32-bit" in lines
    assert "time_bench: ABORT: function being timed failed" in lines


# -- the object hash inside the objects vs the Python ObjHash ------------------------------------
def test_native_objhash_equals_python_objhash() -> None:
    mem = Memory(size=64 << 20, nr_cpus=8)
    cache = mem.create_cache("slab_bulk_test03", 224, flags=SLAB_HWCACHE_ALIGN)
    native = _native.NativeObjHash(cache)
    py = ObjHash(lambda a: struct_page_ptr(cache.check_addr(int(a))))
    for _ in range(4096):
        obj = cache.alloc()
        assert native.add_one(obj) and py.add_one(obj)
        assert native.page_of(obj) == struct_page_ptr(cache.check_addr(obj))
    assert native.list_len() == py.list_len()
    assert sum(native.list_len()) == native.objhash_cnt == 4096
    # single extractions, as try_crash's "case hitting look-ahead"
    a = native.extract(None, False)
    assert a == py.extract(None, False)
    taken = [a]
    for last, no_match in ((a, False), (a, True), (a, False), (a, True)):
        taken.append(native.extract(last, no_match))
        assert taken[-1] == py.extract(last, no_match)
    assert native.page_of(taken[1]) == native.page_of(a) != native.page_of(taken[2])
    for obj in taken:
        cache.free(obj)
    # test03's loop body: add a fresh bulk, refill the array from the hash
    for modulo in (MODULO_MATCH_DISABLED, 1, 2, 3, 10, 65):
        for _ in range(3):
            objs = cache.alloc_many(64)
            lst = [int(x) for x in objs]
            for o in lst:
                native.add_one(o)
                py.add_one(o)
            assert native.extract_bulk(objs, 64, modulo)
            assert py.extract_bulk(lst, 64, modulo)
            assert [int(x) for x in objs] == lst
            cache.free_bulk(objs, None, "lookahead")
    assert native.list_len() == py.list_len()
    assert (native.too_many, native.skipped_many, native.same_page) == (0, 0, 0)
    left = native.drain()
    assert sorted(left) == sorted(py.drain())
    for obj in left:
        cache.free(obj)
    mem.destroy_cache(cache)


def test_native_objhash_refuses_small_objects() -> None:
    mem = Memory(size=16 << 20, nr_cpus=2)
    with pytest.raises(ValueError, match="24 bytes"):
        _native.NativeObjHash(mem.create_cache("tiny", 16))


def test_native_module_is_compiled_with_the_core() -> None:
    assert _native.__file__.endswith(".py") != pyslub.COMPILED
    t0 = _native.read_tsc()
    assert _native.read_tsc_stop() >= t0
    assert isinstance(_native.read_wallclock_ns(), int)


# -- CLI ---------------------------------------------------------------------------------------
def test_cli_writes_json_and_png(tmp_path, capsys) -> None:
    js, png = tmp_path / "bench.json", tmp_path / "bench.png"
    rc = main(["bench", "test01", "--loops", str(LOOPS), "--driver", "both",
               "--strategies", "bulk-v2,lookahead-fwd,swap", "--json", str(js),
               "--plot", str(png), "--quiet"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "size 256, order 1, 32 objs/slab, min_partial 5, cpu_partial 13" in text
    assert re.search(r"TSC: \d+ kHz\s+measured", text)       # wrapped at 80 columns
    assert "bulk- bulk-v2" in text and "improved" in text
    assert "time_bench:" not in text                                 # --quiet
    payload = report.read_json(js)
    recs = payload["results"]
    assert payload["meta"]["geometry"]["test01"]["objects"] == 32
    assert {r["driver"] for r in recs} == {"native", "python"}
    assert {r["strategy"] for r in recs if r["kind"] == "bulk_quick_reuse"} == {
        "bulk-v2", "lookahead-fwd", "swap"}
    assert all(r["ok"] and r["ns_per_elem"] > 0 for r in recs)
    r48 = next(r for r in recs if r["strategy"] == "bulk-v2" and r["step"] == 48)
    assert r48["stats_per_object"]["free_slowpath"] > 0.5
    json.dumps(payload)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_all_tests_prints_kernel_lines(capsys) -> None:
    rc = main(["bench", "all", "--loops", str(LOOPS), "--driver", "native", "--strategies",
               "lookahead", "--before", "lookahead", "--after", "lookahead",
               "--bulk-sizes", "8,64", "--nmatch", "2", "--verbose"])
    assert rc == 0
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if ln.startswith("time_bench:")]
    assert lines and all(LINE.match(ln) for ln in lines)
    for txt in ("for_loop", "kmem fastpath reuse", "kmem bulk_fallback",
                "kmem bulk_quick_reuse", "kmem_cache_(free+alloc)_bulk", "worse-case-bulk",
                "worse-case-fallback", "N-page-match-bulk", "N-page-match-fallback"):
        assert f"Type:{txt} " in out
    assert "slab_bulk_test03: Every N:2 page will be a match" in out


def test_cli_rejects_bad_arguments() -> None:
    with pytest.raises(SystemExit):
        main(["bench", "--strategies", "nope"])
    with pytest.raises(SystemExit):
        main(["bench", "--loops", "0"])


@pytest.mark.skipif(not pyslub.COMPILED or shutil.which("valgrind") is None,
                    reason="needs valgrind and the compiled core")
def test_instruction_counts_under_callgrind() -> None:
    from pyslub.bench.instructions import count_instructions

    rows = count_instructions("test01", loops=LOOPS, bulk_sizes=[1, 48],
                              strategies=["bulk-v2", "lookahead-fwd"])
    assert [(r["kind"], r["step"]) for r in rows[:2]] == [("for_loop", 0), ("fastpath_reuse", 0)]
    ir = {(r["strategy"], r["step"]): r["ir_per_object"] for r in rows if r["strategy"]}
    assert all(v and v > 10 for v in ir.values())
    # deterministic and the seed's point: beyond one slab, per-object __slab_free costs more
    assert ir[("bulk-v2", 48)] > 1.5 * ir[("lookahead-fwd", 48)]


# -- the same, uncompiled ----------------------------------------------------------------------
def test_uncompiled_cli_runs(tmp_path) -> None:
    js = tmp_path / "pure.json"
    code = ("import sys, pyslub; from pyslub.cli import main; assert not pyslub.COMPILED; "
            "sys.exit(main(sys.argv[1:]))")
    env = dict(os.environ, PYSLUB_PURE="1")
    proc = subprocess.run(
        [sys.executable, "-c", code, "bench", "all", "--loops", "1100", "--driver", "both",
         "--strategies", "bulk-v2,lookahead-fwd", "--bulk-sizes", "1,48", "--bulksz", "16",
         "--nmatch", "1", "--prefill", "512", "--json", str(js), "--quiet"],
        env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "UNCOMPILED" in proc.stdout
    recs = report.read_json(js)["results"]
    assert recs and all(r["ok"] for r in recs)
    assert {r["test"] for r in recs} == {"test01", "test02", "test03"}
    assert not np.isnan([r["ns_per_elem"] for r in recs]).any()
