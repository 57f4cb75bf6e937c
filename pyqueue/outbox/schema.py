"""The outbox table: the shipped SQL file and :func:`init`, which runs it."""

from __future__ import annotations

from importlib import resources
from typing import Any

#: The table every function of :mod:`pyqueue.outbox` reads and writes.
TABLE = "pyqueue_outbox"
#: The ``LISTEN``/``NOTIFY`` channel the insert trigger notifies.
CHANNEL = "pyqueue_outbox"


def schema_sql() -> str:
    """The SQL that creates the table, its indexes and its trigger (idempotent);
    the same text as ``pyqueue/outbox/schema.sql``."""
    return resources.files(__package__).joinpath("schema.sql").read_text(encoding="utf-8")


def init(conn: Any) -> None:
    """Create the outbox table, indexes and trigger on a psycopg (sync)
    connection, in the first schema of its ``search_path``; commits.

    Idempotent, and safe when several processes run it at once (a
    transaction-level advisory lock serialises them).
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('pyqueue_outbox.init'))")
        conn.execute(schema_sql())
    if not conn.autocommit:
        conn.commit()
