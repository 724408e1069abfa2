"""_layout.py (plain Python) and _layout.pxd (C enums) must declare the same numbers."""

import re
from pathlib import Path

import pyslub._layout as layout

PXD = Path(layout.__file__).with_suffix(".pxd")


def pxd_constants():
    text = PXD.read_text()
    consts = {m[0]: int(m[1]) for m in re.findall(r"^    ([A-Z_][A-Z0-9_]*) = (-?\d+)$", text,
                                                    re.M)}
    for name, value in re.findall(r"#define PYSLUB_([A-Z_]+) \((\d+)LL\)", text):
        consts[name] = int(value)
    return consts


def test_every_pxd_constant_matches_the_python_one():
    consts = pxd_constants()
    assert len(consts) > 60
    for name, value in consts.items():
        assert getattr(layout, name) == value, name


def test_every_python_int_constant_is_in_the_pxd():
    consts = pxd_constants()
    py = {k: v for k, v in vars(layout).items() if k.isupper() and isinstance(v, int)}
    assert set(py) == set(consts)


def test_invariants():
    assert layout.PM_STRIDE == 1 << layout.PM_STRIDE_SHIFT
    assert layout.PM_STRIDE % 2 == 0 and layout.PM_FREELIST % 2 == 0   # 16-byte aligned pair
    assert layout.PM_COUNTERS == layout.PM_FREELIST + 1
    assert layout.C_TID == layout.C_FREELIST + 1 and layout.CPU_STRIDE % 2 == 0
    assert layout.C_STAT + layout.NR_STATS <= layout.CPU_STRIDE
    assert len(layout.STAT_NAMES) == layout.NR_SLUB_STAT_ITEMS
    assert len(layout.STAT_NAMES) + len(layout.EXTRA_STAT_NAMES) == layout.NR_STATS
    assert layout.OBJECTS_MASK == layout.MAX_OBJS_PER_PAGE
    assert layout.FROZEN_BIT == 1 << 31
    assert layout.MAX_ORDER - 1 <= layout.ORDER_MASK
    assert len(layout.FREE_BULK_STRATEGIES) == layout.NR_FREE_BULK
