"""Regression tests for the memory review: corrections vs dedup, turn ids, delete, block scope, input checks."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from pathlib import Path

import pytest

from gte_rag.embed import GteEncoder
from gte_rag.errors import ConfigError
from gte_rag.memory import MemorySettings, MemoryStore

from memory_helpers import ids_of, location_for

EVERYTHING_IS_NEAR = MemorySettings(dedup_threshold=1e-6)  # (nearly) any stored memory counts as a near duplicate


def _store(engine: str, encoder: GteEncoder, tmp_path: Path, **kw: object) -> MemoryStore:
    return MemoryStore(embed_model=encoder, location=location_for(engine, tmp_path), **kw)  # type: ignore[arg-type]


# 1. a correction that is a near duplicate of what it replaces ---------------------------------
def test_explicit_correction_is_never_a_duplicate_of_its_target(memory_engine: str, memory_encoder: GteEncoder,
                                                                tmp_path: Path) -> None:
    with _store(memory_engine, memory_encoder, tmp_path, settings=EVERYTHING_IS_NEAR) as mem:
        old = mem.add("The meeting is at 3pm on Friday", user_id="u", session_id="s").ids[0]
        res = mem.add("The meeting is at 4pm on Friday", user_id="u", session_id="s", supersedes=old)
        assert len(res.added) == 1 and res.superseded == [old], res.events
        assert not mem.get(old, user_id="u").active
        assert [h.text for h in mem.search("meeting", user_id="u")] == ["The meeting is at 4pm on Friday"]
        # the same text as a correction of itself also replaces it (the target is no duplicate)
        again = mem.add("the meeting is at 4pm on friday", user_id="u", supersedes=res.added[0])
        assert len(again.added) == 1


def test_near_duplicates_go_to_the_judge_first(memory_engine: str, memory_encoder: GteEncoder, tmp_path: Path) -> None:
    calls: list[tuple[str, str]] = []

    def judge(new: str, old: str) -> bool:
        calls.append((new, old))
        return "9876" in new

    with _store(memory_engine, memory_encoder, tmp_path, settings=EVERYTHING_IS_NEAR, judge=judge) as mem:
        old = mem.add("My phone number is 555-1234", user_id="u", session_id="s").ids[0]
        res = mem.add("My phone number is 555-9876", user_id="u", session_id="s")
        assert calls.count(("My phone number is 555-9876", "My phone number is 555-1234")) == 1  # asked once
        assert len(res.added) == 1 and old in res.superseded, res.events
        assert not mem.get(old, user_id="u").active
        # the judge says no: a near duplicate stays a duplicate
        dup = mem.add("My phone number is 555-9877", user_id="u", session_id="s")
        assert dup.added == [] and dup.duplicates[0].id == res.added[0]
        # an exact content-hash match never asks the judge
        calls.clear()
        exact = mem.add("my phone number is 555-9876", user_id="u", session_id="s")
        assert exact.added == [] and exact.duplicates[0].similarity == 1.0 and calls == []


# 2. turn ids: never reused, never overwrite a held memory ---------------------------------
def test_turn_ids_are_never_reused_after_delete_or_forget(memory: MemoryStore) -> None:
    first = memory.add(["t0", "t1", "t2"], user_id="u", session_id="s").ids
    memory.delete(first[2], user_id="u")
    after_delete = memory.add("unrelated new", user_id="u", session_id="s").ids[0]
    assert after_delete not in first
    memory.forget(user_id="u", session_id="s")
    after_forget = memory.add(["after forget", "and more"], user_id="u", session_id="s").ids
    assert not set(after_forget) & {*first, after_delete}
    hits = memory.search("after forget", user_id="u", session_id="s")
    assert any(c.text == "and more" for h in hits if h.text == "after forget" for c in h.context)


def test_a_multi_message_add_never_overwrites_a_held_turn(memory: MemoryStore) -> None:
    ids = memory.add([f"turn {i}" for i in range(100)], user_id="g", session_id="s").ids
    for i in range(10, 99):
        memory.delete(ids[i], user_id="g")
    res = memory.add([f"new {i}" for i in range(100)], user_id="g", session_id="s")
    assert memory.get(ids[99], user_id="g").text == "turn 99"
    assert len(res.added) == 100 and memory.count(user_id="g") == 111
    assert not set(res.added) & set(ids)


# 3. deleting a successor ------------------------------------------------------------------
def test_deleting_a_successor_reactivates_its_predecessor(memory: MemoryStore) -> None:
    a = memory.add("I live in Lisbon", user_id="u", session_id="s1").ids[0]
    b = memory.add("I live in Porto", user_id="u", session_id="s2", supersedes=a).ids[0]
    memory.delete(b, user_id="u", session_id="s2")
    old = memory.get(a, user_id="u")
    assert old.active and old.superseded_by is None
    assert ids_of(memory.search("live", user_id="u")) == {a}
    memory.update(a, "I live in Faro", user_id="u")  # usable again


# 4. GteMemoryBlock: reads and writes agree on the user ------------------------------------
def test_block_refuses_a_read_user_that_writes_would_not_use(memory: MemoryStore) -> None:
    pytest.importorskip("llama_index.core")
    from llama_index.core.base.llms.types import ChatMessage

    from gte_rag.llama_index import GteMemoryBlock

    block = GteMemoryBlock(memory_store=memory)
    msg = [ChatMessage(role="user", content="what do I like?")]
    with pytest.raises(ConfigError, match="user_id"):
        asyncio.run(block.aget(msg, session_id="sess-x", user_id="carol"))
    asyncio.run(block.aget(msg, session_id="sess-x", user_id="sess-x"))  # the same user: fine
    stamped = [ChatMessage(role="user", content="hi", additional_kwargs={"user_id": "carol"})]
    asyncio.run(block.aget(stamped, session_id="sess-x", user_id="carol"))  # messages carry it: writes agree


# 5. input checks that name the fix --------------------------------------------------------
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_metadata_names_the_key(memory: MemoryStore, value: float) -> None:
    with pytest.raises(ConfigError, match="score"):
        memory.add("x", user_id="u", metadata={"score": value})


def test_metadata_ints_and_size_are_bounded(memory: MemoryStore) -> None:
    with pytest.raises(ConfigError, match="big"):
        memory.add("x", user_id="u", metadata={"big": 2**70})
    with pytest.raises(ConfigError, match="KiB"):
        memory.add("x", user_id="u", metadata={"blob": "a" * (65 * 1024)})
    memory.add("x", user_id="u", metadata={"ok": 2**62, "nested": {"v": [1.5, "s"]}})


@pytest.mark.parametrize("value", [1_700_000_000_000, 1e30, -1e30, math.nan, math.inf])
def test_out_of_range_times_are_config_errors(memory: MemoryStore, value: float) -> None:
    with pytest.raises(ConfigError, match="epoch seconds"):
        memory.add("x", user_id="u", timestamp=value)
    with pytest.raises(ConfigError, match="epoch seconds"):
        memory.search("x", user_id="u", since=value)


def test_milliseconds_are_named(memory: MemoryStore) -> None:
    with pytest.raises(ConfigError, match="milliseconds"):
        memory.add("x", user_id="u", timestamp=1_700_000_000_000)
    memory.add("x", user_id="u", timestamp=dt.datetime(2024, 1, 1).timestamp())


# 7. a judged supersede of several memories keeps every lineage ----------------------------
def test_judged_supersede_of_several_keeps_all_lineages(memory_engine: str, memory_encoder: GteEncoder,
                                                       tmp_path: Path) -> None:
    with _store(memory_engine, memory_encoder, tmp_path, settings=MemorySettings(dedup_threshold=None)) as mem:
        c1 = mem.add("fact C1", user_id="u", session_id="x").ids[0]
        c2 = mem.add("fact C2", user_id="u", session_id="y").ids[0]
        mem.judge = lambda new, old: True
        d = mem.add("fact D", user_id="u", session_id="z")
        assert set(d.superseded) == {c1, c2}
        assert {h.text for h in mem.history(d.ids[0], user_id="u")} == {"fact C1", "fact C2", "fact D"}
