"""``pyslub bench peers``: pyslub next to what a user would otherwise pick, in one time window.

The workload is test01's: alloc N objects of 256 bytes, then free the N, for N in test01's bulk
sizes; ns per object (one alloc + one free).  The peers:

=============  =================================================================================
C allocators   glibc, jemalloc and mimalloc ``malloc``/``free``, each ``dlopen``-ed from
               whichever shared library is installed, called from a small C harness
               (``peers_harness.c``, built at run time with the system C compiler)
C limits       an array stack (pop N slot pointers, push N back) and an in-object freelist
               (follow the link in each free object, push it back): what no allocator beats
Python pools   a list free stack (``p = free[-n:]; del free[-n:]; free += p``) and a numpy
               free stack (slice copies into the caller's array, as ``alloc_bulk(p)`` fills p),
               inlined in the timed loop: the cheapest such a pool can be
pyslub         the native driver (compiled loop, C-level calls: ``kmem_cache_alloc_bulk`` +
               ``kmem_cache_free_bulk``) and the python driver (``cache.alloc_bulk(p)`` +
               ``cache.free_bulk(p)`` from a Python loop), fresh 256-byte cache, default strategy
=============  =================================================================================

Every measurement uses time_bench's clock discipline (wall clock, then CPUID;RDTSC ... RDTSCP;
CPUID, then wall clock) and becomes a ``TimeBenchRecord``.  Rounds are interleaved at the
finest grain: for each round, for each bulk size, every peer once -- so drift of a noisy
machine hits all of them alike.  Ratios are per row: C-level peers against pyslub's native
driver, Python pools against its python driver.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np

from pyslub.bench.seed import BULK_SIZES
from pyslub.bench.summary import Spread, fmt_ns, text_table
from pyslub.bench.time_bench import TimeBenchClock, TimeBenchRecord

__all__ = [
    "C_ALLOCATORS",
    "OBJECT_SIZE",
    "PEERS",
    "Allocator",
    "Harness",
    "Peer",
    "PeersResult",
    "build_harness",
    "find_allocators",
    "peers_lines",
    "run_peers",
]

OBJECT_SIZE = 256
MAX_BULK = 4096                      # the harness's objs[] size
HARNESS_SOURCE = "peers_harness.c"
CFLAGS = ("-O2", "-shared", "-fPIC", "-pthread")
# jemalloc's library uses initial-exec TLS; a running Python has no static TLS left for it
# unless the process started with this glibc tunable (pyslub bench re-execs itself with it)
TLS_TUNABLE = "glibc.rtld.optional_static_tls=16384"


def tls_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: os.environ) with ``TLS_TUNABLE`` added to GLIBC_TUNABLES."""
    env = dict(os.environ if env is None else env)
    cur = env.get("GLIBC_TUNABLES", "")
    if TLS_TUNABLE not in cur:
        env["GLIBC_TUNABLES"] = f"{cur}:{TLS_TUNABLE}" if cur else TLS_TUNABLE
    return env


@dataclass(frozen=True)
class Allocator:
    """A C allocator to look for: its shared library names and its malloc/free symbols."""

    name: str
    sonames: tuple[str, ...]
    malloc: str
    free: str
    install: str                      # how to get it, for the skip line


C_ALLOCATORS = (
    Allocator("glibc", ("libc.so.6",), "malloc", "free", "part of the C library"),
    Allocator("jemalloc", ("libjemalloc.so.2", "libjemalloc.so"), "malloc", "free",
              "Debian/Ubuntu: apt-get install libjemalloc2"),
    Allocator("mimalloc", ("libmimalloc.so.2", "libmimalloc.so"), "mi_malloc", "mi_free",
              "Debian/Ubuntu: apt-get install libmimalloc2.0"),
)


@dataclass(frozen=True)
class Peer:
    """One column of the peers table."""

    name: str                         # short column name
    level: str                        # "c" (vs pyslub native) or "python" (vs pyslub python)
    what: str                         # one line for the legend


