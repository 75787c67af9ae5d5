"""RemoteEncoder: the encoder interface of :class:`~gte_rag.embed.GteEncoder`, served over HTTP.

It answers ``encode(texts, role=..., return_sparse=...) -> EncodeOutput`` with the same
contract as the local encoder (rows in input order, float32, L2-normalised, one sparse
vector per text when asked), so a :class:`~gte_rag.kb.KnowledgeBase`, the LlamaIndex
adapters and the store take it in place of a local model.

Texts are sent in batches of the protocol's known limit (``batch_size``); a batch the
service refuses for its size is split and the smaller size kept. Every answer is checked
(count, index, dimension, numbers) before anything is returned. Results are cached per role
like the local encoder's, so the dense and then the sparse vector of a text cost one call.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import numpy.typing as npt

from .._types import SparseVector
from ..embed import EmptyPolicy, EncodeOutput, Role, TokenizedText
from ..embed._tokens import check_inputs
from ..errors import ConfigError
from ._http import (
    BatchLimit,
    HttpTransport,
    RemoteSettings,
    TransportOwner,
    asplit_on_rejection,
    bad_response,
    split_on_rejection,
)
from ._protocols import EMBED_PROTOCOLS, EmbedOptions, embed_protocol
from ._token_support import TokenSupport

logger = logging.getLogger(__name__)

__all__ = ["RemoteEncoder"]

_Item = tuple[npt.NDArray[np.float32], SparseVector | None]
_PROBE = "dimension probe"


def public_url(url: str) -> tuple[str, bool]:
    """``url`` without user info and query string, and whether it had neither (then it is safe to record)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    clean = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    return clean, not (parts.username or parts.password or parts.query or parts.fragment)


def resolve_api_key(api_key: str | None, env_name: str | None) -> str | None:
    """The key given, else the one in the environment variable ``env_name`` (``None`` when neither)."""
    if api_key is not None:
        if not isinstance(api_key, str):
            raise ConfigError(f"api_key must be a str, got {type(api_key).__name__}")
        return api_key or None
    if env_name:
        return os.environ.get(env_name) or None
    return None


