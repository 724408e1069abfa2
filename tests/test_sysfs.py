"""The sysfs tree: kernel file formats, values equal to the public API, kernel write rules."""

from __future__ import annotations

import errno
import json
import os

import numpy as np
import pytest

import pyslub
from pyslub.tools import sysfs

DATA = os.path.join(os.path.dirname(__file__), "data")


@pytest.fixture
def scene():
    """cpu 1 allocates 40 objects of a 16-per-slab cache, cpu 0 frees 10 of them."""
    mem = pyslub.Memory(size=32 << 20, nr_cpus=2)
    c = mem.create_cache("t", 232, flags=pyslub.SLAB_HWCACHE_ALIGN)
    with mem.on_cpu(1):
        p = c.alloc_many(40)
    for a in p[:10]:
        c.free(int(a))
    return mem, c, p


# -- formats -----------------------------------------------------------------------------------

def test_show_stat_prints_sum_then_nonzero_cpus():
    assert sysfs.show_stat([0, 3, 0, 2]) == "5 C1=3 C3=2\n"
    assert sysfs.show_stat([7]) == "7 C0=7\n"
    assert sysfs.show_stat([0, 0, 0]) == "0\n"


def test_show_slab_objects_one_numa_node():
    assert sysfs.show_slab_objects(12) == "12 N0=12\n"
    assert sysfs.show_slab_objects(0) == "0\n"


def test_first_allocations_exact_texts():
    mem = pyslub.Memory(size=32 << 20, nr_cpus=2)
    c = mem.create_cache("t", 232, flags=pyslub.SLAB_HWCACHE_ALIGN)
    with mem.on_cpu(1):
        for _ in range(3):
            c.alloc()
    d = sysfs.tree(mem)["t"]
    assert d["alloc_slowpath"] == "1 C1=1\n"      # new slab
    assert d["alloc_fastpath"] == "2 C1=2\n"
    assert d["alloc_slab"] == "1 C1=1\n"
    assert d["free_fastpath"] == "0\n"
    assert d["objects"] == "16 N0=16\n"           # the cpu slab counts as in use
    assert d["slabs"] == "1 N0=1\n" and d["cpu_slabs"] == "1 N0=1\n" and d["partial"] == "0\n"
    assert (d["slab_size"], d["object_size"], d["objs_per_slab"], d["order"]) == (
        "256\n", "232\n", "16\n", "0\n")
    assert d["hwcache_align"] == "1\n" and d["poison"] == "0\n" and d["aliases"] == "0\n"
    assert d["ctor"] == d["shrink"] == d["validate"] == ""
    assert d["slabs_cpu_partial"] == "0(0)\n"


# -- values equal the public API ---------------------------------------------------------------

def test_values_equal_stats_occupancy_info(scene):
    mem, c, _ = scene
    d = sysfs.tree(mem)["t"]
    occ, info = c.occupancy(), c.info
    for name in pyslub.STAT_NAMES:
        per_cpu = [c.stats(cpu=k)[name] for k in range(2)]
        assert d[name] == sysfs.show_stat(per_cpu)
        assert int(d[name].split()[0]) == c.stats()[name]
    for name in ("objects", "objects_partial", "partial", "cpu_slabs", "slabs",
                 "total_objects"):
        assert int(d[name].split()[0]) == occ[name]
    for name in ("slab_size", "object_size", "objs_per_slab", "order", "min_partial",
                 "cpu_partial", "align"):
        assert d[name] == f"{info[name]}\n"
    assert c.stats()["free_slowpath"] == 10       # remote frees: __slab_free each
    assert d["free_slowpath"] == "10 C0=10\n"


