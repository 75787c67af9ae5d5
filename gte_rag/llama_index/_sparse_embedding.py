"""GteSparseEmbedding: LlamaIndex sparse embedding over :class:`gte_rag.embed.GteEncoder`."""

from __future__ import annotations

from typing import Any

from llama_index.core.base.embeddings.base_sparse import BaseSparseEmbedding, SparseEmbedding
from llama_index.core.bridge.pydantic import Field, PrivateAttr

from .._runtime import DTYPE_HELP
from ..embed import DEFAULT_MODEL, EmptyPolicy, GteEncoder
from ..errors import ConfigError
from ._embedding import ANALYZER_HELP, GteEmbedding
from ._hooks import RoleHooks

__all__ = ["GteSparseEmbedding"]


class GteSparseEmbedding(RoleHooks, BaseSparseEmbedding):
    """Sparse vectors (token id -> weight) for LlamaIndex.

    mGTE checkpoints give their learned token weights; other models give BM25-style term
    weights from their tokenizer (apply IDF in the store). Build it from a
    :class:`GteEmbedding` with :meth:`from_embedding` to share the encoder: the dense and
    sparse vectors of the same text then come from one forward pass.
    """

    model_name: str = Field(default=DEFAULT_MODEL, description="Registered name, hub id (cached or fetched) or checkpoint directory.")
    max_length: int | None = Field(default=None, gt=1, description="Tokens per text; None uses the model's own limit.")
    device: str | None = Field(default=None, description="'cpu', 'cuda', 'cuda:N'; None picks CUDA when available.")
    dtype: str = Field(default="auto", description=DTYPE_HELP)
    local_files_only: bool = Field(default=False, description="Never fetch the model from the hub; one not on this machine fails at once.")
    on_empty: EmptyPolicy = Field(
        default="encode",
        description=(
            "Empty or whitespace-only texts: 'encode' gives them the model's (usually empty) sparse vector, "
            "'raise' rejects them with a ConfigError naming the text's index. With an encoder passed in "
            "(from_embedding) the default is the policy of that GteEmbedding (else of the encoder); a value "
            "set here applies to this adapter's calls only."
        ),
    )
    analyzer: str | dict[str, Any] | None = Field(
        default=None,
        description=ANALYZER_HELP,
    )
    embed_batch_size: int = Field(default=256, gt=0, le=4096, description="Texts handed to the encoder per call.")

    _encoder: GteEncoder | None = PrivateAttr(default=None)

    def __init__(self, *, encoder: GteEncoder | None = None, lazy_load: bool = False, **data: Any) -> None:
        if encoder is not None:
            if not encoder.has_sparse:
                raise ConfigError("the shared encoder was created with sparse='none'; it cannot give sparse vectors")
            data.setdefault("model_name", encoder.model_name)
            data.setdefault("max_length", encoder.max_length)
            data.setdefault("analyzer", encoder.analyzer.record() if encoder.analyzer is not None else None)
            data.setdefault("on_empty", encoder.on_empty)  # the encoder's policy unless overridden
        super().__init__(**data)
        self._encoder = encoder
        if encoder is None and not lazy_load:
            self._encoder = self._build_core()

    @classmethod
    def class_name(cls) -> str:
        return "GteSparseEmbedding"

    @classmethod
    def from_embedding(cls, embedding: GteEmbedding, **data: Any) -> GteSparseEmbedding:
        """Share the encoder (weights and result cache) of a :class:`GteEmbedding`, and its ``on_empty``."""
        data.setdefault("on_empty", embedding.on_empty)
        return cls(encoder=embedding.encoder, **data)

    def _build_core(self) -> GteEncoder:
        return GteEncoder(
            self.model_name, max_length=self.max_length, device=self.device, dtype=self.dtype, on_empty=self.on_empty,
            local_files_only=self.local_files_only, analyzer=self.analyzer,
        )

    @property
    def encoder(self) -> GteEncoder:
        """The core encoder."""
        if self._encoder is None:
            self._encoder = self._build_core()
        return self._encoder

    def _encode_role(self, texts: list[str], role: str) -> list[SparseEmbedding]:
        out = self.encoder.encode(texts, role=role, on_empty=self.on_empty)  # type: ignore[arg-type]
        return [sv.as_dict() for sv in out.sparse]
