"""One behaviour suite, run against every rerank protocol's real loopback server."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.schema import NodeWithScore, TextNode
from remote_servers import FAST, FakeService, Fault

from gte_rag.errors import RemoteRequestError, RemoteResponseError, RemoteServiceError
from gte_rag.llama_index import GteReranker, RemoteReranker
from gte_rag.remote import RemoteScorer

QUERY = "how do plants make oxygen?"
DOCS = [
    "Plants create oxygen through photosynthesis.",
    "Rust is a systems programming language that prevents memory errors.",
    "Green plants turn light into chemical energy in their leaves.",
    "The Eiffel Tower is in Paris, the capital of France.",
    "Photosynthesis splits water and releases oxygen into the air.",
    "Bees pollinate flowers and make honey from nectar.",
    "Light travels faster than sound.",
    "Forests and algae keep the atmosphere breathable.",
    "Water boils at one hundred degrees at sea level.",
    "Chlorophyll absorbs sunlight and fixes carbon dioxide into sugars.",
]

CASES: dict[str, dict[str, Any]] = {
    "tei": {"protocol": "tei", "raw_scores": True},
    "cohere": {"protocol": "cohere", "model_name": "rerank-tiny"},
    "vllm": {"protocol": "vllm", "model_name": "rerank-tiny"},
    "vllm-score": {"protocol": "vllm", "model_name": "rerank-tiny", "vllm_endpoint": "score"},
    "dashscope": {"protocol": "dashscope"},
}
PATHS = {"tei": "/rerank", "cohere": "/v1/rerank", "vllm": "/rerank", "vllm-score": "/score",
         "dashscope": "/api/v1/services/rerank/text-rerank/text-rerank"}
ENV = {"tei": "TEI_API_KEY", "cohere": "COHERE_API_KEY", "vllm": "VLLM_API_KEY", "dashscope": "DASHSCOPE_API_KEY"}


@pytest.fixture(params=sorted(CASES))
def case(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _server(serve: Callable[..., FakeService], case: str, **kw: Any) -> FakeService:
    return serve(case.split("-")[0], **kw)


def _reranker(service: FakeService, case: str, settings: dict[str, Any] | None = None, **kw: Any) -> RemoteReranker:
    return RemoteReranker(url=service.url, settings={**FAST, **(settings or {})}, **{"top_n": 100, **CASES[case], **kw})


def _nodes(docs: list[str] = DOCS) -> list[NodeWithScore]:
    return [NodeWithScore(node=TextNode(text=d, id_=f"n{i}"), score=float(i)) for i, d in enumerate(docs)]


def _sizes(service: FakeService, case: str) -> list[int]:
    out = []
    for r in service.requests:
        b = r.body
        docs = b.get("texts") or b.get("documents") or b.get("text_2") or (b.get("input") or {}).get("documents")
        out.append(len(docs))
    return out


def _check(out: list[NodeWithScore], local: Any, docs: list[str] = DOCS) -> None:
    ref = GteReranker.from_cross_encoder(local, top_n=100).postprocess_nodes(_nodes(docs), query_str=QUERY)
    assert [n.node.node_id for n in out] == [n.node.node_id for n in ref]
    np.testing.assert_allclose([n.score for n in out], [n.score for n in ref], atol=1e-5)


class _Collect(BaseEventHandler):
    events: list[BaseEvent] = []

    @classmethod
    def class_name(cls) -> str:
        return "_Collect"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        if isinstance(event, (ReRankStartEvent, ReRankEndEvent)):
            self.events.append(event)


def test_success_matches_the_local_reranker(serve: Callable[..., FakeService], case: str, local_scorer: Any) -> None:
    service = _server(serve, case)
    rr = _reranker(service, case)
    nodes = _nodes()
    before = [(n.node.node_id, n.score, dict(n.node.metadata)) for n in nodes]
    handler = _Collect(events=[])
    root = get_dispatcher()
    root.add_event_handler(handler)
    try:
        out = rr.postprocess_nodes(nodes, query_str=QUERY)
    finally:
        root.event_handlers.remove(handler)
    _check(out, local_scorer)
    assert [(n.node.node_id, n.score, dict(n.node.metadata)) for n in nodes] == before  # inputs untouched
    assert all(o is not n for o in out for n in nodes)
    assert [type(e) for e in handler.events] == [ReRankStartEvent, ReRankEndEvent]
    assert service.requests[0].path == PATHS[case]
    body = service.requests[0].body
    if case == "tei":
        assert body["truncate"] is True and body["raw_scores"] is True
    elif case == "dashscope":
        assert body["model"] == "gte-rerank-v2" and body["input"]["query"] == QUERY
    else:
        assert body["model"] == "rerank-tiny"


def test_top_n_cuts_and_is_sent_where_the_protocol_takes_it(serve: Callable[..., FakeService], case: str, local_scorer: Any) -> None:
    service = _server(serve, case)
    scorer = RemoteScorer(service.url, settings=FAST, batch_size=4, **CASES[case])
    got = scorer.rerank(QUERY, DOCS, top_n=3)
    ref = local_scorer.rerank(QUERY, DOCS)
    assert [r.index for r in got] == [r.index for r in ref[:3]]
    assert [r.document for r in got] == [DOCS[r.index] for r in got]
    sent = [r.body.get("top_n", (r.body.get("parameters") or {}).get("top_n")) for r in service.requests]
    assert sent == ([None] * 3 if case in ("tei", "vllm-score") else [3, 3, 2])


@pytest.mark.parametrize(("n", "expected"), [(7, [3, 3, 1]), (6, [3, 3]), (1, [1])])
def test_batch_boundaries(serve: Callable[..., FakeService], case: str, local_scorer: Any, n: int, expected: list[int]) -> None:
    service = _server(serve, case)
    out = _reranker(service, case, batch_size=3).postprocess_nodes(_nodes(DOCS[:n]), query_str=QUERY)
    assert _sizes(service, case) == expected
    _check(out, local_scorer, DOCS[:n])


def test_batch_size_rejection_splits_and_remembers(serve: Callable[..., FakeService], case: str, local_scorer: Any) -> None:
    service = _server(serve, case, max_batch=3)
    rr = _reranker(service, case, batch_size=8)
    out = rr.postprocess_nodes(_nodes(), query_str=QUERY)
    assert _sizes(service, case) == [8, 3, 3, 2, 2]
    _check(out, local_scorer)
    assert rr.scorer.batch_limit.size == 3


def test_413_payload_too_large_halves(serve: Callable[..., FakeService], case: str, local_scorer: Any) -> None:
    docs = [f"{d} " * 3 for d in DOCS[:8]]
    service = _server(serve, case, max_body=700)
    out = _reranker(service, case, batch_size=8).postprocess_nodes(_nodes(docs), query_str=QUERY)
    sizes = _sizes(service, case)
    assert sizes[:3] == [8, 4, 2] and sum(sizes[2:]) == 8
    _check(out, local_scorer, docs)


def test_429_with_retry_after_then_success(serve: Callable[..., FakeService], case: str, local_scorer: Any) -> None:
    service = _server(serve, case)
    service.faults.append(Fault(status=429, headers={"Retry-After": "0.3"}))
    t = time.perf_counter()
    out = _reranker(service, case).postprocess_nodes(_nodes(), query_str=QUERY)
    assert time.perf_counter() - t >= 0.3 and len(service.requests) == 2
    _check(out, local_scorer)


def test_503_storm_exhausts_the_budget(serve: Callable[..., FakeService], case: str) -> None:
    service = _server(serve, case)
    for _ in range(10):
        service.faults.append(Fault(status=503, body=service.error_body("no healthy replica", "Unhealthy", 503)))
    with pytest.raises(RemoteServiceError) as info:
        _reranker(service, case).postprocess_nodes(_nodes(), query_str=QUERY)
    err = info.value
    assert err.status == 503 and err.attempts == 3 and len(service.requests) == 3
    assert err.endpoint == service.url + PATHS[case] and "no healthy replica" in str(err)


def test_validation_errors_are_not_retried(serve: Callable[..., FakeService], case: str) -> None:
    service = _server(serve, case)
    service.faults.append(Fault(status=422 if case == "tei" else 400, body=service.error_body("query must not be empty")))
    with pytest.raises(RemoteRequestError, match="query must not be empty"):
        _reranker(service, case).postprocess_nodes(_nodes(), query_str=QUERY)
    assert len(service.requests) == 1


def test_malformed_json_raises(serve: Callable[..., FakeService], case: str) -> None:
    service = _server(serve, case)
    service.faults.append(Fault(raw=b'{"results": [{"index": 0, '))
    with pytest.raises(RemoteResponseError, match="not JSON"):
        _reranker(service, case).postprocess_nodes(_nodes(), query_str=QUERY)


@pytest.mark.parametrize(("corrupt", "message"), [("drop", "9 scores for 10 documents"), ("dup", "repeated")])
def test_incomplete_answers_raise(serve: Callable[..., FakeService], case: str, corrupt: str, message: str) -> None:
    service = _server(serve, case)
    service.faults.append(Fault(corrupt=corrupt))
    with pytest.raises(RemoteResponseError, match=message):
        _reranker(service, case).postprocess_nodes(_nodes(), query_str=QUERY)


def test_timeouts(serve: Callable[..., FakeService], case: str, local_scorer: Any) -> None:
    service = _server(serve, case)
    service.faults.append(Fault(delay=0.6))
    _check(_reranker(service, case, settings={"timeout": 0.2}).postprocess_nodes(_nodes(), query_str=QUERY), local_scorer)
    assert len(service.requests) == 2
    for _ in range(3):
        service.faults.append(Fault(delay=0.5))
    with pytest.raises(RemoteServiceError, match="timed out"):
        _reranker(service, case, settings={"timeout": 0.1}).postprocess_nodes(_nodes(), query_str=QUERY)


@pytest.mark.asyncio
async def test_64_concurrent_async_calls(serve: Callable[..., FakeService], case: str, local_scorer: Any) -> None:
    service = _server(serve, case)
    rr = _reranker(service, case, settings={"max_concurrency": 6}, batch_size=4)
    subsets = [[DOCS[(i + k) % 10] for k in range(5)] for i in range(64)]
    try:
        outs = await asyncio.gather(*(rr.apostprocess_nodes(_nodes(s), query_str=QUERY) for s in subsets))
        assert len(rr.scorer.transport._async) == 1  # one AsyncClient for the loop, reused by every call
    finally:
        await rr.aclose()
    for s, out in zip(subsets, outs):
        _check(out, local_scorer, s)
    assert 1 < service.peak_in_flight <= 6


def test_secrets_stay_out_of_logs_reprs_and_serialisation(
    serve: Callable[..., FakeService], case: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "sk-rerank-5ecret-1234"
    service = _server(serve, case, api_key=secret)
    service.faults.append(Fault(status=503))
    with caplog.at_level(logging.DEBUG):
        rr = _reranker(service, case, api_key=secret)
        assert len(rr.postprocess_nodes(_nodes(), query_str=QUERY)) == 10
        with pytest.raises(RemoteRequestError, match="check the API key") as info:
            _reranker(service, case, api_key="sk-wrong-0000").postprocess_nodes(_nodes(), query_str=QUERY)
    assert "503" in caplog.text
    for text in (caplog.text, repr(rr), rr.to_json(), json.dumps(rr.to_dict()), repr(rr.scorer), str(info.value)):
        assert secret not in text and "sk-wrong-0000" not in text
    monkeypatch.setenv(ENV[case.split("-")[0]], secret)
    assert len(_reranker(service, case).postprocess_nodes(_nodes(), query_str=QUERY)) == 10


def test_empty_and_missing_query(serve: Callable[..., FakeService], case: str) -> None:
    service = _server(serve, case)
    rr = _reranker(service, case)
    assert rr.postprocess_nodes([], query_str=QUERY) == [] and service.requests == []
    assert RemoteScorer(service.url, **CASES[case]).rerank(QUERY, []) == []
