"""``Memory``: one segment (arena + every piece of allocator state), its logical cpus, its
caches, and kmalloc.

This is the object a Python program holds.  It owns the segment, creates caches sized by the
kernel's formulas, binds threads to logical cpus, and offers the kmalloc family on top of the
kernel's kmalloc size classes.

Threads are cpus.  Each thread runs as one logical cpu of each Memory it uses:

* ``with mem.on_cpu(k):`` binds the calling thread only, and nests (the previous binding comes
  back when the block ends);
* a thread that never called ``on_cpu`` gets a cpu by the Memory's ``cpu_policy``:
  ``"thread"`` (the default: on first use, the cpu with the fewest such threads, kept for the
  thread's life, like mimalloc's per-thread heaps) or ``"sched"`` (``sched_getcpu() % nr_cpus``
  at every operation, like the kernel's ``this_cpu``).  ``docs/benchmarks.md`` has the
  measurement behind the default;
* several threads may run as one cpu at once: the core is correct for it (slab.py's header).

fork(): the segment is MAP_PRIVATE, so a child gets a private copy.  It is consistent because
just before the fork no thread is inside the core: GIL-holding operations cannot be (the
forking thread holds the GIL), and the at-fork hook marks a fork pending, then waits for the
GIL-free sections (bulks, native benchmark loops) to end; until the after-fork hooks none can
start, also while later hooks drop the GIL (``cache.fork_begin``; the protocol is in cache.py).
No lock is held across the fork.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import gc
import operator
import os
import secrets
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from pyslub import debug as _debug
from pyslub import recovery as _recovery
from pyslub import slab as _slab
from pyslub._layout import (
    CORE_COMPILED,
    CORE_PURE,
    FREE_BULK_STRATEGIES,
    GEN_V44,
    GEN_V70,
    GEN_V618,
    MAX_ORDER,
    MEM_CHECKS,
    MEM_READY,
    PAGE_SHIFT,
    PAGE_SIZE,
    PG_SLAB,
    PM_FLAGS,
    PM_HEAD,
    PM_SLAB_CACHE,
    SLAB_DEBUG_FLAGS,
    SLAB_POISON,
    SLAB_RED_ZONE,
    SLAB_STORE_USER,
)
from pyslub._prim import alive as _prim_alive
from pyslub.cache import Cache, PrefilledSheaf, address_arg, kfree_bulk
from pyslub.cache import fork_begin as _fork_begin
from pyslub.cache import fork_end as _fork_end
from pyslub.errors import SlabError
from pyslub.hardening import Hardening, cache_secrets, hardening_options, override
from pyslub.page_alloc import Segment
from pyslub.procs import proc_attach, proc_detach, proc_table
from pyslub.shared import SharedCache, SharedPrefilledSheaf
from pyslub.sheaves import init_cpu_sheaves
from pyslub.sizing import SLAB_KMALLOC, cache_geometry, calculate_sheaf_capacity, get_order

DEFAULT_ARENA = 1 << 30          # 1 GiB of address space, backed lazily by the OS
DEFAULT_NR_CPUS = 8              # the seed's machine: nr_cpu_ids = 8 (spec §1.6)
ZERO_SIZE_PTR = 16               # what kmalloc(0) returns; kfree() ignores it
# kmalloc size classes (mm/slab_common.c kmalloc_info[], PAGE_SIZE 4 KiB): 8 .. 8 KiB
KMALLOC_SIZES = (8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192)
KMALLOC_MAX_CACHE_SIZE = KMALLOC_SIZES[-1]
KMALLOC_MAX_SIZE = PAGE_SIZE << (MAX_ORDER - 1)
SLUB_GENERATIONS = {"4.4": GEN_V44, "6.18": GEN_V618, "7.0": GEN_V70}
MAX_SHEAF_CAPACITY = 32767
CPU_POLICIES = ("thread", "sched")


def kmalloc_index(size: int) -> int:
    """Index into KMALLOC_SIZES of the smallest class holding ``size`` bytes (size >= 1)."""
    for i, cls in enumerate(KMALLOC_SIZES):
        if size <= cls:
            return i
    raise ValueError(f"{size} is above the largest kmalloc cache")


def _check_config(size: int, nr_cpus: int, slub: str, cpu_policy: str, max_caches: int) -> None:
    for what, value in (("size", size), ("nr_cpus", nr_cpus), ("max_caches", max_caches)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{what} must be an int, got {type(value).__name__}")
    if slub not in SLUB_GENERATIONS:
        raise ValueError(f"slub {slub!r}: choose one of {tuple(SLUB_GENERATIONS)}")
    if cpu_policy not in CPU_POLICIES:
        raise ValueError(f"cpu_policy {cpu_policy!r}: choose one of {CPU_POLICIES}")
    if not 2 <= max_caches <= 1 << 20:
        raise ValueError(f"max_caches {max_caches} outside 2..{1 << 20}")


class _Binding:
    """One thread's binding to one Memory: its seat, its default cpu, its on_cpu stack.  Lives
    in the Memory's threading.local, so it goes away (seat and cpu given back) with the thread."""

    __slots__ = ("seg", "seat", "owner", "pid", "default", "stack", "exclusive", "registry",
                 "__weakref__")

    def __init__(self, seg: Segment, policy: str) -> None:
        self.seg = seg
        self.owner = threading.get_native_id()
        self.pid = os.getpid()
        self.seat = _slab.acquire_seat(seg, self.owner)
        self.stack: list[int] = []
        self.exclusive: str | None = None      # a Python-level operation in progress
        self.registry: str | None = None       # a cache creation in progress
        if policy == "thread":
            self.default = _slab.least_used_cpu(seg)
            _slab.cpu_users_add(seg, self.default, 1)
        else:
            self.default = -1

    @property
    def cpu(self) -> int:
        return self.stack[-1] if self.stack else self.default

    def __del__(self) -> None:
        if self.pid != os.getpid():     # a forked child's copy: the seat is the parent's
            return
        try:
            _slab.release_seat(self.seg, self.seat, self.owner)
            if self.default >= 0:
                _slab.cpu_users_add(self.seg, self.default, -1)
        except Exception:  # noqa: BLE001 (interpreter shutdown: nothing left to tell)
            pass


