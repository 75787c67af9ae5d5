"""Property test: random interleavings of many users, agents and sessions never leak a memory.

A plain-Python model holds every memory with its scope and state; after each operation (add,
supersede, update, delete, forget, get, search; sync or async at random) the store must agree
with the model exactly: a search returns precisely the active memories its scope sees, and an
id used with a scope that does not see it is neither read, nor changed, nor deleted. Runs on
both embedded engines (Qdrant Edge, qdrant-client local mode).
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import pytest

from gte_rag.embed import GteEncoder
from gte_rag.errors import MemoryNotFoundError, MemoryStoreError
from gte_rag.memory import MemorySettings, MemoryStore, Scope
from memory_helpers import location_for

USERS = ["u0", "u1", "u2"]
AGENTS = [None, "a0", "a1"]
SESSIONS = [None, "s0", "s1"]
WORDS = ["plants", "rivers", "paris", "rust", "memory", "oxygen", "music", "bread"]


def _scope(rng: random.Random) -> Scope:
    return Scope(rng.choice(USERS), agent_id=rng.choice(AGENTS), session_id=rng.choice(SESSIONS))


def _kw(scope: Scope) -> dict[str, Any]:
    return {"user_id": scope.user_id, "agent_id": scope.agent_id, "session_id": scope.session_id}


class Model:
    """What the store must hold: id -> (scope fields, text, active)."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}

    def visible(self, scope: Scope, *, active_only: bool = True) -> set[str]:
        return {i for i, row in self.rows.items() if scope.sees(row) and (row["active"] or not active_only)}


def _call(store: MemoryStore, use_async: bool, name: str, *args: Any, **kwargs: Any) -> Any:
    if use_async:
        return asyncio.run(getattr(store, "a" + name)(*args, **kwargs))
    return getattr(store, name)(*args, **kwargs)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("engine", ["edge", "local"])
def test_random_interleavings_never_leak(engine: str, seed: int, memory_encoder: GteEncoder, tmp_path: Path) -> None:
    rng = random.Random(seed)
    model = Model()
    counter = 0
    checks = 0
    settings = MemorySettings(dedup_threshold=None)
    with MemoryStore(embed_model=memory_encoder, location=location_for(engine, tmp_path), settings=settings) as store:
        for _ in range(70):
            op = rng.choices(["add", "supersede", "update", "delete", "forget", "get", "search"],
                             weights=[6, 2, 2, 2, 1, 3, 4])[0]
            use_async = rng.random() < 0.4
            scope = _scope(rng)
            known = list(model.rows)
            target = rng.choice(known) if known else None
            if op == "add" or target is None:
                texts = []
                for _ in range(rng.randint(1, 3)):
                    counter += 1
                    texts.append(f"memory {counter} about {rng.choice(WORDS)} and {rng.choice(WORDS)}")
                res = _call(store, use_async, "add", texts, **_kw(scope))
                assert res.added == res.ids and len(res.ids) == len(texts)
                for i in res.ids:
                    model.rows[i] = {**scope.fields(), "active": True}
            elif op == "supersede":
                counter += 1
                text = f"memory {counter} replaces an older one"
                row = model.rows[target]
                owner = Scope(scope.user_id, agent_id=scope.agent_id)  # a correction may come in another session
                if owner.sees(row) and row["active"]:
                    new = _call(store, use_async, "add", text, supersedes=target, **_kw(scope)).ids[0]
                    model.rows[new] = {**scope.fields(), "active": True}
                    row["active"] = False
                else:
                    with pytest.raises(MemoryStoreError):  # not found in the scope, or already superseded
                        _call(store, use_async, "add", text, supersedes=target, **_kw(scope))
            elif op == "update":
                counter += 1
                row = model.rows[target]
                if scope.sees(row) and row["active"]:
                    rec = _call(store, use_async, "update", target, f"memory {counter} updated", **_kw(scope))
                    assert rec.id == target
                else:
                    with pytest.raises(MemoryStoreError):
                        _call(store, use_async, "update", target, f"memory {counter} updated", **_kw(scope))
            elif op == "delete":
                if scope.sees(model.rows[target]):
                    _call(store, use_async, "delete", target, **_kw(scope))
                    del model.rows[target]
                else:
                    with pytest.raises(MemoryNotFoundError):
                        _call(store, use_async, "delete", target, **_kw(scope))
            elif op == "forget":
                wide = Scope(scope.user_id, agent_id=scope.agent_id if rng.random() < 0.5 else None,
                             session_id=scope.session_id if rng.random() < 0.5 else None)
                gone = model.visible(wide, active_only=False)
                _call(store, use_async, "forget", **_kw(wide))
                for i in gone:
                    del model.rows[i]
            elif op == "get":
                if scope.sees(model.rows[target]):
                    rec = _call(store, use_async, "get", target, **_kw(scope))
                    assert rec.active == model.rows[target]["active"]
                else:
                    with pytest.raises(MemoryNotFoundError):
                        _call(store, use_async, "get", target, **_kw(scope))
            # after every operation: one search in a random scope sees exactly its active memories
            probe = _scope(rng)
            hits = _call(store, rng.random() < 0.4, "search", f"memory about {rng.choice(WORDS)}", top_k=60,
                         **_kw(probe))
            assert {h.id for h in hits} == model.visible(probe), (op, probe)
            assert all(probe.sees(vars(h)) for h in hits)
            for h in hits:
                assert all(probe.sees(vars(c)) for c in h.context)
            checks += 1
        # finally every user's whole memory, and the total
        for user in USERS:
            assert store.count(user_id=user) == len(model.visible(Scope(user)))
    assert checks == 70 and counter > 20
