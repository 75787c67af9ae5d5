"""Translate LlamaIndex ``MetadataFilters`` into a ``qdrant_client.models.Filter``.

Every ``FilterOperator`` is supported, with ``AND`` / ``OR`` / ``NOT`` and nesting:

============================  ===================================================================
operator                      Qdrant condition (meaning)
============================  ===================================================================
EQ                            MatchValue; a float becomes Range(gte=v, lte=v)
NE                            must_not EQ: field missing, or no value equals v
GT, GTE, LT, LTE              Range for numbers; DatetimeRange for ISO-8601 strings
IN                            MatchAny (field value, or any element of a list field, is in values)
NIN                           must_not IN: field missing, or no value is in values
ANY                           MatchAny on a list field: shares at least one value
ALL                           must of MatchValue per value: list field holds every value
CONTAINS                      MatchValue on a list field: holds the value
TEXT_MATCH                    MatchSubstring: case-sensitive substring, LlamaIndex's semantics
TEXT_MATCH_INSENSITIVE        MatchText: every word of the query appears, ignoring case
IS_EMPTY                      IsEmptyCondition: field missing, null or []
============================  ===================================================================

``TEXT_MATCH_INSENSITIVE`` is case-insensitive on Qdrant Edge and qdrant-client local mode
with or without an index; on a server it needs a ``text`` payload index (our layouts create
it lowercased), otherwise the server falls back to a case-sensitive substring match.
NOT means "none of the listed conditions holds".
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Sequence
from typing import Any

from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)
from qdrant_client import models

from gte_rag.errors import ConfigError

__all__ = ["to_qdrant_filter"]

logger = logging.getLogger(__name__)


def _is_float(value: Any) -> bool:
    return isinstance(value, float)


def _eq(key: str, value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        raise ConfigError(
            f"filter on {key!r}: EQ/NE/CONTAINS take one value, got a list {value!r}; "
            "use IN/NIN/ANY/ALL for lists"
        )
    if value is None:
        raise ConfigError(f"filter on {key!r}: value None is not comparable; use IS_EMPTY")
    if _is_float(value):
        return models.FieldCondition(key=key, range=models.Range(gte=value, lte=value))
    return models.FieldCondition(key=key, match=models.MatchValue(value=value))


def _values(key: str, value: Any, op: FilterOperator) -> list[Any]:
    if value is None:
        raise ConfigError(f"filter on {key!r}: operator {op.name} needs a value")
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _any_of(key: str, values: Sequence[Any]) -> Any:
    if all(isinstance(v, str) for v in values) or all(
        isinstance(v, int) and not isinstance(v, bool) for v in values
    ):
        return models.FieldCondition(key=key, match=models.MatchAny(any=list(values)))
    # floats or mixed types: Qdrant's MatchAny takes only strings or only ints
    return models.Filter(should=[_eq(key, v) for v in values])


def _parse_datetime(key: str, value: str) -> str:
    try:
        _dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError(
            f"filter on {key!r}: range operators take numbers or ISO-8601 datetimes, got {value!r}"
        ) from exc
    return value


def _range(key: str, op: FilterOperator, value: Any) -> Any:
    bound = {
        FilterOperator.GT: "gt",
        FilterOperator.GTE: "gte",
        FilterOperator.LT: "lt",
        FilterOperator.LTE: "lte",
    }[op]
    if isinstance(value, bool) or value is None or isinstance(value, (list, tuple)):
        raise ConfigError(f"filter on {key!r}: {op.name} needs one number or datetime, got {value!r}")
    if isinstance(value, str):
        rng: Any = models.DatetimeRange.model_validate({bound: _parse_datetime(key, value)})
    else:
        rng = models.Range(**{bound: value})
    return models.FieldCondition(key=key, range=rng)


def _text(key: str, value: Any, op: FilterOperator) -> Any:
    if not isinstance(value, str):
        raise ConfigError(f"filter on {key!r}: {op.name} needs a string, got {value!r}")
    if op == FilterOperator.TEXT_MATCH:
        return models.FieldCondition(key=key, match=models.MatchSubstring(substring=value))
    return models.FieldCondition(key=key, match=models.MatchText(text=value))


def _condition(flt: MetadataFilter) -> Any:
    key, value, op = flt.key, flt.value, flt.operator or FilterOperator.EQ
    if op in (FilterOperator.EQ, FilterOperator.CONTAINS):
        return _eq(key, value)
    if op == FilterOperator.NE:
        return models.Filter(must_not=[_eq(key, value)])
    if op in (FilterOperator.GT, FilterOperator.GTE, FilterOperator.LT, FilterOperator.LTE):
        return _range(key, op, value)
    if op in (FilterOperator.IN, FilterOperator.ANY):
        return _any_of(key, _values(key, value, op))
    if op == FilterOperator.NIN:
        return models.Filter(must_not=[_any_of(key, _values(key, value, op))])
    if op == FilterOperator.ALL:
        return models.Filter(must=[_eq(key, v) for v in _values(key, value, op)])
    if op in (FilterOperator.TEXT_MATCH, FilterOperator.TEXT_MATCH_INSENSITIVE):
        return _text(key, value, op)
    if op == FilterOperator.IS_EMPTY:
        return models.IsEmptyCondition(is_empty=models.PayloadField(key=key))
    raise ConfigError(
        f"filter operator {op!r} on {key!r} is not supported; supported: "
        f"{[o.name for o in FilterOperator]}"
    )


def _build(filters: MetadataFilters) -> models.Filter | None:
    conditions: list[Any] = []
    for item in filters.filters:
        if isinstance(item, MetadataFilters):
            nested = _build(item)
            if nested is not None:
                conditions.append(nested)
        elif isinstance(item, MetadataFilter):
            conditions.append(_condition(item))
        else:
            raise ConfigError(f"unexpected filter item {type(item).__name__}")
    if not conditions:
        return None
    condition = filters.condition or FilterCondition.AND
    if condition == FilterCondition.AND:
        return models.Filter(must=conditions)
    if condition == FilterCondition.OR:
        return models.Filter(should=conditions)
    if condition == FilterCondition.NOT:
        return models.Filter(must_not=conditions)
    raise ConfigError(f"filter condition {condition!r} is not supported; use AND, OR or NOT")


def to_qdrant_filter(filters: MetadataFilters | None) -> models.Filter | None:
    """Translate LlamaIndex metadata filters (any nesting) to one Qdrant filter.

    Args:
        filters: The LlamaIndex filters, or ``None``.

    Returns:
        The Qdrant filter, or ``None`` when there is nothing to filter on.

    Raises:
        ConfigError: an unknown operator or condition, or a value the operator cannot
            use (e.g. a list for EQ, a non-date string for GT).

    Example:
        >>> from llama_index.core.vector_stores.types import MetadataFilter, MetadataFilters
        >>> f = to_qdrant_filter(MetadataFilters(filters=[MetadataFilter(key="year", value=2024)]))
        >>> f.must[0].match.value
        2024
    """
    if filters is None:
        return None
    if not isinstance(filters, MetadataFilters):
        raise ConfigError(f"expected llama_index MetadataFilters, got {type(filters).__name__}")
    return _build(filters)
