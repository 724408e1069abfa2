"""``pyslub bench test03 --probe``: the seed's perf probes on ``__slab_free()``, per strategy.

The seed's author ran slab_bulk_test03 with perf probes on ``__slab_free()`` to see how much
page bulking the detached freelist achieves: how many objects each call frees.  This runs the
same test03 loop (the driver's, native by default) with ``pyslub.probe(cache)`` attached, for
each strategy and N-match, in a cache prepared as for the timed run (prefilled object hash,
the same fragment state).  The loop runs in chunks small enough for the core's event ring
(one 5-word record per ``__slab_free`` call), which is drained between chunks; the probe is
off during the timed measurements, so they are not disturbed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from pyslub.tools.probe_report import BUCKETS, ProbeSummary, _label, summarize

__all__ = ["PROBE_LOOPS", "probe_lines", "run_probes"]

PROBE_LOOPS = 10_000            # test03 loops per probed (strategy, N-match); timed: 100,000
RING_RECORDS = 10_000           # records per chunk: 5 words each, the ring holds 65,536 words
FALLBACK = "bulk_fallback"      # the my__ per-object loops (the module's FALLBACK_BULK)


def run_probes(config: Any, driver: str, strategies: Sequence[str],
               nmatches: Sequence[int], loops: int = PROBE_LOOPS,
               printer: Callable[[str], Any] = print,
               progress: Callable[[str], Any] | None = None
               ) -> dict[int, dict[str, ProbeSummary]]:
    """Probe test03 under ``config`` (suite.BenchConfig): N-match -> strategy -> summary.
    ``strategies`` are free_bulk generations; ``bulk_fallback`` is added first."""
    import pyslub
    from pyslub.bench import suite
    from pyslub.bench.time_bench import TimeBenchRecord

    cfg = dataclasses.replace(config, repeat=1)
    runner = suite.Runner(cfg, driver, printer=printer)
    bulk = cfg.bulksz_for("test03")
    chunk = max(1, RING_RECORDS // bulk)
    out: dict[int, dict[str, ProbeSummary]] = {}
    try:
        for nmatch in nmatches:
            row: dict[str, ProbeSummary] = {}
            for strategy in [None, *strategies]:
                name = FALLBACK if strategy is None else strategy
                spec = suite.Spec("test03", "test03", "probe", loops, bulk,
                                  cache_name="slab_bulk_test03", strategy=strategy,
                                  nmatch=nmatch)
                state = runner._new_cache(spec)
                cache = state["cache"]
                objs = runner.driver.objs(bulk)
                modulo = nmatch or suite.MODULO_MATCH_DISABLED
                freed = 0
                with pyslub.probe(cache) as pr:
                    left = loops
                    while left > 0:
                        rec = TimeBenchRecord(loops=min(chunk, left), step=bulk)
                        cnt = runner.driver.test03(rec, cache, state["objhash"], bulk, modulo,
                                                   strategy, objs)
                        cache.drain()
                        freed += cnt
                        left -= rec.loops
                        if cnt < rec.loops * bulk:          # the loop aborted
                            break
                if pr.lost:
                    printer(f"probe {name}: {pr.lost} records lost (event ring full)")
                row[name] = summarize(pr, freed)
                runner._destroy(state)
                if progress is not None:
                    progress(f"probe {name} N-match {nmatch}")
            out[nmatch] = row
    finally:
        runner.finish()
    return out


def probe_lines(per_strategy: dict[str, ProbeSummary]) -> list[str]:
    """Fixed-width table (<= 80 columns): % of calls freeing 1, 2, ... objects, the mean, the
    calls per 1,000 objects freed; then the frozen share and the cases taken."""
    from pyslub.bench.summary import text_table

    head = ["strategy", *(_label(lo, hi) for lo, hi in BUCKETS), "mean", "/1k"]
    rows = []
    for name, s in per_strategy.items():
        hist = [f"{100.0 * n / s.calls:.0f}" if s.calls else "-" for _, n in s.histogram()]
        rows.append([name, *hist, f"{s.mean:.2f}", f"{s.calls_per_1000:.1f}"])
    lines = text_table(head, rows, left=(0,), width=80)
    cases = []
    for name, s in per_strategy.items():
        frozen = f"{100.0 * s.frozen_calls / s.calls:.0f}%" if s.calls else "-"
        cases.append([name, f"{s.calls:,}", f"{s.objects:,}", f"{s.freed:,}", frozen,
                      " ".join(f"{k}={v}" for k, v in sorted(s.cases.items()))])
    lines += [""] + text_table(["strategy", "calls", "objs via it", "objs freed", "frozen",
                                "cases"], cases, left=(0, 5), width=200)
    return lines
