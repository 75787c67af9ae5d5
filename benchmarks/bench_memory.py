"""Long-term memory on LoCoMo: evidence recall@5/@10 per question, within its own conversation.

One run, one table. The memories of each LoCoMo conversation are written under their own
``user_id`` (the conversation, ``metadata.sample_id``), one ``add`` call per chat session (its
turns as messages: speaker, text, the session's date), into ONE :class:`gte_rag.MemoryStore`
on Qdrant Edge; every question is asked with ``user_id=`` its conversation and ``now=`` the
conversation's last session date (a user asking after the last chat). Rows:

- ``dense`` / ``sparse``: one branch alone (no recency, importance or neighbour step);
- ``hybrid rrf k=60``: plain RRF of the two (the package's default ``k``);
- ``hybrid``: dense + sparse, RRF with the memory default ``k=20``;
- ``+ context``: + the third branch, the context vector (each turn with the two before it);
- ``+ recency``: + recency decay and importance in the same formula query;
- ``+ neighbours`` = ``default``: ``MemoryStore`` defaults (+ neighbour scoring among candidates);
- ``session-level``: one memory per chat session (the whole session as one text; MiniLM reads
  its first 256 tokens), scored against the session qrels (``session_level/qrels.tsv``);
- ``llama-index VectorMemoryBlock``: LlamaIndex's block on the same MiniLM (``GteEmbedding``)
  over LlamaIndex's ``QdrantVectorStore`` (local mode), one block per conversation, one
  ``aput`` per turn (its finest granularity), ``similarity_top_k=10``.

Recall@k comes from ``ir_measures`` (``gte_rag.eval.evaluate_run``) over the judged questions;
``dev`` is conv-26 + conv-30 (where the memory defaults were chosen), ``held-out`` the three
other conversations. Latency: p50 of ``add`` per call (one session) and per turn, and of
``search`` per call. The encoder caches query vectors: the first row (``dense``) pays each
question's encoding, the later rows reuse it, so their column times Qdrant and the scoring only.

Run: ``python benchmarks/bench_memory.py`` (about 10 minutes on 2 CPU cores; ``--json out.json``).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("GTE_RAG_DATA_DIR", HERE.parent.parent / "shared" / "data")) / "locomo"
MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DEV = {"conv-26", "conv-30"}


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.open(encoding="utf-8")]


def _qrels(path: Path) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = defaultdict(dict)
    with path.open(encoding="utf-8") as f:
        next(f)
        for line in f:
            qid, did, score = line.rstrip("\n").split("\t")
            out[qid][did] = int(score)
    return dict(out)


def _date(text: str) -> dt.datetime:
    return dt.datetime.strptime(text.strip(), "%I:%M %p on %d %B, %Y").replace(tzinfo=dt.timezone.utc)


def _speaker_split(text: str, speaker: str) -> str:
    prefix = speaker + ": "
    return text[len(prefix):] if text.startswith(prefix) else text


def _recall(run: dict[str, list[str]], qrels: dict[str, dict[str, int]], convs: set[str] | None) -> dict[str, float]:
    from gte_rag.eval import evaluate_run

    judged = {q: rel for q, rel in qrels.items() if convs is None or q.split(":")[0] in convs}
    if not judged:
        return {"recall@5": float("nan"), "recall@10": float("nan")}
    ranked = {q: [(d, float(-i)) for i, d in enumerate(run.get(q, []))] for q in judged}
    return evaluate_run(ranked, judged, metrics=["recall@5", "recall@10"])


def _p50(xs: list[float]) -> float:
    return statistics.median(xs) * 1000.0 if xs else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, default=HERE / "results" / "bench_memory.json")
    parser.add_argument("--skip-llama-index", action="store_true")
    args = parser.parse_args()
    if not (DATA / "corpus.jsonl").is_file():
        print(f"needs ../shared/data/locomo (not found at {DATA})", file=sys.stderr)
        return 2

    from gte_rag.embed import GteEncoder
    from gte_rag.eval import run_metadata
    from gte_rag.memory import MemorySettings, MemoryStore

    turns = _jsonl(DATA / "corpus.jsonl")
    questions = {q["_id"]: q for q in _jsonl(DATA / "queries.jsonl")}
    qrels = _qrels(DATA / "qrels.tsv")
    session_docs = _jsonl(DATA / "session_level" / "corpus.jsonl")
    session_qrels = _qrels(DATA / "session_level" / "qrels.tsv")
    sessions: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for t in turns:
        sessions[(t["metadata"]["sample_id"], t["metadata"]["session"])].append(t)
    conv_end: dict[str, dt.datetime] = {}
    for (conv, _), rows in sessions.items():
        when = _date(rows[0]["metadata"]["session_date_time"])
        conv_end[conv] = max(conv_end.get(conv, when), when)

    encoder = GteEncoder(MODEL, device="cpu")
    root = Path(tempfile.mkdtemp(prefix="bench_memory_"))
    defaults = MemorySettings()
    memory = MemoryStore(embed_model=encoder, location=str(root / "turns"), settings=defaults)
    add_call: list[float] = []
    add_turn: list[float] = []
    by_memory: dict[str, str] = {}
    duplicates = 0
    t_ingest = time.perf_counter()
    for (conv, number), rows in sorted(sessions.items()):
        messages = [{"name": t["metadata"]["speaker"], "content": _speaker_split(t["text"], t["metadata"]["speaker"]),
                     "timestamp": _date(t["metadata"]["session_date_time"])} for t in rows]
        start = time.perf_counter()
        result = memory.add(messages, user_id=conv, session_id=f"S{number}")
        took = time.perf_counter() - start
        add_call.append(took)
        add_turn.append(took / len(rows))
        duplicates += len(result.duplicates)
        for t, event in zip(rows, result.events):
            by_memory.setdefault(event.id, t["_id"])
    ingest_s = time.perf_counter() - t_ingest

    off = dict(recency_weight=0.0, importance_weight=0.0, neighbour_weight=0.0)
    systems: list[tuple[str, MemorySettings]] = [
        ("dense", defaults.with_options(mode="dense", **off)),
        ("sparse", defaults.with_options(mode="sparse", **off)),
        ("hybrid rrf k=60", defaults.with_options(use_context=False, rrf_k=60, **off)),
        ("hybrid", defaults.with_options(use_context=False, **off)),
        ("+ context", defaults.with_options(**off)),
        ("+ recency", defaults.with_options(neighbour_weight=0.0)),
        ("+ neighbours (default)", defaults),
        ("default, no context vector", defaults.with_options(use_context=False)),
    ]
    rows_out: list[dict[str, Any]] = []
    search_times: dict[str, list[float]] = defaultdict(list)
    judged = [q for q in questions if q in qrels]
    for name, settings in systems:
        run: dict[str, list[str]] = {}
        for qid in judged:
            conv = questions[qid]["metadata"]["sample_id"]
            start = time.perf_counter()
            hits = memory.search(questions[qid]["text"], user_id=conv, top_k=10, now=conv_end[conv], settings=settings)
            search_times[name].append(time.perf_counter() - start)
            run[qid] = [by_memory[h.id] for h in hits]
        rows_out.append({"system": name, "all": _recall(run, qrels, None), "dev": _recall(run, qrels, DEV),
                         "held_out": _recall(run, qrels, set(conv_end) - DEV), "search_p50_ms": _p50(search_times[name])})
    memory.close()

    # session-level memories: one memory per chat session
    sess_memory = MemoryStore(embed_model=encoder, location=str(root / "sessions"), settings=defaults)
    by_session: dict[str, str] = {}
    sess_add: list[float] = []
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sessions run past MiniLM's 256 tokens: truncation is the point
        for doc in session_docs:
            conv = doc["_id"].split(":")[0]
            start = time.perf_counter()
            res = sess_memory.add(doc["text"], user_id=conv, session_id=doc["_id"].split(":")[1],
                                  timestamp=_date(doc["title"].split("(", 1)[1].rstrip(")")))
            sess_add.append(time.perf_counter() - start)
            by_session[res.ids[0]] = doc["_id"]
        run = {}
        times: list[float] = []
        for qid in [q for q in questions if q in session_qrels]:
            conv = questions[qid]["metadata"]["sample_id"]
            start = time.perf_counter()
            hits = sess_memory.search(questions[qid]["text"], user_id=conv, top_k=10, now=conv_end[conv])
            times.append(time.perf_counter() - start)
            run[qid] = [by_session[h.id] for h in hits]
    sess_memory.close()
    rows_out.append({"system": "session-level (default, session qrels)", "all": _recall(run, session_qrels, None),
                     "dev": _recall(run, session_qrels, DEV), "held_out": _recall(run, session_qrels, set(conv_end) - DEV),
                     "search_p50_ms": _p50(times), "add_p50_ms": _p50(sess_add)})

    if not args.skip_llama_index:
        rows_out.append(asyncio.run(_vector_memory_block(encoder, turns, questions, qrels, judged)))

    meta = run_metadata()
    summary = {
        "ingest_s": ingest_s, "add_call_p50_ms": _p50(add_call), "add_turn_p50_ms": _p50(add_turn),
        "duplicates_dropped": duplicates, "turns": len(turns), "questions": len(judged),
        "settings": {k: getattr(defaults, k) for k in defaults.__dataclass_fields__},
    }
    print(f"LoCoMo evidence recall, {len(judged)} judged questions, {len(turns)} turns, MiniLM ({encoder.precision.name}), "
          f"commit {meta.get('git_commit')}{' (dirty)' if meta.get('git_dirty') else ''}")
    print(f"{'system':42s} {'R@5':>6s} {'R@10':>6s} {'dev R@10':>9s} {'held-out R@10':>14s} {'search p50 ms':>14s}")
    for row in rows_out:
        a, d, h = row["all"], row["dev"], row["held_out"]
        print(f"{row['system']:42s} {100 * a['recall@5']:6.1f} {100 * a['recall@10']:6.1f} {100 * d['recall@10']:9.1f} "
              f"{100 * h['recall@10']:14.1f} {row['search_p50_ms']:14.1f}")
    print(f"add p50: {summary['add_call_p50_ms']:.0f} ms per call (one session), {summary['add_turn_p50_ms']:.1f} ms per turn; "
          f"ingest {ingest_s:.0f} s; near/exact duplicates dropped: {duplicates}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"rows": rows_out, "summary": summary, "meta": meta}, indent=2, default=str))
    return 0


async def _vector_memory_block(
    encoder: Any, turns: list[dict[str, Any]], questions: dict[str, Any], qrels: dict[str, dict[str, int]],
    judged: list[str],
) -> dict[str, Any]:
    from llama_index.core.base.llms.types import ChatMessage
    from llama_index.core.memory.memory_blocks.vector import VectorMemoryBlock
    from llama_index.vector_stores.qdrant import QdrantVectorStore
    from qdrant_client import AsyncQdrantClient, QdrantClient

    from gte_rag.llama_index import GteEmbedding

    embed = GteEmbedding.from_encoder(encoder)
    blocks: dict[str, VectorMemoryBlock] = {}
    text_to_turn: dict[tuple[str, str], str] = {}
    adds: list[float] = []
    for t in turns:
        conv = t["metadata"]["sample_id"]
        if conv not in blocks:
            store = QdrantVectorStore(collection_name=conv.replace("-", "_"), client=QdrantClient(":memory:"),
                                      aclient=AsyncQdrantClient(":memory:"))
            blocks[conv] = VectorMemoryBlock(vector_store=store, embed_model=embed, similarity_top_k=10)
        start = time.perf_counter()
        await blocks[conv].aput([ChatMessage(role="user", content=t["text"])])
        adds.append(time.perf_counter() - start)
        text_to_turn.setdefault((conv, f"<message role='user'>{t['text']}</message>"), t["_id"])
    run: dict[str, list[str]] = {}
    times: list[float] = []
    for qid in judged:
        conv = questions[qid]["metadata"]["sample_id"]
        start = time.perf_counter()
        text = await blocks[conv].aget([ChatMessage(role="user", content=questions[qid]["text"])])
        times.append(time.perf_counter() - start)
        run[qid] = [text_to_turn[(conv, part)] for part in text.split("\n\n") if (conv, part) in text_to_turn]
    return {"system": "llama-index VectorMemoryBlock (same MiniLM)", "all": _recall(run, qrels, None),
            "dev": _recall(run, qrels, DEV), "held_out": _recall(run, qrels, {q.split(':')[0] for q in judged} - DEV),
            "search_p50_ms": _p50(times), "add_p50_ms": _p50(adds)}


if __name__ == "__main__":
    raise SystemExit(main())
