"""Qdrant Edge backend: the Qdrant engine in-process, one shard per directory.

Directory layout (``root`` is what the user passes to ``open_store``)::

    root/<collection>/              the Edge shard (wal/, segments/, edge_config.json)
    root/<collection>/gte_rag_layout.json   our layout, model name included

Edge is synchronous; :class:`AsyncEdgeBackend` runs each call in a worker thread. One
shard can be opened by one process at a time (the WAL is locked). Within a process, calls
from many threads are safe, also while the store closes or drops the collection (see
:class:`EdgeBackend`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import tempfile
import threading
import uuid
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import qdrant_edge as qe
from qdrant_client import models

from gte_rag._types import SparseVector
from gte_rag.errors import CollectionNotFoundError, ConfigError, StoreError
from gte_rag.qdrant._backend import LAYOUT_METADATA_KEY, describe_found_layout
from gte_rag.qdrant._edge_convert import convert_filter, to_edge_filter, to_edge_request
from gte_rag.qdrant._errors import EngineCall, map_store_errors
from gte_rag.qdrant._layout import CollectionLayout, PayloadIndexType, StorageConfig, with_on_disk
from gte_rag.qdrant._points import PointRecord, SearchHit, StoredPoint
from gte_rag.qdrant._query import QueryPlan, group_hits, rank_groups, widen_plan

__all__ = ["AsyncEdgeBackend", "EdgeBackend"]

logger = logging.getLogger(__name__)

SIDECAR_NAME = "gte_rag_layout.json"
GROUP_FETCH_ROUNDS = 6
"""Query groups on Edge: how many times the over-fetch may grow (x4 each) before the groups
found are returned as they are."""
GROUP_COUNT_FIELD = "_chunk_count"
"""Payload field that tells how many chunks a document has: a group holding that many is complete."""
_EDGE_CONFIG_NAME = "edge_config.json"

_DISTANCES = {
    "cosine": qe.Distance.Cosine,
    "dot": qe.Distance.Dot,
    "euclid": qe.Distance.Euclid,
    "manhattan": qe.Distance.Manhattan,
}
_INDEX_TYPES: dict[str, Any] = {
    "keyword": qe.PayloadSchemaType.Keyword,
    "integer": qe.PayloadSchemaType.Integer,
    "float": qe.PayloadSchemaType.Float,
    "bool": qe.PayloadSchemaType.Bool,
    "datetime": qe.PayloadSchemaType.Datetime,
    "uuid": qe.PayloadSchemaType.Uuid,
}
_SCHEMA_NAMES = {
    qe.PayloadSchemaType.Keyword: "keyword",
    qe.PayloadSchemaType.Integer: "integer",
    qe.PayloadSchemaType.Float: "float",
    qe.PayloadSchemaType.Text: "text",
    qe.PayloadSchemaType.Bool: "bool",
    qe.PayloadSchemaType.Datetime: "datetime",
    qe.PayloadSchemaType.Uuid: "uuid",
    qe.PayloadSchemaType.Geo: "geo",
}


_DATATYPES = {"float32": qe.VectorStorageDatatype.Float32, "float16": qe.VectorStorageDatatype.Float16}
_FULL_SCAN_KB = 10_000
_INDEXING_THRESHOLD_KB = 1
"""Edge's optimizer indexes segments above this size: any, so that ``optimize()`` always builds."""
"""HNSW ``full_scan_threshold`` (KB of vectors): a smaller segment is scanned, as on a server."""


def _vector_params(storage: StorageConfig, size: int, distance: str, *, on_disk: bool | None,
                   multivector: bool = False) -> qe.EdgeVectorParams:
    """One dense vector's parameters from the storage vocabulary."""
    quantization = None
    if storage.quantized:
        # the int8 copies stay in RAM, so on-disk originals are read only to rescore
        quantization = qe.ScalarQuantizationConfig(qe.ScalarType.Int8, quantile=storage.quantile, always_ram=True)
    return qe.EdgeVectorParams(
        size=size, distance=_DISTANCES[distance], on_disk=storage.on_disk if on_disk is None else on_disk,
        multivector_config=qe.MultiVectorConfig(qe.MultiVectorComparator.MaxSim) if multivector else None,
        datatype=_DATATYPES[storage.datatype], quantization_config=quantization,
    )