def test_slabs_cpu_partial_lists_cpu_partial_slabs(scene):
    mem, c, _ = scene
    slabs = c.cpu_state(0)["partial"]
    assert slabs                                  # cpu 0's frees froze full slabs
    free = sum(c.slab_state(s)["objects"] - c.slab_state(s)["inuse"] for s in slabs)
    assert sysfs.tree(mem)["t"]["slabs_cpu_partial"] == f"{free}({len(slabs)}) C0={free}" \
        f"({len(slabs)})\n"


def test_mapping_is_read_only_and_complete(scene):
    mem, _, _ = scene
    t = sysfs.tree(mem)
    assert list(t) == ["t"] and len(t["t"]) == len(sysfs.ATTRIBUTES)
    assert set(t["t"]) >= {"object_size", "slab_size", "objs_per_slab", "order", "objects",
                           "objects_partial", "partial", "cpu_slabs", "slabs", "total_objects",
                           "min_partial", "cpu_partial", "aliases", "align", "sanity_checks",
                           "red_zone", "poison", "store_user", *pyslub.STAT_NAMES}
    with pytest.raises(TypeError):
        t["t"]["order"] = "1"                     # type: ignore[index]
    with pytest.raises(KeyError):
        t["t"]["no_such_file"]


# -- writes --------------------------------------------------------------------------------------

@pytest.mark.parametrize("text,value", [("7\n", 7), ("7", 7), ("+8", 8), ("2", 5), ("0", 5),
                                        ("100\n", 10), ("18446744073709551615", 10)])
def test_min_partial_kstrtoul_and_clamp(scene, text, value):
    mem, c, _ = scene
    assert sysfs.tree(mem).write("t", "min_partial", text) == len(text)
    assert c.min_partial == value
    assert sysfs.tree(mem)["t"]["min_partial"] == f"{value}\n"


@pytest.mark.parametrize("text,err", [(" 5", errno.EINVAL), ("5 ", errno.EINVAL),
                                      ("5x", errno.EINVAL), ("", errno.EINVAL),
                                      ("-1", errno.EINVAL), ("5\n\n", errno.EINVAL),
                                      ("0x10", errno.EINVAL), ("++5", errno.EINVAL),
                                      ("18446744073709551616", errno.ERANGE)])
def test_min_partial_rejects_like_kstrtoul(scene, text, err):
    mem, c, _ = scene
    before = c.min_partial
    with pytest.raises(OSError) as e:
        sysfs.tree(mem).write("t", "min_partial", text)
    assert e.value.errno == err and "t/min_partial" in str(e.value)
    assert c.min_partial == before


def test_cpu_partial_store_flushes_and_uses_kstrtouint(scene):
    mem, c, _ = scene
    assert c.cpu_state(1)["page"] and c.cpu_state(0)["partial"]
    sysfs.tree(mem).write("t", "cpu_partial", "3\n")
    assert c.cpu_partial == 3
    assert all(not c.cpu_state(k)["page"] and not c.cpu_state(k)["partial"] for k in range(2))
    assert c.validate() == []
    with pytest.raises(OSError) as e:
        sysfs.tree(mem).write("t", "cpu_partial", "4294967296")
    assert e.value.errno == errno.ERANGE
    sysfs.tree(mem).write("t", "cpu_partial", "4294967295")
    assert c.cpu_partial == 4294967295


def test_cpu_partial_of_debug_cache_einval():
    mem = pyslub.Memory(size=32 << 20, nr_cpus=2)
    mem.create_cache("dbg", 64, flags=pyslub.SLAB_CONSISTENCY_CHECKS)
    t = sysfs.tree(mem)
    with pytest.raises(OSError) as e:
        t.write("dbg", "cpu_partial", "1")
    assert e.value.errno == errno.EINVAL
    assert t.write("dbg", "cpu_partial", "0") == 1
    assert t["dbg"]["sanity_checks"] == "1\n"


