"""qdrant-client backends: a server (URL + API key, REST or gRPC) or local mode.

The sync and async classes share the pure request builders and result parsers below;
each method is one client call. The layout is recorded in the collection's ``metadata``
(Qdrant >= 1.16 and local mode). Local mode is brute force in Python and ignores payload
indexes (it warns if asked for one), so indexes are only created on servers.

Local mode is not thread-safe (a query racing with an upsert or a drop can fail inside
numpy), so the sync backend runs the calls to one local client one at a time. After
:meth:`ClientBackend.close` every call raises :class:`StoreError` ("store is closed").

Local mode searches by brute force in Python: above :data:`LOCAL_MODE_WARN_POINTS` points
a collection warns once, naming Qdrant Edge (a directory location) as the fix. Server
upserts are retried when the server is unreachable or overloaded (point ids are
deterministic, so a batch written twice is the same batch).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from typing import Any, Generic, TypeVar

from qdrant_client import AsyncQdrantClient, QdrantClient, models

from gte_rag._runtime import warn_external
from gte_rag._types import SparseVector
from gte_rag.errors import StoreError, StoreUnavailableError
from gte_rag.qdrant._backend import LAYOUT_METADATA_KEY, describe_found_layout
from gte_rag.qdrant._errors import EngineCall, _classify, map_store_errors
from gte_rag.qdrant._layout import CollectionLayout, PayloadIndexType, StorageConfig, with_on_disk
from gte_rag.qdrant._points import PointRecord, SearchHit, StoredPoint
from gte_rag.qdrant._query import QueryPlan

__all__ = ["AsyncClientBackend", "ClientBackend", "LOCAL_MODE_WARN_POINTS", "UPSERT_RETRIES"]

logger = logging.getLogger(__name__)

LOCAL_MODE_WARN_POINTS = 20_000
"""qdrant-client local mode warns once when a collection grows past this many points."""
UPSERT_RETRIES = 4
"""Server upserts: retries after the first try when the server is unreachable or overloaded."""
RETRY_BASE_SECONDS = 0.5
"""Server upserts: the first wait before a retry; each later wait doubles."""

_DISTANCES = {
    "cosine": models.Distance.COSINE,
    "dot": models.Distance.DOT,
    "euclid": models.Distance.EUCLID,
    "manhattan": models.Distance.MANHATTAN,
}
_INDEX_TYPES: dict[str, Any] = {
    "keyword": models.PayloadSchemaType.KEYWORD,
    "integer": models.PayloadSchemaType.INTEGER,
    "float": models.PayloadSchemaType.FLOAT,
    "bool": models.PayloadSchemaType.BOOL,
    "datetime": models.PayloadSchemaType.DATETIME,
    "uuid": models.PayloadSchemaType.UUID,
}


def _index_schema(kind: PayloadIndexType) -> Any:
    if kind == "text":
        # Word tokens, lowercased: MatchText is case-insensitive, like on Edge.
        return models.TextIndexParams(
            type=models.TextIndexType.TEXT, tokenizer=models.TokenizerType.WORD, lowercase=True
        )
    return _INDEX_TYPES[kind]


def _is_local(client: QdrantClient | AsyncQdrantClient) -> bool:
    inner = getattr(client, "_client", None)
    return type(inner).__name__ in {"QdrantLocal", "AsyncQdrantLocal"}


_DATATYPES = {"float32": models.Datatype.FLOAT32, "float16": models.Datatype.FLOAT16}


def _vector_params(
    storage: StorageConfig, size: int, distance: str, *, on_disk: bool | None, multivector: bool = False
) -> models.VectorParams:
    """One dense vector's parameters from the storage vocabulary (as on Edge)."""
    quantization = None
    if storage.quantized:
        quantization = models.ScalarQuantization(
            scalar=models.ScalarQuantizationConfig(
                type=models.ScalarType.INT8, quantile=storage.quantile, always_ram=True
            )
        )
    return models.VectorParams(
        size=size, distance=_DISTANCES[distance], on_disk=storage.on_disk if on_disk is None else on_disk,
        datatype=_DATATYPES[storage.datatype], quantization_config=quantization,
        multivector_config=models.MultiVectorConfig(comparator=models.MultiVectorComparator.MAX_SIM)
        if multivector else None,
    )


