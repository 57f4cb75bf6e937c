"""A trace across BullMQ (Node, ``bullmq-otel``) and pyqueue (``pyqueue.otel``): the
context each library writes in the job's ``tm`` option is continued by the other's
worker. In-memory exporters on both sides (``otel_side.mjs`` prints Node's spans)."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pyqueue import AsyncQueue, Worker
from pyqueue.otel import PyqueueInstrumentor

pytestmark = pytest.mark.interop

HERE = Path(__file__).resolve().parent
NODE_PRODUCER_KIND, NODE_CONSUMER_KIND = 3, 4  # OpenTelemetry JS SpanKind values


def otel_side(node: str, command: str, **args: Any) -> dict[str, Any]:
    proc = subprocess.run([node, str(HERE / "otel_side.mjs"), command, json.dumps(args)],
                          capture_output=True, text=True, timeout=90, cwd=HERE)
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    PyqueueInstrumentor().instrument(tracer_provider=provider)
    try:
        yield spans
    finally:
        PyqueueInstrumentor().uninstrument()


async def test_node_trace_continues_in_a_pyqueue_worker(node_harness: str, redis_url: str,
                                                        queue_name: str,
                                                        exporter: InMemorySpanExporter
                                                        ) -> None:
    node = await asyncio.to_thread(otel_side, node_harness, "produce", redis=redis_url,
                                   queue=queue_name, name="from-node")
    (producer,) = [s for s in node["spans"] if s["kind"] == NODE_PRODUCER_KIND]
    worker = Worker(queue_name, lambda job: job.data, connection=redis_url, log_jobs=False,
                    autorun=False)
    await worker.start()
    try:
        async with AsyncQueue(queue_name, connection=redis_url) as q:
            job = await q.get_job(node["id"])
            assert job is not None
            await job.wait_until_finished(timeout=20)
        for _ in range(200):
            if exporter.get_finished_spans():
                break
            await asyncio.sleep(0.02)
    finally:
        await worker.close()
    (consumer,) = exporter.get_finished_spans()
    assert f"{consumer.context.trace_id:032x}" == producer["traceId"]
    assert consumer.parent is not None
    assert f"{consumer.parent.span_id:016x}" == producer["spanId"]
    assert dict(consumer.attributes or {})["bullmq.job.name"] == "from-node"


async def test_pyqueue_trace_continues_in_a_node_worker(node_harness: str, redis_url: str,
                                                        queue_name: str,
                                                        exporter: InMemorySpanExporter
                                                        ) -> None:
    tracer = TracerProvider().get_tracer("t")
    async with AsyncQueue(queue_name, connection=redis_url) as q:
        with tracer.start_as_current_span("python-request"):
            job = await q.add("from-python", {"n": 1})
    (producer,) = exporter.get_finished_spans()
    node = await asyncio.to_thread(otel_side, node_harness, "consume", redis=redis_url,
                                   queue=queue_name, count=1)
    assert node["processed"] == 1
    consumers = [s for s in node["spans"] if s["kind"] == NODE_CONSUMER_KIND]
    assert consumers, node["spans"]
    assert consumers[0]["traceId"] == f"{producer.context.trace_id:032x}"
    assert consumers[0]["parentSpanId"] == f"{producer.context.span_id:016x}"
    assert consumers[0]["attributes"]["bullmq.job.id"] == job.id
