"""``pyslub bench``: the seed's experiment on one screen, and pyslub next to its peers.

``pyslub bench`` (test01, native driver) runs the seed cover letter's before/after comparison
(``bulk-v2`` -> ``lookahead-fwd``) in a cache that looks like the seed's -- the busy merged
``:t-0000256``, modelled by ``--fragment 8:12`` -- and then in a fresh cache, several
interleaved rounds each, and prints medians with their spread, verdicts, and the summary last.
``pyslub bench peers`` times the same workload with glibc, jemalloc, mimalloc, the C limits,
Python pools and both pyslub drivers (``pyslub.bench.peers``).  ``test02``, ``test03`` and
``all`` run the other modules.  Raw ``time_bench:`` lines: ``--verbose``, and in ``--json``.

This module only parses, plans, runs and prints; the measurements are
``pyslub.bench.suite`` and ``pyslub.bench.peers``, the text ``pyslub.bench.summary``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyslub._layout import FREE_BULK_STRATEGIES

__all__ = ["DEFAULT_ROUNDS", "SEED_FRAGMENT", "register", "run"]

TESTS = ("test01", "test02", "test03")
DEFAULT_ROUNDS = {"test01": 15, "test02": 15, "test03": 5, "peers": 7}
SEED_FRAGMENT = (8, 12)            # the seed-faithful cache state (docs/benchmarks.md)
WIDTH = 80                         # every line of the default output fits
DRIVER_CHOICES = ("native", "python", "both")
PLOT_SUFFIXES = (".png", ".svg", ".pdf")
REEXEC_MARK = "PYSLUB_BENCH_REEXEC"

EXAMPLES = """\
examples:
  pyslub bench                        the seed's table: --fragment 8:12, then a fresh cache
  pyslub bench peers                  glibc, jemalloc, mimalloc, C limits, Python pools
  pyslub bench --peers --plot t.png   both, and plots
  pyslub bench --strategies all --driver both --json out.json
  pyslub bench test01 --loops 10000000 --rounds 3      kernel fidelity (10 M objects)
  pyslub bench test03 --verbose       the worst case, with every time_bench: line
  pyslub bench --slub all             test01 on SLUB 4.4, 6.18 (sheaves) and 7.0
  pyslub bench --slub 7.0 peers       7.0 next to mimalloc & co
  pyslub bench sheaves                the 6.18 cover letter: alloc N, free N (FIFO/shuffled)
  pyslub bench threads                threads as cpus: scaling, remote frees, policies
  pyslub bench shared                 two processes on one shared arena vs Lock/Queue pools