def edge_config(layout: CollectionLayout, *, on_disk: bool | None = None) -> qe.EdgeConfig:
    """The ``EdgeConfig`` of a new shard for ``layout`` (its vectors and storage settings)."""
    storage = layout.storage_settings
    vectors = {
        name: _vector_params(storage, size, layout.distance, on_disk=on_disk, multivector=multi)
        for name, size, multi in layout.dense_vectors()
    }
    sparse = None
    if layout.sparse_name is not None:
        modifier = qe.Modifier.Idf if layout.sparse_idf else None
        sparse = {layout.sparse_name: qe.EdgeSparseVectorParams(modifier=modifier)}
    hnsw = qe.HnswIndexConfig(m=storage.hnsw_m, ef_construct=storage.hnsw_ef_construct,
                              full_scan_threshold=_FULL_SCAN_KB)
    # the optimizer indexes every segment it is asked to: Edge optimizes only when asked, and
    # ``ensure_indexed`` decides when (``auto_index_points``, which may change on reopening)
    optimizers = qe.EdgeOptimizersConfig(indexing_threshold=_INDEXING_THRESHOLD_KB)
    return qe.EdgeConfig(vectors=vectors, sparse_vectors=sparse, hnsw_config=hnsw, optimizers=optimizers)


def search_params(storage: StorageConfig) -> qe.SearchParams:
    """Search parameters of every query: the search ef (:attr:`StorageConfig.search_ef`) and,
    with int8, the rescoring settings."""
    quantization = None
    if storage.quantized:
        quantization = qe.QuantizationSearchParams(
            rescore=storage.rescore, oversampling=None if storage.oversampling is None else float(storage.oversampling)
        )
    return qe.SearchParams(hnsw_ef=storage.search_ef, quantization=quantization)


def _prefetch_with(prefetch: qe.Prefetch, params: qe.SearchParams) -> qe.Prefetch:
    inner = prefetch.prefetches
    return qe.Prefetch(
        limit=prefetch.limit, query=prefetch.query,
        prefetches=[_prefetch_with(p, params) for p in inner] if inner else None,
        params=prefetch.params or params, filter=prefetch.filter, score_threshold=prefetch.score_threshold,
    )


def with_search_params(request: qe.QueryRequest, params: qe.SearchParams | None) -> qe.QueryRequest:
    """``request`` with ``params`` on the outer query and on every prefetch that sets none."""
    if params is None:
        return request
    prefetches = request.prefetches
    return qe.QueryRequest(
        limit=request.limit, offset=request.offset, query=request.query,
        prefetches=[_prefetch_with(p, params) for p in prefetches] if prefetches else None,
        with_vector=request.with_vector, with_payload=request.with_payload, filter=request.filter,
        score_threshold=request.score_threshold, params=request.params or params,
    )


def _record_point(record: Any, layout: CollectionLayout) -> PointRecord:
    """A stored Edge record (vectors included) as a :class:`PointRecord`."""
    vectors = dict(record.vector or {})
    sparse = vectors.get(layout.sparse_name) if layout.sparse_name else None
    return PointRecord(
        id=str(record.id),
        dense=vectors.get(layout.dense_name),
        sparse=None if sparse is None else SparseVector(tuple(sparse.indices), tuple(sparse.values)),
        multivector=vectors.get(layout.multivector_name) if layout.multivector_name else None,
        payload=dict(record.payload or {}),
        document_vector=vectors.get(layout.document_vector_name) if layout.document_vector_name else None,
    )


