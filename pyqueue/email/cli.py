"""``pyqueue email ...``: the suppression list and the dead-letter queue.

::

    pyqueue email suppress add ADDRESS [--reason TEXT] [--expires SECONDS]
    pyqueue email suppress remove ADDRESS
    pyqueue email suppress list [--json]
        (each with --postgres DSN [--table NAME]: the PostgreSQL suppression table)
    pyqueue email dlq list [--limit N] [--json]
    pyqueue email dlq replay (JOB_ID | --all)
    pyqueue email forget ADDRESS [--wait SECONDS] [--json] [--postgres DSN]

Each takes ``--queue NAME`` (default ``email``), ``--redis URL`` and
``--prefix``, after ``email`` or after the action. ``pyqueue.cli`` calls
:func:`register` to add the ``email`` command and :func:`run` to execute it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from .deadletter import DeadLetters
from .suppressions import Suppressions


def _common(parser: argparse.ArgumentParser, *, top: bool = False) -> None:
    # Accepted after ``email`` (``pyqueue email --queue Q forget X``) and after
    # the action; only the ``email`` level sets defaults, so a value given there
    # is not overwritten by the action's parser.
    def default(value: Any) -> Any:
        return value if top else argparse.SUPPRESS

    parser.add_argument("--queue", default=default("email"),
                        help="mail queue name (default: email)")
    parser.add_argument("--redis", metavar="URL", default=default(None),
                        help="Redis URL (default: $PYQUEUE_REDIS_URL, $REDIS_URL, "
                             "else the embedded server)")
    parser.add_argument("--prefix", default=default("bull"), help="key prefix (default: bull)")


def _postgres(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--postgres", metavar="DSN", default=None,
                        help="use the PostgreSQL suppression table at DSN (default: "
                             "$EMAIL_SUPPRESSIONS_DSN, else the queue's Redis list)")
    parser.add_argument("--table", default=None,
                        help="its table (default: $EMAIL_SUPPRESSIONS_TABLE, else "
                             "email_suppressions)")


def _pg_store(args: argparse.Namespace) -> Any:
    """The PostgreSQL store the arguments or the environment name, or ``None``."""
    dsn = getattr(args, "postgres", None) or os.environ.get("EMAIL_SUPPRESSIONS_DSN")
    if not dsn:
        return None
    from .pgsuppressions import PostgresSuppressions

    table = getattr(args, "table", None) or os.environ.get("EMAIL_SUPPRESSIONS_TABLE") \
        or "email_suppressions"
    return PostgresSuppressions(dsn, table=table)


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``email`` command (with ``suppress`` and ``dlq``) to ``subparsers``."""
    email: argparse.ArgumentParser = subparsers.add_parser(
        "email", help="email worker: suppression list, dead letters, GDPR forget")
    _common(email, top=True)
    groups = email.add_subparsers(dest="email_command", metavar="SUBCOMMAND")
    groups.required = True

    p = groups.add_parser("forget", help="GDPR erase: remove every job, log and event "
                                         "that mentions an address; keep it suppressed, "
                                         "hashed")
    p.add_argument("address")
    p.add_argument("--wait", type=float, default=10.0, metavar="SECONDS",
                   help="how long to wait for an active job of the address (default 10)")
    p.add_argument("--json", action="store_true", help="print the counts as JSON")
    _common(p)
    _postgres(p)

    supp = groups.add_parser("suppress", help="the suppression list (addresses never mailed)")
    supp_cmds = supp.add_subparsers(dest="suppress_command", metavar="ACTION")
    supp_cmds.required = True
    p = supp_cmds.add_parser("add", help="suppress an address")
    p.add_argument("address")
    p.add_argument("--reason", default="manual", help="why (default: manual)")
    p.add_argument("--expires", type=float, default=None, metavar="SECONDS",
                   help="lift the suppression after this many seconds (default: never)")
    _common(p)
    _postgres(p)
    p = supp_cmds.add_parser("remove", help="stop suppressing an address")
    p.add_argument("address")
    _common(p)
    _postgres(p)
    p = supp_cmds.add_parser("list", help="list suppressed addresses")
    p.add_argument("--json", action="store_true", help="print JSON")
    _common(p)
    _postgres(p)

    dlq = groups.add_parser("dlq", help="the dead-letter queue (finally failed mail)")
    dlq_cmds = dlq.add_subparsers(dest="dlq_command", metavar="ACTION")
    dlq_cmds.required = True
    p = dlq_cmds.add_parser("list", help="list dead-lettered mail with the reasons")
    p.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    p.add_argument("--json", action="store_true", help="print JSON")
    _common(p)
    p = dlq_cmds.add_parser("replay", help="add dead-lettered mail back to the queue")
    p.add_argument("job_id", nargs="?", help="the failed job's id (see `dlq list`)")
    p.add_argument("--all", action="store_true", help="replay every entry")
    _common(p)
    email.set_defaults(handler=run)
    return email


