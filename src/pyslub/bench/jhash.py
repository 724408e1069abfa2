"""Linux ``include/linux/jhash.h``: Bob Jenkins' lookup3 hash as the kernel uses it.

All arithmetic is unsigned 32-bit.  ``jhash(key, initval)`` equals lookup3 ``hashlittle`` for
any key on a little-endian machine (the kernel reads 12-byte blocks with
``__get_unaligned_cpu32``; the tail is read bytewise and is endian-independent).

``jhash_8bytes`` is the one call slab_bulk_test03 makes, ``jhash(&obj->page, 8, 13)``: the
8 bytes of a struct-page pointer, little-endian, with initval 13.  It is unrolled because the
test times it inside its measured loop.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "JHASH_INITVAL",
    "jhash",
    "jhash2",
    "jhash_1word",
    "jhash_2words",
    "jhash_3words",
    "jhash_8bytes",
    "jhash_final",
    "jhash_mix",
    "rol32",
]

JHASH_INITVAL = 0xDEADBEEF  # "an arbitrary initial parameter"
_M = 0xFFFFFFFF
_M64 = (1 << 64) - 1


def rol32(word: int, shift: int) -> int:
    """Rotate a 32-bit word left by ``shift`` (0..31)."""
    word &= _M
    return ((word << shift) | (word >> ((-shift) & 31))) & _M


def jhash_mix(a: int, b: int, c: int) -> tuple[int, int, int]:
    """``__jhash_mix``: mix three 32-bit values reversibly."""
    a = ((a - c) & _M) ^ rol32(c, 4)
    c = (c + b) & _M
    b = ((b - a) & _M) ^ rol32(a, 6)
    a = (a + c) & _M
    c = ((c - b) & _M) ^ rol32(b, 8)
    b = (b + a) & _M
    a = ((a - c) & _M) ^ rol32(c, 16)
    c = (c + b) & _M
    b = ((b - a) & _M) ^ rol32(a, 19)
    a = (a + c) & _M
    c = ((c - b) & _M) ^ rol32(b, 4)
    b = (b + a) & _M
    return a, b, c


def jhash_final(a: int, b: int, c: int) -> tuple[int, int, int]:
    """``__jhash_final``: final mixing of (a, b, c); the hash is the returned ``c``."""
    c = ((c ^ b) - rol32(b, 14)) & _M
    a = ((a ^ c) - rol32(c, 11)) & _M
    b = ((b ^ a) - rol32(a, 25)) & _M
    c = ((c ^ b) - rol32(b, 16)) & _M
    a = ((a ^ c) - rol32(c, 4)) & _M
    b = ((b ^ a) - rol32(a, 14)) & _M
    c = ((c ^ b) - rol32(b, 24)) & _M
    return a, b, c


def jhash(key: bytes | bytearray | memoryview, initval: int) -> int:
    """``jhash(key, length, initval)`` with ``length = len(key)``: hash an arbitrary byte key."""
    k = bytes(key)
    length = len(k)
    a = b = c = (JHASH_INITVAL + length + initval) & _M
    off = 0
    # All but the last block: affect some 32 bits of (a, b, c)
    while length > 12:
        a = (a + int.from_bytes(k[off : off + 4], "little")) & _M
        b = (b + int.from_bytes(k[off + 4 : off + 8], "little")) & _M
        c = (c + int.from_bytes(k[off + 8 : off + 12], "little")) & _M
        a, b, c = jhash_mix(a, b, c)
        length -= 12
        off += 12
    if length == 0:  # case 0: nothing left to add, no final mix
        return c
    # Last block (1..12 bytes), the fall-through switch: byte i goes into word i // 4 at
    # bit 8 * (i % 4), i.e. zero-padded little-endian words.
    tail = k[off:] + bytes(12 - length)
    a = (a + int.from_bytes(tail[0:4], "little")) & _M
    b = (b + int.from_bytes(tail[4:8], "little")) & _M
    c = (c + int.from_bytes(tail[8:12], "little")) & _M
    return jhash_final(a, b, c)[2]


def jhash2(k: Sequence[int], initval: int) -> int:
    """``jhash2(k, length, initval)``: hash an array of u32 words (``length = len(k)``)."""
    length = len(k)
    a = b = c = (JHASH_INITVAL + (length << 2) + initval) & _M
    i = 0
    while length > 3:
        a = (a + k[i]) & _M
        b = (b + k[i + 1]) & _M
        c = (c + k[i + 2]) & _M
        a, b, c = jhash_mix(a, b, c)
        length -= 3
        i += 3
    if length == 0:
        return c
    if length == 3:
        c = (c + k[i + 2]) & _M
    if length >= 2:
        b = (b + k[i + 1]) & _M
    a = (a + k[i]) & _M
    return jhash_final(a, b, c)[2]


def _jhash_nwords(a: int, b: int, c: int, initval: int) -> int:
    """``__jhash_nwords``."""
    initval &= _M
    return jhash_final((a + initval) & _M, (b + initval) & _M, (c + initval) & _M)[2]


def jhash_3words(a: int, b: int, c: int, initval: int) -> int:
    """``jhash_3words``."""
    return _jhash_nwords(a, b, c, initval + JHASH_INITVAL + (3 << 2))


def jhash_2words(a: int, b: int, initval: int) -> int:
    """``jhash_2words``."""
    return _jhash_nwords(a, b, 0, initval + JHASH_INITVAL + (2 << 2))


def jhash_1word(a: int, initval: int) -> int:
    """``jhash_1word``."""
    return _jhash_nwords(a, 0, 0, initval + JHASH_INITVAL + (1 << 2))


def jhash_8bytes(value: int, initval: int) -> int:
    """``jhash(&value, 8, initval)`` for a 64-bit value stored little-endian (x86-64).

    a += low 32 bits, b += high 32 bits, then ``__jhash_final``; unrolled for speed.
    """
    value = int(value) & _M64
    a = b = c = (JHASH_INITVAL + 8 + initval) & _M
    a = (a + (value & _M)) & _M
    b = (b + (value >> 32)) & _M
    # __jhash_final(a, b, c), rol32 inlined
    c = ((c ^ b) - (((b << 14) | (b >> 18)) & _M)) & _M
    a = ((a ^ c) - (((c << 11) | (c >> 21)) & _M)) & _M
    b = ((b ^ a) - (((a << 25) | (a >> 7)) & _M)) & _M
    c = ((c ^ b) - (((b << 16) | (b >> 16)) & _M)) & _M
    a = ((a ^ c) - (((c << 4) | (c >> 28)) & _M)) & _M
    b = ((b ^ a) - (((a << 14) | (a >> 18)) & _M)) & _M
    c = ((c ^ b) - (((b << 24) | (b >> 8)) & _M)) & _M
    return c
