"""``migrate_collection`` / ``gte-rag migrate``: a knowledge base copied between the two
embedded engines (Qdrant Edge and qdrant-client local mode on disk) without re-encoding.

Real engines and the real packaged MiniLM (a tiny random model gives near-identical vectors,
whose ties make rankings unstable). A server is a target too when ``GTE_RAG_QDRANT_URL`` is set.
"""

from __future__ import annotations

import os
import random
import uuid
from pathlib import Path
from typing import Any

import pytest

from gte_rag.embed import GteEncoder
from gte_rag.errors import CollectionMismatchError, ConfigError, StoreError
from gte_rag.kb import KnowledgeBase, SourceDocument
from gte_rag.qdrant import (
    CollectionLayout,
    MigrationStats,
    StorageConfig,
    amigrate_collection,
    migrate_collection,
    open_store,
)

WORDS = (
    "river mountain valley glacier plant oxygen leaf sunlight rust memory compiler borrow tower paris iron "
    "bridge city harbour ship storm rain forest desert camel market bread cheese violin concert museum "
    "painting engine wheel rocket planet orbit comet telescope doctor fever vaccine school teacher garden"
).split()


def _text(seed: int) -> str:
    """Distinct sentences of seeded random words: lexical and dense scores rarely tie (ties are
    broken by each engine's storage order, which a copy in id order does not keep)."""
    rng = random.Random(seed)
    return " ".join(" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 13))) + "." for _ in range(10))


DOCS = [SourceDocument(f"doc{i}", _text(i), {"n": i, "even": i % 2 == 0}) for i in range(16)]
QUERIES = ["river valley glacier", "oxygen from a leaf in sunlight", "rust memory compiler", "museum painting violin"]
BATCH = 16


@pytest.fixture(scope="module")
def encoder(minilm_encoder: GteEncoder) -> GteEncoder:
    return minilm_encoder


def _kb(location: Any, encoder: GteEncoder, **kw: Any) -> KnowledgeBase:
    return KnowledgeBase(location, encoder=encoder, chunk_size=40, chunk_overlap=4, ingest_batch_size=32, **kw)


def _answers(kb: KnowledgeBase, *, rrf: bool = True) -> list[list[tuple[str, float]]]:
    """Hybrid (RRF, DBSF), dense and sparse results: ids in order, with their scores.

    ``rrf=False`` leaves RRF out: it reads each branch's ranks, and an engine ranks the points
    a branch scores the same (lexical scores tie often) in its storage order, which a copy made
    in id order does not keep; every score-based result does not depend on that order.
    """
    out = []
    for kw in ({"fusion": "dbsf"}, {"mode": "dense"}, {"mode": "sparse"}, *([{"fusion": "rrf"}] if rrf else [])):
        out += [[(h.id, round(h.score, 4)) for h in hits] for hits in kb.query_many(QUERIES, top_k=6, **kw)]
    return out


def _same_results(got: list[list[tuple[str, float]]], expected: list[list[tuple[str, float]]], *,
                  scores: bool = True) -> None:
    """The same ids in the same order, and the same scores (to float rounding: an engine sums
    a sparse product in its own order)."""
    assert [[i for i, _ in r] for r in got] == [[i for i, _ in r] for r in expected]
    if scores:
        for row, want in zip(got, expected):
            assert [s for _, s in row] == pytest.approx([s for _, s in want], abs=1e-4)


def _same_points(got: dict[str, Any], expected: dict[str, Any]) -> None:
    """The same points: ids, dense vectors (float32 round trip), sparse vectors and payloads."""
    assert got.keys() == expected.keys()
    for pid, (dense, sparse, payload) in expected.items():
        g_dense, g_sparse, g_payload = got[pid]
        assert g_payload == payload and g_sparse == sparse
        assert (g_dense is None) == (dense is None)
        if dense is not None:
            assert g_dense == pytest.approx(dense, abs=1e-6)


def _vectors(location: Any, engine: str = "auto") -> dict[str, Any]:
    """Every point's vectors and payload, read back from the engine."""
    out: dict[str, Any] = {}
    with open_store(location, CollectionLayout("gte_rag", dense_size=1), engine=engine) as store:  # type: ignore[arg-type]
        found = store.backend.read_layout()
        assert found is not None
        store.backend.layout = CollectionLayout.from_dict(found.to_dict())
        offset = None
        while True:
            page, offset = store.scroll_points(limit=100, offset=offset)
            for p in page:
                out[p.id] = (list(p.dense) if p.dense is not None else None, p.sparse, dict(p.payload))
            if offset is None:
                return out


def _ids(kb: KnowledgeBase) -> list[str]:
    ids: list[str] = []
    offset = None
    while True:
        page, offset = kb.store.scroll(limit=100, offset=offset)
        ids += [p.id for p in page]
        if offset is None:
            return ids


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory, encoder: GteEncoder) -> tuple[Path, list[list[tuple[str, float]]], int]:
    root = tmp_path_factory.mktemp("migrate") / "src"
    with _kb(root, encoder) as kb:
        kb.add_documents(DOCS)
        return root, _answers(kb), kb.store.count()


