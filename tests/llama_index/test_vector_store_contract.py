"""GteVectorStore under LlamaIndex's documented contract, on both embedded engines.

Tested the way LlamaIndex's own vector-store suites test theirs: ids round-trip, get,
delete, clear, node-id restriction, async twins, VectorStoreIndex insert / delete_ref_doc,
and the stock ``QdrantVectorStore`` reading what we write.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from llama_index.core import Document, StorageContext, VectorStoreIndex
from llama_index.core.node_parser import HierarchicalNodeParser, SentenceSplitter
from llama_index.core.schema import BaseNode, TextNode
from llama_index.core.vector_stores.types import (
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)

from gte_rag.embed import GteEncoder
from gte_rag.kb import KnowledgeBase
from gte_rag.llama_index import GteEmbedding, GteVectorStore

TEXT = (
    "Plants create oxygen through photosynthesis in their green leaves. "
    "Rust is a systems programming language focused on memory safety. "
    "The Eiffel tower stands in Paris, the capital of France. "
    "Rivers and mountains shape the land over many years. "
) * 3


@pytest.fixture(scope="module")
def encoder(tiny_embedder: Path) -> GteEncoder:
    return GteEncoder(tiny_embedder, device="cpu", dtype="float32")


SERVER_URL = os.environ.get("GTE_RAG_QDRANT_URL")


@pytest.fixture(params=[
    "edge",
    "local",
    pytest.param("server", marks=[pytest.mark.qdrant_server,
                                  pytest.mark.skipif(not SERVER_URL, reason="GTE_RAG_QDRANT_URL is not set")]),
])
def store(request: pytest.FixtureRequest, encoder: GteEncoder, tmp_path: Path) -> Any:
    location = {"edge": tmp_path / "kb", "local": ":memory:", "server": SERVER_URL}[request.param]
    collection = f"t{uuid.uuid4().hex[:10]}"
    with KnowledgeBase(location, collection=collection, encoder=encoder) as kb:
        yield GteVectorStore(knowledge_base=kb)
        if request.param == "server":
            kb.store.backend.drop_collection()


def _embedded(store: GteVectorStore, nodes: list[BaseNode]) -> list[BaseNode]:
    emb = store.embed_model
    vectors = emb.get_text_embedding_batch([n.get_content(metadata_mode="embed") for n in nodes])  # type: ignore[arg-type]
    for n, v in zip(nodes, vectors):
        n.embedding = v
    return nodes


def _split(doc_id: str = "doc-1") -> list[BaseNode]:
    doc = Document(text=TEXT, doc_id=doc_id, metadata={"topic": "mixed"})
    return SentenceSplitter(chunk_size=40, chunk_overlap=5).get_nodes_from_documents([doc])


def test_add_returns_the_nodes_ids_and_reads_give_them_back(store: GteVectorStore) -> None:
    nodes = _embedded(store, _split())
    assert len(nodes) > 3 and all(n.start_char_idx is not None for n in nodes)
    ids = store.add(nodes)
    assert ids == [n.node_id for n in nodes]
    got = store.get_nodes(node_ids=[nodes[2].node_id, nodes[0].node_id])
    assert [n.node_id for n in got] == [nodes[2].node_id, nodes[0].node_id]
    assert got[0].get_content() == nodes[2].get_content() and got[0].ref_doc_id == "doc-1"
    assert got[0].metadata["topic"] == "mixed"
    # the query result speaks node ids, and node_ids restricts the search
    q = VectorStoreQuery(query_str="Eiffel tower Paris", query_embedding=store.embed_model.get_query_embedding("Eiffel tower Paris"),
                         similarity_top_k=10, node_ids=[nodes[1].node_id, nodes[3].node_id])
    res = store.query(q)
    assert set(res.ids or []) == {nodes[1].node_id, nodes[3].node_id}
    assert [n.node_id for n in res.nodes or []] == res.ids
    store.delete_nodes([nodes[0].node_id])
    assert store.get_nodes(node_ids=[nodes[0].node_id]) == []
    assert len(store.get_nodes(filters=MetadataFilters(filters=[MetadataFilter(key="topic", value="mixed")]))) == len(nodes) - 1


def test_non_uuid_ids_round_trip(store: GteVectorStore) -> None:
    nodes = _embedded(store, [
        TextNode(id_="alpha", text="Plants create oxygen."),
        TextNode(id_="beta/2", text="Rust is a systems language."),
    ])
    assert store.add(nodes) == ["alpha", "beta/2"]
    assert [n.node_id for n in store.get_nodes(node_ids=["beta/2", "alpha"])] == ["beta/2", "alpha"]
    res = store.query(VectorStoreQuery(query_str="Rust language", similarity_top_k=2, mode=VectorStoreQueryMode.HYBRID))
    assert set(res.ids or []) == {"alpha", "beta/2"}
    store.delete_nodes(node_ids=["alpha"])
    assert [n.node_id for n in store.get_nodes(node_ids=["alpha", "beta/2"])] == ["beta/2"]


def test_a_parent_and_its_first_child_do_not_overwrite_each_other(store: GteVectorStore) -> None:
    doc = Document(text=TEXT * 2, doc_id="h")
    nodes = HierarchicalNodeParser.from_defaults(chunk_sizes=[128, 32]).get_nodes_from_documents([doc])
    same_start = {}
    for n in nodes:
        same_start.setdefault(n.start_char_idx, []).append(n)
    assert any(len(group) > 1 for group in same_start.values())  # the case that used to collide
    store.add(_embedded(store, nodes))
    assert store.knowledge_base.count() == len(nodes)
    assert {n.node_id for n in store.get_nodes(node_ids=[n.node_id for n in nodes])} == {n.node_id for n in nodes}


def test_delete_ref_doc_clear_and_index_insert(store: GteVectorStore) -> None:
    ctx = StorageContext.from_defaults(vector_store=store)
    docs = [Document(text="Plants create oxygen.", doc_id="d1"), Document(text="Rust is memory safe.", doc_id="d2")]
    index = VectorStoreIndex.from_documents(docs, storage_context=ctx, embed_model=store.embed_model)
    index.insert(Document(text="The Eiffel tower stands in Paris.", doc_id="d3"))
    assert store.knowledge_base.count() == 3
    top = index.as_retriever(similarity_top_k=1).retrieve("Eiffel tower Paris")[0]
    assert top.node.ref_doc_id == "d3"
    assert [n.node_id for n in store.get_nodes(node_ids=[top.node.node_id])] == [top.node.node_id]
    index.delete_ref_doc("d1")
    assert {n.ref_doc_id for n in store.get_nodes(filters=MetadataFilters(filters=[]))} == {"d2", "d3"}
    store.delete("d2")
    assert {n.ref_doc_id for n in store.get_nodes(filters=MetadataFilters(filters=[]))} == {"d3"}
    store.clear()
    assert store.knowledge_base.count() == 0
    store.add(_embedded(store, [TextNode(id_=str(uuid.uuid4()), text="after clear")]))  # still writable
    assert store.knowledge_base.count() == 1


def test_async_twins(store: GteVectorStore) -> None:
    async def run() -> None:
        nodes = _embedded(store, _split("adoc"))
        assert await store.async_add(nodes) == [n.node_id for n in nodes]
        got = await store.aget_nodes(node_ids=[nodes[1].node_id])
        assert [n.node_id for n in got] == [nodes[1].node_id]
        res = await store.aquery(VectorStoreQuery(query_str="Rust memory", similarity_top_k=3, mode=VectorStoreQueryMode.HYBRID,
                                                  node_ids=[n.node_id for n in nodes[:2]]))
        assert set(res.ids or []) <= {n.node_id for n in nodes[:2]} and res.ids
        await store.adelete_nodes([nodes[0].node_id])
        assert await store.aget_nodes(node_ids=[nodes[0].node_id]) == []
        await store.adelete("adoc")
        assert store.knowledge_base.count() == 0
        await store.async_add(nodes[:1])
        await store.aclear()
        assert store.knowledge_base.count() == 0

    asyncio.run(run())


def test_empty_nodes_do_not_abort_an_ingest(store: GteVectorStore) -> None:
    # LlamaIndex drops nodes whose content is exactly "" itself; whitespace reaches the embedding
    nodes = [TextNode(id_="a", text="Plants create oxygen."), TextNode(id_="b", text="   "), TextNode(id_="c", text="\n")]
    VectorStoreIndex(nodes, storage_context=StorageContext.from_defaults(vector_store=store), embed_model=store.embed_model)
    assert [n.node_id for n in store.get_nodes(node_ids=["a", "b", "c"])] == ["a", "b", "c"]
    res = store.query(VectorStoreQuery(query_str="plants oxygen", similarity_top_k=3, mode=VectorStoreQueryMode.HYBRID))
    assert res.ids and res.ids[0] == "a"


def test_the_stock_qdrant_store_reads_what_we_write(encoder: GteEncoder, tmp_path: Path) -> None:
    from llama_index.vector_stores.qdrant import QdrantVectorStore

    with KnowledgeBase(":memory:", encoder=encoder, collection="shared") as kb:
        ours = GteVectorStore(knowledge_base=kb)
        nodes = _embedded(ours, _split())
        ours.add(nodes)
        kb.add_texts(["Chunks from the knowledge base are readable too."], ids=["kb-doc"], metadatas=[{"lang": "en"}])
        stock = QdrantVectorStore(collection_name="shared", client=kb.store.backend.client,
                                  dense_vector_name="dense", sparse_vector_name="sparse")
        read = stock.get_nodes(node_ids=[nodes[1].node_id])
        assert [n.node_id for n in read] == [nodes[1].node_id]
        assert read[0].get_content() == nodes[1].get_content() and read[0].get_content()
        assert read[0].metadata == nodes[1].metadata and read[0].ref_doc_id == "doc-1"
        q = "Chunks from the knowledge base"
        res = stock.query(VectorStoreQuery(query_embedding=ours.embed_model.get_query_embedding(q), similarity_top_k=1))
        assert res.nodes and res.nodes[0].get_content() == "Chunks from the knowledge base are readable too."
        assert res.nodes[0].metadata == {"lang": "en"} and res.nodes[0].ref_doc_id == "kb-doc"


def test_the_stock_parser_reads_our_edge_payloads(encoder: GteEncoder, tmp_path: Path) -> None:
    from llama_index.vector_stores.qdrant import QdrantVectorStore
    from qdrant_client import QdrantClient
    from qdrant_client.models import Record

    with KnowledgeBase(tmp_path / "kb", encoder=encoder) as kb:
        ours = GteVectorStore(knowledge_base=kb)
        nodes = _embedded(ours, _split())
        ours.add(nodes)
        page, _ = kb.store.scroll(limit=100)
    stock = QdrantVectorStore(collection_name="unused", client=QdrantClient(":memory:"))
    parsed = stock.parse_to_query_result([Record(id=p.id, payload=p.payload) for p in page]).nodes or []
    by_id = {n.node_id: n for n in parsed}
    assert set(by_id) == {n.node_id for n in nodes}
    for n in nodes:
        assert by_id[n.node_id].get_content() == n.get_content() and by_id[n.node_id].metadata == n.metadata


def test_node_metadata_may_use_the_write_paths_names(store: GteVectorStore) -> None:
    import datetime

    meta = {"_source": "web", "_content_hash": "x", "doc_id": "mine", "date": datetime.date(2024, 1, 2)}
    store.add(_embedded(store, [TextNode(id_="n1", text="Plants create oxygen.", metadata=meta)]))
    node = store.get_nodes(node_ids=["n1"])[0]
    assert node.metadata["_source"] == "web" and node.metadata["doc_id"] == "mine"
    assert node.metadata["date"] == "2024-01-02"
