"""``pyslub bench``: the default screen's structure (on a tiny configuration, not a 30 s run),
the JSON schema, arguments refused before the run, the peers table and its skip lines."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

import pyslub
from pyslub.bench import peers, report
from pyslub.bench.seed import BULK_SIZES
from pyslub.cli import TOOLS, build_parser, main

TINY = ["--loops", "1106", "--rounds", "2"]      # 1106: the smallest valid test01 loops


def run_cli(capsys, *argv: str) -> tuple[int, list[str]]:
    rc = main(["bench", *argv])
    return rc, capsys.readouterr().out.splitlines()


def rows_of(lines: list[str], start: int) -> list[int]:
    """Bulk sizes of the side-by-side table that follows line ``start``."""
    out = []
    for ln in lines[start + 1:]:
        m = re.match(r"^\s*(\d+) - ", ln)
        if not m:
            break
        out.append(int(m[1]))
    return out


# -- the default screen ------------------------------------------------------------------------
def test_default_output_structure(capsys) -> None:
    rc, lines = run_cli(capsys, *TINY)
    assert rc == 0
    assert 30 <= len(lines) <= 60
    # fits 80 columns (so also 100); uncompiled, lookahead-fwd's pure-Python struct emulation
    # makes it ~10x slower than bulk-v2: 4-digit negative "improved" cells can take 84
    assert max(map(len, lines)) <= (80 if pyslub.COMPILED else 90)
    assert lines[0].startswith(f"pyslub {pyslub.__version__} bench test01: ")
    machine = next(i for i, ln in enumerate(lines) if ln.startswith("machine: "))
    assert machine <= 2
    assert re.search(r"TSC: \d+ kHz\s+measured", lines[machine] + " " + lines[machine + 1])
    geo = next(i for i, ln in enumerate(lines) if ln.startswith("geometry: "))
    assert lines[geo].startswith("geometry: object 232 B, SLAB_HWCACHE_ALIGN, nr_cpus 8")
    assert lines[geo + 1] == "  size 256, order 1, 32 objs/slab, min_partial 5, cpu_partial 13"
    assert not any(ln.startswith("time_bench:") for ln in lines)
    sections = [i for i, ln in enumerate(lines) if ln.startswith("== ")]
    titles = [lines[i] for i in sections]
    assert titles[0].startswith("== seed-faithful cache (--fragment 8:12")
    assert titles[1].startswith("== fresh cache")
    assert titles[2].startswith("== summary: lookahead-fwd vs bulk-v2, median of 2 rounds")
    assert len(titles) == 3                                # the summary is the last section
    for i in sections[:2]:
        head = next(j for j in range(i, len(lines)) if lines[j].startswith("bulk- "))
        assert lines[head].startswith("bulk- bulk-v2 ")
        assert lines[head].split(" - ")[1:] == ["lookahead-fwd", "improved", "seed"] or \
            [c.strip() for c in lines[head].split(" - ")[1:]] == [
                "lookahead-fwd", "improved", "seed"]
        assert rows_of(lines, head) == list(BULK_SIZES)
        # every row: median [q1-q3] twice, then improved % [q1..q3], then the seed's %
        for ln in lines[head + 1:head + 1 + len(BULK_SIZES)]:
            assert re.fullmatch(r"\s*\d+ - \s*[\d.]+ \[[\d.]+-[\d.]+\]\s* - \s*[\d.]+ "
                                r"\[[\d.]+-[\d.]+\]\s* - \s*-?[\d.]+% \[-?\d+\.\.-?\d+\]\s* "
                                r"- \s*-?[\d.]+%", ln), ln
    summary = lines[sections[2]:]
    assert "seed-faithful (--fragment 8:12):" in summary and "fresh cache:" in summary
    assert any(ln.startswith("  kmem fastpath reuse (alloc 1 + free 1): ") for ln in summary)
    assert any(ln.startswith("noise: ") for ln in summary)
    assert re.match(r"\d+ measurements, [\d.]+ s; --verbose", summary[-2] + summary[-1]) or \
        re.match(r"\d+ measurements, [\d.]+ s;", summary[-1])
    verdicts = [ln for ln in summary if re.match(r"  (lookahead-fwd (helps|regresses) at|no "
                                                  r"clear difference at) bulk ", ln)]
    assert 2 <= len(verdicts) <= 6                         # at most 3 per cache state


def test_hardening_runs_the_caches_hardened_and_says_so(capsys, monkeypatch) -> None:
    from pyslub.bench import suite

    made = []
    real = suite.Memory

    def spy(*a, **kw):
        made.append(kw)
        return real(*a, **kw)

    monkeypatch.setattr(suite, "Memory", spy)
    rc, lines = run_cli(capsys, *TINY, "--hardening", "hardened,middle")
    assert rc == 0
    assert "  hardening: CONFIG_SLAB_FREELIST_HARDENED, free pointer mid-object" in lines
    assert made and all(kw["freelist_hardened"] and kw["freeptr"] == "middle"
                        and not kw["freelist_random"] for kw in made)
    rc, lines = run_cli(capsys, *TINY)
    assert not any("hardening:" in ln for ln in lines)


def test_verbose_adds_time_bench_lines_and_counters(capsys) -> None:
    rc, lines = run_cli(capsys, "--loops", "1106", "--rounds", "1", "--fragment", "0",
                        "--verbose")
    assert rc == 0
    bench = [ln for ln in lines if ln.startswith("time_bench: Type:")]
    assert len(bench) == 2 + 3 * len(BULK_SIZES)      # for_loop, fastpath, (fallback + 2) x 14
    assert any(ln.startswith("SLUB counters per object, bulk-v2") for ln in lines)
    assert [ln for ln in lines if ln.startswith("== ")][-1].startswith("== summary")


def test_all_strategies_table_and_both_drivers(capsys) -> None:
    rc, lines = run_cli(capsys, "--loops", "1106", "--rounds", "1", "--fragment", "0",
                        "--strategies", "all", "--driver", "both", "--bulk-sizes", "8,48")
    assert rc == 0
    heads = [ln for ln in lines if ln.split()[:2] == ["bulk", "seed-bef"]]
    assert len(heads) == 2                                 # one table per driver
    assert heads[0].split() == ["bulk", "seed-bef", "seed-aft", "bulk_fallback",
                                *pyslub.FREE_BULK_STRATEGIES]
    assert max(map(len, lines)) <= 100


def test_json_schema(tmp_path, capsys) -> None:
    path = tmp_path / "out.json"
    rc, lines = run_cli(capsys, *TINY, "--json", str(path))
    assert rc == 0 and lines[-1] == f"wrote {path}"
    payload = report.read_json(path)
    assert set(payload) == {"format", "meta", "results", "summary", "peers"}
    meta = payload["meta"]
    for key in ("cpu", "tsc_khz", "python", "compiled", "rounds", "states", "geometry",
                "loops", "argv"):
        assert key in meta, key
    assert {"cpu", "tsc_khz", "python", "compiler", "libc", "numpy"} <= set(meta["machine"])
    assert meta["states"] == {"seed": {"fragment": 8, "fragment_free": 12, "keep_cache": False},
                              "fresh": {"fragment": 0, "fragment_free": None,
                                        "keep_cache": False}}
    recs = payload["results"]
    assert {r["state"] for r in recs} == {"seed", "fresh"}
    assert all(r["line"].startswith("time_bench: Type:") for r in recs)   # the raw lines
    assert all(r["ok"] and r["ns_per_elem"] > 0 for r in recs)
    blocks = payload["summary"]["test01"]["blocks"]
    assert [(b["state"], b["driver"]) for b in blocks] == [("seed", "native"),
                                                            ("fresh", "native")]
    row = blocks[0]["rows"][0]
    assert row["bulk"] == 1 and row["seed_improved_pct"] == -11.9
    assert set(row["before_ns"]) == {"median", "q1", "q3", "min", "max", "n"}
    assert row["before_ns"]["n"] == 2
    assert {v["kind"] for b in blocks for v in b["verdicts"]} <= {"helps", "regresses", "even"}
    assert payload["peers"] is None
    json.dumps(payload, allow_nan=False)


# -- refused before the run (exit 2, nothing measured) ---------------------------------------
@pytest.mark.parametrize("argv, message", [
    (["--json", "/nonexistent-dir/x.json"], "does not exist"),
    (["--plot", "/nonexistent-dir/x.png"], "does not exist"),
    (["--plot", "/tmp"], "is a directory"),
    (["--plot", "plot.txt"], "must end in .png"),
    (["--loops", "999"], "below time_bench's minimum"),
    (["--loops", "1000"], "use --loops 1106 or more"),
    (["test03", "--loops", "1000"], "use --loops 1024 or more"),
    (["--strategies", "nope"], "unknown strategy nope"),
    (["--fragment", "x"], "expected SLABS[:FREE]"),
    (["test02", "--peers"], "--peers goes with test01"),
    (["--hardening", "hardened,armoured"], "unknown hardening armoured"),
])
def test_bad_arguments_exit_2_before_running(capsys, argv, message) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["bench", *argv])
    assert exc.value.code == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert captured.out == ""                               # no header: nothing ran


def test_version_help_and_python_m() -> None:
    proc = subprocess.run([sys.executable, "-m", "pyslub", "--version"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0
    assert proc.stdout.startswith(f"pyslub {pyslub.__version__} (")
    proc = subprocess.run([sys.executable, "-m", "pyslub", "bench", "--help"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    assert "(default: native)" in proc.stdout and "examples:" in proc.stdout
    assert "['" not in proc.stdout and "None)" not in proc.stdout   # no raw Python reprs


def test_subcommands_register_themselves() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert list(sub.choices) == ["bench", "slabinfo", "show", "replay"]
    assert len(TOOLS) == 4
    args = parser.parse_args(["bench", "peers"])
    assert args.func.__module__ == "pyslub.bench.command" and args.test == "peers"
    for name, module in (("slabinfo", "slabinfo"), ("replay", "replay")):
        args = parser.parse_args([name, "--help"][:1] + (["x.trace"] if name == "replay" else []))
        assert args.func.__module__ == f"pyslub.tools.{module}"


# -- peers ---------------------------------------------------------------------------------------
PEERS_TINY = ["peers", "--loops", "1106", "--rounds", "1", "--bulk-sizes", "1,16",
              "--no-callgrind"]


def test_peers_table_has_a_column_per_peer_found(capsys) -> None:
    rc, lines = run_cli(capsys, *PEERS_TINY)
    assert rc == 0
    found = next((ln for ln in lines if ln.startswith("found: ")), "")
    names = [a.name for a in peers.C_ALLOCATORS if f"{a.name} " in found]
    skipped = [a.name for a in peers.C_ALLOCATORS
               if any(ln.startswith(f"{a.name}: skipped") for ln in lines)]
    if any("C allocators and C limits: skipped" in ln for ln in lines):
        names, skipped = [], ["glibc", "jemalloc", "mimalloc"]
    assert sorted(names + skipped) == sorted(a.name for a in peers.C_ALLOCATORS)
    head = next(ln for ln in lines if ln.startswith("bulk ") and "native" in ln).split()
    c_limits = ["stack", "freelist"] if names else []
    assert head == ["bulk", "native", *names, *c_limits, "python", "list", "numpy"]
    ratios = next(i for i, ln in enumerate(lines) if ln.startswith("time / pyslub's time"))
    assert lines[ratios + 1].split() == ["bulk", *names, *c_limits, "list", "numpy"]
    assert [ln.split()[0] for ln in lines[ratios + 2:ratios + 4]] == ["1", "16"]
    assert "instructions: not counted (--no-callgrind)" in lines
    assert lines[-1].endswith("--json FILE") or "measurements" in lines[-1]
    assert max(map(len, lines)) <= 100


def test_peers_skip_lines(monkeypatch, capsys) -> None:
    missing = peers.Allocator("nosuch", ("libnosuch.so.9",), "malloc", "free",
                              "apt-get install libnosuch9")
    monkeypatch.setattr(peers, "C_ALLOCATORS", (*peers.C_ALLOCATORS[:1], missing))
    rc, lines = run_cli(capsys, *PEERS_TINY)
    assert rc == 0
    assert ("nosuch: skipped, libnosuch.so.9 not found; apt-get install libnosuch9" in
            "\n".join(lines).replace("\n  ", " "))
    monkeypatch.setattr(peers, "build_harness",
                        lambda *a, **k: (None, "no C compiler found (set CC)"))
    rc, lines = run_cli(capsys, *PEERS_TINY)
    assert rc == 0
    text = "\n".join(lines).replace("\n  ", " ")
    assert "C allocators and C limits: skipped, no C compiler found (set CC)" in text
    head = next(ln for ln in lines if ln.startswith("bulk ") and "native" in ln).split()
    assert head == ["bulk", "native", "python", "list", "numpy"]


def test_peers_json_and_plots(tmp_path, capsys) -> None:
    pytest.importorskip("matplotlib")
    js, png = tmp_path / "p.json", tmp_path / "p.png"
    rc, _ = run_cli(capsys, *PEERS_TINY, "--json", str(js), "--plot", str(png))
    assert rc == 0
    p = report.read_json(js)["peers"]
    assert p["bulk_sizes"] == [1, 16] and p["rounds"] == 1
    assert {"native", "python", "list", "numpy"} <= set(p["ns"])
    assert p["ratio_to_pyslub"]["list"]["1"] > 0
    assert p["records"]["native"]["16"][0]["line"].startswith("time_bench: Type:")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
