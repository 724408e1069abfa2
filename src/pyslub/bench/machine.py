"""What machine a benchmark ran on: CPU, TSC, Python, C compiler, libc (for reports and JSON)."""

from __future__ import annotations

import functools
import os
import platform
import shutil
import subprocess
from typing import Any

__all__ = ["c_compiler", "compiler_version", "cpu_model", "machine_info"]


@functools.cache
def cpu_model() -> str:
    """``model name`` of /proc/cpuinfo (or what the platform module knows)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def c_compiler() -> str | None:
    """The C compiler to build helpers with: ``$CC``, else cc, gcc or clang on PATH."""
    cc = os.environ.get("CC")
    if cc:
        return shutil.which(cc.split()[0]) and cc
    for name in ("cc", "gcc", "clang"):
        path = shutil.which(name)
        if path:
            return path
    return None


@functools.cache
def compiler_version(cc: str | None = None) -> str | None:
    """First line of ``cc --version``, or None without a compiler."""
    cc = cc or c_compiler()
    if cc is None:
        return None
    try:
        out = subprocess.run([*cc.split(), "--version"], capture_output=True, text=True,
                             timeout=10, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.splitlines()[0].strip() if out else None


def machine_info(tsc_khz: int | None = None) -> dict[str, Any]:
    """Everything a reader needs to judge a number: JSON-ready."""
    import numpy

    import pyslub

    libc, libc_version = platform.libc_ver()
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "cpu": cpu_model(), "cpus_online": os.cpu_count(), "machine": platform.machine(),
        "tsc_khz": tsc_khz, "platform": platform.platform(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "libc": f"{libc} {libc_version}".strip() or None,
        "compiler": compiler_version(), "numpy": numpy.__version__,
        "pyslub": pyslub.__version__, "compiled": pyslub.COMPILED,
        "loadavg": list(load) if load else None,
    }
