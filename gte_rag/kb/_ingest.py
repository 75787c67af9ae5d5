"""Ingest: documents -> chunks -> ONE encoder pass (dense + sparse) -> idempotent upserts.

Point ids are derived from the document id and the chunk index, so running an ingest
again (after an interruption, or with changed text) overwrites the same points; chunks
left over from a longer previous version of a document are deleted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from qdrant_client import models

from .._batching import iter_batch
from ..embed import GteEncoder
from ..errors import ConfigError, InputTypeError
from ..qdrant import AsyncQdrantStore, PointRecord, QdrantStore, build_payload, point_id
from ._chunking import Chunk, TokenChunker

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_INGEST_BATCH", "IngestStats", "Ingestor", "SourceDocument", "as_source_documents"]

DEFAULT_INGEST_BATCH = 256
"""Chunks encoded and upserted per step."""


@dataclass(frozen=True)
class SourceDocument:
    """A document to ingest: a stable id, its text and flat JSON-compatible metadata."""

    id: str
    text: str
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ConfigError(f"document id must be a non-empty str, got {self.id!r}")
        if not isinstance(self.text, str):
            raise InputTypeError(f"document {self.id!r}: text must be a str, got {type(self.text).__name__}")


def as_source_documents(
    items: Iterable[Any], *, ids: Sequence[str] | None = None, metadatas: Sequence[Mapping[str, Any]] | None = None
) -> list[SourceDocument]:
    """Normalise strs, :class:`SourceDocument`s or LlamaIndex ``Document``s (duck-typed)."""
    out: list[SourceDocument] = []
    items = list(items)
    if ids is not None and len(ids) != len(items):
        raise ConfigError(f"got {len(items)} documents but {len(ids)} ids")
    if metadatas is not None and len(metadatas) != len(items):
        raise ConfigError(f"got {len(items)} documents but {len(metadatas)} metadata dicts")
    for i, item in enumerate(items):
        meta = dict(metadatas[i]) if metadatas is not None else {}
        if isinstance(item, SourceDocument):
            out.append(item if ids is None and metadatas is None else SourceDocument(
                ids[i] if ids is not None else item.id, item.text, {**item.metadata, **meta}))
        elif isinstance(item, str):
            doc_id = ids[i] if ids is not None else _content_id(item)
            out.append(SourceDocument(doc_id, item, meta))
        elif hasattr(item, "text") and (hasattr(item, "doc_id") or hasattr(item, "id_")):
            doc_id = ids[i] if ids is not None else str(getattr(item, "doc_id", None) or item.id_)
            out.append(SourceDocument(doc_id, item.text, {**dict(getattr(item, "metadata", {}) or {}), **meta}))
        else:
            raise InputTypeError(
                f"documents[{i}] is a {type(item).__name__}; pass str, gte_rag SourceDocument or a LlamaIndex Document"
            )
    return out


def _content_id(text: str) -> str:
    import hashlib

    return "sha1:" + hashlib.sha1(text.encode("utf-8")).hexdigest()


@dataclass
class IngestStats:
    """What an ingest did and where its time went (seconds)."""

    documents: int = 0
    chunks: int = 0
    skipped_empty: int = 0
    chunk_seconds: float = 0.0
    encode_seconds: float = 0.0
    store_seconds: float = 0.0
    total_seconds: float = 0.0

    @property
    def outside_encoder_fraction(self) -> float:
        """Share of the wall time not spent in the encoder's forward passes."""
        return 0.0 if self.total_seconds <= 0 else 1.0 - self.encode_seconds / self.total_seconds

    def __add__(self, other: IngestStats) -> IngestStats:
        return IngestStats(*(getattr(self, f) + getattr(other, f) for f in self.__dataclass_fields__))


def node_content(pid: str, chunk: Chunk, doc_id: str, metadata: Mapping[str, Any]) -> str:
    """A LlamaIndex ``TextNode`` as JSON (text left out: it lives in the ``text`` field)."""
    return json.dumps(
        {
            "id_": pid,
            "embedding": None,
            "metadata": dict(metadata),
            "excluded_embed_metadata_keys": [],
            "excluded_llm_metadata_keys": [],
            "relationships": {"1": {"node_id": doc_id, "node_type": "4", "metadata": {}, "hash": None, "class_name": "RelatedNodeInfo"}},
            "text": "",
            "start_char_idx": chunk.start,
            "end_char_idx": chunk.end,
            "metadata_template": "{key}: {value}",
            "metadata_separator": "\n",
            "text_template": "{metadata_str}\n\n{content}",
            "class_name": "TextNode",
        },
        ensure_ascii=False,
    )


