"""slabinfo: records equal the public API; the C tool's formats, exactly."""

from __future__ import annotations

import argparse
import os

import pytest

import pyslub
from pyslub.tools import slabinfo, sysfs

DATA = os.path.join(os.path.dirname(__file__), "data")


def _three_allocs():
    mem = pyslub.Memory(size=32 << 20, nr_cpus=2)
    c = mem.create_cache("t", 232, flags=pyslub.SLAB_HWCACHE_ALIGN)
    with mem.on_cpu(1):
        a = [c.alloc() for _ in range(3)]
    c.free(a[0])                                  # a remote free: __slab_free, frozen slab
    return mem, c


def _parse(argv):
    parser = argparse.ArgumentParser(prog="pyslub")
    slabinfo.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["slabinfo", *argv])


@pytest.mark.parametrize("value,text", [(0, "0"), (999, "999"), (1000, "1000"), (1001, "1.0K"),
                                        (4096, "4.0K"), (12345, "12.3K"), (1_000_000, "1000.0K"),
                                        (1_234_567, "1.2M"), (2_000_000_000, "2.0G")])
def test_store_size(value, text):
    assert slabinfo.store_size(value) == text
    assert slabinfo.store_size(value, show_bytes=True) == str(value)


def test_record_equals_public_api():
    mem = pyslub.Memory(size=32 << 20, nr_cpus=4)
    c = mem.create_cache("t", 100)
    objs = []
    for k in range(4):
        with mem.on_cpu(k):
            objs += [c.alloc() for _ in range(30)]
    for a in objs[::3]:
        c.free(a)
    (r,) = slabinfo.rows(mem)
    occ, info, st = c.occupancy(), c.info, c.stats()
    assert (r.objects, r.objects_partial, r.partial, r.cpu_slabs, r.slabs, r.total_objects) == (
        occ["objects"], occ["objects_partial"], occ["partial"], occ["cpu_slabs"], occ["slabs"],
        occ["total_objects"])
    assert (r.object_size, r.slab_size, r.objs_per_slab, r.order, r.align) == (
        info["object_size"], info["slab_size"], info["objs_per_slab"], info["order"],
        info["align"])
    assert all(r.stats[k] == st[k] for k in r.stats)
    assert r.slab_bytes == occ["slabs"] * (4096 << info["order"])


def test_listing_line_exact():
    mem, _ = _three_allocs()
    assert slabinfo.format_listing(slabinfo.rows(mem)) == [
        "Name                   Objects Objsize           Space Slabs/Part/Cpu  O/S O %Fr %Ef "
        "Flg",
        "t                           16     232            4.0K          0/0/1   16 0   0  90 A"]


def test_activity_line_exact():
    mem, _ = _three_allocs()
    out = slabinfo.format_listing(slabinfo.rows(mem), activity=True)
    assert out == [
        "Name                   Objects      Alloc       Free   %Fast Fallb O CmpX   UL",
        "t                           16          3          1  66   0     0 0    0    0"]


def test_report_exact_counter_table():
    mem, _ = _three_allocs()
    out = slabinfo.format_report(slabinfo.rows(mem)[0])
    assert out[1] == "Slabcache: t                Aliases:  0 Order :  0 Objects: 16"
    assert "** Hardware cacheline aligned" in out
    i = out.index("Slab Perf Counter       Alloc     Free %Al %Fr")
    assert out[i + 2:i + 10] == [
        "Fastpath                    2        0  66   0",
        "Slowpath                    1        1  33 100",
        "Page Alloc                  1        0  33   0",
        "Add partial                 0        0   0   0",
        "Remove partial              0        0   0   0",
        "Cpu partial list            0        0   0   0",
        "RemoteObj/SlabFrozen        0        1   0 100",
        "Total                       3        1"]
    assert "Object :     232  Total  :       1   Sanity Checks : Off  Total:    4096" in out
    assert "t: No NUMA information available." in out


