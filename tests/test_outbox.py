"""The PostgreSQL outbox: the table, enqueue's validation and transactions, the relay.

Runs against a real PostgreSQL (see ``tests/_outbox.py``) and the session's
real Redis. The crash tests are in ``test_outbox_crash.py``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence

import pytest
from _outbox import REPO, pg_dsn_fixture, psycopg, rows  # noqa: F401
from _worker_helpers import wait_for_sync

from pyqueue import (
    InvalidJobDataError,
    InvalidJobOptionsError,
    InvalidQueueNameError,
    PayloadTooLargeError,
    Queue,
)
from pyqueue.cli import main
from pyqueue.outbox import PrometheusRelayHooks, Relay, RelayHooks, enqueue, init, schema_sql
from pyqueue.testing import assert_enqueued, assert_not_enqueued


def _relay(dsn: str, url: str, **options: object) -> Relay:
    return Relay(dsn, connection=url, **options)  # type: ignore[arg-type]


def test_init_is_idempotent_and_the_cli_runs_the_shipped_sql(pg_dsn: str,
                                                             capsys: pytest.CaptureFixture[str]
                                                             ) -> None:
    with psycopg.connect(pg_dsn) as conn:
        init(conn)  # a second time: nothing changes, nothing fails
    assert main(["outbox", "init", "--dsn", pg_dsn]) == 0
    assert main(["outbox", "sql"]) == 0
    out = capsys.readouterr().out
    assert "ready" in out and "CREATE TABLE IF NOT EXISTS pyqueue_outbox" in out
    assert schema_sql() == (REPO / "pyqueue" / "outbox" / "schema.sql").read_text()
    with psycopg.connect(pg_dsn) as conn:
        columns = {r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'pyqueue_outbox' AND table_schema = current_schema()")}
        indexes = {r[0] for r in conn.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()")}
    assert {"id", "queue", "name", "data", "opts", "created_at", "published_at", "attempts",
            "last_error"} <= columns
    assert {"pyqueue_outbox_pending", "pyqueue_outbox_published"} <= indexes


def test_the_cli_without_a_dsn_is_a_usage_error(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("PYQUEUE_OUTBOX_DSN", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert main(["outbox", "init"]) == 2
    assert "--dsn" in capsys.readouterr().err


@pytest.mark.parametrize(("args", "opts", "error"), [
    (("bad:name", "n", {}), {}, InvalidQueueNameError),
    (("email", "n", {}), {"priority": 1.5}, InvalidJobOptionsError),
    (("email", "n", {}), {"attempts": 0}, InvalidJobOptionsError),
    (("email", "n", {}), {"nope": 1}, InvalidJobOptionsError),
    (("email", "n", {}), {"job_id": "mine"}, InvalidJobOptionsError),
    (("email", "n", {}), {"repeat": {"every": 5}}, InvalidJobOptionsError),
    (("email", "n", {"x": object()}), {}, InvalidJobDataError),
    (("email", "n", "x" * (600 * 1024)), {}, PayloadTooLargeError),
    (("email", 7, {}), {}, InvalidJobOptionsError),
])
def test_enqueue_validates_like_add_before_the_insert(pg_dsn: str, redis_url: str,
                                                      args: tuple, opts: dict,  # type: ignore[type-arg]
                                                      error: type[Exception]) -> None:
    with psycopg.connect(pg_dsn) as conn:
        with pytest.raises(error):
            enqueue(conn, *args, **opts)
        # the transaction is still usable: nothing was sent to PostgreSQL
        assert conn.execute("SELECT count(*) FROM pyqueue_outbox").fetchone() == (0,)
    if not opts.get("job_id") and not opts.get("repeat") and args[0] != "bad:name":
        with pytest.raises(error), Queue("email-validation-twin", connection=redis_url) as q:
            q.add(*args[1:], **opts)  # the same input fails Queue.add the same way


@pytest.mark.parametrize("options", [{"batch_size": 0}, {"poll_interval": -1},
                                     {"prefix": ""}, {"retention": -5}])
def test_bad_relay_options_raise_before_connecting(options: dict, redis_url: str  # type: ignore[type-arg]
                                                   ) -> None:
    with pytest.raises(ValueError):
        Relay("host=127.0.0.1 port=1 dbname=none", connection=redis_url, **options)


def test_enqueue_refuses_what_is_not_a_psycopg_connection() -> None:
    with pytest.raises(TypeError, match="psycopg"):
        enqueue(object(), "email", "welcome", {})


def test_committed_rows_become_jobs_and_rolled_back_ones_never(pg_dsn: str, redis_url: str,
                                                               queue_name: str) -> None:
    with psycopg.connect(pg_dsn) as conn:
        kept = enqueue(conn, queue_name, "welcome", {"to": "a@example.com"}, attempts=3,
                       priority=2, backoff={"type": "fixed", "delay": dt.timedelta(seconds=2)})
        conn.commit()
        dropped = enqueue(conn, queue_name, "welcome", {"to": "b@example.com"})
        conn.rollback()
    with _relay(pg_dsn, redis_url) as relay:
        assert relay.run_until_empty() == 1
    with Queue(queue_name, connection=redis_url) as q:
        (job,) = assert_enqueued(q, "welcome", {"to": "a@example.com"})
        assert job.id == f"outbox-{kept}" and job.priority == 2
        assert job.opts["attempts"] == 3 and job.opts["backoff"] == {"type": "fixed",
                                                                     "delay": 2000}
        assert q.get_job(f"outbox-{dropped}") is None
        assert_not_enqueued(q, data={"to": "b@example.com"})
    assert rows(pg_dsn) == [(kept, True, 0, None, False)]


async def test_enqueue_with_an_async_connection(pg_dsn: str, redis_url: str,
                                                queue_name: str) -> None:
    async with await psycopg.AsyncConnection.connect(pg_dsn) as conn:
        row_id = await enqueue(conn, queue_name, "welcome", [1, 2])
        with pytest.raises(InvalidJobOptionsError):
            enqueue(conn, queue_name, "welcome", None, delay=-1)
        await conn.commit()
    with _relay(pg_dsn, redis_url) as relay:
        assert await asyncio.to_thread(relay.run_until_empty) == 1
    with Queue(queue_name, connection=redis_url) as q:
        job = q.get_job(f"outbox-{row_id}")
        assert job is not None and job.data == [1, 2]


def test_one_relay_keeps_each_queue_fifo_across_batches(pg_dsn: str, redis_url: str,
                                                        queue_name: str) -> None:
    other = queue_name + "-b"
    with psycopg.connect(pg_dsn) as conn:
        ids = [enqueue(conn, queue_name if i % 3 else other, "n", {"i": i}) for i in range(25)]
    with _relay(pg_dsn, redis_url, batch_size=4) as relay:
        assert relay.run_until_empty() == 25
    for name in (queue_name, other):
        with Queue(name, connection=redis_url) as q:
            waiting = [job.data["i"] for job in q.get_jobs("waiting", asc=True)]
            expected = [i for i, _ in enumerate(ids) if (i % 3 != 0) == (name == queue_name)]
            assert waiting == expected


def test_an_invalid_row_is_marked_failed_and_the_batch_goes_on(pg_dsn: str, redis_url: str,
                                                               queue_name: str) -> None:
    with psycopg.connect(pg_dsn) as conn:
        good = enqueue(conn, queue_name, "n", 1)
        conn.execute("INSERT INTO pyqueue_outbox (queue, name, opts) VALUES "
                     "(%s, 'n', '{\"priority\": \"high\"}'), ('bad:queue', 'n', '{}')",
                     (queue_name,))
        after = enqueue(conn, queue_name, "n", 2)
    with _relay(pg_dsn, redis_url, batch_size=10) as relay:
        assert relay.run_until_empty() == 2
        assert relay.run_until_empty() == 0  # the failed rows are not tried again
    found = rows(pg_dsn)
    assert [r[0] for r in found if r[1]] == [good, after]
    failed = [r for r in found if r[4]]
    assert len(failed) == 2 and all(r[3].startswith("invalid: ") and r[2] == 1 for r in failed)
    assert "priority" in failed[0][3] and "queue" in failed[1][3].lower()


def test_a_delay_counts_from_the_insert(pg_dsn: str, redis_url: str, queue_name: str) -> None:
    with psycopg.connect(pg_dsn) as conn:
        row_id = enqueue(conn, queue_name, "n", None, delay=3600)
        conn.execute("UPDATE pyqueue_outbox SET created_at = now() - interval '1000 seconds'")
    with _relay(pg_dsn, redis_url) as relay:
        relay.run_until_empty()
    with Queue(queue_name, connection=redis_url) as q:
        job = q.get_job(f"outbox-{row_id}")
        assert job is not None and q.get_job_state(job.id) == "delayed"
        assert 2590 <= job.delay <= 2600  # type: ignore[operator]


def test_retention_deletes_old_published_rows_only(pg_dsn: str, redis_url: str,
                                                   queue_name: str) -> None:
    with psycopg.connect(pg_dsn) as conn:
        old, recent, pending = (enqueue(conn, queue_name, "n", i) for i in range(3))
        conn.execute("UPDATE pyqueue_outbox SET published_at = now() - interval '8 days' "
                     "WHERE id = %s", (old,))
        conn.execute("UPDATE pyqueue_outbox SET published_at = now() - interval '6 days' "
                     "WHERE id = %s", (recent,))
    with _relay(pg_dsn, redis_url, retention=dt.timedelta(days=7)) as relay:
        assert relay.purge_published() == 1
    assert [r[0] for r in rows(pg_dsn)] == [recent, pending]


def test_a_running_relay_wakes_on_notify_not_on_its_poll(pg_dsn: str, redis_url: str,
                                                         queue_name: str) -> None:
    relay = _relay(pg_dsn, redis_url, poll_interval=60)
    thread = threading.Thread(target=relay.run, kwargs={"handle_signals": False})
    thread.start()
    try:
        with Queue(queue_name, connection=redis_url) as q:
            wait_for_sync(lambda: relay.listening, what="the relay listening")
            for i in range(3):
                with psycopg.connect(pg_dsn) as conn:
                    row_id = enqueue(conn, queue_name, "n", i)
                started = time.monotonic()
                wait_for_sync(lambda r=row_id: q.get_job(f"outbox-{r}"), timeout=10,
                              what="the job of a committed row")
                assert time.monotonic() - started < 5  # far under the 60 s poll
    finally:
        relay.stop()
        thread.join(10)
    assert not thread.is_alive() and not relay.listening


def test_the_relay_command_runs_until_sigterm(pg_dsn: str, redis_url: str,
                                              queue_name: str) -> None:
    with psycopg.connect(pg_dsn) as conn:
        row_id = enqueue(conn, queue_name, "n", {"cli": True})
    proc = subprocess.Popen([sys.executable, "-m", "pyqueue.cli", "outbox", "relay", "--dsn",
                             pg_dsn, "--redis", redis_url, "--poll-interval", "0.2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        with Queue(queue_name, connection=redis_url) as q:
            wait_for_sync(lambda: q.get_job(f"outbox-{row_id}"), timeout=20,
                          what="the relay command's job")
        status = subprocess.run([sys.executable, "-m", "pyqueue.cli", "outbox", "status",
                                 "--dsn", pg_dsn, "--json"], capture_output=True, text=True,
                                cwd=REPO, check=True)
        assert json.loads(status.stdout)["published"] == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "Traceback" not in err


def test_the_relay_benchmark_runs(pg_dsn: str, redis_url: str) -> None:
    from benchmarks.outbox_relay import measure

    figures = measure(pg_dsn, redis_url, rows=300, batch_size=100, relays=2)
    assert figures["rows"] == 300 and figures["rows_per_s"] > 0


class _FailOnce(RelayHooks):
    """Raises in the first batch, after its Redis add: the batch rolls back."""

    def __init__(self) -> None:
        self.raised = 0

    def on_added(self, ids: Sequence[int]) -> None:
        if not self.raised:
            self.raised += 1
            raise RuntimeError("hook failed")


def test_a_failing_hook_rolls_the_batch_back_and_the_relay_goes_on(
        pg_dsn: str, redis_url: str, queue_name: str, caplog: pytest.LogCaptureFixture) -> None:
    with psycopg.connect(pg_dsn) as conn:
        ids = [enqueue(conn, queue_name, "n", i) for i in range(3)]
    hook = _FailOnce()
    relay = Relay(pg_dsn, connection=redis_url, poll_interval=0.2, max_backoff=0.2,
                  hooks=[hook])
    thread = threading.Thread(target=relay.run, kwargs={"handle_signals": False})
    thread.start()
    try:
        wait_for_sync(lambda: all(r[1] for r in rows(pg_dsn)), timeout=20,
                      what="the rows published after the hook's failure")
    finally:
        relay.stop()
        thread.join(10)
    assert hook.raised == 1 and "hook failed" in caplog.text
    with Queue(queue_name, connection=redis_url) as q:  # added twice, one job each
        assert [j.id for j in q.get_jobs("waiting", asc=True)] == [f"outbox-{i}" for i in ids]


def test_prometheus_counters(pg_dsn: str, redis_url: str, queue_name: str) -> None:
    from prometheus_client import REGISTRY

    def published() -> float:
        return REGISTRY.get_sample_value("pyqueue_outbox_published_total") or 0.0

    with psycopg.connect(pg_dsn) as conn:
        for i in range(4):
            enqueue(conn, queue_name, "n", i)
        conn.execute("INSERT INTO pyqueue_outbox (queue, name) VALUES ('bad:q', 'n')")
    before = published()
    invalid = REGISTRY.get_sample_value("pyqueue_outbox_invalid_total") or 0.0
    with _relay(pg_dsn, redis_url) as relay:
        assert any(isinstance(h, PrometheusRelayHooks) for h in relay.hooks)
        relay.run_until_empty()
    assert published() - before == 4
    assert REGISTRY.get_sample_value("pyqueue_outbox_invalid_total") == invalid + 1


def test_a_dsn_password_never_reaches_the_output() -> None:
    secret = "s3cret-pw-4242"
    for command in ("status", "init"):
        done = subprocess.run([sys.executable, "-m", "pyqueue.cli", "outbox", command, "--dsn",
                               f"postgresql://app:{secret}@127.0.0.1:1/app?connect_timeout=2"],
                              capture_output=True, text=True, cwd=REPO, timeout=60)
        assert done.returncode == 1
        assert "PostgreSQL" in done.stderr and secret not in done.stderr + done.stdout