"""


# =============================================================================================
# Arguments
# =============================================================================================

def _int(text: str) -> int:
    try:
        return int(text.replace("_", "").replace(",", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def _positive(text: str) -> int:
    v = _int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def _loops(text: str) -> int:
    v = _int(text)
    if v < 1000:
        raise argparse.ArgumentTypeError(
            f"{v} is below time_bench's minimum: every measurement must count >= 1000 objects")
    return v


def _int_list(text: str) -> list[int]:
    return [_positive(x) for x in text.replace(",", " ").split()]


def _fragment(text: str) -> tuple[int, int | None]:
    slabs, _, free = text.partition(":")
    try:
        n, f = _int(slabs), (_int(free) if free else None)
    except argparse.ArgumentTypeError:
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
            f"unknown strategy {', '.join(bad) or repr(text)}; choose from "
            f"{', '.join(FREE_BULK_STRATEGIES)} or 'all'")
    return names


HARDENING_LABELS = {"hardened": "CONFIG_SLAB_FREELIST_HARDENED",
                    "random": "CONFIG_SLAB_FREELIST_RANDOM", "middle": "free pointer mid-object"}


def _hardening(text: str) -> list[str]:
    from pyslub.bench.suite import HARDENING
    if text == "all":
        return list(HARDENING)
    names = [t for t in text.replace(",", " ").split() if t]
    bad = [n for n in names if n not in HARDENING]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"unknown hardening {', '.join(bad) or repr(text)}; choose from "
            f"{', '.join(HARDENING)} or 'all'")
    return names


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``bench`` to the ``pyslub`` command's subparsers."""
    strategies = ", ".join(FREE_BULK_STRATEGIES)
    b = subparsers.add_parser(
        "bench", help="the 2015 seed's benchmark, and pyslub next to malloc & co",
        description="Run prototype-kernel's slab_bulk_test01/02/03 against pyslub, or its "
        "peers, and print medians of interleaved rounds with their spread (ns per object, "
        "alloc + free), next to the seed cover letter's table.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    b.add_argument("test", nargs="?", default="test01",
                   choices=("test01", "test02", "test03", "all", "peers", "sheaves",
                            "threads", "shared"),
                   help="what to run: a kernel module, all three, the peers comparison, the "
                   "6.18 sheaves cover letter's experiment, the thread benchmarks "
                   "(pyslub.bench.threads) or the shared-arena ones (pyslub.bench.shared) "
                   "(default: test01)")
    b.add_argument("--slub", default="4.4", choices=("4.4", "6.18", "7.0", "all"),
                   help="SLUB generation of the caches: 4.4 (the seed's), 6.18 (opt-in sheaves "
                   "above the cpu slabs: see --sheaf-capacity), 7.0 (sheaves for every "
                   "cache), or all: test01 on the three side by side (default: 4.4)")
    b.add_argument("--sheaf-capacity", type=_positive, default=None, metavar="N",
                   help="sheaves of N objects: opts 6.18 caches in (implies --slub 6.18), a "
                   "minimum for 7.0's computed capacity")
    b.add_argument("--hardening", type=_hardening, default=[], metavar="LIST",
                   help="kernel hardening of the caches, comma separated, or 'all': hardened "
                   "(CONFIG_SLAB_FREELIST_HARDENED), random (CONFIG_SLAB_FREELIST_RANDOM), "
                   "middle (the v5.7 free pointer placement)")
    b.add_argument("--driver", default="native", choices=DRIVER_CHOICES,
                   help="native: timed loop compiled, calling the core at C level; python: "
                   "timed loop in Python over the public API (default: native)")
    b.add_argument("--strategies", type=_strategies, default=None, metavar="LIST",
                   help=f"free_bulk generations, comma separated, or 'all' ({strategies}); "
                   "more than before/after adds a table of all (default: before,after)")
    b.add_argument("--before", default="bulk-v2", choices=FREE_BULK_STRATEGIES,
                   metavar="STRATEGY", help="left column: the seed's bulk API V2 (default: "
                   "bulk-v2)")
    b.add_argument("--after", default="lookahead-fwd", choices=FREE_BULK_STRATEGIES,
                   metavar="STRATEGY", help="right column: the seed's 3 patches (default: "
                   "lookahead-fwd)")
    b.add_argument("--rounds", "--repeat", type=_positive, default=None, metavar="N",
                   dest="rounds", help="interleaved rounds; medians and quartiles [q1-q3] over "
                   "them (default: test01 15, test02 15, test03 5, peers 7)")
    b.add_argument("--loops", type=_loops, default=None, metavar="N",
                   help="kernel 'loops': objects per measurement (test01, peers), iterations "
                   "(test02); >= 1000.  Default: test01/peers 1,000,000 native and C, 100,000 "
                   "python; test02 100,000; test03 100,000 native, 20,000 python.  10,000,000 "
                   "is the kernel's")
    b.add_argument("--fragment", type=_fragment, default=None, metavar="SLABS[:FREE]",
                   help="before timing, fill SLABS slabs and free FREE objects of each (default"
                   " half), as other users of a merged cache would.  test01 default: 8:12, the "
                   "seed-faithful state, then a fresh cache; 0: fresh cache only")
    b.add_argument("--keep-cache", action="store_true",
                   help="one cache per strategy pass, kept across its measurements, instead "
                   "of a fresh cache per measurement")
    b.add_argument("--peers", action="store_true", help="test01: also run the peers comparison")
    b.add_argument("--probe", action="store_true",
                   help="test03: also probe every __slab_free call per strategy (objects per "
                   "call, mean, calls per 1,000 objects), as the seed's perf probes did")
    b.add_argument("--probe-loops", type=_positive, default=None, metavar="N",
                   help="test03 loops per probed strategy and N-match (default: 10,000)")
    b.add_argument("--callgrind", action=argparse.BooleanOptionalAction, default=None,
                   help="peers: count instructions per object under valgrind's callgrind "
                   "(default: when valgrind is installed)")
    b.add_argument("--bulk-sizes", type=_int_list, default=None, metavar="LIST",
                   help="test01/peers bulk sizes (default: 1,2,3,4,8,16,30,32,34,48,64,128,158,"
                   "250, the seed's)")
    b.add_argument("--bulksz", type=_positive, default=None, metavar="N",
                   help="bulk size of test02 (default: 16) and test03 (default: 64)")
    b.add_argument("--object-size", type=_positive, default=None, metavar="BYTES",
                   help="object size (default: 232 for test01/02, 224 for test03; "
                   "SLAB_HWCACHE_ALIGN makes both 256-byte slots)")
    b.add_argument("--cpus", type=_positive, default=8, metavar="N",
                   help="nr_cpu_ids: sizes the slab order, as on the seed's machine (default: 8)")
    b.add_argument("--prefill", type=_positive, default=4096, metavar="N",
                   help="test03: objects in the object hash before timing (default: 4096)")
    b.add_argument("--nmatch", type=_int_list, default=None, metavar="LIST",
                   help="test03 N-page-match variants (default: 1,2,3,4,5,6,10,bulksz+1)")
    b.add_argument("--json", metavar="FILE", default=None,
                   help="write everything: every measurement with its time_bench line and "
                   "counters, the tables, verdicts, machine")
    b.add_argument("--plot", metavar="FILE.png", default=None,
                   help="plot ns per object vs bulk size (test01, peers); .png, .svg or .pdf")
    b.add_argument("-v", "--verbose", action="store_true",
                   help="also print every time_bench: line, counters and strategy tables")
    b.add_argument("-q", "--quiet", action="store_true", help="no progress display")
    from pyslub.bench import threads

    threads.add_arguments(b)
    b.set_defaults(func=run, parser=b)
    return b


