"""Pure query building: one Query API request per search, fused inside Qdrant.

Hybrid search is ONE request: a dense prefetch and a sparse prefetch, each carrying the
filter, and an outer fusion step that also carries it::

    query(prefetch=[dense(filter, limit=P), sparse(filter, limit=P)],
          query=RRF(k, weights) | DBSF | formula($score[0]*w_d + $score[1]*w_s),
          filter=filter, limit=top_k)

The plan records what is asked (:class:`PlanSpec`); qdrant-client backends read it as
``qdrant_client.models`` objects (built once, on first access), and the Edge backend builds
its own request types straight from the spec.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast, get_args

import numpy as np
from qdrant_client import models

from gte_rag._runtime import warn_external
from gte_rag._types import SparseVector
from gte_rag.errors import ConfigError
from gte_rag.qdrant._layout import CollectionLayout
from gte_rag.qdrant._points import SearchHit

__all__ = [
    "DEFAULT_FUSION",
    "DEFAULT_PREFETCH_FACTOR",
    "DEFAULT_PREFETCH_MIN",
    "DEFAULT_RRF_K",
    "FusionMethod",
    "HybridConfig",
    "PlanSpec",
    "QueryMode",
    "QueryPlan",
    "TIE_MARGIN",
    "build_multivector_plan",
    "build_query_plan",
    "group_hits",
    "rank_groups",
    "rank_hits",
    "widen_plan",
]

logger = logging.getLogger(__name__)

QueryMode = Literal["dense", "sparse", "hybrid"]
FusionMethod = Literal["rrf", "dbsf", "weighted"]

DEFAULT_FUSION: FusionMethod = "dbsf"
"""The fusion of a hybrid query that names none.

Distribution-based score fusion: Qdrant rescales each branch's scores for the query by
that branch's own spread (``mean +- 3 standard deviations`` of its candidates -> [0, 1]) and
adds them, so a branch weighs what its scores say about this query, not a fixed share.
Chosen on the shared sets only (MiniLM, one point per document, word analyzer;
``benchmarks/quality_retrieval.py``): nDCG@10 SciFact 73.4 (RRF 71.6, best branch 69.1),
Cranfield 41.8 (41.7, 38.2), XQuAD en 98.0 (97.0, 97.1), XQuAD zh->en 17.0 (17.3, 12.9):
above its better branch on all four, by 0.9 points on XQuAD en where RRF fell 0.1 below
it, with no constant of its own to tune. It takes no branch weights, so a config that
names no fusion but gives weights (``dense_weight``, ``sparse_weight``, an ``alpha`` other than
0, 0.5 and 1) gets RRF, the fusion before this default, instead.
"""
DEFAULT_RRF_K = 60
"""RRF's ``k``, the value of Cormack et al. (2009): a hit at rank r adds ``1 / (k + r)``."""
DEFAULT_PREFETCH_MIN = 100
"""Fewest candidates each branch hands to the fusion."""
DEFAULT_PREFETCH_FACTOR = 4
"""Candidates per branch per requested hit (``max(4 * top_k, 100)``): DBSF's spread and RRF's
ranks are computed over these, so a deeper prefetch changes fused scores, not only recall."""
TIE_MARGIN = 8
"""Extra hits fetched beyond ``top_k`` so that ties at the cut are broken by id, not by chance."""

# Branch weights used when the caller leaves them unset, per fusion family.
# RRF: both ranked lists count the same. weighted: the official mGTE hybrid score
# ``dense * 1.0 + lexical * 0.1`` (the lexical score lives on a larger scale).
_DEFAULT_WEIGHTS: dict[str, tuple[float, float]] = {"rrf": (1.0, 1.0), "weighted": (1.0, 0.1)}


