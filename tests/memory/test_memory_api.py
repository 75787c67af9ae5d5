"""MemoryStore API on both embedded engines: scope, dedup, supersede, history, time filters, errors."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest

from gte_rag.embed import GteEncoder
from gte_rag.errors import ConfigError, MemoryNotFoundError, MemoryScopeError, MemoryStoreError
from gte_rag.memory import MemorySettings, MemoryStore

from memory_helpers import ids_of, location_for

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)


def test_add_returns_ids_and_search_finds_them(memory: MemoryStore) -> None:
    res = memory.add(["Plants make oxygen.", "Rust has a borrow checker."], user_id="u1", session_id="s1")
    assert len(res.ids) == 2 and res.added == res.ids and not res.duplicates
    hits = memory.search("plants oxygen", user_id="u1", top_k=5)
    assert ids_of(hits) == set(res.ids)
    top = hits[0]
    assert top.text in {"Plants make oxygen.", "Rust has a borrow checker."}
    assert top.timestamp.tzinfo is not None and top.user_id == "u1" and top.session_id == "s1"


def test_other_users_and_agents_never_see_it(memory: MemoryStore) -> None:
    a = memory.add("secret of user a", user_id="a", agent_id="x").ids[0]
    memory.add("secret of user b", user_id="b").ids
    assert ids_of(memory.search("secret", user_id="a", top_k=10)) == {a}
    assert memory.search("secret", user_id="a", agent_id="y", top_k=10) == []
    assert a not in ids_of(memory.search("secret", user_id="b", top_k=10))
    for call in (lambda: memory.get(a, user_id="b"), lambda: memory.update(a, "x", user_id="b"),
                 lambda: memory.delete(a, user_id="b"), lambda: memory.history(a, user_id="b"),
                 lambda: memory.get(a, user_id="a", agent_id="y")):
        with pytest.raises(MemoryNotFoundError):
            call()
    assert memory.get(a, user_id="a").text == "secret of user a"  # untouched


@pytest.mark.parametrize("key", ["user_id", "agent_id", "session_id", "_kind", "state"])
def test_metadata_with_scope_or_internal_keys_is_refused(memory: MemoryStore, key: str) -> None:
    with pytest.raises(MemoryScopeError, match=key):
        memory.add("hello", user_id="u", metadata={key: "other"})
    assert memory.count(user_id="u") == 0 and memory.count(user_id="other") == 0


def test_user_id_is_required(memory: MemoryStore) -> None:
    with pytest.raises(MemoryScopeError, match="user_id"):
        memory.add("hello", user_id=None)  # type: ignore[arg-type]
    with pytest.raises(MemoryScopeError, match="user_id"):
        memory.search("hello", user_id="")


def test_exact_duplicates_are_reported_not_stored(memory: MemoryStore) -> None:
    first = memory.add("I live in Lisbon.", user_id="u").ids[0]
    again = memory.add(["i live in   lisbon.", "I like tea."], user_id="u")
    assert again.events[0].event == "duplicate" and again.events[0].id == first
    assert again.events[1].event == "added"
    assert memory.count(user_id="u") == 2
    # another user's identical text is not a duplicate of this one
    assert memory.add("I live in Lisbon.", user_id="v").events[0].event == "added"


def test_near_duplicates_use_the_threshold(memory_engine: str, memory_encoder: GteEncoder, tmp_path: Path) -> None:
    with MemoryStore(embed_model=memory_encoder, location=location_for(memory_engine, tmp_path),
                     settings=MemorySettings(dedup_threshold=0.999)) as mem:
        mem.add("The Eiffel Tower is in Paris.", user_id="u")
        res = mem.add("The Eiffel Tower is in Paris!", user_id="u")  # same words, other punctuation
        sim = memory_encoder.embed_documents(["The Eiffel Tower is in Paris.", "The Eiffel Tower is in Paris!"])
        expected = float(sim[0] @ sim[1])
        if expected >= 0.999:
            assert res.events[0].event == "duplicate" and res.events[0].similarity == pytest.approx(expected, abs=1e-4)
        else:
            assert res.events[0].event == "added"


def test_supersede_hides_old_and_keeps_history(memory: MemoryStore) -> None:
    old = memory.add("I live in Lisbon.", user_id="u", timestamp=T0).ids[0]
    new = memory.add("I moved to Berlin.", user_id="u", supersedes=old).events[0]
    assert new.superseded == (old,)
    assert ids_of(memory.search("where do I live", user_id="u", top_k=10)) == {new.id}
    assert memory.get(old, user_id="u").superseded_by == new.id
    assert [m.id for m in memory.history(new.id, user_id="u")] == [old, new.id]
    with pytest.raises(MemoryStoreError, match="superseded"):
        memory.update(old, "again", user_id="u")


def test_update_keeps_id_and_versions(memory: MemoryStore) -> None:
    mid = memory.add("My cat is called Tom.", user_id="u", session_id="s").ids[0]
    rec = memory.update(mid, "My cat is called Felix.", user_id="u", importance=0.9)
    assert rec.id == mid and rec.version == 1 and rec.importance == 0.9
    hits = memory.search("cat", user_id="u", top_k=5)
    assert [h.text for h in hits] == ["My cat is called Felix."]
    versions = memory.history(mid, user_id="u")
    assert [(v.text, v.version, v.active) for v in versions] == [
        ("My cat is called Tom.", 0, False), ("My cat is called Felix.", 1, True)]


def test_delete_and_forget(memory: MemoryStore) -> None:
    a = memory.add("one", user_id="u", session_id="s1").ids[0]
    memory.update(a, "one again", user_id="u")
    memory.add(["two", "three"], user_id="u", session_id="s2")
    memory.add("keep", user_id="w")
    memory.delete(a, user_id="u")
    with pytest.raises(MemoryNotFoundError):
        memory.get(a, user_id="u")
    assert memory.forget(user_id="u", session_id="s2") == 2
    assert memory.count(user_id="u") == 0 and memory.count(user_id="w") == 1
    # the history copy went with the memory; the two sessions' turn counters stay (no text, no
    # scope fields) so a deleted turn's id is never issued again
    assert memory.store.count() == 1 + 2


def test_since_until_filter_on_event_time(memory: MemoryStore) -> None:
    ids = [memory.add(f"event number {i}", user_id="u", timestamp=T0 + dt.timedelta(days=10 * i)).ids[0]
           for i in range(4)]
    hits = memory.search("event", user_id="u", since=T0 + dt.timedelta(days=5), until=T0 + dt.timedelta(days=25))
    assert ids_of(hits) == {ids[1], ids[2]}
    with pytest.raises(ConfigError, match="swap"):
        memory.search("event", user_id="u", since=T0 + dt.timedelta(days=5), until=T0)


def test_recency_and_importance_change_scores_by_the_formula(memory: MemoryStore) -> None:
    """Two identical texts in two sessions: only time and importance differ, so under the dense
    branch (equal cosines) the score gap is exactly the formula's recency + importance terms."""
    s = MemorySettings(mode="dense", dedup_threshold=None, neighbour_weight=0.0, recency_weight=0.5,
                       importance_weight=0.25, recency_scale_days=10.0)
    now = T0 + dt.timedelta(days=20)
    old = memory.add("the same words", user_id="u", session_id="a", timestamp=T0, importance=0.2).ids[0]
    new = memory.add("the same words", user_id="u", session_id="b", timestamp=now, importance=0.6).ids[0]
    hits = {h.id: h.score for h in memory.search("the same words", user_id="u", now=now, settings=s)}
    # decay(old) = 0.5 ** (20 / 10) = 0.25, decay(new) = 1; importance 0.2 vs 0.6; the fused parts are equal
    assert hits[new] - hits[old] == pytest.approx(0.5 * (1 - 0.25) + 0.25 * (0.6 - 0.2), abs=1e-4)


