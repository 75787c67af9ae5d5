"""Copy a collection to another engine or location without re-encoding.

:func:`migrate_collection` reads the source collection's recorded layout (model identity,
encoder settings, vectors, payload indexes, storage settings), creates the target with the
same layout (optionally other storage settings, and shards / replicas on a server), then
copies the points page by page in id order, vectors and payload as they are.

It is idempotent and resumable without any state of its own: point ids are kept, so a
point copied twice is the same point, and each page is compared with the target first
(one scroll): points already there with the same payload and vectors are skipped. A run stopped
half-way (Ctrl-C, a lost connection) is finished by running it again.

The copy logic is one generator of store operations (:func:`_copy_ops`), driven by the
sync function and by :func:`amigrate_collection`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from gte_rag._runtime import warn_external
from gte_rag.errors import CollectionMismatchError, CollectionNotFoundError, ConfigError
from gte_rag.qdrant._layout import _STORAGE_CREATION_FIELDS as _CREATION
from gte_rag.qdrant._layout import CollectionLayout, StorageConfig
from gte_rag.qdrant._points import PointRecord
from gte_rag.qdrant._store import (
    AsyncQdrantStore,
    Engine,
    QdrantStore,
    _resolve_engine,
    open_async_store,
    open_store,
)

__all__ = ["DEFAULT_MIGRATE_BATCH", "MigrationStats", "amigrate_collection", "migrate_collection"]

logger = logging.getLogger(__name__)

DEFAULT_MIGRATE_BATCH = 256
"""Points read, compared and written per step."""


@dataclass
class MigrationStats:
    """What one run of :func:`migrate_collection` did (passed to ``on_batch`` after each page).

    Attributes:
        source_points: Points in the source collection when the run started.
        copied: Points written to the target in this run.
        unchanged: Points found in the target with the same payload, not written again.
        batches: Pages processed so far.
        seconds: Time taken so far.
        target_points: Points in the target at the end (0 until then).
    """

    source_points: int = 0
    copied: int = 0
    unchanged: int = 0
    batches: int = 0
    seconds: float = 0.0
    target_points: int = 0

    def summary(self) -> str:
        """One line for logs and the command line."""
        return (
            f"copied {self.copied} points ({self.unchanged} already there) of {self.source_points} in "
            f"{self.batches} batches, {self.seconds:.1f}s; the target holds {self.target_points}"
        )


_Op = tuple[str, tuple[Any, ...], dict[str, Any]]
_Gen = Generator[_Op, Any, None]


def _copy_ops(stats: MigrationStats, batch_size: int, bar: Any, on_batch: Callable[[MigrationStats], None] | None,
              start: float) -> _Gen:
    """The copy as store operations: ``("source" | "target", method, args, kwargs)`` pairs."""
    offset: str | None = None
    while True:
        page, offset = yield ("source.scroll_points", (), {"limit": batch_size, "offset": offset})
        if page:
            # the target's points from this page's first id on (vectors too): a point is skipped
            # only when its payload and vectors are there; one crowded out by target-only points
            # is simply written again (idempotent)
            found, _ = yield ("target.scroll_points", (), {"limit": len(page), "offset": page[0].id})
            there = {p.id: p for p in found}
            todo: list[PointRecord] = [p for p in page if not _same_point(p, there.get(p.id))]
            if todo:
                # document points carry up to a million floats: one per call, as at ingest
                heavy = [p for p in todo if p.multivector is not None]
                light = [p for p in todo if p.multivector is None]
                if light:
                    yield ("target.upsert", (light,), {"batch_size": max(1, len(light))})
                if heavy:
                    yield ("target.upsert", (heavy,), {"batch_size": 1})
            stats.copied += len(todo)
            stats.unchanged += len(page) - len(todo)
            stats.batches += 1
            stats.seconds = time.perf_counter() - start
            if bar is not None:
                bar.update(len(page))
            logger.debug("Migrated page %d: %d copied, %d unchanged", stats.batches, len(todo), len(page) - len(todo))
            if on_batch is not None:
                on_batch(stats)
        if offset is None:
            return


def _close(a: Any, b: Any) -> bool:
    """Vectors equal up to storage rounding (float16: ~1e-3 relative; engines normalize cosine)."""
    if a is None or b is None:
        return a is None and b is None
    x, y = np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32)
    return x.shape == y.shape and bool(np.allclose(x, y, rtol=1e-2, atol=1e-3))


def _sparse_pairs(v: Any) -> dict[int, float] | None:
    return None if v is None else {int(i): float(x) for i, x in zip(v.indices, v.values)}


def _same_point(p: PointRecord, q: PointRecord | None) -> bool:
    """Whether the target's point ``q`` already is the source's ``p`` (payload and vectors)."""
    if q is None or dict(q.payload) != dict(p.payload):
        return False
    if not (_close(p.dense, q.dense) and _close(p.multivector, q.multivector)
            and _close(p.document_vector, q.document_vector)):
        return False
    a, b = _sparse_pairs(p.sparse), _sparse_pairs(q.sparse)
    if a is None or b is None:
        return a is None and b is None
    return a.keys() == b.keys() and _close([a[k] for k in sorted(a)], [b[k] for k in sorted(b)])


def _check(batch_size: int, on_batch: Any, storage: Any) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be an int >= 1, got {batch_size!r}")
    if on_batch is not None and not callable(on_batch):
        raise ConfigError(f"on_batch must be a callable taking MigrationStats, got {type(on_batch).__name__}")
    if storage is not None and not isinstance(storage, StorageConfig):
        raise ConfigError(f"storage must be a gte_rag StorageConfig, got {type(storage).__name__}")


def _same_place(a: str | Path | None, b: str | Path | None, a_name: str, b_name: str) -> bool:
    if a is None or b is None or a_name != b_name:
        return False
    if str(a).startswith(("http://", "https://")) or str(a) == ":memory:":
        return str(a).rstrip("/") == str(b).rstrip("/")
    return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def _target_layout(found: CollectionLayout, name: str, storage: StorageConfig | None) -> CollectionLayout:
    """A valid layout for the target: the source's, renamed, with the storage asked for."""
    data = found.to_dict()
    data["collection"] = name
    layout = CollectionLayout.from_dict(data)
    base = found.storage or StorageConfig()
    if storage is None:
        return replace(layout, storage=base)
    # the settings asked for, on top of the source's (an unset one stays as the source's)
    asked = {n: getattr(storage, n) for n in storage.explicit}
    if asked.get("quantization", base.quantization) == "none":
        asked.setdefault("oversampling", None)  # int8-only settings go with int8
        asked.setdefault("quantile", None)
    return replace(layout, storage=replace(base, **asked))


