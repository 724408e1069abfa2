"""Port of prototype-kernel ``time_bench`` (``kernel/lib/time_bench.c``, ``time_bench.h``).

The kernel harness measures a tight loop with a serialised TSC pair and the wall clock, then
reduces both with integer arithmetic (``time_bench_calc_stats``) and prints one ``pr_info`` line.
This module keeps that arithmetic bit for bit (unsigned 64-bit wrap, 32-bit ``invoked_cnt``,
truncating divisions, the "incorrect roundup" 3-digit decimal) so our lines can be diffed against
the published ones.

Clocks are injected: ``TimeBenchClock`` holds the TSC reads for start (kernel: ``CPUID; RDTSC``)
and stop (``RDTSCP; CPUID``) and the wall clock (kernel: ``getnstimeofday`` /
``ktime_get_real_ts64``, here ``time.time_ns``).  Without a compiled core the default "TSC" is
``time.perf_counter_ns`` (a 1 GHz pseudo-TSC: one tick = one ns).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "NANOSEC_PER_SEC",
    "TIME_BENCH_LOOP",
    "TIME_BENCH_PMU",
    "TIME_BENCH_TSC",
    "TIME_BENCH_WALLCLOCK",
    "TimeBenchClock",
    "TimeBenchRecord",
    "measure_tsc_khz",
    "time_bench_calc_stats",
    "time_bench_loop",
    "time_bench_start",
    "time_bench_stop",
    "tsc_to_ns",
]

# Flags of struct time_bench_record (time_bench.h).
TIME_BENCH_LOOP = 1 << 0
TIME_BENCH_TSC = 1 << 1
TIME_BENCH_WALLCLOCK = 1 << 2
TIME_BENCH_PMU = 1 << 3  # "currently broken" in the kernel; never set here

NANOSEC_PER_SEC = 1_000_000_000  # 10^9
_U64 = (1 << 64) - 1
_U32_MAX = (1 << 32) - 1


@dataclass
class TimeBenchClock:
    """The three clock reads a bench function needs (injected, so tests can fake them)."""

    tsc_start: Callable[[], int] = time.perf_counter_ns  # kernel: CPUID; RDTSC
    tsc_stop: Callable[[], int] = time.perf_counter_ns  # kernel: RDTSCP; CPUID
    wallclock_ns: Callable[[], int] = time.time_ns  # kernel: real-time clock in ns


@dataclass
class TimeBenchRecord:
    """``struct time_bench_record`` minus the PMU fields (never enabled upstream).

    Raw inputs are filled by the bench function (``time_bench_start``/``time_bench_stop``);
    the derived fields by ``calc_stats``.  ``txt`` and ``stats_ok`` are Python additions: the
    name printed by ``time_bench_loop`` and whether ``calc_stats`` succeeded.
    """

    loops: int = 0
    step: int = 0
    invoked_cnt: int = 0
    tsc_start: int = 0
    tsc_stop: int = 0
    start_ns: int = 0  # kernel: time_start, from ts_start
    stop_ns: int = 0  # kernel: time_stop, from ts_stop
    flags: int = TIME_BENCH_LOOP | TIME_BENCH_TSC | TIME_BENCH_WALLCLOCK
    version_abi: int = 1
    txt: str = ""
    # derived by calc_stats()
    tsc_interval: int = 0
    tsc_cycles: int = 0
    time_interval: int = 0
    ns_per_call_quotient: int = 0
    ns_per_call_decimal: int = 0
    time_sec: int = 0
    time_sec_remainder: int = 0
    stats_ok: bool = False
    clock: TimeBenchClock = field(default_factory=TimeBenchClock, repr=False, compare=False)

    # -- the two calls a bench function makes around its timed loop ---------------------------
    def start(self) -> None:
        """``time_bench_start``: wall clock first, then the (serialising) TSC read."""
        self.start_ns = self.clock.wallclock_ns()
        self.tsc_start = self.clock.tsc_start()

    def stop(self, invoked_cnt: int) -> None:
        """``time_bench_stop``: TSC first, then the wall clock; store ``invoked_cnt``."""
        self.tsc_stop = self.clock.tsc_stop()
        self.stop_ns = self.clock.wallclock_ns()
        self.invoked_cnt = invoked_cnt

    # -- kernel arithmetic --------------------------------------------------------------------
    def calc_stats(self) -> None:
        """``time_bench_calc_stats``: exact integer reduction of the raw fields.

        Raises ValueError with the kernel's message where the kernel returns false; fields
        computed before that point keep their values (as in the kernel, which still prints).
        """
        self.stats_ok = False
        invoked_cnt = 0
        if self.flags & TIME_BENCH_LOOP:
            if self.invoked_cnt < 1000:
                raise ValueError(f"ERR: need more(>1000) loops({self.invoked_cnt}) for timing")
            if self.invoked_cnt > _U32_MAX:
                # div_u64_rem() can only divide by 32 bits
                raise ValueError(f"ERR: Invoke cnt({self.invoked_cnt}) too big overflow 32bit")
            invoked_cnt = self.invoked_cnt

        if self.flags & TIME_BENCH_TSC:
            self.tsc_interval = (self.tsc_stop - self.tsc_start) & _U64
            if self.tsc_interval == 0:
                raise ValueError("ABORT: timing took ZERO TSC time")
            if self.flags & TIME_BENCH_LOOP:
                self.tsc_cycles = self.tsc_interval // invoked_cnt
            else:
                self.tsc_cycles = self.tsc_interval

        if self.flags & TIME_BENCH_WALLCLOCK:
            self.time_interval = (self.stop_ns - self.start_ns) & _U64
            if self.time_interval == 0:
                raise ValueError("ABORT: timing took ZERO wallclock time")
            self.time_sec, self.time_sec_remainder = divmod(self.time_interval, NANOSEC_PER_SEC)
            if self.flags & TIME_BENCH_LOOP:
                self.ns_per_call_quotient, rem = divmod(self.time_interval, invoked_cnt)
                # "Now get decimals .xxx precision (incorrect roundup)": rem / (cnt / 1000),
                # both truncating; can exceed 999 when cnt is not a multiple of 1000.
                invoked_cnt_precision = invoked_cnt // 1000
                if invoked_cnt_precision > 0:
                    self.ns_per_call_decimal = rem // invoked_cnt_precision
        self.stats_ok = True

    def format_line(self, txt: str | None = None) -> str:
        """The ``pr_info`` line of ``time_bench_loop``, with the ``time_bench: `` prefix."""
        name = self.txt if txt is None else txt
        return (
            f"time_bench: Type:{name} Per elem: {self.tsc_cycles} cycles(tsc) "
            f"{self.ns_per_call_quotient}.{self.ns_per_call_decimal:03d} ns (step:{self.step}) "
            f"- (measurement period time:{self.time_sec}.{self.time_sec_remainder:09d} sec "
            f"time_interval:{self.time_interval}) - (invoke count:{self.invoked_cnt} "
            f"tsc_interval:{self.tsc_interval})"
        )

    # -- conveniences for reports (not in the kernel) -----------------------------------------
    @property
    def ns_per_call(self) -> float:
        """Exact float ns per counted element (the kernel prints the truncated q.ddd)."""
        return self.time_interval / self.invoked_cnt if self.invoked_cnt else float("nan")

    @property
    def ns_text(self) -> str:
        """``<q>.<ddd>`` exactly as the kernel prints it."""
        return f"{self.ns_per_call_quotient}.{self.ns_per_call_decimal:03d}"

    def to_dict(self) -> dict[str, Any]:
        """All data fields (not the clock) as a JSON-ready dict."""
        return {k: v for k, v in self.__dict__.items() if k != "clock"}


def time_bench_start(rec: TimeBenchRecord) -> None:
    """Kernel-named alias of ``rec.start()``."""
    rec.start()


def time_bench_stop(rec: TimeBenchRecord, invoked_cnt: int) -> None:
    """Kernel-named alias of ``rec.stop(invoked_cnt)``."""
    rec.stop(invoked_cnt)


def time_bench_calc_stats(rec: TimeBenchRecord) -> bool:
    """Kernel-shaped wrapper: False (not an exception) when the stats cannot be computed."""
    try:
        rec.calc_stats()
    except ValueError:
        return False
    return True


def time_bench_loop(
    loops: int,
    step: int,
    txt: str,
    func: Callable[[TimeBenchRecord], Any],
    *,
    printer: Callable[[str], Any] = print,
    clock: TimeBenchClock | None = None,
) -> TimeBenchRecord | None:
    """Run ``func(rec)`` (which times its own loop) and print the kernel's result line.

    Returns None where the kernel returns false ("ABORT: function being timed failed");
    otherwise the record.  As in the kernel, a ``calc_stats`` error is printed and the line is
    printed anyway (``rec.stats_ok`` tells them apart).
    """
    rec = TimeBenchRecord(loops=loops, step=step, txt=txt, clock=clock or TimeBenchClock())
    if not func(rec):
        printer("time_bench: ABORT: function being timed failed")
        return None
    if rec.invoked_cnt < loops:
        printer(f"time_bench: WARNING: Invoke count({rec.invoked_cnt}) smaller than loops({loops})")
    try:
        rec.calc_stats()
    except ValueError as err:
        printer(f"time_bench: {err}")
    printer(rec.format_line(txt))
    return rec


def measure_tsc_khz(
    read_tsc: Callable[[], int],
    *,
    duration_ns: int = 50_000_000,
    clock_ns: Callable[[], int] = time.perf_counter_ns,
) -> int:
    """Calibrate ``read_tsc`` against ``clock_ns``: TSC ticks per millisecond (like tsc_khz).

    Each end of the ~``duration_ns`` window brackets the TSC read between two clock reads and
    uses their midpoint, so the call overhead cancels.  Ticks per ns = result / 1e6.
    """
    if duration_ns <= 0:
        raise ValueError("duration_ns must be positive")
    a0 = clock_ns()
    c0 = read_tsc()
    b0 = clock_ns()
    while clock_ns() - a0 < duration_ns:
        pass
    a1 = clock_ns()
    c1 = read_tsc()
    b1 = clock_ns()
    elapsed2 = (a1 + b1) - (a0 + b0)  # twice the elapsed ns between midpoints
    if elapsed2 <= 0:
        raise ValueError("clock did not advance during calibration")
    ticks = (c1 - c0) & _U64
    # khz = ticks / (elapsed2 / 2) ns * 1e6 ns/ms, rounded to nearest
    return (ticks * 2_000_000 * 2 + elapsed2) // (2 * elapsed2)


def tsc_to_ns(ticks: float, tsc_khz: int) -> float:
    """Convert TSC ticks to ns given ``tsc_khz`` from ``measure_tsc_khz``."""
    return ticks * 1_000_000 / tsc_khz
