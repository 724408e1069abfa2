"""sysfs and slabinfo for each SLUB generation (spec sheaves.md §4.3), and the Memory methods
that reach pyslub.tools (mem.sysfs, slabinfo, export_sysfs, snapshot, plot_slabs)."""

from __future__ import annotations

import errno
import os

import pytest

import pyslub
from pyslub.tools import slabinfo, sysfs

DATA = os.path.join(os.path.dirname(__file__), "data")
KERNEL_STATS = {g: [n for n in names if n not in pyslub.EXTRA_STAT_NAMES]
                for g, names in (("4.4", pyslub.STAT_NAMES), ("6.18", pyslub.STAT_NAMES_618),
                                 ("7.0", pyslub.STAT_NAMES_70))}


def scene(slub: str):
    """cpu 1 allocates 50 objects of a 20-per-slab cache, cpu 0 frees 25 (sheaves: 8 in
    6.18, calculate_sheaf_capacity's in 7.0) and allocates 3."""
    mem = pyslub.Memory(size=32 << 20, nr_cpus=2, slub=slub)
    c = mem.create_cache("t", 200, sheaf_capacity=8 if slub == "6.18" else None)
    with mem.on_cpu(1):
        objs = [c.alloc() for _ in range(50)]
    with mem.on_cpu(0):
        for a in objs[:25]:
            c.free(a)
        objs += [c.alloc() for _ in range(3)]
    return mem, c


@pytest.mark.parametrize("slub", ["4.4", "6.18", "7.0"])
def test_files_and_values_equal_the_api(slub):
    mem, c = scene(slub)
    d = mem.sysfs()["t"]
    assert isinstance(mem.sysfs(), sysfs.SysfsTree)
    names = list(d)
    # the generation's counter files, in its enum's order, and nothing of the others
    assert [n for n in names if n in sysfs.ALL_STATS] == KERNEL_STATS[slub]
    assert ("sheaf_capacity" in names) == ("usersize" in names) == (slub != "4.4")
    assert ("reserved" in names) == (slub == "4.4")
    assert len(d) == len(names) == len(set(names))
    for n in KERNEL_STATS[slub]:
        per_cpu = [c.stats(cpu=k)[n] for k in range(2)]
        assert d[n] == sysfs.show_stat(per_cpu), n
        assert sum(per_cpu) == c.stats()[n]
    info, occ = c.info, c.occupancy()
    for attr in ("objects", "objects_partial", "partial", "cpu_slabs", "slabs", "total_objects"):
        assert d[attr] == sysfs.show_slab_objects(occ[attr]), attr
    assert d["cpu_partial"] == f"{info['cpu_partial']}\n"
    if slub != "4.4":
        assert d["sheaf_capacity"] == f"{info['sheaf_capacity']}\n"
        assert d["usersize"] == "0\n"
    # slabinfo reads the same texts
    (r,) = mem.slabinfo()
    assert (r.objects, r.partial, r.cpu_slabs, r.slabs, r.total_objects) == (
        occ["objects"], occ["partial"], occ["cpu_slabs"], occ["slabs"], occ["total_objects"])
    # (the C tool reads a counter file the generation lacks as 0)
    assert r.stats == {k: c.stats().get(k, 0) for k in r.stats}


def test_exact_texts_618_and_70():
    mem, c = scene("6.18")
    d = mem.sysfs()["t"]
    # 6.18: allocations and frees through the opt-in sheaves count ALLOC_PCS / FREE_PCS
    assert d["sheaf_capacity"] == "8\n" and c.info["sheaf_capacity"] == 8
    assert d["alloc_cpu_sheaf"] == sysfs.show_stat([c.stats(cpu=k)["alloc_cpu_sheaf"]
                                                    for k in range(2)])
    assert c.stats()["alloc_cpu_sheaf"] > 0 and c.stats()["free_cpu_sheaf"] > 0
    assert d["cpu_partial"] == f"{c.info['cpu_partial']}\n" != "0\n"
    mem, c = scene("7.0")
    d = mem.sysfs()["t"]
    cap = c.info["sheaf_capacity"]
    assert cap > 0 and d["sheaf_capacity"] == f"{cap}\n"
    assert d["cpu_partial"] == "0\n" and d["cpu_slabs"] == "0\n"
    assert d["slabs_cpu_partial"] == "0(0)\n"
    # 7.0: alloc_fastpath / free_fastpath = from / to the percpu sheaves, per cpu
    assert d["alloc_fastpath"] == "53 C0=3 C1=50\n"
    assert d["free_fastpath"] == "25 C0=25\n"
    for gone in ("free_frozen", "cpu_partial_alloc", "deactivate_full", "alloc_cpu_sheaf"):
        assert gone not in d
        with pytest.raises(KeyError):
            d[gone]
        with pytest.raises(OSError) as err:
            mem.sysfs().write("t", gone, "0")
        assert err.value.errno == errno.ENOENT and "SLUB 7.0" in str(err.value)


