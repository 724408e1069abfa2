"""slab_debug: the kernel's SLUB debugging (mm/slub.c, spec §6.2), the parts above the core.

* ``parse_slab_debug(text)`` reads the ``slab_debug=`` boot option (also ``slub_debug=``) with
  the modern grammar: blocks separated by ``;``, each ``<flags>[,<cache>[,<cache>...]]``; the
  flags are letters ``F Z P U T O`` (case-insensitive) and ``-`` (all off so far); an empty
  flag list before a cache list means ``FZPU`` (DEBUG_DEFAULT_FLAGS); a cache name ending in
  ``*`` matches by prefix; a block without a cache list sets the global flags.
  ``Memory(slab_debug=...)`` takes it, else the ``PYSLUB_SLAB_DEBUG`` environment variable.
* ``kmem_cache_flags(config, name, flags)`` is the kernel's function of that name: the flags of
  the first block whose list matches ``name``, else the global flags, or'ed into ``flags``
  (``SLAB_NO_USER_FLAGS`` ignores the option, as slub_kunit's caches do).
* ``O`` (disable_higher_order_debug): a cache whose minimum order would grow because of the
  debug metadata gets no ``Z P U`` (kmem_cache_open()).

Deviations: ``A`` (failslab) is refused (pyslub has no fault injection per cache); an unknown
letter is a ValueError (the kernel prints "slab_debug option '%c' unknown. skipped").  The
kernel accepts ``slab_debug`` without ``=`` for "everything on": pass ``""``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from pyslub._layout import (
    SLAB_CONSISTENCY_CHECKS,
    SLAB_NO_USER_FLAGS,
    SLAB_POISON,
    SLAB_RED_ZONE,
    SLAB_STORE_USER,
    SLAB_TRACE,
)

DEBUG_DEFAULT_FLAGS = SLAB_CONSISTENCY_CHECKS | SLAB_RED_ZONE | SLAB_POISON | SLAB_STORE_USER
DEBUG_METADATA_FLAGS = SLAB_RED_ZONE | SLAB_POISON | SLAB_STORE_USER
FLAG_LETTERS = {"f": SLAB_CONSISTENCY_CHECKS, "z": SLAB_RED_ZONE, "p": SLAB_POISON,
                "u": SLAB_STORE_USER, "t": SLAB_TRACE}
ENV = "PYSLUB_SLAB_DEBUG"


@dataclass(frozen=True)
class SlabDebug:
    """A parsed ``slab_debug=`` option."""

    text: str
    global_flags: int                                  # slub_debug
    blocks: tuple[tuple[int, tuple[str, ...]], ...]    # (flags, cache patterns), in order
    higher_order_disable: bool                         # O

    def flags_for(self, name: str, flags: int) -> int:
        return kmem_cache_flags(self, name, flags)


def _parse_block(block: str, where: str) -> tuple[int, tuple[str, ...] | None, bool]:
    """parse_slub_debug_flags() on one block: (flags, cache patterns or None, saw 'O')."""
    letters, sep, caches = block.partition(",")
    higher = False
    if letters == "" and sep:
        flags = DEBUG_DEFAULT_FLAGS                    # ",dentry": full debugging for those
    else:
        flags = 0
        for ch in letters:
            lo = ch.lower()
            if lo == "-":
                flags = 0
            elif lo == "o":
                higher = True
            elif lo == "a":
                raise ValueError(f"slab_debug {where}: 'A' (failslab) is not supported by "
                                 "pyslub")
            elif lo in FLAG_LETTERS:
                flags |= FLAG_LETTERS[lo]
            else:
                raise ValueError(f"slab_debug {where}: unknown option {ch!r} (flags are "
                                 "F Z P U T O and -)")
    if not sep:
        return flags, None, higher
    # empty names (",,", a trailing ",") match nothing, as in the kernel's compare
    return flags, tuple(n for n in caches.split(",") if n), higher


def parse_slab_debug(text: str) -> SlabDebug:
    """setup_slub_debug(): the option's value (what follows ``slab_debug=``)."""
    if not isinstance(text, str):
        raise TypeError(f"slab_debug must be a str, got {type(text).__name__}")
    if text.startswith(("slab_debug=", "slub_debug=")):
        text = text.split("=", 1)[1]
    if text == "":
        return SlabDebug(text, DEBUG_DEFAULT_FLAGS, (), False)   # no options: everything on
    global_flags = 0                    # slub_debug without CONFIG_SLUB_DEBUG_ON: off
    blocks = []
    higher = False
    for i, block in enumerate(text.split(";")):
        if block == "":                                # completely empty blocks are skipped
            continue
        flags, names, o = _parse_block(block, f"block {i + 1} ({block!r})")
        higher = higher or o
        if names is None:
            global_flags = flags
        else:
            blocks.append((flags, names))
    return SlabDebug(text, global_flags, tuple(blocks), higher)


def from_environment() -> SlabDebug | None:
    """``PYSLUB_SLAB_DEBUG``, parsed (None when unset)."""
    text = os.environ.get(ENV)
    if text is None:
        return None
    try:
        return parse_slab_debug(text)
    except ValueError as e:
        raise ValueError(f"{ENV}={text!r}: {e}") from None


def _matches(pattern: str, name: str) -> bool:
    """kmem_cache_flags()'s compare: a prefix up to '*', else the whole name."""
    star = pattern.find("*")
    if star >= 0:
        return name.startswith(pattern[:star])
    return name == pattern


def kmem_cache_flags(config: SlabDebug | None, name: str, flags: int) -> int:
    """kmem_cache_flags(): the cache's flags with the option applied."""
    if config is None or flags & SLAB_NO_USER_FLAGS:
        return flags
    for block_flags, names in config.blocks:
        if any(_matches(p, name) for p in names):
            return flags | block_flags
    return flags | config.global_flags


def cache_flags(config: SlabDebug | None, name: str, object_size: int, align: int, flags: int,
                nr_cpus: int) -> int:
    """kmem_cache_flags(), then kmem_cache_open()'s ``O`` rule: without the debug metadata
    flags when they would raise the cache's minimum order (get_order(size) >
    get_order(object_size))."""
    from pyslub.sizing import cache_geometry, get_order

    flags = kmem_cache_flags(config, name, flags)
    if config is not None and config.higher_order_disable and flags & DEBUG_METADATA_FLAGS:
        g = cache_geometry(object_size, align, flags, nr_cpus)
        if get_order(g.size) > get_order(object_size):
            flags &= ~DEBUG_METADATA_FLAGS
    return flags
