"""OpenTelemetry tracing (``pip install 'pyqueue-redis[otel]'``, opentelemetry-api).

``PyqueueInstrumentor().instrument()`` (OpenTelemetry's instrumentor
convention: a singleton with ``instrument()``/``uninstrument()``):

- ``Queue.add``/``add_bulk`` (and ``AsyncQueue``'s) run in a PRODUCER span
  ``send <queue>``; the job carries that span's context in its opts as
  BullMQ's ``tm`` (the W3C trace context as a JSON object of headers, what
  ``bullmq-otel`` writes), unless the job says ``telemetry={"omit_context":
  True}`` (BullMQ's ``omc``).
- Workers created while instrumented run each attempt in a CONSUMER span
  ``process <queue>`` whose parent is the context in ``tm`` (so the trace
  started by a producer, pyqueue's or BullMQ's, goes on), current while the
  processor runs (``async def`` processors, ``def`` ones in threads, and
  in process-mode children, which get the context with the job). The span
  ends when the outcome is settled: completed, failed, retried, or handed back.

Attributes follow the messaging semantic conventions (``messaging.system``,
``messaging.destination.name``, ``messaging.operation.type``/``.name``,
``messaging.message.id``) plus BullMQ's ``bullmq.*`` names. Nothing is
wrapped, and no worker gets a hook, until ``instrument()`` is called:
uninstrumented, tracing costs nothing.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Collection, Mapping
from typing import Any

try:
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("pyqueue.otel needs opentelemetry-api: "
                      "pip install 'pyqueue-redis[otel]'") from exc

from . import __version__, _procpool
from ._async_queue import AsyncQueue
from .errors import DelayedError, RateLimitError
from .queue import Queue
from .worker import Worker, WorkerHooks

__all__ = ["MESSAGING_SYSTEM", "PyqueueInstrumentor"]

#: ``messaging.system`` of pyqueue's spans.
MESSAGING_SYSTEM = "pyqueue"
#: Spans of attempts whose outcome never came (a lost lock) ended past this many.
_OPEN_SPANS_LIMIT = 10_000


class _State:
    """What instrument() set up (None: not instrumented)."""

    tracer: trace.Tracer | None = None
    originals: dict[tuple[type, str], Callable[..., Any]] = {}


def _carrier_opts(opts: Mapping[str, Any]) -> dict[str, Any]:
    """``opts`` with the current context as BullMQ's ``tm``, unless the job omits
    it or brings its own."""
    telemetry = opts.get("telemetry") or {}
    if telemetry.get("omit_context") or telemetry.get("metadata"):
        return dict(opts)
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    if not carrier:
        return dict(opts)
    return {**opts, "telemetry": {**telemetry, "metadata": json.dumps(carrier)}}


def _producer_attributes(queue: Any, operation: str) -> dict[str, Any]:
    return {"messaging.system": MESSAGING_SYSTEM, "messaging.destination.name": queue.name,
            "messaging.operation.type": "send", "messaging.operation.name": operation,
            "bullmq.queue.name": queue.name, "bullmq.queue.operation": operation}


def _job_attributes(span: trace.Span, job: Any) -> None:
    span.set_attribute("messaging.message.id", job.id)
    span.set_attribute("bullmq.job.id", job.id)
    span.set_attribute("bullmq.job.name", job.name)


def _wrap_add(original: Callable[..., Any], is_async: bool) -> Callable[..., Any]:
    def start(queue: Any) -> Any:
        assert _State.tracer is not None
        return _State.tracer.start_as_current_span(
            f"send {queue.name}", kind=SpanKind.PRODUCER,
            attributes=_producer_attributes(queue, "add"))

    if is_async:
        @functools.wraps(original)
        async def add_async(self: Any, name: str, data: Any = None, **opts: Any) -> Any:
            if _State.tracer is None:
                return await original(self, name, data, **opts)
            with start(self) as span:
                job = await original(self, name, data, **_carrier_opts(opts))
                _job_attributes(span, job)
                return job
        return add_async

    @functools.wraps(original)
    def add(self: Any, name: str, data: Any = None, **opts: Any) -> Any:
        if _State.tracer is None:
            return original(self, name, data, **opts)
        with start(self) as span:
            job = original(self, name, data, **_carrier_opts(opts))
            _job_attributes(span, job)
            return job
    return add


def _wrap_add_bulk(original: Callable[..., Any], is_async: bool) -> Callable[..., Any]:
    def prepare(queue: Any, jobs: Any) -> tuple[Any, list[dict[str, Any]]]:
        assert _State.tracer is not None
        jobs = list(jobs)
        attributes = {**_producer_attributes(queue, "addBulk"),
                      "messaging.batch.message_count": len(jobs),
                      "bullmq.job.bulk.count": len(jobs),
                      "bullmq.job.bulk.names": [str(j.get("name")) for j in jobs]}
        return _State.tracer.start_as_current_span(
            f"send {queue.name}", kind=SpanKind.PRODUCER, attributes=attributes), jobs

    def with_context(jobs: list[Any]) -> list[dict[str, Any]]:
        return [{**job, "opts": _carrier_opts(job.get("opts") or {})} for job in jobs]

    def ids(span: trace.Span, added: list[Any]) -> None:
        span.set_attribute("bullmq.job.ids", [job.id for job in added])

    if is_async:
        @functools.wraps(original)
        async def add_bulk_async(self: Any, jobs: Any) -> Any:
            if _State.tracer is None:
                return await original(self, jobs)
            manager, jobs = prepare(self, jobs)
            with manager as span:
                added = await original(self, with_context(jobs))
                ids(span, added)
                return added
        return add_bulk_async

    @functools.wraps(original)
    def add_bulk(self: Any, jobs: Any) -> Any:
        if _State.tracer is None:
            return original(self, jobs)
        manager, jobs = prepare(self, jobs)
        with manager as span:
            added = original(self, with_context(jobs))
            ids(span, added)
            return added
    return add_bulk


class _ConsumerHooks(WorkerHooks):
    """The CONSUMER span of each attempt a worker runs."""

    def __init__(self, tracer: trace.Tracer, worker: Worker) -> None:
        self._tracer = tracer
        self._worker_id = worker.id
        self._worker_name = worker.worker_name
        #: job id -> (span, context token while the processor runs)
        self._open: dict[str, tuple[trace.Span, object | None]] = {}

    def before_process(self, job: Any) -> None:
        if _State.tracer is None:  # uninstrumented since this worker was made
            return
        opts = job.opts
        parent = None
        metadata = opts.get("tm")
        if isinstance(metadata, str) and metadata and not opts.get("omc"):
            try:
                carrier = json.loads(metadata)
            except ValueError:
                carrier = None
            if isinstance(carrier, dict):
                parent = propagate.extract(carrier)
        attributes: dict[str, Any] = {
            "messaging.system": MESSAGING_SYSTEM,
            "messaging.destination.name": job.queue_name,
            "messaging.operation.type": "process", "messaging.operation.name": "process",
            "messaging.message.id": job.id, "bullmq.queue.name": job.queue_name,
            "bullmq.queue.operation": "process", "bullmq.job.id": job.id,
            "bullmq.job.name": job.name, "bullmq.job.attempts.made": job.attempts_made,
            "bullmq.worker.id": self._worker_id}
        if self._worker_name:
            attributes["bullmq.worker.name"] = self._worker_name
        processed = job.fields.get("processedOn")
        if processed is not None and str(processed).isdigit():
            attributes["bullmq.job.processed.timestamp"] = int(processed)
        span = self._tracer.start_span(f"process {job.queue_name}", context=parent,
                                       kind=SpanKind.CONSUMER, attributes=attributes)
        if len(self._open) >= _OPEN_SPANS_LIMIT:
            self._end_all()
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        self._open[job.id] = (span, token)

    def after_process(self, job: Any, result: Any, error: BaseException | None) -> None:
        entry = self._open.get(job.id)
        if entry is None:
            return
        span, token = entry
        if token is not None:
            otel_context.detach(token)  # type: ignore[arg-type]
            self._open[job.id] = (span, None)
        if isinstance(error, DelayedError | RateLimitError):  # handed back: no settle
            self._end(job.id, "delayed" if isinstance(error, DelayedError) else "waiting")
        elif error is not None:
            span.record_exception(error)

    def _end(self, job_id: str, state: str | None = None,
             status: Status | None = None) -> trace.Span | None:
        entry = self._open.pop(job_id, None)
        if entry is None:
            return None
        span = entry[0]
        if state is not None:
            span.set_attribute("bullmq.job.state", state)
        if status is not None:
            span.set_status(status)
        span.end()
        return span

    def _end_all(self) -> None:
        for job_id in list(self._open):
            self._end(job_id)

    def on_completed(self, job: Any, result: Any) -> None:
        self._end(job.id, "completed", Status(StatusCode.OK))

    def on_failed(self, job: Any, error: BaseException, will_retry: bool) -> None:
        entry = self._open.get(job.id)
        if entry is not None:
            entry[0].set_attribute("bullmq.job.failed.reason", str(error) or type(error).__name__)
            entry[0].set_status(Status(StatusCode.ERROR, type(error).__name__))
        if not will_retry:
            self._end(job.id, "failed")

    def on_retry(self, job: Any, error: BaseException, delay: float) -> None:
        self._end(job.id, "delayed" if delay > 0 else "waiting")

    def on_worker_stop(self, worker: Any) -> None:
        self._end_all()


def _capture_context() -> dict[str, str] | None:
    """The current trace context as headers, for a process-mode child."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier or None


