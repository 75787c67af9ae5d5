"""Storage settings on both embedded engines, batched queries, the automatic index build,
the local-mode size warning and server upsert retries (real engines, nothing mocked)."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gte_rag._types import SparseVector
from gte_rag.errors import ConfigError, StoreUnavailableError
from gte_rag.qdrant import CollectionLayout, HybridConfig, PointRecord, StorageConfig, open_store, point_id
from gte_rag.qdrant import _client as client_module

DIM = 16
INT8 = StorageConfig(quantization="int8", quantile=0.99, oversampling=2.0, on_disk=True, datatype="float16",
                     hnsw_m=8, hnsw_ef_construct=32, hnsw_ef=64)


def _vectors(n: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _points(n: int, seed: int = 0) -> list[PointRecord]:
    x = _vectors(n, seed)
    return [
        PointRecord(point_id("d", i), dense=x[i], sparse=SparseVector((i % 7, 10 + i % 5), (1.0, 0.5)),
                    payload={"doc_id": "d", "chunk_index": i})
        for i in range(n)
    ]


@pytest.fixture(params=["edge", "local"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    return tmp_path / "kb" if request.param == "edge" else ":memory:"


# -- the vocabulary ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"quantization": "int4"}, "quantization"),
        ({"datatype": "bfloat16"}, "datatype"),
        ({"hnsw_m": 0}, "hnsw_m"),
        ({"hnsw_ef": True}, "hnsw_ef"),
        ({"oversampling": 2.0}, "quantization='int8'"),
        ({"quantization": "int8", "quantile": 0.2}, "quantile"),
        ({"on_disk": "yes"}, "on_disk"),
        ({"auto_index_points": 0}, "auto_index_points"),
    ],
)
def test_bad_storage_settings_name_the_value(kwargs: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace("(", r"\(")):
        StorageConfig(**kwargs)


def test_storage_is_recorded_with_the_layout() -> None:
    layout = CollectionLayout("docs", dense_size=DIM, storage=INT8)
    data = json.loads(json.dumps(layout.to_dict()))
    assert data["storage"]["quantization"] == "int8"
    assert CollectionLayout.from_dict(data).storage == INT8
    with pytest.raises(ConfigError, match="StorageConfig"):
        CollectionLayout("docs", dense_size=DIM, storage="int8")  # type: ignore[arg-type]


def test_edge_shard_gets_the_settings(tmp_path: Path) -> None:
    layout = CollectionLayout("docs", dense_size=DIM, storage=INT8)
    with open_store(tmp_path, layout) as store:
        store.ensure_collection()
    config = json.loads((tmp_path / "docs" / "edge_config.json").read_text(encoding="utf-8"))
    dense = config["vectors"]["dense"]
    assert dense["datatype"] == "float16" and dense["on_disk"] is True
    assert dense["quantization_config"]["scalar"]["type"] == "int8"
    assert dense["quantization_config"]["scalar"]["quantile"] == pytest.approx(0.99)
    assert config["hnsw_config"]["m"] == 8 and config["hnsw_config"]["ef_construct"] == 32


def test_new_collections_get_the_large_collection_defaults(tmp_path: Path) -> None:
    from gte_rag.qdrant import DEFAULT_HNSW_EF, DEFAULT_HNSW_EF_CONSTRUCT, DEFAULT_HNSW_M

    defaults = StorageConfig()
    assert (defaults.hnsw_m, defaults.hnsw_ef_construct, defaults.search_ef) == (32, 200, 512)
    assert (DEFAULT_HNSW_M, DEFAULT_HNSW_EF_CONSTRUCT, DEFAULT_HNSW_EF) == (32, 200, 512)
    assert StorageConfig(hnsw_ef=64).search_ef == 64
    with open_store(tmp_path, CollectionLayout("docs", dense_size=DIM)) as store:
        store.ensure_collection()
        store.upsert(_points(50))
        # every query carries the search ef (without one, Qdrant searches with ef_construct candidates)
        assert store.backend._search_params().hnsw_ef == DEFAULT_HNSW_EF  # type: ignore[attr-defined]
        assert store.query(_vectors(1)[0], None, top_k=1, hybrid=HybridConfig(mode="dense"))
    config = json.loads((tmp_path / "docs" / "edge_config.json").read_text(encoding="utf-8"))
    assert config["hnsw_config"]["m"] == DEFAULT_HNSW_M and config["hnsw_config"]["ef_construct"] == 200


def test_a_collection_without_recorded_settings_keeps_qdrants_graph_defaults() -> None:
    from gte_rag.kb._storage import resolve_storage
    from gte_rag.qdrant._layout import LEGACY_STORAGE

    legacy = CollectionLayout("docs", dense_size=DIM, storage=None)
    assert legacy.storage_settings == LEGACY_STORAGE
    assert (LEGACY_STORAGE.hnsw_m, LEGACY_STORAGE.hnsw_ef_construct) == (16, 100)
    resolved = resolve_storage(None, legacy, "./kb")
    assert (resolved.hnsw_m, resolved.hnsw_ef_construct) == (16, 100)
    assert resolve_storage(StorageConfig(hnsw_m=16, hnsw_ef=300), legacy, "./kb").search_ef == 300
    with pytest.raises(ConfigError, match=r"recorded no storage settings.*hnsw_m"):
        resolve_storage(StorageConfig(hnsw_m=32), legacy, "./kb")


def test_local_client_collection_gets_the_settings() -> None:
    layout = CollectionLayout("docs", dense_size=DIM, storage=INT8)
    with open_store(":memory:", layout) as store:
        store.ensure_collection()
        info = store.backend.client.get_collection("docs")  # type: ignore[attr-defined]
        dense = info.config.params.vectors["dense"]
        assert dense.on_disk is True and dense.datatype.value == "float16"
        assert dense.quantization_config.scalar.type.value == "int8"


def test_settings_survive_reopening_and_queries_use_them(location: Any) -> None:
    layout = CollectionLayout("docs", dense_size=DIM, storage=INT8)
    points = _points(300)
    store = open_store(location, layout)
    try:
        store.ensure_collection()
        store.upsert(points)
        store.optimize()
        target = np.asarray(points[17].dense, dtype=np.float32)
        for mode in ("dense", "hybrid"):
            hits = store.query(target, points[17].sparse, top_k=3, hybrid=HybridConfig(mode=mode))  # type: ignore[arg-type]
            assert hits[0].id == points[17].id
        found = store.backend.read_layout()
        assert found is not None and found.storage == INT8
    finally:
        store.close()
    if location != ":memory:":
        with open_store(location, CollectionLayout("docs", dense_size=DIM)) as again:
            found = again.backend.read_layout()
            assert found is not None and found.storage == INT8


@pytest.mark.parametrize("option", [{"shard_number": 2}, {"replication_factor": 2}, {"write_consistency_factor": 2}])
def test_server_only_settings_are_refused_on_embedded_engines(location: Any, option: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="server only.*http"):
        open_store(location, CollectionLayout("docs", dense_size=DIM), **option)


def test_raw_quantization_config_points_to_the_vocabulary(tmp_path: Path) -> None:
    from qdrant_client import models

    raw = models.ScalarQuantization(scalar=models.ScalarQuantizationConfig(type=models.ScalarType.INT8))
    with pytest.raises(ConfigError, match=r"StorageConfig\(quantization='int8'\)"):
        open_store(tmp_path, CollectionLayout("docs", dense_size=DIM), quantization_config=raw)


def test_contradicting_on_disk_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="on_disk"):
        open_store(tmp_path, CollectionLayout("docs", dense_size=DIM, storage=INT8), on_disk=False)


# -- batched queries ---------------------------------------------------------------------
class _CountingBackend:
    """A real backend, with its engine calls counted (everything else passes through)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name in ("query", "query_batch") and callable(attr):
            def counted(*args: Any, **kwargs: Any) -> Any:
                self.calls.append(name)
                return attr(*args, **kwargs)
            return counted
        return attr


