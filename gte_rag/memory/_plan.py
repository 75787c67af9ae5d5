"""Pure builders of the memory layer: scope filters, the one search request, neighbour scoring.

Every filter is built per call from the scope arguments (never kept on an object), and the
search filter goes into every prefetch and into the outer query. The search is ONE Query API
request on either engine::

    prefetch: [ RRF(k) over [ dense(turn), sparse(turn), dense(context) ]  (filter in each) ]
    query:    formula  $score + w_r * decay(timestamp, now, scale) + w_i * importance

``$score`` is the fused prefetch's score; the decay runs on the event time's datetime payload.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from qdrant_client import models

import numpy as np

from ..qdrant import CollectionLayout, QueryPlan, SearchHit
from ..qdrant._layout import PayloadIndexType
from . import _records as r
from ._records import (
    ACTIVE,
    STATE,
    SUPERSEDED_BY,
    TEXT,
    HASH,
    IMPORTANCE,
    KIND,
    LINEAGE,
    MEMORY_ID,
    MEMORY_KIND,
    TIMESTAMP,
    TURN,
    MemoryEvent,
    Scope,
    iso,
)
from ._settings import MemorySettings

__all__ = [
    "CONTEXT_VECTOR",
    "PAYLOAD_INDEXES",
    "duplicate_of",
    "id_filter",
    "judge_near_duplicates",
    "kind_condition",
    "lineage_filter",
    "lineage_of",
    "memory_filter",
    "placeholder",
    "rescore_with_neighbours",
    "scope_filter",
    "search_plan",
    "successor_filter",
]

CONTEXT_VECTOR = "context"
"""Name of the context vector (the turn with the turns before it), the layout's second dense vector."""

PAYLOAD_INDEXES: dict[str, PayloadIndexType] = {
    "user_id": "keyword", "agent_id": "keyword", "session_id": "keyword", r.KIND: "keyword",
    r.STATE: "keyword", r.TIMESTAMP: "datetime", r.HASH: "keyword", r.LINEAGE: "keyword",
    r.MEMORY_ID: "keyword", r.TURN: "integer",
}


def placeholder(size: int) -> np.ndarray:
    """The vector of a point that is never searched (history copies, counters: the kind filter)."""
    vec = np.zeros(size, dtype=np.float32)
    vec[0] = 1.0
    return vec


_DECAYS: dict[str, Any] = {
    "exp": (models.ExpDecayExpression, "exp_decay"),
    "gauss": (models.GaussDecayExpression, "gauss_decay"),
    "lin": (models.LinDecayExpression, "lin_decay"),
}


def _match(key: str, value: Any) -> models.FieldCondition:
    return models.FieldCondition(key=key, match=models.MatchValue(value=value))


def scope_filter(scope: Scope, *extra: Any) -> models.Filter:
    """Points inside ``scope`` (every given scope field equal), and the ``extra`` conditions."""
    must: list[Any] = [_match(k, v) for k, v in scope.fields().items()]
    must.extend(extra)
    return models.Filter(must=must)


def memory_filter(
    scope: Scope,
    *,
    since: _dt.datetime | None = None,
    until: _dt.datetime | None = None,
    content_hash: str | None = None,
) -> models.Filter:
    """Active (not superseded) memories of ``scope``, their event time in ``[since, until]``."""
    extra: list[Any] = [_match(KIND, MEMORY_KIND), _match(STATE, ACTIVE)]
    if since is not None or until is not None:
        extra.append(models.FieldCondition(
            key=TIMESTAMP,
            range=models.DatetimeRange(gte=since, lte=until),
        ))
    if content_hash is not None:
        extra.append(_match(HASH, content_hash))
    return scope_filter(scope, *extra)


def id_filter(scope: Scope, memory_id: str, *, with_history: bool = False) -> models.Filter:
    """The memory ``memory_id`` if it lies inside ``scope`` (with its stored older versions)."""
    target: Any = models.HasIdCondition(has_id=[memory_id])
    if with_history:
        target = models.Filter(should=[target, _match(MEMORY_ID, memory_id)])
    else:
        target = models.Filter(must=[target, _match(KIND, MEMORY_KIND)])
    return scope_filter(scope, target)


def lineage_filter(scope: Scope, lineage: str) -> models.Filter:
    """Every version and predecessor of a memory (one lineage) inside ``scope``."""
    return scope_filter(scope, _match(LINEAGE, lineage))


def _formula(settings: MemorySettings, now: _dt.datetime) -> models.FormulaQuery:
    terms: list[Any] = ["$score"]
    if settings.recency_weight > 0:
        cls, attr = _DECAYS[settings.recency_decay]
        decay = cls(**{attr: models.DecayParamsExpression(
            x=models.DatetimeKeyExpression(datetime_key=TIMESTAMP),
            target=models.DatetimeExpression(datetime=iso(now)),
            scale=settings.recency_scale_seconds,
            midpoint=0.5,
        )})
        terms.append(models.MultExpression(mult=[float(settings.recency_weight), decay]))
    if settings.importance_weight > 0:
        terms.append(models.MultExpression(mult=[float(settings.importance_weight), IMPORTANCE]))
    return models.FormulaQuery(
        formula=models.SumExpression(sum=terms), defaults={IMPORTANCE: float(settings.default_importance)}
    )