class _Guard:
    """Uncompiled pyslub: every public operation of a Memory runs alone under this lock, with
    the calling thread's trace and profile hooks suspended and the cyclic GC paused, so the
    plain-Python core is slow but never wrong.  A call made from inside an operation (a hook,
    a finalizer, a signal handler) is refused with SlabError; an unexpected exception escaping
    the middle of an operation -- a refusal the hook let propagate included -- marks the Memory
    broken (every later call raises).

    The lock is re-entrant and ``depth`` (written only by the thread holding it) says whether
    an operation is in progress: a hook that runs after the lock was taken but before the
    operation began, or after it ended (a signal handler, the profile hook's c_return of
    ``acquire``), runs as an operation of its own instead of waiting for itself."""

    EXPECTED = (SlabError, ValueError, TypeError, MemoryError, IndexError, KeyError)

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.depth = 0
        self.broken: str | None = None
        self.saved: tuple = ()
        self.memory: Callable[[], Memory | None] | None = None   # shared: the file lock's

    def _lock_file(self) -> None:
        """Shared segments: serialise with the other processes (flock on the segment's file,
        which the kernel drops when a process dies).  A process that died inside an operation
        left its pid in H_PURE_OP: the world is stopped (we hold the lock), so recover()."""
        mem = self.memory()
        if mem is None or mem._seg.closed:
            raise SlabError("this shared Memory was closed in this process")
        fcntl.flock(mem._seg.fd, fcntl.LOCK_EX)
        try:
            pid = mem._seg.op_marker()
            if pid and pid != os.getpid() and not _prim_alive(pid):
                mem._recover_locked()
            mem._seg.set_op_marker(os.getpid())
        except BaseException:
            fcntl.flock(mem._seg.fd, fcntl.LOCK_UN)
            raise

    def _unlock_file(self) -> None:
        mem = self.memory()
        if mem is not None and mem._seg.fd >= 0:
            mem._seg.set_op_marker(0)
            fcntl.flock(mem._seg.fd, fcntl.LOCK_UN)

    def __enter__(self) -> None:
        self.lock.acquire()
        nested = self.depth
        saved = None
        try:
            if nested:
                # pyslub's own calls nest (kmalloc -> cache.alloc); anything else is a hook, a
                # finalizer or a signal handler running in the middle of an operation
                caller = sys._getframe(2).f_globals.get("__name__", "")
                if not caller.startswith("pyslub"):
                    err = SlabError("re-entrant call into pyslub (from a hook, finalizer or "
                                    "signal handler running inside an operation): refused")
                    err.pyslub_refused = True   # type: ignore[attr-defined]
                    raise err
                self.depth += 1
                return
            self.depth = 1
            if self.broken:
                raise SlabError(f"this Memory is unusable: an operation was interrupted "
                                f"({self.broken})")
            saved = (sys.gettrace(), sys.getprofile(), gc.isenabled())
            sys.settrace(None)
            sys.setprofile(None)
            gc.disable()
            self.saved = saved
            if self.memory is not None:
                self._lock_file()
        except BaseException:
            if not nested:
                self.depth = 0
                if saved is not None:
                    self._restore(saved)
            self.lock.release()
            raise

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is not None and (getattr(exc, "pyslub_refused", False)
                                or not isinstance(exc, self.EXPECTED)):
            self.broken = f"{exc_type.__name__}: {exc}"
        if self.depth > 1:
            self.depth -= 1
            self.lock.release()
            return
        saved = self.saved
        self.depth = 0              # from here a hook that calls in runs an operation of its own
        try:
            if self.memory is not None:
                self._unlock_file()
            self._restore(saved)
        finally:
            self.lock.release()

    @staticmethod
    def _restore(saved: tuple) -> None:
        trace, profile, gc_on = saved
        if gc_on:
            gc.enable()
        sys.setprofile(profile)
        sys.settrace(trace)


