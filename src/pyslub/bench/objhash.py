"""slab_bulk_test03's object hash ("objhash"): scatter a bulk array over many slab pages.

Kernel: 16 ``hlist`` buckets; an object goes to bucket ``jhash(&obj->page, 8, 13) % 16`` where
``obj->page = virt_to_head_page(obj)``, pushed at the head (LIFO).  ``objhash_extract`` pops the
head of the first non-empty bucket, starting at the bucket of ``last_obj``'s page (or the next
bucket with ``no_match``), so consecutive ``no_match`` extractions do not share a page -- unless
every other bucket is empty: the walk then wraps round to ``last_obj``'s own bucket and the
kernel's "cannot happen" warning "Bad invarians: return same page" fires.

Here objects are whatever the allocator hands out (e.g. int addresses) and ``page_ptr_of(obj)``
plays ``virt_to_head_page``: it must return the 64-bit address of the object's simulated struct
page (pyslub: ``0xffffea0000000000 + page_index * 64``).  The kernel reads the cached
``last_obj->page`` field; we call ``page_ptr_of(last_obj)`` instead, which is the same value for
every object that went through ``add_one``.  Everything stays pure Python because the kernel
times this work (incl. jhash) inside the measured loop.
"""

from __future__ import annotations

from collections.abc import Callable, MutableSequence
from typing import Any

from pyslub.bench.jhash import jhash_8bytes

__all__ = [
    "HASHSZ",
    "MODULO_MATCH_DISABLED",
    "OBJHASH_INITVAL",
    "STRUCT_PAGE_SIZE",
    "VMEMMAP_BASE",
    "ObjHash",
    "struct_page_ptr",
]

HASHSZ = 16  # number of buckets
OBJHASH_INITVAL = 13  # jhash(&obj->page, 8, 13)
MODULO_MATCH_DISABLED = 32768 * 2  # modulo used when N-match is "disabled" (data <= 0)
VMEMMAP_BASE = 0xFFFF_EA00_0000_0000  # x86-64 vmemmap: struct page of page frame 0
STRUCT_PAGE_SIZE = 64  # sizeof(struct page)


def struct_page_ptr(page_index: int) -> int:
    """pyslub's simulated struct-page pointer of arena page ``page_index`` (a slab's head page).

    The compiled test03 loop (``pyslub.bench._native``) stores the same value in ``obj->page``.
    """
    return VMEMMAP_BASE + page_index * STRUCT_PAGE_SIZE

Obj = Any


