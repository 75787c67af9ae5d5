"""``gte-rag index`` / ``ask`` / ``eval --long-docs`` on long documents (tiny model, real embedded Qdrant)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from gte_rag.cli import main

LONG = (
    "Plants create oxygen through photosynthesis. Green plants turn light into chemical energy in their leaves. "
    "Chlorophyll absorbs sunlight and fixes carbon dioxide into sugars. Forests and algae keep the atmosphere "
    "breathable. Bees pollinate flowers and make honey from nectar. The farmer grows wheat, corn and potatoes."
)
LONG2 = (
    "Rust is a systems programming language that prevents memory errors. The borrow checker ensures that "
    "references never outlive their data. Ownership rules in Rust stop data races at compile time. Python is a "
    "programming language that is easy to read. A function takes some input and returns an output."
)

LLM_MODULE = '''
from typing import Any
from llama_index.core.base.llms.types import CompletionResponse, LLMMetadata
from llama_index.core.llms import CustomLLM


class EchoLLM(CustomLLM):
    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(context_window=100_000, num_output=32, model_name="echo")

    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return CompletionResponse(text="ECHO " + str(prompt.count("photosynthesis")))

    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
        yield self.complete(prompt)


def make_llm() -> EchoLLM:
    return EchoLLM()


def not_an_llm() -> str:
    return "hello"
'''


@pytest.fixture
def model(tiny_embedder: Path) -> str:
    """The tiny checkpoint; every command reads it with a 32-token window, so the documents above are long."""
    return str(tiny_embedder)


def _index(tmp_path: Path, model: str, *extra: str) -> str:
    docs = tmp_path / "docs"
    docs.mkdir(exist_ok=True)
    (docs / "plants.md").write_text(LONG, encoding="utf-8")
    (docs / "rust.txt").write_text(LONG2, encoding="utf-8")
    kb = str(tmp_path / "kb")
    assert main(["index", str(docs), "--kb", kb, "--model", model, "--max-length", "32", *extra]) == 0
    return kb


def test_ask_prints_passages_with_their_spans(tmp_path: Path, model: str, capsys: pytest.CaptureFixture[str]) -> None:
    kb = _index(tmp_path, model)
    capsys.readouterr()
    assert main(["ask", "how do plants make oxygen", "--kb", kb, "--top-k", "2", "--chunks", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["answer"] is None and out["passages"]
    texts = {"plants.md": LONG, "rust.txt": LONG2}
    for p in out["passages"]:
        source = texts[Path(p["doc_id"]).name]
        assert source[p["start"] : p["end"]] == p["text"]
    # a long document was stored as several chunks: passages are parts of it, not the whole file
    assert all(len(p["text"]) < len(LONG2) for p in out["passages"])
    assert main(["ask", "how do plants make oxygen", "--kb", kb]) == 0
    text = capsys.readouterr().out
    assert "no LLM configured" in text and "passages from" in text


def test_ask_answers_with_an_llm_factory(
    tmp_path: Path, model: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    kb = _index(tmp_path, model)
    (tmp_path / "llm_factory_mod.py").write_text(LLM_MODULE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    capsys.readouterr()
    assert main(["ask", "photosynthesis", "--kb", kb, "--llm", "llm_factory_mod:make_llm", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["answer"].startswith("ECHO ") and out["passages"]
    monkeypatch.setenv("GTE_RAG_LLM", "llm_factory_mod:make_llm")
    assert main(["ask", "photosynthesis", "--kb", kb]) == 0
    assert "Answer: ECHO" in capsys.readouterr().out
    monkeypatch.delenv("GTE_RAG_LLM")
    for spec, message in [("nomodule", "not module:callable"), ("llm_factory_mod:missing", "no callable"),
                          ("llm_factory_mod:not_an_llm", "not a LlamaIndex LLM"),
                          ("no_such_module_xyz:f", "cannot import")]:
        assert main(["ask", "q", "--kb", kb, "--llm", spec]) == 2
        assert message in capsys.readouterr().err
    sys.modules.pop("llm_factory_mod", None)


def test_eval_long_docs_adds_recall_at_1_and_5(tmp_path: Path, model: str) -> None:
    ds = tmp_path / "long-beir"
    ds.mkdir()
    corpus = {"d1": LONG, "d2": LONG2}
    (ds / "corpus.jsonl").write_text("\n".join(json.dumps({"_id": k, "title": "", "text": v}) for k, v in corpus.items()))
    queries = {"q1": "Bees pollinate flowers and make honey from nectar.", "q2": "The borrow checker ensures that references"}
    (ds / "queries.jsonl").write_text("\n".join(json.dumps({"_id": k, "text": v}) for k, v in queries.items()))
    (ds / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\n")
    results = {}
    for mode in ("truncate", "chunks", "late", "default"):
        out = tmp_path / f"{mode}.json"
        assert main(["eval", str(ds), "--model", model, "--max-length", "32", "--long-docs", mode,
                     "--json", str(out), "--kb", str(tmp_path / f"kb-{mode}")]) == 0
        payload = json.loads(out.read_text())
        assert {"ndcg@10", "recall@100", "mrr@10", "recall@1", "recall@5"} <= set(payload)
        assert payload["long_docs"] == mode
        results[mode] = payload
    # two documents: every mode finds each query's document within five
    assert all(r["recall@5"] == 1.0 for r in results.values())
    # without --long-docs the keys stay the three they were
    plain = tmp_path / "plain.json"
    assert main(["eval", str(ds), "--model", model, "--max-length", "32", "--json", str(plain),
                 "--kb", str(tmp_path / "kb-plain")]) == 0
    assert "recall@1" not in json.loads(plain.read_text())
    # ...and each document stays one point, scored once (as eval always stored them)
    from gte_rag.kb import KnowledgeBase

    with KnowledgeBase(tmp_path / "kb-plain", collection="eval", encoder_options={"device": "cpu"}) as kb:
        assert kb.count() == 2 and kb.long_doc is None