def _check_existing(existing: CollectionLayout | None, layout: CollectionLayout, storage: StorageConfig | None,
                    target: Any) -> CollectionLayout:
    """Refuse an existing target written by another encoder, or with other storage than asked for.

    Returns the layout to write with (an existing target keeps its own storage settings).
    """
    if existing is None:
        return layout
    where = f"collection {layout.collection!r} at {str(target)!r}"
    mine, theirs = layout.encoder_settings, existing.encoder_settings
    if theirs and mine != theirs:
        differs = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
        raise CollectionMismatchError(
            f"{where} exists with vectors of another encoder record: differing {differs}: "
            f"source { {k: mine.get(k) for k in differs} }, target { {k: theirs.get(k) for k in differs} }. "
            "Fix: migrate into a new target (another location or --to-collection), or drop the target",
            collection=layout.collection, layout_expected=layout, layout_found=existing,
        )
    if storage is not None and existing.storage is not None:
        want, have = layout.storage_settings, existing.storage
        differs = want.creation_differences(have)
        if differs:
            raise ConfigError(
                f"{where} exists with storage { {k: getattr(have, k) for k in differs} }, not the "
                f"{ {k: getattr(want, k) for k in differs} } asked for; these settings are fixed when a "
                "collection is created. Fix: migrate into a new target, or leave the storage settings out"
            )
    if storage is not None and existing.storage is None and storage.explicit & set(_CREATION):
        raise ConfigError(
            f"{where} exists and recorded no storage settings, so the storage asked for cannot be confirmed. "
            "Fix: migrate into a new target, or leave the storage settings out"
        )
    return replace(layout, storage=existing.storage or layout.storage)


def _warn_counts(stats: MigrationStats, target: Any, name: str) -> None:
    if stats.target_points != stats.source_points:
        warn_external(
            f"after the migration the target collection {name!r} at {str(target)!r} holds {stats.target_points} "
            f"points and the source {stats.source_points}: the target has points the source does not (written "
            "before, or the source changed during the copy). Fix: migrate into a new target, or delete them"
        )


