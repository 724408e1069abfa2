"""Corrupted object memory and double frees must never crash the process.

pyslub's promise (slab.py header, README): every free pointer loaded from object memory is
checked, a corrupted freelist is reported and cut instead of being followed out of the arena.
Each case runs in a child process (a crash would take pytest down with it), once with the
compiled core and once with ``PYSLUB_PURE=1``.  A case passes when the child exits normally and
the corruption *surfaced*: an exception (SlabError / MemoryError only -- an IndexError or
OverflowError escaping from the core is itself a failure), a kernel-style report in
``cache.reports``, or a problem listed by ``cache.validate()``.

Corruption is written the way a use-after-free does it: through a ``cache.view()`` taken while
the object was allocated and kept after it was freed (plain caches keep the free pointer at
offset 0, inside the object).  One case writes the arena directly (``Memory.raw``): for
SLAB_POISON caches the free pointer sits behind the object, where only an overflow of the
object itself can reach it.
"""

from __future__ import annotations

import pytest
from childproc import MODES, launch_all, report

import pyslub

# Children are started together (the machine has several cores; each child is mostly
# interpreter start-up): the module fixture launches the jobs of every selected test at once.
_JOBS = {}        # test function name -> params -> (script, args, mode)
_RESULTS = {}


def job(test_name):
    def register(make):
        _JOBS[test_name] = make
        return make
    return register


@pytest.fixture(scope="module")
def children(request):
    keys = set()
    for item in request.session.items:
        if item.module is not None and item.module.__name__ == __name__ \
                and item.originalname in _JOBS and hasattr(item, "callspec"):
            keys.add(_JOBS[item.originalname](**item.callspec.params))
    return launch_all(keys, _RESULTS)


def run_child(children, key) -> dict:
    if key not in children:                 # not pre-launched (e.g. run by name): run now
        launch_all([key], children)
    return report(children[key], key)


# =============================================================================================
# Child program: corrupt a free pointer, then run one operation on a fresh arena per op
# =============================================================================================

