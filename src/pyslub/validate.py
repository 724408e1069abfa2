"""``KmemCache.validate()``: walk every slab of a cache and list what is inconsistent.

In the spirit of mm/slub.c ``validate_slab_cache`` / ``on_freelist`` (spec §6.2), but it
repairs nothing: it reads the page records and the objects' free pointers, with every walk
bounded, and returns human-readable problems (empty list = consistent).  Corruption the core
detected and worked around earlier (``cache.reports``) is listed too.
"""

from __future__ import annotations

from pyslub._layout import (
    C_FREELIST,
    C_PAGE,
    C_PARTIAL,
    CPU_STRIDE,
    FROZEN_BIT,
    INUSE_MASK,
    OBJECTS_MASK,
    OBJECTS_SHIFT,
    ORDER_MASK,
    ORDER_SHIFT,
    PAGE_SHIFT,
    PAGE_SIZE,
    PM_COUNTERS,
    PM_FLAGS,
    PM_FREELIST,
    PM_NEXT,
    PM_PREV,
    PM_STRIDE,
    SLAB_STORE_USER,
)


def _walk(cache, page: int, head: int, what: str, problems: list[str]) -> list[int]:
    """Objects of the list starting at ``head``; stops at the first bad pointer or a cycle."""
    objs: list[int] = []
    seen: set[int] = set()
    obj = head
    limit = (PAGE_SIZE << ((cache.pm[page * PM_STRIDE + PM_FLAGS] >> ORDER_SHIFT)
                           & ORDER_MASK)) // cache.size
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
        obj = cache.words[(obj + cache.offset) >> 3]
    return objs


def _list_pages(cache, head: int, what: str, problems: list[str], backlinks: bool) -> list[int]:
    pages: list[int] = []
    prev = 0
    page = head
    while page:
        if page in pages or len(pages) > cache.nr_slabs:
            problems.append(f"{what} list has a cycle at slab {page << PAGE_SHIFT:#x}")
            break
        if backlinks and cache.pm[page * PM_STRIDE + PM_PREV] != prev:
            problems.append(f"{what} list: slab {page << PAGE_SHIFT:#x} has a wrong prev link")
        pages.append(page)
        prev = page
        page = cache.pm[page * PM_STRIDE + PM_NEXT]
    return pages


def validate_cache(cache) -> list[str]:
    problems: list[str] = [f"reported: {r}" for r in cache.reports]
    slabs = [a >> PAGE_SHIFT for a in cache.slabs()]
    if len(slabs) != cache.nr_slabs:
        problems.append(f"nr_slabs is {cache.nr_slabs} but {len(slabs)} slabs exist")
    where: dict[int, str] = {}

    def place(page: int, what: str) -> None:
        if page not in slabs:
            problems.append(f"{what} holds {page << PAGE_SHIFT:#x}, not a slab of this cache")
        elif page in where:
            problems.append(f"slab {page << PAGE_SHIFT:#x} is both {where[page]} and {what}")
        else:
            where[page] = what

    cpu_objs: dict[int, list[int]] = {}
    for cpu in range(cache.nr_cpus):
        c = cpu * CPU_STRIDE
        page = cache.cpu_slab[c + C_PAGE]
        if page:
            place(page, f"cpu {cpu} slab")
            if page in slabs:
                cpu_objs[page] = _walk(cache, page, cache.cpu_slab[c + C_FREELIST],
                                       f"cpu {cpu} freelist", problems)
        elif cache.cpu_slab[c + C_FREELIST]:
            problems.append(f"cpu {cpu} has a freelist but no cpu slab")
        for page in _list_pages(cache, cache.cpu_slab[c + C_PARTIAL], f"cpu {cpu} partial",
                                problems, False):
            place(page, f"on cpu {cpu} partial list")
    partial = _list_pages(cache, cache.partial_head, "node partial", problems, True)
    if len(partial) != cache.nr_partial:
        problems.append(f"nr_partial is {cache.nr_partial} but the list holds {len(partial)}")
    if partial and cache.partial_tail != partial[-1]:
        problems.append("node partial list tail pointer is wrong")
    for page in partial:
        place(page, "on the node partial list")
    if cache.flags & SLAB_STORE_USER:
        for page in _list_pages(cache, cache.full_head, "node full", problems, True):
            place(page, "on the node full list")

    total = 0
    for page in slabs:
        counters = cache.pm[page * PM_STRIDE + PM_COUNTERS]
        inuse = counters & INUSE_MASK
        objects = (counters >> OBJECTS_SHIFT) & OBJECTS_MASK
        frozen = bool(counters & FROZEN_BIT)
        order = (cache.pm[page * PM_STRIDE + PM_FLAGS] >> ORDER_SHIFT) & ORDER_MASK
        addr = page << PAGE_SHIFT
        total += objects
        if objects != (PAGE_SIZE << order) // cache.size:
            problems.append(f"slab {addr:#x}: objects {objects}, expected "
                            f"{(PAGE_SIZE << order) // cache.size} (Wrong number of objects)")
        if inuse > objects:
            problems.append(f"slab {addr:#x}: inuse {inuse} > objects {objects}")
        free = _walk(cache, page, cache.pm[page * PM_STRIDE + PM_FREELIST], "freelist",
                     problems)
        if inuse != objects - len(free):
            problems.append(f"slab {addr:#x}: inuse {inuse} but {objects} objects with "
                            f"{len(free)} free (Wrong object count)")
        both = set(free) & set(cpu_objs.get(page, ()))
        if both:
            problems.append(f"slab {addr:#x}: {len(both)} objects on both the slab and the "
                            "cpu freelist")
        state = where.get(page)
        if frozen and (state is None or "cpu" not in state):
            problems.append(f"slab {addr:#x} is frozen but owned by no cpu ({state})")
        if not frozen and state is not None and "cpu" in state:
            problems.append(f"slab {addr:#x} is {state} but not frozen")
        if not frozen and free and state != "on the node partial list":
            problems.append(f"slab {addr:#x} has {len(free)} free objects but is on no "
                            "partial list (lost)")
        if state == "on the node partial list" and not free:
            problems.append(f"slab {addr:#x} is on the node partial list but full")
    if total != cache.total_objects:
        problems.append(f"total_objects is {cache.total_objects} but slabs hold {total}")
    return problems
