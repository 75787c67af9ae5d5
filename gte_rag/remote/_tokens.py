"""Tokens and token states from a service: TEI ``/tokenize`` and ``/embed_all``, or a local tokenizer.

TEI's ``/tokenize`` answers, per input, ``[{id, text, special, start, stop}]`` where
``start``/``stop`` are **byte** offsets into the UTF-8 input (``null`` for the special tokens
the tokenizer adds); ``/embed_all`` answers, per input, one vector per token the model read,
special tokens included, in the same order. :func:`read_tokens` checks a ``/tokenize`` answer and
turns its offsets into Python string indices; :func:`read_states` checks an ``/embed_all``
answer.

Late chunking pools a chunk's vector from the states of its span in a window. The window is
sent as text (a service re-tokenizes what it gets, and TEI turns token ids back into text
too), so :func:`align_states` puts the service's states on the positions of the window's own
tokens (the document's tokenization) by character offsets: where the two tokenizations agree
(the same tokenizer on a text cut at token edges: the normal case) this is the identity, and
a document token whose characters the service split or merged differently gets the mean state
of the service tokens overlapping it.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ..embed import TokenizedText
from ._http import bad_response

__all__ = ["LocalTokenizer", "Token", "align_states", "byte_to_char", "read_states", "read_tokens"]


@dataclass(frozen=True)
class Token:
    """One token of a tokenized input: id, special flag, character span (``None`` for specials)."""

    id: int
    special: bool
    start: int | None
    stop: int | None


def byte_to_char(text: str) -> tuple[list[int], bool]:
    """Byte offset of each character start in ``text``'s UTF-8 (plus the end), and whether it is pure ASCII."""
    starts = [0]
    total = 0
    for ch in text:
        total += len(ch.encode("utf-8"))
        starts.append(total)
    return starts, total == len(text)


def _char_span(starts: list[int], start: int, stop: int) -> tuple[int, int]:
    """A byte span as a character span (a byte inside a character counts as that character)."""
    a = bisect_right(starts, start) - 1
    b = bisect_left(starts, stop)
    return max(0, a), max(a, min(b, len(starts) - 1))


def read_tokens(body: Any, texts: Sequence[str], endpoint: str) -> list[list[Token]]:
    """A checked ``/tokenize`` answer, offsets turned into character indices of each text."""
    if not isinstance(body, list) or len(body) != len(texts):
        got = len(body) if isinstance(body, list) else type(body).__name__
        raise bad_response(endpoint, f"{got} tokenizations for {len(texts)} inputs", body)
    out: list[list[Token]] = []
    for i, (row, text) in enumerate(zip(body, texts)):
        if not isinstance(row, list):
            raise bad_response(endpoint, f"tokenization {i} that is not a list of tokens", body)
        starts, ascii_only = byte_to_char(text)
        n_bytes = starts[-1]
        toks: list[Token] = []
        for entry in row:
            tid = entry.get("id") if isinstance(entry, dict) else None
            if not isinstance(tid, int) or isinstance(tid, bool) or tid < 0:
                raise bad_response(endpoint, f"tokenization {i} with a token whose 'id' is not an int >= 0", body)
            special = bool(entry.get("special", False))
            start, stop = entry.get("start"), entry.get("stop")
            if special and (start is None or stop is None):
                toks.append(Token(tid, True, None, None))
                continue
            if not (isinstance(start, int) and isinstance(stop, int) and 0 <= start <= stop <= n_bytes):
                raise bad_response(
                    endpoint, f"tokenization {i} with a token span ({start}, {stop}) outside its {n_bytes} bytes", body
                )
            a, b = (start, stop) if ascii_only else _char_span(starts, start, stop)
            toks.append(Token(tid, special, a, b))
        out.append(toks)
    return out


def read_states(body: Any, lengths: Sequence[int], endpoint: str) -> list[npt.NDArray[np.float32]]:
    """A checked ``/embed_all`` answer: per input a ``(tokens, hidden)`` float32 matrix of the expected length."""
    if not isinstance(body, list) or len(body) != len(lengths):
        got = len(body) if isinstance(body, list) else type(body).__name__
        raise bad_response(endpoint, f"{got} token-state lists for {len(lengths)} inputs", body)
    out: list[npt.NDArray[np.float32]] = []
    width: int | None = None
    for i, (rows, n) in enumerate(zip(body, lengths)):
        try:
            m = np.asarray(rows, dtype=np.float32)
        except (TypeError, ValueError):
            raise bad_response(endpoint, f"token states {i} that are not a matrix of numbers", body) from None
        if m.ndim != 2 or m.shape[0] != n or not np.isfinite(m).all():
            shape = m.shape if m.ndim == 2 else f"{m.ndim}-d"
            raise bad_response(
                endpoint,
                f"token states {i} of shape {shape} for {n} tokens (is the server's max input length below the "
                "window? pass a smaller max_length)",
                body if m.size < 64 else f"<{m.size} numbers>",
            )
        if width is not None and m.shape[1] != width:
            raise bad_response(endpoint, f"token states {i} {m.shape[1]} wide, the others {width}", "<states>")
        width = m.shape[1]
        out.append(m)
    return out


