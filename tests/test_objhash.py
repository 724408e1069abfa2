"""slab_bulk_test03 objhash: bucket choice, LIFO order, extract/skip/warn semantics."""

from __future__ import annotations

import itertools
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from pyslub.bench.jhash import jhash_8bytes
from pyslub.bench.objhash import HASHSZ, MODULO_MATCH_DISABLED, ObjHash

# A fake address space like pyslub's: order-1 slabs (8 KiB) of 32 x 256-byte objects, slab i at
# ARENA + i * 8192, its struct page at VMEMMAP + i * 64.
ARENA = 0x7F00_0000_0000
SLAB = 8192
OBJ = 256
VMEMMAP = 0xFFFF_EA00_0000_0000


def page_ptr_of(addr: int) -> int:
    return VMEMMAP + (addr - ARENA) // SLAB * 64


def obj(page_index: int, slot: int = 0) -> int:
    return ARENA + page_index * SLAB + slot * OBJ


def bucket(page_index: int) -> int:
    return jhash_8bytes(VMEMMAP + page_index * 64, 13) % HASHSZ


def pages_in_bucket(b: int, n: int, start: int = 0) -> list[int]:
    out, i = [], start
    while len(out) < n:
        if bucket(i) == b:
            out.append(i)
        i += 1
    return out


def prefilled(n_pages: int = 128) -> ObjHash:
    h = ObjHash(page_ptr_of)
    for p in range(n_pages):
        for s in range(32):
            assert h.add_one(obj(p, s))
    return h


# jhash(&page, 8, 13) % 16 of the first 128 struct pages, computed with gcc (see test_jhash.py)
C_BUCKETS_128 = [
    3, 3, 14, 0, 10, 11, 11, 6, 2, 3, 8, 14, 13, 8, 0, 2, 7, 5, 13, 12, 8, 9, 15, 0, 9, 9, 8, 6,
    1, 7, 3, 15, 6, 5, 2, 15, 7, 7, 7, 2, 6, 1, 9, 11, 4, 7, 0, 3, 8, 3, 7, 0, 4, 13, 4, 2, 4,
    14, 2, 1, 13, 8, 6, 9, 8, 14, 10, 2, 5, 6, 9, 4, 4, 7, 8, 9, 14, 4, 7, 15, 2, 9, 9, 12, 8, 2,
    11, 13, 2, 10, 7, 15, 5, 8, 12, 3, 8, 6, 7, 9, 1, 2, 12, 7, 12, 10, 14, 14, 14, 0, 11, 0, 4,
    12, 0, 5, 9, 11, 1, 3, 0, 12, 14, 11, 14, 4, 5, 6,
]  # fmt: skip


def test_prefill_bucket_lengths_match_kernel_hash() -> None:
    h = prefilled()
    assert len(h) == h.objhash_cnt == 4096
    counts = Counter(C_BUCKETS_128)
    assert h.list_len() == [32 * counts[i] for i in range(HASHSZ)]
    lines = h.list_len_lines()
    assert lines[3] == f"objhash[3] list length: {32 * counts[3]}"
    assert lines[-1] == "objhash total: 4096"
    assert len(h.pages()) == 128


def test_lifo_within_bucket() -> None:
    p = pages_in_bucket(5, 2)
    h = ObjHash(page_ptr_of)
    a, b, c, d = obj(p[0], 0), obj(p[1], 0), obj(p[0], 1), obj(p[1], 7)
    for o in (a, b, c, d):
        h.add_one(o)
    assert h.list_len()[5] == 4
    # newest first, whatever the page, as long as the bucket is non-empty
    assert h.extract(a, False) == d
    assert h.extract(a, False) == c
    assert h.extract(d, False) == b
    assert h.extract(None, False) is None  # only 1 left
    assert h.messages == ["Bad invarians: request too many objects"]
    assert h.objhash_cnt == 1 and h.list_len()[5] == 1


def test_count_below_two_returns_none() -> None:
    h = ObjHash(page_ptr_of, printer=(printed := []).append)
    assert h.extract(None, False) is None
    h.add_one(obj(0))
    assert h.extract(obj(0), True) is None and h.objhash_cnt == 1
    assert printed == ["Bad invarians: request too many objects"] * 2
    h.add_one(obj(1))
    assert h.extract(None, False) is not None and h.objhash_cnt == 1


def test_start_bucket_and_wraparound() -> None:
    b3, b14, b15 = pages_in_bucket(3, 1)[0], pages_in_bucket(14, 1)[0], pages_in_bucket(15, 1)[0]
    h = ObjHash(page_ptr_of)
    for p in (b3, b14, b3, b14):
        h.add_one(obj(p))
    assert h.bucket_of(obj(b3)) == 3
    # last_obj None: search from bucket 0 -> first non-empty is 3 (3 skips, no warning)
    assert h.bucket_of(h.extract(None, False)) == 3
    # no_match from bucket 3 -> starts at 4 -> 14 (10 skips: "search skipped many buckets")
    assert h.bucket_of(h.extract(obj(b3), True)) == 14
    assert h.messages == ["Bad invarians: search skipped many buckets: 10"]
    # no_match from bucket 15 wraps to 0 and finds 3 before 14
    assert h.bucket_of(h.extract(obj(b15), True)) == 3
    assert h.objhash_cnt == 1