def test_edge_to_local_mode_and_back_gives_identical_results(
    source: tuple[Path, Any, int], tmp_path: Path, encoder: GteEncoder
) -> None:
    root, expected, total = source
    # what local mode answers for these documents when they are ingested there directly
    with _kb(tmp_path / "direct", encoder, store_options={"engine": "client"}) as kb:
        kb.add_documents(DOCS)
        expected_local = _answers(kb, rrf=False)
    stats = migrate_collection(root, tmp_path / "local", target_engine="client", batch_size=BATCH)
    assert isinstance(stats, MigrationStats)
    assert (stats.copied, stats.unchanged, stats.source_points, stats.target_points) == (total, 0, total, total)
    with _kb(tmp_path / "local", encoder, store_options={"engine": "client"}) as kb:
        assert kb.store.count() == total
        _same_results(_answers(kb, rrf=False), expected_local)
        assert kb.layout.model_name is not None and kb.layout.encoder_settings["identity"]
        assert kb.layout.payload_indexes == CollectionLayout.from_dict(_layout_of(root).to_dict()).payload_indexes
    _same_points(_vectors(tmp_path / "local", "client"), _vectors(root))
    back = migrate_collection(tmp_path / "local", tmp_path / "edge", source_engine="client", batch_size=BATCH)
    assert back.copied == total
    with _kb(tmp_path / "edge", encoder) as kb:
        _same_results(_answers(kb, rrf=False), expected[: len(QUERIES) * 3])
    _same_points(_vectors(tmp_path / "edge"), _vectors(root))


def _layout_of(location: Any) -> CollectionLayout:
    with open_store(location, CollectionLayout("gte_rag", dense_size=1)) as store:
        found = store.backend.read_layout()
    assert found is not None
    return found


def test_an_interrupted_migration_resumes_without_duplicates(
    source: tuple[Path, Any, int], tmp_path: Path, encoder: GteEncoder
) -> None:
    root, expected, total = source
    assert total > 3 * BATCH
    seen: list[int] = []

    def stop_after_two(progress: MigrationStats) -> None:
        seen.append(progress.batches)
        if progress.batches == 2:
            raise KeyboardInterrupt  # what Ctrl-C does in the middle of a copy

    with pytest.raises(KeyboardInterrupt):
        migrate_collection(root, tmp_path / "dst", batch_size=BATCH, on_batch=stop_after_two)
    assert seen == [1, 2]
    with _kb(tmp_path / "dst", encoder) as kb:
        assert kb.store.count() == 2 * BATCH
    again = migrate_collection(root, tmp_path / "dst", batch_size=BATCH)
    assert again.unchanged == 2 * BATCH and again.copied == total - 2 * BATCH
    once_more = migrate_collection(root, tmp_path / "dst", batch_size=BATCH)
    assert (once_more.copied, once_more.unchanged) == (0, total)
    with _kb(tmp_path / "dst", encoder) as kb:
        ids = _ids(kb)
        assert len(ids) == len(set(ids)) == total
        _same_results(_answers(kb, rrf=False), expected[: len(QUERIES) * 3])


