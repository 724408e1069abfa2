"""slab_bulk_test01 / test02 / test03 (prototype-kernel, spec §1.2-1.4) as measurement plans.

A run is planned first (``plan``: one ``Spec`` per ``time_bench_loop`` call, in the modules'
order) and then executed (``Runner.run``), so a caller can show progress.  For every
measurement the cache is created before the clock starts and destroyed after it stops, and the
cache's SLUB_STATS counters are read around the timed region; their deltas per object are kept
with the record (``Measurement.stats_per_object``), so each curve can be explained from them.

Several free_bulk strategies are measured as several *passes*, one per strategy: a pass is what
one kernel (one bulk-free generation) loading the module measures.  The strategy-independent
measurements (for_loop, fastpath reuse, the per-object fallbacks) run in the first pass only --
unless ``keep_cache`` is set: then every pass shares one cache across its measurements (the
kernel's merged ``:t-0000256`` situation) and runs the module's full sequence, so every strategy
sees the same cache history.  ``fragment`` leaves that many slabs partly full (``fragment_free``
objects of each freed, default half; the others stay allocated until teardown) before a cache is
measured: a model of a merged cache that other users keep partly allocated, so bulk allocations
start from partial slabs.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyslub._layout import (
    EXTRA_STAT_NAMES,
    FREE_BULK_STRATEGIES,
    SLAB_HWCACHE_ALIGN,
    STAT_NAMES_618,
)
from pyslub.bench.drivers import bench_clock, get_driver
from pyslub.bench.objhash import MODULO_MATCH_DISABLED
from pyslub.bench.seed import BULK_SIZES
from pyslub.bench.time_bench import TimeBenchRecord, time_bench_loop
from pyslub.errors import SlabError
from pyslub.memory import Memory
from pyslub.sizing import Geometry, cache_geometry, calculate_sheaf_capacity

__all__ = [
    "DEFAULT_LOOPS",
    "KERNEL_LOOPS",
    "STATS_COLUMNS",
    "TESTS",
    "TIME_BENCH_MIN_COUNT",
    "BenchConfig",
    "Measurement",
    "Runner",
    "Spec",
    "counted",
    "default_loops",
    "median_stats",
    "min_loops",
    "plan",
    "select",
]

TESTS = ("test01", "test02", "test03")
KINDS = ("for_loop", "fastpath_reuse", "bulk_fallback", "bulk_quick_reuse", "test03")
TIME_BENCH_MIN_COUNT = 1000      # time_bench_calc_stats: "need more(>1000) loops"

# loops the kernel modules default to, and pyslub's defaults per (test, driver): small enough
# that `pyslub bench` finishes in seconds; --loops raises them (10,000,000 = kernel fidelity)
KERNEL_LOOPS = {"test01": 10_000_000, "test02": 10_000_000, "test03": 100_000}
DEFAULT_LOOPS = {
    ("test01", "native"): 1_000_000, ("test01", "python"): 100_000,
    ("test02", "native"): 100_000, ("test02", "python"): 100_000,
    ("test03", "native"): 100_000, ("test03", "python"): 20_000,
}  # fmt: skip
MAX_BULK = {"test01": 250, "test02": 32768, "test03": 32768}   # objs[] sizes of the modules
DEFAULT_BULKSZ = {"test02": 16, "test03": 64}
DEFAULT_OBJECT_SIZE = {"test01": 232, "test02": 232, "test03": 224}   # sk_buff / struct my_obj
TEST03_NMATCH = (1, 2, 3, 4, 5, 6, 10)          # then bulksz + 1
U32_LIMIT = (1 << 32) - 1

# counters reported per object (pyslub's own cmpxchg/list_lock counts last)
STATS_COLUMNS = ("free_fastpath", "free_slowpath", "alloc_slowpath", "alloc_slab", "free_slab",
                 "cmpxchg_double_cpu", "cmpxchg_double_slab", "list_lock")
STAT_ALL = STAT_NAMES_618 + EXTRA_STAT_NAMES   # every generation's names (a superset)


def default_loops(test: str, driver: str) -> int:
    return DEFAULT_LOOPS[(test, driver)]


HARDENING = ("hardened", "random", "middle")      # --hardening names


def hardening_kwargs(names: Sequence[str]) -> dict[str, Any]:
    """Memory() keywords of --hardening names: CONFIG_SLAB_FREELIST_HARDENED ("hardened"),
    CONFIG_SLAB_FREELIST_RANDOM ("random"), the v5.7 free pointer placement ("middle")."""
    return {"freelist_hardened": "hardened" in names, "freelist_random": "random" in names,
            "freeptr": "middle" if "middle" in names else "start"}


@dataclass
class BenchConfig:
    """What to run.  ``None`` means the per-test default (see the module constants)."""

    strategies: Sequence[str] = FREE_BULK_STRATEGIES
    loops: int | None = None
    bulk_sizes: Sequence[int] = BULK_SIZES          # test01
    bulksz: int | None = None                       # test02 (16) and test03 (64)
    object_size: int | None = None                  # 232 (test01/02), 224 (test03)
    nr_cpus: int = 8                                # nr_cpu_ids of the seed's machine
    keep_cache: bool = False
    prefill: int = 4096                             # test03
    fragment: int = 0                               # slabs left partly full before timing
    fragment_free: int | None = None                # ... with this many free objects each
    nmatch: Sequence[int] | None = None             # test03 N-page-match list
    repeat: int = 1
    arena_size: int | None = None                   # None: sized to the run (>= 64 MiB)
    kinds: Sequence[str] | None = None              # measurement kinds to plan (None: all)
    slub: str = "4.4"                               # the SLUB generation of the caches
    sheaf_capacity: int | None = None               # 6.18: opt in; 7.0: a minimum
    hardening: Sequence[str] = ()                   # of HARDENING: pyslub.hardening options

    def __post_init__(self) -> None:
        bad = [s for s in self.strategies if s not in FREE_BULK_STRATEGIES]
        if bad or not self.strategies:
            raise ValueError(f"unknown free_bulk strategies {bad}; "
                             f"choose from {FREE_BULK_STRATEGIES}")
        for name in ("loops", "bulksz", "object_size"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or v < 1):
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if any(b < 1 for b in self.bulk_sizes):
            raise ValueError("bulk sizes must be >= 1")
        if self.repeat < 1 or self.nr_cpus < 1 or self.prefill < 2 or self.fragment < 0:
            raise ValueError("repeat and nr_cpus must be >= 1, prefill >= 2, fragment >= 0")
        if self.slub not in ("4.4", "6.18", "7.0"):
            raise ValueError(f"slub {self.slub!r}: choose 4.4, 6.18 or 7.0")
        if self.sheaf_capacity is not None and self.slub == "4.4":
            raise ValueError("sheaf_capacity needs slub 6.18 or 7.0")
        if set(self.hardening) - set(HARDENING):
            raise ValueError(f"hardening: choose from {HARDENING}, got {list(self.hardening)}")
        if self.kinds is not None and (not self.kinds or set(self.kinds) - set(KINDS)):
            raise ValueError(f"kinds must be a non-empty subset of {KINDS}, got {self.kinds}")

    def loops_for(self, test: str, driver: str) -> int:
        return self.loops if self.loops is not None else default_loops(test, driver)

    def object_size_for(self, test: str) -> int:
        return self.object_size if self.object_size is not None else DEFAULT_OBJECT_SIZE[test]

    def bulksz_for(self, test: str) -> int:
        return self.bulksz if self.bulksz is not None else DEFAULT_BULKSZ[test]

    def arena_for(self, tests: Sequence[str] = TESTS) -> int:
        """Arena bytes: room for the largest bulk plus test03's prefill, four times over.

        Small on purpose: destroying a cache walks every page record of the arena."""
        if self.arena_size is not None:
            return self.arena_size
        need = 0
        for t in tests:
            bulk = max(self.bulk_sizes) if t == "test01" else self.bulksz_for(t)
            objs = bulk + (self.prefill if t == "test03" else 0)
            objs += self.fragment * self.geometry(t).objects
            need = max(need, 4 * objs * self.geometry(t).size)
        size = 64 << 20
        while size < need:
            size <<= 1
        return size

    def geometry(self, test: str) -> Geometry:
        return cache_geometry(self.object_size_for(test), 0, SLAB_HWCACHE_ALIGN, self.nr_cpus)

    def sheaf_capacity_for(self, test: str) -> int:
        """The sheaf capacity the caches of ``test`` get (0: none)."""
        if self.slub == "7.0":
            return calculate_sheaf_capacity(self.geometry(test).size, SLAB_HWCACHE_ALIGN,
                                            self.sheaf_capacity or 0)
        return self.sheaf_capacity or 0 if self.slub == "6.18" else 0


@dataclass(frozen=True)
class Spec:
    """One ``time_bench_loop`` call."""

    test: str
    kind: str                 # for_loop|fastpath_reuse|bulk_fallback|bulk_quick_reuse|test03
    txt: str                  # the Type: printed on the time_bench line
    loops: int                # rec.loops (iterations)
    step: int                 # rec.step (bulk size; 0 for for_loop / fastpath reuse)
    cache_name: str = ""      # kernel's cache name ("" = no cache)
    strategy: str | None = None   # free_bulk generation (None: not a bulk-API measurement)
    nmatch: int | None = None     # test03: every N-th page a match (0 = worst case)
    pass_no: int = 0          # strategy pass (one shared cache per pass with keep_cache)
    round_no: int = 0         # repetition
    header: tuple[str, ...] = ()  # module lines printed before the measurement


@dataclass
class Measurement:
    """A finished measurement: the kernel record plus what pyslub adds."""

    spec: Spec
    driver: str
    record: TimeBenchRecord | None     # None: "ABORT: function being timed failed"
    stats: dict[str, int] = field(default_factory=dict)   # counter deltas over the timed loop

    @property
    def ok(self) -> bool:
        return self.record is not None and self.record.invoked_cnt > 0

    @property
    def label(self) -> str:
        """Column name in reports: the strategy, or the measurement kind."""
        if self.spec.strategy:
            return self.spec.strategy
        return "bulk_fallback" if self.spec.kind == "test03" else self.spec.kind

    @property
    def stats_per_object(self) -> dict[str, float]:
        cnt = self.record.invoked_cnt if self.record else 0
        return {k: (v / cnt if cnt else 0.0) for k, v in self.stats.items()}

    def to_dict(self) -> dict[str, Any]:
        """Flat, JSON-ready: the record's fields, the spec, the counters."""
        d: dict[str, Any] = self.record.to_dict() if self.record else {"txt": self.spec.txt}
        d.update(test=self.spec.test, kind=self.spec.kind, driver=self.driver,
                 strategy=self.spec.strategy, nmatch=self.spec.nmatch,
                 cache_name=self.spec.cache_name, pass_no=self.spec.pass_no,
                 round=self.spec.round_no, ok=self.ok,
                 stats={k: v for k, v in self.stats.items() if v},
                 stats_per_object={k: v for k, v in self.stats_per_object.items() if v})
        if self.ok:
            d["ns_per_elem"] = self.record.time_interval / self.record.invoked_cnt
        if self.record is not None:
            d["line"] = self.record.format_line()       # the kernel's time_bench: line
        return d


