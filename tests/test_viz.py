"""Pictures: files produced, and the structure drawn matches the allocator's state."""

from __future__ import annotations

import argparse
import os

import pytest

from pyslub.tools import replay, viz

DATA = os.path.join(os.path.dirname(__file__), "data")


def _patches(fig, gid):
    return [p for ax in fig.axes for p in ax.patches if p.get_gid() == gid]


def test_slab_scene_places_and_counts():
    _, cache = viz.slab_scene()
    data = viz.slab_map(cache)
    places = sorted(s["place"] for s in data)
    assert places == ["cpu", "cpu partial", "cpu partial", "full", "full", "node partial",
                      "node partial", "node partial", "node partial", "node partial"]
    assert sum(s["inuse"] for s in data) == 160 - 30 - 4 - 6     # live objects of the scene
    for s in data:
        st = cache.slab_state(s["slab"])
        if s["place"] != "cpu":                 # page.inuse is exact off the cpu slab
            assert s["inuse"] == st["inuse"] and len(s["free"]) == st["objects"] - st["inuse"]


@pytest.mark.parametrize("ext", [".png", ".svg"])
def test_plot_slabs_files_and_artists(tmp_path, ext):
    _, cache = viz.slab_scene()
    path = tmp_path / f"map{ext}"
    fig = viz.plot_slabs(cache, path)
    assert path.stat().st_size > 5_000
    assert len(_patches(fig, "slab")) == cache.occupancy()["slabs"] == 10
    assert len(_patches(fig, "object")) == 10 * 16
    assert len(_patches(fig, "fill")) == 10
    assert "packets" in fig._suptitle.get_text()
    with pytest.raises(ValueError, match="png or .svg"):
        viz.plot_slabs(cache, tmp_path / "map.jpg")


def test_detached_lists_of_every_strategy(tmp_path):
    array, lists = viz.detached_lists(viz.lists_scene)
    assert len(array) == 34
    counts = {s: len(v) for s, v in lists.items()}
    assert counts == {"fallback": 34, "bulk-v2": 34, "detached": 9, "lookahead-fwd": 7,
                      "lookahead": 7, "swap": 7}
    for recs in lists.values():
        assert sorted(o for _, objs, _ in recs for o in objs) == sorted(array)
    fig = viz.plot_detached_lists(array, lists, tmp_path / "lists.png", slab_bytes=8192)
    assert len(_patches(fig, "array")) == 34
    assert len(_patches(fig, "listobj")) == 6 * 34
    assert len(_patches(fig, "list")) == sum(counts.values())
    assert (tmp_path / "lists.png").stat().st_size > 10_000


def test_detached_lists_needs_a_deterministic_scene():
    import numpy as np
    state = {"n": 0}

    def make():
        cache, p = viz.lists_scene()
        state["n"] += 1
        return cache, (p[::-1].copy() if state["n"] == 2 else p)
    with pytest.raises(ValueError, match="same array"):
        viz.detached_lists(make)
    assert np.uint64


def test_plot_replay_panels(tmp_path):
    r = replay.replay_file(os.path.join(DATA, "valgrind-sort.trace.gz"))
    fig = viz.plot_replay(r, tmp_path / "replay.svg")
    assert len(fig.axes) == 4
    assert [len(ax.lines) for ax in fig.axes] == [3, 2, 2, 3]
    assert all(ax.get_ylabel() for ax in fig.axes)
    assert fig.axes[3].get_xlabel() == "events replayed"
    assert (tmp_path / "replay.svg").stat().st_size > 10_000


def test_show_command(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="pyslub")
    viz.register(parser.add_subparsers(dest="command", required=True))
    out = tmp_path / "slabs.svg"
    assert viz.main(parser.parse_args(["show", "slabs", "-o", str(out)])) == 0
    assert out.stat().st_size > 5_000
    trace = os.path.join(DATA, "valgrind-sort.trace.gz")
    out = tmp_path / "km.png"
    assert viz.main(parser.parse_args(["show", "slabs", "--trace", trace, "--cache",
                                       "kmalloc-32", "-o", str(out)])) == 0
    assert viz.main(parser.parse_args(["show", "slabs", "--trace", trace, "--cache",
                                       "nope"])) == 2
    assert viz.main(parser.parse_args(["show", "replay"])) == 2
    capsys.readouterr()
