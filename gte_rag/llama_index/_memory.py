"""LlamaIndex memory adapters over :class:`gte_rag.memory.MemoryStore`.

- :class:`GteMemoryBlock` is a ``BaseMemoryBlock`` for ``llama_index.core.memory.Memory``. The
  scope is taken from EACH call (``Memory`` passes its ``session_id`` to ``aget`` and stamps it on
  the messages given to ``aput``), never stored on the block: one block shared by any number of
  sessions never shows one session another's memories (LlamaIndex's ``VectorMemoryBlock`` pins
  the first caller's session filter in its ``query_kwargs``, llama_index#22701).
- :class:`LLMFactExtractor` turns any LlamaIndex LLM into the ``extract`` / ``judge`` callables
  that :class:`~gte_rag.memory.MemoryStore` takes (the core never imports LlamaIndex).
"""

from __future__ import annotations

import re
from typing import Any

from llama_index.core.base.llms.types import ChatMessage, TextBlock
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.llms import LLM
from llama_index.core.memory.memory import BaseMemoryBlock

from ..errors import ConfigError, MemoryScopeError
from ..memory import MemoryHit, MemoryStore

__all__ = ["GteMemoryBlock", "LLMFactExtractor"]

EXTRACT_PROMPT = (
    "Extract the facts worth remembering about the user from the conversation below, as short standalone "
    "sentences, one per line, each starting with '- '. Write nothing else; write '- NONE' if there are none.\n\n"
    "Conversation:\n{text}\n\nFacts:\n"
)
JUDGE_PROMPT = (
    "Old memory: {old}\nNew memory: {new}\n"
    "Does the new memory make the old one no longer true (it updates or contradicts it)? Answer yes or no.\nAnswer:"
)


def _text(message: ChatMessage) -> str:
    return " ".join(b.text for b in message.blocks if isinstance(b, TextBlock)).strip()


def _speaker(message: ChatMessage) -> str:
    name = message.additional_kwargs.get("name")
    return str(name) if name else str(getattr(message.role, "value", message.role))


def _tokens(text: str) -> int:
    from llama_index.core.utils import get_tokenizer

    return len(get_tokenizer()(text))


