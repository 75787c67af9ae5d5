"""Regression tests for storage / ingest / migrate fixes: real Qdrant Edge and qdrant-client
local mode, never mocked."""

from __future__ import annotations

import asyncio
import gc
import json
import threading
import time
import uuid
from collections.abc import Generator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gte_rag._types import SparseVector
from gte_rag.embed import GteEncoder
from gte_rag.errors import CollectionMismatchError, ConfigError
from gte_rag.kb import KnowledgeBase
from gte_rag.kb._ingest import IngestStats, Ingestor
from gte_rag.kb._storage import resolve_storage
from gte_rag.qdrant import (
    CollectionLayout,
    PointRecord,
    StorageConfig,
    migrate_collection,
    open_async_store,
    open_store,
)


@pytest.fixture(scope="module")
def encoder(minilm_encoder: GteEncoder) -> GteEncoder:
    return minilm_encoder


def test_add_documents_inside_using_shard_with_close_pending(tmp_path: Path, encoder: GteEncoder) -> None:
    """The pipelined upsert must not wait on a worker thread while this thread holds the shard
    and another thread's close() waits for it (it deadlocked)."""
    kb = KnowledgeBase(tmp_path / "kb", encoder=encoder, chunk_size=40, chunk_overlap=4)
    kb.add_documents(["warm up text"])
    backend: Any = kb.store.backend
    outcome: dict[str, Any] = {}

    def inside() -> None:
        try:
            with backend.using_shard():
                closer = threading.Thread(target=kb.store.close, daemon=True)
                closer.start()
                deadline = time.monotonic() + 10
                while not backend._exclusive and time.monotonic() < deadline:  # close() is waiting
                    time.sleep(0.01)
                outcome["close_waiting"] = backend._exclusive
                kb.add_documents(["some more text about rivers", "and glaciers"])
                outcome["added"] = True
            closer.join(30)
            outcome["closed"] = not closer.is_alive()
        except BaseException as exc:  # pragma: no cover - reported below
            outcome["error"] = exc

    worker = threading.Thread(target=inside, daemon=True)
    worker.start()
    worker.join(20)
    hung = worker.is_alive()
    if hung:  # unblock the deadlock so the session can go on, then fail
        with backend._cond:
            backend._exclusive = False
            backend._cond.notify_all()
        worker.join(30)
    assert not hung, "add_documents inside using_shard() deadlocked with a pending close()"
    assert "error" not in outcome, outcome.get("error")
    assert outcome == {"close_waiting": True, "added": True, "closed": True}


def _bad_then_failing_encode(store: Any) -> Generator[Any, Any, None]:
    """A write whose upsert fails (wrong dense size) while the next batch's encoding fails."""
    yield ("upsert", ([PointRecord(str(uuid.UUID(int=1)), [0.1, 0.2, 0.3], payload={"doc_id": "a"})],), {})
    raise RuntimeError("encoding failed")


def test_upsert_error_not_lost_behind_encoding_error_sync(tmp_path: Path, encoder: GteEncoder) -> None:
    with open_store(tmp_path / "e", CollectionLayout("c", dense_size=4, sparse_name=None)) as store:
        store.ensure_collection()
        ing = Ingestor(encoder, store)
        with pytest.raises(Exception) as info:
            ing._run_sync(_bad_then_failing_encode(store), IngestStats())
        assert not isinstance(info.value, RuntimeError), "the upsert's error was lost"
        assert isinstance(info.value.__context__, RuntimeError)


def test_upsert_error_not_lost_behind_encoding_error_async(tmp_path: Path, encoder: GteEncoder) -> None:
    async def main() -> BaseException:
        store = open_async_store(tmp_path / "e", CollectionLayout("c", dense_size=4, sparse_name=None))
        try:
            await store.ensure_collection()
            ing = Ingestor(encoder, async_store=store)
            try:
                await ing._run_async(_bad_then_failing_encode(store), IngestStats())
            except BaseException as exc:
                return exc
            raise AssertionError("no error")
        finally:
            await store.aclose()

    loop = asyncio.new_event_loop()
    unretrieved: list[Any] = []
    loop.set_exception_handler(lambda _loop, ctx: unretrieved.append(ctx))
    try:
        error = loop.run_until_complete(main())
    finally:
        loop.close()
    gc.collect()
    assert not isinstance(error, RuntimeError), "the upsert's error was lost"
    assert isinstance(error.__context__, RuntimeError)
    assert not unretrieved, unretrieved