def align_states(
    window: TokenizedText, tokens: Sequence[Token], states: npt.NDArray[np.float32]
) -> tuple[npt.NDArray[np.float32], list[int], int]:
    """The service's states of one window put on the window's own tokens, by character offsets.

    Args:
        window: The window's tokens (a slice of the document's tokenization).
        tokens: The service's tokenization of ``window.span_text``, special tokens included
            (offsets relative to that text).
        states: One state per entry of ``tokens``.

    Returns:
        ``(states, ids, text_from)`` as :class:`~gte_rag.embed.EncodeOutput` has them: the
        service's leading special positions, one state per window token, its trailing special
        positions; the ids likewise; the index of the first window token.

    Raises:
        RemoteResponseError: a window token that no service token covers.
    """
    n_lead = 0
    while n_lead < len(tokens) and tokens[n_lead].special and tokens[n_lead].start is None:
        n_lead += 1
    n_tail = 0
    while n_tail < len(tokens) - n_lead and tokens[-1 - n_tail].special and tokens[-1 - n_tail].start is None:
        n_tail += 1
    body_toks = list(tokens[n_lead : len(tokens) - n_tail])
    body_states = states[n_lead : len(tokens) - n_tail]
    base = window.offsets[0][0] if window.offsets else 0
    mine = [(a - base, b - base) for a, b in window.offsets]
    same = len(body_toks) == len(mine) and all(
        t.id == i and (t.start, t.stop) == span for t, i, span in zip(body_toks, window.ids, mine)
    )
    if same:
        own = body_states
    else:
        spans = [(t.start or 0, t.stop or 0) for t in body_toks]
        own = np.empty((len(mine), states.shape[1]), dtype=np.float32)
        for j, (a, b) in enumerate(mine):
            hit = [k for k, (s, e) in enumerate(spans) if (s < b and a < e) or (s == a and (e == b or a == b))]
            if not hit:
                raise bad_response(
                    "token alignment", f"no service token covers characters [{a}, {b}) of a window", [t.__dict__ for t in body_toks[:16]]
                )
            own[j] = body_states[hit].mean(axis=0)
    lead_ids = [t.id for t in tokens[:n_lead]]
    tail_ids = [t.id for t in tokens[len(tokens) - n_tail :]]
    full = np.concatenate([states[:n_lead], own, states[len(tokens) - n_tail :]]).astype(np.float32, copy=False)
    return full, lead_ids + list(window.ids) + tail_ids, n_lead


class LocalTokenizer:
    """A transformers fast tokenizer (or the directory / hub id of one), speaking the :class:`Token` form.

    The caller's tokenizer is used under a lock, so a remote encoder can tokenize from many threads.
    """

    def __init__(self, tokenizer: Any) -> None:
        import threading

        if isinstance(tokenizer, str) or hasattr(tokenizer, "__fspath__"):
            from pathlib import Path

            from ..models import load_tokenizer

            tokenizer = load_tokenizer(Path(tokenizer))
        if not getattr(tokenizer, "is_fast", False):
            from ..errors import ConfigError

            raise ConfigError(
                f"tokenizer must be a fast (offset-giving) transformers tokenizer or its directory, got "
                f"{type(tokenizer).__name__}; load it with use_fast=True or save it with a tokenizer.json"
            )
        self._tok = tokenizer
        self._lock = threading.Lock()

    @property
    def model_max_length(self) -> int | None:
        n = getattr(self._tok, "model_max_length", None)
        return int(n) if isinstance(n, int) and 0 < n < 1_000_000 else None

    def tokens(self, texts: Sequence[str], *, specials: bool) -> list[list[Token]]:
        with self._lock:
            enc = self._tok(
                list(texts), add_special_tokens=specials, truncation=False, return_offsets_mapping=True,
                return_special_tokens_mask=True,
            )
        out: list[list[Token]] = []
        for ids, offs, mask in zip(enc["input_ids"], enc["offset_mapping"], enc["special_tokens_mask"]):
            out.append([
                Token(int(i), True, None, None) if m else Token(int(i), False, int(a), int(b))
                for i, (a, b), m in zip(ids, offs, mask)
            ])
        return out