def test_hybrid_scores_agree_across_engines(memory_encoder: GteEncoder, tmp_path: Path) -> None:
    """The fused formula score of the same memories is the same on Qdrant Edge and local mode."""
    texts = ["Plants make oxygen from light.", "Rust stops data races.", "The Nile is a long river."]
    s = MemorySettings(dedup_threshold=None, neighbour_weight=0.0, recency_weight=0.3, importance_weight=0.2)
    scores = []
    for engine in ("edge", "local"):
        with MemoryStore(embed_model=memory_encoder, location=location_for(engine, tmp_path), settings=s) as mem:
            for i, t in enumerate(texts):  # separate sessions, distinct importance and times: no ties
                mem.add(t, user_id="u", session_id=f"s{i}", importance=0.2 * i, timestamp=T0 + dt.timedelta(days=i))
            hits = mem.search("plants and light", user_id="u", now=T0 + dt.timedelta(days=3))
            scores.append([(h.text, round(h.score, 5)) for h in hits])
    assert scores[0] == scores[1] and len(scores[0]) == 3
    # the best fused hit can score at most three first ranks plus both full bonuses
    assert 0 < scores[0][0][1] <= 3 / s.rrf_k + 0.3 + 0.2


def test_neighbour_expansion_returns_the_turns_around(memory: MemoryStore) -> None:
    turns = [{"role": "user", "content": f"turn number {i} about topic {i}"} for i in range(5)]
    ids = memory.add(turns, user_id="u", session_id="s").ids
    hit = next(h for h in memory.search("turn number 2 about topic 2", user_id="u", top_k=5) if h.id == ids[2])
    assert [c.id for c in hit.context] == [ids[1], ids[3]] and hit.turn == 2
    assert hit.speaker == "user"


