"""Type stubs: mypy --strict sees the compiled classes' real signatures (one mypy run)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent / "typing"


@pytest.mark.skipif(shutil.which("mypy") is None and
                    subprocess.run([sys.executable, "-m", "mypy", "--version"],
                                   capture_output=True).returncode != 0,
                    reason="mypy not installed (pip install '.[test]')")
def test_mypy_strict_on_user_scripts(tmp_path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental",
         "--cache-dir", str(tmp_path / "cache"), "--hide-error-context",
         "--no-error-summary", str(HERE / "user_script.py"), str(HERE / "wrong.py")],
        capture_output=True, text=True, timeout=600)
    errors = [ln for ln in proc.stdout.splitlines() if ": error:" in ln]
    assert not [e for e in errors if "user_script.py" in e], proc.stdout
    wrong = sorted(int(re.search(r"wrong\.py:(\d+):", e)[1]) for e in errors
                   if "wrong.py" in e)
    marked = [i for i, ln in enumerate((HERE / "wrong.py").read_text().splitlines(), 1)
              if "# error:" in ln]
    assert wrong == marked, proc.stdout
    assert any('"free" of "Cache" has incompatible type "str"' in e for e in errors), proc.stdout