@dataclass(frozen=True)
class HybridConfig:
    """How a query combines the dense and the sparse branch.

    Args:
        mode: ``dense``, ``sparse`` or ``hybrid`` (both branches fused inside Qdrant).
        fusion: ``dbsf`` (distribution-based score fusion, see :data:`DEFAULT_FUSION` for
            why it is the default), ``rrf`` (reciprocal rank fusion) or ``weighted`` (formula
            ``dense * dense_weight + sparse * sparse_weight``, a point missing from one branch
            scores 0 there). Left out: DBSF, or RRF when branch weights are given (DBSF takes
            none).
        rrf_k: The ``k`` of RRF. Qdrant scores ``sum_b 1 / ((rank_b + 1) / w_b + k - 1)``
            (0-based rank), so a weight stretches a branch's ranks rather than scaling
            its contribution.
        dense_weight: Weight of the dense branch; ``None`` takes the fusion's default
            (1.0 for ``rrf`` and ``weighted``). DBSF takes no weights.
        sparse_weight: Weight of the sparse branch; ``None`` takes the fusion's default
            (1.0 for ``rrf``, 0.1 for ``weighted``, the official mGTE ratio).
        prefetch_limit: Candidates per branch; ``None`` means ``max(4 * top_k, 100)``.

    Example:
        >>> HybridConfig(fusion="weighted").weights
        (1.0, 0.1)
    """

    mode: QueryMode = "hybrid"
    fusion: FusionMethod = cast("FusionMethod", None)  # None -> resolved in __post_init__
    rrf_k: int = DEFAULT_RRF_K
    dense_weight: float | None = None
    sparse_weight: float | None = None
    prefetch_limit: int | None = None
    # whether the caller named the fusion (False: the default was taken), so that weights asked
    # for later (``with_alpha``) can move a defaulted DBSF to RRF instead of failing. An init
    # field (None: work it out from ``fusion``) so that ``dataclasses.replace`` carries it over:
    # ``replace(HybridConfig(), prefetch_limit=50)`` keeps a defaulted fusion a default.
    _fusion_given: bool | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.fusion is None:
            weighted = self.dense_weight is not None or self.sparse_weight is not None
            object.__setattr__(self, "fusion", "rrf" if weighted else DEFAULT_FUSION)
            object.__setattr__(self, "_fusion_given", False)
        elif self._fusion_given is None:
            object.__setattr__(self, "_fusion_given", True)
        if self.mode not in get_args(QueryMode):
            raise ConfigError(f"mode {self.mode!r} is not valid; choose one of {list(get_args(QueryMode))}")
        if self.fusion not in get_args(FusionMethod):
            raise ConfigError(
                f"fusion {self.fusion!r} is not valid; choose one of {list(get_args(FusionMethod))}"
            )
        if not isinstance(self.rrf_k, int) or self.rrf_k <= 0:
            raise ConfigError(f"rrf_k must be a positive int, got {self.rrf_k!r}")
        if self.fusion == "dbsf" and (self.dense_weight is not None or self.sparse_weight is not None):
            raise ConfigError(
                "fusion='dbsf' takes no branch weights; use fusion='rrf' or 'weighted' to weight branches"
            )
        for name in ("dense_weight", "sparse_weight"):
            value = getattr(self, name)
            if value is not None and (not np.isfinite(value) or value < 0):
                raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.prefetch_limit is not None and self.prefetch_limit <= 0:
            raise ConfigError(f"prefetch_limit must be a positive int, got {self.prefetch_limit!r}")

    @property
    def weights(self) -> tuple[float, float]:
        """``(dense_weight, sparse_weight)`` with the fusion family's defaults filled in."""
        default = _DEFAULT_WEIGHTS.get(self.fusion, (1.0, 1.0))
        dense = default[0] if self.dense_weight is None else float(self.dense_weight)
        sparse = default[1] if self.sparse_weight is None else float(self.sparse_weight)
        return dense, sparse

    def override(self, *, mode: str | None = None, fusion: str | None = None) -> HybridConfig:
        """A copy with ``mode`` and/or ``fusion`` replaced (``None`` keeps the current value)."""
        if mode is None and fusion is None:
            return self
        from dataclasses import replace

        kept = self.fusion if self._fusion_given else None  # a defaulted fusion stays a default
        return replace(
            self,
            mode=self.mode if mode is None else mode,  # type: ignore[arg-type]
            fusion=kept if fusion is None else fusion,  # type: ignore[arg-type]
            _fusion_given=fusion is not None or self._fusion_given,
        )

    def with_alpha(self, alpha: float | None) -> HybridConfig:
        """A copy that leans towards the dense (``alpha`` -> 1) or sparse (-> 0) branch.

        LlamaIndex's ``alpha`` convention, mapped so that ``0.5`` changes nothing: the config
        is returned as it is (the default DBSF, RRF with ``k`` unchanged, the mGTE ``1.0 / 0.1``
        ratio under ``weighted``, or the configured weights). Between the ends, the branch weights are scaled by ``2 * alpha``
        and ``2 * (1 - alpha)``; ``0`` and ``1`` query one branch only (``sparse`` /
        ``dense`` mode). ``None`` returns the config unchanged.

        DBSF takes no weights: under the default fusion, such an ``alpha`` gives RRF with
        the scaled weights; under a DBSF the caller named, it raises.

        Raises:
            ConfigError: ``alpha`` is outside ``[0, 1]``, or it is neither 0, 0.5 nor 1
                under ``fusion="dbsf"`` given explicitly.

        Example:
            >>> HybridConfig(fusion="rrf").with_alpha(0.5).weights
            (1.0, 1.0)
            >>> HybridConfig(fusion="weighted").with_alpha(0.75).weights
            (1.5, 0.05)
        """
        if alpha is None:
            return self
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= float(alpha) <= 1.0:
            raise ConfigError(f"alpha must be a number in [0, 1] (1 = dense only, 0 = sparse only), got {alpha!r}")
        from dataclasses import replace

        alpha = float(alpha)
        if self.mode != "hybrid" or alpha == 0.5:
            return self
        if alpha in (0.0, 1.0):
            return replace(self, mode="dense" if alpha == 1.0 else "sparse")
        config = self
        if self.fusion == "dbsf":
            if self._fusion_given:
                raise ConfigError(
                    f"alpha={alpha} weights the branches, which DBSF fusion does not take; "
                    "use fusion='rrf' or 'weighted' (or leave fusion out), or alpha 0, 0.5 or 1"
                )
            config = replace(self, fusion="rrf")
        dense, sparse = config.weights
        return replace(config, dense_weight=2.0 * alpha * dense, sparse_weight=2.0 * (1.0 - alpha) * sparse)

    def resolve_prefetch_limit(self, top_k: int) -> int:
        """Candidates per branch for a query returning ``top_k`` points."""
        if self.prefetch_limit is not None:
            return max(self.prefetch_limit, top_k)
        return max(DEFAULT_PREFETCH_FACTOR * top_k, DEFAULT_PREFETCH_MIN)


