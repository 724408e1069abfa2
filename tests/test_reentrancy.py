"""Re-entry from the calling thread: hooks that call into the allocator during an operation.

Issue 7: a gc callback, a ``__del__``, a profile hook or a signal handler that runs while an
operation is in progress and calls pyslub again must get ``SlabError`` or be correctly
serialised, never corrupt state.  Compiled, the core is C code that runs no Python: hooks fire
only between operations (or inside ``validate()``, which is Python).  Uncompiled, every public
operation runs under the Memory's guard, which suspends the hooks it can and refuses the calls
it cannot prevent (``pyslub.memory._Guard``).

Each (hook, style, mode) is one child process (a crash takes only the child down) that runs
every operation with the hook installed, tracks who holds each address (the main loop or the
hook), and reports: addresses handed out twice while held, the errors each operation raised,
what each ``validate()`` returned while the hook was active, and -- hooks removed -- the final
``validate()``, and ``live_objects()`` after everything was freed.  ``style`` "catch": the hook
catches SlabError; "raise": it lets it propagate into whatever it interrupted.  After a refusal
escapes into the middle of an operation the Memory may declare itself unusable (every later
call raises SlabError): that is a clean outcome too.
"""

from __future__ import annotations

import pytest
from childproc import MODES, launch_all, report, skip_in_rerun

import pyslub

pytestmark = skip_in_rerun

HOOKS = ("gc", "del", "profile", "signal")
OPS = ("shrink", "free_bulk", "kfree_bulk", "alloc_bulk", "validate")
STYLES = {"gc": ("catch",), "del": ("catch",), "profile": ("catch", "raise"),
          "signal": ("catch", "raise")}