def test_shrink_store_checks_first_char(scene):
    mem, c, p = scene
    for a in p[10:]:
        c.free(int(a))
    t = sysfs.tree(mem)
    with pytest.raises(OSError) as e:
        t.write("t", "shrink", "0")
    assert e.value.errno == errno.EINVAL
    assert t.write("t", "shrink", "1yes") == 4     # buf[0] == '1' is all the kernel checks
    assert c.occupancy()["slabs"] == 0


def test_validate_store_logs_problems_only(scene):
    mem, _, _ = scene
    t = sysfs.tree(mem)
    assert t.write("t", "validate", "1\n") == 2
    assert t.log == []
    with pytest.raises(OSError) as e:
        t.write("t", "validate", "2")
    assert e.value.errno == errno.EINVAL


def test_stat_store_zero_clears(scene):
    mem, c, _ = scene
    t = sysfs.tree(mem)
    assert c.stats()["free_slowpath"] == 10
    with pytest.raises(OSError) as e:
        t.write("t", "free_slowpath", "1")
    assert e.value.errno == errno.EINVAL
    assert c.stats()["free_slowpath"] == 10
    others = {k: v for k, v in c.stats().items() if k != "free_slowpath"}
    assert any(others.values())
    assert t.write("t", "free_slowpath", "0\n") == 2
    assert c.stats()["free_slowpath"] == 0 and t["t"]["free_slowpath"] == "0\n"
    assert {k: v for k, v in c.stats().items() if k != "free_slowpath"} == others


def test_read_only_unknown_and_unsupported_files(scene):
    mem, _, _ = scene
    t = sysfs.tree(mem)
    with pytest.raises(PermissionError):
        t.write("t", "objects", "1")
    with pytest.raises(OSError) as e:
        t.write("t", "nope", "1")
    assert e.value.errno == errno.ENOENT
    with pytest.raises(OSError) as e:
        t.write("nope", "order", "1")
    assert e.value.errno == errno.ENOENT
    with pytest.raises(OSError) as e:
        t.write("t", "red_zone", "1")          # the cache has objects: -EBUSY first
    assert e.value.errno == errno.EBUSY
    with pytest.raises(OSError) as e:
        t.write("t", "order", "x")             # parse error before "not supported"
    assert e.value.errno == errno.EINVAL
    with pytest.raises(OSError) as e:
        t.write("t", "order", "1")
    assert e.value.errno == errno.EOPNOTSUPP
    with pytest.raises(TypeError):
        t.write("t", "shrink", b"1")           # type: ignore[arg-type]


# -- export, snapshot, real sysfs --------------------------------------------------------------

def test_export_and_read_back(scene, tmp_path):
    mem, _, _ = scene
    mem.kfree(mem.kmalloc(100))
    root = sysfs.export(mem, tmp_path / "slab")
    caches, aliases = sysfs.read_dir(root)
    assert aliases == {}
    assert caches == sysfs.tree(mem).texts()
    with open(os.path.join(root, "t", "free_slowpath")) as f:
        assert f.read() == "10 C0=10\n"