@dataclass(frozen=True)
class PlanSpec:
    """What a plan asks for, before any engine's types are built.

    Backends that can build their own request types from it (Qdrant Edge) skip the
    ``qdrant_client.models`` objects altogether; the others read :class:`QueryPlan`'s
    ``query`` / ``using`` / ``prefetch``, which are built from it on first access.
    """

    mode: QueryMode
    hybrid: HybridConfig
    dense_name: str
    sparse_name: str | None
    dense: list[float] | None
    sparse: SparseVector | None
    prefetch_limit: int


class QueryPlan:
    """One Query API request, engine-neutral (``qdrant_client.models`` types).

    Built by :func:`build_query_plan` from a :class:`PlanSpec` (``spec``); the request's
    ``qdrant_client`` form is made lazily, once, when a backend asks for it. A plan can
    also be written by hand from ``query`` / ``using`` / ``prefetch`` (``spec`` is then
    ``None``).
    """

    __slots__ = ("_built", "_prefetch", "_query", "_using", "filter", "limit", "spec", "top_k", "with_payload")

    def __init__(
        self,
        query: Any = None,
        limit: int = 10,
        top_k: int = 0,
        using: str | None = None,
        prefetch: tuple[models.Prefetch, ...] = (),
        filter: models.Filter | None = None,
        with_payload: bool = True,
        *,
        spec: PlanSpec | None = None,
    ) -> None:
        self.limit = limit
        self.top_k = top_k
        self.filter = filter
        self.with_payload = with_payload
        self.spec = spec
        self._query, self._using, self._prefetch = query, using, tuple(prefetch)
        self._built = spec is None

    def _build(self) -> None:
        if self._built:
            return
        spec = self.spec
        assert spec is not None
        if spec.mode == "dense":
            self._query, self._using = models.NearestQuery(nearest=spec.dense), spec.dense_name  # type: ignore[arg-type]
        elif spec.mode == "sparse":
            self._query, self._using = models.NearestQuery(nearest=_sparse_model(spec.sparse)), spec.sparse_name  # type: ignore[arg-type]
        else:
            self._query = _fusion_query(spec.hybrid)
            self._prefetch = (
                models.Prefetch(query=spec.dense, using=spec.dense_name, filter=self.filter, limit=spec.prefetch_limit),  # type: ignore[arg-type]
                models.Prefetch(
                    query=_sparse_model(spec.sparse),  # type: ignore[arg-type]
                    using=spec.sparse_name, filter=self.filter, limit=spec.prefetch_limit,
                ),
            )
        self._built = True

    @property
    def query(self) -> Any:
        """The outer query (``NearestQuery``, ``RrfQuery``, ``FusionQuery`` or ``FormulaQuery``)."""
        self._build()
        return self._query

    @property
    def using(self) -> str | None:
        """The vector the outer query searches (single-branch plans)."""
        self._build()
        return self._using

    @property
    def prefetch(self) -> tuple[models.Prefetch, ...]:
        """The branches fused by the outer query (hybrid plans)."""
        self._build()
        return self._prefetch

    def __repr__(self) -> str:
        return f"QueryPlan(query={self.query!r}, limit={self.limit}, top_k={self.top_k}, using={self.using!r})"


