"""Operator commands: ``pyqueue workers QUEUE`` (from heartbeats), ``pyqueue schedulers
QUEUE [--remove ID]`` and ``pyqueue info --watch`` (live counts and rates).

Plain text tables (no extra dependency); ``--json`` where a script wants data.
The live view redraws in place on a terminal and prints one block per refresh
otherwise (a pipe, a log file).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from typing import Any

from . import _ops_read, _ops_worker
from ._cli_admin import UsageError, add_connection_options, queue_names, require_queue
from ._clock import Clock
from ._keys import QueueKeys
from ._ops_stats import WORKER_STALE_MS, QueueStats, queue_stats
from ._runner import run_sync
from .queue import Queue

_CLEAR = "\x1b[H\x1b[J"


def register(sub: Any) -> None:
    """Add ``workers`` and ``schedulers``, and ``--watch`` to ``info``."""
    p = sub.add_parser("workers", help="a queue's pyqueue workers, from their heartbeats")
    p.add_argument("queue")
    p.add_argument("--json", action="store_true", help="print JSON")
    add_connection_options(p)
    p = sub.add_parser("schedulers", help="a queue's job schedulers (or remove one)")
    p.add_argument("queue")
    p.add_argument("--remove", metavar="ID", help="remove the scheduler ID")
    p.add_argument("--json", action="store_true", help="print JSON")
    add_connection_options(p)
    info = sub.choices["info"]
    info.add_argument("--watch", action="store_true",
                      help="refresh counts and rates until Ctrl-C")
    info.add_argument("--interval", type=float, default=2.0,
                      help="seconds between refreshes with --watch (default 2)")
    info.add_argument("--count", type=int, default=0,
                      help="with --watch: stop after this many refreshes (0: never)")




def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns)]
    lines += ["  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def workers(args: argparse.Namespace, url: str) -> int:
    """``pyqueue workers QUEUE``: host, pid, concurrency, uptime, health per worker."""
    with Queue(args.queue, connection=url, prefix=args.prefix) as q:
        require_queue(q.client, args.prefix, args.queue)
        beats = run_sync(q.client, _ops_worker.worker_health(QueueKeys(q.prefix, q.name)))
    now = time.time()
    rows = []
    for worker_id, score, info in beats:
        age = now - score / 1000
        started = info.get("started_at")
        rows.append({
            "worker_id": worker_id, "host": info.get("host", "?"), "pid": info.get("pid", "?"),
            "concurrency": info.get("concurrency", "?"), "active": info.get("active", "?"),
            "processed": info.get("jobs_processed", "?"), "state": info.get("state", "?"),
            "uptime": _duration(now - started) if isinstance(started, int | float) else "?",
            "heartbeat_age": round(age, 1),
            "health": "ok" if info.get("consuming") and age * 1000 <= WORKER_STALE_MS
            else "DOWN"})
    if args.json:
        print(json.dumps(rows, indent=2))
    elif not rows:
        print(f"no pyqueue workers have reported for {args.queue!r}")
    else:
        print(_table(rows, ["health", "host", "pid", "concurrency", "active", "processed",
                            "uptime", "state", "heartbeat_age", "worker_id"]))
    return 0


def _when(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return "-" if value is None else str(value)


def schedulers(args: argparse.Namespace, url: str) -> int:
    """``pyqueue schedulers QUEUE``: list (next run, pattern/every), or ``--remove ID``."""
    with Queue(args.queue, connection=url, prefix=args.prefix) as q:
        require_queue(q.client, args.prefix, args.queue)
        if args.remove:
            if not q.remove_job_scheduler(args.remove):
                raise UsageError(f"no scheduler {args.remove!r} in {args.queue!r}")
            print(f"removed scheduler {args.remove!r}")
            return 0
        found = q.get_job_schedulers()
    rows = [{"id": s["id"], "name": s.get("name") or "", "next": _when(s.get("next")),
             "pattern": s.get("pattern") or "",
             "every": "" if s.get("every") is None else f"{s['every']:g}s",
             "tz": s.get("tz") or "", "iterations": s.get("iteration_count") or 0,
             "limit": s.get("limit") or ""} for s in found]
    if args.json:
        print(json.dumps(found, indent=2, default=str))
    elif not rows:
        print(f"no job schedulers in {args.queue!r}")
    else:
        print(_table(rows, ["id", "name", "next", "pattern", "every", "tz", "iterations",
                            "limit"]))
    return 0


def _snapshot(client: Any, prefix: str, only: str | None, clock: Clock) -> list[QueueStats]:
    def plan() -> Any:
        yield from clock.sync()
        names = [only] if only else (yield from _ops_read.queue_names(prefix))
        out = []
        for name in names:
            out.append((yield from queue_stats(QueueKeys(prefix, name), clock.now_ms())))
        return out
    result: list[QueueStats] = run_sync(client, plan())
    return result


def watch(args: argparse.Namespace, url: str) -> int:
    """``pyqueue info --watch``: counts per queue and finish rates, refreshed."""
    if args.interval <= 0:
        raise UsageError(f"--interval must be > 0, got {args.interval}")
    tty = sys.stdout.isatty()
    clock = Clock()
    with Queue(args.queue or "_", connection=url, prefix=args.prefix) as probe:
        if args.queue:
            require_queue(probe.client, args.prefix, args.queue)
        elif not queue_names(probe.client, args.prefix):
            print(f"no queues under prefix {args.prefix!r} yet; watching")
        previous: dict[str, tuple[float, int]] = {}
        shown = 0
        try:
            while True:
                started = time.monotonic()
                stats = _snapshot(probe.client, args.prefix, args.queue, clock)
                print((_CLEAR if tty else "") + _render(stats, previous, started), flush=True)
                shown += 1
                if args.count and shown >= args.count:
                    return 0
                time.sleep(max(0.0, args.interval - (time.monotonic() - started)))
        except KeyboardInterrupt:
            return 0


def _render(stats: list[QueueStats], previous: dict[str, tuple[float, int]],
            now: float) -> str:
    """The table of one refresh; rates are finishes per second since the last one
    (from BullMQ metrics' totals when kept, else the completed/failed sets)."""
    rows = []
    for s in stats:
        finished = sum(s.finished_totals.values()) if s.finished_totals else \
            s.counts.get("completed", 0) + s.counts.get("failed", 0)
        rate = ""
        if s.queue in previous:
            then, before = previous[s.queue]
            if now > then:
                rate = f"{max(0, finished - before) / (now - then):.1f}/s"
        previous[s.queue] = (now, finished)
        rows.append({"queue": s.queue, **s.counts, "workers": s.workers,
                     "paused": "yes" if s.paused else "",
                     "oldest_wait": "" if s.oldest_waiting_age is None
                     else _duration(s.oldest_waiting_age), "rate": rate})
    stamp = time.strftime("%H:%M:%S")
    if not rows:
        return f"{stamp}  no queues"
    return f"{stamp}  (Ctrl-C to stop)\n" + _table(rows, [
        "queue", "waiting", "prioritized", "delayed", "active", "completed", "failed",
        "workers", "oldest_wait", "rate", "paused"])
