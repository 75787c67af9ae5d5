"""Long-document storage on real engines: chunk points, document points (MAX_SIM parts), groups, batches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from qdrant_client import QdrantClient, models

from gte_rag._types import SparseVector
from gte_rag.errors import CollectionMismatchError, ConfigError
from gte_rag.qdrant import (
    MAX_MULTIVECTOR_FLOATS,
    ClientBackend,
    CollectionLayout,
    EdgeBackend,
    HybridConfig,
    PointRecord,
    QdrantStore,
    build_payload,
    document_point_id,
    is_document_point,
    multivector_parts,
    point_id,
)

from conftest import StoreFactory, run

DIM = 8


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v)).astype(np.float32)


def _corpus(seed: int = 0, docs: int = 6, chunks: int = 5) -> dict[str, list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    return {f"doc-{d}": [_unit(rng.normal(size=DIM)) for _ in range(chunks + d % 3)] for d in range(docs)}


def _sparse(doc: int, chunk: int) -> SparseVector:
    values = np.array([1.0 - 0.01 * chunk, 0.5 + 0.01 * doc], dtype=np.float32)
    return SparseVector(indices=np.array([doc, 100 + chunk], dtype=np.int64), values=values)


def _points(corpus: dict[str, list[np.ndarray]], *, max_floats: int = MAX_MULTIVECTOR_FLOATS) -> list[PointRecord]:
    points = []
    for d, (doc, vectors) in enumerate(corpus.items()):
        for i, v in enumerate(vectors):
            payload = build_payload(text=f"{doc} chunk {i}", doc_id=doc, chunk_index=i, span=(10 * i, 10 * i + 9))
            payload["_chunk_count"] = len(vectors)
            points.append(PointRecord(point_id(doc, i), v, sparse=_sparse(d, i), payload=payload))
        parts = multivector_parts(len(vectors), DIM, max_floats=max_floats)
        mean = _unit(np.mean(vectors, axis=0))
        for k, (lo, hi) in enumerate(parts):
            payload = {"_kind": "document", "doc_id": doc, "ref_doc_id": doc, "part": k, "parts": len(parts),
                       "chunk_start": lo, "chunk_end": hi}
            points.append(PointRecord(document_point_id(doc, k), None, multivector=np.stack(vectors[lo:hi]),
                                      document_vector=mean, payload=payload))
    return points


def _layout(stores: StoreFactory, name: str = "long") -> CollectionLayout:
    return stores.layout(name, dense_size=DIM).long_documents()


def test_multivector_partition_with_the_real_cap() -> None:
    assert MAX_MULTIVECTOR_FLOATS == 1_048_576
    assert multivector_parts(1365, 768) == [(0, 1365)]
    assert multivector_parts(1366, 768) == [(0, 1365), (1365, 1366)]
    assert multivector_parts(2730, 384) == [(0, 2730)]
    assert multivector_parts(5461, 384) == [(0, 2730), (2730, 5460), (5460, 5461)]
    for rows, dim in ((4000, 768), (9000, 384), (1, 768)):
        parts = multivector_parts(rows, dim)
        assert parts[0][0] == 0 and parts[-1][1] == rows
        assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))
        assert all((hi - lo) * dim <= MAX_MULTIVECTOR_FLOATS for lo, hi in parts)
    assert multivector_parts(0, 768) == []
    with pytest.raises(ConfigError, match="max_floats"):
        multivector_parts(3, 768, max_floats=100)


def test_point_and_layout_checks() -> None:
    with pytest.raises(ConfigError, match="no dense vector, multivector or document vector"):
        PointRecord(point_id("d", 0), None)
    layout = CollectionLayout("c", dense_size=4).long_documents()
    assert layout.stores_long_documents and layout.multivector_size == 4
    with pytest.raises(ConfigError, match="distinct"):
        CollectionLayout("c", dense_size=4, document_vector_name="dense")
    assert document_point_id("d", 0) not in {point_id("d", i) for i in range(-1, 5)}
    assert CollectionLayout.from_dict(layout.to_dict()) == layout


@pytest.mark.asyncio
async def test_document_points_are_invisible_to_chunk_queries(stores: StoreFactory) -> None:
    store = stores.open(_layout(stores))
    await run(store.ensure_collection())
    corpus = _corpus()
    await run(store.upsert(_points(corpus)))
    n_chunks = sum(len(v) for v in corpus.values())
    assert await run(store.count()) == n_chunks + len(corpus)
    q = corpus["doc-2"][1]
    for mode in ("dense", "sparse", "hybrid"):
        hits = await run(store.query(q, _sparse(2, 1), top_k=200, hybrid=HybridConfig(mode=mode)))
        assert hits and not any(is_document_point(h.payload) for h in hits), mode
        assert len(hits) <= n_chunks
    hits = await run(store.query(q, top_k=1, hybrid=HybridConfig(mode="dense")))
    assert hits[0].id == point_id("doc-2", 1) and hits[0].payload["start"] == 10
    # MaxSim: a one-row query scores each document by its best chunk
    docs = await run(store.query_documents(q, top_k=3))
    assert docs[0].doc_id == "doc-2" and docs[0].score == pytest.approx(1.0, abs=1e-5)
    expected = sorted(((max(float(v @ q) for v in vs), d) for d, vs in corpus.items()), reverse=True)[:3]
    assert [d.doc_id for d in docs] == [d for _, d in expected]
    assert [d.score for d in docs] == pytest.approx([s for s, _ in expected], abs=1e-5)


@pytest.mark.asyncio
async def test_parts_over_the_cap_are_one_document(stores: StoreFactory) -> None:
    store = stores.open(_layout(stores))
    await run(store.ensure_collection())
    corpus = _corpus(seed=3, docs=4, chunks=7)
    points = _points(corpus, max_floats=2 * DIM)  # two chunk vectors per document point
    doc_points = [p for p in points if p.multivector is not None]
    assert len(doc_points) > 3 * len(corpus)
    assert all(len(p.multivector) <= 2 for p in doc_points)  # type: ignore[arg-type]
    await run(store.upsert(points))
    q = corpus["doc-1"][6]  # in the last part of doc-1
    docs = await run(store.query_documents(q, top_k=4))
    assert [d.doc_id for d in docs].count("doc-1") == 1 and len({d.doc_id for d in docs}) == 4
    assert docs[0].doc_id == "doc-1" and docs[0].score == pytest.approx(1.0, abs=1e-5)


@pytest.mark.asyncio
async def test_query_in_documents_is_one_batch(stores: StoreFactory) -> None:
    store = stores.open(_layout(stores))
    await run(store.ensure_collection())
    corpus = _corpus(seed=5)
    await run(store.upsert(_points(corpus)))
    q = _unit(np.ones(DIM))
    found = await run(store.query_in_documents(q, None, ["doc-3", "doc-0"], per_document=2,
                                               hybrid=HybridConfig(mode="dense")))
    assert len(found) == 2
    for doc, hits in zip(["doc-3", "doc-0"], found):
        best = sorted(range(len(corpus[doc])), key=lambda i: -float(corpus[doc][i] @ q))[:2]
        assert [h.payload["chunk_index"] for h in hits] == best
        assert all(h.payload["doc_id"] == doc for h in hits)


@pytest.mark.asyncio
async def test_groups_top_documents_with_their_chunks(stores: StoreFactory) -> None:
    store = stores.open(_layout(stores))
    await run(store.ensure_collection())
    corpus = _corpus(seed=7, docs=8)
    await run(store.upsert(_points(corpus)))
    q = _unit(np.arange(DIM, dtype=np.float32) - 3)
    groups = await run(store.query_groups(q, top_k=3, group_size=2, hybrid=HybridConfig(mode="dense")))
    scored = {d: sorted((float(v @ q) for v in vs), reverse=True) for d, vs in corpus.items()}
    expected = sorted(scored, key=lambda d: -scored[d][0])[:3]
    assert [g.doc_id for g in groups] == expected
    for g in groups:
        assert [h.score for h in g.chunks] == pytest.approx(scored[g.doc_id][:2], abs=1e-5)
        assert g.score == g.chunks[0].score


def _fill(store: QdrantStore, points: list[PointRecord]) -> QdrantStore:
    store.ensure_collection()
    store.upsert(points)
    return store


@pytest.mark.parametrize("mode,fusion", [("dense", "rrf"), ("sparse", "rrf"), ("hybrid", "rrf"), ("hybrid", "dbsf")])
def test_groups_on_edge_equal_groups_in_local_mode(tmp_path: Path, mode: str, fusion: str) -> None:
    layout = CollectionLayout("g", dense_size=DIM).long_documents()
    points = _points(_corpus(seed=11, docs=9, chunks=4))
    edge = _fill(QdrantStore(backend=EdgeBackend(tmp_path, layout)), points)
    local = _fill(QdrantStore(backend=ClientBackend(QdrantClient(":memory:"), layout)), points)
    try:
        rng = np.random.default_rng(1)
        for _ in range(5):
            q = _unit(rng.normal(size=DIM))
            sq = SparseVector(indices=np.array([int(rng.integers(0, 9)), 101], dtype=np.int64),
                              values=np.array([1.0, 0.3], dtype=np.float32))
            config = HybridConfig(mode=mode, fusion=fusion)  # type: ignore[arg-type]
            for top_k, size in ((3, 2), (5, 1), (20, 3)):
                a = edge.query_groups(q, sq, top_k=top_k, group_size=size, hybrid=config)
                b = local.query_groups(q, sq, top_k=top_k, group_size=size, hybrid=config)
                assert [g.doc_id for g in a] == [g.doc_id for g in b]
                assert [[h.id for h in g.chunks] for g in a] == [[h.id for h in g.chunks] for g in b]
                assert [g.score for g in a] == pytest.approx([g.score for g in b], abs=1e-4)
                assert not any(is_document_point(h.payload) for g in a for h in g.chunks)
                if mode == "sparse":  # documents that share no term with the query are absent
                    assert len(a) <= 9
                else:
                    assert len(a) == min(top_k, 9)
    finally:
        edge.close()
        local.close()


def test_edge_groups_widen_until_groups_fill(tmp_path: Path) -> None:
    # one document owns the 200 best chunks: the first fetch (96 hits) sees one group only
    layout = CollectionLayout("w", dense_size=DIM).long_documents()
    q = _unit(np.ones(DIM))
    rng = np.random.default_rng(2)
    points = []
    for i in range(200):
        v = _unit(q + 0.01 * rng.normal(size=DIM))
        points.append(PointRecord(point_id("big", i), v, payload=build_payload(text="b", doc_id="big", chunk_index=i)))
    for d in range(5):
        v = _unit(-q + 0.5 * rng.normal(size=DIM))
        points.append(PointRecord(point_id(f"small-{d}", 0), v,
                                  payload=build_payload(text="s", doc_id=f"small-{d}", chunk_index=0)))
    with QdrantStore(backend=EdgeBackend(tmp_path, layout)) as store:
        _fill(store, points)
        groups = store.query_groups(q, top_k=4, group_size=2, hybrid=HybridConfig(mode="dense"))
    assert [g.doc_id for g in groups][0] == "big" and len(groups) == 4
    assert all(len(g.chunks) == (2 if g.doc_id == "big" else 1) for g in groups)


@pytest.mark.asyncio
async def test_opening_with_the_other_layout_fails_clearly(stores: StoreFactory) -> None:
    long_layout = _layout(stores, "mismatch")
    store = stores.open(long_layout)
    await run(store.ensure_collection())
    await stores.close(store)
    plain = CollectionLayout(long_layout.collection, dense_size=DIM)
    with pytest.raises(CollectionMismatchError) as err:
        await run(stores.open(plain).ensure_collection())
    text = str(err.value)
    assert "multivector" in text and "'document'" in text and "long_documents()" in text and "Fix:" in text

    other = stores.layout("plain", dense_size=DIM)
    store = stores.open(other)
    await run(store.ensure_collection())
    await stores.close(store)
    with pytest.raises(CollectionMismatchError, match="has no multivector") as err2:
        await run(stores.open(other.long_documents()).ensure_collection())
    assert "Fix:" in str(err2.value)


@pytest.mark.asyncio
async def test_a_document_vector_needs_the_layout(stores: StoreFactory) -> None:
    store = stores.open(stores.layout("nodoc", dense_size=DIM))
    await run(store.ensure_collection())
    point = PointRecord(document_point_id("d"), None, document_vector=np.ones(DIM, dtype=np.float32))
    with pytest.raises(ConfigError, match="document_vector_name"):
        await run(store.upsert([point]))
    with pytest.raises(ConfigError, match="no multivector"):
        await run(store.query_documents(np.ones(DIM)))


def test_delete_documents_takes_document_points(tmp_path: Path) -> None:
    layout = CollectionLayout("del", dense_size=DIM).long_documents()
    corpus = _corpus(seed=4, docs=3)
    with QdrantStore(backend=EdgeBackend(tmp_path, layout)) as store:
        _fill(store, _points(corpus, max_floats=2 * DIM))
        store.delete_documents(["doc-1"])
        flt: Any = models.Filter(must=[models.FieldCondition(key="doc_id", match=models.MatchValue(value="doc-1"))])
        assert store.count(flt) == 0
        assert {d.doc_id for d in store.query_documents(corpus["doc-1"][0], top_k=5)} == {"doc-0", "doc-2"}
