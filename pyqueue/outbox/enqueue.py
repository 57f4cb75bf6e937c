"""``enqueue(conn, ...)``: a job written into the caller's PostgreSQL transaction.

The row is validated exactly as ``Queue.add`` validates a job (same typed
errors, raised before the ``INSERT``), then inserted with the caller's
connection, so it commits or rolls back with the rest of their transaction.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Awaitable, Mapping
from typing import Any, overload

from .._keys import validate_queue_name
from ..errors import InvalidJobOptionsError
from ..options import DEFAULT_MAX_PAYLOAD_BYTES, encode_job

try:
    import psycopg
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("pyqueue.outbox needs psycopg 3: pip install 'pyqueue-redis[outbox]'") \
        from exc

INSERT = ("INSERT INTO pyqueue_outbox (queue, name, data, opts) "
          "VALUES (%s, %s, %s::jsonb, %s::jsonb) RETURNING id")

#: Options the relay owns: the job id is ``outbox-<row id>``, and a repeat is a
#: scheduler (``Queue.upsert_job_scheduler``), not a one-off job.
_REFUSED = {"job_id": "the relay gives each job the id 'outbox-<row id>' (use "
                      "deduplication={'id': ...} to collapse duplicates)",
            "repeat": "schedulers are not outbox jobs; use Queue.upsert_job_scheduler()"}


def _plain(value: Any) -> Any:
    """Options as JSON: ``timedelta`` becomes seconds."""
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def prepare(queue_name: str, name: str, data: Any, job_options: Mapping[str, Any],
            *, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES) -> tuple[str, str, str, str]:
    """Validate a job as ``Queue.add`` does and return the row's
    ``(queue, name, data JSON, opts JSON)``; raises the same typed errors."""
    validate_queue_name(queue_name)
    for option, why in _REFUSED.items():
        if job_options.get(option) is not None:
            raise InvalidJobOptionsError(f"{option} is not accepted by outbox.enqueue: {why}")
    encoded = encode_job(name, data, job_options, max_payload_bytes=max_payload_bytes)
    opts = json.dumps(_plain(dict(job_options)), separators=(",", ":"))
    return queue_name, encoded.name, encoded.data, opts


@overload
def enqueue(conn: psycopg.AsyncConnection[Any], queue_name: str, name: str, data: Any = None,
            **job_options: Any) -> Awaitable[int]: ...
@overload
def enqueue(conn: psycopg.Connection[Any], queue_name: str, name: str, data: Any = None,
            **job_options: Any) -> int: ...
def enqueue(conn: Any, queue_name: str, name: str, data: Any = None,
            **job_options: Any) -> int | Awaitable[int]:
    """Write a job into the outbox with the caller's connection and transaction.

    ``conn`` is a psycopg 3 ``Connection`` (returns the row id) or
    ``AsyncConnection`` (returns an awaitable of it). Nothing reaches Redis
    unless the caller's transaction commits; then a relay adds the job to
    ``queue_name`` with ``job_id="outbox-<row id>"``. ``job_options`` are
    ``Queue.add``'s (``delay``, ``attempts``, ``backoff``, ``priority``, ...;
    ``job_id`` and ``repeat`` are refused); a delay counts from the insert.
    Invalid input raises the error ``Queue.add`` would raise, before the INSERT.
    """
    row = prepare(queue_name, name, data, job_options)
    if isinstance(conn, psycopg.AsyncConnection):
        return _insert_async(conn, row)
    if not isinstance(conn, psycopg.Connection):
        raise TypeError(f"enqueue needs a psycopg Connection or AsyncConnection, got "
                        f"{type(conn).__name__} (SQLAlchemy: see docs/outbox.md)")
    cursor = conn.execute(INSERT, row)
    fetched = cursor.fetchone()
    assert fetched is not None
    return int(fetched[0])


async def _insert_async(conn: psycopg.AsyncConnection[Any], row: tuple[str, ...]) -> int:
    cursor = await conn.execute(INSERT, row)
    fetched = await cursor.fetchone()
    assert fetched is not None
    return int(fetched[0])
