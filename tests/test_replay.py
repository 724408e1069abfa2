"""Trace readers (every line form) and replays (live counts, every strategy, validate)."""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re

import pytest

import pyslub
from pyslub.tools import replay
from pyslub.tools import trace_formats as tf
from pyslub.tools.trace_formats import ALLOC, FREE, REALLOC

DATA = os.path.join(os.path.dirname(__file__), "data")
LS = os.path.join(DATA, "valgrind-ls.trace.gz")
PIPE = os.path.join(DATA, "valgrind-pipe.trace.gz")
PYTHON = os.path.join(DATA, "valgrind-python.trace.gz")
SORT = os.path.join(DATA, "valgrind-sort.trace.gz")
FT_NEW = os.path.join(DATA, "ftrace-6.18-ls.txt.gz")
FT_OLD = os.path.join(DATA, "ftrace-v4.4-handmade.txt")
K = 1 << 64


def vg(text: str) -> tuple[list, dict]:
    r = tf.ValgrindReader(text.splitlines(True))
    return list(r), r.counts


def ft(text: str) -> tuple[list, dict]:
    r = tf.FtraceReader(text.splitlines(True))
    return list(r), r.counts


# -- valgrind --------------------------------------------------------------------------------

def test_valgrind_basic_forms():
    evs, c = vg("==7== Memcheck, a memory error detector\n"
                "--7-- malloc(472) = 0x4B07040\n"
                "--7-- calloc(3,8) = 0x4B07300\n"
                "--7-- free(0x4B07040)\n"
                "--7-- free(0x0)\n"
                "--7-- malloc(5) = 0x0\n"
                "--7-- memalign(al 64, size 100) = 0x4B08000\n"
                "--7-- posix_memalign(al 4096, size 10) = 0x4B09000\n"
                "--7-- aligned_alloc(al 8, size 24) = 0x4B0A000\n"
                "--7-- _Znwm(40) = 0x4B0B000\n"
                "--7-- _ZnwmSt11align_val_t(size 48, al 64) = 0x4B0C000\n"
                "--7-- _ZdlPv(0x4B0B000)\n"
                "--7-- _ZdaPvm(0x4B0C000)\n"
                "--7-- malloc_usable_size(0x4B07300) = 24\n")
    base = 7 * K
    assert evs == [(ALLOC, 7, -1, base | 0x4B07040, 0, 472),
                   (ALLOC, 7, -1, base | 0x4B07300, 0, 24),
                   (FREE, 7, -1, base | 0x4B07040, 0, 0),
                   (ALLOC, 7, -1, base | 0x4B08000, 0, 128),       # 64-aligned: power of two
                   (ALLOC, 7, -1, base | 0x4B09000, 0, 4096),
                   (ALLOC, 7, -1, base | 0x4B0A000, 0, 24),
                   (ALLOC, 7, -1, base | 0x4B0B000, 0, 40),
                   (ALLOC, 7, -1, base | 0x4B0C000, 0, 64),
                   (FREE, 7, -1, base | 0x4B0B000, 0, 0),
                   (FREE, 7, -1, base | 0x4B0C000, 0, 0)]
    assert (c["null_frees"], c["failed_allocs"], c["ignored_lines"], c["unknown_lines"]) == (
        1, 1, 1, 0)


def test_valgrind_realloc_forms():
    base = 3 * K
    evs, c = vg("--3-- realloc(0x0,1600)malloc(1600) = 0x4B08A10\n"     # realloc(NULL, n)
                "--3-- realloc(0x4B08A10,2048) = 0x4B094D0\n"
                "--3-- realloc(0x4B094D0,0)free(0x4B094D0)\n"          # valgrind <= 3.20
                " = 0\n"
                "--3-- realloc(0x0,16) = 0x5000000\n"                 # valgrind >= 3.21
                "--3-- realloc(0x5000000,0) = 0x0\n"
                "--3-- realloc(0x6000000,99) = 0x0\n")                # failed: p stays
    assert evs == [(ALLOC, 3, -1, base | 0x4B08A10, 0, 1600),
                   (REALLOC, 3, -1, base | 0x4B08A10, base | 0x4B094D0, 2048),
                   (FREE, 3, -1, base | 0x4B094D0, 0, 0),
                   (ALLOC, 3, -1, base | 0x5000000, 0, 16),
                   (FREE, 3, -1, base | 0x5000000, 0, 0)]
    assert c["unknown_lines"] == 0 and c["failed_allocs"] == 1