def _when(epoch: Any) -> str:
    if epoch is None:
        return "never"
    return datetime.fromtimestamp(float(epoch), timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def run(args: argparse.Namespace, url: str) -> int:
    """Execute a parsed ``pyqueue email ...`` command against ``url``; exit status."""
    if args.email_command == "forget":
        return _forget(args, url)
    if args.email_command == "suppress":
        store = _pg_store(args)
        if store is not None:
            return asyncio.run(_suppress_pg(args, store))
        with Suppressions(args.queue, connection=url, prefix=args.prefix) as supp:
            try:
                if args.suppress_command == "add":
                    addr = supp.add(args.address, args.reason, expires=args.expires)
                    print(f"suppressed {addr}")
                    return 0
                if args.suppress_command == "remove":
                    removed = supp.remove(args.address)
                    print(f"removed {args.address}" if removed
                          else f"{args.address} was not suppressed")
                    return 0 if removed else 1
            except ValueError as exc:
                print(f"pyqueue email suppress: {exc}", file=sys.stderr)
                return 2
            entries = supp.list()
        return _print_entries(args, entries)
    with DeadLetters(args.queue, connection=url, prefix=args.prefix) as dead:
        if args.dlq_command == "list":
            rows = dead.list(args.limit)
            if args.json:
                print(json.dumps(rows, indent=2, default=str))
            elif not rows:
                print(f"no dead-lettered mail for queue {args.queue!r}")
            for row in [] if args.json else rows:
                to = ", ".join((row.get("data") or {}).get("to") or [])
                print(f"{row['job_id']}\t{row.get('kind')}\tto {to}\t{row.get('reason')}")
            return 0
        if not args.all and not args.job_id:
            print("pyqueue email dlq replay: give a JOB_ID or --all", file=sys.stderr)
            return 2
        ids = dead.replay(None if args.all else args.job_id)
        if not ids:
            print("nothing to replay")
            return 1
        for new_id in ids:
            print(f"replayed as job {new_id}")
        return 0


def _print_entries(args: argparse.Namespace, entries: list[dict[str, Any]]) -> int:
    if args.json:
        print(json.dumps(entries, indent=2))
    elif not entries:
        print(f"no suppressed addresses for queue {args.queue!r}")
    for entry in [] if args.json else entries:
        print(f"{entry['address']}\t{entry['reason']}\tsince {_when(entry['at'])}\t"
              f"expires {_when(entry['expires'])}")
    return 0


async def _suppress_pg(args: argparse.Namespace, store: Any) -> int:
    try:
        if args.suppress_command == "add":
            print(f"suppressed {await store.add(args.address, args.reason, expires=args.expires)}")
            return 0
        if args.suppress_command == "remove":
            removed = await store.remove(args.address)
            print(f"removed {args.address}" if removed
                  else f"{args.address} was not suppressed")
            return 0 if removed else 1
        return _print_entries(args, await store.list())
    except ValueError as exc:
        print(f"pyqueue email suppress: {exc}", file=sys.stderr)
        return 2
    finally:
        await store.close()


async def _forget_pg(store: Any, address: str) -> None:
    try:
        await store.forget(address)
    finally:
        await store.close()


def _forget(args: argparse.Namespace, url: str) -> int:
    from ..queue import Queue
    from .forget import forget

    with Queue(args.queue, connection=url, prefix=args.prefix) as queue:
        try:
            counts = forget(queue, args.address, wait=args.wait)
            store = _pg_store(args)
            if store is not None:  # the table too: its plain row becomes a hashed one
                asyncio.run(_forget_pg(store, args.address))
        except ValueError as exc:
            print(f"pyqueue email forget: {exc}", file=sys.stderr)
            return 2
    if args.json:
        print(json.dumps(counts, indent=2, sort_keys=True))
    else:
        removed = ", ".join(f"{name} {n}" for name, n in sorted(counts.items())
                            if name not in ("suppressed", "busy") and n)
        print(f"forgot the address on queue {args.queue!r}: {removed or 'nothing stored'}; "
              "it stays suppressed (hashed)")
        if counts.get("busy"):
            print(f"{counts['busy']} job(s) still active were not removed: run forget again "
                  "once they finish", file=sys.stderr)
    return 1 if counts.get("busy") else 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m pyqueue.email.cli email ...`` (the same as ``pyqueue email ...``)."""
    from ..connection import resolve_url

    parser = argparse.ArgumentParser(prog="pyqueue")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return run(args, resolve_url(args.redis))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
