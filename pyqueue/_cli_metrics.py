"""``pyqueue metrics`` (a Prometheus exporter reading the queues from Redis) and the worker's
``--metrics-port`` (worker-side metrics too, across ``--processes N`` through
prometheus-client's multiprocess mode).

::

    pyqueue metrics --port 9090 [--queue Q ...] [--bullmq-names]
    pyqueue worker app:process --queue Q --metrics-port 9100 [--processes N]

With ``--processes N`` the parent process serves ``/metrics``: it points the
children at a fresh ``PROMETHEUS_MULTIPROC_DIR`` (unless one is set) and adds
up their files at each scrape.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import signal
import struct
import sys
import tempfile
import threading
from collections.abc import Iterator
from typing import Any

from ._cli_admin import UsageError, add_connection_options
from .connection import mask_url
from .worker import Worker

#: Set by ``pyqueue worker --processes N`` for its children: the parent serves.
CHILD_ENV = "PYQUEUE_METRICS_CHILD"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


logger = logging.getLogger("pyqueue.metrics")


def register(sub: Any) -> None:
    """Add the ``metrics`` command, and ``--metrics-port`` to ``worker``."""
    p = sub.add_parser("metrics", help="serve Prometheus metrics of the queues (/metrics)")
    p.add_argument("--port", type=int, default=9090, help="port (default 9090; 0: any free)")
    p.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    p.add_argument("--queue", action="append", dest="queues", metavar="QUEUE",
                   help="report this queue (repeat; default: every queue found)")
    p.add_argument("--bullmq-names", action="store_true",
                   help="also write BullMQ's exportPrometheusMetrics names (bullmq_job_count)")
    add_connection_options(p)
    worker = sub.choices["worker"]
    worker.add_argument("--metrics-port", type=int, default=None, metavar="PORT",
                        help="serve Prometheus metrics (the worker's and its queue's) on PORT")
    worker.add_argument("--metrics-host", default="0.0.0.0", metavar="ADDR",
                        help="address for --metrics-port (default 0.0.0.0)")


def _prometheus() -> Any:
    try:
        from . import prometheus
    except ImportError as exc:
        raise UsageError(str(exc)) from None
    return prometheus


def _serve(registry: Any, host: str, port: int) -> tuple[Any, int]:
    from prometheus_client import start_http_server

    try:
        server, _thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return server, int(server.server_port)


class _WorkerFiles:
    """prometheus-client's ``MultiProcessCollector`` over the worker processes'
    files, read again once when a scrape meets a file a starting process is
    still writing (so a scrape then never answers 500)."""

    def __init__(self, directory: str) -> None:
        from prometheus_client.multiprocess import MultiProcessCollector

        self._inner: Any = MultiProcessCollector(None, path=directory)  # type: ignore[no-untyped-call]

    def collect(self) -> list[Any]:
        try:
            return list(self._inner.collect())
        except (ValueError, OSError, KeyError, struct.error):
            try:
                return list(self._inner.collect())
            except (ValueError, OSError, KeyError, struct.error) as exc:
                logger.warning("pyqueue metrics: worker metrics files unreadable now: %s", exc)
                return []


def _registry(collector: Any) -> Any:
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    registry.register(collector)
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        registry.register(_WorkerFiles(directory))
    return registry


def run(args: argparse.Namespace, url: str) -> int:
    """``pyqueue metrics``: serve until SIGINT/SIGTERM."""
    prometheus = _prometheus()
    collector = prometheus.QueueCollector(url, args.queues, prefix=args.prefix,
                                          bullmq_names=args.bullmq_names)
    try:
        collector.stats()  # fail now, not at the first scrape, if Redis is not there
        server, port = _serve(_registry(collector), args.host, args.port)
        print(f"pyqueue metrics: serving http://{args.host}:{port}/metrics for "
              f"{', '.join(args.queues) if args.queues else 'every queue'} on {mask_url(url)}",
              flush=True)
        _wait_for_signal()
        server.shutdown()
    finally:
        collector.close()
    return 0


def _wait_for_signal() -> None:
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass


def attach(worker: Worker, args: argparse.Namespace, url: str) -> None:
    """``pyqueue worker --metrics-port``: add the worker-side hooks and, unless a
    ``--processes`` parent serves, serve this process's metrics."""
    if getattr(args, "metrics_port", None) is None:
        return
    prometheus = _prometheus()
    worker.add_hooks(prometheus.PrometheusHooks())
    if os.environ.get(CHILD_ENV):
        return
    from prometheus_client import REGISTRY

    collector = prometheus.QueueCollector(url, [worker.name], prefix=worker.prefix)
    if os.environ.get(MULTIPROC_ENV):
        registry = _registry(collector)
    else:
        registry = REGISTRY
        registry.register(collector)
    _server, port = _serve(registry, args.metrics_host, args.metrics_port)
    print(f"pyqueue worker: metrics on http://{args.metrics_host}:{port}/metrics",
          file=sys.stderr, flush=True)


@contextlib.contextmanager
def serving(args: argparse.Namespace, url: str) -> Iterator[None]:
    """Around ``--processes N``: the children write to a multiprocess directory and
    this (parent) process serves their sum with the queue's numbers."""
    if getattr(args, "metrics_port", None) is None:
        yield
        return
    prometheus = _prometheus()
    made = None
    if not os.environ.get(MULTIPROC_ENV):
        made = os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="pyqueue-metrics-")
    os.environ[CHILD_ENV] = "1"
    collector = prometheus.QueueCollector(url, [args.queue] if args.queue else None,
                                          prefix=args.prefix)
    try:
        server, port = _serve(_registry(collector), args.metrics_host, args.metrics_port)
        print(f"pyqueue worker: metrics of {args.processes} processes on "
              f"http://{args.metrics_host}:{port}/metrics", file=sys.stderr, flush=True)
        try:
            yield
        finally:
            server.shutdown()
    finally:
        collector.close()
        os.environ.pop(CHILD_ENV, None)
        if made is not None:
            os.environ.pop(MULTIPROC_ENV, None)
            shutil.rmtree(made, ignore_errors=True)
