"""_layout.py (plain Python) is the one source of the layout; _layout.pxd (C enums) is generated
from it.  ``PYSLUB_REGEN_LAYOUT=1 python -m pytest tests/test_layout.py`` rewrites the .pxd."""

import os
from pathlib import Path

import pyslub._layout as layout

PXD = Path(layout.__file__).with_suffix(".pxd")
INT_MAX = 2**31 - 1


def generated_pxd() -> str:
    consts = [(k, v) for k, v in vars(layout).items()
              if k.isupper() and isinstance(v, int) and not isinstance(v, bool)]
    small = [(k, v) for k, v in consts if -INT_MAX <= v <= INT_MAX]
    large = [(k, v) for k, v in consts if not -INT_MAX <= v <= INT_MAX]
    lines = ["# GENERATED from _layout.py by tests/test_layout.py: do not edit "
             "(PYSLUB_REGEN_LAYOUT=1 python -m pytest tests/test_layout.py).",
             "# See _layout.py for what each number means.", "",
             "ctypedef long long i64", "", "cdef enum:"]
    lines += [f"    {k} = {v}" for k, v in small]
    lines += ["", "# values that do not fit a C int enum", "cdef extern from *:", '    """']
    lines += [f"    #define PYSLUB_{k} ((long long){v:#x}ULL)" for k, v in large]
    lines += ['    """']
    lines += [f'    const i64 {k} "PYSLUB_{k}"' for k, _ in large]
    return "\n".join(lines) + "\n"


def test_pxd_is_generated_from_the_python_layout():
    text = generated_pxd()
    if os.environ.get("PYSLUB_REGEN_LAYOUT"):
        PXD.write_text(text)
    assert PXD.read_text() == text, "stale _layout.pxd: regenerate it (see module docstring)"


def test_invariants():
    assert layout.PM_STRIDE == 1 << layout.PM_STRIDE_SHIFT
    assert layout.PM_STRIDE % 2 == 0 and layout.PM_FREELIST % 2 == 0   # 16-byte aligned pair
    assert layout.PM_COUNTERS == layout.PM_FREELIST + 1
    assert layout.C_TID == layout.C_FREELIST + 1 and layout.C_FREELIST % 2 == 0
    assert layout.CPU_STRIDE * 8 >= 128                                 # no false sharing
    assert layout.DESC_STRIDE * 8 % 64 == 0
    assert layout.D_NAME + layout.D_NAME_WORDS <= layout.D_MIN_PARTIAL
    assert layout.B_NR_EMPTY < layout.DESC_STRIDE
    assert len(layout.STAT_NAMES) == layout.NR_SLUB_STAT_ITEMS == 26
    assert len(layout.STAT_NAMES_618) == layout.NR_SLUB_STAT_ITEMS_618 == 43
    assert len(layout.STAT_NAMES_70) == 26
    assert set(layout.STAT_NAMES_70) <= set(layout.STAT_NAMES_618)
    assert set(layout.STAT_NAMES) <= set(layout.STAT_NAMES_618)
    assert (layout.NR_SLUB_STAT_ITEMS_618 + len(layout.EXTRA_STAT_NAMES)) == layout.NR_STATS
    # the internal index of a counter is its position in the 6.18 enum
    assert layout.STAT_NAMES_618.index("free_fastpath") == layout.FREE_FASTPATH
    assert layout.STAT_NAMES_618.index("sheaf_return_slow") == layout.SHEAF_RETURN_SLOW
    assert layout.OBJECTS_MASK == layout.MAX_OBJS_PER_PAGE
    assert layout.FROZEN_BIT == 1 << 31
    assert layout.MAX_ORDER - 1 <= layout.ORDER_MASK
    assert len(layout.FREE_BULK_STRATEGIES) == layout.NR_FREE_BULK
    assert layout.H_CPU_USERS_END <= layout.H_GEN
    assert layout.H_SEAT_GATE + layout.NR_SEATS <= layout.H_GATE_SHARED
    assert layout.H_GATE_SHARED + layout.MAX_PROCS <= layout.H_PROCS
    assert layout.H_PROCS_END <= layout.HDR_WORDS
    assert layout.MAX_PROCS <= 1 << 8          # a slot fits the owner byte
    assert layout.H_SEATS + layout.NR_SEATS <= layout.H_CPU_USERS
    assert layout.H_META_NR_FREE < layout.H_SEATS
    assert layout.H_FREE_AREA + 2 * layout.MAX_ORDER <= layout.H_NR_FREE_PAGES
    assert layout.H_META_FREE_AREA + 2 * layout.MAX_ORDER <= layout.H_META_NR_FREE
    assert layout.SEG_MAGIC.to_bytes(8, "little") == b"PYSLUBv1"
