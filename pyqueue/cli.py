"""The ``pyqueue`` command line: its parser, ``main`` and the worker, demo and bench commands
(the admin commands are in ``_cli_admin``).

::

    pyqueue demo                       add jobs and process them, narrating
    pyqueue worker MODULE:ATTR         run a worker (a Worker, Worker subclass or function)
    pyqueue info [QUEUE]               queues and their job counts
    pyqueue jobs QUEUE STATE           list jobs of a state
    pyqueue retry QUEUE                move failed jobs back to wait
    pyqueue health QUEUE               are the queue's workers consuming? (exit 0/1)
    pyqueue dlq list|replay|purge QUEUE  a queue's dead letters
    pyqueue email suppress|dlq|forget  the email worker's suppressions, dead letters, GDPR erase
    pyqueue metrics [--port 9090]      Prometheus metrics of the queues (extra: prometheus)
    pyqueue info --watch               live counts and rates
    pyqueue workers QUEUE              the queue's workers (host, pid, uptime, health)
    pyqueue schedulers QUEUE           job schedulers: next run; --remove ID
    pyqueue embedded [--stop]          the embedded Redis server's URL (or stop it)
    pyqueue outbox init|relay|...      the PostgreSQL outbox (see _cli_outbox)
    pyqueue bench [ARGS]               the benchmarks of a source checkout
    pyqueue dashboard                  the web dashboard (pip install 'pyqueue-redis[web]')

Every command takes ``--redis URL`` (default: ``$PYQUEUE_REDIS_URL``,
``$REDIS_URL``, else the embedded server) and ``--prefix``. Exit status: 0
ok, 1 pyqueue raised an error, 2 usage error (bad arguments, an unknown queue,
a worker target that cannot be imported), 130 interrupted by Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import sys
import time
from collections.abc import Sequence
from typing import Any

import redis

from . import __version__, _cli_dlq, logcontext
from . import _cli_admin as _admin
from . import _cli_metrics as _metrics
from . import _cli_ops as _opscli
from ._cli_admin import UsageError as UsageError  # re-exported
from ._cli_admin import add_connection_options
from ._cli_dashboard import register as register_dashboard
from ._ops import ALL_STATES
from ._plan import translate
from .connection import mask_url, resolve_url
from .errors import PyQueueError
from .worker import Worker


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    parser = argparse.ArgumentParser(prog="pyqueue",
                                     description="pyqueue: a BullMQ-compatible job queue.")
    parser.add_argument("--version", action="version", version=f"pyqueue {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("demo", help="add jobs and process them with a worker, narrating")
    p.add_argument("--dashboard", action="store_true",
                   help="serve the dashboard and keep jobs moving until Ctrl-C "
                        "(pip install 'pyqueue-redis[web]')")
    p.add_argument("--host", default="127.0.0.1", help="dashboard address (with --dashboard)")
    p.add_argument("--port", type=int, default=8080, help="dashboard port (with --dashboard)")
    add_connection_options(p)

    p = sub.add_parser("worker", help="run a worker until SIGINT/SIGTERM")
    p.add_argument("target", metavar="MODULE:ATTR",
                   help="a Worker instance, a Worker subclass, or a processor function")
    p.add_argument("--queue", help="queue name (needed for a function or a subclass "
                                   "without a queue_name attribute)")
    p.add_argument("--concurrency", type=int, default=None, help="jobs processed at once")
    p.add_argument("--processes", type=int, default=1,
                   help="run N worker processes (default 1); signals go to all of them")
    p.add_argument("--burst", action="store_true",
                   help="stop once no job is waiting, active or due (for scripts and tests)")
    p.add_argument("--log-level", default="INFO", help="logging level (default: INFO)")
    p.add_argument("--log-format", choices=["text", "json"], default="text",
                   help="log lines as text or one JSON object each; records from inside a "
                        "processor carry queue, job_id, job_name, attempt (default: text)")
    add_connection_options(p)

    p = sub.add_parser("info", help="queues and their job counts")
    p.add_argument("queue", nargs="?", help="one queue (default: every queue found)")
    p.add_argument("--json", action="store_true", help="print JSON")
    add_connection_options(p)

    p = sub.add_parser("jobs", help="list the jobs of one state")
    p.add_argument("queue")
    states = [*ALL_STATES, "wait"]
    p.add_argument("state", choices=states, metavar="STATE",
                   help=f"one of: {', '.join(states)} (wait is waiting)")
    p.add_argument("--limit", type=int, default=20, help="at most this many (default 20)")
    p.add_argument("--json", action="store_true", help="print JSON")
    add_connection_options(p)

    p = sub.add_parser("retry", help="move failed jobs back to wait")
    p.add_argument("queue")
    p.add_argument("--state", default="failed", choices=["failed", "completed"])
    p.add_argument("--count", type=int, default=1000)
    add_connection_options(p)

    p = sub.add_parser("health", help="are this queue's workers consuming? (exit 0 if one is)")
    p.add_argument("queue")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--stale", type=float, default=15.0,
                   help="seconds after which a heartbeat counts as stale (default 15)")
    p.add_argument("--host", default=None,
                   help="only the workers on this host name (a probe: --host \"$(hostname)\")")
    add_connection_options(p)

    p = sub.add_parser("embedded", help="print the embedded Redis server's URL, starting it")
    p.add_argument("--stop", action="store_true", help="stop the embedded server")

    p = sub.add_parser("bench", help="run benchmarks/ against the peers that are installed "
                                     "(from a checkout); arguments go to python -m benchmarks",
                       add_help=False)
    p.add_argument("bench_args", nargs=argparse.REMAINDER)

    register_dashboard(sub)
    _cli_dlq.register(sub)

    _metrics.register(sub)
    _opscli.register(sub)
    try:
        from .email.cli import register as register_email
    except ImportError:  # pyqueue-redis[email] is not installed
        pass
    else:
        register_email(sub)
    from ._cli_outbox import register as register_outbox

    register_outbox(sub)
    return parser



def _load_target(spec: str) -> Any:
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise UsageError(f"expected MODULE:ATTR, got {spec!r}")
    if "" not in sys.path:
        sys.path.insert(0, "")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing != module_name and not module_name.startswith(missing + "."):
            raise  # the module exists but imports something missing: show where
        raise UsageError(f"cannot import {module_name!r}: no module named {exc.name!r} "
                         "(run from the directory that holds it, or install it)") from None
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise UsageError(f"{module_name!r} has no attribute {attr!r}") from None
    return obj


def _worker_from(target: Any, args: argparse.Namespace, url: str) -> Worker:
    options: dict[str, Any] = {"connection": url, "prefix": args.prefix}
    if args.concurrency is not None:
        options["concurrency"] = args.concurrency
    if isinstance(target, Worker):
        if args.concurrency is not None:
            target.concurrency = args.concurrency
        return target
    if inspect.isclass(target) and issubclass(target, Worker):
        queue = args.queue or getattr(target, "queue_name", None)
        if not queue:
            raise UsageError("pass --queue for a Worker subclass without a queue_name "
                             "attribute")
        worker: Worker = target(queue, autorun=False, **options)
        return worker
    if callable(target):
        if not args.queue:
            raise UsageError("pass --queue NAME with a processor function")
        return Worker(args.queue, target, autorun=False, **options)
    raise UsageError(f"{args.target} is not a Worker, a Worker subclass or a function")



def _uses_embedded(args: argparse.Namespace) -> bool:
    """Whether this command's URL is the embedded server's (no --redis, no URL in the env)."""
    import os

    return args.redis is None and not any(os.environ.get(v)
                                          for v in ("PYQUEUE_REDIS_URL", "REDIS_URL"))


def _demo(args: argparse.Namespace, url: str) -> int:
    """``pyqueue demo``: part 1 (jobs) and part 2 (email), on one clock, with headings."""
    from .demo import run_demo

    embedded = _uses_embedded(args)
    if embedded:
        from ._server import default_home

        print(f"Redis: pyqueue's embedded redis-server (no --redis, $PYQUEUE_REDIS_URL or "
              f"$REDIS_URL given), at {mask_url(url)}\n"
              f"       its data (append-only file), redis.log and socket are in "
              f"{default_home()}")
    if args.dashboard:
        return _demo_dashboard(args, url)
    start = time.monotonic()
    status = 1
    try:
        print("\n== Part 1 of 2: jobs: priorities, a delay, retries with backoff, "
              "a failure ==", flush=True)
        counts = asyncio.run(run_demo(url, sys.stdout, start=start))
        ok = counts.get("completed") == 6 and counts.get("failed") == 1
        print("\n== Part 2 of 2: the email worker (pyqueue.email) and a local SMTP "
              "server ==", flush=True)
        try:
            from .email.demo import _smtp_controller, run_email_demo

            _smtp_controller()
        except ImportError as exc:
            hint = "" if "pip install" in str(exc) else "; pip install 'pyqueue-redis[demo]'"
            print(f"skipped: {exc}{hint}")
        else:
            email_counts = asyncio.run(run_email_demo(url, sys.stdout, start=start))
            ok = ok and email_counts.get("sent") == 13 and email_counts.get("replayed") == 1
        status = 0 if ok else 1
    except KeyboardInterrupt:
        print("\ninterrupted (Ctrl-C): the demo stopped its worker and removed its queues",
              flush=True)
        status = 130
    finally:
        if embedded:
            print("\nThe embedded redis-server keeps running (other pyqueue processes "
                  "share it).\nStop it with:  pyqueue embedded --stop", flush=True)
    return status


def _demo_dashboard(args: argparse.Namespace, url: str) -> int:
    """``pyqueue demo --dashboard``: the dashboard and jobs moving, until Ctrl-C."""
    try:
        import uvicorn  # noqa: F401

        from ._demo_dashboard import run_dashboard_demo
    except ImportError as exc:
        raise UsageError(f"the dashboard needs the web extra: pip install "
                         f"'pyqueue-redis[web]' ({exc})") from None
    try:
        return asyncio.run(run_dashboard_demo(url, sys.stdout, host=args.host,
                                              port=args.port))
    except KeyboardInterrupt:
        print("stopped (Ctrl-C): the demo's queue is removed", flush=True)
        return 0


def _run_processes(argv: list[str], count: int) -> int:
    """``pyqueue worker ... --processes N``: N copies of the same worker command.

    Each child is a full worker (its own event loop, connections and lock
    thread); SIGINT and SIGTERM are passed on, so they all shut down
    gracefully. Exits with the worst child's status.
    """
    import signal
    import subprocess

    child_argv = []
    skip = False
    for word in argv:  # the same command without --processes
        if skip:
            skip = False
            continue
        if word == "--processes":
            skip = True
            continue
        if word.startswith("--processes="):
            continue
        child_argv.append(word)
    children = [subprocess.Popen([sys.executable, "-m", "pyqueue.cli", *child_argv])
                for _ in range(count)]

    def forward(signum: int, _frame: Any) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    return max(child.wait() for child in children)


def _bench(bench_args: list[str]) -> int:
    """Run the benchmark suite of a source checkout (it is not part of the wheel)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    if not (root / "benchmarks" / "run.py").exists():
        print("pyqueue bench: the benchmarks ship with a source checkout of pyqueue, not "
              "with the installed package; clone the repository and run it there",
              file=sys.stderr)
        return 2
    sys.path.insert(0, str(root))
    run = importlib.import_module("benchmarks.run")
    return int(run.main(bench_args) or 0)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pyqueue`` command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:  # everything after it belongs to the benchmark runner
        return _bench(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        if args.command == "embedded":
            from ._server import embedded_url, stop_embedded

            if args.stop:
                print("stopped" if stop_embedded() else "not running")
            else:
                print(embedded_url())
            return 0
        if args.command == "bench":
            return _bench(args.bench_args)
        if getattr(args, "run", None) is not None:  # a command of its own module
            return int(args.run(args))
        target = None
        if args.command == "worker" and args.processes <= 1:
            logcontext.configure(args.log_level, args.log_format)
            target = _load_target(args.target)  # a typo fails before any server starts
        url = resolve_url(args.redis)
        if args.command == "email":
            from .email.cli import run as run_email

            return int(run_email(args, url))
        if args.command == "dlq":
            return _cli_dlq.run(args, url)
        if args.command == "demo":
            return _demo(args, url)
        if args.command == "metrics":
            return _metrics.run(args, url)
        if args.command == "dashboard":
            from ._cli_dashboard import run as run_dashboard

            return run_dashboard(args, url)
        if args.command == "worker" and args.processes > 1:
            with _metrics.serving(args, url):
                return _run_processes(argv, args.processes)
        if args.command == "worker":
            worker = _worker_from(target, args, url)
            worker.add_hooks(logcontext.JobContextHook())
            _metrics.attach(worker, args, url)
            print(f"pyqueue worker: queue {worker.name!r} on {mask_url(url)}, "
                  f"concurrency {worker.concurrency}; Ctrl-C to stop", file=sys.stderr)
            worker.run(burst=args.burst)
            return 0
        if args.command == "info":
            return _opscli.watch(args, url) if args.watch else _admin.info(args, url)
        if args.command in ("workers", "schedulers"):
            return int(getattr(_opscli, args.command)(args, url))
        if args.command == "jobs":
            return _admin.jobs(args, url)
        if args.command == "health":
            return _admin.health(args, url)
        if args.command == "retry":
            return _admin.retry(args, url)
    except UsageError as exc:
        print(f"pyqueue {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"pyqueue {args.command}: interrupted", file=sys.stderr)
        return 130
    except PyQueueError as exc:
        print(f"pyqueue {args.command}: {exc}", file=sys.stderr)
        return 1
    except redis.exceptions.RedisError as exc:  # a direct client call: same clean message
        print(f"pyqueue {args.command}: {translate(exc)}", file=sys.stderr)
        return 1
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
