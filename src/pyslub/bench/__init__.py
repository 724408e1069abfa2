"""Benchmark harness: ports of prototype-kernel ``time_bench`` and the slab_bulk_test03 object
hash, Linux ``jhash``, the 2015 published numbers, and reports.

Pure Python and independent of the allocator core.  ``report`` imports rich/matplotlib lazily.
"""

from pyslub.bench.jhash import jhash, jhash2, jhash_8bytes
from pyslub.bench.objhash import HASHSZ, ObjHash
from pyslub.bench.report import plot, side_by_side, strategy_table, write_json
from pyslub.bench.seed import BULK_SIZES, MACHINE, SEED_AFTER, SEED_BEFORE
from pyslub.bench.time_bench import (
    TimeBenchClock,
    TimeBenchRecord,
    measure_tsc_khz,
    time_bench_loop,
    time_bench_start,
    time_bench_stop,
)

__all__ = [
    "BULK_SIZES",
    "HASHSZ",
    "MACHINE",
    "SEED_AFTER",
    "SEED_BEFORE",
    "ObjHash",
    "TimeBenchClock",
    "TimeBenchRecord",
    "jhash",
    "jhash2",
    "jhash_8bytes",
    "measure_tsc_khz",
    "plot",
    "side_by_side",
    "strategy_table",
    "time_bench_loop",
    "time_bench_start",
    "time_bench_stop",
    "write_json",
]
