"""Qdrant layer: collection layout, pure point/query builders, and stores on two engines.

- :class:`CollectionLayout` names the vectors, sizes, distance, IDF modifier, multivector
  and payload indexes; it creates and checks collections.
- :func:`point_id`, :func:`node_point_id`, :class:`PointRecord`, :func:`build_payload` build points (pure).
- :class:`HybridConfig` + :func:`build_query_plan` build ONE Query API request (pure).
- :class:`QdrantStore` / :class:`AsyncQdrantStore` do the I/O on Qdrant Edge
  (:class:`EdgeBackend`, in-process) or qdrant-client (:class:`ClientBackend`: a server
  or local mode); :func:`open_store` picks one from a location.
- :class:`StorageConfig` holds the memory, disk and index settings (int8, on-disk, float16,
  HNSW) in one vocabulary for both engines; :func:`migrate_collection` copies a collection
  to another engine or a server without re-encoding.
"""

from __future__ import annotations

from gte_rag.qdrant._backend import AsyncStoreBackend, StoreBackend
from gte_rag.qdrant._client import AsyncClientBackend, ClientBackend
from gte_rag.qdrant._edge import AsyncEdgeBackend, EdgeBackend
from gte_rag.qdrant._errors import map_store_errors
from gte_rag.qdrant._layout import (
    DEFAULT_AUTO_INDEX_POINTS,
    DEFAULT_DENSE_VECTOR_NAME,
    DEFAULT_DOCUMENT_VECTOR_NAME,
    DEFAULT_HNSW_EF,
    DEFAULT_HNSW_EF_CONSTRUCT,
    DEFAULT_HNSW_M,
    DEFAULT_MULTIVECTOR_NAME,
    DEFAULT_PAYLOAD_INDEXES,
    DEFAULT_SPARSE_VECTOR_NAME,
    CollectionLayout,
    StorageConfig,
    check_layout,
)
from gte_rag.qdrant._migrate import MigrationStats, amigrate_collection, migrate_collection
from gte_rag.qdrant._points import (
    DOCUMENT_KIND,
    GTE_RAG_NAMESPACE,
    KIND_FIELD,
    MAX_MULTIVECTOR_FLOATS,
    DocumentHit,
    PointRecord,
    SearchHit,
    StoredPoint,
    build_payload,
    document_point_id,
    is_document_point,
    multivector_parts,
    node_point_id,
    point_id,
)
from gte_rag.qdrant._query import HybridConfig, QueryPlan, build_query_plan, rank_hits
from gte_rag.qdrant._store import (
    QUERY_BATCH_MAX,
    AsyncQdrantStore,
    QdrantStore,
    documents_filter,
    open_async_store,
    open_store,
)

__all__ = [
    "AsyncClientBackend",
    "AsyncEdgeBackend",
    "AsyncQdrantStore",
    "AsyncStoreBackend",
    "ClientBackend",
    "CollectionLayout",
    "DEFAULT_AUTO_INDEX_POINTS",
    "DEFAULT_DENSE_VECTOR_NAME",
    "DEFAULT_DOCUMENT_VECTOR_NAME",
    "DEFAULT_HNSW_EF",
    "DEFAULT_HNSW_EF_CONSTRUCT",
    "DEFAULT_HNSW_M",
    "DEFAULT_MULTIVECTOR_NAME",
    "DEFAULT_PAYLOAD_INDEXES",
    "DEFAULT_SPARSE_VECTOR_NAME",
    "DOCUMENT_KIND",
    "DocumentHit",
    "EdgeBackend",
    "GTE_RAG_NAMESPACE",
    "HybridConfig",
    "KIND_FIELD",
    "MAX_MULTIVECTOR_FLOATS",
    "MigrationStats",
    "PointRecord",
    "QUERY_BATCH_MAX",
    "QdrantStore",
    "QueryPlan",
    "SearchHit",
    "StorageConfig",
    "StoreBackend",
    "StoredPoint",
    "amigrate_collection",
    "build_payload",
    "build_query_plan",
    "check_layout",
    "document_point_id",
    "documents_filter",
    "is_document_point",
    "map_store_errors",
    "migrate_collection",
    "multivector_parts",
    "node_point_id",
    "open_async_store",
    "open_store",
    "point_id",
    "rank_hits",
]
