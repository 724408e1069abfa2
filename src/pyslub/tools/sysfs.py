"""``/sys/kernel/slab/<cache>/`` for a pyslub ``Memory``: read, written, exported, snapshotted.

The file names, value formats and write rules are the v4.4 kernel's (mm/slub.c ``*_show`` /
``*_store``; Documentation/ABI/testing/sysfs-kernel-slab), for a kernel with CONFIG_SMP,
CONFIG_NUMA on one node (the occupancy files end in ``N0=``, as on distribution kernels),
CONFIG_SLUB_DEBUG, CONFIG_SLUB_STATS, CONFIG_ZONE_DMA and CONFIG_FAILSLAB:

* ``tree(mem)`` is a read-only mapping ``cache -> attribute -> text``; every read computes the
  text from the public API (``cache.info``, ``occupancy()``, ``stats(cpu)``, ``cpu_state``).
* ``tree(mem).write(cache, attribute, text)`` is a write to the file, with the kernel's
  parsing (``kstrtoul`` / ``kstrtouint``: optional ``+``, decimal digits, one optional
  trailing newline), its clamping (``set_min_partial``: 5..10) and its errors as ``OSError``
  with the kernel's errno (EINVAL, ERANGE, EBUSY; EACCES for a read-only file).
* ``export(mem, dir)`` writes the tree as files (one directory per cache), so scripts that
  read /sys/kernel/slab read pyslub; ``read_dir(dir)`` reads such a tree back (also a real
  /sys/kernel/slab, whose merged caches are symlinks); ``snapshot`` / ``load_snapshot`` keep
  the same texts in one JSON file.

Each cache's directory follows its SLUB generation (``cache.slub``; spec sheaves.md §4):

* **4.4**: the v4.4 files and its 26 SLUB_STATS counters.
* **6.18**: adds ``sheaf_capacity`` (read-only; 0 = no sheaves) and 6.18's 43-item enum
  (``alloc_cpu_sheaf``, ``free_cpu_sheaf``, the rcu-sheaf, sheaf, barn and prefill counters
  next to v4.4's).
* **7.0**: ``sheaf_capacity``; ``cpu_partial`` reads 0 (a write of 0 succeeds and does
  nothing, non-zero is EINVAL), ``slabs_cpu_partial`` reads ``0(0)`` and ``cpu_slabs`` 0 (no
  cpu slabs); the counter files are 7.0's 26 (``free_frozen``, the deactivation and cpu
  partial counters are gone: ENOENT).

6.18 and 7.0 also have the other files of today's kernels, as this machine's 6.18 shows them
(``tests/data/sysfs-6.18``): ``usersize`` (the usercopy region: the whole object for the
kmalloc caches, 0 for caches created without one, as all pyslub's are) and no ``reserved``
(gone since v5.x).  Choice: ``sheaf_capacity`` comes right after ``order`` and ``usersize``
after ``remote_node_defrag_ratio`` (a directory listing's order carries no meaning);
``skip_kfence`` (CONFIG_KFENCE) is left out.

Deviations, each forced by the public API: ``slabs_cpu_partial``
shows the free objects the cpu partial slabs have now (the kernel shows ``page->pobjects``, the
count when the list was last built); the debug toggles, ``order``, ``reclaim_account`` and
``remote_node_defrag_ratio`` are shown but cannot be changed (EOPNOTSUPP).
"""

from __future__ import annotations

import errno
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pyslub

SLAB_CACHE_DMA = 0x00004000
SLAB_RECLAIM_ACCOUNT = 0x00020000
SLAB_DESTROY_BY_RCU = 0x00080000
SLAB_TRACE = 0x00200000
SLAB_FAILSLAB = 0x02000000
SLAB_DEBUG_FLAGS = (pyslub.SLAB_CONSISTENCY_CHECKS | pyslub.SLAB_RED_ZONE | pyslub.SLAB_POISON
                    | pyslub.SLAB_STORE_USER)
MIN_PARTIAL, MAX_PARTIAL = 5, 10
ULONG_MAX = (1 << 64) - 1
UINT_MAX = (1 << 32) - 1
SNAPSHOT_FORMAT = "pyslub-sysfs-snapshot"