def _edge_index_schema(kind: PayloadIndexType) -> Any:
    if kind == "text":
        # Word tokens, lowercased: MatchText is case-insensitive, as on a server text index.
        return qe.TextIndexParams(tokenizer=qe.TokenizerType.Word, lowercase=True)
    return _INDEX_TYPES[kind]


def _best_hits(found: Sequence[Any], top_k: int) -> list[SearchHit]:
    """Parse the points that can be among the ``top_k`` best (every tie at the cut included).

    A plan asks for a few more points than ``top_k`` so that ties are broken by id
    (:func:`~gte_rag.qdrant.rank_hits`); the points scoring below the ``top_k``-th score
    can never make the cut, and reading a point is the costly part (Edge builds a
    ``uuid.UUID`` and a new payload dict on each access), so they are skipped.
    """
    if 0 < top_k < len(found):
        cut = sorted([p.score for p in found], reverse=True)[top_k - 1]
        found = [p for p in found if p.score >= cut]
    return [SearchHit(str(p.id), p.score, p.payload or {}) for p in found]


def _groups_complete(groups: Sequence[tuple[str, list[SearchHit]]], limit: int, group_size: int) -> bool:
    """Whether the ``limit`` best groups are known and each holds all the hits it can."""
    if len(groups) < limit:
        return False
    for _, hits in groups[:limit]:
        if len(hits) >= group_size:
            continue
        total = hits[0].payload.get(GROUP_COUNT_FIELD)
        if not isinstance(total, int) or len(hits) < total:
            return False
    return True


