"""Parallel search on Qdrant Edge: a hybrid query split into concurrent branch requests and
fused in the client must answer exactly what the one-request form answers (same ids, same
scores), with filters, every fusion it applies to, batches and the async twin; and Qdrant's
fusion arithmetic itself (real engine, nothing mocked)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from qdrant_client import models

from gte_rag._types import SparseVector
from gte_rag.errors import ConfigError, StoreError
from gte_rag.qdrant import CollectionLayout, HybridConfig, PointRecord, StorageConfig, open_store, point_id
from gte_rag.qdrant._edge import PARALLEL_SEARCH_MIN_POINTS, AsyncEdgeBackend, EdgeBackend, default_parallel_search
from gte_rag.qdrant._fusion import dbsf_normalize, fuse_branches, rrf_position_scores

DIM = 24
N = 1_500


def _points(n: int, seed: int = 0) -> list[PointRecord]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, DIM)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    out = []
    for i in range(n):
        terms = np.unique(rng.integers(0, 60, size=int(rng.integers(2, 9))))
        out.append(PointRecord(
            point_id(f"d{i % 50}", i), dense=x[i],
            sparse=SparseVector(tuple(int(t) for t in terms), tuple(float(v) for v in rng.uniform(0.1, 2.0, terms.size))),
            payload={"doc_id": f"d{i % 50}", "chunk_index": i, "group": "a" if i % 3 else "b"},
        ))
    return out


def _queries(n: int, seed: int = 1) -> list[tuple[np.ndarray, SparseVector]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        q = rng.standard_normal(DIM).astype(np.float32)
        terms = np.unique(rng.integers(0, 60, size=4))
        out.append((q / np.linalg.norm(q), SparseVector(tuple(int(t) for t in terms), tuple([1.0] * terms.size))))
    return out


@pytest.fixture(scope="module", params=["float32", "int8"])
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    storage = StorageConfig() if request.param == "float32" else StorageConfig(quantization="int8")
    layout = CollectionLayout("par", dense_size=DIM, sparse_idf=True, storage=storage,
                              payload_indexes={"doc_id": "keyword", "group": "keyword"})
    s = open_store(tmp_path_factory.mktemp("par"), layout)
    s.ensure_collection()
    s.upsert(_points(N))
    s.optimize()  # an HNSW index, as a large collection has: the branches must search it alike
    s.upsert(_points(200, seed=7)[:200])  # and an appendable segment next to it
    yield s
    s.close()


FUSIONS = [HybridConfig(), HybridConfig(fusion="rrf"), HybridConfig(fusion="rrf", rrf_k=2),
           HybridConfig(fusion="rrf", dense_weight=3.0, sparse_weight=1.0), HybridConfig(prefetch_limit=7)]


@pytest.fixture(autouse=True)
def fusions(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the client-side fusions (the real function runs): proof that a query was split."""
    import gte_rag.qdrant._edge as edge_module

    calls: list[int] = []
    real = edge_module.fuse_branches

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(edge_module, "fuse_branches", counted)
    return calls


def _answers(store: Any, parallel: bool, hybrid: HybridConfig, flt: Any = None, top_k: int = 10) -> list[Any]:
    store.backend.parallel_search = parallel
    store.backend.parallel_search_min_points = 0  # split in a small collection too
    try:
        return [[(h.id, h.score, h.payload.get("chunk_index")) for h in
                 store.query(q, s, top_k=top_k, hybrid=hybrid, filter=flt)] for q, s in _queries(40)]
    finally:
        store.backend.parallel_search = default_parallel_search()
        store.backend.parallel_search_min_points = PARALLEL_SEARCH_MIN_POINTS


@pytest.mark.parametrize("hybrid", FUSIONS, ids=["dbsf", "rrf", "rrf-k2", "rrf-weighted", "dbsf-prefetch7"])
def test_split_query_answers_what_one_request_answers(store: Any, hybrid: HybridConfig, fusions: list[int]) -> None:
    one = _answers(store, False, hybrid)
    assert not fusions
    split = _answers(store, True, hybrid)
    assert len(fusions) == 40  # every query was split
    assert split == one  # ids, scores (exactly) and payloads
    assert all(len(a) >= 10 for a in one)


