"""The settings of long-document encoding: the one default, and how arguments resolve against it."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from ..errors import ConfigError
from ._types import LongDocMode

__all__ = ["DEFAULT_LONG_DOC", "LongDocSettings", "SpanPooling", "resolve_settings"]

SpanPooling = Literal["auto", "mean", "last"]

MODES: tuple[str, ...] = ("truncate", "chunks", "late", "default")
SPAN_POOLINGS: tuple[str, ...] = ("auto", "mean", "last")

DEFAULT_LONG_DOC: dict[str, Any] = {
    "mode": "chunks",
    "chunk_tokens": 128,
    "window_tokens": None,
    "window_overlap": None,
    "span_pooling": "auto",
    "context_mix": None,
}
"""What ``mode="default"`` resolves to: the one place the package's long-document default lives.

- ``mode``: ``"chunks"``: each chunk embedded alone (dense + sparse), the document's point
  holding its chunk vectors (MAX_SIM); the knowledge base then searches documents with hybrid
  (dense + sparse) chunk search grouped by document;
- ``chunk_tokens``: 128 tokens per chunk (clamped to a window's own tokens), cut at paragraph,
  line and sentence edges;
- ``window_tokens``: ``None`` = the encoder's ``max_length`` (the model's own window; what
  ``"late"`` and ``"truncate"`` read at once);
- ``window_overlap``: ``None`` = a quarter of a window's own tokens;
- ``span_pooling``: ``"auto"`` (follows the model family, see :class:`LongDocEncoder`);
- ``context_mix``: ``None`` (late chunking only: 1.0 there).

