"""Published numbers of the 2015 SLUB bulk work, as data (spec section 1.6).

All runs: Jesper Dangaard Brouer, Intel i7-4790K @ 4.00 GHz (TSC = core clock, so cycles ~= 4 x
ns), pinned with ``taskset -c 1``; 256-byte objects (``:t-0000256``, 32 objects per order-1
slab), prototype-kernel ``slab_bulk_test01`` "kmem bulk_quick_reuse" unless noted.  Values are
per object, i.e. one alloc plus one free, in TSC cycles (``cycles``) and ns.

Sources (Message-IDs, all on linux-mm):

- seed table: "[PATCH 0/3] slub: introducing detached freelist", 2015-07-15,
  ``20150715155934.17525.2835.stgit@devil`` (V2 repost 2015-08-24,
  ``20150824005727.2947.36065.stgit@localhost``, identical table); patch 2/3
  ``20150715160145.17525.6500.stgit@devil``, patch 3/3 ``20150715160212.17525.88123.stgit@devil``.
- bulk API V2 ("before"): "[PATCH V2 0/6] slub: bulk alloc and free for slub allocator",
  2015-06-17, ``20150617142613.11791.76008.stgit@devil``.
- tuning reply (variance, sysfs values): ``20150720232817.05f08663@redhat.com``.
- merged 6/7 "slub: optimize bulk slowpath free by detached freelist", 2015-09-28,
  ``20150928122634.15409.6956.stgit@canyon``.
- kfree_bulk: "[PATCH V2 10/11] mm: new API kfree_bulk() for SLAB+SLUB allocators", 2016-01-12,
  ``20160112151552.31725.9733.stgit@firesoul``.

"improved" in the seed = (before - after) / before * 100 on **cycles**, printed with one
decimal; on ns it does not reproduce (bulk 1 would be -13.4% instead of -11.9%).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "BULK_SIZES",
    "FASTPATH_REUSE_CYCLES",
    "KFREE_BULK",
    "KFREE_BULK_FASTPATH_CYCLES",
    "MACHINE",
    "MERGED_6_7",
    "PATCH2",
    "PATCH3",
    "SEED_AFTER",
    "SEED_BEFORE",
    "SEED_IMPROVED_PCT",
    "SEED_TABLE_TEXT",
    "SYSFS_T_0000256",
    "TEST02_PATCH2_VS_PATCH3",
    "VARIANCE_UNTUNED",
    "Machine",
    "SeedPoint",
    "seed_improved",
]


@dataclass(frozen=True)
class Machine:
    """The benchmark machine of all 2015 runs."""

    cpu: str
    ghz: float
    tsc_khz: int
    pinning: str
    notes: str


MACHINE = Machine(
    cpu="Intel(R) Core(TM) i7-4790K CPU @ 4.00GHz",
    ghz=4.0,
    tsc_khz=4_000_000,
    pinning="taskset -c 1",
    notes="HT disabled in BIOS for later runs; kernel with CONFIG_FTRACE (perf probes on "
    "__slab_free during test03); nr_cpu_ids = 8",
)

# sysfs of the merged 256-byte cache (tuning reply, 2015-07-20)
SYSFS_T_0000256 = {"cpu_partial": 13, "min_partial": 5, "order": 1, "objs_per_slab": 32}

# slab_bulk_test01 bulk sizes, in the order run (158 = 128 + 30)
BULK_SIZES: tuple[int, ...] = (1, 2, 3, 4, 8, 16, 30, 32, 34, 48, 64, 128, 158, 250)


@dataclass(frozen=True)
class SeedPoint:
    """One published measurement: per-object cycles(tsc) and the kernel's ns text value."""

    bulk: int
    cycles: int
    ns: float


def _points(cycles: tuple[int, ...], ns: tuple[float, ...]) -> tuple[SeedPoint, ...]:
    assert len(cycles) == len(ns) == len(BULK_SIZES)
    return tuple(SeedPoint(b, c, n) for b, c, n in zip(BULK_SIZES, cycles, ns, strict=True))


# Seed cover letter table: "Bulk-API-before" (bulk API V2 in akpm's tree) vs "Bulk-API with
# patchset" (the 3 detached-freelist patches).
SEED_BEFORE = _points(
    (42, 26, 22, 19, 17, 69, 88, 83, 80, 76, 86, 97, 96, 100),
    (10.520, 6.697, 5.589, 4.921, 4.499, 17.424, 22.075, 20.965, 20.039, 19.252, 21.523,
     24.444, 24.036, 25.007),
)  # fmt: skip
SEED_AFTER = _points(
    (47, 29, 24, 22, 20, 20, 20, 20, 28, 31, 68, 72, 73, 73),
    (11.931, 7.368, 6.003, 5.543, 5.047, 5.015, 5.062, 5.089, 7.006, 7.755, 17.203, 18.195,
     18.372, 18.430),
)  # fmt: skip
SEED_IMPROVED_PCT: tuple[float, ...] = (
    -11.9, -11.5, -9.1, -15.8, -17.6, 71.0, 77.3, 75.9, 65.0, 59.2, 20.9, 25.8, 24.0, 27.0,
)  # fmt: skip

