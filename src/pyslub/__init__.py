"""pyslub: the Linux SLUB slab allocator in Python, compiled, managing real memory.

The algorithms are Python source (Cython pure-Python mode): compiled by the package's build
for speed, and importable uncompiled for reading and debugging -- set ``PYSLUB_PURE=1`` before
the first import to load the ``.py`` modules even when compiled ones exist.
``pyslub.COMPILED`` tells which ones run.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys

if os.environ.get("PYSLUB_PURE", "") not in ("", "0"):

    class _PureSourceFinder(importlib.abc.MetaPathFinder):
        """Load pyslub's submodules from their .py files, never from compiled extensions."""

        def find_spec(self, fullname, path, target=None):
            if not fullname.startswith("pyslub.") or not path:
                return None
            leaf = fullname.rpartition(".")[2]
            for d in path:
                src = os.path.join(d, leaf + ".py")
                if os.path.isfile(src):
                    return importlib.util.spec_from_file_location(fullname, src)
            return None

    if not any(type(f).__name__ == "_PureSourceFinder" for f in sys.meta_path):
        sys.meta_path.insert(0, _PureSourceFinder())

from pyslub import slab as _slab  # noqa: E402
from pyslub._layout import (  # noqa: E402
    EXTRA_STAT_NAMES,
    FREE_BULK_STRATEGIES,
    SLAB_CONSISTENCY_CHECKS,
    SLAB_HWCACHE_ALIGN,
    SLAB_NO_USER_FLAGS,
    SLAB_POISON,
    SLAB_RED_ZONE,
    SLAB_STORE_USER,
    SLAB_TRACE,
    STAT_NAMES,
    STAT_NAMES_70,
    STAT_NAMES_618,
)
from pyslub.cache import Cache  # noqa: E402
from pyslub.errors import SlabError  # noqa: E402
from pyslub.memory import CPU_POLICIES, KMALLOC_SIZES, SLUB_GENERATIONS, ZERO_SIZE_PTR, Memory  # noqa: E402
from pyslub.record import probe, record_frees  # noqa: E402
from pyslub.sizing import SLAB_KMALLOC  # noqa: E402

COMPILED: bool = not _slab.__file__.endswith(".py")
"""True when the compiled core runs, False for the plain-Python modules."""

__version__ = "0.1.0"

__all__ = [
    "COMPILED", "CPU_POLICIES", "Cache", "EXTRA_STAT_NAMES", "FREE_BULK_STRATEGIES",
    "KMALLOC_SIZES", "Memory", "SLAB_CONSISTENCY_CHECKS", "SLAB_HWCACHE_ALIGN", "SLAB_KMALLOC",
    "SLAB_NO_USER_FLAGS", "SLAB_POISON", "SLAB_RED_ZONE", "SLAB_STORE_USER", "SLAB_TRACE",
    "SLUB_GENERATIONS", "STAT_NAMES", "STAT_NAMES_618", "STAT_NAMES_70", "SlabError",
    "ZERO_SIZE_PTR", "probe", "record_frees",
]
