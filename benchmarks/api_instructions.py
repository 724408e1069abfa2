"""Instructions per iteration of Python loops over the public API, under callgrind.

    python benchmarks/api_instructions.py        # needs valgrind; ~1-2 minutes

Wall-clock time on a shared VM moves by 2x between runs; instruction counts repeat. Each loop
runs twice (N and 2N+N iterations) and the difference is divided by the extra iterations, which
cancels interpreter start-up. Printed: a `list.append` + `list.pop` loop (the floor any Python
API pays), `cache.free(cache.alloc())`, and `alloc_bulk` + `free_bulk` (lookahead) per object.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile

LOOPS = {
    "floor": "l = []; push, pop = l.append, l.pop\n"
             "for _ in range(N):\n    push(0); pop()\n",
    "pair": "import pyslub\nmem = pyslub.Memory(size=64 << 20)\n"
            "c = mem.create_cache('t', 232, flags=pyslub.SLAB_HWCACHE_ALIGN)\n"
            "al, fr = c.alloc, c.free\nfor _ in range(N):\n    fr(al())\n",
    "bulk": "import numpy as np, pyslub\nmem = pyslub.Memory(size=64 << 20)\n"
            "c = mem.create_cache('t', 232, flags=pyslub.SLAB_HWCACHE_ALIGN)\n"
            "p = np.zeros(BULK, dtype=np.uint64)\nab, fb = c.alloc_bulk, c.free_bulk\n"
            "for _ in range(N):\n    ab(p); fb(p, None, 'lookahead')\n",
}


def instructions(code: str) -> int:
    """Instructions of ``python -c code`` under callgrind, with address-space randomisation
    off (setarch -R) and a fixed hash seed: with randomisation one debug_cost pair loop varied
    by +-25 % between runs (1780..2767 instructions); without it by ~+-10 % (2021..2250), the
    debug modes' loops by 1-6 %."""
    prefix = ["setarch", platform.machine(), "-R"] if shutil.which("setarch") else []
    with tempfile.TemporaryDirectory() as d:
        out = subprocess.run(
            prefix + ["valgrind", "--tool=callgrind", f"--callgrind-out-file={d}/cg.out",
                      sys.executable, "-c", code], capture_output=True, text=True, check=True,
            env=dict(os.environ, PYTHONHASHSEED="0"))
    return int(re.search(r"refs:\s+([\d,]+)", out.stderr).group(1).replace(",", ""))


def per_iteration(name: str, n: int, **subs: int) -> float:
    code = LOOPS[name]
    for k, v in subs.items():
        code = code.replace(k, str(v))
    small = instructions(f"N = {n}\n" + code)
    big = instructions(f"N = {3 * n}\n" + code)
    return (big - small) / (2 * n)


def main() -> None:
    if not shutil.which("valgrind"):
        sys.exit("valgrind is needed")
    import pyslub
    print(f"pyslub core: {'compiled' if pyslub.COMPILED else 'uncompiled'}")
    floor = per_iteration("floor", 100_000)
    pair = per_iteration("pair", 100_000)
    print(f"list.append + list.pop        {floor:8.0f} instructions per iteration")
    print(f"cache.free(cache.alloc())     {pair:8.0f} instructions per iteration "
          f"({pair / floor:.2f}x the floor)")
    for bulk in (16, 250):
        n = 2_000_000 // bulk
        per_obj = per_iteration("bulk", n, BULK=bulk) / bulk
        print(f"alloc_bulk + free_bulk, {bulk:3d}   {per_obj:8.1f} instructions per object")


if __name__ == "__main__":
    main()
