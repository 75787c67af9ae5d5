"""Long documents: chunk boundaries, windows, late chunking, sparse weights from the same pass.

Every vector is checked against a computation done here from the encoder's own outputs
(``encode([window], return_token_states=True)``), never against the code under test.
Encoders run with ``max_length=32`` so that windows hold 30 document tokens and a few
sentences make a multi-window document.
"""

from __future__ import annotations

import asyncio
import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gte_rag.embed import GteEncoder, TokenizedText
from gte_rag.errors import ConfigError, InputTypeError
from gte_rag.longdoc import (
    DEFAULT_LONG_DOC,
    Edge,
    LongDocEncoder,
    best_window,
    plan_windows,
    segment,
)
from gte_rag.longdoc import _encoder as longdoc_encoder
from gte_rag.longdoc._segment import edge_strengths

MAX_LENGTH = 32
WORDS = ("plants create oxygen through photosynthesis green leaves turn light into chemical energy "
         "water boils at sea level the river flows from mountains down to sea").split()
PROMPT = "the document: "


# ---------------------------------------------------------------------------- helpers
def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v)).astype(np.float32)


def _long_text(sentences: int, *, per_paragraph: int = 3, words: int = 7) -> str:
    """Sentences of single-token words, ``per_paragraph`` to a paragraph (blank lines between)."""
    paragraphs, current = [], []
    for i in range(sentences):
        s = " ".join(WORDS[(i * 5 + j) % len(WORDS)] for j in range(words))
        current.append(s.capitalize() + ".")
        if len(current) == per_paragraph:
            paragraphs.append(" ".join(current))
            current = []
    if current:
        paragraphs.append(" ".join(current))
    return "\n\n".join(paragraphs)


def _text_of_tokens(enc: GteEncoder, n: int) -> str:
    """A text of exactly ``n`` tokens (no specials), cut at a token end of a longer one."""
    long = _long_text(n)  # n sentences hold far more than n tokens
    tok = enc.tokenize([long])[0]
    text = long[: tok.offsets[n - 1][1]]
    assert len(enc.tokenize([text])[0]) == n
    return text


def _window_states(enc: GteEncoder, tok: TokenizedText, window: tuple[int, int]) -> tuple[np.ndarray, list[int], int]:
    """States and ids of one window as the encoder computes it alone, and where its own tokens start.

    The start is counted here from the tokenizer: the lead specials ([CLS]) and the prompt's ids.
    """
    s, e = window
    out = enc.encode([tok.slice(s, e)], return_sparse=False, return_token_states=True)
    assert out.token_states is not None and out.token_ids is not None
    tk = enc.tokenizer
    with_specials = tk("plants", add_special_tokens=True)["input_ids"]
    lead = with_specials.index(tk("plants", add_special_tokens=False)["input_ids"][0])
    prompt = len(tk(enc.document_prefix, add_special_tokens=False)["input_ids"]) if enc.document_prefix else 0
    first = lead + prompt
    ids = out.token_ids[0]
    assert ids[first : first + (e - s)] == list(tok.ids[s:e])  # the own tokens sit where we say
    return out.token_states[0], ids, first


def _manual_late(enc: GteEncoder, tok: TokenizedText, window: tuple[int, int], a: int, b: int, pooling: str) -> np.ndarray:
    """A chunk's late vector from the window's states: the span, shifted by specials and prompt.

    Specials and prompt positions count with the chunk at that edge of the window.
    """
    states, _, first = _window_states(enc, tok, window)
    s, e = window
    lo = 0 if a == s else first + a - s
    hi = len(states) if b == e else first + b - s
    v = states[hi - 1] if pooling == "last" else states[lo:hi].mean(axis=0)
    return _unit(v[: enc.dimension])


def _check_spans(text: str, chunks: list[Any]) -> None:
    prev_end = 0
    for c in chunks:
        assert c.text and c.text == c.text.strip()
        assert text[c.start : c.end] == c.text
        assert c.start >= prev_end  # in order, no overlap
        prev_end = c.end


def _check_tiling(doc: Any) -> None:
    """The chunks' token ranges tile [0, num_tokens) and each lies in the window it was pooled from."""
    assert doc.chunks[0].token_start == 0
    assert doc.chunks[-1].token_end == doc.num_tokens
    for prev, nxt in zip(doc.chunks, doc.chunks[1:]):
        assert prev.token_end == nxt.token_start
    for c in doc.chunks:
        if c.window >= 0:
            s, e = doc.windows[c.window]
            assert s <= c.token_start < c.token_end <= e


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def gte(tiny_embedder: Path) -> GteEncoder:
    """CLS pooling, learned sparse (token head)."""
    return GteEncoder(tiny_embedder, max_length=MAX_LENGTH, cache_size=0, dtype="float32")


