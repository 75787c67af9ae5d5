"""load_beir on the real collections and on small hand-written folders."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from gte_rag.errors import ConfigError
from gte_rag.eval import BeirDataset, BeirDocument, load_beir

# --- the real collections ---------------------------------------------------------------


def test_scifact_test_split(scifact: BeirDataset, scifact_dir: Path) -> None:
    assert scifact.name == "scifact"
    assert len(scifact.corpus) == 5183
    assert len(scifact.queries) == 300
    assert set(scifact.qrels) == set(scifact.queries)
    assert sum(len(v) for v in scifact.qrels.values()) == 339
    # queries.jsonl holds both splits; only the judged ones are kept
    with (scifact_dir / "queries.jsonl").open(encoding="utf-8") as handle:
        assert sum(1 for _ in handle) == 1109
    assert scifact.qrels["1"] == {"31715818": 1}
    assert scifact.queries["1"] == "0-dimensional biomaterials show inductive properties."
    assert scifact.query_metadata["1"]["split"] == "test"
    doc = scifact.corpus["4983"]
    assert doc.full_text == f"{doc.title}\n{doc.text}"
    assert doc.title.startswith("Microstructural development")
    assert all(d in scifact.corpus for docs in scifact.qrels.values() for d in docs)


def test_scifact_train_split(scifact_dir: Path) -> None:
    train = load_beir(scifact_dir, split="train")
    assert len(train.queries) == 809
    assert set(train.qrels) == set(train.queries)
    assert all(meta["split"] == "train" for meta in train.query_metadata.values())


def test_cranfield_graded(cranfield: BeirDataset) -> None:
    assert len(cranfield.corpus) == 1400
    assert len(cranfield.queries) == 225
    scores = [s for docs in cranfield.qrels.values() for s in docs.values()]
    assert sorted(set(scores)) == [0, 1, 2, 3, 4]
    # score 0 is "judged non-relevant" and is kept
    assert scores.count(0) == 225
    # two documents are empty in the source
    assert cranfield.corpus["471"].full_text == ""
    assert cranfield.corpus["995"].full_text == ""


def test_explicit_qrels_path(cranfield_dir: Path) -> None:
    raw = load_beir(cranfield_dir, qrels=cranfield_dir / "qrels_original_codes.tsv")
    assert len(raw.queries) == 225
    assert min(s for docs in raw.qrels.values() for s in docs.values()) == -1


def test_repr_is_short(scifact: BeirDataset) -> None:
    assert repr(scifact) == "BeirDataset(name='scifact', docs=5183, queries=300, judgments=339)"


# --- hand-written folders ---------------------------------------------------------------


def _write_beir(
    folder: Path,
    *,
    corpus: list[dict[str, object]] | None = None,
    queries: list[dict[str, object]] | None = None,
    qrels: str = "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t0\n",
    qrels_name: str = "qrels.tsv",
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    corpus = corpus or [
        {"_id": "d1", "title": "Title one", "text": "Body one"},
        {"_id": "d2", "title": "", "text": "Body two", "metadata": {"lang": "en"}},
    ]
    queries = queries or [
        {"_id": "q1", "text": "first"},
        {"_id": "q2", "text": "second", "metadata": {"user": "u2"}},
        {"_id": "q3", "text": "unjudged"},
    ]
    (folder / "corpus.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in corpus), encoding="utf-8"
    )
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in queries), encoding="utf-8"
    )
    (folder / qrels_name).write_text(qrels, encoding="utf-8")
    return folder


def test_small_folder(tmp_path: Path) -> None:
    ds = load_beir(_write_beir(tmp_path / "toy"))
    assert ds.name == "toy"
    # q3 is not judged; q2 is judged although only non-relevant
    assert ds.queries == {"q1": "first", "q2": "second"}
    assert ds.qrels == {"q1": {"d1": 1}, "q2": {"d2": 0}}
    assert ds.query_metadata == {"q1": {}, "q2": {"user": "u2"}}
    assert ds.corpus["d1"] == BeirDocument(id="d1", title="Title one", text="Body one")
    assert ds.corpus["d2"].metadata == {"lang": "en"}


def test_full_text() -> None:
    assert BeirDocument("d", "T", "body").full_text == "T\nbody"
    assert BeirDocument("d", "", "body").full_text == "body"
    assert BeirDocument("d", "T", "").full_text == "T"


def test_split_file_and_header_optional(tmp_path: Path) -> None:
    folder = _write_beir(tmp_path / "toy", qrels="q1\td1\t2\n\n", qrels_name="qrels_dev.tsv")
    ds = load_beir(folder, split="dev")
    assert ds.qrels == {"q1": {"d1": 2}}


def test_numeric_ids_become_strings(tmp_path: Path) -> None:
    folder = _write_beir(
        tmp_path / "toy",
        corpus=[{"_id": 7, "title": "t", "text": "x"}],
        queries=[{"_id": 1, "text": "q"}],
        qrels="query-id\tcorpus-id\tscore\n1\t7\t1\n",
    )
    ds = load_beir(folder)
    assert list(ds.corpus) == ["7"] and list(ds.queries) == ["1"]


def test_missing_folder(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(ConfigError, match=r"nope.*corpus\.jsonl, queries\.jsonl and qrels\.tsv"):
        load_beir(missing)


def test_missing_corpus_file(tmp_path: Path) -> None:
    folder = _write_beir(tmp_path / "toy")
    (folder / "corpus.jsonl").unlink()
    with pytest.raises(ConfigError, match=r"corpus\.jsonl' is missing; a BEIR folder holds"):
        load_beir(folder)


def test_missing_split_lists_available(tmp_path: Path) -> None:
    folder = _write_beir(tmp_path / "toy")
    with pytest.raises(ConfigError, match=r"qrels_train\.tsv.*qrels files in .*: qrels\.tsv"):
        load_beir(folder, split="train")


def test_bad_split_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a plain name"):
        load_beir(_write_beir(tmp_path / "toy"), split="../x")


def test_qrels_and_split_conflict(tmp_path: Path) -> None:
    folder = _write_beir(tmp_path / "toy")
    with pytest.raises(ConfigError, match=r"either qrels=.* or split='train', not both"):
        load_beir(folder, qrels=folder / "qrels.tsv", split="train")


def test_missing_explicit_qrels(tmp_path: Path) -> None:
    folder = _write_beir(tmp_path / "toy")
    with pytest.raises(ConfigError, match=r"other\.tsv' does not exist"):
        load_beir(folder, qrels=folder / "other.tsv")


def test_malformed_json_names_file_and_line(tmp_path: Path) -> None:
    folder = _write_beir(tmp_path / "toy")
    with (folder / "corpus.jsonl").open("a", encoding="utf-8") as handle:
        handle.write("{not json\n")
    with pytest.raises(ConfigError, match=r"corpus\.jsonl:3: not valid JSON"):
        load_beir(folder)


def test_missing_id_field(tmp_path: Path) -> None:
    folder = _write_beir(tmp_path / "toy", queries=[{"id": "q1", "text": "x"}])
    with pytest.raises(ConfigError, match=r"queries\.jsonl:1: missing required field '_id'"):
        load_beir(folder)


def test_duplicate_document_id(tmp_path: Path) -> None:
    folder = _write_beir(
        tmp_path / "toy",
        corpus=[{"_id": "d1", "text": "a"}, {"_id": "d1", "text": "b"}, {"_id": "d2", "text": ""}],
    )
    with pytest.raises(ConfigError, match=r"corpus\.jsonl:2: duplicate document _id 'd1'"):
        load_beir(folder)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("q1\td1\n", r"qrels\.tsv:3: expected 3 tab-separated columns"),
        ("q1\td1\thigh\n", r"qrels\.tsv:3: score 'high' is not an integer"),
        ("q1\td1\t0\n", r"qrels\.tsv:3: query 'q1' judges document 'd1' twice"),
    ],
)
def test_malformed_qrels_line(tmp_path: Path, line: str, expected: str) -> None:
    folder = _write_beir(tmp_path / "toy", qrels="query-id\tcorpus-id\tscore\nq1\td1\t1\n" + line)
    with pytest.raises(ConfigError, match=expected):
        load_beir(folder)


def test_empty_qrels(tmp_path: Path) -> None:
    folder = _write_beir(tmp_path / "toy", qrels="query-id\tcorpus-id\tscore\n")
    with pytest.raises(ConfigError, match="holds no judgments"):
        load_beir(folder)


def test_judged_query_without_text(tmp_path: Path) -> None:
    folder = _write_beir(tmp_path / "toy", qrels="q1\td1\t1\nq9\td1\t1\n")
    with pytest.raises(ConfigError, match=r"1 query ids judged in .* have no line in .*\['q9'\]"):
        load_beir(folder)


def test_qrels_doc_missing_from_corpus_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = _write_beir(tmp_path / "toy", qrels="q1\td1\t1\nq1\tgone\t1\nq2\tgone2\t1\n")
    with caplog.at_level(logging.WARNING, logger="gte_rag.eval"):
        ds = load_beir(folder)
    # kept, so recall counts them as relevant documents nobody can retrieve
    assert ds.qrels == {"q1": {"d1": 1, "gone": 1}, "q2": {"gone2": 1}}
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "2 of 3 judgments" in warnings[0].getMessage()