def restore_context(carrier: dict[str, str]) -> Callable[[], None]:
    """In a process-mode child: make ``carrier``'s context current while the
    processor runs; returns the function that leaves it."""
    token = otel_context.attach(propagate.extract(carrier))
    return lambda: otel_context.detach(token)


_RESTORER = f"{__name__}:restore_context"


class PyqueueInstrumentor:
    """Traces pyqueue's producers and workers (see the module docs). A singleton,
    as OpenTelemetry's instrumentors are."""

    _instance: PyqueueInstrumentor | None = None

    def __new__(cls) -> PyqueueInstrumentor:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    @property
    def is_instrumented_by_opentelemetry(self) -> bool:
        """Whether :meth:`instrument` is in effect."""
        return _State.tracer is not None

    def instrumentation_dependencies(self) -> Collection[str]:
        """The package this instruments."""
        return ("pyqueue-redis",)

    def instrument(self, *, tracer_provider: trace.TracerProvider | None = None,
                   **_: Any) -> None:
        """Start tracing (again with another ``tracer_provider``: it replaces the first)."""
        _State.tracer = trace.get_tracer("pyqueue", __version__, tracer_provider)
        if _State.originals:
            return
        _procpool.CONTEXT_CARRIERS[_RESTORER] = _capture_context
        for cls, is_async in ((Queue, False), (AsyncQueue, True)):
            for name, wrap in (("add", _wrap_add), ("add_bulk", _wrap_add_bulk)):
                original = cls.__dict__[name]
                _State.originals[(cls, name)] = original
                setattr(cls, name, wrap(original, is_async))
        init = Worker.__init__
        _State.originals[(Worker, "__init__")] = init

        @functools.wraps(init)
        def worker_init(worker: Worker, *args: Any, **kwargs: Any) -> None:
            init(worker, *args, **kwargs)
            if _State.tracer is not None:
                worker.add_hooks(_ConsumerHooks(_State.tracer, worker))

        Worker.__init__ = worker_init  # type: ignore[method-assign,assignment]

    def uninstrument(self, **_: Any) -> None:
        """Stop tracing: the wrapped methods are restored; workers made meanwhile
        stop making spans."""
        _State.tracer = None
        _procpool.CONTEXT_CARRIERS.pop(_RESTORER, None)
        for (cls, name), original in _State.originals.items():
            setattr(cls, name, original)
        _State.originals = {}