@pytest.fixture(scope="module")
def bert(tiny_bert: Path) -> GteEncoder:
    """Mean pooling, lexical sparse."""
    return GteEncoder(tiny_bert, max_length=MAX_LENGTH, cache_size=0, dtype="float32")


@pytest.fixture(scope="module")
def bert_prompted(tiny_bert: Path) -> GteEncoder:
    enc = GteEncoder(tiny_bert, max_length=MAX_LENGTH, cache_size=0, dtype="float32")
    enc.document_prefix = PROMPT
    return enc


@pytest.fixture(scope="module")
def qwen(tiny_qwen2: Path) -> GteEncoder:
    """Causal decoder, last-token pooling."""
    return GteEncoder(tiny_qwen2, max_length=MAX_LENGTH, cache_size=0, dtype="float32")


# ---------------------------------------------------------------------------- window capacity
@pytest.mark.parametrize("which", ["bert", "gte", "bert_prompted"])
def test_exact_capacity_is_one_window_and_one_token_over_is_two(which: str, request: pytest.FixtureRequest) -> None:
    enc: GteEncoder = request.getfixturevalue(which)
    ld = LongDocEncoder(enc, mode="late", chunk_tokens=8)
    prompt = len(enc.tokenizer(PROMPT, add_special_tokens=False)["input_ids"]) if enc.document_prefix else 0
    cap = MAX_LENGTH - 2 - prompt  # [CLS] ... [SEP] and the prompt
    assert ld.window_capacity == cap == enc.document_token_budget
    assert not ld.exceeds_window(cap) and ld.exceeds_window(cap + 1)

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a truncated window would warn
        [exact] = ld.encode([_text_of_tokens(enc, cap)])
        [over] = ld.encode([_text_of_tokens(enc, cap + 1)])
    assert exact.num_tokens == cap and exact.windows == [(0, cap)]
    assert {c.window for c in exact.chunks} == {0}
    _check_tiling(exact)
    assert over.num_tokens == cap + 1 and len(over.windows) == 2
    assert over.windows[-1][1] == cap + 1 and all(e - s <= cap for s, e in over.windows)
    _check_tiling(over)
    # a window of cap own tokens is exactly max_length long once the encoder wraps it
    tok = enc.tokenize([_text_of_tokens(enc, cap)])[0]
    assert enc.encode([tok], return_sparse=False).num_tokens == [MAX_LENGTH]


def test_plan_windows_at_the_edges() -> None:
    assert plan_windows(0, capacity=10, overlap=2, chunks=[]) == []
    assert plan_windows(10, capacity=10, overlap=2, chunks=[(0, 10)]) == [(0, 10)]
    # one over: the second window is aligned to the end, holding the chunk that crossed
    assert plan_windows(11, capacity=10, overlap=2, chunks=[(0, 6), (6, 11)]) == [(0, 10), (1, 11)]


def test_a_chunk_crossing_a_window_end_lies_whole_in_the_next_window() -> None:
    chunks = [(0, 4), (4, 8), (8, 12), (12, 16), (16, 20)]
    windows = plan_windows(20, capacity=10, overlap=2, chunks=chunks)
    # (8, 12) crosses 10: the next window starts `overlap` before it; the last ends at 20
    assert windows == [(0, 10), (6, 16), (10, 20)]
    assert [best_window(c, windows) for c in chunks] == [0, 0, 1, 2, 2]
    # a causal model ranks by left context: (12, 16) has 6 tokens before it in window 1, 2 in window 2
    assert [best_window(c, windows, causal=True) for c in chunks] == [0, 0, 1, 1, 2]
    for c in chunks:
        assert any(s <= c[0] and c[1] <= e for s, e in windows)
    with pytest.raises(ConfigError, match="no window holds"):
        best_window((8, 12), [(0, 10), (10, 20)])
    with pytest.raises(ConfigError, match="more than a window"):
        plan_windows(30, capacity=10, overlap=2, chunks=[(0, 11)])


