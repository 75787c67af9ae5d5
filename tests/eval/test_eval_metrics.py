"""evaluate_run against values worked out by hand, and against pytrec_eval directly."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import pytrec_eval

from gte_rag.errors import ConfigError
from gte_rag.eval import (
    DEFAULT_METRICS,
    BeirDataset,
    evaluate_run,
    evaluate_run_per_query,
    supported_metrics,
)

QRELS = {"q1": {"d1": 1}}


def test_default_metric_names() -> None:
    assert DEFAULT_METRICS == ("ndcg@10", "recall@100", "mrr@10")
    result = evaluate_run({"q1": {"d1": 0.5}}, QRELS)
    assert list(result) == ["ndcg@10", "recall@100", "mrr@10"]


def test_relevant_at_rank_1() -> None:
    result = evaluate_run({"q1": [("d1", 0.9), ("x", 0.5)]}, QRELS)
    assert result == {"ndcg@10": 1.0, "recall@100": 1.0, "mrr@10": 1.0}


def test_relevant_at_rank_2() -> None:
    result = evaluate_run({"q1": [("x", 0.9), ("d1", 0.5)]}, QRELS)
    # DCG = 1 / log2(2 + 1); the ideal DCG is 1 / log2(1 + 1) = 1
    assert result["ndcg@10"] == pytest.approx(1 / math.log2(3), abs=1e-12)
    assert result["mrr@10"] == 0.5
    assert result["recall@100"] == 1.0


def test_beyond_the_cutoffs() -> None:
    # relevant document at rank 11: outside nDCG@10 and MRR@10, inside Recall@100
    ranking = [(f"x{i}", 100.0 - i) for i in range(10)] + [("d1", 1.0)]
    assert evaluate_run({"q1": ranking}, QRELS) == {
        "ndcg@10": 0.0,
        "recall@100": 1.0,
        "mrr@10": 0.0,
    }
    # two relevant documents, one at rank 100 and one at rank 101
    qrels = {"q1": {"a": 1, "b": 1}}
    ranking = [(f"x{i}", 1000.0 - i) for i in range(99)] + [("a", 1.0), ("b", 0.5)]
    assert evaluate_run({"q1": ranking}, qrels, metrics=["recall@100"]) == {"recall@100": 0.5}


def test_graded_gains_are_linear() -> None:
    # grades: lo=1, hi=3; ranking lo, x, hi
    qrels = {"q1": {"lo": 1, "hi": 3, "zero": 0}}
    run = {"q1": [("lo", 3.0), ("x", 2.0), ("hi", 1.0)]}
    dcg = 1 / math.log2(2) + 3 / math.log2(4)  # 2.5
    ideal = 3 / math.log2(2) + 1 / math.log2(3)
    result = evaluate_run(run, qrels)
    assert result["ndcg@10"] == pytest.approx(dcg / ideal, abs=1e-12)
    assert result["mrr@10"] == 1.0  # grade 1 counts as relevant


def test_zero_grade_is_not_relevant() -> None:
    qrels = {"q1": {"bad": 0, "good": 2}}
    result = evaluate_run({"q1": [("bad", 2.0), ("good", 1.0)]}, qrels)
    assert result["mrr@10"] == 0.5
    assert result["ndcg@10"] == pytest.approx(1 / math.log2(3), abs=1e-12)


def test_missing_judged_query_counts_as_zero() -> None:
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1}}
    perfect_q1 = {"q1": [("d1", 1.0)]}
    expected = {"ndcg@10": 0.5, "recall@100": 0.5, "mrr@10": 0.5}
    assert evaluate_run(perfect_q1, qrels) == expected
    # an empty ranking is the same as an absent one
    assert evaluate_run({**perfect_q1, "q2": []}, qrels) == expected
    assert evaluate_run({}, qrels) == {"ndcg@10": 0.0, "recall@100": 0.0, "mrr@10": 0.0}


def test_query_with_only_nonrelevant_judgments_counts_as_zero() -> None:
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 0}}
    result = evaluate_run({"q1": [("d1", 1.0)], "q2": [("d2", 1.0)]}, qrels)
    assert result == {"ndcg@10": 0.5, "recall@100": 0.5, "mrr@10": 0.5}


def test_unjudged_run_queries_are_ignored() -> None:
    run = {"q1": [("d1", 1.0)], "other": [("z", 1.0)]}
    assert evaluate_run(run, QRELS)["ndcg@10"] == 1.0


def test_per_query_matches_mean() -> None:
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1}, "q3": {"d3": 2}}
    run = {"q1": [("x", 2.0), ("d1", 1.0)], "q3": [("d3", 1.0)]}
    per_query = evaluate_run_per_query(run, qrels, metrics=["mrr@10", "ndcg@10"])
    assert list(per_query) == ["q1", "q2", "q3"]
    assert per_query["q1"]["mrr@10"] == 0.5
    assert per_query["q2"] == {"mrr@10": 0.0, "ndcg@10": 0.0}
    assert list(per_query["q3"]) == ["mrr@10", "ndcg@10"]
    mean = evaluate_run(run, qrels, metrics=["mrr@10", "ndcg@10"])
    for name, value in mean.items():
        assert value == pytest.approx(sum(v[name] for v in per_query.values()) / 3, abs=1e-12)


def test_mapping_and_list_forms_agree() -> None:
    qrels = {"q1": {"b": 1, "c": 2}}
    as_list = {"q1": [("a", 0.9), ("b", 0.5), ("c", 0.1)]}
    as_map = {"q1": {"c": 0.1, "a": 0.9, "b": 0.5}}
    assert evaluate_run(as_list, qrels) == evaluate_run(as_map, qrels)


def test_list_is_sorted_by_score() -> None:
    result = evaluate_run({"q1": [("x", 0.1), ("d1", 0.05), ("y", 0.9)]}, QRELS)
    assert result["mrr@10"] == pytest.approx(1 / 3)


@pytest.mark.parametrize(
    ("ranking", "expected_mrr"),
    [
        ([("z", 1.0), ("d1", 1.0)], 0.5),
        ([("d1", 1.0), ("z", 1.0)], 1.0),
        ([("a", 1.0), ("d1", 1.0)], 0.5),
    ],
)
def test_ties_keep_input_order(ranking: list[tuple[str, float]], expected_mrr: float) -> None:
    # trec_eval itself would order tied documents by id, whatever the system returned
    assert evaluate_run({"q1": ranking}, QRELS, metrics=["mrr@10"]) == {"mrr@10": expected_mrr}
    assert evaluate_run({"q1": dict(ranking)}, QRELS, metrics=["mrr@10"]) == {
        "mrr@10": expected_mrr
    }


def test_ties_are_seen_alike_by_every_metric() -> None:
    # ir_measures computes RR@10 with its msmarco provider and nDCG@10 with pytrec_eval;
    # left to themselves the two break ties differently within one call
    result = evaluate_run({"q1": {"z": 1.0, "d1": 1.0}}, QRELS, metrics=["ndcg@10", "mrr@10"])
    assert result["mrr@10"] == 0.5
    assert result["ndcg@10"] == pytest.approx(1 / math.log2(3), abs=1e-12)


def test_numpy_scores_and_grades() -> None:
    run = {"q1": {"x": np.float32(0.9), "d1": np.float32(0.5)}}
    assert evaluate_run(run, {"q1": {"d1": np.int64(1)}}, metrics=["mrr@10"]) == {"mrr@10": 0.5}


def test_metric_names() -> None:
    result = evaluate_run(
        {"q1": [("d1", 1.0)]}, QRELS, metrics=["nDCG@5", "precision@1", "map@100"]
    )
    assert result == {"ndcg@5": 1.0, "precision@1": 1.0, "map@100": 1.0}
    assert evaluate_run({"q1": [("d1", 1.0)]}, QRELS, metrics="mrr@10") == {"mrr@10": 1.0}
    assert supported_metrics() == ("ndcg@k", "recall@k", "mrr@k", "precision@k", "map@k")


@pytest.mark.parametrize("name", ["bleu@10", "ndcg", "ndcg@0", "ndcg@ten", "recall@-1"])
def test_unknown_metric(name: str) -> None:
    with pytest.raises(
        ConfigError, match=r"unknown metric .*supported metrics are ndcg@k, recall@k"
    ):
        evaluate_run({}, QRELS, metrics=[name])


def test_no_metrics() -> None:
    with pytest.raises(ConfigError, match="metrics is empty"):
        evaluate_run({}, QRELS, metrics=[])


@pytest.mark.parametrize(
    ("run", "expected"),
    [
        ({"q1": [("d1", float("nan"))]}, r"run\['q1'\]\['d1'\] has score nan"),
        ({"q1": [("d1", "high")]}, r"has score 'high'"),
        ({"q1": [("d1", 1.0), ("d1", 0.5)]}, r"lists document 'd1' twice"),
        ({"q1": [("d1", 1.0, 3)]}, r"is not a \(doc id, score\) pair"),
        ({"q1": "d1"}, r"must be a mapping doc id -> score or a list"),
    ],
)
def test_bad_run(run: dict[str, object], expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        evaluate_run(run, QRELS)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("qrels", "expected"),
    [
        ({}, "qrels is empty"),
        ({"q1": {"d1": 0.5}}, r"qrels\['q1'\]\['d1'\] = 0.5 is not an integer grade"),
        ({"q1": ["d1"]}, r"qrels\['q1'\] must map doc id -> integer score"),
    ],
)
def test_bad_qrels(qrels: dict[str, object], expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        evaluate_run({}, qrels)  # type: ignore[arg-type]


# --- real collections -------------------------------------------------------------------


def _oracle_run(dataset: BeirDataset) -> dict[str, list[tuple[str, float]]]:
    """Judged documents by grade, best first, then one unjudged document."""
    filler = next(iter(dataset.corpus))
    run = {}
    for query_id, docs in dataset.qrels.items():
        ranked = sorted(docs.items(), key=lambda item: -item[1])
        pairs = [(doc_id, float(len(ranked) - i)) for i, (doc_id, _) in enumerate(ranked)]
        if filler not in docs:
            pairs.append((filler, 0.0))
        run[query_id] = pairs
    return run


@pytest.mark.parametrize("name", ["scifact", "cranfield"])
def test_oracle_run_scores_one(name: str, request: pytest.FixtureRequest) -> None:
    dataset: BeirDataset = request.getfixturevalue(name)
    result = evaluate_run(_oracle_run(dataset), dataset.qrels)
    # every judged query has a relevant document in both sets, and none has more than 100
    assert result == pytest.approx({"ndcg@10": 1.0, "recall@100": 1.0, "mrr@10": 1.0}, abs=1e-12)
    # dropping half the queries halves every mean (more or less: 225 is odd)
    kept = dict(list(_oracle_run(dataset).items())[::2])
    half = evaluate_run(kept, dataset.qrels)
    assert half["ndcg@10"] == pytest.approx(len(kept) / len(dataset.qrels), abs=1e-12)


def test_ir_measures_agrees_with_pytrec_eval(cranfield: BeirDataset) -> None:
    """Two maintained implementations on one random run over the graded Cranfield qrels."""
    rng = random.Random(1234)
    doc_ids = list(cranfield.corpus)
    run: dict[str, dict[str, float]] = {}
    for query_id, judged in cranfield.qrels.items():
        # a mix of judged and random documents, random distinct scores (no ties)
        candidates = set(rng.sample(sorted(judged), k=max(1, len(judged) // 2)))
        candidates.update(rng.sample(doc_ids, k=150))
        run[query_id] = {d: rng.random() for d in candidates}

    evaluator = pytrec_eval.RelevanceEvaluator(
        {q: dict(d) for q, d in cranfield.qrels.items()}, {"ndcg_cut.10", "recall.100"}
    )
    reference = evaluator.evaluate(run)
    assert set(reference) == set(cranfield.qrels)
    per_query = evaluate_run_per_query(run, cranfield.qrels, metrics=["ndcg@10", "recall@100"])
    for query_id, values in per_query.items():
        assert values["ndcg@10"] == pytest.approx(reference[query_id]["ndcg_cut_10"], abs=1e-6)
        assert values["recall@100"] == pytest.approx(reference[query_id]["recall_100"], abs=1e-6)
    # trec_eval's recip_rank has no cutoff: on the top 10 only, it is RR@10
    top10 = {
        q: dict(sorted(docs.items(), key=lambda item: -item[1])[:10]) for q, docs in run.items()
    }
    rr = pytrec_eval.RelevanceEvaluator(
        {q: dict(d) for q, d in cranfield.qrels.items()}, {"recip_rank"}
    ).evaluate(top10)
    mrr = evaluate_run_per_query(run, cranfield.qrels, metrics=["mrr@10"])
    assert {q: v["mrr@10"] for q, v in mrr.items()} == pytest.approx(
        {q: v["recip_rank"] for q, v in rr.items()}, abs=1e-6
    )
    mean = evaluate_run(run, cranfield.qrels, metrics=["ndcg@10"])["ndcg@10"]
    expected = sum(v["ndcg_cut_10"] for v in reference.values()) / len(reference)
    assert mean == pytest.approx(expected, abs=1e-6)
    assert 0.0 < mean < 1.0
