"""Allocation traces as a stream of events: valgrind ``--trace-malloc=yes`` and ftrace kmem.

Both readers are generators over text lines (``.gz`` opened directly by :func:`open_trace`)
and keep only the calls still waiting for their result, so memory stays bounded however long
the trace is.  Each event is one tuple ``(kind, pid, cpu, key, key2, size)``:

* ``(ALLOC, pid, cpu, key, 0, size)`` -- ``malloc`` / ``calloc`` / ``memalign`` / ``new`` /
  ``kmalloc`` / ``kmem_cache_alloc``;
* ``(FREE, pid, cpu, key, 0, 0)`` -- ``free`` / ``delete`` / ``kfree`` / ``kmem_cache_free``;
* ``(REALLOC, pid, cpu, key, key2, size)`` -- ``realloc(key) = key2`` of ``size`` bytes.

``key`` identifies an object for the whole trace: valgrind pointers are per process, so their
key is ``pid << 64 | ptr``; kernel pointers are shared by every task, so an ftrace key is the
pointer.  ``cpu`` is the trace's cpu (-1 when the format has none).

Lines that are not events are counted in :attr:`TraceReader.counts`, never fatal:
``unknown_lines`` (not understood), ``ignored_lines`` (banners, comments, other events),
``null_frees`` (``free(NULL)``), ``failed_allocs`` (result NULL), ``lost_events`` (ftrace
ring-buffer overruns, as the trace reports them).
"""

from __future__ import annotations

import gzip
import io
import os
import re
from collections.abc import Iterable, Iterator
from typing import BinaryIO

ALLOC, FREE, REALLOC = 0, 1, 2
FORMATS = ("valgrind", "ftrace")

Event = tuple[int, int, int, int, int, int]


# =============================================================================================
# Opening a trace
# =============================================================================================

