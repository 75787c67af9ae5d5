"""Convert ``qdrant_client.models`` filters, queries and formulas to Qdrant Edge types.

The core speaks ``qdrant_client.models`` (one filter type for every engine); Qdrant Edge
has its own Python classes with the same meaning. Anything Edge cannot express raises
:class:`~gte_rag.errors.ConfigError` naming the construct.

A query is converted once: :func:`to_edge_request` turns a whole plan into one
``QueryRequest``, converting a filter object that the plan repeats (every prefetch and the
outer query carry the same one) a single time, and passing vectors that already are lists
of numbers through as they are (Edge checks the element types itself).
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import qdrant_edge as qe
from qdrant_client import models

from gte_rag.errors import ConfigError
from gte_rag.qdrant._query import QueryPlan

__all__ = ["convert_filter", "to_edge_filter", "to_edge_prefetch", "to_edge_query", "to_edge_request"]

logger = logging.getLogger(__name__)

# Qdrant's default RRF k when a plain ``Fusion.RRF`` is asked for.
_SERVER_DEFAULT_RRF_K = 2


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:  # Qdrant reads naive datetimes as UTC
            value = value.replace(tzinfo=_dt.timezone.utc)
        return value.isoformat()
    if isinstance(value, _dt.date):
        return _dt.datetime(value.year, value.month, value.day, tzinfo=_dt.timezone.utc).isoformat()
    return str(value)


def _num(value: Any) -> float | None:
    return None if value is None else float(value)


def _match(match: Any) -> Any:
    if isinstance(match, models.MatchValue):
        return qe.MatchValue(match.value)
    if isinstance(match, models.MatchText):
        return qe.MatchText(match.text)
    if isinstance(match, models.MatchTextAny):
        return qe.MatchTextAny(match.text_any)
    if isinstance(match, models.MatchPhrase):
        return qe.MatchPhrase(match.phrase)
    if isinstance(match, models.MatchPrefix):
        return qe.MatchPrefix(match.prefix)
    if isinstance(match, models.MatchSubstring):
        return qe.MatchSubstring(match.substring)
    if isinstance(match, models.MatchAny):
        return qe.MatchAny(list(match.any))  # type: ignore[arg-type]  # a list[str] or a list[int]
    if isinstance(match, models.MatchExcept):
        return qe.MatchExcept(list(match.except_))  # type: ignore[arg-type]  # a list[str] or a list[int]
    raise ConfigError(f"match {type(match).__name__} is not supported by Qdrant Edge")


def _range(rng: Any) -> Any:
    if isinstance(rng, models.DatetimeRange):
        return qe.RangeDateTime(gte=_iso(rng.gte), gt=_iso(rng.gt), lte=_iso(rng.lte), lt=_iso(rng.lt))
    if isinstance(rng, models.Range):
        return qe.RangeFloat(gte=_num(rng.gte), gt=_num(rng.gt), lte=_num(rng.lte), lt=_num(rng.lt))
    raise ConfigError(f"range {type(rng).__name__} is not supported by Qdrant Edge")


def _geo_point(p: models.GeoPoint) -> qe.GeoPoint:
    return qe.GeoPoint(lon=p.lon, lat=p.lat)


def _refuse_bool_match(key: str, match: Any) -> None:
    # qdrant-edge-py 0.9.0 turns a bool into the int 1 / 0 (qe.MatchValue(True).value == 1, also
    # with value= and in MatchAny), which never matches a bool payload, and must_not then
    # matches everything: refuse instead of returning wrong results
    values = [getattr(match, "value", None), *(getattr(match, "any", None) or []),
              *(getattr(match, "except_", None) or [])]
    if any(isinstance(v, bool) for v in values):
        raise ConfigError(
            f"Qdrant Edge cannot match the bool field {key!r} (its Python binding sends bools as integers, "
            f"so the match would silently find nothing); store {key!r} as a keyword ('true' / 'false') or an "
            "int (1 / 0) and match that, or use qdrant-client (local mode or a server)"
        )


def _field_condition(cond: models.FieldCondition) -> qe.FieldCondition:
    kwargs: dict[str, Any] = {}
    if cond.match is not None:
        _refuse_bool_match(cond.key, cond.match)
        kwargs["match"] = _match(cond.match)
    if cond.range is not None:
        kwargs["range"] = _range(cond.range)
    if cond.values_count is not None:
        vc = cond.values_count
        kwargs["values_count"] = qe.ValuesCount(lt=vc.lt, gt=vc.gt, lte=vc.lte, gte=vc.gte)
    if cond.geo_bounding_box is not None:
        box = cond.geo_bounding_box
        kwargs["geo_bounding_box"] = qe.GeoBoundingBox(
            _geo_point(box.top_left), _geo_point(box.bottom_right)
        )
    if cond.geo_radius is not None:
        kwargs["geo_radius"] = qe.GeoRadius(_geo_point(cond.geo_radius.center), cond.geo_radius.radius)
    if cond.geo_polygon is not None:
        poly = cond.geo_polygon
        kwargs["geo_polygon"] = qe.GeoPolygon(
            [_geo_point(p) for p in poly.exterior.points],
            [[_geo_point(p) for p in ring.points] for ring in poly.interiors]
            if poly.interiors
            else None,
        )
    if cond.is_empty is not None:
        kwargs["is_empty"] = cond.is_empty
    if cond.is_null is not None:
        kwargs["is_null"] = cond.is_null
    try:
        return qe.FieldCondition(cond.key, **kwargs)
    except ValueError as exc:  # Edge parses the key (a JSON path) when the condition is built
        raise ConfigError(f"filter key {cond.key!r} is not valid for Qdrant Edge: {exc}") from exc


def _condition(cond: Any) -> Any:
    if isinstance(cond, models.Filter):
        return to_edge_filter(cond)
    if isinstance(cond, models.FieldCondition):
        return _field_condition(cond)
    if isinstance(cond, models.IsEmptyCondition):
        return qe.IsEmptyCondition(cond.is_empty.key)
    if isinstance(cond, models.IsNullCondition):
        return qe.IsNullCondition(cond.is_null.key)
    if isinstance(cond, models.HasIdCondition):
        return qe.HasIdCondition({str(i) if not isinstance(i, int) else i for i in cond.has_id})
    if isinstance(cond, models.HasVectorCondition):
        return qe.HasVectorCondition(cond.has_vector)
    if isinstance(cond, models.NestedCondition):
        return qe.NestedCondition(cond.nested.key, convert_filter(cond.nested.filter))
    raise ConfigError(f"filter condition {type(cond).__name__} is not supported by Qdrant Edge")


def to_edge_filter(flt: models.Filter | None) -> qe.Filter | None:
    """Convert a ``qdrant_client.models.Filter`` (any nesting) to ``qdrant_edge.Filter``."""
    return None if flt is None else convert_filter(flt)


def convert_filter(flt: models.Filter) -> qe.Filter:
    """:func:`to_edge_filter` for a filter that is there."""
    min_should = None
    if flt.min_should is not None:
        min_should = qe.MinShould(
            [_condition(c) for c in flt.min_should.conditions], flt.min_should.min_count
        )
    must = [_condition(c) for c in _as_list(flt.must)]
    should = [_condition(c) for c in _as_list(flt.should)]
    must_not = [_condition(c) for c in _as_list(flt.must_not)]
    return qe.Filter(
        must=must or None, should=should or None, must_not=must_not or None, min_should=min_should
    )


def _vector(value: Any) -> Any:
    if isinstance(value, list):
        # A list (of numbers, or of rows for a multivector) is what Edge takes: no copy.
        # Edge reads each element as a float and raises TypeError for anything else.
        return value
    if isinstance(value, models.SparseVector):
        return qe.SparseVector(value.indices, value.values)
    if isinstance(value, qe.SparseVector):
        return value
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return [_vector(row) if isinstance(row, (Sequence, np.ndarray)) else row for row in value]
    raise ConfigError(f"query vector of type {type(value).__name__} is not supported by Qdrant Edge")


_UNARY: dict[type[Any], tuple[str, Callable[[qe.Expression], qe.Expression]]] = {
    models.SqrtExpression: ("sqrt", qe.Expression.Sqrt),
    models.ExpExpression: ("exp", qe.Expression.Exp),
    models.Log10Expression: ("log10", qe.Expression.Log10),
    models.LnExpression: ("ln", qe.Expression.Ln),
    models.AbsExpression: ("abs", qe.Expression.Abs),
    models.NegExpression: ("neg", qe.Expression.Neg),
}
_NARY: dict[type[Any], tuple[str, Callable[[list[qe.Expression]], qe.Expression]]] = {
    models.SumExpression: ("sum", qe.Expression.Sum),
    models.MultExpression: ("mult", qe.Expression.Mult),
    models.MaxExpression: ("max", qe.Expression.Max),
    models.MinExpression: ("min", qe.Expression.Min),
}
_DECAY: dict[type[Any], tuple[str, qe.DecayKind]] = {
    models.LinDecayExpression: ("lin_decay", qe.DecayKind.Lin),
    models.ExpDecayExpression: ("exp_decay", qe.DecayKind.Exp),
    models.GaussDecayExpression: ("gauss_decay", qe.DecayKind.Gauss),
}
_CONDITIONS = (
    models.FieldCondition,
    models.IsEmptyCondition,
    models.IsNullCondition,
    models.HasIdCondition,
    models.HasVectorCondition,
    models.NestedCondition,
    models.Filter,
)


def _expression(expr: Any) -> qe.Expression:
    if isinstance(expr, bool):
        raise ConfigError("a boolean is not a formula expression; use a condition")
    if isinstance(expr, (int, float)):
        return qe.Expression.Constant(float(expr))
    if isinstance(expr, str):
        return qe.Expression.Variable(expr)
    kind = type(expr)
    if kind in _UNARY:
        attr, ctor = _UNARY[kind]
        return ctor(_expression(getattr(expr, attr)))
    if kind in _NARY:
        attr, nary = _NARY[kind]
        return nary([_expression(e) for e in getattr(expr, attr)])
    if kind in _DECAY:
        attr, decay = _DECAY[kind]
        p = getattr(expr, attr)
        return qe.Expression.Decay(
            decay,
            _expression(p.x),
            target=None if p.target is None else _expression(p.target),
            midpoint=p.midpoint,
            scale=p.scale,
        )
    if isinstance(expr, models.DivExpression):
        d = expr.div
        return qe.Expression.Div(_expression(d.left), _expression(d.right), d.by_zero_default)
    if isinstance(expr, models.PowExpression):
        return qe.Expression.Pow(_expression(expr.pow.base), _expression(expr.pow.exponent))
    if isinstance(expr, models.DatetimeExpression):
        return qe.Expression.Datetime(expr.datetime)
    if isinstance(expr, models.DatetimeKeyExpression):
        return qe.Expression.DatetimeKey(expr.datetime_key)
    if isinstance(expr, models.GeoDistance):
        g = expr.geo_distance
        return qe.Expression.GeoDistance(_geo_point(g.origin), g.to)
    if isinstance(expr, _CONDITIONS):
        return qe.Expression.Condition(_condition(expr))
    raise ConfigError(f"formula expression {kind.__name__} is not supported by Qdrant Edge")


def to_edge_query(query: Any, using: str | None) -> Any:
    """Convert a Query API ``query`` (vector, nearest, fusion, RRF, formula) to Edge."""
    if isinstance(query, list):  # the usual prefetch branch: a dense vector, as it is
        return qe.Query.Nearest(query, using=using)
    if query is None:
        return None
    if isinstance(query, models.NearestQuery):
        return qe.Query.Nearest(_vector(query.nearest), using=using)
    if isinstance(query, models.RrfQuery):
        return qe.Fusion.Rrf(k=query.rrf.k or _SERVER_DEFAULT_RRF_K, weights=query.rrf.weights)
    if isinstance(query, models.FusionQuery):
        if query.fusion == models.Fusion.DBSF:
            return qe.Fusion.Dbsf()
        return qe.Fusion.Rrf(k=_SERVER_DEFAULT_RRF_K)
    if isinstance(query, models.FormulaQuery):
        return qe.Formula(_expression(query.formula), defaults=dict(query.defaults or {}))
    if isinstance(query, (list, tuple, models.SparseVector)):
        return qe.Query.Nearest(_vector(query), using=using)
    raise ConfigError(f"query {type(query).__name__} is not supported by Qdrant Edge")


class _FilterMemo:
    """Converts each filter object once (by identity) while one request is converted."""

    __slots__ = ("_done",)

    def __init__(self) -> None:
        # id -> (source, converted); the source is kept so that its id stays unique
        self._done: dict[int, tuple[models.Filter, qe.Filter]] = {}

    def __call__(self, flt: models.Filter | None) -> qe.Filter | None:
        if flt is None:
            return None
        hit = self._done.get(id(flt))
        if hit is None:
            hit = self._done[id(flt)] = (flt, convert_filter(flt))
        return hit[1]


def to_edge_prefetch(prefetch: models.Prefetch, *, _filters: _FilterMemo | None = None) -> qe.Prefetch:
    """Convert one (possibly nested) ``models.Prefetch``."""
    if prefetch.lookup_from is not None or prefetch.params is not None:
        raise ConfigError("Prefetch lookup_from/params are not supported by the Edge backend")
    filters = _FilterMemo() if _filters is None else _filters
    inner = prefetch.prefetch
    nested = None if inner is None else [to_edge_prefetch(p, _filters=filters) for p in _as_list(inner)]
    return qe.Prefetch(
        limit=prefetch.limit if prefetch.limit is not None else 10,
        query=to_edge_query(prefetch.query, prefetch.using),
        prefetches=nested or None,
        filter=filters(prefetch.filter),
        score_threshold=prefetch.score_threshold,
    )


def _spec_request(plan: QueryPlan) -> qe.QueryRequest:
    """The request of a plan built by ``build_query_plan``, in Edge types straight from its spec.

    No ``qdrant_client.models`` object is made on this path: the vectors go to Edge as
    they are, and the filter is converted once for all branches.
    """
    spec = plan.spec
    assert spec is not None
    flt = to_edge_filter(plan.filter)
    sparse = None if spec.sparse is None else qe.SparseVector(list(spec.sparse.indices), list(spec.sparse.values))
    dense: Any = spec.dense  # present for the modes that read it (build_query_plan checks)
    if spec.mode == "dense":
        query: Any = qe.Query.Nearest(dense, using=spec.dense_name)
        prefetches = None
    elif spec.mode == "sparse":
        query, prefetches = qe.Query.Nearest(sparse, using=spec.sparse_name), None  # type: ignore[arg-type]
    else:
        config = spec.hybrid
        if config.fusion == "rrf":
            weights = config.weights
            query = qe.Fusion.Rrf(k=config.rrf_k, weights=None if weights == (1.0, 1.0) else list(weights))
        else:  # DBSF and the weighted formula: the general conversion
            query = to_edge_query(plan.query, None)
        limit = spec.prefetch_limit
        prefetches = [
            qe.Prefetch(limit=limit, query=qe.Query.Nearest(dense, using=spec.dense_name),
                        prefetches=None, filter=flt, score_threshold=None),
            qe.Prefetch(limit=limit, query=qe.Query.Nearest(sparse, using=spec.sparse_name),  # type: ignore[arg-type]
                        prefetches=None, filter=flt, score_threshold=None),
        ]
    return qe.QueryRequest(
        limit=plan.limit, query=query, prefetches=prefetches, filter=flt,
        with_payload=plan.with_payload, with_vector=False,
    )


def to_edge_request(plan: QueryPlan) -> qe.QueryRequest:
    """Convert a whole :class:`QueryPlan` into one ``QueryRequest`` (each filter converted once)."""
    if plan.spec is not None:
        return _spec_request(plan)
    filters = _FilterMemo()
    return qe.QueryRequest(
        limit=plan.limit,
        query=to_edge_query(plan.query, plan.using),
        prefetches=[to_edge_prefetch(p, _filters=filters) for p in plan.prefetch] or None,
        filter=filters(plan.filter),
        with_payload=plan.with_payload,
        with_vector=False,
    )