# ---------------------------------------------------------------- resolve_storage


def _int8_record() -> CollectionLayout:
    return CollectionLayout("b", dense_size=4, storage=StorageConfig(quantization="int8", oversampling=3.0,
                                                                     auto_index_points=None, hnsw_m=8))


def test_resolve_storage_ef_only_change_keeps_recorded() -> None:
    got = resolve_storage(StorageConfig(hnsw_ef=256), _int8_record(), "./kb")
    assert (got.quantization, got.oversampling, got.auto_index_points, got.hnsw_m, got.hnsw_ef) == (
        "int8", 3.0, None, 8, 256)


def test_resolve_storage_restating_creation_keeps_search_settings() -> None:
    got = resolve_storage(StorageConfig(quantization="int8", hnsw_ef=256), _int8_record(), "./kb")
    assert (got.oversampling, got.auto_index_points, got.hnsw_m, got.hnsw_ef) == (3.0, None, 8, 256)
    got = resolve_storage(StorageConfig(auto_index_points=50), _int8_record(), "./kb")
    assert (got.quantization, got.oversampling, got.auto_index_points) == ("int8", 3.0, 50)


def test_resolve_storage_explicit_creation_change_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"quantization.*int8.*none.*migrate"):
        resolve_storage(StorageConfig(quantization="none"), _int8_record(), "./kb")
    with pytest.raises(ConfigError, match=r"hnsw_m"):
        resolve_storage(StorageConfig(hnsw_m=16), _int8_record(), "./kb")


def test_resolve_storage_legacy_collection_does_not_claim_int8() -> None:
    legacy = CollectionLayout("b", dense_size=4, storage=None)
    with pytest.raises(ConfigError, match=r"recorded no storage settings.*quantization"):
        resolve_storage(StorageConfig(quantization="int8"), legacy, "./kb")
    got = resolve_storage(StorageConfig(hnsw_ef=64), legacy, "./kb")
    assert (got.quantization, got.hnsw_ef) == ("none", 64)


# ---------------------------------------------------------------- migrate_collection



def _source(loc: Path, storage: StorageConfig, encoder: dict[str, Any] | None = None, n0: int = 1,
            long_docs: bool = False) -> tuple[CollectionLayout, list[PointRecord]]:
    rng = np.random.default_rng(n0)
    lay = CollectionLayout("gte_rag", dense_size=4, model_name="m", storage=storage,
                           encoder=encoder or {"model": "m", "query_instruction": "A"})
    if long_docs:
        lay = lay.long_documents()
    pts = [PointRecord(str(uuid.UUID(int=i + n0)), rng.random(4).tolist(), SparseVector((1, 5), (0.5, 0.25)),
                       payload={"doc_id": f"d{i + n0}"}) for i in range(5)]
    if long_docs:
        pts.append(PointRecord(str(uuid.UUID(int=n0 + 100)), None, None, multivector=rng.random((3, 4)).tolist(),
                               document_vector=rng.random(4).tolist(), payload={"doc_id": "long", "kind": "document"}))
    with open_store(loc, lay) as s:
        s.ensure_collection()
        s.upsert(pts)
    return lay, pts


def _recorded_storage(loc: Path) -> dict[str, Any]:
    rec = json.loads((loc / "gte_rag" / "gte_rag_layout.json").read_text())["gte_rag_layout"]
    return dict(rec["storage"])


