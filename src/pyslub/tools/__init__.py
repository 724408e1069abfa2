"""Tools to see pyslub and to replay real allocations into it.

* :mod:`~pyslub.tools.sysfs` -- ``/sys/kernel/slab/<cache>/`` of a Memory (read, write, export,
  snapshot);
* :mod:`~pyslub.tools.slabinfo` -- ``pyslub slabinfo`` (tools/mm/slabinfo) and /proc/slabinfo;
* :mod:`~pyslub.tools.viz` -- ``pyslub show``: slab maps, detached freelists, replay plots;
* :mod:`~pyslub.tools.trace_formats` -- valgrind --trace-malloc and ftrace kmem readers;
* :mod:`~pyslub.tools.replay` -- ``pyslub replay``: traces into the kmalloc caches;
* :mod:`~pyslub.tools.probe_report` -- ``__slab_free`` probe distributions (presentation).

Each command module has ``register(subparsers)`` and ``main(args)``.
"""
