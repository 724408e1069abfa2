"""SLUB 4.4, 6.18 and 7.0 side by side: ``pyslub bench --slub all`` and ``pyslub bench sheaves``.

``--slub all`` runs test01's ``kmem bulk_quick_reuse`` (and ``kmem fastpath reuse``) on the
three generations in interleaved rounds -- 4.4 with its merged ``lookahead`` bulk free, 6.18
with opt-in sheaves (``--sheaf-capacity``, default 32 like ``maple_node``) above the same cpu
slabs, 7.0 with sheaves for every cache (capacity from calculate_sheaf_capacity) -- and prints
ns per object with spreads, the ratio to 4.4, and the counters per object that explain them.

``sheaves`` is the 6.18 cover letter's microbenchmark (sheaves.md §5, slub.md §5.5): allocate
N objects one by one, then free them one by one, in allocation order (FIFO) or shuffled, for
N = 1, 10, 100, 1000; no sheaves against sheaves (capacity 32), and 7.0; next to the gains the
letter published.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

# the 6.18 cover letter (Ryzen 7 5700, capacity 32, no memcg): (batch, shuffled) -> gain %
LETTER_GAIN = {(1, False): 17.2, (10, False): 15.3, (100, False): 31.0, (1000, False): 30.2,
               (10, True): 12.6, (100, True): 28.6, (1000, True): 6.3}
GENERATIONS = ("4.4", "6.18", "7.0")
STRATEGY = {"4.4": "lookahead", "6.18": "lookahead", "7.0": "swap"}
COUNTERS = ("alloc_fastpath", "alloc_cpu_sheaf", "alloc_slowpath", "free_fastpath",
            "free_cpu_sheaf", "free_slowpath", "sheaf_refill", "sheaf_flush", "barn_get",
            "barn_put", "alloc_slab", "free_slab", "cmpxchg_double_cpu", "cmpxchg_double_slab",
            "list_lock", "local_lock", "barn_lock")
ABBREV = {"alloc_fastpath": "aF", "alloc_cpu_sheaf": "aPCS", "alloc_slowpath": "aS",
          "free_fastpath": "fF", "free_cpu_sheaf": "fPCS", "free_slowpath": "fS",
          "sheaf_refill": "refill", "sheaf_flush": "flush", "barn_get": "bGet",
          "barn_put": "bPut", "alloc_slab": "aSlab", "free_slab": "fSlab",
          "cmpxchg_double_cpu": "cxC", "cmpxchg_double_slab": "cxS", "list_lock": "listL",
          "local_lock": "localL", "barn_lock": "barnL"}


def _capacity_note(slub: str, cap: int) -> str:
    return {"4.4": "cpu slabs, no sheaves", "6.18": f"sheaves of {cap} above the cpu slabs",
            "7.0": f"sheaves of {cap}, no cpu slabs"}[slub]


def run(args: argparse.Namespace) -> int:
    """``pyslub bench --slub all`` or ``pyslub bench sheaves``."""
    if args.test == "sheaves":
        return run_sheaves(args)
    return run_generations(args)


# =============================================================================================
# --slub all
# =============================================================================================

def run_generations(args: argparse.Namespace) -> int:
    import pyslub
    from pyslub.bench import report, suite
    from pyslub.bench import summary as sm
    from pyslub.bench.machine import cpu_model

    if args.test not in ("test01",):
        args.parser.error("--slub all runs test01 (and peers: pyslub bench --slub 7.0 peers)")
    rounds = args.rounds or (9 if pyslub.COMPILED else 1)
    loops = args.loops or (1_000_000 if pyslub.COMPILED else 2_000)
    bulks = tuple(args.bulk_sizes or suite.BULK_SIZES)
    cap618 = args.sheaf_capacity or 32
    fragment = args.fragment or (0, None)
    configs = {}
    for gen in GENERATIONS:
        cap = cap618 if gen == "6.18" else args.sheaf_capacity if gen == "7.0" else None
        configs[gen] = suite.BenchConfig(
            strategies=(STRATEGY[gen],), loops=loops, bulk_sizes=bulks, nr_cpus=args.cpus,
            object_size=args.object_size, repeat=rounds, fragment=fragment[0],
            fragment_free=fragment[1], kinds=("bulk_quick_reuse", "fastpath_reuse"),
            slub=gen, sheaf_capacity=cap)
    g = configs["4.4"].geometry("test01")
    caps = {gen: configs[gen].sheaf_capacity_for("test01") for gen in GENERATIONS}
    print(f"pyslub {pyslub.__version__} bench --slub all: test01 kmem bulk_quick_reuse on three "
          f"SLUB generations, native driver, {rounds} interleaved rounds")
    print(f"machine: {cpu_model()}; object {g.object_size} B -> size {g.size}, "
          f"{g.objects} objs/slab; {loops:,} objects per measurement")
    for gen in GENERATIONS:
        print(f"  {gen:>4}: {_capacity_note(gen, caps[gen])}; free_bulk {STRATEGY[gen]}")
    if fragment[0]:
        print(f"  cache state: --fragment {fragment[0]}:{fragment[1]}")
    runners = {gen: suite.Runner(cfg, "native", printer=lambda _line: None)
               for gen, cfg in configs.items()}
    plans = {gen: suite.plan("test01", cfg, "native") for gen, cfg in configs.items()}
    ms: dict[str, list[Any]] = {gen: [] for gen in GENERATIONS}
    t0 = time.perf_counter()
    try:
        for rnd in range(rounds):
            order = GENERATIONS[rnd % 3:] + GENERATIONS[:rnd % 3]   # who goes first rotates
            for gen in order:
                for spec in plans[gen]:
                    if spec.round_no == rnd:
                        ms[gen].append(runners[gen].measure(spec))
    finally:
        for r in runners.values():
            r.finish()
    elapsed = time.perf_counter() - t0
    spreads: dict[str, dict[int, sm.Spread]] = {}
    for gen in GENERATIONS:
        by: dict[int, list[float]] = {}
        for m in ms[gen]:
            if m.ok and m.spec.kind == "bulk_quick_reuse":
                by.setdefault(m.spec.step, []).append(report.ns_of(m.record))
            elif m.ok and m.spec.kind == "fastpath_reuse":
                by.setdefault(0, []).append(report.ns_of(m.record))
        spreads[gen] = {b: sm.Spread.of(v) for b, v in by.items()}
    print()
    print("ns/object (alloc+free): median [q1-q3] of rounds; ratio = 4.4's time / this one's"
          " (> 1: faster)")
    rows = []
    for b in (0, *bulks):
        cells = ["1*" if b == 0 else str(b)]
        for gen in GENERATIONS:
            s = spreads[gen].get(b)
            cells.append("-" if s is None else f"{sm.fmt_ns(s.median)} {sm._range_cell(s)}")
        for gen in GENERATIONS[1:]:
            a, x = spreads["4.4"].get(b), spreads[gen].get(b)
            cells.append("-" if not a or not x else f"{a.median / x.median:.2f}")
        rows.append(cells)
    for ln in sm.text_table(["bulk", *GENERATIONS, "4.4/6.18", "4.4/7.0"], rows):
        print(ln)
    print("  1*: kmem fastpath reuse (one kmem_cache_alloc + one kmem_cache_free)")
    print()
    print("counters per object (medians over rounds):")
    abbrev = [c for c in COUNTERS]
    rows = []
    for b in [x for x in (32, 250) if x in bulks] or [bulks[-1]]:
        for gen in GENERATIONS:
            sel = [m for m in ms[gen] if m.ok and m.spec.step == b]
            med = suite.median_stats(sel)
            rows.append([f"{b}", gen, *(_fmt_cnt(med.get(c, 0.0)) for c in abbrev)])
    for ln in sm.text_table(["bulk", "slub", *(ABBREV[c] for c in abbrev)], rows):
        print(ln)
    print("  " + ", ".join(f"{ABBREV[c]}={c}" for c in abbrev))
    print(f"({sum(len(v) for v in ms.values())} measurements, {elapsed:.1f} s)")
    if args.json:
        report.write_json(args.json, [m.to_dict() | {"slub": gen} for gen in GENERATIONS
                                      for m in ms[gen]],
                          meta={"command": "bench --slub all", "rounds": rounds,
                                "loops": loops, "capacities": caps})
        print(f"wrote {args.json}")
    if args.plot:
        _plot_generations(args.plot, spreads, bulks, caps, g, rounds)
        print(f"wrote {args.plot}")
    return 0


def _fmt_cnt(v: float) -> str:
    return "0" if v == 0 else f"{v:.3f}" if v < 10 else f"{v:.1f}"


def _plot_generations(path: str, spreads: dict, bulks: Sequence[int], caps: dict, g: Any,
                      rounds: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pyslub.bench.seed import SEED_AFTER, SEED_BEFORE

    fig, ax = plt.subplots(figsize=(8.5, 4.8), layout="constrained")
    colors = {"4.4": "tab:blue", "6.18": "tab:orange", "7.0": "tab:red"}
    for gen in GENERATIONS:
        xs = [b for b in bulks if b in spreads[gen]]
        med = [spreads[gen][b].median for b in xs]
        lo = [spreads[gen][b].q1 for b in xs]
        hi = [spreads[gen][b].q3 for b in xs]
        ax.plot(xs, med, marker="o", ms=4, color=colors[gen],
                label=f"SLUB {gen}: {_capacity_note(gen, caps[gen])}")
        ax.fill_between(xs, lo, hi, color=colors[gen], alpha=0.15, lw=0)
    ax.plot([p.bulk for p in SEED_BEFORE], [p.ns for p in SEED_BEFORE], "x", color="0.55",
            label="seed 2015, before (i7-4790K)")
    ax.plot([p.bulk for p in SEED_AFTER], [p.ns for p in SEED_AFTER], "+", color="0.3",
            label="seed 2015, after")
    ax.set_xscale("log")
    ticks = [b for b in (1, 2, 4, 8, 16, 32, 64, 128, 250) if bulks[0] <= b <= bulks[-1]]
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.minorticks_off()
    ax.set_ylim(bottom=0)
    ax.set_xlabel("bulk size (objects per kmem_cache_alloc_bulk / free_bulk)")
    ax.set_ylabel("ns per object (alloc + free)")
    ax.set_title(f"test01 bulk_quick_reuse on three SLUB generations: native driver, fresh "
                 f"cache, {g.size}-byte slots\nmedian of {rounds} rounds, quartiles shaded",
                 fontsize=10)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=130)
    plt.close(fig)


# =============================================================================================
# pyslub bench sheaves: the 6.18 cover letter's experiment
# =============================================================================================

def run_sheaves(args: argparse.Namespace) -> int:
    import pyslub
    from pyslub import Memory
    from pyslub.bench import _native
    from pyslub.bench import summary as sm
    from pyslub.bench.machine import cpu_model
    from pyslub.bench.time_bench import TimeBenchRecord

    sizes = tuple(args.bulk_sizes or (1, 10, 100, 1000))
    rounds = args.rounds or (7 if pyslub.COMPILED else 1)
    loops = args.loops or (400_000 if pyslub.COMPILED else 2_000)
    cap = args.sheaf_capacity or 32
    size = args.object_size or 232
    configs = (("no sheaves", "6.18", None), (f"sheaves {cap}", "6.18", cap),
               ("7.0", "7.0", None))
    print(f"pyslub {pyslub.__version__} bench sheaves: the 6.18 cover letter's experiment "
          f"(allocate N one by one, free them one by one), native driver, {rounds} rounds")
    print(f"machine: {cpu_model()}; {size}-byte objects, HWCACHE_ALIGN, nr_cpus {args.cpus}; "
          f"{loops:,} objects per measurement")
    rng = np.random.default_rng(1)
    orders = {}
    for n in sizes:
        orders[(n, False)] = np.arange(n, dtype=np.uint64)
        orders[(n, True)] = rng.permutation(n).astype(np.uint64)
    mems = {name: Memory(size=256 << 20, nr_cpus=args.cpus, checks=False, slub=slub)
            for name, slub, _ in configs}
    caches = {name: mems[name].create_cache("bench", size, flags=pyslub.SLAB_HWCACHE_ALIGN,
                                            sheaf_capacity=c)
              for name, _, c in configs}
    objs = np.zeros(max(sizes), dtype=np.uint64)
    ns: dict[tuple[str, int, bool], list[float]] = {}
    for rnd in range(rounds):
        for key in orders:
            n, shuffled = key
            for name, _, _ in configs[rnd % 3:] + configs[:rnd % 3]:
                res = _native.bench_alloc_free_order(caches[name], max(loops // n, 1), n, objs,
                                                     orders[key])
                rec = TimeBenchRecord(loops=max(loops // n, 1), step=n, txt="sheaves")
                rec.invoked_cnt, rec.tsc_start, rec.tsc_stop, rec.start_ns, rec.stop_ns = res
                ns.setdefault((name, n, shuffled), []).append(
                    rec.time_interval / rec.invoked_cnt if rec.invoked_cnt else float("nan"))
    names = [c[0] for c in configs]
    print()
    print("ns/object (alloc + free): median [q1-q3]; gain = 1 - sheaves/no sheaves; the letter:"
          " its published gain")
    rows = []
    for n, shuffled in orders:
        cells = [str(n), "shuffled" if shuffled else "FIFO"]
        spreads = {name: sm.Spread.of(ns[(name, n, shuffled)]) for name in names}
        for name in names:
            cells.append(f"{sm.fmt_ns(spreads[name].median)} {sm._range_cell(spreads[name])}")
        base = spreads[names[0]].median
        for name in names[1:]:
            cells.append(f"{100 * (1 - spreads[name].median / base):.1f}%")
        letter = LETTER_GAIN.get((n, shuffled))
        cells.append("-" if letter is None else f"{letter:.1f}%")
        rows.append(cells)
    head = ["N", "order", *names, *(f"gain {nm}" for nm in names[1:]), "letter"]
    for ln in sm.text_table(head, rows, left=(1,)):
        print(ln)
    print("  the letter: Ryzen 7 5700, in-kernel (slub_kunit hack), capacity 32, no memcg; "
          "6.18's sheaves sit above v4.4-style cpu slabs here")
    st = caches[names[1]].stats()
    print(f"  {names[1]}: alloc_cpu_sheaf {st['alloc_cpu_sheaf']:,}, barn_get "
          f"{st['barn_get']:,}, sheaf_refill {st['sheaf_refill']:,}, sheaf_flush "
          f"{st['sheaf_flush']:,} over the whole run")
    if args.json:
        from pyslub.bench import report

        report.write_json(args.json, [{"config": k[0], "n": k[1], "shuffled": k[2],
                                       "ns": v} for k, v in ns.items()],
                          meta={"command": "bench sheaves", "rounds": rounds, "loops": loops,
                                "capacity": cap})
        print(f"wrote {args.json}")
    return 0


def _median(xs: Sequence[float]) -> float:
    return statistics.median(xs)