def test_valgrind_interleaved_processes():
    evs, c = vg("--1-- malloc(8)--2-- free(0x10)\n"
                " = 0x20\n"
                "--2-- malloc(16)--1-- malloc(24) = 0x30\n"
                " = 0x40\n")
    assert evs == [(FREE, 2, -1, 2 * K | 0x10, 0, 0), (ALLOC, 1, -1, 1 * K | 0x20, 0, 8),
                   (ALLOC, 1, -1, 1 * K | 0x30, 0, 24), (ALLOC, 2, -1, 2 * K | 0x40, 0, 16)]
    assert c["unknown_lines"] == 0


@pytest.mark.parametrize("line", ["--1-- malloc(abc) = 0x10", "--1-- frobnicate(3) = 0x10",
                                  "garbage", " = 0x10", "--1-- malloc(8) = 0x10 trailing",
                                  "--1-- calloc(1) = 0x10", "--1-- memalign(64) = 0x10"])
def test_valgrind_malformed_lines_counted(line):
    evs, c = vg(line + "\n--1-- free(0x99)\n")
    assert evs[-1] == (FREE, 1, -1, K | 0x99, 0, 0)
    assert c["unknown_lines"] == 1 and c["lines"] == 2


def test_valgrind_real_trace_matches_heap_summary():
    with tf.TraceFile(LS) as f:
        assert f.compressed and tf.detect_format(f.head()) == "valgrind"
        text = "".join(f.head(10 ** 6))
    m = re.search(r"in use at exit: ([\d,]+) bytes in ([\d,]+) blocks", text)
    summary = (int(m.group(2).replace(",", "")), int(m.group(1).replace(",", "")))
    assert summary == (1440, 378707)
    assert replay.trace_live_objects(LS) == summary
    m = re.search(r"total heap usage: ([\d,]+) allocs, ([\d,]+) frees", text)
    allocs, frees = (int(g.replace(",", "")) for g in m.groups())
    with tf.TraceFile(LS) as f:
        evs = list(tf.ValgrindReader(f))
    n_realloc = sum(1 for e in evs if e[0] == REALLOC)
    assert sum(1 for e in evs if e[0] == ALLOC) + n_realloc == allocs
    assert sum(1 for e in evs if e[0] == FREE) + n_realloc == frees


# -- ftrace ----------------------------------------------------------------------------------

def test_ftrace_modern_layout():
    evs, c = ft(
        "# tracer: nop\n"
        "            bash-6169    [001] .....  1154.555856: kmem_cache_alloc: call_site="
        "getname_flags.part.0+0x24/0x1f0 ptr=000000005c58f297 name=names_cache bytes_req=4096 "
        "bytes_alloc=4096 gfp_flags=GFP_KERNEL node=-1 accounted=false\n"
        "            bash-6169    [001] .....  1154.555863: kmalloc: call_site=eventfs_set_attr"
        "+0x10d/0x140 ptr=00000000fb474804 bytes_req=60 bytes_alloc=64 gfp_flags=GFP_NOFS|"
        "__GFP_ZERO node=-1 accounted=false\n"
        "  kworker/u4:1-52 (     52) [000] d..1.  1154.6: kmem_cache_free: call_site=__fput+"
        "0x141/0x2a0 ptr=000000005c58f297 name=names_cache\n"
        "            bash-6169    [001]  1154.7: kfree: call_site=x+0x1/0x2 ptr=00000000fb474804"
        "\n")
    assert evs == [(ALLOC, 6169, 1, 0x5C58F297, 0, 4096), (ALLOC, 6169, 1, 0xFB474804, 0, 60),
                   (FREE, 52, 0, 0x5C58F297, 0, 0), (FREE, 6169, 1, 0xFB474804, 0, 0)]
    assert c["ignored_lines"] == 1 and c["unknown_lines"] == 0


def test_ftrace_old_layout_fixture():
    with tf.TraceFile(FT_OLD) as f:
        assert not f.compressed and tf.detect_format(f.head()) == "ftrace"
        r = tf.FtraceReader(f)
        evs = list(r)
    assert [(e[0], e[1], e[2], e[5]) for e in evs] == [
        (ALLOC, 2310, 0, 256), (ALLOC, 2310, 0, 192), (ALLOC, 52, 1, 512), (ALLOC, 52, 1, 232),
        (FREE, 0, 1, 0), (FREE, 0, 1, 0), (FREE, 2310, 0, 0), (FREE, 2310, 0, 0),
        (ALLOC, 4242, 0, 9000), (ALLOC, 2310, 0, 24)]
    assert evs[4][3] == 0xFFFF88007C2B9E00
    c = r.counts
    assert (c["null_frees"], c["lost_events"], c["unknown_lines"]) == (1, 17, 1)
    assert c["ignored_lines"] == 11 + 1 + 1        # header + mm_page_alloc + LOST line


