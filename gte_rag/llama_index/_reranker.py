"""``GteReranker``: the mGTE (or any) cross-encoder as a LlamaIndex node postprocessor.

The adapter holds fields and delegates scoring to :class:`gte_rag.rerank.GteCrossEncoder`.
It never changes the ``NodeWithScore`` objects it is given: it returns new ones, and
copies a node (with a new metadata dict) only where it adds metadata.
"""

from __future__ import annotations

import asyncio
import threading
from abc import abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.callbacks import CBEventType, EventPayload
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle

from .._runtime import DTYPE_HELP
from ..errors import ConfigError
from ..rerank import DEFAULT_RERANKER, GteCrossEncoder, PairScorer

dispatcher = get_dispatcher(__name__)

__all__ = ["DEFAULT_TOP_N", "GteReranker", "RETRIEVAL_SCORE_KEY"]

DEFAULT_TOP_N = 5
RETRIEVAL_SCORE_KEY = "retrieval_score"
"""Metadata key of the score a node had before reranking (``keep_retrieval_score``)."""


def with_metadata(nws: NodeWithScore, score: float | None, extra: Mapping[str, Any]) -> NodeWithScore:
    """A new ``NodeWithScore``; where ``extra`` is given, over a copy of the node with those metadata keys.

    Added keys are excluded from the embed and LLM views of the node, so a later stage
    (or the LLM prompt) reads the same text as before.
    """
    node = nws.node
    if extra:
        keys = list(extra)
        node = node.model_copy(
            update={
                "metadata": {**node.metadata, **extra},
                "excluded_embed_metadata_keys": list(dict.fromkeys([*node.excluded_embed_metadata_keys, *keys])),
                "excluded_llm_metadata_keys": list(dict.fromkeys([*node.excluded_llm_metadata_keys, *keys])),
            }
        )
    return NodeWithScore(node=node, score=score)


class ScoringPostprocessor(BaseNodePostprocessor):
    """Shared flow of the pair-scoring postprocessors: score, sort (stable), cut, emit events."""

    top_n: int = Field(default=DEFAULT_TOP_N, gt=0, description="Number of nodes to return, best first.")
    keep_retrieval_score: bool = Field(
        default=False,
        description=f"Store each node's incoming score in its metadata under {RETRIEVAL_SCORE_KEY!r} (on a copy).",
    )
    metadata_mode: MetadataMode = Field(
        default=MetadataMode.EMBED, description="Which view of a node's content is scored."
    )

    _load_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @abstractmethod
    def _build_core(self) -> PairScorer:
        """Create the core scorer (called once, under a lock)."""

    @property
    @abstractmethod
    def _core(self) -> PairScorer | None: ...

    @abstractmethod
    def _set_core(self, core: PairScorer) -> None: ...

    @abstractmethod
    def _model_name(self) -> str: ...

    def load(self) -> PairScorer:
        """Load the model now instead of at the first query; returns the core scorer."""
        with self._load_lock:
            core = self._core
            if core is None:
                core = self._build_core()
                self._set_core(core)
            return core

    @contextmanager
    def _rerank_events(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None
    ) -> Iterator[tuple[str, list[NodeWithScore]]]:
        """LlamaIndex's rerank events around one call: yields the query and the list to fill."""
        if query_bundle is None:
            raise ConfigError(f"{self.class_name()} needs the query: pass query_bundle or query_str")
        dispatcher.event(
            ReRankStartEvent(query=query_bundle, nodes=nodes, top_n=self.top_n, model_name=self._model_name())
        )
        with self.callback_manager.event(
            CBEventType.RERANKING,
            payload={
                EventPayload.NODES: nodes,
                EventPayload.MODEL_NAME: self._model_name(),
                EventPayload.QUERY_STR: query_bundle.query_str,
                EventPayload.TOP_K: self.top_n,
            },
        ) as event:
            new_nodes: list[NodeWithScore] = []
            yield query_bundle.query_str, new_nodes
            event.on_end(payload={EventPayload.NODES: new_nodes})
        dispatcher.event(ReRankEndEvent(nodes=new_nodes))

    def _best(self, nodes: list[NodeWithScore], scores: np.ndarray) -> list[NodeWithScore]:
        """The ``top_n`` nodes by score (ties in input order), as new nodes carrying the score."""
        out = []
        for i in np.argsort(-scores, kind="stable")[: self.top_n]:
            extra = {RETRIEVAL_SCORE_KEY: nodes[i].score} if self.keep_retrieval_score else {}
            out.append(with_metadata(nodes[i], float(scores[i]), extra))
        return out

    def _postprocess_nodes(
        self,
        nodes: list[NodeWithScore],
        query_bundle: QueryBundle | None = None,
    ) -> list[NodeWithScore]:
        with self._rerank_events(nodes, query_bundle) as (query, new_nodes):
            if nodes:
                core = self.load()
                pairs = [(query, n.node.get_content(metadata_mode=self.metadata_mode)) for n in nodes]
                new_nodes.extend(self._best(nodes, core.score_pairs(pairs)))
        return new_nodes

    async def _apostprocess_nodes(
        self,
        nodes: list[NodeWithScore],
        query_bundle: QueryBundle | None = None,
    ) -> list[NodeWithScore]:
        # model compute runs in a worker thread so the event loop stays free
        return await asyncio.to_thread(self._postprocess_nodes, nodes, query_bundle)