# =============================================================================================
# What to run
# =============================================================================================

@dataclass
class Block:
    """One (test, cache state, driver) of a run: its config, plan and measurements."""

    test: str
    state: str                       # key of the cache state ("seed", "fresh", "fragment")
    driver: str
    config: Any                      # suite.BenchConfig
    specs: list[Any]
    measurements: list[Any] = field(default_factory=list)


@dataclass
class Plan:
    tests: list[str]
    drivers: list[str]
    strategies: list[str]
    rounds: int
    states: dict[str, Any]           # state key -> base config (for the Runner)
    blocks: list[Block]
    peers: bool
    table: bool                      # print the table of every strategy
    before: str = "bulk-v2"
    after: str = "lookahead-fwd"


def _state_title(key: str, cfg: Any, geometry: Any) -> str:
    if key == "seed":
        return (f"seed-faithful cache (--fragment {cfg.fragment}:{cfg.fragment_free}, default):"
                f" {cfg.fragment} slabs with {cfg.fragment_free} free objects before timing, "
                "like the busy merged cache the seed ran in")
    if key == "fragment":
        free = "half their" if cfg.fragment_free is None else str(cfg.fragment_free)
        return f"fragmented cache (--fragment): {cfg.fragment} slabs with {free} free objects"
    kept = "kept cache (--keep-cache)" if cfg.keep_cache else "fresh cache"
    return (f"{kept}: bulks <= {geometry.objects} fit its empty cpu slab; before jumps "
            f"at {geometry.objects + 2}, not 16")


