"""Benchmark: outbox relay throughput, committed PostgreSQL rows per second into Redis.

Writes ``--rows`` outbox rows (committed) into a schema of its own, then runs
one or more relays (threads of this process, or ``--processes`` for separate
processes) until every row is published, and reports rows/s from the first
batch to the last COMMIT, and the Python CPU per row. The schema is dropped at
the end. Run it from the checkout::

    python -m benchmarks.outbox_relay [--rows 20000] [--batch-size 500] [--relays 1]
        [--dsn "host=127.0.0.1 dbname=test user=postgres"] [--url redis://...]

Without ``--url`` it starts a throwaway ``redis-server``; the DSN defaults to
``$PYQUEUE_TEST_POSTGRES_DSN``, else 127.0.0.1:5432 database ``test``.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from uuid import uuid4

import psycopg
from psycopg.conninfo import make_conninfo

from pyqueue import Queue
from pyqueue.outbox import Relay, init, prepare
from pyqueue.outbox.enqueue import INSERT
from pyqueue.testing import RedisServer

PAYLOAD = {"to": "someone@example.com", "p": "x" * 160}


def _fill(dsn: str, rows: int, queue: str) -> None:
    spec = prepare(queue, "welcome", PAYLOAD, {"attempts": 3})
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        cur.executemany(INSERT.replace(" RETURNING id", ""), [spec] * rows)


def measure(dsn: str, url: str, rows: int, batch_size: int, relays: int) -> dict[str, float]:
    """Fill the outbox with ``rows`` rows and relay them; returns the figures."""
    queue = f"bench-outbox-{uuid4().hex[:8]}"
    _fill(dsn, rows, queue)
    workers = [Relay(dsn, connection=url, batch_size=batch_size) for _ in range(relays)]
    counts = [0] * relays

    def drain(i: int) -> None:
        counts[i] = workers[i].run_until_empty()

    cpu = time.process_time()
    start = time.perf_counter()
    threads = [threading.Thread(target=drain, args=(i,)) for i in range(relays)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu
    for relay in workers:
        relay.close()
    with Queue(queue, connection=url) as q:
        waiting = q.get_job_counts("waiting")["waiting"]
        q.obliterate(force=True)
    assert sum(counts) == rows == waiting, (counts, rows, waiting)
    return {"rows": rows, "seconds": elapsed, "rows_per_s": rows / elapsed,
            "cpu_us_per_row": cpu / rows * 1e6}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--relays", type=int, default=1)
    parser.add_argument("--dsn", default=os.environ.get(
        "PYQUEUE_TEST_POSTGRES_DSN", "host=127.0.0.1 port=5432 dbname=test user=postgres"))
    parser.add_argument("--url", default=None, help="Redis URL (default: a throwaway server)")
    args = parser.parse_args(argv)
    schema = f"pq_bench_{uuid4().hex[:8]}"
    with psycopg.connect(args.dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    dsn = make_conninfo(args.dsn, options=f"-c search_path={schema}")
    server = None
    try:
        with psycopg.connect(dsn) as conn:
            init(conn)
        url = args.url
        if url is None:
            server = RedisServer()
            server.start()
            url = server.url
        r = measure(dsn, url, args.rows, args.batch_size, args.relays)
        print(f"outbox relay: {r['rows']:.0f} rows, batch {args.batch_size}, "
              f"{args.relays} relay(s): {r['rows_per_s']:,.0f} rows/s "
              f"({r['seconds']:.2f} s), {r['cpu_us_per_row']:.0f} µs Python CPU per row")
    finally:
        if server is not None:
            server.stop()
        with psycopg.connect(args.dsn, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


if __name__ == "__main__":
    main()
