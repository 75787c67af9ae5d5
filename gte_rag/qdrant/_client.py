"""qdrant-client backends: a server (URL + API key, REST or gRPC) or local mode.

The sync and async classes share the pure request builders and result parsers below;
each method is one client call. The layout is recorded in the collection's ``metadata``
(Qdrant >= 1.16 and local mode). Local mode is brute force in Python and ignores payload
indexes (it warns if asked for one), so indexes are only created on servers.

Local mode is not thread-safe (a query racing with an upsert or a drop can fail inside
numpy), so the sync backend runs the calls to one local client one at a time. After
:meth:`ClientBackend.close` every call raises :class:`StoreError` ("store is closed").
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from qdrant_client import AsyncQdrantClient, QdrantClient, models

from gte_rag.errors import StoreError
from gte_rag.qdrant._backend import LAYOUT_METADATA_KEY, describe_found_layout
from gte_rag.qdrant._errors import EngineCall, map_store_errors
from gte_rag.qdrant._layout import CollectionLayout, PayloadIndexType
from gte_rag.qdrant._points import PointRecord, SearchHit, StoredPoint
from gte_rag.qdrant._query import QueryPlan

__all__ = ["AsyncClientBackend", "ClientBackend"]

logger = logging.getLogger(__name__)

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


def _create_kwargs(layout: CollectionLayout, options: dict[str, Any]) -> dict[str, Any]:
    on_disk = options.get("on_disk")
    vectors = {
        layout.dense_name: models.VectorParams(
            size=layout.dense_size, distance=_DISTANCES[layout.distance], on_disk=on_disk
        )
    }
    if layout.document_vector_name is not None:
        vectors[layout.document_vector_name] = models.VectorParams(
            size=layout.dense_size, distance=_DISTANCES[layout.distance], on_disk=on_disk
        )
    if layout.multivector_name is not None:
        vectors[layout.multivector_name] = models.VectorParams(
            size=int(layout.multivector_size or layout.dense_size),
            distance=_DISTANCES[layout.distance],
            on_disk=on_disk,
            multivector_config=models.MultiVectorConfig(
                comparator=models.MultiVectorComparator.MAX_SIM
            ),
        )
    sparse = None
    if layout.sparse_name is not None:
        modifier = models.Modifier.IDF if layout.sparse_idf else None
        sparse = {layout.sparse_name: models.SparseVectorParams(modifier=modifier)}
    kwargs: dict[str, Any] = {
        "collection_name": layout.collection,
        "vectors_config": vectors,
        "sparse_vectors_config": sparse,
        "metadata": {LAYOUT_METADATA_KEY: layout.to_dict()},
    }
    for key in ("shard_number", "replication_factor", "quantization_config"):
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


def _query_kwargs(layout: CollectionLayout, plan: QueryPlan) -> dict[str, Any]:
    return {
        "collection_name": layout.collection,
        "query": plan.query,
        "using": plan.using,
        "prefetch": list(plan.prefetch) or None,
        "query_filter": plan.filter,
        "limit": plan.limit,
        "with_payload": plan.with_payload,
        "with_vectors": False,
    }


def _hits(response: models.QueryResponse) -> list[SearchHit]:
    return [SearchHit(str(p.id), float(p.score), dict(p.payload or {})) for p in response.points]


def _batch_requests(plans: Sequence[QueryPlan]) -> list[models.QueryRequest]:
    return [
        models.QueryRequest(
            query=p.query, using=p.using, prefetch=list(p.prefetch) or None, filter=p.filter,
            limit=p.limit, with_payload=p.with_payload, with_vector=False,
        )
        for p in plans
    ]


def _groups_kwargs(
    layout: CollectionLayout, plan: QueryPlan, group_by: str, group_size: int, limit: int
) -> dict[str, Any]:
    kwargs = _query_kwargs(layout, plan)
    kwargs.update(group_by=group_by, group_size=group_size, limit=limit)
    return kwargs


def _groups(result: models.GroupsResult) -> list[tuple[str, list[SearchHit]]]:
    return [
        (str(g.id), [SearchHit(str(p.id), float(p.score), dict(p.payload or {})) for p in g.hits])
        for g in result.groups
    ]


def _records(records: Sequence[models.Record]) -> list[StoredPoint]:
    return [StoredPoint(str(r.id), dict(r.payload or {})) for r in records]


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
        structs = [_point_struct(self.layout, p) for p in points]
        with self._errors("upsert"):
            self.client.upsert(self.layout.collection, points=structs, wait=True)

    def query(self, plan: QueryPlan) -> list[SearchHit]:
        kwargs = _query_kwargs(self.layout, plan)
        with self._errors("query"):
            response = self.client.query_points(**kwargs)
        return _hits(response)

    def query_batch(self, plans: Sequence[QueryPlan]) -> list[list[SearchHit]]:
        """One ``query_batch_points`` call."""
        if not plans:
            return []
        with self._errors("query batch"):
            responses = self.client.query_batch_points(self.layout.collection, requests=_batch_requests(plans))
        return [_hits(r) for r in responses]

    def query_groups(
        self, plan: QueryPlan, *, group_by: str, group_size: int, limit: int
    ) -> list[tuple[str, list[SearchHit]]]:
        """One ``query_points_groups`` call (local mode fetches every point into each prefetch)."""
        with self._errors("query groups"):
            result = self.client.query_points_groups(**_groups_kwargs(self.layout, plan, group_by, group_size, limit))
        return _groups(result)

    def delete(self, filter: models.Filter) -> None:
        selector = models.FilterSelector(filter=filter)
        with self._errors("delete"):
            self.client.delete(self.layout.collection, points_selector=selector, wait=True)

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
        structs = [_point_struct(self.layout, p) for p in points]
        with self._errors("upsert"):
            await self.client.upsert(self.layout.collection, points=structs, wait=True)

    async def query(self, plan: QueryPlan) -> list[SearchHit]:
        kwargs = _query_kwargs(self.layout, plan)
        with self._errors("query"):
            response = await self.client.query_points(**kwargs)
        return _hits(response)

    async def query_batch(self, plans: Sequence[QueryPlan]) -> list[list[SearchHit]]:
        """See :meth:`ClientBackend.query_batch`."""
        if not plans:
            return []
        with self._errors("query batch"):
            responses = await self.client.query_batch_points(
                self.layout.collection, requests=_batch_requests(plans)
            )
        return [_hits(r) for r in responses]

    async def query_groups(
        self, plan: QueryPlan, *, group_by: str, group_size: int, limit: int
    ) -> list[tuple[str, list[SearchHit]]]:
        """See :meth:`ClientBackend.query_groups`."""
        with self._errors("query groups"):
            result = await self.client.query_points_groups(
                **_groups_kwargs(self.layout, plan, group_by, group_size, limit)
            )
        return _groups(result)

    async def delete(self, filter: models.Filter) -> None:
        selector = models.FilterSelector(filter=filter)
        with self._errors("delete"):
            await self.client.delete(self.layout.collection, points_selector=selector, wait=True)

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
