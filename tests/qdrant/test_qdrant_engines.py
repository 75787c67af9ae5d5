"""Engine-specific behaviour: Edge persistence/locking/temp dirs, factory routing, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import qdrant_edge as qe
from qdrant_client import models

from gte_rag._types import SparseVector
from gte_rag.errors import CollectionMismatchError, ConfigError, StoreError, StoreUnavailableError
from gte_rag.qdrant import (
    AsyncQdrantStore,
    ClientBackend,
    CollectionLayout,
    EdgeBackend,
    HybridConfig,
    PointRecord,
    QdrantStore,
    build_payload,
    map_store_errors,
    open_async_store,
    open_store,
    point_id,
)

LAYOUT = CollectionLayout("docs", dense_size=4, sparse_idf=True, model_name="gte-small")


def _points(n: int) -> list[PointRecord]:
    rng = np.random.default_rng(3)
    return [
        PointRecord(
            point_id("doc", i), rng.normal(size=4), SparseVector((i % 7, 50), (1.0, 0.2)),
            payload=build_payload(text=f"t{i}", doc_id="doc", chunk_index=i),
        )
        for i in range(n)
    ]


def test_edge_persists_across_reopen_with_sidecar(tmp_path: Path) -> None:
    with open_store(tmp_path, LAYOUT) as store:
        assert store.ensure_collection() is True
        store.upsert(_points(20))
    sidecar = json.loads((tmp_path / "docs" / "gte_rag_layout.json").read_text())
    assert sidecar["gte_rag_layout"]["model_name"] == "gte-small"
    with open_store(tmp_path, LAYOUT) as store:
        assert store.ensure_collection() is False
        assert store.count() == 20
        assert store.backend.indexed_fields() == {"doc_id": "keyword", "ref_doc_id": "keyword"}
        assert store.optimize() in (True, False)
        hits = store.query([1, 0, 0, 0], SparseVector((1,), (1.0,)), top_k=3)
        assert len(hits) == 3
    other_model = CollectionLayout("docs", dense_size=4, sparse_idf=True, model_name="gte-base")
    with open_store(tmp_path, other_model) as store, pytest.raises(CollectionMismatchError, match="gte-base"):
        store.ensure_collection()


def test_edge_collections_are_subdirectories(tmp_path: Path) -> None:
    with open_store(tmp_path, LAYOUT) as a, open_store(tmp_path, CollectionLayout("notes", dense_size=2)) as b:
        a.ensure_collection()
        b.ensure_collection()
        assert {p.name for p in tmp_path.iterdir()} == {"docs", "notes"}


def test_edge_locked_directory_is_unavailable(tmp_path: Path) -> None:
    with open_store(tmp_path, LAYOUT) as first:
        first.ensure_collection()
        with open_store(tmp_path, LAYOUT) as second, pytest.raises(StoreUnavailableError) as info:
            second.count()
        assert info.value.__cause__ is not None and info.value.collection == "docs"


def test_edge_temporary_directory_is_removed_on_close() -> None:
    store = open_store(None, LAYOUT)
    store.ensure_collection()
    store.upsert(_points(3))
    path = store.backend.path  # type: ignore[attr-defined]
    assert path.exists()
    store.close()
    assert not path.parent.exists()
    with pytest.raises(StoreError, match="closed"):
        store.count()


def test_missing_collection_asks_for_ensure(tmp_path: Path) -> None:
    with open_store(tmp_path, LAYOUT) as store, pytest.raises(StoreError, match="ensure_collection"):
        store.count()


def test_factory_routes_by_location(tmp_path: Path) -> None:
    with open_store(tmp_path, LAYOUT) as edge:
        assert isinstance(edge.backend, EdgeBackend)
    with open_store(":memory:", LAYOUT) as local:
        assert isinstance(local.backend, ClientBackend) and local.backend.is_local
    with open_store(tmp_path / "local", LAYOUT, engine="client") as on_disk:
        assert isinstance(on_disk.backend, ClientBackend)
        on_disk.ensure_collection()
        on_disk.upsert(_points(2))
        assert on_disk.count() == 2
    with pytest.raises(ConfigError, match="server only"):
        open_store(tmp_path, LAYOUT, shard_number=2)
    with pytest.raises(ConfigError, match="api_key"):
        open_store(":memory:", LAYOUT, api_key="secret")
    with pytest.raises(ConfigError, match="engine"):
        open_store(":memory:", LAYOUT, engine="edge")


def test_unreachable_server_maps_to_unavailable() -> None:
    with open_store("http://127.0.0.1:9", LAYOUT, timeout=1) as store:
        with pytest.raises(StoreUnavailableError) as info:
            store.count()
    assert info.value.__cause__ is not None


def test_map_store_errors_keeps_our_errors_and_chains_others() -> None:
    with pytest.raises(ConfigError):
        with map_store_errors("x", collection="c", engine="edge"):
            raise ConfigError("ours")
    with pytest.raises(StoreError) as info:
        with map_store_errors("upsert", collection="c", engine="edge"):
            raise ValueError("bad vector")
    assert not isinstance(info.value, StoreUnavailableError)
    assert "upsert" in str(info.value) and isinstance(info.value.__cause__, ValueError)


def test_edge_filter_conversion_rejects_unsupported() -> None:
    with open_store(None, LAYOUT) as store:
        store.ensure_collection()
        flt = models.Filter(must=[models.FieldCondition(key="x", match=models.MatchValue(value="y"))])
        assert store.count(flt) == 0
        with pytest.raises(ConfigError, match="filter"):
            store.count("not a filter")  # type: ignore[arg-type]


def test_upsert_shows_progress_bar(capsys: pytest.CaptureFixture[str]) -> None:
    with open_store(None, LAYOUT) as store:
        store.ensure_collection()
        assert store.upsert(_points(10), batch_size=3, show_progress=True) == 10
    assert "10/10" in capsys.readouterr().err


@pytest.mark.asyncio
async def test_async_factory_and_context_managers(tmp_path: Path) -> None:
    async with open_async_store(tmp_path, LAYOUT) as store:
        assert isinstance(store, AsyncQdrantStore)
        await store.ensure_collection()
        await store.upsert(_points(5))
        hits = await store.query([1, 0, 0, 0], SparseVector((1,), (1.0,)), top_k=2,
                                 hybrid=HybridConfig(fusion="weighted", sparse_weight=0.1))
        assert len(hits) == 2
        assert await store.optimize() in (True, False)
    async with open_async_store(":memory:", LAYOUT) as local:
        await local.ensure_collection()
        assert await local.count() == 0 and await local.optimize() is False


def test_sync_store_repr_and_layout() -> None:
    with open_store(":memory:", LAYOUT) as store:
        assert isinstance(store, QdrantStore) and store.layout is LAYOUT
        assert "local" in repr(store)


# -- options are validated before any I/O -----------------------------------------------------
def _edge_temp_dirs() -> set[str]:
    import tempfile

    return {p.name for p in Path(tempfile.gettempdir()).glob("gte_rag_edge_*")}


@pytest.mark.parametrize(
    "options",
    [
        {"shard_number": 2},
        {"replication_factor": 2},
        {"quantization_config": models.ScalarQuantization(scalar=models.ScalarQuantizationConfig(type="int8"))},
        {"api_key": "secret"},
        {"prefer_grpc": True},
        {"timeout": 5},
        {"on_disk": "yes"},
        {"engine": "nope"},
    ],
    ids=lambda o: next(iter(o)),
)
def test_rejected_edge_option_leaves_no_temporary_directory(options: dict) -> None:
    before = _edge_temp_dirs()
    with pytest.raises(ConfigError):
        open_store(None, LAYOUT, **options)
    with pytest.raises(ConfigError):
        open_async_store(None, LAYOUT, **options)
    assert _edge_temp_dirs() == before


def test_edge_backend_validates_and_creates_its_temporary_directory_lazily() -> None:
    before = _edge_temp_dirs()
    with pytest.raises(ConfigError, match="on_disk"):
        EdgeBackend(None, LAYOUT, on_disk="yes")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="CollectionLayout"):
        EdgeBackend(None, {"collection": "docs"})  # type: ignore[arg-type]
    unused = EdgeBackend(None, LAYOUT)
    assert "docs" in repr(unused)
    unused.close()
    assert _edge_temp_dirs() == before  # never used: never created
    used = EdgeBackend(None, LAYOUT)
    store = QdrantStore(backend=used)
    store.ensure_collection()
    assert len(_edge_temp_dirs() - before) == 1
    store.close()
    assert _edge_temp_dirs() == before


@pytest.mark.parametrize(
    "options",
    [
        {"shard_number": 0},
        {"replication_factor": -1},
        {"shard_number": True},
        {"on_disk": "yes"},
        {"quantization_config": "int8"},
        {"prefer_grpc": True},
        {"timeout": 5},
        {"api_key": "secret"},
    ],
    ids=lambda o: f"{next(iter(o))}={next(iter(o.values()))!r}",
)
def test_rejected_local_mode_option_opens_no_client(tmp_path: Path, options: dict) -> None:
    target = tmp_path / "local"
    with pytest.raises(ConfigError):
        open_store(target, LAYOUT, engine="client", **options)
    with pytest.raises(ConfigError):
        open_async_store(target, LAYOUT, engine="client", **options)
    assert not target.exists()  # no directory made, so no lock taken


@pytest.mark.parametrize(
    "options",
    [{"timeout": 0}, {"timeout": "1"}, {"prefer_grpc": "yes"}, {"api_key": 123}, {"shard_number": 1.5}],
    ids=lambda o: f"{next(iter(o))}={next(iter(o.values()))!r}",
)
def test_rejected_server_option_is_a_config_error(options: dict) -> None:
    with pytest.raises(ConfigError):
        open_store("http://127.0.0.1:9", LAYOUT, **options)
    with pytest.raises(ConfigError):
        open_async_store("http://127.0.0.1:9", LAYOUT, **options)


def test_open_store_rejects_a_non_layout_and_a_bad_location() -> None:
    with pytest.raises(ConfigError, match="CollectionLayout"):
        open_store(":memory:", "docs")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="location"):
        open_store(42, LAYOUT)  # type: ignore[arg-type]


# -- one conversion per query ------------------------------------------------------------------
def test_edge_converts_the_filter_once_per_query(monkeypatch: pytest.MonkeyPatch) -> None:
    import gte_rag.qdrant._edge_convert as edge_convert

    calls: list[object] = []
    original = edge_convert.convert_filter

    def counting(flt: models.Filter) -> object:
        calls.append(flt)
        return original(flt)

    monkeypatch.setattr(edge_convert, "convert_filter", counting)
    flt = models.Filter(must=[models.FieldCondition(key="doc_id", match=models.MatchValue(value="doc"))])
    with open_store(None, LAYOUT) as store:
        store.ensure_collection()
        store.upsert(_points(10))
        for hybrid in (HybridConfig(), HybridConfig(fusion="weighted", sparse_weight=0.5), HybridConfig(mode="dense")):
            calls.clear()
            hits = store.query([1, 0, 0, 0], SparseVector((1,), (1.0,)), top_k=3, hybrid=hybrid, filter=flt)
            assert len(hits) == 3
            assert len(calls) == 1, hybrid


def test_using_shard_lends_the_open_shard_and_holds_off_close(tmp_path: Path) -> None:
    import threading

    store = open_store(tmp_path, LAYOUT)
    store.ensure_collection()
    store.upsert(_points(4))
    backend = store.backend
    assert isinstance(backend, EdgeBackend)
    closed = threading.Event()
    with backend.using_shard() as shard:
        assert shard.count(qe.CountRequest(exact=True)) == 4
        assert store.count() == 4  # the store's own calls work inside the block
        with pytest.raises(StoreError, match="using_shard"):
            store.close()
        closer = threading.Thread(target=lambda: (store.close(), closed.set()))
        closer.start()
        assert not closed.wait(0.2)  # close() waits for the block
        assert store.count() == 4  # a nested claim does not wait behind the pending close
    closer.join(timeout=30)
    assert closed.is_set()
    with pytest.raises(StoreError, match="closed"):
        store.count()


def test_rejected_option_takes_no_lock_on_an_existing_shard(tmp_path: Path) -> None:
    with open_store(tmp_path, LAYOUT) as store:
        store.ensure_collection()
    with pytest.raises(ConfigError, match="server only"):
        open_store(tmp_path, LAYOUT, replication_factor=2)
    store = open_store(tmp_path, LAYOUT)  # constructed, never used: no shard opened yet
    shard = qe.EdgeShard.load(str(tmp_path / "docs"))  # so nobody holds the WAL lock
    shard.close()
    store.close()
