"""The node agents' state files: the append-only journal survives a torn
last line, deletes, and compacts to the live table without losing a write."""

from __future__ import annotations

from pathlib import Path

from kinns.node import journal
from kinns.node.journal import Journal, Table


def test_replay_upserts_deletes_and_skips_a_torn_tail(tmp_path: Path) -> None:
    j = Journal(tmp_path / "t.jsonl", dict)
    j.put("container", "a", {"pid": 1})
    j.put("container", "b", {"pid": 2})
    j.put("container", "a", {"pid": 1, "state": "exited"})
    j.put("container", "b", None)
    j.put("pod", "u1", True)
    j.close()
    with open(tmp_path / "t.jsonl", "ab") as f:
        f.write(b'{"k":"container","id":"c","v":{"pi')   # a crash in the middle of a write
    assert Journal(tmp_path / "t.jsonl", dict).load() == {"container": {"a": {"pid": 1, "state": "exited"}},
                                                          "pod": {"u1": True}}


def test_compaction_keeps_the_live_table(tmp_path: Path) -> None:
    live: Table = {"container": {}}
    j = Journal(tmp_path / "t.jsonl", lambda: {k: dict(v) for k, v in live.items()})
    for i in range(3000):
        key = f"c{i % 10}"
        live["container"][key] = {"n": i}
        j.put("container", key, {"n": i})
    lines = (tmp_path / "t.jsonl").read_text().splitlines()
    assert len(lines) < journal.COMPACT_SLACK + 30           # compacted on the way, not 3000 lines
    assert Journal(tmp_path / "t.jsonl", dict).load() == live
    j.remove()
    assert not (tmp_path / "t.jsonl").exists()
