"""The same sources uncompiled: the rest of the suite again under PYSLUB_PURE=1."""

import os
import subprocess
import sys
from pathlib import Path

import pyslub

HERE = Path(__file__).parent
# every other test file (the bench modules are pure Python already; their end-to-end runs of
# the uncompiled core are in test_bench_drivers.py itself)
SUBSET = sorted(p.name for p in HERE.glob("test_*.py")
                if p.name not in ("test_pure_mode.py", "test_bench_format.py", "test_jhash.py",
                                  "test_objhash.py"))


def test_compiled_flag_matches_the_loaded_modules():
    import pyslub.bulk
    import pyslub.slab
    assert pyslub.COMPILED == (not pyslub.slab.__file__.endswith(".py"))
    assert pyslub.COMPILED == (not pyslub.bulk.__file__.endswith(".py"))


def test_suite_passes_uncompiled():
    if not pyslub.COMPILED:
        return                                   # already running uncompiled
    env = dict(os.environ, PYSLUB_PURE="1")
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow",
         *[str(HERE / f) for f in SUBSET]],
        env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert " passed" in out.stdout      # conftest asserts the modules are uncompiled


def test_pure_flag_loads_the_python_sources():
    code = "import pyslub, pyslub.slab as s; print(pyslub.COMPILED, s.__file__)"
    out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYSLUB_PURE="1"),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    flag, path = out.stdout.split()
    assert flag == "False" and path.endswith("slab.py")
