"""Memory settings: dedup threshold, write-time context, fusion, recency decay, importance, neighbours.

The defaults were chosen on two LoCoMo conversations (conv-26, conv-30) and checked on the
three others (``benchmarks/bench_memory.py``; figures in ``benchmarks/README.md``). The
reasoning behind each:

- ``context_turns=2``: a turn alone is often a bare reply ("Wow, that's great!"); its vector
  misses what it answers. Each memory also gets a *context vector* of the previous turns and
  itself, and the read path searches it as a third branch (dense turn, sparse turn, dense context).
- ``rrf_k=20``: three branches vote, and the evidence turn is usually near the top of one
  of them; a small ``k`` lets a strong first rank win over three mediocre ones.
- ``neighbour_weight=0.5``: an answer often spans a question and its reply; a candidate
  gains half of the best score of the turn before or after it among the candidates.
- ``recency_weight`` / ``recency_scale``: a tie-breaker (about one RRF rank step at the top),
  halving at 30 days, so "what is true now" wins among equals but old facts stay findable.
- ``importance_weight``: the same size, around the neutral 0.5.
- ``dedup_threshold=0.95``: cosine above which a new text counts as a near duplicate of a
  memory of the same scope (exact duplicates are caught by a content hash first).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal, get_args

from ..errors import ConfigError

__all__ = ["DecayKind", "MemorySettings", "SearchMode"]

SearchMode = Literal["hybrid", "dense", "sparse"]
DecayKind = Literal["exp", "gauss", "lin"]

DAY_SECONDS = 86_400.0


def _number(name: str, value: Any, *, low: float = 0.0, high: float | None = None, open_low: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok:
        ok = value > low if open_low else value >= low
        ok = ok and (high is None or value <= high)
    if not ok:
        bound = f"> {low}" if open_low else f">= {low}"
        raise ConfigError(f"{name} must be a number {bound}{'' if high is None else f' and <= {high}'}, got {value!r}")


def _count(name: str, value: Any, *, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{name} must be an int >= {low}, got {value!r}")


@dataclass(frozen=True)
class MemorySettings:
    """How memories are written and recalled (see the module docstring for the defaults' reasons).

    Args:
        mode: ``"hybrid"`` (dense + sparse + context branches, fused inside Qdrant), or one
            branch alone: ``"dense"`` or ``"sparse"``.
        use_context: Search the context vector as well (hybrid mode).
        context_turns: Previous turns of the session folded into each memory's context vector
            at write time (0: the memory alone).
        rrf_k: ``k`` of the RRF fusion.
        candidates: Points each branch fetches, and candidates the formula query returns for
            the neighbour step (at least ``3 * top_k``).
        recency_weight: Weight of the recency decay on the event time (0: off).
        recency_scale_days: Days at which the decay reaches 0.5.
        recency_decay: ``"exp"``, ``"gauss"`` or ``"lin"`` (Qdrant's decay functions).
        importance_weight: Weight of ``importance - 0.5``-style importance (0: off).
        default_importance: Importance of a memory added without one.
        neighbour_weight: Share of the best adjacent candidate's score a candidate gains (0: off).
        neighbours: Turns before and after each hit attached as its ``context`` (0: none).
        dedup_threshold: Cosine similarity at or above which a text is a near duplicate of a memory
            in the same scope; ``None`` turns near-duplicate detection off (exact ones are always caught).

    Example:
        >>> MemorySettings().with_options(neighbour_weight=0.0).neighbour_weight
        0.0
    """

    mode: SearchMode = "hybrid"
    use_context: bool = True
    context_turns: int = 2
    rrf_k: int = 20
    candidates: int = 50
    recency_weight: float = 0.002
    recency_scale_days: float = 30.0
    recency_decay: DecayKind = "exp"
    importance_weight: float = 0.002
    default_importance: float = 0.5
    neighbour_weight: float = 0.5
    neighbours: int = 1
    dedup_threshold: float | None = 0.95

    def __post_init__(self) -> None:
        if self.mode not in get_args(SearchMode):
            raise ConfigError(f"mode={self.mode!r} is not valid; choose one of {list(get_args(SearchMode))}")
        if self.recency_decay not in get_args(DecayKind):
            raise ConfigError(
                f"recency_decay={self.recency_decay!r} is not valid; choose one of {list(get_args(DecayKind))}"
            )
        if not isinstance(self.use_context, bool):
            raise ConfigError(f"use_context must be True or False, got {self.use_context!r}")
        _count("context_turns", self.context_turns, low=0)
        _count("rrf_k", self.rrf_k, low=1)
        _count("candidates", self.candidates, low=1)
        _count("neighbours", self.neighbours, low=0)
        _number("recency_weight", self.recency_weight)
        _number("recency_scale_days", self.recency_scale_days, open_low=True)
        _number("importance_weight", self.importance_weight)
        _number("default_importance", self.default_importance, high=1.0)
        _number("neighbour_weight", self.neighbour_weight)
        if self.dedup_threshold is not None:
            _number("dedup_threshold", self.dedup_threshold, open_low=True, high=1.0)

    @property
    def recency_scale_seconds(self) -> float:
        """The decay scale in seconds (Qdrant's datetime expressions count seconds)."""
        return float(self.recency_scale_days) * DAY_SECONDS

    def with_options(self, **changes: Any) -> MemorySettings:
        """A copy with some settings changed (validated again).

        Raises:
            ConfigError: an unknown setting name (the valid ones are listed).
        """
        known = set(self.__dataclass_fields__)
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ConfigError(f"unknown memory settings {unknown}; valid ones are {sorted(known)}")
        return replace(self, **changes)