def search_params(storage: StorageConfig) -> models.SearchParams:
    """Search parameters of every query: the search ef (:attr:`StorageConfig.search_ef`) and,
    with int8, the rescoring settings."""
    quantization = None
    if storage.quantized:
        quantization = models.QuantizationSearchParams(
            rescore=storage.rescore, oversampling=None if storage.oversampling is None else float(storage.oversampling)
        )
    return models.SearchParams(hnsw_ef=storage.search_ef, quantization=quantization)


def _create_kwargs(layout: CollectionLayout, options: dict[str, Any]) -> dict[str, Any]:
    on_disk = options.get("on_disk")
    layout = with_on_disk(layout, on_disk)  # recorded as created
    storage = layout.storage_settings
    vectors = {
        name: _vector_params(storage, size, layout.distance, on_disk=on_disk, multivector=multi)
        for name, size, multi in layout.dense_vectors()
    }
    sparse = None
    if layout.sparse_name is not None:
        modifier = models.Modifier.IDF if layout.sparse_idf else None
        sparse = {layout.sparse_name: models.SparseVectorParams(modifier=modifier)}
    kwargs: dict[str, Any] = {
        "collection_name": layout.collection,
        "vectors_config": vectors,
        "sparse_vectors_config": sparse,
        "metadata": {LAYOUT_METADATA_KEY: layout.to_dict()},
        "hnsw_config": models.HnswConfigDiff(m=storage.hnsw_m, ef_construct=storage.hnsw_ef_construct),
    }
    for key in ("shard_number", "replication_factor", "write_consistency_factor", "quantization_config"):
        if options.get(key) is not None:
            kwargs[key] = options[key]
    return kwargs


def _layout_from_info(expected: CollectionLayout, info: models.CollectionInfo) -> CollectionLayout:
    params = info.config.params
    vectors = params.vectors
    if isinstance(vectors, models.VectorParams):  # a single unnamed vector
        vectors = {"": vectors}
    dense = {
        name: (int(v.size), str(v.distance.value).lower(), v.multivector_config is not None)
        for name, v in (vectors or {}).items()
    }
    sparse = {
        name: (v.modifier == models.Modifier.IDF)
        for name, v in (params.sparse_vectors or {}).items()
    }
    recorded = (info.config.metadata or {}).get(LAYOUT_METADATA_KEY)
    return describe_found_layout(expected, dense_vectors=dense, sparse_vectors=sparse, recorded=recorded)


def _indexed(info: models.CollectionInfo) -> dict[str, str]:
    return {
        name: str(getattr(schema.data_type, "value", schema.data_type))
        for name, schema in (info.payload_schema or {}).items()
    }


def _point_struct(layout: CollectionLayout, p: PointRecord) -> models.PointStruct:
    vector: dict[str, Any] = {}
    if p.dense is not None:
        vector[layout.dense_name] = p.dense
    if p.document_vector is not None and layout.document_vector_name is not None:
        vector[layout.document_vector_name] = p.document_vector
    if p.sparse is not None and layout.sparse_name is not None:
        vector[layout.sparse_name] = models.SparseVector(
            indices=list(p.sparse.indices), values=list(p.sparse.values)
        )
    if p.multivector is not None and layout.multivector_name is not None:
        vector[layout.multivector_name] = p.multivector
    return models.PointStruct(id=p.id, vector=vector, payload=dict(p.payload))