CHILD = r'''
import gc, json, signal, sys
import numpy as np
import pyslub
from pyslub import SlabError

HOOK, STYLE = sys.argv[1], sys.argv[2]
OPS = sys.argv[3].split(",")
ROUNDS = 24 if pyslub.COMPILED else 4
STRATEGIES = pyslub.FREE_BULK_STRATEGIES

mem = pyslub.Memory(size=64 << 20, nr_cpus=2)
c = mem.create_cache("victim", 64)
owner = {}                 # address -> "main" | "hook"
dups = []
hook_held = []
st = {"calls": 0, "ok": 0, "refused": 0, "busy": False}


def take(addrs, who):
    for a in addrs:
        if a in owner:
            dups.append(a)
        owner[a] = who


def give(addrs):
    for a in addrs:
        owner.pop(a)


def hook_action():
    """One call into the allocator, cycling alloc / alloc_bulk / free_bulk / free / kmalloc."""
    n = st["calls"] % 5
    if n == 0:
        a = c.alloc()
        take([a], "hook")
        hook_held.append(a)
    elif n == 1:
        p = np.zeros(8, dtype=np.uint64)
        c.alloc_bulk(p)
        take(p.tolist(), "hook")
        hook_held.extend(p.tolist())
    elif n == 2 and len(hook_held) >= 4:
        q = hook_held[-4:]
        del hook_held[-4:]
        give(q)
        try:
            c.free_bulk(np.array(q, dtype=np.uint64))
        except SlabError:
            take(q, "hook")            # refused: nothing was freed
            hook_held.extend(q)
            raise
    elif n == 3 and hook_held:
        a = hook_held.pop()
        give([a])
        try:
            c.free(a)
        except SlabError:
            take([a], "hook")
            hook_held.append(a)
            raise
    else:
        mem.kfree(mem.kmalloc(100))


def reenter(*_):
    if st["busy"]:                     # the hook's own calls do not re-enter the hook
        return
    st["busy"] = True
    st["calls"] += 1
    try:
        hook_action()
        st["ok"] += 1
    except SlabError:
        st["refused"] += 1
        if STYLE == "raise":
            raise
    finally:
        st["busy"] = False


class Finalized:
    def __del__(self):
        reenter()


def profile_hook(frame, event, arg):
    st["events"] = st.get("events", 0) + 1
    if st["events"] % 3 == 0:
        reenter()


def install():
    if HOOK == "gc":
        gc.set_threshold(1, 1, 1)
        gc.callbacks.append(lambda phase, info: reenter() if phase == "start" else None)
    elif HOOK == "del":
        gc.set_threshold(1, 1, 1)
    elif HOOK == "profile":
        sys.setprofile(profile_hook)
    elif HOOK == "signal":
        signal.signal(signal.SIGALRM, reenter)
        signal.setitimer(signal.ITIMER_REAL, 0.001, 0.001)


def uninstall():
    sys.setprofile(None)
    gc.callbacks.clear()
    gc.set_threshold(700, 10, 10)
    signal.setitimer(signal.ITIMER_REAL, 0, 0)
    signal.signal(signal.SIGALRM, signal.SIG_IGN)


def garbage():
    if HOOK == "del":                  # cycles: only the cyclic GC finalizes them
        for _ in range(20):
            f = Finalized()
            f.me = f


def one_round(op, r, held):
    """One operation of kind ``op`` by the main loop (held: addresses it keeps)."""
    if op == "shrink":
        p = np.zeros(300, dtype=np.uint64)
        c.alloc_bulk(p)
        take(p.tolist(), "main")
        keep, drop = p[::2].copy(), p[1::2].copy()
        give(drop.tolist())
        c.free_bulk(drop)
        c.shrink()
        give(keep.tolist())
        c.free_bulk(keep)
    elif op in ("free_bulk", "alloc_bulk"):
        n = (300, 100, 257)[r % 3] if op == "alloc_bulk" else 300
        p = np.zeros(n, dtype=np.uint64)
        c.alloc_bulk(p)
        take(p.tolist(), "main")
        give(p.tolist())
        c.free_bulk(p, strategy=STRATEGIES[r % len(STRATEGIES)])
    elif op == "kfree_bulk":
        sizes = [8, 64, 100, 512, 4096, 16384] * 50
        p = np.array([mem.kmalloc(s) for s in sizes], dtype=np.uint64)
        take(p.tolist(), "main")
        give(p.tolist())
        mem.kfree_bulk(p)
    elif op == "validate":
        a = c.alloc()
        take([a], "main")
        held.append(a)
        if r % 2:
            a = held.pop(0)
            give([a])
            c.free(a)
        return c.validate()
    return None


result = {"compiled": pyslub.COMPILED, "ops": {}}
for op in OPS:
    errors = {}
    seen_problems = []
    held = []
    install()
    for r in range(ROUNDS):
        garbage()
        try:
            problems = one_round(op, r, held)
            if problems:
                seen_problems.append(problems[:3])
        except SlabError as e:
            errors.setdefault("SlabError: " + str(e)[:70], 0)
            errors["SlabError: " + str(e)[:70]] += 1
        except Exception as e:         # anything else is a failure of the test
            errors.setdefault(type(e).__name__ + ": " + str(e)[:70], 0)
            errors[type(e).__name__ + ": " + str(e)[:70]] += 1
    uninstall()
    gc.collect()
    broken = False
    final = None
    live = None
    try:
        final = c.validate()
        rest = list(owner)
        if rest:
            give(rest)
            c.free_bulk(np.array(rest, dtype=np.uint64))
        hook_held.clear()
        live = c.live_objects()
        final += c.validate()
    except SlabError as e:
        broken = "unusable" in str(e)
        final = [str(e)]
    result["ops"][op] = {"errors": errors, "problems_during": seen_problems[:3],
                         "n_problems_during": len(seen_problems), "final": final[:5],
                         "live": live, "broken": broken, "dups": len(dups)}
    print(op, json.dumps(result["ops"][op]), file=sys.stderr, flush=True)
    dups.clear()
    if broken:
        break
result["hook"] = {k: v for k, v in st.items() if k != "busy"}
print(json.dumps(result))
'''

_RESULTS: dict = {}


def _key(hook: str, style: str, mode: str):
    return (CHILD, (hook, style, ",".join(OPS)), mode)


