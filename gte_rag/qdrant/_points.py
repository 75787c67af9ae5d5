"""Pure point builders: deterministic ids, point records, LlamaIndex-compatible payloads.

Two kinds of ids, both deterministic:

- chunks cut by the knowledge base: ``uuid5(GTE_RAG_NAMESPACE, f"{doc_id}#{chunk_index}")``
  (:func:`point_id`), so re-ingesting a document overwrites the same points;
- nodes that arrive with their own id (LlamaIndex): the node id itself when it is a UUID,
  otherwise ``uuid5(GTE_RAG_NAMESPACE, "node:" + node_id)`` (:func:`node_point_id`); the
  original id is kept in the payload (``_node_id``) so reads return the caller's id.

Both Qdrant engines accept UUID strings; Edge and local mode reject other strings.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gte_rag._types import SparseVector
from gte_rag.errors import ConfigError

__all__ = [
    "DOCUMENT_KIND",
    "DocumentHit",
    "GTE_RAG_NAMESPACE",
    "KIND_FIELD",
    "MAX_MULTIVECTOR_FLOATS",
    "PointRecord",
    "RESERVED_PAYLOAD_KEYS",
    "SearchHit",
    "StoredPoint",
    "build_payload",
    "document_point_id",
    "is_document_point",
    "multivector_parts",
    "node_point_id",
    "point_id",
]

logger = logging.getLogger(__name__)

GTE_RAG_NAMESPACE = uuid.UUID("5d0c6f4e-3b7a-5c59-9a57-6774652d7261")
"""Fixed namespace of the project's uuid5 point ids. Never change it: ids would move."""

RESERVED_PAYLOAD_KEYS = frozenset(
    {"text", "chunk_index", "doc_id", "ref_doc_id", "document_id", "_node_content", "_node_type", "_node_id"}
)
"""Top-level payload keys written by :func:`build_payload`; metadata must not reuse them.

Chunks cut by the knowledge base also hold their character span as ``start`` / ``end``
(``build_payload(span=...)``); metadata of those documents must not use these two keys."""


def point_id(doc_id: str, chunk_index: int) -> str:
    """Deterministic point id of chunk ``chunk_index`` of document ``doc_id``.

    Args:
        doc_id: The source document id (LlamaIndex ``ref_doc_id``).
        chunk_index: Position of the chunk in the document, ``>= 0``; use ``-1`` for a
            document-level point (e.g. the one holding the multivector).

    Returns:
        A canonical UUID string.

    Example:
        >>> point_id("doc-1", 0) == point_id("doc-1", 0)
        True
    """
    if not isinstance(doc_id, str) or not doc_id:
        raise ConfigError(f"doc_id must be a non-empty string, got {doc_id!r}")
    if isinstance(chunk_index, bool) or not isinstance(chunk_index, (int, np.integer)):
        raise ConfigError(f"chunk_index must be an int, got {chunk_index!r}")
    if chunk_index < -1:
        raise ConfigError(f"chunk_index must be >= -1, got {chunk_index}")
    return str(uuid.uuid5(GTE_RAG_NAMESPACE, f"{doc_id}#{int(chunk_index)}"))


MAX_MULTIVECTOR_FLOATS = 1_048_576
"""Qdrant's cap on one point's multivector: 1,048,576 floats (1,365 rows of 768 dims,
2,730 of 384). A document with more chunk vectors is stored as several document points."""

KIND_FIELD = "_kind"
"""Payload field marking points that are not chunks (``"document"`` for document points)."""
DOCUMENT_KIND = "document"


def document_point_id(doc_id: str, part: int = 0) -> str:
    """Deterministic id of part ``part`` of document ``doc_id``'s document point(s).

    Distinct from every chunk id (:func:`point_id`) and node id of the same document.

    Example:
        >>> document_point_id("doc-1", 1) == document_point_id("doc-1", 1) != document_point_id("doc-1", 0)
        True
    """
    if not isinstance(doc_id, str) or not doc_id:
        raise ConfigError(f"doc_id must be a non-empty string, got {doc_id!r}")
    if isinstance(part, bool) or not isinstance(part, (int, np.integer)) or part < 0:
        raise ConfigError(f"part must be an int >= 0, got {part!r}")
    return str(uuid.uuid5(GTE_RAG_NAMESPACE, f"{doc_id}#document#{int(part)}"))