def _with_params(prefetch: models.Prefetch, params: models.SearchParams | None) -> models.Prefetch:
    """A prefetch (and the ones nested in it) with ``params`` where it sets none."""
    if params is None or (prefetch.params is not None and prefetch.prefetch is None):
        return prefetch
    inner = prefetch.prefetch
    nested = None if inner is None else [
        _with_params(p, params) for p in (inner if isinstance(inner, list) else [inner])
    ]
    return prefetch.model_copy(update={"params": prefetch.params or params, "prefetch": nested})


def _prefetches(plan: QueryPlan, params: models.SearchParams | None) -> list[models.Prefetch] | None:
    return [_with_params(p, params) for p in plan.prefetch] or None


def _query_kwargs(layout: CollectionLayout, plan: QueryPlan, params: models.SearchParams | None) -> dict[str, Any]:
    """Arguments of ``query_points``; ``params`` (``None`` in local mode, which ignores them)."""
    return {
        "collection_name": layout.collection,
        "query": plan.query,
        "using": plan.using,
        "prefetch": _prefetches(plan, params),
        "query_filter": plan.filter,
        "search_params": params,
        "limit": plan.limit,
        "with_payload": plan.with_payload,
        "with_vectors": False,
    }


def _hits(response: models.QueryResponse) -> list[SearchHit]:
    return [SearchHit(str(p.id), float(p.score), dict(p.payload or {})) for p in response.points]


def _batch_requests(plans: Sequence[QueryPlan], params: models.SearchParams | None) -> list[models.QueryRequest]:
    return [
        models.QueryRequest(
            query=p.query, using=p.using, prefetch=_prefetches(p, params), filter=p.filter,
            params=params, limit=p.limit, with_payload=p.with_payload, with_vector=False,
        )
        for p in plans
    ]


def _groups_kwargs(
    layout: CollectionLayout, plan: QueryPlan, group_by: str, group_size: int, limit: int,
    params: models.SearchParams | None,
) -> dict[str, Any]:
    kwargs = _query_kwargs(layout, plan, params)
    kwargs.update(group_by=group_by, group_size=group_size, limit=limit)
    return kwargs


def _groups(result: models.GroupsResult) -> list[tuple[str, list[SearchHit]]]:
    return [
        (str(g.id), [SearchHit(str(p.id), float(p.score), dict(p.payload or {})) for p in g.hits])
        for g in result.groups
    ]


def _records(records: Sequence[models.Record]) -> list[StoredPoint]:
    return [StoredPoint(str(r.id), dict(r.payload or {})) for r in records]


def _whole_points(layout: CollectionLayout, records: Sequence[models.Record]) -> list[PointRecord]:
    """Stored records (vectors included) as :class:`PointRecord` objects."""
    out = []
    for r in records:
        vectors: dict[str, Any] = dict(r.vector) if isinstance(r.vector, dict) else {}
        sparse = vectors.get(layout.sparse_name) if layout.sparse_name else None
        out.append(PointRecord(
            id=str(r.id),
            dense=vectors.get(layout.dense_name),
            sparse=None if sparse is None else SparseVector(tuple(sparse.indices), tuple(sparse.values)),
            multivector=vectors.get(layout.multivector_name) if layout.multivector_name else None,
            payload=dict(r.payload or {}),
            document_vector=vectors.get(layout.document_vector_name) if layout.document_vector_name else None,
        ))
    return out


def _scroll_points_kwargs(layout: CollectionLayout, limit: int, offset: str | None) -> dict[str, Any]:
    return {
        "collection_name": layout.collection, "limit": limit, "offset": offset,
        "with_payload": True, "with_vectors": True,
    }


def _retryable(exc: BaseException, collection: str) -> bool:
    """A server that is unreachable, timing out or overloaded (the classes, not messages, decide)."""
    return _classify(exc, collection, "client") is StoreUnavailableError


def _retry_wait(attempt: int) -> float:
    return float(RETRY_BASE_SECONDS * (2**attempt))


