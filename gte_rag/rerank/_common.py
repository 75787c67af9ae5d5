"""Pieces shared by the cross-encoder and the LLM relevance scorer."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from .._runtime import warn_external
from ..errors import ConfigError, InputTypeError

if TYPE_CHECKING:
    import torch

    from .._runtime import Precision
    from ..models import Checkpoint

logger = logging.getLogger(__name__)

__all__ = [
    "PairScorer",
    "RerankResult",
    "ScorerSettings",
    "check_pairs",
    "check_positive",
    "check_query_documents",
    "configure_scorer",
    "longest_first",
    "rank_scores",
]

@dataclass(frozen=True)
class RerankResult:
    """One document of a :meth:`rerank` answer.

    Attributes:
        index: Position of the document in the list passed to ``rerank``.
        score: Relevance score (a raw logit, or a probability when normalised).
        document: The document text.
    """

    index: int
    score: float
    document: str


class PairScorer(Protocol):
    """Anything that scores (query, document) pairs: the cross-encoder, the LLM scorer."""

    def score_pairs(self, pairs: Sequence[tuple[str, str]], *, show_progress: bool = False) -> np.ndarray: ...


def check_pairs(pairs: Sequence[tuple[str, str]]) -> tuple[list[str], list[str]]:
    """Split pairs into queries and documents, rejecting anything that is not two strs.

    Raises:
        InputTypeError: a pair or one of its members is not a str; the message names the index.
    """
    if isinstance(pairs, (str, bytes)):
        raise InputTypeError(f"pairs must be a sequence of (query, document) tuples, got {type(pairs).__name__}")
    queries: list[str] = []
    documents: list[str] = []
    for i, pair in enumerate(pairs):
        if isinstance(pair, (str, bytes)) or not isinstance(pair, Sequence) or len(pair) != 2:
            raise InputTypeError(f"pairs[{i}] must be a (query, document) tuple of two str, got {type(pair).__name__}")
        query, document = pair[0], pair[1]
        if not isinstance(query, str):
            raise InputTypeError(f"pairs[{i}][0] (the query) must be a str, got {type(query).__name__}")
        if not isinstance(document, str):
            raise InputTypeError(f"pairs[{i}][1] (the document) must be a str, got {type(document).__name__}")
        queries.append(query)
        documents.append(document)
    return queries, documents


def check_query_documents(query: str, documents: Sequence[str]) -> None:
    """Validate the arguments of ``rerank`` (raises :class:`InputTypeError`)."""
    if not isinstance(query, str):
        raise InputTypeError(f"query must be a str, got {type(query).__name__}")
    if isinstance(documents, (str, bytes)):
        raise InputTypeError("documents must be a sequence of str, got a single str; wrap it in a list")
    for i, doc in enumerate(documents):
        if not isinstance(doc, str):
            raise InputTypeError(f"documents[{i}] must be a str, got {type(doc).__name__}")


def rank_scores(scores: np.ndarray, documents: Sequence[str], top_k: int | None) -> list[RerankResult]:
    """Sort by score, highest first; equal scores keep their input order."""
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ConfigError(f"top_k must be a positive int or None, got {top_k!r}")
    order = np.argsort(-scores, kind="stable")
    if top_k is not None:
        order = order[:top_k]
    return [RerankResult(index=int(i), score=float(scores[i]), document=documents[i]) for i in order]


def check_positive(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive int, got {value!r}")
    return value


def longest_first(q: int, d: int, budget: int) -> tuple[int, int]:
    """Lengths after cutting the longer of two sequences one token at a time to fit ``budget``.

    The closed form of transformers' ``longest_first`` (ties cut the second sequence).
    """
    excess = q + d - budget
    if excess <= 0:
        return q, d
    hi, lo = max(q, d), min(q, d)
    if excess <= hi - lo:
        return (q - excess, d) if q > d else (q, d - excess)
    rest = excess - (hi - lo)
    return lo - rest // 2, lo - (rest + 1) // 2


class ScorerSettings:
    """The options every pair scorer holds, set by :func:`configure_scorer`."""

    checkpoint: Checkpoint
    batch_size: int
    max_length: int
    max_batch_tokens: int
    device: torch.device
    precision: Precision
    _warned_truncation: bool = False  # set per instance by the first truncation warning

    @property
    def dtype(self) -> torch.dtype:
        """The dtype the weights load in (see ``precision`` for what the matrix products run in)."""
        return self.precision.weights

    @property
    def model_name(self) -> str:
        return self.checkpoint.name

    def _warn_truncation(self, what: str) -> None:
        """Warn once per instance, at the first frame of the caller's code."""
        if self._warned_truncation:
            return
        self._warned_truncation = True
        logger.debug("%s: %s", self.checkpoint.name, what)
        warn_external(what)


def configure_scorer(
    scorer: ScorerSettings,
    model: str,
    *,
    max_length: int | None,
    batch_size: int,
    max_batch_tokens: int | None,
    device: str | None,
    dtype: Any,
    local_files_only: bool = False,
) -> None:
    """Validate the options every pair scorer shares and set them on ``scorer``.

    Sets ``batch_size``, ``checkpoint``, ``max_length`` (the model's limit when ``None``),
    ``device``, ``precision`` and ``max_batch_tokens`` (small on CPU, large on accelerators
    when ``None``).
    """
    from .._runtime import default_max_batch_tokens, resolve_device, resolve_precision
    from ..models import Task, resolve_checkpoint

    scorer.batch_size = check_positive("batch_size", batch_size)
    if max_batch_tokens is not None:
        check_positive("max_batch_tokens", max_batch_tokens)
    if max_length is not None:
        check_positive("max_length", max_length)
    scorer.checkpoint = resolve_checkpoint(model, task=Task.RERANK, local_files_only=local_files_only)
    limit = scorer.checkpoint.spec.max_tokens
    if max_length is not None and max_length > limit:
        raise ConfigError(
            f"max_length={max_length} is larger than what {model!r} supports ({limit} tokens); "
            f"use max_length <= {limit} or None for the model's limit"
        )
    scorer.max_length = max_length if max_length is not None else limit
    scorer.device = resolve_device(device)
    scorer.precision = resolve_precision(dtype, scorer.device)
    scorer.max_batch_tokens = max_batch_tokens or default_max_batch_tokens(scorer.device)
