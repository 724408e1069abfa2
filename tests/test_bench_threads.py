"""``pyslub bench threads`` and its GIL-free producer/consumer loops (``pyslub.bench._threads``).

The loops must move every object exactly once and leave the cache as they found it, with the
counters a remote free implies (the consumer's cpu never allocates, so each of its frees goes
to ``__slab_free``); the command must print its tables in 80 columns and refuse bad options
before running.  Tiny sizes: this checks structure, not speed.
"""

from __future__ import annotations

import json
import threading

import pytest

import pyslub
from pyslub import FREE_BULK_STRATEGIES
from pyslub.bench import _threads
from pyslub.cli import main

COMPILED = pyslub.COMPILED


def pipe(mem, cache, total, batch, bulk, strategy="lookahead", slots=8):
    ring = _threads.Handoff(slots, max(batch, 1))
    out = {}

    def producer():
        with mem.on_cpu(0):
            out["p"] = _threads.produce(ring, cache, total, batch, bulk)

    def consumer():
        with mem.on_cpu(1):
            out["c"] = _threads.consume(ring, cache, total, bulk,
                                        FREE_BULK_STRATEGIES.index(strategy))

    ts = [threading.Thread(target=producer), threading.Thread(target=consumer)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert not any(t.is_alive() for t in ts)
    return out["p"], out["c"]


@pytest.mark.parametrize("bulk", [True, False])
@pytest.mark.parametrize("batch", [1, 16, 300])
def test_producer_consumer_moves_every_object_once(bulk, batch):
    mem = pyslub.Memory(size=64 << 20, nr_cpus=2, checks=False)
    cache = mem.create_cache("pc", 256)
    pages = mem.free_pages()
    total = (20_000 if COMPILED else 1_500) + 7            # not a multiple of the batch
    p, c = pipe(mem, cache, total, batch, bulk, FREE_BULK_STRATEGIES[batch % 6])
    assert p[0] == c[0] == total
    assert p[3] <= p[4] and c[3] <= c[4]                    # wall clocks read around the loops
    s0, s1 = cache.stats(cpu=0), cache.stats(cpu=1)
    assert s1["alloc_fastpath"] == s1["alloc_slowpath"] == s1["free_fastpath"] == 0, s1
    assert s0["free_fastpath"] == s0["free_slowpath"] == 0, s0
    if not bulk:
        assert s0["alloc_fastpath"] + s0["alloc_slowpath"] == total
        assert s1["free_slowpath"] == total                 # every free a remote one
    else:
        assert s0["alloc_fastpath"] == s0["alloc_slowpath"] == 0
    assert cache.live_objects() == 0
    assert cache.validate() == []
    cache.shrink()
    assert mem.free_pages() == pages


def test_producer_out_of_memory_stops_both_sides():
    """The producer cannot allocate its batch: it tells the consumer, and both return."""
    mem = pyslub.Memory(size=1 << 20, nr_cpus=2, checks=False)
    cache = mem.create_cache("oom", 256)
    held = []
    while True:                              # take the whole arena, then give back 16 objects
        try:
            held.append(cache.alloc())
        except MemoryError:
            break
    for a in held[-16:]:
        cache.free(a)
    del held[-16:]
    p, c = pipe(mem, cache, 1000, 64, True)
    assert p[0] == c[0] == 0
    for a in held:
        cache.free(a)
    assert cache.live_objects() == 0
    assert cache.validate() == []


def test_loops_refuse_bad_arguments():
    with pytest.raises(ValueError, match="slots"):
        _threads.Handoff(0, 4)
    safe = pyslub.Memory(size=8 << 20, nr_cpus=2).create_cache("safe", 64)
    with pytest.raises(ValueError, match="checks=False"):
        _threads.produce(_threads.Handoff(2, 4), safe, 10, 4, True)
    fast = pyslub.Memory(size=8 << 20, nr_cpus=2, checks=False).create_cache("fast", 64)
    with pytest.raises(ValueError, match="batch"):
        _threads.produce(_threads.Handoff(2, 4), fast, 10, 5, True)


# ---- the command ------------------------------------------------------------------------------

TINY = ["--rounds", "1", "--loops", "20000" if COMPILED else "2000", "--bulk-sizes", "16,64"]


def test_threads_command_prints_every_part_in_80_columns(capsys, tmp_path):
    path = tmp_path / "t.json"
    rc = main(["bench", "threads", *TINY, "--parts", "scaling,remote,policy", "-q",
               "--json", str(path)])
    lines = capsys.readouterr().out.splitlines()
    assert rc == 0
    text = "\n".join(lines)
    for title in ("== scaling:", "== remote frees:", "== cpu policies:",
                  "== against the issue's targets"):
        assert title in text
    assert max(map(len, lines)) <= 80
    assert any(ln.startswith("bulk 16, pinned") for ln in lines)
    assert any(ln.startswith("pyslub bulk") for ln in lines)
    data = json.loads(path.read_text())
    assert set(data) >= {"scaling", "remote", "policy", "rounds", "objects"}
    assert len(data["scaling"]["rates"]["16/free/ratio"]) == 1


@pytest.mark.parametrize("argv, message", [
    (["--parts", "speed"], "unknown speed"),
    (["--parts", "cost"], "needs --baseline"),
])
def test_threads_command_refuses_bad_options(capsys, argv, message):
    with pytest.raises(SystemExit) as e:
        main(["bench", "threads", *argv])
    assert e.value.code == 2
    assert message in capsys.readouterr().err


def test_cost_part_against_this_same_build(capsys):
    """--baseline may be any interpreter with pyslub: here this one, so both columns are
    this build (the table and verdict appear; the ratio is noise around 0 %)."""
    import sys

    rc = main(["bench", "threads", "--rounds", "1", "--loops", "3000",
               "--bulk-sizes", "8", "--parts", "cost", "--baseline", sys.executable, "-q"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "== cost of thread safety" in out and "cost of safety (target" in out
    assert "lookahead-fwd/8" in out and "bulk-v2/8" in out and "fastpath 1x1" in out
