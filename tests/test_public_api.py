"""Public names: every __all__ is sorted, complete and importable; warnings point at user code."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import gte_rag

PACKAGES = ["gte_rag", "gte_rag.errors", "gte_rag.models", "gte_rag.embed", "gte_rag.llama_index", "gte_rag.kb",
            "gte_rag.qdrant", "gte_rag.eval", "gte_rag.rerank"]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_sorted_and_complete(name: str) -> None:
    mod = importlib.import_module(name)
    exported = list(mod.__all__)
    assert len(set(exported)) == len(exported)
    for attr in exported:
        assert getattr(mod, attr) is not None, attr
    if name != "gte_rag":  # the top level re-exports lazily; its __all__ is checked below
        public = {n for n, v in vars(mod).items() if not n.startswith("_") and getattr(v, "__module__", "").startswith(name)}
        assert public <= set(exported), sorted(public - set(exported))


def test_top_level_lazy_names_resolve() -> None:
    assert gte_rag.__all__ == sorted(gte_rag.__all__)
    for name in gte_rag.__all__:
        assert getattr(gte_rag, name) is not None
    assert set(gte_rag.__all__) <= set(dir(gte_rag))
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        gte_rag.Nope  # noqa: B018


def test_import_is_light() -> None:
    code = (
        "import sys, gte_rag; heavy = [m for m in ('torch', 'transformers', 'llama_index', 'qdrant_client', "
        "'qdrant_edge') if m in sys.modules]; print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_core_does_not_import_llama_index() -> None:
    code = (
        "import sys; import gte_rag.embed, gte_rag.models, gte_rag.eval, gte_rag.qdrant, gte_rag.kb, gte_rag.rerank; "
        "print('llama_index' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


def test_warnings_point_at_the_callers_line(legacy_tiny: Path) -> None:
    import warnings

    from gte_rag.embed import GteEncoder
    from gte_rag.rerank import GteCrossEncoder

    ce = GteCrossEncoder(str(legacy_tiny / "reranker"), max_length=16, dtype="float32")
    enc = GteEncoder(legacy_tiny / "embedder", max_length=16, dtype="float32", cache_size=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ce.score_pairs([("q", "a long document " * 20)])
        ce2 = GteCrossEncoder(str(legacy_tiny / "reranker"), max_length=16, dtype="float32")
        ce2.tokenize_pairs(["q"], ["a long document " * 20])
        enc.encode(["a long document " * 20])
    ours = [w for w in caught if "max_length" in str(w.message) or "truncat" in str(w.message)]
    assert len(ours) == 3
    assert {w.filename for w in ours} == {__file__}