@pytest.mark.parametrize("mode", ["dense", "sparse", "hybrid"])
def test_query_many_is_one_batch_with_the_results_of_single_queries(location: Any, mode: str) -> None:
    points = _points(120)
    with open_store(location, CollectionLayout("docs", dense_size=DIM)) as store:
        store.ensure_collection()
        store.upsert(points)
        queries = _vectors(5, seed=3)
        sparse = [SparseVector((i, 10 + i), (1.0, 1.0)) for i in range(5)]
        config = HybridConfig(mode=mode)  # type: ignore[arg-type]
        single = [store.query(q if mode != "sparse" else None, s if mode != "dense" else None, top_k=4, hybrid=config)
                  for q, s in zip(queries, sparse)]
        counting = _CountingBackend(store.backend)
        store._backend = counting  # type: ignore[assignment]
        many = store.query_many(None if mode == "sparse" else list(queries), None if mode == "dense" else sparse,
                                top_k=4, hybrid=config)
        store._backend = counting.inner
    assert counting.calls == ["query_batch"]
    assert [[h.id for h in r] for r in many] == [[h.id for h in r] for r in single]
    assert [[round(h.score, 5) for h in r] for r in many] == [[round(h.score, 5) for h in r] for r in single]


class _SizedBackend(_CountingBackend):
    """Also records how many plans each batch request carried."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.sizes: list[int] = []

    def __getattr__(self, name: str) -> Any:
        attr = super().__getattr__(name)
        if name == "query_batch":
            def sized(plans: Any) -> Any:
                self.sizes.append(len(plans))
                return attr(plans)
            return sized
        return attr


def test_query_many_splits_a_long_list_into_bounded_requests(location: Any) -> None:
    from gte_rag.qdrant import QUERY_BATCH_MAX

    n = 2 * QUERY_BATCH_MAX + 5
    with open_store(location, CollectionLayout("docs", dense_size=DIM)) as store:
        store.ensure_collection()
        store.upsert(_points(60))
        queries = _vectors(n, seed=5)
        sparse = [SparseVector((i % 7, 10 + i % 5), (1.0, 1.0)) for i in range(n)]
        single = [[h.id for h in store.query(q, s, top_k=3)] for q, s in zip(queries, sparse)]
        sized = _SizedBackend(store.backend)
        store._backend = sized  # type: ignore[assignment]
        many = store.query_many(list(queries), sparse, top_k=3)
        store._backend = sized.inner
    assert sized.sizes == [QUERY_BATCH_MAX, QUERY_BATCH_MAX, 5]
    assert [[h.id for h in r] for r in many] == single


@pytest.mark.asyncio
async def test_async_query_many_splits_a_long_list_into_bounded_requests(tmp_path: Path) -> None:
    from gte_rag.qdrant import open_async_store
    from gte_rag.qdrant import QUERY_BATCH_MAX

    n = QUERY_BATCH_MAX + 1
    store = open_async_store(tmp_path / "kb", CollectionLayout("docs", dense_size=DIM))
    try:
        await store.ensure_collection()
        await store.upsert(_points(30))
        queries = _vectors(n, seed=6)
        single = [[h.id for h in await store.query(q, None, top_k=3, hybrid=HybridConfig(mode="dense"))]
                  for q in queries]
        sizes: list[int] = []
        inner = store._backend.query_batch

        async def sized(plans: Any) -> Any:
            sizes.append(len(plans))
            return await inner(plans)

        store._backend.query_batch = sized  # type: ignore[method-assign]
        many = await store.query_many(list(queries), None, top_k=3, hybrid=HybridConfig(mode="dense"))
    finally:
        await store.aclose()
    assert sizes == [QUERY_BATCH_MAX, 1]
    assert [[h.id for h in r] for r in many] == single


def test_query_many_checks_its_arguments(tmp_path: Path) -> None:
    with open_store(tmp_path, CollectionLayout("docs", dense_size=DIM)) as store:
        with pytest.raises(ConfigError, match="dense vectors, sparse vectors or both"):
            store.query_many()
        with pytest.raises(ConfigError, match="2 dense vectors but 1 sparse"):
            store.query_many(list(_vectors(2)), [SparseVector((1,), (1.0,))])


# -- the index is built without a manual step ----------------------------------------------
def test_edge_builds_its_index_once_enough_points_are_outside_it(tmp_path: Path) -> None:
    layout = CollectionLayout("docs", dense_size=DIM, storage=StorageConfig(auto_index_points=200))
    with open_store(tmp_path, layout) as store:
        store.ensure_collection()
        store.upsert(_points(150))
        assert store.unindexed_points() == 150
        assert store.ensure_indexed(200) is False  # too few to be worth a build
        store.upsert(_points(600))
        assert store.unindexed_points() >= 600
        assert store.ensure_indexed(200) is True
        assert store.unindexed_points() == 0
        assert store.ensure_indexed(200) is False
        assert store.ensure_indexed(None) is False


def test_client_engines_report_nothing_to_build() -> None:
    with open_store(":memory:", CollectionLayout("docs", dense_size=DIM)) as store:
        store.ensure_collection()
        store.upsert(_points(50))
        assert store.unindexed_points() == 0 and store.ensure_indexed(1) is False


# -- local mode warns once when it grows -----------------------------------------------------
def _renamed(points: list[PointRecord], doc: str) -> list[PointRecord]:
    """The same points as another document's (other ids)."""
    return [PointRecord(point_id(doc, i), dense=p.dense, sparse=p.sparse, payload={**p.payload, "doc_id": doc})
            for i, p in enumerate(points)]