def _plan(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Plan:
    from pyslub.bench import suite

    tests = list(TESTS) if args.test == "all" else [] if args.test == "peers" else [args.test]
    drivers = ["native", "python"] if args.driver == "both" else [args.driver]
    strategies = list(dict.fromkeys(args.strategies or [args.before, args.after]))
    for s in (args.before, args.after):
        if s not in strategies:
            strategies.append(s)
    table = len(strategies) > 2
    import pyslub

    rounds = args.rounds or max((DEFAULT_ROUNDS[t] for t in tests or ["peers"]), default=5)
    if not pyslub.COMPILED and args.rounds is None:
        rounds = 1                                        # uncompiled: slow, one round

    if args.bulk_sizes and max(args.bulk_sizes) > 250 and "test01" in tests:
        parser.error("--bulk-sizes: test01's objs[] holds at most 250 objects")
    fragment = args.fragment
    if fragment is None:
        fragment = SEED_FRAGMENT if tests[:1] == ["test01"] or "test01" in tests else (0, None)
    states: dict[str, Any] = {}
    base = dict(strategies=strategies, loops=args.loops, bulksz=args.bulksz,
                object_size=args.object_size, nr_cpus=args.cpus, keep_cache=args.keep_cache,
                prefill=args.prefill, nmatch=args.nmatch, repeat=rounds,
                slub=getattr(args, "slub", "4.4"), sheaf_capacity=args.sheaf_capacity,
                hardening=tuple(args.hardening),
                **({"bulk_sizes": tuple(args.bulk_sizes)} if args.bulk_sizes else {}))
    try:
        if fragment[0]:
            key = "seed" if tuple(fragment) == SEED_FRAGMENT else "fragment"
            states[key] = suite.BenchConfig(**base, fragment=fragment[0],
                                            fragment_free=fragment[1])
        if not fragment[0] or "test01" in tests:
            states["fresh"] = suite.BenchConfig(**base)
    except ValueError as err:
        parser.error(str(err))
    blocks = []
    for test in tests:
        for k, (key, cfg) in enumerate(states.items()):
            if test != "test01" and key == "fresh" and len(states) > 1:
                continue                                  # test02/03: the chosen state only
            kinds: tuple[str, ...] | None = None
            if test == "test01":
                kinds = ("bulk_quick_reuse",)
                if k == 0:
                    kinds += ("for_loop", "fastpath_reuse")
                if table or args.verbose:             # the module's full sequence
                    kinds += ("bulk_fallback",)
            tcfg = dataclasses.replace(cfg, kinds=kinds)
            for driver in drivers:
                specs = suite.plan(test, tcfg, driver)
                need = suite.min_loops(test, tcfg, driver)
                if tcfg.loops_for(test, driver) < need:
                    parser.error(f"--loops {tcfg.loops_for(test, driver)}: some {test} "
                                 f"measurements would count fewer than 1000 objects "
                                 f"(time_bench's minimum); use --loops {need} or more")
                big = [s for s in specs if s.step and s.loops * s.step * 2 >= (1 << 32) - 1]
                if big:
                    parser.error(f"--loops: {test} bulk {big[0].step} would overflow "
                                 "time_bench's 32-bit invoke count")
                blocks.append(Block(test, key, driver, tcfg, specs))
    peers = args.test == "peers" or args.peers
    if peers:
        bulks = args.bulk_sizes or None
        if bulks and max(bulks) > 4096:
            parser.error("--bulk-sizes: the peers harness holds at most 4096 objects")
        loops = args.loops or 1_000_000
        worst = [b for b in (bulks or suite.BULK_SIZES) if loops // b * b < 1000]
        if worst:
            parser.error(f"--loops {loops}: peers bulk {worst[0]} would count fewer than 1000 "
                         "objects per measurement")
    if args.peers and args.test != "test01":
        parser.error("--peers goes with test01 (or run: pyslub bench peers)")
    if (args.probe or args.probe_loops) and "test03" not in tests:
        parser.error("--probe goes with test03 (pyslub bench test03 --probe)")
    return Plan(tests, drivers, strategies, rounds, states, blocks, peers, table, args.before,
                args.after)


def _check_output(path: str | None, option: str, parser: argparse.ArgumentParser,
                  suffixes: Sequence[str] = ()) -> None:
    """Fail before the run (exit 2) when ``path`` cannot be written."""
    if path is None:
        return
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        parser.error(f"{option} {path}: is a directory")
    if not os.path.isdir(parent):
        parser.error(f"{option} {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        parser.error(f"{option} {path}: directory {parent} is not writable")
    if suffixes and not path.lower().endswith(tuple(suffixes)):
        parser.error(f"{option} {path}: the name must end in {', '.join(suffixes)}")


# =============================================================================================
# Output
# =============================================================================================

class Out:
    """Plain lines on stdout; a transient progress bar on stderr when it is a terminal."""

    def __init__(self, verbose: bool, quiet: bool) -> None:
        self.verbose = verbose
        self.quiet = quiet
        self.progress: Any = None
        self.task: Any = None

    def line(self, text: str = "") -> None:
        if self.progress is not None:
            self.progress.console.print(text, markup=False, highlight=False, soft_wrap=True)
        else:
            print(text, flush=False)

    def wrap(self, text: str, indent: str = "  ") -> None:
        for ln in textwrap.wrap(text, WIDTH, subsequent_indent=indent,
                                break_on_hyphens=False):
            self.line(ln)

    def bench_line(self, text: str) -> None:
        """time_bench and module lines: shown with --verbose; errors always."""
        if self.verbose or any(w in text for w in ("ERR", "ABORT", "WARNING", "not destroyed",
                                                   "too big")):
            self.line(text)

    def start(self, total: int) -> None:
        if self.quiet or not sys.stderr.isatty():
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), console=Console(stderr=True),
                                 transient=True)
        self.progress.start()
        self.task = self.progress.add_task("bench", total=total)

    def advance(self, what: str) -> None:
        if self.progress is not None:
            self.progress.update(self.task, advance=1, description=what)

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def _fmt_int(n: int) -> str:
    return f"{n:,}"


# =============================================================================================
# The run
# =============================================================================================

def _maybe_reexec_for_jemalloc(args: argparse.Namespace) -> None:
    """jemalloc's shared library needs static TLS that a running Python has no room for:
    re-exec the command once with the glibc tunable that reserves it (real command line only)."""
    import ctypes

    if not getattr(args, "may_reexec", False) or os.environ.get(REEXEC_MARK):
        return
    try:
        ctypes.CDLL("libjemalloc.so.2", mode=os.RTLD_LOCAL)
        return
    except OSError as err:
        if "static TLS" not in str(err):
            return
    from pyslub.bench.peers import tls_env

    env = tls_env(dict(os.environ, **{REEXEC_MARK: "1"}))
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, "-m", "pyslub", *args.argv], env)