# "raise" matters where a refusal can happen, uncompiled: compiled there is no guard to refuse
# (hooks run between operations), so a raising hook behaves as a catching one
CHILDREN = [(h, s, m) for h in HOOKS for s in STYLES[h] for m in MODES
            if s == "catch" or m == "pure"]
CASES = [(h, s, op, m) for h, s, m in CHILDREN for op in OPS]


@pytest.fixture(scope="module")
def children():
    return launch_all([_key(h, s, m) for h, s, m in CHILDREN], _RESULTS)


@pytest.mark.parametrize("hook,style,op,mode", CASES)
def test_hook_calling_in_is_refused_or_serialised(children, hook, style, op, mode):
    key = _key(hook, style, mode)
    out = report(children[key], key)
    res = out["ops"].get(op)
    if res is None:
        # an earlier operation of this child left the Memory unusable (a clean stop)
        broken = [o for o, r in out["ops"].items() if r["broken"]]
        assert broken and style == "raise", out["ops"]
        return
    assert res["dups"] == 0, f"{res['dups']} addresses handed out twice while held: {res}"
    foreign = [e for e in res["errors"] if not e.startswith("SlabError")]
    assert foreign == [], f"errors other than SlabError escaped: {res['errors']}"
    if style == "catch":
        assert res["errors"] == {}, res      # refusals were caught by the hook itself
    if res["broken"]:
        assert style == "raise", res         # only a refusal escaping may break it
        return
    assert res["final"] == [], res
    assert res["live"] == 0, res
    assert out["hook"]["calls"] > 0          # the hook really ran and called in
    assert res["n_problems_during"] == 0, res["problems_during"]


def test_uncompiled_signal_handler_is_refused_inside_an_operation(children):
    """The guard really sees signal handlers land inside operations (pure mode, handler
    catching): some calls are refused, and none of them corrupted anything (above)."""
    out = report(children[_key("signal", "catch", "pure")], _key("signal", "catch", "pure"))
    assert out["hook"]["refused"] > 0, out["hook"]
    assert pyslub.FREE_BULK_STRATEGIES            # (the child cycles through all of them)


CREATION_HOOK = r"""
import gc, json, sys
import pyslub
mem = pyslub.Memory(size=32 << 20, nr_cpus=2)
seen = {"refused": 0, "ok": 0}
def creating():
    f = sys._getframe(1)
    while f is not None:
        if f.f_code.co_name == "_create_cache_locked":
            return True
        f = f.f_back
    return False
def hook(phase, info):
    if phase == "start" and not seen.get("busy") and creating():
        seen["busy"] = True
        try:
            mem.kfree(mem.kmalloc(8))      # the first kmalloc creates the kmalloc caches
            seen["ok"] += 1
        except pyslub.SlabError:
            seen["refused"] += 1
        finally:
            seen["busy"] = False
gc.set_threshold(1, 1, 1)
gc.callbacks.append(hook)
a = mem.kmalloc(100)                       # the caches' creation runs Python code: gc runs
gc.callbacks.clear()
mem.kfree(a)
c = mem.cache_of(mem.kmalloc(8))
print(json.dumps(dict(seen, live=sum(k.live_objects() for k in mem.caches.values()),
                      validate=c.validate(), compiled=pyslub.COMPILED)))
"""


@skip_in_rerun
@pytest.mark.parametrize("mode", MODES)
def test_a_hook_during_cache_creation_is_refused_not_deadlocked(mode) -> None:
    """A gc callback calling kmalloc while the kmalloc caches are being created (under the
    registry locks) used to wait forever for a lock its own thread held."""
    key = (CREATION_HOOK, (), mode)
    res = launch_all([key], {})[key]
    out = report(res, key)
    if mode == "compiled":
        assert out["refused"] >= 1 and out["ok"] == 0     # refused while the creation ran
    else:                                      # the guard pauses the cyclic GC in operations
        assert out["refused"] == out["ok"] == 0
    assert out["live"] == 1 and out["validate"] == []