Why (QMSum with the real MiniLM; ``benchmarks/bench_long_docs.py``, figures in
``benchmarks/README.md``): the gain over plain dense chunking comes from the sparse branch
searched with the dense one and grouped by document, +8.6 Recall@5 on 100 meetings. Under that
hybrid search, late chunking (256-token windows, the model's own) scored 1.2 points lower
(0.648 against 0.660) at 1.8x the ingest time (each chunk's context is encoded again in the
windows that overlap it); in an earlier run over 55 meetings the two were within 1.2 points,
one ahead on each split, and mixing the two vectors (``context_mix=0.5``) did no better. Alone,
without the sparse branch, late chunking did help (+3.3 Recall@5 over plain dense chunks), and
longer windows than the model was trained for hurt it (512-token windows for MiniLM). So the
default is the cheaper of two equals; ``long_docs="late"`` stays one argument away, and is worth
measuring with long-context models (mGTE, GTE v1.5: 8192-token windows), which the evaluation
here could not load.

The geometry keys (``chunk_tokens``, ``window_tokens``, ``window_overlap``) are also what every
other mode uses when its argument is ``None``, so that modes compared in one run cut the same
chunks.
"""


@dataclass(frozen=True)
class LongDocSettings:
    """Resolved settings (what :meth:`LongDocEncoder.settings` returns as a dict)."""

    mode: Literal["truncate", "chunks", "late"]
    chunk_tokens: int
    window_tokens: int
    window_overlap: int
    span_pooling: Literal["mean", "last"]
    context_mix: float | None

    def as_dict(self) -> dict[str, Any]:
        """The settings as a JSON-ready dict."""
        return asdict(self)


def _int_or_none(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an int or None, got {value!r}")
    return int(value)


def resolve_settings(
    *,
    mode: LongDocMode,
    chunk_tokens: int | None,
    window_tokens: int | None,
    window_overlap: int | None,
    span_pooling: SpanPooling,
    context_mix: float | None,
    max_length: int,
    reserved: int,
    auto_pooling: Literal["mean", "last"],
) -> LongDocSettings:
    """Check the arguments and fill in the defaults.

    Args:
        mode, chunk_tokens, window_tokens, window_overlap, span_pooling, context_mix: As
            :class:`LongDocEncoder` takes them.
        max_length: The encoder's ``max_length`` (tokens per sequence, specials included).
        reserved: Tokens of each sequence that are not the document's: specials and prompt.
        auto_pooling: What ``span_pooling="auto"`` means for the encoder's family.

    Raises:
        ConfigError: a value out of range or of the wrong type; the message names the fix.
    """
    if mode not in MODES:
        raise ConfigError(f"mode={mode!r} is not one of {', '.join(map(repr, MODES))}")
    if span_pooling not in SPAN_POOLINGS:
        raise ConfigError(f"span_pooling={span_pooling!r} is not one of {', '.join(map(repr, SPAN_POOLINGS))}")
    is_default = mode == "default"
    resolved_mode: Literal["truncate", "chunks", "late"]
    if is_default:
        resolved_mode = DEFAULT_LONG_DOC["mode"]
        if resolved_mode not in ("truncate", "chunks", "late"):
            raise ConfigError(f"DEFAULT_LONG_DOC['mode']={resolved_mode!r} must be 'truncate', 'chunks' or 'late'")
    else:
        resolved_mode = mode  # type: ignore[assignment]  # "default" is handled above
    if is_default and span_pooling == "auto":
        span_pooling = DEFAULT_LONG_DOC["span_pooling"]
    if is_default and context_mix is None:
        context_mix = DEFAULT_LONG_DOC["context_mix"]

    window = _int_or_none("window_tokens", window_tokens)
    if window is None:
        window = _int_or_none("DEFAULT_LONG_DOC['window_tokens']", DEFAULT_LONG_DOC["window_tokens"])
        window = max_length if window is None else min(window, max_length)
    elif window > max_length:
        raise ConfigError(
            f"window_tokens={window} exceeds the encoder's max_length={max_length}; use window_tokens <= "
            f"{max_length} (or None for max_length), or create the GteEncoder with a larger max_length"
        )
    capacity = window - reserved
    if capacity < 1:
        raise ConfigError(
            f"window_tokens={window} leaves no room for text next to the {reserved} special and prompt "
            f"tokens each window carries; use window_tokens >= {reserved + 1}"
        )

    chunk = _int_or_none("chunk_tokens", chunk_tokens)
    if chunk is None:
        default_chunk = _int_or_none("DEFAULT_LONG_DOC['chunk_tokens']", DEFAULT_LONG_DOC["chunk_tokens"])
        chunk = capacity if default_chunk is None else min(default_chunk, capacity)
    elif chunk < 1:
        raise ConfigError(f"chunk_tokens must be >= 1, got {chunk}")
    elif chunk > capacity:
        raise ConfigError(
            f"chunk_tokens={chunk} does not fit a window of {window} tokens ({capacity} of them the "
            f"document's, after {reserved} special and prompt tokens); use chunk_tokens <= {capacity}, "
            "or None for the default"
        )

    overlap = _int_or_none("window_overlap", window_overlap)
    if overlap is None:
        default_overlap = _int_or_none("DEFAULT_LONG_DOC['window_overlap']", DEFAULT_LONG_DOC["window_overlap"])
        overlap = capacity // 4 if default_overlap is None else min(default_overlap, capacity - 1)
    elif not 0 <= overlap < capacity:
        raise ConfigError(
            f"window_overlap={overlap} must be in 0..{capacity - 1} (a window holds {capacity} document "
            f"tokens); use e.g. {capacity // 4} (a quarter of the window), or None for that default"
        )

    mix: float | None = None
    if context_mix is not None:
        if isinstance(context_mix, bool) or not isinstance(context_mix, (int, float)):
            raise ConfigError(f"context_mix must be a float in [0, 1] or None, got {context_mix!r}")
        if math.isnan(context_mix) or not 0.0 <= context_mix <= 1.0:
            raise ConfigError(
                f"context_mix={context_mix} is outside [0, 1]; use 1.0 for pure late chunking, 0.0 for "
                "chunks embedded alone, or a value between to mix the two"
            )
        mix = float(context_mix)
    if resolved_mode == "late":
        mix = 1.0 if mix is None else mix
    else:
        mix = None  # only late chunking mixes; the other modes ignore it

    pooling: Literal["mean", "last"] = auto_pooling if span_pooling == "auto" else span_pooling  # type: ignore[assignment]
    return LongDocSettings(
        mode=resolved_mode,
        chunk_tokens=chunk,
        window_tokens=window,
        window_overlap=overlap,
        span_pooling=pooling,
        context_mix=mix,
    )
