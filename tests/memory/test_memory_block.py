"""GteMemoryBlock in LlamaIndex's Memory, and LLM fact extraction with a deterministic LLM."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("llama_index.core")

from llama_index.core.base.llms.types import ChatMessage, CompletionResponse, CompletionResponseGen, LLMMetadata
from llama_index.core.llms import CustomLLM
from llama_index.core.llms.callbacks import llm_completion_callback
from llama_index.core.memory import Memory

from gte_rag.embed import GteEncoder
from gte_rag.errors import MemoryScopeError
from gte_rag.llama_index import GteEmbedding, GteMemoryBlock, LLMFactExtractor
from gte_rag.memory import MemorySettings, MemoryStore
from memory_helpers import location_for

SESSIONS = {f"user{i}": [f"user{i} keeps a pet called name{i}", f"user{i} lives in city{i}"] for i in range(6)}


@pytest.fixture
def store(memory_engine: str, memory_encoder: GteEncoder, tmp_path: Path) -> Iterator[MemoryStore]:
    mem = MemoryStore(embed_model=GteEmbedding.from_encoder(memory_encoder),
                      location=location_for(memory_engine, tmp_path), settings=MemorySettings(dedup_threshold=None))
    yield mem
    mem.close()


def test_one_block_shared_by_many_sessions_never_leaks(store: MemoryStore) -> None:
    block = GteMemoryBlock(memory_store=store, similarity_top_k=10)

    async def go() -> None:
        for session, facts in SESSIONS.items():  # what Memory does when it flushes a session's messages
            await block.aput([ChatMessage(role="user", content=f) for f in facts], from_short_term_memory=True,
                             session_id=session)
        # interleave the sessions: the first caller's scope must not stick to the block
        for session in [*SESSIONS, *reversed(SESSIONS)]:
            text = await block.aget([ChatMessage(role="user", content="where do I live and what is my pet?")],
                                    session_id=session)
            lines = text.splitlines()
            assert len(lines) == 2, text
            others = [s for s in SESSIONS if s != session]
            assert all(f"{session} " in line for line in lines), text
            assert not any(f"{o} " in text for o in others), text

    asyncio.run(go())


def test_memory_passes_its_session_to_the_block(store: MemoryStore) -> None:
    block = GteMemoryBlock(memory_store=store, similarity_top_k=3)

    async def go() -> None:
        await block.aput([ChatMessage(role="user", content="ana likes green tea")], session_id="ana")
        await block.aput([ChatMessage(role="user", content="bob likes black coffee")], session_id="bob")
        for session, own, other in (("ana", "green tea", "coffee"), ("bob", "black coffee", "green")):
            memory = Memory.from_defaults(session_id=session, memory_blocks=[block], token_limit=2000)
            await memory.aput(ChatMessage(role="user", content="what do I like to drink?"))
            history = await memory.aget()
            engine = memory.sql_store._async_engine  # LlamaIndex's default chat store: close its connection
            if engine is not None:
                await engine.dispose()
            shown = "\n".join(m.content or "" for m in history)
            assert own in shown and other not in shown

    asyncio.run(go())


def test_truncates_by_score_not_the_whole_block(store: MemoryStore) -> None:
    block = GteMemoryBlock(memory_store=store, similarity_top_k=5)

    async def go() -> None:
        await block.aput([ChatMessage(role="user", content=f"fact number {i} about rivers") for i in range(5)],
                         session_id="u")
        text = await block.aget([ChatMessage(role="user", content="rivers")], session_id="u")
        lines = text.splitlines()
        assert len(lines) == 5
        from llama_index.core.utils import get_tokenizer

        last_two = sum(len(get_tokenizer()(line + "\n")) for line in lines[-2:])
        kept = await block.atruncate(text, last_two)
        assert kept == "\n".join(lines[:3])  # the three best stay, in order
        assert await block.atruncate(text, 10_000) is None

    asyncio.run(go())


def test_block_needs_a_scope(store: MemoryStore) -> None:
    block = GteMemoryBlock(memory_store=store)
    with pytest.raises(MemoryScopeError, match="scope"):
        asyncio.run(block.aget([ChatMessage(role="user", content="hi")]))


def test_block_survives_a_restart(tiny_embedder: Path, tmp_path: Path) -> None:
    script = textwrap.dedent("""
        import asyncio, json, sys
        from llama_index.core.base.llms.types import ChatMessage
        from gte_rag.embed import GteEncoder
        from gte_rag.llama_index import GteMemoryBlock
        from gte_rag.memory import MemorySettings, MemoryStore
        enc = GteEncoder(sys.argv[1], max_length=64, dtype="float32", device="cpu")
        block = GteMemoryBlock(memory_store=MemoryStore(embed_model=enc, location=sys.argv[2],
                               settings=MemorySettings(dedup_threshold=None)))
        async def go():
            if sys.argv[3] == "write":
                await block.aput([ChatMessage(role="user", content="my bike is red")], session_id="ana")
                await block.aput([ChatMessage(role="user", content="my bike is blue")], session_id="bob")
                return ""
            return await block.aget([ChatMessage(role="user", content="what colour is my bike?")], session_id="ana")
        print(json.dumps(asyncio.run(go())))
    """)
    where = str(tmp_path / "memory")
    for step in ("write", "read"):
        done = subprocess.run([sys.executable, "-c", script, str(tiny_embedder), where, step],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
    text = json.loads(done.stdout.strip().splitlines()[-1])
    assert "my bike is red" in text and "blue" not in text


class RuleLLM(CustomLLM):
    """A deterministic LLM: extracts the sentences of the excerpt; judges 'moved' to replace 'live'."""

    calls: list[str] = []

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name="rule-llm")

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        self.calls.append(prompt)
        if prompt.startswith("Old memory:"):
            old, new = (line.split(": ", 1)[1] for line in prompt.splitlines()[:2])
            return CompletionResponse(text="yes" if "moved" in new and "live" in old else "no")
        excerpt = prompt.split("Conversation:\n", 1)[1].split("\n\nFacts:", 1)[0]
        facts = [s.strip() for line in excerpt.splitlines() for s in line.split(": ", 1)[-1].split(".") if s.strip()]
        return CompletionResponse(text="\n".join(f"- {f}." for f in facts) or "- NONE")

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        yield self.complete(prompt, formatted, **kwargs)


def test_llm_facts_supersede_contradicted_ones(memory_engine: str, memory_encoder: GteEncoder, tmp_path: Path) -> None:
    facts = LLMFactExtractor(RuleLLM())
    with MemoryStore(embed_model=memory_encoder, location=location_for(memory_engine, tmp_path),
                     settings=MemorySettings(dedup_threshold=None), extractor=facts.extract, judge=facts.judge) as mem:
        first = mem.add([{"role": "user", "content": "I live in Lisbon. I have a cat."}], user_id="ana")
        assert sorted(e.text for e in first.events) == ["I have a cat.", "I live in Lisbon."]
        lisbon = next(e.id for e in first.events if "Lisbon" in e.text)
        later = mem.add("I moved to Berlin.", user_id="ana", session_id="s2")
        assert later.superseded == [lisbon]
        shown = {h.text for h in mem.search("where do I live?", user_id="ana", top_k=10)}
        assert shown == {"I have a cat.", "I moved to Berlin."}
        assert [m.text for m in mem.history(lisbon, user_id="ana")] == ["I live in Lisbon.", "I moved to Berlin."]
        # another user's memory is never judged against
        mem.add("I live in Rome.", user_id="bob")
        assert mem.add("I moved to Paris.", user_id="carl").superseded == []


def test_fact_extractor_checks_its_inputs() -> None:
    with pytest.raises(Exception, match="LlamaIndex LLM"):
        LLMFactExtractor("gpt")  # type: ignore[arg-type]
    with pytest.raises(Exception, match="text"):
        LLMFactExtractor(RuleLLM(), extract_prompt="no placeholder")
