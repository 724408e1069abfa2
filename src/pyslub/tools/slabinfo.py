"""``pyslub slabinfo``: tools/mm/slabinfo.c for pyslub, and ``/proc/slabinfo``.

Like the kernel's tool it reads sysfs attribute texts -- of a live ``Memory`` (through
:mod:`pyslub.tools.sysfs`), of a directory (an exported tree, or a real /sys/kernel/slab), or of
a snapshot file -- into one :class:`SlabRecord` per cache, and prints them with the tool's
printf formats: the default listing (``-l``), ``-D`` activity, ``-T`` totals, ``-r`` report
with the SLUB_STATS breakdown, sorting by ``-S`` size / ``-L`` loss / ``-P`` partial /
``-A`` activity (``-i`` inverts), ``-N`` lines, ``-z`` / ``-e`` empty caches, ``-v`` validate,
``-s`` shrink; ``--proc`` prints ``/proc/slabinfo`` ("slabinfo - version: 2.1").

Where the C tool has quirks, the port keeps the output and says so: a single matching cache
prints its report; ``-r`` prints "has no kmem_cache operations" and "No Data" for the files
modern kernels lack; ``-i`` with a numeric sort reverses the order (the C comparator returns
0 or -1 there and so never reorders).
"""

# The C tool's printf formats are kept verbatim as %-formats, so they can be diffed:
# ruff: noqa: UP031

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyslub.tools import sysfs

PAGE_SIZE = 4096
_STAT_FIELDS = ("alloc_fastpath", "alloc_slowpath", "free_fastpath", "free_slowpath",
                "free_frozen", "free_add_partial", "free_remove_partial", "alloc_from_partial",
                "alloc_slab", "free_slab", "alloc_refill", "cpuslab_flush", "deactivate_full",
                "deactivate_empty", "deactivate_to_head", "deactivate_to_tail",
                "deactivate_remote_frees", "order_fallback", "cmpxchg_double_cpu_fail",
                "cmpxchg_double_fail", "alloc_node_mismatch", "deactivate_bypass",
                "cpu_partial_alloc", "cpu_partial_free")
_INT_FIELDS = ("aliases", "align", "cache_dma", "cpu_slabs", "destroy_by_rcu", "hwcache_align",
               "object_size", "objects", "objects_partial", "objs_per_slab", "order",
               "poison", "reclaim_account", "red_zone", "sanity_checks", "slab_size",
               "store_user", "trace", "total_objects")


def _atol(text: str) -> int:
    """get_obj(): atol() of the file's first line (0 for an empty or missing file)."""
    m = re.match(r"\s*([+-]?\d+)", text)
    return int(m.group(1)) if m else 0


def _numa(text: str) -> dict[int, int]:
    """decode_numa_list() of what follows the number: "N0=12 N1=3"."""
    return {int(n): int(v) for n, v in re.findall(r"N(\d+)=(\d+)", text)}