def test_local_mode_warns_once_above_the_documented_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_module, "LOCAL_MODE_WARN_POINTS", 100)
    with open_store(":memory:", CollectionLayout("docs", dense_size=DIM)) as store:
        store.ensure_collection()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            store.upsert(_points(80))
            assert not caught
            store.upsert(_renamed(_points(40, seed=1), "e"), batch_size=20)
            store.upsert(_renamed(_points(40, seed=2), "f"))
        messages = [str(w.message) for w in caught]
        assert len(messages) == 1, messages
        assert "brute force" in messages[0] and "Qdrant Edge" in messages[0]
        assert caught[0].filename == __file__  # points at the caller's code


def test_local_mode_size_warning_counts_a_re_upserted_point_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from gte_rag.qdrant import open_async_store

    monkeypatch.setattr(client_module, "LOCAL_MODE_WARN_POINTS", 100)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with open_store(":memory:", CollectionLayout("docs", dense_size=DIM)) as store:
            store.ensure_collection()
            for _ in range(3):
                store.upsert(_points(60))  # the same 60 points three times
            assert store.count() == 60 and not caught, [str(w.message) for w in caught]
            store.upsert(_renamed(_points(60, seed=1), "e"))  # now 120 points
            assert store.count() == 120

        async def twice() -> None:
            store = open_async_store(":memory:", CollectionLayout("docs", dense_size=DIM))
            try:
                await store.ensure_collection()
                for _ in range(3):
                    await store.upsert(_points(60))
                assert await store.count() == 60
            finally:
                await store.aclose()

        asyncio.run(twice())
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and "about 120 points" in messages[0], messages