# The seed table as archived (the mail archive collapsed runs of spaces to one).
SEED_TABLE_TEXT = """\
bulk- Bulk-API-before - Bulk-API with patchset
1 - 42 cycles(tsc) 10.520 ns - 47 cycles(tsc) 11.931 ns - improved -11.9%
2 - 26 cycles(tsc) 6.697 ns - 29 cycles(tsc) 7.368 ns - improved -11.5%
3 - 22 cycles(tsc) 5.589 ns - 24 cycles(tsc) 6.003 ns - improved -9.1%
4 - 19 cycles(tsc) 4.921 ns - 22 cycles(tsc) 5.543 ns - improved -15.8%
8 - 17 cycles(tsc) 4.499 ns - 20 cycles(tsc) 5.047 ns - improved -17.6%
16 - 69 cycles(tsc) 17.424 ns - 20 cycles(tsc) 5.015 ns - improved 71.0%
30 - 88 cycles(tsc) 22.075 ns - 20 cycles(tsc) 5.062 ns - improved 77.3%
32 - 83 cycles(tsc) 20.965 ns - 20 cycles(tsc) 5.089 ns - improved 75.9%
34 - 80 cycles(tsc) 20.039 ns - 28 cycles(tsc) 7.006 ns - improved 65.0%
48 - 76 cycles(tsc) 19.252 ns - 31 cycles(tsc) 7.755 ns - improved 59.2%
64 - 86 cycles(tsc) 21.523 ns - 68 cycles(tsc) 17.203 ns - improved 20.9%
128 - 97 cycles(tsc) 24.444 ns - 72 cycles(tsc) 18.195 ns - improved 25.8%
158 - 96 cycles(tsc) 24.036 ns - 73 cycles(tsc) 18.372 ns - improved 24.0%
250 - 100 cycles(tsc) 25.007 ns - 73 cycles(tsc) 18.430 ns - improved 27.0%
"""

# Patch 3/3's own table (look-ahead): "Bulk API" column == SEED_AFTER, plus the fallback
# (per-object kmem_cache_alloc/free loop) measured on the same kernel.  Cycles only.
PATCH3 = {
    "bulk": tuple(p.cycles for p in SEED_AFTER),
    "fallback": (64, 57, 55, 53, 52, 51, 50, 51, 87, 79, 86, 101, 112, 110),
}
# Patch 2/3 alone (detached freelist without look-ahead).  Cycles.
PATCH2 = {
    "bulk": (47, 45, 23, 21, 18, 19, 26, 25, 25, 28, 62, 68, 69, 70),
    "fallback": (64, 56, 54, 53, 51, 50, 85, 82, 81, 93, 98, 96, 107, 107),
}

# Single-object "kmem fastpath reuse" baseline, cycles: June (bulk API V2) and July (seed).
FASTPATH_REUSE_CYCLES = {"2015-06": 42, "2015-07": 47}

# Merged version (L-merged 6/7, booted slab_nomerge), cycles.  "fallback" and "bulk" are that
# patch's two columns; "before" is the then in-kernel bulk API it was compared with.  Column
# order is an inference from the values (fallback tracks the other fallback columns).
MERGED_6_7 = {
    "fallback": (62, 55, 53, 52, 50, 49, 49, 50, 96, 83, 74, 90, 99, 104),
    "bulk": (49, 30, 23, 20, 18, 17, 18, 18, 23, 21, 20, 27, 30, 37),
    "before": (46, 27, 21, 18, 17, 18, 18, 18, 78, 60, 49, 69, 79, 86),
    "fastpath_reuse_cycles": 47,
    "fastpath_reuse_ns": 11.931,
    "with_merging_bulk_64_250_cycles": (48, 59),  # range quoted for normal slab merging
}

# kfree_bulk (L-kfree; SLUB, CONFIG_MEMCG_KMEM=y but inactive), cycles per bulk size:
# (fallback, kmem_cache_free_bulk, kfree_bulk).
KFREE_BULK: dict[int, tuple[int, int, int]] = {
    1: (61, 53, 57),
    2: (54, 32, 33),
    4: (51, 24, 24),
    16: (49, 20, 20),
    32: (49, 19, 19),
    34: (98, 24, 24),
    64: (75, 20, 20),
    128: (93, 27, 27),
    250: (107, 38, 38),
}
KFREE_BULK_FASTPATH_CYCLES = 46

# slab_bulk_test02, 100 runs each averaged with Rusty Russell's `stats` (L-seed 3/3):
# bulk -> (patch 2 avg cycles, patch 3 avg cycles).
TEST02_PATCH2_VS_PATCH3: dict[int, tuple[float, float]] = {
    16: (22.65, 24.67),
    48: (27.88, 29.42),
    144: (60.31, 62.04),
    512: (60.11, 69.05),
    2048: (68.10, 94.91),
}

# Two untuned runs of one kernel (L-tune): bulk -> (run A, run B) cycles.
VARIANCE_UNTUNED: dict[int, tuple[int, int]] = {8: (49, 19), 48: (24, 35)}


def seed_improved(before: float, after: float) -> float:
    """The seed's "improved" percentage, (before - after) / before * 100 (unrounded)."""
    return (before - after) / before * 100.0