@pytest.mark.parametrize("overlap", [0, 3, 7])
def test_planned_windows_cover_the_document_and_hold_every_chunk(overlap: int) -> None:
    rng = np.random.default_rng(overlap)
    bounds = np.cumsum(rng.integers(1, 11, size=60))
    chunks = list(zip([0, *bounds[:-1].tolist()], bounds.tolist()))
    n = int(bounds[-1])
    windows = plan_windows(n, capacity=12, overlap=overlap, chunks=chunks)
    assert windows[0][0] == 0 and windows[-1][1] == n
    for (s0, e0), (s1, e1) in zip(windows, windows[1:]):
        assert s0 < s1 and e1 - s1 == 12 and e0 - s0 == 12
        assert e0 - s1 >= overlap  # consecutive windows share at least `overlap` tokens
    for c in chunks:
        assert any(s <= c[0] and c[1] <= e for s, e in windows)


# ---------------------------------------------------------------------------- empty and short documents
@pytest.mark.parametrize("mode", ["truncate", "chunks", "late", "default"])
def test_empty_and_blank_documents_have_no_chunks(gte: GteEncoder, mode: str) -> None:
    ld = LongDocEncoder(gte, mode=mode, chunk_tokens=8)  # type: ignore[arg-type]
    real = "Plants create oxygen through photosynthesis."
    docs = ld.encode(["", " \n\n\t ", real])
    for d in docs[:2]:
        assert d.chunks == [] and d.document_vector is None and d.windows == []
        assert d.multivector.shape == (0, 0)
    assert len(docs[2].chunks) == 1 and docs[2].document_vector is not None
    assert ld.encode([]) == []
    with pytest.raises(InputTypeError):
        ld.encode("a str, not a list")  # type: ignore[arg-type]


def test_a_document_shorter_than_one_chunk_is_one_stripped_chunk_in_one_window(bert: GteEncoder) -> None:
    text = "  \n Plants create oxygen through photosynthesis. \n\n"
    [doc] = LongDocEncoder(bert, mode="late").encode([text])
    [chunk] = doc.chunks
    assert chunk.text == "Plants create oxygen through photosynthesis."
    assert text[chunk.start : chunk.end] == chunk.text and chunk.start == 4
    assert (chunk.token_start, chunk.token_end) == (0, doc.num_tokens) and doc.windows == [(0, doc.num_tokens)]
    np.testing.assert_allclose(np.asarray(doc.document_vector), chunk.dense, atol=1e-6)


# ---------------------------------------------------------------------------- pooling invariants
@pytest.mark.parametrize("which", ["bert", "qwen"])
def test_one_chunk_in_one_window_is_the_models_own_vector(which: str, request: pytest.FixtureRequest) -> None:
    """Mean pooling (and last-token pooling) over a window that is one chunk = the plain embedding."""
    enc: GteEncoder = request.getfixturevalue(which)
    ld = LongDocEncoder(enc, mode="late", chunk_tokens=enc.document_token_budget)
    text = _text_of_tokens(enc, 20)
    [doc] = ld.encode([text])
    assert len(doc.chunks) == 1 and doc.windows == [(0, 20)]
    np.testing.assert_allclose(doc.chunks[0].dense, enc.encode([text]).dense[0], atol=1e-5)
    np.testing.assert_allclose(np.asarray(doc.document_vector), enc.encode([text]).dense[0], atol=1e-5)


def test_span_pooling_defaults_follow_the_family(gte: GteEncoder, bert: GteEncoder, qwen: GteEncoder) -> None:
    assert LongDocEncoder(gte).span_pooling == "mean"  # CLS-pooled: span mean (see the docstring)
    assert LongDocEncoder(bert).span_pooling == "mean"
    assert LongDocEncoder(qwen).span_pooling == "last"
    assert LongDocEncoder(gte, span_pooling="last").span_pooling == "last"
    assert LongDocEncoder(qwen, span_pooling="mean").span_pooling == "mean"
    # CLS-pooled: the chunk's span mean, not the window's [CLS] (which every chunk would share)
    text = _long_text(3)
    [doc] = LongDocEncoder(gte, mode="late", chunk_tokens=8).encode([text])
    assert len(doc.chunks) > 2 and len(doc.windows) == 1
    states, _, _ = _window_states(gte, gte.tokenize([text])[0], doc.windows[0])
    cls = _unit(states[0][: gte.dimension])
    for c in doc.chunks:
        assert not np.allclose(c.dense, cls, atol=1e-3)


