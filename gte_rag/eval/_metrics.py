"""Score a retrieval run against relevance judgments with ``ir_measures``.

Metric names are lower-case ``<family>@<cutoff>`` strings; each family maps to one
``ir_measures`` measure (computed by pytrec_eval, the trec_eval port)::

    ndcg@k       nDCG@k       graded gains: the qrels score is the gain
    recall@k     R@k          score >= 1 is relevant
    mrr@k        RR@k         reciprocal rank of the first document with score >= 1
    precision@k  P@k          score >= 1 is relevant
    map@k        AP@k         score >= 1 is relevant

Two choices differ from feeding a score dict to trec_eval directly:

* Ties. trec_eval breaks equal scores by document id (descending), and ir_measures
  computes ``RR@k`` with its msmarco provider, which breaks them another way, so one call
  could score a fused list with tied scores in two orders, neither of them the one the
  system returned. Here scores are replaced by ranks first: score descending, ties kept
  in input order (list order, or mapping insertion order), and every metric sees that.
* Missing queries. Every judged query counts: one absent from the run (or with an empty
  list) scores 0 for every metric. Queries the qrels do not judge are ignored.
"""

from __future__ import annotations

import logging
import math
import numbers
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeAlias

import ir_measures

from gte_rag.errors import ConfigError

__all__ = [
    "DEFAULT_METRICS",
    "Qrels",
    "Run",
    "evaluate_run",
    "evaluate_run_per_query",
    "supported_metrics",
]

logger = logging.getLogger(__name__)

DEFAULT_METRICS: tuple[str, ...] = ("ndcg@10", "recall@100", "mrr@10")
"""The BEIR headline metric and two companions: ranking quality, coverage, first hit."""

Run: TypeAlias = "Mapping[str, Mapping[str, float]] | Mapping[str, Sequence[tuple[str, float]]]"
"""Query id -> {doc id -> score}, or query id -> [(doc id, score), ...]."""

Qrels: TypeAlias = "Mapping[str, Mapping[str, int]]"
"""Query id -> {doc id -> graded score}; score > 0 is relevant."""

# family -> ir_measures measure factory (called with the cutoff)
_FAMILIES: dict[str, Any] = {
    "ndcg": lambda k: ir_measures.nDCG @ k,
    "recall": lambda k: ir_measures.R @ k,
    "mrr": lambda k: ir_measures.RR @ k,
    "precision": lambda k: ir_measures.P @ k,
    "map": lambda k: ir_measures.AP @ k,
}
_NAME_RE = re.compile(r"^([a-z]+)@([1-9][0-9]*)$")


def supported_metrics() -> tuple[str, ...]:
    """The metric families, each written as ``<family>@k`` (for example ``ndcg@10``)."""
    return tuple(f"{family}@k" for family in _FAMILIES)


def evaluate_run(
    run: Run,
    qrels: Qrels,
    *,
    metrics: Iterable[str] = DEFAULT_METRICS,
) -> dict[str, float]:
    """Mean of each metric over the judged queries.

    Args:
        run: The ranked results: query id -> {doc id -> score} or -> [(doc id, score)].
            Higher scores rank first; ties keep input order.
        qrels: Query id -> {doc id -> graded score}. Every query in it is averaged over,
            including queries whose judgments are all <= 0.
        metrics: Metric names such as ``"ndcg@10"``; see :func:`supported_metrics`.

    Returns:
        Metric name (normalised to lower case) -> mean value, in the order asked.

    Raises:
        ConfigError: An unknown metric name, empty qrels, a non-integer qrels score, or a
            malformed run (NaN score, repeated doc id in a list, wrong entry shape).

    Example:
        >>> evaluate_run({"q1": [("d2", 0.9), ("d1", 0.8)]}, {"q1": {"d1": 1}}, metrics=["mrr@10"])
        {'mrr@10': 0.5}
    """
    names, measures = _resolve_metrics(metrics)
    qrels_dict = _check_qrels(qrels)
    run_dict = _prepare_run(run, qrels_dict)
    aggregate = ir_measures.calc_aggregate(measures, qrels_dict, run_dict)
    return {name: float(aggregate[measure]) for name, measure in zip(names, measures, strict=True)}


def evaluate_run_per_query(
    run: Run,
    qrels: Qrels,
    *,
    metrics: Iterable[str] = DEFAULT_METRICS,
) -> dict[str, dict[str, float]]:
    """Each metric for each judged query (for significance tests and error analysis).

    Takes the same arguments as :func:`evaluate_run`.

    Returns:
        Query id (in qrels order) -> metric name -> value. The mean of each column equals
        :func:`evaluate_run`.

    Raises:
        ConfigError: As :func:`evaluate_run`.
    """
    names, measures = _resolve_metrics(metrics)
    qrels_dict = _check_qrels(qrels)
    run_dict = _prepare_run(run, qrels_dict)
    name_of = dict(zip(measures, names, strict=True))
    per_query: dict[str, dict[str, float]] = {q: {} for q in qrels_dict}
    for metric in ir_measures.iter_calc(measures, qrels_dict, run_dict):
        per_query[metric.query_id][name_of[metric.measure]] = float(metric.value)
    # Fixed column order, whatever order the provider yields in.
    return {q: {name: values[name] for name in names} for q, values in per_query.items()}


