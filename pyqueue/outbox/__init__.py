"""The transactional outbox on PostgreSQL (``pip install 'pyqueue-redis[outbox]'``).

A job written with :func:`enqueue` is a row in the caller's own transaction:
it reaches Redis if and only if that transaction commits. A :class:`Relay`
(``pyqueue outbox relay --dsn DSN``) moves committed rows into their queues,
each as exactly one job with the id ``outbox-<row id>``::

    import psycopg
    from pyqueue.outbox import enqueue

    with psycopg.connect(dsn) as conn:          # one transaction
        conn.execute("INSERT INTO users (email) VALUES (%s)", [email])
        enqueue(conn, "email", "welcome", {"to": email}, attempts=5)

The table: ``pyqueue outbox init --dsn DSN``, :func:`init`, or the SQL of
:func:`schema_sql` in your own migrations. See docs/outbox.md.
"""

from __future__ import annotations

from .enqueue import enqueue, prepare
from .hooks import PrometheusRelayHooks, RelayHooks
from .relay import Relay
from .schema import CHANNEL, TABLE, init, schema_sql

__all__ = ["CHANNEL", "TABLE", "PrometheusRelayHooks", "Relay", "RelayHooks", "enqueue",
           "init", "prepare", "schema_sql"]
