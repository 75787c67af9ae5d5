"""Prompts and tokens: sparse vectors weigh the text's own tokens, pre-tokenized inputs, token budgets."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gte_rag.embed import GteEncoder
from gte_rag.errors import ConfigError, InputTooLongError, InputTypeError

TEXT = "Plants create oxygen through photosynthesis."
TEXTS = [
    TEXT,
    "Rust is a systems programming language that prevents memory errors.",
    "The Eiffel Tower is in Paris, the capital of France.",
    "A short one.",
]
INSTRUCTION = "find documents about zebra giraffe"


def _ids(enc: GteEncoder, text: str) -> list[int]:
    return list(enc.tokenizer(text, add_special_tokens=False)["input_ids"])


def _prompt_only_ids(enc: GteEncoder, prompt: str, texts: list[str]) -> set[int]:
    """Ids the prompt has and none of the texts has."""
    text_ids = {i for t in texts for i in _ids(enc, t)}
    return set(_ids(enc, prompt)) - text_ids


# -- 1. sparse vectors leave the prompt out -------------------------------------------------------


def test_lexical_query_vector_leaves_the_qwen2_instruction_out(tiny_qwen2: Path) -> None:
    enc = GteEncoder(tiny_qwen2, query_instruction=INSTRUCTION, cache_size=0, dtype="float32")
    bare = GteEncoder(tiny_qwen2, query_instruction="", cache_size=0, dtype="float32")
    assert enc.sparse_mode == "lexical" and enc.query_prefix == f"Instruct: {INSTRUCTION}\nQuery: "
    prompt_only = _prompt_only_ids(enc, enc.query_prefix, TEXTS)
    assert prompt_only  # "instruct", "find", "documents", "zebra" pieces...
    out = enc.encode(TEXTS, role="query")
    assert out.sparse == bare.sparse_queries(TEXTS)
    for sv in out.sparse:
        assert not prompt_only & set(sv.indices)
    # the dense vector still sees the instruction
    np.testing.assert_allclose(out.dense, bare.embed_documents([enc.query_prefix + t for t in TEXTS]), atol=1e-6)


def test_lexical_document_vector_leaves_the_document_prompt_out(tiny_bert: Path) -> None:
    enc = GteEncoder(tiny_bert, cache_size=0, dtype="float32")
    bare = GteEncoder(tiny_bert, cache_size=0, dtype="float32")
    enc.document_prefix = "passage about zebra giraffe: "
    prompt_only = _prompt_only_ids(enc, enc.document_prefix, TEXTS)
    assert prompt_only
    out = enc.encode(TEXTS, role="document")
    assert out.sparse == bare.sparse_documents(TEXTS)  # saturation sees the text's length only
    np.testing.assert_allclose(out.dense, bare.embed_documents([enc.document_prefix + t for t in TEXTS]), atol=1e-6)


def test_learned_query_vector_leaves_the_instruction_out(tiny_embedder: Path) -> None:
    import torch
    import transformers

    reference = transformers.AutoModelForTokenClassification.from_pretrained(tiny_embedder).eval()
    instruction = INSTRUCTION + ": "
    enc = GteEncoder(tiny_embedder, query_instruction=instruction, cache_size=0, dtype="float32")
    assert enc.sparse_mode == "learned" and enc.query_prefix == instruction
    prompt_only = _prompt_only_ids(enc, instruction, TEXTS)
    assert prompt_only
    out = enc.encode(TEXTS, role="query")
    n_prompt = len(_ids(enc, instruction))
    for text, sv in zip(TEXTS, out.sparse, strict=True):
        assert not prompt_only & set(sv.indices)
        assert set(sv.indices) <= set(_ids(enc, text))
        # reference: the prompted forward pass, weights read at the text's positions only
        ids = enc.tokenizer(instruction + text)["input_ids"]
        with torch.inference_mode():
            h = reference.base_model(input_ids=torch.tensor([ids])).last_hidden_state
            w = torch.relu(reference.classifier(h)).squeeze(-1)[0].tolist()
        best: dict[int, float] = {}
        for tok, weight in list(zip(ids, w))[1 + n_prompt : -1]:
            if weight > 0:
                best[tok] = max(best.get(tok, 0.0), weight)
        got = sv.as_dict()
        assert set(got) == set(best)
        assert all(abs(got[k] - v) <= 1e-5 for k, v in best.items())


def test_a_literal_instruction_that_runs_into_the_text_warns(tiny_embedder: Path) -> None:
    with pytest.warns(UserWarning, match="runs into the first word"):
        enc = GteEncoder(tiny_embedder, query_instruction=INSTRUCTION, cache_size=0, dtype="float32")
    # glued, the text's first word is read as pieces of "giraffeplants" (which the warning is
    # about); the prompt's own words still stay out of the sparse vector
    prompt_words = _prompt_only_ids(enc, "find documents about", TEXTS)
    assert prompt_words
    for sv in enc.sparse_queries(TEXTS):
        assert not prompt_words & set(sv.indices)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        GteEncoder(tiny_embedder, query_instruction=INSTRUCTION + "\n", lazy_load=True)
        GteEncoder(tiny_embedder, query_instruction="query:", lazy_load=True)


# -- 3. TokenizedText inputs and the token budget -------------------------------------------------


def test_tokenize_gives_text_only_ids_and_offsets(tiny_embedder: Path) -> None:
    from gte_rag.embed import TokenizedText

    enc = GteEncoder(tiny_embedder, query_instruction=INSTRUCTION + ": ", dtype="float32")
    toks = enc.tokenize(TEXTS)
    assert all(isinstance(t, TokenizedText) for t in toks)
    for text, tok in zip(TEXTS, toks, strict=True):
        ref = enc.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        assert list(tok.ids) == ref["input_ids"] and [tuple(o) for o in tok.offsets] == [tuple(o) for o in ref["offset_mapping"]]
        assert tok.text == text and len(tok) == len(ref["input_ids"])
    whole = toks[1]
    part = whole.slice(2, 5)
    assert part.ids == whole.ids[2:5] and part.offsets == whole.offsets[2:5] and part.text == whole.text
    assert part.span == (whole.offsets[2][0], whole.offsets[4][1])
    assert part.span_text == whole.text[whole.offsets[2][0] : whole.offsets[4][1]]
    with pytest.raises(ConfigError, match=r"slice\(3, 99\)"):
        whole.slice(3, 99)
    with pytest.raises(InputTypeError, match="wrap it in a list"):
        enc.tokenize(TEXT)  # type: ignore[arg-type]


@pytest.mark.parametrize("fixture", ["tiny_embedder", "tiny_bert", "tiny_qwen2"])
def test_tokenized_text_encodes_like_the_string(fixture: str, request: pytest.FixtureRequest) -> None:
    path: Path = request.getfixturevalue(fixture)
    enc = GteEncoder(path, query_instruction="", cache_size=0, dtype="float32")
    toks = enc.tokenize(TEXTS)
    for role in ("document", "query"):
        from_str = enc.encode(TEXTS, role=role)  # type: ignore[arg-type]
        from_tokens = enc.encode(toks, role=role)  # type: ignore[arg-type]
        np.testing.assert_allclose(from_tokens.dense, from_str.dense, atol=1e-6, rtol=0)
        assert from_tokens.num_tokens == from_str.num_tokens
        for a, b in zip(from_tokens.sparse, from_str.sparse, strict=True):
            assert a.indices == b.indices
            np.testing.assert_allclose(a.values, b.values, atol=1e-6)
    mixed = enc.encode([toks[0], TEXTS[1]])
    np.testing.assert_allclose(mixed.dense, enc.embed_documents(TEXTS[:2]), atol=1e-6, rtol=0)


def test_tokenized_text_gets_the_role_prompt(tiny_bert: Path) -> None:
    enc = GteEncoder(tiny_bert, cache_size=0, dtype="float32")
    enc.document_prefix = "passage: "
    toks = enc.tokenize(TEXTS)
    np.testing.assert_allclose(enc.embed_documents(toks), enc.embed_documents(TEXTS), atol=1e-6, rtol=0)  # type: ignore[arg-type]
    assert enc.encode(toks).num_tokens == enc.encode(TEXTS).num_tokens


def test_sparse_of_a_slice_comes_from_its_ids(tiny_bert: Path, tiny_embedder: Path) -> None:
    # the word-piece analyzer weighs the slice's own ids (the word analyzer its span text: test_analyzers.py)
    lexical = GteEncoder(tiny_bert, cache_size=0, dtype="float32", analyzer="tokens")
    tok = lexical.tokenize([TEXTS[1]])[0]
    part = tok.slice(2, 6)
    assert lexical._lexical is not None
    assert lexical.sparse_documents([part])[0] == lexical._lexical.document(list(part.ids))  # type: ignore[list-item]
    learned = GteEncoder(tiny_embedder, cache_size=0, dtype="float32")
    part = learned.tokenize([TEXTS[1]])[0].slice(2, 6)
    assert set(learned.sparse_documents([part])[0].indices) <= set(part.ids)  # type: ignore[list-item]


def test_empty_tokenized_text_follows_on_empty(tiny_bert: Path) -> None:
    enc = GteEncoder(tiny_bert, cache_size=0, dtype="float32")
    empty = enc.tokenize([TEXT])[0].slice(2, 2)
    with pytest.raises(ConfigError, match=r"texts\[1\] is empty"):
        enc.encode([TEXT, empty])
    lenient = GteEncoder(tiny_bert, cache_size=0, dtype="float32", on_empty="encode")
    assert lenient.encode([TEXT, empty]).num_tokens[1] == 2
    with pytest.raises(InputTypeError, match=r"texts\[1\] is a int, not a str or TokenizedText"):
        enc.encode([TEXT, 3])  # type: ignore[list-item]


def _text_of(enc: GteEncoder, n_tokens: int) -> str:
    words = "plants create oxygen through photosynthesis and the sun gives light".split()
    text = " ".join(words[i % len(words)] for i in range(n_tokens))
    assert len(_ids(enc, text)) == n_tokens
    return text


@pytest.mark.parametrize("prompt", ["", "passage: "])
def test_document_token_budget(tiny_bert: Path, prompt: str) -> None:
    enc = GteEncoder(tiny_bert, max_length=32, cache_size=0, dtype="float32")
    enc.document_prefix = prompt
    n_prompt = len(_ids(enc, prompt)) if prompt else 0
    assert enc.document_token_budget == 32 - 2 - n_prompt
    budget = enc.document_token_budget
    at, over = _text_of(enc, budget), _text_of(enc, budget + 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # exactly at the budget: no truncation
        out = enc.encode([at, enc.tokenize([at])[0]])
    assert out.num_tokens == [32, 32]
    with pytest.warns(UserWarning, match="exceed max_length=32"):
        assert enc.encode([over]).num_tokens == [32]
    with pytest.warns(UserWarning, match="exceed max_length=32"):
        assert enc.encode(enc.tokenize([over])).num_tokens == [32]
    strict = GteEncoder(tiny_bert, max_length=32, truncate=False, cache_size=0, dtype="float32")
    strict.document_prefix = prompt
    with pytest.raises(InputTooLongError, match="text 0 has 33 tokens"):
        strict.encode(strict.tokenize([over]))


def test_truncation_warning_points_at_chunking(tiny_embedder: Path) -> None:
    enc = GteEncoder(tiny_embedder, max_length=16, cache_size=0)
    with pytest.warns(UserWarning) as record:
        enc.encode(["word " * 50])
    message = str(record[0].message)
    assert "long-document indexer" not in message
    assert "chunk_size" in message and "truncate=False" in message


def test_cache_is_not_used_for_tokenized_text(tiny_embedder: Path) -> None:
    enc = GteEncoder(tiny_embedder, dtype="float32")
    toks: list[Any] = enc.tokenize(TEXTS)
    first = enc.encode(toks)
    again = enc.encode(toks)
    np.testing.assert_array_equal(first.dense, again.dense)
    assert len(enc._cache["document"]) == 0