class Memory:
    """An arena of ``size`` bytes with ``nr_cpus`` logical cpus.

    ``checks`` (default True): safe mode -- every free of an object that is not allocated
    (double free, never handed out, duplicate in one array) and every freelist that leads to an
    allocated object is refused with SlabError before anything changes.  ``checks=False`` runs
    the kernel's exact unchecked paths (what the seed's benchmark measures).
    ``slab_debug``: the kernel's ``slab_debug=`` option for every cache of this Memory, e.g.
    ``"FZ;U,kmalloc-*"`` (``pyslub.debug``; default: the ``PYSLUB_SLAB_DEBUG`` environment
    variable, else nothing).
    ``slub``: the SLUB generation of new caches, "4.4" (the seed's allocator), "6.18" (opt-in
    sheaves) or "7.0" (sheaves for every cache).
    ``freelist_hardened``, ``freelist_random``: CONFIG_SLAB_FREELIST_HARDENED / _RANDOM for
    every cache (encoded free pointers with the naive double-free check / shuffled new slabs);
    ``freeptr="middle"``: v5.7's free pointer in the middle of the object; ``random_seed``: an
    int makes each cache's secrets and shuffles the same in every run (pyslub.hardening).
    ``create_cache`` can override the first three per cache.

    >>> mem = Memory(size=64 << 20, nr_cpus=2)
    >>> cache = mem.create_cache("packets", 232, flags=SLAB_HWCACHE_ALIGN)
    >>> addr = cache.alloc(); cache.view(addr)[:4] = b"abcd"; cache.free(addr)
    """

    def __init__(self, size: int = DEFAULT_ARENA, nr_cpus: int = DEFAULT_NR_CPUS, *,
                 checks: bool = True, slub: str = "4.4", cpu_policy: str = "thread",
                 max_caches: int = 65536, slab_debug: str | None = None,
                 freelist_hardened: bool = False, freelist_random: bool = False,
                 freeptr: str = "start", random_seed: int | None = None) -> None:
        _check_config(size, nr_cpus, slub, cpu_policy, max_caches)
        debug_rules = _debug_rules(slab_debug)          # parsed first: nothing made yet
        hardening = hardening_options(freelist_hardened, freelist_random, freeptr, random_seed)
        seg = Segment.private(size, nr_cpus, max_caches)
        self._slab_debug = debug_rules
        self._hardening = hardening
        if checks:
            seg.set_flags(MEM_CHECKS)
        self._setup(seg, bool(checks), slub, cpu_policy)

    def _setup(self, seg: Segment, checks: bool, slub: str, cpu_policy: str) -> None:
        self._seg = seg
        self.nr_cpus = seg.nr_cpus
        self.checks = checks
        self.slub = slub
        self.cpu_policy = cpu_policy
        self._gen = SLUB_GENERATIONS[slub]
        self._local = threading.local()
        self._caches: list[Cache | None] = [None]     # index = page.slab_cache id
        self._kmalloc: list[Cache] = []
        self._lock = threading.RLock()                # Python-side registry (this process;
                                                      # re-entrant: see _sync_caches)
        self._kmalloc_lock = threading.Lock()
        self._destroyed_reports: dict[int, list[str]] = {}    # cache id -> its last reports
        self._bind_lock = threading.Lock()
        self._guard = _Guard() if not _slab_compiled() else None
        self._cache_class = SharedCache if seg.shared else Cache
        self._creator = False
        if seg.shared:
            if self._guard is not None:
                self._guard.memory = weakref.ref(self)
            proc_attach(seg)
        _LIVE.add(self)

    # ---- shared arenas -----------------------------------------------------------------------

    @classmethod
    def create_shared(cls, name: str | None = None, size: int = DEFAULT_ARENA,
                      nr_cpus: int = DEFAULT_NR_CPUS, *, checks: bool = True,
                      slub: str = "4.4", cpu_policy: str = "thread",
                      max_caches: int = 1024, slab_debug: str | None = None,
                      freelist_hardened: bool = False, freelist_random: bool = False,
                      freeptr: str = "start", random_seed: int | None = None) -> Memory:
        """A new arena in the POSIX shared memory object ``name`` (``/dev/shm/<name>``; a
        random ``pyslub_*`` name when None), which other processes map with
        ``Memory.attach(name)``.  Every piece of allocator state lives in it; the processes
        run as logical cpus like threads (the default policy spreads threads of all of them
        over the cpus).  FileExistsError if the name is taken.  The creator's ``with`` block
        unlinks the name when it ends (attached processes keep their mappings)."""
        _check_config(size, nr_cpus, slub, cpu_policy, max_caches)
        debug_rules = _debug_rules(slab_debug)
        hardening = hardening_options(freelist_hardened, freelist_random, freeptr, random_seed)
        if name is None:
            name = "pyslub_" + secrets.token_hex(6)
        seg = Segment.create_shared(name, size, nr_cpus, max_caches)
        try:
            seg.set_flags(MEM_CHECKS if checks else 0)
            seg.set_config(SLUB_GENERATIONS[slub], CORE_COMPILED if _slab_compiled()
                           else CORE_PURE)
            mem = cls.__new__(cls)
            mem._slab_debug = debug_rules
            mem._hardening = hardening
            mem._setup(seg, bool(checks), slub, cpu_policy)
            mem._creator = True
            mem._kmalloc_caches()                    # every process sees the same ones
            seg.set_flags(MEM_READY)
        except BaseException:
            seg.close()
            Segment.unlink(name)
            raise
        return mem

    @classmethod
    def attach(cls, name: str, *, cpu_policy: str = "thread", timeout: float = 5.0,
               slab_debug: str | None = None, freelist_hardened: bool = False,
               freelist_random: bool = False, freeptr: str = "start",
               random_seed: int | None = None) -> Memory:
        """Map the shared arena ``name`` made by ``create_shared`` (in any process).  Its
        size, cpus, generation and checks come from its header; ``slab_debug`` and the
        hardening options apply to the caches this process creates (each cache's own are in
        the arena).  FileNotFoundError when there
        is none; ValueError when it is not a pyslub arena, has another layout version, was
        made by the other core (compiled vs uncompiled) or is still being created after
        ``timeout`` seconds."""
        if cpu_policy not in CPU_POLICIES:
            raise ValueError(f"cpu_policy {cpu_policy!r}: choose one of {CPU_POLICIES}")
        debug_rules = _debug_rules(slab_debug)         # for the caches this process creates
        hardening = hardening_options(freelist_hardened, freelist_random, freeptr, random_seed)
        seg = Segment.attach(name)
        try:
            gen, core = seg.config()
            if core != (CORE_COMPILED if _slab_compiled() else CORE_PURE):
                raise ValueError(f"shared arena {name!r} was created by the "
                                 f"{'compiled' if core == CORE_COMPILED else 'uncompiled'} "
                                 "core; one arena cannot mix the two")
            deadline = time.monotonic() + timeout
            while not seg.flags() & MEM_READY:
                if time.monotonic() > deadline:
                    raise ValueError(f"shared arena {name!r} is still being created")
                time.sleep(0.001)
            slub = next(k for k, v in SLUB_GENERATIONS.items() if v == gen)
            mem = cls.__new__(cls)
            mem._slab_debug = debug_rules
            mem._hardening = hardening
            mem._setup(seg, bool(seg.flags() & MEM_CHECKS), slub, cpu_policy)
        except BaseException:
            seg.close()
            raise
        return mem

    @property
    def name(self) -> str | None:
        """The shared arena's name (None: a private Memory)."""
        return self._seg.name

    @property
    def arena_bytes(self) -> int:
        """Size of the arena (object addresses are offsets 0 .. arena_bytes)."""
        return int(self._seg.arena_bytes)

    @property
    def shared(self) -> bool:
        return bool(self._seg.shared)

    def close(self) -> None:
        """This process is done with the shared arena: its process slot is closed (objects it
        still holds stay allocated and are not orphans), every later operation through this
        Memory or its caches raises SlabError.  The mapping goes when the last reference to
        the Memory and its caches goes.  Idempotent; nothing to do for a private Memory."""
        if not self._seg.shared or self._seg.closed:
            return
        if self._seg.pslot:
            proc_detach(self._seg, self._seg.pslot)
        _slab.clear_binding()
        self._seg.close()
        _LIVE.discard(self)

    def unlink(self) -> None:
        """Remove the arena's name (as ``SharedMemory.unlink``): no process can attach any
        more; mappings stay valid until closed."""
        if not self._seg.shared:
            raise SlabError("a private Memory has no name to unlink")
        Segment.unlink(self._seg.name)

    def __enter__(self) -> Memory:
        return self

    def __exit__(self, *exc: object) -> None:
        creator = self._creator and self._seg.shared and not self._seg.closed
        self.close()
        if creator:
            with contextlib.suppress(FileNotFoundError):
                Segment.unlink(self._seg.name)

    def cache(self, name: str) -> Cache:
        """The live cache called ``name`` (created by this or any process of a shared
        arena); KeyError when there is none."""
        for c in self._views():
            if c.name == name:
                return c
        raise KeyError(f"no live cache named {name!r}")

    def processes(self) -> list[dict]:
        """The process table of a shared arena: slot, pid, state (attached, closed, dead)."""
        self._need_shared("processes()")
        return proc_table(self._seg)

    @property
    def damaged(self) -> int:
        """Locks and cpu claims survivors took over from dead processes since the last
        ``recover()`` (each repaired, with objects or slabs left out of circulation)."""
        return self._seg.damaged()

    def orphans(self) -> dict[int, np.ndarray]:
        """Live objects (and large kmalloc blocks) allocated by processes that died:
        ``{pid: uint64 addresses}``.  Free them (any process may) or keep using them."""
        self._need_shared("orphans()")
        return _recovery.orphans(self._seg, self._views())

    def recover(self) -> dict:
        """After a process died inside an operation: stop every process's operations, rebuild
        every cache from the object state bytes and the page allocators from the page
        records (pyslub.recovery), start again.  Returns what it found: dead pids, objects
        and pages returned to circulation, orphans.  Needs checks=True."""
        self._need_shared("recover()")
        return self._recover_locked()

    def _recover_locked(self) -> dict:
        return _recovery.recover(self._seg, self._views())

    def _need_shared(self, what: str) -> None:
        if not self._seg.shared:
            raise SlabError(f"{what}: this Memory is private (create_shared / attach)")
        if self._seg.closed:
            raise SlabError("this shared Memory was closed in this process")

    def _views(self) -> list[Cache]:
        """Views of every live descriptor (caches other processes created appear here)."""
        self._sync_caches()
        return [c for c in self._caches if c is not None and not c.dead]

    def _sync_caches(self) -> None:
        """Views of descriptors made by other processes.  A finalizer or signal handler that
        runs while this thread fills the list may run it too (the lock is re-entrant, and
        filling the same ids twice is harmless)."""
        n = self._seg.nr_caches()
        if n <= len(self._caches) and not self._seg.shared:
            return
        with self._lock:
            for cid in range(1, n):
                if cid < len(self._caches) and self._caches[cid] is not None:
                    continue
                if not self._seg.descriptor_live(cid):
                    continue
                cache = self._cache_class(self._seg, cid, self._bind)
                while len(self._caches) <= cid:
                    self._caches.append(None)
                self._caches[cid] = cache

    # ---- cpus --------------------------------------------------------------------------------

    def _binding(self) -> _Binding:
        b = self._local.__dict__.get("b")
        if b is None:
            with self._bind_lock:                      # "least used cpu, then count it": one
                b = self._local.b = _Binding(self._seg, self.cpu_policy)   # step per thread
        return b

    def _bind(self) -> None:
        """The core's callback on a TLS miss: cache this thread's binding for this Memory."""
        b = self._binding()
        if b.exclusive:
            raise SlabError(f"re-entrant call into pyslub during {b.exclusive} (from a hook, "
                            "finalizer or signal handler running inside it): refused")
        _slab.set_binding(self._seg, b.cpu, b.seat)

    @contextlib.contextmanager
    def _exclusive(self, what: str) -> Iterator[None]:
        """A multi-step operation written in Python (validate()): while it runs, any call of
        the same thread into this Memory's core -- a gc callback, a finalizer, a profile hook
        or a signal handler -- is refused (the thread's cached binding is dropped, so the call
        reaches _bind(), which raises)."""
        b = self._binding()
        if b.exclusive:
            raise SlabError(f"re-entrant call into pyslub during {b.exclusive}: refused")
        b.exclusive = what
        _slab.clear_binding()
        try:
            yield
        finally:
            b.exclusive = None

    @contextlib.contextmanager
    def _registry(self, what: str) -> Iterator[None]:
        """Cache creation, which runs Python code under this Memory's locks: a hook of the same
        thread (finalizer, signal handler) that creates a cache meanwhile gets SlabError.
        Operations on existing caches stay allowed (they take none of these locks)."""
        b = self._binding()
        if b.registry:
            raise SlabError(f"re-entrant call into pyslub during {b.registry} (from a hook, "
                            "finalizer or signal handler running inside it): refused")
        b.registry = what
        try:
            yield
        finally:
            b.registry = None

    @property
    def cpu(self) -> int:
        """The logical cpu the calling thread runs on."""
        cpu = self._binding().cpu
        if cpu < 0:
            return _sched_cpu() % self.nr_cpus
        return cpu

    @contextlib.contextmanager
    def on_cpu(self, cpu: int) -> Iterator[None]:
        """Run the block on logical cpu ``cpu`` (its kmem_cache_cpu state is used).  Binds the
        calling thread only; nested blocks restore the outer binding."""
        if not isinstance(cpu, int) or isinstance(cpu, bool) or not (0 <= cpu < self.nr_cpus):
            raise ValueError(f"cpu {cpu!r} outside 0..{self.nr_cpus - 1}")
        b = self._binding()
        b.stack.append(cpu)
        _slab.set_binding(self._seg, cpu, b.seat)
        try:
            yield
        finally:
            b.stack.pop()
            _slab.set_binding(self._seg, b.cpu, b.seat)

    # ---- caches ------------------------------------------------------------------------------

    def create_cache(self, name: str, object_size: int, align: int = 0, flags: int = 0, *,
                     sheaf_capacity: int | None = None, freelist_hardened: bool | None = None,
                     freelist_random: bool | None = None,
                     freeptr: str | None = None) -> Cache:
        """kmem_cache_create(): a cache sized by the kernel's formulas for ``nr_cpus``.
        The hardening options (None: the Memory's) are described on Memory."""
        hardening = override(self._hardening, freelist_hardened, freelist_random, freeptr)
        if not isinstance(name, str) or not name:
            raise ValueError("cache name must be a non-empty str")
        if name.startswith("kmalloc-"):
            raise ValueError(f"cache name {name!r}: kmalloc-* names belong to the kmalloc caches")
        if sheaf_capacity is not None:
            if (not isinstance(sheaf_capacity, int) or isinstance(sheaf_capacity, bool)
                    or not 1 <= sheaf_capacity <= MAX_SHEAF_CAPACITY):
                raise ValueError(f"sheaf_capacity must be an int in 1..{MAX_SHEAF_CAPACITY}, "
                                 f"got {sheaf_capacity!r}")
            if self._gen == GEN_V44:
                raise ValueError("sheaf_capacity: percpu sheaves came with SLUB 6.18; create "
                                 "the Memory with slub='6.18' (opt-in) or '7.0'")
        return self._create_cache(name, object_size, align, flags, -1, sheaf_capacity or 0,
                                  hardening)

    def _create_cache(self, name: str, object_size: int, align: int, flags: int,
                      kmalloc_index: int, sheaf_capacity: int = 0,
                      hardening: Hardening | None = None) -> Cache:
        """create_cache() and the kmalloc caches' creation: Python code under the registry
        lock, so a hook of the same thread creating a cache meanwhile is refused (_registry),
        never left waiting for a lock its own thread holds."""
        hardening = hardening or self._hardening
        if kmalloc_index >= 0:                     # _kmalloc_caches() made it exclusive
            return self._create_cache_locked(name, object_size, align, flags, kmalloc_index,
                                             sheaf_capacity, hardening)
        with self._registry("create_cache()"):
            return self._create_cache_locked(name, object_size, align, flags, kmalloc_index,
                                             sheaf_capacity, hardening)

    def _create_cache_locked(self, name: str, object_size: int, align: int, flags: int,
                             kmalloc_index: int, sheaf_capacity: int,
                             hardening: Hardening) -> Cache:
        if isinstance(flags, int) and isinstance(object_size, int):
            flags = _debug.cache_flags(self._slab_debug, name, object_size, align, flags,
                                       self.nr_cpus)
        geometry = cache_geometry(object_size, align, flags, self.nr_cpus, hardening.flags)
        debug = bool(geometry.flags & SLAB_DEBUG_FLAGS)
        if self._gen == GEN_V70:                   # every cache; cpu partial lists are gone
            cap = calculate_sheaf_capacity(geometry.size, geometry.flags, sheaf_capacity)
            geometry = dataclasses.replace(geometry, cpu_partial=0)
        else:                                      # 6.18: opt-in; never for debug caches
            cap = 0 if debug else sheaf_capacity
        with self._lock:
            cid = _slab.create_descriptor(self._seg, name, geometry, self._gen, cap,
                                          kmalloc_index,
                                          cache_secrets(hardening.random_seed, name))
            cache = self._cache_class(self._seg, cid, self._bind)
            if cap:
                init_cpu_sheaves(cache)
            if self._gen == GEN_V70:
                cache.free_bulk_strategy = "swap"  # __kmem_cache_free_bulk's (v5.19+)
            while len(self._caches) <= cid:
                self._caches.append(None)
            self._caches[cid] = cache
        return cache

    def destroy_cache(self, cache: Cache) -> None:
        """kmem_cache_destroy() (same as ``cache.destroy()``), then forget the cache."""
        if not isinstance(cache, Cache):
            raise TypeError(f"expected a pyslub Cache, got {type(cache).__name__}")
        if cache.id >= len(self._caches) or self._caches[cache.id] is not cache:
            raise SlabError(f"cache {cache.name!r} does not belong to this Memory")
        if cache in self._kmalloc:
            raise SlabError(f"cache {cache.name!r} is a kmalloc cache")
        cache.destroy()
        cache._after()
        if cache.reports:
            self._destroyed_reports[cache.id] = list(cache.reports)
        self._caches[cache.id] = None

    @property
    def reports(self) -> list[str]:
        """Every report record of this Memory's caches (``cache.reports``: mostly
        ``pyslub.debug.Report``), cache by cache in the order the caches were created (their
        ids; a cache removed with ``destroy_cache`` keeps its place), each cache's records in
        the order they were made.  (No order across caches: each cache's records come from its
        own event ring.)  In a shared arena: the records of this process's operations."""
        out: list[str] = []
        for cid, cache in enumerate(self._caches):
            if cache is not None:
                cache._after()                         # what the core left in the ring
                out.extend(cache.reports)
            elif cid in self._destroyed_reports:
                out.extend(self._destroyed_reports[cid])
        return out

    @property
    def caches(self) -> dict[str, Cache]:
        """Live caches by name (kmalloc caches included once kmalloc was used; in a shared
        arena, the caches every process created)."""
        return {c.name: c for c in self._views()}

    def free_pages(self) -> int:
        """Pages free in the page allocator."""
        return self._seg.nr_free_pages

    def inject_page_failures(self, after: int) -> None:
        """Tests: make arena page allocations fail after ``after`` more successes (-1: off)."""
        if not isinstance(after, int) or after < -1:
            raise ValueError(f"after must be an int >= -1, got {after!r}")
        self._seg.inject_failures(after)

    # ---- kmalloc -----------------------------------------------------------------------------

    def _kmalloc_caches(self) -> list[Cache]:
        if not self._kmalloc and self._seg.shared and not self._creator:
            views = {c.name: c for c in self._views()}      # made by create_shared()
            self._kmalloc = [views[_kmalloc_name(sz)] for sz in KMALLOC_SIZES]
        if not self._kmalloc:                          # create_kmalloc_caches(), once: also
            with (self._registry("the kmalloc caches' creation"),    # (a hook: refused)
                  self._kmalloc_lock):                 # when threads race for the first use
                if not self._kmalloc:
                    self._kmalloc = [
                        self._create_cache(_kmalloc_name(sz), sz, 0, SLAB_KMALLOC, i)
                        for i, sz in enumerate(KMALLOC_SIZES)]
        return self._kmalloc

    def kmalloc(self, size: int) -> int:
        """kmalloc(): an object of at least ``size`` bytes; above 8 KiB whole pages."""
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ValueError(f"kmalloc size must be a non-negative int, got {size!r}")
        if size == 0:
            return ZERO_SIZE_PTR
        if size > KMALLOC_MAX_CACHE_SIZE:
            if size > KMALLOC_MAX_SIZE:
                raise ValueError(f"kmalloc size {size} above KMALLOC_MAX_SIZE "
                                 f"({KMALLOC_MAX_SIZE})")
            order = get_order(size)                    # kmalloc_large()
            if self._seg.shared:
                page = self._kmalloc_caches()[0]._kmalloc_large(order)
            else:
                page = self._seg.alloc_large(order)
            if page == 0:
                raise MemoryError(f"kmalloc({size}): no free block of order {order}")
            return page << PAGE_SHIFT
        return self._kmalloc_caches()[kmalloc_index(size)].kmalloc(size)

    def _large_order(self, addr: int) -> int:
        """Order of the large kmalloc block starting at ``addr``, or -1."""
        return self._seg.large_order(addr)

    def cache_of(self, addr: int) -> Cache:
        """The cache owning the slab object ``addr`` (virt_to_head_page()->slab_cache)."""
        addr = address_arg(addr)
        if not (0 < addr < self._seg.arena_bytes):
            raise SlabError(f"address {addr!r} is outside the arena")
        head = self._seg.page_word(addr >> PAGE_SHIFT, PM_HEAD)
        if head == 0 or not (self._seg.page_word(head, PM_FLAGS) & PG_SLAB):
            raise SlabError(f"address {addr:#x} is not on a slab page")
        cid = self._seg.page_word(head, PM_SLAB_CACHE)
        if self._seg.shared and (cid >= len(self._caches) or self._caches[cid] is None):
            self._sync_caches()                        # made by another process
        cache = self._caches[cid] if cid < len(self._caches) else None
        if cache is None:
            raise SlabError(f"address {addr:#x} is on a slab of a destroyed cache")
        return cache

    def kfree(self, addr: int) -> None:
        """kfree(): free a kmalloc'ed (or any slab) object; NULL and ZERO_SIZE_PTR are ignored."""
        addr = address_arg(addr)
        if addr in (0, ZERO_SIZE_PTR):
            return
        if self._large_order(addr) >= 0:
            if self._seg.shared:
                freed = self._kmalloc_caches()[0]._kfree_large(addr)
            else:
                freed = self._seg.kfree_large(addr)
            if not freed:
                raise SlabError(f"kfree: large block {addr:#x} is not allocated")
            return
        self.cache_of(addr).free(addr)

    def ksize(self, addr: int) -> int:
        """ksize(): bytes usable at ``addr`` (the slot, or the whole large block)."""
        addr = address_arg(addr)
        order = self._large_order(addr)
        if order >= 0:
            return PAGE_SIZE << order
        cache = self.cache_of(addr)
        cache.slab_of(addr)                            # SlabError if not an object boundary
        if cache.flags & (SLAB_RED_ZONE | SLAB_POISON):
            return cache.object_size
        if cache.flags & SLAB_STORE_USER:
            return cache.inuse
        return cache.size

    def kfree_bulk(self, p: np.ndarray, size: int | None = None) -> None:
        """kfree_bulk(): kmem_cache_free_bulk(NULL, ...) -- each list's cache taken from its
        slab, large allocations freed on their own (v4.6 lookahead, NULLs skipped).  Every entry
        is checked first: SlabError names the first bad one, and nothing is freed."""
        if self._seg.shared:
            self._sync_caches()
            kc = self._kmalloc_caches()[0]
            kc._kfree_bulk(kfree_bulk, self._seg, self._caches, p, size)
            return
        any_cache = next((c for c in self._caches if c is not None), None)
        if any_cache is None:
            any_cache = self._kmalloc_caches()[0]
        kfree_bulk(self._seg, self._caches, any_cache, p, size)

    def view(self, addr: int) -> memoryview:
        """A writable memoryview of any live allocation: a slab object (``object_size``
        bytes) or a large kmalloc block (all its pages)."""
        addr = address_arg(addr)
        order = self._large_order(addr)
        if order >= 0:
            if self.checks and not self._seg.is_live(addr):
                raise SlabError(f"no allocation at {addr:#x}")
            return self._seg.raw(addr, PAGE_SIZE << order)
        return self.cache_of(addr).view(addr)

    def raw(self, addr: int, nbytes: int) -> memoryview:
        """A writable memoryview of arena bytes ``[addr, addr + nbytes)``: red zones, padding,
        stored free pointers -- the tool for tests and teaching (it bypasses every check)."""
        addr = operator.index(addr)
        nbytes = operator.index(nbytes)
        if nbytes < 0 or addr < 0 or addr + nbytes > self._seg.arena_bytes:
            raise SlabError(f"raw({addr:#x}, {nbytes}): outside the arena "
                            f"(0..{self._seg.arena_bytes:#x})")
        return self._seg.raw(addr, nbytes)

    def __repr__(self) -> str:
        return (f"<pyslub.Memory {self._seg.arena_bytes >> 20} MiB, {self.nr_cpus} cpus, "
                f"SLUB {self.slub}, {len(self.caches)} caches"
                f"{'' if self.checks else ', checks off'}>")

    # -- tools (pyslub.tools, imported here lazily: the tools depend on the core, never the
    # other way at import time) ---------------------------------------------------------------
    def slabinfo(self) -> list:
        """One ``pyslub.tools.slabinfo.SlabRecord`` per cache, as tools/mm/slabinfo reads
        them from /sys/kernel/slab (``pyslub slabinfo`` prints them)."""
        from pyslub.tools import slabinfo

        return slabinfo.rows(self)

    def sysfs(self) -> Any:
        """The read-only mapping ``cache -> attribute -> text`` of /sys/kernel/slab, with the
        kernel's file names and formats (``.write(cache, attr, text)`` as a store to it)."""
        from pyslub.tools import sysfs

        return sysfs.tree(self)

    def export_sysfs(self, directory: str | os.PathLike) -> str:
        """Write the sysfs tree as ``directory/<cache>/<attribute>`` files; returns it."""
        from pyslub.tools import sysfs

        return sysfs.export(self, directory)

    def snapshot(self, path: str | os.PathLike) -> str:
        """Every sysfs text of this Memory in one JSON file (``pyslub slabinfo --snapshot``
        reads it); returns ``path``."""
        from pyslub.tools import sysfs

        return sysfs.snapshot(self, path)

    def plot_slabs(self, path: str | os.PathLike, cache: Cache | str | None = None,
                   title: str | None = None) -> Any:
        """The slab map of one cache (a Cache or its name; default: the only cache that has
        slabs) saved to ``path`` (PNG, SVG, ... by the name); returns the Figure."""
        if cache is None:
            used = [c for c in self.caches.values() if c.nr_slabs]
            if len(used) != 1:
                raise ValueError("plot_slabs: name the cache to draw; caches with slabs: "
                                 f"{sorted(c.name for c in used) or 'none'}")
            cache = used[0]
        elif isinstance(cache, str):
            if cache not in self.caches:
                raise ValueError(f"plot_slabs: no cache named {cache!r}; caches: "
                                 f"{sorted(self.caches)}")
            cache = self.caches[cache]
        elif not isinstance(cache, Cache) or self.caches.get(cache.name) is not cache:
            raise ValueError(f"plot_slabs: {cache!r} is not a cache of this Memory")
        from pyslub.tools import viz

        return viz.plot_slabs(cache, path, title=title)


