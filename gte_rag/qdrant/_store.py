"""Public stores: :class:`QdrantStore` (sync) and :class:`AsyncQdrantStore` (async).

Each method builds a request with the pure builders, makes ONE backend call (``upsert``
makes one per batch) and returns parsed results. :func:`open_store` picks the engine from
the location: a directory (or ``None``) is Qdrant Edge, an ``http(s)://`` URL is a
server, ``":memory:"`` is qdrant-client local mode.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, Literal, TypeVar

from qdrant_client import AsyncQdrantClient, QdrantClient, models

from gte_rag.errors import ConfigError
from gte_rag.qdrant._backend import AsyncStoreBackend, StoreBackend, validate_points
from gte_rag.qdrant._client import AsyncClientBackend, ClientBackend
from gte_rag.qdrant._edge import AsyncEdgeBackend, EdgeBackend
from gte_rag.qdrant._errors import map_store_errors
from gte_rag.qdrant._layout import DEFAULT_AUTO_INDEX_POINTS, CollectionLayout, check_layout
from gte_rag.qdrant._points import DocumentHit, PointRecord, SearchHit, StoredPoint
from gte_rag.qdrant._query import (
    TIE_MARGIN,
    HybridConfig,
    QueryPlan,
    build_multivector_plan,
    build_query_plan,
    rank_groups,
    rank_hits,
)

__all__ = ["AsyncQdrantStore", "QdrantStore", "open_async_store", "open_store"]

logger = logging.getLogger(__name__)

Engine = Literal["auto", "edge", "client"]
DEFAULT_BATCH_SIZE = 256
DOCUMENT_ID_FIELDS = ("doc_id", "ref_doc_id")
_DEFAULT_HYBRID = HybridConfig()  # frozen: one instance serves every query that gives none
GROUP_TIE_MARGIN = 2
"""Extra hits asked per group so that ties at the group's cut are broken by id, not by engine."""
DOCUMENT_FETCH_ROUNDS = 6
QUERY_BATCH_MAX = 64
"""Most queries in one batch request. More are sent as several requests of this size, one
after the other: one request for thousands of queries of a large model (3,584-d gte-Qwen2 is
about 70 KB of JSON per query) would pass a server's request size limit (32 MB by default)
and hold the engine for one long call; at 64 the per-request overhead is already amortised."""
"""MaxSim search: how many times the fetch may grow (x4) while document parts fill the results."""


def _positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{name} must be a positive int, got {value!r}")


def _groups_plan(
    layout: CollectionLayout, dense: Any, sparse: Any, *, top_k: int, group_size: int, group_by: str,
    hybrid: HybridConfig | None, filter: models.Filter | None,
) -> QueryPlan:
    _positive("top_k", top_k)
    _positive("group_size", group_size)
    if not isinstance(group_by, str) or not group_by:
        raise ConfigError(f"group_by must be a payload field name, got {group_by!r}")
    # each branch fetches enough candidates for every group to fill up
    return build_query_plan(
        layout, dense=dense, sparse=sparse, top_k=top_k * group_size,
        hybrid=hybrid or _DEFAULT_HYBRID, filter=filter,
    )


def _many_plans(
    layout: CollectionLayout, dense: Sequence[Any] | None, sparse: Sequence[Any] | None, *, top_k: int,
    hybrid: HybridConfig | None, filter: models.Filter | None,
) -> list[QueryPlan]:
    """One plan per query of :meth:`QdrantStore.query_many`."""
    if dense is None and sparse is None:
        raise ConfigError("query_many needs dense vectors, sparse vectors or both (one per query)")
    if dense is not None and sparse is not None and len(dense) != len(sparse):
        raise ConfigError(f"got {len(dense)} dense vectors but {len(sparse)} sparse vectors; give one of each per query")
    n = len(dense) if dense is not None else len(sparse)  # type: ignore[arg-type]
    config = hybrid or _DEFAULT_HYBRID
    return [
        build_query_plan(
            layout, dense=None if dense is None else dense[i], sparse=None if sparse is None else sparse[i],
            top_k=top_k, hybrid=config, filter=filter,
        )
        for i in range(n)
    ]


def _document_hits(groups: list[tuple[str, list[SearchHit]]]) -> list[DocumentHit]:
    return [DocumentHit(doc_id=key, score=hits[0].score, chunks=hits) for key, hits in groups]


