"""format_comparison, run_metadata, and the public names of gte_rag.eval."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import gte_rag.eval
from gte_rag.errors import ConfigError
from gte_rag.eval import REPORTED_PACKAGES, format_comparison, run_metadata
from gte_rag.eval._report import _git_state, _version

RESULTS = {
    "bm25": {"ndcg@10": 0.665, "recall@100": 0.9077},
    "dense+rerank": {"ndcg@10": 0.7412, "recall@100": 0.95, "mrr@10": 0.7},
}


def test_text_table() -> None:
    assert format_comparison(RESULTS).splitlines() == [
        "system        ndcg@10  recall@100  mrr@10",
        "------------  -------  ----------  ------",
        "bm25           0.6650      0.9077       -",
        "dense+rerank   0.7412      0.9500  0.7000",
    ]


def test_markdown_table_with_chosen_columns() -> None:
    table = format_comparison(RESULTS, metrics=["mrr@10", "ndcg@10"], digits=2, style="markdown")
    assert table.splitlines() == [
        "| system       | mrr@10 | ndcg@10 |",
        "| ------------ | -----: | ------: |",
        "| bm25         |      - |    0.67 |",
        "| dense+rerank |   0.70 |    0.74 |",
    ]


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"results": {}}, "results is empty"),
        ({"results": RESULTS, "digits": -1}, "digits=-1 is negative"),
        (
            {"results": RESULTS, "style": "html"},
            "style='html' is unknown; use 'text' or 'markdown'",
        ),
    ],
)
def test_table_errors(kwargs: dict[str, object], expected: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(expected)):
        format_comparison(**kwargs)  # type: ignore[arg-type]


def test_run_metadata() -> None:
    meta = run_metadata()
    assert set(meta) == {
        "git_commit",
        "git_dirty",
        "timestamp",
        "hostname",
        "platform",
        "cpu_count",
        "python",
        "packages",
    }
    assert json.loads(json.dumps(meta)) == meta
    assert meta["python"] == "{}.{}.{}".format(*sys.version_info[:3])
    assert list(meta["packages"]) == list(REPORTED_PACKAGES)
    assert meta["packages"]["numpy"] is not None
    checkout = Path(gte_rag.eval.__file__).resolve().parents[2]
    if (checkout / ".git").exists():
        assert re.fullmatch(r"[0-9a-f]{40}", meta["git_commit"] or "")
        assert isinstance(meta["git_dirty"], bool)


def test_missing_package_version_is_none() -> None:
    assert _version("gte-rag-no-such-distribution") is None


def test_git_state_outside_a_checkout(tmp_path: Path) -> None:
    assert _git_state(tmp_path) == (None, None)


def test_run_metadata_does_not_import_torch() -> None:
    code = (
        "import sys, gte_rag.eval as e; e.run_metadata(); "
        "print(sorted(m for m in ('torch', 'transformers', 'llama_index', 'qdrant_client') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


def test_public_names() -> None:
    public = {
        name
        for name in vars(gte_rag.eval)
        if not name.startswith("_") and name not in {"annotations"}
    }

    # plain sorted() order, as every __all__ in the package (tests/test_public_api.py)
    assert gte_rag.eval.__all__ == sorted(gte_rag.eval.__all__)
    assert set(gte_rag.eval.__all__) == public
