"""KnowledgeBase: encoder + Qdrant store + hybrid retrieval, configured by a directory or a URL."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qdrant_client import models

from ..embed import DEFAULT_MODEL, GteEncoder
from ..errors import ConfigError
from ..qdrant import (
    AsyncEdgeBackend,
    AsyncQdrantStore,
    CollectionLayout,
    HybridConfig,
    QdrantStore,
    SearchHit,
    open_async_store,
    open_store,
)
from ..qdrant._layout import PayloadIndexType
from ._chunking import TokenChunker
from ._files import read_files
from ._ingest import IngestStats, Ingestor, as_source_documents

if TYPE_CHECKING:
    from ..llama_index import GteHybridRetriever, GteVectorStore

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_COLLECTION", "KnowledgeBase"]

DEFAULT_COLLECTION = "gte_rag"
DEFAULT_CHUNK_TOKENS = 512
DEFAULT_PAYLOAD_INDEXES: tuple[tuple[str, PayloadIndexType], ...] = (("doc_id", "keyword"), ("ref_doc_id", "keyword"), ("chunk_index", "integer"))


class _ThreadedBackend(AsyncEdgeBackend):
    """Async view of a sync backend (Edge, or qdrant-client local mode): calls run in a thread."""

    def __init__(self, sync: Any) -> None:
        super().__init__(sync)
        self.engine = getattr(sync, "engine", "edge")


class KnowledgeBase:
    """A ready knowledge base: documents in, hybrid search results out.

    Args:
        location: ``None`` (Qdrant Edge in a temporary directory), a directory (Edge,
            persistent), ``":memory:"`` (qdrant-client local mode) or an ``http(s)://`` URL
            (a Qdrant server or cluster).
        model: Embedding model name or checkpoint directory (ignored when ``encoder`` is given).
        collection: Collection name.
        encoder: A ready :class:`GteEncoder` to share.
        hybrid: Default query mode, fusion and weights.
        chunk_size: Tokens per chunk; ``None``: the model's limit, at most 512. ``0`` stores
            each document as one point.
        chunk_overlap: Tokens shared by consecutive chunks; ``None``: one eighth of the chunk.
        api_key: Server API key.
        store_options: Passed to :func:`gte_rag.qdrant.open_store` (``prefer_grpc``,
            ``shard_number``, ``replication_factor``, ``on_disk``, ``quantization_config``...).
        encoder_options: Passed to :class:`GteEncoder` (``device``, ``dtype``, ``dimension``...).

    Example:
        >>> from gte_rag import KnowledgeBase
        >>> with KnowledgeBase() as kb:  # doctest: +SKIP
        ...     kb.add_texts(["Plants make oxygen.", "Rust is a systems language."])
        ...     print(kb.query("photosynthesis", top_k=1)[0].payload["text"])
        Plants make oxygen.
    """

    def __init__(
        self,
        location: str | Path | None = None,
        *,
        model: str | Path = DEFAULT_MODEL,
        collection: str = DEFAULT_COLLECTION,
        encoder: GteEncoder | None = None,
        hybrid: HybridConfig | None = None,
        chunk_size: int | None = None,
        chunk_overlap: int | None = None,
        api_key: str | None = None,
        store_options: Mapping[str, Any] | None = None,
        encoder_options: Mapping[str, Any] | None = None,
        ingest_batch_size: int = 256,
    ) -> None:
        if encoder is not None and encoder_options:
            raise ConfigError("pass either encoder= or encoder_options=, not both")
        self.encoder = encoder or GteEncoder(model, **dict(encoder_options or {}))
        self.hybrid = hybrid or HybridConfig()
        if not self.encoder.has_sparse and self.hybrid.mode != "dense":
            raise ConfigError(f"the encoder has no sparse output, so mode={self.hybrid.mode!r} cannot work; use HybridConfig(mode='dense')")
        self.location = location
        self.layout = CollectionLayout(
            collection,
            dense_size=self.encoder.dimension,
            sparse_name="sparse" if self.encoder.has_sparse else None,
            sparse_idf=self.encoder.sparse_mode == "lexical",
            model_name=self.encoder.spec.hf_id,
            payload_indexes=DEFAULT_PAYLOAD_INDEXES,
        )
        options = dict(store_options or {})
        self.store: QdrantStore = open_store(location, self.layout, api_key=api_key, **options)
        try:
            self.store.ensure_collection()
        except BaseException:
            self.store.close()  # release the shard so the caller can reopen it correctly
            raise
        self._async_store: AsyncQdrantStore | None = None
        self._async_args = (location, api_key, options)
        self.chunker = self._make_chunker(chunk_size, chunk_overlap)
        self.ingest_batch_size = ingest_batch_size

    def _make_chunker(self, chunk_size: int | None, chunk_overlap: int | None) -> TokenChunker | None:
        if chunk_size == 0:
            return None
        room = self.encoder.max_length - 2  # special tokens around each chunk
        size = min(room, DEFAULT_CHUNK_TOKENS) if chunk_size is None else chunk_size
        if size > room:
            raise ConfigError(
                f"chunk_size={size} exceeds the {room} tokens {self.encoder.model_name} embeds per chunk; "
                f"use a value <= {room}"
            )
        overlap = size // 8 if chunk_overlap is None else chunk_overlap
        return TokenChunker(self.encoder.tokenizer, chunk_size=size, chunk_overlap=overlap)

    @property
    def async_store(self) -> AsyncQdrantStore:
        """The async twin of :attr:`store` (same data)."""
        if self._async_store is None:
            location, api_key, options = self._async_args
            if isinstance(location, str) and location.startswith(("http://", "https://")):
                self._async_store = open_async_store(location, self.layout, api_key=api_key, **options)
            else:
                # embedded engines: share the one open shard / local client through a thread
                self._async_store = AsyncQdrantStore(backend=_ThreadedBackend(self.store.backend))
        return self._async_store

    def _ingestor(self, *, for_async: bool = False) -> Ingestor:
        # the async store is opened only when async ingest asks for it
        return Ingestor(self.encoder, self.store, async_store=self.async_store if for_async else None,
                        chunker=self.chunker, batch_size=self.ingest_batch_size)

    # ------------------------------------------------------------------ ingest
    def add_texts(
        self,
        texts: Sequence[str],
        *,
        ids: Sequence[str] | None = None,
        metadatas: Sequence[Mapping[str, Any]] | None = None,
        show_progress: bool = False,
    ) -> IngestStats:
        """Add texts; without ``ids`` each text's id is a hash of its content."""
        return self.add_documents(as_source_documents(texts, ids=ids, metadatas=metadatas), show_progress=show_progress)

    def add_documents(self, documents: Iterable[Any], *, show_progress: bool = False) -> IngestStats:
        """Add :class:`SourceDocument`s or LlamaIndex ``Document``s (re-adding an id replaces it)."""
        return self._ingestor().ingest(as_source_documents(documents), show_progress=show_progress)

    async def aadd_documents(self, documents: Iterable[Any]) -> IngestStats:
        """Async twin of :meth:`add_documents`."""
        return await self._ingestor(for_async=True).aingest(as_source_documents(documents))

    def add_files(self, paths: Iterable[str | Path], *, show_progress: bool = False) -> IngestStats:
        """Add text, markdown and PDF files (directories are walked); the path is the document id."""
        return self.add_documents(read_files(paths), show_progress=show_progress)

    def delete_documents(self, doc_ids: Sequence[str]) -> None:
        """Delete every chunk of these documents."""
        self.store.delete_documents(doc_ids)

    def delete(self, filter: models.Filter) -> None:
        """Delete the chunks matching a Qdrant filter."""
        self.store.delete(filter)

    def count(self) -> int:
        """Number of stored chunks."""
        return self.store.count()

    # ------------------------------------------------------------------ query
    def _resolve(self, hybrid: HybridConfig | None, mode: str | None, fusion: str | None) -> HybridConfig:
        if hybrid is not None and (mode is not None or fusion is not None):
            raise ConfigError("pass either hybrid= or mode=/fusion=, not both")
        return hybrid or self.hybrid.override(mode=mode, fusion=fusion)

    def query(
        self,
        text: str,
        *,
        top_k: int = 5,
        filter: models.Filter | None = None,
        mode: str | None = None,
        fusion: str | None = None,
        hybrid: HybridConfig | None = None,
    ) -> list[SearchHit]:
        """Best chunks for a query, in one encoder pass and one Qdrant request.

        ``mode``/``fusion`` override the knowledge base's default; ``hybrid`` replaces it.
        """
        return self.query_many([text], top_k=top_k, filter=filter, mode=mode, fusion=fusion, hybrid=hybrid)[0]

    def query_many(
        self,
        texts: Sequence[str],
        *,
        top_k: int = 5,
        filter: models.Filter | None = None,
        mode: str | None = None,
        fusion: str | None = None,
        hybrid: HybridConfig | None = None,
        show_progress: bool = False,
    ) -> list[list[SearchHit]]:
        """:meth:`query` for many queries, encoded in batches."""
        config = self._resolve(hybrid, mode, fusion)
        out = self.encoder.encode(list(texts), role="query", return_sparse=config.mode != "dense", show_progress=show_progress)
        return [
            self.store.query(out.dense[i], out.sparse[i] if out.sparse else None, top_k=top_k, hybrid=config, filter=filter)
            for i in range(len(texts))
        ]

    async def aquery(
        self,
        text: str,
        *,
        top_k: int = 5,
        filter: models.Filter | None = None,
        mode: str | None = None,
        fusion: str | None = None,
        hybrid: HybridConfig | None = None,
    ) -> list[SearchHit]:
        """Async twin of :meth:`query`: the encoder runs in a thread, the store call is async."""
        config = self._resolve(hybrid, mode, fusion)
        out = await asyncio.to_thread(self.encoder.encode, [text], role="query", return_sparse=config.mode != "dense")
        return await self.async_store.query(
            out.dense[0], out.sparse[0] if out.sparse else None, top_k=top_k, hybrid=config, filter=filter
        )

    # ------------------------------------------------------------------ LlamaIndex
    def as_retriever(self, **kwargs: Any) -> GteHybridRetriever:
        """A LlamaIndex retriever over this knowledge base."""
        from ..llama_index import GteHybridRetriever

        return GteHybridRetriever(knowledge_base=self, **kwargs)

    def as_vector_store(self) -> GteVectorStore:
        """A LlamaIndex vector store over this knowledge base's collection."""
        from ..llama_index import GteVectorStore

        return GteVectorStore(knowledge_base=self)

    def optimize(self) -> bool:
        """Build the search indexes now (Edge); returns whether anything was done."""
        return self.store.optimize()

    def close(self) -> None:
        """Release the store (a temporary Edge directory is deleted)."""
        self.store.close()

    def __enter__(self) -> KnowledgeBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"KnowledgeBase(location={self.location!r}, collection={self.layout.collection!r}, encoder={self.encoder!r})"

