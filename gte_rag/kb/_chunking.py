"""Token-window chunking with the encoder's own tokenizer.

Chunks hold at most ``chunk_size`` tokens (so each is embedded whole, never truncated),
overlap by ``chunk_overlap`` tokens, and prefer to end after a sentence or line break
found in the last quarter of the window.

Given a :class:`~gte_rag.embed.GteEncoder`, each document is tokenized once: every chunk
carries its slice of the document's tokens (``Chunk.tokens``), which the encoder embeds
without tokenizing the chunk text again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError

__all__ = ["Chunk", "TokenChunker", "whole_text"]

_BREAK_CHARS = (".", "!", "?", "\n", ";", ":")


@dataclass(frozen=True)
class Chunk:
    """A span of a document: its text, character offsets ``[start, end)`` and its tokens.

    ``tokens`` is the chunk's slice of the document's tokenization (a
    :class:`~gte_rag.embed.TokenizedText`) when the chunker was built on an encoder.
    """

    text: str
    start: int
    end: int
    tokens: Any = None


def whole_text(text: str, tokens: Any = None) -> list[Chunk]:
    """The text as one chunk, surrounding whitespace stripped; no chunk for a blank text."""
    stripped = text.strip()
    if not stripped:
        return []
    start = text.index(stripped[0])
    return [Chunk(stripped, start, start + len(stripped), tokens)]


class TokenChunker:
    """Splits texts into overlapping windows of tokens.

    Args:
        tokenizer: A :class:`~gte_rag.embed.GteEncoder` (its thread-safe ``tokenize``; the
            chunks then carry their tokens), or a transformers fast tokenizer with offsets.
        chunk_size: Most tokens per chunk, special tokens and prompts excluded.
        chunk_overlap: Tokens shared by consecutive chunks; must be < ``chunk_size // 2``.
    """

    def __init__(self, tokenizer: Any, *, chunk_size: int, chunk_overlap: int = 0) -> None:
        if chunk_size < 8:
            raise ConfigError(f"chunk_size must be >= 8 tokens, got {chunk_size}")
        if not 0 <= chunk_overlap < chunk_size // 2:
            raise ConfigError(
                f"chunk_overlap must be in 0..{chunk_size // 2 - 1} for chunk_size={chunk_size}, got {chunk_overlap}"
            )
        self.tokenizer = tokenizer
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap

    def split(self, text: str) -> list[Chunk]:
        """Chunks of one text, in order; a text that fits is one chunk (stripped)."""
        return self.split_many([text])[0]

    def split_many(self, texts: Sequence[str]) -> list[list[Chunk]]:
        """Chunks of several texts (one tokenizer call for all)."""
        if not texts:
            return []
        # an encoder (local, or remote with a tokenizer): checked on the class, so no property runs
        if callable(getattr(self.tokenizer, "tokenize", None)) and hasattr(type(self.tokenizer), "document_token_budget"):
            tokenized = self.tokenizer.tokenize(list(texts))
            return [self._split(t, list(tok.offsets), tok) for t, tok in zip(texts, tokenized)]
        enc = self.tokenizer(list(texts), add_special_tokens=False, return_offsets_mapping=True)
        return [self._split(t, offs, None) for t, offs in zip(texts, enc["offset_mapping"])]

    def split_tokenized(self, texts: Sequence[str], tokenized: Sequence[Any]) -> list[list[Chunk]]:
        """Chunks of texts already tokenized by the encoder (``GteEncoder.tokenize``), one list per text."""
        if len(texts) != len(tokenized):
            raise ConfigError(f"got {len(texts)} texts but {len(tokenized)} tokenizations")
        return [self._split(t, list(tok.offsets), tok) for t, tok in zip(texts, tokenized)]

    def _split(self, text: str, offsets: Sequence[tuple[int, int]], tokens: Any) -> list[Chunk]:
        n = len(offsets)
        if n <= self.chunk_size:
            return whole_text(text, tokens)
        chunks: list[Chunk] = []
        begin = 0
        while begin < n:
            end = min(begin + self.chunk_size, n)
            if end < n:
                end = self._soft_end(text, offsets, begin, end)
            lo, hi = offsets[begin][0], offsets[end - 1][1]
            piece = text[lo:hi].strip()
            if piece:
                lo = text.index(piece[0], lo)
                span = tokens.slice(begin, end) if tokens is not None else None
                chunks.append(Chunk(piece, lo, lo + len(piece), span))
            if end >= n:
                break
            begin = max(end - self.chunk_overlap, begin + 1)
        return chunks

    def _soft_end(self, text: str, offsets: Sequence[tuple[int, int]], begin: int, end: int) -> int:
        floor = begin + (3 * (end - begin)) // 4
        for i in range(end - 1, floor - 1, -1):
            tail = text[offsets[i][0] : offsets[i][1] + 1]
            if tail and tail[-1] in _BREAK_CHARS or tail.rstrip().endswith(_BREAK_CHARS):
                return i + 1
        return end
