"""Freelist hardening and randomisation: the options and each cache's secrets.

Three kernel measures against heap exploits, which the kernel chooses at build time and pyslub
per Memory or per cache (``Memory(freelist_hardened=..., freelist_random=..., freeptr=...,
random_seed=...)``, the same keywords on ``create_cache``):

* CONFIG_SLAB_FREELIST_HARDENED (v4.14, this form since v5.7): a free pointer is stored as
  ``ptr ^ s->random ^ swab(address it is stored at)``, and ``set_freepointer`` refuses an object
  that would point to itself (the kernel's ``BUG_ON(object == fp)``, a naive double-free check).
* CONFIG_SLAB_FREELIST_RANDOM (v4.8): ``s->random_seq`` is a random permutation of the slab's
  slots; every new slab links its freelist in that order from a random start position
  (``shuffle_freelist``) instead of in address order.
* The free pointer in the middle of the object (v5.7, 3202fa62fb43) instead of its first word,
  away from the edges that small overflows of a neighbour reach.

Here: the options, checked; ``s->random`` and the seed of ``random_seq`` per cache (from
``os.urandom``, or derived from ``random_seed`` and the cache's name for reproducible runs);
and ``freelist_randomize``.  The core's parts (``freelist_ptr``, ``set_freepointer``,
``shuffle_freelist``) are in pyslub.slab.  Nothing here runs inside a core operation.
"""

from __future__ import annotations

import hashlib
import os
from array import array
from dataclasses import dataclass

from pyslub._layout import FREELIST_HARDENED, FREELIST_RANDOM, FREEPTR_MIDDLE
from pyslub._prim import mix64

FREEPTR_PLACEMENTS = ("start", "middle")


@dataclass(frozen=True)
class Hardening:
    """The hardening options of a Memory's caches (each may be overridden per cache)."""

    freelist_hardened: bool = False
    freelist_random: bool = False
    freeptr: str = "start"
    random_seed: int | None = None

    @property
    def flags(self) -> int:
        """The cache flag bits (pyslub's, above the kernel's) that select these options."""
        return ((FREELIST_HARDENED if self.freelist_hardened else 0)
                | (FREELIST_RANDOM if self.freelist_random else 0)
                | (FREEPTR_MIDDLE if self.freeptr == "middle" else 0))


def hardening_options(freelist_hardened: object = False, freelist_random: object = False,
                      freeptr: object = "start", random_seed: object = None) -> Hardening:
    """The checked options (TypeError / ValueError naming the bad argument)."""
    for what, value in (("freelist_hardened", freelist_hardened),
                        ("freelist_random", freelist_random)):
        if not isinstance(value, bool):
            raise TypeError(f"{what} must be a bool, got {type(value).__name__}")
    if freeptr not in FREEPTR_PLACEMENTS:
        raise ValueError(f"freeptr must be one of {FREEPTR_PLACEMENTS}, got {freeptr!r}")
    if random_seed is not None and (not isinstance(random_seed, int)
                                    or isinstance(random_seed, bool)):
        raise TypeError(f"random_seed must be an int or None, got {type(random_seed).__name__}")
    return Hardening(freelist_hardened, freelist_random, str(freeptr), random_seed)


def override(base: Hardening, freelist_hardened: object = None, freelist_random: object = None,
             freeptr: object = None) -> Hardening:
    """``base`` with a cache's own choices (None keeps the Memory's)."""
    return hardening_options(
        base.freelist_hardened if freelist_hardened is None else freelist_hardened,
        base.freelist_random if freelist_random is None else freelist_random,
        base.freeptr if freeptr is None else freeptr, base.random_seed)


def _signed(v: int) -> int:
    return v - (1 << 64) if v >> 63 else v


def cache_secrets(random_seed: int | None, name: str) -> tuple[int, int]:
    """(``s->random``, the seed of ``random_seq``) of a new cache: fresh random words, or with a
    ``random_seed`` the same two words for the same seed and cache name in every run."""
    if random_seed is None:
        raw = os.urandom(16)
    else:
        raw = hashlib.blake2b(f"{random_seed}\0{name}".encode(), digest_size=16).digest()
    return (_signed(int.from_bytes(raw[:8], "little")),
            _signed(int.from_bytes(raw[8:], "little")))


def random_below(seed: int, n: int, bound: int) -> int:
    """The ``n``-th draw in [0, bound) of the stream ``seed`` (get_random_u32_below()); the
    compiled core computes the same draw for shuffle_freelist's start positions."""
    return (mix64(seed + n) & 0x7FFFFFFF) % bound


def random_seq(seed: int, count: int, size: int) -> array:
    """init_cache_random_seq(): freelist_randomize()'s Fisher-Yates permutation of the
    ``count`` slot indices, each multiplied by the slot ``size`` (byte offsets in a slab)."""
    seq = list(range(count))
    for i in range(count - 1, 0, -1):
        j = random_below(seed, i, i + 1)
        seq[i], seq[j] = seq[j], seq[i]
    return array("q", (i * size for i in seq))