def test_no_match_from_none_starts_at_bucket_1() -> None:
    p0, p1 = pages_in_bucket(0, 1)[0], pages_in_bucket(1, 1)[0]
    h = ObjHash(page_ptr_of)
    h.add_one(obj(p0))
    h.add_one(obj(p1))
    h.add_one(obj(p0, 1))
    assert h.extract(None, True) == obj(p1)
    assert h.extract(None, False) == obj(p0, 1)


def test_no_match_wraps_to_own_bucket_with_warning() -> None:
    # all objects in one bucket: no_match walks the 15 other (empty) buckets and comes back,
    # returning an object of the same page; the kernel warns "return same page" then
    p = pages_in_bucket(9, 1)[0]
    h = ObjHash(page_ptr_of)
    for s in range(3):
        h.add_one(obj(p, s))
    assert h.extract(obj(p, 0), True) == obj(p, 2)
    assert h.messages == [
        "Bad invarians: return same page",
        "Bad invarians: search skipped many buckets: 15",
    ]


def test_add_one_null() -> None:
    h = ObjHash(page_ptr_of)
    assert not h.add_one(None)
    assert not h.add_one(0)
    assert h.objhash_cnt == 0 and h.messages == ["objhash_add_one(): Failed, NULL object"] * 2


def test_no_match_chain_never_repeats_page() -> None:
    h = prefilled()
    last = None
    prev_page = None
    for _ in range(4000):
        o = h.extract(last, True)
        assert o is not None
        page = page_ptr_of(o)
        assert page != prev_page
        if last is not None:
            assert h.bucket_of(o) != h.bucket_of(last)
        last, prev_page = o, page
    assert h.objhash_cnt == 96
    assert not any("same page" in m for m in h.messages)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["add", "x", "xm"]), st.integers(0, 40), st.integers(0, 31)),
        max_size=200,
    )
)
def test_random_ops_keep_invariants(ops: list[tuple[str, int, int]]) -> None:
    h = ObjHash(page_ptr_of)
    stored: Counter[int] = Counter()
    last = None
    for op, page, slot in ops:
        if op == "add":
            h.add_one(obj(page, slot))
            stored[obj(page, slot)] += 1
            continue
        before = h.objhash_cnt
        lens = h.list_len()
        n_msgs = len(h.messages)
        got = h.extract(last, op == "xm")
        if before < 2:
            assert got is None and h.objhash_cnt == before
            continue
        assert got is not None and stored[got] > 0
        stored[got] -= 1
        if op == "xm" and last is not None:
            own = h.bucket_of(last)
            if any(n for i, n in enumerate(lens) if i != own):
                assert h.bucket_of(got) != own
            elif page_ptr_of(got) == page_ptr_of(last):
                # only last_obj's bucket is non-empty: the walk wraps all the way round to it
                # and the kernel's "cannot happen" warning fires
                assert h.messages[n_msgs:] == [
                    "Bad invarians: return same page",
                    "Bad invarians: search skipped many buckets: 15",
                ]
        last = got
        assert h.objhash_cnt == sum(stored.values()) == sum(h.list_len())
    assert not any("no object" in m for m in h.messages)
    assert sorted(h.drain()) == sorted(stored.elements())
    assert h.objhash_cnt == 0 and sum(h.list_len()) == 0


def test_extract_bulk_worst_case_and_n_match() -> None:
    h = prefilled()
    fresh = [obj(200 + j // 32, j % 32) for j in range(64)]  # a newly allocated bulk
    objs = list(fresh)
    h.add_bulk(objs, 64)
    assert h.objhash_cnt == 4096 + 64
    assert h.extract_bulk(objs, 64, 0)  # N-match disabled: worst case
    assert h.objhash_cnt == 4096
    assert all(page_ptr_of(a) != page_ptr_of(b) for a, b in itertools.pairwise(objs))
    # first pick is the head of objs[0]'s bucket: the newest fresh object added there
    b0 = h.bucket_of(fresh[0])
    assert objs[0] == [o for o in fresh if h.bucket_of(o) == b0][-1]

    # N = 1: every pick comes from the bucket of the current objs[0] (the first pick)
    objs = [obj(300 + j // 32, j % 32) for j in range(16)]
    h.add_bulk(objs, 16)
    assert h.extract_bulk(objs, 16, 1)
    assert len({h.bucket_of(o) for o in objs}) == 1

    # N = 4: slots 0, 4, 8, 12 share objs[0]'s bucket; the others differ from their predecessor
    objs = [obj(400 + j // 32, j % 32) for j in range(16)]
    h.add_bulk(objs, 16)
    assert h.extract_bulk(objs, 16, 4)
    b = h.bucket_of(objs[0])
    assert all(h.bucket_of(objs[j]) == b for j in (4, 8, 12))
    assert all(page_ptr_of(objs[j]) != page_ptr_of(objs[j - 1]) for j in range(16) if j % 4)
    assert MODULO_MATCH_DISABLED == 65536
    assert h.messages == [] or all("skipped" in m for m in h.messages)


def test_extract_bulk_fails_like_goto_out() -> None:
    h = ObjHash(page_ptr_of)
    objs = [obj(0, 0), obj(1, 0), obj(2, 0)]
    h.add_bulk(objs, 3)
    assert not h.extract_bulk(objs, 3, 0)  # third extract sees objhash_cnt == 1
    assert h.objhash_cnt == 1
    assert h.messages[-1] == "Bad invarians: request too many objects"