def _plan(
    source: str | Path | None, target: str | Path | None, *, collection: str, target_collection: str | None,
    source_engine: Engine, target_engine: Engine, batch_size: int, on_batch: Any, storage: StorageConfig | None,
) -> tuple[str, CollectionLayout]:
    """Check the arguments before anything is opened; returns the target name and a probe layout."""
    _check(batch_size, on_batch, storage)
    if source is None:
        raise ConfigError("source must be a directory, ':memory:' or an http(s):// URL, not None")
    if target is None:
        raise ConfigError(
            "target=None would copy into a temporary directory deleted when the migration returns; "
            "pass a directory or an http(s):// URL as target"
        )
    name = target_collection or collection
    probe = CollectionLayout(collection, dense_size=1)
    CollectionLayout(name, dense_size=1)  # validates the target name
    _resolve_engine(source, source_engine)
    _resolve_engine(target, target_engine)
    if _same_place(source, target, collection, name):
        raise ConfigError(
            f"source and target are the same collection ({collection!r} at {str(source)!r}); "
            "pass another target location or target_collection"
        )
    return name, probe


def _missing(collection: str, source: Any) -> CollectionNotFoundError:
    return CollectionNotFoundError(
        f"there is no collection {collection!r} at {str(source)!r} to migrate. Fix: check --from / "
        "--collection (gte-rag info --kb LOCATION lists what a knowledge base holds)",
        collection=collection,
    )


def _bar(total: int, show: bool) -> Any:
    if not show:
        return None
    from tqdm.auto import tqdm  # lazy: only when a bar is asked for

    return tqdm(total=total, unit="point", desc="migrate")


def migrate_collection(
    source: str | Path | None,
    target: str | Path | None,
    *,
    collection: str = "gte_rag",
    target_collection: str | None = None,
    source_engine: Engine = "auto",
    target_engine: Engine = "auto",
    source_api_key: str | None = None,
    api_key: str | None = None,
    storage: StorageConfig | None = None,
    shard_number: int | None = None,
    replication_factor: int | None = None,
    write_consistency_factor: int | None = None,
    prefer_grpc: bool = False,
    batch_size: int = DEFAULT_MIGRATE_BATCH,
    show_progress: bool = False,
    on_batch: Callable[[MigrationStats], None] | None = None,
) -> MigrationStats:
    """Copy a collection (a knowledge base) to another location or engine, vectors as they are.

    Args:
        source: Where the collection is: a directory (Qdrant Edge), an ``http(s)://`` URL,
            or a directory with ``source_engine="client"`` (qdrant-client local mode).
        target: Where to copy it, the same way (not ``None``: a temporary directory would be
            deleted on return).
        collection: The source collection's name.
        target_collection: The target's name; ``None`` keeps ``collection``.
        source_engine, target_engine: ``auto`` (by location), ``edge`` or ``client``.
        source_api_key, api_key: API keys of a source / target server.
        storage: Storage settings of a new target (int8, on-disk, float16, HNSW): the
            settings it states (:attr:`StorageConfig.explicit`) replace the source's, the
            others stay as the source's; ``None`` keeps the source's. An existing target
            keeps its own, and must agree with the ones stated.
        shard_number, replication_factor, write_consistency_factor: Server targets only:
            the new collection's shards, replicas, and replicas confirming each write.
        prefer_grpc: Talk gRPC to servers.
        batch_size: Points per page.
        show_progress: A progress bar over the source's points.
        on_batch: Called with the running :class:`MigrationStats` after each page.

    Returns:
        What was copied and what was already there.

    Raises:
        ConfigError: an invalid or contradictory option (checked before anything is opened).
        CollectionNotFoundError: the source collection does not exist.
        CollectionMismatchError: the target collection exists with another model, encoder
            record or geometry (it is left untouched).

    Warns:
        UserWarning: the target ends with another number of points than the source.
    """
    name, probe = _plan(
        source, target, collection=collection, target_collection=target_collection, source_engine=source_engine,
        target_engine=target_engine, batch_size=batch_size, on_batch=on_batch, storage=storage,
    )
    server: dict[str, Any] = {"shard_number": shard_number, "replication_factor": replication_factor,
                              "write_consistency_factor": write_consistency_factor}
    src = open_store(source, probe, engine=source_engine, api_key=source_api_key, prefer_grpc=prefer_grpc)
    try:
        found = src.backend.read_layout()
        if found is None:
            raise _missing(collection, source)
        src.backend.layout = CollectionLayout.from_dict({**found.to_dict(), "collection": collection})
        layout = _target_layout(found, name, storage)
        dst = open_store(target, layout, engine=target_engine, api_key=api_key, prefer_grpc=prefer_grpc, **server)
        try:
            layout = _check_existing(dst.backend.read_layout(), layout, storage, target)
            dst.backend.layout = layout
            stats = _run_sync(src, dst, layout, batch_size, show_progress, on_batch)
            _warn_counts(stats, target, name)
            return stats
        finally:
            dst.close()
    finally:
        src.close()


