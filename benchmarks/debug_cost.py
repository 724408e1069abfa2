"""Instructions per object of each checking mode, under callgrind (issue 8).

    python benchmarks/debug_cost.py        # needs valgrind; ~3 minutes

Modes: ``checks=False`` (the kernel's unchecked paths, what the seed table measures), the
default safe mode (object state bytes), and slab_debug F, Z, P, U and FZPU on top of it (FZPU
also with SLUB 7.0's debug paths).  Two
loops per mode, as benchmarks/api_instructions.py: ``cache.free(cache.alloc())`` and
``alloc_bulk`` + ``free_bulk`` of 64 objects (per object), 64-byte objects.
"""

from __future__ import annotations

import shutil
import sys

from api_instructions import instructions

MODES = [("checks=False", "checks=False"), ("default (checks)", ""),
         ("slab_debug=F", "slab_debug='F'"), ("slab_debug=Z", "slab_debug='Z'"),
         ("slab_debug=P", "slab_debug='P'"), ("slab_debug=U", "slab_debug='U'"),
         ("slab_debug=FZPU", "slab_debug='FZPU'"),
         ("FZPU, slub=7.0", "slab_debug='FZPU', slub='7.0'")]
SETUP = ("import numpy as np, pyslub\nmem = pyslub.Memory(size=64 << 20, nr_cpus=1, ARGS)\n"
         "c = mem.create_cache('t', 64)\n")
PAIR = "al, fr = c.alloc, c.free\nfor _ in range(N):\n    fr(al())\n"
BULK = ("p = np.zeros(64, dtype=np.uint64)\nab, fb = c.alloc_bulk, c.free_bulk\n"
        "for _ in range(N):\n    ab(p); fb(p, None, 'lookahead')\n")


def per_iteration(code: str, n: int) -> float:
    return (instructions(f"N = {3 * n}\n" + code) - instructions(f"N = {n}\n" + code)) / (2 * n)


def main() -> None:
    if not shutil.which("valgrind"):
        sys.exit("valgrind is needed")
    import pyslub
    print(f"pyslub core: {'compiled' if pyslub.COMPILED else 'uncompiled'}")
    print(f"{'mode':18s} {'free(alloc())':>14s} {'bulk 64 / object':>17s}")
    for label, args in MODES:
        setup = SETUP.replace("ARGS", args).replace(", )", ")")
        pair = per_iteration(setup + PAIR, 20_000)
        bulk = per_iteration(setup + BULK, 1_000) / 64
        print(f"{label:18s} {pair:14.0f} {bulk:17.1f}")


if __name__ == "__main__":
    main()