@dataclass
class SlabRecord:
    """One cache as tools/mm/slabinfo.c's ``struct slabinfo`` holds it."""

    name: str
    aliases: int = 0
    align: int = 0
    cache_dma: int = 0
    cpu_slabs: int = 0
    destroy_by_rcu: int = 0
    hwcache_align: int = 0
    object_size: int = 0
    objs_per_slab: int = 0
    sanity_checks: int = 0
    slab_size: int = 0
    store_user: int = 0
    trace: int = 0
    order: int = 0
    poison: int = 0
    reclaim_account: int = 0
    red_zone: int = 0
    partial: int = 0
    objects: int = 0
    slabs: int = 0
    objects_partial: int = 0
    total_objects: int = 0
    stats: dict[str, int] = field(default_factory=dict)
    numa: dict[int, int] = field(default_factory=dict)
    numa_partial: dict[int, int] = field(default_factory=dict)
    refs: int = 0
    page_size: int = PAGE_SIZE

    @classmethod
    def from_attrs(cls, name: str, attrs: Mapping[str, str],
                   page_size: int = PAGE_SIZE) -> SlabRecord:
        """Parse sysfs texts as read_slab_dir() does (missing files read as 0)."""
        r = cls(name=name, page_size=page_size)
        for f in _INT_FIELDS:
            setattr(r, f, _atol(attrs.get(f, "")))
        r.partial = _atol(attrs.get("partial", ""))
        r.numa_partial = _numa(attrs.get("partial", ""))
        r.slabs = _atol(attrs.get("slabs", ""))
        r.numa = _numa(attrs.get("slabs", ""))
        r.stats = {s: _atol(attrs.get(s, "")) for s in _STAT_FIELDS}
        return r

    # the tool's derived quantities
    @property
    def slab_bytes(self) -> int:
        """slab_size(): bytes of all slabs."""
        return self.slabs * (self.page_size << self.order)

    @property
    def waste(self) -> int:
        """slab_waste(): slab bytes not holding object_size bytes of a live object."""
        return self.slab_bytes - self.objects * self.object_size

    @property
    def activity(self) -> int:
        s = self.stats
        return (s.get("alloc_fastpath", 0) + s.get("free_fastpath", 0)
                + s.get("alloc_slowpath", 0) + s.get("free_slowpath", 0))

    @property
    def flags(self) -> str:
        return "".join(ch for ch, on in (
            ("*", self.aliases), ("d", self.cache_dma), ("A", self.hwcache_align),
            ("P", self.poison), ("a", self.reclaim_account), ("Z", self.red_zone),
            ("F", self.sanity_checks), ("U", self.store_user), ("T", self.trace)) if on)


# =============================================================================================
# Sources
# =============================================================================================

def records(caches: Mapping[str, Mapping[str, str]], aliases: Mapping[str, str] | None = None,
            page_size: int = PAGE_SIZE, first_alias: bool = False) -> list[SlabRecord]:
    """SlabRecords of sysfs texts; merged caches (``:0000064`` directories) take the name of
    an alias as rename_slabs() does (the longest, or the first kmalloc-* one), unless several
    aliases refer to them."""
    out = {name: SlabRecord.from_attrs(name, attrs, page_size)
           for name, attrs in caches.items()}
    aliases = dict(aliases or {})
    for target in aliases.values():
        if target not in out:
            raise ValueError(f"Unresolved alias {target}")
        out[target].refs += 1
    result = []
    for name, r in out.items():
        if name.startswith(":") and (r.refs <= 1 or first_alias):
            best = None
            for alias in sorted(aliases, key=str.lower):
                if aliases[alias] == name and (best is None or len(best) < len(alias)):
                    best = alias
                    if alias.startswith("kmall"):
                        break
            if best is None:
                continue                     # no alias: the tool prints it as "*", skipped
            r.name = best
        result.append(r)
    return result


def rows(mem: Any) -> list[SlabRecord]:
    """``mem.slabinfo()``: one SlabRecord per cache of a live Memory."""
    return records(sysfs.tree(mem).texts())


def load(source: str | os.PathLike) -> list[SlabRecord]:
    """SlabRecords of a sysfs directory or a snapshot file."""
    path = os.fspath(source)
    if os.path.isdir(path):
        caches, aliases = sysfs.read_dir(path)
    elif os.path.isfile(path):
        caches, aliases = sysfs.load_snapshot(path)
    else:
        raise FileNotFoundError(f"{path}: no such snapshot file or sysfs directory")
    return records(caches, aliases)


# =============================================================================================
# Formats (printf formats of tools/mm/slabinfo.c)
# =============================================================================================

