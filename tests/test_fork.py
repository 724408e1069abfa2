"""fork(): the child gets a consistent private copy, and nothing it does reaches the parent.

Each scenario runs in its own process (compiled and uncompiled), which builds a Memory, forks
children and reports as JSON what the children saw (through a pipe) and what the parent sees
afterwards.  A child allocates and frees freely -- the parent's own objects included (its copy
of them), with several threads, in a new cache and in kmalloc -- and exits with ``os._exit``.
The parent must find everything as it was: ``validate()``, ``live_objects()``, the counters,
the occupancy files, the free pages and the bytes of its objects.

"busy": another thread of the parent is inside the allocator when fork() is called, with
single objects and bulks below NOGIL_MIN (calls that hold the GIL), with
``sys.setswitchinterval(1e-6)`` so that the GIL changes hands inside the at-fork hooks, or
with bulks above it (calls that release the GIL for the core work).  The child's copy must be
consistent (``validate() == []``) and usable.  A watchdog ends a deadlocked scenario.

"late hook": a before-fork hook registered before pyslub was imported runs *after* pyslub's
(CPython runs them in reverse order of registration; logging's ``_acquireLock`` is one) and
drops the GIL (here a 5 ms sleep), while other threads run GIL-free bulks on a 4.4 and a 6.18
(sheaves) Memory: the bulks they start in that window must not be inside the core at fork(),
also when two threads fork at once.
"""

from __future__ import annotations

import pytest
from childproc import MODES, launch_all, report, skip_in_rerun

pytestmark = skip_in_rerun

