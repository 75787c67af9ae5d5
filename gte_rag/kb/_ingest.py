"""The one write path: chunk records -> ONE encoder pass (dense + sparse) -> idempotent upserts.

Every entry point writes through :class:`Ingestor`: ``KnowledgeBase.add_*`` (documents
cut into chunks here) and the LlamaIndex vector store (nodes converted to
:class:`ChunkRecord` by the adapter). Ids, payloads, vectors and stale handling are
therefore decided in one place.

The logic is written once, as generators that yield store operations (``retrieve``,
``delete``, ``upsert``, ``scroll``) and receive their results; :meth:`Ingestor.ingest`
runs them against the sync store and :meth:`Ingestor.aingest` against the async one
(encoding in a worker thread), so the two cannot drift apart. Upserts are pipelined with
encoding: a batch is written (in a worker thread, or a task) while the next one is
encoded; the store still gets one call at a time, in order.

Documents replace their previous version: before a changed document's chunks are
written, its points that the new version does not have are deleted. A document whose
text, metadata and chunking are unchanged (every stored chunk present, with the same
``_content_hash``) is not encoded again.

Long documents (given a ``long_doc`` encoder, :class:`~gte_rag.longdoc.LongDocEncoder`):
a document whose own tokens exceed one window is encoded by it (late chunking) instead of
the chunker. Its chunks are written as usual, with the dense and sparse vectors it
computed (the encoder is not run again), and the document gets document points: its
chunk vectors as a MAX_SIM multivector plus a document-level vector, split into parts of
at most ``multivector_floats`` floats (ids :func:`~gte_rag.qdrant.document_point_id`,
payload ``_kind: "document"``, ``doc_id``, ``part``, ``parts``, ``chunk_start`` /
``chunk_end``, the document's metadata and content hash). The parts count is kept on each
chunk (``_doc_parts``), so the unchanged check and the stale deletion cover them too.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np
from qdrant_client import models

from .._batching import iter_batch
from .._types import SparseVector, TextEncoder
from ..errors import ConfigError, InputTypeError
from ..qdrant import (
    DOCUMENT_KIND,
    KIND_FIELD,
    MAX_MULTIVECTOR_FLOATS,
    AsyncQdrantStore,
    PointRecord,
    QdrantStore,
    StoredPoint,
    build_payload,
    document_point_id,
    multivector_parts,
    node_point_id,
    point_id,
)
from ._chunking import Chunk, TokenChunker, whole_text

logger = logging.getLogger(__name__)

__all__ = [
    "ChunkRecord",
    "DEFAULT_INGEST_BATCH",
    "IngestStats",
    "Ingestor",
    "SourceDocument",
    "as_source_documents",
    "node_content_dict",
]

DEFAULT_INGEST_BATCH = 256
"""Chunks encoded and upserted per step."""

# Payload fields of the write path, next to the user's metadata (underscored like
# LlamaIndex's own ``_node_content``, so they do not take a natural metadata name).
CONTENT_HASH_FIELD = "_content_hash"
CHUNK_COUNT_FIELD = "_chunk_count"
SOURCE_FIELD = "_source"
DOC_PARTS_FIELD = "_doc_parts"
WRITE_PATH_FIELDS = (CONTENT_HASH_FIELD, CHUNK_COUNT_FIELD, SOURCE_FIELD, DOC_PARTS_FIELD, KIND_FIELD)


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


@dataclass(frozen=True)
class ChunkRecord:
    """One point to write: what both the knowledge base and the LlamaIndex store produce.

    Args:
        doc_id: The source document id (LlamaIndex ``ref_doc_id``).
        text: The stored text (payload ``text``, and the text of the stored node).
        node_id: The caller's node id; the point id is derived from it
            (:func:`~gte_rag.qdrant.node_point_id`). ``None``: the id is
            :func:`~gte_rag.qdrant.point_id` of ``doc_id`` and ``chunk_index``.
        chunk_index: Position in the document, or ``None`` when unknown.
        metadata: Flat JSON-compatible metadata, stored at the top level.
        embed_input: What the encoder reads, when it is not ``text`` (LlamaIndex's
            embed-mode content with metadata, or a chunker's token slice).
        dense: A dense vector computed elsewhere (LlamaIndex ``node.embedding``, or a late
            chunk's); the sparse half still comes from the encoder (its cache, when the
            same text was just embedded) unless ``sparse`` is given too.
        node: The LlamaIndex node as a dict (``node.to_dict()``-like, text included);
            ``None`` builds a ``TextNode`` dict from the fields here.
        node_type: LlamaIndex class name of ``node``.
        start: Character offset of the chunk in its document (chunks cut by the knowledge
            base: also stored as payload ``start``), or ``None``.
        end: One past the chunk's last character, or ``None``.
        extra_payload: Payload fields of the write path itself (content hash, source).
        sparse: A sparse vector computed elsewhere (a late chunk's, from the same pass as
            its dense vector); with ``dense`` given too, the encoder does not run for it.
    """

    doc_id: str
    text: str
    node_id: str | None = None
    chunk_index: int | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    embed_input: Any = None
    dense: Any = None
    node: Mapping[str, Any] | None = None
    node_type: str = "TextNode"
    start: int | None = None
    end: int | None = None
    extra_payload: Mapping[str, Any] = field(default_factory=dict)
    sparse: SparseVector | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.doc_id, str) or not self.doc_id:
            raise ConfigError(f"doc_id must be a non-empty str, got {self.doc_id!r}")
        if not isinstance(self.text, str):
            raise InputTypeError(f"chunk of {self.doc_id!r}: text must be a str, got {type(self.text).__name__}")
        if self.node_id is None and self.chunk_index is None:
            raise ConfigError(f"chunk of {self.doc_id!r} needs a node_id or a chunk_index to derive its id")
        taken = sorted(set(self.metadata) & set(WRITE_PATH_FIELDS))
        if taken:
            raise ConfigError(
                f"metadata of {self.doc_id!r} uses {taken}, which the knowledge base keeps for itself "
                f"({list(WRITE_PATH_FIELDS)}); rename those keys"
            )

    @property
    def point_id(self) -> str:
        """The Qdrant point id (deterministic)."""
        if self.node_id is not None:
            return node_point_id(self.node_id)
        assert self.chunk_index is not None
        return point_id(self.doc_id, self.chunk_index)

    @property
    def visible_id(self) -> str:
        """The id readers get back as the node id."""
        return self.node_id if self.node_id is not None else self.point_id


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
    seen: set[str] = set()
    for doc in out:
        if doc.id in seen:
            raise ConfigError(f"document id {doc.id!r} appears twice in one call; ids must be unique")
        seen.add(doc.id)
    return out


def _content_id(text: str) -> str:
    return "sha1:" + hashlib.sha1(text.encode("utf-8")).hexdigest()


@dataclass
class IngestStats:
    """What an ingest did and where its time went (seconds).

    ``documents`` counts the documents given; each of them is ``added`` (new),
    ``updated`` (re-encoded over an older version), ``unchanged`` (same content as
    stored: not encoded again) or ``skipped_empty`` (no text: nothing stored, and an
    older version is removed). ``removed`` counts documents deleted because their source
    file is gone or empty.
    """

    documents: int = 0
    chunks: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
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

    def summary(self) -> str:
        """One line: ``3 added, 1 updated, 10 unchanged, 2 removed, 0 empty; 42 chunks in 1.2s``."""
        return (
            f"{self.added} added, {self.updated} updated, {self.unchanged} unchanged, {self.removed} removed, "
            f"{self.skipped_empty} empty; {self.chunks} chunks in {self.total_seconds:.1f}s"
        )


def node_content_dict(
    *, node_id: str, text: str, doc_id: str, metadata: Mapping[str, Any], start: int | None, end: int | None
) -> dict[str, Any]:
    """A LlamaIndex ``TextNode`` as a dict, text included (what ``_node_content`` holds)."""
    return {
        "id_": node_id,
        "embedding": None,
        "metadata": dict(metadata),
        "excluded_embed_metadata_keys": [],
        "excluded_llm_metadata_keys": [],
        "relationships": {"1": {"node_id": doc_id, "node_type": "4", "metadata": {}, "hash": None, "class_name": "RelatedNodeInfo"}},
        "metadata_template": "{key}: {value}",
        "metadata_separator": "\n",
        "text": text,
        "mimetype": "text/plain",
        "start_char_idx": start,
        "end_char_idx": end,
        "text_template": "{metadata_str}\n\n{content}",
        "class_name": "TextNode",
    }


# A store operation yielded by the write generators: (method name, args, kwargs).
_Op = tuple[str, tuple[Any, ...], dict[str, Any]]
_Gen = Generator[_Op, Any, Any]
_Store = Union[QdrantStore, AsyncQdrantStore]


class Ingestor:
    """Runs chunk records through the encoder into the store.

    Args:
        encoder: Gives dense and sparse vectors in one pass.
        store: Sync store (``ingest`` / ``write``); ``async_store`` for the async twins.
        chunker: Splits long documents; ``None`` stores each document as one point
            (the encoder truncates it; the sparse half still covers the whole text).
        batch_size: Chunks encoded and upserted per step.
        chunk_signature: Settings that decide how documents are cut, part of each
            document's content hash (a change re-encodes everything).
        on_write: Called once before the first write (the knowledge base warns there
            when the precision differs from the collection's).
        long_doc: A :class:`~gte_rag.longdoc.LongDocEncoder` over ``encoder``: documents
            longer than one of its windows are late-chunked by it and get document points
            (the store's layout must have the long-document vectors). ``None``: every
            document goes through ``chunker``.
        multivector_floats: Most floats in one document point's multivector (Qdrant's cap,
            :data:`~gte_rag.qdrant.MAX_MULTIVECTOR_FLOATS`, by default); more chunk vectors
            make more parts.
    """

    def __init__(
        self,
        encoder: TextEncoder,
        store: QdrantStore | None = None,
        *,
        async_store: AsyncQdrantStore | None = None,
        chunker: TokenChunker | None = None,
        batch_size: int = DEFAULT_INGEST_BATCH,
        chunk_signature: str = "",
        on_write: Callable[[], None] | None = None,
        long_doc: Any = None,
        multivector_floats: int = MAX_MULTIVECTOR_FLOATS,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be an int >= 1, got {batch_size!r}")
        if isinstance(multivector_floats, bool) or not isinstance(multivector_floats, int) or multivector_floats < 1:
            raise ConfigError(f"multivector_floats must be an int >= 1, got {multivector_floats!r}")
        layout = (store or async_store).layout if (store or async_store) is not None else None  # type: ignore[union-attr]
        if long_doc is not None and layout is not None and not layout.stores_long_documents:
            raise ConfigError(
                f"long documents need a collection with a multivector and a document vector; "
                f"collection {layout.collection!r} has multivector {layout.multivector_name!r} and document vector "
                f"{layout.document_vector_name!r}. Fix: write long documents to a collection created with "
                "CollectionLayout(...).long_documents(), or pass long_doc=None"
            )
        self.encoder = encoder
        self.store = store
        self.async_store = async_store
        self.chunker = chunker
        self.batch_size = batch_size
        self.chunk_signature = chunk_signature
        self._on_write = on_write
        self.long_doc = long_doc
        self.multivector_floats = multivector_floats

    # ------------------------------------------------------------------ public
    def ingest(
        self, documents: Iterable[SourceDocument], *, show_progress: bool = False, source: str | None = None
    ) -> IngestStats:
        """Write documents (replacing older versions); with ``source``, mirror it.

        Args:
            documents: The documents; ids must be unique.
            show_progress: A progress bar over documents.
            source: The name of the source the documents are the whole of (a folder):
                stored documents of that source that are not among ``documents`` are
                deleted.
        """
        stats = IngestStats()
        self._run_sync(self._ingest_ops(list(documents), stats, show_progress, source), stats)
        return stats

    async def aingest(
        self, documents: Iterable[SourceDocument], *, show_progress: bool = False, source: str | None = None
    ) -> IngestStats:
        """Async twin of :meth:`ingest` (encoding runs in a worker thread)."""
        stats = IngestStats()
        await self._run_async(self._ingest_ops(list(documents), stats, show_progress, source), stats)
        return stats

    def write(self, records: Sequence[ChunkRecord]) -> list[str]:
        """Write records as given (no stale handling); returns their visible ids in order."""
        records, stats = list(records), IngestStats()
        self._run_sync(self._write_ops(records, stats), stats)
        return [r.visible_id for r in records]

    async def awrite(self, records: Sequence[ChunkRecord]) -> list[str]:
        """Async twin of :meth:`write`."""
        records, stats = list(records), IngestStats()
        await self._run_async(self._write_ops(records, stats), stats)
        return [r.visible_id for r in records]

    # ------------------------------------------------------------------ drivers
    def _run_sync(self, ops: _Gen, stats: IngestStats) -> None:
        store = self.store
        if store is None:
            raise ConfigError("this Ingestor has no sync store; use the async method or pass store=")
        start = time.perf_counter()
        result: Any = None
        # pipelined: an upsert runs in a worker thread while the next batch is encoded here;
        # the store still sees one call at a time, in order (the next call waits for it)
        pending: Future[float] | None = None
        # inside using_shard() (Edge) this thread holds the shard: a worker's upsert would wait
        # behind a close() pending on another thread, which waits for this thread -- run inline
        holds = getattr(store.backend, "holds_claim", None)
        inline = bool(holds()) if callable(holds) else False
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="gte-rag-upsert") as pool:
            while True:
                try:
                    done, op = _advance(ops, result)
                except BaseException:
                    if pending is not None:  # encoding failed while an upsert ran: keep its error
                        error, pending = pending.exception(), None
                        if error is not None:
                            raise error  # chained: the encoding error is its __context__
                    raise
                if pending is not None:
                    stats.store_seconds += pending.result()  # an upsert's error is raised here
                    pending = None
                if done:
                    break
                if op[0] == "upsert" and not inline:
                    pending, result = pool.submit(_timed_sync, store, op), None
                    continue
                t = time.perf_counter()
                result = _apply_sync(store, op)
                stats.store_seconds += time.perf_counter() - t
        stats.total_seconds = time.perf_counter() - start
        logger.info("Ingest: %s", stats.summary())

    async def _run_async(self, ops: _Gen, stats: IngestStats) -> None:
        store = self.async_store
        if store is None:
            raise ConfigError("this Ingestor has no async store; use the sync method or pass async_store=")
        start = time.perf_counter()
        result: Any = None
        pending: asyncio.Task[float] | None = None  # pipelined as in _run_sync
        try:
            while True:
                try:
                    done, op = await asyncio.to_thread(_advance, ops, result)
                except BaseException:
                    if pending is not None:  # encoding failed while an upsert ran: keep its error
                        task, pending = pending, None
                        await asyncio.wait([task])
                        error = None if task.cancelled() else task.exception()
                        if error is not None:
                            raise error  # chained: the encoding error is its __context__
                    raise
                if pending is not None:
                    stats.store_seconds += await pending
                    pending = None
                if done:
                    break
                if op[0] == "upsert":
                    pending, result = asyncio.ensure_future(_timed_async(store, op)), None
                    continue
                t = time.perf_counter()
                result = await _apply_async(store, op)
                stats.store_seconds += time.perf_counter() - t
        finally:
            if pending is not None:  # never leave a write running (or its error unretrieved) behind an error
                await asyncio.wait([pending])
                if not pending.cancelled():
                    pending.exception()
        stats.total_seconds = time.perf_counter() - start
        logger.info("Ingest: %s", stats.summary())

    # ------------------------------------------------------------------ logic (pure but for yields)
    def _content_hash(self, doc: SourceDocument) -> str:
        blob = json.dumps([doc.text, dict(doc.metadata), self.chunk_signature], sort_keys=True, ensure_ascii=False, default=str)
        return "sha256:" + hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def _chunks(self, docs: Sequence[SourceDocument]) -> list[list[Chunk]]:
        if self.chunker is not None:
            return self.chunker.split_many([d.text for d in docs])
        return [whole_text(d.text) for d in docs]

    def _cut(
        self, docs: Sequence[SourceDocument], stats: IngestStats, show_progress: bool = False
    ) -> list[tuple[list[Chunk], Any]]:
        """Per document: its chunks (chunker), or ``([], encoding)`` for a long document.

        With ``show_progress``, long documents get a progress bar over their windows (one
        group of documents can take minutes on a CPU).
        """
        t0 = time.perf_counter()
        if self.long_doc is None or not docs:
            out: list[tuple[list[Chunk], Any]] = [(c, None) for c in self._chunks(docs)]
            stats.chunk_seconds += time.perf_counter() - t0
            return out
        texts = [d.text for d in docs]
        tokens = self.long_doc.encoder.tokenize(texts)  # a long-document encoder's encoder tokenizes
        long = [i for i, tok in enumerate(tokens) if self.long_doc.exceeds_window(len(tok.ids))]
        long_set = set(long)
        short = [i for i in range(len(docs)) if i not in long_set]
        if self.chunker is not None:
            cut = self.chunker.split_tokenized([texts[i] for i in short], [tokens[i] for i in short])
        else:
            cut = [whole_text(texts[i], tokens[i]) for i in short]
        result: list[tuple[list[Chunk], Any]] = [([], None)] * len(docs)
        for i, chunks in zip(short, cut):
            result[i] = (chunks, None)
        stats.chunk_seconds += time.perf_counter() - t0
        if long:
            t1 = time.perf_counter()
            # the documents' tokenizations, made above, are not made again
            encodings = self.long_doc.encode([tokens[i] for i in long], show_progress=show_progress)
            stats.encode_seconds += time.perf_counter() - t1
            for i, enc in zip(long, encodings):
                result[i] = ([], enc)
        return result

    def _document_points(
        self, doc: SourceDocument, rows: Any, vector: Any, num_tokens: int,
        parts: Sequence[tuple[int, int]], extra: Mapping[str, Any],
    ) -> list[PointRecord]:
        """A document's points: its chunk vectors (``rows``) in parts, and its vector (``None``: their mean)."""
        rows = np.asarray(rows, dtype=np.float32)
        if vector is None:
            mean = rows.mean(axis=0)
            vector = mean / max(float(np.linalg.norm(mean)), 1e-12)
        meta = _json_values(doc.metadata)
        points = []
        for k, (lo, hi) in enumerate(parts):
            payload = {
                **meta, **extra, KIND_FIELD: DOCUMENT_KIND, "doc_id": doc.id, "ref_doc_id": doc.id,
                "document_id": doc.id, "part": k, "parts": len(parts), "chunk_start": lo, "chunk_end": hi,
                "num_tokens": int(num_tokens),
            }
            points.append(PointRecord(
                id=document_point_id(doc.id, k), dense=None, multivector=rows[lo:hi],
                document_vector=np.asarray(vector, dtype=np.float32), payload=payload,
            ))
        return points

    def _ingest_ops(
        self, docs: list[SourceDocument], stats: IngestStats, show_progress: bool, source: str | None
    ) -> _Gen:
        seen: set[str] = set()
        for d in docs:
            if d.id in seen:
                raise ConfigError(f"document id {d.id!r} appears twice in one call; ids must be unique")
            seen.add(d.id)
        bar = _bar(len(docs), show_progress)
        try:
            for group in iter_batch(docs, max(1, self.batch_size // 4)):
                stats.documents += len(group)
                hashes = {d.id: self._content_hash(d) for d in group}
                # what is stored now: the first chunk of each document (hash and chunk count),
                # then every chunk of the candidates for "unchanged" (all there, all that hash)
                firsts: list[StoredPoint] = yield _op("retrieve", [point_id(d.id, 0) for d in group])
                stored = {p.payload.get("doc_id"): p.payload for p in firsts}
                candidates = [
                    d for d in group
                    if stored.get(d.id, {}).get(CONTENT_HASH_FIELD) == hashes[d.id]
                    and isinstance(stored[d.id].get(CHUNK_COUNT_FIELD), int)
                ]
                unchanged: set[str] = set()
                if candidates:
                    expected = {
                        point_id(d.id, i): d.id for d in candidates for i in range(int(stored[d.id][CHUNK_COUNT_FIELD]))
                    }
                    expected.update(
                        (document_point_id(d.id, k), d.id) for d in candidates for k in range(_parts_of(stored[d.id]))
                    )
                    found: list[StoredPoint] = yield _op("retrieve", list(expected))
                    intact: dict[str, int] = {}
                    for p in found:
                        doc_id = expected.get(p.id)
                        if doc_id is not None and p.payload.get(CONTENT_HASH_FIELD) == hashes[doc_id]:
                            intact[doc_id] = intact.get(doc_id, 0) + 1
                    unchanged = {
                        d.id for d in candidates
                        if intact.get(d.id) == int(stored[d.id][CHUNK_COUNT_FIELD]) + _parts_of(stored[d.id])
                    }
                todo = [d for d in group if d.id not in unchanged]
                stats.unchanged += len(group) - len(todo)
                records: list[ChunkRecord] = []
                doc_points: list[PointRecord] = []
                # documents that fit one window, in a collection that stores long documents: their
                # document points are built from their chunk vectors once those are encoded, so
                # that MaxSim and two-stage search see every document
                short_docs: list[tuple[SourceDocument, list[str], list[tuple[int, int]], dict[str, Any], int]] = []
                keep: dict[str, list[str]] = {}
                for doc, (chunks, enc) in zip(todo, self._cut(todo, stats, show_progress)):
                    count = len(enc.chunks) if enc is not None else len(chunks)
                    if not count:
                        stats.skipped_empty += 1
                        if doc.id in stored:
                            stats.removed += 1
                        keep[doc.id] = []
                        continue
                    if doc.id in stored:
                        stats.updated += 1
                    else:
                        stats.added += 1
                    extra: dict[str, Any] = {CONTENT_HASH_FIELD: hashes[doc.id], CHUNK_COUNT_FIELD: count}
                    # a document keeps the source it was mirrored under when it is re-added on its own
                    owner = source if source is not None else stored.get(doc.id, {}).get(SOURCE_FIELD)
                    if owner is not None:
                        extra[SOURCE_FIELD] = owner
                    if enc is None:
                        short_parts: list[tuple[int, int]] = []
                        chunk_extra = extra
                        if self.long_doc is not None:
                            short_parts = multivector_parts(count, self.encoder.dimension, max_floats=self.multivector_floats)
                            chunk_extra = {**extra, DOC_PARTS_FIELD: len(short_parts)}
                        recs = [
                            ChunkRecord(
                                doc_id=doc.id, text=c.text, chunk_index=i, metadata=doc.metadata,
                                embed_input=getattr(c, "tokens", None), start=c.start, end=c.end,
                                extra_payload=chunk_extra,
                            )
                            for i, c in enumerate(chunks)
                        ]
                        keep[doc.id] = [r.point_id for r in recs]
                        if short_parts:
                            keep[doc.id] += [document_point_id(doc.id, k) for k in range(len(short_parts))]
                            tokens = sum(len(c.tokens) if getattr(c, "tokens", None) is not None else 0 for c in chunks)
                            short_docs.append((doc, [r.point_id for r in recs], short_parts, extra, tokens))
                    else:
                        parts = multivector_parts(count, int(enc.multivector.shape[1]), max_floats=self.multivector_floats)
                        chunk_extra = {**extra, DOC_PARTS_FIELD: len(parts)}
                        recs = [
                            ChunkRecord(
                                doc_id=doc.id, text=c.text, chunk_index=i, metadata=doc.metadata,
                                start=c.start, end=c.end, extra_payload=chunk_extra, dense=c.dense, sparse=c.sparse,
                            )
                            for i, c in enumerate(enc.chunks)
                        ]
                        mine = self._document_points(
                            doc, enc.multivector, enc.document_vector, enc.num_tokens, parts, extra
                        )
                        keep[doc.id] = [r.point_id for r in recs] + [p.id for p in mine]
                        doc_points.extend(mine)
                    records.extend(recs)
                if keep:
                    # the old version's points that the new one does not overwrite
                    yield _op("delete", _stale_filter(keep))
                vectors = yield from self._write_ops(
                    records, stats, collect={pid for _, ids, _, _, _ in short_docs for pid in ids}
                )
                for doc, ids, short_parts, extra, tokens in short_docs:
                    doc_points.extend(self._document_points(
                        doc, np.stack([vectors[pid] for pid in ids]), None, tokens, short_parts, extra
                    ))
                if doc_points:
                    # one document point per call: a part may hold a million floats
                    yield _op("upsert", doc_points, batch_size=1)
                if bar is not None:
                    bar.update(len(group))
            if source is not None:
                yield from self._remove_missing(source, seen, stats)
        finally:
            if bar is not None:
                bar.close()

    def _remove_missing(self, source: str, present: set[str], stats: IngestStats) -> _Gen:
        flt = models.Filter(must=[
            models.FieldCondition(key=SOURCE_FIELD, match=models.MatchValue(value=source)),
            models.FieldCondition(key="chunk_index", match=models.MatchValue(value=0)),
        ])
        gone: list[str] = []
        offset: str | None = None
        while True:
            page, offset = yield _op("scroll", filter=flt, limit=256, offset=offset)
            gone.extend(str(p.payload["doc_id"]) for p in page if p.payload.get("doc_id") not in present)
            if offset is None:
                break
        if gone:
            yield _op("delete_documents", gone)
            stats.removed += len(gone)

    def _write_ops(
        self, records: list[ChunkRecord], stats: IngestStats, collect: set[str] | None = None
    ) -> Generator[_Op, Any, dict[str, Any]]:
        """Encode and upsert the records; returns the dense vectors of the point ids in ``collect``."""
        if records and self._on_write is not None:
            self._on_write()
        vectors: dict[str, Any] = {}
        for step in iter_batch(records, self.batch_size):
            t = time.perf_counter()
            points = self._points(step)
            stats.encode_seconds += time.perf_counter() - t
            stats.chunks += len(step)
            if collect:
                vectors.update((p.id, p.dense) for p in points if p.id in collect)
            yield _op("upsert", points, batch_size=max(1, len(points)))
        return vectors

    def _points(self, records: Sequence[ChunkRecord]) -> list[PointRecord]:
        enc = self.encoder
        layout_sparse = (self.store or self.async_store).layout.has_sparse  # type: ignore[union-attr]
        inputs = [r.embed_input if r.embed_input is not None else r.text for r in records]
        empty = {i for i, x in enumerate(inputs) if _is_empty(x)}
        for i in sorted(empty):
            if records[i].dense is None:
                raise ConfigError(
                    f"node {records[i].visible_id!r} of document {records[i].doc_id!r} has no text and no embedding; "
                    "drop it, or embed it first (GteEmbedding(on_empty='encode') gives empty texts a vector)"
                )
        need = [
            i for i, r in enumerate(records)
            if i not in empty and (r.dense is None or (layout_sparse and r.sparse is None))
        ]
        dense: Any = None
        sparse: list[Any] = []
        if need:
            out = enc.encode([inputs[i] for i in need], role="document", return_sparse=layout_sparse)
            dense, sparse = out.dense, out.sparse
        row = {i: k for k, i in enumerate(need)}
        points = []
        metas: dict[int, dict[str, Any]] = {}  # the chunks of one document share its metadata object
        for i, r in enumerate(records):
            pid = r.point_id
            vector = r.dense if r.dense is not None else dense[row[i]]
            sparse_vec = None
            if layout_sparse:
                if r.sparse is not None:
                    sparse_vec = r.sparse
                else:
                    sparse_vec = SparseVector() if i in empty or not sparse else sparse[row[i]]
            meta = metas.get(id(r.metadata))
            if meta is None:
                meta = metas[id(r.metadata)] = _json_values(r.metadata)
            node = dict(r.node) if r.node is not None else node_content_dict(
                node_id=r.node_id if r.node_id is not None else pid, text=r.text, doc_id=r.doc_id, metadata=meta,
                start=r.start, end=r.end,
            )
            payload = build_payload(
                text=r.text, doc_id=r.doc_id, chunk_index=r.chunk_index,
                metadata={**meta, **r.extra_payload},
                node_content=json.dumps(node, ensure_ascii=False, default=_json_default), node_type=r.node_type,
                node_id=r.node_id if r.node_id is not None and r.node_id != pid else None,
                # the span of a chunk the knowledge base cut (LlamaIndex nodes keep theirs in the node)
                span=(r.start, r.end) if r.node is None and r.start is not None and r.end is not None else None,
            )
            points.append(PointRecord(id=pid, dense=np.asarray(vector, dtype=np.float32), sparse=sparse_vec, payload=payload))
        return points


def _parts_of(payload: Mapping[str, Any]) -> int:
    """Document points recorded on a stored chunk (0 for a document stored without them)."""
    parts = payload.get(DOC_PARTS_FIELD)
    return parts if isinstance(parts, int) and not isinstance(parts, bool) and parts > 0 else 0


def _json_values(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Metadata as JSON values (dates become ISO strings), the same on every engine.

    Qdrant Edge rejects Python objects such as ``datetime.date`` that qdrant-client turns
    into strings; converting here gives both engines, and the node JSON, the same values.
    """
    if all(isinstance(v, (str, int, float, bool, type(None))) for v in metadata.values()):
        return dict(metadata)
    converted: dict[str, Any] = json.loads(json.dumps(dict(metadata), default=_json_default, ensure_ascii=False))
    return converted


def _json_default(value: Any) -> Any:
    isoformat = getattr(value, "isoformat", None)
    if callable(isoformat):
        return isoformat()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


def _is_empty(item: Any) -> bool:
    if isinstance(item, str):
        return not item.strip()
    ids = getattr(item, "ids", None)
    return ids is not None and len(ids) == 0


def _advance(ops: _Gen, value: Any) -> tuple[bool, _Op]:
    """One step of a write generator; StopIteration cannot cross a thread's future."""
    try:
        return False, ops.send(value)
    except StopIteration:
        return True, ("", (), {})


def _op(method: str, *args: Any, **kwargs: Any) -> _Op:
    """A store call for a driver to make: the same method name on the sync and the async store."""
    return method, args, kwargs


def _timed_sync(store: QdrantStore, op: _Op) -> float:
    """Run a store call (in the upsert worker); returns its seconds."""
    t = time.perf_counter()
    _apply_sync(store, op)
    return time.perf_counter() - t


async def _timed_async(store: AsyncQdrantStore, op: _Op) -> float:
    """Async twin of :func:`_timed_sync`."""
    t = time.perf_counter()
    await _apply_async(store, op)
    return time.perf_counter() - t


def _apply_sync(store: QdrantStore, op: _Op) -> Any:
    method, args, kwargs = op
    return getattr(store, method)(*args, **kwargs)


async def _apply_async(store: AsyncQdrantStore, op: _Op) -> Any:
    method, args, kwargs = op
    return await getattr(store, method)(*args, **kwargs)


def _stale_filter(keep: Mapping[str, Sequence[str]]) -> models.Filter:
    """Points of these documents other than the ones the new versions write.

    One condition for the whole group (a kept id belongs to one document only), so an
    engine without payload indexes scans its points once, not once per document.
    """
    kept: list[Any] = [i for ids in keep.values() for i in ids]
    doc: Any = models.FieldCondition(key="doc_id", match=models.MatchAny(any=list(keep)))
    not_kept: list[Any] | None = [models.HasIdCondition(has_id=kept)] if kept else None
    return models.Filter(must=[doc], must_not=not_kept)


def _bar(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="Ingesting", unit="doc")
