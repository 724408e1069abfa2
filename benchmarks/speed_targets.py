"""Issue 9's four speed targets, measured in one process and one time window.

    python benchmarks/speed_targets.py [--slub 7.0] [--sheaf-capacity N] [--rounds 9]
        [--no-callgrind] [--json F]

Every round measures, in an order that rotates round by round:

1. the native driver's ``kmem bulk_quick_reuse`` (test01: alloc N + free N of 256 B,
   1,000,000 objects) at N = 32, 64, 128, 250, and mimalloc's malloc N + free N through the
   peers C harness (``pyslub bench peers``'s);
2. the native ``kmem fastpath reuse`` (one kmem_cache_alloc + one kmem_cache_free) against
   mimalloc at N = 1 (one malloc + one free);
3. the Python API with the default safety checks on (``Memory()``: checks=True), a loop of
   ``alloc_bulk(p)`` + ``free_bulk(p)`` at N = 64, 128, 250, against a Python list free stack
   (the peers' ``list`` pool: ``p = free[-n:]; del free[-n:]; free += p``);
4. the Python ``cache.free(cache.alloc())`` loop against ``push(pop())`` on a list (the call
   floor: two builtin method calls).

Printed: medians [min-max] over the rounds, the ratio to the target, and (callgrind) the
instructions per object of each side: the native loops counted inside their ``bench_*``
functions, the C harness inside its timed loop, the Python loops as (3N - N) iterations.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

BULKS = (32, 64, 128, 250)
PY_BULKS = (64, 128, 250)
OBJECT_SIZE = 256
NATIVE_OBJECTS = 1_000_000
PY_OBJECTS = 200_000
PAIRS = 200_000

PY_PAIR = ("import pyslub\nmem = pyslub.Memory(size=64 << 20, slub=SLUB)\n"
           "c = mem.create_cache('t', 232, flags=pyslub.SLAB_HWCACHE_ALIGN, sheaf_capacity=CAP)\n"
           "al, fr = c.alloc, c.free\nfor _ in range(N):\n    fr(al())\n")
PY_FLOOR = "l = list(range(64)); push, pop = l.append, l.pop\nfor _ in range(N):\n    push(pop())\n"
PY_BULK = ("import numpy as np, pyslub\nmem = pyslub.Memory(size=64 << 20, slub=SLUB)\n"
           "c = mem.create_cache('t', 232, flags=pyslub.SLAB_HWCACHE_ALIGN, sheaf_capacity=CAP)\n"
           "p = np.zeros(BULK, dtype=np.uint64)\nab, fb = c.alloc_bulk, c.free_bulk\n"
           "for _ in range(N):\n    ab(p); fb(p)\n")
PY_LIST = ("free = list(range(0, 512 * 256, 256))\nfor _ in range(N):\n"
           "    p = free[-BULK:]\n    del free[-BULK:]\n    free += p\n")


def _ns(rec) -> float:
    return rec.time_interval / rec.invoked_cnt


def measure(slub: str, rounds: int, cap: int | None = None) -> dict:
    import numpy as np

    import pyslub
    from pyslub.bench import peers, suite

    path, why = peers.build_harness()
    if path is None:
        raise SystemExit(f"the peers C harness is needed: {why}")
    harness = peers.Harness(path)
    found, skipped = peers.find_allocators(harness)
    if not any(a["name"] == "mimalloc" for a in found):
        raise SystemExit("mimalloc not found: apt-get install libmimalloc2.0")
    cfg = suite.BenchConfig(strategies=(peers.STRATEGY[slub],), loops=NATIVE_OBJECTS,
                            bulk_sizes=BULKS, object_size=OBJECT_SIZE, nr_cpus=8,
                            repeat=rounds, kinds=("fastpath_reuse", "bulk_quick_reuse"),
                            slub=slub, sheaf_capacity=cap)
    runner = suite.Runner(cfg, "native", printer=lambda _line: None)
    specs = {(s.round_no, s.kind, s.step): s for s in suite.plan("test01", cfg, "native")}
    mem = pyslub.Memory(size=64 << 20, slub=slub)                  # checks on (the default)
    cache = mem.create_cache("t", 232, flags=pyslub.SLAB_HWCACHE_ALIGN, sheaf_capacity=cap)
    assert mem.checks
    ns: dict[str, list[float]] = {}

    def native(rnd: int, kind: str, bulk: int) -> None:
        m = runner.measure(specs[(rnd, kind, 0 if kind == "fastpath_reuse" else bulk)])
        ns.setdefault(f"native {bulk}", []).append(_ns(m.record))

    def mimalloc(bulk: int) -> None:
        n = (PAIRS if bulk == 1 else NATIVE_OBJECTS) // bulk
        cnt, t0, t1, s0, s1 = harness.run("mimalloc", n, bulk)
        ns.setdefault(f"mimalloc {bulk}", []).append((s1 - s0) / cnt)

    def py_bulk(bulk: int) -> None:
        p = np.zeros(bulk, dtype=np.uint64)
        ab, fb = cache.alloc_bulk, cache.free_bulk
        n = PY_OBJECTS // bulk
        t0 = time.perf_counter_ns()
        for _ in range(n):
            ab(p)
            fb(p)
        ns.setdefault(f"python {bulk}", []).append((time.perf_counter_ns() - t0) / (n * bulk))

    def py_list(bulk: int) -> None:
        free = list(range(0, 512 * OBJECT_SIZE, OBJECT_SIZE))
        n = PY_OBJECTS // bulk
        t0 = time.perf_counter_ns()
        for _ in range(n):
            p = free[-bulk:]
            del free[-bulk:]
            free += p
        ns.setdefault(f"list {bulk}", []).append((time.perf_counter_ns() - t0) / (n * bulk))

    def py_pair() -> None:
        al, fr = cache.alloc, cache.free
        t0 = time.perf_counter_ns()
        for _ in range(PAIRS):
            fr(al())
        ns.setdefault("python pair", []).append((time.perf_counter_ns() - t0) / PAIRS)

    def py_floor() -> None:
        lst = list(range(64))
        push, pop = lst.append, lst.pop
        t0 = time.perf_counter_ns()
        for _ in range(PAIRS):
            push(pop())
        ns.setdefault("list pair", []).append((time.perf_counter_ns() - t0) / PAIRS)

    jobs = ([lambda r, b=b: native(r, "bulk_quick_reuse", b) for b in BULKS]
            + [lambda r, b=b: mimalloc(b) for b in BULKS]
            + [lambda r: native(r, "fastpath_reuse", 1), lambda r: mimalloc(1)]
            + [lambda r, b=b: py_bulk(b) for b in PY_BULKS]
            + [lambda r, b=b: py_list(b) for b in PY_BULKS]
            + [lambda r: py_pair(), lambda r: py_floor()])
    for rnd in range(rounds):
        k = (rnd * 5) % len(jobs)
        for job in jobs[k:] + jobs[:k]:
            job(rnd)
    runner.finish()
    return {"ns": ns, "allocators": found, "skipped": skipped, "harness": path,
            "sheaf_capacity": cache.info["sheaf_capacity"]}


# -- instructions ----------------------------------------------------------------------------
NATIVE_CHILD = """
import sys
import pyslub
from pyslub.bench import _native
from pyslub._layout import FREE_BULK_STRATEGIES
slub, bulk, loops = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
cap = int(sys.argv[4]) or None
mem = pyslub.Memory(size=256 << 20, nr_cpus=8, checks=False, slub=slub)
c = mem.create_cache("t", 232, flags=pyslub.SLAB_HWCACHE_ALIGN, sheaf_capacity=cap)
objs = _native.objs_array(bulk)
sid = FREE_BULK_STRATEGIES.index(c.free_bulk_strategy)
if bulk == 1:
    _native.bench_fastpath_reuse(c, loops)
