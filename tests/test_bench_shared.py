"""``pyslub bench shared`` on a tiny run: both parts print their tables, the JSON holds them,
every consumer saw the contents its producer wrote (the command raises otherwise)."""

import json

import pyslub
from pyslub.cli import main


def test_bench_shared_tiny_run(tmp_path, capsys) -> None:
    js = tmp_path / "shared.json"
    loops = 6400 if pyslub.COMPILED else 1280
    rc = main(["bench", "shared", "--loops", str(loops), "--rounds", "1", "--json", str(js),
               "--quiet"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "== pipe: producer process -> consumer process" in text
    for row in ("pyslub ", "shm+Lock ", "mp.Queue ", "target pyslub >= 10x lock-pool"):
        assert row in text
    assert "== single: one process, a private arena vs a shared one" in text
    assert "python alloc+free" in text
    rec = json.loads(js.read_text())
    assert rec["objects"] == loops and rec["bulk"] == 64
    assert len(rec["pipe"]["ns"]["pyslub"]) == 1 and rec["pipe"]["ns"]["pyslub"][0] > 0
    assert set(rec["single"]) >= {"python alloc_bulk+free_bulk 64", "python alloc+free"}
