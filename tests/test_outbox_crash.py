"""The outbox under crashes and races, on the real PostgreSQL and Redis.

* kill -9 of the relay after its Redis add and before its COMMIT, and after
  the COMMIT: every committed row ends as exactly one job; a rolled-back row
  never becomes one.
* Redis down for 10 s: rows wait (with ``last_error`` and a backed-off retry
  count), then flow.
* Two relays racing over 10,000 rows: each row is published by one relay,
  and becomes one job.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time

import pytest
from _outbox import pg_dsn_fixture, psycopg, relay_child, rows  # noqa: F401
from _worker_helpers import wait_for_sync

from pyqueue import Queue
from pyqueue.outbox import Relay, enqueue, prepare
from pyqueue.outbox.enqueue import INSERT
from pyqueue.testing import RedisServer

pytestmark = pytest.mark.slow


def _commit_rows(dsn: str, queue_name: str, count: int) -> list[int]:
    """``count`` committed rows, plus two rolled-back ones in between."""
    with psycopg.connect(dsn) as conn:
        ids = [enqueue(conn, queue_name, "n", {"i": i}) for i in range(count)]
        conn.commit()
        enqueue(conn, queue_name, "n", {"rolled": "back"})
        enqueue(conn, queue_name, "n", {"rolled": "back"})
        conn.rollback()
    return ids


def _read_line(proc: subprocess.Popen[str], word: str) -> str:
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith(word):
            return line[len(word):].strip()
    raise AssertionError(f"the relay exited ({proc.wait()}) before printing {word}")


def _kill(proc: subprocess.Popen[str]) -> None:
    proc.kill()  # SIGKILL: no cleanup, no COMMIT, no ROLLBACK
    proc.communicate(timeout=20)


def _all_published(dsn: str, relay: Relay) -> bool:
    relay.relay_batch()  # rows still locked by the dead session are skipped until it is gone
    return all(row[1] for row in rows(dsn))


def _assert_one_job_per_row(redis_url: str, queue_name: str, ids: list[int]) -> None:
    with Queue(queue_name, connection=redis_url) as q:
        jobs = q.get_jobs(["waiting"], asc=True)
        assert [job.id for job in jobs] == [f"outbox-{i}" for i in ids]
        assert all("rolled" not in job.data for job in jobs)
        assert q.get_job_counts()["waiting"] == len(ids)


@pytest.mark.parametrize("point", ["added", "published"])
def test_kill_9_of_the_relay_loses_and_duplicates_nothing(pg_dsn: str, redis_url: str,
                                                          queue_name: str, point: str) -> None:
    ids = _commit_rows(pg_dsn, queue_name, 5)
    proc = relay_child(pg_dsn, redis_url, f"hold-{point}")
    try:
        held = json.loads(_read_line(proc, point.upper()))
        assert held == ids
        with Queue(queue_name, connection=redis_url) as q:  # the jobs are in Redis already
            assert q.get_job_counts()["waiting"] == 5
        published = [row[1] for row in rows(pg_dsn)]
        assert published == [point == "published"] * 5  # before the COMMIT: still pending
    finally:
        _kill(proc)
    later = _commit_rows(pg_dsn, queue_name, 2)  # rows written while no relay runs
    with Relay(pg_dsn, connection=redis_url) as relay:
        wait_for_sync(lambda: _all_published(pg_dsn, relay), timeout=30,
                      what="every committed row published after the crash")
    _assert_one_job_per_row(redis_url, queue_name, ids + later)


def test_rows_wait_while_redis_is_down_then_flow(pg_dsn: str, queue_name: str) -> None:
    server = RedisServer()  # a server of this test's own, stopped and started again
    server.start()
    relay = Relay(pg_dsn, connection=server.url, poll_interval=0.2, max_backoff=1.0)
    thread = threading.Thread(target=relay.run, kwargs={"handle_signals": False})
    try:
        thread.start()
        first = _commit_rows(pg_dsn, queue_name, 3)
        with Queue(queue_name, connection=server.url) as q:
            wait_for_sync(lambda: q.get_job_counts()["waiting"] == 3, what="the first rows")
        server.kill()
        down_at = time.monotonic()
        ids = _commit_rows(pg_dsn, queue_name, 20)
        wait_for_sync(lambda: all(r[3] for r in rows(pg_dsn, "published_at IS NULL")),
                      timeout=10, what="last_error on the waiting rows")
        # The outage lasts 10 s (the scenario, not a synchronisation).
        threading.Event().wait(max(0.0, 10.0 - (time.monotonic() - down_at)))
        waiting = rows(pg_dsn, "published_at IS NULL")
        assert [r[0] for r in waiting] == ids
        attempts = waiting[0][2]
        assert 3 <= attempts <= 40, attempts  # retried, with backoff (not a hot loop)
        assert "onnect" in waiting[0][3]
        server.restart()
        with Queue(queue_name, connection=server.url) as q:
            wait_for_sync(lambda: q.get_job_counts()["waiting"] == 20, timeout=20,
                          what="the rows flowing once Redis is back")
            assert [j.id for j in q.get_jobs(["waiting"], asc=True)] == \
                [f"outbox-{i}" for i in ids]
        assert all(r[1] for r in rows(pg_dsn)) and len(first) == 3
    finally:
        relay.stop()
        thread.join(20)
        server.stop()
    assert not thread.is_alive()


def test_two_relays_racing_over_10000_rows_publish_each_row_once(pg_dsn: str, redis_url: str,
                                                                 queue_name: str) -> None:
    count = 10_000
    with psycopg.connect(pg_dsn) as conn, conn.cursor() as cur:
        cur.executemany(INSERT.replace(" RETURNING id", ""),
                        [prepare(queue_name, "n", {"i": i}, {}) for i in range(count)])
    relays = [relay_child(pg_dsn, redis_url, "drain", "200") for _ in range(2)]
    try:
        for proc in relays:
            _read_line(proc, "READY")
        for proc in relays:  # both start together
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        done = [json.loads(_read_line(proc, "DONE")) for proc in relays]
        for proc in relays:
            proc.communicate(timeout=30)  # closes the pipes too
            assert proc.returncode == 0
    finally:
        for proc in relays:
            if proc.poll() is None:
                _kill(proc)
    first, second = (set(ids) for ids in done)
    assert not first & second, "a row published by both relays"
    all_ids = {r[0] for r in rows(pg_dsn)}
    assert first | second == all_ids and len(all_ids) == count
    assert all(r[1] for r in rows(pg_dsn))
    with Queue(queue_name, connection=redis_url) as q:
        assert q.get_job_counts()["waiting"] == count
    print(f"relay split: {len(first)} + {len(second)}")
