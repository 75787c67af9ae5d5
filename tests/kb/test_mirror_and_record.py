"""A knowledge base that mirrors its sources and remembers how it was built (real embedded Qdrant)."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
import warnings
from pathlib import Path
from typing import Any

import pytest
from qdrant_client import models

from gte_rag.embed import GteEncoder
from gte_rag.errors import CollectionMismatchError, ConfigError, ModelLoadError
from gte_rag.kb import KnowledgeBase, SourceDocument
from gte_rag.qdrant import HybridConfig


@pytest.fixture(scope="module")
def encoder(tiny_embedder: Path) -> GteEncoder:
    return GteEncoder(tiny_embedder, device="cpu", dtype="float32")


SERVER_URL = os.environ.get("GTE_RAG_QDRANT_URL")
LOCATIONS = [
    "edge",
    "local",
    pytest.param("server", marks=[pytest.mark.qdrant_server,
                                  pytest.mark.skipif(not SERVER_URL, reason="GTE_RAG_QDRANT_URL is not set")]),
]


@pytest.fixture
def collection() -> Any:
    """A collection name of this test's own (a server is shared); dropped afterwards on a server."""
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


def _docs_of(kb: KnowledgeBase) -> set[str]:
    out: set[str] = set()
    offset = None
    while True:
        page, offset = kb.store.scroll(limit=100, offset=offset)
        out.update(str(p.payload["doc_id"]) for p in page)
        if offset is None:
            return out


