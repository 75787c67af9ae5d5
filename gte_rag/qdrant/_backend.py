"""The small interface both engines implement, and helpers they share.

A backend is bound to one collection (one :class:`CollectionLayout`). Every method is one
engine call (plus result parsing); planning lives in the pure builders, and the
collection-checking policy lives in the stores.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any, Protocol, runtime_checkable

from qdrant_client import models

from gte_rag.errors import ConfigError
from gte_rag.qdrant._layout import CollectionLayout, PayloadIndexType, StorageConfig
from gte_rag.qdrant._points import PointRecord, SearchHit, StoredPoint
from gte_rag.qdrant._query import QueryPlan

__all__ = ["AsyncStoreBackend", "StoreBackend", "describe_found_layout", "validate_points"]

logger = logging.getLogger(__name__)

LAYOUT_METADATA_KEY = "gte_rag_layout"
"""Key of the serialized layout in collection metadata (client) / the sidecar file (Edge)."""


@runtime_checkable
class StoreBackend(Protocol):
    """One collection on one Qdrant engine, synchronous."""

    engine: str
    layout: CollectionLayout

    def read_layout(self) -> CollectionLayout | None:
        """The existing collection's layout, or ``None`` when it does not exist."""
        ...

    def create_collection(self) -> None:
        """Create the collection for ``layout`` (it must not exist)."""
        ...

    def drop_collection(self) -> None:
        """Delete the collection and all its points."""
        ...

    def indexed_fields(self) -> dict[str, str]:
        """``{field: index type}`` of existing payload indexes."""
        ...

    def create_payload_index(self, field: str, kind: PayloadIndexType) -> None:
        """Index one payload field."""
        ...

    def upsert(self, points: Sequence[PointRecord]) -> None:
        """Insert or overwrite points (one engine call)."""
        ...

    def query(self, plan: QueryPlan) -> list[SearchHit]:
        """Run one Query API request."""
        ...

    def query_batch(self, plans: Sequence[QueryPlan]) -> list[list[SearchHit]]:
        """Run several Query API requests as one batch (one engine call), results in order."""
        ...

    def query_groups(
        self, plan: QueryPlan, *, group_by: str, group_size: int, limit: int
    ) -> list[tuple[str, list[SearchHit]]]:
        """At least the ``limit`` best groups of the plan's hits by the payload field
        ``group_by`` (a group ranks by its best hit), each with up to ``group_size`` hits."""
        ...

    def delete(self, filter: models.Filter) -> None:
        """Delete the points matching ``filter``."""
        ...

    def set_payload(self, payload: Mapping[str, Any], filter: models.Filter) -> None:
        """Set (merge) payload keys on the points matching ``filter``; vectors stay as they are."""
        ...

    def count(self, filter: models.Filter | None) -> int:
        """Exact number of points matching ``filter``."""
        ...

    def retrieve(self, ids: Sequence[str]) -> list[StoredPoint]:
        """Points by id, in no particular order; unknown ids are skipped."""
        ...

    def scroll(
        self, filter: models.Filter | None, limit: int, offset: str | None
    ) -> tuple[list[StoredPoint], str | None]:
        """One page of points and the offset of the next page (``None`` at the end)."""
        ...

    def scroll_points(
        self, limit: int, offset: str | None
    ) -> tuple[list[PointRecord], str | None]:
        """One page of whole points (vectors and payload) in id order, and the next offset."""
        ...

    def unindexed_points(self) -> int:
        """About how many points a search scans outside the HNSW index (0 on servers)."""
        ...

    def optimize(self) -> bool:
        """Build indexes / merge segments now; ``False`` when nothing was done."""
        ...

    def close(self) -> None:
        """Release the engine (idempotent)."""
        ...


@runtime_checkable
class AsyncStoreBackend(Protocol):
    """The asynchronous twin of :class:`StoreBackend` (same methods, awaitable)."""

    engine: str
    layout: CollectionLayout

    async def read_layout(self) -> CollectionLayout | None: ...
    async def create_collection(self) -> None: ...
    async def drop_collection(self) -> None: ...
    async def indexed_fields(self) -> dict[str, str]: ...
    async def create_payload_index(self, field: str, kind: PayloadIndexType) -> None: ...
    async def upsert(self, points: Sequence[PointRecord]) -> None: ...
    async def query(self, plan: QueryPlan) -> list[SearchHit]: ...
    async def query_batch(self, plans: Sequence[QueryPlan]) -> list[list[SearchHit]]: ...
    async def query_groups(
        self, plan: QueryPlan, *, group_by: str, group_size: int, limit: int
    ) -> list[tuple[str, list[SearchHit]]]: ...
    async def delete(self, filter: models.Filter) -> None: ...
    async def set_payload(self, payload: Mapping[str, Any], filter: models.Filter) -> None: ...
    async def count(self, filter: models.Filter | None) -> int: ...
    async def retrieve(self, ids: Sequence[str]) -> list[StoredPoint]: ...
    async def scroll(
        self, filter: models.Filter | None, limit: int, offset: str | None
    ) -> tuple[list[StoredPoint], str | None]: ...
    async def scroll_points(
        self, limit: int, offset: str | None
    ) -> tuple[list[PointRecord], str | None]: ...
    async def unindexed_points(self) -> int: ...
    async def optimize(self) -> bool: ...
    async def close(self) -> None: ...


