"""One arena shared by processes (issue 10): attach by name, objects crossing processes, process
death (SIGKILL at random points, survivors never hang, recover() and orphans() exact),
lifetime (close, unlink, the context manager, no leaked segments), bad attaches.

Compiled and uncompiled: the in-process tests run in both suite passes; the kill scenario runs
as child programs of both modes (tests/childproc.py)."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import textwrap
from multiprocessing import shared_memory

import numpy as np
import pytest
from tests.childproc import launch_all, report, skip_in_rerun

import pyslub
from pyslub import Memory, SlabError
from pyslub._layout import H_VERSION, SEG_MAGIC

FORK = mp.get_context("fork")
SIZE = 32 << 20


def shm_names() -> set[str]:
    return {n for n in os.listdir("/dev/shm") if n.startswith("pyslub")}


@pytest.fixture(autouse=True)
def no_leaked_segments(monkeypatch):
    """Every arena a test of this process created is unlinked when it ends (other test runs
    on the machine may create and remove their own meanwhile: only ours are looked at)."""
    made: list[str] = []
    create = Memory.create_shared.__func__

    def recording(cls, *args, **kwargs):
        mem = create(cls, *args, **kwargs)
        made.append(mem.name)
        return mem

    monkeypatch.setattr(Memory, "create_shared", classmethod(recording))
    yield
    assert set(made) & shm_names() == set()


# -- attach and its errors -----------------------------------------------------------------------

def test_attach_errors_name_what_is_wrong() -> None:
    with pytest.raises(FileNotFoundError, match="no shared pyslub arena named"):
        Memory.attach("pyslub_never_made")
    other = shared_memory.SharedMemory(create=True, size=1 << 16)
    try:
        with pytest.raises(ValueError, match="not a pyslub arena"):
            Memory.attach(other.name)
        hdr = np.ndarray(16, dtype=np.int64, buffer=other.buf)
        hdr[0] = SEG_MAGIC                          # a pyslub header of another layout
        hdr[H_VERSION] = 999
        with pytest.raises(ValueError, match="layout version 999"):
            Memory.attach(other.name)
        del hdr
    finally:
        other.close()
        other.unlink()
    mem = Memory.create_shared(size=SIZE, nr_cpus=2)
    name = mem.name
    mem.unlink()
    with pytest.raises(FileNotFoundError):
        Memory.attach(name)
    with pytest.raises(FileExistsError):
        m2 = Memory.create_shared(name="x" + name, size=SIZE, nr_cpus=2)
        try:
            Memory.create_shared(name=m2.name, size=SIZE, nr_cpus=2)
        finally:
            m2.close()
            m2.unlink()
    mem.close()


def test_the_other_core_cannot_attach() -> None:
    with Memory.create_shared(size=SIZE, nr_cpus=2) as mem:
        code = textwrap.dedent(f"""
            from pyslub import Memory
            try:
                Memory.attach({mem.name!r})
            except ValueError as e:
                print("refused:", e)
        """)
        env = dict(os.environ, PYSLUB_PURE="0" if not pyslub.COMPILED else "1")
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, timeout=60)
        assert "refused:" in out.stdout and "cannot mix" in out.stdout, out.stderr[-500:]


def test_an_unrelated_process_attaches_by_name_and_sees_the_caches() -> None:
    with Memory.create_shared(size=SIZE, nr_cpus=4, slub="7.0") as mem:
        c = mem.create_cache("records", 100)
        p = c.alloc_many(10)
        for i, a in enumerate(p):
            mem.view(int(a))[:4] = bytes([i, 1, 2, 3])
        code = textwrap.dedent(f"""
            import json, sys, numpy as np
            from pyslub import Memory
            mem = Memory.attach({mem.name!r})
            c = mem.cache("records")
            p = np.array({[int(a) for a in p]}, dtype=np.uint64)
            seen = [bytes(mem.view(int(a))[:4]) == bytes([i, 1, 2, 3]) for i, a in enumerate(p)]
            c.free_bulk(p)
            mine = mem.create_cache("made-by-child", 64)
            q = mine.alloc_many(3)
            print(json.dumps({{"seen": all(seen), "slub": mem.slub, "cpus": mem.nr_cpus,
                               "names": sorted(mem.caches), "kept": [int(a) for a in q]}}))
            mem.close()
        """)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 0, out.stderr[-1500:]
        child = json.loads(out.stdout.splitlines()[-1])
        assert child["seen"] and child["slub"] == "7.0" and child["cpus"] == 4
        assert "records" in child["names"] and "kmalloc-64" in child["names"]
        assert c.live_objects() == 0                 # the child freed them
        made = mem.cache("made-by-child")            # a cache of the other process
        assert made.live_objects() == 3
        assert mem.cache_of(child["kept"][0]) is made
        made.free_bulk(np.array(child["kept"], dtype=np.uint64))
        assert made.live_objects() == 0 and made.validate() == [] and c.validate() == []
        states = {p["state"] for p in mem.processes()}
        assert states == {"attached", "closed"}
        assert mem.orphans() == {}
        with pytest.raises(KeyError, match="no live cache named 'nope'"):
            mem.cache("nope")


# -- objects crossing processes ------------------------------------------------------------------

def _consumer(name: str, q, done) -> None:
    mem = Memory.attach(name)
    c = mem.cache("pkt")
    frees = bad = 0
    while (item := q.get()) is not None:
        seq, p = item
        for a in p:                                 # an object handed out twice while live
            want = int(a).to_bytes(8, "little") + seq.to_bytes(8, "little")
            if bytes(mem.view(int(a))[:16]) != want:   # would hold a later round's seq
                bad += 1
        c.free_bulk(p)
        frees += len(p)
    done.put((frees, bad, mem.cpu))
    mem.close()


@pytest.mark.parametrize("slub", ["4.4", "7.0"])
def test_producer_consumer_remote_frees_are_exact(slub) -> None:
    rounds, bulk = (300, 64) if pyslub.COMPILED else (30, 32)
    with Memory.create_shared(size=SIZE, nr_cpus=2, slub=slub) as mem:
        c = mem.create_cache("pkt", 256)
        q, done = FORK.Queue(), FORK.Queue()
        pr = FORK.Process(target=_consumer, args=(mem.name, q, done))
        pr.start()
        for seq in range(rounds):
            p = c.alloc_many(bulk)
            for a in p:
                mem.view(int(a))[:16] = int(a).to_bytes(8, "little") + seq.to_bytes(8, "little")
            q.put((seq, p))
        q.put(None)
        frees, bad, their_cpu = done.get(timeout=120)
        pr.join(60)
        assert pr.exitcode == 0
        assert (frees, bad) == (rounds * bulk, 0)
        assert their_cpu != mem.cpu                 # the default policy spread the processes
        assert c.live_objects() == 0
        assert c.validate() == []
        st = c.stats()
        if slub == "4.4":                           # remote frees go through __slab_free
            assert st["free_slowpath"] >= rounds
        occ = c.occupancy()
        c.flush_all()
        assert c.live_objects() == 0 and c.occupancy()["objects"] == 0, occ


def test_fork_child_is_one_more_process() -> None:
    with Memory.create_shared(size=SIZE, nr_cpus=2) as mem:
        c = mem.create_cache("objs", 128)
        mine = c.alloc_many(5)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:                                # the child: its own slot, its own seat
            try:
                got = c.alloc_many(7)
                c.free_bulk(mine.copy())
                os.write(w, json.dumps([int(a) for a in got]).encode())
                mem.close()
            finally:
                os._exit(0)
        os.close(w)
        theirs = json.loads(os.read(r, 1 << 16))
        os.close(r)
        os.waitpid(pid, 0)
        assert c.live_objects() == 7                # ours were freed by the child
        slots = {p["pid"]: p for p in mem.processes()}
        assert slots[pid]["state"] == "closed" and slots[os.getpid()]["state"] == "attached"
        assert mem.orphans() == {}                  # a closed process's objects are not orphans
        c.free_bulk(np.array(theirs, dtype=np.uint64))
        assert c.live_objects() == 0 and c.validate() == []


# -- lifetime ----------------------------------------------------------------------------------

def test_close_unlink_and_the_context_manager() -> None:
    with Memory.create_shared(size=SIZE, nr_cpus=2) as mem:
        name = mem.name
        assert name in shm_names()
        other = Memory.attach(name)
        c = other.cache("kmalloc-64")
        a = other.kmalloc(50)
        other.close()
        other.close()                               # idempotent
        for op in (c.alloc, lambda: c.free(a), lambda: other.kmalloc(8),
                   lambda: c.alloc_many(2), other.orphans):
            with pytest.raises(SlabError, match="closed"):
                op()
        mem.kfree(a)                                # the creator still works
        assert mem.cache("kmalloc-64").live_objects() == 0
        tmp = mem.create_cache("tmp", 32)           # the multi-step operations, gated
        tmp.free_bulk(tmp.alloc_many(100))
        tmp.flush_cpu()
        tmp.shrink()
        assert tmp.validate() == []
        tmp.destroy()
        with pytest.raises(KeyError):
            mem.cache("tmp")
    assert name not in shm_names()                  # the creator's with block unlinked it
    with pytest.raises(FileNotFoundError):
        Memory.attach(name)
    mem.close()
    priv = Memory(size=SIZE, nr_cpus=2)
    with pytest.raises(SlabError, match="private"):
        priv.orphans()
    with pytest.raises(SlabError, match="private"):
        priv.unlink()


def test_large_kmalloc_has_an_owner_and_crosses_processes() -> None:
    with Memory.create_shared(size=SIZE, nr_cpus=2) as mem:
        a = mem.kmalloc(100_000)
        mem.view(a)[:5] = b"large"
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                ok = bytes(mem.view(a)[:5]) == b"large"
                mem.kfree(a)
                b = mem.kmalloc(20_000)
                os.write(w, json.dumps([ok, b]).encode())
                os.kill(os.getpid(), signal.SIGKILL)   # dies holding b
            finally:
                os._exit(1)
        os.close(w)
        ok, b = json.loads(os.read(r, 1 << 16))
        os.close(r)
        os.waitpid(pid, 0)
        assert ok
        assert {k: v.tolist() for k, v in mem.orphans().items()} == {pid: [b]}
        rep = mem.recover()
        assert rep["dead_pids"] == [pid] and rep["orphans"] == 1
        mem.kfree(b)
        assert mem.orphans() == {}
        with pytest.raises(SlabError, match="not on a slab page"):   # a double kfree
            mem.kfree(b)


# -- process death ---------------------------------------------------------------------------------

def test_orphans_are_exactly_the_dead_process_objects() -> None:
    with Memory.create_shared(size=SIZE, nr_cpus=2, slub="6.18") as mem:
        c = mem.create_cache("obj", 96, sheaf_capacity=16)
        mine = c.alloc_many(40)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                held = np.concatenate([c.alloc_many(30), np.array([c.alloc()], np.uint64)])
                c.free_bulk(held[:5].copy())
                os.write(w, json.dumps([int(a) for a in held[5:]]).encode())
                os.kill(os.getpid(), signal.SIGKILL)
            finally:
                os._exit(1)
        os.close(w)
        theirs = sorted(json.loads(os.read(r, 1 << 16)))
        os.close(r)
        os.waitpid(pid, 0)
        orph = mem.orphans()
        assert list(orph) == [pid] and orph[pid].tolist() == theirs
        assert [p["state"] for p in mem.processes() if p["pid"] == pid] == ["dead"]
        rep = mem.recover()
        assert rep["dead_pids"] == [pid] and rep["orphans"] == len(theirs)
        assert c.validate() == [] and c.live_objects() == 40 + len(theirs)
        c.free_bulk(orph[pid])                       # any process may free them
        c.free_bulk(mine)
        assert c.live_objects() == 0 and mem.orphans() == {}
        mem.recover()                               # the dead slot, now unnamed, is freed
        assert [p for p in mem.processes() if p["pid"] == pid] == []


KILL_PROGRAM = textwrap.dedent("""
    import json, os, random, signal, sys, time
    import multiprocessing as mp
    import numpy as np
    import pyslub
    from pyslub import Memory

    slub, rounds = sys.argv[1], int(sys.argv[2])
    hardening = {}
    if slub.endswith("-hardened"):                  # encoded, shuffled, pointer mid-object
        slub = slub.split("-")[0]
        hardening = {"freelist_hardened": True, "freelist_random": True, "freeptr": "middle"}
    STRATEGIES = ["detached", "lookahead-fwd", "lookahead", "swap", "bulk-v2"]

    def worker(name, seed, ready):
        mem = Memory.attach(name)
        c = mem.cache("obj")
        rng = random.Random(seed)
        held = []
        ready.set()
        while True:                                 # until SIGKILL, anywhere in an operation
            with mem.on_cpu(rng.randrange(2)):      # (also on the parent's cpu)
                held.append(c.alloc_many(rng.randint(1, 150)))
                if len(held) > 12:
                    c.free_bulk(held.pop(rng.randrange(len(held))),
                                strategy=rng.choice(STRATEGIES))
                c.free(c.alloc())
                if rng.random() < 0.05:
                    c.flush_cpu()
                if rng.random() < 0.05:
                    mem.kfree(mem.kmalloc(rng.choice([40, 300, 9000])))

    ctx = mp.get_context("fork")
    rng = random.Random(7)
    mem = Memory.create_shared(size=128 << 20, nr_cpus=2, slub=slub, **hardening)
    cap = {"6.18": {"sheaf_capacity": 24}}.get(slub, {})
    c = mem.create_cache("obj", 192, **cap)
    mine, out = [], {"rounds": 0, "orphans": 0, "reclaimed": 0, "damaged": 0, "errors": []}
    for r in range(rounds):
        ready = ctx.Event()
        pr = ctx.Process(target=worker, args=(mem.name, r, ready))
        pr.start()
        ready.wait(60)
        t_end = time.monotonic() + rng.uniform(0.02, 0.25)
        while time.monotonic() < t_end:             # both processes at work
            with mem.on_cpu(r % 2):
                p = c.alloc_many(40)
                for a in p[:4]:
                    mem.view(int(a))[:8] = int(a).to_bytes(8, "little")
                mine.append(p)
                if len(mine) > 8:
                    c.free_bulk(mine.pop(0))
        os.kill(pr.pid, signal.SIGKILL)
        pr.join()
        for cpu in (0, 1):                          # survivors go on before any recovery
            with mem.on_cpu(cpu):
                c.free_bulk(c.alloc_many(100))
        rep = mem.recover()
        orph = mem.orphans().get(pr.pid, np.zeros(0, np.uint64))   # kmalloc ones too
        in_c = np.array([a for a in orph.tolist() if mem.ksize(a) == c.size
                         and mem.cache_of(a) is c], dtype=np.uint64)
        allm = np.concatenate(mine)
        errs = out["errors"]
        if len(np.unique(allm)) != len(allm):
            errs.append(f"round {r}: one of our objects twice")
        if set(orph.tolist()) & set(allm.tolist()):
            errs.append(f"round {r}: an object of ours listed as an orphan")
        for p in mine:
            for a in p[:4]:
                if bytes(mem.view(int(a))[:8]) != int(a).to_bytes(8, "little"):
                    errs.append(f"round {r}: contents of {int(a):#x} changed")
        v = c.validate()
        if v:
            errs.append(f"round {r}: validate {v[:2]}")
        if c.live_objects() != len(allm) + len(in_c):
            errs.append(f"round {r}: live {c.live_objects()} != {len(allm)} + {len(in_c)}")
        if rep["orphans"] != len(orph) + sum(len(v) for k, v in mem.orphans().items()
                                              if k != pr.pid):
            errs.append(f"round {r}: recover counted {rep['orphans']} orphans")
        out["rounds"] += 1
        out["orphans"] += len(orph)
        out["reclaimed"] += rep["reclaimed_objects"] + rep["reclaimed_pages"]
        out["damaged"] += rep["damaged"]
        mem.kfree_bulk(orph)                        # any cache, and large blocks
        if mem.orphans():
            errs.append(f"round {r}: orphans left after freeing them")
    for p in mine:
        c.free_bulk(p)
    c.flush_all()
    out["final_live"] = c.live_objects()
    out["final_validate"] = c.validate()
    out["final_objects"] = c.occupancy()["objects"]
    mem.close()
    mem.unlink()
    out["compiled"] = pyslub.COMPILED
    print(json.dumps(out))
""")

KILL_RUNS = {("4.4", "compiled"): 20, ("7.0", "compiled"): 12, ("6.18", "compiled"): 8,
             ("4.4-hardened", "compiled"): 8, ("4.4", "pure"): 3, ("7.0", "pure"): 2}
_kill_results: dict = {}


@skip_in_rerun
@pytest.mark.parametrize(("slub", "mode"), list(KILL_RUNS))
def test_sigkill_anywhere_then_recover(slub, mode) -> None:
    keys = [(KILL_PROGRAM, (s, str(n)), m) for (s, m), n in KILL_RUNS.items()]
    launch_all(keys, _kill_results)
    key = (KILL_PROGRAM, (slub, str(KILL_RUNS[slub, mode])), mode)
    out = report(_kill_results[key], key)
    assert out["compiled"] == (mode == "compiled")
    assert out["errors"] == []
    assert out["rounds"] == KILL_RUNS[slub, mode]
    assert out["orphans"] > 0                       # the victims died holding objects
    assert out["final_live"] == 0 and out["final_validate"] == []
    assert out["final_objects"] == 0                # nothing lost: every slab is empty again
