"""Public names: every __all__ is sorted, complete and importable; warnings point at user code."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import gte_rag

PACKAGES = ["gte_rag", "gte_rag.errors", "gte_rag.models", "gte_rag.embed", "gte_rag.llama_index", "gte_rag.kb",
            "gte_rag.qdrant", "gte_rag.eval", "gte_rag.rerank", "gte_rag.remote"]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_sorted_and_complete(name: str) -> None:
    mod = importlib.import_module(name)
    exported = list(mod.__all__)
    assert exported == sorted(exported), f"{name}.__all__ is not sorted; sorted it reads {sorted(exported)}"
    assert len(set(exported)) == len(exported)
    for attr in exported:
        assert getattr(mod, attr) is not None, attr
    if name != "gte_rag":  # the top level re-exports lazily; its __all__ is checked below
        public = {n for n, v in vars(mod).items() if not n.startswith("_") and getattr(v, "__module__", "").startswith(name)}
        assert public <= set(exported), sorted(public - set(exported))


def _literal_alls() -> list[tuple[str, int, list[str]]]:
    """Every literal ``__all__`` list in the package's source, private modules included."""
    found = []
    root = Path(gte_rag.__file__).parent
    for path in sorted(root.rglob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Assign):
                targets, value = node.targets, node.value
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                targets, value = [node.target], node.value
            else:
                continue
            if not any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
                continue
            try:
                names = ast.literal_eval(value)
            except ValueError:  # computed, e.g. the top level's sorted([...]): checked at runtime
                continue
            found.append((str(path.relative_to(root.parent)), node.lineno, list(names)))
    return found


def test_every_modules_all_is_sorted() -> None:
    alls = _literal_alls()
    assert len(alls) >= len(PACKAGES)  # the walk found the package's modules
    unsorted = [f"{path}:{line}" for path, line, names in alls if names != sorted(names)]
    assert not unsorted, f"__all__ not in sorted() order: {unsorted}"


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


def test_warnings_point_at_the_callers_line(tiny_embedder: Path, tiny_reranker: Path) -> None:
    import warnings

    from gte_rag.embed import GteEncoder
    from gte_rag.rerank import GteCrossEncoder

    ce = GteCrossEncoder(str(tiny_reranker), max_length=16, dtype="float32")
    enc = GteEncoder(tiny_embedder, max_length=16, dtype="float32", cache_size=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ce.score_pairs([("q", "a long document " * 20)])
        ce2 = GteCrossEncoder(str(tiny_reranker), max_length=16, dtype="float32")
        ce2.tokenize_pairs(["q"], ["a long document " * 20])
        enc.encode(["a long document " * 20])
    ours = [w for w in caught if "max_length" in str(w.message) or "truncat" in str(w.message)]
    assert len(ours) == 3
    assert {w.filename for w in ours} == {__file__}


def test_no_core_module_imports_the_adapters() -> None:
    """The core never depends on the LlamaIndex adapters, not even through a lazy import.

    Walks every import statement (module level and inside functions) of every module
    outside ``gte_rag/llama_index``. The top-level facade ``gte_rag/__init__.py`` names the
    adapter classes in its lazy re-export table only, and is left out. So is the command line
    (``gte_rag/cli``), an application of both layers: ``gte-rag ask`` answers with a LlamaIndex
    LLM, and imports the adapters inside that command only.
    """
    root = Path(gte_rag.__file__).parent
    offenders = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if rel.parts[0] in ("llama_index", "cli") or rel == Path("__init__.py"):
            continue
        package = ".".join(("gte_rag", *rel.with_suffix("").parts[:-1]))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)] if node.level else []
                names = [".".join([*base, node.module or ""]).strip(".")]
            for name in names:
                if name.split(".")[0] == "llama_index" or name.startswith("gte_rag.llama_index"):
                    offenders.append(f"{rel}:{node.lineno} imports {name}")
    assert not offenders, offenders
