"""``pyslub bench test03 --probe``: the seed's perf probes on __slab_free, per strategy."""

from __future__ import annotations

import json

import pytest

from pyslub.bench import probes, suite
from pyslub.cli import main


@pytest.mark.parametrize("driver", ["native", "python"])
def test_probes_count_each_slab_free_call_exactly(driver) -> None:
    # test03 in the seed's geometry (224 B -> 256, 32 objects per slab), bulk 64, 10 loops.
    # N-match 1: the 64 objects come from two slabs, each whole; the per-object frees
    # (bulk_fallback, bulk-v2) call __slab_free once per object that misses the cpu slab,
    # the detached freelist once per slab: 11 calls of 32 objects (the first frozen the slab
    # onto the cpu partial list, later frees land in frozen slabs).  Worse-case: one object
    # per call for every strategy (no two consecutive objects share a slab).
    cfg = suite.BenchConfig(strategies=["bulk-v2", "lookahead"], nr_cpus=8, prefill=4096)
    got = probes.run_probes(cfg, driver, ["bulk-v2", "lookahead"], [0, 1], loops=10)
    assert list(got) == [0, 1] and list(got[1]) == ["bulk_fallback", "bulk-v2", "lookahead"]
    for name in ("bulk_fallback", "bulk-v2"):
        s = got[1][name]
        assert (s.calls, s.objects, s.freed, s.per_call) == (352, 352, 640, {1: 352})
        assert s.cases == {"cpu_partial": 11, "frozen": 341} and s.frozen_calls == 341
    s = got[1]["lookahead"]
    assert (s.calls, s.objects, s.per_call, s.cases) == (11, 352, {32: 11}, {"cpu_partial": 11})
    assert s.mean == 32.0 and s.calls_per_1000 == pytest.approx(1000 * 11 / 640)
    for s in got[0].values():
        assert (s.calls, s.objects, s.per_call) == (600, 600, {1: 600})
        assert s.cases == {"cpu_partial": 150, "partial": 420, "frozen": 30}


def test_bench_test03_probe_prints_the_distribution(capsys, tmp_path) -> None:
    out = tmp_path / "p.json"
    rc = main(["bench", "test03", "--probe", "--probe-loops", "5", "--loops", "1024",
               "--rounds", "1", "--nmatch", "1", "--json", str(out)])
    lines = capsys.readouterr().out.splitlines()
    assert rc == 0
    heads = [i for i, ln in enumerate(lines) if ln.startswith("== probes on __slab_free")]
    assert len(heads) == 2                                  # worse-case, N-match 1
    assert "N-match 1" in lines[heads[1]]
    table = next(i for i in range(heads[1], len(lines)) if lines[i].startswith("strategy"))
    assert lines[table].split() == ["strategy", "1", "2", "3", "4", "5-8", "9-16", "17-32",
                                    "33-64", "65+", "mean", "/1k"]
    rows = {ln.split()[0]: ln.split() for ln in lines[table + 1:table + 4]}
    assert rows["lookahead-fwd"][7] == "100" and rows["lookahead-fwd"][10] == "32.00"
    assert rows["bulk-v2"][1] == "100" and rows["bulk-v2"][10] == "1.00"
    assert "measurements" in lines[-2] and lines[-1].startswith("wrote ")
    assert max(heads) < next(i for i, ln in enumerate(lines) if ln.startswith("== summary"))
    doc = json.loads(out.read_text())
    pr = doc["probes"]
    assert pr["loops"] == 5 and pr["bulk"] == 64
    la = pr["blocks"][0]["nmatch"]["1"]["lookahead-fwd"]
    assert la["per_call"] == {"32": la["calls"]} and la["mean"] == 32.0


def test_probe_needs_test03(capsys) -> None:
    with pytest.raises(SystemExit) as err:
        main(["bench", "test01", "--probe"])
    assert err.value.code == 2
    assert "--probe goes with test03" in capsys.readouterr().err