def run(args: argparse.Namespace) -> int:
    """Run ``pyslub bench``; returns the exit status."""
    parser: argparse.ArgumentParser = args.parser
    if args.test == "threads":
        from pyslub.bench import threads

        return threads.run(args)
    if args.test == "shared":
        from pyslub.bench import shared

        return shared.run(args)
    if args.sheaf_capacity and args.slub == "4.4":
        args.slub = "6.18"
    if args.slub == "all" or args.test == "sheaves":
        from pyslub.bench import generations

        _check_output(args.json, "--json", parser)
        _check_output(args.plot, "--plot", parser, PLOT_SUFFIXES)
        return generations.run(args)
    plan = _plan(args, parser)
    _check_output(args.json, "--json", parser)
    _check_output(args.plot, "--plot", parser, PLOT_SUFFIXES)
    if plan.peers:
        _maybe_reexec_for_jemalloc(args)

    import pyslub
    from pyslub.bench import _native, suite
    from pyslub.bench.machine import cpu_model, machine_info
    from pyslub.bench.time_bench import measure_tsc_khz

    out = Out(args.verbose, args.quiet)
    t0 = time.perf_counter()
    tsc_khz = measure_tsc_khz(_native.read_tsc)
    what = " ".join(plan.tests + (["peers"] if plan.peers else []))
    core = "compiled core" if pyslub.COMPILED else "UNCOMPILED core (PYSLUB_PURE)"
    drivers = "+".join(plan.drivers)
    slub = getattr(args, "slub", "4.4")
    gen = "" if slub == "4.4" else f" --slub {slub}"
    out.wrap(f"pyslub {pyslub.__version__} bench {what}{gen}: {core}, {drivers} driver, "
             f"{plan.rounds} interleaved rounds")
    out.wrap(f"machine: {cpu_model()}, {os.cpu_count()} cpus, Python "
             f"{sys.version.split()[0]}; TSC: {tsc_khz} kHz measured")
    _header(out, plan, args)

    # -- measure: every round runs every block once (and the peers) --------------------------
    runners: dict[tuple[str, str], Any] = {}
    for key, cfg in plan.states.items():
        for driver in plan.drivers:
            if any(b.state == key and b.driver == driver for b in plan.blocks):
                runners[(key, driver)] = suite.Runner(cfg, driver, printer=out.bench_line)
    total = sum(len(b.specs) for b in plan.blocks)
    peers_result = None
    probes: dict[str, Any] = {}
    c_peers = 5
    out.start(total)
    try:
        for rnd in range(plan.rounds):
            for b in plan.blocks:
                runner = runners[(b.state, b.driver)]
                mine = [s for s in b.specs if s.round_no == rnd]
                if mine and args.verbose:
                    out.line(f"==== slab_bulk_{b.test}, driver {b.driver}, {b.state} cache, "
                             f"round {rnd + 1} ====")
                for spec in mine:
                    b.measurements.append(runner.measure(spec))
                    out.advance(f"round {rnd + 1}/{plan.rounds} {b.test} {b.state} "
                                f"{b.driver} {spec.strategy or spec.kind}")
        for r in runners.values():
            r.finish()
        if plan.peers:
            peers_result = _run_peers(args, plan, out, c_peers)
        if args.probe or args.probe_loops:
            probes = _run_probes(args, plan, out)
    finally:
        out.stop()
    elapsed = time.perf_counter() - t0

    # -- print: blocks, then the summary last ------------------------------------------------
    summary: dict[str, Any] = {}
    for test in plan.tests:
        blocks = [b for b in plan.blocks if b.test == test]
        summary[test] = _print_test(out, test, blocks, plan, args)
    if peers_result is not None:
        from pyslub.bench.peers import legend_lines, peers_lines

        out.line("")
        out.line("== peers: the same alloc-N-then-free-N, in the same process and time window")
        found = [f"{a['name']} {a['version'] or ''}".strip() + f" ({a['path']})"
                 for a in peers_result.allocators]
        for ln in ([f"found: {', '.join(found)}"] if found else []) + peers_result.skipped:
            out.wrap(ln)
        for ln in legend_lines(peers_result):
            out.line(ln)
        for ln in peers_lines(peers_result):
            out.line(ln)
    if probes:
        _print_probes(out, probes)
    failed = [m for b in plan.blocks for m in b.measurements if not m.ok]
    _print_summary(out, plan, summary, peers_result, elapsed, failed)

    if args.json:
        from pyslub.bench import report, seed

        meta = {
            "pyslub": pyslub.__version__, "compiled": pyslub.COMPILED, "tsc_khz": tsc_khz,
            "cpu": cpu_model(), "cpus_online": os.cpu_count(),
            "python": sys.version.split()[0], "machine": machine_info(tsc_khz),
            "argv": list(args.argv), "tests": plan.tests, "drivers": plan.drivers,
            "strategies": plan.strategies, "before": args.before, "after": args.after,
            "keep_cache": args.keep_cache, "rounds": plan.rounds, "repeat": plan.rounds,
            "states": {k: {"fragment": c.fragment, "fragment_free": c.fragment_free,
                           "keep_cache": c.keep_cache} for k, c in plan.states.items()},
            "loops": {f"{b.test}/{b.driver}": b.config.loops_for(b.test, b.driver)
                      for b in plan.blocks},
            "geometry": {t: dataclasses.asdict(next(iter(plan.states.values())).geometry(t))
                         for t in plan.tests},
            "seed_machine": dataclasses.asdict(seed.MACHINE),
            "elapsed_s": elapsed,
        }
        records = []
        for b in plan.blocks:
            for m in b.measurements:
                records.append(m.to_dict() | {"state": b.state})
        report.write_json(args.json, records, meta=meta,
                          extra={"summary": summary,
                                 **({"probes": _probes_json(probes)} if probes else {}),
                                 "peers": peers_result.to_dict() if peers_result else None})
        out.line(f"wrote {args.json}")
    if args.plot:
        from pyslub.bench import plots

        made = plots.bench_plots(args.plot, plan, peers_result, tsc_khz=tsc_khz)
        for path in made:
            out.line(f"wrote {path}")
        if not made:
            out.line("--plot: nothing to plot (plots show test01 and peers)")
    return 1 if failed else 0


