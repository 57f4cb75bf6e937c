"""The framework recipes of examples/ run as tests: FastAPI (the email app and the
generic one), a plain ``def`` Flask app, the outbox with SQLAlchemy and with Django.

The web apps run in-process through their frameworks' test clients, against a
Redis server of this test's own (the apps use ``$REDIS_URL``, as deployed).
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from _outbox import pg_dsn_fixture, psycopg  # noqa: F401

from pyqueue import Queue
from pyqueue.outbox import Relay
from pyqueue.testing import (
    RedisServer,
    assert_enqueued,
    assert_not_enqueued,
    run_until_idle,
    run_until_idle_async,
)

REPO = Path(__file__).resolve().parents[1]
#: The examples this file runs (tests/test_docs.py checks every example is run somewhere).
RECIPES = {"email_fastapi_app", "fastapi_app", "flask_app", "outbox_sqlalchemy",
           "django_outbox"}


@pytest.fixture
def app_redis(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A Redis server of the test's own, as the apps' ``$REDIS_URL``."""
    with RedisServer() as server:
        monkeypatch.setenv("REDIS_URL", server.url)
        monkeypatch.delenv("PYQUEUE_REDIS_URL", raising=False)
        yield server.url


def _fresh_import(name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(REPO))
    sys.modules.pop(f"examples.{name}", None)
    module = importlib.import_module(f"examples.{name}")
    monkeypatch.setitem(sys.modules, f"examples.{name}", module)
    return module


@asynccontextmanager
async def _client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan run, and an HTTP client speaking to it in-process."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            yield client


async def test_the_fastapi_email_example(app_redis: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    example = _fresh_import("email_fastapi_app", monkeypatch)
    async with _client(example.app) as client:
        first = await client.post("/otp", json={"email": "ada@example.com", "name": "Ada",
                                                "request_id": "r1"})
        again = await client.post("/otp", json={"email": "ada@example.com",
                                                "request_id": "r1"})
        assert first.status_code == again.status_code == 200
        assert first.json() == again.json()  # the same request id: one mail
        bad = await client.post("/otp", json={"email": "ada@example.com\r\nBcc: x@evil.test"})
        assert bad.status_code == 422
        news = await client.post("/newsletter", json={
            "issue": "12", "subject": "News", "html": "<p>hi</p>",
            "recipients": ["a@example.com", "not an address", "b@example.org"]})
        assert news.json() == {"queued": 2}
        unsubscribed = await client.post("/unsubscribe", params={"email": "b@example.org"})
        assert unsubscribed.json() == {"status": "ok"}
    with Queue(example.QUEUE, connection=app_redis) as q:
        (otp,) = assert_enqueued(q, where=lambda job: job.id == first.json()["job_id"])
        assert "ada@example.com" in str(otp.data)
        assert len(assert_enqueued(q, count=3)) == 3


async def test_the_fastapi_recipe(app_redis: str, monkeypatch: pytest.MonkeyPatch) -> None:
    example = _fresh_import("fastapi_app", monkeypatch)
    async with _client(example.app) as client:
        accepted = await client.post("/reports", json={"month": "2026-11"})
        assert accepted.status_code == 202
        job_id = accepted.json()["job_id"]
        again = await client.post("/reports", json={"month": "2026-11"})
        assert again.json()["job_id"] == job_id
        status = await client.get(f"/reports/{job_id}")
        assert status.json() == {"state": "waiting", "result": None}
        assert (await client.post("/reports", json={"month": "2026:11"})).status_code == 422
        await run_until_idle_async(example.QUEUE, example.build_report, connection=app_redis)
        status = await client.get(f"/reports/{job_id}")
        assert status.json() == {"state": "completed",
                                 "result": {"month": "2026-11", "rows": 42}}
        assert (await client.get("/reports/nope")).status_code == 404
        if any(getattr(route, "path", "") == "/queues" for route in example.app.routes):
            dashboard = await client.get("/queues/", follow_redirects=True)  # pyqueue[web]
            assert dashboard.status_code == 200 and example.QUEUE in dashboard.text


def test_the_flask_recipe(app_redis: str, monkeypatch: pytest.MonkeyPatch) -> None:
    example = _fresh_import("flask_app", monkeypatch)
    try:
        client = example.app.test_client()
        accepted = client.post("/thumbnails", data={"path": "/img/a.png"})
        assert accepted.status_code == 202
        job_id = accepted.get_json()["job_id"]
        assert client.post("/thumbnails", data={"path": "relative"}).status_code == 422
        assert_enqueued(example.queue, "thumbnail", {"path": "/img/a.png", "size": 128})
        run_until_idle("thumbnails", example.make_thumbnail, connection=app_redis)
        assert client.get(f"/thumbnails/{job_id}").get_json() == {
            "state": "completed", "result": {"thumbnail": "/img/a-128.png"}}
    finally:
        example.queue.close()


def test_the_sqlalchemy_outbox_recipe(pg_dsn: str, redis_url: str,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy import create_engine
    from sqlalchemy.exc import IntegrityError
    from sqlalchemy.orm import Session

    example = _fresh_import("outbox_sqlalchemy", monkeypatch)
    engine = create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(pg_dsn))
    try:
        example.Base.metadata.create_all(engine)
        with Session(engine) as session, session.begin():
            row = example.sign_up(session, "ada@example.com")
        with pytest.raises(IntegrityError), Session(engine) as session, session.begin():
            example.sign_up(session, "ada@example.com")  # duplicate email: all rolled back
        with Session(engine) as session:
            session.begin()
            example.sign_up(session, "alan@example.com")
            session.rollback()
    finally:
        engine.dispose()
    with Relay(pg_dsn, connection=redis_url) as relay:
        assert relay.run_until_empty() == 1
    with Queue("email", connection=redis_url) as q:
        try:
            (job,) = assert_enqueued(q, "welcome", where=lambda j: j.id == f"outbox-{row}")
            assert job.data["to"] == "ada@example.com" and job.opts["attempts"] == 5
            assert_not_enqueued(q, where=lambda j: j.data.get("to") == "alan@example.com")
        finally:
            q.obliterate(force=True)


def test_the_django_outbox_recipe(pg_dsn: str, app_redis: str) -> None:
    env = {**os.environ, "PYQUEUE_OUTBOX_DSN": pg_dsn, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, str(REPO / "examples" / "django_outbox.py")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "second sign-up rolled back" in done.stdout
    assert "relayed 1 row(s)" in done.stdout
    with Queue("email", connection=app_redis) as q:
        jobs = assert_enqueued(q, "welcome", count=2)
        assert sorted(j.data["to"] for j in jobs) == ["ada@example.com", "alan@example.com"]
        assert sum(j.id.startswith("outbox-") for j in jobs) == 1