class ObjHash:
    """The 16-bucket LIFO object hash of slab_bulk_test03.

    ``buckets[i]`` is a list of ``(obj, page)`` whose *end* is the hlist head.  Diagnostics
    (the kernel's ``pr_warn``/``pr_info`` "Bad invarians" lines) are appended to ``messages``
    and, if given, passed to ``printer``.
    """

    def __init__(
        self,
        page_ptr_of: Callable[[Obj], int],
        *,
        printer: Callable[[str], Any] | None = None,
    ) -> None:
        self.page_ptr_of = page_ptr_of
        self.printer = printer
        self.buckets: list[list[tuple[Obj, int]]] = [[] for _ in range(HASHSZ)]
        self.objhash_cnt = 0
        self.messages: list[str] = []
        self._last: tuple[Obj, int] = (None, 0)  # last extracted (obj, page), saves a lookup

    # -- helpers ------------------------------------------------------------------------------
    def _warn(self, text: str) -> None:
        self.messages.append(text)
        if self.printer is not None:
            self.printer(text)

    @staticmethod
    def bucket_of_page(page: int) -> int:
        """``jhash(&page, 8, 13) % HASHSZ``."""
        return jhash_8bytes(page, OBJHASH_INITVAL) % HASHSZ

    def bucket_of(self, obj: Obj) -> int:
        """Bucket an object hashes to (via its struct-page pointer)."""
        return jhash_8bytes(self.page_ptr_of(obj), OBJHASH_INITVAL) % HASHSZ

    def __len__(self) -> int:
        return self.objhash_cnt

    # -- the kernel's operations --------------------------------------------------------------
    def add_one(self, obj: Obj) -> bool:
        """``objhash_add_one``: push ``obj`` at the head of its page's bucket."""
        if not obj:  # NULL (None or address 0)
            self._warn("objhash_add_one(): Failed, NULL object")
            return False
        self.objhash_cnt += 1
        page = self.page_ptr_of(obj)
        self.buckets[jhash_8bytes(page, OBJHASH_INITVAL) % HASHSZ].append((obj, page))
        return True

    def extract(self, last_obj: Obj | None, no_match: bool) -> Obj | None:
        """``objhash_extract``: unlink and return the head object of the first non-empty bucket.

        Search starts at the bucket of ``last_obj``'s page (bucket 0 if None), one further with
        ``no_match`` (so the result is on another page than ``last_obj`` unless all other
        buckets are empty).  Returns None, with a warning, if fewer than 2 objects are stored.
        """
        if last_obj is None:
            last_page = None
            hash_idx = 0
        else:
            last = self._last
            last_page = last[1] if last_obj is last[0] else self.page_ptr_of(last_obj)
            hash_idx = jhash_8bytes(last_page, OBJHASH_INITVAL) % HASHSZ

        if self.objhash_cnt < 2:
            self._warn("Bad invarians: request too many objects")
            return None

        if no_match:  # start looking in/from the next hash bucket
            hash_idx = (hash_idx + 1) % HASHSZ

        buckets = self.buckets
        skip_bucket = 0
        # The kernel loops forever on an all-empty table; objhash_cnt >= 2 rules that out, but
        # bound the walk so a broken invariant cannot hang the interpreter.
        for _ in range(HASHSZ):
            bucket = buckets[hash_idx]
            if not bucket:
                skip_bucket += 1
                hash_idx = (hash_idx + 1) % HASHSZ
                continue  # skip to next hash bucket
            obj, page = pair = bucket.pop()
            self._last = pair
            if no_match and last_page is not None and page == last_page:
                self._warn("Bad invarians: return same page")
            self.objhash_cnt -= 1
            if skip_bucket >= HASHSZ // 2:
                self._warn(f"Bad invarians: search skipped many buckets: {skip_bucket}")
            return obj
        self._warn("Bad invarians: no object found/extracted")
        return None

    # -- the two inner loops of __benchmark_slab_bulk() ---------------------------------------
    def add_bulk(self, objs: MutableSequence[Obj], bulk: int) -> None:
        """Place ``objs[0:bulk]`` into the hash (``objhash_add_one`` each)."""
        add_one = self.add_one
        for j in range(bulk):
            add_one(objs[j])

    def extract_bulk(self, objs: MutableSequence[Obj], bulk: int, modulo_match: int) -> bool:
        """Refill ``objs[0:bulk]`` with objects to free, as test03's timed loop does.

        Every ``modulo_match``-th slot (j % N == 0) takes an object from the bucket of the
        *current* ``objs[0]`` (``no_match=False``); the others take one from a different page
        than the previous pick.  ``modulo_match <= 0`` disables matching (N = 65536).  Returns
        False where the kernel does ``goto out`` (extract returned NULL).
        """
        if modulo_match <= 0:
            modulo_match = MODULO_MATCH_DISABLED
        extract = self.extract
        last = None
        for j in range(bulk):
            if j % modulo_match == 0:  # noqa: SIM108 - match the page of the current objs[0]
                last = extract(objs[0], False)
            else:  # a page other than the previous pick's
                last = extract(last, True)
            if last is None:
                return False
            objs[j] = last
        return True

    # -- inspection ---------------------------------------------------------------------------
    def list_len(self) -> list[int]:
        """Length of each bucket (``objhash_list_len`` data)."""
        return [len(b) for b in self.buckets]

    def list_len_lines(self) -> list[str]:
        """The lines ``objhash_list_len()`` prints."""
        lens = self.list_len()
        lines = [f"objhash[{i}] list length: {n}" for i, n in enumerate(lens)]
        lines.append(f"objhash total: {sum(lens)}")
        return lines

    def pages(self) -> set[int]:
        """Distinct struct-page pointers currently stored."""
        return {page for bucket in self.buckets for _, page in bucket}

    def drain(self) -> list[Obj]:
        """Unlink everything (module exit): objects in bucket order, head first."""
        out: list[Obj] = []
        for bucket in self.buckets:
            out.extend(obj for obj, _ in reversed(bucket))
            bucket.clear()
        self.objhash_cnt = 0
        self._last = (None, 0)
        return out
