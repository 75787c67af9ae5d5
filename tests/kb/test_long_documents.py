"""Long documents in the knowledge base: chunk + document points, groups, MaxSim, two-stage, neighbours."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from qdrant_client import models

from gte_rag.embed import GteEncoder
from gte_rag.errors import CollectionMismatchError, ConfigError
from gte_rag.kb import DocumentHit, KnowledgeBase, SourceDocument
from gte_rag.qdrant import document_point_id, is_document_point, point_id

SERVER_URL = os.environ.get("GTE_RAG_QDRANT_URL")
LOCATIONS = [
    "edge",
    "local",
    pytest.param("server", marks=[pytest.mark.qdrant_server,
                                  pytest.mark.skipif(not SERVER_URL, reason="GTE_RAG_QDRANT_URL is not set")]),
]
OPTIONS = {"chunk_tokens": 8}

LONG = (
    "Plants create oxygen through photosynthesis. Green plants turn light into chemical energy in their leaves. "
    "Chlorophyll absorbs sunlight and fixes carbon dioxide into sugars. Forests and algae keep the atmosphere "
    "breathable. Bees pollinate flowers and make honey from nectar. The farmer grows wheat, corn and potatoes."
)
LONG2 = (
    "Rust is a systems programming language that prevents memory errors. The borrow checker ensures that "
    "references never outlive their data. Ownership rules in Rust stop data races at compile time. Python is a "
    "programming language that is easy to read. A function takes some input and returns an output."
)
LONG3 = (
    "The Eiffel Tower is in Paris, the capital of France. Paris is a large city on the river Seine in France. "
    "Berlin is the capital of Germany and Rome is the capital of Italy. Madrid is the capital of Spain, and "
    "London is the capital of England. The museum shows paintings, statues and old maps."
)
SHORT = "Water boils at one hundred degrees."
DOCS = [SourceDocument("plants", LONG, {"topic": "bio"}), SourceDocument("rust", LONG2, {"topic": "cs"}),
        SourceDocument("paris", LONG3, {"topic": "geo"}), SourceDocument("water", SHORT, {"topic": "bio"})]
QUERIES = ["how do plants make oxygen", "memory safety in rust", "the capital of france", "water boils"]


@pytest.fixture(scope="module")
def encoder(tiny_embedder: Path) -> GteEncoder:
    return GteEncoder(tiny_embedder, device="cpu", dtype="float32", max_length=32)


@pytest.fixture
def collection() -> Any:
    name = f"t{uuid.uuid4().hex[:10]}"
    yield name
    if SERVER_URL:
        from qdrant_client import QdrantClient

        client = QdrantClient(url=SERVER_URL)
        if client.collection_exists(name):
            client.delete_collection(name)
        client.close()


@pytest.fixture(params=LOCATIONS)
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    return {"edge": tmp_path / "kb", "local": ":memory:", "server": SERVER_URL}[request.param]


def _all_points(kb: KnowledgeBase) -> list[Any]:
    out: list[Any] = []
    offset = None
    while True:
        page, offset = kb.store.scroll(limit=100, offset=offset)
        out.extend(page)
        if offset is None:
            return out


def _doc_points(kb: KnowledgeBase, doc_id: str | None = None) -> list[Any]:
    return [p for p in _all_points(kb) if is_document_point(p.payload) and doc_id in (None, p.payload["doc_id"])]


def _kb(location: Any, collection: str, encoder: GteEncoder, **kwargs: Any) -> KnowledgeBase:
    kwargs.setdefault("long_doc_options", dict(OPTIONS))
    return KnowledgeBase(location, collection=collection, encoder=encoder, **kwargs)


def test_long_documents_get_chunk_and_document_points(location: Any, collection: str, encoder: GteEncoder) -> None:
    from gte_rag.llama_index import GteVectorStore

    with _kb(location, collection, encoder) as kb:
        assert kb.layout.stores_long_documents and kb.long_doc is not None
        stats = kb.add_documents(DOCS)
        assert stats.added == 4
        points = _all_points(kb)
        chunks = [p for p in points if not is_document_point(p.payload)]
        docs = [p for p in points if is_document_point(p.payload)]
        assert kb.count() == len(chunks) == stats.chunks
        # one document point each, the short document's too (its one chunk vector)
        assert sorted(p.payload["doc_id"] for p in docs) == ["paris", "plants", "rust", "water"]
        assert all(p.payload["parts"] == 1 and p.payload["topic"] for p in docs)
        texts = {d.id: d.text for d in DOCS}
        plants = sorted((p for p in chunks if p.payload["doc_id"] == "plants"), key=lambda p: p.payload["chunk_index"])
        assert len(plants) >= 4
        for p in chunks:
            assert texts[p.payload["doc_id"]][p.payload["start"]:p.payload["end"]] == p.payload["text"]
            assert '"start_char_idx": %d' % p.payload["start"] in p.payload["_node_content"]
        assert [p.id for p in plants] == [point_id("plants", i) for i in range(len(plants))]
        assert docs[0].payload["chunk_end"] - docs[0].payload["chunk_start"] == docs[0].payload["_chunk_count"]
        # chunk searches never meet a document point
        for mode in ("dense", "sparse", "hybrid"):
            for q in QUERIES:
                hits = kb.query(q, top_k=100, mode=mode)
                assert hits and not any(is_document_point(h.payload) for h in hits)
        # nor does the LlamaIndex store
        store = GteVectorStore(knowledge_base=kb)
        nodes = store.get_nodes()
        assert len(nodes) == len(chunks)
        assert store.get_nodes(node_ids=[document_point_id("plants")]) == []
        filtered = store.get_nodes(filters=None, node_ids=[p.id for p in plants[:2]])
        assert [n.node_id for n in filtered] == [p.id for p in plants[:2]]
        kb.delete_documents(["plants"])
        assert not _doc_points(kb, "plants") and kb.count(KnowledgeBase.id_filter(doc_ids=["plants"])) == 0
        assert _doc_points(kb, "rust")


def test_a_document_over_the_cap_is_split_and_found_once(location: Any, collection: str, encoder: GteEncoder) -> None:
    with _kb(location, collection, encoder, long_doc_options={**OPTIONS, "max_multivector_floats": 2 * 32}) as kb:
        kb.add_documents(DOCS)
        parts = sorted(_doc_points(kb, "plants"), key=lambda p: p.payload["part"])
        n_chunks = kb.count(KnowledgeBase.id_filter(doc_ids=["plants"]))
        assert len(parts) == (n_chunks + 1) // 2 >= 2
        assert [p.id for p in parts] == [document_point_id("plants", k) for k in range(len(parts))]
        assert [(p.payload["chunk_start"], p.payload["chunk_end"]) for p in parts][-1][1] == n_chunks
        for strategy in ("maxsim", "two_stage"):
            found = kb.search_documents(QUERIES[0], top_k=10, strategy=strategy)  # type: ignore[arg-type]
            ids = [d.doc_id for d in found]
            assert len(ids) == len(set(ids)) == 4  # several parts, one document
        # MaxSim of one query row = the best chunk's cosine, over all parts
        best = kb.query(QUERIES[0], top_k=1, mode="dense", filter=KnowledgeBase.id_filter(doc_ids=["plants"]))[0]
        scores = {d.doc_id: d.score for d in kb.search_documents(QUERIES[0], top_k=4, strategy="maxsim")}
        assert scores["plants"] == pytest.approx(best.score, abs=1e-4)


def test_groups_on_edge_equal_groups_in_local_mode(tmp_path: Path, encoder: GteEncoder) -> None:
    # late chunking: the tiny random model embeds each short chunk alone at cosine ~1.0 to every
    # query (their order is float noise, which the engines break differently); the windows'
    # context spreads the late vectors enough for an order both engines must agree on
    late = {"long_docs": "late"}
    with _kb(tmp_path / "e", "g", encoder, **late) as edge, _kb(":memory:", "g", encoder, **late) as local:
        edge.add_documents(DOCS)
        local.add_documents(DOCS)
        for q in QUERIES:
            for mode, fusion in (("dense", None), ("sparse", None), ("hybrid", "rrf"), ("hybrid", "dbsf")):
                for top_k, per_doc in ((2, 2), (4, 3), (10, 1)):
                    a = edge.search_documents(q, top_k=top_k, chunks_per_doc=per_doc, mode=mode, fusion=fusion)
                    b = local.search_documents(q, top_k=top_k, chunks_per_doc=per_doc, mode=mode, fusion=fusion)
                    assert [d.doc_id for d in a] == [d.doc_id for d in b], (q, mode, fusion)
                    assert [[h.id for h in d.chunks] for d in a] == [[h.id for h in d.chunks] for d in b]
                    # DBSF normalises each branch by its score spread, which the two engines compute
                    # slightly differently: a plain (ungrouped) DBSF query differs by up to ~0.006 too.
                    # The tiny model's dense cosines are all ~1.0, so float noise can swap two ranks
                    # of the dense branch: an RRF term moves by 1/67 - 1/68 (plain queries as well)
                    tol = {"dbsf": 1e-2, "rrf": 5e-4}.get(fusion or "", 1e-4)
                    assert [d.score for d in a] == pytest.approx([d.score for d in b], abs=tol)
                    assert all(1 <= len(d.chunks) <= per_doc for d in a)
                    assert all(h.payload["doc_id"] == d.doc_id for d in a for h in d.chunks)


def test_groups_match_a_plain_search(location: Any, collection: str, encoder: GteEncoder) -> None:
    with _kb(location, collection, encoder) as kb:
        kb.add_documents(DOCS)
        for q in QUERIES:
            hits = kb.query(q, top_k=100, mode="dense")
            groups = kb.search_documents(q, top_k=3, chunks_per_doc=2, mode="dense")
            firsts: dict[str, list[str]] = {}
            for h in hits:
                firsts.setdefault(h.payload["doc_id"], []).append(h.id)
            assert [d.doc_id for d in groups] == list(firsts)[:3]
            assert [[h.id for h in d.chunks] for d in groups] == [firsts[d.doc_id][:2] for d in groups]


def test_maxsim_and_two_stage(location: Any, collection: str, encoder: GteEncoder) -> None:
    with _kb(location, collection, encoder) as kb:
        kb.add_documents(DOCS)
        docs = kb.search_documents(QUERIES[1], top_k=4, strategy="maxsim")
        # every document has a document point, the one that fits one window too
        assert len(docs) == 4 and all(not d.chunks for d in docs) and {d.doc_id for d in docs} == {
            "plants", "rust", "paris", "water"}
        assert [d.score for d in docs] == sorted((d.score for d in docs), reverse=True)
        for d in docs:  # each document scores its best chunk's cosine
            best = kb.query(QUERIES[1], top_k=1, mode="dense", filter=KnowledgeBase.id_filter(doc_ids=[d.doc_id]))[0]
            assert d.score == pytest.approx(best.score, abs=1e-4)
        two = kb.search_documents(QUERIES[1], top_k=2, strategy="two_stage", chunks_per_doc=2)
        assert [d.doc_id for d in two] == [d.doc_id for d in docs[:2]]
        for d in two:
            assert 1 <= len(d.chunks) <= 2 and all(h.payload["doc_id"] == d.doc_id for h in d.chunks)
            inside = kb.query(QUERIES[1], top_k=2, filter=KnowledgeBase.id_filter(doc_ids=[d.doc_id]))
            assert [h.id for h in d.chunks] == [h.id for h in inside]
        flt = models.Filter(must=[models.FieldCondition(key="topic", match=models.MatchValue(value="geo"))])
        assert [d.doc_id for d in kb.search_documents(QUERIES[1], strategy="two_stage", filter=flt)] == ["paris"]


def test_neighbours(location: Any, collection: str, encoder: GteEncoder) -> None:
    with _kb(location, collection, encoder) as kb:
        kb.add_documents(DOCS)
        n = kb.count(KnowledgeBase.id_filter(doc_ids=["plants"]))
        chunk = {i: kb.store.retrieve([point_id("plants", i)])[0] for i in range(n)}
        from gte_rag.qdrant import SearchHit

        hit = lambda i, s: SearchHit(chunk[i].id, s, chunk[i].payload)  # noqa: E731
        water = kb.query(SHORT, top_k=1, filter=KnowledgeBase.id_filter(doc_ids=["water"]))[0]
        out = kb.neighbours([hit(2, 0.9), water, hit(3, 0.5), hit(0, 0.1)], window=1)
        assert [h.payload.get("chunk_index") for h in out] == [0, 1, 2, 3, 4, 0]
        assert [h.payload["doc_id"] for h in out] == ["plants"] * 5 + ["water"]
        assert len({h.id for h in out}) == len(out)
        scores = {h.payload["chunk_index"]: h.score for h in out if h.payload["doc_id"] == "plants"}
        assert scores == {0: 0.1, 1: 0.9, 2: 0.9, 3: 0.5, 4: 0.5}
        last = kb.neighbours([hit(n - 1, 1.0)], window=2)
        assert [h.payload["chunk_index"] for h in last] == [n - 3, n - 2, n - 1]
        docs = kb.search_documents(QUERIES[0], top_k=2, chunks_per_doc=1, neighbours=1)
        for d in docs:
            idx = [h.payload["chunk_index"] for h in d.chunks]
            assert idx == sorted(idx) and len(idx) == len(set(idx)) >= 2 or d.doc_id == "water"


def test_reingest_skips_unchanged_and_shrinks_parts(location: Any, collection: str, encoder: GteEncoder) -> None:
    opts = {**OPTIONS, "max_multivector_floats": 2 * 32}
    with _kb(location, collection, encoder, long_doc_options=opts) as kb:
        kb.add_documents(DOCS)
        before = len(_doc_points(kb, "plants"))
        calls: list[int] = []
        orig = encoder.encode
        try:
            encoder.encode = lambda *a, **k: calls.append(1) or orig(*a, **k)  # type: ignore[method-assign]
            again = kb.add_documents(DOCS)
        finally:
            encoder.encode = orig  # type: ignore[method-assign]
        assert (again.unchanged, again.added, again.updated) == (4, 0, 0) and calls == []
        # a lost document part makes the document "changed"
        kb.store.delete(models.Filter(must=[models.HasIdCondition(has_id=[document_point_id("plants", 1)])]))
        assert kb.add_documents(DOCS[:1]).updated == 1 and len(_doc_points(kb, "plants")) == before
        shorter = SourceDocument("plants", LONG[: LONG.index(" Bees")], {"topic": "bio"})
        assert kb.long_doc.exceeds_window(len(encoder.tokenize([shorter.text])[0].ids))  # still long
        stats = kb.add_documents([shorter])
        assert stats.updated == 1
        after = _doc_points(kb, "plants")
        n = kb.count(KnowledgeBase.id_filter(doc_ids=["plants"]))
        assert len(after) == (n + 1) // 2 < before
        assert {p.payload["parts"] for p in after} == {len(after)}
        stored = [p for p in _all_points(kb) if p.payload["doc_id"] == "plants" and not is_document_point(p.payload)]
        assert sorted(p.payload["chunk_index"] for p in stored) == list(range(n))
        assert all(shorter.text[p.payload["start"]:p.payload["end"]] == p.payload["text"] for p in stored)
        # now short enough for one window: one chunk, and one document point holding its vector
        stats = kb.add_documents([SourceDocument("plants", SHORT + " Plants too.", {"topic": "bio"})])
        (point,) = _doc_points(kb, "plants")
        assert stats.updated == 1 and point.id == document_point_id("plants", 0) and point.payload["parts"] == 1
        assert kb.count(KnowledgeBase.id_filter(doc_ids=["plants"])) == 1


def test_reopen_without_model_uses_the_recorded_settings(tmp_path: Path, encoder: GteEncoder) -> None:
    path = tmp_path / "kb"
    opts = {**OPTIONS, "max_multivector_floats": 3 * 32}
    with _kb(path, "c", encoder, long_doc_options=opts) as kb:
        kb.add_documents(DOCS)
        settings = kb.long_doc.settings()
        expected = kb.search_documents(QUERIES[0], strategy="two_stage", top_k=2)
        assert kb.layout.encoder_settings["long_docs"] == {**settings, "max_multivector_floats": 96}
    with KnowledgeBase(path, collection="c", encoder_options={"device": "cpu", "dtype": "float32"}) as kb:
        assert kb.encoder.max_length == 32 and kb.long_doc.settings() == settings and kb.multivector_floats == 96
        got = kb.search_documents(QUERIES[0], strategy="two_stage", top_k=2)
        assert [d.doc_id for d in got] == [d.doc_id for d in expected]
        assert [d.score for d in got] == pytest.approx([d.score for d in expected], abs=1e-5)
        assert kb.add_documents(DOCS).unchanged == 4


def test_collections_without_long_document_vectors(location: Any, collection: str, encoder: GteEncoder) -> None:
    with KnowledgeBase(location, collection=collection, encoder=encoder, long_docs="off") as kb:
        assert not kb.layout.has_multivector and kb.long_doc is None
        kb.add_documents(DOCS)
        assert not _doc_points(kb)  # long documents are chunked by the token chunker
        with pytest.raises(ConfigError, match="strategy='groups'"):
            kb.search_documents(QUERIES[0], strategy="maxsim")
        assert kb.search_documents(QUERIES[0], top_k=2)  # groups work on any collection
    if location == ":memory:":
        return  # nothing persists: each local-mode KnowledgeBase has its own client
    with pytest.raises(CollectionMismatchError) as err:
        KnowledgeBase(location, collection=collection, encoder=encoder, long_docs="late")
    text = str(err.value)
    assert "'multivector'" in text and "'document'" in text and "Fix:" in text and "long_docs=None" in text
    with KnowledgeBase(location, collection=collection, encoder=encoder) as kb:  # follows the collection
        assert kb.long_doc is None and not kb.layout.has_multivector
        assert kb.add_documents(DOCS).unchanged == 4
    with pytest.raises(ConfigError, match="long_docs="):
        KnowledgeBase(location, collection=collection, encoder=encoder, long_docs="sometimes")  # type: ignore[arg-type]


def test_async_twins(location: Any, collection: str, encoder: GteEncoder) -> None:
    async def main() -> None:
        async with _kb(location, collection, encoder) as kb:
            stats = await kb.aadd_documents(DOCS)
            assert stats.added == 4 and _doc_points(kb)
            for strategy in ("groups", "maxsim", "two_stage"):
                sync = kb.search_documents(QUERIES[2], top_k=3, strategy=strategy, neighbours=1)  # type: ignore[arg-type]
                got = await kb.asearch_documents(QUERIES[2], top_k=3, strategy=strategy, neighbours=1)  # type: ignore[arg-type]
                assert all(isinstance(d, DocumentHit) for d in got)
                assert [(d.doc_id, [h.id for h in d.chunks]) for d in got] == [
                    (d.doc_id, [h.id for h in d.chunks]) for d in sync]
                assert [d.score for d in got] == pytest.approx([d.score for d in sync], abs=1e-5)
            hits = kb.query(QUERIES[2], top_k=2)
            assert [h.id for h in await kb.aneighbours(hits)] == [h.id for h in kb.neighbours(hits)]
            assert (await kb.aadd_documents(DOCS)).unchanged == 4

    asyncio.run(main())


def test_a_short_document_has_a_document_point_and_stays_unchanged(
    location: Any, collection: str, encoder: GteEncoder
) -> None:
    with _kb(location, collection, encoder) as kb:
        kb.add_documents([SourceDocument("water", SHORT)])
        (point,) = kb.store.retrieve([document_point_id("water", 0)])
        assert is_document_point(point.payload) and point.payload["parts"] == 1
        (doc,) = kb.search_documents("water boils", strategy="maxsim", top_k=5)
        (chunk,) = kb.query("water boils", top_k=1, mode="dense")
        assert doc.doc_id == "water" and doc.score == pytest.approx(chunk.score, abs=1e-4)
        stats = kb.add_documents([SourceDocument("water", SHORT)])
        assert stats.unchanged == 1
        kb.add_documents([SourceDocument("water", "   ")])  # emptied: its document point goes too
        assert kb.store.retrieve([document_point_id("water", 0)]) == []


def test_other_long_document_settings_on_a_stored_collection_are_refused(tmp_path: Path, encoder: GteEncoder) -> None:
    path = tmp_path / "kb"
    with _kb(path, "c", encoder) as kb:
        kb.add_documents(DOCS)
    with pytest.raises(ConfigError, match="chunk_tokens.*Fix: leave long_docs and long_doc_options out"):
        KnowledgeBase(path, collection="c", encoder=encoder, long_doc_options={"chunk_tokens": 10})
    with pytest.raises(ConfigError, match="mode"):
        KnowledgeBase(path, collection="c", encoder=encoder, long_docs="truncate", long_doc_options=OPTIONS)
    with KnowledgeBase(path, collection="c", encoder=encoder) as kb:  # the recorded settings: nothing re-encoded
        assert kb.add_documents(DOCS).unchanged == 4


@pytest.mark.parametrize("mode", ["truncate", "chunks", "late", "default"])
def test_every_mode_on_every_engine(location: Any, collection: str, encoder: GteEncoder, mode: str) -> None:
    with _kb(location, collection, encoder, long_docs=mode) as kb:
        from gte_rag.longdoc import DEFAULT_LONG_DOC

        assert kb.long_doc is not None
        assert kb.long_doc.settings()["mode"] == (DEFAULT_LONG_DOC["mode"] if mode == "default" else mode)
        kb.add_documents(DOCS)
        assert sorted(p.payload["doc_id"] for p in _all_points(kb) if is_document_point(p.payload)) == sorted(
            d.id for d in DOCS)
        chunks_of_plants = kb.count(KnowledgeBase.id_filter(doc_ids=["plants"]))
        assert chunks_of_plants == 1 if mode == "truncate" else chunks_of_plants > 1
        for strategy in ("groups", "maxsim", "two_stage"):
            found = kb.search_documents(QUERIES[2], top_k=4, strategy=strategy)  # type: ignore[arg-type]
            assert sorted(d.doc_id for d in found) == sorted(d.id for d in DOCS)
            for d in found:
                for h in d.chunks:
                    text = next(x.text for x in DOCS if x.id == d.doc_id)
                    assert text[h.payload["start"]:h.payload["end"]] == h.payload["text"]
        assert kb.add_documents(DOCS).unchanged == len(DOCS)
