"""Qdrant's RRF and DBSF fusion, computed in the client the way the engine computes them.

Used where the branches of a hybrid query run as separate, concurrent requests
(:class:`~gte_rag.qdrant.EdgeBackend`, whose engine runs a request's branches one after the
other on one core). The arithmetic follows Qdrant's (``segment::common``) step by step in
float32, so that the fused scores are the same numbers the engine returns for the one-request
form; the tests compare both forms on the same collection.

- RRF: a hit at 0-based rank ``r`` of a branch with weight ``w`` adds
  ``1 / ((r + 1) / w + k - 1)``; a branch of weight 0 or less adds nothing.
- DBSF: each branch's scores are rescaled by ``(s - lo) / (hi - lo)`` with
  ``lo, hi = mean -+ 3 * std`` (one-pass mean and sample variance, Welford's method); a
  branch of one hit gives it 0.5, a branch whose ``lo`` equals ``hi`` gives every hit 0.5.
  The rescaled scores are not clipped. A hit's fused score is the sum over the branches
  that found it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

__all__ = ["dbsf_normalize", "fuse_branches", "rrf_position_scores"]

_F32 = np.float32
_HALF = _F32(0.5)


def rrf_position_scores(n: int, k: int, weight: float = 1.0) -> list[float]:
    """RRF contributions of ranks ``0 .. n-1`` of one branch (float32, as Qdrant computes them)."""
    w = _F32(weight)
    if w <= 0:
        return [0.0] * n
    one, kk = _F32(1.0), _F32(k)
    ranks = np.arange(1, n + 1, dtype=np.float32)
    # ((r + 1) / w + k) - 1, then 1 / that: each step rounded to float32 as in the engine
    return (one / ((ranks / w + kk) - one)).astype(np.float32).tolist()


def dbsf_normalize(scores: Sequence[float]) -> list[float]:
    """One branch's scores rescaled by DBSF (float32, as Qdrant computes them)."""
    n = len(scores)
    if n < 2:
        return [0.5] * n
    values = np.asarray(scores, dtype=np.float32)
    mean, aggregate = _F32(0.0), _F32(0.0)
    for count, x in enumerate(values.tolist(), 1):  # Welford, one float32 rounding per step
        x32 = _F32(x)
        old_delta = _F32(x32 - mean)
        mean = _F32(mean + _F32(old_delta / _F32(count)))
        aggregate = _F32(aggregate + _F32(old_delta * _F32(x32 - mean)))
    variance = _F32(aggregate / _F32(_F32(n) - _F32(1.0)))
    std = _F32(np.sqrt(variance))
    three = _F32(3.0)
    lo = _F32(mean - _F32(three * std))
    hi = _F32(mean + _F32(three * std))
    if lo == hi:
        return [0.5] * n
    return ((values - lo) / _F32(hi - lo)).astype(np.float32).tolist()


def fuse_branches(
    branches: Sequence[Sequence[Any]],
    fusion: Literal["rrf", "dbsf"],
    *,
    rrf_k: int = 2,
    weights: Sequence[float] | None = None,
) -> list[tuple[Any, float]]:
    """Fuse ranked branches (each a best-first sequence of hits with ``.id`` and ``.score``).

    Returns ``(hit, fused score)`` pairs, best first, ties by id; ``hit`` is the first
    branch's object for that id (the one whose payload is kept).
    """
    if weights is not None and len(weights) != len(branches):
        raise ValueError(f"{len(weights)} weights for {len(branches)} branches")
    fused: dict[Any, list[Any]] = {}
    for b, hits in enumerate(branches):
        if fusion == "rrf":
            parts = rrf_position_scores(len(hits), rrf_k, 1.0 if weights is None else weights[b])
        elif fusion == "dbsf":
            parts = dbsf_normalize([h.score for h in hits])
        else:
            raise ValueError(f"fusion must be 'rrf' or 'dbsf', got {fusion!r}")
        for hit, part in zip(hits, parts):
            entry = fused.get(hit.id)
            if entry is None:
                fused[hit.id] = [hit, _F32(part)]
            else:
                entry[1] = _F32(entry[1] + _F32(part))
    ranked = sorted(fused.values(), key=lambda e: (-float(e[1]), str(e[0].id)))
    return [(hit, float(score)) for hit, score in ranked]
