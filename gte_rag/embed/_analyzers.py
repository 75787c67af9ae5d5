"""Analyzers: how a text becomes the terms of the lexical (BM25) sparse vector.

Two analyzers, chosen per collection and recorded with it (:meth:`Analyzer.record`):

``word`` (the default for models without the mGTE token head)
    1. Unicode NFKC normalisation and case folding.
    2. Segmentation with Unicode character classes (``regex``): a word is a run of letters,
       marks, digits and underscores; runs joined by ``. - _ / : '`` inside a word stay one
       *identifier* (``v1.5``, ``gte-qwen2``, ``cve-2024-1234``, ``snake_case``), kept whole
       and, in addition, as its parts (``v1``, ``5``...), so ``CVE-2024-1234`` matches
       exactly and ``qwen2`` still matches ``gte-Qwen2``.
    3. Scripts written without spaces (Han, Hiragana, Katakana, Thai, Lao, Khmer, Myanmar,
       with the Japanese marks of no script of their own inside those runs: the long-vowel
       mark ``ー``, the iteration marks ``々 ゝ ゞ ヽ ヾ``)
       become overlapping character bigrams (a lone character stays a unigram): word
       segmentation of those scripts needs a dictionary, bigrams need none and are the
       usual fallback of multilingual BM25.
    4. Stopwords of the language are dropped: the lists of the ``stopwords`` package (1.0.2;
       English: the classic Snowball / NLTK list of 174 function words, so content words such
       as *test*, *system* or *information* are kept; most languages' lists are as short, a
       few are longer, e.g. Finnish 747 words; languages without a list are only stemmed). The list
       is checked against the word as written (before stemming), as Snowball's own lists are
       meant to be. Pure letters of length 1 are dropped; words of letters and marks are
       stemmed with the Snowball stemmer of the language (``PyStemmer``); identifiers are
       kept unstemmed.
    Language ``"none"`` skips stopwords and stemming (any language, any script).

``tokens``
    The model's own word pieces (the behaviour before analyzers existed, and what a
    collection recorded without an analyzer was built with).

Term ids of the word analyzer are the first 4 bytes of ``blake2b(term)`` (little-endian,
a u32, as Qdrant's sparse indices are): stable across processes and machines, no
vocabulary to store. Two different terms share an id with probability 2**-32 per pair;
with a million distinct terms about a hundred pairs collide, each merging the postings of
two (usually rare) terms, which moves BM25 scores far less than stemming does: negligible,
and not corrected.

IDF stays inside Qdrant (the collection's sparse vector uses the IDF modifier); this module
only produces terms and the BM25 parameters (``k1``, ``b``, ``avgdl``) the document side uses.
"""

from __future__ import annotations

import hashlib
import threading
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal, get_args

from ..errors import ConfigError, MissingDependencyError

if TYPE_CHECKING:
    from ..models import ModelSpec

__all__ = [
    "ANALYZER_VERSION",
    "Analyzer",
    "AnalyzerKind",
    "DEFAULT_B",
    "DEFAULT_K1",
    "DEFAULT_TOKEN_AVGDL",
    "DEFAULT_WORD_AVGDL",
    "WordAnalyzer",
    "default_analyzer",
    "legacy_token_analyzer",
    "term_id",
]

AnalyzerKind = Literal["word", "tokens"]

DEFAULT_K1 = 1.2
"""BM25 term-frequency saturation: the textbook value (Robertson et al.; Lucene's default)."""
DEFAULT_B = 0.75
"""BM25 length-normalisation strength: the textbook value (Lucene's default)."""
DEFAULT_TOKEN_AVGDL = 256.0
"""Assumed mean document length, in word pieces, of the ``tokens`` analyzer (its historical value)."""
DEFAULT_WORD_AVGDL = 100.0
"""Assumed mean document length, in analysed terms, of the ``word`` analyzer.

Documents in a knowledge base are chunks cut at the model's window (MiniLM: 254 word pieces,
larger models at most 512 tokens); a full chunk of English prose of that size holds
roughly 100-150 analysed terms after stopwords, and the last chunk of a document and short
documents hold fewer. The mean analysed length of the shared corpora (``word:english``,
benchmarks/README.md) is 80 (XQuAD), 107 (Cranfield) and 160 (SciFact); 100 is a round
value inside that range, fixed (not measured per collection, so that a document's weights
never change after it is stored) and recorded with the collection.
"""
ANALYZER_VERSION = 2
"""Bumped whenever the ``word`` analyzer's output for a given text changes.

Version 1 (gte-rag before this change) used the 1,333-word English list of the ``stop-words``
package, split Japanese words at ``ー``, left words with combining marks unstemmed and split
numbers at digit-group commas; version 2 uses the Snowball-style lists of ``stopwords`` 1.0.2
and fixes the rest. A ``word`` analyzer recorded with another version is refused
(:class:`Analyzer` raises :class:`~gte_rag.errors.ConfigError`): its terms cannot be
reproduced, so its collection has to be re-indexed. The ``tokens`` analyzer has not changed:
it is always the current version.
"""

