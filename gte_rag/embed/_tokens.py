"""TokenizedText: a text's token ids with their character offsets, tokenized once.

:meth:`GteEncoder.tokenize <gte_rag.embed.GteEncoder.tokenize>` makes them; a chunker cuts a
document's tokenization into windows with :meth:`TokenizedText.slice`, and
:meth:`GteEncoder.encode <gte_rag.embed.GteEncoder.encode>` embeds each window without
tokenizing its text again (it adds the role's prompt and the special tokens itself).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .._runtime import warn_external
from ..errors import ConfigError, InputTypeError

__all__ = ["TokenizedText"]


@dataclass(frozen=True)
class TokenizedText:
    """Token ids of a text (no special tokens, no prompt) and where each token sits in it.

    Attributes:
        text: The text the offsets point into; for a slice, the whole text it was cut from.
        ids: Token ids, in order.
        offsets: ``(start, end)`` character span of each token in ``text``.

    Example:
        >>> tok = TokenizedText("green leaves", (101, 102), ((0, 5), (6, 12)))
        >>> tok.slice(1, 2).span_text
        'leaves'
    """

    text: str
    ids: tuple[int, ...]
    offsets: tuple[tuple[int, int], ...]

    def __post_init__(self) -> None:
        if not isinstance(self.text, str):
            raise ConfigError(f"TokenizedText.text must be a str, got {type(self.text).__name__}")
        ids = tuple(int(i) for i in self.ids)
        offsets = tuple((int(a), int(b)) for a, b in self.offsets)
        if len(ids) != len(offsets):
            raise ConfigError(
                f"TokenizedText needs one offset per token id, got {len(ids)} ids and {len(offsets)} offsets"
            )
        object.__setattr__(self, "ids", ids)
        object.__setattr__(self, "offsets", offsets)

    def __len__(self) -> int:
        return len(self.ids)

    def slice(self, start: int, end: int) -> TokenizedText:
        """Tokens ``[start, end)``: their ids and offsets, over the same ``text``.

        Raises:
            ConfigError: the range is not within ``0 <= start <= end <= len(self)``.
        """
        if not 0 <= start <= end <= len(self.ids):
            raise ConfigError(
                f"slice({start}, {end}) is outside this text's {len(self.ids)} tokens; "
                f"use 0 <= start <= end <= {len(self.ids)}"
            )
        return TokenizedText(self.text, self.ids[start:end], self.offsets[start:end])

    @property
    def span(self) -> tuple[int, int]:
        """Character range ``[start, end)`` the tokens cover in ``text``; ``(0, 0)`` when empty."""
        if not self.offsets:
            return (0, 0)
        return (self.offsets[0][0], max(end for _, end in self.offsets))

    @property
    def span_text(self) -> str:
        """``text[start:end]`` over :attr:`span`."""
        start, end = self.span
        return self.text[start:end]


def prompt_token_count(offsets: Sequence[Sequence[int]], text: str, prompt_len: int) -> int:
    """How many leading tokens of ``text`` (a prompt of ``prompt_len`` characters + a text) are the prompt's.

    A token ending inside the prompt is the prompt's. A token reaching past the prompt is
    the text's when the prompt part it covers is whitespace only (``" what"``, ``"▁what"``
    after ``"Query: "``); one that also covers prompt letters (a prompt glued to the text)
    is the prompt's, so that no prompt piece reaches the sparse vector.
    """
    n = 0
    for start, end in offsets:
        if start >= prompt_len or (end > prompt_len and not text[start:prompt_len].strip()):
            break
        n += 1
    return n


def warn_glued_prompt(what: str, prompt: str, role: str) -> None:
    """Warn when a literal prompt ends in a letter or digit: it runs into each text's first word."""
    if prompt and prompt[-1].isalnum():
        warn_external(
            f"{what}={prompt!r} is put directly in front of each {role}, so its last word runs into the first "
            f"word of the {role} (the model reads {prompt.split()[-1] + 'Plants'!r} for 'Plants'); end it with "
            f"a space, a newline or ': ', e.g. {prompt + ': '!r}"
        )


def _as_list(texts: Sequence[Any]) -> list[Any]:
    """``texts`` as a list; a bare str or a non-iterable raises :class:`InputTypeError`."""
    if isinstance(texts, str):
        raise InputTypeError("texts must be a sequence of str, got a single str; wrap it in a list: [text]")
    try:
        return list(texts)
    except TypeError as exc:
        raise InputTypeError(f"texts must be a sequence of str, got {type(texts).__name__}") from exc


def check_strs(texts: Sequence[str]) -> list[str]:
    """``texts`` as a list, every item a str (raises :class:`InputTypeError` naming the index)."""
    items = _as_list(texts)
    for i, t in enumerate(items):
        if not isinstance(t, str):
            raise InputTypeError(f"texts[{i}] is a {type(t).__name__}, not a str: {t!r:.80}")
    return items


def check_inputs(texts: Sequence[str | TokenizedText], on_empty: str) -> list[str | TokenizedText]:
    """``texts`` as a list of str / :class:`TokenizedText`, empty ones refused when ``on_empty="raise"``.

    Raises:
        InputTypeError: a bare str, or an item of another type (the message names its index).
        ConfigError: ``on_empty`` is not a policy, or an empty text while it is ``"raise"``.
    """
    if on_empty not in ("raise", "encode"):
        raise ConfigError(f"on_empty={on_empty!r} is not one of 'raise', 'encode'")
    items = _as_list(texts)
    for i, t in enumerate(items):
        if isinstance(t, TokenizedText):
            empty = not t.ids
        elif isinstance(t, str):
            empty = not t.strip()
        else:
            raise InputTypeError(f"texts[{i}] is a {type(t).__name__}, not a str or TokenizedText: {t!r:.80}")
        if empty and on_empty == "raise":
            shown = t if isinstance(t, str) else t.span_text
            raise ConfigError(
                f"texts[{i}] is empty or whitespace only ({shown!r:.20}); drop it before encoding, or pass "
                "on_empty='encode' (to GteEncoder, GteEmbedding or GteSparseEmbedding) to embed it as the "
                "model does"
            )
    return items


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common leading run of two id lists."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def find_sublist(haystack: Sequence[int], needle: Sequence[int]) -> int:
    """First index of ``needle`` in ``haystack`` (raises :class:`ConfigError` when absent)."""
    for start in range(len(haystack) - len(needle) + 1):
        if list(haystack[start : start + len(needle)]) == list(needle):
            return start
    raise ConfigError("cannot locate the special tokens the tokenizer adds around a text")