# slab_attrs[] order (mm/slub.c, v4.4), with CONFIG_SLUB_DEBUG, ZONE_DMA, NUMA, SLUB_STATS and
# FAILSLAB.  alloc_calls / free_calls (after validate) are in the directories of SLAB_STORE_USER
# caches only: the kernel lists them for every cache but fails their read with ENOSYS without
# U (read_dir leaves such files out), and since v5.17 they are debugfs files (alloc_traces),
# so the 6.18 / 7.0 directories do not have them.
GEOMETRY = ("slab_size", "object_size", "objs_per_slab", "order", "min_partial", "cpu_partial",
            "objects", "objects_partial", "partial", "cpu_slabs", "ctor", "aliases", "align",
            "hwcache_align", "reclaim_account", "destroy_by_rcu", "shrink", "reserved",
            "slabs_cpu_partial", "total_objects", "slabs", "sanity_checks", "trace",
            "red_zone", "poison", "store_user", "validate", "cache_dma",
            "remote_node_defrag_ratio")
STATS = pyslub.STAT_NAMES                    # v4.4's 26 counter files
ATTRIBUTES = GEOMETRY + STATS + ("failslab",)
# per generation: the counter files (the kernel's enum stat_item of that generation; pyslub's
# EXTRA_STAT_NAMES are no kernel files) and the directory's attributes
_GEN_STATS = {"4.4": STATS,
              "6.18": tuple(n for n in pyslub.STAT_NAMES_618
                            if n not in pyslub.EXTRA_STAT_NAMES),
              "7.0": tuple(n for n in pyslub.STAT_NAMES_70
                           if n not in pyslub.EXTRA_STAT_NAMES)}
_SHEAF_GEOMETRY = tuple(a for a in GEOMETRY[:GEOMETRY.index("order") + 1] + ("sheaf_capacity",)
                       + GEOMETRY[GEOMETRY.index("order") + 1:] + ("usersize",)
                       if a != "reserved")
GEN_ATTRIBUTES = {"4.4": ATTRIBUTES,
                  "6.18": _SHEAF_GEOMETRY + _GEN_STATS["6.18"] + ("failslab",),
                  "7.0": _SHEAF_GEOMETRY + _GEN_STATS["7.0"] + ("failslab",)}
ALL_STATS = frozenset(n for names in _GEN_STATS.values() for n in names)
CALLS = ("alloc_calls", "free_calls")
KSYM_SYMBOL_LEN = 239     # v4.4 x86-64: sizeof("%s+%#lx/%#lx [%s]") + 127 + 2 * 19 + 55 + 1

_FLAG_FILES = {"hwcache_align": pyslub.SLAB_HWCACHE_ALIGN, "reclaim_account":
               SLAB_RECLAIM_ACCOUNT, "destroy_by_rcu": SLAB_DESTROY_BY_RCU,
               "sanity_checks": pyslub.SLAB_CONSISTENCY_CHECKS, "trace": SLAB_TRACE,
               "red_zone": pyslub.SLAB_RED_ZONE, "poison": pyslub.SLAB_POISON,
               "store_user": pyslub.SLAB_STORE_USER, "cache_dma": SLAB_CACHE_DMA,
               "failslab": SLAB_FAILSLAB}
_WRITABLE = frozenset(("order", "min_partial", "cpu_partial", "reclaim_account", "shrink",
                       "sanity_checks", "trace", "red_zone", "poison", "store_user", "validate",
                       "remote_node_defrag_ratio", "failslab")) | ALL_STATS


# =============================================================================================
# Kernel parsing rules
# =============================================================================================

def kstrtoull(text: str, attr: str = "value") -> int:
    """lib/kstrtox.c kstrtoull(s, 10): ``[+]digits[\\n]``; -EINVAL / -ERANGE as OSError."""
    s = text[1:] if text.startswith("+") else text
    if s.endswith("\n"):
        s = s[:-1]
    if not s or not s.isascii() or not s.isdigit():
        raise OSError(errno.EINVAL, f"{attr}: {text!r} is not a decimal number (kstrtoul)")
    value = int(s)
    if value > ULONG_MAX:
        raise OSError(errno.ERANGE, f"{attr}: {text!r} does not fit in 64 bits (kstrtoul)")
    return value


def kstrtouint(text: str, attr: str = "value") -> int:
    """kstrtouint(s, 10): kstrtoull, then -ERANGE above UINT_MAX."""
    value = kstrtoull(text, attr)
    if value > UINT_MAX:
        raise OSError(errno.ERANGE, f"{attr}: {text!r} does not fit in 32 bits (kstrtouint)")
    return value


def show_stat(per_cpu: list[int]) -> str:
    """show_stat(): the sum, then `` C%d=%u`` for every cpu with a non-zero count, newline."""
    text = str(sum(per_cpu))
    for cpu, n in enumerate(per_cpu):
        if n:
            text += f" C{cpu}={n}"
    return text + "\n"


