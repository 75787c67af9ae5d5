"""RemoteReranker: a rerank service (TEI, Cohere / Jina, vLLM, DashScope) as a LlamaIndex postprocessor.

It shares the flow of the local rerankers (:class:`ScoringPostprocessor`): rerank events,
a stable sort, new ``NodeWithScore`` objects (the input is never changed). Scores come from
:class:`gte_rag.remote.RemoteScorer`, mapped back to the nodes by the index each result
carries. The async path uses the async HTTP client (no worker thread).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.schema import NodeWithScore, QueryBundle

from ..remote import RemoteScorer
from ..rerank import PairScorer
from ._reranker import ScoringPostprocessor

__all__ = ["RemoteReranker"]


class RemoteReranker(ScoringPostprocessor):
    """Rerank nodes with a remote service.

    Args (fields):
        url: Service root. protocol: ``"tei"``, ``"cohere"``, ``"vllm"`` or ``"dashscope"``.
        model_name: Model to ask for (Cohere, Jina, vLLM; DashScope ``gte-rerank-v2``).
        top_n, keep_retrieval_score, metadata_mode: as :class:`GteReranker`.
        truncate / raw_scores: TEI options. vllm_endpoint: ``"rerank"`` or ``"score"``.
        batch_size: Documents per request (None: the protocol's limit).
        settings: :class:`gte_rag.remote.RemoteSettings` fields.
        api_key (constructor only, never a field) / api_key_env.

    Example:
        >>> reranker = RemoteReranker(url="http://127.0.0.1:8081", protocol="tei", top_n=5)  # doctest: +SKIP
        >>> nodes = reranker.postprocess_nodes(nodes, query_str="...")  # doctest: +SKIP
    """

    url: str = Field(description="Service root.")
    protocol: str = Field(default="tei", description="'tei', 'cohere' (Cohere and Jina), 'vllm' or 'dashscope'.")
    model_name: str | None = Field(default=None, description="Model to ask the service for.")
    api_key_env: str | None = Field(default=None, description="Environment variable with the API key; None: the protocol's.")
    truncate: bool = Field(default=True, description="TEI: let the server truncate over-long pairs.")
    raw_scores: bool = Field(default=False, description="TEI: logits instead of sigmoid scores.")
    vllm_endpoint: str = Field(default="rerank", description="vLLM: 'rerank' or 'score'.")
    batch_size: int | None = Field(default=None, gt=0, description="Documents per request; None: the protocol's limit.")
    settings: dict[str, Any] = Field(default_factory=dict, description="gte_rag.remote.RemoteSettings fields.")

    _scorer: RemoteScorer = PrivateAttr()

    def __init__(self, *, api_key: str | None = None, **data: Any) -> None:
        super().__init__(**data)
        self._scorer = RemoteScorer(
            self.url, protocol=self.protocol, model_name=self.model_name, api_key=api_key, api_key_env=self.api_key_env,
            truncate=self.truncate, raw_scores=self.raw_scores, vllm_endpoint=self.vllm_endpoint,
            batch_size=self.batch_size, settings=self.settings,
        )

    @classmethod
    def class_name(cls) -> str:
        return "RemoteReranker"

    @property
    def scorer(self) -> RemoteScorer:
        """The core client."""
        return self._scorer

    def close(self) -> None:
        self._scorer.close()

    async def aclose(self) -> None:
        await self._scorer.aclose()

    # ScoringPostprocessor hooks: the core exists from the start
    def _build_core(self) -> PairScorer:
        return self._scorer

    @property
    def _core(self) -> PairScorer | None:
        return self._scorer

    def _set_core(self, core: PairScorer) -> None:
        assert isinstance(core, RemoteScorer)
        self._scorer = core

    def _model_name(self) -> str:
        return self._scorer.model_name

    async def _apostprocess_nodes(
        self,
        nodes: list[NodeWithScore],
        query_bundle: QueryBundle | None = None,
    ) -> list[NodeWithScore]:
        with self._rerank_events(nodes, query_bundle) as (query, new_nodes):
            if nodes:
                docs = [n.node.get_content(metadata_mode=self.metadata_mode) for n in nodes]
                results = await self._scorer.arerank(query, docs)
                scores = np.zeros(len(nodes), dtype=np.float32)
                for r in results:
                    scores[r.index] = r.score
                new_nodes.extend(self._best(nodes, scores))
        return new_nodes
