"""RemoteScorer: (query, document) relevance from a rerank service, mapped back by index.

Documents go out in batches of the protocol's limit (TEI 32, Cohere 1000, vLLM 256,
DashScope 500), all with the same query; each answer is checked (every index once, finite
scores) and put back in input order by the index it carries, never by its position.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError, InputTypeError
from ..rerank import RerankResult
from ..rerank._common import check_pairs
from ._encoder import resolve_api_key
from ._http import BatchLimit, HttpTransport, RemoteSettings, TransportOwner, asplit_on_rejection, split_on_rejection
from ._protocols import RERANK_PROTOCOLS, RerankOptions, rerank_protocol

__all__ = ["RemoteScorer"]


def _check_documents(query: Any, documents: Any) -> list[str]:
    if not isinstance(query, str):
        raise InputTypeError(f"query must be a str, got {type(query).__name__}")
    if isinstance(documents, str):
        raise InputTypeError("documents must be a sequence of str, got a single str; wrap it in a list")
    docs = list(documents)
    for i, d in enumerate(docs):
        if not isinstance(d, str):
            raise InputTypeError(f"documents[{i}] is a {type(d).__name__}, not a str")
    return docs


class RemoteScorer(TransportOwner):
    """Scores documents against a query with a rerank service.

    Args:
        url: The service root.
        protocol: ``"tei"``, ``"cohere"`` (Cohere and Jina), ``"vllm"`` or ``"dashscope"``.
        model_name: The model to ask for (Cohere, Jina, vLLM; DashScope: ``gte-rerank-v2``).
        api_key: Bearer token; ``None``: from ``api_key_env``.
        api_key_env: Environment variable with the key; ``None``: the protocol's (``TEI_API_KEY``,
            ``COHERE_API_KEY``, ``VLLM_API_KEY``, ``DASHSCOPE_API_KEY``).
        truncate: TEI ``truncate`` (sent: over-long pairs are cut by the server instead of refused).
        raw_scores: TEI ``raw_scores`` (logits instead of sigmoid probabilities).
        vllm_endpoint: vLLM ``"rerank"`` or ``"score"``.
        batch_size: Documents per request; ``None``: the protocol's limit.
        settings: :class:`RemoteSettings` or a mapping of its fields.
        headers: Extra HTTP headers.
    """

    def __init__(
        self,
        url: str,
        *,
        protocol: str = "tei",
        model_name: str | None = None,
        api_key: str | None = None,
        api_key_env: str | None = None,
        truncate: bool = True,
        raw_scores: bool = False,
        vllm_endpoint: str = "rerank",
        batch_size: int | None = None,
        settings: RemoteSettings | Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if protocol not in RERANK_PROTOCOLS:
            raise ConfigError(f"protocol={protocol!r} is not a rerank protocol; use one of {sorted(RERANK_PROTOCOLS)}")
        kind = RERANK_PROTOCOLS[protocol]
        self.protocol_name = protocol
        self._model = model_name
        self.protocol = rerank_protocol(
            protocol, RerankOptions(model=model_name, truncate=truncate, raw_scores=raw_scores, vllm_endpoint=vllm_endpoint)
        )
        self.settings = RemoteSettings.coerce(settings)
        self.batch_limit = BatchLimit(batch_size if batch_size is not None else kind.batch_size)
        self.transport = HttpTransport(
            url, api_key=resolve_api_key(api_key, api_key_env or kind.api_key_env), settings=self.settings, headers=headers
        )

    @property
    def model_name(self) -> str:
        return self._model or f"{self.protocol_name}@{self.transport.base_url}"

    def __repr__(self) -> str:
        return f"RemoteScorer(url={self.transport.base_url!r}, protocol={self.protocol_name!r}, model_name={self._model!r})"

    # ------------------------------------------------------------------ scoring
    def _batch(self, query: str, docs: list[str], start: int, end: int, top_n: int | None) -> tuple[str, dict[str, Any]]:
        return self.protocol.endpoint_path, self.protocol.payload(query, docs[start:end], top_n)

    def _read(self, body: Any, start: int, end: int, top_n: int | None, path: str) -> list[tuple[int, float]]:
        pairs = self.protocol.parse(body, end - start, top_n, self.transport.url(path))
        return [(start + i, s) for i, s in pairs]

    def _scores(self, query: str, documents: Sequence[str], top_n: int | None) -> tuple[list[str], int | None]:
        docs = _check_documents(query, documents)
        if top_n is not None and (isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1):
            raise ConfigError(f"top_n must be an int >= 1 or None, got {top_n!r}")
        return docs, top_n

    @staticmethod
    def _ranked(docs: list[str], found: list[tuple[int, float]], top_n: int | None) -> list[RerankResult]:
        ranked = sorted(found, key=lambda p: (-p[1], p[0]))
        if top_n is not None:
            ranked = ranked[:top_n]
        return [RerankResult(index=i, score=s, document=docs[i]) for i, s in ranked]

    def rerank(self, query: str, documents: Sequence[str], *, top_n: int | None = None) -> list[RerankResult]:
        """The documents best first (ties by input position), at most ``top_n`` of them.

        Where the protocol takes ``top_n`` it is sent with each batch (a batch's best
        ``top_n`` hold the global best ``top_n``).

        Raises:
            RemoteServiceError, RemoteRequestError, RemoteResponseError: as :class:`RemoteEncoder`.
        """
        docs, top_n = self._scores(query, documents, top_n)
        if not docs:
            return []

        def send(s: int, e: int) -> list[tuple[int, float]]:
            path, payload = self._batch(query, docs, s, e, top_n)
            return self._read(self.transport.post(path, payload), s, e, top_n, path)

        return self._ranked(docs, split_on_rejection(len(docs), self.batch_limit, send), top_n)

    async def arerank(self, query: str, documents: Sequence[str], *, top_n: int | None = None) -> list[RerankResult]:
        """Async twin of :meth:`rerank`; batches go out concurrently."""
        docs, top_n = self._scores(query, documents, top_n)
        if not docs:
            return []

        async def send(s: int, e: int) -> list[tuple[int, float]]:
            path, payload = self._batch(query, docs, s, e, top_n)
            return self._read(await self.transport.apost(path, payload), s, e, top_n, path)

        return self._ranked(docs, await asplit_on_rejection(len(docs), self.batch_limit, send), top_n)

    def score(self, query: str, documents: Sequence[str]) -> np.ndarray:
        """One score per document, in input order."""
        scores = np.zeros(len(list(documents)), dtype=np.float32)
        for r in self.rerank(query, documents):
            scores[r.index] = r.score
        return scores

    def score_pairs(self, pairs: Sequence[tuple[str, str]], *, show_progress: bool = False) -> np.ndarray:
        """Scores of (query, document) pairs in input order: one rerank call per distinct query."""
        queries, documents = check_pairs(pairs)
        out = np.zeros(len(queries), dtype=np.float32)
        groups: dict[str, list[int]] = {}
        for i, q in enumerate(queries):
            groups.setdefault(q, []).append(i)
        for q, rows in groups.items():
            out[rows] = self.score(q, [documents[i] for i in rows])
        return out