PEERS = (
    Peer("native", "c", "pyslub native driver: kmem_cache_alloc_bulk + free_bulk from C"),
    Peer("glibc", "c", "glibc malloc + free (dlopen)"),
    Peer("jemalloc", "c", "jemalloc malloc + free (dlopen)"),
    Peer("mimalloc", "c", "mimalloc mi_malloc + mi_free (dlopen)"),
    Peer("stack", "c", "C limit: array stack, N pops then N pushes"),
    Peer("freelist", "c", "C limit: in-object freelist, N pops then N pushes"),
    Peer("python", "python", "pyslub python driver: cache.alloc_bulk(p) + cache.free_bulk(p)"),
    Peer("list", "python", "Python list free stack, slice pop + extend"),
    Peer("numpy", "python", "numpy free stack, slice copies into p"),
)
REFERENCE = {"c": "native", "python": "python"}


# =============================================================================================
# The C harness
# =============================================================================================

def cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "pyslub")


def build_harness(cc: str | None = None, directory: str | None = None) -> tuple[str | None, str]:
    """Compile ``peers_harness.c`` into the user cache (once per source and compiler).

    Returns ``(path, "")``, or ``(None, reason)`` when there is no compiler or it fails."""
    from pyslub.bench.machine import c_compiler, compiler_version

    cc = cc or c_compiler()
    if cc is None:
        return None, ("no C compiler found (set CC, or install one: apt-get install gcc); "
                      "the C allocators and C limits need it")
    src = resources.files("pyslub.bench").joinpath(HARNESS_SOURCE).read_bytes()
    has_cg = os.path.exists("/usr/include/valgrind/callgrind.h")
    key = hashlib.sha256(src + (compiler_version(cc) or cc).encode() + " ".join(CFLAGS)
                         .encode() + bytes([has_cg])).hexdigest()[:16]
    directory = directory or cache_dir()
    path = os.path.join(directory, f"peers_harness-{key}.so")
    if os.path.exists(path):
        return path, ""
    try:
        os.makedirs(directory, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            c_file = os.path.join(tmp, HARNESS_SOURCE)
            with open(c_file, "wb") as f:
                f.write(src)
            out = os.path.join(directory, f".{os.getpid()}-{key}.so")
            proc = subprocess.run([*cc.split(), *CFLAGS, "-o", out, c_file, "-ldl"],
                                  capture_output=True, text=True, timeout=120, check=False)
            if proc.returncode != 0:
                return None, f"{cc} failed on {HARNESS_SOURCE}: {proc.stderr.strip()[-300:]}"
            os.replace(out, path)
    except OSError as err:
        return None, f"cannot build the C harness in {directory}: {err}"
    return path, ""


class Harness:
    """The loaded harness: ``dlopen`` allocators, run the timed C loops."""

    def __init__(self, path: str) -> None:
        self.path = path
        lib = ctypes.CDLL(path)
        u64p = ctypes.POINTER(ctypes.c_uint64)
        lib.peers_open.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                                   ctypes.c_char_p, ctypes.c_int]
        lib.peers_open.restype = ctypes.c_int
        lib.peers_bench_malloc.argtypes = [ctypes.c_int, ctypes.c_long, ctypes.c_int,
                                           ctypes.c_long, u64p]
        for fn in (lib.peers_bench_stack, lib.peers_bench_freelist):
            fn.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_long, u64p]
        for fn in (lib.peers_bench_malloc, lib.peers_bench_stack, lib.peers_bench_freelist):
            fn.restype = ctypes.c_int
        lib.peers_bench_xmalloc.argtypes = [ctypes.c_int, ctypes.c_long, ctypes.c_int,
                                            ctypes.c_long, ctypes.c_int, ctypes.c_int, u64p]
        lib.peers_bench_xmalloc.restype = ctypes.c_int
        lib.peers_callgrind.argtypes = [ctypes.c_int]
        lib.peers_callgrind.restype = ctypes.c_int
        self.has_callgrind = bool(lib.peers_callgrind(0))
        self.lib = lib
        self.slots: dict[str, int] = {}

    def open(self, alloc: Allocator) -> tuple[str | None, str]:
        """``dlopen`` the first library of ``alloc`` that loads: (soname, "") or (None, why)."""
        why = ""
        for soname in alloc.sonames:
            err = ctypes.create_string_buffer(512)
            slot = self.lib.peers_open(soname.encode(), alloc.malloc.encode(),
                                       alloc.free.encode(), err, len(err))
            if slot >= 0:
                self.slots[alloc.name] = slot
                return soname, ""
            why = why or err.value.decode(errors="replace")
        return None, why

    def run(self, peer: str, loops: int, bulk: int,
            size: int = OBJECT_SIZE) -> tuple[int, int, int, int, int]:
        """One timed loop: ``(invoked_cnt, tsc_start, tsc_stop, start_ns, stop_ns)``."""
        out = (ctypes.c_uint64 * 5)()
        if peer == "stack":
            rc = self.lib.peers_bench_stack(loops, bulk, size, out)
        elif peer == "freelist":
            rc = self.lib.peers_bench_freelist(loops, bulk, size, out)
        else:
            rc = self.lib.peers_bench_malloc(self.slots[peer], loops, bulk, size, out)
        if rc != 0:
            raise RuntimeError(f"peers harness: {peer} bulk {bulk} failed ({rc})")
        return out[0], out[1], out[2], out[3], out[4]


    def xmalloc(self, peer: str, total: int, batch: int, size: int = OBJECT_SIZE,
                pins: tuple[int, int] = (-1, -1)) -> tuple[int, int, int, int, int]:
        """Remote frees: ``total`` mallocs in batches of ``batch`` on the calling thread, freed
        by a consumer thread (``pins``: a core for each, or -1); the five numbers of ``run``."""
        out = (ctypes.c_uint64 * 5)()
        rc = self.lib.peers_bench_xmalloc(self.slots[peer], total, batch, size, pins[0],
                                          pins[1], out)
        if rc != 0:
            raise RuntimeError(f"peers harness: {peer} xmalloc batch {batch} failed ({rc})")
        return out[0], out[1], out[2], out[3], out[4]


