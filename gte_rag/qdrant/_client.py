"""qdrant-client backends: a server (URL + API key, REST or gRPC) or local mode.

The sync and async classes share the pure request builders and result parsers below;
each method is one client call. The layout is recorded in the collection's ``metadata``
(Qdrant >= 1.16 and local mode). Local mode is brute force in Python and ignores payload
indexes (it warns if asked for one), so indexes are only created on servers.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from qdrant_client import AsyncQdrantClient, QdrantClient, models

from gte_rag.qdrant._backend import LAYOUT_METADATA_KEY, describe_found_layout
from gte_rag.qdrant._errors import map_store_errors
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
    vector: dict[str, Any] = {layout.dense_name: p.dense}
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


def _records(records: Sequence[models.Record]) -> list[StoredPoint]:
    return [StoredPoint(str(r.id), dict(r.payload or {})) for r in records]


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

    def __repr__(self) -> str:
        kind = "local" if self.is_local else "server"
        return f"{type(self).__name__}({kind}, collection={self.layout.collection!r})"

    def _errors(self, action: str) -> Any:
        return map_store_errors(action, collection=self.layout.collection, engine=self.engine)


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
            if not self.client.collection_exists(name):
                return None
            info = self.client.get_collection(name)
        return _layout_from_info(self.layout, info)

    def create_collection(self) -> None:
        with self._errors("create collection"):
            self.client.create_collection(**_create_kwargs(self.layout, self._options))
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
        with self._errors(f"create payload index on {field!r}"):
            self.client.create_payload_index(
                self.layout.collection, field, _index_schema(kind), wait=True
            )
        logger.debug("Created %s payload index on %r", kind, field)

    def upsert(self, points: Sequence[PointRecord]) -> None:
        structs = [_point_struct(self.layout, p) for p in points]
        with self._errors("upsert"):
            self.client.upsert(self.layout.collection, points=structs, wait=True)

    def query(self, plan: QueryPlan) -> list[SearchHit]:
        with self._errors("query"):
            response = self.client.query_points(**_query_kwargs(self.layout, plan))
        return _hits(response)

    def delete(self, filter: models.Filter) -> None:
        with self._errors("delete"):
            self.client.delete(
                self.layout.collection, points_selector=models.FilterSelector(filter=filter), wait=True
            )

    def count(self, filter: models.Filter | None) -> int:
        with self._errors("count"):
            return int(self.client.count(self.layout.collection, count_filter=filter, exact=True).count)

    def retrieve(self, ids: Sequence[str]) -> list[StoredPoint]:
        with self._errors("retrieve"):
            records = self.client.retrieve(
                self.layout.collection, list(ids), with_payload=True, with_vectors=False
            )
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
        if self._owns:
            with self._errors("close"):
                self.client.close()


class AsyncClientBackend(_ClientBackendBase[AsyncQdrantClient]):
    """Async twin of :class:`ClientBackend` over ``AsyncQdrantClient``."""

    async def read_layout(self) -> CollectionLayout | None:
        name = self.layout.collection
        with self._errors("read collection"):
            if not await self.client.collection_exists(name):
                return None
            info = await self.client.get_collection(name)
        return _layout_from_info(self.layout, info)

    async def create_collection(self) -> None:
        with self._errors("create collection"):
            await self.client.create_collection(**_create_kwargs(self.layout, self._options))
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
        with self._errors(f"create payload index on {field!r}"):
            await self.client.create_payload_index(
                self.layout.collection, field, _index_schema(kind), wait=True
            )

    async def upsert(self, points: Sequence[PointRecord]) -> None:
        structs = [_point_struct(self.layout, p) for p in points]
        with self._errors("upsert"):
            await self.client.upsert(self.layout.collection, points=structs, wait=True)

    async def query(self, plan: QueryPlan) -> list[SearchHit]:
        with self._errors("query"):
            response = await self.client.query_points(**_query_kwargs(self.layout, plan))
        return _hits(response)

    async def delete(self, filter: models.Filter) -> None:
        with self._errors("delete"):
            await self.client.delete(
                self.layout.collection, points_selector=models.FilterSelector(filter=filter), wait=True
            )

    async def count(self, filter: models.Filter | None) -> int:
        with self._errors("count"):
            result = await self.client.count(self.layout.collection, count_filter=filter, exact=True)
        return int(result.count)

    async def retrieve(self, ids: Sequence[str]) -> list[StoredPoint]:
        with self._errors("retrieve"):
            records = await self.client.retrieve(
                self.layout.collection, list(ids), with_payload=True, with_vectors=False
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
        if self._owns:
            with self._errors("close"):
                await self.client.close()