def _header(out: Out, plan: Plan, args: argparse.Namespace) -> None:
    seen = set()
    for test in plan.tests:
        cfg = next(iter(plan.states.values()))
        g = cfg.geometry(test)
        key = (g.object_size, g.size)
        if key in seen:
            continue
        seen.add(key)
        seedlike = (g.size, g.objects, g.order) == (256, 32, 1) and args.cpus == 8
        tests = [t for t in plan.tests if cfg.geometry(t).object_size == g.object_size]
        out.line(f"geometry: object {g.object_size} B, SLAB_HWCACHE_ALIGN, nr_cpus {args.cpus}"
                 + (" -> the seed's :t-0000256:" if seedlike else " ->")
                 + (f" ({', '.join(tests)})" if len(plan.tests) > 1 else ""))
        slub = cfg.slub
        cap = cfg.sheaf_capacity_for(test)
        if slub == "7.0":              # no cpu slabs, no cpu partial lists; sheaves always
            tail = f"SLUB 7.0: cpu_partial 0, sheaf_capacity {cap}"
        elif slub == "6.18" and cap:
            tail = f"cpu_partial {g.cpu_partial}; SLUB 6.18: sheaf_capacity {cap}"
        else:
            tail = f"cpu_partial {g.cpu_partial}" + (f" (SLUB {slub})" if slub != "4.4" else "")
        out.line(f"  size {g.size}, order {g.order}, {g.objects} objs/slab, min_partial "
                 f"{g.min_partial}, {tail}")
        if cfg.hardening:
            out.line("  hardening: " + ", ".join(HARDENING_LABELS[h] for h in cfg.hardening))
    if plan.tests:
        b0 = plan.blocks[0]
        loops = " / ".join(f"{_fmt_int(b0.config.loops_for(b0.test, d))}" for d in plan.drivers)
        unit = "objects" if b0.test == "test01" else "loops"
        out.wrap(f"ns/object (alloc+free), {loops} {unit} per measurement: median [q1-q3] of "
                 "rounds; improved = (before-after)/before on ns; seed: the 2015 letter's")


def _print_test(out: Out, test: str, blocks: Sequence[Block], plan: Plan,
                args: argparse.Namespace) -> dict[str, Any]:
    from pyslub.bench import summary as sm

    res: dict[str, Any] = {"blocks": []}
    for b in blocks:
        ms = b.measurements
        geometry = b.config.geometry(test)
        drv = f" [{b.driver} driver]" if len(plan.drivers) > 1 else ""
        out.line("")
        if test == "test01":
            out.wrap(f"== {_state_title(b.state, b.config, geometry)}{drv}", indent="   ")
            rows = sm.pair_rows(ms, args.before, args.after)
        elif test == "test02":
            out.wrap(f"== test02, bulk {b.config.bulksz_for(test)}, {b.state} cache{drv}: "
                     "kmem_cache_(free+alloc)_bulk", indent="   ")
            rows = []
        else:
            out.wrap(f"== test03 (objects scattered over slabs by jhash), bulk "
                     f"{b.config.bulksz_for(test)}, {b.state} cache{drv}: ns per object, "
                     "the hash work included", indent="   ")
            rows = sm.pair_rows(ms, args.before, args.after, kind="test03",
                                key=lambda m: m.spec.nmatch)
        if rows and test == "test01":
            for ln in sm.pair_table(rows, args.before, args.after):
                out.line(ln)
        if test == "test01" and (plan.table or args.verbose):
            cols = _strategy_columns(ms, ["bulk_fallback", *plan.strategies])
            for ln in sm.spread_table(cols, seed=True):
                out.line(ln)
        if test == "test02":
            cols = _strategy_columns(ms, plan.strategies, key=lambda m: 0)
            table = [[s, *(sm._ns_cell(c[0]) for c in [cols[s]])] for s in cols if 0 in cols[s]]
            for ln in sm.text_table(["strategy", "ns [min-max]"], table, left=(0,)):
                out.line(ln)
        if test == "test03":
            cols = _strategy_columns(ms, ["bulk_fallback", *plan.strategies],
                                     key=lambda m: m.spec.nmatch)
            for ln in sm.spread_table({k: v for k, v in cols.items() if v},
                                      row_header="N-match"):
                out.line(ln)
            out.line("(N-match 0 = worse-case)")
        if args.verbose:
            _print_counters(out, ms, plan, args, test)
        block: dict[str, Any] = {"state": b.state, "driver": b.driver,
                                 "before": args.before, "after": args.after,
                                 "fragment": [b.config.fragment, b.config.fragment_free],
                                 "rows": [r.to_dict() for r in rows],
                                 "verdicts": [v.to_dict() for v in sm.verdicts(rows)],
                                 "ns": {name: {str(k): s.to_dict() for k, s in col.items()}
                                        for name, col in _strategy_columns(
                                            ms, ["bulk_fallback", "fastpath_reuse", "for_loop",
                                                 *plan.strategies],
                                            key=(lambda m: m.spec.nmatch) if test == "test03"
                                            else None).items() if col}}
        res["blocks"].append(block)
    return res


