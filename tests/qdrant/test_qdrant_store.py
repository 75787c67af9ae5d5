"""One suite for every engine (Edge, local mode, server?) and both flavours (sync, async)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import StoreFactory, run
from qdrant_client import models

from gte_rag._types import SparseVector
from gte_rag.errors import CollectionMismatchError, ConfigError
from gte_rag.qdrant import HybridConfig, PointRecord, build_payload, point_id

pytestmark = pytest.mark.asyncio


def _unit(*xs: float) -> np.ndarray:
    v = np.asarray(xs, dtype=np.float32)
    return v / np.linalg.norm(v)


# Hand-made corpus: query dense = e0, query sparse = {1: 1.0} (dot product, no IDF).
#   dense cosine:  A 1.0   B 0.707  D 0.447  C 0.0
#   sparse dot:    B 3.0   D 2.0    A 1.0    (C has no shared term: absent)
HAND = {
    "A": (_unit(1, 0, 0, 0), SparseVector((1,), (1.0,))),
    "B": (_unit(1, 1, 0, 0), SparseVector((1,), (3.0,))),
    "C": (_unit(0, 1, 0, 0), SparseVector((2,), (1.0,))),
    "D": (_unit(1, 2, 0, 0), SparseVector((1, 5), (2.0, 0.5))),
}
Q_DENSE = _unit(1, 0, 0, 0)
Q_SPARSE = SparseVector((1,), (1.0,))


def _hand_points() -> list[PointRecord]:
    return [
        PointRecord(
            point_id(name, 0),
            dense,
            sparse,
            payload=build_payload(text=f"chunk {name}", doc_id=name, chunk_index=0, metadata={"name": name}),
        )
        for name, (dense, sparse) in HAND.items()
    ]


async def _hand_store(stores: StoreFactory):
    store = stores.open(stores.layout())
    await run(store.ensure_collection())
    await run(store.upsert(_hand_points()))
    return store


def _names(hits) -> list[str]:
    return [h.payload["name"] for h in hits]


async def test_ensure_collection_creates_once(stores: StoreFactory) -> None:
    store = stores.open(stores.layout(dense_size=4, model_name="m", multivector_name="mv"))
    assert await run(store.ensure_collection()) is True
    assert await run(store.ensure_collection()) is False
    assert await run(store.count()) == 0


@pytest.mark.parametrize(
    ("changed", "field"),
    [
        ({"model_name": "other-model"}, "model_name"),
        ({"dense_size": 8}, "dense_size"),
        ({"sparse_idf": True}, "sparse_idf"),
        ({"multivector_name": "mv"}, "multivector_name"),
        ({"distance": "dot"}, "distance"),
    ],
)
async def test_layout_mismatch_shows_both_layouts(stores: StoreFactory, changed, field) -> None:
    base = {"dense_size": 4, "model_name": "gte-small"}
    first = stores.open(stores.layout(**base))
    await run(first.ensure_collection())
    await stores.close(first)
    other = stores.open(stores.layout(**{**base, **changed}))
    with pytest.raises(CollectionMismatchError) as info:
        await run(other.ensure_collection())
    err = info.value
    message = str(err)
    assert field in message and "expected" in message and "found" in message
    assert str(changed[field]) in message  # expected value shown
    assert "Fix" in message and "recreate" in message
    assert err.layout_expected.collection == err.collection
    assert field in err.layout_expected.geometry_differences(err.layout_found) or field == "model_name"
    # recreate replaces the collection
    assert await run(other.ensure_collection(recreate=True)) is True


async def test_upsert_is_idempotent_after_interrupted_ingest(stores: StoreFactory) -> None:
    rng = np.random.default_rng(0)
    store = stores.open(stores.layout(dense_size=8))
    await run(store.ensure_collection())
    points = [
        PointRecord(
            point_id(f"doc{i // 5}", i % 5),
            rng.normal(size=8),
            SparseVector((i, 1000), (1.0, 0.5)),
            payload=build_payload(text=f"t{i}", doc_id=f"doc{i // 5}", chunk_index=i % 5),
        )
        for i in range(30)
    ]
    await run(store.upsert(points[:13], batch_size=4))  # "interrupted" half-way
    assert await run(store.count()) == 13
    assert await run(store.upsert(points, batch_size=7)) == 30
    assert await run(store.count()) == 30
    seen: set[str] = set()
    offset = None
    while True:
        page, offset = await run(store.scroll(limit=8, offset=offset))
        seen.update(p.id for p in page)
        if offset is None:
            break
    assert seen == {p.id for p in points}


async def test_delete_documents_and_delete_by_filter(stores: StoreFactory) -> None:
    store = await _hand_store(stores)
    await run(store.delete_documents(["A", "C"]))
    assert await run(store.count()) == 2
    flt = models.Filter(must=[models.FieldCondition(key="name", match=models.MatchValue(value="B"))])
    assert await run(store.count(flt)) == 1
    await run(store.delete(flt))
    left = await run(store.retrieve([point_id(n, 0) for n in "ABCD"]))
    assert [p.payload["name"] for p in left] == ["D"]


async def test_retrieve_keeps_request_order_and_payload(stores: StoreFactory) -> None:
    store = await _hand_store(stores)
    got = await run(store.retrieve([point_id("D", 0), point_id("A", 0), point_id("missing", 0)]))
    assert [p.payload["name"] for p in got] == ["D", "A"]
    payload = got[1].payload
    assert payload["text"] == "chunk A" and payload["doc_id"] == payload["ref_doc_id"] == "A"
    assert payload["document_id"] == "A" and payload["chunk_index"] == 0


async def test_single_mode_orders(stores: StoreFactory) -> None:
    store = await _hand_store(stores)
    dense = await run(store.query(Q_DENSE, top_k=4, hybrid=HybridConfig(mode="dense")))
    assert _names(dense) == ["A", "B", "D", "C"]
    assert dense[0].score == pytest.approx(1.0, abs=1e-5)
    sparse = await run(store.query(sparse=Q_SPARSE, top_k=4, hybrid=HybridConfig(mode="sparse")))
    assert _names(sparse) == ["B", "D", "A"]
    assert [h.score for h in sparse] == pytest.approx([3.0, 2.0, 1.0])


@pytest.mark.parametrize(
    ("hybrid", "expected"),
    [
        # RRF (Qdrant): sum_b 1 / ((pos_b + 1) / w_b + k - 1), pos 0-based.
        # dense A0 B1 D2 C3, sparse B0 D1 A2; k=60, w=1: B .03306 > A .03280 > D > C
        (HybridConfig(fusion="rrf"), ["B", "A", "D", "C"]),
        # w_dense=3 pulls the dense runners-up towards the top: B > D > A > C
        (HybridConfig(fusion="rrf", dense_weight=3.0), ["B", "D", "A", "C"]),
        (HybridConfig(fusion="rrf", sparse_weight=3.0), ["A", "B", "D", "C"]),
        # DBSF (mean +- 3 sigma normalisation, summed) -> B > A > D > C
        (HybridConfig(fusion="dbsf"), ["B", "A", "D", "C"]),
        # mGTE formula dense*1 + sparse*0.1: A 1.1, B 1.007, D 0.647, C 0 -> A > B > D > C
        (HybridConfig(fusion="weighted"), ["A", "B", "D", "C"]),
        # dense*1 + sparse*1: B 3.707, D 2.447, A 2.0, C 0
        (HybridConfig(fusion="weighted", sparse_weight=1.0), ["B", "D", "A", "C"]),
    ],
    ids=["rrf", "rrf-dense3", "rrf-sparse3", "dbsf", "weighted", "weighted-1-1"],
)
async def test_hybrid_fusion_order(stores: StoreFactory, hybrid: HybridConfig, expected) -> None:
    store = await _hand_store(stores)
    hits = await run(store.query(Q_DENSE, Q_SPARSE, top_k=4, hybrid=hybrid))
    assert _names(hits) == expected
    assert all(a.score >= b.score for a, b in zip(hits, hits[1:]))
    if hybrid.fusion == "rrf":
        w_d, w_s = hybrid.weights
        k = hybrid.rrf_k
        dense_pos = {"A": 0, "B": 1, "D": 2, "C": 3}
        sparse_pos = {"B": 0, "D": 1, "A": 2}

        def rrf(pos: int, w: float) -> float:
            return 1.0 / ((pos + 1) / w + k - 1)

        want = [
            rrf(dense_pos[n], w_d) + (rrf(sparse_pos[n], w_s) if n in sparse_pos else 0.0)
            for n in expected
        ]
        assert [h.score for h in hits] == pytest.approx(want, rel=1e-4)
    if hybrid.fusion == "weighted":
        w_d, w_s = hybrid.weights
        dense = {"A": 1.0, "B": math.sqrt(0.5), "C": 0.0, "D": 1 / math.sqrt(5)}
        sparse = {"A": 1.0, "B": 3.0, "C": 0.0, "D": 2.0}
        want = [dense[n] * w_d + sparse[n] * w_s for n in expected]
        assert [h.score for h in hits] == pytest.approx(want, abs=1e-4)


async def test_filter_applies_inside_every_prefetch(stores: StoreFactory) -> None:
    # Group "a" points are the best matches of BOTH branches; a filter applied only after
    # fusion would leave (almost) nothing of group "b" in a prefetch of 5.
    rng = np.random.default_rng(1)
    store = stores.open(stores.layout(dense_size=8))
    await run(store.ensure_collection())
    q = _unit(*([1.0] + [0.0] * 7))
    points = []
    for i in range(40):
        group = "a" if i < 20 else "b"
        base = q * (3.0 if group == "a" else 0.5) + rng.normal(scale=0.3, size=8)
        sparse = SparseVector((7, 100 + i), (5.0 if group == "a" else 1.0, 1.0))
        points.append(
            PointRecord(
                point_id(f"d{i}", 0), base, sparse,
                payload=build_payload(text="x", doc_id=f"d{i}", chunk_index=0, metadata={"group": group, "i": i}),
            )
        )
    await run(store.upsert(points))
    flt = models.Filter(must=[models.FieldCondition(key="group", match=models.MatchValue(value="b"))])
    for fusion in ("rrf", "dbsf", "weighted"):
        hybrid = HybridConfig(fusion=fusion, prefetch_limit=5)
        hits = await run(store.query(q, SparseVector((7,), (1.0,)), top_k=5, hybrid=hybrid, filter=flt))
        assert len(hits) == 5 and {h.payload["group"] for h in hits} == {"b"}, fusion
    # dense-only with filter equals the brute-force top 5 of group b
    dense = await run(store.query(q, top_k=5, hybrid=HybridConfig(mode="dense"), filter=flt))
    vecs = {p.payload["i"]: np.asarray(p.dense) / np.linalg.norm(p.dense) for p in points[20:]}
    best = sorted(vecs, key=lambda i: -float(vecs[i] @ q))[:5]
    assert [h.payload["i"] for h in dense] == best


async def test_multivector_points_round_trip(stores: StoreFactory) -> None:
    store = stores.open(stores.layout(dense_size=4, multivector_name="mv"))
    await run(store.ensure_collection())
    p = PointRecord(point_id("doc", -1), _unit(1, 0, 0, 0), None, [[1, 0, 0, 0], [0, 1, 0, 0]], {"k": 1})
    await run(store.upsert([p]))
    assert await run(store.count()) == 1


async def test_bad_input_is_rejected_before_the_engine(stores: StoreFactory) -> None:
    store = stores.open(stores.layout(dense_size=4, sparse_name=None))
    await run(store.ensure_collection())
    with pytest.raises(ConfigError, match="dims"):
        await run(store.upsert([PointRecord(point_id("x", 0), [1.0, 0.0, 0.0])]))
    with pytest.raises(ConfigError, match="sparse"):
        await run(store.upsert([PointRecord(point_id("x", 0), [1.0, 0, 0, 0], SparseVector((1,), (1.0,)))]))
    with pytest.raises(ConfigError, match="sparse"):
        await run(store.query(Q_DENSE, Q_SPARSE, top_k=3))
    with pytest.raises(ConfigError, match="UUID"):
        await run(store.retrieve(["not-a-uuid"]))


async def test_ties_at_the_cut_are_broken_by_id(stores: StoreFactory) -> None:
    # Five points with the same vectors tie in every mode; the 3 returned are the 3 smallest ids.
    store = stores.open(stores.layout())
    await run(store.ensure_collection())
    points = [
        PointRecord(point_id(f"tie{i}", 0), _unit(1, 1, 0, 0), SparseVector((1,), (1.0,)),
                    payload=build_payload(text="x", doc_id=f"tie{i}", chunk_index=0))
        for i in range(5)
    ]
    await run(store.upsert(points))
    smallest = sorted(p.id for p in points)[:3]
    for hybrid in (HybridConfig(mode="dense"), HybridConfig(mode="sparse")):
        hits = await run(store.query(Q_DENSE, Q_SPARSE, top_k=3, hybrid=hybrid))
        assert [h.id for h in hits] == smallest, hybrid.mode