def _dense_list(dense: Sequence[float] | np.ndarray, size: int) -> list[float]:
    arr = np.asarray(dense, dtype=np.float32)
    if arr.ndim != 1 or arr.shape[0] != size:
        raise ConfigError(f"dense query must have shape ({size},), got {arr.shape}")
    values: list[float] = arr.tolist()  # exact float32 values, one C loop (not a float() per element)
    return values


def _sparse_model(sparse: SparseVector) -> models.SparseVector:
    # the type was checked by build_query_plan
    return models.SparseVector(indices=list(sparse.indices), values=list(sparse.values))


def _fusion_query(config: HybridConfig) -> Any:
    if config.fusion == "dbsf":
        return models.FusionQuery(fusion=models.Fusion.DBSF)
    w_dense, w_sparse = config.weights
    if config.fusion == "rrf":
        # Send weights only when they matter, so servers without weighted RRF still work.
        weights = None if (w_dense, w_sparse) == (1.0, 1.0) else [w_dense, w_sparse]
        return models.RrfQuery(rrf=models.Rrf(k=config.rrf_k, weights=weights))
    # weighted: prefetch 0 is dense, 1 is sparse; a point found by one branch only
    # scores 0 in the other (defaults), as in the official mGTE hybrid score.
    formula = models.SumExpression(
        sum=[
            models.MultExpression(mult=["$score[0]", w_dense]),
            models.MultExpression(mult=["$score[1]", w_sparse]),
        ]
    )
    return models.FormulaQuery(formula=formula, defaults={"$score[0]": 0.0, "$score[1]": 0.0})


def build_query_plan(
    layout: CollectionLayout,
    *,
    dense: Sequence[float] | np.ndarray | None,
    sparse: SparseVector | None,
    top_k: int,
    hybrid: HybridConfig,
    filter: models.Filter | None = None,
) -> QueryPlan:
    """Build the single request for a dense, sparse or hybrid search.

    Args:
        layout: The collection layout (vector names and sizes).
        dense: Query dense vector, shape ``(dense_size,)``; needed by dense/hybrid.
        sparse: Query sparse vector; needed by sparse/hybrid.
        top_k: Number of results.
        hybrid: Mode, fusion and weights.
        filter: Applied inside every prefetch and to the outer query.

    Returns:
        The plan.

    Raises:
        ConfigError: a vector the mode needs is missing, the layout has no sparse
            vector, or ``top_k`` is not positive.
    """
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k <= 0:
        raise ConfigError(f"top_k must be a positive int, got {top_k!r}")
    if filter is not None and not isinstance(filter, models.Filter):
        raise ConfigError(
            f"filter must be a qdrant_client.models.Filter, got {type(filter).__name__}"
        )
    mode = hybrid.mode
    if mode in ("sparse", "hybrid") and not layout.has_sparse:
        raise ConfigError(
            f"mode={mode!r} needs a sparse vector but collection {layout.collection!r} has none "
            "(set CollectionLayout.sparse_name) ; use mode='dense'"
        )
    if mode in ("dense", "hybrid") and dense is None:
        raise ConfigError(f"mode={mode!r} needs a dense query vector")
    if mode in ("sparse", "hybrid") and sparse is None:
        raise ConfigError(f"mode={mode!r} needs a sparse query vector")
    if mode == "hybrid" and hybrid.fusion == "weighted" and hybrid.sparse_weight is None and layout.sparse_idf:
        warn_external(
            "fusion='weighted' with the default sparse weight 0.1 is calibrated for learned mGTE weights; "
            f"collection {layout.collection!r} holds BM25-style weights with IDF, whose scores run far larger "
            "than cosine similarities. Use fusion='rrf' or 'dbsf', or set HybridConfig(sparse_weight=...)"
        )
    if sparse is not None and mode != "dense" and not isinstance(sparse, SparseVector):
        raise ConfigError(f"sparse query must be a gte_rag SparseVector, got {type(sparse).__name__}")
    spec = PlanSpec(
        mode=mode,
        hybrid=hybrid,
        dense_name=layout.dense_name,
        sparse_name=layout.sparse_name,
        dense=_dense_list(dense, layout.dense_size) if mode != "sparse" else None,  # type: ignore[arg-type]
        sparse=sparse if mode != "dense" else None,
        prefetch_limit=hybrid.resolve_prefetch_limit(top_k),
    )
    return QueryPlan(limit=top_k + TIE_MARGIN, top_k=top_k, filter=filter, spec=spec)


