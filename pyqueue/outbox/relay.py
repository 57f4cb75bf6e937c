"""The relay: committed outbox rows become jobs, exactly one job per row.

One batch, in one PostgreSQL transaction::

    SELECT ... WHERE published_at IS NULL ORDER BY id LIMIT n FOR UPDATE SKIP LOCKED
    add the jobs to Redis (one add_bulk per queue), job_id = "outbox-<id>"
    UPDATE ... SET published_at = now() WHERE id = ANY(...)
    COMMIT

The races it closes:

* A relay dies (kill -9) after the Redis add and before the COMMIT: the rows
  stay unpublished and unlocked (PostgreSQL aborts the dead session's
  transaction), the next batch adds them again, and the add of an id that
  exists adds nothing. So every committed row becomes exactly one job. (If
  the job has already finished and was removed by ``remove_on_complete``,
  the replay adds it again: keep completed jobs for longer than a relay
  restart takes, which the defaults do.)
* A relay dies after the COMMIT: the rows are published; nothing happens twice.
* Several relays: ``SKIP LOCKED`` hands each row to one relay at a time; a
  relay never waits for another's batch.
* A rolled-back transaction's rows are never visible, so never relayed.
* Redis is down: the batch rolls back, the rows get ``attempts + 1`` and
  ``last_error``, and the relay retries with exponential backoff (capped).
* A row that can never become a job (an invalid queue name or option written
  by raw SQL) gets ``failed_at`` and ``last_error`` in the batch's
  transaction and is skipped from then on; the rest of the batch goes on.

Order: with one relay, each queue receives its rows in id order (FIFO by
insert, among rows committed by the time the batch reads them; a
transaction that commits late can put an older id after newer ones). Several
relays work on different batches at once, so across batches the order in
Redis may differ from the id order.

Wake-up: the insert trigger's ``NOTIFY pyqueue_outbox`` (sent at COMMIT)
wakes the relay at once; it also polls every ``poll_interval`` seconds, so a
lost notification (a dropped LISTEN connection) only delays rows.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

import psycopg
import redis

from .. import Queue
from .._duration import duration_ms
from .._keys import validate_prefix
from ..connection import sync_client
from ..errors import ConfigurationError, RedisError
from ..options import encode_job
from .hooks import RelayHooks, default_hooks
from .schema import CHANNEL

log = logging.getLogger("pyqueue.outbox")

_SELECT = """
SELECT id, queue, name, data, opts, EXTRACT(EPOCH FROM (now() - created_at))::float8
  FROM pyqueue_outbox
 WHERE published_at IS NULL AND failed_at IS NULL
 ORDER BY id
 LIMIT %s
   FOR UPDATE SKIP LOCKED
"""
_PUBLISHED = "UPDATE pyqueue_outbox SET published_at = now() WHERE id = ANY(%s)"
_INVALID = ("UPDATE pyqueue_outbox SET failed_at = now(), attempts = attempts + 1, "
            "last_error = %s WHERE id = %s")
_FAILED_TRY = ("UPDATE pyqueue_outbox SET attempts = attempts + 1, last_error = %s "
               "WHERE id = ANY(%s) AND published_at IS NULL")
_PURGE = """
DELETE FROM pyqueue_outbox WHERE id IN (
    SELECT id FROM pyqueue_outbox
     WHERE published_at IS NOT NULL AND published_at < now() - %s * interval '1 millisecond'
     LIMIT %s)
