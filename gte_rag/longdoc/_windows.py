"""Windows over a document's tokens, and the window each chunk is pooled from.

Windows hold at most ``capacity`` of the document's own tokens (the encoder adds its special
tokens and the document prompt around each). Each window after the first starts ``overlap``
tokens before the first chunk the previous window does not hold whole: consecutive windows
share at least ``overlap`` tokens, **every chunk lies wholly inside at least one window** (no
chunk straddles), and a chunk that crosses a window's end gets ``overlap`` tokens of left
context in the next one. With ``overlap`` >= the chunk length, every chunk in an overlap has at
least ``(overlap - chunk length) / 2`` tokens of context on both sides in one of the two windows.
The last window is aligned to the document's end (full context for the last chunks instead of
a short tail window). Given which tokens a window may start at (``clean``: the long-document
encoder marks tokens after whitespace), a window that would start inside a word starts at that
word instead (earlier, or for the last window later), as long as it still holds what it must:
a window's text then tokenizes to the same tokens on its own, which is what lets a service that
reads text (TEI ``/embed_all``) compute the very states of the window.

Each window is encoded once, as its own sequence; a chunk is pooled from the token states of the
single window that gives it the most context: the largest ``min(left, right)`` (ties: the larger
``left + right``, then the earlier window). A causal decoder's states see no token to their
right, so for it the window with the most left context wins.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence

from ..errors import ConfigError

__all__ = ["best_window", "plan_windows"]


def plan_windows(
    num_tokens: int,
    *,
    capacity: int,
    overlap: int,
    chunks: Sequence[tuple[int, int]],
    clean: Sequence[bool] | None = None,
) -> list[tuple[int, int]]:
    """Token ranges ``[start, end)`` of the windows over a document.

    Args:
        num_tokens: Tokens in the document.
        capacity: Most document tokens per window (>= 1).
        overlap: Least tokens shared by consecutive windows (``0 <= overlap < capacity``).
        chunks: The chunks' token ranges in order, none longer than ``capacity``.
        clean: Per token, whether a window may start there (``None``: anywhere); a window
            that would start elsewhere moves to the nearest such token that keeps the plan.

    Returns:
        No window for an empty document, one for a document of at most ``capacity`` tokens.

    Raises:
        ConfigError: bad ``capacity`` / ``overlap``, or a chunk longer than ``capacity``.
    """
    if capacity < 1 or not 0 <= overlap < capacity:
        raise ConfigError(f"windows need capacity >= 1 and 0 <= overlap < capacity, got {capacity}, {overlap}")
    for a, b in chunks:
        if b - a > capacity:
            raise ConfigError(f"chunk [{a}, {b}) has {b - a} tokens, more than a window's {capacity}")
    if num_tokens <= 0:
        return []
    if num_tokens <= capacity:
        return [(0, num_tokens)]
    starts = [a for a, _ in chunks]
    windows: list[tuple[int, int]] = []
    start = 0
    while True:
        end = min(start + capacity, num_tokens)
        windows.append((start, end))
        if end >= num_tokens:
            return windows
        # the first token not held by a whole chunk of this window: `end`, or the start of the
        # chunk crossing `end` (which, being at most `capacity` long, starts after `start`)
        k = bisect_right(starts, end) - 1
        crossing = k >= 0 and starts[k] < end < chunks[k][1]
        first_out = starts[k] if crossing else end
        nxt = max(start + 1, first_out - overlap)
        if nxt + capacity >= num_tokens:
            nxt = min(nxt, num_tokens - capacity)  # the last window ends at the document's end
            if clean is not None:  # later, up to the first token it must hold: it still ends at the end
                p = nxt
                while p < first_out and not clean[p]:
                    p += 1
                nxt = p if clean[p] else nxt
        elif clean is not None:  # earlier, while it still holds the chunk crossing the last end
            lo = max(start + 1, (chunks[k][1] if crossing else first_out) - capacity)
            p = nxt
            while p > lo and not clean[p]:
                p -= 1
            nxt = p if clean[p] else nxt
        assert start < nxt <= first_out
        start = nxt


def best_window(chunk: tuple[int, int], windows: Sequence[tuple[int, int]], *, causal: bool = False) -> int:
    """Index of the window that holds ``chunk`` whole with the most context around it.

    Args:
        chunk: The chunk's token range ``[a, b)``.
        windows: Window token ranges, sorted by start.
        causal: Rank by left context only (a causal decoder's states do not see the right).

    Raises:
        ConfigError: no window holds the chunk whole.
    """
    a, b = chunk
    best = -1
    best_key: tuple[int, int] = (-1, -1)
    for k, (s, e) in enumerate(windows):
        if s > a:
            break
        if b > e:
            continue
        left, right = a - s, e - b
        key = (left, right) if causal else (min(left, right), left + right)
        if key > best_key:
            best, best_key = k, key
    if best < 0:
        raise ConfigError(f"no window holds the chunk [{a}, {b}) whole; windows: {list(windows)[:8]}")
    return best