@pytest.mark.parametrize(("which", "pooling"), [("bert_prompted", "mean"), ("gte", "mean"), ("gte", "last"), ("qwen", "last")])
def test_late_vectors_equal_a_manual_pooling_of_the_window_states(which: str, pooling: str, request: pytest.FixtureRequest) -> None:
    """Positions shifted by [CLS] and the document prompt; chunks at window edges included."""
    enc: GteEncoder = request.getfixturevalue(which)
    text = _long_text(6) + "\n\n" + " ".join(WORDS[i % len(WORDS)] for i in range(60))
    ld = LongDocEncoder(enc, mode="late", chunk_tokens=8, window_overlap=6, span_pooling=pooling)  # type: ignore[arg-type]
    [doc] = ld.encode([text])
    tok = enc.tokenize([text])[0]
    assert len(doc.windows) >= 3
    _check_tiling(doc)
    at_edges = 0
    for c in doc.chunks:
        window = doc.windows[c.window]
        at_edges += c.token_start == window[0] or c.token_end == window[1]
        expected = _manual_late(enc, tok, window, c.token_start, c.token_end, pooling)
        np.testing.assert_allclose(c.dense, expected, atol=1e-5, err_msg=f"chunk {c.index}")
    assert at_edges >= 1  # the first chunk starts window 0; the last ends the last window
    # the test tells a shifted span from an unshifted one: forgetting [CLS] + prompt gives other vectors
    # (a chunk inside its window whose unshifted span swaps in another token: an unshifted span
    # that trades one "." for another looks alike under RoPE without absolute positions)
    middle = next(c for c in doc.chunks if doc.windows[c.window][0] < c.token_start
                  and c.token_end < doc.windows[c.window][1]
                  and len({tok.ids[c.token_start - 1], tok.ids[c.token_end - 2], tok.ids[c.token_end - 1]}) == 3)
    s, _ = doc.windows[middle.window]
    states, _, first = _window_states(enc, tok, doc.windows[middle.window])
    assert first >= 1
    a, b = middle.token_start - s, middle.token_end - s
    naive = _unit((states[b - 1] if pooling == "last" else states[a:b].mean(axis=0))[: enc.dimension])
    assert float(np.abs(naive - middle.dense).max()) > 1e-3


def test_each_chunk_is_pooled_from_the_window_with_most_context_on_both_sides(bert: GteEncoder) -> None:
    text = _long_text(12)
    [doc] = LongDocEncoder(bert, mode="late", chunk_tokens=8, window_overlap=10).encode([text])
    for c in doc.chunks:
        def context(w: tuple[int, int], c: Any = c) -> int:
            return min(c.token_start - w[0], w[1] - c.token_end)
        holding = [w for w in doc.windows if w[0] <= c.token_start and c.token_end <= w[1]]
        assert context(doc.windows[c.window]) == max(context(w) for w in holding)


# ---------------------------------------------------------------------------- tiling and single encoding
def test_each_window_is_encoded_once_and_each_document_tokenized_once(bert: GteEncoder, monkeypatch: pytest.MonkeyPatch) -> None:
    texts = [_long_text(10), "A short one.", _long_text(7, per_paragraph=2)]
    ld = LongDocEncoder(bert, mode="late", chunk_tokens=8)
    reference = ld.encode(texts)
    calls: list[list[Any]] = []
    tokenize_calls: list[list[str]] = []
    real_encode, real_tokenize = bert.encode, bert.tokenize

    def spy_encode(items: Any, **kw: Any) -> Any:
        calls.append(list(items))
        return real_encode(items, **kw)

    def spy_tokenize(items: Any) -> Any:
        tokenize_calls.append(list(items))
        return real_tokenize(items)

    monkeypatch.setattr(bert, "encode", spy_encode)
    monkeypatch.setattr(bert, "tokenize", spy_tokenize)
    docs = ld.encode(texts)
    assert tokenize_calls == [texts]
    assert len(calls) == 1  # all windows of all texts in one call
    assert all(isinstance(t, TokenizedText) for t in calls[0])
    sent = sorted((t.text, t.span) for t in calls[0])
    expected = sorted((d.text, (tok.offsets[s][0], max(e for _, e in tok.offsets[s:e_]))) for d, tok in
                      zip(docs, bert.tokenize(texts)) for s, e_ in d.windows)
    assert sent == expected and len(sent) == sum(len(d.windows) for d in docs)
    # a document's tokenization made beforehand (the knowledge base's) is not made again
    tokenize_calls.clear()
    toks = real_tokenize(texts)
    again = ld.encode([toks[0], texts[1], toks[2]])
    assert tokenize_calls == [[texts[1]]]
    for a, b in zip(again, reference):
        assert [(c.start, c.end, c.text) for c in a.chunks] == [(c.start, c.end, c.text) for c in b.chunks]
        if a.chunks:
            np.testing.assert_allclose(a.multivector, b.multivector, atol=1e-6)
    for d, r in zip(docs, reference):
        _check_tiling(d)
        np.testing.assert_allclose(d.multivector, r.multivector, atol=1e-6)
    # windows sent in several groups (a small memory budget) give the same vectors
    monkeypatch.setattr(longdoc_encoder, "STATE_BUDGET_FLOATS", 1)
    calls.clear()
    grouped = ld.encode(texts)
    assert len(calls) == sum(len(d.windows) for d in docs)
    for d, r in zip(grouped, reference):
        np.testing.assert_allclose(d.multivector, r.multivector, atol=1e-5)


