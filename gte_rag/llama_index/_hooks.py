"""The LlamaIndex embedding hooks both adapters implement, written once.

LlamaIndex asks an embedding for a query, a text and a list of texts, each sync and async.
Both adapters answer all six from one ``_encode_role(texts, role)``; the async hooks run it
in a worker thread so the event loop is never blocked by a forward pass. Many of those
threads (and sync callers) may use one encoder at once: it tokenizes under its own lock.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["RoleHooks"]


class RoleHooks:
    """Mixin: LlamaIndex's six embedding hooks over :meth:`_encode_role`.

    Not generic (pydantic models take generic mixins badly): the adapters type
    :meth:`_encode_role`, and LlamaIndex's public methods type what callers see.
    """

    def _encode_role(self, texts: list[str], role: str) -> list[Any]:
        raise NotImplementedError

    def _get_query_embedding(self, query: str) -> Any:
        return self._encode_role([query], "query")[0]

    async def _aget_query_embedding(self, query: str) -> Any:
        return await asyncio.to_thread(self._get_query_embedding, query)

    def _get_text_embedding(self, text: str) -> Any:
        return self._encode_role([text], "document")[0]

    async def _aget_text_embedding(self, text: str) -> Any:
        return await asyncio.to_thread(self._get_text_embedding, text)

    def _get_text_embeddings(self, texts: list[str]) -> list[Any]:
        return self._encode_role(list(texts), "document")

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Any]:
        return await asyncio.to_thread(self._get_text_embeddings, texts)
