"""OpenTelemetry on ``FlowProducer.add``/``add_bulk`` (and ``AsyncFlowProducer``'s), installed
by ``pyqueue.otel.PyqueueInstrumentor().instrument()``.

Each flow runs in a PRODUCER span ``send <root queue>`` (operation ``add_flow``);
inside it every node of the tree gets a PRODUCER span ``send <its queue>``
(operation ``add``, as ``Queue.add``'s), nested as the tree is (a child's span
under its parent's), and the node's job carries that span's context in its
opts as BullMQ's ``tm`` (what ``bullmq-otel`` does for flows), unless the node
says ``telemetry={"omit_context": True}`` or brings its own metadata. So each
job's CONSUMER span continues the trace of the node that added it.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode

#: ``messaging.system`` of the spans (``pyqueue.otel.MESSAGING_SYSTEM``).
SYSTEM = "pyqueue"
#: The operation name of a flow's own span (its nodes' spans are ``add``).
FLOW_OPERATION = "add_flow"

TracerOf = Callable[[], "trace.Tracer | None"]


@dataclass
class _Spans:
    """The span of one node and those of its children, in the tree's order."""

    span: trace.Span
    children: list[_Spans | None] = field(default_factory=list)


def _attributes(queue: Any, operation: str) -> dict[str, Any]:
    name = str(queue)
    return {"messaging.system": SYSTEM, "messaging.destination.name": name,
            "messaging.operation.type": "send", "messaging.operation.name": operation,
            "bullmq.queue.name": name, "bullmq.queue.operation": operation}


def _with_context(opts: Mapping[str, Any], context: Context) -> dict[str, Any]:
    """``opts`` carrying ``context`` as BullMQ's ``tm`` (unless omitted or given)."""
    telemetry = opts.get("telemetry") or {}
    if not isinstance(telemetry, Mapping) or telemetry.get("omit_context") \
            or telemetry.get("metadata"):
        return dict(opts)
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=context)
    if not carrier:
        return dict(opts)
    return {**opts, "telemetry": {**telemetry, "metadata": json.dumps(carrier)}}


def _open_node(tracer: trace.Tracer, node: Any, parent: Context, opened: list[trace.Span]
               ) -> tuple[Any, _Spans | None]:
    """The node with its context in its opts, and its spans; a node that is not a
    mapping is handed on as it is (the producer refuses it with a typed error)."""
    if not isinstance(node, Mapping):
        return node, None
    attributes = _attributes(node.get("queue_name"), "add")
    if isinstance(node.get("name"), str):
        attributes["bullmq.job.name"] = node["name"]
    span = tracer.start_span(f"send {node.get('queue_name')}", context=parent,
                             kind=SpanKind.PRODUCER, attributes=attributes)
    opened.append(span)
    context = trace.set_span_in_context(span, parent)
    out = dict(node)
    opts = node.get("opts") or {}
    if isinstance(opts, Mapping):
        out["opts"] = _with_context(opts, context)
    spans = _Spans(span)
    children = node.get("children")
    if isinstance(children, list | tuple):
        pairs = [_open_node(tracer, child, context, opened) for child in children]
        out["children"] = [child for child, _ in pairs]
        spans.children = [child_spans for _, child_spans in pairs]
    return out, spans


def _name_jobs(spans: _Spans | None, added: Any) -> None:
    """Put each added job's id on its node's span (the trees have the same shape)."""
    if spans is None or added is None:
        return
    job = getattr(added, "job", None)
    if job is not None:
        spans.span.set_attribute("messaging.message.id", job.id)
        spans.span.set_attribute("bullmq.job.id", job.id)
    for child_spans, child in zip(spans.children, getattr(added, "children", []),
                                  strict=False):
        _name_jobs(child_spans, child)


class _Flow:
    """The spans of one flow being added: open on entry, ended on exit."""

    def __init__(self, tracer: trace.Tracer, tree: Any) -> None:
        root_queue = tree.get("queue_name") if isinstance(tree, Mapping) else None
        self.span = tracer.start_span(f"send {root_queue}", kind=SpanKind.PRODUCER,
                                      attributes=_attributes(root_queue, FLOW_OPERATION))
        self.opened: list[trace.Span] = []
        self.tree, self.spans = _open_node(
            tracer, tree, trace.set_span_in_context(self.span), self.opened)

    def done(self, added: Any) -> None:
        _name_jobs(self.spans, added)
        root = getattr(added, "job", None)
        if root is not None:
            self.span.set_attribute("bullmq.job.id", root.id)
        self.end()

    def failed(self, error: BaseException) -> None:
        self.span.record_exception(error)
        self.span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        self.end()

    def end(self) -> None:
        for span in reversed(self.opened):
            span.end()
        self.span.end()


def wrap_add(original: Callable[..., Any], is_async: bool,
             tracer_of: TracerOf) -> Callable[..., Any]:
    """``FlowProducer.add`` (``is_async``: ``AsyncFlowProducer.add``) traced."""
    if is_async:
        @functools.wraps(original)
        async def add_async(self: Any, tree: Any) -> Any:
            tracer = tracer_of()
            if tracer is None:
                return await original(self, tree)
            flow = _Flow(tracer, tree)
            try:
                added = await original(self, flow.tree)
            except BaseException as exc:
                flow.failed(exc)
                raise
            flow.done(added)
            return added
        return add_async

    @functools.wraps(original)
    def add(self: Any, tree: Any) -> Any:
        tracer = tracer_of()
        if tracer is None:
            return original(self, tree)
        flow = _Flow(tracer, tree)
        try:
            added = original(self, flow.tree)
        except BaseException as exc:
            flow.failed(exc)
            raise
        flow.done(added)
        return added
    return add


def _open_all(tracer: trace.Tracer, trees: Any) -> list[_Flow] | None:
    if isinstance(trees, Mapping | str | bytes) or not isinstance(trees, list | tuple):
        return None  # not a list of trees: the producer refuses it as it is
    return [_Flow(tracer, tree) for tree in trees]


def _settle(flows: list[_Flow], added: list[Any] | None, error: BaseException | None) -> None:
    for i, flow in enumerate(flows):
        if error is not None:
            flow.failed(error)
        else:
            flow.done(added[i] if added is not None and i < len(added) else None)


def wrap_add_bulk(original: Callable[..., Any], is_async: bool,
                  tracer_of: TracerOf) -> Callable[..., Any]:
    """``FlowProducer.add_bulk`` (or the async one) traced: one flow span per tree."""
    if is_async:
        @functools.wraps(original)
        async def add_bulk_async(self: Any, trees: Any) -> Any:
            tracer = tracer_of()
            flows = None if tracer is None else _open_all(tracer, trees)
            if flows is None:
                return await original(self, trees)
            try:
                added = await original(self, [flow.tree for flow in flows])
            except BaseException as exc:
                _settle(flows, None, exc)
                raise
            _settle(flows, added, None)
            return added
        return add_bulk_async

    @functools.wraps(original)
    def add_bulk(self: Any, trees: Any) -> Any:
        tracer = tracer_of()
        flows = None if tracer is None else _open_all(tracer, trees)
        if flows is None:
            return original(self, trees)
        try:
            added = original(self, [flow.tree for flow in flows])
        except BaseException as exc:
            _settle(flows, None, exc)
            raise
        _settle(flows, added, None)
        return added
    return add_bulk


__all__ = ["FLOW_OPERATION", "SYSTEM", "wrap_add", "wrap_add_bulk"]