CHILD = r'''
import faulthandler, json, os, sys, threading, time
import numpy as np
import pyslub
from pyslub import SlabError

SCENARIO = sys.argv[1]
WATCHDOG = 6                             # seconds: a deadlock exits with status 1 and stacks
faulthandler.dump_traceback_later(WATCHDOG, exit=True)
if SCENARIO == "busy-gil-switch":
    sys.setswitchinterval(1e-6)          # the GIL changes hands at every chance
COMPILED = pyslub.COMPILED
mem = pyslub.Memory(size=128 << 20, nr_cpus=4)
c = mem.create_cache("parent", 64)
spare = mem.create_cache("spare", 128)
objs = c.alloc_many(1000)
for i, a in enumerate(objs.tolist()):
    c.view(a)[:8] = i.to_bytes(8, "little")
c.free_bulk(objs[1::2].copy())
mine = objs[::2].tolist()
big = mem.kmalloc(20000)
mem.view(big)[:4] = b"big!"


def snapshot():
    return {"validate": c.validate(), "live": c.live_objects(), "stats": c.stats(),
            "occupancy": c.occupancy(), "free_pages": mem.free_pages(),
            "spare_live": spare.live_objects(), "caches": sorted(mem.caches),
            "bytes": [int.from_bytes(c.view(a)[:8], "little") for a in mine],
            "big": bytes(mem.view(big)[:4]).decode()}


def child_threads(nthreads, ops):
    """The child's work: threads allocating and freeing, each checking it never gets an
    address another holds; returns problems found."""
    held = set()
    lock = threading.Lock()
    problems = []

    def work(k):
        rng = np.random.default_rng(k)
        mine_here = []
        with mem.on_cpu(k % mem.nr_cpus):
            for i in range(ops):
                if i % 3 == 0:
                    p = c.alloc_many(int(rng.integers(1, 400)))
                else:
                    p = np.array([c.alloc() for _ in range(3)], dtype=np.uint64)
                with lock:
                    dup = held.intersection(p.tolist())
                    if dup:
                        problems.append(f"duplicate {sorted(dup)[:3]}")
                    held.update(p.tolist())
                mine_here.append(p)
                if len(mine_here) > 4:
                    q = mine_here.pop(0)
                    with lock:
                        held.difference_update(q.tolist())
                    c.free_bulk(q)
        for q in mine_here:
            with lock:
                held.difference_update(q.tolist())
            c.free_bulk(q)

    ts = [threading.Thread(target=work, args=(k,)) for k in range(nthreads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return problems


def child_body():
    """Everything a child does; returns its report (dict)."""
    v = c.validate()
    out = {"validate_at_fork": v[:3], "n_problems_at_fork": len(v)}
    out["problems"] = child_threads(4, 30 if COMPILED else 6)
    c.free_bulk(np.array(mine, dtype=np.uint64))          # the parent's objects (our copy)
    for a in c.alloc_many(500).tolist():                   # write into fresh objects
        c.view(a)[:8] = b"childxxx"
    mem.kfree(big)
    k = [mem.kmalloc(s) for s in (8, 100, 3000, 9000, 40000)]
    mem.kfree_bulk(np.array(k, dtype=np.uint64))
    new = mem.create_cache("child-only", 200)
    new.free(new.alloc())
    mem.destroy_cache(new)
    spare.free(spare.alloc())
    mem.destroy_cache(spare)
    c.shrink()
    out["validate_after"] = c.validate()[:3]
    return out


def fork_child():
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        code = 0
        try:
            msg = json.dumps(child_body())
        except BaseException as e:                # noqa: BLE001 (reported to the parent)
            msg = json.dumps({"error": f"{type(e).__name__}: {e}"})
            code = 3
        os.write(w, msg.encode())
        os._exit(code)
    os.close(w)
    chunks = []
    while True:
        b = os.read(r, 1 << 16)
        if not b:
            break
        chunks.append(b)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    rep = json.loads(b"".join(chunks) or b"{}")
    rep["status"] = status
    return rep


result = {"compiled": COMPILED, "children": []}
if SCENARIO == "quiet":
    before = snapshot()
    for _ in range(2):
        result["children"].append(fork_child())
    after = snapshot()
    result["changed"] = sorted(k for k in before if before[k] != after[k])
    result["parent_validate"] = after["validate"]
else:
    # another thread busy in the allocator while we fork
    stop = threading.Event()
    held_by_busy = []
    bulk = 2000 if SCENARIO == "busy-nogil" else 100      # GIL released, or held

    def busy():
        with mem.on_cpu(1):
            p = np.zeros(bulk, dtype=np.uint64)
            while not stop.is_set():
                c.alloc_bulk(p)
                c.free_bulk(p, strategy="fallback")
                a = c.alloc()
                c.free(a)

    t = threading.Thread(target=busy)
    t.start()
    for _ in range(6 if COMPILED else 3):
        time.sleep(0.002)
        result["children"].append(fork_child())
    stop.set()
    t.join()
    result["parent_validate"] = c.validate()
    result["changed"] = []
print(json.dumps(result))
'''

SCENARIOS = ("quiet", "busy-gil-switch", "busy-nogil")
_RESULTS: dict = {}


def _key(scenario: str, mode: str):
    return (CHILD, (scenario,), mode)


@pytest.fixture(scope="module")
def children():
    return launch_all([_key(s, m) for s in SCENARIOS for m in MODES]
                      + [_late_key(m) for m in MODES] + [_bench_key()], _RESULTS)