"""
_PURGE_CHUNK = 5000

Row = tuple[int, str, str, Any, dict[str, Any], float]


class Relay:
    """Moves committed outbox rows into their queues (see the module docs).

    Args:
        dsn: the PostgreSQL connection string (libpq format or URL). A
            ``search_path`` in it (``options=-csearch_path=app``) picks the
            schema of the table.
        connection: Redis, as ``Queue``'s ``connection=`` (URL, client, ``None``).
        prefix: the queues' key prefix.
        batch_size: rows per transaction.
        poll_interval: seconds between polls when no notification comes.
        retention: published rows older than this (seconds or ``timedelta``)
            are deleted; ``None`` keeps them.
        retention_interval: seconds between retention passes.
        max_backoff: the longest wait between retries while Redis or
            PostgreSQL fails (the wait doubles from 0.1 s up to this).
        hooks: :class:`RelayHooks` called at each step (metrics, tests);
            the Prometheus counters are added when ``prometheus_client`` is
            installed.
    """

    def __init__(self, dsn: str, *, connection: str | redis.Redis | None = None,
                 prefix: str = "bull", batch_size: int = 500, poll_interval: float = 1.0,
                 retention: float | timedelta | None = timedelta(days=7),
                 retention_interval: float = 60.0, max_backoff: float = 5.0,
                 hooks: Sequence[RelayHooks] = ()) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigurationError(f"batch_size must be an int >= 1, got {batch_size!r}")
        for option, value in (("poll_interval", poll_interval), ("max_backoff", max_backoff),
                              ("retention_interval", retention_interval)):
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ConfigurationError(f"{option} must be seconds > 0, got {value!r}")
        self.dsn = dsn
        self.prefix = validate_prefix(prefix)
        self.batch_size = batch_size
        self.poll_interval = float(poll_interval)
        self.retention_ms = None if retention is None else \
            duration_ms(retention, "retention", allow_zero=False)
        self.retention_interval = float(retention_interval)
        self.max_backoff = float(max_backoff)
        self.hooks: list[RelayHooks] = [*hooks, *default_hooks()]
        self.client, self._owns_client = sync_client(connection)
        self._queues: dict[str, Queue] = {}
        self._db: psycopg.Connection[Any] | None = None
        self._listen: psycopg.Connection[Any] | None = None
        self._stop = threading.Event()
        self._last_purge = 0.0

    # -- connections
    def _conn(self) -> psycopg.Connection[Any]:
        if self._db is None or self._db.closed:
            self._db = psycopg.connect(self.dsn, application_name="pyqueue-outbox-relay")
        return self._db

    def _listener(self) -> psycopg.Connection[Any]:
        if self._listen is None or self._listen.closed:
            conn = psycopg.connect(self.dsn, autocommit=True,
                                   application_name="pyqueue-outbox-listen")
            conn.execute(f"LISTEN {CHANNEL}")
            self._listen = conn
        return self._listen

    @property
    def listening(self) -> bool:
        """Whether the relay's ``LISTEN`` connection is open (it opens at the
        first wait; rows committed from then on wake the relay at once)."""
        return self._listen is not None and not self._listen.closed

    def _queue(self, name: str) -> Queue:
        queue = self._queues.get(name)
        if queue is None:
            queue = self._queues[name] = Queue(name, connection=self.client, prefix=self.prefix)
        return queue

    def close(self) -> None:
        """Close the PostgreSQL and Redis connections (the relay may run again later)."""
        for conn in (self._db, self._listen):
            if conn is not None:
                with contextlib.suppress(psycopg.Error):
                    conn.close()
        self._db = self._listen = None
        for queue in self._queues.values():
            queue.close()
        self._queues.clear()
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> Relay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- one batch
    def relay_batch(self) -> int:
        """Publish one batch of committed rows; returns how many became jobs.

        Raises the Redis error (after recording it on the rows) when Redis
        fails, and ``psycopg.Error`` when PostgreSQL does.
        """
        conn = self._conn()
        ids: list[int] = []
        try:
            with conn.transaction():
                rows: list[Row] = conn.execute(_SELECT, (self.batch_size,)).fetchall()
                if not rows:
                    return 0
                ids = [row[0] for row in rows]
                added = self._add(conn, rows)
                for hook in self.hooks:
                    hook.on_added(added)
                if added:
                    conn.execute(_PUBLISHED, (added,))
        except (RedisError, redis.exceptions.RedisError) as exc:
            self._record_failure(conn, ids, exc)
            raise
        finally:
            if not conn.closed and conn.info.transaction_status != \
                    psycopg.pq.TransactionStatus.IDLE:
                conn.rollback()
        for hook in self.hooks:
            hook.on_published(added)
        return len(added)

    def _add(self, conn: psycopg.Connection[Any], rows: list[Row]) -> list[int]:
        """Add the rows' jobs, one ``add_bulk`` per queue in id order; mark
        invalid rows failed. Returns the ids that are now jobs."""
        by_queue: dict[str, list[Row]] = {}
        for row in rows:
            by_queue.setdefault(row[1], []).append(row)
        added: list[int] = []
        for queue_name, queue_rows in by_queue.items():
            try:
                queue = self._queue(queue_name)
            except ConfigurationError as exc:
                self._invalid(conn, [row[0] for row in queue_rows], exc)
                continue
            specs = [_spec(row) for row in queue_rows]
            try:
                queue.add_bulk(specs)
            except (ValueError, TypeError):  # find the bad rows; add the others
                good = []
                for row, spec in zip(queue_rows, specs, strict=True):
                    try:
                        _validate(spec)
                    except (ValueError, TypeError) as exc:
                        self._invalid(conn, [row[0]], exc)
                    else:
                        good.append((row, spec))
                if good:
                    queue.add_bulk([spec for _, spec in good])
                added.extend(row[0] for row, _ in good)
                continue
            added.extend(row[0] for row in queue_rows)
        return added

    def _invalid(self, conn: psycopg.Connection[Any], ids: Iterable[int],
                 exc: BaseException) -> None:
        message = f"invalid: {type(exc).__name__}: {exc}"[:2000]
        for row_id in ids:
            conn.execute(_INVALID, (message, row_id))
            log.error("outbox row %s can never become a job and is skipped: %s", row_id, message)
            for hook in self.hooks:
                hook.on_invalid(row_id, exc)

    def _record_failure(self, conn: psycopg.Connection[Any], ids: list[int],
                        exc: BaseException) -> None:
        """After a rolled-back batch: ``attempts + 1`` and ``last_error`` on its rows."""
        for hook in self.hooks:
            hook.on_error(exc)
        if not ids or conn.closed:
            return
        with contextlib.suppress(psycopg.Error):
            if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                conn.rollback()
            with conn.transaction():
                conn.execute(_FAILED_TRY, (f"{type(exc).__name__}: {exc}"[:2000], ids))

    # -- retention
    def purge_published(self) -> int:
        """Delete published rows older than ``retention``; returns how many."""
        if self.retention_ms is None:
            return 0
        conn = self._conn()
        total = 0
        while True:
            with conn.transaction():
                deleted = conn.execute(_PURGE, (self.retention_ms, _PURGE_CHUNK)).rowcount
            total += deleted
            if deleted < _PURGE_CHUNK:
                return total

    # -- loops
    def run_until_empty(self) -> int:
        """Publish batches until none is left; returns how many rows became jobs."""
        total = 0
        while True:
            count = self.relay_batch()
            total += count
            if count == 0:
                return total

    def stop(self) -> None:
        """Ask :meth:`run` to return after the current batch (thread-safe)."""
        self._stop.set()

    def _wait(self, seconds: float) -> None:
        """Wait for a NOTIFY, ``stop()`` or ``seconds``, whichever comes first."""
        deadline = time.monotonic() + seconds
        listener = self._listener()
        while not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            for _ in listener.notifies(timeout=min(left, 0.2), stop_after=1):
                return

    def run(self, *, handle_signals: bool = True) -> None:
        """Relay until :meth:`stop` (or SIGINT/SIGTERM when ``handle_signals``
        and called from the main thread), retrying with backoff while Redis
        or PostgreSQL fails (or a hook raises: logged with its traceback).
        Closes the connections when it returns."""
        self._stop.clear()
        restore = self._install_signals() if handle_signals else {}
        backoff = 0.0
        try:
            while not self._stop.is_set():
                try:
                    count = self.relay_batch()
                    self._maybe_purge()
                    backoff = 0.0
                    if count < self.batch_size:
                        self._wait(self.poll_interval)
                except Exception as exc:
                    backoff = min(self.max_backoff, max(0.1, backoff * 2))
                    expected = isinstance(exc, RedisError | redis.exceptions.RedisError
                                          | psycopg.Error)
                    log.log(logging.WARNING if expected else logging.ERROR,
                            "outbox relay: %s: %s; retrying in %.1f s",
                            type(exc).__name__, exc, backoff, exc_info=not expected)
                    if isinstance(exc, psycopg.Error):
                        self._drop_pg()
                    self._stop.wait(backoff)
        finally:
            for signum, handler in restore.items():
                signal.signal(signum, handler)
            self.close()

    def _maybe_purge(self) -> None:
        now = time.monotonic()
        if self.retention_ms is not None and now - self._last_purge >= self.retention_interval:
            self._last_purge = now
            self.purge_published()

    def _drop_pg(self) -> None:
        for conn in (self._db, self._listen):
            if conn is not None:
                with contextlib.suppress(psycopg.Error):
                    conn.close()
        self._db = self._listen = None

    def _install_signals(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous: dict[int, Any] = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, lambda *_: self.stop())
        return previous


def _spec(row: Row) -> dict[str, Any]:
    """The ``add_bulk`` entry of a row: its options, the id, the delay left."""
    row_id, _queue, name, data, opts, age = row
    options = dict(opts) if isinstance(opts, dict) else {"_invalid_opts": opts}
    options["job_id"] = f"outbox-{row_id}"
    delay = options.get("delay")
    if isinstance(delay, int | float) and not isinstance(delay, bool) and delay > 0:
        left = delay - max(0.0, age)
        options["delay"] = left if left > 0 else 0
    return {"name": name, "data": data, "opts": options}


def _validate(spec: dict[str, Any]) -> None:
    """Raise the error ``add_bulk`` would raise for ``spec`` (nothing is written)."""
    encode_job(spec["name"], spec["data"], spec["opts"])
