"""Plots of ``pyslub bench`` runs: test01 next to the seed, and the peers.

Rules kept by every figure: at most 6 curves per axes (more become more panels), a title that
says what ran (geometry, driver, cache state, rounds), bulk-size ticks that do not overlap
(every size gets a minor tick, a readable subset a label), the seed's published points marked
with crosses, pyslub drawn strong and peers muted.  Medians are lines, quartiles shaded.
Uses matplotlib's Agg canvas directly (no pyplot, no global backend).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from pyslub.bench.seed import SEED_AFTER, SEED_BEFORE

__all__ = ["MAX_CURVES", "bench_plots", "peers_plot", "test01_plot"]

MAX_CURVES = 6
STRATEGY_COLORS = {"bulk-v2": "tab:blue", "lookahead-fwd": "tab:red", "detached": "tab:green",
                   "lookahead": "tab:purple", "swap": "tab:orange", "fallback": "tab:brown",
                   "bulk_fallback": "tab:gray"}
STATE_TITLES = {"seed": "seed-faithful cache (--fragment 8:12)", "fresh": "fresh cache",
                "fragment": "fragmented cache (--fragment)"}


def _figure(rows: int, cols: int, width: float = 7.0, height: float = 4.2) -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * cols, height * rows + 0.8))
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False)
    return fig, axes


def bulk_ticks(ax: Any, bulks: Sequence[int], ratio: float = 1.3) -> None:
    """Log x axis: a minor tick at every bulk size, labels only where they do not collide."""
    from matplotlib.ticker import FixedLocator, NullFormatter

    ax.set_xscale("log")
    labelled: list[int] = []
    for b in sorted(set(bulks)):
        if not labelled or b >= labelled[-1] * ratio:
            labelled.append(b)
    ax.xaxis.set_major_locator(FixedLocator(labelled))
    ax.xaxis.set_minor_locator(FixedLocator(sorted(set(bulks) - set(labelled))))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xticklabels([str(b) for b in labelled])
    ax.set_xlabel("bulk size N (objects)")


def _curve(ax: Any, col: dict[int, Any], label: str, **kw: Any) -> None:
    xs = sorted(col)
    style = {"marker": "o", "markersize": 3, "linewidth": 1.6}
    style.update(kw)
    line = ax.plot(xs, [col[x].median for x in xs], label=label, **style)[0]
    ax.fill_between(xs, [col[x].q1 for x in xs], [col[x].q3 for x in xs],
                    color=line.get_color(), alpha=0.15, linewidth=0)


def _seed_curves(ax: Any) -> None:
    for points, label, color in ((SEED_BEFORE, "seed before (bulk API V2)", "black"),
                                 (SEED_AFTER, "seed after (3 patches)", "dimgray")):
        ax.plot([p.bulk for p in points], [p.ns for p in points], linestyle="--", marker="x",
                markersize=6, color=color, linewidth=1.2, label=f"{label}, 2015")


def test01_plot(path: str | os.PathLike[str], blocks: Sequence[Any], *, before: str,
                after: str, strategies: Sequence[str], rounds: int, title: str) -> None:
    """One row of panels per (cache state, driver) block; before/after with the seed first,
    the other strategies (if any) in further panels of at most ``MAX_CURVES`` curves."""
    from pyslub.bench.command import _strategy_columns

    measured = {m.label for b in blocks for m in b.measurements if m.ok}
    others = [s for s in ["bulk_fallback", *strategies]
              if s not in (before, after) and s in measured]
    chunks = [others[i:i + MAX_CURVES - 2] for i in range(0, len(others), MAX_CURVES - 2)]
    cols = 1 + len(chunks)
    fig, axes = _figure(len(blocks), cols, width=9.5 if cols == 1 else 7.0)
    for row, b in enumerate(blocks):
        data = _strategy_columns(b.measurements, ["bulk_fallback", *strategies])
        bulks = sorted({k for c in data.values() for k in c} | {p.bulk for p in SEED_BEFORE})
        drv = f"{b.driver} driver"
        state = STATE_TITLES.get(b.state, b.state)
        ax = axes[row][0]
        for s in (before, after):
            if data.get(s):
                _curve(ax, data[s], f"{s} ({'before' if s == before else 'after'})",
                       color=STRATEGY_COLORS.get(s), linewidth=2.2)
        _seed_curves(ax)
        ax.set_title(f"{state}, {drv}: {before} vs {after}", fontsize=10)
        panels = [ax]
        for k, chunk in enumerate(chunks):
            ax2 = axes[row][k + 1]
            for s in chunk:
                if data.get(s):
                    _curve(ax2, data[s], s, color=STRATEGY_COLORS.get(s))
            if data.get(after):
                _curve(ax2, data[after], f"{after} (after)", color=STRATEGY_COLORS[after],
                       linestyle=":", linewidth=1.2)
            ax2.set_title(f"{state}, {drv}: other strategies", fontsize=10)
            panels.append(ax2)
        for a in panels:
            bulk_ticks(a, bulks)
            a.set_ylabel("ns per object (alloc + free)")
            a.set_ylim(bottom=0)
            a.grid(True, alpha=0.3)
            a.legend(fontsize=7, loc="best")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


# muted peers, strong pyslub
PEER_STYLES = {
    "native": {"color": "tab:red", "linewidth": 2.6, "marker": "o", "zorder": 5},
    "python": {"color": "tab:red", "linewidth": 2.6, "marker": "o", "zorder": 5},
    "glibc": {"color": "#8c8c8c", "linewidth": 1.2, "marker": "s"},
    "jemalloc": {"color": "#7a9cc6", "linewidth": 1.2, "marker": "^"},
    "mimalloc": {"color": "#9bbf8a", "linewidth": 1.2, "marker": "v"},
    "stack": {"color": "#c9a66b", "linewidth": 1.0, "marker": ".", "linestyle": "--"},
    "freelist": {"color": "#b39ddb", "linewidth": 1.0, "marker": ".", "linestyle": "--"},
    "list": {"color": "#7a9cc6", "linewidth": 1.2, "marker": "s"},
    "numpy": {"color": "#9bbf8a", "linewidth": 1.2, "marker": "^"},
}


def peers_plot(path: str | os.PathLike[str], res: Any, *, title: str) -> None:
    """Two panels: the C level (pyslub native vs the C allocators and limits) and the Python
    level (pyslub python vs the Python pools); log y, quartiles shaded."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    panels = [("C level: pyslub native driver vs C allocators and limits", "c"),
              ("Python level: pyslub python driver vs Python pools", "python")]
    fig, axes = _figure(1, 2, width=7.0, height=5.4)
    for (ptitle, level), ax in zip(panels, axes[0], strict=True):
        peers = [p for p in res.peers if p.level == level][:MAX_CURVES]
        for p in peers:
            col = res.spread(p.name)
            label = f"pyslub {p.name}" if p.name in ("native", "python") else p.name
            _curve(ax, col, label, **PEER_STYLES.get(p.name, {}))
        bulk_ticks(ax, res.bulk_sizes)
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_ylabel("ns per object (alloc + free), log scale")
        ax.set_title(ptitle, fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=3,
                  frameon=False)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def bench_plots(path: str, plan: Any, peers_result: Any, *,
                tsc_khz: int | None = None) -> list[str]:
    """The figures of a run: test01 at ``path``; the peers at ``path`` too, or next to it
    (``NAME-peers.png``) when test01 ran as well.  Returns the paths written."""
    import pyslub
    from pyslub.bench.machine import cpu_model

    kind = "compiled" if pyslub.COMPILED else "uncompiled"
    written = []
    blocks = [b for b in plan.blocks if b.test == "test01"]
    if blocks:
        g = blocks[0].config.geometry("test01")
        b0 = blocks[0]
        title = (f"slab_bulk_test01 on pyslub ({kind} core, {cpu_model()})\n"
                 f"{g.object_size} B objects -> {g.size} B slots, {g.objects} objs/slab, "
                 f"order {g.order}; {b0.config.loops_for('test01', b0.driver):,} objects per "
                 f"measurement\nmedian of {plan.rounds} rounds, quartiles shaded; seed: "
                 "i7-4790K, 2015")
        test01_plot(path, blocks, before=plan.before, after=plan.after,
                    strategies=plan.strategies, rounds=plan.rounds, title=title)
        written.append(path)
    if peers_result is not None:
        stem, ext = os.path.splitext(path)
        ppath = f"{stem}-peers{ext}" if blocks else path
        title = (f"alloc N x 256 B, then free the N: pyslub and its peers, one process and "
                 f"time window\n({kind} core, {cpu_model()}; median of {peers_result.rounds}"
                 " rounds, quartiles shaded)")
        peers_plot(ppath, peers_result, title=title)
        written.append(ppath)
    return written