class Ingestor:
    """Runs documents through chunker, encoder and store.

    Args:
        encoder: Gives dense and sparse vectors in one pass.
        store: Sync store (``ingest``); ``async_store`` for ``aingest``.
        chunker: Splits long documents; ``None`` stores each document as one point
            (the encoder truncates it; the sparse half still covers the whole text).
        batch_size: Chunks encoded and upserted per step.
    """

    def __init__(
        self,
        encoder: GteEncoder,
        store: QdrantStore | None = None,
        *,
        async_store: AsyncQdrantStore | None = None,
        chunker: TokenChunker | None = None,
        batch_size: int = DEFAULT_INGEST_BATCH,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        self.encoder = encoder
        self.store = store
        self.async_store = async_store
        self.chunker = chunker
        self.batch_size = batch_size

    def _steps(self, documents: Sequence[SourceDocument], stats: IngestStats) -> Iterator[tuple[list[PointRecord], models.Filter | None, float]]:
        """Yield (points, stale-chunk filter, encode seconds) per step; pure compute."""
        for group in iter_batch(documents, max(1, self.batch_size // 4)):
            t0 = time.perf_counter()
            if self.chunker is not None:
                pieces = self.chunker.split_many([d.text for d in group])
            else:
                pieces = [[Chunk(d.text, 0, len(d.text))] if d.text.strip() else [] for d in group]
            stats.chunk_seconds += time.perf_counter() - t0
            flat: list[tuple[SourceDocument, int, Chunk]] = [
                (doc, i, c) for doc, chunks in zip(group, pieces) for i, c in enumerate(chunks)
            ]
            stats.documents += len(group)
            stats.skipped_empty += sum(1 for chunks in pieces if not chunks)
            for step in iter_batch(flat, self.batch_size):
                t1 = time.perf_counter()
                out = self.encoder.encode([c.text for _, _, c in step], role="document")
                encode_s = time.perf_counter() - t1
                points = []
                for row, (doc, idx, chunk) in enumerate(step):
                    pid = point_id(doc.id, idx)
                    meta = dict(doc.metadata)
                    payload = build_payload(
                        text=chunk.text, doc_id=doc.id, chunk_index=idx, metadata=meta,
                        node_content=node_content(pid, chunk, doc.id, meta),
                    )
                    points.append(PointRecord(
                        id=pid, dense=out.dense[row], sparse=out.sparse[row] if out.sparse else None, payload=payload,
                    ))
                stats.chunks += len(step)
                yield points, None, encode_s
            yield [], _stale_filter({d.id: len(c) for d, c in zip(group, pieces)}), 0.0

    def ingest(self, documents: Iterable[SourceDocument], *, show_progress: bool = False) -> IngestStats:
        """Ingest documents into the sync store; returns timing and counts."""
        if self.store is None:
            raise ConfigError("this Ingestor has no sync store; use aingest() or pass store=")
        docs = list(documents)
        stats = IngestStats()
        start = time.perf_counter()
        bar = _bar(len(docs), show_progress)
        for points, stale, encode_s in self._steps(docs, stats):
            stats.encode_seconds += encode_s
            t = time.perf_counter()
            if points:
                self.store.upsert(points, batch_size=len(points))
            if stale is not None:
                self.store.delete(stale)
                if bar is not None:
                    bar.n = stats.documents
                    bar.refresh()
            stats.store_seconds += time.perf_counter() - t
        if bar is not None:
            bar.close()
        stats.total_seconds = time.perf_counter() - start
        logger.info("ingested %d documents as %d chunks in %.1fs", stats.documents, stats.chunks, stats.total_seconds)
        return stats

    async def aingest(self, documents: Iterable[SourceDocument], *, show_progress: bool = False) -> IngestStats:
        """Async twin of :meth:`ingest`: encoding runs in a worker thread."""
        if self.async_store is None:
            raise ConfigError("this Ingestor has no async store; use ingest() or pass async_store=")
        docs = list(documents)
        stats = IngestStats()
        start = time.perf_counter()
        steps = self._steps(docs, stats)
        sentinel = object()
        while True:
            item = await asyncio.to_thread(next, steps, sentinel)
            if item is sentinel:
                break
            points, stale, encode_s = cast("tuple[list[PointRecord], models.Filter | None, float]", item)
            stats.encode_seconds += encode_s
            t = time.perf_counter()
            if points:
                await self.async_store.upsert(points, batch_size=len(points))
            if stale is not None:
                await self.async_store.delete(stale)
            stats.store_seconds += time.perf_counter() - t
        stats.total_seconds = time.perf_counter() - start
        return stats


def _stale_filter(chunk_counts: Mapping[str, int]) -> models.Filter:
    """Points of these documents whose chunk index is past the new chunk count."""
    return models.Filter(
        should=[
            models.Filter(
                must=[
                    models.FieldCondition(key="doc_id", match=models.MatchValue(value=doc_id)),
                    models.FieldCondition(key="chunk_index", range=models.Range(gte=count)),
                ]
            )
            for doc_id, count in chunk_counts.items()
        ]
    )


def _bar(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="Ingesting", unit="doc")
