"""Long-term memory for LLM agents: scoped records, dedup and supersede, hybrid recall with recency.

- :class:`MemoryStore` stores what users said (or facts extracted from it) in one Qdrant
  collection and recalls it per scope (user, agent, session) with one Qdrant request.
- :class:`MemorySettings` holds the dedup threshold, write-time context, fusion, recency decay,
  importance and neighbour settings, with documented defaults.
- :class:`MemoryRecord`, :class:`MemoryHit`, :class:`AddResult`, :class:`MemoryEvent` are what it returns.

No LlamaIndex here: ``gte_rag.llama_index.GteMemoryBlock`` adapts it to LlamaIndex's ``Memory``.
"""

from __future__ import annotations

from ._records import RESERVED_FIELDS, SCOPE_FIELDS, AddResult, MemoryEvent, MemoryHit, MemoryRecord, Message, Scope
from ._settings import DecayKind, MemorySettings, SearchMode
from ._store import DEFAULT_MEMORY_COLLECTION, Extractor, Judge, MemoryStore

__all__ = [
    "AddResult",
    "DEFAULT_MEMORY_COLLECTION",
    "DecayKind",
    "Extractor",
    "Judge",
    "MemoryEvent",
    "MemoryHit",
    "MemoryRecord",
    "MemorySettings",
    "MemoryStore",
    "Message",
    "RESERVED_FIELDS",
    "SCOPE_FIELDS",
    "Scope",
    "SearchMode",
]