def test_turn_ids_are_not_reused_after_a_delete(memory: MemoryStore) -> None:
    ids = memory.add(["a one", "b two", "c three"], user_id="u", session_id="s").ids
    memory.delete(ids[1], user_id="u")
    more = memory.add("d four", user_id="u", session_id="s").ids[0]
    assert more not in ids and memory.get(ids[2], user_id="u").text == "c three"


def test_bad_inputs_are_named(memory: MemoryStore) -> None:
    with pytest.raises(ConfigError, match="no text"):
        memory.add(["ok", "  "], user_id="u")
    with pytest.raises(ConfigError, match="importance"):
        memory.add("x", user_id="u", importance=2)
    with pytest.raises(ConfigError, match="timestamp"):
        memory.add("x", user_id="u", timestamp="yesterday-ish")
    with pytest.raises(ConfigError, match="top_k"):
        memory.search("x", user_id="u", top_k=0)
    with pytest.raises(MemoryNotFoundError, match="UUID"):
        memory.get("not-an-id", user_id="u")
    with pytest.raises(ConfigError, match="unknown memory settings"):
        MemorySettings().with_options(decay=1)


def test_async_twins(memory: MemoryStore) -> None:
    async def go() -> None:
        res = await memory.aadd("async fact", user_id="u")
        hits = await memory.asearch("async", user_id="u")
        assert ids_of(hits) == set(res.ids)
        rec = await memory.aupdate(res.ids[0], "async fact two", user_id="u")
        assert rec.version == 1 and len(await memory.ahistory(res.ids[0], user_id="u")) == 2
        assert (await memory.aget(res.ids[0], user_id="u")).text == "async fact two"
        await memory.adelete(res.ids[0], user_id="u")
        assert await memory.aforget(user_id="u") == 0

    asyncio.run(go())


def test_embed_model_must_be_an_encoder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="embed_model"):
        MemoryStore(embed_model="all-MiniLM", location=str(tmp_path))


def test_reranker_reorders_by_its_scores(memory_encoder: GteEncoder, tiny_reranker: Path, tmp_path: Path) -> None:
    from gte_rag.rerank import GteCrossEncoder

    ce = GteCrossEncoder(str(tiny_reranker), max_length=64, dtype="float32")
    texts = ["Plants make oxygen.", "Rust has a borrow checker.", "The Nile is long.", "Bread needs yeast."]
    with MemoryStore(embed_model=memory_encoder, location=str(tmp_path / "m"), reranker=ce,
                     settings=MemorySettings(dedup_threshold=None)) as mem:
        mem.add(texts, user_id="u")
        hits = mem.search("what makes oxygen?", user_id="u", top_k=4)
        expected = ce.score_pairs([("what makes oxygen?", t) for t in texts])
        order = [texts[i] for i in sorted(range(4), key=lambda i: -float(expected[i]))]
        assert [h.text for h in hits] == order
        assert [h.score for h in hits] == pytest.approx(sorted((float(x) for x in expected), reverse=True), abs=1e-5)
    with pytest.raises(ConfigError, match="reranker"):
        MemoryStore(embed_model=memory_encoder, location=str(tmp_path / "n"), reranker=object())