class RemoteEncoder(TokenSupport, TransportOwner):
    """Dense (and sparse) embeddings from an inference service, with the local encoder's interface.

    Args:
        url: The service root (``http://host:8080``; for OpenAI-compatible services the root
            or ``.../v1``).
        protocol: ``"tei"``, ``"openai"`` or ``"dashscope"``.
        model_name: The model the service should use (OpenAI, DashScope: ``text-embedding-v3``
            by default); TEI serves one model and ignores it. Also names the model in the
            collection record.
        api_key: Sent as a bearer token. ``None``: read from ``api_key_env``.
        api_key_env: Environment variable holding the key; ``None``: the protocol's
            (``TEI_API_KEY``, ``OPENAI_API_KEY``, ``DASHSCOPE_API_KEY``).
        dimension: Output dimension to ask for (TEI / OpenAI ``dimensions``, DashScope
            ``dimension``) and to check; ``None``: the service's own, learned from its first answer.
        query_instruction: Text put in front of queries (``"query: "``, an ``Instruct: ...``
            line). DashScope sends it as ``instruct`` instead; TEI with ``query_prompt_name``
            lets the server's prompt replace it.
        query_prompt_name, document_prompt_name: TEI ``prompt_name`` per role (a prompt
            configured on the server).
        sparse: Also give sparse vectors: TEI ``/embed_sparse`` (SPLADE-style servers), DashScope
            ``output_type``; ``None``: DashScope yes, others no. OpenAI-compatible services have none.
        truncate: Ask the service to truncate over-long inputs (TEI; others truncate or refuse by their rules).
        truncation_direction: ``"right"`` or ``"left"`` (TEI).
        normalize: L2-normalise the vectors (asked of TEI, and done here for every protocol).
        encoding_format: OpenAI ``"float"`` or ``"base64"`` (decoded here; a quarter of the bytes).
        batch_size: Texts per request; ``None``: the protocol's limit (TEI 32, OpenAI 256, DashScope 10).
        settings: :class:`RemoteSettings` or a mapping of its fields (timeouts, retries, concurrency).
        on_empty: ``"raise"`` rejects empty texts, ``"encode"`` sends them.
        cache_size: Results kept per role; 0 switches the cache off.
        headers: Extra HTTP headers.
        tokenizer: What :meth:`tokenize` uses (token chunking in a knowledge base, long
            documents): ``None``: TEI's ``/tokenize`` for ``"tei"``, none for the others;
            ``"server"``: TEI's ``/tokenize``; a local fast tokenizer, its directory or hub id
            (the served model's); ``False``: none.
        max_length: Tokens per input the service reads; ``None``: TEI's ``/info``
            (``max_input_length``), else the local tokenizer's ``model_max_length``.
        pooling: The served model's pooling for late chunking (``"cls"``, ``"mean"``,
            ``"last_token"``); ``None``: TEI's ``/info``.
        sparse_head: The local checkpoint directory of the served mGTE model: its token head
            (a few kilobytes, read alone) turns the token states of TEI's ``/embed_all`` into
            the learned sparse weights ``relu(head(h))``, for whole texts and for late chunks.

    Example:
        >>> enc = RemoteEncoder("http://127.0.0.1:8080", sparse_head="./gte-multilingual-base")  # doctest: +SKIP
        >>> from gte_rag.longdoc import LongDocEncoder  # doctest: +SKIP
        >>> [doc] = LongDocEncoder(enc, mode="late").encode([report_text])  # doctest: +SKIP
    """

    def __init__(
        self,
        url: str,
        *,
        protocol: str = "tei",
        model_name: str | None = None,
        api_key: str | None = None,
        api_key_env: str | None = None,
        dimension: int | None = None,
        query_instruction: str | None = None,
        query_prompt_name: str | None = None,
        document_prompt_name: str | None = None,
        sparse: bool | None = None,
        truncate: bool = True,
        truncation_direction: str = "right",
        normalize: bool = True,
        encoding_format: str = "float",
        batch_size: int | None = None,
        settings: RemoteSettings | Mapping[str, Any] | None = None,
        on_empty: EmptyPolicy = "raise",
        cache_size: int = 4096,
        headers: Mapping[str, str] | None = None,
        tokenizer: Any = None,
        max_length: int | None = None,
        pooling: str | None = None,
        sparse_head: Any = None,
    ) -> None:
        if protocol not in EMBED_PROTOCOLS:
            raise ConfigError(f"protocol={protocol!r} is not an embedding protocol; use one of {sorted(EMBED_PROTOCOLS)}")
        if dimension is not None and (isinstance(dimension, bool) or not isinstance(dimension, int) or dimension < 1):
            raise ConfigError(f"dimension must be an int >= 1 or None, got {dimension!r}")
        if on_empty not in ("raise", "encode"):
            raise ConfigError(f"on_empty={on_empty!r} is not one of 'raise', 'encode'")
        if cache_size < 0:
            raise ConfigError(f"cache_size must be >= 0, got {cache_size}")
        kind = EMBED_PROTOCOLS[protocol]
        if sparse and not kind.can_sparse:
            raise ConfigError(f"protocol={protocol!r} gives no sparse vectors; use sparse=False (or 'tei' / 'dashscope')")
        if sparse and sparse_head is not None:
            raise ConfigError(
                "sparse=True asks the service for sparse vectors (TEI /embed_sparse) and sparse_head computes them "
                "here from token states; pass one of them"
            )
        self.protocol_name = protocol
        self.url = url
        self._model = model_name
        self.requested_dimension = dimension
        self.query_instruction = query_instruction
        self.protocol = embed_protocol(
            protocol,
            EmbedOptions(
                model=model_name, dimension=dimension, truncate=truncate, truncation_direction=truncation_direction,
                normalize=normalize, query_prompt_name=query_prompt_name, document_prompt_name=document_prompt_name,
                instruct=query_instruction, encoding_format=encoding_format,
            ),
        )
        self.normalize = normalize
        self.on_empty: EmptyPolicy = on_empty
        self.cache_size = cache_size
        service_sparse = (kind.sparse_default if sparse is None else sparse) and sparse_head is None
        self.sparse_mode = "learned" if service_sparse or sparse_head is not None else "none"
        self._service_sparse = bool(service_sparse)
        self._api_key_env = api_key_env or kind.api_key_env
        self._options = {
            "protocol": protocol, "model_name": model_name, "dimension": dimension,
            "query_instruction": query_instruction, "query_prompt_name": query_prompt_name,
            "document_prompt_name": document_prompt_name, "sparse": sparse, "truncate": truncate,
            "truncation_direction": truncation_direction, "normalize": normalize, "encoding_format": encoding_format,
            "batch_size": batch_size, "max_length": max_length, "pooling": pooling,
        }
        self.query_prefix = "" if self.protocol.native_role("query") else (query_instruction or "")
        self.document_prefix = ""
        self.settings = RemoteSettings.coerce(settings)
        self.batch_limit = BatchLimit(batch_size if batch_size is not None else kind.batch_size)
        self.transport = HttpTransport(
            url, api_key=resolve_api_key(api_key, api_key_env or kind.api_key_env), settings=self.settings, headers=headers
        )
        self._dimension = dimension
        self._setup_tokens(tokenizer, max_length, pooling, sparse_head)
        self._tokenizer_ref = str(tokenizer) if isinstance(tokenizer, (str, os.PathLike)) else None
        self._head_ref = str(Path(sparse_head).expanduser().resolve()) if isinstance(sparse_head, (str, os.PathLike)) else None
        self._lock = threading.Lock()
        self._cache: dict[str, OrderedDict[str, _Item]] = {"query": OrderedDict(), "document": OrderedDict()}

    # ------------------------------------------------------------------ identity
    @property
    def model_name(self) -> str:
        """The model asked for, else ``<protocol>@<url>`` (the URL without credentials or query)."""
        return self._model or f"{self.protocol_name}@{public_url(self.transport.base_url)[0]}"

    @property
    def has_sparse(self) -> bool:
        """Whether this encoder gives sparse vectors."""
        return self.sparse_mode != "none"

    @property
    def dimension(self) -> int:
        """The vector size: the one asked for, else learned from the service (one probe call if needed)."""
        if self._dimension is None:
            self.encode([_PROBE], return_sparse=False)
        assert self._dimension is not None
        return self._dimension

    def encoder_record(self) -> dict[str, Any]:
        """What a collection records about this encoder (JSON values; never the key).

        ``remote`` holds what :meth:`from_record` needs to connect again: the options, the
        name of the API key's environment variable (never the key), and the URL unless it
        carries credentials (``user:password@``) or a query string, which may hold a key:
        then ``url`` is ``None`` and reopening needs the encoder (or ``url``) passed again.
        A local ``tokenizer`` or ``sparse_head`` is recorded by path when it was given as one.
        """
        identity = f"remote:{self.protocol_name}:{self.model_name}"
        url, safe = public_url(self.transport.base_url)
        remote = {
            **self._options,
            "url": url if safe else None,
            "api_key_env": self._api_key_env,
            "settings": self.settings.as_dict(),
            "tokenizer": self._tokenizer_ref,
            "sparse_head": self._head_ref,
        }
        return {
            "remote": remote,
            "model": identity,
            "identity": identity,
            "hf_id": self._model,
            "dimension": self.dimension,
            "pooling": None,
            "max_length": None,
            "query_instruction": self.query_instruction,
            "query_prefix": self.query_prefix,
            "document_prefix": self.document_prefix,
            "sparse": self.sparse_mode,
            "precision": "remote",
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any], **overrides: Any) -> RemoteEncoder:
        """The encoder a collection's record describes (:meth:`encoder_record`), with ``overrides`` applied.

        The API key comes from ``overrides["api_key"]`` or the recorded environment variable.

        Raises:
            ConfigError: the record has no ``remote`` section, or no URL (it held credentials)
                and none is given; the message names what to pass.
        """
        remote = record.get("remote")
        if not isinstance(remote, Mapping):
            raise ConfigError(
                f"the collection records {record.get('model')!r} without its connection settings (written by an "
                "older gte-rag); pass encoder=RemoteEncoder(url=..., protocol=..., model_name=...)"
            )
        options = {k: v for k, v in remote.items() if v is not None or k in ("sparse",)}
        options = {**options, **overrides}
        url = options.pop("url", None)
        if not url:
            raise ConfigError(
                f"the collection was written through {record.get('model')!r}, whose URL held credentials and was not "
                "recorded; pass encoder=RemoteEncoder(url=..., protocol="
                f"{remote.get('protocol')!r}, model_name={remote.get('model_name')!r}), or encoder_options={{'url': ...}}"
            )
        known = set(inspect.signature(cls.__init__).parameters) - {"self", "url"}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigError(f"unknown RemoteEncoder option(s) {unknown}; known: {sorted(known)}")
        return cls(str(url), **options)

    def __repr__(self) -> str:
        return (
            f"RemoteEncoder(url={public_url(self.transport.base_url)[0]!r}, protocol={self.protocol_name!r}, "
            f"model_name={self._model!r}, dimension={self._dimension}, sparse={self.sparse_mode!r})"
        )

    # ------------------------------------------------------------------ lifecycle (close, aclose, with: TransportOwner)
    def clear_cache(self) -> None:
        """Forget the cached results."""
        with self._lock:
            for c in self._cache.values():
                c.clear()

    # ------------------------------------------------------------------ encode
    def _prepare(
        self, texts: Sequence[str | TokenizedText], role: str, return_sparse: bool, return_token_states: bool,
        on_empty: EmptyPolicy | None,
    ) -> tuple[list[str], bool, list[int], dict[int, _Item]]:
        if role not in ("query", "document"):
            raise ConfigError(f"role={role!r} is not 'query' or 'document'")
        items = check_inputs(texts, self.on_empty if on_empty is None else on_empty)
        strs = [t if isinstance(t, str) else t.span_text for t in items]
        want_sparse = return_sparse and self.has_sparse
        missing, hits = self._lookup(strs, role, want_sparse)
        return strs, want_sparse, missing, hits

    def encode(
        self,
        texts: Sequence[str | TokenizedText],
        *,
        role: Role = "document",
        show_progress: bool = False,
        return_sparse: bool = True,
        return_token_states: bool = False,
        on_empty: EmptyPolicy | None = None,
    ) -> EncodeOutput:
        """Vectors of ``texts`` from the service, rows in input order (see :meth:`GteEncoder.encode`).

        ``num_tokens`` is 0 for every text: the services do not report per-text counts.
        ``show_progress`` shows a bar over the requests. ``return_token_states=True`` (TEI, documents
        without a server-side prompt) sends each text (a :class:`TokenizedText` sends its span) to
        ``/tokenize`` and ``/embed_all`` and returns the states on the input's own tokens, as the
        local encoder does (``token_ids``, ``text_from``, and ``token_weights`` with ``sparse_head``);
        it bypasses the cache.

        Raises:
            InputTypeError, ConfigError: as the local encoder (bad input, empty text).
            RemoteServiceError: the service kept failing after the retries.
            RemoteRequestError: the service refused the request (4xx).
            RemoteResponseError: an answer with the wrong count, index or dimension, or not JSON.
        """
        if return_token_states:
            if role not in ("query", "document"):
                raise ConfigError(f"role={role!r} is not 'query' or 'document'")
            return self._token_states_output(check_inputs(texts, self.on_empty if on_empty is None else on_empty), role)
        strs, want_sparse, missing, hits = self._prepare(texts, role, return_sparse, return_token_states, on_empty)
        fresh: list[_Item] = []
        if missing:
            wire = self._wire([strs[i] for i in missing], role)
            bar = _Bar(len(wire), show_progress)
            try:
                fresh = split_on_rejection(
                    len(wire), self.batch_limit, lambda s, e: bar.done(self._send(wire[s:e], role, want_sparse))
                )
            finally:
                bar.close()
        return self._assemble(strs, role, want_sparse, missing, hits, fresh)

    async def aencode(
        self,
        texts: Sequence[str | TokenizedText],
        *,
        role: Role = "document",
        return_sparse: bool = True,
        on_empty: EmptyPolicy | None = None,
    ) -> EncodeOutput:
        """Async twin of :meth:`encode`: the batches go out concurrently (``max_concurrency`` at a time)."""
        strs, want_sparse, missing, hits = self._prepare(texts, role, return_sparse, False, on_empty)
        fresh: list[_Item] = []
        if missing:
            wire = self._wire([strs[i] for i in missing], role)

            async def send(s: int, e: int) -> list[_Item]:
                return await self._asend(wire[s:e], role, want_sparse)

            fresh = await asplit_on_rejection(len(wire), self.batch_limit, send)
        return self._assemble(strs, role, want_sparse, missing, hits, fresh)

    def encode_queries(self, texts: Sequence[str | TokenizedText]) -> EncodeOutput:
        return self.encode(texts, role="query")

    def encode_documents(self, texts: Sequence[str | TokenizedText]) -> EncodeOutput:
        return self.encode(texts, role="document")

    # ------------------------------------------------------------------ internals
    def _wire(self, texts: list[str], role: str) -> list[str]:
        prefix = self.query_prefix if role == "query" else self.document_prefix
        return [prefix + t for t in texts] if prefix else texts

    def _send(self, batch: list[str], role: str, want_sparse: bool) -> list[_Item]:
        calls = self.protocol.calls(batch, role, dense=True, sparse=want_sparse and self._service_sparse)
        parts = [(c, self.transport.post(c.path, c.payload)) for c in calls]
        head = self._head_sparse(batch, role) if want_sparse and self._head is not None else None
        return self._read(batch, want_sparse, parts, head)

    async def _asend(self, batch: list[str], role: str, want_sparse: bool) -> list[_Item]:
        calls = self.protocol.calls(batch, role, dense=True, sparse=want_sparse and self._service_sparse)
        parts = [(c, await self.transport.apost(c.path, c.payload)) for c in calls]
        head = None
        if want_sparse and self._head is not None:  # the token-state round trips run on the sync client, in a thread
            head = await asyncio.to_thread(self._head_sparse, batch, role)
        return self._read(batch, want_sparse, parts, head)

    def _read(
        self, batch: list[str], want_sparse: bool, parts: list[tuple[Any, Any]], head: list[SparseVector] | None = None
    ) -> list[_Item]:
        n = len(batch)
        dense: list[npt.NDArray[np.float32]] | None = None
        sparse: list[SparseVector] | None = None
        for call, body in parts:
            endpoint = self.transport.url(call.path)
            rows, sv = call.parse(body, n, endpoint)
            if rows is not None:
                self._check_dimension(rows, endpoint, body)
                dense = rows
            if sv is not None:
                sparse = sv
        if head is not None:
            sparse = head
        if dense is None or (want_sparse and sparse is None):  # pragma: no cover - protocol bug
            raise AssertionError("protocol returned no vectors")
        out: list[_Item] = []
        for i, row in enumerate(dense):
            if self.normalize:
                norm = float(np.linalg.norm(row))
                if norm > 0:
                    row = (row / norm).astype(np.float32)
            out.append((row, sparse[i] if sparse is not None else None))
        return out

    def _check_dimension(self, rows: list[npt.NDArray[np.float32]], endpoint: str, body: Any) -> None:
        with self._lock:
            if self._dimension is None:
                self._dimension = int(rows[0].shape[0])
                logger.info("%s gives %d-dimensional vectors", endpoint, self._dimension)
            expected = self._dimension
        for i, row in enumerate(rows):
            if row.shape[0] != expected:
                raise bad_response(endpoint, f"vector {i} of dimension {row.shape[0]}, expected {expected}", body)

    def _lookup(self, strs: list[str], role: str, want_sparse: bool) -> tuple[list[int], dict[int, _Item]]:
        """Indices to send, and the cached results of the others (taken now, under the lock)."""
        if not self.cache_size:
            return list(range(len(strs))), {}
        cache = self._cache[role]
        missing: list[int] = []
        hits: dict[int, _Item] = {}
        with self._lock:
            for i, t in enumerate(strs):
                item = cache.get(t)
                if item is None or (want_sparse and item[1] is None):
                    missing.append(i)
                else:
                    hits[i] = item
                    cache.move_to_end(t)
        return missing, hits

    def _assemble(
        self, strs: list[str], role: str, want_sparse: bool, missing: list[int], hits: dict[int, _Item], fresh: list[_Item]
    ) -> EncodeOutput:
        if len(fresh) != len(missing):  # pragma: no cover - split_on_rejection guarantees it
            raise AssertionError("lost results")
        cache = self._cache[role]
        got: dict[int, _Item] = {**hits, **dict(zip(missing, fresh))}
        with self._lock:
            if self.cache_size:
                for i in missing:
                    t = strs[i]
                    old = cache.get(t)
                    row, sv = got[i]
                    cache[t] = (row, sv if sv is not None else (old[1] if old is not None else None))
                    cache.move_to_end(t)
                while len(cache) > self.cache_size:
                    cache.popitem(last=False)
        n = len(strs)
        dim = self._dimension if self._dimension is not None else 0
        dense = np.stack([got[i][0] for i in range(n)]).astype(np.float32, copy=False) if n else np.zeros((0, dim), np.float32)
        sparse: list[SparseVector] = []
        if want_sparse:
            sparse = [got[i][1] or SparseVector() for i in range(n)]
        return EncodeOutput(dense=dense, sparse=sparse, num_tokens=[0] * n)


class _Bar:
    """A tqdm bar over texts sent, when asked for."""

    def __init__(self, total: int, enabled: bool) -> None:
        self._bar: Any = None
        if enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc="remote embed", unit="text")

    def done(self, items: list[_Item]) -> list[_Item]:
        if self._bar is not None:
            self._bar.update(len(items))
        return items

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
