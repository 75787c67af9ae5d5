"""``GteLLMReranker``: rerank nodes by a causal LM's P("yes") to a relevance question.

Delegates to :class:`gte_rag.rerank.GteLLMCrossEncoder`; shares the scoring flow
(events, stable sort, no mutation of inputs) with :class:`GteReranker`.
"""

from __future__ import annotations

from typing import Any, Literal

from llama_index.core.bridge.pydantic import Field, PrivateAttr

from .._runtime import DTYPE_HELP
from ..errors import ConfigError
from ..rerank import DEFAULT_LLM_RERANK_TEMPLATE, GteLLMCrossEncoder, PairScorer
from ._reranker import ScoringPostprocessor

__all__ = ["GteLLMReranker"]


class GteLLMReranker(ScoringPostprocessor):
    """Rerank nodes with a local causal LM (Qwen2 and any transformers causal LM).

    Scores are P(yes) normalised over {yes, no} at the end of the prompt, in (0, 1).
    The model loads at the first query, or at :meth:`load`.

    Example:
        >>> llm_rerank = GteLLMReranker(model="/models/Qwen2-1.5B-Instruct", use_chat_template=True, top_n=3)  # doctest: +SKIP
    """

    model: str = Field(description="Causal LM name, hub id (cached or fetched) or checkpoint directory.")
    template: str = Field(
        default=DEFAULT_LLM_RERANK_TEMPLATE, description="Prompt with {query} and {document}, once each."
    )
    use_chat_template: bool = Field(default=False, description="Wrap the prompt in the tokenizer's chat template.")
    system_prompt: str | None = Field(default=None, description="System turn for the chat template.")
    yes_token: str | None = Field(default=None, description="One-token string for 'relevant'; None picks a default.")
    no_token: str | None = Field(default=None, description="One-token string for 'not relevant'; None picks a default.")
    max_length: int | None = Field(default=None, gt=0, description="Tokens per prompt; None uses the model's limit.")
    batch_size: int = Field(default=8, gt=0, description="Most prompts per forward pass.")
    max_batch_tokens: int | None = Field(
        default=None, gt=0, description="Most padded tokens per forward pass; None: 4096 on CPU, 65536 on accelerators."
    )
    padding_side: Literal["left", "right"] = Field(default="left", description="Padding side of batched prompts.")
    device: str | None = Field(default=None, description="Torch device; None picks CUDA when available.")
    dtype: str = Field(default="auto", description=DTYPE_HELP)
    local_files_only: bool = Field(default=False, description="Never fetch the model from the hub; one not on this machine fails at once.")

    _scorer: GteLLMCrossEncoder | None = PrivateAttr(default=None)

    @classmethod
    def class_name(cls) -> str:
        return "GteLLMReranker"

    @classmethod
    def from_llm_cross_encoder(cls, scorer: GteLLMCrossEncoder, **fields: Any) -> GteLLMReranker:
        """Wrap an already loaded :class:`GteLLMCrossEncoder` (fields describing it are taken from it)."""
        if not isinstance(scorer, GteLLMCrossEncoder):
            raise ConfigError(f"expected a GteLLMCrossEncoder, got {type(scorer).__name__}")
        described: dict[str, Any] = {
            "model": scorer.model_name,
            "template": scorer.template,
            "use_chat_template": scorer.use_chat_template,
            "system_prompt": scorer.system_prompt,
            "yes_token": scorer.yes_token,
            "no_token": scorer.no_token,
            "max_length": scorer.max_length,
            "batch_size": scorer.batch_size,
            "max_batch_tokens": scorer.max_batch_tokens,
            "padding_side": scorer.padding_side,
            "device": str(scorer.device),
            "dtype": scorer.precision.name,
        }
        clash = sorted(set(described) & set(fields))
        if clash:
            raise ConfigError(f"{clash} come from the scorer; set them there, not here")
        obj = cls(**described, **fields)
        obj._scorer = scorer
        return obj

    @property
    def llm_cross_encoder(self) -> GteLLMCrossEncoder:
        core = self.load()
        assert isinstance(core, GteLLMCrossEncoder)
        return core

    def _build_core(self) -> GteLLMCrossEncoder:
        return GteLLMCrossEncoder(
            self.model,
            template=self.template,
            use_chat_template=self.use_chat_template,
            system_prompt=self.system_prompt,
            yes_token=self.yes_token,
            no_token=self.no_token,
            max_length=self.max_length,
            batch_size=self.batch_size,
            max_batch_tokens=self.max_batch_tokens,
            padding_side=self.padding_side,
            device=self.device,
            dtype=self.dtype,
            local_files_only=self.local_files_only,
        )

    @property
    def _core(self) -> GteLLMCrossEncoder | None:
        return self._scorer

    def _set_core(self, core: PairScorer) -> None:
        assert isinstance(core, GteLLMCrossEncoder)
        self._scorer = core

    def _model_name(self) -> str:
        return self.model