def test_chunk_token_ranges_tile_the_document(gte: GteEncoder) -> None:
    text = _long_text(30, per_paragraph=4)
    [doc] = LongDocEncoder(gte, mode="late", chunk_tokens=10).encode([text])
    tok = gte.tokenize([text])[0]
    assert doc.num_tokens == len(tok)
    _check_tiling(doc)
    _check_spans(text, doc.chunks)
    # together the chunks hold every token of the document exactly once
    held = [i for c in doc.chunks for i in range(c.token_start, c.token_end)]
    assert held == list(range(len(tok)))


# ---------------------------------------------------------------------------- chunk boundaries
def test_boundaries_prefer_paragraphs_then_sentences(bert: GteEncoder) -> None:
    text = ("Plants create oxygen. Green leaves turn light.\n\nWater boils at sea level. "
            "The river flows down. Mountains are high.")
    tok = bert.tokenize([text])[0]
    strengths = edge_strengths(tok)
    starts = {tok.offsets[i][0]: strengths[i] for i in range(len(tok))}
    assert starts[text.index("Water")] == Edge.PARAGRAPH
    assert starts[text.index("Green")] == Edge.SENTENCE
    assert starts[text.index("leaves")] == Edge.WORD
    assert starts[text.index(". Green")] == Edge.TOKEN
    # target 12 tokens: the paragraph edge (at 10) beats the sentence edge nearer the target (at 16)
    chunks = segment(tok, target=12, hard_max=15)
    assert chunks[0].text == "Plants create oxygen. Green leaves turn light."
    # no paragraph edge in reach: the sentence edge nearest the target
    chunks = segment(tok, target=6, hard_max=7)
    assert [c.text for c in chunks][:2] == ["Plants create oxygen.", "Green leaves turn light."]


def test_one_huge_paragraph_without_sentence_breaks_is_cut_between_words(bert: GteEncoder) -> None:
    words = [WORDS[i % len(WORDS)] for i in range(300)]
    text = " ".join(words)
    ld = LongDocEncoder(bert, mode="late", chunk_tokens=10)
    [doc] = ld.encode([text])
    assert len(doc.chunks) >= 25
    _check_tiling(doc)
    _check_spans(text, doc.chunks)
    assert all(1 <= c.token_end - c.token_start <= ld.chunk_max_tokens for c in doc.chunks)
    assert " ".join(c.text for c in doc.chunks) == text  # cut at spaces only, no word split


def test_text_without_spaces_is_cut_between_tokens(bert: GteEncoder) -> None:
    text = "光合作用植物产生氧气" * 12  # CJK, no punctuation: every character a token
    ld = LongDocEncoder(bert, mode="chunks", chunk_tokens=10)
    [doc] = ld.encode([text])
    assert doc.num_tokens == len(text) and len(doc.chunks) >= math.ceil(doc.num_tokens / ld.chunk_max_tokens)
    _check_tiling(doc)
    _check_spans(text, doc.chunks)
    assert "".join(c.text for c in doc.chunks) == text
    assert all(c.token_end - c.token_start <= ld.chunk_max_tokens for c in doc.chunks)


