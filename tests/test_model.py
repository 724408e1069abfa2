"""A stateful model test: random interleavings of every public operation against a plain
Python model of what is allocated and what each object holds.

The model is a dict ``address -> contents``.  Each live object carries its own byte pattern,
written through ``view()`` when it is handed out and checked before it is freed (and, at
random, for all objects), so an allocator that hands out a live object again, or writes a free
pointer into the wrong object, is caught by the contents as well as by the bookkeeping.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

import pyslub

NR_CPUS = 4
MAX_LIVE = 600
DEBUG = pyslub.SLAB_CONSISTENCY_CHECKS | pyslub.SLAB_RED_ZONE | pyslub.SLAB_POISON | \
    pyslub.SLAB_STORE_USER


class SlabMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.model: dict[int, bytes] = {}
        self.tag = 0
        self.cpu = 0

    @initialize(object_size=st.sampled_from([8, 20, 64, 100, 232, 1000, 3000]),
                flags=st.sampled_from([0, pyslub.SLAB_HWCACHE_ALIGN,
                                       pyslub.SLAB_CONSISTENCY_CHECKS,
                                       pyslub.SLAB_POISON | pyslub.SLAB_RED_ZONE,
                                       pyslub.SLAB_STORE_USER]),
                min_partial=st.integers(0, 6), slub=st.sampled_from(["4.4", "6.18", "7.0"]),
                capacity=st.sampled_from([2, 16, 40]))
    def setup(self, object_size, flags, min_partial, slub, capacity):
        self.mem = pyslub.Memory(size=16 << 20, nr_cpus=NR_CPUS, slub=slub)
        self.pages = self.mem.free_pages()
        kw = {"sheaf_capacity": capacity} if slub != "4.4" else {}
        self.cache = self.mem.create_cache("model", object_size, flags=flags, **kw)
        self.slub = slub
        self.cache.min_partial = min_partial
        self.size = object_size
        self.debug = bool(flags & DEBUG)

    # ---- helpers -------------------------------------------------------------------------

    def new_pattern(self) -> bytes:
        self.tag += 1
        word = (self.tag * 0x9E3779B97F4A7C15 & (2**64 - 1)).to_bytes(8, "little")
        return (word * (self.size // 8 + 1))[:self.size]

    def took(self, addr: int) -> None:
        """The allocator handed out ``addr``: it must not be live, it must be an object."""
        assert addr not in self.model, f"{addr:#x} handed out while live"
        self.cache.slab_of(addr)
        data = self.new_pattern()
        self.cache.view(addr)[:] = data
        self.model[addr] = data

    def check(self, addr: int) -> None:
        assert bytes(self.cache.view(addr)) == self.model[addr], f"{addr:#x} overwritten"

    def on_cpu(self):
        return self.mem.on_cpu(self.cpu)

    # ---- rules ---------------------------------------------------------------------------

    @precondition(lambda self: len(self.model) < MAX_LIVE)
    @rule()
    def alloc(self):
        with self.on_cpu():
            addr = self.cache.alloc()
        self.took(addr)

    @precondition(lambda self: len(self.model) < MAX_LIVE)
    @rule(n=st.integers(1, 80))
    def alloc_bulk(self, n):
        p = np.zeros(n, dtype=np.uint64)
        with self.on_cpu():
            assert self.cache.alloc_bulk(p) == n
        got = [int(x) for x in p]
        assert len(set(got)) == n
        for addr in got:
            self.took(addr)

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def free(self, data):
        addr = data.draw(st.sampled_from(sorted(self.model)))
        self.check(addr)
        with self.on_cpu():
            self.cache.free(addr)
        del self.model[addr]

    @precondition(lambda self: self.model)
    @rule(data=st.data(), strategy=st.sampled_from(pyslub.FREE_BULK_STRATEGIES),
          nulls=st.integers(0, 3))
    def free_bulk(self, data, strategy, nulls):
        victims = data.draw(st.lists(st.sampled_from(sorted(self.model)), unique=True,
                                     min_size=1, max_size=120))
        entries = data.draw(st.permutations(victims))
        if strategy in ("lookahead", "lookahead-fwd"):
            for i in range(nulls):
                entries.insert((i * 7) % (len(entries) + 1), 0)
        for addr in victims:
            self.check(addr)
        p = np.array(entries, dtype=np.uint64)
        orig = p.copy()
        with self.on_cpu():
            self.cache.free_bulk(p, strategy=strategy)
        if self.cache.sheaf_capacity:              # the sheaf path leaves the array alone
            assert np.array_equal(p, orig)
        elif strategy in ("lookahead", "lookahead-fwd"):
            assert not p.any()
        elif strategy == "swap":
            assert sorted(p.tolist()) == sorted(orig.tolist())
        else:
            assert np.array_equal(p, orig)
        for addr in victims:
            del self.model[addr]

    @precondition(lambda self: self.model)
    @rule(data=st.data(), leave=st.integers(0, 2), bulk=st.booleans(),
          strategy=st.sampled_from(pyslub.FREE_BULK_STRATEGIES))
    def free_most_of_one_slab(self, data, leave, bulk, strategy):
        """Objects allocated together die together: empty (or nearly empty) one slab, which
        drives it through the empty-slab paths (discard, min_partial, cpu partial drain)."""
        slab = data.draw(st.sampled_from(sorted({self.cache.slab_of(a) for a in self.model})))
        mine = sorted(a for a in self.model if self.cache.slab_of(a) == slab)
        victims = mine[leave:]
        if not victims:
            return
        for addr in victims:
            self.check(addr)
        with self.on_cpu():
            if bulk:
                self.cache.free_bulk(np.array(victims, dtype=np.uint64), strategy=strategy)
            else:
                for addr in victims:
                    self.cache.free(addr)
        for addr in victims:
            del self.model[addr]

    @rule(cpu=st.integers(0, NR_CPUS - 1))
    def switch_cpu(self, cpu):
        self.cpu = cpu

    @rule(data=st.data())
    def write_and_read(self, data):
        """Rewrite one object's contents through a fresh view; read all of them back."""
        if self.model:
            addr = data.draw(st.sampled_from(sorted(self.model)))
            new = self.new_pattern()
            self.cache.view(addr)[:] = new
            self.model[addr] = new
        for addr in self.model:
            self.check(addr)

    @rule(which=st.one_of(st.none(), st.integers(0, NR_CPUS - 1)))
    def flush_cpu(self, which):
        self.cache.flush_cpu(which)
        cpus = range(NR_CPUS) if which is None else (which,)
        for k in cpus:
            st_ = self.cache.cpu_state(k)
            assert st_["page"] == 0 and st_["freelist"] == 0 and st_["partial"] == []
            if self.cache.sheaf_capacity:          # pcs_flush_all: main empty, no spare
                assert self.cache.sheaf_state()["cpus"][k] == (0, None)

    @rule()
    def shrink(self):
        self.cache.shrink()
        for k in range(NR_CPUS):                   # shrink flushes every cpu first
            assert self.cache.cpu_state(k)["page"] == 0
        for slab in self.cache.node_partial():     # and leaves no empty slab behind
            assert self.cache.slab_state(slab)["inuse"] > 0

    @rule(value=st.integers(0, 12))
    def set_min_partial(self, value):
        self.cache.min_partial = value                     # set_min_partial(): 5..10
        assert self.cache.info["min_partial"] == min(max(value, 5), 10)

    @rule(value=st.integers(0, 40))
    def set_cpu_partial(self, value):
        if self.debug or self.slub == "7.0":
            value = 0                              # no cpu partial lists there
        self.cache.cpu_partial = value
        assert self.cache.info["cpu_partial"] == value

    @rule(value=st.integers(2, 8))
    def set_lookahead(self, value):
        self.cache.lookahead = value

    # ---- invariants ----------------------------------------------------------------------

    @invariant()
    def consistent(self):
        if not hasattr(self, "cache"):
            return
        assert self.cache.validate() == []
        assert self.cache.reports == []
        assert self.cache.live_objects() == len(self.model)
        occ = self.cache.occupancy()
        assert occ["objects"] >= len(self.model)
        assert occ["total_objects"] >= occ["objects"]
        assert occ["slabs"] == len(self.cache.slabs())
        assert occ["total_objects"] == sum(self.cache.slab_state(s)["objects"]
                                           for s in self.cache.slabs())
        slabs = set(self.cache.slabs())
        for addr in self.model:
            assert self.cache.slab_of(addr) in slabs

    def teardown(self):
        if not hasattr(self, "cache"):
            return
        for addr in self.model:
            self.check(addr)
        if self.model:
            self.cache.free_bulk(np.array(sorted(self.model), dtype=np.uint64))
        self.model.clear()
        assert self.cache.live_objects() == 0
        self.cache.destroy()                       # nothing live: destroy must succeed
        assert self.mem.free_pages() == self.pages  # and give every page back


SlabMachine.TestCase.settings = settings(
    max_examples=150 if pyslub.COMPILED else 40,
    stateful_step_count=60 if pyslub.COMPILED else 40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much],
)
TestSlabModel = SlabMachine.TestCase
