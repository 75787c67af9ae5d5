"""A collection records its lexical analyzer; queries are analysed as its documents were (real embedded Qdrant)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gte_rag.embed import Analyzer, GteEncoder, default_analyzer, legacy_token_analyzer
from gte_rag.errors import CollectionMismatchError
from gte_rag.kb import KnowledgeBase

DOCS = ["Green plants growing in sunlight make oxygen.", "The river runs fast after the storms."]
QUERY = "growth of the plant"  # "growing"/"plants" in the document: only a stemming analyzer matches


def _open(path: Path, engine: str, **kwargs: Any) -> KnowledgeBase:
    options = {"engine": "client"} if engine == "local" else {}
    return KnowledgeBase(path, store_options=options, **kwargs)


@pytest.fixture(params=["edge", "local"])
def engine(request: pytest.FixtureRequest) -> str:
    """Qdrant Edge, or qdrant-client local mode on disk (both reopen a directory)."""
    return str(request.param)


def _add(kb: KnowledgeBase) -> None:
    kb.add_texts(DOCS, ids=["plants", "river"])


def test_new_collection_records_the_default_analyzer(tmp_path: Path, tiny_bert: Path, engine: str) -> None:
    with _open(tmp_path / "kb", engine, model=tiny_bert) as kb:
        _add(kb)
        want = default_analyzer(kb.encoder.spec)
        assert kb.layout.encoder_settings["analyzer"] == want.record()
    with _open(tmp_path / "kb", engine) as kb:  # no model, no options: the recorded ones
        assert kb.encoder.analyzer == want
        assert kb.query("oxygen", top_k=1, mode="sparse")[0].payload["doc_id"] == "plants"


def test_a_query_is_analysed_as_the_documents_were(tmp_path: Path, tiny_bert: Path, engine: str) -> None:
    with _open(tmp_path / "kb", engine, model=tiny_bert, encoder_options={"analyzer": "word:english"}) as kb:
        _add(kb)
    with _open(tmp_path / "kb", engine, model=tiny_bert) as kb:  # reopened without naming the analyzer
        assert kb.encoder.analyzer == Analyzer(language="english")
        hits = kb.query(QUERY, top_k=2, mode="sparse")
        assert [h.payload["doc_id"] for h in hits] == ["plants"]  # stems matched; "the" is a stopword


def test_another_analyzer_is_refused_clearly(tmp_path: Path, tiny_bert: Path, engine: str) -> None:
    with _open(tmp_path / "kb", engine, model=tiny_bert, encoder_options={"analyzer": "word:english"}) as kb:
        _add(kb)
    with pytest.raises(CollectionMismatchError) as err:
        _open(tmp_path / "kb", engine, model=tiny_bert, encoder_options={"analyzer": "tokens"})
    message = str(err.value)
    assert "'word:english'" in message and "'tokens'" in message and "Fix:" in message
    assert err.value.layout_expected == Analyzer(language="english").record()
    other = GteEncoder(tiny_bert, device="cpu", analyzer="word:german")
    with pytest.raises(CollectionMismatchError, match="word:german"):
        _open(tmp_path / "kb", engine, encoder=other)
    with _open(tmp_path / "kb", engine) as kb:  # the data is untouched
        assert kb.count() == 2


def test_other_bm25_parameters_are_another_analyzer(tmp_path: Path, tiny_bert: Path) -> None:
    with KnowledgeBase(tmp_path / "kb", model=tiny_bert) as kb:
        _add(kb)
    changed = {**default_analyzer(None).record(), "k1": 2.0}
    with pytest.raises(CollectionMismatchError, match="k1"):
        KnowledgeBase(tmp_path / "kb", model=tiny_bert, encoder_options={"analyzer": changed})


def test_a_collection_recorded_before_analyzers_keeps_its_word_pieces(tmp_path: Path, tiny_bert: Path) -> None:
    path = tmp_path / "kb"
    with KnowledgeBase(path, model=tiny_bert, encoder_options={"analyzer": "tokens"}) as kb:
        _add(kb)
    # what such a collection looks like: no analyzer in its record (the word-piece branch was the only one)
    sidecar = path / "gte_rag" / "gte_rag_layout.json"
    data = json.loads(sidecar.read_text())
    key = next(iter(data))
    del data[key]["encoder"]["analyzer"]
    sidecar.write_text(json.dumps(data))
    for kwargs in ({}, {"model": tiny_bert}):
        with KnowledgeBase(path, **kwargs) as kb:  # type: ignore[arg-type]
            assert kb.encoder.analyzer == legacy_token_analyzer()
            assert kb.query("oxygen", top_k=1, mode="sparse")[0].payload["doc_id"] == "plants"
    with pytest.raises(CollectionMismatchError, match="'tokens'"):
        KnowledgeBase(path, model=tiny_bert, encoder_options={"analyzer": "word"})


def test_learned_sparse_collections_record_no_analyzer(tmp_path: Path, tiny_embedder: Path) -> None:
    with KnowledgeBase(tmp_path / "kb", model=tiny_embedder) as kb:
        _add(kb)
        assert "analyzer" not in kb.layout.encoder_settings
    with KnowledgeBase(tmp_path / "kb") as kb:
        assert kb.encoder.analyzer is None and kb.count() == 2


def test_default_hybrid_is_dbsf_and_agrees_on_both_engines(tmp_path: Path, tiny_bert: Path) -> None:
    from gte_rag.qdrant import HybridConfig

    assert HybridConfig().fusion == "dbsf"
    texts = [*DOCS, "Oxygen levels in the river.", "Plants need water.", "Storms bring rain to the plants."]
    ranked = {}
    for engine in ("edge", "local"):
        with _open(tmp_path / engine, engine, model=tiny_bert, encoder_options={"analyzer": "word:english"}) as kb:
            kb.add_texts(texts)
            default = kb.query("plants oxygen", top_k=5)
            explicit = kb.query("plants oxygen", top_k=5, fusion="dbsf")
            assert [(h.id, h.score) for h in default] == [(h.id, h.score) for h in explicit]
            ranked[engine] = [h.payload["text"] for h in default]
    assert ranked["edge"][:2] == ranked["local"][:2]
    assert ranked["edge"][0] == DOCS[0]  # the one document holding both terms


def test_cli_index_takes_an_analyzer_and_info_shows_it(tmp_path: Path, tiny_bert: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    from gte_rag.cli import main

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "plants.txt").write_text(DOCS[0])
    kb = str(tmp_path / "kb")
    assert main(["index", str(docs), "--kb", kb, "--model", str(tiny_bert), "--analyzer", "word:english"]) == 0
    capsys.readouterr()
    assert main(["info", "--kb", kb]) == 0
    assert "word:english (BM25 k1=1.2, b=0.75, avgdl=100)" in capsys.readouterr().out
    # another analyzer on the same collection: one line that names both and the fix
    assert main(["query", "plants", "--kb", kb, "--analyzer", "tokens"]) != 0
    err = capsys.readouterr().err
    assert "'word:english'" in err and "'tokens'" in err and "Fix:" in err


def test_weights_without_a_fusion_give_rrf_and_a_named_dbsf_refuses_them() -> None:
    from gte_rag.errors import ConfigError
    from gte_rag.qdrant import HybridConfig

    assert HybridConfig().fusion == "dbsf" and HybridConfig() == HybridConfig(fusion="dbsf")
    assert HybridConfig(dense_weight=2.0).fusion == "rrf"  # DBSF takes no weights
    leaned = HybridConfig().with_alpha(0.25)
    assert leaned.fusion == "rrf" and leaned.weights == (0.5, 1.5)
    assert HybridConfig().override(mode="hybrid").with_alpha(0.25) == leaned  # still the default after override
    assert HybridConfig().with_alpha(0.5) == HybridConfig()
    with pytest.raises(ConfigError, match="DBSF"):
        HybridConfig(fusion="dbsf").with_alpha(0.25)
