"""``GteMultiStageReranker``: a cascade of node postprocessors, cheap first.

retrieval top-k -> stage 1 (e.g. a small cross-encoder) keeps ``top_n`` -> stage 2 (e.g.
the mGTE reranker or an LLM reranker) on the survivors -> ... Each returned node carries,
in its metadata (on a copy; the inputs are never changed):

- ``rerank_stage_scores``: ``{"retrieval": incoming score, <stage>: score, ...}``
- ``rerank_stage_seconds``: ``{<stage>: wall-clock seconds of that stage for this query}``

Both keys are excluded from the embed and LLM views of the node.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from llama_index.core.bridge.pydantic import BaseModel, ConfigDict, Field, field_validator
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import NodeWithScore, QueryBundle

from ..errors import ConfigError
from ._reranker import with_metadata

dispatcher = get_dispatcher(__name__)

__all__ = ["GteMultiStageReranker", "RerankStage", "STAGE_SCORES_KEY", "STAGE_SECONDS_KEY"]

STAGE_SCORES_KEY = "rerank_stage_scores"
STAGE_SECONDS_KEY = "rerank_stage_seconds"
RETRIEVAL_STAGE = "retrieval"


class RerankStage(BaseModel):
    """One stage of a :class:`GteMultiStageReranker`."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    name: str = Field(min_length=1, description="Key of this stage in the metadata.")
    postprocessor: BaseNodePostprocessor = Field(description="Any node postprocessor that scores nodes.")
    top_n: int | None = Field(
        default=None, gt=0, description="Nodes kept after this stage; None keeps what the postprocessor returns."
    )


def _defensive_copies(nodes: list[NodeWithScore]) -> list[NodeWithScore]:
    # stages may be third-party postprocessors that mutate what they get (node.score, metadata)
    return [
        NodeWithScore(node=n.node.model_copy(update={"metadata": dict(n.node.metadata)}), score=n.score) for n in nodes
    ]


class GteMultiStageReranker(BaseNodePostprocessor):
    """Run rerankers one after another, each on the survivors of the previous one.

    Example:
        >>> cascade = GteMultiStageReranker(stages=[  # doctest: +SKIP
        ...     RerankStage(name="minilm", postprocessor=GteReranker(model="/models/ms-marco-MiniLM", top_n=50)),
        ...     RerankStage(name="mgte", postprocessor=GteReranker(model="mgte-reranker", top_n=5)),
        ... ])
    """

    stages: list[RerankStage] = Field(min_length=1, description="Stages, cheapest first.")

    @field_validator("stages", mode="before")
    @classmethod
    def _coerce_stages(cls, value: Any) -> Any:
        if not isinstance(value, (list, tuple)):
            return value
        out = []
        for i, stage in enumerate(value):
            if isinstance(stage, BaseNodePostprocessor):
                stage = RerankStage(name=f"stage{i + 1}", postprocessor=stage)
            out.append(stage)
        names = [s.name for s in out if isinstance(s, RerankStage)]
        if len(set(names)) != len(names) or RETRIEVAL_STAGE in names:
            raise ConfigError(f"stage names must be unique and not {RETRIEVAL_STAGE!r}, got {names}")
        return out

    @classmethod
    def class_name(cls) -> str:
        return "GteMultiStageReranker"

    @property
    def _description(self) -> str:
        return " -> ".join(s.name for s in self.stages)

    def _top_n(self) -> int:
        for stage in reversed(self.stages):
            if stage.top_n is not None:
                return stage.top_n
            top_n = getattr(stage.postprocessor, "top_n", None)
            if isinstance(top_n, int):
                return top_n
        return 0

    def _begin(self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None) -> _Run:
        if query_bundle is None:
            raise ConfigError("GteMultiStageReranker needs the query: pass query_bundle or query_str")
        dispatcher.event(
            ReRankStartEvent(query=query_bundle, nodes=nodes, top_n=self._top_n(), model_name=self._description)
        )
        return _Run(query_bundle, _defensive_copies(nodes), {n.node.node_id: {RETRIEVAL_STAGE: n.score} for n in nodes})

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        run = self._begin(nodes, query_bundle)
        for stage in self.stages:
            start = time.perf_counter()
            run.record(stage, stage.postprocessor.postprocess_nodes(run.nodes, query_bundle=run.query), start)
        return run.finish()

    async def _apostprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        run = self._begin(nodes, query_bundle)
        for stage in self.stages:
            start = time.perf_counter()
            run.record(stage, await stage.postprocessor.apostprocess_nodes(run.nodes, query_bundle=run.query), start)
        return run.finish()


@dataclass
class _Run:
    """One pass through the stages: the surviving nodes, each node's score per stage, stage times."""

    query: QueryBundle
    nodes: list[NodeWithScore]
    scores: dict[str, dict[str, float | None]]
    seconds: dict[str, float] = field(default_factory=dict)

    def record(self, stage: RerankStage, result: list[NodeWithScore], start: float) -> None:
        """Keep the stage's best ``top_n``, its scores and its time since ``start``."""
        ranked = sorted(result, key=lambda n: -(n.score if n.score is not None else float("-inf")))
        self.nodes = ranked[: stage.top_n] if stage.top_n is not None else ranked
        self.seconds[stage.name] = time.perf_counter() - start
        for n in self.nodes:
            self.scores.setdefault(n.node.node_id, {})[stage.name] = n.score

    def finish(self) -> list[NodeWithScore]:
        """The survivors with their per-stage scores and the stage times in metadata; emits the end event."""
        out = []
        for n in self.nodes:
            extra = {STAGE_SCORES_KEY: dict(self.scores[n.node.node_id]), STAGE_SECONDS_KEY: dict(self.seconds)}
            out.append(with_metadata(n, n.score, extra))
        dispatcher.event(ReRankEndEvent(nodes=out))
        return out