# U+30FC (the long-vowel mark, Script=Common), U+3005 and U+309D/E, U+30FD/E (iteration marks)
# belong to the Japanese runs around them: "コーヒー" is one run, not "コ" + "ヒ"
_NO_SPACE_SCRIPTS = r"\p{Han}\p{Hiragana}\p{Katakana}\p{Thai}\p{Lao}\p{Khmer}\p{Myanmar}\u30fc\u3005\u309d\u309e\u30fd\u30fe"
_WORD_CHARS = rf"[[\p{{L}}\p{{M}}\p{{N}}]--[{_NO_SPACE_SCRIPTS}]]"
_JOINERS = r"[.\-_/:'\u2019]"
# a comma between digits is a digit-group separator ("1,000,000", "3,14"): part of the number
_PATTERN_SOURCE = (
    rf"(?V1)[{_NO_SPACE_SCRIPTS}]+|{_WORD_CHARS}+(?:{_JOINERS}{_WORD_CHARS}+|(?<=\p{{N}}),\p{{N}}+)*"
)
_PARTS_SOURCE = rf"(?V1){_WORD_CHARS}+"
_STEMMABLE_SOURCE = r"(?V1)[\p{L}\p{M}]+"  # letters with their combining marks (Hindi, Arabic...)

# ISO 639-1 codes of model families -> Snowball / stopwords language names
_LANGUAGE_NAMES = {
    "ar": "arabic", "ca": "catalan", "cs": "czech", "da": "danish", "de": "german", "el": "greek",
    "en": "english", "es": "spanish", "eu": "basque", "fa": "persian", "fi": "finnish", "fr": "french",
    "hi": "hindi", "hu": "hungarian", "id": "indonesian", "it": "italian", "lt": "lithuanian",
    "nl": "dutch", "no": "norwegian", "pl": "polish", "pt": "portuguese", "ro": "romanian",
    "ru": "russian", "sv": "swedish", "tr": "turkish",
}
# written without spaces: the bigram fallback covers them whatever the stemming language
_NO_SPACE_LANGUAGES = frozenset({"zh", "ja", "th", "lo", "km", "my"})


def term_id(term: str) -> int:
    """Stable u32 id of an analysed term: the first 4 bytes of its blake2b digest.

    Example:
        >>> term_id("protein") == term_id("protein"), 0 <= term_id("protein") < 2**32
        (True, True)
    """
    return int.from_bytes(hashlib.blake2b(term.encode("utf-8"), digest_size=4).digest(), "little")


