"""Where should ``Cache.alloc_bulk`` / ``free_bulk`` release the GIL?  (``cache.NOGIL_MIN``)

The python driver's pair ``cache.alloc_bulk(p)`` + ``cache.free_bulk(p)``, in ns per object,
for bulk sizes around the threshold: alone, and while a second Python thread runs a busy loop
(then also that thread's progress, as a share of its rate alone).  Releasing the GIL costs a
``with nogil`` block (~40 ns) alone, and a wait for the GIL to come back when another thread
holds it; it lets that thread run meanwhile.

    python benchmarks/nogil_threshold.py [--bulks 32,64,...] [--objects N] [--rounds R]

It measures whichever pyslub is imported; NOGIL_MIN is a C constant of that build.  To compare
thresholds, build clones with other values of ``NOGIL_MIN`` in src/pyslub/cache.py and run the
script with ``PYTHONPATH=<clone>/src`` (docs/benchmarks.md, "Threads", has the numbers).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time

import numpy as np

import pyslub

DEFAULT_BULKS = (16, 32, 64, 128, 192, 255, 256, 320, 512, 1024)


def pair_ns(cache, bulk: int, objects: int) -> tuple[float, float]:
    """ns per object of alloc_bulk + free_bulk, repeated for ``objects`` objects: the calling
    thread's CPU time (what it computed: immune to other processes taking the core) and the
    wall-clock time (what it waited for, too: the GIL)."""
    p = np.zeros(bulk, dtype=np.uint64)
    loops = max(1, objects // bulk)
    alloc, free = cache.alloc_bulk, cache.free_bulk
    c0, t0 = time.thread_time_ns(), time.perf_counter_ns()
    for _ in range(loops):
        alloc(p)
        free(p)
    n = loops * bulk
    return (time.thread_time_ns() - c0) / n, (time.perf_counter_ns() - t0) / n


class Busy:
    """A second Python thread counting in a loop (it needs the GIL for every iteration)."""

    def __init__(self) -> None:
        self.count = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            for _ in range(1000):
                n += 1
            self.count = n

    def __enter__(self) -> Busy:
        self.thread.start()
        time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def solo_rate(seconds: float = 0.2) -> float:
    """Iterations per second of the busy loop with no one else wanting the GIL."""
    with Busy() as b:
        c0, t0 = b.count, time.perf_counter()
        time.sleep(seconds)
        return (b.count - c0) / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bulks", default=",".join(map(str, DEFAULT_BULKS)))
    ap.add_argument("--objects", type=int, default=200_000 if pyslub.COMPILED else 5_000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args(argv)
    bulks = [int(b) for b in args.bulks.split(",")]
    mem = pyslub.Memory(size=256 << 20, nr_cpus=2)
    cache = mem.create_cache("nogil", 256)
    cols = ("alone cpu", "alone wall", "busy cpu", "busy wall", "busy runs")
    got: dict[int, dict[str, list[float]]] = {b: {c: [] for c in cols} for b in bulks}
    base = solo_rate()
    for _ in range(args.rounds):
        for b in bulks:
            cpu, wall = pair_ns(cache, b, args.objects)
            got[b]["alone cpu"].append(cpu)
            got[b]["alone wall"].append(wall)
            with Busy() as other:
                c0, t0 = other.count, time.perf_counter()
                cpu, wall = pair_ns(cache, b, args.objects)
                got[b]["busy runs"].append((other.count - c0) / (time.perf_counter() - t0)
                                           / base * 100)
            got[b]["busy cpu"].append(cpu)
            got[b]["busy wall"].append(wall)
    print(f"pyslub {pyslub.__version__} from {pyslub.__file__} "
          f"({'compiled' if pyslub.COMPILED else 'uncompiled'}), Python "
          f"{sys.version.split()[0]}; {args.objects:,} objects per measurement, median of "
          f"{args.rounds} rounds; busy thread alone: {base / 1e6:.1f} M iterations/s")
    print("ns per object (cpu: this thread's CPU time, wall: elapsed); busy runs: the other "
          "thread's rate, % of its rate alone")
    print(f"{'bulk':>6}" + "".join(f"{c:>12}" for c in cols))
    for b in bulks:
        print(f"{b:>6}" + "".join(f"{statistics.median(got[b][c]):>12.1f}" for c in cols))
    return 0


if __name__ == "__main__":
    sys.exit(main())
