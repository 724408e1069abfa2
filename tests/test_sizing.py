"""Cache geometry against the kernel's own numbers (spec §7)."""

import pytest

import pyslub
from pyslub.sizing import (
    cache_geometry,
    calculate_alignment,
    calculate_order,
    get_order,
    reciprocal_value,
)


def test_seed_cache_matches_the_sysfs_values_jesper_read():
    # L-tune: /sys/kernel/slab/:t-0000256/{cpu_partial=13, min_partial=5, order=1,
    # objs_per_slab=32} on an 8-cpu machine
    mem = pyslub.Memory(size=8 << 20, nr_cpus=8)
    for object_size in (224, 232):
        info = mem.create_cache(f"c{object_size}", object_size,
                                flags=pyslub.SLAB_HWCACHE_ALIGN).info
        assert (info["size"], info["align"], info["order"], info["objs_per_slab"]) == \
            (256, 64, 1, 32)
        assert (info["min_partial"], info["cpu_partial"], info["offset"]) == (5, 13, 0)


def test_calculate_alignment_halves_the_cache_line_for_small_objects():
    hw = pyslub.SLAB_HWCACHE_ALIGN
    assert [calculate_alignment(hw, 0, s) for s in (8, 16, 17, 32, 33, 64, 232)] == \
        [8, 16, 32, 32, 64, 64, 64]
    assert calculate_alignment(0, 0, 232) == 8          # ARCH_SLAB_MINALIGN
    assert calculate_alignment(0, 4, 10) == 8
    assert calculate_alignment(0, 128, 10) == 128


@pytest.mark.parametrize("size,cpus,order", [
    (256, 8, 1),     # min_objects 20: 20*256 -> order 1, no waste
    (256, 1, 0),     # min_objects 8: fits order 0
    (192, 8, 0),     # 4096 % 192 = 64 <= 4096/16
    (1024, 8, 3),    # 20 objects of 1 KiB: 32 KiB slab
    (8192, 8, 3),    # kmalloc-8k: order 3, 4 objects
    (4096, 2, 3),    # min_objects 12 -> capped by order_objects(3) = 8 -> order 3
])
def test_calculate_order(size, cpus, order):
    assert calculate_order(size, cpus) == order


def test_kmalloc_geometries_on_8_cpus():
    # objperslab / pagesperslab of /proc/slabinfo for kmalloc-* with nr_cpu_ids = 8 (v4.4):
    # min_objects = 4 * (fls(8) + 1) = 20, capped by what an order-3 slab holds
    expect = {8: (0, 512), 96: (0, 42), 192: (0, 21), 512: (2, 32), 1024: (3, 32),
              2048: (3, 16), 4096: (3, 8), 8192: (3, 4)}
    for size, (order, objs) in expect.items():
        g = cache_geometry(size, 0, 0, 8)
        assert (g.order, g.objects) == (order, objs), size


def test_debug_flags_change_the_layout_as_the_kernel_does():
    plain = cache_geometry(232, 0, pyslub.SLAB_HWCACHE_ALIGN, 8)
    poison = cache_geometry(232, 0, pyslub.SLAB_HWCACHE_ALIGN | pyslub.SLAB_POISON, 8)
    assert poison.offset == 232 and poison.inuse == 232 and poison.size == 256
    assert poison.cpu_partial == 0 and plain.cpu_partial == 13
    rz = cache_geometry(232, 0, pyslub.SLAB_RED_ZONE, 8)
    # 232 is word aligned: +8 right red zone, inuse 240, +8 pad word -> 248
    assert (rz.inuse, rz.offset, rz.size) == (240, 0, 248)
    user = cache_geometry(232, 0, pyslub.SLAB_STORE_USER, 8)
    assert user.size == 232 + 2 * 152
    # min_partial = clamp(ilog2(size) / 2, 5, 10)
    assert cache_geometry(8, 0, 0, 8).min_partial == 5
    assert cache_geometry(1 << 21, 0, 0, 8).min_partial == 10


def test_get_order_and_reciprocal():
    assert [get_order(s) for s in (1, 4096, 4097, 8192, 8193)] == [0, 0, 1, 1, 2]
    for size in (8, 24, 96, 192, 232, 256, 1000, 8192, 4 << 20):
        r = reciprocal_value(size)
        for k in range(0, (4 << 22) // size, max(1, (4 << 22) // size // 50)):
            off = k * size
            assert (off * r + (1 << 31)) >> 32 == k
            if off + 8 < size * (k + 1):
                assert ((off + 8) * r + (1 << 31)) >> 32 * size != off + 8


@pytest.mark.parametrize("kwargs,exc", [
    (dict(object_size=4), ValueError), (dict(object_size=5 << 20), ValueError),
    (dict(object_size=64, align=3), ValueError), (dict(object_size=64, flags=0x1), ValueError),
    (dict(object_size="64"), TypeError),
])
def test_bad_geometry_arguments(kwargs, exc):
    args = dict(object_size=64, align=0, flags=0, nr_cpus=8) | kwargs
    with pytest.raises(exc):
        cache_geometry(**args)
