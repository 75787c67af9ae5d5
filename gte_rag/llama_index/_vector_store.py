"""GteVectorStore: a LlamaIndex vector store on a gte_rag knowledge base (Qdrant).

The adapter only converts: nodes to :class:`~gte_rag.kb.ChunkRecord` for the knowledge
base's one write path, ``VectorStoreQuery`` to one :meth:`~gte_rag.KnowledgeBase.search`
call, stored payloads back to nodes. Ids, payloads, vectors, alpha, filters and fusion are
the core's business.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, cast

from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.schema import BaseNode, MetadataMode
from llama_index.core.vector_stores.types import (
    BasePydanticVectorStore,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
    VectorStoreQueryResult,
)
from qdrant_client import models

from ..errors import ConfigError
from ..kb import ChunkRecord, KnowledgeBase
from ..kb._ingest import WRITE_PATH_FIELDS
from ..qdrant import SearchHit, StoredPoint, is_document_point, node_point_id
from ..qdrant._points import RESERVED_PAYLOAD_KEYS
from ..embed import GteEncoder
from ..remote import RemoteEncoder
from ._embedding import GteEmbedding
from ._remote_embedding import GteRemoteEmbedding
from ._filters import to_qdrant_filter
from ._nodes import hit_to_node

__all__ = ["GteVectorStore"]

_MODES = {
    VectorStoreQueryMode.DEFAULT: "dense",
    VectorStoreQueryMode.SPARSE: "sparse",
    VectorStoreQueryMode.HYBRID: "hybrid",
}
_PAGE = 256
_TOP_LEVEL_TAKEN = RESERVED_PAYLOAD_KEYS | set(WRITE_PATH_FIELDS)


def node_to_record(node: BaseNode) -> ChunkRecord:
    """The core record of a LlamaIndex node: stored under its own id, text and all."""
    node_dict = node.to_dict()
    node_dict["embedding"] = None  # the vector lives in Qdrant, not twice in the payload
    # keys the payload layout uses itself stay in the node JSON only (as the stock store does)
    metadata = {k: v for k, v in (node.metadata or {}).items() if k not in _TOP_LEVEL_TAKEN}
    return ChunkRecord(
        doc_id=node.ref_doc_id or node.node_id,
        text=node.get_content(metadata_mode=MetadataMode.NONE),
        node_id=node.node_id,
        metadata=metadata,
        embed_input=node.get_content(metadata_mode=MetadataMode.EMBED),
        dense=node.embedding,
        node=node_dict,
        node_type=node.class_name(),
    )


class GteVectorStore(BasePydanticVectorStore):
    """LlamaIndex vector store whose sparse half comes from the dense model's own forward pass.

    Use it with ``VectorStoreIndex`` and a :class:`GteEmbedding` that shares the knowledge
    base's encoder: the index computes dense vectors through the embedding, and ``add``
    takes the sparse vectors of the same texts from the encoder's cache (no second pass).
    Hybrid queries (``vector_store_query_mode="hybrid"``) are fused inside Qdrant.

    Nodes are stored under their own ``node_id`` (a UUID as is, any other string under a
    deterministic uuid5, the original kept), and every read returns that id. The payload is
    LlamaIndex's own layout, so the stock ``QdrantVectorStore`` reads the collection too.

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
    flat_metadata: bool = False

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
    def embed_model(self) -> GteEmbedding | GteRemoteEmbedding:
        """A :class:`GteEmbedding` sharing this store's encoder (pass it to ``VectorStoreIndex``);
        a :class:`GteRemoteEmbedding` when the knowledge base embeds through a service.

        It embeds empty or whitespace-only nodes as the model does (``on_empty="encode"``),
        so one empty node does not abort an ingest; the store keeps them under their ids.
        """
        encoder = self._kb.encoder
        if isinstance(encoder, RemoteEncoder):
            return GteRemoteEmbedding(encoder=encoder, on_empty="encode")
        return GteEmbedding.from_encoder(cast("GteEncoder", encoder), on_empty="encode")

    # ------------------------------------------------------------------ add
    def add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> list[str]:
        """Upsert nodes under their own ids; returns exactly those ids, in order."""
        return self._kb.write([node_to_record(n) for n in nodes])

    async def async_add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> list[str]:
        """Async twin of :meth:`add`: encoding in a thread, the upsert through the async store."""
        return await self._kb.awrite([node_to_record(n) for n in nodes])

    # ------------------------------------------------------------------ delete / get
    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete every node of a source document."""
        self._kb.delete_documents([ref_doc_id])

    async def adelete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Async twin of :meth:`delete`."""
        await self._kb.adelete_documents([ref_doc_id])

    def delete_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None, **delete_kwargs: Any
    ) -> None:
        """Delete the nodes with these ids and/or matching these filters (nothing when neither is given)."""
        flt = _selection(node_ids, filters)
        if flt is not None:
            self._kb.delete(flt)

    async def adelete_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None, **delete_kwargs: Any
    ) -> None:
        """Async twin of :meth:`delete_nodes`."""
        flt = _selection(node_ids, filters)
        if flt is not None:
            await self._kb.adelete(flt)

    def get_nodes(self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None) -> list[BaseNode]:
        """Nodes by id (in the order asked) and/or by metadata filter (never a long document's document point)."""
        if node_ids is not None and filters is None:
            return _ordered_nodes(node_ids, self._kb.store.retrieve([node_point_id(i) for i in node_ids]))
        flt = KnowledgeBase.chunk_filter(_selection(node_ids, filters))
        nodes: list[BaseNode] = []
        offset = None
        while True:
            page, offset = self._kb.store.scroll(filter=flt, limit=_PAGE, offset=offset)
            nodes.extend(hit_to_node(p.id, p.payload) for p in page)
            if offset is None:
                return nodes

    async def aget_nodes(self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None) -> list[BaseNode]:
        """Async twin of :meth:`get_nodes`."""
        store = self._kb.async_store
        if node_ids is not None and filters is None:
            return _ordered_nodes(node_ids, await store.retrieve([node_point_id(i) for i in node_ids]))
        flt = KnowledgeBase.chunk_filter(_selection(node_ids, filters))
        nodes: list[BaseNode] = []
        offset = None
        while True:
            page, offset = await store.scroll(filter=flt, limit=_PAGE, offset=offset)
            nodes.extend(hit_to_node(p.id, p.payload) for p in page)
            if offset is None:
                return nodes

    def clear(self) -> None:
        """Delete every node (the collection and its recorded settings stay)."""
        self._kb.clear()

    async def aclear(self) -> None:
        """Async twin of :meth:`clear`."""
        await self._kb.aclear()

    # ------------------------------------------------------------------ query
    @staticmethod
    def _search_args(query: VectorStoreQuery) -> dict[str, Any]:
        mode = _MODES.get(query.mode)
        if mode is None:
            raise ConfigError(
                f"vector_store_query_mode={query.mode.value!r} is not supported; use 'default', 'sparse' or 'hybrid'"
            )
        top_k = (query.hybrid_top_k if mode == "hybrid" else query.sparse_top_k if mode == "sparse" else None)
        return {
            "texts": [query.query_str],
            "dense": [query.query_embedding],
            "top_k": top_k or query.similarity_top_k,
            "filter": to_qdrant_filter(query.filters),
            "mode": mode,
            "alpha": query.alpha if mode == "hybrid" else None,
            # LlamaIndex passes [] for "no restriction" (VectorStoreIndex.as_retriever with a text-storing store)
            "node_ids": query.node_ids or None,
            "doc_ids": query.doc_ids or None,
        }

    @staticmethod
    def _result(hits: list[SearchHit]) -> VectorStoreQueryResult:
        nodes = [hit_to_node(h.id, h.payload) for h in hits]
        return VectorStoreQueryResult(nodes=nodes, similarities=[h.score for h in hits], ids=[n.node_id for n in nodes])

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """Dense, sparse or hybrid search in one Qdrant request."""
        return self._result(self._kb.search(**self._search_args(query))[0])

    async def aquery(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """Async twin of :meth:`query` (the query encoding runs in a thread when needed)."""
        return self._result((await self._kb.asearch(**self._search_args(query)))[0])


def _selection(node_ids: list[str] | None, filters: MetadataFilters | None) -> models.Filter | None:
    if node_ids is None and filters is None:
        return None
    return KnowledgeBase.id_filter(to_qdrant_filter(filters), node_ids=node_ids)


def _ordered_nodes(node_ids: Sequence[str], found: list[StoredPoint]) -> list[BaseNode]:
    by_point = {p.id: p for p in found if not is_document_point(p.payload)}
    out = []
    for node_id in node_ids:
        point = by_point.get(node_point_id(node_id))
        if point is not None:
            out.append(hit_to_node(point.id, point.payload))
    return out