def _resolve_metrics(metrics: Iterable[str]) -> tuple[list[str], list[Any]]:
    if isinstance(metrics, str):
        # A bare string would otherwise be iterated character by character.
        metrics = (metrics,)
    names: list[str] = []
    measures: list[Any] = []
    for raw in metrics:
        name = str(raw).strip().lower()
        match = _NAME_RE.match(name)
        if match is None or match.group(1) not in _FAMILIES:
            raise ConfigError(
                f"unknown metric {raw!r}; supported metrics are "
                f"{', '.join(supported_metrics())} with k a positive integer "
                f"(defaults: {', '.join(DEFAULT_METRICS)})"
            )
        if name in names:
            continue
        names.append(name)
        measures.append(_FAMILIES[match.group(1)](int(match.group(2))))
    if not names:
        raise ConfigError(
            f"metrics is empty; pass at least one, for example {list(DEFAULT_METRICS)!r}"
        )
    return names, measures


def _check_qrels(qrels: Qrels) -> dict[str, dict[str, int]]:
    if not qrels:
        raise ConfigError("qrels is empty; there are no judged queries to average over")
    checked: dict[str, dict[str, int]] = {}
    for query_id, docs in qrels.items():
        if not isinstance(docs, Mapping):
            raise ConfigError(
                f"qrels[{query_id!r}] must map doc id -> integer score, got {type(docs).__name__}"
            )
        row: dict[str, int] = {}
        for doc_id, score in docs.items():
            if isinstance(score, bool) or not isinstance(score, numbers.Integral):
                raise ConfigError(
                    f"qrels[{query_id!r}][{doc_id!r}] = {score!r} is not an integer grade; "
                    "use ints (score > 0 is relevant)"
                )
            row[str(doc_id)] = int(score)
        checked[str(query_id)] = row
    return checked


def _prepare_run(run: Run, qrels: dict[str, dict[str, int]]) -> dict[str, dict[str, float]]:
    """Turn the run into rank-derived scores for the judged queries only.

    Scores become ``n, n-1, ..., 1`` after a stable sort, which fixes the tie order to the
    input order (see the module docstring). A judged query absent from the run gets an
    empty ranking so that it is scored 0 rather than skipped.
    """
    unjudged = sum(1 for q in run if q not in qrels)
    if unjudged:
        logger.debug("Ignoring %d run queries that the qrels do not judge", unjudged)
    prepared: dict[str, dict[str, float]] = {}
    missing = 0
    for query_id in qrels:
        if query_id not in run:
            missing += 1
            prepared[query_id] = {}
            continue
        ranked = _ranked_doc_ids(query_id, run[query_id])
        n = len(ranked)
        prepared[query_id] = {doc_id: float(n - i) for i, doc_id in enumerate(ranked)}
    if missing:
        logger.debug("%d judged queries are absent from the run and score 0", missing)
    return prepared


def _ranked_doc_ids(query_id: str, results: Any) -> list[str]:
    if isinstance(results, Mapping):
        pairs = list(results.items())
    elif isinstance(results, Sequence) and not isinstance(results, (str, bytes)):
        pairs = []
        seen: set[str] = set()
        for entry in results:
            if (
                not isinstance(entry, Sequence)
                or isinstance(entry, (str, bytes))
                or len(entry) != 2
            ):
                raise ConfigError(
                    f"run[{query_id!r}] entry {entry!r} is not a (doc id, score) pair"
                )
            if entry[0] in seen:
                raise ConfigError(
                    f"run[{query_id!r}] lists document {entry[0]!r} twice; a ranking holds "
                    "each document once (deduplicate chunks per document first)"
                )
            seen.add(entry[0])
            pairs.append((entry[0], entry[1]))
    else:
        raise ConfigError(
            f"run[{query_id!r}] must be a mapping doc id -> score or a list of "
            f"(doc id, score) pairs, got {type(results).__name__}"
        )
    for doc_id, score in pairs:
        if isinstance(score, bool) or not isinstance(score, numbers.Real) or math.isnan(score):
            raise ConfigError(
                f"run[{query_id!r}][{doc_id!r}] has score {score!r}; scores must be real "
                "numbers, not NaN"
            )
    # sorted() is stable: equal scores keep their input order.
    pairs.sort(key=lambda pair: -float(pair[1]))
    return [str(doc_id) for doc_id, _ in pairs]
