"""GteRemoteEmbedding / GteRemoteSparseEmbedding: LlamaIndex embeddings served over HTTP.

Thin adapters over :class:`gte_rag.remote.RemoteEncoder`: whole lists go to the encoder,
which batches them to the service's limit; the async hooks use its async client (batches
in flight concurrently) instead of a worker thread. The API key is handed to the encoder
and is not a field, so it is in neither ``to_dict()``, ``to_json()`` nor the repr.
"""

from __future__ import annotations

from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from llama_index.core.base.embeddings.base_sparse import BaseSparseEmbedding, SparseEmbedding
from llama_index.core.bridge.pydantic import Field, PrivateAttr

from ..embed import EmptyPolicy
from ..errors import ConfigError
from ..remote import RemoteEncoder
from ._hooks import RoleHooks

__all__ = ["GteRemoteEmbedding", "GteRemoteSparseEmbedding"]


class _RemoteHooks(RoleHooks):
    """The async hooks over :meth:`RemoteEncoder.aencode` (the sync ones come from RoleHooks)."""

    async def _aencode_role(self, texts: list[str], role: str) -> list[Any]:
        raise NotImplementedError

    async def _aget_query_embedding(self, query: str) -> Any:
        return (await self._aencode_role([query], "query"))[0]

    async def _aget_text_embedding(self, text: str) -> Any:
        return (await self._aencode_role([text], "document"))[0]

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Any]:
        return await self._aencode_role(list(texts), "document")


class GteRemoteEmbedding(_RemoteHooks, BaseEmbedding):
    """Dense embeddings from TEI, an OpenAI-compatible service or DashScope, for LlamaIndex.

    Queries and documents are told apart as the local :class:`GteEmbedding` does: the query
    instruction is put in front of queries (or sent as TEI ``prompt_name`` / DashScope
    ``text_type`` + ``instruct``). Vectors are checked (count, index, dimension) and
    L2-normalised; a failing service raises :class:`gte_rag.errors.RemoteServiceError` after
    its retries. Build a :class:`GteRemoteSparseEmbedding` with
    :meth:`GteRemoteSparseEmbedding.from_embedding` to share the client and its cache.

    Example:
        >>> emb = GteRemoteEmbedding(url="http://127.0.0.1:8080", protocol="tei")  # doctest: +SKIP
        >>> len(emb.get_query_embedding("what makes plants green?"))  # doctest: +SKIP
        768
    """

    url: str = Field(description="Service root, e.g. http://127.0.0.1:8080 (OpenAI-compatible: the root or .../v1).")
    protocol: str = Field(default="tei", description="'tei', 'openai' or 'dashscope'.")
    model_name: str = Field(default="", description="Model to ask the service for (OpenAI, DashScope); TEI ignores it. '': none.")
    api_key_env: str | None = Field(default=None, description="Environment variable with the API key; None: the protocol's.")
    dimension: int | None = Field(default=None, gt=0, description="Output dimension to ask for; None: the service's own.")
    query_instruction: str | None = Field(default=None, description="Text put in front of queries (DashScope: sent as `instruct`).")
    query_prompt_name: str | None = Field(default=None, description="TEI prompt_name for queries (a prompt configured on the server).")
    document_prompt_name: str | None = Field(default=None, description="TEI prompt_name for documents.")
    sparse: bool | None = Field(default=None, description="Also fetch sparse vectors (TEI /embed_sparse, DashScope); None: DashScope only.")
    truncate: bool = Field(default=True, description="Ask the service to truncate over-long inputs.")
    truncation_direction: str = Field(default="right", description="'right' or 'left' (TEI).")
    normalize: bool = Field(default=True, description="L2-normalise the vectors.")
    encoding_format: str = Field(default="float", description="OpenAI 'float' or 'base64' (decoded here).")
    batch_size: int | None = Field(default=None, gt=0, description="Texts per request; None: the protocol's limit.")
    settings: dict[str, Any] = Field(default_factory=dict, description="gte_rag.remote.RemoteSettings fields (timeouts, retries...).")
    on_empty: EmptyPolicy = Field(default="encode", description="'encode' sends empty texts, 'raise' rejects them.")
    embed_batch_size: int = Field(default=2048, gt=0, description="Texts handed to the encoder per call (it batches them itself).")
    max_length: int | None = Field(default=None, gt=1, description="Tokens per input the service reads; None: TEI's /info.")
    sparse_head: str | None = Field(
        default=None, description="Local directory of the served mGTE checkpoint: its token head weighs TEI /embed_all states."
    )

    _encoder: RemoteEncoder = PrivateAttr()

    def __init__(self, *, api_key: str | None = None, encoder: RemoteEncoder | None = None, **data: Any) -> None:
        if encoder is not None:
            if api_key is not None:
                raise ConfigError("pass api_key to the RemoteEncoder, not next to it")
            data.setdefault("url", encoder.url)
            data.setdefault("protocol", encoder.protocol_name)
            data.setdefault("model_name", encoder._model or "")
            data.setdefault("dimension", encoder.requested_dimension)
            data.setdefault("sparse", encoder.has_sparse)
        super().__init__(**data)
        self._encoder = encoder if encoder is not None else RemoteEncoder(
            self.url, protocol=self.protocol, model_name=self.model_name or None, api_key=api_key, api_key_env=self.api_key_env,
            dimension=self.dimension, query_instruction=self.query_instruction,
            query_prompt_name=self.query_prompt_name, document_prompt_name=self.document_prompt_name,
            sparse=self.sparse, truncate=self.truncate, truncation_direction=self.truncation_direction,
            normalize=self.normalize, encoding_format=self.encoding_format, batch_size=self.batch_size,
            settings=self.settings, on_empty=self.on_empty, max_length=self.max_length, sparse_head=self.sparse_head,
        )

    @classmethod
    def class_name(cls) -> str:
        return "GteRemoteEmbedding"

    @property
    def encoder(self) -> RemoteEncoder:
        """The core remote encoder (pass it to ``KnowledgeBase(encoder=...)``)."""
        return self._encoder

    def close(self) -> None:
        self._encoder.close()

    async def aclose(self) -> None:
        await self._encoder.aclose()

    def _encode_role(self, texts: list[str], role: str) -> list[Embedding]:
        enc = self._encoder
        out = enc.encode(texts, role=role, return_sparse=enc.has_sparse, on_empty=self.on_empty)  # type: ignore[arg-type]
        return out.dense.tolist()  # type: ignore[no-any-return]

    async def _aencode_role(self, texts: list[str], role: str) -> list[Embedding]:
        enc = self._encoder
        out = await enc.aencode(texts, role=role, return_sparse=enc.has_sparse, on_empty=self.on_empty)  # type: ignore[arg-type]
        return out.dense.tolist()  # type: ignore[no-any-return]


