"""Noise-free companion of ``pyslub bench``: instructions per object under callgrind.

On a shared, noisy machine wall-clock ns move by 2x between runs.  Instruction counts of the
native timed loops do not: this runs the same plan (``pyslub.bench.suite``, native driver) in a
child process under ``valgrind --tool=callgrind``, collecting only inside the ``bench_*``
functions of ``pyslub.bench._native`` and dumping after each call, so every measurement gets
the exact number of instructions its timed loop executed (``Ir``), divided by its invoked count.
Instructions are not time (a locked cmpxchg16b or a cache miss is one instruction), so read them
together with the SLUB counters.

    python -m pyslub.bench.instructions [test01|test02|test03] [--strategies ...] [--loops N]
        [--bulk-sizes ...] [--fragment SLABS[:FREE]] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

from pyslub._layout import FREE_BULK_STRATEGIES

__all__ = ["callgrind_counts", "count_instructions", "main"]

# every timed loop of the native driver is one of these Python-callable wrappers
BENCH_SYMBOL = re.compile(r"__pyx_pw_6pyslub_5bench_7_native_\d+bench_\w+")


def _bench_symbols() -> list[str]:
    """C names of the native bench_* wrappers (callgrind's --dump-after takes no wildcards)."""
    from pyslub.bench import _native

    nm = shutil.which("nm")
    if nm is None:
        raise RuntimeError("nm (binutils) not found")
    out = subprocess.run([nm, _native.__file__], capture_output=True, text=True,
                         check=True).stdout
    names = sorted({w for w in out.split() if BENCH_SYMBOL.fullmatch(w)})
    if not names:
        raise RuntimeError(f"no bench_* symbols in {_native.__file__}")
    return names


def _child(config_json: str) -> None:
    """Run the plan natively; print one JSON line per measurement, in call order."""
    from pyslub.bench import suite

    cfg = json.loads(config_json)
    test = cfg.pop("test")
    config = suite.BenchConfig(**cfg)
    runner = suite.Runner(config, "native", printer=lambda _line: None)
    for m in runner.run(suite.plan(test, config, "native")):
        print(json.dumps({"txt": m.spec.txt, "kind": m.spec.kind, "step": m.spec.step,
                          "strategy": m.spec.strategy, "nmatch": m.spec.nmatch,
                          "invoked_cnt": m.record.invoked_cnt if m.record else 0,
                          "stats_per_object": m.stats_per_object}), flush=True)


def callgrind_counts(child: Sequence[str], *, collect: Sequence[str],
                     dump_after: Sequence[str], env: dict[str, str] | None = None,
                     ) -> tuple[list[dict[str, Any]], list[int]]:
    """Run ``child`` (argv) under callgrind, collecting only inside functions matching
    ``collect`` and dumping after each call of a ``dump_after`` function.

    The child prints one JSON line per timed call; returns those rows and the instruction
    count (``Ir``) of each dump, in call order (one per row)."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise RuntimeError("valgrind not found")
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "cg")
        cmd = [valgrind, "--tool=callgrind", f"--callgrind-out-file={out}",
               *(f"--toggle-collect={c}" for c in collect),
               *(f"--dump-after={s}" for s in dump_after), *child]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"callgrind run failed:\n{proc.stderr[-2000:]}")
        rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
        dumps = sorted((f for f in os.listdir(tmp) if re.fullmatch(r"cg\.\d+", f)),
                       key=lambda f: int(f.rsplit(".", 1)[1]))
        if len(dumps) != len(rows):
            raise RuntimeError(f"{len(dumps)} callgrind dumps for {len(rows)} measurements")
        irs = []
        for name in dumps:
            with open(os.path.join(tmp, name), encoding="utf-8") as f:
                irs.append(next(int(line.split()[1]) for line in f
                                if line.startswith("summary:")))
    return rows, irs


def count_instructions(test: str = "test01", **config: Any) -> list[dict[str, Any]]:
    """Measurements of ``test`` (``suite.BenchConfig`` keywords) with ``Ir`` and
    ``ir_per_object`` added.  Needs valgrind and the compiled module."""
    import pyslub

    if not pyslub.COMPILED:
        raise RuntimeError("instruction counts need the compiled core (not PYSLUB_PURE)")
    config.setdefault("loops", 20_000)
    child = [sys.executable, "-m", "pyslub.bench.instructions", "--child",
             json.dumps({"test": test, **config})]
    rows, irs = callgrind_counts(
        child, collect=["__pyx_pw_6pyslub_5bench_7_native_*bench_*"],
        dump_after=_bench_symbols())
    for row, ir in zip(rows, irs, strict=True):
        row["Ir"] = ir
        row["ir_per_object"] = ir / row["invoked_cnt"] if row["invoked_cnt"] else None
    return rows


def _table(rows: Sequence[dict[str, Any]], test: str) -> Any:
    from pyslub.bench.report import value_table

    table: dict[str, dict[str, float | None]] = {}
    for r in rows:
        if test == "test03":
            key = "worse-case" if not r["nmatch"] else f"N={r['nmatch']}"
        else:
            key = str(r["step"])
        col = r["strategy"] or ("bulk_fallback" if r["kind"] == "test03" else r["kind"])
        table.setdefault(key, {})[col] = r["ir_per_object"]
    return value_table(table, row_header="bulk" if test != "test03" else "variant",
                       title=f"{test}, native loops under callgrind: instructions per object "
                       "(alloc + free)", fmt="{:.1f}")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--child"]:
        _child(argv[1])
        return 0
    p = argparse.ArgumentParser(prog="python -m pyslub.bench.instructions",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("test", nargs="?", default="test01", choices=("test01", "test02", "test03"))
    p.add_argument("--strategies", default="all")
    p.add_argument("--loops", type=int, default=20_000)
    p.add_argument("--bulk-sizes", default=None)
    p.add_argument("--bulksz", type=int, default=None)
    p.add_argument("--fragment", default="0")
    p.add_argument("--keep-cache", action="store_true")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    strategies = (list(FREE_BULK_STRATEGIES) if args.strategies == "all"
                  else args.strategies.replace(",", " ").split())
    slabs, _, free = args.fragment.partition(":")
    config: dict[str, Any] = {"strategies": strategies, "loops": args.loops,
                              "keep_cache": args.keep_cache, "fragment": int(slabs),
                              "fragment_free": int(free) if free else None}
    if args.bulk_sizes:
        config["bulk_sizes"] = [int(b) for b in args.bulk_sizes.split(",")]
    if args.bulksz:
        config["bulksz"] = args.bulksz
    rows = count_instructions(args.test, **config)
    from rich.console import Console

    Console(width=160).print(_table(rows, args.test))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"test": args.test, "config": config, "results": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