LATE_HOOK = r'''
import faulthandler, json, os, sys, threading, time
faulthandler.dump_traceback_later(60, exit=True)           # a deadlock: status 1 and stacks
window = []                                                # busy bulks done inside the hook


def late_hook():
    """Runs after pyslub's before-fork hook and drops the GIL, as logging's may (longer in
    the slow forker: the other one's forks begin and end inside its window)."""
    n = done[0]
    time.sleep(0.015 if threading.current_thread().name == "slow" else 0.005)
    window.append(done[0] - n)


done = [0]
os.register_at_fork(before=late_hook)                      # before pyslub: runs after its hook
import numpy as np
import pyslub
from pyslub.cache import fork_state, nogil_min

COMPILED = pyslub.COMPILED
FORKS = 20 if COMPILED else 4
BULK = 4 * nogil_min()                                     # GIL-free bulks (compiled)
HELD = 300
m44 = pyslub.Memory(size=64 << 20, nr_cpus=2)
m618 = pyslub.Memory(size=64 << 20, nr_cpus=2, slub="6.18")
c44 = m44.create_cache("c44", 64)
c618 = m618.create_cache("c618", 64, sheaf_capacity=32)
held = c44.alloc_many(HELD)                                # live in the parent throughout
stop = threading.Event()


def busy(mem, c):
    with mem.on_cpu(1):
        p = np.zeros(BULK, dtype=np.uint64)
        while not stop.is_set():
            c.alloc_bulk(p)
            c.free_bulk(p)
            done[0] += 1


def child():
    """The copy: consistent, and c44 holds the parent's objects plus 0 or BULK of the busy
    thread's (between two of its operations, never inside one)."""
    return {"v44": c44.validate()[:3], "v618": c618.validate()[:3],
            "live44": c44.live_objects(), "state": fork_state()}


def forker(n):
    for _ in range(n):
        time.sleep(0.001)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            try:
                msg = json.dumps(child())
            except BaseException as e:            # noqa: BLE001 (reported to the parent)
                msg = json.dumps({"error": f"{type(e).__name__}: {e}"})
            os.write(w, msg.encode())
            os._exit(0)
        os.close(w)
        chunks = []
        while b := os.read(r, 1 << 16):
            chunks.append(b)
        os.close(r)
        _, status = os.waitpid(pid, 0)
        ch = json.loads(b"".join(chunks) or b"{}")
        ch["status"] = status
        children.append(ch)


ts = [threading.Thread(target=busy, args=mc) for mc in ((m44, c44), (m618, c618))]
for t in ts:
    t.start()
children = []
forker(FORKS // 2)                          # alone, then two threads forking at once: one's
fs = [threading.Thread(target=forker, args=(FORKS // 4,), name=name)  # after hooks must
      for name in ("slow", "fast")]                                   # not end the other's
for t in fs:                                                          # fork
    t.start()
for t in fs:
    t.join()
stop.set()
for t in ts:
    t.join()
print(json.dumps({"compiled": COMPILED, "children": children, "window": window,
                  "held": HELD, "bulk": BULK, "done": done[0],
                  "parent": [c44.validate(), c618.validate(), c44.live_objects()],
                  "state": fork_state()}))
'''

# The native benchmark loops are GIL-free sections too (compiled only: uncompiled they are
# plain Python).  A single-thread loop (test01's) on cpu 2, and producer/consumer rounds of
# pyslub.bench._threads on cpus 0 and 1, whose sides enter 2 ms apart (producer first, then
# consumer first): a fork that comes between them must not wait for a producer that waits for
# a consumer that waits for the fork, nor the other way round (the watchdog ends a deadlock).
BENCH_LOOPS = r'''
import faulthandler, json, os, sys, threading, time
faulthandler.dump_traceback_later(30, exit=True)
os.register_at_fork(before=lambda: time.sleep(0.005))      # runs after pyslub's hook
import numpy as np
import pyslub
from pyslub.bench import _native, _threads

FORKS, TOTAL, SLOTS, BATCH = 12, 2000, 8, 32
mem = pyslub.Memory(size=64 << 20, nr_cpus=3, checks=False)
cq = mem.create_cache("quick", 64)                          # test01's loop
cr = mem.create_cache("remote", 64)                         # producer -> consumer
stop = threading.Event()
rounds = {"quick": 0, "pairs": 0, "bad": []}


def quick():
    objs = _native.objs_array(64)
    with mem.on_cpu(2):
        while not stop.is_set():
            cnt = _native.bench_bulk_quick_reuse(cq, 50, 64, 0, objs)[0]
            if cnt != 50 * 64:
                rounds["bad"].append(("quick", cnt))
            rounds["quick"] += 1


go = [True]                         # decided once per round, for both sides
gate = threading.Barrier(2, action=lambda: go.__setitem__(0, not stop.is_set()))
ring = [_threads.Handoff(SLOTS, BATCH)]                     # this round's


def side(producer):
    with mem.on_cpu(0 if producer else 1):
        k = 0
        while True:
            gate.wait()
            if not go[0]:
                return
            k += 1
            if k % 2 == producer:           # one side enters first and waits for the other
                time.sleep(0.002)
            if producer:
                n = _threads.produce(ring[0], cr, TOTAL, BATCH, True)[0]
            else:
                n = _threads.consume(ring[0], cr, TOTAL, True, 0)[0]
                rounds["pairs"] += 1
            if n != TOTAL:
                rounds["bad"].append(("producer" if producer else "consumer", n))
            if gate.wait() == 0:
                ring[0] = _threads.Handoff(SLOTS, BATCH)


ts = [threading.Thread(target=quick)] + [threading.Thread(target=side, args=(p,))
                                        for p in (True, False)]
for t in ts:
    t.start()
children = []
for _ in range(FORKS):
    time.sleep(0.002)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        msg = json.dumps({"vq": cq.validate()[:3], "vr": cr.validate()[:3],
                          "liveq": cq.live_objects(), "liver": cr.live_objects()})
        os.write(w, msg.encode())
        os._exit(0)
    os.close(w)
    chunks = []
    while b := os.read(r, 1 << 16):
        chunks.append(b)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    ch = json.loads(b"".join(chunks) or b"{}")
    ch["status"] = status
    children.append(ch)
stop.set()
for t in ts:
    t.join()
print(json.dumps({"compiled": pyslub.COMPILED, "children": children, "rounds": rounds,
                  "in_flight_max": SLOTS * BATCH,
                  "parent": [cq.validate(), cr.validate(), cq.live_objects(),
                             cr.live_objects()]}))
'''