CORRUPT = r'''
import json, struct, sys
import numpy as np
import pyslub
from pyslub import SlabError

KIND = sys.argv[1]
SCENARIOS = [s.split(":") for s in sys.argv[2].split(",")]     # "where:flags"
STRATEGIES = pyslub.FREE_BULK_STRATEGIES
OPS = ["validate", "alloc", "alloc_bulk", "free", "flush_cpu", "shrink", "destroy",
       "sequence"] + ["free_bulk:" + s for s in STRATEGIES]
ARENA = 1 << 20
EXPECTED = (SlabError, MemoryError)
VIEWS = {}


def setup(where, flags):
    """Three full slabs of 64-byte objects (the third is cpu 0's slab for plain caches) and
    four objects freed in one of them: ``victims``, in the order they were freed."""
    mem = pyslub.Memory(size=ARENA, nr_cpus=2)
    c = mem.create_cache("victim", 64, flags=flags)
    foreign = mem.create_cache("other", 64).alloc()
    n = c.info["objs_per_slab"]
    objs = [c.alloc() for _ in range(3 * n)]
    if where == "cpu":               # cpu slab: frees go onto the lockless cpu freelist
        victims = objs[-4:]
        VIEWS.update((x, c.view(x)) for x in victims)     # kept past the free: use after free
        for x in victims:
            c.free(x)
    else:                            # first slab: frees go to page.freelist; the slab is
        victims = objs[:4]           # frozen on cpu 0's partial list ("cpu_partial"), or
        VIEWS.update((x, c.view(x)) for x in victims)     # moved to the node partial list
        for x in victims:            # by a flush ("node")
            c.free(x)
        if where == "node":
            c.flush_cpu()
    assert c.info["offset"] == 0     # the free pointer is the object's first word
    live = [x for x in objs if x not in victims]
    return mem, c, foreign, n, objs, victims, live


def corrupt(mem, c, foreign, n, objs, victims):
    head = victims[-1]               # LIFO: the last one freed heads the freelist
    other_slab = objs[n] if c.slab_of(head) != c.slab_of(objs[n]) else objs[0]
    at, value = head, None
    if KIND == "huge":
        value = 0x7FFF_FFFF_FFFF_F000
    elif KIND == "negative":
        value = -4096
    elif KIND == "all_ones":
        value = -1                   # 0xffff_ffff_ffff_ffff as stored
    elif KIND == "beyond_arena":
        value = ARENA + 64
    elif KIND == "page0":
        value = 8                    # the reserved NULL page
    elif KIND == "free_page":
        value = ARENA - 4096 + 64    # the arena's last page: free in the buddy allocator
    elif KIND == "other_slab":
        value = other_slab
    elif KIND == "other_cache":
        value = foreign
    elif KIND == "unaligned":
        value = head + 3
    elif KIND == "interior":
        value = head + 8             # word aligned but inside the object
    elif KIND == "self_loop":
        value = head
    elif KIND == "cycle":            # tail -> head: the four free objects form a ring
        at, value = victims[0], head
    elif KIND == "middle":           # head -> v2 -> v1 -> (inside the head object)
        at, value = victims[1], head + 8
    else:
        raise SystemExit(f"unknown kind {KIND}")
    VIEWS[at][0:8] = struct.pack("<q", value)


def run_op(op, mem, c, n, objs, victims, live):
    errors, unexpected, handed_out = [], [], []

    def guard(f):
        try:
            return f()
        except EXPECTED as e:
            errors.append(f"{type(e).__name__}: {e}")
        except Exception as e:                      # escaped from the core: a bug
            unexpected.append(f"{type(e).__name__}: {e}")
        return None

    slab0 = [x for x in live if c.slab_of(x) == c.slab_of(victims[0])]
    elsewhere = [x for x in live if c.slab_of(x) != c.slab_of(victims[0])]
    if op == "alloc":
        for _ in range(2 * n):
            a = guard(c.alloc)
            if a is None:
                break
            handed_out.append(a)
    elif op == "alloc_bulk":
        p = np.zeros(2 * n, dtype=np.uint64)
        if guard(lambda: c.alloc_bulk(p)):
            handed_out.extend(int(x) for x in p)
    elif op == "free":
        for x in slab0[:8] + elsewhere[:8]:
            guard(lambda: c.free(x))
    elif op.startswith("free_bulk:"):
        p = np.array(slab0[:8] + elsewhere[:8], dtype=np.uint64)
        np.random.default_rng(7).shuffle(p)
        guard(lambda: c.free_bulk(p, strategy=op.split(":")[1]))
    elif op == "flush_cpu":
        guard(c.flush_cpu)
    elif op == "shrink":
        guard(c.shrink)
    elif op == "destroy":
        for x in live:
            guard(lambda: c.free(x))
        guard(c.destroy)
    elif op == "sequence":           # a bit of everything, on both cpus
        for cpu in (0, 1):
            with mem.on_cpu(cpu):
                got = [a for a in (guard(c.alloc) for _ in range(n // 2)) if a is not None]
                handed_out.extend(got)
                q = np.zeros(n, dtype=np.uint64)
                if guard(lambda: c.alloc_bulk(q)):
                    handed_out.extend(int(x) for x in q)
                guard(lambda: c.free_bulk(np.array(slab0[cpu::2][:6], dtype=np.uint64)))
                guard(c.flush_cpu)
        guard(c.shrink)
    # "validate": nothing but the validate() below
    dead = bool(c.dead)
    post = [] if dead else c.validate()
    bad = []
    if not dead:
        for a in handed_out:
            try:
                c.slab_of(a)
            except SlabError:
                bad.append(hex(a))
    return {"errors": errors[:5], "unexpected": unexpected[:5], "reports": list(c.reports)[:5],
            "post": post[:5], "dead": dead, "bad_handouts": bad[:5],
            "dup_handouts": len(handed_out) != len(set(handed_out))}


results = []
for where, flags in SCENARIOS:
    for op in OPS:
        mem, c, foreign, n, objs, victims, live = setup(where, int(flags))
        corrupt(mem, c, foreign, n, objs, victims)
        pre = c.validate()
        r = run_op(op, mem, c, n, objs, victims, live)
        total = mem.free_pages()
        # a destroyed cache must have returned every page (only "other"'s slab stays)
        r.update(where=where, flags=int(flags), op=op, pre=pre[:3],
                 pages_back=r["dead"] and total == (ARENA >> 12) - 2)
        results.append(r)
print(json.dumps({"compiled": pyslub.COMPILED, "results": results}))
'''