def test_small_collections_are_not_split(store: Any, fusions: list[int]) -> None:
    assert store.count() < PARALLEL_SEARCH_MIN_POINTS
    store.backend.parallel_search = True
    try:
        q, s = _queries(1)[0]
        assert len(store.query(q, s, top_k=5)) >= 5
        assert not fusions
        store.backend.parallel_search_min_points = store.count()  # the count is read afresh later
        store.backend._points_read_at = -float("inf")
        store.query(q, s, top_k=5)
        assert len(fusions) == 1
    finally:
        store.backend.parallel_search = default_parallel_search()
        store.backend.parallel_search_min_points = PARALLEL_SEARCH_MIN_POINTS


def test_split_query_with_a_filter(store: Any) -> None:
    flt = models.Filter(must=[models.FieldCondition(key="group", match=models.MatchValue(value="b"))])
    one = _answers(store, False, HybridConfig(), flt)
    split = _answers(store, True, HybridConfig(), flt)
    assert split == one
    assert {c % 3 for a in split for _, _, c in a if c < N} == {0}


def test_only_rrf_and_dbsf_hybrid_plans_split(store: Any) -> None:
    from gte_rag.qdrant import build_query_plan
    from gte_rag.qdrant._edge import _splits

    q, s = _queries(1)[0]
    layout = store.backend.layout
    plan = lambda h: build_query_plan(layout, dense=q, sparse=s, top_k=5, hybrid=h)  # noqa: E731
    assert _splits(plan(HybridConfig())) and _splits(plan(HybridConfig(fusion="rrf")))
    weighted = HybridConfig(fusion="weighted", sparse_weight=0.5)
    assert not _splits(plan(weighted))  # the formula is computed in the engine, one request
    assert not _splits(plan(HybridConfig(mode="dense"))) and not _splits(plan(HybridConfig(mode="sparse")))
    assert _answers(store, True, weighted) == _answers(store, False, weighted)


def test_query_batch_split_over_cores(store: Any) -> None:
    qs = _queries(23)
    store.backend.parallel_search = False
    one = store.query_many([q for q, _ in qs], [s for _, s in qs], top_k=5)
    store.backend.parallel_search = True
    try:
        split = store.query_many([q for q, _ in qs], [s for _, s in qs], top_k=5)
        single = [store.query(q, s, top_k=5) for q, s in qs]
    finally:
        store.backend.parallel_search = default_parallel_search()
    key = lambda answers: [[(h.id, h.score) for h in a] for a in answers]  # noqa: E731
    assert key(split) == key(one) == key(single)


def test_async_twin_splits_the_same_way(store: Any, fusions: list[int]) -> None:
    backend = store.backend
    assert isinstance(backend, EdgeBackend)
    twin = AsyncEdgeBackend(backend)
    from gte_rag.qdrant import build_query_plan

    plans = [build_query_plan(backend.layout, dense=q, sparse=s, top_k=10, hybrid=HybridConfig()) for q, s in _queries(8)]
    backend.parallel_search = False
    one = [backend.query(p) for p in plans]
    backend.parallel_search, backend.parallel_search_min_points = True, 0

    async def main() -> list[Any]:
        return list(await asyncio.gather(*(twin.query(p) for p in plans)))

    try:
        got = asyncio.run(main())
    finally:
        backend.parallel_search = default_parallel_search()
        backend.parallel_search_min_points = PARALLEL_SEARCH_MIN_POINTS
    assert fusions
    assert [[(h.id, h.score) for h in a] for a in got] == [[(h.id, h.score) for h in a] for a in one]


def test_parallel_search_setting_is_checked(tmp_path: Path) -> None:
    layout = CollectionLayout("x", dense_size=DIM)
    with pytest.raises(ConfigError, match="parallel_search"):
        EdgeBackend(tmp_path, layout, parallel_search="yes")  # type: ignore[arg-type]
    assert EdgeBackend(tmp_path, layout, parallel_search=False).parallel_search is False
    assert EdgeBackend(tmp_path, layout).parallel_search is default_parallel_search()


