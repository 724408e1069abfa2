# C-level names the recovery uses (recovery.py); nothing here is called from other modules.
from pyslub._layout cimport *
from pyslub._prim cimport alive
from pyslub.page_alloc cimport Segment
from pyslub.slab cimport KmemCache, cpu_rec, page_objects, set_freepointer
