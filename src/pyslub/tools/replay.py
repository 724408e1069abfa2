"""``pyslub replay TRACE``: a real program's allocations replayed into pyslub's kmalloc caches.

The trace (valgrind ``--trace-malloc=yes`` text or an ftrace kmem trace, plain or ``.gz``) is
streamed: only the objects alive at the moment are held, so 10^7-event traces replay in
bounded memory.  Every allocation becomes ``mem.kmalloc(size)`` (the kmalloc-8 .. kmalloc-8k
class above ``size``, whole pages above 8 KiB, as kmalloc does); every free of an object the
trace allocated becomes ``mem.kfree``; ``realloc`` follows ``krealloc`` (kept when the slot is
large enough, else allocate, then free).  A free of a pointer the trace never allocated is
counted, never handed to pyslub.

``--batch K`` then replays the trace once more per free_bulk strategy, turning every run of
consecutive frees (no allocation between them) into ``cache.free_bulk`` calls of up to ``K``
objects per cache, and reports the detached lists each strategy built (``record_frees``) and
the ``__slab_free`` / cmpxchg counts (``cache.stats()``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import pyslub
from pyslub.tools import trace_formats as tf

PAGE_SIZE = 4096
KMALLOC_MAX_CACHE_SIZE = pyslub.KMALLOC_SIZES[-1]
KMALLOC_MAX_SIZE = PAGE_SIZE << 10       # MAX_ORDER 11 (v4.4): kmalloc_large() up to order 10
KMALLOC_NAMES = tuple(f"kmalloc-{s // 1024}k" if s >= 1024 else f"kmalloc-{s}"
                      for s in pyslub.KMALLOC_SIZES)
BATCH_MODES = ("kfree_bulk",) + tuple(pyslub.FREE_BULK_STRATEGIES)
LIST_BUCKETS = ((1, 1), (2, 2), (3, 3), (4, 4), (5, 8), (9, 16), (17, 32), (33, 64),
                (65, 1 << 62))

# object classes in the live map besides the kmalloc cache index
_LARGE, _ZERO, _SKIPPED = -1, -2, -3
_TMP_KEY = -1                            # never a trace key (those are >= 0)


def _class_table() -> bytes:
    table = bytearray(KMALLOC_MAX_CACHE_SIZE + 1)
    i = 0
    for n in range(1, KMALLOC_MAX_CACHE_SIZE + 1):
        while pyslub.KMALLOC_SIZES[i] < n:
            i += 1
        table[n] = i
    return bytes(table)


_KMALLOC_CLASS = _class_table()


def kmalloc_slot(size: int) -> int:
    """Bytes kmalloc hands out for ``size`` (the class size, or whole pages above 8 KiB)."""
    if size <= 0:
        return 0
    if size <= KMALLOC_MAX_CACHE_SIZE:
        return pyslub.KMALLOC_SIZES[_KMALLOC_CLASS[size]]
    return PAGE_SIZE << max(0, (size - 1).bit_length() - 12)


def bucket_label(lo: int, hi: int) -> str:
    if lo == hi:
        return str(lo)
    return f"{lo}+" if hi >= 1 << 62 else f"{lo}-{hi}"


# =============================================================================================
# Results
# =============================================================================================

@dataclass
class ReplayResult:
    """What one pass over a trace measured (``to_json()`` gives the ``--json`` document)."""

    trace: str
    format: str
    mode: str                                   # "kfree", "kfree_bulk" or a strategy name
    batch: int
    cpus: int
    events: int = 0
    allocs: int = 0
    frees: int = 0
    reallocs: int = 0
    unmatched_frees: int = 0                    # free of a pointer the trace never allocated
    unmatched_reallocs: int = 0
    reused_live_pointers: int = 0               # alloc returned a pointer still live: missed free
    zero_size_allocs: int = 0
    too_large_allocs: int = 0
    large_allocs: int = 0                       # above 8 KiB: whole pages
    live_objects: int = 0
    live_bytes: int = 0                         # requested bytes of the live objects
    live_slot_bytes: int = 0                    # bytes kmalloc handed out for them
    peak_live_objects: int = 0
    peak_live_bytes: int = 0
    peak_live_slot_bytes: int = 0
    wall_s: float = 0.0
    parser: dict[str, int] = field(default_factory=dict)
    unknown_examples: list[str] = field(default_factory=list)
    caches: dict[str, dict[str, Any]] = field(default_factory=dict)
    timeline: list[tuple[int, ...]] = field(default_factory=list)
    bulk_calls: int = 0
    bulk_objects: int = 0
    list_lengths: dict[int, int] = field(default_factory=dict)   # detached list length -> count
    fast_lists: int = 0
    slow_lists: int = 0
    live_slab_objects: int = 0                  # trace-side count of live objects in slab caches
    pyslub_live_slab_objects: int = -1          # the caches' count after flushing every cpu
    validate: dict[str, list[str]] = field(default_factory=dict)

    TIMELINE_FIELDS = ("event", "live_objects", "live_bytes", "live_slot_bytes", "objects",
                       "total_objects", "slabs", "partial", "large_bytes")

    @property
    def ns_per_event(self) -> float:
        return self.wall_s * 1e9 / self.events if self.events else 0.0

    @property
    def fragmentation(self) -> float:
        """1 - objects/total_objects over the kmalloc caches at the end of the trace."""
        obj = sum(c["occupancy"]["objects"] for c in self.caches.values())
        tot = sum(c["occupancy"]["total_objects"] for c in self.caches.values())
        return 1.0 - obj / tot if tot else 0.0

    def stat_total(self, name: str) -> int:
        return sum(c["stats"].get(name, 0) for c in self.caches.values())

    def list_histogram(self) -> list[tuple[str, int]]:
        out = []
        for lo, hi in LIST_BUCKETS:
            out.append((bucket_label(lo, hi),
                        sum(n for length, n in self.list_lengths.items() if lo <= length <= hi)))
        return out

    @property
    def mean_list_length(self) -> float:
        lists = sum(self.list_lengths.values())
        return sum(k * n for k, n in self.list_lengths.items()) / lists if lists else 0.0

    @property
    def consistent(self) -> bool:
        return (all(not v for v in self.validate.values())
                and self.pyslub_live_slab_objects == self.live_slab_objects)

    def to_json(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in (
            "trace", "format", "mode", "batch", "cpus", "events", "allocs", "frees", "reallocs",
            "unmatched_frees", "unmatched_reallocs", "reused_live_pointers", "zero_size_allocs",
            "too_large_allocs", "large_allocs", "peak_live_objects", "peak_live_bytes",
            "peak_live_slot_bytes", "wall_s", "caches", "validate")}
        d["unknown_lines"] = self.parser.get("unknown_lines", 0)
        d["parser"] = dict(self.parser)
        d["final_live_objects"] = self.live_objects
        d["final_live_bytes"] = self.live_bytes
        d["final_live_slot_bytes"] = self.live_slot_bytes
        d["final_live_slab_objects"] = self.live_slab_objects
        d["pyslub_live_slab_objects"] = self.pyslub_live_slab_objects
        d["ns_per_event"] = self.ns_per_event
        d["fragmentation"] = self.fragmentation
        d["timeline"] = {"fields": list(self.TIMELINE_FIELDS),
                         "rows": [list(r) for r in self.timeline]}
        if self.mode != "kfree":
            d["bulk"] = {"calls": self.bulk_calls, "objects": self.bulk_objects,
                         "lists": sum(self.list_lengths.values()),
                         "fast_lists": self.fast_lists, "slow_lists": self.slow_lists,
                         "mean_list_length": self.mean_list_length,
                         "list_lengths": {str(k): v for k, v in sorted(self.list_lengths.items())},
                         "histogram": dict(self.list_histogram())}
        return d


# =============================================================================================
# The replay engine
# =============================================================================================

class Replayer:
    """Replays events into a fresh ``Memory``'s kmalloc caches.

    ``mode`` is ``"kfree"`` (one ``mem.kfree`` per free), ``"kfree_bulk"`` (runs of frees
    through ``mem.kfree_bulk``, caches mixed) or a strategy of ``pyslub.FREE_BULK_STRATEGIES``
    (runs of frees through ``cache.free_bulk(p, strategy=mode)``, one cache per call).
    """

    def __init__(self, mode: str = "kfree", batch: int = 16, cpus: int = 1,
                 cpu_key: str = "pid", nr_cpus: int = 8, arena: int = 1 << 30,
                 samples: int = 1000) -> None:
        if mode != "kfree" and mode not in BATCH_MODES:
            raise ValueError(f"unknown replay mode {mode!r}; choose 'kfree' or one of "
                             f"{BATCH_MODES}")
        if mode != "kfree" and batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        if cpus < 1:
            raise ValueError(f"cpus must be >= 1, got {cpus}")
        if cpu_key not in ("pid", "cpu"):
            raise ValueError(f"cpu_key must be 'pid' or 'cpu', got {cpu_key!r}")
        self.mode = mode
        self.batch = batch if mode != "kfree" else 1
        self.cpus = cpus
        self.cpu_key = cpu_key
        self.mem = pyslub.Memory(size=arena, nr_cpus=max(nr_cpus, cpus))
        # create_kmalloc_caches(): the first kmalloc creates them all; undo its traces
        self.mem.kfree(self.mem.kmalloc(8))
        self.caches = [self.mem.caches[n] for n in KMALLOC_NAMES]
        for c in self.caches:
            c.shrink()
            c.reset_stats()
        # kmalloc(n <= 8 KiB) is kmalloc_caches[kmalloc_index(n)]->alloc(): call the caches
        # directly (the same objects, without mem.kmalloc's size search per call)
        self.alloc_fns = [c.alloc for c in self.caches]
        self.free_fns = [c.free for c in self.caches]
        # key -> (addr, requested size, class, slot bytes)
        self.live: dict[int, tuple[int, int, int, int]] = {}
        self.cpu_of: dict[int, int] = {}
        self.cur_cpu = 0
        self._cpu_cm: contextlib.AbstractContextManager | None = None
        self.pending: list[list[int]] = [[] for _ in self.caches]
        self.pending_mixed: list[int] = []
        self.npending = 0
        self.samples = max(samples, 2)
        self.sample_every = 64
        self.large_bytes = 0
        self.live_slab = 0
        self.r: ReplayResult | None = None

    # -- cpus ----------------------------------------------------------------------------------

    def _cpu_for(self, pid: int, cpu: int) -> int:
        if self.cpu_key == "cpu" and cpu >= 0:
            return cpu % self.cpus
        k = self.cpu_of.get(pid)
        if k is None:
            k = self.cpu_of[pid] = len(self.cpu_of) % self.cpus
        return k

    def _switch(self, cpu: int) -> None:
        self.flush()
        if self._cpu_cm is not None:
            self._cpu_cm.__exit__(None, None, None)
        self._cpu_cm = self.mem.on_cpu(cpu)
        self._cpu_cm.__enter__()
        self.cur_cpu = cpu

    # -- objects -------------------------------------------------------------------------------

    def _alloc(self, key: int, size: int) -> None:
        r = self.r
        old = self.live.get(key)
        if old is not None:                  # the trace lost a free (overrun, interleaving)
            r.reused_live_pointers += 1
            self._free(key)
        if size == 0:
            addr, cls = self.mem.kmalloc(0), _ZERO
            r.zero_size_allocs += 1
        elif size > KMALLOC_MAX_CACHE_SIZE:
            if size > KMALLOC_MAX_SIZE:
                addr, cls = 0, _SKIPPED
                r.too_large_allocs += 1
            else:
                try:
                    addr, cls = self.mem.kmalloc(size), _LARGE
                except MemoryError:
                    addr, cls = 0, _SKIPPED
                    r.too_large_allocs += 1
                else:
                    r.large_allocs += 1
                    self.large_bytes += kmalloc_slot(size)
        else:
            cls = _KMALLOC_CLASS[size]
            addr = self.alloc_fns[cls]()             # kmalloc(): kmalloc_caches[index]
            self.live_slab += 1
        slot = kmalloc_slot(size) if cls != _SKIPPED else 0
        self.live[key] = (addr, size, cls, slot)
        r.live_objects += 1
        r.live_bytes += size
        r.live_slot_bytes += slot
        if r.live_objects > r.peak_live_objects:
            r.peak_live_objects = r.live_objects
        if r.live_bytes > r.peak_live_bytes:
            r.peak_live_bytes = r.live_bytes
        if r.live_slot_bytes > r.peak_live_slot_bytes:
            r.peak_live_slot_bytes = r.live_slot_bytes

    def _free(self, key: int) -> bool:
        v = self.live.pop(key, None)
        if v is None:
            return False
        addr, size, cls, slot = v
        r = self.r
        r.live_objects -= 1
        r.live_bytes -= size
        r.live_slot_bytes -= slot
        if cls >= 0:
            self.live_slab -= 1
            if self.mode == "kfree":
                self.free_fns[cls](addr)             # kfree() of a slab object
            elif self.mode == "kfree_bulk":
                self.pending_mixed.append(addr)
                if len(self.pending_mixed) >= self.batch:
                    self._flush_mixed()
            else:
                lst = self.pending[cls]
                lst.append(addr)
                if len(lst) >= self.batch:
                    self._flush_cache(cls)
        elif cls == _LARGE:
            self.large_bytes -= slot
            self.mem.kfree(addr)
        return True

    def _realloc(self, old: int, new: int, size: int) -> None:
        """krealloc(): keep the object when its slot holds ``size`` bytes, else kmalloc a new
        one and kfree the old (after the copy, as __do_krealloc + kfree)."""
        r = self.r
        v = self.live.get(old)
        if v is None:
            r.unmatched_reallocs += 1
            self._alloc(new, size)
            return
        addr, osize, cls, slot = v
        if size and cls != _SKIPPED and cls != _ZERO and slot >= size:
            del self.live[old]
            if new in self.live:
                r.reused_live_pointers += 1
                self._free(new)
            self.live[new] = (addr, size, cls, slot)
            r.live_bytes += size - osize
            if r.live_bytes > r.peak_live_bytes:
                r.peak_live_bytes = r.live_bytes
            return
        if new != old and new in self.live:
            r.reused_live_pointers += 1
            self._free(new)
        self._alloc(_TMP_KEY, size)          # allocate first: both exist during the copy
        self._free(old)
        self.live[new] = self.live.pop(_TMP_KEY)

    # -- batched frees -------------------------------------------------------------------------

    def flush(self) -> None:
        """Hand every pending run of frees to pyslub."""
        if self.mode == "kfree":
            return
        if self.pending_mixed:
            self._flush_mixed()
        for i, lst in enumerate(self.pending):
            if lst:
                self._flush_cache(i)

    def _flush_cache(self, i: int) -> None:
        lst = self.pending[i]
        p = np.array(lst, dtype=np.uint64)
        lst.clear()
        self.caches[i].free_bulk(p, strategy=self.mode)
        self.r.bulk_calls += 1
        self.r.bulk_objects += len(p)

    def _flush_mixed(self) -> None:
        p = np.array(self.pending_mixed, dtype=np.uint64)
        self.pending_mixed.clear()
        self.mem.kfree_bulk(p)
        self.r.bulk_calls += 1
        self.r.bulk_objects += len(p)

    # -- sampling ------------------------------------------------------------------------------

    def _sample(self, event: int) -> None:
        r = self.r
        obj = tot = slabs = partial = 0
        for c in self.caches:
            o = c.occupancy()
            obj += o["objects"]
            tot += o["total_objects"]
            slabs += o["slabs"]
            partial += o["partial"]
        r.timeline.append((event, r.live_objects, r.live_bytes, r.live_slot_bytes, obj, tot,
                           slabs, partial, self.large_bytes))
        if len(r.timeline) >= 2 * self.samples:          # keep the series bounded
            del r.timeline[1::2]
            self.sample_every *= 2

    # -- the pass ------------------------------------------------------------------------------

    def run(self, reader: tf.TraceReader, trace: str = "",
            progress: Callable[[int], None] | None = None) -> ReplayResult:
        """Replay every event of ``reader``; ``progress(events)`` is called every 65536."""
        r = self.r = ReplayResult(trace=trace, format=reader.format, mode=self.mode,
                                  batch=self.batch, cpus=self.cpus)
        ALLOC, FREE = tf.ALLOC, tf.FREE
        bulk = self.mode != "kfree"
        multi = self.cpus > 1
        recs: list[Any] = []
        t0 = time.perf_counter()
        with contextlib.ExitStack() as stack:
            if bulk:
                recs = [stack.enter_context(pyslub.record_frees(c)) for c in self.caches]
            n = 0
            next_sample = self.sample_every
            for ev in reader:
                n += 1
                kind = ev[0]
                if multi:
                    k = self._cpu_for(ev[1], ev[2])
                    if k != self.cur_cpu or self._cpu_cm is None:
                        self._switch(k)
                if kind == FREE:
                    r.frees += 1
                    if not self._free(ev[3]):
                        r.unmatched_frees += 1
                else:
                    if bulk and (self.npending_any()):
                        self.flush()
                        self._drain(recs)
                    if kind == ALLOC:
                        r.allocs += 1
                        self._alloc(ev[3], ev[5])
                    else:
                        r.reallocs += 1
                        self._realloc(ev[3], ev[4], ev[5])
                if n >= next_sample:
                    self._sample(n)
                    next_sample = n + self.sample_every
                    if bulk:
                        self._drain(recs)
                if progress is not None and not n & 0xFFFF:
                    progress(n)
            self.flush()
            if bulk:
                self._drain(recs)
            if self._cpu_cm is not None:
                self._cpu_cm.__exit__(None, None, None)
                self._cpu_cm = None
        r.wall_s = time.perf_counter() - t0
        r.events = n
        self._sample(n)
        r.parser = dict(reader.counts)
        r.unknown_examples = list(reader.unknown_examples)
        r.live_slab_objects = self.live_slab
        for name, c in zip(KMALLOC_NAMES, self.caches, strict=True):
            r.caches[name] = {"stats": c.stats(), "occupancy": c.occupancy(),
                              "object_size": c.info["object_size"]}
        if progress is not None:
            progress(n)
        return r

    def npending_any(self) -> bool:
        return bool(self.pending_mixed) or any(self.pending)

    def _drain(self, recs: list[Any]) -> None:
        r = self.r
        lengths = r.list_lengths
        for rec in recs:
            if rec:
                for _slab, objs, kind in rec:
                    n = len(objs)
                    lengths[n] = lengths.get(n, 0) + 1
                    if kind == "fast":
                        r.fast_lists += 1
                    else:
                        r.slow_lists += 1
                rec.clear()

    def check(self) -> ReplayResult:
        """After ``run``: validate every cache, then flush every cpu and count the objects the
        caches hold, which must equal the live slab objects the trace left."""
        r = self.r
        r.live_slab_objects = self.live_slab
        total = 0
        for name, c in zip(KMALLOC_NAMES, self.caches, strict=True):
            r.validate[name] = list(c.validate())
            c.flush_cpu()
            total += c.occupancy()["objects"]
        r.pyslub_live_slab_objects = total
        return r


def replay_file(path: str, fmt: str | None = None, check: bool = True,
                progress: Callable[[int, int], None] | None = None,
                **kwargs: Any) -> ReplayResult:
    """Replay the trace file at ``path`` (format detected unless ``fmt``) with one Replayer."""
    rp = Replayer(**kwargs)
    with tf.TraceFile(path) as f:
        fmt = fmt or tf.detect_format(f.head())
        reader = tf.reader_for(fmt, f)
        cb = None if progress is None else (lambda n: progress(n, f.progress()))
        result = rp.run(reader, trace=os.path.basename(path), progress=cb)
    return rp.check() if check else result


def trace_live_objects(path: str, fmt: str | None = None) -> tuple[int, int]:
    """Objects and requested bytes live at the end of the trace, computed from the events
    alone (no allocator): the independent count a replay must reproduce."""
    live: dict[int, int] = {}
    with tf.TraceFile(path) as f:
        fmt = fmt or tf.detect_format(f.head())
        for kind, _pid, _cpu, key, key2, size in tf.reader_for(fmt, f):
            if kind == tf.ALLOC:
                live[key] = size
            elif kind == tf.FREE:
                live.pop(key, None)
            elif key in live:
                del live[key]
                live[key2] = size
            else:
                live[key2] = size
    return len(live), sum(live.values())


# =============================================================================================
# Report
# =============================================================================================

def _fmt(n: float) -> str:
    return f"{n:,.0f}" if isinstance(n, int) or float(n).is_integer() else f"{n:,.2f}"


def summary_lines(r: ReplayResult) -> list[str]:
    """The plain-text summary of one pass."""
    p = r.parser
    out = [
        f"trace {r.trace} ({r.format}): {p.get('lines', 0):,} lines, {r.events:,} events "
        f"({r.allocs:,} allocs, {r.frees:,} frees, {r.reallocs:,} reallocs); "
        f"{p.get('unknown_lines', 0):,} unknown lines, {p.get('ignored_lines', 0):,} ignored, "
        f"{p.get('null_frees', 0):,} free(NULL), {p.get('failed_allocs', 0):,} failed allocs"
        + (f", {p['lost_events']:,} events lost by the tracer" if p.get("lost_events") else ""),
        f"frees of pointers the trace never allocated: {r.unmatched_frees:,}"
        f" (reallocs: {r.unmatched_reallocs:,}); pointers reused while live: "
        f"{r.reused_live_pointers:,}; zero-size: {r.zero_size_allocs:,}; above 8 KiB (pages): "
        f"{r.large_allocs:,}; above KMALLOC_MAX_SIZE (skipped): {r.too_large_allocs:,}",
        f"live objects: peak {r.peak_live_objects:,}, final {r.live_objects:,} "
        f"({r.live_slab_objects:,} in slab caches); live bytes requested: peak "
        f"{r.peak_live_bytes:,}, final {r.live_bytes:,}; kmalloc'ed: peak "
        f"{r.peak_live_slot_bytes:,}, final {r.live_slot_bytes:,}",
        f"fragmentation at the end (1 - objects/total_objects): {r.fragmentation:.3f}; "
        f"wall {r.wall_s:.3f} s, {r.ns_per_event:,.0f} ns/event "
        f"({'compiled' if pyslub.COMPILED else 'uncompiled'} core, mode {r.mode}"
        + (f", batch {r.batch}" if r.mode != "kfree" else "") + f", {r.cpus} cpu(s))",
    ]
    if r.unknown_examples:
        out.append("first unknown lines: " + " | ".join(r.unknown_examples[:3]))
    return out


def check_lines(r: ReplayResult) -> list[str]:
    """The result of ``Replayer.check()``: validate() of every cache and the live count."""
    bad = {k: v for k, v in r.validate.items() if v}
    out = [f"check: validate() == [] for every cache: {'yes' if not bad else 'NO'}; objects "
           f"held after flushing every cpu = {r.pyslub_live_slab_objects:,} (trace: "
           f"{r.live_slab_objects:,} live in slab caches): "
           f"{'ok' if r.pyslub_live_slab_objects == r.live_slab_objects else 'MISMATCH'}"]
    for k, v in bad.items():
        out.append(f"  {k}: {'; '.join(v[:3])}")
    return out


def cache_table(r: ReplayResult) -> Any:
    """Per-cache stats and occupancy of one pass, as a rich Table."""
    from rich.table import Table
    t = Table(title=f"kmalloc caches after replaying {r.trace}", title_justify="left")
    cols = ("cache", "allocs", "frees", "objects", "slabs", "partial", "cpu_slabs", "%frag",
            "alloc_fastpath", "free_fastpath", "free_slowpath", "alloc_slab", "free_slab")
    for c in cols:
        t.add_column(c, justify="left" if c == "cache" else "right")
    for name, c in r.caches.items():
        s, o = c["stats"], c["occupancy"]
        if not (s["alloc_fastpath"] + s["alloc_slowpath"]) and not o["slabs"]:
            continue
        frag = 100.0 * (1 - o["objects"] / o["total_objects"]) if o["total_objects"] else 0.0
        t.add_row(name, f"{s['alloc_fastpath'] + s['alloc_slowpath']:,}",
                  f"{s['free_fastpath'] + s['free_slowpath']:,}", f"{o['objects']:,}",
                  f"{o['slabs']:,}", f"{o['partial']:,}", f"{o['cpu_slabs']:,}", f"{frag:.1f}",
                  f"{s['alloc_fastpath']:,}", f"{s['free_fastpath']:,}",
                  f"{s['free_slowpath']:,}", f"{s['alloc_slab']:,}", f"{s['free_slab']:,}")
    return t


def batch_rows(results: list[ReplayResult]) -> list[dict[str, Any]]:
    """One row per batched pass: lists, list lengths and counters per 1000 freed objects."""
    rows = []
    for r in results:
        freed = r.frees - r.unmatched_frees
        per_k = 1000.0 / freed if freed else 0.0
        lists = sum(r.list_lengths.values())
        rows.append({
            "mode": r.mode, "bulk_calls": r.bulk_calls, "objects": r.bulk_objects,
            "lists": lists, "mean_list": r.mean_list_length,
            "histogram": r.list_histogram(),
            "slab_free_per_1k": r.stat_total("free_slowpath") * per_k,
            "free_fastpath_per_1k": r.stat_total("free_fastpath") * per_k,
            "cmpxchg_double_slab_per_1k": r.stat_total("cmpxchg_double_slab") * per_k,
            "cmpxchg_double_cpu_per_1k": r.stat_total("cmpxchg_double_cpu") * per_k,
            "list_lock_per_1k": r.stat_total("list_lock") * per_k,
            "ns_per_event": r.ns_per_event, "consistent": r.consistent,
        })
    return rows


def batch_table(results: list[ReplayResult], batch: int, trace: str) -> Any:
    """Per batched pass: bulk calls, detached lists and counters per 1,000 freed objects."""
    from rich.table import Table
    t = Table(title=f"{trace}: runs of consecutive frees as bulk frees of up to {batch} "
              "objects (counters per 1,000 freed objects; the cmpxchg and list_lock counts "
              "include the allocations)", title_justify="left")
    for c in ("mode", "bulk calls", "lists", "objs/list", "__slab_free", "free_fastpath",
              "cmpxchg_double_slab", "cmpxchg_double_cpu", "list_lock", "ns/event",
              "validate, live"):
        t.add_column(c, justify="left" if c == "mode" else "right")
    for row in batch_rows(results):
        t.add_row(row["mode"], f"{row['bulk_calls']:,}", f"{row['lists']:,}",
                  f"{row['mean_list']:.2f}", f"{row['slab_free_per_1k']:.1f}",
                  f"{row['free_fastpath_per_1k']:.1f}",
                  f"{row['cmpxchg_double_slab_per_1k']:.1f}",
                  f"{row['cmpxchg_double_cpu_per_1k']:.1f}", f"{row['list_lock_per_1k']:.1f}",
                  f"{row['ns_per_event']:,.0f}", "ok" if row["consistent"] else "FAILED")
    return t


def list_length_table(results: list[ReplayResult], batch: int) -> Any:
    """Per batched pass: how many objects each detached list carried (% of the lists)."""
    from rich.table import Table
    t = Table(title=f"objects per detached list (record_frees), % of lists, batch {batch}",
              title_justify="left")
    t.add_column("mode")
    for lo, hi in LIST_BUCKETS:
        t.add_column(bucket_label(lo, hi), justify="right")
    t.add_column("lists", justify="right")
    for r in results:
        hist = r.list_histogram()
        total = sum(n for _, n in hist)
        t.add_row(r.mode, *[f"{100.0 * n / total:.1f}" if total else "-" for _, n in hist],
                  f"{total:,}")
    return t


# =============================================================================================
# Command line
# =============================================================================================

def _positive(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def _modes(text: str) -> list[str]:
    if text == "all":
        return list(BATCH_MODES)
    names = [t for t in text.replace(",", " ").split() if t]
    bad = [n for n in names if n not in BATCH_MODES]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"unknown mode {bad or text!r}; choose from "
                                         f"{', '.join(BATCH_MODES)} or 'all'")
    return names


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``replay`` subcommand to ``subparsers`` (from ``add_subparsers()``)."""
    p = subparsers.add_parser(
        "replay", help="replay a real allocation trace into pyslub's kmalloc caches",
        description="Replay a valgrind --trace-malloc=yes or ftrace kmem trace (plain or .gz) "
        "into pyslub's kmalloc caches; print the counters, slabinfo, peaks and fragmentation; "
        "with --batch K also replay runs of frees as bulk frees under each strategy.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("trace", help="trace file (.gz read directly)")
    p.add_argument("--format", choices=tf.FORMATS, default=None,
                   help="trace format (default: detected from the first lines)")
    p.add_argument("--batch", type=_positive, default=None, metavar="K",
                   help="also replay runs of consecutive frees as bulk frees of up to K "
                   "objects, once per strategy")
    p.add_argument("--strategies", type=_modes, default=list(BATCH_MODES),
                   help="batched passes to run: kfree_bulk (mixed caches, mem.kfree_bulk) and "
                   "free_bulk strategies, comma separated, or 'all'")
    p.add_argument("--cpus", type=_positive, default=1,
                   help="spread the trace's processes/threads over N logical cpus")
    p.add_argument("--cpu-key", choices=("pid", "cpu"), default="pid",
                   help="what picks the cpu: the pid (round robin in order of appearance) or, "
                   "for ftrace, the cpu the event was traced on (modulo N)")
    p.add_argument("--nr-cpus", type=_positive, default=8,
                   help="nr_cpu_ids of the Memory (sizes the slabs, as the seed's 8-cpu box)")
    p.add_argument("--arena-mib", type=_positive, default=1024, help="arena size in MiB")
    p.add_argument("--json", metavar="FILE", default=None, help="write the results as JSON")
    p.add_argument("--plot", metavar="FILE", default=None,
                   help="over-time plot (PNG or SVG; default TRACE-replay.png next to the "
                   "trace's name in the current directory; 'none' for no plot)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=main)
    return p


def main(args: argparse.Namespace) -> int:
    """Run ``pyslub replay`` with parsed ``args``; returns the exit status."""
    from rich.console import Console

    from pyslub.tools import slabinfo, viz

    probe = Console()
    console = Console(highlight=False, soft_wrap=True,
                      width=probe.width if probe.is_terminal else 180)
    if not os.path.isfile(args.trace):
        console.print(f"pyslub replay: no such file: {args.trace}", markup=False)
        return 2
    common = dict(cpus=args.cpus, cpu_key=args.cpu_key, nr_cpus=args.nr_cpus,
                  arena=args.arena_mib << 20)
    passes: list[tuple[str, int]] = [("kfree", 1)]
    if args.batch:
        passes += [(m, args.batch) for m in args.strategies]
    results: list[ReplayResult] = []
    for mode, batch in passes:
        rp = Replayer(mode=mode, batch=batch, **common)
        with tf.TraceFile(args.trace) as f:
            fmt = args.format or tf.detect_format(f.head())
            reader = tf.reader_for(fmt, f)
            label = "replay" if mode == "kfree" else f"{mode} batch {batch}"
            with _progress(console, f.size, label, args.quiet) as update:
                r = rp.run(reader, trace=os.path.basename(args.trace),
                           progress=lambda n, f=f, u=update: u(f.progress(), n))
        if mode == "kfree":
            for line in summary_lines(r):
                console.print(line, markup=False)
            console.print()
            console.print(cache_table(r))
            console.print()
            for line in slabinfo.format_listing(slabinfo.rows(rp.mem)):
                console.print(line, markup=False)
            console.print()
        rp.check()
        if mode == "kfree":
            for line in check_lines(r):
                console.print(line, markup=False)
        results.append(r)
    base = results[0]
    if args.batch:
        console.print()
        console.print(batch_table(results[1:], args.batch, base.trace))
        console.print()
        console.print(list_length_table(results[1:], args.batch))
    plot = args.plot
    if plot is None:
        stem = os.path.basename(args.trace)
        for ext in (".gz", ".txt", ".trace"):
            stem = stem.removesuffix(ext)
        plot = f"{stem}-replay.png"
    if plot.lower() != "none":
        viz.plot_replay(base, plot)
        console.print(f"plot: {plot}", markup=False)
    if args.json:
        doc = base.to_json()
        if args.batch:
            doc["batch"] = {"K": args.batch, "passes": {r.mode: r.to_json() for r in results[1:]},
                            "table": [{k: v for k, v in row.items()}
                                      for row in batch_rows(results[1:])]}
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=1)
        console.print(f"json: {args.json}", markup=False)
    return 0 if all(r.consistent for r in results) else 1


@contextlib.contextmanager
def _progress(console: Any, total: int, label: str, quiet: bool):
    if quiet or not console.is_terminal:
        yield lambda done, events: None
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                  TextColumn("{task.fields[events]} events"), TimeRemainingColumn(),
                  console=console, transient=True) as prog:
        task = prog.add_task(label, total=total, events="0")
        yield lambda done, events: prog.update(task, completed=done, events=f"{events:,}")


def _entry(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pyslub")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv) if argv is not None else None)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(_entry(["replay", *sys.argv[1:]]))


__all__ = ["BATCH_MODES", "KMALLOC_NAMES", "ReplayResult", "Replayer", "batch_rows",
           "batch_table", "check_lines", "kmalloc_slot", "list_length_table", "main",
           "register", "replay_file", "summary_lines", "trace_live_objects"]
