"""Lexical analyzers: word analysis rules, term ids, settings, and the encoder's one sparse path."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from gte_rag._types import SparseVector
from gte_rag.embed import (
    DEFAULT_TOKEN_AVGDL,
    DEFAULT_WORD_AVGDL,
    Analyzer,
    GteEncoder,
    LexicalWeighter,
    WordAnalyzer,
    default_analyzer,
    legacy_token_analyzer,
    term_id,
)
from gte_rag.errors import ConfigError
from gte_rag.models import get_model_spec

ENGLISH = WordAnalyzer(Analyzer(language="english"))


# ----------------------------------------------------------------------------- word rules
def test_case_folding_stemming_and_stopwords() -> None:
    assert ENGLISH.terms("The PROTEINS were Running") == ["protein", "run"]
    # the same stem whatever the inflection: a query matches its documents' other forms
    assert ENGLISH.terms("studies") == ENGLISH.terms("studied") == ["studi"]


def test_identifiers_are_kept_whole_and_as_parts() -> None:
    assert ENGLISH.terms("CVE-2024-1234") == ["cve-2024-1234", "cve", "2024", "1234"]
    assert ENGLISH.terms("gte-Qwen2 v1.5") == ["gte-qwen2", "gte", "qwen2", "v1.5", "v1", "5"]
    terms = ENGLISH.terms("snake_case")
    assert terms[0] == "snake_case" and "snake" in terms
    # sentence punctuation is not part of a word; numbers stay whole
    assert ENGLISH.terms("pressure 3.14.") == ["pressur", "3.14", "3", "14"]


def test_single_letters_dropped_digits_kept() -> None:
    none = WordAnalyzer(Analyzer(language="none", stopwords=False))
    assert none.terms("x y 7 z") == ["7"]


def test_possessive_keeps_the_word() -> None:
    assert ENGLISH.terms("protein's") == ["protein's", "protein"]


def test_cjk_and_thai_become_character_bigrams() -> None:
    assert ENGLISH.terms("黑豹队的防守") == ["黑豹", "豹队", "队的", "的防", "防守"]
    assert ENGLISH.terms("中") == ["中"]
    assert ENGLISH.terms("ภาษาไทย")[:2] == ["ภา", "าษ"]
    # mixed text: Latin words beside Han runs
    assert ENGLISH.terms("GPU显卡") == ["gpu", "显卡"]


def test_nfkc_folds_full_width_forms() -> None:
    assert ENGLISH.terms("ＧＰＵ") == ENGLISH.terms("gpu") == ["gpu"]


def test_language_none_neither_stems_nor_drops() -> None:
    none = WordAnalyzer(Analyzer(language="none", stopwords=False))
    assert none.terms("The dogs were running") == ["the", "dogs", "were", "running"]


def test_other_languages_stem_in_their_own_language() -> None:
    german = WordAnalyzer(Analyzer(language="german"))
    assert german.terms("Die Häuser") == german.terms("Haus")


def test_term_ids_are_stable_u32_across_processes() -> None:
    ids = ENGLISH.term_ids("protein folding")
    assert ids == [term_id("protein"), term_id("fold")]
    assert all(0 <= i < 2**32 for i in ids)
    code = "from gte_rag.embed import term_id; print(term_id('protein'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(out.stdout) == term_id("protein")


# ----------------------------------------------------------------------------- settings
def test_record_round_trip_and_defaults() -> None:
    word = Analyzer()
    assert word.resolved_avgdl == DEFAULT_WORD_AVGDL
    assert Analyzer.from_record(word.record()) == word
    tokens = Analyzer(kind="tokens", language="german")
    assert tokens.language == "none" and tokens.resolved_avgdl == DEFAULT_TOKEN_AVGDL
    assert legacy_token_analyzer() == Analyzer.parse("tokens")
    assert Analyzer.parse("word:german").language == "german"
    assert Analyzer.parse(word.record()) == word


@pytest.mark.parametrize(
    ("value", "fragment"),
    [("bm25", "'bm25' is not valid"), ("word:klingon", "'klingon' has no Snowball stemmer"), (3, "got 3")],
)
def test_bad_analyzer_names_the_value_and_the_choices(value: object, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment) as err:
        Analyzer.parse(value)  # type: ignore[arg-type]
    assert "word" in str(err.value)


@pytest.mark.parametrize(("field", "value"), [("k1", 0), ("b", 1.5), ("avgdl", -1.0)])
def test_bad_bm25_parameters_are_refused(field: str, value: float) -> None:
    with pytest.raises(ConfigError, match=field):
        Analyzer(**{field: value})  # type: ignore[arg-type]


def test_unknown_record_keys_are_refused() -> None:
    with pytest.raises(ConfigError, match="unknown"):
        Analyzer.from_record({"kind": "word", "stemmer": "porter"})


@pytest.mark.parametrize(
    ("model", "expected"),
    [("minilm", "word:english"), ("gte-base", "word:english"), ("gte-base-en-v1.5", "word:english"),
     ("gte-qwen2-1.5b-instruct", "word:english"), ("mgte", "word:none")],
)
def test_default_analyzer_follows_the_registry_languages(model: str, expected: str) -> None:
    assert default_analyzer(get_model_spec(model)).describe() == expected


def test_default_analyzer_of_an_unknown_model_imposes_no_language() -> None:
    assert default_analyzer(None) == Analyzer(language="none", stopwords=False)


# ----------------------------------------------------------------------------- the encoder's path
@pytest.fixture(scope="module")
def lexical(tiny_bert: Path) -> GteEncoder:
    return GteEncoder(tiny_bert, device="cpu", dtype="float32", analyzer="word:english", cache_size=0)


def test_encoder_sparse_is_bm25_over_the_analysed_terms(lexical: GteEncoder) -> None:
    text = "The green leaves make oxygen; leaves grow."
    doc = lexical.sparse_documents([text])[0]
    a = lexical.analyzer
    assert a is not None
    expected = LexicalWeighter(None, k1=a.k1, b=a.b, avgdl=a.resolved_avgdl).document(ENGLISH.term_ids(text))
    assert doc == expected
    assert dict(zip(doc.indices, doc.values))[term_id("leav")] > dict(zip(doc.indices, doc.values))[term_id("green")]
    query = lexical.sparse_queries(["green LEAVES"])[0]
    assert set(query.indices) == {term_id("green"), term_id("leav")} and set(query.values) == {1.0}


def test_query_prompt_stays_out_of_the_sparse_query(tiny_bert: Path) -> None:
    enc = GteEncoder(tiny_bert, device="cpu", dtype="float32", query_instruction="find passages: ", cache_size=0)
    assert set(enc.sparse_queries(["oxygen"])[0].indices) == {term_id("oxygen")}


def test_tokenized_slices_are_analysed_as_their_own_text(lexical: GteEncoder) -> None:
    text = "green leaves make oxygen. the river runs fast."
    tok = lexical.tokenize([text])[0]
    half = tok.slice(0, 5)
    assert lexical.sparse_documents([half])[0] == lexical.sparse_documents([half.span_text])[0]


def test_token_sparse_decodes_a_run_of_word_pieces(lexical: GteEncoder) -> None:
    tok = lexical.tokenize(["green leaves make oxygen"])[0]
    sparse = lexical.token_sparse(tok.ids)
    assert set(sparse.indices) == {term_id(t) for t in ENGLISH.terms("green leaves make oxygen")}


def test_tokens_analyzer_keeps_the_word_piece_behaviour(tiny_bert: Path) -> None:
    enc = GteEncoder(tiny_bert, device="cpu", dtype="float32", analyzer="tokens", cache_size=0)
    tok = enc.tokenize(["green leaves make oxygen"])[0]
    doc = enc.sparse_documents(["green leaves make oxygen"])[0]
    assert set(doc.indices) == set(tok.ids)  # word pieces, as before analyzers existed


def test_default_of_a_lexical_model_is_the_registry_choice(tiny_bert: Path) -> None:
    enc = GteEncoder(tiny_bert, device="cpu", dtype="float32", lazy_load=True)
    assert enc.analyzer == default_analyzer(enc.spec)
    assert "analyzer=" in repr(enc)


def test_analyzer_with_learned_weights_is_refused(tiny_embedder: Path) -> None:
    with pytest.raises(ConfigError, match="lexical sparse vectors only"):
        GteEncoder(tiny_embedder, device="cpu", analyzer="word", lazy_load=True)
    assert GteEncoder(tiny_embedder, device="cpu", lazy_load=True).analyzer is None


def test_empty_after_analysis_gives_an_empty_vector(lexical: GteEncoder) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert lexical.sparse_queries(["the of and"])[0] == SparseVector()


# ----------------------------------------------------------------------------- review fixes
@pytest.mark.parametrize("word", ["test", "system", "information", "research", "computer", "result", "number",
                                  "value", "large", "problem", "data"])
def test_the_stopword_list_keeps_content_words(word: str) -> None:
    """The short Snowball list drops function words only: singular and plural of a noun behave alike."""
    assert ENGLISH.terms(word) != [] and ENGLISH.terms(word) == ENGLISH.terms(word + "s")


def test_the_stopword_list_is_the_snowball_one() -> None:
    from gte_rag.embed._analyzers import _stopwords

    english = _stopwords("english")
    assert 170 <= len(english) <= 180 and {"the", "and", "of", "was", "doing"} <= english
    assert ENGLISH.terms("the results of the tests were doing well") == ["result", "test", "well"]
    assert _stopwords("german") and "und" in _stopwords("german")


def test_an_older_word_analyzer_version_is_refused_clearly() -> None:
    from gte_rag.embed._analyzers import ANALYZER_VERSION

    old = {**Analyzer().record(), "version": 1}
    assert ANALYZER_VERSION == 2
    with pytest.raises(ConfigError, match="version 1 cannot be reproduced") as err:
        Analyzer.from_record(old)
    assert "re-index" in str(err.value)
    # the word pieces never changed: a tokens record of any version opens as today's
    assert Analyzer.from_record({**Analyzer(kind="tokens").record(), "version": 1}) == Analyzer.parse("tokens")


def test_word_none_is_one_analyzer_however_it_is_named() -> None:
    assert Analyzer.parse("word:none") == Analyzer(language="none", stopwords=False) == default_analyzer(None)
    assert Analyzer(language="none").record()["stopwords"] is False


def test_katakana_long_vowel_and_iteration_marks_stay_in_their_run() -> None:
    assert ENGLISH.terms("コーヒー") == ["コー", "ーヒ", "ヒー"]
    assert ENGLISH.terms("東京タワー") == ["東京", "京タ", "タワ", "ワー"]
    assert ENGLISH.terms("時々") == ["時々"] and ENGLISH.terms("いすゞ") == ["いす", "すゞ"]


def test_words_with_combining_marks_are_stemmed() -> None:
    hindi = WordAnalyzer(Analyzer(language="hindi"))
    assert hindi.terms("किताबें") == hindi.terms("किताब")
    arabic = WordAnalyzer(Analyzer(language="arabic"))
    assert arabic.terms("الْمَكْتَبَاتُ") != ["الْمَكْتَبَاتُ"]  # vowel marks: still stemmed


def test_digit_group_separators_keep_a_number_whole() -> None:
    assert ENGLISH.terms("1,000,000 people")[:1] == ["1,000,000"]
    assert ENGLISH.terms("pi is 3,14")[-3:] == ["3,14", "3", "14"]
    assert ENGLISH.terms("apples,pears 1, 2") == ["appl", "pear", "1", "2"]  # not between digits: two words
