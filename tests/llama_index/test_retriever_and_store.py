"""GteHybridRetriever and GteVectorStore inside LlamaIndex pipelines (real embedded Qdrant)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from llama_index.core import Document, StorageContext, VectorStoreIndex
from llama_index.core.vector_stores.types import MetadataFilter, MetadataFilters, VectorStoreQuery, VectorStoreQueryMode

from gte_rag import GteHybridRetriever, GteVectorStore, KnowledgeBase
from gte_rag.embed import GteEncoder
from gte_rag.errors import ConfigError

DOCS = [
    Document(text="Plants create oxygen through photosynthesis in their leaves.", metadata={"topic": "bio"}, doc_id="d1"),
    Document(text="Rust is a systems programming language focused on memory safety.", metadata={"topic": "cs"}, doc_id="d2"),
    Document(text="The Eiffel tower stands in Paris, the capital of France.", metadata={"topic": "geo"}, doc_id="d3"),
]


@pytest.fixture(scope="module")
def encoder(tiny_embedder: Path) -> GteEncoder:
    return GteEncoder(tiny_embedder, device="cpu")


@pytest.fixture(params=["edge", "local"])
def kb(request: pytest.FixtureRequest, encoder: GteEncoder, tmp_path: Path) -> Any:
    location = tmp_path / "kb" if request.param == "edge" else ":memory:"
    with KnowledgeBase(location, encoder=encoder) as base:
        yield base


def test_vector_store_index_uses_one_forward_pass(kb: KnowledgeBase) -> None:
    store = GteVectorStore(knowledge_base=kb)
    kb.encoder.clear_cache()
    calls: list[int] = []
    backbone = getattr(kb.encoder._model, "gte", kb.encoder._model)
    hook = backbone.register_forward_hook(lambda *a: calls.append(1))
    try:
        index = VectorStoreIndex.from_documents(
            DOCS, storage_context=StorageContext.from_defaults(vector_store=store), embed_model=store.embed_model
        )
    finally:
        hook.remove()
    assert len(calls) == 1  # dense and sparse from the same pass
    assert kb.count() == 3
    retriever = index.as_retriever(vector_store_query_mode="hybrid", similarity_top_k=2)
    top = retriever.retrieve("Rust memory safety language")[0]
    assert top.node.ref_doc_id == "d2" and top.node.metadata["topic"] == "cs"
    filtered = index.as_retriever(
        vector_store_query_mode="hybrid", similarity_top_k=3,
        filters=MetadataFilters(filters=[MetadataFilter(key="topic", value="geo")]),
    ).retrieve("Rust memory safety language")
    assert [n.node.metadata["topic"] for n in filtered] == ["geo"]
    # re-adding the same nodes (same node ids) overwrites the same points; LlamaIndex gives
    # every from_documents call fresh node ids, so the stored nodes are what add() writes again
    stored = store.get_nodes(filters=MetadataFilters(filters=[]))
    store.add(stored)
    assert kb.count() == 3
    index.delete_ref_doc("d1")
    assert kb.count() == 2


def test_alpha_zero_is_respected(kb: KnowledgeBase) -> None:
    store = GteVectorStore(knowledge_base=kb)
    VectorStoreIndex.from_documents(DOCS, storage_context=StorageContext.from_defaults(vector_store=store), embed_model=store.embed_model)
    q = "Eiffel tower Paris"
    emb = store.embed_model.get_query_embedding(q)
    sparse_only = store.query(VectorStoreQuery(query_embedding=emb, query_str=q, mode=VectorStoreQueryMode.SPARSE, similarity_top_k=3))
    alpha0 = store.query(VectorStoreQuery(query_embedding=emb, query_str=q, mode=VectorStoreQueryMode.HYBRID, alpha=0.0, similarity_top_k=3))
    assert alpha0.ids[0] == sparse_only.ids[0]
    with pytest.raises(ConfigError, match="not supported"):
        store.query(VectorStoreQuery(query_embedding=emb, query_str=q, mode=VectorStoreQueryMode.MMR))


def test_hybrid_retriever_sync_and_async(kb: KnowledgeBase) -> None:
    kb.add_documents(DOCS)
    for fusion in ("rrf", "dbsf", "weighted"):
        retriever = GteHybridRetriever(knowledge_base=kb, similarity_top_k=2, fusion=fusion)
        nodes = retriever.retrieve("Plants create oxygen")
        assert nodes[0].node.ref_doc_id == "d1" and len(nodes) == 2
        assert nodes[0].score >= nodes[1].score
        anodes = asyncio.run(retriever.aretrieve("Plants create oxygen"))
        assert [n.node.node_id for n in anodes] == [n.node.node_id for n in nodes]
    filtered = GteHybridRetriever(
        knowledge_base=kb, filters=MetadataFilters(filters=[MetadataFilter(key="topic", value="cs")])
    ).retrieve("Plants")
    assert {n.node.metadata["topic"] for n in filtered} == {"cs"}
    with pytest.raises(ConfigError, match="similarity_top_k"):
        GteHybridRetriever(knowledge_base=kb, similarity_top_k=0)
