"""Request and response shapes of the embedding and rerank services we speak.

Each protocol turns a batch into ``(path, payload)`` and checks the answer: one result per
input (mapped back by the index the service returns wherever it returns one, never by
position), numbers only, the expected dimension. A body that fails any check raises
:class:`~gte_rag.errors.RemoteResponseError`: a batch comes back whole or not at all.

Embedding: ``tei`` (text-embeddings-inference ``/embed`` and ``/embed_sparse``), ``openai``
(``/v1/embeddings`` of OpenAI, vLLM, Infinity, TEI; float or base64), ``dashscope``
(Alibaba Cloud text-embedding v3/v4, dense and sparse in one call).
Rerank: ``tei`` (``/rerank``), ``cohere`` (Cohere and Jina ``/v1/rerank``), ``vllm``
(``/rerank``, or ``/score`` with ``vllm_endpoint="score"``), ``dashscope`` (gte-rerank).
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from .._types import SparseVector
from ..errors import ConfigError
from ._http import bad_response

__all__ = [
    "EMBED_PROTOCOLS",
    "EmbedCall",
    "EmbedOptions",
    "EmbedProtocol",
    "RERANK_PROTOCOLS",
    "RerankOptions",
    "RerankProtocol",
    "embed_protocol",
    "rerank_protocol",
]

Rows = list[npt.NDArray[np.float32]]


@dataclass(frozen=True)
class EmbedOptions:
    """What an embedding request may carry besides the texts (``None``: not sent)."""

    model: str | None = None
    dimension: int | None = None
    truncate: bool = True
    truncation_direction: str = "right"
    normalize: bool = True
    query_prompt_name: str | None = None
    document_prompt_name: str | None = None
    instruct: str | None = None
    encoding_format: str = "float"


@dataclass(frozen=True)
class EmbedCall:
    """One request of a batch, and how to read its answer into (dense rows, sparse vectors)."""

    path: str
    payload: dict[str, Any]
    parse: Callable[[Any, int, str], tuple[Rows | None, list[SparseVector] | None]]


def _vector(value: Any, endpoint: str, body: Any, where: str) -> npt.NDArray[np.float32]:
    if not isinstance(value, list) or not value or not all(
        isinstance(x, (int, float)) and not isinstance(x, bool) for x in value
    ):
        raise bad_response(endpoint, f"{where} that is not a list of numbers", body)
    row = np.asarray(value, dtype=np.float32)
    if not np.all(np.isfinite(row)):
        raise bad_response(endpoint, f"{where} holding a NaN or infinite value", body)
    return row


def _base64_vector(value: Any, endpoint: str, body: Any, where: str) -> npt.NDArray[np.float32]:
    if not isinstance(value, str):
        raise bad_response(endpoint, f"{where} that is not a base64 string", body)
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise bad_response(endpoint, f"{where} that is not valid base64", body) from None
    if not raw or len(raw) % 4:
        raise bad_response(endpoint, f"{where} of {len(raw)} bytes (not float32 values)", body)
    row = np.frombuffer(raw, dtype="<f4").astype(np.float32)
    if not np.all(np.isfinite(row)):
        raise bad_response(endpoint, f"{where} holding a NaN or infinite value", body)
    return row


def _sparse(items: Any, endpoint: str, body: Any, where: str) -> SparseVector:
    if not isinstance(items, list):
        raise bad_response(endpoint, f"{where} that is not a list of {{index, value}}", body)
    weights: dict[int, float] = {}
    for item in items:
        index = item.get("index") if isinstance(item, dict) else None
        value = item.get("value") if isinstance(item, dict) else None
        if (
            not isinstance(index, int) or isinstance(index, bool) or index < 0
            or not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value)
        ):
            raise bad_response(endpoint, f"{where} with an entry that is not {{index: int >= 0, value: number}}", body)
        # repeated ids (DashScope lists a token each time it occurs): keep the largest weight
        weights[index] = max(float(value), weights.get(index, float("-inf")))
    return SparseVector.from_dict({i: v for i, v in weights.items() if v > 0})


def _by_index(entries: Any, n: int, key: str, endpoint: str, body: Any) -> list[Any]:
    """Entries of a list answer put in input order by their ``key`` field (each index once)."""
    if not isinstance(entries, list):
        raise bad_response(endpoint, "no list of results", body)
    if len(entries) != n:
        raise bad_response(endpoint, f"{len(entries)} results for {n} inputs", body)
    out: list[Any] = [None] * n
    for entry in entries:
        index = entry.get(key) if isinstance(entry, dict) else None
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < n or out[index] is not None:
            raise bad_response(endpoint, f"a result whose {key!r} is missing, repeated or outside 0..{n - 1}", body)
        out[index] = entry
    return out


def _list_of(body: Any, n: int, endpoint: str) -> list[Any]:
    if not isinstance(body, list):
        raise bad_response(endpoint, "a body that is not a list", body)
    if len(body) != n:
        raise bad_response(endpoint, f"{len(body)} results for {n} inputs", body)
    return body


# ---------------------------------------------------------------------------- embeddings
class EmbedProtocol:
    """How one kind of service embeds a batch."""

    name: ClassVar[str]
    batch_size: ClassVar[int]
    api_key_env: ClassVar[str]
    can_sparse: ClassVar[bool] = False
    sparse_default: ClassVar[bool] = False
    path: ClassVar[str]

    def __init__(self, options: EmbedOptions) -> None:
        self.options = options

    def native_role(self, role: str) -> bool:
        """Whether the service itself applies the role's prompt (then no text prefix is added)."""
        return False

    def calls(self, texts: list[str], role: str, dense: bool, sparse: bool) -> list[EmbedCall]:
        raise NotImplementedError