def _loaded_path(soname: str) -> str:
    """The file a loaded library came from (from /proc/self/maps), else the soname."""
    try:
        with open("/proc/self/maps", encoding="utf-8") as f:
            for line in f:
                path = line.split()[-1]
                if os.path.basename(path).startswith(soname):
                    return path
    except OSError:
        pass
    return soname


def _version(alloc: Allocator, soname: str) -> str | None:
    try:
        lib = ctypes.CDLL(soname, mode=os.RTLD_LOCAL | os.RTLD_NOW)
        if alloc.name == "glibc":
            lib.gnu_get_libc_version.restype = ctypes.c_char_p
            return lib.gnu_get_libc_version().decode()
        if alloc.name == "mimalloc":
            v = lib.mi_version()
            return f"{v // 100}.{v // 10 % 10}.{v % 10}"
        if alloc.name == "jemalloc":
            ptr, size = ctypes.c_char_p(), ctypes.c_size_t(ctypes.sizeof(ctypes.c_char_p))
            if lib.mallctl(b"version", ctypes.byref(ptr), ctypes.byref(size), None, 0) == 0:
                return (ptr.value or b"").decode().split("-")[0]
    except (OSError, AttributeError, ValueError):
        pass
    return None


def find_allocators(harness: Harness) -> tuple[list[dict[str, Any]], list[str]]:
    """Load every C allocator found: (found: name/soname/path/version, skip lines)."""
    found, skipped = [], []
    for alloc in C_ALLOCATORS:
        soname, why = harness.open(alloc)
        if soname is None:
            if "static TLS" in why:
                skipped.append(f"{alloc.name}: skipped, {alloc.sonames[0]} needs static TLS "
                               f"this process lacks: run with GLIBC_TUNABLES={TLS_TUNABLE}")
            else:
                skipped.append(f"{alloc.name}: skipped, {alloc.sonames[0]} not found; "
                               f"{alloc.install}")
            continue
        found.append({"name": alloc.name, "soname": soname, "path": _loaded_path(soname),
                      "version": _version(alloc, soname)})
    return found, skipped


# =============================================================================================
# Python pools (timed with the same clocks as the python driver)
# =============================================================================================

def _list_pool(rec: TimeBenchRecord, bulk: int, nslots: int) -> int:
    free = list(range(0, nslots * OBJECT_SIZE, OBJECT_SIZE))   # offsets of free slots
    cnt = 0
    rec.start()
    for _ in range(rec.loops):
        p = free[-bulk:]                     # alloc N: take the top N slots
        del free[-bulk:]
        free += p                            # free N: push them back
        cnt += bulk
    rec.stop(cnt)
    return cnt