def _folder(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root


FILES = {
    "plants.md": "Plants create oxygen through photosynthesis in their green leaves.",
    "rust.txt": "Rust is a systems programming language focused on memory safety.",
    "sub/paris.txt": "The Eiffel tower stands in Paris, the capital of France.",
}


def test_reindexing_a_folder_mirrors_it(location: Any, collection: str, encoder: GteEncoder, tmp_path: Path) -> None:
    folder = _folder(tmp_path / "docs", FILES)
    other = _folder(tmp_path / "other", {"plants.md": "Rivers and mountains shape the land."})
    with KnowledgeBase(location, collection=collection, encoder=encoder, chunk_size=32, chunk_overlap=4) as kb:
        first = kb.add_files([folder, other])
        assert (first.added, first.updated, first.unchanged, first.removed) == (4, 0, 0, 0)
        # two folders with the same relative file name do not collide
        assert len(_docs_of(kb)) == 4
        (folder / "rust.txt").unlink()                 # deleted
        (folder / "sub" / "paris.txt").write_text("")  # emptied
        (folder / "plants.md").write_text("Plants release oxygen during the day.")  # changed
        encoder.clear_cache()
        again = kb.add_files([folder])
        assert (again.added, again.updated, again.unchanged, again.removed) == (0, 1, 0, 2)
        assert again.skipped_empty == 1
        assert _docs_of(kb) == {str((folder / "plants.md").resolve()), str((other / "plants.md").resolve())}
        hits = kb.query("Rust memory safety", top_k=10)
        assert all("Rust" not in h.payload["text"] for h in hits)
        # the other folder is untouched; an unchanged folder is not encoded again
        calls: list[int] = []
        orig = encoder.encode
        try:
            encoder.encode = lambda *a, **k: calls.append(1) or orig(*a, **k)  # type: ignore[method-assign]
            same = kb.add_files([other])
        finally:
            encoder.encode = orig  # type: ignore[method-assign]
        assert (same.unchanged, same.added, same.updated, same.removed) == (1, 0, 0, 0) and calls == []


def test_a_named_source_survives_a_move(location: Any, collection: str, encoder: GteEncoder, tmp_path: Path) -> None:
    folder = _folder(tmp_path / "handbook", FILES)
    with KnowledgeBase(location, collection=collection, encoder=encoder) as kb:
        kb.add_files([folder], source="handbook")
        before = kb.count()
        moved = tmp_path / "elsewhere" / "handbook-copy"
        moved.parent.mkdir()
        shutil.move(str(folder), str(moved))
        stats = kb.add_files([moved], source="handbook")
        # same ids: nothing added or removed (file_path in the metadata changed, so they are rewritten)
        assert (stats.added, stats.removed, stats.updated + stats.unchanged) == (0, 0, 3)
        assert kb.count() == before
        assert "handbook:sub/paris.txt" in _docs_of(kb)
        with pytest.raises(ConfigError, match="names one directory"):
            kb.add_files([moved, tmp_path], source="handbook")


def test_unchanged_documents_are_not_reencoded_and_an_interrupted_one_is(location: Any, collection: str, encoder: GteEncoder) -> None:
    long_text = " ".join(f"Sentence number {i} talks about rivers and mountains." for i in range(40))
    docs = [SourceDocument("a", "Plants create oxygen."), SourceDocument("long", long_text)]
    with KnowledgeBase(location, collection=collection, encoder=encoder, chunk_size=16, chunk_overlap=2) as kb:
        kb.add_documents(docs)
        n = kb.count()
        # simulate a run that stopped after the first chunks of "long": its last chunk is missing
        last = max(
            (p for p in kb.store.scroll(filter=kb.chunk_filter(), limit=500)[0] if p.payload["doc_id"] == "long"),
            key=lambda p: p.payload["chunk_index"],
        )
        kb.delete(models.Filter(must=[models.HasIdCondition(has_id=[last.id])]))
        stats = kb.add_documents(docs)
        assert (stats.unchanged, stats.updated) == (1, 1)
        assert kb.count() == n


def test_empty_documents_are_skipped_counted_and_replace_the_old_version(location: Any, collection: str, encoder: GteEncoder) -> None:
    with KnowledgeBase(location, collection=collection, encoder=encoder) as kb:
        kb.add_documents([SourceDocument("x", "Plants create oxygen."), SourceDocument("y", "Rust is safe.")])
        stats = kb.add_documents([SourceDocument("x", "   "), SourceDocument("z", ""), SourceDocument("w", "Paris.")])
        assert (stats.skipped_empty, stats.removed, stats.added) == (2, 1, 1)
        assert _docs_of(kb) == {"y", "w"}


def test_reopen_without_the_model_uses_the_recorded_one(tmp_path: Path, tiny_embedder: Path) -> None:
    copy = tmp_path / "models" / "embedder-copy"
    shutil.copytree(tiny_embedder, copy)
    path = tmp_path / "kb"
    with KnowledgeBase(path, model=copy, encoder_options={"dtype": "float32", "dimension": 16}) as kb:
        kb.add_texts(["Plants create oxygen."], ids=["p"])
        record = kb.layout.encoder_settings
        assert record["identity"].startswith("sha256:") and record["dimension"] == 16
        assert str(copy.resolve()) == record["model"]
    with KnowledgeBase(path) as kb:  # no model: the recorded one, with its settings
        assert kb.encoder.dimension == 16 and Path(kb.encoder.model_name).resolve() == copy.resolve()
        assert kb.query("oxygen", top_k=1)[0].payload["doc_id"] == "p"
    # the same checkpoint from another directory opens the collection
    with KnowledgeBase(path, model=tiny_embedder, encoder_options={"dtype": "float32", "dimension": 16}) as kb:
        assert kb.count() == 1
    shutil.rmtree(copy)
    with pytest.raises(ModelLoadError, match="was built with model") as info:
        KnowledgeBase(path)
    assert "embedder-copy" in str(info.value) and "sha256:" in str(info.value)


def test_another_model_is_refused_and_the_data_survives(tmp_path: Path, encoder: GteEncoder, tiny_bert: Path) -> None:
    path = tmp_path / "kb"
    with KnowledgeBase(path, encoder=encoder) as kb:
        kb.add_texts(["hello world"], ids=["x"])
    with pytest.raises(CollectionMismatchError) as info:
        KnowledgeBase(path, model=tiny_bert)
    assert "model_name" in str(info.value)
    with KnowledgeBase(path, encoder=encoder) as kb:
        assert kb.count() == 1


def test_writing_with_another_precision_warns_once(tmp_path: Path, tiny_embedder: Path) -> None:
    path = tmp_path / "kb"
    with KnowledgeBase(path, model=tiny_embedder, encoder_options={"dtype": "float32"}) as kb:
        kb.add_texts(["Plants create oxygen."], ids=["p"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # bfloat16 may be emulated on this CPU
        other = GteEncoder(tiny_embedder, dtype="bfloat16")
    with KnowledgeBase(path, encoder=other) as kb:
        with pytest.warns(UserWarning, match="precision 'float32'") as record:
            kb.add_texts(["Rust is safe."], ids=["r"])
            kb.add_texts(["Paris is in France."], ids=["f"])
        assert len([w for w in record if "precision" in str(w.message)]) == 1


def test_rejected_options_leave_nothing_behind(tmp_path: Path, encoder: GteEncoder) -> None:
    path = tmp_path / "kb"
    before = set(Path(tempfile.gettempdir()).glob("gte_rag_edge_*"))
    for bad in ({"chunk_size": 99999}, {"chunk_size": -1}, {"ingest_batch_size": 0}, {"chunk_overlap": 30, "chunk_size": 32}):
        with pytest.raises(ConfigError):
            KnowledgeBase(path, encoder=encoder, **bad)
        with pytest.raises(ConfigError):
            KnowledgeBase(None, encoder=encoder, **bad)
    assert not (path / "gte_rag").exists()  # no partial collection
    assert set(Path(tempfile.gettempdir()).glob("gte_rag_edge_*")) == before  # no temporary directory
    with KnowledgeBase(path, encoder=encoder) as kb:  # and no lock
        assert kb.count() == 0


def test_alpha_half_is_the_fusion_unchanged(location: Any, collection: str, encoder: GteEncoder) -> None:
    texts = ["Plants create oxygen.", "Rust is a systems language.", "Paris is the capital of France.",
             "Rivers and mountains.", "Oxygen in rivers."]
    with KnowledgeBase(location, collection=collection, encoder=encoder) as kb:
        kb.add_texts(texts)
        q = "oxygen rivers"
        for fusion in ("rrf", "weighted"):
            plain = kb.query(q, top_k=5, fusion=fusion)
            half = kb.query(q, top_k=5, fusion=fusion, alpha=0.5)
            assert [(h.id, round(h.score, 9)) for h in half] == [(h.id, round(h.score, 9)) for h in plain]
        # plain RRF: 1 / (k + rank), k = 60, on both branches
        dense = [h.id for h in kb.query(q, top_k=5, mode="dense")]
        sparse = [h.id for h in kb.query(q, top_k=5, mode="sparse")]
        expected = {i: sum(1.0 / (60 + r.index(i)) for r in (dense, sparse) if i in r) for i in dense + sparse}
        for h in kb.query(q, top_k=5, fusion="rrf", alpha=0.5):  # (the default fusion is DBSF)
            assert h.score == pytest.approx(expected[h.id], rel=1e-6)
        # weighted keeps the mGTE 1.0 / 0.1 ratio by default and under alpha=0.5
        explicit = kb.query(q, top_k=5, hybrid=HybridConfig(fusion="weighted", dense_weight=1.0, sparse_weight=0.1))
        assert [h.score for h in kb.query(q, top_k=5, fusion="weighted", alpha=0.5)] == pytest.approx([h.score for h in explicit])
        assert [h.id for h in kb.query(q, top_k=5, alpha=0.0)] == sparse
        assert [h.id for h in kb.query(q, top_k=5, alpha=1.0)] == dense
        with pytest.raises(ConfigError, match="alpha"):
            kb.query(q, alpha=1.5)
        with pytest.raises(ConfigError, match="DBSF"):
            kb.query(q, fusion="dbsf", alpha=0.3)


def test_async_with_and_close_release_both_stores(location: Any, collection: str, encoder: GteEncoder) -> None:
    import asyncio

    from gte_rag.errors import StoreError

    async def run() -> KnowledgeBase:
        async with KnowledgeBase(location, collection=collection, encoder=encoder) as kb:
            await kb.aadd_documents([SourceDocument("a", "Plants create oxygen.")])
            assert (await kb.aquery("oxygen", top_k=1))[0].payload["doc_id"] == "a"
        return kb

    kb = asyncio.run(run())
    with pytest.raises(StoreError):
        kb.query("oxygen")
    with pytest.raises(StoreError):
        asyncio.run(kb.aquery("oxygen"))
    kb.close()  # idempotent
    if location != ":memory:":
        with KnowledgeBase(location, collection=collection, encoder=encoder) as again:  # the shard was released
            assert again.count() == 1


def test_chunks_fit_the_window_with_specials_and_prompt_and_are_tokenized_once(
    tmp_path: Path, tiny_embedder: Path
) -> None:
    from gte_rag.embed import TokenizedText
    from gte_rag.models import Architecture, ModelSpec, Pooling, register_model

    model = tmp_path / "prompted"
    shutil.copytree(tiny_embedder, model)
    register_model(ModelSpec(hf_id=str(model), architecture=Architecture.GTE, dim=32, max_tokens=48,
                             pooling=Pooling.CLS, has_sparse_head=True, document_prompt="passage of a long report: "))
    encoder = GteEncoder(model, dtype="float32", truncate=False)  # an over-long chunk would raise
    assert encoder.document_token_budget < 48 - 2  # the prompt takes room
    seen: list[Any] = []
    orig = encoder.encode

    def spy(texts: Any, **kw: Any) -> Any:
        seen.extend(texts)
        out = orig(texts, **kw)
        assert max(out.num_tokens) <= encoder.max_length
        return out

    encoder.encode = spy  # type: ignore[method-assign]
    long_text = " ".join(f"Sentence number {i} talks about rivers and mountains." for i in range(40))
    with KnowledgeBase(None, encoder=encoder) as kb:
        stats = kb.add_documents([SourceDocument("long", long_text)])
        assert stats.chunks > 5 and kb.chunker is not None
        assert kb.chunker.chunk_size == encoder.document_token_budget
    assert seen and all(isinstance(t, TokenizedText) for t in seen)  # chunks are not tokenized again


def test_a_missing_middle_chunk_is_rewritten(location: Any, collection: str, encoder: GteEncoder) -> None:
    long_text = " ".join(f"Sentence number {i} talks about rivers and mountains." for i in range(40))
    with KnowledgeBase(location, collection=collection, encoder=encoder, chunk_size=16, chunk_overlap=2) as kb:
        kb.add_documents([SourceDocument("d", long_text)])
        n = kb.count()
        kb.delete(models.Filter(must=[models.FieldCondition(key="chunk_index", match=models.MatchValue(value=2))]))
        stats = kb.add_documents([SourceDocument("d", long_text)])
        assert (stats.updated, stats.unchanged) == (1, 0) and kb.count() == n


def test_a_file_added_on_its_own_stays_in_its_folders_mirror(location: Any, collection: str, encoder: GteEncoder, tmp_path: Path) -> None:
    folder = _folder(tmp_path / "docs", FILES)
    with KnowledgeBase(location, collection=collection, encoder=encoder) as kb:
        kb.add_files([folder])
        kb.add_files([folder / "rust.txt"])  # re-added alone (other metadata): still part of the folder
        (folder / "rust.txt").unlink()
        stats = kb.add_files([folder])
        assert stats.removed == 1 and str((folder / "rust.txt").resolve()) not in _docs_of(kb)


def test_overlapping_folders_are_refused_sync_and_async(location: Any, collection: str, encoder: GteEncoder, tmp_path: Path) -> None:
    import asyncio

    folder = _folder(tmp_path / "docs", FILES)
    with KnowledgeBase(location, collection=collection, encoder=encoder) as kb:
        with pytest.raises(ConfigError, match="overlap"):
            kb.add_files([folder, folder / "sub"])
        with pytest.raises(ConfigError, match="overlap"):
            asyncio.run(kb.aadd_files([folder, folder / "sub"]))
        assert kb.count() == 0


def test_dates_and_other_python_values_in_metadata(location: Any, collection: str, encoder: GteEncoder) -> None:
    import datetime

    meta = {"date": datetime.date(2024, 1, 2), "tags": ("a", "b"), "when": datetime.datetime(2024, 1, 2, 3, 4, 5)}
    with KnowledgeBase(location, collection=collection, encoder=encoder) as kb:
        kb.add_documents([SourceDocument("d", "Plants create oxygen.", meta)])
        payload = kb.query("oxygen", top_k=1)[0].payload
        assert payload["date"] == "2024-01-02" and payload["tags"] == ["a", "b"]
        assert payload["when"] == "2024-01-02T03:04:05"


def test_naming_the_recorded_model_again_keeps_its_settings(tmp_path: Path, tiny_embedder: Path) -> None:
    path = tmp_path / "kb"
    with KnowledgeBase(path, model=tiny_embedder, encoder_options={"dimension": 16, "query_instruction": "find: "}) as kb:
        kb.add_texts(["Plants create oxygen."], ids=["p"])
    copy = tmp_path / "copy"
    shutil.copytree(tiny_embedder, copy)
    for model in (tiny_embedder, copy):  # the path it was built from, or a copy of it
        with KnowledgeBase(path, model=model) as kb:
            assert kb.encoder.dimension == 16 and kb.encoder.query_instruction == "find: "
            assert kb.count() == 1


def test_a_collection_recorded_by_model_path_still_opens(tmp_path: Path, tiny_embedder: Path) -> None:
    """Collections written before the encoder record name their model by path or hub id."""
    import json

    path = tmp_path / "kb"
    with KnowledgeBase(path, model=tiny_embedder) as kb:
        kb.add_texts(["Plants create oxygen."], ids=["p"])
    sidecar = path / "gte_rag" / "gte_rag_layout.json"
    data = json.loads(sidecar.read_text())
    key = next(iter(data))
    data[key]["model_name"] = str(tiny_embedder)
    del data[key]["encoder"]
    sidecar.write_text(json.dumps(data))
    with KnowledgeBase(path, model=tiny_embedder) as kb:
        assert kb.count() == 1
    with KnowledgeBase(path) as kb:  # no model: the name it records
        assert Path(kb.encoder.model_name) == tiny_embedder and kb.count() == 1
