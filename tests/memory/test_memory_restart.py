"""Restart: memories written by one process are found by the next; superseded ones stay hidden."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

WRITE = textwrap.dedent("""
    import json, sys
    from gte_rag.embed import GteEncoder
    from gte_rag.memory import MemorySettings, MemoryStore
    model, where = sys.argv[1], sys.argv[2]
    enc = GteEncoder(model, max_length=64, dtype="float32", device="cpu")
    mem = MemoryStore(embed_model=enc, location=where, settings=MemorySettings(dedup_threshold=None))
    old = mem.add("I live in Lisbon.", user_id="ana", session_id="s1").ids[0]
    new = mem.add("I moved to Berlin.", user_id="ana", session_id="s2", supersedes=old).ids[0]
    other = mem.add("I live in Oslo.", user_id="bob").ids[0]
    edited = mem.add("My cat is Tom.", user_id="ana", session_id="s2").ids[0]
    mem.update(edited, "My cat is Felix.", user_id="ana")
    print(json.dumps({"old": old, "new": new, "other": other, "edited": edited}))
""")  # the process ends without close(): Edge's WAL must hold everything

READ = textwrap.dedent("""
    import json, sys
    from gte_rag.embed import GteEncoder
    from gte_rag.memory import MemoryStore
    model, where = sys.argv[1], sys.argv[2]
    enc = GteEncoder(model, max_length=64, dtype="float32", device="cpu")
    with MemoryStore(embed_model=enc, location=where) as mem:
        hits = mem.search("where do I live?", user_id="ana", top_k=10)
        print(json.dumps({
            "ana": sorted(h.id for h in hits),
            "texts": sorted(h.text for h in hits),
            "history": [m.id for m in mem.history(sys.argv[3], user_id="ana")],
            "old_state": mem.get(sys.argv[3], user_id="ana").active,
            "bob": [h.id for h in mem.search("where do I live?", user_id="bob")],
        }))
""")


def _run(script: str, *args: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_memories_survive_a_restart_on_edge(tiny_embedder: Path, tmp_path: Path) -> None:
    where = str(tmp_path / "memory")
    ids = _run(WRITE, str(tiny_embedder), where)
    found = _run(READ, str(tiny_embedder), where, str(ids["old"]))
    assert found["ana"] == sorted([ids["new"], ids["edited"]])  # the superseded memory stays hidden
    assert found["texts"] == ["I moved to Berlin.", "My cat is Felix."]
    assert found["history"] == [ids["old"], ids["new"]]
    assert found["old_state"] is False
    assert found["bob"] == [ids["other"]]