@pytest.mark.parametrize("engine", ["auto", "client"])
def test_migrate_resume_rewrites_a_point_with_stale_vectors(tmp_path: Path, engine: Any) -> None:
    lay, pts = _source(tmp_path / "src", StorageConfig(quantization="int8", hnsw_m=8, datatype="float16"),
                       long_docs=True)
    migrate_collection(tmp_path / "src", tmp_path / "dst", target_engine=engine)
    again = migrate_collection(tmp_path / "src", tmp_path / "dst", target_engine=engine)
    assert (again.copied, again.unchanged) == (0, len(pts))  # float16 rounding is not a difference
    stale_dense = PointRecord(pts[0].id, [9, 9, 9, 1], pts[0].sparse, payload=dict(pts[0].payload))
    stale_sparse = PointRecord(pts[1].id, pts[1].dense, SparseVector((1, 6), (0.5, 0.25)), payload=dict(pts[1].payload))
    stale_multi = PointRecord(pts[-1].id, None, None, multivector=[[1, 0, 0, 0]], document_vector=pts[-1].document_vector,
                              payload=dict(pts[-1].payload))
    with open_store(tmp_path / "dst", lay, engine=engine) as d:
        d.upsert([stale_dense, stale_sparse, stale_multi])
    st = migrate_collection(tmp_path / "src", tmp_path / "dst", target_engine=engine)
    assert (st.copied, st.unchanged) == (3, len(pts) - 3)
    assert migrate_collection(tmp_path / "src", tmp_path / "dst", target_engine=engine).copied == 0


def test_migrate_warns_when_the_target_has_other_points(tmp_path: Path) -> None:
    lay, _ = _source(tmp_path / "src", StorageConfig())
    _source(tmp_path / "dst", StorageConfig(), n0=100)
    with pytest.warns(UserWarning, match=r"holds 10 points and the source 5"):
        migrate_collection(tmp_path / "src", tmp_path / "dst")


def test_migrate_storage_applies_on_top_of_the_source(tmp_path: Path) -> None:
    _source(tmp_path / "src", StorageConfig(quantization="int8", hnsw_m=8, oversampling=2.0))
    migrate_collection(tmp_path / "src", tmp_path / "dst", storage=StorageConfig(on_disk=True))
    got = _recorded_storage(tmp_path / "dst")
    assert (got["on_disk"], got["quantization"], got["hnsw_m"], got["oversampling"]) == (True, "int8", 8, 2.0)
    migrate_collection(tmp_path / "src", tmp_path / "dst2", storage=StorageConfig(quantization="none"))
    got = _recorded_storage(tmp_path / "dst2")
    assert (got["quantization"], got["hnsw_m"], got["oversampling"]) == ("none", 8, None)


def test_cli_storage_flag_keeps_the_sources_other_settings(tmp_path: Path) -> None:
    from gte_rag.cli import main

    _source(tmp_path / "src", StorageConfig(quantization="int8", hnsw_m=8, datatype="float16"))
    assert main(["migrate", "--from", str(tmp_path / "src"), "--to", str(tmp_path / "cli"), "--on-disk",
                 "--no-progress"]) == 0
    got = _recorded_storage(tmp_path / "cli")
    assert (got["on_disk"], got["quantization"], got["hnsw_m"], got["datatype"]) == (True, "int8", 8, "float16")


def test_migrate_into_an_existing_target_with_another_encoder_record_is_refused(tmp_path: Path) -> None:
    _source(tmp_path / "src", StorageConfig())
    _source(tmp_path / "dst", StorageConfig(), encoder={"model": "m", "query_instruction": "B"}, n0=100)
    with pytest.raises(CollectionMismatchError, match=r"query_instruction.*'A'.*'B'"):
        migrate_collection(tmp_path / "src", tmp_path / "dst")


def test_migrate_into_an_existing_target_with_other_storage_is_refused(tmp_path: Path) -> None:
    _source(tmp_path / "src", StorageConfig())
    migrate_collection(tmp_path / "src", tmp_path / "dst")
    with pytest.raises(ConfigError, match=r"quantization.*none.*int8"):
        migrate_collection(tmp_path / "src", tmp_path / "dst", storage=StorageConfig(quantization="int8"))
    assert _recorded_storage(tmp_path / "dst")["quantization"] == "none"
    # restating what the target has is fine
    migrate_collection(tmp_path / "src", tmp_path / "dst", storage=StorageConfig(quantization="none"))