def multivector_parts(
    rows: int, dim: int, *, max_floats: int = MAX_MULTIVECTOR_FLOATS
) -> list[tuple[int, int]]:
    """Split ``rows`` multivector rows of ``dim`` floats into parts under Qdrant's cap.

    Returns ``[(first_row, end_row), ...]``: contiguous, in order, each part holding at
    most ``max_floats // dim`` rows (all but the last one exactly that many). No rows
    give no parts.

    Raises:
        ConfigError: ``dim`` or ``max_floats`` is not positive, or one row does not fit.

    Example:
        >>> multivector_parts(3000, 768)
        [(0, 1365), (1365, 2730), (2730, 3000)]
    """
    for name, value in (("rows", rows), ("dim", dim), ("max_floats", max_floats)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ConfigError(f"{name} must be an int, got {value!r}")
    if dim <= 0 or max_floats <= 0 or rows < 0:
        raise ConfigError(f"need rows >= 0, dim > 0 and max_floats > 0, got {rows}, {dim}, {max_floats}")
    per_part = int(max_floats) // int(dim)
    if per_part < 1:
        raise ConfigError(
            f"a multivector row of {dim} floats does not fit in max_floats={max_floats}; "
            f"use max_floats >= {dim} (Qdrant's cap is {MAX_MULTIVECTOR_FLOATS})"
        )
    return [(lo, min(lo + per_part, int(rows))) for lo in range(0, int(rows), per_part)]


def is_document_point(payload: Mapping[str, Any]) -> bool:
    """Whether a payload is a document point's (not a chunk)."""
    return payload.get(KIND_FIELD) == DOCUMENT_KIND


def node_point_id(node_id: str) -> str:
    """Point id of a node that has its own id (LlamaIndex ``node_id``).

    A UUID is used as is (canonical form); any other string maps to a uuid5 in the
    project's namespace, the same on every run and machine.

    Example:
        >>> node_point_id("2c4b5d0e-0c1f-4b8e-9f3a-1d2e3f4a5b6c")
        '2c4b5d0e-0c1f-4b8e-9f3a-1d2e3f4a5b6c'
        >>> node_point_id("doc-1_chunk-3") == node_point_id("doc-1_chunk-3")
        True
    """
    if not isinstance(node_id, str) or not node_id:
        raise ConfigError(f"node id must be a non-empty string, got {node_id!r}")
    try:
        return str(uuid.UUID(node_id))
    except ValueError:
        return str(uuid.uuid5(GTE_RAG_NAMESPACE, "node:" + node_id))


def _as_float_list(vector: Any, what: str) -> list[float]:
    arr = np.asarray(vector, dtype=np.float32)
    if arr.ndim != 1 or arr.size == 0:
        raise ConfigError(f"{what} must be a non-empty 1-d vector, got shape {arr.shape}")
    return [float(x) for x in arr]


@dataclass(frozen=True)
class PointRecord:
    """One point to upsert.

    Args:
        id: A UUID string, normally from :func:`point_id`.
        dense: Dense vector, shape ``(dense_size,)``; stored as float32. ``None`` for a
            point without one (a long document's document point).
        sparse: Sparse vector, or ``None`` when the point has none.
        multivector: Rows of the multivector, shape ``(m, multivector_size)``, or ``None``.
        payload: JSON-compatible payload, normally from :func:`build_payload`.
        document_vector: The document-level dense vector (layout's
            ``document_vector_name``), shape ``(dense_size,)``, or ``None``.

    Raises:
        ConfigError: a vector has the wrong shape, or the point has no vector at all.
    """

    id: str
    dense: Sequence[float] | np.ndarray | None
    sparse: SparseVector | None = None
    multivector: Sequence[Sequence[float]] | np.ndarray | None = None
    payload: Mapping[str, Any] = field(default_factory=dict)
    document_vector: Sequence[float] | np.ndarray | None = None

    def __post_init__(self) -> None:
        try:
            canonical = str(uuid.UUID(str(self.id)))
        except ValueError as exc:
            raise ConfigError(
                f"point id {self.id!r} is not a UUID; build ids with point_id(doc_id, chunk_index)"
            ) from exc
        object.__setattr__(self, "id", canonical)
        if self.dense is not None:
            object.__setattr__(self, "dense", _as_float_list(self.dense, "dense"))
        if self.document_vector is not None:
            object.__setattr__(self, "document_vector", _as_float_list(self.document_vector, "document_vector"))
        if self.dense is None and self.multivector is None and self.document_vector is None:
            raise ConfigError(f"point {canonical} has no dense vector, multivector or document vector")
        if self.sparse is not None and not isinstance(self.sparse, SparseVector):
            raise ConfigError(
                f"sparse must be a gte_rag SparseVector or None, got {type(self.sparse).__name__}"
            )
        if self.multivector is not None:
            mv = np.asarray(self.multivector, dtype=np.float32)
            if mv.ndim != 2 or mv.shape[0] == 0:
                raise ConfigError(f"multivector must have shape (m, dim), got {mv.shape}")
            rows: list[list[float]] = mv.tolist()  # exact float32 values, one C loop
            object.__setattr__(self, "multivector", rows)
        object.__setattr__(self, "payload", dict(self.payload))


@dataclass(slots=True)
class SearchHit:
    """One query result: point id, fused score (higher is better) and payload.

    A slotted, non-frozen dataclass: a query builds one per hit, and a frozen dataclass's
    ``__init__`` costs several times as much (it goes through ``object.__setattr__``).
    """

    id: str
    score: float
    payload: dict[str, Any]


@dataclass
class DocumentHit:
    """One document of a document-level search: its id, score and best chunks.

    Attributes:
        doc_id: The document id.
        score: The document's score: its best chunk's fused score (grouped chunk search)
            or its MaxSim score (multivector search; the best over its parts).
        chunks: Its chunks, best first (or in document order after neighbour expansion);
            each payload holds ``text``, ``chunk_index`` and, for chunks cut by the
            knowledge base, the character span ``start`` / ``end``. Empty when only
            documents were asked for.
    """

    doc_id: str
    score: float
    chunks: list[SearchHit] = field(default_factory=list)


@dataclass(frozen=True)
class StoredPoint:
    """A point read back by ``retrieve``/``scroll``: id and payload."""

    id: str
    payload: dict[str, Any]


def build_payload(
    *,
    text: str,
    doc_id: str,
    chunk_index: int | None,
    metadata: Mapping[str, Any] | None = None,
    node_content: str | None = None,
    node_type: str = "TextNode",
    node_id: str | None = None,
    span: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """Build a payload that LlamaIndex can read back and Qdrant can filter on.

    The layout follows LlamaIndex's ``node_to_metadata_dict``: metadata keys at the top
    level, ``_node_content`` (the node as JSON, given by the caller), ``_node_type``, and
    the source id under ``doc_id``, ``ref_doc_id`` and ``document_id``. In addition the
    chunk text is kept in the top-level ``text`` field (so text filters and text indexes
    work), the chunk position in ``chunk_index`` and the caller's node id in ``_node_id``.

    Args:
        text: The chunk text.
        doc_id: The source document id.
        chunk_index: Position of the chunk in its document; ``None`` for nodes whose
            position the caller does not give (LlamaIndex nodes).
        metadata: Flat, JSON-compatible metadata; must not use a reserved key.
        node_content: The LlamaIndex node serialized to JSON (text included, so stock
            LlamaIndex readers rebuild it whole), or ``None`` to omit it (and ``_node_type``).
        node_type: LlamaIndex class name of the node, stored as ``_node_type``.
        node_id: The caller's node id, or ``None`` when the point id is the node id.
        span: ``(start, end)`` character offsets of the chunk in its document, stored as
            ``start`` / ``end`` (chunks cut by the knowledge base); ``None`` for none.

    Returns:
        A new dict.

    Raises:
        ConfigError: a metadata key collides with a reserved key with another value.
    """
    payload: dict[str, Any] = {}
    for key, value in (metadata or {}).items():
        payload[str(key)] = value
    reserved: dict[str, Any] = {
        "text": text,
        "doc_id": doc_id,
        "ref_doc_id": doc_id,
        "document_id": doc_id,
    }
    if chunk_index is not None:
        reserved["chunk_index"] = int(chunk_index)
    if span is not None:
        reserved["start"], reserved["end"] = int(span[0]), int(span[1])
    if node_id is not None:
        reserved["_node_id"] = node_id
    if node_content is not None:
        reserved["_node_content"] = node_content
        reserved["_node_type"] = node_type
    for key, value in reserved.items():
        if key in payload and payload[key] != value:
            raise ConfigError(
                f"metadata key {key!r} is reserved by the payload layout "
                f"(reserved keys: {sorted(RESERVED_PAYLOAD_KEYS)}); rename it"
            )
        payload[key] = value
    return payload