KINDS = ("huge", "negative", "all_ones", "beyond_arena", "page0", "free_page", "other_slab",
         "other_cache", "unaligned", "interior", "self_loop", "cycle", "middle")
# where the corrupted freelist lives; debug caches have no cpu slabs / cpu partial lists
SCENARIOS = f"cpu:0,cpu_partial:0,node:0,node:{pyslub.SLAB_CONSISTENCY_CHECKS}"


def surfaced(r: dict) -> bool:
    # a destroy that succeeded has nothing left to report on: it passes if every page of the
    # cache went back to the page allocator (the corrupted slab was empty by its counters)
    return bool(r["errors"] or r["reports"] or r["post"]
                or (r["op"] == "destroy" and r["dead"] and r["pages_back"]))


@job("test_corrupted_free_pointer")
def _corrupt_job(kind, mode):
    return (CORRUPT, (kind, SCENARIOS), mode)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
def test_corrupted_free_pointer(children, kind, mode):
    out = run_child(children, _corrupt_job(kind, mode))
    failures = []
    for r in out["results"]:
        where = f"{r['where']}/flags={r['flags']:#x}/{r['op']}"
        if not r["pre"]:
            failures.append(f"{where}: validate() right after the corruption found nothing")
        if r["unexpected"]:
            failures.append(f"{where}: exception escaped from the core: {r['unexpected']}")
        if not surfaced(r):
            failures.append(f"{where}: corruption did not surface (no exception, no report,"
                            f" validate() clean); bad handouts {r['bad_handouts']}")
    assert not failures, "\n".join(failures)


# A SLAB_POISON cache keeps the free pointer *behind* the object (offset = object_size).  A free
# pointer aimed at the last byte of the arena lies "in the same slab" when that slab is the
# arena's last page; loading the next free pointer from it reads (and deactivation writes) the
# word at fp + offset -- past the end of the arena.
POISON_END = r'''
import json, struct, sys
import pyslub
from pyslub import SlabError

op = sys.argv[1]
ARENA = 64 << 10
mem = pyslub.Memory(size=ARENA, nr_cpus=1)
c = mem.create_cache("p", 64, flags=pyslub.SLAB_POISON)
objs = []
while True:                                  # fill the arena: the last slab is its last page
    try:
        objs.append(c.alloc())
    except MemoryError:
        break
last = [o for o in objs if c.slab_of(o) == ARENA - 4096]
assert last and c.info["offset"] >= 8
c.free(last[0])
off = c.info["offset"]
mem.raw(last[0] + off, 8)[:] = struct.pack("<q", ARENA - 1)
pre = c.validate()
errors, unexpected = [], []
for _ in range(4):
    try:
        if op == "alloc":
            c.alloc()
        elif op == "flush_cpu":
            c.flush_cpu()
        else:
            c.shrink()
    except (SlabError, MemoryError) as e:
        errors.append(f"{type(e).__name__}: {e}")
    except Exception as e:
        unexpected.append(f"{type(e).__name__}: {e}")
print(json.dumps({"compiled": pyslub.COMPILED, "pre": pre, "errors": errors,
                  "unexpected": unexpected, "reports": list(c.reports), "post": c.validate()}))
'''


@job("test_poison_cache_free_pointer_at_arena_end")
def _poison_job(op, mode):
    return (POISON_END, (op,), mode)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("op", ["alloc", "flush_cpu", "shrink"])
def test_poison_cache_free_pointer_at_arena_end(children, op, mode):
    out = run_child(children, _poison_job(op, mode))
    assert out["pre"], "validate() must flag the bad free pointer"
    assert not out["unexpected"], out["unexpected"]
    assert out["errors"] or out["reports"] or out["post"]


# =============================================================================================
# Double frees
# =============================================================================================