@pytest.mark.parametrize("which", ["bert", "qwen", "gte"])
def test_multibyte_spans_slice_back_to_the_chunk_text(which: str, request: pytest.FixtureRequest) -> None:
    enc: GteEncoder = request.getfixturevalue(which)
    text = ("Café naïve façade: résumé über Ångström. 🌱🌍 plants create oxygen 🙂 through photosynthesis.\n\n"
            "光合作用。植物产生氧气！水在海平面沸腾？ Ελληνικά κείμενα εδώ. Привет, мир — energy.\n"
            "Emoji 👩‍🔬 and flags 🇫🇷 with combining e\u0301 and ñ.  ") * 3
    ld = LongDocEncoder(enc, mode="late", chunk_tokens=6)
    [doc] = ld.encode([text])
    assert len(doc.chunks) > 5
    _check_spans(text, doc.chunks)
    _check_tiling(doc)
    tok = enc.tokenize([text])[0]
    # full-width marks end sentences without a space after them
    starts = {tok.offsets[i][0]: s for i, s in enumerate(edge_strengths(tok))}
    assert starts[text.index("植物")] == Edge.SENTENCE


# ---------------------------------------------------------------------------- sparse from the same pass
def test_learned_sparse_is_the_rule_over_the_chunk_span(gte: GteEncoder) -> None:
    import torch

    text = _long_text(10)
    [doc] = LongDocEncoder(gte, mode="late", chunk_tokens=8).encode([text])
    tok = gte.tokenize([text])[0]
    tk = gte.tokenizer
    drop = {i for i in (tk.pad_token_id, tk.unk_token_id, tk.cls_token_id, tk.sep_token_id, tk.bos_token_id,
                        tk.eos_token_id) if i is not None}
    for c in doc.chunks:
        window = doc.windows[c.window]
        states, ids, first = _window_states(gte, tok, window)
        with torch.no_grad():
            w = torch.relu(gte._model.classifier(torch.from_numpy(states))).squeeze(-1).numpy()
        lo, hi = first + c.token_start - window[0], first + c.token_end - window[0]
        best: dict[int, float] = {}
        for t, x in zip(ids[lo:hi], w[lo:hi].tolist()):
            if x > 0 and t not in drop:
                best[t] = max(best.get(t, 0.0), x)
        assert c.sparse is not None
        got = c.sparse.as_dict()
        assert set(got) == set(best) and set(got) <= set(tok.ids[c.token_start : c.token_end])
        for t in best:
            assert got[t] == pytest.approx(best[t], abs=1e-5)


def test_lexical_sparse_weighs_the_chunk_tokens(bert: GteEncoder) -> None:
    text = _long_text(8)
    tok = bert.tokenize([text])[0]
    for mode in ("late", "chunks"):
        [doc] = LongDocEncoder(bert, mode=mode, chunk_tokens=8).encode([text])  # type: ignore[arg-type]
        for c in doc.chunks:
            expected = bert.encode([tok.slice(c.token_start, c.token_end)]).sparse[0]
            assert c.sparse == expected == bert.token_sparse(tok.ids[c.token_start : c.token_end])


def test_no_sparse_when_the_encoder_has_none(tiny_embedder: Path) -> None:
    enc = GteEncoder(tiny_embedder, max_length=MAX_LENGTH, cache_size=0, dtype="float32", sparse="none")
    for mode in ("truncate", "chunks", "late"):
        [doc] = LongDocEncoder(enc, mode=mode, chunk_tokens=8).encode([_long_text(6)])  # type: ignore[arg-type]
        assert doc.chunks and all(c.sparse is None for c in doc.chunks)
    with pytest.raises(ConfigError, match="sparse='none'"):
        enc.token_sparse([5, 6], np.ones(2, np.float32))


def test_encoder_token_weights_and_text_offsets(gte: GteEncoder, bert: GteEncoder, bert_prompted: GteEncoder) -> None:
    out = gte.encode(["Plants create oxygen."], return_token_states=True)
    assert out.token_weights is not None and out.text_from == [1]
    assert out.token_weights[0].shape == (out.num_tokens[0],)
    # the rule over the text's own positions is the sparse vector encode gives
    w, ids = out.token_weights[0], out.token_ids[0]  # type: ignore[index]
    assert gte.token_sparse(ids[1:], w[1:]) == out.sparse[0]
    with pytest.raises(ConfigError, match="token weights"):
        gte.token_sparse(ids)
    with pytest.raises(ConfigError, match="one weight per id"):
        gte.token_sparse(ids, w[:2])
    plain = bert.encode(["Plants create oxygen."], return_token_states=True)
    assert plain.token_weights is None and plain.text_from == [1]
    prompted = bert_prompted.encode(["Plants create oxygen."], return_token_states=True)
    n_prompt = len(bert.tokenizer(PROMPT, add_special_tokens=False)["input_ids"])
    assert prompted.text_from == [1 + n_prompt]
    assert gte.encode(["Plants."]).token_weights is None  # only with token states