def test_ftrace_old_fixture_replay_counts_unmatched_free():
    r = replay.replay_file(FT_OLD)
    assert r.unmatched_frees == 1 and r.large_allocs == 1
    assert r.live_objects == 3 and r.live_slab_objects == 2 and r.consistent


def test_detect_format_errors():
    assert tf.detect_format(["\n", "--12-- malloc(1) = 0x1\n"]) == "valgrind"
    assert tf.detect_format(["# tracer: nop\n"]) == "ftrace"
    with pytest.raises(ValueError, match="cannot tell the trace format"):
        tf.detect_format(["hello\n"])
    with pytest.raises(ValueError, match="unknown trace format"):
        tf.reader_for("strace", [])


# -- replays ---------------------------------------------------------------------------------

def test_kmalloc_classes_equal_mem_kmalloc():
    mem = pyslub.Memory(size=64 << 20, nr_cpus=2)
    edges = {1, 8192} | {b + d for b in pyslub.KMALLOC_SIZES for d in (-1, 0, 1)}
    for n in sorted(e for e in edges if 1 <= e <= 8192):
        a = mem.kmalloc(n)
        assert mem.cache_of(a).name == replay.KMALLOC_NAMES[replay._KMALLOC_CLASS[n]]
        assert replay.kmalloc_slot(n) == mem.ksize(a)
        mem.kfree(a)
    for n in (8193, 12288, 16385, 1 << 20):
        a = mem.kmalloc(n)
        assert replay.kmalloc_slot(n) == mem.ksize(a)
        mem.kfree(a)


@pytest.mark.parametrize("path", [SORT, PIPE, pytest.param(LS, marks=pytest.mark.slow),
                                  pytest.param(PYTHON, marks=pytest.mark.slow),
                                  pytest.param(FT_NEW, marks=pytest.mark.slow)])
def test_final_live_objects_equal_trace(path):
    r = replay.replay_file(path)
    assert (r.live_objects, r.live_bytes) == replay.trace_live_objects(path)
    assert r.consistent, (r.validate, r.pyslub_live_slab_objects, r.live_slab_objects)
    assert r.peak_live_objects >= r.live_objects > 0
    assert r.events == r.allocs + r.frees + r.reallocs
    assert r.parser["unknown_lines"] == 0


@pytest.mark.parametrize("mode", replay.BATCH_MODES)
def test_every_strategy_validates(mode):
    r = replay.replay_file(PIPE, mode=mode, batch=16, cpus=2)
    assert all(v == [] for v in r.validate.values())
    assert r.pyslub_live_slab_objects == r.live_slab_objects
    assert sum(n * k for k, n in r.list_lengths.items()) == r.bulk_objects


@pytest.mark.slow
@pytest.mark.parametrize("mode", replay.BATCH_MODES)
def test_every_strategy_validates_reallocs_and_pages(mode):
    r = replay.replay_file(PYTHON, mode=mode, batch=16)
    assert all(v == [] for v in r.validate.values())
    assert r.pyslub_live_slab_objects == r.live_slab_objects
    assert r.bulk_calls > 0
    assert sum(n * k for k, n in r.list_lengths.items()) == r.bulk_objects
    assert sum(r.list_lengths.values()) == r.fast_lists + r.slow_lists


@pytest.mark.slow
def test_batched_lists_agree_with_stats():
    r = replay.replay_file(LS, mode="lookahead", batch=16)
    # every slow list is one __slab_free call
    assert r.slow_lists == r.stat_total("free_slowpath")
    base = replay.replay_file(LS)
    assert base.stat_total("free_slowpath") > r.stat_total("free_slowpath")
    one = replay.replay_file(LS, mode="fallback", batch=16)
    assert set(one.list_lengths) == {1}


def test_cpus_spread_pids():
    r = replay.replay_file(PIPE, cpus=4, mode="swap", batch=8)
    assert r.consistent
    rp = replay.Replayer(cpus=2, cpu_key="cpu")
    with tf.TraceFile(FT_NEW) as f:
        rp.run(tf.FtraceReader(f))
    rp.check()
    used = [k for k in range(2)
            if sum(c.stats(cpu=k)["alloc_fastpath"] for c in rp.caches) > 0]
    assert used == [0, 1] and rp.r.consistent


def _run(events, **kw):
    class Reader(tf.TraceReader):
        def __iter__(self):
            return iter(events)
    rp = replay.Replayer(**kw)
    rp.run(Reader([]))
    return rp