def _dedupe_documents(hits: Sequence[SearchHit]) -> dict[str, float]:
    """Best score per document over its document points (parts)."""
    best: dict[str, float] = {}
    for h in hits:
        doc = h.payload.get("doc_id")
        if doc is None:
            continue
        key = str(doc)
        if key not in best or h.score > best[key]:
            best[key] = h.score
    return best


def _rank_documents(best: dict[str, float], top_k: int) -> list[DocumentHit]:
    ranked = sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))[:top_k]
    return [DocumentHit(doc_id=d, score=s) for d, s in ranked]


def _per_document_plans(
    layout: CollectionLayout, dense: Any, sparse: Any, doc_ids: Sequence[str], *, per_document: int,
    hybrid: HybridConfig | None, filter: models.Filter | None,
) -> list[QueryPlan]:
    if isinstance(doc_ids, str):
        raise ConfigError("doc_ids must be a sequence of ids, not a single string")
    _positive("per_document", per_document)
    plans = []
    for doc in doc_ids:
        must: list[Any] = [models.FieldCondition(key="doc_id", match=models.MatchValue(value=str(doc)))]
        if filter is not None:
            must.append(filter)
        plans.append(build_query_plan(
            layout, dense=dense, sparse=sparse, top_k=per_document, hybrid=hybrid or _DEFAULT_HYBRID,
            filter=models.Filter(must=must),
        ))
    return plans


def documents_filter(doc_ids: Sequence[str]) -> models.Filter:
    """Points whose ``doc_id`` or ``ref_doc_id`` is one of ``doc_ids``."""
    if isinstance(doc_ids, str):
        raise ConfigError("doc_ids must be a sequence of ids, not a single string")
    ids = [str(d) for d in doc_ids]
    return models.Filter(
        should=[
            models.FieldCondition(key=key, match=models.MatchAny(any=ids)) for key in DOCUMENT_ID_FIELDS
        ]
    )


def _batches(points: Sequence[PointRecord], batch_size: int) -> Iterator[Sequence[PointRecord]]:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise ConfigError(f"batch_size must be a positive int, got {batch_size!r}")
    for start in range(0, len(points), batch_size):
        yield points[start : start + batch_size]


def _progress(total: int, show: bool) -> Any:
    if not show:
        return None
    from tqdm.auto import tqdm  # lazy: only when a bar is asked for

    return tqdm(total=total, unit="point", desc="upsert")


def _order_like(ids: Sequence[str], found: list[StoredPoint]) -> list[StoredPoint]:
    by_id = {p.id: p for p in found}
    return [by_id[i] for i in ids if i in by_id]


def _canonical_ids(ids: Sequence[str]) -> list[str]:
    import uuid

    if isinstance(ids, str):
        raise ConfigError("ids must be a sequence of point ids, not a single string")
    try:
        return [str(uuid.UUID(str(i))) for i in ids]
    except ValueError as exc:
        raise ConfigError(f"point ids must be UUID strings: {exc}") from exc


def _check_filter(filter: Any) -> None:
    if filter is not None and not isinstance(filter, models.Filter):
        raise ConfigError(f"filter must be a qdrant_client.models.Filter, got {type(filter).__name__}")


_B = TypeVar("_B", StoreBackend, AsyncStoreBackend)


def _in_batches(run: Callable[[Sequence[QueryPlan]], list[list[SearchHit]]],
                plans: Sequence[QueryPlan]) -> list[list[SearchHit]]:
    """``run`` over ``plans`` in requests of at most :data:`QUERY_BATCH_MAX`, results in order."""
    out: list[list[SearchHit]] = []
    for at in range(0, len(plans), QUERY_BATCH_MAX):
        out += run(plans[at : at + QUERY_BATCH_MAX])
    return out


async def _ain_batches(run: Callable[[Sequence[QueryPlan]], Awaitable[list[list[SearchHit]]]],
                       plans: Sequence[QueryPlan]) -> list[list[SearchHit]]:
    """:func:`_in_batches` for an async backend."""
    out: list[list[SearchHit]] = []
    for at in range(0, len(plans), QUERY_BATCH_MAX):
        out += await run(plans[at : at + QUERY_BATCH_MAX])
    return out


class _StoreFront(Generic[_B]):
    """What the sync and async stores share: the backend they wrap and its layout."""

    def __init__(self, *, backend: _B) -> None:
        self._backend: _B = backend

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._backend!r})"

    @property
    def layout(self) -> CollectionLayout:
        """The collection layout."""
        return self._backend.layout

    @property
    def backend(self) -> _B:
        """The engine backend (for engine-specific calls)."""
        return self._backend


