"""``pyslub bench threads``: pyslub's logical cpus as real threads.

Five parts (``--parts``), each in interleaved rounds with medians and quartiles; every ratio is
taken inside one round, between measurements made next to each other:

=========  ===================================================================================
scaling    test01's native loop (``kmem_cache_alloc_bulk`` + ``kmem_cache_free_bulk``, GIL
           released) in 1 thread, then in 2 threads at once on disjoint cpus of one cache
           (``with mem.on_cpu(k)``); objects per second of all threads, and the ratio.  Also with
           each thread pinned to its own core (``os.sched_setaffinity``).  Target: >= 1.7x
remote     remote frees, mimalloc-bench's xmalloc-test shape: a producer thread allocates
           batches on cpu 0 and hands them over a ring to a consumer thread that frees them on
           cpu 1 (``pyslub.bench._threads``, GIL-free, bulk or one object at a time), against the
           same program over glibc, mimalloc (and jemalloc when it loads) in the peers' C
           harness.  Target: pyslub >= mimalloc
big        the benchmark-sized version: 10^7 objects through the two threads, bulk batches
policy     the two default cpu policies (``Memory(cpu_policy="thread" | "sched")``): threads
           with no ``on_cpu``, python driver (``alloc_bulk`` + ``free_bulk``), a bulk that holds
           the GIL and one that releases it
cost       the price of thread safety: single-thread test01 with this build and with an older
           one (``--baseline PYTHON``: the interpreter of a venv holding it, e.g. caab96b, the
           last single-threaded core), interleaved child processes.  Target: <= 15 % slower
=========  ===================================================================================

The numbers are wall-clock objects per second (ns per object for "cost") on whatever else the
machine is doing: read the spread, and the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from pyslub._layout import FREE_BULK_STRATEGIES, SLAB_HWCACHE_ALIGN

__all__ = ["PARTS", "add_arguments", "run"]

PARTS = ("scaling", "remote", "big", "policy", "cost")
DEFAULT_PARTS = ("scaling", "remote", "big", "policy")
DEFAULT_BULKS = (16, 64)
OBJECT_SIZE = 232                   # test01's object (SLAB_HWCACHE_ALIGN: 256-byte slots)
REMOTE_SIZE = 256                   # malloc(256) on the C side, a 256-byte cache on ours
BIG_OBJECTS = 10_000_000
CONTROL_LOOPS = 20_000_000          # the empty loop: ~10 ms at 2 iterations per ns
POLICY_BULKS = (16, 512)            # below and above NOGIL_MIN
TARGETS = {"scaling": 1.7, "remote": 1.0, "cost": 1.15}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``pyslub bench threads`` (the others it reads: --rounds, --loops,
    --bulk-sizes, --cpus, --json, --quiet, --verbose)."""
    g = parser.add_argument_group("threads", "options of `pyslub bench threads`")
    g.add_argument("--parts", default=None, metavar="LIST",
                   help=f"threads and shared: which parts, comma separated (threads: "
                   f"{', '.join(PARTS)}; default: {','.join(DEFAULT_PARTS)}, and cost with "
                   "--baseline; shared: pipe, single)")
    g.add_argument("--baseline", default=None, metavar="PYTHON",
                   help="threads: the Python of a venv with an older pyslub build, for the "
                   "'cost' part (e.g. /tmp/old/.venv/bin/python built at caab96b)")


def _parts(args: argparse.Namespace) -> list[str]:
    if args.parts is None:
        return list(DEFAULT_PARTS) + (["cost"] if args.baseline else [])
    parts = [p for p in args.parts.replace(",", " ").split() if p]
    bad = [p for p in parts if p not in PARTS]
    if bad or not parts:
        args.parser.error(f"--parts: unknown {', '.join(bad) or repr(args.parts)}; choose from "
                          f"{', '.join(PARTS)}")
    if "cost" in parts and not args.baseline:
        args.parser.error("--parts cost needs --baseline PYTHON (an older build to compare)")
    return parts


# =============================================================================================
# Threads and clocks
# =============================================================================================

