"""The first-token last layer, on and off, side by side in one run.

Where only position 0 of the last hidden state is read (a cross-encoder's classifier; CLS
pooling of dense vectors), gte_rag computes the last layer for that position alone. This
benchmark times the same component with the shortcut in place and taken out
(``remove_first_token_last_layer``), in float32 and in the default precision, and prints the
speed ratio and the largest output difference. Two models:

- ``ce``: the MiniLM-L6-sized cross-encoder of ``bench_rerank.py`` (6 layers, 384 hidden; the
  encoder weights of all-MiniLM-L6-v2 with a seeded random 1-label head) scoring ``--pairs``
  SciFact (query, document) pairs, max_length 512;
- ``enc``: a GTE encoder shaped like gte-multilingual-base (12 layers, 768 hidden, 12 heads,
  3072 gated MLP, rotary positions) with seeded random weights and the 8,000-token tokenizer of
  ``shared/fixtures/gte-legacy-tiny``, CLS pooling, embedding ``--docs`` SciFact documents
  (dense only), max_length 512. Random weights time the same arithmetic as trained ones.

Each configuration is warmed up, then timed over ``--repeats`` rounds in rotated order
(median reported). Writes benchmarks/results/bench_first_token-<timestamp>.json.

Run: python benchmarks/bench_first_token.py [--pairs 600] [--docs 120] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _rounds import time_rounds  # noqa: E402
from bench_rerank import DATA, build_checkpoint, load_pairs  # noqa: E402

FIXTURE_TOKENIZER = DATA.parent / "fixtures" / "gte-legacy-tiny" / "embedder"
RESULTS_DIR = ROOT / "benchmarks" / "results"


def build_gte_base(out: Path, seed: int = 0) -> Path:
    import shutil

    import torch
    from transformers import GteConfig, GteModel

    torch.manual_seed(seed)
    cfg = GteConfig(
        vocab_size=8000, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
        max_position_embeddings=8192, type_vocab_size=1, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        rope_parameters={"rope_type": "default", "rope_theta": 160000.0},
    )
    GteModel(cfg).save_pretrained(str(out))
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(FIXTURE_TOKENIZER / name, out / name)
    return out


def load_docs(n: int) -> list[str]:
    rows = [json.loads(line) for line in (DATA / "scifact" / "corpus.jsonl").open(encoding="utf-8")][:n]
    return [f"{d.get('title', '')}. {d['text']}".strip() for d in rows]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=600)
    parser.add_argument("--docs", type=int, default=120)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message=".*truncated.*")

    import torch

    from gte_rag.embed import GteEncoder
    from gte_rag.eval import run_metadata
    from gte_rag.models._first_token import remove_first_token_last_layer
    from gte_rag.rerank import GteCrossEncoder

    pairs = load_pairs(300, args.pairs)
    docs = load_docs(args.docs)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-first-token-") as tmp:
        ce_path = build_checkpoint(Path(tmp) / "ce")
        enc_path = build_gte_base(Path(tmp) / "enc")
        for model, dtype in (("ce", "float32"), ("ce", "auto"), ("enc", "float32"), ("enc", "auto")):
            systems: dict[str, Callable[[], np.ndarray]] = {}
            precision = ""
            for mode in ("first-token", "full"):
                if model == "ce":
                    ce = GteCrossEncoder(str(ce_path), max_length=512, dtype=dtype)
                    assert ce.first_token_only and ce._model is not None
                    if mode == "full":
                        remove_first_token_last_layer(ce._model)
                    precision = ce.precision.name
                    systems[mode] = lambda ce=ce: ce.score_pairs(pairs)
                else:
                    enc = GteEncoder(str(enc_path), max_length=512, dtype=dtype, cache_size=0, sparse="none")
                    assert enc.first_token_only
                    if mode == "full":
                        remove_first_token_last_layer(enc._model)
                    precision = enc.precision.name
                    systems[mode] = lambda enc=enc: enc.embed_documents(docs)
            print(f"{model} {precision}:", flush=True)
            for run in systems.values():
                run()  # warm-up
            times, outputs = time_rounds(systems, args.repeats, width=28)
            med = {name: statistics.median(s) for name, s in times.items()}
            diff = float(np.abs(outputs["first-token"] - outputs["full"]).max())
            rows.append({
                "model": model, "precision": precision, "median_seconds": med, "all_seconds": times,
                "speedup": med["full"] / med["first-token"], "max_abs_diff": diff,
            })
    print(f"\n{len(pairs)} pairs (ce), {len(docs)} documents (enc), {torch.get_num_threads()} threads, "
          f"median of {args.repeats}")
    print(f"{'model':<5} {'precision':<11} {'full s':>8} {'first-token s':>14} {'x full':>7} {'max |diff|':>11}")
    for row in rows:
        med = row["median_seconds"]
        print(f"{row['model']:<5} {row['precision']:<11} {med['full']:8.2f} {med['first-token']:14.2f} "
              f"{row['speedup']:7.2f} {row['max_abs_diff']:11.2e}")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"bench_first_token-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"metadata": run_metadata(), "args": vars(args), "rows": rows}, indent=2), encoding="utf-8")
    print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