class TeiEmbed(EmbedProtocol):
    """text-embeddings-inference: ``/embed`` -> ``[[f32]]``; ``/embed_sparse`` -> ``[[{index, value}]]``."""

    name = "tei"
    batch_size = 32  # TEI's --max-client-batch-size default
    api_key_env = "TEI_API_KEY"
    can_sparse = True
    path = "/embed"

    def _prompt(self, role: str) -> str | None:
        o = self.options
        return o.query_prompt_name if role == "query" else o.document_prompt_name

    def native_role(self, role: str) -> bool:
        return self._prompt(role) is not None

    def _common(self, texts: list[str], role: str) -> dict[str, Any]:
        o = self.options
        payload: dict[str, Any] = {
            "inputs": texts, "truncate": o.truncate, "truncation_direction": o.truncation_direction.capitalize(),
        }
        prompt = self._prompt(role)
        if prompt is not None:
            payload["prompt_name"] = prompt
        return payload

    def calls(self, texts: list[str], role: str, dense: bool, sparse: bool) -> list[EmbedCall]:
        out: list[EmbedCall] = []
        if dense:
            payload = {**self._common(texts, role), "normalize": self.options.normalize}
            if self.options.dimension is not None:
                payload["dimensions"] = self.options.dimension
            out.append(EmbedCall("/embed", payload, self._parse_dense))
        if sparse:
            out.append(EmbedCall("/embed_sparse", self._common(texts, role), self._parse_sparse))
        return out

    @staticmethod
    def _parse_dense(body: Any, n: int, endpoint: str) -> tuple[Rows | None, list[SparseVector] | None]:
        rows = _list_of(body, n, endpoint)
        return [_vector(r, endpoint, body, f"vector {i}") for i, r in enumerate(rows)], None

    @staticmethod
    def _parse_sparse(body: Any, n: int, endpoint: str) -> tuple[Rows | None, list[SparseVector] | None]:
        rows = _list_of(body, n, endpoint)
        return None, [_sparse(r, endpoint, body, f"sparse vector {i}") for i, r in enumerate(rows)]


class OpenAIEmbed(EmbedProtocol):
    """OpenAI-compatible ``/v1/embeddings``: ``{data: [{index, embedding}]}``, float or base64."""

    name = "openai"
    batch_size = 256
    api_key_env = "OPENAI_API_KEY"
    path = "/v1/embeddings"

    def calls(self, texts: list[str], role: str, dense: bool, sparse: bool) -> list[EmbedCall]:
        o = self.options
        payload: dict[str, Any] = {"input": texts, "encoding_format": o.encoding_format}
        if o.model is not None:
            payload["model"] = o.model
        if o.dimension is not None:
            payload["dimensions"] = o.dimension
        return [EmbedCall(self.path, payload, self._parse)]

    def _parse(self, body: Any, n: int, endpoint: str) -> tuple[Rows | None, list[SparseVector] | None]:
        data = body.get("data") if isinstance(body, dict) else None
        entries = _by_index(data, n, "index", endpoint, body)
        read = _base64_vector if self.options.encoding_format == "base64" else _vector
        return [read(e.get("embedding"), endpoint, body, f"embedding {i}") for i, e in enumerate(entries)], None


