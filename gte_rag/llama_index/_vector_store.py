"""GteVectorStore: a LlamaIndex vector store on a gte_rag knowledge base (Qdrant)."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.schema import BaseNode, MetadataMode
from llama_index.core.vector_stores.types import (
    BasePydanticVectorStore,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
    VectorStoreQueryResult,
)
from llama_index.core.vector_stores.utils import node_to_metadata_dict
from qdrant_client import models

from ..errors import ConfigError
from ..kb import KnowledgeBase
from ..qdrant import GTE_RAG_NAMESPACE, HybridConfig, PointRecord, build_payload, point_id
from ._embedding import GteEmbedding
from ._filters import to_qdrant_filter
from ._nodes import hit_to_node

__all__ = ["GteVectorStore"]

_MODES = {
    VectorStoreQueryMode.DEFAULT: "dense",
    VectorStoreQueryMode.SPARSE: "sparse",
    VectorStoreQueryMode.HYBRID: "hybrid",
}


class GteVectorStore(BasePydanticVectorStore):
    """LlamaIndex vector store whose sparse half comes from the dense model's own forward pass.

    Use it with ``VectorStoreIndex`` and a :class:`GteEmbedding` that shares the knowledge
    base's encoder: the index computes dense vectors through the embedding, and ``add``
    takes the sparse vectors of the same texts from the encoder's cache (no second pass).
    Hybrid queries (``vector_store_query_mode="hybrid"``) are fused inside Qdrant.

    Example:
        >>> kb = KnowledgeBase("./kb")  # doctest: +SKIP
        >>> store = GteVectorStore(knowledge_base=kb)  # doctest: +SKIP
        >>> ctx = StorageContext.from_defaults(vector_store=store)  # doctest: +SKIP
        >>> index = VectorStoreIndex.from_documents(docs, storage_context=ctx,
        ...                                         embed_model=store.embed_model)  # doctest: +SKIP
        >>> index.as_retriever(vector_store_query_mode="hybrid").retrieve("...")  # doctest: +SKIP
    """

    stores_text: bool = True
    is_embedding_query: bool = True

    _kb: KnowledgeBase = PrivateAttr()

    def __init__(self, *, knowledge_base: KnowledgeBase | None = None, **kb_options: Any) -> None:
        super().__init__(stores_text=True)
        if knowledge_base is not None and kb_options:
            raise ConfigError("pass either knowledge_base= or KnowledgeBase options, not both")
        embed_model = kb_options.pop("embed_model", None)
        if isinstance(embed_model, GteEmbedding):
            kb_options["encoder"] = embed_model.encoder
        elif embed_model is not None:
            raise ConfigError("embed_model must be a GteEmbedding (its encoder gives the sparse vectors)")
        self._kb = knowledge_base or KnowledgeBase(**kb_options)

    @classmethod
    def class_name(cls) -> str:
        return "GteVectorStore"

    @property
    def client(self) -> Any:
        """The underlying :class:`~gte_rag.qdrant.QdrantStore`."""
        return self._kb.store

    @property
    def knowledge_base(self) -> KnowledgeBase:
        """The knowledge base this store writes to."""
        return self._kb

    @property
    def embed_model(self) -> GteEmbedding:
        """A :class:`GteEmbedding` sharing this store's encoder (pass it to ``VectorStoreIndex``)."""
        return GteEmbedding.from_encoder(self._kb.encoder)

    # ------------------------------------------------------------------ add
    def _points(self, nodes: Sequence[BaseNode]) -> list[PointRecord]:
        enc = self._kb.encoder
        texts = [n.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]
        # One pass for texts without a dense vector; the others hit the encoder cache, filled
        # when GteEmbedding embedded them, so their sparse vectors cost no second pass.
        out = enc.encode(texts, role="document", return_sparse=enc.has_sparse)
        positions: dict[str, list[int]] = defaultdict(list)
        for i, n in enumerate(nodes):
            positions[n.ref_doc_id or n.node_id].append(i)
        chunk_index: dict[int, int] = {}
        for idxs in positions.values():
            for rank, i in enumerate(sorted(idxs, key=lambda j: getattr(nodes[j], "start_char_idx", None) or 0)):
                chunk_index[i] = rank
        points = []
        for i, node in enumerate(nodes):
            doc_id = node.ref_doc_id or node.node_id
            pid = _node_point_id(node)
            meta = node_to_metadata_dict(node, remove_text=True, flat_metadata=False)
            content = meta.pop("_node_content")
            node_type = meta.pop("_node_type")
            for key in ("doc_id", "ref_doc_id", "document_id"):
                meta.pop(key, None)
            dense = out.dense[i] if node.embedding is None else node.embedding
            points.append(PointRecord(
                id=pid,
                dense=dense,
                sparse=out.sparse[i] if out.sparse else None,
                payload=build_payload(
                    text=node.get_content(), doc_id=doc_id, chunk_index=chunk_index[i],
                    metadata=meta, node_content=content, node_type=node_type,
                ),
            ))
        return points

    def add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> list[str]:
        """Upsert nodes (ids derived from document id and position: re-adding is idempotent)."""
        points = self._points(nodes)
        self._kb.store.upsert(points)
        return [p.id for p in points]

    async def async_add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> list[str]:
        """Async twin of :meth:`add`: encoding in a thread, the upsert through the async store."""
        points = await asyncio.to_thread(self._points, nodes)
        await self._kb.async_store.upsert(points)
        return [p.id for p in points]

    # ------------------------------------------------------------------ delete / get
    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete every node of a source document."""
        self._kb.store.delete_documents([ref_doc_id])

    async def adelete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        await self._kb.async_store.delete_documents([ref_doc_id])

    def delete_nodes(self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None, **kw: Any) -> None:
        """Delete nodes by id and/or metadata filter."""
        flt = _ids_and_filters(node_ids, filters)
        if flt is not None:
            self._kb.store.delete(flt)

    async def adelete_nodes(self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None, **kw: Any) -> None:
        flt = _ids_and_filters(node_ids, filters)
        if flt is not None:
            await self._kb.async_store.delete(flt)

    def get_nodes(self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None) -> list[BaseNode]:
        """Nodes by id and/or metadata filter."""
        flt = _ids_and_filters(node_ids, filters)
        nodes: list[BaseNode] = []
        offset = None
        while True:
            page, offset = self._kb.store.scroll(filter=flt, limit=256, offset=offset)
            nodes.extend(hit_to_node(p.id, p.payload) for p in page)
            if offset is None:
                return nodes

    async def aget_nodes(self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None) -> list[BaseNode]:
        return await asyncio.to_thread(self.get_nodes, node_ids, filters)

    def clear(self) -> None:
        """Delete every point of the collection (the collection itself stays)."""
        self._kb.store.ensure_collection(recreate=True)

    async def aclear(self) -> None:
        await self._kb.async_store.ensure_collection(recreate=True)

    # ------------------------------------------------------------------ query
    def _plan(self, query: VectorStoreQuery) -> tuple[Any, Any, int, HybridConfig, models.Filter | None]:
        mode = _MODES.get(query.mode)
        if mode is None:
            raise ConfigError(
                f"vector_store_query_mode={query.mode.value!r} is not supported; use 'default', 'sparse' or 'hybrid'"
            )
        hybrid = self._kb.hybrid.override(mode=mode)
        if query.alpha is not None and mode == "hybrid":
            if hybrid.fusion == "dbsf":
                raise ConfigError("alpha weights the branches, which DBSF fusion does not take; use fusion 'rrf' or 'weighted'")
            hybrid = replace(hybrid, dense_weight=float(query.alpha), sparse_weight=1.0 - float(query.alpha))
        enc = self._kb.encoder
        dense, sparse = query.query_embedding, None
        if mode != "dense" or dense is None:
            if not query.query_str:
                raise ConfigError(f"a {mode} query needs query_str (the sparse half is computed from the text)")
            out = enc.encode([query.query_str], role="query", return_sparse=mode != "dense")
            sparse = out.sparse[0] if out.sparse else None
            if dense is None:
                dense = out.dense[0]
        top_k = (query.hybrid_top_k if mode == "hybrid" else query.sparse_top_k if mode == "sparse" else None) or query.similarity_top_k
        flt = _ids_and_filters(query.node_ids, query.filters, doc_ids=query.doc_ids)
        return dense, sparse, top_k, hybrid, flt

    @staticmethod
    def _result(hits: list[Any]) -> VectorStoreQueryResult:
        return VectorStoreQueryResult(
            nodes=[hit_to_node(h.id, h.payload) for h in hits],
            similarities=[h.score for h in hits],
            ids=[h.id for h in hits],
        )

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """Dense, sparse or hybrid search in one Qdrant request."""
        dense, sparse, top_k, hybrid, flt = self._plan(query)
        return self._result(self._kb.store.query(dense, sparse, top_k=top_k, hybrid=hybrid, filter=flt))

    async def aquery(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """Async twin of :meth:`query` (the query encoding runs in a thread when needed)."""
        dense, sparse, top_k, hybrid, flt = await asyncio.to_thread(self._plan, query)
        return self._result(await self._kb.async_store.query(dense, sparse, top_k=top_k, hybrid=hybrid, filter=flt))


def _node_point_id(node: BaseNode) -> str:
    """Deterministic point id: document id + start offset where known, else the node id."""
    start = getattr(node, "start_char_idx", None)
    if node.ref_doc_id and start is not None:
        return point_id(node.ref_doc_id, int(start))
    try:
        return str(uuid.UUID(node.node_id))
    except ValueError:
        return str(uuid.uuid5(GTE_RAG_NAMESPACE, node.node_id))


def _ids_and_filters(
    node_ids: list[str] | None, filters: MetadataFilters | None, *, doc_ids: list[str] | None = None
) -> models.Filter | None:
    must: list[Any] = []
    if node_ids:
        must.append(models.HasIdCondition(has_id=[str(uuid.UUID(i)) if _is_uuid(i) else str(uuid.uuid5(GTE_RAG_NAMESPACE, i)) for i in node_ids]))
    if doc_ids:
        must.append(models.FieldCondition(key="doc_id", match=models.MatchAny(any=list(doc_ids))))
    translated = to_qdrant_filter(filters)
    if translated is not None:
        must.append(translated)
    if not must:
        return None
    return must[0] if len(must) == 1 and isinstance(must[0], models.Filter) else models.Filter(must=must)


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
