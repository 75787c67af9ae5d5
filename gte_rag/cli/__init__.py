"""The ``gte-rag`` command: demo, index, query, ask, eval, models, info and migrate.

Heavy imports happen inside the sub-commands, so ``gte-rag --help`` answers at once. Each
sub-command is a ``cmd_*`` function taking the parsed arguments; the larger ones live in
their own module with a ``register(sub)`` that adds their parser (``_query``, ``_ask``, ``_inspect``).
Errors the library raises on purpose are printed as one line, ending in the fix.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from ..qdrant._query import FusionMethod, QueryMode

from ._common import DEFAULT_KB_MODEL, add_kb_args, add_model_args, model_options, open_kb, snippet, table

__all__ = ["DEFAULT_KB_MODEL", "build_parser", "main"]

def _print_hits(query: str, hits: Sequence[Any]) -> None:
    print(f"\nQuery: {query}")
    rows = [(i + 1, f"{h.score:.4f}", snippet(str(h.payload.get("file_name") or h.payload.get("doc_id", h.id)), 28), snippet(h.payload.get("text", ""))) for i, h in enumerate(hits)]
    print(table(rows, ["#", "score", "document", "text"]))


def cmd_demo(args: argparse.Namespace) -> int:
    from ..kb import KnowledgeBase, SourceDocument
    from ._demo_corpus import DEMO_DOCUMENTS, DEMO_QUERIES

    print(f"gte-rag demo: model {args.model}, Qdrant Edge in {'a temporary directory' if args.kb is None else args.kb}")
    start = time.perf_counter()
    with KnowledgeBase(args.kb, model=args.model, encoder_options=model_options(args, encoder=True)) as kb:
        print(f"encoder: {kb.encoder!r}")
        stats = kb.add_documents([SourceDocument(k, v, {"source": "demo"}) for k, v in DEMO_DOCUMENTS.items()], show_progress=True)
        print(f"indexed {stats.documents} documents as {stats.chunks} chunks in {stats.total_seconds:.1f}s "
              f"(encoder {stats.encode_seconds:.1f}s)")
        for q in DEMO_QUERIES:
            _print_hits(q, kb.query(q, top_k=args.top_k))
    print(f"\ndone in {time.perf_counter() - start:.1f}s")
    return 0


def cmd_index(args: argparse.Namespace) -> int:
    if args.source is not None and len(args.paths) != 1:
        print("gte-rag: error: --source names one folder; index several folders in separate runs", file=sys.stderr)
        return 2
    with open_kb(args, chunk_size=args.chunk_size, long_docs=args.long_docs) as kb:
        stats = kb.add_files(args.paths, source=args.source, show_progress=True)
        if not args.no_optimize:
            kb.optimize()  # build the search indexes now rather than on first queries
        print(table(
            [(stats.added, stats.updated, stats.unchanged, stats.removed, stats.skipped_empty, stats.chunks,
              f"{stats.total_seconds:.1f}", kb.count())],
            ["added", "updated", "unchanged", "removed", "empty", "chunks written", "seconds", "points in collection"],
        ))
        files = stats.added + stats.updated + stats.unchanged
        print(f"\nindexed {files} files ({stats.added} added, {stats.updated} updated, {stats.removed} removed) "
              f"in {stats.total_seconds:.1f}s; {args.kb} holds {kb.count()} points")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from ..eval import DEFAULT_METRICS, evaluate_run, format_comparison, load_beir, run_metadata
    from ..kb import KnowledgeBase, SourceDocument
    from ..qdrant import HybridConfig

    data = load_beir(args.dataset, qrels=args.qrels)
    modes = args.mode.split(",")
    fusions = args.fusion.split(",")
    systems = [(m, f) for m in modes for f in (fusions if m == "hybrid" else [""])]
    print(f"{data.name}: {len(data.corpus)} documents, {len(data.queries)} judged queries; model {args.model}")
    qids = sorted(data.queries)
    results: dict[str, dict[str, float]] = {}
    runs: dict[str, dict[str, dict[str, float]]] = {}
    long_docs = args.long_docs
    metrics = [*DEFAULT_METRICS, "recall@1", "recall@5"] if long_docs else list(DEFAULT_METRICS)
    # without --long-docs each document stays one (truncated) point, as eval has always scored them
    kb_options: dict[str, Any] = {"long_docs": long_docs or "off"}
    with KnowledgeBase(
        args.kb, model=args.model, chunk_size=0, collection="eval", encoder_options=model_options(args, encoder=True), **kb_options
    ) as kb:
        print(f"encoder: {kb.encoder!r}")
        if long_docs:
            settings = kb.long_doc.settings() if kb.long_doc is not None else "off (collection without them)"
            print(f"long documents: {long_docs} -> {settings}; a document scores its best chunk")
        docs = [SourceDocument(d.id, d.full_text) for d in data.corpus.values() if d.full_text.strip()]
        stats = kb.add_documents(docs, show_progress=True)
        print(f"indexed {stats.documents} documents in {stats.total_seconds:.1f}s")
        precision = getattr(getattr(kb.encoder, "precision", None), "name", "remote")
        qout = kb.encoder.encode([data.queries[q] for q in qids], role="query", show_progress=True)
        for mode, fusion in systems:
            cfg = HybridConfig(mode=cast("QueryMode", mode), fusion=cast("FusionMethod", fusion or "dbsf"))  # validated there
            name = f"{mode}-{fusion}" if fusion else mode
            run: dict[str, dict[str, float]] = {}
            for i, qid in enumerate(qids):
                if long_docs:
                    # the knowledge base's own document search: chunks grouped by document, best chunk first
                    groups = kb.store.query_groups(
                        qout.dense[i], qout.sparse[i] if qout.sparse else None, top_k=args.top_k, group_size=1,
                        hybrid=cfg,
                    )
                    run[qid] = {g.doc_id: g.score for g in groups}
                    continue
                hits = kb.store.query(qout.dense[i], qout.sparse[i] if qout.sparse else None, top_k=args.top_k, hybrid=cfg)
                per_doc: dict[str, float] = {}
                for h in hits:  # best first: a document keeps its best hit's score
                    per_doc.setdefault(str(h.payload["doc_id"]), h.score)
                run[qid] = per_doc
            runs[name] = run
            results[name] = evaluate_run(run, data.qrels, metrics=metrics)
        if args.rerank:
            from ..rerank import GteCrossEncoder

            reranker = GteCrossEncoder(args.rerank, **model_options(args))
            print(f"reranker: {reranker!r}")
            base = list(runs)[-1]
            reranked: dict[str, dict[str, float]] = {}
            for qid in qids:
                ranked = sorted(runs[base][qid].items(), key=lambda kv: -kv[1])
                head = [d for d, _ in ranked[: args.rerank_top_k]]
                scores = reranker.score_pairs([(data.queries[qid], data.corpus[d].full_text) for d in head])
                order = [d for d, _ in sorted(zip(head, scores), key=lambda kv: -float(kv[1]))]
                final = order + [d for d, _ in ranked[args.rerank_top_k :]]
                reranked[qid] = {d: float(len(final) - pos) for pos, d in enumerate(final)}
            results[f"{base}+rerank"] = evaluate_run(reranked, data.qrels, metrics=metrics)
    print()
    print(format_comparison(results))
    if args.json:
        primary = list(results)[-1]
        payload: dict[str, Any] = dict(results[primary])
        payload["system"] = primary
        if len(results) > 1:
            payload["systems"] = results
        payload["dataset"] = str(args.dataset)
        payload["model"] = args.model
        payload["precision"] = precision
        if long_docs:
            payload["long_docs"] = long_docs
        payload["metadata"] = run_metadata()
        Path(args.json).write_text(json.dumps(payload, indent=2), encoding="utf-8")
        print(f"\nwrote {args.json}")
    best = max(results, key=lambda k: results[k].get("ndcg@10", 0.0))
    print(f"\nevaluated {len(results)} systems on {len(qids)} judged queries of {data.name}; best ndcg@10: "
          f"{best} {results[best].get('ndcg@10', 0.0):.4f}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``gte-rag``."""
    parser = argparse.ArgumentParser(prog="gte-rag", description="GTE embeddings + Qdrant hybrid search for RAG.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log INFO messages")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="index a small built-in document set offline and run a few queries")
    p.add_argument("--model", default=DEFAULT_KB_MODEL)
    p.add_argument("--kb", default=None, help="keep the demo knowledge base in this directory")
    p.add_argument("--top-k", type=int, default=3)
    add_model_args(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("index", help="index text, markdown and PDF files; a folder is mirrored (deleted or emptied files lose their chunks)")
    p.add_argument("paths", nargs="+", help="files or directories")
    add_kb_args(p, required=True)
    p.add_argument("--chunk-size", type=int, default=None, help="tokens per chunk (default: model limit, at most 512)")
    p.add_argument(
        "--source", default=None,
        help="name of the folder's source (default: its absolute path); a moved folder indexed under the "
        "same name keeps its documents",
    )
    p.add_argument("--no-optimize", action="store_true", help="skip building the search indexes after indexing")
    p.add_argument(
        "--long-docs", default=None, choices=["truncate", "chunks", "late", "default", "off"],
        help="how documents longer than one window are stored (default: the collection's recorded choice, "
        "'default' for a new one: plain chunks and a document multivector, searched hybrid by document)",
    )
    p.set_defaults(func=cmd_index)

    from . import _ask, _inspect, _query

    _query.register(sub)
    _ask.register(sub)
    p = sub.add_parser("eval", help="score retrieval on a BEIR-format folder (judged queries only)")
    p.add_argument("dataset", type=Path)
    p.add_argument("--model", default=DEFAULT_KB_MODEL)
    p.add_argument("--mode", default="hybrid", help="dense, sparse, hybrid, or a comma-separated list")
    p.add_argument("--fusion", default="dbsf", help="dbsf (the library default), rrf, weighted, or a comma-separated list")
    p.add_argument("--qrels", type=Path, default=None, help="qrels file (default: DATASET/qrels.tsv)")
    p.add_argument("--json", type=Path, default=None, help="write ndcg@10, recall@100, mrr@10 here")
    p.add_argument("--top-k", type=int, default=100)
    p.add_argument("--kb", default=None, help="directory for the evaluation index (default: temporary)")
    p.add_argument("--rerank", default=None, help="cross-encoder model to rerank with")
    p.add_argument("--rerank-top-k", type=int, default=100, help="candidates given to the reranker")
    p.add_argument(
        "--long-docs", default=None, choices=["truncate", "chunks", "late", "default"],
        help="store documents longer than one window this way and score a document by its best chunk; "
        "default: what gte-rag index and KnowledgeBase do (adds recall@1 and recall@5)",
    )
    add_model_args(p)
    p.set_defaults(func=cmd_eval)

    _inspect.register(sub)
    from . import _migrate

    _migrate.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gte-rag`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from ..errors import GteRagError

    with warnings.catch_warnings():
        # truncation notices are expected in bulk indexing; the CLI reports counts instead
        warnings.filterwarnings("ignore", message=".*exceed max_length.*")
        try:
            return int(args.func(args))
        except GteRagError as exc:
            print(f"gte-rag: error: {' '.join(str(exc).split())}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("gte-rag: interrupted", file=sys.stderr)
            return 130
