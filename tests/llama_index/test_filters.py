"""Every LlamaIndex filter operator, translated and run on real Qdrant engines.

The same five payloads are stored on Qdrant Edge (with and without payload indexes),
qdrant-client local mode, and a server when ``GTE_RAG_QDRANT_URL`` is set; each case
states the names the operator must return.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)
from qdrant_client import models

from gte_rag.errors import ConfigError
from gte_rag.llama_index._filters import to_qdrant_filter
from gte_rag.qdrant import CollectionLayout, PointRecord, QdrantStore, open_store, point_id

SERVER_URL = os.environ.get("GTE_RAG_QDRANT_URL")

DOCS: dict[str, dict[str, Any]] = {
    "p1": {"year": 2020, "rating": 1.5, "tags": ["a", "b"], "text": "The Quick brown fox",
           "dt": "2024-01-01T00:00:00Z", "author": "ann"},
    "p2": {"year": 2021, "rating": 2.5, "tags": ["b"], "text": "lazy dog sleeps",
           "dt": "2024-06-01T00:00:00Z", "author": "bob"},
    "p3": {"year": 2022, "rating": 3.5, "tags": [], "text": "quick thinking", "author": "cid"},
    "p4": {"year": 2023, "rating": 2.5, "tags": None, "text": "QUICK", "author": "ann"},
    "p5": {"year": 2021, "text": "Brown bread", "dt": "2025-01-01T00:00:00Z", "author": "dan"},
}

INDEXES = {
    "author": "keyword", "year": "integer", "rating": "float", "tags": "keyword",
    "text": "text", "dt": "datetime",
}


def F(key: str, value: Any, op: FilterOperator = FilterOperator.EQ) -> MetadataFilter:
    return MetadataFilter(key=key, value=value, operator=op)


def FS(*filters: Any, condition: FilterCondition = FilterCondition.AND) -> MetadataFilters:
    return MetadataFilters(filters=list(filters), condition=condition)


Op = FilterOperator
CASES: list[tuple[str, MetadataFilters, set[str]]] = [
    ("eq-int", FS(F("year", 2021)), {"p2", "p5"}),
    ("eq-float", FS(F("rating", 2.5)), {"p2", "p4"}),
    ("eq-str", FS(F("author", "ann")), {"p1", "p4"}),
    ("ne-str", FS(F("author", "ann", Op.NE)), {"p2", "p3", "p5"}),
    ("ne-int", FS(F("year", 2021, Op.NE)), {"p1", "p3", "p4"}),
    ("ne-float", FS(F("rating", 2.5, Op.NE)), {"p1", "p3", "p5"}),
    ("gt", FS(F("year", 2021, Op.GT)), {"p3", "p4"}),
    ("gte", FS(F("year", 2021, Op.GTE)), {"p2", "p3", "p4", "p5"}),
    ("lt", FS(F("year", 2021, Op.LT)), {"p1"}),
    ("lte-float", FS(F("rating", 2.5, Op.LTE)), {"p1", "p2", "p4"}),
    ("gt-datetime", FS(F("dt", "2024-03-01T00:00:00Z", Op.GT)), {"p2", "p5"}),
    ("lte-datetime", FS(F("dt", "2024-06-01T00:00:00+00:00", Op.LTE)), {"p1", "p2"}),
    ("in-str", FS(F("author", ["ann", "dan"], Op.IN)), {"p1", "p4", "p5"}),
    ("in-int", FS(F("year", [2020, 2023], Op.IN)), {"p1", "p4"}),
    ("in-float", FS(F("rating", [1.5, 3.5], Op.IN)), {"p1", "p3"}),
    ("nin", FS(F("author", ["ann", "dan"], Op.NIN)), {"p2", "p3"}),
    ("any", FS(F("tags", ["a", "z"], Op.ANY)), {"p1"}),
    ("any-shared", FS(F("tags", ["b"], Op.ANY)), {"p1", "p2"}),
    ("all", FS(F("tags", ["a", "b"], Op.ALL)), {"p1"}),
    ("all-one", FS(F("tags", ["b"], Op.ALL)), {"p1", "p2"}),
    ("contains", FS(F("tags", "b", Op.CONTAINS)), {"p1", "p2"}),
    ("text-match-case-sensitive", FS(F("text", "quick", Op.TEXT_MATCH)), {"p3"}),
    ("text-match-substring", FS(F("text", "uick", Op.TEXT_MATCH)), {"p1", "p3"}),
    ("text-match-insensitive", FS(F("text", "quick", Op.TEXT_MATCH_INSENSITIVE)), {"p1", "p3", "p4"}),
    ("text-match-insensitive-upper", FS(F("text", "BROWN", Op.TEXT_MATCH_INSENSITIVE)), {"p1", "p5"}),
    ("is-empty", FS(F("tags", None, Op.IS_EMPTY)), {"p3", "p4", "p5"}),
    ("or", FS(F("year", 2020), F("author", "dan"), condition=FilterCondition.OR), {"p1", "p5"}),
    ("not", FS(F("author", "ann"), F("year", 2022), condition=FilterCondition.NOT), {"p2", "p5"}),
    (
        "nested-and-or",
        FS(F("tags", "b", Op.CONTAINS), FS(F("year", 2020), F("year", 2022), condition=FilterCondition.OR)),
        {"p1"},
    ),
    (
        "nested-not-in-and",
        FS(F("year", 2021, Op.GTE), FS(F("author", ["bob"], Op.IN), condition=FilterCondition.NOT)),
        {"p3", "p4", "p5"},
    ),
    ("empty-nested-ignored", FS(F("author", "bob"), FS()), {"p2"}),
]


@pytest.fixture(
    scope="module",
    params=[
        "edge-indexed",
        "edge-plain",
        "local",
        pytest.param(
            "server",
            marks=[
                pytest.mark.qdrant_server,
                pytest.mark.skipif(not SERVER_URL, reason="GTE_RAG_QDRANT_URL is not set"),
            ],
        ),
    ],
)
def filter_store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[QdrantStore]:
    kind = request.param
    indexes = {} if kind == "edge-plain" else INDEXES
    layout = CollectionLayout(f"filters_{uuid.uuid4().hex[:8]}", dense_size=2, payload_indexes=indexes)
    location: str | Path = {
        "local": ":memory:", "server": SERVER_URL or "",
    }.get(kind, tmp_path_factory.mktemp(kind))
    store = open_store(location, layout)
    store.ensure_collection()
    store.upsert(
        [PointRecord(point_id(name, 0), [1.0, float(i)], payload={"name": name, **payload})
         for i, (name, payload) in enumerate(DOCS.items())]
    )
    yield store
    if kind == "server":
        store.backend.drop_collection()
    store.close()


def _names(store: QdrantStore, flt: models.Filter | None) -> set[str]:
    page, _ = store.scroll(filter=flt, limit=100)
    return {p.payload["name"] for p in page}


@pytest.mark.parametrize(("case", "filters", "expected"), CASES, ids=[c[0] for c in CASES])
def test_operator_on_engine(filter_store: QdrantStore, case: str, filters: MetadataFilters, expected: set[str]) -> None:
    flt = to_qdrant_filter(filters)
    assert _names(filter_store, flt) == expected
    assert filter_store.count(flt) == len(expected)


def test_every_operator_is_covered() -> None:
    used = set()

    def walk(fs: MetadataFilters) -> None:
        for f in fs.filters:
            walk(f) if isinstance(f, MetadataFilters) else used.add(f.operator)

    for _, fs, _ in CASES:
        walk(fs)
    assert used == set(FilterOperator)


def test_none_and_empty_filters_give_none() -> None:
    assert to_qdrant_filter(None) is None
    assert to_qdrant_filter(FS()) is None
    assert to_qdrant_filter(FS(FS())) is None


def test_unknown_operator_raises_config_error_naming_it() -> None:
    bogus = MetadataFilter.model_construct(key="x", value=1, operator="regex")
    with pytest.raises(ConfigError, match="regex"):
        to_qdrant_filter(MetadataFilters.model_construct(filters=[bogus], condition=FilterCondition.AND))


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (F("year", [1, 2]), "IN/NIN/ANY/ALL"),
        (F("year", "yesterday", Op.GT), "ISO-8601"),
        (F("text", 3, Op.TEXT_MATCH), "string"),
    ],
)
def test_values_the_operator_cannot_use(bad: MetadataFilter, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        to_qdrant_filter(FS(bad))


def test_translation_shapes() -> None:
    f = to_qdrant_filter(FS(F("rating", 2.5), F("author", "x", Op.NE), condition=FilterCondition.OR))
    assert f is not None and f.must is None and len(f.should) == 2
    assert f.should[0].range == models.Range(gte=2.5, lte=2.5)
    assert isinstance(f.should[1], models.Filter) and f.should[1].must_not[0].match.value == "x"
    t = to_qdrant_filter(FS(F("text", "q", Op.TEXT_MATCH), F("text", "q", Op.TEXT_MATCH_INSENSITIVE)))
    assert isinstance(t.must[0].match, models.MatchSubstring)
    assert isinstance(t.must[1].match, models.MatchText)
