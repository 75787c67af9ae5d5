"""What a remote encoder needs to tokenize and to give token states (the mixin of :class:`RemoteEncoder`).

- Tokenizing (token chunking in a knowledge base, long documents): TEI's ``/tokenize``, or a
  local fast tokenizer given as ``tokenizer=``. ``max_length`` comes from TEI's ``/info``
  (``max_input_length``) unless given; the special tokens around a text are learned once by
  tokenizing ``"a"``.
- Token states (late chunking): TEI's ``/embed_all`` over each window's text, with the window
  tokenized by ``/tokenize`` in the same round, the states put on the window's own tokens by
  character offsets (:func:`~gte_rag.remote._tokens.align_states`). Pooling (``cls``, ``mean``,
  ``last_token``) comes from ``/info`` unless given.
- Learned sparse weights (mGTE): the checkpoint's token head (:class:`TokenHead`), loaded here
  from ``sparse_head=``, applied to the same states: ``relu(head(h))`` per token.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .._types import SparseVector
from ..embed import EncodeOutput, TokenizedText
from ..embed._tokens import check_strs, prompt_token_count
from ..errors import ConfigError
from ..models import Pooling
from ._http import BatchLimit, HttpTransport, split_on_rejection
from ._protocols import EmbedProtocol
from ._token_head import TokenHead
from ._tokens import LocalTokenizer, Token, align_states, read_states, read_tokens

logger = logging.getLogger(__name__)

__all__ = ["TOKEN_STATES_BATCH", "TokenSupport"]

TOKEN_STATES_BATCH = 8
"""Inputs per ``/embed_all`` request: its answer holds a vector per token (kilobytes per token)."""

_TEI_POOLING = {"cls": Pooling.CLS, "mean": Pooling.MEAN, "last_token": Pooling.LAST_TOKEN}


class TokenSupport:
    """Tokenizing, token states and token-head sparse weights of a remote encoder (a mixin)."""

    transport: HttpTransport
    protocol_name: str
    protocol: EmbedProtocol
    query_prefix: str

    def _setup_tokens(self, tokenizer: Any, max_length: int | None, pooling: str | None, sparse_head: Any) -> None:
        tei = self.protocol_name == "tei"
        self._tokenizer: LocalTokenizer | str | None
        if tokenizer is None:
            self._tokenizer = "server" if tei else None
        elif tokenizer is False:
            self._tokenizer = None
        elif tokenizer == "server":
            if not tei:
                raise ConfigError(f"tokenizer='server' needs TEI's /tokenize; protocol={self.protocol_name!r} has none. "
                                  "Pass a local tokenizer (its directory or hub id) instead")
            self._tokenizer = "server"
        else:
            self._tokenizer = LocalTokenizer(tokenizer)
        if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 2):
            raise ConfigError(f"max_length must be an int >= 2 or None, got {max_length!r}")
        if pooling is not None and pooling not in _TEI_POOLING:
            raise ConfigError(f"pooling={pooling!r} is not one of {sorted(_TEI_POOLING)} (or None: from TEI's /info)")
        self._max_length_arg = max_length
        self._pooling_arg = pooling
        self._head: TokenHead | None = None
        if sparse_head is not None:
            if not tei:
                raise ConfigError(
                    f"sparse_head needs the token states of TEI's /embed_all; protocol={self.protocol_name!r} has none"
                )
            if self._tokenizer is None:
                raise ConfigError("sparse_head needs the tokens of each text (TEI's /tokenize); drop tokenizer=False")
            self._head = sparse_head if isinstance(sparse_head, TokenHead) else TokenHead.from_checkpoint(sparse_head)
        self._info: dict[str, Any] | None = None
        self._specials: tuple[list[int], list[int]] | None = None
        self._prompt_counts: dict[str, int] = {}
        self._token_lock = threading.Lock()

    # ------------------------------------------------------------------ facts
    @property
    def can_tokenize(self) -> bool:
        """Whether this encoder tokenizes (TEI ``/tokenize`` or a local tokenizer); no I/O."""
        return self._tokenizer is not None

    @property
    def can_token_states(self) -> bool:
        """Whether ``encode(..., return_token_states=True)`` works (TEI ``/embed_all``); no I/O."""
        return self.protocol_name == "tei" and self._tokenizer is not None

    @property
    def token_head(self) -> TokenHead | None:
        """The local token head that weighs the service's token states (``sparse_head``), if any."""
        return self._head

    def server_info(self) -> dict[str, Any]:
        """TEI's ``/info`` (fetched once); ``{}`` for other protocols."""
        if self.protocol_name != "tei":
            return {}
        with self._token_lock:
            if self._info is None:
                body = self.transport.get("/info")
                self._info = body if isinstance(body, dict) else {}
            return self._info

    @property
    def max_length(self) -> int:
        """Tokens per input the service reads: ``max_length`` given, else TEI's ``max_input_length``."""
        if self._max_length_arg is not None:
            return self._max_length_arg
        found = self.server_info().get("max_input_length")
        if isinstance(found, int) and found >= 2:
            return found
        if isinstance(self._tokenizer, LocalTokenizer) and self._tokenizer.model_max_length:
            return self._tokenizer.model_max_length
        raise ConfigError(
            f"the tokens per input of {self.transport.base_url} are unknown (no TEI /info max_input_length); "
            "pass max_length= to the RemoteEncoder"
        )

    @property
    def pooling(self) -> Pooling:
        """How the served model pools (``pooling`` given, else TEI's ``/info``): what late chunking follows."""
        name = self._pooling_arg
        if name is None:
            model_type = self.server_info().get("model_type")
            embedding = model_type.get("embedding") if isinstance(model_type, dict) else None
            name = embedding.get("pooling") if isinstance(embedding, dict) else None
        if name not in _TEI_POOLING:
            raise ConfigError(
                f"the pooling of {self.transport.base_url} is {name!r}, not one of {sorted(_TEI_POOLING)}; "
                "pass pooling= ('cls', 'mean' or 'last_token') to the RemoteEncoder"
            )
        return _TEI_POOLING[str(name)]

    @property
    def causal(self) -> bool:
        """Whether the served model is a decoder (last-token pooling: gte-Qwen2)."""
        return self.pooling is Pooling.LAST_TOKEN

    # ------------------------------------------------------------------ tokenizing
    def _require_tokenizer(self) -> None:
        if self._tokenizer is None:
            raise ConfigError(
                f"RemoteEncoder(protocol={self.protocol_name!r}) has no tokenizer; pass tokenizer= (a local "
                "tokenizer directory or hub id), or use a TEI server (its /tokenize)"
            )

    def _raw_tokens(self, texts: Sequence[str], *, specials: bool, prompt_name: str | None = None) -> list[list[Token]]:
        """Tokens of each text (character offsets), batched to the service's limit."""
        self._require_tokenizer()
        if isinstance(self._tokenizer, LocalTokenizer):
            return self._tokenizer.tokens(texts, specials=specials)
        items = list(texts)

        def send(s: int, e: int) -> list[list[Token]]:
            payload: dict[str, Any] = {"inputs": items[s:e], "add_special_tokens": specials}
            if prompt_name is not None:
                payload["prompt_name"] = prompt_name
            body = self.transport.post("/tokenize", payload)
            return read_tokens(body, items[s:e], self.transport.url("/tokenize"))

        return split_on_rejection(len(items), self._token_limit(), send)

    def _token_limit(self) -> BatchLimit:
        limit: BatchLimit = getattr(self, "batch_limit")
        return limit

    def tokenize(self, texts: Sequence[str]) -> list[TokenizedText]:
        """Token ids and character offsets of each text, no special tokens (as :meth:`GteEncoder.tokenize`).

        Raises:
            InputTypeError: ``texts`` is a str or holds a non-str.
            ConfigError: this encoder has no tokenizer.
        """
        items = check_strs(texts)
        if not items:
            return []
        out: list[TokenizedText] = []
        for text, toks in zip(items, self._raw_tokens(items, specials=False)):
            kept = [t for t in toks if t.start is not None and t.stop is not None]
            out.append(TokenizedText(text, tuple(t.id for t in kept), tuple((t.start or 0, t.stop or 0) for t in kept)))
        return out

    def _special_ids(self) -> tuple[list[int], list[int]]:
        """The special tokens put before and after a text (learned from tokenizing ``"a"``)."""
        with self._token_lock:
            if self._specials is not None:
                return self._specials
        toks = self._raw_tokens(["a"], specials=True)[0]
        lead = [t.id for t in toks[: next((i for i, t in enumerate(toks) if t.start is not None), len(toks))]]
        tail: list[int] = []
        for t in reversed(toks):
            if t.start is not None:
                break
            tail.insert(0, t.id)
        with self._token_lock:
            self._specials = (lead, tail)
        return lead, tail

    def _prompt_count(self, prompt_name: str) -> int:
        """Tokens a server-side prompt (TEI ``prompt_name``) puts in front of each text."""
        with self._token_lock:
            if prompt_name in self._prompt_counts:
                return self._prompt_counts[prompt_name]
        plain = [t for t in self._raw_tokens(["a"], specials=False)[0]]
        prompted = [t for t in self._raw_tokens(["a"], specials=False, prompt_name=prompt_name)[0]]
        n = max(0, len(prompted) - len(plain))
        with self._token_lock:
            self._prompt_counts[prompt_name] = n
        return n

    @property
    def document_token_budget(self) -> int:
        """Most tokens of a document's own text one input embeds whole (``max_length`` less specials and prompt).

        Raises:
            ConfigError: no tokenizer, or ``max_length`` unknown.
        """
        self._require_tokenizer()
        lead, tail = self._special_ids()
        prompt = self.protocol.options.document_prompt_name
        extra = self._prompt_count(prompt) if prompt is not None and self._tokenizer == "server" else 0
        budget = self.max_length - len(lead) - len(tail) - extra
        if budget < 1:
            raise ConfigError(f"max_length={self.max_length} leaves no room next to the special tokens and prompt")
        return budget

    # ------------------------------------------------------------------ token states
    def _embed_all(self, texts: list[str], prompt_name: str | None) -> tuple[list[list[Token]], list[npt.NDArray[np.float32]]]:
        """Tokens (``/tokenize``, specials included) and states (``/embed_all``) of each text, in order."""
        o = self.protocol.options

        def send(s: int, e: int) -> list[tuple[list[Token], npt.NDArray[np.float32]]]:
            part = texts[s:e]
            toks = self._raw_tokens(part, specials=True, prompt_name=prompt_name)
            payload: dict[str, Any] = {
                "inputs": part, "truncate": o.truncate, "truncation_direction": o.truncation_direction.capitalize(),
            }
            if prompt_name is not None:
                payload["prompt_name"] = prompt_name
            body = self.transport.post("/embed_all", payload)
            # TEI's /tokenize does not truncate, /embed_all does (right, to max_length): expect what the model read
            lengths = [min(len(t), self.max_length) if o.truncate else len(t) for t in toks]
            states = read_states(body, lengths, self.transport.url("/embed_all"))
            out = []
            for t, st in zip(toks, states):
                if len(st) < len(t):
                    n_tail = sum(1 for x in reversed(t) if x.start is None and x.special) if t and t[-1].start is None else 0
                    t = t[: len(st) - n_tail] + (t[len(t) - n_tail :] if n_tail else [])
                out.append((t, st))
            return out

        limit = BatchLimit(min(TOKEN_STATES_BATCH, self._token_limit().size))
        got = split_on_rejection(len(texts), limit, send)
        return [g[0] for g in got], [g[1] for g in got]

    def _token_states_output(self, items: Sequence[str | TokenizedText], role: str) -> EncodeOutput:
        """``encode(..., return_token_states=True)``: states on each input's own tokens (see the module docstring)."""
        if not self.can_token_states:
            raise ConfigError(
                f"token states need TEI's /embed_all and /tokenize; RemoteEncoder(protocol={self.protocol_name!r}) "
                "has none. Use long_docs='chunks' (chunks embedded alone) instead of late chunking"
            )
        if role != "document" or self.protocol.options.document_prompt_name is not None:
            raise ConfigError(
                "remote token states are for documents without a server-side prompt (role='document', "
                "document_prompt_name=None): the window's character offsets must be the text's own"
            )
        strings = [t for t in items if isinstance(t, str)]
        fresh = iter(self.tokenize(strings)) if strings else iter(())
        toks = [t if isinstance(t, TokenizedText) else next(fresh) for t in items]
        texts = [t.span_text for t in toks]
        tokens, states = self._embed_all(texts, None) if texts else ([], [])
        dim = self._dimension_for_states()
        pooling = self.pooling
        out_states: list[npt.NDArray[np.float32]] = []
        out_ids: list[list[int]] = []
        text_from: list[int] = []
        weights: list[npt.NDArray[np.float32]] | None = [] if self._head is not None else None
        dense = np.zeros((len(toks), dim), dtype=np.float32)
        for i, (window, tk, st) in enumerate(zip(toks, tokens, states)):
            full, ids, first = align_states(window, tk, st)
            out_states.append(full)
            out_ids.append(ids)
            text_from.append(first)
            if weights is not None:
                assert self._head is not None
                weights.append(self._head.weights(full))
            if pooling is Pooling.CLS:
                vec = full[0]
            elif pooling is Pooling.LAST_TOKEN:
                vec = full[-1]
            else:
                vec = full.mean(axis=0)
            vec = vec[:dim]
            dense[i] = vec / max(float(np.linalg.norm(vec)), 1e-12)
        return EncodeOutput(
            dense=dense, sparse=[], num_tokens=[len(x) for x in out_ids], token_states=out_states,
            token_ids=out_ids, token_weights=weights, text_from=text_from,
        )

    def _dimension_for_states(self) -> int:
        dim: int = getattr(self, "dimension")
        return dim

    def token_sparse(self, ids: Sequence[int], weights: npt.ArrayLike | None = None, *, role: str = "document", text: str | None = None) -> SparseVector:
        """The sparse vector of a run of tokens from their token-head weights (as :meth:`GteEncoder.token_sparse`).

        Raises:
            ConfigError: no ``sparse_head``, or ``weights`` missing or not one per id.
        """
        if self._head is None or weights is None:
            raise ConfigError(
                "a remote encoder weighs token runs only with a local token head and the run's weights: create it with "
                "sparse_head=<mGTE checkpoint directory> and pass a slice of EncodeOutput.token_weights"
            )
        w = np.asarray(weights, dtype=np.float32).reshape(-1)
        if len(w) != len(ids):
            raise ConfigError(f"token_sparse got {len(ids)} ids and {len(w)} weights; pass one weight per id")
        return self._head.sparse(ids, w)

    def _head_sparse(self, wire: list[str], role: str) -> list[SparseVector]:
        """Learned sparse vectors of texts as sent (prefix included): the head over their token states.

        The prompt's tokens (a text prefix, or TEI's ``prompt_name``) are read by the model but not weighed.
        """
        assert self._head is not None
        o = self.protocol.options
        prompt_name = o.query_prompt_name if role == "query" else o.document_prompt_name
        tokens, states = self._embed_all(wire, prompt_name)
        skip_named = self._prompt_count(prompt_name) if prompt_name is not None else 0
        prefix = self.query_prefix if role == "query" else ""
        out: list[SparseVector] = []
        for text, tk, st in zip(wire, tokens, states):
            own = [k for k, t in enumerate(tk) if not t.special and t.start is not None]
            if skip_named:
                own = own[skip_named:]
            elif prefix:
                offsets = [(tk[k].start or 0, tk[k].stop or 0) for k in own]
                own = own[prompt_token_count(offsets, text, len(prefix)) :]
            w = self._head.weights(st[own]) if own else np.zeros(0, np.float32)
            out.append(self._head.sparse([tk[k].id for k in own], w))
        return out