def _run_sync(src: QdrantStore, dst: QdrantStore, layout: CollectionLayout, batch_size: int, show: bool,
              on_batch: Callable[[MigrationStats], None] | None) -> MigrationStats:
    start = time.perf_counter()
    created = dst.ensure_collection()
    stats = MigrationStats(source_points=src.count())
    logger.info("Migrating %d points of %r into %r (%s)", stats.source_points, src.layout.collection,
                layout.collection, "new collection" if created else "existing collection")
    bar = _bar(stats.source_points, show)
    stores = {"source": src, "target": dst}
    try:
        ops = _copy_ops(stats, batch_size, bar, on_batch, start)
        result: Any = None
        while True:
            try:
                where, args, kwargs = ops.send(result)
            except StopIteration:
                break
            side, method = where.split(".")
            result = getattr(stores[side], method)(*args, **kwargs)
    finally:
        if bar is not None:
            bar.close()
    dst.ensure_indexed(layout.storage_settings.auto_index_points)
    stats.target_points = dst.count()
    stats.seconds = time.perf_counter() - start
    logger.info("Migration: %s", stats.summary())
    return stats


async def amigrate_collection(
    source: str | Path | None,
    target: str | Path | None,
    *,
    collection: str = "gte_rag",
    target_collection: str | None = None,
    source_engine: Engine = "auto",
    target_engine: Engine = "auto",
    source_api_key: str | None = None,
    api_key: str | None = None,
    storage: StorageConfig | None = None,
    shard_number: int | None = None,
    replication_factor: int | None = None,
    write_consistency_factor: int | None = None,
    prefer_grpc: bool = False,
    batch_size: int = DEFAULT_MIGRATE_BATCH,
    show_progress: bool = False,
    on_batch: Callable[[MigrationStats], None] | None = None,
) -> MigrationStats:
    """Async twin of :func:`migrate_collection` (same arguments)."""
    name, probe = _plan(
        source, target, collection=collection, target_collection=target_collection, source_engine=source_engine,
        target_engine=target_engine, batch_size=batch_size, on_batch=on_batch, storage=storage,
    )
    server: dict[str, Any] = {"shard_number": shard_number, "replication_factor": replication_factor,
                              "write_consistency_factor": write_consistency_factor}
    src = open_async_store(source, probe, engine=source_engine, api_key=source_api_key, prefer_grpc=prefer_grpc)
    try:
        found = await src.backend.read_layout()
        if found is None:
            raise _missing(collection, source)
        src.backend.layout = CollectionLayout.from_dict({**found.to_dict(), "collection": collection})
        layout = _target_layout(found, name, storage)
        dst = open_async_store(target, layout, engine=target_engine, api_key=api_key, prefer_grpc=prefer_grpc,
                               **server)
        try:
            layout = _check_existing(await dst.backend.read_layout(), layout, storage, target)
            dst.backend.layout = layout
            stats = await _run_async(src, dst, layout, batch_size, show_progress, on_batch)
            _warn_counts(stats, target, name)
            return stats
        finally:
            await dst.aclose()
    finally:
        await src.aclose()


async def _run_async(src: AsyncQdrantStore, dst: AsyncQdrantStore, layout: CollectionLayout, batch_size: int,
                     show: bool, on_batch: Callable[[MigrationStats], None] | None) -> MigrationStats:
    start = time.perf_counter()
    await dst.ensure_collection()
    stats = MigrationStats(source_points=await src.count())
    bar = await asyncio.to_thread(_bar, stats.source_points, show)
    stores = {"source": src, "target": dst}
    try:
        ops = _copy_ops(stats, batch_size, bar, on_batch, start)
        result: Any = None
        while True:
            try:
                where, args, kwargs = ops.send(result)
            except StopIteration:
                break
            side, method = where.split(".")
            result = await getattr(stores[side], method)(*args, **kwargs)
    finally:
        if bar is not None:
            bar.close()
    await dst.ensure_indexed(layout.storage_settings.auto_index_points)
    stats.target_points = await dst.count()
    stats.seconds = time.perf_counter() - start
    logger.info("Migration: %s", stats.summary())
    return stats