class DashScopeEmbed(EmbedProtocol):
    """DashScope text-embedding v3/v4: ``{output: {embeddings: [{text_index, embedding, sparse_embedding}]}}``."""

    name = "dashscope"
    batch_size = 10  # the service's limit per request
    api_key_env = "DASHSCOPE_API_KEY"
    can_sparse = True
    sparse_default = True
    path = "/api/v1/services/embeddings/text-embedding/text-embedding"

    def native_role(self, role: str) -> bool:
        return True  # text_type query|document, and the query instruction as `instruct`

    def calls(self, texts: list[str], role: str, dense: bool, sparse: bool) -> list[EmbedCall]:
        o = self.options
        output_type = "dense&sparse" if dense and sparse else ("sparse" if sparse else "dense")
        parameters: dict[str, Any] = {"text_type": role, "output_type": output_type}
        if o.dimension is not None:
            parameters["dimension"] = o.dimension
        if role == "query" and o.instruct:
            parameters["instruct"] = o.instruct
        payload = {"model": o.model or "text-embedding-v3", "input": {"texts": texts}, "parameters": parameters}

        def parse(body: Any, n: int, endpoint: str) -> tuple[Rows | None, list[SparseVector] | None]:
            output = body.get("output") if isinstance(body, dict) else None
            embeddings = output.get("embeddings") if isinstance(output, dict) else None
            entries = _by_index(embeddings, n, "text_index", endpoint, body)
            rows = [_vector(e.get("embedding"), endpoint, body, f"embedding {i}") for i, e in enumerate(entries)] if dense else None
            sv = (
                [_sparse(e.get("sparse_embedding"), endpoint, body, f"sparse_embedding {i}") for i, e in enumerate(entries)]
                if sparse else None
            )
            return rows, sv

        return [EmbedCall(self.path, payload, parse)]


EMBED_PROTOCOLS: dict[str, type[EmbedProtocol]] = {p.name: p for p in (TeiEmbed, OpenAIEmbed, DashScopeEmbed)}


def embed_protocol(name: str, options: EmbedOptions) -> EmbedProtocol:
    """The embedding protocol called ``name``."""
    cls = EMBED_PROTOCOLS.get(name)
    if cls is None:
        raise ConfigError(f"protocol={name!r} is not an embedding protocol; use one of {sorted(EMBED_PROTOCOLS)}")
    if options.encoding_format not in ("float", "base64"):
        raise ConfigError(f"encoding_format={options.encoding_format!r} is not 'float' or 'base64'")
    if options.truncation_direction not in ("right", "left"):
        raise ConfigError(f"truncation_direction={options.truncation_direction!r} is not 'right' or 'left'")
    return cls(options)


# ---------------------------------------------------------------------------- rerank
@dataclass(frozen=True)
class RerankOptions:
    """What a rerank request may carry besides the query and the documents."""

    model: str | None = None
    truncate: bool = True
    raw_scores: bool = False
    vllm_endpoint: str = "rerank"


class RerankProtocol:
    """How one kind of service scores a query against a batch of documents."""

    name: ClassVar[str]
    batch_size: ClassVar[int]
    api_key_env: ClassVar[str]
    sends_top_n: bool = True
    path: ClassVar[str]

    def __init__(self, options: RerankOptions) -> None:
        self.options = options

    @property
    def endpoint_path(self) -> str:
        return self.path

    def payload(self, query: str, documents: list[str], top_n: int | None) -> dict[str, Any]:
        raise NotImplementedError

    def results(self, body: Any) -> Any:
        """The list of ``{index, score}``-like entries of an answer."""
        raise NotImplementedError

    score_key: str = "relevance_score"

    def parse(self, body: Any, n: int, top_n: int | None, endpoint: str) -> list[tuple[int, float]]:
        """``(index, score)`` of every document asked for (``min(top_n, n)`` of them when sent)."""
        entries = self.results(body)
        if not isinstance(entries, list):
            raise bad_response(endpoint, "no list of results", body)
        expected = min(top_n, n) if top_n is not None and self.sends_top_n else n
        if len(entries) != expected:
            raise bad_response(endpoint, f"{len(entries)} scores for {expected} documents", body)
        seen: set[int] = set()
        out: list[tuple[int, float]] = []
        for entry in entries:
            index = entry.get("index") if isinstance(entry, dict) else None
            score = entry.get(self.score_key) if isinstance(entry, dict) else None
            if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < n or index in seen:
                raise bad_response(endpoint, f"a result whose 'index' is missing, repeated or outside 0..{n - 1}", body)
            if not isinstance(score, (int, float)) or isinstance(score, bool) or not math.isfinite(score):
                raise bad_response(endpoint, f"a result whose {self.score_key!r} is not a finite number", body)
            seen.add(index)
            out.append((index, float(score)))
        return out


