"""Pictures of slabs (matplotlib; the file name's extension picks PNG or SVG).

* :func:`plot_slabs` -- ``mem.plot_slabs(path)``: the slab map of one cache.  One cell per
  slab, its objects as a grid of squares (filled = in use, white = free), the bar under it
  the fill inuse/objects, the border where the slab lives: the cpu slab of cpu k, a cpu
  partial slab of cpu k, the node partial list, or full.
* :func:`plot_detached_lists` -- ``record_frees`` as a picture: one bulk array coloured by
  slab, and below it the detached lists every free_bulk strategy builds from that same array.
* :func:`plot_replay` -- a replay over time: live objects, slabs and partial slabs,
  fragmentation (1 - objects/total_objects) and live bytes.

Figures are built with ``matplotlib.figure.Figure`` (no pyplot, no display needed); every
function returns the Figure after saving it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

import pyslub

PLACE_COLORS = {"cpu": "#d62728", "cpu partial": "#ff7f0e", "node partial": "#1f77b4",
                "full": "#7f7f7f"}
USED_COLOR = "#2ca02c"
FREE_COLOR = "#ffffff"


def _save(fig: Figure, path: str | os.PathLike) -> Figure:
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".png", ".svg"):
        raise ValueError(f"{path}: the picture must be a .png or .svg file")
    fig.savefig(path, dpi=130 if ext == ".png" else None)
    return fig


# =============================================================================================
# Slab map
# =============================================================================================

def _free_objects(cache: Any, slab: int) -> set:
    """The free objects of ``slab`` (its freelist and the freelist of a cpu using it)."""
    return set(cache.free_objects(slab))


def slab_places(cache: Any) -> dict[int, tuple[str, int]]:
    """Where every slab of ``cache`` lives: ``slab -> (place, cpu)``, place one of
    ``PLACE_COLORS`` (cpu -1 for the node lists)."""
    places: dict[int, tuple[str, int]] = {}
    for k in range(cache.info["nr_cpus"]):
        st = cache.cpu_state(k)
        if st["page"]:
            places[st["page"]] = ("cpu", k)
        for slab in st["partial"]:
            places[slab] = ("cpu partial", k)
    for slab in cache.node_partial():
        places[slab] = ("node partial", -1)
    for slab in cache.slabs():
        places.setdefault(slab, ("full", -1))
    return places


def slab_map(cache: Any) -> list[dict[str, Any]]:
    """The data of the slab map: per slab its address, place, cpu, objects, in-use count and
    the indices of its free objects (None when free pointers cannot be read)."""
    size = cache.info["size"]
    out = []
    for slab, (place, cpu) in sorted(slab_places(cache).items()):
        st = cache.slab_state(slab)
        free = _free_objects(cache, slab)
        out.append({"slab": slab, "place": place, "cpu": cpu, "objects": st["objects"],
                    "inuse": st["objects"] - len(free), "frozen": st["frozen"],
                    "free": sorted((o - slab) // size for o in free)})
    return out


def plot_slabs(cache: Any, path: str | os.PathLike, title: str | None = None,
               max_slabs: int = 120) -> Figure:
    """``mem.plot_slabs(path)`` for one cache: the slab map, saved to ``path``."""
    data = slab_map(cache)
    shown = data[:max_slabs]
    info = cache.info
    per_slab = info["objs_per_slab"]
    ocols = max(1, math.ceil(math.sqrt(per_slab)))
    orows = math.ceil(per_slab / ocols)
    ncols = max(1, min(12, len(shown)))
    nrows = max(1, math.ceil(len(shown) / ncols))
    pitch = 1.25                             # row pitch: the cell plus its label
    fig = Figure(figsize=(max(7.0, 1.1 * ncols + 1.0), 1.35 * nrows + 1.6))
    ax = fig.add_axes((0.02, 0.17, 0.96, 0.72))
    ax.set_xlim(-0.1, ncols)
    ax.set_ylim(nrows * pitch, -0.1)
    ax.set_aspect("equal")
    ax.axis("off")
    cell, pad = 0.92, 0.08
    for i, s in enumerate(shown):
        x, y = i % ncols, (i // ncols) * pitch
        color = PLACE_COLORS[s["place"]]
        ax.add_patch(Rectangle((x, y), cell, cell, fill=False, edgecolor=color,
                               linewidth=2.4, gid="slab"))
        inner = cell - 2 * pad
        h_obj = (inner - 0.12) / orows
        w_obj = inner / ocols
        free = set(s["free"] or ())
        # objects: filled squares in use, white squares free (unknown: all filled lightly)
        for j in range(s["objects"]):
            ox = x + pad + (j % ocols) * w_obj
            oy = y + pad + (j // ocols) * h_obj
            is_free = j in free
            face = FREE_COLOR if is_free else (USED_COLOR if s["free"] is not None
                                               else "#b5dcb5")
            ax.add_patch(Rectangle((ox, oy), w_obj * 0.85, h_obj * 0.85, facecolor=face,
                                   edgecolor="#999999" if is_free else "none",
                                   linewidth=0.4, gid="object"))
        # fill bar: inuse / objects
        frac = s["inuse"] / s["objects"] if s["objects"] else 0.0
        ax.add_patch(Rectangle((x + pad, y + cell - pad - 0.08), inner, 0.07,
                               facecolor="#eeeeee", edgecolor="none"))
        ax.add_patch(Rectangle((x + pad, y + cell - pad - 0.08), inner * frac, 0.07,
                               facecolor="#333333", edgecolor="none", gid="fill"))
        label = f"cpu{s['cpu']}" if s["cpu"] >= 0 else ""
        ax.text(x + cell / 2, y + cell + 0.05, f"{s['slab']:#x} {label}".strip(),
                ha="center", va="top", fontsize=7, color=color)
    occ = cache.occupancy()
    more = f" (first {len(shown)} of {len(data)} slabs)" if len(data) > len(shown) else ""
    fig.suptitle(title or (
        f"Slab map of cache {info['name']!r}: {occ['slabs']} slabs of {per_slab} objects "
        f"(order {info['order']}), {occ['objects']} objects in use by sysfs count{more}"),
        fontsize=10)
    counts = {p: sum(1 for s in data if s["place"] == p) for p in PLACE_COLORS}
    handles = [Patch(facecolor="none", edgecolor=c, linewidth=2.4, label=f"{p} ({counts[p]})")
               for p, c in PLACE_COLORS.items()]
    handles += [Patch(facecolor=USED_COLOR, label="object in use"),
                Patch(facecolor=FREE_COLOR, edgecolor="#999999", label="free object"),
                Patch(facecolor="#333333", label="bar: inuse/objects")]
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=7.5, frameon=False)
    return _save(fig, path)


# =============================================================================================
# Detached freelists of each strategy on one array
# =============================================================================================

def detached_lists(make: Callable[[], tuple[Any, np.ndarray]],
                   strategies: Sequence[str] = pyslub.FREE_BULK_STRATEGIES,
                   ) -> tuple[list[int], dict[str, list[tuple[int, list[int], str]]]]:
    """Run ``cache.free_bulk(p, strategy=s)`` for every strategy on the same situation.

    ``make()`` builds a fresh cache and array each time (it must be deterministic: the same
    addresses every call).  Returns the array and, per strategy, the ``record_frees`` lists.
    """
    array: list[int] | None = None
    out: dict[str, list[tuple[int, list[int], str]]] = {}
    for s in strategies:
        cache, p = make()
        now = [int(a) for a in p]
        if array is None:
            array = now
        elif now != array:
            raise ValueError("make() must build the same array every time")
        with pyslub.record_frees(cache) as rec:
            cache.free_bulk(p, strategy=s)
        out[s] = [(slab, list(objs), kind) for slab, objs, kind in rec]
    return array or [], out


def plot_detached_lists(array: Sequence[int], lists: dict[str, list[tuple[int, list[int], str]]],
                        path: str | os.PathLike, slab_bytes: int, title: str | None = None,
                        ) -> Figure:
    """The bulk array coloured by slab (top row) and, one row per strategy, the detached
    lists handed to the slabs in order (each list a block, ``slow`` = ``__slab_free``,
    ``fast`` = the cpu freelist); the right column counts lists and slow calls."""
    slabs = sorted({a - a % slab_bytes for a in array})
    palette = [
        "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
        "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173"]
    color = {s: palette[i % len(palette)] for i, s in enumerate(slabs)}
    n = len(array)
    rows = ["bulk array p[]"] + list(lists)
    max_width = max([n] + [sum(len(o) for _, o, _ in v) + 0.6 * len(v)
                           for v in lists.values()])
    fig = Figure(figsize=(min(18.0, 3.8 + 0.22 * max_width), 0.55 * len(rows) + 1.5))
    ax = fig.add_axes((0.1, 0.15, 0.72, 0.74))
    ax.set_xlim(0, max_width)
    ax.set_ylim(len(rows), 0)
    ax.set_yticks([i + 0.4 for i in range(len(rows))], rows, fontsize=8)
    ax.set_xticks([])
    for side in ("top", "right", "bottom", "left"):
        ax.spines[side].set_visible(False)
    for i, a in enumerate(array):
        ax.add_patch(Rectangle((i, 0), 0.92, 0.8, facecolor=color[a - a % slab_bytes],
                               edgecolor="none", gid="array"))
        if n <= 64:
            ax.text(i + 0.46, 0.88, str(i), ha="center", va="top", fontsize=5, color="#555555")
    for r, recs in enumerate(lists.values(), start=1):
        x = 0.0
        for slab, objs, kind in recs:
            for _ in objs:
                ax.add_patch(Rectangle((x, r), 0.92, 0.8, facecolor=color.get(slab, "#cccccc"),
                                       edgecolor="none", gid="listobj"))
                x += 1
            ax.add_patch(Rectangle((x - len(objs), r - 0.04), len(objs) - 0.08, 0.88,
                                   fill=False, edgecolor="#000000" if kind == "slow" else
                                   "#888888", linestyle="-" if kind == "slow" else ":",
                                   linewidth=1.0, gid="list"))
            x += 0.6
        slow = sum(1 for _, _, k in recs if k == "slow")
        ax.text(max_width + 0.5, r + 0.4, f"{len(recs)} lists, {slow} __slab_free",
                va="center", fontsize=8)
    fig.suptitle(title or (f"One kmem_cache_free_bulk of {n} objects from {len(slabs)} slabs:"
                           " the detached freelists each strategy builds"), fontsize=10)
    handles = [Patch(facecolor=color[s], label=f"slab {s:#x}") for s in slabs[:8]]
    handles += [Patch(facecolor="none", edgecolor="#000000", label="list -> __slab_free"),
                Patch(facecolor="none", edgecolor="#888888", linestyle=":",
                      label="list -> cpu freelist (fast)")]
    fig.legend(handles=handles, loc="lower center", ncol=min(5, len(handles)), fontsize=7,
               frameon=False)
    return _save(fig, path)


# =============================================================================================
# Replay over time
# =============================================================================================

def plot_replay(result: Any, path: str | os.PathLike, title: str | None = None) -> Figure:
    """Four panels over the events of a replay (``ReplayResult.timeline``)."""
    t = np.array(result.timeline, dtype=np.float64).reshape(-1, 9)
    ev, live, live_bytes, slot_bytes, objects, total, slabs, partial, large = t.T
    fig = Figure(figsize=(9.0, 8.0))
    axes = fig.subplots(4, 1, sharex=True)
    a0, a1, a2, a3 = axes
    a0.plot(ev, live, label="live objects (trace)", color="#2ca02c")
    a0.plot(ev, objects, label="objects (sysfs: not free on node partial slabs)",
            color="#1f77b4", linestyle="--")
    a0.plot(ev, total, label="total_objects (slab capacity)", color="#7f7f7f")
    a0.set_ylabel("objects")
    a1.plot(ev, slabs, label="slabs", color="#9467bd")
    a1.plot(ev, partial, label="node partial slabs", color="#ff7f0e")
    a1.set_ylabel("slabs")
    frag = np.where(total > 0, 1.0 - objects / np.maximum(total, 1), 0.0)
    true_frag = np.where(total > 0, 1.0 - np.minimum(live, total) / np.maximum(total, 1), 0.0)
    a2.plot(ev, frag, label="1 - objects/total_objects", color="#d62728")
    a2.plot(ev, true_frag, label="1 - live/total_objects (cpu freelists count as free)",
            color="#d62728", alpha=0.45, linestyle=":")
    a2.set_ylabel("fragmentation")
    a2.set_ylim(0, 1)
    a3.plot(ev, live_bytes / 1024, label="live bytes requested", color="#2ca02c")
    a3.plot(ev, slot_bytes / 1024, label="live bytes kmalloc'ed (class or pages)",
            color="#1f77b4", linestyle="--")
    a3.plot(ev, large / 1024, label="of those, whole pages (requests > 8 KiB)",
            color="#8c564b")
    a3.set_ylabel("KiB")
    a3.set_xlabel("events replayed")
    for a in axes:
        a.legend(fontsize=7, loc="upper left")
        a.grid(alpha=0.3)
        a.ticklabel_format(axis="y", style="plain", useOffset=False)
    a3.ticklabel_format(axis="x", style="plain", useOffset=False)
    fig.suptitle(title or (f"pyslub replay of {result.trace} ({result.format}, "
                           f"{result.events:,} events, mode {result.mode}): kmalloc caches"),
                 fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    return _save(fig, path)


# =============================================================================================
# Scenes (deterministic situations for the docs, the tests and ``pyslub show``)
# =============================================================================================

def slab_scene() -> tuple[Any, Any]:
    """A "packets" cache (232 bytes, HWCACHE_ALIGN, 2 cpus, cpu_partial 6) with slabs in every
    place: cpu 0 allocated 160 objects, cpu 1 freed 30 of the first 80 (remote frees), cpu 0
    freed 4, cpu 1 was flushed, then freed 6 more."""
    mem = pyslub.Memory(size=64 << 20, nr_cpus=2)
    c = mem.create_cache("packets", 232, flags=pyslub.SLAB_HWCACHE_ALIGN)
    c.cpu_partial = 6
    p = c.alloc_many(160)
    rng = np.random.default_rng(3)
    with mem.on_cpu(1):
        for a in p[rng.permutation(80)[:30]]:
            c.free(int(a))
    for a in p[100:104]:
        c.free(int(a))
    c.flush_cpu(1)
    with mem.on_cpu(1):
        for a in p[120:126]:
            c.free(int(a))
    return mem, c


def lists_scene() -> tuple[Any, np.ndarray]:
    """The seed's benchmark cache (232 bytes, HWCACHE_ALIGN, 8 cpus: 32 objects per order-1
    slab) after allocating 112 objects, and a 32-object array mixing three full slabs in runs
    and three objects of the cpu slab, in a fixed pseudo-random order of runs."""
    mem = pyslub.Memory(size=16 << 20, nr_cpus=8)
    c = mem.create_cache("seed", 232, flags=pyslub.SLAB_HWCACHE_ALIGN)
    p = c.alloc_many(112)
    runs = [p[0:4], p[40:46], p[4:7], p[70:75], p[46:48], p[100:103], p[7:12], p[75:79],
            p[48:50]]
    rng = np.random.default_rng(2015)
    order = rng.permutation(len(runs))
    return c, np.concatenate([runs[i] for i in order]).astype(np.uint64)


# =============================================================================================
# pyslub show
# =============================================================================================

def register(subparsers: Any) -> Any:
    """Add the ``show`` subcommand (slab map / detached lists / replay plot) to subparsers."""
    import argparse
    p = subparsers.add_parser(
        "show", help="draw a slab map, the detached freelists, or a replay over time",
        description="Draw pictures of pyslub state (PNG or SVG by the file's extension).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("what", choices=("slabs", "lists", "replay"),
                   help="slabs: slab map of a cache (the demo scene, or a kmalloc cache after "
                   "--trace); lists: the detached lists of every strategy on one array; "
                   "replay: a trace replay over time")
    p.add_argument("-o", "--output", default=None, help="picture file (default WHAT.png)")
    p.add_argument("--trace", default=None, help="trace to replay first (slabs, replay)")
    p.add_argument("--cache", default="kmalloc-64",
                   help="with --trace: the kmalloc cache to draw")
    p.set_defaults(func=main)
    return p


def main(args: Any) -> int:
    """Run ``pyslub show`` with parsed ``args``."""
    out = args.output or f"{args.what}.png"
    if args.what == "lists":
        array, lists = detached_lists(lists_scene)
        plot_detached_lists(array, lists, out, slab_bytes=8192)
    elif args.trace is None and args.what == "slabs":
        _, cache = slab_scene()
        plot_slabs(cache, out)
    elif args.trace is None:
        print("pyslub show replay: give --trace TRACE")
        return 2
    else:
        from pyslub.tools.replay import Replayer
        from pyslub.tools.trace_formats import TraceFile, detect_format, reader_for
        rp = Replayer()
        with TraceFile(args.trace) as f:
            result = rp.run(reader_for(detect_format(f.head()), f),
                            trace=os.path.basename(args.trace))
        if args.what == "replay":
            plot_replay(result, out)
        else:
            if args.cache not in rp.mem.caches:
                print(f"pyslub show: no cache {args.cache!r}; kmalloc caches: "
                      f"{', '.join(rp.mem.caches)}")
                return 2
            plot_slabs(rp.mem.caches[args.cache], out,
                       title=f"Slab map of {args.cache} after replaying "
                       f"{os.path.basename(args.trace)}")
    print(out)
    return 0


__all__ = ["PLACE_COLORS", "detached_lists", "lists_scene", "main", "plot_detached_lists",
           "plot_replay", "plot_slabs", "register", "slab_map", "slab_places", "slab_scene"]
