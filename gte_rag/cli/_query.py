"""``gte-rag query``: hybrid search with each branch's rank and score, filters, reranking, JSON."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

from ._common import add_kb_args, model_options, open_kb, snippet, table

__all__ = ["cmd_query", "parse_filters", "register"]


def _typed(value: str) -> list[Any]:
    """The payload values ``value`` may stand for: the string, and an int or a bool it spells."""
    out: list[Any] = [value]
    if value.lower() in ("true", "false"):
        out.append(value.lower() == "true")
    else:
        try:
            out.append(int(value))
        except ValueError:
            pass
    return out


def parse_filters(items: Sequence[str] | None) -> Any:
    """``key=value`` strings as one Qdrant filter (all must hold), or ``None``.

    Raises:
        ConfigError: an item is not ``key=value``.
    """
    if not items:
        return None
    from qdrant_client import models

    from ..errors import ConfigError

    must: list[Any] = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--filter {item!r} is not key=value; write e.g. --filter file_name=notes.md")
        options = [models.FieldCondition(key=key.strip(), match=models.MatchValue(value=v)) for v in _typed(value)]
        must.append(options[0] if len(options) == 1 else models.Filter(should=options))  # type: ignore[arg-type]
    return models.Filter(must=must)


def _branch_ranks(hits: Sequence[Any]) -> dict[str, tuple[int, float]]:
    return {h.id: (i + 1, float(h.score)) for i, h in enumerate(hits)}


def _search(kb: Any, question: str, args: argparse.Namespace, flt: Any, reranker: Any) -> dict[str, Any]:
    from ..qdrant import HybridConfig

    config = kb.hybrid
    fused = kb.query(question, top_k=args.top_k, filter=flt, hybrid=config)
    depth = max(4 * args.top_k, 100)  # deep enough that a fused hit's branch rank is usually found
    branches: dict[str, dict[str, tuple[int, float]]] = {}
    if config.mode == "hybrid":  # the encoder's cache makes these two one forward pass with the fused query
        for mode in ("dense", "sparse"):
            branch = kb.query(question, top_k=depth, filter=flt, hybrid=HybridConfig(mode=mode))
            branches[mode] = _branch_ranks(branch)
    else:
        branches[config.mode] = _branch_ranks(fused)
    hits = []
    for rank, h in enumerate(fused, start=1):
        entry: dict[str, Any] = {
            "rank": rank, "id": h.id, "score": float(h.score), "doc_id": h.payload.get("doc_id"),
            "file_name": h.payload.get("file_name"), "text": h.payload.get("text", ""),
        }
        for mode in ("dense", "sparse"):
            if mode in branches:
                found = branches[mode].get(h.id)
                entry[mode] = {"rank": found[0], "score": found[1]} if found else None
        hits.append(entry)
    if reranker is not None and hits:
        scores = reranker.score_pairs([(question, h["text"]) for h in hits])
        for h, s in zip(hits, scores):
            h["rerank_score"] = float(s)
        hits.sort(key=lambda h: -h["rerank_score"])
    return {"query": question, "mode": config.mode, "fusion": config.fusion if config.mode == "hybrid" else None, "hits": hits}


def _branch_cell(value: dict[str, Any] | None, depth: int) -> str:
    return f">{depth}" if value is None else f"#{value['rank']} {value['score']:.3f}"


def _print_result(result: dict[str, Any], depth: int) -> None:
    print(f"\nQuery: {result['query']}")
    hits = result["hits"]
    if not hits:
        print("  no results (is the knowledge base empty, or does --filter exclude everything?)")
        return
    has = {k: any(k in h for h in hits) for k in ("dense", "sparse", "rerank_score")}
    headers = ["#", "fused" if result["mode"] == "hybrid" else "score"]
    headers += [k for k in ("dense", "sparse") if has[k] and result["mode"] == "hybrid"]
    headers += ["rerank"] if has["rerank_score"] else []
    headers += ["document", "text"]
    rows = []
    for i, h in enumerate(hits, start=1):
        row: list[Any] = [i, f"{h['score']:.4f}"]
        row += [_branch_cell(h[k], depth) for k in ("dense", "sparse") if has[k] and result["mode"] == "hybrid"]
        row += [f"{h['rerank_score']:.4f}"] if has["rerank_score"] else []
        row += [snippet(str(h["file_name"] or h["doc_id"] or h["id"]), 28), snippet(h["text"], 60)]
        rows.append(row)
    print(table(rows, headers))


def _legend(mode: str, fusion: str | None, depth: int, rerank: bool) -> str:
    if mode != "hybrid":
        text = f"score: {'cosine similarity' if mode == 'dense' else 'sparse dot product'} of the {mode} branch"
    else:
        fused = {"rrf": "reciprocal rank fusion", "dbsf": "distribution-based score fusion",
                 "weighted": "dense * 1.0 + sparse * 0.1"}[fusion or "dbsf"]
        text = (f"fused: {fused} of the two branches; dense, sparse: the hit's rank and score in that branch "
                f"alone (dense: cosine, sparse: dot product; >{depth}: not in its top {depth})")
    return text + ("; rerank: the cross-encoder's score, which orders the list" if rerank else "")


def cmd_query(args: argparse.Namespace) -> int:
    flt = parse_filters(args.filter)
    start = time.perf_counter()
    depth = max(4 * args.top_k, 100)
    with open_kb(args) as kb:
        reranker = None
        if args.rerank:
            from ..rerank import GteCrossEncoder

            reranker = GteCrossEncoder(args.rerank, **model_options(args))
        results = [_search(kb, q, args, flt, reranker) for q in args.queries]
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(_legend(results[0]["mode"], results[0]["fusion"], depth, reranker is not None))
    for result in results:
        _print_result(result, depth)
    found = sum(len(r["hits"]) for r in results)
    print(f"\n{len(results)} {'query' if len(results) == 1 else 'queries'}, {found} hits "
          f"({results[0]['mode']}{' ' + str(results[0]['fusion']) if results[0]['fusion'] else ''}"
          f"{', reranked' if reranker else ''}) in {time.perf_counter() - start:.2f}s", file=sys.stdout)
    return 0


def register(sub: Any) -> None:
    """Add ``query`` to the sub-command parsers."""
    p = sub.add_parser("query", help="search a knowledge base: fused score and each branch's rank, filters, reranking")
    p.add_argument("queries", nargs="+")
    add_kb_args(p, required=True)
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--mode", choices=["dense", "sparse", "hybrid"], default="hybrid")
    p.add_argument("--fusion", choices=["dbsf", "rrf", "weighted"], default="dbsf", help="default: dbsf, the library default")
    p.add_argument("--filter", action="append", default=None, metavar="KEY=VALUE",
                   help="keep only chunks whose payload field KEY equals VALUE (repeatable: all must hold)")
    p.add_argument("--rerank", default=None, metavar="MODEL", help="rerank the hits with this cross-encoder")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(func=cmd_query)
