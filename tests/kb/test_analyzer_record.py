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


def test_late_chunks_are_analysed_as_chunks_mode_ones(tmp_path: Path, tiny_bert: Path) -> None:
    """Sparse search over late chunks finds accented words, CJK and identifiers as chunks mode does."""
    filler = " ".join(f"Plants grow near the river number {i}." for i in range(40))
    long = filler + " The résumé of Zoë mentions CVE-2024-1234 and 深度学习 research. " + filler
    found: dict[str, list[tuple[str, float]]] = {}
    for mode in ("chunks", "late"):
        enc = GteEncoder(tiny_bert, device="cpu", dtype="float32", max_length=64, analyzer="word:english")
        with KnowledgeBase(tmp_path / mode, encoder=enc, long_docs=mode) as kb:
            kb.add_texts([long, "A short note about cooking pasta."], ids=["long", "pasta"])
            for q in ("résumé", "Zoë", "cve-2024-1234", "深度学习"):
                hits = kb.search([q], top_k=3, mode="sparse")[0]
                found[f"{mode}:{q}"] = [(h.payload["text"], round(h.score, 5)) for h in hits]
    for q in ("résumé", "Zoë", "cve-2024-1234", "深度学习"):
        assert found[f"chunks:{q}"], q  # the chunks-mode KB finds it
        assert found[f"late:{q}"] == found[f"chunks:{q}"], q
        assert all("résumé" in text for text, _ in found[f"late:{q}"])


def test_word_none_reopens_under_its_name(tmp_path: Path, tiny_bert: Path) -> None:
    """The default of an unknown model (word:none, no stopwords) is the analyzer "word:none" names."""
    with KnowledgeBase(tmp_path / "kb", model=tiny_bert) as kb:
        _add(kb)
        assert kb.encoder.analyzer == default_analyzer(None)
    with KnowledgeBase(tmp_path / "kb", model=tiny_bert, encoder_options={"analyzer": "word:none"}) as kb:
        assert kb.count() == 2
    with KnowledgeBase(tmp_path / "kb", encoder=GteEncoder(tiny_bert, device="cpu", analyzer="word:none")) as kb:
        assert kb.query("river", top_k=1, mode="sparse")[0].payload["doc_id"] == "river"


def test_a_version_1_word_collection_is_refused_with_a_fix(tmp_path: Path, tiny_bert: Path) -> None:
    """A collection analysed with the version-1 word rules (the long stopword list) never gets version 2 silently."""
    from gte_rag.errors import ConfigError

    path = tmp_path / "kb"
    with KnowledgeBase(path, model=tiny_bert, encoder_options={"analyzer": "word:english"}) as kb:
        _add(kb)
    sidecar = path / "gte_rag" / "gte_rag_layout.json"
    data = json.loads(sidecar.read_text())
    key = next(iter(data))
    data[key]["encoder"]["analyzer"]["version"] = 1
    sidecar.write_text(json.dumps(data))
    for kwargs in ({}, {"model": tiny_bert}):
        with pytest.raises(ConfigError, match="version 1 cannot be reproduced") as err:
            KnowledgeBase(path, **kwargs)  # type: ignore[arg-type]
        assert "re-index" in str(err.value)
    with pytest.raises(ConfigError, match="version 1 cannot be reproduced"):
        KnowledgeBase(path, encoder=GteEncoder(tiny_bert, device="cpu", analyzer="word:english"))


def test_the_mismatch_fix_works_for_an_encoder_passed_in(tmp_path: Path, tiny_bert: Path) -> None:
    with KnowledgeBase(tmp_path / "kb", model=tiny_bert, encoder_options={"analyzer": "tokens"}) as kb:
        _add(kb)
    with pytest.raises(CollectionMismatchError) as err:
        KnowledgeBase(tmp_path / "kb", encoder=GteEncoder(tiny_bert, device="cpu"))
    assert "GteEncoder(..., analyzer='tokens')" in str(err.value)
    # the fix it names
    with KnowledgeBase(tmp_path / "kb", encoder=GteEncoder(tiny_bert, device="cpu", analyzer="tokens")) as kb:
        assert kb.count() == 2


def test_a_replaced_default_config_still_takes_an_alpha() -> None:
    import dataclasses

    from gte_rag.qdrant import HybridConfig

    replaced = dataclasses.replace(HybridConfig(), prefetch_limit=50)
    leaned = replaced.with_alpha(0.7)
    assert leaned.fusion == "rrf" and leaned.weights == pytest.approx((1.4, 0.6)) and leaned.prefetch_limit == 50
    assert dataclasses.replace(HybridConfig(fusion="rrf"), rrf_k=10).with_alpha(0.7).fusion == "rrf"
    # a named fusion stays named through replace() and override()
    from gte_rag.errors import ConfigError

    with pytest.raises(ConfigError, match="DBSF"):
        dataclasses.replace(HybridConfig(fusion="dbsf"), prefetch_limit=50).with_alpha(0.7)
    with pytest.raises(ConfigError, match="DBSF"):
        HybridConfig(fusion="rrf").override(fusion="dbsf").with_alpha(0.7)


def test_a_memory_store_reopened_with_another_analyzer_is_refused(tmp_path: Path, tiny_bert: Path) -> None:
    """The memory store shares the knowledge base's analyzer check: its queries must match its stored terms."""
    from gte_rag.memory import MemorySettings, MemoryStore

    settings = MemorySettings(dedup_threshold=None)
    first = GteEncoder(tiny_bert, device="cpu", dtype="float32", analyzer="word:none")
    with MemoryStore(embed_model=first, location=tmp_path / "mem", settings=settings) as mem:
        mem.add("Green plants growing in sunlight.", user_id="ana")
    same = GteEncoder(tiny_bert, device="cpu", dtype="float32", analyzer="word:none")
    with MemoryStore(embed_model=same, location=tmp_path / "mem", settings=settings) as mem:
        assert mem.count(user_id="ana") == 1
    other = GteEncoder(tiny_bert, device="cpu", dtype="float32", analyzer="word:english")
    with pytest.raises(CollectionMismatchError) as err:
        MemoryStore(embed_model=other, location=tmp_path / "mem", settings=settings)
    assert "'word:none'" in str(err.value) and "'word:english'" in str(err.value)