def _unchecked_layout(**values: Any) -> CollectionLayout:
    """Build a layout describing what was FOUND, without validation (it may be odd)."""
    layout = object.__new__(CollectionLayout)
    for f in fields(CollectionLayout):
        object.__setattr__(layout, f.name, values.get(f.name))
    return layout


def describe_found_layout(
    expected: CollectionLayout,
    *,
    dense_vectors: Mapping[str, tuple[int, str, bool]],
    sparse_vectors: Mapping[str, bool],
    recorded: Mapping[str, Any] | None,
) -> CollectionLayout:
    """Describe an existing collection as a layout, using ``expected`` to pair names.

    Args:
        expected: The layout asked for; its names pick which vectors to compare.
        dense_vectors: ``{name: (size, distance, is_multivector)}`` read from the engine.
        sparse_vectors: ``{name: has_idf_modifier}`` read from the engine.
        recorded: The layout dict stored with the collection (model name, payload
            indexes), or ``None`` when the collection was not created by gte_rag.

    Returns:
        A layout whose geometry comes from the engine and whose ``model_name`` and
        ``payload_indexes`` come from ``recorded``.
    """
    singles = {n: v for n, v in dense_vectors.items() if not v[2]}
    multis = {n: v for n, v in dense_vectors.items() if v[2]}

    def pick(wanted: str | None, pool: Mapping[str, Any]) -> str | None:
        if wanted is not None and wanted in pool:
            return wanted
        return next(iter(sorted(pool)), None)

    dense_name = pick(expected.dense_name, singles)
    mv_name = pick(expected.multivector_name, multis)
    others = {n: v for n, v in singles.items() if n != dense_name}
    doc_name = pick(expected.document_vector_name, others)
    sparse_name = pick(expected.sparse_name, sparse_vectors)
    rec = dict(recorded or {})
    indexes = rec.get("payload_indexes") or {}
    storage = rec.get("storage")
    return _unchecked_layout(
        collection=expected.collection,
        dense_name=dense_name,
        dense_size=singles[dense_name][0] if dense_name else None,
        distance=singles[dense_name][1] if dense_name else None,
        sparse_name=sparse_name,
        sparse_idf=bool(sparse_vectors[sparse_name]) if sparse_name else False,
        multivector_name=mv_name,
        multivector_size=multis[mv_name][0] if mv_name else None,
        document_vector_name=doc_name,
        model_name=rec.get("model_name"),
        payload_indexes=tuple(sorted(dict(indexes).items())),
        encoder=tuple(sorted(dict(rec.get("encoder") or {}).items())),
        storage=StorageConfig.from_dict(storage) if isinstance(storage, Mapping) else None,
    )


def validate_points(points: Sequence[PointRecord], layout: CollectionLayout) -> None:
    """Check vectors against the layout before anything is sent.

    Raises:
        ConfigError: wrong dense/multivector size, or a vector the layout lacks.
    """
    for p in points:
        if not isinstance(p, PointRecord):
            raise ConfigError(f"upsert takes PointRecord objects, got {type(p).__name__}")
        if p.dense is not None and len(p.dense) != layout.dense_size:
            raise ConfigError(
                f"point {p.id}: dense vector has {len(p.dense)} dims, collection "
                f"{layout.collection!r} expects {layout.dense_size}"
            )
        if p.document_vector is not None:
            if not layout.has_document_vector:
                raise ConfigError(
                    f"point {p.id} has a document vector but collection {layout.collection!r} has none "
                    "(set CollectionLayout.document_vector_name, e.g. CollectionLayout(...).long_documents())"
                )
            if len(p.document_vector) != layout.dense_size:
                raise ConfigError(
                    f"point {p.id}: document vector has {len(p.document_vector)} dims, collection "
                    f"{layout.collection!r} expects {layout.dense_size}"
                )
        if p.sparse is not None and not layout.has_sparse:
            raise ConfigError(
                f"point {p.id} has a sparse vector but collection {layout.collection!r} has no "
                "sparse vector (set CollectionLayout.sparse_name)"
            )
        if p.multivector is not None:
            if not layout.has_multivector:
                raise ConfigError(
                    f"point {p.id} has a multivector but collection {layout.collection!r} has "
                    "none (set CollectionLayout.multivector_name)"
                )
            width = len(p.multivector[0])
            if width != layout.multivector_size:
                raise ConfigError(
                    f"point {p.id}: multivector rows have {width} dims, collection "
                    f"{layout.collection!r} expects {layout.multivector_size}"
                )