def test_close_while_split_queries_run(tmp_path: Path) -> None:
    # split queries in flight on many threads while the store closes: each one either answers
    # in full or raises StoreError (closed); none reaches a closed shard or hangs
    layout = CollectionLayout("c", dense_size=DIM, sparse_idf=True)
    s = open_store(tmp_path, layout)
    s.ensure_collection()
    s.upsert(_points(400))
    s.backend.parallel_search, s.backend.parallel_search_min_points = True, 0
    qs = _queries(30)
    outcomes: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        for q, sp in qs:
            try:
                hits = s.query(q, sp, top_k=5)
                result = "ok" if len(hits) >= 5 else "short"
            except StoreError as exc:
                result = "closed" if "closed" in str(exc) else f"error: {exc}"
            with lock:
                outcomes.append(result)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    s.close()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert len(outcomes) == 4 * len(qs)
    assert set(outcomes) <= {"ok", "closed"}


# -- Qdrant's fusion arithmetic ---------------------------------------------------------
class _Hit:
    def __init__(self, id: str, score: float) -> None:
        self.id, self.score, self.payload = id, score, None


def test_dbsf_edge_cases() -> None:
    assert dbsf_normalize([]) == []
    assert dbsf_normalize([3.0]) == [0.5]
    assert dbsf_normalize([2.0, 2.0, 2.0]) == [0.5, 0.5, 0.5]
    got = dbsf_normalize([1.0, 2.0, 3.0])  # mean 2, sample std 1: (s - (2 - 3)) / 6
    assert got == pytest.approx([2 / 6, 3 / 6, 4 / 6], abs=1e-7)
    assert all(isinstance(v, float) for v in got)


def test_rrf_scores_and_weights() -> None:
    assert rrf_position_scores(3, 60) == pytest.approx([1 / 60, 1 / 61, 1 / 62], rel=1e-6)
    # weight 3 stretches ranks: rank 2 (third hit) counts like rank 0 with weight 1
    assert rrf_position_scores(3, 60, 3.0)[2] == pytest.approx(1 / 60, rel=1e-6)
    assert rrf_position_scores(2, 60, 0.0) == [0.0, 0.0]


def test_fuse_branches_sums_and_orders() -> None:
    a = [_Hit("x", 0.9), _Hit("y", 0.5), _Hit("z", 0.1)]
    b = [_Hit("y", 7.0), _Hit("w", 1.0)]
    fused = fuse_branches([a, b], "rrf", rrf_k=2)
    assert [h.id for h, _ in fused] == ["y", "x", "w", "z"]
    assert fused[0][1] == pytest.approx(1 / 3 + 1 / 2, rel=1e-6)
    assert fused[0][0] is a[1]  # the first branch's object is kept
    # equal fused scores are ordered by id
    tie = fuse_branches([[_Hit("b", 1.0)], [_Hit("a", 1.0)]], "dbsf")
    assert [h.id for h, _ in tie] == ["a", "b"] and tie[0][1] == tie[1][1] == 0.5
    with pytest.raises(ValueError, match="weights"):
        fuse_branches([a, b], "rrf", weights=[1.0])
    with pytest.raises(ValueError, match="fusion"):
        fuse_branches([a], "weighted")  # type: ignore[arg-type]


def test_a_gte_rag_bug_in_the_split_path_propagates_unchanged(store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import gte_rag.qdrant._edge as edge_module

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise KeyError("a gte_rag bug")

    monkeypatch.setattr(edge_module, "fuse_branches", broken)
    store.backend.parallel_search, store.backend.parallel_search_min_points = True, 0
    q, s = _queries(1)[0]
    try:
        with pytest.raises(KeyError, match="a gte_rag bug"):
            store.query(q, s, top_k=5)
        store.backend.parallel_search = False
        assert len(store.query(q, s, top_k=5)) >= 5  # the one-request form does not fuse here
    finally:
        store.backend.parallel_search = default_parallel_search()
        store.backend.parallel_search_min_points = PARALLEL_SEARCH_MIN_POINTS
