"""Job context on log records: inside a processor, every record that goes through a handler
with :class:`JobContextFilter` carries ``queue``, ``job_id``, ``job_name`` and
``attempt`` (the attempt number, 1 for the first run).

- :class:`JobContextHook` (``Worker(..., hooks=[JobContextHook()])``) sets the
  context for the processor's run; it is a context variable, so it follows
  ``async def`` processors, the threads of ``def`` processors (the worker runs
  them with a copy of its context) and, in ``execution="process"``, the child
  process (which sets it around each job itself).
- :class:`JobContextFilter` copies the context onto records (a field the
  record already has, from ``extra=``, is left alone).
- :class:`JsonFormatter`: one JSON object per line, with the context fields.
- :func:`configure` sets up the root logger that way (``pyqueue worker
  --log-format json|text`` uses it; process-mode children repeat it).

Passwords in ``redis://`` URLs are masked in every message the formatters write.
Nothing here runs per job unless the hook is installed.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import time
from typing import Any

from .connection import mask_url
from .worker.hooks import WorkerHooks

__all__ = ["CONTEXT_FIELDS", "JobContextFilter", "JobContextHook", "JsonFormatter",
           "TextFormatter", "configure", "current", "job_context"]

#: The fields a record gets inside a processor.
CONTEXT_FIELDS = ("queue", "job_id", "job_name", "attempt")

_JOB: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "pyqueue_job", default=None)
_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+@[^\s'\"<>]*")
#: What configure() was called with, for process-mode children (None: not called).
_SETTINGS: dict[str, str] | None = None


def current() -> dict[str, Any] | None:
    """The job context of the running processor (None outside one)."""
    return _JOB.get()


def job_context(queue: str, job_id: str, job_name: str, attempt: int) -> contextvars.Token[Any]:
    """Enter a job's context; returns the token to reset it with."""
    return _JOB.set({"queue": queue, "job_id": job_id, "job_name": job_name,
                     "attempt": attempt})


def reset(token: contextvars.Token[Any]) -> None:
    """Leave the context entered with ``token``."""
    _JOB.reset(token)


class JobContextHook(WorkerHooks):
    """Sets the job context around each processor run (see the module docs)."""

    def before_process(self, job: Any) -> None:
        _JOB.set({"queue": job.queue_name, "job_id": job.id, "job_name": job.name,
                  "attempt": job.attempts_started or 1})

    def after_process(self, job: Any, result: Any, error: BaseException | None) -> None:
        _JOB.set(None)


class JobContextFilter(logging.Filter):
    """Adds the job context's fields to records emitted inside a processor."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _JOB.get()
        if context is not None:
            for key, value in context.items():
                if not hasattr(record, key):
                    setattr(record, key, value)
        return True


def mask_urls(text: str) -> str:
    """``text`` with the password of every URL in it masked."""
    return _URL.sub(lambda m: mask_url(m.group(0)), text) if "://" in text else text


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message [queue=... job=... name=... attempt=...]``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = mask_urls(super().format(record))
        job_id = getattr(record, "job_id", None)
        if job_id is not None:
            text += (f" [queue={getattr(record, 'queue', '')} job={job_id} "
                     f"name={getattr(record, 'job_name', '')} "
                     f"attempt={getattr(record, 'attempt', '')}]")
        return text


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``time`` (ISO 8601, UTC), ``level``, ``logger``,
    ``message``, the job context's fields when set, ``exc_info`` as text."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": mask_urls(record.getMessage()),
        }
        for key in CONTEXT_FIELDS:
            value = getattr(record, key, None)
            if value is not None:
                out[key] = value
        if record.exc_info:
            out["exc_info"] = mask_urls(self.formatException(record.exc_info))
        return json.dumps(out, default=str)


FORMATS = ("text", "json")


def configure(level: str = "INFO", fmt: str = "text") -> None:
    """Log to stderr at ``level`` in ``fmt`` (``text`` or ``json``), with the job
    context on records; replaces the root logger's handlers."""
    global _SETTINGS
    if fmt not in FORMATS:
        raise ValueError(f"log format must be 'text' or 'json', got {fmt!r}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(JobContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    _SETTINGS = {"level": level, "fmt": fmt}


def settings() -> dict[str, str] | None:
    """What :func:`configure` was last called with (for process-mode children)."""
    return None if _SETTINGS is None else dict(_SETTINGS)
