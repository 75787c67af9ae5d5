"""LongDocEncoder: documents of any length as chunk vectors and one document vector.

Each document is tokenized once. Its chunks (paragraph, then sentence edges, with a token
target; see ``_segment``) are token ranges of that tokenization, and its windows (see
``_windows``) are slices of it, each encoded once through :meth:`GteEncoder.encode` with its
token states. A chunk's vector is pooled from the states of its span in the window that gives it
the most context (late chunking); its sparse vector comes from the same pass.

Positions. The encoder feeds each window as ``head specials + document prompt + window tokens +
tail specials``; the window's own tokens start at ``EncodeOutput.text_from`` (1 for
``[CLS] ...``, plus the prompt's tokens), and document token ``t`` of window ``[s, e)`` sits at
``text_from + t - s``. The positions that are not the document's (specials, prompt) belong to
the chunk at that edge of the window when pooling dense vectors: a chunk that starts the window
also averages the leading specials and prompt, one that ends it the trailing specials. So a
document that is one chunk in one window gets exactly the vector the model gives the whole text
under mean pooling (and under last-token pooling, whose last position is the tail special).
Sparse vectors weigh the chunk's own positions only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

from .._batching import progress
from .._types import SparseVector, TokenizingEncoder
from ..embed._tokens import TokenizedText, check_strs
from ..errors import ConfigError
from ..models import Architecture, Pooling
from ._segment import MAX_FRACTION, Edge, Segment, edge_strengths, segment
from ._settings import LongDocSettings, SpanPooling, resolve_settings
from ._types import LateChunk, LongDocEncoding, LongDocMode
from ._windows import best_window, plan_windows

if TYPE_CHECKING:
    from ..embed import EncodeOutput

__all__ = ["LongDocEncoder", "LongDocSource"]

STATE_BUDGET_FLOATS = 1 << 27
"""Most token-state floats (512 MiB of float32) one encoder call returns; windows are sent in groups under it."""


class LongDocSource(TokenizingEncoder, Protocol):
    """What :class:`LongDocEncoder` reads from: a :class:`~gte_rag.embed.GteEncoder`, or a
    :class:`~gte_rag.remote.RemoteEncoder` that tokenizes (TEI ``/tokenize``, or a local tokenizer;
    late chunking also needs TEI's ``/embed_all``)."""

    def token_sparse(
        self, ids: Sequence[int], weights: npt.ArrayLike | None = None, *, role: Any = "document", text: str | None = None
    ) -> SparseVector: ...


@dataclass(frozen=True)
class _Facts:
    """The model facts window planning and pooling need, from a local spec or a service."""

    pooling: Pooling
    causal: bool
    state_width: int  # floats per token state
    batch_size: int
    max_batch_tokens: int


def _facts(encoder: LongDocSource, mode: str | None) -> _Facts:
    spec = getattr(encoder, "spec", None)
    if spec is not None:  # a local GteEncoder
        return _Facts(
            spec.pooling, spec.architecture is Architecture.QWEN2, max(1, int(spec.dim)),
            int(getattr(encoder, "batch_size", 32)), int(getattr(encoder, "max_batch_tokens", 1 << 16)),
        )
    from ..remote._token_support import TOKEN_STATES_BATCH

    states = bool(getattr(encoder, "can_token_states", False))
    late = mode in ("late", "default") and _resolved_mode(mode) == "late"
    if late and not states:
        raise ConfigError(
            f"late chunking needs token states, which {type(encoder).__name__} {encoder.model_name!r} does not give "
            "(TEI's /embed_all and /tokenize do); use mode='chunks' or a TEI server"
        )
    if late and encoder.has_sparse and getattr(encoder, "token_head", None) is None:
        raise ConfigError(
            "late chunking weighs each chunk's sparse vector from its token states with the model's token head; "
            "create the RemoteEncoder with sparse_head=<the mGTE checkpoint directory>, or with sparse=False"
        )
    pooling = getattr(encoder, "pooling") if states else Pooling.MEAN
    return _Facts(pooling, pooling is Pooling.LAST_TOKEN, 1024, TOKEN_STATES_BATCH, 1 << 30)


def _resolved_mode(mode: str) -> str:
    from ._settings import DEFAULT_LONG_DOC

    return str(DEFAULT_LONG_DOC["mode"]) if mode == "default" else mode


@dataclass
class _Doc:
    """One document on its way through :meth:`LongDocEncoder.encode`."""

    text: str
    tok: TokenizedText
    segments: list[Segment] = field(default_factory=list)
    windows: list[tuple[int, int]] = field(default_factory=list)
    assigned: list[int] = field(default_factory=list)  # window of each segment
    dense: list[npt.NDArray[np.float32]] = field(default_factory=list)
    sparse: list[SparseVector | None] = field(default_factory=list)


def _unit(v: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    v = np.asarray(v, dtype=np.float32)
    norm = float(np.linalg.norm(v))
    return (v / max(norm, 1e-12)).astype(np.float32, copy=False)


class LongDocEncoder:
    """Encodes documents of any length into chunk vectors (late chunking) and a document vector.

    Args:
        encoder: The :class:`~gte_rag.embed.GteEncoder` (its model, prompts, sparse mode and
            ``max_length``); loaded now if it is not yet. Or a
            :class:`~gte_rag.remote.RemoteEncoder` that tokenizes: late chunking then runs
            through TEI (windows tokenized by ``/tokenize``, token states from ``/embed_all``,
            pooled here over each chunk's character span by the same rules), and learned
            sparse weights come from the same states with the checkpoint's token head
            (``sparse_head=``).
        mode: ``"truncate"`` (the first window only, embedded as the model does: one chunk,
            ``document_vector`` the same), ``"chunks"`` (each chunk embedded alone),
            ``"late"`` (late chunking) or ``"default"`` (:data:`DEFAULT_LONG_DOC`).
        chunk_tokens: Tokens per chunk to aim for; chunks end at paragraph edges, then
            sentence edges, between half and 1.25 times this, and never hold more than a
            window. ``None``: ``DEFAULT_LONG_DOC["chunk_tokens"]``, clamped to the window.
        window_tokens: Tokens per window, special tokens and document prompt included;
            ``None``: the encoder's ``max_length`` (a larger value is an error).
        window_overlap: Least document tokens consecutive windows share (more where a window
            starts early to hold a chunk whole); ``None``: a quarter of a window's document
            tokens. Overlap is what gives chunks near a window's edge context on both sides.
        span_pooling: How a chunk's token states become its vector. ``"auto"`` follows the
            family: mean for mean-pooled models (GTE v1, BERT-style), the span's last token
            for last-token models (gte-Qwen2), and **mean for CLS-pooled models** (mGTE, GTE
            v1.5): their [CLS] state is one vector per window and cannot tell the chunks in it
            apart, while the mean over a chunk's span is what late chunking does (and the
            token states of a bidirectional encoder already carry the window's context).
            ``"mean"`` / ``"last"`` force one.
        context_mix: Late mode only: chunk vector = ``normalize(m * late + (1 - m) * own)``,
            ``own`` being the chunk embedded alone (a second pass over the chunks); 1.0 (the
            ``"late"`` default) is pure late chunking, 0.0 is plain chunks; ``None``: 1.0 for
            ``"late"``, ``DEFAULT_LONG_DOC["context_mix"]`` for ``"default"``. Other modes
            ignore it (their :meth:`settings` record ``None``).

    For ``"chunks"`` and ``"late"``, ``document_vector`` is the L2-normalised mean of the
    chunk vectors. Chunk sparse vectors (``None`` when the encoder has ``sparse="none"``) come
    from the same pass: the learned mGTE weights ``relu(token_head(h))`` at the chunk's positions
    in its window (special ids and weights <= 0 dropped, max over repeated ids), or the lexical
    term weights of the chunk's token ids.

    Raises:
        ConfigError: a setting out of range (the message names the value and the fix).

    Example:
        >>> enc = GteEncoder("Alibaba-NLP/gte-multilingual-base")  # doctest: +SKIP
        >>> [doc] = LongDocEncoder(enc, mode="late").encode([report_text])  # doctest: +SKIP
        >>> doc.multivector.shape, doc.chunks[0].text[:30]  # doctest: +SKIP
        ((96, 768), 'Annual report 2023. Revenue gr')
    """

    def __init__(
        self,
        encoder: LongDocSource,
        *,
        mode: LongDocMode = "default",
        chunk_tokens: int | None = None,
        window_tokens: int | None = None,
        window_overlap: int | None = None,
        span_pooling: SpanPooling = "auto",
        context_mix: float | None = None,
    ) -> None:
        self.encoder = encoder
        # document tokens per window at max_length; the rest are specials and the prompt
        budget = encoder.document_token_budget
        self._reserved = encoder.max_length - budget
        self.requested_mode: LongDocMode = mode
        self._facts = _facts(encoder, mode)
        pooling = self._facts.pooling
        auto: Literal["mean", "last"] = "last" if pooling is Pooling.LAST_TOKEN else "mean"
        self._settings: LongDocSettings = resolve_settings(
            mode=mode,
            chunk_tokens=chunk_tokens,
            window_tokens=window_tokens,
            window_overlap=window_overlap,
            span_pooling=span_pooling,
            context_mix=context_mix,
            max_length=encoder.max_length,
            reserved=self._reserved,
            auto_pooling=auto,
        )
        s = self._settings
        self.mode: Literal["truncate", "chunks", "late"] = s.mode
        self.chunk_tokens = s.chunk_tokens
        self.window_tokens = s.window_tokens
        self.window_overlap = s.window_overlap
        self.span_pooling: Literal["mean", "last"] = s.span_pooling
        self.context_mix = s.context_mix
        self.window_capacity = s.window_tokens - self._reserved
        """Document tokens one window holds (``window_tokens`` less specials and prompt)."""
        self.chunk_max_tokens = min(self.window_capacity, max(self.chunk_tokens, int(self.chunk_tokens * MAX_FRACTION)))
        """Most tokens in one chunk."""
        # a decoder's states see only what is left of them: it ranks windows by left context
        self.causal = self._facts.causal

    # ------------------------------------------------------------------ public API
    def settings(self) -> dict[str, Any]:
        """The resolved settings, JSON-ready, to record with a collection.

        Keys: ``mode`` (``"default"`` resolved), ``chunk_tokens``, ``window_tokens``,
        ``window_overlap``, ``span_pooling`` (``"auto"`` resolved), ``context_mix``.
        ``LongDocEncoder(encoder, **settings)`` rebuilds the same encoding.
        """
        return self._settings.as_dict()

    def exceeds_window(self, num_tokens: int) -> bool:
        """Whether a document of ``num_tokens`` own tokens (no specials, no prompt) needs more than one window."""
        return int(num_tokens) > self.window_capacity

    def encode(self, texts: Sequence[str | TokenizedText], *, show_progress: bool = False) -> list[LongDocEncoding]:
        """Encode documents, one :class:`LongDocEncoding` per text, in input order.

        Args:
            texts: The documents (a bare ``str`` is rejected: wrap it in a list), or their
                whole tokenization from :meth:`GteEncoder.tokenize` (not tokenized again).
                Empty or blank documents get no chunks and ``document_vector=None``.
            show_progress: Show a progress bar over the windows (over the chunks for ``"chunks"``).

        Raises:
            InputTypeError: ``texts`` is a str or holds something other than a str or a TokenizedText.
            ConfigError: the encoder's tokenizer gives no character offsets (a slow tokenizer).
        """
        if isinstance(texts, str):
            check_strs(texts)  # raises, naming the fix
        items = list(texts)
        given = {i: t for i, t in enumerate(items) if isinstance(t, TokenizedText)}
        strings = check_strs([t for t in items if not isinstance(t, TokenizedText)])
        if not items:
            return []
        fresh = iter(self.encoder.tokenize(strings))
        toks = [given[i] if i in given else next(fresh) for i in range(len(items))]
        docs = [_Doc(tok.text, tok) for tok in toks]
        if self.mode == "truncate":
            self._encode_truncated(docs, show_progress)
        else:
            for d in docs:
                if d.text.strip():
                    d.segments = segment(d.tok, target=self.chunk_tokens, hard_max=self.chunk_max_tokens)
            if self.mode == "chunks":
                self._encode_alone(docs, show_progress)
            else:
                self._encode_late(docs, show_progress)
        return [self._result(d) for d in docs]

    async def aencode(
        self, texts: Sequence[str | TokenizedText], *, show_progress: bool = False
    ) -> list[LongDocEncoding]:
        """:meth:`encode` in a worker thread, so an event loop keeps running."""
        return await asyncio.to_thread(self.encode, texts, show_progress=show_progress)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.settings().items())
        return f"LongDocEncoder({self.encoder!r}, {args})"

    # ------------------------------------------------------------------ modes
    def _encode_truncated(self, docs: list[_Doc], show_progress: bool) -> None:
        """The first window of each document, embedded (and weighed) as the encoder does."""
        todo: list[_Doc] = []
        for d in docs:
            n = min(len(d.tok), self.window_capacity)
            if not d.text.strip() or n == 0:
                continue
            raw_start, raw_end = d.tok.offsets[0][0], max(e for _, e in d.tok.offsets[:n])
            raw = d.text[raw_start:raw_end]
            text = raw.strip()
            if not text:
                continue
            start = raw_start + len(raw) - len(raw.lstrip())
            d.segments = [Segment(0, n, start, start + len(text), text)]
            d.windows = [(0, n)]
            d.assigned = [0]
            todo.append(d)
        if not todo:
            return
        out = self.encoder.encode(
            [d.tok.slice(0, d.windows[0][1]) for d in todo], role="document", show_progress=show_progress
        )
        for i, d in enumerate(todo):
            d.dense = [out.dense[i].astype(np.float32, copy=True)]
            d.sparse = [out.sparse[i] if out.sparse else None]

    def _encode_alone(self, docs: list[_Doc], show_progress: bool) -> None:
        """Plain chunking: every chunk embedded on its own (one encoder call for all)."""
        pieces = [(d, seg) for d in docs for seg in d.segments]
        if not pieces:
            return
        out = self.encoder.encode(
            [d.tok.slice(seg.token_start, seg.token_end) for d, seg in pieces],
            role="document",
            show_progress=show_progress,
        )
        for i, (d, _) in enumerate(pieces):
            d.dense.append(out.dense[i].astype(np.float32, copy=True))
            d.sparse.append(out.sparse[i] if out.sparse else None)
        for d in docs:
            d.assigned = [-1] * len(d.segments)

    def _encode_late(self, docs: list[_Doc], show_progress: bool) -> None:
        """Late chunking: windows encoded once each, chunks pooled from their best window."""
        for d in docs:
            if not d.segments:
                continue
            ranges = [(s.token_start, s.token_end) for s in d.segments]
            # windows start at word edges where they can: their text then tokenizes alone to the same tokens
            clean = [e >= Edge.WORD for e in edge_strengths(d.tok)]
            planned = plan_windows(
                len(d.tok), capacity=self.window_capacity, overlap=self.window_overlap, chunks=ranges, clean=clean
            )
            best = [best_window(r, planned, causal=self.causal) for r in ranges]
            used = sorted(set(best))  # a window no chunk is pooled from is not encoded
            renumber = {k: i for i, k in enumerate(used)}
            d.windows = [planned[k] for k in used]
            d.assigned = [renumber[k] for k in best]
            d.dense = [np.empty(0, np.float32)] * len(ranges)
            d.sparse = [None] * len(ranges)
        jobs = [(d, w) for d in docs for w in range(len(d.windows))]
        if not jobs:
            return
        # the chunks each window serves
        serves: dict[tuple[int, int], list[int]] = {}
        for di, d in enumerate(docs):
            for ci, w in enumerate(d.assigned):
                serves.setdefault((di, w), []).append(ci)
        index = {id(d): di for di, d in enumerate(docs)}
        jobs.sort(key=lambda j: -(j[0].windows[j[1]][1] - j[0].windows[j[1]][0]))
        want_sparse = self.encoder.has_sparse
        done = 0
        bar = iter(progress(range(len(jobs)), enabled=show_progress, total=len(jobs), desc="Late chunking", unit="window"))
        for group in self._groups(jobs, show_progress):
            out = self.encoder.encode(
                [d.tok.slice(*d.windows[w]) for d, w in group],
                role="document",
                return_sparse=False,
                return_token_states=True,
            )
            for row, (d, w) in enumerate(group):
                for ci in serves[(index[id(d)], w)]:
                    d.dense[ci], d.sparse[ci] = self._pool(out, row, d, w, d.segments[ci], want_sparse)
            done += len(group)
            for _ in islice(bar, len(group)):
                pass
        for _ in bar:  # closes the bar
            pass
        assert done == len(jobs)
        mix = self.context_mix if self.context_mix is not None else 1.0
        if mix < 1.0:
            self._mix_own(docs, mix, show_progress)

    def _mix_own(self, docs: list[_Doc], mix: float, show_progress: bool) -> None:
        """``normalize(mix * late + (1 - mix) * own)``, ``own`` the chunk embedded alone."""
        pieces = [(d, ci) for d in docs for ci in range(len(d.segments))]
        if not pieces:
            return
        own = self.encoder.encode(
            [d.tok.slice(d.segments[ci].token_start, d.segments[ci].token_end) for d, ci in pieces],
            role="document",
            return_sparse=False,
            show_progress=show_progress,
        ).dense
        for i, (d, ci) in enumerate(pieces):
            d.dense[ci] = _unit(mix * d.dense[ci] + (1.0 - mix) * own[i])

    # ------------------------------------------------------------------ internals
    def _groups(self, jobs: list[tuple[_Doc, int]], show_progress: bool) -> Iterator[list[tuple[_Doc, int]]]:
        """Windows in groups: one encoder call each, its token states under the memory budget.

        With a progress bar the groups are one encoder batch each, so the bar moves.
        """
        width = self.window_tokens
        facts = self._facts
        per_call = max(1, STATE_BUDGET_FLOATS // (width * facts.state_width))
        if show_progress:
            per_batch = max(1, min(facts.batch_size, facts.max_batch_tokens // width))
            per_call = min(per_call, per_batch)
        for i in range(0, len(jobs), per_call):
            yield jobs[i : i + per_call]

    def _pool(
        self, out: EncodeOutput, row: int, d: _Doc, w: int, seg: Segment, want_sparse: bool
    ) -> tuple[npt.NDArray[np.float32], SparseVector | None]:
        """A chunk's dense and sparse vectors from the token states of window ``w`` (row ``row`` of ``out``)."""
        assert out.token_states is not None and out.text_from is not None and out.token_ids is not None
        states = out.token_states[row]
        first = out.text_from[row]
        s, e = d.windows[w]
        lo = first + seg.token_start - s  # the chunk's own positions [lo, hi) in this window's sequence
        hi = first + seg.token_end - s
        if hi > len(states) or list(out.token_ids[row][lo:hi]) != list(d.tok.ids[seg.token_start : seg.token_end]):
            raise AssertionError(f"chunk tokens [{seg.token_start}, {seg.token_end}) misplaced in window [{s}, {e})")
        # specials and prompt belong to the chunk at that edge of the window (see the module docstring)
        pool_lo = 0 if seg.token_start == s else lo
        pool_hi = len(states) if seg.token_end == e else hi
        if self.span_pooling == "last":
            vec = states[pool_hi - 1]
        else:
            vec = states[pool_lo:pool_hi].mean(axis=0)
        dense = _unit(vec[: self.encoder.dimension])
        sparse: SparseVector | None = None
        if want_sparse:
            ids = out.token_ids[row][lo:hi]
            if out.token_weights is not None:
                sparse = self.encoder.token_sparse(ids, out.token_weights[row][lo:hi])
            else:
                # a word analyzer reads the chunk's own characters, as for the chunk embedded alone
                sparse = self.encoder.token_sparse(ids, text=seg.text)
        return dense, sparse

    def _result(self, d: _Doc) -> LongDocEncoding:
        chunks = [
            LateChunk(
                index=i,
                text=seg.text,
                start=seg.start,
                end=seg.end,
                token_start=seg.token_start,
                token_end=seg.token_end,
                dense=d.dense[i],
                sparse=d.sparse[i],
                window=d.assigned[i],
            )
            for i, seg in enumerate(d.segments)
        ]
        if not chunks:
            doc_vec = None
        elif self.mode == "truncate":
            doc_vec = chunks[0].dense.copy()
        else:
            doc_vec = _unit(np.mean(np.stack([c.dense for c in chunks]), axis=0))
        return LongDocEncoding(
            text=d.text, chunks=chunks, document_vector=doc_vec, windows=list(d.windows), num_tokens=len(d.tok)
        )