# One lock per local-mode client (stores may share a client): its calls run one at a time.
_LOCAL_LOCKS: weakref.WeakKeyDictionary[Any, threading.RLock] = weakref.WeakKeyDictionary()
_LOCAL_LOCKS_GUARD = threading.Lock()


def _local_lock(client: Any) -> threading.RLock:
    with _LOCAL_LOCKS_GUARD:
        lock = _LOCAL_LOCKS.get(client)
        if lock is None:
            lock = _LOCAL_LOCKS[client] = threading.RLock()
        return lock


def _nothing() -> None:
    return None


_C = TypeVar("_C", QdrantClient, AsyncQdrantClient)


class _ClientBackendBase(Generic[_C]):
    """What the sync and async qdrant-client backends share."""

    engine = "client"

    def __init__(
        self,
        client: _C,
        layout: CollectionLayout,
        *,
        owns_client: bool = True,
        collection_options: dict[str, Any] | None = None,
    ) -> None:
        self.client: _C = client
        self.layout = layout
        self._owns = owns_client
        self._options = dict(collection_options or {})
        self.is_local = _is_local(client)
        # sync local mode only: the async local client runs on one event loop
        self._lock = _local_lock(client) if self.is_local and isinstance(client, QdrantClient) else None
        self._closed = False
        # local mode: points written (an upper bound of the size) until the size warning is given
        self._local_points: int | None = None
        self._size_warned = False

    def __repr__(self) -> str:
        kind = "local" if self.is_local else "server"
        return f"{type(self).__name__}({kind}, collection={self.layout.collection!r})"

    def _errors(self, action: str) -> EngineCall[Any]:
        """Context of one engine call; raises :class:`StoreError` once the store is closed."""
        if self._closed:
            raise StoreError(
                f"store is closed (collection {self.layout.collection!r}, {action}); open a new store",
                collection=self.layout.collection,
            )
        # local mode (sync): the lock is held around the call
        lock = self._lock
        return EngineCall(
            map_store_errors(action, collection=self.layout.collection, engine=self.engine),
            lock.acquire if lock is not None else _nothing, lock.release if lock is not None else _nothing,
        )

    def _search_params(self) -> models.SearchParams | None:
        """The storage settings' search parameters (none in local mode: it searches exactly)."""
        return None if self.is_local else search_params(self.layout.storage_settings)

    def _note_local_size(self, points: int, *, added: bool = True) -> bool:
        """Warn once when a local-mode collection grows past :data:`LOCAL_MODE_WARN_POINTS`.

        Returns ``True`` when a running estimate (``added``: points written, a re-upsert
        counted again) passed the limit: the caller then counts the collection and passes
        the real number to :meth:`_confirm_local_size`.
        """
        if not self.is_local or self._size_warned:
            return False
        self._local_points = points + (self._local_points or 0) if added else points
        if self._local_points <= LOCAL_MODE_WARN_POINTS:
            return False
        if added:
            return True
        self._warn_local_size()
        return False

    def _confirm_local_size(self, real: int) -> None:
        """The real count after the estimate passed the limit: warn only if it did too."""
        self._local_points = real
        if real > LOCAL_MODE_WARN_POINTS:
            self._warn_local_size()

    def _warn_local_size(self) -> None:
        self._size_warned = True
        warn_external(
            f"collection {self.layout.collection!r} in qdrant-client local mode holds about {self._local_points:,} "
            f"points (more than {LOCAL_MODE_WARN_POINTS:,}); local mode searches them by brute force in Python "
            "(about 1.7 s per hybrid query at 100k points). Fix: use Qdrant Edge, the embedded Rust engine "
            "(pass a directory as the location, e.g. KnowledgeBase('./kb')), or a Qdrant server URL; "
            "`gte-rag migrate --from SRC --to DIR` copies the points without re-encoding"
        )


