"""The ``pyslub`` command (also ``python -m pyslub``).

Each tool is a subcommand registered by its module's ``register(subparsers)``, which adds
its parser and sets ``func`` (called with the parsed arguments, returns the exit status).
To add one, append its register function to ``TOOLS``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

import pyslub
from pyslub.bench import command as bench_command
from pyslub.tools import replay as _replay
from pyslub.tools import slabinfo as _slabinfo
from pyslub.tools import viz as _viz

__all__ = ["TOOLS", "build_parser", "main"]

TOOLS: list[Callable[[Any], Any]] = [
    bench_command.register,          # pyslub bench
    _slabinfo.register,              # pyslub slabinfo
    _viz.register,                   # pyslub show
    _replay.register,                # pyslub replay
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyslub",
        description="The Linux SLUB slab allocator and its 2015 bulk API, in Python.")
    parser.add_argument("--version", action="version",
                        version=f"pyslub {pyslub.__version__} "
                        f"({'compiled' if pyslub.COMPILED else 'uncompiled'} core)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in TOOLS:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``pyslub`` console script; ``argv`` defaults to the command line."""
    parser = build_parser()
    real = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 0
    args.argv = argv
    args.may_reexec = real             # only a real command line may re-exec itself
    return int(func(args))


if __name__ == "__main__":
    sys.exit(main())