DOUBLE = r'''
import json, sys
import numpy as np
import pyslub
from pyslub import SlabError

FLAGS = int(sys.argv[1])
CHECKS = sys.argv[2] == "1"
PATTERNS = ["bulk_dup:" + s for s in pyslub.FREE_BULK_STRATEGIES] + \
           ["bulk_adjacent:" + s for s in pyslub.FREE_BULK_STRATEGIES] + \
           ["free_then_bulk:" + s for s in pyslub.FREE_BULK_STRATEGIES] + ["free_twice"]


def one(pattern, where):
    mem = pyslub.Memory(size=1 << 20, nr_cpus=2, checks=CHECKS)
    c = mem.create_cache("d", 64, flags=FLAGS)
    n = c.info["objs_per_slab"]
    objs = [c.alloc() for _ in range(3 * n)]
    if where == "cpu":
        a, b, d = objs[-1], objs[-2], objs[-3]      # on the cpu slab (plain caches)
    else:
        a, b, d = objs[0], objs[1], objs[n]         # on full slabs, not the cpu slab
    kind, _, strategy = pattern.partition(":")
    step_errors, unexpected = [], []
    try:
        if kind == "bulk_dup":
            c.free_bulk(np.array([a, b, d, a], dtype=np.uint64), strategy=strategy)
        elif kind == "bulk_adjacent":
            c.free_bulk(np.array([d, a, a], dtype=np.uint64), strategy=strategy)
        elif kind == "free_then_bulk":
            c.free(a)
            c.free_bulk(np.array([b, a], dtype=np.uint64), strategy=strategy)
        else:
            c.free(a)
            c.free(a)
    except SlabError as e:
        step_errors.append(str(e))
    except Exception as e:
        unexpected.append(f"step {type(e).__name__}: {e}")
    # safe mode: a refused call changed nothing -- the other objects of the array are still
    # allocated to the caller (readable through view(), freeable once)
    others_live = True
    if CHECKS and kind != "free_twice":
        for x in (b, d) if kind == "bulk_dup" else (d,) if kind == "bulk_adjacent" else (b,):
            try:
                c.view(x)
            except SlabError:
                others_live = False
    # carry on using the cache: none of this may crash
    got = []
    later_errors = []
    def guard(f):
        try:
            return f()
        except (SlabError, MemoryError) as e:
            later_errors.append(f"{type(e).__name__}: {e}")
        except Exception as e:
            unexpected.append(f"later {type(e).__name__}: {e}")
    for cpu in (0, 1):
        with mem.on_cpu(cpu):
            for _ in range(n // 2):
                x = guard(c.alloc)
                if x is not None:
                    got.append(x)
            p = np.zeros(n, dtype=np.uint64)
            if guard(lambda: c.alloc_bulk(p)):
                got.extend(int(x) for x in p)
    guard(c.flush_cpu)
    guard(c.shrink)
    problems = c.validate()
    still_live = [x for x in objs if x not in (a, b, d)]
    reissued = sorted(set(got) & set(still_live))
    for x in set(got):
        guard(lambda: c.free(x))
    for x in still_live:
        guard(lambda: c.free(x))
    guard(c.destroy)
    return {"pattern": pattern, "where": where, "step_errors": step_errors,
            "unexpected": unexpected, "reports": list(c.reports)[:3], "validate": problems[:3],
            "dup_handouts": len(got) != len(set(got)), "reissued_live": len(reissued),
            "others_live": others_live}


results = [one(p, w) for p in PATTERNS for w in (("node",) if FLAGS else ("cpu", "node"))]
print(json.dumps({"compiled": pyslub.COMPILED, "results": results}))
'''


@job("test_double_free_plain_cache_does_not_crash")
def _double_plain_job(mode):
    return (DOUBLE, ("0", "0"), mode)


@job("test_double_free_with_consistency_checks_raises")
def _double_debug_job(mode):
    return (DOUBLE, (str(pyslub.SLAB_CONSISTENCY_CHECKS), "0"), mode)


@job("test_double_free_is_refused_in_safe_mode")
def _double_safe_job(mode):
    return (DOUBLE, ("0", "1"), mode)