class ClientBackend(_ClientBackendBase[QdrantClient]):
    """One collection through a synchronous ``QdrantClient`` (server or local mode).

    Args:
        client: The client; closed by :meth:`close` when ``owns_client`` is true.
        layout: The collection layout.
        owns_client: Whether :meth:`close` closes the client.
        collection_options: Server pass-through for collection creation:
            ``shard_number``, ``replication_factor``, ``on_disk``, ``quantization_config``.
    """

    def read_layout(self) -> CollectionLayout | None:
        name = self.layout.collection
        with self._errors("read collection"):
            exists = self.client.collection_exists(name)
        if not exists:
            return None
        with self._errors("read collection"):
            info = self.client.get_collection(name)
        if self.is_local and self._local_points is None:
            self._note_local_size(int(info.points_count or 0), added=False)
        return _layout_from_info(self.layout, info)

    def create_collection(self) -> None:
        kwargs = _create_kwargs(self.layout, self._options)
        with self._errors("create collection"):
            self.client.create_collection(**kwargs)
        logger.info("Created Qdrant collection %r (%r)", self.layout.collection, self)

    def drop_collection(self) -> None:
        with self._errors("drop collection"):
            self.client.delete_collection(self.layout.collection)
        logger.info("Dropped Qdrant collection %r", self.layout.collection)

    def indexed_fields(self) -> dict[str, str]:
        if self.is_local:  # local mode has no payload indexes; report them as present
            return dict(self.layout.payload_indexes)
        with self._errors("read payload indexes"):
            info = self.client.get_collection(self.layout.collection)
        return _indexed(info)

    def create_payload_index(self, field: str, kind: PayloadIndexType) -> None:
        if self.is_local:
            return
        schema = _index_schema(kind)
        with self._errors(f"create payload index on {field!r}"):
            self.client.create_payload_index(self.layout.collection, field, schema, wait=True)
        logger.debug("Created %s payload index on %r", kind, field)

    def upsert(self, points: Sequence[PointRecord]) -> None:
        """One upsert; a server that is unreachable or overloaded is retried with backoff."""
        structs = [_point_struct(self.layout, p) for p in points]
        retries = 0 if self.is_local else UPSERT_RETRIES
        with self._errors("upsert"):
            for attempt in range(retries + 1):
                try:
                    self.client.upsert(self.layout.collection, points=structs, wait=True)
                    break
                except Exception as exc:
                    if attempt == retries or not _retryable(exc, self.layout.collection):
                        raise
                    logger.warning("Upsert to %r failed (%s); retry %d of %d", self.layout.collection,
                                   type(exc).__name__, attempt + 1, retries)
                    time.sleep(_retry_wait(attempt))
        if self._note_local_size(len(structs)):
            with self._errors("count"):
                self._confirm_local_size(int(self.client.count(self.layout.collection, exact=True).count))

    def query(self, plan: QueryPlan) -> list[SearchHit]:
        kwargs = _query_kwargs(self.layout, plan, self._search_params())
        with self._errors("query"):
            response = self.client.query_points(**kwargs)
        return _hits(response)

    def query_batch(self, plans: Sequence[QueryPlan]) -> list[list[SearchHit]]:
        """One ``query_batch_points`` call."""
        if not plans:
            return []
        with self._errors("query batch"):
            responses = self.client.query_batch_points(self.layout.collection, requests=_batch_requests(plans, self._search_params()))
        return [_hits(r) for r in responses]

    def query_groups(
        self, plan: QueryPlan, *, group_by: str, group_size: int, limit: int
    ) -> list[tuple[str, list[SearchHit]]]:
        """One ``query_points_groups`` call (local mode fetches every point into each prefetch)."""
        with self._errors("query groups"):
            result = self.client.query_points_groups(**_groups_kwargs(self.layout, plan, group_by, group_size, limit, self._search_params()))
        return _groups(result)

    def delete(self, filter: models.Filter) -> None:
        selector = models.FilterSelector(filter=filter)
        with self._errors("delete"):
            self.client.delete(self.layout.collection, points_selector=selector, wait=True)

    def set_payload(self, payload: Mapping[str, Any], filter: models.Filter) -> None:
        with self._errors("set payload"):
            self.client.set_payload(self.layout.collection, payload=dict(payload), points=filter, wait=True)

    def count(self, filter: models.Filter | None) -> int:
        with self._errors("count"):
            result = self.client.count(self.layout.collection, count_filter=filter, exact=True)
        return int(result.count)

    def retrieve(self, ids: Sequence[str]) -> list[StoredPoint]:
        wanted = list(ids)
        with self._errors("retrieve"):
            records = self.client.retrieve(self.layout.collection, wanted, with_payload=True, with_vectors=False)
        return _records(records)

    def scroll(
        self, filter: models.Filter | None, limit: int, offset: str | None
    ) -> tuple[list[StoredPoint], str | None]:
        with self._errors("scroll"):
            records, next_offset = self.client.scroll(
                self.layout.collection,
                scroll_filter=filter,
                limit=limit,
                offset=offset,
                with_payload=True,
                with_vectors=False,
            )
        return _records(records), None if next_offset is None else str(next_offset)

    def scroll_points(self, limit: int, offset: str | None) -> tuple[list[PointRecord], str | None]:
        """One page of whole points in id order (vectors included), and the next offset."""
        with self._errors("scroll"):
            records, next_offset = self.client.scroll(**_scroll_points_kwargs(self.layout, limit, offset))
        return _whole_points(self.layout, records), None if next_offset is None else str(next_offset)

    def unindexed_points(self) -> int:
        return 0  # servers index in the background; local mode has no index to build

    def optimize(self) -> bool:
        return False  # servers optimize in the background; local mode has nothing to build

    def close(self) -> None:
        """Close the client if this backend owns it; later calls raise (idempotent)."""
        if self._closed:
            return
        call = self._errors("close")
        self._closed = True
        if self._owns:
            with call:
                self.client.close()