# -- server upserts retry ------------------------------------------------------------------
def test_server_upsert_retries_then_reports_an_unreachable_server(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(client_module, "RETRY_BASE_SECONDS", 0.0)
    store = open_store(f"http://127.0.0.1:{port}", CollectionLayout("docs", dense_size=DIM), timeout=1)
    try:
        with caplog.at_level(logging.WARNING, logger="gte_rag.qdrant._client"):
            with pytest.raises(StoreUnavailableError):
                store.backend.upsert(_points(2))
    finally:
        store.close()
    retries = [r for r in caplog.records if "retry" in r.getMessage()]
    assert len(retries) == client_module.UPSERT_RETRIES


# -- the knowledge base: settings recorded, index built after writes, one batched request -----
@pytest.fixture(scope="module")
def encoder(tiny_embedder: Path) -> Any:
    from gte_rag.embed import GteEncoder

    return GteEncoder(tiny_embedder, device="cpu")


def _notes(n: int) -> list[Any]:
    from gte_rag.kb import SourceDocument

    words = "river mountain plant oxygen rust memory tower paris ship storm bread violin".split()
    return [SourceDocument(f"n{i}", " ".join(words[(i * 7 + j) % len(words)] for j in range(30)), {"i": i})
            for i in range(n)]


def test_knowledge_base_records_its_storage_and_keeps_it(tmp_path: Path, encoder: Any) -> None:
    from gte_rag.kb import KnowledgeBase

    storage = StorageConfig(quantization="int8", on_disk=True, hnsw_ef=32)
    with KnowledgeBase(tmp_path / "kb", encoder=encoder, chunk_size=16, storage=storage) as kb:
        kb.add_documents(_notes(3))
        assert kb.storage == storage and kb.layout.storage == storage
    with KnowledgeBase(tmp_path / "kb", encoder=encoder, chunk_size=16) as kb:
        assert kb.storage == storage  # the recorded settings, without repeating them
        assert kb.query("river mountain", top_k=1)
    with KnowledgeBase(tmp_path / "kb", encoder=encoder, chunk_size=16,
                       storage=StorageConfig(quantization="int8", on_disk=True, hnsw_ef=128)) as kb:
        assert kb.storage.hnsw_ef == 128  # a search setting may change
    with KnowledgeBase(tmp_path / "kb", encoder=encoder, chunk_size=16, storage=StorageConfig()) as kb:
        assert kb.storage == storage  # nothing stated explicitly: the recorded settings
    with pytest.raises(ConfigError, match="fixed when a collection is created.*migrate"):
        KnowledgeBase(tmp_path / "kb", encoder=encoder, chunk_size=16, storage=StorageConfig(quantization="none"))
    with pytest.raises(ConfigError, match="StorageConfig"):
        KnowledgeBase(tmp_path / "kb2", encoder=encoder, storage={"quantization": "int8"})  # type: ignore[arg-type]


def test_knowledge_base_builds_the_index_after_a_write(tmp_path: Path, encoder: Any) -> None:
    from gte_rag.kb import KnowledgeBase

    with KnowledgeBase(tmp_path / "kb", encoder=encoder, chunk_size=16,
                       storage=StorageConfig(auto_index_points=40)) as kb:
        kb.add_documents(_notes(30))
        assert kb.count() >= 40
        assert kb.store.unindexed_points() == 0  # no optimize() call
    with KnowledgeBase(tmp_path / "off", encoder=encoder, chunk_size=16,
                       storage=StorageConfig(auto_index_points=None)) as kb:
        kb.add_documents(_notes(30))
        assert kb.store.unindexed_points() >= 40


def test_opening_a_collection_left_unindexed_warns(tmp_path: Path, encoder: Any) -> None:
    from gte_rag.kb import KnowledgeBase

    with KnowledgeBase(tmp_path / "kb", encoder=encoder, chunk_size=16,
                       storage=StorageConfig(auto_index_points=None)) as kb:
        kb.add_documents(_notes(30))
        pending = kb.store.unindexed_points()
    with pytest.warns(UserWarning, match=f"about {pending:,} points outside its HNSW index.*optimize"):
        KnowledgeBase(tmp_path / "kb", encoder=encoder, chunk_size=16,
                      storage=StorageConfig(auto_index_points=40)).close()


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_knowledge_base_query_many_is_one_batched_request(location: Any, encoder: Any, flavour: str) -> None:
    import asyncio

    from gte_rag.kb import KnowledgeBase

    with KnowledgeBase(location, encoder=encoder, chunk_size=16) as kb:
        kb.add_documents(_notes(8))
        queries = ["river mountain", "rust memory", "violin bread"]
        single = [kb.query(q, top_k=3) for q in queries]
        store = kb.store if flavour == "sync" else kb.async_store
        counting = _CountingBackend(store.backend)
        store._backend = counting  # type: ignore[assignment]
        try:
            many = (kb.query_many(queries, top_k=3) if flavour == "sync"
                    else asyncio.run(kb.asearch(queries, top_k=3)))
        finally:
            store._backend = counting.inner
    assert counting.calls == ["query_batch"]
    assert [[h.id for h in r] for r in many] == [[h.id for h in r] for r in single]


def test_retriever_batch_path_is_one_batched_request(tmp_path: Path, encoder: Any) -> None:
    pytest.importorskip("llama_index.core")
    from gte_rag.kb import KnowledgeBase
    from gte_rag.llama_index import GteHybridRetriever

    with KnowledgeBase(tmp_path / "kb", encoder=encoder, chunk_size=16) as kb:
        kb.add_documents(_notes(8))
        retriever = GteHybridRetriever(knowledge_base=kb, similarity_top_k=2)
        single = [retriever.retrieve(q) for q in ("river mountain", "rust memory")]
        counting = _CountingBackend(kb.store.backend)
        kb.store._backend = counting  # type: ignore[assignment]
        try:
            many = retriever.retrieve_many(["river mountain", "rust memory"])
        finally:
            kb.store._backend = counting.inner
    assert counting.calls == ["query_batch"]
    assert [[n.node.node_id for n in r] for r in many] == [[n.node.node_id for n in r] for r in single]


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_retriever_batch_path_is_instrumented_per_query(tmp_path: Path, encoder: Any, flavour: str) -> None:
    import asyncio

    pytest.importorskip("llama_index.core")
    import llama_index.core.instrumentation as instrument
    from llama_index.core.callbacks import CallbackManager, CBEventType, LlamaDebugHandler
    from llama_index.core.instrumentation.event_handlers import BaseEventHandler
    from llama_index.core.instrumentation.events.retrieval import RetrievalEndEvent, RetrievalStartEvent

    from gte_rag.kb import KnowledgeBase
    from gte_rag.llama_index import GteHybridRetriever

    class Seen(BaseEventHandler):
        events: list[Any] = []

        @classmethod
        def class_name(cls) -> str:
            return "Seen"

        def handle(self, event: Any, **kwargs: Any) -> None:
            if isinstance(event, (RetrievalStartEvent, RetrievalEndEvent)):
                self.events.append(event)

    seen = Seen(events=[])
    root = instrument.get_dispatcher()
    root.add_event_handler(seen)
    debug = LlamaDebugHandler()
    queries = ["river mountain", "rust memory"]
    try:
        with KnowledgeBase(tmp_path / "kb", encoder=encoder, chunk_size=16) as kb:
            kb.add_documents(_notes(8))
            retriever = GteHybridRetriever(knowledge_base=kb, similarity_top_k=2,
                                           callback_manager=CallbackManager([debug]))
            many = (retriever.retrieve_many(queries) if flavour == "sync"
                    else asyncio.run(retriever.aretrieve_many(queries)))
    finally:
        root.event_handlers.remove(seen)
    starts = [e.str_or_query_bundle for e in seen.events if isinstance(e, RetrievalStartEvent)]
    ends = [(e.str_or_query_bundle, [n.node.node_id for n in e.nodes]) for e in seen.events
            if isinstance(e, RetrievalEndEvent)]
    assert starts == queries
    assert ends == [(q, [n.node.node_id for n in r]) for q, r in zip(queries, many)]
    pairs = debug.get_event_pairs(CBEventType.RETRIEVE)
    assert [p[0].payload["query_str"] for p in pairs] == queries
    assert [len(p[1].payload["nodes"]) for p in pairs] == [2, 2]


def test_retriever_batch_path_refuses_a_single_string(tmp_path: Path, encoder: Any) -> None:
    pytest.importorskip("llama_index.core")
    from gte_rag.kb import KnowledgeBase
    from gte_rag.llama_index import GteHybridRetriever

    with KnowledgeBase(tmp_path / "kb", encoder=encoder, chunk_size=16) as kb:
        retriever = GteHybridRetriever(knowledge_base=kb)
        with pytest.raises(ConfigError, match="sequence of queries; use retrieve"):
            retriever.retrieve_many("river mountain")  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match="str or a QueryBundle, got int"):
            retriever.retrieve_many(["river", 3])  # type: ignore[list-item]