def test_proc_slabinfo_exact():
    mem, _ = _three_allocs()
    out = slabinfo.format_proc(slabinfo.rows(mem))
    assert out[0] == "slabinfo - version: 2.1"
    assert out[1].startswith("# name            <active_objs> <num_objs> <objsize> ")
    assert out[2] == ("t                     16     16    256   16    1 : tunables    0    0    0"
                      " : slabdata      1      1      0")


def test_totals_lines():
    mem, _ = _three_allocs()
    out = slabinfo.format_totals(slabinfo.rows(mem))
    assert out[2] == "Slabcaches :               1   Aliases  :           0->0    Active:      1"
    assert out[3] == "Memory used:            4.0K   # Loss   :             384   MRatio:    10%"
    assert "Loss                   24               24               24" in out
    assert slabinfo.format_totals([]) == ["No objects"]


def test_sorting_and_empty_caches():
    mem = pyslub.Memory(size=32 << 20, nr_cpus=2)
    small, big = mem.create_cache("Small", 32), mem.create_cache("big", 2000)
    mem.create_cache("empty", 64)
    small.alloc()
    for _ in range(20):
        big.alloc()
    recs = slabinfo.rows(mem)
    names = [line.split()[0] for line in slabinfo.format_listing(recs)[1:]]
    assert names == ["big", "Small"]              # strcasecmp; empty caches skipped
    assert [ln.split()[0] for ln in slabinfo.format_listing(recs, zero=True)[1:]] == [
        "big", "empty", "Small"]
    assert [ln.split()[0] for ln in slabinfo.format_listing(recs, empty_only=True)[1:]] == [
        "empty"]
    assert [r.name for r in slabinfo.sort_records(recs, "size")][:2] == ["big", "Small"]
    assert [r.name for r in slabinfo.sort_records(recs, "size", inverted=True)][-1] == "big"
    assert slabinfo.format_listing(recs, sort="loss")[0].split()[3] == "Loss"
    with pytest.raises(ValueError, match="unknown sort"):
        slabinfo.sort_records(recs, "colour")


def test_real_sysfs_merged_caches_take_alias_names():
    recs = {r.name: r for r in slabinfo.load(os.path.join(DATA, "sysfs-6.18"))}
    # :0000120 has one alias and is shown by it; :0000192 has six and keeps its id
    assert "xt_hashlimit" in recs and ":0000192" in recs and ":0000120" not in recs
    km = recs["kmalloc-64"]
    assert (km.objects, km.object_size, km.order, km.numa) == (2685, 64, 0, {0: 43})
    out = slabinfo.format_listing(recs.values(), zero=True)
    assert any(line.startswith("kmalloc-64 ") for line in out)


def test_cli_sources(tmp_path, capsys):
    mem, _ = _three_allocs()
    snap = sysfs.snapshot(mem, tmp_path / "s.json")
    assert slabinfo.main(_parse(["--snapshot", snap, "--proc"])) == 0
    assert capsys.readouterr().out.splitlines()[2].startswith("t                     16")
    exported = sysfs.export(mem, tmp_path / "slab")
    assert slabinfo.main(_parse(["--sysfs", exported, "-T"])) == 0
    assert "Slabcache Totals" in capsys.readouterr().out
    assert slabinfo.main(_parse(["--sysfs", exported, "t"])) == 0      # one match: report
    assert "Slabcache: t " in capsys.readouterr().out
    assert slabinfo.main(_parse(["--snapshot", snap, "-v"])) == 2       # needs a live Memory
    assert slabinfo.main(_parse(["--snapshot", snap, "("])) == 2         # bad pattern
    capsys.readouterr()


def test_cli_demo_and_replay(capsys):
    assert slabinfo.main(_parse(["-S", "-N", "3"])) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("Name ") and len(out) <= 4
    trace = os.path.join(DATA, "valgrind-sort.trace.gz")
    assert slabinfo.main(_parse(["--replay", trace, "-v", "kmalloc"])) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "validated 13 caches: 0 problems"