def test_migrate_to_a_temporary_target_is_refused(tmp_path: Path) -> None:
    _source(tmp_path / "src", StorageConfig())
    with pytest.raises(ConfigError, match=r"target=None.*temporary"):
        migrate_collection(tmp_path / "src", None)


# ---------------------------------------------------------------- recorded settings = actual ones
@pytest.mark.parametrize("engine", ["auto", "client"])
def test_legacy_on_disk_argument_is_recorded_in_the_storage(tmp_path: Path, engine: Any) -> None:
    with open_store(tmp_path / "e", CollectionLayout("a", dense_size=4), engine=engine, on_disk=True) as s:
        s.ensure_collection()
    with open_store(tmp_path / "e", CollectionLayout("a", dense_size=4), engine=engine) as s:
        found = s.backend.read_layout()
    assert found is not None and found.storage is not None and found.storage.on_disk is True


# ---------------------------------------------------------------- auto_index_points on reopening
def _sparse_points(n: int, dim: int = 8) -> list[PointRecord]:
    rng = np.random.default_rng(0)
    return [PointRecord(str(uuid.UUID(int=i + 1)), rng.random(dim).tolist(), SparseVector((i % 5,), (1.0,)),
                        payload={"doc_id": str(i)}) for i in range(n)]


def _indexed(store: Any) -> int:
    with store.backend.using_shard() as shard:
        return int(shard.info().indexed_vectors_count)


def test_lowering_auto_index_points_on_reopening_builds(tmp_path: Path) -> None:
    with open_store(tmp_path / "e", CollectionLayout("a", dense_size=8)) as s:  # default 20000
        s.ensure_collection()
        s.upsert(_sparse_points(300))
    with open_store(tmp_path / "e", CollectionLayout("a", dense_size=8,
                                                     storage=StorageConfig(auto_index_points=100))) as s:
        s.ensure_collection()
        assert s.unindexed_points() >= 100
        assert s.ensure_indexed(100) is True
        assert s.unindexed_points() == 0 and _indexed(s) >= 600
        first = _sparse_points(1)[0]
        assert [h.id for h in s.query(first.dense, first.sparse, top_k=1)]


def test_a_shard_with_a_fixed_indexing_threshold_still_builds(tmp_path: Path) -> None:
    """Shards made before: the threshold was fixed from auto_index_points at creation."""
    import qdrant_edge as qe

    from gte_rag.qdrant._edge import edge_config

    lay = CollectionLayout("a", dense_size=8)
    with open_store(tmp_path / "e", lay) as s:
        s.ensure_collection()
        s.upsert(_sparse_points(300))
    new = edge_config(lay)
    old = qe.EdgeConfig(vectors=new.vectors, sparse_vectors=new.sparse_vectors, hnsw_config=new.hnsw_config,
                        optimizers=qe.EdgeOptimizersConfig(indexing_threshold=625))  # 20000 points of 8 floats
    qe.EdgeShard.load(str(tmp_path / "e" / "a"), old).close()
    with open_store(tmp_path / "e", replace_storage(lay, auto_index_points=100)) as s:
        s.ensure_collection()
        assert s.ensure_indexed(100) is True
        assert s.unindexed_points() == 0
        assert s.count() == 300 and s.count(_doc_filter("7")) == 1  # data and payload index kept


def replace_storage(lay: CollectionLayout, **kw: Any) -> CollectionLayout:
    from dataclasses import replace

    return replace(lay, storage=replace(lay.storage_settings, **kw))


def _doc_filter(doc_id: str) -> Any:
    from qdrant_client import models

    return models.Filter(must=[models.FieldCondition(key="doc_id", match=models.MatchValue(value=doc_id))])