def store_size(value: int, show_bytes: bool = False) -> str:
    """store_size(): 1234567 -> "1.2M" (decimal units, one truncated decimal), or bytes."""
    divisor, trailer = 1, ""
    if not show_bytes:
        if value > 1_000_000_000:
            divisor, trailer = 100_000_000, "G"
        elif value > 1_000_000:
            divisor, trailer = 100_000, "M"
        elif value > 1000:
            divisor, trailer = 100, "K"
    text = str(value // divisor)
    if divisor != 1:
        text = text[:-1] + "." + text[-1]
    return text + trailer


def header(activity: bool = False, loss: bool = False) -> str:
    if activity:
        return "Name                   Objects      Alloc       Free   %Fast Fallb O CmpX   UL"
    return ("Name                   Objects Objsize           %s Slabs/Part/Cpu  O/S O %%Fr %%Ef "
            "Flg" % (" Loss" if loss else "Space"))


def line(r: SlabRecord, activity: bool = False, loss: bool = False,
         show_bytes: bool = False) -> str:
    """slabcache(): one listing line."""
    if activity:
        s = r.stats
        ta = s["alloc_fastpath"] + s["alloc_slowpath"]
        tf = s["free_fastpath"] + s["free_slowpath"]
        return "%-21s %8d %10d %10d %3d %3d %5d %1d %4d %4d" % (
            r.name, r.objects, ta, tf, s["alloc_fastpath"] * 100 // ta if ta else 0,
            s["free_fastpath"] * 100 // tf if tf else 0, s["order_fallback"], r.order,
            s["cmpxchg_double_fail"], s["cmpxchg_double_cpu_fail"])
    size = store_size(r.waste if loss else r.slab_bytes, show_bytes)
    dist = f"{r.slabs - r.cpu_slabs}/{r.partial}/{r.cpu_slabs}"
    return "%-21s %8d %7d %15s %14s %4d %1d %3d %3d %s" % (
        r.name, r.objects, r.object_size, size, dist, r.objs_per_slab, r.order,
        r.partial * 100 // r.slabs if r.slabs else 100,
        r.objects * r.object_size * 100 // r.slab_bytes if r.slabs else 100, r.flags)


def sort_records(recs: Iterable[SlabRecord], by: str = "name",
                 inverted: bool = False) -> list[SlabRecord]:
    """sort_slabs(): by name (case-insensitive), or descending size / activity / loss /
    partial with the name breaking ties."""
    keys = {"name": lambda r: r.name.lower(),
            "size": lambda r: (-r.slab_bytes, r.name.lower()),
            "activity": lambda r: (-r.activity, r.name.lower()),
            "loss": lambda r: (-r.waste, r.name.lower()),
            "partial": lambda r: (-r.partial, r.name.lower())}
    if by not in keys:
        raise ValueError(f"unknown sort {by!r}; choose one of {tuple(keys)}")
    return sorted(recs, key=keys[by], reverse=inverted)


def format_listing(recs: Iterable[SlabRecord], sort: str = "name", inverted: bool = False,
                   activity: bool = False, lines: int = -1, zero: bool = False,
                   empty_only: bool = False, unreclaim_only: bool = False,
                   show_bytes: bool = False) -> list[str]:
    """The default output: header and one line per cache (output_slabs + slabcache)."""
    out: list[str] = []
    shown = 0
    for r in sort_records(recs, sort, inverted):
        if lines >= 0 and shown >= lines:
            break
        shown += 1
        if unreclaim_only and r.reclaim_account:
            continue
        if not zero and not empty_only and not r.slabs:
            continue
        if empty_only and r.slabs:
            continue
        if not out:
            out.append(header(activity, sort == "loss"))
        out.append(line(r, activity, sort == "loss", show_bytes))
    return out


def _onoff(x: int) -> str:
    return "On " if x else "Off"


def format_stats(r: SlabRecord) -> list[str]:
    """slab_stats(): the "Slab Perf Counter" and deactivation tables (SLUB_STATS)."""
    s = r.stats
    if not s.get("alloc_slab"):
        return []
    ta = s["alloc_fastpath"] + s["alloc_slowpath"]
    tf = s["free_fastpath"] + s["free_slowpath"]
    if not ta:
        return []

    def pct(n: int, total: int) -> int:
        return n * 100 // total if total else 0

    row = "%-20s %8d %8d %3d %3d"
    out = ["", "Slab Perf Counter       Alloc     Free %Al %Fr",
           "--------------------------------------------------",
           row % ("Fastpath", s["alloc_fastpath"], s["free_fastpath"],
                  pct(s["alloc_fastpath"], ta), pct(s["free_fastpath"], tf)),
           row % ("Slowpath", ta - s["alloc_fastpath"], s["free_slowpath"],
                  pct(ta - s["alloc_fastpath"], ta), pct(s["free_slowpath"], tf)),
           row % ("Page Alloc", s["alloc_slab"], s["free_slab"], pct(s["alloc_slab"], ta),
                  pct(s["free_slab"], tf)),
           row % ("Add partial", s["deactivate_to_head"] + s["deactivate_to_tail"],
                  s["free_add_partial"],
                  pct(s["deactivate_to_head"] + s["deactivate_to_tail"], ta),
                  pct(s["free_add_partial"], tf)),
           row % ("Remove partial", s["alloc_from_partial"], s["free_remove_partial"],
                  pct(s["alloc_from_partial"], ta), pct(s["free_remove_partial"], tf)),
           row % ("Cpu partial list", s["cpu_partial_alloc"], s["cpu_partial_free"],
                  pct(s["cpu_partial_alloc"], ta), pct(s["cpu_partial_free"], tf)),
           row % ("RemoteObj/SlabFrozen", s["deactivate_remote_frees"], s["free_frozen"],
                  pct(s["deactivate_remote_frees"], ta), pct(s["free_frozen"], tf)),
           "%-20s %8d %8d" % ("Total", ta, tf), ""]
    if s["cpuslab_flush"]:
        out.append("Flushes %8d" % s["cpuslab_flush"])
    total = (s["deactivate_full"] + s["deactivate_empty"] + s["deactivate_to_head"]
             + s["deactivate_to_tail"] + s["deactivate_bypass"])
    if total:
        out += ["", "Slab Deactivation             Occurrences %",
                "-------------------------------------------------"]
        for label, key in (("Slab full", "deactivate_full"), ("Slab empty", "deactivate_empty"),
                           ("Moved to head of partial list", "deactivate_to_head"),
                           ("Moved to tail of partial list", "deactivate_to_tail"),
                           ("Deactivation bypass", "deactivate_bypass"),
                           ("Refilled from foreign frees", "alloc_refill"),
                           ("Node mismatch", "alloc_node_mismatch")):
            out.append("%-29s %7d  %3d%%" % (label, s[key], s[key] * 100 // total))
    if s["cmpxchg_double_fail"] or s["cmpxchg_double_cpu_fail"]:
        out += ["", "Cmpxchg_double Looping", "------------------------",
                "Locked Cmpxchg Double redos   %d" % s["cmpxchg_double_fail"],
                "Unlocked Cmpxchg Double redos %d" % s["cmpxchg_double_cpu_fail"]]
    return out


def format_report(r: SlabRecord) -> list[str]:
    """report(): the detailed report of one cache (``-r``)."""
    ps = r.page_size << r.order
    out = ["", "Slabcache: %-15s  Aliases: %2d Order : %2d Objects: %d" % (
        r.name, r.aliases, r.order, r.objects)]
    for on, text in ((r.hwcache_align, "** Hardware cacheline aligned"),
                     (r.cache_dma, "** Memory is allocated in a special DMA zone"),
                     (r.destroy_by_rcu, "** Slabs are destroyed via RCU"),
                     (r.reclaim_account, "** Reclaim accounting active")):
        if on:
            out.append(text)
    out += ["", "Sizes (bytes)     Slabs              Debug                Memory",
            "------------------------------------------------------------------------",
            "Object : %7d  Total  : %7d   Sanity Checks : %s  Total: %7d" % (
                r.object_size, r.slabs, _onoff(r.sanity_checks), r.slabs * ps),
            "SlabObj: %7d  Full   : %7d   Redzoning     : %s  Used : %7d" % (
                r.slab_size, r.slabs - r.partial - r.cpu_slabs, _onoff(r.red_zone),
                r.objects * r.object_size),
            "SlabSiz: %7d  Partial: %7d   Poisoning     : %s  Loss : %7d" % (
                ps, r.partial, _onoff(r.poison), r.slabs * ps - r.objects * r.object_size),
            "Loss   : %7d  CpuSlab: %7d   Tracking      : %s  Lalig: %7d" % (
                r.slab_size - r.object_size, r.cpu_slabs, _onoff(r.store_user),
                (r.slab_size - r.object_size) * r.objects),
            "Align  : %7d  Objects: %7d   Tracing       : %s  Lpadd: %7d" % (
                r.align, r.objs_per_slab, _onoff(r.trace),
                (ps - r.objs_per_slab * r.slab_size) * r.slabs)]
    # ops(), show_tracking(), slab_numa(s, 1): files pyslub (and modern kernels) do not have
    out += ["", f"{r.name} has no kmem_cache operations",
            "", f"{r.name}: Kernel object allocation",
            "-----------------------------------------------------------------------",
            "No Data", "", f"{r.name}: Kernel object freeing",
            "------------------------------------------------------------------------",
            "No Data"]
    if max(r.numa, default=0) == 0:
        out += ["", f"{r.name}: No NUMA information available."]
    out += format_stats(r)
    return out


def format_totals(recs: Sequence[SlabRecord], show_bytes: bool = False,
                  nr_aliases: int = 0, alias_targets: int = 0) -> list[str]:
    """totals(): the ``-T`` summary over caches with objects."""
    used = [r for r in recs if r.slabs and r.objects]
    total_objects = sum(r.objects for r in used)
    if not total_objects:
        return ["No objects"]

    def ss(v: int) -> str:
        return store_size(v, show_bytes)

    def stat(values: list[int]) -> tuple[int, int, int, int]:
        return sum(values) // len(used), min(values), max(values), sum(values)

    sizes = [r.slab_bytes for r in used]
    used_b = [r.objects * r.object_size for r in used]
    waste = [s - u for s, u in zip(sizes, used_b, strict=True)]
    objwaste = [r.slab_size - r.object_size for r in used]
    ppart = [min(r.partial * 100 // r.slabs, 100) for r in used]
    ppartobj = [min(r.objects_partial * 100 // r.objects, 100) for r in used]
    partobj = [r.objects_partial for r in used]
    total_used, total_waste = sum(used_b), sum(waste)
    total_partobj = sum(partobj)
    total_slabs = sum(r.slabs for r in used)
    total_partial = sum(r.partial for r in used)
    total_objwaste = sum(r.objects * w for r, w in zip(used, objwaste, strict=True))
    total_objsize = sum(r.objects * r.slab_size for r in used)
    out = ["Slabcache Totals", "----------------",
           "Slabcaches : %15d   Aliases  : %11d->%-3d  Active:    %3d" % (
               len(recs), nr_aliases, alias_targets, len(used)),
           "Memory used: %15s   # Loss   : %15s   MRatio:%6s%%" % (
               ss(sum(sizes)), ss(total_waste), ss(total_waste * 100 // total_used)),
           "# Objects  : %15s   # PartObj: %15s   ORatio:%6s%%" % (
               ss(total_objects), ss(total_partobj), ss(total_partobj * 100 // total_objects)),
           "", "Per Cache         Average              Min              Max            Total",
           "---------------------------------------------------------------------------"]

    def row4(label: str, vals: tuple[int, int, int, int], fmt: str = "%-9s %15s  %15s  "
             "%15s  %15s") -> str:
        return fmt % (label, *(ss(v) for v in vals))

    out.append(row4("#Objects", stat([r.objects for r in used])))
    out.append(row4("#Slabs", stat([r.slabs for r in used])))
    out.append(row4("#PartSlab", stat([r.partial for r in used])))
    a, lo, hi, _ = stat(ppart)
    out.append("%%PartSlab%15s%% %15s%% %15s%% %15s%%" % (
        ss(a), ss(lo), ss(hi), ss(total_partial * 100 // total_slabs)))
    a, lo, hi, _ = stat(partobj)
    out.append("PartObjs  %15s  %15s  %15s  %15s" % (ss(total_partobj * 100 // total_objects),
                                                     ss(lo), ss(hi), ss(total_partobj)))
    a, lo, hi, _ = stat(ppartobj)
    out.append("%% PartObj%15s%% %15s%% %15s%% %15s%%" % (
        ss(a), ss(lo), ss(hi), ss(total_partobj * 100 // total_objects)))
    out.append(row4("Memory", stat(sizes)))
    out.append(row4("Used", stat(used_b)))
    out.append(row4("Loss", stat(waste)))
    out += ["", "Per Object        Average              Min              Max",
            "-----------------------------------------------------------"]
    out.append("Memory    %15s  %15s  %15s" % (ss(total_objsize // total_objects),
                                              ss(min(r.slab_size for r in used)),
                                              ss(max(r.slab_size for r in used))))
    out.append("User      %15s  %15s  %15s" % (ss(total_used // total_objects),
                                              ss(min(r.object_size for r in used)),
                                              ss(max(r.object_size for r in used))))
    out.append("Loss      %15s  %15s  %15s" % (ss(total_objwaste // total_objects),
                                              ss(min(objwaste)), ss(max(objwaste))))
    return out


def format_proc(recs: Iterable[SlabRecord], newest_first: bool = True) -> list[str]:
    """``/proc/slabinfo`` (mm/slab_common.c cache_show() with SLUB's get_slabinfo()):
    active_objs = objects (free objects of the node partial slabs excluded), objsize = the
    slot size, tunables and shared fields 0, active_slabs = num_slabs."""
    recs = list(recs)
    if newest_first:
        recs = recs[::-1]                    # list_add() puts new caches at the head
    out = ["slabinfo - version: 2.1",
           "# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab>"
           " : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> "
           "<num_slabs> <sharedavail>"]
    for r in recs:
        out.append("%-17s %6d %6d %6d %4d %4d : tunables %4d %4d %4d : slabdata %6d %6d %6d" % (
            r.name, r.objects, r.total_objects, r.slab_size, r.objs_per_slab, 1 << r.order,
            0, 0, 0, r.slabs, r.slabs, 0))
    return out


# =============================================================================================
# Command line
# =============================================================================================

def demo_memory() -> Any:
    """The Memory ``pyslub slabinfo`` shows when given no source: the README's "packets"
    cache and a fixed pseudo-random kmalloc mix, some of it freed again (deterministic)."""
    import numpy as np

    import pyslub
    mem = pyslub.Memory(size=256 << 20, nr_cpus=8)
    packets = mem.create_cache("packets", 232, flags=pyslub.SLAB_HWCACHE_ALIGN)
    rng = np.random.default_rng(2015)
    p = np.zeros(400, dtype=np.uint64)
    packets.alloc_bulk(p)
    packets.free_bulk(p[::3].copy())
    live = []
    for i, size in enumerate(rng.integers(1, 2048, 6000)):
        with mem.on_cpu(i % 4):
            live.append(mem.kmalloc(int(size)))
    for j in rng.permutation(len(live))[:4000]:
        mem.kfree(live[j])
    return mem


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``slabinfo`` subcommand to ``subparsers``."""
    p = subparsers.add_parser(
        "slabinfo", help="tools/mm/slabinfo for pyslub (and /proc/slabinfo)",
        description="Report on slab caches like the kernel's tools/mm/slabinfo, from a "
        "pyslub sysfs export or snapshot, a real /sys/kernel/slab, a trace replay, or a demo "
        "Memory.")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--sysfs", metavar="DIR", help="read a sysfs slab tree (pyslub export, "
                     "or /sys/kernel/slab)")
    src.add_argument("--snapshot", metavar="FILE", help="read a pyslub snapshot (JSON)")
    src.add_argument("--replay", metavar="TRACE", help="replay a trace, then report its caches")
    p.add_argument("--proc", action="store_true", help="print /proc/slabinfo instead")
    p.add_argument("-A", "--activity", action="store_true", help="most active slabs first")
    p.add_argument("-B", "--Bytes", action="store_true", help="show sizes in bytes")
    p.add_argument("-D", "--display-active", action="store_true",
                   help="switch line format to activity")
    p.add_argument("-e", "--empty", action="store_true", help="show empty slabs only")
    p.add_argument("-i", "--inverted", action="store_true", help="inverted list")
    p.add_argument("-l", "--slabs", action="store_true", help="show slabs (the default)")
    p.add_argument("-L", "--Loss", action="store_true", help="sort by loss")
    p.add_argument("-N", "--lines", type=int, default=-1, metavar="K",
                   help="show the first K slabs")
    p.add_argument("-P", "--partial", action="store_true", help="sort by partial slabs")
    p.add_argument("-r", "--report", action="store_true", help="detailed report per cache")
    p.add_argument("-s", "--shrink", action="store_true", help="shrink slabs (live sources)")
    p.add_argument("-S", "--Size", action="store_true", help="sort by size")
    p.add_argument("-T", "--Totals", action="store_true", help="show summary information")
    p.add_argument("-U", "--Unreclaim", action="store_true", help="unreclaimable slabs only")
    p.add_argument("-v", "--validate", action="store_true",
                   help="validate slabs (live sources) and print what validate reports")
    p.add_argument("-z", "--zero", action="store_true", help="include empty slabs")
    p.add_argument("pattern", nargs="?", default=None, help="regular expression of names")
    p.set_defaults(func=main)
    return p


def _select(recs: list[SlabRecord], pattern: str | None) -> list[SlabRecord]:
    if pattern is None:
        return recs
    try:
        rx = re.compile(pattern, re.IGNORECASE)
    except re.error as e:
        raise ValueError(f"Invalid pattern '{pattern}': {e}") from None
    return [r for r in recs if rx.search(r.name)]


def main(args: argparse.Namespace) -> int:
    """Run ``pyslub slabinfo`` with parsed ``args``; prints to stdout, returns the status."""
    mem = None
    if args.sysfs:
        recs = load(args.sysfs)
    elif args.snapshot:
        recs = load(args.snapshot)
    else:
        if args.replay:
            from pyslub.tools.replay import Replayer
            from pyslub.tools.trace_formats import TraceFile, detect_format, reader_for
            rp = Replayer()
            with TraceFile(args.replay) as f:
                rp.run(reader_for(detect_format(f.head()), f))
            mem = rp.mem
        else:
            mem = demo_memory()
        recs = rows(mem)
    try:
        recs = _select(recs, args.pattern)
    except ValueError as e:
        print(f"pyslub slabinfo: {e}", file=sys.stderr)
        return 2
    out: list[str] = []
    if (args.validate or args.shrink) and mem is None:
        print("pyslub slabinfo: -v / -s need a live Memory (--replay or the demo), not files",
              file=sys.stderr)
        return 2
    if args.validate or args.shrink:
        tree = sysfs.tree(mem)
        for r in recs:
            tree.write(r.name, "validate" if args.validate else "shrink", "1\n")
        out += tree.log
        if args.validate:
            out.append(f"validated {len(recs)} caches: {len(tree.log)} problems")
        if args.shrink:
            recs = _select(rows(mem), args.pattern)
    if args.proc:
        out += format_proc(recs)
    elif args.Totals:
        out += format_totals(recs, args.Bytes)
    elif args.report:
        for r in sort_records(recs):
            out += format_report(r)
    elif not (args.validate or args.shrink) or args.slabs:
        sort = ("size" if args.Size else "loss" if args.Loss else "partial" if args.partial
                else "activity" if args.activity else "name")
        if len(recs) == 1 and not args.lines >= 0:
            out += format_report(recs[0])        # actual_slabs == 1: the tool reports
        else:
            out += format_listing(recs, sort, args.inverted, args.display_active, args.lines,
                                  args.zero, args.empty, args.Unreclaim, args.Bytes)
    for text in out:
        print(text)
    return 0


def _entry(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pyslub")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv) if argv is not None else None)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(_entry(["slabinfo", *sys.argv[1:]]))


__all__ = ["SlabRecord", "demo_memory", "format_listing", "format_proc", "format_report",
           "format_stats", "format_totals", "line", "load", "main", "records", "register",
           "rows", "sort_records", "store_size"]
