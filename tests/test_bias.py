"""Biased cpu records: a record used by one thread is biased to it (no atomics); a second thread
revokes the bias (counted) and both then share the locked protocol, with exact results."""

import threading

import numpy as np
import pytest

import pyslub
from pyslub import Memory
from pyslub import slab as _slab
from pyslub._layout import REBIAS_RUN

pytestmark = pytest.mark.skipif(not (pyslub.COMPILED and _slab.BIAS_OK),
                                reason="biased records need the compiled core and membarrier")


def _on(mem, cpu, fn):
    """Run fn() in a new thread bound to ``cpu``; return its result, re-raise its exception."""
    out = {}

    def run():
        try:
            with mem.on_cpu(cpu):
                out["r"] = fn()
        except BaseException as e:          # noqa: BLE001 (re-raised in the caller)
            out["e"] = e

    t = threading.Thread(target=run)
    t.start()
    t.join()
    if "e" in out:
        raise out["e"]
    return out.get("r")


@pytest.mark.parametrize("slub", ["4.4", "7.0"])
def test_first_user_takes_the_bias_and_a_second_revokes_it(slub):
    mem = Memory(16 << 20, nr_cpus=2, slub=slub)
    c = mem.create_cache("b", 128)
    me = threading.get_native_id()
    with mem.on_cpu(0):
        kept = [c.alloc() for _ in range(100)]
        assert c.cpu_state(0)["bias"] == me
        assert c.stats()["bias_revoke"] == 0

    # another thread on cpu 0: the bias is revoked once, the record is then shared
    other = _on(mem, 0, lambda: [c.alloc() for _ in range(50)])
    assert c.cpu_state(0)["bias"] == 0
    assert c.stats()["bias_revoke"] == 1
    assert len(set(kept) | set(other)) == 150
    # cpu 1 was never touched by anyone else: its first user gets its bias
    tid1 = _on(mem, 1, lambda: (c.free(c.alloc()), threading.get_native_id())[1])
    assert c.cpu_state(1)["bias"] == tid1
    with mem.on_cpu(0):
        for x in kept + other:
            c.free(x)
    assert c.validate() == []
    assert c.live_objects() == 0


def test_a_lasting_owner_gets_the_bias_back():
    mem = Memory(16 << 20, nr_cpus=1, slub="4.4")
    c = mem.create_cache("b", 128)
    with mem.on_cpu(0):
        c.free(c.alloc())
    _on(mem, 0, lambda: c.free(c.alloc()))
    assert c.cpu_state(0)["bias"] == 0
    # the main thread alone again: after REBIAS_RUN claims in a row it owns the record again
    assert c.stats()["bias_revoke"] == 1
    with mem.on_cpu(0):
        p = np.zeros(8, np.uint64)
        for _ in range(REBIAS_RUN + 10):      # one cpu claim per alloc_bulk
            assert c.alloc_bulk(p) == 8
            c.free_bulk(p)
    assert c.cpu_state(0)["bias"] == threading.get_native_id()
    assert c.stats()["bias_revoke"] == 1
    assert c.validate() == []


def test_revocation_races_stay_exact():
    """Two threads on one cpu, in turns that keep revoking: counters and objects stay exact."""
    mem = Memory(32 << 20, nr_cpus=1, slub="4.4")
    c = mem.create_cache("b", 64)
    n_rounds, per = 30, 200
    seen = []
    lock = threading.Lock()

    def work():
        with mem.on_cpu(0):
            _turns(got := [])
        with lock:
            seen.append(len(got))

    def _turns(got):
        p = np.zeros(per, np.uint64)
        for _ in range(n_rounds):
            xs = [c.alloc() for _ in range(per)]
            got.extend(xs)
            for x in xs:
                c.free(x)
            assert c.alloc_bulk(p) == per
            got.extend(int(x) for x in p)
            c.free_bulk(p)

    ts = [threading.Thread(target=work) for _ in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    st = c.stats()
    assert seen == [2 * n_rounds * per] * 2
    singles = 2 * n_rounds * per                    # (bulk calls count no fast/slow path)
    assert st["alloc_fastpath"] + st["alloc_slowpath"] == singles
    assert st["free_fastpath"] + st["free_slowpath"] >= singles
    assert st["bias_revoke"] >= 1
    assert c.validate() == []
    assert c.live_objects() == 0