def show_slab_objects(total: int) -> str:
    """show_slab_objects() on a one-node NUMA kernel: ``total`` then `` N0=total`` if > 0."""
    return f"{total} N0={total}\n" if total else f"{total}\n"


def cpulist(cpus: set[int]) -> str:
    """The ``%*pbl`` (cpulist_scnprintf) form of a cpu set: ranges, e.g. ``0-2,5``."""
    out, run = [], []
    for cpu in sorted(cpus):
        if run and cpu == run[-1] + 1:
            run.append(cpu)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else f"{run[0]}")
        run = [cpu]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else f"{run[0]}")
    return ",".join(out)


def list_locations(cache: Any, which: str) -> str:
    """list_locations() (v4.4) behind ``alloc_calls`` / ``free_calls``: flush every cpu, then
    for every *allocated* object of the cache's slabs its ALLOC (or FREE) track, grouped by
    call site -- the kernel's ``track->addr``, pyslub's index into the process's table of
    Python call sites, in ascending order as the kernel keeps them; 0 (a track never written:
    an object never freed) is ``<not-available>``.  A line: count, site, age in ms (min/avg/max
    when they differ), pid (range), and with more than one cpu the cpus; ``No data`` when
    nothing is allocated; lines stop once the text passes one page less a symbol's length."""
    cache.flush_all()
    now = time.monotonic_ns() // 1_000_000
    locs: dict[int, dict[str, Any]] = {}
    for slab in cache.slabs():
        free = set(cache.free_objects(slab))
        for i in range(cache.slab_state(slab)["objects"]):
            obj = slab + i * cache.size
            if obj in free:
                continue
            t = cache.track(obj)[which]
            addr, when, pid, cpu = (0, 0, 0, 0) if t is None else (
                t["addr"], t["when"], t["pid"], t["cpu"])
            age = now - when
            loc = locs.get(addr)
            if loc is None:                      # add_location(): a new entry
                locs[addr] = {"count": 1, "site": t["site"] if t else None, "sum": age,
                              "min": age, "max": age, "min_pid": pid, "max_pid": pid,
                              "cpus": {cpu}}
                continue
            loc["count"] += 1
            if when:
                loc["sum"] += age
                loc["min"] = min(loc["min"], age)
                loc["max"] = max(loc["max"], age)
                loc["min_pid"] = min(loc["min_pid"], pid)
                loc["max_pid"] = max(loc["max_pid"], pid)
                loc["cpus"].add(cpu)
    text = ""
    for addr in sorted(locs):
        loc = locs[addr]
        if len(text) > 4096 - KSYM_SYMBOL_LEN - 100:
            break
        line = f"{loc['count']:7d} " + (loc["site"] if addr else "<not-available>")
        if loc["sum"] != loc["min"]:
            line += f" age={loc['min']}/{loc['sum'] // loc['count']}/{loc['max']}"
        else:
            line += f" age={loc['min']}"
        if loc["min_pid"] != loc["max_pid"]:
            line += f" pid={loc['min_pid']}-{loc['max_pid']}"
        else:
            line += f" pid={loc['min_pid']}"
        if cache.nr_cpus > 1 and loc["cpus"]:
            line += f" cpus={cpulist(loc['cpus'])}"
        text += line + "\n"
    return text or "No data\n"


# =============================================================================================
# One cache directory
# =============================================================================================