class AsyncClientBackend(_ClientBackendBase[AsyncQdrantClient]):
    """Async twin of :class:`ClientBackend` over ``AsyncQdrantClient``."""

    async def read_layout(self) -> CollectionLayout | None:
        name = self.layout.collection
        with self._errors("read collection"):
            exists = await self.client.collection_exists(name)
        if not exists:
            return None
        with self._errors("read collection"):
            info = await self.client.get_collection(name)
        if self.is_local and self._local_points is None:
            self._note_local_size(int(info.points_count or 0), added=False)
        return _layout_from_info(self.layout, info)

    async def create_collection(self) -> None:
        kwargs = _create_kwargs(self.layout, self._options)
        with self._errors("create collection"):
            await self.client.create_collection(**kwargs)
        logger.info("Created Qdrant collection %r (%r)", self.layout.collection, self)

    async def drop_collection(self) -> None:
        with self._errors("drop collection"):
            await self.client.delete_collection(self.layout.collection)
        logger.info("Dropped Qdrant collection %r", self.layout.collection)

    async def indexed_fields(self) -> dict[str, str]:
        if self.is_local:
            return dict(self.layout.payload_indexes)
        with self._errors("read payload indexes"):
            info = await self.client.get_collection(self.layout.collection)
        return _indexed(info)

    async def create_payload_index(self, field: str, kind: PayloadIndexType) -> None:
        if self.is_local:
            return
        schema = _index_schema(kind)
        with self._errors(f"create payload index on {field!r}"):
            await self.client.create_payload_index(self.layout.collection, field, schema, wait=True)
        logger.debug("Created %s payload index on %r", kind, field)

    async def upsert(self, points: Sequence[PointRecord]) -> None:
        """See :meth:`ClientBackend.upsert`."""
        structs = [_point_struct(self.layout, p) for p in points]
        retries = 0 if self.is_local else UPSERT_RETRIES
        with self._errors("upsert"):
            for attempt in range(retries + 1):
                try:
                    await self.client.upsert(self.layout.collection, points=structs, wait=True)
                    break
                except Exception as exc:
                    if attempt == retries or not _retryable(exc, self.layout.collection):
                        raise
                    logger.warning("Upsert to %r failed (%s); retry %d of %d", self.layout.collection,
                                   type(exc).__name__, attempt + 1, retries)
                    await asyncio.sleep(_retry_wait(attempt))
        if self._note_local_size(len(structs)):
            with self._errors("count"):
                counted = await self.client.count(self.layout.collection, exact=True)
            self._confirm_local_size(int(counted.count))

    async def query(self, plan: QueryPlan) -> list[SearchHit]:
        kwargs = _query_kwargs(self.layout, plan, self._search_params())
        with self._errors("query"):
            response = await self.client.query_points(**kwargs)
        return _hits(response)

    async def query_batch(self, plans: Sequence[QueryPlan]) -> list[list[SearchHit]]:
        """See :meth:`ClientBackend.query_batch`."""
        if not plans:
            return []
        with self._errors("query batch"):
            responses = await self.client.query_batch_points(
                self.layout.collection, requests=_batch_requests(plans, self._search_params())
            )
        return [_hits(r) for r in responses]

    async def query_groups(
        self, plan: QueryPlan, *, group_by: str, group_size: int, limit: int
    ) -> list[tuple[str, list[SearchHit]]]:
        """See :meth:`ClientBackend.query_groups`."""
        with self._errors("query groups"):
            result = await self.client.query_points_groups(
                **_groups_kwargs(self.layout, plan, group_by, group_size, limit, self._search_params())
            )
        return _groups(result)

    async def delete(self, filter: models.Filter) -> None:
        selector = models.FilterSelector(filter=filter)
        with self._errors("delete"):
            await self.client.delete(self.layout.collection, points_selector=selector, wait=True)

    async def set_payload(self, payload: Mapping[str, Any], filter: models.Filter) -> None:
        with self._errors("set payload"):
            await self.client.set_payload(self.layout.collection, payload=dict(payload), points=filter, wait=True)

    async def count(self, filter: models.Filter | None) -> int:
        with self._errors("count"):
            result = await self.client.count(self.layout.collection, count_filter=filter, exact=True)
        return int(result.count)

    async def retrieve(self, ids: Sequence[str]) -> list[StoredPoint]:
        wanted = list(ids)
        with self._errors("retrieve"):
            records = await self.client.retrieve(
                self.layout.collection, wanted, with_payload=True, with_vectors=False
            )
        return _records(records)

    async def scroll(
        self, filter: models.Filter | None, limit: int, offset: str | None
    ) -> tuple[list[StoredPoint], str | None]:
        with self._errors("scroll"):
            records, next_offset = await self.client.scroll(
                self.layout.collection,
                scroll_filter=filter,
                limit=limit,
                offset=offset,
                with_payload=True,
                with_vectors=False,
            )
        return _records(records), None if next_offset is None else str(next_offset)

    async def scroll_points(self, limit: int, offset: str | None) -> tuple[list[PointRecord], str | None]:
        """See :meth:`ClientBackend.scroll_points`."""
        with self._errors("scroll"):
            records, next_offset = await self.client.scroll(**_scroll_points_kwargs(self.layout, limit, offset))
        return _whole_points(self.layout, records), None if next_offset is None else str(next_offset)

    async def unindexed_points(self) -> int:
        return 0

    async def optimize(self) -> bool:
        return False

    async def close(self) -> None:
        """See :meth:`ClientBackend.close`."""
        if self._closed:
            return
        call = self._errors("close")
        self._closed = True
        if self._owns:
            with call:
                await self.client.close()
