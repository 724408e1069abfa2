"""Misuse that mypy --strict must reject (one error per line marked)."""

import pyslub

mem = pyslub.Memory(size=64 << 20, nr_cpus=2)
cache = mem.create_cache("packets", 232)
cache.free("x")                                   # error: str is not an address
cache.alloc_bulk([1, 2, 3])                       # error: a list is not a uint64 array
count: str = cache.alloc()                        # error: alloc returns int
cache.kmalloc("40")                               # error: a size is an int
