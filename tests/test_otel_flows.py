"""OpenTelemetry on ``FlowProducer.add``/``add_bulk`` with the SDK's in-memory exporter,
against a real Redis: a flow span, one producer span per node nested as the tree, each
node's job carrying its own span's context in ``tm``, the consumers continuing it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from pyqueue import AsyncFlowProducer, FlowProducer, InvalidJobOptionsError, Queue
from pyqueue._otel_flow import FLOW_OPERATION
from pyqueue.otel import PyqueueInstrumentor
from pyqueue.testing import run_until_idle, run_until_idle_async


@pytest.fixture
def spans() -> Iterator[tuple[InMemorySpanExporter, trace.Tracer]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    PyqueueInstrumentor().instrument(tracer_provider=provider)
    try:
        yield exporter, provider.get_tracer("test")
    finally:
        PyqueueInstrumentor().uninstrument()


def _tm(job: Any) -> dict[str, str]:
    carrier: dict[str, str] = json.loads(job.opts["tm"])
    return carrier


def _span_id_of(carrier: dict[str, str]) -> int:
    return int(carrier["traceparent"].split("-")[2], 16)


def _tree(parent: str, child: str, job_ids: tuple[str, str, str]) -> dict[str, Any]:
    return {"name": "invoice", "queue_name": parent, "data": {},
            "opts": {"job_id": job_ids[0]},
            "children": [{"name": "charge", "queue_name": child, "data": {"n": 1},
                          "opts": {"job_id": job_ids[1]}},
                         {"name": "ship", "queue_name": child, "data": {"n": 2},
                          "opts": {"job_id": job_ids[2],
                                   "telemetry": {"omit_context": True}}}]}


def test_each_node_is_a_producer_span_and_carries_its_context(
        spans: Any, redis_url: str, queue_name: str) -> None:
    exporter, tracer = spans
    parent_q, child_q = f"{queue_name}-p", f"{queue_name}-c"
    with FlowProducer(connection=redis_url) as flows, tracer.start_as_current_span("req") as req:
        node = flows.add(_tree(parent_q, child_q, ("inv", "pay", "ship")))
    finished = {s.name: s for s in exporter.get_finished_spans()}
    flow_span = next(s for s in exporter.get_finished_spans()
                     if s.attributes["bullmq.queue.operation"] == FLOW_OPERATION)
    node_spans = [s for s in exporter.get_finished_spans()
                  if s.attributes.get("bullmq.queue.operation") == "add"]
    assert flow_span.kind == SpanKind.PRODUCER and flow_span.name == f"send {parent_q}"
    assert flow_span.parent.span_id == req.get_span_context().span_id
    assert flow_span.attributes["bullmq.job.id"] == "inv"
    by_id = {s.attributes["bullmq.job.id"]: s for s in node_spans}
    assert set(by_id) == {"inv", "pay", "ship"}
    assert all(s.kind == SpanKind.PRODUCER for s in node_spans)
    trace_id = req.get_span_context().trace_id
    assert {s.context.trace_id for s in node_spans} == {trace_id}
    # Nested as the tree: the root node under the flow span, the children under the root.
    assert by_id["inv"].parent.span_id == flow_span.context.span_id
    assert by_id["pay"].parent.span_id == by_id["inv"].context.span_id
    assert by_id["pay"].name == f"send {child_q}"
    assert by_id["pay"].attributes["messaging.message.id"] == "pay"
    assert "req" in finished
    # Each job carries its own node span's context (BullMQ's tm), as stored in Redis.
    with Queue(parent_q, connection=redis_url) as pq, Queue(child_q, connection=redis_url) as cq:
        stored_parent, stored_pay = pq.get_job("inv"), cq.get_job("pay")
        stored_ship = cq.get_job("ship")
        assert stored_parent is not None and stored_pay is not None and stored_ship is not None
        assert _span_id_of(_tm(stored_parent)) == by_id["inv"].context.span_id
        assert _span_id_of(_tm(stored_pay)) == by_id["pay"].context.span_id
        assert "tm" not in stored_ship.opts and stored_ship.opts.get("omc") is True
        assert _span_id_of(_tm(node.children[0].job)) == by_id["pay"].context.span_id
        # The consumer of a child continues the trace under that child's node span.
        exporter.clear()
        run_until_idle(child_q, lambda job: job.data["n"], connection=redis_url)
        process = {s.attributes["bullmq.job.id"]: s for s in exporter.get_finished_spans()
                   if s.kind == SpanKind.CONSUMER}
        assert process["pay"].parent.span_id == by_id["pay"].context.span_id
        assert process["pay"].context.trace_id == trace_id
        assert process["ship"].context.trace_id != trace_id  # omit_context: a new trace
        assert pq.get_job_state("inv") == "waiting"


async def test_add_bulk_traces_each_flow_and_errors_end_the_spans(
        spans: Any, redis_url: str, queue_name: str) -> None:
    exporter, _tracer = spans
    parent_q, child_q = f"{queue_name}-p", f"{queue_name}-c"
    async with AsyncFlowProducer(connection=redis_url) as flows:
        added = await flows.add_bulk([_tree(parent_q, child_q, ("a", "a1", "a2")),
                                      _tree(parent_q, child_q, ("b", "b1", "b2"))])
        assert [n.job.id for n in added] == ["a", "b"]
        flow_spans = [s for s in exporter.get_finished_spans()
                      if s.attributes["bullmq.queue.operation"] == FLOW_OPERATION]
        assert sorted(s.attributes["bullmq.job.id"] for s in flow_spans) == ["a", "b"]
        assert flow_spans[0].context.trace_id != flow_spans[1].context.trace_id
        nodes = [s for s in exporter.get_finished_spans()
                 if s.attributes["bullmq.queue.operation"] == "add"]
        assert len(nodes) == 6
        exporter.clear()
        with pytest.raises(InvalidJobOptionsError):
            await flows.add({"name": "x", "queue_name": parent_q, "opts": {"lifo": "yes"},
                             "children": [{"name": "y", "queue_name": child_q}]})
        failed: list[ReadableSpan] = list(exporter.get_finished_spans())
        assert len(failed) == 3  # the flow span and both nodes: all ended
        (flow_span,) = [s for s in failed
                        if s.attributes["bullmq.queue.operation"] == FLOW_OPERATION]
        assert flow_span.status.status_code == StatusCode.ERROR
        await run_until_idle_async(child_q, lambda job: None, connection=redis_url)


def test_uninstrumented_flows_carry_no_context(redis_url: str, queue_name: str) -> None:
    PyqueueInstrumentor().instrument(tracer_provider=TracerProvider())
    PyqueueInstrumentor().uninstrument()
    with FlowProducer(connection=redis_url) as flows:
        node = flows.add(_tree(f"{queue_name}-p", f"{queue_name}-c", ("u", "u1", "u2")))
    assert "tm" not in node.job.opts and "tm" not in node.children[0].job.opts
    assert FlowProducer.add.__qualname__ == "FlowProducer.add"