@pytest.mark.parametrize("mode", MODES)
def test_double_free_is_refused_in_safe_mode(children, mode):
    """The default (checks=True): a double free, a free of an object freed earlier in the same
    array, or a duplicate inside one array is refused with SlabError before anything is freed;
    the array's other objects stay allocated to the caller; nothing is ever handed out twice."""
    out = run_child(children, _double_safe_job(mode))
    failures = []
    for r in out["results"]:
        tag = f"{r['pattern']}/{r['where']}"
        msgs = " ".join(r["step_errors"]).lower()
        if r["unexpected"]:
            failures.append(f"{tag}: exception escaped: {r['unexpected']}")
        if not ("duplicate" in msgs or "not allocated" in msgs):
            failures.append(f"{tag}: no SlabError naming the double free: {r['step_errors']}")
        if "nothing was freed" not in msgs and not r["pattern"].startswith("free_twice"):
            failures.append(f"{tag}: the error does not say nothing was freed")
        if not r["others_live"]:
            failures.append(f"{tag}: the other objects of the refused array were freed")
        if r["dup_handouts"] or r["reissued_live"] or r["validate"]:
            failures.append(f"{tag}: handed out twice / live object reissued / validate "
                            f"{r['validate']}")
    assert not failures, "\n".join(failures)
    assert len(out["results"]) == 2 * (3 * len(pyslub.FREE_BULK_STRATEGIES) + 1)


@pytest.mark.parametrize("mode", MODES)
def test_double_free_plain_cache_does_not_crash(children, mode):
    """checks=False and no debug flags: a double free is undefined behaviour, as in the kernel:
    objects may be handed out twice -- but the process must survive every later operation."""
    out = run_child(children, _double_plain_job(mode))
    bad = [f"{r['pattern']}/{r['where']}: {r['unexpected']}" for r in out["results"]
           if r["unexpected"]]
    assert not bad, "\n".join(bad)
    assert len(out["results"]) == 2 * (3 * len(pyslub.FREE_BULK_STRATEGIES) + 1)


@pytest.mark.parametrize("mode", MODES)
def test_double_free_with_consistency_checks_raises(children, mode):
    """checks=False, SLAB_CONSISTENCY_CHECKS: free_debug_processing finds the object on the
    slab's freelist (or twice in one detached list), refuses the list with "Object already
    free" and the caller gets a SlabError; afterwards no object is handed out twice or while
    still live."""
    out = run_child(children, _double_debug_job(mode))
    failures = []
    for r in out["results"]:
        tag = f"{r['pattern']}/{r['where']}"
        if r["unexpected"]:
            failures.append(f"{tag}: exception escaped: {r['unexpected']}")
        msgs = " ".join(r["step_errors"]).lower()
        if not ("already free" in msgs or "double free" in msgs):
            failures.append(f"{tag}: no SlabError naming the double free: {r['step_errors']}")
        if not any("already free" in m.lower() for m in r["reports"]):
            failures.append(f"{tag}: no report in cache.reports: {r['reports']}")
        if r["dup_handouts"] or r["reissued_live"]:
            failures.append(f"{tag}: an object was handed out twice after a refused free")
    assert not failures, "\n".join(failures)


KFREE_DUP = r'''
import json
import numpy as np
import pyslub
from pyslub import SlabError

mem = pyslub.Memory(size=4 << 20, nr_cpus=2, checks=False)
res = []
for case in ("large", "small", "mixed"):
    big = mem.kmalloc(20000)
    small = mem.kmalloc(50)
    other = mem.kmalloc(50)
    arr = {"large": [big, small, big], "small": [small, other, small],
           "mixed": [small, big, 0, small, big]}[case]
    p = np.array(arr, dtype=np.uint64)
    err, unexpected = None, None
    try:
        mem.kfree_bulk(p)
    except SlabError as e:
        err = str(e)
    except Exception as e:
        unexpected = f"{type(e).__name__}: {e}"
    for _ in range(3):                       # keep allocating: must not crash
        try:
            mem.kfree(mem.kmalloc(20000))
            mem.kmalloc(50)
        except (SlabError, MemoryError):
            pass
    res.append({"case": case, "error": err, "unexpected": unexpected})
print(json.dumps({"compiled": pyslub.COMPILED, "results": res}))
'''


@job("test_kfree_bulk_duplicate_entries_do_not_crash")
def _kfree_dup_job(mode):
    return (KFREE_DUP, (), mode)


@pytest.mark.parametrize("mode", MODES)
def test_kfree_bulk_duplicate_entries_do_not_crash(children, mode):
    out = run_child(children, _kfree_dup_job(mode))
    assert [r["unexpected"] for r in out["results"]] == [None, None, None]
