"""OpenTelemetry tracing (``pyqueue.otel``) with the SDK's in-memory exporter, against a
real Redis: producer and consumer spans, the trace context in BullMQ's ``tm`` job
option (and ``omc``), attributes, retries, and nothing done when not instrumented."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from _otel_jobs import current_span
from _worker_helpers import wait_for
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from pyqueue import AsyncQueue, DelayedError, InvalidJobOptionsError, Queue, Worker, _procpool
from pyqueue.otel import PyqueueInstrumentor


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


def named(exporter: InMemorySpanExporter, prefix: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name.startswith(prefix)]


async def test_a_trace_goes_from_add_to_process(spans: Any, redis_url: str,
                                                queue_name: str) -> None:
    exporter, tracer = spans
    inner_parents: list[Any] = []

    async def process(job: Any) -> Any:
        with tracer.start_as_current_span("inner") as inner:
            inner_parents.append(inner.parent)
        return 1

    async with AsyncQueue(queue_name, connection=redis_url) as q:
        with tracer.start_as_current_span("request") as request:
            job = await q.add("send-mail", {"to": "a"})
        trace_id = request.get_span_context().trace_id
        stored = json.loads((await q.get_job(job.id)).opts["tm"])  # type: ignore[union-attr]
        assert stored["traceparent"].split("-")[1] == f"{trace_id:032x}"
        worker = Worker(queue_name, process, connection=redis_url, log_jobs=False,
                        autorun=False, worker_name="w1")
        await worker.start()
        try:
            await job.wait_until_finished(timeout=10)
            await wait_for(lambda: named(exporter, "process"), what="consumer span")
        finally:
            await worker.close()
    (producer,) = named(exporter, "send")
    (consumer,) = named(exporter, "process")
    assert producer.name == f"send {queue_name}" and producer.kind is SpanKind.PRODUCER
    assert producer.parent is not None and producer.parent.span_id == \
        request.get_span_context().span_id
    assert dict(producer.attributes or {}) == {
        "messaging.system": "pyqueue", "messaging.destination.name": queue_name,
        "messaging.operation.type": "send", "messaging.operation.name": "add",
        "bullmq.queue.name": queue_name, "bullmq.queue.operation": "add",
        "messaging.message.id": job.id, "bullmq.job.id": job.id,
        "bullmq.job.name": "send-mail"}
    assert consumer.kind is SpanKind.CONSUMER and consumer.name == f"process {queue_name}"
    assert consumer.context.trace_id == trace_id
    assert consumer.parent is not None and consumer.parent.span_id == \
        producer.context.span_id
    attributes = dict(consumer.attributes or {})
    assert {k: attributes[k] for k in (
        "messaging.system", "messaging.destination.name", "messaging.operation.type",
        "messaging.message.id", "bullmq.job.name", "bullmq.worker.name",
        "bullmq.job.state")} == {
        "messaging.system": "pyqueue", "messaging.destination.name": queue_name,
        "messaging.operation.type": "process", "messaging.message.id": job.id,
        "bullmq.job.name": "send-mail", "bullmq.worker.name": "w1",
        "bullmq.job.state": "completed"}
    assert consumer.status.status_code is StatusCode.OK
    assert inner_parents[0].span_id == consumer.context.span_id


async def test_thread_processor_spans_nest_and_retries_are_recorded(
        spans: Any, redis_url: str, queue_name: str) -> None:
    exporter, tracer = spans

    def process(job: Any) -> Any:
        with tracer.start_as_current_span("in-thread"):
            if job.attempts_started < 2:
                raise ValueError("flaky")
        return 2

    with Queue(queue_name, connection=redis_url) as q:
        job = q.add("flaky", {}, attempts=2)
    worker = Worker(queue_name, process, connection=redis_url, log_jobs=False, autorun=False)
    await worker.start()
    try:
        await wait_for(lambda: worker.jobs_processed >= 1, what="completion")
        await wait_for(lambda: len(named(exporter, "process")) >= 2, what="2 consumer spans")
    finally:
        await worker.close()
    attempts = sorted(named(exporter, "process"), key=lambda s: s.start_time or 0)
    assert [dict(s.attributes or {})["bullmq.job.state"] for s in attempts] == \
        ["waiting", "completed"]
    assert attempts[0].status.status_code is StatusCode.ERROR
    assert dict(attempts[0].attributes or {})["bullmq.job.failed.reason"] == "flaky"
    assert any(event.name == "exception" for event in attempts[0].events)
    inner = named(exporter, "in-thread")
    assert {s.parent.span_id for s in inner if s.parent} == \
        {s.context.span_id for s in attempts}
    # Both attempts continue the producer's trace.
    (producer,) = named(exporter, "send")
    assert {s.context.trace_id for s in attempts} == {producer.context.trace_id}
    assert job.id == dict(producer.attributes or {})["messaging.message.id"]


async def test_omit_context_and_bulk(spans: Any, redis_url: str, queue_name: str) -> None:
    exporter, tracer = spans
    async with AsyncQueue(queue_name, connection=redis_url) as q:
        with tracer.start_as_current_span("request"):
            alone = await q.add("alone", {}, telemetry={"omit_context": True})
            bulk = await q.add_bulk([{"name": "b1"}, {"name": "b2", "data": {}}])
        stored = (await q.get_job(alone.id)).opts  # type: ignore[union-attr]
        assert stored.get("omc") is True and "tm" not in stored
        for job in bulk:
            fetched = await q.get_job(job.id)
            assert fetched is not None and "traceparent" in json.loads(fetched.opts["tm"])
        worker = Worker(queue_name, lambda job: None, connection=redis_url, log_jobs=False,
                        autorun=False)
        await worker.start()
        try:
            await wait_for(lambda: len(named(exporter, "process")) >= 3, what="3 spans")
        finally:
            await worker.close()
    by_id = {dict(s.attributes or {})["messaging.message.id"]: s
             for s in named(exporter, "process")}
    assert by_id[alone.id].parent is None  # its own trace
    bulk_span = next(s for s in named(exporter, "send")
                     if dict(s.attributes or {})["bullmq.queue.operation"] == "addBulk")
    assert dict(bulk_span.attributes or {})["bullmq.job.bulk.count"] == 2
    for job in bulk:
        assert by_id[job.id].parent is not None
        assert by_id[job.id].parent.span_id == bulk_span.context.span_id


def test_bad_telemetry_option_is_refused(redis_url: str, queue_name: str) -> None:
    with Queue(queue_name, connection=redis_url) as q:
        with pytest.raises(InvalidJobOptionsError, match="telemetry"):
            q.add("x", {}, telemetry={"omit": True})  # type: ignore[typeddict-unknown-key]
        with pytest.raises(InvalidJobOptionsError, match=r"telemetry\.omit_context"):
            q.add("x", {}, telemetry={"omit_context": "yes"})  # type: ignore[typeddict-item]
        assert q.get_job_counts()["waiting"] == 0


def test_uninstrumented_costs_nothing(redis_url: str, queue_name: str) -> None:
    PyqueueInstrumentor().instrument()
    PyqueueInstrumentor().uninstrument()
    assert not PyqueueInstrumentor().is_instrumented_by_opentelemetry
    assert "otel" not in Queue.add.__module__ and "otel" not in Worker.__init__.__module__
    assert _procpool.CONTEXT_CARRIERS == {}
    worker = Worker(queue_name, lambda job: None, connection=redis_url, log_jobs=False,
                    autorun=False)
    assert worker._hooks.before_process == ()
    with Queue(queue_name, connection=redis_url) as q, \
            trace.get_tracer("t").start_as_current_span("x"):
        job = q.add("plain", {})
        fetched = q.get_job(job.id)
    assert fetched is not None and "tm" not in fetched.opts


async def test_a_process_mode_child_runs_in_the_consumer_span(spans: Any, redis_url: str,
                                                              queue_name: str) -> None:
    exporter, tracer = spans
    async with AsyncQueue(queue_name, connection=redis_url) as q:
        with tracer.start_as_current_span("request"):
            job = await q.add("in-child", {})
        worker = Worker(queue_name, current_span, connection=redis_url, execution="process",
                        log_jobs=False, autorun=False)
        await worker.start()
        try:
            seen = await job.wait_until_finished(timeout=30)
            await wait_for(lambda: named(exporter, "process"), what="consumer span")
        finally:
            await worker.close()
    (consumer,) = named(exporter, "process")
    assert seen == {"trace_id": f"{consumer.context.trace_id:032x}",
                    "span_id": f"{consumer.context.span_id:016x}"}


async def test_a_job_that_delays_itself_ends_its_span_without_an_error(
        spans: Any, redis_url: str, queue_name: str) -> None:
    exporter, _ = spans

    async def process(job: Any) -> Any:
        if job.attempts_started == 1:
            await job.move_to_delayed(0.05)
            raise DelayedError()
        return "done"

    async with AsyncQueue(queue_name, connection=redis_url) as q:
        job = await q.add("later", {})
        worker = Worker(queue_name, process, connection=redis_url, log_jobs=False,
                        autorun=False)
        await worker.start()
        try:
            assert await job.wait_until_finished(timeout=10) == "done"
            await wait_for(lambda: len(named(exporter, "process")) >= 2, what="2 spans")
        finally:
            await worker.close()
    first, second = sorted(named(exporter, "process"), key=lambda s: s.start_time or 0)
    assert dict(first.attributes or {})["bullmq.job.state"] == "delayed"
    assert first.status.status_code is StatusCode.UNSET and not first.events
    assert dict(second.attributes or {})["bullmq.job.state"] == "completed"
