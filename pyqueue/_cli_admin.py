"""The ``pyqueue`` admin commands that read or fix a queue (``info``, ``jobs``, ``retry``,
``health``), and the ``UsageError`` every command raises for a command-line mistake."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import redis.cluster

from . import _ops_read, _ops_worker
from ._keys import QueueKeys
from ._runner import run_sync
from .connection import mask_url, sync_client
from .errors import RedisDataError
from .queue import Queue


class UsageError(Exception):
    """A command line mistake: reported in one line, exit status 2."""



def queue_names(client: Any, prefix: str) -> list[str]:
    """Every queue under ``prefix``, found by scanning (reads only; on a
    cluster, every primary)."""
    if isinstance(client, redis.cluster.RedisCluster):
        found: set[str] = set()
        primaries: Any = client.get_primaries  # untyped upstream
        for node in primaries():
            found.update(run_sync(node.redis_connection, _ops_read.queue_names(prefix)))
        return sorted(found)
    names: list[str] = run_sync(client, _ops_read.queue_names(prefix))
    return names


def require_queue(client: Any, prefix: str, name: str) -> None:
    """Raise :class:`UsageError` unless a queue ``name`` exists (reads only)."""
    if run_sync(client, _ops_read.queue_exists(QueueKeys(prefix, name))):
        return
    known = queue_names(client, prefix)
    shown = ", ".join(known[:20]) + (", ..." if len(known) > 20 else "")
    raise UsageError(f"no queue named {name!r} under prefix {prefix!r} "
                     f"(known: {shown or 'none'})")


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    """``--redis URL`` and ``--prefix``, which every command that talks to Redis takes."""
    parser.add_argument("--redis", metavar="URL", default=None,
                        help="Redis URL (default: $PYQUEUE_REDIS_URL, $REDIS_URL, "
                             "else the embedded server)")
    parser.add_argument("--prefix", default="bull", help="key prefix (default: bull)")

def info(args: argparse.Namespace, url: str) -> int:
    client, owned = sync_client(url)
    try:
        if args.queue:
            require_queue(client, args.prefix, args.queue)
        names = [args.queue] if args.queue else queue_names(client, args.prefix)
        rows: list[dict[str, Any]] = []
        unreadable: list[dict[str, Any]] = []
        for name in names:
            with Queue(name, connection=client, prefix=args.prefix) as q:
                try:
                    counts = q.get_job_counts()
                    rows.append({"queue": name, "paused": q.is_paused(), **counts})
                except RedisDataError as exc:
                    if args.queue:
                        raise  # the one queue asked for: the command fails
                    # One damaged queue does not hide the others.
                    unreadable.append({"queue": name, "error": str(exc)})
    finally:
        if owned:
            client.close()
    for bad in unreadable:
        print(f"pyqueue info: queue {bad['queue']!r} cannot be read: {bad['error']}",
              file=sys.stderr)
    if args.json:
        print(json.dumps(rows + unreadable, indent=2))
        return 0
    if not rows:
        print(f"no queues under prefix {args.prefix!r} on {mask_url(url)}")
        return 0
    columns = ["queue", "waiting", "prioritized", "delayed", "waiting-children", "active",
               "completed", "failed", "paused"]
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for row in rows:
        print("  ".join(str(row[c]).ljust(widths[c]) for c in columns))
    return 0


def jobs(args: argparse.Namespace, url: str) -> int:
    with Queue(args.queue, connection=url, prefix=args.prefix) as q:
        require_queue(q.client, args.prefix, args.queue)
        jobs = q.get_jobs([args.state], 0, max(args.limit, 1) - 1)
    if args.json:
        print(json.dumps([j.to_dict() for j in jobs], indent=2, default=str))
        return 0
    for job in jobs:
        extra = f" failed: {job.failed_reason}" if job.failed_reason else ""
        print(f"{job.id}\t{job.name}\tattempts={job.attempts_made}\t"
              f"{json.dumps(job.data)[:80]}{extra}")
    if not jobs:
        print(f"no {args.state} jobs in {args.queue}")
    return 0


def health(args: argparse.Namespace, url: str) -> int:
    with Queue(args.queue, connection=url, prefix=args.prefix) as q:
        require_queue(q.client, args.prefix, args.queue)
        beats = run_sync(q.client, _ops_worker.worker_health(QueueKeys(q.prefix, q.name)))
    now = time.time()
    rows = []
    for worker_id, score, info in beats:
        if getattr(args, "host", None) and info.get("host") != args.host:
            continue
        age = now - score / 1000
        rows.append({**info, "worker_id": worker_id, "heartbeat_age": round(age, 1),
                     "healthy": bool(info.get("consuming")) and age <= args.stale})
    healthy = any(row["healthy"] for row in rows)
    if args.json:
        print(json.dumps({"queue": args.queue, "healthy": healthy, "workers": rows}, indent=2))
    elif not rows:
        print(f"no workers have reported for {args.queue!r}")
    else:
        for row in rows:
            mark = "ok  " if row["healthy"] else "DOWN"
            print(f"{mark} {row['worker_id']}  state={row.get('state')} "
                  f"active={row.get('active')} processed={row.get('jobs_processed')} "
                  f"heartbeat {row['heartbeat_age']}s ago")
    return 0 if healthy else 1


def retry(args: argparse.Namespace, url: str) -> int:
    """``pyqueue retry QUEUE``: move failed (or completed) jobs back to wait."""
    with Queue(args.queue, connection=url, prefix=args.prefix) as q:
        require_queue(q.client, args.prefix, args.queue)
        moved = q.retry_jobs(args.state, args.count)
    print(f"moved {moved} {args.state} job(s) back to wait")
    return 0
