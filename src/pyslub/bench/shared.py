"""``pyslub bench shared``: one arena shared by processes (``Memory.create_shared``).

Two parts (``--parts``), in interleaved rounds with medians and quartiles:

=========  ===================================================================================
pipe       a pipeline of two processes: the producer allocates batches of ``--bulksz`` (64)
           objects of 256 B, writes one word into each, and hands the batch to the consumer,
           which checks the word and frees the batch -- a remote free in another process.
           ``--loops`` objects (10^6) through it.  Against what a Python program would write
           instead: (a) ``multiprocessing.shared_memory`` slots with a free-list stack under a
           ``multiprocessing.Lock`` (one lock round trip per object, as such pools do), the
           batches handed over the same ring as pyslub's; (b) ``multiprocessing.Queue`` with
           the 256-byte payloads themselves (a list of one batch per put).  Targets: pyslub
           >= 10x (a) and >= 20x (b)
single     the price of sharing inside one process: the same operations on a private and on a
           shared arena (test01's native loop at bulk 16 and 64, the single-object fast path,
           and from Python alloc_bulk + free_bulk at 64 and alloc + free).  Target: <= 10 %
=========  ===================================================================================

The handover ring of pyslub and of (a) is a single-producer single-consumer ring of batch
slots in shared memory (numpy stores of aligned words; x86 keeps them in order), polled by both
sides: the transport is the same for both, so their difference is the pool's.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import time
from multiprocessing import shared_memory
from typing import Any

import numpy as np

__all__ = ["PARTS", "run"]

PARTS = ("pipe", "single")
OBJECT_SIZE = 256
RING_SLOTS = 64
TARGETS = {"lock-pool": 10.0, "mp.Queue": 20.0, "single": 1.10}
FORK = mp.get_context("fork")


# =============================================================================================
# The handover ring (SPSC, batch slots of `bulk` words)
# =============================================================================================

class Ring:
    """words[0] = batches published, words[1] = batches consumed, then RING_SLOTS slots of
    ``1 + bulk`` words (count, entries)."""

    def __init__(self, buf: Any, bulk: int) -> None:
        self.w = np.ndarray(2 + RING_SLOTS * (1 + bulk), dtype=np.int64, buffer=buf)
        self.bulk = bulk

    @staticmethod
    def nbytes(bulk: int) -> int:
        return 8 * (2 + RING_SLOTS * (1 + bulk))

    def put(self, p: np.ndarray) -> None:
        w = self.w
        head = int(w[0])
        while head - int(w[1]) >= RING_SLOTS:
            time.sleep(0)
        base = 2 + (head % RING_SLOTS) * (1 + self.bulk)
        w[base] = len(p)
        w[base + 1:base + 1 + len(p)] = p.view(np.int64)
        w[0] = head + 1                           # publish after the slot (x86: in order)

    def get(self, out: np.ndarray) -> int:
        w = self.w
        tail = int(w[1])
        while int(w[0]) == tail:
            time.sleep(0)
        base = 2 + (tail % RING_SLOTS) * (1 + self.bulk)
        n = int(w[base])
        out[:n] = w[base + 1:base + 1 + n].view(np.uint64)
        w[1] = tail + 1
        return n


# =============================================================================================
# pyslub: producer and consumer processes on one shared arena
# =============================================================================================

def _pyslub_consumer(name: str, ring_addr: int, bulk: int, total: int, res) -> None:
    from pyslub import Memory
    mem = Memory.attach(name)
    c = mem.cache("bench-pkt")
    ring = Ring(mem.view(ring_addr), bulk)
    arena = np.frombuffer(mem.raw(0, mem.arena_bytes), dtype=np.uint64)
    p = np.zeros(bulk, dtype=np.uint64)
    bad = done = 0
    while done < total:
        n = ring.get(p)
        bad += int(np.count_nonzero(arena[p[:n] >> 3] != p[:n]))
        c.free_bulk(p, n)
        done += n
    res.put(bad)
    mem.close()


def run_pyslub(total: int, bulk: int, slub: str) -> tuple[float, int]:
    from pyslub import Memory
    with Memory.create_shared(size=256 << 20, nr_cpus=2, slub=slub) as mem:
        c = mem.create_cache("bench-pkt", OBJECT_SIZE)
        ring_addr = mem.kmalloc(Ring.nbytes(bulk))
        mem.view(ring_addr)[:16] = bytes(16)
        ring = Ring(mem.view(ring_addr), bulk)
        arena = np.frombuffer(mem.raw(0, mem.arena_bytes), dtype=np.uint64)
        res = FORK.Queue()
        pr = FORK.Process(target=_pyslub_consumer, args=(mem.name, ring_addr, bulk, total, res))
        pr.start()
        p = np.zeros(bulk, dtype=np.uint64)
        t0 = time.perf_counter_ns()
        for _ in range(total // bulk):
            c.alloc_bulk(p)
            arena[p >> 3] = p                       # one word written into each object
            ring.put(p)
        bad = res.get()
        t1 = time.perf_counter_ns()
        pr.join()
        if c.live_objects() != 0 or c.validate():
            raise RuntimeError("pyslub bench shared: objects left over or inconsistent")
        mem.kfree(ring_addr)
        del ring, arena
    return (t1 - t0) / (total // bulk * bulk), bad


# =============================================================================================
# Peer (a): shared_memory slots + a free-list stack under multiprocessing.Lock
# =============================================================================================

class LockPool:
    """The pool people write over shared_memory: nslots of OBJECT_SIZE bytes, a stack of free
    slot indices (words[0] = depth), every push and pop under one multiprocessing.Lock."""

    def __init__(self, shm: shared_memory.SharedMemory, nslots: int, lock) -> None:
        self.stack = np.ndarray(1 + nslots, dtype=np.int64, buffer=shm.buf)
        self.data = np.ndarray(nslots * OBJECT_SIZE // 8, dtype=np.uint64, buffer=shm.buf,
                               offset=8 * (1 + nslots))
        self.lock = lock

    @staticmethod
    def nbytes(nslots: int) -> int:
        return 8 * (1 + nslots) + nslots * OBJECT_SIZE

    def alloc(self) -> int:
        with self.lock:
            d = int(self.stack[0])
            if d == 0:
                raise MemoryError("lock pool exhausted")
            self.stack[0] = d - 1
            return int(self.stack[d])

    def free(self, slot: int) -> None:
        with self.lock:
            d = int(self.stack[0]) + 1
            self.stack[d] = slot
            self.stack[0] = d


def _lock_consumer(pool_name: str, ring_name: str, nslots: int, lock, bulk: int, total: int,
                   res) -> None:
    shm = shared_memory.SharedMemory(pool_name)
    rshm = shared_memory.SharedMemory(ring_name)
    pool = LockPool(shm, nslots, lock)
    ring = Ring(rshm.buf, bulk)
    p = np.zeros(bulk, dtype=np.uint64)
    bad = done = 0
    stride = OBJECT_SIZE // 8
    while done < total:
        n = ring.get(p)
        for s in p[:n].tolist():
            if pool.data[s * stride] != s:
                bad += 1
            pool.free(s)
        done += n
    res.put(bad)
    del pool, ring
    shm.close()
    rshm.close()


def run_lock_pool(total: int, bulk: int) -> tuple[float, int]:
    nslots = 2 * (RING_SLOTS + 2) * bulk        # the ring full, a batch on each side
    shm = shared_memory.SharedMemory(create=True, size=LockPool.nbytes(nslots))
    rshm = shared_memory.SharedMemory(create=True, size=Ring.nbytes(bulk))
    try:
        lock = FORK.Lock()
        pool = LockPool(shm, nslots, lock)
        pool.stack[1:] = np.arange(nslots)
        pool.stack[0] = nslots
        ring = Ring(rshm.buf, bulk)
        ring.w[:2] = 0
        res = FORK.Queue()
        pr = FORK.Process(target=_lock_consumer, args=(shm.name, rshm.name, nslots, lock, bulk,
                                                       total, res))
        pr.start()
        p = np.zeros(bulk, dtype=np.uint64)
        stride = OBJECT_SIZE // 8
        t0 = time.perf_counter_ns()
        for _ in range(total // bulk):
            for i in range(bulk):
                s = pool.alloc()
                pool.data[s * stride] = s
                p[i] = s
            ring.put(p)
        bad = res.get()
        t1 = time.perf_counter_ns()
        pr.join()
        del pool, ring
    finally:
        for m in (shm, rshm):
            m.close()
            m.unlink()
    return (t1 - t0) / (total // bulk * bulk), bad


# =============================================================================================
# Peer (b): multiprocessing.Queue carrying the payloads
# =============================================================================================

def _queue_consumer(q, total: int, res) -> None:
    done = bad = 0
    while done < total:
        batch = q.get()
        for b in batch:
            if len(b) != OBJECT_SIZE:
                bad += 1
        done += len(batch)
    res.put(bad)


def run_queue(total: int, bulk: int) -> tuple[float, int]:
    q, res = FORK.Queue(maxsize=RING_SLOTS), FORK.Queue()
    pr = FORK.Process(target=_queue_consumer, args=(q, total, res))
    pr.start()
    t0 = time.perf_counter_ns()
    for k in range(total // bulk):
        q.put([k.to_bytes(8, "little") * (OBJECT_SIZE // 8) for _ in range(bulk)])
    bad = res.get()
    t1 = time.perf_counter_ns()
    pr.join()
    return (t1 - t0) / (total // bulk * bulk), bad


# =============================================================================================
# single: private vs shared in one process
# =============================================================================================

def _native_ops(mem, loops: int) -> dict[str, float]:
    """The native loops (the kernel's unchecked paths: a checks=False Memory)."""
    from pyslub._layout import FB_LOOKAHEAD
    from pyslub.bench import _native
    c = mem.create_cache("bench-native", OBJECT_SIZE)
    out = {}
    for bulk in (16, 64):
        objs = _native.objs_array(bulk)
        _native.bench_bulk_quick_reuse(c, loops // bulk // 10, bulk, FB_LOOKAHEAD, objs)
        cnt, _, _, ns0, ns1 = _native.bench_bulk_quick_reuse(c, loops // bulk, bulk,
                                                             FB_LOOKAHEAD, objs)
        out[f"native test01 bulk {bulk}"] = (ns1 - ns0) / cnt
    cnt, _, _, ns0, ns1 = _native.bench_fastpath_reuse(c, loops)
    out["native fastpath reuse"] = (ns1 - ns0) / cnt
    return out


def _python_ops(mem, loops: int) -> dict[str, float]:
    """The Python API with the default checks."""
    c = mem.create_cache("bench-python", OBJECT_SIZE)
    out = {}
    p = np.zeros(64, dtype=np.uint64)
    n = max(1, loops // 64 // 20)
    t0 = time.perf_counter_ns()
    for _ in range(n):
        c.alloc_bulk(p)
        c.free_bulk(p)
    out["python alloc_bulk+free_bulk 64"] = (time.perf_counter_ns() - t0) / (n * 64)
    n = max(1, loops // 50)
    alloc, free = c.alloc, c.free
    t0 = time.perf_counter_ns()
    for _ in range(n):
        free(alloc())
    out["python alloc+free"] = (time.perf_counter_ns() - t0) / n
    return out


def run_single(loops: int, slub: str) -> dict[str, tuple[float, float]]:
    from pyslub import COMPILED, Memory
    both: list[dict[str, float]] = []
    for shared in (False, True):
        res: dict[str, float] = {}
        for checks in ((False, True) if COMPILED else (True,)):
            if shared:
                mem = Memory.create_shared(size=128 << 20, nr_cpus=2, slub=slub, checks=checks)
            else:
                mem = Memory(size=128 << 20, nr_cpus=2, slub=slub, checks=checks)
            with mem:
                res.update(_native_ops(mem, loops) if not checks else _python_ops(mem, loops))
        both.append(res)
    return {k: (both[0][k], both[1][k]) for k in both[0]}


# =============================================================================================
# The command
# =============================================================================================

def _med(xs: list[float]) -> str:
    if len(xs) < 2:
        return f"{xs[0]:7.1f}"
    q = statistics.quantiles(xs, n=4) if len(xs) >= 4 else [min(xs), 0, max(xs)]
    return f"{statistics.median(xs):7.1f} [{q[0]:.1f}-{q[-1]:.1f}]"


def run(args: argparse.Namespace) -> int:
    """``pyslub bench shared``; returns the exit status."""
    import pyslub
    from pyslub.bench.command import Out, _check_output
    from pyslub.bench.machine import cpu_model

    parts = [p for p in (args.parts or ",".join(PARTS)).replace(",", " ").split() if p]
    bad_parts = [p for p in parts if p not in PARTS]
    if bad_parts:
        args.parser.error(f"--parts: unknown {', '.join(bad_parts)}; choose from "
                          f"{', '.join(PARTS)} (shared)")
    _check_output(args.json, "--json", args.parser)
    slub = "4.4" if args.slub == "all" else args.slub
    rounds = args.rounds or (5 if pyslub.COMPILED else 1)
    total = args.loops or (1_000_000 if pyslub.COMPILED else 20_000)
    bulk = args.bulksz or 64
    total = max(bulk, total // bulk * bulk)     # whole batches
    out = Out(args.verbose, args.quiet)
    core = "compiled core" if pyslub.COMPILED else "UNCOMPILED core (PYSLUB_PURE)"
    out.wrap(f"pyslub {pyslub.__version__} bench shared ({', '.join(parts)}): {core}, SLUB "
             f"{slub}, {rounds} interleaved rounds")
    out.wrap(f"machine: {cpu_model()}, {os.cpu_count()} cpus, Python "
             f"{sys.version.split()[0]}; load average "
             f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    record: dict[str, Any] = {"parts": parts, "rounds": rounds, "objects": total,
                              "bulk": bulk, "slub": slub, "cpu": cpu_model()}
    status = 0
    if "pipe" in parts:
        runs: dict[str, list[float]] = {"pyslub": [], "lock-pool": [], "mp.Queue": []}
        ratios: dict[str, list[float]] = {"lock-pool": [], "mp.Queue": []}
        peer_total = max(bulk, total // 10 // bulk * bulk)   # the peers are slow: fewer
        for _ in range(rounds):
            ns, bad = run_pyslub(total, bulk, slub)
            la, bad_a = run_lock_pool(peer_total, bulk)
            qb, bad_b = run_queue(peer_total, bulk)
            if bad or bad_a or bad_b:
                raise RuntimeError(f"bench shared: a consumer saw wrong contents "
                                   f"({bad}, {bad_a}, {bad_b})")
            runs["pyslub"].append(ns)
            runs["lock-pool"].append(la)
            runs["mp.Queue"].append(qb)
            ratios["lock-pool"].append(la / ns)
            ratios["mp.Queue"].append(qb / ns)
        out.line("")
        out.wrap(f"== pipe: producer process -> consumer process, {OBJECT_SIZE} B objects in "
                 f"batches of {bulk}, one word written and checked per object; ns per object, "
                 f"median [q1-q3]; pyslub {total:,} objects, peers {peer_total:,}")
        out.line(f"{'pool':<12} {'ns/object':>22}  {'pyslub faster':>16}")
        out.line(f"{'pyslub':<12} {_med(runs['pyslub']):>22}")
        for k, label in (("lock-pool", "shm+Lock"), ("mp.Queue", "mp.Queue")):
            out.line(f"{label:<12} {_med(runs[k]):>22}  {_med(ratios[k]):>16}x")
        for k in ratios:
            r = statistics.median(ratios[k])
            ok = r >= TARGETS[k]
            out.line(f"target pyslub >= {TARGETS[k]:.0f}x {k}: {r:.1f}x "
                     f"{'met' if ok else 'MISSED'}")
        record["pipe"] = {"ns": runs, "ratios": ratios}
    if "single" in parts:
        loops = total * 2
        res: dict[str, list[tuple[float, float]]] = {}
        for _ in range(rounds):
            for k, v in run_single(loops, slub).items():
                res.setdefault(k, []).append(v)
        out.line("")
        out.wrap("== single: one process, a private arena vs a shared one (ns per object; "
                 "shared/private per round, median [q1-q3])")
        out.line(f"{'operation':<32} {'private':>8} {'shared':>8} {'ratio':>18}")
        record["single"] = {}
        for k, vs in res.items():
            pv = [a for a, _ in vs]
            sv = [b for _, b in vs]
            rv = [b / a for a, b in vs]
            out.line(f"{k:<32} {statistics.median(pv):8.1f} {statistics.median(sv):8.1f} "
                     f"{_med(rv):>18}")
            record["single"][k] = {"private": pv, "shared": sv, "ratio": rv}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(record, f, indent=1)
    return status
