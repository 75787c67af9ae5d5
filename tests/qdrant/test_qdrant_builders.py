"""Pure builders: layout, ids, payloads, hybrid config and query plans (no engine)."""

from __future__ import annotations

import uuid

import pytest
from qdrant_client import models

import gte_rag.qdrant as gq
from gte_rag._types import SparseVector
from gte_rag.errors import CollectionMismatchError, ConfigError
from gte_rag.qdrant import (
    CollectionLayout,
    HybridConfig,
    PointRecord,
    build_payload,
    SearchHit,
    build_query_plan,
    check_layout,
    point_id,
    rank_hits,
)
from gte_rag.qdrant._query import TIE_MARGIN


def test_public_names_are_sorted_and_exported() -> None:
    assert gq.__all__ == sorted(gq.__all__)
    public = {n for n in dir(gq) if not n.startswith("_")}
    assert set(gq.__all__) <= public


def test_point_id_is_deterministic_uuid5() -> None:
    a = point_id("doc-1", 3)
    assert a == point_id("doc-1", 3)
    assert a != point_id("doc-1", 4) and a != point_id("doc-2", 3)
    assert uuid.UUID(a).version == 5
    with pytest.raises(ConfigError):
        point_id("", 0)
    with pytest.raises(ConfigError):
        point_id("d", True)  # type: ignore[arg-type]


def test_point_record_normalises_and_validates() -> None:
    p = PointRecord(point_id("d", 0).upper(), [1, 2, 3], SparseVector((3, 1), (0.5, 1.0)))
    assert p.id == point_id("d", 0) and p.dense == [1.0, 2.0, 3.0]
    with pytest.raises(ConfigError, match="UUID"):
        PointRecord("doc-1", [1.0])
    with pytest.raises(ConfigError, match="multivector"):
        PointRecord(point_id("d", 0), [1.0], multivector=[1.0, 2.0])


def test_build_payload_is_llama_index_compatible() -> None:
    payload = build_payload(
        text="hello", doc_id="d1", chunk_index=2, metadata={"lang": "en"}, node_content='{"x": 1}'
    )
    assert payload == {
        "lang": "en", "text": "hello", "chunk_index": 2, "doc_id": "d1", "ref_doc_id": "d1",
        "document_id": "d1", "_node_content": '{"x": 1}', "_node_type": "TextNode",
    }
    assert "_node_content" not in build_payload(text="t", doc_id="d", chunk_index=0)
    with pytest.raises(ConfigError, match="reserved"):
        build_payload(text="t", doc_id="d", chunk_index=0, metadata={"text": "other"})


def test_layout_validation_and_round_trip() -> None:
    layout = CollectionLayout(
        "c", dense_size=8, multivector_name="mv", payload_indexes={"b": "integer", "a": "keyword"}
    )
    assert layout.multivector_size == 8
    assert layout.payload_indexes == (("a", "keyword"), ("b", "integer"))
    assert CollectionLayout.from_dict(layout.to_dict()) == layout
    assert hash(layout) == hash(CollectionLayout.from_dict(layout.to_dict()))
    for bad in (
        {"dense_size": 0},
        {"dense_size": 4, "distance": "l2"},
        {"dense_size": 4, "sparse_name": None, "sparse_idf": True},
        {"dense_size": 4, "multivector_name": "dense"},
        {"dense_size": 4, "payload_indexes": {"x": "geo-ish"}},
    ):
        with pytest.raises(ConfigError):
            CollectionLayout("c", **bad)
    with pytest.raises(ConfigError, match="path separators"):
        CollectionLayout("a/b", dense_size=4)


def test_check_layout_message_side_by_side() -> None:
    want = CollectionLayout("c", dense_size=768, model_name="gte-multilingual-base")
    found = CollectionLayout("c", dense_size=384, model_name="gte-small", sparse_idf=True)
    with pytest.raises(CollectionMismatchError) as info:
        check_layout(want, found)
    text = str(info.value)
    for fragment in ("gte-multilingual-base", "gte-small", "768", "384", "sparse_idf", "Fix"):
        assert fragment in text
    assert info.value.layout_found is found and info.value.collection == "c"
    # a collection without a recorded model is accepted on geometry alone
    check_layout(want, CollectionLayout("c", dense_size=768))