class TeiRerank(RerankProtocol):
    """text-embeddings-inference ``/rerank``: ``[{index, score}]`` sorted by score."""

    name = "tei"
    batch_size = 32
    api_key_env = "TEI_API_KEY"
    sends_top_n = False
    path = "/rerank"
    score_key = "score"

    def payload(self, query: str, documents: list[str], top_n: int | None) -> dict[str, Any]:
        o = self.options
        return {"query": query, "texts": documents, "truncate": o.truncate, "raw_scores": o.raw_scores, "return_text": False}

    def results(self, body: Any) -> Any:
        return body


class CohereRerank(RerankProtocol):
    """Cohere / Jina ``/v1/rerank``: ``{results: [{index, relevance_score}]}``."""

    name = "cohere"
    batch_size = 1000
    api_key_env = "COHERE_API_KEY"
    path = "/v1/rerank"

    def payload(self, query: str, documents: list[str], top_n: int | None) -> dict[str, Any]:
        payload: dict[str, Any] = {"query": query, "documents": documents, "return_documents": False}
        if self.options.model is not None:
            payload["model"] = self.options.model
        if top_n is not None:
            payload["top_n"] = min(top_n, len(documents))
        return payload

    def results(self, body: Any) -> Any:
        return body.get("results") if isinstance(body, dict) else None


class VllmRerank(RerankProtocol):
    """vLLM ``/rerank`` (Jina-style ``results``) or ``/score`` (``{data: [{index, score}]}``)."""

    name = "vllm"
    batch_size = 256
    api_key_env = "VLLM_API_KEY"
    path = "/rerank"

    def __init__(self, options: RerankOptions) -> None:
        super().__init__(options)
        if options.vllm_endpoint not in ("rerank", "score"):
            raise ConfigError(f"vllm_endpoint={options.vllm_endpoint!r} is not 'rerank' or 'score'")
        self._score = options.vllm_endpoint == "score"
        if self._score:  # /score has no top_n and names its score "score"
            self.sends_top_n = False
            self.score_key = "score"

    @property
    def endpoint_path(self) -> str:
        return "/score" if self._score else "/rerank"

    def payload(self, query: str, documents: list[str], top_n: int | None) -> dict[str, Any]:
        payload: dict[str, Any]
        if self._score:
            payload = {"text_1": query, "text_2": documents}
        else:
            payload = {"query": query, "documents": documents}
            if top_n is not None:
                payload["top_n"] = min(top_n, len(documents))
        if self.options.model is not None:
            payload["model"] = self.options.model
        return payload

    def results(self, body: Any) -> Any:
        return body.get("data" if self._score else "results") if isinstance(body, dict) else None


class DashScopeRerank(RerankProtocol):
    """DashScope gte-rerank: ``{output: {results: [{index, relevance_score}]}}``."""

    name = "dashscope"
    batch_size = 500  # gte-rerank-v2: documents per request
    api_key_env = "DASHSCOPE_API_KEY"
    path = "/api/v1/services/rerank/text-rerank/text-rerank"

    def payload(self, query: str, documents: list[str], top_n: int | None) -> dict[str, Any]:
        parameters: dict[str, Any] = {"return_documents": False}
        if top_n is not None:
            parameters["top_n"] = min(top_n, len(documents))
        return {
            "model": self.options.model or "gte-rerank-v2",
            "input": {"query": query, "documents": documents},
            "parameters": parameters,
        }

    def results(self, body: Any) -> Any:
        output = body.get("output") if isinstance(body, dict) else None
        return output.get("results") if isinstance(output, dict) else None


RERANK_PROTOCOLS: dict[str, type[RerankProtocol]] = {
    p.name: p for p in (TeiRerank, CohereRerank, VllmRerank, DashScopeRerank)
}


def rerank_protocol(name: str, options: RerankOptions) -> RerankProtocol:
    """The rerank protocol called ``name``."""
    cls = RERANK_PROTOCOLS.get(name)
    if cls is None:
        raise ConfigError(f"protocol={name!r} is not a rerank protocol; use one of {sorted(RERANK_PROTOCOLS)}")
    return cls(options)


def as_texts(items: Sequence[Any]) -> list[str]:
    """Strings for the wire (a TokenizedText chunk sends its own span of text)."""
    out: list[str] = []
    for item in items:
        out.append(item if isinstance(item, str) else item.span_text)
    return out