@dataclass(frozen=True)
class Analyzer:
    """Which analyzer a collection's lexical sparse vectors use, and its BM25 parameters.

    Args:
        kind: ``"word"`` (Unicode words, stemming, stopwords, CJK bigrams) or ``"tokens"``
            (the model's word pieces).
        language: ``word`` only: a Snowball language (``"english"``, ``"german"``...) or
            ``"none"`` (no stemming, no stopwords).
        stopwords: ``word`` only: drop the language's stopwords.
        k1: BM25 term-frequency saturation.
        b: BM25 length normalisation.
        avgdl: Assumed mean document length in the analyzer's own units (terms or word
            pieces); ``None`` takes the kind's default.

    Example:
        >>> Analyzer.parse("word:german").record()["language"]
        'german'
    """

    kind: AnalyzerKind = "word"
    language: str = "english"
    stopwords: bool = True
    k1: float = DEFAULT_K1
    b: float = DEFAULT_B
    avgdl: float | None = None
    version: int = field(default=ANALYZER_VERSION, compare=True)

    def __post_init__(self) -> None:
        if self.kind not in get_args(AnalyzerKind):
            raise ConfigError(f"analyzer kind {self.kind!r} is not valid; choose one of {list(get_args(AnalyzerKind))}")
        if self.kind == "tokens":
            # language and stopwords mean nothing for word pieces: normalise them away
            object.__setattr__(self, "language", "none")
            object.__setattr__(self, "stopwords", False)
            object.__setattr__(self, "version", ANALYZER_VERSION)  # word pieces never changed
        elif self.language == "none":
            object.__setattr__(self, "stopwords", False)  # no language, no stopwords: "word:none" is one analyzer
        else:
            _check_language(self.language)
        if self.kind == "word" and self.version != ANALYZER_VERSION:
            raise ConfigError(
                f"word analyzer version {self.version!r} cannot be reproduced by this gte-rag (its word analyzer is "
                f"version {ANALYZER_VERSION}: other stopword lists and word rules), so queries would not match the "
                "stored terms; re-index the documents (add them again) into a new collection (collection=...) or "
                "location (`gte-rag migrate` copies vectors as they are: it does not re-analyse), or open it with "
                "the gte-rag release that wrote it"
            )
        for name in ("k1", "avgdl"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not value > 0):
                raise ConfigError(f"analyzer {name} must be a number > 0, got {value!r}")
        if isinstance(self.b, bool) or not 0.0 <= self.b <= 1.0:
            raise ConfigError(f"analyzer b must be a number in [0, 1], got {self.b!r}")
        default = DEFAULT_TOKEN_AVGDL if self.kind == "tokens" else DEFAULT_WORD_AVGDL
        object.__setattr__(self, "avgdl", float(default if self.avgdl is None else self.avgdl))
        object.__setattr__(self, "k1", float(self.k1))
        object.__setattr__(self, "b", float(self.b))

    @property
    def resolved_avgdl(self) -> float:
        """``avgdl`` with the kind's default filled in."""
        assert self.avgdl is not None
        return self.avgdl

    def record(self) -> dict[str, Any]:
        """The JSON settings a collection records (and :meth:`from_record` reads back)."""
        return {"kind": self.kind, "language": self.language, "stopwords": self.stopwords,
                "k1": self.k1, "b": self.b, "avgdl": self.resolved_avgdl, "version": self.version}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Analyzer:
        """The analyzer of a recorded collection.

        Raises:
            ConfigError: a key is unknown or a value invalid.
        """
        known = {"kind", "language", "stopwords", "k1", "b", "avgdl", "version"}
        unknown = sorted(set(record) - known)
        if unknown:
            raise ConfigError(f"analyzer settings {unknown} are unknown; valid keys are {sorted(known)}")
        return cls(**dict(record))

    @classmethod
    def parse(cls, value: str | Mapping[str, Any] | Analyzer) -> Analyzer:
        """``"word"``, ``"word:<language>"``, ``"tokens"``, a recorded dict or an :class:`Analyzer`.

        Raises:
            ConfigError: the value names no analyzer.
        """
        if isinstance(value, Analyzer):
            return value
        if isinstance(value, Mapping):
            return cls.from_record(value)
        if not isinstance(value, str):
            raise ConfigError(
                f"analyzer must be 'word', 'word:<language>', 'tokens' or a gte_rag Analyzer, got {value!r}"
            )
        kind, _, language = value.strip().lower().partition(":")
        if kind == "tokens" and not language:
            return cls(kind="tokens")
        if kind == "word":
            return cls(kind="word", language=language or "english")
        raise ConfigError(
            f"analyzer {value!r} is not valid; use 'word' (English), 'word:<language>' "
            f"(one of {sorted(_snowball_languages())} or 'none'), or 'tokens' (the model's word pieces)"
        )

    def describe(self) -> str:
        """Short name for tables and logs: ``word:english``, ``tokens``."""
        return "tokens" if self.kind == "tokens" else f"word:{self.language}{'' if self.stopwords or self.language == 'none' else '-nostop'}"


def legacy_token_analyzer() -> Analyzer:
    """The analyzer of a collection recorded before analyzers existed: word pieces, avgdl 256."""
    return Analyzer(kind="tokens", version=ANALYZER_VERSION)


def default_analyzer(spec: ModelSpec | None) -> Analyzer:
    """The analyzer a new lexical collection gets for a model.

    The registry lists each family's languages (:attr:`ModelSpec.languages`). One
    Snowball language (GTE v1, v1.5, MiniLM: English) gives the word analyzer in that
    language; Chinese next to it (gte-Qwen2: English + Chinese) changes nothing, since
    Chinese goes through the bigram fallback anyway. Several stemming languages, ``mul``
    (mGTE) or an unknown model give ``word:none``: Unicode words, case folding and
    bigrams, no stemming or stopwords of one language imposed on the others.
    """
    languages = tuple(getattr(spec, "languages", ()) or ())
    stemmed = {_LANGUAGE_NAMES.get(code) for code in languages if code not in _NO_SPACE_LANGUAGES}
    if len(stemmed) == 1 and None not in stemmed:
        (name,) = stemmed
        assert name is not None
        if name in _snowball_languages():
            return Analyzer(kind="word", language=name)
    return Analyzer(kind="word", language="none", stopwords=False)