class GteRemoteSparseEmbedding(_RemoteHooks, BaseSparseEmbedding):
    """Sparse vectors (token id -> weight) from TEI ``/embed_sparse`` or DashScope, for LlamaIndex.

    With ``sparse_head`` (the served mGTE checkpoint's directory), mGTE's learned weights come
    from TEI's ``/embed_all`` token states and the checkpoint's token head, computed here.
    """

    url: str = Field(description="Service root.")
    protocol: str = Field(default="tei", description="'tei' (a SPLADE-style server) or 'dashscope'.")
    model_name: str = Field(default="", description="Model to ask the service for (DashScope). '': the protocol's default.")
    api_key_env: str | None = Field(default=None, description="Environment variable with the API key; None: the protocol's.")
    query_instruction: str | None = Field(default=None, description="Text put in front of queries (DashScope: `instruct`).")
    batch_size: int | None = Field(default=None, gt=0, description="Texts per request; None: the protocol's limit.")
    settings: dict[str, Any] = Field(default_factory=dict, description="gte_rag.remote.RemoteSettings fields.")
    on_empty: EmptyPolicy = Field(default="encode", description="'encode' sends empty texts, 'raise' rejects them.")
    embed_batch_size: int = Field(default=2048, gt=0, description="Texts handed to the encoder per call.")
    sparse_head: str | None = Field(
        default=None,
        description="Local directory of the served mGTE checkpoint: learned weights from TEI /embed_all states "
        "and its token head, instead of /embed_sparse.",
    )

    _encoder: RemoteEncoder = PrivateAttr()

    def __init__(self, *, api_key: str | None = None, encoder: RemoteEncoder | None = None, **data: Any) -> None:
        if encoder is not None:
            if not encoder.has_sparse:
                raise ConfigError("the shared remote encoder was created without sparse output (sparse=False)")
            data.setdefault("url", encoder.url)
            data.setdefault("protocol", encoder.protocol_name)
            data.setdefault("model_name", encoder._model or "")
        super().__init__(**data)
        self._encoder = encoder if encoder is not None else RemoteEncoder(
            self.url, protocol=self.protocol, model_name=self.model_name or None, api_key=api_key, api_key_env=self.api_key_env,
            query_instruction=self.query_instruction, sparse=None if self.sparse_head else True, batch_size=self.batch_size,
            settings=self.settings, on_empty=self.on_empty, sparse_head=self.sparse_head,
        )

    @classmethod
    def class_name(cls) -> str:
        return "GteRemoteSparseEmbedding"

    @classmethod
    def from_embedding(cls, embedding: GteRemoteEmbedding, **data: Any) -> GteRemoteSparseEmbedding:
        """Share the remote encoder (client and result cache) of a :class:`GteRemoteEmbedding`."""
        data.setdefault("on_empty", embedding.on_empty)
        return cls(encoder=embedding.encoder, **data)

    @property
    def encoder(self) -> RemoteEncoder:
        return self._encoder

    def _encode_role(self, texts: list[str], role: str) -> list[SparseEmbedding]:
        out = self._encoder.encode(texts, role=role, on_empty=self.on_empty)  # type: ignore[arg-type]
        return [sv.as_dict() for sv in out.sparse]

    async def _aencode_role(self, texts: list[str], role: str) -> list[SparseEmbedding]:
        out = await self._encoder.aencode(texts, role=role, on_empty=self.on_empty)  # type: ignore[arg-type]
        return [sv.as_dict() for sv in out.sparse]
