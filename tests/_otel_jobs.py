"""A module-level processor for the tracing tests (not a test module): a process-mode
child imports it and reports the trace context it runs in."""

from __future__ import annotations

from typing import Any

from opentelemetry import trace

from pyqueue import Job


def current_span(job: Job) -> Any:
    """The trace and span ids current while the processor runs (hex)."""
    context = trace.get_current_span().get_span_context()
    return {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}