@lru_cache(maxsize=1)
def _snowball_languages() -> frozenset[str]:
    return frozenset(_stemmer_module().algorithms()) - {"porter", "dutch_porter"}


def _stemmer_module() -> Any:
    try:
        import Stemmer
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise MissingDependencyError(
            "the word analyzer needs PyStemmer; install it with `pip install PyStemmer`"
        ) from exc
    return Stemmer


def _check_language(language: str) -> None:
    if language not in _snowball_languages():
        raise ConfigError(
            f"analyzer language {language!r} has no Snowball stemmer; choose one of "
            f"{sorted(_snowball_languages())} or 'none' (no stemming, no stopwords)"
        )


@lru_cache(maxsize=None)
def _stopwords(language: str) -> frozenset[str]:
    """The Snowball-style stopword list of a Snowball language (``stopwords`` 1.0.2), folded as texts are."""
    try:
        from stopwords import LanguageNotAvailable, get_stopwords
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise MissingDependencyError(
            "the word analyzer needs stopwords; install it with `pip install stopwords==1.0.2`"
        ) from exc
    try:
        words = get_stopwords(language)
    except LanguageNotAvailable:
        return frozenset()  # a stemmer without a list (e.g. tamil): stem only
    folded = (unicodedata.normalize("NFKC", w).strip().casefold() for w in words)
    return frozenset(w for w in folded if w)


class WordAnalyzer:
    """Turns text into analysed terms and their ids (see the module docstring; thread-safe).

    Args:
        analyzer: The settings (``kind`` must be ``"word"``).

    Example:
        >>> WordAnalyzer(Analyzer(language="english")).terms("Running the CVE-2024-1234 tests")
        ['run', 'cve-2024-1234', 'cve', '2024', '1234', 'test']
    """

    def __init__(self, analyzer: Analyzer) -> None:
        if analyzer.kind != "word":
            raise ConfigError(f"WordAnalyzer needs an analyzer of kind 'word', got {analyzer.kind!r}")
        import regex

        self.analyzer = analyzer
        self._pattern = regex.compile(_PATTERN_SOURCE)
        self._parts = regex.compile(_PARTS_SOURCE)
        self._no_space = regex.compile(rf"(?V1)[{_NO_SPACE_SCRIPTS}]")
        self._stemmable = regex.compile(_STEMMABLE_SOURCE)
        self._stop = _stopwords(analyzer.language) if analyzer.stopwords and analyzer.language != "none" else frozenset()
        self._stemmer: Any = None
        self._lock = threading.Lock()  # PyStemmer objects are not thread-safe
        if analyzer.language != "none":
            self._stemmer = _stemmer_module().Stemmer(analyzer.language)

    def terms(self, text: str) -> list[str]:
        """The analysed terms of ``text``, in order (repeats kept: they are the term frequencies)."""
        text = unicodedata.normalize("NFKC", text).casefold()
        out: list[str] = []
        words: list[tuple[int, str]] = []  # (position in out, word to stem)
        for match in self._pattern.finditer(text):
            token = match.group()
            if self._no_space.match(token):
                if len(token) == 1:
                    out.append(token)
                else:
                    out.extend(token[i : i + 2] for i in range(len(token) - 1))
                continue
            parts = self._parts.findall(token)
            if len(parts) > 1:
                out.append(token)  # the identifier whole, unstemmed
                if token.replace("\u2019", "'").endswith("'s") and len(parts) == 2:
                    parts = parts[:1]  # a possessive: "protein's" -> "protein"
            for part in parts:
                if (len(part) == 1 and not part.isdigit()) or part in self._stop:
                    continue
                if self._stemmer is not None and self._stemmable.fullmatch(part):
                    words.append((len(out), part))
                out.append(part)
        if words and self._stemmer is not None:
            with self._lock:
                stems = self._stemmer.stemWords([w for _, w in words])
            for (pos, _), stem in zip(words, stems):
                out[pos] = stem
        return out

    def term_ids(self, text: str) -> list[int]:
        """:func:`term_id` of every term of :meth:`terms`, in order."""
        return [_cached_term_id(t) for t in self.terms(text)]

    def __repr__(self) -> str:
        return f"WordAnalyzer({self.analyzer.describe()})"


@lru_cache(maxsize=1 << 18)
def _cached_term_id(term: str) -> int:
    return term_id(term)