def _numpy_pool(rec: TimeBenchRecord, bulk: int, nslots: int) -> int:
    free = np.arange(nslots, dtype=np.uint64) * OBJECT_SIZE
    p = np.zeros(bulk, dtype=np.uint64)      # the caller's array, as for alloc_bulk(p)
    top = nslots
    cnt = 0
    rec.start()
    for _ in range(rec.loops):
        p[:] = free[top - bulk:top]          # alloc N
        top -= bulk
        free[top:top + bulk] = p             # free N
        top += bulk
        cnt += bulk
    rec.stop(cnt)
    return cnt


# =============================================================================================
# A run
# =============================================================================================

@dataclass
class PeersResult:
    """Every measurement of a peers run, and what was found or skipped."""

    bulk_sizes: tuple[int, ...]
    rounds: int
    loops: dict[str, int]                         # per level: objects per measurement
    allocators: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    records: dict[str, dict[int, list[TimeBenchRecord]]] = field(default_factory=dict)
    instructions: dict[str, dict[int, float]] = field(default_factory=dict)
    instructions_note: str = ""
    strategy: str = ""

    @property
    def peers(self) -> list[Peer]:
        return [p for p in PEERS if p.name in self.records]

    def spread(self, peer: str) -> dict[int, Spread]:
        return {b: Spread.of(r.time_interval / r.invoked_cnt for r in rs)
                for b, rs in self.records.get(peer, {}).items() if rs}

    def ratio(self, peer: Peer, bulk: int) -> float | None:
        """Median over rounds of peer ns / pyslub ns (same round, same bulk size)."""
        ref = self.records.get(REFERENCE[peer.level], {}).get(bulk)
        mine = self.records.get(peer.name, {}).get(bulk)
        if not ref or not mine:
            return None
        pairs = [(a.time_interval / a.invoked_cnt) / (b.time_interval / b.invoked_cnt)
                 for a, b in zip(mine, ref, strict=False)]
        return statistics.median(pairs)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "workload": f"alloc N x {OBJECT_SIZE} B, then free the N; ns per object",
            "bulk_sizes": list(self.bulk_sizes), "rounds": self.rounds, "loops": self.loops,
            "pyslub_strategy": self.strategy, "allocators": self.allocators,
            "skipped": self.skipped,
            "peers": {p.name: {"level": p.level, "what": p.what} for p in self.peers},
            "ns": {}, "ratio_to_pyslub": {}, "records": {},
            "instructions_per_object": self.instructions,
            "instructions_note": self.instructions_note,
        }
        for p in self.peers:
            out["ns"][p.name] = {str(b): s.to_dict() for b, s in self.spread(p.name).items()}
            out["ratio_to_pyslub"][p.name] = {str(b): self.ratio(p, b) for b in self.bulk_sizes}
            out["records"][p.name] = {str(b): [r.to_dict() | {"line": r.format_line()}
                                               for r in rs]
                                      for b, rs in self.records[p.name].items()}
        return out


def _record(loops: int, bulk: int, txt: str, result: Sequence[int]) -> TimeBenchRecord:
    rec = TimeBenchRecord(loops=loops, step=bulk, txt=txt)
    rec.invoked_cnt, rec.tsc_start, rec.tsc_stop, rec.start_ns, rec.stop_ns = result
    rec.calc_stats()
    return rec


# the free_bulk strategy pyslub runs per generation: v4.4's merged one; 7.0's (its sheaves
# flush with the swap form)
STRATEGY = {"4.4": "lookahead", "6.18": "lookahead", "7.0": "swap"}


