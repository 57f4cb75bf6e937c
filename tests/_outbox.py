"""Helpers for the outbox tests (not a test module): a PostgreSQL schema of the
test's own, and a relay in a subprocess (``tests/_outbox_relay.py``).

PostgreSQL: ``$PYQUEUE_TEST_POSTGRES_DSN``, else the server on 127.0.0.1:5432,
database ``test`` (user ``postgres``, else ``root``). Each test gets a fresh
schema (its DSN sets the ``search_path``), dropped afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import pytest

psycopg = pytest.importorskip("psycopg", reason="pip install 'pyqueue-redis[outbox]'")
from psycopg.conninfo import make_conninfo  # noqa: E402

from pyqueue import outbox  # noqa: E402

ENV = "PYQUEUE_TEST_POSTGRES_DSN"
REPO = Path(__file__).resolve().parents[1]
CHILD = Path(__file__).with_name("_outbox_relay.py")


def base_dsn() -> str:
    """The server the tests use; skips when no PostgreSQL answers."""
    candidates = [os.environ[ENV]] if os.environ.get(ENV) else [
        "host=127.0.0.1 port=5432 dbname=test user=postgres",
        "host=127.0.0.1 port=5432 dbname=test user=root"]
    errors = []
    for dsn in candidates:
        try:
            with psycopg.connect(dsn, connect_timeout=5):
                return dsn
        except psycopg.Error as exc:
            errors.append(str(exc).strip())
    pytest.skip(f"no PostgreSQL for the outbox tests ({'; '.join(errors)}); "
                f"set ${ENV}")


@pytest.fixture(name="pg_dsn")
def pg_dsn_fixture() -> Iterator[str]:
    """A DSN whose ``search_path`` is a fresh schema holding an initialised outbox."""
    base = base_dsn()
    schema = f"pq_{uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    dsn = make_conninfo(base, options=f"-c search_path={schema}")
    try:
        with psycopg.connect(dsn) as conn:
            outbox.init(conn)
        yield dsn
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def rows(dsn: str, where: str = "TRUE") -> list[tuple]:  # type: ignore[type-arg]
    """``(id, published_at IS NOT NULL, attempts, last_error, failed_at IS NOT NULL)``."""
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT id, published_at IS NOT NULL, attempts, last_error, failed_at IS NOT NULL "
            f"FROM pyqueue_outbox WHERE {where} ORDER BY id").fetchall()


def relay_child(dsn: str, redis_url: str, mode: str, *extra: str) -> subprocess.Popen[str]:
    """A relay in a subprocess (see ``tests/_outbox_relay.py`` for the modes)."""
    return subprocess.Popen([sys.executable, str(CHILD), dsn, redis_url, mode, *extra],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            cwd=REPO)
