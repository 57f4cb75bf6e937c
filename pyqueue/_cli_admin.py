"""The ``pyqueue`` admin commands that read or fix a queue (``info``, ``jobs``, ``retry``,
``health``), and the ``UsageError`` every command raises for a command-line mistake."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from .connection import mask_url
from .queue import Queue


class UsageError(Exception):
    """A command line mistake: reported in one line, exit status 2."""



#: Keys whose presence means a queue exists: its meta hash, its id counter
#: (both written by the first add) and pyqueue's worker heartbeats.
_QUEUE_MARKERS = (":meta", ":id", ":pq:workers")


def queue_names(client: Any, prefix: str) -> list[str]:
    """Every queue under ``prefix``, found by scanning (reads only)."""
    names = set()
    for marker in _QUEUE_MARKERS:
        for key in client.scan_iter(match=f"{prefix}:*{marker}", count=1000):
            text = key.decode() if isinstance(key, bytes) else str(key)
            names.add(text[len(prefix) + 1:-len(marker)])
    return sorted(n for n in names if ":" not in n)


def require_queue(client: Any, prefix: str, name: str) -> None:
    """Raise :class:`UsageError` unless a queue ``name`` exists (reads only)."""
    if any(client.exists(f"{prefix}:{name}{marker}") for marker in _QUEUE_MARKERS):
        return
    known = queue_names(client, prefix)
    shown = ", ".join(known[:20]) + (", ..." if len(known) > 20 else "")
    raise UsageError(f"no queue named {name!r} under prefix {prefix!r} "
                     f"(known: {shown or 'none'})")


def info(args: argparse.Namespace, url: str) -> int:
    probe = Queue(args.queue or "_", connection=url, prefix=args.prefix)
    try:
        if args.queue:
            require_queue(probe.client, args.prefix, args.queue)
        names = [args.queue] if args.queue else queue_names(probe.client, args.prefix)
        rows = []
        for name in names:
            with Queue(name, connection=probe.client, prefix=args.prefix) as q:
                counts = q.get_job_counts()
                rows.append({"queue": name, "paused": q.is_paused(), **counts})
    finally:
        probe.close()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(f"no queues under prefix {args.prefix!r} on {mask_url(url)}")
        return 0
    columns = ["queue", "waiting", "prioritized", "delayed", "active", "completed", "failed",
               "paused"]
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
        client: Any = q.client  # redis-py's return types are too loose to be useful here
        require_queue(client, args.prefix, args.queue)
        beats = client.zrange(f"{q.prefix}:{q.name}:pq:workers", 0, -1, withscores=True)
        infos = client.hgetall(f"{q.prefix}:{q.name}:pq:workerinfo")
    now = time.time()
    rows = []
    for member, score in beats:
        worker_id = member.decode() if isinstance(member, bytes) else str(member)
        raw = infos.get(member) or infos.get(worker_id)
        info = json.loads(raw) if raw else {}
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