def test_unknown_frees_counted_never_passed_to_pyslub():
    rp = _run([(FREE, 1, -1, 0xDEAD, 0, 0), (ALLOC, 1, -1, 5, 0, 8), (FREE, 1, -1, 5, 0, 0),
               (FREE, 1, -1, 5, 0, 0)], mode="lookahead", batch=4)
    assert rp.r.unmatched_frees == 2 and rp.r.live_objects == 0
    assert rp.check().consistent


def test_realloc_follows_krealloc():
    rp = _run([(ALLOC, 1, -1, 1, 0, 100)])
    first = rp.live[1][0]
    rp._realloc(1, 2, 120)                      # kmalloc-128 holds 120 bytes: kept
    assert rp.live[2][0] == first and 1 not in rp.live
    rp._realloc(2, 3, 200)                      # moved to kmalloc-256, old freed
    assert rp.live[3][0] != first and rp.caches[7].occupancy()["objects"] >= 0
    assert rp.r.live_objects == 1 and rp.r.live_bytes == 200
    rp._realloc(3, 3, 5000)                     # same pointer, moved in pyslub
    assert rp.r.live_objects == 1 and rp.live[3][3] == 8192
    rp._realloc(99, 4, 10)                      # realloc of an unknown pointer
    assert rp.r.unmatched_reallocs == 1 and rp.r.live_objects == 2
    assert rp.check().consistent


def test_zero_large_and_oversized_allocations():
    rp = _run([(ALLOC, 1, -1, 1, 0, 0), (ALLOC, 1, -1, 2, 0, 20000),
               (ALLOC, 1, -1, 3, 0, 1 << 30), (ALLOC, 1, -1, 2, 0, 8),
               (FREE, 1, -1, 1, 0, 0), (FREE, 1, -1, 3, 0, 0)])
    r = rp.r
    assert (r.zero_size_allocs, r.large_allocs, r.too_large_allocs) == (1, 1, 1)
    assert r.reused_live_pointers == 1          # 2 allocated again without a free
    assert r.live_objects == 1 and rp.large_bytes == 0 and rp.check().consistent


@pytest.mark.slow
def test_gz_and_plain_give_the_same_replay(tmp_path):
    plain = tmp_path / "sort.trace"
    with gzip.open(SORT, "rb") as f:
        plain.write_bytes(f.read())
    a, b = replay.replay_file(SORT), replay.replay_file(str(plain))
    assert a.to_json()["caches"] == b.to_json()["caches"]
    assert (a.events, a.live_objects) == (b.events, b.live_objects)


def test_timeline_stays_bounded():
    lines = []
    for i in range(6000):
        lines.append(f"--1-- malloc({(i % 300) + 1}) = 0x{0x1000 + i * 16:X}\n")
        if i % 3:
            lines.append(f"--1-- free(0x{0x1000 + i * 16:X})\n")
    rp = replay.Replayer(samples=50)
    r = rp.run(tf.ValgrindReader(lines))
    assert len(r.timeline) <= 100 and r.timeline[-1][0] == r.events
    assert [row[0] for row in r.timeline] == sorted(row[0] for row in r.timeline)


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown replay mode"):
        replay.Replayer(mode="nope")
    with pytest.raises(ValueError, match="batch"):
        replay.Replayer(mode="swap", batch=0)
    with pytest.raises(ValueError, match="cpu_key"):
        replay.Replayer(cpu_key="tid")


def test_cli_json_and_plot(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="pyslub")
    replay.register(parser.add_subparsers(dest="command", required=True))
    out_json, out_png = tmp_path / "r.json", tmp_path / "r.png"
    args = parser.parse_args(["replay", SORT, "--batch", "8", "--strategies",
                              "bulk-v2,lookahead-fwd", "--json", str(out_json), "--plot",
                              str(out_png), "--quiet"])
    assert replay.main(args) == 0
    text = capsys.readouterr().out
    assert "check: validate() == [] for every cache: yes" in text and "lookahead-fwd" in text
    doc = json.loads(out_json.read_text())
    for key in ("events", "allocs", "frees", "unknown_lines", "final_live_objects",
                "peak_live_objects", "caches"):
        assert key in doc
    assert set(doc["caches"]["kmalloc-64"]) >= {"stats", "occupancy"}
    assert set(doc["batch"]["passes"]) == {"bulk-v2", "lookahead-fwd"}
    assert doc["final_live_objects"] == replay.trace_live_objects(SORT)[0]
    assert out_png.stat().st_size > 10_000
    args = parser.parse_args(["replay", str(tmp_path / "missing.gz")])
    assert replay.main(args) == 2
