"""Run a child program in its own process, compiled or uncompiled, and read its JSON report.

For tests whose failure mode may be a crash, a hang or a corrupted interpreter (re-entrancy,
fork, writes into allocator internals): a child that dies takes only itself down.  A child
prints one JSON object on its last line of stdout, with ``"compiled": pyslub.COMPILED``.
``launch_all`` starts several children at once (most of their time is interpreter start-up).
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
import sys
from collections.abc import Iterable

import pytest

MODES = ("compiled", "pure")
TIMEOUT = 240          # seconds per child; a hang (a deadlock, an unbounded walk) fails it

# In the uncompiled rerun of the suite (tests/test_pure_mode.py) the compiled run has already
# launched the children of both modes.
RERUN = os.environ.get("PYSLUB_PURE", "") not in ("", "0")
skip_in_rerun = pytest.mark.skipif(RERUN, reason="the compiled run launches both modes")

Key = tuple[str, tuple[str, ...], str]          # (program, argv, mode)


def launch(key: Key) -> subprocess.CompletedProcess | subprocess.TimeoutExpired:
    code, args, mode = key
    env = dict(os.environ, PYSLUB_PURE="1" if mode == "pure" else "0")
    try:
        return subprocess.run([sys.executable, "-c", code, *args], env=env,
                              capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired as e:
        return e


def launch_all(keys: Iterable[Key], cache: dict) -> dict:
    """Run every key not in ``cache`` yet, two at a time; returns ``cache``."""
    todo = [k for k in dict.fromkeys(keys) if k not in cache]
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as ex:
        for k, res in zip(todo, ex.map(launch, todo), strict=True):
            cache[k] = res
    return cache


def report(proc, key: Key) -> dict:
    """The child's JSON, after asserting it exited normally (no signal, no hang, status 0)."""
    _, args, mode = key
    if isinstance(proc, subprocess.TimeoutExpired):
        out = proc.stdout.decode() if isinstance(proc.stdout, bytes) else (proc.stdout or "")
        pytest.fail(f"child hung for {TIMEOUT}s ({mode}, {args}); stdout tail: {out[-800:]}")
    if proc.returncode < 0:
        pytest.fail(f"child killed by signal {-proc.returncode} ({mode}, {args});\n"
                    f"stdout tail: {proc.stdout[-1500:]}\nstderr tail: {proc.stderr[-1500:]}")
    assert proc.returncode == 0, (
        f"child exited with {proc.returncode} ({mode}, {args});\n"
        f"stdout tail: {proc.stdout[-1500:]}\nstderr tail: {proc.stderr[-3000:]}")
    lines = proc.stdout.strip().splitlines()
    assert lines, f"child printed nothing; stderr: {proc.stderr[-2000:]}"
    out = json.loads(lines[-1])
    if mode == "compiled" and not out["compiled"]:
        pytest.skip("the compiled core is not built")
    assert out["compiled"] == (mode == "compiled")
    return out


def run(key: Key, cache: dict | None = None) -> dict:
    """Launch ``key`` (unless ``cache`` has it) and return its report."""
    cache = {} if cache is None else cache
    if key not in cache:
        cache[key] = launch(key)
    return report(cache[key], key)
