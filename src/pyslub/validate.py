"""``Cache.validate()``: walk every slab of a cache and list what is inconsistent.

In the spirit of mm/slub.c ``validate_slab_cache`` / ``on_freelist`` (spec §6.2), but it
repairs nothing: it reads read-only views of the page records, the cpu records, the node lists,
the objects' free pointers and (safe mode) the object state bytes, with every walk bounded, and
returns human-readable problems (empty list = consistent).  Corruption the core detected and
worked around earlier (``cache.reports``) is listed too.  Exact when no other thread operates on
the cache meanwhile; concurrently it may see transient states, but never changes anything.
"""

from __future__ import annotations

from typing import Any

from pyslub._layout import (
    C_FREELIST,
    C_PAGE,
    C_PARTIAL,
    CPU_STRIDE,
    FROZEN_BIT,
    INUSE_MASK,
    N_FULL_HEAD,
    N_NR_PARTIAL,
    N_PARTIAL_HEAD,
    N_PARTIAL_TAIL,
    OBJ_FREE,
    OBJ_LEAKED,
    OBJ_LIVE,
    OBJECTS_MASK,
    OBJECTS_SHIFT,
    ORDER_MASK,
    ORDER_SHIFT,
    PAGE_SHIFT,
    PAGE_SIZE,
    PG_PARTIAL,
    PM_COUNTERS,
    PM_FLAGS,
    PM_FREELIST,
    PM_NEXT,
    PM_PREV,
    PM_STRIDE,
    SLAB_STORE_USER,
)


def _walk(cache: Any, v: dict, page: int, head: int, what: str,
          problems: list[str]) -> list[int]:
    """Objects of the list starting at ``head``; stops at the first bad pointer or a cycle."""
    objs: list[int] = []
    seen: set[int] = set()
    obj = head
    pm = v["pm"]
    limit = (PAGE_SIZE << ((pm[page * PM_STRIDE + PM_FLAGS] >> ORDER_SHIFT) & ORDER_MASK)) \
        // cache.size
    while obj:
        if cache.check_addr(obj) != page:
            problems.append(f"slab {page << PAGE_SHIFT:#x}: {what} pointer {obj:#x} is not an "
                            "object of this slab (Freechain corrupt)")
            break
        if obj in seen or len(objs) > limit:
            problems.append(f"slab {page << PAGE_SHIFT:#x}: {what} cycle at {obj:#x}")
            break
        seen.add(obj)
        objs.append(obj)
        obj = cache.freepointer(obj)
    return objs


def _list_pages(cache: Any, v: dict, head: int, what: str, problems: list[str],
                backlinks: bool) -> list[int]:
    pages: list[int] = []
    seen: set[int] = set()
    prev = 0
    page = head
    pm = v["pm"]
    while page:
        if page in seen or len(pages) > cache.nr_slabs:
            problems.append(f"{what} list has a cycle at slab {page << PAGE_SHIFT:#x}")
            break
        if backlinks and pm[page * PM_STRIDE + PM_PREV] != prev:
            problems.append(f"{what} list: slab {page << PAGE_SHIFT:#x} has a wrong prev link")
        seen.add(page)
        pages.append(page)
        prev = page
        page = pm[page * PM_STRIDE + PM_NEXT]
    return pages


