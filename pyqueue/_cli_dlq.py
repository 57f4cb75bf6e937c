"""``pyqueue dlq list|replay|purge QUEUE``: a queue's dead letters from the command line.

::

    pyqueue dlq list QUEUE   [filters] [--json]
    pyqueue dlq replay QUEUE [filters] [--rate N] [--dry-run] [--json]
    pyqueue dlq purge QUEUE  [filters] [--dry-run]

``QUEUE`` is a queue with a dead-letter queue (its own entries) or a
dead-letter queue itself (all its entries). Filters: ``--name NAME`` (job
name), ``--since WHEN`` (failed at or after: an ISO date-time, or a duration
ago such as ``90s``, ``30m``, ``2h``, ``7d``), ``--failed-reason TEXT``
(substring), ``--job-id ID`` (the failed job's id), ``--limit N`` (``list``:
100 unless given; 0 lists all).
``--dry-run`` shows what would be replayed or purged and writes nothing.
``pyqueue.cli`` calls :func:`register` and :func:`run`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import datetime, timedelta, timezone
from typing import Any

from ._cli_admin import add_connection_options
from .queue import Queue

_AGO = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def since_value(text: str) -> datetime | timedelta:
    """``--since``: ``2h``/``30m``/``90s``/``7d``/seconds (that long ago) or an ISO date-time
    (UTC unless it names a zone)."""
    match = _AGO.match(text.strip())
    if match:
        return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO date-time or a duration ago like 30m, 2h, 7d; got {text!r}"
        ) from None


def register(sub: Any) -> argparse.ArgumentParser:
    """Add the ``dlq`` command (``list``, ``replay``, ``purge``) to ``sub``."""
    dlq: argparse.ArgumentParser = sub.add_parser(
        "dlq", help="a queue's dead letters: list, replay or purge them")
    actions = dlq.add_subparsers(dest="dlq_action", metavar="ACTION")
    actions.required = True
    helps = {"list": "list dead letters, oldest first",
             "replay": "move dead letters back to their queue as new jobs",
             "purge": "delete dead letters without replaying them"}
    for action, text in helps.items():
        p = actions.add_parser(action, help=text, description=text)
        p.add_argument("queue", help="a queue with a dead-letter queue, or a dead-letter queue")
        p.add_argument("--name", default=None, help="only jobs with this name")
        p.add_argument("--since", type=since_value, default=None, metavar="WHEN",
                       help="only those failed at or after WHEN: an ISO date-time, or a "
                            "duration ago (90s, 30m, 2h, 7d)")
        p.add_argument("--failed-reason", default=None, metavar="TEXT",
                       help="only those whose failure reason contains TEXT")
        p.add_argument("--job-id", default=None, metavar="ID",
                       help="only the dead letter of the failed job ID")
        if action == "list":
            p.add_argument("--limit", type=int, default=100,
                           help="at most this many (default 100; 0: all)")
        else:
            p.add_argument("--limit", type=int, default=None, help="at most this many")
        if action == "replay":
            p.add_argument("--rate", type=float, default=None, metavar="N",
                           help="spread the replayed jobs out: N per second (delayed jobs), "
                                "so workers are not flooded")
        if action != "list":
            p.add_argument("--dry-run", action="store_true",
                           help="show what would be done; write nothing")
        if action != "purge":
            p.add_argument("--json", action="store_true", help="print JSON")
        add_connection_options(p)
    return dlq


def _when(ms: Any) -> str:
    if not isinstance(ms, int | float):
        return "?"
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def _row(job: Any) -> str:
    d = job.data if isinstance(job.data, dict) else {}
    reason = str(d.get("failed_reason", "")).splitlines()[0:1]
    return (f"{job.id}\t{d.get('queue')}:{d.get('job_id')}\t{job.name}\t"
            f"{_when(d.get('failed_at'))}\t{d.get('kind', '')}\t{reason[0] if reason else ''}")


def run(args: argparse.Namespace, url: str) -> int:
    """Execute a parsed ``pyqueue dlq ...`` command against ``url``; exit status."""
    filters: dict[str, Any] = {"name": args.name, "since": args.since,
                               "failed_reason": args.failed_reason, "job_id": args.job_id}
    with Queue(args.queue, connection=url, prefix=args.prefix) as queue:
        if args.dlq_action == "list" or args.dry_run:
            limit = None if args.dlq_action == "list" and args.limit == 0 else args.limit
            end = -1 if limit is None else limit - 1
            jobs = [] if limit == 0 else queue.get_dead_letters(0, end, **filters)
            if getattr(args, "json", False):
                print(json.dumps([{"id": j.id, "name": j.name, **j.data} for j in jobs],
                                 indent=2, default=str))
                return 0
            if args.dlq_action != "list":
                verb = "replay" if args.dlq_action == "replay" else "purge"
                print(f"dry run: would {verb} {len(jobs)} dead letter(s)", file=sys.stderr)
            elif not jobs:
                print(f"no dead letters for {args.queue!r}", file=sys.stderr)
            for job in jobs:
                print(_row(job))
            return 0
        filters["limit"] = args.limit
        if args.dlq_action == "purge":
            removed = queue.purge_dead_letters(**filters)
            print(f"purged {removed} dead letter(s)")
            return 0
        ids = queue.replay_dead_letters(rate=args.rate, **filters)
        if args.json:
            print(json.dumps(ids))
        elif ids:
            spread = f", spread over {(len(ids) - 1) / args.rate:.0f}s" if args.rate else ""
            print(f"replayed {len(ids)} dead letter(s) as new jobs {ids[0]}..{ids[-1]}{spread}")
        else:
            print("nothing to replay")
        return 0