class CacheDir(Mapping[str, str]):
    """``/sys/kernel/slab/<name>/``: attribute name -> text, computed at each read."""

    def __init__(self, cache: Any, log: list[str]) -> None:
        self.cache = cache
        self.name: str = cache.name
        self._log = log
        self.slub: str = cache.slub
        self.attributes: tuple[str, ...] = GEN_ATTRIBUTES[self.slub]
        if self.slub == "4.4" and cache.info["flags"] & pyslub.SLAB_STORE_USER:
            i = self.attributes.index("validate") + 1
            self.attributes = self.attributes[:i] + CALLS + self.attributes[i:]
        self.stats: tuple[str, ...] = _GEN_STATS[self.slub]

    # -- reading -------------------------------------------------------------------------------

    def __getitem__(self, attr: str) -> str:
        if attr not in self.attributes:
            raise KeyError(attr)
        c = self.cache
        if attr in self.stats:
            return show_stat([c.stats(cpu=k)[attr] for k in range(c.info["nr_cpus"])])
        if attr in _FLAG_FILES:
            return f"{int(bool(c.info['flags'] & _FLAG_FILES[attr]))}\n"
        info = c.info
        simple: dict[str, Callable[[], Any]] = {
            "slab_size": lambda: info["slab_size"], "object_size": lambda: info["object_size"],
            "objs_per_slab": lambda: info["objs_per_slab"], "order": lambda: info["order"],
            "min_partial": lambda: info["min_partial"], "cpu_partial": lambda: info["cpu_partial"],
            "sheaf_capacity": lambda: info["sheaf_capacity"],
            "usersize": lambda: info["object_size"] if self.name.startswith("kmalloc-") else 0,
            "aliases": lambda: 0, "align": lambda: info["align"], "reserved": lambda: 0,
            "remote_node_defrag_ratio": lambda: 100,
        }
        if attr in simple:
            return f"{simple[attr]()}\n"
        if attr in ("ctor", "shrink", "validate"):
            return ""                        # no ctor; shrink_show / validate_show print nothing
        if attr in CALLS:
            return list_locations(c, "alloc" if attr == "alloc_calls" else "free")
        if attr == "slabs_cpu_partial":
            return self._slabs_cpu_partial()
        occ = c.occupancy()
        key = {"objects": "objects", "objects_partial": "objects_partial",
               "partial": "partial", "cpu_slabs": "cpu_slabs", "slabs": "slabs",
               "total_objects": "total_objects"}[attr]
        return show_slab_objects(occ[key])

    def _slabs_cpu_partial(self) -> str:
        c = self.cache
        per_cpu = []
        for k in range(c.info["nr_cpus"]):
            slabs = c.cpu_state(k)["partial"]
            free = 0
            for slab in slabs:
                st = c.slab_state(slab)
                free += st["objects"] - st["inuse"]
            per_cpu.append((free, len(slabs)))
        text = f"{sum(o for o, _ in per_cpu)}({sum(p for _, p in per_cpu)})"
        for k, (objs, pages) in enumerate(per_cpu):
            if pages:
                text += f" C{k}={objs}({pages})"
        return text + "\n"

    def __iter__(self) -> Iterator[str]:
        return iter(self.attributes)

    def __len__(self) -> int:
        return len(self.attributes)

    # -- writing -------------------------------------------------------------------------------

    def write(self, attr: str, text: str) -> int:
        """Write ``text`` to the file ``attr`` as ``echo`` would; returns ``len(text)`` like
        the kernel's store, or raises OSError with the kernel's errno."""
        where = f"{self.name}/{attr}"
        if attr not in self.attributes:
            raise OSError(errno.ENOENT, f"{where}: no such attribute (SLUB {self.slub})")
        if attr not in _WRITABLE:
            raise OSError(errno.EACCES, f"{where}: read-only file")
        if not isinstance(text, str):
            raise TypeError(f"{where}: write a str, got {type(text).__name__}")
        c = self.cache
        first = text[:1]
        if attr in self.stats:
            if first != "0":
                raise OSError(errno.EINVAL, f"{where}: only '0' clears a counter, got {text!r}")
            c.reset_stats(attr)              # clear_stat(): this counter, on every cpu
        elif attr == "min_partial":
            value = kstrtoull(text, where)
            c.min_partial = min(max(value, MIN_PARTIAL), MAX_PARTIAL)    # set_min_partial()
        elif attr == "cpu_partial":
            value = kstrtouint(text, where)
            if self.slub == "7.0":           # 7.0 cpu_partial_store(): inert, 0 accepted
                if value:
                    raise OSError(errno.EINVAL, f"{where}: SLUB 7.0 has no cpu partial lists")
                return len(text)
            if value and c.info["flags"] & SLAB_DEBUG_FLAGS:
                raise OSError(errno.EINVAL, f"{where}: a debug cache has no cpu partial lists")
            c.cpu_partial = value            # the setter flushes every cpu (flush_all)
        elif attr == "shrink":
            if first != "1":
                raise OSError(errno.EINVAL, f"{where}: only '1' shrinks, got {text!r}")
            c.shrink()
        elif attr == "validate":
            if first != "1":
                raise OSError(errno.EINVAL, f"{where}: only '1' validates, got {text!r}")
            self._log.extend(f"{self.name}: {p}" for p in c.validate())
        elif attr in ("order", "remote_node_defrag_ratio"):
            kstrtoull(text, where)           # the kernel's parse errors come first
            raise OSError(errno.EOPNOTSUPP, f"{where}: pyslub fixes this at cache creation")
        else:                                # debug toggles, reclaim_account, failslab
            if attr in ("red_zone", "poison", "store_user") and c.occupancy()["total_objects"]:
                raise OSError(errno.EBUSY, f"{where}: the cache has objects (any_slab_objects)")
            raise OSError(errno.EOPNOTSUPP, f"{where}: pyslub fixes the flags at creation")
        return len(text)

    def __repr__(self) -> str:
        return f"<sysfs /sys/kernel/slab/{self.name}/>"