class GteMemoryBlock(BaseMemoryBlock[str]):
    """Long-term memory for ``llama_index.core.memory.Memory``, scoped per call, truncated by score.

    Scope of a call: writes (``Memory.aput`` passes no keyword arguments) take the user from
    each message's ``additional_kwargs["user_id"]``, else the block's ``user_id``, else the
    ``Memory``'s session id (one LlamaIndex session = one user). Reads use the same rule; a
    per-call ``memory.aget(user_id=...)`` is accepted only when it names that same user (or
    every message given carries it in ``additional_kwargs``), else ConfigError, so reads never
    look where writes did not go. The session id is
    stored with each memory; ``search_all_sessions=True`` (default) recalls across a user's
    sessions, ``False`` only the current one.

    The block's text lists the recalled memories best first, one per line; :meth:`atruncate`
    drops lines from the lowest score up until enough tokens are gone, instead of dropping
    the whole block.

    Example:
        >>> from llama_index.core.memory import Memory  # doctest: +SKIP
        >>> block = GteMemoryBlock(memory_store=MemoryStore(embed_model=emb, location="./memory"))  # doctest: +SKIP
        >>> memory = Memory.from_defaults(session_id="ana", memory_blocks=[block])  # doctest: +SKIP
    """

    name: str = Field(default="LongTermMemory", description="The name of the memory block.")
    priority: int = Field(default=1, description="Truncation priority (0 never truncates; then lower goes first).")
    memory_store: Any = Field(description="The gte_rag MemoryStore holding the memories.")
    user_id: str | None = Field(default=None, description="Fixed user of every call; None: per call (see above).")
    agent_id: str | None = Field(default=None, description="Agent the memories belong to, if any.")
    similarity_top_k: int = Field(default=5, gt=0, description="Memories recalled per call.")
    retrieval_context_window: int = Field(default=1, gt=0, description="Latest messages joined into the query.")
    search_all_sessions: bool = Field(default=True, description="Recall from every session of the user, not only the current one.")
    include_context: bool = Field(default=False, description="Also show the turns around each recalled memory.")

    _store: MemoryStore = PrivateAttr()

    def __init__(self, **data: Any) -> None:
        super().__init__(**data)
        if not isinstance(self.memory_store, MemoryStore):
            raise ConfigError(f"memory_store must be a gte_rag MemoryStore, got {type(self.memory_store).__name__}")
        self._store = self.memory_store

    @classmethod
    def class_name(cls) -> str:
        return "GteMemoryBlock"

    def _user(self, session_id: str | None, kwargs: dict[str, Any]) -> str:
        user = kwargs.get("user_id") or self.user_id or session_id
        if not user:
            raise MemoryScopeError(
                "GteMemoryBlock needs a scope: give Memory a session_id, the block a user_id, or pass user_id= "
                "to memory.aget / message.additional_kwargs"
            )
        return str(user)

    def _check_read_user(self, session_id: str | None, messages: list[ChatMessage], kwargs: dict[str, Any]) -> None:
        # Memory.aput passes no keyword arguments to the block: writes take the user from each
        # message's additional_kwargs, else the block's user_id, else the session id. A per-call
        # user_id on reads must be that same user, or reads would look where nothing is written.
        wanted = kwargs.get("user_id")
        if not wanted or wanted == (self.user_id or session_id):
            return
        stamped = {m.additional_kwargs.get("user_id") for m in messages}
        if stamped == {wanted}:
            return
        raise ConfigError(
            f"GteMemoryBlock.aget got user_id={wanted!r}, but its writes go to user "
            f"{self.user_id or session_id!r} (Memory.aput passes no user_id to the block). Give the block "
            "user_id=..., use the user as the Memory's session_id, or put user_id in every message's "
            "additional_kwargs"
        )

    async def _aget(self, messages: list[ChatMessage] | None = None, **block_kwargs: Any) -> str:
        if not messages:
            return ""
        session_id = block_kwargs.get("session_id")
        self._check_read_user(session_id, messages, block_kwargs)
        query = " ".join(t for t in (_text(m) for m in messages[-self.retrieval_context_window:]) if t)
        if not query:
            return ""
        hits = await self._store.asearch(
            query, user_id=self._user(session_id, block_kwargs), agent_id=self.agent_id,
            session_id=None if self.search_all_sessions else session_id, top_k=self.similarity_top_k,
        )
        return "\n".join(self._line(h) for h in hits)

    def _line(self, hit: MemoryHit) -> str:
        who = f"{hit.speaker}: " if hit.speaker and not hit.text.startswith(f"{hit.speaker}:") else ""
        line = f"- ({hit.timestamp.date().isoformat()}) {who}{hit.text}"
        if self.include_context and hit.context:
            around = " | ".join(f"{c.speaker + ': ' if c.speaker else ''}{c.text}" for c in hit.context)
            line += f" [around it: {around}]"
        return line

    async def _aput(self, messages: list[ChatMessage]) -> None:
        groups: dict[tuple[str, str | None], list[dict[str, Any]]] = {}
        for m in messages:
            text = _text(m)
            if not text:
                continue  # tool calls and images carry no text to remember
            session = m.additional_kwargs.get("session_id")
            user = self._user(session, {"user_id": m.additional_kwargs.get("user_id")})
            groups.setdefault((user, session), []).append({"name": _speaker(m), "content": text})
        for (user, session), batch in groups.items():
            await self._store.aadd(batch, user_id=user, session_id=session, agent_id=self.agent_id)

    async def atruncate(self, content: str, tokens_to_truncate: int) -> str | None:
        """Drop the lowest-scored memories (the last lines) until ``tokens_to_truncate`` tokens are gone."""
        lines = [line for line in content.split("\n") if line]
        removed = 0
        while lines and removed < tokens_to_truncate:
            removed += _tokens(lines.pop() + "\n")
        return "\n".join(lines) if lines else None


class LLMFactExtractor:
    """``extract`` and ``judge`` callables for :class:`~gte_rag.memory.MemoryStore`, from any LlamaIndex LLM.

    Example:
        >>> facts = LLMFactExtractor(llm)  # doctest: +SKIP
        >>> MemoryStore(embed_model=emb, extractor=facts.extract, judge=facts.judge)  # doctest: +SKIP
    """

    def __init__(self, llm: LLM, *, extract_prompt: str = EXTRACT_PROMPT, judge_prompt: str = JUDGE_PROMPT) -> None:
        if not isinstance(llm, LLM):
            raise ConfigError(f"llm must be a LlamaIndex LLM, got {type(llm).__name__}")
        for name, prompt, keys in (("extract_prompt", extract_prompt, ("{text}",)),
                                   ("judge_prompt", judge_prompt, ("{new}", "{old}"))):
            missing = [k for k in keys if k not in prompt]
            if missing:
                raise ConfigError(f"{name} must contain {missing} (where the text goes)")
        self.llm, self.extract_prompt, self.judge_prompt = llm, extract_prompt, judge_prompt

    def extract(self, text: str) -> list[str]:
        """Facts of a conversation excerpt, one short sentence each (none: empty list)."""
        answer = self.llm.complete(self.extract_prompt.replace("{text}", text)).text
        facts = [re.sub(r"^\s*(?:[-*\u2022]|\d+[.)])\s*", "", line).strip() for line in answer.splitlines()]
        return [f for f in facts if f and f.upper() != "NONE"]

    def judge(self, new: str, old: str) -> bool:
        """Whether ``new`` makes ``old`` no longer true (the LLM answers yes or no)."""
        answer = self.llm.complete(self.judge_prompt.replace("{new}", new).replace("{old}", old)).text
        return answer.strip().lower().startswith("yes")
