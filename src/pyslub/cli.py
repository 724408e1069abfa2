"""The ``pyslub`` command: ``pyslub bench`` reproduces the 2015 detached-freelist table.

``pyslub bench [test01|test02|test03|all] [options]`` runs prototype-kernel's
slab_bulk_test01/02/03 against the pyslub allocator, prints every measurement as a
``time_bench:`` line in the kernel's format, then the seed cover letter's side-by-side
comparison (default ``bulk-v2`` before, ``lookahead-fwd`` after), a table of every strategy with
the seed's published ns alongside, and the SLUB_STATS counters per object.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import shutil
import sys
import time
from collections.abc import Sequence
from typing import Any

import pyslub
from pyslub._layout import FREE_BULK_STRATEGIES
from pyslub.bench import _native, report, seed, suite
from pyslub.bench.time_bench import measure_tsc_khz

__all__ = ["main"]

DRIVER_CHOICES = ("native", "python", "both")


# =============================================================================================
# Arguments
# =============================================================================================

def _positive(text: str) -> int:
    try:
        v = int(text.replace("_", "").replace(",", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def _fragment(text: str) -> tuple[int, int | None]:
    slabs, _, free = text.partition(":")
    try:
        n, f = int(slabs), (int(free) if free else None)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected SLABS[:FREE], got {text!r}") from None
    if n < 0 or (f is not None and f < 0):
        raise argparse.ArgumentTypeError("SLABS and FREE must be >= 0")
    return n, f


def _strategies(text: str) -> list[str]:
    if text == "all":
        return list(FREE_BULK_STRATEGIES)
    names = [t for t in text.replace(",", " ").split() if t]
    bad = [n for n in names if n not in FREE_BULK_STRATEGIES]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"unknown strategy {bad or text!r}; choose from {', '.join(FREE_BULK_STRATEGIES)}"
            " or 'all'")
    return names


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyslub", description="The Linux SLUB allocator and its 2015 bulk API, in Python.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    b = sub.add_parser(
        "bench", help="run slab_bulk_test01/02/03 and compare with the seed's table",
        description="Run prototype-kernel's slab_bulk_test01/02/03 against pyslub and print "
        "the results in the kernel's time_bench format and side by side with the 2015 seed "
        "cover letter's table (ns; TSC ticks here are not the seed's core cycles).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    b.add_argument("test", nargs="?", default="test01",
                   choices=("test01", "test02", "test03", "all"),
                   help="which kernel module to reproduce")
    b.add_argument("--driver", default="both", choices=DRIVER_CHOICES,
                   help="native: timed loop in the compiled module calling the core at C "
                   "level; python: timed loop in Python over the public API")
    b.add_argument("--strategies", type=_strategies, default=list(FREE_BULK_STRATEGIES),
                   help="free_bulk generations to measure (comma separated, or 'all')")
    b.add_argument("--before", default="bulk-v2", choices=FREE_BULK_STRATEGIES,
                   help="left column of the side-by-side (the seed's: bulk API V2)")
    b.add_argument("--after", default="lookahead-fwd", choices=FREE_BULK_STRATEGIES,
                   help="right column (the seed's: the 3 patches, forward look-ahead)")
    b.add_argument("--loops", type=_positive, default=None,
                   help="kernel 'loops' parameter (test01: objects per measurement; "
                   "10000000 = kernel fidelity).  Default: test01 1000000 native / 100000 "
                   "python, test02 100000, test03 100000 native / 20000 python")
    b.add_argument("--bulksz", type=_positive, default=None,
                   help="bulk size of test02 (default 16) and test03 (default 64)")
    b.add_argument("--bulk-sizes", type=lambda t: [_positive(x) for x in t.split(",")],
                   default=None, help="test01 bulk sizes, comma separated "
                   "(default 1,2,3,4,8,16,30,32,34,48,64,128,158,250)")
    b.add_argument("--object-size", type=_positive, default=None,
                   help="object size in bytes (default 232 for test01/02, 224 for test03; "
                   "SLAB_HWCACHE_ALIGN makes both 256-byte slots)")
    b.add_argument("--cpus", type=_positive, default=8,
                   help="nr_cpu_ids (sizes the slab order, as on the seed's 8-cpu machine)")
    b.add_argument("--keep-cache", action="store_true",
                   help="one cache per strategy pass, kept across its measurements (the "
                   "kernel's merged :t-0000256 cache) instead of a fresh cache each")
    b.add_argument("--fragment", type=_fragment, default=(0, None), metavar="SLABS[:FREE]",
                   help="before timing, fill SLABS slabs and free FREE objects of each (default"
                   " half), keeping the rest allocated as other users of a merged cache would: "
                   "allocations then start from partly full slabs")
    b.add_argument("--prefill", type=_positive, default=4096, help="test03 objhash prefill")
    b.add_argument("--nmatch", type=lambda t: [_positive(x) for x in t.split(",")],
                   default=None, help="test03 N-page-match list (default 1,2,3,4,5,6,10,"
                   "bulksz+1)")
    b.add_argument("--repeat", type=_positive, default=1,
                   help="run everything N times; tables and plots show medians")
    b.add_argument("--json", metavar="FILE", default=None, help="write every record here")
    b.add_argument("--plot", metavar="FILE.png", default=None,
                   help="plot test01's ns/object vs bulk size per strategy, seed overlaid")
    b.add_argument("--quiet", action="store_true",
                   help="no time_bench lines and no progress bar, only the summary")
    return parser


# =============================================================================================
# Output helpers
# =============================================================================================

class Out:
    """Where text goes: a rich Console (plain lines, tables, a progress bar)."""

    def __init__(self, quiet: bool) -> None:
        from rich.console import Console

        self.quiet = quiet
        probe = Console()
        width = probe.width if probe.is_terminal else max(shutil.get_terminal_size().columns,
                                                           160)
        self.console = Console(width=width, highlight=False)

    def line(self, text: str = "") -> None:
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def bench_line(self, text: str) -> None:
        if not self.quiet:
            self.line(text)

    def table(self, table: Any) -> None:
        self.console.print(table)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _fmt_int(n: int) -> str:
    return f"{n:,}".replace(",", "_")


# =============================================================================================
# bench
# =============================================================================================

def _run_bench(args: argparse.Namespace, argv: Sequence[str]) -> int:
    strategies = list(dict.fromkeys(args.strategies))
    for s in (args.before, args.after):
        if s not in strategies:
            strategies.append(s)
    config = suite.BenchConfig(
        strategies=strategies, loops=args.loops, bulksz=args.bulksz,
        object_size=args.object_size, nr_cpus=args.cpus, keep_cache=args.keep_cache,
        prefill=args.prefill, nmatch=args.nmatch, repeat=args.repeat,
        fragment=args.fragment[0], fragment_free=args.fragment[1],
        **({"bulk_sizes": args.bulk_sizes} if args.bulk_sizes else {}))
    tests = list(suite.TESTS) if args.test == "all" else [args.test]
    drivers = ["native", "python"] if args.driver == "both" else [args.driver]
    out = Out(args.quiet)

    # -- header: what runs where ---------------------------------------------------------------
    tsc_khz = measure_tsc_khz(_native.read_tsc)
    core = "compiled core" if pyslub.COMPILED else "UNCOMPILED plain-Python core (PYSLUB_PURE)"
    out.line(f"pyslub {pyslub.__version__} bench: {core}; {_cpu_model()}, "
             f"{os.cpu_count()} cpus, Python {platform.python_version()}")
    out.line(f"TSC: {tsc_khz} kHz measured ({tsc_khz / 1e6:.3f} ticks/ns). cycles(tsc) below "
             "are TSC ticks, not core cycles: compare with the seed (i7-4790K, TSC = core = "
             "4.0 GHz) in ns.")
    caches = ("one cache per strategy pass (merged-cache situation)" if args.keep_cache
              else "fresh cache per measurement")
    if config.fragment:
        free = "half" if config.fragment_free is None else str(config.fragment_free)
        caches += f"; {config.fragment} slabs left with {free} free objects before timing"
    for test in tests:
        g = config.geometry(test)
        loops = ", ".join(f"{d} {_fmt_int(config.loops_for(test, d))}" for d in drivers)
        out.line(f"{test}: object {g.object_size} B, SLAB_HWCACHE_ALIGN, nr_cpus {args.cpus}"
                 f" -> size {g.size}, order {g.order}, {g.objects} objs/slab, min_partial "
                 f"{g.min_partial}, cpu_partial {g.cpu_partial}; loops: {loops} (kernel "
                 f"{_fmt_int(suite.KERNEL_LOOPS[test])}); {caches}")
    if (args.object_size in (None, 224, 232) and args.cpus == 8
            and config.geometry("test01").objects != seed.SYSFS_T_0000256["objs_per_slab"]):
        out.line("WARNING: geometry differs from the seed's :t-0000256")
    out.line(f"strategies: {', '.join(strategies)}; drivers: {', '.join(drivers)}")

    # -- plan and run --------------------------------------------------------------------------
    plans = [(d, t, suite.plan(t, config, d)) for d in drivers for t in tests]
    total = sum(len(p) for _, _, p in plans)
    results: dict[str, list[suite.Measurement]] = {}
    t0 = time.perf_counter()
    progress = None
    if not args.quiet:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        progress = Progress(TextColumn("{task.description}"), BarColumn(),
                            MofNCompleteColumn(), TimeElapsedColumn(),
                            console=out.console, transient=True)
    try:
        if progress is not None:
            progress.start()
            task = progress.add_task("bench", total=total)
        for driver, test, specs in plans:
            out.bench_line(f"==== slab_bulk_{test}, driver {driver} ====")
            runner = suite.Runner(config, driver, printer=out.bench_line)
            current = None
            try:
                for spec in specs:
                    if (spec.round_no, spec.pass_no) != current:
                        current = (spec.round_no, spec.pass_no)
                        rnd = f", round {spec.round_no + 1}" if args.repeat > 1 else ""
                        out.bench_line(f"---- free_bulk strategy {strategies[spec.pass_no]}"
                                       f"{rnd} ----")
                    runner.measure(spec)
                    if progress is not None:
                        progress.update(task, advance=1, description=f"{test} {driver} "
                                        f"{strategies[spec.pass_no]}")
            finally:
                runner.finish()
            results.setdefault(driver, []).extend(runner.measurements)
    finally:
        if progress is not None:
            progress.stop()
    elapsed = time.perf_counter() - t0

    # -- summaries -----------------------------------------------------------------------------
    for driver in drivers:
        ms = results.get(driver, [])
        if "test01" in tests:
            _summary_test01(out, ms, driver, args, strategies)
        if "test02" in tests:
            _summary_test02(out, ms, driver, strategies, config)
        if "test03" in tests:
            _summary_test03(out, ms, driver, args, strategies, config)
    out.line(f"({total} measurements in {elapsed:.1f} s)")

    all_ms = [m for d in drivers for m in results.get(d, [])]
    if args.json:
        meta = {
            "pyslub": pyslub.__version__, "compiled": pyslub.COMPILED, "tsc_khz": tsc_khz,
            "cpu": _cpu_model(), "cpus_online": os.cpu_count(),
            "python": platform.python_version(), "platform": platform.platform(),
            "argv": list(argv), "tests": tests, "drivers": drivers,
            "strategies": strategies, "before": args.before, "after": args.after,
            "keep_cache": args.keep_cache, "repeat": args.repeat, "fragment": list(args.fragment),
            "loops": {f"{t}/{d}": config.loops_for(t, d) for t in tests for d in drivers},
            "geometry": {t: dataclasses.asdict(config.geometry(t)) for t in tests},
            "seed_machine": dataclasses.asdict(seed.MACHINE),
            "elapsed_s": elapsed,
        }
        report.write_json(args.json, [m.to_dict() for m in all_ms], meta=meta)
        out.line(f"wrote {args.json}")
    if args.plot:
        if "test01" not in tests:
            out.line("--plot draws test01 (ns/object vs bulk size); test01 was not run")
        else:
            curves: dict[str, list[Any]] = {}
            for m in all_ms:
                if m.spec.test == "test01" and m.spec.step and m.ok:
                    curves.setdefault(f"{m.driver} {m.label}", []).append(m.record)
            logy = len(drivers) > 1 or not pyslub.COMPILED
            palette = ["tab:gray", "tab:blue", "tab:red", "tab:orange", "tab:green",
                       "tab:purple", "tab:brown"]
            labels = ["bulk_fallback", *FREE_BULK_STRATEGIES]
            styles = {name: {"color": palette[labels.index(name.split(" ", 1)[1])],
                             "linestyle": "-" if name.startswith("native") else ":"}
                      for name in curves}
            kind = "compiled" if pyslub.COMPILED else "uncompiled"
            report.plot(args.plot, curves, logy=logy, styles=styles,
                        title=f"slab_bulk_test01 on pyslub ({kind}, {_cpu_model()}) "
                        "vs the 2015 seed")
            out.line(f"wrote {args.plot}")
    failed = [m for m in all_ms if not m.ok]
    if failed:
        out.line(f"{len(failed)} measurement(s) aborted")
    return 1 if failed else 0


def _records(ms: Sequence[suite.Measurement], **kw: Any) -> list[Any]:
    return [m.record for m in suite.select(ms, **kw)]


def _summary_test01(out: Out, ms: Sequence[suite.Measurement], driver: str,
                    args: argparse.Namespace, strategies: Sequence[str]) -> None:
    out.line("")
    out.line(f"== slab_bulk_test01 kmem bulk_quick_reuse, driver {driver}: "
             f"{args.before} -> {args.after} (the seed's layout; improved on cycles(tsc)) ==")
    before = report.median_record(_records(ms, test="test01", kind="bulk_quick_reuse",
                                           strategy=args.before))
    after = report.median_record(_records(ms, test="test01", kind="bulk_quick_reuse",
                                          strategy=args.after))
    after_bulks = {report.bulk_of(r) for r in after}
    before = [r for r in before if report.bulk_of(r) in after_bulks]
    if before:
        for line in report.side_by_side(before, after, before_label=args.before,
                                        after_label=args.after):
            out.line(line)
    out.line("seed (Intel i7-4790K @ 4.00GHz, 2015-07-15):")
    for line in seed.SEED_TABLE_TEXT.splitlines():
        out.line("  " + line)
    fast = report.median_record(_records(ms, test="test01", kind="fastpath_reuse"))
    loop = report.median_record(_records(ms, test="test01", kind="for_loop"))
    if fast:
        out.line(f"kmem fastpath reuse: {report.ns_text_of(fast[0])} ns "
                 f"({report.cycles_of(fast[0])} cycles(tsc)); seed 10.520-11.931 ns "
                 f"(42-47 cycles); for_loop "
                 f"{report.ns_text_of(loop[0]) if loop else '-'} ns")
    results = {"bulk_fallback": _records(ms, test="test01", kind="bulk_fallback")}
    for s in strategies:
        results[s] = _records(ms, test="test01", kind="bulk_quick_reuse", strategy=s)
    out.table(report.strategy_table(
        results, title=f"test01 ns per object (alloc+free), driver {driver}, median of "
        f"{args.repeat} run(s); seed = published 2015 ns"))
    for s in dict.fromkeys(("bulk_fallback", args.before, args.after)):
        kw = {"kind": "bulk_fallback"} if s == "bulk_fallback" else {
            "kind": "bulk_quick_reuse", "strategy": s}
        sel = list(suite.select(ms, test="test01", **kw))
        rows = {}
        for bulk in sorted({m.spec.step for m in sel}):
            rows[str(bulk)] = suite.median_stats([m for m in sel if m.spec.step == bulk])
        if rows:
            out.table(report.stats_table(
                rows, suite.STATS_COLUMNS,
                title=f"test01 {s}, driver {driver}: SLUB counters per object"))


def _summary_test02(out: Out, ms: Sequence[suite.Measurement], driver: str,
                    strategies: Sequence[str], config: suite.BenchConfig) -> None:
    rows: dict[str, dict[str, float | None]] = {}
    for s in strategies:
        sel = list(suite.select(ms, test="test02", strategy=s))
        if not sel:
            continue
        recs = [m.record for m in sel]
        med = report.median_record(recs)[0]
        rows[s] = {"cycles(tsc)": float(report.cycles_of(med)), "ns": report.ns_of(med),
                   **{c: suite.median_stats(sel).get(c) for c in suite.STATS_COLUMNS}}
    if rows:
        out.line("")
        out.table(report.value_table(
            rows, row_header="strategy",
            title=f"test02 kmem_cache_(free+alloc)_bulk, bulk {config.bulksz_for('test02')}, "
            f"driver {driver}: per object (counters = SLUB_STATS deltas per object)"))


def _summary_test03(out: Out, ms: Sequence[suite.Measurement], driver: str,
                    args: argparse.Namespace, strategies: Sequence[str],
                    config: suite.BenchConfig) -> None:
    sel = list(suite.select(ms, test="test03"))
    if not sel:
        return
    bulk = config.bulksz_for("test03")
    variants = list(dict.fromkeys(m.spec.nmatch for m in sel))

    def vlabel(n: int) -> str:
        return "worse-case" if not n else f"N={n}"

    rows: dict[str, dict[str, float | None]] = {}
    for n in variants:
        cells: dict[str, float | None] = {}
        for label in ("bulk_fallback", *strategies):
            recs = [m.record for m in sel if m.spec.nmatch == n and m.label == label]
            cells[label] = report.ns_of(report.median_record(recs)[0]) if recs else None
        rows[vlabel(n)] = cells
    out.line("")
    out.table(report.value_table(
        rows, row_header="variant",
        title=f"test03 (worst case: objects scattered over slabs by jhash; includes the hash "
        f"work) bulk {bulk}, driver {driver}: ns per object"))
    srows = {}
    for n in variants:
        for label in dict.fromkeys((args.before, args.after)):
            pick = [m for m in sel if m.spec.nmatch == n and m.label == label]
            if pick:
                srows[f"{vlabel(n)} {label}"] = suite.median_stats(pick)
    if srows:
        out.table(report.stats_table(srows, suite.STATS_COLUMNS, row_header="variant",
                                     title=f"test03, driver {driver}: SLUB counters per object"))


# =============================================================================================
# Entry point
# =============================================================================================

def main(argv: Sequence[str] | None = None) -> int:
    """``pyslub`` console script."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    if args.command == "bench":
        return _run_bench(args, argv)
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