def run_peers(*, bulk_sizes: Sequence[int] = BULK_SIZES, rounds: int = 5,
              loops: int | None = None, python_loops: int | None = None,
              nr_cpus: int = 8, harness_path: str | None = None, harness_note: str = "",
              progress: Callable[[str], Any] | None = None,
              printer: Callable[[str], Any] | None = None, slub: str = "4.4",
              sheaf_capacity: int | None = None) -> PeersResult:
    """Measure every peer found, ``rounds`` interleaved rounds (see the module docstring).

    ``loops``: objects per measurement of the C-level peers (default 1,000,000);
    ``python_loops``: of the Python-level ones (default 100,000).  ``harness_path``: a built
    harness (``build_harness``); None skips the C peers with ``harness_note`` as the reason."""
    from pyslub.bench import suite
    from pyslub.bench.drivers import bench_clock

    if any(not 1 <= b <= MAX_BULK for b in bulk_sizes):
        raise ValueError(f"peers bulk sizes must be 1..{MAX_BULK}")
    python_loops = python_loops or loops or 100_000
    loops = loops or 1_000_000
    res = PeersResult(tuple(bulk_sizes), rounds, {"c": loops, "python": python_loops})
    harness = None
    if harness_path is not None:
        harness = Harness(harness_path)
        res.allocators, res.skipped = find_allocators(harness)
    else:
        res.skipped.append(f"C allocators and C limits: skipped, {harness_note}")
    c_peers = ([a["name"] for a in res.allocators] + ["stack", "freelist"]) if harness else []

    runners = {}
    specs: dict[tuple[str, int, int], Any] = {}
    for driver, n in (("native", loops), ("python", python_loops)):
        cfg = suite.BenchConfig(strategies=(STRATEGY[slub],), loops=n,
                                bulk_sizes=tuple(bulk_sizes), object_size=OBJECT_SIZE,
                                nr_cpus=nr_cpus, repeat=rounds, kinds=("bulk_quick_reuse",),
                                slub=slub, sheaf_capacity=sheaf_capacity)
        runners[driver] = suite.Runner(cfg, driver, printer=printer or (lambda _line: None))
        for s in suite.plan("test01", cfg, driver):
            specs[(driver, s.round_no, s.step)] = s
    strategy = runners["native"].mem.create_cache("peers-probe", OBJECT_SIZE)
    res.strategy = strategy.free_bulk_strategy
    runners["native"].mem.destroy_cache(strategy)
    clock: TimeBenchClock = bench_clock()
    nslots = 2 * max(bulk_sizes)
    try:
        for rnd in range(rounds):
            for bulk in bulk_sizes:
                k = rnd % len(PEERS)              # rotate who goes first, round by round
                for peer in PEERS[k:] + PEERS[:k]:
                    name = peer.name
                    n = loops if peer.level == "c" else python_loops
                    iters = n // bulk
                    if name in ("native", "python"):
                        m = runners[name].measure(specs[(name, rnd, bulk)])
                        rec = m.record
                        if rec is None:
                            raise RuntimeError(f"pyslub {name} bulk {bulk} failed")
                    elif name in ("list", "numpy"):
                        rec = TimeBenchRecord(loops=iters, step=bulk, txt=f"peers {name} pool",
                                              clock=clock)
                        (_list_pool if name == "list" else _numpy_pool)(rec, bulk, nslots)
                        rec.calc_stats()
                    elif name in c_peers and harness is not None:
                        rec = _record(iters, bulk, f"peers {name}",
                                      harness.run(name, iters, bulk))
                    else:
                        continue
                    res.records.setdefault(name, {}).setdefault(bulk, []).append(rec)
                    if printer is not None:
                        printer(rec.format_line())
                    if progress is not None:
                        progress(name)
    finally:
        for r in runners.values():
            r.finish()
    return res


def planned_measurements(bulk_sizes: Sequence[int], rounds: int, c_peers: int = 5) -> int:
    """How many measurements ``run_peers`` makes (for a progress bar)."""
    return rounds * len(bulk_sizes) * (c_peers + 4)


# =============================================================================================
# Instructions under callgrind
# =============================================================================================

def count_peer_instructions(harness_path: str, *, bulk_sizes: Sequence[int] = BULK_SIZES,
                            loops: int = 20_000, slub: str = "4.4",
                            sheaf_capacity: int | None = None) -> dict[str, dict[int, float]]:
    """Instructions per object of the C-level peers and pyslub's native loop (callgrind)."""
    from pyslub.bench.instructions import _bench_symbols, callgrind_counts

    if not Harness(harness_path).has_callgrind:
        raise RuntimeError("the C harness was built without valgrind/callgrind.h")
    child = [sys.executable, "-m", "pyslub.bench.peers", "--child",
             json.dumps({"harness": harness_path, "bulk_sizes": list(bulk_sizes),
                         "loops": loops, "slub": slub, "sheaf_capacity": sheaf_capacity})]
    rows, irs = callgrind_counts(child, collect=["__pyx_pw_6pyslub_5bench_7_native_*bench_*"],
                                 dump_after=_bench_symbols(), env=tls_env())
    out: dict[str, dict[int, float]] = {}
    for row, ir in zip(rows, irs, strict=True):
        if row["invoked_cnt"]:
            out.setdefault(row["peer"], {})[row["bulk"]] = ir / row["invoked_cnt"]
    return out


