"""KnowledgeBase + ingest on both embedded engines (real Qdrant, tiny real model)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from qdrant_client import models

from gte_rag.embed import GteEncoder
from gte_rag.errors import CollectionMismatchError, ConfigError
from gte_rag.kb import KnowledgeBase, SourceDocument, TokenChunker
from gte_rag.qdrant import point_id

DOCS = [
    SourceDocument("bio", "Plants create oxygen through photosynthesis in their green leaves.", {"topic": "bio", "year": 2001}),
    SourceDocument("cs", "Rust is a systems programming language focused on memory safety.", {"topic": "cs", "year": 2015}),
    SourceDocument("geo", "The Eiffel tower stands in Paris, the capital of France.", {"topic": "geo", "year": 1889}),
    SourceDocument("long", " ".join(f"Sentence number {i} talks about rivers and mountains." for i in range(60)), {"topic": "geo", "year": 2020}),
]


@pytest.fixture(scope="module")
def encoder(tiny_embedder: Path) -> GteEncoder:
    return GteEncoder(tiny_embedder, device="cpu")


@pytest.fixture(params=["edge", "local"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    return tmp_path / "kb" if request.param == "edge" else ":memory:"


def _kb(location: Any, encoder: GteEncoder, **kw: Any) -> KnowledgeBase:
    return KnowledgeBase(location, encoder=encoder, chunk_size=32, chunk_overlap=4, ingest_batch_size=8, **kw)


def _all_ids(kb: KnowledgeBase) -> set[str]:
    ids: set[str] = set()
    offset = None
    while True:
        page, offset = kb.store.scroll(limit=100, offset=offset)
        ids.update(p.id for p in page)
        if offset is None:
            return ids


def test_ingest_query_and_payload(location: Any, encoder: GteEncoder) -> None:
    with _kb(location, encoder) as kb:
        stats = kb.add_documents(DOCS)
        assert stats.documents == 4 and stats.chunks == kb.count() and stats.chunks > 4
        hits = kb.query("Plants create oxygen through photosynthesis", top_k=3)
        assert hits[0].payload["doc_id"] == "bio"
        payload = hits[0].payload
        assert payload["text"].startswith("Plants") and payload["ref_doc_id"] == "bio" and "_node_content" in payload
        assert hits[0].id == point_id("bio", 0)
        for fusion in ("rrf", "dbsf", "weighted"):
            assert kb.query("Eiffel tower Paris", top_k=1, fusion=fusion)[0].payload["doc_id"] == "geo"
        assert kb.query("Rust memory safety", top_k=1, mode="sparse")[0].payload["doc_id"] == "cs"
        flt = models.Filter(must=[models.FieldCondition(key="topic", match=models.MatchValue(value="cs"))])
        assert {h.payload["doc_id"] for h in kb.query("Plants oxygen", top_k=5, filter=flt)} == {"cs"}


def test_interrupted_ingest_is_idempotent(location: Any, encoder: GteEncoder) -> None:
    with _kb(location, encoder) as reference:
        reference.add_documents(DOCS)
        expected = _all_ids(reference)
    with _kb(location if location == ":memory:" else Path(str(location) + "-2"), encoder) as kb:
        kb.add_documents(DOCS[:2])  # the run stops half-way ...
        partial = kb.count()
        assert 0 < partial < len(expected)
        kb.add_documents(DOCS)  # ... and runs again from the start
        assert kb.store.count() == len(expected)
        assert _all_ids(kb) == expected


def test_shorter_new_version_removes_stale_chunks(location: Any, encoder: GteEncoder) -> None:
    with _kb(location, encoder) as kb:
        kb.add_documents(DOCS)
        before = kb.count()
        kb.add_documents([SourceDocument("long", "Now it is one short sentence.", {"topic": "geo"})])
        long_chunks = kb.count(models.Filter(must=[models.FieldCondition(key="doc_id", match=models.MatchValue(value="long"))]))
        assert long_chunks == 1 and kb.count() < before


def test_delete_by_document_and_filter(location: Any, encoder: GteEncoder) -> None:
    with _kb(location, encoder) as kb:
        kb.add_documents(DOCS)
        kb.delete_documents(["bio"])
        assert all(h.payload["doc_id"] != "bio" for h in kb.query("Plants oxygen", top_k=10))
        kb.delete(models.Filter(must=[models.FieldCondition(key="year", range=models.Range(lt=2016))]))
        assert {h.payload["doc_id"] for h in kb.query("anything at all", top_k=50)} == {"long"}


def test_async_query_and_ingest(location: Any, encoder: GteEncoder) -> None:
    async def run() -> None:
        with _kb(location, encoder) as kb:
            stats = await kb.aadd_documents(DOCS[:3])
            assert stats.chunks == 3 and kb.count() == 3
            hits = await kb.aquery("Rust memory safety", top_k=1)
            assert hits[0].payload["doc_id"] == "cs"

    asyncio.run(run())


def test_layout_mismatch_on_reopen(tmp_path: Path, encoder: GteEncoder, tiny_bert: Path) -> None:
    path = tmp_path / "kb"
    with KnowledgeBase(path, encoder=encoder) as kb:
        kb.add_texts(["hello world"], ids=["x"])
    other = GteEncoder(tiny_bert)
    with pytest.raises(CollectionMismatchError) as info:
        KnowledgeBase(path, encoder=other)
    assert "model_name" in str(info.value)
    with KnowledgeBase(path, encoder=encoder) as kb:  # the data survived the refused open
        assert kb.count() == 1


def test_bad_options(encoder: GteEncoder) -> None:
    with pytest.raises(ConfigError, match="chunk_size=9000 exceeds"):
        KnowledgeBase(encoder=encoder, chunk_size=9000)
    with pytest.raises(ConfigError, match="chunk_overlap"):
        TokenChunker(encoder.tokenizer, chunk_size=32, chunk_overlap=20)


def test_chunker_spans_cover_the_text(encoder: GteEncoder) -> None:
    text = DOCS[3].text
    chunks = TokenChunker(encoder.tokenizer, chunk_size=24, chunk_overlap=4).split(text)
    assert len(chunks) > 3
    for c in chunks:
        assert text[c.start : c.end] == c.text
        assert len(encoder.tokenizer(c.text, add_special_tokens=False)["input_ids"]) <= 24 + 1
    assert chunks[0].start == 0 and chunks[-1].end == len(text)
    assert all(b.start < a.end for a, b in zip(chunks, chunks[1:]))  # overlapping windows


def test_add_files(tmp_path: Path, encoder: GteEncoder) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# Plants\nPlants create oxygen.")
    (tmp_path / "docs" / "b.txt").write_text("Rust is a language.")
    (tmp_path / "docs" / "skip.bin").write_bytes(b"\x00")
    with KnowledgeBase(encoder=encoder) as kb:
        stats = kb.add_files([tmp_path / "docs"])
        assert stats.documents == 2
        assert kb.query("Plants create oxygen", top_k=1)[0].payload["file_name"] == "a.md"
        with pytest.raises(ConfigError, match="does not exist"):
            kb.add_files([tmp_path / "nope"])