# =============================================================================================
# The tree
# =============================================================================================

class SysfsTree(Mapping[str, CacheDir]):
    """``/sys/kernel/slab`` of a Memory: cache name -> :class:`CacheDir`.

    ``log`` collects what the kernel would print to its log (``validate`` reports).
    """

    def __init__(self, mem: Any) -> None:
        self.mem = mem
        self.log: list[str] = []

    def __getitem__(self, name: str) -> CacheDir:
        return CacheDir(self.mem.caches[name], self.log)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self.mem.caches))

    def __len__(self) -> int:
        return len(self.mem.caches)

    def write(self, cache: str, attr: str, text: str) -> int:
        """``echo text > /sys/kernel/slab/<cache>/<attr>``."""
        if cache not in self.mem.caches:
            raise OSError(errno.ENOENT, f"{cache}: no such cache")
        return self[cache].write(attr, text)

    def texts(self) -> dict[str, dict[str, str]]:
        """Every file's text now: ``{cache: {attribute: text}}``."""
        return {name: dict(d) for name, d in self.items()}


def tree(mem: Any) -> SysfsTree:
    """``mem.sysfs()``: the read-only sysfs mapping of ``mem`` (writes via ``.write``)."""
    return SysfsTree(mem)


def export(mem: Any, directory: str | os.PathLike) -> str:
    """``mem.export_sysfs(dir)``: write ``dir/<cache>/<attribute>`` files; returns ``dir``."""
    root = os.fspath(directory)
    for name, attrs in tree(mem).texts().items():
        d = os.path.join(root, name)
        os.makedirs(d, exist_ok=True)
        for attr, text in attrs.items():
            with open(os.path.join(d, attr), "w", encoding="ascii") as f:
                f.write(text)
    return root


def read_dir(directory: str | os.PathLike) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """Read a sysfs slab tree (pyslub's export or a real ``/sys/kernel/slab``).

    Returns ``(caches, aliases)``: ``{dir name: {file: text}}`` for the directories and
    ``{alias: target dir name}`` for the symlinks (merged caches).  Unreadable files (mode
    0400 as non-root, alloc_calls without SLAB_STORE_USER) are left out.
    """
    root = os.fspath(directory)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"{root}: not a directory")
    caches: dict[str, dict[str, str]] = {}
    aliases: dict[str, str] = {}
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if entry.name.startswith("."):
            continue
        if entry.is_symlink():
            aliases[entry.name] = os.path.basename(os.readlink(entry.path).rstrip("/"))
        elif entry.is_dir():
            files = {}
            for f in os.scandir(entry.path):
                if not f.is_file(follow_symlinks=False):
                    continue
                try:
                    with open(f.path, encoding="ascii", errors="replace") as fh:
                        files[f.name] = fh.read(4096)
                except OSError:
                    continue
            caches[entry.name] = files
    return caches, aliases


def snapshot(mem: Any, path: str | os.PathLike) -> str:
    """``mem.snapshot(path)``: every sysfs text of ``mem`` in one JSON file."""
    doc = {"format": SNAPSHOT_FORMAT, "version": 1, "page_size": 4096, "nr_cpus": mem.nr_cpus,
           "pyslub": pyslub.__version__, "caches": tree(mem).texts(), "aliases": {}}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1)
    return os.fspath(path)


def load_snapshot(path: str | os.PathLike) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """Read a :func:`snapshot` file: ``(caches, aliases)`` as :func:`read_dir` returns them."""
    with open(path, encoding="utf-8") as f:
        try:
            doc = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not a pyslub snapshot (bad JSON: {e})") from None
    if not isinstance(doc, dict) or doc.get("format") != SNAPSHOT_FORMAT:
        raise ValueError(f"{path}: not a pyslub snapshot (no format {SNAPSHOT_FORMAT!r})")
    caches = doc.get("caches")
    if not isinstance(caches, dict) or not all(
            isinstance(v, dict) and all(isinstance(t, str) for t in v.values())
            for v in caches.values()):
        raise ValueError(f"{path}: 'caches' must map cache -> attribute -> text")
    return caches, dict(doc.get("aliases", {}))


__all__ = ["ATTRIBUTES", "CALLS", "CacheDir", "GEN_ATTRIBUTES", "STATS", "SysfsTree", "cpulist",
           "export", "kstrtoull", "kstrtouint", "list_locations", "load_snapshot", "read_dir",
           "show_slab_objects", "show_stat", "snapshot", "tree"]