def test_70_cpu_partial_store_is_inert():
    mem, c = scene("7.0")
    t = mem.sysfs()
    before = (c.stats(), c.occupancy(), c.sheaf_state())
    assert t.write("t", "cpu_partial", "0\n") == 2           # accepted, nothing done
    with pytest.raises(OSError) as err:
        t.write("t", "cpu_partial", "13")
    assert err.value.errno == errno.EINVAL
    with pytest.raises(OSError) as err:
        t.write("t", "cpu_partial", "x")                      # kstrtouint's error first
    assert err.value.errno == errno.EINVAL
    assert (c.stats(), c.occupancy(), c.sheaf_state()) == before
    with pytest.raises(OSError) as err:
        t.write("t", "sheaf_capacity", "4")
    assert err.value.errno == errno.EACCES
    # a 7.0 counter file clears on '0' as in every generation
    assert t.write("t", "sheaf_refill", "0") == 1 and t["t"]["sheaf_refill"] == "0\n"


def test_newer_generations_have_the_real_618_file_set():
    real, _ = sysfs.read_dir(os.path.join(DATA, "sysfs-6.18"))
    mem, _ = scene("6.18")
    mem.kfree(mem.kmalloc(64))
    d = mem.sysfs()["kmalloc-64"]
    # this machine's 6.18 kernel has no SLUB_STATS, FAILSLAB or KFENCE files
    assert set(real["kmalloc-64"]) == set(d) - set(KERNEL_STATS["6.18"]) - {"failslab"}
    assert d["usersize"] == real["kmalloc-64"]["usersize"] == "64\n"


@pytest.mark.parametrize("slub", ["4.4", "7.0"])
def test_memory_tool_methods(slub, tmp_path):
    mem, c = scene(slub)
    texts = sysfs.tree(mem).texts()
    assert mem.sysfs().texts() == texts
    root = mem.export_sysfs(tmp_path / "slab")
    assert sysfs.read_dir(root) == (texts, {})
    path = mem.snapshot(tmp_path / "snap.json")
    assert sysfs.load_snapshot(path) == (texts, {})
    assert [r.name for r in slabinfo.load(path)] == [r.name for r in mem.slabinfo()] == ["t"]
    fig = mem.plot_slabs(tmp_path / "map.png")
    assert (tmp_path / "map.png").stat().st_size > 5_000 and "t" in fig._suptitle.get_text()
    mem.plot_slabs(tmp_path / "map2.svg", "t", title="x")
    assert (tmp_path / "map2.svg").stat().st_size > 5_000
    mem.kfree(mem.kmalloc(8))
    with pytest.raises(ValueError, match="name the cache"):
        mem.plot_slabs(tmp_path / "m.png")                   # t and kmalloc-8 have slabs
    with pytest.raises(ValueError, match="no cache named 'nope'"):
        mem.plot_slabs(tmp_path / "m.png", "nope")
    other = pyslub.Memory(size=16 << 20, nr_cpus=1).create_cache("t", 64)
    with pytest.raises(ValueError, match="not a cache of this Memory"):
        mem.plot_slabs(tmp_path / "m.png", other)
    assert not (tmp_path / "m.png").exists()


def test_tools_are_not_imported_by_the_core():
    import subprocess
    import sys

    code = ("import sys, pyslub; m = pyslub.Memory(size=8 << 20, nr_cpus=1); "
            "print(sorted(k for k in sys.modules if k.startswith('pyslub.tools')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
