"""``pyqueue outbox ...``: the PostgreSQL outbox's table and relay.

::

    pyqueue outbox init --dsn DSN       create the table, indexes and trigger (idempotent)
    pyqueue outbox sql                  print that SQL (for your own migrations)
    pyqueue outbox relay --dsn DSN      relay committed rows into Redis until SIGINT/SIGTERM
    pyqueue outbox status --dsn DSN     pending, failed and published rows

``--dsn`` defaults to ``$PYQUEUE_OUTBOX_DSN``, else ``$DATABASE_URL``.
``pyqueue.cli`` calls :func:`register`; the command runs through ``args.run``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any

from ._cli_admin import add_connection_options
from .connection import mask_url, resolve_url

_STATUS = """
SELECT count(*) FILTER (WHERE published_at IS NULL AND failed_at IS NULL),
       count(*) FILTER (WHERE failed_at IS NOT NULL),
       count(*) FILTER (WHERE published_at IS NOT NULL),
       COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)
                FILTER (WHERE published_at IS NULL AND failed_at IS NULL)), 0)::float8
  FROM pyqueue_outbox
"""


def _dsn_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dsn", default=None,
                        help="PostgreSQL connection string (default: $PYQUEUE_OUTBOX_DSN, "
                             "else $DATABASE_URL)")


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``outbox`` command (``init``, ``sql``, ``relay``, ``status``)."""
    outbox: argparse.ArgumentParser = subparsers.add_parser(
        "outbox", help="the PostgreSQL transactional outbox: table and relay")
    cmds = outbox.add_subparsers(dest="outbox_command", metavar="SUBCOMMAND")
    cmds.required = True
    p = cmds.add_parser("init", help="create the pyqueue_outbox table (idempotent)")
    _dsn_arg(p)
    cmds.add_parser("sql", help="print the SQL that creates the table, for your migrations")
    p = cmds.add_parser("relay", help="move committed rows into Redis until SIGINT/SIGTERM")
    _dsn_arg(p)
    add_connection_options(p)
    p.add_argument("--batch-size", type=int, default=500, help="rows per transaction")
    p.add_argument("--poll-interval", type=float, default=1.0,
                   help="seconds between polls without a NOTIFY (default 1)")
    p.add_argument("--retention-days", type=float, default=7.0,
                   help="delete published rows older than this (default 7; 0 keeps them)")
    p.add_argument("--log-level", default="INFO", help="logging level (default: INFO)")
    p = cmds.add_parser("status", help="pending, failed and published rows")
    _dsn_arg(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    outbox.set_defaults(run=run)
    return outbox


def _dsn(args: argparse.Namespace) -> str:
    from ._cli_admin import UsageError

    dsn = args.dsn or os.environ.get("PYQUEUE_OUTBOX_DSN") or os.environ.get("DATABASE_URL")
    if not dsn:
        raise UsageError("pass --dsn (or set $PYQUEUE_OUTBOX_DSN or $DATABASE_URL)")
    return str(dsn)


def run(args: argparse.Namespace) -> int:
    """Execute ``pyqueue outbox SUBCOMMAND``."""
    from ._cli_admin import UsageError

    try:
        import psycopg

        from . import outbox
    except ImportError as exc:
        raise UsageError(f"{exc}; pip install 'pyqueue-redis[outbox]'") from None
    if args.outbox_command == "sql":
        print(outbox.schema_sql())
        return 0
    dsn = _dsn(args)
    try:
        if args.outbox_command == "init":
            with psycopg.connect(dsn) as conn:
                outbox.init(conn)
            print("pyqueue outbox: table pyqueue_outbox is ready")
            return 0
        if args.outbox_command == "status":
            with psycopg.connect(dsn) as conn:
                row = conn.execute(_STATUS).fetchone()
            assert row is not None
            status = {"pending": row[0], "failed": row[1], "published": row[2],
                      "oldest_pending_seconds": round(row[3], 3)}
            if args.json:
                print(json.dumps(status))
            else:
                print(" ".join(f"{k}={v}" for k, v in status.items()))
            return 0
        logging.basicConfig(level=args.log_level.upper(),
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        url = resolve_url(args.redis)
        retention = args.retention_days * 86400 if args.retention_days > 0 else None
        relay = outbox.Relay(dsn, connection=url, prefix=args.prefix,
                             batch_size=args.batch_size, poll_interval=args.poll_interval,
                             retention=retention)
        print(f"pyqueue outbox relay: to {mask_url(url)}; Ctrl-C to stop", file=sys.stderr,
              flush=True)
        relay.run()
        return 0
    except psycopg.Error as exc:
        # libpq's messages name the host and user, never the password.
        print(f"pyqueue outbox {args.outbox_command}: PostgreSQL: "
              f"{str(exc).strip()}", file=sys.stderr)
        return 1
