"""What a user writes; tests/test_cli_typing.py runs mypy --strict on it."""

import numpy as np

import pyslub

mem = pyslub.Memory(size=64 << 20, nr_cpus=2)
cache = mem.create_cache("packets", 232, flags=pyslub.SLAB_HWCACHE_ALIGN)
addr: int = cache.alloc()
cache.view(addr)[:5] = b"hello"
cache.free(addr)
cache.free(np.uint64(cache.alloc()))          # numpy integers are addresses too
p = np.zeros(16, dtype=np.uint64)
n: int = cache.alloc_bulk(p)
cache.free_bulk(p, strategy="lookahead")
info = cache.info
stats: dict[str, int] = cache.stats()
problems: list[str] = cache.validate()
with mem.on_cpu(1):
    cache.free(cache.alloc())
a = mem.kmalloc(100)
mem.kfree(a)
kc = mem.create_cache("kbuf", 64, flags=pyslub.SLAB_KMALLOC | pyslub.SLAB_RED_ZONE)
kc.free(kc.kmalloc(40))                       # __kmalloc_cache(s, gfp, 40)
print(n, info["size"], stats["alloc_fastpath"], problems)
