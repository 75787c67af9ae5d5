"""Batching helpers shared by the encoder, the reranker and the store.

Texts are sorted by token length, grouped under a batch-size cap *and* a padded-token
budget (GTE inputs run from a few tokens to 8k, so a fixed batch size alone either wastes
padding or runs out of memory), and results are put back in input order by the caller.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")

__all__ = ["iter_batch", "length_sorted_batches", "progress"]


def iter_batch(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Yield consecutive lists of at most ``size`` items.

    >>> list(iter_batch(range(5), 2))
    [[0, 1], [2, 3], [4]]
    """
    if size < 1:
        raise ValueError(f"batch size must be >= 1, got {size}")
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def length_sorted_batches(
    lengths: Sequence[int], *, batch_size: int, max_batch_tokens: int
) -> list[list[int]]:
    """Group item indices into batches, longest first.

    Each batch holds at most ``batch_size`` items, and ``len(batch) * longest`` (the
    padded size) stays within ``max_batch_tokens``; an item longer than the budget gets
    a batch of its own.

    >>> length_sorted_batches([3, 10, 2, 9], batch_size=2, max_batch_tokens=100)
    [[1, 3], [0, 2]]
    >>> length_sorted_batches([3, 10, 2, 9], batch_size=8, max_batch_tokens=20)
    [[1, 3], [0, 2]]
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if max_batch_tokens < 1:
        raise ValueError(f"max_batch_tokens must be >= 1, got {max_batch_tokens}")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for idx in order:
        n = max(1, lengths[idx])
        if current:
            # sorted descending: the first item of a batch is its longest
            if len(current) + 1 > batch_size or (len(current) + 1) * longest > max_batch_tokens:
                batches.append(current)
                current = []
        if not current:
            longest = n
        current.append(idx)
    if current:
        batches.append(current)
    return batches


def progress(iterable: Iterable[T], *, enabled: bool, total: int | None = None, desc: str = "", unit: str = "it") -> Iterable[T]:
    """Wrap ``iterable`` in a tqdm bar when ``enabled``; tqdm is imported lazily."""
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    bar: Any = tqdm(iterable, total=total, desc=desc, unit=unit)
    return bar