def _debug_rules(slab_debug: str | None) -> Any:
    """slab_debug= (pyslub.debug): the argument, else PYSLUB_SLAB_DEBUG."""
    if slab_debug is not None:
        return _debug.parse_slab_debug(slab_debug)
    return _debug.from_environment()


def _kmalloc_name(size: int) -> str:
    return f"kmalloc-{size // 1024}k" if size >= 1024 else f"kmalloc-{size}"


def _slab_compiled() -> bool:
    return not _slab.__file__.endswith(".py")


_sched_cpu = _slab.sched_cpu
_LIVE: weakref.WeakSet[Memory] = weakref.WeakSet()


def _before_fork() -> None:
    for mem in list(_LIVE):
        if mem._guard is not None:
            mem._guard.lock.acquire()
    _fork_begin()                   # compiled: no thread is inside the core until fork_end


def _after_fork(child: bool = False) -> None:
    _fork_end(child)
    for mem in list(_LIVE):
        if mem._guard is not None:
            mem._guard.lock.release()


def _after_fork_child() -> None:
    """A shared arena is MAP_SHARED: the child is one more process of it.  It takes a process
    slot of its own and new thread bindings (the inherited one names the parent's thread and
    seat; it is dropped without giving the seat back)."""
    _after_fork(child=True)
    _slab.clear_binding()
    for mem in list(_LIVE):
        if mem._seg.shared and not mem._seg.closed:
            mem._local = threading.local()
            mem._creator = False
            if mem._guard is not None:
                mem._guard = _Guard()
                mem._guard.memory = weakref.ref(mem)
            try:
                proc_attach(mem._seg)
            except MemoryError:
                mem._seg.close()                       # no slot: unusable in this child


