"""Module-level processors for the log-context tests (not a test module): importable by
process-mode children and by ``pyqueue worker``."""

from __future__ import annotations

import logging
from typing import Any

from pyqueue import Job
from pyqueue.logcontext import CONTEXT_FIELDS, JobContextFilter

logger = logging.getLogger("tests.logjobs")


class Capture(logging.Handler):
    """Keeps the records it gets, through a JobContextFilter."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.addFilter(JobContextFilter())
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def context_of(record: logging.LogRecord) -> dict[str, Any]:
    return {key: getattr(record, key, None) for key in CONTEXT_FIELDS}


def log_and_report(job: Job) -> Any:
    """Log one line through a capturing handler and return the context it carried
    (runs in a thread or in a process-mode child)."""
    capture = Capture()
    logger.addHandler(capture)
    logger.setLevel(logging.DEBUG)
    try:
        logger.info("inside %s", job.id)
    finally:
        logger.removeHandler(capture)
    return context_of(capture.records[0])


def log_line(job: Job) -> Any:
    """Log a line for ``pyqueue worker --log-format json`` (with a URL to mask)."""
    logger.warning("processing %s via %s", job.id, job.data.get("url", "-"))
    if job.data.get("fail") and job.attempts_started < 2:
        raise RuntimeError("first attempt fails")
    return True
