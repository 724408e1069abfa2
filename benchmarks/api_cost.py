"""What a Python program pays per object: single alloc+free pairs and bulk alloc+free.

    python benchmarks/api_cost.py            # compiled core, then the same code uncompiled
    python benchmarks/api_cost.py --quick

Prints medians of several repetitions and ratios measured in the same run (the machine is a
shared 2-core VM: absolute ns move between runs, ratios hold better).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

BULKS = (1, 8, 16, 32, 64, 128, 250)


def measure(quick: bool) -> dict:
    import pyslub

    mem = pyslub.Memory(size=256 << 20, nr_cpus=8)
    cache = mem.create_cache("bench", 232, flags=pyslub.SLAB_HWCACHE_ALIGN)
    scale = 1 if pyslub.COMPILED else 50
    reps = 3 if quick else 7
    out: dict = {"compiled": pyslub.COMPILED, "pair_ns": None, "bulk_ns": {}}

    alloc, free = cache.alloc, cache.free
    n = (100_000 if quick else 400_000) // scale
    runs = []
    for _ in range(reps):
        t = time.perf_counter_ns()
        for _ in range(n):
            free(alloc())
        runs.append((time.perf_counter_ns() - t) / n)
    out["pair_ns"] = statistics.median(runs)
    # the floor any Python allocator API pays here: two trivial builtin calls per iteration
    lst: list = []
    push, pop = lst.append, lst.pop
    runs = []
    for _ in range(reps):
        t = time.perf_counter_ns()
        for _ in range(n):
            push(0)
            pop()
        runs.append((time.perf_counter_ns() - t) / n)
    out["floor_ns"] = statistics.median(runs)

    alloc_bulk, free_bulk = cache.alloc_bulk, cache.free_bulk
    for strategy in pyslub.FREE_BULK_STRATEGIES:
        row = {}
        for bulk in BULKS:
            p = np.zeros(bulk, dtype=np.uint64)
            loops = max(1, (200_000 if quick else 1_000_000) // scale // bulk)
            runs = []
            for _ in range(reps):
                t = time.perf_counter_ns()
                for _ in range(loops):
                    alloc_bulk(p)
                    free_bulk(p, None, strategy)
                runs.append((time.perf_counter_ns() - t) / (loops * bulk))
            row[bulk] = statistics.median(runs)
        out["bulk_ns"][strategy] = row
    assert cache.validate() == []
    return out


def show(res: dict) -> None:
    kind = "compiled" if res["compiled"] else "uncompiled"
    print(f"\n[{kind}] single alloc+free pair: {res['pair_ns']:.1f} ns "
          f"(list.append + list.pop in the same run: {res['floor_ns']:.1f} ns, "
          f"ratio {res['pair_ns'] / res['floor_ns']:.2f})")
    print(f"[{kind}] bulk alloc_bulk+free_bulk, ns per object (median):")
    print("  strategy      " + "".join(f"{b:>8}" for b in BULKS))
    for strategy, row in res["bulk_ns"].items():
        print(f"  {strategy:<14}" + "".join(f"{row[b]:8.1f}" for b in BULKS))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(measure(args.quick)))
        return
    compiled = measure(args.quick)
    show(compiled)
    cmd = [sys.executable, __file__, "--child"] + (["--quick"] if args.quick else [])
    child = subprocess.run(cmd, env=dict(os.environ, PYSLUB_PURE="1"), capture_output=True,
                           text=True, check=True)
    pure = json.loads(child.stdout)
    pure["bulk_ns"] = {k: {int(b): v for b, v in row.items()}
                       for k, row in pure["bulk_ns"].items()}
    show(pure)
    print(f"\nuncompiled / compiled: pair {pure['pair_ns'] / compiled['pair_ns']:.0f}x, "
          f"lookahead bulk 250 "
          f"{pure['bulk_ns']['lookahead'][250] / compiled['bulk_ns']['lookahead'][250]:.0f}x")


if __name__ == "__main__":
    main()