def test_async_twin_copies_and_resumes(source: tuple[Path, Any, int], tmp_path: Path, encoder: GteEncoder) -> None:
    import asyncio

    root, expected, total = source
    first = asyncio.run(amigrate_collection(root, tmp_path / "a", batch_size=BATCH))
    assert (first.copied, first.unchanged, first.target_points) == (total, 0, total)
    again = asyncio.run(amigrate_collection(root, tmp_path / "a", batch_size=BATCH))
    assert (again.copied, again.unchanged) == (0, total)
    with _kb(tmp_path / "a", encoder) as kb:
        _same_results(_answers(kb, rrf=False), expected[: len(QUERIES) * 3])


def test_target_storage_settings_are_applied_and_recorded(source: tuple[Path, Any, int], tmp_path: Path,
                                                          encoder: GteEncoder) -> None:
    root, expected, total = source
    storage = StorageConfig(quantization="int8", on_disk=True)
    migrate_collection(root, tmp_path / "q", storage=storage, batch_size=64)
    with _kb(tmp_path / "q", encoder) as kb:
        assert kb.storage.quantization == "int8" and kb.storage.on_disk
        assert kb.store.count() == total
        # a small collection is searched exhaustively: rescored int8 gives the same ranking
        _same_results(_answers(kb, rrf=False), expected[: len(QUERIES) * 3], scores=False)


def test_refusals_name_the_problem(source: tuple[Path, Any, int], tmp_path: Path, encoder: GteEncoder) -> None:
    root, _, _ = source
    with pytest.raises(StoreError, match="no collection 'nope'"):
        migrate_collection(root, tmp_path / "x", collection="nope")
    with pytest.raises(ConfigError, match="same"):
        migrate_collection(root, root)
    with pytest.raises(ConfigError, match="batch_size"):
        migrate_collection(root, tmp_path / "x", batch_size=0)
    with pytest.raises(ConfigError, match="server only"):
        migrate_collection(root, tmp_path / "x", shard_number=2)
    # a target collection of another geometry is refused, untouched
    other = tmp_path / "other"
    with open_store(other, CollectionLayout("gte_rag", dense_size=3)) as store:
        store.ensure_collection()
    with pytest.raises(CollectionMismatchError):
        migrate_collection(root, other, batch_size=BATCH)
    with open_store(other, CollectionLayout("gte_rag", dense_size=3)) as store:
        assert store.count() == 0


def test_cli_migrate_copies_and_resumes(source: tuple[Path, Any, int], tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str], encoder: GteEncoder) -> None:
    from gte_rag.cli import main

    root, expected, total = source
    assert main(["migrate", "--from", str(root), "--to", str(tmp_path / "cli"), "--batch-size", str(BATCH)]) == 0
    captured = capsys.readouterr()
    assert f"copied {total}" in captured.out
    assert "migrate" in captured.err  # the progress bar
    assert main(["migrate", "--from", str(root), "--to", str(tmp_path / "cli")]) == 0
    assert f"copied 0 points ({total} already there" in capsys.readouterr().out
    assert main(["migrate", "--from", str(root), "--to", str(tmp_path / "cli2"), "--shards", "2"]) == 2
    assert "server only" in capsys.readouterr().err
    with _kb(tmp_path / "cli", encoder) as kb:
        _same_results(_answers(kb, rrf=False), expected[: len(QUERIES) * 3])


@pytest.mark.qdrant_server
@pytest.mark.skipif(not os.environ.get("GTE_RAG_QDRANT_URL"), reason="GTE_RAG_QDRANT_URL is not set")
def test_edge_to_server(source: tuple[Path, Any, int], encoder: GteEncoder) -> None:
    root, expected, total = source
    url = os.environ["GTE_RAG_QDRANT_URL"]
    name = f"t{uuid.uuid4().hex[:8]}_migrated"
    stats = migrate_collection(root, url, target_collection=name, batch_size=BATCH)
    assert stats.copied == total
    kb = _kb(url, encoder, collection=name)
    try:
        _same_results(_answers(kb, rrf=False), expected[: len(QUERIES) * 3])
    finally:
        kb.store.backend.drop_collection()
        kb.close()
