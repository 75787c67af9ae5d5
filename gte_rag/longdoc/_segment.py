"""Chunk boundaries of a tokenized document: paragraph edges, then sentence edges, with a token target.

A document is tokenized once (:meth:`GteEncoder.tokenize <gte_rag.embed.GteEncoder.tokenize>`);
chunks are runs of its tokens ``[token_start, token_end)``, so that the chunk a window pools
and the chunk a plain encoder embeds are the same tokens. Every gap between two tokens gets a
strength (:class:`Edge`) from the characters around it, and each chunk ends at the strongest
edge within ``[target // 2, hard_max]`` tokens of its start, nearest to the target among edges
of that strength. The end of the document counts as a paragraph edge, and no cut leaves less
than ``target // 2`` tokens after it, so there is no tiny last chunk. One huge paragraph
without sentence breaks is still cut: at clause marks, then between words, then (text with no
spaces: CJK, long identifiers) between any two tokens.

Chunk texts are stripped of surrounding whitespace, and their character offsets point into the
original text: ``text[chunk.start:chunk.end] == chunk.text``, exact for multi-byte text (the
offsets are Python string indices, as fast tokenizers return them).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from ..embed import TokenizedText
from ..errors import ConfigError

__all__ = ["Edge", "Segment", "edge_strengths", "segment"]

MIN_FRACTION = 0.5
"""A cut leaves at least ``target * MIN_FRACTION`` tokens on each side (except at the document's end)."""

MAX_FRACTION = 1.25
"""A chunk holds at most ``target * MAX_FRACTION`` tokens (and never more than one window)."""

_SENTENCE_END = frozenset(".!?…‼⁇⁈⁉؟।")
_CLAUSE_END = frozenset(",;:")
# full-width marks end a sentence or clause with no space after them (CJK text has none)
_WIDE_SENTENCE_END = frozenset("。！？｡")
_WIDE_CLAUSE_END = frozenset("，；：、")
_CLOSERS = frozenset("\"')]}»”’」』】）〕》〉")


class Edge(IntEnum):
    """How good a place the gap before a token is for a chunk boundary (higher is better)."""

    BLANK = -2  # the next token is whitespace only: a chunk must not start with it
    INSIDE = -1  # the two tokens share a character (byte pieces of one character)
    TOKEN = 0  # between tokens with no space (subwords, CJK characters, punctuation)
    WORD = 1  # whitespace
    CLAUSE = 2  # after , ; : (or their full-width forms)
    SENTENCE = 3  # after . ! ? (with a space after, or a full-width mark)
    LINE = 4  # a newline
    PARAGRAPH = 5  # a blank line (two newlines or more)


@dataclass(frozen=True)
class Segment:
    """One chunk of a document: its tokens and its stripped text with exact character offsets.

    Attributes:
        token_start: First token (in the document's tokenization, no specials, no prompt).
        token_end: One past its last token.
        start: Character offset of ``text`` in the document.
        end: ``start + len(text)``.
        text: The chunk's text, surrounding whitespace stripped (never empty).
    """

    token_start: int
    token_end: int
    start: int
    end: int
    text: str


def _ends_with(before: str, plain: frozenset[str], wide: frozenset[str], needs_space: bool) -> bool:
    """Whether ``before`` (text up to a gap) ends with one of the marks, closing quotes skipped."""
    i = len(before) - 1
    while i >= 0 and before[i] in _CLOSERS:
        i -= 1
    if i < 0:
        return False
    return before[i] in wide or (before[i] in plain and needs_space)


def edge_strengths(tok: TokenizedText) -> list[Edge]:
    """The strength of the gap before each token (index 0, the document's start, is ``PARAGRAPH``)."""
    text, offsets = tok.text, tok.offsets
    n = len(offsets)
    blank = [not text[a:b].strip() for a, b in offsets]
    strengths = [Edge.PARAGRAPH] * n
    last_end = -1  # end of the last non-blank token before i
    for i in range(n):
        if i > 0:
            start = offsets[i][0]
            if blank[i] or last_end < 0:
                strengths[i] = Edge.BLANK
            elif start < offsets[i - 1][1]:
                strengths[i] = Edge.INSIDE
            else:
                gap = text[last_end:start]
                spaced = bool(gap) and not gap.strip()
                before = text[max(0, last_end - 8) : last_end]
                newlines = gap.count("\n") + gap.count("\u2029") * 2
                if newlines >= 2:
                    strengths[i] = Edge.PARAGRAPH
                elif newlines == 1 or "\r" in gap:
                    strengths[i] = Edge.LINE
                elif _ends_with(before, _SENTENCE_END, _WIDE_SENTENCE_END, spaced):
                    strengths[i] = Edge.SENTENCE
                elif _ends_with(before, _CLAUSE_END, _WIDE_CLAUSE_END, spaced):
                    strengths[i] = Edge.CLAUSE
                elif gap:
                    strengths[i] = Edge.WORD
                else:
                    strengths[i] = Edge.TOKEN
        if not blank[i]:
            last_end = max(last_end, offsets[i][1])
    return strengths


def _cut_points(strengths: list[Edge], target: int, hard_max: int) -> list[int]:
    """Token indices where chunks end (the last one is ``len(strengths)``)."""
    n = len(strengths)
    least = max(1, int(target * MIN_FRACTION))
    ends: list[int] = []
    begin = 0
    while begin < n:
        rest = n - begin
        if rest <= target:
            ends.append(n)
            break
        goal = begin + target
        # the document's end, when it is in reach, competes as a paragraph edge
        best = n if rest <= hard_max else -1
        best_key = (int(Edge.PARAGRAPH), -abs(n - goal), n) if best == n else None
        for i in range(begin + least, min(begin + hard_max, n - least) + 1):
            key = (int(strengths[i]), -abs(i - goal), i)
            if best_key is None or key > best_key:
                best, best_key = i, key
        if best < 0:  # no room for a cut leaving `least` on both sides: cut at the hard max
            best = begin + hard_max
        ends.append(best)
        begin = best
    return ends


def _span(tok: TokenizedText, a: int, b: int) -> tuple[int, int, str] | None:
    """Stripped character span of tokens ``[a, b)``; ``None`` when they hold only whitespace."""
    lo = tok.offsets[a][0]
    hi = max(end for _, end in tok.offsets[a:b])
    raw = tok.text[lo:hi]
    stripped = raw.strip()
    if not stripped:
        return None
    start = lo + (len(raw) - len(raw.lstrip()))
    return start, start + len(stripped), stripped


def segment(tok: TokenizedText, *, target: int, hard_max: int) -> list[Segment]:
    """Cut a tokenized document into chunks of about ``target`` tokens, at most ``hard_max``.

    With no chunk overlap, the chunks' token ranges tile ``[0, len(tok))`` exactly: each ends
    where the next starts. The one exception is a run of whitespace-only tokens that would be a
    chunk of its own (a tokenizer that gives newlines tokens, at a place where no better edge
    exists): it joins the chunk before it when that still fits ``hard_max``, and is left out
    otherwise. A blank document has no chunks.

    Args:
        tok: The document's tokens with their character offsets.
        target: Tokens per chunk to aim for (>= 1).
        hard_max: Most tokens per chunk (>= ``target``); the caller keeps it within one window.

    Returns:
        The chunks in document order.

    Raises:
        ConfigError: ``target`` < 1 or ``hard_max`` < ``target``.
    """
    if target < 1 or hard_max < target:
        raise ConfigError(f"segment needs 1 <= target <= hard_max, got target={target}, hard_max={hard_max}")
    if not tok.ids or not tok.text.strip():
        return []
    ends = _cut_points(edge_strengths(tok), target, hard_max)
    out: list[Segment] = []
    begin = 0
    for end in ends:
        span = _span(tok, begin, end)
        if span is not None:
            out.append(Segment(begin, end, *span))
        elif out and end - out[-1].token_start <= hard_max:
            prev = out[-1]  # whitespace tokens join the chunk before; its text stays stripped
            out[-1] = Segment(prev.token_start, end, prev.start, prev.end, prev.text)
        begin = end
    return out
