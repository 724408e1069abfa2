"""Build the compiled core: the same .py modules, cythonized (pure-Python mode)."""

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

COMPILED_MODULES = [
    "pyslub.page_alloc", "pyslub.slab", "pyslub.procs", "pyslub.bulk", "pyslub.sheaves",
    "pyslub.cache", "pyslub.recovery", "pyslub.shared",
    "pyslub.bench._native", "pyslub.bench._threads",
]

# The native benchmark loops call kmem_cache_alloc/free (sheaves.pxd: the sheaf pop/push and
# the pcs lock, inline) from many places: with -O3's budget for inline-declared functions
# (-O2: 70) they inline there as they do into cache.py's methods with the default.  Not for
# the core modules: there the larger budget makes gcc stop inlining stat() and cpu_release()
# (inline-unit-growth), which costs more than it gains.
EXTRA_ARGS = {"pyslub.bench._native": ["--param=max-inline-insns-single=200"]}

extensions = [
    Extension(
        name,
        [f"src/{name.replace('.', '/')}.py"],
        include_dirs=[numpy.get_include(), "src/pyslub"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=["-O2", "-mcx16", *EXTRA_ARGS.get(name, [])],
    )
    for name in COMPILED_MODULES
]

setup(
    ext_modules=cythonize(
        extensions,
        build_dir="build/cython",          # generated .c files stay out of the package
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,           # every index is checked by the algorithms
            "wraparound": False,
            "embedsignature": True,
            "binding": False,              # PyCFunction methods: METH_O / NOARGS calls are cheaper
            "auto_pickle": False,          # a cache is bound to its arena: not picklable
            "initializedcheck": False,     # memoryviews are set in __cinit__, always
            # free-threaded CPython (3.13t+): declare that the modules do not need the GIL
            # (docs/design.md, "Concurrency", says what that rests on and what is untested);
            # on a GIL build it changes nothing (the Py_mod_gil slot is not compiled)
            "freethreading_compatible": True,
        },
    ),
)