def _strategy_columns(ms: Sequence[Any], labels: Sequence[str],
                      key: Callable[[Any], int] | None = None) -> dict[str, dict[int, Any]]:
    from pyslub.bench.summary import Spread

    cols: dict[str, dict[int, list[float]]] = {label: {} for label in labels}
    for m in ms:
        if m.ok and m.label in cols:
            k = m.spec.step if key is None else key(m)
            cols[m.label].setdefault(k, []).append(m.record.time_interval / m.record.invoked_cnt)
    return {label: {k: Spread.of(v) for k, v in c.items()} for label, c in cols.items()}


COUNTER_ABBREV = {"free_fastpath": "free_fast", "free_slowpath": "free_slow",
                  "alloc_slowpath": "alloc_slow", "alloc_slab": "alloc_slab",
                  "free_slab": "free_slab", "cmpxchg_double_cpu": "cx_cpu",
                  "cmpxchg_double_slab": "cx_slab", "list_lock": "list_lock"}


def _print_counters(out: Out, ms: Sequence[Any], plan: Plan, args: argparse.Namespace,
                    test: str) -> None:
    from pyslub.bench import suite
    from pyslub.bench.summary import text_table

    for label in dict.fromkeys((args.before, args.after)):
        sel = [m for m in ms if m.ok and m.label == label and m.spec.kind != "fastpath_reuse"]
        keys = sorted({m.spec.nmatch if test == "test03" else m.spec.step for m in sel})
        if not sel:
            continue
        rows = []
        for k in keys:
            pick = [m for m in sel if (m.spec.nmatch if test == "test03" else m.spec.step) == k]
            med = suite.median_stats(pick)
            rows.append([str(k), *(f"{med.get(c, 0.0):.3f}" for c in suite.STATS_COLUMNS)])
        out.line(f"SLUB counters per object, {label} (median over rounds; cx_ = "
                 "cmpxchg_double_):")
        for ln in text_table(["N-match" if test == "test03" else "bulk",
                              *(COUNTER_ABBREV[c] for c in suite.STATS_COLUMNS)], rows):
            out.line(ln)


def _run_peers(args: argparse.Namespace, plan: Plan, out: Out, c_peers: int) -> Any:
    import shutil

    from pyslub.bench import peers

    path, why = peers.build_harness()
    bulks = tuple(args.bulk_sizes or peers.BULK_SIZES)
    res = peers.run_peers(bulk_sizes=bulks, rounds=plan.rounds, loops=args.loops,
                          nr_cpus=args.cpus, harness_path=path, harness_note=why,
                          progress=lambda name: out.advance(f"peers {name}"),
                          printer=out.bench_line if args.verbose else None,
                          slub=args.slub, sheaf_capacity=args.sheaf_capacity)
    want = args.callgrind
    if want is None:
        want = shutil.which("valgrind") is not None
    import pyslub

    if not want:
        res.instructions_note = ("not counted (--callgrind, needs valgrind)"
                                 if args.callgrind is None else "not counted (--no-callgrind)")
    elif path is None:
        res.instructions_note = "not counted: no C harness"
    elif shutil.which("valgrind") is None:
        res.instructions_note = "not counted: valgrind not found (apt-get install valgrind)"
    elif not pyslub.COMPILED:
        res.instructions_note = "not counted: needs the compiled core"
    else:
        out.advance("peers under callgrind")
        try:
            res.instructions = peers.count_peer_instructions(
                path, bulk_sizes=bulks, slub=args.slub, sheaf_capacity=args.sheaf_capacity)
        except RuntimeError as err:
            res.instructions_note = f"callgrind failed: {str(err).splitlines()[0]}"
    return res


def _run_probes(args: argparse.Namespace, plan: Plan, out: Out) -> dict[str, Any]:
    """test03 under pyslub.probe, per strategy and N-match: {"loops", "bulk", "blocks"}."""
    from pyslub.bench import probes

    loops = args.probe_loops or probes.PROBE_LOOPS
    res: dict[str, Any] = {"loops": loops, "blocks": []}
    for b in plan.blocks:
        if b.test != "test03":
            continue
        nmatches = list(dict.fromkeys([0, *(args.nmatch or [1])]))
        got = probes.run_probes(b.config, b.driver, plan.strategies, nmatches, loops,
                                printer=out.bench_line, progress=out.advance)
        res["bulk"] = b.config.bulksz_for("test03")
        res["blocks"].append({"state": b.state, "driver": b.driver, "nmatch": got})
    return res


