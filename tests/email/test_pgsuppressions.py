"""Suppressions in PostgreSQL: the store, the worker's check before each send,
hard bounces written to the table, and the CLI (``--postgres``)."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
import pytest
from _smtp import SMTPServer
from _worker_helpers import wait_for

from pyqueue import Queue
from pyqueue.email import enqueue_email
from pyqueue.email.cli import main
from pyqueue.email.pgsuppressions import PostgresSuppressions
from pyqueue.email.suppressions import hashed_field

DSN = os.environ.get("PYQUEUE_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def table() -> Iterator[str]:
    """A table in a schema of this test's own, dropped afterwards."""
    schema = f"t{uuid.uuid4().hex[:12]}"
    try:
        conn = psycopg.connect(DSN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL at {DSN} (set PYQUEUE_TEST_POSTGRES_DSN): {exc}")
    conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{schema}.email_suppressions"
    finally:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")
        conn.close()


@pytest.fixture
async def store(table: str) -> AsyncIterator[PostgresSuppressions]:
    pg = PostgresSuppressions(DSN, table=table)
    yield pg
    await pg.close()


def rows(table: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(DSN) as conn:
        return conn.execute(f"SELECT address, reason, source FROM {table} "
                            "ORDER BY address").fetchall()


async def test_store_round_trip(store: PostgresSuppressions, table: str) -> None:
    assert await store.add("Ada <ADA@Example.com>", "hard bounce", source="ses") == \
        "ada@example.com"
    await store.add("ada@example.com", "complaint", source="resend")  # latest reason wins
    assert rows(table) == [("ada@example.com", "complaint", "resend")]
    found = await store.suppressed(["ada@example.com", "bob@example.com"])
    assert list(found) == ["ada@example.com"] and found["ada@example.com"]["at"] > 0
    await store.forget("ADA@example.com")
    assert rows(table) == [(hashed_field("ada@example.com"), "forgotten", "forget")]
    assert await store.get("ada@example.com") is not None  # still suppressed, by hash
    assert await store.remove("ada@example.com") and rows(table) == []
    assert not await store.remove("ada@example.com")
    with pytest.raises(ValueError, match="Redis"):
        await store.add("ada@example.com", expires=60)
    with pytest.raises(ValueError):
        await store.add("not an address")


async def test_worker_checks_and_fills_the_table(queue: Queue, smtp_server: SMTPServer,
                                                 started: Any, store: PostgresSuppressions,
                                                 table: str) -> None:
    await store.add("gone@example.com", "manual")
    smtp_server.handler.fail_rcpt("bounce@example.com", "550 5.1.1 User unknown")
    skipped = enqueue_email(queue, to="gone@example.com", subject="x", text="x")
    bounced = enqueue_email(queue, to="bounce@example.com", subject="x", text="x", attempts=3)
    sent = enqueue_email(queue, to="ok@example.com", subject="x", text="x")
    await started(suppressions=PostgresSuppressions(DSN, table=table))

    def finished() -> bool:
        return queue.get_job_state(skipped.id) == "completed" and \
            queue.get_job_state(sent.id) == "completed" and \
            queue.get_job_state(bounced.id) == "failed"
    await wait_for(finished, 10, "the three mails")
    job = queue.get_job(skipped.id)
    assert job is not None and job.return_value["status"] == "suppressed"
    assert [m.rcpt_tos for m in smtp_server.handler.messages] == [["ok@example.com"]]
    (row,) = [r for r in rows(table) if r[0] == "bounce@example.com"]
    assert row[1].startswith("hard bounce: 550 5.1.1") and row[2] == "smtp"


def test_cli_works_on_the_table(table: str, redis_url: str,
                                capsys: pytest.CaptureFixture[str]) -> None:
    pg = ["--postgres", DSN, "--table", table, "--redis", redis_url]
    assert main(["email", "suppress", "add", "Ada@example.com", "--reason", "asked", *pg]) == 0
    assert main(["email", "suppress", "list", "--json", *pg]) == 0
    out = capsys.readouterr().out
    entries = json.loads(out[out.index("["):])
    assert [(e["address"], e["reason"]) for e in entries] == [("ada@example.com", "asked")]
    assert main(["email", "suppress", "remove", "ada@example.com", *pg]) == 0
    assert main(["email", "suppress", "remove", "ada@example.com", *pg]) == 1
    assert main(["email", "--queue", f"q{uuid.uuid4().hex[:8]}", "forget", "eve@example.com",
                 *pg]) == 0
    assert rows(table) == [(hashed_field("eve@example.com"), "forgotten", "forget")]
