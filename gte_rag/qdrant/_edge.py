"""Qdrant Edge backend: the Qdrant engine in-process, one shard per directory.

Directory layout (``root`` is what the user passes to ``open_store``)::

    root/<collection>/              the Edge shard (wal/, segments/, edge_config.json)
    root/<collection>/gte_rag_layout.json   our layout, model name included

Edge is synchronous; :class:`AsyncEdgeBackend` runs each call in a worker thread. One
shard can be opened by one process at a time (the WAL is locked).
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import tempfile
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import qdrant_edge as qe
from qdrant_client import models

from gte_rag.errors import ConfigError, StoreError
from gte_rag.qdrant._backend import LAYOUT_METADATA_KEY, describe_found_layout
from gte_rag.qdrant._edge_convert import convert_filter, to_edge_filter, to_edge_prefetch, to_edge_query
from gte_rag.qdrant._errors import map_store_errors
from gte_rag.qdrant._layout import CollectionLayout, PayloadIndexType
from gte_rag.qdrant._points import PointRecord, SearchHit, StoredPoint
from gte_rag.qdrant._query import QueryPlan

__all__ = ["AsyncEdgeBackend", "EdgeBackend"]

logger = logging.getLogger(__name__)

SIDECAR_NAME = "gte_rag_layout.json"
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


def _edge_index_schema(kind: PayloadIndexType) -> Any:
    if kind == "text":
        # Word tokens, lowercased: MatchText is case-insensitive, as on a server text index.
        return qe.TextIndexParams(tokenizer=qe.TokenizerType.Word, lowercase=True)
    return _INDEX_TYPES[kind]


class EdgeBackend:
    """One collection stored as a Qdrant Edge shard under ``root/<collection>``.

    Args:
        root: Parent directory, or ``None`` for a temporary one removed by :meth:`close`.
        layout: The collection layout.
        on_disk: Keep original dense vectors on disk (mmap) instead of RAM.
    """

    engine = "edge"

    def __init__(
        self, root: str | Path | None, layout: CollectionLayout, *, on_disk: bool | None = None
    ) -> None:
        self.layout = layout
        self._temporary = root is None
        self._root = Path(tempfile.mkdtemp(prefix="gte_rag_edge_")) if root is None else Path(root)
        self._on_disk = on_disk
        self._shard: qe.EdgeShard | None = None
        self._lock = threading.Lock()
        self._closed = False

    def __repr__(self) -> str:
        return f"EdgeBackend(path={str(self.path)!r}, collection={self.layout.collection!r})"

    @property
    def path(self) -> Path:
        """Directory of the shard."""
        return self._root / self.layout.collection

    def _errors(self, action: str) -> Any:
        return map_store_errors(action, collection=self.layout.collection, engine=self.engine)

    def _exists(self) -> bool:
        return (self.path / _EDGE_CONFIG_NAME).is_file()

    def _open(self) -> qe.EdgeShard:
        if self._closed:
            raise StoreError(f"store on {str(self.path)!r} is closed", collection=self.layout.collection)
        with self._lock:
            if self._shard is None:
                if not self._exists():
                    raise StoreError(
                        f"collection {self.layout.collection!r} does not exist in "
                        f"{str(self._root)!r}; call ensure_collection() first",
                        collection=self.layout.collection,
                    )
                with self._errors("open"):
                    self._shard = qe.EdgeShard.load(str(self.path))
                logger.info("Opened Qdrant Edge shard %s", self.path)
            return self._shard

    # -- collection ------------------------------------------------------------------
    def read_layout(self) -> CollectionLayout | None:
        """Layout of the shard on disk (geometry from Edge's config, rest from sidecar)."""
        if not self._exists():
            return None
        self._open()  # fails early (locked, corrupt) with a mapped error
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
        layout = self.layout
        vectors = {
            layout.dense_name: qe.EdgeVectorParams(
                size=layout.dense_size, distance=_DISTANCES[layout.distance], on_disk=self._on_disk
            )
        }
        if layout.multivector_name is not None:
            vectors[layout.multivector_name] = qe.EdgeVectorParams(
                size=int(layout.multivector_size or layout.dense_size),
                distance=_DISTANCES[layout.distance],
                on_disk=self._on_disk,
                multivector_config=qe.MultiVectorConfig(qe.MultiVectorComparator.MaxSim),
            )
        sparse = None
        if layout.sparse_name is not None:
            modifier = qe.Modifier.Idf if layout.sparse_idf else None
            sparse = {layout.sparse_name: qe.EdgeSparseVectorParams(modifier=modifier)}
        config = qe.EdgeConfig(vectors=vectors, sparse_vectors=sparse)
        with self._lock, self._errors("create collection"):
            self._shard = qe.EdgeShard.create(str(self.path), config)
        sidecar = {LAYOUT_METADATA_KEY: layout.to_dict()}
        tmp = self.path / (SIDECAR_NAME + ".tmp")
        tmp.write_text(json.dumps(sidecar, indent=2, sort_keys=True), encoding="utf-8")
        tmp.replace(self.path / SIDECAR_NAME)
        logger.info("Created Qdrant Edge collection %r at %s", layout.collection, self.path)

    def drop_collection(self) -> None:
        """Close the shard and delete its directory."""
        with self._lock:
            if self._shard is not None:
                with self._errors("close"):
                    self._shard.close()
                self._shard = None
            if self.path.exists():
                shutil.rmtree(self.path)
        logger.info("Dropped Qdrant Edge collection %r at %s", self.layout.collection, self.path)

    def indexed_fields(self) -> dict[str, str]:
        shard = self._open()
        with self._errors("read payload indexes"):
            schema = shard.info().payload_schema
        return {name: _SCHEMA_NAMES.get(info.data_type, str(info.data_type)) for name, info in schema.items()}

    def create_payload_index(self, field: str, kind: PayloadIndexType) -> None:
        shard = self._open()
        with self._errors(f"create payload index on {field!r}"):
            shard.update(qe.UpdateOperation.create_field_index(field, _edge_index_schema(kind)))
        logger.debug("Created %s payload index on %r", kind, field)

    # -- points ----------------------------------------------------------------------
    def _point(self, p: PointRecord) -> qe.Point:
        vector: dict[str, Any] = {self.layout.dense_name: p.dense}
        if p.sparse is not None and self.layout.sparse_name is not None:
            vector[self.layout.sparse_name] = qe.SparseVector(list(p.sparse.indices), list(p.sparse.values))
        if p.multivector is not None and self.layout.multivector_name is not None:
            vector[self.layout.multivector_name] = p.multivector
        return qe.Point(p.id, vector, dict(p.payload))

    def upsert(self, points: Sequence[PointRecord]) -> None:
        shard = self._open()
        edge_points = [self._point(p) for p in points]
        with self._errors("upsert"):
            shard.update(qe.UpdateOperation.upsert_points(edge_points))

    def query(self, plan: QueryPlan) -> list[SearchHit]:
        shard = self._open()
        request = qe.QueryRequest(
            limit=plan.limit,
            query=to_edge_query(plan.query, plan.using),
            prefetches=[to_edge_prefetch(p) for p in plan.prefetch] or None,
            filter=to_edge_filter(plan.filter),
            with_payload=plan.with_payload,
            with_vector=False,
        )
        with self._errors("query"):
            found = shard.query(request)
        return [SearchHit(str(p.id), float(p.score), dict(p.payload or {})) for p in found]

    def delete(self, filter: models.Filter) -> None:
        shard = self._open()
        edge_filter = convert_filter(filter)
        with self._errors("delete"):
            shard.update(qe.UpdateOperation.delete_points_by_filter(edge_filter))

    def count(self, filter: models.Filter | None) -> int:
        shard = self._open()
        request = qe.CountRequest(exact=True, filter=to_edge_filter(filter))
        with self._errors("count"):
            return int(shard.count(request))

    def retrieve(self, ids: Sequence[str]) -> list[StoredPoint]:
        shard = self._open()
        with self._errors("retrieve"):
            records = shard.retrieve([str(uuid.UUID(i)) for i in ids], True, False)
        return [StoredPoint(str(r.id), dict(r.payload or {})) for r in records]

    def scroll(
        self, filter: models.Filter | None, limit: int, offset: str | None
    ) -> tuple[list[StoredPoint], str | None]:
        shard = self._open()
        request = qe.ScrollRequest(
            offset=offset, limit=limit, filter=to_edge_filter(filter), with_payload=True, with_vector=False
        )
        with self._errors("scroll"):
            records, next_offset = shard.scroll(request)
        page = [StoredPoint(str(r.id), dict(r.payload or {})) for r in records]
        return page, None if next_offset is None else str(next_offset)

    def optimize(self) -> bool:
        shard = self._open()
        with self._errors("optimize"):
            changed = bool(shard.optimize())
        logger.info("Optimized Qdrant Edge collection %r (changed=%s)", self.layout.collection, changed)
        return changed

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._shard is not None:
                with self._errors("close"):
                    self._shard.close()
                self._shard = None
        if self._temporary:
            shutil.rmtree(self._root, ignore_errors=True)


def _check_edge_options(**options: Any) -> None:
    given = sorted(k for k, v in options.items() if v is not None)
    if given:
        raise ConfigError(
            f"options {given} apply to a Qdrant server only; Qdrant Edge (a local directory) "
            "has one shard and no replication. Pass an http(s):// URL to use them."
        )


class AsyncEdgeBackend:
    """Async twin of :class:`EdgeBackend`: each call runs in a worker thread."""

    engine = "edge"

    def __init__(self, sync: EdgeBackend) -> None:
        self._sync = sync
        self.layout = sync.layout

    def __repr__(self) -> str:
        return f"Async{self._sync!r}"

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

    async def delete(self, filter: models.Filter) -> None:
        await asyncio.to_thread(self._sync.delete, filter)

    async def count(self, filter: models.Filter | None) -> int:
        return await asyncio.to_thread(self._sync.count, filter)

    async def retrieve(self, ids: Sequence[str]) -> list[StoredPoint]:
        return await asyncio.to_thread(self._sync.retrieve, ids)

    async def scroll(
        self, filter: models.Filter | None, limit: int, offset: str | None
    ) -> tuple[list[StoredPoint], str | None]:
        return await asyncio.to_thread(self._sync.scroll, filter, limit, offset)

    async def optimize(self) -> bool:
        return await asyncio.to_thread(self._sync.optimize)

    async def close(self) -> None:
        await asyncio.to_thread(self._sync.close)
