"""Instructions per object of the freelist hardening options, under callgrind (issue 8).

    python benchmarks/hardening_cost.py        # needs valgrind; ~1 minute

Modes: none, CONFIG_SLAB_FREELIST_HARDENED ("hardened": every free pointer load and store XORs
``s->random`` and the byte-swapped address; every store checks the naive double free),
CONFIG_SLAB_FREELIST_RANDOM ("random": new slabs shuffled), the v5.7 free pointer placement
("middle"), and all three, in ``pyslub bench``'s native timed loops (test01, fresh cache,
checks=False as the seed table): fastpath reuse and lookahead-fwd bulk 16 / 64 / 250, per
object.  (Python API loops add ~2000 instructions of interpreter per call, whose run-to-run
spread is larger than these differences.)  ``pyslub bench --hardening LIST`` times the same.
"""

from __future__ import annotations

import shutil
import sys

MODES = [("none", ()), ("hardened", ("hardened",)), ("random", ("random",)),
         ("middle", ("middle",)), ("all three", ("hardened", "random", "middle"))]
BULKS = [16, 64, 250]


def native(mode: tuple[str, ...]) -> dict[str, float]:
    from pyslub.bench.instructions import count_instructions

    rows = count_instructions("test01", hardening=list(mode), strategies=["lookahead-fwd"],
                              bulk_sizes=BULKS, kinds=["fastpath_reuse", "bulk_quick_reuse"])
    out = {}
    for r in rows:
        key = "fastpath" if r["kind"] == "fastpath_reuse" else f"bulk {r['step']}"
        out[key] = r["ir_per_object"]
    return out


def main() -> None:
    if not shutil.which("valgrind"):
        sys.exit("valgrind is needed")
    import pyslub
    if not pyslub.COMPILED:
        sys.exit("needs the compiled core")
    cols = ["fastpath"] + [f"bulk {b}" for b in BULKS]
    print("instructions per object (alloc + free), callgrind")
    print(f"{'mode':10s} " + " ".join(f"{c:>9s}" for c in cols))
    for label, mode in MODES:
        nat = native(mode)
        print(f"{label:10s} " + " ".join(f"{nat[c]:9.1f}" for c in cols))


if __name__ == "__main__":
    main()
