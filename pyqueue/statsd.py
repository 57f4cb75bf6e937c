"""StatsD / DogStatsD metrics from worker hooks (no dependency: UDP datagrams).

``Worker(..., hooks=[StatsdHooks(host="127.0.0.1", port=8125)])`` sends, per
attempt, a counter ``<prefix>.jobs.<outcome>`` (completed, failed, retried,
delayed, stalled) and a timer ``<prefix>.job.duration`` (ms), plus the gauge
``<prefix>.worker.active`` (its value once per event-loop turn). The lines of
one loop turn go out together, several to a datagram. With ``tags=True`` (DogStatsD, the Datadog
agent) the queue is a tag (``|#queue:email``) and ``constant_tags`` are added;
with ``tags=False`` (plain StatsD) it is part of the name
(``pyqueue.email.jobs.completed``). Sending never blocks and never raises:
a lost datagram is a lost sample, as StatsD intends.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import time
from collections.abc import Mapping
from typing import Any

from .errors import ConfigurationError, DelayedError
from .worker.hooks import WorkerHooks

__all__ = ["StatsdHooks"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
#: Largest datagram sent: fits a 1500-byte Ethernet frame with IP and UDP headers.
MAX_DATAGRAM = 1432


class StatsdHooks(WorkerHooks):
    """Worker hooks that send StatsD metrics over UDP (see the module docs)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8125, *, prefix: str = "pyqueue",
                 tags: bool = True, constant_tags: Mapping[str, str] | None = None) -> None:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ConfigurationError(f"port must be an int in 1..65535, got {port!r}")
        if not isinstance(prefix, str) or not prefix:
            raise ConfigurationError(f"prefix must be a non-empty str, got {prefix!r}")
        self.address = (host, port)
        self.prefix = prefix
        self.tags = tags
        self._constant = "".join(f",{_UNSAFE.sub('_', k)}:{_UNSAFE.sub('_', v)}"
                                 for k, v in (constant_tags or {}).items())
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.socket(family, socket.SOCK_DGRAM)
        self._socket.setblocking(False)
        self._started: dict[str, float] = {}
        self._active = 0
        self._active_changed = False
        self._pending: list[str] = []
        self._scheduled = False
        self._queue = ""

    def _line(self, queue: str, name: str, value: float | int, kind: str) -> str:
        safe = _UNSAFE.sub("_", queue)
        if self.tags:
            return f"{self.prefix}.{name}:{value}|{kind}|#queue:{safe}{self._constant}"
        return f"{self.prefix}.{safe}.{name}:{value}|{kind}"

    def _send(self, queue: str, name: str, value: float | int, kind: str) -> None:
        """Queue a line; the lines of one event-loop turn go out together, in
        datagrams of at most ``MAX_DATAGRAM`` bytes (newline-separated, as
        StatsD and DogStatsD accept)."""
        self._pending.append(self._line(queue, name, value, kind))
        if not self._scheduled:
            self._scheduled = True
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:  # not on a loop: send now
                self.flush()

    def flush(self) -> None:
        """Send the queued lines (with the current ``worker.active`` gauge)."""
        self._scheduled = False
        lines, self._pending = self._pending, []
        if self._active_changed:
            self._active_changed = False
            lines.append(self._line(self._queue, "worker.active", self._active, "g"))
        packet: list[str] = []
        size = 0
        for line in lines:
            if packet and size + len(line) + 1 > MAX_DATAGRAM:
                self._emit("\n".join(packet))
                packet, size = [], 0
            packet.append(line)
            size += len(line) + 1
        if packet:
            self._emit("\n".join(packet))

    def _emit(self, text: str) -> None:
        with contextlib.suppress(OSError):  # full buffer or no listener: drop it
            self._socket.sendto(text.encode(), self.address)

    def on_worker_start(self, worker: Any) -> None:
        self._queue = worker.name

    def on_worker_stop(self, worker: Any) -> None:
        self.flush()
        self._socket.close()

    def before_process(self, job: Any) -> None:
        self._active += 1
        self._active_changed = True
        if len(self._started) > 100_000:
            self._started.clear()
        self._started[job.id] = time.perf_counter()

    def after_process(self, job: Any, result: Any, error: BaseException | None) -> None:
        self._active -= 1
        self._active_changed = True
        started = self._started.pop(job.id, None)
        if started is not None:
            self._send(job.queue_name, "job.duration",
                       round((time.perf_counter() - started) * 1000, 3), "ms")
        if isinstance(error, DelayedError):
            self._send(job.queue_name, "jobs.delayed", 1, "c")

    def on_completed(self, job: Any, result: Any) -> None:
        self._send(job.queue_name, "jobs.completed", 1, "c")

    def on_failed(self, job: Any, error: BaseException, will_retry: bool) -> None:
        if not will_retry:
            self._send(job.queue_name, "jobs.failed", 1, "c")

    def on_retry(self, job: Any, error: BaseException, delay: float) -> None:
        self._send(job.queue_name, "jobs.retried", 1, "c")

    def on_stalled(self, job_id: str) -> None:
        self._send(self._queue, "jobs.stalled", 1, "c")