class EdgeBackend:
    """One collection stored as a Qdrant Edge shard under ``root/<collection>``.

    Thread-safe: every operation holds a shared claim on the open shard for the engine
    call, and :meth:`close` / :meth:`drop_collection` / :meth:`create_collection` wait
    until the operations in flight have finished, then run alone. An operation that
    starts during or after them raises a :class:`StoreError` that says so (the store is
    closed, the collection was dropped) instead of reaching a closed shard.

    Args:
        root: Parent directory, or ``None`` for a temporary one, made on first use and
            removed by :meth:`close`.
        layout: The collection layout.
        on_disk: Keep original dense vectors on disk (mmap) instead of RAM.

    Raises:
        ConfigError: an argument of the wrong type (nothing is created on disk).
    """

    engine = "edge"

    def __init__(
        self, root: str | Path | None, layout: CollectionLayout, *, on_disk: bool | None = None
    ) -> None:
        if not isinstance(layout, CollectionLayout):
            raise ConfigError(f"layout must be a CollectionLayout, got {type(layout).__name__}")
        if root is not None and not isinstance(root, (str, os.PathLike)):
            raise ConfigError(f"root must be a directory path or None, got {type(root).__name__}")
        if on_disk is not None and not isinstance(on_disk, bool):
            raise ConfigError(f"on_disk must be True, False or None, got {on_disk!r}")
        self.layout = layout
        self._temporary = root is None
        self._root: Path | None = None if root is None else Path(root)
        self._on_disk = on_disk
        self._shard: qe.EdgeShard | None = None
        # The guard: ``_active`` operations hold the shard; ``_exclusive`` is set while
        # close/drop/create wait for them and run (new operations wait meanwhile).
        self._cond = threading.Condition()
        self._active = 0
        self._exclusive = False
        self._held = threading.local()  # claims held by the current thread (using_shard nests)
        self._closed = False
        self._dropped = False
        self._params_cache: tuple[StorageConfig, qe.SearchParams | None] | None = None

    def __repr__(self) -> str:
        where = "<temporary>" if self._root is None else str(self._root / self.layout.collection)
        return f"EdgeBackend(path={where!r}, collection={self.layout.collection!r})"

    @property
    def path(self) -> Path:
        """Directory of the shard (a temporary store makes its parent directory now)."""
        return self._root_dir() / self.layout.collection

    def _root_dir(self) -> Path:
        with self._cond:
            if self._root is None:
                if self._closed:
                    raise self._closed_error()
                self._root = Path(tempfile.mkdtemp(prefix="gte_rag_edge_"))
                # a store nobody closed still leaves no directory behind (at collection or exit)
                weakref.finalize(self, shutil.rmtree, str(self._root), ignore_errors=True)
            return self._root

    def _errors(self, action: str) -> map_store_errors:
        return map_store_errors(action, collection=self.layout.collection, engine=self.engine)

    def _exists(self) -> bool:
        if self._root is None:  # a temporary directory not made yet holds nothing
            return False
        return (self._root / self.layout.collection / _EDGE_CONFIG_NAME).is_file()

    def _closed_error(self) -> StoreError:
        where = "a temporary directory" if self._temporary else repr(str(self._root))
        return StoreError(
            f"store on {where} is closed (collection {self.layout.collection!r}); open a new store",
            collection=self.layout.collection,
        )

    def _missing_error(self) -> CollectionNotFoundError:
        name = self.layout.collection
        if self._dropped:
            return CollectionNotFoundError(
                f"collection {name!r} was dropped (drop_collection or ensure_collection(recreate=True)); "
                "call ensure_collection() to create it again",
                collection=name,
            )
        where = "a temporary directory" if self._root is None else repr(str(self._root))
        return CollectionNotFoundError(
            f"collection {name!r} does not exist in {where}; call ensure_collection() first",
            collection=name,
        )

    # -- the guard ---------------------------------------------------------------------
    def _acquire(self) -> qe.EdgeShard:
        """Claim the open shard (loading it on first use) for one engine call."""
        nested = getattr(self._held, "claims", 0)
        with self._cond:
            while self._exclusive and not nested:  # a thread that holds a claim must not wait
                self._cond.wait()
            if self._closed:
                raise self._closed_error()
            shard = self._shard
            if shard is None:
                if not self._exists():
                    raise self._missing_error()
                with self._errors("open"):
                    shard = qe.EdgeShard.load(str(self.path))
                self._shard = shard
                logger.info("Opened Qdrant Edge shard %s", self.path)
            self._active += 1
            self._held.claims = nested + 1
            return shard

    def holds_claim(self) -> bool:
        """Whether the calling thread holds the shard (inside :meth:`using_shard`): work it
        waits for must then run on this thread, since another would wait behind a pending close."""
        return bool(getattr(self._held, "claims", 0))

    def _release(self) -> None:
        self._held.claims -= 1
        with self._cond:
            self._active -= 1
            if self._active == 0 and self._exclusive:
                self._cond.notify_all()

    @contextmanager
    def _alone(self) -> Iterator[None]:
        """Run close/drop/create with no operation in flight (they finish first)."""
        if getattr(self._held, "claims", 0):
            raise StoreError(
                "close(), drop_collection() and create_collection() cannot run inside using_shard() "
                "of the same thread: they wait for the block to end",
                collection=self.layout.collection,
            )
        with self._cond:
            while self._exclusive:
                self._cond.wait()
            self._exclusive = True
            while self._active:
                self._cond.wait()
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()

    def _call(self, action: str) -> EngineCall[qe.EdgeShard]:
        """``with self._call(action) as shard:`` one engine call, held in flight, its errors mapped."""
        return EngineCall(self._errors(action), self._acquire, self._release)

    @contextmanager
    def using_shard(self) -> Iterator[qe.EdgeShard]:
        """The open ``qdrant_edge.EdgeShard``, for engine-specific calls.

        Calls made inside the block count as in flight: :meth:`close` and
        :meth:`drop_collection` wait until the block ends (called from inside it, they
        raise). The store's own methods work inside the block. Do not close the shard
        yourself.
        """
        shard = self._acquire()
        try:
            yield shard
        finally:
            self._release()

    # -- collection ------------------------------------------------------------------
    def read_layout(self) -> CollectionLayout | None:
        """Layout of the shard on disk (geometry from Edge's config, rest from sidecar)."""
        if not self._exists():
            if self._closed:
                raise self._closed_error()
            return None
        self._acquire()  # fails early (closed, locked, corrupt) with a mapped error
        self._release()
        config = json.loads((self.path / _EDGE_CONFIG_NAME).read_text(encoding="utf-8"))
        dense = {
            name: (
                int(p["size"]),
                str(p["distance"]).lower(),
                p.get("multivector_config") is not None,
            )
            for name, p in (config.get("vectors") or {}).items()
        }
        sparse = {
            name: str((p or {}).get("modifier", "")).lower() == "idf"
            for name, p in (config.get("sparse_vectors") or {}).items()
        }
        sidecar = self.path / SIDECAR_NAME
        recorded = None
        if sidecar.is_file():
            recorded = json.loads(sidecar.read_text(encoding="utf-8")).get(LAYOUT_METADATA_KEY)
        return describe_found_layout(
            self.layout, dense_vectors=dense, sparse_vectors=sparse, recorded=recorded
        )

    def create_collection(self) -> None:
        """Create the shard directory and record the layout next to it."""
        layout = with_on_disk(self.layout, self._on_disk)  # recorded as created
        config = edge_config(layout, on_disk=self._on_disk)
        with self._alone():
            if self._closed:
                raise self._closed_error()
            path = str(self.path)
            with self._errors("create collection"):
                shard = qe.EdgeShard.create(path, config)
            self._shard = shard
            self._dropped = False
            sidecar = {LAYOUT_METADATA_KEY: layout.to_dict()}
            tmp = self.path / (SIDECAR_NAME + ".tmp")
            tmp.write_text(json.dumps(sidecar, indent=2, sort_keys=True), encoding="utf-8")
            tmp.replace(self.path / SIDECAR_NAME)
        logger.info("Created Qdrant Edge collection %r at %s", layout.collection, self.path)

    def drop_collection(self) -> None:
        """Close the shard and delete its directory, once the operations in flight are done."""
        with self._alone():
            if self._closed:
                raise self._closed_error()
            shard, self._shard = self._shard, None
            self._dropped = True
            try:
                if shard is not None:
                    with self._errors("close"):
                        shard.close()
            finally:
                if self._root is not None and self.path.exists():
                    shutil.rmtree(self.path)
        logger.info("Dropped Qdrant Edge collection %r in %s", self.layout.collection, self._root)

    def indexed_fields(self) -> dict[str, str]:
        with self._call("read payload indexes") as shard:
            schema = shard.info().payload_schema
        return {name: _SCHEMA_NAMES.get(info.data_type, str(info.data_type)) for name, info in schema.items()}

    def create_payload_index(self, field: str, kind: PayloadIndexType) -> None:
        operation = qe.UpdateOperation.create_field_index(field, _edge_index_schema(kind))
        with self._call(f"create payload index on {field!r}") as shard:
            shard.update(operation)
        logger.debug("Created %s payload index on %r", kind, field)

    # -- points ----------------------------------------------------------------------
    def _point(self, p: PointRecord) -> qe.Point:
        vector: dict[str, Any] = {}
        if p.dense is not None:
            vector[self.layout.dense_name] = p.dense
        if p.document_vector is not None and self.layout.document_vector_name is not None:
            vector[self.layout.document_vector_name] = p.document_vector
        if p.sparse is not None and self.layout.sparse_name is not None:
            vector[self.layout.sparse_name] = qe.SparseVector(list(p.sparse.indices), list(p.sparse.values))
        if p.multivector is not None and self.layout.multivector_name is not None:
            vector[self.layout.multivector_name] = p.multivector
        return qe.Point(p.id, vector, dict(p.payload))

    def upsert(self, points: Sequence[PointRecord]) -> None:
        operation = qe.UpdateOperation.upsert_points([self._point(p) for p in points])
        with self._call("upsert") as shard:
            shard.update(operation)

    def _search_params(self) -> qe.SearchParams | None:
        storage = self.layout.storage_settings
        cached = self._params_cache
        if cached is None or cached[0] is not storage:
            cached = self._params_cache = (storage, search_params(storage))
        return cached[1]

    def _request(self, plan: QueryPlan) -> qe.QueryRequest:
        return with_search_params(to_edge_request(plan), self._search_params())

    def query(self, plan: QueryPlan) -> list[SearchHit]:
        """Run the plan; returns at least the ``plan.top_k`` best hits, ties at the cut included."""
        request = self._request(plan)
        with self._call("query") as shard:
            found = shard.query(request)
        return _best_hits(found, plan.top_k)

    def query_batch(self, plans: Sequence[QueryPlan]) -> list[list[SearchHit]]:
        """Run the plans as one ``query_batch`` call (one pass over the segments)."""
        if not plans:
            return []
        request = qe.QueryBatchRequest([self._request(p) for p in plans])
        with self._call("query batch") as shard:
            found = shard.query_batch(request)
        return [_best_hits(points, plan.top_k) for points, plan in zip(found, plans)]

    def query_groups(
        self, plan: QueryPlan, *, group_by: str, group_size: int, limit: int
    ) -> list[tuple[str, list[SearchHit]]]:
        """Query groups emulated (Edge has no groups API): over-fetch, group, widen.

        The plan is run with ``limit * group_size * 2`` hits (each prefetch branch
        fetching at least as many); the hits are grouped by ``group_by`` in score order.
        When fewer than ``limit`` groups are found, or one of the ``limit`` best holds
        fewer than ``group_size`` hits while its document has more chunks (payload
        ``_chunk_count``; without it, more may exist), the fetch grows four-fold and the
        query runs again, until the groups are complete, the engine returns fewer hits
        than asked (everything matching was seen) or :data:`GROUP_FETCH_ROUNDS` rounds.
        The groups come from the last round's ranking alone. Fused scores (RRF, DBSF)
        depend on how deep each branch fetches, as on every engine.
        """
        fetch = max(limit * group_size * 2, plan.limit)
        groups: list[tuple[str, list[SearchHit]]] = []
        # the rounds read two payload fields only (reading a whole payload is the costly part
        # of a hit); the payloads of the hits kept are fetched once, at the end
        slim = qe.PayloadSelector.Include([group_by, GROUP_COUNT_FIELD])
        for _ in range(GROUP_FETCH_ROUNDS):
            widened = widen_plan(plan, fetch)
            request = self._request(widened)
            request = qe.QueryRequest(
                limit=request.limit, query=request.query, prefetches=request.prefetches or None,
                filter=request.filter, with_payload=slim, with_vector=False, params=request.params,
            )
            with self._call("query") as shard:
                found = shard.query(request)
            hits = _best_hits(found, widened.top_k)
            groups = group_hits(hits, group_by, group_size)
            if len(hits) < fetch or _groups_complete(groups, limit, group_size):
                break
            fetch *= 4
        if not plan.with_payload:
            return groups
        kept = rank_groups(groups, limit, group_size)
        payloads = {p.id: p.payload for p in self.retrieve([h.id for _, members in kept for h in members])}
        return [(key, [SearchHit(h.id, h.score, payloads.get(h.id, h.payload)) for h in members]) for key, members in kept]

    def delete(self, filter: models.Filter) -> None:
        operation = qe.UpdateOperation.delete_points_by_filter(convert_filter(filter))
        with self._call("delete") as shard:
            shard.update(operation)

    def set_payload(self, payload: Mapping[str, Any], filter: models.Filter) -> None:
        operation = qe.UpdateOperation.set_payload_by_filter(convert_filter(filter), dict(payload))
        with self._call("set payload") as shard:
            shard.update(operation)

    def count(self, filter: models.Filter | None) -> int:
        request = qe.CountRequest(exact=True, filter=to_edge_filter(filter))
        with self._call("count") as shard:
            found = shard.count(request)
        return int(found)

    def retrieve(self, ids: Sequence[str]) -> list[StoredPoint]:
        canonical: list[int | uuid.UUID | str] = [str(uuid.UUID(i)) for i in ids]
        with self._call("retrieve") as shard:
            records = shard.retrieve(canonical, True, False)
        return [StoredPoint(str(r.id), r.payload or {}) for r in records]

    def scroll(
        self, filter: models.Filter | None, limit: int, offset: str | None
    ) -> tuple[list[StoredPoint], str | None]:
        request = qe.ScrollRequest(
            offset=offset, limit=limit, filter=to_edge_filter(filter), with_payload=True, with_vector=False
        )
        with self._call("scroll") as shard:
            records, next_offset = shard.scroll(request)
        page = [StoredPoint(str(r.id), r.payload or {}) for r in records]
        return page, None if next_offset is None else str(next_offset)

    def scroll_points(self, limit: int, offset: str | None) -> tuple[list[PointRecord], str | None]:
        """One page of whole points in id order (vectors included), and the next offset."""
        request = qe.ScrollRequest(offset=offset, limit=limit, with_payload=True, with_vector=True)
        with self._call("scroll") as shard:
            records, next_offset = shard.scroll(request)
        page = [_record_point(r, self.layout) for r in records]
        return page, None if next_offset is None else str(next_offset)

    def unindexed_points(self) -> int:
        """Points a dense search scans outside the HNSW index (an estimate from the shard's counts).

        Edge counts indexed vectors over every vector name; sparse vectors are always
        indexed, so what is missing from ``points * vectors per point`` is unindexed dense
        vectors.
        """
        with self._call("read index status") as shard:
            info = shard.info()
        per_point = 1 + (self.layout.sparse_name is not None)
        return max(0, int(info.points_count) * per_point - int(info.indexed_vectors_count))

    def _lower_indexing_threshold(self) -> None:
        """Reload a shard created with a size threshold for indexing (an older gte_rag fixed
        it from ``auto_index_points`` at creation) with the lowest one, so that ``optimize()``
        builds whenever asked and a lowered ``auto_index_points`` takes effect."""
        if self.holds_claim() or not self._exists():
            return  # inside using_shard(): keep the shard as it is
        try:
            config = json.loads((self.path / _EDGE_CONFIG_NAME).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        threshold = (config.get("optimizers") or {}).get("indexing_threshold")
        if threshold is not None and int(threshold) <= _INDEXING_THRESHOLD_KB:
            return
        recorded = self.read_layout()
        if recorded is None or recorded.storage is None:
            return  # no record of the creation settings: the config cannot be rebuilt faithfully
        dense = (config.get("vectors") or {}).get(recorded.dense_name) or {}
        new = edge_config(recorded, on_disk=bool(dense.get("on_disk", recorded.storage.on_disk)))
        with self._alone():
            if self._closed:
                raise self._closed_error()
            shard, self._shard = self._shard, None
            with self._errors("reopen with a new indexing threshold"):
                if shard is not None:
                    shard.close()
                try:
                    self._shard = qe.EdgeShard.load(str(self.path), new)
                    logger.info("Lowered the indexing threshold of Qdrant Edge shard %s", self.path)
                except Exception as exc:  # an incompatible rebuilt config: keep the shard as it was
                    logger.warning("Could not lower the indexing threshold of %s: %s", self.path, exc)
                    self._shard = qe.EdgeShard.load(str(self.path))

    def optimize(self) -> bool:
        self._lower_indexing_threshold()
        with self._call("optimize") as shard:
            changed = bool(shard.optimize())
        logger.info("Optimized Qdrant Edge collection %r (changed=%s)", self.layout.collection, changed)
        return changed

    def close(self) -> None:
        """Close the shard once the operations in flight are done (idempotent).

        A temporary directory is deleted. Operations called afterwards raise
        :class:`StoreError`.
        """
        with self._cond:
            if self._closed:
                return
        with self._alone():
            if self._closed:
                return
            self._closed = True
            shard, self._shard = self._shard, None
            try:
                if shard is not None:
                    with self._errors("close"):
                        shard.close()
            finally:
                if self._temporary and self._root is not None:
                    shutil.rmtree(self._root, ignore_errors=True)


class AsyncEdgeBackend:
    """Async twin of :class:`EdgeBackend`: each call runs in a worker thread."""

    engine = "edge"

    def __init__(self, sync: EdgeBackend) -> None:
        self._sync = sync

    def __repr__(self) -> str:
        return f"Async{self._sync!r}"

    @property
    def layout(self) -> CollectionLayout:
        """The layout of the wrapped backend (binding a new one binds it there)."""
        return self._sync.layout

    @layout.setter
    def layout(self, value: CollectionLayout) -> None:
        self._sync.layout = value

    @property
    def path(self) -> Path:
        """Directory of the shard."""
        return self._sync.path

    async def read_layout(self) -> CollectionLayout | None:
        return await asyncio.to_thread(self._sync.read_layout)

    async def create_collection(self) -> None:
        await asyncio.to_thread(self._sync.create_collection)

    async def drop_collection(self) -> None:
        await asyncio.to_thread(self._sync.drop_collection)

    async def indexed_fields(self) -> dict[str, str]:
        return await asyncio.to_thread(self._sync.indexed_fields)

    async def create_payload_index(self, field: str, kind: PayloadIndexType) -> None:
        await asyncio.to_thread(self._sync.create_payload_index, field, kind)

    async def upsert(self, points: Sequence[PointRecord]) -> None:
        await asyncio.to_thread(self._sync.upsert, points)

    async def query(self, plan: QueryPlan) -> list[SearchHit]:
        return await asyncio.to_thread(self._sync.query, plan)

    async def query_batch(self, plans: Sequence[QueryPlan]) -> list[list[SearchHit]]:
        return await asyncio.to_thread(self._sync.query_batch, plans)

    async def query_groups(
        self, plan: QueryPlan, *, group_by: str, group_size: int, limit: int
    ) -> list[tuple[str, list[SearchHit]]]:
        return await asyncio.to_thread(
            lambda: self._sync.query_groups(plan, group_by=group_by, group_size=group_size, limit=limit)
        )

    async def delete(self, filter: models.Filter) -> None:
        await asyncio.to_thread(self._sync.delete, filter)

    async def set_payload(self, payload: Mapping[str, Any], filter: models.Filter) -> None:
        await asyncio.to_thread(self._sync.set_payload, payload, filter)

    async def count(self, filter: models.Filter | None) -> int:
        return await asyncio.to_thread(self._sync.count, filter)

    async def retrieve(self, ids: Sequence[str]) -> list[StoredPoint]:
        return await asyncio.to_thread(self._sync.retrieve, ids)

    async def scroll(
        self, filter: models.Filter | None, limit: int, offset: str | None
    ) -> tuple[list[StoredPoint], str | None]:
        return await asyncio.to_thread(self._sync.scroll, filter, limit, offset)

    async def scroll_points(self, limit: int, offset: str | None) -> tuple[list[PointRecord], str | None]:
        return await asyncio.to_thread(self._sync.scroll_points, limit, offset)

    async def unindexed_points(self) -> int:
        return await asyncio.to_thread(self._sync.unindexed_points)

    async def optimize(self) -> bool:
        return await asyncio.to_thread(self._sync.optimize)

    async def close(self) -> None:
        await asyncio.to_thread(self._sync.close)
