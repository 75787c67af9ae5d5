"""The store-layer call the memory layer added: set_payload by filter, on both embedded engines, sync and async."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from qdrant_client import AsyncQdrantClient, QdrantClient, models

from gte_rag.errors import ConfigError
from gte_rag.qdrant import (
    AsyncClientBackend,
    AsyncEdgeBackend,
    AsyncQdrantStore,
    ClientBackend,
    CollectionLayout,
    EdgeBackend,
    HybridConfig,
    PointRecord,
    QdrantStore,
)

LAYOUT = CollectionLayout("payloads", dense_size=2, sparse_name=None, payload_indexes={"user_id": "keyword"})


def _points() -> list[PointRecord]:
    return [PointRecord(str(uuid.uuid4()), [1.0, float(i)], payload={"user_id": f"u{i % 2}", "n": i}) for i in range(4)]


def _only(user: str) -> models.Filter:
    return models.Filter(must=[models.FieldCondition(key="user_id", match=models.MatchValue(value=user))])


@pytest.mark.parametrize("engine", ["edge", "local"])
def test_set_payload_changes_only_the_matching_points(engine: str, tmp_path: object) -> None:
    backend = EdgeBackend(None, LAYOUT) if engine == "edge" else ClientBackend(QdrantClient(":memory:"), LAYOUT)
    with QdrantStore(backend=backend) as store:
        store.ensure_collection()
        store.upsert(_points())
        store.set_payload({"state": "superseded"}, _only("u0"))
        page, _ = store.scroll(limit=10)
        assert sorted((p.payload["n"], p.payload.get("state")) for p in page) == [
            (0, "superseded"), (1, None), (2, "superseded"), (3, None)]
        # the vectors were kept: every point is still found by a dense query
        assert len(store.query([1.0, 0.0], top_k=4, hybrid=HybridConfig(mode="dense"))) == 4
        with pytest.raises(ConfigError, match="filter"):
            store.set_payload({"x": 1}, None)  # type: ignore[arg-type]


@pytest.mark.parametrize("engine", ["edge", "local"])
def test_async_set_payload(engine: str) -> None:
    async def go() -> None:
        if engine == "edge":
            store = AsyncQdrantStore(backend=AsyncEdgeBackend(EdgeBackend(None, LAYOUT)))
        else:
            store = AsyncQdrantStore(backend=AsyncClientBackend(AsyncQdrantClient(":memory:"), LAYOUT))
        try:
            await store.ensure_collection()
            await store.upsert(_points())
            await store.set_payload({"state": "x"}, _only("u1"))
            assert await store.count(models.Filter(must=[
                models.FieldCondition(key="state", match=models.MatchValue(value="x"))])) == 2
        finally:
            await store.aclose()

    asyncio.run(go())