else:
    _native.bench_bulk_quick_reuse(c, loops, bulk, sid, objs)
"""


def _callgrind(argv: list[str], collect: str | None = None) -> int:
    with tempfile.TemporaryDirectory() as d:
        opts = [f"--callgrind-out-file={d}/cg.out"]
        if collect:
            opts += ["--collect-atstart=no", f"--toggle-collect={collect}"]
        # one BLAS thread (numpy's idle OpenBLAS threads otherwise add a varying count) and
        # a fixed hash seed: the Python loops' counts repeat
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", PYTHONHASHSEED="0")
        out = subprocess.run(["valgrind", "--tool=callgrind", *opts, *argv],
                             capture_output=True, text=True, check=True, env=env)
    return int(re.search(r"refs:\s+([\d,]+)", out.stderr).group(1).replace(",", ""))


def native_instructions(slub: str, bulk: int, cap: int | None) -> float:
    """Instructions per object of the native loop (alloc + free): (3N - N) objects."""
    collect = "__pyx_pw_6pyslub_5bench_7_native_*bench_*"
    n = 20_000 // bulk if bulk > 1 else 20_000

    def run(loops: int) -> int:
        return _callgrind([sys.executable, "-c", NATIVE_CHILD, slub, str(bulk), str(loops),
                           str(cap or 0)], collect)

    return (run(3 * n) - run(n)) / (2 * n * bulk)


def python_instructions(code: str, n: int, per: int, **subs: str) -> float:
    for k, v in subs.items():
        code = code.replace(k, v)
    small = _callgrind([sys.executable, "-c", f"N = {n}\n" + code])
    big = _callgrind([sys.executable, "-c", f"N = {3 * n}\n" + code])
    return (big - small) / (2 * n * per)


def instructions(slub: str, harness: str, cap: int | None = None) -> dict:
    from pyslub.bench import peers

    out: dict[str, float] = {}
    for bulk in (1, *BULKS):
        out[f"native {bulk}"] = native_instructions(slub, bulk, cap)
    mi = peers.count_peer_instructions(harness, bulk_sizes=(1, *BULKS), slub=slub,
                                       sheaf_capacity=cap)
    for bulk in (1, *BULKS):
        out[f"mimalloc {bulk}"] = mi["mimalloc"][bulk]
    for bulk in PY_BULKS:
        n = 400_000 // bulk
        out[f"python {bulk}"] = python_instructions(PY_BULK, n, bulk, SLUB=repr(slub),
                                                    BULK=str(bulk), CAP=repr(cap))
        out[f"list {bulk}"] = python_instructions(PY_LIST, n, bulk, BULK=str(bulk))
    out["python pair"] = python_instructions(PY_PAIR, 100_000, 1, SLUB=repr(slub),
                                             CAP=repr(cap))
    out["list pair"] = python_instructions(PY_FLOOR, 100_000, 1)
    return out


# -- report ----------------------------------------------------------------------------------
def _cell(xs: list[float]) -> str:
    return f"{statistics.median(xs):.2f} [{min(xs):.2f}-{max(xs):.2f}]"


def report(res: dict, instr: dict | None, slub: str) -> list[str]:
    ns = res["ns"]

    def med(k: str) -> float:
        return statistics.median(ns[k])

    def ir(k: str) -> str:
        return f"{instr[k]:.1f}" if instr else "-"

    lines = [f"SLUB {slub}, sheaf_capacity {res['sheaf_capacity']}; ns per object: median "
             f"[min-max] of {len(ns['native 32'])} rounds; Ir = instructions per object "
             "(callgrind)",
             f"{'target':<47} {'pyslub':>20} {'Ir':>6} {'peer':>20} {'Ir':>6} {'ratio':>6}"]

    def row(what: str, a: str, b: str, ratio: float) -> None:
        lines.append(f"{what:<47} {_cell(ns[a]):>20} {ir(a):>6} {_cell(ns[b]):>20} "
                     f"{ir(b):>6} {ratio:>6.2f}")

    for bulk in BULKS:
        row(f"1. native bulk {bulk} vs mimalloc (>= 1.5)", f"native {bulk}",
            f"mimalloc {bulk}", med(f"mimalloc {bulk}") / med(f"native {bulk}"))
    row("2. fastpath reuse vs mimalloc N=1 (>= 1.0)", "native 1", "mimalloc 1",
        med("mimalloc 1") / med("native 1"))
    for bulk in PY_BULKS:
        row(f"3. python checks on, bulk {bulk} vs list (>= 1.0)", f"python {bulk}",
            f"list {bulk}", med(f"list {bulk}") / med(f"python {bulk}"))
    row("4. alloc()+free() vs pop()+append() (<= 2.0)", "python pair", "list pair",
        med("python pair") / med("list pair"))
    lines.append("ratio: peer time / pyslub time for 1-3 (> 1: pyslub faster); for 4 pyslub "
                 "time / list time")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slub", default="7.0", choices=("4.4", "6.18", "7.0"))
    ap.add_argument("--sheaf-capacity", type=int, default=None,
                    help="the caches' sheaf_capacity request (6.18: opt-in; 7.0: the minimum)")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--callgrind", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    import pyslub
    from pyslub.bench.machine import cpu_model

    if not pyslub.COMPILED:
        sys.exit("the speed targets are for the compiled core")
    t0 = time.perf_counter()
    res = measure(args.slub, args.rounds, args.sheaf_capacity)
    elapsed = time.perf_counter() - t0
    instr = (instructions(args.slub, res["harness"], args.sheaf_capacity) if args.callgrind
             else None)
    print(f"pyslub {pyslub.__version__}, {cpu_model()}, {os.cpu_count()} cpus, Python "
          f"{sys.version.split()[0]}; load {os.getloadavg()[0]:.2f}; timed part {elapsed:.1f} s")
    print("found: " + ", ".join(f"{a['name']} {a['version'] or ''}".strip()
                                for a in res["allocators"]))
    for ln in report(res, instr, args.slub):
        print(ln)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"slub": args.slub, "sheaf_capacity": res["sheaf_capacity"],
                       "ns": res["ns"], "instructions": instr,
                       "allocators": res["allocators"]}, f, indent=1)


if __name__ == "__main__":
    main()