class GteReranker(ScoringPostprocessor):
    """Rerank nodes with a cross-encoder (mGTE reranker by default).

    The model loads at the first query, or at :meth:`load`. Scores are raw logits unless
    ``normalize`` is on. Returned nodes are new objects; the input list is not changed.

    Example:
        >>> reranker = GteReranker(model="/models/gte-multilingual-reranker-base", top_n=3)  # doctest: +SKIP
        >>> query_engine = index.as_query_engine(similarity_top_k=20, node_postprocessors=[reranker])  # doctest: +SKIP
    """

    model: str = Field(default=DEFAULT_RERANKER, description="Reranker name, hub id (cached or fetched) or checkpoint directory.")
    max_length: int | None = Field(
        default=None, gt=0, description="Tokens per (query, document) pair; None uses the model's limit."
    )
    batch_size: int = Field(default=32, gt=0, description="Most pairs per forward pass.")
    max_batch_tokens: int | None = Field(
        default=None, gt=0, description="Most padded tokens per forward pass; None: 4096 on CPU, 65536 on accelerators."
    )
    normalize: bool = Field(default=False, description="Apply a sigmoid to the logits (scores in (0, 1)).")
    device: str | None = Field(default=None, description="Torch device; None picks CUDA when available.")
    dtype: str = Field(default="auto", description=DTYPE_HELP)
    local_files_only: bool = Field(default=False, description="Never fetch the model from the hub; one not on this machine fails at once.")

    _scorer: GteCrossEncoder | None = PrivateAttr(default=None)

    @classmethod
    def class_name(cls) -> str:
        return "GteReranker"

    @classmethod
    def from_cross_encoder(cls, cross_encoder: GteCrossEncoder, **fields: Any) -> GteReranker:
        """Wrap an already loaded :class:`GteCrossEncoder` (fields describing it are taken from it)."""
        if not isinstance(cross_encoder, GteCrossEncoder):
            raise ConfigError(f"expected a GteCrossEncoder, got {type(cross_encoder).__name__}")
        described: dict[str, Any] = {
            "model": cross_encoder.model_name,
            "max_length": cross_encoder.max_length,
            "batch_size": cross_encoder.batch_size,
            "max_batch_tokens": cross_encoder.max_batch_tokens,
            "normalize": cross_encoder.normalize,
            "device": str(cross_encoder.device),
            "dtype": cross_encoder.precision.name,
        }
        clash = sorted(set(described) & set(fields))
        if clash:
            raise ConfigError(f"{clash} come from the cross-encoder; set them there, not here")
        obj = cls(**described, **fields)
        obj._scorer = cross_encoder
        return obj

    @property
    def cross_encoder(self) -> GteCrossEncoder:
        """The core scorer (loads the model if needed)."""
        core = self.load()
        assert isinstance(core, GteCrossEncoder)
        return core

    def _build_core(self) -> GteCrossEncoder:
        return GteCrossEncoder(
            self.model,
            max_length=self.max_length,
            batch_size=self.batch_size,
            max_batch_tokens=self.max_batch_tokens,
            device=self.device,
            dtype=self.dtype,
            local_files_only=self.local_files_only,
            normalize=self.normalize,
        )

    @property
    def _core(self) -> GteCrossEncoder | None:
        return self._scorer

    def _set_core(self, core: PairScorer) -> None:
        assert isinstance(core, GteCrossEncoder)
        self._scorer = core

    def _model_name(self) -> str:
        return self.model