# ---------------------------------------------------------------------------- modes
def test_truncate_mode_is_the_first_window_embedded_as_the_model_does(gte: GteEncoder) -> None:
    text = _long_text(10)
    ld = LongDocEncoder(gte, mode="truncate")
    [doc] = ld.encode([text])
    tok = gte.tokenize([text])[0]
    cap = ld.window_capacity
    [chunk] = doc.chunks
    assert doc.windows == [(0, cap)] and chunk.window == 0 and (chunk.token_start, chunk.token_end) == (0, cap)
    assert chunk.text == text[: tok.offsets[cap - 1][1]].strip() and text[chunk.start : chunk.end] == chunk.text
    plain = gte.encode([tok.slice(0, cap)])
    np.testing.assert_allclose(chunk.dense, plain.dense[0], atol=1e-6)  # the model's own CLS pooling
    np.testing.assert_allclose(np.asarray(doc.document_vector), plain.dense[0], atol=1e-6)
    assert chunk.sparse == plain.sparse[0]


def test_chunks_mode_embeds_each_chunk_alone(gte: GteEncoder) -> None:
    text = _long_text(10)
    [doc] = LongDocEncoder(gte, mode="chunks", chunk_tokens=8).encode([text])
    tok = gte.tokenize([text])[0]
    assert doc.windows == [] and all(c.window == -1 for c in doc.chunks)
    alone = gte.encode([tok.slice(c.token_start, c.token_end) for c in doc.chunks])
    np.testing.assert_allclose(doc.multivector, alone.dense, atol=1e-6)
    assert [c.sparse for c in doc.chunks] == alone.sparse
    np.testing.assert_allclose(np.asarray(doc.document_vector), _unit(alone.dense.mean(axis=0)), atol=1e-6)


def test_context_mix_blends_late_and_own_vectors(bert: GteEncoder) -> None:
    text = _long_text(10)
    late = LongDocEncoder(bert, mode="late", chunk_tokens=8).encode([text])[0]
    plain = LongDocEncoder(bert, mode="chunks", chunk_tokens=8).encode([text])[0]
    assert [(c.start, c.end) for c in late.chunks] == [(c.start, c.end) for c in plain.chunks]
    assert not np.allclose(late.multivector, plain.multivector, atol=1e-3)  # context changes the vectors
    none = LongDocEncoder(bert, mode="late", chunk_tokens=8, context_mix=0.0).encode([text])[0]
    np.testing.assert_allclose(none.multivector, plain.multivector, atol=1e-5)
    half = LongDocEncoder(bert, mode="late", chunk_tokens=8, context_mix=0.25).encode([text])[0]
    for h, lc, pc in zip(half.chunks, late.chunks, plain.chunks):
        np.testing.assert_allclose(h.dense, _unit(0.25 * lc.dense + 0.75 * pc.dense), atol=1e-5)
        assert h.sparse == lc.sparse  # the sparse vector stays the late pass's
    vecs = half.multivector
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.asarray(half.document_vector), _unit(vecs.mean(axis=0)), atol=1e-5)


def test_default_mode_is_default_long_doc(bert: GteEncoder) -> None:
    text = _long_text(10)
    default = LongDocEncoder(bert, mode="default", chunk_tokens=8)
    same = LongDocEncoder(bert, mode=DEFAULT_LONG_DOC["mode"], chunk_tokens=8,
                          context_mix=DEFAULT_LONG_DOC["context_mix"], span_pooling=DEFAULT_LONG_DOC["span_pooling"])
    assert default.settings() == same.settings()
    assert default.settings()["mode"] == DEFAULT_LONG_DOC["mode"] != "default"
    np.testing.assert_allclose(default.encode([text])[0].multivector, same.encode([text])[0].multivector, atol=1e-6)


def test_aencode_and_progress_give_the_same_result(bert: GteEncoder, capsys: pytest.CaptureFixture[str]) -> None:
    texts = [_long_text(10), _long_text(4)]
    ld = LongDocEncoder(bert, mode="late", chunk_tokens=8)
    ref = ld.encode(texts)
    shown = ld.encode(texts, show_progress=True)
    assert "window" in capsys.readouterr().err
    got = asyncio.run(ld.aencode(texts))
    for a, b, c in zip(ref, shown, got):
        np.testing.assert_allclose(a.multivector, b.multivector, atol=1e-5)
        np.testing.assert_allclose(a.multivector, c.multivector, atol=1e-6)
        assert [ch.text for ch in a.chunks] == [ch.text for ch in c.chunks]


