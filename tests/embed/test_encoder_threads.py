"""The encoder from many threads at once: no tokenizer errors, the same results as one at a time.

A Hugging Face fast tokenizer keeps its truncation and padding settings on the shared Rust
object, and each call sets them before encoding. Threads that call one tokenizer with
different settings break each other's calls: ``RuntimeError: Already borrowed`` (older
``tokenizers``), ``Truncation error: Second sequence not provided``, or a text silently cut
to someone else's ``max_length``. Here other code uses ``encoder.tokenizer`` with
truncation (as a chunker or a caller might) while the encoder works.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from gte_rag.embed import GteEncoder

WORDS = "plants create oxygen through photosynthesis and the sun gives light to green leaves".split()


def _long_texts(n: int, words: int) -> list[str]:
    return [" ".join(WORDS[(i + j) % len(WORDS)] for j in range(words)) + f" {i}." for i in range(n)]


@pytest.mark.filterwarnings("ignore:.*exceed max_length")
def test_encode_and_tokenize_from_many_threads(tiny_embedder: Path) -> None:
    # long texts and a short max_length: most of the time goes to tokenizing, where threads meet
    enc = GteEncoder(tiny_embedder, max_length=32, cache_size=0, dtype="float32", batch_size=8)
    texts = _long_texts(6, 1500)
    ref_doc = enc.encode(texts)
    ref_query = enc.encode(texts, role="query", return_sparse=False)
    ref_tokens = enc.tokenize(texts)

    def other_code(_: int) -> None:
        # a chunker, a length check... anything with the tokenizer and its own settings (one
        # setting for all of them here: callers sharing the copy with other settings lock it)
        enc.tokenizer(["q"] * len(texts), texts, truncation="only_second", max_length=16)

    def job(i: int) -> object:
        kind = i % 4
        if kind == 0:
            return enc.encode(texts)
        if kind == 1:
            return enc.encode(texts, role="query", return_sparse=False)
        if kind == 2:
            return enc.tokenize(texts)
        other_code(i)
        return None

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(job, range(64)))
    for i, got in enumerate(results):
        kind = i % 4
        if kind == 0:
            np.testing.assert_allclose(got.dense, ref_doc.dense, atol=1e-6, rtol=0)  # type: ignore[attr-defined]
            assert got.sparse == ref_doc.sparse and got.num_tokens == ref_doc.num_tokens  # type: ignore[attr-defined]
        elif kind == 1:
            np.testing.assert_allclose(got.dense, ref_query.dense, atol=1e-6, rtol=0)  # type: ignore[attr-defined]
        elif kind == 2:
            assert got == ref_tokens
