"""The knowledge base's storage settings: which apply, and the index kept built.

:func:`resolve_storage` decides the :class:`~gte_rag.qdrant.StorageConfig` of a knowledge
base from the one asked for and the one its collection recorded; :func:`keep_indexed`
(and its async twin) run after every write, so that Qdrant Edge builds its HNSW index
without a manual ``optimize()``.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from .._runtime import warn_external
from ..errors import ConfigError
from ..qdrant import AsyncQdrantStore, CollectionLayout, QdrantStore, StorageConfig
from ..qdrant._layout import _STORAGE_CREATION_FIELDS, LEGACY_STORAGE

__all__ = ["akeep_indexed", "keep_indexed", "resolve_storage", "warn_if_unindexed"]

logger = logging.getLogger(__name__)


def resolve_storage(given: StorageConfig | None, found: CollectionLayout | None, location: Any) -> StorageConfig:
    """The storage settings of a knowledge base.

    A new collection takes ``given`` (or the defaults). An existing one keeps what it
    recorded; the settings ``given`` states explicitly (:attr:`StorageConfig.explicit`) apply
    on top: the search-time ones (``hnsw_ef``, ``auto_index_points``, ``rescore``,
    ``oversampling``) change, one fixed at creation must equal the recorded value. A
    collection that recorded no storage settings (it predates them) takes
    :data:`~gte_rag.qdrant._layout.LEGACY_STORAGE` (what it was made with), and refuses other
    creation settings (they cannot be checked).

    Raises:
        ConfigError: ``given`` is not a StorageConfig, or states a setting fixed at creation
            that differs from the collection's (or that a collection without a record cannot confirm).
    """
    if given is not None and not isinstance(given, StorageConfig):
        raise ConfigError(f"storage must be a gte_rag StorageConfig, got {type(given).__name__}")
    if found is None:
        return given or StorageConfig()
    recorded = found.storage
    if given is None:
        return recorded or LEGACY_STORAGE
    asked = {n: getattr(given, n) for n in sorted(given.explicit)}
    creation = {n: v for n, v in asked.items() if n in _STORAGE_CREATION_FIELDS}
    search = {n: v for n, v in asked.items() if n not in _STORAGE_CREATION_FIELDS}
    fix = ("Fix: leave these settings out (the recorded ones apply), or copy the collection into a new one "
           "with them: gte-rag migrate --from SRC --to DST --quantization ... (no re-encoding)")
    base = recorded or LEGACY_STORAGE
    differs = {n: v for n, v in creation.items() if v != getattr(base, n)}
    if differs and recorded is None:
        raise ConfigError(
            f"collection {found.collection!r} at {location!r} recorded no storage settings (it predates them), "
            f"so {differs} cannot be confirmed; these settings are fixed when a collection is created. {fix}"
        )
    if differs:
        raise ConfigError(
            f"collection {found.collection!r} at {location!r} was created with storage "
            f"{ {k: getattr(base, k) for k in differs} }, not {differs}; "
            f"these settings are fixed when a collection is created. {fix}"
        )
    try:
        return replace(base, **search)
    except ConfigError as exc:
        raise ConfigError(f"storage for collection {found.collection!r} at {location!r}: {exc}") from exc


def warn_if_unindexed(store: QdrantStore, storage: StorageConfig) -> None:
    """Warn when an Edge collection is opened with many points outside its HNSW index."""
    limit = storage.auto_index_points
    if limit is None or store.backend.engine != "edge":
        return
    pending = store.unindexed_points()
    if pending >= limit:
        warn_external(
            f"collection {store.layout.collection!r} has about {pending:,} points outside its HNSW index "
            "(a write was interrupted, or the index was never built), so queries scan them one by one. "
            "Fix: call optimize() (or add documents: the index is built after each write)"
        )


def keep_indexed(store: QdrantStore, storage: StorageConfig) -> bool:
    """After a write: build the HNSW index when enough points are outside it (Edge)."""
    return store.ensure_indexed(storage.auto_index_points)


async def akeep_indexed(store: AsyncQdrantStore, storage: StorageConfig) -> bool:
    """Async twin of :func:`keep_indexed`."""
    return await store.ensure_indexed(storage.auto_index_points)