os.register_at_fork(before=_before_fork, after_in_parent=_after_fork,
                    after_in_child=_after_fork_child)


# Uncompiled: every public operation runs under the Memory's guard.
if not _slab_compiled():
    def _serialised(fn, memory_of):
        def run(self, *args, **kwargs):
            guard = memory_of(self)._guard
            with guard:
                return fn(self, *args, **kwargs)
        run.__name__ = fn.__name__
        run.__qualname__ = fn.__qualname__
        run.__doc__ = fn.__doc__
        return run

    def _memory_of_cache(cache):
        return cache.binder.__self__

    for _name in ("alloc", "kmalloc", "free", "alloc_bulk", "free_bulk", "view", "flush_cpu",
                  "shrink", "destroy", "live_objects", "validate", "stats", "occupancy"):
        setattr(Cache, _name, _serialised(getattr(Cache, _name), _memory_of_cache))
    for _name in ("alloc", "kmalloc", "free", "alloc_bulk", "free_bulk", "flush_cpu", "shrink",
                  "destroy", "validate", "_kmalloc_large", "_kfree_large", "_kfree_bulk"):
        setattr(SharedCache, _name, _serialised(getattr(SharedCache, _name), _memory_of_cache))
    for _cls in (PrefilledSheaf, SharedPrefilledSheaf):
        for _name in ("__enter__", "alloc", "__exit__"):
            setattr(_cls, _name, _serialised(vars(_cls)[_name],
                                             lambda sh: _memory_of_cache(sh.cache)))
    for _name in ("recover", "orphans"):
        setattr(Memory, _name, _serialised(getattr(Memory, _name), lambda m: m))
    for _name in ("create_cache", "destroy_cache", "kmalloc", "kfree", "kfree_bulk", "view"):
        setattr(Memory, _name, _serialised(getattr(Memory, _name), lambda m: m))



__all__ = ["CPU_POLICIES", "FREE_BULK_STRATEGIES", "KMALLOC_SIZES", "Memory",
           "SLUB_GENERATIONS", "ZERO_SIZE_PTR"]