class _RecordingBackend(_CountingBackend):
    """A real backend whose upserts are recorded: which thread ran them, with which points."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.upserts: list[tuple[str, list[str]]] = []

    def upsert(self, points: Any) -> None:
        import threading

        self.upserts.append((threading.current_thread().name, [p.id for p in points]))
        self.inner.upsert(points)


def test_upserts_run_beside_encoding_in_order(tmp_path: Path, encoder: Any) -> None:
    from gte_rag.kb import KnowledgeBase

    with KnowledgeBase(tmp_path / "kb", encoder=encoder, chunk_size=16, ingest_batch_size=8, long_docs="off") as kb:
        recording = _RecordingBackend(kb.store.backend)
        kb.store._backend = recording  # type: ignore[assignment]
        try:
            stats = kb.add_documents(_notes(12))
        finally:
            kb.store._backend = recording.inner
        written = [i for _, ids in recording.upserts for i in ids]
        assert len(recording.upserts) >= 3
        assert {name for name, _ in recording.upserts} == {"gte-rag-upsert_0"}  # the pipeline's worker
        assert len(written) == len(set(written)) == stats.chunks == kb.count()
        # in document order: each batch follows the one before
        assert written == sorted(written, key=lambda pid: next(
            (d, i) for d in range(12) for i in range(64) if point_id(f"n{d}", i) == pid))