class QdrantStore(_StoreFront[StoreBackend]):
    """GTE vectors in one Qdrant collection (Edge or qdrant-client), synchronous.

    Build it with :func:`open_store`, or from a backend.

    Args:
        backend: An :class:`EdgeBackend` or :class:`ClientBackend` bound to the layout.

    Example:
        >>> from gte_rag.qdrant import CollectionLayout, open_store
        >>> with open_store(None, CollectionLayout("docs", dense_size=4)) as store:
        ...     _ = store.ensure_collection()
        ...     store.count()
        0
    """

    def ensure_collection(self, *, recreate: bool = False) -> bool:
        """Create the collection, or check an existing one against the layout.

        Missing payload indexes are created either way.

        Args:
            recreate: Delete an existing collection (and its points) first.

        Returns:
            Whether the collection was created.

        Raises:
            CollectionMismatchError: it exists with another model or geometry.
        """
        found = self._backend.read_layout()
        if found is not None and recreate:
            self._backend.drop_collection()
            found = None
        if found is None:
            self._backend.create_collection()
            existing: dict[str, str] = {}
        else:
            check_layout(self.layout, found)
            existing = self._backend.indexed_fields()
        for field, kind in self.layout.payload_indexes:
            if field not in existing:
                self._backend.create_payload_index(field, kind)
        return found is None

    def upsert(
        self,
        points: Sequence[PointRecord],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        show_progress: bool = False,
    ) -> int:
        """Insert or overwrite points in batches; idempotent for deterministic ids.

        Returns:
            The number of points sent.
        """
        points = list(points)
        validate_points(points, self.layout)
        bar = _progress(len(points), show_progress)
        try:
            for batch in _batches(points, batch_size):
                self._backend.upsert(batch)
                logger.debug("Upserted %d points into %r", len(batch), self.layout.collection)
                if bar is not None:
                    bar.update(len(batch))
        finally:
            if bar is not None:
                bar.close()
        return len(points)

    def query(
        self,
        dense: Sequence[float] | Any | None = None,
        sparse: Any | None = None,
        *,
        top_k: int = 10,
        hybrid: HybridConfig | None = None,
        filter: models.Filter | None = None,
    ) -> list[SearchHit]:
        """Dense, sparse or hybrid search in one request, best first.

        Args:
            dense: Query dense vector, shape ``(dense_size,)``.
            sparse: Query :class:`~gte_rag._types.SparseVector`.
            top_k: Number of results.
            hybrid: Mode/fusion/weights; ``None`` means ``HybridConfig()`` (hybrid, DBSF fusion).
            filter: Applied inside every prefetch and to the fused result.
        """
        plan = build_query_plan(
            self.layout, dense=dense, sparse=sparse, top_k=top_k,
            hybrid=hybrid or _DEFAULT_HYBRID, filter=filter,
        )
        return rank_hits(self._backend.query(plan), plan.top_k)

    def query_many(
        self,
        dense: Sequence[Any] | None = None,
        sparse: Sequence[Any] | None = None,
        *,
        top_k: int = 10,
        hybrid: HybridConfig | None = None,
        filter: models.Filter | None = None,
    ) -> list[list[SearchHit]]:
        """:meth:`query` for many queries as batched requests (Edge ``query_batch``,
        qdrant-client ``query_batch_points``; one request per :data:`QUERY_BATCH_MAX`
        queries); results in the order of the queries.

        Args:
            dense: One dense vector per query (or ``None`` for all: a sparse query).
            sparse: One sparse vector per query (or ``None`` for all: a dense query).
            top_k, hybrid, filter: As in :meth:`query`, shared by every query.
        """
        plans = _many_plans(self.layout, dense, sparse, top_k=top_k, hybrid=hybrid, filter=filter)
        results = _in_batches(self._backend.query_batch, plans)
        return [rank_hits(hits, p.top_k) for hits, p in zip(results, plans)]

    def query_groups(
        self,
        dense: Sequence[float] | Any | None = None,
        sparse: Any | None = None,
        *,
        top_k: int = 10,
        group_size: int = 3,
        group_by: str = "doc_id",
        hybrid: HybridConfig | None = None,
        filter: models.Filter | None = None,
    ) -> list[DocumentHit]:
        """Chunk search grouped by document: the ``top_k`` best documents (by their best
        chunk), each with its ``group_size`` best chunks, best first.

        One ``query_points_groups`` request on qdrant-client; emulated on Qdrant Edge, which
        has no groups API (see :meth:`EdgeBackend.query_groups`). Each branch of a hybrid
        query fetches at least ``max(4 * top_k * group_size, 100)`` candidates (qdrant-client
        local mode fetches every point); with the same candidates both engines agree.
        Points without ``group_by`` (a long document's document points) are never in a group.
        """
        plan = _groups_plan(
            self.layout, dense, sparse, top_k=top_k, group_size=group_size, group_by=group_by,
            hybrid=hybrid, filter=filter,
        )
        groups = self._backend.query_groups(
            plan, group_by=group_by, group_size=group_size + GROUP_TIE_MARGIN, limit=top_k + TIE_MARGIN
        )
        return _document_hits(rank_groups(groups, top_k, group_size))

    def query_documents(
        self, vector: Sequence[float] | Any, *, top_k: int = 10, filter: models.Filter | None = None
    ) -> list[DocumentHit]:
        """Documents by MaxSim of ``vector`` (one query row) against their chunk vectors.

        Searches the layout's multivector; a document stored as several parts counts once,
        with its best part's score. Usually one request; more only while parts of the same
        documents crowd the results (the fetch grows four-fold each time).
        """
        _positive("top_k", top_k)
        limit = top_k + TIE_MARGIN
        best: dict[str, float] = {}
        for _ in range(DOCUMENT_FETCH_ROUNDS):
            plan = build_multivector_plan(self.layout, vector, limit=limit, filter=filter)
            hits = self._backend.query(plan)
            best = _dedupe_documents(hits)
            if len(hits) < limit or len(best) >= top_k + TIE_MARGIN:
                break
            limit *= 4
        return _rank_documents(best, top_k)

    def query_in_documents(
        self,
        dense: Sequence[float] | Any | None,
        sparse: Any | None,
        doc_ids: Sequence[str],
        *,
        per_document: int = 3,
        hybrid: HybridConfig | None = None,
        filter: models.Filter | None = None,
    ) -> list[list[SearchHit]]:
        """The ``per_document`` best chunks inside each of ``doc_ids`` (in that order), as ONE
        batch request (Edge ``query_batch`` / qdrant-client ``query_batch_points``)."""
        plans = _per_document_plans(
            self.layout, dense, sparse, doc_ids, per_document=per_document, hybrid=hybrid, filter=filter
        )
        results = _in_batches(self._backend.query_batch, plans)
        return [rank_hits(hits, p.top_k) for hits, p in zip(results, plans)]

    def delete_documents(self, doc_ids: Sequence[str]) -> None:
        """Delete every point whose ``doc_id`` or ``ref_doc_id`` is in ``doc_ids``."""
        self._backend.delete(documents_filter(doc_ids))

    def delete(self, filter: models.Filter) -> None:
        """Delete the points matching ``filter`` (required: no accidental wipe)."""
        if filter is None:
            raise ConfigError("delete needs a filter; use ensure_collection(recreate=True) to empty")
        _check_filter(filter)
        self._backend.delete(filter)

    def set_payload(self, payload: Mapping[str, Any], filter: models.Filter) -> None:
        """Set (merge) ``payload`` keys on the points matching ``filter`` (required); vectors are kept."""
        if filter is None:
            raise ConfigError("set_payload needs a filter naming the points to change")
        _check_filter(filter)
        self._backend.set_payload(payload, filter)

    def count(self, filter: models.Filter | None = None) -> int:
        """Exact number of points matching ``filter`` (all points when ``None``)."""
        _check_filter(filter)
        return self._backend.count(filter)

    def retrieve(self, ids: Sequence[str]) -> list[StoredPoint]:
        """Points by id, in the order of ``ids``; unknown ids are left out."""
        canonical = _canonical_ids(ids)
        return _order_like(canonical, self._backend.retrieve(canonical))

    def scroll(
        self, *, filter: models.Filter | None = None, limit: int = 100, offset: str | None = None
    ) -> tuple[list[StoredPoint], str | None]:
        """One page of points; pass the returned offset to get the next (``None`` = end)."""
        _check_filter(filter)
        return self._backend.scroll(filter, limit, offset)

    def scroll_points(
        self, *, limit: int = 256, offset: str | None = None
    ) -> tuple[list[PointRecord], str | None]:
        """One page of whole points (vectors and payload) in id order, and the next offset."""
        _positive("limit", limit)
        return self._backend.scroll_points(limit, offset)

    def unindexed_points(self) -> int:
        """About how many points a dense search scans outside the HNSW index (Edge; 0 on qdrant-client)."""
        return self._backend.unindexed_points()

    def ensure_indexed(self, min_points: int | None = DEFAULT_AUTO_INDEX_POINTS) -> bool:
        """Build the HNSW index when at least ``min_points`` points are outside it (Edge).

        Args:
            min_points: The size worth an index build; ``None`` never builds.

        Returns:
            Whether an index build ran (servers index in the background: always ``False``).
        """
        if min_points is None or self._backend.engine != "edge":
            return False
        _positive("min_points", min_points)
        pending = self._backend.unindexed_points()
        if pending < min_points:
            return False
        logger.info("Building the HNSW index of %r: %d points outside it", self.layout.collection, pending)
        return self._backend.optimize()

    def optimize(self) -> bool:
        """Build HNSW/indexes now (Edge); a no-op returning ``False`` on qdrant-client."""
        return self._backend.optimize()

    def close(self) -> None:
        """Release the engine; a temporary Edge directory is deleted."""
        self._backend.close()

    def __enter__(self) -> QdrantStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncQdrantStore(_StoreFront[AsyncStoreBackend]):
    """The asynchronous twin of :class:`QdrantStore` (same methods, awaitable).

    Build it with :func:`open_async_store`. On qdrant-client it uses ``AsyncQdrantClient``;
    on Edge each call runs in a worker thread.
    """

    async def ensure_collection(self, *, recreate: bool = False) -> bool:
        """See :meth:`QdrantStore.ensure_collection`."""
        found = await self._backend.read_layout()
        if found is not None and recreate:
            await self._backend.drop_collection()
            found = None
        if found is None:
            await self._backend.create_collection()
            existing: dict[str, str] = {}
        else:
            check_layout(self.layout, found)
            existing = await self._backend.indexed_fields()
        for field, kind in self.layout.payload_indexes:
            if field not in existing:
                await self._backend.create_payload_index(field, kind)
        return found is None

    async def upsert(
        self,
        points: Sequence[PointRecord],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        show_progress: bool = False,
    ) -> int:
        """See :meth:`QdrantStore.upsert`."""
        points = list(points)
        validate_points(points, self.layout)
        bar = _progress(len(points), show_progress)
        try:
            for batch in _batches(points, batch_size):
                await self._backend.upsert(batch)
                if bar is not None:
                    bar.update(len(batch))
        finally:
            if bar is not None:
                bar.close()
        return len(points)

    async def query(
        self,
        dense: Sequence[float] | Any | None = None,
        sparse: Any | None = None,
        *,
        top_k: int = 10,
        hybrid: HybridConfig | None = None,
        filter: models.Filter | None = None,
    ) -> list[SearchHit]:
        """See :meth:`QdrantStore.query`."""
        plan = build_query_plan(
            self.layout, dense=dense, sparse=sparse, top_k=top_k,
            hybrid=hybrid or _DEFAULT_HYBRID, filter=filter,
        )
        return rank_hits(await self._backend.query(plan), plan.top_k)

    async def query_many(
        self,
        dense: Sequence[Any] | None = None,
        sparse: Sequence[Any] | None = None,
        *,
        top_k: int = 10,
        hybrid: HybridConfig | None = None,
        filter: models.Filter | None = None,
    ) -> list[list[SearchHit]]:
        """See :meth:`QdrantStore.query_many`."""
        plans = _many_plans(self.layout, dense, sparse, top_k=top_k, hybrid=hybrid, filter=filter)
        results = await _ain_batches(self._backend.query_batch, plans)
        return [rank_hits(hits, p.top_k) for hits, p in zip(results, plans)]

    async def query_groups(
        self,
        dense: Sequence[float] | Any | None = None,
        sparse: Any | None = None,
        *,
        top_k: int = 10,
        group_size: int = 3,
        group_by: str = "doc_id",
        hybrid: HybridConfig | None = None,
        filter: models.Filter | None = None,
    ) -> list[DocumentHit]:
        """See :meth:`QdrantStore.query_groups`."""
        plan = _groups_plan(
            self.layout, dense, sparse, top_k=top_k, group_size=group_size, group_by=group_by,
            hybrid=hybrid, filter=filter,
        )
        groups = await self._backend.query_groups(
            plan, group_by=group_by, group_size=group_size + GROUP_TIE_MARGIN, limit=top_k + TIE_MARGIN
        )
        return _document_hits(rank_groups(groups, top_k, group_size))

    async def query_documents(
        self, vector: Sequence[float] | Any, *, top_k: int = 10, filter: models.Filter | None = None
    ) -> list[DocumentHit]:
        """See :meth:`QdrantStore.query_documents`."""
        _positive("top_k", top_k)
        limit = top_k + TIE_MARGIN
        best: dict[str, float] = {}
        for _ in range(DOCUMENT_FETCH_ROUNDS):
            plan = build_multivector_plan(self.layout, vector, limit=limit, filter=filter)
            hits = await self._backend.query(plan)
            best = _dedupe_documents(hits)
            if len(hits) < limit or len(best) >= top_k + TIE_MARGIN:
                break
            limit *= 4
        return _rank_documents(best, top_k)

    async def query_in_documents(
        self,
        dense: Sequence[float] | Any | None,
        sparse: Any | None,
        doc_ids: Sequence[str],
        *,
        per_document: int = 3,
        hybrid: HybridConfig | None = None,
        filter: models.Filter | None = None,
    ) -> list[list[SearchHit]]:
        """See :meth:`QdrantStore.query_in_documents`."""
        plans = _per_document_plans(
            self.layout, dense, sparse, doc_ids, per_document=per_document, hybrid=hybrid, filter=filter
        )
        results = await _ain_batches(self._backend.query_batch, plans)
        return [rank_hits(hits, p.top_k) for hits, p in zip(results, plans)]

    async def delete_documents(self, doc_ids: Sequence[str]) -> None:
        """See :meth:`QdrantStore.delete_documents`."""
        await self._backend.delete(documents_filter(doc_ids))

    async def delete(self, filter: models.Filter) -> None:
        """See :meth:`QdrantStore.delete`."""
        if filter is None:
            raise ConfigError("delete needs a filter; use ensure_collection(recreate=True) to empty")
        _check_filter(filter)
        await self._backend.delete(filter)

    async def set_payload(self, payload: Mapping[str, Any], filter: models.Filter) -> None:
        """See :meth:`QdrantStore.set_payload`."""
        if filter is None:
            raise ConfigError("set_payload needs a filter naming the points to change")
        _check_filter(filter)
        await self._backend.set_payload(payload, filter)

    async def count(self, filter: models.Filter | None = None) -> int:
        """See :meth:`QdrantStore.count`."""
        _check_filter(filter)
        return await self._backend.count(filter)

    async def retrieve(self, ids: Sequence[str]) -> list[StoredPoint]:
        """See :meth:`QdrantStore.retrieve`."""
        canonical = _canonical_ids(ids)
        return _order_like(canonical, await self._backend.retrieve(canonical))

    async def scroll(
        self, *, filter: models.Filter | None = None, limit: int = 100, offset: str | None = None
    ) -> tuple[list[StoredPoint], str | None]:
        """See :meth:`QdrantStore.scroll`."""
        _check_filter(filter)
        return await self._backend.scroll(filter, limit, offset)

    async def scroll_points(
        self, *, limit: int = 256, offset: str | None = None
    ) -> tuple[list[PointRecord], str | None]:
        """See :meth:`QdrantStore.scroll_points`."""
        _positive("limit", limit)
        return await self._backend.scroll_points(limit, offset)

    async def unindexed_points(self) -> int:
        """See :meth:`QdrantStore.unindexed_points`."""
        return await self._backend.unindexed_points()

    async def ensure_indexed(self, min_points: int | None = DEFAULT_AUTO_INDEX_POINTS) -> bool:
        """See :meth:`QdrantStore.ensure_indexed`."""
        if min_points is None or self._backend.engine != "edge":
            return False
        _positive("min_points", min_points)
        pending = await self._backend.unindexed_points()
        if pending < min_points:
            return False
        logger.info("Building the HNSW index of %r: %d points outside it", self.layout.collection, pending)
        return await self._backend.optimize()

    async def optimize(self) -> bool:
        """See :meth:`QdrantStore.optimize`."""
        return await self._backend.optimize()

    async def aclose(self) -> None:
        """Release the engine; a temporary Edge directory is deleted."""
        await self._backend.close()

    async def __aenter__(self) -> AsyncQdrantStore:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