class TraceFile:
    """A text trace, plain or gzip-compressed (detected by its magic bytes), read line by line.

    :meth:`progress` is the fraction of the file on disk consumed so far (compressed bytes for
    a ``.gz``), for a progress bar.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.fspath(path)
        self.size = os.path.getsize(self.path)
        self._raw: BinaryIO = open(self.path, "rb")      # noqa: SIM115 -- closed by close()
        magic = self._raw.read(2)
        self._raw.seek(0)
        self.compressed = magic == b"\x1f\x8b"
        stream: BinaryIO = gzip.GzipFile(fileobj=self._raw) if self.compressed else self._raw
        self._text = io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline="")

    def __iter__(self) -> Iterator[str]:
        return iter(self._text)

    def progress(self) -> int:
        """Bytes of the file on disk read so far."""
        return self._raw.tell()

    def head(self, n: int = 64) -> list[str]:
        """The first ``n`` lines, without consuming the stream (reopens the file)."""
        with open_text(self.path) as f:
            out = []
            for line in f:
                out.append(line)
                if len(out) >= n:
                    break
        return out

    def close(self) -> None:
        self._text.close()
        self._raw.close()

    def __enter__(self) -> TraceFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_text(path: str | os.PathLike) -> io.TextIOBase:
    """Open a text file for reading, transparently decompressing gzip."""
    with open(path, "rb") as f:
        magic = f.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt", encoding="utf-8", errors="replace", newline="")
    return open(path, encoding="utf-8", errors="replace", newline="")  # noqa: SIM115


def detect_format(lines: Iterable[str]) -> str:
    """``"valgrind"`` or ``"ftrace"`` from the first lines of a trace (ValueError if neither)."""
    for line in lines:
        s = line.strip()
        if not s:
            continue
        if _VG_PREFIX.match(s) or _VG_BANNER.match(s):
            return "valgrind"
        if s.startswith("# tracer:") or _FT_LINE.match(line):
            return "ftrace"
    raise ValueError("cannot tell the trace format from its first lines: expected valgrind "
                     "--trace-malloc=yes output ('--PID-- malloc(N) = 0x...') or an ftrace "
                     "kmem trace ('TASK-PID [CPU] ... kmalloc: call_site=...')")


class TraceReader:
    """Base of the two readers: the counters every reader keeps."""

    format = ""

    def __init__(self, lines: Iterable[str]) -> None:
        self.lines = lines
        self.counts = {"lines": 0, "unknown_lines": 0, "ignored_lines": 0, "null_frees": 0,
                       "failed_allocs": 0, "lost_events": 0}
        self.unknown_examples: list[str] = []

    def unknown(self, line: str) -> None:
        self.counts["unknown_lines"] += 1
        if len(self.unknown_examples) < 5:
            self.unknown_examples.append(line.rstrip("\n")[:200])

    def __iter__(self) -> Iterator[Event]:
        raise NotImplementedError


def reader_for(fmt: str, lines: Iterable[str]) -> TraceReader:
    """The reader of format ``fmt`` (one of :data:`FORMATS`) over ``lines``."""
    if fmt == "valgrind":
        return ValgrindReader(lines)
    if fmt == "ftrace":
        return FtraceReader(lines)
    raise ValueError(f"unknown trace format {fmt!r}; choose one of {FORMATS}")


# =============================================================================================
# valgrind --trace-malloc=yes
# =============================================================================================
#
# coregrind/m_replacemalloc/vg_replace_malloc.c prints each call as "--PID-- name(args)" and,
# for calls that return a pointer, " = %p" after the call returned.  Consequences seen in real
# traces (tests/data/):
#   * realloc(NULL, n) prints "realloc(0x0,n)" and then calls malloc, which prints itself:
#     "realloc(0x0,1600)malloc(1600) = 0x4B08A10"; realloc(p, 0) likewise prints the inner
#     "free(p)" and a " = 0" (valgrind <= 3.20; later versions print "realloc(p,0) = 0x0").
#   * with --trace-children=yes several processes share stderr and their pieces interleave:
#     "--A-- malloc(8)--B-- free(0x...)" followed by a line " = 0x..." that completes A's call.
#   * the pointer is printed by %p: "0x4A40040", NULL as "0x0" (glibc prints "(nil)").

_VG_PREFIX = re.compile(r"--(\d+)-- ")
_VG_BANNER = re.compile(r"==\d+==")
_VG_CALL = re.compile(r"\s*([A-Za-z_]\w*)\(([^()]*)\)(?: = (0x[0-9A-Fa-f]+|\d+|\(nil\)))?")
_VG_RESULT = re.compile(r"\s*= (0x[0-9A-Fa-f]+|0|\(nil\))")
_VG_ALIGNED = re.compile(r"(?:al (\d+), size (\d+))|(?:size (\d+), al (\d+))")

_VG_FREE_NAMES = frozenset(("free", "cfree", "__builtin_delete", "__builtin_vec_delete"))
_VG_MEMALIGN_NAMES = frozenset(("memalign", "posix_memalign", "aligned_alloc"))
_VG_IGNORED_NAMES = frozenset(("malloc_usable_size", "malloc_size", "malloc_trim",
                               "mallinfo", "mallinfo2", "malloc_stats"))


def _vg_ptr(text: str) -> int:
    return 0 if text in ("0", "(nil)") else int(text, 16)


def _aligned_size(align: int, size: int) -> int:
    """Bytes to ask kmalloc for so that the object is ``align``-aligned: kmalloc's power-of-two
    classes are naturally aligned, so a request above the 8/16-byte minimum alignment is
    rounded up to a power of two of at least ``align``."""
    if align <= 16:
        return size
    n = max(size, align)
    return 1 << (n - 1).bit_length()


class ValgrindReader(TraceReader):
    """Events of valgrind ``--trace-malloc=yes`` output (memcheck's stderr)."""

    format = "valgrind"

    def __iter__(self) -> Iterator[Event]:
        counts = self.counts
        pending: list[tuple[str, int, int, int]] = []   # (what, pid, key-or-0, size)
        prefix = _VG_PREFIX
        for line in self.lines:
            counts["lines"] += 1
            text = line.rstrip("\r\n")
            if not text.strip():
                counts["ignored_lines"] += 1
                continue
            parts = prefix.split(text)
            # parts = [leading, pid1, seg1, pid2, seg2, ...]
            lead = parts[0]
            ok = True
            if lead.strip():
                if len(parts) == 1 and _VG_BANNER.match(lead.lstrip()):
                    counts["ignored_lines"] += 1
                    continue
                m = _VG_RESULT.fullmatch(lead)
                if m is None or not pending:
                    ok = False
                else:
                    yield from self._resolve(pending.pop(0), _vg_ptr(m.group(1)))
            for i in range(1, len(parts), 2):
                pid = int(parts[i])
                for ev in self._segment(pid, parts[i + 1], pending):
                    if ev is None:
                        ok = False
                        break
                    yield ev
            if not ok:
                self.unknown(line)

    def _resolve(self, what: tuple[str, int, int, int], ptr: int) -> Iterator[Event]:
        kind, pid, old, size = what
        if kind == "zero":                  # realloc(p, 0) after its inner free(p): nothing
            return
        key = (pid << 64) | ptr if ptr else 0
        if kind == "alloc":
            if ptr:
                yield (ALLOC, pid, -1, key, 0, size)
            else:
                self.counts["failed_allocs"] += 1
        else:                               # realloc
            yield from self._realloc(pid, old, key, size)

    def _realloc(self, pid: int, old: int, new: int, size: int) -> Iterator[Event]:
        if old == 0:                        # realloc(NULL, n) (valgrind >= 3.21 form)
            if new:
                yield (ALLOC, pid, -1, new, 0, size)
            else:
                self.counts["failed_allocs"] += 1
        elif new == 0 and size == 0:        # realloc(p, 0) = NULL: frees p
            yield (FREE, pid, -1, old, 0, 0)
        elif new == 0:                      # failed realloc: p stays allocated
            self.counts["failed_allocs"] += 1
        else:
            yield (REALLOC, pid, -1, old, new, size)

    def _segment(self, pid: int, seg: str, pending: list) -> Iterator[Event | None]:
        """Events of one "--PID-- ..." piece; None marks a piece that is not understood."""
        calls = []
        pos = 0
        while pos < len(seg):
            m = _VG_CALL.match(seg, pos)
            if m is None:
                if seg[pos:].strip():
                    yield None
                    return
                break
            calls.append(m)
            pos = m.end()
        if not calls:
            yield None
            return
        base = pid << 64
        last = len(calls) - 1
        for j, m in enumerate(calls):
            name, args, result = m.group(1), m.group(2), m.group(3)
            try:
                if name == "realloc":
                    a, _, b = args.partition(",")
                    old, size = _vg_ptr(a.strip()), int(b)
                    if j < last:            # wrapper: the inner malloc/free prints the event
                        if old and size == 0:
                            pending.append(("zero", pid, 0, 0))
                        continue
                    oldkey = base | old if old else 0
                    if result is None:
                        pending.append(("realloc", pid, oldkey, size))
                    else:
                        ptr = _vg_ptr(result)
                        yield from self._realloc(pid, oldkey, base | ptr if ptr else 0, size)
                    continue
                if name in _VG_FREE_NAMES or name.startswith("_Zd"):
                    ptr = _vg_ptr(args.split(",")[0].strip())
                    if ptr:
                        yield (FREE, pid, -1, base | ptr, 0, 0)
                    else:
                        self.counts["null_frees"] += 1
                    continue
                if name == "calloc":
                    a, _, b = args.partition(",")
                    size = int(a) * int(b)
                elif name in _VG_MEMALIGN_NAMES or (name.startswith("_Zn") and "al " in args):
                    am = _VG_ALIGNED.search(args)
                    if am is None:
                        raise ValueError(args)
                    if am.group(1) is not None:
                        size = _aligned_size(int(am.group(1)), int(am.group(2)))
                    else:
                        size = _aligned_size(int(am.group(4)), int(am.group(3)))
                elif name in ("malloc", "valloc", "pvalloc", "__builtin_new",
                              "__builtin_vec_new") or name.startswith("_Zn"):
                    size = int(args)
                    if name in ("valloc", "pvalloc"):
                        size = _aligned_size(4096, size)
                elif name in _VG_IGNORED_NAMES:
                    continue
                else:
                    yield None
                    return
            except ValueError:
                yield None
                return
            if result is None:
                pending.append(("alloc", pid, 0, size))
            else:
                ptr = _vg_ptr(result)
                if ptr:
                    yield (ALLOC, pid, -1, base | ptr, 0, size)
                else:
                    self.counts["failed_allocs"] += 1


# =============================================================================================
# ftrace kmem events (Documentation/trace/events-kmem.rst, include/trace/events/kmem.h)
# =============================================================================================
#
# One line per event after the "# tracer:" header:
#   "           bash-6169    [001] .....  1154.555857: kmem_cache_alloc: call_site=... ptr=..."
# TASK may contain spaces, dashes and colons ("kworker/u4:1-52", "<...>-6169"); the optional
# "(TGID)" column appears with record-tgid; the flags column is absent without irq-info and in
# trace-cmd report output.  Old layout (v4.4): call_site as a hex address, no node/accounted,
# kmem_cache_free without name=; modern: call_site as %pS, node= and accounted= on the alloc
# events, name= on kmem_cache_alloc (v6.1) and kmem_cache_free (v5.12).

_FT_LINE = re.compile(
    r"^\s*(?P<task>.+?)-(?P<pid>\d+)\s+(?:\(\s*[-\d]+\)\s+)?\[(?P<cpu>\d+)\]\s+"
    r"(?:[^\s:]+\s+)?(?P<ts>\d+\.\d+):\s+(?P<event>\w+):\s*(?P<fields>.*)$")
_FT_LOST = re.compile(r"CPU:?\s*\d+\s*\[LOST (\d+) EVENTS\]")
_FT_ALLOC_EVENTS = frozenset(("kmalloc", "kmalloc_node", "kmem_cache_alloc",
                              "kmem_cache_alloc_node"))
_FT_FREE_EVENTS = frozenset(("kfree", "kmem_cache_free"))


def _ft_fields(text: str) -> dict[str, str]:
    out = {}
    for tok in text.split():
        k, sep, v = tok.partition("=")
        if sep:
            out[k] = v
    return out


def _ft_ptr(text: str) -> int:
    if text in ("(null)", "(nil)", "0"):
        return 0
    return int(text, 16)             # "ffff88003d2e4000", "00000000e70e10e0", "0xffff..."


class FtraceReader(TraceReader):
    """Events of an ftrace kmem trace (``/sys/kernel/tracing/trace`` text, old or modern)."""

    format = "ftrace"

    def __iter__(self) -> Iterator[Event]:
        counts = self.counts
        match = _FT_LINE.match
        for line in self.lines:
            counts["lines"] += 1
            if not line.strip() or line.lstrip().startswith("#"):
                counts["ignored_lines"] += 1
                continue
            m = match(line)
            if m is None:
                lost = _FT_LOST.search(line)
                if lost:
                    counts["lost_events"] += int(lost.group(1))
                    counts["ignored_lines"] += 1
                else:
                    self.unknown(line)
                continue
            event = m.group("event")
            is_alloc = event in _FT_ALLOC_EVENTS
            if not is_alloc and event not in _FT_FREE_EVENTS:
                counts["ignored_lines"] += 1           # another event (mm_page_alloc, ...)
                continue
            f = _ft_fields(m.group("fields"))
            try:
                ptr = _ft_ptr(f["ptr"])
                pid = int(m.group("pid"))
                cpu = int(m.group("cpu"))
                if is_alloc:
                    size = int(f["bytes_req"] if "bytes_req" in f else f["bytes_alloc"])
            except (KeyError, ValueError):
                self.unknown(line)
                continue
            if is_alloc:
                if ptr:
                    yield (ALLOC, pid, cpu, ptr, 0, size)
                else:
                    counts["failed_allocs"] += 1
            elif ptr:
                yield (FREE, pid, cpu, ptr, 0, 0)
            else:
                counts["null_frees"] += 1


__all__ = ["ALLOC", "FREE", "REALLOC", "FORMATS", "Event", "TraceFile", "TraceReader",
           "ValgrindReader", "FtraceReader", "detect_format", "open_text", "reader_for"]