# =============================================================================================
# Planning
# =============================================================================================

def _capped(test: str, bulk: int) -> int:
    return min(bulk, MAX_BULK[test])


def plan(test: str, config: BenchConfig, driver: str) -> list[Spec]:
    """The ``time_bench_loop`` calls of one module run, for every strategy and repetition."""
    if test not in TESTS:
        raise ValueError(f"unknown test {test!r}; choose one of {TESTS}")
    loops = config.loops_for(test, driver)
    keep = config.keep_cache
    specs: list[Spec] = []
    for rnd in range(config.repeat):
        for pno, strategy in enumerate(config.strategies):
            full = pno == 0 or keep          # strategy-independent measurements too?
            kw = {"pass_no": pno, "round_no": rnd}
            if test == "test01":
                if pno == 0:
                    specs.append(Spec(test, "for_loop", "for_loop", loops * 10, 0, **kw))
                if full:
                    specs.append(Spec(test, "fastpath_reuse", "kmem fastpath reuse", loops, 0,
                                      "slab_bench_test1", **kw))
                for bulk in config.bulk_sizes:
                    if full:
                        specs.append(Spec(test, "bulk_fallback", "kmem bulk_fallback",
                                          loops // bulk, bulk, "slab_bench_test2", **kw))
                    specs.append(Spec(test, "bulk_quick_reuse", "kmem bulk_quick_reuse",
                                      loops // bulk, bulk, "slab_bench_test3", strategy, **kw))
            elif test == "test02":
                bulk = config.bulksz_for(test)
                specs.append(Spec(test, "bulk_quick_reuse", "kmem_cache_(free+alloc)_bulk",
                                  loops, bulk, "slab_bulk_test02", strategy,
                                  header=(f"Bench bulk size:{bulk}",), **kw))
            else:
                bulk = config.bulksz_for(test)
                nmatch = config.nmatch or (*TEST03_NMATCH, bulk + 1)
                variants = [(0, "worse-case")] + [(n, "N-page-match") for n in nmatch]
                for i, (n, name) in enumerate(variants):
                    head = (f"Bench bulk size:{bulk}",) if i == 0 else ()
                    if n:
                        head += (f"Every N:{n} page will be a match",)
                    specs.append(Spec(test, "test03", f"{name}-bulk", loops // bulk, bulk,
                                      "slab_bulk_test03", strategy, n, header=head, **kw))
                    if full:
                        specs.append(Spec(test, "test03", f"{name}-fallback", loops // bulk,
                                          bulk, "slab_bulk_test03", None, n,
                                          header=head[-1:] if n else (), **kw))
    if config.kinds is not None:
        specs = [s for s in specs if s.kind in config.kinds]
    return specs


def counted(spec: Spec) -> int:
    """Objects a measurement counts (its ``invoked_cnt``) when it runs to the end."""
    if spec.kind in ("for_loop", "fastpath_reuse"):
        return spec.loops
    return spec.loops * spec.step


def min_loops(test: str, config: BenchConfig, driver: str) -> int:
    """The smallest ``loops`` for which every measurement of the plan counts at least
    ``TIME_BENCH_MIN_COUNT`` objects (time_bench refuses fewer)."""
    need = TIME_BENCH_MIN_COUNT
    while True:
        cfg = BenchConfig(**{**config.__dict__, "loops": need, "repeat": 1})
        short = [s for s in plan(test, cfg, driver) if counted(s) < TIME_BENCH_MIN_COUNT]
        if not short:
            return need
        need += 1


# =============================================================================================
# Running
# =============================================================================================

class Runner:
    """Executes plans with one driver over one ``Memory`` (arena)."""

    def __init__(self, config: BenchConfig, driver: str,
                 printer: Callable[[str], Any] = print) -> None:
        self.config = config
        self.driver = get_driver(driver)
        self.printer = printer
        self.clock = bench_clock()
        self.mem = Memory(size=config.arena_for(), nr_cpus=config.nr_cpus, checks=False,
                          slub=config.slub, **hardening_kwargs(config.hardening))
        self.measurements: list[Measurement] = []
        self._shared: dict[tuple[str, int, int], Any] = {}   # keep_cache: (test, round, pass)

    # -- caches -------------------------------------------------------------------------------
    def _new_cache(self, spec: Spec) -> Any:
        size = self.config.object_size_for(spec.test)
        name = spec.cache_name
        if self.config.keep_cache:
            geo = self.config.geometry(spec.test)
            name = f":t-{geo.size:07d}"           # the merged alias, as in /sys/kernel/slab
        cache = self.mem.create_cache(name, size, flags=SLAB_HWCACHE_ALIGN,
                                      sheaf_capacity=self.config.sheaf_capacity)
        state: dict[str, Any] = {"cache": cache, "background": []}
        if self.config.fragment:
            # other users of a merged cache: fill `fragment` slabs, free `free` objects of each
            # (spread out), keep the rest allocated -> partly full slabs on the partial lists
            per = cache.info["objs_per_slab"]
            free = per // 2 if self.config.fragment_free is None else self.config.fragment_free
            free = max(0, min(free, per))
            objs = [cache.alloc() for _ in range(self.config.fragment * per)]
            gone = {i * per // free for i in range(free)} if free else set()
            for k, obj in enumerate(objs):       # a fresh cache fills its slabs in order
                if k % per in gone:
                    cache.free(obj)
                else:
                    state["background"].append(obj)
        if spec.kind == "test03":
            h = self.driver.objhash(cache)
            for _ in range(self.config.prefill):          # module init: prefill, one by one
                h.add_one(cache.alloc())
            state["objhash"] = h
        return state

    def _destroy(self, state: dict[str, Any]) -> None:
        cache = state["cache"]
        h = state.get("objhash")
        if h is not None:
            for obj in h.drain():
                cache.free(obj)
        for obj in state["background"]:
            cache.free(obj)
        try:
            self.mem.destroy_cache(cache)
        except SlabError as err:                  # objects left behind by an aborted loop
            self.printer(f"pyslub: cache {cache.name} not destroyed: {err}")

    def _cache_for(self, spec: Spec) -> dict[str, Any] | None:
        if spec.kind == "for_loop":
            return None
        if not self.config.keep_cache:
            return self._new_cache(spec)
        key = (spec.test, spec.round_no, spec.pass_no)
        for k in [k for k in self._shared if k != key]:   # a new pass: the old cache goes
            self._destroy(self._shared.pop(k))
        if key not in self._shared:
            self._shared[key] = self._new_cache(spec)
        return self._shared[key]

    def finish(self) -> None:
        """Destroy caches kept across measurements."""
        for key in list(self._shared):
            self._destroy(self._shared.pop(key))

    # -- one measurement ----------------------------------------------------------------------
    def _stats(self, state: dict[str, Any] | None) -> dict[str, int]:
        return state["cache"].stats() if state else dict.fromkeys(STAT_ALL, 0)

    def measure(self, spec: Spec) -> Measurement:
        for line in spec.header:
            self.printer(f"slab_bulk_{spec.test}: {line}")
        state = self._cache_for(spec)
        bulk = _capped(spec.test, spec.step) if spec.step else 0
        if bulk != spec.step:
            self.printer(f"slab_bulk_{spec.test}: benchmark() bulk({spec.step}) request too "
                         f"big cap at {bulk}")
        objs = self.driver.objs(bulk) if bulk else None
        d = self.driver

        def func(rec: TimeBenchRecord) -> int:
            if bulk and rec.loops * bulk * 2 >= U32_LIMIT:
                self.printer(f"slab_bulk_{spec.test}: Loop cnt too big will overflow 32-bit")
                return 0
            if spec.kind == "for_loop":
                return d.for_loop(rec)
            cache = state["cache"]
            if spec.kind == "fastpath_reuse":
                return d.fastpath_reuse(rec, cache)
            if spec.kind == "bulk_fallback":
                return d.bulk_fallback(rec, cache, bulk, objs)
            if spec.kind == "bulk_quick_reuse":
                return d.bulk_quick_reuse(rec, cache, bulk, spec.strategy, objs)
            modulo = spec.nmatch or MODULO_MATCH_DISABLED
            return d.test03(rec, cache, state["objhash"], bulk, modulo, spec.strategy, objs)

        before = self._stats(state)
        rec = time_bench_loop(spec.loops, bulk, spec.txt, func, printer=self.printer,
                              clock=self.clock)
        after = self._stats(state)
        if state is not None and not self.config.keep_cache:
            self._destroy(state)
        m = Measurement(spec, self.driver.name, rec,
                        {k: after.get(k, 0) - before.get(k, 0) for k in STAT_ALL})
        self.measurements.append(m)
        return m

    def run(self, specs: Sequence[Spec],
            progress: Callable[[Spec], Any] | None = None) -> list[Measurement]:
        out = []
        try:
            for spec in specs:
                out.append(self.measure(spec))
                if progress is not None:
                    progress(spec)
        finally:
            self.finish()
        return out


# =============================================================================================
# Reductions for reports
# =============================================================================================

def select(ms: Sequence[Measurement], **kw: Any) -> Iterator[Measurement]:
    """Measurements whose spec fields (or ``driver``) equal the given values, ok ones only."""
    for m in ms:
        if not m.ok:
            continue
        if all((m.driver if k == "driver" else getattr(m.spec, k)) == v for k, v in kw.items()):
            yield m


def median_stats(ms: Sequence[Measurement]) -> dict[str, float]:
    """Median over measurements of each counter per object."""
    ms = list(ms)
    if not ms:
        return {}
    return {k: statistics.median(m.stats_per_object.get(k, 0.0) for m in ms) for k in STAT_ALL}