def validate_cache(cache: Any, earlier_reports: bool = True) -> list[str]:
    problems: list[str] = [f"reported: {r}" for r in cache.reports] if earlier_reports else []
    v = cache._views()
    pm, meta, desc, state, d = v["pm"], v["meta"], v["desc"], v["state"], v["d"]
    slabs = [a >> PAGE_SHIFT for a in cache.slabs()]
    slab_set = set(slabs)
    if len(slabs) != cache.nr_slabs:
        problems.append(f"nr_slabs is {cache.nr_slabs} but {len(slabs)} slabs exist")
    where: dict[int, str] = {}

    def place(page: int, what: str) -> None:
        if page not in slab_set:
            problems.append(f"{what} holds {page << PAGE_SHIFT:#x}, not a slab of this cache")
        elif page in where:
            problems.append(f"slab {page << PAGE_SHIFT:#x} is both {where[page]} and {what}")
        else:
            where[page] = what

    cpu_objs: dict[int, list[int]] = {}
    for cpu in range(cache.nr_cpus):
        c = v["cpu_base"] + cpu * CPU_STRIDE
        page = meta[c + C_PAGE]
        if page:
            place(page, f"cpu {cpu} slab")
            if page in slab_set:
                cpu_objs[page] = _walk(cache, v, page, meta[c + C_FREELIST],
                                       f"cpu {cpu} freelist", problems)
        elif meta[c + C_FREELIST]:
            problems.append(f"cpu {cpu} has a freelist but no cpu slab")
        for page in _list_pages(cache, v, meta[c + C_PARTIAL], f"cpu {cpu} partial", problems,
                                False):
            place(page, f"on cpu {cpu} partial list")
    partial = _list_pages(cache, v, desc[d + N_PARTIAL_HEAD], "node partial", problems, True)
    if len(partial) != desc[d + N_NR_PARTIAL]:
        problems.append(f"nr_partial is {desc[d + N_NR_PARTIAL]} but the list holds "
                        f"{len(partial)}")
    if partial and desc[d + N_PARTIAL_TAIL] != partial[-1]:
        problems.append("node partial list tail pointer is wrong")
    for page in partial:
        place(page, "on the node partial list")
    if cache.flags & SLAB_STORE_USER:
        for page in _list_pages(cache, v, desc[d + N_FULL_HEAD], "node full", problems, True):
            place(page, "on the node full list")

    # objects in sheaves: in use from their slab's view, free from the user's (7.0 / 6.18)
    in_sheaves: dict[int, set[int]] = {}
    sheaf_objs = cache.sheaf_objects()
    if len(set(sheaf_objs)) != len(sheaf_objs):
        problems.append(f"{len(sheaf_objs) - len(set(sheaf_objs))} objects are in sheaves "
                        "twice")
    for obj in sheaf_objs:
        page = cache.check_addr(obj)
        if page <= 0:
            problems.append(f"sheaf object {obj:#x} is not an object of this cache")
        else:
            in_sheaves.setdefault(page, set()).add(obj)

    total = 0
    for page in slabs:
        counters = pm[page * PM_STRIDE + PM_COUNTERS]
        inuse = counters & INUSE_MASK
        objects = (counters >> OBJECTS_SHIFT) & OBJECTS_MASK
        frozen = bool(counters & FROZEN_BIT)
        order = (pm[page * PM_STRIDE + PM_FLAGS] >> ORDER_SHIFT) & ORDER_MASK
        addr = page << PAGE_SHIFT
        total += objects
        if objects != (PAGE_SIZE << order) // cache.size:
            problems.append(f"slab {addr:#x}: objects {objects}, expected "
                            f"{(PAGE_SIZE << order) // cache.size} (Wrong number of objects)")
        if inuse > objects:
            problems.append(f"slab {addr:#x}: inuse {inuse} > objects {objects}")
        free = _walk(cache, v, page, pm[page * PM_STRIDE + PM_FREELIST], "freelist", problems)
        if inuse != objects - len(free):
            problems.append(f"slab {addr:#x}: inuse {inuse} but {objects} objects with "
                            f"{len(free)} free (Wrong object count)")
        on_cpu = cpu_objs.get(page, ())
        both = set(free) & set(on_cpu)
        if both:
            problems.append(f"slab {addr:#x}: {len(both)} objects on both the slab and the "
                            "cpu freelist")
        state_of = where.get(page)
        if frozen and (state_of is None or "cpu" not in state_of):
            problems.append(f"slab {addr:#x} is frozen but owned by no cpu ({state_of})")
        if not frozen and state_of is not None and "cpu" in state_of:
            problems.append(f"slab {addr:#x} is {state_of} but not frozen")
        if not frozen and free and state_of != "on the node partial list":
            problems.append(f"slab {addr:#x} has {len(free)} free objects but is on no "
                            "partial list (lost)")
        if state_of == "on the node partial list" and not free:
            problems.append(f"slab {addr:#x} is on the node partial list but full")
        on_partial = bool(pm[page * PM_STRIDE + PM_FLAGS] & PG_PARTIAL)
        if on_partial != (state_of == "on the node partial list"):
            problems.append(f"slab {addr:#x}: PG_partial is {on_partial} but it is "
                            f"{state_of or 'on no list'}")
        sheaved = in_sheaves.get(page, set())
        if sheaved & set(free):
            problems.append(f"slab {addr:#x}: {len(sheaved & set(free))} objects are both in a "
                            "sheaf and on the slab's freelist")
        if len(sheaved) > inuse:
            problems.append(f"slab {addr:#x}: {len(sheaved)} objects in sheaves but inuse "
                            f"{inuse}")
        if cache.checks:
            listed = set(free) | set(on_cpu) | sheaved
            for i in range(objects):
                obj = addr + i * cache.size
                sb = state[obj >> 3]
                if obj in listed:
                    if sb != OBJ_FREE:
                        problems.append(f"slab {addr:#x}: object {obj:#x} is on a freelist "
                                        f"but its state is {sb} (in use?)")
                elif sb == OBJ_FREE:
                    problems.append(f"slab {addr:#x}: object {obj:#x} is free but on no "
                                    "freelist (lost)")
                elif sb not in (OBJ_LIVE, OBJ_LEAKED):
                    problems.append(f"slab {addr:#x}: object {obj:#x} has state {sb}")
    if total != cache.total_objects:
        problems.append(f"total_objects is {cache.total_objects} but slabs hold {total}")
    return problems
