"""The README's usage example runs as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_runs(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "README has no python example"
    namespace: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    out = capsys.readouterr().out
    assert "'objs_per_slab': 32" in out and "[]" in out        # info and validate()
    assert namespace["cache"].validate() == []
    assert namespace["cache"].live_objects() == 0


def test_no_merge_conflict_markers_in_the_sources_and_docs():
    """A merge once landed README.md with its conflict markers; nothing checked for them."""
    root = README.parent
    files = [README, *root.glob("docs/*.md"), *root.glob("src/pyslub/**/*.py"),
             *root.glob("src/pyslub/**/*.pxd"), *root.glob("tests/*.py"),
             *root.glob("benchmarks/*.py")]
    marker = re.compile(r"^(<<<<<<< |>>>>>>> |=======$)", re.M)
    bad = [f"{f.relative_to(root)}:{text.count(chr(10), 0, m.start()) + 1}"
           for f in files for text in [f.read_text()] for m in marker.finditer(text)]
    assert bad == []