def search_plan(
    layout: CollectionLayout,
    settings: MemorySettings,
    *,
    dense: Sequence[float],
    sparse: Any,
    flt: models.Filter,
    limit: int,
    now: _dt.datetime,
) -> QueryPlan:
    """The one search request: branches fused by RRF in a prefetch, then the formula on top.

    Args:
        dense: The query's dense vector (a list of floats).
        sparse: The query's :class:`~gte_rag._types.SparseVector`, or ``None`` (dense-only encoders).
        flt: The scope filter; put into every branch, the fused prefetch and the outer query.
        limit: Candidates to return.
        now: Reference time of the recency decay.
    """
    fetch = max(settings.candidates, limit)
    sparse_query = None if sparse is None else models.SparseVector(
        indices=[int(i) for i in sparse.indices], values=[float(v) for v in sparse.values]
    )
    branches: list[models.Prefetch] = []
    if settings.mode in ("hybrid", "dense"):
        branches.append(models.Prefetch(query=list(dense), using=layout.dense_name, filter=flt, limit=fetch))
    if settings.mode in ("hybrid", "sparse") and sparse_query is not None and layout.sparse_name is not None:
        branches.append(models.Prefetch(query=sparse_query, using=layout.sparse_name, filter=flt, limit=fetch))
    if settings.mode == "hybrid" and settings.use_context and layout.document_vector_name is not None:
        branches.append(models.Prefetch(query=list(dense), using=layout.document_vector_name, filter=flt, limit=fetch))
    if not branches:  # sparse mode with a dense-only encoder
        branches.append(models.Prefetch(query=list(dense), using=layout.dense_name, filter=flt, limit=fetch))
    if len(branches) == 1:
        inner = branches[0]
    else:
        inner = models.Prefetch(
            prefetch=branches, query=models.RrfQuery(rrf=models.Rrf(k=settings.rrf_k)), filter=flt, limit=fetch
        )
    return QueryPlan(_formula(settings, now), limit=limit, top_k=limit, prefetch=(inner,), filter=flt)


def _position(payload: Mapping[str, Any]) -> tuple[str, str | None, str, int] | None:
    turn, session = payload.get(TURN), payload.get("session_id")
    if session is None or isinstance(turn, bool) or not isinstance(turn, int):
        return None
    return str(payload.get("user_id")), payload.get("agent_id"), str(session), turn


def rescore_with_neighbours(hits: Sequence[SearchHit], weight: float) -> list[SearchHit]:
    """Each candidate gains ``weight`` times the best score of the turn just before or after
    it in the same session, among the candidates; best first, ties by id.

    An answer often spans two turns (a question and its reply, a claim and its detail): a
    turn next to a strong match is likelier to hold the evidence than an isolated one.
    """
    if weight <= 0:
        return sorted(hits, key=lambda h: (-h.score, h.id))
    at = {}
    for h in hits:
        pos = _position(h.payload)
        if pos is not None:
            at[pos] = h.score
    out = []
    for h in hits:
        pos = _position(h.payload)
        bonus = 0.0
        if pos is not None:
            user, agent, session, turn = pos
            near = [at.get((user, agent, session, turn + d)) for d in (-1, 1)]
            bonus = max((s for s in near if s is not None), default=0.0)
        out.append(SearchHit(h.id, h.score + weight * bonus, h.payload))
    return sorted(out, key=lambda h: (-h.score, h.id))


def lineage_of(payload: Mapping[str, Any], point_id: str) -> str:
    """The lineage a stored memory belongs to (its own id for a first memory)."""
    return str(payload.get(LINEAGE) or point_id)


def kind_condition() -> models.FieldCondition:
    """Condition selecting memory points (not the stored older versions)."""
    return _match(KIND, MEMORY_KIND)


def duplicate_of(
    i: int, h: str, hashes: Sequence[str], dense: Any, kept: Sequence[int], events: Sequence[MemoryEvent],
    existing: Mapping[Any, str], near: Sequence[SearchHit | None], threshold: float | None,
) -> tuple[str, float] | None:
    """``(id, similarity)`` of the memory that text ``i`` of an ``add`` call duplicates, or ``None``.

    Exact first (the content hash stored in the scope, then earlier texts of the call), then near
    (the best stored match's cosine, then earlier texts of the call) at ``threshold``.
    ``kept`` lists the texts of the call stored so far, in the order of the ``"added"`` events.
    """
    if h in existing:
        return existing[h], 1.0
    ids = [e.id for e in events if e.event == "added"]  # parallel to ``kept``
    for j, k in enumerate(kept):
        if hashes[k] == h:
            return ids[j], 1.0
    if threshold is None:
        return None
    hit = near[i]
    if hit is not None and hit.score >= threshold:
        return hit.id, float(hit.score)
    for j, k in enumerate(kept):
        sim = float(dense[i] @ dense[k])
        if sim >= threshold:
            return ids[j], sim
    return None


def successor_filter(scope: Scope, memory_id: str) -> models.Filter:
    """The memories of ``scope`` that ``memory_id`` superseded."""
    return scope_filter(scope, _match(KIND, MEMORY_KIND), _match(SUPERSEDED_BY, memory_id))


def judge_near_duplicates(
    judge: Callable[[str, str], bool], texts: Sequence[str], hashes: Sequence[str], existing: Mapping[Any, str],
    near: Sequence[SearchHit | None], threshold: float | None,
) -> dict[int, str]:
    """``{text index: stored id}`` for the near duplicates the judge says the new text contradicts.

    A near duplicate may be a correction ("555-1234" -> "555-9876"): the judge sees it before dedup
    does. Exact content-hash matches never reach the judge.
    """
    out: dict[int, str] = {}
    if threshold is None:
        return out
    for i, (text, h, hit) in enumerate(zip(texts, hashes, near)):
        if hit is None or hit.score < threshold or h in existing:
            continue
        if judge(text, str(hit.payload.get(TEXT, ""))):
            out[i] = hit.id
    return out