def test_snapshot_round_trip_and_bad_files(scene, tmp_path):
    mem, _, _ = scene
    path = sysfs.snapshot(mem, tmp_path / "snap.json")
    caches, aliases = sysfs.load_snapshot(path)
    assert caches == sysfs.tree(mem).texts() and aliases == {}
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(ValueError, match="bad JSON"):
        sysfs.load_snapshot(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text(json.dumps({"format": "x"}))
    with pytest.raises(ValueError, match="not a pyslub snapshot"):
        sysfs.load_snapshot(tmp_path / "other.json")


def test_read_real_sysfs_tree():
    caches, aliases = sysfs.read_dir(os.path.join(DATA, "sysfs-6.18"))
    assert set(caches) == {"kmalloc-64", "names_cache", ":0000120", ":0000192"}
    assert aliases["xt_hashlimit"] == ":0000120" and aliases["rtable"] == ":0000192"
    assert caches["kmalloc-64"]["objects"] == "2685 N0=2685\n"
    assert caches["kmalloc-64"]["object_size"] == "64\n"


def test_bulk_arrays_keep_sysfs_consistent():
    mem = pyslub.Memory(size=32 << 20, nr_cpus=2)
    c = mem.create_cache("b", 64)
    p = np.zeros(200, dtype=np.uint64)
    c.alloc_bulk(p)
    c.free_bulk(p[::2].copy())
    d = sysfs.tree(mem)["b"]
    assert int(d["objects"].split()[0]) == c.occupancy()["objects"]
    assert d["free_slowpath"] == sysfs.show_stat([c.stats(cpu=k)["free_slowpath"]
                                                  for k in range(2)])


# -- alloc_calls / free_calls (SLAB_STORE_USER, v4.4 list_locations) ---------------------------

def test_cpulist_ranges():
    assert sysfs.cpulist({0}) == "0"
    assert sysfs.cpulist({3, 0, 1, 2, 5, 7, 8}) == "0-3,5,7-8"


def test_alloc_calls_and_free_calls_group_the_u_tracks():
    import inspect
    import re
    mem = pyslub.Memory(size=16 << 20, nr_cpus=2, slab_debug="U,tracked")
    c = mem.create_cache("tracked", 64)
    plain = mem.create_cache("plain", 64)
    d = mem.sysfs()["tracked"]
    assert "alloc_calls" not in mem.sysfs()["plain"]       # (the kernel: ENOSYS on read)
    attrs = list(d)
    assert attrs[attrs.index("validate") + 1:attrs.index("validate") + 3] == list(sysfs.CALLS)
    assert d["alloc_calls"] == d["free_calls"] == "No data\n"
    here = inspect.currentframe()
    fn = here.f_code.co_name
    a, b = [], []
    for _ in range(3):                                      # (a comprehension is a frame of
        a.append(c.alloc()); la = here.f_lineno                    # noqa: E702
    with mem.on_cpu(1):                                     # its own before Python 3.12)
        for _ in range(2):
            b.append(c.alloc()); lb = here.f_lineno                # noqa: E702
    c.free(a[0]); lf = here.f_lineno                               # noqa: E702
    again = c.alloc(); lg = here.f_lineno                          # noqa: E702
    assert again == a[0]                                    # its FREE track is kept
    pid = os.getpid()
    age = r"age=\d+(/\d+/\d+)?"
    lines = d["alloc_calls"].splitlines()
    assert len(lines) == 3                                  # in the order sites were first seen
    assert re.fullmatch(rf"      2 {re.escape(__file__)}:{la} {fn} {age} pid={pid} cpus=0",
                        lines[0]), lines
    assert re.fullmatch(rf"      2 {re.escape(__file__)}:{lb} {fn} {age} pid={pid} cpus=1",
                        lines[1]), lines
    assert re.fullmatch(rf"      1 {re.escape(__file__)}:{lg} {fn} age=\d+ pid={pid} cpus=0",
                        lines[2]), lines
    lines = d["free_calls"].splitlines()
    assert re.fullmatch(r"      4 <not-available> age=\d+ pid=0 cpus=0", lines[0]), lines
    assert re.fullmatch(rf"      1 {re.escape(__file__)}:{lf} {fn} age=\d+ pid={pid} cpus=0",
                        lines[1]), lines
    assert len(lines) == 2
    with pytest.raises(OSError) as e:
        mem.sysfs().write("tracked", "alloc_calls", "1")
    assert e.value.errno == errno.EACCES
    for x in a[1:] + b + [again]:
        c.free(x)
    assert d["alloc_calls"] == "No data\n"
    plain.free(plain.alloc())
    for gen in ("6.18", "7.0"):                             # debugfs alloc_traces since v5.17
        m = pyslub.Memory(size=8 << 20, nr_cpus=2, slab_debug="U", slub=gen)
        assert "alloc_calls" not in m.sysfs()[m.create_cache("x", 64).name]
