import os

import pytest

import pyslub


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long-running; skipped by the uncompiled subset")


def pytest_report_header(config):
    # read by tests/test_pure_mode.py
    return f"pyslub core: {'compiled' if pyslub.COMPILED else 'uncompiled (PYSLUB_PURE=1)'}"


if os.environ.get("PYSLUB_PURE", "") not in ("", "0"):
    assert not pyslub.COMPILED, "PYSLUB_PURE=1 must load the uncompiled modules"


@pytest.fixture
def mem():
    return pyslub.Memory(size=32 << 20, nr_cpus=8)


@pytest.fixture
def seed_cache(mem):
    """The seed's benchmark cache: 232-byte objects, HWCACHE_ALIGN, 8 cpus -> 32 per slab."""
    return mem.create_cache("seed", 232, flags=pyslub.SLAB_HWCACHE_ALIGN)