def rank_hits(hits: Sequence[SearchHit], top_k: int) -> list[SearchHit]:
    """Best ``top_k`` hits ordered by score, ties broken by point id.

    Fusion produces exact ties (RRF gives equal scores to the r-th hit of each branch),
    and engines return tied points in no fixed order; sorting a few extra hits makes the
    answer the same on every run.
    """
    return sorted(hits, key=lambda h: (-h.score, h.id))[:top_k]


def widen_plan(plan: QueryPlan, limit: int) -> QueryPlan:
    """A copy of ``plan`` returning ``limit`` points, each branch fetching at least as many.

    Used to over-fetch when results are grouped after the query (the Edge backend's
    query groups). Plans written by hand keep their prefetch as it is.
    """
    from dataclasses import replace

    if plan.spec is None:
        return QueryPlan(
            plan.query, limit=limit, top_k=limit, using=plan.using, prefetch=plan.prefetch,
            filter=plan.filter, with_payload=plan.with_payload,
        )
    spec = replace(plan.spec, prefetch_limit=max(plan.spec.prefetch_limit, limit))
    return QueryPlan(limit=limit, top_k=limit, filter=plan.filter, with_payload=plan.with_payload, spec=spec)


def build_multivector_plan(
    layout: CollectionLayout,
    query: Sequence[Sequence[float]] | Sequence[float] | np.ndarray,
    *,
    limit: int,
    filter: models.Filter | None = None,
) -> QueryPlan:
    """A MAX_SIM search of the layout's multivector (one request).

    Args:
        query: The query rows ``(m, multivector_size)``; a single ``(dim,)`` vector is
            sent as a one-row multivector, so a document scores its best chunk's similarity.
        limit: Points to return.
        filter: Applied to the search.

    Raises:
        ConfigError: the layout has no multivector, or the query has the wrong shape.
    """
    if not layout.has_multivector:
        raise ConfigError(
            f"collection {layout.collection!r} has no multivector (set CollectionLayout.multivector_name, "
            "e.g. CollectionLayout(...).long_documents())"
        )
    if isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0:
        raise ConfigError(f"limit must be a positive int, got {limit!r}")
    if filter is not None and not isinstance(filter, models.Filter):
        raise ConfigError(f"filter must be a qdrant_client.models.Filter, got {type(filter).__name__}")
    rows = np.asarray(query, dtype=np.float32)
    if rows.ndim == 1:
        rows = rows[None, :]
    if rows.ndim != 2 or rows.shape[0] == 0 or rows.shape[1] != layout.multivector_size:
        raise ConfigError(
            f"multivector query must have shape (m, {layout.multivector_size}) or ({layout.multivector_size},), "
            f"got {np.asarray(query).shape}"
        )
    values: list[list[float]] = rows.tolist()
    return QueryPlan(
        models.NearestQuery(nearest=values), limit=limit, top_k=limit, using=layout.multivector_name, filter=filter,
    )


def group_hits(
    hits: Sequence[SearchHit], group_by: str, group_size: int
) -> list[tuple[str, list[SearchHit]]]:
    """Group hits (given best first) by a payload field: groups in order of their best hit,
    at most ``group_size`` hits each; hits without the field are left out."""
    groups: dict[str, list[SearchHit]] = {}
    for hit in sorted(hits, key=lambda h: (-h.score, h.id)):
        key = hit.payload.get(group_by)
        if key is None or isinstance(key, (list, dict)):
            continue
        members = groups.setdefault(str(key), [])
        if len(members) < group_size:
            members.append(hit)
    return list(groups.items())


def rank_groups(
    groups: Sequence[tuple[str, Sequence[SearchHit]]], limit: int, group_size: int
) -> list[tuple[str, list[SearchHit]]]:
    """Best ``limit`` groups by their best hit (ties by key), each with its best ``group_size``
    hits (ties by id): the same order on every engine and run."""
    ranked = [(key, rank_hits(list(hits), group_size)) for key, hits in groups if hits]
    ranked.sort(key=lambda g: (-g[1][0].score, g[0]))
    return ranked[:limit]