# ---------------------------------------------------------------------------- settings
@pytest.mark.parametrize("mode", ["truncate", "chunks", "late", "default"])
def test_settings_round_trip(bert: GteEncoder, mode: str) -> None:
    ld = LongDocEncoder(bert, mode=mode)  # type: ignore[arg-type]
    s = ld.settings()
    assert set(s) == {"mode", "chunk_tokens", "window_tokens", "window_overlap", "span_pooling", "context_mix"}
    assert json.loads(json.dumps(s)) == s
    assert LongDocEncoder(bert, **s).settings() == s
    cap = MAX_LENGTH - 2
    assert s["window_tokens"] == MAX_LENGTH and s["window_overlap"] == cap // 4
    assert s["chunk_tokens"] == min(DEFAULT_LONG_DOC["chunk_tokens"], cap)
    assert s["context_mix"] == (1.0 if s["mode"] == "late" else None)
    custom = LongDocEncoder(bert, mode="late", chunk_tokens=5, window_tokens=20, window_overlap=3, context_mix=0.5)
    assert custom.settings() == {"mode": "late", "chunk_tokens": 5, "window_tokens": 20, "window_overlap": 3,
                                 "span_pooling": "mean", "context_mix": 0.5}
    assert custom.window_capacity == 18


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"window_tokens": MAX_LENGTH + 1}, r"window_tokens=33 exceeds the encoder's max_length=32"),
        ({"window_tokens": 2}, r"window_tokens=2 leaves no room.*window_tokens >= 3"),
        ({"chunk_tokens": 0}, r"chunk_tokens must be >= 1"),
        ({"chunk_tokens": MAX_LENGTH}, r"chunk_tokens=32 does not fit.*chunk_tokens <= 30"),
        ({"chunk_tokens": True}, r"chunk_tokens must be an int"),
        ({"window_overlap": -1}, r"window_overlap=-1 must be in 0\.\.29"),
        ({"window_overlap": 30}, r"window_overlap=30 must be in 0\.\.29"),
        ({"context_mix": 1.5}, r"context_mix=1\.5 is outside \[0, 1\]"),
        ({"context_mix": float("nan")}, r"context_mix=nan is outside"),
        ({"context_mix": "half"}, r"context_mix must be a float"),
        ({"mode": "sliding"}, r"mode='sliding' is not one of"),
        ({"span_pooling": "max"}, r"span_pooling='max' is not one of"),
    ],
)
def test_bad_settings_raise(bert: GteEncoder, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        LongDocEncoder(bert, **kwargs)


def test_core_package_does_not_import_llama_index() -> None:
    import subprocess
    import sys

    code = "import sys, gte_rag.longdoc; print(any(m.startswith('llama_index') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


RARE = "The résumé of Zoë mentions CVE-2024-1234 and 深度学习 research."


def test_word_analyzer_reads_the_late_chunks_own_text(tiny_bert: Path) -> None:
    """A late chunk's lexical vector is the one of its own characters, as for the chunk embedded alone.

    Decoding the word pieces back to text lost accents, identifier joins and characters outside
    the vocabulary (``résumé`` -> ``resume``, CJK -> ``[UNK]``), so queries found nothing.
    """
    from gte_rag.embed import WordAnalyzer, term_id

    enc = GteEncoder(tiny_bert, max_length=MAX_LENGTH, cache_size=0, dtype="float32", analyzer="word:english")
    text = _long_text(6) + "\n\n" + RARE + "\n\n" + _long_text(6)
    [doc] = LongDocEncoder(enc, mode="late", chunk_tokens=24).encode([text])
    assert len(doc.chunks) > 2
    for c in doc.chunks:
        assert c.sparse == enc.encode_documents([c.text]).sparse[0]
        assert c.text == text[c.start : c.end]
    found = {i for c in doc.chunks if c.sparse is not None for i in c.sparse.indices}
    assert enc.analyzer is not None
    words = WordAnalyzer(enc.analyzer)
    for query in ("résumé", "Zoë", "cve-2024-1234", "深度学习"):
        assert {term_id(t) for t in words.terms(query)} <= found, query