def _print_probes(out: Out, probes: dict[str, Any]) -> None:
    from pyslub.bench.probes import probe_lines

    for blk in probes["blocks"]:
        for nmatch, per in blk["nmatch"].items():
            out.line("")
            what = "worse-case" if nmatch == 0 else f"N-match {nmatch}"
            out.wrap(f"== probes on __slab_free: test03 {what}, bulk {probes['bulk']}, "
                     f"{_fmt_int(probes['loops'])} loops, {blk['state']} cache, {blk['driver']} "
                     "driver: % of calls freeing 1, 2, ... objects, mean objects per call, "
                     "calls per 1,000 objects freed", indent="   ")
            for ln in probe_lines(per):
                out.line(ln)
    out.line("(bulk_fallback = the module's per-object loop; a fast-path free onto the cpu "
             "freelist")
    out.line(" is no __slab_free call: objs via it < objs freed)")


def _probes_json(probes: dict[str, Any]) -> dict[str, Any]:
    return {"loops": probes["loops"], "bulk": probes.get("bulk"),
            "blocks": [{"state": b["state"], "driver": b["driver"],
                        "nmatch": {str(n): {name: dataclasses.asdict(s) | {
                            "mean": s.mean, "calls_per_1000": s.calls_per_1000}
                            for name, s in per.items()} for n, per in b["nmatch"].items()}}
                       for b in probes["blocks"]]}


def _print_summary(out: Out, plan: Plan, summary: dict[str, Any], peers_result: Any,
                   elapsed: float, failed: Sequence[Any]) -> None:
    from pyslub.bench import summary as sm

    out.line("")
    first = plan.blocks[0] if plan.blocks else None
    before = after = ""
    if first is not None:
        blk = summary[first.test]["blocks"][0]
        before, after = blk["before"], blk["after"]
    out.line(f"== summary: {after} vs {before}, median of {plan.rounds} rounds"
             if first else f"== summary: peers, median of {plan.rounds} rounds")
    spreads: list[tuple[float, str]] = []
    for b in plan.blocks:
        rows = sm.pair_rows(b.measurements, before, after,
                            kind="test03" if b.test == "test03" else "bulk_quick_reuse",
                            key=(lambda m: m.spec.nmatch) if b.test == "test03" else None)
        for r in rows:
            spreads += [(r.before.rel, f"bulk {r.bulk} {before}"),
                        (r.after.rel, f"bulk {r.bulk} {after}")]
        if b.test == "test02":
            rows = []
            ms = b.measurements
            r2 = sm.pair_rows(ms, before, after)
            if r2:
                r = r2[0]
                out.line(f"test02 bulk {r.bulk} [{b.driver}]: {after} {sm.fmt_ns(r.after.median)}"
                         f" ns vs {sm.fmt_ns(r.before.median)}, improved "
                         f"{sm._pct_cell(r.improved)}")
            continue
        if not rows:
            continue
        drv = f" [{b.driver}]" if len(plan.drivers) > 1 else ""
        label = {"seed": "seed-faithful (--fragment 8:12)", "fresh": "fresh cache",
                 "fragment": "fragmented cache"}[b.state]
        if b.config.keep_cache and b.state == "fresh":
            label = "kept cache"
        if b.test == "test03":
            label = f"test03 {label}, by N-match (0 = worse-case)"
        out.line(f"{label}{drv}:")
        for v in sm.verdicts(rows):
            text = v.text(after)
            if b.test == "test03":
                text = text.replace("bulk ", "N ").split("; seed")[0]
            out.wrap("  " + text, indent="    ")
        fast = [m for m in b.measurements if m.ok and m.spec.kind == "fastpath_reuse"]
        if fast:
            s = sm.Spread.of(m.record.time_interval / m.record.invoked_cnt for m in fast)
            out.line(f"  kmem fastpath reuse (alloc 1 + free 1): {sm._ns_cell(s)} ns; seed "
                     "10.5-11.9")
    if peers_result is not None:
        parts = []
        for p in peers_result.peers:
            rs = [peers_result.ratio(p, b) for b in peers_result.bulk_sizes]
            rs = [r for r in rs if r is not None]
            if p.name not in ("native", "python") and rs:
                parts.append(f"{p.name} {min(rs):.2f}-{max(rs):.2f}")
        if parts:
            out.wrap("peers, time / pyslub's (native; Python pools: python), over bulk sizes: "
                     + ", ".join(parts), indent="  ")
        if peers_result.skipped:
            out.line(f"  ({len(peers_result.skipped)} peer(s) skipped, see above)")
    if spreads:
        rel = sorted(spreads)
        med = rel[len(rel) // 2][0]
        worst = rel[-1]
        out.wrap(f"noise: quartile range typically {100 * med:.0f}% of the median, at worst "
                 f"{100 * worst[0]:.0f}% ({worst[1]}); trust ratios within one run",
                 indent="  ")
    n = sum(len(b.measurements) for b in plan.blocks)
    if peers_result is not None:
        n += sum(len(rs) for col in peers_result.records.values() for rs in col.values())
    extra = f"; {len(failed)} ABORTED" if failed else ""
    out.wrap(f"{n} measurements, {elapsed:.1f} s{extra}; --verbose: time_bench lines and "
             "counters; --json FILE", indent="  ")