def _child(config_json: str) -> None:
    """Under callgrind: each C-level peer once per bulk size, one JSON line per timed call."""
    from pyslub.bench import suite

    cfg = json.loads(config_json)
    harness = Harness(cfg["harness"])
    found, _ = find_allocators(harness)
    harness.lib.peers_callgrind(1)
    names = [a["name"] for a in found] + ["stack", "freelist"]
    loops, bulks = cfg["loops"], cfg["bulk_sizes"]
    slub = cfg.get("slub", "4.4")
    bc = suite.BenchConfig(strategies=(STRATEGY[slub],), loops=loops, bulk_sizes=tuple(bulks),
                           object_size=OBJECT_SIZE, kinds=("bulk_quick_reuse",), slub=slub,
                           sheaf_capacity=cfg.get("sheaf_capacity"))
    runner = suite.Runner(bc, "native", printer=lambda _line: None)
    for spec in suite.plan("test01", bc, "native"):
        m = runner.measure(spec)
        print(json.dumps({"peer": "native", "bulk": spec.step,
                          "invoked_cnt": m.record.invoked_cnt if m.record else 0}), flush=True)
    runner.finish()
    for name in names:
        for bulk in bulks:
            cnt = harness.run(name, loops // bulk, bulk)[0]
            print(json.dumps({"peer": name, "bulk": bulk, "invoked_cnt": cnt}), flush=True)


# =============================================================================================
# Text
# =============================================================================================

def peers_lines(res: PeersResult, *, bulk_sizes: Sequence[int] | None = None) -> list[str]:
    """The peers tables (ns with spread, ratios, instructions), each <= 100 columns."""
    peers = res.peers
    bulks = list(bulk_sizes or res.bulk_sizes)
    lines = [f"ns per object (alloc + free, {OBJECT_SIZE} B), median of {res.rounds} rounds;"
             " ±: half the quartile range, % of it:"]
    spreads = {p.name: res.spread(p.name) for p in peers}
    rows = []
    for b in bulks:
        cells = [str(b)]
        for p in peers:
            s = spreads[p.name].get(b)
            cells.append("-" if s is None else f"{fmt_ns(s.median)}±{50 * s.rel:.0f}")
        rows.append(cells)
    lines += text_table(["bulk", *(p.name for p in peers)], rows)
    others = [p for p in peers if p.name not in REFERENCE.values()]
    if others:
        lines.append("")
        lines.append("time / pyslub's time, per row (C-level vs native, Python pools vs "
                     "python; > 1: pyslub faster):")
        rows = []
        for b in bulks:
            cells = [str(b)]
            for p in others:
                r = res.ratio(p, b)
                cells.append("-" if r is None else f"{r:.2f}")
            rows.append(cells)
        lines += text_table(["bulk", *(p.name for p in others)], rows)
    if res.instructions:
        names = [p.name for p in peers if p.name in res.instructions]
        lines.append("")
        lines.append("instructions per object under callgrind (exact, repeatable):")
        rows = [[str(b), *(f"{res.instructions[n].get(b, float('nan')):.1f}" for n in names)]
                for b in bulks]
        lines += text_table(["bulk", *names], rows)
    elif res.instructions_note:
        lines.append(f"instructions: {res.instructions_note}")
    return lines


def legend_lines(res: PeersResult) -> list[str]:
    out = []
    for p in res.peers:
        out.append(f"  {p.name:<9}{p.what}")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m pyslub.bench.peers --child JSON`` (the callgrind child); else see
    ``pyslub bench peers``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--child"]:
        _child(argv[1])
        return 0
    print("usage: pyslub bench peers [options]   (see pyslub bench --help)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())