def _together(fns: Sequence[Callable[[], Any]]) -> list[Any]:
    """Run each function in its own thread, released together; their results."""
    out: list[Any] = [None] * len(fns)
    errors: list[BaseException] = []
    gate = threading.Barrier(len(fns))

    def body(k: int) -> None:
        try:
            gate.wait()
            out[k] = fns[k]()
        except BaseException as e:   # noqa: BLE001 (re-raised below)
            errors.append(e)

    ts = [threading.Thread(target=body, args=(k,)) for k in range(len(fns))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise errors[0]
    return out


def _rate(results: Sequence[tuple[int, int, int, int, int]]) -> float:
    """Objects per second of loops that ran together: all their objects over the span from
    the first start to the last stop (wall clock)."""
    objects = sum(r[0] for r in results)
    span = max(r[4] for r in results) - min(r[3] for r in results)
    return objects / span * 1e9 if span > 0 else float("nan")


class _Pinned:
    """``with _Pinned(core):`` the calling thread runs on ``core`` only (None: unchanged)."""

    def __init__(self, core: int | None) -> None:
        self.core = core
        self.saved: set[int] | None = None

    def __enter__(self) -> None:
        if self.core is not None:
            tid = threading.get_native_id()          # Linux: a thread id is a pid here
            self.saved = os.sched_getaffinity(tid)
            os.sched_setaffinity(tid, {self.core})

    def __exit__(self, *exc: object) -> None:
        if self.saved is not None:
            os.sched_setaffinity(threading.get_native_id(), self.saved)


def _cores() -> list[int]:
    return sorted(os.sched_getaffinity(0))


# =============================================================================================
# The measurements
# =============================================================================================

def scaling_once(nthreads: int, bulk: int, strategy: str, objects: int, nr_cpus: int,
                 pin: bool) -> dict[str, Any]:
    """test01's loop in ``nthreads`` threads on cpus 0.. of one fresh cache (Memory unchecked):
    objects per second of all of them, and the SLUB counters per object."""
    import pyslub
    from pyslub.bench import _native

    mem = pyslub.Memory(size=max(64 << 20, 4 * bulk * nthreads * 4096), nr_cpus=nr_cpus,
                        checks=False)
    cache = mem.create_cache("threads-scaling", OBJECT_SIZE, flags=SLAB_HWCACHE_ALIGN)
    sid = FREE_BULK_STRATEGIES.index(strategy)
    cores = _cores()
    objs = [_native.objs_array(max(bulk, 512)) for _ in range(nthreads)]   # no shared lines

    def loop(k: int) -> Callable[[], Any]:
        def go() -> Any:
            with mem.on_cpu(k), _Pinned(cores[k % len(cores)] if pin else None):
                return _native.bench_bulk_quick_reuse(cache, max(1, objects // bulk), bulk, sid,
                                                      objs[k])
        return go

    res = _together([loop(k) for k in range(nthreads)])
    n = sum(r[0] for r in res)
    stats = cache.stats()
    mem.destroy_cache(cache)
    return {"rate": _rate(res), "objects": n,
            "per_object": {k: stats[k] / n for k in ("cmpxchg_double_cpu", "cmpxchg_double_slab",
                                                     "cmpxchg_double_cpu_fail",
                                                     "cmpxchg_double_fail", "list_lock",
                                                     "local_lock")}}


def control_once(nthreads: int, loops: int, pin: bool) -> float:
    """The machine's parallelism right now: an empty compiled loop (time_bench_for_loop, GIL
    released) in ``nthreads`` threads; iterations per second of all of them."""
    from pyslub.bench import _native

    cores = _cores()

    def loop(k: int) -> Callable[[], Any]:
        def go() -> Any:
            with _Pinned(cores[k % len(cores)] if pin else None):
                return _native.bench_for_loop(loops)
        return go

    return _rate(_together([loop(k) for k in range(nthreads)]))


def remote_pyslub(total: int, batch: int, bulk: bool, strategy: str) -> dict[str, Any]:
    """The producer/consumer pair of ``pyslub.bench._threads`` on cpus 0 and 1."""
    import pyslub
    from pyslub.bench import _threads

    mem = pyslub.Memory(size=256 << 20, nr_cpus=2, checks=False)
    cache = mem.create_cache("threads-remote", REMOTE_SIZE)
    ring = _threads.Handoff(64, batch)
    sid = FREE_BULK_STRATEGIES.index(strategy)

    def producer() -> Any:
        with mem.on_cpu(0):
            return _threads.produce(ring, cache, total, batch, bulk)

    def consumer() -> Any:
        with mem.on_cpu(1):
            return _threads.consume(ring, cache, total, bulk, sid)

    res = _together([producer, consumer])
    if res[0][0] != total or res[1][0] != total:
        raise RuntimeError(f"producer/consumer moved {res[0][0]}/{res[1][0]} of {total}")
    stats = cache.stats()
    live = cache.live_objects()
    if live == 0:
        mem.destroy_cache(cache)
    return {"rate": _rate(res), "live": live,
            "per_object": {k: stats[k] / total for k in ("free_slowpath", "alloc_slab",
                                                         "list_lock", "local_lock",
                                                         "cmpxchg_double_fail")}}


def policy_once(policy: str, nthreads: int, bulk: int, objects: int,
                nr_cpus: int) -> dict[str, Any]:
    """Threads with no on_cpu (the Memory's default policy), python driver: each repeats
    alloc_bulk(p) + free_bulk(p) of ``bulk`` objects."""
    import numpy as np

    import pyslub
    from pyslub.bench.drivers import bench_clock

    mem = pyslub.Memory(size=256 << 20, nr_cpus=nr_cpus, cpu_policy=policy)
    cache = mem.create_cache("threads-policy", REMOTE_SIZE)
    clock = bench_clock()
    loops = max(1, objects // bulk)

    def one() -> Any:
        p = np.zeros(bulk, dtype=np.uint64)
        alloc, free = cache.alloc_bulk, cache.free_bulk
        ns0 = clock.wallclock_ns()
        for _ in range(loops):
            alloc(p)
            free(p)
        return loops * bulk, 0, 0, ns0, clock.wallclock_ns()

    res = _together([one] * nthreads)
    n = sum(r[0] for r in res)
    s = cache.stats()
    mem.destroy_cache(cache)
    return {"rate": _rate(res),
            "per_object": {"remote": s["free_slowpath"] / n,
                           "cmpxchg_fail": (s["cmpxchg_double_cpu_fail"]
                                            + s["cmpxchg_double_fail"]) / n,
                           "local_lock": s["local_lock"] / n}}


# the 'cost' child: the same code must run on the older build (no checks=, older counters)
COST_CHILD = r'''
import inspect, json, sys
import pyslub
from pyslub.bench import _native
from pyslub._layout import FREE_BULK_STRATEGIES, SLAB_HWCACHE_ALIGN
objects, bulks, strategies, size = (int(sys.argv[1]), [int(b) for b in sys.argv[2].split(",")],
                                    sys.argv[3].split(","), int(sys.argv[4]))
kw = {"checks": False} if "checks" in inspect.signature(pyslub.Memory).parameters else {}
mem = pyslub.Memory(size=64 << 20, nr_cpus=8, **kw)
objs = _native.objs_array(256)
rows = []
for strategy in ["single"] + strategies:
    for bulk in ([1] if strategy == "single" else bulks):
        cache = mem.create_cache("cost", size, flags=SLAB_HWCACHE_ALIGN)
        if strategy == "single":
            r = _native.bench_fastpath_reuse(cache, objects)
        else:
            r = _native.bench_bulk_quick_reuse(cache, max(1, objects // bulk), bulk,
                                               FREE_BULK_STRATEGIES.index(strategy), objs)
        s = cache.stats()
        rows.append({"strategy": strategy, "bulk": bulk, "ns": (r[4] - r[3]) / r[0],
                     "stats": {k: v / r[0] for k, v in s.items() if v}})
        mem.destroy_cache(cache)
print(json.dumps({"version": pyslub.__version__, "file": pyslub.__file__, "rows": rows}))
'''


def cost_child(python: str, objects: int, bulks: Sequence[int], strategies: Sequence[str],
               size: int = OBJECT_SIZE) -> dict[str, Any]:
    """One round of single-thread test01 in the interpreter ``python`` (a child process)."""
    env = dict(os.environ)
    env.pop("PYSLUB_PURE", None)
    proc = subprocess.run([python, "-c", COST_CHILD, str(objects), ",".join(map(str, bulks)),
                           ",".join(strategies), str(size)], capture_output=True, text=True,
                          env=env, timeout=600, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{python}: the cost child failed: {proc.stderr.strip()[-500:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# =============================================================================================
# The run
# =============================================================================================

def _spread(values: Sequence[float]) -> Any:
    from pyslub.bench.summary import Spread

    return Spread.of(values)


def _m(v: float) -> str:
    """Objects per second as millions, 3 significant digits (2 below one million)."""
    return f"{v / 1e6:.3g}" if v >= 1e6 else f"{v / 1e6:.2g}"


def _cell(values: Sequence[float], fmt: Callable[[float], str] = _m) -> str:
    s = _spread(values)
    return f"{fmt(s.median)} [{fmt(s.q1)}-{fmt(s.q3)}]"


def _ratio_cell(values: Sequence[float]) -> str:
    return _cell(values, lambda v: f"{v:.2f}")


def run(args: argparse.Namespace) -> int:
    """Run ``pyslub bench threads``; returns the exit status."""
    import pyslub
    from pyslub.bench.command import Out, _check_output, _maybe_reexec_for_jemalloc
    from pyslub.bench.machine import cpu_model

    parts = _parts(args)
    _check_output(args.json, "--json", args.parser)
    if {"remote", "big"} & set(parts):
        _maybe_reexec_for_jemalloc(args)         # as `pyslub bench peers` does
    bulks = list(args.bulk_sizes or DEFAULT_BULKS)
    if max(bulks) > 4096:
        args.parser.error("--bulk-sizes: the threads benchmarks take at most 4096")
    rounds = args.rounds or (5 if pyslub.COMPILED else 1)
    objects = args.loops or (2_000_000 if pyslub.COMPILED else 20_000)
    strategy = args.after
    out = Out(args.verbose, args.quiet)
    t0 = time.perf_counter()
    core = "compiled core" if pyslub.COMPILED else "UNCOMPILED core (PYSLUB_PURE)"
    out.wrap(f"pyslub {pyslub.__version__} bench threads ({', '.join(parts)}): {core}, "
             f"{rounds} interleaved rounds, {objects:,} objects per measurement")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    out.wrap(f"machine: {cpu_model()}, {os.cpu_count()} cpus (cores usable: "
             f"{len(_cores())}), Python {sys.version.split()[0]}; load average {load}")
    cores = _cores()
    if len(cores) < 2:
        out.line("WARNING: fewer than two usable cores: nothing can run in parallel")
    record: dict[str, Any] = {"parts": parts, "rounds": rounds, "objects": objects,
                              "bulks": bulks, "strategy": strategy, "cpu": cpu_model(),
                              "loadavg_start": os.getloadavg(), "argv": list(args.argv)}
    verdicts: list[str] = []
    harness = None
    if {"remote", "big"} & set(parts):
        harness, found, skipped = _harness()
        record["allocators"], record["skipped"] = found, skipped
        for line in skipped:
            out.wrap(line)
    steps = _steps(parts, rounds, bulks, len(_peer_names(harness)))
    out.start(steps)
    try:
        for part in parts:
            fn = {"scaling": _part_scaling, "remote": _part_remote, "big": _part_big,
                  "policy": _part_policy, "cost": _part_cost}[part]
            res = fn(args, out, rounds, objects, bulks, strategy, harness)
            record[part] = res.pop("_raw")
            verdicts += res.get("verdicts", [])
            out.line("")
            out.wrap(res["title"], indent="   ")
            for ln in res["lines"]:
                out.line(ln)
            for ln in res.get("notes", []):
                out.wrap(ln)
    finally:
        out.stop()
    out.line("")
    out.line("== against the issue's targets")
    for v in verdicts:
        out.wrap(v, indent="    ")
    elapsed = time.perf_counter() - t0
    out.line(f"(took {elapsed:.0f} s; load average now "
             f"{', '.join(f'{x:.2f}' for x in os.getloadavg())})")
    record["elapsed_s"] = elapsed
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(record, f, indent=1, default=float)
        out.line(f"wrote {args.json}")
    return 0


def _steps(parts: Sequence[str], rounds: int, bulks: Sequence[int], npeers: int) -> int:
    """Progress steps of the run (one per measurement)."""
    per = {"scaling": rounds * (len(bulks) * 4 + 2), "remote": rounds * len(bulks) * (2 + npeers),
           "big": min(rounds, 3) * (2 + min(npeers, 2)), "policy": rounds * len(POLICY_BULKS) * 4,
           "cost": rounds * 2}
    return sum(per[p] for p in parts)


def _harness() -> tuple[Any, list[dict[str, Any]], list[str]]:
    from pyslub.bench import peers

    path, why = peers.build_harness()
    if path is None:
        return None, [], [f"C allocators: skipped, {why}"]
    h = peers.Harness(path)
    found, skipped = peers.find_allocators(h)
    return h, found, skipped


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    from pyslub.bench.summary import text_table

    return text_table(header, rows, left=(0,), width=80)


# ---- scaling ---------------------------------------------------------------------------------

def _part_scaling(args, out, rounds, objects, bulks, strategy, harness) -> dict[str, Any]:
    import pyslub

    raw: dict[str, list[float]] = {}
    counters: dict[str, dict[str, float]] = {}
    for rnd in range(rounds):
        for pin in (False, True):
            tag = f"control/{'pinned' if pin else 'free'}"
            one, two = (control_once(n, CONTROL_LOOPS if pyslub.COMPILED else 20_000, pin)
                        for n in (1, 2))
            raw.setdefault(f"{tag}/ratio", []).append(two / one)
            out.advance(f"scaling round {rnd + 1}/{rounds} control")
        for bulk in bulks:
            for pin in (False, True):
                one = scaling_once(1, bulk, strategy, objects, args.cpus, pin)
                two = scaling_once(2, bulk, strategy, objects, args.cpus, pin)
                tag = f"{bulk}/{'pinned' if pin else 'free'}"
                raw.setdefault(f"{tag}/1", []).append(one["rate"])
                raw.setdefault(f"{tag}/2", []).append(two["rate"])
                raw.setdefault(f"{tag}/ratio", []).append(two["rate"] / one["rate"])
                counters[f"{tag}/1"], counters[f"{tag}/2"] = one["per_object"], two["per_object"]
                out.advance(f"scaling round {rnd + 1}/{rounds} bulk {bulk}")
                out.advance("")
    title = (f"== scaling: test01's native loop ({strategy}), 1 thread vs 2 threads on cpus 0 "
             "and 1 of one cache; Mobj/s (all threads), median [q1-q3] of rounds")
    rows = []
    for bulk in bulks:
        for pin in (False, True):
            tag = f"{bulk}/{'pinned' if pin else 'free'}"
            rows.append([f"bulk {bulk}{', pinned' if pin else ''}", _cell(raw[f"{tag}/1"]),
                         _cell(raw[f"{tag}/2"]), _ratio_cell(raw[f"{tag}/ratio"])])
    for pin in (False, True):
        rows.append([f"empty loop{', pinned' if pin else ''}", "", "",
                     _ratio_cell(raw[f"control/{'pinned' if pin else 'free'}/ratio"])])
    lines = _table(["", "1 thread", "2 threads", "ratio 2/1"], rows)
    notes = ["empty loop: the same two threads running an empty compiled loop, the "
             "parallelism the machine gave in this run (2.00 on two idle cores)",
             "per object, 2 threads: " + "; ".join(
        f"bulk {b}: local_lock {counters[f'{b}/free/2']['local_lock']:.3f}, list_lock "
        f"{counters[f'{b}/free/2']['list_lock']:.3f}, swap fails "
        f"{counters[f'{b}/free/2']['cmpxchg_double_cpu_fail'] + counters[f'{b}/free/2']['cmpxchg_double_fail']:.4f}"  # noqa: E501
        for b in bulks)]
    best = {b: max(_spread(raw[f"{b}/free/ratio"]).median,
                   _spread(raw[f"{b}/pinned/ratio"]).median) for b in bulks}
    verdicts = [f"scaling (target >= {TARGETS['scaling']}x): " + ", ".join(
        f"bulk {b} {best[b]:.2f}x {'met' if best[b] >= TARGETS['scaling'] else 'NOT met'}"
        for b in bulks)]
    return {"title": title, "lines": lines, "notes": notes, "verdicts": verdicts,
            "_raw": {"rates": raw, "counters": counters}}


# ---- remote frees -----------------------------------------------------------------------------

def _remote_round(harness, total: int, batch: int, strategy: str,
                  peers: Sequence[str], out, label: str) -> dict[str, float]:
    got: dict[str, float] = {}
    got["pyslub bulk"] = remote_pyslub(total, batch, True, strategy)["rate"]
    out.advance(label)
    got["pyslub 1x1"] = remote_pyslub(total, batch, False, strategy)["rate"]
    out.advance(label)
    for peer in peers:
        r = harness.xmalloc(peer, total, batch, REMOTE_SIZE)
        got[peer] = r[0] / (r[4] - r[3]) * 1e9
        out.advance(label)
    return got


def _peer_names(harness) -> list[str]:
    return [] if harness is None else list(harness.slots)


def _part_remote(args, out, rounds, objects, bulks, strategy, harness) -> dict[str, Any]:
    peers = _peer_names(harness)
    raw: dict[str, dict[str, list[float]]] = {}
    for rnd in range(rounds):
        for bulk in bulks:
            got = _remote_round(harness, objects, bulk, strategy, peers, out,
                                f"remote round {rnd + 1}/{rounds} batch {bulk}")
            for k, v in got.items():
                raw.setdefault(str(bulk), {}).setdefault(k, []).append(v)
            if "mimalloc" in got:
                raw[str(bulk)].setdefault("ratio", []).append(got["pyslub bulk"] / got["mimalloc"])
    cols = ["pyslub bulk", "pyslub 1x1", *peers]
    title = (f"== remote frees: a producer thread allocates {REMOTE_SIZE}-byte objects in "
             "batches on cpu 0, a consumer thread frees them on cpu 1 (xmalloc-test shape); "
             "Mobj/s, median [q1-q3]")
    rows = [[c, *[_cell(raw[str(b)][c]) for b in bulks]] for c in cols]
    lines = _table(["", *[f"batch {b}" for b in bulks]], rows)
    notes = [f"pyslub bulk: alloc_bulk + free_bulk ({strategy}); pyslub 1x1: "
             "slab_alloc_node + do_slab_free per object; C: malloc + free per object"]
    verdicts = []
    if "mimalloc" in peers:
        notes.append("pyslub bulk / mimalloc, same round: " + ", ".join(
            f"batch {b} {_ratio_cell(raw[str(b)]['ratio'])}" for b in bulks))
        verdicts.append("remote frees (target: pyslub native >= mimalloc): " + ", ".join(
            f"batch {b} {_spread(raw[str(b)]['ratio']).median:.2f}x "
            f"{'met' if _spread(raw[str(b)]['ratio']).median >= 1 else 'NOT met'}"
            for b in bulks))
    return {"title": title, "lines": lines, "notes": notes, "verdicts": verdicts, "_raw": raw}


def _part_big(args, out, rounds, objects, bulks, strategy, harness) -> dict[str, Any]:
    import pyslub

    peers = [p for p in _peer_names(harness) if p in ("glibc", "mimalloc")]
    total = BIG_OBJECTS if pyslub.COMPILED else 50_000
    batch = max(bulks)
    raw: dict[str, list[float]] = {}
    for rnd in range(min(rounds, 3)):
        raw.setdefault("pyslub bulk", []).append(remote_pyslub(total, batch, True,
                                                               strategy)["rate"])
        out.advance(f"big round {rnd + 1}")
        for peer in peers:
            r = harness.xmalloc(peer, total, batch, REMOTE_SIZE)
            raw.setdefault(peer, []).append(r[0] / (r[4] - r[3]) * 1e9)
            out.advance(f"big round {rnd + 1} {peer}")
        out.advance("")
    title = (f"== {total:,} objects through 2 threads (producer/consumer, batches of {batch}): "
             "Mobj/s, and seconds for all of them")
    rows = [[k, _cell(v), f"{total / _spread(v).median:.2f} s"] for k, v in raw.items()]
    return {"title": title, "lines": _table(["", "Mobj/s", "time"], rows), "_raw": raw}


# ---- policies ----------------------------------------------------------------------------------

def _part_policy(args, out, rounds, objects, bulks, strategy, harness) -> dict[str, Any]:
    import pyslub

    n = objects // 10 if pyslub.COMPILED else objects
    raw: dict[str, list[float]] = {}
    extra: dict[str, dict[str, float]] = {}
    for rnd in range(rounds):
        for bulk in POLICY_BULKS:
            for nthreads in (2, 4):
                for policy in ("thread", "sched"):
                    r = policy_once(policy, nthreads, bulk, n, args.cpus)
                    raw.setdefault(f"{bulk}/{nthreads}/{policy}", []).append(r["rate"])
                    extra[f"{bulk}/{nthreads}/{policy}"] = r["per_object"]
                    out.advance(f"policy round {rnd + 1}/{rounds}")
                t, s = raw[f"{bulk}/{nthreads}/thread"][-1], raw[f"{bulk}/{nthreads}/sched"][-1]
                raw.setdefault(f"{bulk}/{nthreads}/ratio", []).append(t / s)
    title = (f"== cpu policies: threads without on_cpu, python driver alloc_bulk + free_bulk, "
             f"nr_cpus {args.cpus}; Mobj/s, median [q1-q3]")
    rows = []
    for bulk in POLICY_BULKS:
        for nthreads in (2, 4):
            k = f"{bulk}/{nthreads}"
            rows.append([f"bulk {bulk}", str(nthreads), _cell(raw[f"{k}/thread"]),
                         _cell(raw[f"{k}/sched"]), _ratio_cell(raw[f"{k}/ratio"])])
    notes = ["free_slowpath per object (frees that missed the thread's cpu slab), thread/sched: "
             + ", ".join(f"bulk {b} x{t} {extra[f'{b}/{t}/thread']['remote']:.3f}/"
                         f"{extra[f'{b}/{t}/sched']['remote']:.3f}"
                         for b in POLICY_BULKS for t in (2, 4))]
    return {"title": title, "lines": _table(["", "threads", "thread", "sched", "thread/sched"],
                                            rows), "notes": notes,
            "_raw": {"rates": raw, "per_object": extra}}


# ---- cost of safety ----------------------------------------------------------------------------

def _part_cost(args, out, rounds, objects, bulks, strategy, harness) -> dict[str, Any]:
    from pyslub.bench.seed import BULK_SIZES

    strategies = list(dict.fromkeys([args.before, args.after]))
    sizes = list(args.bulk_sizes or BULK_SIZES)
    me, old = sys.executable, args.baseline
    raw: dict[str, dict[str, list[float]]] = {"new": {}, "old": {}, "ratio": {}}
    stats: dict[str, dict[str, dict[str, float]]] = {"new": {}, "old": {}}
    versions: dict[str, str] = {}
    for rnd in range(rounds):
        order = (("old", old), ("new", me)) if rnd % 2 == 0 else (("new", me), ("old", old))
        got = {}
        for tag, py in order:
            res = cost_child(py, objects, sizes, strategies)
            versions[tag] = res["file"]
            got[tag] = {f"{r['strategy']}/{r['bulk']}": r for r in res["rows"]}
            out.advance(f"cost round {rnd + 1}/{rounds} ({tag})")
        for key, r in got["new"].items():
            raw["new"].setdefault(key, []).append(r["ns"])
            raw["old"].setdefault(key, []).append(got["old"][key]["ns"])
            raw["ratio"].setdefault(key, []).append(r["ns"] / got["old"][key]["ns"])
            stats["new"][key], stats["old"][key] = r["stats"], got["old"][key]["stats"]

    def ns(v: float) -> str:
        return f"{v:.2f}"

    title = (f"== cost of thread safety: single-thread test01 (native driver), this build vs "
             f"--baseline, ns per object, median [q1-q3]; baseline {versions.get('old')}")
    rows = []
    worst = 0.0
    for key in raw["new"]:
        r = _spread(raw["ratio"][key]).median
        worst = max(worst, r)
        rows.append([key.replace("single/1", "fastpath 1x1"), _cell(raw["old"][key], ns),
                     _cell(raw["new"][key], ns), f"{(r - 1) * 100:+.0f}%"])
    lines = _table(["strategy/bulk", "baseline", "this build", "slower"], rows)
    keys = ("local_lock", "list_lock", "cmpxchg_double_cpu", "cmpxchg_double_slab")
    notes = ["counters per object (this build / baseline), bulk " + str(max(sizes)) + ": "
             + "; ".join(f"{k} {stats['new'].get(f'{args.after}/{max(sizes)}', {}).get(k, 0):.3f}"  # noqa: E501
                             f"/{stats['old'].get(f'{args.after}/{max(sizes)}', {}).get(k, 0):.3f}"
                             for k in keys)]
    verdicts = [f"cost of safety (target: at most 15 % slower at any bulk size): worst "
                f"{(worst - 1) * 100:+.0f}% {'met' if worst <= TARGETS['cost'] else 'NOT met'}"]
    return {"title": title, "lines": lines, "notes": notes, "verdicts": verdicts,
            "_raw": {"ns": raw, "stats": stats, "versions": versions}}