def _late_key(mode: str):
    return (LATE_HOOK, (), mode)


def _bench_key():
    return (BENCH_LOOPS, (), "compiled")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_fork_child_has_a_private_consistent_copy(children, scenario, mode):
    key = _key(scenario, mode)
    proc = children[key]
    out = report(proc, key)        # (a deadlock at fork ends in the child's watchdog: fails)
    assert out["parent_validate"] == []
    assert out["changed"] == [], f"the child's work changed the parent's {out['changed']}"
    assert out["children"]
    for ch in out["children"]:
        assert ch["status"] == 0 and "error" not in ch, ch
        assert ch["problems"] == [], ch            # no duplicates among the child's threads
    torn = [ch for ch in out["children"] if ch["n_problems_at_fork"]]
    assert torn == [], torn[0]                 # fork waited for the GIL-free bulks to end
    for ch in out["children"]:
        assert ch["validate_after"] == [], ch


@pytest.mark.parametrize("mode", MODES)
def test_fork_waits_for_bulks_started_in_a_later_hook(children, mode):
    key = _late_key(mode)
    out = report(children[key], key)
    held, bulk = out["held"], out["bulk"]
    assert out["parent"] == [[], [], held]
    assert out["state"] == [0, 0]            # (sections, forks pending): the hooks balanced
    for ch in out["children"]:
        assert ch["status"] == 0 and "error" not in ch, ch
        assert (ch["v44"], ch["v618"]) == ([], []), ch        # no bulk was inside the core
        assert ch["live44"] in (held, held + bulk), ch       # ... nor half done
        assert ch["state"] == [0, 0], ch                     # the child's bulks go GIL-free
    assert len(out["children"]) == len(out["window"])
    if out["compiled"]:           # the scenario happened: the busy threads ran in the window
        assert sum(out["window"]) > 0, out["window"]


def test_fork_waits_for_native_benchmark_loops(children):
    out = report(children[_bench_key()], _bench_key())
    assert out["parent"] == [[], [], 0, 0]
    assert out["rounds"]["bad"] == []
    assert out["rounds"]["quick"] > 0 and out["rounds"]["pairs"] > 0
    for ch in out["children"]:
        assert ch["status"] == 0, ch
        assert (ch["vq"], ch["vr"]) == ([], []), ch       # no loop was inside the core
        assert ch["liveq"] == 0, ch                       # test01's loop frees all it takes
        assert 0 <= ch["liver"] <= out["in_flight_max"], ch   # the ring's batches at most