def test_hybrid_config_defaults_per_fusion() -> None:
    assert HybridConfig().weights == (1.0, 1.0)
    assert HybridConfig(fusion="weighted").weights == (1.0, 0.1)
    assert HybridConfig(fusion="weighted", sparse_weight=0.3).weights == (1.0, 0.3)
    assert HybridConfig().resolve_prefetch_limit(10) == 100
    assert HybridConfig().resolve_prefetch_limit(50) == 200
    assert HybridConfig(prefetch_limit=5).resolve_prefetch_limit(10) == 10
    with pytest.raises(ConfigError, match="dbsf"):
        HybridConfig(fusion="dbsf", dense_weight=2.0)
    with pytest.raises(ConfigError, match="fusion"):
        HybridConfig(fusion="linear")  # type: ignore[arg-type]


LAYOUT = CollectionLayout("c", dense_size=3)
FLT = models.Filter(must=[models.FieldCondition(key="k", match=models.MatchValue(value="v"))])


@pytest.mark.parametrize("fusion", ["rrf", "dbsf", "weighted"])
def test_hybrid_plan_is_one_request_with_filter_everywhere(fusion: str) -> None:
    plan = build_query_plan(
        LAYOUT, dense=[1, 0, 0], sparse=SparseVector((1,), (1.0,)), top_k=7,
        hybrid=HybridConfig(fusion=fusion), filter=FLT,  # type: ignore[arg-type]
    )
    assert plan.top_k == 7 and plan.limit == 7 + TIE_MARGIN and plan.filter is FLT
    assert [p.using for p in plan.prefetch] == ["dense", "sparse"]
    assert all(p.filter is FLT and p.limit == 100 for p in plan.prefetch)
    if fusion == "rrf":
        assert plan.query == models.RrfQuery(rrf=models.Rrf(k=60))
    elif fusion == "dbsf":
        assert plan.query == models.FusionQuery(fusion=models.Fusion.DBSF)
    else:
        assert plan.query.defaults == {"$score[0]": 0.0, "$score[1]": 0.0}


def test_single_mode_plans_and_errors() -> None:
    dense = build_query_plan(LAYOUT, dense=[1, 0, 0], sparse=None, top_k=3, hybrid=HybridConfig(mode="dense"))
    assert dense.prefetch == () and dense.using == "dense"
    with pytest.raises(ConfigError, match="shape"):
        build_query_plan(LAYOUT, dense=[1, 0], sparse=None, top_k=3, hybrid=HybridConfig(mode="dense"))
    with pytest.raises(ConfigError, match="sparse query"):
        build_query_plan(LAYOUT, dense=[1, 0, 0], sparse=None, top_k=3, hybrid=HybridConfig())
    with pytest.raises(ConfigError, match="top_k"):
        build_query_plan(LAYOUT, dense=[1, 0, 0], sparse=None, top_k=0, hybrid=HybridConfig(mode="dense"))
    weighted_rrf = build_query_plan(
        LAYOUT, dense=[1, 0, 0], sparse=SparseVector((1,), (1.0,)), top_k=3,
        hybrid=HybridConfig(rrf_k=10, dense_weight=2.0),
    )
    assert weighted_rrf.query.rrf == models.Rrf(k=10, weights=[2.0, 1.0])


def test_rank_hits_breaks_ties_by_id_whatever_the_engine_order() -> None:
    hits = [SearchHit(id=i, score=sc, payload={}) for i, sc in [("c", 0.5), ("b", 0.9), ("a", 0.5), ("d", 0.1)]]
    expected = ["b", "a", "c"]
    assert [h.id for h in rank_hits(hits, 3)] == expected
    assert [h.id for h in rank_hits(list(reversed(hits)), 3)] == expected


def test_weighted_default_on_bm25_collection_warns() -> None:
    bm25 = CollectionLayout("bm25", dense_size=3, sparse_idf=True)
    with pytest.warns(UserWarning, match="calibrated for learned mGTE weights"):
        build_query_plan(bm25, dense=[1, 0, 0], sparse=SparseVector((1,), (1.0,)), top_k=3,
                         hybrid=HybridConfig(fusion="weighted"))
    # explicit weights are the caller's choice: no warning
    build_query_plan(bm25, dense=[1, 0, 0], sparse=SparseVector((1,), (1.0,)), top_k=3,
                     hybrid=HybridConfig(fusion="weighted", sparse_weight=0.01))