def _resolve_engine(location: str | Path | None, engine: Engine) -> Literal["edge", "client"]:
    if engine not in ("auto", "edge", "client"):
        raise ConfigError(f"engine {engine!r} is not valid; choose 'auto', 'edge' or 'client'")
    is_url = isinstance(location, str) and location.startswith(("http://", "https://"))
    is_memory = location == ":memory:"
    if engine == "edge" and (is_url or is_memory):
        raise ConfigError(f"engine='edge' needs a directory or None, got {location!r}")
    if engine == "client" and location is None:
        raise ConfigError("engine='client' needs a URL, ':memory:' or a directory (local mode)")
    if engine != "auto":
        return engine
    return "client" if (is_url or is_memory) else "edge"


def _positive_int(name: str, value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
        raise ConfigError(f"{name} must be a positive int or None, got {value!r}")


_QUANTIZATION_TYPES = (models.ScalarQuantization, models.ProductQuantization, models.BinaryQuantization)


def _open_plan(
    location: str | Path | None,
    layout: CollectionLayout,
    *,
    engine: Engine,
    api_key: str | None,
    prefer_grpc: bool,
    timeout: int | None,
    shard_number: int | None,
    replication_factor: int | None,
    on_disk: bool | None,
    quantization_config: Any | None,
    write_consistency_factor: int | None = None,
) -> tuple[Literal["edge", "client"], dict[str, Any], dict[str, Any]]:
    """Check every option of :func:`open_store` before anything is opened or created.

    Returns:
        The engine, the qdrant-client constructor arguments (empty for Edge) and the
        collection options.
    """
    if not isinstance(layout, CollectionLayout):
        raise ConfigError(f"layout must be a CollectionLayout, got {type(layout).__name__}")
    if location is not None and not isinstance(location, (str, os.PathLike)):
        raise ConfigError(
            "location must be a directory, None, ':memory:' or an http(s):// URL, "
            f"got {type(location).__name__}"
        )
    kind = _resolve_engine(location, engine)
    if api_key is not None and (not isinstance(api_key, str) or not api_key):
        raise ConfigError("api_key must be a non-empty string or None")
    if not isinstance(prefer_grpc, bool):
        raise ConfigError(f"prefer_grpc must be True or False, got {prefer_grpc!r}")
    for name, value in (("timeout", timeout), ("shard_number", shard_number),
                        ("replication_factor", replication_factor),
                        ("write_consistency_factor", write_consistency_factor)):
        _positive_int(name, value)
    if on_disk is not None and not isinstance(on_disk, bool):
        raise ConfigError(f"on_disk must be True, False or None, got {on_disk!r}")
    if quantization_config is not None and not isinstance(quantization_config, _QUANTIZATION_TYPES):
        raise ConfigError(
            "quantization_config must be a qdrant_client.models ScalarQuantization, "
            f"ProductQuantization or BinaryQuantization, got {type(quantization_config).__name__}"
        )
    storage = layout.storage
    if storage is not None and on_disk is False and storage.on_disk:
        raise ConfigError(
            f"on_disk={on_disk!r} contradicts the layout's StorageConfig(on_disk={storage.on_disk!r}); "
            "set it in one place (CollectionLayout(storage=StorageConfig(on_disk=...)))"
        )
    if storage is not None and storage.quantized and quantization_config is not None:
        raise ConfigError(
            f"quantization_config is given and the layout's StorageConfig asks for {storage.quantization!r}; "
            "pass one of them"
        )
    loc = None if location is None else str(location)
    is_url = loc is not None and loc.startswith(("http://", "https://"))
    if not is_url:
        server_only = {
            "api_key": api_key, "prefer_grpc": prefer_grpc or None, "timeout": timeout,
            "shard_number": shard_number, "replication_factor": replication_factor,
            "write_consistency_factor": write_consistency_factor,
            "quantization_config": quantization_config,
        }
        given = sorted(k for k, v in server_only.items() if v is not None)
        if given:
            here = (
                "Qdrant Edge (a local directory) has one shard, no replication and no network"
                if kind == "edge"
                else f"qdrant-client local mode ({loc!r}) runs in this process"
            )
            hint = (
                " int8 quantization works on every engine: CollectionLayout(storage=StorageConfig("
                "quantization='int8')), or KnowledgeBase(storage=...)."
                if quantization_config is not None else ""
            )
            raise ConfigError(
                f"options {given} apply to a Qdrant server only; {here}. "
                f"Pass an http(s):// URL to use them.{hint}"
            )
    options = {
        "shard_number": shard_number, "replication_factor": replication_factor,
        "write_consistency_factor": write_consistency_factor,
        "on_disk": on_disk, "quantization_config": quantization_config,
    }
    if kind == "edge":
        return kind, {}, options
    assert loc is not None  # _resolve_engine: the client engine needs a location
    if is_url:
        # check_compatibility=False: no version probe (network I/O in a background thread)
        # when the store is constructed; the first real call reports an unreachable server.
        client: dict[str, Any] = {
            "url": loc, "api_key": api_key, "prefer_grpc": prefer_grpc, "check_compatibility": False,
        }
        if timeout is not None:
            client["timeout"] = timeout
    else:
        client = {"location": ":memory:"} if loc == ":memory:" else {"path": loc}
    return kind, client, options


def open_store(
    location: str | Path | None,
    layout: CollectionLayout,
    *,
    engine: Engine = "auto",
    api_key: str | None = None,
    prefer_grpc: bool = False,
    timeout: int | None = None,
    shard_number: int | None = None,
    replication_factor: int | None = None,
    on_disk: bool | None = None,
    quantization_config: Any | None = None,
    write_consistency_factor: int | None = None,
) -> QdrantStore:
    """Open a store; no I/O happens until the first call (e.g. ``ensure_collection``).

    Args:
        location: A directory (Qdrant Edge; the shard lives in ``location/<collection>``),
            ``None`` (Edge in a temporary directory deleted on close), an ``http(s)://``
            URL (a Qdrant server) or ``":memory:"`` (qdrant-client local mode).
        layout: The collection layout.
        engine: ``auto`` (by location), or force ``edge``/``client``; ``client`` with a
            directory gives qdrant-client local mode on disk.
        api_key: Server API key (URL only).
        prefer_grpc: Talk gRPC to the server.
        timeout: Server request timeout in seconds.
        shard_number: Server only: shards of a new collection.
        replication_factor: Server only: replicas of a new collection.
        on_disk: Keep original dense vectors on disk (both engines); the same as the
            layout's ``StorageConfig(on_disk=True)``, which is recorded with the collection.
        quantization_config: Server only: a ``qdrant_client.models`` quantization config
            (product or binary quantization). int8 scalar quantization works on every
            engine through the layout's :class:`StorageConfig`.
        write_consistency_factor: Server only: replicas that must confirm a write.

    Raises:
        ConfigError: an invalid or contradictory option (e.g. ``shard_number`` with Edge);
            every option is checked before anything is opened or created.
        StoreUnavailableError: a local-mode directory is held by another client.
    """
    kind, client_kwargs, options = _open_plan(
        location, layout, engine=engine, api_key=api_key, prefer_grpc=prefer_grpc, timeout=timeout,
        shard_number=shard_number, replication_factor=replication_factor, on_disk=on_disk,
        quantization_config=quantization_config, write_consistency_factor=write_consistency_factor,
    )
    if kind == "edge":
        return QdrantStore(backend=EdgeBackend(location, layout, on_disk=on_disk))
    with map_store_errors("open", collection=layout.collection, engine="client"):
        client = QdrantClient(**client_kwargs)  # local mode with path= reads and locks the directory
    return QdrantStore(backend=ClientBackend(client, layout, collection_options=options))


def open_async_store(
    location: str | Path | None,
    layout: CollectionLayout,
    *,
    engine: Engine = "auto",
    api_key: str | None = None,
    prefer_grpc: bool = False,
    timeout: int | None = None,
    shard_number: int | None = None,
    replication_factor: int | None = None,
    on_disk: bool | None = None,
    quantization_config: Any | None = None,
    write_consistency_factor: int | None = None,
) -> AsyncQdrantStore:
    """Async twin of :func:`open_store` (same arguments)."""
    kind, client_kwargs, options = _open_plan(
        location, layout, engine=engine, api_key=api_key, prefer_grpc=prefer_grpc, timeout=timeout,
        shard_number=shard_number, replication_factor=replication_factor, on_disk=on_disk,
        quantization_config=quantization_config, write_consistency_factor=write_consistency_factor,
    )
    if kind == "edge":
        return AsyncQdrantStore(backend=AsyncEdgeBackend(EdgeBackend(location, layout, on_disk=on_disk)))
    with map_store_errors("open", collection=layout.collection, engine="client"):
        client = AsyncQdrantClient(**client_kwargs)
    return AsyncQdrantStore(backend=AsyncClientBackend(client, layout, collection_options=options))
